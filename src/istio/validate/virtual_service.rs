//! `ValidateVirtualService`, with its HTTP, TLS and TCP route rules and the analysis of rules
//! that can never match.

use super::helpers::{
    MatchKind, cors_header_name, destination, duration, export_to, gateway_names, go_fixed,
    go_quote, grpc_status, header_operation_name, header_value, http_status, ip_subnet,
    is_authority_header, is_dns1123_label, is_ip, is_jwt_claim, is_known_http_status, labels,
    match_header_name, match_kind, percentage, port, request_header_name, string_match,
    string_match_regexp, string_regexp, wildcard_domain, wildcard_domain_for_gateway,
};
use super::{Context, Out};
use crate::istio::api::{
    Headers, HttpMatchRequest, HttpRoute, HttpRouteDestination, RouteDestination, StringMatch,
    TlsRoute, VirtualService,
};
use crate::istio::object::IstioObject;
use crate::yaml::FieldPath;

pub(super) fn check(
    out: &mut Out,
    spec: &FieldPath,
    vs: &VirtualService,
    object: &IstioObject,
    cx: Context<'_>,
) {
    let tls = &vs.tls.0;
    let tcp = &vs.tcp.0;
    let delegate = vs.hosts.is_empty();
    if delegate {
        if !vs.gateways.is_empty() {
            out.error(
                &spec.key("gateways"),
                "delegate virtual service must have no gateways specified",
            );
        }
        if !tls.is_empty() {
            out.error(
                &spec.key("tls"),
                "delegate virtual service must have no tls route specified",
            );
        }
        if !tcp.is_empty() {
            out.error(
                &spec.key("tcp"),
                "delegate virtual service must have no tcp route specified",
            );
        }
    }
    // Set on VirtualServices Istio translates from the Gateway API.
    let semantics = object
        .annotations
        .get("internal.istio.io/route-semantics")
        .is_some_and(|v| v == "gateway");
    let applies_to_gateway = !vs.gateways.is_empty() && !vs.gateways.iter().any(|g| g == "mesh");
    let applies_to_mesh = !applies_to_gateway;
    if !vs.gateways.is_empty() {
        gateway_names(out, &spec.key("gateways"), &vs.gateways, semantics);
    }
    if !applies_to_gateway {
        for (i, route) in vs.http.iter().enumerate() {
            for (j, m) in route.matches.iter().enumerate() {
                let at = spec.key("http").index(i).key("match").index(j);
                for (field, map) in [
                    ("headers", &m.headers.0),
                    ("withoutHeaders", &m.without_headers.0),
                ] {
                    for key in map.keys().filter(|k| is_jwt_claim(k)) {
                        out.error(
                            &at.key(field).key(key),
                            format!(
                                "JWT claim based routing (key: {key}) is only supported for gateway, found no gateways: [{}]",
                                vs.gateways.join(" ")
                            ),
                        );
                    }
                }
            }
        }
    }
    let hosts_at = spec.key("hosts");
    let sni = tls
        .iter()
        .any(|route| route.matches.iter().any(|m| !m.sni_hosts.is_empty()));
    let mut all_valid = true;
    for (i, host) in vs.hosts.iter().enumerate() {
        let result = if applies_to_gateway {
            wildcard_domain_for_gateway(sni, host)
        } else {
            wildcard_domain(host)
        };
        match result {
            Err(error) => {
                if !is_ip(host) {
                    out.error(&hosts_at.index(i), error);
                    all_valid = false;
                }
            }
            Ok(()) if applies_to_mesh && host == "*" => {
                out.error(
                    &hosts_at.index(i),
                    "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                );
                all_valid = false;
            }
            Ok(()) => {}
        }
    }
    if all_valid {
        for (i, a) in vs.hosts.iter().enumerate() {
            for (j, b) in vs.hosts.iter().enumerate().skip(i + 1) {
                if host_matches(a, b) {
                    out.error(
                        &hosts_at.index(j),
                        format!("duplicate hosts in virtual service: {a} & {b}"),
                    );
                }
            }
        }
    }
    if vs.http.is_empty() && tcp.is_empty() && tls.is_empty() {
        out.error(spec, "http, tcp or tls must be provided in virtual service");
    }
    for (i, route) in vs.http.iter().enumerate() {
        let at = spec.key("http").index(i);
        http_route(out, &at, route, delegate, semantics);
    }
    for (i, route) in tls.iter().enumerate() {
        tls_route(out, &spec.key("tls").index(i), route, vs, semantics);
    }
    for (i, route) in tcp.iter().enumerate() {
        let at = spec.key("tcp").index(i);
        out.errors_only(|out| {
            for (j, m) in route.matches.iter().enumerate() {
                let at = at.key("match").index(j);
                for (k, subnet) in m.destination_subnets.iter().enumerate() {
                    out.check(&at.key("destinationSubnets").index(k), ip_subnet(subnet));
                }
                if m.port != 0 {
                    out.check(&at.key("port"), port(m.port.into()));
                }
                labels(out, &at.key("sourceLabels"), &m.source_labels);
                gateway_names(out, &at.key("gateways"), &m.gateways, false);
            }
            if route.route.is_empty() {
                out.error(&at.key("route"), "TCP route is required");
            }
            route_destinations(out, &at.key("route"), &route.route, semantics);
        });
    }
    export_to(
        out,
        &spec.key("exportTo"),
        cx.namespace,
        &vs.export_to,
        false,
        false,
    );
    unreachable_http(out, spec, &vs.http);
    unreachable_l4(
        out,
        &spec.key("tcp"),
        tcp.iter().map(|r| r.matches.as_slice()).collect(),
    );
    unreachable_l4(
        out,
        &spec.key("tls"),
        tls.iter().map(|r| r.matches.as_slice()).collect(),
    );
}

/// `host.Name.Matches`: equal, or one wildcard covering the other.
fn host_matches(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(a_rest), Some(b_rest)) => {
            if a.len() < b.len() {
                b_rest.ends_with(a_rest)
            } else {
                a_rest.ends_with(b_rest)
            }
        }
        (Some(a_rest), None) => b.ends_with(a_rest),
        (None, Some(b_rest)) => a.ends_with(b_rest),
        (None, None) => a == b,
    }
}

