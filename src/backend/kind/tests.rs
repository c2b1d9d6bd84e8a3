//! The backend against a mock API server (`tower_test`): what it sends, and what it makes of
//! the answers. No cluster: exec and port-forward stop at the refused upgrade, after the request
//! has been checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

use super::tools::tests::FakeShell;
use super::tools::{ToolOutput, Tools};
use super::*;
use crate::istio::{Kind, load_manifests};

type MockHandle = Handle<Request<Body>, Response<Body>>;

/// What the mock saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: BTreeMap<String, String>,
    body: Option<Value>,
}

impl Seen {
    fn query_value(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn mock_client() -> (Client, MockHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

fn backend(client: Client, shell: FakeShell) -> KindBackend {
    let opts = KindOptions::new(PathBuf::from("fixtures/sleep.yaml"));
    KindBackend::connected(
        client,
        Tools::new(Box::new(shell)),
        "kind-test".into(),
        &opts,
    )
}

fn respond(code: u16, body: Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    respond(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

/// Serves `answers` in order, one per request, and returns what each request was.
fn serve(
    mut handle: MockHandle,
    answers: Vec<Response<Body>>,
) -> tokio::task::JoinHandle<Vec<Seen>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        for answer in answers {
            let Some((request, send)) = handle.next_request().await else {
                break;
            };
            let (parts, body) = request.into_parts();
            let bytes = body.collect().await.unwrap().to_bytes();
            let query = parts
                .uri
                .query()
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect();
            seen.push(Seen {
                method: parts.method,
                path: parts.uri.path().to_string(),
                query,
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect(),
                body: (!bytes.is_empty()).then(|| serde_json::from_slice(&bytes).unwrap()),
            });
            send.send_response(answer);
        }
        seen
    })
}

/// Percent-decoding of a query component (enough for these tests).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn fixture(name: &str) -> Vec<IstioObject> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/egress-gateway-tls-origination")
        .join(name);
    load_manifests(&path).unwrap()
}

fn pod(name: &str, phase: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"containers": []}, "status": {"phase": phase}})
}

fn pod_list(pods: Vec<Value>) -> Response<Body> {
    respond(
        200,
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}),
    )
}

