use serde_json::json;

use super::*;

fn config() -> ProxyConfig {
    ProxyConfig::from_dump(&json!({"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners": [
            {"name": "0.0.0.0_8443", "active_state": {"listener": {"name": "0.0.0.0_8443", "filter_chains": [{"filters": [
                {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "rds": {"config_source": {"ads": {}}, "route_config_name": "http.8443"}}}
            ]}]}}}
        ]},
        {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs": [
            {"route_config": {"name": "http.8443", "virtual_hosts": [
                {"name": "edition.cnn.com:443", "domains": ["edition.cnn.com"], "routes": [
                    {"match": {"prefix": "/"}, "route": {"cluster": "outbound|443||edition.cnn.com"}}]},
                {"name": "blackhole:443", "domains": ["*"]}
            ]}}
        ]},
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters": [
            {"cluster": {"name": "outbound|443||edition.cnn.com", "type": "STRICT_DNS", "lb_policy": "LEAST_REQUEST",
                "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {"@type": "x.UpstreamTlsContext"}},
                "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "upstream_http_protocol_options": {"auto_sni": true}}}}},
            {"cluster": {"name": "outbound|80||edition.cnn.com", "type": "STRICT_DNS"}}
        ]}
    ]}))
}

fn judge(expect: ProxyExpectation) -> Outcome {
    judge_proxy(ProxyRole::EgressGateway, &expect, &config(), 1)
}

#[test]
fn listeners_are_compared_as_a_set_of_names() {
    assert!(judge(ProxyExpectation::Listeners(vec!["0.0.0.0_8443".into()])).passed);
    let failed = judge(ProxyExpectation::Listeners(vec![]));
    assert!(!failed.passed);
    assert_eq!(
        (failed.expected.as_str(), failed.actual.as_str()),
        ("[]", "[0.0.0.0_8443]")
    );
}

#[test]
fn a_listener_is_present_absent_and_fed_by_rds_over_ads() {
    let listener = |name: &str, present: bool, rds: Option<&str>| ProxyExpectation::Listener {
        name: name.into(),
        present,
        rds: rds.map(str::to_string),
        listener_filters: None,
        filter_chains: None,
        default_chain: None,
    };
    assert!(judge(listener("0.0.0.0_8443", true, Some("http.8443"))).passed);
    assert!(judge(listener("0.0.0.0_443", false, None)).passed);
    assert!(!judge(listener("0.0.0.0_443", true, None)).passed);
    assert!(!judge(listener("0.0.0.0_8443", false, None)).passed);
    let failed = judge(listener("0.0.0.0_8443", true, Some("http.443")));
    assert!(!failed.passed);
    assert_eq!(failed.actual, "RDS http.8443 from ADS");
}

#[test]
fn virtual_host_names_are_an_ordered_list() {
    let names = |n: &[&str]| ProxyExpectation::VirtualHostNames {
        route_config: "http.8443".into(),
        names: n.iter().map(|s| s.to_string()).collect(),
    };
    assert!(judge(names(&["edition.cnn.com:443", "blackhole:443"])).passed);
    assert!(!judge(names(&["blackhole:443", "edition.cnn.com:443"])).passed);
    let missing = judge(ProxyExpectation::VirtualHostNames {
        route_config: "http.80".into(),
        names: vec![],
    });
    assert!(!missing.passed);
    assert_eq!(missing.actual, "no such route config");
}

#[test]
fn a_virtual_host_has_its_domains_routes_and_target() {
    let vh =
        |name: &str, domains: Option<&[&str]>, routes: Option<usize>, cluster: Option<&str>| {
            ProxyExpectation::VirtualHost {
                route_config: "http.8443".into(),
                name: name.into(),
                domains: domains.map(|d| d.iter().map(|s| s.to_string()).collect()),
                routes,
                cluster: cluster.map(str::to_string),
                timeout: None,
                direct_response: None,
            }
        };
    assert!(judge(vh("blackhole:443", Some(&["*"]), Some(0), None)).passed);
    assert!(!judge(vh("blackhole:443", Some(&["*"]), Some(1), None)).passed);
    assert!(
        judge(vh(
            "edition.cnn.com:443",
            Some(&["edition.cnn.com"]),
            None,
            Some("outbound|443||edition.cnn.com")
        ))
        .passed
    );
    let failed = judge(vh(
        "edition.cnn.com:443",
        None,
        None,
        Some("outbound|80||edition.cnn.com"),
    ));
    assert!(!failed.passed);
    assert_eq!(failed.actual, "routes to [outbound|443||edition.cnn.com]");
    // A virtual host with no routes sends nowhere: "every route to X" cannot hold.
    assert!(
        !judge(vh(
            "blackhole:443",
            None,
            None,
            Some("outbound|443||edition.cnn.com")
        ))
        .passed
    );
    assert!(!judge(vh("nope:443", None, None, None)).passed);
}

#[test]
fn a_cluster_has_its_type_balancer_and_tls() {
    let cluster = |name: &str,
                   present: bool,
                   discovery: Option<&str>,
                   lb: Option<&str>,
                   tls: Option<TlsExpectation>| {
        ProxyExpectation::Cluster {
            name: name.into(),
            present,
            discovery: discovery.map(str::to_string),
            lb_policy: lb.map(str::to_string),
            tls,
            endpoints: None,
        }
    };
    let auto = || Some(TlsExpectation::Originated { sni: "auto".into() });
    assert!(
        judge(cluster(
            "outbound|443||edition.cnn.com",
            true,
            Some("STRICT_DNS"),
            Some("LEAST_REQUEST"),
            auto()
        ))
        .passed
    );
    assert!(
        !judge(cluster(
            "outbound|443||edition.cnn.com",
            true,
            Some("EDS"),
            None,
            None
        ))
        .passed
    );
    assert!(
        !judge(cluster(
            "outbound|443||edition.cnn.com",
            true,
            None,
            None,
            Some(TlsExpectation::None)
        ))
        .passed
    );
    // Envoy leaves ROUND_ROBIN, the enum's zero, out of its JSON.
    assert!(
        judge(cluster(
            "outbound|80||edition.cnn.com",
            true,
            None,
            Some("ROUND_ROBIN"),
            Some(TlsExpectation::None)
        ))
        .passed
    );
    let failed = judge(cluster(
        "outbound|80||edition.cnn.com",
        true,
        None,
        None,
        auto(),
    ));
    assert!(!failed.passed);
    assert_eq!(failed.actual, "present, plain text upstream");
    assert!(judge(cluster("outbound|8080||x", false, None, None, None)).passed);
    assert!(
        !judge(cluster(
            "outbound|80||edition.cnn.com",
            false,
            None,
            None,
            None
        ))
        .passed
    );
}
