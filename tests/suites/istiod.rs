//! The suites against real istiod, and `compare`: the same runs as on the builtin control plane
//! (passing, failing on a broken fixture, refusing bad input before istiod starts, leaving
//! nothing behind when interrupted, two at once), for every supported Istio release.
//!
//! istiod and its paired Envoy come from `egress-conformance setup --control-plane istiod`, once
//! per release, which builds istiod with Go the first time (minutes; its progress is shown) and
//! installs the Envoy. With `EGRESS_CONFORMANCE_NO_ISTIOD_BUILD=1` nothing is built
//! (`--no-build`). Where istiod cannot be had (no Go, a failed build), the trials are ignored with
//! setup's words as the reason.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use libtest_mimic::{Completion, Failed, Trial};

use crate::failing::check_fails_with;
use crate::harness::{
    FIXTURES, Replay, Running, SUITE, Workspace, binary, children_named, envoy_run_dir, gone, root,
};

/// The releases the trials run, newest first (the harness's supported ones).
pub const RELEASES: [&str; 2] = ["1.31", "1.30"];

/// One release's binaries, as setup found them.
#[derive(Clone, Debug)]
pub struct IstiodTools {
    pub release: &'static str,
    pub envoy: PathBuf,
    pub pilot_discovery: PathBuf,
}

/// The variable that turns the build of istiod off for the tests.
const NO_BUILD: &str = "EGRESS_CONFORMANCE_NO_ISTIOD_BUILD";

/// `setup --control-plane istiod --istio-version <release>`, once per release (one at a time:
/// a Go build takes every core); the error is the reason to ignore the trials.
pub fn tools(release: &'static str) -> Result<IstiodTools, String> {
    static FOUND: OnceLock<Mutex<BTreeMap<&'static str, Result<IstiodTools, String>>>> =
        OnceLock::new();
    let found = FOUND.get_or_init(Mutex::default);
    let mut found = found.lock().unwrap_or_else(|e| e.into_inner());
    found
        .entry(release)
        .or_insert_with(|| {
            let mut setup = binary();
            setup.args([
                "setup",
                "--control-plane",
                "istiod",
                "--istio-version",
                release,
            ]);
            if std::env::var_os(NO_BUILD).is_some_and(|v| !v.is_empty()) {
                setup.arg("--no-build");
            }
            let mut child = setup
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("running setup: {e}"))?;
            // Its progress as it comes: the first build takes minutes.
            let stderr = child.stderr.take().map(BufReader::new);
            let mut said = Vec::new();
            for line in stderr
                .into_iter()
                .flat_map(|r| r.lines().map_while(Result::ok))
            {
                eprintln!("  [setup istiod {release}] {line}");
                said.push(line);
            }
            let output = child
                .wait_with_output()
                .map_err(|e| format!("running setup: {e}"))?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            if !output.status.success() {
                let from = said
                    .iter()
                    .position(|l| l.starts_with("error:"))
                    .unwrap_or(0);
                return Err(format!(
                    "istiod {release} cannot be had here: {}",
                    said[from..].join(" ")
                ));
            }
            let path_of = |tool: &str| {
                stdout
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{tool} ")))
                    .and_then(|rest| rest.split_once(' '))
                    .map(|(_, path)| PathBuf::from(path))
                    .ok_or_else(|| format!("setup printed no {tool}: {stdout}"))
            };
            Ok(IstiodTools {
                release,
                envoy: path_of("envoy")?,
                pilot_discovery: path_of("pilot-discovery")?,
            })
        })
        .clone()
}

impl IstiodTools {
    /// `egress-conformance <subcommand> --control-plane istiod …` with these binaries.
    fn command(&self, subcommand: &str) -> Command {
        let mut command = binary();
        command
            .arg(subcommand)
            .env("ENVOY_BIN", &self.envoy)
            .env("PILOT_DISCOVERY_BIN", &self.pilot_discovery)
            .args(["--istio-version", self.release]);
        if !matches!(subcommand, "compare" | "validate") {
            command.args(["--control-plane", "istiod"]);
        }
        command
    }

