//! Unit tests of the translator: snapshots of every tutorial stage, rendered readably, and focused
//! assertions on the shapes istiod would send.
//!
//! Snapshots live in `src/translate/snapshots/`. After a deliberate change to the translator,
//! regenerate them with `UPDATE_SNAPSHOTS=1 cargo test --lib translate`, then review the diff line
//! by line against istiod's behaviour: a snapshot only proves something once a reader has checked
//! it against istiod.

use std::fmt::{Debug, Write as _};
use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, DnsLookupFamily, LbConfig, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::{
    Address, ConfigSource, DataSource, TransportSocket, address,
    config_source::ConfigSourceSpecifier, data_source::Specifier, socket_address::PortSpecifier,
    substitution_format_string::Format, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, lb_endpoint::HostIdentifier,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, Listener, filter, listener_filter,
};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteConfiguration, VirtualHost, retry_policy::retry_host_predicate, route::Action,
    route_action::ClusterSpecifier, route_match::PathSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::common::set_filter_state::v3::filter_state_value;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::set_filter_state::v3::Config as SetFilterState;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier as TcpCluster,
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    UpstreamTlsContext, common_tls_context::ValidationContextType, tls_parameters::TlsProtocol,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{UpstreamProtocolOptions, explicit_http_config::ProtocolConfig},
};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration, UInt32Value};
use prost::{Message, Name};

use super::*;
use crate::istio::{Kind, Resolution, Spec};
use crate::mesh::OutboundTrafficPolicy;

// ---------------------------------------------------------------------------------------------
// Building the applied state of each stage from the tutorial's fixture files.

const NAMESPACE: &str = "default";
const FIXTURES: &str = "fixtures/egress-gateway-tls-origination";
const STAGE_FILES: [&str; 4] = [
    "01-serviceentry-cnn.yaml",
    "02-gateway-istio-egressgateway.yaml",
    "03-destinationrule-virtualservice-through-egress-gateway.yaml",
    "04-destinationrule-originate-tls.yaml",
];
const STAGE_NAMES: [&str; 5] = [
    "0-baseline",
    "1-service-entry",
    "2-gateway",
    "3-route-through-gateway",
    "4-originate-tls",
];

const GATEWAY_HOST: &str = "istio-egressgateway.istio-system.svc.cluster.local";
const SUBSET_CLUSTER: &str = "outbound|443|cnn|istio-egressgateway.istio-system.svc.cluster.local";
const CNN_443: &str = "outbound|443||edition.cnn.com";
const CNN_80: &str = "outbound|80||edition.cnn.com";

fn fixture_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(FIXTURES)
        .join(file)
}

fn fixture(file: &str) -> Vec<IstioObject> {
    crate::istio::load_manifests(&fixture_path(file))
        .unwrap_or_else(|e| panic!("fixture {file}: {e}"))
}

/// The keys `05-cleanup.sh` deletes, in its order (`kubectl delete <kind> <name>`).
fn cleanup_keys() -> Vec<ObjectKey> {
    let script = std::fs::read_to_string(fixture_path("05-cleanup.sh")).unwrap();
    let keys: Vec<ObjectKey> = script
        .lines()
        .filter_map(|line| line.strip_prefix("kubectl delete "))
        .map(|rest| {
            let (kind, name) = rest.trim().split_once(' ').unwrap();
            ObjectKey {
                kind: Kind::from_cli_name(kind).unwrap_or_else(|| panic!("kind {kind}")),
                namespace: NAMESPACE.into(),
                name: name.into(),
            }
        })
        .collect();
    assert_eq!(keys.len(), 5, "{script}");
    keys
}

/// The applied config after `stage` steps of the tutorial; stage 5 is after the cleanup.
fn applied(stage: usize) -> AppliedConfig {
    let mut config = AppliedConfig::default();
    for file in STAGE_FILES.iter().take(stage.min(4)) {
        for object in fixture(file) {
            config.apply(object, NAMESPACE);
        }
    }
    if stage == 5 {
        for key in cleanup_keys() {
            assert!(
                config.delete(&key).is_some(),
                "cleanup deletes {key}, which is not applied"
            );
        }
    }
    config
}

fn translate_config(config: &AppliedConfig, mesh: &MeshSettings) -> Translation {
    translate(
        config,
        &Registry::tutorial(),
        mesh,
        &ProxyWorkloads::tutorial(),
    )
    .unwrap()
}

fn stage(n: usize) -> Translation {
    translate_config(&applied(n), &MeshSettings::default())
}

/// Stage `n` plus extra objects parsed from `yaml` (namespace `default` unless they say).
fn with_objects(n: usize, yaml: &str) -> AppliedConfig {
    let mut config = applied(n);
    for object in crate::istio::parse::parse_manifests(Path::new("inline.yaml"), yaml).unwrap() {
        config.apply(object, NAMESPACE);
    }
    config
}

// ---------------------------------------------------------------------------------------------
// A readable rendering of a proxy's resources. Every renderer takes its message apart field by
// field; whatever is left afterwards is printed as `UNRENDERED`, so a field the translator starts
// setting cannot slip past the snapshots unseen.

struct Doc(String);

impl Doc {
    fn line(&mut self, depth: usize, text: impl std::fmt::Display) {
        writeln!(self.0, "{}{text}", "  ".repeat(depth)).unwrap();
    }

    fn rest<M: Debug + Default + PartialEq>(&mut self, depth: usize, rest: M) {
        if rest != M::default() {
            self.line(depth, format!("UNRENDERED {rest:?}"));
        }
    }
}

fn dur(d: Option<Duration>) -> String {
    match d {
        None => "unset".into(),
        Some(Duration { seconds, nanos: 0 }) => format!("{seconds}s"),
        Some(Duration { seconds, nanos }) => format!("{seconds}s+{nanos}ns"),
    }
}

fn bv(b: Option<BoolValue>) -> String {
    b.map_or("unset".into(), |b| b.value.to_string())
}

fn u32v(v: Option<UInt32Value>) -> String {
    v.map_or("unset".into(), |v| v.value.to_string())
}

fn addr(a: Option<Address>) -> String {
    match a.and_then(|a| a.address) {
        Some(address::Address::SocketAddress(mut s)) => {
            let port = match s.port_specifier.take() {
                Some(PortSpecifier::PortValue(p)) => p.to_string(),
                other => format!("{other:?}"),
            };
            let ip = std::mem::take(&mut s.address);
            let protocol = std::mem::take(&mut s.protocol);
            let mut text = format!("{ip}:{port}");
            if protocol != 0 {
                text.push_str(&format!(" protocol {protocol}"));
            }
            if s != Default::default() {
                text.push_str(&format!(" UNRENDERED {s:?}"));
            }
            text
        }
        other => format!("{other:?}"),
    }
}

fn decode<M: Message + Name + Default>(any: &Any) -> M {
    assert_eq!(any.type_url, M::type_url(), "unexpected payload type");
    M::decode(any.value.as_slice()).unwrap_or_else(|e| panic!("{}: {e}", any.type_url))
}

fn config_source(c: Option<ConfigSource>) -> String {
    let Some(mut c) = c else {
        return "unset".into();
    };
    let spec = match c.config_source_specifier.take() {
        Some(ConfigSourceSpecifier::Ads(_)) => "ads".to_string(),
        Some(ConfigSourceSpecifier::ApiConfigSource(api)) => {
            let clusters: Vec<String> = api
                .grpc_services
                .iter()
                .map(|g| match &g.target_specifier {
                    Some(
                        envoy_types::pb::envoy::config::core::v3::grpc_service::TargetSpecifier::EnvoyGrpc(e),
                    ) => e.cluster_name.clone(),
                    other => format!("{other:?}"),
                })
                .collect();
            format!(
                "api {:?} transport {:?} to {clusters:?}",
                api.api_type, api.transport_api_version
            )
        }
        other => format!("{other:?}"),
    };
    let version = envoy_types::pb::envoy::config::core::v3::ApiVersion::try_from(std::mem::take(
        &mut c.resource_api_version,
    ))
    .map_or("invalid", |v| v.as_str_name());
    let mut text = format!(
        "{spec} api_version {version} initial_fetch_timeout {}",
        dur(c.initial_fetch_timeout.take())
    );
    if c != Default::default() {
        text.push_str(&format!(" UNRENDERED {c:?}"));
    }
    text
}

