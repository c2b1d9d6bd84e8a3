//! What the kind backend asks of the Kubernetes API: server-side apply and delete of Istio
//! objects and of the sleep sample, listing what exists, finding pods and waiting for them, the
//! namespace's injection label. Every function takes a `kube::Client`, so tests hand it one over
//! a mock service.
//!
//! It does not exec or port-forward (see `exec` and `admin`) and runs no tools (see `tools`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::runtime::wait::await_condition;
use kube::runtime::{reflector, watcher};
use kube::{Client, Resource};
use serde_json::{Value, json};

use crate::istio::{IstioObject, Kind, ObjectKey};

pub const ISTIO_GROUP: &str = "networking.istio.io";
/// The version used where no manifest names one (delete, list): every Istio release serves it.
pub const DEFAULT_API_VERSION: &str = "v1alpha3";
pub const FIELD_MANAGER: &str = "egress-conformance";
pub const ISTIO_NAMESPACE: &str = "istio-system";
pub const INJECTION_LABEL: &str = "istio-injection";

const KINDS: [Kind; 4] = [
    Kind::ServiceEntry,
    Kind::Gateway,
    Kind::VirtualService,
    Kind::DestinationRule,
];

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The API server's answer; `message` is its own words (webhook rejections included).
    #[error("{action}: {message}")]
    Api { action: String, message: String },
    #[error("{key} not found")]
    NotFound { key: ObjectKey },
    #[error("timed out after {waited:?} waiting for {what}; last seen: {last_seen}")]
    Timeout {
        what: String,
        waited: Duration,
        last_seen: String,
    },
    #[error("{}: {message}", .file.display())]
    Manifest { file: PathBuf, message: String },
}

/// The server's own message for an API error, the transport's otherwise.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

fn api_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> ClusterError {
    let action = action.into();
    move |e| ClusterError::Api {
        action,
        message: api_message(&e),
    }
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// `networking.istio.io/<version>` `kind`, with its plural.
pub fn istio_resource(kind: Kind, version: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(ISTIO_GROUP, version, &kind.to_string()),
        kind.plural(),
    )
}

/// The version part of `networking.istio.io/v1alpha3`.
pub fn version_of(api_version: &str) -> &str {
    api_version
        .rsplit_once('/')
        .map_or(DEFAULT_API_VERSION, |(_, v)| v)
}

/// Server-side apply of one Istio object's manifest, as written.
pub async fn apply_istio(
    client: &Client,
    object: &IstioObject,
    default_namespace: &str,
) -> Result<(), ClusterError> {
    let key = object.key(default_namespace);
    let resource = istio_resource(object.kind(), version_of(&object.api_version));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &key.namespace, &resource);
    api.patch(
        &object.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&object.raw),
    )
    .await
    .map_err(api_error(format!(
        "applying {key} ({}:{})",
        object.source.file.display(),
        object.source.line
    )))?;
    Ok(())
}

/// Deletes `key` (at `version`) and waits until the API no longer has it.
pub async fn delete_istio(
    client: &Client,
    key: &ObjectKey,
    version: &str,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let resource = istio_resource(key.kind, version);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &key.namespace, &resource);
    match api.delete(&key.name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => return Err(ClusterError::NotFound { key: key.clone() }),
        Err(e) => return Err(api_error(format!("deleting {key}"))(e)),
    }
    wait_gone(&api, &key.to_string(), &key.name, timeout).await
}

/// Until `name` is gone (kube-runtime's `await_condition`, over a watch), for at most `timeout`.
async fn wait_gone<K>(
    api: &Api<K>,
    what: &str,
    name: &str,
    timeout: Duration,
) -> Result<(), ClusterError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    // Any object of that name that is still there, whatever its uid, is not gone.
    let gone = |object: Option<&K>| object.is_none();
    let waited = tokio::time::timeout(timeout, await_condition(api.clone(), name, gone)).await;
    match waited {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(ClusterError::Api {
            action: format!("watching {what} after deleting it"),
            message: e.to_string(),
        }),
        Err(_) => {
            let last_seen = match api.get_opt(name).await {
                Ok(None) => "gone at the last moment".to_string(),
                Ok(Some(object)) => match object.meta().deletion_timestamp.as_ref() {
                    Some(ts) => format!("still there, deleted at {}", ts.0),
                    None => "still there, not marked for deletion".to_string(),
                },
                Err(e) => api_message(&e),
            };
            Err(ClusterError::Timeout {
                what: format!("{what} to be gone"),
                waited: timeout,
                last_seen,
            })
        }
    }
}

