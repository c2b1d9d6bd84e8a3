//! A child process the harness owns: Envoy, istiod, an API server. One guard for all of them.
//!
//! [`Supervised::spawn`] starts the child in its own process group (a terminal's Ctrl-C reaches
//! only the harness, which then stops its children itself), arms `PR_SET_PDEATHSIG` (the child
//! dies with the harness even when the harness is killed outright) and hands the child to a
//! reaper task, which publishes its exit the moment it happens. [`Supervised::death`] is a future
//! of that exit, so whoever depends on the process can race their wait against it and report a
//! death when it happens rather than when a timeout runs out. Signals go through a pidfd, so a
//! reaped child's pid, which the kernel may give to another process, is never signalled.
//!
//! [`Supervised::shutdown`] asks politely (SIGTERM), then insists (SIGKILL); dropping the guard
//! kills the child and waits briefly for it, without blocking the runtime for long.
//!
//! What it does not do: decide when a process is ready (the caller waits for that), or read its
//! output beyond the tail of a log file for error messages.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::watch;

/// How long `Drop` waits for a killed child to die, so that it is gone when the guard is.
const DROP_WAIT_MS: i32 = 2000;
/// How many lines of a log a death notice carries.
const DEATH_TAIL_LINES: usize = 15;

/// How a supervised process ended, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub(crate) struct Death {
    /// What the process plays: `the sidecar Envoy`, `istiod`.
    pub who: String,
    pub pid: u32,
    pub how: String,
    /// The last lines of its log.
    pub log_tail: String,
}

impl Death {
    fn describe(&self) -> String {
        let mut text = format!("{} (pid {}) died: {}", self.who, self.pid, self.how);
        if !self.log_tail.is_empty() {
            text.push_str(&format!("; its log ends:\n{}", self.log_tail));
        }
        text
    }
}

/// Why a child could not be started or confirmed stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProcessError {
    #[error("cannot start {}", .binary.display())]
    Spawn {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{who} (pid {pid}) did not exit after SIGKILL within {waited:?}")]
    Unkillable {
        who: String,
        pid: u32,
        waited: Duration,
    },
}

/// A running child process; see the module docs.
#[derive(Debug)]
pub(crate) struct Supervised {
    who: String,
    pid: u32,
    pidfd: Option<Arc<OwnedFd>>,
    exit: watch::Receiver<Option<ExitStatus>>,
    log: PathBuf,
}

/// Describe an exit status as a user reads it: `exit code 1`, `killed by SIGKILL`.
pub(crate) fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    match status.signal() {
        Some(signal) => format!("killed by {}", signal_name(signal)),
        None => status.to_string(),
    }
}

fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGHUP => "SIGHUP".into(),
        other => format!("signal {other}"),
    }
}

impl Supervised {
    /// Start `command` as `who`. `log` is the file whose tail describes a death (the caller
    /// points the child's output there). Call from async code on a runtime thread:
    /// `PR_SET_PDEATHSIG` fires when the *thread* that spawned the child ends, and tokio's
    /// runtime threads live as long as the runtime.
    pub(crate) fn spawn(
        who: impl Into<String>,
        mut command: Command,
        log: PathBuf,
    ) -> Result<Supervised, ProcessError> {
        let binary = PathBuf::from(command.as_std().get_program());
        command.kill_on_drop(true).process_group(0);
        die_with_parent(&mut command);
        let mut child = command
            .spawn()
            .map_err(|source| ProcessError::Spawn { binary, source })?;
        let Some(pid) = child.id() else {
            // Impossible: a child that was just spawned has not been reaped.
            unreachable!("freshly spawned child has a pid");
        };
        let pidfd = pidfd_open(pid).map(Arc::new);
        let (report, exit) = watch::channel(None);
        tokio::spawn(async move {
            // The reaper owns the child; a wait error leaves the status unknown, which is
            // reported as the process being gone all the same.
            let status = child.wait().await.ok();
            let status = status.unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                ExitStatus::from_raw(0x7f00)
            });
            report.send_replace(Some(status));
        });
        Ok(Supervised {
            who: who.into(),
            pid,
            pidfd,
            exit,
            log,
        })
    }

    /// The file its output goes to.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// `Some(status)` once the process has exited.
    pub(crate) fn exited(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// How the process ended, if it has.
    pub(crate) fn dead(&self) -> Option<Death> {
        let status = self.exited()?;
        Some(Death {
            who: self.who.clone(),
            pid: self.pid,
            how: describe(&status),
            log_tail: tail_lines(&self.log, DEATH_TAIL_LINES),
        })
    }

    /// Resolves when the process exits, with how it ended and its last words.
    pub(crate) fn death(&self) -> impl Future<Output = Death> + Send + 'static {
        let mut exit = self.exit.clone();
        let (who, pid, log) = (self.who.clone(), self.pid, self.log.clone());
        async move {
            let status = match exit.wait_for(Option::is_some).await {
                Ok(status) => *status,
                // The reaper is gone without a word: the runtime is stopping.
                Err(_) => None,
            };
            Death {
                who,
                pid,
                how: status.map_or_else(|| "gone".to_string(), |s| describe(&s)),
                log_tail: tail_lines(&log, DEATH_TAIL_LINES),
            }
        }
    }

    /// Send `signal`, unless the process has already been reaped.
    fn signal(&self, signal: i32) {
        if self.exited().is_some() {
            return;
        }
        match &self.pidfd {
            Some(fd) => {
                // SAFETY: a plain syscall on a pidfd we own; it cannot reach another process.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd.as_raw_fd(),
                        signal,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    )
                };
            }
            None => {
                // Without pidfds (old kernels) the pid is still ours: the reaper has not
                // published an exit, so it has not reaped it.
                // SAFETY: `kill` has no memory effects.
                unsafe { libc::kill(self.pid as libc::pid_t, signal) };
            }
        }
    }

    /// SIGTERM, `grace` for the process to exit, then SIGKILL; returns how it ended.
    pub(crate) async fn shutdown(mut self, grace: Duration) -> Result<ExitStatus, ProcessError> {
        if let Some(status) = self.exited() {
            return Ok(status);
        }
        self.signal(libc::SIGTERM);
        if let Ok(Ok(status)) =
            tokio::time::timeout(grace, self.exit.wait_for(Option::is_some)).await
            && let Some(status) = *status
        {
            return Ok(status);
        }
        self.signal(libc::SIGKILL);
        let waited = Duration::from_millis(DROP_WAIT_MS as u64);
        match tokio::time::timeout(waited, self.exit.wait_for(Option::is_some)).await {
            Ok(Ok(status)) => Ok(status.unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                ExitStatus::from_raw(libc::SIGKILL)
            })),
            _ => Err(ProcessError::Unkillable {
                who: self.who.clone(),
                pid: self.pid,
                waited,
            }),
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        self.signal(libc::SIGKILL);
        // Wait for the death itself (not the reaping, which is the reaper's), so that nothing of
        // the process outlives its guard.
        if let Some(fd) = &self.pidfd {
            has_exited(fd, DROP_WAIT_MS);
        }
    }
}