fn data_source(d: Option<DataSource>) -> String {
    match d {
        None => "unset".into(),
        Some(DataSource {
            specifier: Some(Specifier::Filename(f)),
            watched_directory: None,
        }) => {
            format!("file {f}")
        }
        Some(DataSource {
            specifier: Some(Specifier::InlineString(s)),
            watched_directory: None,
        }) => {
            format!("inline {s:?}")
        }
        Some(other) => format!("{other:?}"),
    }
}

/// The rendering of one proxy's resources: listeners, route configs, clusters and endpoints, in
/// the order the translator emits them (which is itself part of the shape: virtual host and
/// filter chain order matter to Envoy).
fn describe(resources: &ProxyResources) -> String {
    let mut doc = Doc(String::new());
    let r = resources.clone();
    doc.line(0, "listeners:");
    for l in r.listeners {
        listener(&mut doc, 1, l);
    }
    doc.line(0, "route_configs:");
    for rc in r.routes {
        route_config(&mut doc, 1, rc);
    }
    doc.line(0, "clusters:");
    for c in r.clusters {
        cluster(&mut doc, 1, c);
    }
    doc.line(0, "endpoints:");
    for e in r.endpoints {
        load_assignment(&mut doc, 1, e);
    }
    doc.0
}

fn describe_translation(t: &Translation) -> String {
    format!(
        "# sidecar\n{}\n# egress-gateway\n{}",
        describe(&t.sidecar),
        describe(&t.gateway)
    )
}

fn listener(doc: &mut Doc, d: usize, mut l: Listener) {
    doc.line(d, format!("listener {}", std::mem::take(&mut l.name)));
    doc.line(d + 1, format!("address {}", addr(l.address.take())));
    for a in std::mem::take(&mut l.additional_addresses) {
        doc.line(
            d + 1,
            format!("additional_address {}", addr(a.address.clone())),
        );
        doc.rest(
            d + 2,
            envoy_types::pb::envoy::config::listener::v3::AdditionalAddress { address: None, ..a },
        );
    }
    if let Some(b) = l.bind_to_port.take() {
        doc.line(d + 1, format!("bind_to_port {}", b.value));
    }
    if let Some(b) = l.enable_reuse_port.take() {
        doc.line(d + 1, format!("enable_reuse_port {}", b.value));
    }
    if let Some(b) = l.use_original_dst.take() {
        doc.line(d + 1, format!("use_original_dst {}", b.value));
    }
    let direction = std::mem::take(&mut l.traffic_direction);
    doc.line(
        d + 1,
        format!(
            "traffic_direction {}",
            envoy_types::pb::envoy::config::core::v3::TrafficDirection::try_from(direction)
                .map_or("invalid", |t| t.as_str_name())
        ),
    );
    if std::mem::take(&mut l.continue_on_listener_filters_timeout) {
        doc.line(d + 1, "continue_on_listener_filters_timeout true");
    }
    if let Some(t) = l.listener_filters_timeout.take() {
        doc.line(d + 1, format!("listener_filters_timeout {}", dur(Some(t))));
    }
    for mut f in std::mem::take(&mut l.listener_filters) {
        doc.line(
            d + 1,
            format!("listener_filter {}", std::mem::take(&mut f.name)),
        );
        match f.config_type.take() {
            Some(listener_filter::ConfigType::TypedConfig(any))
                if any.type_url == TlsInspector::type_url() =>
            {
                let mut t: TlsInspector = decode(&any);
                doc.line(
                    d + 2,
                    format!(
                        "initial_read_buffer_size {}",
                        u32v(t.initial_read_buffer_size.take())
                    ),
                );
                doc.rest(d + 2, t);
            }
            other => doc.line(d + 2, format!("config {other:?}")),
        }
        doc.rest(d + 2, f);
    }
    for chain in std::mem::take(&mut l.filter_chains) {
        filter_chain(doc, d + 1, chain);
    }
    if let Some(chain) = l.default_filter_chain.take() {
        doc.line(d + 1, "default_filter_chain");
        filter_chain(doc, d + 2, chain);
    }
    doc.rest(d + 1, l);
}

fn filter_chain(doc: &mut Doc, d: usize, mut c: FilterChain) {
    doc.line(d, format!("chain {:?}", std::mem::take(&mut c.name)));
    if let Some(mut m) = c.filter_chain_match.take() {
        let mut text = Vec::new();
        if let Some(port) = m.destination_port.take() {
            text.push(format!("destination_port {}", port.value));
        }
        let names = std::mem::take(&mut m.server_names);
        if !names.is_empty() {
            text.push(format!("server_names {names:?}"));
        }
        let transport = std::mem::take(&mut m.transport_protocol);
        if !transport.is_empty() {
            text.push(format!("transport_protocol {transport}"));
        }
        let protocols = std::mem::take(&mut m.application_protocols);
        if !protocols.is_empty() {
            text.push(format!("application_protocols {protocols:?}"));
        }
        if text.is_empty() {
            text.push("anything".into());
        }
        doc.line(d + 1, format!("match {}", text.join(" ")));
        doc.rest(d + 2, m);
    }
    if let Some(t) = c.transport_socket_connect_timeout.take() {
        doc.line(
            d + 1,
            format!("transport_socket_connect_timeout {}", dur(Some(t))),
        );
    }
    for f in std::mem::take(&mut c.filters) {
        network_filter(doc, d + 1, f);
    }
    doc.rest(d + 1, c);
}

fn network_filter(doc: &mut Doc, d: usize, f: Filter) {
    doc.line(d, format!("filter {}", f.name));
    let Some(filter::ConfigType::TypedConfig(any)) = f.config_type else {
        doc.line(d + 1, format!("UNRENDERED config {:?}", f.config_type));
        return;
    };
    if any.type_url == HttpConnectionManager::type_url() {
        hcm(doc, d + 1, decode(&any));
    } else if any.type_url == TcpProxy::type_url() {
        let mut p: TcpProxy = decode(&any);
        doc.line(
            d + 1,
            format!("stat_prefix {}", std::mem::take(&mut p.stat_prefix)),
        );
        match p.cluster_specifier.take() {
            Some(TcpCluster::Cluster(c)) => doc.line(d + 1, format!("cluster {c}")),
            other => doc.line(d + 1, format!("cluster_specifier {other:?}")),
        }
        doc.rest(d + 1, p);
    } else if any.type_url == SetFilterState::type_url() {
        let mut s: SetFilterState = decode(&any);
        for mut v in std::mem::take(&mut s.on_new_connection) {
            let key = match v.key.take() {
                Some(filter_state_value::Key::ObjectKey(k)) => k,
                other => format!("{other:?}"),
            };
            let value = match v.value.take() {
                Some(filter_state_value::Value::FormatString(mut f)) => match f.format.take() {
                    Some(Format::TextFormatSource(src)) if f == Default::default() => {
                        data_source(Some(src))
                    }
                    other => format!("{other:?} {f:?}"),
                },
                other => format!("{other:?}"),
            };
            doc.line(d + 1, format!("on_new_connection {key} = {value}"));
            doc.rest(d + 2, v);
        }
        doc.rest(d + 1, s);
    } else {
        doc.line(d + 1, format!("UNRENDERED payload {}", any.type_url));
    }
}

