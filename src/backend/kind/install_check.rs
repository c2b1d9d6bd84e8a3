//! What an Istio install must hold for the suites, checked on the manifest `istioctl manifest
//! generate` prints for the install's own flags, offline: no cluster is contacted. The kind
//! backend runs it before `istioctl install`, so a flag istioctl refuses, or one that leaves out
//! what the traffic checks rely on, fails at once and in words rather than as "no counter …"
//! minutes later; `setup --backend kind` runs it alone.
//!
//! Pure: text in, verdict out.

use serde_json::Value;

use super::cluster::ISTIO_NAMESPACE;
use super::tools::{ISTIO_HUB, STATS_INCLUSION_PREFIXES};

/// The parts of a generated install the suites depend on, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallManifest {
    /// The image of the `istio-egressgateway` Deployment's `istio-proxy` container.
    pub egress_gateway_image: String,
    /// `defaultConfig.proxyStatsMatcher.inclusionPrefixes` of the mesh config (ConfigMap `istio`).
    pub stats_inclusion_prefixes: Vec<String>,
    /// How many objects the manifest has.
    pub objects: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallCheckError {
    #[error("the generated manifest is not YAML: {0}")]
    Unparsable(String),
    #[error(
        "the generated manifest has no Deployment istio-egressgateway in {ISTIO_NAMESPACE} (the \
         tutorial's egress gateway); its Deployments: [{}]",
        .deployments.join(", ")
    )]
    NoEgressGateway { deployments: Vec<String> },
    #[error("the Deployment istio-egressgateway has no istio-proxy container")]
    NoProxyContainer,
    #[error(
        "the egress gateway's image is {image}, not one of {ISTIO_HUB}: the install's hub setting did not take"
    )]
    Hub { image: String },
    #[error(
        "the generated manifest has no ConfigMap istio in {ISTIO_NAMESPACE} with a mesh config: {0}"
    )]
    NoMeshConfig(String),
    #[error(
        "the mesh config's defaultConfig.proxyStatsMatcher.inclusionPrefixes is [{}], expected [{}] \
         (the counters the suites' traffic checks read)",
        .found.join(", "),
        STATS_INCLUSION_PREFIXES.join(", ")
    )]
    StatsMatcher { found: Vec<String> },
}