/// `host.Name.SubsetOf`.
fn host_subset_of(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(a_rest), Some(b_rest)) => a.len() >= b.len() && a_rest.ends_with(b_rest),
        (Some(_), None) => false,
        (None, Some(b_rest)) => a.ends_with(b_rest),
        (None, None) => a == b,
    }
}

/// `validateHTTPRoute`.
fn http_route(
    out: &mut Out,
    at: &FieldPath,
    route: &HttpRoute,
    delegate_vs: bool,
    semantics: bool,
) {
    conflicts(out, at, route, delegate_vs);
    out.errors_only(|out| match_requests(out, at, route));
    if let Some(headers) = &route.headers.0 {
        header_operations(out, &at.key("headers"), headers);
    }
    out.errors_only(|out| {
        if let Some(cors) = &route.cors_policy.0 {
            let at = at.key("corsPolicy");
            for (i, origin) in cors.allow_origins.iter().enumerate() {
                let here = at.key("allowOrigins").index(i);
                let value = match match_kind(origin) {
                    MatchKind::Exact(v) | MatchKind::Prefix(v) | MatchKind::Regex(v) => v,
                    MatchKind::None => "",
                };
                if value.is_empty() {
                    out.error(
                        &here,
                        format!("'{value}' is not a valid match type for CORS allow origins"),
                    );
                } else {
                    out.check(
                        &here,
                        string_match_regexp(origin, "corsPolicy.allowOrigins"),
                    );
                }
            }
            const METHODS: [&str; 10] = [
                "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
            ];
            for (i, method) in cors.allow_methods.iter().enumerate() {
                if !METHODS.contains(&method.as_str()) {
                    out.error(
                        &at.key("allowMethods").index(i),
                        format!("{} is not a supported HTTP method", go_quote(method)),
                    );
                }
            }
            for field in ["allowHeaders", "exposeHeaders"] {
                let names = if field == "allowHeaders" {
                    &cors.allow_headers
                } else {
                    &cors.expose_headers
                };
                for (i, name) in names.iter().enumerate() {
                    out.check(&at.key(field).index(i), cors_header_name(name));
                }
            }
            if let Some(max_age) = cors.max_age {
                out.check(&at.key("maxAge"), duration(max_age));
                if max_age.subsecond_nanos() > 0 {
                    out.listed(
                        &at.key("maxAge"),
                        "max_age duration is accurate only to seconds precision",
                    );
                }
            }
        }
        if let Some(fault) = &route.fault.0 {
            let at = at.key("fault");
            if fault.abort.is_none() && fault.delay.is_none() {
                out.listed(
                    &at,
                    "HTTP fault injection must have an abort and/or a delay",
                );
            }
            if let Some(abort) = &fault.abort {
                let at = at.key("abort");
                out.check(&at.key("percentage"), percentage(abort.percentage.as_ref()));
                if let Some(status) = &abort.grpc_status {
                    out.check(&at.key("grpcStatus"), grpc_status(status));
                } else if abort.http2_error.is_some() {
                    out.error(
                        &at.key("http2Error"),
                        "HTTP/2 abort fault injection not supported yet",
                    );
                } else if let Some(status) = abort.http_status {
                    out.check(&at.key("httpStatus"), http_status(status.into()));
                }
                // No error type: a warning, which Istio drops here.
            }
            if let Some(delay) = &fault.delay {
                let at = at.key("delay");
                out.check(&at.key("percentage"), percentage(delay.percentage.as_ref()));
                if let Some(fixed) = delay.fixed_delay {
                    out.check(&at.key("fixedDelay"), duration(fixed));
                } else if let Some(exponential) = delay.exponential_delay {
                    out.check(&at.key("exponentialDelay"), duration(exponential));
                    out.listed(
                        &at.key("exponentialDelay"),
                        "exponentialDelay not supported yet",
                    );
                }
            }
        }
    });
    if let Some(value) = route.mirror_percent.0 {
        if value > 100 {
            out.error(
                &at.key("mirrorPercent"),
                format!("mirror_percent must have a max value of 100 (it has {value})"),
            );
        }
        out.warning(
            &at.key("mirrorPercent"),
            "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
        );
    }
    if let Some(p) = &route.mirror_percentage.0 {
        let here = at.key("mirrorPercentage").key("value");
        if p.value > 100.0 {
            out.error(
                &here,
                format!(
                    "mirror_percentage must have a max value of 100 (it has {})",
                    go_fixed(p.value)
                ),
            );
        }
        if p.value < 0.0 {
            out.error(
                &here,
                format!(
                    "mirror_percentage must have a min value of 0 (it has {})",
                    go_fixed(p.value)
                ),
            );
        }
    }
    if let Some(mirror) = &route.mirror.0 {
        out.errors_only(|out| destination(out, &at.key("mirror"), mirror));
    }
    for (i, mirror) in route.mirrors.0.iter().enumerate() {
        let here = at.key("mirrors").index(i);
        let Some(d) = &mirror.destination else {
            out.error(&here, "destination is required for mirrors");
            continue;
        };
        destination(out, &here.key("destination"), d);
        if let Some(p) = &mirror.percentage {
            let here = here.key("percentage").key("value");
            if p.value > 100.0 {
                out.error(
                    &here,
                    format!(
                        "mirror percentage must have a max value of 100 (it has {})",
                        go_fixed(p.value)
                    ),
                );
            }
            if p.value < 0.0 {
                out.error(
                    &here,
                    format!(
                        "mirror percentage must have a min value of 0 (it has {})",
                        go_fixed(p.value)
                    ),
                );
            }
        }
    }
    if let Some(redirect) = &route.redirect.0 {
        out.check(&at.key("redirect"), http_redirect(redirect, &route.matches));
    }
    if let Some(response) = &route.direct_response.0 {
        let here = at.key("directResponse");
        if let Some(body) = &response.body {
            let size = match (&body.string, &body.bytes) {
                (Some(s), _) => s.len(),
                (None, Some(b)) => base64_decoded_len(b),
                (None, None) => 0,
            };
            if size > 1024 * 1024 {
                out.error(
                    &here.key("body"),
                    "large direct_responses may impact control plane performance, must be less than 1MB",
                );
            } else if size > 100 * 1024 {
                out.warning(
                    &here.key("body"),
                    "large direct_responses may impact control plane performance",
                );
            }
        }
        out.check(&here.key("status"), http_status(response.status.into()));
    }
    if let Some(retries) = &route.retries.0 {
        let here = at.key("retries");
        if retries.attempts < 0 {
            out.listed(&here.key("attempts"), "attempts cannot be negative");
        }
        if retries.attempts == 0
            && (retries.per_try_timeout.is_some()
                || !retries.retry_on.is_empty()
                || retries.retry_remote_localities.is_some())
        {
            out.error(
                &here,
                "http retry policy configured when attempts are set to 0 (disabled)",
            );
        }
        if let Some(d) = retries.per_try_timeout {
            out.check(&here.key("perTryTimeout"), duration(d));
        }
        if !retries.retry_on.is_empty() {
            const POLICIES: [&str; 16] = [
                "5xx",
                "gateway-error",
                "reset",
                "reset-before-request",
                "connect-failure",
                "retriable-4xx",
                "refused-stream",
                "retriable-status-codes",
                "retriable-headers",
                "envoy-ratelimited",
                "http3-post-connect-failure",
                "cancelled",
                "deadline-exceeded",
                "internal",
                "resource-exhausted",
                "unavailable",
            ];
            for policy in retries.retry_on.split(',') {
                let status = super::helpers::atoi(policy).unwrap_or(0);
                if !is_known_http_status(status) && !POLICIES.contains(&policy) {
                    out.error(
                        &here.key("retryOn"),
                        format!("{} is not a valid retryOn policy", go_quote(policy)),
                    );
                }
            }
        }
        if let Some(d) = retries.backoff {
            out.check(&here.key("backoff"), duration(d));
        }
    }
    if let Some(rewrite) = &route.rewrite.0 {
        let here = at.key("rewrite");
        let result = if !rewrite.uri.is_empty() && rewrite.uri_regex_rewrite.is_some() {
            Err("rewrite may only contain one of URI or UriRegexRewrite".to_string())
        } else if rewrite.uri.is_empty()
            && rewrite.uri_regex_rewrite.is_none()
            && rewrite.authority.is_empty()
        {
            Err("rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified".to_string())
        } else if let Some(regex) = &rewrite.uri_regex_rewrite {
            let cause = if regex.pattern.is_empty() || regex.rewrite.is_empty() {
                Err("UriRegexRewrite requires both Rewrite and Match fields to be specified".into())
            } else {
                string_regexp(&regex.pattern, "HTTPRewrite.UriRegexRewrite.Match")
            };
            cause.map_err(|cause| format!("UriRegexRewrite has errors\n{cause}"))
        } else {
            Ok(())
        };
        out.check(&here, result);
    }
    authority_rewrite(out, at, route);
    out.errors_only(|out| http_route_destinations(out, &at.key("route"), &route.route, semantics));
    if let Some(timeout) = route.timeout {
        out.check(&at.key("timeout"), duration(timeout));
    }
}

