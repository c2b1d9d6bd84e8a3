//! What a cluster's controllers would write, written by the harness: there is no controller
//! manager, scheduler, sidecar injector or kubelet next to the API server. For each Deployment of
//! the tutorial's prerequisites it writes the one Pod the ReplicaSet controller would make,
//! scheduled (`spec.nodeName`), injected as Istio's webhook would where the namespace asks for it
//! (the `istio-proxy` container and the labels injection adds), and Running and Ready with the
//! pod IP the local network model plays (the status a kubelet would report); for each Service
//! the EndpointSlice the EndpointSlice controller would make of those pods. Plus the Istio CRDs,
//! which `istioctl install` would apply, and the node the pods run on.
//!
//! The registry the local network model maps onto loopback is then read back from the API
//! server ([`registry`]): the Services with the ClusterIPs the API server gave them, the pods
//! with their IPs and labels.
//!
//! Written with `kube`, the same client the kind backend uses; server-side applies use the kind
//! backend's field manager.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};

use crate::backend::kind::cluster::{ClusterError, FIELD_MANAGER, INJECTION_LABEL, api_message};
use crate::istio::Protocol;
use crate::mesh::{KubeService, KubeServicePort, Registry, Workload};

/// The one node, named as kind names a cluster's only node.
pub(crate) const NODE: &str = "egress-conformance-control-plane";
/// The node's address, as kind gives its node (the pods' `hostIP`).
pub(crate) const NODE_IP: &str = "172.18.0.2";
/// What `istioctl install --set profile=demo` makes of the egress gateway, cut down.
pub(crate) const GATEWAY_MANIFEST: &str = include_str!("istio-egressgateway.yaml");
pub(crate) const GATEWAY_MANIFEST_NAME: &str = "src/backend/apiserver/istio-egressgateway.yaml";
/// The label of the slices this harness writes (the EndpointSlice controller writes its own
/// name there).
const MANAGED_BY: &str = "egress-conformance";

fn api_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> ClusterError {
    let action = action.into();
    move |e| ClusterError::Api {
        action,
        message: api_message(&e),
    }
}

fn manifest_error(file: &Path, message: impl Into<String>) -> ClusterError {
    ClusterError::Manifest {
        file: file.to_path_buf(),
        message: message.into(),
    }
}

/// Server-side applies every CRD of `file` (Istio's `crd-all.gen.yaml`) and waits until each
/// is Established; returns their names.
pub(crate) async fn apply_crds(
    client: &Client,
    file: &Path,
    timeout: Duration,
) -> Result<Vec<String>, ClusterError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| manifest_error(file, format!("cannot read it: {e}")))?;
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&text).map_err(|e| manifest_error(file, e.to_string()))?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for crd in documents
        .into_iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
    {
        let name = crd["metadata"]["name"]
            .as_str()
            .ok_or_else(|| {
                manifest_error(file, "a CustomResourceDefinition without metadata.name")
            })?
            .to_string();
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(api_error(format!(
            "applying CustomResourceDefinition {name}"
        )))?;
        names.push(name);
    }
    if names.is_empty() {
        return Err(manifest_error(file, "no CustomResourceDefinition in it"));
    }
    for name in &names {
        let established = tokio::time::timeout(
            timeout,
            await_condition(api.clone(), name, conditions::is_crd_established()),
        )
        .await;
        match established {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(ClusterError::Api {
                    action: format!("watching CustomResourceDefinition {name}"),
                    message: e.to_string(),
                });
            }
            Err(_) => {
                let last_seen = match api.get_opt(name).await {
                    Ok(Some(crd)) => format!("{:?}", crd.status.map(|s| s.conditions)),
                    Ok(None) => "gone".into(),
                    Err(e) => api_message(&e),
                };
                return Err(ClusterError::Timeout {
                    what: format!("CustomResourceDefinition {name} to be Established"),
                    waited: timeout,
                    last_seen,
                });
            }
        }
    }
    Ok(names)
}

/// Creates namespace `name` (istioctl creates `istio-system`).
pub(crate) async fn create_namespace(client: &Client, name: &str) -> Result<(), ClusterError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))
        .expect("a namespace of a name is a namespace");
    api.create(&PostParams::default(), &namespace)
        .await
        .map_err(api_error(format!("creating namespace {name}")))?;
    Ok(())
}

/// Creates the cluster's one node, as kind registers it.
pub(crate) async fn create_node(client: &Client) -> Result<(), ClusterError> {
    let api: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": NODE, "labels": {
            "kubernetes.io/hostname": NODE,
            "kubernetes.io/os": "linux",
            "node-role.kubernetes.io/control-plane": "",
        }},
    }))
    .expect("a node of a name is a node");
    api.create(&PostParams::default(), &node)
        .await
        .map_err(api_error(format!("creating node {NODE}")))?;
    Ok(())
}