/// Every Istio object of the four kinds in `namespaces`, sorted.
pub async fn list_istio(
    client: &Client,
    namespaces: &[&str],
) -> Result<Vec<ObjectKey>, ClusterError> {
    let mut namespaces = namespaces.to_vec();
    namespaces.sort_unstable();
    namespaces.dedup();
    let mut keys = Vec::new();
    for namespace in namespaces {
        for kind in KINDS {
            let resource = istio_resource(kind, DEFAULT_API_VERSION);
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource);
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(api_error(format!("listing {}s in {namespace}", kind)))?;
            keys.extend(list.items.into_iter().filter_map(|o| {
                Some(ObjectKey {
                    kind,
                    namespace: namespace.to_string(),
                    name: o.metadata.name?,
                })
            }));
        }
    }
    keys.sort();
    Ok(keys)
}

// ---------------------------------------------------------------------------------------------
// Pods.

/// Whether `pod` runs, is not being deleted, is Ready and has every one of `containers` ready.
/// Istio's native sidecars sit among the init containers, so both lists count.
pub fn pod_ready(pod: &Pod, containers: &[&str]) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let Some(status) = &pod.status else {
        return false;
    };
    if status.phase.as_deref() != Some("Running") {
        return false;
    }
    let ready_condition = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let statuses: Vec<_> = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .collect();
    ready_condition
        && containers
            .iter()
            .all(|name| statuses.iter().any(|s| s.name == *name && s.ready))
}

/// One line on a pod, for timeouts: phase and each container's readiness.
pub fn pod_summary(pod: &Pod) -> String {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let Some(status) = &pod.status else {
        return format!("{name}: no status");
    };
    let containers: Vec<String> = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .map(|s| {
            let waiting = s
                .state
                .as_ref()
                .and_then(|st| st.waiting.as_ref())
                .and_then(|w| w.reason.clone())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            format!("{} ready={}{waiting}", s.name, s.ready)
        })
        .collect();
    format!(
        "{name}: {} [{}]",
        status.phase.as_deref().unwrap_or("no phase"),
        containers.join(", ")
    )
}

/// The name of a Running pod matching `selector` in `namespace` (the first by name).
pub async fn running_pod(
    client: &Client,
    namespace: &str,
    selector: &str,
) -> Result<String, ClusterError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(api_error(format!("listing pods {selector} in {namespace}")))?;
    let mut running: Vec<String> = pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    running.sort();
    running.into_iter().next().ok_or_else(|| ClusterError::Api {
        action: format!("finding a running pod {selector} in {namespace}"),
        message: describe_pods(&pods.items),
    })
}

/// What a list of pods looks like, for errors: one summary each, or "no such pod".
fn describe_pods(pods: &[Pod]) -> String {
    if pods.is_empty() {
        return "no such pod".into();
    }
    pods.iter().map(pod_summary).collect::<Vec<_>>().join("; ")
}

/// Until a pod matching `selector` is ready with all of `containers` (over a watch of those
/// pods), for at most `timeout`; returns its name.
pub async fn wait_pod_ready(
    client: &Client,
    namespace: &str,
    selector: &str,
    containers: &[&str],
    timeout: Duration,
) -> Result<String, ClusterError> {
    use futures::TryStreamExt;
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let (reader, writer) = reflector::store::<Pod>();
    let events = reflector(
        writer,
        watcher(api, watcher::Config::default().labels(selector)),
    );
    let mut events = std::pin::pin!(events);
    let ready = || {
        reader
            .state()
            .iter()
            .find(|p| pod_ready(p, containers))
            .and_then(|p| p.metadata.name.clone())
    };
    let waited = tokio::time::timeout(timeout, async {
        loop {
            match events.try_next().await {
                Ok(Some(_)) => {
                    if let Some(name) = ready() {
                        return Ok(name);
                    }
                }
                Ok(None) => {
                    return Err(ClusterError::Api {
                        action: format!("watching pods {selector} in {namespace}"),
                        message: "the watch ended".into(),
                    });
                }
                Err(e) => {
                    return Err(ClusterError::Api {
                        action: format!("watching pods {selector} in {namespace}"),
                        message: e.to_string(),
                    });
                }
            }
        }
    })
    .await;
    match waited {
        Ok(result) => result,
        Err(_) => {
            let pods: Vec<Pod> = reader.state().iter().map(|p| (**p).clone()).collect();
            Err(ClusterError::Timeout {
                what: format!(
                    "a pod {selector} in {namespace} with {} ready",
                    containers.join(" and ")
                ),
                waited: timeout,
                last_seen: describe_pods(&pods),
            })
        }
    }
}

