//! One Envoy child process, owned through `crate::process::Supervised`, which always stops it.
//!
//! [`EnvoyProcess::start`] writes the bootstrap into the proxy's own directory of the run, starts
//! Envoy and returns once its admin API answers, or fails with Envoy's own last words the moment
//! it exits. [`EnvoyProcess::shutdown`] stops it gracefully; dropping the guard kills it.
//!
//! This module does not build bootstraps, choose ports or wait for xDS; readiness beyond "the
//! admin API answers" is the caller's condition to wait for.

use std::fs::{self, File};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use thiserror::Error;
use tokio::process::Command;

use super::admin::AdminClient;
use crate::process::{Death, ProcessError, Supervised, tail_lines};
use crate::wait::{Look, Wait, WaitError};

/// How long Envoy may take to answer on its admin API. Generous: the machine may be busy.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `shutdown` waits after SIGTERM before SIGKILL.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// `--file-flush-interval-msec` for Envoy's log and file access logs.
const FILE_FLUSH_INTERVAL_MS: &str = "100";
/// How many lines of Envoy's output a start-up error carries.
const ERROR_TAIL_LINES: usize = 20;

/// What to run and where.
#[derive(Debug, Clone)]
pub(crate) struct EnvoyOptions {
    pub binary: PathBuf,
    /// The proxy's name in the run (`sidecar`, `egress-gateway`); also its directory's name.
    pub name: String,
    /// The bootstrap, written as `bootstrap.json`; its admin address is the caller's choice
    /// (normally `127.0.0.1` port 0).
    pub bootstrap: serde_json::Value,
    /// The run's directory, which must exist; the proxy's files go to `<dir>/<name>/`.
    pub dir: PathBuf,
    /// Envoy's `-l` (`info`, `debug`, ...).
    pub log_level: String,
    /// Extra command-line flags (the local network model's, such as `--drain-time-s`).
    pub extra_args: Vec<String>,
}

/// A running Envoy. Dropping it kills Envoy; prefer [`EnvoyProcess::shutdown`].
#[derive(Debug)]
pub(crate) struct EnvoyProcess {
    dir: PathBuf,
    process: Supervised,
    admin: AdminClient,
}

/// Why Envoy did not come up.
#[derive(Debug, Error)]
pub(crate) enum EnvoyError {
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Spawn(#[from] ProcessError),
    #[error("envoy `{name}` exited during start-up ({how}); its last output:\n{output}")]
    Exited {
        name: String,
        how: String,
        /// The tail of `envoy.log`, then of stderr.
        output: String,
    },
    #[error("envoy `{name}` did not answer on its admin API: {waited}; its last output:\n{output}")]
    StartTimeout {
        name: String,
        waited: String,
        output: String,
    },
}

impl EnvoyProcess {
    /// Starts Envoy and waits until its admin API answers `/server_info`. Fails at once, with
    /// Envoy's exit status and last output, if it exits first.
    pub(crate) async fn start(opts: EnvoyOptions) -> Result<EnvoyProcess, EnvoyError> {
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
            .args(&opts.extra_args)
            .arg("-l")
            .arg(&opts.log_level)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let process = Supervised::spawn(format!("the {} Envoy", opts.name), command, log_path)?;
        let admin = tokio::select! {
            admin = wait_for_admin(&opts.name, &admin_address_path) => admin,
            death = process.death() => Err(exited(&opts.name, &dir, &death)),
        };
        match admin {
            Ok(admin) => Ok(EnvoyProcess {
                dir,
                process,
                admin,
            }),
            Err(e) => {
                // Stopped (and reaped) before the error is reported; nothing of it outlives it.
                let _ = process.shutdown(Duration::ZERO).await;
                Err(match e {
                    EnvoyError::StartTimeout { name, waited, .. } => EnvoyError::StartTimeout {
                        name,
                        waited,
                        output: output_tail(&dir, ERROR_TAIL_LINES),
                    },
                    other => other,
                })
            }
        }
    }

    pub(crate) fn admin(&self) -> &AdminClient {
        &self.admin
    }

    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The guard of the process, for watching it die.
    pub(crate) fn process(&self) -> &Supervised {
        &self.process
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join("envoy.log")
    }

    /// The last `n` lines of `envoy.log` (empty if it cannot be read).
    pub(crate) fn log_tail(&self, n: usize) -> String {
        tail_lines(&self.log_path(), n)
    }

    /// `Some(status)` once Envoy has exited (for instance crashed); `None` while it runs.
    #[cfg(test)]
    pub(crate) fn try_exited(&self) -> Option<ExitStatus> {
        self.process.exited()
    }

