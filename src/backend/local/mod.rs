//! The local backend: no cluster, no containers. Two real Envoys play the sleep pod's sidecar and
//! `istio-egressgateway`; a control plane makes their config, which the local network model maps
//! onto loopback on its way to them; a local origin with the run's certificates plays the
//! external sites; real curl is the client.
//!
//! Everything it starts is owned here and stops on [`Backend::shutdown`] or, failing that, on
//! drop: Envoy children, the origin, the ADS server, the port reservations, the run's directory.

mod bootstrap;
mod curl;
pub(crate) mod leftovers;
pub(crate) mod run_dir;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::{
    Backend, BackendError, BackendSpec, CleanupReport, StartError, StepError, StepReport,
};
use crate::control_plane::builtin::Builtin;
use crate::control_plane::istiod::{Istiod, IstiodStart, ProxyIdentity};
use crate::control_plane::{AnyControlPlane, ControlPlane, ControlPlaneKind, ConvergeError};
use crate::delivery::{Delivery, Refusal};
use crate::envoy::{EnvoyBinary, EnvoyOptions, EnvoyProcess};
use crate::istio::{IstioObject, ObjectKey, Spec};
use crate::local_network::{self, LocalNetwork};
use crate::mesh::{AppliedConfig, MeshSettings, ProxyRole, Registry, Workload};
use crate::observe::{CommandOutput, OriginHit};
use crate::origin::{Origin, OriginConfig, RunPki};
use crate::process::Liveness;
use crate::sds::SdsServer;
use crate::suite::{CommandLine, Suite};
use crate::translate::{ProxyWorkloads, TranslateError};
use crate::xds::XdsServer;

pub(crate) use curl::url_targets;

/// How long a proxy may take to accept a change before the step fails.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Config checks read Envoy's own dump after the ACK: only draining listeners may lag.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a failed observation, when a process of the run has just exited, waits for its
/// reaper to say how.
const DEATH_REPORT_GRACE: Duration = Duration::from_millis(500);

/// A local run to start: which Envoy, which control plane, whether to keep it up afterwards.
#[derive(Debug, Clone)]
pub(crate) struct LocalSpec {
    pub envoy: EnvoyBinary,
    pub control_plane: ControlPlaneKind,
    /// Leave the mesh up until the interrupt, and its directory behind.
    pub keep: bool,
    pub envoy_log_level: String,
}

impl LocalSpec {
    pub(crate) fn new(
        envoy: EnvoyBinary,
        control_plane: ControlPlaneKind,
        keep: bool,
    ) -> LocalSpec {
        LocalSpec {
            envoy,
            control_plane,
            keep,
            envoy_log_level: "warning".into(),
        }
    }
}

/// The names the origin's leaf certificate has: every host the suite's sites serve over TLS
/// (a suite with none still gets a CA, for curl's `--cacert`).
fn certificate_hosts(suite: &Suite) -> Vec<String> {
    let hosts = suite.origin.tls_hosts();
    if hosts.is_empty() {
        vec!["origin.invalid".to_string()]
    } else {
        hosts
    }
}

/// Each proxy's node id and the workload it plays, as istiod is to know them.
pub(crate) fn proxy_identities(
    registry: &Registry,
    workloads: &ProxyWorkloads,
) -> Result<Vec<ProxyIdentity>, String> {
    ProxyRole::ALL
        .into_iter()
        .map(|role| {
            let name = match role {
                ProxyRole::Sidecar => &workloads.sidecar,
                ProxyRole::EgressGateway => &workloads.gateway,
            };
            let workload = registry
                .workload(name)
                .cloned()
                .ok_or_else(|| format!("no workload plays the {role}"))?;
            Ok(ProxyIdentity {
                role,
                node_id: bootstrap::node_id(role, &workload),
                workload,
            })
        })
        .collect()
}

/// External ports commands may reach with no listener of their own (`virtualOutbound`).
pub(crate) fn external_ports(suite: &Suite) -> BTreeSet<u32> {
    let mut ports: BTreeSet<u32> = [80, 443].into();
    for command in suite.all_commands() {
        ports.extend(url_targets(&command.argv).into_iter().map(|(_, p)| p));
    }
    ports.extend(
        suite
            .origin
            .sites
            .iter()
            .flat_map(|s| s.ports.iter().map(|p| p.port)),
    );
    ports
}

