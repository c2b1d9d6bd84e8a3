//! Backends: where a suite runs. Every backend has one lifecycle, as testcontainers' images do:
//! a [`BackendSpec`] only describes what to run; [`BackendSpec::start`] starts it and hands back
//! a running [`Backend`], which the runner drives without knowing which it is;
//! [`Backend::shutdown`] stops everything and returns one [`CleanupReport`].

pub(crate) mod apiserver;
pub(crate) mod kind;
pub(crate) mod local;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::delivery::Refusal;
use crate::istio::{IstioObject, ObjectKey};
use crate::mesh::{MeshSettings, ProxyRole};
use crate::observe::{CommandOutput, OriginHit};
use crate::process::Liveness;
use crate::suite::{CommandLine, Suite};

/// How a step (an apply or a delete) went.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepReport {
    /// From the change to every proxy having accepted it.
    pub latency: Duration,
}

/// Why a step failed. The stage fails; the run stops there, since later stages would build on a
/// state that does not exist.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Translate(#[from] crate::translate::TranslateError),
    #[error("{0} not found: nothing to delete")]
    NotFound(ObjectKey),
    /// The control plane refused the change or did not bring it into force.
    #[error("{0}")]
    ControlPlane(String),
    #[error("{0}")]
    Backend(#[from] BackendError),
}

/// A backend could not observe or act: an Envoy that died, an admin API that did not answer.
#[derive(Debug, thiserror::Error)]
#[error("{backend}: {action}: {message}")]
pub(crate) struct BackendError {
    pub backend: &'static str,
    pub action: String,
    pub message: String,
}

/// Why a backend did not start. The kind decides the exit code: a broken environment is the
/// user's to fix (2); a mesh that refuses its baseline is a failure of the mesh (1).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// Something the run needs is missing or broken: a binary, a port, a cluster.
    #[error("{what}: {source}")]
    Environment { what: String, source: Cause },
    /// The mesh itself failed while starting: a proxy refused its baseline, or died.
    #[error("{what}: {source}")]
    Mesh { what: String, source: Cause },
}

/// The error behind a failed start, kept whole for its chain.
pub(crate) type Cause = Box<dyn std::error::Error + Send + Sync>;

impl StartError {
    pub(crate) fn environment(what: impl Into<String>, source: impl Into<Cause>) -> StartError {
        StartError::Environment {
            what: what.into(),
            source: source.into(),
        }
    }

    pub(crate) fn mesh(what: impl Into<String>, source: impl Into<Cause>) -> StartError {
        StartError::Mesh {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// What shutting a backend down did and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Stopped or removed, in words.
    pub removed: Vec<String>,
    /// Left in place on purpose (`--keep`, or not the run's to remove).
    pub kept: Vec<String>,
    /// What outlived the run against its will, in words; empty when nothing did.
    pub leftovers: Vec<String>,
}

impl CleanupReport {
    pub fn is_clean(&self) -> bool {
        self.leftovers.is_empty()
    }
}

/// A description of a backend: what it needs, nothing started yet.
#[allow(async_fn_in_trait)] // the session is generic over specs; no dyn, no Send bound needed
pub(crate) trait BackendSpec {
    type Running: Backend;
    /// What it is, for the transcript: `local (builtin control plane)`, `kind (context …)`.
    fn describe(&self) -> String;
    /// Whether this backend can run `suite`, beyond parsing and Istio's validation, which every
    /// backend applies. Nothing is started.
    fn check(&self, suite: &Suite) -> Result<(), crate::translate::TranslateError>;
    /// Start it for `suite`, saying what it does through `progress`. Whatever was started before
    /// an error is stopped before the error is returned; dropping the future stops it too.
    async fn start(
        self,
        suite: &Suite,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Self::Running, StartError>;
}

/// A running backend: apply and delete Istio objects, run the tutorial's commands in the client
/// pod, read what the proxies hold, and stop.
#[allow(async_fn_in_trait)] // the runner is generic over backends; no dyn, no Send bound needed
pub(crate) trait Backend {
    /// Whether commands reach the live site, so values marked `live_site: varies` are only checked
    /// for presence.
    fn reaches_live_site(&self) -> bool;
    /// How long a config expectation may take to hold before it fails (eventual consistency).
    fn settle_timeout(&self) -> Duration;
    /// How long a failing command check is re-run before it fails: `None` runs it once, for
    /// backends whose config is in force once a step returns.
    fn command_retry(&self) -> Option<Duration> {
        None
    }
    /// The processes the run depends on; a death among them fails the stage at once.
    fn liveness(&self) -> Liveness;
    /// `kubectl apply -f <file>`: returns once every proxy has the result.
    async fn apply(&mut self, objects: &[IstioObject]) -> Result<StepReport, StepError>;
    /// `kubectl delete <kind> <name>`: returns once every proxy has the result.
    async fn delete(&mut self, key: &ObjectKey) -> Result<StepReport, StepError>;
    /// A change of Istio's mesh config: returns once every proxy has the result.
    async fn set_mesh(&mut self, mesh: &MeshSettings) -> Result<StepReport, StepError>;
    /// How much faster than the tutorial's clock the backend runs: route timeouts and the
    /// origin's delays are divided by it, and durations it measures are multiplied by it to be
    /// judged in the tutorial's time.
    fn time_scale(&self) -> u32 {
        1
    }
    /// `kubectl exec $SOURCE_POD -c sleep -- <argv>`.
    async fn run(&mut self, command: &CommandLine) -> Result<CommandOutput, BackendError>;
    async fn config_dump(&mut self, proxy: ProxyRole) -> Result<Value, BackendError>;
    async fn stats(&mut self, proxy: ProxyRole) -> Result<BTreeMap<String, u64>, BackendError>;
    /// Every request the origin has answered so far, or `None` where it cannot be seen.
    fn origin_hits(&self) -> Option<Vec<OriginHit>>;
    /// The Istio objects that exist now.
    async fn resources(&mut self) -> Result<Vec<ObjectKey>, BackendError>;
    /// What a user who asked to keep the run needs to reach it by hand.
    fn access(&self) -> String;
    /// Whether keeping the run means staying up until the interrupt (a local mesh lives in this
    /// process) rather than leaving it in place and exiting (a cluster).
    fn keeps_by_waiting(&self) -> bool {
        true
    }
    /// When the run failed: gather what helps to see why (kind's `--artifacts`).
    async fn collect_artifacts(&mut self, _progress: &mut dyn FnMut(&str)) {}
    /// Stop everything the backend started (unless it was asked to keep it) and check that
    /// nothing is left.
    async fn shutdown(self, progress: &mut dyn FnMut(&str)) -> CleanupReport;
}
