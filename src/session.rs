//! One suite, start to finish, on any backend: start it, run the stages, keep it up if asked,
//! stop it, and check that nothing was left behind — the same for every backend, with every
//! step reported as an event.
//!
//! Interrupts: a first one during set-up lets set-up finish (so what it started is stopped and
//! checked like any run's), then stops; a second abandons set-up at once, dropping it, which
//! stops what it had started through the guards that own it. During the stages, an interrupt
//! stops the run at once and cleans up.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::backend::{Backend, BackendSpec, CleanupReport, StartError};
use crate::report::{Event, Reporter};
use crate::runner::{RunSummary, run_suite};
use crate::suite::Suite;

/// How a session ended, when its backend started.
#[derive(Debug)]
pub(crate) struct SessionOutcome {
    /// `None` when the run was interrupted before its stages finished.
    pub summary: Option<RunSummary>,
    pub cleanup: CleanupReport,
    /// From nothing to the backend holding the baseline.
    pub startup: Duration,
    pub total: Duration,
    /// The user stopped a mesh kept with `--keep` (Ctrl-C): the run ends there.
    pub stopped_by_user: bool,
}

impl SessionOutcome {
    /// Every stage passed, nothing was interrupted and nothing was left behind.
    pub(crate) fn passed(&self) -> bool {
        self.summary.as_ref().is_some_and(RunSummary::passed) && self.cleanup.is_clean()
    }
}

/// Why a session did not get to run its stages.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("{suite}: {source}")]
    Start {
        suite: String,
        #[source]
        source: StartError,
    },
    #[error("{suite}: interrupted during set-up")]
    Abandoned { suite: String },
}

/// Run `suite` on a backend started from `spec`. `interrupts()` gives a future for each
/// interrupt to wait for (Ctrl-C, SIGTERM); `keep` leaves the backend up until the next one.
pub(crate) async fn run<S, F>(
    suite: &Suite,
    spec: S,
    reporter: &mut dyn Reporter,
    interrupts: impl Fn() -> F,
    keep: bool,
) -> Result<SessionOutcome, SessionError>
where
    S: BackendSpec,
    F: Future<Output = ()>,
{
    let started = Instant::now();
    reporter.report(&Event::SessionStarted {
        suite: suite.name.clone(),
        title: suite.title.clone(),
        backend: spec.describe(),
    });
    let mut interrupted = false;
    let backend = {
        let mut progress = |line: &str| {
            reporter.report(&Event::Progress {
                line: line.to_string(),
            })
        };
        let start = spec.start(suite, &mut progress);
        let mut start = std::pin::pin!(start);
        tokio::select! {
            backend = &mut start => Some(backend),
            () = interrupts() => {
                interrupted = true;
                tokio::select! {
                    backend = &mut start => Some(backend),
                    // Dropping set-up stops what it started.
                    () = interrupts() => None,
                }
            }
        }
    };
    let backend = match backend {
        Some(Ok(backend)) => backend,
        Some(Err(source)) => {
            reporter.report(&Event::SetupFailed {
                error: source.to_string(),
            });
            finish(reporter, suite, false, vec![source.to_string()], started);
            return Err(SessionError::Start {
                suite: suite.file.display().to_string(),
                source,
            });
        }
        None => {
            reporter.report(&Event::Interrupted {
                during: "set-up, a second time: set-up abandoned".into(),
            });
            finish(reporter, suite, false, vec!["interrupted".into()], started);
            return Err(SessionError::Abandoned {
                suite: suite.file.display().to_string(),
            });
        }
    };
    let startup = started.elapsed();
    reporter.report(&Event::BackendReady { took: startup });
    let mut backend = backend;
    let summary = if interrupted {
        reporter.report(&Event::Interrupted {
            during: "set-up".into(),
        });
        None
    } else {
        let summary = tokio::select! {
            summary = run_suite(suite, &mut backend, &mut *reporter) => Some(summary),
            () = interrupts() => None,
        };
        if summary.is_none() {
            reporter.report(&Event::Interrupted {
                during: "the stages".into(),
            });
        }
        summary
    };
    let mut progress = |line: &str| {
        reporter.report(&Event::Progress {
            line: line.to_string(),
        })
    };
    if summary.as_ref().is_some_and(|s| !s.passed()) {
        backend.collect_artifacts(&mut progress).await;
    }
    let mut stopped_by_user = false;
    if keep && summary.is_some() {
        if backend.keeps_by_waiting() {
            reporter.report(&Event::Kept {
                notice: format!(
                    "The mesh is up (--keep).\n{}Press Ctrl-C to stop it (and the run: no later suite runs).",
                    backend.access()
                ),
            });
            interrupts().await;
            stopped_by_user = true;
        } else {
            reporter.report(&Event::Kept {
                notice: format!("Left in place (--keep).\n{}", backend.access()),
            });
        }
    }
    let mut progress = |line: &str| {
        reporter.report(&Event::Progress {
            line: line.to_string(),
        })
    };
    let cleanup = backend.shutdown(&mut progress).await;
    reporter.report(&Event::CleanedUp {
        report: cleanup.clone(),
    });
    let outcome = SessionOutcome {
        summary,
        cleanup,
        startup,
        total: started.elapsed(),
        stopped_by_user,
    };
    let mut failures = match &outcome.summary {
        Some(summary) => summary.failures(),
        None => vec!["interrupted".to_string()],
    };
    failures.extend(
        outcome
            .cleanup
            .leftovers
            .iter()
            .map(|l| format!("left behind by the run: {l}")),
    );
    finish(reporter, suite, outcome.passed(), failures, started);
    Ok(outcome)
}

fn finish(
    reporter: &mut dyn Reporter,
    suite: &Suite,
    passed: bool,
    failures: Vec<String>,
    started: Instant,
) {
    reporter.report(&Event::SessionFinished {
        suite: suite.name.clone(),
        passed,
        failures,
        duration: started.elapsed(),
    });
}
