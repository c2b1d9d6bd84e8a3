//! One suite, start to finish, on a backend: validate everything that can be validated
//! before anything starts, start the backend, run, stop, and check nothing was left behind.
//! The binary, the test harness and the benchmark all go through here.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::backend::kind::{KindBackend, KindCleanup, KindError, KindOptions};
use crate::backend::local::{CleanupReport, LocalBackend, LocalError, LocalOptions};
use crate::envoy::EnvoyBinary;
use crate::mesh::{AppliedConfig, Registry};
use crate::report::Reporter;
use crate::runner::{RunSummary, run_suite};
use crate::suite::{Step, Suite};
use crate::translate::{ProxyWorkloads, TranslateError, translate};

#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error(transparent)]
    Translate(#[from] TranslateError),
    #[error("{file}: stage {stage}: kubectl delete {object}: it does not exist at that point")]
    DeleteMissing {
        file: String,
        stage: String,
        object: String,
    },
}

/// Replay the suite's steps through the translator alone, so that an unsupported feature or a
/// delete of something never applied is reported before any process starts.
pub fn validate(suite: &Suite) -> Result<(), ValidationError> {
    let registry = Registry::tutorial();
    let workloads = ProxyWorkloads::tutorial();
    let mut config = AppliedConfig::default();
    translate(&config, &registry, &suite.mesh, &workloads)?;
    for stage in &suite.stages {
        for step in &stage.steps {
            match step {
                Step::Apply { objects, .. } => {
                    for object in objects {
                        config.apply(object.clone(), &suite.namespace);
                    }
                }
                Step::Delete { key } => {
                    if config.delete(key).is_none() {
                        return Err(ValidationError::DeleteMissing {
                            file: suite.file.display().to_string(),
                            stage: stage.name.clone(),
                            object: format!("{} {}", key.kind.cli_name(), key.name),
                        });
                    }
                }
            }
            translate(&config, &registry, &suite.mesh, &workloads)?;
        }
    }
    Ok(())
}

/// How a local run ended.
#[derive(Debug)]
pub struct LocalRun {
    /// `None` when the run was interrupted.
    pub summary: Option<RunSummary>,
    pub cleanup: CleanupReport,
    /// From nothing to both proxies holding the baseline.
    pub startup: Duration,
    pub total: Duration,
}

/// What to do once the suite has run.
pub enum AfterRun<'a> {
    /// Stop everything.
    Stop,
    /// Keep the mesh up until the interrupt, telling the user how to reach it first.
    Keep { tell: Box<dyn FnMut(&str) + 'a> },
}

/// Run `suite` on a fresh local backend. `interrupt` resolving stops the run early (Ctrl-C);
/// either way everything started is stopped and checked before this returns.
pub async fn run_local(
    suite: &Suite,
    envoy: EnvoyBinary,
    reporter: &mut dyn Reporter,
    interrupt: impl Future<Output = ()>,
    after: AfterRun<'_>,
) -> Result<LocalRun, LocalError> {
    let started = Instant::now();
    let mut options = LocalOptions::for_suite(suite, envoy);
    options.keep_dir = matches!(after, AfterRun::Keep { .. });
    let mut interrupt = std::pin::pin!(interrupt);
    // Starting takes a fraction of a second: an interrupt during it lets it finish, so that what
    // it started is stopped, reaped and checked like any other run's.
    let mut interrupted_early = false;
    let mut backend = {
        let start = LocalBackend::start(options);
        let mut start = std::pin::pin!(start);
        tokio::select! {
            backend = &mut start => backend?,
            () = &mut interrupt => {
                interrupted_early = true;
                start.await?
            }
        }
    };
    let startup = started.elapsed();
    let summary = if interrupted_early {
        None
    } else {
        tokio::select! {
            summary = run_suite(suite, &mut backend, reporter) => Some(summary),
            () = &mut interrupt => None,
        }
    };
    if let AfterRun::Keep { mut tell } = after
        && summary.is_some()
    {
        tell(&format!(
            "\nThe local mesh is up (--keep). Run directory: {}\n{}Press Ctrl-C to stop it.",
            backend.dir().display(),
            backend.access()
        ));
        interrupt.await;
    }
    let cleanup = backend.shutdown().await;
    Ok(LocalRun {
        summary,
        cleanup,
        startup,
        total: started.elapsed(),
    })
}

/// How a kind run ended.
#[derive(Debug)]
pub struct KindRun {
    /// `None` when the run was interrupted.
    pub summary: Option<RunSummary>,
    pub cleanup: KindCleanup,
    pub total: Duration,
}

/// Run `suite` on a kind cluster (or the context in `options`): set up, replay, collect artifacts
/// when it failed and they are wanted, and remove what the run created.
///
/// Set-up takes minutes. A first interrupt during set-up lets it finish and then removes all it
/// made, which leaves a shared cluster as it was; a second abandons set-up at once, and then only
/// a kind cluster the run was creating is removed (with it, everything inside).
/// `interrupts` gives a future for each interrupt to wait for.
pub async fn run_kind<F: Future<Output = ()>>(
    suite: &Suite,
    mut options: KindOptions,
    reporter: &mut dyn Reporter,
    interrupts: impl Fn() -> F,
    progress: &mut dyn FnMut(&str),
) -> Result<KindRun, KindError> {
    let started = Instant::now();
    options.namespace = suite.namespace.clone();
    let artifacts = options.artifacts.clone();
    let mut interrupted = false;
    let mut abandoned = false;
    let backend = {
        let start = KindBackend::start(options, progress);
        let mut start = std::pin::pin!(start);
        tokio::select! {
            backend = &mut start => Some(backend?),
            () = interrupts() => {
                interrupted = true;
                tokio::select! {
                    backend = &mut start => Some(backend?),
                    // Dropping the set-up stops it; a cluster it was creating is deleted.
                    () = interrupts() => { abandoned = true; None }
                }
            }
        }
    };
    let Some(mut backend) = backend else {
        progress("set-up abandoned: a kind cluster it was creating has been deleted");
        debug_assert!(abandoned);
        return Ok(KindRun {
            summary: None,
            cleanup: KindCleanup::default(),
            total: started.elapsed(),
        });
    };
    let summary = if interrupted {
        progress("interrupted during set-up: removing what it made");
        None
    } else {
        tokio::select! {
            summary = run_suite(suite, &mut backend, reporter) => Some(summary),
            () = interrupts() => None,
        }
    };
    if let (Some(dir), Some(summary)) = (&artifacts, &summary)
        && !summary.passed()
    {
        progress(&format!(
            "collecting the proxies' config dumps and logs into {}",
            dir.display()
        ));
        if let Err(e) = backend.collect_artifacts(dir).await {
            progress(&format!("collecting artifacts: {e}"));
        }
    }
    let cleanup = backend.shutdown(progress).await;
    Ok(KindRun {
        summary,
        cleanup,
        total: started.elapsed(),
    })
}
