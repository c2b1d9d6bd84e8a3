//! `egress-conformance`: replay the tutorials' suites and report.
//!
//! Exit codes: 0 every expectation held and nothing was left behind; 1 the mesh failed (an
//! expectation, a rejected config, a process that died, a leftover) or the run was interrupted;
//! 2 bad input or a broken environment (a malformed suite or manifest, a missing Envoy, an
//! unreachable cluster). The code comes from the error's type, in [`exit_code`].

use std::cell::Cell;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::sync::watch;

use crate::backend::apiserver::ApiserverSpec;
use crate::backend::kind::{self, KindError, KindOptions};
use crate::backend::local::LocalSpec;
use crate::backend::{BackendSpec, StartError};
use crate::compare::accepted::Accepted;
use crate::compare::{IstiodSpec, compare_suite, render};
use crate::control_plane::ControlPlaneKind;
use crate::control_plane::istiod::headless::Headless;
use crate::control_plane::istiod::{SourceChoice, api_dir};
use crate::envoy::locate::Lookup;
use crate::envoy::{LocateError, find_or_install};
use crate::istio_release::{
    IstioRelease, IstioTool, IstioToolError, ToolLookup, find_or_build, parse_release,
};
use crate::kube_release::{CrdError, KubeLookup, KubeTool, KubeToolError, istio_crds};
use crate::mesh::MeshSettings;
use crate::report::{Junit, Reporter, Transcript};
use crate::session::{self, SessionError, SessionOutcome};
use crate::suite::{LoadOptions, Suite, SuiteError, discover, load_suite};
use crate::translate::TranslateError;
use crate::verdicts;

#[derive(Parser)]
#[command(
    name = "egress-conformance",
    version,
    about = "Replay Istio's egress tutorials and check every stage"
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
        /// Where to run: `local` (Envoy processes, no cluster), `kind` (a cluster with Istio) or
        /// `apiserver` (a real kube-apiserver and etcd on loopback, istiod watching it, local
        /// Envoys).
        #[arg(long, value_enum, default_value_t = BackendChoice::Local)]
        backend: BackendChoice,
        #[command(flatten)]
        plane: ControlPlaneArgs,
        /// kind: use this kubeconfig context and create no cluster.
        #[arg(long, value_name = "NAME")]
        context: Option<String>,
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
        #[command(flatten)]
        input: InputArgs,
        /// How many suites replay at once, each reported whole in its turn (default: local
        /// with the builtin control plane all of them, otherwise one). `--keep` and `--backend
        /// kind` replay one at a time.
        #[arg(long, value_name = "N")]
        jobs: Option<usize>,
    },
    /// Find or install what runs need, and say where it is: Envoy, and with `--control-plane
    /// istiod` istiod (built with Go, minutes the first time) and the Envoy paired with it. With
    /// `--backend apiserver`, also kube-apiserver and etcd (built with Go, 10-20 minutes the
    /// first time) and Istio's CRDs. With `--backend kind`, istioctl, and the install the kind
    /// backend would run checked offline.
    Setup {
        #[command(flatten)]
        plane: ControlPlaneArgs,
        /// The backend to set up for.
        #[arg(long, value_enum, default_value_t = BackendChoice::Local)]
        backend: BackendChoice,
        /// kind: the cluster whose context the checked install names.
        #[arg(long, value_name = "NAME", default_value = kind::DEFAULT_CLUSTER_NAME)]
        cluster_name: String,
        /// Only look: build and install nothing, fail (exit 2) saying what is missing.
        #[arg(long)]
        no_build: bool,
    },
    /// Compare the builtin translator's config with istiod's, stage by stage, for each proxy
    /// (default: every suite under suites/). Exits 1 on a difference the accepted-differences
    /// file does not list. Needs istiod, no Envoy.
    Compare {
        suites: Vec<PathBuf>,
        /// The Istio release of istiod (default 1.31).
        #[arg(long, value_name = "VERSION")]
        istio_version: Option<String>,
        /// How istiod is handed the Istio objects.
        #[arg(long, value_enum, default_value_t = IstiodConfig::Mcp)]
        istiod_config: IstiodConfig,
        /// The accepted differences, each with its reason.
        #[arg(long, value_name = "FILE", default_value = "accepted-differences.yaml")]
        accepted: PathBuf,
        /// Show accepted differences too.
        #[arg(long, short)]
        verbose: bool,
        #[command(flatten)]
        input: InputArgs,
    },
    /// Judge manifest files as every run does before anything starts (the harness's reading of
    /// Istio's validation rules) and, with `--istiod`, as istiod itself does. Exits 2 when any
    /// file is rejected.
    Validate {
        /// Manifest files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also hand each file, as written, to real istiod and show its verdict beside.
        #[arg(long)]
        istiod: bool,
        /// With `--istiod`: the Istio release (default 1.31).
        #[arg(long, value_name = "VERSION")]
        istio_version: Option<String>,
        /// The namespace of objects that name none.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Print one JSON object per file instead (`file`, `harness`, `istiod`; each verdict
        /// `accepted` with `warnings`, or `refused` with `by`, `message` and Istio's own words).
        #[arg(long)]
        json: bool,
    },
    /// Measure: the whole replay's wall time and each step's apply-to-ACK latency.
    Bench {
        /// Suite file (default: every suite under suites/).
        suites: Vec<PathBuf>,
        /// How many replays.
        #[arg(long, default_value_t = 10)]
        runs: usize,
        #[command(flatten)]
        plane: ControlPlaneArgs,
        #[command(flatten)]
        input: InputArgs,
        /// For the replay of all suites together: how many at once (default as `run`).
        #[arg(long, value_name = "N")]
        jobs: Option<usize>,
    },
}

