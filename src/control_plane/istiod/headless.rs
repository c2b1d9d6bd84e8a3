//! istiod with no Envoy: the harness takes its pushes on the proxies' behalf through a recording
//! delivery that accepts at once, so what is seen is what istiod decided. `compare` reads what it
//! made; `validate --istiod` asks it for its verdict on manifests as written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::{Istiod, IstiodStart, SourceChoice};
use crate::backend::local::{proxy_identities, run_dir::RunDir};
use crate::control_plane::ConvergeError;
use crate::delivery::Delivery;
use crate::istio_release::IstioRelease;
use crate::local_network::LocalNetwork;
use crate::mesh::{MeshSettings, Registry};
use crate::translate::ProxyWorkloads;

/// How long istiod may take to bring one change into force.
pub(crate) const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The istiod to run.
#[derive(Debug, Clone)]
pub(crate) struct IstiodSpec {
    pub release: &'static IstioRelease,
    pub binary: PathBuf,
    pub source: SourceChoice,
}

/// What became of objects handed to a headless istiod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Taken {
    /// istiod took them all in.
    Accepted,
    /// Istio's validation in istiod's store refused one, in istiod's words.
    Rejected(String),
    /// One does not fit Istio's own messages (an unknown field, a wrong type), so istiod was
    /// never given it; in the encoding's words.
    Unencodable(String),
}

/// A running headless istiod and its run directory.
pub(crate) struct Headless {
    istiod: Istiod,
    delivery: Delivery,
    dir: Option<RunDir>,
}

impl Headless {
    /// Start istiod for the tutorial's registry and proxies, with `mesh`'s settings. With
    /// `external_ports`, what istiod makes goes through the local network model as in a run
    /// (with those external ports); without, it is kept as made.
    pub(crate) async fn start(
        spec: &IstiodSpec,
        mesh: &MeshSettings,
        namespace: &str,
        external_ports: Option<BTreeSet<u32>>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Headless, String> {
        let registry = Registry::tutorial();
        let proxies = proxy_identities(&registry, &ProxyWorkloads::tutorial())?;
        let dir = RunDir::create(false).map_err(|e| format!("creating the run directory: {e}"))?;
        let localized = external_ports.is_some();
        let network = LocalNetwork::new(
            registry.clone(),
            // No origin: no request is made.
            BTreeMap::new(),
            dir.path().join("ca.pem"),
            external_ports.unwrap_or_default(),
        );
        let delivery = if localized {
            Delivery::recording(network)
        } else {
            Delivery::recording_as_made(network)
        };
        let istiod = Istiod::start(
            IstiodStart {
                release: spec.release,
                binary: spec.binary.clone(),
                dir: dir.path(),
                registry: &registry,
                source: spec.source,
                kubernetes: None,
                mesh,
                namespace,
                proxies,
                delivery: delivery.clone(),
                answer_timeout: CHANGE_TIMEOUT,
            },
            progress,
        )
        .await
        .map_err(|e| format!("starting istiod: {e}"))?;
        Ok(Headless {
            istiod,
            delivery,
            dir: Some(dir),
        })
    }

    pub(crate) fn istiod(&mut self) -> &mut Istiod {
        &mut self.istiod
    }

    /// The delivery istiod's agents deliver into.
    pub(crate) fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// istiod's verdict on `objects` (whole, namespaced, as written); `Err` when istiod could
    /// not be asked. Either way the applied state is emptied again, so verdicts do not depend on
    /// each other.
    pub(crate) async fn verdict(&mut self, objects: Vec<Value>) -> Result<Taken, String> {
        let verdict = match self.istiod.converge_objects(objects, CHANGE_TIMEOUT).await {
            Ok(()) => Taken::Accepted,
            Err(ConvergeError::IstioRejected(words)) => Taken::Rejected(words),
            Err(ConvergeError::Unencodable(words)) => Taken::Unencodable(words),
            Err(other) => return Err(other.to_string()),
        };
        self.istiod
            .converge_objects(Vec::new(), CHANGE_TIMEOUT)
            .await
            .map_err(|e| format!("emptying istiod again: {e}"))?;
        Ok(verdict)
    }

    /// Stop istiod and remove the run directory; what could not be, in words.
    pub(crate) async fn shutdown(self) -> Result<(), String> {
        let Headless { istiod, dir, .. } = self;
        let leftovers = istiod.shutdown().await;
        let closed = dir.map(RunDir::close).unwrap_or(Ok(()));
        if !leftovers.is_empty() {
            return Err(format!("stopping istiod: {}", leftovers.join("; ")));
        }
        closed.map_err(|e| format!("removing the run directory: {e}"))
    }
}