/// Checks `manifest` (multi-document YAML, as `istioctl manifest generate` prints it).
pub fn check_install_manifest(manifest: &str) -> Result<InstallManifest, InstallCheckError> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(manifest)
        .map_err(|e| InstallCheckError::Unparsable(e.to_string()))?;
    let objects: Vec<&Value> = documents.iter().filter(|d| d.is_object()).collect();
    let is = |o: &Value, kind: &str, name: &str| {
        o["kind"] == kind
            && o["metadata"]["name"] == name
            && o["metadata"]["namespace"] == ISTIO_NAMESPACE
    };
    let Some(gateway) = objects
        .iter()
        .find(|o| is(o, "Deployment", "istio-egressgateway"))
    else {
        return Err(InstallCheckError::NoEgressGateway {
            deployments: objects
                .iter()
                .filter(|o| o["kind"] == "Deployment")
                .map(|o| {
                    format!(
                        "{}/{}",
                        o["metadata"]["namespace"].as_str().unwrap_or("?"),
                        o["metadata"]["name"].as_str().unwrap_or("?")
                    )
                })
                .collect(),
        });
    };
    let image = gateway["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "istio-proxy")
        .and_then(|c| c["image"].as_str())
        .ok_or(InstallCheckError::NoProxyContainer)?
        .to_string();
    if !image.starts_with(&format!("{ISTIO_HUB}/")) {
        return Err(InstallCheckError::Hub { image });
    }
    let mesh_text = objects
        .iter()
        .find(|o| is(o, "ConfigMap", "istio"))
        .and_then(|o| o["data"]["mesh"].as_str())
        .ok_or_else(|| {
            InstallCheckError::NoMeshConfig("no such ConfigMap, or no data.mesh".into())
        })?;
    let mesh: Value = serde_saphyr::from_str(mesh_text)
        .map_err(|e| InstallCheckError::NoMeshConfig(format!("data.mesh is not YAML: {e}")))?;
    let found: Vec<String> = mesh["defaultConfig"]["proxyStatsMatcher"]["inclusionPrefixes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(String::from))
        .collect();
    if found != STATS_INCLUSION_PREFIXES {
        return Err(InstallCheckError::StatsMatcher { found });
    }
    Ok(InstallManifest {
        egress_gateway_image: image,
        stats_inclusion_prefixes: found,
        objects: objects.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of what `istioctl manifest generate --set profile=demo …` prints, cut down to
    /// the objects the check reads (and one it must not mistake for them).
    fn manifest(gateway_image: &str, prefixes: &[&str], gateway_name: &str) -> String {
        let prefixes: String = if prefixes.is_empty() {
            " []".into()
        } else {
            prefixes
                .iter()
                .map(|p| format!("\n        - {p}"))
                .collect()
        };
        format!(
            "apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
    defaultConfig:
      discoveryAddress: istiod.istio-system.svc:15012
      proxyStatsMatcher:
        inclusionPrefixes:{prefixes}
    enablePrometheusMerge: true
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: istiod
  namespace: istio-system
spec:
  template:
    spec:
      containers:
      - name: discovery
        image: docker.io/istio/pilot:1.31.4
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {gateway_name}
  namespace: istio-system
spec:
  template:
    spec:
      containers:
      - name: istio-proxy
        image: {gateway_image}
"
        )
    }

    #[test]
    fn an_install_with_the_gateway_the_hub_and_the_stats_passes() {
        let text = manifest(
            "docker.io/istio/proxyv2:1.31.4",
            &STATS_INCLUSION_PREFIXES,
            "istio-egressgateway",
        );
        let found = check_install_manifest(&text).unwrap();
        assert_eq!(found.egress_gateway_image, "docker.io/istio/proxyv2:1.31.4");
        assert_eq!(found.stats_inclusion_prefixes, STATS_INCLUSION_PREFIXES);
        assert_eq!(found.objects, 3);
    }

    #[test]
    fn each_missing_part_is_named() {
        let good = STATS_INCLUSION_PREFIXES;
        let err = check_install_manifest(&manifest(
            "docker.io/istio/proxyv2:1.31.4",
            &good,
            "istio-ingressgateway",
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the generated manifest has no Deployment istio-egressgateway in istio-system (the \
             tutorial's egress gateway); its Deployments: [istio-system/istiod, istio-system/istio-ingressgateway]"
        );
        let err = check_install_manifest(&manifest(
            "registry.istio.io/release/proxyv2:1.30.8",
            &good,
            "istio-egressgateway",
        ))
        .unwrap_err();
        assert!(matches!(err, InstallCheckError::Hub { .. }), "{err}");
        let err = check_install_manifest(&manifest(
            "docker.io/istio/proxyv2:1.31.4",
            &["cluster.outbound"],
            "istio-egressgateway",
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the mesh config's defaultConfig.proxyStatsMatcher.inclusionPrefixes is [cluster.outbound], \
                 expected [{}] (the counters the suites' traffic checks read)",
                STATS_INCLUSION_PREFIXES.join(", ")
            )
        );
        let err = check_install_manifest(&manifest(
            "docker.io/istio/proxyv2:1.31.4",
            &[],
            "istio-egressgateway",
        ))
        .unwrap_err();
        assert!(
            matches!(err, InstallCheckError::StatsMatcher { ref found } if found.is_empty()),
            "{err}"
        );
        let err = check_install_manifest("kind: [").unwrap_err();
        assert!(matches!(err, InstallCheckError::Unparsable(_)), "{err}");
        let no_mesh = manifest(
            "docker.io/istio/proxyv2:1.31.4",
            &good,
            "istio-egressgateway",
        )
        .replace("name: istio\n", "name: istio-sidecar-injector\n");
        assert!(matches!(
            check_install_manifest(&no_mesh).unwrap_err(),
            InstallCheckError::NoMeshConfig(_)
        ));
    }
}
