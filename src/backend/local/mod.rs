//! The local backend: no cluster, no containers. Two real Envoys play the sleep pod's sidecar and
//! `istio-egressgateway`; the in-process control plane pushes them what istiod would, mapped onto
//! loopback by `crate::local_network`; a local origin with the run's certificates plays
//! `edition.cnn.com`; real curl is the client.
//!
//! Everything it starts is owned here and stops on [`LocalBackend::shutdown`] or, failing that,
//! on drop: Envoy children, the origin, the control plane, the port reservations, the run's
//! temporary directory.

mod bootstrap;
mod curl;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::{Backend, BackendError, Rejection, StepError, StepReport};
use crate::envoy::{EnvoyBinary, EnvoyOptions, EnvoyProcess};
use crate::istio::{IstioObject, ObjectKey};
use crate::local_network::{self, LocalNetwork, PortKey};
use crate::mesh::{AppliedConfig, MeshSettings, ProxyRole, Registry};
use crate::observe::{CommandOutput, OriginHit};
use crate::origin::{Origin, OriginConfig, RunPki};
use crate::ports::PortReservation;
use crate::suite::{CommandLine, Suite};
use crate::translate::{ProxyWorkloads, Translation, translate};
use crate::xds::{XdsError, XdsHandle, XdsServer};

/// How long a proxy may take to accept a change before the step fails.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Config checks read Envoy's own dump after the ACK: only draining listeners may lag.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub envoy: EnvoyBinary,
    pub mesh: MeshSettings,
    /// The namespace `kubectl` acts in.
    pub namespace: String,
    /// Hosts the origin plays: every ServiceEntry host of the suite.
    pub origin_hosts: Vec<String>,
    /// External ports commands may reach with no listener of their own (`virtualOutbound`).
    pub external_ports: BTreeSet<u32>,
    /// Leave the run's directory (logs, bootstraps, CA) behind.
    pub keep_dir: bool,
    pub envoy_log_level: String,
}

