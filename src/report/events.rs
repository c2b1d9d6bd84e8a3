//! The only contract between running and reporting.

use std::time::Duration;

use crate::expect::Outcome;
use crate::observe::CommandOutput;

#[derive(Debug, Clone)]
pub enum Event {
    SuiteStarted {
        suite: String,
        title: String,
        backend: String,
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
    /// Not run: an earlier step failed.
    StageSkipped {
        index: usize,
        name: String,
    },
    SuiteFinished {
        suite: String,
        passed: bool,
        failures: Vec<String>,
        duration: Duration,
    },
}

pub trait Reporter {
    fn report(&mut self, event: &Event);
}
