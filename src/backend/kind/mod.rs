//! The kind backend: the suite on a real Kubernetes cluster with Istio. By default it creates a
//! kind cluster, installs Istio (demo profile, which has the egress gateway) with `istioctl`,
//! labels the suite's namespace for injection and deploys the sleep sample; given a kubeconfig
//! context, it uses that cluster and installs only what is missing.
//!
//! Steps are server-side applies and deletes through `kube`; the tutorial's commands run in the
//! sleep pod through exec; proxies' config and stats come from Envoy's admin API through a
//! port-forward. `kubectl` is never used; `kind` and `istioctl` are shelled out to (see `tools`).
//!
//! What it cannot do: know when a proxy has taken a change (istiod pushes asynchronously), so the
//! runner's settle and retry windows absorb that; see what reached the live site.
//!
//! Everything it creates is recorded and removed by [`KindBackend::shutdown`] in reverse, unless
//! `keep`; if the backend is dropped without it, only a cluster it created is deleted.

mod admin;
pub(crate) mod cluster;
mod exec;
pub(crate) mod install_check;
mod mesh;
pub(crate) mod tools;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, LogParams};
use kube::config::{Config, KubeConfigOptions};
use serde_json::Value;

use crate::backend::{
    Backend, BackendError, BackendSpec, CleanupReport, StartError, StepError, StepReport,
};
use crate::istio::{IstioObject, ObjectKey};
use crate::mesh::{MeshSettings, ProxyRole};
use crate::observe::{CommandOutput, OriginHit};
use crate::process::Liveness;
use crate::suite::CommandLine;
use crate::suite::Suite;

use self::cluster::{ClusterError, ISTIO_NAMESPACE, ManifestObject};
use self::tools::{SystemShell, Tools};
pub use self::tools::{Tool, ToolError};

pub const DEFAULT_CLUSTER_NAME: &str = "egress-conformance";
/// kind v0.33.0's default node image (Kubernetes 1.37.0), as `scripts/versions.sh` pins it: the
/// `Image` constant of `pkg/apis/config/defaults/image.go` in `sigs.k8s.io/kind@v0.33.0`.
pub const DEFAULT_NODE_IMAGE: &str =
    "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5";
/// The newest Istio release, as `scripts/versions.sh` pins it (the nightly's first leg).
pub const DEFAULT_ISTIO_VERSION: &str = "1.32.0";

/// Istiod pushes asynchronously: a config check may need this long to hold.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A command check fails for this long before it counts (config reaching the proxies).
const COMMAND_RETRY: Duration = Duration::from_secs(60);
/// Removing an Istio object: no finalizers, so this is only the API's own latency.
const DELETE_TIMEOUT: Duration = Duration::from_secs(60);
/// Pulling images and starting pods on a fresh kind node.
const POD_READY_TIMEOUT: Duration = Duration::from_secs(300);
/// A curl of the tutorial is bounded by its own timeouts; this only stops a hung exec.
const EXEC_TIMEOUT: Duration = Duration::from_secs(120);
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const NAMESPACE_DELETE_TIMEOUT: Duration = Duration::from_secs(180);

const SLEEP_SELECTOR: &str = "app=sleep";
const GATEWAY_SELECTOR: &str = "istio=egressgateway";
const PROXY_CONTAINER: &str = "istio-proxy";

#[derive(Debug, Clone)]
pub struct KindOptions {
    /// Use this kubeconfig context and create no cluster; None = create a kind cluster.
    pub context: Option<String>,
    pub cluster_name: String,
    pub kind_node_image: String,
    pub istio_version: String,
    /// The suite's namespace.
    pub namespace: String,
    /// The sleep sample (`fixtures/sleep.yaml`).
    pub sleep_manifest: PathBuf,
    /// Leave cluster, Istio and sample in place.
    pub keep: bool,
    /// Where to write config dumps and proxy logs when a run fails.
    pub artifacts: Option<PathBuf>,
}