#[tokio::test]
async fn apply_is_a_forced_server_side_apply_of_the_manifest_as_written() {
    let objects = fixture("01-serviceentry-cnn.yaml");
    let (client, handle) = mock_client();
    let mut applied = objects[0].raw.clone();
    applied["metadata"]["namespace"] = json!("default");
    let server = serve(handle, vec![respond(200, applied)]);
    let mut backend = backend(client, FakeShell::default());
    backend.apply(&objects).await.unwrap();
    let seen = server.await.unwrap();
    assert_eq!(seen.len(), 1);
    let patch = &seen[0];
    assert_eq!(patch.method, Method::PATCH);
    assert_eq!(
        patch.path,
        "/apis/networking.istio.io/v1alpha3/namespaces/default/serviceentries/cnn"
    );
    assert_eq!(patch.query_value("fieldManager"), ["egress-conformance"]);
    assert_eq!(patch.query_value("force"), ["true"]);
    assert_eq!(
        patch.headers.get("content-type").map(String::as_str),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(patch.body.as_ref(), Some(&objects[0].raw));
}

#[tokio::test]
async fn a_webhook_rejection_comes_through_verbatim() {
    let objects = fixture("01-serviceentry-cnn.yaml");
    let (client, handle) = mock_client();
    let message = "admission webhook \"validation.istio.io\" denied the request: \
                   configuration is invalid: port name must be set";
    let server = serve(handle, vec![status(400, "BadRequest", message)]);
    let mut backend = backend(client, FakeShell::default());
    let err = backend.apply(&objects).await.unwrap_err();
    server.await.unwrap();
    let StepError::Backend(error) = err else {
        panic!("expected a backend error, got {err:?}");
    };
    let text = error.to_string();
    assert!(text.contains("ServiceEntry default/cnn"), "{text}");
    assert!(text.contains("01-serviceentry-cnn.yaml:1"), "{text}");
    assert!(text.ends_with(message), "{text}");
}

#[tokio::test]
async fn deleting_what_is_not_there_is_not_found() {
    let (client, handle) = mock_client();
    let server = serve(
        handle,
        vec![status(
            404,
            "NotFound",
            "gateways.networking.istio.io \"istio-egressgateway\" not found",
        )],
    );
    let mut backend = backend(client, FakeShell::default());
    let key = ObjectKey {
        kind: Kind::Gateway,
        namespace: "default".into(),
        name: "istio-egressgateway".into(),
    };
    let err = backend.delete(&key).await.unwrap_err();
    let seen = server.await.unwrap();
    assert!(
        matches!(&err, StepError::NotFound(k) if *k == key),
        "{err:?}"
    );
    assert_eq!(seen[0].method, Method::DELETE);
    assert_eq!(
        seen[0].path,
        "/apis/networking.istio.io/v1alpha3/namespaces/default/gateways/istio-egressgateway"
    );
}

/// A watch's answer: one JSON event per line.
fn watch_events(events: &[Value]) -> Response<Body> {
    let mut body = Vec::new();
    for event in events {
        body.extend(serde_json::to_vec(event).unwrap());
        body.push(b'\n');
    }
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn delete_watches_until_the_object_is_gone() {
    let (client, handle) = mock_client();
    let object = json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "egressgateway-for-cnn", "namespace": "default", "uid": "u1",
                     "resourceVersion": "7", "deletionTimestamp": "2025-01-01T00:00:00Z"},
        "spec": {}});
    let server = serve(
        handle,
        vec![
            respond(200, object.clone()),
            // Still there when the watch starts, then deleted.
            respond(
                200,
                json!({"apiVersion": "v1", "kind": "List",
                "metadata": {"resourceVersion": "7"}, "items": [object.clone()]}),
            ),
            watch_events(&[json!({"type": "DELETED", "object": object})]),
        ],
    );
    let mut backend = backend(client, FakeShell::default());
    let key = ObjectKey {
        kind: Kind::DestinationRule,
        namespace: "default".into(),
        name: "egressgateway-for-cnn".into(),
    };
    // Applied as v1: the delete addresses the same version.
    backend.versions.insert(key.clone(), "v1".into());
    backend.delete(&key).await.unwrap();
    let seen = server.await.unwrap();
    let path =
        "/apis/networking.istio.io/v1/namespaces/default/destinationrules/egressgateway-for-cnn";
    let collection = "/apis/networking.istio.io/v1/namespaces/default/destinationrules";
    let calls: Vec<(Method, &str)> = seen
        .iter()
        .map(|s| (s.method.clone(), s.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            (Method::DELETE, path),
            (Method::GET, collection),
            (Method::GET, collection)
        ]
    );
    for watch in &seen[1..] {
        assert_eq!(
            watch.query_value("fieldSelector"),
            ["metadata.name=egressgateway-for-cnn"]
        );
    }
    assert_eq!(seen[2].query_value("watch"), ["true"]);
    assert!(!backend.versions.contains_key(&key));
}

#[tokio::test]
async fn run_execs_the_argv_in_the_sleep_container_of_the_running_pod() {
    let (client, handle) = mock_client();
    let server = serve(
        handle,
        vec![
            pod_list(vec![
                pod("sleep-old", "Pending"),
                pod("sleep-7c9", "Running"),
            ]),
            status(403, "Forbidden", "exec refused by the mock"),
        ],
    );
    let mut backend = backend(client, FakeShell::default());
    let command = CommandLine {
        name: "politics".into(),
        argv: shell_words::split("curl -sL -o /dev/null -D - http://edition.cnn.com/politics")
            .unwrap(),
    };
    let err = backend.run(&command).await.unwrap_err();
    let seen = server.await.unwrap();
    assert_eq!(seen[0].method, Method::GET);
    assert_eq!(seen[0].path, "/api/v1/namespaces/default/pods");
    assert_eq!(seen[0].query_value("labelSelector"), ["app=sleep"]);
    let exec = &seen[1];
    assert_eq!(exec.path, "/api/v1/namespaces/default/pods/sleep-7c9/exec");
    assert_eq!(exec.query_value("command"), command.argv);
    assert_eq!(exec.query_value("container"), ["sleep"]);
    assert_eq!(exec.query_value("stdout"), ["true"]);
    assert_eq!(exec.query_value("stderr"), ["true"]);
    assert!(exec.query_value("stdin").iter().all(|v| *v == "false"));
    assert!(exec.query_value("tty").iter().all(|v| *v == "false"));
    assert_eq!(
        exec.headers.get("upgrade").map(String::as_str),
        Some("websocket")
    );
    assert_eq!(err.backend, "kind");
    assert_eq!(err.action, "running politics");
    assert!(err.message.contains("sleep-7c9"), "{err}");
}

