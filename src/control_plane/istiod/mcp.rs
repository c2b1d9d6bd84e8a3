//! The harness as istiod's config source: an ADS server istiod's MCP client connects to
//! (`meshConfig.configSources: [{address: xds://…}]`), serving each Istio kind as a collection of
//! `istio.mcp.v1alpha1.Resource`s, the way a cluster's API server feeds istiod in Kubernetes.
//!
//! Why not `--configDir`: istiod's file watcher waits a fixed 250 ms (1.31) after the last file
//! event before it reads the directory again, which would be most of every step's time. Over MCP
//! istiod takes a change as soon as it arrives, and its ACK says when it has: istiod's client
//! writes a response into its config store before it acknowledges the response, so an ACK of the
//! version that carried a change means the store holds it (validated by Istio's own rules; what
//! they reject is logged and left out).
//!
//! istiod subscribes to every collection it knows (security, telemetry, Gateway API, …) and is
//! not ready until each has been answered once; the ones the harness does not serve are answered
//! empty. The protocol decisions are a pure state machine ([`McpState`]); the tonic service only
//! carries them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::wait::{Look, Wait, WaitError};

/// The API group of the kinds the harness serves.
const NETWORKING: &str = "networking.istio.io";
/// How long `shutdown` lets the stream end before it aborts the server.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

type Outbox = mpsc::UnboundedSender<Result<DiscoveryResponse, Status>>;

/// One kind's objects as last published, and the publication that last changed them.
#[derive(Debug, Default, Clone)]
struct Collection {
    resources: Vec<Any>,
    changed_at: u64,
}

/// One subscription of a stream: a type URL istiod asked for.
#[derive(Debug, Clone)]
struct Subscription {
    /// The kind it is, when it is one the harness serves.
    kind: Option<String>,
    sent_nonce: String,
    sent_version: u64,
    acked_version: Option<u64>,
}

/// What istiod said no to, with its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct McpNack {
    pub type_url: String,
    pub version: u64,
    pub message: String,
}

/// The protocol: collections, streams and their subscriptions. Pure; the server carries it.
#[derive(Debug, Default)]
pub(crate) struct McpState {
    collections: BTreeMap<String, Collection>,
    version: u64,
    streams: HashMap<u64, BTreeMap<String, Subscription>>,
    next_nonce: u64,
    nacks: Vec<McpNack>,
}

/// The kind a type URL names, when it is one of the harness's: `networking.istio.io/<v>/<Kind>`.
fn served_kind(type_url: &str, served: &BTreeSet<String>) -> Option<String> {
    let mut parts = type_url.split('/');
    let (group, _version, kind) = (parts.next()?, parts.next()?, parts.next()?);
    (group == NETWORKING && parts.next().is_none() && served.contains(kind))
        .then(|| kind.to_string())
}

impl McpState {
    /// A state serving `kinds` (and answering every other collection empty).
    pub(crate) fn new(kinds: &[&str]) -> McpState {
        McpState {
            collections: kinds
                .iter()
                .map(|k| (k.to_string(), Collection::default()))
                .collect(),
            ..McpState::default()
        }
    }

    fn served(&self) -> BTreeSet<String> {
        self.collections.keys().cloned().collect()
    }

    fn response(&mut self, type_url: &str, kind: Option<&str>) -> (DiscoveryResponse, u64) {
        self.next_nonce += 1;
        let resources = kind
            .and_then(|k| self.collections.get(k))
            .map(|c| c.resources.clone())
            .unwrap_or_default();
        let response = DiscoveryResponse {
            version_info: self.version.to_string(),
            resources,
            type_url: type_url.to_string(),
            nonce: format!("n{}", self.next_nonce),
            ..Default::default()
        };
        (response, self.version)
    }

    pub(crate) fn open(&mut self, stream: u64) {
        self.streams.insert(stream, BTreeMap::new());
    }

    pub(crate) fn close(&mut self, stream: u64) {
        self.streams.remove(&stream);
    }