/// Whether a Deployment `name` exists in `namespace`.
pub async fn deployment_exists(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<bool, ClusterError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name)
        .await
        .map(|d| d.is_some())
        .map_err(api_error(format!("reading deployment {namespace}/{name}")))
}

// ---------------------------------------------------------------------------------------------
// The namespace.

/// What [`ensure_injection`] had to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NamespaceChange {
    pub created: bool,
    pub labelled: bool,
}

/// Makes `namespace` exist with `istio-injection=enabled`, reporting what it changed.
pub async fn ensure_injection(
    client: &Client,
    namespace: &str,
) -> Result<NamespaceChange, ClusterError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let existing = api
        .get_opt(namespace)
        .await
        .map_err(api_error(format!("reading namespace {namespace}")))?;
    match existing {
        None => {
            let ns: Namespace = serde_json::from_value(json!({
                "metadata": {"name": namespace, "labels": {INJECTION_LABEL: "enabled"}}
            }))
            .map_err(|e| ClusterError::Api {
                action: format!("building namespace {namespace}"),
                message: e.to_string(),
            })?;
            api.create(&PostParams::default(), &ns)
                .await
                .map_err(api_error(format!("creating namespace {namespace}")))?;
            Ok(NamespaceChange {
                created: true,
                labelled: true,
            })
        }
        Some(ns) => {
            let enabled = ns
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(INJECTION_LABEL))
                .is_some_and(|v| v == "enabled");
            if !enabled {
                set_injection_label(client, namespace, Some("enabled")).await?;
            }
            Ok(NamespaceChange {
                created: false,
                labelled: !enabled,
            })
        }
    }
}

/// Sets (`Some`) or removes (`None`) the injection label with a merge patch.
pub async fn set_injection_label(
    client: &Client,
    namespace: &str,
    value: Option<&str>,
) -> Result<(), ClusterError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let patch = json!({"metadata": {"labels": {INJECTION_LABEL: value}}});
    api.patch(namespace, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(api_error(format!(
            "setting label {INJECTION_LABEL} on namespace {namespace}"
        )))?;
    Ok(())
}

/// Deletes a namespace (one this run created) and waits until it is gone.
pub async fn delete_namespace(
    client: &Client,
    namespace: &str,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.delete(namespace, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(api_error(format!("deleting namespace {namespace}"))(e)),
    }
    wait_gone(&api, &format!("namespace {namespace}"), namespace, timeout).await
}

// ---------------------------------------------------------------------------------------------
// The sleep sample (or any manifest of the few kinds it uses).

/// One object of a plain Kubernetes manifest, ready for server-side apply.
#[derive(Debug, Clone)]
pub struct ManifestObject {
    pub resource: ApiResource,
    pub name: String,
    pub body: Value,
}

impl std::fmt::Display for ManifestObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.resource.kind, self.name)
    }
}

/// The documents of `text` (from `file`), each of a kind this backend knows how to address.
pub fn parse_manifest(file: &Path, text: &str) -> Result<Vec<ManifestObject>, ClusterError> {
    let error = |message: String| ClusterError::Manifest {
        file: file.to_path_buf(),
        message,
    };
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| error(e.to_string()))?;
    documents
        .into_iter()
        .filter(|d| !d.is_null())
        .map(|body| {
            let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
            let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let resource = match (api_version, kind) {
                ("v1", "ServiceAccount") => ApiResource::erase::<ServiceAccount>(&()),
                ("v1", "Service") => ApiResource::erase::<Service>(&()),
                ("apps/v1", "Deployment") => ApiResource::erase::<Deployment>(&()),
                _ => {
                    return Err(error(format!(
                        "unsupported object {api_version} {kind}: only v1 ServiceAccount, \
                         v1 Service and apps/v1 Deployment"
                    )));
                }
            };
            let name = body
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .ok_or_else(|| error(format!("a {kind} without metadata.name")))?
                .to_string();
            Ok(ManifestObject {
                resource,
                name,
                body,
            })
        })
        .collect()
}

pub async fn apply_manifest_object(
    client: &Client,
    namespace: &str,
    object: &ManifestObject,
) -> Result<(), ClusterError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &object.resource);
    api.patch(
        &object.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&object.body),
    )
    .await
    .map_err(api_error(format!("applying {object} in {namespace}")))?;
    Ok(())
}

/// Deletes one object; already gone is fine.
pub async fn delete_manifest_object(
    client: &Client,
    namespace: &str,
    object: &ManifestObject,
) -> Result<(), ClusterError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &object.resource);
    match api.delete(&object.name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(api_error(format!("deleting {object} in {namespace}"))(e)),
    }
}

#[cfg(test)]
mod tests;
