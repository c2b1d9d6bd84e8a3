//! The translator on the other tutorials of the series: a snapshot of every stage that changes
//! something, and focused assertions on the shapes each tutorial brings (TLS passthrough by SNI,
//! `targetPort`, REGISTRY_ONLY, route timeouts, TCP by address, STATIC endpoints), each checked
//! against what istiod 1.31 sends for the same objects.

use std::collections::BTreeMap;

use super::*;
use crate::suite::vars;

/// The variables the TCP suite gives its fixtures (as `suites/external-tcp-service.yaml` does).
fn tcp_vars() -> BTreeMap<String, String> {
    [
        ("MYSQL_DB_HOST", "mysqldb.example.com"),
        ("MYSQL_DB_IP", "192.0.2.10"),
        ("MYSQL_DB_PORT", "3306"),
        ("MONGODB_IP", "192.0.2.20"),
        ("MONGODB_PORT", "27017"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into()
}

fn series_fixture(dir: &str, file: &str) -> Vec<IstioObject> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(dir)
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let text = vars::expand(&text, &tcp_vars()).unwrap();
    crate::istio::parse::parse_manifests(&path, &text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The `kubectl delete` lines of a cleanup fixture, as keys (names may be several to a line).
fn deletes(dir: &str, file: &str) -> Vec<ObjectKey> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(dir)
        .join(file);
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("kubectl delete "))
        .flat_map(|rest| {
            let words: Vec<&str> = rest
                .split_whitespace()
                .filter(|w| !w.starts_with('-') && *w != "default")
                .collect();
            let kind = Kind::from_cli_name(words[0]).unwrap();
            words[1..]
                .iter()
                .map(|name| ObjectKey {
                    kind,
                    namespace: NAMESPACE.into(),
                    name: name.to_string(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn apply_all(config: &mut AppliedConfig, dir: &str, file: &str) {
    for object in series_fixture(dir, file) {
        config.apply(object, NAMESPACE);
    }
}

fn registry_only() -> MeshSettings {
    MeshSettings {
        outbound_traffic_policy: OutboundTrafficPolicy::RegistryOnly,
    }
}

fn tcp_proxy_cluster(chain: &FilterChain) -> String {
    let filter = chain
        .filters
        .iter()
        .find(|f| f.name == "envoy.filters.network.tcp_proxy")
        .expect("a tcp_proxy");
    match filter_payload::<TcpProxy>(filter).cluster_specifier {
        Some(TcpCluster::Cluster(c)) => c,
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// egress-gateway (its HTTP part).

const GATEWAY_DIR: &str = "egress-gateway";

fn egress_gateway(stage: usize) -> AppliedConfig {
    let mut config = AppliedConfig::default();
    let files = [
        "01-serviceentry-cnn.yaml",
        "02-gateway-destinationrule-egressgateway-for-cnn.yaml",
        "03-virtualservice-direct-cnn-through-egress-gateway.yaml",
    ];
    for file in files.iter().take(stage) {
        apply_all(&mut config, GATEWAY_DIR, file);
    }
    config
}

#[test]
fn egress_gateway_snapshots() {
    let mesh = MeshSettings::default();
    for (n, name) in [
        (1, "egress-gateway-1-service-entry"),
        (2, "egress-gateway-2-gateway"),
        (3, "egress-gateway-3-route-through-gateway"),
    ] {
        check_snapshot(
            name,
            &describe_translation(&translate_config(&egress_gateway(n), &mesh)),
        );
    }
}

#[test]
fn an_https_port_is_tls_passed_through_by_sni() {
    let t = translate_config(&egress_gateway(1), &MeshSettings::default());
    let l = find_listener(&t.sidecar, "0.0.0.0_443");
    assert_eq!(l.bind_to_port, Some(BoolValue { value: false }));
    assert_eq!(
        l.listener_filters
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["envoy.filters.listener.tls_inspector"]
    );
    let [chain] = l.filter_chains.as_slice() else {
        panic!("{:?}", l.filter_chains)
    };
    let m = chain.filter_chain_match.as_ref().unwrap();
    assert_eq!(m.server_names, ["edition.cnn.com"]);
    assert_eq!(tcp_proxy_cluster(chain), CNN_443);
    let default = l.default_filter_chain.as_ref().expect("a default chain");
    assert_eq!(default.name, "PassthroughFilterChain");
    assert_eq!(tcp_proxy_cluster(default), "PassthroughCluster");
    // The cluster passes the client's TLS through: no TLS of its own.
    let c = find_cluster(&t.sidecar, CNN_443);
    assert_eq!(discovery(c), DiscoveryType::StrictDns);
    assert!(c.transport_socket.is_none());
    assert!(c.typed_extension_protocol_options.is_empty());
    // No HTTP route config for 443: the port is not HTTP.
    assert!(!t.sidecar.routes.iter().any(|r| r.name == "443"));
}

#[test]
fn the_egress_gateways_http_server_on_80_binds_8080_and_routes_to_port_80() {
    let t = translate_config(&egress_gateway(3), &MeshSettings::default());
    assert_eq!(listener_names(&t.gateway), ["0.0.0.0_8080"]);
    let rc = find_route_config(&t.gateway, "http.8080");
    assert_eq!(vhost_names(rc), ["edition.cnn.com:80"]);
    assert_eq!(
        route_cluster(only_route(find_vhost(rc, "edition.cnn.com:80"))),
        CNN_80
    );
    let sidecar_80 = find_route_config(&t.sidecar, "80");
    let subset_80 = "outbound|80|cnn|istio-egressgateway.istio-system.svc.cluster.local";
    assert_eq!(
        route_cluster(only_route(find_vhost(sidecar_80, "edition.cnn.com:80"))),
        subset_80
    );
    // To the gateway's http2 port: HTTP/2 upstream.
    let c = find_cluster(&t.sidecar, subset_80);
    assert!(
        c.typed_extension_protocol_options
            .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
    );
}

#[test]
fn egress_gateway_cleanup_is_the_baseline() {
    let mut config = egress_gateway(3);
    for key in deletes(GATEWAY_DIR, "04-cleanup.sh") {
        assert!(config.delete(&key).is_some(), "{key}");
    }
    let mesh = MeshSettings::default();
    assert_eq!(
        describe_translation(&translate_config(&config, &mesh)),
        describe_translation(&translate_config(&AppliedConfig::default(), &mesh))
    );
}

// ---------------------------------------------------------------------------------------------
// egress-tls-origination.

const ORIGINATION_DIR: &str = "egress-tls-origination";

fn origination(stage: usize) -> AppliedConfig {
    let mut config = AppliedConfig::default();
    let files = [
        "01-serviceentry-edition-cnn-com.yaml",
        "02-serviceentry-destinationrule-originate-tls.yaml",
    ];
    for file in files.iter().take(stage) {
        apply_all(&mut config, ORIGINATION_DIR, file);
    }
    config
}

#[test]
fn egress_tls_origination_snapshots() {
    let mesh = MeshSettings::default();
    check_snapshot(
        "egress-tls-origination-2-originate-tls",
        &describe_translation(&translate_config(&origination(2), &mesh)),
    );
}

#[test]
fn target_port_changes_the_endpoint_port_only_and_simple_tls_goes_on_port_80() {
    let mesh = MeshSettings::default();
    let before = translate_config(&origination(1), &mesh);
    let after = translate_config(&origination(2), &mesh);
    let endpoints = |t: &Translation| {
        endpoint_addresses(
            find_cluster(&t.sidecar, CNN_80)
                .load_assignment
                .as_ref()
                .unwrap(),
        )
    };
    assert_eq!(endpoints(&before), ["edition.cnn.com:80"]);
    assert_eq!(endpoints(&after), ["edition.cnn.com:443"]);
    // Names keep the service port.
    assert_eq!(
        listener_names(&after.sidecar),
        listener_names(&before.sidecar)
    );
    assert_eq!(
        vhost_names(find_route_config(&after.sidecar, "80")),
        vhost_names(find_route_config(&before.sidecar, "80"))
    );
    let c = find_cluster(&after.sidecar, CNN_80);
    assert!(c.transport_socket.is_some(), "TLS originated on port 80");
    assert!(
        find_cluster(&after.sidecar, CNN_443)
            .transport_socket
            .is_none()
    );
}

// ---------------------------------------------------------------------------------------------
// egress-control.

const CONTROL_DIR: &str = "egress-control";

fn control(stage: usize) -> AppliedConfig {
    let mut config = AppliedConfig::default();
    let files = [
        "01-serviceentry-httpbin-ext.yaml",
        "02-serviceentry-google.yaml",
        "03-virtualservice-httpbin-ext-timeout.yaml",
    ];
    for file in files.iter().take(stage) {
        apply_all(&mut config, CONTROL_DIR, file);
    }
    config
}

#[test]
fn egress_control_snapshots() {
    let mesh = registry_only();
    for (n, name) in [
        (0, "egress-control-1-registry-only"),
        (1, "egress-control-2-http-service-entry"),
        (2, "egress-control-3-https-service-entry"),
        (3, "egress-control-5-timeout"),
    ] {
        check_snapshot(
            name,
            &describe_translation(&translate_config(&control(n), &mesh)),
        );
    }
}

#[test]
fn registry_only_blackholes_tls_that_no_sni_chain_claims() {
    let t = translate_config(&control(2), &registry_only());
    let l = find_listener(&t.sidecar, "0.0.0.0_443");
    let [chain] = l.filter_chains.as_slice() else {
        panic!("{:?}", l.filter_chains)
    };
    assert_eq!(
        chain.filter_chain_match.as_ref().unwrap().server_names,
        ["www.google.com"]
    );
    assert_eq!(
        tcp_proxy_cluster(l.default_filter_chain.as_ref().unwrap()),
        "BlackHoleCluster"
    );
    let vo = find_listener(&t.sidecar, "virtualOutbound");
    let catch_all = vo
        .filter_chains
        .iter()
        .find(|c| c.name == "virtualOutbound-catchall-tcp")
        .unwrap();
    assert_eq!(tcp_proxy_cluster(catch_all), "BlackHoleCluster");
    let rc = find_route_config(&t.sidecar, "80");
    assert_eq!(
        vhost_names(rc),
        [
            "httpbin.org:80",
            "istio-egressgateway.istio-system.svc.cluster.local:80",
            "sleep.default.svc.cluster.local:80",
            "block_all"
        ]
    );
}

#[test]
fn a_route_timeout_bounds_the_request() {
    let mesh = registry_only();
    let timeout = |config: &AppliedConfig| {
        let t = translate_config(config, &mesh);
        let rc = find_route_config(&t.sidecar, "80");
        let route = only_route(find_vhost(rc, "httpbin.org:80"));
        let Some(Action::Route(action)) = &route.action else {
            panic!("{route:?}")
        };
        #[allow(deprecated)] // istiod still sets it
        let grpc = action.max_grpc_timeout;
        (action.timeout, grpc, route_cluster(route).to_string())
    };
    let zero = Some(Duration {
        seconds: 0,
        nanos: 0,
    });
    let three = Some(Duration {
        seconds: 3,
        nanos: 0,
    });
    assert_eq!(
        timeout(&control(2)),
        (zero, zero, "outbound|80||httpbin.org".into())
    );
    assert_eq!(
        timeout(&control(3)),
        (three, three, "outbound|80||httpbin.org".into())
    );
    // A rule without matches: istiod leaves case sensitivity unset.
    let t = translate_config(&control(3), &mesh);
    let route = only_route(find_vhost(
        find_route_config(&t.sidecar, "80"),
        "httpbin.org:80",
    ));
    assert_eq!(route.r#match.as_ref().unwrap().case_sensitive, None);
}

#[test]
fn every_http_connection_manager_traces_as_istiod_does() {
    let t = translate_config(&control(1), &registry_only());
    let hcm = only_chain_hcm(find_listener(&t.sidecar, "0.0.0.0_80"));
    let tracing = hcm.tracing.expect("tracing");
    assert_eq!(tracing.random_sampling.map(|p| p.value), Some(1.0));
    assert_eq!(tracing.client_sampling.map(|p| p.value), Some(100.0));
    assert_eq!(tracing.overall_sampling.map(|p| p.value), Some(100.0));
}

// ---------------------------------------------------------------------------------------------
// external-tcp-service.

const TCP_DIR: &str = "external-tcp-service";

#[test]
fn external_tcp_service_snapshots() {
    let mesh = registry_only();
    let mut config = AppliedConfig::default();
    apply_all(&mut config, TCP_DIR, "01-serviceentry-mysql-external.yaml");
    check_snapshot(
        "external-tcp-service-1-tcp-service-entry",
        &describe_translation(&translate_config(&config, &mesh)),
    );
    let mut config = AppliedConfig::default();
    apply_all(&mut config, TCP_DIR, "03-serviceentry-mongo.yaml");
    check_snapshot(
        "external-tcp-service-3-static-endpoints",
        &describe_translation(&translate_config(&config, &mesh)),
    );
}

#[test]
fn a_tcp_entry_with_an_address_gets_a_listener_of_its_own() {
    let mut config = AppliedConfig::default();
    apply_all(&mut config, TCP_DIR, "01-serviceentry-mysql-external.yaml");
    let t = translate_config(&config, &registry_only());
    let l = find_listener(&t.sidecar, "192.0.2.10_3306");
    assert!(l.listener_filters.is_empty());
    assert!(l.default_filter_chain.is_none());
    let [chain] = l.filter_chains.as_slice() else {
        panic!("{:?}", l.filter_chains)
    };
    assert!(chain.filter_chain_match.is_none(), "matches everything");
    let cluster = "outbound|3306||mysqldb.example.com";
    assert_eq!(tcp_proxy_cluster(chain), cluster);
    // Resolution NONE: to the connection's own destination.
    let c = find_cluster(&t.sidecar, cluster);
    assert_eq!(discovery(c), DiscoveryType::OriginalDst);
    assert_eq!(
        LbPolicy::try_from(c.lb_policy),
        Ok(LbPolicy::ClusterProvided)
    );
    assert!(c.load_assignment.is_none() && c.lb_config.is_none());
}

#[test]
fn static_resolution_sends_the_endpoints_over_eds() {
    let mut config = AppliedConfig::default();
    apply_all(&mut config, TCP_DIR, "03-serviceentry-mongo.yaml");
    let t = translate_config(&config, &registry_only());
    let cluster = "outbound|27017||my-mongo.tcp.svc";
    let c = find_cluster(&t.sidecar, cluster);
    assert_eq!(discovery(c), DiscoveryType::Eds);
    assert_eq!(c.eds_cluster_config.as_ref().unwrap().service_name, cluster);
    let assignment = t
        .sidecar
        .endpoints
        .iter()
        .find(|a| a.cluster_name == cluster)
        .unwrap();
    assert_eq!(endpoint_addresses(assignment), ["192.0.2.20:27017"]);
    let [chain] = find_listener(&t.sidecar, "192.0.2.20_27017")
        .filter_chains
        .as_slice()
    else {
        panic!()
    };
    assert_eq!(tcp_proxy_cluster(chain), cluster);
}

#[test]
fn a_port_of_its_own_for_an_endpoint_and_a_target_port_without_resolution() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: db\nspec:\n  hosts: [db.example.com]\n  addresses: [192.0.2.30]\n  ports:\n  - {number: 5432, name: tcp, protocol: TCP, targetPort: 6432}\n  resolution: STATIC\n  endpoints:\n  - address: 192.0.2.31\n  - address: 192.0.2.32\n    ports: {tcp: 7432}\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: raw\nspec:\n  hosts: [raw.example.com]\n  addresses: [192.0.2.40]\n  ports:\n  - {number: 9000, name: tcp, protocol: TCP, targetPort: 9001}\n";
    let mut config = AppliedConfig::default();
    for object in crate::istio::parse::parse_manifests(Path::new("inline.yaml"), yaml).unwrap() {
        config.apply(object, NAMESPACE);
    }
    let t = translate_config(&config, &registry_only());
    let assignment = t
        .sidecar
        .endpoints
        .iter()
        .find(|a| a.cluster_name == "outbound|5432||db.example.com")
        .unwrap();
    assert_eq!(
        endpoint_addresses(assignment),
        ["192.0.2.31:6432", "192.0.2.32:7432"]
    );
    let raw = find_cluster(&t.sidecar, "outbound|9000||raw.example.com");
    match &raw.lb_config {
        Some(LbConfig::OriginalDstLbConfig(o)) => {
            assert_eq!(o.upstream_port_override, Some(UInt32Value { value: 9001 }))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_address_range_is_refused_by_name() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: net\nspec:\n  hosts: [net.example.com]\n  addresses: [192.0.2.10/32, 192.0.2.0/24]\n  ports:\n  - {number: 3306, name: tcp, protocol: TCP}\n";
    let mut config = AppliedConfig::default();
    for object in crate::istio::parse::parse_manifests(Path::new("inline.yaml"), yaml).unwrap() {
        config.apply(object, NAMESPACE);
    }
    let err = translate_err(&config);
    let TranslateError::Unsupported(unsupported) = &err else {
        panic!("{err}")
    };
    assert_eq!(unsupported.field, "spec.addresses[1]");
    assert!(
        unsupported.at.starts_with("inline.yaml:7:"),
        "{}",
        unsupported.at
    );
}

#[test]
fn tcp_cleanup_is_the_baseline() {
    let mesh = registry_only();
    let mut config = AppliedConfig::default();
    apply_all(&mut config, TCP_DIR, "01-serviceentry-mysql-external.yaml");
    for key in deletes(TCP_DIR, "02-delete-serviceentry-mysql-external.sh") {
        assert!(config.delete(&key).is_some(), "{key}");
    }
    apply_all(&mut config, TCP_DIR, "03-serviceentry-mongo.yaml");
    for key in deletes(TCP_DIR, "04-cleanup.sh") {
        assert!(config.delete(&key).is_some(), "{key}");
    }
    assert_eq!(
        describe_translation(&translate_config(&config, &mesh)),
        describe_translation(&translate_config(&AppliedConfig::default(), &mesh))
    );
}
