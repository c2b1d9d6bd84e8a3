//! Envoy's admin `/config_dump`, read into the parts suites check, and normalised for the
//! no-residue comparison.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// The dynamic parts of one proxy's config, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyConfig {
    pub listeners: BTreeMap<String, Value>,
    pub warming_listeners: BTreeSet<String>,
    pub draining_listeners: BTreeSet<String>,
    pub route_configs: BTreeMap<String, Value>,
    pub clusters: BTreeMap<String, Value>,
    /// EDS assignments, by cluster name (`/config_dump?include_eds`).
    pub endpoints: BTreeMap<String, Value>,
}

fn type_suffix(config: &Value) -> &str {
    config
        .get("@type")
        .and_then(Value::as_str)
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("")
}

impl ProxyConfig {
    pub fn from_dump(dump: &Value) -> ProxyConfig {
        let mut out = ProxyConfig::default();
        let configs = dump
            .get("configs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for config in &configs {
            match type_suffix(config) {
                "ListenersConfigDump" => {
                    for l in array(config, "dynamic_listeners") {
                        let Some(name) = l.get("name").and_then(Value::as_str) else {
                            continue;
                        };
                        if let Some(listener) = l.pointer("/active_state/listener") {
                            out.listeners.insert(name.to_string(), listener.clone());
                        }
                        if l.get("warming_state").is_some() {
                            out.warming_listeners.insert(name.to_string());
                        }
                        if l.get("draining_state").is_some() {
                            out.draining_listeners.insert(name.to_string());
                        }
                    }
                }
                "RoutesConfigDump" => {
                    for r in array(config, "dynamic_route_configs") {
                        if let Some(rc) = r.get("route_config")
                            && let Some(name) = rc.get("name").and_then(Value::as_str)
                        {
                            out.route_configs.insert(name.to_string(), rc.clone());
                        }
                    }
                }
                "EndpointsConfigDump" => {
                    for e in array(config, "dynamic_endpoint_configs") {
                        if let Some(assignment) = e.get("endpoint_config")
                            && let Some(name) =
                                assignment.get("cluster_name").and_then(Value::as_str)
                        {
                            out.endpoints.insert(name.to_string(), assignment.clone());
                        }
                    }
                }
                "ClustersConfigDump" => {
                    for c in array(config, "dynamic_active_clusters") {
                        if let Some(cluster) = c.get("cluster")
                            && let Some(name) = cluster.get("name").and_then(Value::as_str)
                        {
                            out.clusters.insert(name.to_string(), cluster.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
}

fn array<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Fields that change with every push but say nothing about the config itself.
const VOLATILE: [&str; 2] = ["version_info", "last_updated"];

/// The dump as config, for comparing two states of one proxy: without versions and timestamps,
/// and without the hosts ORIGINAL_DST clusters create for each connection (those are traffic,
/// not config, and expire on their own).
pub fn normalize(dump: &Value) -> Value {
    let original_dst: BTreeSet<String> = dump
        .get("configs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| type_suffix(c) == "ClustersConfigDump")
        .flat_map(|c| array(c, "dynamic_active_clusters").chain(array(c, "static_clusters")))
        .filter_map(|c| c.get("cluster"))
        .filter(|c| c.get("type").and_then(Value::as_str) == Some("ORIGINAL_DST"))
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let mut dump = dump.clone();
    if let Some(configs) = dump.get_mut("configs").and_then(Value::as_array_mut) {
        for config in configs
            .iter_mut()
            .filter(|c| type_suffix(c) == "EndpointsConfigDump")
        {
            for key in ["dynamic_endpoint_configs", "static_endpoint_configs"] {
                if let Some(list) = config.get_mut(key).and_then(Value::as_array_mut) {
                    list.retain(|e| {
                        e.pointer("/endpoint_config/cluster_name")
                            .and_then(Value::as_str)
                            .is_none_or(|name| !original_dst.contains(name))
                    });
                }
            }
        }
    }
    strip_volatile(&dump)
}

fn strip_volatile(dump: &Value) -> Value {
    match dump {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), strip_volatile(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_volatile).collect()),
        other => other.clone(),
    }
}

/// Where two JSON values differ, as `path: before → after` lines (at most `limit`).
pub fn differences(before: &Value, after: &Value, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    diff_into("", before, after, &mut out, limit);
    out
}

fn diff_into(path: &str, a: &Value, b: &Value, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let child = format!("{path}/{k}");
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => diff_into(&child, va, vb, out, limit),
                    (Some(va), None) => out.push(format!("{child}: removed (was {})", brief(va))),
                    (None, Some(vb)) => out.push(format!("{child}: added {}", brief(vb))),
                    (None, None) => {}
                }
                if out.len() >= limit {
                    return;
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            // Name-keyed arrays (listeners, clusters, routes) read better by name than by index.
            let key = |v: &Value| named(v).map(str::to_string);
            if x.iter().chain(y.iter()).all(|v| key(v).is_some()) {
                let xa: BTreeMap<String, &Value> =
                    x.iter().map(|v| (key(v).unwrap_or_default(), v)).collect();
                let ya: BTreeMap<String, &Value> =
                    y.iter().map(|v| (key(v).unwrap_or_default(), v)).collect();
                let names: BTreeSet<&String> = xa.keys().chain(ya.keys()).collect();
                for n in names {
                    let child = format!("{path}[{n}]");
                    match (xa.get(n), ya.get(n)) {
                        (Some(va), Some(vb)) => diff_into(&child, va, vb, out, limit),
                        (Some(_), None) => out.push(format!("{child}: removed")),
                        (None, Some(_)) => out.push(format!("{child}: added")),
                        (None, None) => {}
                    }
                }
            } else if x.len() != y.len() {
                out.push(format!("{path}: {} items → {} items", x.len(), y.len()));
            } else {
                for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                    diff_into(&format!("{path}[{i}]"), va, vb, out, limit);
                }
            }
        }
        _ => out.push(format!("{path}: {} → {}", brief(a), brief(b))),
    }
}

/// The name of a dump entry, wherever Envoy keeps it.
fn named(v: &Value) -> Option<&str> {
    v.get("name")
        .or_else(|| v.pointer("/cluster/name"))
        .or_else(|| v.pointer("/route_config/name"))
        .or_else(|| v.pointer("/endpoint_config/cluster_name"))
        .and_then(Value::as_str)
}

fn brief(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 120 {
        format!("{}…", &text[..text.floor_char_boundary(117)])
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dump() -> Value {
        json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners": [
                {"name": "0.0.0.0_8443", "active_state": {"version_info": "2", "listener": {"name": "0.0.0.0_8443"}, "last_updated": "t"}},
                {"name": "old", "draining_state": {"listener": {"name": "old"}}}
            ]},
            {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs": [
                {"version_info": "1", "route_config": {"name": "http.8443", "virtual_hosts": []}}
            ]},
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters": [
                {"version_info": "1", "cluster": {"name": "BlackHoleCluster", "type": "STATIC"}}
            ]}
        ]})
    }

    #[test]
    fn reads_active_draining_routes_and_clusters() {
        let config = ProxyConfig::from_dump(&dump());
        assert_eq!(
            config.listeners.keys().collect::<Vec<_>>(),
            ["0.0.0.0_8443"]
        );
        assert!(config.draining_listeners.contains("old"));
        assert!(config.route_configs.contains_key("http.8443"));
        assert!(config.clusters.contains_key("BlackHoleCluster"));
    }

    #[test]
    fn normalizing_drops_the_hosts_original_dst_clusters_make_for_traffic() {
        let with_hosts = |hosts: Vec<Value>| {
            json!({"configs": [
                {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters": [
                    {"cluster": {"name": "PassthroughCluster", "type": "ORIGINAL_DST"}},
                    {"cluster": {"name": "outbound|80||a", "type": "EDS"}}
                ]},
                {"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump", "dynamic_endpoint_configs": [
                    {"endpoint_config": {"cluster_name": "PassthroughCluster", "endpoints": hosts.clone()}},
                    {"endpoint_config": {"cluster_name": "outbound|80||a", "endpoints": hosts}}
                ]}
            ]})
        };
        let quiet = normalize(&with_hosts(vec![]));
        let busy = normalize(&with_hosts(vec![
            json!({"lb_endpoints": [{"endpoint": {}}]}),
        ]));
        let diff = differences(&quiet, &busy, 10);
        // The EDS cluster's endpoints are config and still count; the passthrough's do not.
        assert_eq!(diff.len(), 1, "{diff:?}");
        assert!(diff[0].contains("outbound|80||a"), "{diff:?}");
    }

    #[test]
    fn normalizing_drops_versions_only() {
        let mut other = dump();
        other["configs"][0]["dynamic_listeners"][0]["active_state"]["version_info"] = json!("9");
        assert_eq!(normalize(&dump()), normalize(&other));
        other["configs"][2]["dynamic_active_clusters"][0]["cluster"]["type"] = json!("EDS");
        assert_ne!(normalize(&dump()), normalize(&other));
        let diff = differences(&normalize(&dump()), &normalize(&other), 10);
        assert_eq!(diff.len(), 1, "{diff:?}");
        assert!(
            diff[0].contains("BlackHoleCluster") && diff[0].contains("\"STATIC\" → \"EDS\""),
            "{diff:?}"
        );
    }
}