    /// SIGTERM, up to 5 s for Envoy to exit, then SIGKILL; returns once it is gone.
    pub(crate) async fn shutdown(self) -> Result<ExitStatus, ProcessError> {
        self.process.shutdown(SHUTDOWN_GRACE).await
    }
}

fn exited(name: &str, dir: &Path, death: &Death) -> EnvoyError {
    EnvoyError::Exited {
        name: name.to_owned(),
        how: death.how.clone(),
        output: output_tail(dir, ERROR_TAIL_LINES),
    }
}

/// Until the admin address file names an address whose `/server_info` answers.
async fn wait_for_admin(name: &str, admin_address_path: &Path) -> Result<AdminClient, EnvoyError> {
    let admin: std::cell::RefCell<Option<AdminClient>> = Default::default();
    let wait = Wait::new(
        format!("envoy `{name}`'s admin API to answer"),
        START_TIMEOUT,
    );
    let result = wait
        .poll(|| {
            let admin = &admin;
            async move {
                if admin.borrow().is_none() {
                    match fs::read_to_string(admin_address_path) {
                        Ok(text) => match text.trim().parse::<SocketAddr>() {
                            Ok(addr) => *admin.borrow_mut() = Some(AdminClient::new(addr)),
                            // Possibly caught mid-write; the next look sees the whole address.
                            Err(_) => {
                                return Ok(Look::NotYet(format!(
                                    "admin address file says {text:?}"
                                )));
                            }
                        },
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            return Ok(Look::NotYet(format!(
                                "no {} yet",
                                admin_address_path.display()
                            )));
                        }
                        Err(e) => {
                            return Ok(Look::NotYet(format!(
                                "cannot read {}: {e}",
                                admin_address_path.display()
                            )));
                        }
                    }
                }
                let client = admin.borrow().clone().expect("set above");
                Ok::<_, std::convert::Infallible>(match client.server_info().await {
                    Ok(_) => Look::Ready(client),
                    Err(e) => Look::NotYet(e.to_string()),
                })
            }
        })
        .await;
    match result {
        Ok(settled) => Ok(settled.value),
        Err(WaitError::TimedOut(t)) => Err(EnvoyError::StartTimeout {
            name: name.to_owned(),
            waited: t.to_string(),
            output: String::new(),
        }),
        Err(WaitError::Failed(never)) => match never {},
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
            extra_args: vec!["--drain-time-s".into(), "1".into()],
        }
    }

    fn proc_gone(pid: u32) -> bool {
        crate::process::tests::gone(pid)
    }

    #[tokio::test]
    async fn starts_serves_admin_and_shuts_down() {
        let Some(envoy) = binary_for_tests() else {
            return;
        };
        let run = tempfile::tempdir().unwrap();
        let proxy = EnvoyProcess::start(options(&envoy.path, run.path(), bootstrap(None, false)))
            .await
            .unwrap();
        let pid = proxy.pid();
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
        let log = Wait::new("Envoy to log its start", Duration::from_secs(5))
            .poll(|| async {
                let log = fs::read_to_string(proxy.log_path()).unwrap();
                Ok::<_, ()>(if log.contains("starting main dispatch loop") {
                    Look::Ready(log)
                } else {
                    Look::NotYet(log)
                })
            })
            .await
            .unwrap_or_else(|e| panic!("{e:?}"))
            .value;
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
        let EnvoyError::Exited { how, output, .. } = &err else {
            panic!("expected Exited, got {err:?}");
        };
        assert!(how.starts_with("exit code"), "{how}");
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
    async fn a_crash_is_seen_when_it_happens() {
        let Some(envoy) = binary_for_tests() else {
            return;
        };
        let run = tempfile::tempdir().unwrap();
        let proxy = EnvoyProcess::start(options(&envoy.path, run.path(), bootstrap(None, false)))
            .await
            .unwrap();
        // SAFETY: signals our own unreaped child.
        unsafe { libc::kill(proxy.pid() as libc::pid_t, libc::SIGKILL) };
        let death = tokio::time::timeout(Duration::from_secs(2), proxy.process().death())
            .await
            .expect("the death was seen within 2 s");
        assert_eq!(death.how, "killed by SIGKILL");
        assert_eq!(death.who, "the sidecar Envoy");
        assert!(proxy.try_exited().is_some());
        // Shutting down an exited proxy reports how it ended.
        let again = proxy.shutdown().await.unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&again),
            Some(libc::SIGKILL)
        );
    }
}
