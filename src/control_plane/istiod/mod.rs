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
mod mcp;
mod observe;
mod protos;
mod source;
mod strip;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Struct, Value as PbValue, value::Kind as PbKind};
use serde_json::Value;
use tokio::process::Command;

use self::agent::{Agent, AgentConfig};
use self::observe::{Istiod as IstiodObserver, push_counter};
use self::source::ConfigSource;
pub(crate) use self::source::SourceChoice;
use super::{ControlPlane, ConvergeError};
use crate::delivery::{Delivery, Refusal};
use crate::istio::ObjectKey;
use crate::istio_release::IstioRelease;
use crate::kube_stub::KubeStub;
use crate::mesh::{AppliedConfig, MeshSettings, OutboundTrafficPolicy, ProxyRole, Registry, Workload};
use crate::process::{Liveness, Supervised};
use crate::wait::{Look, Wait, WaitError};

pub(crate) use strip::ISTIO_ONLY;

/// How long istiod may take to take a change in and push it.
const TAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long istiod may take to start and sync its (local) config.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
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
        self.node_id.split('~').nth(2).unwrap_or_default().to_string()
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
    /// The objects of the cluster's registry, which are no applied object of the suite's.
    registry: std::collections::BTreeSet<ObjectKey>,
    agents: BTreeMap<ProxyRole, Agent>,
    proxies: Vec<ProxyIdentity>,
    ports: Vec<u16>,
    answer_timeout: Duration,
}

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
        let (registry, source) = match start.kubernetes {
            Some(_) => (Vec::new(), ConfigSource::cluster()),
            None => {
                let registry = start.registry.as_istio_objects();
                let source = ConfigSource::start(start.source, &home, &registry, start.release)
                    .await
                    .map_err(IstiodError::Source)?;
                (registry, source)
            }
        };
        let ports = free_ports(4).map_err(IstiodError::Ports)?;
        let [grpc, http, monitoring, ctrlz] = [ports[0], ports[1], ports[2], ports[3]];
        let mesh_file = home.join("mesh.yaml");
        let mesh = mesh_config(start.mesh, grpc) + &source.mesh_config();
        std::fs::write(&mesh_file, mesh).map_err(files)?;
        let kube = match start.kubernetes {
            Some(_) => None,
            None => Some(
                KubeStub::start(&home, &["default", "istio-system", start.namespace])
                    .await
                    .map_err(IstiodError::KubeStub)?,
            ),
        };
        let kubeconfig = match (start.kubernetes, &kube) {
            (Some(file), _) => file.to_path_buf(),
            (None, Some(stub)) => stub.kubeconfig().to_path_buf(),
            (None, None) => unreachable!("a stand-in is started when no API server is given"),
        };
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
        let process =
            Supervised::spawn(format!("istiod {}", start.release.name), command, log.clone())?;
        let observer = IstiodObserver::new(
            SocketAddr::from((Ipv4Addr::LOCALHOST, http)),
            SocketAddr::from((Ipv4Addr::LOCALHOST, monitoring)),
            &log,
        );
        Wait::new(
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
        })?;
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
            registry: registry.iter().filter_map(object_key).collect(),
            agents,
            proxies: start.proxies,
            ports,
            answer_timeout: start.answer_timeout,
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

    async fn in_force(
        &self,
        config: &AppliedConfig,
        inbound_before: u64,
        log_before: usize,
        timeout: Duration,
    ) -> Result<(), ConvergeError> {
        let started = Instant::now();
        let left = || timeout.saturating_sub(started.elapsed());
        // (a) istiod's store shows the applied state, or istiod refused the directory.
        let wanted: BTreeMap<ObjectKey, Value> = config
            .iter()
            .map(|(k, o)| (k.clone(), o.raw["spec"].clone()))
            .collect();
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
                let held = match observer.configz().await {
                    Ok(held) => held,
                    Err(e) => return Ok(Look::NotYet(e.to_string())),
                };
                let held: BTreeMap<ObjectKey, Value> = held
                    .into_iter()
                    .filter(|(k, _)| !self.registry.contains(k))
                    .collect();
                Ok(if holds(&held, &wanted) {
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
                    match (&pushes.version, inbound > inbound_before || inbound_before == 0) {
                        (Some(version), true) if pushes.committed == inbound => {
                            Look::Ready(version.clone())
                        }
                        _ => Look::NotYet(format!(
                            "{inbound} updates taken in ({inbound_before} before), {} committed",
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
            Wait::new(format!("istiod to compute {} for push {version}", proxy.role), left())
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

/// What istiod had taken in before a change: the config updates (0 when the change is none) and
/// the lines of its log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Before {
    inbound: u64,
    log_lines: usize,
}

impl Istiod {
    /// Before `config` is made the applied state: what istiod has taken in so far. Where istiod
    /// reads an API server, call it before writing the change there, so that the change is not
    /// mistaken for what came before it.
    pub(crate) async fn before(&self, config: &AppliedConfig) -> Result<Before, ConvergeError> {
        let Some(source) = self.source.as_ref() else {
            return Err(ConvergeError::NotInForce("istiod has been stopped".into()));
        };
        let inbound = if source.differs(&applied_objects(config)) {
            self.observer
                .inbound_updates()
                .await
                .map_err(|e| ConvergeError::NotInForce(e.to_string()))?
        } else {
            0
        };
        Ok(Before {
            inbound,
            log_lines: self.observer.pushes().lines,
        })
    }

    /// Hand istiod `config` (unless it reads it from an API server, where the caller wrote it
    /// since [`Istiod::before`]) and wait until it is in force.
    pub(crate) async fn converge_after(
        &mut self,
        before: Before,
        config: &AppliedConfig,
        timeout: Duration,
    ) -> Result<(), ConvergeError> {
        let applied = applied_objects(config);
        let Some(source) = self.source.as_mut() else {
            return Err(ConvergeError::NotInForce("istiod has been stopped".into()));
        };
        source
            .apply(&applied, timeout.max(TAKE_TIMEOUT))
            .await
            .map_err(|e| match e {
                source::SourceError::Unencodable(words) => ConvergeError::IstioRejected(words),
                other => ConvergeError::NotInForce(other.to_string()),
            })?;
        self.in_force(config, before.inbound, before.log_lines, timeout.max(TAKE_TIMEOUT))
            .await
    }
}

impl ControlPlane for Istiod {
    async fn converge(
        &mut self,
        config: &AppliedConfig,
        timeout: Duration,
    ) -> Result<(), ConvergeError> {
        let before = self.before(config).await?;
        self.converge_after(before, config, timeout).await
    }

    fn liveness(&self) -> Liveness {
        let mut liveness = Liveness::default();
        if let Some(process) = &self.process {
            liveness.watch(process);
        }
        liveness
    }
}

/// The applied objects whole, as istiod is to read them: namespaced.
fn applied_objects(config: &AppliedConfig) -> Vec<Value> {
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

/// Whether istiod holds exactly the wanted objects, each with (at least) the wanted spec.
fn holds(held: &BTreeMap<ObjectKey, Value>, wanted: &BTreeMap<ObjectKey, Value>) -> bool {
    held.len() == wanted.len()
        && wanted
            .iter()
            .all(|(k, spec)| held.get(k).is_some_and(|h| contains(h, spec)))
}

/// `outer` has every field of `inner` with the same value (istiod's JSON leaves out defaults and
/// writes numbers its own way; what the manifest says must be there).
fn contains(outer: &Value, inner: &Value) -> bool {
    match (outer, inner) {
        (Value::Object(o), Value::Object(i)) => i.iter().all(|(k, v)| match o.get(k) {
            Some(ov) => contains(ov, v),
            None => is_default(v),
        }),
        (Value::Array(o), Value::Array(i)) => {
            o.len() == i.len() && o.iter().zip(i).all(|(a, b)| contains(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(a), Value::Number(b)) | (Value::Number(b), Value::String(a)) => {
            a == &b.to_string()
        }
        (a, b) => a == b,
    }
}

fn is_default(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_default),
    }
}

fn describe_difference(held: &BTreeMap<ObjectKey, Value>, wanted: &BTreeMap<ObjectKey, Value>) -> String {
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(k, spec)| !held.get(*k).is_some_and(|h| contains(h, spec)))
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

    #[test]
    fn what_the_manifest_says_must_be_in_istiods_spec() {
        let istiod = serde_json::json!({"host": "edition.cnn.com", "trafficPolicy": {"portLevelSettings": [{"port": {"number": 443}, "tls": {"mode": "SIMPLE"}}]}});
        let written = serde_json::json!({"host": "edition.cnn.com", "trafficPolicy": {"portLevelSettings": [{"port": {"number": 443}, "tls": {"mode": "SIMPLE"}}]}});
        assert!(contains(&istiod, &written));
        let other = serde_json::json!({"host": "edition.cnn.com", "trafficPolicy": {"portLevelSettings": [{"port": {"number": 443}, "tls": {"mode": "DISABLE"}}]}});
        assert!(!contains(&other, &written));
        // A default the manifest spells out, which istiod leaves out, still holds.
        let with_default = serde_json::json!({"host": "edition.cnn.com", "exportTo": []});
        assert!(contains(&serde_json::json!({"host": "edition.cnn.com"}), &with_default));
    }

    #[test]
    fn the_mesh_config_carries_the_suites_policy() {
        let mesh = MeshSettings {
            outbound_traffic_policy: OutboundTrafficPolicy::RegistryOnly,
        };
        let text = mesh_config(&mesh, 4242);
        assert!(text.contains("mode: REGISTRY_ONLY") && text.contains("127.0.0.1:4242"), "{text}");
    }
}
