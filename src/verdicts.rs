//! `validate`: each manifest file judged by the harness (its parser and its reading of Istio's
//! validation rules, what every run applies before anything starts) and, when asked, by istiod
//! itself: the manifest as written, handed to istiod's store, which runs Istio's own rules.
//! Where the two disagree, the harness's reading is wrong.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::control_plane::istiod::headless::Headless;
use crate::istio::load_manifests;
use crate::yaml::{read_documents, to_json};

/// One file's verdicts: `Ok` accepted, `Err` the reason.
#[derive(Debug, Clone)]
pub(crate) struct FileVerdict {
    pub file: PathBuf,
    pub harness: Result<(), String>,
    pub istiod: Option<Result<(), String>>,
}

impl FileVerdict {
    pub(crate) fn disagree(&self) -> bool {
        self.istiod
            .as_ref()
            .is_some_and(|i| i.is_ok() != self.harness.is_ok())
    }

    pub(crate) fn rejected(&self) -> bool {
        self.harness.is_err() || self.istiod.as_ref().is_some_and(Result::is_err)
    }
}

/// The harness's verdict on `file`.
pub(crate) fn harness_verdict(file: &Path) -> Result<(), String> {
    load_manifests(file).map(drop).map_err(|e| e.to_string())
}

/// The objects of `file` as written, each given `namespace` when it names none; no check of the
/// harness's is made.
pub(crate) fn raw_objects(file: &Path, namespace: &str) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let documents = read_documents(file, &text).map_err(|e| e.to_string())?;
    documents
        .iter()
        .map(|document| {
            let mut object = to_json(document).map_err(|pos| {
                format!("{}:{}: not JSON-compatible YAML", file.display(), pos.line)
            })?;
            if object
                .get("metadata")
                .is_none_or(|m| m.get("namespace").is_none())
            {
                object["metadata"]["namespace"] = Value::String(namespace.to_string());
            }
            Ok(object)
        })
        .collect()
}

/// Every file judged by the harness and, with `istiod`, by istiod.
pub(crate) async fn judge(
    files: &[PathBuf],
    mut istiod: Option<&mut Headless>,
    namespace: &str,
) -> Result<Vec<FileVerdict>, String> {
    let mut out = Vec::new();
    for file in files {
        let harness = harness_verdict(file);
        let istiod = match istiod.as_deref_mut() {
            None => None,
            Some(headless) => Some(match raw_objects(file, namespace) {
                // What is not YAML the harness refuses alike; istiod never sees it.
                Err(reason) => Err(reason),
                Ok(objects) if objects.is_empty() => Err("no object in the file".into()),
                Ok(objects) => headless.verdict(objects).await?,
            }),
        };
        out.push(FileVerdict {
            file: file.clone(),
            harness,
            istiod,
        });
    }
    Ok(out)
}

/// One line per file, both verdicts, and the disagreements called out.
pub(crate) fn render(verdicts: &[FileVerdict], istiod_name: Option<&str>) -> String {
    let word = |v: &Result<(), String>| match v {
        Ok(()) => "accepted".to_string(),
        Err(reason) => format!("rejected: {reason}"),
    };
    let mut out = String::new();
    for verdict in verdicts {
        out.push_str(&format!(
            "{}\n  harness: {}\n",
            verdict.file.display(),
            word(&verdict.harness)
        ));
        if let (Some(istiod), Some(name)) = (&verdict.istiod, istiod_name) {
            out.push_str(&format!("  {name}: {}\n", word(istiod)));
            if verdict.disagree() {
                out.push_str("  DISAGREE: the harness's reading of Istio's rules is wrong here\n");
            }
        }
    }
    let rejected = verdicts.iter().filter(|v| v.rejected()).count();
    let disagree = verdicts.iter().filter(|v| v.disagree()).count();
    out.push_str(&format!(
        "== {} files: {} accepted, {} rejected{}\n",
        verdicts.len(),
        verdicts.len() - rejected,
        rejected,
        if istiod_name.is_some() {
            format!(", {disagree} where the harness and istiod disagree")
        } else {
            String::new()
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_as_written_with_its_namespace_filled_in() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("se.yaml");
        std::fs::write(
            &file,
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: a\nspec:\n  hosts: [a]\n  resolutoin: DNS\n",
        )
        .unwrap();
        let objects = raw_objects(&file, "default").unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0]["metadata"]["namespace"], "default");
        // The typo stays: istiod is to judge it, not the harness.
        assert_eq!(objects[0]["spec"]["resolutoin"], "DNS");
        assert!(harness_verdict(&file).unwrap_err().contains("resolutoin"));
    }

    #[test]
    fn disagreement_is_a_different_verdict_either_way() {
        let v = |harness: Result<(), String>, istiod: Option<Result<(), String>>| FileVerdict {
            file: "f".into(),
            harness,
            istiod,
        };
        assert!(v(Ok(()), Some(Err("x".into()))).disagree());
        assert!(v(Err("x".into()), Some(Ok(()))).disagree());
        assert!(!v(Err("x".into()), Some(Err("y".into()))).disagree());
        assert!(!v(Ok(()), None).disagree());
        assert!(v(Ok(()), Some(Err("x".into()))).rejected());
        assert!(!v(Ok(()), Some(Ok(()))).rejected());
    }
}
