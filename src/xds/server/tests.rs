//! The server over real gRPC: with tonic's generated client, and end to end with Envoy.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig,
};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, Node, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpFilterConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Streaming;

use super::*;
use crate::xds::ResourceType;

const WAIT: Duration = Duration::from_secs(30);

fn ads() -> Option<ConfigSource> {
    Some(ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    })
}

fn socket(port: u16) -> Option<Address> {
    Some(Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: "127.0.0.1".to_owned(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    })
}

fn typed<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

fn listener(name: &str, route: &str, stat_prefix: &str) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.to_owned(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: ads(),
            route_config_name: route.to_owned(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".to_owned(),
            config_type: Some(HttpFilterConfigType::TypedConfig(typed(&Router::default()))),
            ..Default::default()
        }],
        ..Default::default()
    };
    Listener {
        name: name.to_owned(),
        // Port 0: Envoy picks a free port, so nothing is hard-coded.
        address: socket(0),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".to_owned(),
                config_type: Some(ConfigType::TypedConfig(typed(&hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn eds_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: ads(),
            service_name: String::new(),
        }),
        ..Default::default()
    }
}

fn endpoints(cluster: &str, port: u16) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: cluster.to_owned(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                    address: socket(port),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn route_config(name: &str, cluster: &str) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts: vec![VirtualHost {
            name: cluster.to_owned(),
            domains: vec!["*".to_owned()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(PathSpecifier::Prefix("/".to_owned())),
                    ..Default::default()
                }),
                action: Some(Action::Route(RouteAction {
                    cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.to_owned())),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// One EDS cluster with its endpoints, one listener whose HCM takes its routes from RDS over
/// ADS, and that route configuration.
fn resources(endpoint_port: u16, stat_prefix: &str) -> ProxyResources {
    ProxyResources {
        clusters: vec![eds_cluster("backend")],
        endpoints: vec![endpoints("backend", endpoint_port)],
        listeners: vec![listener("listener_0", "local_route", stat_prefix)],
        routes: vec![route_config("local_route", "backend")],
    }
}

/// `resources` plus a second cluster and a second listener with its own route configuration.
fn more_resources(endpoint_port: u16) -> ProxyResources {
    let mut more = resources(endpoint_port, "ingress");
    more.clusters.push(eds_cluster("backend2"));
    more.endpoints.push(endpoints("backend2", endpoint_port));
    more.listeners
        .push(listener("listener_1", "second_route", "second"));
    more.routes.push(route_config("second_route", "backend2"));
    more
}

/// A client stream: requests go in through the sender, responses come out of the stream.
async fn open(
    server: &XdsServer,
) -> (
    mpsc::UnboundedSender<DiscoveryRequest>,
    Streaming<DiscoveryResponse>,
) {
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", server.addr()))
        .await
        .unwrap();
    let (requests, outgoing) = mpsc::unbounded_channel();
    let responses = client
        .stream_aggregated_resources(UnboundedReceiverStream::new(outgoing))
        .await
        .unwrap()
        .into_inner();
    (requests, responses)
}

fn request(kind: ResourceType, version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: version.to_owned(),
        node: Some(Node {
            id: "client".to_owned(),
            ..Default::default()
        }),
        type_url: kind.type_url().to_owned(),
        response_nonce: nonce.to_owned(),
        ..Default::default()
    }
}

async fn next(responses: &mut Streaming<DiscoveryResponse>) -> DiscoveryResponse {
    tokio::time::timeout(WAIT, responses.message())
        .await
        .expect("a response in time")
        .unwrap()
        .expect("an open stream")
}

#[tokio::test]
async fn a_grpc_client_is_served_acked_and_replaced_by_its_reconnection() {
    let server = XdsServer::start().await.unwrap();
    assert!(server.addr().ip().is_loopback());
    assert_ne!(server.addr().port(), 0);
    let handle = server.handle();
    let err = handle.wait_acked("client", WAIT).await.unwrap_err();
    assert!(matches!(err, XdsError::NotPublished { .. }), "{err}");
    handle.publish("client", ProxyResources::default());

    let (requests, mut responses) = open(&server).await;
    requests
        .send(request(ResourceType::Cluster, "", ""))
        .unwrap();
    let cds = next(&mut responses).await;
    assert_eq!(cds.type_url, ResourceType::Cluster.type_url());
    assert!(cds.resources.is_empty());
    requests
        .send(request(ResourceType::Listener, "", ""))
        .unwrap();
    let lds = next(&mut responses).await;
    let timeout = handle
        .wait_acked("client", Duration::from_millis(50))
        .await
        .unwrap_err();
    let XdsError::Timeout {
        awaited, last_seen, ..
    } = &timeout
    else {
        panic!("expected a timeout, got {timeout}");
    };
    assert_eq!(awaited, "CDS: an ACK of v1, LDS: an ACK of v1");
    assert!(
        last_seen.contains("CDS: published v1, sent v1"),
        "{last_seen}"
    );

    let waiter = tokio::spawn({
        let handle = handle.clone();
        async move { handle.wait_acked("client", WAIT).await }
    });
    for response in [&cds, &lds] {
        let kind = ResourceType::from_type_url(&response.type_url).unwrap();
        requests
            .send(request(kind, &response.version_info, &response.nonce))
            .unwrap();
    }
    let report = waiter.await.unwrap().unwrap();
    assert_eq!(report.generation, 1);
    assert_eq!(report.types.len(), 2);

    // A reconnection gets everything again and ends the old stream.
    let (requests2, mut responses2) = open(&server).await;
    requests2
        .send(request(ResourceType::Cluster, "1", ""))
        .unwrap();
    assert_eq!(next(&mut responses2).await.version_info, "1");
    let ended = tokio::time::timeout(WAIT, responses.message())
        .await
        .expect("the old stream ends in time")
        .unwrap_err();
    assert_eq!(ended.code(), tonic::Code::Aborted, "{ended}");

    // Shutdown ends the live stream instead of waiting for the client.
    server.shutdown().await;
    let end = tokio::time::timeout(WAIT, responses2.message())
        .await
        .expect("the stream ends in time");
    assert!(!matches!(end, Ok(Some(_))), "{end:?}");
    let stopped = handle.wait_acked("client", WAIT).await.unwrap_err();
    assert!(matches!(stopped, XdsError::Stopped { .. }), "{stopped}");
}

fn envoy_binary() -> Option<PathBuf> {
    crate::envoy::locate::binary_for_tests().map(|b| b.path)
}

fn bootstrap(node_id: &str, xds: std::net::SocketAddr) -> serde_json::Value {
    serde_json::json!({
        "node": {"id": node_id, "cluster": "xds-test"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"}
        },
        "static_resources": {
            "clusters": [{
                "name": "xds-grpc",
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": "xds-grpc",
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                        "address": xds.ip().to_string(),
                        "port_value": xds.port()
                    }}}}]}]
                },
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}}
                    }
                }
            }]
        }
    })
}

