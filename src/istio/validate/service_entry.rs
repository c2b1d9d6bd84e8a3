//! `ValidateServiceEntry`.

use std::collections::BTreeSet;

use super::helpers::{
    export_to, fqdn, go_quote, ip_subnet, is_ip, labels, partial_wildcard, port, port_name,
    selector_errors, unix_address, wildcard_domain,
};
use super::{Context, Out};
use crate::istio::api::{Location, Resolution, ServiceEntry, WorkloadEntry};
use crate::istio::object::IstioObject;
use crate::istio::protocol::Protocol;
use crate::yaml::FieldPath;

pub(super) fn check(
    out: &mut Out,
    spec: &FieldPath,
    se: &ServiceEntry,
    object: &IstioObject,
    cx: Context<'_>,
) {
    let selector_at = spec.key("workloadSelector");
    if let Some(selector) = &se.workload_selector.0 {
        // A bad selector is the only thing reported.
        let errors = selector_errors(&selector_at.key("labels"), &selector.labels);
        if !errors.is_empty() {
            for (at, message) in errors {
                out.error(&at, message);
            }
            return;
        }
        if selector.labels.is_empty() {
            out.warning(
                &selector_at,
                "service entry: workload selector specified without labels, will be applied to all services in namespace",
            );
        }
    }
    let endpoints = &se.endpoints;
    if se.workload_selector.0.is_some() && !endpoints.is_empty() {
        out.error(
            &spec.key("endpoints"),
            "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
        );
    }
    let hosts_at = spec.key("hosts");
    if se.hosts.is_empty() {
        out.error(&hosts_at, "service entry must have at least one host");
    }
    for (i, host) in se.hosts.iter().enumerate() {
        if host == "*" {
            out.error(&hosts_at.index(i), format!("invalid host {host}"));
        } else {
            out.check(&hosts_at.index(i), wildcard_domain(host));
            if se.resolution != Resolution::DynamicDns
                && let Err(warning) = partial_wildcard(host)
            {
                out.warning(&hosts_at.index(i), warning);
            }
        }
    }
    let addresses = &se.addresses;
    let addresses_at = spec.key("addresses");
    let mut cidr = false;
    for (i, address) in addresses.iter().enumerate() {
        cidr |= address.contains('/');
        out.check(&addresses_at.index(i), ip_subnet(address));
    }
    if cidr && !matches!(se.resolution, Resolution::None | Resolution::Static) {
        out.error(
            &addresses_at,
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
        );
    }
    // Istio allocates addresses itself (PILOT_ENABLE_IP_AUTOALLOCATE, on by default) unless the
    // resolution is NONE, the object opts out, or it brings its own.
    let opted_out = object
        .labels
        .get("networking.istio.io/enable-autoallocate-ip")
        .is_some_and(|v| v.eq_ignore_ascii_case("false"));
    let auto_allocation = se.resolution != Resolution::None && !opted_out && addresses.is_empty();
    let ports_at = spec.key("ports");
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for (i, p) in se.ports.iter().enumerate() {
        let at = ports_at.index(i);
        if !names.insert(p.name.as_str()) {
            out.error(
                &at.key("name"),
                format!(
                    "service entry port name {} already defined",
                    go_quote(&p.name)
                ),
            );
        }
        if !numbers.insert(p.number) {
            out.error(
                &at.key("number"),
                format!("service entry port {} already defined", p.number),
            );
        }
        if p.target_port != 0 {
            out.check(&at.key("targetPort"), port(p.target_port.into()));
        }
        // Case-sensitive, as Istio has it.
        if addresses.is_empty()
            && !auto_allocation
            && (p.protocol.is_empty() || p.protocol == "TCP")
        {
            out.warning(
                &at,
                "addresses are required for ports serving TCP (or unset) protocol when IP Autoallocation is not enabled",
            );
        }
        out.check(&at.key("name"), port_name(&p.name));
        if !p.protocol.is_empty() && Protocol::parse(&p.protocol).is_none() {
            out.error(
                &at.key("protocol"),
                format!("unsupported protocol: {}", p.protocol),
            );
        }
        out.check(&at.key("number"), port(p.number.into()));
    }
    let endpoints_at = spec.key("endpoints");
    let resolution = se.resolution.name();
    match se.resolution {
        Resolution::None => {
            if !endpoints.is_empty() {
                out.error(
                    &endpoints_at,
                    "no endpoints should be provided for resolution type none",
                );
            }
            if se.workload_selector.0.is_some() {
                out.warning(
                    &selector_at,
                    "workloadSelector should not be set when resolution mode is NONE",
                );
            }
        }
        Resolution::Static => {
            for (i, endpoint) in endpoints.iter().enumerate() {
                static_endpoint(out, &endpoints_at.index(i), endpoint, &names);
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            if endpoints.is_empty()
                && let Some((i, error)) = se
                    .hosts
                    .iter()
                    .enumerate()
                    .find_map(|(i, h)| fqdn(h).err().map(|e| (i, e)))
            {
                out.error(
                    &hosts_at.index(i),
                    format!(
                        "hosts must be FQDN or contain only prefix wildcards if no endpoints are provided for resolution mode {resolution}, {error}"
                    ),
                );
            }
            if se.resolution == Resolution::DnsRoundRobin && endpoints.len() > 1 {
                out.error(
                    &endpoints_at,
                    format!("there must only be 0 or 1 endpoint for resolution mode {resolution}"),
                );
            }
            for (i, endpoint) in endpoints.iter().enumerate() {
                let at = endpoints_at.index(i);
                if !is_ip(&endpoint.address) && fqdn(&endpoint.address).is_err() {
                    out.error(
                        &at.key("address"),
                        format!(
                            "endpoint address {} is not a valid FQDN or an IP address",
                            go_quote(&endpoint.address)
                        ),
                    );
                }
                labels(out, &at.key("labels"), &endpoint.labels);
                endpoint_ports(out, &at.key("ports"), endpoint, &names);
            }
            if !addresses.is_empty()
                && let Some(i) = se
                    .ports
                    .iter()
                    .position(|p| Protocol::parse(&p.protocol).is_some_and(Protocol::is_tcp))
                && se.hosts.len() > 1
            {
                out.warning(
                    &ports_at.index(i),
                    "service entry can not have more than one host specified simultaneously with address and tcp port",
                );
            }
        }
        Resolution::DynamicDns => {
            if se.hosts.is_empty() {
                out.error(
                    &hosts_at,
                    format!(
                        "at least one wildcard host must be provided for resolution type {resolution}"
                    ),
                );
            }
            for (i, host) in se.hosts.iter().enumerate() {
                if !host.starts_with('*') {
                    out.error(
                        &hosts_at.index(i),
                        format!("host must be wildcarded for resolution mode {resolution}"),
                    );
                }
            }
            if !addresses.is_empty() {
                out.error(
                    &addresses_at,
                    format!(
                        "addresses cannot be set for resolution type {resolution}. HTTP route domains will only be generatedfrom the hosts field values"
                    ),
                );
            }
            if !endpoints.is_empty() {
                out.error(
                    &endpoints_at,
                    format!(
                        "endpoints cannot be set for resolution type {resolution}. Destination IP address determined from hostsfield values"
                    ),
                );
            }
            for (i, p) in se.ports.iter().enumerate() {
                let dynamic = matches!(
                    Protocol::parse(&p.protocol),
                    Some(Protocol::Http | Protocol::Tls | Protocol::Grpc | Protocol::Http2)
                );
                if !dynamic {
                    out.error(
                        &ports_at.index(i).key("protocol"),
                        format!(
                            "only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type {resolution}"
                        ),
                    );
                }
            }
            let waypoint = object
                .labels
                .get("istio.io/use-waypoint")
                .is_some_and(|v| !v.is_empty() && !v.eq_ignore_ascii_case("none"));
            if se.location == Location::MeshInternal && waypoint {
                out.error(
                    &spec.key("location"),
                    format!(
                        "location MESH_INTERNAL with resolution type {resolution} is not supported when using waypoints"
                    ),
                );
            }
        }
    }
    if se.resolution != Resolution::None && se.hosts.len() > 1 {
        let plain = se
            .ports
            .iter()
            .position(|p| !Protocol::parse(&p.protocol).is_some_and(|p| p.is_http() || p.is_tls()));
        if let Some(i) = plain {
            out.error(
                &ports_at.index(i),
                "multiple hosts provided with non-HTTP, non-TLS ports",
            );
        }
    }
    export_to(
        out,
        &spec.key("exportTo"),
        cx.namespace,
        &se.export_to,
        true,
        false,
    );
}

/// `validateWorkloadEntry` of a STATIC endpoint: an IP or a unix socket, and ports the service
/// entry declares.
fn static_endpoint(
    out: &mut Out,
    at: &FieldPath,
    endpoint: &WorkloadEntry,
    service_ports: &BTreeSet<&str>,
) {
    let address = endpoint.address.as_str();
    if address.is_empty() {
        if endpoint.network.0.is_empty() {
            out.error(at, "address is required");
            return;
        }
        out.warning(
            at,
            format!(
                "address is unset with network {}",
                go_quote(&endpoint.network.0)
            ),
        );
    }
    let mut unix = false;
    if let Some(path) = address.strip_prefix("unix://") {
        unix = true;
        out.check(&at.key("address"), unix_address(path));
        if !endpoint.ports.is_empty() {
            out.error(
                &at.key("ports"),
                format!("unix endpoint {address} must not include ports"),
            );
        }
    } else if !address.is_empty() && !is_ip(address) {
        out.error(
            &at.key("address"),
            format!(
                "endpoint address {} is not a valid IP address",
                go_quote(address)
            ),
        );
    }
    endpoint_ports(out, &at.key("ports"), endpoint, service_ports);
    labels(out, &at.key("labels"), &endpoint.labels);
    if unix && service_ports.len() != 1 {
        out.error(at, "exactly 1 service port required for unix endpoints");
    }
}

/// An endpoint's ports: names the service entry declares, valid names and numbers.
fn endpoint_ports(
    out: &mut Out,
    at: &FieldPath,
    endpoint: &WorkloadEntry,
    service_ports: &BTreeSet<&str>,
) {
    for (name, number) in &endpoint.ports {
        let here = at.key(name);
        if !service_ports.contains(name.as_str()) {
            out.error(
                &here,
                format!("endpoint port {number} is not defined by the service entry"),
            );
        }
        out.check(&here, port_name(name));
        out.check(&here, port((*number).into()));
    }
}
