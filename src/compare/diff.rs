//! Two control planes' config for one proxy, compared resource by resource and field by field.
//!
//! Resources are matched by type and name. Within a resource, lists whose entries all carry a
//! distinct `name` (filter chains, virtual hosts, filters) are matched by name, so one missing
//! entry does not make every later one look different; other lists are matched by position. An
//! object whose `@type` differs is one difference, not one per field.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// One field that differs; `None` where a side does not have it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldDiff {
    /// `filter_chains[name=x].filters[0].typed_config.stat_prefix`; empty for the whole resource.
    pub path: String,
    pub builtin: Option<Value>,
    pub istiod: Option<Value>,
}

/// How one resource compares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Identical,
    Different(Vec<FieldDiff>),
    OnlyBuiltin,
    OnlyIstiod,
}

/// One resource's comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Compared {
    /// `cluster`, `endpoint`, `listener` or `route`.
    pub kind: &'static str,
    pub name: String,
    pub verdict: Verdict,
}

/// Compare two sets of resources of `kind`, each by name.
pub(crate) fn compare(
    kind: &'static str,
    builtin: &BTreeMap<String, Value>,
    istiod: &BTreeMap<String, Value>,
) -> Vec<Compared> {
    let names: BTreeSet<&String> = builtin.keys().chain(istiod.keys()).collect();
    names
        .into_iter()
        .map(|name| {
            let verdict = match (builtin.get(name), istiod.get(name)) {
                (Some(b), Some(i)) => {
                    let diffs = diff(b, i);
                    if diffs.is_empty() {
                        Verdict::Identical
                    } else {
                        Verdict::Different(diffs)
                    }
                }
                (Some(_), None) => Verdict::OnlyBuiltin,
                (None, _) => Verdict::OnlyIstiod,
            };
            Compared {
                kind,
                name: name.clone(),
                verdict,
            }
        })
        .collect()
}

/// Every field where `builtin` and `istiod` differ.
pub(crate) fn diff(builtin: &Value, istiod: &Value) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    walk(String::new(), Some(builtin), Some(istiod), &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(path: String, b: Option<&Value>, i: Option<&Value>, out: &mut Vec<FieldDiff>) {
    match (b, i) {
        (Some(Value::Object(b)), Some(Value::Object(i))) if b.get("@type") == i.get("@type") => {
            let keys: BTreeSet<&String> = b.keys().chain(i.keys()).collect();
            for key in keys {
                walk(join(&path, key), b.get(key), i.get(key), out);
            }
        }
        (Some(Value::Array(b)), Some(Value::Array(i))) => match (names(b), names(i)) {
            (Some(bn), Some(in_)) => {
                let all: BTreeSet<&str> = bn.keys().chain(in_.keys()).copied().collect();
                for name in all {
                    walk(
                        format!("{path}[name={name}]"),
                        bn.get(name).copied(),
                        in_.get(name).copied(),
                        out,
                    );
                }
            }
            _ => {
                for index in 0..b.len().max(i.len()) {
                    walk(format!("{path}[{index}]"), b.get(index), i.get(index), out);
                }
            }
        },
        (b, i) if b == i => {}
        (b, i) => out.push(FieldDiff {
            path,
            builtin: b.cloned(),
            istiod: i.cloned(),
        }),
    }
}

/// The entries by name, when every entry is an object with a distinct `name`.
fn names(list: &[Value]) -> Option<BTreeMap<&str, &Value>> {
    let mut out = BTreeMap::new();
    for entry in list {
        let name = entry.get("name")?.as_str()?;
        if out.insert(name, entry).is_some() {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn equal_resources_have_no_difference_and_a_changed_leaf_is_named_by_its_path() {
        let a = json!({"name": "x", "connect_timeout": "10s", "lb": {"policy": "RR"}});
        assert!(diff(&a, &a.clone()).is_empty());
        let b = json!({"name": "x", "connect_timeout": "5s", "lb": {"policy": "RR"}, "extra": 1});
        let diffs = diff(&a, &b);
        assert_eq!(
            diffs,
            vec![
                FieldDiff {
                    path: "connect_timeout".into(),
                    builtin: Some(json!("10s")),
                    istiod: Some(json!("5s"))
                },
                FieldDiff {
                    path: "extra".into(),
                    builtin: None,
                    istiod: Some(json!(1))
                },
            ]
        );
    }

    #[test]
    fn named_entries_are_matched_by_name_and_others_by_position() {
        let a = json!({"chains": [{"name": "a", "v": 1}, {"name": "b", "v": 2}]});
        let b = json!({"chains": [{"name": "new", "v": 0}, {"name": "a", "v": 1}, {"name": "b", "v": 3}]});
        let paths: Vec<String> = diff(&a, &b).into_iter().map(|d| d.path).collect();
        assert_eq!(paths, ["chains[name=b].v", "chains[name=new]"]);
        let a = json!({"list": [1, 2]});
        let b = json!({"list": [1, 3, 4]});
        let paths: Vec<String> = diff(&a, &b).into_iter().map(|d| d.path).collect();
        assert_eq!(paths, ["list[1]", "list[2]"]);
    }

    #[test]
    fn another_type_is_one_difference_and_resources_only_on_one_side_are_said_so() {
        let a = json!({"typed_config": {"@type": "t/A", "x": 1}});
        let b = json!({"typed_config": {"@type": "t/B", "y": 2}});
        let diffs = diff(&a, &b);
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].path, "typed_config");
        let builtin = BTreeMap::from([("x".to_string(), json!({})), ("y".to_string(), json!({}))]);
        let istiod = BTreeMap::from([
            ("y".to_string(), json!({"a": 1})),
            ("z".to_string(), json!({})),
        ]);
        let verdicts: Vec<(String, bool)> = compare("cluster", &builtin, &istiod)
            .into_iter()
            .map(|c| (c.name, matches!(c.verdict, Verdict::Identical)))
            .collect();
        assert_eq!(verdicts.len(), 3);
        let compared = compare("cluster", &builtin, &istiod);
        assert_eq!(compared[0].verdict, Verdict::OnlyBuiltin);
        assert!(matches!(compared[1].verdict, Verdict::Different(_)));
        assert_eq!(compared[2].verdict, Verdict::OnlyIstiod);
    }
}
