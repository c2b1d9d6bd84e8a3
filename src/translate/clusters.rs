//! CDS and EDS: one cluster per service port (`outbound|<port>||<host>`) and per DestinationRule
//! subset (`outbound|<port>|<subset>|<host>`), plus Istio's `BlackHoleCluster` and
//! `PassthroughCluster`.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::{CircuitBreakers, circuit_breakers::Thresholds};
use envoy_types::pb::envoy::config::cluster::v3::{
    Cluster,
    cluster::{
        ClusterDiscoveryType, CommonLbConfig, DiscoveryType, DnsLookupFamily, EdsClusterConfig,
        LbConfig, LbPolicy, OriginalDstLbConfig,
    },
};
use envoy_types::pb::envoy::config::core::v3::HttpProtocolOptions as HttpProtocolOptionsCommon;
use envoy_types::pb::envoy::config::core::v3::{
    Http1ProtocolOptions, TransportSocket, UpstreamHttpProtocolOptions, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint::HostIdentifier,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, TlsParameters, UpstreamTlsContext,
    common_tls_context::{CombinedCertificateValidationContext, ValidationContextType},
    tls_parameters::TlsProtocol,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{
        ExplicitHttpConfig, UpstreamProtocolOptions, UseDownstreamHttpConfig,
        explicit_http_config::ProtocolConfig,
    },
};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::UInt32Value;

use crate::istio::{ClientTlsMode, Protocol, SimpleLb, Subset};
use crate::mesh::{MeshSettings, OutboundTrafficPolicy, ProxyRole};

use super::envoy_build::{ads, any, sds, seconds, socket_address};
use super::model::{Discovery, MeshModel, Service, ServiceEndpoint, ServicePort};

pub(crate) const BLACKHOLE: &str = "BlackHoleCluster";
pub(crate) const PASSTHROUGH: &str = "PassthroughCluster";
/// The SDS name of the public roots, which `SIMPLE` TLS without `caCertificates` verifies the
/// server against; the proxy's agent answers it from its system bundle.
pub(crate) const SYSTEM_ROOTS_SECRET: &str = "file-root:system";
const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

pub(crate) fn name(port: u32, subset: Option<&str>, host: &str) -> String {
    format!("outbound|{port}|{}|{host}", subset.unwrap_or(""))
}

/// Every service cluster and the endpoints of the EDS ones, for a proxy in `proxy_namespace`
/// (which DestinationRules it sees depends on it). Every proxy sees every service (no `Sidecar`
/// resource or `exportTo` narrows it in the tutorials).
pub(crate) fn build(
    model: &MeshModel<'_>,
    proxy_namespace: &str,
    role: ProxyRole,
) -> (Vec<Cluster>, Vec<ClusterLoadAssignment>) {
    let mut clusters = Vec::new();
    let mut endpoints = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for service in &model.services {
        // A ServiceEntry with several addresses is one service per address, and one cluster.
        if !seen.insert(service.hostname.clone()) {
            continue;
        }
        let rule = model.rule_for(service, proxy_namespace);
        let subsets: Vec<Option<&Subset>> = std::iter::once(None)
            .chain(rule.iter().flat_map(|r| r.subsets().iter().map(Some)))
            .collect();
        for port in &service.ports {
            for subset in &subsets {
                let subset_name = subset.map(|s| s.name.as_str());
                let cluster_name = name(port.number, subset_name, &service.hostname);
                let policy = rule
                    .map(|r| r.policy_for(port.number, subset_name))
                    .unwrap_or_default();
                // A gateway has no original destination to pass through to: istiod gives it EDS
                // for the entry's endpoints instead (`convertResolution`), here none.
                let discovery = match &service.discovery {
                    Discovery::OriginalDst if role == ProxyRole::EgressGateway => &Discovery::Eds {
                        endpoints: Vec::new(),
                    },
                    other => other,
                };
                let mut cluster = base_cluster(&cluster_name, service, discovery, port);
                if !matches!(discovery, Discovery::OriginalDst) {
                    cluster.lb_policy = lb_policy(policy.load_balancer) as i32;
                }
                set_http_options(&mut cluster, port, None);
                if let Some(tls) = policy
                    .tls
                    .as_ref()
                    .filter(|t| t.mode == ClientTlsMode::Simple)
                {
                    apply_simple_tls(&mut cluster, tls, port);
                }
                if let Discovery::Eds { endpoints: all } = discovery {
                    let selected: Vec<&ServiceEndpoint> = all
                        .iter()
                        .filter(|e| {
                            subset.is_none_or(|s| {
                                s.labels.iter().all(|(k, v)| e.labels.get(k) == Some(v))
                            })
                        })
                        .collect();
                    endpoints.push(load_assignment(&cluster_name, &selected, port));
                }
                clusters.push(cluster);
            }
        }
    }
    (clusters, endpoints)
}

