//! Istio resources → Envoy resources, the way istiod builds them.
//!
//! A pure function of the applied config, the registry and the mesh settings: no I/O, no ports of
//! the run. The output has istiod's names and shapes (pod IPs, `0.0.0.0` listeners,
//! `bind_to_port: false`, the system root bundle); `crate::local_network` then maps it onto the
//! loopback network of a local run. Istio-only filters (`istio.metadata_exchange`, `istio.stats`)
//! are never emitted: stock Envoy rejects them.

mod clusters;
pub(crate) mod envoy_build;
mod gateway;
mod hcm;
mod model;
mod routes;
mod sidecar;

use crate::istio::{IstioObject, ObjectKey};
use crate::mesh::{AppliedConfig, MeshSettings, Registry};
use crate::xds::ProxyResources;
use crate::yaml::FieldPath;

/// Which proxies to build config for: the sidecar's and the egress gateway's workloads.
#[derive(Debug, Clone)]
pub struct ProxyWorkloads {
    pub sidecar: String,
    pub gateway: String,
}

/// The config of both proxies for one applied state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Translation {
    pub sidecar: ProxyResources,
    pub gateway: ProxyResources,
}

impl Translation {
    pub(crate) fn for_proxy(&self, proxy: crate::mesh::ProxyRole) -> &ProxyResources {
        match proxy {
            crate::mesh::ProxyRole::Sidecar => &self.sidecar,
            crate::mesh::ProxyRole::EgressGateway => &self.gateway,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranslateError {
    #[error(transparent)]
    Unsupported(Box<Unsupported>),
    #[error("the registry has no workload named {0:?}")]
    UnknownWorkload(String),
}

/// A field of the Istio API the translator does not implement.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{at}: {object}: {field}: the builtin control plane cannot translate this ({reason}); \
     `--backend kind` runs it with real Istio"
)]
pub struct Unsupported {
    pub object: ObjectKey,
    /// `file:line:column` of the field.
    pub at: String,
    pub field: String,
    pub reason: String,
}

impl TranslateError {
    pub(crate) fn unsupported(
        key: &ObjectKey,
        object: &IstioObject,
        field: &str,
        reason: &str,
    ) -> TranslateError {
        TranslateError::Unsupported(Box::new(Unsupported {
            object: key.clone(),
            at: object.source.at(&FieldPath::parse(field)),
            field: field.to_string(),
            reason: reason.to_string(),
        }))
    }
}

/// Build both proxies' config for `config`.
pub fn translate(
    config: &AppliedConfig,
    registry: &Registry,
    mesh: &MeshSettings,
    proxies: &ProxyWorkloads,
) -> Result<Translation, TranslateError> {
    let model = model::MeshModel::build(config, registry)?;
    let sidecar_workload = registry
        .workload(&proxies.sidecar)
        .ok_or_else(|| TranslateError::UnknownWorkload(proxies.sidecar.clone()))?;
    let gateway_workload = registry
        .workload(&proxies.gateway)
        .ok_or_else(|| TranslateError::UnknownWorkload(proxies.gateway.clone()))?;

    let (clusters, endpoints) = clusters::build(
        &model,
        &sidecar_workload.namespace,
        crate::mesh::ProxyRole::Sidecar,
    );
    let sidecar = ProxyResources {
        clusters: clusters::for_sidecar(&clusters, mesh),
        endpoints,
        listeners: sidecar::listeners(&model, mesh),
        routes: sidecar::routes(&model, mesh, &sidecar_workload.namespace),
    };
    let gateway_listeners = gateway::listeners(&model, registry, gateway_workload);
    // The gateway sees the DestinationRules of its own namespace, not the sidecar's.
    let (clusters, endpoints) = clusters::build(
        &model,
        &gateway_workload.namespace,
        crate::mesh::ProxyRole::EgressGateway,
    );
    let gateway = ProxyResources {
        clusters: clusters::for_gateway(&clusters),
        endpoints,
        routes: gateway::routes(&model, &gateway_listeners),
        listeners: gateway_listeners.into_iter().map(|l| l.listener).collect(),
    };
    Ok(Translation { sidecar, gateway })
}

#[cfg(test)]
mod tests;
