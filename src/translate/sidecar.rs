//! The sidecar's outbound listeners and route configurations.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::listener::v3::{
    FilterChain, FilterChainMatch, Listener, ListenerFilter, listener_filter,
};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteConfiguration, VirtualHost, route::Action,
};
use envoy_types::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::google::protobuf::UInt32Value;

use crate::mesh::{MeshSettings, OutboundTrafficPolicy};

use super::clusters;
use super::envoy_build::{any, bool_value, seconds, socket_address};
use super::hcm::{http_connection_manager, listener, tcp_proxy};
use super::model::{MeshModel, PortClass, Service, ServicePort};
use super::routes::{self, Context};

pub(crate) const VIRTUAL_OUTBOUND: &str = "virtualOutbound";
pub(crate) const VIRTUAL_OUTBOUND_PORT: u32 = 15001;
const BLACKHOLE_CHAIN: &str = "virtualOutbound-blackhole";
pub(crate) const CATCH_ALL_CHAIN: &str = "virtualOutbound-catchall-tcp";
/// The default chain of a listener whose chains all match something.
pub(crate) const PASSTHROUGH_CHAIN: &str = "PassthroughFilterChain";
pub(crate) const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
pub(crate) const HTTP_INSPECTOR: &str = "envoy.filters.listener.http_inspector";
/// istiod's `PILOT_GATEWAY_TRANSPORT_SOCKET_CONNECT_TIMEOUT`, which sidecars' TCP chains get too.
const TRANSPORT_SOCKET_CONNECT_TIMEOUT: i64 = 15;

/// The ports on which some service speaks HTTP: each gets a shared `0.0.0.0_<port>` listener.
fn http_ports(model: &MeshModel<'_>) -> BTreeSet<u32> {
    model
        .services
        .iter()
        .flat_map(|s| {
            s.ports
                .iter()
                .filter(|p| p.class() == PortClass::Http)
                .map(|p| p.number)
        })
        .collect()
}

pub(crate) fn listeners(model: &MeshModel<'_>, mesh: &MeshSettings) -> Vec<Listener> {
    let mut out = Vec::new();
    let http = http_ports(model);
    for port in &http {
        // The HTTP chain takes what http_inspector saw as HTTP; anything else on the port (the
        // TLS of a redirect to https on a port declared HTTP) falls through to where unknown
        // destinations go, as istiod has done since istio/istio#26079.
        let chain = FilterChain {
            filter_chain_match: Some(FilterChainMatch {
                transport_protocol: "raw_buffer".into(),
                application_protocols: vec!["http/1.1".into(), "h2c".into()],
                ..Default::default()
            }),
            filters: vec![http_connection_manager(
                &format!("outbound_0.0.0.0_{port};"),
                &port.to_string(),
                false,
            )],
            ..Default::default()
        };
        let mut http_listener = tcp_listener("0.0.0.0", *port, vec![chain]);
        http_listener.listener_filters = vec![http_inspector()];
        http_listener.default_filter_chain = Some(passthrough_chain(mesh.outbound_traffic_policy));
        out.push(http_listener);
    }
    // Every other port: bound to the service's address when it has one, else shared on
    // `0.0.0.0_<port>` (istiod's `buildSidecarOutboundTCPListenerOpts`).
    let mut wildcard: BTreeMap<u32, Vec<(&Service, &ServicePort)>> = BTreeMap::new();
    for service in &model.services {
        for port in service
            .ports
            .iter()
            .filter(|p| p.class() != PortClass::Http)
        {
            let cluster = clusters::name(port.number, None, &service.hostname);
            match &service.vip {
                // With an address of its own, the destination already says which service it
                // is: one chain, no SNI match.
                Some(vip) => out.push(tcp_listener(vip, port.number, vec![tcp_chain(&cluster)])),
                None if http.contains(&port.number) => {}
                None => wildcard
                    .entry(port.number)
                    .or_default()
                    .push((service, port)),
            }
        }
    }
    for (port, services) in wildcard {
        let tls: Vec<&Service> = services
            .iter()
            .filter(|(_, p)| p.class() == PortClass::Tls)
            .map(|(s, _)| *s)
            .collect();
        if tls.len() == services.len() {
            // TLS: one chain per host, matched by the SNI the client sends; anything else
            // goes where unknown destinations go.
            let chains = tls
                .iter()
                .map(|s| {
                    let mut chain = tcp_chain(&clusters::name(port, None, &s.hostname));
                    chain.filter_chain_match = Some(FilterChainMatch {
                        server_names: vec![s.hostname.clone()],
                        ..Default::default()
                    });
                    chain
                })
                .collect();
            let mut tls_listener = tcp_listener("0.0.0.0", port, chains);
            tls_listener.listener_filters = vec![tls_inspector()];
            tls_listener.default_filter_chain =
                Some(passthrough_chain(mesh.outbound_traffic_policy));
            out.push(tls_listener);
        } else if let [(service, _)] = services.as_slice() {
            // One TCP service without an address takes the whole port.
            let cluster = clusters::name(port, None, &service.hostname);
            out.push(tcp_listener("0.0.0.0", port, vec![tcp_chain(&cluster)]));
        }
    }
    out.push(virtual_outbound(mesh.outbound_traffic_policy));
    out
}

