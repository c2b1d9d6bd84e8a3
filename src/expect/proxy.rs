//! Expectations over a proxy's config, read from its `/config_dump`: listeners, route
//! configurations and virtual hosts, clusters and their TLS.

use serde_json::Value;

use crate::mesh::ProxyRole;
use crate::observe::config_dump::ProxyConfig;
use crate::suite::{ProxyExpectation, TlsExpectation};

use super::{Outcome, list};

const HCM_TYPE: &str = "HttpConnectionManager";
const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Judge `config` of `proxy` against `expect`. `time_scale`: how much faster than the tutorial
/// the backend runs (route timeouts in its config are that much shorter).
pub fn judge_proxy(
    proxy: ProxyRole,
    expect: &ProxyExpectation,
    config: &ProxyConfig,
    time_scale: u32,
) -> Outcome {
    match expect {
        ProxyExpectation::Listeners(names) => {
            let actual: Vec<&String> = config.listeners.keys().collect();
            let mut expected: Vec<&String> = names.iter().collect();
            expected.sort();
            let mut outcome = Outcome::compare(
                format!("{proxy}: listeners"),
                list(&expected),
                list(&actual),
            );
            if !config.draining_listeners.is_empty() {
                outcome = outcome.with_note(format!(
                    "still draining: {}",
                    list(&config.draining_listeners.iter().collect::<Vec<_>>())
                ));
            }
            outcome
        }
        ProxyExpectation::Listener {
            name,
            present,
            rds,
            listener_filters,
            filter_chains,
            default_chain,
        } => {
            let what = format!("{proxy}: listener {name}");
            let Some(listener) = config.listeners.get(name) else {
                return absent(what, *present);
            };
            if !present {
                return Outcome {
                    what,
                    passed: false,
                    expected: "absent".into(),
                    actual: "present".into(),
                    note: None,
                };
            }
            let mut expected = Vec::new();
            let mut actual = Vec::new();
            if let Some(rds) = rds {
                expected.push(format!("RDS {rds} from ADS"));
                actual.push(match listener_rds(listener) {
                    Some((name, true)) => format!("RDS {name} from ADS"),
                    Some((name, false)) => format!("RDS {name} not from ADS"),
                    None => "no HTTP connection manager with RDS".into(),
                });
            }
            if let Some(filters) = listener_filters {
                expected.push(format!("listener filters {}", list(filters)));
                let seen: Vec<String> = listener
                    .get("listener_filters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|f| str_at(f, "/name"))
                    .collect();
                actual.push(format!("listener filters {}", list(&seen)));
            }
            if let Some(chains) = filter_chains {
                let wanted: Vec<String> = chains
                    .iter()
                    .map(|c| describe_chain(&c.server_names, &c.cluster))
                    .collect();
                expected.push(format!("chains {}", list(&wanted)));
                let seen: Vec<String> = listener
                    .get("filter_chains")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|c| describe_chain(&chain_server_names(c), &chain_target(c)))
                    .collect();
                actual.push(format!("chains {}", list(&seen)));
            }
            if let Some(default) = default_chain {
                expected.push(format!("default chain to {default}"));
                let seen = listener
                    .get("default_filter_chain")
                    .map(chain_target)
                    .unwrap_or_else(|| "none".into());
                actual.push(format!("default chain to {seen}"));
            }
            if expected.is_empty() {
                expected.push("present".to_string());
                actual.push("present".to_string());
            }
            let (expected, actual) = (expected.join(", "), actual.join(", "));
            Outcome::compare(what, expected, actual)
        }
        ProxyExpectation::VirtualHostNames {
            route_config,
            names,
        } => {
            let what = format!("{proxy}: route config {route_config}: virtual hosts");
            match config.route_configs.get(route_config) {
                None => Outcome {
                    what,
                    passed: false,
                    expected: list(names),
                    actual: "no such route config".into(),
                    note: None,
                },
                Some(rc) => {
                    let actual: Vec<String> = virtual_hosts(rc)
                        .filter_map(|vh| str_at(vh, "/name"))
                        .collect();
                    Outcome::compare(what, list(names), list(&actual))
                }
            }
        }
        ProxyExpectation::VirtualHost {
            route_config,
            name,
            domains,
            routes,
            cluster,
            timeout,
            direct_response,
        } => {
            let what = format!("{proxy}: route config {route_config}: virtual host {name}");
            let mut expected = Vec::new();
            if let Some(d) = domains {
                expected.push(format!("domains {}", list(d)));
            }
            if let Some(n) = routes {
                expected.push(format!("{n} routes"));
            }
            if let Some(c) = cluster {
                expected.push(format!("every route to {c}"));
            }
            if let Some(t) = timeout {
                expected.push(format!("every route's timeout {}", seconds(*t)));
            }
            if let Some(status) = direct_response {
                expected.push(format!("every route answers {status} itself"));
            }
            let expected_text = expected.join(", ");
            let Some(vh) = config.route_configs.get(route_config).and_then(|rc| {
                virtual_hosts(rc).find(|vh| str_at(vh, "/name").as_deref() == Some(name))
            }) else {
                return Outcome {
                    what,
                    passed: false,
                    expected: expected_text,
                    actual: "no such virtual host".into(),
                    note: None,
                };
            };
            let actual_domains: Vec<String> = vh
                .get("domains")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect();
            let route_list: Vec<&Value> = vh
                .get("routes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .collect();
            let targets: Vec<String> = route_list.iter().map(|r| route_target(r)).collect();
            let mut actual = Vec::new();
            let mut passed = true;
            if let Some(d) = domains {
                passed &= *d == actual_domains;
                actual.push(format!("domains {}", list(&actual_domains)));
            }
            if let Some(n) = routes {
                passed &= *n == route_list.len();
                actual.push(format!("{} routes", route_list.len()));
            }
            if let Some(c) = cluster {
                passed &= !targets.is_empty() && targets.iter().all(|t| t == c);
                actual.push(format!("routes to {}", list(&targets)));
            }
            if let Some(t) = timeout {
                let seen: Vec<String> = route_list
                    .iter()
                    .map(|r| match route_timeout(r) {
                        Some(d) => seconds(d * time_scale),
                        None => "none".into(),
                    })
                    .collect();
                passed &= !seen.is_empty() && seen.iter().all(|s| *s == seconds(*t));
                let scaled = if time_scale > 1 {
                    format!(" (in the tutorial's time; this backend runs {time_scale}× faster)")
                } else {
                    String::new()
                };
                actual.push(format!("timeouts {}{scaled}", list(&seen)));
            }
            if let Some(status) = direct_response {
                let wanted = format!("direct response {status}");
                passed &= !targets.is_empty() && targets.iter().all(|t| *t == wanted);
                actual.push(format!("routes to {}", list(&targets)));
            }
            Outcome {
                what,
                passed,
                expected: expected_text,
                actual: actual.join(", "),
                note: None,
            }
        }
        ProxyExpectation::Cluster {
            name,
            present,
            discovery,
            lb_policy,
            tls,
            endpoints,
        } => {
            let what = format!("{proxy}: cluster {name}");
            let Some(cluster) = config.clusters.get(name) else {
                return absent(what, *present);
            };
            let mut expected = vec![if *present { "present" } else { "absent" }.to_string()];
            let mut actual = vec!["present".to_string()];
            let mut passed = *present;
            if let Some(d) = discovery {
                // Envoy leaves enum defaults out of its JSON: no `type` is STATIC.
                let seen = str_at(cluster, "/type").unwrap_or_else(|| "STATIC".into());
                passed &= *d == seen;
                expected.push(format!("type {d}"));
                actual.push(format!("type {seen}"));
            }
            if let Some(lb) = lb_policy {
                let seen = str_at(cluster, "/lb_policy").unwrap_or_else(|| "ROUND_ROBIN".into());
                passed &= *lb == seen;
                expected.push(format!("lb_policy {lb}"));
                actual.push(format!("lb_policy {seen}"));
            }
            if let Some(tls) = tls {
                let seen = cluster_tls(cluster);
                passed &= *tls == seen;
                expected.push(describe_tls(tls));
                actual.push(describe_tls(&seen));
            }
            if let Some(wanted) = endpoints {
                let assignment = cluster
                    .get("load_assignment")
                    .or_else(|| config.endpoints.get(name));
                let seen = assignment.map(endpoint_addresses).unwrap_or_default();
                passed &= *wanted == seen;
                expected.push(format!("endpoints {}", list(wanted)));
                actual.push(format!("endpoints {}", list(&seen)));
            }
            Outcome {
                what,
                passed,
                expected: expected.join(", "),
                actual: actual.join(", "),
                note: None,
            }
        }
    }
}

/// A duration as suites write it: `3s`, `0.15s`.
fn seconds(d: std::time::Duration) -> String {
    let text = format!("{:.3}", d.as_secs_f64());
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}s")
}

