use super::*;

fn pod(value: Value) -> Pod {
    serde_json::from_value(value).unwrap()
}

fn sleep_pod(sleep_ready: bool, proxy_ready: bool, native_sidecar: bool) -> Pod {
    let sleep = json!({"name": "sleep", "ready": sleep_ready, "restartCount": 0, "image": "", "imageID": ""});
    let proxy = json!({"name": "istio-proxy", "ready": proxy_ready, "restartCount": 0, "image": "", "imageID": ""});
    let (containers, init) = if native_sidecar {
        (vec![sleep], vec![proxy])
    } else {
        (vec![sleep, proxy], vec![])
    };
    let ready = if sleep_ready && proxy_ready {
        "True"
    } else {
        "False"
    };
    pod(json!({
        "metadata": {"name": "sleep-1"},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": ready}],
            "containerStatuses": containers,
            "initContainerStatuses": init,
        }
    }))
}

#[test]
fn a_pod_is_ready_when_every_named_container_is() {
    let both = ["sleep", "istio-proxy"];
    assert!(pod_ready(&sleep_pod(true, true, false), &both));
    assert!(!pod_ready(&sleep_pod(true, false, false), &both));
    // Without injection there is no istio-proxy at all.
    assert!(!pod_ready(
        &sleep_pod(true, true, false),
        &["sleep", "istio-validation"]
    ));
}

#[test]
fn a_native_sidecar_counts_among_the_init_containers() {
    assert!(pod_ready(
        &sleep_pod(true, true, true),
        &["sleep", "istio-proxy"]
    ));
}

#[test]
fn a_pending_or_terminating_pod_is_not_ready() {
    let mut pending = sleep_pod(true, true, false);
    pending.status.as_mut().unwrap().phase = Some("Pending".into());
    assert!(!pod_ready(&pending, &["sleep"]));
    let mut terminating = sleep_pod(true, true, false);
    terminating.metadata.deletion_timestamp =
        Some(serde_json::from_value(json!("2025-01-01T00:00:00Z")).unwrap());
    assert!(!pod_ready(&terminating, &["sleep"]));
}

#[test]
fn pod_summary_names_each_container_and_why_it_waits() {
    let waiting = pod(json!({
        "metadata": {"name": "sleep-1"},
        "status": {"phase": "Pending", "containerStatuses": [
            {"name": "sleep", "ready": false, "restartCount": 0, "image": "", "imageID": "",
             "state": {"waiting": {"reason": "ImagePullBackOff"}}}
        ]}
    }));
    assert_eq!(
        pod_summary(&waiting),
        "sleep-1: Pending [sleep ready=false (ImagePullBackOff)]"
    );
}

#[test]
fn the_sleep_sample_parses_into_three_addressable_objects() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sleep.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let objects = parse_manifest(&file, &text).unwrap();
    let shown: Vec<String> = objects.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        ["ServiceAccount sleep", "Service sleep", "Deployment sleep"]
    );
    assert_eq!(objects[2].resource.plural, "deployments");
    assert_eq!(objects[2].resource.group, "apps");
    assert_eq!(
        objects[2].body["spec"]["template"]["metadata"]["labels"]["app"],
        "sleep"
    );
}

#[test]
fn an_unknown_kind_in_the_sample_is_an_error() {
    let err = parse_manifest(
        Path::new("x.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("x.yaml: unsupported object v1 ConfigMap"),
        "{err}"
    );
}

#[test]
fn istio_resources_have_their_group_version_and_plural() {
    let resource = istio_resource(Kind::DestinationRule, "v1beta1");
    assert_eq!(resource.api_version, "networking.istio.io/v1beta1");
    assert_eq!(resource.plural, "destinationrules");
    assert_eq!(version_of("networking.istio.io/v1"), "v1");
}
