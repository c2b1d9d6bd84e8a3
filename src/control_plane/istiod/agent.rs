//! The harness as pilot-agent, for one proxy: an upstream ADS stream to istiod with the proxy's
//! Istio identity, whose responses go — after the one strip of Istio-only extensions — into the
//! proxy's [`Delivery`] (and so through the local network model to its Envoy). Envoy's answer is
//! carried back: its ACK as an ACK, its NACK as a NACK with Envoy's own words.
//!
//! Like Envoy, it asks istiod for every cluster and listener, then for the endpoints of the EDS
//! clusters and the route configurations the listeners name. When istiod ends the stream (it
//! closes long-lived ones), the agent reconnects and asks for everything again.
//!
//! A [`Agent::barrier`] answers "has everything istiod decided to send this proxy arrived?": it
//! adds a probe route name to the RDS subscription; istiod handles one connection's pushes and
//! requests in order, so once the response naming the probe is here, every push istiod had
//! started for this proxy has been received before it.
//!
//! What it does not do: decide when a change is in force (the control plane does), or talk to
//! Envoy (the delivery does).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::Message;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::strip::strip_istio_only;
use crate::delivery::{Delivery, Refusal};
use crate::mesh::ProxyRole;
use crate::wait::{Look, Wait, WaitError};
use crate::xds::{ProxyResources, ResourceType};

/// The route names a barrier asks for; nothing real is ever named so.
const PROBE_PREFIX: &str = "egress-conformance-barrier-";
/// How long istiod may refuse connections before the agent gives up (it opens its gRPC port
/// only once its caches have synced).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where an agent stands, for waits and reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AgentState {
    pub connected: bool,
    /// Responses received from istiod.
    pub received: u64,
    /// Of those, how many Envoy has answered (ACKed or NACKed upstream).
    pub answered: u64,
    /// The last version istiod sent, per type.
    pub versions: BTreeMap<&'static str, String>,
    /// Envoy's last NACK, carried upstream.
    pub rejected: Option<Rejected>,
    /// What ended the agent, if it ended.
    pub failed: Option<String>,
    /// How often istiod ended the stream and the agent opened a new one, and why the last time.
    pub reconnects: u32,
    pub last_reconnect: Option<String>,
}

/// A NACK Envoy sent for what istiod made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejected {
    pub type_url: String,
    pub version: String,
    pub detail: String,
}