#[tokio::test]
async fn run_without_a_running_sleep_pod_says_what_it_saw() {
    let (client, handle) = mock_client();
    let server = serve(handle, vec![pod_list(vec![pod("sleep-1", "Pending")])]);
    let mut backend = backend(client, FakeShell::default());
    let command = CommandLine {
        name: "politics".into(),
        argv: vec!["curl".into()],
    };
    let err = backend.run(&command).await.unwrap_err();
    server.await.unwrap();
    assert!(err.message.contains("sleep-1: Pending"), "{err}");
}

#[tokio::test]
async fn config_dump_port_forwards_to_the_gateways_admin_port() {
    let (client, handle) = mock_client();
    let server = serve(
        handle,
        vec![
            pod_list(vec![pod("istio-egressgateway-5d8", "Running")]),
            status(400, "BadRequest", "upgrade refused by the mock"),
        ],
    );
    let mut backend = backend(client, FakeShell::default());
    let err = backend
        .config_dump(ProxyRole::EgressGateway)
        .await
        .unwrap_err();
    let seen = server.await.unwrap();
    assert_eq!(seen[0].path, "/api/v1/namespaces/istio-system/pods");
    assert_eq!(
        seen[0].query_value("labelSelector"),
        ["istio=egressgateway"]
    );
    assert_eq!(
        seen[1].path,
        "/api/v1/namespaces/istio-system/pods/istio-egressgateway-5d8/portforward"
    );
    assert_eq!(seen[1].query_value("ports"), ["15000"]);
    assert!(
        err.message
            .contains("port-forward to istio-system/istio-egressgateway-5d8:15000"),
        "{err}"
    );
}

#[tokio::test]
async fn stats_of_the_sidecar_forward_to_the_sleep_pod() {
    let (client, handle) = mock_client();
    let server = serve(
        handle,
        vec![
            pod_list(vec![pod("sleep-7c9", "Running")]),
            status(400, "BadRequest", "upgrade refused by the mock"),
        ],
    );
    let mut backend = backend(client, FakeShell::default());
    backend.stats(ProxyRole::Sidecar).await.unwrap_err();
    let seen = server.await.unwrap();
    assert_eq!(
        seen[1].path,
        "/api/v1/namespaces/default/pods/sleep-7c9/portforward"
    );
    assert_eq!(seen[1].query_value("ports"), ["15000"]);
}

fn istio_list(kind: &str, namespace: &str, names: &[&str]) -> Response<Body> {
    let items: Vec<Value> = names
        .iter()
        .map(|n| {
            json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": kind,
                   "metadata": {"name": n, "namespace": namespace}, "spec": {}})
        })
        .collect();
    respond(
        200,
        json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": format!("{kind}List"),
               "metadata": {}, "items": items}),
    )
}

#[tokio::test]
async fn resources_lists_the_four_kinds_in_both_namespaces() {
    let (client, handle) = mock_client();
    // Namespaces in order (default, istio-system), kinds in the backend's order.
    let server = serve(
        handle,
        vec![
            istio_list("ServiceEntry", "default", &["cnn"]),
            istio_list("Gateway", "default", &["istio-egressgateway"]),
            istio_list("VirtualService", "default", &[]),
            istio_list(
                "DestinationRule",
                "default",
                &["originate-tls-for-edition-cnn-com", "egressgateway-for-cnn"],
            ),
            istio_list("ServiceEntry", "istio-system", &[]),
            istio_list("Gateway", "istio-system", &["leftover"]),
            istio_list("VirtualService", "istio-system", &[]),
            istio_list("DestinationRule", "istio-system", &[]),
        ],
    );
    let mut backend = backend(client, FakeShell::default());
    let keys = backend.resources().await.unwrap();
    let seen = server.await.unwrap();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    let base = "/apis/networking.istio.io/v1alpha3/namespaces";
    assert_eq!(
        paths,
        [
            format!("{base}/default/serviceentries"),
            format!("{base}/default/gateways"),
            format!("{base}/default/virtualservices"),
            format!("{base}/default/destinationrules"),
            format!("{base}/istio-system/serviceentries"),
            format!("{base}/istio-system/gateways"),
            format!("{base}/istio-system/virtualservices"),
            format!("{base}/istio-system/destinationrules"),
        ]
    );
    let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "ServiceEntry default/cnn",
            "Gateway default/istio-egressgateway",
            "Gateway istio-system/leftover",
            "DestinationRule default/egressgateway-for-cnn",
            "DestinationRule default/originate-tls-for-edition-cnn-com",
        ]
    );
}

