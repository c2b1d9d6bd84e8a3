//! Judging observations against a suite's expectations. Pure functions: every verdict comes with
//! what was expected and what was seen, so a failure reads without the run at hand.

mod command;
mod proxy;

pub use command::{CommandObservation, judge_command};
pub use proxy::judge_proxy;

/// One expectation's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What was checked, e.g. `politics: exit code`.
    pub what: String,
    pub passed: bool,
    pub expected: String,
    pub actual: String,
    /// Something the reader should know: a value not compared against the live site, attempts.
    pub note: Option<String>,
}

impl Outcome {
    pub(crate) fn compare(what: impl Into<String>, expected: String, actual: String) -> Outcome {
        Outcome {
            what: what.into(),
            passed: expected == actual,
            expected,
            actual,
            note: None,
        }
    }

    pub(crate) fn with_note(mut self, note: impl Into<String>) -> Outcome {
        self.note = Some(note.into());
        self
    }
}

/// Render a list the way the suite writes it.
pub(crate) fn list<T: std::fmt::Display>(items: &[T]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub(crate) fn list_keys(keys: &[crate::istio::ObjectKey]) -> String {
    list(keys)
}
