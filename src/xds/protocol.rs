//! The State-of-the-World ADS protocol as a pure state machine: publications and Envoy's
//! requests go in, the responses to send come out, and ACK/NACK state can be read back.
//!
//! It keeps, per node, the latest publication (a version per type, bumped only when that
//! type's content changes) and the session of the node's current stream (per type: the names
//! requested, the last response sent, the last ACK and NACK). It does no I/O, holds no locks
//! and knows nothing of tonic: `server.rs` feeds it and delivers what it returns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::ProxyResources;
use super::resources::{self, Encoded, ResourceType};

/// Identifies one ADS stream (one gRPC call) for as long as the control plane lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct StreamId(u64);

/// A NACK as Envoy sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    /// The nonce of the rejected response.
    pub nonce: String,
    /// The version of the rejected response.
    pub version: u64,
    /// Envoy's `error_detail.message`.
    pub message: String,
}

/// One type's protocol state for one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeStatus {
    pub kind: ResourceType,
    /// The version of the latest publication of this type (0: nothing published yet).
    pub published_version: u64,
    /// Whether the node's current stream has asked for this type.
    pub subscribed: bool,
    /// The names the node currently requests (empty for a wildcard request).
    pub requested_names: Vec<String>,
    /// The version of the last response sent on the current stream.
    pub version_sent: Option<u64>,
    /// The nonce of the last response sent on the current stream.
    pub nonce: Option<String>,
    /// The last version the node ACKed on the current stream.
    pub version_acked: Option<u64>,
    /// The last NACK on the current stream, whether or not a later response superseded it.
    pub last_nack: Option<Nack>,
}

/// One node's protocol state, for transcripts and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub node_id: String,
    /// How many times the node was published (0: it connected but was never published).
    pub generation: u64,
    /// Whether the node has an open stream.
    pub connected: bool,
    /// In push order: CDS, EDS, LDS, RDS.
    pub types: Vec<TypeStatus>,
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "generation {}, {}",
            self.generation,
            if self.connected {
                "connected"
            } else {
                "not connected"
            }
        )?;
        for t in &self.types {
            write!(f, "; {}: published v{}", t.kind, t.published_version)?;
            if !t.subscribed {
                write!(f, ", not requested")?;
                continue;
            }
            if !t.kind.is_wildcard() {
                write!(f, ", requested {:?}", t.requested_names)?;
            }
            match (&t.version_sent, &t.nonce) {
                (Some(v), Some(n)) => write!(f, ", sent v{v} (nonce {n})")?,
                _ => write!(f, ", nothing sent")?,
            }
            match t.version_acked {
                Some(v) => write!(f, ", acked v{v}")?,
                None => write!(f, ", nothing acked")?,
            }
            if let Some(nack) = &t.last_nack {
                write!(
                    f,
                    ", nacked v{} (nonce {}): {}",
                    nack.version, nack.nonce, nack.message
                )?;
            }
        }
        Ok(())
    }
}

/// One type as a node ACKed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckedType {
    pub kind: ResourceType,
    pub version: u64,
    /// The names of the resources in the ACKed response.
    pub resource_names: Vec<String>,
}

/// What a node has ACKed of its latest publication: every type awaited, in push order. EDS and
/// RDS appear only when the node requests names of that type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckReport {
    pub node_id: String,
    pub generation: u64,
    pub types: Vec<AckedType>,
}

/// Where a node stands with respect to its latest publication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AckState {
    Acked(AckReport),
    /// The node rejected the latest content of a type.
    Nacked {
        kind: ResourceType,
        nack: Nack,
    },
    /// Something is still missing; each entry says what.
    Pending {
        awaited: Vec<String>,
    },
    NotPublished,
}

/// Why a request ends its stream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RequestError {
    #[error("the first request of a stream carries no node id")]
    MissingNodeId,
    #[error("node {node_id:?} opened a newer stream")]
    Superseded { node_id: String },
}

