//! The Kubernetes API server the apiserver backend runs, and finding or building its two
//! binaries, `kube-apiserver` and `etcd`, as [`crate::istio_release`] does for istiod; and the
//! Istio CRDs it is given, from the `istio.io/istio` module of the Istio release.
//!
//! ## The versions
//! One pin each: Kubernetes [`KUBERNETES_VERSION`] (the newest 1.36 the Go module proxy serves;
//! both supported Istio releases support 1.36, and 1.31's own client-go is 0.36) and etcd
//! [`ETCD_VERSION`] (the newest 3.6; Kubernetes 1.36 is tested with 3.6, its kubeadm defaulting
//! to 3.6.8).
//!
//! ## Finding a binary
//! [`KubeLookup::find_or_build`] looks, in order, at the tool's variable (`KUBE_APISERVER_BIN`,
//! `ETCD_BIN`), the tool on `PATH`, and the harness's cache
//! (`<cache>/kubernetes-v1.36.5/bin/kube-apiserver`, `<cache>/etcd-v3.6.16/bin/etcd`, the cache
//! root being Envoy's). A binary says its version (`--version`): one of another version is used
//! with a warning when the variable names it, skipped with a note on `PATH`. When none is found
//! and `go` is on `PATH`, it builds the tool once into the cache; otherwise the error says how.
//!
//! ## Building
//! Neither can be had with `go install pkg@version`: `k8s.io/kubernetes` requires its staging
//! modules at `v0.0.0` (replaced by `./staging/…` in its own `go.mod`), and etcd's server module
//! replaces its siblings with `../…`. So, as for Istio, a throwaway wrapper module requires the
//! tool's module and, for Kubernetes, replaces each staging module with its published `v0.36.5`
//! ([`KubeTool::go_mod`]); then `go list -mod=mod -deps` and `go build -mod=mod -v` of the tool's
//! own main package in that module (`k8s.io/kubernetes/cmd/kube-apiserver`,
//! `go.etcd.io/etcd/server/v3`), `CGO_ENABLED=0`, in a staging directory renamed into place.
//! kube-apiserver is stamped with its version (`k8s.io/component-base/version`), which clients
//! and istiod read from `/version`. The go plumbing (streaming its output, progress) is
//! `istio_release`'s. Written by hand because no crate drives a Go build.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use thiserror::Error;

use crate::envoy::locate::{cache_dir, is_executable_file};
use crate::istio_release::{
    IstioRelease, PROGRESS_EVERY_MODULES, PROGRESS_EVERY_PACKAGES, Progress, Streamed, describe,
    human, is_package_line, stream,
};

/// The Kubernetes release of the API server.
pub(crate) const KUBERNETES_VERSION: &str = "v1.36.5";
/// The version the staging modules of [`KUBERNETES_VERSION`] are published at.
const STAGING_VERSION: &str = "v0.36.5";
/// When `k8s.io/kubernetes@v1.36.5` was tagged (the proxy's `.info` Time), for `/version`.
const KUBERNETES_BUILD_DATE: &str = "2026-09-23T17:07:00Z";
pub(crate) const ETCD_VERSION: &str = "v3.6.16";
/// The `go` directive of both modules: the oldest Go that builds them.
const GO_VERSION: &str = "1.26.0";

/// `k8s.io/kubernetes@v1.36.5`'s `=> ./staging/…` replacements, less the two samples it does not
/// require and the proxy does not serve at v0.36.5 (`sample-cli-plugin`, `sample-controller`).
const STAGING_MODULES: [&str; 31] = [
    "api",
    "apiextensions-apiserver",
    "apimachinery",
    "apiserver",
    "cli-runtime",
    "client-go",
    "cloud-provider",
    "cluster-bootstrap",
    "code-generator",
    "component-base",
    "component-helpers",
    "controller-manager",
    "cri-api",
    "cri-client",
    "cri-streaming",
    "csi-translation-lib",
    "dynamic-resource-allocation",
    "endpointslice",
    "externaljwt",
    "kms",
    "kube-aggregator",
    "kube-controller-manager",
    "kube-proxy",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "metrics",
    "mount-utils",
    "pod-security-admission",
    "sample-apiserver",
    "streaming",
];

/// A binary of the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum KubeTool {
    KubeApiserver,
    Etcd,
}

impl KubeTool {
    #[cfg(test)]
    pub const ALL: [KubeTool; 2] = [KubeTool::KubeApiserver, KubeTool::Etcd];

