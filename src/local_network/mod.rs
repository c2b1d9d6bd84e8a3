//! The local network model: every deviation from Istio that lets a run work on loopback without
//! root, and the one place where such deviations live.
//!
//! A control plane (the builtin translator or istiod) produces what a proxy in a cluster would
//! get; [`LocalNetwork::localize`] rewrites it for the proxy's Envoy on this machine, whatever
//! produced it. What it adds is part of the proxies' config, and so of the no-residue
//! comparison. [`DEVIATIONS`] lists every deviation; the README's list is checked against it.

/// Every way a local run differs from a cluster, by title. The README's list under "How the
/// local backend differs from a real mesh" has these titles, in this order (a test checks it).
pub(crate) const DEVIATIONS: [&str; 8] = [
    "Loopback listeners",
    "Original destination",
    "DNS",
    "Pods",
    "Public roots",
    "The client's network",
    "The registry",
    "Drain",
];

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::{
    Address, DataSource, SubstitutionFormatString, address, data_source::Specifier,
    socket_address::PortSpecifier, substitution_format_string::Format, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::listener::v3::{
    AdditionalAddress, Filter, FilterChainMatch, Listener, filter,
};
use envoy_types::pb::envoy::extensions::filters::common::set_filter_state::v3::{
    FilterStateValue, filter_state_value,
};
use envoy_types::pb::envoy::extensions::filters::network::set_filter_state::v3::Config as SetFilterState;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    UpstreamTlsContext, common_tls_context::ValidationContextType,
};
use envoy_types::pb::google::protobuf::{Any, BoolValue, UInt32Value};
use prost::Message;

use crate::mesh::{ProxyRole, Registry};
use crate::ports::PortReservation;
use crate::translate::envoy_build::{any, socket_address};
use crate::xds::ProxyResources;

pub const LOOPBACK: &str = "127.0.0.1";
const VIRTUAL_OUTBOUND: &str = "virtualOutbound";
const ORIGINAL_DST_KEY: &str = "envoy.network.transport_socket.original_dst_address";
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The chains this model adds to `virtualOutbound`, one per external port.
pub const LOCAL_CHAIN_PREFIX: &str = "local-original-dst-";

/// A loopback port the run holds, named by the proxy and the listener (or pod port) it plays.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortKey {
    /// An Istio listener, by name (`0.0.0.0_80`, `10.96.0.30_443`, `virtualOutbound`).
    Listener(ProxyRole, String),
    /// `virtualOutbound`'s extra address for connections to this external port.
    Passthrough(u32),
    /// A pod port nobody plays (the sleep pod's inbound side): reserved, never listened on.
    Unplayed(String, u32),
}

/// The addresses a localization maps onto: the run's reserved ports, the origin and the CA.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub ports: BTreeMap<PortKey, u16>,
    pub origin_http: SocketAddr,
    pub origin_tls: SocketAddr,
    pub roots_file: PathBuf,
    /// External ports the run's commands may connect to without a listener of their own.
    pub external_ports: BTreeSet<u32>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum LocalizeError {
    #[error("no loopback port reserved for {0:?}")]
    MissingPort(PortKey),
    #[error("reserving a loopback port for {key:?}: {message}")]
    Reserve { key: PortKey, message: String },
    #[error("no local route to {host}:{port}: no listener of the sidecar claims it")]
    NoRoute { host: String, port: u32 },
}

impl Plan {
    fn port(&self, key: &PortKey) -> Result<u16, LocalizeError> {
        self.ports
            .get(key)
            .copied()
            .ok_or_else(|| LocalizeError::MissingPort(key.clone()))
    }

    /// The origin's address standing in for the internet at `port`.
    pub fn origin_for(&self, port: u32) -> SocketAddr {
        if port == 443 {
            self.origin_tls
        } else {
            self.origin_http
        }
    }
}

/// The model of one run: the loopback ports it holds, and what stands in for the cluster's
/// registry and for the world outside. Dropping it frees the ports.
#[derive(Debug)]
pub(crate) struct LocalNetwork {
    reservations: BTreeMap<PortKey, PortReservation>,
    registry: Registry,
    origin_http: SocketAddr,
    origin_tls: SocketAddr,
    roots_file: PathBuf,
    external_ports: BTreeSet<u32>,
}

impl LocalNetwork {
    pub(crate) fn new(
        registry: Registry,
        origin_http: SocketAddr,
        origin_tls: SocketAddr,
        roots_file: PathBuf,
        external_ports: BTreeSet<u32>,
    ) -> LocalNetwork {
        LocalNetwork {
            reservations: BTreeMap::new(),
            registry,
            origin_http,
            origin_tls,
            roots_file,
            external_ports,
        }
    }