fn environment<E: Into<crate::backend::Cause>>(what: &str) -> impl FnOnce(E) -> StartError + '_ {
    move |source| StartError::environment(what, source)
}

/// What a local mesh runs in: the registry a cluster would hold, and where istiod reads
/// Kubernetes.
pub(crate) struct World<'a> {
    /// The Services and pods; the local network model maps their addresses onto loopback.
    pub registry: Registry,
    /// A real API server for istiod to watch (its kubeconfig), which holds `registry` and the
    /// applied objects; `None` when the harness hands istiod both.
    pub kubernetes: Option<&'a Path>,
}

impl World<'_> {
    /// The tutorial's registry as fixed data, no API server: the local backend's world.
    pub(crate) fn local() -> World<'static> {
        World {
            registry: Registry::tutorial(),
            kubernetes: None,
        }
    }
}

/// Fails unless the client, curl, can run: without it nothing can be checked.
pub(crate) async fn check_client() -> Result<(), StartError> {
    curl::check_available()
        .await
        .map_err(environment("the client"))
}

impl BackendSpec for LocalSpec {
    type Running = LocalBackend;

    fn describe(&self) -> String {
        format!("local, {} control plane", self.control_plane.name())
    }

    fn check(&self, suite: &Suite) -> Result<(), TranslateError> {
        self.control_plane.check(suite)
    }

    async fn start(
        self,
        suite: &Suite,
        progress: &mut dyn FnMut(&str),
    ) -> Result<LocalBackend, StartError> {
        check_client().await?;
        LocalBackend::start(&self, suite, World::local(), progress).await
    }
}

impl LocalBackend {
    /// Start the mesh of `spec` for `suite` in `world`: the run directory, the origin, the
    /// control plane, the Envoys, up to the baseline in force. The client is not checked.
    pub(crate) async fn start(
        spec: &LocalSpec,
        suite: &Suite,
        world: World<'_>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<LocalBackend, StartError> {
        let dir = run_dir::RunDir::create(spec.keep)
            .map_err(environment("creating the run directory"))?;
        let hosts = certificate_hosts(suite);
        let pki = Arc::new(
            RunPki::generate(&hosts)
                .map_err(|e| environment("the run's certificates")(e.to_string()))?,
        );
        let ca_pem = pki.ca_pem().to_string();
        let ca_file = dir.path().join("ca.pem");
        pki.write_ca_pem(&ca_file).map_err(|e| {
            environment("writing the run's CA")(format!("{}: {e}", ca_file.display()))
        })?;
        let origin = Origin::start(OriginConfig {
            pki,
            sites: suite.origin.clone(),
            time_scale: local_network::TIME_SCALE,
        })
        .await
        .map_err(|e| environment("starting the origin")(e.to_string()))?;
        let xds = XdsServer::start()
            .await
            .map_err(|e| environment("starting the ADS server")(e.to_string()))?;
        let registry = world.registry;
        let workloads = ProxyWorkloads::tutorial();
        let proxies = proxy_identities(&registry, &workloads)
            .map_err(|e| StartError::environment("the registry", e))?;
        let nodes: BTreeMap<ProxyRole, String> = proxies
            .iter()
            .map(|p| (p.role, p.node_id.clone()))
            .collect();
        let identities: BTreeMap<ProxyRole, Workload> = proxies
            .iter()
            .map(|p| (p.role, p.workload.clone()))
            .collect();
        let network = LocalNetwork::new(
            registry.clone(),
            origin.listeners().clone(),
            ca_file.clone(),
            external_ports(suite),
        );
        let delivery = Delivery::to_envoys(network, xds.handle(), nodes.clone());
        let sds = start_sds(&ca_pem).await?;
        let xds_addr = xds.addr();
        let sds_addr = sds.addr();
        let control_plane = match &spec.control_plane {
            ControlPlaneKind::Builtin => AnyControlPlane::Builtin(Builtin::new(
                delivery.clone(),
                registry,
                workloads,
                suite.mesh.clone(),
            )),
            ControlPlaneKind::Istiod {
                release,
                binary,
                source,
            } => {
                let istiod = Istiod::start(
                    IstiodStart {
                        release,
                        binary: binary.clone(),
                        dir: dir.path(),
                        registry: &registry,
                        source: *source,
                        kubernetes: world.kubernetes,
                        mesh: &suite.mesh,
                        namespace: &suite.namespace,
                        proxies: proxies.clone(),
                        delivery: delivery.clone(),
                        answer_timeout: ACK_TIMEOUT,
                    },
                    progress,
                )
                .await
                .map_err(environment("starting istiod"))?;
                AnyControlPlane::Istiod(Box::new(istiod))
            }
        };
        let mut backend = LocalBackend {
            envoys: BTreeMap::new(),
            control_plane,
            delivery,
            sds: Some(sds),
            xds: Some(xds),
            origin: Some(origin),
            dir: Some(dir),
            namespace: suite.namespace.clone(),
            config: AppliedConfig::default(),
            example: suite.all_commands().next().cloned(),
        };
        let started = backend
            .start_proxies(spec, &nodes, &identities, (xds_addr, sds_addr), progress)
            .await;
        match started {
            Ok(()) => Ok(backend),
            Err(e) => {
                // Nothing started for the run outlives its failure to start.
                let cleanup = backend.shutdown(&mut |_| {}).await;
                for leftover in &cleanup.leftovers {
                    progress(&format!("left behind: {leftover}"));
                }
                Err(e)
            }
        }
    }
}

