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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::listener::v3::FilterChain;
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
        TcpProxy, tcp_proxy::ClusterSpecifier,
    };

    use super::*;
    use crate::mesh::{AppliedConfig, MeshSettings};
    use crate::translate::{ProxyWorkloads, translate};

    const ROOTS: &str = "/run/test/roots.pem";
    const FIXTURES: &str = "fixtures/egress-gateway-tls-origination";
    const FILES: [&str; 4] = [
        "01-serviceentry-cnn.yaml",
        "02-gateway-istio-egressgateway.yaml",
        "03-destinationrule-virtualservice-through-egress-gateway.yaml",
        "04-destinationrule-originate-tls.yaml",
    ];

    /// The tutorial's translation after `stage` files.
    fn translation(stage: usize) -> Translation {
        let mut config = AppliedConfig::default();
        for file in &FILES[..stage] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(FIXTURES)
                .join(file);
            for object in crate::istio::load_manifests(&path).unwrap() {
                config.apply(object, "default");
            }
        }
        translate(
            &config,
            &Registry::tutorial(),
            &MeshSettings::default(),
            &ProxyWorkloads::tutorial(),
        )
        .unwrap()
    }

    /// A network with a distinct port for every key the translation needs, numbered from 20000
    /// in key order.
    fn network(t: &Translation) -> LocalNetwork {
        let external_ports = BTreeSet::from([80, 443]);
        let ports = required_ports(t, &Registry::tutorial(), &external_ports)
            .into_iter()
            .zip(20000u16..)
            .collect();
        LocalNetwork {
            ports,
            origin_http: "127.0.0.1:18080".parse().unwrap(),
            origin_tls: "127.0.0.1:18443".parse().unwrap(),
            roots_file: ROOTS.into(),
            external_ports,
        }
    }

    fn port_of(net: &LocalNetwork, key: PortKey) -> u16 {
        *net.ports
            .get(&key)
            .unwrap_or_else(|| panic!("no port for {key:?}"))
    }

    fn sidecar(name: &str) -> PortKey {
        PortKey::Listener(ProxyRole::Sidecar, name.into())
    }

    fn find<'a>(listeners: &'a [Listener], name: &str) -> &'a Listener {
        listeners
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("no listener {name}"))
    }

    fn address_of(a: Option<&Address>) -> String {
        let (ip, port) = socket(a).expect("a socket address");
        format!("{ip}:{port}")
    }

    /// The value the chain's leading `set_filter_state` records as the original destination.
    fn original_destination_of(chain: &FilterChain) -> String {
        let first = chain.filters.first().expect("a filter");
        assert_eq!(first.name, "envoy.filters.network.set_filter_state");
        let Some(filter::ConfigType::TypedConfig(any)) = &first.config_type else {
            panic!()
        };
        let config = SetFilterState::decode(any.value.as_slice()).unwrap();
        let [value] = config.on_new_connection.as_slice() else {
            panic!("{config:?}")
        };
        assert_eq!(
            value.key,
            Some(filter_state_value::Key::ObjectKey(ORIGINAL_DST_KEY.into()))
        );
        let Some(filter_state_value::Value::FormatString(format)) = &value.value else {
            panic!()
        };
        let Some(Format::TextFormatSource(DataSource {
            specifier: Some(Specifier::InlineString(s)),
            ..
        })) = &format.format
        else {
            panic!("{format:?}")
        };
        s.clone()
    }

    fn tcp_cluster(chain: &FilterChain) -> String {
        let last = chain.filters.last().unwrap();
        let Some(filter::ConfigType::TypedConfig(any)) = &last.config_type else {
            panic!()
        };
        let proxy = TcpProxy::decode(any.value.as_slice()).unwrap();
        let Some(ClusterSpecifier::Cluster(c)) = proxy.cluster_specifier else {
            panic!()
        };
        c
    }

    fn endpoints(a: &ClusterLoadAssignment) -> Vec<String> {
        a.endpoints
            .iter()
            .flat_map(|l| &l.lb_endpoints)
            .map(|e| match &e.host_identifier {
                Some(HostIdentifier::Endpoint(ep)) => address_of(ep.address.as_ref()),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn assignment<'a>(r: &'a ProxyResources, cluster: &str) -> &'a ClusterLoadAssignment {
        r.endpoints
            .iter()
            .find(|a| a.cluster_name == cluster)
            .unwrap_or_else(|| panic!("{cluster}"))
    }

    fn cluster<'a>(r: &'a ProxyResources, name: &str) -> &'a Cluster {
        r.clusters
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    }

    #[test]
    fn required_ports_cover_listeners_external_ports_and_pods() {
        let t = translation(2);
        let keys = required_ports(&t, &Registry::tutorial(), &BTreeSet::from([443]));
        let gateway = |n: &str| PortKey::Listener(ProxyRole::EgressGateway, n.into());
        let expected = BTreeSet::from([
            sidecar("0.0.0.0_80"),
            sidecar("0.0.0.0_443"),
            sidecar("10.96.0.30_443"),
            sidecar("virtualOutbound"),
            gateway("0.0.0.0_8443"),
            // The gateway pod's http2 port: the gateway does not listen there in the tutorial.
            gateway("0.0.0.0_8080"),
            PortKey::Passthrough(443),
            PortKey::Unplayed("sleep".into(), 80),
        ]);
        assert_eq!(keys, expected);
    }

    #[test]
    fn every_listener_binds_its_reserved_loopback_port() {
        let t = translation(3);
        let net = network(&t);
        let local = localize(&t, &Registry::tutorial(), &net).unwrap();
        for (role, resources) in [
            (ProxyRole::Sidecar, &local.sidecar),
            (ProxyRole::EgressGateway, &local.gateway),
        ] {
            assert!(!resources.listeners.is_empty(), "{role}");
            for l in &resources.listeners {
                let port = port_of(&net, PortKey::Listener(role, l.name.clone()));
                assert_eq!(
                    address_of(l.address.as_ref()),
                    format!("127.0.0.1:{port}"),
                    "{}",
                    l.name
                );
                assert_eq!(l.bind_to_port, None, "{}", l.name);
                assert_eq!(
                    l.enable_reuse_port,
                    Some(BoolValue { value: true }),
                    "{}",
                    l.name
                );
            }
        }
    }

    #[test]
    fn outbound_http_listeners_record_the_origin_as_original_destination() {
        let t = translation(1);
        let net = network(&t);
        let local = localize(&t, &Registry::tutorial(), &net).unwrap();
        for (name, origin) in [
            ("0.0.0.0_80", "127.0.0.1:18080"),
            ("0.0.0.0_443", "127.0.0.1:18443"),
        ] {
            let l = find(&local.sidecar.listeners, name);
            assert!(!l.filter_chains.is_empty());
            for chain in &l.filter_chains {
                assert_eq!(original_destination_of(chain), origin, "{name}");
                assert_eq!(
                    chain.filters[1].name,
                    "envoy.filters.network.http_connection_manager"
                );
            }
        }
        // The VIP listener goes to the gateway over EDS: no original destination to fake.
        let vip = find(&local.sidecar.listeners, "10.96.0.30_443");
        assert_eq!(vip.filter_chains[0].filters.len(), 1);
        // Nor does the translator's own output change.
        assert!(
            find(&t.sidecar.listeners, "0.0.0.0_80").filter_chains[0]
                .filters
                .len()
                == 1
        );
    }

    #[test]
    fn virtual_outbound_gets_an_address_and_a_chain_per_external_port() {
        let t = translation(0);
        let net = network(&t);
        let local = localize(&t, &Registry::tutorial(), &net).unwrap();
        let l = find(&local.sidecar.listeners, VIRTUAL_OUTBOUND);
        assert_eq!(l.use_original_dst, None);
        let extra: Vec<String> = l
            .additional_addresses
            .iter()
            .map(|a| address_of(a.address.as_ref()))
            .collect();
        let (p80, p443) = (
            port_of(&net, PortKey::Passthrough(80)),
            port_of(&net, PortKey::Passthrough(443)),
        );
        assert_eq!(
            extra,
            [format!("127.0.0.1:{p80}"), format!("127.0.0.1:{p443}")]
        );

        let own = port_of(&net, sidecar(VIRTUAL_OUTBOUND));
        let chains: Vec<(&str, Option<u32>)> = l
            .filter_chains
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.filter_chain_match
                        .as_ref()
                        .and_then(|m| m.destination_port)
                        .map(|p| p.value),
                )
            })
            .collect();
        assert_eq!(
            chains,
            [
                ("virtualOutbound-blackhole", Some(u32::from(own))),
                ("virtualOutbound-catchall-tcp", None),
                ("local-original-dst-80", Some(u32::from(p80))),
                ("local-original-dst-443", Some(u32::from(p443))),
            ]
        );
        assert_eq!(
            original_destination_of(&l.filter_chains[2]),
            "127.0.0.1:18080"
        );
        assert_eq!(
            original_destination_of(&l.filter_chains[3]),
            "127.0.0.1:18443"
        );
        for chain in &l.filter_chains[2..] {
            assert_eq!(tcp_cluster(chain), "PassthroughCluster");
        }
    }

    #[test]
    fn dns_endpoints_point_at_the_origin() {
        let t = translation(1);
        let net = network(&t);
        let local = localize(&t, &Registry::tutorial(), &net).unwrap();
        for resources in [&local.sidecar, &local.gateway] {
            for (name, origin) in [
                ("outbound|80||edition.cnn.com", "127.0.0.1:18080"),
                ("outbound|443||edition.cnn.com", "127.0.0.1:18443"),
            ] {
                let c = cluster(resources, name);
                assert_eq!(
                    endpoints(c.load_assignment.as_ref().unwrap()),
                    [origin],
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn eds_endpoints_point_at_the_proxy_playing_the_pod() {
        let t = translation(3);
        let net = network(&t);
        let local = localize(&t, &Registry::tutorial(), &net).unwrap();
        let gateway_8443 = port_of(
            &net,
            PortKey::Listener(ProxyRole::EgressGateway, "0.0.0.0_8443".into()),
        );
        let sleep = port_of(&net, PortKey::Unplayed("sleep".into(), 80));
        for resources in [&local.sidecar, &local.gateway] {
            for name in [
                "outbound|443||istio-egressgateway.istio-system.svc.cluster.local",
                "outbound|443|cnn|istio-egressgateway.istio-system.svc.cluster.local",
            ] {
                assert_eq!(
                    endpoints(assignment(resources, name)),
                    [format!("127.0.0.1:{gateway_8443}")]
                );
            }
            assert_eq!(
                endpoints(assignment(
                    resources,
                    "outbound|80||sleep.default.svc.cluster.local"
                )),
                [format!("127.0.0.1:{sleep}")]
            );
        }
    }

    #[test]
    fn simple_tls_trusts_the_run_roots() {
        let t = translation(4);
        let net = network(&t);
        let local = localize(&t, &Registry::tutorial(), &net).unwrap();
        let trusted = |r: &ProxyResources| {
            let socket = cluster(r, "outbound|443||edition.cnn.com")
                .transport_socket
                .clone()
                .unwrap();
            let Some(transport_socket::ConfigType::TypedConfig(any)) = socket.config_type else {
                panic!()
            };
            let context = UpstreamTlsContext::decode(any.value.as_slice()).unwrap();
            let Some(ValidationContextType::ValidationContext(v)) =
                context.common_tls_context.unwrap().validation_context_type
            else {
                panic!()
            };
            v.trusted_ca.unwrap().specifier
        };
        assert_eq!(
            trusted(&t.gateway),
            Some(Specifier::Filename(SYSTEM_ROOTS.into()))
        );
        for r in [&local.sidecar, &local.gateway] {
            assert_eq!(trusted(r), Some(Specifier::Filename(ROOTS.into())));
        }
    }

    #[test]
    fn a_listener_without_a_reserved_port_is_an_error() {
        let t = translation(2);
        let mut net = network(&t);
        let key = PortKey::Listener(ProxyRole::EgressGateway, "0.0.0.0_8443".into());
        net.ports.remove(&key);
        assert_eq!(
            localize(&t, &Registry::tutorial(), &net),
            Err(LocalizeError::MissingPort(key))
        );

        let mut t = translation(0);
        t.sidecar.listeners[0].name = "0.0.0.0_9999".into();
        let net = network(&translation(0));
        assert_eq!(
            localize(&t, &Registry::tutorial(), &net),
            Err(LocalizeError::MissingPort(sidecar("0.0.0.0_9999")))
        );
    }

    #[test]
    fn connect_to_picks_the_listener_iptables_would() {
        let registry = Registry::tutorial();
        let baseline = translation(0);
        let with_se = translation(1);
        // One network for both stages, as a run holds its ports for its whole length: the
        // later stage's listeners include the baseline's.
        let net = network(&with_se);
        assert!(
            required_ports(&baseline, &registry, &net.external_ports)
                .iter()
                .all(|k| net.ports.contains_key(k))
        );
        let gateway = "istio-egressgateway.istio-system.svc.cluster.local";

        let to = |t: &Translation, host: &str, port: u32| {
            connect_to(host, port, &t.sidecar.listeners, &registry, &net)
        };
        assert_eq!(
            to(&baseline, gateway, 443),
            Ok(port_of(&net, sidecar("10.96.0.30_443")))
        );
        assert_eq!(
            to(&baseline, "edition.cnn.com", 80),
            Ok(port_of(&net, sidecar("0.0.0.0_80")))
        );
        assert_eq!(
            to(&baseline, "edition.cnn.com", 443),
            Ok(port_of(&net, PortKey::Passthrough(443)))
        );
        assert_eq!(
            to(&with_se, "edition.cnn.com", 443),
            Ok(port_of(&net, sidecar("0.0.0.0_443")))
        );
        assert_eq!(
            to(&with_se, "edition.cnn.com", 8443),
            Err(LocalizeError::NoRoute {
                host: "edition.cnn.com".into(),
                port: 8443
            })
        );
    }
}
