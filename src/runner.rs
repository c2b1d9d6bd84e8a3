//! Runs a suite's stages in order on a backend and emits what happened as events. It judges with
//! `crate::expect` and reports through `crate::report`; it prints nothing itself. A process of
//! the run that dies fails the stage it dies in at once; the stages after it are not run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::{Backend, BackendError, StepError, StepReport};
use crate::expect::{CommandObservation, Outcome, judge_command, judge_proxy};
use crate::istio::ObjectKey;
use crate::mesh::ProxyRole;
use crate::observe::config_dump::{ProxyConfig, differences, normalize};
use crate::report::{Event, Reporter};
use crate::suite::{Check, CheckKind, CommandCheck, Stage, Step, Suite};
use crate::wait::{Look, Wait, WaitError};

/// How often an unsettled config expectation is looked at again.
const POLL: Duration = Duration::from_millis(25);
/// The pause before a failing command is run again, where the backend retries commands.
const COMMAND_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// What a run found, for exit codes and benchmarks.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunSummary {
    pub stages: Vec<StageSummary>,
    pub duration: Duration,
}

#[derive(Debug, Clone)]
pub(crate) struct StageSummary {
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

pub(crate) async fn run_suite<B: Backend>(
    suite: &Suite,
    backend: &mut B,
    reporter: &mut dyn Reporter,
) -> RunSummary {
    let started = Instant::now();
    let liveness = backend.liveness();
    let mut snapshots: BTreeMap<String, Snapshot> = BTreeMap::new();
    let mut summary = RunSummary::default();
    let mut broken: Option<String> = None;
    for (index, stage) in suite.stages.iter().enumerate() {
        if broken.is_none()
            && let Some(death) = liveness.dead()
        {
            broken = Some(format!("not run: {} died", death.who));
        }
        if let Some(reason) = &broken {
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
                reason: reason.clone(),
            });
            continue;
        }
        let stage_started = Instant::now();
        let raced = {
            let run = run_stage(suite, index, stage, backend, &mut *reporter, &mut snapshots);
            tokio::select! {
                result = run => Ok(result),
                death = liveness.first_death() => Err(death),
            }
        };
        let raced = match raced {
            // A death that ended the stage's work without being raced (a check that failed on
            // it) is the stage's failure all the same.
            Ok(result) => match liveness.dead() {
                Some(death) if !result.step_failed => Err((death, Some(result))),
                _ => Ok(result),
            },
            Err(death) => Err((death, None)),
        };
        let result = match raced {
            Ok(result) => result,
            Err((death, finished)) => {
                let outcome = Outcome {
                    what: "the mesh".into(),
                    passed: false,
                    expected: "every process of the run alive".into(),
                    actual: death.to_string(),
                    note: None,
                };
                reporter.report(&Event::Checked {
                    line: stage.line,
                    outcome,
                });
                let mut summary = finished.map(|r| r.summary).unwrap_or(StageSummary {
                    name: stage.name.clone(),
                    passed: Some(false),
                    failures: Vec::new(),
                    step_latencies: Vec::new(),
                    duration: stage_started.elapsed(),
                });
                summary.passed = Some(false);
                summary.failures.push(format!(
                    "{}: stage {}: {death}",
                    suite.file.display(),
                    stage.name
                ));
                StageResult {
                    summary,
                    step_failed: true,
                }
            }
        };
        if result.step_failed {
            broken = Some(match liveness.dead() {
                Some(death) => format!("not run: {} died", death.who),
                None => "not run: an earlier step failed".to_string(),
            });
        }
        reporter.report(&Event::StageFinished {
            index,
            name: stage.name.clone(),
            passed: result.summary.passed == Some(true),
            duration: result.summary.duration,
        });
        summary.stages.push(result.summary);
    }
    summary.duration = started.elapsed();
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
            Step::Delete {
                key,
                ignore_not_found,
            } => {
                let flag = if *ignore_not_found {
                    " --ignore-not-found=true"
                } else {
                    ""
                };
                let description =
                    format!("kubectl delete {} {}{flag}", key.kind.cli_name(), key.name);
                let result = match backend.delete(key).await {
                    // kubectl says nothing and succeeds.
                    Err(StepError::NotFound(_)) if *ignore_not_found => Ok(StepReport {
                        latency: Duration::ZERO,
                    }),
                    other => other,
                };
                (description, result)
            }
            Step::Mesh(mesh) => (
                format!(
                    "istioctl install --set meshConfig.outboundTrafficPolicy.mode={}",
                    mesh.outbound_traffic_policy.name()
                ),
                backend.set_mesh(mesh).await,
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
            let wait = Wait::new(format!("{} to pass", command.command.name), window)
                .every(COMMAND_RETRY_PAUSE);
            let looked = wait
                .poll(async || {
                    // Each look runs the command anew.
                    let outcomes = run_command_check(command, backend, reporter).await?;
                    Ok::<_, BackendError>(if outcomes.iter().all(|o| o.passed) {
                        Look::Ready(outcomes)
                    } else {
                        Look::NotYet(Verdicts(outcomes))
                    })
                })
                .await;
            match looked {
                Ok(settled) => Ok(with_attempts(settled.value, settled.looks, settled.waited)),
                Err(WaitError::TimedOut(t)) => Ok(with_attempts(t.last_seen.0, t.looks, t.waited)),
                Err(WaitError::Failed(error)) => Err(error),
            }
        }
        CheckKind::Proxy { proxy, expect } => {
            let (proxy, expect) = (*proxy, expect.clone());
            let time_scale = backend.time_scale();
            settle(
                backend,
                |dumps| {
                    vec![judge_proxy(
                        proxy,
                        &expect,
                        &ProxyConfig::from_dump(&dumps[&proxy]),
                        time_scale,
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
    let wait = Wait::new("the proxies' config to hold", backend.settle_timeout()).every(POLL);
    let looked = wait
        .poll(async || {
            let mut dumps = BTreeMap::new();
            for proxy in proxies {
                dumps.insert(*proxy, backend.config_dump(*proxy).await?);
            }
            let outcomes = judge(&dumps);
            Ok::<_, BackendError>(if outcomes.iter().all(|o| o.passed) {
                Look::Ready(outcomes)
            } else {
                Look::NotYet(Verdicts(outcomes))
            })
        })
        .await;
    let (outcomes, looks, waited) = match looked {
        Ok(settled) => (settled.value, settled.looks, settled.waited),
        Err(WaitError::TimedOut(t)) => (t.last_seen.0, t.looks, t.waited),
        Err(WaitError::Failed(error)) => return Err(error),
    };
    Ok(outcomes
        .into_iter()
        .map(|o| {
            if looks > 1 {
                let note = format!("{looks} looks over {waited:.1?}");
                let note = match o.note.clone() {
                    Some(n) => format!("{n}; {note}"),
                    None => note,
                };
                o.with_note(note)
            } else {
                o
            }
        })
        .collect())
}

/// The verdicts of a look that did not hold yet: what a timed-out wait saw last.
struct Verdicts(Vec<Outcome>);

impl std::fmt::Display for Verdicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let failing: Vec<String> = self
            .0
            .iter()
            .filter(|o| !o.passed)
            .map(|o| format!("{}: {}", o.what, o.actual))
            .collect();
        f.write_str(&failing.join("; "))
    }
}

/// Say how many attempts a verdict took, when it took more than one.
fn with_attempts(outcomes: Vec<Outcome>, attempts: u32, waited: Duration) -> Vec<Outcome> {
    if attempts == 1 {
        return outcomes;
    }
    let note = format!("{attempts} attempts over {waited:.1?}");
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
        let mut p: Vec<ProxyRole> = check
            .through
            .iter()
            .chain(&check.timeouts)
            .map(|t| t.proxy)
            .chain(check.blocked.iter().map(|b| b.proxy))
            .chain(check.connections.iter().map(|c| c.proxy))
            .collect();
        p.sort();
        p.dedup();
        p
    };
    let mut stats_before = BTreeMap::new();
    for proxy in &proxies {
        stats_before.insert(*proxy, backend.stats(*proxy).await?);
    }
    let origin_before = backend.origin_hits().map(|h| h.len());
    let started = Instant::now();
    let output = backend.run(&check.command).await?;
    let took = started.elapsed();
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
        took,
        time_scale: backend.time_scale(),
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
