//! The translator's view of the mesh: services from the registry and from ServiceEntries, with the
//! DestinationRules and VirtualServices that apply to them. Built once per translation.

use std::collections::BTreeMap;

use crate::istio::{
    DestinationRule, Gateway, IstioObject, ObjectKey, Protocol, Resolution, Spec, Subset,
    TrafficPolicy, VirtualService,
};
use crate::mesh::{AppliedConfig, Registry};

use super::TranslateError;

/// Istio's root namespace (`meshConfig.rootNamespace`): rules there apply mesh-wide.
pub(crate) const ROOT_NAMESPACE: &str = "istio-system";

#[derive(Debug, Clone)]
pub(crate) struct ServicePort {
    pub number: u32,
    /// The port's name, by which an endpoint may give its own port for it.
    pub name: String,
    pub protocol: Protocol,
    pub target_port: u32,
}

/// What kind of listener a service port gets on a sidecar, by Istio's protocol classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortClass {
    /// HTTP, HTTP2, GRPC: a shared `0.0.0.0_<port>` HTTP listener with RDS.
    Http,
    /// HTTPS, TLS: TLS passed through, matched by SNI.
    Tls,
    /// TCP and every other protocol: opaque bytes to one cluster.
    Tcp,
}

impl ServicePort {
    pub fn class(&self) -> PortClass {
        if self.protocol.is_http() {
            PortClass::Http
        } else if self.protocol.is_tls() {
            PortClass::Tls
        } else {
            PortClass::Tcp
        }
    }
}

/// One endpoint of an EDS service: its address and, by port name, a port of its own.
#[derive(Debug, Clone)]
pub(crate) struct ServiceEndpoint {
    pub address: String,
    pub ports: BTreeMap<String, u32>,
    /// What subsets select it by.
    pub labels: BTreeMap<String, String>,
    pub weight: u32,
}

impl ServiceEndpoint {
    /// The port this endpoint takes traffic for `port` on: its own port for the port's name,
    /// else the port's targetPort (Istio's `convertWorkloadInstanceToServiceInstance`).
    pub fn port_for(&self, port: &ServicePort) -> u32 {
        self.ports
            .get(&port.name)
            .copied()
            .unwrap_or(port.target_port)
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Discovery {
    /// A ServiceEntry with DNS resolution: Envoy resolves the host itself (STRICT_DNS).
    Dns,
    /// DNS_ROUND_ROBIN: Envoy resolves the host and keeps one connection target (LOGICAL_DNS).
    DnsRoundRobin,
    /// A Kubernetes Service (pod IPs) or a STATIC ServiceEntry (its endpoints): endpoints
    /// pushed over EDS.
    Eds { endpoints: Vec<ServiceEndpoint> },
    /// Resolution NONE: connections go where the client sent them (ORIGINAL_DST).
    OriginalDst,
}

#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub hostname: String,
    /// The namespace it is defined in: a Service's, or the ServiceEntry's.
    pub namespace: String,
    /// The ClusterIP of a Kubernetes Service, or a ServiceEntry address; ServiceEntries without
    /// `addresses` have none.
    pub vip: Option<String>,
    pub ports: Vec<ServicePort>,
    pub discovery: Discovery,
}

impl Service {
    pub fn port(&self, number: u32) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }
}

/// A DestinationRule that applies to a host, with the namespace it is defined in.
#[derive(Debug, Clone)]
pub(crate) struct AppliedRule<'a> {
    pub rule: &'a DestinationRule,
    pub namespace: String,
}

impl AppliedRule<'_> {
    /// Whether its `exportTo` lets a proxy in `namespace` see it (Istio's default: everywhere).
    fn exported_to(&self, namespace: &str) -> bool {
        self.rule.export_to.is_empty()
            || self
                .rule
                .export_to
                .iter()
                .any(|e| e == "*" || e == namespace || (e == "." && self.namespace == namespace))
    }
}

