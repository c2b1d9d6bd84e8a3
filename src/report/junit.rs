//! JUnit XML for CI: one test suite per suite, one test case per stage. A failing stage carries
//! its failures as the message and its own transcript as the case's output. Set-up, an
//! interrupt and clean-up are cases too, so the report fails whenever the exit code does.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{Event, Reporter, Transcript};

pub(crate) struct Junit {
    report: Report,
    suite: Option<TestSuite>,
    stage: Option<StageRecord>,
}

struct StageRecord {
    name: String,
    transcript: Transcript<Vec<u8>>,
    failures: Vec<String>,
}

impl Default for Junit {
    fn default() -> Self {
        Junit::new()
    }
}

impl Junit {
    pub(crate) fn new() -> Junit {
        Junit {
            report: Report::new("egress-conformance"),
            suite: None,
            stage: None,
        }
    }

    /// The XML of everything reported so far.
    pub(crate) fn to_xml(&self) -> Result<String, quick_junit::SerializeError> {
        let mut report = self.report.clone();
        if let Some(open) = &self.suite {
            // A run that was cut short still reports the stages it finished.
            report.add_test_suite(open.clone());
        }
        report.to_string()
    }

    fn add_case(&mut self, name: &str, failure: Option<String>, output: Option<String>) {
        let Some(suite) = self.suite.as_mut() else {
            return;
        };
        let status = match failure {
            None => TestCaseStatus::success(),
            Some(message) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(message.clone());
                status.set_description(message);
                status
            }
        };
        let mut case = TestCase::new(name, status);
        if let Some(output) = output {
            case.set_system_out(output);
        }
        suite.add_test_case(case);
    }

    fn finish_stage(&mut self, passed: bool, duration: Duration) {
        let (Some(stage), Some(suite)) = (self.stage.take(), self.suite.as_mut()) else {
            return;
        };
        let transcript = String::from_utf8_lossy(&stage.transcript.into_inner()).into_owned();
        let status = if passed {
            TestCaseStatus::success()
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(stage.failures.join("; "));
            status.set_description(stage.failures.join("\n"));
            status
        };
        let mut case = TestCase::new(stage.name, status);
        case.set_time(duration);
        case.set_system_out(transcript);
        suite.add_test_case(case);
    }
}

