//! The tonic side of the control plane: the ADS gRPC service, the server guard and the handle
//! that publishes and waits.
//!
//! Each stream gets a reader task that feeds its requests to the protocol state machine and an
//! unbounded outbox that carries the responses back; both the state machine and the outboxes sit
//! behind one mutex so that responses leave in the order their nonces were issued. Every state
//! change bumps a watch channel that `wait_acked` listens to. No protocol decision is made here.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use super::protocol::{AckReport, AckState, AdsProtocol, NodeStatus, StreamId};
use super::{ProxyResources, XdsError};
use crate::wait::{Look, Wait, WaitError};

/// How long `shutdown` lets open streams finish before it aborts the server.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

type Outbox = mpsc::UnboundedSender<Result<DiscoveryResponse, Status>>;

/// The running ADS server. Dropping it stops serving at once; [`XdsServer::shutdown`] closes
/// the streams first so that proxies see a clean end of stream.
#[derive(Debug)]
pub struct XdsServer {
    addr: SocketAddr,
    handle: XdsHandle,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

/// Publishes resources to the server and waits for proxies; cheap to clone.
#[derive(Clone, Debug)]
pub struct XdsHandle {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    /// Bumped after every state change.
    changed: watch::Sender<u64>,
    /// Set once when the server stops.
    stopping: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Inner {
    plane: AdsProtocol,
    outboxes: HashMap<StreamId, Outbox>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the protocol state consistent enough to report
        // on: every mutation is a plain field update.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Feeds one request to the state machine; false when the stream must end.
    fn handle(&self, stream: StreamId, request: DiscoveryRequest) -> bool {
        let mut inner = self.lock();
        let keep = match inner.plane.handle_request(stream, request) {
            Ok(handled) => {
                if let Some(old) = handled.superseded
                    && let Some(outbox) = inner.outboxes.remove(&old)
                {
                    // Ignored send errors here and below: the stream's reader is already gone.
                    let _ = outbox.send(Err(Status::aborted(
                        "the node opened a newer stream; this one is closed",
                    )));
                }
                if let Some(outbox) = inner.outboxes.get(&stream) {
                    for response in handled.responses {
                        let _ = outbox.send(Ok(response));
                    }
                }
                true
            }
            Err(error) => {
                if let Some(outbox) = inner.outboxes.remove(&stream) {
                    let _ = outbox.send(Err(Status::failed_precondition(error.to_string())));
                }
                false
            }
        };
        drop(inner);
        self.notify();
        keep
    }

    fn close(&self, stream: StreamId) {
        let mut inner = self.lock();
        inner.plane.close_stream(stream);
        inner.outboxes.remove(&stream);
        drop(inner);
        self.notify();
    }
}

struct AdsService {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream =
        UnboundedReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream =
        tokio_stream::Empty<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let inbound = request.into_inner();
        let (outbox, responses) = mpsc::unbounded_channel();
        let stream = {
            let mut inner = self.shared.lock();
            let stream = inner.plane.open_stream();
            inner.outboxes.insert(stream, outbox);
            stream
        };
        // The reader ends with its stream, or when the server stops.
        tokio::spawn(read_stream(Arc::clone(&self.shared), stream, inbound));
        Ok(Response::new(UnboundedReceiverStream::new(responses)))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "this control plane serves state-of-the-world ads only (api_type: GRPC)",
        ))
    }
}

async fn read_stream(
    shared: Arc<Shared>,
    stream: StreamId,
    mut inbound: Streaming<DiscoveryRequest>,
) {
    let mut stopping = shared.stopping.subscribe();
    loop {
        let message = tokio::select! {
            _ = stopping.wait_for(|stopping| *stopping) => break,
            message = inbound.message() => message,
        };
        match message {
            Ok(Some(request)) => {
                if !shared.handle(stream, request) {
                    break;
                }
            }
            // The client ended the stream or the connection failed: either way it is gone.
            Ok(None) | Err(_) => break,
        }
    }
    // Dropping the outbox ends the response stream.
    shared.close(stream);
}