fn hcm(doc: &mut Doc, d: usize, mut h: HttpConnectionManager) {
    doc.line(
        d,
        format!("stat_prefix {}", std::mem::take(&mut h.stat_prefix)),
    );
    match h.route_specifier.take() {
        Some(RouteSpecifier::Rds(rds)) => {
            doc.line(d, format!("rds {:?}", rds.route_config_name));
            doc.line(
                d + 1,
                format!("config_source {}", config_source(rds.config_source)),
            );
        }
        other => doc.line(d, format!("route_specifier {other:?}")),
    }
    for mut f in std::mem::take(&mut h.http_filters) {
        doc.line(d, format!("http_filter {}", std::mem::take(&mut f.name)));
        match f.config_type.take() {
            Some(http_filter::ConfigType::TypedConfig(any))
                if any.type_url == Router::type_url() =>
            {
                doc.rest(d + 1, decode::<Router>(&any));
            }
            other => doc.line(d + 1, format!("config {other:?}")),
        }
        doc.rest(d + 1, f);
    }
    doc.line(
        d,
        format!("use_remote_address {}", bv(h.use_remote_address.take())),
    );
    doc.line(d, format!("normalize_path {}", bv(h.normalize_path.take())));
    for mut u in std::mem::take(&mut h.upgrade_configs) {
        doc.line(
            d,
            format!("upgrade {}", std::mem::take(&mut u.upgrade_type)),
        );
        doc.rest(d + 1, u);
    }
    doc.line(
        d,
        format!("stream_idle_timeout {}", dur(h.stream_idle_timeout.take())),
    );
    doc.line(
        d,
        format!("server_name {:?}", std::mem::take(&mut h.server_name)),
    );
    if let Some(mut t) = h.tracing.take() {
        let pct = |p: Option<envoy_types::pb::envoy::r#type::v3::Percent>| {
            p.map_or("unset".into(), |p| format!("{}%", p.value))
        };
        doc.line(
            d,
            format!(
                "tracing client_sampling {} random_sampling {} overall_sampling {}",
                pct(t.client_sampling.take()),
                pct(t.random_sampling.take()),
                pct(t.overall_sampling.take())
            ),
        );
        doc.rest(d + 1, t);
    }
    doc.rest(d, h);
}

fn route_config(doc: &mut Doc, d: usize, mut rc: RouteConfiguration) {
    doc.line(
        d,
        format!("route_config {:?}", std::mem::take(&mut rc.name)),
    );
    doc.line(
        d + 1,
        format!("validate_clusters {}", bv(rc.validate_clusters.take())),
    );
    doc.line(
        d + 1,
        format!(
            "max_direct_response_body_size_bytes {}",
            u32v(rc.max_direct_response_body_size_bytes.take())
        ),
    );
    doc.line(
        d + 1,
        format!(
            "ignore_port_in_host_matching {}",
            std::mem::take(&mut rc.ignore_port_in_host_matching)
        ),
    );
    for vh in std::mem::take(&mut rc.virtual_hosts) {
        virtual_host(doc, d + 1, vh);
    }
    doc.rest(d + 1, rc);
}

fn virtual_host(doc: &mut Doc, d: usize, mut vh: VirtualHost) {
    doc.line(
        d,
        format!("virtual_host {:?}", std::mem::take(&mut vh.name)),
    );
    doc.line(
        d + 1,
        format!("domains {:?}", std::mem::take(&mut vh.domains)),
    );
    doc.line(
        d + 1,
        format!(
            "include_request_attempt_count {}",
            std::mem::take(&mut vh.include_request_attempt_count)
        ),
    );
    let routes = std::mem::take(&mut vh.routes);
    if routes.is_empty() {
        doc.line(d + 1, "no routes");
    }
    for r in routes {
        route(doc, d + 1, r);
    }
    doc.rest(d + 1, vh);
}

#[allow(deprecated)] // max_grpc_timeout: istiod still sets it
fn route(doc: &mut Doc, d: usize, mut r: Route) {
    doc.line(d, format!("route {:?}", std::mem::take(&mut r.name)));
    if let Some(mut m) = r.r#match.take() {
        let path = match m.path_specifier.take() {
            Some(PathSpecifier::Prefix(p)) => format!("prefix {p:?}"),
            other => format!("{other:?}"),
        };
        doc.line(
            d + 1,
            format!(
                "match {path} case_sensitive {}",
                bv(m.case_sensitive.take())
            ),
        );
        doc.rest(d + 2, m);
    }
    match r.action.take() {
        Some(Action::Route(mut a)) => {
            match a.cluster_specifier.take() {
                Some(ClusterSpecifier::Cluster(c)) => doc.line(d + 1, format!("cluster {c}")),
                Some(ClusterSpecifier::WeightedClusters(mut w)) => {
                    doc.line(d + 1, "weighted_clusters");
                    for mut c in std::mem::take(&mut w.clusters) {
                        let name = std::mem::take(&mut c.name);
                        doc.line(d + 2, format!("{name} weight {}", u32v(c.weight.take())));
                        doc.rest(d + 3, c);
                    }
                    doc.rest(d + 2, w);
                }
                other => doc.line(d + 1, format!("cluster_specifier {other:?}")),
            }
            doc.line(d + 1, format!("timeout {}", dur(a.timeout.take())));
            doc.line(
                d + 1,
                format!("max_grpc_timeout {}", dur(a.max_grpc_timeout.take())),
            );
            match a.retry_policy.take() {
                None => doc.line(d + 1, "retry_policy unset"),
                Some(mut p) => {
                    doc.line(d + 1, "retry_policy");
                    doc.line(
                        d + 2,
                        format!("retry_on {}", std::mem::take(&mut p.retry_on)),
                    );
                    doc.line(d + 2, format!("num_retries {}", u32v(p.num_retries.take())));
                    for mut h in std::mem::take(&mut p.retry_host_predicate) {
                        doc.line(d + 2, format!("retry_host_predicate {}", h.name));
                        match h.config_type.take() {
                            Some(retry_host_predicate::ConfigType::TypedConfig(any)) => {
                                doc.rest(d + 3, decode::<PreviousHostsPredicate>(&any))
                            }
                            None => doc.line(d + 3, "no config"),
                        }
                    }
                    doc.line(
                        d + 2,
                        format!(
                            "host_selection_retry_max_attempts {}",
                            std::mem::take(&mut p.host_selection_retry_max_attempts)
                        ),
                    );
                    doc.rest(d + 2, p);
                }
            }
            doc.rest(d + 1, a);
        }
        Some(Action::DirectResponse(mut a)) => {
            doc.line(
                d + 1,
                format!("direct_response {}", std::mem::take(&mut a.status)),
            );
            doc.rest(d + 2, a);
        }
        other => doc.line(d + 1, format!("action {other:?}")),
    }
    if let Some(mut dec) = r.decorator.take() {
        doc.line(
            d + 1,
            format!("decorator {}", std::mem::take(&mut dec.operation)),
        );
        doc.rest(d + 2, dec);
    }
    doc.rest(d + 1, r);
}

