//! Real istiod (`pilot-discovery`) as a control plane of the local backend: no cluster, no
//! containers, every port on 127.0.0.1 chosen for the run.
//!
//! istiod reads its config from a directory: the registry a cluster would hold (written as
//! ServiceEntry + WorkloadEntry by `crate::local_network::registry`) and the applied objects,
//! one file each, written atomically (temp file + rename) so istiod never reads half a file. It
//! runs with an empty, read-only Kubernetes API (`crate::kube_stub`), because without one it
//! crashes at start-up at the supported versions. The harness plays pilot-agent for each proxy
//! ([`agent`]).
//!
//! Given the kubeconfig of a real API server instead ([`IstiodStart::kubernetes`]), istiod runs
//! as in a cluster: it watches that API server for the registry (Services, Pods, EndpointSlices)
//! and for the Istio objects (its CRDs), with no stand-in, no registry objects and no config
//! source of the harness's. The backend writes a change there itself, between
//! [`Istiod::before`] and [`Istiod::converge_after`].
//!
//! A change is in force ([`Istiod::converge`]) when istiod's config store shows it (or istiod
//! refused the directory, in its own words), every config update istiod took in is committed to
//! a push ([`observe`]), each proxy's state is computed for that push, a barrier shows that every
//! push to the proxy has arrived, and Envoy has answered all of it. No sleep, no settle time.

mod agent;
pub(crate) mod headless;
mod mcp;
mod observe;
mod protos;
mod source;
mod strip;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Struct, Value as PbValue, value::Kind as PbKind};
use serde_json::Value;
use tokio::process::Command;

use self::agent::{Agent, AgentConfig};
use self::observe::{Istiod as IstiodObserver, push_counter};
use self::protos::IstioProtos;
pub(crate) use self::protos::api_dir;
use self::source::ConfigSource;
pub(crate) use self::source::SourceChoice;
use super::{ControlPlane, ConvergeError};
use crate::delivery::{Delivery, Refusal};
use crate::istio::ObjectKey;
use crate::istio_release::IstioRelease;
use crate::kube_stub::KubeStub;
use crate::mesh::{
    AppliedConfig, MeshSettings, OutboundTrafficPolicy, ProxyRole, Registry, Workload,
};
use crate::process::{Liveness, Supervised};
use crate::wait::{Look, Wait, WaitError};

/// Every way the local istiod differs from istiod in a cluster, by title. The README's list under
/// "How the local istiod differs from istiod in a cluster" has these titles, in this order.
pub(crate) const DEVIATIONS: [&str; 8] = [
    "An empty Kubernetes API",
    "The registry as ServiceEntry and WorkloadEntry",
    "Config over MCP",
    "The harness as pilot-agent",
    "Secrets",
    "Istio-only extensions",
    "Quick pushes",
    "Stock Envoy",
];

/// How long istiod may take to take a change in and push it.
const TAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long istiod may take to start and sync its (local) config.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How many of istiod's last log lines a change that is not in force reports.
const LOG_TAIL_LINES: usize = 8;
/// How long SIGTERM may take to stop istiod.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// One proxy as istiod is to see it.
#[derive(Debug, Clone)]
pub(crate) struct ProxyIdentity {
    pub role: ProxyRole,
    pub node_id: String,
    pub workload: Workload,
}

impl ProxyIdentity {
    /// The proxy id istiod's debug endpoints take: `<pod>.<namespace>`.
    fn proxy_id(&self) -> String {
        self.node_id
            .split('~')
            .nth(2)
            .unwrap_or_default()
            .to_string()
    }

    /// The node an agent announces: the id, and the metadata pilot-agent would send.
    fn node(&self, release: &IstioRelease) -> Node {
        let w = &self.workload;
        let labels = Struct {
            fields: w
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), string(v)))
                .collect(),
        };
        let metadata = [
            ("NAMESPACE", string(&w.namespace)),
            ("INSTANCE_IPS", string(&w.ip)),
            ("ISTIO_VERSION", string(release.proxy_istio_version)),
            ("CLUSTER_ID", string("Kubernetes")),
            ("MESH_ID", string("cluster.local")),
            ("WORKLOAD_NAME", string(&w.name)),
            ("NAME", string(&w.name)),
            (
                "LABELS",
                PbValue {
                    kind: Some(PbKind::StructValue(labels)),
                },
            ),
        ];
        Node {
            id: self.node_id.clone(),
            cluster: format!("{}.{}", w.name, w.namespace),
            metadata: Some(Struct {
                fields: metadata
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            }),
            ..Default::default()
        }
    }
}

