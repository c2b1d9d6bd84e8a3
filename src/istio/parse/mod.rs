//! Reading Istio manifests: a file of `---`-separated documents in, [`IstioObject`]s out, each
//! decoded into its kind's typed model (`super::api`) and checked against Istio's own rules
//! (`super::validate`). Every error names the file, the line and column, and the field's path
//! (`spec.trafficPolicy.portLevelSettings[0].tls.mode`).
//!
//! What it does not do: read anything but the one file, check one object against another (a
//! VirtualService naming a gateway that does not exist is a control plane's concern), or decide
//! what a control plane can translate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::api::{DestinationRule, Gateway, ServiceEntry, VirtualService};
use super::object::{IstioObject, Kind, SourceRef, Spec, UntranslatedField};
use super::validate::{self, Finding, Report};
use crate::input::ReadError;
use crate::yaml::{self, FieldError, FieldPath, Node, Yaml};

/// The `apiVersion`s accepted for the four kinds.
const API_VERSIONS: [&str; 3] = [
    "networking.istio.io/v1alpha3",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1",
];

/// Why a manifest could not be turned into Istio objects.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ManifestError {
    /// Not a readable regular file of UTF-8 text.
    #[error(transparent)]
    Read(#[from] ReadError),

    /// Nothing but comments and blank lines, as `kubectl apply -f` refuses it.
    #[error(
        "{}:1: no objects passed to apply: the manifest is empty or only comments (kubectl apply -f refuses it)",
        .file.display()
    )]
    Empty { file: PathBuf },

    /// Malformed YAML, a duplicate key, an unknown or missing field, a value of the wrong shape.
    #[error(transparent)]
    Field(#[from] Box<FieldError>),

    #[error(
        "{at}: unknown kind `{kind}` (apiVersion `{api_version}`): expected ServiceEntry, Gateway, VirtualService or DestinationRule"
    )]
    UnknownKind {
        at: String,
        kind: String,
        api_version: String,
    },

    #[error(
        "{at}: unknown apiVersion `{api_version}` for {kind}: expected networking.istio.io/v1alpha3, networking.istio.io/v1beta1 or networking.istio.io/v1"
    )]
    UnknownApiVersion {
        at: String,
        kind: Kind,
        api_version: String,
    },

    /// A manifest Istio's validation (or the API server's schema) refuses, in Istio's words:
    /// the first finding, then any others, each at its place.
    #[error("{at}: {kind} {name}: {path}: {message}{}", more_lines(.more))]
    Invalid {
        at: String,
        kind: Kind,
        name: String,
        path: String,
        message: String,
        /// The other findings, `file:line:column: path: message` each (boxed: the error stays
        /// small on the happy path).
        more: Box<[String]>,
        /// Everything the rules found.
        report: Box<Report>,
    },
}

/// Reads `file` and parses it with [`parse_manifests`] (the suite loader reads fixtures itself,
/// confined to the suite's fixtures directory).
#[cfg(test)]
pub(crate) fn load_manifests(file: &Path) -> Result<Vec<IstioObject>, ManifestError> {
    let text = crate::input::read_text(file, file)?;
    parse_manifests(file, &text)
}

/// [`parse_manifests_in`] the namespace `kubectl` applies to by default, `default`.
#[cfg(test)]
pub(crate) fn parse_manifests(file: &Path, text: &str) -> Result<Vec<IstioObject>, ManifestError> {
    parse_manifests_in(file, text, DEFAULT_NAMESPACE)
}

/// The namespace `kubectl` applies to when neither the manifest nor the suite names one.
#[cfg(test)]
pub(crate) const DEFAULT_NAMESPACE: &str = "default";

/// Parses `text`, a stream of Istio objects read from `file` (used in errors and in each
/// object's [`SourceRef`]) and applied in `namespace` unless an object names its own (Istio's
/// rules about `exportTo` and credentials depend on it). Empty documents are skipped, but a file
/// with none is refused; the first error ends parsing.
pub(crate) fn parse_manifests_in(
    file: &Path,
    text: &str,
    namespace: &str,
) -> Result<Vec<IstioObject>, ManifestError> {
    let documents = yaml::read_documents(file, text)?;
    if documents.is_empty() {
        return Err(ManifestError::Empty {
            file: file.to_path_buf(),
        });
    }
    documents
        .into_iter()
        .map(|document| decode_document(file, document, namespace))
        .collect()
}

/// Top-level fields of a manifest other than the spec, read before it: the spec's shape depends
/// on the kind.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct Document<S> {
    #[allow(dead_code)] // read from the tree beforehand; declared so that it is no unknown field
    api_version: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    kind: Option<serde::de::IgnoredAny>,
    metadata: Option<Metadata>,
    spec: Option<S>,
}