fn cluster(doc: &mut Doc, d: usize, mut c: Cluster) {
    doc.line(d, format!("cluster {}", std::mem::take(&mut c.name)));
    let kind = match c.cluster_discovery_type.take() {
        Some(ClusterDiscoveryType::Type(t)) => {
            DiscoveryType::try_from(t).map_or("invalid".into(), |t| t.as_str_name().to_string())
        }
        other => format!("{other:?}"),
    };
    doc.line(d + 1, format!("type {kind}"));
    doc.line(
        d + 1,
        format!("connect_timeout {}", dur(c.connect_timeout.take())),
    );
    let lb = std::mem::take(&mut c.lb_policy);
    doc.line(
        d + 1,
        format!(
            "lb_policy {}",
            LbPolicy::try_from(lb).map_or("invalid", |l| l.as_str_name())
        ),
    );
    let family = std::mem::take(&mut c.dns_lookup_family);
    if family != 0 {
        let name = DnsLookupFamily::try_from(family).map_or("invalid", |f| f.as_str_name());
        doc.line(d + 1, format!("dns_lookup_family {name}"));
    }
    if let Some(a) = c.load_assignment.take() {
        doc.line(d + 1, "load_assignment");
        load_assignment(doc, d + 2, a);
    }
    if let Some(mut e) = c.eds_cluster_config.take() {
        doc.line(
            d + 1,
            format!("eds service_name {}", std::mem::take(&mut e.service_name)),
        );
        doc.line(
            d + 2,
            format!("eds_config {}", config_source(e.eds_config.take())),
        );
        doc.rest(d + 2, e);
    }
    if let Some(mut cb) = c.circuit_breakers.take() {
        for mut t in std::mem::take(&mut cb.thresholds) {
            doc.line(
                d + 1,
                format!(
                    "circuit_breaker connections {} pending {} requests {} retries {} track_remaining {}",
                    u32v(t.max_connections.take()),
                    u32v(t.max_pending_requests.take()),
                    u32v(t.max_requests.take()),
                    u32v(t.max_retries.take()),
                    std::mem::take(&mut t.track_remaining)
                ),
            );
            doc.rest(d + 2, t);
        }
        doc.rest(d + 2, cb);
    }
    if let Some(mut common) = c.common_lb_config.take() {
        doc.line(
            d + 1,
            format!(
                "common_lb_config healthy_panic_threshold {}",
                common
                    .healthy_panic_threshold
                    .take()
                    .map_or("unset".into(), |p| format!("{}%", p.value))
            ),
        );
        doc.rest(d + 2, common);
    }
    match c.lb_config.take() {
        None => {}
        Some(LbConfig::OriginalDstLbConfig(mut o)) => {
            doc.line(
                d + 1,
                format!(
                    "original_dst upstream_port_override {}",
                    u32v(o.upstream_port_override.take())
                ),
            );
            doc.rest(d + 2, o);
        }
        other => doc.line(d + 1, format!("lb_config {other:?}")),
    }
    if let Some(ts) = c.transport_socket.take() {
        transport(doc, d + 1, ts);
    }
    let mut options: Vec<(String, Any)> = std::mem::take(&mut c.typed_extension_protocol_options)
        .into_iter()
        .collect();
    options.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, any) in options {
        doc.line(d + 1, format!("protocol_options {key}"));
        http_options(doc, d + 2, decode(&any));
    }
    doc.rest(d + 1, c);
}

fn transport(doc: &mut Doc, d: usize, mut ts: TransportSocket) {
    doc.line(
        d,
        format!("transport_socket {}", std::mem::take(&mut ts.name)),
    );
    match ts.config_type.take() {
        Some(transport_socket::ConfigType::TypedConfig(any)) => {
            let mut tls: UpstreamTlsContext = decode(&any);
            doc.line(d + 1, format!("sni {:?}", std::mem::take(&mut tls.sni)));
            if let Some(mut common) = tls.common_tls_context.take() {
                if let Some(mut p) = common.tls_params.take() {
                    let v =
                        |v: i32| TlsProtocol::try_from(v).map_or("invalid", |v| v.as_str_name());
                    doc.line(
                        d + 1,
                        format!(
                            "tls_params {}..{}",
                            v(std::mem::take(&mut p.tls_minimum_protocol_version)),
                            v(std::mem::take(&mut p.tls_maximum_protocol_version))
                        ),
                    );
                    doc.rest(d + 2, p);
                }
                match common.validation_context_type.take() {
                    Some(ValidationContextType::ValidationContext(mut v)) => {
                        doc.line(
                            d + 1,
                            format!("trusted_ca {}", data_source(v.trusted_ca.take())),
                        );
                        doc.rest(d + 2, v);
                    }
                    Some(ValidationContextType::CombinedValidationContext(mut v)) => {
                        let sds = v.validation_context_sds_secret_config.take();
                        doc.line(
                            d + 1,
                            format!(
                                "validation over SDS {}",
                                sds.as_ref().map_or("(none)", |s| s.name.as_str())
                            ),
                        );
                        if let Some(mut sds) = sds {
                            if let Some(source) = sds.sds_config.take() {
                                doc.line(
                                    d + 2,
                                    format!("sds_config {}", config_source(Some(source))),
                                );
                            }
                            sds.name.clear();
                            doc.rest(d + 2, sds);
                        }
                        if v.default_validation_context
                            .take()
                            .is_some_and(|c| c != Default::default())
                        {
                            doc.line(d + 2, "default_validation_context not empty");
                        }
                        doc.rest(d + 2, v);
                    }
                    None => doc.line(d + 1, "no validation"),
                    other => doc.line(d + 1, format!("validation {other:?}")),
                }
                doc.rest(d + 1, common);
            }
            doc.rest(d + 1, tls);
        }
        other => doc.line(d + 1, format!("config {other:?}")),
    }
    doc.rest(d + 1, ts);
}

fn http_options(doc: &mut Doc, d: usize, mut o: HttpProtocolOptions) {
    if let Some(mut u) = o.upstream_http_protocol_options.take() {
        doc.line(
            d,
            format!(
                "auto_sni {} auto_san_validation {}",
                std::mem::take(&mut u.auto_sni),
                std::mem::take(&mut u.auto_san_validation)
            ),
        );
        doc.rest(d + 1, u);
    }
    if let Some(mut common) = o.common_http_protocol_options.take() {
        doc.line(
            d,
            format!("idle_timeout {}", dur(common.idle_timeout.take())),
        );
        doc.rest(d + 1, common);
    }
    match o.upstream_protocol_options.take() {
        None => {}
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(e)) => match e.protocol_config {
            Some(ProtocolConfig::HttpProtocolOptions(h1)) => {
                doc.line(d, "explicit http1");
                doc.rest(d + 1, h1);
            }
            Some(ProtocolConfig::Http2ProtocolOptions(h2)) => {
                doc.line(d, "explicit http2");
                doc.rest(d + 1, h2);
            }
            other => doc.line(d, format!("explicit {other:?}")),
        },
        Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(mut u)) => {
            doc.line(d, "use_downstream_protocol");
            if let Some(h1) = u.http_protocol_options.take() {
                doc.line(d + 1, "http1");
                doc.rest(d + 2, h1);
            }
            if let Some(h2) = u.http2_protocol_options.take() {
                doc.line(d + 1, "http2");
                doc.rest(d + 2, h2);
            }
            doc.rest(d + 1, u);
        }
        other => doc.line(d, format!("upstream_protocol_options {other:?}")),
    }
    doc.rest(d, o);
}

fn load_assignment(doc: &mut Doc, d: usize, mut a: ClusterLoadAssignment) {
    doc.line(
        d,
        format!("assignment {}", std::mem::take(&mut a.cluster_name)),
    );
    for mut locality in std::mem::take(&mut a.endpoints) {
        doc.line(
            d + 1,
            format!(
                "locality weight {}",
                u32v(locality.load_balancing_weight.take())
            ),
        );
        for mut e in std::mem::take(&mut locality.lb_endpoints) {
            let target = match e.host_identifier.take() {
                Some(HostIdentifier::Endpoint(mut ep)) => {
                    let text = addr(ep.address.take());
                    if ep != Default::default() {
                        format!("{text} UNRENDERED {ep:?}")
                    } else {
                        text
                    }
                }
                other => format!("{other:?}"),
            };
            doc.line(
                d + 2,
                format!(
                    "endpoint {target} weight {}",
                    u32v(e.load_balancing_weight.take())
                ),
            );
            doc.rest(d + 3, e);
        }
        doc.rest(d + 2, locality);
    }
    doc.rest(d + 1, a);
}

