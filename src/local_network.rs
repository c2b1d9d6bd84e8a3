//! The local network model: every deviation from Istio that lets a run work on loopback without
//! root, in one place.
//!
//! The translator produces what istiod would send; [`localize`] rewrites that for a local run:
//! 1. Listeners bind a loopback port reserved for the run (`127.0.0.1:<port>`, `bind_to_port`
//!    on, `enable_reuse_port` so the reservation can be held), instead of `0.0.0.0:<port>` reached
//!    through iptables. `virtualOutbound` loses `use_original_dst` (there is nothing to restore).
//! 2. iptables' "original destination": each outbound `0.0.0.0_<port>` listener's chains, and
//!    one extra `virtualOutbound` address and chain per external port, start with Envoy's
//!    `set_filter_state` network filter, which records the origin's address for that port as the
//!    connection's original destination, so `PassthroughCluster` (ORIGINAL_DST) reaches the local
//!    origin as it would reach the internet.
//! 3. DNS: a STRICT_DNS cluster's endpoint for an external host becomes the origin's address for
//!    that port (port 443 → the origin's TLS port, any other → its HTTP port); names, SNI and Host
//!    stay as Istio has them.
//! 4. EDS: pod IPs become the loopback port of the proxy that plays that pod (the gateway's
//!    listener for the target port); pods nobody plays (the sleep pod's inbound side) get a
//!    reserved port on which nothing listens.
//! 5. The public roots: `SIMPLE` TLS verifies against the run's CA instead of the system bundle.
//!
//! What this adds is part of the proxies' config, and so of the no-residue comparison.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::{
    Address, DataSource, SubstitutionFormatString, address, data_source::Specifier,
    socket_address::PortSpecifier, substitution_format_string::Format, transport_socket,
};
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
use crate::translate::Translation;
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

/// What the run has set up for the model: its reserved ports, the origin and the CA.
#[derive(Debug, Clone)]
pub struct LocalNetwork {
    pub ports: BTreeMap<PortKey, u16>,
    pub origin_http: SocketAddr,
    pub origin_tls: SocketAddr,
    pub roots_file: PathBuf,
    /// External ports the run's commands may connect to without a listener of their own.
    pub external_ports: BTreeSet<u32>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocalizeError {
    #[error("no loopback port reserved for {0:?}")]
    MissingPort(PortKey),
    #[error("no local route to {host}:{port}: no listener of the sidecar claims it")]
    NoRoute { host: String, port: u32 },
}

impl LocalNetwork {
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

/// The ports a translation needs: one per listener, one per external port, one per pod port.
pub fn required_ports(
    translation: &Translation,
    registry: &Registry,
    external_ports: &BTreeSet<u32>,
) -> BTreeSet<PortKey> {
    let mut keys = BTreeSet::new();
    for (role, resources) in [
        (ProxyRole::Sidecar, &translation.sidecar),
        (ProxyRole::EgressGateway, &translation.gateway),
    ] {
        keys.extend(
            resources
                .listeners
                .iter()
                .map(|l| PortKey::Listener(role, l.name.clone())),
        );
    }
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

/// Rewrite both proxies' config for the local network.
pub fn localize(
    translation: &Translation,
    registry: &Registry,
    net: &LocalNetwork,
) -> Result<Translation, LocalizeError> {
    let pods = pod_ports(registry);
    Ok(Translation {
        sidecar: localize_proxy(&translation.sidecar, ProxyRole::Sidecar, &pods, net)?,
        gateway: localize_proxy(&translation.gateway, ProxyRole::EgressGateway, &pods, net)?,
    })
}

fn localize_proxy(
    resources: &ProxyResources,
    role: ProxyRole,
    pods: &BTreeMap<(String, u32), PortKey>,
    net: &LocalNetwork,
) -> Result<ProxyResources, LocalizeError> {
    let mut out = resources.clone();
    for listener in &mut out.listeners {
        localize_listener(listener, role, net)?;
    }
    for cluster in &mut out.clusters {
        let is_dns = cluster.cluster_discovery_type
            == Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32));
        if is_dns && let Some(assignment) = &mut cluster.load_assignment {
            for endpoint in assignment
                .endpoints
                .iter_mut()
                .flat_map(|l| l.lb_endpoints.iter_mut())
            {
                if let Some(HostIdentifier::Endpoint(e)) = &mut endpoint.host_identifier
                    && let Some((_, port)) = socket(e.address.as_ref())
                {
                    let origin = net.origin_for(port);
                    e.address = Some(socket_address(
                        &origin.ip().to_string(),
                        origin.port().into(),
                    ));
                }
            }
        }
        if let Some(socket) = &mut cluster.transport_socket {
            use_run_roots(socket, &net.roots_file);
        }
    }
    for assignment in &mut out.endpoints {
        for endpoint in assignment
            .endpoints
            .iter_mut()
            .flat_map(|l| l.lb_endpoints.iter_mut())
        {
            if let Some(HostIdentifier::Endpoint(e)) = &mut endpoint.host_identifier
                && let Some((ip, port)) = socket(e.address.as_ref())
            {
                let key = pods
                    .get(&(ip.clone(), port))
                    .cloned()
                    .unwrap_or(PortKey::Unplayed(ip, port));
                e.address = Some(socket_address(LOOPBACK, net.port(&key)?.into()));
            }
        }
    }
    Ok(out)
}

fn localize_listener(
    listener: &mut Listener,
    role: ProxyRole,
    net: &LocalNetwork,
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

/// The sidecar port a connection to `host:port` lands on: what iptables and `virtualOutbound`'s
/// hand-off by original destination would pick. A Service's VIP listener first, then the
/// `0.0.0.0_<port>` listener, else `virtualOutbound` itself.
pub fn connect_to(
    host: &str,
    port: u32,
    sidecar_listeners: &[Listener],
    registry: &Registry,
    net: &LocalNetwork,
) -> Result<u16, LocalizeError> {
    let names: BTreeSet<&str> = sidecar_listeners.iter().map(|l| l.name.as_str()).collect();
    let vip = registry
        .services
        .iter()
        .find(|s| s.hostname() == host)
        .map(|s| s.cluster_ip.clone());
    let candidates = vip
        .map(|ip| format!("{ip}_{port}"))
        .into_iter()
        .chain(std::iter::once(format!("0.0.0.0_{port}")));
    for name in candidates {
        if names.contains(name.as_str()) {
            return net.port(&PortKey::Listener(ProxyRole::Sidecar, name));
        }
    }
    net.ports
        .get(&PortKey::Passthrough(port))
        .copied()
        .ok_or_else(|| LocalizeError::NoRoute {
            host: host.to_string(),
            port,
        })
}
