//! Expectations over a command: curl's exit code, status lines, headers and output, what passed
//! through each proxy and what reached the origin.

use std::collections::BTreeMap;

use crate::mesh::ProxyRole;
use crate::observe::curl_output::response_heads;
use crate::observe::{CommandOutput, OriginHit};
use crate::suite::{Blocker, CommandCheck, Expected, OriginExpectation};

use super::{Outcome, list};

/// Everything seen around one command.
#[derive(Debug, Clone)]
pub struct CommandObservation {
    pub output: CommandOutput,
    /// Each proxy's counters before and after the command.
    pub stats_before: BTreeMap<ProxyRole, BTreeMap<String, u64>>,
    pub stats_after: BTreeMap<ProxyRole, BTreeMap<String, u64>>,
    /// What reached the origin during the command; `None` where the backend cannot see it.
    pub origin: Option<Vec<OriginHit>>,
    /// Whether the command talked to the live site rather than the local origin.
    pub live_site: bool,
    /// How long the command took, as measured.
    pub took: std::time::Duration,
    /// How much faster than the tutorial's clock the backend runs (`took` × this is the
    /// tutorial's time).
    pub time_scale: u32,
}

/// The growth of the first of `names` the proxy has, or `None` when it has none of them.
fn growth(seen: &CommandObservation, proxy: ProxyRole, names: &[String]) -> Option<u64> {
    let after = seen.stats_after.get(&proxy)?;
    let (name, value) = names.iter().find_map(|n| after.get(n).map(|v| (n, *v)))?;
    let before = seen
        .stats_before
        .get(&proxy)
        .and_then(|b| b.get(name))
        .copied()
        .unwrap_or(0);
    Some(value.saturating_sub(before))
}

/// The growth of every counter whose name starts with `prefix` and ends with `suffix`, summed
/// (one per HTTP connection manager); `None` when the proxy has none.
fn growth_of_all(
    seen: &CommandObservation,
    proxy: ProxyRole,
    prefix: &str,
    suffix: &str,
) -> Option<u64> {
    let after = seen.stats_after.get(&proxy)?;
    let before = seen.stats_before.get(&proxy);
    let mut total = None;
    for (name, value) in after
        .iter()
        .filter(|(n, _)| n.starts_with(prefix) && n.ends_with(suffix))
    {
        let was = before.and_then(|b| b.get(name)).copied().unwrap_or(0);
        *total.get_or_insert(0) += value.saturating_sub(was);
    }
    total
}

/// A cluster's counter, under its name or Istio's `alt_stat_name` (`<name>;`).
fn cluster_counter(cluster: &str, counter: &str) -> Vec<String> {
    vec![
        format!("cluster.{cluster}.{counter}"),
        format!("cluster.{cluster};.{counter}"),
    ]
}

/// A count that must have grown by `expected`, or a failure saying which counter is missing.
fn judge_count(
    what: String,
    expected: u64,
    seen: Option<u64>,
    counter: &str,
    proxy: ProxyRole,
) -> Outcome {
    match seen {
        Some(n) => Outcome::compare(what, expected.to_string(), n.to_string()),
        None => Outcome {
            what,
            passed: false,
            expected: expected.to_string(),
            actual: format!(
                "no counter {counter} on the {proxy} (no such cluster or listener, or its stats are not recorded)"
            ),
            note: None,
        },
    }
}

/// The cluster's `upstream_rq_total`, or `None` when the proxy has no such counter. Envoy names
/// a cluster's stats by the cluster name, or by Istio's `alt_stat_name` (`<name>;`).
fn upstream_requests(stats: Option<&BTreeMap<String, u64>>, cluster: &str) -> Option<u64> {
    let stats = stats?;
    [
        format!("cluster.{cluster}.upstream_rq_total"),
        format!("cluster.{cluster};.upstream_rq_total"),
    ]
    .iter()
    .find_map(|name| stats.get(name).copied())
}

fn judge_expected(what: String, expected: &Expected, actual: Option<&str>, live: bool) -> Outcome {
    let shown = actual.unwrap_or("(none)").to_string();
    if expected.varies_on_live_site && live {
        return Outcome {
            what,
            passed: actual.is_some(),
            expected: format!("any value (local origin: {})", expected.value),
            actual: shown,
            note: Some("depends on the live site: only its presence is checked".into()),
        };
    }
    Outcome::compare(what, expected.value.clone(), shown)
}