/// `validateHTTPRouteConflict`.
fn conflicts(out: &mut Out, at: &FieldPath, route: &HttpRoute, delegate_vs: bool) {
    let redirect = route.redirect.0.is_some();
    let direct = route.direct_response.0.is_some();
    let fault = route.fault.0.is_some();
    let rewrite = route.rewrite.0.is_some();
    let routes = !route.route.is_empty();
    if !delegate_vs && route.delegate.0.is_some() {
        // A root route: only the delegate may be set.
        if redirect {
            out.error(
                &at.key("redirect"),
                format!("root HTTP route {} must not specify redirect", route.name),
            );
        }
        if routes {
            out.error(
                &at.key("route"),
                format!("root HTTP route {} must not specify route", route.name),
            );
        }
        return;
    }
    if delegate_vs && route.delegate.0.is_some() {
        out.error(
            &at.key("delegate"),
            "delegate HTTP route cannot contain delegate",
        );
    }
    if redirect {
        let checks = [
            (
                routes,
                "route",
                "HTTP route cannot contain both route and redirect",
            ),
            (
                fault,
                "fault",
                "HTTP route cannot contain both fault and redirect",
            ),
            (
                rewrite,
                "rewrite",
                "HTTP route rule cannot contain both rewrite and redirect",
            ),
            (
                direct,
                "directResponse",
                "HTTP route rule cannot contain both direct_response and redirect",
            ),
        ];
        for (set, field, message) in checks {
            if set {
                out.error(&at.key(field), message);
            }
        }
    } else if direct {
        let checks = [
            (
                routes,
                "route",
                "HTTP route cannot contain both route and direct_response",
            ),
            (
                fault,
                "fault",
                "HTTP route cannot contain both fault and direct_response",
            ),
            (
                rewrite,
                "rewrite",
                "HTTP route rule cannot contain both rewrite and direct_response",
            ),
        ];
        for (set, field, message) in checks {
            if set {
                out.error(&at.key(field), message);
            }
        }
    } else if !routes {
        out.error(at, "HTTP route, redirect or direct_response is required");
    }
    if route.mirror.0.is_some() && !route.mirrors.0.is_empty() {
        out.error(
            &at.key("mirrors"),
            "HTTP route cannot contain both mirror and mirrors",
        );
    }
}

