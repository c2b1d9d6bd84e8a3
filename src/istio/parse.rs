//! Reading Istio manifests: multi-document YAML in, validated [`IstioObject`]s out.
//!
//! Every field of the four kinds' Istio API is known here. A field the translator handles is
//! converted into [`super::types`]; a real Istio field it does not handle is reported as an
//! unsupported Istio feature, never silently dropped; anything else is an unknown field. Every
//! error names the file, the line and column, and the field's full path
//! (`spec.trafficPolicy.portLevelSettings[0].tls.mode`).
//!
//! What it does not do: read anything but the one file, fill in Istio's defaults beyond the
//! proto's own zero values, or check one object against another (a VirtualService naming a
//! gateway that does not exist is the translator's concern).
//!
//! How: serde-saphyr reads each document into a [`Node`] tree that remembers where every key and
//! value sits. Private wire structs (one per Istio message, `deny_unknown_fields`) are then
//! deserialized from that tree by [`NodeDe`], a small serde `Deserializer` that carries the field
//! path. Deserializing the wire structs straight from the YAML text would lose both things we
//! need: serde-saphyr's errors have a position but no field path, and a spec's shape depends on
//! the document's `kind`, which serde can only dispatch on by buffering the document, which drops
//! positions.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_saphyr::{MessageFormatter, Spanned};

use super::types::{
    ClientTlsSettings, Destination, DestinationRule, Gateway, GatewayPort, HttpMatchRequest,
    HttpRoute, HttpRouteDestination, IstioObject, Kind, LoadBalancerSettings, Location,
    PortSelector, PortTrafficPolicy, Protocol, Resolution, Server, ServiceEntry, ServicePort,
    SimpleLb, SourceRef, Spec, Subset, TlsMode, TrafficPolicy, VirtualService,
};

/// The `apiVersion`s accepted for the four kinds.
const API_VERSIONS: [&str; 3] = [
    "networking.istio.io/v1alpha3",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1",
];

const KINDS: [Kind; 4] = [
    Kind::ServiceEntry,
    Kind::Gateway,
    Kind::VirtualService,
    Kind::DestinationRule,
];

/// Why a manifest could not be turned into Istio objects.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: cannot read manifest", .file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The text is not YAML, or not YAML a Kubernetes manifest can be (a non-scalar key).
    #[error("{}: malformed YAML: {message}", At(.file, *.line, *.column))]
    Yaml {
        file: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },

    #[error("{}: document is not a mapping", At(.file, Some(*.line), *.column))]
    NotAMapping {
        file: PathBuf,
        line: usize,
        column: Option<usize>,
    },

    #[error(
        "{}: unknown kind `{kind}` (apiVersion `{api_version}`): expected ServiceEntry, Gateway, \
         VirtualService or DestinationRule",
        At(.file, Some(*.line), *.column)
    )]
    UnknownKind {
        file: PathBuf,
        line: usize,
        column: Option<usize>,
        kind: String,
        api_version: String,
    },

    #[error(
        "{}: unknown apiVersion `{api_version}` for {kind}: expected networking.istio.io/v1alpha3, \
         networking.istio.io/v1beta1 or networking.istio.io/v1",
        At(.file, Some(*.line), *.column)
    )]
    UnknownApiVersion {
        file: PathBuf,
        line: usize,
        column: Option<usize>,
        kind: Kind,
        api_version: String,
    },

    /// A field the Istio API does not have at that place (a typo, most likely).
    #[error(
        "{}: unknown field `{field}` at {path}{}",
        At(.file, Some(*.line), *.column),
        ExpectedFields(.expected)
    )]
    UnknownField {
        file: PathBuf,
        line: usize,
        column: Option<usize>,
        /// Full path of the field, e.g. `spec.hostz`.
        path: String,
        field: String,
        /// The field names allowed where this one was found.
        expected: Vec<String>,
    },

    #[error("{}: missing required field {path}", At(.file, Some(*.line), *.column))]
    MissingField {
        file: PathBuf,
        line: usize,
        column: Option<usize>,
        path: String,
    },

    /// A value of the wrong type, out of range, or not one of an enum's names.
    #[error(
        "{}: invalid value `{value}` at {path}: expected {expected}",
        At(.file, Some(*.line), *.column)
    )]
    InvalidValue {
        file: PathBuf,
        line: usize,
        column: Option<usize>,
        path: String,
        /// The value as written (`SIMPEL`); a sequence or mapping shows as `[...]` or `{...}`.
        value: String,
        expected: String,
    },

    /// A real Istio API field or value that the translator does not support.
    #[error(
        "{}: unsupported Istio feature: {kind} {name}: {path}{}",
        At(.file, Some(*.line), *.column),
        Detail(.detail)
    )]
    Unsupported {
        file: PathBuf,
        line: usize,
        column: Option<usize>,
        kind: Kind,
        name: String,
        path: String,
        /// Why, when the path alone does not say it (a value, a missing field); may be empty.
        detail: String,
    },
}

/// `file:line:column`, leaving out what is not known.
struct At<'a>(&'a Path, Option<usize>, Option<usize>);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())?;
        if let Some(line) = self.1 {
            write!(f, ":{line}")?;
            if let Some(column) = self.2 {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

struct ExpectedFields<'a>(&'a [String]);

impl fmt::Display for ExpectedFields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => Ok(()),
            fields => write!(f, "; expected one of {}", fields.join(", ")),
        }
    }
}

struct Detail<'a>(&'a str);

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, ": {}", self.0)
        }
    }
}

/// Reads `file` and parses it with [`parse_manifests`].
pub fn load_manifests(file: &Path) -> Result<Vec<IstioObject>, ManifestError> {
    let text = std::fs::read_to_string(file).map_err(|source| ManifestError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    parse_manifests(file, &text)
}

/// Parses `text`, a `---`-separated stream of Istio objects read from `file` (used in errors and
/// in each object's [`SourceRef`]). Empty documents are skipped; the first error ends parsing.
pub fn parse_manifests(file: &Path, text: &str) -> Result<Vec<IstioObject>, ManifestError> {
    // YAML 1.2 booleans only: with YAML 1.1's, a label value `n` or `on` would silently become
    // `false`/`true` instead of being the string it is meant to be.
    let options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
    };
    let documents: Vec<Node> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|error| yaml_error(file, &error))?;
    documents
        .iter()
        .map(|document| decode_document(file, document))
        .collect()
}