// ---------------------------------------------------------------------------------------------
// Snapshots.

/// Golden files of the translation, reviewed like code: `cargo insta review` after a change.
fn check_snapshot(name: &str, actual: &str) {
    insta::with_settings!({prepend_module_to_snapshot => false, omit_expression => true}, {
        insta::assert_snapshot!(name, actual);
    });
}

fn check_stage_snapshot(n: usize) {
    check_snapshot(STAGE_NAMES[n], &describe_translation(&stage(n)));
}

#[test]
fn snapshot_stage_0_baseline() {
    check_stage_snapshot(0);
}

#[test]
fn snapshot_stage_1_service_entry() {
    check_stage_snapshot(1);
}

#[test]
fn snapshot_stage_2_gateway() {
    check_stage_snapshot(2);
}

#[test]
fn snapshot_stage_3_route_through_gateway() {
    check_stage_snapshot(3);
}

#[test]
fn snapshot_stage_4_originate_tls() {
    check_stage_snapshot(4);
}

#[test]
fn cleanup_renders_exactly_as_baseline() {
    let after = stage(5);
    assert!(
        applied(5).keys().next().is_none(),
        "the five deletes leave nothing applied"
    );
    assert_eq!(after, stage(0));
    // Against the stored baseline too, so a regression in both cannot hide.
    check_snapshot(STAGE_NAMES[0], &describe_translation(&after));
}

#[test]
fn the_rendering_shows_fields_it_does_not_know() {
    let mut t = stage(1);
    t.sidecar.listeners[0].per_connection_buffer_limit_bytes = Some(UInt32Value { value: 7 });
    let text = describe(&t.sidecar);
    assert!(text.contains("UNRENDERED") && text.contains("per_connection_buffer_limit_bytes"));
    assert!(!describe(&stage(1).sidecar).contains("UNRENDERED"));
}

// ---------------------------------------------------------------------------------------------
// Lookups and decoders for the focused tests.

fn listener_names(r: &ProxyResources) -> Vec<&str> {
    r.listeners.iter().map(|l| l.name.as_str()).collect()
}

fn find_listener<'a>(r: &'a ProxyResources, name: &str) -> &'a Listener {
    r.listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name}; have {:?}", listener_names(r)))
}

fn find_route_config<'a>(r: &'a ProxyResources, name: &str) -> &'a RouteConfiguration {
    r.routes
        .iter()
        .find(|rc| rc.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no route config {name}; have {:?}",
                r.routes.iter().map(|x| &x.name).collect::<Vec<_>>()
            )
        })
}

fn find_vhost<'a>(rc: &'a RouteConfiguration, name: &str) -> &'a VirtualHost {
    rc.virtual_hosts
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no virtual host {name} in {}; have {:?}",
                rc.name,
                vhost_names(rc)
            )
        })
}

fn vhost_names(rc: &RouteConfiguration) -> Vec<&str> {
    rc.virtual_hosts.iter().map(|v| v.name.as_str()).collect()
}

fn find_cluster<'a>(r: &'a ProxyResources, name: &str) -> &'a Cluster {
    r.clusters
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

fn cluster_names(r: &ProxyResources) -> Vec<&str> {
    r.clusters.iter().map(|c| c.name.as_str()).collect()
}

fn only_chain_hcm(l: &Listener) -> HttpConnectionManager {
    let [chain] = l.filter_chains.as_slice() else {
        panic!("{} has not one chain", l.name)
    };
    let [filter] = chain.filters.as_slice() else {
        panic!("{} has not one filter", l.name)
    };
    filter_payload(filter)
}

fn filter_payload<M: Message + Name + Default>(f: &Filter) -> M {
    match &f.config_type {
        Some(filter::ConfigType::TypedConfig(any)) => decode(any),
        other => panic!("filter {} has no typed config: {other:?}", f.name),
    }
}

fn rds_name(h: &HttpConnectionManager) -> &str {
    match &h.route_specifier {
        Some(RouteSpecifier::Rds(rds)) => &rds.route_config_name,
        other => panic!("not RDS: {other:?}"),
    }
}

fn route_cluster(r: &Route) -> &str {
    match &r.action {
        Some(Action::Route(a)) => match &a.cluster_specifier {
            Some(ClusterSpecifier::Cluster(c)) => c,
            other => panic!("route {} has no single cluster: {other:?}", r.name),
        },
        other => panic!("route {} is not a route action: {other:?}", r.name),
    }
}

fn only_route(vh: &VirtualHost) -> &Route {
    let [route] = vh.routes.as_slice() else {
        panic!("{} has {} routes, expected one", vh.name, vh.routes.len())
    };
    route
}

fn discovery(c: &Cluster) -> DiscoveryType {
    match c.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(t).unwrap(),
        ref other => panic!("{}: {other:?}", c.name),
    }
}

