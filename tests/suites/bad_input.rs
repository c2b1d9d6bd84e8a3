//! Bad input and a broken environment: exit 2, a message naming the file, the line and the
//! field (or what is missing and how to get it), and nothing started.

use std::ffi::OsString;
use std::path::PathBuf;

use libtest_mimic::{Failed, Trial};

use crate::harness::{FIXTURES, SUITE, Workspace, binary, fixture_path, run_binary};

/// What a case runs and what its error must (and must not) say.
pub struct Case {
    args: Vec<OsString>,
    wanted: Vec<String>,
    unwanted: Vec<String>,
}

impl Case {
    /// `run <suite>`.
    fn suite(suite: PathBuf) -> Case {
        Case {
            args: vec![suite.into_os_string()],
            wanted: Vec::new(),
            unwanted: Vec::new(),
        }
    }

    fn wants(mut self, wanted: impl IntoIterator<Item = String>) -> Case {
        self.wanted.extend(wanted);
        self
    }

    fn refuses_to_say(mut self, unwanted: &str) -> Case {
        self.unwanted.push(unwanted.to_string());
        self
    }
}

/// Bad input ends with exit 2 and a message that names the file, the line and the field, before
/// anything is started; nothing is left in the run's temporary directory.
pub fn refused(ws: &Workspace, case: Case) -> Result<(), Failed> {
    let tmp = ws.path("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let output = run_binary()?
        .env("TMPDIR", &tmp)
        .args(&case.args)
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
    for needle in &case.wanted {
        if !stderr.contains(needle.as_str()) {
            return Err(format!("the error does not mention {needle:?}: {stderr}").into());
        }
    }
    for needle in &case.unwanted {
        if stderr.contains(needle.as_str()) {
            return Err(format!("the error should not say {needle:?}: {stderr}").into());
        }
    }
    if !output.stdout.is_empty() {
        return Err(format!(
            "the run started anyway: {}",
            String::from_utf8_lossy(&output.stdout)
        )
        .into());
    }
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    if !left.is_empty() {
        return Err(format!("the refused run left {left:?}").into());
    }
    Ok(())
}

/// The suite's line that applies `fixture`.
fn apply_line(ws: &Workspace, fixture: &str) -> String {
    format!(
        "egress-gateway-tls-origination.yaml:{}:",
        ws.line_of(SUITE, &format!("apply: [{fixture}]"))
    )
}

/// Stage 1 applies `name` instead of the tutorial's ServiceEntry.
fn apply_instead(ws: &Workspace, name: &str) -> Result<PathBuf, Failed> {
    ws.edit(
        SUITE,
        "apply: [01-serviceentry-cnn.yaml]",
        &format!("apply: [{name}]"),
    )?;
    Ok(ws.suite())
}

/// Stage 1's fixture replaced by `text`.
fn fixture_01(ws: &Workspace, text: &[u8]) -> Result<PathBuf, Failed> {
    std::fs::write(ws.path(&fixture_path("01-serviceentry-cnn.yaml")), text)
        .map_err(|e| e.to_string())?;
    Ok(ws.suite())
}

const FIXTURE_01: &str = "01-serviceentry-cnn.yaml";

/// `fixture`, as edited, is refused by Istio's validation with `message` at the line of
/// `marker` (its first line) and `column`; on the kind backend too, before any cluster is asked.
fn istio_refuses(
    ws: &Workspace,
    fixture: &str,
    marker: &str,
    column: usize,
    message: &str,
) -> Result<Case, Failed> {
    let first = marker.split('\n').next().unwrap_or(marker);
    let text =
        std::fs::read_to_string(ws.path(&fixture_path(fixture))).map_err(|e| e.to_string())?;
    let at = text
        .find(marker)
        .ok_or_else(|| format!("{fixture} has no {marker:?}"))?;
    let line = text[..at].matches('\n').count() + 1 + first.matches('\n').count();
    let apply = format!("apply: [{fixture}]");
    let wanted = [
        format!(
            "egress-gateway-tls-origination.yaml:{}: in fixture: ",
            ws.line_of(SUITE, &apply)
        ),
        format!("{fixture}:{line}:{column}: {message}"),
    ];
    // The kind backend refuses it the same way, before it looks for the cluster.
    let on_kind = run_binary()?
        .args(["--backend", "kind", "--context", "no-such-context"])
        .arg(ws.suite())
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&on_kind.stderr);
    if on_kind.status.code() != Some(2)
        || stderr.contains("no-such-context")
        || !wanted.iter().all(|w| stderr.contains(w.as_str()))
    {
        return Err(format!("kind: exit {:?}: {stderr}", on_kind.status.code()).into());
    }
    Ok(Case::suite(ws.suite()).wants(wanted))
}