/// `validateHTTPRouteMatchRequest`.
fn match_requests(out: &mut Out, at: &FieldPath, route: &HttpRoute) {
    for (j, m) in route.matches.iter().enumerate() {
        let at = at.key("match").index(j);
        // A header match written `name: null` is dropped before this, as Istio's decoder drops it.
        for (name, value) in &m.headers.0 {
            let here = at.key("headers").key(name);
            out.check(&here, match_header_name(name));
            out.check(&here, string_match(value, "headers"));
        }
        for (name, value) in &m.without_headers.0 {
            let here = at.key("withoutHeaders").key(name);
            out.check(&here, match_header_name(name));
            if value.regex.as_deref() != Some("*") {
                out.check(&here, string_match(value, "withoutHeaders"));
            }
        }
        let strings: [(&str, &Option<StringMatch>); 4] = [
            ("uri", &m.uri.0),
            ("scheme", &m.scheme.0),
            ("method", &m.method.0),
            ("authority", &m.authority.0),
        ];
        for (field, value) in strings {
            if let Some(value) = value {
                let result = if field == "uri" {
                    string_match_regexp(value, field)
                } else {
                    string_match(value, field)
                };
                out.check(&at.key(field), result);
            }
        }
        for (name, value) in &m.query_params.0 {
            out.check(
                &at.key("queryParams").key(name),
                string_match(value, "queryParams"),
            );
        }
    }
    for (j, m) in route.matches.iter().enumerate() {
        let at = at.key("match").index(j);
        if m.port != 0 {
            out.check(&at.key("port"), port(m.port.into()));
        }
        labels(out, &at.key("sourceLabels"), &m.source_labels.0);
        gateway_names(out, &at.key("gateways"), &m.gateways, false);
        let namespace = &m.source_namespace.0;
        if !namespace.is_empty() && !is_dns1123_label(namespace) {
            out.error(
                &at.key("sourceNamespace"),
                format!("sourceNamespace match {namespace} is invalid"),
            );
        }
    }
}