    fn replay(&self, args: &[&std::ffi::OsStr]) -> Result<Replay, Failed> {
        let output = self
            .command("run")
            .args(args)
            .arg("-v")
            .output()
            .map_err(|e| e.to_string())?;
        Ok(Replay {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// A trial that needs istiod `release`: ignored with the reason when it is not set up.
fn with_istiod(
    name: String,
    release: &'static str,
    test: impl FnOnce(IstiodTools) -> Result<(), Failed> + Send + 'static,
) -> Trial {
    Trial::ignorable_test(name, move || match tools(release) {
        Ok(tools) => test(tools).map(|()| Completion::Completed),
        Err(reason) => Ok(Completion::ignored_with(reason)),
    })
}

pub fn trials(suites: &[PathBuf]) -> Vec<Trial> {
    let newest = RELEASES[0];
    let mut trials = Vec::new();
    for release in RELEASES {
        for suite in suites {
            let name = stem(suite);
            let suite = suite.clone();
            trials.push(with_istiod(
                format!("istiod-{release}::{name}"),
                release,
                move |t| passes(&t, &suite),
            ));
        }
    }
    for suite in suites {
        let suite = suite.clone();
        trials.push(with_istiod(
            format!("compare::{}", stem(&suite)),
            newest,
            move |t| compares_clean(&t, &suite),
        ));
    }
    trials.push(with_istiod(
        "compare::an_unlisted_difference_fails".into(),
        newest,
        unlisted_difference_fails,
    ));
    trials.push(with_istiod(
        "istiod::two_runs_at_once".into(),
        newest,
        two_runs_at_once,
    ));
    for release in RELEASES {
        trials.push(with_istiod(
            format!("istiod-{release}::fails::tls_mode_disable"),
            release,
            tls_disabled,
        ));
    }
    trials.push(with_istiod(
        "istiod::bad_input::refused_before_istiod_starts".into(),
        newest,
        refused_before_istiod_starts,
    ));
    trials.push(with_istiod(
        "istiod::validate_in_istiods_words".into(),
        newest,
        validate_in_istiods_words,
    ));
    trials.push(with_istiod(
        "istiod::validation_corpus_same_verdicts".into(),
        newest,
        validation_corpus_same_verdicts,
    ));
    trials.push(with_istiod(
        "istiod::cleanup::interrupted_run".into(),
        newest,
        interrupted_run,
    ));
    trials
}

fn stem(suite: &std::path::Path) -> String {
    suite
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn passes(tools: &IstiodTools, suite: &std::path::Path) -> Result<(), Failed> {
    let run = tools.replay(&[suite.as_os_str()])?;
    let header = format!("istiod {}", tools.release);
    if !run.stdout.contains(&header) {
        return Err(format!("the run does not say it used {header}:\n{}", run.describe()).into());
    }
    if run.passed() {
        Ok(())
    } else {
        Err(format!(
            "{} failed with istiod {}:\n  {}\n\n{}",
            suite.display(),
            tools.release,
            run.failures().join("\n  "),
            run.describe()
        )
        .into())
    }
}

/// Two istiod runs at once: separate ports, directories, istiods; both pass.
fn two_runs_at_once(tools: IstiodTools) -> Result<(), Failed> {
    let suite = root().join(SUITE);
    let (a, b) = (tools.clone(), suite.clone());
    let first = std::thread::spawn(move || passes(&a, &b));
    let second = passes(&tools, &suite);
    let first = first.join().map_err(|_| "the first run panicked")?;
    first.and(second)
}

/// The last DestinationRule with `tls.mode: DISABLE`: with istiod too, stage 4 gets the origin's
/// 400 instead of the page.
fn tls_disabled(tools: IstiodTools) -> Result<(), Failed> {
    let ws = Workspace::new()?;
    ws.edit(
        &format!("{FIXTURES}/04-destinationrule-originate-tls.yaml"),
        "mode: SIMPLE",
        "mode: DISABLE",
    )?;
    let run = tools.replay(&[ws.suite().as_os_str()])?;
    check_fails_with(
        &run,
        &[
            "stage originate-tls: politics: status lines: expected [HTTP/1.1 200 OK], got [HTTP/1.1 400 Bad Request]",
            "politics: requests that reached the origin: expected [{host=edition.cnn.com path=/politics tls=true sni=edition.cnn.com status=200}], got [{host=edition.cnn.com path=/politics tls=false sni=none status=400}]",
        ],
    )
}

/// `mode: SIMPEL`: exit 2 naming file, line and field, and istiod never starts.
fn refused_before_istiod_starts(tools: IstiodTools) -> Result<(), Failed> {
    let ws = Workspace::new()?;
    let fixture = format!("{FIXTURES}/04-destinationrule-originate-tls.yaml");
    ws.edit(&fixture, "mode: SIMPLE", "mode: SIMPEL")?;
    let line = ws.line_of(&fixture, "SIMPEL");
    let run = tools.replay(&[ws.suite().as_os_str()])?;
    let all = format!("{}{}", run.stdout, run.stderr);
    let wanted = format!("04-destinationrule-originate-tls.yaml:{line}:");
    if run.code != Some(2)
        || !all.contains(&wanted)
        || !all.contains("spec.trafficPolicy.portLevelSettings[0].tls.mode")
    {
        return Err(format!(
            "expected exit 2 naming {wanted} and the field\n{}",
            run.describe()
        )
        .into());
    }
    if all.contains("starting istiod") {
        return Err(format!(
            "istiod was started for a suite refused at load\n{}",
            run.describe()
        )
        .into());
    }
    Ok(())
}

/// `validate --istiod`: istiod's own verdict beside the harness's, in istiod's words; exit 2 when
/// it rejects, 0 when it accepts.
fn validate_in_istiods_words(tools: IstiodTools) -> Result<(), Failed> {
    let ws = Workspace::new()?;
    let good = ws.path(&format!("{FIXTURES}/01-serviceentry-cnn.yaml"));
    let bad = ws.path("duplicate-port-names.yaml");
    let text = std::fs::read_to_string(&good).map_err(|e| e.to_string())?;
    let ports = text.matches("name: ").count();
    let renamed = text
        .replace("name: http-port-for-tls-origination", "name: http-port")
        .replace("name: https-port", "name: http-port");
    if ports < 2 || renamed == text {
        return Err(format!(
            "cannot make duplicate port names out of {}:\n{text}",
            good.display()
        )
        .into());
    }
    std::fs::write(&bad, renamed).map_err(|e| e.to_string())?;
    let judge = |file: &PathBuf| {
        tools
            .command("validate")
            .arg("--istiod")
            .arg(file)
            .output()
            .map_err(|e| e.to_string())
    };
    let rejected = judge(&bad)?;
    let stdout = String::from_utf8_lossy(&rejected.stdout);
    let istiod_line = format!(
        "istiod {}: rejected: service entry port name",
        tools.release
    );
    if rejected.status.code() != Some(2)
        || !stdout.contains(&istiod_line)
        || !stdout.contains("already defined")
    {
        return Err(format!(
            "expected exit 2 and istiod's words ({istiod_line}…), got {:?}:\n{stdout}",
            rejected.status.code()
        )
        .into());
    }
    let accepted = judge(&good)?;
    let stdout = String::from_utf8_lossy(&accepted.stdout);
    if accepted.status.code() != Some(0)
        || !stdout.contains(&format!("istiod {}: accepted", tools.release))
    {
        return Err(format!(
            "expected the tutorial's ServiceEntry accepted, got {:?}:\n{stdout}",
            accepted.status.code()
        )
        .into());
    }
    Ok(())
}

/// The validation corpus (`tests/validation-corpus/`) through the harness and one headless
/// istiod at once (`validate --istiod --json`): each manifest gets the same verdict from both,
/// and where istiod refuses by Istio's rules, the same words as the harness's Istio words (istiod
/// logs only the first line of a multi-line error, and trims it). Where the two legitimately
/// differ, or istiod is never given the object because it does not fit Istio's messages, the
/// entry says so with its reason (`istiod_<release>`); a reason no longer borne out fails too.
fn validation_corpus_same_verdicts(tools: IstiodTools) -> Result<(), Failed> {
    use serde_json::Value;
    let corpus = root().join("tests/validation-corpus");
    let index = corpus.join("index.json");
    let text = std::fs::read_to_string(&index).map_err(|e| format!("{}: {e}", index.display()))?;
    let entries: Vec<Value> =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", index.display()))?;
    let files: Vec<PathBuf> = entries
        .iter()
        .map(|e| corpus.join(e["file"].as_str().unwrap_or_default()))
        .collect();
    let output = tools
        .command("validate")
        .args(["--istiod", "--json"])
        .args(&files)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Exit 2: the corpus is mostly refused.
    if output.status.code() != Some(2) {
        return Err(format!(
            "validate exited {:?}, expected 2:\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let judged: Vec<Value> = stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("validate --json printed a line that is not JSON: {e}\n{stdout}"))?;
    if judged.len() != entries.len() {
        return Err(format!(
            "{} verdicts for {} manifests:\n{stdout}",
            judged.len(),
            entries.len()
        )
        .into());
    }
    let override_key = format!("istiod_{}", tools.release.replace('.', "_"));
    let first_line = |s: &str| s.lines().next().unwrap_or_default().trim_end().to_string();
    let normal = |s: &str| s.trim_end().replace("  ", " ");
    let (mut same, mut in_istiods_words, mut explained, mut problems) = (0, 0, 0, Vec::new());
    for ((entry, file), got) in entries.iter().zip(&files).zip(&judged) {
        let id = entry["id"].as_str().unwrap_or_default();
        let (harness, istiod) = (&got["harness"], &got["istiod"]);
        if got["file"].as_str().map(PathBuf::from).as_ref() != Some(file) {
            problems.push(format!("{id}: the verdict is for {}", got["file"]));
            continue;
        }
        if harness["verdict"] != entry["harness"] {
            problems.push(format!(
                "{id}: the harness says {}, the corpus {}",
                harness["verdict"], entry["harness"]
            ));
        }
        // What istiod must say: the harness's verdict, refused by Istio's rules where the
        // harness refuses by them and before istiod (not fitting Istio's messages) where the
        // harness's decoding refuses; unless the entry says otherwise, and why.
        let declared = entry.get(&override_key);
        let (want, want_by) = match declared {
            Some(d) => (
                d["verdict"].clone(),
                d.get("by").cloned().unwrap_or(Value::Null),
            ),
            None => (
                entry["harness"].clone(),
                match entry["refused_by"].as_str() {
                    Some("istio") => Value::from("istio"),
                    Some("decoding") => Value::from("decoding"),
                    Some(other) => Value::from(other),
                    None => Value::Null,
                },
            ),
        };
        let by = istiod.get("by").cloned().unwrap_or(Value::Null);
        if istiod["verdict"] != want || by != want_by {
            problems.push(format!(
                "{id}: istiod {} {} (by {by}: {}), expected {want} (by {want_by}){}",
                tools.release,
                istiod["verdict"],
                istiod["message"]
                    .as_str()
                    .map(first_line)
                    .unwrap_or_default(),
                declared.map_or(String::new(), |d| format!(
                    "; the corpus says: {}",
                    d["why"]
                )),
            ));
            continue;
        }
        match declared {
            Some(d) if d["why"].as_str().is_none_or(str::is_empty) => {
                problems.push(format!("{id}: {override_key} gives no reason"));
            }
            Some(_) => explained += 1,
            None => same += 1,
        }
        if by == "istio" {
            let words = istiod["message"].as_str().unwrap_or_default();
            let istio = harness["istio"].as_str().unwrap_or_default();
            if normal(words) == normal(istio)
                || (istio.contains('\n') && normal(words) == normal(&first_line(istio)))
            {
                in_istiods_words += 1;
            } else {
                problems.push(format!(
                    "{id}: istiod's words {words:?}, the harness's Istio words {istio:?}"
                ));
            }
        }
    }
    eprintln!(
        "  [istiod {}] {} manifests: {same} with the same verdict from both ({in_istiods_words} refused by istiod's validation in the harness's words), {explained} where the corpus says why they differ or istiod is not given them",
        tools.release,
        entries.len()
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} manifests:\n{}",
            problems.len(),
            entries.len(),
            problems.join("\n")
        )
        .into())
    }
}

/// Ctrl-C in the middle of an istiod run: istiod, both Envoys and the run directory are gone.
fn interrupted_run(tools: IstiodTools) -> Result<(), Failed> {
    let mut child = Running::spawn(tools.command("run").arg(root().join(SUITE)))?;
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                let done = line.starts_with("-- stage 2");
                seen.push(line);
                if done {
                    break;
                }
            }
            _ => return Err(format!("the run ended before stage 2: {seen:#?}").into()),
        }
    }
    let pid = child.0.id();
    let envoys = children_named(pid, "envoy");
    let istiods = children_named(pid, "pilot-discovery");
    if envoys.len() != 2 || istiods.len() != 1 {
        return Err(format!(
            "expected 2 Envoys and 1 istiod mid-run, found {envoys:?} and {istiods:?}"
        )
        .into());
    }
    let run_dir = envoy_run_dir(envoys[0]).ok_or("cannot read the Envoy's command line")?;
    child.interrupt();
    let status = child.0.wait().map_err(|e| e.to_string())?;
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    if status.code() != Some(1) {
        return Err(format!("exit {status}, expected 1 (interrupted): {rest:?}").into());
    }
    for pid in envoys.into_iter().chain(istiods) {
        if !gone(pid) {
            return Err(format!("pid {pid} outlived the interrupted run").into());
        }
    }
    if run_dir.exists() {
        return Err(format!("{} outlived the interrupted run", run_dir.display()).into());
    }
    Ok(())
}

/// `compare` on a suite exits 0: every difference is listed with its reason.
fn compares_clean(tools: &IstiodTools, suite: &std::path::Path) -> Result<(), Failed> {
    let output = tools
        .command("compare")
        .arg(suite)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.code() == Some(0) && stdout.contains("== compared ") {
        Ok(())
    } else {
        Err(format!(
            "compare {} exited {:?}:\n{stdout}\n{}",
            suite.display(),
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        )
        .into())
    }
}

/// With no accepted differences, `compare` exits 1 and shows each difference by field.
fn unlisted_difference_fails(tools: IstiodTools) -> Result<(), Failed> {
    let ws = Workspace::new()?;
    let empty = ws.path("accepted-none.yaml");
    std::fs::write(&empty, "[]\n").map_err(|e| e.to_string())?;
    let output = tools
        .command("compare")
        .arg("--accepted")
        .arg(&empty)
        .arg(root().join(SUITE))
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let shows_a_field = stdout
        .lines()
        .any(|l| l.starts_with("     ") && l.contains(": builtin ") && l.contains(", istiod "));
    if output.status.code() == Some(1) && shows_a_field && stdout.contains("with unlisted ones") {
        Ok(())
    } else {
        Err(format!(
            "expected exit 1 with field-level differences, got {:?}:\n{stdout}",
            output.status.code()
        )
        .into())
    }
}
