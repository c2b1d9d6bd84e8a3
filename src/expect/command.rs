//! Expectations over a command: curl's exit code, status lines, headers and output, what passed
//! through each proxy and what reached the origin.

use std::collections::BTreeMap;

use crate::mesh::ProxyRole;
use crate::observe::curl_output::response_heads;
use crate::observe::{CommandOutput, OriginHit};
use crate::suite::{CommandCheck, Expected, OriginExpectation};

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
        });
    Outcome {
        what,
        passed,
        expected: expected_text,
        actual: list(&seen.iter().map(describe_hit).collect::<Vec<_>>()),
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
    format!("{{{}}}", parts.join(" "))
}

fn describe_hit(h: &OriginHit) -> String {
    format!(
        "{{host={} path={} tls={} sni={} status={}}}",
        h.host,
        h.path,
        h.tls,
        h.sni.as_deref().unwrap_or("none"),
        h.status
    )
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