#[tokio::test]
async fn labelling_an_unlabelled_namespace_is_remembered() {
    let (client, handle) = mock_client();
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": "default", "labels": {"kubernetes.io/metadata.name": "default"}}});
    let server = serve(
        handle,
        vec![respond(200, namespace.clone()), respond(200, namespace)],
    );
    let change = cluster::ensure_injection(&client, "default").await.unwrap();
    let seen = server.await.unwrap();
    assert_eq!(
        change,
        cluster::NamespaceChange {
            created: false,
            labelled: true
        }
    );
    assert_eq!(seen[1].method, Method::PATCH);
    assert_eq!(seen[1].path, "/api/v1/namespaces/default");
    assert_eq!(
        seen[1].headers.get("content-type").map(String::as_str),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        seen[1].body,
        Some(json!({"metadata": {"labels": {"istio-injection": "enabled"}}}))
    );
}

#[tokio::test]
async fn an_already_labelled_namespace_is_left_alone() {
    let (client, handle) = mock_client();
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": "default", "labels": {"istio-injection": "enabled"}}});
    let server = serve(handle, vec![respond(200, namespace)]);
    let change = cluster::ensure_injection(&client, "default").await.unwrap();
    let seen = server.await.unwrap();
    assert_eq!(change, cluster::NamespaceChange::default());
    assert_eq!(seen.len(), 1);
}

#[tokio::test]
async fn shutdown_removes_what_the_run_added_to_a_shared_cluster_in_reverse() {
    let (client, handle) = mock_client();
    let shell = FakeShell::default();
    shell.answers.lock().unwrap().push(ToolOutput {
        success: true,
        code: Some(0),
        stdout: "Removed Istio".into(),
        stderr: String::new(),
    });
    let server = serve(
        handle,
        vec![
            respond(
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
            ),
            status(404, "NotFound", "services \"sleep\" not found"),
            respond(
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
            ),
            respond(
                200,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
            ),
            status(404, "NotFound", "namespaces \"istio-system\" not found"),
        ],
    );
    let mut backend = backend(client, shell.clone());
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sleep.yaml"))
            .unwrap();
    backend.owned.sleep = cluster::parse_manifest(Path::new("sleep.yaml"), &text).unwrap();
    backend.owned.label_added = true;
    backend.owned.istio = true;
    backend.istioctl = Some(PathBuf::from("/opt/istio/bin/istioctl"));
    let report = backend.shutdown(&mut |_| {}).await;
    let seen = server.await.unwrap();
    let calls: Vec<(Method, &str)> = seen
        .iter()
        .map(|s| (s.method.clone(), s.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            (
                Method::DELETE,
                "/apis/apps/v1/namespaces/default/deployments/sleep"
            ),
            (Method::DELETE, "/api/v1/namespaces/default/services/sleep"),
            (
                Method::DELETE,
                "/api/v1/namespaces/default/serviceaccounts/sleep"
            ),
            (Method::PATCH, "/api/v1/namespaces/default"),
            (Method::DELETE, "/api/v1/namespaces/istio-system"),
        ]
    );
    assert_eq!(
        seen[3].body,
        Some(json!({"metadata": {"labels": {"istio-injection": null}}}))
    );
    let calls = shell.calls.lock().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].1.join(" "),
        "uninstall --purge -y --context kind-test"
    );
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.removed.len(), 6, "{report:?}");
}

