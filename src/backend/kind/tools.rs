//! The two command-line tools the kind backend shells out to: `kind` (create and delete the
//! cluster) and `istioctl` (install and uninstall Istio). Everything else goes through the
//! Kubernetes API with `kube`; `kubectl` is never used.
//!
//! The argv of every call is built by a pure function here, and the process runs behind
//! [`Shell`], so tests check what would be run without running it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures::future::BoxFuture;

use super::install_check::{InstallCheckError, InstallManifest, check_install_manifest};

/// Which tool, for errors and hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Kind,
    Istioctl,
}

impl std::fmt::Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tool::Kind => "kind",
            Tool::Istioctl => "istioctl",
        })
    }
}

/// How to get `kind`.
pub const KIND_HINT: &str = "install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation, \
     e.g. `go install sigs.k8s.io/kind@v0.33.0`) and Docker or Podman for it to run on, \
     or pass a kubeconfig context to use an existing cluster";

/// How to get `istioctl` of a given version.
pub fn istioctl_hint(version: &str) -> String {
    format!(
        "download it with `curl -L https://istio.io/downloadIstio | ISTIO_VERSION={version} sh -` \
         and put istio-{version}/bin on PATH, or set ISTIOCTL to the binary"
    )
}

/// What a finished tool printed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolOutput {
    pub success: bool,
    /// `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a program to completion and captures its output. A trait so tests can record the argv
/// instead of running anything.
pub trait Shell: Send + Sync {
    fn run<'a>(
        &'a self,
        program: &'a Path,
        args: &'a [String],
    ) -> BoxFuture<'a, std::io::Result<ToolOutput>>;
}

/// The real thing: a child process, killed if the future is dropped (Ctrl-C mid-install).
#[derive(Debug, Default)]
pub struct SystemShell;