/// A route's timeout, read from Envoy's JSON (`"3s"`, `"0.150s"`); `None` when it has none.
fn route_timeout(route: &Value) -> Option<std::time::Duration> {
    let text = str_at(route, "/route/timeout")?;
    let secs: f64 = text.strip_suffix('s')?.parse().ok()?;
    Some(std::time::Duration::from_secs_f64(secs))
}

/// The SNI names a filter chain matches.
fn chain_server_names(chain: &Value) -> Vec<String> {
    chain
        .pointer("/filter_chain_match/server_names")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect()
}

/// Where a filter chain sends: its TCP proxy's cluster, or the route config of its HTTP
/// connection manager (`rds <name>`).
fn chain_target(chain: &Value) -> String {
    let filters = chain
        .get("filters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for filter in &filters {
        let config = filter.get("typed_config");
        let kind = config
            .and_then(|c| c.get("@type"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind.ends_with(".TcpProxy") {
            return config
                .and_then(|c| str_at(c, "/cluster"))
                .unwrap_or_else(|| "(weighted clusters)".into());
        }
        if kind.ends_with(HCM_TYPE) {
            return config
                .and_then(|c| str_at(c, "/rds/route_config_name"))
                .map(|n| format!("rds {n}"))
                .unwrap_or_else(|| "(inline routes)".into());
        }
    }
    "(no proxy filter)".into()
}

fn describe_chain(server_names: &[String], target: &str) -> String {
    if server_names.is_empty() {
        format!("anything → {target}")
    } else {
        format!("sni {} → {target}", server_names.join(","))
    }
}

/// Where an assignment's endpoints are, as Istio gave them: the address the local network model
/// kept in their metadata when it moved them, else the address itself.
fn endpoint_addresses(assignment: &Value) -> Vec<String> {
    let metadata = format!(
        "/metadata/filter_metadata/{}/{}",
        crate::local_network::METADATA_NAMESPACE,
        crate::local_network::ISTIO_ADDRESS
    );
    assignment
        .get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|l| {
            l.get("lb_endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|e| {
            str_at(e, &metadata).or_else(|| {
                let address = str_at(e, "/endpoint/address/socket_address/address")?;
                let port = e.pointer("/endpoint/address/socket_address/port_value")?;
                Some(format!("{address}:{port}"))
            })
        })
        .collect()
}

/// The verdict on something the config does not have.
fn absent(what: String, present: bool) -> Outcome {
    Outcome {
        what,
        passed: !present,
        expected: if present { "present" } else { "absent" }.into(),
        actual: "absent".into(),
        note: None,
    }
}

fn str_at(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn virtual_hosts(rc: &Value) -> impl Iterator<Item = &Value> {
    rc.get("virtual_hosts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The route config an HTTP listener's connection manager asks RDS for, and whether over ADS.
fn listener_rds(listener: &Value) -> Option<(String, bool)> {
    let chains = listener.get("filter_chains").and_then(Value::as_array)?;
    chains
        .iter()
        .flat_map(|c| {
            c.get("filters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|f| f.get("typed_config"))
        .find(|tc| {
            tc.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(HCM_TYPE))
        })
        .and_then(|hcm| {
            let name = str_at(hcm, "/rds/route_config_name")?;
            Some((name, hcm.pointer("/rds/config_source/ads").is_some()))
        })
}

/// Where a route sends requests: a cluster, weighted clusters, or a direct response.
fn route_target(route: &Value) -> String {
    if let Some(c) = str_at(route, "/route/cluster") {
        return c;
    }
    if let Some(ws) = route
        .pointer("/route/weighted_clusters/clusters")
        .and_then(Value::as_array)
    {
        let names: Vec<String> = ws.iter().filter_map(|w| str_at(w, "/name")).collect();
        return format!("weighted{}", list(&names));
    }
    if let Some(status) = route.pointer("/direct_response/status") {
        return format!("direct response {status}");
    }
    "(unknown action)".into()
}

fn cluster_tls(cluster: &Value) -> TlsExpectation {
    let Some(socket) = cluster.get("transport_socket") else {
        return TlsExpectation::None;
    };
    if str_at(socket, "/name").as_deref() != Some("envoy.transport_sockets.tls") {
        return TlsExpectation::None;
    }
    let sni = str_at(socket, "/typed_config/sni").filter(|s| !s.is_empty());
    let auto = cluster
        .pointer(&format!(
            "/typed_extension_protocol_options/{}/upstream_http_protocol_options/auto_sni",
            HTTP_OPTIONS.replace('/', "~1")
        ))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    TlsExpectation::Originated {
        sni: match (sni, auto) {
            (Some(s), _) => s,
            (None, true) => "auto".into(),
            (None, false) => "none".into(),
        },
    }
}

fn describe_tls(tls: &TlsExpectation) -> String {
    match tls {
        TlsExpectation::None => "plain text upstream".into(),
        TlsExpectation::Originated { sni } => format!("TLS originated (sni {sni})"),
    }
}

#[cfg(test)]
mod tests;