impl AgentState {
    /// Every response istiod sent has been answered by Envoy.
    pub(crate) fn settled(&self) -> bool {
        self.connected && self.received > 0 && self.received == self.answered
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum AgentError {
    #[error("the {proxy}'s agent stopped: {reason}")]
    Stopped { proxy: ProxyRole, reason: String },
    #[error("the {proxy}'s agent: {0}", proxy = .1)]
    TimedOut(String, ProxyRole),
}

enum Command {
    Barrier(oneshot::Sender<()>),
}

/// What an agent needs: where istiod is, whom it speaks for, where the config goes.
pub(crate) struct AgentConfig {
    pub istiod: SocketAddr,
    pub proxy: ProxyRole,
    pub node: Node,
    pub delivery: Delivery,
    /// How long Envoy may take to answer one delivery.
    pub answer_timeout: Duration,
}

/// A running agent; dropping it stops it.
pub(crate) struct Agent {
    proxy: ProxyRole,
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<AgentState>,
    task: JoinHandle<()>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Agent {
    pub(crate) fn spawn(config: AgentConfig) -> Agent {
        let (commands, inbox) = mpsc::unbounded_channel();
        let (report, state) = watch::channel(AgentState::default());
        let proxy = config.proxy;
        let task = tokio::spawn(async move {
            let mut session = Session::new(config, report);
            let reason = session.run(inbox).await;
            session.report.send_modify(|s| {
                s.connected = false;
                s.failed = Some(reason);
            });
        });
        Agent {
            proxy,
            commands,
            state,
            task,
        }
    }

    pub(crate) fn state(&self) -> AgentState {
        self.state.borrow().clone()
    }

    /// Until every push istiod had started for this proxy has arrived (see the module docs).
    pub(crate) async fn barrier(&self, timeout: Duration) -> Result<(), AgentError> {
        let (done, reached) = oneshot::channel();
        self.commands
            .send(Command::Barrier(done))
            .map_err(|_| self.stopped())?;
        match tokio::time::timeout(timeout, reached).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.stopped()),
            Err(_) => Err(AgentError::TimedOut(
                format!(
                    "istiod did not answer a barrier within {timeout:?}; agent: {:?}",
                    self.state()
                ),
                self.proxy,
            )),
        }
    }

    /// Until Envoy has answered everything istiod sent (or NACKed something).
    pub(crate) async fn settled(&self, timeout: Duration) -> Result<AgentState, AgentError> {
        let mut changes = self.state.clone();
        let looked = Wait::new(
            format!("the {} to answer everything istiod sent", self.proxy),
            timeout,
        )
        .on_change(&mut changes, || {
            let state = self.state();
            async move {
                if let Some(reason) = &state.failed {
                    return Err(reason.clone());
                }
                Ok(if state.rejected.is_some() || state.settled() {
                    Look::Ready(state)
                } else {
                    Look::NotYet(format!(
                        "{} of {} responses answered",
                        state.answered, state.received
                    ))
                })
            }
        })
        .await;
        match looked {
            Ok(settled) => Ok(settled.value),
            Err(WaitError::Failed(reason)) => Err(AgentError::Stopped {
                proxy: self.proxy,
                reason,
            }),
            Err(WaitError::TimedOut(t)) => Err(AgentError::TimedOut(t.to_string(), self.proxy)),
        }
    }

    fn stopped(&self) -> AgentError {
        AgentError::Stopped {
            proxy: self.proxy,
            reason: self
                .state()
                .failed
                .unwrap_or_else(|| "it is gone".to_string()),
        }
    }
}

/// What istiod has sent this proxy, per type.
#[derive(Default)]
struct Cache {
    clusters: Vec<Cluster>,
    endpoints: BTreeMap<String, ClusterLoadAssignment>,
    listeners: Vec<Listener>,
    routes: BTreeMap<String, RouteConfiguration>,
}

impl Cache {
    fn resources(&self, eds: &BTreeSet<String>, rds: &BTreeSet<String>) -> ProxyResources {
        ProxyResources {
            clusters: self.clusters.clone(),
            endpoints: self
                .endpoints
                .iter()
                .filter(|(name, _)| eds.contains(*name))
                .map(|(_, cla)| cla.clone())
                .collect(),
            listeners: self.listeners.clone(),
            routes: self
                .routes
                .iter()
                .filter(|(name, _)| rds.contains(*name))
                .map(|(_, rc)| rc.clone())
                .collect(),
        }
    }
}

/// The latest response of one type, and what was done about it.
#[derive(Default, Clone)]
struct TypeState {
    version: String,
    nonce: String,
    /// The version Envoy last accepted (what a NACK reports as still in force).
    accepted: String,
    /// The names the last request asked for (EDS and RDS).
    requested: BTreeSet<String>,
    /// Received but not yet answered upstream.
    /// Responses received since the last answer; the answer covers them all (the latest
    /// nonce acknowledges the type).
    unanswered: u64,
}

struct Session {
    config: AgentConfig,
    report: watch::Sender<AgentState>,
    cache: Cache,
    types: BTreeMap<ResourceType, TypeState>,
    probes: u64,
    /// The probe route name of the barrier under way, and who waits for it.
    barrier: Option<(String, oneshot::Sender<()>)>,
}

impl Session {
    fn new(config: AgentConfig, report: watch::Sender<AgentState>) -> Session {
        Session {
            config,
            report,
            cache: Cache::default(),
            types: BTreeMap::new(),
            probes: 0,
            barrier: None,
        }
    }

    /// Serves the proxy until the agent is dropped or istiod cannot be reached; the reason it
    /// ended.
    async fn run(&mut self, mut inbox: mpsc::UnboundedReceiver<Command>) -> String {
        loop {
            let client = match self.connect().await {
                Ok(client) => client,
                Err(reason) => return reason,
            };
            match self.stream(client, &mut inbox).await {
                Ended::Reconnect(reason) => {
                    self.report.send_modify(|s| {
                        s.connected = false;
                        s.reconnects += 1;
                        s.last_reconnect = Some(reason);
                    });
                }
                Ended::Stop(reason) => return reason,
            }
        }
    }

    async fn connect(
        &self,
    ) -> Result<AggregatedDiscoveryServiceClient<tonic::transport::Channel>, String> {
        let endpoint = format!("http://{}", self.config.istiod);
        let looked = Wait::new(format!("istiod's ADS port {endpoint}"), CONNECT_TIMEOUT)
            .every(Duration::from_millis(20))
            .poll_owned(|| {
                let endpoint = endpoint.clone();
                async move {
                    Ok::<_, String>(
                        match AggregatedDiscoveryServiceClient::connect(endpoint).await {
                            Ok(client) => Look::Ready(client),
                            Err(e) => Look::NotYet(e.to_string()),
                        },
                    )
                }
            })
            .await;
        looked.map(|s| s.value).map_err(|e| e.to_string())
    }