#[tokio::test]
async fn shutdown_with_keep_removes_nothing_and_says_what_stays() {
    let (client, handle) = mock_client();
    let server = serve(handle, vec![]);
    let shell = FakeShell::default();
    let mut backend = backend(client, shell.clone());
    backend.keep = true;
    backend.owned.cluster = true;
    backend.owned.istio = true;
    let report = backend.shutdown(&mut |_| {}).await;
    assert!(server.await.unwrap().is_empty());
    assert!(shell.calls.lock().unwrap().is_empty());
    assert_eq!(
        report.kept,
        [
            "kind cluster egress-conformance (context kind-test)",
            "Istio in istio-system"
        ]
    );
    assert!(report.removed.is_empty());
}

#[tokio::test]
async fn shutdown_of_a_created_cluster_deletes_the_cluster() {
    let (client, handle) = mock_client();
    let server = serve(handle, vec![]);
    let shell = FakeShell::default();
    shell.answers.lock().unwrap().push(ToolOutput {
        success: true,
        code: Some(0),
        ..ToolOutput::default()
    });
    let mut backend = backend(client, shell.clone());
    backend.owned.cluster = true;
    backend.owned.istio = true;
    backend.kind = Some(PathBuf::from("/usr/local/bin/kind"));
    let report = backend.shutdown(&mut |_| {}).await;
    assert!(server.await.unwrap().is_empty());
    let calls = shell.calls.lock().unwrap();
    assert_eq!(calls[0].0, Path::new("/usr/local/bin/kind"));
    assert_eq!(
        calls[0].1.join(" "),
        "delete cluster --name egress-conformance"
    );
    assert_eq!(report.removed, ["kind cluster egress-conformance"]);
}

#[tokio::test]
async fn shutdown_deletes_the_tutorials_objects_a_failed_run_left_newest_first() {
    let (client, handle) = mock_client();
    let ok = || {
        respond(
            200,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
        )
    };
    let server = serve(
        handle,
        vec![
            ok(),
            // The watch finds it gone.
            respond(
                200,
                json!({"apiVersion": "v1", "kind": "List",
                "metadata": {"resourceVersion": "9"}, "items": []}),
            ),
            // Already gone: nothing to wait for, and not a failure.
            status(404, "NotFound", "serviceentries \"cnn\" not found"),
        ],
    );
    let mut backend = backend(client, FakeShell::default());
    let key = |kind: Kind, name: &str| ObjectKey {
        kind,
        namespace: "default".into(),
        name: name.into(),
    };
    backend.applied = vec![
        key(Kind::ServiceEntry, "cnn"),
        key(Kind::Gateway, "istio-egressgateway"),
    ];
    backend
        .versions
        .insert(key(Kind::ServiceEntry, "cnn"), "v1alpha3".into());
    backend
        .versions
        .insert(key(Kind::Gateway, "istio-egressgateway"), "v1beta1".into());
    let report = backend.shutdown(&mut |_| {}).await;
    let seen = server.await.unwrap();
    let calls: Vec<(Method, &str)> = seen
        .iter()
        .map(|s| (s.method.clone(), s.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            (
                Method::DELETE,
                "/apis/networking.istio.io/v1beta1/namespaces/default/gateways/istio-egressgateway"
            ),
            (
                Method::GET,
                "/apis/networking.istio.io/v1beta1/namespaces/default/gateways"
            ),
            (
                Method::DELETE,
                "/apis/networking.istio.io/v1alpha3/namespaces/default/serviceentries/cnn"
            ),
        ]
    );
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        report.removed,
        [
            "Gateway default/istio-egressgateway",
            "ServiceEntry default/cnn"
        ]
    );
}

/// The value `scripts/versions.sh` pins `name` to (`: "${NAME:=value}"`).
fn pinned(name: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/versions.sh");
    let text = std::fs::read_to_string(&file).unwrap();
    let prefix = format!(": \"${{{name}:=");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.strip_suffix("}\""))
        .unwrap_or_else(|| panic!("{name} is not pinned in {}", file.display()))
        .to_string()
}

#[test]
fn the_defaults_are_the_pins_of_versions_sh() {
    assert_eq!(DEFAULT_ISTIO_VERSION, pinned("ISTIO_VERSION"));
    assert_eq!(DEFAULT_NODE_IMAGE, pinned("KIND_NODE_IMAGE"));
    let kind = pinned("KIND_VERSION");
    assert!(
        tools::KIND_HINT.contains(&format!("sigs.k8s.io/kind@{kind}")),
        "{}",
        tools::KIND_HINT
    );
}