fn string(s: &str) -> PbValue {
    PbValue {
        kind: Some(PbKind::StringValue(s.to_string())),
    }
}

/// What starting istiod needs.
pub(crate) struct IstiodStart<'a> {
    pub release: &'static IstioRelease,
    pub binary: PathBuf,
    /// The run's directory; istiod's files go to `<dir>/istiod/`.
    pub dir: &'a Path,
    pub registry: &'a Registry,
    pub source: SourceChoice,
    /// A real API server for istiod to watch, by its kubeconfig: when set, `registry` and
    /// `source` are not used; the registry and the Istio objects are what that server holds.
    pub kubernetes: Option<&'a Path>,
    pub mesh: &'a MeshSettings,
    pub namespace: &'a str,
    pub proxies: Vec<ProxyIdentity>,
    pub delivery: Delivery,
    pub answer_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum IstiodError {
    #[error("preparing istiod's files in {}: {source}", .dir.display())]
    Files {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the empty Kubernetes API istiod needs: {0}")]
    KubeStub(#[source] crate::kube_stub::KubeStubError),
    #[error("istiod's config source: {0}")]
    Source(#[source] source::SourceError),
    #[error("choosing istiod's ports: {0}")]
    Ports(#[source] std::io::Error),
    #[error(transparent)]
    Spawn(#[from] crate::process::ProcessError),
    #[error("{0}")]
    Died(crate::process::Death),
    #[error("{waited}; istiod's log ends:\n{log_tail}")]
    NotReady { waited: String, log_tail: String },
}

/// A running istiod with an agent for each proxy.
pub(crate) struct Istiod {
    release: &'static IstioRelease,
    process: Option<Supervised>,
    kube: Option<KubeStub>,
    observer: IstiodObserver,
    source: Option<ConfigSource>,
    /// Istio's message definitions: how istiod writes a spec back.
    protos: Arc<IstioProtos>,
    /// The objects of the cluster's registry, which are no applied object of the suite's.
    registry: std::collections::BTreeSet<ObjectKey>,
    agents: BTreeMap<ProxyRole, Agent>,
    proxies: Vec<ProxyIdentity>,
    ports: Vec<u16>,
    answer_timeout: Duration,
    /// The mesh config file istiod watches, and what it holds besides the suite's settings.
    mesh_file: PathBuf,
    mesh_text: MeshText,
}

/// What makes the text of istiod's mesh config, for a change while it runs.
struct MeshText {
    grpc: u16,
    source: String,
}

impl MeshText {
    fn text(&self, mesh: &MeshSettings) -> String {
        mesh_config(mesh, self.grpc) + &self.source
    }
}

/// How many times istiod is started on fresh ports when one was taken before it bound it.
const START_ATTEMPTS: u32 = 3;

/// Free loopback ports for istiod, which binds them itself (Go sets no `SO_REUSEPORT`, so the
/// run cannot hold them meanwhile).
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<_, _>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

impl Istiod {
    pub(crate) async fn start(
        start: IstiodStart<'_>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Istiod, IstiodError> {
        let home = start.dir.join("istiod");
        let files = |source| IstiodError::Files {
            dir: home.clone(),
            source,
        };
        std::fs::create_dir_all(&home).map_err(files)?;
        let protos = Arc::new(
            IstioProtos::for_release(start.release)
                .map_err(|e| IstiodError::Source(source::SourceError::Protos(e)))?,
        );
        let (registry, source) = match start.kubernetes {
            Some(_) => (Vec::new(), ConfigSource::cluster()),
            None => {
                let registry = start.registry.as_istio_objects();
                let source =
                    ConfigSource::start(start.source, &home, &registry, Arc::clone(&protos))
                        .await
                        .map_err(IstiodError::Source)?;
                (registry, source)
            }
        };
        let (kube, kubeconfig) = match start.kubernetes {
            Some(file) => (None, file.to_path_buf()),
            None => {
                let stub = KubeStub::start(&home, &["default", "istio-system", start.namespace])
                    .await
                    .map_err(IstiodError::KubeStub)?;
                let file = stub.kubeconfig().to_path_buf();
                (Some(stub), file)
            }
        };
        // istiod binds its ports itself, after the harness let go of them: another process may
        // take one meanwhile (runs at once allocate ports all the time). Then istiod exits at
        // once saying so, and it is started again on other ports.
        let mut attempt = 0;
        let (process, observer, ports, grpc, mesh_file, mesh_text, ready) = loop {
            attempt += 1;
            let ports = free_ports(4).map_err(IstiodError::Ports)?;
            let [grpc, http, monitoring, ctrlz] = [ports[0], ports[1], ports[2], ports[3]];
            let mesh_file = home.join("mesh.yaml");
            let mesh_text = MeshText {
                grpc,
                source: source.mesh_config(),
            };
            std::fs::write(&mesh_file, mesh_text.text(start.mesh)).map_err(files)?;
            let log = home.join("istiod.log");
            let output = std::fs::File::create(&log).map_err(files)?;
            let errors = output.try_clone().map_err(files)?;
            let loopback = |port: u16| format!("127.0.0.1:{port}");
            let mut command = Command::new(&start.binary);
            command
                .arg("discovery")
                .arg("--registries=Kubernetes")
                .arg(format!("--kubeconfig={}", kubeconfig.display()))
                .args(source.istiod_args())
                .arg(format!("--meshConfig={}", mesh_file.display()))
                .arg("--networksConfig=/dev/null")
                .arg("--domain=cluster.local")
                .arg(format!("--grpcAddr={}", loopback(grpc)))
                .arg(format!("--httpAddr={}", loopback(http)))
                .arg(format!("--monitoringAddr={}", loopback(monitoring)))
                .arg("--ctrlz_address=127.0.0.1")
                .arg(format!("--ctrlz_port={ctrlz}"))
                .arg("--secureGRPCAddr=")
                .arg("--httpsAddr=")
                .envs(ISTIOD_ENV)
                .current_dir(&home)
                .stdin(std::process::Stdio::null())
                .stdout(output)
                .stderr(errors);
            progress(&format!(
                "starting istiod {} ({}), ADS on 127.0.0.1:{grpc}",
                start.release.name, start.release.description
            ));
            let process = Supervised::spawn(
                format!("istiod {}", start.release.name),
                command,
                log.clone(),
            )?;
            let observer = IstiodObserver::new(
                SocketAddr::from((Ipv4Addr::LOCALHOST, http)),
                SocketAddr::from((Ipv4Addr::LOCALHOST, monitoring)),
                &log,
            );
            let ready = Wait::new(
                format!("istiod to say it is ready (GET http://127.0.0.1:{http}/ready)"),
                READY_TIMEOUT,
            )
            .poll(async || {
                if let Some(death) = process.dead() {
                    return Err(IstiodError::Died(death));
                }
                Ok(match observer.ready().await {
                    Ok(()) => Look::Ready(()),
                    Err(e) => Look::NotYet(e.to_string()),
                })
            })
            .await
            .map_err(|e| match e {
                WaitError::Failed(e) => e,
                WaitError::TimedOut(t) => IstiodError::NotReady {
                    waited: t.to_string(),
                    log_tail: crate::process::tail_lines(&log, 20),
                },
            });
            match ready {
                Err(IstiodError::Died(_))
                    if attempt < START_ATTEMPTS
                        && crate::process::tail_lines(&log, 5)
                            .contains("address already in use") =>
                {
                    progress("a port chosen for istiod was taken meanwhile: choosing others");
                }
                ready => {
                    break (process, observer, ports, grpc, mesh_file, mesh_text, ready?);
                }
            }
        };
        progress(&format!(
            "istiod ready in {:.0} ms ({})",
            ready.waited.as_secs_f64() * 1000.0,
            match &kube {
                Some(stub) => format!("{} requests to its Kubernetes stand-in", stub.requests()),
                None => format!("watching the API server of {}", kubeconfig.display()),
            }
        ));
        let istiod = SocketAddr::from((Ipv4Addr::LOCALHOST, grpc));
        let agents = start
            .proxies
            .iter()
            .map(|p| {
                let agent = Agent::spawn(AgentConfig {
                    istiod,
                    proxy: p.role,
                    node: p.node(start.release),
                    delivery: start.delivery.clone(),
                    answer_timeout: start.answer_timeout,
                });
                (p.role, agent)
            })
            .collect();
        let mut ports = ports;
        ports.extend(kube.as_ref().map(|k| k.addr().port()));
        Ok(Istiod {
            release: start.release,
            process: Some(process),
            kube,
            observer,
            source: Some(source),
            protos,
            registry: registry.iter().filter_map(object_key).collect(),
            agents,
            proxies: start.proxies,
            ports,
            answer_timeout: start.answer_timeout,
            mesh_file,
            mesh_text,
        })
    }

    /// The version of Istio this is.
    pub(crate) fn release(&self) -> &'static IstioRelease {
        self.release
    }

    /// istiod's pid, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Supervised::pid)
    }

    /// Every loopback port istiod and its stand-ins used.
    pub(crate) fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// What it runs with besides itself, for the clean-up report.
    pub(crate) fn stand_ins(&self) -> &'static str {
        if self.kube.is_some() {
            " and its Kubernetes stand-in"
        } else {
            ""
        }
    }

    /// The titles of [`DEVIATIONS`] that hold for this istiod: watching a real API server, it has
    /// no empty stand-in, no registry written as Istio objects and no config over MCP.
    pub(crate) fn deviations(&self) -> Vec<&'static str> {
        let cluster_only = [
            "An empty Kubernetes API",
            "The registry as ServiceEntry and WorkloadEntry",
            "Config over MCP",
        ];
        DEVIATIONS
            .into_iter()
            .filter(|d| self.kube.is_some() || !cluster_only.contains(d))
            .collect()
    }

    /// Where to look at istiod while a kept run waits: its debug endpoints, pid and log, and how
    /// it differs from istiod in a cluster.
    pub(crate) fn access(&self) -> String {
        let mut out = format!(
            "istiod {}: debug http://{}/debug (configz, syncz, config_dump?proxyID=sleep.default)",
            self.release.name,
            self.observer.http()
        );
        if let Some(process) = &self.process {
            out.push_str(&format!(
                " (pid {}, log {})",
                process.pid(),
                process.log().display()
            ));
        }
        out.push_str(&format!(
            "\nhow this istiod differs from one in a cluster (README, \"How the local istiod differs\"): {}\n",
            self.deviations().join(", ")
        ));
        out
    }

    /// The last lines of istiod's log.
    pub(crate) fn log_tail(&self, n: usize) -> String {
        self.process
            .as_ref()
            .map(|p| crate::process::tail_lines(p.log(), n))
            .unwrap_or_default()
    }

    /// Stop istiod and its stand-ins; what could not be stopped, in words.
    pub(crate) async fn shutdown(mut self) -> Vec<String> {
        let mut leftovers = Vec::new();
        self.agents.clear();
        if let Some(process) = self.process.take() {
            let pid = process.pid();
            if let Err(e) = process.shutdown(SHUTDOWN_GRACE).await {
                leftovers.push(format!("istiod (pid {pid}): {e}"));
            }
        }
        if let Some(kube) = self.kube.take() {
            kube.shutdown().await;
        }
        if let Some(source) = self.source.take() {
            source.shutdown().await;
        }
        leftovers
    }

    /// A spec as istiod writes it back (see [`IstioProtos::canonical`]).
    fn canonical(&self, key: &ObjectKey, spec: &Value) -> Value {
        self.protos
            .canonical(&key.kind.to_string(), spec)
            .unwrap_or_else(|_| spec.clone())
    }

    /// The applied objects' specs as istiod's store is to hold them.
    fn wanted(&self, applied: &[Value]) -> BTreeMap<ObjectKey, Value> {
        applied
            .iter()
            .filter_map(|o| object_key(o).map(|k| (k, o)))
            .map(|(k, o)| {
                let spec = self.canonical(&k, &o["spec"]);
                (k, spec)
            })
            .collect()
    }

    /// What istiod's store holds of the applied objects (the registry left out).
    async fn held(&self) -> Result<BTreeMap<ObjectKey, Value>, observe::ObserveError> {
        Ok(self
            .observer
            .configz()
            .await?
            .into_iter()
            .filter(|(k, _)| !self.registry.contains(k))
            .map(|(k, spec)| {
                let spec = self.canonical(&k, &spec);
                (k, spec)
            })
            .collect())
    }

    /// `inbound_before`: the config updates istiod had taken in before the change, when the change
    /// is to update its store; `None` when the store holds it already.
    async fn in_force(
        &self,
        applied: &[Value],
        inbound_before: Option<u64>,
        log_before: usize,
        timeout: Duration,
    ) -> Result<(), ConvergeError> {
        let started = Instant::now();
        let left = || timeout.saturating_sub(started.elapsed());
        // (a) istiod's store shows the applied state, or istiod refused the directory.
        let wanted = self.wanted(applied);
        let observer = &self.observer;
        let taken = Wait::new("istiod's config store to hold the applied objects", left())
            .every(Duration::from_millis(5))
            .poll(async || {
                if let Some((_, words)) = observer
                    .pushes()
                    .refusals
                    .into_iter()
                    .find(|(line, _)| *line >= log_before)
                {
                    return Err(IstioRefused(words));
                }
                let held = match self.held().await {
                    Ok(held) => held,
                    Err(e) => return Ok(Look::NotYet(e.to_string())),
                };
                Ok(if held == wanted {
                    Look::Ready(())
                } else {
                    Look::NotYet(describe_difference(&held, &wanted))
                })
            })
            .await;
        match taken {
            Ok(_) => {}
            Err(WaitError::Failed(IstioRefused(words))) => {
                return Err(ConvergeError::IstioRejected(words));
            }
            Err(WaitError::TimedOut(t)) => return Err(ConvergeError::NotInForce(t.to_string())),
        }
        // (b) every update istiod took in is committed to a push: the version of the last one.
        let version = Wait::new("istiod to commit every config update to a push", left())
            .every(Duration::from_millis(5))
            .poll(async || {
                let inbound = observer
                    .inbound_updates()
                    .await
                    .map_err(|e| e.to_string())?;
                let pushes = observer.pushes();
                Ok::<_, String>(
                    match (
                        &pushes.version,
                        inbound_before.is_none_or(|before| inbound > before),
                    ) {
                        (Some(version), true) if pushes.committed == inbound => {
                            Look::Ready(version.clone())
                        }
                        _ => Look::NotYet(format!(
                            "{inbound} updates taken in ({} before), {} committed",
                            inbound_before.map_or("none expected".into(), |b| b.to_string()),
                            pushes.committed
                        )),
                    },
                )
            })
            .await
            .map_err(|e| ConvergeError::NotInForce(e.to_string()))?
            .value;
        let push = push_counter(&version).unwrap_or(0);
        // (c) each proxy's state is computed for that push, all it was sent has arrived, and
        // Envoy has answered it.
        for proxy in &self.proxies {
            let id = proxy.proxy_id();
            Wait::new(
                format!("istiod to compute {} for push {version}", proxy.role),
                left(),
            )
            .every(Duration::from_millis(5))
            .poll(async || {
                let seen = observer.proxy_push(&id).await;
                Ok::<_, String>(match seen {
                    Ok(counter) if counter >= push => Look::Ready(()),
                    Ok(counter) => Look::NotYet(format!("its state is for push {counter}")),
                    Err(e) => Look::NotYet(e.to_string()),
                })
            })
            .await
            .map_err(|e| ConvergeError::NotInForce(e.to_string()))?;
            let agent = &self.agents[&proxy.role];
            agent
                .barrier(left())
                .await
                .map_err(|e| ConvergeError::NotInForce(e.to_string()))?;
            let state = agent
                .settled(left().max(self.answer_timeout))
                .await
                .map_err(|e| ConvergeError::NotInForce(e.to_string()))?;
            if let Some(rejected) = state.rejected {
                return Err(ConvergeError::Refused(Refusal::Rejected {
                    proxy: proxy.role,
                    type_url: rejected.type_url,
                    version: rejected.version,
                    detail: rejected.detail,
                }));
            }
        }
        Ok(())
    }
}

/// istiod refused the config directory, in its words.
struct IstioRefused(String);

impl ControlPlane for Istiod {
    async fn converge(
        &mut self,
        config: &AppliedConfig,
        timeout: Duration,
    ) -> Result<(), ConvergeError> {
        self.converge_objects(applied_objects(config), timeout)
            .await
    }

    /// istiod watches its mesh config file: the new text replaces it in one rename, istiod's
    /// `/debug/mesh` shows the new policy, and the full push its mesh handler makes is in force.
    async fn set_mesh(
        &mut self,
        mesh: &MeshSettings,
        config: &AppliedConfig,
        timeout: Duration,
    ) -> Result<(), ConvergeError> {
        let started = Instant::now();
        let left = || timeout.max(TAKE_TIMEOUT).saturating_sub(started.elapsed());
        let not_in_force = |e: String| ConvergeError::NotInForce(e);
        let inbound_before = self
            .observer
            .inbound_updates()
            .await
            .map_err(|e| not_in_force(e.to_string()))?;
        let log_before = self.observer.pushes().lines;
        let staged = self.mesh_file.with_extension("yaml.new");
        std::fs::write(&staged, self.mesh_text.text(mesh))
            .and_then(|()| std::fs::rename(&staged, &self.mesh_file))
            .map_err(|e| not_in_force(format!("replacing {}: {e}", self.mesh_file.display())))?;
        let wanted = mesh.outbound_traffic_policy;
        let observer = &self.observer;
        Wait::new(
            format!(
                "istiod's /debug/mesh to show outboundTrafficPolicy {}",
                wanted.name()
            ),
            left(),
        )
        .every(Duration::from_millis(5))
        .poll(async || {
            Ok::<_, String>(match observer.outbound_traffic_policy().await {
                Ok(mode) if mode == wanted => Look::Ready(()),
                Ok(mode) => Look::NotYet(format!("it shows {}", mode.name())),
                Err(e) => Look::NotYet(e.to_string()),
            })
        })
        .await
        .map_err(|e| not_in_force(e.to_string()))?;
        self.in_force(
            &applied_objects(config),
            Some(inbound_before),
            log_before,
            left(),
        )
        .await
        .map_err(|e| match e {
            ConvergeError::NotInForce(message) => ConvergeError::NotInForce(format!(
                "{message}; istiod's log ends:\n{}",
                self.log_tail(LOG_TAIL_LINES)
            )),
            other => other,
        })
    }

    fn liveness(&self) -> Liveness {
        let mut liveness = Liveness::default();
        if let Some(process) = &self.process {
            liveness.watch(process);
        }
        liveness
    }
}

/// What istiod had taken in before a change: the config updates, when the change is to update
/// its store (`None` when the store holds it already), and the lines of its log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Before {
    inbound: Option<u64>,
    log_lines: usize,
}

