//! `kubectl delete` as the tutorials write it: a kind, one or more names, and the flags their
//! cleanups use (`-n`/`--namespace`, `--ignore-not-found`). Parsed into one delete per object,
//! in order; anything else kubectl would take is refused by name.

use crate::istio::{Kind, ObjectKey};

/// One object a `kubectl delete` line deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delete {
    pub key: ObjectKey,
    /// `--ignore-not-found`: an object that is not there is no error.
    pub ignore_not_found: bool,
}

/// The objects `kubectl delete <text>` deletes, with `namespace` as kubectl's default.
pub(crate) fn parse_delete(text: &str, namespace: &str) -> Result<Vec<Delete>, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut namespace = namespace.to_string();
    let mut ignore_not_found = false;
    let mut positional = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        match word {
            "-n" | "--namespace" => {
                let Some(value) = words.get(i + 1) else {
                    return Err(format!("delete {text:?}: {word} needs a namespace"));
                };
                namespace = value.to_string();
                i += 1;
            }
            "--ignore-not-found" | "--ignore-not-found=true" => ignore_not_found = true,
            "--ignore-not-found=false" => ignore_not_found = false,
            _ => {
                if let Some(value) = word.strip_prefix("--namespace=") {
                    namespace = value.to_string();
                } else if word.starts_with('-') {
                    return Err(format!(
                        "delete {text:?}: {word} is not a flag the harness takes (-n, --namespace, --ignore-not-found)"
                    ));
                } else {
                    positional.push(word);
                }
            }
        }
        i += 1;
    }
    let Some((kind, names)) = positional.split_first() else {
        return Err(format!(
            "delete {text:?}: expected `<kind> <name>` (one or more names), as kubectl delete takes them"
        ));
    };
    if names.is_empty() {
        return Err(format!(
            "delete {text:?}: expected `<kind> <name>` (one or more names), as kubectl delete takes them"
        ));
    }
    let kind = Kind::from_cli_name(kind).ok_or_else(|| {
        format!(
            "delete {text:?}: unknown kind {kind:?} (serviceentry, gateway, virtualservice, destinationrule)"
        )
    })?;
    Ok(names
        .iter()
        .map(|name| Delete {
            key: ObjectKey {
                kind,
                namespace: namespace.clone(),
                name: name.to_string(),
            },
            ignore_not_found,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<(String, bool)> {
        parse_delete(text, "default")
            .unwrap()
            .into_iter()
            .map(|d| (d.key.to_string(), d.ignore_not_found))
            .collect()
    }

    #[test]
    fn the_cleanups_of_the_series_parse() {
        assert_eq!(
            keys("serviceentry httpbin-ext google"),
            [
                ("ServiceEntry default/httpbin-ext".to_string(), false),
                ("ServiceEntry default/google".to_string(), false)
            ]
        );
        assert_eq!(
            keys("virtualservice httpbin-ext --ignore-not-found=true"),
            [("VirtualService default/httpbin-ext".to_string(), true)]
        );
        assert_eq!(
            keys("serviceentry mysql-external -n default"),
            [("ServiceEntry default/mysql-external".to_string(), false)]
        );
        assert_eq!(
            keys("gateway --namespace=istio-system egress"),
            [("Gateway istio-system/egress".to_string(), false)]
        );
    }

    #[test]
    fn what_kubectl_would_do_otherwise_is_refused() {
        for (text, needle) in [
            ("serviceentry", "expected `<kind> <name>`"),
            ("pod sleep", "unknown kind \"pod\""),
            ("serviceentry cnn --all", "--all is not a flag"),
            ("serviceentry cnn -n", "-n needs a namespace"),
        ] {
            let err = parse_delete(text, "default").unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
