//! Rules of the API server's schema for the four kinds (Istio's CRDs, `crd-all.gen.yaml`) that
//! Istio's Go validation does not have, so that what `kubectl apply` would be refused is refused
//! here too: at most one member of a proto `oneof`, bytes in base64, a few ranges and sizes.
//! Types, enums, required fields and unknown fields are the decoder's (`crate::yaml`); the
//! schema's other rules are also Istio's, which say it in their own words.

use super::Finding;
use crate::istio::api::{
    ConsistentHashLb, DestinationRule, Gateway, HttpRoute, LoadBalancerSettings, ServiceEntry,
    StringMatch, TrafficPolicy, VirtualService,
};
use crate::istio::object::{IstioObject, Spec};
use crate::yaml::FieldPath;

pub(super) fn check(object: &IstioObject) -> Vec<Finding> {
    let mut out = Schema(Vec::new());
    let spec = FieldPath::default().key("spec");
    match &object.spec {
        Spec::ServiceEntry(se) => service_entry(&mut out, &spec, se),
        Spec::Gateway(gw) => gateway(&mut out, &spec, gw),
        Spec::VirtualService(vs) => virtual_service(&mut out, &spec, vs),
        Spec::DestinationRule(dr) => destination_rule(&mut out, &spec, dr),
    }
    out.0
}

struct Schema(Vec<Finding>);

impl Schema {
    fn refuse(&mut self, at: &FieldPath, message: impl Into<String>) {
        self.0.push(Finding {
            path: at.clone(),
            message: format!("{} (the API server's schema)", message.into()),
            listed: false,
        });
    }

    /// At most one of a `oneof`'s members.
    fn one_of(&mut self, at: &FieldPath, members: &[(&str, bool)]) {
        let set: Vec<&str> = members
            .iter()
            .filter(|(_, s)| *s)
            .map(|(n, _)| *n)
            .collect();
        if set.len() > 1 {
            self.refuse(
                at,
                format!(
                    "only one of {} may be set; found {}",
                    members
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", "),
                    set.join(" and ")
                ),
            );
        }
    }

    fn at_most(&mut self, at: &FieldPath, count: usize, max: usize) {
        if count > max {
            self.refuse(at, format!("at most {max} items, found {count}"));
        }
    }

    fn string_match(&mut self, at: &FieldPath, m: &StringMatch) {
        self.one_of(
            at,
            &[
                ("exact", m.exact.is_some()),
                ("prefix", m.prefix.is_some()),
                ("regex", m.regex.is_some()),
            ],
        );
    }
}

fn service_entry(out: &mut Schema, spec: &FieldPath, se: &ServiceEntry) {
    out.at_most(&spec.key("hosts"), se.hosts.len(), 256);
    out.at_most(&spec.key("addresses"), se.addresses.len(), 256);
    out.at_most(&spec.key("ports"), se.ports.len(), 256);
    out.at_most(&spec.key("endpoints"), se.endpoints.len(), 4096);
    for (i, endpoint) in se.endpoints.iter().enumerate() {
        for name in endpoint.ports.keys() {
            // The CRD's rule is `size(key) < 63`, one shorter than Istio's.
            if name.len() >= 63 {
                out.refuse(
                    &spec.key("endpoints").index(i).key("ports").key(name),
                    "port name must be valid",
                );
            }
        }
    }
    if let Some(selector) = &se.workload_selector.0 {
        for (key, value) in &selector.labels {
            if value.len() > 63 {
                out.refuse(
                    &spec.key("workloadSelector").key("labels").key(key),
                    "a label value may be at most 63 characters",
                );
            }
        }
    }
}

fn gateway(out: &mut Schema, spec: &FieldPath, gw: &Gateway) {
    for (i, server) in gw.servers.iter().enumerate() {
        let Some(tls) = &server.tls.0 else { continue };
        let at = spec.key("servers").index(i).key("tls");
        out.at_most(&at.key("credentialNames"), tls.credential_names.len(), 2);
        out.at_most(&at.key("tlsCertificates"), tls.tls_certificates.len(), 2);
        out.one_of(
            &at,
            &[
                ("credentialNames", !tls.credential_names.is_empty()),
                ("tlsCertificates", !tls.tls_certificates.is_empty()),
            ],
        );
        out.one_of(
            &at,
            &[
                ("credentialName", !tls.credential_name.is_empty()),
                ("credentialNames", !tls.credential_names.is_empty()),
            ],
        );
    }
}

fn destination_rule(out: &mut Schema, spec: &FieldPath, dr: &DestinationRule) {
    if let Some(policy) = &dr.traffic_policy {
        traffic_policy(out, &spec.key("trafficPolicy"), policy);
    }
    for (i, subset) in dr.subsets.iter().enumerate() {
        if let Some(policy) = &subset.traffic_policy {
            traffic_policy(
                out,
                &spec.key("subsets").index(i).key("trafficPolicy"),
                policy,
            );
        }
    }
    if let Some(selector) = &dr.workload_selector.0 {
        for (key, value) in &selector.match_labels {
            if value.len() > 63 {
                out.refuse(
                    &spec.key("workloadSelector").key("matchLabels").key(key),
                    "a label value may be at most 63 characters",
                );
            }
        }
    }
}