/// Whether the process behind `pidfd` has exited (reaped or not), waiting up to `timeout_ms`.
fn has_exited(pidfd: &OwnedFd, timeout_ms: i32) -> bool {
    let mut poll = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut poll, 1, timeout_ms) == 1 }
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: a plain syscall; the pid is our unreaped child, so it names that process.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

fn die_with_parent(command: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (`prctl`, `getppid`); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the signal was armed.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// The last `n` lines of a file, reading at most its last 256 KiB (empty if it cannot be read).
pub(crate) fn tail_lines(path: &Path, n: usize) -> String {
    const WINDOW: u64 = 256 * 1024;
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(WINDOW)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    let text = read().unwrap_or_default();
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Every death a run depends on, as one future: whichever process dies first.
#[derive(Debug, Clone, Default)]
pub(crate) struct Liveness {
    watched: Vec<Watched>,
}

#[derive(Debug, Clone)]
struct Watched {
    who: String,
    pid: u32,
    log: PathBuf,
    exit: watch::Receiver<Option<ExitStatus>>,
    pidfd: Option<Arc<OwnedFd>>,
}

impl Liveness {
    pub(crate) fn watch(&mut self, process: &Supervised) {
        self.watched.push(Watched {
            who: process.who.clone(),
            pid: process.pid,
            log: process.log.clone(),
            exit: process.exit.clone(),
            pidfd: process.pidfd.clone(),
        });
    }

    /// A death that has already happened, if any.
    pub(crate) fn dead(&self) -> Option<Death> {
        self.watched.iter().find_map(|w| {
            let status = (*w.exit.borrow())?;
            Some(Death {
                who: w.who.clone(),
                pid: w.pid,
                how: describe(&status),
                log_tail: tail_lines(&w.log, DEATH_TAIL_LINES),
            })
        })
    }

    /// Whether a watched process has exited this instant, even if its reaper has not said so
    /// yet (its exit is then worth waiting a moment for).
    pub(crate) fn exiting(&self) -> bool {
        self.watched.iter().any(|w| {
            w.exit.borrow().is_some() || w.pidfd.as_deref().is_some_and(|fd| has_exited(fd, 0))
        })
    }

    /// Resolves at the first death; never, when nothing is watched.
    pub(crate) async fn first_death(&self) -> Death {
        if self.watched.is_empty() {
            return std::future::pending().await;
        }
        let waits = self.watched.iter().map(|w| {
            let mut exit = w.exit.clone();
            let w = w.clone();
            Box::pin(async move {
                let status = exit.wait_for(Option::is_some).await.ok().and_then(|s| *s);
                Death {
                    who: w.who,
                    pid: w.pid,
                    how: status.map_or_else(|| "gone".to_string(), |s| describe(&s)),
                    log_tail: tail_lines(&w.log, DEATH_TAIL_LINES),
                }
            })
        });
        futures::future::select_all(waits).await.0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn sh(script: &str, log: &Path) -> Command {
        let mut command = Command::new("/bin/sh");
        command
            .args(["-c", script])
            .stdout(File::create(log).unwrap())
            .stderr(std::process::Stdio::null());
        command
    }

    /// No process `pid` runs: none exists, or only its zombie, which its reaper collects.
    pub(crate) fn gone(pid: u32) -> bool {
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
    }

    /// `script` run by `sh` as `who`, its output in a log of its own directory.
    fn child(who: &str, script: &str) -> (tempfile::TempDir, PathBuf, Supervised) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("out.log");
        let child = Supervised::spawn(who, sh(script, &log), log.clone()).unwrap();
        (dir, log, child)
    }

    /// Until the child's log ends with `words`.
    async fn said(log: &Path, words: &str) {
        crate::wait::Wait::new(
            format!("the child to say {words:?}"),
            Duration::from_secs(5),
        )
        .poll(|| async {
            let tail = tail_lines(log, 1);
            Ok::<_, ()>(if tail == words {
                crate::wait::Look::Ready(())
            } else {
                crate::wait::Look::NotYet(tail)
            })
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_death_is_seen_when_it_happens_with_the_signal_and_the_log() {
        let (_dir, log, child) = child("the test child", "echo last words; exec sleep 30");
        said(&log, "last words").await;
        let mut liveness = Liveness::default();
        liveness.watch(&child);
        assert!(liveness.dead().is_none());
        // SAFETY: signals our own child.
        unsafe { libc::kill(child.pid() as libc::pid_t, libc::SIGKILL) };
        let death = tokio::time::timeout(Duration::from_secs(2), liveness.first_death())
            .await
            .expect("the death was seen within 2 s");
        assert_eq!(death.who, "the test child");
        assert_eq!(death.how, "killed by SIGKILL");
        assert!(death.log_tail.contains("last words"), "{death}");
        assert_eq!(
            liveness.dead().map(|d| d.how),
            Some("killed by SIGKILL".into())
        );
    }

    #[tokio::test]
    async fn shutdown_terms_then_reports_the_exit() {
        let (_dir, _log, child) = child("sleeper", "exec sleep 30");
        let pid = child.pid();
        let status = child.shutdown(Duration::from_secs(5)).await.unwrap();
        assert_eq!(describe(&status), "killed by SIGTERM");
        assert!(gone(pid));
    }

    #[tokio::test]
    async fn shutdown_kills_what_ignores_sigterm() {
        let (_dir, log, child) = child(
            "stubborn",
            "trap '' TERM; echo ready; while :; do sleep 1; done",
        );
        // The trap must be set before SIGTERM arrives.
        said(&log, "ready").await;
        let status = child.shutdown(Duration::from_millis(100)).await.unwrap();
        assert_eq!(describe(&status), "killed by SIGKILL");
    }

    #[tokio::test]
    async fn drop_kills() {
        let (_dir, _log, child) = child("sleeper", "exec sleep 30");
        let pid = child.pid();
        drop(child);
        assert!(gone(pid), "pid {pid} outlived its guard");
    }

    #[tokio::test]
    async fn an_exit_code_is_described_as_such() {
        let (_dir, _log, child) = child("quitter", "exit 3");
        let death = child.death().await;
        assert_eq!(death.how, "exit code 3");
        assert!(child.exited().is_some());
    }

    /// `PR_SET_PDEATHSIG` is tied to the spawning thread: a child started on a thread that then
    /// ends, with its guard and runtime leaked so that nothing else kills it, is killed by the
    /// kernel, as it would be if the harness died.
    #[test]
    fn a_child_dies_with_the_thread_that_started_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("out.log");
        let command = sh("exec sleep 30", &log);
        let pid = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let child = rt
                .block_on(async { Supervised::spawn("orphan", command, log) })
                .unwrap();
            let pid = child.pid();
            std::mem::forget(child);
            std::mem::forget(rt);
            pid
        })
        .join()
        .unwrap();
        let fd = pidfd_open(pid).expect("the child is not reaped yet");
        let mut poll = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, 10_000) };
        let mut raw = 0;
        // SAFETY: waits for our own child, whose handle was leaked.
        let reaped = unsafe { libc::waitpid(pid as libc::pid_t, &mut raw, libc::WNOHANG) };
        if ready != 1 || reaped != pid as libc::pid_t {
            // SAFETY: as above; clean up before failing.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("child {pid} outlived the thread that started it by 10 s");
        }
        assert!(
            libc::WIFSIGNALED(raw) && libc::WTERMSIG(raw) == libc::SIGKILL,
            "{raw:#x}"
        );
    }

    #[tokio::test]
    async fn nothing_watched_never_dies() {
        let liveness = Liveness::default();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), liveness.first_death())
                .await
                .is_err()
        );
    }
}