/// The header operations of a route or a destination, in Istio's order.
fn header_operations(out: &mut Out, at: &FieldPath, headers: &Headers) {
    if let Some(request) = &headers.request {
        let at = at.key("request");
        for (op, map) in [("add", &request.add), ("set", &request.set)] {
            for (name, value) in map {
                let here = at.key(op).key(name);
                out.check(&here, request_header_name(name));
                out.check(&here, header_value(value));
            }
        }
        for (i, name) in request.remove.iter().enumerate() {
            out.check(&at.key("remove").index(i), header_operation_name(name));
        }
    }
    if let Some(response) = &headers.response {
        let at = at.key("response");
        for (op, map) in [("add", &response.add), ("set", &response.set)] {
            for (name, value) in map {
                let here = at.key(op).key(name);
                out.check(&here, header_operation_name(name));
                out.check(&here, header_value(value));
            }
        }
        for (i, name) in response.remove.iter().enumerate() {
            out.check(&at.key("remove").index(i), header_operation_name(name));
        }
    }
}

/// `validateHTTPRedirect` (Istio 1.31's, with `prefixRewrite`): its first error.
fn http_redirect(
    redirect: &crate::istio::api::HttpRedirect,
    matches: &[HttpMatchRequest],
) -> Result<(), String> {
    if !redirect.uri.is_empty() && !redirect.prefix_rewrite.is_empty() {
        return Err("redirect may only specify one of uri or prefix_rewrite".into());
    }
    if !redirect.prefix_rewrite.is_empty()
        && matches
            .iter()
            .any(|m| m.uri.0.as_ref().is_some_and(|u| u.prefix.is_none()))
    {
        return Err(
            "redirect prefix_rewrite requires all URI matches to use prefix match type".into(),
        );
    }
    let port_set = redirect.port.is_some() || redirect.derive_port.is_some();
    if redirect.uri.is_empty()
        && redirect.prefix_rewrite.is_empty()
        && redirect.authority.is_empty()
        && !port_set
        && redirect.scheme.is_empty()
    {
        return Err("redirect must specify URI, authority, scheme, or port".into());
    }
    if redirect.redirect_code != 0 && !(300..=399).contains(&redirect.redirect_code) {
        return Err(format!(
            "{} is not a valid redirect code, must be 3xx",
            redirect.redirect_code
        ));
    }
    if !redirect.scheme.is_empty() && redirect.scheme != "http" && redirect.scheme != "https" {
        return Err("invalid redirect scheme, must be \"http\" or \"https\"".into());
    }
    if let Some(p) = redirect.port
        && p > 0
    {
        port(p.into())?;
    }
    Ok(())
}