fn yaml_error(file: &Path, error: &serde_saphyr::Error) -> ManifestError {
    let location = error
        .location()
        .filter(|location| *location != serde_saphyr::Location::UNKNOWN);
    let message: String = serde_saphyr::DefaultMessageFormatter
        .format_message(error)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    ManifestError::Yaml {
        file: file.to_path_buf(),
        line: location.map(|l| to_usize(l.line())),
        column: location.map(|l| to_usize(l.column())),
        message,
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

// ---------------------------------------------------------------------------------------------
// One document: kind, apiVersion, metadata, spec.

fn decode_document(file: &Path, document: &Node) -> Result<IstioObject, ManifestError> {
    if !matches!(document.value, Yaml::Map(_)) {
        return Err(ManifestError::NotAMapping {
            file: file.to_path_buf(),
            line: document.pos.line,
            column: document.pos.column(),
        });
    }
    let raw = to_json(file, document)?;
    let (kind_text, kind_pos) = top_level_string(file, document, "kind")?;
    let (api_version, api_version_pos) = top_level_string(file, document, "apiVersion")?;
    let Some(kind) = KINDS.into_iter().find(|k| k.to_string() == kind_text) else {
        return Err(ManifestError::UnknownKind {
            file: file.to_path_buf(),
            line: kind_pos.line,
            column: kind_pos.column(),
            kind: kind_text,
            api_version,
        });
    };
    if !API_VERSIONS.contains(&api_version.as_str()) {
        return Err(ManifestError::UnknownApiVersion {
            file: file.to_path_buf(),
            line: api_version_pos.line,
            column: api_version_pos.column(),
            kind,
            api_version,
        });
    }
    let doc = Doc {
        file,
        root: document,
    };
    let (name, namespace, spec) = match kind {
        Kind::ServiceEntry => decode_object(&doc, kind, service_entry, Spec::ServiceEntry)?,
        Kind::Gateway => decode_object(&doc, kind, gateway, Spec::Gateway)?,
        Kind::VirtualService => decode_object(&doc, kind, virtual_service, Spec::VirtualService)?,
        Kind::DestinationRule => {
            decode_object(&doc, kind, destination_rule, Spec::DestinationRule)?
        }
    };
    Ok(IstioObject {
        api_version,
        name,
        namespace,
        spec,
        source: SourceRef {
            file: file.to_path_buf(),
            line: document.pos.line,
        },
        raw,
    })
}

/// `kind` or `apiVersion`: needed before the rest of the document can be read.
fn top_level_string(
    file: &Path,
    document: &Node,
    key: &str,
) -> Result<(String, Pos), ManifestError> {
    match document.get(key) {
        None => Err(ManifestError::MissingField {
            file: file.to_path_buf(),
            line: document.pos.line,
            column: document.pos.column(),
            path: key.to_string(),
        }),
        Some((
            _,
            Node {
                value: Yaml::Str(s),
                pos,
            },
        )) => Ok((s.clone(), *pos)),
        Some((_, value)) => Err(ManifestError::InvalidValue {
            file: file.to_path_buf(),
            line: value.pos.line,
            column: value.pos.column(),
            path: key.to_string(),
            value: value.text(),
            expected: "a string".to_string(),
        }),
    }
}

type Convert<W, T> = fn(&Ctx<'_>, W, &FieldPath) -> Result<T, ManifestError>;

/// Decodes the document with `W` as its spec, checks the metadata, and converts the spec.
fn decode_object<W: DeserializeOwned + Default, T>(
    doc: &Doc<'_>,
    kind: Kind,
    convert: Convert<W, T>,
    wrap: fn(T) -> Spec,
) -> Result<(String, Option<String>, Spec), ManifestError> {
    let wire = WireDocument::<W>::deserialize(NodeDe {
        node: doc.root,
        path: FieldPath::default(),
    })
    .map_err(|error| doc.decode_error(error))?;
    let metadata = wire.metadata.unwrap_or_default();
    let root = FieldPath::default();
    let name = doc.non_empty_string(metadata.name, &root.key("metadata").key("name"))?;
    let cx = Ctx {
        doc,
        kind,
        name: name.clone(),
    };
    let spec = convert(&cx, wire.spec.unwrap_or_default(), &root.key("spec"))?;
    Ok((name, metadata.namespace, wrap(spec)))
}

/// The document as JSON, the shape a Kubernetes API takes it in.
fn to_json(file: &Path, node: &Node) -> Result<serde_json::Value, ManifestError> {
    use serde_json::Value;
    Ok(match &node.value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Int(i) => Value::from(*i),
        Yaml::UInt(u) => Value::from(*u),
        // The parser rejects NaN and infinities (its default policy), so this is never Null.
        Yaml::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Yaml::Str(s) => Value::String(s.clone()),
        Yaml::Seq(items) => Value::Array(
            items
                .iter()
                .map(|item| to_json(file, item))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Map(entries) => {
            let mut object = serde_json::Map::new();
            for (key, value) in entries {
                let Some(key_text) = key.scalar_text() else {
                    return Err(ManifestError::Yaml {
                        file: file.to_path_buf(),
                        line: Some(key.pos.line),
                        column: key.pos.column(),
                        message: "a mapping key must be a scalar in a Kubernetes manifest"
                            .to_string(),
                    });
                };
                object.insert(key_text, to_json(file, value)?);
            }
            Value::Object(object)
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Errors with positions: the document, and the object once its kind and name are known.

struct Doc<'a> {
    file: &'a Path,
    root: &'a Node,
}

impl Doc<'_> {
    fn decode_error(&self, error: DecodeError) -> ManifestError {
        let (path, pos) = error
            .at
            .unwrap_or_else(|| (FieldPath::default(), self.root.pos));
        let file = self.file.to_path_buf();
        let (line, column, path) = (pos.line, pos.column(), path.to_string());
        match error.problem {
            Problem::UnknownField { field, expected } => ManifestError::UnknownField {
                file,
                line,
                column,
                path,
                field,
                expected: expected.iter().map(|f| f.to_string()).collect(),
            },
            Problem::MissingField(_) => ManifestError::MissingField {
                file,
                line,
                column,
                path,
            },
            Problem::Invalid { value, expected } => ManifestError::InvalidValue {
                file,
                line,
                column,
                path,
                value: value.unwrap_or_default(),
                expected,
            },
        }
    }

    /// A required field that is absent: reported where it belongs, at its parent.
    fn missing(&self, path: &FieldPath) -> ManifestError {
        let pos = locate(self.root, path).value;
        ManifestError::MissingField {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column(),
            path: path.to_string(),
        }
    }

    fn invalid(&self, path: &FieldPath, value: &str, expected: impl Into<String>) -> ManifestError {
        let pos = locate(self.root, path).value;
        ManifestError::InvalidValue {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column(),
            path: path.to_string(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }

    fn require<T>(&self, value: Option<T>, path: &FieldPath) -> Result<T, ManifestError> {
        value.ok_or_else(|| self.missing(path))
    }

    fn non_empty_string(
        &self,
        value: Option<String>,
        path: &FieldPath,
    ) -> Result<String, ManifestError> {
        match self.require(value, path)? {
            s if s.is_empty() => Err(self.invalid(path, "", "a non-empty string")),
            s => Ok(s),
        }
    }

    fn non_empty_list<T>(
        &self,
        value: Option<Vec<T>>,
        path: &FieldPath,
    ) -> Result<Vec<T>, ManifestError> {
        match self.require(value, path)? {
            list if list.is_empty() => Err(self.invalid(path, "[]", "at least one entry")),
            list => Ok(list),
        }
    }

    /// A required list of host names, none of them empty.
    fn hosts(
        &self,
        value: Option<Vec<String>>,
        path: &FieldPath,
    ) -> Result<Vec<String>, ManifestError> {
        let hosts = self.non_empty_list(value, path)?;
        match hosts.iter().position(String::is_empty) {
            Some(i) => Err(self.invalid(&path.index(i), "", "a host name")),
            None => Ok(hosts),
        }
    }

    fn port_number(&self, value: Option<u32>, path: &FieldPath) -> Result<u32, ManifestError> {
        match self.require(value, path)? {
            n @ 1..=65535 => Ok(n),
            n => Err(self.invalid(path, &n.to_string(), "a port number in 1..=65535")),
        }
    }

    fn enum_value<T: Clone>(
        &self,
        value: &str,
        path: &FieldPath,
        names: &[(&str, T)],
    ) -> Result<T, ManifestError> {
        names
            .iter()
            .find(|(name, _)| *name == value)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.invalid(path, value, one_of(names.iter().map(|(n, _)| *n))))
    }
}

fn one_of<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    format!(
        "one of {}",
        names.into_iter().collect::<Vec<_>>().join(", ")
    )
}

/// An object whose kind and name are known, so unsupported features can name it.
struct Ctx<'a> {
    doc: &'a Doc<'a>,
    kind: Kind,
    name: String,
}

impl<'a> std::ops::Deref for Ctx<'a> {
    type Target = Doc<'a>;
    fn deref(&self) -> &Doc<'a> {
        self.doc
    }
}

impl Ctx<'_> {
    fn unsupported(&self, path: &FieldPath, detail: impl Into<String>) -> ManifestError {
        let pos = locate(self.root, path).key;
        ManifestError::Unsupported {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column(),
            kind: self.kind,
            name: self.name.clone(),
            path: path.to_string(),
            detail: detail.into(),
        }
    }

    /// Fails on the first of `fields` (name, present) that the manifest sets.
    fn reject(&self, path: &FieldPath, fields: &[(&str, bool)]) -> Result<(), ManifestError> {
        match fields.iter().find(|(_, present)| *present) {
            Some((field, _)) => Err(self.unsupported(&path.key(field), "")),
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Wire structs: every field of the Istio API (istio.io/api, networking/v1alpha3), so that a
// real field is never reported as unknown. `Unsupported` fields are only checked for presence.

type Unsupported = Option<IgnoredAny>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireDocument<S> {
    /// Read from the tree before the document is decoded: the spec's shape depends on them.
    #[allow(dead_code)]
    api_version: Option<IgnoredAny>,
    #[allow(dead_code)]
    kind: Option<IgnoredAny>,
    metadata: Option<WireMetadata>,
    spec: Option<S>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireMetadata {
    name: Option<String>,
    namespace: Option<String>,
    /// Accepted (and type-checked) but not used.
    #[allow(dead_code)]
    labels: Option<BTreeMap<String, String>>,
    #[allow(dead_code)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireServiceEntry {
    hosts: Option<Vec<String>>,
    addresses: Unsupported,
    ports: Option<Vec<WireServicePort>>,
    location: Option<String>,
    resolution: Option<String>,
    endpoints: Unsupported,
    workload_selector: Unsupported,
    export_to: Option<Vec<String>>,
    subject_alt_names: Unsupported,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireServicePort {
    number: Option<u32>,
    protocol: Option<String>,
    name: Option<String>,
    target_port: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireGateway {
    servers: Option<Vec<WireServer>>,
    selector: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireServer {
    port: Option<WireGatewayPort>,
    bind: Unsupported,
    hosts: Option<Vec<String>>,
    tls: Unsupported,
    default_endpoint: Unsupported,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireGatewayPort {
    number: Option<u32>,
    protocol: Option<String>,
    name: Option<String>,
    target_port: Unsupported,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireVirtualService {
    hosts: Option<Vec<String>>,
    gateways: Option<Vec<String>>,
    http: Option<Vec<WireHttpRoute>>,
    tls: Unsupported,
    tcp: Unsupported,
    export_to: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireHttpRoute {
    name: Option<String>,
    #[serde(rename = "match")]
    matches: Option<Vec<WireHttpMatchRequest>>,
    route: Option<Vec<WireHttpRouteDestination>>,
    redirect: Unsupported,
    direct_response: Unsupported,
    delegate: Unsupported,
    rewrite: Unsupported,
    timeout: Unsupported,
    retries: Unsupported,
    fault: Unsupported,
    mirror: Unsupported,
    mirrors: Unsupported,
    mirror_percentage: Unsupported,
    mirror_percent: Unsupported,
    cors_policy: Unsupported,
    headers: Unsupported,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireHttpMatchRequest {
    name: Option<String>,
    uri: Unsupported,
    scheme: Unsupported,
    method: Unsupported,
    authority: Unsupported,
    headers: Unsupported,
    port: Option<u32>,
    source_labels: Unsupported,
    gateways: Option<Vec<String>>,
    query_params: Unsupported,
    ignore_uri_case: Unsupported,
    without_headers: Unsupported,
    source_namespace: Unsupported,
    stat_prefix: Unsupported,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireHttpRouteDestination {
    destination: Option<WireDestination>,
    weight: Option<u32>,
    headers: Unsupported,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireDestination {
    host: Option<String>,
    subset: Option<String>,
    port: Option<WirePortSelector>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WirePortSelector {
    number: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireDestinationRule {
    host: Option<String>,
    traffic_policy: Option<WireTrafficPolicy>,
    subsets: Option<Vec<WireSubset>>,
    export_to: Option<Vec<String>>,
    workload_selector: Unsupported,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireTrafficPolicy {
    load_balancer: Option<WireLoadBalancer>,
    connection_pool: Unsupported,
    outlier_detection: Unsupported,
    tls: Option<WireClientTls>,
    port_level_settings: Option<Vec<WirePortTrafficPolicy>>,
    tunnel: Unsupported,
    proxy_protocol: Unsupported,
    retry_budget: Unsupported,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WirePortTrafficPolicy {
    port: Option<WirePortSelector>,
    load_balancer: Option<WireLoadBalancer>,
    connection_pool: Unsupported,
    outlier_detection: Unsupported,
    tls: Option<WireClientTls>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireLoadBalancer {
    simple: Option<String>,
    consistent_hash: Unsupported,
    locality_lb_setting: Unsupported,
    warmup_duration_secs: Unsupported,
    warmup: Unsupported,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireClientTls {
    mode: Option<String>,
    client_certificate: Unsupported,
    private_key: Unsupported,
    ca_certificates: Option<String>,
    credential_name: Unsupported,
    subject_alt_names: Option<Vec<String>>,
    sni: Option<String>,
    insecure_skip_verify: Option<bool>,
    ca_crl: Unsupported,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
struct WireSubset {
    name: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    traffic_policy: Option<WireTrafficPolicy>,
}

// ---------------------------------------------------------------------------------------------
// Wire to public types.

const PROTOCOLS: [(&str, Protocol); 6] = [
    ("HTTP", Protocol::Http),
    ("HTTPS", Protocol::Https),
    ("HTTP2", Protocol::Http2),
    ("GRPC", Protocol::Grpc),
    ("TCP", Protocol::Tcp),
    ("TLS", Protocol::Tls),
];

/// Protocols Istio knows that the translator does not.
const OTHER_ISTIO_PROTOCOLS: [&str; 7] = [
    "MONGO",
    "GRPC-WEB",
    "HTTP_PROXY",
    "UDP",
    "REDIS",
    "MYSQL",
    "THRIFT",
];

/// Istio matches protocol names case-insensitively. [`Protocol::Mongo`] is never produced:
/// MONGO is an Istio protocol the translator does not support.
fn protocol(cx: &Ctx<'_>, value: &str, path: &FieldPath) -> Result<Protocol, ManifestError> {
    let upper = value.to_ascii_uppercase();
    if let Some((_, protocol)) = PROTOCOLS.iter().find(|(name, _)| *name == upper) {
        return Ok(*protocol);
    }
    let supported = PROTOCOLS.map(|(name, _)| name).join(", ");
    if OTHER_ISTIO_PROTOCOLS.contains(&upper.as_str()) {
        return Err(cx.unsupported(path, format!("protocol {value} (supported: {supported})")));
    }
    Err(cx.invalid(path, value, format!("one of {supported} (in any case)")))
}

fn service_entry(
    cx: &Ctx<'_>,
    w: WireServiceEntry,
    path: &FieldPath,
) -> Result<ServiceEntry, ManifestError> {
    cx.reject(
        path,
        &[
            ("addresses", w.addresses.is_some()),
            ("endpoints", w.endpoints.is_some()),
            ("workloadSelector", w.workload_selector.is_some()),
            ("subjectAltNames", w.subject_alt_names.is_some()),
        ],
    )?;
    let hosts = cx.hosts(w.hosts, &path.key("hosts"))?;
    let mut ports = Vec::new();
    for (i, port) in w.ports.unwrap_or_default().into_iter().enumerate() {
        let port_path = path.key("ports").index(i);
        let number = cx.port_number(port.number, &port_path.key("number"))?;
        let name = cx.non_empty_string(port.name, &port_path.key("name"))?;
        let protocol_path = port_path.key("protocol");
        let Some(protocol_text) = port.protocol else {
            return Err(cx.unsupported(
                &protocol_path,
                "without a protocol Istio sniffs it, which is not supported",
            ));
        };
        let protocol = protocol(cx, &protocol_text, &protocol_path)?;
        let target_port = match port.target_port {
            Some(n) => Some(cx.port_number(Some(n), &port_path.key("targetPort"))?),
            None => None,
        };
        ports.push(ServicePort {
            number,
            name,
            protocol,
            target_port,
        });
    }
    let location = match w.location {
        Some(text) => Some(cx.enum_value(
            &text,
            &path.key("location"),
            &[
                ("MESH_EXTERNAL", Location::MeshExternal),
                ("MESH_INTERNAL", Location::MeshInternal),
            ],
        )?),
        None => None,
    };
    let resolution_path = path.key("resolution");
    let resolution = match w.resolution {
        None => {
            return Err(cx.unsupported(
                &resolution_path,
                "absent means NONE, which is not supported (only DNS and DNS_ROUND_ROBIN are)",
            ));
        }
        Some(text) => {
            let resolution = cx.enum_value(
                &text,
                &resolution_path,
                &[
                    ("NONE", Resolution::None),
                    ("STATIC", Resolution::Static),
                    ("DNS", Resolution::Dns),
                    ("DNS_ROUND_ROBIN", Resolution::DnsRoundRobin),
                ],
            )?;
            if matches!(resolution, Resolution::None | Resolution::Static) {
                return Err(cx.unsupported(
                    &resolution_path,
                    format!(
                        "{text} needs addresses or endpoints, which are not supported \
                         (only DNS and DNS_ROUND_ROBIN are)"
                    ),
                ));
            }
            resolution
        }
    };
    Ok(ServiceEntry {
        hosts,
        ports,
        location,
        resolution,
        export_to: w.export_to.unwrap_or_default(),
    })
}

fn gateway(cx: &Ctx<'_>, w: WireGateway, path: &FieldPath) -> Result<Gateway, ManifestError> {
    let servers_path = path.key("servers");
    let mut servers = Vec::new();
    for (i, server) in cx
        .non_empty_list(w.servers, &servers_path)?
        .into_iter()
        .enumerate()
    {
        let server_path = servers_path.index(i);
        cx.reject(
            &server_path,
            &[
                ("bind", server.bind.is_some()),
                ("tls", server.tls.is_some()),
                ("defaultEndpoint", server.default_endpoint.is_some()),
            ],
        )?;
        let port_path = server_path.key("port");
        let port = cx.require(server.port, &port_path)?;
        cx.reject(&port_path, &[("targetPort", port.target_port.is_some())])?;
        let number = cx.port_number(port.number, &port_path.key("number"))?;
        let protocol_path = port_path.key("protocol");
        let protocol_text = cx.require(port.protocol, &protocol_path)?;
        let protocol = protocol(cx, &protocol_text, &protocol_path)?;
        // Istio rejects an HTTPS or TLS server without `tls` settings, and `tls` is not
        // supported here, so such a server cannot be had either way.
        if matches!(protocol, Protocol::Https | Protocol::Tls) {
            return Err(cx.unsupported(
                &protocol_path,
                format!("a {protocol_text} server needs `tls`, which is not supported"),
            ));
        }
        servers.push(Server {
            port: GatewayPort {
                number,
                // Optional in Istio's Gateway API; empty when left out.
                name: port.name.unwrap_or_default(),
                protocol,
            },
            hosts: cx.hosts(server.hosts, &server_path.key("hosts"))?,
            name: server.name,
        });
    }
    Ok(Gateway {
        selector: w.selector.unwrap_or_default(),
        servers,
    })
}

fn virtual_service(
    cx: &Ctx<'_>,
    w: WireVirtualService,
    path: &FieldPath,
) -> Result<VirtualService, ManifestError> {
    cx.reject(path, &[("tls", w.tls.is_some()), ("tcp", w.tcp.is_some())])?;
    let hosts = cx.hosts(w.hosts, &path.key("hosts"))?;
    let mut http = Vec::new();
    for (i, route) in w.http.unwrap_or_default().into_iter().enumerate() {
        http.push(http_route(cx, route, &path.key("http").index(i))?);
    }
    Ok(VirtualService {
        hosts,
        gateways: w.gateways.unwrap_or_default(),
        http,
        export_to: w.export_to.unwrap_or_default(),
    })
}

fn http_route(
    cx: &Ctx<'_>,
    w: WireHttpRoute,
    path: &FieldPath,
) -> Result<HttpRoute, ManifestError> {
    cx.reject(
        path,
        &[
            ("redirect", w.redirect.is_some()),
            ("directResponse", w.direct_response.is_some()),
            ("delegate", w.delegate.is_some()),
            ("rewrite", w.rewrite.is_some()),
            ("timeout", w.timeout.is_some()),
            ("retries", w.retries.is_some()),
            ("fault", w.fault.is_some()),
            ("mirror", w.mirror.is_some()),
            ("mirrors", w.mirrors.is_some()),
            ("mirrorPercentage", w.mirror_percentage.is_some()),
            ("mirrorPercent", w.mirror_percent.is_some()),
            ("corsPolicy", w.cors_policy.is_some()),
            ("headers", w.headers.is_some()),
        ],
    )?;
    let mut matches = Vec::new();
    for (i, m) in w.matches.unwrap_or_default().into_iter().enumerate() {
        let match_path = path.key("match").index(i);
        cx.reject(
            &match_path,
            &[
                ("uri", m.uri.is_some()),
                ("scheme", m.scheme.is_some()),
                ("method", m.method.is_some()),
                ("authority", m.authority.is_some()),
                ("headers", m.headers.is_some()),
                ("sourceLabels", m.source_labels.is_some()),
                ("queryParams", m.query_params.is_some()),
                ("ignoreUriCase", m.ignore_uri_case.is_some()),
                ("withoutHeaders", m.without_headers.is_some()),
                ("sourceNamespace", m.source_namespace.is_some()),
                ("statPrefix", m.stat_prefix.is_some()),
            ],
        )?;
        let port = match m.port {
            Some(n) => Some(cx.port_number(Some(n), &match_path.key("port"))?),
            None => None,
        };
        matches.push(HttpMatchRequest {
            name: m.name,
            gateways: m.gateways.unwrap_or_default(),
            port,
        });
    }
    // Istio also allows a route-less rule with a redirect, direct response or delegate; none of
    // those is supported, so the route is required here.
    let route_path = path.key("route");
    let mut route = Vec::new();
    for (i, d) in cx
        .non_empty_list(w.route, &route_path)?
        .into_iter()
        .enumerate()
    {
        let destination_path = route_path.index(i);
        cx.reject(&destination_path, &[("headers", d.headers.is_some())])?;
        let destination_path_inner = destination_path.key("destination");
        let destination = cx.require(d.destination, &destination_path_inner)?;
        route.push(HttpRouteDestination {
            destination: Destination {
                host: cx.non_empty_string(destination.host, &destination_path_inner.key("host"))?,
                subset: destination.subset,
                port: port_selector(cx, destination.port, &destination_path_inner.key("port"))?,
            },
            weight: d.weight,
        });
    }
    Ok(HttpRoute {
        name: w.name,
        matches,
        route,
    })
}

fn port_selector(
    cx: &Ctx<'_>,
    w: Option<WirePortSelector>,
    path: &FieldPath,
) -> Result<Option<PortSelector>, ManifestError> {
    w.map(|selector| {
        Ok(PortSelector {
            number: cx.port_number(selector.number, &path.key("number"))?,
        })
    })
    .transpose()
}

fn destination_rule(
    cx: &Ctx<'_>,
    w: WireDestinationRule,
    path: &FieldPath,
) -> Result<DestinationRule, ManifestError> {
    cx.reject(path, &[("workloadSelector", w.workload_selector.is_some())])?;
    let host = cx.non_empty_string(w.host, &path.key("host"))?;
    let policy = w
        .traffic_policy
        .map(|tp| traffic_policy(cx, tp, &path.key("trafficPolicy")))
        .transpose()?;
    let mut subsets = Vec::new();
    for (i, subset) in w.subsets.unwrap_or_default().into_iter().enumerate() {
        let subset_path = path.key("subsets").index(i);
        subsets.push(Subset {
            name: cx.non_empty_string(subset.name, &subset_path.key("name"))?,
            labels: subset.labels.unwrap_or_default(),
            traffic_policy: subset
                .traffic_policy
                .map(|tp| traffic_policy(cx, tp, &subset_path.key("trafficPolicy")))
                .transpose()?,
        });
    }
    Ok(DestinationRule {
        host,
        traffic_policy: policy,
        subsets,
        export_to: w.export_to.unwrap_or_default(),
    })
}

fn traffic_policy(
    cx: &Ctx<'_>,
    w: WireTrafficPolicy,
    path: &FieldPath,
) -> Result<TrafficPolicy, ManifestError> {
    cx.reject(
        path,
        &[
            ("connectionPool", w.connection_pool.is_some()),
            ("outlierDetection", w.outlier_detection.is_some()),
            ("tunnel", w.tunnel.is_some()),
            ("proxyProtocol", w.proxy_protocol.is_some()),
            ("retryBudget", w.retry_budget.is_some()),
        ],
    )?;
    let balancer = w
        .load_balancer
        .map(|lb| load_balancer(cx, lb, &path.key("loadBalancer")))
        .transpose()?;
    let tls = w
        .tls
        .map(|tls| client_tls(cx, tls, &path.key("tls")))
        .transpose()?;
    let mut port_level_settings = Vec::new();
    for (i, port_policy) in w
        .port_level_settings
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let port_path = path.key("portLevelSettings").index(i);
        cx.reject(
            &port_path,
            &[
                ("connectionPool", port_policy.connection_pool.is_some()),
                ("outlierDetection", port_policy.outlier_detection.is_some()),
            ],
        )?;
        port_level_settings.push(PortTrafficPolicy {
            port: port_selector(cx, port_policy.port, &port_path.key("port"))?,
            load_balancer: port_policy
                .load_balancer
                .map(|lb| load_balancer(cx, lb, &port_path.key("loadBalancer")))
                .transpose()?,
            tls: port_policy
                .tls
                .map(|tls| client_tls(cx, tls, &port_path.key("tls")))
                .transpose()?,
        });
    }
    Ok(TrafficPolicy {
        load_balancer: balancer,
        tls,
        port_level_settings,
    })
}

fn load_balancer(
    cx: &Ctx<'_>,
    w: WireLoadBalancer,
    path: &FieldPath,
) -> Result<LoadBalancerSettings, ManifestError> {
    cx.reject(
        path,
        &[
            ("consistentHash", w.consistent_hash.is_some()),
            ("localityLbSetting", w.locality_lb_setting.is_some()),
            ("warmupDurationSecs", w.warmup_duration_secs.is_some()),
            ("warmup", w.warmup.is_some()),
        ],
    )?;
    let simple = match w.simple {
        Some(text) => Some(cx.enum_value(
            &text,
            &path.key("simple"),
            &[
                ("UNSPECIFIED", SimpleLb::Unspecified),
                ("LEAST_CONN", SimpleLb::LeastConn),
                ("LEAST_REQUEST", SimpleLb::LeastRequest),
                ("RANDOM", SimpleLb::Random),
                ("PASSTHROUGH", SimpleLb::Passthrough),
                ("ROUND_ROBIN", SimpleLb::RoundRobin),
            ],
        )?),
        None => None,
    };
    Ok(LoadBalancerSettings { simple })
}

fn client_tls(
    cx: &Ctx<'_>,
    w: WireClientTls,
    path: &FieldPath,
) -> Result<ClientTlsSettings, ManifestError> {
    cx.reject(
        path,
        &[
            ("clientCertificate", w.client_certificate.is_some()),
            ("privateKey", w.private_key.is_some()),
            ("credentialName", w.credential_name.is_some()),
            ("caCrl", w.ca_crl.is_some()),
        ],
    )?;
    let mode_path = path.key("mode");
    let mode = match w.mode {
        // The proto's zero value.
        None => TlsMode::Disable,
        Some(text) => {
            let mode = cx.enum_value(
                &text,
                &mode_path,
                &[
                    ("DISABLE", TlsMode::Disable),
                    ("SIMPLE", TlsMode::Simple),
                    ("MUTUAL", TlsMode::Mutual),
                    ("ISTIO_MUTUAL", TlsMode::IstioMutual),
                ],
            )?;
            if matches!(mode, TlsMode::Mutual | TlsMode::IstioMutual) {
                return Err(cx.unsupported(
                    &mode_path,
                    format!("tls mode {text} (only DISABLE and SIMPLE are supported)"),
                ));
            }
            mode
        }
    };
    Ok(ClientTlsSettings {
        mode,
        sni: w.sni,
        ca_certificates: w.ca_certificates,
        subject_alt_names: w.subject_alt_names.unwrap_or_default(),
        insecure_skip_verify: w.insecure_skip_verify,
    })
}

// ---------------------------------------------------------------------------------------------
// The located tree serde-saphyr reads each document into.

/// A 1-based position in the manifest; column 0 when the parser did not know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    fn column(self) -> Option<usize> {
        (self.column > 0).then_some(self.column)
    }
}

#[derive(Debug)]
struct Node {
    pos: Pos,
    value: Yaml,
}

#[derive(Debug)]
enum Yaml {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The entry for `key` in a mapping: its key and value nodes.
    fn get(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.value {
            Yaml::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.scalar_text().as_deref() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// A scalar as its text, the way a mapping key is read; `None` for a sequence or mapping.
    fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Yaml::Null => Some("null".to_string()),
            Yaml::Bool(b) => Some(b.to_string()),
            Yaml::Int(i) => Some(i.to_string()),
            Yaml::UInt(u) => Some(u.to_string()),
            Yaml::Float(f) => Some(f.to_string()),
            Yaml::Str(s) => Some(s.clone()),
            Yaml::Seq(_) | Yaml::Map(_) => None,
        }
    }

    /// The value as an error message shows it.
    fn text(&self) -> String {
        match &self.value {
            Yaml::Seq(_) => "[...]".to_string(),
            Yaml::Map(_) => "{...}".to_string(),
            _ => self.scalar_text().unwrap_or_default(),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Yaml>::deserialize(deserializer)?;
        // `referenced`, not `defined`: for an alias, the place it is used is what the user
        // must fix.
        let location = spanned.referenced;
        Ok(Node {
            pos: Pos {
                line: to_usize(location.line()),
                column: to_usize(location.column()),
            },
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(YamlVisitor)
    }
}

struct YamlVisitor;

impl<'de> Visitor<'de> for YamlVisitor {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }

    fn visit_none<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Yaml, D::Error> {
        deserializer.deserialize_any(YamlVisitor)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Yaml, E> {
        Ok(Yaml::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Yaml, E> {
        Ok(Yaml::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Yaml, E> {
        Ok(Yaml::UInt(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Yaml, E> {
        Ok(Yaml::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Yaml, E> {
        Ok(Yaml::Str(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Yaml, E> {
        Ok(Yaml::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Yaml, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Yaml::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Yaml, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        Ok(Yaml::Map(entries))
    }
}

// ---------------------------------------------------------------------------------------------
// Field paths, and finding them in the tree.

#[derive(Clone, Debug, Default)]
struct FieldPath(Vec<Segment>);

#[derive(Clone, Debug)]
enum Segment {
    Key(String),
    Index(usize),
}

impl FieldPath {
    fn key(&self, key: &str) -> FieldPath {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_string()));
        path
    }

    fn index(&self, index: usize) -> FieldPath {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                // Label keys such as `app.kubernetes.io/name` would make a dotted path ambiguous.
                Segment::Key(key)
                    if key.is_empty()
                        || !key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
                {
                    write!(f, "[{key:?}]")?
                }
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Where a path points: its key and its value. A path that leaves the tree early (a missing
/// field) stops at the deepest node that exists: the mapping the field belongs in.
struct Located {
    key: Pos,
    value: Pos,
}

fn locate(root: &Node, path: &FieldPath) -> Located {
    let mut node = root;
    let mut key = root.pos;
    for segment in &path.0 {
        let next = match (segment, &node.value) {
            (Segment::Key(name), Yaml::Map(_)) => node.get(name),
            (Segment::Index(index), Yaml::Seq(items)) => items.get(*index).map(|item| (item, item)),
            _ => None,
        };
        let Some((next_key, next_value)) = next else {
            return Located {
                key: node.pos,
                value: node.pos,
            };
        };
        key = next_key.pos;
        node = next_value;
    }
    Located {
        key,
        value: node.pos,
    }
}

// ---------------------------------------------------------------------------------------------
// A serde Deserializer over the tree that knows each value's path and position.

#[derive(Debug)]
struct DecodeError {
    problem: Problem,
    /// Set by the innermost node the error passes through.
    at: Option<(FieldPath, Pos)>,
}

#[derive(Debug)]
enum Problem {
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    MissingField(&'static str),
    /// `value` is filled in from the node when the error reaches it.
    Invalid {
        value: Option<String>,
        expected: String,
    },
}

impl DecodeError {
    fn new(problem: Problem) -> Self {
        DecodeError { problem, at: None }
    }

    fn at(mut self, path: &FieldPath, node: &Node) -> Self {
        if self.at.is_none() {
            let path = match &self.problem {
                // Raised by the mapping the field is missing from.
                Problem::MissingField(field) => path.key(field),
                _ => path.clone(),
            };
            self.at = Some((path, node.pos));
            if let Problem::Invalid {
                value: value @ None,
                ..
            } = &mut self.problem
            {
                *value = Some(node.text());
            }
        }
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Problem::UnknownField { field, .. } => write!(f, "unknown field `{field}`"),
            Problem::MissingField(field) => write!(f, "missing field `{field}`"),
            Problem::Invalid { expected, .. } => write!(f, "invalid value: expected {expected}"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError::new(Problem::Invalid {
            value: None,
            expected: msg.to_string(),
        })
    }

    fn invalid_type(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        DecodeError::new(Problem::Invalid {
            value: None,
            expected: format!("{expected}, found {unexpected}"),
        })
    }

    fn invalid_value(_: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        DecodeError::new(Problem::Invalid {
            value: None,
            expected: expected.to_string(),
        })
    }

    fn invalid_length(len: usize, expected: &dyn de::Expected) -> Self {
        DecodeError::new(Problem::Invalid {
            value: None,
            expected: format!("{expected}, found {len} elements"),
        })
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DecodeError::new(Problem::Invalid {
            value: Some(variant.to_string()),
            expected: one_of(expected.iter().copied()),
        })
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DecodeError::new(Problem::UnknownField {
            field: field.to_string(),
            expected,
        })
    }

    fn missing_field(field: &'static str) -> Self {
        DecodeError::new(Problem::MissingField(field))
    }
}

struct NodeDe<'n> {
    node: &'n Node,
    path: FieldPath,
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let NodeDe { node, path } = self;
        let result = match &node.value {
            Yaml::Null => visitor.visit_unit(),
            Yaml::Bool(b) => visitor.visit_bool(*b),
            Yaml::Int(i) => visitor.visit_i64(*i),
            Yaml::UInt(u) => visitor.visit_u64(*u),
            Yaml::Float(f) => visitor.visit_f64(*f),
            Yaml::Str(s) => visitor.visit_str(s),
            Yaml::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter().enumerate(),
                path: &path,
            }),
            Yaml::Map(entries) => visitor.visit_map(MapDe {
                entries: entries.iter(),
                path: &path,
                value: None,
            }),
        };
        result.map_err(|error| error.at(&path, node))
    }

    /// Null or absent are the same to Kubernetes: both leave the field unset.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.node.value {
            Yaml::Null => visitor
                .visit_none()
                .map_err(|error: DecodeError| error.at(&self.path, self.node)),
            _ => visitor.visit_some(self),
        }
    }

    /// Derived structs also accept a sequence of their fields in order; a manifest must not.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.node.value {
            Yaml::Seq(_) => Err(<DecodeError as de::Error>::invalid_type(
                de::Unexpected::Seq,
                &"a mapping",
            )
            .at(&self.path, self.node)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map enum identifier
    }
}

/// A mapping key: always handed to the visitor as text, as Kubernetes' JSON has it.
struct KeyDe<'n> {
    node: &'n Node,
    path: FieldPath,
}

impl<'de> de::Deserializer<'de> for KeyDe<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor
            .visit_str(&self.node.text())
            .map_err(|error: DecodeError| error.at(&self.path, self.node))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

struct SeqDe<'n, 'p> {
    items: std::iter::Enumerate<std::slice::Iter<'n, Node>>,
    path: &'p FieldPath,
}

impl<'de> SeqAccess<'de> for SeqDe<'_, '_> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        match self.items.next() {
            Some((index, node)) => seed
                .deserialize(NodeDe {
                    node,
                    path: self.path.index(index),
                })
                .map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'n, 'p> {
    entries: std::slice::Iter<'n, (Node, Node)>,
    path: &'p FieldPath,
    /// The value of the entry whose key was just read.
    value: Option<(&'n Node, FieldPath)>,
}

impl<'de> MapAccess<'de> for MapDe<'_, '_> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let path = self.path.key(&key.text());
        let key = seed.deserialize(KeyDe {
            node: key,
            path: path.clone(),
        })?;
        self.value = Some((value, path));
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        // serde only asks for a value right after its key; anything else is a serde bug.
        let Some((node, path)) = self.value.take() else {
            return Err(de::Error::custom("a map value requested before its key"));
        };
        seed.deserialize(NodeDe { node, path })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The tutorial's manifests, exactly as it gives them; step 3 is one file with two documents.
    const SERVICE_ENTRY: &str = "\
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: cnn
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 80
    name: http-port
    protocol: HTTP
  - number: 443
    name: http-port-for-tls-origination
    protocol: HTTP
  resolution: DNS
";

    const GATEWAY: &str = "\
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 443
      name: http-port-for-tls-origination
      protocol: HTTP
    hosts:
    - edition.cnn.com
";

    const DR_AND_VS: &str = "\
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: cnn
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts:
  - edition.cnn.com
  gateways:
  - istio-egressgateway
  - mesh
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: cnn
        port:
          number: 443
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: 443
    route:
    - destination:
        host: edition.cnn.com
        port:
          number: 443
      weight: 100
";

    const ORIGINATE_TLS: &str = "\
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: originate-tls-for-edition-cnn-com
spec:
  host: edition.cnn.com
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    portLevelSettings:
    - port:
        number: 443
      tls:
        mode: SIMPLE # initiates HTTPS for connections to edition.cnn.com
";

    fn file() -> PathBuf {
        PathBuf::from("fixtures/test.yaml")
    }

    fn parse(text: &str) -> Result<Vec<IstioObject>, ManifestError> {
        parse_manifests(&file(), text)
    }

    fn parse_one(text: &str) -> IstioObject {
        let mut objects = parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(objects.len(), 1, "{objects:#?}");
        objects.remove(0)
    }

    fn parse_err(text: &str) -> ManifestError {
        match parse(text) {
            Ok(objects) => panic!("expected an error, got {objects:#?}"),
            Err(error) => error,
        }
    }

    /// The 1-based line of the only line of `text` containing `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        let lines: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, line)| line.contains(needle))
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(lines.len(), 1, "`{needle}` must occur on exactly one line");
        lines[0]
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tutorial_service_entry() {
        let object = parse_one(SERVICE_ENTRY);
        assert_eq!(object.api_version, "networking.istio.io/v1alpha3");
        assert_eq!(object.name, "cnn");
        assert_eq!(object.namespace, None);
        assert_eq!(object.kind(), Kind::ServiceEntry);
        assert_eq!(
            object.source,
            SourceRef {
                file: file(),
                line: 1
            }
        );
        let port = |number, name: &str| ServicePort {
            number,
            name: name.to_string(),
            protocol: Protocol::Http,
            target_port: None,
        };
        assert_eq!(
            object.spec,
            Spec::ServiceEntry(ServiceEntry {
                hosts: strings(&["edition.cnn.com"]),
                ports: vec![
                    port(80, "http-port"),
                    port(443, "http-port-for-tls-origination")
                ],
                location: None,
                resolution: Resolution::Dns,
                export_to: vec![],
            })
        );
    }

    #[test]
    fn tutorial_gateway() {
        let object = parse_one(GATEWAY);
        assert_eq!(object.name, "istio-egressgateway");
        assert_eq!(
            object.spec,
            Spec::Gateway(Gateway {
                selector: BTreeMap::from([("istio".to_string(), "egressgateway".to_string())]),
                servers: vec![Server {
                    port: GatewayPort {
                        number: 443,
                        name: "http-port-for-tls-origination".to_string(),
                        protocol: Protocol::Http,
                    },
                    hosts: strings(&["edition.cnn.com"]),
                    name: None,
                }],
            })
        );
    }

    #[test]
    fn tutorial_destination_rule_and_virtual_service_share_a_file() {
        let objects = parse(DR_AND_VS).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(objects.len(), 2);
        let (dr, vs) = (&objects[0], &objects[1]);
        assert_eq!(dr.name, "egressgateway-for-cnn");
        assert_eq!(dr.source.line, 1);
        assert_eq!(
            dr.spec,
            Spec::DestinationRule(DestinationRule {
                host: "istio-egressgateway.istio-system.svc.cluster.local".to_string(),
                traffic_policy: None,
                subsets: vec![Subset {
                    name: "cnn".to_string(),
                    labels: BTreeMap::new(),
                    traffic_policy: None,
                }],
                export_to: vec![],
            })
        );
        assert_eq!(vs.name, "direct-cnn-through-egress-gateway");
        // The line after `---`.
        assert_eq!(vs.source.line, line_of(DR_AND_VS, "---") + 1);
        let rule = |gateway: &str, port, host: &str, subset: Option<&str>| HttpRoute {
            name: None,
            matches: vec![HttpMatchRequest {
                name: None,
                gateways: strings(&[gateway]),
                port: Some(port),
            }],
            route: vec![HttpRouteDestination {
                destination: Destination {
                    host: host.to_string(),
                    subset: subset.map(str::to_string),
                    port: Some(PortSelector { number: 443 }),
                },
                weight: Some(100),
            }],
        };
        assert_eq!(
            vs.spec,
            Spec::VirtualService(VirtualService {
                hosts: strings(&["edition.cnn.com"]),
                gateways: strings(&["istio-egressgateway", "mesh"]),
                http: vec![
                    rule(
                        "mesh",
                        80,
                        "istio-egressgateway.istio-system.svc.cluster.local",
                        Some("cnn")
                    ),
                    rule("istio-egressgateway", 443, "edition.cnn.com", None),
                ],
                export_to: vec![],
            })
        );
    }

    #[test]
    fn tutorial_tls_origination() {
        let object = parse_one(ORIGINATE_TLS);
        assert_eq!(object.name, "originate-tls-for-edition-cnn-com");
        assert_eq!(
            object.spec,
            Spec::DestinationRule(DestinationRule {
                host: "edition.cnn.com".to_string(),
                traffic_policy: Some(TrafficPolicy {
                    load_balancer: Some(LoadBalancerSettings {
                        simple: Some(SimpleLb::RoundRobin)
                    }),
                    tls: None,
                    port_level_settings: vec![PortTrafficPolicy {
                        port: Some(PortSelector { number: 443 }),
                        load_balancer: None,
                        tls: Some(ClientTlsSettings {
                            mode: TlsMode::Simple,
                            sni: None,
                            ca_certificates: None,
                            subject_alt_names: vec![],
                            insecure_skip_verify: None,
                        }),
                    }],
                }),
                subsets: vec![],
                export_to: vec![],
            })
        );
    }

    #[test]
    fn raw_is_the_document_as_written() {
        let object = parse_one(SERVICE_ENTRY);
        assert_eq!(
            object.raw,
            serde_json::json!({
                "apiVersion": "networking.istio.io/v1alpha3",
                "kind": "ServiceEntry",
                "metadata": {"name": "cnn"},
                "spec": {
                    "hosts": ["edition.cnn.com"],
                    "ports": [
                        {"number": 80, "name": "http-port", "protocol": "HTTP"},
                        {"number": 443, "name": "http-port-for-tls-origination", "protocol": "HTTP"}
                    ],
                    "resolution": "DNS"
                }
            })
        );
        // Not normalized: lowercase protocol and labels stay as written.
        let text = SERVICE_ENTRY
            .replace("name: cnn", "name: cnn\n  labels: {app: cnn, on: 'yes'}")
            .replace(
                "protocol: HTTP\n  - number: 443",
                "protocol: http\n  - number: 443",
            );
        let object = parse_one(&text);
        assert_eq!(object.raw["spec"]["ports"][0]["protocol"], "http");
        assert_eq!(object.raw["metadata"]["labels"]["on"], "yes");
        match &object.spec {
            Spec::ServiceEntry(se) => assert_eq!(se.ports[0].protocol, Protocol::Http),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn v1beta1_and_v1_are_accepted_and_kept() {
        for version in ["networking.istio.io/v1beta1", "networking.istio.io/v1"] {
            let text = ORIGINATE_TLS.replace("networking.istio.io/v1alpha3", version);
            let object = parse_one(&text);
            assert_eq!(object.api_version, version);
            assert_eq!(object.raw["apiVersion"], version);
        }
    }

    #[test]
    fn empty_documents_are_skipped() {
        let text = format!(
            "# all five\n---\n---\n# nothing here\n---\n{SERVICE_ENTRY}---\n\n---\n{GATEWAY}---\n"
        );
        let objects = parse(&text).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<_> = objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["cnn", "istio-egressgateway"]);
        assert_eq!(
            objects[0].source.line,
            line_of(&text, "kind: ServiceEntry") - 1
        );
        assert_eq!(objects[1].source.line, line_of(&text, "kind: Gateway") - 1);
        assert!(parse("").unwrap_or_else(|e| panic!("{e}")).is_empty());
        assert!(
            parse("# only a comment\n---\n")
                .unwrap_or_else(|e| panic!("{e}"))
                .is_empty()
        );
    }

    #[test]
    fn source_line_skips_leading_comments_and_blank_lines() {
        let text = format!("\n# the cnn entry\n\n{SERVICE_ENTRY}");
        assert_eq!(parse_one(&text).source.line, 4);
    }

    #[test]
    fn namespace_and_metadata_labels() {
        let text = SERVICE_ENTRY.replace(
            "name: cnn",
            "name: cnn\n  namespace: default\n  labels:\n    app: cnn\n  annotations:\n    note: x",
        );
        let object = parse_one(&text);
        assert_eq!(object.namespace.as_deref(), Some("default"));
        assert_eq!(object.key("other").namespace, "default");
    }

    #[test]
    fn unknown_field_names_path_line_and_expected_fields() {
        let text = SERVICE_ENTRY.replace("  hosts:", "  hostz:");
        let error = parse_err(&text);
        let ManifestError::UnknownField {
            file: f,
            line,
            column,
            path,
            field,
            expected,
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(f, &file());
        assert_eq!(*line, line_of(&text, "hostz"));
        assert_eq!(*column, Some(3));
        assert_eq!(path, "spec.hostz");
        assert_eq!(field, "hostz");
        assert!(expected.contains(&"hosts".to_string()), "{expected:?}");
        // A real Istio field that is not supported still counts as expected.
        assert!(expected.contains(&"addresses".to_string()), "{expected:?}");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("fixtures/test.yaml:{line}:3: unknown field `hostz` at spec.hostz; expected one of hosts, ")),
            "{message}"
        );
    }

    #[test]
    fn unknown_fields_deep_in_the_tree() {
        let cases = [
            (
                ORIGINATE_TLS.replace("        mode:", "        mdoe:"),
                "mdoe",
                "spec.trafficPolicy.portLevelSettings[0].tls.mdoe",
            ),
            (
                DR_AND_VS.replace(
                    "      weight: 100\n  - match",
                    "      wieght: 100\n  - match",
                ),
                "wieght",
                "spec.http[0].route[0].wieght",
            ),
            (
                SERVICE_ENTRY.replace("name: cnn", "name: cnn\n  uid: abc"),
                "uid",
                "metadata.uid",
            ),
            (format!("{SERVICE_ENTRY}status: {{}}\n"), "status", "status"),
        ];
        for (text, field, expected_path) in cases {
            match parse_err(&text) {
                ManifestError::UnknownField { path, line, .. } => {
                    assert_eq!(path, expected_path);
                    assert_eq!(line, line_of(&text, &format!("{field}:")));
                }
                other => panic!("{expected_path}: {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_tls_mode_names_value_path_line_and_allowed_values() {
        let text = ORIGINATE_TLS.replace("mode: SIMPLE", "mode: SIMPEL");
        let error = parse_err(&text);
        let ManifestError::InvalidValue {
            line,
            column,
            path,
            value,
            expected,
            ..
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(path, "spec.trafficPolicy.portLevelSettings[0].tls.mode");
        assert_eq!(*line, line_of(&text, "SIMPEL"));
        assert_eq!(*column, Some(15));
        assert_eq!(value, "SIMPEL");
        assert_eq!(expected, "one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL");
        assert_eq!(
            error.to_string(),
            format!(
                "fixtures/test.yaml:{line}:15: invalid value `SIMPEL` at \
                 spec.trafficPolicy.portLevelSettings[0].tls.mode: expected one of DISABLE, \
                 SIMPLE, MUTUAL, ISTIO_MUTUAL"
            )
        );
    }

    #[test]
    fn invalid_values() {
        // (manifest, the value as reported, its path, part of what is expected, its line's text)
        let cases = [
            (
                SERVICE_ENTRY.replace("resolution: DNS", "resolution: DSN"),
                "DSN",
                "spec.resolution",
                "one of NONE",
                "DSN",
            ),
            (
                SERVICE_ENTRY.replace(
                    "protocol: HTTP\n  - number: 443",
                    "protocol: HTTTP\n  - number: 443",
                ),
                "HTTTP",
                "spec.ports[0].protocol",
                "one of HTTP, HTTPS",
                "HTTTP",
            ),
            (
                SERVICE_ENTRY.replace("number: 80", "number: \"80\""),
                "80",
                "spec.ports[0].number",
                "u32, found string",
                "number: \"80\"",
            ),
            (
                SERVICE_ENTRY.replace("number: 80", "number: 70000"),
                "70000",
                "spec.ports[0].number",
                "1..=65535",
                "70000",
            ),
            (
                SERVICE_ENTRY.replace("number: 80", "number: -1"),
                "-1",
                "spec.ports[0].number",
                "u32",
                "-1",
            ),
            (
                ORIGINATE_TLS.replace("ROUND_ROBIN", "round_robin"),
                "round_robin",
                "spec.trafficPolicy.loadBalancer.simple",
                "ROUND_ROBIN",
                "round_robin",
            ),
            (
                SERVICE_ENTRY.replace("resolution: DNS", "resolution: DNS\n  location: OUTSIDE"),
                "OUTSIDE",
                "spec.location",
                "MESH_EXTERNAL",
                "OUTSIDE",
            ),
            (
                SERVICE_ENTRY.replace("  - edition.cnn.com", "  - {name: edition.cnn.com}"),
                "{...}",
                "spec.hosts[0]",
                "a string",
                "{name",
            ),
            (
                ORIGINATE_TLS.replace(
                    "    loadBalancer:\n      simple: ROUND_ROBIN",
                    "    loadBalancer: [ROUND_ROBIN]",
                ),
                "[...]",
                "spec.trafficPolicy.loadBalancer",
                "a mapping",
                "[ROUND_ROBIN]",
            ),
            (
                GATEWAY.replace("istio: egressgateway", "istio: 1"),
                "1",
                "spec.selector.istio",
                "a string",
                "istio: 1",
            ),
            (
                SERVICE_ENTRY.replace("  - edition.cnn.com\n", "  - \"\"\n"),
                "",
                "spec.hosts[0]",
                "a host name",
                "\"\"",
            ),
        ];
        for (text, bad, expected_path, expected_fragment, marker) in cases {
            match parse_err(&text) {
                ManifestError::InvalidValue {
                    path,
                    value,
                    expected,
                    line,
                    ..
                } => {
                    assert_eq!(path, expected_path);
                    assert_eq!(value, bad, "{expected_path}");
                    assert!(
                        expected.contains(expected_fragment),
                        "{expected_path}: {expected}"
                    );
                    assert_eq!(line, line_of(&text, marker), "{expected_path}");
                }
                other => panic!("{expected_path}: {other:?}"),
            }
        }
    }

    #[test]
    fn unsupported_istio_features() {
        use Kind::{
            DestinationRule as Dr, Gateway as Gw, ServiceEntry as Se, VirtualService as Vs,
        };
        let (se, gw) = ("cnn", "istio-egressgateway");
        let (dr, vs, tls) = (
            "egressgateway-for-cnn",
            "direct-cnn-through-egress-gateway",
            "originate-tls-for-edition-cnn-com",
        );
        // (manifest, kind and name of the object at fault, text on the reported line, path)
        let cases: Vec<(String, Kind, &str, &str, &str)> = vec![
            (
                SERVICE_ENTRY.replace(
                    "  resolution: DNS",
                    "  resolution: DNS\n  addresses: [240.0.0.1]",
                ),
                Se,
                se,
                "addresses:",
                "spec.addresses",
            ),
            (
                SERVICE_ENTRY.replace(
                    "  resolution: DNS",
                    "  resolution: DNS\n  endpoints:\n  - address: 1.2.3.4",
                ),
                Se,
                se,
                "endpoints:",
                "spec.endpoints",
            ),
            (
                SERVICE_ENTRY.replace(
                    "  resolution: DNS",
                    "  resolution: DNS\n  workloadSelector: {labels: {a: b}}",
                ),
                Se,
                se,
                "workloadSelector",
                "spec.workloadSelector",
            ),
            (
                SERVICE_ENTRY.replace(
                    "  resolution: DNS",
                    "  resolution: DNS\n  subjectAltNames: [a]",
                ),
                Se,
                se,
                "subjectAltNames",
                "spec.subjectAltNames",
            ),
            (
                SERVICE_ENTRY.replace("resolution: DNS", "resolution: STATIC"),
                Se,
                se,
                "STATIC",
                "spec.resolution",
            ),
            (
                SERVICE_ENTRY.replace("resolution: DNS", "resolution: NONE"),
                Se,
                se,
                "NONE",
                "spec.resolution",
            ),
            (
                SERVICE_ENTRY.replace("  resolution: DNS\n", ""),
                Se,
                se,
                "hosts:",
                "spec.resolution",
            ),
            (
                SERVICE_ENTRY.replace(
                    "    protocol: HTTP\n  - number: 443",
                    "    protocol: mongo\n  - number: 443",
                ),
                Se,
                se,
                "mongo",
                "spec.ports[0].protocol",
            ),
            (
                SERVICE_ENTRY.replace("    protocol: HTTP\n  - number: 443", "  - number: 443"),
                Se,
                se,
                "number: 80",
                "spec.ports[0].protocol",
            ),
            (
                GATEWAY.replace("    hosts:", "    tls:\n      mode: SIMPLE\n    hosts:"),
                Gw,
                gw,
                "tls:",
                "spec.servers[0].tls",
            ),
            (
                GATEWAY.replace("    hosts:", "    bind: 0.0.0.0\n    hosts:"),
                Gw,
                gw,
                "bind:",
                "spec.servers[0].bind",
            ),
            (
                GATEWAY.replace(
                    "    hosts:",
                    "    defaultEndpoint: 127.0.0.1:80\n    hosts:",
                ),
                Gw,
                gw,
                "defaultEndpoint",
                "spec.servers[0].defaultEndpoint",
            ),
            (
                GATEWAY.replace(
                    "      protocol: HTTP",
                    "      protocol: HTTP\n      targetPort: 8443",
                ),
                Gw,
                gw,
                "targetPort",
                "spec.servers[0].port.targetPort",
            ),
            (
                GATEWAY.replace("protocol: HTTP", "protocol: MONGO"),
                Gw,
                gw,
                "MONGO",
                "spec.servers[0].port.protocol",
            ),
            (
                GATEWAY.replace("protocol: HTTP", "protocol: HTTPS"),
                Gw,
                gw,
                "HTTPS",
                "spec.servers[0].port.protocol",
            ),
            (
                DR_AND_VS.replace(
                    "  gateways:\n  - istio",
                    "  tcp: []\n  gateways:\n  - istio",
                ),
                Vs,
                vs,
                "tcp:",
                "spec.tcp",
            ),
            (
                DR_AND_VS.replace(
                    "  gateways:\n  - istio",
                    "  tls: []\n  gateways:\n  - istio",
                ),
                Vs,
                vs,
                "tls:",
                "spec.tls",
            ),
            (
                DR_AND_VS.replace(
                    "  - match:\n    - gateways:\n      - mesh",
                    "  - timeout: 5s\n    match:\n    - gateways:\n      - mesh",
                ),
                Vs,
                vs,
                "timeout",
                "spec.http[0].timeout",
            ),
            (
                DR_AND_VS.replace(
                    "  - match:\n    - gateways:\n      - mesh",
                    "  - corsPolicy: {}\n    match:\n    - gateways:\n      - mesh",
                ),
                Vs,
                vs,
                "corsPolicy",
                "spec.http[0].corsPolicy",
            ),
            (
                DR_AND_VS.replace("      port: 443", "      port: 443\n      uri: {prefix: /}"),
                Vs,
                vs,
                "uri:",
                "spec.http[1].match[0].uri",
            ),
            (
                DR_AND_VS.replace(
                    "      port: 443",
                    "      port: 443\n      headers: {a: {exact: b}}",
                ),
                Vs,
                vs,
                "headers:",
                "spec.http[1].match[0].headers",
            ),
            (
                DR_AND_VS.replace(
                    "      weight: 100\n  - match",
                    "      weight: 100\n      headers: {}\n  - match",
                ),
                Vs,
                vs,
                "headers:",
                "spec.http[0].route[0].headers",
            ),
            (
                DR_AND_VS.replace("  subsets:", "  workloadSelector: {}\n  subsets:"),
                Dr,
                dr,
                "workloadSelector",
                "spec.workloadSelector",
            ),
            (
                ORIGINATE_TLS.replace(
                    "    portLevelSettings:",
                    "    connectionPool: {}\n    portLevelSettings:",
                ),
                Dr,
                tls,
                "connectionPool",
                "spec.trafficPolicy.connectionPool",
            ),
            (
                ORIGINATE_TLS.replace(
                    "    portLevelSettings:",
                    "    tunnel: {}\n    portLevelSettings:",
                ),
                Dr,
                tls,
                "tunnel",
                "spec.trafficPolicy.tunnel",
            ),
            (
                ORIGINATE_TLS.replace(
                    "      simple: ROUND_ROBIN",
                    "      consistentHash: {useSourceIp: true}",
                ),
                Dr,
                tls,
                "consistentHash",
                "spec.trafficPolicy.loadBalancer.consistentHash",
            ),
            (
                ORIGINATE_TLS.replace("mode: SIMPLE", "mode: ISTIO_MUTUAL"),
                Dr,
                tls,
                "ISTIO_MUTUAL",
                "spec.trafficPolicy.portLevelSettings[0].tls.mode",
            ),
            (
                ORIGINATE_TLS.replace("mode: SIMPLE", "mode: MUTUAL"),
                Dr,
                tls,
                "MUTUAL",
                "spec.trafficPolicy.portLevelSettings[0].tls.mode",
            ),
            (
                ORIGINATE_TLS.replace(
                    "mode: SIMPLE # initiates",
                    "mode: SIMPLE\n        credentialName: cnn # initiates",
                ),
                Dr,
                tls,
                "credentialName",
                "spec.trafficPolicy.portLevelSettings[0].tls.credentialName",
            ),
            (
                ORIGINATE_TLS.replace("      tls:", "      outlierDetection: {}\n      tls:"),
                Dr,
                tls,
                "outlierDetection",
                "spec.trafficPolicy.portLevelSettings[0].outlierDetection",
            ),
        ];
        for (text, expected_kind, expected_name, marker, expected_path) in cases {
            let error = parse_err(&text);
            let ManifestError::Unsupported {
                path,
                line,
                kind,
                name,
                ..
            } = &error
            else {
                panic!("{expected_path}: {error:?}");
            };
            assert_eq!(path, expected_path);
            assert_eq!(*line, line_of(&text, marker), "{expected_path}");
            assert_eq!((*kind, name.as_str()), (expected_kind, expected_name));
            let message = error.to_string();
            let expected = format!(
                "unsupported Istio feature: {expected_kind} {expected_name}: {expected_path}"
            );
            assert!(message.contains(&expected), "{message}");
        }
    }

    #[test]
    fn missing_required_fields() {
        let cases = [
            (
                SERVICE_ENTRY.replace("  name: cnn\n", "  namespace: default\n"),
                "metadata.name",
                "namespace:",
            ),
            (
                SERVICE_ENTRY.replace("metadata:\n  name: cnn\n", ""),
                "metadata.name",
                "apiVersion",
            ),
            (
                SERVICE_ENTRY.replace("  hosts:\n  - edition.cnn.com\n", ""),
                "spec.hosts",
                "ports:",
            ),
            (
                SERVICE_ENTRY.replace("    name: http-port\n", ""),
                "spec.ports[0].name",
                "number: 80",
            ),
            (
                SERVICE_ENTRY.replace("  - number: 443\n", "  - targetPort: 8443\n"),
                "spec.ports[1].number",
                "targetPort",
            ),
            (
                GATEWAY.replace("    hosts:\n    - edition.cnn.com\n", ""),
                "spec.servers[0].hosts",
                "- port:",
            ),
            (
                ORIGINATE_TLS.replace("  host: edition.cnn.com\n", ""),
                "spec.host",
                "trafficPolicy:",
            ),
            (
                SERVICE_ENTRY.replace("kind: ServiceEntry\n", ""),
                "kind",
                "apiVersion",
            ),
        ];
        for (text, expected_path, marker) in cases {
            match parse_err(&text) {
                ManifestError::MissingField { path, line, .. } => {
                    assert_eq!(path, expected_path);
                    assert_eq!(line, line_of(&text, marker), "{expected_path}");
                }
                other => panic!("{expected_path}: {other:?}"),
            }
        }
        let error = parse_err(&SERVICE_ENTRY.replace("    name: http-port\n", ""));
        assert!(
            error
                .to_string()
                .ends_with(": missing required field spec.ports[0].name"),
            "{error}"
        );
    }

    #[test]
    fn unknown_kind_and_api_version() {
        let text = SERVICE_ENTRY.replace("kind: ServiceEntry", "kind: Sidecar");
        let error = parse_err(&text);
        match &error {
            ManifestError::UnknownKind {
                file: f,
                kind,
                api_version,
                line,
                ..
            } => {
                assert_eq!(f, &file());
                assert_eq!(kind, "Sidecar");
                assert_eq!(api_version, "networking.istio.io/v1alpha3");
                assert_eq!(*line, 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            error
                .to_string()
                .starts_with("fixtures/test.yaml:2:7: unknown kind `Sidecar`"),
            "{error}"
        );

        let text = SERVICE_ENTRY.replace("networking.istio.io/v1alpha3", "networking.istio.io/v2");
        match parse_err(&text) {
            ManifestError::UnknownApiVersion {
                kind,
                api_version,
                line,
                ..
            } => {
                assert_eq!(kind, Kind::ServiceEntry);
                assert_eq!(api_version, "networking.istio.io/v2");
                assert_eq!(line, 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_yaml_names_file_line_and_column() {
        let text = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n  name: x\n";
        let error = parse_err(text);
        match &error {
            ManifestError::Yaml {
                file: f,
                line,
                column,
                message,
            } => {
                assert_eq!(f, &file());
                assert_eq!(*line, Some(3));
                assert!(column.is_some());
                assert!(!message.is_empty());
                assert!(!message.contains("line 3"), "location only once: {message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            error.to_string().starts_with("fixtures/test.yaml:3:"),
            "{error}"
        );

        match parse_err("a: 1\na: 2\n") {
            ManifestError::Yaml { line, message, .. } => {
                assert_eq!(line, Some(2));
                assert!(message.contains("duplicate"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_document_that_is_not_a_mapping() {
        match parse_err(&format!("{SERVICE_ENTRY}---\n- just\n- a list\n")) {
            ManifestError::NotAMapping { line, .. } => assert_eq!(line, 17),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn null_fields_count_as_absent() {
        let text = SERVICE_ENTRY.replace(
            "  resolution: DNS",
            "  resolution: DNS\n  addresses:\n  exportTo: ~",
        );
        match &parse_one(&text).spec {
            Spec::ServiceEntry(se) => assert!(se.export_to.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn load_manifests_reads_the_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("03-dr-vs.yaml");
        std::fs::write(&path, DR_AND_VS)?;
        let objects = load_manifests(&path)?;
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1].source.file, path);

        let missing = dir.path().join("missing.yaml");
        match load_manifests(&missing) {
            Err(ManifestError::Read { file, source }) => {
                assert_eq!(file, missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        Ok(())
    }

    #[test]
    fn field_paths_quote_keys_that_are_not_plain_names() {
        let path = FieldPath::default()
            .key("metadata")
            .key("labels")
            .key("app.kubernetes.io/name");
        assert_eq!(
            path.to_string(),
            "metadata.labels[\"app.kubernetes.io/name\"]"
        );
        assert_eq!(
            FieldPath::default()
                .key("spec")
                .key("http")
                .index(2)
                .key("match")
                .index(0)
                .to_string(),
            "spec.http[2].match[0]"
        );
    }
}
