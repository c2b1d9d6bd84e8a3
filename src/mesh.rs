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

impl OutboundTrafficPolicy {
    /// As Istio's mesh config writes it.
    pub fn name(self) -> &'static str {
        match self {
            OutboundTrafficPolicy::AllowAny => "ALLOW_ANY",
            OutboundTrafficPolicy::RegistryOnly => "REGISTRY_ONLY",
        }
    }
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

/// The Services and pods a cluster holds, as far as a control plane needs them. What the local
/// backend's cluster holds is `crate::local_network`'s to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    pub services: Vec<KubeService>,
    pub workloads: Vec<Workload>,
}

impl Registry {
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
