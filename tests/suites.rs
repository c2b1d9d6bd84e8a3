//! `cargo test` for the suites: every suite under `suites/` replayed on the local backend with
//! real Envoy, curl and TLS, plus the runs that show the harness failing when it should.
//!
//! A libtest-mimic harness (`harness = false`): trials list, filter and run like libtest's, so
//! `cargo test`, `cargo nextest run`, `--list` and `--exact` all work.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use egress_conformance::backend::kind::KindOptions;
use egress_conformance::envoy::{EnvoyBinary, find_or_install};
use egress_conformance::report::Transcript;
use egress_conformance::runner::RunSummary;
use egress_conformance::session::{AfterRun, run_kind, run_local, validate};
use egress_conformance::suite::{discover, load_suite};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn envoy() -> Result<EnvoyBinary, Failed> {
    find_or_install(&mut |note| eprintln!("{note}")).map_err(|e| Failed::from(e.to_string()))
}

/// Replay a suite file on a fresh local backend; the transcript comes back for failure messages.
fn replay(suite_file: &Path) -> Result<(RunSummary, String), Failed> {
    let suite = load_suite(suite_file).map_err(|e| e.to_string())?;
    validate(&suite).map_err(|e| e.to_string())?;
    let envoy = envoy()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut transcript = Transcript::new(Vec::new(), true);
        let run = run_local(
            &suite,
            envoy,
            &mut transcript,
            std::future::pending(),
            AfterRun::Stop,
        )
        .await
        .map_err(|e| format!("{}: local backend: {e}", suite_file.display()))?;
        let text = String::from_utf8_lossy(&transcript.into_inner()).into_owned();
        if !run.cleanup.leftovers.is_empty() {
            return Err(format!("the run left behind: {:?}\n{text}", run.cleanup.leftovers).into());
        }
        let summary = run.summary.ok_or("the run was interrupted")?;
        Ok((summary, text))
    })
}

fn passes(suite_file: PathBuf) -> Result<(), Failed> {
    let (summary, transcript) = replay(&suite_file)?;
    if summary.passed() {
        Ok(())
    } else {
        Err(format!(
            "{} failed:\n  {}\n\ntranscript:\n{transcript}",
            suite_file.display(),
            summary.failures().join("\n  ")
        )
        .into())
    }
}

/// The environment variable that names a kubeconfig context to run the kind trials against.
const KIND_CONTEXT: &str = "EGRESS_CONFORMANCE_KIND_CONTEXT";

/// The suite on a real cluster: the context in `EGRESS_CONFORMANCE_KIND_CONTEXT` (with Istio's
/// demo profile, or none and the backend installs it). Without it, ignored with the reason.
fn passes_on_kind(suite_file: PathBuf) -> Result<Completion, Failed> {
    let Some(context) = std::env::var_os(KIND_CONTEXT) else {
        return Ok(Completion::ignored_with(format!(
            "no cluster configured: set {KIND_CONTEXT}=<kubeconfig context> to run the suite on it"
        )));
    };
    let suite = load_suite(&suite_file).map_err(|e| e.to_string())?;
    validate(&suite).map_err(|e| e.to_string())?;
    let mut options = KindOptions::new(root().join("fixtures/sleep.yaml"));
    options.context = Some(context.to_string_lossy().into_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut transcript = Transcript::new(Vec::new(), true);
        let mut progress = |line: &str| eprintln!("[kind] {line}");
        let run = run_kind(
            &suite,
            options,
            &mut transcript,
            std::future::pending::<()>,
            &mut progress,
        )
        .await
        .map_err(|e| format!("{}: kind backend: {e}", suite_file.display()))?;
        let text = String::from_utf8_lossy(&transcript.into_inner()).into_owned();
        let summary = run.summary.ok_or("the run was interrupted")?;
        if !run.cleanup.is_clean() {
            return Err(format!("the run left behind:\n{}\n{text}", run.cleanup).into());
        }
        if summary.passed() {
            Ok(Completion::Completed)
        } else {
            Err(format!(
                "{} failed on kind:\n  {}\n\ntranscript:\n{text}",
                suite_file.display(),
                summary.failures().join("\n  ")
            )
            .into())
        }
    })
}

