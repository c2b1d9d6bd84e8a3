//! The API server for real: etcd and kube-apiserver started as a run starts them, Istio's CRDs
//! applied, the kind backend's own Kubernetes code against it. Where the binaries cannot be had
//! (no Go to build them), each test says so and passes without looking.

use std::path::Path;
use std::time::Duration;

use super::server::{ApiServer, ApiServerStart};
use super::workloads;
use crate::backend::kind::cluster::{self, ClusterError};
use crate::istio::{IstioObject, load_manifests};
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