/// The secrets pilot-agent would serve: the workload's certificate and the mesh's root, from a
/// mesh CA made for the run, and `file-root:system`, the public roots, which locally are the
/// run's CA (the "Public roots" deviation).
async fn start_sds(run_ca_pem: &str) -> Result<SdsServer, StartError> {
    let identity = crate::sds::mesh_identity("spiffe://cluster.local/ns/default/sa/default")
        .map_err(environment("the mesh's certificates"))?;
    let secrets = identity
        .secrets()
        .validation_context(crate::sds::file_root("system"), run_ca_pem);
    SdsServer::start(secrets)
        .await
        .map_err(environment("starting the SDS server"))
}

/// A running local mesh; see the module docs.
pub(crate) struct LocalBackend {
    // Field order is drop order: proxies first, then what they talk to.
    envoys: BTreeMap<ProxyRole, EnvoyProcess>,
    control_plane: AnyControlPlane,
    delivery: Delivery,
    sds: Option<SdsServer>,
    xds: Option<XdsServer>,
    origin: Option<Origin>,
    dir: Option<run_dir::RunDir>,
    namespace: String,
    config: AppliedConfig,
    /// The suite's first command, for `--keep`'s how-to.
    example: Option<CommandLine>,
}

impl LocalBackend {
    async fn start_proxies(
        &mut self,
        spec: &LocalSpec,
        nodes: &BTreeMap<ProxyRole, String>,
        identities: &BTreeMap<ProxyRole, crate::mesh::Workload>,
        (xds_addr, sds_addr): (std::net::SocketAddr, std::net::SocketAddr),
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), StartError> {
        // The builtin baseline goes out before the proxies start, so their first answer is
        // complete; istiod pushes its own as the agents connect.
        if let AnyControlPlane::Builtin(builtin) = &self.control_plane {
            builtin
                .deliver(&AppliedConfig::default())
                .map_err(environment("the baseline config"))?;
        }
        let dir = self
            .dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_default();
        let started = futures::future::join_all(ProxyRole::ALL.map(|role| {
            let options = EnvoyOptions {
                binary: spec.envoy.path.clone(),
                name: role.as_str().to_string(),
                bootstrap: bootstrap::bootstrap(
                    &nodes[&role],
                    &identities[&role],
                    xds_addr,
                    sds_addr,
                ),
                dir: dir.clone(),
                log_level: spec.envoy_log_level.clone(),
                extra_args: local_network::ENVOY_FLAGS.map(String::from).to_vec(),
            };
            async move { (role, EnvoyProcess::start(options).await) }
        }))
        .await;
        let mut failed = None;
        for (role, result) in started {
            match result {
                Ok(process) => {
                    let mut liveness = Liveness::default();
                    liveness.watch(process.process());
                    self.delivery.watch(role, liveness);
                    self.envoys.insert(role, process);
                }
                Err(e) => {
                    failed.get_or_insert(StartError::environment(
                        format!("starting the {role} Envoy"),
                        e,
                    ));
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        progress(&format!(
            "started Envoy {} as the sidecar and the egress gateway",
            spec.envoy.version
        ));
        // The baseline in force, as any later change: accepted by both proxies.
        match self
            .control_plane
            .converge(&AppliedConfig::default(), ACK_TIMEOUT)
            .await
        {
            Ok(()) => Ok(()),
            Err(ConvergeError::Refused(
                refusal @ (Refusal::Rejected { .. } | Refusal::Died(_)),
            )) => Err(StartError::mesh(
                "the proxies did not take the baseline",
                refusal,
            )),
            Err(other) => Err(StartError::environment(
                "the proxies did not take the baseline",
                other,
            )),
        }
    }

    /// Make `config` the applied state and wait until it is in force.
    async fn converge(&mut self, config: AppliedConfig) -> Result<StepReport, StepError> {
        let started = Instant::now();
        let result = self.control_plane.converge(&config, ACK_TIMEOUT).await;
        self.converged(config, result, started)
    }

    /// The applied state: what the steps so far have applied and not deleted.
    pub(crate) fn config(&self) -> &AppliedConfig {
        &self.config
    }

    /// Make `config` the applied state by `change`, which writes it where istiod reads it (an
    /// API server), and wait until it is in force. A failed change leaves the state as it was.
    pub(crate) async fn converge_with(
        &mut self,
        config: AppliedConfig,
        change: impl Future<Output = Result<(), StepError>>,
    ) -> Result<StepReport, StepError> {
        let started = Instant::now();
        let AnyControlPlane::Istiod(istiod) = &mut self.control_plane else {
            change.await?;
            return self.converge(config).await;
        };
        let applied = crate::control_plane::istiod::applied_objects(&config);
        let before = istiod
            .before(&applied)
            .await
            .map_err(|e| StepError::ControlPlane(e.to_string()))?;
        change.await?;
        let result = istiod.converge_after(before, applied, ACK_TIMEOUT).await;
        self.converged(config, result, started)
    }

    fn converged(
        &mut self,
        config: AppliedConfig,
        result: Result<(), ConvergeError>,
        started: Instant,
    ) -> Result<StepReport, StepError> {
        // Applied even when a proxy refused it: a cluster would hold the object all the same.
        self.config = config;
        match result {
            Ok(()) => Ok(StepReport {
                latency: started.elapsed(),
            }),
            Err(ConvergeError::Translate(e)) => Err(StepError::Translate(e)),
            Err(ConvergeError::Refused(refusal)) => Err(StepError::Refused(self.with_log(refusal))),
            Err(other) => Err(StepError::ControlPlane(format!(
                "{other}{}",
                self.sds_note()
            ))),
        }
    }

    /// What the SDS server saw go wrong, for a change that did not come into force: a secret
    /// Envoy asked for and nobody holds keeps its cluster warming; a NACK says why.
    fn sds_note(&self) -> String {
        let Some(sds) = &self.sds else {
            return String::new();
        };
        let mut note = String::new();
        let unknown = sds.unknown();
        if !unknown.is_empty() {
            let names: Vec<String> = unknown.iter().map(|(_, name)| name.clone()).collect();
            note.push_str(&format!(
                "; Envoy asked for secrets the SDS server does not hold: {}",
                names.join(", ")
            ));
        }
        for nack in sds.nacks() {
            note.push_str(&format!("; {nack}"));
        }
        note
    }

    /// A proxy that gave no answer: add what its log ends with.
    fn with_log(&self, refusal: Refusal) -> Refusal {
        match refusal {
            Refusal::NoAnswer { proxy, message } => {
                let log = self
                    .envoys
                    .get(&proxy)
                    .map(|p| p.log_tail(10))
                    .unwrap_or_default();
                Refusal::NoAnswer {
                    proxy,
                    message: format!("{message}\n{log}"),
                }
            }
            other => other,
        }
    }

    fn proxy(&self, role: ProxyRole, action: &str) -> Result<&EnvoyProcess, BackendError> {
        let process = self.envoys.get(&role).ok_or_else(|| BackendError {
            backend: "local",
            action: action.to_string(),
            message: format!("the {role} Envoy is not running"),
        })?;
        if let Some(death) = process.process().dead() {
            return Err(BackendError {
                backend: "local",
                action: action.to_string(),
                message: death.to_string(),
            });
        }
        Ok(process)
    }

    /// A process of the run that has died or is dying, when something just failed: a killed
    /// Envoy's sockets close before its reaper reports the death, so the failure is given a
    /// moment to be explained by it.
    async fn death_behind_a_failure(&self) -> Option<crate::process::Death> {
        let liveness = Backend::liveness(self);
        if let Some(death) = liveness.dead() {
            return Some(death);
        }
        if !liveness.exiting() {
            return None;
        }
        tokio::time::timeout(DEATH_REPORT_GRACE, liveness.first_death())
            .await
            .ok()
    }

    /// What reading `what` from `proxy`'s admin API gave, a failure explained by a death when
    /// one is behind it.
    async fn observed<T>(
        &self,
        read: Result<T, crate::envoy::admin::AdminError>,
        proxy: ProxyRole,
        what: &str,
    ) -> Result<T, BackendError> {
        match read {
            Ok(value) => Ok(value),
            Err(e) => Err(self
                .observation_failed(format!("reading the {proxy}'s {what}"), e.to_string())
                .await),
        }
    }

    /// An observation that failed, explained by a death when one is behind it.
    async fn observation_failed(&self, action: String, message: String) -> BackendError {
        let message = match self.death_behind_a_failure().await {
            Some(death) => death.to_string(),
            None => message,
        };
        BackendError {
            backend: "local",
            action,
            message,
        }
    }

    fn command_argv(&self, command: &CommandLine) -> Result<Vec<String>, String> {
        let targets = url_targets(&command.argv);
        let mut hosts: BTreeSet<String> = targets.iter().map(|(h, _)| h.clone()).collect();
        for (_, object) in self.config.iter() {
            if let Spec::ServiceEntry(se) = &object.spec {
                hosts.extend(se.hosts.iter().cloned());
            }
        }
        let ports: BTreeSet<u32> = targets.iter().map(|(_, p)| *p).collect();
        let listeners = self
            .delivery
            .delivered(ProxyRole::Sidecar)
            .map(|d| d.localized.listeners)
            .unwrap_or_default();
        self.delivery
            .with_network(|network| network.client_argv(&command.argv, &hosts, &ports, &listeners))
            .map_err(|e| e.to_string())
    }
}

impl Backend for LocalBackend {
    fn reaches_live_site(&self) -> bool {
        false
    }

    fn settle_timeout(&self) -> Duration {
        SETTLE_TIMEOUT
    }

    fn liveness(&self) -> Liveness {
        let mut liveness = self.control_plane.liveness();
        for envoy in self.envoys.values() {
            liveness.watch(envoy.process());
        }
        liveness
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

    async fn set_mesh(&mut self, mesh: &MeshSettings) -> Result<StepReport, StepError> {
        let started = Instant::now();
        match self
            .control_plane
            .set_mesh(mesh, &self.config, ACK_TIMEOUT)
            .await
        {
            Ok(()) => Ok(StepReport {
                latency: started.elapsed(),
            }),
            Err(ConvergeError::Translate(e)) => Err(StepError::Translate(e)),
            Err(ConvergeError::Refused(refusal)) => Err(StepError::Refused(self.with_log(refusal))),
            Err(other) => Err(StepError::ControlPlane(other.to_string())),
        }
    }

    fn time_scale(&self) -> u32 {
        local_network::TIME_SCALE
    }

    async fn run(&mut self, command: &CommandLine) -> Result<CommandOutput, BackendError> {
        let error = |message: String| BackendError {
            backend: "local",
            action: format!("running {}", command.name),
            message,
        };
        let argv = self.command_argv(command).map_err(error)?;
        let output = curl::run(&argv).await.map_err(|e| error(e.to_string()))?;
        if output.exit_code != 0
            && let Some(death) = self.death_behind_a_failure().await
        {
            return Err(error(death.to_string()));
        }
        Ok(output)
    }

    async fn config_dump(&mut self, proxy: ProxyRole) -> Result<Value, BackendError> {
        let read = self
            .proxy(proxy, "reading config_dump")?
            .admin()
            .config_dump()
            .await;
        self.observed(read, proxy, "config_dump").await
    }

    async fn stats(&mut self, proxy: ProxyRole) -> Result<BTreeMap<String, u64>, BackendError> {
        let read = self.proxy(proxy, "reading stats")?.admin().stats().await;
        self.observed(read, proxy, "stats").await
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
                    port: r.listener.port,
                    method: r.method,
                    alpn: r.alpn,
                })
                .collect(),
        )
    }

    async fn resources(&mut self) -> Result<Vec<ObjectKey>, BackendError> {
        Ok(self.config.keys().cloned().collect())
    }

    fn access(&self) -> String {
        let mut out = String::new();
        if let Some(dir) = &self.dir {
            out.push_str(&format!(
                "run directory (bootstraps, Envoy logs, the CA): {}\n",
                dir.path().display()
            ));
        }
        for (role, process) in &self.envoys {
            out.push_str(&format!(
                "{role}: admin http://{} (pid {}, log {})\n",
                process.admin().addr(),
                process.pid(),
                process.log_path().display()
            ));
        }
        if let AnyControlPlane::Istiod(istiod) = &self.control_plane {
            out.push_str(&istiod.access());
        }
        if let Some(origin) = &self.origin {
            let listeners: Vec<String> = origin
                .listeners()
                .iter()
                .map(|(site, addr)| format!("{site} on {addr}"))
                .collect();
            out.push_str(&format!("origin: {}\n", listeners.join(", ")));
        }
        out.push_str(&format!(
            "how it differs from a cluster (README, \"How the local backend differs\"): {}\n",
            local_network::DEVIATIONS.join(", ")
        ));
        if let Some(example) = &self.example
            && let Ok(argv) = self.command_argv(example)
        {
            let line = CommandLine {
                name: String::new(),
                argv,
            };
            out.push_str(&format!(
                "the tutorial's {}, as the sleep pod runs it:\n  {line}\n",
                example.name
            ));
        }
        out
    }

    /// Stop everything, then check that nothing of the run is left: no Envoy process, no held or
    /// bound port, no directory (unless it was to be kept).
    async fn shutdown(mut self, progress: &mut dyn FnMut(&str)) -> CleanupReport {
        let mut report = CleanupReport::default();
        let mut pids = Vec::new();
        for (role, process) in std::mem::take(&mut self.envoys) {
            let pid = process.pid();
            pids.push(pid);
            match process.shutdown().await {
                Ok(_) => report.removed.push(format!("the {role} Envoy (pid {pid})")),
                Err(e) => report.leftovers.push(e.to_string()),
            }
        }
        let mut ports = self.delivery.with_network(LocalNetwork::ports);
        let control_plane = std::mem::replace(
            &mut self.control_plane,
            AnyControlPlane::Builtin(Builtin::stopped(self.delivery.clone())),
        );
        if let AnyControlPlane::Istiod(istiod) = control_plane {
            ports.extend(istiod.ports());
            pids.extend(istiod.pid());
            let release = istiod.release().name;
            let stand_ins = istiod.stand_ins();
            let left = istiod.shutdown().await;
            if left.is_empty() {
                report.removed.push(format!("istiod {release}{stand_ins}"));
            }
            report.leftovers.extend(left);
        }
        if let Some(sds) = self.sds.take() {
            ports.push(sds.addr().port());
            sds.shutdown().await;
            report.removed.push("the SDS server".into());
        }
        if let Some(xds) = self.xds.take() {
            ports.push(xds.addr().port());
            xds.shutdown().await;
            report.removed.push("the ADS server".into());
        }
        if let Some(origin) = self.origin.take() {
            ports.extend(origin.listeners().values().map(|a| a.port()));
            origin.shutdown().await;
            report.removed.push("the origin".into());
        }
        let dir_path = self.dir.as_ref().map(|d| d.path().to_path_buf());
        let dir_kept = self.dir.as_ref().is_some_and(run_dir::RunDir::kept);
        // The reservations go with the last handle of the delivery.
        let LocalBackend {
            control_plane,
            delivery,
            dir,
            ..
        } = self;
        drop(control_plane);
        drop(delivery);
        if let Some(dir) = dir {
            match dir.close() {
                Ok(()) if dir_kept => report.kept.push(format!(
                    "the run directory {}",
                    dir_path
                        .as_deref()
                        .unwrap_or(std::path::Path::new("?"))
                        .display()
                )),
                Ok(()) => report.removed.push("the run directory".into()),
                Err(e) => report.leftovers.push(e),
            }
        }
        if let Some(path) = &dir_path {
            report
                .leftovers
                .extend(leftovers::leftovers(&pids, &ports, path, dir_kept));
        }
        for leftover in &report.leftovers {
            progress(&format!("left behind: {leftover}"));
        }
        report
    }
}