impl AppliedRule<'_> {
    pub fn subsets(&self) -> &[Subset] {
        &self.rule.subsets
    }

    /// Istio's precedence: a subset's policy over the rule's. A matching `portLevelSettings` entry
    /// replaces the policy's top level as a whole: per Istio's API, port-level settings do not
    /// inherit, so a field they leave out falls back to the default, not to the top level.
    pub fn policy_for(&self, port: u32, subset: Option<&str>) -> EffectivePolicy {
        let mut effective = EffectivePolicy::default();
        if let Some(policy) = &self.rule.traffic_policy {
            effective.merge(policy, port);
        }
        if let Some(subset) = subset.and_then(|s| self.rule.subsets.iter().find(|x| x.name == s))
            && let Some(policy) = &subset.traffic_policy
        {
            effective.merge(policy, port);
        }
        effective
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct EffectivePolicy {
    pub load_balancer: Option<crate::istio::SimpleLb>,
    pub tls: Option<crate::istio::ClientTlsSettings>,
}

impl EffectivePolicy {
    fn merge(&mut self, policy: &TrafficPolicy, port: u32) {
        let level = policy
            .port_level_settings
            .iter()
            .find(|l| l.port.as_ref().map(|p| p.number) == Some(port));
        let (load_balancer, tls) = match level {
            Some(level) => (&level.load_balancer, &level.tls),
            None => (&policy.load_balancer, &policy.tls),
        };
        if let Some(simple) = load_balancer.as_ref().and_then(|lb| lb.simple) {
            self.load_balancer = Some(simple);
        }
        if let Some(tls) = tls {
            self.tls = Some(tls.clone());
        }
    }
}

/// Everything the builders need, indexed.
pub(crate) struct MeshModel<'a> {
    pub services: Vec<Service>,
    /// By (the rule's namespace, the host it is for).
    pub destination_rules: BTreeMap<(String, String), AppliedRule<'a>>,
    pub virtual_services: Vec<(ObjectKey, &'a VirtualService)>,
    pub gateways: Vec<(ObjectKey, &'a Gateway)>,
}

impl<'a> MeshModel<'a> {
    pub fn build(config: &'a AppliedConfig, registry: &Registry) -> Result<Self, TranslateError> {
        let mut services: Vec<Service> = registry
            .services
            .iter()
            .map(|svc| Service {
                hostname: svc.hostname(),
                namespace: svc.namespace.clone(),
                vip: Some(svc.cluster_ip.clone()),
                ports: svc
                    .ports
                    .iter()
                    .map(|p| ServicePort {
                        number: p.port,
                        name: p.name.clone(),
                        protocol: p.protocol,
                        target_port: p.target_port,
                    })
                    .collect(),
                discovery: Discovery::Eds {
                    endpoints: registry
                        .workloads_for(svc)
                        .map(|w| ServiceEndpoint {
                            address: w.ip.clone(),
                            ports: BTreeMap::new(),
                            labels: w.labels.clone(),
                            weight: 1,
                        })
                        .collect(),
                },
            })
            .collect();
        let mut destination_rules = BTreeMap::new();
        let mut virtual_services = Vec::new();
        let mut gateways = Vec::new();
        for (key, object) in config.iter() {
            if let Some(field) = object.untranslated.first() {
                return Err(TranslateError::unsupported(
                    key,
                    object,
                    &field.path.to_string(),
                    "this field is not translated",
                ));
            }
            match &object.spec {
                Spec::ServiceEntry(entry) => {
                    services.extend(service_entry_services(key, object, entry)?)
                }
                Spec::DestinationRule(rule) => {
                    let host = qualify(&rule.host, &key.namespace);
                    // Istio merges rules for one host; the first (oldest) one's policy wins. The
                    // applied config is ordered by key, which stands in for creation time.
                    destination_rules
                        .entry((key.namespace.clone(), host))
                        .or_insert(AppliedRule {
                            rule,
                            namespace: key.namespace.clone(),
                        });
                }
                Spec::VirtualService(vs) => virtual_services.push((key.clone(), vs)),
                Spec::Gateway(gw) => gateways.push((key.clone(), gw)),
            }
        }
        services.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        let model = MeshModel {
            services,
            destination_rules,
            virtual_services,
            gateways,
        };
        // A port several services claim without an address of their own is shared by a protocol
        // istiod sniffs, or merged by its conflict rules: neither is translated.
        if let Some((host, number)) = super::sidecar::conflicting_ports(&model).first() {
            for (key, object) in config.iter() {
                if let Spec::ServiceEntry(entry) = &object.spec
                    && entry.hosts.contains(host)
                    && entry.addresses.is_empty()
                    && let Some(i) = entry.ports.iter().position(|p| p.number == *number)
                {
                    return Err(TranslateError::unsupported(
                        key,
                        object,
                        &format!("spec.ports[{i}]"),
                        "another service claims this port on 0.0.0.0 with another protocol, \
                         which istiod resolves by sniffing or conflict rules",
                    ));
                }
            }
        }
        Ok(model)
    }

    pub fn service(&self, hostname: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.hostname == hostname)
    }

    /// The DestinationRule a proxy in `proxy_namespace` uses for `service`, as istiod picks it
    /// (`PushContext.destinationRule`): one in the proxy's own namespace, else one exported from
    /// the service's namespace, else one exported from the root namespace (`istio-system`). So a
    /// rule in `default` for the gateway's Service does not reach the gateway in `istio-system`.
    pub fn rule_for(&self, service: &Service, proxy_namespace: &str) -> Option<&AppliedRule<'a>> {
        let host = &service.hostname;
        let in_namespace = |ns: &str| self.destination_rules.get(&(ns.to_string(), host.clone()));
        in_namespace(proxy_namespace)
            .or_else(|| in_namespace(&service.namespace).filter(|r| r.exported_to(proxy_namespace)))
            .or_else(|| in_namespace(ROOT_NAMESPACE).filter(|r| r.exported_to(proxy_namespace)))
    }
}

