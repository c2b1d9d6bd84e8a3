//! The translator's view of the mesh: services from the registry and from ServiceEntries, with the
//! DestinationRules and VirtualServices that apply to them. Built once per translation.

use std::collections::BTreeMap;

use crate::istio::{
    DestinationRule, Gateway, IstioObject, ObjectKey, Protocol, Resolution, Spec, Subset,
    TrafficPolicy, VirtualService,
};
use crate::mesh::{AppliedConfig, Registry};

use super::TranslateError;

#[derive(Debug, Clone)]
pub(crate) struct ServicePort {
    pub number: u32,
    pub protocol: Protocol,
    pub target_port: u32,
}

#[derive(Debug, Clone)]
pub(crate) enum Discovery {
    /// A ServiceEntry with DNS resolution: Envoy resolves the host itself (STRICT_DNS).
    Dns,
    /// A Kubernetes Service: endpoints pushed over EDS (pod IPs).
    Eds { endpoint_ips: Vec<String> },
}

#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub hostname: String,
    /// The ClusterIP of a Kubernetes Service; ServiceEntries without `addresses` have none.
    pub vip: Option<String>,
    pub ports: Vec<ServicePort>,
    pub discovery: Discovery,
}

impl Service {
    pub fn port(&self, number: u32) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }
}

/// A DestinationRule that applies to a host, with its name for error messages.
#[derive(Debug, Clone)]
pub(crate) struct AppliedRule<'a> {
    pub rule: &'a DestinationRule,
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
    pub destination_rules: BTreeMap<String, AppliedRule<'a>>,
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
                vip: Some(svc.cluster_ip.clone()),
                ports: svc
                    .ports
                    .iter()
                    .map(|p| ServicePort {
                        number: p.port,
                        protocol: p.protocol,
                        target_port: p.target_port,
                    })
                    .collect(),
                discovery: Discovery::Eds {
                    endpoint_ips: registry.workloads_for(svc).map(|w| w.ip.clone()).collect(),
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
                        .entry(host)
                        .or_insert(AppliedRule { rule });
                }
                Spec::VirtualService(vs) => virtual_services.push((key.clone(), vs)),
                Spec::Gateway(gw) => gateways.push((key.clone(), gw)),
            }
        }
        services.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        Ok(MeshModel {
            services,
            destination_rules,
            virtual_services,
            gateways,
        })
    }

    pub fn service(&self, hostname: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.hostname == hostname)
    }

    pub fn rule_for(&self, hostname: &str) -> Option<&AppliedRule<'a>> {
        self.destination_rules.get(hostname)
    }
}

fn service_entry_services(
    key: &ObjectKey,
    object: &IstioObject,
    entry: &crate::istio::ServiceEntry,
) -> Result<Vec<Service>, TranslateError> {
    if !matches!(
        entry.resolution,
        Resolution::Dns | Resolution::DnsRoundRobin
    ) {
        return Err(TranslateError::unsupported(
            key,
            object,
            "spec.resolution",
            "only DNS and DNS_ROUND_ROBIN resolution are translated",
        ));
    }
    let mut ports = Vec::new();
    for (i, port) in entry.ports.iter().enumerate() {
        let protocol = Protocol::parse(&port.protocol)
            .filter(|p| matches!(p, Protocol::Http | Protocol::Http2 | Protocol::Grpc));
        let Some(protocol) = protocol else {
            return Err(TranslateError::unsupported(
                key,
                object,
                &format!("spec.ports[{i}].protocol"),
                "only HTTP, HTTP2 and GRPC ServiceEntry ports are translated",
            ));
        };
        ports.push(ServicePort {
            number: port.number,
            protocol,
            target_port: if port.target_port == 0 {
                port.number
            } else {
                port.target_port
            },
        });
    }
    Ok(entry
        .hosts
        .iter()
        .map(|host| Service {
            hostname: host.clone(),
            vip: None,
            ports: ports.clone(),
            discovery: Discovery::Dns,
        })
        .collect())
}

/// Istio resolves a short name against the namespace of the object that names it.
pub(crate) fn qualify(host: &str, namespace: &str) -> String {
    if host.contains('.') || host == "*" {
        host.to_string()
    } else {
        format!("{host}.{namespace}.svc.cluster.local")
    }
}
