//! Backends: where a suite runs. The runner drives one through [`Backend`] and never knows which.

pub mod kind;
pub mod local;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::istio::{IstioObject, ObjectKey};
use crate::mesh::ProxyRole;
use crate::observe::{CommandOutput, OriginHit};
use crate::suite::CommandLine;

/// How a step (an apply or a delete) went.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// From the change to every proxy having accepted it.
    pub latency: Duration,
}

/// Why a step failed. The stage fails; the run stops there, since later stages would build on a
/// state that does not exist.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Translate(#[from] crate::translate::TranslateError),
    #[error("{} rejected the config ({}, version {}): {}", .0.proxy, .0.type_url, .0.version, .0.detail)]
    Rejected(Box<Rejection>),
    #[error("{0} not found: nothing to delete")]
    NotFound(ObjectKey),
    #[error("{0}")]
    Backend(String),
}

/// A config a proxy refused, in its own words.
#[derive(Debug)]
pub struct Rejection {
    pub proxy: ProxyRole,
    pub type_url: String,
    pub version: String,
    pub detail: String,
}

/// A backend could not observe or act: an Envoy that died, an admin API that did not answer.
#[derive(Debug, thiserror::Error)]
#[error("{backend}: {action}: {message}")]
pub struct BackendError {
    pub backend: &'static str,
    pub action: String,
    pub message: String,
}

/// Where a suite runs: apply and delete Istio objects, run the tutorial's commands in the client
/// pod, and read what the proxies hold.
#[allow(async_fn_in_trait)] // the runner is generic over backends; no dyn, no Send bound needed
pub trait Backend {
    /// `local`, `kind`, ...: for the transcript.
    fn name(&self) -> &'static str;
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
    /// `kubectl apply -f <file>`: returns once every proxy has the result.
    async fn apply(&mut self, objects: &[IstioObject]) -> Result<StepReport, StepError>;
    /// `kubectl delete <kind> <name>`: returns once every proxy has the result.
    async fn delete(&mut self, key: &ObjectKey) -> Result<StepReport, StepError>;
    /// `kubectl exec $SOURCE_POD -c sleep -- <argv>`.
    async fn run(&mut self, command: &CommandLine) -> Result<CommandOutput, BackendError>;
    async fn config_dump(&mut self, proxy: ProxyRole) -> Result<Value, BackendError>;
    async fn stats(&mut self, proxy: ProxyRole) -> Result<BTreeMap<String, u64>, BackendError>;
    /// Every request the origin has answered so far, or `None` where it cannot be seen.
    fn origin_hits(&self) -> Option<Vec<OriginHit>>;
    /// The Istio objects that exist now.
    async fn resources(&mut self) -> Result<Vec<ObjectKey>, BackendError>;
}