    /// One request of `stream`; the responses it calls for.
    pub(crate) fn request(
        &mut self,
        stream: u64,
        request: DiscoveryRequest,
    ) -> Vec<DiscoveryResponse> {
        let type_url = request.type_url.clone();
        let known = self
            .streams
            .get(&stream)
            .and_then(|subs| subs.get(&type_url))
            .cloned();
        match known {
            Some(sub) if request.response_nonce == sub.sent_nonce => {
                match request.error_detail {
                    Some(status) => self.nacks.push(McpNack {
                        type_url: type_url.clone(),
                        version: sub.sent_version,
                        message: status.message,
                    }),
                    None => {
                        if let Some(s) = self.sub_mut(stream, &type_url) {
                            s.acked_version = Some(sub.sent_version);
                        }
                    }
                }
                Vec::new()
            }
            // A request answering an older response: a newer one is on its way.
            Some(_) if !request.response_nonce.is_empty() => Vec::new(),
            _ => {
                let kind = served_kind(&type_url, &self.served());
                let (response, version) = self.response(&type_url, kind.as_deref());
                if let Some(subs) = self.streams.get_mut(&stream) {
                    subs.insert(
                        type_url,
                        Subscription {
                            kind,
                            sent_nonce: response.nonce.clone(),
                            sent_version: version,
                            acked_version: None,
                        },
                    );
                }
                vec![response]
            }
        }
    }

    fn sub_mut(&mut self, stream: u64, type_url: &str) -> Option<&mut Subscription> {
        self.streams.get_mut(&stream)?.get_mut(type_url)
    }

    /// Replace every served collection; the pushes it calls for, by stream. Returns the
    /// publication's version (unchanged when nothing changed).
    pub(crate) fn publish(
        &mut self,
        mut objects: BTreeMap<String, Vec<Any>>,
    ) -> (u64, Vec<(u64, DiscoveryResponse)>) {
        let changed: Vec<String> = self
            .collections
            .iter()
            .filter(|(kind, c)| objects.get(*kind).map_or(&[][..], Vec::as_slice) != c.resources)
            .map(|(kind, _)| kind.clone())
            .collect();
        if changed.is_empty() {
            return (self.version, Vec::new());
        }
        self.version += 1;
        for kind in &changed {
            let collection = self.collections.get_mut(kind).expect("listed above");
            collection.resources = objects.remove(kind).unwrap_or_default();
            collection.changed_at = self.version;
        }
        let mut pushes = Vec::new();
        let targets: Vec<(u64, String, String)> = self
            .streams
            .iter()
            .flat_map(|(stream, subs)| {
                subs.iter().filter_map(|(url, sub)| {
                    let kind = sub.kind.as_ref()?;
                    changed
                        .contains(kind)
                        .then(|| (*stream, url.clone(), kind.clone()))
                })
            })
            .collect();
        for (stream, url, kind) in targets {
            let (response, version) = self.response(&url, Some(&kind));
            if let Some(sub) = self.sub_mut(stream, &url) {
                sub.sent_nonce = response.nonce.clone();
                sub.sent_version = version;
            }
            pushes.push((stream, response));
        }
        (self.version, pushes)
    }

    /// Whether istiod has taken every served collection as it stands: each was asked for and
    /// its last change acknowledged. `Err` with the kinds still waiting and why.
    pub(crate) fn taken(&self) -> Result<(), String> {
        let waiting: Vec<String> = self
            .collections
            .iter()
            .filter_map(|(kind, collection)| {
                let subs: Vec<&Subscription> = self
                    .streams
                    .values()
                    .flat_map(|s| s.values())
                    .filter(|s| s.kind.as_deref() == Some(kind))
                    .collect();
                if subs.is_empty() {
                    return Some(format!("{kind}: not asked for"));
                }
                let acked = subs
                    .iter()
                    .all(|s| s.acked_version.is_some_and(|v| v >= collection.changed_at));
                (!acked).then(|| {
                    format!(
                        "{kind}: change {} not acknowledged (last ACK {:?})",
                        collection.changed_at,
                        subs.iter().map(|s| s.acked_version).max().flatten()
                    )
                })
            })
            .collect();
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(waiting.join("; "))
        }
    }

    pub(crate) fn nacks(&self) -> &[McpNack] {
        &self.nacks
    }
}

