//! Istio's own message definitions, for handing objects to istiod as it takes them over MCP: each
//! spec as the protobuf message of its kind (`istio.networking.v1alpha3.ServiceEntry`, …),
//! wrapped in `istio.mcp.v1alpha1.Resource` with the object's name and metadata.
//!
//! The definitions are the `.proto` files of the `istio.io/api` module the release is built with,
//! compiled at run time by `protox` (a Rust protobuf compiler) from the Go module cache, where
//! building istiod put them. A spec is written in YAML with the proto3 JSON names Istio's CRDs use,
//! so `prost-reflect` turns it into the message by those names and refuses a field the message
//! does not have. Nothing is generated into the repository and no message is written by hand
//! except the two small MCP envelopes, whose shape is fixed.

use std::path::{Path, PathBuf};

use envoy_types::pb::google::protobuf::{Any, Timestamp};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::Value;

use crate::istio_release::IstioRelease;

/// The files defining the kinds the harness hands istiod: the four a suite applies, and
/// WorkloadEntry for the registry.
const PROTO_FILES: [&str; 5] = [
    "networking/v1alpha3/service_entry.proto",
    "networking/v1alpha3/gateway.proto",
    "networking/v1alpha3/virtual_service.proto",
    "networking/v1alpha3/destination_rule.proto",
    "networking/v1alpha3/workload_entry.proto",
];
const PACKAGE: &str = "istio.networking.v1alpha3";
const API_MODULE: &str = "istio.io/api";

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtosError {
    #[error(
        "istio.io/api {version} (the message definitions istiod's config source needs) is not in \
         the Go module cache{}; with Go installed the harness downloads it (`go mod download \
         {API_MODULE}@{version}`), or set GOMODCACHE to a cache that has it",
        .looked.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default()
    )]
    Missing {
        version: String,
        looked: Option<PathBuf>,
    },
    #[error("`go mod download {API_MODULE}@{version}` failed: {message}")]
    Download { version: String, message: String },
    #[error("compiling Istio's message definitions in {}: {message}", .dir.display())]
    Compile { dir: PathBuf, message: String },
}

/// The compiled definitions of one `istio.io/api` version.
pub(crate) struct IstioProtos {
    pool: DescriptorPool,
}

impl IstioProtos {
    /// The definitions of `release`'s `istio.io/api`, downloading the module when it is missing
    /// and Go is there.
    pub(crate) fn for_release(release: &IstioRelease) -> Result<IstioProtos, ProtosError> {
        IstioProtos::compile(&api_module_dir(release.api_version)?)
    }

    /// Compile the definitions in an `istio.io/api` checkout.
    pub(crate) fn compile(dir: &Path) -> Result<IstioProtos, ProtosError> {
        let failed = |e: protox::Error| ProtosError::Compile {
            dir: dir.to_path_buf(),
            message: e.to_string(),
        };
        let mut compiler = protox::Compiler::new([dir.to_path_buf(), dir.join("common-protos")])
            .map_err(failed)?;
        compiler.include_imports(true);
        compiler.open_files(PROTO_FILES).map_err(failed)?;
        Ok(IstioProtos {
            pool: compiler.descriptor_pool(),
        })
    }

    /// `spec` as istiod writes it back: through the message of `kind`, with every field at its
    /// default left out, so that `mode: DISABLE` and no `mode` read the same.
    pub(crate) fn canonical(&self, kind: &str, spec: &Value) -> Result<Value, String> {
        let message = self.message(kind, spec)?;
        let options = prost_reflect::SerializeOptions::new().skip_default_fields(true);
        message
            .serialize_with_options(serde_json::value::Serializer, &options)
            .map_err(|e| format!("{kind}: {e}"))
    }

