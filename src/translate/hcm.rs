//! The HTTP connection manager and TCP proxy filters both proxies use.

use envoy_types::pb::envoy::config::core::v3::ConfigSource;
use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
    http_connection_manager::{RouteSpecifier, Tracing, UpgradeConfig},
    http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier,
};

use envoy_types::pb::envoy::r#type::v3::Percent;

use super::envoy_build::{ads, any, bool_value, seconds, socket_address};

pub(crate) const HCM: &str = "envoy.filters.network.http_connection_manager";
pub(crate) const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";

pub(crate) fn http_connection_manager(
    stat_prefix: &str,
    route_config: &str,
    gateway: bool,
) -> Filter {
    let hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ConfigSource {
                initial_fetch_timeout: Some(seconds(0)),
                ..ads()
            }),
            route_config_name: route_config.to_string(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(
                any(&Router::default()),
            )),
            ..Default::default()
        }],
        // A gateway is the edge of the mesh: it trusts the connection's peer, as Istio sets it.
        use_remote_address: Some(bool_value(gateway)),
        normalize_path: Some(bool_value(true)),
        upgrade_configs: vec![UpgradeConfig {
            upgrade_type: "websocket".into(),
            ..Default::default()
        }],
        stream_idle_timeout: Some(seconds(0)),
        server_name: if gateway {
            "istio-envoy".into()
        } else {
            String::new()
        },
        tracing: Some(tracing()),
        ..Default::default()
    };
    Filter {
        name: HCM.into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&hcm))),
    }
}

/// Tracing as istiod configures it by default (`meshConfig.enableTracing`, 1% sampling), with no
/// provider: no span leaves the proxy, but the router propagates each route's decorator as
/// `x-envoy-decorator-operation`, which the egress-control tutorial shows. istiod's custom tags
/// are left out: without a provider nothing reads them.
fn tracing() -> Tracing {
    let percent = |value: f64| Some(Percent { value });
    Tracing {
        client_sampling: percent(100.0),
        random_sampling: percent(1.0),
        overall_sampling: percent(100.0),
        ..Default::default()
    }
}

pub(crate) fn tcp_proxy(stat_prefix: &str, cluster: &str) -> Filter {
    let proxy = TcpProxy {
        stat_prefix: stat_prefix.to_string(),
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.to_string())),
        ..Default::default()
    };
    Filter {
        name: TCP_PROXY.into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&proxy))),
    }
}

/// An outbound listener as istiod names it: `<ip>_<port>`. Sidecar listeners do not bind; the
/// pod's iptables sends traffic to `virtualOutbound`, which hands it over by original destination.
pub(crate) fn listener(ip: &str, port: u32, bind: bool, chains: Vec<FilterChain>) -> Listener {
    Listener {
        name: format!("{ip}_{port}"),
        address: Some(socket_address(ip, port)),
        filter_chains: chains,
        bind_to_port: (!bind).then(|| bool_value(false)),
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    }
}
