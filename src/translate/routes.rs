//! HTTP routes: a VirtualService's `http` rules for one proxy context and port, and the default
//! route a service gets without one.

use envoy_types::pb::envoy::config::route::v3::{
    Decorator, RetryPolicy, Route, RouteAction, RouteMatch, VirtualHost, WeightedCluster,
    retry_policy::{RetryHostPredicate, retry_host_predicate},
    route::Action,
    route_action::ClusterSpecifier,
    route_match::PathSpecifier,
    weighted_cluster::ClusterWeight,
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::google::protobuf::UInt32Value;

use crate::istio::{HttpRoute, ObjectKey, VirtualService};

use super::clusters;
use super::envoy_build::{any, bool_value, seconds};
use super::model::{MeshModel, qualify};

/// Where a VirtualService rule is being applied: the mesh's sidecars or one gateway
/// (`namespace/name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Context {
    Mesh,
    Gateway { namespace: String, name: String },
}

impl Context {
    /// Whether a gateway reference as written in a VirtualService (`mesh`, `name` or
    /// `namespace/name`, resolved against the VirtualService's namespace) means this context.
    fn is_named_by(&self, reference: &str, vs_namespace: &str) -> bool {
        match self {
            Context::Mesh => reference == "mesh",
            Context::Gateway { namespace, name } => match reference.split_once('/') {
                Some((ns, n)) => ns == namespace && n == name,
                None => reference == name && vs_namespace == namespace,
            },
        }
    }

    fn bound(&self, vs: &VirtualService, vs_namespace: &str) -> bool {
        if vs.gateways.is_empty() {
            return *self == Context::Mesh;
        }
        vs.gateways
            .iter()
            .any(|g| self.is_named_by(g, vs_namespace))
    }
}

/// The VirtualServices bound to `context` that name `host`, in applied order.
pub(crate) fn virtual_services_for<'m>(
    model: &'m MeshModel<'_>,
    context: &Context,
    host: &str,
) -> Vec<(&'m ObjectKey, &'m VirtualService)> {
    model
        .virtual_services
        .iter()
        .filter(|(key, vs)| {
            context.bound(vs, &key.namespace)
                && vs.hosts.iter().any(|h| qualify(h, &key.namespace) == host)
        })
        .map(|(key, vs)| (key, *vs))
        .collect()
}

/// Translate the rules of `vs` that apply to `context` on `port`. Rules whose matches all name
/// another gateway or port are left out, as istiod does.
pub(crate) fn from_virtual_service(
    model: &MeshModel<'_>,
    key: &ObjectKey,
    vs: &VirtualService,
    context: &Context,
    port: u32,
) -> Vec<Route> {
    vs.http
        .iter()
        .filter(|rule| applies(rule, context, &key.namespace, port))
        .map(|rule| rule_route(model, key, rule, port))
        .collect()
}

fn applies(rule: &HttpRoute, context: &Context, vs_namespace: &str, port: u32) -> bool {
    if rule.matches.is_empty() {
        return true;
    }
    rule.matches.iter().any(|m| {
        let gateway_ok = m.gateways.is_empty()
            || m.gateways
                .iter()
                .any(|g| context.is_named_by(g, vs_namespace));
        gateway_ok && (m.port == 0 || m.port == port)
    })
}

fn rule_route(model: &MeshModel<'_>, key: &ObjectKey, rule: &HttpRoute, port: u32) -> Route {
    let vs_namespace = key.namespace.as_str();
    let targets: Vec<(String, String, u32, u32)> = rule
        .route
        .iter()
        // Validation guarantees every route destination a destination.
        .filter_map(|d| Some((d.destination.as_ref()?, d.weight)))
        .map(|(destination, weight)| {
            let host = qualify(&destination.host, vs_namespace);
            let dest_port = destination
                .port
                .as_ref()
                .map(|p| p.number)
                .unwrap_or_else(|| {
                    // No port: the service's only port, else the port the request came in on.
                    match model.service(&host).map(|s| s.ports.as_slice()) {
                        Some([only]) => only.number,
                        _ => port,
                    }
                });
            let subset = (!destination.subset.is_empty()).then_some(destination.subset.as_str());
            let cluster = clusters::name(dest_port, subset, &host);
            (cluster, host, dest_port, u32::try_from(weight).unwrap_or(0))
        })
        .collect();
    // As istiod names the operation: the one destination's host and cluster port, or the
    // VirtualService and the listener port when traffic is split.
    let (specifier, operation) = if let [(cluster, host, dest_port, _)] = targets.as_slice() {
        (
            ClusterSpecifier::Cluster(cluster.clone()),
            format!("{host}:{dest_port}/*"),
        )
    } else {
        let split = ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: targets
                .iter()
                .map(|(name, _, _, weight)| ClusterWeight {
                    name: name.clone(),
                    weight: Some(UInt32Value { value: *weight }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        (split, format!("{}:{port}/*", key.name))
    };
    let mut route = route(rule.name.clone(), specifier, operation);
    // istiod's `translateRouteMatch` says so only for a rule that has matches.
    if !rule.matches.is_empty()
        && let Some(m) = &mut route.r#match
    {
        m.case_sensitive = Some(bool_value(true));
    }
    // The rule's `timeout` bounds the whole request, retries included; istiod sets the gRPC
    // timeout to the same.
    if let Some(timeout) = rule.timeout
        && let Some(Action::Route(action)) = &mut route.action
    {
        let timeout = duration(timeout.to_std());
        action.timeout = Some(timeout);
        #[allow(deprecated)] // istiod still sets it
        {
            action.max_grpc_timeout = Some(timeout);
        }
    }
    route
}

/// The route a service gets when no VirtualService speaks for it.
pub(crate) fn default_route(cluster: String, host: &str, port: u32) -> Route {
    route(
        "default".into(),
        ClusterSpecifier::Cluster(cluster),
        format!("{host}:{port}/*"),
    )
}

fn route(name: String, specifier: ClusterSpecifier, operation: String) -> Route {
    Route {
        name,
        r#match: Some(prefix_match()),
        action: Some(Action::Route(RouteAction {
            cluster_specifier: Some(specifier),
            timeout: Some(seconds(0)),
            retry_policy: Some(retry_policy()),
            #[allow(deprecated)] // istiod still sets it
            max_grpc_timeout: Some(seconds(0)),
            ..Default::default()
        })),
        decorator: Some(Decorator {
            operation,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A protobuf Duration for a std one.
fn duration(d: std::time::Duration) -> envoy_types::pb::google::protobuf::Duration {
    envoy_types::pb::google::protobuf::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

pub(crate) fn prefix_match() -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix("/".into())),
        ..Default::default()
    }
}

/// Istio's default retry policy: two retries on connection-level failures, each on another host.
fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
            .into(),
        num_retries: Some(UInt32Value { value: 2 }),
        retry_host_predicate: vec![RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".into(),
            config_type: Some(retry_host_predicate::ConfigType::TypedConfig(any(
                &PreviousHostsPredicate {},
            ))),
        }],
        host_selection_retry_max_attempts: 5,
        ..Default::default()
    }
}

pub(crate) fn virtual_host(name: String, domains: Vec<String>, routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name,
        domains,
        routes,
        include_request_attempt_count: true,
        ..Default::default()
    }
}
