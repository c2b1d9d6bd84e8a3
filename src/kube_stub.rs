//! An empty, read-only Kubernetes API on loopback, so that a real istiod can start without a
//! cluster.
//!
//! Why it exists: `pilot-discovery` 1.30 and 1.31 panic at start-up when given no Kubernetes
//! registry (`--registries=`). The ServiceEntry controller
//! (`pilot/pkg/serviceregistry/serviceentry/controller.go`) dereferences the multicluster
//! controller, which is only created with a kube client; the dereference came in with
//! istio/istio PR #58951. The local backend therefore runs istiod with
//! `--registries=Kubernetes --kubeconfig=<this stub's kubeconfig> --configDir=<dir>`, and this
//! module is the API that kubeconfig points at. It is a named deviation of the local backend:
//! istiod believes it talks to a cluster that has two namespaces and nothing else.
//!
//! What it serves, over plain HTTP/1.1 with no authentication: `/version`; discovery (`/api`,
//! `/apis`, `/api/v1`, `/apis/<group>`, `/apis/<group>/<version>`) for the resources istiod's
//! informers list and watch ([`RESOURCES`]); list and watch of each of them. The only objects are
//! the Namespaces given to [`KubeStub::start`]; every other list is empty. Watches follow
//! client-go's watch-list protocol (`sendInitialEvents=true`): the initial objects as `ADDED`,
//! then a `BOOKMARK` carrying `k8s.io/initial-events-end: "true"`, without which an informer never
//! syncs; after that a watch sends nothing and stays open until the client goes or the stub stops
//! (`timeoutSeconds` is not honoured: nothing ever changes). A client that asks for object
//! metadata only (`Accept: …;as=PartialObjectMetadataList`, as metadata informers do) gets it in
//! that shape. A GET of a single object that is not one of the namespaces, and any unknown path
//! or resource, gets a 404 `Status` (a list of an unknown kind would stall an informer); every
//! write (POST, PUT, PATCH, DELETE) gets a 403 `Status`, so istiod never wins a leader election
//! and its leader-only controllers stay off.
//!
//! Start-up speed: against this stub istiod 1.31 opens its gRPC port (which it does only once its
//! caches have synced) 0.14–0.22 s after exec, of which the kube informers take about 25 ms; the
//! rest is istiod's own start. What matters is answering at once, with a listen backlog large
//! enough for the twenty-odd connections istiod opens together: the Python prototype's 1 s stalls
//! were its socketserver backlog of 5 dropping SYNs (a 1 s SYN retransmit), not client-go
//! backoff. A watch-list the client cannot decode costs little: client-go falls back to list and
//! watch at once (a few ms).
//!
//! What it does not do: hold any Istio configuration (istiod reads that from `--configDir`
//! files), serve any Istio CRD, accept a write, or evaluate set-based selectors (`in`, `notin`;
//! it refuses them with a 400). Written by hand because no crate serves a Kubernetes API; the
//! kube crate this harness uses is a client.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The one resource version of everything: nothing ever changes.
const RESOURCE_VERSION: &str = "1";
/// How long `shutdown` lets connections finish after their watches have ended.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// The annotation on the bookmark that ends a watch-list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";
/// The Kubernetes version `/version` reports: that of istiod 1.31's client-go (0.36).
const KUBE_MINOR: &str = "36";

/// One kind of resource the stub serves.
#[derive(Debug)]
struct Resource {
    /// `""` for the core group.
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
}

impl Resource {
    fn group_version(&self) -> String {
        group_version(self.group, self.version)
    }
}

