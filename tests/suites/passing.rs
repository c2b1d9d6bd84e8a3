//! The suites pass, on the local backend and (when one is configured) on a cluster.

use std::path::PathBuf;

use libtest_mimic::{Completion, Failed};

use crate::harness::{SUITE, replay, root};

pub fn passes(suite: PathBuf) -> Result<(), Failed> {
    let run = replay(&[suite.as_os_str()])?;
    if run.passed() {
        Ok(())
    } else {
        Err(format!(
            "{} failed:\n  {}\n\n{}",
            suite.display(),
            run.failures().join("\n  "),
            run.describe()
        )
        .into())
    }
}

/// The environment variable that names a kubeconfig context to run the kind trials against.
const KIND_CONTEXT: &str = "EGRESS_CONFORMANCE_KIND_CONTEXT";

/// The suite on a real cluster: the context in `EGRESS_CONFORMANCE_KIND_CONTEXT` (with Istio's
/// demo profile, or none and the backend installs it). Without it, ignored with the reason.
pub fn passes_on_kind(suite: PathBuf) -> Result<Completion, Failed> {
    let Some(context) = std::env::var_os(KIND_CONTEXT) else {
        return Ok(Completion::ignored_with(format!(
            "no cluster configured: set {KIND_CONTEXT}=<kubeconfig context> to run the suite on it"
        )));
    };
    let run = replay(&[
        "--backend".as_ref(),
        "kind".as_ref(),
        "--context".as_ref(),
        context.as_os_str(),
        suite.as_os_str(),
    ])?;
    if run.passed() {
        Ok(Completion::Completed)
    } else {
        Err(format!("{} failed on kind:\n{}", suite.display(), run.describe()).into())
    }
}

/// Two replays at once on one machine: separate ports, directories and processes; both pass.
pub fn two_runs_at_once() -> Result<(), Failed> {
    let suite = root().join(SUITE);
    let other = suite.clone();
    let first = std::thread::spawn(move || passes(suite));
    let second = std::thread::spawn(move || passes(other));
    let a = first.join().map_err(|_| "the first run panicked")?;
    let b = second.join().map_err(|_| "the second run panicked")?;
    a.and(b)
}