/// The suite's `politics` command replaced by `command`, refused at `word` (its line and
/// column) for `reason`.
fn command_instead(
    ws: &Workspace,
    command: &str,
    word: &str,
    reason: &str,
) -> Result<Case, Failed> {
    let tutorial = "politics: curl -sL -o /dev/null -D - http://edition.cnn.com/politics";
    ws.edit(SUITE, tutorial, &format!("politics: {command}"))?;
    let line = ws.line_of(SUITE, &format!("politics: {command}"));
    let text = std::fs::read_to_string(ws.suite()).map_err(|e| e.to_string())?;
    let column = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.find(&format!(" {word}")).map(|i| i + 2))
        .or_else(|| text.lines().nth(line - 1)?.find(word).map(|i| i + 1))
        .ok_or("the word is not on its line")?;
    Ok(Case::suite(ws.suite()).wants([
        format!(
            "egress-gateway-tls-origination.yaml:{line}:{column}: commands.politics: `{word}`: "
        ),
        reason.to_string(),
    ]))
}

pub fn trials() -> Vec<Trial> {
    type Edit = fn(&Workspace) -> Result<Case, Failed>;
    let cases: Vec<(&'static str, Edit)> = vec![
        ("malformed-yaml", |ws| {
            ws.edit(&fixture_path(FIXTURE_01), "  hosts:\n", "  hosts: [\n")?;
            Ok(Case::suite(ws.suite()).wants([
                apply_line(ws, FIXTURE_01),
                "01-serviceentry-cnn.yaml:7:3: malformed YAML".into(),
            ]))
        }),
        ("unknown-kind", |ws| {
            ws.edit(
                &fixture_path("02-gateway-istio-egressgateway.yaml"),
                "kind: Gateway",
                "kind: Gateway2",
            )?;
            Ok(Case::suite(ws.suite()).wants([
                "02-gateway-istio-egressgateway.yaml:2:".into(),
                "unknown kind `Gateway2`".into(),
            ]))
        }),
        ("unknown-field", |ws| {
            ws.edit(
                &fixture_path(FIXTURE_01),
                "  resolution: DNS",
                "  resolution: DNS\n  hostz: [a]",
            )?;
            Ok(Case::suite(ws.suite()).wants([
                "01-serviceentry-cnn.yaml:16:3:".into(),
                "unknown field `hostz` at spec.hostz".into(),
            ]))
        }),
        ("invalid-enum", |ws| {
            ws.edit(
                &fixture_path("04-destinationrule-originate-tls.yaml"),
                "mode: SIMPLE",
                "mode: SIMPEL",
            )?;
            Ok(Case::suite(ws.suite()).wants([
                "04-destinationrule-originate-tls.yaml:14:15:".into(),
                "invalid value `SIMPEL` at spec.trafficPolicy.portLevelSettings[0].tls.mode".into(),
                "DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL".into(),
            ]))
        }),
        ("unsupported-feature", |ws| {
            ws.edit(
                &fixture_path("03-destinationrule-virtualservice-through-egress-gateway.yaml"),
                "  - match:\n    - gateways:\n      - mesh",
                "  - retries:\n      attempts: 3\n    match:\n    - gateways:\n      - mesh",
            )?;
            Ok(Case::suite(ws.suite()).wants([
                "03-destinationrule-virtualservice-through-egress-gateway.yaml:21:".into(),
                "the builtin control plane cannot translate this".into(),
                "spec.http[0].retries".into(),
                "--backend kind".into(),
            ]))
        }),
        ("unknown-suite-field", |ws| {
            ws.edit(
                SUITE,
                "    apply: [01-serviceentry-cnn.yaml]",
                "    aply: [01-serviceentry-cnn.yaml]",
            )?;
            Ok(Case::suite(ws.suite()).wants([
                format!(
                    "egress-gateway-tls-origination.yaml:{}:",
                    ws.line_of(SUITE, "aply: [01-serviceentry-cnn.yaml]")
                ),
                "aply".into(),
            ]))
        }),
        ("missing-fixture", |ws| {
            std::fs::remove_file(ws.path(&fixture_path("02-gateway-istio-egressgateway.yaml")))
                .map_err(|e| e.to_string())?;
            Ok(Case::suite(ws.suite()).wants([
                apply_line(ws, "02-gateway-istio-egressgateway.yaml"),
                "02-gateway-istio-egressgateway.yaml: does not exist".into(),
            ]))
        }),
        ("missing-suite", |ws| {
            Ok(Case::suite(ws.path("suites/no-such-suite.yaml")).wants([
                "cannot read suite".into(),
                "no-such-suite.yaml: does not exist".into(),
            ]))
        }),
        ("suite-is-a-directory", |ws| {
            std::fs::create_dir(ws.path("suites/dir.yaml")).map_err(|e| e.to_string())?;
            Ok(Case::suite(ws.path("suites/dir.yaml"))
                .wants(["suites/dir.yaml: is a directory, not a file".into()]))
        }),
        ("delete-of-nothing", |ws| {
            ws.edit(
                &fixture_path("05-cleanup.sh"),
                "kubectl delete serviceentry cnn",
                "kubectl delete serviceentry cnn2",
            )?;
            Ok(Case::suite(ws.suite()).wants([
                "05-cleanup.sh:2:".into(),
                "stage cleanup: kubectl delete serviceentry cnn2".into(),
                "does not exist at that point".into(),
            ]))
        }),
        // Confinement: a suite reads only its own fixtures.
        ("fixture-absolute-path", |ws| {
            let suite = apply_instead(ws, "/etc/passwd")?;
            Ok(Case::suite(suite)
                .wants([
                    apply_line(ws, "/etc/passwd"),
                    "fixture path \"/etc/passwd\" is absolute".into(),
                ])
                .refuses_to_say("root:"))
        }),
        ("fixture-parent-dir", |ws| {
            std::fs::write(ws.path("outside.yaml"), "kind: Secret\n").map_err(|e| e.to_string())?;
            let suite = apply_instead(ws, "../../outside.yaml")?;
            Ok(Case::suite(suite).wants([
                apply_line(ws, "../../outside.yaml"),
                "fixture path \"../../outside.yaml\" contains `..`".into(),
            ]))
        }),
        ("fixture-symlink-out", |ws| {
            let outside = ws.path("outside.yaml");
            std::fs::copy(ws.path(&fixture_path(FIXTURE_01)), &outside)
                .map_err(|e| e.to_string())?;
            std::os::unix::fs::symlink(&outside, ws.path(&fixture_path("linked.yaml")))
                .map_err(|e| e.to_string())?;
            let suite = apply_instead(ws, "linked.yaml")?;
            Ok(Case::suite(suite).wants([
                apply_line(ws, "linked.yaml"),
                "fixture \"linked.yaml\" resolves (through a symlink) to".into(),
                "outside the fixtures directory".into(),
            ]))
        }),
        ("fixtures-dir-outside-repository", |ws| {
            ws.edit(
                SUITE,
                "fixtures: ../fixtures/egress-gateway-tls-origination",
                "fixtures: /etc",
            )?;
            Ok(Case::suite(ws.suite()).wants([
                "egress-gateway-tls-origination.yaml:6: fixtures: /etc resolves to /etc, outside the suite's repository".into(),
                "--allow-fixtures-outside-repo".into(),
            ]))
        }),
        ("delete-file-absolute-path", |ws| {
            ws.edit(
                SUITE,
                "delete_file: 05-cleanup.sh",
                "delete_file: /etc/hostname",
            )?;
            Ok(Case::suite(ws.suite()).wants([
                format!(
                    "egress-gateway-tls-origination.yaml:{}:",
                    ws.line_of(SUITE, "delete_file:")
                ),
                "fixture path \"/etc/hostname\" is absolute".into(),
            ]))
        }),
        // What kubectl refuses, and files that are no manifest.
        ("empty-fixture", |ws| {
            let suite = fixture_01(ws, b"")?;
            Ok(Case::suite(suite).wants([
                apply_line(ws, FIXTURE_01),
                "01-serviceentry-cnn.yaml:1: no objects passed to apply".into(),
            ]))
        }),
        ("comment-only-fixture", |ws| {
            let suite = fixture_01(ws, b"# nothing to apply\n---\n# still nothing\n")?;
            Ok(Case::suite(suite).wants([
                apply_line(ws, FIXTURE_01),
                "01-serviceentry-cnn.yaml:1: no objects passed to apply".into(),
            ]))
        }),
        ("fixture-is-a-directory", |ws| {
            std::fs::create_dir(ws.path(&fixture_path("dir.yaml"))).map_err(|e| e.to_string())?;
            let suite = apply_instead(ws, "dir.yaml")?;
            Ok(Case::suite(suite).wants([
                apply_line(ws, "dir.yaml"),
                "dir.yaml: is a directory, not a file".into(),
            ]))
        }),
        ("fixture-is-a-fifo", |ws| {
            let fifo = std::ffi::CString::new(
                ws.path(&fixture_path("pipe.yaml"))
                    .to_string_lossy()
                    .as_bytes(),
            )
            .map_err(|e| e.to_string())?;
            // SAFETY: mkfifo(3) with a NUL-terminated path.
            if unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) } != 0 {
                return Err("mkfifo failed".into());
            }
            let suite = apply_instead(ws, "pipe.yaml")?;
            Ok(Case::suite(suite).wants([
                apply_line(ws, "pipe.yaml"),
                "pipe.yaml: is a FIFO (named pipe), not a file".into(),
            ]))
        }),
        ("fixture-not-utf8", |ws| {
            let suite = fixture_01(
                ws,
                b"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: cnn\xff\n",
            )?;
            Ok(Case::suite(suite).wants([
                apply_line(ws, FIXTURE_01),
                "01-serviceentry-cnn.yaml:4:12: not UTF-8 text: byte 0xff".into(),
            ]))
        }),
        ("duplicate-key", |ws| {
            ws.edit(
                &fixture_path(FIXTURE_01),
                "  resolution: DNS",
                "  resolution: DNS\n  resolution: STATIC",
            )?;
            Ok(Case::suite(ws.suite())
                .wants([
                    apply_line(ws, FIXTURE_01),
                    "01-serviceentry-cnn.yaml:16:3: duplicate key `resolution`".into(),
                    "(first at line 15)".into(),
                ])
                .refuses_to_say("DuplicateKeyPolicy"))
        }),
        ("duplicate-key-in-suite", |ws| {
            ws.edit(
                SUITE,
                "namespace: default",
                "namespace: default\nnamespace: other",
            )?;
            Ok(Case::suite(ws.suite())
                .wants([
                    "egress-gateway-tls-origination.yaml:8:1: duplicate key `namespace`".into(),
                ])
                .refuses_to_say("DuplicateKeyPolicy"))
        }),
        // Istio's validation, on every backend, before anything starts.
        ("istio-duplicate-port-name", |ws| {
            ws.edit(
                &fixture_path(FIXTURE_01),
                "name: http-port-for-tls-origination",
                "name: http-port",
            )?;
            istio_refuses(
                ws,
                FIXTURE_01,
                "name: http-port\n    protocol: HTTP\n  resolution",
                5,
                "ServiceEntry cnn: spec.ports[1].name: service entry port name \"http-port\" already defined",
            )
        }),
        ("istio-duplicate-port-number", |ws| {
            ws.edit(&fixture_path(FIXTURE_01), "number: 443", "number: 80")?;
            istio_refuses(
                ws,
                FIXTURE_01,
                "number: 80\n    name: http-port-for",
                5,
                "ServiceEntry cnn: spec.ports[1].number: service entry port 80 already defined",
            )
        }),
        ("istio-port-policy-without-port", |ws| {
            let fixture = "04-destinationrule-originate-tls.yaml";
            ws.edit(
                &fixture_path(fixture),
                "    - port:\n        number: 443\n      tls:",
                "    - tls:",
            )?;
            istio_refuses(
                ws,
                fixture,
                "- tls:",
                7,
                "DestinationRule originate-tls-for-edition-cnn-com: spec.trafficPolicy.portLevelSettings[0].port: portTrafficPolicy must have valid port",
            )
        }),
        ("istio-gateway-port-without-name", |ws| {
            let fixture = "02-gateway-istio-egressgateway.yaml";
            ws.edit(
                &fixture_path(fixture),
                "      name: http-port-for-tls-origination\n",
                "",
            )?;
            istio_refuses(
                ws,
                fixture,
                "- port:",
                5,
                "Gateway istio-egressgateway: spec.servers[0].port.name: port name must be set: number:443  protocol:\"HTTP\"",
            )
        }),
        ("istio-total-weight-zero", |ws| {
            let fixture = "03-destinationrule-virtualservice-through-egress-gateway.yaml";
            ws.edit(
                &fixture_path(fixture),
                "        port:\n          number: 443\n      weight: 100\n  - match:",
                "        port:\n          number: 443\n      weight: 0\n    - destination:\n        host: edition.cnn.com\n      weight: 0\n  - match:",
            )?;
            istio_refuses(
                ws,
                fixture,
                "    route:",
                5,
                "VirtualService direct-cnn-through-egress-gateway: spec.http[0].route: total destination weight = 0",
            )
        }),
        // Commands: a whitelist of curl, named at the refused word.
        ("command-writes-a-file", |ws| {
            command_instead(
                ws,
                "curl -s -o /tmp/x http://edition.cnn.com/politics",
                "/tmp/x",
                "may write only to standard output",
            )
        }),
        ("command-file-url", |ws| {
            command_instead(
                ws,
                "curl -s file:///etc/hostname",
                "file:///etc/hostname",
                "http:// and https:// URLs only",
            )
        }),
        ("command-output-and-file-url", |ws| {
            command_instead(
                ws,
                "curl -o /tmp/y file:///etc/hostname",
                "/tmp/y",
                "never a file",
            )
        }),
        ("command-semicolon", |ws| {
            command_instead(
                ws,
                "curl -s http://edition.cnn.com/politics; id",
                "http://edition.cnn.com/politics;",
                "shell syntax (`;` ends a command)",
            )
        }),
        ("command-substitution", |ws| {
            command_instead(
                ws,
                "curl -s $(id) http://edition.cnn.com/politics",
                "$(id)",
                "shell syntax (`$` expands",
            )
        }),
        ("command-backticks", |ws| {
            command_instead(
                ws,
                "curl -s `id` http://edition.cnn.com/politics",
                "`id`",
                "shell syntax (a backtick runs a command)",
            )
        }),
        ("command-not-curl", |ws| {
            command_instead(ws, "ls -la", "ls", "only curl commands are supported")
        }),
    ];
    cases
        .into_iter()
        .map(|(name, case)| {
            Trial::test(format!("bad_input::{name}"), move || {
                let ws = Workspace::new()?;
                let case = case(&ws)?;
                refused(&ws, case)
            })
        })
        .collect()
}