fn endpoint_addresses(a: &ClusterLoadAssignment) -> Vec<String> {
    a.endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .map(|e| match &e.host_identifier {
            Some(HostIdentifier::Endpoint(ep)) => addr(ep.address.clone()),
            other => panic!("{other:?}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Focused assertions.

#[test]
fn sidecar_listeners_per_stage() {
    let baseline = ["0.0.0.0_80", "10.96.0.30_443", "virtualOutbound"];
    let with_se = [
        "0.0.0.0_80",
        "0.0.0.0_443",
        "10.96.0.30_443",
        "virtualOutbound",
    ];
    let expected: [&[&str]; 6] = [&baseline, &with_se, &with_se, &with_se, &with_se, &baseline];
    for (n, want) in expected.iter().enumerate() {
        let t = stage(n);
        assert_eq!(listener_names(&t.sidecar), *want, "stage {n}");
    }
}

#[test]
fn sidecar_http_listener_shape() {
    let t = stage(1);
    for port in [80, 443] {
        let name = format!("0.0.0.0_{port}");
        let l = find_listener(&t.sidecar, &name);
        assert_eq!(addr(l.address.clone()), format!("0.0.0.0:{port}"));
        assert_eq!(l.bind_to_port, Some(BoolValue { value: false }), "{name}");
        let h = only_chain_hcm(l);
        assert_eq!(h.stat_prefix, format!("outbound_0.0.0.0_{port};"));
        assert_eq!(rds_name(&h), port.to_string());
        assert_eq!(h.use_remote_address, Some(BoolValue { value: false }));
        assert_eq!(h.server_name, "");
    }
}

#[test]
fn sidecar_vip_listener_proxies_tcp_to_the_gateway_service() {
    let t = stage(0);
    let l = find_listener(&t.sidecar, "10.96.0.30_443");
    assert_eq!(addr(l.address.clone()), "10.96.0.30:443");
    let cluster = format!("outbound|443||{GATEWAY_HOST}");
    let [chain] = l.filter_chains.as_slice() else {
        panic!()
    };
    let proxy: TcpProxy = filter_payload(&chain.filters[0]);
    assert_eq!(proxy.stat_prefix, cluster);
    assert_eq!(proxy.cluster_specifier, Some(TcpCluster::Cluster(cluster)));
}

#[test]
fn virtual_outbound_shape() {
    for (policy, catch_all) in [
        (OutboundTrafficPolicy::AllowAny, "PassthroughCluster"),
        (OutboundTrafficPolicy::RegistryOnly, "BlackHoleCluster"),
    ] {
        let t = translate_config(
            &applied(1),
            &MeshSettings {
                outbound_traffic_policy: policy,
            },
        );
        let l = find_listener(&t.sidecar, "virtualOutbound");
        assert_eq!(addr(l.address.clone()), "0.0.0.0:15001");
        assert_eq!(l.use_original_dst, Some(BoolValue { value: true }));
        let chains: Vec<(&str, Option<u32>, String)> = l
            .filter_chains
            .iter()
            .map(|c| {
                let proxy: TcpProxy = filter_payload(&c.filters[0]);
                let Some(TcpCluster::Cluster(cluster)) = proxy.cluster_specifier else {
                    panic!()
                };
                let port = c
                    .filter_chain_match
                    .as_ref()
                    .and_then(|m| m.destination_port)
                    .map(|p| p.value);
                (c.name.as_str(), port, cluster)
            })
            .collect();
        assert_eq!(
            chains,
            [
                (
                    "virtualOutbound-blackhole",
                    Some(15001),
                    "BlackHoleCluster".to_string()
                ),
                ("virtualOutbound-catchall-tcp", None, catch_all.to_string()),
            ],
            "{policy:?}"
        );
    }
}

#[test]
fn route_80_virtual_hosts_in_order_with_allow_any_last() {
    let baseline = stage(0);
    assert_eq!(
        vhost_names(find_route_config(&baseline.sidecar, "80")),
        [
            "istio-egressgateway.istio-system.svc.cluster.local:80",
            "sleep.default.svc.cluster.local:80",
            "allow_any"
        ]
    );
    let t = stage(1);
    let rc = find_route_config(&t.sidecar, "80");
    assert_eq!(
        vhost_names(rc),
        [
            "edition.cnn.com:80",
            "istio-egressgateway.istio-system.svc.cluster.local:80",
            "sleep.default.svc.cluster.local:80",
            "allow_any"
        ]
    );
    assert_eq!(rc.validate_clusters, Some(BoolValue { value: false }));
    assert_eq!(
        rc.max_direct_response_body_size_bytes,
        Some(UInt32Value { value: 1048576 })
    );
    assert!(rc.ignore_port_in_host_matching);
    assert_eq!(
        vhost_names(find_route_config(&t.sidecar, "443")),
        ["edition.cnn.com:443", "allow_any"]
    );
}

#[test]
fn sidecar_domains_per_kind_of_host() {
    let t = stage(1);
    let rc = find_route_config(&t.sidecar, "80");
    assert_eq!(
        find_vhost(rc, "edition.cnn.com:80").domains,
        ["edition.cnn.com", "edition.cnn.com."]
    );
    assert_eq!(
        find_vhost(rc, "sleep.default.svc.cluster.local:80").domains,
        [
            "sleep.default.svc.cluster.local",
            "sleep.default.svc.cluster.local.",
            "sleep",
            "sleep.default.svc",
            "sleep.default",
            "10.96.0.20"
        ]
    );
    assert_eq!(
        find_vhost(rc, "istio-egressgateway.istio-system.svc.cluster.local:80").domains,
        [
            "istio-egressgateway.istio-system.svc.cluster.local",
            "istio-egressgateway.istio-system.svc.cluster.local.",
            "istio-egressgateway.istio-system",
            "istio-egressgateway.istio-system.svc",
            "10.96.0.30"
        ]
    );
    let allow_any = find_vhost(rc, "allow_any");
    assert_eq!(allow_any.domains, ["*"]);
}

#[allow(deprecated)] // max_grpc_timeout
#[test]
fn default_and_allow_any_routes() {
    let t = stage(1);
    let rc = find_route_config(&t.sidecar, "80");
    let route = only_route(find_vhost(rc, "edition.cnn.com:80"));
    assert_eq!(route.name, "default");
    let m = route.r#match.as_ref().unwrap();
    assert_eq!(m.path_specifier, Some(PathSpecifier::Prefix("/".into())));
    assert_eq!(m.case_sensitive, None);
    assert_eq!(route_cluster(route), CNN_80);
    let Some(Action::Route(action)) = &route.action else {
        panic!()
    };
    assert_eq!(
        action.timeout,
        Some(Duration {
            seconds: 0,
            nanos: 0
        })
    );
    assert_eq!(
        action.max_grpc_timeout,
        Some(Duration {
            seconds: 0,
            nanos: 0
        })
    );
    let retry = action.retry_policy.as_ref().unwrap();
    assert_eq!(
        retry.retry_on,
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    );
    assert_eq!(retry.num_retries, Some(UInt32Value { value: 2 }));
    assert_eq!(retry.host_selection_retry_max_attempts, 5);
    assert_eq!(
        retry.retry_host_predicate[0].name,
        "envoy.retry_host_predicates.previous_hosts"
    );
    assert_eq!(
        route.decorator.as_ref().unwrap().operation,
        "edition.cnn.com:80/*"
    );

    let allow_any = only_route(find_vhost(rc, "allow_any"));
    assert_eq!(allow_any.name, "allow_any");
    assert_eq!(route_cluster(allow_any), "PassthroughCluster");
    let Some(Action::Route(action)) = &allow_any.action else {
        panic!()
    };
    assert_eq!(action.retry_policy, None);
    assert_eq!(
        action.timeout,
        Some(Duration {
            seconds: 0,
            nanos: 0
        })
    );
    assert_eq!(
        action.max_grpc_timeout,
        Some(Duration {
            seconds: 0,
            nanos: 0
        })
    );
    assert_eq!(allow_any.decorator, None);
}

#[test]
fn stage_3_sidecar_routes_80_to_the_gateway_subset_and_keeps_443_default() {
    let t = stage(3);
    let rc80 = find_route_config(&t.sidecar, "80");
    let route = only_route(find_vhost(rc80, "edition.cnn.com:80"));
    assert_eq!(route_cluster(route), SUBSET_CLUSTER);
    assert_eq!(
        route.r#match.as_ref().unwrap().case_sensitive,
        Some(BoolValue { value: true })
    );
    assert_eq!(
        route.decorator.as_ref().unwrap().operation,
        format!("{GATEWAY_HOST}:443/*")
    );
    // The VirtualService has no mesh rule for 443: the host keeps its default route there.
    let rc443 = find_route_config(&t.sidecar, "443");
    let route = only_route(find_vhost(rc443, "edition.cnn.com:443"));
    assert_eq!(route.name, "default");
    assert_eq!(route_cluster(route), CNN_443);
}

#[test]
fn gateway_listener_and_routes_per_stage() {
    for n in [0, 1] {
        let t = stage(n);
        assert!(t.gateway.listeners.is_empty(), "stage {n}");
        assert!(t.gateway.routes.is_empty(), "stage {n}");
    }
    let t = stage(2);
    assert_eq!(listener_names(&t.gateway), ["0.0.0.0_8443"]);
    let l = find_listener(&t.gateway, "0.0.0.0_8443");
    assert_eq!(addr(l.address.clone()), "0.0.0.0:8443");
    assert_eq!(l.bind_to_port, None, "gateways bind their ports");
    let h = only_chain_hcm(l);
    assert_eq!(rds_name(&h), "http.8443");
    assert_eq!(h.stat_prefix, "outbound_0.0.0.0_8443;");
    assert_eq!(h.use_remote_address, Some(BoolValue { value: true }));
    assert_eq!(h.server_name, "istio-envoy");
    let rc = find_route_config(&t.gateway, "http.8443");
    assert_eq!(vhost_names(rc), ["blackhole:443"]);
    let blackhole = find_vhost(rc, "blackhole:443");
    assert_eq!(blackhole.domains, ["*"]);
    assert!(blackhole.routes.is_empty());

    let t = stage(3);
    let rc = find_route_config(&t.gateway, "http.8443");
    assert_eq!(vhost_names(rc), ["edition.cnn.com:443"]);
    let vh = find_vhost(rc, "edition.cnn.com:443");
    assert_eq!(vh.domains, ["edition.cnn.com"]);
    assert_eq!(route_cluster(only_route(vh)), CNN_443);
}

#[test]
fn subset_cluster_is_eds_with_its_own_service_name_and_gateway_pod_endpoints() {
    let t = stage(3);
    // The rule lives in `default`: the gateway, in `istio-system`, does not see it (istiod's
    // DestinationRule lookup: the proxy's namespace, the service's, the root namespace).
    assert!(!cluster_names(&t.gateway).contains(&SUBSET_CLUSTER));
    {
        let proxy = &t.sidecar;
        let c = find_cluster(proxy, SUBSET_CLUSTER);
        assert_eq!(discovery(c), DiscoveryType::Eds);
        let eds = c.eds_cluster_config.as_ref().unwrap();
        assert_eq!(eds.service_name, SUBSET_CLUSTER);
        let source = eds.eds_config.as_ref().unwrap();
        assert!(matches!(
            source.config_source_specifier,
            Some(ConfigSourceSpecifier::Ads(_))
        ));
        assert_eq!(
            source.initial_fetch_timeout,
            Some(Duration {
                seconds: 0,
                nanos: 0
            })
        );
        assert_eq!(LbPolicy::try_from(c.lb_policy), Ok(LbPolicy::LeastRequest));
        let assignment = proxy
            .endpoints
            .iter()
            .find(|a| a.cluster_name == SUBSET_CLUSTER)
            .expect("endpoints for the subset cluster");
        assert_eq!(endpoint_addresses(assignment), ["10.244.0.11:8443"]);
    }
    assert!(!cluster_names(&stage(2).sidecar).contains(&SUBSET_CLUSTER));
}

#[test]
fn stage_4_tls_origination_on_443_only_and_port_level_does_not_inherit() {
    let t = stage(4);
    let c443 = find_cluster(&t.gateway, CNN_443);
    assert_eq!(discovery(c443), DiscoveryType::StrictDns);
    assert_eq!(
        LbPolicy::try_from(c443.lb_policy),
        Ok(LbPolicy::LeastRequest)
    );
    let socket = c443.transport_socket.as_ref().expect("TLS on 443");
    assert_eq!(socket.name, "envoy.transport_sockets.tls");
    assert!(c443.transport_socket_matches.is_empty());
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &socket.config_type else {
        panic!()
    };
    let tls: UpstreamTlsContext = decode(any);
    assert_eq!(tls.sni, "");
    let common = tls.common_tls_context.unwrap();
    let params = common.tls_params.unwrap();
    assert_eq!(
        params.tls_minimum_protocol_version,
        TlsProtocol::TlSv12 as i32
    );
    assert_eq!(
        params.tls_maximum_protocol_version,
        TlsProtocol::TlSv13 as i32
    );
    let Some(ValidationContextType::CombinedValidationContext(v)) = common.validation_context_type
    else {
        panic!("istiod's validation context: the public roots over SDS")
    };
    assert_eq!(
        v.validation_context_sds_secret_config.unwrap().name,
        "file-root:system"
    );
    assert_eq!(v.default_validation_context, Some(Default::default()));
    let options: HttpProtocolOptions = decode(
        &c443.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"],
    );
    let upstream = options.upstream_http_protocol_options.unwrap();
    assert!(upstream.auto_sni && upstream.auto_san_validation);
    assert!(matches!(
        options.upstream_protocol_options,
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(ref e))
            if matches!(e.protocol_config, Some(ProtocolConfig::HttpProtocolOptions(_)))
    ));

    for proxy in [&t.sidecar, &t.gateway] {
        let c80 = find_cluster(proxy, CNN_80);
        assert_eq!(LbPolicy::try_from(c80.lb_policy), Ok(LbPolicy::RoundRobin));
        assert_eq!(c80.transport_socket, None);
        assert!(c80.typed_extension_protocol_options.is_empty());
    }
    // Before the rule, both ports are plain and LEAST_REQUEST.
    let before = stage(3);
    let c443 = find_cluster(&before.gateway, CNN_443);
    assert_eq!(c443.transport_socket, None);
    assert_eq!(
        LbPolicy::try_from(c443.lb_policy),
        Ok(LbPolicy::LeastRequest)
    );
}

#[test]
fn dns_service_entry_clusters() {
    let t = stage(1);
    for (name, port) in [(CNN_80, 80), (CNN_443, 443)] {
        let c = find_cluster(&t.sidecar, name);
        assert_eq!(discovery(c), DiscoveryType::StrictDns);
        assert_eq!(
            DnsLookupFamily::try_from(c.dns_lookup_family),
            Ok(DnsLookupFamily::V4Only)
        );
        assert_eq!(
            c.connect_timeout,
            Some(Duration {
                seconds: 10,
                nanos: 0
            })
        );
        assert_eq!(
            endpoint_addresses(c.load_assignment.as_ref().unwrap()),
            [format!("edition.cnn.com:{port}")]
        );
        assert!(
            !t.sidecar.endpoints.iter().any(|a| a.cluster_name == name),
            "no EDS for {name}"
        );
    }
}

#[test]
fn registry_only_blocks_unknown_hosts() {
    let t = translate_config(
        &applied(1),
        &MeshSettings {
            outbound_traffic_policy: OutboundTrafficPolicy::RegistryOnly,
        },
    );
    for rc in &t.sidecar.routes {
        let last = rc.virtual_hosts.last().unwrap();
        assert_eq!(last.name, "block_all", "{}", rc.name);
        assert_eq!(last.domains, ["*"]);
        let route = only_route(last);
        assert_eq!(route.name, "block_all");
        let Some(Action::DirectResponse(response)) = &route.action else {
            panic!("{:?}", route.action)
        };
        assert_eq!(response.status, 502);
        assert!(!rc.virtual_hosts.iter().any(|v| v.name == "allow_any"));
    }
}

#[test]
fn catch_all_clusters_per_proxy() {
    let t = stage(2);
    let names = cluster_names(&t.sidecar);
    assert!(names.contains(&"BlackHoleCluster") && names.contains(&"PassthroughCluster"));
    let gateway = cluster_names(&t.gateway);
    assert!(gateway.contains(&"BlackHoleCluster"));
    assert!(!gateway.contains(&"PassthroughCluster"));

    let passthrough = find_cluster(&t.sidecar, "PassthroughCluster");
    assert_eq!(discovery(passthrough), DiscoveryType::OriginalDst);
    assert_eq!(
        LbPolicy::try_from(passthrough.lb_policy),
        Ok(LbPolicy::ClusterProvided)
    );
    let blackhole = find_cluster(&t.gateway, "BlackHoleCluster");
    assert_eq!(discovery(blackhole), DiscoveryType::Static);
    assert_eq!(blackhole.load_assignment, None);
}

const WEIGHTED_VS: &str = "\
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: split-cnn
spec:
  hosts:
  - edition.cnn.com
  http:
  - route:
    - destination:
        host: edition.cnn.com
        port:
          number: 80
      weight: 70
    - destination:
        host: sleep
        port:
          number: 80
      weight: 30
";

#[test]
fn two_weighted_destinations_give_weighted_clusters() {
    let t = translate_config(&with_objects(1, WEIGHTED_VS), &MeshSettings::default());
    let rc = find_route_config(&t.sidecar, "80");
    let route = only_route(find_vhost(rc, "edition.cnn.com:80"));
    let Some(Action::Route(action)) = &route.action else {
        panic!()
    };
    let Some(ClusterSpecifier::WeightedClusters(weighted)) = &action.cluster_specifier else {
        panic!("{:?}", action.cluster_specifier)
    };
    let got: Vec<(&str, u32)> = weighted
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight.unwrap().value))
        .collect();
    assert_eq!(
        got,
        [
            (CNN_80, 70),
            ("outbound|80||sleep.default.svc.cluster.local", 30)
        ]
    );
}

#[test]
fn weighted_route_decorator_names_the_virtual_service() {
    let t = translate_config(&with_objects(1, WEIGHTED_VS), &MeshSettings::default());
    let rc = find_route_config(&t.sidecar, "80");
    let route = only_route(find_vhost(rc, "edition.cnn.com:80"));
    assert_eq!(
        route.decorator.as_ref().unwrap().operation,
        "split-cnn:80/*"
    );
}

#[test]
fn decorator_port_is_the_cluster_port() {
    // On port 443, to `sleep`, whose only port is 80: the cluster is outbound|80||sleep...
    let vs = "\
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: cnn-to-sleep
spec:
  hosts:
  - edition.cnn.com
  http:
  - match:
    - port: 443
    route:
    - destination:
        host: sleep
";
    let t = translate_config(&with_objects(1, vs), &MeshSettings::default());
    let rc = find_route_config(&t.sidecar, "443");
    let route = only_route(find_vhost(rc, "edition.cnn.com:443"));
    assert_eq!(
        route_cluster(route),
        "outbound|80||sleep.default.svc.cluster.local"
    );
    assert_eq!(
        route.decorator.as_ref().unwrap().operation,
        "sleep.default.svc.cluster.local:80/*"
    );
}

#[test]
fn http2_port_clusters_speak_http2() {
    let t = stage(0);
    let c = find_cluster(&t.sidecar, &format!("outbound|80||{GATEWAY_HOST}"));
    let any = c
        .typed_extension_protocol_options
        .get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
        .expect("http protocol options");
    let options: HttpProtocolOptions = decode(any);
    assert!(matches!(
        options.upstream_protocol_options,
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(ref e))
            if matches!(e.protocol_config, Some(ProtocolConfig::Http2ProtocolOptions(_)))
    ));
}