const fn resource(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> Resource {
    Resource {
        group,
        version,
        plural,
        kind,
        namespaced,
    }
}

/// Everything istiod 1.30 and 1.31 list, watch or get at start-up, and their close relatives.
const RESOURCES: &[Resource] = &[
    resource("", "v1", "namespaces", "Namespace", false),
    resource("", "v1", "services", "Service", true),
    resource("", "v1", "pods", "Pod", true),
    resource("", "v1", "nodes", "Node", false),
    resource("", "v1", "endpoints", "Endpoints", true),
    resource("", "v1", "configmaps", "ConfigMap", true),
    resource("", "v1", "secrets", "Secret", true),
    resource("", "v1", "serviceaccounts", "ServiceAccount", true),
    resource("", "v1", "events", "Event", true),
    resource(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
    ),
    resource(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
    ),
    resource("coordination.k8s.io", "v1", "leases", "Lease", true),
    resource(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        false,
    ),
    resource(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        false,
    ),
    resource("apps", "v1", "deployments", "Deployment", true),
    resource("networking.k8s.io", "v1", "ingresses", "Ingress", true),
    resource(
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        "IngressClass",
        false,
    ),
    resource(
        "authentication.k8s.io",
        "v1",
        "tokenreviews",
        "TokenReview",
        false,
    ),
    resource(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        false,
    ),
    resource(
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "CertificateSigningRequest",
        false,
    ),
];

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// Why [`KubeStub::start`] failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KubeStubError {
    #[error("binding the kube stub's listener on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the kube stub's kubeconfig {}", .path.display())]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A running empty, read-only Kubernetes API; see the module docs. Dropping it stops serving at
/// once; [`KubeStub::shutdown`] ends the watches first and waits until the port is free.
#[derive(Debug)]
pub(crate) struct KubeStub {
    addr: SocketAddr,
    kubeconfig: PathBuf,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// What every connection reads.
#[derive(Debug)]
struct Shared {
    /// The Namespace objects, the only objects there are.
    namespaces: Vec<Value>,
    requests: AtomicUsize,
}

impl KubeStub {
    /// Binds `127.0.0.1:0`, starts serving `namespaces` and nothing else, and writes
    /// `<dir>/kubeconfig` (plain http, no credentials) pointing at it.
    pub(crate) async fn start(dir: &Path, namespaces: &[&str]) -> Result<KubeStub, KubeStubError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| KubeStubError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| KubeStubError::Bind { addr, source })?;
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_text(addr)).map_err(|source| {
            KubeStubError::Kubeconfig {
                path: kubeconfig.clone(),
                source,
            }
        })?;
        let shared = Arc::new(Shared {
            namespaces: namespaces.iter().map(|name| namespace(name)).collect(),
            requests: AtomicUsize::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stopped));
        Ok(KubeStub {
            addr,
            kubeconfig,
            shared,
            stop,
            task: Some(task),
        })
    }

    /// The address the API listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The kubeconfig file that points at this API.
    pub(crate) fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// How many requests it has answered (or begun to answer, for watches).
    pub(crate) fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Stops accepting, ends every watch, lets connections finish (a couple of seconds at most,
    /// then closes them) and returns when no socket of the stub is left on its port.
    pub(crate) async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            // A task that panicked has already dropped its sockets.
            let _ = task.await;
        }
    }
}

impl Drop for KubeStub {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            // Aborting the accept loop drops its listener and its set of connection tasks, which
            // aborts them in turn.
            task.abort();
        }
    }
}

fn kubeconfig_text(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kube-stub
  cluster:
    server: http://{addr}
contexts:
- name: kube-stub
  context:
    cluster: kube-stub
    user: kube-stub
current-context: kube-stub
users:
- name: kube-stub
  user: {{}}
"
    )
}

fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": format!("kube-stub-namespace-{name}"),
            "resourceVersion": RESOURCE_VERSION,
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    let connection_stop = stop.clone();
    loop {
        tokio::select! {
            // Stop when asked, or when the stub is gone without asking.
            _ = stop.wait_for(|stop| *stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                // An accept error concerns one connection attempt; the listener stays good.
                if let Ok((stream, _peer)) = accepted {
                    let stop = connection_stop.clone();
                    connections.spawn(serve_connection(stream, Arc::clone(&shared), stop));
                }
            }
        }
    }
    drop(listener);
    // Every connection has seen the stop: its watches end and it closes once its responses are
    // out. One that does not (a client that stopped reading) is closed after the grace.
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        connections.shutdown().await;
    }
}