impl Reporter for Junit {
    fn report(&mut self, event: &Event) {
        if let Some(stage) = &mut self.stage {
            stage.transcript.report(event);
        }
        match event {
            Event::SessionStarted { suite, backend, .. } => {
                let mut test_suite = TestSuite::new(format!("{suite} ({backend})"));
                test_suite.add_property(("backend", backend.as_str()));
                self.suite = Some(test_suite);
            }
            Event::SetupFailed { error } => {
                self.add_case("set-up", Some(error.clone()), None);
            }
            Event::Interrupted { during } => {
                self.add_case(
                    "interrupted",
                    Some(format!("interrupted during {during}")),
                    None,
                );
            }
            Event::CleanedUp { report } => {
                let failure = (!report.leftovers.is_empty())
                    .then(|| format!("left behind: {}", report.leftovers.join("; ")));
                let mut output = String::new();
                for (label, items) in [("removed", &report.removed), ("kept", &report.kept)] {
                    for item in items {
                        output.push_str(&format!("{label}: {item}\n"));
                    }
                }
                self.add_case("clean-up", failure, Some(output));
            }
            Event::StageStarted { index, name, .. } => {
                let mut transcript = Transcript::new(Vec::new(), true);
                transcript.report(event);
                self.stage = Some(StageRecord {
                    name: format!("{index:02} {name}"),
                    transcript,
                    failures: Vec::new(),
                });
            }
            Event::StepFailed { step, error } => {
                if let Some(stage) = &mut self.stage {
                    stage.failures.push(format!("{step}: {error}"));
                }
            }
            Event::Checked { line, outcome } if !outcome.passed => {
                if let Some(stage) = &mut self.stage {
                    stage.failures.push(format!(
                        "{} (suite line {line}): expected {}, got {}",
                        outcome.what, outcome.expected, outcome.actual
                    ));
                }
            }
            Event::StageFinished {
                passed, duration, ..
            } => self.finish_stage(*passed, *duration),
            Event::StageSkipped {
                index,
                name,
                reason,
            } => {
                if let Some(suite) = self.suite.as_mut() {
                    let mut status = TestCaseStatus::skipped();
                    status.set_message(reason.clone());
                    suite.add_test_case(TestCase::new(format!("{index:02} {name}"), status));
                }
            }
            Event::SessionFinished { duration, .. } => {
                if let Some(mut suite) = self.suite.take() {
                    suite.set_time(*duration);
                    self.report.add_test_suite(suite);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CleanupReport;
    use crate::expect::Outcome;

    fn outcome(passed: bool) -> Outcome {
        Outcome {
            what: "politics: status lines".into(),
            passed,
            expected: "[HTTP/1.1 200 OK]".into(),
            actual: if passed {
                "[HTTP/1.1 200 OK]"
            } else {
                "[HTTP/1.1 400 Bad Request]"
            }
            .into(),
            note: None,
        }
    }

    fn run(junit: &mut Junit, stage_passes: &[bool], leftovers: &[&str]) {
        junit.report(&Event::SessionStarted {
            suite: "s".into(),
            title: "t".into(),
            backend: "local".into(),
        });
        for (index, passed) in stage_passes.iter().enumerate() {
            junit.report(&Event::StageStarted {
                index,
                name: format!("stage{index}"),
                says: None,
            });
            junit.report(&Event::Checked {
                line: 7,
                outcome: outcome(*passed),
            });
            junit.report(&Event::StageFinished {
                index,
                name: format!("stage{index}"),
                passed: *passed,
                duration: Duration::from_millis(5),
            });
        }
        junit.report(&Event::StageSkipped {
            index: stage_passes.len(),
            name: "later".into(),
            reason: "not run: an earlier step failed".into(),
        });
        junit.report(&Event::CleanedUp {
            report: CleanupReport {
                leftovers: leftovers.iter().map(|s| s.to_string()).collect(),
                ..CleanupReport::default()
            },
        });
        junit.report(&Event::SessionFinished {
            suite: "s".into(),
            passed: false,
            failures: vec![],
            duration: Duration::from_secs(1),
        });
    }

    #[test]
    fn one_case_per_stage_with_failures_and_transcript() {
        let mut junit = Junit::new();
        run(&mut junit, &[true, false], &[]);
        let xml = junit.to_xml().unwrap();
        assert_eq!(xml.matches("<testcase ").count(), 4, "{xml}");
        assert!(
            xml.contains(
                r#"<testsuite name="s (local)" tests="4" skipped="1" errors="0" failures="1""#
            ),
            "{xml}"
        );
        assert!(xml.contains("politics: status lines (suite line 7): expected [HTTP/1.1 200 OK], got [HTTP/1.1 400 Bad Request]"), "{xml}");
        // The failing stage's own transcript, not the whole run's.
        assert!(xml.contains("-- stage 1: stage1"), "{xml}");
        assert!(
            xml.contains("<skipped message=\"not run: an earlier step failed\""),
            "{xml}"
        );
    }

    #[test]
    fn a_passing_run_has_no_failures() {
        let mut junit = Junit::new();
        run(&mut junit, &[true, true], &[]);
        let xml = junit.to_xml().unwrap();
        assert!(!xml.contains("<failure"), "{xml}");
    }

    #[test]
    fn a_leftover_is_a_failing_case() {
        let mut junit = Junit::new();
        run(&mut junit, &[true, true], &["pid 42 is still running"]);
        let xml = junit.to_xml().unwrap();
        assert!(
            xml.contains(r#"<testcase name="clean-up""#)
                && xml.contains("left behind: pid 42 is still running"),
            "{xml}"
        );
        assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    }

    #[test]
    fn a_failed_set_up_is_a_failing_case() {
        let mut junit = Junit::new();
        junit.report(&Event::SessionStarted {
            suite: "s".into(),
            title: "t".into(),
            backend: "kind".into(),
        });
        junit.report(&Event::SetupFailed {
            error: "kubeconfig context nope: not found".into(),
        });
        junit.report(&Event::SessionFinished {
            suite: "s".into(),
            passed: false,
            failures: vec![],
            duration: Duration::from_secs(1),
        });
        let xml = junit.to_xml().unwrap();
        assert!(
            xml.contains(r#"<testcase name="set-up""#) && xml.contains("kubeconfig context nope"),
            "{xml}"
        );
    }
}