/// Whether Istio's injection webhook would inject a pod of `template` in a namespace labelled
/// `namespace_labels`: the namespace asks for it and the pod does not refuse it.
pub(crate) fn injected(namespace_labels: &BTreeMap<String, String>, template: &Value) -> bool {
    let refuses = |v: &Value| v["sidecar.istio.io/inject"] == "false";
    namespace_labels.get(INJECTION_LABEL).map(String::as_str) == Some("enabled")
        && !refuses(&template["metadata"]["labels"])
        && !refuses(&template["metadata"]["annotations"])
}

/// The pod a Deployment's `template` becomes: named `workload.name` (there is no ReplicaSet to
/// hash the name), scheduled on [`NODE`], and, when `inject` names Istio's proxy image, with the
/// `istio-proxy` container and the labels the injector adds.
pub(crate) fn pod_of(template: &Value, workload: &Workload, inject: Option<&str>) -> Value {
    let mut metadata = template["metadata"].clone();
    if !metadata.is_object() {
        metadata = json!({});
    }
    metadata["name"] = json!(workload.name);
    metadata["namespace"] = json!(workload.namespace);
    let mut spec = template["spec"].clone();
    spec["nodeName"] = json!(NODE);
    if let Some(image) = inject {
        let labels = metadata["labels"].as_object().cloned().unwrap_or_default();
        let app = labels
            .get("app")
            .and_then(Value::as_str)
            .unwrap_or(&workload.name)
            .to_string();
        let mut labels = labels;
        labels.insert("security.istio.io/tlsMode".into(), json!("istio"));
        labels.insert("service.istio.io/canonical-name".into(), json!(app));
        labels.insert(
            "service.istio.io/canonical-revision".into(),
            json!("latest"),
        );
        metadata["labels"] = Value::Object(labels);
        metadata["annotations"]["sidecar.istio.io/status"] =
            json!(r#"{"containers":["istio-proxy"],"written-by":"egress-conformance"}"#);
        let proxy = json!({
            "name": "istio-proxy",
            "image": image,
            "args": ["proxy", "sidecar", "--domain", format!("{}.svc.cluster.local", workload.namespace)],
            "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        });
        match spec["containers"].as_array_mut() {
            Some(containers) => containers.push(proxy),
            None => spec["containers"] = json!([proxy]),
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// The status a kubelet would report for `pod` once every container runs: Running, Ready, at
/// `ip`.
pub(crate) fn running_status(pod: &Value, ip: &str) -> Value {
    let statuses: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            json!({
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": {"running": {}},
            })
        })
        .collect();
    let condition = |kind: &str| json!({"type": kind, "status": "True"});
    json!({"status": {
        "phase": "Running",
        "hostIP": NODE_IP,
        "hostIPs": [{"ip": NODE_IP}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [condition("PodScheduled"), condition("Initialized"), condition("ContainersReady"), condition("Ready")],
        "containerStatuses": statuses,
    }})
}

/// Writes the pod of Deployment `deployment` in `namespace` as `workload`, with its status;
/// returns the pod as the API server holds it.
pub(crate) async fn run_deployment(
    client: &Client,
    namespace: &str,
    deployment: &str,
    workload: &Workload,
    proxy_image: &str,
) -> Result<Pod, ClusterError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let found = deployments
        .get(deployment)
        .await
        .map_err(api_error(format!(
            "reading deployment {namespace}/{deployment}"
        )))?;
    let template = serde_json::to_value(found.spec.map(|s| s.template)).unwrap_or(Value::Null);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let labels = namespaces
        .get(namespace)
        .await
        .map_err(api_error(format!("reading namespace {namespace}")))?
        .metadata
        .labels
        .unwrap_or_default();
    let inject = injected(&labels, &template).then_some(proxy_image);
    let pod = pod_of(&template, workload, inject);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let name = &workload.name;
    pods.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&pod),
    )
    .await
    .map_err(api_error(format!("creating pod {namespace}/{name}")))?;
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&running_status(&pod, &workload.ip)),
    )
    .await
    .map_err(api_error(format!(
        "writing the status of pod {namespace}/{name}"
    )))
}

/// The protocol Istio gives a Service port: its `appProtocol`, else its name's prefix (`http`,
/// `http2-foo`), else TCP.
pub(crate) fn port_protocol(name: &str, app_protocol: Option<&str>) -> Protocol {
    app_protocol
        .and_then(Protocol::parse)
        .or_else(|| Protocol::parse(name.split('-').next().unwrap_or(name)))
        .unwrap_or(Protocol::Tcp)
}