impl Shell for SystemShell {
    fn run<'a>(
        &'a self,
        program: &'a Path,
        args: &'a [String],
    ) -> BoxFuture<'a, std::io::Result<ToolOutput>> {
        Box::pin(async move {
            let output = tokio::process::Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .output()
                .await?;
            Ok(ToolOutput {
                success: output.status.success(),
                code: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{tool} not found: {hint}")]
    Missing { tool: Tool, hint: String },
    #[error("running {tool} {}: {source}", .args.join(" "))]
    Spawn {
        tool: Tool,
        args: Vec<String>,
        source: std::io::Error,
    },
    #[error("{tool} {} failed ({}): {}", .args.join(" "), exit_text(*.code), last_lines(.stderr, .stdout))]
    Failed {
        tool: Tool,
        args: Vec<String>,
        code: Option<i32>,
        stderr: String,
        stdout: String,
    },
    #[error(
        "istioctl at {} is version {found}, the run wants {wanted}: {hint}",
        .path.display()
    )]
    IstioctlVersion {
        path: PathBuf,
        found: String,
        wanted: String,
        hint: String,
    },
    #[error("could not read istioctl's version from `istioctl version --remote=false`: {output:?}")]
    IstioctlVersionUnreadable { output: String },
    #[error("istioctl {}: {source}", .args.join(" "))]
    InstallCheck {
        args: Vec<String>,
        source: InstallCheckError,
    },
}

fn exit_text(code: Option<i32>) -> String {
    code.map_or_else(|| "killed by a signal".into(), |c| format!("exit {c}"))
}

/// The tail of what a failed tool said, where the reason usually is.
fn last_lines(stderr: &str, stdout: &str) -> String {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    let lines: Vec<&str> = text.trim().lines().collect();
    let start = lines.len().saturating_sub(8);
    lines[start..].join("\n")
}

/// `program` as a file in one of `path`'s directories.
pub fn find_on_path(program: &str, path: Option<&OsString>) -> Option<PathBuf> {
    which::which_in(program, Some(path?), "/").ok()
}

/// `kind` on `path`.
pub fn locate_kind(path: Option<&OsString>) -> Result<PathBuf, ToolError> {
    find_on_path("kind", path).ok_or_else(|| ToolError::Missing {
        tool: Tool::Kind,
        hint: KIND_HINT.into(),
    })
}

/// `$ISTIOCTL` when set, else `istioctl` on `path`.
pub fn locate_istioctl(
    env: Option<&OsString>,
    path: Option<&OsString>,
    version: &str,
) -> Result<PathBuf, ToolError> {
    if let Some(file) = env.filter(|v| !v.is_empty()) {
        let file = PathBuf::from(file);
        return if file.is_file() {
            Ok(file)
        } else {
            Err(ToolError::Missing {
                tool: Tool::Istioctl,
                hint: format!(
                    "ISTIOCTL is {} but no such file exists; {}",
                    file.display(),
                    istioctl_hint(version)
                ),
            })
        };
    }
    find_on_path("istioctl", path).ok_or_else(|| ToolError::Missing {
        tool: Tool::Istioctl,
        hint: istioctl_hint(version),
    })
}

pub fn kind_get_clusters_args() -> Vec<String> {
    strings(&["get", "clusters"])
}

pub fn kind_create_args(name: &str, image: &str) -> Vec<String> {
    strings(&[
        "create", "cluster", "--name", name, "--image", image, "--wait", "2m",
    ])
}

pub fn kind_delete_args(name: &str) -> Vec<String> {
    strings(&["delete", "cluster", "--name", name])
}

/// The kubeconfig context `kind create cluster --name N` writes.
pub fn kind_context(name: &str) -> String {
    format!("kind-{name}")
}

pub fn istioctl_version_args() -> Vec<String> {
    strings(&["version", "--remote=false"])
}

/// Envoy stats the suites' traffic checks read. Istio records only a few stats by default
/// (`cluster_manager`, `listener_manager`, `server`, `cluster.xds-grpc`); these add each
/// outbound cluster's, the passthrough's and the blackhole's counters, the outbound TCP proxies'
/// and the outbound HTTP connection managers' (their direct responses: `block_all`), mesh-wide
/// (sidecar and gateway).
pub const STATS_INCLUSION_PREFIXES: [&str; 5] = [
    "cluster.outbound",
    "cluster.PassthroughCluster",
    "cluster.BlackHoleCluster",
    "tcp.outbound",
    "http.outbound",
];

/// Where the install's images come from. Docker Hub is Istio's registry from 1.31 on; 1.30
/// defaults to `registry.istio.io`, which Istio retires in December 2026 (istio.io blog
/// "retirement-of-gcp"), so every version is pointed at Docker Hub, which serves them all.
pub const ISTIO_HUB: &str = "docker.io/istio";

/// `istioctl install` with the demo profile (it has `istio-egressgateway`), images from
/// [`ISTIO_HUB`] and the stats the traffic checks read ([`STATS_INCLUSION_PREFIXES`]).
pub fn istioctl_install_args(context: &str) -> Vec<String> {
    let mut args = strings(&["install", "-y", "--set", "profile=demo"]);
    args.extend(["--set".into(), format!("hub={ISTIO_HUB}")]);
    for (i, prefix) in STATS_INCLUSION_PREFIXES.iter().enumerate() {
        args.push("--set".into());
        args.push(format!(
            "meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[{i}]={prefix}"
        ));
    }
    args.extend(strings(&["--context", context]));
    args
}

/// `istioctl manifest generate` with exactly the flags of [`istioctl_install_args`], less
/// `install -y` (the subcommand and its confirmation): what the install would apply, printed
/// offline (`--context` only names the cluster; without `--cluster-specific` none is contacted).
pub fn istioctl_manifest_args(context: &str) -> Vec<String> {
    let install = istioctl_install_args(context);
    let flags = install
        .strip_prefix(&["install".to_string(), "-y".to_string()][..])
        .unwrap_or(&install);
    strings(&["manifest", "generate"])
        .into_iter()
        .chain(flags.iter().cloned())
        .collect()
}

pub fn istioctl_uninstall_args(context: &str) -> Vec<String> {
    strings(&["uninstall", "--purge", "-y", "--context", context])
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The client version from `istioctl version --remote=false`: older releases print `1.20.3`,
/// newer ones `client version: 1.27.3`.
pub fn parse_istioctl_version(stdout: &str) -> Option<String> {
    stdout.lines().find_map(|line| {
        let token = line.split_whitespace().last()?;
        let token = token.strip_prefix('v').unwrap_or(token);
        let looks_like_version = token.starts_with(|c: char| c.is_ascii_digit())
            && token.contains('.')
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        looks_like_version.then(|| token.to_string())
    })
}

/// The kind cluster names `kind get clusters` lists.
pub fn parse_cluster_list(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("No kind clusters"))
        .map(String::from)
        .collect()
}

/// Runs tools through a [`Shell`], turning failures into [`ToolError`]s.
pub struct Tools {
    shell: Box<dyn Shell>,
}

impl Tools {
    pub fn new(shell: Box<dyn Shell>) -> Tools {
        Tools { shell }
    }

    pub async fn run(
        &self,
        tool: Tool,
        program: &Path,
        args: Vec<String>,
    ) -> Result<ToolOutput, ToolError> {
        let output = self
            .shell
            .run(program, &args)
            .await
            .map_err(|source| ToolError::Spawn {
                tool,
                args: args.clone(),
                source,
            })?;
        if !output.success {
            return Err(ToolError::Failed {
                tool,
                args,
                code: output.code,
                stderr: output.stderr,
                stdout: output.stdout,
            });
        }
        Ok(output)
    }

    /// Generates the install's manifest offline with the istioctl at `program` and checks that
    /// it holds what the suites rely on ([`check_install_manifest`]).
    pub async fn check_install_offline(
        &self,
        program: &Path,
        context: &str,
    ) -> Result<InstallManifest, ToolError> {
        let args = istioctl_manifest_args(context);
        let output = self.run(Tool::Istioctl, program, args.clone()).await?;
        check_install_manifest(&output.stdout)
            .map_err(|source| ToolError::InstallCheck { args, source })
    }

    /// Fails unless the istioctl at `program` is `wanted`: istioctl installs its own version.
    pub async fn check_istioctl_version(
        &self,
        program: &Path,
        wanted: &str,
    ) -> Result<(), ToolError> {
        let output = self
            .run(Tool::Istioctl, program, istioctl_version_args())
            .await?;
        let found = parse_istioctl_version(&output.stdout).ok_or_else(|| {
            ToolError::IstioctlVersionUnreadable {
                output: output.stdout.trim().to_string(),
            }
        })?;
        if found != wanted {
            return Err(ToolError::IstioctlVersion {
                path: program.to_path_buf(),
                found,
                wanted: wanted.to_string(),
                hint: istioctl_hint(wanted),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Every call a [`FakeShell`] got: program and argv.
    pub(crate) type Calls = Arc<Mutex<Vec<(PathBuf, Vec<String>)>>>;

    /// Records every call and answers from a script, in order.
    #[derive(Clone, Default)]
    pub(crate) struct FakeShell {
        pub calls: Calls,
        pub answers: Arc<Mutex<Vec<ToolOutput>>>,
    }

    impl Shell for FakeShell {
        fn run<'a>(
            &'a self,
            program: &'a Path,
            args: &'a [String],
        ) -> BoxFuture<'a, std::io::Result<ToolOutput>> {
            self.calls
                .lock()
                .unwrap()
                .push((program.to_path_buf(), args.to_vec()));
            let answer = {
                let mut answers = self.answers.lock().unwrap();
                if answers.is_empty() {
                    None
                } else {
                    Some(answers.remove(0))
                }
            };
            Box::pin(async move {
                answer.ok_or_else(|| std::io::Error::other("no scripted answer left"))
            })
        }
    }

    fn ok(stdout: &str) -> ToolOutput {
        ToolOutput {
            success: true,
            code: Some(0),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    #[test]
    fn argv_of_every_shell_out() {
        assert_eq!(
            kind_create_args("egress-conformance", "kindest/node:v1.33.1").join(" "),
            "create cluster --name egress-conformance --image kindest/node:v1.33.1 --wait 2m"
        );
        assert_eq!(
            kind_delete_args("egress-conformance").join(" "),
            "delete cluster --name egress-conformance"
        );
        assert_eq!(kind_get_clusters_args().join(" "), "get clusters");
        assert_eq!(
            kind_context("egress-conformance"),
            "kind-egress-conformance"
        );
        assert_eq!(
            istioctl_install_args("kind-x").join(" "),
            "install -y --set profile=demo --set hub=docker.io/istio \
             --set meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[0]=cluster.outbound \
             --set meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[1]=cluster.PassthroughCluster \
             --set meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[2]=cluster.BlackHoleCluster \
             --set meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[3]=tcp.outbound \
             --set meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[4]=http.outbound \
             --context kind-x"
        );
        assert_eq!(
            istioctl_manifest_args("kind-x").join(" "),
            "manifest generate --set profile=demo --set hub=docker.io/istio \
             --set meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[0]=cluster.outbound \
             --set meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[1]=cluster.PassthroughCluster \
             --set meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[2]=cluster.BlackHoleCluster \
             --set meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[3]=tcp.outbound \
             --set meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[4]=http.outbound \
             --context kind-x"
        );
        assert_eq!(
            istioctl_uninstall_args("kind-x").join(" "),
            "uninstall --purge -y --context kind-x"
        );
        assert_eq!(istioctl_version_args().join(" "), "version --remote=false");
    }

    #[test]
    fn istioctl_version_old_and_new_formats() {
        assert_eq!(
            parse_istioctl_version("client version: 1.27.3\n").as_deref(),
            Some("1.27.3")
        );
        assert_eq!(
            parse_istioctl_version("1.20.3\n").as_deref(),
            Some("1.20.3")
        );
        assert_eq!(
            parse_istioctl_version("no running Istio pods\n1.28.0-beta.1").as_deref(),
            Some("1.28.0-beta.1")
        );
        assert_eq!(parse_istioctl_version("error: unknown flag"), None);
    }

    #[test]
    fn cluster_list_ignores_the_empty_message() {
        assert!(parse_cluster_list("No kind clusters found.\n").is_empty());
        assert_eq!(
            parse_cluster_list("egress-conformance\nother\n"),
            vec!["egress-conformance", "other"]
        );
    }

    #[test]
    fn missing_tools_say_how_to_get_them() {
        let empty = tempfile::tempdir().unwrap();
        let path = OsString::from(empty.path());
        let err = locate_kind(Some(&path)).unwrap_err().to_string();
        assert!(err.starts_with("kind not found: install kind"), "{err}");
        let err = locate_istioctl(None, Some(&path), "1.27.3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ISTIO_VERSION=1.27.3"), "{err}");
        let bogus = OsString::from("/nonexistent/istioctl");
        let err = locate_istioctl(Some(&bogus), Some(&path), "1.27.3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ISTIOCTL is /nonexistent/istioctl"), "{err}");
    }

    #[test]
    fn tools_are_found_on_path_and_istioctl_env_wins() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for tool in ["kind", "istioctl"] {
            let file = dir.path().join(tool);
            std::fs::write(&file, "").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        // A file that cannot be run is no tool.
        let unrunnable = tempfile::tempdir().unwrap();
        std::fs::write(unrunnable.path().join("kind"), "").unwrap();
        assert!(locate_kind(Some(&OsString::from(unrunnable.path()))).is_err());
        let other = dir.path().join("my-istioctl");
        std::fs::write(&other, "").unwrap();
        let path = OsString::from(dir.path());
        assert_eq!(locate_kind(Some(&path)).unwrap(), dir.path().join("kind"));
        assert_eq!(
            locate_istioctl(None, Some(&path), "1.27.3").unwrap(),
            dir.path().join("istioctl")
        );
        let env = OsString::from(&other);
        assert_eq!(
            locate_istioctl(Some(&env), Some(&path), "1.27.3").unwrap(),
            other
        );
    }

    #[tokio::test]
    async fn istioctl_of_another_version_is_refused_with_a_hint() {
        let shell = FakeShell::default();
        shell
            .answers
            .lock()
            .unwrap()
            .push(ok("client version: 1.26.0\n"));
        let tools = Tools::new(Box::new(shell.clone()));
        let err = tools
            .check_istioctl_version(Path::new("/bin/istioctl"), "1.27.3")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("version 1.26.0, the run wants 1.27.3"),
            "{err}"
        );
        assert!(err.contains("ISTIO_VERSION=1.27.3"), "{err}");
        let calls = shell.calls.lock().unwrap();
        assert_eq!(calls[0].0, Path::new("/bin/istioctl"));
        assert_eq!(calls[0].1, istioctl_version_args());
    }

    #[tokio::test]
    async fn the_offline_install_check_names_the_flags_and_what_is_missing() {
        let shell = FakeShell::default();
        shell.answers.lock().unwrap().push(ok(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: istiod, namespace: istio-system}\n",
        ));
        let tools = Tools::new(Box::new(shell.clone()));
        let err = tools
            .check_install_offline(Path::new("/bin/istioctl"), "kind-x")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "istioctl manifest generate --set profile=demo --set hub=docker.io/istio "
            ),
            "{err}"
        );
        assert!(
            err.ends_with("no Deployment istio-egressgateway in istio-system (the tutorial's egress gateway); its Deployments: [istio-system/istiod]"),
            "{err}"
        );
        assert_eq!(
            shell.calls.lock().unwrap()[0].1,
            istioctl_manifest_args("kind-x")
        );
    }

    #[tokio::test]
    async fn a_failing_tool_reports_its_argv_and_stderr() {
        let shell = FakeShell::default();
        shell.answers.lock().unwrap().push(ToolOutput {
            success: false,
            code: Some(1),
            stdout: String::new(),
            stderr: "ERROR: failed to create cluster: node(s) already exist\n".into(),
        });
        let tools = Tools::new(Box::new(shell));
        let err = tools
            .run(
                Tool::Kind,
                Path::new("kind"),
                kind_create_args("x", "kindest/node:v1.33.1"),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("kind create cluster --name x"), "{err}");
        assert!(
            err.contains("(exit 1): ERROR: failed to create cluster"),
            "{err}"
        );
    }
}