/// `validateAuthorityRewrite`: the authority is rewritten in one place only.
fn authority_rewrite(out: &mut Out, at: &FieldPath, route: &HttpRoute) {
    let mut current = route
        .rewrite
        .0
        .as_ref()
        .map(|r| r.authority.clone())
        .unwrap_or_default();
    let Some(request) = route.headers.0.as_ref().and_then(|h| h.request.as_ref()) else {
        return;
    };
    for (op, map) in [("set", &request.set), ("add", &request.add)] {
        for (name, value) in map {
            if !is_authority_header(name) {
                continue;
            }
            if !current.is_empty() {
                out.error(
                    &at.key("headers").key("request").key(op).key(name),
                    format!(
                        "authority header cannot be set multiple times: have {}, attempting to set {}",
                        go_quote(&current),
                        go_quote(value)
                    ),
                );
                return;
            }
            current = value.clone();
        }
    }
}

/// `validateHTTPRouteDestinations`.
fn http_route_destinations(
    out: &mut Out,
    at: &FieldPath,
    destinations: &[HttpRouteDestination],
    semantics: bool,
) {
    let mut total: i64 = 0;
    for (i, d) in destinations.iter().enumerate() {
        let here = at.index(i);
        if d.destination.is_none() {
            out.listed(&here.key("destination"), "destination is required");
        }
        if let Some(headers) = &d.headers.0 {
            header_operations(out, &here.key("headers"), headers);
        }
        if !semantics && let Some(dest) = &d.destination {
            destination(out, &here.key("destination"), dest);
        }
        if d.weight < 0 {
            out.error(&here.key("weight"), format!("weight {} < 0", d.weight));
        }
        total += i64::from(d.weight);
    }
    // Go sums in int32: a sum that wraps to zero counts as zero.
    if destinations.len() > 1 && (total as i32) == 0 {
        out.error(at, "total destination weight = 0");
    }
}

/// `validateRouteDestinations` (TLS and TCP routes).
fn route_destinations(
    out: &mut Out,
    at: &FieldPath,
    destinations: &[RouteDestination],
    semantics: bool,
) {
    let mut total: i64 = 0;
    for (i, d) in destinations.iter().enumerate() {
        let here = at.index(i);
        if d.destination.is_none() {
            out.listed(&here.key("destination"), "destination is required");
        }
        if !semantics && let Some(dest) = &d.destination {
            destination(out, &here.key("destination"), dest);
        }
        if d.weight < 0 {
            out.error(&here.key("weight"), format!("weight {} < 0", d.weight));
        }
        total += i64::from(d.weight);
    }
    if destinations.len() > 1 && (total as i32) == 0 {
        out.error(at, "total destination weight = 0");
    }
}

