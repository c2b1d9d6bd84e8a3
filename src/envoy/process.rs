//! One Envoy child process, owned by a guard that always stops it.
//!
//! [`EnvoyProcess::start`] writes the bootstrap into the proxy's own directory of the run, starts
//! Envoy and returns once its admin API answers, or fails with Envoy's own last words.
//! [`EnvoyProcess::shutdown`] stops it gracefully; dropping the guard kills it. Envoy also dies
//! with the harness (Linux: `PR_SET_PDEATHSIG`) and sits in its own process group, so a
//! terminal's Ctrl-C reaches only the harness, which then shuts Envoy down itself.
//!
//! This module does not build bootstraps, choose ports or wait for xDS; readiness beyond "the
//! admin API answers" is the caller's condition to wait for.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use thiserror::Error;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::admin::AdminClient;

/// How long Envoy may take to answer on its admin API. Generous: the machine may be busy.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often start-up is re-checked while waiting.
const START_POLL: Duration = Duration::from_millis(20);
/// How long `shutdown` waits after SIGTERM before SIGKILL.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long `Drop` waits for the killed process so it can be reaped at once.
const DROP_REAP_WAIT_MS: i32 = 2000;
/// `--file-flush-interval-msec` for Envoy's log and file access logs.
const FILE_FLUSH_INTERVAL_MS: &str = "100";
/// How many lines of Envoy's output a start-up error carries.
const ERROR_TAIL_LINES: usize = 20;

/// What to run and where.
#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    pub binary: PathBuf,
    /// The proxy's name in the run (`sidecar`, `egressgateway`); also its directory's name.
    pub name: String,
    /// The bootstrap, written as `bootstrap.json`; its admin address is the caller's choice
    /// (normally `127.0.0.1` port 0).
    pub bootstrap: serde_json::Value,
    /// The run's directory, which must exist; the proxy's files go to `<dir>/<name>/`.
    pub dir: PathBuf,
    /// Envoy's `-l` (`info`, `debug`, ...).
    pub log_level: String,
    /// `--drain-time-s`; `--parent-shutdown-time-s` is one more.
    pub drain_time_s: u32,
}

/// A running Envoy. Dropping it kills Envoy; prefer [`EnvoyProcess::shutdown`].
#[derive(Debug)]
pub struct EnvoyProcess {
    name: String,
    dir: PathBuf,
    pid: u32,
    child: Child,
    admin: AdminClient,
}

/// Why Envoy did not come up.
#[derive(Debug, Error)]
pub enum EnvoyError {
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start {binary}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot check on envoy `{name}`")]
    Wait {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("envoy `{name}` exited during start-up ({status}); its last output:\n{output}")]
    Exited {
        name: String,
        status: ExitStatus,
        /// The tail of `envoy.log`, then of stderr.
        output: String,
    },
    #[error(
        "envoy `{name}` did not answer on its admin API within {waited:?}; last seen: {last_seen}; its last output:\n{output}"
    )]
    StartTimeout {
        name: String,
        waited: Duration,
        last_seen: String,
        output: String,
    },
}

/// Why stopping Envoy could not be confirmed.
#[derive(Debug, Error)]
pub enum ShutdownError {
    #[error("cannot wait for envoy `{name}` (pid {pid}) to exit")]
    Wait {
        name: String,
        pid: u32,
        #[source]
        source: io::Error,
    },
}

impl EnvoyProcess {
    /// Starts Envoy and waits until its admin API answers `/server_info`. Fails at once, with
    /// Envoy's exit status and last output, if it exits first.
    ///
    /// Call this from async code on a runtime thread: `PR_SET_PDEATHSIG` fires when the
    /// *thread* that spawned Envoy ends, and tokio's runtime threads live as long as the runtime
    /// (a `spawn_blocking` thread may not).
    pub async fn start(opts: EnvoyOptions) -> Result<EnvoyProcess, EnvoyError> {
        let dir = opts.dir.join(&opts.name);
        let write = |path: &Path| {
            let path = path.to_owned();
            move |source| EnvoyError::Write { path, source }
        };
        fs::create_dir_all(&dir).map_err(write(&dir))?;
        let bootstrap_path = dir.join("bootstrap.json");
        let admin_address_path = dir.join("admin-address");
        let log_path = dir.join("envoy.log");
        let bootstrap = serde_json::to_vec_pretty(&opts.bootstrap)
            // Impossible: a `Value` always serializes.
            .expect("serializable bootstrap");
        fs::write(&bootstrap_path, bootstrap).map_err(write(&bootstrap_path))?;
        // A stale address file from an earlier start would be mistaken for this one's.
        match fs::remove_file(&admin_address_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(write(&admin_address_path)(e));
            }
            _ => {}
        }
        // Truncated so that output tails describe this start only.
        File::create(&log_path).map_err(write(&log_path))?;
        let stdout =
            File::create(dir.join("stdout.log")).map_err(write(&dir.join("stdout.log")))?;
        let stderr =
            File::create(dir.join("stderr.log")).map_err(write(&dir.join("stderr.log")))?;

