//! A tutorial's mesh-config change on a cluster: the `mesh` key of ConfigMap `istio` in
//! `istio-system`, which istiod watches, with `outboundTrafficPolicy.mode` set as `istioctl
//! install --set meshConfig.outboundTrafficPolicy.mode=...` would set it. The text it replaced is
//! handed back, so that the run can put it back.
//!
//! The new text is JSON, which is YAML: the mesh config's other fields keep their values, not
//! their formatting (comments included), until the run restores the text it found.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::Value;

use super::cluster::{ClusterError, ISTIO_NAMESPACE, api_message};
use crate::mesh::OutboundTrafficPolicy;

const CONFIG_MAP: &str = "istio";
const MESH_KEY: &str = "mesh";

/// `mesh` (the ConfigMap's text) with `outboundTrafficPolicy.mode` set to `mode`.
pub(super) fn with_outbound_policy(
    mesh: &str,
    mode: OutboundTrafficPolicy,
) -> Result<String, String> {
    let mut config: Value = if mesh.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_saphyr::from_str(mesh).map_err(|e| format!("the mesh config is not YAML: {e}"))?
    };
    let Value::Object(top) = &mut config else {
        return Err("the mesh config is not a mapping".into());
    };
    let policy = top
        .entry("outboundTrafficPolicy")
        .or_insert_with(|| Value::Object(Default::default()));
    let Value::Object(policy) = policy else {
        return Err("outboundTrafficPolicy is not a mapping".into());
    };
    policy.insert("mode".into(), Value::String(mode.name().into()));
    serde_json::to_string_pretty(&config).map_err(|e| e.to_string())
}

/// Set the cluster's outbound traffic policy; the mesh text it had before.
pub(super) async fn set_outbound_policy(
    client: &Client,
    mode: OutboundTrafficPolicy,
) -> Result<String, ClusterError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ISTIO_NAMESPACE);
    let action = format!("reading ConfigMap {ISTIO_NAMESPACE}/{CONFIG_MAP}");
    let mut map = api.get(CONFIG_MAP).await.map_err(|e| ClusterError::Api {
        action: action.clone(),
        message: api_message(&e),
    })?;
    let before = map
        .data
        .as_ref()
        .and_then(|d| d.get(MESH_KEY))
        .cloned()
        .unwrap_or_default();
    let after = with_outbound_policy(&before, mode).map_err(|message| ClusterError::Api {
        action: action.clone(),
        message,
    })?;
    put_mesh(&api, &mut map, after).await?;
    Ok(before)
}

/// Put back the mesh text the run found.
pub(super) async fn restore(client: &Client, before: String) -> Result<(), ClusterError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ISTIO_NAMESPACE);
    let mut map = api.get(CONFIG_MAP).await.map_err(|e| ClusterError::Api {
        action: format!("reading ConfigMap {ISTIO_NAMESPACE}/{CONFIG_MAP}"),
        message: api_message(&e),
    })?;
    put_mesh(&api, &mut map, before).await
}

async fn put_mesh(
    api: &Api<ConfigMap>,
    map: &mut ConfigMap,
    text: String,
) -> Result<(), ClusterError> {
    map.data
        .get_or_insert_with(Default::default)
        .insert(MESH_KEY.into(), text);
    // The resourceVersion read with it makes this a compare-and-swap.
    api.replace(CONFIG_MAP, &PostParams::default(), map)
        .await
        .map(|_| ())
        .map_err(|e| ClusterError::Api {
            action: format!("updating ConfigMap {ISTIO_NAMESPACE}/{CONFIG_MAP}"),
            message: api_message(&e),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_mode_changes() {
        let before = "accessLogFile: /dev/stdout\noutboundTrafficPolicy:\n  mode: ALLOW_ANY\ndefaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n";
        let after: Value = serde_json::from_str(
            &with_outbound_policy(before, OutboundTrafficPolicy::RegistryOnly).unwrap(),
        )
        .unwrap();
        assert_eq!(after["outboundTrafficPolicy"]["mode"], "REGISTRY_ONLY");
        assert_eq!(after["accessLogFile"], "/dev/stdout");
        assert_eq!(
            after["defaultConfig"]["discoveryAddress"],
            "istiod.istio-system.svc:15012"
        );
        let empty: Value = serde_json::from_str(
            &with_outbound_policy("", OutboundTrafficPolicy::RegistryOnly).unwrap(),
        )
        .unwrap();
        assert_eq!(empty["outboundTrafficPolicy"]["mode"], "REGISTRY_ONLY");
        assert!(with_outbound_policy("- a list", OutboundTrafficPolicy::AllowAny).is_err());
    }
}
