//! A suite: one tutorial as data. Its stages, what each applies or deletes, the commands it runs and
//! what it expects to see. Validated, resolved against its fixtures, backend-neutral.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::istio::{IstioObject, ObjectKey};
use crate::mesh::{MeshSettings, ProxyRole};
use crate::origin::sites::Sites;

#[derive(Debug, Clone)]
pub struct Suite {
    pub name: String,
    pub title: String,
    pub file: PathBuf,
    /// The namespace the tutorial's `kubectl` commands act in.
    pub namespace: String,
    /// The mesh settings at the start; a stage may change them.
    pub mesh: MeshSettings,
    /// The external sites the tutorial talks to, as the local origin plays them.
    pub origin: Sites,
    pub stages: Vec<Stage>,
}

impl Suite {
    /// Every object any stage applies, in order (for the warnings Istio gives them).
    pub fn all_objects(&self) -> impl Iterator<Item = &IstioObject> {
        self.stages
            .iter()
            .flat_map(|s| s.steps.iter())
            .flat_map(|step| match step {
                Step::Apply { objects, .. } => objects.as_slice(),
                Step::Delete { .. } | Step::Mesh(_) => &[],
            })
    }

    /// Every command any stage runs.
    pub fn all_commands(&self) -> impl Iterator<Item = &CommandLine> {
        self.stages
            .iter()
            .flat_map(|s| s.checks.iter())
            .filter_map(|c| match &c.kind {
                CheckKind::Command(cmd) => Some(&cmd.command),
                _ => None,
            })
    }
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    /// What the tutorial says at this point, for the transcript.
    pub says: Option<String>,
    pub steps: Vec<Step>,
    /// Take a snapshot of every proxy's config and of the applied resources under this name.
    pub snapshot: Option<String>,
    pub checks: Vec<Check>,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub enum Step {
    /// `kubectl apply -f <file>`.
    Apply {
        file: PathBuf,
        objects: Vec<IstioObject>,
    },
    /// `kubectl delete <kind> <name>`.
    Delete {
        key: ObjectKey,
        /// `--ignore-not-found`: nothing to delete is no error.
        ignore_not_found: bool,
    },
    /// A change of Istio's mesh config (`istioctl install --set meshConfig...`).
    Mesh(MeshSettings),
}

/// A command as the tutorial runs it in the sleep pod (`kubectl exec ... -- <argv>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandLine {
    /// The name the suite gives it.
    pub name: String,
    pub argv: Vec<String>,
}

impl std::fmt::Display for CommandLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quoted: Vec<String> = self
            .argv
            .iter()
            .map(|a| {
                if a.chars()
                    .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '$'))
                {
                    format!("'{}'", a.replace('\'', "'\\''"))
                } else {
                    a.clone()
                }
            })
            .collect();
        f.write_str(&quoted.join(" "))
    }
}

#[derive(Debug, Clone)]
pub struct Check {
    /// Where the check is written, for failures: `suite.yaml:42`.
    pub line: usize,
    pub kind: CheckKind,
}

#[derive(Debug, Clone)]
pub enum CheckKind {
    Command(Box<CommandCheck>),
    Proxy {
        proxy: ProxyRole,
        expect: ProxyExpectation,
    },
    /// No residue: every proxy's config and the applied resources equal a snapshot.
    SameAs {
        snapshot: String,
    },
}

/// A value that depends on the live site (`edition.cnn.com` itself) is compared exactly only where
/// the site is played by the local origin; against the live site only its presence is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub value: String,
    pub varies_on_live_site: bool,
}