#[test]
fn virtual_service_without_gateways_binds_to_mesh_only() {
    // Stage 2 has the Gateway; this VirtualService does not name it.
    let vs = "\
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: mesh-only
spec:
  hosts:
  - edition.cnn.com
  http:
  - route:
    - destination:
        host: edition.cnn.com
        port:
          number: 443
";
    let t = translate_config(&with_objects(2, vs), &MeshSettings::default());
    let rc = find_route_config(&t.sidecar, "80");
    let route = only_route(find_vhost(rc, "edition.cnn.com:80"));
    assert_eq!(route_cluster(route), CNN_443);
    assert_eq!(route.name, "");
    let gateway = find_route_config(&t.gateway, "http.8443");
    assert_eq!(vhost_names(gateway), ["blackhole:443"]);
}

/// The tutorial's VirtualService with its gateway references rewritten to `reference`.
fn vs_naming_gateway(reference: &str) -> String {
    let text = std::fs::read_to_string(fixture_path(STAGE_FILES[2])).unwrap();
    let vs = text.split("---").nth(1).unwrap();
    assert_eq!(vs.matches("- istio-egressgateway\n").count(), 2, "{vs}");
    vs.replace("- istio-egressgateway\n", &format!("- {reference}\n"))
}

#[test]
fn gateway_references_resolve_against_the_virtual_service_namespace() {
    for (reference, bound) in [
        ("istio-egressgateway", true),
        ("default/istio-egressgateway", true),
        ("istio-system/istio-egressgateway", false),
    ] {
        let config = with_objects(2, &vs_naming_gateway(reference));
        let t = translate_config(&config, &MeshSettings::default());
        let rc = find_route_config(&t.gateway, "http.8443");
        let want: &[&str] = if bound {
            &["edition.cnn.com:443"]
        } else {
            &["blackhole:443"]
        };
        assert_eq!(vhost_names(rc), want, "{reference}");
        if bound {
            let route = only_route(find_vhost(rc, "edition.cnn.com:443"));
            assert_eq!(route_cluster(route), CNN_443, "{reference}");
        }
    }
}

