//! `cargo test` for the suites: every suite under `suites/` replayed by the binary on the local
//! backend with real Envoy, curl and TLS, plus the runs that show the harness failing when it
//! should, refusing bad input, and leaving nothing behind.
//!
//! A libtest-mimic harness (`harness = false`): trials list, filter and run like libtest's, so
//! `cargo test`, `cargo nextest run`, `--list` and `--exact` all work.

mod apiserver;
mod bad_input;
mod cleanup;
mod failing;
mod harness;
mod install_check;
mod istiod;
mod passing;

use libtest_mimic::{Arguments, Trial};

use harness::root;

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    let mut suites: Vec<_> = std::fs::read_dir(root().join("suites"))
        .expect("suites/ is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    suites.sort();
    trials.extend(istiod::trials(&suites));
    trials.extend(apiserver::trials(&suites));
    trials.extend(install_check::trials());
    for suite in suites {
        let name = suite
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let on_kind = suite.clone();
        trials.push(Trial::test(format!("local::{name}"), move || {
            passing::passes(suite)
        }));
        trials.push(Trial::ignorable_test(format!("kind::{name}"), move || {
            passing::passes_on_kind(on_kind)
        }));
    }
    trials.push(Trial::test(
        "local::two_runs_at_once",
        passing::two_runs_at_once,
    ));
    trials.push(Trial::test(
        "fails::tls_mode_disable",
        failing::tls_disabled,
    ));
    trials.push(Trial::test(
        "fails::wrong_expectations",
        failing::wrong_expectations,
    ));
    trials.push(Trial::test(
        "fails::residue_after_cleanup",
        failing::residue_is_found,
    ));
    trials.push(Trial::test(
        "fails::envoy_rejects_config",
        failing::envoy_rejects,
    ));
    trials.push(Trial::test(
        "fails::registry_only_blocks_the_baseline",
        failing::registry_only,
    ));
    trials.push(Trial::test(
        "fails::egress-gateway::gateway_for_another_host",
        failing::gateway_for_another_host,
    ));
    trials.push(Trial::test(
        "fails::egress-tls-origination::tls_on_the_wrong_port",
        failing::tls_origination_on_the_wrong_port,
    ));
    trials.push(Trial::test(
        "fails::egress-control::registry_only_without_the_service_entry",
        failing::registry_only_without_the_service_entry,
    ));
    trials.push(Trial::test(
        "fails::external-tcp-service::static_endpoint_elsewhere",
        failing::static_endpoint_elsewhere,
    ));
    for proxy in ["sidecar", "egress-gateway"] {
        for stage in 0..=5 {
            trials.push(Trial::test(
                format!("fails::{proxy}_killed_in_stage_{stage}"),
                move || failing::proxy_dies(proxy, stage),
            ));
        }
    }
    trials.push(Trial::test(
        "cleanup::interrupted_run",
        cleanup::interrupted_run,
    ));
    trials.push(Trial::test(
        "cleanup::interrupted_start_up",
        cleanup::interrupted_start_up,
    ));
    trials.push(Trial::test(
        "cleanup::interrupted_at_once",
        cleanup::interrupted_at_once,
    ));
    trials.push(Trial::test(
        "cleanup::stale_run_dirs_are_swept",
        cleanup::stale_run_dirs_are_swept,
    ));
    trials.push(Trial::test(
        "cleanup::keep_until_ctrl_c",
        cleanup::keep_until_ctrl_c,
    ));
    trials.push(Trial::ignorable_test(
        "cleanup::a_leftover_fails_the_run",
        cleanup::a_leftover_fails_the_run,
    ));
    trials.push(Trial::test(
        "report::junit_of_a_failing_run",
        cleanup::junit_of_a_failing_run,
    ));
    trials.push(Trial::test(
        "bad_input::missing_binaries",
        bad_input::missing_binaries,
    ));
    trials.push(Trial::test(
        "bad_input::kind_runs_what_builtin_cannot",
        bad_input::kind_runs_what_builtin_cannot,
    ));
    trials.push(Trial::test(
        "bad_input::fuzzed_input_exits_0_1_or_2",
        bad_input::fuzzed_input_exits_0_1_or_2,
    ));
    trials.push(Trial::test(
        "bad_input::istio_warnings_are_printed",
        bad_input::istio_warnings_are_printed,
    ));
    trials.push(Trial::test(
        "bad_input::fixtures_outside_repo_when_allowed",
        bad_input::fixtures_outside_repo_when_allowed,
    ));
    trials.extend(bad_input::trials());
    libtest_mimic::run(&args, trials).exit();
}
