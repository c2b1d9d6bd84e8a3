//! The egress gateway's listeners and route configurations, from the Gateways that select it and
//! the VirtualServices bound to them.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};

use crate::mesh::{Registry, Workload};

use super::envoy_build::bool_value;
use super::hcm::{http_connection_manager, listener};
use super::model::MeshModel;
use super::routes::{self, Context};

/// One gateway listener and the servers that share it.
pub(crate) struct GatewayListener {
    pub listener: Listener,
    pub route_config: String,
    /// The Service port the servers declare (virtual host names use it).
    pub service_port: u32,
    /// `(gateway namespace, gateway name, server hosts)` of each server on this listener.
    pub servers: Vec<(String, String, Vec<String>)>,
}

/// The port a server binds: the gateway Service's targetPort for the server's port number (modern
/// Istio binds the pod's port), else the number itself.
fn bind_port(registry: &Registry, workload: &Workload, number: u32) -> u32 {
    registry
        .services
        .iter()
        .filter(|s| registry.workloads_for(s).any(|w| w.name == workload.name))
        .flat_map(|s| s.ports.iter())
        .find(|p| p.port == number)
        .map(|p| p.target_port)
        .unwrap_or(number)
}

pub(crate) fn listeners(
    model: &MeshModel<'_>,
    registry: &Registry,
    workload: &Workload,
) -> Vec<GatewayListener> {
    let mut by_port: BTreeMap<u32, GatewayListener> = BTreeMap::new();
    for (key, gateway) in &model.gateways {
        if !gateway
            .selector
            .iter()
            .all(|(k, v)| workload.labels.get(k) == Some(v))
        {
            continue;
        }
        for server in &gateway.servers {
            // Validation guarantees every server a port.
            let Some(server_port) = &server.port else {
                continue;
            };
            let port = bind_port(registry, workload, server_port.number);
            let entry = by_port.entry(port).or_insert_with(|| {
                let route_config = format!("http.{port}");
                let chain = FilterChain {
                    filters: vec![http_connection_manager(
                        &format!("outbound_0.0.0.0_{port};"),
                        &route_config,
                        true,
                    )],
                    ..Default::default()
                };
                GatewayListener {
                    listener: listener("0.0.0.0", port, true, vec![chain]),
                    route_config,
                    service_port: server_port.number,
                    servers: Vec::new(),
                }
            });
            let hosts = server
                .hosts
                .iter()
                .map(|h| {
                    h.split_once('/')
                        .map(|(_, host)| host)
                        .unwrap_or(h)
                        .to_string()
                })
                .collect();
            entry
                .servers
                .push((key.namespace.clone(), key.name.clone(), hosts));
        }
    }
    by_port.into_values().collect()
}

pub(crate) fn routes(
    model: &MeshModel<'_>,
    listeners: &[GatewayListener],
) -> Vec<RouteConfiguration> {
    listeners
        .iter()
        .map(|gl| {
            let port = gl.service_port;
            let mut hosts: BTreeMap<String, VirtualHost> = BTreeMap::new();
            for (namespace, name, server_hosts) in &gl.servers {
                let context = Context::Gateway {
                    namespace: namespace.clone(),
                    name: name.clone(),
                };
                for (key, vs) in &model.virtual_services {
                    for vs_host in &vs.hosts {
                        if !server_hosts.iter().any(|h| host_matches(h, vs_host)) {
                            continue;
                        }
                        let bound = routes::virtual_services_for(model, &context, vs_host);
                        if !bound.iter().any(|(k, _)| *k == key) {
                            continue;
                        }
                        let translated =
                            routes::from_virtual_service(model, key, vs, &context, port);
                        if translated.is_empty() {
                            continue;
                        }
                        hosts
                            .entry(format!("{vs_host}:{port}"))
                            .or_insert_with(|| {
                                routes::virtual_host(
                                    format!("{vs_host}:{port}"),
                                    vec![vs_host.clone()],
                                    Vec::new(),
                                )
                            })
                            .routes
                            .extend(translated);
                    }
                }
            }
            let mut virtual_hosts: Vec<VirtualHost> = hosts.into_values().collect();
            if virtual_hosts.is_empty() {
                // Nothing bound: one host that matches everything and has no route, so Envoy
                // answers 404.
                let mut blackhole =
                    routes::virtual_host(format!("blackhole:{port}"), vec!["*".into()], Vec::new());
                blackhole.include_request_attempt_count = false;
                virtual_hosts.push(blackhole);
            }
            RouteConfiguration {
                name: gl.route_config.clone(),
                virtual_hosts,
                validate_clusters: Some(bool_value(false)),
                max_direct_response_body_size_bytes: Some(
                    envoy_types::pb::google::protobuf::UInt32Value { value: 1024 * 1024 },
                ),
                ignore_port_in_host_matching: true,
                ..Default::default()
            }
        })
        .collect()
}

/// A server host (`*`, `*.example.com` or exact) admits a VirtualService host.
fn host_matches(server_host: &str, vs_host: &str) -> bool {
    match server_host.strip_prefix('*') {
        Some(suffix) => vs_host.ends_with(suffix),
        None => server_host == vs_host,
    }
}
