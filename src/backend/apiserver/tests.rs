//! The API server for real: etcd and kube-apiserver started as a run starts them, Istio's CRDs
//! applied, the kind backend's own Kubernetes code against it. Where the binaries cannot be had
//! (no Go to build them), each test says so and passes without looking.

use std::path::Path;
use std::time::Duration;

use super::ApiserverSpec;
use super::server::{ApiServer, ApiServerStart};
use super::workloads;
use crate::backend::kind::cluster::{self, ClusterError};
use crate::backend::{Backend, BackendSpec, StepError};
use crate::istio::{IstioObject, ObjectKey, load_manifests};
use crate::istio_release::IstioRelease;
use crate::kube_release::{binaries_for_tests, istio_crds};

fn fixture(name: &str) -> Vec<IstioObject> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/egress-gateway-tls-origination")
        .join(name);
    load_manifests(&file).unwrap()
}

/// A fresh API server in `dir` with the default release's CRDs, or `None` where there are no
/// binaries.
async fn api_server(dir: &Path) -> Option<ApiServer> {
    let (kube_apiserver, etcd) = binaries_for_tests()?;
    let server = ApiServer::start(
        ApiServerStart {
            kube_apiserver: kube_apiserver.path,
            etcd: etcd.path,
            dir,
        },
        &mut |note| eprintln!("{note}"),
    )
    .await
    .unwrap();
    let crds = istio_crds(IstioRelease::default_release()).unwrap();
    let names = workloads::apply_crds(server.client(), &crds, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        names
            .iter()
            .any(|n| n == "destinationrules.networking.istio.io"),
        "{names:?}"
    );
    Some(server)
}

/// The API server's own validation, past the harness's: the tutorial's DestinationRule as the
/// harness parsed it, then its document edited to `mode: SIMPEL` (which the harness's parser
/// would have refused), sent as the backend sends every manifest. The CRD's schema refuses it,
/// in the API server's words, as a cluster does; the original is accepted, listed, and deleted
/// until gone, with the kind backend's code.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_server_refuses_simpel_in_its_own_words() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = api_server(dir.path()).await else {
        return;
    };
    let client = server.client().clone();
    let good = fixture("04-destinationrule-originate-tls.yaml").remove(0);
    let mut bad = good.clone();
    bad.raw["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"]["mode"] = "SIMPEL".into();
    let refused = cluster::apply_istio(&client, &bad, "default")
        .await
        .unwrap_err();
    let text = refused.to_string();
    assert!(
        text.starts_with("applying DestinationRule default/originate-tls-for-edition-cnn-com (",),
        "{text}"
    );
    assert!(
        text.contains(
            r#"DestinationRule.networking.istio.io "originate-tls-for-edition-cnn-com" is invalid: [spec.trafficPolicy.portLevelSettings[0].tls.mode: Unsupported value: "SIMPEL": supported values: "DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL""#
        ),
        "{text}"
    );
    assert!(matches!(refused, ClusterError::Api { .. }));
    assert!(
        cluster::list_istio(&client, &["default"])
            .await
            .unwrap()
            .is_empty()
    );

    cluster::apply_istio(&client, &good, "default")
        .await
        .unwrap();
    let key = good.key("default");
    assert_eq!(
        cluster::list_istio(&client, &["default", "istio-system"])
            .await
            .unwrap(),
        vec![key.clone()]
    );
    cluster::delete_istio(&client, &key, "v1alpha3", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        cluster::list_istio(&client, &["default"])
            .await
            .unwrap()
            .is_empty()
    );
    let gone = cluster::delete_istio(&client, &key, "v1alpha3", Duration::from_secs(30)).await;
    assert!(
        matches!(gone, Err(ClusterError::NotFound { .. })),
        "{gone:?}"
    );

    let pids = server.pids().to_vec();
    assert!(server.shutdown().await.is_empty());
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} outlived the shutdown"
        );
    }
}

/// What a run of this backend needs, found or built as `run --backend apiserver` finds them, or
/// `None` (the reason printed) where they cannot be had here.
fn spec_for_tests() -> Option<ApiserverSpec> {
    use crate::envoy::locate::Lookup;
    use crate::istio_release::{IstioTool, IstioToolError, ToolLookup};
    let (kube_apiserver, etcd) = binaries_for_tests()?;
    let release = IstioRelease::default_release();
    let mut notify = |note: &str| eprintln!("{note}");
    let istiod =
        match ToolLookup::from_env().find_or_build(IstioTool::PilotDiscovery, release, &mut notify)
        {
            Ok(found) => found,
            Err(e @ IstioToolError::Unavailable { .. }) => {
                eprintln!("skipped: {e}");
                return None;
            }
            Err(e) => panic!("istiod for tests: {e}"),
        };
    let envoy = Lookup::from_env()
        .find_or_install_version(release.envoy_version, &mut notify)
        .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Some(ApiserverSpec {
        envoy,
        release,
        pilot_discovery: istiod.path,
        kube_apiserver: kube_apiserver.path,
        etcd: etcd.path,
        crds: istio_crds(release).unwrap(),
        sleep_manifest: root.join("fixtures/sleep.yaml"),
        keep: false,
    })
}

