//! The bootstrap each local Envoy starts with: its node identity, an admin API on a free loopback
//! port, ADS to the run's ADS server, SDS to the run's SDS server (as pilot-agent serves it), and
//! the runtime flags pilot-agent gives Istio's proxies. Everything else comes over xDS.

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::mesh::{ProxyRole, Workload};

/// The node id istiod would see: `<type>~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local`.
pub(crate) fn node_id(role: ProxyRole, workload: &Workload) -> String {
    let kind = match role {
        ProxyRole::Sidecar => "sidecar",
        ProxyRole::EgressGateway => "router",
    };
    format!(
        "{kind}~{ip}~{name}.{ns}~{ns}.svc.cluster.local",
        ip = workload.ip,
        name = workload.name,
        ns = workload.namespace
    )
}

/// The runtime flags pilot-agent sets for every Istio proxy (istio/istio
/// `pkg/bootstrap/config.go`), so the local Envoys judge config as Istio's would.
fn istio_runtime() -> Value {
    json!({"layers": [
        {"name": "global config", "static_layer": {
            "re2.max_program_size.error_level": "32768",
            "envoy.deprecated_features:envoy.config.listener.v3.Listener.hidden_envoy_deprecated_use_original_dst": true,
            "envoy.reloadable_features.http_reject_path_with_fragment": false,
            "envoy.reloadable_features.fixed_heap_use_allocated": true,
            "envoy.reloadable_features.coalesce_lb_rebuilds_on_batch_update": false,
        }},
        {"name": "admin", "admin_layer": {}},
    ]})
}

pub(crate) fn bootstrap(
    node_id: &str,
    workload: &Workload,
    xds: SocketAddr,
    sds: SocketAddr,
) -> Value {
    let ads = json!({"ads": {}, "resource_api_version": "V3"});
    json!({
        "node": {
            "id": node_id,
            "cluster": format!("{}.{}", workload.name, workload.namespace),
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": true,
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
            },
            "cds_config": ads,
            "lds_config": ads,
        },
        "layered_runtime": istio_runtime(),
        "static_resources": {"clusters": [crate::sds::bootstrap_cluster(sds), {
            "name": "xds-grpc",
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": "xds-grpc",
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                    "address": xds.ip().to_string(),
                    "port_value": xds.port(),
                }}}}]}],
            },
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                },
            },
        }]},
    })
}
