//! What istiod itself says about its state: the objects its config store holds
//! (`/debug/configz`), the config updates it has taken in (`pilot_inbound_updates`), the pushes
//! it has committed (its log: each `Push debounce stable[k] n` line followed by its `XDS: Pushing
//! … Version:V` line accounts for `n` updates), and the push each proxy's state was last computed
//! for (`/debug/config_dump?proxyID=`). Istio's own tests wait for the same equality of inbound
//! and committed updates (`pilot/test/xds/fake.go`), which no endpoint exposes.
//!
//! Pure readers over HTTP and a log file; deciding what to wait for is the caller's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::istio::ObjectKey;
use crate::mesh::OutboundTrafficPolicy;

/// The log line istiod writes when it refuses the config directory (istio/istio
/// `pkg/kube/krt/files/files.go`).
const RELOAD_REFUSED: &str = "unable to reload file configuration ";
/// What istiod's MCP client logs when its store refuses an object (istio/istio
/// `pkg/adsc/adsc.go`: Istio's validation runs on every create and update).
const STORE_REFUSED: [&str; 3] = [
    "Error adding a new resource to the store ",
    "Error updating an existing resource in the store ",
    "Invalid data: ",
];
const DEBOUNCED: &str = "Push debounce stable[";
const PUSHING: &str = "XDS: Pushing ";

#[derive(Debug, thiserror::Error)]
#[error("reading istiod's {what}: {message}")]
pub(crate) struct ObserveError {
    pub what: String,
    pub message: String,
}

fn error(what: impl Into<String>, message: impl std::fmt::Display) -> ObserveError {
    ObserveError {
        what: what.into(),
        message: message.to_string(),
    }
}

/// istiod's debug and monitoring endpoints, and its log.
#[derive(Debug, Clone)]
pub(crate) struct Istiod {
    http: SocketAddr,
    monitoring: SocketAddr,
    log: PathBuf,
    client: reqwest::Client,
}

/// What the log says about pushes: how many updates they committed, and the last push's version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Pushes {
    pub committed: u64,
    /// `<time>/<counter>` of the last `XDS: Pushing` line.
    pub version: Option<String>,
    /// Every refusal of the config directory, in istiod's words, with the log line's index.
    pub refusals: Vec<(usize, String)>,
    /// Lines read.
    pub lines: usize,
}

