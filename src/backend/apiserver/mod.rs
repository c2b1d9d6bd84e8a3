//! The apiserver backend: the kind backend's Kubernetes code against a real API server, with
//! real istiod in Kubernetes mode and the local backend's Envoys, origin and curl. It is how the
//! kind backend's half that needs no containers is proven on a machine that cannot run kind.
//!
//! Start-up, in order: etcd and kube-apiserver on loopback ([`server`]); the Istio release's
//! CRDs, `istio-system` and the node; the suite's namespace labelled for injection, the demo
//! profile's egress gateway and the sleep sample applied, each with the kind backend's own code
//! (`backend::kind::cluster`); the pods, their status and the EndpointSlices that the cluster's
//! controllers and kubelet would write ([`workloads`]); the kind backend's wait for both pods to
//! be ready. Then the local mesh: istiod watching that API server (no stand-in, no config source
//! of the harness's), the harness as pilot-agent for each Envoy, the local network model over the
//! registry as the API server holds it, the origin, curl.
//!
//! A step is a server-side apply or a delete that waits until the object is gone, through the
//! kind backend's code, and is done when istiod has taken it from the API server and every proxy
//! has accepted the result: istiod's counters are read before the write
//! ([`LocalBackend::converge_with`]). The API server's own validation (the CRDs' schemas) judges
//! every manifest, after the harness's: a refusal fails the step in the API server's words. The
//! no-residue check lists the Istio objects from the API server.
//!
//! Everything it starts stops on [`Backend::shutdown`]: first the kind backend's removals, with
//! its code and in its order (the tutorial's objects a run left, the sample, the label; the
//! gateway, where kind uninstalls Istio), checked by listing; then the mesh (its own check of
//! what is left), kube-apiserver, etcd and the API server's directory, which is checked too: no
//! process, port or directory remains. Dropped without it, the guards kill what they own.

pub(crate) mod server;
pub(crate) mod workloads;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use self::server::{ApiServer, ApiServerStart};
use crate::backend::kind::cluster::{self, ClusterError, INJECTION_LABEL, ISTIO_NAMESPACE};
use crate::backend::local::run_dir::RunDir;
use crate::backend::local::{self, LocalBackend, LocalSpec, World};
use crate::backend::{
    Backend, BackendError, BackendSpec, CleanupReport, StartError, StepError, StepReport,
};
use crate::control_plane::ControlPlaneKind;
use crate::control_plane::istiod::SourceChoice;
use crate::envoy::EnvoyBinary;
use crate::istio::{IstioObject, ObjectKey};
use crate::istio_release::IstioRelease;
use crate::mesh::{MeshSettings, ProxyRole, Registry, Workload};
use crate::observe::{CommandOutput, OriginHit};
use crate::process::Liveness;
use crate::suite::{CommandLine, Suite};
use crate::translate::TranslateError;

/// How long the CRDs may take to be Established (about 2 s measured).
const CRD_TIMEOUT: Duration = Duration::from_secs(60);
/// The pods are written with their status: ready as soon as the API server says so.
const POD_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// A delete waits for the object to be gone; no finalizers, so this is the API's own latency.
const DELETE_TIMEOUT: Duration = Duration::from_secs(30);
const SLEEP_SELECTOR: &str = "app=sleep";
const GATEWAY_SELECTOR: &str = "istio=egressgateway";
const CLIENT_CONTAINER: &str = "sleep";
const PROXY_CONTAINER: &str = "istio-proxy";
const NAME: &str = "apiserver";

/// Every way this backend differs from the kind backend, by title. The README's list under "How
/// it differs from the kind backend" has these titles, in this order.
pub(crate) const DIFFERENCES_FROM_KIND: [&str; 11] = [
    "No cluster",
    "Authentication and authorization",
    "No `istioctl install`",
    "The egress gateway",
    "Pods",
    "EndpointSlices",
    "ClusterIPs",
    "The proxies and the client",
    "Waiting",
    "Clean-up",
    "Istio's build",
];

