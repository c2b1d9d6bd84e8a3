use std::path::Path;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::FilterChain;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier,
};

use prost::Message;

use super::*;
use crate::mesh::{AppliedConfig, MeshSettings, OutboundTrafficPolicy};
use crate::translate::{ProxyWorkloads, Translation, translate};

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

/// Both proxies' localized config.
fn localize(
    t: &Translation,
    registry: &Registry,
    net: &Plan,
) -> Result<Translation, LocalizeError> {
    let pods = pod_ports(registry);
    Ok(Translation {
        sidecar: localize_proxy(&t.sidecar, ProxyRole::Sidecar, &pods, registry, net)?,
        gateway: localize_proxy(&t.gateway, ProxyRole::EgressGateway, &pods, registry, net)?,
    })
}

/// The origin of these tests: host-named sites on 80 and 443, and one address on 3306.
fn origin() -> BTreeMap<OriginPort, SocketAddr> {
    let key = |address: Option<&str>, port| OriginPort {
        address: address.map(|a| a.parse().unwrap()),
        port,
    };
    BTreeMap::from([
        (key(None, 80), "127.0.0.1:18080".parse().unwrap()),
        (key(None, 443), "127.0.0.1:18443".parse().unwrap()),
        (
            key(Some("192.0.2.10"), 3306),
            "127.0.0.1:13306".parse().unwrap(),
        ),
    ])
}

/// The ports both proxies need.
fn required_ports_of(
    t: &Translation,
    registry: &Registry,
    external_ports: &BTreeSet<u32>,
) -> BTreeSet<PortKey> {
    let plan = Plan {
        ports: BTreeMap::new(),
        origin: origin(),
        external_ports: external_ports.clone(),
    };
    let mut keys = required_ports(ProxyRole::Sidecar, &t.sidecar, registry, &plan);
    keys.extend(required_ports(
        ProxyRole::EgressGateway,
        &t.gateway,
        registry,
        &plan,
    ));
    keys
}

/// A network with a distinct port for every key the translation needs, numbered from 20000
/// in key order.
fn network(t: &Translation) -> Plan {
    let external_ports = BTreeSet::from([80, 443]);
    let ports = required_ports_of(t, &Registry::tutorial(), &external_ports)
        .into_iter()
        .zip(20000u16..)
        .collect();
    Plan {
        ports,
        origin: origin(),
        external_ports,
    }
}

fn port_of(net: &Plan, key: PortKey) -> u16 {
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
    let keys = required_ports_of(&t, &Registry::tutorial(), &BTreeSet::from([443]));
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
        // The subset is the sidecar's only: its rule is in `default`, the gateway's namespace
        // is `istio-system`.
        let subset = "outbound|443|cnn|istio-egressgateway.istio-system.svc.cluster.local";
        for name in [
            "outbound|443||istio-egressgateway.istio-system.svc.cluster.local",
            subset,
        ]
        .into_iter()
        .filter(|n| *n != subset || std::ptr::eq(resources, &local.sidecar))
        {
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
        required_ports_of(&baseline, &registry, &net.external_ports)
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

/// The translation of `yaml` (namespace `default`) under REGISTRY_ONLY.
fn translation_of(yaml: &str) -> Translation {
    let mut config = AppliedConfig::default();
    for object in crate::istio::parse::parse_manifests(Path::new("inline.yaml"), yaml).unwrap() {
        config.apply(object, "default");
    }
    translate(
        &config,
        &Registry::tutorial(),
        &MeshSettings {
            outbound_traffic_policy: OutboundTrafficPolicy::RegistryOnly,
        },
        &ProxyWorkloads::tutorial(),
    )
    .unwrap()
}

const SERIES: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: google}
spec:
  hosts: [www.google.com]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mysql}
spec:
  hosts: [mysqldb.example.com]
  addresses: [192.0.2.10/32]
  ports: [{number: 3306, name: tcp, protocol: TCP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mongo}
spec:
  hosts: [my-mongo.tcp.svc]
  addresses: [192.0.2.20/32]
  ports: [{number: 27017, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.20}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin}
spec:
  hosts: [httpbin.org]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 443}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin}
spec:
  hosts: [httpbin.org]
  http: [{timeout: 3s, route: [{destination: {host: httpbin.org}}]}]
";

#[test]
fn passthrough_and_address_listeners_get_their_original_destination() {
    let t = translation_of(SERIES);
    let net = network(&t);
    let local = localize(&t, &Registry::tutorial(), &net).unwrap();
    // TLS by SNI on 0.0.0.0_443: the default chain blackholes, but its chains are told where
    // the connection was going all the same.
    let tls = find(&local.sidecar.listeners, "0.0.0.0_443");
    assert_eq!(
        original_destination_of(&tls.filter_chains[0]),
        "127.0.0.1:18443"
    );
    assert_eq!(
        original_destination_of(tls.default_filter_chain.as_ref().unwrap()),
        "127.0.0.1:18443"
    );
    // An address the origin plays, and one it does not: that one is a port nobody listens on.
    let mysql = find(&local.sidecar.listeners, "192.0.2.10_3306");
    assert_eq!(
        original_destination_of(&mysql.filter_chains[0]),
        "127.0.0.1:13306"
    );
    let mongo = find(&local.sidecar.listeners, "192.0.2.20_27017");
    let nobody = port_of(&net, PortKey::Unplayed("192.0.2.20".into(), 27017));
    assert_eq!(
        original_destination_of(&mongo.filter_chains[0]),
        format!("127.0.0.1:{nobody}")
    );
}