/// What Istio accepts with a warning is printed as kubectl prints it, and the run goes on (here
/// to the missing Envoy).
pub fn istio_warnings_are_printed() -> Result<(), Failed> {
    let ws = Workspace::new()?;
    let fixture = "03-destinationrule-virtualservice-through-egress-gateway.yaml";
    ws.edit(
        &fixture_path(fixture),
        "  gateways:\n  - istio-egressgateway\n  - mesh",
        "  gateways:\n  - istio-egressgateway.istio-system\n  - mesh",
    )?;
    let line = ws.line_of(&fixture_path(fixture), "- istio-egressgateway.istio-system");
    let output = binary()
        .arg("run")
        .arg(ws.suite())
        .env("ENVOY_BIN", "/nonexistent/envoy")
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let wanted = format!(
        "/{fixture}:{line}:5: VirtualService direct-cnn-through-egress-gateway: spec.gateways[0]: using legacy gatewayName format \"istio-egressgateway.istio-system\"; prefer the <namespace>/<name> format: \"istio-system/istio-egressgateway\"",
    );
    if output.status.code() != Some(2)
        || !stderr.starts_with("warning: ")
        || !stderr.contains(&wanted)
        || !stderr.contains("ENVOY_BIN points to /nonexistent/envoy")
    {
        return Err(format!(
            "exit {:?}, wanted {wanted:?} then the Envoy error: {stderr}",
            output.status.code()
        )
        .into());
    }
    Ok(())
}

