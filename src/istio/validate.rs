//! Istio's own validation rules for the four kinds (istio/istio `pkg/config/validation`), applied
//! to every object before any backend sees it, in Istio's own words. Each violation carries the
//! path of the field it is about, so the error can name the file, line and column as well —
//! which Istio's own messages do not.
//!
//! What it does not do: check one object against another, or decide what a control plane can
//! translate.

use std::collections::BTreeSet;

use super::api::{
    DestinationRule, Gateway, PortTrafficPolicy, Resolution, ServiceEntry, TrafficPolicy,
    VirtualService,
};
use super::object::{IstioObject, Spec};
use super::protocol::Protocol;
use crate::yaml::FieldPath;

/// A rule a field breaks, in Istio's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub path: FieldPath,
    pub message: String,
}

/// The violations of `object`, in the order Istio reports them.
pub(crate) fn violations(object: &IstioObject) -> Vec<Violation> {
    let mut out = Rules::default();
    let spec = FieldPath::default().key("spec");
    match &object.spec {
        Spec::ServiceEntry(se) => service_entry(&mut out, &spec, se),
        Spec::Gateway(gw) => gateway(&mut out, &spec, gw),
        Spec::VirtualService(vs) => virtual_service(&mut out, &spec, vs),
        Spec::DestinationRule(dr) => destination_rule(&mut out, &spec, dr),
    }
    out.0
}

/// The first violation, if any.
pub(crate) fn first_error(object: &IstioObject) -> Option<Violation> {
    violations(object).into_iter().next()
}

#[derive(Default)]
struct Rules(Vec<Violation>);

impl Rules {
    fn fail(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.0.push(Violation {
            path: path.clone(),
            message: message.into(),
        });
    }