struct Shared {
    inner: Mutex<(McpState, HashMap<u64, Outbox>, u64)>,
    changed: watch::Sender<u64>,
    stopping: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, (McpState, HashMap<u64, Outbox>, u64)> {
        // Every mutation is a plain field update: a panic leaves a state fit to report on.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The running config source.
pub(crate) struct McpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum McpError {
    #[error("binding istiod's config source to 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    #[error("istiod's config source: {0}")]
    NotTaken(String),
    #[error("istiod refused {} (version {}): {}", .0.type_url, .0.version, .0.message)]
    Nack(McpNack),
}

impl McpServer {
    /// Serves `kinds` on `127.0.0.1:0`, holding `objects` from the start.
    pub(crate) async fn start(
        kinds: &[&str],
        objects: BTreeMap<String, Vec<Any>>,
    ) -> Result<McpServer, McpError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(McpError::Bind)?;
        let addr = listener.local_addr().map_err(McpError::Bind)?;
        let mut state = McpState::new(kinds);
        state.publish(objects);
        let shared = Arc::new(Shared {
            inner: Mutex::new((state, HashMap::new(), 0)),
            changed: watch::Sender::new(0),
            stopping: watch::Sender::new(false),
        });
        let service = AggregatedDiscoveryServiceServer::new(McpService {
            shared: Arc::clone(&shared),
        })
        // istiod's first responses carry every object at once.
        .max_decoding_message_size(64 << 20);
        let mut stopping = shared.stopping.subscribe();
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    async move {
                        let _ = stopping.wait_for(|s| *s).await;
                    },
                ),
        );
        Ok(McpServer {
            addr,
            shared,
            task: Some(task),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Publish the collections' new contents; the version that carries them.
    pub(crate) fn publish(&self, objects: BTreeMap<String, Vec<Any>>) -> u64 {
        let mut guard = self.shared.lock();
        let (state, outboxes, _) = &mut *guard;
        let (version, pushes) = state.publish(objects);
        for (stream, response) in pushes {
            if let Some(outbox) = outboxes.get(&stream) {
                let _ = outbox.send(Ok(response));
            }
        }
        drop(guard);
        self.shared.notify();
        version
    }

    /// Until istiod has acknowledged every collection as published, or refused one.
    pub(crate) async fn taken(&self, timeout: Duration) -> Result<(), McpError> {
        let mut changes = self.shared.changed.subscribe();
        let nacks_before = self.shared.lock().0.nacks().len();
        let shared = &self.shared;
        Wait::new("istiod to take the published config (its ACK)", timeout)
            .on_change(&mut changes, || {
                let guard = shared.lock();
                let state = &guard.0;
                let result = match state.nacks().get(nacks_before) {
                    Some(nack) => Err(McpError::Nack(nack.clone())),
                    None => Ok(match state.taken() {
                        Ok(()) => Look::Ready(()),
                        Err(waiting) => Look::NotYet(waiting),
                    }),
                };
                std::future::ready(result)
            })
            .await
            .map(drop)
            .map_err(|e| match e {
                WaitError::Failed(e) => e,
                WaitError::TimedOut(t) => McpError::NotTaken(t.to_string()),
            })
    }

    pub(crate) async fn shutdown(mut self) {
        self.shared.stopping.send_replace(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        self.shared.stopping.send_replace(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct McpService {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for McpService {
    type StreamAggregatedResourcesStream =
        UnboundedReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream =
        tokio_stream::Empty<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let mut inbound = request.into_inner();
        let (outbox, responses) = mpsc::unbounded_channel();
        let stream = {
            let mut guard = self.shared.lock();
            guard.2 += 1;
            let stream = guard.2;
            guard.0.open(stream);
            guard.1.insert(stream, outbox);
            stream
        };
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            let mut stopping = shared.stopping.subscribe();
            loop {
                let message = tokio::select! {
                    _ = stopping.wait_for(|s| *s) => break,
                    message = inbound.message() => message,
                };
                let Ok(Some(request)) = message else { break };
                let mut guard = shared.lock();
                let (state, outboxes, _) = &mut *guard;
                for response in state.request(stream, request) {
                    if let Some(outbox) = outboxes.get(&stream) {
                        let _ = outbox.send(Ok(response));
                    }
                }
                drop(guard);
                shared.notify();
            }
            let mut guard = shared.lock();
            guard.0.close(stream);
            guard.1.remove(&stream);
            drop(guard);
            shared.notify();
        });
        Ok(Response::new(UnboundedReceiverStream::new(responses)))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "istiod's MCP client speaks state-of-the-world ADS",
        ))
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::google::rpc::Status as RpcStatus;

    use super::*;

    const SE: &str = "networking.istio.io/v1/ServiceEntry";
    const AUTHZ: &str = "security.istio.io/v1/AuthorizationPolicy";

    fn any(tag: &str) -> Any {
        Any {
            type_url: "type.googleapis.com/istio.mcp.v1alpha1.Resource".into(),
            value: tag.as_bytes().to_vec(),
        }
    }

    fn ask(type_url: &str, nonce: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: type_url.into(),
            response_nonce: nonce.into(),
            ..Default::default()
        }
    }

    fn objects(kind: &str, tags: &[&str]) -> BTreeMap<String, Vec<Any>> {
        BTreeMap::from([(kind.to_string(), tags.iter().map(|t| any(t)).collect())])
    }

    #[test]
    fn a_subscription_is_answered_with_its_kind_and_others_empty() {
        let mut state = McpState::new(&["ServiceEntry", "Gateway"]);
        state.publish(objects("ServiceEntry", &["a", "b"]));
        state.open(1);
        let se = state.request(1, ask(SE, ""));
        assert_eq!(se.len(), 1);
        assert_eq!(se[0].resources.len(), 2);
        assert_eq!(se[0].type_url, SE);
        let other = state.request(1, ask(AUTHZ, ""));
        assert_eq!(other.len(), 1);
        assert!(other[0].resources.is_empty());
        // Not taken: nothing acknowledged yet, and Gateway never asked for.
        let waiting = state.taken().unwrap_err();
        assert!(waiting.contains("Gateway: not asked for"), "{waiting}");
        assert!(
            waiting.contains("ServiceEntry: change 1 not acknowledged"),
            "{waiting}"
        );
    }

    #[test]
    fn a_change_is_pushed_and_taken_once_its_response_is_acknowledged() {
        let mut state = McpState::new(&["ServiceEntry"]);
        state.open(1);
        let first = state.request(1, ask(SE, "")).remove(0);
        assert!(state.request(1, ask(SE, &first.nonce)).is_empty());
        assert_eq!(state.taken(), Ok(()));
        let (version, pushes) = state.publish(objects("ServiceEntry", &["a"]));
        assert_eq!(version, 1);
        assert_eq!(pushes.len(), 1);
        assert!(state.taken().is_err());
        // An ACK of the older response does not count.
        assert!(state.request(1, ask(SE, &first.nonce)).is_empty());
        assert!(state.taken().is_err());
        let push = &pushes[0].1;
        state.request(1, ask(SE, &push.nonce));
        assert_eq!(state.taken(), Ok(()));
        // Publishing the same again changes nothing and pushes nothing.
        let (again, pushes) = state.publish(objects("ServiceEntry", &["a"]));
        assert_eq!((again, pushes.len()), (1, 0));
    }

    #[test]
    fn a_nack_is_kept_with_istiods_words() {
        let mut state = McpState::new(&["ServiceEntry"]);
        state.open(1);
        let first = state.request(1, ask(SE, "")).remove(0);
        let mut nack = ask(SE, &first.nonce);
        nack.error_detail = Some(RpcStatus {
            code: 3,
            message: "bad".into(),
            details: vec![],
        });
        state.request(1, nack);
        assert_eq!(state.nacks().len(), 1);
        assert_eq!(state.nacks()[0].message, "bad");
        assert!(state.taken().is_err());
    }

    #[test]
    fn only_networking_kinds_the_harness_serves_are_its_own() {
        let served: BTreeSet<String> = ["ServiceEntry".to_string()].into();
        assert_eq!(served_kind(SE, &served).as_deref(), Some("ServiceEntry"));
        assert_eq!(
            served_kind("networking.istio.io/v1alpha3/ServiceEntry", &served).as_deref(),
            Some("ServiceEntry")
        );
        assert_eq!(served_kind("networking.istio.io/v1/Sidecar", &served), None);
        assert_eq!(served_kind(AUTHZ, &served), None);
        assert_eq!(served_kind("type.googleapis.com/x", &served), None);
    }
}