/// `validateTLSRoute`.
fn tls_route(
    out: &mut Out,
    at: &FieldPath,
    route: &TlsRoute,
    vs: &VirtualService,
    semantics: bool,
) {
    if route.matches.is_empty() {
        out.error(
            &at.key("match"),
            "TLS route must have at least one match condition",
        );
    }
    // `isGateway`: true unless `mesh` is named, so also for an empty list.
    let gateway = !vs.gateways.iter().any(|g| g == "mesh");
    for (j, m) in route.matches.iter().enumerate() {
        let at = at.key("match").index(j);
        if m.sni_hosts.is_empty() {
            out.error(
                &at.key("sniHosts"),
                "TLS match must have at least one SNI host",
            );
        }
        for (k, sni) in m.sni_hosts.iter().enumerate() {
            let here = at.key("sniHosts").index(k);
            let result = if gateway {
                wildcard_domain_for_gateway(true, sni)
            } else {
                wildcard_domain(sni)
            };
            if let Err(error) = result {
                if is_ip(sni) {
                    out.warning(
                        &here,
                        format!(
                            "using an IP address ({}) goes against SNI spec and most clients do not support this",
                            go_quote(sni)
                        ),
                    );
                } else {
                    out.error(&here, error);
                }
                continue;
            }
            if !vs.hosts.iter().any(|h| host_subset_of(sni, h)) {
                out.error(
                    &here,
                    format!(
                        "SNI host {} is not a compatible subset of any of the virtual service hosts: [{}]",
                        go_quote(sni),
                        vs.hosts.join(", ")
                    ),
                );
            }
        }
        for (k, subnet) in m.destination_subnets.iter().enumerate() {
            out.check(&at.key("destinationSubnets").index(k), ip_subnet(subnet));
        }
        if m.port != 0 {
            out.check(&at.key("port"), port(m.port.into()));
        }
        labels(out, &at.key("sourceLabels"), &m.source_labels);
        gateway_names(out, &at.key("gateways"), &m.gateways, false);
    }
    if route.route.is_empty() {
        out.error(&at.key("route"), "TLS route is required");
    }
    out.errors_only(|out| route_destinations(out, &at.key("route"), &route.route, semantics));
}

/// How a rule and a match are named in the analysis' warnings.
fn rule_name(route: Option<&HttpRoute>, index: usize) -> String {
    match route {
        Some(r) if !r.name.is_empty() => go_quote(&r.name),
        _ => format!("#{index}"),
    }
}

fn match_name(m: Option<&HttpMatchRequest>, index: usize) -> String {
    match m {
        Some(m) if !m.name.is_empty() => go_quote(&m.name),
        _ => format!("#{index}"),
    }
}

/// A prefix match, for the overlap analysis (`OverlappingMatchValidationForHTTPRoute`).
struct PrefixMatch {
    rule: String,
    name: String,
    prefix: String,
    port: u32,
    method: String,
    authority: String,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    without: Vec<(String, String)>,
}

fn exact_or_prefix(m: Option<&StringMatch>) -> String {
    match m.map(match_kind) {
        Some(MatchKind::Exact(e)) if !e.is_empty() => format!("exact:{e}"),
        Some(MatchKind::Prefix(p)) if !p.is_empty() => format!("prefix:{p}"),
        _ => String::new(),
    }
}

fn prefix_match(
    route: &HttpRoute,
    m: &HttpMatchRequest,
    rule: usize,
    index: usize,
) -> Option<PrefixMatch> {
    let prefix = m.uri.0.as_ref()?.prefix.clone().filter(|p| !p.is_empty())?;
    // A match without a method is a GET.
    let method = match exact_or_prefix(m.method.0.as_ref()) {
        none if none.is_empty() => "exact:GET".to_string(),
        method => method,
    };
    let pairs = |map: &std::collections::BTreeMap<String, StringMatch>| {
        map.iter()
            .map(|(k, v)| (k.clone(), exact_or_prefix(Some(v))))
            .collect()
    };
    Some(PrefixMatch {
        rule: rule_name(Some(route), rule),
        name: match_name(Some(m), index),
        prefix,
        port: m.port,
        method,
        authority: exact_or_prefix(m.authority.0.as_ref()),
        headers: pairs(&m.headers.0),
        query: pairs(&m.query_params.0),
        without: pairs(&m.without_headers.0),
    })
}

/// `coveredValidation`: whether the earlier match `a` covers the later `b`.
fn covered(a: &PrefixMatch, b: &PrefixMatch) -> bool {
    let same_or_a_starts_with_b = |x: &str, y: &str| x == y || x.starts_with(y);
    let maps = |x: &[(String, String)], y: &[(String, String)]| {
        x.len() == y.len()
            && x.iter().all(|(k, v)| {
                y.iter()
                    .find(|(yk, _)| yk == k)
                    .is_some_and(|(_, yv)| same_or_a_starts_with_b(v, yv))
            })
    };
    b.prefix.starts_with(&a.prefix)
        && a.port == b.port
        && same_or_a_starts_with_b(&a.method, &b.method)
        && same_or_a_starts_with_b(&a.authority, &b.authority)
        && maps(&a.headers, &b.headers)
        && maps(&a.query, &b.query)
        && maps(&a.without, &b.without)
}