    fn check(&mut self, path: &FieldPath, result: Result<(), String>) {
        if let Err(message) = result {
            self.fail(path, message);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers (istio/istio pkg/config/validation/agent).

/// `ValidatePort`.
fn port(number: u32) -> Result<(), String> {
    if (1..=65535).contains(&number) {
        Ok(())
    } else {
        Err(format!(
            "port number {number} must be in the range 1..65535"
        ))
    }
}

fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !s.is_empty()
        && s.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// `ValidatePortName`.
fn port_name(name: &str) -> Result<(), String> {
    if is_dns1123_label(name) {
        Ok(())
    } else {
        Err(format!("invalid port name: {name}"))
    }
}

/// `CheckDNS1123Preconditions`.
fn dns_preconditions(domain: &str) -> Result<(), String> {
    if domain.len() > 255 {
        return Err(format!("domain name {domain:?} too long (max 255)"));
    }
    if domain.is_empty() {
        return Err("empty domain name not allowed".into());
    }
    Ok(())
}

/// `ValidateDNS1123Labels`.
fn dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    if let Some(last) = parts.last()
        && !last.is_empty()
        && last.parse::<i64>().is_ok()
    {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {last:?} cannot be all-numeric)"
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// `ValidateFQDN`.
fn fqdn(domain: &str) -> Result<(), String> {
    dns_preconditions(domain)?;
    dns1123_labels(domain)
}

fn is_wildcard_label(label: &str) -> bool {
    if label == "*" {
        return true;
    }
    let rest = label
        .strip_prefix("*-")
        .or_else(|| label.strip_prefix('*'))
        .unwrap_or(label);
    label.len() <= 63 && is_dns1123_label(rest)
}

/// `ValidateWildcardDomain`.
fn wildcard_domain(domain: &str) -> Result<(), String> {
    dns_preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (domain, None),
    };
    if !is_wildcard_label(first) {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        Some(rest) => dns1123_labels(rest),
        None => Ok(()),
    }
}

/// `ValidatePartialWildCard`.
fn partial_wildcard(host: &str) -> Result<(), String> {
    if host.contains('*') && host != "*" && !host.starts_with("*.") {
        Err(format!("partial wildcard {host:?} not allowed"))
    } else {
        Ok(())
    }
}

fn is_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

/// `validateSubsetName`.
fn subset_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("subset name cannot be empty".into());
    }
    if !is_dns1123_label(name) {
        return Err(format!("subset name is invalid: {name}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// ServiceEntry (`ValidateServiceEntry`).

fn service_entry(out: &mut Rules, spec: &FieldPath, se: &ServiceEntry) {
    let hosts = spec.key("hosts");
    if se.hosts.is_empty() {
        out.fail(&hosts, "service entry must have at least one host");
    }
    for (i, host) in se.hosts.iter().enumerate() {
        if host == "*" {
            out.fail(&hosts.index(i), format!("invalid host {host}"));
        } else {
            out.check(&hosts.index(i), wildcard_domain(host));
        }
    }
    let ports = spec.key("ports");
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for (i, p) in se.ports.iter().enumerate() {
        let at = ports.index(i);
        if !names.insert(p.name.as_str()) {
            out.fail(
                &at.key("name"),
                format!("service entry port name {:?} already defined", p.name),
            );
        }
        if !numbers.insert(p.number) {
            out.fail(
                &at.key("number"),
                format!("service entry port {} already defined", p.number),
            );
        }
        if p.target_port != 0 {
            out.check(&at.key("targetPort"), port(p.target_port));
        }
        out.check(&at.key("name"), port_name(&p.name));
        if !p.protocol.is_empty() && Protocol::parse(&p.protocol).is_none() {
            out.fail(
                &at.key("protocol"),
                format!("unsupported protocol: {}", p.protocol),
            );
        }
        out.check(&at.key("number"), port(p.number));
    }
    if matches!(se.resolution, Resolution::Dns | Resolution::DnsRoundRobin)
        && se.endpoints.is_empty()
        && let Some((i, error)) = se
            .hosts
            .iter()
            .enumerate()
            .find_map(|(i, h)| fqdn(h).err().map(|e| (i, e)))
    {
        out.fail(
            &hosts.index(i),
            format!(
                "hosts must be FQDN or contain only prefix wildcards if no endpoints are provided for resolution mode {}, {error}",
                se.resolution
            ),
        );
    }
    if se.resolution != Resolution::None && se.hosts.len() > 1 {
        let non_http = se
            .ports
            .iter()
            .position(|p| !Protocol::parse(&p.protocol).is_some_and(|p| p.is_http() || p.is_tls()));
        if let Some(i) = non_http {
            out.fail(
                &ports.index(i),
                "multiple hosts provided with non-HTTP, non-TLS ports",
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Gateway (`ValidateGateway`).

fn gateway(out: &mut Rules, spec: &FieldPath, gw: &Gateway) {
    let servers = spec.key("servers");
    if gw.servers.is_empty() {
        out.fail(&servers, "gateway must have at least one server");
    }
    for (i, server) in gw.servers.iter().enumerate() {
        let at = servers.index(i);
        if server.hosts.is_empty() {
            out.fail(
                &at.key("hosts"),
                "server config must contain at least one host",
            );
        }
        for (j, host) in server.hosts.iter().enumerate() {
            out.check(&at.key("hosts").index(j), gateway_host(host));
        }
        let Some(p) = &server.port else {
            out.fail(&at.key("port"), "port is required");
            continue;
        };
        let port_at = at.key("port");
        if Protocol::parse(&p.protocol).is_none() {
            out.fail(
                &port_at.key("protocol"),
                format!(
                    "invalid protocol {:?}, supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP",
                    p.protocol
                ),
            );
        }
        out.check(&port_at.key("number"), port(p.number));
        if p.target_port.0 > 0 {
            out.fail(
                &port_at.key("targetPort"),
                "targetPort has no impact on Gateways",
            );
        }
        if p.name.is_empty() {
            out.fail(
                &port_at.key("name"),
                format!(
                    "port name must be set: number:{} protocol:{:?}",
                    p.number, p.protocol
                ),
            );
        }
    }
    let mut names = BTreeSet::new();
    for (i, server) in gw.servers.iter().enumerate() {
        if let Some(p) = &server.port
            && !names.insert(p.name.as_str())
        {
            out.fail(
                &servers.index(i).key("port").key("name"),
                format!(
                    "port names in servers must be unique: duplicate name {}",
                    p.name
                ),
            );
        }
    }
}

/// `ValidateNamespaceSlashWildcardHostname` for a Gateway server's host.
fn gateway_host(entry: &str) -> Result<(), String> {
    let host = match entry.split_once('/') {
        Some((namespace, host)) => {
            if namespace.is_empty() || host.is_empty() {
                return Err("config namespace and dnsName in host entry cannot be empty".into());
            }
            if !matches!(namespace, "*" | ".") && !is_dns1123_label(namespace) {
                return Err(format!("invalid namespace value {namespace:?} in gateway"));
            }
            host
        }
        None => entry,
    };
    if host != "*" && !host.contains('.') {
        return Err("short names (non FQDN) are not allowed".into());
    }
    if !is_ip(host) {
        wildcard_domain(host)?;
    }
    partial_wildcard(host)
}

// ---------------------------------------------------------------------------------------------
// VirtualService (`ValidateVirtualService`).

fn virtual_service(out: &mut Rules, spec: &FieldPath, vs: &VirtualService) {
    let hosts = spec.key("hosts");
    let applies_to_mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh");
    for (i, host) in vs.hosts.iter().enumerate() {
        if !is_ip(host) {
            out.check(&hosts.index(i), wildcard_domain(host));
        }
        if applies_to_mesh && host == "*" {
            out.fail(
                &hosts.index(i),
                "wildcard host * is not allowed for virtual services bound to the mesh gateway",
            );
        }
    }
    if vs.http.is_empty() && vs.tcp.0.is_empty() && vs.tls.0.is_empty() {
        out.fail(spec, "http, tcp or tls must be provided in virtual service");
    }
    for (i, route) in vs.http.iter().enumerate() {
        let at = spec.key("http").index(i);
        if route.route.is_empty()
            && route.redirect.0.is_none()
            && route.direct_response.0.is_none()
            && route.delegate.0.is_none()
        {
            out.fail(&at, "HTTP route, redirect or direct_response is required");
        }
        for (j, destination) in route.route.iter().enumerate() {
            let dest_at = at.key("route").index(j);
            match &destination.destination {
                None => out.fail(&dest_at.key("destination"), "destination is required"),
                Some(d) => {
                    let d_at = dest_at.key("destination");
                    if d.host == "*" {
                        out.fail(
                            &d_at.key("host"),
                            format!("invalid destination host {}", d.host),
                        );
                    } else {
                        out.check(&d_at.key("host"), wildcard_domain(&d.host));
                    }
                    if !d.subset.is_empty() {
                        out.check(&d_at.key("subset"), subset_name(&d.subset));
                    }
                    if let Some(p) = &d.port {
                        out.check(&d_at.key("port").key("number"), port(p.number));
                    }
                }
            }
        }
        if route.route.len() > 1 && route.route.iter().all(|d| d.weight == 0) {
            out.fail(&at.key("route"), "total destination weight = 0");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// DestinationRule (`ValidateDestinationRule`).

fn destination_rule(out: &mut Rules, spec: &FieldPath, dr: &DestinationRule) {
    out.check(&spec.key("host"), wildcard_domain(&dr.host));
    if let Some(policy) = &dr.traffic_policy {
        traffic_policy(out, &spec.key("trafficPolicy"), policy);
    }
    let mut names = BTreeSet::new();
    for (i, subset) in dr.subsets.iter().enumerate() {
        let at = spec.key("subsets").index(i);
        if !names.insert(subset.name.as_str()) {
            out.fail(
                &at.key("name"),
                format!("duplicate subset names: {}", subset.name),
            );
        }
        out.check(&at.key("name"), subset_name(&subset.name));
        if let Some(policy) = &subset.traffic_policy {
            traffic_policy(out, &at.key("trafficPolicy"), policy);
        }
    }
}

fn traffic_policy(out: &mut Rules, at: &FieldPath, policy: &TrafficPolicy) {
    let empty = policy.load_balancer.is_none()
        && policy.connection_pool.0.is_none()
        && policy.outlier_detection.0.is_none()
        && policy.tls.is_none()
        && policy.port_level_settings.is_empty()
        && policy.tunnel.0.is_none()
        && policy.proxy_protocol.0.is_none()
        && policy.retry_budget.0.is_none();
    if empty {
        out.fail(at, "traffic policy must have at least one field");
        return;
    }
    for (i, level) in policy.port_level_settings.iter().enumerate() {
        port_traffic_policy(out, &at.key("portLevelSettings").index(i), level);
    }
}

fn port_traffic_policy(out: &mut Rules, at: &FieldPath, level: &PortTrafficPolicy) {
    if level.port.is_none() {
        out.fail(&at.key("port"), "portTrafficPolicy must have valid port");
    }
    if level.load_balancer.is_none()
        && level.connection_pool.0.is_none()
        && level.outlier_detection.0.is_none()
        && level.tls.is_none()
    {
        out.fail(at, "port traffic policy must have at least one field");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_as_istio_reads_them() {
        assert_eq!(wildcard_domain("edition.cnn.com"), Ok(()));
        assert_eq!(wildcard_domain("*.cnn.com"), Ok(()));
        assert_eq!(wildcard_domain("*"), Ok(()));
        assert_eq!(
            wildcard_domain("foo.bar_baz.com"),
            Err(r#"domain name "bar_baz.com" invalid (label "bar_baz" invalid)"#.into())
        );
        assert_eq!(
            wildcard_domain("10.0.0.1"),
            Err(
                r#"domain name "0.0.1" invalid (top level domain "1" cannot be all-numeric)"#
                    .into()
            )
        );
        assert_eq!(
            wildcard_domain(""),
            Err("empty domain name not allowed".into())
        );
        assert_eq!(
            fqdn("*.cnn.com"),
            Err(r#"domain name "*.cnn.com" invalid (label "*" invalid)"#.into())
        );
    }

    #[test]
    fn ports_and_names() {
        assert_eq!(
            port(0),
            Err("port number 0 must be in the range 1..65535".into())
        );
        assert_eq!(port(65535), Ok(()));
        assert_eq!(port_name("HTTP"), Ok(()));
        assert_eq!(port_name(""), Err("invalid port name: ".into()));
        assert_eq!(
            subset_name("v1.0"),
            Err("subset name is invalid: v1.0".into())
        );
    }

    #[test]
    fn gateway_hosts() {
        assert_eq!(gateway_host("edition.cnn.com"), Ok(()));
        assert_eq!(gateway_host("*"), Ok(()));
        assert_eq!(gateway_host("ns/*.cnn.com"), Ok(()));
        assert_eq!(
            gateway_host("cnn"),
            Err("short names (non FQDN) are not allowed".into())
        );
        assert_eq!(
            gateway_host("/x.com"),
            Err("config namespace and dnsName in host entry cannot be empty".into())
        );
        assert_eq!(
            gateway_host("a*.cnn.com"),
            Err(r#"domain name "a*.cnn.com" invalid (label "a*" invalid)"#.into())
        );
        assert_eq!(
            gateway_host("*a.cnn.com"),
            Err(r#"partial wildcard "*a.cnn.com" not allowed"#.into())
        );
    }
}