    fn message(&self, kind: &str, spec: &Value) -> Result<DynamicMessage, String> {
        let name = format!("{PACKAGE}.{kind}");
        let descriptor = self
            .pool
            .get_message_by_name(&name)
            .ok_or_else(|| format!("no message {name} in istio.io/api"))?;
        let mut spec = spec.clone();
        go_durations(&descriptor, &mut spec);
        DynamicMessage::deserialize(descriptor, &spec)
            .map_err(|e| format!("{kind} spec does not fit {name}: {e}"))
    }

    /// `spec` as the message of `kind` (`ServiceEntry`, …), packed in an `Any`.
    pub(crate) fn encode_spec(&self, kind: &str, spec: &Value) -> Result<Any, String> {
        let message = self.message(kind, spec)?;
        Ok(Any {
            type_url: format!("type.googleapis.com/{PACKAGE}.{kind}"),
            value: message.encode_to_vec(),
        })
    }
}

/// Istio's YAML takes durations as Go writes them (`1ms`, `1h30m`), where proto3 JSON has only
/// seconds (`0.001s`): every `google.protobuf.Duration` in `value` is rewritten to seconds. What
/// is not a Go duration is left alone, for the decoder to refuse.
fn go_durations(message: &prost_reflect::MessageDescriptor, value: &mut Value) {
    let Value::Object(fields) = value else { return };
    for (key, field_value) in fields.iter_mut() {
        let Some(field) = message
            .get_field_by_json_name(key)
            .or_else(|| message.get_field_by_name(key))
        else {
            continue;
        };
        let prost_reflect::Kind::Message(inner) = field.kind() else {
            continue;
        };
        let mut each = |v: &mut Value| {
            if inner.full_name() == "google.protobuf.Duration" {
                if let Some(seconds) = v.as_str().and_then(go_duration_seconds) {
                    *v = Value::String(seconds);
                }
            } else {
                go_durations(&inner, v);
            }
        };
        if field.is_map() {
            if let Value::Object(entries) = field_value {
                // A map's entries are messages of key and value; only the value can hold one.
                if let Some(value_field) = inner.get_field_by_name("value")
                    && let prost_reflect::Kind::Message(value_message) = value_field.kind()
                {
                    entries
                        .values_mut()
                        .for_each(|v| go_durations(&value_message, v));
                }
            }
        } else if field.is_list() {
            if let Value::Array(items) = field_value {
                items.iter_mut().for_each(&mut each);
            }
        } else {
            each(field_value);
        }
    }
}

/// A Go duration (`1h30m`, `1.5s`, `100ms`, `10us`) as proto3 JSON seconds (`5400s`).
fn go_duration_seconds(text: &str) -> Option<String> {
    let mut rest = text.trim();
    let negative = rest.starts_with('-');
    rest = rest.trim_start_matches(['-', '+']);
    if rest.is_empty() {
        return None;
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        nanos += number * scale;
    }
    let nanos = nanos.round() as i128;
    let (seconds, fraction) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    let sign = if negative { "-" } else { "" };
    Some(if fraction == 0 {
        format!("{sign}{seconds}s")
    } else {
        let digits = format!("{fraction:09}");
        format!("{sign}{seconds}.{}s", digits.trim_end_matches('0'))
    })
}

/// One object as istiod's MCP client takes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct McpObject {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    /// Changes whenever the spec or metadata does: istiod updates its store only when it moves.
    pub version: String,
    pub spec: Value,
}

impl McpObject {
    /// The `istio.mcp.v1alpha1.Resource` for this object, packed in an `Any`.
    pub(crate) fn to_resource(&self, protos: &IstioProtos) -> Result<Any, String> {
        let resource = McpResource {
            metadata: Some(McpMetadata {
                name: format!("{}/{}", self.namespace, self.name),
                create_time: Some(Timestamp::default()),
                version: self.version.clone(),
                labels: self.labels.iter().cloned().collect(),
                annotations: self.annotations.iter().cloned().collect(),
            }),
            body: Some(protos.encode_spec(&self.kind, &self.spec)?),
        };
        Ok(Any {
            type_url: "type.googleapis.com/istio.mcp.v1alpha1.Resource".into(),
            value: resource.encode_to_vec(),
        })
    }
}

