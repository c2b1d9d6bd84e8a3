//! `ValidateDestinationRule`.

use std::collections::BTreeSet;

use super::helpers::{
    client_tls, connection_pool, export_to, fqdn, ip_address, labels, load_balancer,
    outlier_detection, port, selector_errors, subset_name, wildcard_domain,
};
use super::{Context, Out};
use crate::istio::api::{DestinationRule, TrafficPolicy};
use crate::yaml::FieldPath;

pub(super) fn check(out: &mut Out, spec: &FieldPath, dr: &DestinationRule, cx: Context<'_>) {
    out.check(&spec.key("host"), wildcard_domain(&dr.host));
    if let Some(policy) = &dr.traffic_policy {
        traffic_policy(out, &spec.key("trafficPolicy"), policy, cx);
    }
    let mut names = BTreeSet::new();
    for (i, subset) in dr.subsets.iter().enumerate() {
        let at = spec.key("subsets").index(i);
        if !names.insert(subset.name.as_str()) {
            out.error(
                &at.key("name"),
                format!("duplicate subset names: {}", subset.name),
            );
        }
        // Errors only: a subset's warnings are dropped, as Istio drops them.
        out.errors_only(|out| {
            out.check(&at.key("name"), subset_name(&subset.name));
            labels(out, &at.key("labels"), &subset.labels);
            if let Some(policy) = &subset.traffic_policy {
                traffic_policy(out, &at.key("trafficPolicy"), policy, cx);
            }
        });
    }
    let selector = dr.workload_selector.0.as_ref();
    export_to(
        out,
        &spec.key("exportTo"),
        cx.namespace,
        &dr.export_to,
        false,
        selector.is_some(),
    );
    if let Some(selector) = selector {
        let at = spec.key("workloadSelector");
        for (here, message) in selector_errors(&at.key("matchLabels"), &selector.match_labels) {
            out.error(&here, message);
        }
        if selector.match_labels.is_empty() {
            out.warning(&at, "workload selector specified without labels");
        }
    }
}

/// `validateTrafficPolicy`.
fn traffic_policy(out: &mut Out, at: &FieldPath, policy: &TrafficPolicy, cx: Context<'_>) {
    let empty = policy.outlier_detection.0.is_none()
        && policy.connection_pool.0.is_none()
        && policy.load_balancer.is_none()
        && policy.tls.is_none()
        && policy.port_level_settings.is_empty()
        && policy.tunnel.0.is_none()
        && policy.proxy_protocol.0.is_none()
        && policy.retry_budget.0.is_none();
    if empty {
        out.error(at, "traffic policy must have at least one field");
        return;
    }
    if policy.tunnel.0.is_some() && policy.proxy_protocol.0.is_some() {
        out.error(at, "tunnel and proxyProtocol must not be set together");
        return;
    }
    let outlier = policy.outlier_detection.0.as_ref();
    if let Some(outlier) = outlier {
        outlier_detection(out, &at.key("outlierDetection"), outlier);
    }
    if let Some(pool) = &policy.connection_pool.0 {
        connection_pool(out, &at.key("connectionPool"), pool);
    }
    if let Some(lb) = &policy.load_balancer {
        load_balancer(out, &at.key("loadBalancer"), lb, outlier);
    }
    if let Some(tls) = &policy.tls {
        client_tls(out, &at.key("tls"), cx.namespace, tls);
    }
    // Errors only: port-level warnings are dropped, as Istio drops them.
    out.errors_only(|out| {
        for (i, level) in policy.port_level_settings.iter().enumerate() {
            let at = at.key("portLevelSettings").index(i);
            if level.port.is_none() {
                out.error(&at.key("port"), "portTrafficPolicy must have valid port");
            }
            let outlier = level.outlier_detection.0.as_ref();
            if outlier.is_none()
                && level.connection_pool.0.is_none()
                && level.load_balancer.is_none()
                && level.tls.is_none()
            {
                out.error(&at, "port traffic policy must have at least one field");
                continue;
            }
            if let Some(outlier) = outlier {
                outlier_detection(out, &at.key("outlierDetection"), outlier);
            }
            if let Some(pool) = &level.connection_pool.0 {
                connection_pool(out, &at.key("connectionPool"), pool);
            }
            if let Some(lb) = &level.load_balancer {
                load_balancer(out, &at.key("loadBalancer"), lb, outlier);
            }
            if let Some(tls) = &level.tls {
                client_tls(out, &at.key("tls"), cx.namespace, tls);
            }
        }
    });
    if let Some(tunnel) = &policy.tunnel.0 {
        let at = at.key("tunnel");
        if !tunnel.protocol.is_empty() && tunnel.protocol != "CONNECT" && tunnel.protocol != "POST"
        {
            out.error(
                &at.key("protocol"),
                "tunnel protocol must be \"CONNECT\" or \"POST\"",
            );
        }
        if let (Err(fqdn_error), Err(ip_error)) =
            (fqdn(&tunnel.target_host), ip_address(&tunnel.target_host))
        {
            out.error(
                &at.key("targetHost"),
                format!(
                    "tunnel target host must be valid FQDN or IP address: {fqdn_error}; {ip_error}"
                ),
            );
        }
        if let Err(error) = port(tunnel.target_port.into()) {
            out.error(
                &at.key("targetPort"),
                format!("tunnel target port is invalid: {error}"),
            );
        }
    }
    // `proxyProtocol.version` can only be V1 or V2 here: the decoder takes names only.
}
