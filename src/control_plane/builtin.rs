//! The builtin control plane: the harness's translator, a pure function, in istiod's place.
//! A change is in force as soon as both proxies have accepted the translation of it.

use std::time::Duration;

use super::{ControlPlane, ConvergeError};
use crate::delivery::Delivery;
use crate::mesh::{AppliedConfig, MeshSettings, ProxyRole, Registry};
use crate::process::Liveness;
use crate::suite::{Step, Suite};
use crate::translate::{ProxyWorkloads, TranslateError, translate};

pub(crate) struct Builtin {
    delivery: Delivery,
    registry: Registry,
    workloads: ProxyWorkloads,
    mesh: MeshSettings,
}

impl Builtin {
    pub(crate) fn new(
        delivery: Delivery,
        registry: Registry,
        workloads: ProxyWorkloads,
        mesh: MeshSettings,
    ) -> Builtin {
        Builtin {
            delivery,
            registry,
            workloads,
            mesh,
        }
    }

    /// The mesh settings the next translation uses.
    pub(crate) fn set_mesh_settings(&mut self, mesh: MeshSettings) {
        self.mesh = mesh;
    }

    /// A builtin control plane that stands where a stopped one was (it delivers nothing until
    /// asked).
    pub(crate) fn stopped(delivery: Delivery) -> Builtin {
        Builtin::new(
            delivery,
            Registry::tutorial(),
            ProxyWorkloads::tutorial(),
            MeshSettings::default(),
        )
    }

    /// Translate `config` and hand both proxies their part, without waiting for them.
    pub(crate) fn deliver(&self, config: &AppliedConfig) -> Result<(), ConvergeError> {
        let translation = translate(config, &self.registry, &self.mesh, &self.workloads)?;
        for proxy in ProxyRole::ALL {
            self.delivery
                .deliver(proxy, translation.for_proxy(proxy).clone())?;
        }
        Ok(())
    }
}

impl ControlPlane for Builtin {
    async fn converge(
        &mut self,
        config: &AppliedConfig,
        timeout: Duration,
    ) -> Result<(), ConvergeError> {
        self.deliver(config)?;
        let answers = ProxyRole::ALL.map(|proxy| self.delivery.answered(proxy, timeout));
        for answer in futures::future::join_all(answers).await {
            answer?;
        }
        Ok(())
    }

    async fn set_mesh(
        &mut self,
        mesh: &MeshSettings,
        config: &AppliedConfig,
        timeout: Duration,
    ) -> Result<(), ConvergeError> {
        self.mesh = mesh.clone();
        self.converge(config, timeout).await
    }

    fn liveness(&self) -> Liveness {
        Liveness::default()
    }
}

/// Replay the suite's steps through the translator alone, so that what it cannot translate is
/// reported before anything starts, naming the field.
pub(crate) fn check(suite: &Suite) -> Result<(), TranslateError> {
    let registry = Registry::tutorial();
    let workloads = ProxyWorkloads::tutorial();
    let mut config = AppliedConfig::default();
    let mut mesh = suite.mesh.clone();
    translate(&config, &registry, &mesh, &workloads)?;
    for step in suite.stages.iter().flat_map(|s| &s.steps) {
        match step {
            Step::Apply { objects, .. } => {
                for object in objects {
                    config.apply(object.clone(), &suite.namespace);
                }
            }
            Step::Delete { key, .. } => {
                config.delete(key);
            }
            Step::Mesh(settings) => mesh = settings.clone(),
        }
        translate(&config, &registry, &mesh, &workloads)?;
    }
    Ok(())
}