#[test]
fn moved_endpoints_keep_istios_address_in_their_metadata() {
    let t = translation_of(SERIES);
    let net = network(&t);
    let local = localize(&t, &Registry::tutorial(), &net).unwrap();
    let istio_address = |a: &ClusterLoadAssignment| -> Vec<String> {
        a.endpoints
            .iter()
            .flat_map(|l| &l.lb_endpoints)
            .map(|e| {
                let fields =
                    &e.metadata.as_ref().unwrap().filter_metadata[METADATA_NAMESPACE].fields;
                match &fields[ISTIO_ADDRESS].kind {
                    Some(Kind::StringValue(s)) => s.clone(),
                    other => panic!("{other:?}"),
                }
            })
            .collect()
    };
    // targetPort 443 on port 80: the origin's TLS port plays it, and Istio's port is kept.
    let httpbin = cluster(&local.sidecar, "outbound|80||httpbin.org");
    let assignment = httpbin.load_assignment.as_ref().unwrap();
    assert_eq!(endpoints(assignment), ["127.0.0.1:18443"]);
    assert_eq!(istio_address(assignment), ["httpbin.org:443"]);
    let mongo = assignment_of(&local.sidecar, "outbound|27017||my-mongo.tcp.svc");
    assert_eq!(istio_address(mongo), ["192.0.2.20:27017"]);
    // The translator's own output is untouched.
    assert!(t.sidecar.endpoints.iter().all(|a| {
        a.endpoints
            .iter()
            .flat_map(|l| &l.lb_endpoints)
            .all(|e| e.metadata.is_none())
    }));
}

fn assignment_of<'a>(r: &'a ProxyResources, name: &str) -> &'a ClusterLoadAssignment {
    assignment(r, name)
}

#[test]
fn route_timeouts_run_at_the_local_time_scale() {
    let t = translation_of(SERIES);
    let net = network(&t);
    let local = localize(&t, &Registry::tutorial(), &net).unwrap();
    let timeout = |r: &ProxyResources| {
        let rc = r.routes.iter().find(|r| r.name == "80").unwrap();
        let vh = rc
            .virtual_hosts
            .iter()
            .find(|v| v.name == "httpbin.org:80")
            .unwrap();
        match &vh.routes[0].action {
            Some(Action::Route(a)) => a.timeout,
            other => panic!("{other:?}"),
        }
    };
    let scaled = timeout(&local.sidecar).unwrap();
    let nanos = scaled.seconds as u128 * 1_000_000_000 + scaled.nanos as u128;
    assert_eq!(nanos, 3_000_000_000 / TIME_SCALE as u128);
    assert_eq!(timeout(&t.sidecar).unwrap().seconds, 3);
    // No timeout stays no timeout.
    let rc = local
        .sidecar
        .routes
        .iter()
        .find(|r| r.name == "80")
        .unwrap();
    let sleep = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name == "sleep.default.svc.cluster.local:80")
        .unwrap();
    match &sleep.routes[0].action {
        Some(Action::Route(a)) => assert_eq!(a.timeout.map(|d| (d.seconds, d.nanos)), Some((0, 0))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn connect_to_an_address_picks_its_own_listener() {
    let registry = Registry::tutorial();
    let t = translation_of(SERIES);
    let net = network(&t);
    assert_eq!(
        connect_to("192.0.2.10", 3306, &t.sidecar.listeners, &registry, &net),
        Ok(port_of(&net, sidecar("192.0.2.10_3306")))
    );
    let none = translation(0);
    assert_eq!(
        connect_to("192.0.2.10", 3306, &none.sidecar.listeners, &registry, &net),
        Err(LocalizeError::NoRoute {
            host: "192.0.2.10".into(),
            port: 3306
        })
    );
}

/// The README lists every deviation the code makes, by the same titles and in the same order.
#[test]
fn the_readme_lists_the_deviations_the_code_makes() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## How the local backend differs from a real mesh")
        .nth(1)
        .expect("the README has the section")
        .split("\n## ")
        .next()
        .unwrap();
    let titles: Vec<&str> = section
        .lines()
        .filter_map(|line| {
            let (number, rest) = line.split_once(". **")?;
            number.parse::<usize>().ok()?;
            rest.split_once(".**").map(|(title, _)| title)
        })
        .collect();
    assert_eq!(titles, DEVIATIONS);
}