/// Which ServiceEntry ports the sidecar cannot give a listener the way istiod would: a TCP port
/// without an address that another service also claims (istiod merges or drops such chains, and
/// sniffs the protocol where HTTP shares the port). The model reports them as unsupported.
pub(crate) fn conflicting_ports(model: &MeshModel<'_>) -> Vec<(String, u32)> {
    let http = http_ports(model);
    let mut wildcard: BTreeMap<u32, Vec<(&Service, PortClass)>> = BTreeMap::new();
    for service in model.services.iter().filter(|s| s.vip.is_none()) {
        for port in service
            .ports
            .iter()
            .filter(|p| p.class() != PortClass::Http)
        {
            wildcard
                .entry(port.number)
                .or_default()
                .push((service, port.class()));
        }
    }
    let mut out = Vec::new();
    for (port, services) in wildcard {
        let all_tls = services.iter().all(|(_, c)| *c == PortClass::Tls);
        if http.contains(&port) || (!all_tls && services.len() > 1) {
            out.extend(services.iter().map(|(s, _)| (s.hostname.clone(), port)));
        }
    }
    out
}

/// A sidecar listener whose chains may be picked by what its listener filters sniff: not bound
/// (iptables brings the traffic), and never waiting on those filters.
fn tcp_listener(ip: &str, port: u32, chains: Vec<FilterChain>) -> Listener {
    let mut tcp = listener(ip, port, false, chains);
    tcp.continue_on_listener_filters_timeout = true;
    tcp.listener_filters_timeout = Some(seconds(0));
    tcp
}

/// A chain that proxies the connection's bytes to one cluster.
fn tcp_chain(cluster: &str) -> FilterChain {
    FilterChain {
        filters: vec![tcp_proxy(cluster, cluster)],
        transport_socket_connect_timeout: Some(seconds(TRANSPORT_SOCKET_CONNECT_TIMEOUT)),
        ..Default::default()
    }
}

/// The default chain of a listener whose chains all match something (SNI, a sniffed protocol):
/// what matches none goes where unknown destinations go (istiod's `PassthroughFilterChain`).
fn passthrough_chain(policy: OutboundTrafficPolicy) -> FilterChain {
    let cluster = clusters::catch_all(policy);
    FilterChain {
        name: PASSTHROUGH_CHAIN.into(),
        filter_chain_match: Some(FilterChainMatch::default()),
        filters: vec![tcp_proxy(cluster, cluster)],
        ..Default::default()
    }
}

fn http_inspector() -> ListenerFilter {
    ListenerFilter {
        name: HTTP_INSPECTOR.into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(any(
            &HttpInspector::default(),
        ))),
        ..Default::default()
    }
}

fn tls_inspector() -> ListenerFilter {
    ListenerFilter {
        name: TLS_INSPECTOR.into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(any(
            &TlsInspector {
                initial_read_buffer_size: Some(UInt32Value { value: 512 }),
                ..Default::default()
            },
        ))),
        ..Default::default()
    }
}

/// Where iptables sends all outbound traffic; it hands connections to the listener for their
/// original destination, and keeps those no listener claims.
fn virtual_outbound(policy: OutboundTrafficPolicy) -> Listener {
    let cluster = clusters::catch_all(policy);
    Listener {
        name: VIRTUAL_OUTBOUND.into(),
        address: Some(socket_address("0.0.0.0", VIRTUAL_OUTBOUND_PORT)),
        use_original_dst: Some(bool_value(true)),
        filter_chains: vec![
            // A connection made to 15001 itself would loop: drop it.
            FilterChain {
                name: BLACKHOLE_CHAIN.into(),
                filter_chain_match: Some(FilterChainMatch {
                    destination_port: Some(UInt32Value {
                        value: VIRTUAL_OUTBOUND_PORT,
                    }),
                    ..Default::default()
                }),
                filters: vec![tcp_proxy(clusters::BLACKHOLE, clusters::BLACKHOLE)],
                ..Default::default()
            },
            FilterChain {
                name: CATCH_ALL_CHAIN.into(),
                filters: vec![tcp_proxy(cluster, cluster)],
                ..Default::default()
            },
        ],
        traffic_direction: envoy_types::pb::envoy::config::core::v3::TrafficDirection::Outbound
            as i32,
        ..Default::default()
    }
}