/// Serves one connection until the client closes it, or the stub stops and its responses are
/// out.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    // Watch events are small and each is worth sending at once.
    let _ = stream.set_nodelay(true);
    let service_stop = stop.clone();
    let service = service_fn(move |request: Request<Incoming>| {
        let shared = Arc::clone(&shared);
        let stop = service_stop.clone();
        async move { Ok::<_, Infallible>(respond(&shared, request, stop).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let mut stop = stop;
    tokio::select! {
        // A connection error (the client went away) ends only this connection.
        _ = connection.as_mut() => return,
        _ = stop.wait_for(|stop| *stop) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

async fn respond(
    shared: &Shared,
    request: Request<Incoming>,
    stop: watch::Receiver<bool>,
) -> Response<Body> {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let metadata_only = parts
        .headers
        .get(ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("as=PartialObjectMetadata"));
    let query = parts.uri.query().unwrap_or("");
    let answer = answer(
        &parts.method,
        parts.uri.path(),
        query,
        metadata_only,
        &shared.namespaces,
    );
    if parts.method != Method::GET {
        // Read what the client sent, so that the connection stays usable for its next request.
        let _ = body.collect().await;
    }
    match answer {
        Answer::Json(status, value) => json_response(status, &value),
        Answer::Watch(events) => watch_response(events, stop),
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())).boxed_unsync());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A watch: `events`, one JSON document a line, then nothing until the stub stops.
fn watch_response(events: Vec<Value>, mut stop: watch::Receiver<bool>) -> Response<Body> {
    let initial = futures::stream::iter(events).map(|event| {
        let mut line = event.to_string();
        line.push('\n');
        Ok::<_, Infallible>(Frame::data(Bytes::from(line)))
    });
    let held_open = futures::stream::once(async move {
        // An error means the stub is gone, which ends the watch all the same.
        let _ = stop.wait_for(|stop| *stop).await;
    })
    .filter_map(|()| async { None });
    let mut response = Response::new(StreamBody::new(initial.chain(held_open)).boxed_unsync());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// What to answer: a JSON document, or a watch with its initial events.
#[derive(Debug, PartialEq)]
enum Answer {
    Json(StatusCode, Value),
    Watch(Vec<Value>),
}

/// The answer to one request, from its method, path, query and whether it asked for metadata
/// only. A pure function of the request and the namespaces.
fn answer(
    method: &Method,
    path: &str,
    query: &str,
    metadata_only: bool,
    namespaces: &[Value],
) -> Answer {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["version"] if method == Method::GET => return Answer::Json(StatusCode::OK, version()),
        ["api"] if method == Method::GET => return Answer::Json(StatusCode::OK, api_versions()),
        ["apis"] if method == Method::GET => return Answer::Json(StatusCode::OK, api_groups()),
        ["apis", group] if method == Method::GET => {
            return match api_group(group) {
                Some(group) => Answer::Json(StatusCode::OK, group),
                None => not_found(),
            };
        }
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return not_found(),
    };
    if !RESOURCES
        .iter()
        .any(|r| r.group == group && r.version == version)
    {
        return not_found();
    }
    let Some(target) = Target::parse(group, version, rest) else {
        return not_found();
    };
    let Target::Resource {
        resource,
        namespace,
        name,
    } = target
    else {
        return match *method {
            Method::GET => Answer::Json(StatusCode::OK, resource_list(group, version)),
            _ => method_not_allowed(method),
        };
    };
    match *method {
        Method::GET => {}
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
            return forbidden(method, resource, namespace, name);
        }
        _ => return method_not_allowed(method),
    }
    let objects: &[Value] = if resource.plural == "namespaces" {
        namespaces
    } else {
        &[]
    };
    let in_scope =
        |object: &&Value| namespace.is_none_or(|ns| field(object, "metadata.namespace") == ns);
    if let Some(name) = name {
        return match objects
            .iter()
            .filter(in_scope)
            .find(|object| field(object, "metadata.name") == name)
        {
            Some(object) => Answer::Json(StatusCode::OK, shaped(object, metadata_only)),
            None => object_not_found(resource, name),
        };
    }
    let query = Query::parse(query);
    let selected: Result<Vec<&Value>, String> = objects
        .iter()
        .filter(in_scope)
        .filter_map(|object| match query.selects(object) {
            Ok(true) => Some(Ok(object)),
            Ok(false) => None,
            Err(error) => Some(Err(error)),
        })
        .collect();
    let selected = match selected {
        Ok(selected) => selected,
        Err(message) => return status(StatusCode::BAD_REQUEST, "BadRequest", &message, None),
    };
    if query.watch {
        return Answer::Watch(watch_events(resource, &selected, &query, metadata_only));
    }
    let (api_version, kind) = if metadata_only {
        (
            "meta.k8s.io/v1".to_owned(),
            "PartialObjectMetadataList".to_owned(),
        )
    } else {
        (resource.group_version(), format!("{}List", resource.kind))
    };
    Answer::Json(
        StatusCode::OK,
        json!({
            "kind": kind,
            "apiVersion": api_version,
            "metadata": {"resourceVersion": RESOURCE_VERSION},
            "items": selected.iter().map(|o| shaped(o, metadata_only)).collect::<Vec<_>>(),
        }),
    )
}

/// What a path below `/api/v1` or `/apis/<group>/<version>` names.
#[derive(Debug)]
enum Target<'a> {
    /// The group version itself: its resource list.
    GroupVersion,
    /// A collection (no name) or one object, maybe within a namespace.
    Resource {
        resource: &'static Resource,
        namespace: Option<&'a str>,
        name: Option<&'a str>,
    },
}

impl<'a> Target<'a> {
    /// `None` for anything the stub does not serve: an unknown resource, a namespaced collection
    /// of a cluster-scoped resource, a subresource.
    fn parse(group: &str, version: &str, rest: &[&'a str]) -> Option<Target<'a>> {
        let find = |plural: &str| {
            RESOURCES
                .iter()
                .find(|r| r.group == group && r.version == version && r.plural == plural)
        };
        let (resource, namespace, name) = match *rest {
            [] => return Some(Target::GroupVersion),
            ["namespaces", namespace, plural, ref name @ ..]
                if find(plural).is_some_and(|r| r.namespaced) && name.len() <= 1 =>
            {
                (find(plural)?, Some(namespace), name.first().copied())
            }
            [plural] => (find(plural)?, None, None),
            [plural, name] => (find(plural)?, None, Some(name)),
            _ => return None,
        };
        Some(Target::Resource {
            resource,
            namespace,
            name,
        })
    }
}

/// The query parameters the stub looks at.
#[derive(Debug, Default)]
struct Query {
    watch: bool,
    send_initial_events: bool,
    resource_version: String,
    label_selector: String,
    field_selector: String,
}

impl Query {
    fn parse(query: &str) -> Query {
        let mut parsed = Query::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let flag = value == "true" || value == "1";
            match key.as_ref() {
                "watch" => parsed.watch = flag,
                "sendInitialEvents" => parsed.send_initial_events = flag,
                "resourceVersion" => parsed.resource_version = value.into_owned(),
                "labelSelector" => parsed.label_selector = value.into_owned(),
                "fieldSelector" => parsed.field_selector = value.into_owned(),
                _ => {}
            }
        }
        parsed
    }

    /// Whether `object` matches both selectors; an error for a selector the stub cannot read.
    fn selects(&self, object: &Value) -> Result<bool, String> {
        let labels = |key: &str| {
            object
                .pointer("/metadata/labels")
                .and_then(|labels| labels.get(key))
                .and_then(Value::as_str)
        };
        let fields = |key: &str| Some(field(object, key));
        Ok(matches(&self.label_selector, labels)? && matches(&self.field_selector, fields)?)
    }
}

/// Whether an equality-based selector (`k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated)
/// holds for `value_of`; set-based selectors (`k in (a,b)`) are refused.
fn matches<'v>(selector: &str, value_of: impl Fn(&str) -> Option<&'v str>) -> Result<bool, String> {
    if selector.contains('(') {
        return Err(format!(
            "the kube stub does not evaluate set-based selectors: {selector:?}"
        ));
    }
    for requirement in selector.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let holds = if let Some((key, wanted)) = requirement.split_once("!=") {
            value_of(key.trim()) != Some(wanted.trim())
        } else if let Some((key, wanted)) = requirement
            .split_once("==")
            .or_else(|| requirement.split_once('='))
        {
            value_of(key.trim()) == Some(wanted.trim())
        } else if let Some(key) = requirement.strip_prefix('!') {
            value_of(key.trim()).is_none()
        } else {
            value_of(requirement).is_some()
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The string at a dotted path (`metadata.name`), `""` when there is none (as the API server
/// treats an unset field).
fn field<'v>(object: &'v Value, path: &str) -> &'v str {
    path.split('.')
        .try_fold(object, |value, key| value.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The events a watch starts with: every selected object when the client asked for them
/// (watch-list) or named no resource version to start from, and for watch-list the bookmark
/// that ends them.
fn watch_events(
    resource: &Resource,
    objects: &[&Value],
    query: &Query,
    metadata_only: bool,
) -> Vec<Value> {
    let mut events = Vec::new();
    let from_scratch = matches!(query.resource_version.as_str(), "" | "0");
    if query.send_initial_events || from_scratch {
        events.extend(
            objects
                .iter()
                .map(|o| json!({"type": "ADDED", "object": shaped(o, metadata_only)})),
        );
    }
    if query.send_initial_events {
        let (api_version, kind) = if metadata_only {
            ("meta.k8s.io/v1".to_owned(), "PartialObjectMetadata")
        } else {
            (resource.group_version(), resource.kind)
        };
        events.push(json!({
            "type": "BOOKMARK",
            "object": {
                "kind": kind,
                "apiVersion": api_version,
                "metadata": {
                    "resourceVersion": RESOURCE_VERSION,
                    "annotations": {INITIAL_EVENTS_END: "true"},
                },
            },
        }));
    }
    events
}

/// `object` as the client asked for it: whole, or its metadata only.
fn shaped(object: &Value, metadata_only: bool) -> Value {
    if metadata_only {
        json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })
    } else {
        object.clone()
    }
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0"),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    })
}

/// The named groups, each with the versions the stub serves, in [`RESOURCES`] order.
fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => groups.push((r.group, vec![r.version])),
        }
    }
    groups
}

