//! Nothing outlives a run — on success, failure, Ctrl-C — unless asked to, and what does is a
//! failure of the run: in its exit code, its transcript and its JUnit report.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use libtest_mimic::{Completion, Failed};

use crate::harness::{
    Running, Workspace, children_named, envoy_run_dir, fixture_path, gone, run_binary,
};

/// Read `lines` until one satisfies `wanted`; everything read so far comes back too.
fn read_until(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    seen: &mut Vec<String>,
    wanted: impl Fn(&str) -> bool,
) -> Result<String, Failed> {
    loop {
        let line = lines
            .next()
            .ok_or_else(|| format!("the run ended first: {seen:#?}"))?
            .map_err(|e| e.to_string())?;
        seen.push(line.clone());
        if wanted(&line) {
            return Ok(line);
        }
    }
}

/// Ctrl-C in the middle of a run: the binary stops, and its Envoys, ports and directory go.
pub fn interrupted_run() -> Result<(), Failed> {
    let mut child = Running::spawn(&mut run_binary()?)?;
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    read_until(&mut lines, &mut seen, |l| l.starts_with("-- stage 2"))?;
    // Every suite replays at once: each running replay has its two Envoys (a replay that
    // finished already has none).
    let envoys = children_named(child.0.id(), "envoy");
    if envoys.is_empty() || !envoys.len().is_multiple_of(2) {
        return Err(
            format!("expected two Envoy children per running replay, found {envoys:?}").into(),
        );
    }
    let run_dirs: Vec<PathBuf> = envoys
        .iter()
        .map(|pid| envoy_run_dir(*pid).ok_or("cannot read an Envoy's command line"))
        .collect::<Result<_, _>>()?;
    child.interrupt();
    let status = child.0.wait().map_err(|e| e.to_string())?;
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    if status.code() != Some(1) {
        return Err(format!(
            "exit {status}, expected 1 (interrupted); output after the signal: {rest:?}"
        )
        .into());
    }
    if !rest
        .iter()
        .any(|l| l.contains("interrupted during the stages"))
    {
        return Err(format!("the transcript does not say it was interrupted: {rest:?}").into());
    }
    for pid in envoys {
        if !gone(pid) {
            return Err(format!("Envoy pid {pid} outlived the interrupted run").into());
        }
    }
    for run_dir in run_dirs {
        if run_dir.exists() {
            return Err(format!("{} outlived the interrupted run", run_dir.display()).into());
        }
    }
    Ok(())
}

