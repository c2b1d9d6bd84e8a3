//! The human transcript: reads like the tutorial. Each stage's steps as `kubectl` commands, each
//! command and what it printed, each expectation with expected and actual side by side.

use std::io::Write;

use super::{Event, Reporter};

pub(crate) struct Transcript<W: Write> {
    out: W,
    /// Print passing checks too (failures are always printed).
    verbose: bool,
}

impl<W: Write> Transcript<W> {
    pub(crate) fn new(out: W, verbose: bool) -> Self {
        Transcript { out, verbose }
    }

    pub(crate) fn into_inner(self) -> W {
        self.out
    }

    fn write(&mut self, event: &Event) -> std::io::Result<()> {
        let out = &mut self.out;
        match event {
            Event::SessionStarted {
                suite,
                title,
                backend,
            } => {
                writeln!(out, "== {suite}: {title} (backend: {backend})")?;
            }
            Event::Progress { line } => {
                writeln!(out, "   · {line}")?;
            }
            Event::BackendReady { took } => {
                writeln!(out, "   · ready in {}", ms(*took))?;
            }
            Event::SetupFailed { error } => {
                writeln!(out, "   SET-UP FAILED: {error}")?;
            }
            Event::Interrupted { during } => {
                writeln!(
                    out,
                    "\n!! interrupted during {during}: stopping everything the run started"
                )?;
            }
            Event::Kept { notice } => {
                writeln!(out, "\n{notice}")?;
            }
            Event::CleanedUp { report } => {
                let verdict = if report.leftovers.is_empty() {
                    "nothing left behind"
                } else {
                    "LEFT BEHIND what follows"
                };
                writeln!(
                    out,
                    "\n-- clean-up: {} stopped or removed, {} kept; {verdict}",
                    report.removed.len(),
                    report.kept.len()
                )?;
                for kept in &report.kept {
                    writeln!(out, "   kept: {kept}")?;
                }
                for leftover in &report.leftovers {
                    writeln!(out, "   LEFT BEHIND: {leftover}")?;
                }
            }
            Event::StageStarted { index, name, says } => {
                writeln!(out, "\n-- stage {index}: {name}")?;
                if let Some(says) = says {
                    writeln!(out, "   {says}")?;
                }
            }
            Event::StepDone { step, latency } => {
                writeln!(out, "$ {step}")?;
                writeln!(out, "  done; every proxy ACKed it in {}", ms(*latency))?;
            }
            Event::StepFailed { step, error } => {
                writeln!(out, "$ {step}")?;
                writeln!(out, "  FAILED: {error}")?;
            }
            Event::CommandRan { command, output } => {
                writeln!(out, "$ kubectl exec $SOURCE_POD -c sleep -- {command}")?;
                for line in output.stdout.lines().filter(|l| !l.trim().is_empty()) {
                    writeln!(out, "  {}", line.trim_end())?;
                }
                for line in output
                    .stderr
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .take(5)
                {
                    writeln!(out, "  (stderr) {}", line.trim_end())?;
                }
                if output.exit_code != 0 {
                    writeln!(
                        out,
                        "  command terminated with exit code {}",
                        output.exit_code
                    )?;
                }
            }
            Event::Checked { line, outcome } => {
                if outcome.passed && !self.verbose {
                    writeln!(out, "  ok   {}: {}", outcome.what, outcome.actual)?;
                    if let Some(note) = &outcome.note {
                        writeln!(out, "         note:     {note}")?;
                    }
                    return Ok(());
                }
                let mark = if outcome.passed { "ok  " } else { "FAIL" };
                writeln!(out, "  {mark} {} (suite line {line})", outcome.what)?;
                {
                    writeln!(out, "         expected: {}", outcome.expected)?;
                    writeln!(out, "         actual:   {}", outcome.actual)?;
                }
                if let Some(note) = &outcome.note {
                    writeln!(out, "         note:     {note}")?;
                }
            }
            Event::SnapshotTaken { name } => {
                writeln!(
                    out,
                    "  snapshot {name:?} taken: every proxy's config and the applied resources"
                )?;
            }
            Event::StageFinished {
                index,
                name,
                passed,
                duration,
            } => {
                let verdict = if *passed { "passed" } else { "FAILED" };
                writeln!(
                    out,
                    "-- stage {index} {name}: {verdict} in {}",
                    ms(*duration)
                )?;
            }
            Event::StageSkipped {
                index,
                name,
                reason,
            } => {
                writeln!(out, "\n-- stage {index}: {name}: {reason}")?;
            }
            Event::SessionFinished {
                suite,
                passed,
                failures,
                duration,
            } => {
                if *passed {
                    writeln!(out, "\n== {suite}: passed in {}", ms(*duration))?;
                } else {
                    writeln!(
                        out,
                        "\n== {suite}: FAILED in {} ({} failures)",
                        ms(*duration),
                        failures.len()
                    )?;
                    for f in failures {
                        // A failure's own lines (Envoy's NACK, a log tail) stay under it.
                        writeln!(out, "   {}", f.replace('\n', "\n     "))?;
                    }
                }
            }
        }
        out.flush()
    }
}

fn ms(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

impl<W: Write> Reporter for Transcript<W> {
    fn report(&mut self, event: &Event) {
        // A closed stdout must not stop the run: its cleanup still has to happen.
        let _ = self.write(event);
    }
}