/// What handling a request produced.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Handled {
    /// To send on the requesting stream, in order.
    pub responses: Vec<DiscoveryResponse>,
    /// An older stream of the same node that this request replaced: close it.
    pub superseded: Option<StreamId>,
}

/// The control plane's whole protocol state.
#[derive(Debug, Default)]
pub(crate) struct AdsProtocol {
    nodes: BTreeMap<String, NodeState>,
    /// Every open stream, with its node once its first request named it.
    streams: HashMap<StreamId, Option<String>>,
    next_stream: u64,
    next_nonce: u64,
}

#[derive(Debug, Default)]
struct NodeState {
    generation: u64,
    published: [Published; 4],
    session: Option<Session>,
}

#[derive(Debug, Default)]
struct Published {
    /// 0 until the first publication.
    version: u64,
    resources: Encoded,
    /// For EDS and RDS: the names Envoy will request once it applied this publication.
    expected_names: BTreeSet<String>,
}

#[derive(Debug)]
struct Session {
    stream: StreamId,
    types: [TypeSession; 4],
}

#[derive(Debug, Default)]
struct TypeSession {
    subscribed: bool,
    names: BTreeSet<String>,
    sent: Option<Sent>,
    acked: Option<Sent>,
    nack: Option<Nack>,
}

/// A response as sent: its version, the names it was computed for (empty for wildcard types,
/// and emptied when the client unsubscribes since it then holds none of them), its nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sent {
    version: u64,
    names: BTreeSet<String>,
    nonce: String,
    resource_names: Vec<String>,
}

impl AdsProtocol {
    /// Registers a new stream; its node becomes known with its first request.
    pub(crate) fn open_stream(&mut self) -> StreamId {
        self.next_stream += 1;
        let id = StreamId(self.next_stream);
        self.streams.insert(id, None);
        id
    }

    /// Forgets a stream; its node is disconnected unless it already opened a newer one.
    pub(crate) fn close_stream(&mut self, stream: StreamId) {
        if let Some(Some(node_id)) = self.streams.remove(&stream)
            && let Some(node) = self.nodes.get_mut(&node_id)
            && node.session.as_ref().is_some_and(|s| s.stream == stream)
        {
            node.session = None;
        }
    }

    /// Replaces a node's desired resources and returns the publication's generation and the
    /// responses to push, in push order, to the node's stream if it has one.
    pub(crate) fn publish(
        &mut self,
        node_id: &str,
        resources: &ProxyResources,
    ) -> (u64, Option<(StreamId, Vec<DiscoveryResponse>)>) {
        let encoded = resources::encode(resources);
        let node = self.nodes.entry(node_id.to_owned()).or_default();
        node.generation += 1;
        for (kind, content) in ResourceType::ALL.into_iter().zip(encoded) {
            let published = &mut node.published[kind.index()];
            if published.version == 0 || published.resources != content {
                published.version += 1;
                published.resources = content;
            }
            published.expected_names = resources::expected_names(resources, kind);
        }
        let generation = node.generation;
        let Some(session) = node.session.as_mut() else {
            return (generation, None);
        };
        let responses = ResourceType::ALL
            .into_iter()
            .filter_map(|kind| {
                respond(
                    kind,
                    &node.published[kind.index()],
                    &mut session.types[kind.index()],
                    &mut self.next_nonce,
                )
            })
            .collect();
        (generation, Some((session.stream, responses)))
    }