/// Ctrl-C while the run is still starting (as soon as its first Envoy exists): nothing of it
/// remains. Its sockets close with the processes that hold them, so no pid means no port.
pub fn interrupted_start_up() -> Result<(), Failed> {
    let mut command = run_binary()?;
    let mut child = Running(
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let (first, run_dir) = loop {
        let proxy = children_named(child.0.id(), "envoy")
            .into_iter()
            .find_map(|pid| envoy_run_dir(pid).map(|dir| (pid, dir)));
        if let Some(found) = proxy {
            break found;
        }
        if Instant::now() > deadline || !matches!(child.0.try_wait(), Ok(None)) {
            return Err("no Envoy child appeared within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    child.interrupt();
    let mut stdout = String::new();
    if let Some(mut out) = child.0.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    let status = child.0.wait().map_err(|e| e.to_string())?;
    let stderr = child.rest_of_stderr();
    if status.code() != Some(1) {
        return Err(format!("exit {status}, expected 1 (interrupted): {stdout}{stderr}").into());
    }
    // The binary has stopped, reaped and checked its Envoys before exiting.
    if !gone(first) {
        return Err(format!("Envoy pid {first} outlived the interrupted start-up").into());
    }
    if run_dir.exists() {
        return Err(format!("{} outlived the interrupted start-up", run_dir.display()).into());
    }
    if !stdout.contains("nothing left behind") {
        return Err(format!("the clean-up found leftovers: {stdout}").into());
    }
    Ok(())
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
pub fn keep_until_ctrl_c() -> Result<(), Failed> {
    let mut command = run_binary()?;
    command.arg("--keep");
    let mut child = Running::spawn(&mut command)?;
    let mut kept = KeptDir(None);
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut admin = None;
    let mut seen = Vec::new();
    loop {
        let line = read_until(&mut lines, &mut seen, |_| true)?;
        if let Some(rest) = line.strip_prefix("egress-gateway: admin http://") {
            admin = rest.split_whitespace().next().map(str::to_string);
        }
        if let Some(dir) = line
            .split("run directory (bootstraps, Envoy logs, the CA): ")
            .nth(1)
        {
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
        .find_map(|l| l.trim().strip_prefix("kept: the run directory "))
        .map(PathBuf::from)
        .ok_or_else(|| format!("no `kept:` line after Ctrl-C: {rest:?}"))?;
    if status.code() != Some(0) {
        return Err(format!("exit {status} after a passing, kept run: {rest:?}").into());
    }
    if reported != run_dir || !run_dir.join("sidecar").join("envoy.log").exists() {
        return Err(format!(
            "{} was not kept (reported: {})",
            run_dir.display(),
            reported.display()
        )
        .into());
    }
    if envoys.len() != 2 || envoys.iter().any(|pid| !gone(*pid)) {
        return Err(format!("the kept Envoys {envoys:?} did not stop on Ctrl-C").into());
    }
    Ok(())
}

/// `--junit`: one case per stage and one for clean-up; the failing stage carries its failures
/// and its transcript.
pub fn junit_of_a_failing_run() -> Result<(), Failed> {
    let ws = Workspace::new()?;
    ws.edit(
        &fixture_path("04-destinationrule-originate-tls.yaml"),
        "mode: SIMPLE",
        "mode: DISABLE",
    )?;
    let xml_file = ws.path("report.xml");
    let output = run_binary()?
        .arg(ws.suite())
        .arg("--junit")
        .arg(&xml_file)
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.code() != Some(1) {
        return Err(format!("exit {:?}, expected 1", output.status.code()).into());
    }
    let xml = std::fs::read_to_string(&xml_file).map_err(|e| e.to_string())?;
    let wanted = [
        r#"tests="7""#,
        r#"failures="1""#,
        r#"<testcase name="04 originate-tls""#,
        r#"<testcase name="clean-up""#,
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

/// A mount inside the run directory, made while the run is going, that its clean-up cannot
/// remove; unmounted when the test is done.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Something of the run that clean-up cannot remove (here a file system mounted inside its
/// directory) fails a run whose stages all passed: exit 1, the transcript says what was left,
/// and the JUnit report has a failing clean-up case.
pub fn a_leftover_fails_the_run() -> Result<Completion, Failed> {
    let ws = Workspace::new()?;
    let xml_file = ws.path("report.xml");
    let mut command = run_binary()?;
    command.arg("--junit").arg(&xml_file);
    let mut child = Running::spawn(&mut command)?;
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    read_until(&mut lines, &mut seen, |l| l.starts_with("-- stage 1"))?;
    let envoy = children_named(child.0.id(), "envoy")
        .into_iter()
        .next()
        .ok_or("no Envoy child")?;
    let run_dir = envoy_run_dir(envoy).ok_or("cannot read the Envoy's command line")?;
    let target = run_dir.join("held");
    std::fs::create_dir(&target).map_err(|e| e.to_string())?;
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&target)
        .output()
        .map_err(|e| e.to_string())?;
    if !mounted.status.success() {
        return Ok(Completion::ignored_with(format!(
            "cannot mount here to make an unremovable leftover: {}",
            String::from_utf8_lossy(&mounted.stderr).trim()
        )));
    }
    let _mount = Mount(target);
    let status = child.0.wait().map_err(|e| e.to_string())?;
    let stdout = seen
        .into_iter()
        .chain(lines.map_while(Result::ok))
        .collect::<Vec<_>>()
        .join("\n");
    if status.code() != Some(1) {
        return Err(format!("exit {status}, expected 1 for a leftover:\n{stdout}").into());
    }
    let dir = run_dir.display().to_string();
    if !stdout.contains(&format!("LEFT BEHIND: {dir} still exists"))
        || !stdout.contains("left behind by the run:")
    {
        return Err(format!("the transcript does not name the leftover {dir}:\n{stdout}").into());
    }
    let xml = std::fs::read_to_string(&xml_file).map_err(|e| e.to_string())?;
    if !xml.contains(r#"<testcase name="clean-up""#)
        || !xml.contains("left behind:")
        || !xml.contains(r#"failures="1""#)
    {
        return Err(format!("the JUnit report has no failing clean-up case:\n{xml}").into());
    }
    if !Path::new(&dir).exists() {
        return Err("the leftover is gone: the test proves nothing".into());
    }
    Ok(Completion::Completed)
}

/// A signal at the very first moment — sent while the binary is still being exec'd, held
/// pending by a blocked mask until the binary takes it — ends the run with the documented code
/// (1, interrupted), not the shell's 130 or 143, and leaves nothing. The binary installs its
/// handlers and unblocks the signals before anything else, so the pending one reaches them.
pub fn interrupted_at_once() -> Result<(), Failed> {
    use std::os::unix::process::CommandExt;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let ws = Workspace::new()?;
        let tmp = ws.path("tmp");
        std::fs::create_dir(&tmp).map_err(|e| e.to_string())?;
        let mut command = run_binary()?;
        command.env("TMPDIR", &tmp).arg(ws.suite());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGINT);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        let mut child = Running::spawn(&mut command)?;
        // SAFETY: kill(2) with the pid of our own child.
        unsafe { libc::kill(child.0.id() as i32, signal) };
        let (status, _) = child.wait_at_most(Duration::from_secs(60))?;
        let mut stdout = String::new();
        if let Some(mut out) = child.0.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        let stderr = child.rest_of_stderr();
        if status.code() != Some(1) || !stderr.contains("interrupted before the run started") {
            return Err(format!(
                "signal {signal}: {status}, expected exit 1 (interrupted before the run started): {stdout}{stderr}"
            )
            .into());
        }
        if !stdout.is_empty() {
            return Err(format!("signal {signal}: the run started anyway: {stdout}").into());
        }
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        if !left.is_empty() {
            return Err(format!("signal {signal}: the interrupted run left {left:?}").into());
        }
    }
    Ok(())
}

/// The next run sweeps the directories earlier runs could not remove: one whose owner's pid is
/// now a live process of another program, one whose pid is reused (another start time), one
/// that never named an owner and is old; it keeps a kept one and a fresh unowned one.
pub fn stale_run_dirs_are_swept() -> Result<(), Failed> {
    let ws = Workspace::new()?;
    let tmp = ws.path("tmp");
    let dir = |name: &str, owner: Option<String>| -> Result<PathBuf, Failed> {
        let path = tmp.join(name);
        std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
        if let Some(owner) = owner {
            std::fs::write(path.join("owner.pid"), owner).map_err(|e| e.to_string())?;
        }
        Ok(path)
    };
    let mut unrelated = std::process::Command::new("cat")
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let other_program = dir("egress-conformance-other", Some(unrelated.id().to_string()))?;
    // This test process, as if an earlier run had had its pid: the start time differs.
    let reused = dir(
        "egress-conformance-reused",
        Some(format!(
            "{}\n1\n/nonexistent/egress-conformance\n",
            std::process::id()
        )),
    )?;
    let unowned_old = dir("egress-conformance-unowned-old", None)?;
    let old = std::process::Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(&unowned_old)
        .status()
        .map_err(|e| e.to_string())?;
    let unowned_fresh = dir("egress-conformance-unowned-fresh", None)?;
    let kept = dir("egress-conformance-kept", Some("4294967294".into()))?;
    std::fs::write(kept.join("kept"), "").map_err(|e| e.to_string())?;
    let run = run_binary()?
        .env("TMPDIR", &tmp)
        .arg(ws.suite())
        .output()
        .map_err(|e| e.to_string());
    let _ = unrelated.kill();
    let _ = unrelated.wait();
    let run = run?;
    if !old.success() || run.status.code() != Some(0) {
        return Err(format!(
            "touch {old}, run {}: {}",
            run.status,
            String::from_utf8_lossy(&run.stdout)
        )
        .into());
    }
    for gone in [&other_program, &reused, &unowned_old] {
        if gone.exists() {
            return Err(format!("{} was not swept", gone.display()).into());
        }
    }
    for stays in [&unowned_fresh, &kept] {
        if !stays.exists() {
            return Err(format!("{} was swept", stays.display()).into());
        }
    }
    Ok(())
}