        let mut command = Command::new(&opts.binary);
        command
            .arg("-c")
            .arg(&bootstrap_path)
            .arg("--disable-hot-restart")
            .args(["--concurrency", "1"])
            .arg("--admin-address-path")
            .arg(&admin_address_path)
            .arg("--log-path")
            .arg(&log_path)
            // Envoy flushes log files every 10 s by default; tails and access-log checks need
            // what happened just now.
            .args(["--file-flush-interval-msec", FILE_FLUSH_INTERVAL_MS])
            .arg("--drain-time-s")
            .arg(opts.drain_time_s.to_string())
            .arg("--parent-shutdown-time-s")
            .arg((opts.drain_time_s + 1).to_string())
            .arg("-l")
            .arg(&opts.log_level)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .process_group(0);
        die_with_parent(&mut command);
        let mut child = command.spawn().map_err(|source| EnvoyError::Spawn {
            binary: opts.binary.clone(),
            source,
        })?;
        let Some(pid) = child.id() else {
            // Impossible: a child that was just spawned has not been reaped.
            unreachable!("freshly spawned child has a pid");
        };

        match wait_for_admin(&mut child, &opts.name, &dir, &admin_address_path).await {
            Ok(admin) => Ok(EnvoyProcess {
                name: opts.name,
                dir,
                pid,
                child,
                admin,
            }),
            Err(e) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                Err(e)
            }
        }
    }

    pub fn admin(&self) -> &AdminClient {
        &self.admin
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `<dir>/<name>`: the bootstrap, the admin address file and Envoy's output.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("envoy.log")
    }

    /// The last `n` lines of `envoy.log` (empty if it cannot be read).
    pub fn log_tail(&self, n: usize) -> String {
        tail_lines(&self.log_path(), n)
    }

    /// `Some(status)` once Envoy has exited (for instance crashed); `None` while it runs.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, up to 5 s for Envoy to exit, then SIGKILL; returns once it has been reaped.
    pub async fn shutdown(mut self) -> Result<ExitStatus, ShutdownError> {
        let wait_error = |pid, name: &str| {
            let name = name.to_owned();
            move |source| ShutdownError::Wait { name, pid, source }
        };
        if let Some(status) = self
            .child
            .try_wait()
            .map_err(wait_error(self.pid, &self.name))?
        {
            return Ok(status);
        }
        // SAFETY: `kill` has no memory effects; the pid is our child, not yet reaped, so it
        // cannot have been reused.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        match tokio::time::timeout(SHUTDOWN_GRACE, self.child.wait()).await {
            Ok(status) => status.map_err(wait_error(self.pid, &self.name)),
            Err(_) => {
                let _ = self.child.start_kill();
                self.child
                    .wait()
                    .await
                    .map_err(wait_error(self.pid, &self.name))
            }
        }
    }
}

impl Drop for EnvoyProcess {
    fn drop(&mut self) {
        // `id()` is `None` once the child has been reaped, e.g. by `shutdown`.
        if self.child.id().is_none() {
            return;
        }
        let _ = self.child.start_kill();
        wait_until_dead(self.pid, DROP_REAP_WAIT_MS);
        // Reaps it if it died in time; otherwise tokio reaps the orphan later (`kill_on_drop`).
        let _ = self.child.try_wait();
    }
}

/// Polls until the admin address file names an address whose `/server_info` answers.
async fn wait_for_admin(
    child: &mut Child,
    name: &str,
    dir: &Path,
    admin_address_path: &Path,
) -> Result<AdminClient, EnvoyError> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut admin: Option<AdminClient> = None;
    let mut last_seen = format!("no {} yet", admin_address_path.display());
    loop {
        let exited = child.try_wait().map_err(|source| EnvoyError::Wait {
            name: name.to_owned(),
            source,
        })?;
        if let Some(status) = exited {
            return Err(EnvoyError::Exited {
                name: name.to_owned(),
                status,
                output: output_tail(dir, ERROR_TAIL_LINES),
            });
        }
        if admin.is_none() {
            match fs::read_to_string(admin_address_path) {
                Ok(text) => match text.trim().parse::<SocketAddr>() {
                    Ok(addr) => admin = Some(AdminClient::new(addr)),
                    // Possibly caught mid-write; the next poll sees the whole address.
                    Err(_) => last_seen = format!("admin address file says {text:?}"),
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => last_seen = format!("cannot read {}: {e}", admin_address_path.display()),
            }
        }
        if let Some(client) = &admin {
            match client.server_info().await {
                Ok(_) => return Ok(client.clone()),
                Err(e) => last_seen = e.to_string(),
            }
        }
        if Instant::now() >= deadline {
            return Err(EnvoyError::StartTimeout {
                name: name.to_owned(),
                waited: START_TIMEOUT,
                last_seen,
                output: output_tail(dir, ERROR_TAIL_LINES),
            });
        }
        tokio::time::sleep(START_POLL).await;
    }
}