/// A run on a real API server: the binaries it needs and the sample to deploy.
#[derive(Debug, Clone)]
pub(crate) struct ApiserverSpec {
    /// The Envoy paired with `release`.
    pub envoy: EnvoyBinary,
    pub release: &'static IstioRelease,
    pub pilot_discovery: PathBuf,
    pub kube_apiserver: PathBuf,
    pub etcd: PathBuf,
    /// The release's `crd-all.gen.yaml`.
    pub crds: PathBuf,
    /// The sleep sample (`fixtures/sleep.yaml`), as the kind backend applies it.
    pub sleep_manifest: PathBuf,
    /// Leave it all up until the interrupt, and the directories behind.
    pub keep: bool,
}

/// Why the cluster half of the start failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiserverError {
    #[error("creating the API server's directory: {0}")]
    Dir(#[source] std::io::Error),
    #[error("starting the API server: {0}")]
    Server(#[source] server::ApiServerError),
    #[error("{step}: {source}")]
    Cluster {
        step: &'static str,
        #[source]
        source: ClusterError,
    },
    #[error("reading the sleep sample {}: {source}", .file.display())]
    ReadManifest {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn step(step: &'static str) -> impl FnOnce(ClusterError) -> ApiserverError {
    move |source| ApiserverError::Cluster { step, source }
}

fn backend_error(action: impl Into<String>, message: impl std::fmt::Display) -> BackendError {
    BackendError {
        backend: NAME,
        action: action.into(),
        message: message.to_string(),
    }
}

/// The API server, what runs in it, and the mesh fed from it.
pub(crate) struct ApiserverBackend {
    // Field order is drop order: the mesh, then the API server, then its directory.
    mesh: LocalBackend,
    api: Option<ApiServer>,
    dir: Option<RunDir>,
    namespace: String,
    /// Leave everything up and in place (`--keep`).
    keep: bool,
    /// The API version each object was applied with, so a delete addresses it the same way.
    versions: BTreeMap<ObjectKey, String>,
    /// The tutorial's objects applied and not deleted, oldest first (as the kind backend keeps
    /// them, for the same removals).
    applied: Vec<ObjectKey>,
    /// What set-up put in the API server that the kind backend would remove again.
    installed: Installed,
}

/// What set-up wrote with the kind backend's code, for its removals at shutdown.
struct Installed {
    /// The sleep sample's objects, in the suite's namespace, in the order applied.
    sample: Vec<cluster::ManifestObject>,
    /// The egress gateway's objects in `istio-system` (what `istioctl uninstall` removes on kind).
    gateway: Vec<cluster::ManifestObject>,
    /// Whether the injection label was added to a namespace that existed.
    label_added: bool,
}

/// The cluster as set-up left it: the registry it holds and what the backend installed.
struct Populated {
    registry: Registry,
    installed: Installed,
}

impl ApiserverSpec {
    fn mesh_spec(&self) -> LocalSpec {
        LocalSpec::new(
            self.envoy.clone(),
            ControlPlaneKind::Istiod {
                release: self.release,
                binary: self.pilot_discovery.clone(),
                // Not used: istiod reads the objects from the API server.
                source: SourceChoice::Mcp,
            },
            self.keep,
        )
    }

    /// The API server with what the cluster would hold before the tutorial's first step, and
    /// the registry as it holds it.
    async fn start_cluster(
        &self,
        suite: &Suite,
        dir: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(ApiServer, Populated), (Option<ApiServer>, ApiserverError)> {
        let api = ApiServer::start(
            ApiServerStart {
                kube_apiserver: self.kube_apiserver.clone(),
                etcd: self.etcd.clone(),
                dir,
            },
            progress,
        )
        .await
        .map_err(|e| (None, ApiserverError::Server(e)))?;
        match self.populate(&api, suite, progress).await {
            Ok(populated) => Ok((api, populated)),
            Err(e) => Err((Some(api), e)),
        }
    }

    async fn populate(
        &self,
        api: &ApiServer,
        suite: &Suite,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Populated, ApiserverError> {
        let client = api.client();
        let namespace = suite.namespace.as_str();
        let crds = workloads::apply_crds(client, &self.crds, CRD_TIMEOUT)
            .await
            .map_err(step("applying Istio's CRDs"))?;
        progress(&format!(
            "applied Istio {}'s {} CRDs ({}), all Established",
            self.release.name,
            crds.len(),
            self.crds.display()
        ));
        workloads::create_namespace(client, ISTIO_NAMESPACE)
            .await
            .map_err(step("creating istio-system"))?;
        workloads::create_node(client)
            .await
            .map_err(step("registering the node"))?;
        let change = cluster::ensure_injection(client, namespace)
            .await
            .map_err(step("labelling the namespace for injection"))?;
        progress(&format!(
            "namespace {namespace}: {} istio-injection=enabled",
            if change.created {
                "created with"
            } else if change.labelled {
                "labelled"
            } else {
                "already labelled"
            }
        ));
        let gateway = cluster::parse_manifest(
            Path::new(workloads::GATEWAY_MANIFEST_NAME),
            workloads::GATEWAY_MANIFEST,
        )
        .map_err(step("reading the egress gateway's manifest"))?;
        for object in &gateway {
            cluster::apply_manifest_object(client, ISTIO_NAMESPACE, object)
                .await
                .map_err(step("applying the egress gateway"))?;
        }
        let text = std::fs::read_to_string(&self.sleep_manifest).map_err(|source| {
            ApiserverError::ReadManifest {
                file: self.sleep_manifest.clone(),
                source,
            }
        })?;
        let sleep = cluster::parse_manifest(&self.sleep_manifest, &text)
            .map_err(step("reading the sleep sample"))?;
        for object in &sleep {
            cluster::apply_manifest_object(client, namespace, object)
                .await
                .map_err(step("applying the sleep sample"))?;
        }
        progress(&format!(
            "applied the egress gateway ({ISTIO_NAMESPACE}) and the sleep sample ({namespace}); \
             writing their pods, status and EndpointSlices as the controllers and the kubelet would"
        ));
        let tutorial = Registry::tutorial();
        let ip_of = |name: &str| {
            tutorial
                .workload(name)
                .map(|w| w.ip.clone())
                .unwrap_or_default()
        };
        let proxy_image = format!(
            "docker.io/istio/proxyv2:{}",
            self.release.proxy_istio_version
        );
        let mut pods: Vec<Pod> = Vec::new();
        for (ns, deployment) in [
            (namespace, "sleep"),
            (ISTIO_NAMESPACE, "istio-egressgateway"),
        ] {
            let workload = Workload {
                name: deployment.to_string(),
                namespace: ns.to_string(),
                ip: ip_of(deployment),
                labels: BTreeMap::new(),
            };
            let pod = workloads::run_deployment(client, ns, deployment, &workload, &proxy_image)
                .await
                .map_err(step("writing the pods"))?;
            pods.push(pod);
        }
        let sleep_pod = cluster::wait_pod_ready(
            client,
            namespace,
            SLEEP_SELECTOR,
            &[CLIENT_CONTAINER, PROXY_CONTAINER],
            POD_READY_TIMEOUT,
        )
        .await
        .map_err(step("waiting for the sleep pod"))?;
        let gateway_pod = cluster::wait_pod_ready(
            client,
            ISTIO_NAMESPACE,
            GATEWAY_SELECTOR,
            &[PROXY_CONTAINER],
            POD_READY_TIMEOUT,
        )
        .await
        .map_err(step("waiting for the egress gateway"))?;
        let services = [
            (namespace, "sleep"),
            (ISTIO_NAMESPACE, "istio-egressgateway"),
        ];
        for (ns, name) in services {
            workloads::write_endpoint_slice(client, ns, name, &pods)
                .await
                .map_err(step("writing the EndpointSlices"))?;
        }
        let registry = workloads::registry(client, &services, &pods)
            .await
            .map_err(step("reading the registry back"))?;
        progress(&format!(
            "ready: {namespace}/{sleep_pod} and {ISTIO_NAMESPACE}/{gateway_pod}; {}",
            registry
                .services
                .iter()
                .map(|s| format!("{} {}", s.hostname(), s.cluster_ip))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok(Populated {
            registry,
            installed: Installed {
                sample: sleep,
                gateway,
                label_added: change.labelled && !change.created,
            },
        })
    }
}

impl From<ApiserverError> for StartError {
    fn from(error: ApiserverError) -> StartError {
        // Binaries, ports and an API server that will not start or take the sample are the
        // environment's.
        StartError::environment("setting up the API server", error)
    }
}

impl BackendSpec for ApiserverSpec {
    type Running = ApiserverBackend;

    fn describe(&self) -> String {
        format!(
            "apiserver, kube-apiserver {} + etcd {}, istiod {} watching it",
            crate::kube_release::KUBERNETES_VERSION,
            crate::kube_release::ETCD_VERSION,
            self.release.name
        )
    }

    fn check(&self, _suite: &Suite) -> Result<(), TranslateError> {
        // Real istiod runs whatever parses and passes Istio's validation.
        Ok(())
    }

    async fn start(
        self,
        suite: &Suite,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ApiserverBackend, StartError> {
        local::check_client().await?;
        let dir = RunDir::create(self.keep).map_err(ApiserverError::Dir)?;
        let (api, populated) = match self.start_cluster(suite, dir.path(), progress).await {
            Ok(started) => started,
            Err((api, error)) => {
                let report = stop(api, Some(dir), progress).await;
                for leftover in report.leftovers {
                    progress(&format!("left behind: {leftover}"));
                }
                return Err(error.into());
            }
        };
        let world = World {
            registry: populated.registry,
            kubernetes: Some(api.kubeconfig()),
        };
        let mesh = match LocalBackend::start(&self.mesh_spec(), suite, world, progress).await {
            Ok(mesh) => mesh,
            Err(error) => {
                let report = stop(Some(api), Some(dir), progress).await;
                for leftover in report.leftovers {
                    progress(&format!("left behind: {leftover}"));
                }
                return Err(error);
            }
        };
        Ok(ApiserverBackend {
            mesh,
            api: Some(api),
            dir: Some(dir),
            namespace: suite.namespace.clone(),
            keep: self.keep,
            versions: BTreeMap::new(),
            applied: Vec::new(),
            installed: populated.installed,
        })
    }
}

/// Stop the API server and remove its directory; what of them is left is a leftover.
async fn stop(
    api: Option<ApiServer>,
    dir: Option<RunDir>,
    progress: &mut dyn FnMut(&str),
) -> CleanupReport {
    let mut report = CleanupReport::default();
    let (mut pids, mut ports) = (Vec::new(), Vec::new());
    if let Some(api) = api {
        pids.extend_from_slice(api.pids());
        ports.extend_from_slice(api.ports());
        progress("stopping kube-apiserver, then etcd");
        let left = api.shutdown().await;
        if left.is_empty() {
            report
                .removed
                .push("kube-apiserver and etcd (with everything they held)".into());
        }
        report.leftovers.extend(left);
    }
    if let Some(dir) = dir {
        let path = dir.path().to_path_buf();
        let kept = dir.kept();
        match dir.close() {
            Ok(()) if kept => report
                .kept
                .push(format!("the API server's directory {}", path.display())),
            Ok(()) => report.removed.push("the API server's directory".into()),
            Err(e) => report.leftovers.push(e),
        }
        report
            .leftovers
            .extend(local::leftovers::leftovers(&pids, &ports, &path, kept));
    }
    report
}

impl ApiserverBackend {
    /// What the kind backend's shutdown removes from a cluster it did not create, removed with
    /// its code, in its order: the tutorial's objects a failed or interrupted run left (newest
    /// first), the sample, the injection label; then what `istioctl uninstall` would take, the
    /// gateway. Then the API server is asked whether any Istio object or the label is left.
    /// (etcd goes next, with everything else in it; the pods and slices the harness wrote as
    /// controllers would are left to that.)
    async fn remove_installed(
        &self,
        client: &kube::Client,
        progress: &mut dyn FnMut(&str),
    ) -> CleanupReport {
        let mut report = CleanupReport::default();
        for key in self.applied.iter().rev() {
            let version = self
                .versions
                .get(key)
                .map_or(cluster::DEFAULT_API_VERSION, String::as_str);
            progress(&format!("deleting {key}, which the run applied"));
            match cluster::delete_istio(client, key, version, DELETE_TIMEOUT).await {
                Ok(()) | Err(ClusterError::NotFound { .. }) => report.removed.push(key.to_string()),
                Err(e) => report.leftovers.push(e.to_string()),
            }
        }
        let installed = [
            (self.namespace.as_str(), &self.installed.sample),
            (ISTIO_NAMESPACE, &self.installed.gateway),
        ];
        for (namespace, objects) in installed {
            for object in objects.iter().rev() {
                match cluster::delete_manifest_object(client, namespace, object).await {
                    Ok(()) => report.removed.push(format!("{object} in {namespace}")),
                    Err(e) => report.leftovers.push(e.to_string()),
                }
            }
        }
        if self.installed.label_added {
            match cluster::set_injection_label(client, &self.namespace, None).await {
                Ok(()) => report.removed.push(format!(
                    "label istio-injection on namespace {}",
                    self.namespace
                )),
                Err(e) => report.leftovers.push(e.to_string()),
            }
        }
        match cluster::list_istio(client, &[&self.namespace, ISTIO_NAMESPACE]).await {
            Ok(left) => report
                .leftovers
                .extend(left.iter().map(|k| format!("{k}, still in the API server"))),
            Err(e) => report.leftovers.push(format!("listing Istio objects: {e}")),
        }
        if self.installed.label_added {
            let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
                kube::Api::all(client.clone());
            match namespaces.get(&self.namespace).await {
                Ok(ns) if kube::ResourceExt::labels(&ns).contains_key(INJECTION_LABEL) => {
                    report.leftovers.push(format!(
                        "label istio-injection on namespace {}",
                        self.namespace
                    ))
                }
                Ok(_) => {}
                Err(e) => report.leftovers.push(format!(
                    "reading namespace {}: {}",
                    self.namespace,
                    cluster::api_message(&e)
                )),
            }
        }
        report
    }

    fn client(&self) -> Result<&kube::Client, BackendError> {
        self.api
            .as_ref()
            .map(ApiServer::client)
            .ok_or_else(|| backend_error("reaching the API server", "it has been stopped"))
    }
}

impl Backend for ApiserverBackend {
    fn reaches_live_site(&self) -> bool {
        false
    }

    fn settle_timeout(&self) -> Duration {
        self.mesh.settle_timeout()
    }

    fn liveness(&self) -> Liveness {
        let mut liveness = self.mesh.liveness();
        if let Some(api) = &self.api {
            api.watch(&mut liveness);
        }
        liveness
    }

    async fn apply(&mut self, objects: &[IstioObject]) -> Result<StepReport, StepError> {
        let client = self.client()?.clone();
        let namespace = self.namespace.clone();
        let mut config = self.mesh.config().clone();
        for object in objects {
            config.apply(object.clone(), &namespace);
        }
        // Recorded before each request: a run interrupted while one is in flight may have applied
        // it, and the removals at shutdown take a missing object as removed.
        let (applied, versions) = (&mut self.applied, &mut self.versions);
        let change = async {
            for object in objects {
                let key = object.key(&namespace);
                let new = !applied.contains(&key);
                if new {
                    applied.push(key.clone());
                }
                let result = cluster::apply_istio(&client, object, &namespace).await;
                match result {
                    Ok(()) => {
                        versions.insert(key, cluster::version_of(&object.api_version).to_string());
                    }
                    Err(e) => {
                        if new {
                            applied.retain(|k| k != &key);
                        }
                        return Err(StepError::Backend(backend_error("applying", e)));
                    }
                }
            }
            Ok(())
        };
        self.mesh.converge_with(config, change).await
    }

    async fn delete(&mut self, key: &ObjectKey) -> Result<StepReport, StepError> {
        let client = self.client()?.clone();
        let version = self
            .versions
            .get(key)
            .map_or(cluster::DEFAULT_API_VERSION, String::as_str)
            .to_string();
        let mut config = self.mesh.config().clone();
        config.delete(key);
        let mut gone = false;
        let change = async {
            match cluster::delete_istio(&client, key, &version, DELETE_TIMEOUT).await {
                Ok(()) => {
                    gone = true;
                    Ok(())
                }
                Err(ClusterError::NotFound { key }) => Err(StepError::NotFound(key)),
                Err(e) => Err(StepError::Backend(backend_error(
                    format!("deleting {key}"),
                    e,
                ))),
            }
        };
        let report = self.mesh.converge_with(config, change).await;
        if gone {
            self.versions.remove(key);
            self.applied.retain(|k| k != key);
        }
        report
    }

    async fn set_mesh(&mut self, mesh: &MeshSettings) -> Result<StepReport, StepError> {
        // istiod reads its mesh config from a file, as in a pod (where the kubelet writes the
        // ConfigMap there): the local mesh replaces the file and waits until it is in force.
        self.mesh.set_mesh(mesh).await
    }

    fn time_scale(&self) -> u32 {
        self.mesh.time_scale()
    }

    fn command_retry(&self) -> Option<Duration> {
        self.mesh.command_retry()
    }

    async fn run(&mut self, command: &CommandLine) -> Result<CommandOutput, BackendError> {
        self.mesh.run(command).await
    }

    async fn config_dump(&mut self, proxy: ProxyRole) -> Result<Value, BackendError> {
        self.mesh.config_dump(proxy).await
    }

    async fn stats(&mut self, proxy: ProxyRole) -> Result<BTreeMap<String, u64>, BackendError> {
        self.mesh.stats(proxy).await
    }

    fn origin_hits(&self) -> Option<Vec<OriginHit>> {
        self.mesh.origin_hits()
    }

    async fn resources(&mut self) -> Result<Vec<ObjectKey>, BackendError> {
        let client = self.client()?;
        cluster::list_istio(client, &[&self.namespace, ISTIO_NAMESPACE])
            .await
            .map_err(|e| backend_error("listing Istio objects", e))
    }

    fn access(&self) -> String {
        let mut out = String::new();
        if let Some(api) = &self.api {
            out.push_str(&format!(
                "kube-apiserver: {} (kubectl --kubeconfig {} get pods -A)\n",
                api.url(),
                api.kubeconfig().display()
            ));
        }
        if let Some(dir) = &self.dir {
            out.push_str(&format!(
                "the API server's directory (certificates, etcd's data, logs): {}\n",
                dir.path().display()
            ));
        }
        out.push_str(&format!(
            "how this backend differs from kind (README, \"The apiserver backend\"): {}\n",
            DIFFERENCES_FROM_KIND.join(", ")
        ));
        out.push_str(&self.mesh.access());
        out
    }

    async fn shutdown(mut self, progress: &mut dyn FnMut(&str)) -> CleanupReport {
        // Removed while istiod and the proxies still run, as on a cluster.
        let client = self.api.as_ref().map(|api| api.client().clone());
        let removed = match client.filter(|_| !self.keep) {
            Some(client) => self.remove_installed(&client, progress).await,
            None => CleanupReport::default(),
        };
        let mut report = self.mesh.shutdown(progress).await;
        report.removed.extend(removed.removed);
        report.leftovers.extend(removed.leftovers);
        let cluster = stop(self.api.take(), self.dir.take(), progress).await;
        for leftover in &cluster.leftovers {
            progress(&format!("left behind: {leftover}"));
        }
        report.removed.extend(cluster.removed);
        report.kept.extend(cluster.kept);
        report.leftovers.extend(cluster.leftovers);
        report
    }
}