impl KindOptions {
    /// The pinned defaults: a new kind cluster, Istio [`DEFAULT_ISTIO_VERSION`], namespace
    /// `default`.
    pub fn new(sleep_manifest: PathBuf) -> KindOptions {
        KindOptions {
            context: None,
            cluster_name: DEFAULT_CLUSTER_NAME.into(),
            kind_node_image: DEFAULT_NODE_IMAGE.into(),
            istio_version: DEFAULT_ISTIO_VERSION.into(),
            namespace: "default".into(),
            sleep_manifest,
            keep: false,
            artifacts: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KindError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(
        "a kind cluster named {name} already exists: delete it with `kind delete cluster --name {name}`, \
         pick another name, or use it with --context kind-{name}"
    )]
    ClusterExists { name: String },
    #[error("kubeconfig context {context}: {message}")]
    Kubeconfig { context: String, message: String },
    #[error(
        "the cluster of context {context} is unreachable: {message} (is it running? `kubectl --context {context} get nodes` should answer)"
    )]
    Unreachable { context: String, message: String },
    #[error(
        "istio in {ISTIO_NAMESPACE} has no istio-egressgateway: the tutorial needs one; install Istio with the demo profile (`istioctl install --set profile=demo`) or use a cluster without Istio"
    )]
    NoEgressGateway,
    #[error("reading the sleep sample {}: {source}", .file.display())]
    ReadManifest {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{step}: {source}")]
    Cluster {
        step: &'static str,
        source: ClusterError,
    },
    #[error("no istioctl {version} to check the install with: {reason}")]
    NoIstioctl { version: String, reason: String },
    #[error("collecting artifacts into {}: {}", .dir.display(), .failures.join("; "))]
    Artifacts { dir: PathBuf, failures: Vec<String> },
}

fn step(step: &'static str) -> impl FnOnce(ClusterError) -> KindError {
    move |source| KindError::Cluster { step, source }
}

/// What this run created and must remove.
#[derive(Debug, Default)]
struct Owned {
    cluster: bool,
    istio: bool,
    namespace_created: bool,
    label_added: bool,
    /// The sleep sample's objects, when it was not there before.
    sleep: Vec<ManifestObject>,
    /// The mesh config text the run found, when a stage changed it.
    mesh_before: Option<String>,
}

pub struct KindBackend {
    client: Client,
    tools: Tools,
    context: String,
    cluster_name: String,
    namespace: String,
    keep: bool,
    artifacts: Option<PathBuf>,
    kind: Option<PathBuf>,
    istioctl: Option<PathBuf>,
    owned: Owned,
    /// The API version each object was applied with, so a delete addresses it the same way.
    versions: BTreeMap<ObjectKey, String>,
    /// The objects the run applied and has not deleted, in the order they were applied.
    applied: Vec<ObjectKey>,
    shut_down: bool,
}