impl LocalOptions {
    /// What a suite needs from the local backend.
    pub fn for_suite(suite: &Suite, envoy: EnvoyBinary) -> LocalOptions {
        let mut origin_hosts: Vec<String> = suite
            .all_objects()
            .filter_map(|o| match &o.spec {
                crate::istio::Spec::ServiceEntry(se) => Some(se.hosts.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        origin_hosts.sort();
        origin_hosts.dedup();
        let mut external_ports: BTreeSet<u32> = [80, 443].into();
        for command in suite.all_commands() {
            external_ports.extend(curl::url_targets(&command.argv).into_iter().map(|(_, p)| p));
        }
        LocalOptions {
            envoy,
            mesh: suite.mesh.clone(),
            namespace: suite.namespace.clone(),
            origin_hosts,
            external_ports,
            keep_dir: false,
            envoy_log_level: "warning".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("creating the run directory: {0}")]
    Dir(std::io::Error),
    #[error("the origin's certificates: {0}")]
    Pki(#[from] crate::origin::PkiError),
    #[error("writing the run's CA to {path}: {source}")]
    WriteCa {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting the origin: {0}")]
    Origin(#[from] crate::origin::OriginError),
    #[error("starting the control plane: {0}")]
    Xds(#[from] XdsError),
    #[error("reserving a loopback port: {0}")]
    Port(std::io::Error),
    #[error("the baseline config: {0}")]
    Baseline(String),
    #[error("starting the {proxy} Envoy: {source}")]
    Envoy {
        proxy: ProxyRole,
        source: crate::envoy::EnvoyError,
    },
    #[error("the {proxy} Envoy did not take its first config: {message}")]
    FirstAck { proxy: ProxyRole, message: String },
    #[error("{0}")]
    Curl(String),
}

/// What shutting down found: anything of the run still there is a leak.
#[derive(Debug, Clone, Default)]
pub struct CleanupReport {
    pub envoy_pids: Vec<u32>,
    pub ports: Vec<u16>,
    pub dir: PathBuf,
    pub dir_kept: bool,
    /// What outlived the run, in words; empty when nothing did.
    pub leftovers: Vec<String>,
}

pub struct LocalBackend {
    // Field order is drop order: proxies first, then what they talk to.
    proxies: BTreeMap<ProxyRole, EnvoyProcess>,
    xds: Option<XdsServer>,
    origin: Option<Origin>,
    reservations: BTreeMap<PortKey, PortReservation>,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    keep_dir: bool,
    handle: XdsHandle,
    node_ids: BTreeMap<ProxyRole, String>,
    registry: Registry,
    workloads: ProxyWorkloads,
    mesh: MeshSettings,
    namespace: String,
    external_ports: BTreeSet<u32>,
    ca_file: PathBuf,
    config: AppliedConfig,
    /// The config both proxies hold now (localised).
    current: Translation,
}

impl LocalBackend {
    pub async fn start(opts: LocalOptions) -> Result<LocalBackend, LocalError> {
        // The client is part of the environment: without it nothing can be checked.
        curl::check_available()
            .await
            .map_err(|e| LocalError::Curl(e.to_string()))?;
        sweep_stale_run_dirs(&std::env::temp_dir());
        let dir = tempfile::Builder::new()
            .prefix(RUN_DIR_PREFIX)
            .tempdir()
            .map_err(LocalError::Dir)?;
        let dir_path = dir.path().to_path_buf();
        std::fs::write(dir_path.join(OWNER_FILE), std::process::id().to_string())
            .map_err(LocalError::Dir)?;
        if opts.keep_dir {
            // Marked so that a later run's sweep leaves it to the user, even if this one is
            // killed.
            std::fs::write(dir_path.join(KEPT_FILE), "").map_err(LocalError::Dir)?;
        }
        let hosts = if opts.origin_hosts.is_empty() {
            vec!["edition.cnn.com".to_string()]
        } else {
            opts.origin_hosts.clone()
        };
        let pki = Arc::new(RunPki::generate(&hosts)?);
        let ca_file = dir_path.join("ca.pem");
        pki.write_ca_pem(&ca_file)
            .map_err(|source| LocalError::WriteCa {
                path: ca_file.clone(),
                source,
            })?;
        let origin = Origin::start(OriginConfig {
            pki,
            hosts,
            politics_body_len: crate::origin::POLITICS_BODY_LEN,
        })
        .await?;
        let xds = XdsServer::start().await?;
        let registry = Registry::tutorial();
        let workloads = ProxyWorkloads::tutorial();
        let mut node_ids = BTreeMap::new();
        for role in ProxyRole::ALL {
            let workload = registry
                .workload(workload_name(&workloads, role))
                .ok_or_else(|| LocalError::Baseline(format!("no workload plays the {role}")))?;
            node_ids.insert(role, bootstrap::node_id(role, workload));
        }
        let mut backend = LocalBackend {
            proxies: BTreeMap::new(),
            handle: xds.handle(),
            xds: Some(xds),
            reservations: BTreeMap::new(),
            dir: Some(dir),
            dir_path,
            keep_dir: opts.keep_dir,
            node_ids,
            registry,
            workloads,
            mesh: opts.mesh,
            namespace: opts.namespace,
            external_ports: opts.external_ports,
            ca_file,
            config: AppliedConfig::default(),
            current: Translation::default(),
            origin: Some(origin),
        };
        // The baseline goes out before the proxies start, so their first answer is complete.
        let baseline = backend
            .prepare(&AppliedConfig::default())
            .map_err(|e| LocalError::Baseline(e.to_string()))?;
        backend.publish(&baseline);
        backend.current = baseline;
        let xds_addr = backend
            .xds
            .as_ref()
            .map(XdsServer::addr)
            .ok_or_else(|| LocalError::Baseline("the control plane stopped".into()))?;
        let started = futures::future::join_all(ProxyRole::ALL.map(|role| {
            let workload = backend
                .registry
                .workload(workload_name(&backend.workloads, role))
                .cloned()
                .expect("checked above");
            let options = EnvoyOptions {
                binary: opts.envoy.path.clone(),
                name: role.as_str().to_string(),
                bootstrap: bootstrap::bootstrap(&backend.node_ids[&role], &workload, xds_addr),
                dir: backend.dir_path.clone(),
                log_level: opts.envoy_log_level.clone(),
                drain_time_s: 0,
            };
            async move { (role, EnvoyProcess::start(options).await) }
        }))
        .await;
        for (role, result) in started {
            let process = result.map_err(|source| LocalError::Envoy {
                proxy: role,
                source,
            })?;
            backend.proxies.insert(role, process);
        }
        for role in ProxyRole::ALL {
            backend
                .handle
                .wait_acked(&backend.node_ids[&role], ACK_TIMEOUT)
                .await
                .map_err(|e| LocalError::FirstAck {
                    proxy: role,
                    message: e.to_string(),
                })?;
        }
        Ok(backend)
    }

    /// Translate `config`, reserve any port it newly needs and map it onto loopback.
    fn prepare(&mut self, config: &AppliedConfig) -> Result<Translation, StepError> {
        let istio = translate(config, &self.registry, &self.mesh, &self.workloads)?;
        for key in local_network::required_ports(&istio, &self.registry, &self.external_ports) {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.reservations.entry(key) {
                slot.insert(
                    PortReservation::reserve().map_err(|e| {
                        StepError::Backend(format!("reserving a loopback port: {e}"))
                    })?,
                );
            }
        }
        local_network::localize(&istio, &self.registry, &self.network())
            .map_err(|e| StepError::Backend(e.to_string()))
    }

    fn network(&self) -> LocalNetwork {
        let origin = self.origin.as_ref();
        LocalNetwork {
            ports: self
                .reservations
                .iter()
                .map(|(k, r)| (k.clone(), r.port()))
                .collect(),
            origin_http: origin
                .map(Origin::http_addr)
                .unwrap_or_else(|| ([127, 0, 0, 1], 0).into()),
            origin_tls: origin
                .map(Origin::tls_addr)
                .unwrap_or_else(|| ([127, 0, 0, 1], 0).into()),
            roots_file: self.ca_file.clone(),
            external_ports: self.external_ports.clone(),
        }
    }

    fn publish(&self, translation: &Translation) {
        self.handle.publish(
            &self.node_ids[&ProxyRole::Sidecar],
            translation.sidecar.clone(),
        );
        self.handle.publish(
            &self.node_ids[&ProxyRole::EgressGateway],
            translation.gateway.clone(),
        );
    }

    /// Push `config` to both proxies and wait until both have ACKed it.
    async fn converge(&mut self, config: AppliedConfig) -> Result<StepReport, StepError> {
        let translation = self.prepare(&config)?;
        let started = Instant::now();
        self.publish(&translation);
        self.config = config;
        self.current = translation;
        let waits = ProxyRole::ALL.map(|role| {
            let handle = self.handle.clone();
            let node = self.node_ids[&role].clone();
            async move { (role, handle.wait_acked(&node, ACK_TIMEOUT).await) }
        });
        for (role, result) in futures::future::join_all(waits).await {
            match result {
                Ok(_) => {}
                Err(XdsError::Nacked {
                    type_url,
                    version,
                    message,
                    ..
                }) => {
                    return Err(StepError::Rejected(Box::new(Rejection {
                        proxy: role,
                        type_url: type_url.to_string(),
                        version: version.to_string(),
                        detail: message,
                    })));
                }
                Err(other) => {
                    let log = self
                        .proxies
                        .get(&role)
                        .map(|p| p.log_tail(10))
                        .unwrap_or_default();
                    return Err(StepError::Backend(format!("{role}: {other}\n{log}")));
                }
            }
        }
        Ok(StepReport {
            latency: started.elapsed(),
        })
    }

    fn proxy(&mut self, role: ProxyRole, action: &str) -> Result<&EnvoyProcess, BackendError> {
        let process = self.proxies.get_mut(&role).ok_or_else(|| BackendError {
            backend: "local",
            action: action.to_string(),
            message: format!("the {role} Envoy is not running"),
        })?;
        if let Some(status) = process.try_exited() {
            return Err(BackendError {
                backend: "local",
                action: action.to_string(),
                message: format!(
                    "the {role} Envoy exited ({status}); its log ends:\n{}",
                    process.log_tail(15)
                ),
            });
        }
        Ok(process)
    }

    /// The run's directory: logs, bootstraps, the CA.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// How to reach the running mesh by hand (for `--keep`).
    pub fn access(&self) -> String {
        let mut out = String::new();
        for (role, process) in &self.proxies {
            out.push_str(&format!(
                "{role}: admin http://{} (pid {}, log {})\n",
                process.admin().addr(),
                process.pid(),
                process.log_path().display()
            ));
        }
        if let Some(origin) = &self.origin {
            out.push_str(&format!(
                "origin (edition.cnn.com): http {} https {}\n",
                origin.http_addr(),
                origin.tls_addr()
            ));
        }
        let example = CommandLine {
            name: "example".into(),
            argv: [
                "curl",
                "-sL",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "http://edition.cnn.com/politics",
            ]
            .map(String::from)
            .to_vec(),
        };
        if let Ok(argv) = self.command_argv(&example) {
            let line = CommandLine {
                name: String::new(),
                argv,
            };
            out.push_str(&format!(
                "the tutorial's curl, as the sleep pod runs it:\n  {line}\n"
            ));
        }
        out
    }

    fn command_argv(&self, command: &CommandLine) -> Result<Vec<String>, String> {
        let mut hosts: BTreeSet<String> = curl::url_targets(&command.argv)
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        for (_, object) in self.config.iter() {
            if let crate::istio::Spec::ServiceEntry(se) = &object.spec {
                hosts.extend(se.hosts.iter().cloned());
            }
        }
        hosts.extend(self.registry.services.iter().map(|s| s.hostname()));
        let mut ports = self.external_ports.clone();
        ports.extend(curl::url_targets(&command.argv).into_iter().map(|(_, p)| p));
        let net = self.network();
        let mut connect_to = Vec::new();
        for host in &hosts {
            for port in &ports {
                match local_network::connect_to(
                    host,
                    *port,
                    &self.current.sidecar.listeners,
                    &self.registry,
                    &net,
                ) {
                    Ok(local) => connect_to.push((host.clone(), *port, local)),
                    Err(local_network::LocalizeError::NoRoute { .. }) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        Ok(curl::local_argv(&command.argv, &connect_to, &self.ca_file))
    }

    /// Stop everything, then check that nothing of the run is left: no Envoy process, no held or
    /// bound port, no directory (unless it was to be kept).
    pub async fn shutdown(mut self) -> CleanupReport {
        let mut report = CleanupReport {
            dir: self.dir_path.clone(),
            dir_kept: self.keep_dir,
            ..Default::default()
        };
        for (role, process) in std::mem::take(&mut self.proxies) {
            let pid = process.pid();
            report.envoy_pids.push(pid);
            if let Err(e) = process.shutdown().await {
                report
                    .leftovers
                    .push(format!("the {role} Envoy (pid {pid}) did not stop: {e}"));
            }
        }
        report.ports = self
            .reservations
            .values()
            .map(PortReservation::port)
            .collect();
        if let Some(xds) = self.xds.take() {
            report.ports.push(xds.addr().port());
            xds.shutdown().await;
        }
        if let Some(origin) = self.origin.take() {
            report
                .ports
                .extend([origin.http_addr().port(), origin.tls_addr().port()]);
            origin.shutdown().await;
        }
        self.reservations.clear();
        if let Some(dir) = self.dir.take() {
            if self.keep_dir {
                let _ = dir.keep();
            } else if let Err(e) = dir.close() {
                report
                    .leftovers
                    .push(format!("removing {}: {e}", report.dir.display()));
            }
        }
        report.leftovers.extend(leftovers(&report));
        report
    }
}

const RUN_DIR_PREFIX: &str = "egress-conformance-";
/// The pid of the run that owns a run directory.
const OWNER_FILE: &str = "owner.pid";
/// Present in a directory kept on purpose (`--keep`).
const KEPT_FILE: &str = "kept";

/// Remove the directories of runs that were killed outright (SIGKILL leaves no chance to clean
/// up): their owner is gone and nobody asked to keep them. Best effort; a directory in use by a
/// live run is never touched.
pub fn sweep_stale_run_dirs(temp: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry
            .file_name()
            .to_string_lossy()
            .starts_with(RUN_DIR_PREFIX);
        if !ours || path.join(KEPT_FILE).exists() {
            continue;
        }
        let Some(owner) = std::fs::read_to_string(path.join(OWNER_FILE))
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{owner}")).exists() && std::fs::remove_dir_all(&path).is_ok()
        {
            removed.push(path);
        }
    }
    removed
}

fn workload_name(workloads: &ProxyWorkloads, role: ProxyRole) -> &str {
    match role {
        ProxyRole::Sidecar => &workloads.sidecar,
        ProxyRole::EgressGateway => &workloads.gateway,
    }
}

/// What of a stopped run is still there.
pub fn leftovers(report: &CleanupReport) -> Vec<String> {
    let mut out = Vec::new();
    for pid in &report.envoy_pids {
        if Path::new(&format!("/proc/{pid}")).exists() {
            out.push(format!("Envoy pid {pid} is still running"));
        }
    }
    // The Envoys are gone (above), so their sockets are; what is left to check is this process.
    // Binding the ports again would be no proof: another run may rightly hold them by now.
    for port in held_by_this_process(&report.ports) {
        out.push(format!("127.0.0.1:{port} is still in use by this process"));
    }
    if !report.dir_kept && report.dir.exists() {
        out.push(format!("{} still exists", report.dir.display()));
    }
    out
}

/// Which of `ports` a listening or connected TCP socket of this process still has, from
/// `/proc/net/tcp` and the process's open descriptors. (Reservations, bound but not listening,
/// are not in that table; they are released by dropping them.)
fn held_by_this_process(ports: &[u16]) -> Vec<u16> {
    let wanted: BTreeSet<u16> = ports.iter().copied().collect();
    let mut inodes: BTreeMap<String, u16> = BTreeMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(inode)) = (fields.get(1), fields.get(9)) else {
                continue;
            };
            let port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if let Some(port) = port.filter(|p| wanted.contains(p)) {
                inodes.insert(format!("socket:[{inode}]"), port);
            }
        }
    }
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut held: Vec<u16> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| inodes.get(target.to_string_lossy().as_ref()).copied())
        .collect();
    held.sort();
    held.dedup();
    held
}

impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn reaches_live_site(&self) -> bool {
        false
    }

    fn settle_timeout(&self) -> Duration {
        SETTLE_TIMEOUT
    }

    async fn apply(&mut self, objects: &[IstioObject]) -> Result<StepReport, StepError> {
        let mut config = self.config.clone();
        for object in objects {
            config.apply(object.clone(), &self.namespace);
        }
        self.converge(config).await
    }

    async fn delete(&mut self, key: &ObjectKey) -> Result<StepReport, StepError> {
        let mut config = self.config.clone();
        if config.delete(key).is_none() {
            return Err(StepError::NotFound(key.clone()));
        }
        self.converge(config).await
    }

    async fn run(&mut self, command: &CommandLine) -> Result<CommandOutput, BackendError> {
        let error = |message: String| BackendError {
            backend: "local",
            action: format!("running {}", command.name),
            message,
        };
        let argv = self.command_argv(command).map_err(error)?;
        curl::run(&argv).await.map_err(|e| error(e.to_string()))
    }

    async fn config_dump(&mut self, proxy: ProxyRole) -> Result<Value, BackendError> {
        let process = self.proxy(proxy, "reading config_dump")?;
        process
            .admin()
            .config_dump()
            .await
            .map_err(|e| BackendError {
                backend: "local",
                action: format!("reading the {proxy}'s config_dump"),
                message: e.to_string(),
            })
    }

    async fn stats(&mut self, proxy: ProxyRole) -> Result<BTreeMap<String, u64>, BackendError> {
        let process = self.proxy(proxy, "reading stats")?;
        process.admin().stats().await.map_err(|e| BackendError {
            backend: "local",
            action: format!("reading the {proxy}'s stats"),
            message: e.to_string(),
        })
    }

    fn origin_hits(&self) -> Option<Vec<OriginHit>> {
        let origin = self.origin.as_ref()?;
        Some(
            origin
                .requests()
                .into_iter()
                .map(|r| OriginHit {
                    host: r.host,
                    path: r.path,
                    tls: r.tls,
                    sni: r.sni,
                    status: r.status,
                })
                .collect(),
        )
    }

    async fn resources(&mut self) -> Result<Vec<ObjectKey>, BackendError> {
        Ok(self.config.keys().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_of_this_process_on_a_run_port_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(held_by_this_process(&[port]), vec![port]);
        drop(listener);
        assert_eq!(held_by_this_process(&[port]), Vec::<u16>::new());
        drop(other);
    }

    #[test]
    fn sweeping_removes_only_dead_unkept_run_dirs() {
        let temp = tempfile::tempdir().unwrap();
        let make = |name: &str, owner: Option<&str>, kept: bool| {
            let dir = temp.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            if let Some(owner) = owner {
                std::fs::write(dir.join(OWNER_FILE), owner).unwrap();
            }
            if kept {
                std::fs::write(dir.join(KEPT_FILE), "").unwrap();
            }
            dir
        };
        // No process has pid u32::MAX - 1 (pid_max is at most 2^22).
        let dead = make("egress-conformance-dead", Some("4294967294"), false);
        let kept = make("egress-conformance-kept", Some("4294967294"), true);
        let alive = make(
            "egress-conformance-alive",
            Some(&std::process::id().to_string()),
            false,
        );
        let unowned = make("egress-conformance-unowned", None, false);
        let other = make("someone-else", Some("4294967294"), false);
        assert_eq!(sweep_stale_run_dirs(temp.path()), vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(kept.exists() && alive.exists() && unowned.exists() && other.exists());
    }
}