/// `--allow-fixtures-outside-repo` lets a suite read fixtures from elsewhere, still only from
/// that directory: the run gets past loading (and stops on the missing Envoy, exit 2).
pub fn fixtures_outside_repo_when_allowed() -> Result<(), Failed> {
    let ws = Workspace::new()?;
    let elsewhere = tempfile::tempdir().map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(ws.path(FIXTURES)).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        std::fs::copy(entry.path(), elsewhere.path().join(entry.file_name()))
            .map_err(|e| e.to_string())?;
    }
    ws.edit(
        SUITE,
        "fixtures: ../fixtures/egress-gateway-tls-origination",
        &format!("fixtures: {}", elsewhere.path().display()),
    )?;
    let refused_without = run_binary()?
        .arg(ws.suite())
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&refused_without.stderr);
    if refused_without.status.code() != Some(2) || !stderr.contains("--allow-fixtures-outside-repo")
    {
        return Err(format!("without the flag: {stderr}").into());
    }
    let allowed = binary()
        .args(["run", "--allow-fixtures-outside-repo"])
        .arg(ws.suite())
        .env("ENVOY_BIN", "/nonexistent/envoy")
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&allowed.stderr);
    if allowed.status.code() != Some(2)
        || !stderr.contains("ENVOY_BIN points to /nonexistent/envoy")
    {
        return Err(format!(
            "with the flag the suite should load and the run stop on Envoy: exit {:?}, {stderr}",
            allowed.status.code()
        )
        .into());
    }
    Ok(())
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