pub(crate) fn routes(
    model: &MeshModel<'_>,
    mesh: &MeshSettings,
    proxy_namespace: &str,
) -> Vec<RouteConfiguration> {
    http_ports(model)
        .into_iter()
        .map(|port| {
            let mut hosts: Vec<VirtualHost> = model
                .services
                .iter()
                .filter(|s| s.port(port).is_some_and(|p| p.class() == PortClass::Http))
                .filter_map(|s| service_virtual_host(model, s, port, proxy_namespace))
                .collect();
            hosts.sort_by(|a, b| a.name.cmp(&b.name));
            hosts.push(catch_all(mesh.outbound_traffic_policy));
            RouteConfiguration {
                name: port.to_string(),
                virtual_hosts: hosts,
                validate_clusters: Some(bool_value(false)),
                max_direct_response_body_size_bytes: Some(UInt32Value { value: 1024 * 1024 }),
                ignore_port_in_host_matching: true,
                ..Default::default()
            }
        })
        .collect()
}

fn service_virtual_host(
    model: &MeshModel<'_>,
    service: &Service,
    port: u32,
    proxy_namespace: &str,
) -> Option<VirtualHost> {
    let bound = routes::virtual_services_for(model, &Context::Mesh, &service.hostname);
    let route_list: Vec<Route> = if bound.is_empty() {
        vec![routes::default_route(
            clusters::name(port, None, &service.hostname),
            &service.hostname,
            port,
        )]
    } else {
        let translated: Vec<Route> = bound
            .iter()
            .flat_map(|(key, vs)| {
                routes::from_virtual_service(model, key, vs, &Context::Mesh, port)
            })
            .collect();
        if translated.is_empty() {
            // A VirtualService speaks for this host but has no rule for this port: istiod
            // leaves the host's default route in place for it.
            vec![routes::default_route(
                clusters::name(port, None, &service.hostname),
                &service.hostname,
                port,
            )]
        } else {
            translated
        }
    };
    Some(routes::virtual_host(
        format!("{}:{port}", service.hostname),
        domains(service, proxy_namespace),
        route_list,
    ))
}

/// The names a client in `proxy_namespace` can use for `service`.
fn domains(service: &Service, proxy_namespace: &str) -> Vec<String> {
    let host = &service.hostname;
    let mut out = vec![host.clone(), format!("{host}.")];
    if let Some(stem) = host.strip_suffix(".svc.cluster.local") {
        // The names Kubernetes' search path completes: `name` only from the same namespace.
        match stem.split_once('.') {
            Some((name, ns)) if ns == proxy_namespace => {
                out.extend([name.to_string(), format!("{stem}.svc"), stem.to_string()])
            }
            _ => out.extend([stem.to_string(), format!("{stem}.svc")]),
        }
    }
    if let Some(vip) = &service.vip {
        out.push(vip.clone());
    }
    out
}

/// The last virtual host: what happens to a request for a host the mesh does not know.
fn catch_all(policy: OutboundTrafficPolicy) -> VirtualHost {
    let prefix = || Some(routes::prefix_match());
    match policy {
        OutboundTrafficPolicy::AllowAny => {
            let mut route = routes::default_route(clusters::PASSTHROUGH.into(), "", 0);
            route.name = "allow_any".into();
            route.decorator = None;
            if let Some(Action::Route(action)) = &mut route.action {
                action.retry_policy = None;
            }
            routes::virtual_host("allow_any".into(), vec!["*".into()], vec![route])
        }
        OutboundTrafficPolicy::RegistryOnly => routes::virtual_host(
            "block_all".into(),
            vec!["*".into()],
            vec![Route {
                name: "block_all".into(),
                r#match: prefix(),
                action: Some(Action::DirectResponse(DirectResponseAction {
                    status: 502,
                    ..Default::default()
                })),
                ..Default::default()
            }],
        ),
    }
}
