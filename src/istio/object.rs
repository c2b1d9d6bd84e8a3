//! One Istio object as applied: its kind, its name, its typed spec, where it was written, and
//! the document as written (for backends that hand it to a Kubernetes API unchanged).

use std::path::PathBuf;
use std::sync::Arc;

use super::api::{DestinationRule, Gateway, ServiceEntry, VirtualService};
use crate::yaml::{FieldPath, Node, locate};

/// The four kinds of `networking.istio.io` a suite may apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    ServiceEntry,
    Gateway,
    VirtualService,
    DestinationRule,
}

impl Kind {
    pub(crate) const ALL: [Kind; 4] = [
        Kind::ServiceEntry,
        Kind::Gateway,
        Kind::VirtualService,
        Kind::DestinationRule,
    ];

    /// The name `kubectl delete <kind> <name>` accepts (lowercase singular).
    pub(crate) fn cli_name(self) -> &'static str {
        match self {
            Kind::ServiceEntry => "serviceentry",
            Kind::Gateway => "gateway",
            Kind::VirtualService => "virtualservice",
            Kind::DestinationRule => "destinationrule",
        }
    }

    /// The resource's plural, as the Kubernetes API path uses it.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            Kind::ServiceEntry => "serviceentries",
            Kind::Gateway => "gateways",
            Kind::VirtualService => "virtualservices",
            Kind::DestinationRule => "destinationrules",
        }
    }

    pub(crate) fn from_cli_name(name: &str) -> Option<Kind> {
        let name = name.to_ascii_lowercase();
        Kind::ALL.into_iter().find(|k| {
            name == k.cli_name() || name == k.plural() || name == k.to_string().to_ascii_lowercase()
        })
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::ServiceEntry => "ServiceEntry",
            Kind::Gateway => "Gateway",
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
        })
    }
}

// Few objects live at once and none is moved often: boxing the larger specs buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Spec {
    ServiceEntry(ServiceEntry),
    Gateway(Gateway),
    VirtualService(VirtualService),
    DestinationRule(DestinationRule),
}

impl Spec {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Spec::ServiceEntry(_) => Kind::ServiceEntry,
            Spec::Gateway(_) => Kind::Gateway,
            Spec::VirtualService(_) => Kind::VirtualService,
            Spec::DestinationRule(_) => Kind::DestinationRule,
        }
    }
}

/// Where an object came from: its file, the line its document starts at, and the document's
/// located tree, from which any field's line and column can be found.
#[derive(Debug, Clone)]
pub(crate) struct SourceRef {
    pub file: PathBuf,
    /// 1-based line of the document's first line.
    pub line: usize,
    pub document: Arc<Node>,
}

impl PartialEq for SourceRef {
    fn eq(&self, other: &SourceRef) -> bool {
        self.file == other.file && self.line == other.line
    }
}

impl SourceRef {
    /// `file:line:column` of the field at `path` (of its key, or of the mapping it is missing
    /// from).
    pub(crate) fn at(&self, path: &FieldPath) -> String {
        let pos = locate(&self.document, path).key;
        match pos.column() {
            Some(column) => format!("{}:{}:{column}", self.file.display(), pos.line),
            None => format!("{}:{}", self.file.display(), pos.line),
        }
    }
}

/// A field the builtin control plane does not translate, where a manifest sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UntranslatedField {
    pub path: FieldPath,
    pub line: usize,
    pub column: usize,
}

/// Identifies an object the way `kubectl` does: kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One parsed and validated Istio object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IstioObject {
    /// As written: `networking.istio.io/v1alpha3`, `/v1beta1` or `/v1`.
    pub api_version: String,
    pub name: String,
    /// `None` when the manifest leaves it out; the namespace it is applied to decides.
    pub namespace: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub spec: Spec,
    pub source: SourceRef,
    /// Every field set that the builtin control plane does not translate, in document order.
    pub untranslated: Vec<UntranslatedField>,
    /// The document as written, for backends that send it to a Kubernetes API unchanged.
    pub raw: serde_json::Value,
    /// What Istio accepts with a warning, `file:line:column: Kind name: path: message` each.
    pub warnings: Vec<String>,
}

impl IstioObject {
    pub(crate) fn kind(&self) -> Kind {
        self.spec.kind()
    }

    /// The key under which the object lives once applied, `default_namespace` filling in a
    /// namespace the manifest leaves out.
    pub(crate) fn key(&self, default_namespace: &str) -> ObjectKey {
        ObjectKey {
            kind: self.kind(),
            namespace: self
                .namespace
                .clone()
                .unwrap_or_else(|| default_namespace.to_string()),
            name: self.name.clone(),
        }
    }
}