    pub fn name(self) -> &'static str {
        match self {
            KubeTool::KubeApiserver => "kube-apiserver",
            KubeTool::Etcd => "etcd",
        }
    }

    /// The variable that names a binary of it.
    pub fn env_var(self) -> &'static str {
        match self {
            KubeTool::KubeApiserver => "KUBE_APISERVER_BIN",
            KubeTool::Etcd => "ETCD_BIN",
        }
    }

    /// The version the harness runs, `v1.36.5`.
    pub fn version(self) -> &'static str {
        match self {
            KubeTool::KubeApiserver => KUBERNETES_VERSION,
            KubeTool::Etcd => ETCD_VERSION,
        }
    }

    /// The module that holds it, at [`KubeTool::version`].
    fn module(self) -> &'static str {
        match self {
            KubeTool::KubeApiserver => "k8s.io/kubernetes",
            KubeTool::Etcd => "go.etcd.io/etcd/server/v3",
        }
    }

    /// Its main package.
    fn package(self) -> &'static str {
        match self {
            KubeTool::KubeApiserver => "k8s.io/kubernetes/cmd/kube-apiserver",
            KubeTool::Etcd => "go.etcd.io/etcd/server/v3",
        }
    }

    /// `<cache>/<this>/bin/<tool>`: `kubernetes-v1.36.5`, `etcd-v3.6.16`.
    fn cache_subdir(self) -> String {
        match self {
            KubeTool::KubeApiserver => format!("kubernetes-{KUBERNETES_VERSION}"),
            KubeTool::Etcd => format!("etcd-{ETCD_VERSION}"),
        }
    }

    /// The wrapper module's `go.mod` that builds it.
    pub fn go_mod(self) -> String {
        let mut text = format!(
            "// Written by egress-conformance to build {tool} {version}; thrown away after.\n\
             module egress-conformance/{subdir}\n\n\
             go {GO_VERSION}\n\n\
             require {module} {version}\n",
            tool = self.name(),
            version = self.version(),
            subdir = self.cache_subdir(),
            module = self.module(),
        );
        if self == KubeTool::KubeApiserver {
            text.push_str(
                "\n// k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with\n\
                 // ./staging/...; these are the same modules as published for this release.\n\
                 replace (\n",
            );
            for m in STAGING_MODULES {
                text.push_str(&format!("\tk8s.io/{m} => k8s.io/{m} {STAGING_VERSION}\n"));
            }
            text.push_str(")\n");
        }
        text
    }

    /// `-ldflags`: kube-apiserver gets its version stamped in, as Kubernetes' release does.
    fn ldflags(self) -> String {
        match self {
            KubeTool::KubeApiserver => {
                let (major, minor) = major_minor(KUBERNETES_VERSION);
                [
                    ("gitVersion", KUBERNETES_VERSION),
                    ("gitMajor", major),
                    ("gitMinor", minor),
                    ("gitTreeState", "clean"),
                    ("buildDate", KUBERNETES_BUILD_DATE),
                ]
                .iter()
                .map(|(k, v)| format!("-X k8s.io/component-base/version.{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
            }
            KubeTool::Etcd => String::new(),
        }
    }

    /// What a build costs, measured on 2 cores, for the notice that one starts.
    fn build_cost(self) -> &'static str {
        match self {
            KubeTool::KubeApiserver => {
                "8-12 minutes on 2 cores with Go's build cache cold, under a minute warm; ~100 MB"
            }
            KubeTool::Etcd => {
                "1-3 minutes on 2 cores with Go's build cache cold, seconds warm; ~27 MB"
            }
        }
    }

    /// Where a release build of it can be had otherwise, for the error that says how.
    fn elsewhere(self) -> String {
        match self {
            KubeTool::KubeApiserver => format!(
                "bin/kube-apiserver of https://dl.k8s.io/{KUBERNETES_VERSION}/kubernetes-server-linux-amd64.tar.gz"
            ),
            KubeTool::Etcd => format!(
                "etcd of https://github.com/etcd-io/etcd/releases/download/{ETCD_VERSION}/etcd-{ETCD_VERSION}-linux-amd64.tar.gz"
            ),
        }
    }

    /// The version in what `<tool> --version` printed: `Kubernetes v1.36.5`, `etcd Version:
    /// 3.6.16`, both as `v1.36.5` / `v3.6.16`.
    fn parse_version(self, output: &str) -> Option<String> {
        let prefix = match self {
            KubeTool::KubeApiserver => "Kubernetes ",
            KubeTool::Etcd => "etcd Version: ",
        };
        let said = output
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))?
            .trim();
        let said = said.strip_prefix('v').unwrap_or(said);
        (!said.is_empty()).then(|| format!("v{said}"))
    }
}

