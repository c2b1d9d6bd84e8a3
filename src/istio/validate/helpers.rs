//! The helpers Istio's rules for several kinds share (`pkg/config/validation/agent`,
//! `pkg/config/labels`, `pkg/config/host`, ...): names, hosts, addresses, durations, labels,
//! `exportTo`, selectors, client TLS, connection pools, outlier detection, load balancing,
//! headers, string matches.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use ::regex::Regex;

use super::Out;
use crate::istio::api::{
    ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, Destination, Duration,
    H2UpgradePolicy, LoadBalancerSettings, LocalityLoadBalancerSetting, OutlierDetection, Percent,
    StringMatch,
};
use crate::yaml::FieldPath;

/// `ValidatePort`.
pub(super) fn port(number: i64) -> Result<(), String> {
    if (1..=65535).contains(&number) {
        Ok(())
    } else {
        Err(format!(
            "port number {number} must be in the range 1..65535"
        ))
    }
}

/// `labels.IsDNS1123Label`: `[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?`, at most 63 bytes.
pub(super) fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// `labels.IsWildcardDNS1123Label`: `*`, or a DNS-1123 label optionally after `*` or `*-`.
pub(super) fn is_wildcard_label(label: &str) -> bool {
    if label.len() > 63 {
        return false;
    }
    if label == "*" {
        return true;
    }
    let rest = label
        .strip_prefix("*-")
        .filter(|r| is_dns1123_label(r))
        .or_else(|| label.strip_prefix('*'))
        .unwrap_or(label);
    is_dns1123_label(rest)
}

/// `ValidatePortName`.
pub(super) fn port_name(name: &str) -> Result<(), String> {
    if is_dns1123_label(name) {
        Ok(())
    } else {
        Err(format!("invalid port name: {name}"))
    }
}

/// `CheckDNS1123Preconditions`.
fn dns_preconditions(domain: &str) -> Result<(), String> {
    if domain.len() > 255 {
        return Err(format!(
            "domain name {} too long (max 255)",
            go_quote(domain)
        ));
    }
    if domain.is_empty() {
        return Err("empty domain name not allowed".into());
    }
    Ok(())
}

/// Go's `strconv.Atoi` succeeds: an optional sign and decimal digits that fit 64 bits.
pub(super) fn atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `ValidateDNS1123Labels`.
fn dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let last = parts[parts.len() - 1];
    if atoi(last).is_some() {
        return Err(format!(
            "domain name {} invalid (top level domain {} cannot be all-numeric)",
            go_quote(domain),
            go_quote(last)
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "domain name {} invalid (label {} invalid)",
                go_quote(domain),
                go_quote(label)
            ));
        }
    }
    Ok(())
}

/// `ValidateFQDN`.
pub(super) fn fqdn(domain: &str) -> Result<(), String> {
    dns_preconditions(domain)?;
    dns1123_labels(domain)
}

/// `ValidateWildcardDomain`: the first label may be a wildcard; the rest is checked on its own
/// (so its messages quote the rest only).
pub(super) fn wildcard_domain(domain: &str) -> Result<(), String> {
    dns_preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (domain, None),
    };
    if !is_wildcard_label(first) {
        return Err(format!(
            "domain name {} invalid (label {} invalid)",
            go_quote(domain),
            go_quote(first)
        ));
    }
    match rest {
        Some(rest) => dns1123_labels(rest),
        None => Ok(()),
    }
}

const OUTBOUND_FORMAT: &str = "outbound_.<PORT>_._.<HOSTNAME>";

/// `ValidateWildcardDomainForVirtualServiceBoundToGateway`: with `sni`, an `outbound_` name of
/// the form [`OUTBOUND_FORMAT`] is accepted too.
pub(super) fn wildcard_domain_for_gateway(sni: bool, domain: &str) -> Result<(), String> {
    dns_preconditions(domain)?;
    if sni && domain.starts_with("outbound_") {
        let parts: Vec<&str> = domain.split('_').collect();
        if parts.len() < 4 {
            return Err(format!(
                "domain name {domain} invalid, should follow '{OUTBOUND_FORMAT}' format"
            ));
        }
        let direction = parts[0];
        let port = parts[1].trim_matches('.');
        let host = parts[3].trim_matches('.');
        if direction != "outbound" {
            return Err(format!(
                "domain name {} invalid (label {} invalid)",
                go_quote(domain),
                go_quote(direction)
            ));
        }
        if !port.bytes().any(|b| b.is_ascii_digit()) {
            return Err(format!(
                "domain name {} invalid (label {} invalid). should follow {OUTBOUND_FORMAT} format",
                go_quote(domain),
                go_quote(port)
            ));
        }
        if !host.bytes().any(|b| b.is_ascii_alphabetic()) {
            return Err(format!(
                "domain name {} invalid (label {} invalid). should follow {OUTBOUND_FORMAT} format",
                go_quote(domain),
                go_quote(host)
            ));
        }
        return Ok(());
    }
    wildcard_domain(domain)
}