pub fn judge_command(check: &CommandCheck, seen: &CommandObservation) -> Vec<Outcome> {
    let name = &check.command.name;
    let live = seen.live_site;
    let stdout = &seen.output.stdout;
    let heads = response_heads(stdout);
    let mut out = Vec::new();
    if let Some(code) = check.exit_code {
        out.push(Outcome::compare(
            format!("{name}: exit code"),
            code.to_string(),
            seen.output.exit_code.to_string(),
        ));
    }
    if !check.exit_code_in.is_empty() {
        out.push(Outcome {
            what: format!("{name}: exit code"),
            passed: check.exit_code_in.contains(&seen.output.exit_code),
            expected: format!("one of {}", list(&check.exit_code_in)),
            actual: seen.output.exit_code.to_string(),
            note: None,
        });
    }
    if let Some(expected) = &check.stdout {
        out.push(judge_expected(
            format!("{name}: output"),
            expected,
            Some(seen.output.stdout.as_str()),
            live,
        ));
    }
    if let Some(bounds) = &check.duration {
        let tutorial = seen.took * seen.time_scale.max(1);
        let mut expected = Vec::new();
        let mut passed = true;
        if let Some(min) = bounds.at_least {
            expected.push(format!("at least {min:.1?}"));
            passed &= tutorial >= min;
        }
        if let Some(max) = bounds.below {
            expected.push(format!("below {max:.1?}"));
            passed &= tutorial < max;
        }
        let mut outcome = Outcome {
            what: format!("{name}: duration"),
            passed,
            expected: expected.join(" and "),
            actual: format!("{tutorial:.2?}"),
            note: None,
        };
        if seen.time_scale > 1 {
            outcome = outcome.with_note(format!(
                "in the tutorial's time: {:.1?} measured, this backend runs {}× faster",
                seen.took, seen.time_scale
            ));
        }
        out.push(outcome);
    }
    if let Some(lines) = &check.status_lines {
        let actual: Vec<&str> = heads.iter().map(|h| h.status_line.as_str()).collect();
        let expected: Vec<String> = lines
            .iter()
            .map(|e| {
                if e.varies_on_live_site && live {
                    "<any>".to_string()
                } else {
                    e.value.clone()
                }
            })
            .collect();
        let passed = actual.len() == lines.len()
            && lines
                .iter()
                .zip(&actual)
                .all(|(e, a)| (e.varies_on_live_site && live) || e.value == *a);
        let mut outcome = Outcome {
            what: format!("{name}: status lines"),
            passed,
            expected: list(&expected),
            actual: list(&actual),
            note: None,
        };
        if live && lines.iter().any(|e| e.varies_on_live_site) {
            outcome = outcome.with_note("depends on the live site: marked lines are not compared");
        }
        out.push(outcome);
    }
    let last = heads.last();
    for (header, expected) in &check.headers {
        let actual = last.and_then(|h| h.header(header));
        out.push(judge_expected(
            format!("{name}: header {header}"),
            expected,
            actual,
            live,
        ));
    }
    for needle in &check.stdout_includes {
        out.push(Outcome {
            what: format!("{name}: output includes {needle:?}"),
            passed: stdout.contains(needle.as_str()),
            expected: format!("a line with {needle:?}"),
            actual: excerpt(stdout),
            note: None,
        });
    }
    for needle in &check.stdout_excludes {
        let hit = stdout.lines().find(|l| l.contains(needle.as_str()));
        out.push(Outcome {
            what: format!("{name}: output excludes {needle:?}"),
            passed: hit.is_none(),
            expected: format!("no line with {needle:?}"),
            actual: hit
                .map(|l| l.trim_end().to_string())
                .unwrap_or_else(|| "none".into()),
            note: None,
        });
    }
    for traffic in &check.through {
        let what = format!(
            "{name}: requests from {} to {}",
            traffic.proxy, traffic.cluster
        );
        // A cluster created by the step has no counter before; one that has none after cannot
        // be judged, and "0 requests" must not pass for it.
        let before = upstream_requests(seen.stats_before.get(&traffic.proxy), &traffic.cluster);
        match upstream_requests(seen.stats_after.get(&traffic.proxy), &traffic.cluster) {
            Some(after) => out.push(Outcome::compare(
                what,
                traffic.requests.to_string(),
                after.saturating_sub(before.unwrap_or(0)).to_string(),
            )),
            None => out.push(Outcome {
                what,
                passed: false,
                expected: traffic.requests.to_string(),
                actual: format!(
                    "no counter cluster.{}.upstream_rq_total on the {} (no such cluster, or its stats are not recorded)",
                    traffic.cluster, traffic.proxy
                ),
                note: None,
            }),
        }
    }
    for blocked in &check.blocked {
        let what = format!("{name}: blocked by the {}'s {}", blocked.proxy, blocked.by);
        let (seen_count, counter) = match blocked.by {
            // The router counts each direct response, `block_all`'s 502 among them.
            Blocker::BlockAll => (
                growth_of_all(seen, blocked.proxy, "http.", ".rq_direct_response"),
                "http.<listener>.rq_direct_response".to_string(),
            ),
            // tcp_proxy finds no host in BlackHoleCluster and closes the connection.
            Blocker::BlackHoleCluster => {
                let names = cluster_counter("BlackHoleCluster", "upstream_cx_none_healthy");
                (growth(seen, blocked.proxy, &names), names[0].clone())
            }
        };
        out.push(judge_count(
            what,
            blocked.count,
            seen_count,
            &counter,
            blocked.proxy,
        ));
    }
    for connections in &check.connections {
        let what = format!(
            "{name}: TCP connections from the {} to {}",
            connections.proxy, connections.cluster
        );
        // Counted by the TCP proxy that took the connection (its stats are named by the cluster,
        // as istiod names them), and by the cluster that carried it upstream.
        let proxied = format!("tcp.{}.downstream_cx_total", connections.cluster);
        let upstream = cluster_counter(&connections.cluster, "upstream_cx_total");
        let by_proxy = growth(seen, connections.proxy, std::slice::from_ref(&proxied));
        let by_cluster = growth(seen, connections.proxy, &upstream);
        match (by_proxy, by_cluster) {
            (Some(p), Some(c)) => out.push(Outcome {
                what,
                passed: p == connections.count && c == connections.count,
                expected: format!("{0} through tcp_proxy, {0} upstream", connections.count),
                actual: format!("{p} through tcp_proxy, {c} upstream"),
                note: None,
            }),
            (None, _) => out.push(judge_count(
                what,
                connections.count,
                None,
                &proxied,
                connections.proxy,
            )),
            (_, None) => out.push(judge_count(
                what,
                connections.count,
                None,
                &upstream[0],
                connections.proxy,
            )),
        }
    }
    for timeout in &check.timeouts {
        let what = format!(
            "{name}: requests from the {} to {} the route's timeout cut off",
            timeout.proxy, timeout.cluster
        );
        let names = cluster_counter(&timeout.cluster, "upstream_rq_timeout");
        out.push(judge_count(
            what,
            timeout.requests,
            growth(seen, timeout.proxy, &names),
            &names[0],
            timeout.proxy,
        ));
    }
    if let Some(expected) = &check.origin {
        out.push(judge_origin(name, expected, seen.origin.as_deref()));
    }
    out
}