fn service_entry_services(
    key: &ObjectKey,
    object: &IstioObject,
    entry: &crate::istio::ServiceEntry,
) -> Result<Vec<Service>, TranslateError> {
    let unsupported =
        |field: &str, reason: &str| TranslateError::unsupported(key, object, field, reason);
    let discovery = match entry.resolution {
        Resolution::Dns => Discovery::Dns,
        Resolution::DnsRoundRobin => Discovery::DnsRoundRobin,
        Resolution::None => Discovery::OriginalDst,
        Resolution::Static => Discovery::Eds {
            endpoints: static_endpoints(entry, &unsupported)?,
        },
        Resolution::DynamicDns => {
            return Err(unsupported(
                "spec.resolution",
                "DYNAMIC_DNS resolution is not translated",
            ));
        }
    };
    if !entry.endpoints.is_empty() && entry.resolution != Resolution::Static {
        return Err(unsupported(
            "spec.endpoints",
            "endpoints are translated with STATIC resolution only",
        ));
    }
    let mut ports = Vec::new();
    for (i, port) in entry.ports.iter().enumerate() {
        let Some(protocol) = Protocol::parse(&port.protocol) else {
            return Err(unsupported(
                &format!("spec.ports[{i}].protocol"),
                "a port without a protocol Istio names is sniffed, which is not translated",
            ));
        };
        if !(protocol.is_http() && protocol != Protocol::HttpProxy
            || protocol.is_tls()
            || protocol == Protocol::Tcp)
        {
            return Err(unsupported(
                &format!("spec.ports[{i}].protocol"),
                "only HTTP, HTTP2, GRPC, HTTPS, TLS and TCP ServiceEntry ports are translated",
            ));
        }
        ports.push(ServicePort {
            number: port.number,
            name: port.name.clone(),
            protocol,
            target_port: if port.target_port == 0 {
                port.number
            } else {
                port.target_port
            },
        });
    }
    let mut addresses = Vec::new();
    for (i, address) in entry.addresses.iter().enumerate() {
        // Istio turns a full-length CIDR into a plain address; a shorter one is matched by
        // destination range on a wildcard listener, which is not translated.
        let ip = match address.split_once('/') {
            None => address.as_str(),
            Some((ip, "32")) if ip.parse::<std::net::Ipv4Addr>().is_ok() => ip,
            Some((ip, "128")) if ip.parse::<std::net::Ipv6Addr>().is_ok() => ip,
            Some(_) => {
                return Err(unsupported(
                    &format!("spec.addresses[{i}]"),
                    "only single addresses (/32) are translated, not ranges",
                ));
            }
        };
        addresses.push(ip.to_string());
    }
    let vips: Vec<Option<String>> = if addresses.is_empty() {
        vec![None]
    } else {
        addresses.into_iter().map(Some).collect()
    };
    Ok(entry
        .hosts
        .iter()
        .flat_map(|host| {
            vips.iter().map(|vip| Service {
                hostname: host.clone(),
                namespace: key.namespace.clone(),
                vip: vip.clone(),
                ports: ports.clone(),
                discovery: discovery.clone(),
            })
        })
        .collect())
}

/// A STATIC entry's endpoints: each an address and, by port name, its own ports.
fn static_endpoints(
    entry: &crate::istio::ServiceEntry,
    unsupported: &dyn Fn(&str, &str) -> TranslateError,
) -> Result<Vec<ServiceEndpoint>, TranslateError> {
    entry
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, endpoint)| {
            if endpoint.address.parse::<std::net::IpAddr>().is_err() {
                return Err(unsupported(
                    &format!("spec.endpoints[{i}].address"),
                    "only IP addresses are translated as STATIC endpoints",
                ));
            }
            Ok(ServiceEndpoint {
                address: endpoint.address.clone(),
                ports: endpoint.ports.clone(),
                labels: endpoint.labels.clone(),
                weight: endpoint.weight.max(1),
            })
        })
        .collect()
}

/// Istio resolves a short name against the namespace of the object that names it.
pub(crate) fn qualify(host: &str, namespace: &str) -> String {
    if host.contains('.') || host == "*" {
        host.to_string()
    } else {
        format!("{host}.{namespace}.svc.cluster.local")
    }
}
