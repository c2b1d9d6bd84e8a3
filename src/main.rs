//! `egress-conformance`: replay the tutorial's suites and report.
//!
//! Exit codes: 0 every expectation held; 1 an expectation failed (or a step was rejected);
//! 2 bad input or a broken environment (a malformed suite or manifest, a missing Envoy, ...).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use egress_conformance::backend::kind::{self, KindOptions};
use egress_conformance::envoy::find_or_install;
use egress_conformance::report::{Junit, Tee, Transcript};
use egress_conformance::session::{AfterRun, run_kind, run_local, validate};
use egress_conformance::suite::{Suite, discover, load_suite};

#[derive(Parser)]
#[command(
    name = "egress-conformance",
    version,
    about = "Replay Istio's egress-gateway TLS-origination tutorial and check every stage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay suites (default: every suite under suites/).
    Run {
        /// Suite files.
        suites: Vec<PathBuf>,
        /// Where to run: `local` (Envoy processes, no cluster) or `kind` (a cluster with Istio).
        #[arg(long, value_enum, default_value_t = BackendKind::Local)]
        backend: BackendKind,
        /// kind: use this kubeconfig context and create no cluster.
        #[arg(long, value_name = "NAME")]
        context: Option<String>,
        /// kind: the Istio version to install (istioctl of that version must be on PATH or in
        /// $ISTIOCTL).
        #[arg(long, value_name = "VERSION", default_value = kind::DEFAULT_ISTIO_VERSION)]
        istio_version: String,
        /// kind: the cluster to create.
        #[arg(long, value_name = "NAME", default_value = kind::DEFAULT_CLUSTER_NAME)]
        cluster_name: String,
        /// kind: the node image of the cluster to create.
        #[arg(long, value_name = "IMAGE", default_value = kind::DEFAULT_NODE_IMAGE)]
        kind_node_image: String,
        /// kind: when a run fails, write the proxies' config dumps, stats and logs here.
        #[arg(long, value_name = "DIR")]
        artifacts: Option<PathBuf>,
        /// Leave what the run set up in place: locally the mesh keeps running until Ctrl-C and its
        /// directory stays; on kind the cluster, Istio and the sample stay.
        #[arg(long)]
        keep: bool,
        /// Print passing expectations too.
        #[arg(long, short)]
        verbose: bool,
        /// Also write a JUnit XML report (one test case per stage) to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Measure: the whole replay's wall time and each step's apply-to-ACK latency.
    Bench {
        /// Suite file (default: every suite under suites/).
        suites: Vec<PathBuf>,
        /// How many replays.
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendKind {
    Local,
    Kind,
}

/// What `run` was asked to do.
struct RunRequest {
    suites: Vec<PathBuf>,
    backend: BackendKind,
    kind: KindOptions,
    keep: bool,
    verbose: bool,
    junit: Option<PathBuf>,
}

/// Exit code 2: the input or the environment is wrong, not the mesh.
struct Fatal(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run {
                suites,
                backend,
                context,
                istio_version,
                cluster_name,
                kind_node_image,
                artifacts,
                keep,
                verbose,
                junit,
            } => {
                let mut kind = KindOptions::new(PathBuf::from("fixtures/sleep.yaml"));
                kind.context = context;
                kind.istio_version = istio_version;
                kind.cluster_name = cluster_name;
                kind.kind_node_image = kind_node_image;
                kind.artifacts = artifacts;
                kind.keep = keep;
                run(RunRequest {
                    suites,
                    backend,
                    kind,
                    keep,
                    verbose,
                    junit,
                })
                .await
            }
            Command::Bench { suites, runs } => bench(suites, runs).await,
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(Fatal(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn load_all(paths: Vec<PathBuf>) -> Result<Vec<Suite>, Fatal> {
    let paths = if paths.is_empty() {
        let dir = PathBuf::from("suites");
        let found = discover(&dir).map_err(|e| {
            Fatal(format!(
                "{}: {e} (run from the repository root, or name a suite)",
                dir.display()
            ))
        })?;
        if found.is_empty() {
            return Err(Fatal(format!("{}: no suite files", dir.display())));
        }
        found
    } else {
        paths
    };
    paths
        .iter()
        .map(|p| {
            let suite = load_suite(p).map_err(|e| Fatal(e.to_string()))?;
            validate(&suite).map_err(|e| Fatal(e.to_string()))?;
            Ok(suite)
        })
        .collect()
}

fn envoy() -> Result<egress_conformance::envoy::EnvoyBinary, Fatal> {
    find_or_install(&mut |note| eprintln!("{note}")).map_err(|e| Fatal(e.to_string()))
}

async fn interrupted() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

async fn run(request: RunRequest) -> Result<bool, Fatal> {
    let suites = load_all(request.suites)?;
    if request.backend == BackendKind::Local
        && (request.kind.context.is_some() || request.kind.artifacts.is_some())
    {
        return Err(Fatal(
            "--context and --artifacts apply to --backend kind".into(),
        ));
    }
    let mut junit = Junit::new();
    let result = match request.backend {
        BackendKind::Local => {
            let envoy = envoy()?;
            run_suites(&suites, envoy, request.keep, request.verbose, &mut junit).await
        }
        BackendKind::Kind => run_on_kind(&suites, request.kind, request.verbose, &mut junit).await,
    };
    if let Some(file) = request.junit {
        let xml = junit
            .to_xml()
            .map_err(|e| Fatal(format!("writing JUnit XML: {e}")))?;
        std::fs::write(&file, xml).map_err(|e| Fatal(format!("{}: {e}", file.display())))?;
    }
    result
}

async fn run_on_kind(
    suites: &[Suite],
    options: KindOptions,
    verbose: bool,
    junit: &mut Junit,
) -> Result<bool, Fatal> {
    let mut all_passed = true;
    for suite in suites {
        let mut transcript = Transcript::new(std::io::stdout(), verbose);
        let mut reporters = Tee(vec![&mut transcript, &mut *junit]);
        let mut progress = |line: &str| eprintln!("[kind] {line}");
        let outcome = run_kind(
            suite,
            options.clone(),
            &mut reporters,
            interrupted,
            &mut progress,
        )
        .await
        .map_err(|e| Fatal(format!("{}: kind backend: {e}", suite.file.display())))?;
        eprint!("{}", outcome.cleanup);
        match &outcome.summary {
            None => {
                eprintln!("interrupted: removed what the run had set up");
                return Ok(false);
            }
            Some(summary) => all_passed &= summary.passed() && outcome.cleanup.is_clean(),
        }
    }
    Ok(all_passed)
}

async fn run_suites(
    suites: &[Suite],
    envoy: egress_conformance::envoy::EnvoyBinary,
    keep: bool,
    verbose: bool,
    junit: &mut Junit,
) -> Result<bool, Fatal> {
    let mut all_passed = true;
    for suite in suites {
        let mut transcript = Transcript::new(std::io::stdout(), verbose);
        let mut reporters = Tee(vec![&mut transcript, &mut *junit]);
        let after = if keep {
            AfterRun::Keep {
                tell: Box::new(|text: &str| println!("{text}")),
            }
        } else {
            AfterRun::Stop
        };
        let outcome = run_local(suite, envoy.clone(), &mut reporters, interrupted(), after)
            .await
            .map_err(|e| Fatal(format!("{}: local backend: {e}", suite.file.display())))?;
        for leftover in &outcome.cleanup.leftovers {
            eprintln!("error: left behind by the run: {leftover}");
        }
        match &outcome.summary {
            None => {
                eprintln!("interrupted: stopped everything the run had started");
                return Ok(false);
            }
            Some(summary) => all_passed &= summary.passed() && outcome.cleanup.leftovers.is_empty(),
        }
        if outcome.cleanup.dir_kept {
            println!("kept: {}", outcome.cleanup.dir.display());
        }
    }
    Ok(all_passed)
}

async fn bench(paths: Vec<PathBuf>, runs: usize) -> Result<bool, Fatal> {
    let suites = load_all(paths)?;
    let envoy = envoy()?;
    let mut all_passed = true;
    for suite in &suites {
        let mut totals = Vec::new();
        let mut startups = Vec::new();
        let mut latencies = Vec::new();
        let mut per_stage: Vec<(String, Vec<Duration>)> = suite
            .stages
            .iter()
            .map(|s| (s.name.clone(), Vec::new()))
            .collect();
        for _ in 0..runs.max(1) {
            let mut sink = Transcript::new(std::io::sink(), false);
            let outcome = run_local(
                suite,
                envoy.clone(),
                &mut sink,
                interrupted(),
                AfterRun::Stop,
            )
            .await
            .map_err(|e| Fatal(e.to_string()))?;
            let Some(summary) = outcome.summary else {
                return Ok(false);
            };
            if !summary.passed() {
                all_passed = false;
                eprintln!("a replay failed: {}", summary.failures().join("; "));
            }
            totals.push(outcome.total);
            startups.push(outcome.startup);
            for (i, stage) in summary.stages.iter().enumerate() {
                per_stage[i].1.extend(stage.step_latencies.iter().copied());
                latencies.extend(stage.step_latencies.iter().copied());
            }
        }
        println!(
            "{}: {} replays on the local backend",
            suite.name,
            totals.len()
        );
        println!(
            "  whole replay (Envoy start-up and cleanup included): {}",
            stats(&totals)
        );
        println!(
            "  start-up to baseline ACKed:                         {}",
            stats(&startups)
        );
        println!(
            "  apply-to-ACK, every step:                           {}",
            stats(&latencies)
        );
        for (name, values) in &per_stage {
            if !values.is_empty() {
                println!("    {name:<24} {}", stats(values));
            }
        }
    }
    Ok(all_passed)
}

fn stats(values: &[Duration]) -> String {
    let mut ms: Vec<f64> = values.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {:.1} ms, min {:.1} ms, p90 {:.1} ms, max {:.1} ms (n={})",
        pick(0.5),
        ms[0],
        pick(0.9),
        ms[ms.len() - 1],
        ms.len()
    )
}