impl Istiod {
    /// Make `applied` (whole objects, namespaced, as written: nothing checked them) the applied
    /// state and wait until it is in force.
    pub(crate) async fn converge_objects(
        &mut self,
        applied: Vec<Value>,
        timeout: Duration,
    ) -> Result<(), ConvergeError> {
        let before = self.before(&applied).await?;
        self.converge_after(before, applied, timeout).await
    }

    /// Before `applied` is made the applied state: what istiod has taken in so far. Where istiod
    /// watches an API server, call it before writing the change there, so that the change is not
    /// mistaken for what came before it.
    pub(crate) async fn before(&self, applied: &[Value]) -> Result<Before, ConvergeError> {
        if self.source.is_none() {
            return Err(ConvergeError::NotInForce("istiod has been stopped".into()));
        }
        // Whether the store is to change decides whether an update must be seen taken in. An
        // object istiod refused is not in its store, so taking it back changes nothing there.
        let store_changes = match self.held().await {
            Ok(held) => expects_update(&held, &self.wanted(applied)),
            Err(_) => true,
        };
        let inbound = if store_changes {
            Some(
                self.observer
                    .inbound_updates()
                    .await
                    .map_err(|e| ConvergeError::NotInForce(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(Before {
            inbound,
            log_lines: self.observer.pushes().lines,
        })
    }

    /// Hand istiod `applied` (unless it watches an API server, where the caller has written it
    /// since [`Istiod::before`]) and wait until it is in force.
    pub(crate) async fn converge_after(
        &mut self,
        before: Before,
        applied: Vec<Value>,
        timeout: Duration,
    ) -> Result<(), ConvergeError> {
        let Some(source) = self.source.as_mut() else {
            return Err(ConvergeError::NotInForce("istiod has been stopped".into()));
        };
        let (inbound_before, log_before) = (before.inbound, before.log_lines);
        let taken = if source.differs(&applied) {
            source
                .apply(&applied, timeout.max(TAKE_TIMEOUT))
                .await
                .map_err(|e| match e {
                    source::SourceError::Unencodable(words) => ConvergeError::Unencodable(words),
                    other => ConvergeError::NotInForce(other.to_string()),
                })
        } else {
            Ok(())
        };
        let result = match taken {
            Ok(()) => {
                self.in_force(
                    &applied,
                    inbound_before,
                    log_before,
                    timeout.max(TAKE_TIMEOUT),
                )
                .await
            }
            Err(e) => Err(e),
        };
        // What istiod said last helps most when it did not do what was waited for.
        result.map_err(|e| match e {
            ConvergeError::NotInForce(message) => ConvergeError::NotInForce(format!(
                "{message}; istiod's log ends:\n{}",
                self.log_tail(LOG_TAIL_LINES)
            )),
            other => other,
        })
    }
}

/// Whether changing istiod's store from `held` to `wanted` makes istiod take in a config update.
/// Every change does, except one to a delegate VirtualService (no `hosts`) that no root delegates
/// to: istiod's VirtualService controller only pushes merged roots (istio/istio
/// `pilot/pkg/model/virtualservice_controller.go`), so such a delegate changes nothing.
fn expects_update(held: &BTreeMap<ObjectKey, Value>, wanted: &BTreeMap<ObjectKey, Value>) -> bool {
    let changed = held
        .keys()
        .chain(wanted.keys())
        .filter(|k| held.get(*k) != wanted.get(*k));
    let is_vs = |k: &ObjectKey| k.kind == crate::istio::Kind::VirtualService;
    let spec_of = |k: &ObjectKey| wanted.get(k).or_else(|| held.get(k));
    let is_delegate = |k: &ObjectKey| {
        is_vs(k)
            && spec_of(k).is_some_and(|spec| spec["hosts"].as_array().is_none_or(Vec::is_empty))
    };
    let delegated_to = |k: &ObjectKey| {
        wanted
            .iter()
            .filter(|(root, _)| is_vs(root))
            .any(|(root, spec)| {
                spec["http"].as_array().into_iter().flatten().any(|route| {
                    let delegate = &route["delegate"];
                    delegate["name"].as_str() == Some(&k.name)
                        && delegate["namespace"].as_str().unwrap_or(&root.namespace) == k.namespace
                })
            })
    };
    changed
        .into_iter()
        .any(|k| !is_delegate(k) || delegated_to(k))
}

/// The applied objects whole, as istiod is to read them: namespaced.
pub(crate) fn applied_objects(config: &AppliedConfig) -> Vec<Value> {
    config
        .iter()
        .map(|(key, object)| {
            let mut raw = object.raw.clone();
            raw["metadata"]["namespace"] = Value::String(key.namespace.clone());
            raw
        })
        .collect()
}

/// The key of a whole object, when it is of a kind a suite applies.
fn object_key(object: &Value) -> Option<ObjectKey> {
    let kind = crate::istio::Kind::ALL
        .into_iter()
        .find(|k| object["kind"].as_str() == Some(&k.to_string()))?;
    Some(ObjectKey {
        kind,
        namespace: object["metadata"]["namespace"].as_str()?.to_string(),
        name: object["metadata"]["name"].as_str()?.to_string(),
    })
}

fn describe_difference(
    held: &BTreeMap<ObjectKey, Value>,
    wanted: &BTreeMap<ObjectKey, Value>,
) -> String {
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(k, spec)| held.get(*k) != Some(*spec))
        .map(|(k, _)| k.to_string())
        .collect();
    let extra: Vec<String> = held
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .map(ObjectKey::to_string)
        .collect();
    format!(
        "not yet as applied: [{}]; still there: [{}]",
        missing.join(", "),
        extra.join(", ")
    )
}

/// The mesh config istiod is started with: the suite's outbound policy, nothing that would make
/// istiod emit Istio-only extensions (no metrics provider).
fn mesh_config(mesh: &MeshSettings, grpc: u16) -> String {
    let mode = match mesh.outbound_traffic_policy {
        OutboundTrafficPolicy::AllowAny => "ALLOW_ANY",
        OutboundTrafficPolicy::RegistryOnly => "REGISTRY_ONLY",
    };
    format!(
        "rootNamespace: istio-system\ntrustDomain: cluster.local\noutboundTrafficPolicy:\n  mode: {mode}\ndefaultConfig:\n  discoveryAddress: 127.0.0.1:{grpc}\n"
    )
}

/// istiod's environment: namespace and cluster as in a cluster; no CA (the harness serves the
/// proxies' secrets); no Istio-only filters stock Envoy would refuse; pushes as soon as a change
/// is quiet for 10 ms.
const ISTIOD_ENV: [(&str, &str); 8] = [
    ("POD_NAMESPACE", "istio-system"),
    ("CLUSTER_ID", "Kubernetes"),
    ("ENABLE_CA_SERVER", "false"),
    ("PILOT_ENABLE_METADATA_EXCHANGE", "false"),
    ("PILOT_ENABLE_ALPN_FILTER", "false"),
    ("PILOT_DEBOUNCE_AFTER", "10ms"),
    ("PILOT_DEBOUNCE_MAX", "100ms"),
    ("PILOT_ENABLE_EDS_DEBOUNCE", "true"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn readme_section(title: &str) -> String {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .unwrap();
        readme
            .split(title)
            .nth(1)
            .unwrap_or_else(|| panic!("the README has {title}"))
            .split("\n#")
            .next()
            .unwrap()
            .to_string()
    }

    /// The README lists every deviation of the local istiod, by the same titles, in order, and
    /// names every Istio-only extension the strip takes out and every switch istiod gets.
    #[test]
    fn the_readme_lists_what_the_local_istiod_does_differently() {
        let section = readme_section("### How the local istiod differs from istiod in a cluster");
        let titles: Vec<&str> = section
            .lines()
            .filter_map(|line| {
                let (number, rest) = line.split_once(". **")?;
                number.parse::<usize>().ok()?;
                rest.split_once(".**").map(|(title, _)| title)
            })
            .collect();
        assert_eq!(titles, DEVIATIONS);
        for name in strip::ISTIO_ONLY {
            assert!(
                section.contains(&format!("`{name}`")),
                "the README does not name {name}"
            );
        }
        for (key, value) in ISTIOD_ENV {
            if key.starts_with("PILOT_") && key != "PILOT_ENABLE_EDS_DEBOUNCE" {
                assert!(
                    section.contains(&format!("`{key}={value}`")),
                    "the README does not give {key}={value}"
                );
            }
        }
    }

    #[test]
    fn every_change_is_an_update_but_a_lone_delegate() {
        let key = |kind, name: &str| ObjectKey {
            kind,
            namespace: "default".into(),
            name: name.into(),
        };
        let dr = key(crate::istio::Kind::DestinationRule, "dr");
        let child = key(crate::istio::Kind::VirtualService, "child");
        let root = key(crate::istio::Kind::VirtualService, "root");
        let empty = BTreeMap::new();
        let with = |pairs: &[(&ObjectKey, Value)]| -> BTreeMap<ObjectKey, Value> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).clone(), v.clone()))
                .collect()
        };
        let child_spec = serde_json::json!({"http": [{"route": []}]});
        assert!(expects_update(
            &empty,
            &with(&[(&dr, serde_json::json!({"host": "a"}))])
        ));
        assert!(!expects_update(
            &empty,
            &with(&[(&child, child_spec.clone())])
        ));
        assert!(!expects_update(&empty, &empty));
        let root_spec =
            serde_json::json!({"hosts": ["a"], "http": [{"delegate": {"name": "child"}}]});
        let both = with(&[(&child, child_spec.clone()), (&root, root_spec)]);
        let changed_child = with(&[(&child, serde_json::json!({"http": []}))]);
        let mut before = both.clone();
        before.insert(child.clone(), changed_child[&child].clone());
        assert!(expects_update(&before, &both));
    }

    #[test]
    fn the_mesh_config_carries_the_suites_policy() {
        let mesh = MeshSettings {
            outbound_traffic_policy: OutboundTrafficPolicy::RegistryOnly,
        };
        let text = mesh_config(&mesh, 4242);
        assert!(
            text.contains("mode: REGISTRY_ONLY") && text.contains("127.0.0.1:4242"),
            "{text}"
        );
    }
}
