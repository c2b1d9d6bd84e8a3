//! The Istio networking API, as far as the translator understands it.
//!
//! These are plain data: what a manifest says, after parsing and validation. Field names follow
//! Istio's proto (camelCase in YAML). Fields Istio has but the translator does not support are not
//! modelled here; the parser reports them as unsupported, naming the field.

use std::collections::BTreeMap;

/// A port protocol, as Istio names it (`HTTP`, `HTTPS`, ...). Parsed case-insensitively, as
/// Istio does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    Https,
    Http2,
    Grpc,
    Tcp,
    Tls,
}

impl Protocol {
    /// Whether Istio treats traffic on this port as HTTP (HCM + RDS) rather than TCP.
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    None,
    Static,
    Dns,
    DnsRoundRobin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    MeshExternal,
    MeshInternal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub number: u32,
    pub name: String,
    pub protocol: Protocol,
    pub target_port: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub hosts: Vec<String>,
    pub ports: Vec<ServicePort>,
    pub location: Option<Location>,
    pub resolution: Resolution,
    /// Empty means Istio's default: exported to every namespace.
    pub export_to: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayPort {
    pub number: u32,
    pub name: String,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub port: GatewayPort,
    pub hosts: Vec<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    pub selector: BTreeMap<String, String>,
    pub servers: Vec<Server>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSelector {
    pub number: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<PortSelector>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRouteDestination {
    pub destination: Destination,
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpMatchRequest {
    pub name: Option<String>,
    pub gateways: Vec<String>,
    pub port: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    pub name: Option<String>,
    /// Serialized as `match` in YAML.
    pub matches: Vec<HttpMatchRequest>,
    pub route: Vec<HttpRouteDestination>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualService {
    pub hosts: Vec<String>,
    /// Empty means Istio's default: `["mesh"]`.
    pub gateways: Vec<String>,
    pub http: Vec<HttpRoute>,
    pub export_to: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimpleLb {
    Unspecified,
    LeastConn,
    LeastRequest,
    Random,
    Passthrough,
    RoundRobin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerSettings {
    pub simple: Option<SimpleLb>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Simple,
    Mutual,
    IstioMutual,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsSettings {
    pub mode: TlsMode,
    pub sni: Option<String>,
    pub ca_certificates: Option<String>,
    pub subject_alt_names: Vec<String>,
    pub insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortTrafficPolicy {
    pub port: Option<PortSelector>,
    pub load_balancer: Option<LoadBalancerSettings>,
    pub tls: Option<ClientTlsSettings>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrafficPolicy {
    pub load_balancer: Option<LoadBalancerSettings>,
    pub tls: Option<ClientTlsSettings>,
    pub port_level_settings: Vec<PortTrafficPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subset {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub traffic_policy: Option<TrafficPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationRule {
    pub host: String,
    pub traffic_policy: Option<TrafficPolicy>,
    pub subsets: Vec<Subset>,
    pub export_to: Vec<String>,
}

/// The four kinds of `networking.istio.io` the translator understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ServiceEntry,
    Gateway,
    VirtualService,
    DestinationRule,
}

impl Kind {
    /// The name `kubectl delete <kind> <name>` accepts (lowercase singular).
    pub fn cli_name(self) -> &'static str {
        match self {
            Kind::ServiceEntry => "serviceentry",
            Kind::Gateway => "gateway",
            Kind::VirtualService => "virtualservice",
            Kind::DestinationRule => "destinationrule",
        }
    }

    /// The resource's plural, as the Kubernetes API path uses it.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::ServiceEntry => "serviceentries",
            Kind::Gateway => "gateways",
            Kind::VirtualService => "virtualservices",
            Kind::DestinationRule => "destinationrules",
        }
    }

    pub fn from_cli_name(name: &str) -> Option<Kind> {
        [
            Kind::ServiceEntry,
            Kind::Gateway,
            Kind::VirtualService,
            Kind::DestinationRule,
        ]
        .into_iter()
        .find(|k| {
            let n = name.to_ascii_lowercase();
            n == k.cli_name() || n == k.plural() || n == k.to_string().to_ascii_lowercase()
        })
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::ServiceEntry => "ServiceEntry",
            Kind::Gateway => "Gateway",
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    ServiceEntry(ServiceEntry),
    Gateway(Gateway),
    VirtualService(VirtualService),
    DestinationRule(DestinationRule),
}

impl Spec {
    pub fn kind(&self) -> Kind {
        match self {
            Spec::ServiceEntry(_) => Kind::ServiceEntry,
            Spec::Gateway(_) => Kind::Gateway,
            Spec::VirtualService(_) => Kind::VirtualService,
            Spec::DestinationRule(_) => Kind::DestinationRule,
        }
    }
}

/// Where an object came from, for error messages and the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    pub file: std::path::PathBuf,
    /// 1-based line of the document's first line.
    pub line: usize,
}

/// Identifies an object the way `kubectl` does: kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One parsed and validated Istio object.
#[derive(Debug, Clone, PartialEq)]
pub struct IstioObject {
    /// As written: `networking.istio.io/v1alpha3`, `/v1beta1` or `/v1`.
    pub api_version: String,
    pub name: String,
    /// `None` when the manifest leaves it out; the namespace it is applied to decides.
    pub namespace: Option<String>,
    pub spec: Spec,
    pub source: SourceRef,
    /// The document as written, for backends that send it to a Kubernetes API unchanged.
    pub raw: serde_json::Value,
}

impl IstioObject {
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    /// The key under which the object lives once applied, `default_namespace` filling in a
    /// namespace the manifest leaves out.
    pub fn key(&self, default_namespace: &str) -> ObjectKey {
        ObjectKey {
            kind: self.kind(),
            namespace: self
                .namespace
                .clone()
                .unwrap_or_else(|| default_namespace.to_string()),
            name: self.name.clone(),
        }
    }
}