impl fmt::Display for KubeTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn major_minor(version: &str) -> (&str, &str) {
    let mut parts = version.trim_start_matches('v').split('.');
    (parts.next().unwrap_or(""), parts.next().unwrap_or(""))
}

/// Where a binary came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    EnvVar(&'static str),
    Path,
    Cache,
    Built,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::EnvVar(var) => f.write_str(var),
            Origin::Path => f.write_str("PATH"),
            Origin::Cache => f.write_str("the harness's cache"),
            Origin::Built => f.write_str("built into the harness's cache"),
        }
    }
}

/// A binary that answered `--version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KubeBinary {
    pub tool: KubeTool,
    pub path: PathBuf,
    pub origin: Origin,
    /// What `--version` said, `v1.36.5`.
    pub version: String,
}

#[derive(Debug, Error)]
pub(crate) enum KubeToolError {
    #[error("{var} points to {path}, which does not exist")]
    EnvMissing { var: &'static str, path: PathBuf },
    #[error("{var} points to {path}, which is not an executable file")]
    EnvNotExecutable { var: &'static str, path: PathBuf },
    #[error("cannot run `{} --version`", .path.display())]
    Run {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{} --version` failed ({status}) or printed no version: {output}", .path.display())]
    Version {
        path: PathBuf,
        status: ExitStatus,
        output: String,
    },
    #[error("{tool} {} not found and not buildable: {reason}\n{}", .tool.version(), how_to_get(*.tool))]
    Unavailable { tool: KubeTool, reason: String },
    #[error("building {tool} {}: cannot {action} {}", .tool.version(), .path.display())]
    BuildIo {
        tool: KubeTool,
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("building {tool} {} failed: `{command}` ({status}); go said (last lines):\n{output}", .tool.version())]
    BuildFailed {
        tool: KubeTool,
        command: String,
        status: ExitStatus,
        output: String,
    },
}

fn how_to_get(tool: KubeTool) -> String {
    format!(
        "to get {tool} {version}, do one of:\n  \
         - install Go >= {GO_VERSION} (https://go.dev/dl/) so that `go` is on PATH: the harness then \
         builds it once into <cache>/{subdir}/bin ({cost});\n  \
         - set {var} to a {tool} {version}, e.g. {elsewhere};\n  \
         - put a {tool} {version} on PATH.",
        version = tool.version(),
        subdir = tool.cache_subdir(),
        cost = tool.build_cost(),
        var = tool.env_var(),
        elsewhere = tool.elsewhere(),
    )
}

/// Everything the look-up depends on, passed in explicitly.
#[derive(Debug, Clone)]
pub(crate) struct KubeLookup {
    /// `$KUBE_APISERVER_BIN`; empty counts as unset.
    pub kube_apiserver_bin: Option<OsString>,
    /// `$ETCD_BIN`; empty counts as unset.
    pub etcd_bin: Option<OsString>,
    /// `$PATH`, searched for the tool and for `go`, and given to `go`.
    pub path: Option<OsString>,
    /// The harness's cache directory.
    pub cache: Option<PathBuf>,
}

impl KubeLookup {
    /// The inputs as the process environment gives them.
    pub fn from_env() -> Self {
        use std::env::var_os;
        KubeLookup {
            kube_apiserver_bin: var_os(KubeTool::KubeApiserver.env_var()),
            etcd_bin: var_os(KubeTool::Etcd.env_var()),
            path: var_os("PATH"),
            cache: cache_dir(
                var_os("EGRESS_CONFORMANCE_CACHE"),
                var_os("XDG_CACHE_HOME"),
                var_os("HOME"),
            ),
        }
    }

    fn env_value(&self, tool: KubeTool) -> Option<&OsString> {
        match tool {
            KubeTool::KubeApiserver => self.kube_apiserver_bin.as_ref(),
            KubeTool::Etcd => self.etcd_bin.as_ref(),
        }
        .filter(|v| !v.is_empty())
    }

    /// An existing binary, building nothing: `Ok(None)` when there is none. A broken variable
    /// or a binary that does not say its version is an error, never silently replaced.
    pub fn find(
        &self,
        tool: KubeTool,
        notify: &mut dyn FnMut(&str),
    ) -> Result<Option<KubeBinary>, KubeToolError> {
        if let Some(value) = self.env_value(tool) {
            let var = tool.env_var();
            let path = PathBuf::from(value);
            if !path.exists() {
                return Err(KubeToolError::EnvMissing { var, path });
            }
            if !is_executable_file(&path) {
                return Err(KubeToolError::EnvNotExecutable { var, path });
            }
            let found = probe(tool, path, Origin::EnvVar(var))?;
            if found.version != tool.version() {
                notify(&format!(
                    "warning: {tool} at {} (from {var}) says it is {}, not {}; using it anyway",
                    found.path.display(),
                    found.version,
                    tool.version()
                ));
            }
            return Ok(Some(found));
        }
        if let Ok(path) = which::which_in(tool.name(), self.path.as_deref(), "/") {
            let found = probe(tool, path, Origin::Path)?;
            if found.version == tool.version() {
                return Ok(Some(found));
            }
            notify(&format!(
                "note: skipping {tool} at {} (from PATH): it says it is {}, and {} is wanted",
                found.path.display(),
                found.version,
                tool.version()
            ));
        }
        if let Some(cache) = &self.cache {
            let path = bin_path(cache, tool);
            if is_executable_file(&path) {
                return probe(tool, path, Origin::Cache).map(Some);
            }
        }
        Ok(None)
    }

    /// [`KubeLookup::find`], else builds the tool into the cache with the `go` on `PATH`. Blocks
    /// for the whole build (minutes): call it off the runtime.
    pub fn find_or_build(
        &self,
        tool: KubeTool,
        notify: &mut dyn FnMut(&str),
    ) -> Result<KubeBinary, KubeToolError> {
        if let Some(found) = self.find(tool, notify)? {
            return Ok(found);
        }
        let unavailable = |reason: &str| KubeToolError::Unavailable {
            tool,
            reason: reason.to_owned(),
        };
        let Ok(go) = which::which_in("go", self.path.as_deref(), "/") else {
            return Err(unavailable(
                "it is not on PATH, in the harness's cache or in its variable, and there is no `go` on PATH to build it",
            ));
        };
        let Some(cache) = &self.cache else {
            return Err(unavailable(
                "no cache directory to build into (set EGRESS_CONFORMANCE_CACHE, XDG_CACHE_HOME or HOME)",
            ));
        };
        let build = Build {
            tool,
            go: &go,
            path: self.path.as_deref(),
        };
        let path = build.run(cache, notify)?;
        probe(tool, path, Origin::Built)
    }
}

fn bin_path(cache: &Path, tool: KubeTool) -> PathBuf {
    cache
        .join(tool.cache_subdir())
        .join("bin")
        .join(tool.name())
}

/// Runs `<tool> --version` and reads the version it names.
fn probe(tool: KubeTool, path: PathBuf, origin: Origin) -> Result<KubeBinary, KubeToolError> {
    let output = Command::new(&path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| KubeToolError::Run {
            path: path.clone(),
            source,
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    match tool.parse_version(&text) {
        Some(version) if output.status.success() => Ok(KubeBinary {
            tool,
            path,
            origin,
            version,
        }),
        _ => Err(KubeToolError::Version {
            path,
            status: output.status,
            output: text.trim().to_owned(),
        }),
    }
}

/// One build of one tool.
struct Build<'a> {
    tool: KubeTool,
    go: &'a Path,
    path: Option<&'a std::ffi::OsStr>,
}

impl Build<'_> {
    fn io(
        &self,
        action: &'static str,
        path: &Path,
    ) -> impl FnOnce(std::io::Error) -> KubeToolError {
        let (tool, path) = (self.tool, path.to_owned());
        move |source| KubeToolError::BuildIo {
            tool,
            action,
            path,
            source,
        }
    }

    fn go_command(&self, dir: &Path) -> Command {
        let mut go = Command::new(self.go);
        go.current_dir(dir)
            .env("CGO_ENABLED", "0")
            .env("GOWORK", "off")
            .stdin(Stdio::null());
        if let Some(path) = self.path {
            go.env("PATH", path);
        }
        go
    }

    fn check(&self, cmd: &Command, out: &Streamed) -> Result<(), KubeToolError> {
        if out.status.success() {
            return Ok(());
        }
        Err(KubeToolError::BuildFailed {
            tool: self.tool,
            command: describe(cmd),
            status: out.status,
            output: out.tail.clone(),
        })
    }

    /// Builds the tool in a staging directory under `<cache>/<subdir>` and renames it to
    /// `bin/<tool>` there.
    fn run(&self, cache: &Path, notify: &mut dyn FnMut(&str)) -> Result<PathBuf, KubeToolError> {
        let tool = self.tool;
        let label = format!("{tool} {}", tool.version());
        let started = Instant::now();
        let dir = cache.join(tool.cache_subdir());
        let bin_dir = dir.join("bin");
        let target = bin_dir.join(tool.name());
        fs::create_dir_all(&bin_dir).map_err(self.io("create", &bin_dir))?;
        let staging = tempfile::Builder::new()
            .prefix(&format!(".build-{tool}.partial-"))
            .tempdir_in(&dir)
            .map_err(self.io("create a staging directory in", &dir))?;
        let go_mod = staging.path().join("go.mod");
        fs::write(&go_mod, tool.go_mod()).map_err(self.io("write", &go_mod))?;
        let mut version = self.go_command(staging.path());
        version.args(["env", "GOVERSION"]);
        let said = stream(&mut version, &mut |_| {}).map_err(self.io("run", self.go))?;
        self.check(&version, &said)?;
        notify(&format!(
            "{label} not found; building it with {} ({}) into {}, once ({})",
            said.stdout_first.trim(),
            self.go.display(),
            target.display(),
            tool.build_cost()
        ));

        let mut downloads = Progress::new("modules downloaded", PROGRESS_EVERY_MODULES, None);
        let mut list = self.go_command(staging.path());
        list.args([
            "list",
            "-mod=mod",
            "-deps",
            "-f",
            "{{.ImportPath}}",
            tool.package(),
        ]);
        let listed = stream(&mut list, &mut |line| {
            if line.starts_with("go: downloading ")
                && let Some(p) = downloads.tick(started.elapsed())
            {
                notify(&format!("building {label}: {p}"));
            }
        })
        .map_err(self.io("run", self.go))?;
        self.check(&list, &listed)?;
        notify(&format!(
            "building {label}: modules ready, {} packages to compile or take from Go's build cache, then link ({})",
            listed.stdout_lines,
            human(started.elapsed())
        ));

        let mut compiled = Progress::new(
            "packages compiled",
            PROGRESS_EVERY_PACKAGES,
            Some(listed.stdout_lines),
        );
        let output = staging.path().join(tool.name());
        let mut build = self.go_command(staging.path());
        build.args(["build", "-mod=mod", "-trimpath", "-buildvcs=false", "-v"]);
        let ldflags = tool.ldflags();
        if !ldflags.is_empty() {
            build.arg("-ldflags").arg(ldflags);
        }
        build.arg("-o").arg(&output).arg(tool.package());
        let built = stream(&mut build, &mut |line| {
            if !is_package_line(line) {
                return;
            }
            let elapsed = started.elapsed();
            if line == tool.package() {
                compiled.count += 1;
                notify(&format!(
                    "building {label}: {} packages compiled, linking ({})",
                    compiled.count,
                    human(elapsed)
                ));
            } else if let Some(p) = compiled.tick(elapsed) {
                notify(&format!("building {label}: {p}"));
            }
        })
        .map_err(self.io("run", self.go))?;
        self.check(&build, &built)?;
        if !is_executable_file(&output) {
            return Err(KubeToolError::BuildFailed {
                tool,
                command: describe(&build),
                status: built.status,
                output: format!(
                    "{} is missing or not executable\n{}",
                    output.display(),
                    built.tail
                ),
            });
        }
        fs::rename(&output, &target).map_err(self.io("move the binary to", &target))?;
        notify(&format!(
            "built {label} in {} ({} of its {} packages compiled, the rest from Go's build cache): {}",
            human(started.elapsed()),
            compiled.count,
            listed.stdout_lines,
            target.display()
        ));
        Ok(target)
    }
}

// ---------------------------------------------------------------------------------------------
// The Istio CRDs.

/// Where the CRDs sit in the `istio.io/istio` module.
const CRD_FILE: &str = "manifests/charts/base/files/crd-all.gen.yaml";

#[derive(Debug, Error)]
pub(crate) enum CrdError {
    #[error(
        "Istio {release}'s CRDs ({CRD_FILE} of istio.io/istio@{version}) are not in Go's module cache{} and there is no `go` to download them: `go mod download istio.io/istio@{version}` does",
        .looked.as_ref().map(|d| format!(" ({})", d.display())).unwrap_or_default()
    )]
    Missing {
        release: &'static str,
        version: &'static str,
        looked: Option<PathBuf>,
    },
    #[error("downloading istio.io/istio@{version} for its CRDs: {message}")]
    Download {
        version: &'static str,
        message: String,
    },
    #[error("{} is missing from the downloaded istio.io/istio@{version}", .file.display())]
    NotInModule {
        version: &'static str,
        file: PathBuf,
    },
}

/// The file of `release`'s Istio CRDs (`crd-all.gen.yaml`) in Go's module cache, downloading the
/// module when it is not there and Go is (building istiod has put it there already).
pub(crate) fn istio_crds(release: &'static IstioRelease) -> Result<PathBuf, CrdError> {
    let version = release.recipe.version;
    let module = release.recipe.module;
    let cache = go_module_cache();
    if let Some(cache) = &cache {
        let file = cache.join(format!("{module}@{version}")).join(CRD_FILE);
        if file.is_file() {
            return Ok(file);
        }
    }
    let Ok(go) = which::which("go") else {
        return Err(CrdError::Missing {
            release: release.name,
            version,
            looked: cache,
        });
    };
    let download = |message: String| CrdError::Download { version, message };
    // Outside any module, so no go.mod of the user's is read or written.
    let output = Command::new(go)
        .args(["mod", "download", "-json", &format!("{module}@{version}")])
        .current_dir(std::env::temp_dir())
        .env("GO111MODULE", "on")
        .env("GOWORK", "off")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| download(e.to_string()))?;
    let answer: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    let dir = match answer["Dir"].as_str() {
        Some(dir) if output.status.success() => PathBuf::from(dir),
        _ => {
            return Err(download(
                answer["Error"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| last_lines(&String::from_utf8_lossy(&output.stderr), 5)),
            ));
        }
    };
    let file = dir.join(CRD_FILE);
    if file.is_file() {
        Ok(file)
    } else {
        Err(CrdError::NotInModule { version, file })
    }
}

/// `$GOMODCACHE`, else `$GOPATH/pkg/mod`, else `~/go/pkg/mod`, as Go itself decides.
fn go_module_cache() -> Option<PathBuf> {
    let set = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = set("GOMODCACHE") {
        return Some(PathBuf::from(dir));
    }
    if let Some(path) = set("GOPATH") {
        let first = std::env::split_paths(&path).next()?;
        return Some(first.join("pkg/mod"));
    }
    set("HOME").map(|home| PathBuf::from(home).join("go/pkg/mod"))
}

fn last_lines(text: &str, n: usize) -> String {
    let mut lines: VecDeque<&str> = VecDeque::new();
    for line in text.trim().lines() {
        if lines.len() == n {
            lines.pop_front();
        }
        lines.push_back(line);
    }
    Vec::from(lines).join("\n")
}

/// The binaries for tests, found or built exactly as a run finds them (once per test process),
/// so that `cargo test` on a machine with Go exercises the real API server. `None`, with the
/// reason printed, where they cannot be had (no Go, or `EGRESS_CONFORMANCE_SKIP_KUBE_TESTS`).
#[cfg(test)]
pub(crate) fn binaries_for_tests() -> Option<(KubeBinary, KubeBinary)> {
    use std::sync::OnceLock;
    static FOUND: OnceLock<Result<(KubeBinary, KubeBinary), String>> = OnceLock::new();
    if std::env::var_os("EGRESS_CONFORMANCE_SKIP_KUBE_TESTS").is_some() {
        eprintln!("skipped: EGRESS_CONFORMANCE_SKIP_KUBE_TESTS is set");
        return None;
    }
    let found = FOUND.get_or_init(|| {
        let lookup = KubeLookup::from_env();
        let mut notify = |note: &str| eprintln!("{note}");
        let get = |tool, notify: &mut dyn FnMut(&str)| match lookup.find_or_build(tool, notify) {
            Ok(found) => Ok(found),
            Err(e @ KubeToolError::Unavailable { .. }) => Err(e.to_string()),
            Err(e) => panic!("{tool} for tests: {e}"),
        };
        Ok((
            get(KubeTool::KubeApiserver, &mut notify)?,
            get(KubeTool::Etcd, &mut notify)?,
        ))
    });
    match found {
        Ok(pair) => Some(pair.clone()),
        Err(reason) => {
            eprintln!("skipped: {reason}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::locate::write_script;

    fn fake_tool(path: &Path, said: &str) {
        write_script(path, &format!("#!/bin/sh\necho '{said}'\n"));
    }

    fn empty_lookup(dir: &Path) -> KubeLookup {
        KubeLookup {
            kube_apiserver_bin: None,
            etcd_bin: None,
            path: Some(dir.join("empty-bin").into_os_string()),
            cache: Some(dir.join("cache")),
        }
    }

    #[test]
    fn the_wrapper_module_of_kube_apiserver_replaces_every_staging_module() {
        let text = KubeTool::KubeApiserver.go_mod();
        assert!(
            text.contains("require k8s.io/kubernetes v1.36.5\n"),
            "{text}"
        );
        assert!(
            text.contains("\tk8s.io/client-go => k8s.io/client-go v0.36.5\n"),
            "{text}"
        );
        assert_eq!(text.matches(" => ").count(), 31);
        assert!(!text.contains("sample-controller"), "{text}");
        let etcd = KubeTool::Etcd.go_mod();
        assert!(
            etcd.contains("require go.etcd.io/etcd/server/v3 v3.6.16\n"),
            "{etcd}"
        );
        assert!(!etcd.contains("replace"), "{etcd}");
    }

    #[test]
    fn kube_apiserver_is_stamped_with_its_version() {
        let flags = KubeTool::KubeApiserver.ldflags();
        assert!(
            flags.contains("-X k8s.io/component-base/version.gitVersion=v1.36.5"),
            "{flags}"
        );
        assert!(
            flags.contains("version.gitMajor=1 ") && flags.contains("version.gitMinor=36 "),
            "{flags}"
        );
        assert_eq!(KubeTool::Etcd.ldflags(), "");
    }

    #[test]
    fn versions_are_read_as_each_tool_prints_them() {
        assert_eq!(
            KubeTool::KubeApiserver
                .parse_version("Kubernetes v1.36.5\n")
                .as_deref(),
            Some("v1.36.5")
        );
        assert_eq!(
            KubeTool::Etcd
                .parse_version("etcd Version: 3.6.16\nGit SHA: GitNotFound\nGo Version: go1.26.8\n")
                .as_deref(),
            Some("v3.6.16")
        );
        assert_eq!(KubeTool::Etcd.parse_version("Kubernetes v1.36.5"), None);
        assert_eq!(KubeTool::KubeApiserver.parse_version("unknown flag"), None);
    }

    #[test]
    fn the_variable_wins_and_a_wrong_version_on_path_is_skipped_for_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let lookup = empty_lookup(dir.path());
        assert!(lookup.find(KubeTool::Etcd, &mut |_| {}).unwrap().is_none());

        // On PATH, but another version: skipped, and the cache's is used.
        let on_path = dir.path().join("empty-bin/etcd");
        fake_tool(&on_path, "etcd Version: 3.5.24");
        let cached = bin_path(&dir.path().join("cache"), KubeTool::Etcd);
        fake_tool(&cached, "etcd Version: 3.6.16");
        let mut notes = Vec::new();
        let found = lookup
            .find(KubeTool::Etcd, &mut |n| notes.push(n.to_owned()))
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.origin, found.path.clone()),
            (Origin::Cache, cached.clone())
        );
        assert!(
            notes[0].starts_with("note: skipping etcd at ") && notes[0].contains("v3.5.24"),
            "{notes:?}"
        );

        // The variable wins, even of another version (with a warning).
        let mine = dir.path().join("mine/etcd");
        fake_tool(&mine, "etcd Version: 3.6.8");
        let lookup = KubeLookup {
            etcd_bin: Some(mine.clone().into_os_string()),
            ..lookup
        };
        let mut notes = Vec::new();
        let found = lookup
            .find(KubeTool::Etcd, &mut |n| notes.push(n.to_owned()))
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.origin, found.version.as_str()),
            (Origin::EnvVar("ETCD_BIN"), "v3.6.8")
        );
        assert!(notes[0].starts_with("warning: etcd at "), "{notes:?}");
        // Each tool reads its own variable.
        assert!(
            lookup
                .find(KubeTool::KubeApiserver, &mut |_| {})
                .unwrap()
                .is_none()
        );

        let broken = KubeLookup {
            etcd_bin: Some(dir.path().join("nothing").into_os_string()),
            ..empty_lookup(dir.path())
        };
        let err = broken
            .find(KubeTool::Etcd, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("ETCD_BIN points to ") && err.ends_with("which does not exist"),
            "{err}"
        );
    }

    #[test]
    fn a_binary_that_does_not_say_its_version_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let cached = bin_path(&dir.path().join("cache"), KubeTool::KubeApiserver);
        fake_tool(&cached, "hello");
        let err = empty_lookup(dir.path())
            .find(KubeTool::KubeApiserver, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--version` failed (exit status: 0) or printed no version: hello"),
            "{err}"
        );
    }

    #[test]
    fn nothing_found_and_no_go_says_how_to_get_one() {
        let dir = tempfile::tempdir().unwrap();
        let err = empty_lookup(dir.path())
            .find_or_build(KubeTool::KubeApiserver, &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, KubeToolError::Unavailable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("kube-apiserver v1.36.5 not found and not buildable: "),
            "{text}"
        );
        assert!(text.contains("install Go >= 1.26.0"), "{text}");
        assert!(text.contains("set KUBE_APISERVER_BIN to a kube-apiserver v1.36.5, e.g. bin/kube-apiserver of https://dl.k8s.io/v1.36.5/"), "{text}");
    }

    /// A stand-in `go` that answers `env`, lists `packages` packages and "builds" a script that
    /// says `said`, logging each call.
    fn fake_go(path: &Path, log: &Path, packages: usize, said: &str) {
        write_script(
            path,
            &format!(
                "#!/bin/sh\nPATH=/usr/bin:/bin\necho \"$@\" >> '{log}'\ncase \"$1\" in\n\
                 env) echo go1.26.8 ;;\n\
                 list) i=0; while [ $i -lt {packages} ]; do echo pkg/$i; i=$((i+1)); done ;;\n\
                 build) out=''; while [ $# -gt 0 ]; do [ \"$1\" = -o ] && out=$2; shift; done\n\
                   printf '#!/bin/sh\\necho \"{said}\"\\n' > \"$out\"; chmod 755 \"$out\" ;;\n\
                 esac\n",
                log = log.display(),
            ),
        );
    }

    #[test]
    fn builds_with_go_once_into_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("go-bin");
        let log = dir.path().join("go.log");
        fake_go(&bin.join("go"), &log, 3, "etcd Version: 3.6.16");
        let lookup = KubeLookup {
            path: Some(bin.into_os_string()),
            ..empty_lookup(dir.path())
        };
        let mut notes = Vec::new();
        let found = lookup
            .find_or_build(KubeTool::Etcd, &mut |n| notes.push(n.to_owned()))
            .unwrap();
        assert_eq!(found.origin, Origin::Built);
        assert_eq!(
            found.path,
            bin_path(&dir.path().join("cache"), KubeTool::Etcd)
        );
        assert!(
            notes[0].starts_with("etcd v3.6.16 not found; building it with go1.26.8"),
            "{notes:?}"
        );
        assert!(
            notes.last().unwrap().starts_with("built etcd v3.6.16 in "),
            "{notes:?}"
        );
        let calls = fs::read_to_string(&log).unwrap();
        assert!(
            calls.contains("list -mod=mod -deps -f {{.ImportPath}} go.etcd.io/etcd/server/v3"),
            "{calls}"
        );
        assert!(
            calls.contains("build -mod=mod -trimpath -buildvcs=false -v -o "),
            "{calls}"
        );
        // Nothing of the staging directory is left, and a second look finds the cache's.
        let left: Vec<_> = fs::read_dir(dir.path().join("cache/etcd-v3.6.16"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [OsString::from("bin")]);
        let again = lookup.find_or_build(KubeTool::Etcd, &mut |_| {}).unwrap();
        assert_eq!(again.origin, Origin::Cache);
    }

    /// Real but cheap: each wrapper module resolves against the Go module proxy and lists the
    /// tool's packages (needs the modules' go.mod files only; about a second warm).
    #[test]
    fn real_go_resolves_each_wrapper_module() {
        let Ok(go) = which::which("go") else {
            eprintln!("skipped: no `go` on PATH");
            return;
        };
        for tool in KubeTool::ALL {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("go.mod"), tool.go_mod()).unwrap();
            let out = Command::new(&go)
                .args(["list", "-mod=mod", "-deps", tool.package()])
                .current_dir(dir.path())
                .env("GOWORK", "off")
                .env("CGO_ENABLED", "0")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{tool}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.lines().any(|l| l == tool.package()), "{tool}");
        }
    }

    /// The real build, as a run does it, into a temporary cache (or `EGRESS_CONFORMANCE_CACHE`).
    #[test]
    #[ignore = "runs a real go build: under a minute warm, 8-12 minutes cold on 2 cores"]
    fn real_build_of_kube_apiserver() {
        real_build(KubeTool::KubeApiserver);
    }

    #[test]
    #[ignore = "runs a real go build: seconds warm, 1-3 minutes cold on 2 cores"]
    fn real_build_of_etcd() {
        real_build(KubeTool::Etcd);
    }

    fn real_build(tool: KubeTool) {
        let go = which::which("go").expect("this test needs go on PATH");
        let dir = tempfile::tempdir().unwrap();
        let cache = std::env::var_os("EGRESS_CONFORMANCE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.path().join("cache"));
        let lookup = KubeLookup {
            path: Some(go.parent().unwrap().as_os_str().to_owned()),
            cache: Some(cache.clone()),
            ..empty_lookup(dir.path())
        };
        let started = Instant::now();
        let found = lookup
            .find_or_build(tool, &mut |m| {
                eprintln!("[{:>7.1}s] {m}", started.elapsed().as_secs_f64())
            })
            .unwrap();
        assert_eq!(found.version, tool.version());
        assert_eq!(found.path, bin_path(&cache, tool));
        eprintln!(
            "{tool}: {} bytes, {:?} from {}",
            fs::metadata(&found.path).unwrap().len(),
            started.elapsed(),
            found.origin
        );
    }
}
