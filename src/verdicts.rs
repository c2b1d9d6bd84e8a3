//! Verdicts on manifests: accepted (with Istio's warnings) or refused, by what, in whose words.
//! The harness's verdict is what every run applies before anything starts (the loader: its
//! parser and its reading of Istio's validation rules); istiod's, when asked, is that of real
//! istiod given the manifest as written, whose store runs Istio's own rules. Where the two
//! disagree, the harness's reading is wrong, unless the validation corpus
//! (`tests/validation-corpus/`) says why not.
//!
//! `validate` prints them, one file at a time, as text or as JSON lines; the corpus's unit test
//! holds the harness's verdicts against Istio's, and an integration test holds them against
//! istiod's.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::control_plane::istiod::headless::{Headless, Taken};
use crate::istio::{ManifestError, parse_manifests_in};
use crate::yaml::{read_documents, to_json};

/// What refused a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RefusedBy {
    /// Reading it: not a file, not UTF-8, not YAML, an unknown kind or field, a value of the
    /// wrong type or an enum's unknown name (what the API server's decoding and Istio's decoding
    /// refuse).
    Decoding,
    /// The API server's schema, in a rule Istio's validation does not have.
    Schema,
    /// Istio's validation.
    Istio,
}

/// One judge's verdict on a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub(crate) enum Verdict {
    /// Accepted, with Istio's warnings (their messages, as the webhook returns them; istiod
    /// taking objects over its config source says none).
    Accepted { warnings: Vec<String> },
    /// Refused. `message` is the judge's whole error: the harness's names the file, line and
    /// field. `istio`, for the harness's refusals by Istio's rules, is Istio's error as its
    /// webhook prints it after `configuration is invalid: `.
    Refused {
        by: RefusedBy,
        message: String,
        istio: Option<String>,
    },
}

impl Verdict {
    pub(crate) fn accepted(&self) -> bool {
        matches!(self, Verdict::Accepted { .. })
    }

    fn refused(by: RefusedBy, message: String) -> Verdict {
        Verdict::Refused {
            by,
            message,
            istio: None,
        }
    }
}

/// One file's verdicts.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FileVerdict {
    pub file: PathBuf,
    pub harness: Verdict,
    pub istiod: Option<Verdict>,
}

impl FileVerdict {
    pub(crate) fn disagree(&self) -> bool {
        self.istiod
            .as_ref()
            .is_some_and(|i| i.accepted() != self.harness.accepted())
    }

    pub(crate) fn rejected(&self) -> bool {
        !self.harness.accepted() || self.istiod.as_ref().is_some_and(|i| !i.accepted())
    }
}

/// The harness's verdict on the manifest in `file`, its objects applied in `namespace` unless
/// they name their own.
pub(crate) fn harness_verdict(file: &Path, namespace: &str) -> Verdict {
    match crate::input::read_text(file, file) {
        Ok(text) => harness_verdict_of(file, &text, namespace),
        Err(error) => Verdict::refused(RefusedBy::Decoding, error.to_string()),
    }
}

/// The harness's verdict on `text`, read from `file`.
fn harness_verdict_of(file: &Path, text: &str, namespace: &str) -> Verdict {
    match parse_manifests_in(file, text, namespace) {
        Ok(objects) => Verdict::Accepted {
            warnings: objects
                .iter()
                .flat_map(|o| crate::istio::validate::check(o, namespace).warning_messages())
                .collect(),
        },
        Err(error) => {
            let message = error.to_string();
            match error {
                ManifestError::Invalid { report, .. } => match report.istio_message() {
                    Some(istio) => Verdict::Refused {
                        by: RefusedBy::Istio,
                        message,
                        istio: Some(istio),
                    },
                    None => Verdict::refused(RefusedBy::Schema, message),
                },
                _ => Verdict::refused(RefusedBy::Decoding, message),
            }
        }
    }
}