#[tokio::test]
async fn envoy_acks_a_valid_publication_and_nacks_an_invalid_listener() {
    let Some(envoy) = envoy_binary() else {
        println!("skipped: EGRESS_CONFORMANCE_SKIP_ENVOY_TESTS is set");
        return;
    };
    let server = XdsServer::start().await.unwrap();
    let handle = server.handle();
    let node = "sidecar~e2e";
    // The endpoint needs no listener: the test only checks that Envoy accepts the config.
    handle.publish(node, resources(server.addr().port(), "ingress"));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bootstrap.json");
    std::fs::write(&config, bootstrap(node, server.addr()).to_string()).unwrap();
    let log = dir.path().join("envoy.log");
    let mut child = tokio::process::Command::new(&envoy)
        .arg("--disable-hot-restart")
        .args(["--concurrency", "1"])
        .arg("--admin-address-path")
        .arg(dir.path().join("admin"))
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", envoy.display()));
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    let report = tokio::select! {
        acked = handle.wait_acked(node, WAIT) => acked.unwrap_or_else(|e| panic!("{e}\n{}", log_text())),
        exit = child.wait() => panic!("envoy exited early: {exit:?}\n{}", log_text()),
    };
    let acked: Vec<_> = report
        .types
        .iter()
        .map(|t| (t.kind.short_name(), t.resource_names.clone()))
        .collect();
    assert_eq!(
        acked,
        [
            ("CDS", vec!["backend".to_owned()]),
            ("EDS", vec!["backend".to_owned()]),
            ("LDS", vec!["listener_0".to_owned()]),
            ("RDS", vec!["local_route".to_owned()]),
        ]
    );
    let status = handle.status(node).unwrap();
    assert!(status.connected);
    assert!(
        status
            .types
            .iter()
            .all(|t| t.version_acked == Some(1) && t.last_nack.is_none()),
        "{status}"
    );

    // A new cluster and listener: Envoy ACKs CDS and LDS before it asks for the new EDS and RDS
    // names, and the wait covers those answers too.
    assert_eq!(
        handle.publish(node, more_resources(server.addr().port())),
        2
    );
    let report = tokio::select! {
        acked = handle.wait_acked(node, WAIT) => acked.unwrap_or_else(|e| panic!("{e}\n{}", log_text())),
        exit = child.wait() => panic!("envoy exited early: {exit:?}\n{}", log_text()),
    };
    let acked: Vec<_> = report
        .types
        .iter()
        .map(|t| (t.kind.short_name(), t.version, t.resource_names.clone()))
        .collect();
    let names = |a: &str, b: &str| vec![a.to_owned(), b.to_owned()];
    assert_eq!(
        acked,
        [
            ("CDS", 2, names("backend", "backend2")),
            ("EDS", 2, names("backend", "backend2")),
            ("LDS", 2, names("listener_0", "listener_1")),
            ("RDS", 2, names("local_route", "second_route")),
        ]
    );

    // An HCM without a stat prefix violates Envoy's proto constraints.
    let generation = handle.publish(node, resources(server.addr().port(), ""));
    assert_eq!(generation, 3);
    let err = tokio::select! {
        acked = handle.wait_acked(node, WAIT) => acked.expect_err("envoy must reject the listener"),
        exit = child.wait() => panic!("envoy exited early: {exit:?}\n{}", log_text()),
    };
    let XdsError::Nacked {
        kind,
        type_url,
        version,
        message,
        ..
    } = &err
    else {
        panic!("expected a NACK, got {err}\n{}", log_text());
    };
    assert_eq!(*kind, ResourceType::Listener);
    assert_eq!(*type_url, ResourceType::Listener.type_url());
    assert_eq!(*version, 3);
    assert!(message.contains("listener_0"), "{message}");
    assert!(
        message.contains("StatPrefix: value length must be at least 1"),
        "{message}"
    );
    println!("envoy rejected the listener: {err}");

    child.kill().await.unwrap();
    server.shutdown().await;
}