    /// Handles one request of `stream`.
    pub(crate) fn handle_request(
        &mut self,
        stream: StreamId,
        request: DiscoveryRequest,
    ) -> Result<Handled, RequestError> {
        let mut superseded = None;
        let node_id = match self.streams.get(&stream) {
            Some(Some(node_id)) => node_id.clone(),
            // The node is named by the first request; later ones may omit it.
            _ => {
                let node_id = request
                    .node
                    .as_ref()
                    .map(|n| n.id.clone())
                    .filter(|id| !id.is_empty())
                    .ok_or(RequestError::MissingNodeId)?;
                self.streams.insert(stream, Some(node_id.clone()));
                let node = self.nodes.entry(node_id.clone()).or_default();
                // A reconnecting node starts from nothing: it gets the full state again.
                let old = node.session.replace(Session {
                    stream,
                    types: Default::default(),
                });
                superseded = old.map(|s| s.stream);
                node_id
            }
        };
        let node = self
            .nodes
            .get_mut(&node_id)
            .ok_or_else(|| RequestError::Superseded {
                node_id: node_id.clone(),
            })?;
        let session = match node.session.as_mut() {
            Some(session) if session.stream == stream => session,
            _ => return Err(RequestError::Superseded { node_id }),
        };
        let mut handled = Handled {
            responses: Vec::new(),
            superseded,
        };
        // Types other than the four (SDS, say) are never configured over this server.
        let Some(kind) = ResourceType::from_type_url(&request.type_url) else {
            return Ok(handled);
        };
        let state = &mut session.types[kind.index()];
        let names: BTreeSet<String> = if kind.is_wildcard() {
            BTreeSet::new()
        } else {
            request.resource_names.into_iter().collect()
        };
        state.subscribed = true;
        if !kind.is_wildcard() && names.is_empty() {
            // Unsubscribed: the client dropped what it had, so a later subscription to the same
            // names must be answered again.
            if let Some(sent) = state.sent.as_mut() {
                sent.names.clear();
            }
        }
        state.names = names;
        if !request.response_nonce.is_empty() {
            match &state.sent {
                Some(sent) if sent.nonce == request.response_nonce => {
                    if let Some(error) = request.error_detail {
                        state.nack = Some(Nack {
                            nonce: sent.nonce.clone(),
                            version: sent.version,
                            message: error.message,
                        });
                    } else if request.version_info == sent.version.to_string() {
                        state.acked = Some(sent.clone());
                    }
                }
                // Stale: a newer response is in flight and its ACK or NACK will follow; only
                // the subscribed names (updated above) count.
                _ => return Ok(handled),
            }
        }
        handled.responses.extend(respond(
            kind,
            &node.published[kind.index()],
            state,
            &mut self.next_nonce,
        ));
        Ok(handled)
    }

    /// Where `node_id` stands with respect to its latest publication.
    pub(crate) fn ack_state(&self, node_id: &str) -> AckState {
        let Some(node) = self.nodes.get(node_id).filter(|n| n.generation > 0) else {
            return AckState::NotPublished;
        };
        let Some(session) = &node.session else {
            return AckState::Pending {
                awaited: vec![format!("node {node_id:?} to connect")],
            };
        };
        for kind in ResourceType::ALL {
            let state = &session.types[kind.index()];
            let published = &node.published[kind.index()];
            if let (Some(nack), Some(sent)) = (&state.nack, &state.sent)
                && nack.nonce == sent.nonce
                && nack.version == published.version
            {
                return AckState::Nacked {
                    kind,
                    nack: nack.clone(),
                };
            }
        }
        let mut awaited = Vec::new();
        let mut types = Vec::new();
        for kind in ResourceType::ALL {
            let state = &session.types[kind.index()];
            let published = &node.published[kind.index()];
            let acked = state
                .acked
                .as_ref()
                .filter(|a| a.version == published.version && a.names == state.names);
            if kind.is_wildcard() {
                // Every proxy's bootstrap subscribes to CDS and LDS; waiting for them even before
                // Envoy asks (it asks for LDS only once its clusters are warm) is what makes a
                // fresh node's wait meaningful.
                if !state.subscribed {
                    awaited.push(format!("{kind}: a request"));
                    continue;
                }
            } else {
                let missing: Vec<&String> =
                    published.expected_names.difference(&state.names).collect();
                if !missing.is_empty() {
                    awaited.push(format!("{kind}: a request for {missing:?}"));
                    continue;
                }
                if state.names.is_empty() {
                    continue;
                }
            }
            match acked {
                Some(acked) => types.push(AckedType {
                    kind,
                    version: acked.version,
                    resource_names: acked.resource_names.clone(),
                }),
                None if kind.is_wildcard() => {
                    awaited.push(format!("{kind}: an ACK of v{}", published.version))
                }
                None => awaited.push(format!(
                    "{kind}: an ACK of v{} for {:?}",
                    published.version, state.names
                )),
            }
        }
        if awaited.is_empty() {
            AckState::Acked(AckReport {
                node_id: node_id.to_owned(),
                generation: node.generation,
                types,
            })
        } else {
            AckState::Pending { awaited }
        }
    }