fn base_cluster(
    cluster_name: &str,
    service: &Service,
    discovery_of: &Discovery,
    port: &ServicePort,
) -> Cluster {
    let mut cluster = Cluster {
        name: cluster_name.to_string(),
        connect_timeout: Some(seconds(10)),
        circuit_breakers: Some(unlimited_circuit_breakers()),
        common_lb_config: Some(CommonLbConfig {
            // Istio turns Envoy's panic mode off: a host that fails stays out.
            healthy_panic_threshold: Some(Percent { value: 0.0 }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let discovery = |t: DiscoveryType| Some(ClusterDiscoveryType::Type(t as i32));
    match discovery_of {
        Discovery::Dns | Discovery::DnsRoundRobin => {
            cluster.cluster_discovery_type = discovery(match discovery_of {
                Discovery::DnsRoundRobin => DiscoveryType::LogicalDns,
                _ => DiscoveryType::StrictDns,
            });
            cluster.dns_lookup_family = DnsLookupFamily::V4Only as i32;
            cluster.load_assignment = Some(ClusterLoadAssignment {
                cluster_name: cluster_name.to_string(),
                endpoints: vec![LocalityLbEndpoints {
                    lb_endpoints: vec![lb_endpoint(&service.hostname, port.target_port, 1)],
                    load_balancing_weight: Some(UInt32Value { value: 1 }),
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        Discovery::Eds { .. } => {
            cluster.cluster_discovery_type = discovery(DiscoveryType::Eds);
            cluster.eds_cluster_config = Some(EdsClusterConfig {
                eds_config: Some(envoy_types::pb::envoy::config::core::v3::ConfigSource {
                    initial_fetch_timeout: Some(seconds(0)),
                    ..ads()
                }),
                service_name: cluster_name.to_string(),
            });
        }
        Discovery::OriginalDst => {
            cluster.cluster_discovery_type = discovery(DiscoveryType::OriginalDst);
            cluster.lb_policy = LbPolicy::ClusterProvided as i32;
            if port.target_port != port.number {
                // The connection's own destination, on the entry's targetPort.
                cluster.lb_config = Some(LbConfig::OriginalDstLbConfig(OriginalDstLbConfig {
                    upstream_port_override: Some(UInt32Value {
                        value: port.target_port,
                    }),
                    ..Default::default()
                }));
            }
        }
    }
    cluster
}

fn lb_endpoint(host: &str, port: u32, weight: u32) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(socket_address(host, port)),
            ..Default::default()
        })),
        load_balancing_weight: Some(UInt32Value { value: weight }),
        ..Default::default()
    }
}

/// An EDS assignment: one locality, weighted by the sum of its endpoints' weights; no locality
/// at all when there are no endpoints, as istiod sends it.
fn load_assignment(
    cluster_name: &str,
    endpoints: &[&ServiceEndpoint],
    port: &ServicePort,
) -> ClusterLoadAssignment {
    if endpoints.is_empty() {
        return ClusterLoadAssignment {
            cluster_name: cluster_name.to_string(),
            ..Default::default()
        };
    }
    ClusterLoadAssignment {
        cluster_name: cluster_name.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: endpoints
                .iter()
                .map(|e| lb_endpoint(&e.address, e.port_for(port), e.weight))
                .collect(),
            load_balancing_weight: Some(UInt32Value {
                value: endpoints.iter().map(|e| e.weight).sum(),
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Istio's default is LEAST_REQUEST; `simple` picks another.
fn lb_policy(simple: Option<SimpleLb>) -> LbPolicy {
    match simple {
        Some(SimpleLb::RoundRobin) => LbPolicy::RoundRobin,
        Some(SimpleLb::Random) => LbPolicy::Random,
        Some(SimpleLb::Passthrough) => LbPolicy::ClusterProvided,
        Some(SimpleLb::LeastConn | SimpleLb::LeastRequest | SimpleLb::Unspecified) | None => {
            LbPolicy::LeastRequest
        }
    }
}

/// `tls.mode: SIMPLE`: originate TLS. The SNI is `tls.sni` when set; otherwise Envoy derives it
/// from each request's Host (`auto_sni`) and checks the certificate against it
/// (`auto_san_validation`), as Istio does for HTTP clusters.
fn apply_simple_tls(
    cluster: &mut Cluster,
    tls: &crate::istio::ClientTlsSettings,
    port: &ServicePort,
) {
    // istiod names a CA bundle by SDS and the agent reads the file (`file-root:<path>`).
    let roots = if tls.ca_certificates.is_empty() {
        SYSTEM_ROOTS_SECRET.to_string()
    } else {
        crate::sds::file_root(&tls.ca_certificates)
    };
    let validation = if tls.insecure_skip_verify == Some(true) {
        None
    } else {
        Some(ValidationContextType::CombinedValidationContext(
            CombinedCertificateValidationContext {
                default_validation_context: Some(CertificateValidationContext::default()),
                validation_context_sds_secret_config: Some(sds(&roots)),
                ..Default::default()
            },
        ))
    };
    let context = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_params: Some(TlsParameters {
                tls_minimum_protocol_version: TlsProtocol::TlSv12 as i32,
                tls_maximum_protocol_version: TlsProtocol::TlSv13 as i32,
                ..Default::default()
            }),
            validation_context_type: validation,
            ..Default::default()
        }),
        sni: tls.sni.clone(),
        ..Default::default()
    };
    cluster.transport_socket = Some(TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(&context))),
    });
    if tls.sni.is_empty() && port.protocol.is_http() {
        let auto = UpstreamHttpProtocolOptions {
            auto_sni: true,
            auto_san_validation: tls.insecure_skip_verify != Some(true),
            ..Default::default()
        };
        set_http_options(cluster, port, Some(auto));
    }
}

/// The upstream HTTP options istiod sets: explicit HTTP/2 for `http2`/`grpc` ports, and
/// automatic SNI when TLS is originated without a fixed SNI (then explicit HTTP/1.1 otherwise).
fn set_http_options(
    cluster: &mut Cluster,
    port: &ServicePort,
    auto: Option<UpstreamHttpProtocolOptions>,
) {
    let h2 = matches!(port.protocol, Protocol::Http2 | Protocol::Grpc);
    if !h2 && auto.is_none() {
        return;
    }
    let protocol_config = if h2 {
        ProtocolConfig::Http2ProtocolOptions(Default::default())
    } else {
        ProtocolConfig::HttpProtocolOptions(Http1ProtocolOptions::default())
    };
    let options = HttpProtocolOptions {
        upstream_http_protocol_options: auto,
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(protocol_config),
            },
        )),
        ..Default::default()
    };
    cluster.typed_extension_protocol_options =
        HashMap::from([(HTTP_PROTOCOL_OPTIONS.to_string(), any(&options))]);
}

