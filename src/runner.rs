//! Runs a suite's stages in order on a backend and emits what happened as events. It judges with
//! `crate::expect` and reports through `crate::report`; it prints nothing itself.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::{Backend, BackendError};
use crate::expect::{CommandObservation, Outcome, judge_command, judge_proxy};
use crate::istio::ObjectKey;
use crate::mesh::ProxyRole;
use crate::observe::config_dump::{ProxyConfig, differences, normalize};
use crate::report::{Event, Reporter};
use crate::suite::{Check, CheckKind, CommandCheck, Stage, Step, Suite};

/// How often an unsettled config expectation is looked at again.
const POLL: Duration = Duration::from_millis(25);
/// The pause before a failing command is run again, where the backend retries commands.
const COMMAND_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// What a run found, for exit codes and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub suite: String,
    pub stages: Vec<StageSummary>,
    pub duration: Duration,
}

#[derive(Debug, Clone)]
pub struct StageSummary {
    pub name: String,
    /// `None` when the stage did not run because an earlier step failed.
    pub passed: Option<bool>,
    pub failures: Vec<String>,
    /// Apply-to-ACK latency of each step.
    pub step_latencies: Vec<Duration>,
    pub duration: Duration,
}

impl RunSummary {
    pub fn passed(&self) -> bool {
        self.stages.iter().all(|s| s.passed == Some(true))
    }

    pub fn failures(&self) -> Vec<String> {
        self.stages
            .iter()
            .flat_map(|s| {
                let not_run = (s.passed.is_none()).then(|| format!("stage {}: not run", s.name));
                s.failures.iter().cloned().chain(not_run)
            })
            .collect()
    }
}

/// A stage's snapshot: each proxy's normalised config and the objects that exist.
#[derive(Debug, Clone)]
struct Snapshot {
    configs: BTreeMap<ProxyRole, Value>,
    resources: Vec<ObjectKey>,
}

pub async fn run_suite<B: Backend>(
    suite: &Suite,
    backend: &mut B,
    reporter: &mut dyn Reporter,
) -> RunSummary {
    let started = Instant::now();
    reporter.report(&Event::SuiteStarted {
        suite: suite.name.clone(),
        title: suite.title.clone(),
        backend: backend.name().to_string(),
    });
    let mut snapshots: BTreeMap<String, Snapshot> = BTreeMap::new();
    let mut summary = RunSummary {
        suite: suite.name.clone(),
        ..Default::default()
    };
    let mut broken = false;
    for (index, stage) in suite.stages.iter().enumerate() {
        if broken {
            summary.stages.push(StageSummary {
                name: stage.name.clone(),
                passed: None,
                failures: Vec::new(),
                step_latencies: Vec::new(),
                duration: Duration::ZERO,
            });
            reporter.report(&Event::StageSkipped {
                index,
                name: stage.name.clone(),
            });
            continue;
        }
        let result = run_stage(suite, index, stage, backend, reporter, &mut snapshots).await;
        broken = result.step_failed;
        reporter.report(&Event::StageFinished {
            index,
            name: stage.name.clone(),
            passed: result.summary.passed == Some(true),
            duration: result.summary.duration,
        });
        summary.stages.push(result.summary);
    }
    summary.duration = started.elapsed();
    reporter.report(&Event::SuiteFinished {
        suite: suite.name.clone(),
        passed: summary.passed(),
        failures: summary.failures(),
        duration: summary.duration,
    });
    summary
}

struct StageResult {
    summary: StageSummary,
    step_failed: bool,
}