    async fn stream(
        &mut self,
        mut client: AggregatedDiscoveryServiceClient<tonic::transport::Channel>,
        inbox: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Ended {
        let (requests, outbox) = mpsc::unbounded_channel::<DiscoveryRequest>();
        // The node goes with the stream's first request only.
        let mut node = Some(self.config.node.clone());
        let mut send = |mut request: DiscoveryRequest| {
            request.node = node.take();
            let _ = requests.send(request);
        };
        // A new stream starts over: every type, with the names already known.
        for kind in [ResourceType::Cluster, ResourceType::Listener] {
            send(request(kind, &BTreeSet::new(), "", ""));
        }
        for kind in [ResourceType::Endpoint, ResourceType::Route] {
            if let Some(state) = self.types.get_mut(&kind) {
                state.nonce.clear();
                if !state.requested.is_empty() {
                    send(request(kind, &state.requested, &state.accepted, ""));
                }
            }
        }
        let response = client
            .stream_aggregated_resources(UnboundedReceiverStream::new(outbox))
            .await;
        let mut inbound = match response {
            Ok(response) => response.into_inner(),
            Err(status) => return Ended::Reconnect(status.to_string()),
        };
        self.report.send_modify(|s| s.connected = true);
        let mut answer: Option<Answer> = None;
        loop {
            tokio::select! {
                message = inbound.message() => match message {
                    Ok(Some(response)) => {
                        for request in self.receive(response) {
                            send(request);
                        }
                        let delivery = self.config.delivery.clone();
                        let (proxy, timeout) = (self.config.proxy, self.config.answer_timeout);
                        answer = Some(Box::pin(async move { delivery.answered(proxy, timeout).await }));
                    }
                    Ok(None) => return Ended::Reconnect("istiod ended the stream".into()),
                    Err(status) => return Ended::Reconnect(status.to_string()),
                },
                answered = async { answer.as_mut().expect("guarded").await }, if answer.is_some() => {
                    answer = None;
                    match answered {
                        Ok(()) => {
                            for request in self.answer(None) {
                                send(request);
                            }
                        }
                        Err(Refusal::Rejected { type_url, detail, .. }) => {
                            for request in self.answer(Some((type_url, detail))) {
                                send(request);
                            }
                        }
                        Err(other) => return Ended::Stop(other.to_string()),
                    }
                }
                command = inbox.recv() => match command {
                    Some(Command::Barrier(done)) => {
                        self.probes += 1;
                        let probe = format!("{PROBE_PREFIX}{}", self.probes);
                        self.barrier = Some((probe, done));
                        if let Some(request) = self.probe_request() {
                            send(request);
                        }
                    }
                    None => return Ended::Stop("the control plane let go of its agent".into()),
                },
            }
        }
    }

    /// Take in one response; the requests it calls for (new EDS or RDS names, a barrier's
    /// probe again when its request went stale).
    fn receive(&mut self, response: DiscoveryResponse) -> Vec<DiscoveryRequest> {
        let Some(kind) = ResourceType::from_type_url(&response.type_url) else {
            // Nothing else is asked for; a stray type is acknowledged and ignored.
            return vec![DiscoveryRequest {
                type_url: response.type_url,
                version_info: response.version_info,
                response_nonce: response.nonce,
                ..Default::default()
            }];
        };
        let mut names_in_response = BTreeSet::new();
        match kind {
            ResourceType::Cluster => {
                self.cache.clusters = decode_all(&response);
            }
            ResourceType::Listener => {
                self.cache.listeners = decode_all(&response);
            }
            ResourceType::Endpoint => {
                for cla in decode_all::<ClusterLoadAssignment>(&response) {
                    names_in_response.insert(cla.cluster_name.clone());
                    self.cache.endpoints.insert(cla.cluster_name.clone(), cla);
                }
            }
            ResourceType::Route => {
                for rc in decode_all::<RouteConfiguration>(&response) {
                    names_in_response.insert(rc.name.clone());
                    self.cache.routes.insert(rc.name.clone(), rc);
                }
            }
        }
        let state = self.types.entry(kind).or_default();
        state.version = response.version_info.clone();
        state.nonce = response.nonce.clone();
        state.unanswered += 1;
        self.report.send_modify(|s| {
            s.received += 1;
            s.versions
                .insert(kind.short_name(), response.version_info.clone());
        });
        // A barrier is reached once istiod answers the subscription naming its probe.
        if kind == ResourceType::Route
            && let Some((probe, _)) = &self.barrier
            && names_in_response.contains(probe)
        {
            let (probe, done) = self.barrier.take().expect("checked");
            self.cache.routes.remove(&probe);
            let _ = done.send(());
        }
        // The names the latest clusters and listeners call for, as Envoy would ask for them.
        let current = self.cache.resources(&BTreeSet::new(), &BTreeSet::new());
        let mut requests = Vec::new();
        for named in [ResourceType::Endpoint, ResourceType::Route] {
            let mut wanted = crate::xds::expected_names(&current, named);
            if named == ResourceType::Route
                && let Some((probe, _)) = &self.barrier
            {
                wanted.insert(probe.clone());
            }
            let state = self.types.entry(named).or_default();
            // A request istiod found stale (a response crossed it) is answered for the old
            // names: ask again with the newest nonce.
            let stale = named == kind && names_in_response != wanted;
            if wanted != state.requested || stale {
                state.requested = wanted.clone();
                requests.push(request(named, &wanted, &state.accepted, &state.nonce));
            }
        }
        let names = |kind| {
            self.types
                .get(&kind)
                .map(|t: &TypeState| t.requested.clone())
                .unwrap_or_default()
        };
        let resources = self
            .cache
            .resources(&names(ResourceType::Endpoint), &names(ResourceType::Route));
        if let Err(refusal) = self
            .config
            .delivery
            .deliver(self.config.proxy, strip_istio_only(resources))
        {
            self.report
                .send_modify(|s| s.failed = Some(refusal.to_string()));
        }
        requests
    }

    /// Envoy has answered the latest delivery: ACK (or NACK the rejected type) upstream.
    fn answer(&mut self, rejected: Option<(String, String)>) -> Vec<DiscoveryRequest> {
        let mut requests = Vec::new();
        let mut answered = 0;
        for (kind, state) in self.types.iter_mut() {
            if state.unanswered == 0 {
                continue;
            }
            answered += std::mem::take(&mut state.unanswered);
            let names = match kind {
                ResourceType::Endpoint | ResourceType::Route => state.requested.clone(),
                _ => BTreeSet::new(),
            };
            match &rejected {
                Some((type_url, detail)) if type_url == kind.type_url() => {
                    let mut nack = request(*kind, &names, &state.accepted, &state.nonce);
                    nack.error_detail = Some(RpcStatus {
                        code: tonic::Code::InvalidArgument as i32,
                        message: detail.clone(),
                        details: Vec::new(),
                    });
                    requests.push(nack);
                    let rejected = Rejected {
                        type_url: type_url.clone(),
                        version: state.version.clone(),
                        detail: detail.clone(),
                    };
                    self.report.send_modify(|s| s.rejected = Some(rejected));
                }
                _ => {
                    state.accepted = state.version.clone();
                    requests.push(request(*kind, &names, &state.version, &state.nonce));
                }
            }
        }
        self.report.send_modify(|s| s.answered += answered);
        requests
    }

    /// The RDS request that subscribes the barrier's probe, with the latest RDS nonce.
    fn probe_request(&mut self) -> Option<DiscoveryRequest> {
        let (probe, _) = self.barrier.as_ref()?;
        let state = self.types.entry(ResourceType::Route).or_default();
        let mut names = state.requested.clone();
        names.insert(probe.clone());
        state.requested = names.clone();
        Some(request(
            ResourceType::Route,
            &names,
            &state.accepted,
            &state.nonce,
        ))
    }
}

/// Envoy's answer to the latest delivery, on its way.
type Answer = std::pin::Pin<Box<dyn Future<Output = Result<(), Refusal>> + Send>>;

enum Ended {
    Reconnect(String),
    Stop(String),
}

fn request(
    kind: ResourceType,
    names: &BTreeSet<String>,
    version: &str,
    nonce: &str,
) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: kind.type_url().to_string(),
        version_info: version.to_string(),
        response_nonce: nonce.to_string(),
        resource_names: names.iter().cloned().collect(),
        ..Default::default()
    }
}

/// Every resource of a response as `M`; one that does not decode is left out (Envoy would NACK
/// it, and istiod's own types always decode).
fn decode_all<M: Message + Default>(response: &DiscoveryResponse) -> Vec<M> {
    response
        .resources
        .iter()
        .filter_map(|any| M::decode(any.value.as_slice()).ok())
        .collect()
}
