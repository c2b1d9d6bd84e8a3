//! Bad input and a broken environment: exit 2, a message naming the file, the line and the
//! field (or what is missing and how to get it), and nothing started.

use std::path::PathBuf;

use libtest_mimic::{Failed, Trial};

use crate::harness::{SUITE, Workspace, binary, fixture_path, run_binary};

/// Bad input ends with exit 2 and a message that names the file, the line and the field, before
/// anything is started.
fn bad_input(
    edit: fn(&Workspace) -> Result<PathBuf, Failed>,
    expected: fn(&Workspace) -> Vec<String>,
) -> Result<(), Failed> {
    let ws = Workspace::new()?;
    let suite = edit(&ws)?;
    let expected = expected(&ws);
    let output = run_binary()?
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

pub fn trials() -> Vec<Trial> {
    type Case = (
        &'static str,
        fn(&Workspace) -> Result<PathBuf, Failed>,
        fn(&Workspace) -> Vec<String>,
    );
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
                        ws.line_of(SUITE, "apply: [01-serviceentry-cnn.yaml]")
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
                    "  - retries:\n      attempts: 3\n    match:\n    - gateways:\n      - mesh",
                )?;
                Ok(ws.suite())
            },
            |_| {
                vec![
                    "03-destinationrule-virtualservice-through-egress-gateway.yaml:21:".into(),
                    "the builtin control plane cannot translate this".into(),
                    "spec.http[0].retries".into(),
                    "--backend kind".into(),
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
                        ws.line_of(SUITE, "aply: [01-serviceentry-cnn.yaml]")
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
                        ws.line_of(SUITE, "apply: [02-gateway-istio-egressgateway.yaml]")
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
                    "05-cleanup.sh:2:".into(),
                    "stage cleanup: kubectl delete serviceentry cnn2".into(),
                    "does not exist at that point".into(),
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

/// A broken environment is exit 2 with a message that says what is missing and how to get it.
pub fn missing_binaries() -> Result<(), Failed> {
    let no_curl = run_binary()?
        .env("PATH", "/nonexistent")
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

/// On a cluster, real Istio runs what the builtin translator cannot: a suite with an HTTPS
/// ServiceEntry port gets past validation to the cluster (and fails on the context, exit 2,
/// naming it), while the local backend's builtin control plane refuses it, naming the field.
pub fn kind_runs_what_builtin_cannot() -> Result<(), Failed> {
    let ws = Workspace::new()?;
    ws.edit(
        &fixture_path("01-serviceentry-cnn.yaml"),
        "    name: http-port-for-tls-origination\n    protocol: HTTP",
        "    name: mongo\n    protocol: MONGO",
    )?;
    let on_kind = run_binary()?
        .args(["--backend", "kind", "--context", "no-such-context"])
        .arg(ws.suite())
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&on_kind.stderr);
    let stdout = String::from_utf8_lossy(&on_kind.stdout);
    if on_kind.status.code() != Some(2)
        || !stderr.contains("no-such-context")
        || stderr.contains("cannot translate")
    {
        return Err(format!(
            "kind: exit {:?}, expected 2 on the context:\n{stdout}\n{stderr}",
            on_kind.status.code()
        )
        .into());
    }
    let local = run_binary()?
        .arg(ws.suite())
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&local.stderr);
    let line = ws.line_of(&fixture_path("01-serviceentry-cnn.yaml"), "protocol: MONGO");
    let wanted = [
        &format!("01-serviceentry-cnn.yaml:{line}:5:"),
        "spec.ports[1].protocol",
        "the builtin control plane cannot translate this",
        "--backend kind",
    ];
    if local.status.code() != Some(2) || !wanted.iter().all(|w| stderr.contains(*w)) {
        return Err(format!(
            "local: exit {:?}, expected 2 naming the field: {stderr}",
            local.status.code()
        )
        .into());
    }
    Ok(())
}
