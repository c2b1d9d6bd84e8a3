//! The local network model: every deviation from Istio that lets a run work on loopback without
//! root, and the one place where such deviations live.
//!
//! A control plane (the builtin translator or istiod) produces what a proxy in a cluster would
//! get; [`LocalNetwork::localize`] rewrites it for the proxy's Envoy on this machine, whatever
//! produced it. What it adds is part of the proxies' config, and so of the no-residue
//! comparison. [`DEVIATIONS`] lists every deviation; the README's list is checked against it.

/// Every way a local run differs from a cluster, by title. The README's list under "How the
/// local backend differs from a real mesh" has these titles, in this order (a test checks it).
pub(crate) const DEVIATIONS: [&str; 10] = [
    "Loopback listeners",
    "Original destination",
    "DNS",
    "Pods",
    "External addresses",
    "Public roots",
    "The client's network",
    "The registry",
    "Drain",
    "Time",
];

/// How much faster than the tutorial's clock a local run goes: every route timeout a control
/// plane sets is divided by this on its way to Envoy, and the origin divides its declared delays
/// by it too, so httpbin's `/delay/5` against a 3 s timeout costs 250 ms against 150 ms, in the
/// same proportion. Durations a suite checks are measured and reported in the tutorial's time.
pub(crate) const TIME_SCALE: u32 = 20;

/// The metadata namespace in which the model keeps, on each endpoint it moves, the address
/// Istio gave it, so that checks of a cluster's endpoints read Istio's value.
pub(crate) const METADATA_NAMESPACE: &str = "egress-conformance.local-network";
/// The key under [`METADATA_NAMESPACE`]: `host:port` as Istio wrote it.
pub(crate) const ISTIO_ADDRESS: &str = "istio_address";

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::config::core::v3::{
    Address, DataSource, SubstitutionFormatString, address, data_source::Specifier,
    socket_address::PortSpecifier, substitution_format_string::Format,
};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::listener::v3::{
    AdditionalAddress, Filter, FilterChainMatch, Listener, filter,
};
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, route::Action};
use envoy_types::pb::envoy::extensions::filters::common::set_filter_state::v3::{
    FilterStateValue, filter_state_value,
};
use envoy_types::pb::envoy::extensions::filters::network::set_filter_state::v3::Config as SetFilterState;
use envoy_types::pb::google::protobuf::{
    BoolValue, Duration as PbDuration, Struct, UInt32Value, Value as PbValue, value::Kind,
};

use crate::mesh::{ProxyRole, Registry};
use crate::origin::sites::OriginPort;
use crate::ports::PortReservation;
use crate::translate::envoy_build::{any, socket_address};
use crate::xds::ProxyResources;

pub const LOOPBACK: &str = "127.0.0.1";
const VIRTUAL_OUTBOUND: &str = "virtualOutbound";
const ORIGINAL_DST_KEY: &str = "envoy.network.transport_socket.original_dst_address";
/// The chains this model adds to `virtualOutbound`, one per external port.
pub const LOCAL_CHAIN_PREFIX: &str = "local-original-dst-";

/// A loopback port the run holds, named by the proxy and the listener (or pod port) it plays.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortKey {
    /// An Istio listener, by name (`0.0.0.0_80`, `10.96.0.30_443`, `virtualOutbound`).
    Listener(ProxyRole, String),
    /// `virtualOutbound`'s extra address for connections to this external port.
    Passthrough(u32),
    /// A pod port nobody plays (the sleep pod's inbound side), or an external address the
    /// origin does not play: reserved, never listened on, so a connection to it is refused.
    Unplayed(String, u32),
}

/// What stands behind an address Istio's config names: a port the run reserved, or the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Port(PortKey),
    Origin(SocketAddr),
}

/// Who stands for the internet on a port no site of the origin declares.
const NOBODY: &str = "nobody";

/// The addresses a localization maps onto: the run's reserved ports, the origin and the CA.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub ports: BTreeMap<PortKey, u16>,
    /// Where the origin plays each port of the sites.
    pub origin: BTreeMap<OriginPort, SocketAddr>,
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

    /// What stands for a named host on the internet at `port`: the origin's listener for the
    /// host-named sites' `port`, else the one address site that has `port`, else nobody.
    fn internet(&self, port: u32) -> Target {
        let by_name = OriginPort {
            address: None,
            port,
        };
        if let Some(addr) = self.origin.get(&by_name) {
            return Target::Origin(*addr);
        }
        let mut by_address = self
            .origin
            .iter()
            .filter(|(k, _)| k.port == port)
            .map(|(_, a)| *a);
        match (by_address.next(), by_address.next()) {
            (Some(addr), None) => Target::Origin(addr),
            _ => Target::Port(PortKey::Unplayed(NOBODY.into(), port)),
        }
    }

    /// What stands for the external address `ip:port`: the origin's listener for that address,
    /// else nobody.
    fn external(&self, ip: &str, port: u32) -> Target {
        let key = ip.parse().ok().map(|address| OriginPort {
            address: Some(address),
            port,
        });
        match key.and_then(|k| self.origin.get(&k)) {
            Some(addr) => Target::Origin(*addr),
            None => Target::Port(PortKey::Unplayed(ip.to_string(), port)),
        }
    }

    fn address_of(&self, target: &Target) -> Result<SocketAddr, LocalizeError> {
        match target {
            Target::Origin(addr) => Ok(*addr),
            Target::Port(key) => Ok(SocketAddr::from(([127, 0, 0, 1], self.port(key)?))),
        }
    }
}