/// Istio leaves connection limits to the DestinationRule: every threshold at its maximum.
fn unlimited_circuit_breakers() -> CircuitBreakers {
    let max = Some(UInt32Value { value: u32::MAX });
    CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: max,
            max_pending_requests: max,
            max_requests: max,
            max_retries: max,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn blackhole() -> Cluster {
    Cluster {
        name: BLACKHOLE.into(),
        connect_timeout: Some(seconds(10)),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        ..Default::default()
    }
}

fn passthrough() -> Cluster {
    Cluster {
        name: PASSTHROUGH.into(),
        connect_timeout: Some(seconds(10)),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(
            DiscoveryType::OriginalDst as i32,
        )),
        lb_policy: LbPolicy::ClusterProvided as i32,
        circuit_breakers: Some(unlimited_circuit_breakers()),
        typed_extension_protocol_options: HashMap::from([(
            HTTP_PROTOCOL_OPTIONS.to_string(),
            any(&HttpProtocolOptions {
                common_http_protocol_options: Some(HttpProtocolOptionsCommon {
                    idle_timeout: Some(seconds(300)),
                    ..Default::default()
                }),
                upstream_protocol_options: Some(
                    UpstreamProtocolOptions::UseDownstreamProtocolConfig(UseDownstreamHttpConfig {
                        http_protocol_options: Some(Http1ProtocolOptions::default()),
                        http2_protocol_options: Some(Default::default()),
                        ..Default::default()
                    }),
                ),
                ..Default::default()
            }),
        )]),
        ..Default::default()
    }
}

/// A sidecar has both catch-all clusters whatever the policy: the policy picks which one the
/// catch-all routes use.
pub(crate) fn for_sidecar(services: &[Cluster], _mesh: &MeshSettings) -> Vec<Cluster> {
    let mut all = services.to_vec();
    all.push(blackhole());
    all.push(passthrough());
    all
}

pub(crate) fn for_gateway(services: &[Cluster]) -> Vec<Cluster> {
    let mut all = services.to_vec();
    all.push(blackhole());
    all
}

/// The catch-all cluster for traffic to unknown destinations under `policy`.
pub(crate) fn catch_all(policy: OutboundTrafficPolicy) -> &'static str {
    match policy {
        OutboundTrafficPolicy::AllowAny => PASSTHROUGH,
        OutboundTrafficPolicy::RegistryOnly => BLACKHOLE,
    }
}