impl Istiod {
    pub(crate) fn new(http: SocketAddr, monitoring: SocketAddr, log: &Path) -> Istiod {
        Istiod {
            http,
            monitoring,
            log: log.to_path_buf(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_default(),
        }
    }

    /// istiod's HTTP (debug) address.
    pub(crate) fn http(&self) -> SocketAddr {
        self.http
    }

    async fn get(&self, addr: SocketAddr, path: &str) -> Result<String, ObserveError> {
        let url = format!("http://{addr}{path}");
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| error(path, e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| error(path, e))?;
        if !status.is_success() {
            return Err(error(path, format!("{status}: {}", body.trim())));
        }
        Ok(body)
    }

    /// Whether istiod says it is ready (`/ready`: its caches synced and its servers up).
    pub(crate) async fn ready(&self) -> Result<(), ObserveError> {
        self.get(self.http, "/ready").await.map(drop)
    }

    /// `pilot_inbound_updates{type="config"}`: every config update istiod has taken in.
    pub(crate) async fn inbound_updates(&self) -> Result<u64, ObserveError> {
        let metrics = self.get(self.monitoring, "/metrics").await?;
        Ok(inbound_updates(&metrics))
    }

    /// The outbound traffic policy of the mesh config istiod holds (`/debug/mesh`). Istio's JSON
    /// leaves out the default, REGISTRY_ONLY (enum value 0).
    pub(crate) async fn outbound_traffic_policy(
        &self,
    ) -> Result<OutboundTrafficPolicy, ObserveError> {
        let body = self.get(self.http, "/debug/mesh").await?;
        let mesh: Value = serde_json::from_str(&body).map_err(|e| error("/debug/mesh", e))?;
        match mesh["outboundTrafficPolicy"]["mode"].as_str() {
            Some("ALLOW_ANY") => Ok(OutboundTrafficPolicy::AllowAny),
            None | Some("REGISTRY_ONLY") => Ok(OutboundTrafficPolicy::RegistryOnly),
            Some(other) => Err(error(
                "/debug/mesh",
                format!("unknown outboundTrafficPolicy mode {other}"),
            )),
        }
    }

    /// The objects istiod's config store holds, with their specs.
    pub(crate) async fn configz(&self) -> Result<BTreeMap<ObjectKey, Value>, ObserveError> {
        let body = self.get(self.http, "/debug/configz").await?;
        let items: Vec<Value> =
            serde_json::from_str(&body).map_err(|e| error("/debug/configz", e))?;
        Ok(items
            .into_iter()
            .filter_map(|item| {
                let kind = crate::istio::Kind::ALL
                    .into_iter()
                    .find(|k| item["kind"].as_str() == Some(&k.to_string()))?;
                let key = ObjectKey {
                    kind,
                    namespace: item["metadata"]["namespace"].as_str()?.to_string(),
                    name: item["metadata"]["name"].as_str()?.to_string(),
                };
                Some((key, item["spec"].clone()))
            })
            .collect())
    }

    /// The push counter `proxy_id`'s state was last computed for.
    pub(crate) async fn proxy_push(&self, proxy_id: &str) -> Result<u64, ObserveError> {
        // Without `types`: filtered dumps hold bare resources, not the `ClustersConfigDump`
        // that carries the push version.
        let path = format!("/debug/config_dump?proxyID={proxy_id}");
        let body = self.get(self.http, &path).await?;
        let dump: Value = serde_json::from_str(&body).map_err(|e| error(&path, e))?;
        dump["configs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                c["@type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with(".ClustersConfigDump"))
            })
            .find_map(|c| c["versionInfo"].as_str().and_then(push_counter))
            .ok_or_else(|| error(&path, "no versionInfo in the dump"))
    }

    /// What the log says so far.
    pub(crate) fn pushes(&self) -> Pushes {
        pushes(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

/// The counter of a push version `<RFC3339 time>/<counter>`.
pub(crate) fn push_counter(version: &str) -> Option<u64> {
    version.rsplit_once('/')?.1.trim().parse().ok()
}

fn inbound_updates(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("pilot_inbound_updates{") && l.contains("type=\"config\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn pushes(log: &str) -> Pushes {
    let mut out = Pushes::default();
    let mut pending: Option<u64> = None;
    for (index, line) in log.lines().enumerate() {
        out.lines = index + 1;
        if let Some(at) = line.find(DEBOUNCED) {
            // `Push debounce stable[<k>] <n> for ...`
            pending = line[at + DEBOUNCED.len()..]
                .split_once("] ")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok());
        } else if let Some(at) = line.find(PUSHING) {
            out.committed += pending.take().unwrap_or(0);
            out.version = line[at..]
                .split("Version:")
                .nth(1)
                .map(|v| v.trim().to_string());
        } else if let Some(at) = line.find(RELOAD_REFUSED) {
            // `unable to reload file configuration <dir>: <istio's words>`
            let rest = &line[at + RELOAD_REFUSED.len()..];
            let words = rest.split_once(": ").map_or(rest, |(_, w)| w);
            out.refusals.push((index, words.trim().to_string()));
        } else if let Some((at, marker)) = STORE_REFUSED
            .iter()
            .find_map(|m| line.find(m).map(|at| (at, *m)))
        {
            out.refusals
                .push((index, line[at + marker.len()..].trim().to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_updates_are_read_from_the_metrics() {
        let metrics = "# HELP pilot_inbound_updates Total number of updates received by pilot.\n\
                       # TYPE pilot_inbound_updates counter\n\
                       pilot_inbound_updates{type=\"config\"} 14\n\
                       pilot_inbound_updates{type=\"eds\"} 3\n";
        assert_eq!(inbound_updates(metrics), 14);
        assert_eq!(inbound_updates(""), 0);
    }

    #[test]
    fn a_push_counts_its_updates_once_its_push_line_is_there() {
        let log = "\
2026-12-01T22:26:52.1Z\tinfo\tads\tPush debounce stable[1] 2 for config ServiceEntry/default/cnn: 10ms since last change, 12ms since last push, forced=false
2026-12-01T22:26:52.2Z\tinfo\tads\tXDS: Pushing Services:3 ConnectedEndpoints:2 Version:2026-12-01T22:26:52Z/7
2026-12-01T22:26:53.1Z\tinfo\tads\tPush debounce stable[2] 1 for config Gateway/default/gw: 10ms since last change, 10ms since last push, forced=false
";
        let seen = pushes(log);
        // The second push has not been logged as pushed yet: its update is not committed.
        assert_eq!(seen.committed, 2);
        assert_eq!(seen.version.as_deref(), Some("2026-12-01T22:26:52Z/7"));
        let log = format!(
            "{log}2026-12-01T22:26:53.2Z\tinfo\tads\tXDS: Pushing Services:3 ConnectedEndpoints:2 Version:2026-12-01T22:26:53Z/8\n"
        );
        let seen = pushes(&log);
        assert_eq!(seen.committed, 3);
        assert_eq!(push_counter(seen.version.as_deref().unwrap()), Some(8));
    }

    #[test]
    fn an_object_the_store_refuses_is_read_in_istios_words() {
        let log = "2026-12-02T00:30:00Z\twarn\tadsc\tError adding a new resource to the store service entry port name http-port already defined\n";
        let seen = pushes(log);
        assert_eq!(
            seen.refusals,
            vec![(
                0,
                "service entry port name http-port already defined".to_string()
            )]
        );
        assert!(
            pushes("2026-12-02T00:30:00Z\tinfo\tadsc\tReceived\n")
                .refusals
                .is_empty()
        );
    }

    #[test]
    fn a_refused_directory_is_read_in_istios_words() {
        let log = "2026-12-01T22:26:52Z\twarn\tunable to reload file configuration /run/x/config: cannot parse proto message for bad: unknown value \"\\\"SIMPEL\\\"\" for enum istio.networking.v1alpha3.ClientTLSSettings.TLSmode\n";
        let seen = pushes(log);
        assert_eq!(seen.refusals.len(), 1);
        assert!(
            seen.refusals[0]
                .1
                .starts_with("cannot parse proto message for bad: unknown value"),
            "{:?}",
            seen.refusals
        );
    }
}