#[derive(Debug, Clone, Default)]
pub struct CommandCheck {
    pub command: CommandLine,
    pub exit_code: Option<i32>,
    /// Any of these exit codes (`exit_code: {any_of: [52, 56]}`), where a race decides.
    pub exit_code_in: Vec<i32>,
    /// The whole of stdout, exactly.
    pub stdout: Option<Expected>,
    /// How long the command took, in the tutorial's time (`time curl ...`).
    pub duration: Option<DurationBounds>,
    /// Every status line curl printed, in order (one per response with `-L`).
    pub status_lines: Option<Vec<Expected>>,
    /// Headers of the last response curl printed; names case-insensitive.
    pub headers: BTreeMap<String, Expected>,
    pub stdout_includes: Vec<String>,
    pub stdout_excludes: Vec<String>,
    /// Requests each proxy sent to a cluster while the command ran.
    pub through: Vec<ClusterTraffic>,
    /// What reached the origin while the command ran (only where the origin is local).
    pub origin: Option<Vec<OriginExpectation>>,
    /// Requests or connections a proxy refused because the mesh does not know the destination.
    pub blocked: Vec<Blocked>,
    /// TCP connections a proxy's `tcp_proxy` made to a cluster.
    pub connections: Vec<ClusterConnections>,
    /// Requests to a cluster that the proxy's route timeout cut off (it answered 504 itself).
    pub timeouts: Vec<ClusterTraffic>,
}

/// Bounds on a command's duration, in the tutorial's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurationBounds {
    pub at_least: Option<Duration>,
    pub below: Option<Duration>,
}

/// What refused a request under REGISTRY_ONLY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocker {
    /// The `block_all` virtual host's direct 502, counted by the router as a direct response.
    BlockAll,
    /// `BlackHoleCluster`, which has no host: `tcp_proxy` finds none and closes the connection.
    BlackHoleCluster,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Blocker::BlockAll => "block_all",
            Blocker::BlackHoleCluster => "BlackHoleCluster",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub proxy: ProxyRole,
    pub by: Blocker,
    /// How many requests (block_all) or connections (BlackHoleCluster) it refused.
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConnections {
    pub proxy: ProxyRole,
    pub cluster: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTraffic {
    pub proxy: ProxyRole,
    pub cluster: String,
    /// The growth of the cluster's `upstream_rq_total` counter.
    pub requests: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OriginExpectation {
    pub host: Option<String>,
    pub path: Option<String>,
    pub tls: Option<bool>,
    /// `Some(None)` expects no SNI at all.
    pub sni: Option<Option<String>>,
    pub status: Option<u16>,
    /// The port of the site it arrived at (80, 443, 3306).
    pub port: Option<u32>,
    pub method: Option<String>,
    /// The application protocol its TLS settled on; `Some(None)` expects none.
    pub alpn: Option<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyExpectation {
    /// Exactly these active listeners, by name.
    Listeners(Vec<String>),
    Listener {
        name: String,
        present: bool,
        rds: Option<String>,
        /// Exactly these listener filters, by name, in order.
        listener_filters: Option<Vec<String>>,
        /// Exactly these filter chains, in order: what each matches and where it sends.
        filter_chains: Option<Vec<ChainExpectation>>,
        /// Where the default filter chain sends (`none`: there is none).
        default_chain: Option<String>,
    },
    /// Exactly these virtual hosts, by name, in order.
    VirtualHostNames {
        route_config: String,
        names: Vec<String>,
    },
    VirtualHost {
        route_config: String,
        name: String,
        domains: Option<Vec<String>>,
        /// How many routes it has.
        routes: Option<usize>,
        /// The cluster every route sends to.
        cluster: Option<String>,
        /// Every route's timeout, in the tutorial's time (0: none).
        timeout: Option<Duration>,
        /// Every route answers directly with this status.
        direct_response: Option<u32>,
    },
    Cluster {
        name: String,
        present: bool,
        discovery: Option<String>,
        lb_policy: Option<String>,
        tls: Option<TlsExpectation>,
        /// Exactly these endpoints, `address:port` as Istio gave them.
        endpoints: Option<Vec<String>>,
    },
}

/// One filter chain of a listener: the SNI it matches (none: every connection) and the cluster
/// its TCP proxy or HTTP routes' config sends to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainExpectation {
    pub server_names: Vec<String>,
    pub cluster: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsExpectation {
    /// Plain text to the upstream.
    None,
    /// TLS originated; `sni` is the fixed SNI or `auto` (from each request's Host).
    Originated { sni: String },
}
