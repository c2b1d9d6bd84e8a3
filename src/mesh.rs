//! What the control plane knows: the applied Istio objects, the mesh settings and the service
//! registry a cluster would hold.
//!
//! Pure data, no I/O. The translator reads it; backends change it by applying and deleting objects.

use std::collections::BTreeMap;

use crate::istio::{IstioObject, ObjectKey, Protocol};

/// Istio's `meshConfig.outboundTrafficPolicy.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficPolicy {
    /// Istio's default: unknown destinations pass through.
    #[default]
    AllowAny,
    /// Only destinations in the registry are reachable; the rest get 502.
    RegistryOnly,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MeshSettings {
    pub outbound_traffic_policy: OutboundTrafficPolicy,
}

/// A Kubernetes Service, as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeService {
    pub name: String,
    pub namespace: String,
    pub cluster_ip: String,
    pub ports: Vec<KubeServicePort>,
    /// The selector: which workloads back it.
    pub selector: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeServicePort {
    pub name: String,
    pub port: u32,
    pub target_port: u32,
    pub protocol: Protocol,
}

/// A pod, as far as the control plane cares: where it is and what it is labelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub name: String,
    pub namespace: String,
    pub ip: String,
    pub labels: BTreeMap<String, String>,
}

impl KubeService {
    pub fn hostname(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.name, self.namespace)
    }
}

/// What a cluster with the tutorial's prerequisites holds: the sleep sample and Istio's demo-profile
/// egress gateway, with the addresses a kind cluster would give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    pub services: Vec<KubeService>,
    pub workloads: Vec<Workload>,
}

pub const EGRESS_GATEWAY_HOST: &str = "istio-egressgateway.istio-system.svc.cluster.local";

impl Registry {
    /// The registry of the tutorial's prerequisites (the sleep sample in `default`, the demo
    /// profile's `istio-egressgateway`). Addresses are those of a typical kind cluster; the local
    /// backend maps them onto loopback ports (see `local_network`).
    pub fn tutorial() -> Registry {
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        Registry {
            services: vec![
                KubeService {
                    name: "sleep".into(),
                    namespace: "default".into(),
                    cluster_ip: "10.96.0.20".into(),
                    ports: vec![KubeServicePort {
                        name: "http".into(),
                        port: 80,
                        target_port: 80,
                        protocol: Protocol::Http,
                    }],
                    selector: labels(&[("app", "sleep")]),
                },
                KubeService {
                    name: "istio-egressgateway".into(),
                    namespace: "istio-system".into(),
                    cluster_ip: "10.96.0.30".into(),
                    ports: vec![
                        KubeServicePort {
                            name: "http2".into(),
                            port: 80,
                            target_port: 8080,
                            protocol: Protocol::Http2,
                        },
                        KubeServicePort {
                            name: "https".into(),
                            port: 443,
                            target_port: 8443,
                            protocol: Protocol::Https,
                        },
                    ],
                    selector: labels(&[("app", "istio-egressgateway"), ("istio", "egressgateway")]),
                },
            ],
            workloads: vec![
                Workload {
                    name: "sleep".into(),
                    namespace: "default".into(),
                    ip: "10.244.0.10".into(),
                    labels: labels(&[("app", "sleep")]),
                },
                Workload {
                    name: "istio-egressgateway".into(),
                    namespace: "istio-system".into(),
                    ip: "10.244.0.11".into(),
                    labels: labels(&[("app", "istio-egressgateway"), ("istio", "egressgateway")]),
                },
            ],
        }
    }

    pub fn workloads_for(&self, service: &KubeService) -> impl Iterator<Item = &Workload> {
        self.workloads.iter().filter(move |w| {
            w.namespace == service.namespace
                && service
                    .selector
                    .iter()
                    .all(|(k, v)| w.labels.get(k) == Some(v))
        })
    }

    pub fn workload(&self, name: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.name == name)
    }
}

/// The Istio objects applied so far, keyed as `kubectl` keys them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppliedConfig {
    objects: BTreeMap<ObjectKey, IstioObject>,
}

impl AppliedConfig {
    /// Create or replace, as `kubectl apply` does.
    pub fn apply(&mut self, object: IstioObject, default_namespace: &str) -> ObjectKey {
        let key = object.key(default_namespace);
        self.objects.insert(key.clone(), object);
        key
    }

    /// Remove; `None` when there was nothing to delete (kubectl's NotFound).
    pub fn delete(&mut self, key: &ObjectKey) -> Option<IstioObject> {
        self.objects.remove(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &ObjectKey> {
        self.objects.keys()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ObjectKey, &IstioObject)> {
        self.objects.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// The two proxies of the tutorial, as suites name them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyRole {
    /// The sleep pod's sidecar.
    Sidecar,
    /// `istio-egressgateway` in `istio-system`.
    EgressGateway,
}

impl ProxyRole {
    pub const ALL: [ProxyRole; 2] = [ProxyRole::Sidecar, ProxyRole::EgressGateway];

    pub fn as_str(self) -> &'static str {
        match self {
            ProxyRole::Sidecar => "sidecar",
            ProxyRole::EgressGateway => "egress-gateway",
        }
    }
}

impl std::fmt::Display for ProxyRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