/// `analyzeUnreachableHTTPRules`: warnings about rules and matches that can never be used.
fn unreachable_http(out: &mut Out, spec: &FieldPath, routes: &[HttpRoute]) {
    let at = spec.key("http");
    let mut seen: Vec<(HttpMatchRequest, usize)> = Vec::new();
    let mut empty_seen = false;
    let mut prefixes = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        let here = at.index(i);
        let rule = rule_name(Some(route), i);
        if route.matches.is_empty() {
            if empty_seen {
                out.warning(
                    &here,
                    format!("virtualService rule {rule} not used (only the last rule can have no matches)"),
                );
            }
            empty_seen = true;
            continue;
        }
        let mut duplicates = 0;
        for (j, m) in route.matches.iter().enumerate() {
            if empty_seen {
                out.warning(
                    &here,
                    format!(
                        "virtualService rule {rule} not used (route without matches defined before)"
                    ),
                );
                continue;
            }
            let mut unnamed = m.clone();
            unnamed.name.clear();
            if let Some((_, earlier)) = seen.iter().find(|(s, _)| *s == unnamed) {
                out.warning(
                    &here.key("match").index(j),
                    format!(
                        "virtualService rule {rule} match {} is not used (duplicate/overlapping match in rule {})",
                        match_name(Some(m), j),
                        rule_name(routes.get(*earlier), *earlier)
                    ),
                );
                duplicates += 1;
                continue;
            }
            seen.push((unnamed, i));
            if let Some(p) = prefix_match(route, m, i, j) {
                prefixes.push((p, here.key("match").index(j)));
            }
        }
        if duplicates == route.matches.len() {
            out.warning(
                &here,
                format!("virtualService rule {rule} not used (all matches used by prior rules)"),
            );
        }
    }
    for (i, (a, _)) in prefixes.iter().enumerate() {
        for (b, b_at) in prefixes.iter().skip(i + 1) {
            if b.prefix == a.prefix {
                continue;
            }
            if covered(a, b) {
                out.warning(
                    b_at,
                    format!(
                        "virtualService rule {} match {} of prefix {} is not used (duplicate/overlapping match in rule {} of prefix {} on {})",
                        b.rule, b.name, b.prefix, a.name, a.prefix, a.rule
                    ),
                );
            }
        }
    }
}

/// `analyzeUnreachableTCPRules` and `...TLSRules`: the same analysis, without names or prefixes.
fn unreachable_l4<M: PartialEq>(out: &mut Out, at: &FieldPath, routes: Vec<&[M]>) {
    let mut seen: Vec<(&M, usize)> = Vec::new();
    let mut empty_seen = false;
    for (i, matches) in routes.iter().enumerate() {
        let here = at.index(i);
        if matches.is_empty() {
            if empty_seen {
                out.warning(
                    &here,
                    format!(
                        "virtualService rule #{i} not used (only the last rule can have no matches)"
                    ),
                );
            }
            empty_seen = true;
            continue;
        }
        let mut duplicates = 0;
        for (j, m) in matches.iter().enumerate() {
            if empty_seen {
                out.warning(
                    &here,
                    format!(
                        "virtualService rule #{i} not used (route without matches defined before)"
                    ),
                );
                continue;
            }
            if let Some((_, earlier)) = seen.iter().find(|(s, _)| *s == m) {
                out.warning(
                    &here.key("match").index(j),
                    format!(
                        "virtualService rule #{i} match #{j} is not used (duplicate/overlapping match in rule #{earlier})"
                    ),
                );
                duplicates += 1;
            } else {
                seen.push((m, i));
            }
        }
        if duplicates == matches.len() {
            out.warning(
                &here,
                format!("virtualService rule #{i} not used (all matches used by prior rules)"),
            );
        }
    }
}

/// The length of what standard base64 `text` decodes to (padding aside).
fn base64_decoded_len(text: &str) -> usize {
    let data = text.trim_end_matches('=').len();
    data / 4 * 3 + (data % 4).saturating_sub(1)
}
