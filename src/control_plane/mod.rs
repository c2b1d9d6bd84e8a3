//! The control plane seam: the applied Istio objects, the mesh settings and the registry go in;
//! each proxy's Envoy resources come out, through a [`Delivery`], and a change is done when it is
//! in force — every proxy holds config that reflects it and has accepted it.
//!
//! Behind it sits the builtin translator (a pure function, [`builtin`]); a real istiod is the
//! other kind of control plane. Whatever sits behind it, the local network model is applied
//! after it, in the delivery, never inside it.

pub(crate) mod builtin;

use std::time::Duration;

use crate::delivery::Refusal;
use crate::mesh::AppliedConfig;
use crate::process::Liveness;
use crate::suite::Suite;
use crate::translate::TranslateError;

/// Which control plane a local run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ControlPlaneKind {
    /// The harness's own translator.
    #[default]
    Builtin,
}

impl ControlPlaneKind {
    pub fn name(self) -> &'static str {
        match self {
            ControlPlaneKind::Builtin => "builtin",
        }
    }

    /// Whether this control plane can run `suite`: parsing and Istio's validation have passed
    /// already; this is what the control plane itself cannot do.
    pub(crate) fn check(self, suite: &Suite) -> Result<(), TranslateError> {
        match self {
            ControlPlaneKind::Builtin => builtin::check(suite),
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
    /// The processes it depends on, to notice their deaths.
    fn liveness(&self) -> Liveness;
}