fn judge_origin(name: &str, expected: &[OriginExpectation], seen: Option<&[OriginHit]>) -> Outcome {
    let what = format!("{name}: requests that reached the origin");
    let expected_text = list(&expected.iter().map(describe_expected).collect::<Vec<_>>());
    let Some(seen) = seen else {
        return Outcome {
            what,
            passed: true,
            expected: expected_text,
            actual: "(not observable)".into(),
            note: Some("this backend cannot see the origin (the live site): not checked".into()),
        };
    };
    let passed = seen.len() == expected.len()
        && expected.iter().zip(seen).all(|(e, s)| {
            e.host.as_ref().is_none_or(|h| *h == s.host)
                && e.path.as_ref().is_none_or(|p| *p == s.path)
                && e.tls.is_none_or(|t| t == s.tls)
                && e.sni.as_ref().is_none_or(|n| *n == s.sni)
                && e.status.is_none_or(|c| c == s.status)
                && e.port.is_none_or(|p| p == s.port)
                && e.method.as_ref().is_none_or(|m| *m == s.method)
                && e.alpn.as_ref().is_none_or(|a| *a == s.alpn)
        });
    Outcome {
        what,
        passed,
        expected: expected_text,
        actual: list(
            &seen
                .iter()
                .map(|h| describe_hit(h, expected))
                .collect::<Vec<_>>(),
        ),
        note: None,
    }
}

fn describe_expected(e: &OriginExpectation) -> String {
    let mut parts = Vec::new();
    if let Some(h) = &e.host {
        parts.push(format!("host={h}"));
    }
    if let Some(p) = &e.path {
        parts.push(format!("path={p}"));
    }
    if let Some(t) = e.tls {
        parts.push(format!("tls={t}"));
    }
    if let Some(s) = &e.sni {
        parts.push(format!("sni={}", s.as_deref().unwrap_or("none")));
    }
    if let Some(c) = e.status {
        parts.push(format!("status={c}"));
    }
    if let Some(p) = e.port {
        parts.push(format!("port={p}"));
    }
    if let Some(m) = &e.method {
        parts.push(format!("method={m}"));
    }
    if let Some(a) = &e.alpn {
        parts.push(format!("alpn={}", a.as_deref().unwrap_or("none")));
    }
    format!("{{{}}}", parts.join(" "))
}

/// What the origin saw: the five fields every hit shows, and those of port, method and ALPN
/// that some expectation names.
fn describe_hit(h: &OriginHit, expected: &[OriginExpectation]) -> String {
    let mut text = format!(
        "{{host={} path={} tls={} sni={} status={}",
        h.host,
        h.path,
        h.tls,
        h.sni.as_deref().unwrap_or("none"),
        h.status,
    );
    if expected.iter().any(|e| e.port.is_some()) {
        text.push_str(&format!(" port={}", h.port));
    }
    if expected.iter().any(|e| e.method.is_some()) {
        text.push_str(&format!(" method={}", h.method));
    }
    if expected.iter().any(|e| e.alpn.is_some()) {
        text.push_str(&format!(" alpn={}", h.alpn.as_deref().unwrap_or("none")));
    }
    text.push('}');
    text
}

fn excerpt(text: &str) -> String {
    let lines: Vec<&str> = text.lines().take(8).map(str::trim_end).collect();
    if lines.is_empty() {
        "(no output)".into()
    } else {
        lines.join(" | ")
    }
}

#[cfg(test)]
mod tests;