    /// What the proxy `role` is to get on this machine for what a control plane made for it.
    /// Reserves, for the rest of the run, every port it newly needs.
    pub(crate) fn localize(
        &mut self,
        role: ProxyRole,
        resources: &ProxyResources,
    ) -> Result<ProxyResources, LocalizeError> {
        for key in required_ports(role, resources, &self.registry, &self.external_ports) {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.reservations.entry(key) {
                let reservation =
                    PortReservation::reserve().map_err(|e| LocalizeError::Reserve {
                        key: slot.key().clone(),
                        message: e.to_string(),
                    })?;
                slot.insert(reservation);
            }
        }
        localize_proxy(resources, role, &pod_ports(&self.registry), &self.plan())
    }

    pub(crate) fn plan(&self) -> Plan {
        Plan {
            ports: self
                .reservations
                .iter()
                .map(|(k, r)| (k.clone(), r.port()))
                .collect(),
            origin_http: self.origin_http,
            origin_tls: self.origin_tls,
            roots_file: self.roots_file.clone(),
            external_ports: self.external_ports.clone(),
        }
    }

    /// Every port the run holds, for the check that none outlives it.
    pub(crate) fn ports(&self) -> Vec<u16> {
        self.reservations
            .values()
            .map(PortReservation::port)
            .collect()
    }
}

/// Envoy's flags on this machine: a removed listener is gone at once instead of draining, so the
/// next stage sees the config it was given.
pub(crate) const ENVOY_FLAGS: [&str; 4] = ["--drain-time-s", "0", "--parent-shutdown-time-s", "1"];

/// The ports one proxy's config needs: one per listener, one per external port, one per pod
/// port.
fn required_ports(
    role: ProxyRole,
    resources: &ProxyResources,
    registry: &Registry,
    external_ports: &BTreeSet<u32>,
) -> BTreeSet<PortKey> {
    let mut keys: BTreeSet<PortKey> = resources
        .listeners
        .iter()
        .map(|l| PortKey::Listener(role, l.name.clone()))
        .collect();
    keys.extend(external_ports.iter().map(|p| PortKey::Passthrough(*p)));
    keys.extend(pod_ports(registry).into_values());
    keys
}

/// Every pod port a Service targets, mapped to the port that plays it.
fn pod_ports(registry: &Registry) -> BTreeMap<(String, u32), PortKey> {
    let mut out = BTreeMap::new();
    for service in &registry.services {
        for workload in registry.workloads_for(service) {
            for port in &service.ports {
                let key = if workload.name == "istio-egressgateway" {
                    PortKey::Listener(
                        ProxyRole::EgressGateway,
                        format!("0.0.0.0_{}", port.target_port),
                    )
                } else {
                    PortKey::Unplayed(workload.name.clone(), port.target_port)
                };
                out.insert((workload.ip.clone(), port.target_port), key);
            }
        }
    }
    out
}

pub(crate) fn localize_proxy(
    resources: &ProxyResources,
    role: ProxyRole,
    pods: &BTreeMap<(String, u32), PortKey>,
    net: &Plan,
) -> Result<ProxyResources, LocalizeError> {
    let mut out = resources.clone();
    for listener in &mut out.listeners {
        localize_listener(listener, role, net)?;
    }
    for cluster in &mut out.clusters {
        let is_dns = cluster.cluster_discovery_type
            == Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32));
        if is_dns && let Some(assignment) = &mut cluster.load_assignment {
            for (address, _, port) in endpoint_addresses(assignment) {
                let origin = net.origin_for(port);
                *address = Some(socket_address(
                    &origin.ip().to_string(),
                    origin.port().into(),
                ));
            }
        }
        if let Some(socket) = &mut cluster.transport_socket {
            use_run_roots(socket, &net.roots_file);
        }
    }
    for assignment in &mut out.endpoints {
        for (address, ip, port) in endpoint_addresses(assignment) {
            let key = pods
                .get(&(ip.clone(), port))
                .cloned()
                .unwrap_or(PortKey::Unplayed(ip, port));
            *address = Some(socket_address(LOOPBACK, net.port(&key)?.into()));
        }
    }
    Ok(out)
}