/// Seeded mutations of the corpus's manifests and of the tutorial suite, through the binary:
/// every exit is 0, 1 or 2 and nothing panics (the in-process fuzz test, `src/fuzz.rs`, runs
/// many more cases and more kinds of mutation; this one shows the exit codes). Manifests go to
/// `validate` all at once; suites to `run` with no Envoy, so that a suite the loader takes stops
/// at the missing Envoy (exit 2) and nothing starts.
pub fn fuzzed_input_exits_0_1_or_2() -> Result<(), Failed> {
    const AWKWARD: &[&str] = &[
        "",
        "~",
        "[]",
        "{}",
        "-1",
        "0",
        "65536",
        "'",
        "\"",
        "*",
        "../..",
        "/etc/passwd",
        "&a",
        "*a",
        "---",
        ": ",
        "- ",
        "\t",
        "\u{0}",
        "\u{ff}",
    ];
    fn mutate(rng: &mut fastrand::Rng, mut bytes: Vec<u8>) -> Vec<u8> {
        for _ in 0..rng.usize(1..=3) {
            let at = rng.usize(..=bytes.len());
            match rng.u8(..4) {
                0 => bytes.truncate(at),
                1 => {
                    let end = (at + rng.usize(1..=12)).min(bytes.len());
                    bytes.drain(at..end);
                }
                2 => {
                    let value = AWKWARD[rng.usize(..AWKWARD.len())].as_bytes();
                    bytes.splice(at..at, value.iter().copied());
                }
                _ => bytes.insert(at, [0xff, b'\n', b' ', b':'][rng.usize(..4)]),
            }
        }
        bytes
    }
    let mut rng = fastrand::Rng::with_seed(11);
    let corpus = crate::harness::root().join("tests/validation-corpus/manifests");
    let mut seeds: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    seeds.sort();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut files = Vec::new();
    for i in 0..300 {
        let seed = &seeds[rng.usize(..seeds.len())];
        let bytes = std::fs::read(seed).map_err(|e| e.to_string())?;
        let file = dir.path().join(format!("{i:03}.yaml"));
        std::fs::write(&file, mutate(&mut rng, bytes)).map_err(|e| e.to_string())?;
        files.push(file);
    }
    let output = binary()
        .args(["validate", "--json"])
        .args(&files)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !matches!(output.status.code(), Some(0 | 2))
        || stdout.lines().count() != files.len()
        || stderr.contains("panicked")
    {
        return Err(format!(
            "validate on {} mutated manifests: exit {:?}, {} verdicts; stderr: {stderr}",
            files.len(),
            output.status.code(),
            stdout.lines().count()
        )
        .into());
    }
    let ws = Workspace::new()?;
    let mutable: Vec<String> = std::iter::once(SUITE.to_string())
        .chain(
            std::fs::read_dir(ws.path(FIXTURES))
                .map_err(|e| e.to_string())?
                .filter_map(|e| e.ok())
                .map(|e| format!("{FIXTURES}/{}", e.file_name().to_string_lossy())),
        )
        .collect();
    for case in 0..40 {
        let which = &mutable[rng.usize(..mutable.len())];
        let path = ws.path(which);
        let original = std::fs::read(&path).map_err(|e| e.to_string())?;
        std::fs::write(&path, mutate(&mut rng, original.clone())).map_err(|e| e.to_string())?;
        let output = binary()
            .arg("run")
            .arg(ws.suite())
            .env("ENVOY_BIN", "/nonexistent/envoy")
            .output()
            .map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.code() != Some(2)
            || !output.stdout.is_empty()
            || stderr.contains("panicked")
        {
            return Err(format!(
                "case {case}, {which} mutated: exit {:?}, stdout {:?}; stderr: {stderr}\n--- {which} ---\n{}",
                output.status.code(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default())
            )
            .into());
        }
        std::fs::write(&path, original).map_err(|e| e.to_string())?;
    }
    Ok(())
}
