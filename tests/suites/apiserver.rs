//! The suites on `--backend apiserver`: a real kube-apiserver and etcd on loopback, istiod
//! watching them, the local Envoys. Every suite passes with nothing left behind, on each
//! supported Istio release; a broken fixture
//! fails as on the other backends; Ctrl-C, in the stages or twice during set-up, leaves no
//! kube-apiserver, etcd, istiod, Envoy or directory behind.
//!
//! The binaries come from `egress-conformance setup --backend apiserver`, as a user gets them:
//! the first time it builds kube-apiserver, etcd and istiod with Go (minutes; its progress is
//! shown) and installs the Envoy. With `EGRESS_CONFORMANCE_NO_ISTIOD_BUILD` or
//! `EGRESS_CONFORMANCE_NO_KUBE_BUILD` set, nothing is built (`--no-build`); with
//! `EGRESS_CONFORMANCE_SKIP_KUBE_TESTS`, nothing is looked for. Where the binaries cannot be had,
//! the trials are ignored with setup's words as the reason.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use libtest_mimic::{Completion, Failed, Trial};

use crate::failing::check_fails_with;
use crate::harness::{
    FIXTURES, Replay, Running, SUITE, Workspace, binary, children_named, gone, root,
};

/// The Istio releases the suites run on, newest first; the other trials run on the newest.
const RELEASES: [&str; 2] = ["1.31", "1.30"];

/// What `setup --backend apiserver` printed: one path per tool.
#[derive(Clone, Debug)]
pub struct ApiserverTools {
    release: &'static str,
    envoy: PathBuf,
    pilot_discovery: PathBuf,
    kube_apiserver: PathBuf,
    etcd: PathBuf,
}

fn set(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty())
}

/// `setup --backend apiserver --istio-version <release>`, once per release and test process (one
/// at a time: a Go build takes every core); the error is the reason to ignore the trials.
fn tools(release: &'static str) -> Result<ApiserverTools, String> {
    static FOUND: OnceLock<Mutex<BTreeMap<&'static str, Result<ApiserverTools, String>>>> =
        OnceLock::new();
    let found = FOUND.get_or_init(Mutex::default);
    let mut found = found.lock().unwrap_or_else(|e| e.into_inner());
    found
        .entry(release)
        .or_insert_with(|| {
            if set("EGRESS_CONFORMANCE_SKIP_KUBE_TESTS") {
                return Err("EGRESS_CONFORMANCE_SKIP_KUBE_TESTS is set".into());
            }
            let mut setup = binary();
            setup.args([
                "setup",
                "--backend",
                "apiserver",
                "--istio-version",
                release,
            ]);
            if set("EGRESS_CONFORMANCE_NO_ISTIOD_BUILD") || set("EGRESS_CONFORMANCE_NO_KUBE_BUILD")
            {
                setup.arg("--no-build");
            }
            let mut child = setup
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("running setup: {e}"))?;
            let stderr = child.stderr.take().map(BufReader::new);
            let mut said = Vec::new();
            for line in stderr
                .into_iter()
                .flat_map(|r| r.lines().map_while(Result::ok))
            {
                eprintln!("  [setup apiserver {release}] {line}");
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
                    "the apiserver backend's binaries cannot be had here: {}",
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
            Ok(ApiserverTools {
                release,
                envoy: path_of("envoy")?,
                pilot_discovery: path_of("pilot-discovery")?,
                kube_apiserver: path_of("kube-apiserver")?,
                etcd: path_of("etcd")?,
            })
        })
        .clone()
}

impl ApiserverTools {
    /// `egress-conformance run --backend apiserver …` with exactly these binaries.
    fn run(&self) -> Command {
        let mut command = binary();
        command
            .arg("run")
            .env("ENVOY_BIN", &self.envoy)
            .env("PILOT_DISCOVERY_BIN", &self.pilot_discovery)
            .env("KUBE_APISERVER_BIN", &self.kube_apiserver)
            .env("ETCD_BIN", &self.etcd)
            .args(["--backend", "apiserver", "--istio-version", self.release]);
        command
    }

    fn replay(&self, suite: &Path) -> Result<Replay, Failed> {
        let output = self
            .run()
            .arg(suite)
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

/// A trial that needs the binaries: ignored with the reason when they cannot be had.
fn with_tools(
    name: String,
    release: &'static str,
    test: impl FnOnce(ApiserverTools) -> Result<(), Failed> + Send + 'static,
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
            let name = suite
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let suite = suite.clone();
            trials.push(with_tools(
                format!("apiserver-{release}::{name}"),
                release,
                move |t| passes(&t, &suite),
            ));
        }
    }
    trials.push(with_tools(
        "apiserver::fails::tls_mode_disable".into(),
        newest,
        tls_disabled,
    ));
    trials.push(with_tools(
        "apiserver::cleanup::interrupted_run".into(),
        newest,
        |t| interrupted(&t, "-- stage 2", 1),
    ));
    trials.push(with_tools(
        "apiserver::cleanup::interrupted_start_up_twice".into(),
        newest,
        |t| interrupted(&t, "starting istiod", 2),
    ));
    trials
}

