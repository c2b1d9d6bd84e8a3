//! Reading a suite file: YAML → validated [`Suite`], with its fixtures parsed. Every error names
//! the file and line it points at. No backend is touched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::input::ReadError;
use crate::istio::{ManifestError, ObjectKey, parse_manifests_in};
use crate::mesh::{MeshSettings, OutboundTrafficPolicy, ProxyRole};
use crate::yaml::{self, FieldError, FieldPath};

use super::command::{self, CommandError, parse_command};
use super::confine::{ConfineError, Fixtures, LoadOptions};
use super::kubectl::{Delete, parse_delete};
use super::model::*;
use super::{origin, vars};

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("cannot read suite: {0}")]
    Read(#[source] ReadError),
    #[error(transparent)]
    Field(#[from] Box<FieldError>),
    #[error("{}:{line}: {message}", .file.display())]
    Invalid {
        file: PathBuf,
        line: usize,
        message: String,
    },
    /// A fixture (or the fixtures directory) the suite may not read, or that cannot be read.
    #[error("{}:{line}: {source}", .file.display())]
    Path {
        file: PathBuf,
        line: usize,
        #[source]
        source: ConfineError,
    },
    /// A command the whitelist refuses, at the word that is refused.
    #[error("{}:{line}:{column}: commands.{name}: {error}", .file.display())]
    Command {
        file: PathBuf,
        line: usize,
        column: usize,
        name: String,
        error: CommandError,
    },
    #[error("{}:{line}: in fixture: {source}", .file.display())]
    Fixture {
        file: PathBuf,
        line: usize,
        source: Box<ManifestError>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    name: String,
    title: String,
    /// Relative to the suite file.
    fixtures: String,
    #[serde(default = "default_namespace")]
    namespace: String,
    #[serde(default)]
    mesh: RawMesh,
    #[serde(default)]
    commands: BTreeMap<String, String>,
    /// The shell variables the tutorial's commands and heredocs use.
    #[serde(default)]
    vars: BTreeMap<String, String>,
    /// The external sites the tutorial talks to (see `super::origin`).
    #[serde(default)]
    origin: Vec<origin::RawSite>,
    stages: Vec<RawStage>,
}

fn default_namespace() -> String {
    "default".into()
}

/// Mirrors Istio's `meshConfig`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMesh {
    #[serde(default)]
    outbound_traffic_policy: RawOutboundPolicy,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOutboundPolicy {
    #[serde(default)]
    mode: OutboundTrafficPolicy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    name: String,
    #[serde(default)]
    says: Option<String>,
    /// A change of the mesh config, made before the stage's other steps.
    #[serde(default)]
    mesh: Option<RawMesh>,
    #[serde(default)]
    apply: Vec<String>,
    #[serde(default)]
    delete: Vec<String>,
    /// A fixture of `kubectl delete <kind> <name>` lines, as the tutorial's cleanup prints them.
    #[serde(default)]
    delete_file: Option<String>,
    #[serde(default)]
    snapshot: Option<String>,
    #[serde(default)]
    checks: Vec<RawCheck>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    // A command check.
    run: Option<String>,
    exit_code: Option<RawExitCode>,
    stdout: Option<RawExpected>,
    duration: Option<RawDuration>,
    blocked: Option<Vec<RawBlocked>>,
    connections: Option<Vec<RawConnections>>,
    timeouts: Option<Vec<RawTraffic>>,
    status_lines: Option<Vec<RawExpected>>,
    headers: Option<BTreeMap<String, RawExpected>>,
    stdout_includes: Option<Vec<String>>,
    stdout_excludes: Option<Vec<String>>,
    through: Option<Vec<RawTraffic>>,
    origin: Option<Vec<RawOrigin>>,
    // A proxy config check.
    proxy: Option<ProxyRole>,
    listeners: Option<Vec<String>>,
    listener: Option<String>,
    present: Option<bool>,
    rds: Option<String>,
    route_config: Option<String>,
    virtual_hosts: Option<Vec<String>>,
    virtual_host: Option<String>,
    domains: Option<Vec<String>>,
    routes: Option<usize>,
    cluster: Option<String>,
    discovery: Option<String>,
    lb_policy: Option<String>,
    tls: Option<RawTls>,
    listener_filters: Option<Vec<String>>,
    filter_chains: Option<Vec<RawChain>>,
    default_chain: Option<String>,
    timeout: Option<crate::istio::Duration>,
    direct_response: Option<u32>,
    endpoints: Option<Vec<String>>,
    // No residue.
    same_as: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawExpected {
    Text(String),
    Number(i64),
    Marked(RawMarked),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMarked {
    value: RawScalar,
    live_site: LiveSite,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawScalar {
    Text(String),
    Number(i64),
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum LiveSite {
    /// The live site may answer differently: compare only that the value is there.
    Varies,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTraffic {
    proxy: ProxyRole,
    cluster: String,
    requests: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrigin {
    host: Option<String>,
    path: Option<String>,
    tls: Option<bool>,
    /// `none` expects no SNI.
    sni: Option<String>,
    status: Option<u16>,
    port: Option<u32>,
    method: Option<String>,
    /// `none` expects no ALPN.
    alpn: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawExitCode {
    Code(i32),
    AnyOf(RawAnyOf),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnyOf {
    any_of: Vec<i32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDuration {
    at_least: Option<crate::istio::Duration>,
    below: Option<crate::istio::Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlocked {
    proxy: ProxyRole,
    by: RawBlocker,
    count: u64,
}

#[derive(Deserialize)]
enum RawBlocker {
    #[serde(rename = "block_all")]
    BlockAll,
    BlackHoleCluster,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnections {
    proxy: ProxyRole,
    cluster: String,
    count: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChain {
    #[serde(default)]
    server_names: Vec<String>,
    cluster: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    originated: bool,
    sni: Option<String>,
}

impl RawExpected {
    fn resolve(self) -> Expected {
        match self {
            RawExpected::Text(value) => Expected {
                value,
                varies_on_live_site: false,
            },
            RawExpected::Number(n) => Expected {
                value: n.to_string(),
                varies_on_live_site: false,
            },
            RawExpected::Marked(RawMarked {
                value,
                live_site: LiveSite::Varies,
            }) => Expected {
                value: match value {
                    RawScalar::Text(t) => t,
                    RawScalar::Number(n) => n.to_string(),
                },
                varies_on_live_site: true,
            },
        }
    }
}

/// Read and validate a suite and every fixture it names.
pub(crate) fn load_suite(file: &Path, options: LoadOptions) -> Result<Suite, SuiteError> {
    let text = crate::input::read_text(file, file).map_err(SuiteError::Read)?;
    parse_suite(file, &text, options)
}

pub(crate) fn parse_suite(
    file: &Path,
    text: &str,
    options: LoadOptions,
) -> Result<Suite, SuiteError> {
    let invalid = |line: usize, message: String| SuiteError::Invalid {
        file: file.to_path_buf(),
        line,
        message,
    };
    let mut documents = yaml::read_documents(file, text)?;
    let root = match documents.len() {
        1 => documents.remove(0),
        0 => return Err(invalid(1, "the suite is empty".into())),
        _ => {
            return Err(invalid(
                documents[1].pos.line,
                "a suite is one YAML document; this is a second".into(),
            ));
        }
    };
    let (raw, _): (RawSuite, _) = yaml::decode(file, &root, &root, FieldPath::default())?;
    // Where a part of the suite is written, for its errors.
    let line_of = |path: &FieldPath| yaml::locate(&root, path).key.line;
    let stages_path = FieldPath::default().key("stages");
    let confined = |line: usize| {
        move |source: ConfineError| SuiteError::Path {
            file: file.to_path_buf(),
            line,
            source,
        }
    };
    let fixtures = Fixtures::resolve(file, &raw.fixtures, options)
        .map_err(confined(line_of(&FieldPath::default().key("fixtures"))))?;
    for (name, value) in &raw.vars {
        if !vars::valid_value(value) {
            return Err(invalid(
                line_of(&FieldPath::default().key("vars").key(name)),
                format!("vars.{name}: a value is one line, not empty"),
            ));
        }
    }
    let sites =
        origin::resolve(raw.origin, &line_of).map_err(|(line, message)| invalid(line, message))?;
    let mut commands = BTreeMap::new();
    for (name, line) in &raw.commands {
        let at = yaml::locate(&root, &FieldPath::default().key("commands").key(name));
        // The suite's variables first, as the tutorial's shell expands them; then the
        // whitelist, on the words curl would get. An error is placed at its word as written
        // when the word is there, else at the command's start.
        let line = &vars::expand(line, &raw.vars).map_err(|e| {
            invalid(
                at.value.line,
                format!(
                    "commands.{name}: ${} is not set; give it a value under `vars`",
                    e.name
                ),
            )
        })?;
        let argv = parse_command(line).map_err(|error| {
            let (line, column) = command::position_of(text, at.key, at.value, &error);
            SuiteError::Command {
                file: file.to_path_buf(),
                line,
                column,
                name: name.clone(),
                error,
            }
        })?;
        commands.insert(
            name.clone(),
            CommandLine {
                name: name.clone(),
                argv,
            },
        );
    }
    let mut stages = Vec::new();
    let mut snapshots = BTreeSet::new();
    // What exists after each step, as kubectl would see it: a delete of anything else fails.
    let mut present: BTreeSet<ObjectKey> = BTreeSet::new();
    let gone = |key: &ObjectKey, stage: &str| {
        format!(
            "stage {stage}: kubectl delete {} {}: it does not exist at that point",
            key.kind.cli_name(),
            key.name
        )
    };
    let mut stage_names = BTreeSet::new();
    for (stage_index, raw_stage) in raw.stages.into_iter().enumerate() {
        let stage_path = stages_path.index(stage_index);
        let line = line_of(&stage_path);
        if !stage_names.insert(raw_stage.name.clone()) {
            return Err(invalid(
                line,
                format!("stage name {:?} is used twice", raw_stage.name),
            ));
        }
        let mut steps = Vec::new();
        if let Some(mesh) = &raw_stage.mesh {
            steps.push(Step::Mesh(MeshSettings {
                outbound_traffic_policy: mesh.outbound_traffic_policy.mode,
            }));
        }
        for (i, apply) in raw_stage.apply.iter().enumerate() {
            let step_line = line_of(&stage_path.key("apply").index(i));
            let (path, text) = fixtures.read(apply).map_err(confined(step_line))?;
            // Its shell variables expanded as the tutorial's unquoted heredoc has the shell do;
            // lines stay where they are written, so errors point at the fixture as written.
            let text = vars::expand(&text, &raw.vars).map_err(|unset| SuiteError::Invalid {
                file: path.clone(),
                line: unset.line,
                message: unset.to_string(),
            })?;
            let objects = parse_manifests_in(&path, &text, &raw.namespace).map_err(|source| {
                SuiteError::Fixture {
                    file: file.to_path_buf(),
                    line: step_line,
                    source: Box::new(source),
                }
            })?;
            present.extend(objects.iter().map(|o| o.key(&raw.namespace)));
            steps.push(Step::Apply {
                file: path,
                objects,
            });
        }
        for (i, delete) in raw_stage.delete.iter().enumerate() {
            let step_line = line_of(&stage_path.key("delete").index(i));
            for Delete {
                key,
                ignore_not_found,
            } in parse_delete(delete, &raw.namespace)
                .map_err(|message| invalid(step_line, message))?
            {
                if !present.remove(&key) && !ignore_not_found {
                    return Err(invalid(step_line, gone(&key, &raw_stage.name)));
                }
                steps.push(Step::Delete {
                    key,
                    ignore_not_found,
                });
            }
        }
        if let Some(delete_file) = &raw_stage.delete_file {
            let step_line = line_of(&stage_path.key("delete_file"));
            let (path, text) = fixtures.read(delete_file).map_err(confined(step_line))?;
            for (n, command) in text.lines().enumerate() {
                let command = command.trim();
                if command.is_empty() || command.starts_with('#') {
                    continue;
                }
                let deletes = command
                    .strip_prefix("kubectl delete ")
                    .ok_or_else(|| "expected `kubectl delete <kind> <name>`".to_string())
                    .and_then(|rest| parse_delete(rest, &raw.namespace))
                    .map_err(|message| SuiteError::Invalid {
                        file: path.clone(),
                        line: n + 1,
                        message,
                    })?;
                for Delete {
                    key,
                    ignore_not_found,
                } in deletes
                {
                    if !present.remove(&key) && !ignore_not_found {
                        return Err(SuiteError::Invalid {
                            file: path.clone(),
                            line: n + 1,
                            message: gone(&key, &raw_stage.name),
                        });
                    }
                    steps.push(Step::Delete {
                        key,
                        ignore_not_found,
                    });
                }
            }
        }
        let mut checks = Vec::new();
        for (i, check) in raw_stage.checks.into_iter().enumerate() {
            let check_line = line_of(&stage_path.key("checks").index(i));
            let kind = resolve_check(check, &commands, &snapshots)
                .map_err(|message| invalid(check_line, message))?;
            checks.push(Check {
                line: check_line,
                kind,
            });
        }
        if let Some(name) = &raw_stage.snapshot {
            snapshots.insert(name.clone());
        }
        stages.push(Stage {
            name: raw_stage.name,
            says: raw_stage.says,
            steps,
            snapshot: raw_stage.snapshot,
            checks,
            line,
        });
    }
    if stages.is_empty() {
        return Err(invalid(1, "a suite needs at least one stage".into()));
    }
    Ok(Suite {
        name: raw.name,
        title: raw.title,
        file: file.to_path_buf(),
        namespace: raw.namespace,
        mesh: MeshSettings {
            outbound_traffic_policy: raw.mesh.outbound_traffic_policy.mode,
        },
        origin: sites,
        stages,
    })
}

/// Which fields a check sets, for "belongs to another kind of check" errors.
fn set_fields(raw: &RawCheck) -> Vec<&'static str> {
    let mut out = Vec::new();
    macro_rules! field {
        ($($f:ident),*) => { $( if raw.$f.is_some() { out.push(stringify!($f)); } )* };
    }
    field!(
        run,
        exit_code,
        stdout,
        duration,
        blocked,
        connections,
        timeouts,
        status_lines,
        headers,
        stdout_includes,
        stdout_excludes,
        through,
        origin,
        proxy,
        listeners,
        listener,
        present,
        rds,
        route_config,
        virtual_hosts,
        virtual_host,
        domains,
        routes,
        cluster,
        discovery,
        lb_policy,
        tls,
        listener_filters,
        filter_chains,
        default_chain,
        timeout,
        direct_response,
        endpoints,
        same_as
    );
    out
}

fn only(raw: &RawCheck, kind: &str, allowed: &[&str]) -> Result<(), String> {
    let extra: Vec<&str> = set_fields(raw)
        .into_iter()
        .filter(|f| !allowed.contains(f))
        .collect();
    if extra.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "a {kind} check does not take {}; it takes {}",
            extra.join(", "),
            allowed.join(", ")
        ))
    }
}

fn resolve_check(
    raw: RawCheck,
    commands: &BTreeMap<String, CommandLine>,
    snapshots: &BTreeSet<String>,
) -> Result<CheckKind, String> {
    if let Some(name) = &raw.run {
        only(
            &raw,
            "command",
            &[
                "run",
                "exit_code",
                "stdout",
                "duration",
                "status_lines",
                "headers",
                "stdout_includes",
                "stdout_excludes",
                "through",
                "blocked",
                "connections",
                "timeouts",
                "origin",
            ],
        )?;
        let command = commands.get(name).cloned().ok_or_else(|| {
            format!(
                "run: no command named {name:?} under `commands` (have: {})",
                commands.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        let (exit_code, exit_code_in) = match raw.exit_code {
            None => (None, Vec::new()),
            Some(RawExitCode::Code(code)) => (Some(code), Vec::new()),
            Some(RawExitCode::AnyOf(RawAnyOf { any_of })) if any_of.len() >= 2 => (None, any_of),
            Some(RawExitCode::AnyOf(_)) => {
                return Err("exit_code: any_of takes two or more codes; for one, write it".into());
            }
        };
        let duration = match raw.duration {
            None => None,
            Some(RawDuration { at_least, below }) => {
                let bounds = DurationBounds {
                    at_least: at_least.map(|d| d.to_std()),
                    below: below.map(|d| d.to_std()),
                };
                match (bounds.at_least, bounds.below) {
                    (None, None) => return Err("duration takes at_least, below or both".into()),
                    (Some(a), Some(b)) if a >= b => {
                        return Err(format!("duration: at_least {a:?} is not below {b:?}"));
                    }
                    _ => Some(bounds),
                }
            }
        };
        let check = CommandCheck {
            command,
            exit_code,
            exit_code_in,
            stdout: raw.stdout.map(RawExpected::resolve),
            duration,
            blocked: raw
                .blocked
                .unwrap_or_default()
                .into_iter()
                .map(|b| Blocked {
                    proxy: b.proxy,
                    by: match b.by {
                        RawBlocker::BlockAll => Blocker::BlockAll,
                        RawBlocker::BlackHoleCluster => Blocker::BlackHoleCluster,
                    },
                    count: b.count,
                })
                .collect(),
            connections: raw
                .connections
                .unwrap_or_default()
                .into_iter()
                .map(|c| ClusterConnections {
                    proxy: c.proxy,
                    cluster: c.cluster,
                    count: c.count,
                })
                .collect(),
            timeouts: raw
                .timeouts
                .unwrap_or_default()
                .into_iter()
                .map(|t| ClusterTraffic {
                    proxy: t.proxy,
                    cluster: t.cluster,
                    requests: t.requests,
                })
                .collect(),
            status_lines: raw
                .status_lines
                .map(|lines| lines.into_iter().map(RawExpected::resolve).collect()),
            headers: raw
                .headers
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.resolve()))
                .collect(),
            stdout_includes: raw.stdout_includes.unwrap_or_default(),
            stdout_excludes: raw.stdout_excludes.unwrap_or_default(),
            through: raw
                .through
                .unwrap_or_default()
                .into_iter()
                .map(|t| ClusterTraffic {
                    proxy: t.proxy,
                    cluster: t.cluster,
                    requests: t.requests,
                })
                .collect(),
            origin: raw.origin.map(|list| {
                list.into_iter()
                    .map(|o| OriginExpectation {
                        host: o.host,
                        path: o.path,
                        tls: o.tls,
                        sni: o.sni.map(|s| (s != "none").then_some(s)),
                        status: o.status,
                        port: o.port,
                        method: o.method,
                        alpn: o.alpn.map(|s| (s != "none").then_some(s)),
                    })
                    .collect()
            }),
        };
        if check.exit_code.is_none()
            && check.exit_code_in.is_empty()
            && check.stdout.is_none()
            && check.duration.is_none()
            && check.blocked.is_empty()
            && check.connections.is_empty()
            && check.timeouts.is_empty()
            && check.status_lines.is_none()
            && check.headers.is_empty()
            && check.stdout_includes.is_empty()
            && check.stdout_excludes.is_empty()
            && check.through.is_empty()
            && check.origin.is_none()
        {
            return Err(format!(
                "run {name:?} expects nothing: add exit_code, status_lines, headers, ..."
            ));
        }
        return Ok(CheckKind::Command(Box::new(check)));
    }
    if let Some(snapshot) = &raw.same_as {
        only(&raw, "same_as", &["same_as"])?;
        if !snapshots.contains(snapshot) {
            return Err(format!(
                "same_as: no earlier stage takes a snapshot named {snapshot:?}"
            ));
        }
        return Ok(CheckKind::SameAs {
            snapshot: snapshot.clone(),
        });
    }
    let Some(proxy) = raw.proxy else {
        return Err("a check needs `run`, `proxy` or `same_as`".into());
    };
    let expect = if let Some(names) = &raw.listeners {
        only(&raw, "listeners", &["proxy", "listeners"])?;
        ProxyExpectation::Listeners(names.clone())
    } else if let Some(name) = &raw.listener {
        only(
            &raw,
            "listener",
            &[
                "proxy",
                "listener",
                "present",
                "rds",
                "listener_filters",
                "filter_chains",
                "default_chain",
            ],
        )?;
        ProxyExpectation::Listener {
            name: name.clone(),
            present: raw.present.unwrap_or(true),
            rds: raw.rds.clone(),
            listener_filters: raw.listener_filters.clone(),
            filter_chains: raw.filter_chains.as_ref().map(|chains| {
                chains
                    .iter()
                    .map(|c| ChainExpectation {
                        server_names: c.server_names.clone(),
                        cluster: c.cluster.clone(),
                    })
                    .collect()
            }),
            default_chain: raw.default_chain.clone(),
        }
    } else if let Some(route_config) = &raw.route_config {
        if let Some(names) = &raw.virtual_hosts {
            only(
                &raw,
                "virtual_hosts",
                &["proxy", "route_config", "virtual_hosts"],
            )?;
            ProxyExpectation::VirtualHostNames {
                route_config: route_config.clone(),
                names: names.clone(),
            }
        } else if let Some(name) = &raw.virtual_host {
            only(
                &raw,
                "virtual_host",
                &[
                    "proxy",
                    "route_config",
                    "virtual_host",
                    "domains",
                    "routes",
                    "cluster",
                    "timeout",
                    "direct_response",
                ],
            )?;
            ProxyExpectation::VirtualHost {
                route_config: route_config.clone(),
                name: name.clone(),
                domains: raw.domains.clone(),
                routes: raw.routes,
                cluster: raw.cluster.clone(),
                timeout: raw.timeout.map(|d| d.to_std()),
                direct_response: raw.direct_response,
            }
        } else {
            return Err("route_config needs `virtual_hosts` or `virtual_host`".into());
        }
    } else if let Some(name) = &raw.cluster {
        only(
            &raw,
            "cluster",
            &[
                "proxy",
                "cluster",
                "present",
                "discovery",
                "lb_policy",
                "tls",
                "endpoints",
            ],
        )?;
        ProxyExpectation::Cluster {
            name: name.clone(),
            present: raw.present.unwrap_or(true),
            discovery: raw.discovery.clone(),
            lb_policy: raw.lb_policy.clone(),
            tls: raw.tls.as_ref().map(|t| match (t.originated, &t.sni) {
                (false, _) => TlsExpectation::None,
                (true, sni) => TlsExpectation::Originated {
                    sni: sni.clone().unwrap_or_else(|| "auto".into()),
                },
            }),
            endpoints: raw.endpoints.clone(),
        }
    } else {
        return Err(
            "a proxy check needs `listeners`, `listener`, `route_config` or `cluster`".into(),
        );
    };
    Ok(CheckKind::Proxy { proxy, expect })
}

/// Every suite file under `dir`, sorted.
pub fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod series_tests;