/// The model of one run: the loopback ports it holds, and what stands in for the cluster's
/// registry and for the world outside. Dropping it frees the ports.
#[derive(Debug)]
pub(crate) struct LocalNetwork {
    reservations: BTreeMap<PortKey, PortReservation>,
    registry: Registry,
    origin: BTreeMap<OriginPort, SocketAddr>,
    roots_file: PathBuf,
    external_ports: BTreeSet<u32>,
}

impl LocalNetwork {
    /// `origin`: where the origin plays each port of the suite's sites.
    pub(crate) fn new(
        registry: Registry,
        origin: BTreeMap<OriginPort, SocketAddr>,
        roots_file: PathBuf,
        external_ports: BTreeSet<u32>,
    ) -> LocalNetwork {
        LocalNetwork {
            reservations: BTreeMap::new(),
            registry,
            origin,
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
        let plan = self.plan();
        for key in required_ports(role, resources, &self.registry, &plan) {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.reservations.entry(key) {
                let reservation =
                    PortReservation::reserve().map_err(|e| LocalizeError::Reserve {
                        key: slot.key().clone(),
                        message: e.to_string(),
                    })?;
                slot.insert(reservation);
            }
        }
        localize_proxy(
            resources,
            role,
            &pod_ports(&self.registry),
            &self.registry,
            &self.plan(),
        )
    }

    pub(crate) fn plan(&self) -> Plan {
        Plan {
            ports: self
                .reservations
                .iter()
                .map(|(k, r)| (k.clone(), r.port()))
                .collect(),
            origin: self.origin.clone(),
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
/// port, and one for every address its config names that nothing plays.
fn required_ports(
    role: ProxyRole,
    resources: &ProxyResources,
    registry: &Registry,
    plan: &Plan,
) -> BTreeSet<PortKey> {
    let mut keys: BTreeSet<PortKey> = resources
        .listeners
        .iter()
        .map(|l| PortKey::Listener(role, l.name.clone()))
        .collect();
    keys.extend(plan.external_ports.iter().map(|p| PortKey::Passthrough(*p)));
    let pods = pod_ports(registry);
    keys.extend(pods.values().cloned());
    let mut targets = Vec::new();
    if role == ProxyRole::Sidecar {
        for listener in &resources.listeners {
            if let Some(target) = listener_original_destination(listener, registry, plan) {
                targets.push(target);
            }
        }
        targets.extend(plan.external_ports.iter().map(|p| plan.internet(*p)));
    }
    for assignment in &resources.endpoints {
        for (ip, port) in endpoint_sockets(assignment) {
            targets.push(eds_target(&ip, port, &pods, plan));
        }
    }
    for cluster in resources.clusters.iter().filter(|c| is_dns(c)) {
        for (_, port) in cluster.load_assignment.iter().flat_map(endpoint_sockets) {
            targets.push(plan.internet(port));
        }
    }
    keys.extend(targets.into_iter().filter_map(|t| match t {
        Target::Port(key) => Some(key),
        Target::Origin(_) => None,
    }));
    keys
}

fn is_dns(cluster: &envoy_types::pb::envoy::config::cluster::v3::Cluster) -> bool {
    [DiscoveryType::StrictDns, DiscoveryType::LogicalDns]
        .iter()
        .any(|t| cluster.cluster_discovery_type == Some(ClusterDiscoveryType::Type(*t as i32)))
}

/// Where an EDS endpoint `ip:port` goes: the proxy playing the pod, else the origin playing the
/// external address, else nobody.
fn eds_target(ip: &str, port: u32, pods: &BTreeMap<(String, u32), PortKey>, plan: &Plan) -> Target {
    match pods.get(&(ip.to_string(), port)) {
        Some(key) => Target::Port(key.clone()),
        None => plan.external(ip, port),
    }
}

/// The original destination a sidecar listener's connections are to have: for
/// `0.0.0.0_<port>`, the internet at that port; for `<ip>_<port>` of an address that is no
/// Service's ClusterIP, that external address. `None` for the rest (a Service's VIP listener,
/// `virtualOutbound`).
fn listener_original_destination(
    listener: &Listener,
    registry: &Registry,
    plan: &Plan,
) -> Option<Target> {
    let (ip, port) = socket(listener.address.as_ref())?;
    if listener.name != format!("{ip}_{port}") {
        return None;
    }
    if ip == "0.0.0.0" {
        return Some(plan.internet(port));
    }
    if registry.services.iter().any(|s| s.cluster_ip == ip) {
        return None;
    }
    Some(plan.external(&ip, port))
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
    registry: &Registry,
    net: &Plan,
) -> Result<ProxyResources, LocalizeError> {
    let mut out = resources.clone();
    for listener in &mut out.listeners {
        localize_listener(listener, role, registry, net)?;
    }
    for cluster in &mut out.clusters {
        if is_dns(cluster)
            && let Some(assignment) = &mut cluster.load_assignment
        {
            for (address, metadata, ip, port) in endpoint_addresses(assignment) {
                let origin = net.address_of(&net.internet(port))?;
                move_endpoint(address, metadata, &ip, port, origin);
            }
        }
    }
    for assignment in &mut out.endpoints {
        for (address, metadata, ip, port) in endpoint_addresses(assignment) {
            let local = net.address_of(&eds_target(&ip, port, pods, net))?;
            move_endpoint(address, metadata, &ip, port, local);
        }
    }
    for routes in &mut out.routes {
        scale_route_timeouts(routes);
    }
    Ok(out)
}

/// Point an endpoint at its local stand-in, keeping Istio's address in its metadata.
fn move_endpoint(
    address: &mut Option<Address>,
    metadata: &mut Option<Metadata>,
    ip: &str,
    port: u32,
    local: SocketAddr,
) {
    *address = Some(socket_address(&local.ip().to_string(), local.port().into()));
    let istio = PbValue {
        kind: Some(Kind::StringValue(format!("{ip}:{port}"))),
    };
    metadata
        .get_or_insert_with(Default::default)
        .filter_metadata
        .insert(
            METADATA_NAMESPACE.into(),
            Struct {
                fields: [(ISTIO_ADDRESS.to_string(), istio)].into(),
            },
        );
}

/// Every route timeout in the time of a local run (see [`TIME_SCALE`]); `0s` (none) stays.
fn scale_route_timeouts(routes: &mut RouteConfiguration) {
    let scale = |d: &mut Option<PbDuration>| {
        if let Some(d) = d {
            let nanos = (d.seconds as i128 * 1_000_000_000 + d.nanos as i128) / TIME_SCALE as i128;
            d.seconds = (nanos / 1_000_000_000) as i64;
            d.nanos = (nanos % 1_000_000_000) as i32;
        }
    };
    for host in &mut routes.virtual_hosts {
        for route in &mut host.routes {
            if let Some(Action::Route(action)) = &mut route.action {
                scale(&mut action.timeout);
                #[allow(deprecated)] // istiod still sets it
                scale(&mut action.max_grpc_timeout);
                if let Some(retry) = &mut action.retry_policy {
                    scale(&mut retry.per_try_timeout);
                }
            }
        }
    }
}

fn localize_listener(
    listener: &mut Listener,
    role: ProxyRole,
    registry: &Registry,
    net: &Plan,
) -> Result<(), LocalizeError> {
    let own_port = net.port(&PortKey::Listener(role, listener.name.clone()))?;
    let original = listener_original_destination(listener, registry, net);
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
            let destination = net.address_of(&net.internet(*port))?;
            chain.filters.insert(0, original_destination(destination));
            listener.filter_chains.push(chain);
        }
    } else if let Some(target) = original {
        let destination = original_destination(net.address_of(&target)?);
        for chain in listener
            .filter_chains
            .iter_mut()
            .chain(listener.default_filter_chain.as_mut())
        {
            chain.filters.insert(0, destination.clone());
        }
    }
    Ok(())
}

/// Every socket address of an assignment's endpoints, and the endpoint's metadata, with its IP
/// and port as Istio wrote them.
#[allow(clippy::type_complexity)]
fn endpoint_addresses(
    assignment: &mut ClusterLoadAssignment,
) -> impl Iterator<Item = (&mut Option<Address>, &mut Option<Metadata>, String, u32)> {
    assignment
        .endpoints
        .iter_mut()
        .flat_map(|l| l.lb_endpoints.iter_mut())
        .filter_map(|endpoint| match &mut endpoint.host_identifier {
            Some(HostIdentifier::Endpoint(e)) => {
                let (ip, port) = socket(e.address.as_ref())?;
                Some((&mut e.address, &mut endpoint.metadata, ip, port))
            }
            _ => None,
        })
}

/// The IP and port of every endpoint of an assignment, as Istio wrote them.
fn endpoint_sockets(assignment: &ClusterLoadAssignment) -> Vec<(String, u32)> {
    assignment
        .endpoints
        .iter()
        .flat_map(|l| l.lb_endpoints.iter())
        .filter_map(|endpoint| match &endpoint.host_identifier {
            Some(HostIdentifier::Endpoint(e)) => socket(e.address.as_ref()),
            _ => None,
        })
        .collect()
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
