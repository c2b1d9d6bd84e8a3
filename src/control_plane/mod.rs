//! The control plane seam: the applied Istio objects, the mesh settings and the registry go in;
//! each proxy's Envoy resources come out, through a [`Delivery`], and a change is done when it is
//! in force — every proxy holds config that reflects it and has accepted it.
//!
//! Behind it sits the builtin translator (a pure function, [`builtin`]); a real istiod is the
//! other kind of control plane. Whatever sits behind it, the local network model is applied
//! after it, in the delivery, never inside it.

pub(crate) mod builtin;
pub(crate) mod istiod;

use std::time::Duration;

use crate::delivery::Refusal;
use crate::istio_release::IstioRelease;
use crate::mesh::{AppliedConfig, MeshSettings};
use crate::process::Liveness;
use crate::suite::Suite;
use crate::translate::TranslateError;

/// Which control plane a local run uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum ControlPlaneKind {
    /// The harness's own translator.
    #[default]
    Builtin,
    /// Istio's `pilot-discovery` of this release, from this binary.
    Istiod {
        release: &'static IstioRelease,
        binary: std::path::PathBuf,
        /// How istiod is handed the Istio objects.
        source: istiod::SourceChoice,
    },
}

impl ControlPlaneKind {
    pub(crate) fn name(&self) -> String {
        match self {
            ControlPlaneKind::Builtin => "builtin".into(),
            ControlPlaneKind::Istiod {
                release, source, ..
            } => format!("istiod {}, config over {}", release.name, source.name()),
        }
    }

    /// Whether this control plane can run `suite`: parsing and Istio's validation have passed
    /// already; this is what the control plane itself cannot do. Real istiod runs it all.
    pub(crate) fn check(&self, suite: &Suite) -> Result<(), TranslateError> {
        match self {
            ControlPlaneKind::Builtin => builtin::check(suite),
            ControlPlaneKind::Istiod { .. } => Ok(()),
        }
    }
}

/// Either control plane, behind the seam.
pub(crate) enum AnyControlPlane {
    Builtin(builtin::Builtin),
    Istiod(Box<istiod::Istiod>),
}

impl ControlPlane for AnyControlPlane {
    async fn converge(
        &mut self,
        config: &AppliedConfig,
        timeout: Duration,
    ) -> Result<(), ConvergeError> {
        match self {
            AnyControlPlane::Builtin(c) => c.converge(config, timeout).await,
            AnyControlPlane::Istiod(c) => c.converge(config, timeout).await,
        }
    }

    async fn set_mesh(
        &mut self,
        mesh: &MeshSettings,
        config: &AppliedConfig,
        timeout: Duration,
    ) -> Result<(), ConvergeError> {
        match self {
            AnyControlPlane::Builtin(c) => c.set_mesh(mesh, config, timeout).await,
            AnyControlPlane::Istiod(c) => c.set_mesh(mesh, config, timeout).await,
        }
    }

    fn liveness(&self) -> Liveness {
        match self {
            AnyControlPlane::Builtin(c) => c.liveness(),
            AnyControlPlane::Istiod(c) => c.liveness(),
        }
    }
}

/// Why a change did not come into force.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConvergeError {
    #[error(transparent)]
    Translate(#[from] TranslateError),
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// istiod refused the configuration, in its own words.
    #[error("istiod rejected the configuration: {0}")]
    IstioRejected(String),
    /// An object Istio's own message definitions have no room for (an unknown field, a wrong
    /// type), so it was never handed to istiod; in the words of the encoding.
    #[error("the configuration does not fit Istio's messages, so istiod was not given it: {0}")]
    Unencodable(String),
    /// The change did not come into force in time; what was waited for and seen last.
    #[error("{0}")]
    NotInForce(String),
}

/// A running control plane.
#[allow(async_fn_in_trait)] // used through concrete types only; no dyn, no Send bound needed
pub(crate) trait ControlPlane {
    /// Make `config` the applied state; return once it is in force, within `timeout`.
    async fn converge(
        &mut self,
        config: &AppliedConfig,
        timeout: Duration,
    ) -> Result<(), ConvergeError>;
    /// Change the mesh config to `mesh`, with `config` applied; return once it is in force. A
    /// control plane that cannot change it while running says so.
    async fn set_mesh(
        &mut self,
        mesh: &MeshSettings,
        _config: &AppliedConfig,
        _timeout: Duration,
    ) -> Result<(), ConvergeError> {
        Err(ConvergeError::NotInForce(format!(
            "this control plane cannot change the mesh config while it runs \
             (outboundTrafficPolicy {}); the builtin control plane and --backend kind can",
            mesh.outbound_traffic_policy.name()
        )))
    }
    /// The processes it depends on, to notice their deaths.
    fn liveness(&self) -> Liveness;
}