fn group_json(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": group_version(group, v), "version": v}))
        .collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions[0]})
}

fn api_groups() -> Value {
    let groups: Vec<Value> = groups()
        .iter()
        .map(|(group, versions)| group_json(group, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn api_group(name: &str) -> Option<Value> {
    let (group, versions) = groups().into_iter().find(|(g, _)| *g == name)?;
    let mut value = group_json(group, &versions);
    value["kind"] = json!("APIGroup");
    value["apiVersion"] = json!("v1");
    Some(value)
}

fn resource_list(group: &str, version: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            json!({
                "name": r.plural,
                "singularName": r.kind.to_lowercase(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                // The truth: nothing here can be written.
                "verbs": ["get", "list", "watch"],
            })
        })
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": resources,
    })
}

fn status(code: StatusCode, reason: &str, message: &str, details: Option<Value>) -> Answer {
    let mut value = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(details) = details {
        value["details"] = details;
    }
    Answer::Json(code, value)
}

fn not_found() -> Answer {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
        None,
    )
}

fn object_not_found(resource: &Resource, name: &str) -> Answer {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{} {name:?} not found", qualified(resource)),
        Some(json!({"name": name, "group": resource.group, "kind": resource.plural})),
    )
}

fn forbidden(
    method: &Method,
    resource: &Resource,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Answer {
    let verb = match (method.as_str(), name) {
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", None) => "deletecollection",
        _ => "delete",
    };
    let place = namespace.map_or_else(String::new, |ns| format!(" in the namespace {ns:?}"));
    status(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &format!(
            "{} is forbidden: the harness's kube stub is read-only and cannot {verb} it{place}",
            qualified(resource)
        ),
        Some(json!({"name": name.unwrap_or(""), "group": resource.group, "kind": resource.plural})),
    )
}

fn method_not_allowed(method: &Method) -> Answer {
    status(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &format!("the server does not allow the method {method} here"),
        None,
    )
}

/// `configmaps`, `leases.coordination.k8s.io`: how the API server names a resource in messages.
fn qualified(resource: &Resource) -> String {
    if resource.group.is_empty() {
        resource.plural.to_owned()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::process::Command;

    use super::*;
    use crate::process::Supervised;
    use crate::wait::{Look, Wait};

    const NAMESPACES: &[&str] = &["default", "istio-system"];

    async fn stub() -> (tempfile::TempDir, KubeStub) {
        let dir = tempfile::tempdir().unwrap();
        let stub = KubeStub::start(dir.path(), NAMESPACES).await.unwrap();
        (dir, stub)
    }

    fn url(stub: &KubeStub, path: &str) -> String {
        format!("http://{}{path}", stub.addr())
    }

    async fn get(stub: &KubeStub, path: &str) -> (u16, Value) {
        let response = reqwest::get(url(stub, path)).await.unwrap();
        let code = response.status().as_u16();
        (code, response.json().await.unwrap())
    }

    /// Reads a watch until it has sent `n` events, one JSON document a line.
    async fn events(response: &mut reqwest::Response, n: usize) -> Vec<Value> {
        let mut text = String::new();
        while text.lines().count() < n {
            let chunk = response
                .chunk()
                .await
                .unwrap()
                .expect("the watch ended early");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    const WATCH_LIST: &str = "watch=true&sendInitialEvents=true&allowWatchBookmarks=true\
        &resourceVersionMatch=NotOlderThan&timeoutSeconds=300";

    #[tokio::test]
    async fn discovery_names_the_groups_and_resources_istiod_uses() {
        let (_dir, stub) = stub().await;
        let (code, version) = get(&stub, "/version").await;
        assert_eq!((code, version["major"].as_str()), (200, Some("1")));
        let (code, api) = get(&stub, "/api").await;
        assert_eq!((code, api["versions"].clone()), (200, json!(["v1"])));

        let (code, apis) = get(&stub, "/apis").await;
        assert_eq!((code, apis["kind"].as_str()), (200, Some("APIGroupList")));
        let names: Vec<&str> = apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        for group in [
            "discovery.k8s.io",
            "apiextensions.k8s.io",
            "admissionregistration.k8s.io",
            "networking.k8s.io",
        ] {
            assert!(names.contains(&group), "{group} missing from {names:?}");
        }
        let (code, group) = get(&stub, "/apis/networking.k8s.io").await;
        assert_eq!(
            (code, group["preferredVersion"]["groupVersion"].as_str()),
            (200, Some("networking.k8s.io/v1"))
        );

        let (code, core) = get(&stub, "/api/v1").await;
        assert_eq!((code, core["groupVersion"].as_str()), (200, Some("v1")));
        let core: Vec<(&str, bool)> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap(),
                    r["namespaced"].as_bool().unwrap(),
                )
            })
            .collect();
        assert!(core.contains(&("namespaces", false)) && core.contains(&("pods", true)));

        let (code, slices) = get(&stub, "/apis/discovery.k8s.io/v1").await;
        assert_eq!(code, 200);
        assert_eq!(slices["resources"][0]["kind"], "EndpointSlice");
        assert_eq!(
            slices["resources"][0]["verbs"],
            json!(["get", "list", "watch"])
        );
        assert_eq!(get(&stub, "/apis/discovery.k8s.io/v2").await.0, 404);
        assert_eq!(stub.requests(), 7);
    }

    #[tokio::test]
    async fn a_list_holds_the_namespaces_and_nothing_else() {
        let (_dir, stub) = stub().await;
        let (code, list) = get(&stub, "/api/v1/namespaces?limit=500&resourceVersion=0").await;
        assert_eq!((code, list["kind"].as_str()), (200, Some("NamespaceList")));
        let names: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, NAMESPACES);
        assert_eq!(list["metadata"]["resourceVersion"], RESOURCE_VERSION);

        let (code, pods) = get(&stub, "/api/v1/pods?fieldSelector=status.phase%21%3DFailed").await;
        assert_eq!((code, pods["kind"].as_str()), (200, Some("PodList")));
        assert_eq!(pods["items"], json!([]));
        let (code, services) = get(&stub, "/api/v1/namespaces/istio-system/services").await;
        assert_eq!((code, services["items"].clone()), (200, json!([])));

        let (_, selected) = get(
            &stub,
            "/api/v1/namespaces?labelSelector=kubernetes.io%2Fmetadata.name%3Ddefault",
        )
        .await;
        assert_eq!(selected["items"].as_array().unwrap().len(), 1);
        assert_eq!(selected["items"][0]["metadata"]["name"], "default");
        let (code, _) = get(&stub, "/api/v1/namespaces?labelSelector=env+in+%28a%29").await;
        assert_eq!(code, 400);

        let (code, one) = get(&stub, "/api/v1/namespaces/istio-system").await;
        assert_eq!(
            (code, one["status"]["phase"].as_str()),
            (200, Some("Active"))
        );

        // What a metadata informer asks for, it gets in that shape.
        let response = reqwest::Client::new()
            .get(url(
                &stub,
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            ))
            .header(
                "accept",
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
            )
            .send()
            .await
            .unwrap();
        let list: Value = response.json().await.unwrap();
        assert_eq!(
            (list["kind"].as_str(), list["apiVersion"].as_str()),
            (Some("PartialObjectMetadataList"), Some("meta.k8s.io/v1"))
        );
    }

    #[tokio::test]
    async fn a_watch_list_sends_the_objects_then_the_bookmark_that_ends_them() {
        let (_dir, stub) = stub().await;
        let mut watch = reqwest::get(url(&stub, &format!("/api/v1/namespaces?{WATCH_LIST}")))
            .await
            .unwrap();
        assert_eq!(watch.status(), 200);
        let sent = events(&mut watch, 3).await;
        let types: Vec<&str> = sent.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["ADDED", "ADDED", "BOOKMARK"]);
        assert_eq!(sent[1]["object"]["metadata"]["name"], "istio-system");
        assert_eq!(sent[2]["object"]["kind"], "Namespace");
        assert_eq!(
            sent[2]["object"]["metadata"]["annotations"][INITIAL_EVENTS_END],
            "true"
        );

        // An empty resource: the bookmark alone.
        let mut empty = reqwest::get(url(
            &stub,
            &format!("/apis/discovery.k8s.io/v1/endpointslices?{WATCH_LIST}"),
        ))
        .await
        .unwrap();
        let sent = events(&mut empty, 1).await;
        assert_eq!(
            (sent[0]["type"].as_str(), sent[0]["object"]["kind"].as_str()),
            (Some("BOOKMARK"), Some("EndpointSlice"))
        );

        // A plain watch from a known version sends nothing: nothing changes.
        let watch = answer(
            &Method::GET,
            "/api/v1/namespaces",
            "watch=true&resourceVersion=1&allowWatchBookmarks=true",
            false,
            &[namespace("default")],
        );
        assert_eq!(watch, Answer::Watch(Vec::new()));
    }

    #[tokio::test]
    async fn an_unknown_resource_or_object_is_a_404_status() {
        let (_dir, stub) = stub().await;
        for path in [
            "/api/v1/widgets",
            "/apis/gateway.networking.k8s.io/v1/gateways",
            "/apis/networking.k8s.io/v1/namespaces/default/ingressclasses",
            "/api/v1/namespaces/default/pods/sleep/log",
            "/openapi/v2",
        ] {
            let (code, status) = get(&stub, path).await;
            assert_eq!(
                (code, status["kind"].as_str(), status["reason"].as_str()),
                (404, Some("Status"), Some("NotFound")),
                "{path}"
            );
        }
        let (code, status) = get(
            &stub,
            "/api/v1/namespaces/istio-system/configmaps/istio-leader",
        )
        .await;
        assert_eq!(code, 404);
        assert_eq!(status["details"]["name"], "istio-leader");
        assert_eq!(status["message"], "configmaps \"istio-leader\" not found");
    }

    #[tokio::test]
    async fn a_write_is_a_403_status_and_the_connection_stays_usable() {
        let (_dir, stub) = stub().await;
        let client = reqwest::Client::new();
        let response = client
            .post(url(&stub, "/api/v1/namespaces/istio-system/configmaps"))
            .header("content-type", "application/json")
            .body(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"istio-leader"}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        let status: Value = response.json().await.unwrap();
        assert_eq!(status["reason"], "Forbidden");
        for method in [
            reqwest::Method::PUT,
            reqwest::Method::PATCH,
            reqwest::Method::DELETE,
        ] {
            let response = client
                .request(
                    method.clone(),
                    url(
                        &stub,
                        "/apis/coordination.k8s.io/v1/namespaces/istio-system/leases/x",
                    ),
                )
                .body("{}")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 403, "{method}");
        }
        let response = client.get(url(&stub, "/api")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }

    #[tokio::test]
    async fn shutdown_ends_open_watches_and_frees_the_port() {
        let (dir, stub) = stub().await;
        let addr = stub.addr();
        let kubeconfig = std::fs::read_to_string(stub.kubeconfig()).unwrap();
        assert!(
            kubeconfig.contains(&format!("server: http://{addr}\n")),
            "{kubeconfig}"
        );
        assert_eq!(stub.kubeconfig(), dir.path().join("kubeconfig"));

        let mut watch = reqwest::get(url(&stub, &format!("/api/v1/pods?{WATCH_LIST}")))
            .await
            .unwrap();
        events(&mut watch, 1).await;
        let started = Instant::now();
        stub.shutdown().await;
        // The watch ended cleanly (end of body, not a reset), at once, not after the grace.
        assert!(
            started.elapsed() < SHUTDOWN_GRACE,
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(watch.chunk().await, Ok(None)));
        assert!(std::net::TcpStream::connect(addr).is_err());
        std::net::TcpListener::bind(addr).expect("the stub's port is free again");
    }

    #[tokio::test]
    async fn drop_stops_serving() {
        let (_dir, stub) = stub().await;
        let addr = stub.addr();
        drop(stub);
        let refused = Wait::new("the dropped stub's port to refuse", Duration::from_secs(5))
            .poll(|| async {
                Ok::<_, Infallible>(match tokio::net::TcpStream::connect(addr).await {
                    Err(_) => Look::Ready(()),
                    Ok(_) => Look::NotYet("a connection was accepted"),
                })
            })
            .await;
        assert!(refused.is_ok(), "{refused:?}");
    }

    /// The istiod binary for the end-to-end test, if there is one.
    fn pilot_discovery() -> Option<PathBuf> {
        let path = std::env::var_os("PILOT_DISCOVERY_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp/istio-build/bin-1.31/pilot-discovery"));
        path.is_file().then_some(path)
    }

    /// `n` loopback ports that were free a moment ago (istiod binds them itself).
    fn free_ports(n: usize) -> Vec<u16> {
        let listeners: Vec<_> = (0..n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect()
    }

    /// Starts istiod against a fresh stub and returns how long it took from exec to a gRPC port
    /// that accepts a connection (istiod opens it only once its caches have synced).
    async fn istiod_ready_time(binary: &Path) -> Duration {
        let dir = tempfile::tempdir().unwrap();
        let stub = KubeStub::start(dir.path(), NAMESPACES).await.unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        let [grpc, http, monitoring, ctrlz] = free_ports(4)[..] else {
            unreachable!()
        };
        let mesh = dir.path().join("mesh.yaml");
        std::fs::write(
            &mesh,
            format!(
                "rootNamespace: istio-system\ntrustDomain: cluster.local\n\
                 outboundTrafficPolicy:\n  mode: ALLOW_ANY\n\
                 defaultConfig:\n  discoveryAddress: 127.0.0.1:{grpc}\n"
            ),
        )
        .unwrap();
        let log = dir.path().join("istiod.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(binary);
        command
            .arg("discovery")
            .arg("--registries=Kubernetes")
            .arg(format!("--kubeconfig={}", stub.kubeconfig().display()))
            .arg(format!("--configDir={}", config.display()))
            .arg(format!("--meshConfig={}", mesh.display()))
            .args(["--networksConfig=/dev/null", "--domain=cluster.local"])
            .arg(format!("--grpcAddr=127.0.0.1:{grpc}"))
            .arg(format!("--httpAddr=127.0.0.1:{http}"))
            .arg(format!("--monitoringAddr=127.0.0.1:{monitoring}"))
            .arg("--ctrlz_address=127.0.0.1")
            .arg(format!("--ctrlz_port={ctrlz}"))
            .args(["--secureGRPCAddr=", "--httpsAddr="])
            .env("POD_NAMESPACE", "istio-system")
            .env("CLUSTER_ID", "Kubernetes")
            .env("ENABLE_CA_SERVER", "false")
            .env("PILOT_ENABLE_METADATA_EXCHANGE", "false")
            .env("PILOT_ENABLE_ALPN_FILTER", "false")
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let started = Instant::now();
        let istiod = Supervised::spawn("istiod", command, log.clone()).unwrap();
        let grpc_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, grpc));
        let wait = Wait::new(
            "istiod's gRPC port to accept a connection",
            Duration::from_secs(10),
        )
        .every(Duration::from_millis(5));
        let ready = wait.poll(|| async {
            Ok::<_, Infallible>(match tokio::net::TcpStream::connect(grpc_addr).await {
                Ok(_) => Look::Ready(()),
                Err(error) => Look::NotYet(error.to_string()),
            })
        });
        let took = tokio::select! {
            ready = ready => match ready {
                Ok(_) => started.elapsed(),
                Err(error) => panic!("{error}; istiod's log ends:\n{}", crate::process::tail_lines(&log, 30)),
            },
            death = istiod.death() => panic!("{death}"),
        };
        assert!(istiod.exited().is_none(), "{:?}", istiod.dead());
        assert!(stub.requests() > 0);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("All caches have been synced up"), "{text}");
        istiod.shutdown(Duration::from_secs(5)).await.unwrap();
        stub.shutdown().await;
        took
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_real_istiod_syncs_against_the_stub_and_serves_grpc() {
        let Some(binary) = pilot_discovery() else {
            eprintln!(
                "skipped: no istiod (set PILOT_DISCOVERY_BIN, or build \
                 /tmp/istio-build/bin-1.31/pilot-discovery)"
            );
            return;
        };
        let took = istiod_ready_time(&binary).await;
        eprintln!(
            "istiod {}: gRPC ready {took:.2?} after exec",
            binary.display()
        );
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
}