/// The objects of `file` as written, each given `namespace` when it names none; no check of the
/// harness's is made. The file is read as every input is (a FIFO is refused, not waited on).
pub(crate) fn raw_objects(file: &Path, namespace: &str) -> Result<Vec<Value>, String> {
    let text = crate::input::read_text(file, file).map_err(|e| e.to_string())?;
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

/// istiod's verdict on `file`.
async fn istiod_verdict(
    headless: &mut Headless,
    file: &Path,
    namespace: &str,
) -> Result<Verdict, String> {
    Ok(match raw_objects(file, namespace) {
        // What is not YAML the harness refuses alike; istiod never sees it.
        Err(reason) => Verdict::refused(RefusedBy::Decoding, reason),
        Ok(objects) if objects.is_empty() => {
            Verdict::refused(RefusedBy::Decoding, "no object in the file".into())
        }
        Ok(objects) => match headless.verdict(objects).await? {
            Taken::Accepted => Verdict::Accepted {
                warnings: Vec::new(),
            },
            Taken::Rejected(words) => Verdict::refused(RefusedBy::Istio, words),
            Taken::Unencodable(words) => Verdict::refused(
                RefusedBy::Decoding,
                format!("not given to istiod: it does not fit Istio's messages: {words}"),
            ),
        },
    })
}

/// Every file judged by the harness and, with `istiod`, by istiod.
pub(crate) async fn judge(
    files: &[PathBuf],
    mut istiod: Option<&mut Headless>,
    namespace: &str,
) -> Result<Vec<FileVerdict>, String> {
    let mut out = Vec::new();
    for file in files {
        let harness = harness_verdict(file, namespace);
        let istiod = match istiod.as_deref_mut() {
            None => None,
            Some(headless) => Some(istiod_verdict(headless, file, namespace).await?),
        };
        out.push(FileVerdict {
            file: file.clone(),
            harness,
            istiod,
        });
    }
    Ok(out)
}

/// One line per file and judge, then the disagreements called out.
pub(crate) fn render(verdicts: &[FileVerdict], istiod_name: Option<&str>) -> String {
    let word = |v: &Verdict| match v {
        Verdict::Accepted { warnings } => {
            let mut out = "accepted".to_string();
            for warning in warnings {
                out.push_str(&format!("\n    warning: {warning}"));
            }
            out
        }
        Verdict::Refused { message, .. } => format!("rejected: {message}"),
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
    out.push_str(&summary(verdicts, istiod_name.is_some()));
    out
}

/// One JSON object per file, a line each, then nothing else: for programs (the istiod corpus
/// test among them).
pub(crate) fn render_json(verdicts: &[FileVerdict]) -> String {
    verdicts
        .iter()
        .map(|v| serde_json::to_string(v).expect("a verdict serializes") + "\n")
        .collect()
}

fn summary(verdicts: &[FileVerdict], with_istiod: bool) -> String {
    let rejected = verdicts.iter().filter(|v| v.rejected()).count();
    let disagree = verdicts.iter().filter(|v| v.disagree()).count();
    format!(
        "== {} files: {} accepted, {} rejected{}\n",
        verdicts.len(),
        verdicts.len() - rejected,
        rejected,
        if with_istiod {
            format!(", {disagree} where the harness and istiod disagree")
        } else {
            String::new()
        }
    )
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
        let Verdict::Refused { by, message, .. } = harness_verdict(&file, "default") else {
            panic!("the typo was accepted");
        };
        assert_eq!(by, RefusedBy::Decoding);
        assert!(message.contains("resolutoin"), "{message}");
    }

    #[test]
    fn istios_words_and_the_harness_place_both_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("se.yaml");
        std::fs::write(
            &file,
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: a\nspec:\n  hosts: [a.example.com]\n  ports:\n  - number: 80\n    name: http\n    protocol: HTTP\n  - number: 81\n    name: http\n    protocol: HTTP\n",
        )
        .unwrap();
        let Verdict::Refused { by, message, istio } = harness_verdict(&file, "default") else {
            panic!("duplicate port names were accepted");
        };
        assert_eq!(by, RefusedBy::Istio);
        assert_eq!(
            istio.as_deref(),
            Some("service entry port name \"http\" already defined")
        );
        assert!(
            message.starts_with(&format!("{}:", file.display())),
            "{message}"
        );
        assert!(message.contains("spec.ports[1].name"), "{message}");
    }

    #[test]
    fn disagreement_is_a_different_verdict_either_way() {
        let ok = || Verdict::Accepted {
            warnings: Vec::new(),
        };
        let no = || Verdict::refused(RefusedBy::Istio, "x".into());
        let v = |harness: Verdict, istiod: Option<Verdict>| FileVerdict {
            file: "f".into(),
            harness,
            istiod,
        };
        assert!(v(ok(), Some(no())).disagree());
        assert!(v(no(), Some(ok())).disagree());
        assert!(!v(no(), Some(no())).disagree());
        assert!(!v(ok(), None).disagree());
        assert!(v(ok(), Some(no())).rejected());
        assert!(!v(ok(), Some(ok())).rejected());
    }

    #[test]
    fn json_lines_carry_both_verdicts() {
        let line = render_json(&[FileVerdict {
            file: "f.yaml".into(),
            harness: Verdict::Refused {
                by: RefusedBy::Istio,
                message: "f.yaml:9:7: ...".into(),
                istio: Some("port name must be set".into()),
            },
            istiod: Some(Verdict::Accepted {
                warnings: Vec::new(),
            }),
        }]);
        let value: Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(value["file"], "f.yaml");
        assert_eq!(value["harness"]["verdict"], "refused");
        assert_eq!(value["harness"]["by"], "istio");
        assert_eq!(value["harness"]["istio"], "port name must be set");
        assert_eq!(value["istiod"]["verdict"], "accepted");
    }
}