/// `ValidatePartialWildCard`.
pub(super) fn partial_wildcard(host: &str) -> Result<(), String> {
    if host.contains('*') && host.len() != 1 && !host.starts_with("*.") {
        Err(format!("partial wildcard {} not allowed", go_quote(host)))
    } else {
        Ok(())
    }
}

/// Go's `netip.ParseAddr` accepts `s`: dotted IPv4 without leading zeros, or IPv6, with a
/// non-empty zone allowed on IPv6 only.
pub(super) fn is_ip(s: &str) -> bool {
    // Go decides by the first `.`, `:` or `%`.
    match s.find(['.', ':', '%']).map(|i| s.as_bytes()[i]) {
        Some(b'.') => is_ipv4(s),
        Some(b':') => {
            let (address, zone) = match s.split_once('%') {
                Some((address, zone)) => (address, Some(zone)),
                None => (s, None),
            };
            zone.is_none_or(|z| !z.is_empty()) && is_ipv6(address)
        }
        _ => false,
    }
}

fn is_ipv4(s: &str) -> bool {
    let fields: Vec<&str> = s.split('.').collect();
    fields.len() == 4
        && fields.iter().all(|f| {
            !f.is_empty()
                && f.len() <= 3
                && f.bytes().all(|b| b.is_ascii_digit())
                && !(f.len() > 1 && f.starts_with('0'))
                && f.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

fn is_ipv6(s: &str) -> bool {
    // An embedded IPv4 part follows Go's IPv4 rules (no leading zeros) too.
    if let Some(i) = s.rfind(':')
        && s[i + 1..].contains('.')
        && !is_ipv4(&s[i + 1..])
    {
        return false;
    }
    s.parse::<Ipv6Addr>().is_ok()
}

/// `ValidateIPAddress`.
pub(super) fn ip_address(s: &str) -> Result<(), String> {
    if is_ip(s) {
        Ok(())
    } else {
        Err(format!("{s} is not a valid IP"))
    }
}

/// Go's `netip.ParsePrefix` accepts `s`: an address without a zone, `/`, and a prefix length in
/// range written without a sign or leading zeros.
fn is_prefix(s: &str) -> bool {
    let Some((address, bits)) = s.rsplit_once('/') else {
        return false;
    };
    if address.contains('%') || !is_ip(address) {
        return false;
    }
    if bits.is_empty()
        || !bits.bytes().all(|b| b.is_ascii_digit())
        || (bits.len() > 1 && bits.starts_with('0'))
    {
        return false;
    }
    let max = if address.parse::<Ipv4Addr>().is_ok() && !address.contains(':') {
        32
    } else {
        128
    };
    bits.parse::<u32>().is_ok_and(|b| b <= max)
}

/// `ValidateIPSubnet`: CIDR when there is exactly one `/`, else an address.
pub(super) fn ip_subnet(s: &str) -> Result<(), String> {
    if s.matches('/').count() == 1 {
        if is_prefix(s) {
            Ok(())
        } else {
            Err(format!("{s} is not a valid CIDR block"))
        }
    } else {
        ip_address(s)
    }
}

/// `ValidateUnixAddress` of the text after `unix://`.
pub(super) fn unix_address(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("unix address must not be empty".into());
    }
    if path.starts_with('@') {
        return Ok(());
    }
    if !path.starts_with('/') || path.ends_with('/') {
        return Err(format!("{path} is not an absolute path to a file"));
    }
    Ok(())
}

/// `ValidateDuration`.
pub(super) fn duration(d: Duration) -> Result<(), String> {
    if d.nanos < 1_000_000 {
        return Err("duration must be greater than 1ms".into());
    }
    if d.nanos % 1_000_000 != 0 {
        return Err("only durations to ms precision are supported".into());
    }
    Ok(())
}

/// `ValidatePercent`.
pub(super) fn percent(value: i32) -> Result<(), String> {
    if (0..=100).contains(&value) {
        Ok(())
    } else {
        Err(format!("percentage {value} is not in range 0..100"))
    }
}

/// `validatePercentage`.
pub(super) fn percentage(p: Option<&Percent>) -> Result<(), String> {
    match p {
        Some(p) if p.value < 0.0 || p.value > 100.0 || (p.value > 0.0 && p.value < 0.0001) => {
            Err(format!(
                "percentage {} is neither 0.0, nor in range [0.0001, 100.0]",
                go_float(p.value)
            ))
        }
        _ => Ok(()),
    }
}

/// `labels.Instance.Validate`: one error per bad key or value, made inside a multierror.
pub(super) fn labels(out: &mut Out, at: &FieldPath, labels: &BTreeMap<String, String>) {
    static KEY: LazyLock<Regex> = LazyLock::new(|| {
        let label = "[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?";
        Regex::new(&format!(
            r"^({label}(?:\.{label})*/)?((?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
        ))
        .expect("a valid pattern")
    });
    static VALUE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^((?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").expect("a valid pattern")
    });
    for (key, value) in labels {
        let here = at.key(key);
        match KEY.captures(key) {
            None => out.listed(&here, format!("invalid tag key: {}", go_quote(key))),
            Some(found) => {
                let prefix = found.get(1).map_or(0, |m| m.len());
                let name = found.get(2).map_or(0, |m| m.len());
                if prefix > 0 && prefix - 1 > 253 {
                    out.listed(
                        &here,
                        format!(
                            "invalid tag key: {} (DNS prefix is too long)",
                            go_quote(key)
                        ),
                    );
                } else if name > 63 {
                    out.listed(
                        &here,
                        format!("invalid tag key: {} (name is too long)", go_quote(key)),
                    );
                }
            }
        }
        if !VALUE.is_match(value) {
            out.listed(&here, format!("invalid tag value: {}", go_quote(value)));
        }
    }
}

/// `validateExportTo`.
pub(super) fn export_to(
    out: &mut Out,
    at: &FieldPath,
    namespace: &str,
    export_to: &[String],
    service_entry: bool,
    dr_with_selector: bool,
) {
    if export_to.is_empty() {
        return;
    }
    let mut set: BTreeSet<&str> = BTreeSet::new();
    for (i, entry) in export_to.iter().enumerate() {
        let here = at.index(i);
        let key = if entry == "." { namespace } else { entry };
        if set.contains(key) {
            if key != entry {
                out.error(
                    &here,
                    format!("duplicate entries in exportTo: . and current namespace {namespace}"),
                );
            } else {
                out.error(
                    &here,
                    format!("duplicate entries in exportTo for entry {entry}"),
                );
            }
        } else if service_entry && entry == "~" {
            set.insert(key);
        } else {
            // `visibility.Instance.Validate` of the key.
            match key {
                "." | "*" => {
                    set.insert(key);
                }
                "~" => out.error(
                    &here,
                    "exportTo ~ (none) is not allowed for Istio configuration objects",
                ),
                _ if is_dns1123_label(key) => {
                    set.insert(key);
                }
                _ => out.error(
                    &here,
                    "only .,*, or a valid DNS 1123 label is allowed as exportTo entry",
                ),
            }
        }
    }
    if dr_with_selector && !set.is_empty() {
        if set.contains(namespace) {
            if set.len() > 1 {
                out.error(
                    at,
                    "destination rule with workload selector cannot have multiple entries in exportTo",
                );
            }
        } else {
            out.error(
                at,
                "destination rule with workload selector cannot have exportTo beyond current namespace",
            );
        }
    }
    if set.contains("*") && export_to.len() > 1 {
        out.error(
            at,
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }
    if set.contains("~") && export_to.len() > 1 {
        out.error(at, "cannot export service entry to no one (~) and someone");
    }
}

/// The errors of a workload selector's labels (`ValidateAlphaWorkloadSelector`,
/// `validateWorkloadSelector`), each with the label's path.
pub(super) fn selector_errors(
    at: &FieldPath,
    labels: &BTreeMap<String, String>,
) -> Vec<(FieldPath, String)> {
    let mut errors = Vec::new();
    for (key, value) in labels {
        let pair = go_quote(&format!("{key}={value}"));
        if key.is_empty() {
            errors.push((
                at.key(key),
                format!("empty key is not supported in selector: {pair}"),
            ));
        }
        if key.contains('*') || value.contains('*') {
            errors.push((
                at.key(key),
                format!("wildcard is not supported in selector: {pair}"),
            ));
        }
    }
    errors
}

/// `validateSubsetName`.
pub(super) fn subset_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("subset name cannot be empty".into());
    }
    if !is_dns1123_label(name) {
        return Err(format!("subset name is invalid: {name}"));
    }
    Ok(())
}

/// `validateDestination`.
pub(super) fn destination(out: &mut Out, at: &FieldPath, d: &Destination) {
    if d.host == "*" {
        out.error(
            &at.key("host"),
            format!("invalid destination host {}", d.host),
        );
    } else {
        out.check(&at.key("host"), wildcard_domain(&d.host));
    }
    if !d.subset.is_empty() {
        out.check(&at.key("subset"), subset_name(&d.subset));
    }
    if let Some(p) = &d.port {
        out.check(&at.key("port").key("number"), port(p.number.into()));
    }
}

/// `validateGatewayNames`: stops at the first name without a `/`, as Istio does.
pub(super) fn gateway_names(out: &mut Out, at: &FieldPath, names: &[String], semantics: bool) {
    for (i, name) in names.iter().enumerate() {
        let here = at.index(i);
        let Some((namespace, gateway)) = name.split_once('/') else {
            if name.contains('.') {
                let parts: Vec<&str> = name.split('.').collect();
                out.warning(
                    &here,
                    format!(
                        "using legacy gatewayName format {}; prefer the <namespace>/<name> format: {}",
                        go_quote(name),
                        go_quote(&format!("{}/{}", parts[1], parts[0]))
                    ),
                );
            }
            out.check(&here, fqdn(name));
            return;
        };
        if namespace.is_empty() || gateway.is_empty() {
            out.error(&here, "config namespace and gateway name cannot be empty");
        }
        if !is_dns1123_label(namespace) {
            out.error(
                &here,
                format!("invalid value for namespace: {}", go_quote(namespace)),
            );
        }
        if !is_dns1123_label(gateway) && !semantics {
            out.error(
                &here,
                format!("invalid value for gateway name: {}", go_quote(gateway)),
            );
        }
    }
}

/// `agent.ValidateTLS` of a DestinationRule's client TLS settings.
pub(super) fn client_tls(out: &mut Out, at: &FieldPath, namespace: &str, tls: &ClientTlsSettings) {
    let credential = tls.credential_name.0.as_str();
    if let Some(rest) = credential.strip_prefix("configmap://") {
        let split: Vec<&str> = rest.split('/').collect();
        let problem = if split.len() <= 1 {
            Some(format!(
                "invalid resource name {}. Expected namespace and name",
                go_quote(credential)
            ))
        } else if split[0].is_empty() {
            Some(format!(
                "invalid resource name {}. Expected namespace",
                go_quote(credential)
            ))
        } else if split[1].is_empty() {
            Some(format!(
                "invalid resource name {}. Expected name",
                go_quote(credential)
            ))
        } else {
            None
        };
        let here = at.key("credentialName");
        match problem {
            Some(problem) => out.error(
                &here,
                format!("invalid configmap:// credentialName: {problem}"),
            ),
            None if split[0] != namespace || namespace.is_empty() => out.error(
                &here,
                format!(
                    "invalid configmap:// credentialName: namespace must match the configuration namespace {}",
                    go_quote(namespace)
                ),
            ),
            None => {}
        }
    }
    if tls.insecure_skip_verify == Some(true) {
        let here = at.key("insecureSkipVerify");
        // `SubjectAltNames != nil`: written at all, even as an empty list.
        let sans = !tls.subject_alt_names.is_empty();
        if tls.mode == ClientTlsMode::Simple
            && (!tls.ca_certificates.is_empty() || !credential.is_empty() || sans)
        {
            out.error(
                &here,
                "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
        if tls.mode == ClientTlsMode::Mutual && (!tls.ca_certificates.is_empty() || sans) {
            out.error(
                &here,
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
    }
    if matches!(tls.mode, ClientTlsMode::Simple | ClientTlsMode::Mutual) && !credential.is_empty() {
        if !tls.client_certificate.0.is_empty()
            || !tls.ca_certificates.is_empty()
            || !tls.private_key.0.is_empty()
            || !tls.ca_crl.0.is_empty()
        {
            out.error(
                &at.key("credentialName"),
                "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
            );
        }
        return;
    }
    if tls.mode == ClientTlsMode::Mutual {
        if tls.client_certificate.0.is_empty() {
            out.error(
                &at.key("clientCertificate"),
                "client certificate required for mutual tls",
            );
        }
        if tls.private_key.0.is_empty() {
            out.error(&at.key("privateKey"), "private key required for mutual tls");
        }
    }
}

/// `validateConnectionPool`.
pub(super) fn connection_pool(out: &mut Out, at: &FieldPath, pool: &ConnectionPoolSettings) {
    if pool.http.is_none() && pool.tcp.is_none() {
        out.error(at, "connection pool must have at least one field");
        return;
    }
    if let Some(http) = &pool.http {
        let at = at.key("http");
        let negative = [
            (
                http.http1_max_pending_requests,
                "http1MaxPendingRequests",
                "http1 max pending requests must be non-negative",
            ),
            (
                http.http2_max_requests,
                "http2MaxRequests",
                "http2 max requests must be non-negative",
            ),
            (
                http.max_requests_per_connection,
                "maxRequestsPerConnection",
                "max requests per connection must be non-negative",
            ),
            (
                http.max_retries,
                "maxRetries",
                "max retries must be non-negative",
            ),
        ];
        for (value, field, message) in negative {
            if value < 0 {
                out.error(&at.key(field), message);
            }
        }
        if let Some(idle) = http.idle_timeout {
            out.check(&at.key("idleTimeout"), duration(idle));
        }
        if http.h2_upgrade_policy == H2UpgradePolicy::Upgrade && http.use_client_protocol {
            out.error(
                &at.key("useClientProtocol"),
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
        if http.max_concurrent_streams < 0 {
            out.error(
                &at.key("maxConcurrentStreams"),
                "max concurrent streams must be non-negative",
            );
        }
        // Istio 1.31's.
        if let Some(keepalive) = &http.http2_keep_alive {
            let at = at.key("http2KeepAlive");
            match keepalive.interval {
                None => out.error(&at, "http2 keepalive interval is required"),
                Some(d) => out.check(&at.key("interval"), duration(d)),
            }
            match keepalive.timeout {
                None => out.error(&at, "http2 keepalive timeout is required"),
                Some(d) => out.check(&at.key("timeout"), duration(d)),
            }
        }
    }
    if let Some(tcp) = &pool.tcp {
        let at = at.key("tcp");
        if tcp.max_connections < 0 {
            out.error(
                &at.key("maxConnections"),
                "max connections must be non-negative",
            );
        }
        if let Some(d) = tcp.connect_timeout {
            out.check(&at.key("connectTimeout"), duration(d));
        }
        if let Some(d) = tcp.max_connection_duration {
            out.check(&at.key("maxConnectionDuration"), duration(d));
        }
        // 0s (to the millisecond) turns the timeout off.
        if let Some(d) = tcp.idle_timeout
            && d.millis() != 0
        {
            out.check(&at.key("idleTimeout"), duration(d));
        }
        if let Some(keepalive) = &tcp.tcp_keepalive {
            let at = at.key("tcpKeepalive");
            if let Some(d) = keepalive.time {
                out.check(&at.key("time"), duration(d));
            }
            if let Some(d) = keepalive.interval {
                out.check(&at.key("interval"), duration(d));
            }
        }
    }
}

/// `validateOutlierDetection`.
pub(super) fn outlier_detection(out: &mut Out, at: &FieldPath, outlier: &OutlierDetection) {
    if let Some(d) = outlier.base_ejection_time {
        out.check(&at.key("baseEjectionTime"), duration(d));
    }
    if outlier.consecutive_errors != 0 {
        out.warning(
            &at.key("consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        );
    }
    if !outlier.split_external_local_origin_errors
        && outlier.consecutive_local_origin_failures.unwrap_or(0) > 0
    {
        out.error(
            &at.key("consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
        );
    }
    if let Some(d) = outlier.interval {
        out.check(&at.key("interval"), duration(d));
    }
    out.check(
        &at.key("maxEjectionPercent"),
        percent(outlier.max_ejection_percent),
    );
    out.check(
        &at.key("minHealthPercent"),
        percent(outlier.min_health_percent),
    );
}

/// `validateLoadBalancer`; `outlier` is the outlier detection at the same level.
pub(super) fn load_balancer(
    out: &mut Out,
    at: &FieldPath,
    lb: &LoadBalancerSettings,
    outlier: Option<&OutlierDetection>,
) {
    if let Some(hash) = &lb.consistent_hash.0 {
        let at = at.key("consistentHash");
        if let Some(cookie) = &hash.http_cookie {
            let at = at.key("httpCookie");
            if cookie.name.is_empty() {
                out.error(&at, "name required for HttpCookie");
            }
            let mut names = BTreeSet::new();
            for (i, attribute) in cookie.attributes.iter().enumerate() {
                let here = at.key("attributes").index(i);
                if attribute.name.is_empty() {
                    out.error(&here, "cookie attribute name cannot be empty");
                    continue;
                }
                if !names.insert(attribute.name.as_str()) {
                    out.error(
                        &here,
                        format!("duplicate cookie attribute name: {}", attribute.name),
                    );
                }
            }
        }
        if hash.minimum_ring_size != 0 {
            out.warning(
                &at.key("minimumRingSize"),
                "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead",
            );
            if hash.ring_hash.is_some() || hash.maglev.is_some() {
                out.error(
                    &at.key("minimumRingSize"),
                    "only one of MinimumRingSize or Maglev/Ringhash can be specified",
                );
            }
        }
        if let Some(maglev) = &hash.maglev {
            let here = at.key("maglev").key("tableSize");
            if maglev.table_size == 0 {
                out.error(&here, "tableSize must be set for maglev");
            }
            if maglev.table_size >= 5_000_011 {
                out.error(&here, "tableSize must be less than 5000011 for maglev");
            }
            if !envoy_is_prime(maglev.table_size) {
                out.error(&here, "tableSize must be a prime number for maglev");
            }
        }
    }
    // Istio 1.31's, before either setting is checked.
    if lb.locality_lb_setting.0.is_some() && lb.zone_aware_lb_setting.0.is_some() {
        out.error(
            &at.key("zoneAwareLbSetting"),
            "only one of localityLbSetting and zoneAwareLbSetting can be set",
        );
    }
    if let Some(locality) = &lb.locality_lb_setting.0 {
        locality_lb(out, &at.key("localityLbSetting"), locality, outlier);
    }
    if let Some(zone_aware) = &lb.zone_aware_lb_setting.0 {
        let at = at.key("zoneAwareLbSetting");
        for (i, label) in zone_aware.failover_priority.iter().enumerate() {
            if TOPOLOGY_LABELS.contains(&label.as_str()) {
                out.error(
                    &at.key("failoverPriority").index(i),
                    format!(
                        "'failover_priority' for zone aware lb must not use topology label '{label}'; region- and zone-level routing are handled automatically"
                    ),
                );
            }
        }
        if (!zone_aware.failover.is_empty() || !zone_aware.failover_priority.is_empty())
            && outlier.is_none()
        {
            out.warning(
                &at,
                "outlier detection policy must be provided for failover",
            );
        }
        for (i, failover) in zone_aware.failover.iter().enumerate() {
            let here = at.key("failover").index(i);
            if failover.from == failover.to {
                out.error(
                    &here,
                    "zone aware lb failover settings must specify different regions",
                );
            }
            if failover.from.contains('/') || failover.to.contains('/') {
                out.error(
                    &here,
                    "zone aware lb failover only specifies region; zone and subzone failover are handled automatically",
                );
            }
            if failover.from.contains('*') || failover.to.contains('*') {
                out.error(
                    &here,
                    "zone aware lb failover region should not contain '*' wildcard",
                );
            }
        }
    }
    if let Some(warmup) = &lb.warmup.0 {
        let at = at.key("warmup");
        match warmup.duration {
            None => out.error(&at, "duration is required"),
            Some(d) => out.check(&at.key("duration"), duration(d)),
        }
        if warmup.minimum_percent.unwrap_or(0.0) > 100.0 {
            out.error(
                &at.key("minimumPercent"),
                "minimumPercent value should be less than or equal to 100",
            );
        }
        // Istio 1.30 refuses below 1, 1.31 only 0 and below: the stricter rule, in 1.30's words.
        if warmup.aggression.is_some_and(|a| a < 1.0) {
            out.error(
                &at.key("aggression"),
                "aggression should be greater than or equal to 1",
            );
        }
    }
}

const TOPOLOGY_LABELS: [&str; 3] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

/// Envoy's primality test, which Istio copies: 1, 2 and 3 are prime, 0 is not.
fn envoy_is_prime(x: u64) -> bool {
    if x != 0 && x < 4 {
        return true;
    }
    if x & 1 == 0 {
        return false;
    }
    let limit = (x as f64).sqrt() as u64;
    let mut factor = 3;
    while factor <= limit {
        if x.is_multiple_of(factor) {
            return false;
        }
        factor += 2;
    }
    true
}

/// `ValidateLocalityLbSetting`.
fn locality_lb(
    out: &mut Out,
    at: &FieldPath,
    lb: &LocalityLoadBalancerSetting,
    outlier: Option<&OutlierDetection>,
) {
    if !lb.distribute.is_empty() && !lb.failover.is_empty() {
        out.error(
            at,
            "can not simultaneously specify 'distribute' and 'failover'",
        );
        return;
    }
    if !lb.failover.is_empty() {
        for (i, label) in lb.failover_priority.iter().enumerate() {
            if TOPOLOGY_LABELS.contains(&label.as_str()) {
                out.error(
                    &at.key("failoverPriority").index(i),
                    format!(
                        "can not simultaneously set 'failover' and topology label '{label}' in 'failover_priority'"
                    ),
                );
                return;
            }
        }
    }
    let mut sources = Vec::new();
    for (i, distribute) in lb.distribute.iter().enumerate() {
        let here = at.key("distribute").index(i);
        sources.push(distribute.from.as_str());
        let mut total: u64 = 0;
        for weight in distribute.to.values() {
            if *weight == 0 || *weight > 100 {
                out.error(&here.key("to"), "locality weight must be in range [1, 100]");
                return;
            }
            total += u64::from(*weight);
        }
        if total != 100 {
            out.error(
                &here.key("to"),
                format!("total locality weight {total} != 100"),
            );
            return;
        }
        let targets: Vec<&str> = distribute.to.keys().map(String::as_str).collect();
        out.check(&here.key("to"), localities(&targets));
    }
    out.check(&at.key("distribute"), localities(&sources));
    if (!lb.failover.is_empty() || !lb.failover_priority.is_empty()) && outlier.is_none() {
        out.warning(at, "outlier detection policy must be provided for failover");
    }
    for (i, failover) in lb.failover.iter().enumerate() {
        let here = at.key("failover").index(i);
        if failover.from == failover.to {
            out.error(
                &here,
                "locality lb failover settings must specify different regions",
            );
        }
        if failover.from.contains('/') || failover.to.contains('/') {
            out.error(&here, "locality lb failover only specify region");
        }
        if failover.from.contains('*') || failover.to.contains('*') {
            out.error(
                &here,
                "locality lb failover region should not contain '*' wildcard",
            );
        }
    }
}

/// `validateLocalities`: the first problem only.
fn localities(localities: &[&str]) -> Result<(), String> {
    // region → zone → subzones, with `*` marking "all of it".
    let mut seen: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    let overlap = |l: &str| Err(format!("locality {l} overlap with previous specified ones"));
    for locality in localities {
        let stars = locality.matches('*').count();
        if stars > 0 && (stars > 1 || !locality.ends_with('*')) {
            return Err(format!(
                "locality {locality} wildcard '*' number can not exceed 1 and must be in the end"
            ));
        }
        if seen.contains_key("*") {
            return overlap(locality);
        }
        let items: Vec<&str> = locality.splitn(3, '/').collect();
        if items.iter().any(|i| i.is_empty()) {
            return Err(format!(
                "locality {locality} must not contain empty region/zone/subzone info"
            ));
        }
        let region = items[0];
        match items.len() {
            1 => {
                if seen.contains_key(region) {
                    return overlap(locality);
                }
                seen.insert(region, BTreeMap::from([("*", BTreeSet::from(["*"]))]));
            }
            2 => {
                let zone = items[1];
                match seen.get_mut(region) {
                    Some(zones) => {
                        if zones.contains_key("*") || zones.contains_key(zone) {
                            return overlap(locality);
                        }
                        zones.insert(zone, BTreeSet::from(["*"]));
                    }
                    None => {
                        seen.insert(region, BTreeMap::from([(zone, BTreeSet::from(["*"]))]));
                    }
                }
            }
            _ => {
                let (zone, subzone) = (items[1], items[2]);
                match seen.get_mut(region) {
                    Some(zones) => {
                        if zones.contains_key("*") {
                            return overlap(locality);
                        }
                        match zones.get_mut(zone) {
                            Some(subzones) => {
                                if subzones.contains("*") || subzones.contains(subzone) {
                                    return overlap(locality);
                                }
                                subzones.insert(subzone);
                            }
                            None => {
                                zones.insert(zone, BTreeSet::from([subzone]));
                            }
                        }
                    }
                    None => {
                        seen.insert(region, BTreeMap::from([(zone, BTreeSet::from([subzone]))]));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The JWT claim forms of a header name (`jwt.ToRoutingClaim(...).Match`):
/// `@request.auth.claims.a[.b]` and `@request.auth.claims[a][b]`, the prefix in any case.
pub(super) fn is_jwt_claim(name: &str) -> bool {
    const PREFIX: &str = "@request.auth.claims";
    let Some(head) = name.get(..PREFIX.len()) else {
        return false;
    };
    if !head.eq_ignore_ascii_case(PREFIX) {
        return false;
    }
    let rest = &name[PREFIX.len()..];
    (rest.starts_with('.') && rest.len() > 1)
        || (rest.starts_with('[') && rest.ends_with(']') && rest.len() > 2)
}

/// RFC 7230's token characters, as Istio's pattern has them (its `+-.` is a range, so `,` is
/// one too).
fn is_header_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+,-.^_`|~".contains(&b))
}

/// `ValidateHTTPHeaderNameOrJwtClaimRoute`: a match's header name.
pub(super) fn match_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if is_jwt_claim(name)
        || [":method", ":scheme", ":authority", ":path", ":status"].contains(&name)
    {
        return Ok(());
    }
    if !is_header_token(name) {
        return Err(format!("header name {name} is not a valid header name"));
    }
    Ok(())
}

/// `ValidateCORSHTTPHeaderName`.
pub(super) fn cors_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if name == "*" || is_header_token(name) {
        return Ok(());
    }
    Err(format!("header name {name} is not a valid header name"))
}

fn is_internal_header(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

pub(super) fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// `ValidateHTTPHeaderWithAuthorityOperationName`: a request header to add or set.
pub(super) fn request_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if is_internal_header(name) && !is_authority_header(name) {
        return Err(format!(
            "invalid header {}: header cannot have \":\" prefix",
            go_quote(name)
        ));
    }
    Ok(())
}

/// `ValidateHTTPHeaderOperationName`: a request header to remove, a response header to change.
pub(super) fn header_operation_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if name.eq_ignore_ascii_case("host") {
        return Err(format!(
            "invalid header {}: cannot set Host header",
            go_quote(name)
        ));
    }
    if is_internal_header(name) {
        return Err(format!(
            "invalid header {}: header cannot have \":\" prefix",
            go_quote(name)
        ));
    }
    Ok(())
}

/// `ValidateHTTPHeaderValue`: no control characters but TAB, and Envoy's `%VAR%` syntax.
pub(super) fn header_value(value: &str) -> Result<(), String> {
    if value
        .chars()
        .any(|c| matches!(c, '\u{0}'..='\u{8}' | '\u{a}'..='\u{1f}' | '\u{7f}'))
    {
        return Err(format!("header value configuration {value} is invalid"));
    }
    envoy_header_format(value).map_err(|e| format!("header value configuration: {e}"))
}

/// Envoy's header value formatter grammar (`header_parser.cc`, which Istio ports): literal text,
/// `%%`, and `%VAR%` or `%VAR(args)%`.
fn envoy_header_format(value: &str) -> Result<(), String> {
    #[derive(PartialEq)]
    enum State {
        Literal,
        VariableName,
        ExpectArray,
        ExpectString,
        String,
        ExpectArrayDelimiterOrEnd,
        ExpectArgsEnd,
        ExpectVariableEnd,
    }
    let bytes = value.as_bytes();
    let mut state = State::Literal;
    let mut pos = 0;
    let prefix = "invalid header configuration.";
    while pos < bytes.len() {
        let ch = bytes[pos];
        let has_next = pos + 1 < bytes.len();
        match state {
            State::Literal => {
                if ch == b'%' {
                    if !has_next {
                        return Err(format!("{prefix} Un-escaped %"));
                    }
                    if bytes[pos + 1] == b'%' {
                        pos += 1;
                    } else {
                        state = State::VariableName;
                    }
                }
            }
            State::VariableName => {
                if ch == b'%' {
                    state = State::Literal;
                } else if ch == b'(' {
                    state = State::ExpectArray;
                }
            }
            State::ExpectArray => {
                if ch == b'[' {
                    state = State::ExpectString;
                } else if ch != b' ' {
                    state = State::String;
                }
            }
            State::ExpectArrayDelimiterOrEnd => {
                if ch == b',' {
                    state = State::ExpectString;
                } else if ch == b']' {
                    state = State::ExpectArgsEnd;
                } else if ch != b' ' {
                    return Err(format!("{prefix} Expecting ',', ']', or whitespace"));
                }
            }
            State::ExpectString => {
                if ch == b'"' {
                    state = State::String;
                } else if ch != b' ' {
                    return Err(format!("{prefix} Expecting '\"'"));
                }
            }
            State::String => {
                if ch == b'\\' {
                    if !has_next {
                        return Err(format!("{prefix} Un-terminated backslash in JSON string"));
                    }
                    pos += 1;
                } else if ch == b')' {
                    state = State::ExpectVariableEnd;
                } else if ch == b'"' {
                    state = State::ExpectArrayDelimiterOrEnd;
                }
            }
            State::ExpectArgsEnd => {
                if ch == b')' {
                    state = State::ExpectVariableEnd;
                } else if ch != b' ' {
                    return Err(format!(
                        "{prefix} Expecting ')' or whitespace after '{{}}', but found '{{}}'"
                    ));
                }
            }
            State::ExpectVariableEnd => {
                if ch == b'%' {
                    state = State::Literal;
                } else if ch != b' ' {
                    return Err(format!("{prefix} Expecting '%' or whitespace after"));
                }
            }
        }
        pos += 1;
    }
    if state != State::Literal {
        return Err(format!(
            "{prefix} Un-terminated variable expression '{value}'"
        ));
    }
    Ok(())
}

/// Which of a `StringMatch`'s one-of is set (the first, when several are: the schema refuses
/// that on its own).
pub(super) enum MatchKind<'a> {
    None,
    Exact(&'a str),
    Prefix(&'a str),
    Regex(&'a str),
}

pub(super) fn match_kind(m: &StringMatch) -> MatchKind<'_> {
    if let Some(e) = &m.exact {
        MatchKind::Exact(e)
    } else if let Some(p) = &m.prefix {
        MatchKind::Prefix(p)
    } else if let Some(r) = &m.regex {
        MatchKind::Regex(r)
    } else {
        MatchKind::None
    }
}

/// `validateStringMatch`: an empty prefix is refused; a regex is checked.
pub(super) fn string_match(m: &StringMatch, place: &str) -> Result<(), String> {
    match match_kind(m) {
        MatchKind::Prefix("") => Err(format!(
            "{}: prefix string match should not be empty",
            go_quote(place)
        )),
        MatchKind::Regex(_) => string_match_regexp(m, place),
        _ => Ok(()),
    }
}

/// `validateStringMatchRegexp`: only the regex is checked.
pub(super) fn string_match_regexp(m: &StringMatch, place: &str) -> Result<(), String> {
    match match_kind(m) {
        MatchKind::Regex("") => Err(format!(
            "{}: regex string match should not be empty",
            go_quote(place)
        )),
        MatchKind::Regex(re) => string_regexp(re, place),
        _ => Ok(()),
    }
}

/// `validateStringRegexp`.
pub(super) fn string_regexp(re: &str, place: &str) -> Result<(), String> {
    if re.len() > 1024 {
        return Err(format!(
            "{}: regex is too large, max length allowed is 1024",
            go_quote(place)
        ));
    }
    super::regex::check(re).map_err(|e| {
        format!(
            "{}: {e}; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)",
            go_quote(place)
        )
    })
}

/// `validateHTTPStatus`: 200 to 600 (the message says 599).
pub(super) fn http_status(status: i64) -> Result<(), String> {
    if (200..=600).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP status {status} is not in range 200-599"))
    }
}

/// `validateGRPCStatus`.
pub(super) fn grpc_status(status: &str) -> Result<(), String> {
    const CODES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    if CODES.contains(&status) {
        Ok(())
    } else {
        Err(format!(
            "gRPC status {} is not supported. See https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported codes, for example 'NOT_FOUND'",
            go_quote(status)
        ))
    }
}

/// Whether Go's `http.StatusText` knows `code`.
pub(super) fn is_known_http_status(code: i64) -> bool {
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429
        | 431 | 451 | 500..=508 | 510 | 511)
}

/// Go's `%q` of a string: double-quoted, with Go's escapes.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%v` of a float64 (`%g` with the shortest digits): an exponent when it is below -4 or
/// at least 6 (`150`, `0.5`, `1e-05`, `5.000011e+06`).
pub(crate) fn go_float(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let scientific = format!("{value:e}");
    let (mantissa, exp) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        return format!("{value}");
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

/// Go's `%f`: six decimals.
pub(crate) fn go_fixed(value: f64) -> String {
    format!("{value:.6}")
}