/// The suite passes on this backend, every stage, and its clean-up found nothing left behind.
fn passes(tools: &ApiserverTools, suite: &Path) -> Result<(), Failed> {
    let run = tools.replay(suite)?;
    let header = "backend: apiserver, kube-apiserver ";
    if !run.stdout.contains(header)
        || !run
            .stdout
            .contains(&format!("istiod {} watching it", tools.release))
    {
        return Err(format!(
            "the run does not say it ran on the apiserver backend:\n{}",
            run.describe()
        )
        .into());
    }
    if !run.passed() {
        return Err(format!(
            "{} failed on the apiserver backend:\n  {}\n\n{}",
            suite.display(),
            run.failures().join("\n  "),
            run.describe()
        )
        .into());
    }
    if !run.stdout.contains("nothing left behind") {
        return Err(format!(
            "the clean-up does not say nothing was left:\n{}",
            run.describe()
        )
        .into());
    }
    Ok(())
}

/// The last DestinationRule with `tls.mode: DISABLE` (which the API server accepts): stage 4
/// gets the origin's 400 instead of the page, as on the other backends.
fn tls_disabled(tools: ApiserverTools) -> Result<(), Failed> {
    let ws = Workspace::new()?;
    ws.edit(
        &format!("{FIXTURES}/04-destinationrule-originate-tls.yaml"),
        "mode: SIMPLE",
        "mode: DISABLE",
    )?;
    let run = tools.replay(&ws.suite())?;
    check_fails_with(
        &run,
        &[
            "stage originate-tls: politics: status lines: expected [HTTP/1.1 200 OK], got [HTTP/1.1 400 Bad Request]",
        ],
    )
}

/// The value of `--<flag>=` in `pid`'s command line.
fn flag_of(pid: u32, flag: &str) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let prefix = format!("--{flag}=");
    cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
}

/// Waits (at most 10 s) until `pid` has no SIGINT pending.
fn sigint_taken(pid: u32) -> Result<(), Failed> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let pending = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .filter_map(|l| {
                l.strip_prefix("SigPnd:")
                    .or_else(|| l.strip_prefix("ShdPnd:"))
            })
            .filter_map(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .any(|mask| mask & (1 << (libc::SIGINT - 1)) != 0)
    };
    while pending() {
        if std::time::Instant::now() > deadline {
            return Err(format!("pid {pid} left SIGINT pending for 10 s").into());
        }
        std::thread::yield_now();
    }
    Ok(())
}

/// Interrupted `times` times once the run has printed a line starting with (or, for a progress
/// line, containing) `at`: exit 1, and no process the run started nor directory it made remains.
fn interrupted(tools: &ApiserverTools, at: &str, times: usize) -> Result<(), Failed> {
    let mut child = Running::spawn(tools.run().arg(root().join(SUITE)))?;
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                let here = line.starts_with(at) || line.contains(&format!("· {at}"));
                seen.push(line);
                if here {
                    break;
                }
            }
            _ => return Err(format!("the run ended before {at:?}: {seen:#?}").into()),
        }
    }
    let pid = child.0.id();
    let mut started: Vec<(&str, u32)> = Vec::new();
    for name in ["etcd", "kube-apiserver", "pilot-discovery", "envoy"] {
        started.extend(children_named(pid, name).into_iter().map(|p| (name, p)));
    }
    let count = |name: &str| started.iter().filter(|(n, _)| *n == name).count();
    let mesh_up = times == 1 && (count("pilot-discovery") != 1 || count("envoy") != 2);
    if count("etcd") != 1 || count("kube-apiserver") != 1 || mesh_up {
        return Err(format!(
            "expected etcd and kube-apiserver (and in the stages istiod and 2 Envoys) running at \
             {at:?}, found {started:?}"
        )
        .into());
    }
    // The API server's directory holds etcd's data; the mesh's, the Envoys' bootstraps.
    let mut dirs: Vec<PathBuf> = started
        .iter()
        .filter(|(name, _)| *name == "etcd")
        .filter_map(|(_, p)| flag_of(*p, "data-dir"))
        .filter_map(|d| PathBuf::from(d).parent().map(Path::to_path_buf))
        .collect();
    dirs.extend(
        started
            .iter()
            .filter(|(name, _)| *name == "envoy")
            .filter_map(|(_, p)| crate::harness::envoy_run_dir(*p)),
    );
    if dirs.is_empty() {
        return Err("cannot read the API server's directory from etcd's command line".into());
    }
    for _ in 0..times {
        child.interrupt();
        // Signals of one kind do not queue: the next is sent once this one was taken.
        sigint_taken(pid)?;
    }
    let status = child.0.wait().map_err(|e| e.to_string())?;
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    if status.code() != Some(1) {
        return Err(format!("exit {status}, expected 1 (interrupted): {rest:#?}").into());
    }
    // In the stages, the kind backend's removals take out what the run had applied.
    let removed = "deleting ServiceEntry default/cnn, which the run applied";
    if times == 1 && !rest.iter().any(|l| l.contains(removed)) {
        return Err(format!("the clean-up did not say {removed:?}: {rest:#?}").into());
    }
    if times == 1 && !rest.iter().any(|l| l.contains("nothing left behind")) {
        return Err(format!("the clean-up found something left: {rest:#?}").into());
    }
    for (name, pid) in &started {
        if !gone(*pid) {
            return Err(format!("{name} (pid {pid}) outlived the interrupted run").into());
        }
    }
    for dir in dirs {
        if dir.exists() {
            return Err(format!("{} outlived the interrupted run", dir.display()).into());
        }
    }
    Ok(())
}
