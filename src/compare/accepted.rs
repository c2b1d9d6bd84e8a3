//! The one file of differences between the builtin translator and istiod that `compare` accepts,
//! each with its reason. Anything it does not list fails the comparison.
//!
//! ```yaml
//! - proxy: sidecar          # sidecar or egress-gateway; absent: both
//!   kind: listener          # cluster, endpoint, listener or route; absent: every kind
//!   name: "0.0.0.0_*"       # the resource's name; absent: every name
//!   field: "*.stat_prefix"  # the field's path as compare prints it, or only-istiod / only-builtin
//!   reason: why the difference does not matter to what the suites check
//! ```
//!
//! In `name` and `field`, `*` matches any run of characters; everything else matches itself.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::mesh::ProxyRole;
use crate::yaml::{FieldError, FieldPath, read_documents};

/// The field pattern for a resource only istiod makes.
pub(crate) const ONLY_ISTIOD: &str = "only-istiod";
/// The field pattern for a resource only the builtin translator makes.
pub(crate) const ONLY_BUILTIN: &str = "only-builtin";
const KINDS: [&str; 4] = ["cluster", "endpoint", "listener", "route"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    proxy: Option<ProxyRole>,
    kind: Option<String>,
    name: Option<String>,
    field: String,
    reason: String,
}

/// One accepted difference.
#[derive(Debug)]
pub(crate) struct Entry {
    pub proxy: Option<ProxyRole>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub field: String,
    pub reason: String,
    /// Where it is written, for the notes on entries nothing matched.
    pub line: usize,
    used: Cell<usize>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum AcceptedError {
    #[error("cannot read {}: {source}", .file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Field(#[from] Box<FieldError>),
    #[error("{}:{line}: {message}", .file.display())]
    Invalid {
        file: PathBuf,
        line: usize,
        message: String,
    },
}

/// The accepted differences of one file.
#[derive(Debug, Default)]
pub(crate) struct Accepted {
    pub file: PathBuf,
    pub entries: Vec<Entry>,
}

impl Accepted {
    pub(crate) fn load(file: &Path) -> Result<Accepted, AcceptedError> {
        let text = std::fs::read_to_string(file).map_err(|source| AcceptedError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Accepted::parse(file, &text)
    }

    pub(crate) fn parse(file: &Path, text: &str) -> Result<Accepted, AcceptedError> {
        let mut entries = Vec::new();
        for root in read_documents(file, text)? {
            let (raw, _): (Vec<RawEntry>, _) =
                crate::yaml::decode(file, &root, &root, FieldPath::default())?;
            let lines: Vec<usize> = match &root.value {
                crate::yaml::Yaml::Seq(items) => items.iter().map(|n| n.pos.line).collect(),
                _ => Vec::new(),
            };
            for (index, raw) in raw.into_iter().enumerate() {
                let line = lines.get(index).copied().unwrap_or(root.pos.line);
                let invalid = |message: String| AcceptedError::Invalid {
                    file: file.to_path_buf(),
                    line,
                    message,
                };
                if raw.reason.trim().is_empty() {
                    return Err(invalid("an accepted difference needs its reason".into()));
                }
                if let Some(kind) = &raw.kind
                    && !KINDS.contains(&kind.as_str())
                {
                    return Err(invalid(format!(
                        "kind `{kind}` is not one of {}",
                        KINDS.join(", ")
                    )));
                }
                entries.push(Entry {
                    proxy: raw.proxy,
                    kind: raw.kind,
                    name: raw.name,
                    field: raw.field,
                    reason: raw.reason.trim().to_string(),
                    line,
                    used: Cell::new(0),
                });
            }
        }
        Ok(Accepted {
            file: file.to_path_buf(),
            entries,
        })
    }

    /// The entry that accepts this difference, if any; `field` is the path, or
    /// [`ONLY_ISTIOD`]/[`ONLY_BUILTIN`].
    pub(crate) fn accepting(
        &self,
        proxy: ProxyRole,
        kind: &str,
        name: &str,
        field: &str,
    ) -> Option<&Entry> {
        let found = self.entries.iter().find(|e| {
            e.proxy.is_none_or(|p| p == proxy)
                && e.kind.as_deref().is_none_or(|k| k == kind)
                && e.name.as_deref().is_none_or(|n| glob(n, name))
                && glob(&e.field, field)
        })?;
        found.used.set(found.used.get() + 1);
        Some(found)
    }

    /// Entries that accepted nothing so far.
    pub(crate) fn unused(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.used.get() == 0)
    }
}

/// Whether `text` matches `pattern`, whose `*` matches any run of characters.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_runs_and_nothing_else() {
        assert!(glob("*", ""));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("*.stat_prefix", "filter_chains[0].stat_prefix"));
        assert!(glob("a*b*c", "a-b-c"));
        assert!(!glob("a*b*c", "a-c-b"));
        assert!(!glob("abc", "abcd"));
        assert!(!glob("a*", "ba"));
        assert!(glob("outbound|*||*", "outbound|443||edition.cnn.com"));
        assert!(!glob("ab*ba", "aba"));
    }

    #[test]
    fn an_entry_accepts_only_what_it_names() {
        let text = "\
- proxy: sidecar
  kind: listener
  name: \"0.0.0.0_*\"
  field: \"*.stat_prefix\"
  reason: istiod names stats its own way
- field: only-istiod
  kind: cluster
  name: InboundPassthroughCluster*
  reason: inbound traffic is not part of any tutorial
";
        let accepted = Accepted::parse(Path::new("accepted.yaml"), text).unwrap();
        assert_eq!(accepted.entries.len(), 2);
        assert_eq!(accepted.entries[1].line, 6);
        let found = accepted.accepting(
            ProxyRole::Sidecar,
            "listener",
            "0.0.0.0_443",
            "filter_chains[0].stat_prefix",
        );
        assert_eq!(found.map(|e| e.line), Some(1));
        assert!(
            accepted
                .accepting(
                    ProxyRole::EgressGateway,
                    "listener",
                    "0.0.0.0_443",
                    "x.stat_prefix"
                )
                .is_none()
        );
        assert!(
            accepted
                .accepting(ProxyRole::Sidecar, "route", "0.0.0.0_443", "x.stat_prefix")
                .is_none()
        );
        assert!(
            accepted
                .accepting(
                    ProxyRole::Sidecar,
                    "cluster",
                    "InboundPassthroughClusterIpv4",
                    ONLY_ISTIOD
                )
                .is_some()
        );
        assert!(
            accepted
                .accepting(
                    ProxyRole::Sidecar,
                    "cluster",
                    "InboundPassthroughClusterIpv4",
                    ONLY_BUILTIN
                )
                .is_none()
        );
        assert_eq!(accepted.unused().count(), 0);
    }

    #[test]
    fn an_entry_without_a_reason_or_with_an_unknown_field_is_refused_with_its_line() {
        let no_reason = "- field: x\n  reason: \"  \"\n";
        let error = Accepted::parse(Path::new("a.yaml"), no_reason)
            .unwrap_err()
            .to_string();
        assert_eq!(error, "a.yaml:1: an accepted difference needs its reason");
        let typo = "- field: x\n  reason: r\n  resaon: r\n";
        let error = Accepted::parse(Path::new("a.yaml"), typo)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("a.yaml:3") && error.contains("resaon"),
            "{error}"
        );
        let kind = "- field: x\n  kind: secret\n  reason: r\n";
        let error = Accepted::parse(Path::new("a.yaml"), kind)
            .unwrap_err()
            .to_string();
        assert!(error.contains("kind `secret`"), "{error}");
    }
}