/// Envoy's last words: the tail of `envoy.log`, then of stderr, where errors found before
/// logging starts (bad flags, an unreadable bootstrap) are printed.
fn output_tail(dir: &Path, n: usize) -> String {
    let mut out = String::new();
    for file in ["envoy.log", "stderr.log"] {
        let tail = tail_lines(&dir.join(file), n);
        if !tail.is_empty() {
            out.push_str(&format!("--- {file}:\n{tail}\n"));
        }
    }
    if out.is_empty() {
        out.push_str("(no output)");
    }
    out
}

/// The last `n` lines of a file, reading at most its last 256 KiB.
fn tail_lines(path: &Path, n: usize) -> String {
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

#[cfg(target_os = "linux")]
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

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

/// Blocks up to `timeout_ms` until the (killed, unreaped) child `pid` has exited, so `Drop` can
/// reap it at once. Waits on a pidfd rather than reaping, which stays tokio's job.
#[cfg(target_os = "linux")]
fn wait_until_dead(pid: u32, timeout_ms: i32) {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: plain syscalls; the pid is our unreaped child, so it names that process.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return;
    }
    // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    let mut poll = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; the result does not matter, `try_wait` checks afterwards.
    unsafe { libc::poll(&mut poll, 1, timeout_ms) };
}

