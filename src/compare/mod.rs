//! `compare`: the builtin translator measured against istiod. For every stage of a suite, each
//! proxy's config from both control planes — after the same local network model — is compared
//! resource by resource ([`diff`]); every difference is either listed with its reason in the
//! accepted-differences file ([`accepted`]) or fails the comparison.
//!
//! No Envoy runs: the harness takes istiod's pushes on the proxies' behalf (a recording
//! delivery that accepts at once), so what is compared is what istiod decided, nothing Envoy did.
//! Both control planes deliver into one local network model, so the ports it picks are the same
//! for both.

pub(crate) mod accepted;
pub(crate) mod diff;
mod envoy_json;

use std::collections::BTreeMap;

use prost::Message;
use serde_json::Value;

use self::accepted::{Accepted, ONLY_BUILTIN, ONLY_ISTIOD};
use self::diff::{Compared, FieldDiff, Verdict};
use crate::backend::local::external_ports;
use crate::control_plane::builtin::Builtin;
use crate::control_plane::istiod::Istiod;
pub(crate) use crate::control_plane::istiod::headless::IstiodSpec;
use crate::control_plane::istiod::headless::{CHANGE_TIMEOUT, Headless};
use crate::control_plane::{ControlPlane, ConvergeError};
use crate::delivery::Delivery;
use crate::mesh::{AppliedConfig, ProxyRole, Registry};
use crate::suite::{Step, Suite};
use crate::translate::ProxyWorkloads;
use crate::xds::ProxyResources;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CompareError {
    #[error("{what}: {message}")]
    Setup { what: String, message: String },
    #[error("stage {stage}: {source}")]
    Stage {
        stage: String,
        #[source]
        source: ConvergeError,
    },
}

fn setup(what: &str) -> impl Fn(String) -> CompareError + '_ {
    move |message| CompareError::Setup {
        what: what.to_string(),
        message,
    }
}

/// One difference of one resource, judged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Judged {
    pub diff: Option<FieldDiff>,
    /// The reason it is accepted, when it is.
    pub accepted: Option<String>,
}

/// One resource of one proxy at one stage.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResourceReport {
    pub proxy: ProxyRole,
    pub compared: Compared,
    /// Each difference (a field, or the whole resource when only one side has it), judged.
    pub judged: Vec<Judged>,
}

impl ResourceReport {
    pub(crate) fn identical(&self) -> bool {
        self.compared.verdict == Verdict::Identical
    }

    /// Differs, but only as the accepted-differences file allows.
    pub(crate) fn accepted_only(&self) -> bool {
        !self.identical() && self.judged.iter().all(|j| j.accepted.is_some())
    }

    pub(crate) fn unlisted(&self) -> impl Iterator<Item = &Judged> {
        self.judged.iter().filter(|j| j.accepted.is_none())
    }
}

/// One stage's comparison.
#[derive(Debug, Clone)]
pub(crate) struct StageReport {
    pub name: String,
    pub resources: Vec<ResourceReport>,
}

/// A suite's comparison.
#[derive(Debug, Clone)]
pub(crate) struct SuiteReport {
    pub stages: Vec<StageReport>,
}

impl SuiteReport {
    pub(crate) fn resources(&self) -> impl Iterator<Item = &ResourceReport> {
        self.stages.iter().flat_map(|s| &s.resources)
    }
}

/// Compare `suite` stage by stage, judging differences by `accepted`.
pub(crate) async fn compare_suite(
    suite: &Suite,
    spec: &IstiodSpec,
    accepted: &Accepted,
    progress: &mut dyn FnMut(&str),
) -> Result<SuiteReport, CompareError> {
    let mut headless = Headless::start(
        spec,
        &suite.mesh,
        &suite.namespace,
        Some(external_ports(suite)),
        progress,
    )
    .await
    .map_err(setup("istiod"))?;
    let lanes = Lanes {
        istiod: headless.delivery().clone(),
        builtin: headless.delivery().second_lane(),
    };
    let mut builtin = Builtin::new(
        lanes.builtin.clone(),
        Registry::tutorial(),
        ProxyWorkloads::tutorial(),
        suite.mesh.clone(),
    );
    let result = compare_stages(suite, headless.istiod(), &mut builtin, &lanes, accepted).await;
    let stopped = headless.shutdown().await;
    let report = result?;
    stopped.map_err(setup("istiod"))?;
    Ok(report)
}

async fn compare_stages(
    suite: &Suite,
    istiod: &mut Istiod,
    builtin: &mut Builtin,
    lanes: &Lanes,
    accepted: &Accepted,
) -> Result<SuiteReport, CompareError> {
    let mut config = AppliedConfig::default();
    let mut stages = Vec::new();
    for stage in &suite.stages {
        for step in &stage.steps {
            match step {
                Step::Apply { objects, .. } => {
                    for object in objects {
                        config.apply(object.clone(), &suite.namespace);
                    }
                }
                Step::Delete { key, .. } => {
                    config.delete(key);
                }
                Step::Mesh(mesh) => {
                    istiod
                        .set_mesh(mesh, &config, CHANGE_TIMEOUT)
                        .await
                        .map_err(|source| CompareError::Stage {
                            stage: stage.name.clone(),
                            source,
                        })?;
                    builtin.set_mesh_settings(mesh.clone());
                }
            }
        }
        let failed = |source| CompareError::Stage {
            stage: stage.name.clone(),
            source,
        };
        istiod
            .converge(&config, CHANGE_TIMEOUT)
            .await
            .map_err(failed)?;
        builtin.deliver(&config).map_err(failed)?;
        let from_istiod = delivered(&lanes.istiod);
        let from_builtin = delivered(&lanes.builtin);
        let mut resources = Vec::new();
        for proxy in ProxyRole::ALL {
            let b = as_json(&from_builtin[&proxy]).map_err(setup("reading the builtin config"))?;
            let i = as_json(&from_istiod[&proxy]).map_err(setup("reading istiod's config"))?;
            for (kind, builtin_set) in &b {
                for compared in diff::compare(kind, builtin_set, &i[kind]) {
                    resources.push(judge(proxy, compared, accepted));
                }
            }
        }
        stages.push(StageReport {
            name: stage.name.clone(),
            resources,
        });
    }
    Ok(SuiteReport { stages })
}

