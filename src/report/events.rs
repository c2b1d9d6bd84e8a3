//! The only contract between running and reporting: everything a user sees is one of these,
//! set-up and clean-up included, so every reporter — and the exit code — tells the same story.

use std::time::Duration;

use crate::backend::CleanupReport;
use crate::expect::Outcome;
use crate::observe::CommandOutput;

#[derive(Debug, Clone)]
pub enum Event {
    /// A suite begins on a backend; set-up follows.
    SessionStarted {
        suite: String,
        title: String,
        backend: String,
    },
    /// A line of set-up or clean-up progress.
    Progress {
        line: String,
    },
    /// The backend is up and holds the baseline.
    BackendReady {
        took: Duration,
    },
    /// The backend could not be started; nothing of it remains (see `CleanedUp`).
    SetupFailed {
        error: String,
    },
    StageStarted {
        index: usize,
        name: String,
        says: Option<String>,
    },
    /// An apply or delete every proxy has accepted.
    StepDone {
        step: String,
        latency: Duration,
    },
    StepFailed {
        step: String,
        error: String,
    },
    CommandRan {
        command: String,
        output: CommandOutput,
    },
    Checked {
        line: usize,
        outcome: Outcome,
    },
    SnapshotTaken {
        name: String,
    },
    StageFinished {
        index: usize,
        name: String,
        passed: bool,
        duration: Duration,
    },
    /// Not run, and why: an earlier step failed, a process died, the run was interrupted.
    StageSkipped {
        index: usize,
        name: String,
        reason: String,
    },
    /// Ctrl-C or SIGTERM: the run stops and cleans up.
    Interrupted {
        during: String,
    },
    /// `--keep`: the mesh stays up until the interrupt; how to reach it.
    Kept {
        notice: String,
    },
    /// What clean-up did and what it found left behind.
    CleanedUp {
        report: CleanupReport,
    },
    /// The whole session's verdict: stages, set-up and clean-up together.
    SessionFinished {
        suite: String,
        passed: bool,
        failures: Vec<String>,
        duration: Duration,
    },
}

pub trait Reporter {
    fn report(&mut self, event: &Event);
}