fn service_entry_with(change: impl FnOnce(&mut crate::istio::ServiceEntry)) -> TranslateError {
    let mut config = AppliedConfig::default();
    let mut object = fixture(STAGE_FILES[0]).remove(0);
    let Spec::ServiceEntry(entry) = &mut object.spec else {
        panic!("not a ServiceEntry")
    };
    change(entry);
    config.apply(object, NAMESPACE);
    translate(
        &config,
        &Registry::tutorial(),
        &MeshSettings::default(),
        &ProxyWorkloads::tutorial(),
    )
    .unwrap_err()
}

#[test]
fn dynamic_dns_resolution_is_unsupported() {
    let err = service_entry_with(|e| e.resolution = Resolution::DynamicDns);
    let TranslateError::Unsupported(unsupported) = &err else {
        panic!("{err}")
    };
    assert_eq!(unsupported.field, "spec.resolution");
    assert_eq!(unsupported.object.name, "cnn");
    // The field's own line and column in the fixture.
    assert!(
        unsupported.at.ends_with("01-serviceentry-cnn.yaml:15:3"),
        "{}",
        unsupported.at
    );
}

#[test]
fn mongo_service_entry_port_is_unsupported() {
    let err = service_entry_with(|e| e.ports[1].protocol = "MONGO".into());
    let TranslateError::Unsupported(unsupported) = &err else {
        panic!("{err}")
    };
    assert_eq!(unsupported.field, "spec.ports[1].protocol");
    assert!(err.to_string().contains("spec.ports[1].protocol"), "{err}");
}

#[test]
fn a_tcp_port_without_address_on_an_http_port_is_unsupported() {
    // Port 80 is HTTP for the sleep Service: istiod would sniff the protocol on 0.0.0.0_80.
    let err = service_entry_with(|e| e.ports[0].protocol = "TCP".into());
    let TranslateError::Unsupported(unsupported) = &err else {
        panic!("{err}")
    };
    assert_eq!(unsupported.field, "spec.ports[0]");
    assert!(err.to_string().contains("sniffing"), "{err}");
}

#[test]
fn a_field_the_translator_does_not_implement_is_refused_where_it_is_set() {
    let mut config = applied(2);
    let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: t\nspec:\n  hosts: [edition.cnn.com]\n  http:\n  - retries: {attempts: 3}\n    route:\n    - destination: {host: edition.cnn.com}\n";
    for object in crate::istio::parse::parse_manifests(Path::new("inline.yaml"), yaml).unwrap() {
        config.apply(object, NAMESPACE);
    }
    let err = translate_err(&config);
    let TranslateError::Unsupported(unsupported) = &err else {
        panic!("{err}")
    };
    assert_eq!(unsupported.field, "spec.http[0].retries");
    assert_eq!(unsupported.at, "inline.yaml:8:5");
    assert!(err.to_string().contains("--backend kind"), "{err}");
}

fn translate_err(config: &AppliedConfig) -> TranslateError {
    translate(
        config,
        &Registry::tutorial(),
        &MeshSettings::default(),
        &ProxyWorkloads::tutorial(),
    )
    .unwrap_err()
}

#[test]
fn unknown_workload_is_an_error() {
    let proxies = ProxyWorkloads {
        sidecar: "nobody".into(),
        gateway: "istio-egressgateway".into(),
    };
    let err = translate(
        &applied(0),
        &Registry::tutorial(),
        &MeshSettings::default(),
        &proxies,
    )
    .unwrap_err();
    assert_eq!(err, TranslateError::UnknownWorkload("nobody".into()));
}

#[test]
fn gateway_blackhole_virtual_host_sets_nothing_else() {
    let t = stage(2);
    let vh = find_vhost(find_route_config(&t.gateway, "http.8443"), "blackhole:443");
    assert!(!vh.include_request_attempt_count);
}

mod series;