    /// `node_id`'s protocol state, if it was ever published or connected.
    pub(crate) fn status(&self, node_id: &str) -> Option<NodeStatus> {
        let node = self.nodes.get(node_id)?;
        let types = ResourceType::ALL
            .into_iter()
            .map(|kind| {
                let published_version = node.published[kind.index()].version;
                match node.session.as_ref().map(|s| &s.types[kind.index()]) {
                    Some(state) => TypeStatus {
                        kind,
                        published_version,
                        subscribed: state.subscribed,
                        requested_names: state.names.iter().cloned().collect(),
                        version_sent: state.sent.as_ref().map(|s| s.version),
                        nonce: state.sent.as_ref().map(|s| s.nonce.clone()),
                        version_acked: state.acked.as_ref().map(|a| a.version),
                        last_nack: state.nack.clone(),
                    },
                    None => TypeStatus {
                        kind,
                        published_version,
                        subscribed: false,
                        requested_names: Vec::new(),
                        version_sent: None,
                        nonce: None,
                        version_acked: None,
                        last_nack: None,
                    },
                }
            })
            .collect();
        Some(NodeStatus {
            node_id: node_id.to_owned(),
            generation: node.generation,
            connected: node.session.is_some(),
            types,
        })
    }
}

/// The response `state`'s client needs, if it has not yet seen the published version for the
/// names it currently requests.
fn respond(
    kind: ResourceType,
    published: &Published,
    state: &mut TypeSession,
    next_nonce: &mut u64,
) -> Option<DiscoveryResponse> {
    if published.version == 0 || !state.subscribed {
        return None;
    }
    if !kind.is_wildcard() && state.names.is_empty() {
        return None;
    }
    if state
        .sent
        .as_ref()
        .is_some_and(|s| s.version == published.version && s.names == state.names)
    {
        return None;
    }
    let (resource_names, resources): (Vec<String>, Vec<_>) = published
        .resources
        .iter()
        .filter(|(name, _)| kind.is_wildcard() || state.names.contains(name))
        .cloned()
        .unzip();
    *next_nonce += 1;
    let nonce = next_nonce.to_string();
    state.sent = Some(Sent {
        version: published.version,
        names: state.names.clone(),
        nonce: nonce.clone(),
        resource_names,
    });
    Some(DiscoveryResponse {
        version_info: published.version.to_string(),
        resources,
        type_url: kind.type_url().to_owned(),
        nonce,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        ClusterDiscoveryType, DiscoveryType, EdsClusterConfig,
    };
    use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
    use envoy_types::pb::envoy::config::core::v3::{AggregatedConfigSource, ConfigSource, Node};
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
    use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, Rds,
    };
    use envoy_types::pb::google::protobuf::Any;
    use envoy_types::pb::google::rpc::Status;
    use prost::{Message, Name};

    use ResourceType::{Cluster as CDS, Endpoint as EDS, Listener as LDS, Route as RDS};

    fn ads() -> Option<ConfigSource> {
        Some(ConfigSource {
            config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
            ..Default::default()
        })
    }

    fn eds_cluster(name: &str) -> Cluster {
        Cluster {
            name: name.to_owned(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            eds_cluster_config: Some(EdsClusterConfig {
                eds_config: ads(),
                service_name: String::new(),
            }),
            ..Default::default()
        }
    }

    fn cla(name: &str) -> ClusterLoadAssignment {
        ClusterLoadAssignment {
            cluster_name: name.to_owned(),
            ..Default::default()
        }
    }

    fn rds_listener(name: &str, route: &str) -> Listener {
        let hcm = HttpConnectionManager {
            stat_prefix: name.to_owned(),
            route_specifier: Some(RouteSpecifier::Rds(Rds {
                config_source: ads(),
                route_config_name: route.to_owned(),
            })),
            ..Default::default()
        };
        Listener {
            name: name.to_owned(),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: "envoy.filters.network.http_connection_manager".to_owned(),
                    config_type: Some(ConfigType::TypedConfig(Any {
                        type_url: HttpConnectionManager::type_url(),
                        value: hcm.encode_to_vec(),
                    })),
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn route(name: &str) -> RouteConfiguration {
        RouteConfiguration {
            name: name.to_owned(),
            ..Default::default()
        }
    }

    /// Clusters `a` (and `b` when `two`), their endpoints, listener `l` with route `r`.
    fn resources(two: bool) -> ProxyResources {
        let names: &[&str] = if two { &["a", "b"] } else { &["a"] };
        ProxyResources {
            clusters: names.iter().map(|n| eds_cluster(n)).collect(),
            endpoints: names.iter().map(|n| cla(n)).collect(),
            listeners: vec![rds_listener("l", "r")],
            routes: vec![route("r")],
        }
    }

    fn request(kind: ResourceType, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            version_info: version.to_owned(),
            node: Some(Node {
                id: "proxy".to_owned(),
                ..Default::default()
            }),
            resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
            type_url: kind.type_url().to_owned(),
            response_nonce: nonce.to_owned(),
            ..Default::default()
        }
    }

    fn ack(response: &DiscoveryResponse, kind: ResourceType, names: &[&str]) -> DiscoveryRequest {
        request(kind, names, &response.version_info, &response.nonce)
    }

    fn nack(
        response: &DiscoveryResponse,
        kind: ResourceType,
        previous: &str,
        message: &str,
    ) -> DiscoveryRequest {
        DiscoveryRequest {
            error_detail: Some(Status {
                code: 3,
                message: message.to_owned(),
                details: Vec::new(),
            }),
            ..request(kind, &[], previous, &response.nonce)
        }
    }

    fn names_in(response: &DiscoveryResponse) -> Vec<String> {
        response
            .resources
            .iter()
            .map(|any| match any.type_url.as_str() {
                t if t == CDS.type_url() => Cluster::decode(any.value.as_slice()).unwrap().name,
                t if t == EDS.type_url() => {
                    ClusterLoadAssignment::decode(any.value.as_slice())
                        .unwrap()
                        .cluster_name
                }
                t if t == LDS.type_url() => Listener::decode(any.value.as_slice()).unwrap().name,
                t if t == RDS.type_url() => {
                    RouteConfiguration::decode(any.value.as_slice())
                        .unwrap()
                        .name
                }
                other => panic!("unexpected type {other}"),
            })
            .collect()
    }

    fn one(plane: &mut AdsProtocol, stream: StreamId, req: DiscoveryRequest) -> DiscoveryResponse {
        let mut handled = plane.handle_request(stream, req).unwrap();
        assert_eq!(handled.responses.len(), 1, "{handled:?}");
        handled.responses.remove(0)
    }

    fn none(plane: &mut AdsProtocol, stream: StreamId, req: DiscoveryRequest) {
        let handled = plane.handle_request(stream, req).unwrap();
        assert!(handled.responses.is_empty(), "{handled:?}");
    }

    fn pending(plane: &AdsProtocol) -> Vec<String> {
        match plane.ack_state("proxy") {
            AckState::Pending { awaited } => awaited,
            other => panic!("expected pending, got {other:?}"),
        }
    }

    /// Runs Envoy's initial exchange (CDS, EDS, LDS, RDS, each ACKed) on a new stream.
    fn converge(plane: &mut AdsProtocol) -> StreamId {
        let stream = plane.open_stream();
        let cds = one(plane, stream, request(CDS, &[], "", ""));
        let eds = one(plane, stream, request(EDS, &["a"], "", ""));
        none(plane, stream, ack(&cds, CDS, &[]));
        none(plane, stream, ack(&eds, EDS, &["a"]));
        let lds = one(plane, stream, request(LDS, &[], "", ""));
        let rds = one(plane, stream, request(RDS, &["r"], "", ""));
        none(plane, stream, ack(&lds, LDS, &[]));
        none(plane, stream, ack(&rds, RDS, &["r"]));
        stream
    }

    #[test]
    fn initial_subscription_sends_wildcard_types_whole_and_named_types_by_name() {
        let mut plane = AdsProtocol::default();
        let (generation, pushed) = plane.publish("proxy", &resources(true));
        assert_eq!(generation, 1);
        assert!(pushed.is_none(), "nothing to push before the node connects");
        assert_eq!(
            plane.ack_state("proxy"),
            AckState::Pending {
                awaited: vec!["node \"proxy\" to connect".to_owned()]
            }
        );

        let stream = plane.open_stream();
        let cds = one(&mut plane, stream, request(CDS, &[], "", ""));
        assert_eq!(cds.type_url, CDS.type_url());
        assert_eq!(cds.version_info, "1");
        assert_eq!(names_in(&cds), ["a", "b"]);
        let eds = one(&mut plane, stream, request(EDS, &["b"], "", ""));
        assert_eq!(names_in(&eds), ["b"], "only the requested name");
        assert_ne!(cds.nonce, eds.nonce, "a fresh nonce per response");
        let lds = one(&mut plane, stream, request(LDS, &[], "", ""));
        assert_eq!(names_in(&lds), ["l"]);
        let rds = one(&mut plane, stream, request(RDS, &["r", "missing"], "", ""));
        assert_eq!(
            names_in(&rds),
            ["r"],
            "requested names that do not exist are left out"
        );
        let awaited = pending(&plane);
        assert_eq!(awaited.len(), 4, "{awaited:?}");
        assert!(awaited[0].starts_with("CDS: an ACK of v1"), "{awaited:?}");
    }

    #[test]
    fn nothing_is_sent_before_the_first_publication() {
        let mut plane = AdsProtocol::default();
        let stream = plane.open_stream();
        none(&mut plane, stream, request(CDS, &[], "", ""));
        assert_eq!(plane.ack_state("proxy"), AckState::NotPublished);
        let (_, pushed) = plane.publish("proxy", &resources(false));
        let (to, responses) = pushed.unwrap();
        assert_eq!(to, stream);
        assert_eq!(responses.len(), 1, "only CDS was requested");
        assert_eq!(names_in(&responses[0]), ["a"]);
    }

    #[test]
    fn acks_complete_the_wait_and_need_no_response() {
        let mut plane = AdsProtocol::default();
        plane.publish("proxy", &resources(false));
        converge(&mut plane);
        let AckState::Acked(report) = plane.ack_state("proxy") else {
            panic!("not acked: {:?}", plane.ack_state("proxy"));
        };
        assert_eq!(report.generation, 1);
        let summary: Vec<_> = report
            .types
            .iter()
            .map(|t| (t.kind, t.version, t.resource_names.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (CDS, 1, vec!["a".to_owned()]),
                (EDS, 1, vec!["a".to_owned()]),
                (LDS, 1, vec!["l".to_owned()]),
                (RDS, 1, vec!["r".to_owned()]),
            ]
        );
        let status = plane.status("proxy").unwrap();
        assert!(status.connected);
        assert!(status.types.iter().all(|t| t.version_acked == Some(1)));
    }

    #[test]
    fn republishing_the_same_content_bumps_no_version_and_pushes_nothing() {
        let mut plane = AdsProtocol::default();
        plane.publish("proxy", &resources(false));
        let stream = converge(&mut plane);
        let (generation, pushed) = plane.publish("proxy", &resources(false));
        assert_eq!(generation, 2);
        assert_eq!(pushed, Some((stream, Vec::new())));
        assert!(matches!(plane.ack_state("proxy"), AckState::Acked(r) if r.generation == 2));
    }

    #[test]
    fn a_nack_of_the_latest_publication_surfaces_with_envoys_message() {
        let mut plane = AdsProtocol::default();
        plane.publish("proxy", &resources(false));
        let stream = converge(&mut plane);
        let mut bad = resources(false);
        bad.listeners[0].filter_chains.clear();
        let (_, pushed) = plane.publish("proxy", &bad);
        let responses = pushed.unwrap().1;
        assert_eq!(responses.len(), 1, "only LDS changed: {responses:?}");
        let lds = &responses[0];
        assert_eq!(lds.version_info, "2");
        none(&mut plane, stream, nack(lds, LDS, "1", "no filter chains"));
        assert_eq!(
            plane.ack_state("proxy"),
            AckState::Nacked {
                kind: LDS,
                nack: Nack {
                    nonce: lds.nonce.clone(),
                    version: 2,
                    message: "no filter chains".to_owned(),
                },
            }
        );

        // A corrected publication supersedes the NACK.
        let (_, pushed) = plane.publish("proxy", &resources(false));
        let lds = pushed.unwrap().1.remove(0);
        assert_eq!(lds.version_info, "3");
        assert!(matches!(plane.ack_state("proxy"), AckState::Pending { .. }));
        none(&mut plane, stream, ack(&lds, LDS, &[]));
        assert!(matches!(plane.ack_state("proxy"), AckState::Acked(_)));
        let status = plane.status("proxy").unwrap();
        assert_eq!(
            status.types[LDS.index()]
                .last_nack
                .as_ref()
                .unwrap()
                .version,
            2
        );
    }

    #[test]
    fn a_new_cluster_waits_for_envoy_to_request_and_ack_its_endpoints() {
        let mut plane = AdsProtocol::default();
        plane.publish("proxy", &resources(false));
        let stream = converge(&mut plane);
        let (_, pushed) = plane.publish("proxy", &resources(true));
        let responses = pushed.unwrap().1;
        let kinds: Vec<&str> = responses.iter().map(|r| r.type_url.as_str()).collect();
        assert_eq!(kinds, [CDS.type_url(), EDS.type_url()], "push order");
        let (cds, eds) = (&responses[0], &responses[1]);
        assert_eq!(names_in(eds), ["a"], "still only the names requested");

        // A client that ACKs CDS before it asks for the new cluster's endpoints is not done.
        none(&mut plane, stream, ack(cds, CDS, &[]));
        none(&mut plane, stream, ack(eds, EDS, &["a"]));
        assert_eq!(pending(&plane), ["EDS: a request for [\"b\"]"]);
        let eds = one(&mut plane, stream, ack(eds, EDS, &["a", "b"]));
        assert_eq!(names_in(&eds), ["a", "b"]);
        assert_eq!(pending(&plane), ["EDS: an ACK of v2 for {\"a\", \"b\"}"]);
        none(&mut plane, stream, ack(&eds, EDS, &["a", "b"]));
        assert!(matches!(plane.ack_state("proxy"), AckState::Acked(_)));
    }

    #[test]
    fn a_stale_nonce_only_updates_the_names() {
        let mut plane = AdsProtocol::default();
        plane.publish("proxy", &resources(false));
        let stream = converge(&mut plane);
        let old = plane.status("proxy").unwrap().types[EDS.index()]
            .nonce
            .clone()
            .unwrap();
        let (_, pushed) = plane.publish("proxy", &resources(true));
        let eds = pushed.unwrap().1.remove(1);

        // Envoy asks for `b` before it has read the EDS push: the request refers to the old nonce.
        none(&mut plane, stream, request(EDS, &["a", "b"], "1", &old));
        let status = plane.status("proxy").unwrap();
        assert_eq!(status.types[EDS.index()].requested_names, ["a", "b"]);
        assert_eq!(status.types[EDS.index()].nonce.as_ref(), Some(&eds.nonce));
        // A stale NACK is not recorded either.
        none(
            &mut plane,
            stream,
            DiscoveryRequest {
                error_detail: Some(Status {
                    code: 3,
                    message: "stale".to_owned(),
                    details: Vec::new(),
                }),
                ..request(EDS, &["a", "b"], "1", &old)
            },
        );
        assert_eq!(
            plane.status("proxy").unwrap().types[EDS.index()].last_nack,
            None
        );

        // Its ACK of the push then gets the response for the names it now requests.
        let eds = one(&mut plane, stream, ack(&eds, EDS, &["a", "b"]));
        assert_eq!(names_in(&eds), ["a", "b"]);
    }

    #[test]
    fn an_empty_name_list_unsubscribes_and_is_not_awaited() {
        let mut plane = AdsProtocol::default();
        plane.publish("proxy", &resources(false));
        let stream = converge(&mut plane);
        let mut no_listener = resources(false);
        no_listener.listeners.clear();
        no_listener.routes.clear();
        let (_, pushed) = plane.publish("proxy", &no_listener);
        let responses = pushed.unwrap().1;
        let kinds: Vec<&str> = responses.iter().map(|r| r.type_url.as_str()).collect();
        assert_eq!(kinds, [LDS.type_url(), RDS.type_url()]);
        let (lds, rds) = (&responses[0], &responses[1]);
        assert!(names_in(rds).is_empty());
        none(&mut plane, stream, ack(lds, LDS, &[]));
        // The RDS ACK comes after Envoy dropped its listener and route watch.
        none(&mut plane, stream, ack(rds, RDS, &[]));
        none(
            &mut plane,
            stream,
            request(RDS, &[], &rds.version_info, &rds.nonce),
        );
        let AckState::Acked(report) = plane.ack_state("proxy") else {
            panic!("not acked: {:?}", plane.ack_state("proxy"));
        };
        assert!(report.types.iter().all(|t| t.kind != RDS), "{report:?}");

        // Subscribing again to the same names at the same version is answered.
        let rds2 = one(
            &mut plane,
            stream,
            request(RDS, &["r"], &rds.version_info, &rds.nonce),
        );
        assert_eq!(rds2.version_info, rds.version_info);
        assert!(names_in(&rds2).is_empty(), "`r` is no longer published");
    }

    #[test]
    fn a_reconnecting_node_gets_the_full_state_and_its_old_stream_is_closed() {
        let mut plane = AdsProtocol::default();
        plane.publish("proxy", &resources(false));
        let old = converge(&mut plane);
        let new = plane.open_stream();
        let handled = plane
            .handle_request(new, request(CDS, &[], "1", ""))
            .unwrap();
        assert_eq!(handled.superseded, Some(old));
        assert_eq!(names_in(&handled.responses[0]), ["a"]);
        assert!(matches!(plane.ack_state("proxy"), AckState::Pending { .. }));
        assert_eq!(
            plane.handle_request(old, request(LDS, &[], "1", "")),
            Err(RequestError::Superseded {
                node_id: "proxy".to_owned()
            })
        );
        plane.close_stream(old);
        assert!(
            plane.status("proxy").unwrap().connected,
            "the new stream stays"
        );
        plane.close_stream(new);
        assert!(!plane.status("proxy").unwrap().connected);
        assert_eq!(
            plane.ack_state("proxy"),
            AckState::Pending {
                awaited: vec!["node \"proxy\" to connect".to_owned()]
            }
        );
    }

    #[test]
    fn a_stream_must_name_its_node() {
        let mut plane = AdsProtocol::default();
        let stream = plane.open_stream();
        let anonymous = DiscoveryRequest {
            node: None,
            ..request(CDS, &[], "", "")
        };
        assert_eq!(
            plane.handle_request(stream, anonymous),
            Err(RequestError::MissingNodeId)
        );
    }
}