async fn run_stage<B: Backend>(
    suite: &Suite,
    index: usize,
    stage: &Stage,
    backend: &mut B,
    reporter: &mut dyn Reporter,
    snapshots: &mut BTreeMap<String, Snapshot>,
) -> StageResult {
    let started = Instant::now();
    reporter.report(&Event::StageStarted {
        index,
        name: stage.name.clone(),
        says: stage.says.clone(),
    });
    let mut failures = Vec::new();
    let mut latencies = Vec::new();
    let mut step_failed = false;
    let fail = |failures: &mut Vec<String>, text: String| {
        failures.push(format!(
            "{}: stage {}: {text}",
            suite.file.display(),
            stage.name
        ))
    };
    for step in &stage.steps {
        let (description, result) = match step {
            Step::Apply { file, objects } => (
                format!(
                    "kubectl apply -f {}  # {}",
                    file.file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    objects
                        .iter()
                        .map(|o| format!("{} {}", o.kind(), o.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                backend.apply(objects).await,
            ),
            Step::Delete { key } => (
                format!("kubectl delete {} {}", key.kind.cli_name(), key.name),
                backend.delete(key).await,
            ),
        };
        match result {
            Ok(report) => {
                latencies.push(report.latency);
                reporter.report(&Event::StepDone {
                    step: description,
                    latency: report.latency,
                });
            }
            Err(error) => {
                reporter.report(&Event::StepFailed {
                    step: description.clone(),
                    error: error.to_string(),
                });
                fail(&mut failures, format!("{description}: {error}"));
                step_failed = true;
                break;
            }
        }
    }
    if !step_failed {
        // The snapshot is of the state the steps left, before any check sends traffic.
        if let Some(name) = &stage.snapshot {
            match take_snapshot(backend).await {
                Ok(snapshot) => {
                    snapshots.insert(name.clone(), snapshot);
                    reporter.report(&Event::SnapshotTaken { name: name.clone() });
                }
                Err(error) => fail(&mut failures, format!("snapshot {name}: {error}")),
            }
        }
        for check in &stage.checks {
            let outcomes = match run_check(check, backend, reporter, snapshots).await {
                Ok(outcomes) => outcomes,
                Err(error) => vec![Outcome {
                    what: "observation".into(),
                    passed: false,
                    expected: "the backend answers".into(),
                    actual: error.to_string(),
                    note: None,
                }],
            };
            for outcome in outcomes {
                if !outcome.passed {
                    fail(
                        &mut failures,
                        format!(
                            "{} (suite line {}): expected {}, got {}{}",
                            outcome.what,
                            check.line,
                            outcome.expected,
                            outcome.actual,
                            outcome
                                .note
                                .as_ref()
                                .map(|n| format!(" ({n})"))
                                .unwrap_or_default()
                        ),
                    );
                }
                reporter.report(&Event::Checked {
                    line: check.line,
                    outcome,
                });
            }
        }
    }
    StageResult {
        summary: StageSummary {
            name: stage.name.clone(),
            passed: Some(failures.is_empty()),
            failures,
            step_latencies: latencies,
            duration: started.elapsed(),
        },
        step_failed,
    }
}

async fn run_check<B: Backend>(
    check: &Check,
    backend: &mut B,
    reporter: &mut dyn Reporter,
    snapshots: &BTreeMap<String, Snapshot>,
) -> Result<Vec<Outcome>, BackendError> {
    match &check.kind {
        CheckKind::Command(command) => {
            let Some(window) = backend.command_retry() else {
                return run_command_check(command, backend, reporter).await;
            };
            let deadline = Instant::now() + window;
            let started = Instant::now();
            let mut attempts = 0;
            loop {
                attempts += 1;
                let outcomes = run_command_check(command, backend, reporter).await?;
                if outcomes.iter().all(|o| o.passed) || Instant::now() >= deadline {
                    return Ok(with_attempts(outcomes, attempts, started));
                }
                tokio::time::sleep(COMMAND_RETRY_PAUSE).await;
            }
        }
        CheckKind::Proxy { proxy, expect } => {
            let (proxy, expect) = (*proxy, expect.clone());
            settle(
                backend,
                |dumps| {
                    vec![judge_proxy(
                        proxy,
                        &expect,
                        &ProxyConfig::from_dump(&dumps[&proxy]),
                    )]
                },
                &[proxy],
            )
            .await
        }
        CheckKind::SameAs { snapshot } => {
            let Some(before) = snapshots.get(snapshot) else {
                // The loader guarantees an earlier stage names it; a failed stage may not have
                // taken it.
                return Ok(vec![Outcome {
                    what: format!("no residue: same as {snapshot}"),
                    passed: false,
                    expected: format!("snapshot {snapshot}"),
                    actual: "it was never taken".into(),
                    note: None,
                }]);
            };
            let resources = backend.resources().await?;
            let mut outcomes = vec![Outcome::compare(
                format!("no residue: resources as at {snapshot}"),
                crate::expect::list_keys(&before.resources),
                crate::expect::list_keys(&resources),
            )];
            let before = before.clone();
            outcomes.extend(
                settle(
                    backend,
                    |dumps| {
                        ProxyRole::ALL
                            .iter()
                            .map(|proxy| {
                                let after = normalize(&dumps[proxy]);
                                let diff = differences(&before.configs[proxy], &after, 12);
                                Outcome {
                                    what: format!("no residue: {proxy} config as at {snapshot}"),
                                    passed: diff.is_empty(),
                                    expected: format!(
                                        "the config of {snapshot} (versions and timestamps aside)"
                                    ),
                                    actual: if diff.is_empty() {
                                        "the same".into()
                                    } else {
                                        diff.join("; ")
                                    },
                                    note: None,
                                }
                            })
                            .collect()
                    },
                    &ProxyRole::ALL,
                )
                .await?,
            );
            Ok(outcomes)
        }
    }
}

/// Judge config until every verdict passes or the backend's settle timeout runs out; report the
/// last verdicts, with the number of looks when it took more than one.
async fn settle<B: Backend>(
    backend: &mut B,
    judge: impl Fn(&BTreeMap<ProxyRole, Value>) -> Vec<Outcome>,
    proxies: &[ProxyRole],
) -> Result<Vec<Outcome>, BackendError> {
    let deadline = Instant::now() + backend.settle_timeout();
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut dumps = BTreeMap::new();
        for proxy in proxies {
            dumps.insert(*proxy, backend.config_dump(*proxy).await?);
        }
        let outcomes = judge(&dumps);
        let all_passed = outcomes.iter().all(|o| o.passed);
        if all_passed || Instant::now() >= deadline {
            return Ok(outcomes
                .into_iter()
                .map(|o| {
                    if attempts > 1 {
                        let note = format!("{attempts} looks over {:.1?}", started.elapsed());
                        let note = match o.note.clone() {
                            Some(n) => format!("{n}; {note}"),
                            None => note,
                        };
                        o.with_note(note)
                    } else {
                        o
                    }
                })
                .collect());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Say how many attempts a verdict took, when it took more than one.
fn with_attempts(outcomes: Vec<Outcome>, attempts: usize, started: Instant) -> Vec<Outcome> {
    if attempts == 1 {
        return outcomes;
    }
    let note = format!("{attempts} attempts over {:.1?}", started.elapsed());
    outcomes
        .into_iter()
        .map(|o| {
            let note = match &o.note {
                Some(n) => format!("{n}; {note}"),
                None => note.clone(),
            };
            o.with_note(note)
        })
        .collect()
}

async fn run_command_check<B: Backend>(
    check: &CommandCheck,
    backend: &mut B,
    reporter: &mut dyn Reporter,
) -> Result<Vec<Outcome>, BackendError> {
    let proxies: Vec<ProxyRole> = {
        let mut p: Vec<ProxyRole> = check.through.iter().map(|t| t.proxy).collect();
        p.sort();
        p.dedup();
        p
    };
    let mut stats_before = BTreeMap::new();
    for proxy in &proxies {
        stats_before.insert(*proxy, backend.stats(*proxy).await?);
    }
    let origin_before = backend.origin_hits().map(|h| h.len());
    let output = backend.run(&check.command).await?;
    reporter.report(&Event::CommandRan {
        command: check.command.to_string(),
        output: output.clone(),
    });
    let mut stats_after = BTreeMap::new();
    for proxy in &proxies {
        stats_after.insert(*proxy, backend.stats(*proxy).await?);
    }
    let origin = backend
        .origin_hits()
        .map(|hits| hits.into_iter().skip(origin_before.unwrap_or(0)).collect());
    let observation = CommandObservation {
        output,
        stats_before,
        stats_after,
        origin,
        live_site: backend.reaches_live_site(),
    };
    Ok(judge_command(check, &observation))
}

async fn take_snapshot<B: Backend>(backend: &mut B) -> Result<Snapshot, BackendError> {
    let mut configs = BTreeMap::new();
    for proxy in ProxyRole::ALL {
        configs.insert(proxy, normalize(&backend.config_dump(proxy).await?));
    }
    Ok(Snapshot {
        configs,
        resources: backend.resources().await?,
    })
}