/// Where each control plane's deliveries are kept.
struct Lanes {
    istiod: Delivery,
    builtin: Delivery,
}

/// What each proxy was last given, after the local network model.
fn delivered(delivery: &Delivery) -> BTreeMap<ProxyRole, ProxyResources> {
    ProxyRole::ALL
        .into_iter()
        .map(|p| {
            (
                p,
                delivery
                    .delivered(p)
                    .map(|d| d.localized)
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn judge(proxy: ProxyRole, compared: Compared, accepted: &Accepted) -> ResourceReport {
    let accept = |field: &str| {
        accepted
            .accepting(proxy, compared.kind, &compared.name, field)
            .map(|e| e.reason.clone())
    };
    let judged = match &compared.verdict {
        Verdict::Identical => Vec::new(),
        Verdict::OnlyBuiltin => vec![Judged {
            diff: None,
            accepted: accept(ONLY_BUILTIN),
        }],
        Verdict::OnlyIstiod => vec![Judged {
            diff: None,
            accepted: accept(ONLY_ISTIOD),
        }],
        Verdict::Different(diffs) => diffs
            .iter()
            .map(|d| Judged {
                diff: Some(d.clone()),
                accepted: accept(&d.path),
            })
            .collect(),
    };
    ResourceReport {
        proxy,
        compared,
        judged,
    }
}

type ByKind = BTreeMap<&'static str, BTreeMap<String, Value>>;

/// A proxy's resources as JSON, by kind and name.
fn as_json(resources: &ProxyResources) -> Result<ByKind, String> {
    fn each<M: Message>(
        full_name: &str,
        items: &[M],
        name: impl Fn(&M) -> String,
    ) -> Result<BTreeMap<String, Value>, String> {
        items
            .iter()
            .map(|m| Ok((name(m), envoy_json::to_json(full_name, m)?)))
            .collect()
    }
    Ok(BTreeMap::from([
        (
            "cluster",
            each(
                "envoy.config.cluster.v3.Cluster",
                &resources.clusters,
                |c| c.name.clone(),
            )?,
        ),
        (
            "endpoint",
            each(
                "envoy.config.endpoint.v3.ClusterLoadAssignment",
                &resources.endpoints,
                |e| e.cluster_name.clone(),
            )?,
        ),
        (
            "listener",
            each(
                "envoy.config.listener.v3.Listener",
                &resources.listeners,
                |l| l.name.clone(),
            )?,
        ),
        (
            "route",
            each(
                "envoy.config.route.v3.RouteConfiguration",
                &resources.routes,
                |r| r.name.clone(),
            )?,
        ),
    ]))
}

/// The comparison in words: every unlisted difference in full, accepted ones counted.
pub(crate) fn render(report: &SuiteReport, verbose: bool) -> String {
    let mut out = String::new();
    for stage in &report.stages {
        let count =
            |f: &dyn Fn(&ResourceReport) -> bool| stage.resources.iter().filter(|r| f(r)).count();
        out.push_str(&format!(
            "-- stage {}: {} resources: {} identical, {} with accepted differences, {} with unlisted ones\n",
            stage.name,
            stage.resources.len(),
            count(&|r| r.identical()),
            count(&|r| r.accepted_only()),
            count(&|r| r.unlisted().next().is_some()),
        ));
        for resource in &stage.resources {
            let unlisted: Vec<&Judged> = resource.unlisted().collect();
            if unlisted.is_empty() && (!verbose || resource.identical()) {
                continue;
            }
            let c = &resource.compared;
            let head = match c.verdict {
                Verdict::OnlyBuiltin => "only the builtin translator makes",
                Verdict::OnlyIstiod => "only istiod makes",
                _ => "differs:",
            };
            out.push_str(&format!(
                "   {} {} {} {head}\n",
                resource.proxy, c.kind, c.name
            ));
            for judged in &resource.judged {
                if judged.accepted.is_some() && !verbose {
                    continue;
                }
                if let Some(d) = &judged.diff {
                    out.push_str(&format!(
                        "     {}: builtin {}, istiod {}\n",
                        if d.path.is_empty() {
                            "(the whole resource)"
                        } else {
                            &d.path
                        },
                        show(&d.builtin),
                        show(&d.istiod)
                    ));
                }
                if let Some(reason) = &judged.accepted {
                    out.push_str(&format!("       accepted: {reason}\n"));
                }
            }
        }
    }
    out
}

fn show(value: &Option<Value>) -> String {
    match value {
        None => "(absent)".into(),
        Some(v) => {
            let text = v.to_string();
            if text.len() > 160 {
                format!("{}…", &text[..text.floor_char_boundary(160)])
            } else {
                text
            }
        }
    }
}