/// A copy of `suites/` and `fixtures/` in a temporary directory, edited by `edit`.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Result<Workspace, Failed> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        for sub in ["suites", "fixtures"] {
            copy_dir(&root().join(sub), &dir.path().join(sub)).map_err(|e| e.to_string())?;
        }
        Ok(Workspace { dir })
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn suite(&self) -> PathBuf {
        self.path("suites/egress-gateway-tls-origination.yaml")
    }

    /// Replace `from` by `to` in a file, insisting that `from` is there.
    fn edit(&self, relative: &str, from: &str, to: &str) -> Result<(), Failed> {
        let path = self.path(relative);
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        if !text.contains(from) {
            return Err(format!("{relative} does not contain {from:?}").into());
        }
        std::fs::write(&path, text.replacen(from, to, 1)).map_err(|e| e.to_string())?;
        Ok(())
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Run an edited suite and require that it fails, and with each of `expected` in its failures.
fn fails_with(workspace: &Workspace, expected: &[&str]) -> Result<(), Failed> {
    let (summary, transcript) = replay(&workspace.suite())?;
    if summary.passed() {
        return Err(format!("the edited suite passed; it should have failed\n{transcript}").into());
    }
    let failures = summary.failures().join("\n");
    // Each failure names the suite line of its check; the needles leave it out.
    let failures = strip_suite_lines(&failures);
    if !summary
        .failures()
        .iter()
        .all(|f| f.contains("(suite line ") || f.contains("not run") || f.contains("kubectl"))
    {
        return Err(format!(
            "a failure does not name its suite line:\n{}",
            summary.failures().join("\n")
        )
        .into());
    }
    for needle in expected {
        if !failures.contains(needle) {
            return Err(format!("no failure mentions {needle:?}; failures:\n{failures}").into());
        }
    }
    Ok(())
}

const FIXTURES: &str = "fixtures/egress-gateway-tls-origination";
const SUITE: &str = "suites/egress-gateway-tls-origination.yaml";

/// The tutorial's last DestinationRule with `tls.mode: DISABLE`: stage 4 gets the origin's 400
/// instead of the page, and every expectation that depends on TLS says so.
fn tls_disabled() -> Result<(), Failed> {
    let ws = Workspace::new()?;
    ws.edit(
        &format!("{FIXTURES}/04-destinationrule-originate-tls.yaml"),
        "mode: SIMPLE",
        "mode: DISABLE",
    )?;
    fails_with(
        &ws,
        &[
            "stage originate-tls: politics: status lines: expected [HTTP/1.1 200 OK], got [HTTP/1.1 400 Bad Request]",
            "stage originate-tls: politics: header content-length: expected 150793, got 248",
            "stage originate-tls: egress-gateway: cluster outbound|443||edition.cnn.com",
            "expected present, lb_policy LEAST_REQUEST, TLS originated (sni auto), got present, lb_policy LEAST_REQUEST, plain text upstream",
            "politics: requests that reached the origin: expected [{host=edition.cnn.com path=/politics tls=true sni=edition.cnn.com status=200}], got [{host=edition.cnn.com path=/politics tls=false sni=none status=400}]",
        ],
    )
}

/// Expectations that cannot hold: an exit code, a header, a listener, a virtual host's domains,
/// a counter and an excluded line, each wrong in the suite rather than in the mesh.
fn wrong_expectations() -> Result<(), Failed> {
    let ws = Workspace::new()?;
    ws.edit(SUITE, "exit_code: 35", "exit_code: 0")?;
    ws.edit(
        SUITE,
        "location: https://edition.cnn.com/politics",
        "location: https://edition.cnn.com/world",
    )?;
    ws.edit(
        SUITE,
        "listeners: [0.0.0.0_8443]",
        "listeners: [0.0.0.0_443]",
    )?;
    ws.edit(
        SUITE,
        "domains: [edition.cnn.com, edition.cnn.com.]",
        "domains: [edition.cnn.com]",
    )?;
    ws.edit(
        SUITE,
        "{proxy: egress-gateway, cluster: outbound|443||edition.cnn.com, requests: 0}",
        "{proxy: egress-gateway, cluster: outbound|443||edition.cnn.com, requests: 1}",
    )?;
    ws.edit(
        SUITE,
        "stdout_excludes: [301 Moved Permanently]",
        "stdout_excludes: [200 OK]",
    )?;
    ws.edit(
        SUITE,
        "virtual_hosts: [blackhole:443]",
        "virtual_hosts: [edition.cnn.com:443]",
    )?;
    ws.edit(SUITE, "discovery: EDS", "discovery: STRICT_DNS")?;
    ws.edit(SUITE, "rds: http.8443", "rds: http.443")?;
    ws.edit(
        SUITE,
        "{proxy: sidecar, cluster: outbound|443||edition.cnn.com, requests: 1}",
        "{proxy: sidecar, cluster: outbound|443||edition.cnn.com, requests: 1}\n          - {proxy: sidecar, cluster: outbound|443||no-such-cluster.example, requests: 0}",
    )?;
    fails_with(
        &ws,
        &[
            "stage service-entry: politics: exit code: expected 0, got 35",
            "politics: header location: expected https://edition.cnn.com/world, got https://edition.cnn.com/politics",
            "stage gateway: egress-gateway: listeners: expected [0.0.0.0_443], got [0.0.0.0_8443]",
            "stage gateway: egress-gateway: listener 0.0.0.0_8443: expected RDS http.443 from ADS, got RDS http.8443 from ADS",
            "egress-gateway: route config http.8443: virtual hosts: expected [edition.cnn.com:443], got [blackhole:443]",
            "sidecar: route config 80: virtual host edition.cnn.com:80: expected domains [edition.cnn.com], every route to outbound|80||edition.cnn.com, got domains [edition.cnn.com, edition.cnn.com.], routes to [outbound|80||edition.cnn.com]",
            "cluster outbound|443|cnn|istio-egressgateway.istio-system.svc.cluster.local: expected present, type STRICT_DNS, got present, type EDS",
            "politics: output excludes \"200 OK\": expected no line with \"200 OK\", got HTTP/1.1 200 OK",
            "politics-port-443: requests from egress-gateway to outbound|443||edition.cnn.com: expected 1, got 0",
            "politics-port-443: requests from sidecar to outbound|443||no-such-cluster.example: expected 0, got no counter cluster.outbound|443||no-such-cluster.example.upstream_rq_total on the sidecar",
        ],
    )
}

fn strip_suite_lines(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(" (suite line ") {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(')').map(|e| e + 1).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The 1-based line of the first line of `relative` that contains `needle`.
fn line_of(ws: &Workspace, relative: &str, needle: &str) -> usize {
    std::fs::read_to_string(ws.path(relative))
        .unwrap_or_default()
        .lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or(0)
}

/// REGISTRY_ONLY in real Envoy: the baseline's unknown host gets `block_all`'s 502 instead of
/// passing through, and its TLS connection to 443 goes to BlackHoleCluster.
fn registry_only() -> Result<(), Failed> {
    let ws = Workspace::new()?;
    ws.edit(SUITE, "mode: ALLOW_ANY", "mode: REGISTRY_ONLY")?;
    fails_with(
        &ws,
        &[
            "stage baseline: politics: status lines: expected [HTTP/1.1 301 Moved Permanently, HTTP/1.1 200 OK], got [HTTP/1.1 502 Bad Gateway]",
            "stage baseline: politics: requests from sidecar to PassthroughCluster: expected 2, got 0",
            "stage baseline: politics: requests that reached the origin: expected [{host=edition.cnn.com path=/politics tls=false status=301}, {host=edition.cnn.com path=/politics tls=true sni=edition.cnn.com status=200}], got []",
        ],
    )
}

/// A cleanup that forgets one delete leaves residue, and the no-residue check names it.
fn residue_is_found() -> Result<(), Failed> {
    let ws = Workspace::new()?;
    ws.edit(
        &format!("{FIXTURES}/05-cleanup.sh"),
        "kubectl delete destinationrule egressgateway-for-cnn\n",
        "",
    )?;
    fails_with(
        &ws,
        &[
            "stage cleanup: no residue: resources as at baseline: expected [], got [DestinationRule default/egressgateway-for-cnn]",
            "no residue: sidecar config as at baseline",
            "outbound|443|cnn|istio-egressgateway.istio-system.svc.cluster.local",
        ],
    )
}

/// Envoy rejecting a config fails that stage with Envoy's own words, and the run stops there.
fn envoy_rejects() -> Result<(), Failed> {
    let ws = Workspace::new()?;
    let long_sni = "a".repeat(300);
    ws.edit(
        &format!("{FIXTURES}/04-destinationrule-originate-tls.yaml"),
        "mode: SIMPLE # initiates HTTPS for connections to edition.cnn.com",
        &format!("mode: SIMPLE\n        sni: {long_sni}"),
    )?;
    let (summary, transcript) = replay(&ws.suite())?;
    let failures = summary.failures().join("\n");
    let wanted = [
        "stage originate-tls: kubectl apply -f 04-destinationrule-originate-tls.yaml",
        "rejected the config (type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "Sni: value length must be at most 255 bytes",
        "stage cleanup: not run",
    ];
    for needle in wanted {
        if !failures.contains(needle) {
            return Err(format!(
                "no failure mentions {needle:?}; failures:\n{failures}\n{transcript}"
            )
            .into());
        }
    }
    Ok(())
}

/// Two replays at once on one machine: separate ports, directories and processes; both pass.
fn two_runs_at_once() -> Result<(), Failed> {
    let suite = root().join(SUITE);
    let other = suite.clone();
    let first = std::thread::spawn(move || passes(suite));
    let second = std::thread::spawn(move || passes(other));
    let a = first.join().map_err(|_| "the first run panicked")?;
    let b = second.join().map_err(|_| "the second run panicked")?;
    a.and(b)
}

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_egress-conformance"));
    command.current_dir(root());
    command
}

/// Bad input ends with exit 2 and a message that names the file, the line and the field, before
/// anything is started.
fn bad_input(
    edit: fn(&Workspace) -> Result<PathBuf, Failed>,
    expected: fn(&Workspace) -> Vec<String>,
) -> Result<(), Failed> {
    let ws = Workspace::new()?;
    let suite = edit(&ws)?;
    let expected = expected(&ws);
    let output = binary()
        .arg("run")
        .arg(&suite)
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() != Some(2) {
        return Err(format!(
            "exit {:?}, expected 2; stderr: {stderr}",
            output.status.code()
        )
        .into());
    }
    for needle in &expected {
        if !stderr.contains(needle.as_str()) {
            return Err(format!("the error does not mention {needle:?}: {stderr}").into());
        }
    }
    if !output.stdout.is_empty() {
        return Err(format!(
            "the run started anyway: {}",
            String::from_utf8_lossy(&output.stdout)
        )
        .into());
    }
    Ok(())
}

fn bad_input_trials() -> Vec<Trial> {
    type Case = (
        &'static str,
        fn(&Workspace) -> Result<PathBuf, Failed>,
        fn(&Workspace) -> Vec<String>,
    );
    let suite_line = |ws: &Workspace, needle: &str| {
        format!(
            "egress-gateway-tls-origination.yaml:{}:",
            line_of(ws, SUITE, needle)
        )
    };
    let _ = suite_line;
    let cases: Vec<Case> = vec![
        (
            "malformed-yaml",
            |ws| {
                ws.edit(
                    &fixture_path("01-serviceentry-cnn.yaml"),
                    "  hosts:\n",
                    "  hosts: [\n",
                )?;
                Ok(ws.suite())
            },
            |ws| {
                vec![
                    format!(
                        "egress-gateway-tls-origination.yaml:{}:",
                        line_of(ws, SUITE, "apply: [01-serviceentry-cnn.yaml]")
                    ),
                    "01-serviceentry-cnn.yaml:7:3: malformed YAML".into(),
                ]
            },
        ),
        (
            "unknown-kind",
            |ws| {
                ws.edit(
                    &fixture_path("02-gateway-istio-egressgateway.yaml"),
                    "kind: Gateway",
                    "kind: Gateway2",
                )?;
                Ok(ws.suite())
            },
            |_| {
                vec![
                    "02-gateway-istio-egressgateway.yaml:2:".into(),
                    "unknown kind `Gateway2`".into(),
                ]
            },
        ),
        (
            "unknown-field",
            |ws| {
                ws.edit(
                    &fixture_path("01-serviceentry-cnn.yaml"),
                    "  resolution: DNS",
                    "  resolution: DNS\n  hostz: [a]",
                )?;
                Ok(ws.suite())
            },
            |_| {
                vec![
                    "01-serviceentry-cnn.yaml:16:3:".into(),
                    "unknown field `hostz` at spec.hostz".into(),
                ]
            },
        ),
        (
            "invalid-enum",
            |ws| {
                ws.edit(
                    &fixture_path("04-destinationrule-originate-tls.yaml"),
                    "mode: SIMPLE",
                    "mode: SIMPEL",
                )?;
                Ok(ws.suite())
            },
            |_| {
                vec![
                    "04-destinationrule-originate-tls.yaml:14:15:".into(),
                    "invalid value `SIMPEL` at spec.trafficPolicy.portLevelSettings[0].tls.mode"
                        .into(),
                    "DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL".into(),
                ]
            },
        ),
        (
            "unsupported-feature",
            |ws| {
                ws.edit(
                    &fixture_path("03-destinationrule-virtualservice-through-egress-gateway.yaml"),
                    "  - match:\n    - gateways:\n      - mesh",
                    "  - timeout: 5s\n    match:\n    - gateways:\n      - mesh",
                )?;
                Ok(ws.suite())
            },
            |_| {
                vec![
                    "03-destinationrule-virtualservice-through-egress-gateway.yaml:21:".into(),
                    "unsupported Istio feature".into(),
                    "spec.http[0].timeout".into(),
                ]
            },
        ),
        (
            "unknown-suite-field",
            |ws| {
                ws.edit(
                    SUITE,
                    "    apply: [01-serviceentry-cnn.yaml]",
                    "    aply: [01-serviceentry-cnn.yaml]",
                )?;
                Ok(ws.suite())
            },
            |ws| {
                vec![
                    format!(
                        "egress-gateway-tls-origination.yaml:{}:",
                        line_of(ws, SUITE, "aply: [01-serviceentry-cnn.yaml]")
                    ),
                    "aply".into(),
                ]
            },
        ),
        (
            "missing-fixture",
            |ws| {
                std::fs::remove_file(ws.path(&fixture_path("02-gateway-istio-egressgateway.yaml")))
                    .map_err(|e| e.to_string())?;
                Ok(ws.suite())
            },
            |ws| {
                vec![
                    format!(
                        "egress-gateway-tls-origination.yaml:{}:",
                        line_of(ws, SUITE, "apply: [02-gateway-istio-egressgateway.yaml]")
                    ),
                    "02-gateway-istio-egressgateway.yaml does not exist".into(),
                ]
            },
        ),
        (
            "missing-suite",
            |ws| Ok(ws.path("suites/no-such-suite.yaml")),
            |_| vec!["no-such-suite.yaml".into(), "cannot read suite".into()],
        ),
        (
            "delete-of-nothing",
            |ws| {
                ws.edit(
                    &fixture_path("05-cleanup.sh"),
                    "kubectl delete serviceentry cnn",
                    "kubectl delete serviceentry cnn2",
                )?;
                Ok(ws.suite())
            },
            |_| {
                vec![
                    "stage cleanup".into(),
                    "kubectl delete serviceentry cnn2".into(),
                    "does not exist".into(),
                ]
            },
        ),
    ];
    cases
        .into_iter()
        .map(|(name, edit, expected)| {
            Trial::test(format!("bad_input::{name}"), move || {
                bad_input(edit, expected)
            })
        })
        .collect()
}

fn fixture_path(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

/// Ctrl-C in the middle of a run: the binary stops, and its Envoys, ports and directory go.
fn interrupted_run_cleans_up() -> Result<(), Failed> {
    use std::io::{BufRead, BufReader};
    let mut child = Running(
        binary()
            .arg("run")
            .env("ENVOY_BIN", envoy()?.path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    // Wait for the run to be in the middle of the tutorial.
    loop {
        let line = lines
            .next()
            .ok_or_else(|| format!("the run ended before stage 2: {seen:?}"))?
            .map_err(|e| e.to_string())?;
        let at_stage_2 = line.starts_with("-- stage 2");
        seen.push(line);
        if at_stage_2 {
            break;
        }
    }
    let envoys = children_named(child.0.id(), "envoy");
    if envoys.len() != 2 {
        return Err(format!("expected 2 Envoy children mid-run, found {envoys:?}").into());
    }
    let run_dir = envoy_run_dir(envoys[0]).ok_or("cannot read the Envoy's command line")?;
    child.interrupt();
    let status = child.0.wait().map_err(|e| e.to_string())?;
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    if status.code() != Some(1) {
        return Err(format!(
            "exit {status}, expected 1 (interrupted); output after the signal: {rest:?}"
        )
        .into());
    }
    for pid in envoys {
        if Path::new(&format!("/proc/{pid}")).exists() {
            return Err(format!("Envoy pid {pid} outlived the interrupted run").into());
        }
    }
    if run_dir.exists() {
        return Err(format!("{} outlived the interrupted run", run_dir.display()).into());
    }
    Ok(())
}

/// Ctrl-C while the run is still starting (as soon as its first Envoy exists): nothing of it
/// remains. Its sockets close with the processes that hold them, so no pid means no port.
fn interrupted_start_up_cleans_up() -> Result<(), Failed> {
    let mut child = Running(
        binary()
            .arg("run")
            .env("ENVOY_BIN", envoy()?.path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // A proxy, not the look-up's `envoy --version` (which runs before the run's signal handling
    // exists, when a Ctrl-C simply ends the process and there is nothing to clean).
    let (first, run_dir) = loop {
        let proxy = children_named(child.0.id(), "envoy")
            .into_iter()
            .find_map(|pid| envoy_run_dir(pid).map(|dir| (pid, dir)));
        if let Some(found) = proxy {
            break found;
        }
        if std::time::Instant::now() > deadline || !matches!(child.0.try_wait(), Ok(None)) {
            return Err("no Envoy child appeared within 20 s".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    child.interrupt();
    let status = child.0.wait().map_err(|e| e.to_string())?;
    let mut stderr = String::new();
    if let Some(mut err) = child.0.stderr.take() {
        use std::io::Read;
        let _ = err.read_to_string(&mut stderr);
    }
    if status.code() != Some(1) {
        return Err(format!("exit {status}, expected 1 (interrupted): {stderr}").into());
    }
    // The binary has stopped, reaped and checked its Envoys before exiting.
    if Path::new(&format!("/proc/{first}")).exists() {
        return Err(format!("Envoy pid {first} outlived the interrupted start-up").into());
    }
    if run_dir.exists() {
        return Err(format!("{} outlived the interrupted start-up", run_dir.display()).into());
    }
    if stderr.contains("left behind") {
        return Err(format!("the binary reports leftovers: {stderr}").into());
    }
    Ok(())
}

/// A child run of the binary that is stopped as a user would stop it (Ctrl-C) if a test gives up
/// on it early, so that even a failing test leaves nothing behind.
struct Running(std::process::Child);

impl Running {
    fn interrupt(&self) {
        // SAFETY: kill(2) with the pid of our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        self.interrupt();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while matches!(self.0.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory a kept run left on purpose, removed when the test is done with it.
struct KeptDir(Option<PathBuf>);

impl Drop for KeptDir {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `--keep`: after the run the mesh stays up and reachable until Ctrl-C; then it stops, and only
/// the run's directory (logs, bootstraps, CA) stays, as promised.
fn keep_leaves_the_mesh_up_until_ctrl_c() -> Result<(), Failed> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = Running(
        binary()
            .args(["run", "--keep"])
            .env("ENVOY_BIN", envoy()?.path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let mut kept = KeptDir(None);
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut admin = None;
    loop {
        let line = lines
            .next()
            .ok_or("the run ended without offering to keep the mesh")?
            .map_err(|e| e.to_string())?;
        if let Some(rest) = line.strip_prefix("egress-gateway: admin http://") {
            admin = rest.split_whitespace().next().map(str::to_string);
        }
        if let Some(dir) = line.split("Run directory: ").nth(1) {
            kept.0 = Some(PathBuf::from(dir.trim()));
        }
        if line.contains("Press Ctrl-C to stop it") {
            break;
        }
    }
    let admin = admin.ok_or("no admin address for the gateway was printed")?;
    let run_dir = kept.0.clone().ok_or("no run directory was printed")?;
    let envoys = children_named(child.0.id(), "envoy");
    // The gateway answers on its admin API while the harness waits.
    let mut stream = std::net::TcpStream::connect(&admin).map_err(|e| format!("{admin}: {e}"))?;
    stream
        .write_all(b"GET /ready HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    if !answer.contains("LIVE") {
        return Err(format!("the kept gateway is not live: {answer}").into());
    }
    child.interrupt();
    let status = child.0.wait().map_err(|e| e.to_string())?;
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let reported = rest
        .iter()
        .find_map(|l| l.strip_prefix("kept: "))
        .map(PathBuf::from)
        .ok_or_else(|| format!("no `kept:` line after Ctrl-C: {rest:?}"))?;
    if status.code() != Some(0) {
        return Err(format!("exit {status} after a passing, kept run").into());
    }
    if reported != run_dir || !run_dir.join("sidecar").join("envoy.log").exists() {
        return Err(format!(
            "{} was not kept (reported: {})",
            run_dir.display(),
            reported.display()
        )
        .into());
    }
    if envoys.len() != 2
        || envoys
            .iter()
            .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
    {
        return Err(format!("the kept Envoys {envoys:?} did not stop on Ctrl-C").into());
    }
    Ok(())
}

/// `--junit`: one case per stage; the failing stage carries its failures and its transcript.
fn junit_report_of_a_failing_run() -> Result<(), Failed> {
    let ws = Workspace::new()?;
    ws.edit(
        &fixture_path("04-destinationrule-originate-tls.yaml"),
        "mode: SIMPLE",
        "mode: DISABLE",
    )?;
    let xml_file = ws.path("report.xml");
    let output = binary()
        .arg("run")
        .arg(ws.suite())
        .arg("--junit")
        .arg(&xml_file)
        .env("ENVOY_BIN", envoy()?.path)
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.code() != Some(1) {
        return Err(format!("exit {:?}, expected 1", output.status.code()).into());
    }
    let xml = std::fs::read_to_string(&xml_file).map_err(|e| e.to_string())?;
    let wanted = [
        r#"tests="6""#,
        r#"failures="1""#,
        r#"<testcase name="04 originate-tls""#,
        "politics: status lines (suite line",
        "expected [HTTP/1.1 200 OK], got [HTTP/1.1 400 Bad Request]",
        "-- stage 4: originate-tls",
    ];
    for needle in wanted {
        if !xml.contains(needle) {
            return Err(format!("the JUnit report lacks {needle:?}:\n{xml}").into());
        }
    }
    Ok(())
}

/// A broken environment is exit 2 with a message that says what is missing and how to get it.
fn missing_binaries() -> Result<(), Failed> {
    let no_curl = binary()
        .arg("run")
        .env("PATH", "/nonexistent")
        .env("ENVOY_BIN", envoy()?.path)
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&no_curl.stderr);
    if no_curl.status.code() != Some(2)
        || !stderr.contains("cannot run curl")
        || !stderr.contains("install curl")
    {
        return Err(format!("without curl: exit {:?}, {stderr}", no_curl.status.code()).into());
    }
    let no_envoy = binary()
        .arg("run")
        .env("ENVOY_BIN", "/nonexistent/envoy")
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&no_envoy.stderr);
    if no_envoy.status.code() != Some(2)
        || !stderr.contains("ENVOY_BIN points to /nonexistent/envoy")
    {
        return Err(format!(
            "with a wrong ENVOY_BIN: exit {:?}, {stderr}",
            no_envoy.status.code()
        )
        .into());
    }
    Ok(())
}

/// The pids of `parent`'s children whose command is `name`.
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...
            let Some((comm_end, rest)) = stat.rsplit_once(") ") else {
                return false;
            };
            let comm = comm_end
                .split_once(" (")
                .map(|(_, c)| c)
                .unwrap_or_default();
            let ppid = rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok());
            comm == name && ppid == Some(parent)
        })
        .collect()
}

/// The run directory an Envoy of ours was started in (`-c <dir>/<proxy>/bootstrap.json`).
fn envoy_run_dir(pid: u32) -> Option<PathBuf> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let config = args
        .iter()
        .position(|a| a == "-c")
        .and_then(|i| args.get(i + 1))?;
    Path::new(config).parent()?.parent().map(Path::to_path_buf)
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    for suite in discover(&root().join("suites")).expect("suites/ is readable") {
        let name = suite
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let on_kind = suite.clone();
        trials.push(Trial::test(format!("local::{name}"), move || passes(suite)));
        trials.push(Trial::ignorable_test(format!("kind::{name}"), move || {
            passes_on_kind(on_kind)
        }));
    }
    trials.push(Trial::test("local::two_runs_at_once", two_runs_at_once));
    trials.push(Trial::test("fails::tls_mode_disable", tls_disabled));
    trials.push(Trial::test("fails::wrong_expectations", wrong_expectations));
    trials.push(Trial::test(
        "fails::residue_after_cleanup",
        residue_is_found,
    ));
    trials.push(Trial::test("fails::envoy_rejects_config", envoy_rejects));
    trials.push(Trial::test(
        "fails::registry_only_blocks_the_baseline",
        registry_only,
    ));
    trials.push(Trial::test(
        "cleanup::interrupted_run",
        interrupted_run_cleans_up,
    ));
    trials.push(Trial::test(
        "report::junit_of_a_failing_run",
        junit_report_of_a_failing_run,
    ));
    trials.push(Trial::test(
        "cleanup::interrupted_start_up",
        interrupted_start_up_cleans_up,
    ));
    trials.push(Trial::test(
        "cleanup::keep_until_ctrl_c",
        keep_leaves_the_mesh_up_until_ctrl_c,
    ));
    trials.push(Trial::test("bad_input::missing_binaries", missing_binaries));
    trials.extend(bad_input_trials());
    libtest_mimic::run(&args, trials).exit();
}