/// `istio.mcp.v1alpha1.Resource` (mcp/v1alpha1/resource.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct McpResource {
    #[prost(message, optional, tag = "1")]
    metadata: Option<McpMetadata>,
    #[prost(message, optional, tag = "2")]
    body: Option<Any>,
}

/// `istio.mcp.v1alpha1.Metadata` (mcp/v1alpha1/metadata.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct McpMetadata {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    create_time: Option<Timestamp>,
    #[prost(string, tag = "3")]
    version: String,
    #[prost(btree_map = "string, string", tag = "4")]
    labels: std::collections::BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "5")]
    annotations: std::collections::BTreeMap<String, String>,
}

/// Where `release`'s `istio.io/api` is, downloading it when Go can, its definitions checked.
pub(crate) fn api_dir(release: &IstioRelease) -> Result<PathBuf, ProtosError> {
    let dir = api_module_dir(release.api_version)?;
    IstioProtos::compile(&dir)?;
    Ok(dir)
}

/// Where the Go module cache holds `istio.io/api@version`, downloading it when Go can.
fn api_module_dir(version: &str) -> Result<PathBuf, ProtosError> {
    let cache = module_cache();
    if let Some(cache) = &cache {
        let dir = cache.join(format!("{API_MODULE}@{version}"));
        if dir.join(PROTO_FILES[0]).is_file() {
            return Ok(dir);
        }
    }
    let Ok(go) = which::which("go") else {
        return Err(ProtosError::Missing {
            version: version.into(),
            looked: cache,
        });
    };
    let download = |message: String| ProtosError::Download {
        version: version.into(),
        message,
    };
    // Outside any module, so no go.mod of the user's is read or written.
    let output = std::process::Command::new(go)
        .args([
            "mod",
            "download",
            "-json",
            &format!("{API_MODULE}@{version}"),
        ])
        .current_dir(std::env::temp_dir())
        .env("GO111MODULE", "on")
        .output()
        .map_err(|e| download(e.to_string()))?;
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    match answer["Dir"].as_str() {
        Some(dir) if output.status.success() => Ok(PathBuf::from(dir)),
        _ => Err(download(
            answer["Error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&output.stderr).trim().to_owned()),
        )),
    }
}

/// `$GOMODCACHE`, else `$GOPATH/pkg/mod`, else `~/go/pkg/mod`, as Go itself decides.
fn module_cache() -> Option<PathBuf> {
    let set = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = set("GOMODCACHE") {
        return Some(PathBuf::from(dir));
    }
    if let Some(path) = set("GOPATH") {
        let first = std::env::split_paths(&path).next()?;
        return Some(first.join("pkg/mod"));
    }
    set("HOME").map(|home| PathBuf::from(home).join("go/pkg/mod"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definitions of the default release, when they can be had here.
    fn protos() -> Option<IstioProtos> {
        match IstioProtos::for_release(IstioRelease::default_release()) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("skipped: {e}");
                None
            }
        }
    }

    #[test]
    fn a_spec_becomes_its_message_and_an_unknown_field_is_refused() {
        let Some(protos) = protos() else { return };
        let spec = serde_json::json!({
            "hosts": ["edition.cnn.com"],
            "ports": [{"number": 80, "name": "http-port", "protocol": "HTTP"}],
            "resolution": "DNS",
        });
        let any = protos.encode_spec("ServiceEntry", &spec).unwrap();
        assert_eq!(
            any.type_url,
            "type.googleapis.com/istio.networking.v1alpha3.ServiceEntry"
        );
        // Decoded back by its descriptor, the message says what the YAML said.
        let descriptor = protos
            .pool
            .get_message_by_name("istio.networking.v1alpha3.ServiceEntry")
            .unwrap();
        let back = DynamicMessage::decode(descriptor, any.value.as_slice()).unwrap();
        let json = serde_json::to_value(&back).unwrap();
        assert_eq!(json["hosts"], serde_json::json!(["edition.cnn.com"]));
        assert_eq!(json["resolution"], "DNS");

        let typo = serde_json::json!({"hosts": ["a"], "resolutoin": "DNS"});
        let refused = protos.encode_spec("ServiceEntry", &typo).unwrap_err();
        assert!(refused.contains("resolutoin"), "{refused}");
        let bad_enum =
            serde_json::json!({"host": "a", "trafficPolicy": {"tls": {"mode": "SIMPEL"}}});
        assert!(protos.encode_spec("DestinationRule", &bad_enum).is_err());
    }

    #[test]
    fn a_default_spelled_out_and_one_left_out_read_the_same() {
        let Some(protos) = protos() else { return };
        let spelled = serde_json::json!({"host": "a", "trafficPolicy": {"tls": {"mode": "DISABLE"}}, "exportTo": []});
        let left_out = serde_json::json!({"host": "a", "trafficPolicy": {"tls": {}}});
        assert_eq!(
            protos.canonical("DestinationRule", &spelled).unwrap(),
            protos.canonical("DestinationRule", &left_out).unwrap()
        );
        let other = serde_json::json!({"host": "a", "trafficPolicy": {"tls": {"mode": "SIMPLE"}}});
        assert_ne!(
            protos.canonical("DestinationRule", &other).unwrap(),
            protos.canonical("DestinationRule", &left_out).unwrap()
        );
    }

    #[test]
    fn go_durations_become_seconds() {
        assert_eq!(go_duration_seconds("1ms").as_deref(), Some("0.001s"));
        assert_eq!(go_duration_seconds("1h30m").as_deref(), Some("5400s"));
        assert_eq!(go_duration_seconds("2.5s").as_deref(), Some("2.5s"));
        assert_eq!(go_duration_seconds("3s").as_deref(), Some("3s"));
        assert_eq!(go_duration_seconds("100us").as_deref(), Some("0.0001s"));
        assert_eq!(go_duration_seconds("abc"), None);
        assert_eq!(go_duration_seconds("5x"), None);
        assert_eq!(go_duration_seconds(""), None);
        let Some(protos) = protos() else { return };
        let vs = serde_json::json!({"hosts": ["a"], "http": [{"timeout": "1ms", "retries": {"perTryTimeout": "2m"}}]});
        let canonical = protos.canonical("VirtualService", &vs).unwrap();
        assert_eq!(canonical["http"][0]["timeout"], "0.001s");
        assert_eq!(canonical["http"][0]["retries"]["perTryTimeout"], "120s");
    }

    #[test]
    fn the_resource_envelope_carries_the_namespaced_name_and_version() {
        let Some(protos) = protos() else { return };
        let object = McpObject {
            kind: "Gateway".into(),
            namespace: "default".into(),
            name: "istio-egressgateway".into(),
            labels: vec![("app".into(), "x".into())],
            annotations: vec![],
            version: "v7".into(),
            spec: serde_json::json!({"selector": {"istio": "egressgateway"}}),
        };
        let any = object.to_resource(&protos).unwrap();
        let resource = McpResource::decode(any.value.as_slice()).unwrap();
        let metadata = resource.metadata.unwrap();
        assert_eq!(metadata.name, "default/istio-egressgateway");
        assert_eq!(metadata.version, "v7");
        assert_eq!(metadata.labels.get("app").map(String::as_str), Some("x"));
        assert_eq!(
            resource.body.unwrap().type_url,
            "type.googleapis.com/istio.networking.v1alpha3.Gateway"
        );
    }

    #[test]
    fn a_missing_module_says_how_to_get_it() {
        let error = ProtosError::Missing {
            version: "v9.9.9".into(),
            looked: Some(PathBuf::from("/nowhere")),
        };
        let text = error.to_string();
        assert!(
            text.contains("go mod download istio.io/api@v9.9.9") && text.contains("/nowhere"),
            "{text}"
        );
    }
}
