//! Where istiod reads the Istio objects from: the harness's MCP server (the default: istiod
//! takes a change the moment it arrives and says so by its ACK) or a config directory
//! (`--configDir`, one file per object, written atomically; istiod reads it again 250 ms after
//! the last change, in 1.31). Both hold the cluster's registry and the applied objects, namespaced.
//! Or a real API server, which istiod watches itself and the backend writes ([`ConfigSource::cluster`]):
//! then the source only remembers what was last applied, so that a change is known as one.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::mcp::{McpError, McpServer};
use super::protos::{IstioProtos, McpObject, ProtosError};

/// The kinds istiod is handed: the four a suite applies and WorkloadEntry for the registry.
const KINDS: [&str; 5] = [
    "ServiceEntry",
    "Gateway",
    "VirtualService",
    "DestinationRule",
    "WorkloadEntry",
];
const REGISTRY_FILE: &str = "00-registry.yaml";

/// Which config source a run gives istiod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum SourceChoice {
    /// `meshConfig.configSources: xds://…`, served by the harness.
    #[default]
    Mcp,
    /// `--configDir`.
    Files,
}

impl SourceChoice {
    pub(crate) fn name(self) -> &'static str {
        match self {
            SourceChoice::Mcp => "mcp",
            SourceChoice::Files => "files",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SourceError {
    #[error("writing istiod's config in {}: {source}", .dir.display())]
    Files {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Protos(#[from] ProtosError),
    #[error(transparent)]
    Mcp(#[from] McpError),
    /// An object Istio's own message definitions have no room for, in their words.
    #[error("{0}")]
    Unencodable(String),
}

/// A running config source.
pub(crate) enum ConfigSource {
    Files {
        dir: PathBuf,
        /// The files written for the applied objects, by name.
        written: BTreeMap<String, String>,
    },
    Mcp {
        server: McpServer,
        protos: Arc<IstioProtos>,
        registry: Vec<McpObject>,
        published: BTreeMap<String, Vec<McpObject>>,
    },
    /// The objects are in an API server istiod watches; the backend writes them there.
    Cluster {
        /// The applied objects as last handed over, as files would hold them.
        applied: BTreeMap<String, String>,
    },
}

impl ConfigSource {
    /// Set up `choice` under `home` holding `registry`, before istiod starts.
    pub(crate) async fn start(
        choice: SourceChoice,
        home: &Path,
        registry: &[Value],
        protos: Arc<IstioProtos>,
    ) -> Result<ConfigSource, SourceError> {
        match choice {
            SourceChoice::Files => {
                let dir = home.join("config");
                let failed = |source| SourceError::Files {
                    dir: dir.clone(),
                    source,
                };
                std::fs::create_dir_all(&dir).map_err(failed)?;
                let text: String = registry.iter().map(|o| format!("{o}\n---\n")).collect();
                write_atomically(&dir.join(REGISTRY_FILE), &text).map_err(failed)?;
                Ok(ConfigSource::Files {
                    dir,
                    written: BTreeMap::new(),
                })
            }
            SourceChoice::Mcp => {
                let registry: Vec<McpObject> = registry.iter().map(mcp_object).collect();
                let published = by_kind(&registry, &[]);
                let encoded = encode(&protos, &published)?;
                let server = McpServer::start(&KINDS, encoded).await?;
                Ok(ConfigSource::Mcp {
                    server,
                    protos,
                    registry,
                    published,
                })
            }
        }
    }

    /// A source that is an API server: nothing to set up.
    pub(crate) fn cluster() -> ConfigSource {
        ConfigSource::Cluster {
            applied: BTreeMap::new(),
        }
    }

    /// What istiod's command line gets for this source.
    pub(crate) fn istiod_args(&self) -> Vec<String> {
        match self {
            ConfigSource::Files { dir, .. } => vec![format!("--configDir={}", dir.display())],
            ConfigSource::Mcp { .. } | ConfigSource::Cluster { .. } => Vec::new(),
        }
    }

    /// What istiod's mesh config gets for this source.
    pub(crate) fn mesh_config(&self) -> String {
        match self {
            ConfigSource::Files { .. } | ConfigSource::Cluster { .. } => String::new(),
            ConfigSource::Mcp { server, .. } => {
                format!("configSources:\n- address: xds://{}\n", server.addr())
            }
        }
    }

    /// Whether `applied` (whole objects, namespaced) differs from what istiod was last given.
    pub(crate) fn differs(&self, applied: &[Value]) -> bool {
        match self {
            ConfigSource::Files { written, .. } => &files_for(applied) != written,
            ConfigSource::Cluster { applied: last } => &files_for(applied) != last,
            ConfigSource::Mcp {
                registry,
                published,
                ..
            } => {
                let applied: Vec<McpObject> = applied.iter().map(mcp_object).collect();
                &by_kind(registry, &applied) != published
            }
        }
    }

    /// Hand istiod `applied`; for MCP, until istiod has acknowledged it; for an API server,
    /// only remember it (the backend has written it there).
    pub(crate) async fn apply(
        &mut self,
        applied: &[Value],
        timeout: Duration,
    ) -> Result<(), SourceError> {
        match self {
            ConfigSource::Files { dir, written } => {
                let files = files_for(applied);
                let failed = |source| SourceError::Files {
                    dir: dir.clone(),
                    source,
                };
                for (name, text) in &files {
                    if written.get(name) != Some(text) {
                        write_atomically(&dir.join(name), text).map_err(failed)?;
                    }
                }
                for name in written.keys() {
                    if !files.contains_key(name) {
                        std::fs::remove_file(dir.join(name)).map_err(failed)?;
                    }
                }
                *written = files;
                Ok(())
            }
            ConfigSource::Cluster { applied: last } => {
                *last = files_for(applied);
                Ok(())
            }
            ConfigSource::Mcp {
                server,
                protos,
                registry,
                published,
            } => {
                let applied: Vec<McpObject> = applied.iter().map(mcp_object).collect();
                let wanted = by_kind(registry, &applied);
                let encoded = encode(protos, &wanted)?;
                server.publish(encoded);
                *published = wanted;
                server.taken(timeout).await?;
                Ok(())
            }
        }
    }

    pub(crate) async fn shutdown(self) {
        if let ConfigSource::Mcp { server, .. } = self {
            server.shutdown().await;
        }
    }
}

fn encode(
    protos: &IstioProtos,
    objects: &BTreeMap<String, Vec<McpObject>>,
) -> Result<BTreeMap<String, Vec<envoy_types::pb::google::protobuf::Any>>, SourceError> {
    objects
        .iter()
        .map(|(kind, list)| {
            let encoded = list
                .iter()
                .map(|o| {
                    o.to_resource(protos).map_err(|e| {
                        SourceError::Unencodable(format!("{kind} {}/{}: {e}", o.namespace, o.name))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((kind.clone(), encoded))
        })
        .collect()
}

/// Every served kind with its objects (registry first, then the applied ones, each sorted).
fn by_kind(registry: &[McpObject], applied: &[McpObject]) -> BTreeMap<String, Vec<McpObject>> {
    let mut out: BTreeMap<String, Vec<McpObject>> =
        KINDS.iter().map(|k| (k.to_string(), Vec::new())).collect();
    for object in registry.iter().chain(applied) {
        out.entry(object.kind.clone())
            .or_default()
            .push(object.clone());
    }
    out
}

/// One whole object (`kind`, `metadata`, `spec`) as MCP carries it; its version is a hash of
/// what istiod reads, so an unchanged object is never updated.
fn mcp_object(object: &Value) -> McpObject {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let pairs = |v: &Value| -> Vec<(String, String)> {
        v.as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
            .unwrap_or_default()
    };
    let metadata = &object["metadata"];
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    object["kind"].to_string().hash(&mut hasher);
    metadata["labels"].to_string().hash(&mut hasher);
    metadata["annotations"].to_string().hash(&mut hasher);
    object["spec"].to_string().hash(&mut hasher);
    McpObject {
        kind: text(&object["kind"]),
        namespace: text(&metadata["namespace"]),
        name: text(&metadata["name"]),
        labels: pairs(&metadata["labels"]),
        annotations: pairs(&metadata["annotations"]),
        version: format!("{:016x}", hasher.finish()),
        spec: object["spec"].clone(),
    }
}

/// The files the applied objects become: one per object, JSON (which is YAML).
fn files_for(applied: &[Value]) -> BTreeMap<String, String> {
    applied
        .iter()
        .map(|object| {
            let name = format!(
                "{}-{}-{}.yaml",
                object["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
                object["metadata"]["namespace"].as_str().unwrap_or_default(),
                object["metadata"]["name"].as_str().unwrap_or_default(),
            );
            (
                name,
                serde_json::to_string_pretty(object).unwrap_or_default(),
            )
        })
        .collect()
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    // Not `.yaml`: istiod ignores the temporary file until it is renamed into place.
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str, spec: Value) -> Value {
        serde_json::json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": name, "namespace": "default", "labels": {"a": "b"}},
            "spec": spec,
        })
    }

    #[test]
    fn an_objects_version_moves_with_what_istiod_reads_and_nothing_else() {
        let one = mcp_object(&object("cnn", serde_json::json!({"hosts": ["a"]})));
        let same = mcp_object(&object("cnn", serde_json::json!({"hosts": ["a"]})));
        let other = mcp_object(&object("cnn", serde_json::json!({"hosts": ["b"]})));
        assert_eq!(one.version, same.version);
        assert_ne!(one.version, other.version);
        assert_eq!(one.labels, vec![("a".to_string(), "b".to_string())]);
        assert_eq!(
            (one.namespace.as_str(), one.kind.as_str()),
            ("default", "ServiceEntry")
        );
    }

    #[tokio::test]
    async fn files_are_written_once_and_removed_when_their_object_goes() {
        let home = tempfile::tempdir().unwrap();
        let Ok(protos) =
            IstioProtos::for_release(crate::istio_release::IstioRelease::default_release())
        else {
            eprintln!("skipped: no istio.io/api here");
            return;
        };
        let mut source =
            ConfigSource::start(SourceChoice::Files, home.path(), &[], Arc::new(protos))
                .await
                .unwrap();
        let dir = home.path().join("config");
        assert!(dir.join(REGISTRY_FILE).is_file());
        let applied = [object("cnn", serde_json::json!({"hosts": ["a"]}))];
        assert!(source.differs(&applied));
        source
            .apply(&applied, Duration::from_secs(1))
            .await
            .unwrap();
        assert!(!source.differs(&applied));
        let file = dir.join("serviceentry-default-cnn.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("\"hosts\""), "{text}");
        source.apply(&[], Duration::from_secs(1)).await.unwrap();
        assert!(!file.exists());
        assert!(source.istiod_args()[0].starts_with("--configDir="));
        assert_eq!(source.mesh_config(), "");
    }
}