fn traffic_policy(out: &mut Schema, at: &FieldPath, policy: &TrafficPolicy) {
    if let Some(lb) = &policy.load_balancer {
        load_balancer(out, &at.key("loadBalancer"), lb);
    }
    if let Some(outlier) = &policy.outlier_detection.0 {
        for (i, code) in outlier
            .outlier_detection_http_error_codes
            .iter()
            .enumerate()
        {
            if !(100..=599).contains(code) {
                out.refuse(
                    &at.key("outlierDetection")
                        .key("outlierDetectionHttpErrorCodes")
                        .index(i),
                    format!("{code} is not an HTTP status code (100 to 599)"),
                );
            }
        }
    }
    if let Some(budget) = &policy.retry_budget.0
        && let Some(percent) = budget.percent
        && !(0.0..=100.0).contains(&percent)
    {
        out.refuse(
            &at.key("retryBudget").key("percent"),
            format!("{percent} is not between 0 and 100"),
        );
    }
    out.at_most(
        &at.key("portLevelSettings"),
        policy.port_level_settings.len(),
        4096,
    );
    for (i, level) in policy.port_level_settings.iter().enumerate() {
        if let Some(lb) = &level.load_balancer {
            load_balancer(
                out,
                &at.key("portLevelSettings").index(i).key("loadBalancer"),
                lb,
            );
        }
    }
}

fn load_balancer(out: &mut Schema, at: &FieldPath, lb: &LoadBalancerSettings) {
    out.one_of(
        at,
        &[
            ("simple", lb.simple.is_some()),
            ("consistentHash", lb.consistent_hash.0.is_some()),
        ],
    );
    if let Some(hash) = &lb.consistent_hash.0 {
        consistent_hash(out, &at.key("consistentHash"), hash);
    }
    if let Some(warmup) = &lb.warmup.0 {
        if let Some(percent) = warmup.minimum_percent
            && !(0.0..=100.0).contains(&percent)
        {
            out.refuse(
                &at.key("warmup").key("minimumPercent"),
                format!("{percent} is not between 0 and 100"),
            );
        }
        if let Some(aggression) = warmup.aggression
            && aggression < 0.0
        {
            out.refuse(
                &at.key("warmup").key("aggression"),
                format!("{aggression} is below 0"),
            );
        }
    }
}

fn consistent_hash(out: &mut Schema, at: &FieldPath, hash: &ConsistentHashLb) {
    out.one_of(
        at,
        &[
            ("httpHeaderName", hash.http_header_name.is_some()),
            ("httpCookie", hash.http_cookie.is_some()),
            ("useSourceIp", hash.use_source_ip.is_some()),
            (
                "httpQueryParameterName",
                hash.http_query_parameter_name.is_some(),
            ),
        ],
    );
    out.one_of(
        at,
        &[
            ("ringHash", hash.ring_hash.is_some()),
            ("maglev", hash.maglev.is_some()),
        ],
    );
}

fn virtual_service(out: &mut Schema, spec: &FieldPath, vs: &VirtualService) {
    for (i, route) in vs.http.iter().enumerate() {
        http_route(out, &spec.key("http").index(i), route);
    }
}

fn http_route(out: &mut Schema, at: &FieldPath, route: &HttpRoute) {
    for (j, m) in route.matches.iter().enumerate() {
        let at = at.key("match").index(j);
        for (field, value) in [
            ("uri", &m.uri.0),
            ("scheme", &m.scheme.0),
            ("method", &m.method.0),
            ("authority", &m.authority.0),
        ] {
            if let Some(value) = value {
                out.string_match(&at.key(field), value);
            }
        }
        for (field, map) in [
            ("headers", &m.headers.0),
            ("withoutHeaders", &m.without_headers.0),
            ("queryParams", &m.query_params.0),
        ] {
            for (name, value) in map {
                out.string_match(&at.key(field).key(name), value);
            }
        }
    }
    if let Some(cors) = &route.cors_policy.0 {
        for (i, origin) in cors.allow_origins.iter().enumerate() {
            out.string_match(&at.key("corsPolicy").key("allowOrigins").index(i), origin);
        }
    }
    if let Some(fault) = &route.fault.0 {
        if let Some(abort) = &fault.abort {
            out.one_of(
                &at.key("fault").key("abort"),
                &[
                    ("httpStatus", abort.http_status.is_some()),
                    ("grpcStatus", abort.grpc_status.is_some()),
                    ("http2Error", abort.http2_error.is_some()),
                ],
            );
        }
        if let Some(delay) = &fault.delay {
            out.one_of(
                &at.key("fault").key("delay"),
                &[
                    ("fixedDelay", delay.fixed_delay.is_some()),
                    ("exponentialDelay", delay.exponential_delay.is_some()),
                ],
            );
        }
    }
    if let Some(redirect) = &route.redirect.0 {
        out.one_of(
            &at.key("redirect"),
            &[
                ("port", redirect.port.is_some()),
                ("derivePort", redirect.derive_port.is_some()),
            ],
        );
    }
    if let Some(body) = route
        .direct_response
        .0
        .as_ref()
        .and_then(|r| r.body.as_ref())
    {
        let at = at.key("directResponse").key("body");
        out.one_of(
            &at,
            &[
                ("string", body.string.is_some()),
                ("bytes", body.bytes.is_some()),
            ],
        );
        if let Some(bytes) = &body.bytes
            && !is_base64(bytes)
        {
            out.refuse(&at.key("bytes"), "not base64 (format: byte)");
        }
    }
}

/// Standard base64, padded, as the schema's `format: byte` takes it.
fn is_base64(text: &str) -> bool {
    let data = text.trim_end_matches('=');
    let padding = text.len() - data.len();
    text.len().is_multiple_of(4)
        && padding <= 2
        && data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}