/// The EndpointSlice the EndpointSlice controller would make of Service `name` and `pods` (those
/// its selector matches): one endpoint per pod, ready, with the Service's ports by their target
/// port numbers.
pub(crate) fn endpoint_slice(service: &Service, pods: &[Pod]) -> Value {
    let name = service.metadata.name.clone().unwrap_or_default();
    let spec = service.spec.clone().unwrap_or_default();
    let selector = spec.selector.unwrap_or_default();
    let ports: Vec<Value> = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
            let target = match p.target_port {
                Some(IntOrString::Int(n)) => n,
                _ => p.port,
            };
            json!({"name": p.name, "port": target, "protocol": p.protocol.unwrap_or_else(|| "TCP".into())})
        })
        .collect();
    let endpoints: Vec<Value> = pods
        .iter()
        .filter(|pod| {
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .filter_map(|pod| {
            let ip = pod.status.as_ref()?.pod_ip.clone()?;
            Some(json!({
                "addresses": [ip],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": NODE,
                "targetRef": {
                    "kind": "Pod",
                    "name": pod.metadata.name,
                    "namespace": pod.metadata.namespace,
                    "uid": pod.metadata.uid,
                },
            }))
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{name}-{MANAGED_BY}"),
            "namespace": service.metadata.namespace,
            "labels": {
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    })
}

/// Writes the EndpointSlice of Service `namespace/name` over `pods`.
pub(crate) async fn write_endpoint_slice(
    client: &Client,
    namespace: &str,
    name: &str,
    pods: &[Pod],
) -> Result<(), ClusterError> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let service = services
        .get(name)
        .await
        .map_err(api_error(format!("reading service {namespace}/{name}")))?;
    let slice = endpoint_slice(&service, pods);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let slice_name = slice["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    slices
        .patch(
            &slice_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&slice),
        )
        .await
        .map_err(api_error(format!(
            "writing endpointslice {namespace}/{slice_name}"
        )))?;
    Ok(())
}

/// The registry as the API server holds it: `services` (namespace, name) with the ClusterIPs it
/// gave them, and `pods` with their IPs and labels.
pub(crate) async fn registry(
    client: &Client,
    services: &[(&str, &str)],
    pods: &[Pod],
) -> Result<Registry, ClusterError> {
    let mut out = Registry {
        services: Vec::new(),
        workloads: Vec::new(),
    };
    for (namespace, name) in services {
        let api: Api<Service> = Api::namespaced(client.clone(), namespace);
        let service = api
            .get(name)
            .await
            .map_err(api_error(format!("reading service {namespace}/{name}")))?;
        let spec = service.spec.unwrap_or_default();
        let ports = spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
                let name = p.name.unwrap_or_default();
                let target_port = match p.target_port {
                    Some(IntOrString::Int(n)) => n,
                    _ => p.port,
                };
                KubeServicePort {
                    protocol: port_protocol(&name, p.app_protocol.as_deref()),
                    name,
                    port: p.port as u32,
                    target_port: target_port as u32,
                }
            })
            .collect();
        out.services.push(KubeService {
            name: name.to_string(),
            namespace: namespace.to_string(),
            cluster_ip: spec.cluster_ip.ok_or_else(|| ClusterError::Api {
                action: format!("reading service {namespace}/{name}"),
                message: "it has no clusterIP".into(),
            })?,
            ports,
            selector: spec.selector.unwrap_or_default(),
        });
    }
    for pod in pods {
        let pods: Api<Pod> = Api::namespaced(
            client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        let held = pods
            .get(&name)
            .await
            .map_err(api_error(format!("reading pod {name}")))?;
        out.workloads.push(Workload {
            ip: held
                .status
                .and_then(|s| s.pod_ip)
                .ok_or_else(|| ClusterError::Api {
                    action: format!("reading pod {name}"),
                    message: "it has no podIP".into(),
                })?,
            namespace: held.metadata.namespace.unwrap_or_default(),
            labels: held.metadata.labels.unwrap_or_default(),
            name,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sleep() -> Workload {
        Workload {
            name: "sleep".into(),
            namespace: "default".into(),
            ip: "10.244.0.10".into(),
            labels: labels(&[("app", "sleep")]),
        }
    }

    fn template() -> Value {
        json!({
            "metadata": {"labels": {"app": "sleep"}, "annotations": {"proxy.istio.io/config": "x"}},
            "spec": {"serviceAccountName": "sleep", "containers": [{"name": "sleep", "image": "curlimages/curl"}]},
        })
    }

    #[test]
    fn injection_follows_the_namespace_label_and_the_pods_refusal() {
        let on = labels(&[(INJECTION_LABEL, "enabled")]);
        assert!(injected(&on, &template()));
        assert!(!injected(&BTreeMap::new(), &template()));
        assert!(!injected(
            &labels(&[(INJECTION_LABEL, "disabled")]),
            &template()
        ));
        let refuses = json!({"metadata": {"labels": {"sidecar.istio.io/inject": "false"}}});
        assert!(!injected(&on, &refuses));
        let refuses = json!({"metadata": {"annotations": {"sidecar.istio.io/inject": "false"}}});
        assert!(!injected(&on, &refuses));
    }

    #[test]
    fn an_injected_pod_gets_the_proxy_and_the_injectors_labels() {
        let pod = pod_of(
            &template(),
            &sleep(),
            Some("docker.io/istio/proxyv2:1.31.0"),
        );
        assert_eq!(pod["metadata"]["name"], "sleep");
        assert_eq!(pod["metadata"]["namespace"], "default");
        assert_eq!(
            pod["metadata"]["labels"]["security.istio.io/tlsMode"],
            "istio"
        );
        assert_eq!(
            pod["metadata"]["labels"]["service.istio.io/canonical-name"],
            "sleep"
        );
        assert_eq!(pod["metadata"]["annotations"]["proxy.istio.io/config"], "x");
        assert_eq!(pod["spec"]["nodeName"], NODE);
        assert_eq!(pod["spec"]["serviceAccountName"], "sleep");
        let names: Vec<&str> = pod["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["sleep", "istio-proxy"]);
        let plain = pod_of(&template(), &sleep(), None);
        assert_eq!(plain["spec"]["containers"].as_array().unwrap().len(), 1);
        assert!(
            plain["metadata"]["labels"]
                .get("security.istio.io/tlsMode")
                .is_none()
        );
    }

    #[test]
    fn the_status_is_running_and_ready_for_every_container_at_the_ip() {
        let pod = pod_of(&template(), &sleep(), Some("proxyv2"));
        let status: Pod = serde_json::from_value(json!({
            "metadata": {"name": "sleep"},
            "status": running_status(&pod, "10.244.0.10")["status"],
        }))
        .unwrap();
        assert!(crate::backend::kind::cluster::pod_ready(
            &status,
            &["sleep", "istio-proxy"]
        ));
        assert_eq!(
            status.status.unwrap().pod_ip.as_deref(),
            Some("10.244.0.10")
        );
    }

    #[test]
    fn a_slice_holds_the_selected_pods_by_target_port() {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "istio-egressgateway", "namespace": "istio-system"},
            "spec": {"selector": {"istio": "egressgateway"}, "ports": [
                {"name": "http2", "port": 80, "targetPort": 8080},
                {"name": "https", "port": 443, "targetPort": 8443},
            ]},
        }))
        .unwrap();
        let pod = |name: &str, label: &str, ip: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "istio-system", "uid": "u-1", "labels": {"istio": label}},
                "status": {"podIP": ip},
            }))
            .unwrap()
        };
        let slice = endpoint_slice(
            &service,
            &[
                pod("gw", "egressgateway", "10.244.0.11"),
                pod("other", "ingressgateway", "10.244.0.12"),
            ],
        );
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            "istio-egressgateway"
        );
        assert_eq!(
            slice["ports"],
            json!([
                {"name": "http2", "port": 8080, "protocol": "TCP"},
                {"name": "https", "port": 8443, "protocol": "TCP"},
            ])
        );
        let endpoints = slice["endpoints"].as_array().unwrap();
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints[0]["addresses"], json!(["10.244.0.11"]));
        assert_eq!(endpoints[0]["targetRef"]["name"], "gw");
    }

    #[test]
    fn port_protocols_are_istios() {
        assert_eq!(port_protocol("http", None), Protocol::Http);
        assert_eq!(port_protocol("http2", None), Protocol::Http2);
        assert_eq!(port_protocol("https-foo", None), Protocol::Https);
        assert_eq!(port_protocol("web", Some("http")), Protocol::Http);
        assert_eq!(port_protocol("web", None), Protocol::Tcp);
    }

    #[test]
    fn the_gateway_manifest_parses_with_the_kind_code() {
        let objects = crate::backend::kind::cluster::parse_manifest(
            Path::new(GATEWAY_MANIFEST_NAME),
            GATEWAY_MANIFEST,
        )
        .unwrap();
        let names: Vec<String> = objects.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "ServiceAccount istio-egressgateway-service-account",
                "Service istio-egressgateway",
                "Deployment istio-egressgateway",
            ]
        );
    }
}