impl KindBackend {
    async fn start(
        opts: KindOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<KindBackend, KindError> {
        let path = std::env::var_os("PATH");
        let tools = Tools::new(Box::new(SystemShell));
        let mut kind = None;
        let mut istioctl = None;
        let created_cluster = opts.context.is_none();
        // Owns a cluster being created until the backend does, so that abandoning set-up (a
        // second Ctrl-C drops this future) still removes it.
        let mut guard: Option<ClusterGuard> = None;
        let context = match &opts.context {
            Some(context) => context.clone(),
            None => {
                // Both tools are needed for a fresh cluster: find them before creating anything.
                let kind_bin = tools::locate_kind(path.as_ref())?;
                let istioctl_bin = locate_istioctl(&opts.istio_version, path.as_ref())?;
                tools
                    .check_istioctl_version(&istioctl_bin, &opts.istio_version)
                    .await?;
                istioctl = Some(istioctl_bin);
                let listed = tools
                    .run(Tool::Kind, &kind_bin, tools::kind_get_clusters_args())
                    .await?;
                if tools::parse_cluster_list(&listed.stdout).contains(&opts.cluster_name) {
                    return Err(KindError::ClusterExists {
                        name: opts.cluster_name.clone(),
                    });
                }
                progress(&format!(
                    "creating kind cluster {} ({}); this takes a minute or two",
                    opts.cluster_name, opts.kind_node_image
                ));
                guard = Some(ClusterGuard {
                    kind: kind_bin.clone(),
                    name: opts.cluster_name.clone(),
                    armed: true,
                });
                let created = tools
                    .run(
                        Tool::Kind,
                        &kind_bin,
                        tools::kind_create_args(&opts.cluster_name, &opts.kind_node_image),
                    )
                    .await;
                if let Err(e) = created {
                    // kind may leave a half-made cluster behind.
                    let _ = tools
                        .run(
                            Tool::Kind,
                            &kind_bin,
                            tools::kind_delete_args(&opts.cluster_name),
                        )
                        .await;
                    if let Some(guard) = guard.take() {
                        guard.disarm();
                    }
                    return Err(e.into());
                }
                kind = Some(kind_bin);
                tools::kind_context(&opts.cluster_name)
            }
        };
        let client = match connect(&context).await {
            Ok(client) => client,
            Err(e) => {
                if let Some(kind_bin) = &kind {
                    progress(&format!("deleting kind cluster {}", opts.cluster_name));
                    let _ = tools
                        .run(
                            Tool::Kind,
                            kind_bin,
                            tools::kind_delete_args(&opts.cluster_name),
                        )
                        .await;
                }
                if let Some(guard) = guard.take() {
                    guard.disarm();
                }
                return Err(e);
            }
        };
        let mut backend = KindBackend::connected(client, tools, context, &opts);
        backend.kind = kind;
        backend.istioctl = istioctl;
        backend.owned.cluster = created_cluster;
        // From here the backend's own drop and shutdown own the cluster.
        if let Some(guard) = guard.take() {
            guard.disarm();
        }
        match backend.set_up(&opts, progress).await {
            Ok(()) => Ok(backend),
            Err(e) if opts.keep => Err(e),
            Err(e) => {
                progress(&format!("set-up failed: {e}; removing what it created"));
                let cleanup = backend.remove_all(progress).await;
                for line in cleanup.leftovers {
                    progress(&format!("left behind: {line}"));
                }
                Err(e)
            }
        }
    }

    /// A backend over `client` that has set nothing up (tests; and the base of `start`).
    fn connected(client: Client, tools: Tools, context: String, opts: &KindOptions) -> KindBackend {
        KindBackend {
            client,
            tools,
            context,
            cluster_name: opts.cluster_name.clone(),
            namespace: opts.namespace.clone(),
            keep: opts.keep,
            artifacts: opts.artifacts.clone(),
            kind: None,
            istioctl: None,
            owned: Owned::default(),
            versions: BTreeMap::new(),
            applied: Vec::new(),
            shut_down: false,
        }
    }

    async fn set_up(
        &mut self,
        opts: &KindOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), KindError> {
        let istiod = cluster::deployment_exists(&self.client, ISTIO_NAMESPACE, "istiod")
            .await
            .map_err(step("looking for istiod"))?;
        if istiod {
            progress(
                "istiod already runs in istio-system: using that Istio and leaving it in place",
            );
        } else {
            let istioctl = match &self.istioctl {
                Some(path) => path.clone(),
                None => {
                    let path = std::env::var_os("PATH");
                    let found = locate_istioctl(&opts.istio_version, path.as_ref())?;
                    self.tools
                        .check_istioctl_version(&found, &opts.istio_version)
                        .await?;
                    self.istioctl = Some(found.clone());
                    found
                }
            };
            // Offline first: a flag this istioctl refuses, or an install without what the suites
            // rely on, fails here, before the cluster is touched.
            let manifest = self
                .tools
                .check_install_offline(&istioctl, &self.context)
                .await?;
            progress(&format!(
                "installing Istio {} (demo profile, {} objects, the egress gateway from {}) into context {}",
                opts.istio_version, manifest.objects, manifest.egress_gateway_image, self.context
            ));
            // Owned from the first attempt: a failed install may leave half of Istio behind.
            self.owned.istio = true;
            self.tools
                .run(
                    Tool::Istioctl,
                    &istioctl,
                    tools::istioctl_install_args(&self.context),
                )
                .await?;
        }
        let gateway =
            cluster::deployment_exists(&self.client, ISTIO_NAMESPACE, "istio-egressgateway")
                .await
                .map_err(step("looking for the egress gateway"))?;
        if !gateway {
            return Err(KindError::NoEgressGateway);
        }

        let change = cluster::ensure_injection(&self.client, &self.namespace)
            .await
            .map_err(step("labelling the namespace for injection"))?;
        self.owned.namespace_created = change.created;
        self.owned.label_added = change.labelled && !change.created;
        if change.created {
            progress(&format!(
                "created namespace {} with istio-injection=enabled",
                self.namespace
            ));
        } else if change.labelled {
            progress(&format!(
                "labelled namespace {} istio-injection=enabled",
                self.namespace
            ));
        }

        let text = std::fs::read_to_string(&opts.sleep_manifest).map_err(|source| {
            KindError::ReadManifest {
                file: opts.sleep_manifest.clone(),
                source,
            }
        })?;
        let objects = cluster::parse_manifest(&opts.sleep_manifest, &text)
            .map_err(step("reading the sleep sample"))?;
        let existed = cluster::deployment_exists(&self.client, &self.namespace, "sleep")
            .await
            .map_err(step("looking for the sleep sample"))?;
        progress(&format!("applying the sleep sample in {}", self.namespace));
        if !existed {
            self.owned.sleep = objects.clone();
        }
        for object in &objects {
            cluster::apply_manifest_object(&self.client, &self.namespace, object)
                .await
                .map_err(step("applying the sleep sample"))?;
        }
        progress("waiting for the sleep pod (sleep + istio-proxy) and the egress gateway");
        let sleep = cluster::wait_pod_ready(
            &self.client,
            &self.namespace,
            SLEEP_SELECTOR,
            &[exec::CLIENT_CONTAINER, PROXY_CONTAINER],
            POD_READY_TIMEOUT,
        )
        .await
        .map_err(step("waiting for the sleep pod"))?;
        let gateway = cluster::wait_pod_ready(
            &self.client,
            ISTIO_NAMESPACE,
            GATEWAY_SELECTOR,
            &[PROXY_CONTAINER],
            POD_READY_TIMEOUT,
        )
        .await
        .map_err(step("waiting for the egress gateway"))?;
        progress(&format!(
            "ready: {}/{sleep} and {ISTIO_NAMESPACE}/{gateway}",
            self.namespace
        ));
        Ok(())
    }

    /// The namespace and Running pod that plays `proxy`.
    async fn proxy_pod(&self, proxy: ProxyRole) -> Result<(String, String), ClusterError> {
        let (namespace, selector) = match proxy {
            ProxyRole::Sidecar => (self.namespace.as_str(), SLEEP_SELECTOR),
            ProxyRole::EgressGateway => (ISTIO_NAMESPACE, GATEWAY_SELECTOR),
        };
        let pod = cluster::running_pod(&self.client, namespace, selector).await?;
        Ok((namespace.to_string(), pod))
    }

    async fn admin_get(&self, proxy: ProxyRole, path: &str) -> Result<Vec<u8>, String> {
        let (namespace, pod) = self.proxy_pod(proxy).await.map_err(|e| e.to_string())?;
        admin::get_through_forward(&self.client, &namespace, &pod, path, ADMIN_TIMEOUT)
            .await
            .map(|b| b.to_vec())
            .map_err(|e| e.to_string())
    }

    async fn write_artifacts(&mut self, dir: &Path) -> Result<(), KindError> {
        let mut failures = Vec::new();
        if let Err(e) = std::fs::create_dir_all(dir) {
            return Err(KindError::Artifacts {
                dir: dir.to_path_buf(),
                failures: vec![e.to_string()],
            });
        }
        for proxy in ProxyRole::ALL {
            for (path, file) in [
                (admin::CONFIG_DUMP_PATH, format!("{proxy}-config_dump.json")),
                (admin::STATS_PATH, format!("{proxy}-stats.json")),
            ] {
                let written = self
                    .admin_get(proxy, path)
                    .await
                    .and_then(|body| write(&dir.join(&file), &body));
                if let Err(e) = written {
                    failures.push(format!("{file}: {e}"));
                }
            }
            let file = format!("{proxy}-istio-proxy.log");
            let logs = async {
                let (namespace, pod) = self.proxy_pod(proxy).await.map_err(|e| e.to_string())?;
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
                let params = LogParams {
                    container: Some(PROXY_CONTAINER.into()),
                    ..LogParams::default()
                };
                api.logs(&pod, &params)
                    .await
                    .map_err(|e| cluster::api_message(&e))
            }
            .await;
            if let Err(e) = logs.and_then(|text| write(&dir.join(&file), text.as_bytes())) {
                failures.push(format!("{file}: {e}"));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(KindError::Artifacts {
                dir: dir.to_path_buf(),
                failures,
            })
        }
    }

    /// Remove what the run created, in reverse (unless `keep`).
    async fn remove_all(mut self, progress: &mut dyn FnMut(&str)) -> CleanupReport {
        self.shut_down = true;
        let mut report = CleanupReport::default();
        let owned = std::mem::take(&mut self.owned);
        if self.keep {
            for key in &self.applied {
                report.kept.push(key.to_string());
            }
            if owned.cluster {
                report.kept.push(format!(
                    "kind cluster {} (context {})",
                    self.cluster_name, self.context
                ));
            }
            if owned.istio {
                report.kept.push("Istio in istio-system".into());
            }
            if owned.namespace_created {
                report.kept.push(format!("namespace {}", self.namespace));
            } else if owned.label_added {
                report.kept.push(format!(
                    "label istio-injection on namespace {}",
                    self.namespace
                ));
            }
            if !owned.sleep.is_empty() {
                report
                    .kept
                    .push(format!("the sleep sample in {}", self.namespace));
            }
            if owned.mesh_before.is_some() {
                report.kept.push("the changed mesh config".into());
            }
            return report;
        }
        if owned.cluster {
            // Everything else lives inside it.
            progress(&format!("deleting kind cluster {}", self.cluster_name));
            self.owned.cluster = true;
            self.delete_cluster(&mut report).await;
            return report;
        }
        // A run that failed or was interrupted before its cleanup stage leaves the tutorial's own
        // objects; they go first, newest first, so the mesh routes as before the run.
        for key in std::mem::take(&mut self.applied).iter().rev() {
            let version = self
                .versions
                .get(key)
                .map_or(cluster::DEFAULT_API_VERSION, String::as_str);
            progress(&format!("deleting {key}, which the run applied"));
            match cluster::delete_istio(&self.client, key, version, DELETE_TIMEOUT).await {
                Ok(()) | Err(ClusterError::NotFound { .. }) => report.removed.push(key.to_string()),
                Err(e) => report.leftovers.push(e.to_string()),
            }
        }
        if let Some(before) = owned.mesh_before {
            progress("restoring the mesh config");
            match mesh::restore(&self.client, before).await {
                Ok(()) => report.removed.push("the mesh config change".into()),
                Err(e) => report.leftovers.push(e.to_string()),
            }
        }
        for object in owned.sleep.iter().rev() {
            match cluster::delete_manifest_object(&self.client, &self.namespace, object).await {
                Ok(()) => report
                    .removed
                    .push(format!("{object} in {}", self.namespace)),
                Err(e) => report.leftovers.push(e.to_string()),
            }
        }
        if owned.namespace_created {
            progress(&format!("deleting namespace {}", self.namespace));
            match cluster::delete_namespace(&self.client, &self.namespace, NAMESPACE_DELETE_TIMEOUT)
                .await
            {
                Ok(()) => report.removed.push(format!("namespace {}", self.namespace)),
                Err(e) => report.leftovers.push(e.to_string()),
            }
        } else if owned.label_added {
            match cluster::set_injection_label(&self.client, &self.namespace, None).await {
                Ok(()) => report.removed.push(format!(
                    "label istio-injection on namespace {}",
                    self.namespace
                )),
                Err(e) => report.leftovers.push(e.to_string()),
            }
        }
        if owned.istio {
            progress("uninstalling Istio");
            self.uninstall_istio(&mut report).await;
        }
        report
    }

    async fn uninstall_istio(&mut self, report: &mut CleanupReport) {
        let Some(istioctl) = self.istioctl.clone() else {
            report
                .leftovers
                .push("Istio: no istioctl to uninstall it with".into());
            return;
        };
        match self
            .tools
            .run(
                Tool::Istioctl,
                &istioctl,
                tools::istioctl_uninstall_args(&self.context),
            )
            .await
        {
            Ok(_) => report
                .removed
                .push("Istio (istioctl uninstall --purge)".into()),
            Err(e) => report.leftovers.push(e.to_string()),
        }
        match cluster::delete_namespace(&self.client, ISTIO_NAMESPACE, NAMESPACE_DELETE_TIMEOUT)
            .await
        {
            Ok(()) => report.removed.push(format!("namespace {ISTIO_NAMESPACE}")),
            Err(e) => report.leftovers.push(e.to_string()),
        }
    }

    async fn delete_cluster(&mut self, report: &mut CleanupReport) {
        if !self.owned.cluster {
            return;
        }
        self.owned.cluster = false;
        let Some(kind) = self.kind.clone() else {
            report.leftovers.push(format!(
                "kind cluster {}: no kind binary to delete it with",
                self.cluster_name
            ));
            return;
        };
        match self
            .tools
            .run(
                Tool::Kind,
                &kind,
                tools::kind_delete_args(&self.cluster_name),
            )
            .await
        {
            Ok(_) => report
                .removed
                .push(format!("kind cluster {}", self.cluster_name)),
            Err(e) => report.leftovers.push(e.to_string()),
        }
    }
}

/// A kind cluster being created, deleted if dropped before it is handed to a [`KindBackend`].
struct ClusterGuard {
    kind: PathBuf,
    name: String,
    armed: bool,
}

impl ClusterGuard {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if self.armed {
            // Blocking is acceptable: set-up is being abandoned. kind deletes half-made clusters.
            let _ = std::process::Command::new(&self.kind)
                .args(tools::kind_delete_args(&self.name))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Drop for KindBackend {
    fn drop(&mut self) {
        // Last resort when `shutdown` was never reached (a panic, an early return): a cluster
        // this run created would otherwise outlive it. Blocking is acceptable here: the run is
        // ending. Objects in someone else's cluster need the API and are left to `shutdown`.
        if self.shut_down || self.keep || !self.owned.cluster {
            return;
        }
        if let Some(kind) = &self.kind {
            let _ = std::process::Command::new(kind)
                .args(tools::kind_delete_args(&self.cluster_name))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

fn locate_istioctl(version: &str, path: Option<&OsString>) -> Result<PathBuf, ToolError> {
    tools::locate_istioctl(std::env::var_os("ISTIOCTL").as_ref(), path, version)
}

/// What [`check_install`] found: the istioctl it used and what the install would hold.
#[derive(Debug, Clone)]
pub struct InstallCheck {
    pub istioctl: PathBuf,
    /// What the istioctl says it is: the version wanted, or the harness's build of its minor.
    pub version: String,
    /// The argv given to istioctl.
    pub args: Vec<String>,
    pub manifest: install_check::InstallManifest,
    /// Set when the istioctl is not the release wanted but the branch head of its minor that the
    /// harness builds: the check holds for that, and the run itself needs the release.
    pub stand_in: Option<String>,
}

/// `setup --backend kind`: the install the kind backend would run, checked offline with
/// `istioctl manifest generate` and the install's own flags. The istioctl is the one a run would
/// use (`$ISTIOCTL` or `PATH`, of exactly `version`); failing that, for a minor the harness can
/// build (1.31, 1.30), the harness's build of that branch head, found or built as istiod is.
pub async fn check_install(
    version: &str,
    cluster_name: &str,
    notify: &mut dyn FnMut(&str),
) -> Result<InstallCheck, KindError> {
    let tools = Tools::new(Box::new(SystemShell));
    let context = tools::kind_context(cluster_name);
    let path = std::env::var_os("PATH");
    let as_a_run_finds_it = match locate_istioctl(version, path.as_ref()) {
        Ok(found) => tools
            .check_istioctl_version(&found, version)
            .await
            .map(|()| found),
        Err(e) => Err(e),
    };
    let (istioctl, said, stand_in) = match as_a_run_finds_it {
        Ok(found) => (found, version.to_string(), None),
        Err(not_found) => {
            let release = crate::istio_release::parse_release(version).map_err(|e| {
                KindError::NoIstioctl {
                    version: version.to_string(),
                    reason: format!("{not_found}; and the harness cannot build one: {e}"),
                }
            })?;
            let built = crate::istio_release::find_or_build(
                crate::istio_release::IstioTool::Istioctl,
                release,
                notify,
            )
            .map_err(|e| KindError::NoIstioctl {
                version: version.to_string(),
                reason: format!("{not_found}; and {e}"),
            })?;
            let said = built
                .announced
                .clone()
                .unwrap_or_else(|| release.build_version());
            let note = format!(
                "{not_found}; checked with istioctl {said} instead ({}), which a run does not take",
                release.description
            );
            (built.path, said, Some(note))
        }
    };
    let manifest = tools.check_install_offline(&istioctl, &context).await?;
    Ok(InstallCheck {
        istioctl,
        version: said,
        args: tools::istioctl_manifest_args(&context),
        manifest,
        stand_in,
    })
}

fn write(file: &Path, body: &[u8]) -> Result<(), String> {
    std::fs::write(file, body).map_err(|e| format!("writing {}: {e}", file.display()))
}

/// A client for `context`, proven to reach its API server.
async fn connect(context: &str) -> Result<Client, KindError> {
    let kubeconfig_error = |message: String| KindError::Kubeconfig {
        context: context.to_string(),
        message,
    };
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_kubeconfig(&options)
        .await
        .map_err(|e| kubeconfig_error(e.to_string()))?;
    let client = Client::try_from(config).map_err(|e| kubeconfig_error(e.to_string()))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(e)) => Err(KindError::Unreachable {
            context: context.to_string(),
            message: cluster::api_message(&e),
        }),
        Err(_) => Err(KindError::Unreachable {
            context: context.to_string(),
            message: format!("no answer within {CONNECT_TIMEOUT:?}"),
        }),
    }
}

fn backend_error(action: String, message: impl std::fmt::Display) -> BackendError {
    BackendError {
        backend: "kind",
        action,
        message: message.to_string(),
    }
}

impl From<KindError> for StartError {
    fn from(error: KindError) -> StartError {
        // Everything that stops a cluster set-up is the environment's: tools, clusters, contexts.
        StartError::environment("setting up the cluster", error)
    }
}

impl BackendSpec for KindOptions {
    type Running = KindBackend;

    fn describe(&self) -> String {
        match &self.context {
            Some(context) => format!("kind, context {context}"),
            None => format!("kind, new cluster {}", self.cluster_name),
        }
    }

    fn check(&self, _suite: &Suite) -> Result<(), crate::translate::TranslateError> {
        // A cluster runs real Istio: whatever parses and passes Istio's validation runs.
        Ok(())
    }

    async fn start(
        mut self,
        suite: &Suite,
        progress: &mut dyn FnMut(&str),
    ) -> Result<KindBackend, StartError> {
        self.namespace = suite.namespace.clone();
        Ok(KindBackend::start(self, progress).await?)
    }
}

impl Backend for KindBackend {
    fn reaches_live_site(&self) -> bool {
        true
    }

    fn settle_timeout(&self) -> Duration {
        SETTLE_TIMEOUT
    }

    fn command_retry(&self) -> Option<Duration> {
        Some(COMMAND_RETRY)
    }

    fn liveness(&self) -> Liveness {
        // Nothing of the cluster runs as a child of the harness.
        Liveness::default()
    }

    fn keeps_by_waiting(&self) -> bool {
        false
    }

    fn access(&self) -> String {
        format!(
            "The cluster stays as it is: kubeconfig context {}; the sleep sample in {}.\n",
            self.context, self.namespace
        )
    }

    async fn collect_artifacts(&mut self, progress: &mut dyn FnMut(&str)) {
        let Some(dir) = self.artifacts.clone() else {
            return;
        };
        progress(&format!(
            "collecting the proxies' config dumps and logs into {}",
            dir.display()
        ));
        if let Err(e) = self.write_artifacts(&dir).await {
            progress(&format!("collecting artifacts: {e}"));
        }
    }

    async fn shutdown(self, progress: &mut dyn FnMut(&str)) -> CleanupReport {
        self.remove_all(progress).await
    }

    async fn apply(&mut self, objects: &[IstioObject]) -> Result<StepReport, StepError> {
        let started = Instant::now();
        for object in objects {
            cluster::apply_istio(&self.client, object, &self.namespace)
                .await
                .map_err(|e| StepError::Backend(backend_error("applying".into(), e)))?;
            let key = object.key(&self.namespace);
            if !self.applied.contains(&key) {
                self.applied.push(key.clone());
            }
            self.versions
                .insert(key, cluster::version_of(&object.api_version).to_string());
        }
        Ok(StepReport {
            latency: started.elapsed(),
        })
    }

    async fn delete(&mut self, key: &ObjectKey) -> Result<StepReport, StepError> {
        let started = Instant::now();
        let version = self
            .versions
            .get(key)
            .map_or(cluster::DEFAULT_API_VERSION, String::as_str);
        match cluster::delete_istio(&self.client, key, version, DELETE_TIMEOUT).await {
            Ok(()) => {
                self.versions.remove(key);
                self.applied.retain(|k| k != key);
                Ok(StepReport {
                    latency: started.elapsed(),
                })
            }
            Err(ClusterError::NotFound { key }) => Err(StepError::NotFound(key)),
            Err(e) => Err(StepError::Backend(backend_error(
                format!("deleting {key}"),
                e,
            ))),
        }
    }

    async fn set_mesh(&mut self, settings: &MeshSettings) -> Result<StepReport, StepError> {
        let started = Instant::now();
        let before = mesh::set_outbound_policy(&self.client, settings.outbound_traffic_policy)
            .await
            .map_err(|e| StepError::Backend(backend_error("changing the mesh config".into(), e)))?;
        // The first change's "before" is what the cluster had.
        self.owned.mesh_before.get_or_insert(before);
        Ok(StepReport {
            latency: started.elapsed(),
        })
    }

    async fn run(&mut self, command: &CommandLine) -> Result<CommandOutput, BackendError> {
        let action = format!("running {}", command.name);
        let pod = cluster::running_pod(&self.client, &self.namespace, SLEEP_SELECTOR)
            .await
            .map_err(|e| backend_error(action.clone(), e))?;
        exec::exec(
            &self.client,
            &self.namespace,
            &pod,
            exec::CLIENT_CONTAINER,
            &command.argv,
            EXEC_TIMEOUT,
        )
        .await
        .map_err(|e| backend_error(action, e))
    }

    async fn config_dump(&mut self, proxy: ProxyRole) -> Result<Value, BackendError> {
        let action = format!("reading the {proxy}'s config_dump");
        let body = self
            .admin_get(proxy, admin::CONFIG_DUMP_PATH)
            .await
            .map_err(|e| backend_error(action.clone(), e))?;
        admin::parse_config_dump(&body).map_err(|e| backend_error(action, e))
    }

    async fn stats(&mut self, proxy: ProxyRole) -> Result<BTreeMap<String, u64>, BackendError> {
        let action = format!("reading the {proxy}'s stats");
        let body = self
            .admin_get(proxy, admin::STATS_PATH)
            .await
            .map_err(|e| backend_error(action.clone(), e))?;
        admin::parse_stats_body(&body).map_err(|e| backend_error(action, e))
    }

    fn origin_hits(&self) -> Option<Vec<OriginHit>> {
        None
    }

    async fn resources(&mut self) -> Result<Vec<ObjectKey>, BackendError> {
        cluster::list_istio(&self.client, &[&self.namespace, ISTIO_NAMESPACE])
            .await
            .map_err(|e| backend_error("listing Istio objects".into(), e))
    }
}