/// Through the backend itself, as a step applies: the tutorial's DestinationRule with its
/// document edited to `mode: SIMPEL` after the harness parsed it (so past the harness's own
/// validation). The API server refuses it in its own words, the step fails with them, nothing is
/// listed; the original then applies (istiod and both Envoys take it) and deletes until gone; the
/// shutdown leaves nothing behind.
#[tokio::test(flavor = "multi_thread")]
async fn the_backend_gets_the_api_servers_refusal_of_simpel() {
    let Some(spec) = spec_for_tests() else {
        return;
    };
    let suite = crate::suite::load_suite(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/egress-gateway-tls-origination.yaml"),
        crate::suite::LoadOptions::default(),
    )
    .unwrap();
    let mut backend = spec
        .start(&suite, &mut |note| eprintln!("{note}"))
        .await
        .unwrap();
    let good = fixture("04-destinationrule-originate-tls.yaml").remove(0);
    let mut bad = good.clone();
    bad.raw["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"]["mode"] = "SIMPEL".into();

    let refused = backend.apply(std::slice::from_ref(&bad)).await.unwrap_err();
    let text = refused.to_string();
    assert!(matches!(refused, StepError::Backend(_)), "{refused:?}");
    assert!(
        text.starts_with(
            "apiserver: applying: applying DestinationRule default/originate-tls-for-edition-cnn-com ("
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"DestinationRule.networking.istio.io "originate-tls-for-edition-cnn-com" is invalid: [spec.trafficPolicy.portLevelSettings[0].tls.mode: Unsupported value: "SIMPEL": supported values: "DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL""#
        ),
        "{text}"
    );
    assert_eq!(backend.resources().await.unwrap(), Vec::<ObjectKey>::new());

    backend.apply(std::slice::from_ref(&good)).await.unwrap();
    let key = good.key("default");
    assert_eq!(backend.resources().await.unwrap(), vec![key.clone()]);
    // Server-side applied, by the kind backend's field manager.
    let held: kube::api::Api<kube::api::DynamicObject> = kube::api::Api::namespaced_with(
        backend.client().unwrap().clone(),
        "default",
        &cluster::istio_resource(key.kind, "v1alpha3"),
    );
    let managers: Vec<(String, String)> = held
        .get(&key.name)
        .await
        .unwrap()
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        managers,
        vec![(cluster::FIELD_MANAGER.to_string(), "Apply".to_string())]
    );
    backend.delete(&key).await.unwrap();
    assert_eq!(backend.resources().await.unwrap(), Vec::<ObjectKey>::new());
    let again = backend.delete(&key).await;
    assert!(matches!(again, Err(StepError::NotFound(_))), "{again:?}");

    let report = backend.shutdown(&mut |note| eprintln!("{note}")).await;
    assert!(report.is_clean(), "{:?}", report.leftovers);
}

/// The README lists every difference from the kind backend, by the same titles, in order, with
/// the values the code uses.
#[test]
fn the_readme_lists_how_this_backend_differs_from_kind() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("**How it differs from the kind backend.**")
        .nth(1)
        .expect("the README has the list")
        .split("\n#")
        .next()
        .unwrap();
    let titles: Vec<&str> = section
        .lines()
        .filter_map(|line| {
            let (number, rest) = line.trim_start().split_once(". **")?;
            number.parse::<usize>().ok()?;
            rest.split_once(".**").map(|(title, _)| title)
        })
        .collect();
    assert_eq!(titles, super::DIFFERENCES_FROM_KIND);
    for value in [
        workloads::NODE,
        workloads::NODE_IP,
        super::server::SERVICE_CIDR,
        workloads::GATEWAY_MANIFEST_NAME,
    ] {
        assert!(
            section.contains(&format!("`{value}`")),
            "the README does not give {value}"
        );
    }
    assert!(readme.contains(&format!(
        "field manager `{}`",
        crate::backend::kind::cluster::FIELD_MANAGER
    )));
}
