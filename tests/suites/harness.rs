//! Running the binary as a user would, in a copy of the repository's suites and fixtures that a
//! test may edit, and reading what it printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libtest_mimic::Failed;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub const FIXTURES: &str = "fixtures/egress-gateway-tls-origination";
pub const SUITE: &str = "suites/egress-gateway-tls-origination.yaml";

pub fn fixture_path(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

/// The binary, run from the repository root.
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_egress-conformance"));
    command.current_dir(root());
    command
}

/// `egress-conformance setup`, once per test process: finds or installs Envoy (so parallel trials
/// do not all install it) and gives its path, which every run then gets as `ENVOY_BIN`.
pub fn envoy() -> Result<PathBuf, Failed> {
    static ENVOY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ENVOY
        .get_or_init(|| {
            let output = binary()
                .arg("setup")
                .output()
                .map_err(|e| format!("running setup: {e}"))?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            if !output.status.success() {
                return Err(format!(
                    "setup failed ({}): {stdout}{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            stdout
                .lines()
                .find_map(|l| l.strip_prefix("envoy "))
                .and_then(|rest| rest.split_once(' '))
                .map(|(_, path)| PathBuf::from(path))
                .ok_or_else(|| format!("setup printed no envoy: {stdout}"))
        })
        .clone()
        .map_err(Failed::from)
}

/// `egress-conformance run <args>` with the tests' Envoy.
pub fn run_binary() -> Result<Command, Failed> {
    let mut command = binary();
    command.arg("run").env("ENVOY_BIN", envoy()?);
    Ok(command)
}

/// How a finished run went, as its user sees it.
pub struct Replay {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Replay {
    /// The failures the run listed at its end (`== suite: FAILED …` and the lines under it; a
    /// failure's own further lines are indented deeper).
    pub fn failures(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut listing = false;
        for line in self.stdout.lines() {
            if line.starts_with("== ") {
                listing = line.contains(": FAILED in ");
                continue;
            }
            if !listing {
                continue;
            }
            if let Some(more) = line.strip_prefix("     ")
                && let Some(last) = out.last_mut()
            {
                last.push('\n');
                last.push_str(more);
            } else if let Some(failure) = line.strip_prefix("   ") {
                out.push(failure.to_string());
            } else {
                listing = false;
            }
        }
        out
    }

    pub fn passed(&self) -> bool {
        self.code == Some(0) && self.stdout.contains(": passed in ")
    }

    pub fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Run `args` to the end.
pub fn replay(args: &[&std::ffi::OsStr]) -> Result<Replay, Failed> {
    let output = run_binary()?
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

/// A copy of `suites/` and `fixtures/` in a temporary directory, edited by the test.
pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Result<Workspace, Failed> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        for sub in ["suites", "fixtures"] {
            copy_dir(&root().join(sub), &dir.path().join(sub)).map_err(|e| e.to_string())?;
        }
        Ok(Workspace { dir })
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn suite(&self) -> PathBuf {
        self.path(SUITE)
    }

    /// Replace `from` by `to` in a file, insisting that `from` is there.
    pub fn edit(&self, relative: &str, from: &str, to: &str) -> Result<(), Failed> {
        let path = self.path(relative);
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        if !text.contains(from) {
            return Err(format!("{relative} does not contain {from:?}").into());
        }
        std::fs::write(&path, text.replacen(from, to, 1)).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The 1-based line of the first line of `relative` that contains `needle`.
    pub fn line_of(&self, relative: &str, needle: &str) -> usize {
        std::fs::read_to_string(self.path(relative))
            .unwrap_or_default()
            .lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap_or(0)
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

/// A child run of the binary that is stopped as a user would stop it (Ctrl-C) if a test gives up
/// on it early, so that even a failing test leaves nothing behind.
pub struct Running(pub std::process::Child);

impl Running {
    pub fn spawn(command: &mut Command) -> Result<Running, Failed> {
        Ok(Running(
            command
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| e.to_string())?,
        ))
    }

    pub fn interrupt(&self) {
        // SAFETY: kill(2) with the pid of our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
    }

    /// Wait for the run to end, for at most `limit`; the time it took.
    pub fn wait_at_most(
        &mut self,
        limit: Duration,
    ) -> Result<(std::process::ExitStatus, Duration), Failed> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().map_err(|e| e.to_string())? {
                return Ok((status, started.elapsed()));
            }
            if started.elapsed() > limit {
                return Err(format!("the run did not end within {limit:?}").into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn rest_of_stderr(&mut self) -> String {
        let mut stderr = String::new();
        if let Some(mut err) = self.0.stderr.take() {
            use std::io::Read;
            let _ = err.read_to_string(&mut stderr);
        }
        stderr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        self.interrupt();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The pids of `parent`'s children whose command is `name`.
pub fn children_named(parent: u32, name: &str) -> Vec<u32> {
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

/// The `-c <dir>/<proxy>/bootstrap.json` an Envoy of ours was started with.
pub fn envoy_bootstrap(pid: u32) -> Option<PathBuf> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    args.iter()
        .position(|a| a == "-c")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
}

/// The run directory an Envoy of ours was started in.
pub fn envoy_run_dir(pid: u32) -> Option<PathBuf> {
    envoy_bootstrap(pid)?
        .parent()?
        .parent()
        .map(Path::to_path_buf)
}

/// The Envoy child of `parent` that plays `proxy` (`sidecar`, `egress-gateway`).
pub fn envoy_playing(parent: u32, proxy: &str) -> Option<u32> {
    children_named(parent, "envoy").into_iter().find(|pid| {
        envoy_bootstrap(*pid)
            .and_then(|b| b.parent().map(|d| d.ends_with(proxy)))
            .unwrap_or(false)
    })
}

/// Whether `pid` is gone (a zombie waiting for its reaper counts as gone).
pub fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(") Z "))
        .unwrap_or(true)
}