impl XdsServer {
    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start() -> Result<XdsServer, XdsError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| XdsError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| XdsError::Bind { addr, source })?;
        let shared = Arc::new(Shared {
            inner: Mutex::default(),
            changed: watch::Sender::new(0),
            stopping: watch::Sender::new(false),
        });
        let service = AggregatedDiscoveryServiceServer::new(AdsService {
            shared: Arc::clone(&shared),
        });
        let mut stopping = shared.stopping.subscribe();
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                // Responses are small and latency matters more than packet count.
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    async move {
                        // An error means the sender is gone, which also means stop.
                        let _ = stopping.wait_for(|stopping| *stopping).await;
                    },
                ),
        );
        Ok(XdsServer {
            addr,
            handle: XdsHandle { shared },
            task: Some(task),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle to publish resources and wait for proxies.
    pub fn handle(&self) -> XdsHandle {
        self.handle.clone()
    }

    /// Closes every stream, stops accepting, and waits (a few seconds at most) for the
    /// connections to finish.
    pub async fn shutdown(mut self) {
        self.handle.shared.stopping.send_replace(true);
        self.handle.shared.notify();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for XdsServer {
    fn drop(&mut self) {
        self.handle.shared.stopping.send_replace(true);
        self.handle.shared.notify();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl XdsHandle {
    /// Replace node_id's desired resources (a node may be published before it connects).
    /// Returns the generation number of this publication for that node.
    pub fn publish(&self, node_id: &str, resources: ProxyResources) -> u64 {
        let mut inner = self.shared.lock();
        let (generation, pushed) = inner.plane.publish(node_id, &resources);
        if let Some((stream, responses)) = pushed
            && let Some(outbox) = inner.outboxes.get(&stream)
        {
            for response in responses {
                // The stream's reader is gone if this fails; its close follows.
                let _ = outbox.send(Ok(response));
            }
        }
        drop(inner);
        self.shared.notify();
        generation
    }

    /// Wait until node_id is connected and has ACKed everything of the latest publication
    /// (CDS and LDS always; EDS and RDS for exactly the names it requests, once it requests the
    /// names the published clusters and listeners call for). A NACK of the latest publication
    /// fails at once with Envoy's error_detail message, the type URL and the version.
    pub async fn wait_acked(
        &self,
        node_id: &str,
        timeout: Duration,
    ) -> Result<AckReport, XdsError> {
        let mut changed = self.shared.changed.subscribe();
        let wait = Wait::new(
            format!("node {node_id:?} to ACK its latest config"),
            timeout,
        );
        let looked = wait
            .on_change(&mut changed, || {
                let state = self.shared.lock().plane.ack_state(node_id);
                let stopping = *self.shared.stopping.borrow();
                async move {
                    match state {
                        AckState::Acked(report) => Ok(Look::Ready(report)),
                        AckState::Nacked { kind, nack } => Err(XdsError::Nacked {
                            node_id: node_id.to_owned(),
                            kind,
                            type_url: kind.type_url(),
                            version: nack.version,
                            nonce: nack.nonce,
                            message: nack.message,
                        }),
                        AckState::NotPublished => Err(XdsError::NotPublished {
                            node_id: node_id.to_owned(),
                        }),
                        AckState::Pending { .. } if stopping => Err(XdsError::Stopped {
                            node_id: node_id.to_owned(),
                        }),
                        AckState::Pending { awaited } => Ok(Look::NotYet(awaited.join(", "))),
                    }
                }
            })
            .await;
        match looked {
            Ok(settled) => Ok(settled.value),
            Err(WaitError::Failed(error)) => Err(error),
            Err(WaitError::TimedOut(timed_out)) => {
                let status = self.status(node_id);
                Err(XdsError::Timeout {
                    node_id: node_id.to_owned(),
                    generation: status.as_ref().map_or(0, |s| s.generation),
                    timeout,
                    awaited: timed_out.last_seen,
                    last_seen: status.map_or_else(|| "nothing".to_owned(), |s| s.to_string()),
                })
            }
        }
    }

    /// Per type: version sent, nonce, version ACKed, last NACK (for the transcript and tests).
    pub fn status(&self, node_id: &str) -> Option<NodeStatus> {
        self.shared.lock().plane.status(node_id)
    }
}

#[cfg(test)]
mod tests;