#[derive(Deserialize, Default)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a mapping"
)]
struct Metadata {
    name: Option<String>,
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn decode_document(
    file: &Path,
    document: Node,
    namespace: &str,
) -> Result<IstioObject, ManifestError> {
    let root = FieldPath::default();
    if !matches!(document.value, Yaml::Map(_)) {
        return Err(FieldError::invalid(
            file,
            &document,
            &root,
            "a mapping (one Kubernetes object)",
        )
        .into());
    }
    let kind_text = top_level_string(file, &document, "kind")?;
    let api_version = top_level_string(file, &document, "apiVersion")?;
    let at = |key: &str| {
        let pos = yaml::locate(&document, &root.key(key)).value;
        format!("{}:{}:{}", file.display(), pos.line, pos.column)
    };
    let Some(kind) = Kind::ALL.into_iter().find(|k| k.to_string() == kind_text) else {
        return Err(ManifestError::UnknownKind {
            at: at("kind"),
            kind: kind_text,
            api_version,
        });
    };
    if !API_VERSIONS.contains(&api_version.as_str()) {
        return Err(ManifestError::UnknownApiVersion {
            at: at("apiVersion"),
            kind,
            api_version,
        });
    }
    let raw = yaml::to_json(&document).map_err(|pos| {
        ManifestError::Field(Box::new(FieldError {
            file: file.to_path_buf(),
            line: Some(pos.line),
            column: pos.column(),
            path: String::new(),
            problem: yaml::FieldProblem::Malformed(
                "a mapping key must be a scalar in a Kubernetes manifest".into(),
            ),
        }))
    })?;
    let (metadata, spec, record) = match kind {
        Kind::ServiceEntry => decode::<ServiceEntry>(file, &document, Spec::ServiceEntry)?,
        Kind::Gateway => decode::<Gateway>(file, &document, Spec::Gateway)?,
        Kind::VirtualService => decode::<VirtualService>(file, &document, Spec::VirtualService)?,
        Kind::DestinationRule => decode::<DestinationRule>(file, &document, Spec::DestinationRule)?,
    };
    let name_path = root.key("metadata").key("name");
    let name = match metadata.name {
        Some(name) if !name.is_empty() => name,
        Some(_) => {
            return Err(
                FieldError::invalid(file, &document, &name_path, "a non-empty name").into(),
            );
        }
        None => return Err(FieldError::missing(file, &document, &name_path).into()),
    };
    let source = SourceRef {
        file: file.to_path_buf(),
        line: document.pos.line,
        document: Arc::new(document),
    };
    let object = IstioObject {
        api_version,
        name,
        namespace: metadata.namespace,
        labels: metadata.labels,
        annotations: metadata.annotations,
        spec,
        untranslated: record
            .into_untranslated()
            .into_iter()
            .map(|(path, pos)| UntranslatedField {
                path,
                line: pos.line,
                column: pos.column,
            })
            .collect(),
        source,
        raw,
        warnings: Vec::new(),
    };
    let report = validate::check(&object, namespace);
    let at = |finding: &Finding| object.source.at(&finding.path);
    if report.refused() {
        // Istio's own errors when it has any; else the schema's.
        let findings = if report.errors.is_empty() {
            &report.schema
        } else {
            &report.errors
        };
        let first = &findings[0];
        return Err(ManifestError::Invalid {
            at: at(first),
            kind,
            name: object.name.clone(),
            path: first.path.to_string(),
            message: first.message.clone(),
            more: findings[1..]
                .iter()
                .map(|f| format!("{}: {}: {}", at(f), f.path, f.message))
                .collect(),
            report: Box::new(report),
        });
    }
    let warnings = report
        .warnings
        .iter()
        .map(|w| {
            format!(
                "{}: {kind} {}: {}: {}",
                at(w),
                object.name,
                w.path,
                w.message
            )
        })
        .collect();
    Ok(IstioObject { warnings, ..object })
}

/// The findings after the first, one per line.
fn more_lines(more: &[String]) -> String {
    more.iter().map(|m| format!("\n  {m}")).collect()
}

type Decoded = (Metadata, Spec, yaml::Record);

/// Decodes the document with `S` as its spec.
fn decode<S: DeserializeOwned + Default>(
    file: &Path,
    document: &Node,
    wrap: fn(S) -> Spec,
) -> Result<Decoded, ManifestError> {
    let (decoded, record): (Document<S>, _) =
        yaml::decode(file, document, document, FieldPath::default())?;
    Ok((
        decoded.metadata.unwrap_or_default(),
        wrap(decoded.spec.unwrap_or_default()),
        record,
    ))
}

/// `kind` or `apiVersion`: needed before the rest of the document can be read.
fn top_level_string(file: &Path, document: &Node, key: &str) -> Result<String, ManifestError> {
    let path = FieldPath::default().key(key);
    match document.get(key) {
        None => Err(FieldError::missing(file, document, &path).into()),
        Some((
            _,
            Node {
                value: Yaml::Str(s),
                ..
            },
        )) => Ok(s.clone()),
        Some(_) => Err(FieldError::invalid(file, document, &path, "a string").into()),
    }
}

#[cfg(test)]
mod tests;