/// What a suite may read.
#[derive(Clone, Copy, clap::Args)]
struct InputArgs {
    /// Read fixtures from a directory outside the suite's repository (the directory holding
    /// `suites/`). Fixture paths stay confined to the fixtures directory either way.
    #[arg(long)]
    allow_fixtures_outside_repo: bool,
}

impl InputArgs {
    fn options(self) -> LoadOptions {
        LoadOptions {
            fixtures_outside_repo: self.allow_fixtures_outside_repo,
        }
    }
}

/// Which control plane makes the proxies' config (local backend), and which Istio.
#[derive(clap::Args)]
struct ControlPlaneArgs {
    /// local: the control plane that makes the proxies' config.
    #[arg(long, value_enum, default_value_t = ControlPlaneChoice::Builtin)]
    control_plane: ControlPlaneChoice,
    /// The Istio version. local with `--control-plane istiod`: the release of istiod to run
    /// (1.31, the default, or 1.30), built with Go into the cache when it is not found.
    /// kind: the version to install (istioctl of that version must be on PATH or in $ISTIOCTL;
    /// default: the kind backend's).
    #[arg(long, value_name = "VERSION")]
    istio_version: Option<String>,
    /// With `--control-plane istiod`: how istiod is handed the Istio objects: `mcp` (its
    /// xDS config source, served by the harness) or `files` (`--configDir`; istiod 1.31 waits
    /// 250 ms after each change before it reads the directory).
    #[arg(long, value_enum, default_value_t = IstiodConfig::Mcp)]
    istiod_config: IstiodConfig,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum IstiodConfig {
    Mcp,
    Files,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendChoice {
    Local,
    Kind,
    Apiserver,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ControlPlaneChoice {
    /// The harness's own translator (no toolchain needed).
    Builtin,
    /// Real istiod (`pilot-discovery`) of `--istio-version`, with the Envoy paired with it.
    Istiod,
}

/// The control plane chosen and the Envoy it runs with: the builtin one with the harness's Envoy,
/// istiod with its binary (found or built) and the Envoy release paired with it.
fn choose_control_plane(
    plane: &ControlPlaneArgs,
) -> Result<(ControlPlaneKind, crate::envoy::EnvoyBinary), CliError> {
    find_control_plane(plane, true)
}

/// [`choose_control_plane`]; with `install` false, building and installing nothing.
fn find_control_plane(
    plane: &ControlPlaneArgs,
    install: bool,
) -> Result<(ControlPlaneKind, crate::envoy::EnvoyBinary), CliError> {
    let mut notify = |note: &str| eprintln!("{note}");
    let istio_version = plane.istio_version.as_deref();
    match plane.control_plane {
        ControlPlaneChoice::Builtin => {
            if let Some(version) = istio_version {
                return Err(CliError::Usage(format!(
                    "--istio-version {version} applies to --control-plane istiod (or --backend kind)"
                )));
            }
            let envoy = if install {
                envoy()?
            } else {
                Lookup::from_env()
                    .find(&mut notify)?
                    .ok_or_else(|| not_set_up("envoy", "egress-conformance setup"))?
            };
            Ok((ControlPlaneKind::Builtin, envoy))
        }
        ControlPlaneChoice::Istiod => {
            let release = match istio_version {
                Some(version) => {
                    parse_release(version).map_err(|e| CliError::Usage(e.to_string()))?
                }
                None => IstioRelease::default_release(),
            };
            let setup = format!(
                "egress-conformance setup --control-plane istiod --istio-version {}",
                release.name
            );
            let (istiod, envoy) = if install {
                (
                    find_or_build(IstioTool::PilotDiscovery, release, &mut notify)?,
                    Lookup::from_env()
                        .find_or_install_version(release.envoy_version, &mut notify)?,
                )
            } else {
                (
                    ToolLookup::from_env()
                        .find(IstioTool::PilotDiscovery, release, &mut notify)?
                        .ok_or_else(|| {
                            not_set_up(&format!("pilot-discovery {}", release.name), &setup)
                        })?,
                    Lookup::from_env()
                        .find_version(release.envoy_version, &mut notify)?
                        .ok_or_else(|| {
                            not_set_up(&format!("envoy {}", release.envoy_version), &setup)
                        })?,
                )
            };
            Ok((
                ControlPlaneKind::Istiod {
                    release,
                    binary: istiod.path,
                    source: source_choice(plane.istiod_config),
                },
                envoy,
            ))
        }
    }
}

/// What `--backend apiserver` runs with: istiod of `--istio-version` and its Envoy,
/// kube-apiserver, etcd and the release's CRDs; found, or with `install` built or installed.
fn apiserver_spec(
    plane: &ControlPlaneArgs,
    keep: bool,
    install: bool,
) -> Result<ApiserverSpec, CliError> {
    let mut notify = |note: &str| eprintln!("{note}");
    let release = match plane.istio_version.as_deref() {
        Some(version) => parse_release(version).map_err(|e| CliError::Usage(e.to_string()))?,
        None => IstioRelease::default_release(),
    };
    let setup = format!(
        "egress-conformance setup --backend apiserver --istio-version {}",
        release.name
    );
    let kube = KubeLookup::from_env();
    let (istiod, envoy, kube_apiserver, etcd) = if install {
        (
            find_or_build(IstioTool::PilotDiscovery, release, &mut notify)?,
            Lookup::from_env().find_or_install_version(release.envoy_version, &mut notify)?,
            kube.find_or_build(KubeTool::KubeApiserver, &mut notify)?,
            kube.find_or_build(KubeTool::Etcd, &mut notify)?,
        )
    } else {
        let missing = |what: String| not_set_up(&what, &setup);
        (
            ToolLookup::from_env()
                .find(IstioTool::PilotDiscovery, release, &mut notify)?
                .ok_or_else(|| missing(format!("pilot-discovery {}", release.name)))?,
            Lookup::from_env()
                .find_version(release.envoy_version, &mut notify)?
                .ok_or_else(|| missing(format!("envoy {}", release.envoy_version)))?,
            kube.find(KubeTool::KubeApiserver, &mut notify)?
                .ok_or_else(|| {
                    missing(format!(
                        "kube-apiserver {}",
                        KubeTool::KubeApiserver.version()
                    ))
                })?,
            kube.find(KubeTool::Etcd, &mut notify)?
                .ok_or_else(|| missing(format!("etcd {}", KubeTool::Etcd.version())))?,
        )
    };
    let crds = istio_crds(release)?;
    Ok(ApiserverSpec {
        envoy,
        release,
        pilot_discovery: istiod.path,
        kube_apiserver: kube_apiserver.path,
        etcd: etcd.path,
        crds,
        sleep_manifest: PathBuf::from("fixtures/sleep.yaml"),
        keep,
    })
}

/// istiod of `version` (default: the newest release), found or built.
fn istiod_spec(version: Option<&str>, config: IstiodConfig) -> Result<IstiodSpec, CliError> {
    let release = match version {
        Some(v) => parse_release(v).map_err(|e| CliError::Usage(e.to_string()))?,
        None => IstioRelease::default_release(),
    };
    let istiod = find_or_build(IstioTool::PilotDiscovery, release, &mut |n| {
        eprintln!("{n}")
    })?;
    Ok(IstiodSpec {
        release,
        binary: istiod.path,
        source: source_choice(config),
    })
}

fn not_set_up(what: &str, setup: &str) -> CliError {
    CliError::Usage(format!(
        "{what} is not set up (nothing was built or installed); `{setup}` does it"
    ))
}

fn source_choice(config: IstiodConfig) -> SourceChoice {
    match config {
        IstiodConfig::Mcp => SourceChoice::Mcp,
        IstiodConfig::Files => SourceChoice::Files,
    }
}

/// `compare` over `suites`; false when any difference is unlisted.
async fn compare_all(
    suites: &[Suite],
    spec: &IstiodSpec,
    accepted: &Accepted,
    verbose: bool,
) -> Result<bool, CliError> {
    let (mut total, mut identical, mut accepted_only, mut unlisted) = (0, 0, 0, 0);
    for suite in suites {
        println!(
            "== {}: the builtin translator against istiod {} ({})",
            suite.name, spec.release.name, spec.release.description
        );
        let report = compare_suite(suite, spec, accepted, &mut |note| println!("   · {note}"))
            .await
            .map_err(|e| CliError::Compare {
                file: suite.file.display().to_string(),
                message: e.to_string(),
            })?;
        print!("{}", render(&report, verbose));
        for resource in report.resources() {
            total += 1;
            if resource.identical() {
                identical += 1;
            } else if resource.accepted_only() {
                accepted_only += 1;
            } else {
                unlisted += 1;
            }
        }
    }
    println!(
        "== compared {total} resources: {identical} identical, {accepted_only} with accepted differences only, {unlisted} with differences {} does not list",
        accepted.file.display()
    );
    for entry in accepted.unused() {
        println!(
            "   note: {}:{}: accepted a difference none of these suites showed ({})",
            accepted.file.display(),
            entry.line,
            entry.reason
        );
    }
    Ok(unlisted == 0)
}

/// Why a command could not do its work.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0} (run from the repository root, or name a suite)")]
    NoSuites(String),
    #[error(transparent)]
    Suite(#[from] SuiteError),
    #[error("{file}: {source}")]
    Unsupported {
        file: String,
        #[source]
        source: TranslateError,
    },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Envoy(#[from] LocateError),
    #[error(transparent)]
    Istio(#[from] IstioToolError),
    #[error(transparent)]
    Kube(#[from] KubeToolError),
    #[error(transparent)]
    Crds(#[from] CrdError),
    #[error(transparent)]
    Kind(#[from] KindError),
    #[error("{file}: {message}")]
    Compare { file: String, message: String },
    #[error("a manifest was rejected (see above)")]
    Rejected,
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("writing the JUnit report {}: {message}", .file.display())]
    Report { file: PathBuf, message: String },
    #[error("interrupted before the run started")]
    Interrupted,
}

/// The one place an error becomes an exit code.
fn exit_code(error: &CliError) -> u8 {
    match error {
        CliError::NoSuites(_)
        | CliError::Suite(_)
        | CliError::Unsupported { .. }
        | CliError::Usage(_)
        | CliError::Envoy(_)
        | CliError::Istio(_)
        | CliError::Kube(_)
        | CliError::Crds(_)
        | CliError::Kind(_)
        | CliError::Compare { .. }
        | CliError::Rejected
        | CliError::Report { .. }
        | CliError::Session(SessionError::Start {
            source: StartError::Environment { .. },
            ..
        }) => 2,
        CliError::Session(SessionError::Start {
            source: StartError::Mesh { .. },
            ..
        })
        | CliError::Session(SessionError::Abandoned { .. })
        | CliError::Interrupted => 1,
    }
}

/// Ctrl-C and SIGTERM, counted from the first instruction of [`main`] (`crate::signals`). Each
/// call of [`Interrupts::next`] waits for one interrupt nobody has waited for yet, so an
/// interrupt that arrives before anyone waits — even before the runtime starts — is not lost.
#[derive(Clone)]
struct Interrupts {
    seen: watch::Receiver<u64>,
    taken: Rc<Cell<u64>>,
}

impl Interrupts {
    fn install() -> std::io::Result<Interrupts> {
        Ok(Interrupts {
            seen: crate::signals::watch()?,
            taken: Rc::new(Cell::new(0)),
        })
    }

    fn pending(&self) -> bool {
        *self.seen.borrow() > self.taken.get()
    }

    fn next(&self) -> impl Future<Output = ()> + 'static {
        let mut seen = self.seen.clone();
        let taken = Rc::clone(&self.taken);
        async move {
            let wanted = taken.get() + 1;
            if seen.wait_for(|n| *n >= wanted).await.is_err() {
                // The counter is gone only when the runtime stops: never interrupted.
                return std::future::pending().await;
            }
            taken.set(wanted);
        }
    }
}

/// The binary's entry point.
pub fn main() -> ExitCode {
    // First: from here on an interrupt is counted, and ends the run with the documented code.
    let signals = crate::signals::install();
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
        let interrupts = signals
            .and_then(|()| Interrupts::install())
            .map_err(|e| CliError::Usage(format!("installing the signal handlers: {e}")))?;
        let cli = Cli::parse();
        match cli.command {
            Command::Run {
                suites,
                backend,
                plane,
                context,
                cluster_name,
                kind_node_image,
                artifacts,
                keep,
                verbose,
                junit,
                input,
                jobs,
            } => {
                let suites = load_all(suites, input.options())?;
                let mut out = Reports::new(verbose, junit);
                let passed = match backend {
                    BackendChoice::Local => {
                        if context.is_some() || artifacts.is_some() {
                            return Err(CliError::Usage(
                                "--context and --artifacts apply to --backend kind".into(),
                            ));
                        }
                        let (control_plane, envoy) = choose_control_plane(&plane)?;
                        let jobs = if keep {
                            1
                        } else {
                            jobs.unwrap_or(default_jobs(&control_plane, suites.len()))
                        };
                        let spec = LocalSpec::new(envoy, control_plane, keep);
                        run_all(&suites, spec, &interrupts, keep, jobs, &mut out).await
                    }
                    BackendChoice::Kind => {
                        let mut spec = KindOptions::new(PathBuf::from("fixtures/sleep.yaml"));
                        spec.context = context;
                        spec.istio_version = plane
                            .istio_version
                            .unwrap_or_else(|| kind::DEFAULT_ISTIO_VERSION.to_string());
                        spec.cluster_name = cluster_name;
                        spec.kind_node_image = kind_node_image;
                        spec.artifacts = artifacts;
                        spec.keep = keep;
                        if jobs.is_some_and(|n| n > 1) {
                            return Err(CliError::Usage(
                                "--jobs applies to the local backend: one cluster replays one suite at a time".into(),
                            ));
                        }
                        run_all(&suites, spec, &interrupts, keep, 1, &mut out).await
                    }
                    BackendChoice::Apiserver => {
                        if context.is_some() || artifacts.is_some() {
                            return Err(CliError::Usage(
                                "--context and --artifacts apply to --backend kind".into(),
                            ));
                        }
                        let spec = apiserver_spec(&plane, keep, true)?;
                        // Each run has its own API server and istiod: one at a time unless asked.
                        let jobs = if keep { 1 } else { jobs.unwrap_or(1) };
                        run_all(&suites, spec, &interrupts, keep, jobs, &mut out).await
                    }
                };
                out.finish()?;
                passed
            }
            Command::Setup {
                plane,
                backend: BackendChoice::Apiserver,
                no_build,
                ..
            } => {
                let spec = apiserver_spec(&plane, false, !no_build)?;
                println!("envoy {} {}", spec.envoy.version, spec.envoy.path.display());
                println!(
                    "pilot-discovery {} {}",
                    spec.release.name,
                    spec.pilot_discovery.display()
                );
                println!(
                    "kube-apiserver {} {}",
                    KubeTool::KubeApiserver.version(),
                    spec.kube_apiserver.display()
                );
                println!("etcd {} {}", KubeTool::Etcd.version(), spec.etcd.display());
                println!("istio-crds {} {}", spec.release.name, spec.crds.display());
                let api = api_dir(spec.release).map_err(|e| CliError::Usage(e.to_string()))?;
                println!("istio.io/api {} {}", spec.release.api_version, api.display());
                Ok(true)
            }
            Command::Setup {
                plane,
                backend: BackendChoice::Kind,
                cluster_name,
                ..
            } => {
                let version = plane
                    .istio_version
                    .unwrap_or_else(|| kind::DEFAULT_ISTIO_VERSION.to_string());
                let check =
                    kind::check_install(&version, &cluster_name, &mut |n| eprintln!("{n}")).await?;
                if let Some(note) = &check.stand_in {
                    eprintln!("note: {note}");
                }
                println!("istioctl {} {}", check.version, check.istioctl.display());
                println!(
                    "install checked offline: istioctl {}: {} objects, the egress gateway's image {}, \
                     proxyStatsMatcher inclusionPrefixes [{}]",
                    check.args.join(" "),
                    check.manifest.objects,
                    check.manifest.egress_gateway_image,
                    check.manifest.stats_inclusion_prefixes.join(", ")
                );
                Ok(true)
            }
            Command::Setup {
                plane, no_build, ..
            } => {
                let (control_plane, envoy) = find_control_plane(&plane, !no_build)?;
                println!("envoy {} {}", envoy.version, envoy.path.display());
                if let ControlPlaneKind::Istiod {
                    release, binary, ..
                } = &control_plane
                {
                    println!("pilot-discovery {} {}", release.name, binary.display());
                    let api = api_dir(release).map_err(|e| CliError::Usage(e.to_string()))?;
                    println!("istio.io/api {} {}", release.api_version, api.display());
                }
                Ok(true)
            }
            Command::Compare {
                suites,
                istio_version,
                istiod_config,
                accepted,
                verbose,
                input,
            } => {
                let suites = load_all(suites, input.options())?;
                let accepted =
                    Accepted::load(&accepted).map_err(|e| CliError::Usage(e.to_string()))?;
                let spec = istiod_spec(istio_version.as_deref(), istiod_config)?;
                tokio::select! {
                    result = compare_all(&suites, &spec, &accepted, verbose) => result,
                    () = interrupts.next() => Err(CliError::Interrupted),
                }
            }
            Command::Validate {
                files,
                istiod,
                istio_version,
                namespace,
                json,
            } => {
                let mut headless = None;
                let mut name = None;
                if istiod {
                    let spec = istiod_spec(istio_version.as_deref(), IstiodConfig::Mcp)?;
                    name = Some(format!("istiod {}", spec.release.name));
                    let started = Headless::start(
                        &spec,
                        &MeshSettings::default(),
                        &namespace,
                        None,
                        &mut |note| eprintln!("{note}"),
                    )
                    .await
                    .map_err(CliError::Usage)?;
                    headless = Some(started);
                }
                let judged = tokio::select! {
                    judged = verdicts::judge(&files, headless.as_mut(), &namespace) => judged,
                    () = interrupts.next() => Err("interrupted".to_string()),
                };
                if let Some(headless) = headless {
                    headless.shutdown().await.map_err(CliError::Usage)?;
                }
                let judged = judged.map_err(CliError::Usage)?;
                if json {
                    print!("{}", verdicts::render_json(&judged));
                } else {
                    print!("{}", verdicts::render(&judged, name.as_deref()));
                }
                if judged.iter().any(verdicts::FileVerdict::rejected) {
                    Err(CliError::Rejected)
                } else {
                    Ok(true)
                }
            }
            Command::Bench {
                suites,
                runs,
                plane,
                jobs,
                input,
            } => {
                let (control_plane, envoy) = choose_control_plane(&plane)?;
                let suites = load_all(suites, input.options())?;
                let jobs = jobs.unwrap_or(default_jobs(&control_plane, suites.len()));
                bench(suites, runs, jobs, control_plane, envoy, &interrupts).await
            }
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(exit_code(&error))
        }
    }
}

/// The transcript on stdout, and JUnit when asked for.
struct Reports {
    transcript: Transcript<std::io::Stdout>,
    junit: Option<(PathBuf, Junit)>,
}

impl Reports {
    fn new(verbose: bool, junit: Option<PathBuf>) -> Reports {
        Reports {
            transcript: Transcript::new(std::io::stdout(), verbose),
            junit: junit.map(|file| (file, Junit::new())),
        }
    }

    fn finish(self) -> Result<(), CliError> {
        let Some((file, junit)) = self.junit else {
            return Ok(());
        };
        let report = |message: String| CliError::Report {
            file: file.clone(),
            message,
        };
        let xml = junit.to_xml().map_err(|e| report(e.to_string()))?;
        std::fs::write(&file, xml).map_err(|e| report(e.to_string()))
    }
}

impl Reporter for Reports {
    fn report(&mut self, event: &crate::report::Event) {
        self.transcript.report(event);
        if let Some((_, junit)) = &mut self.junit {
            junit.report(event);
        }
    }
}

fn load_all(paths: Vec<PathBuf>, options: LoadOptions) -> Result<Vec<Suite>, CliError> {
    let paths = if paths.is_empty() {
        let dir = PathBuf::from("suites");
        let found =
            discover(&dir).map_err(|e| CliError::NoSuites(format!("{}: {e}", dir.display())))?;
        if found.is_empty() {
            return Err(CliError::NoSuites(format!(
                "{}: no suite files",
                dir.display()
            )));
        }
        found
    } else {
        paths
    };
    let suites: Vec<Suite> = paths
        .iter()
        .map(|p| load_suite(p, options))
        .collect::<Result<_, _>>()?;
    // What Istio accepts with a warning, as kubectl prints it; the run goes on.
    for warning in suites
        .iter()
        .flat_map(|s| s.all_objects())
        .flat_map(|o| &o.warnings)
    {
        eprintln!("warning: {warning}");
    }
    Ok(suites)
}

/// Refuse what the backend cannot run before anything starts.
fn check_all(suites: &[Suite], spec: &impl BackendSpec) -> Result<(), CliError> {
    for suite in suites {
        spec.check(suite).map_err(|source| CliError::Unsupported {
            file: suite.file.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

fn envoy() -> Result<crate::envoy::EnvoyBinary, CliError> {
    Ok(find_or_install(&mut |note| eprintln!("{note}"))?)
}

/// How many suites a local run replays at once by default: a builtin replay mostly waits (on
/// Envoy, curl and the origin), so all of them; an istiod keeps a core busy, so one.
fn default_jobs(control_plane: &ControlPlaneKind, suites: usize) -> usize {
    match control_plane {
        ControlPlaneKind::Builtin => suites.max(1),
        ControlPlaneKind::Istiod { .. } => 1,
    }
}

async fn run_all<S: BackendSpec + Clone + Send + 'static>(
    suites: &[Suite],
    spec: S,
    interrupts: &Interrupts,
    keep: bool,
    jobs: usize,
    reporter: &mut dyn Reporter,
) -> Result<bool, CliError> {
    check_all(suites, &spec)?;
    if jobs <= 1 || suites.len() <= 1 {
        let mut all_passed = true;
        for suite in suites {
            if interrupts.pending() {
                return Err(CliError::Interrupted);
            }
            let outcome =
                session::run(suite, spec.clone(), reporter, || interrupts.next(), keep).await?;
            if outcome.summary.is_none() {
                // Interrupted: the remaining suites are not run.
                return Ok(false);
            }
            all_passed &= outcome.passed();
            if outcome.stopped_by_user {
                // The Ctrl-C that stopped a kept mesh ends the run.
                break;
            }
        }
        return Ok(all_passed);
    }
    // Each replay has its own backend (ports, directory, processes), its own thread and
    // runtime (so that nothing one replay blocks on holds up another), and sees every
    // interrupt. Suites are reported in order: the one whose turn it is as it goes, the others
    // kept until their turn.
    let suites_owned: std::sync::Arc<Vec<Suite>> = std::sync::Arc::new(suites.to_vec());
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (send, mut received) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..jobs.min(suites.len()) {
        let (suites, next, send, spec) = (
            std::sync::Arc::clone(&suites_owned),
            std::sync::Arc::clone(&next),
            send.clone(),
            spec.clone(),
        );
        let (seen, taken) = (interrupts.seen.clone(), interrupts.taken.get());
        tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(suite) = suites.get(i) else { break };
                let mut forward = Forward {
                    suite: i,
                    to: send.clone(),
                };
                let outcome = match &runtime {
                    Err(e) => Some(Err(CliError::Usage(format!(
                        "starting a runtime for {}: {e}",
                        suite.file.display()
                    )))),
                    Ok(runtime) => {
                        let interrupts = Interrupts {
                            seen: seen.clone(),
                            taken: Rc::new(Cell::new(taken)),
                        };
                        (!interrupts.pending()).then(|| {
                            runtime
                                .block_on(session::run(
                                    suite,
                                    spec.clone(),
                                    &mut forward,
                                    || interrupts.next(),
                                    false,
                                ))
                                .map_err(CliError::from)
                        })
                    }
                };
                if send.send(Replayed::Done(i, outcome)).is_err() {
                    break;
                }
            }
        });
    }
    drop(send);
    let mut all_passed = true;
    let mut interrupted = false;
    let mut first_error = None;
    let mut waiting: std::collections::BTreeMap<usize, Vec<crate::report::Event>> =
        std::collections::BTreeMap::new();
    let mut done = std::collections::BTreeMap::new();
    let mut turn = 0;
    while let Some(message) = received.recv().await {
        match message {
            Replayed::Event(i, event) if i == turn => reporter.report(&event),
            Replayed::Event(i, event) => waiting.entry(i).or_default().push(event),
            Replayed::Done(i, outcome) => {
                done.insert(i, outcome);
            }
        }
        while let Some(outcome) = done.remove(&turn) {
            match outcome {
                None => interrupted = true,
                Some(Ok(outcome)) => {
                    interrupted |= outcome.summary.is_none();
                    all_passed &= outcome.passed();
                }
                Some(Err(e)) => {
                    first_error.get_or_insert(e);
                }
            }
            turn += 1;
            for event in waiting.remove(&turn).unwrap_or_default() {
                reporter.report(&event);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(all_passed && !interrupted)
}

/// What a replay running beside others says: an event of suite `i`, or that it has finished.
enum Replayed {
    Event(usize, crate::report::Event),
    Done(usize, Option<Result<SessionOutcome, CliError>>),
}

/// A reporter that hands a replay's events to the one that reports them in order.
struct Forward {
    suite: usize,
    to: tokio::sync::mpsc::UnboundedSender<Replayed>,
}

impl Reporter for Forward {
    fn report(&mut self, event: &crate::report::Event) {
        // The receiver outlives every replay; a send can fail only once the run is over.
        let _ = self.to.send(Replayed::Event(self.suite, event.clone()));
    }
}

async fn bench(
    suites: Vec<Suite>,
    runs: usize,
    jobs: usize,
    control_plane: ControlPlaneKind,
    envoy: crate::envoy::EnvoyBinary,
    interrupts: &Interrupts,
) -> Result<bool, CliError> {
    let control_plane_name = control_plane.name();
    let spec = LocalSpec::new(envoy, control_plane, false);
    check_all(&suites, &spec)?;
    let mut all_passed = true;
    let mut medians = Vec::new();
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
            let outcome: SessionOutcome =
                session::run(suite, spec.clone(), &mut sink, || interrupts.next(), false).await?;
            let Some(summary) = &outcome.summary else {
                return Ok(false);
            };
            if !outcome.passed() {
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
            "{}: {} replays on the local backend ({} control plane)",
            suite.name,
            totals.len(),
            control_plane_name
        );
        println!(
            "  whole replay (start-up and cleanup included): {}",
            stats(&totals)
        );
        medians.push(median(&totals));
        println!(
            "  start-up to baseline ACKed:                   {}",
            stats(&startups)
        );
        if !latencies.is_empty() {
            println!(
                "  apply-to-ACK, every step:                     {}",
                stats(&latencies)
            );
        }
        for (name, values) in &per_stage {
            if !values.is_empty() {
                println!("    {name:<24} {}", stats(values));
            }
        }
    }
    if suites.len() > 1 {
        let sum: Duration = medians.iter().sum();
        println!(
            "all {} suites, one after another (the sum of the medians): {:.1} ms",
            suites.len(),
            sum.as_secs_f64() * 1000.0
        );
        let mut together = Vec::new();
        for _ in 0..runs.max(1) {
            let mut sink = Transcript::new(std::io::sink(), false);
            let started = std::time::Instant::now();
            let passed = run_all(&suites, spec.clone(), interrupts, false, jobs, &mut sink).await?;
            together.push(started.elapsed());
            if !passed {
                all_passed = false;
                eprintln!("a replay of all the suites together failed");
            }
            if interrupts.pending() {
                return Ok(false);
            }
        }
        println!(
            "all {} suites together, {jobs} at once (as `run` replays them): {}",
            suites.len(),
            stats(&together)
        );
    }
    Ok(all_passed)
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    // As `stats` picks it.
    sorted[((sorted.len() - 1) as f64 * 0.5).round() as usize]
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