#[cfg(not(target_os = "linux"))]
fn wait_until_dead(_pid: u32, _timeout_ms: i32) {}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::envoy::locate::binary_for_tests;
    use serde_json::{Value, json};

    /// A bootstrap with an admin API on a free port and, when `listener_port` is given, one
    /// HTTP listener on it that answers `200 held` to everything.
    pub(crate) fn bootstrap(listener_port: Option<u16>, reuse_port: bool) -> Value {
        let listeners: Vec<Value> = listener_port
            .map(|port| json!({
                "name": "direct",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "enable_reuse_port": reuse_port,
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "direct",
                        "route_config": {"virtual_hosts": [{
                            "name": "all", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"},
                                        "direct_response": {"status": 200, "body": {"inline_string": "held"}}}]
                        }]},
                        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
                    }
                }]}]
            }))
            .into_iter()
            .collect();
        json!({
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "static_resources": {
                "listeners": listeners,
                "clusters": [{
                    "name": "outbound|443||edition.cnn.com",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {"cluster_name": "outbound|443||edition.cnn.com", "endpoints": [{"lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9}}}}
                    ]}]}
                }]
            }
        })
    }

    pub(crate) fn options(binary: &Path, dir: &Path, bootstrap: Value) -> EnvoyOptions {
        EnvoyOptions {
            binary: binary.to_owned(),
            name: "sidecar".into(),
            bootstrap,
            dir: dir.to_owned(),
            log_level: "info".into(),
            drain_time_s: 1,
        }
    }

    fn proc_gone(pid: u32) -> bool {
        !Path::new(&format!("/proc/{pid}")).exists()
    }

    #[tokio::test]
    async fn starts_serves_admin_and_shuts_down() {
        let Some(envoy) = binary_for_tests() else {
            return;
        };
        let run = tempfile::tempdir().unwrap();
        let mut proxy =
            EnvoyProcess::start(options(&envoy.path, run.path(), bootstrap(None, false)))
                .await
                .unwrap();
        let pid = proxy.pid();
        assert_eq!(proxy.name(), "sidecar");
        assert!(run.path().join("sidecar/bootstrap.json").is_file());
        assert!(run.path().join("sidecar/admin-address").is_file());
        assert!(proxy.try_exited().is_none());

        let info = proxy.admin().server_info().await.unwrap();
        assert_eq!(info["command_line_options"]["concurrency"], 1, "{info:#}");
        assert_eq!(info["command_line_options"]["drain_time"], "1s", "{info:#}");
        assert!(proxy.admin().ready().await.unwrap());

        let dump = proxy.admin().config_dump().await.unwrap();
        let dump_text = dump.to_string();
        assert!(
            dump_text.contains("\"outbound|443||edition.cnn.com\""),
            "cluster missing from config_dump"
        );
        let stats = proxy.admin().stats().await.unwrap();
        assert_eq!(
            stats.get("cluster.outbound|443||edition.cnn.com.upstream_rq_total"),
            Some(&0),
            "{} stats",
            stats.len()
        );
        assert_eq!(stats.get("server.live"), Some(&1));
        // The log reaches the file at the next flush, within FILE_FLUSH_INTERVAL_MS.
        let deadline = Instant::now() + Duration::from_secs(5);
        let log = loop {
            let log = fs::read_to_string(proxy.log_path()).unwrap();
            if log.contains("starting main dispatch loop") {
                break log;
            }
            assert!(
                Instant::now() < deadline,
                "not in the log after 5 s:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let tail = proxy.log_tail(3);
        assert_eq!(tail.lines().count(), 3, "{tail}");
        assert!(log.trim_end().ends_with(&tail), "{tail}");

        // Envoy sits in its own process group.
        // SAFETY: getpgid only reads.
        assert_eq!(
            unsafe { libc::getpgid(pid as libc::pid_t) },
            pid as libc::pid_t
        );

        let status = proxy.shutdown().await.unwrap();
        assert_eq!(status.code(), Some(0), "{status}");
        assert!(proc_gone(pid), "pid {pid} still exists after shutdown");
    }

    #[tokio::test]
    async fn broken_bootstrap_fails_with_envoys_words() {
        let Some(envoy) = binary_for_tests() else {
            return;
        };
        let run = tempfile::tempdir().unwrap();
        let mut bootstrap = bootstrap(None, false);
        bootstrap["static_resources"]["bogus_field"] = json!(1);
        let err = EnvoyProcess::start(options(&envoy.path, run.path(), bootstrap))
            .await
            .unwrap_err();
        let EnvoyError::Exited { status, output, .. } = &err else {
            panic!("expected Exited, got {err:?}");
        };
        assert!(!status.success());
        assert!(output.contains("bogus_field"), "{err}");
    }

    #[tokio::test]
    async fn port_in_use_fails_with_envoys_words() {
        let Some(envoy) = binary_for_tests() else {
            return;
        };
        let run = tempfile::tempdir().unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = EnvoyProcess::start(options(
            &envoy.path,
            run.path(),
            bootstrap(Some(port), false),
        ))
        .await
        .unwrap_err();
        assert!(matches!(err, EnvoyError::Exited { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("Address already in use") && text.contains(&port.to_string()),
            "{text}"
        );
    }

    #[tokio::test]
    async fn drop_kills_and_reaps() {
        let Some(envoy) = binary_for_tests() else {
            return;
        };
        let run = tempfile::tempdir().unwrap();
        let proxy = EnvoyProcess::start(options(&envoy.path, run.path(), bootstrap(None, false)))
            .await
            .unwrap();
        let pid = proxy.pid();
        assert!(!proc_gone(pid));
        drop(proxy);
        assert!(proc_gone(pid), "pid {pid} still exists after drop");
    }

    #[tokio::test]
    async fn crash_is_seen_by_try_exited() {
        let Some(envoy) = binary_for_tests() else {
            return;
        };
        let run = tempfile::tempdir().unwrap();
        let mut proxy =
            EnvoyProcess::start(options(&envoy.path, run.path(), bootstrap(None, false)))
                .await
                .unwrap();
        // SAFETY: signals our own unreaped child.
        unsafe { libc::kill(proxy.pid() as libc::pid_t, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = proxy.try_exited() {
                break status;
            }
            assert!(Instant::now() < deadline, "no exit seen 10 s after SIGKILL");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        // Shutting down an exited proxy reports how it ended.
        let again = proxy.shutdown().await.unwrap();
        assert_eq!(again, status);
    }

    /// `PR_SET_PDEATHSIG` is tied to the spawning thread: a proxy started (and leaked) on a
    /// thread that then ends is killed by the kernel, as it would be if the harness died.
    #[cfg(target_os = "linux")]
    #[test]
    fn envoy_dies_with_its_parent() {
        let Some(envoy) = binary_for_tests() else {
            return;
        };
        let run = tempfile::tempdir().unwrap();
        let opts = options(&envoy.path, run.path(), bootstrap(None, false));
        let pid = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let proxy = rt.block_on(EnvoyProcess::start(opts)).unwrap();
            let pid = proxy.pid();
            std::mem::forget(proxy);
            pid
        })
        .join()
        .unwrap();
        // The leaked child is still ours to reap.
        wait_until_dead(pid, 10_000);
        let mut raw = 0;
        // SAFETY: waits for our own child, whose Child handle was leaked.
        let reaped = unsafe { libc::waitpid(pid as libc::pid_t, &mut raw, libc::WNOHANG) };
        if reaped != pid as libc::pid_t {
            // SAFETY: as above; clean up before failing.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("envoy {pid} outlived the thread that started it by 10 s");
        }
        assert!(libc::WIFSIGNALED(raw), "status {raw:#x}");
        assert_eq!(libc::WTERMSIG(raw), libc::SIGKILL);
    }
}