fn localize_listener(
    listener: &mut Listener,
    role: ProxyRole,
    net: &Plan,
) -> Result<(), LocalizeError> {
    let own_port = net.port(&PortKey::Listener(role, listener.name.clone()))?;
    let istio_port = socket(listener.address.as_ref()).map(|(_, p)| p);
    listener.address = Some(socket_address(LOOPBACK, own_port.into()));
    listener.bind_to_port = None;
    listener.enable_reuse_port = Some(BoolValue { value: true });
    if role != ProxyRole::Sidecar {
        return Ok(());
    }
    if listener.name == VIRTUAL_OUTBOUND {
        listener.use_original_dst = None;
        for chain in &mut listener.filter_chains {
            // The loop guard matches 15001; locally the listener's own port plays it.
            if let Some(m) = &mut chain.filter_chain_match
                && m.destination_port.is_some()
            {
                m.destination_port = Some(UInt32Value {
                    value: own_port.into(),
                });
            }
        }
        let catch_all = listener
            .filter_chains
            .iter()
            .find(|c| c.filter_chain_match.is_none())
            .cloned()
            .unwrap_or_default();
        for port in &net.external_ports {
            let local = net.port(&PortKey::Passthrough(*port))?;
            listener.additional_addresses.push(AdditionalAddress {
                address: Some(socket_address(LOOPBACK, local.into())),
                ..Default::default()
            });
            let mut chain = catch_all.clone();
            chain.name = format!("{LOCAL_CHAIN_PREFIX}{port}");
            chain.filter_chain_match = Some(FilterChainMatch {
                destination_port: Some(UInt32Value {
                    value: local.into(),
                }),
                ..Default::default()
            });
            chain
                .filters
                .insert(0, original_destination(net.origin_for(*port)));
            listener.filter_chains.push(chain);
        }
    } else if listener.name.starts_with("0.0.0.0_")
        && let Some(port) = istio_port
    {
        for chain in &mut listener.filter_chains {
            chain
                .filters
                .insert(0, original_destination(net.origin_for(port)));
        }
    }
    Ok(())
}

/// Every socket address of an assignment's endpoints, with its IP and port as Istio wrote them.
fn endpoint_addresses(
    assignment: &mut ClusterLoadAssignment,
) -> impl Iterator<Item = (&mut Option<Address>, String, u32)> {
    assignment
        .endpoints
        .iter_mut()
        .flat_map(|l| l.lb_endpoints.iter_mut())
        .filter_map(|endpoint| match &mut endpoint.host_identifier {
            Some(HostIdentifier::Endpoint(e)) => {
                let (ip, port) = socket(e.address.as_ref())?;
                Some((&mut e.address, ip, port))
            }
            _ => None,
        })
}

/// The filter that plays iptables' original destination for a connection.
fn original_destination(addr: SocketAddr) -> Filter {
    let config = SetFilterState {
        on_new_connection: vec![FilterStateValue {
            key: Some(filter_state_value::Key::ObjectKey(ORIGINAL_DST_KEY.into())),
            value: Some(filter_state_value::Value::FormatString(
                SubstitutionFormatString {
                    format: Some(Format::TextFormatSource(DataSource {
                        specifier: Some(Specifier::InlineString(addr.to_string())),
                        ..Default::default()
                    })),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }],
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.set_filter_state".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&config))),
    }
}

fn use_run_roots(
    socket: &mut envoy_types::pb::envoy::config::core::v3::TransportSocket,
    roots: &std::path::Path,
) {
    let Some(transport_socket::ConfigType::TypedConfig(typed)) = &mut socket.config_type else {
        return;
    };
    let Ok(mut context) = UpstreamTlsContext::decode(typed.value.as_slice()) else {
        return;
    };
    if let Some(ValidationContextType::ValidationContext(validation)) = context
        .common_tls_context
        .as_mut()
        .and_then(|c| c.validation_context_type.as_mut())
        && let Some(DataSource {
            specifier: Some(Specifier::Filename(file)),
            ..
        }) = &mut validation.trusted_ca
        && file == SYSTEM_ROOTS
    {
        *file = roots.display().to_string();
    }
    *typed = Any {
        type_url: typed.type_url.clone(),
        value: context.encode_to_vec(),
    };
}

fn socket(address: Option<&Address>) -> Option<(String, u32)> {
    match address?.address.as_ref()? {
        address::Address::SocketAddress(s) => match s.port_specifier {
            Some(PortSpecifier::PortValue(port)) => Some((s.address.clone(), port)),
            _ => None,
        },
        _ => None,
    }
}

mod client;
mod registry;

#[cfg(test)]
use client::connect_to;

#[cfg(test)]
mod tests;
