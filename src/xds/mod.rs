//! The in-process control plane: a State-of-the-World ADS server (gRPC) that pushes each Envoy
//! proxy the resources the caller published for it, and reports what each proxy ACKed or NACKed.
//!
//! Proxies are told apart by the `node.id` of their stream's first request. The caller computes
//! each proxy's complete resource set elsewhere and [`XdsHandle::publish`]es it; the server
//! pushes what changed (CDS → EDS → LDS → RDS) and [`XdsHandle::wait_acked`] waits, without
//! sleeping, until the proxy has ACKed all of it or fails at once with Envoy's NACK.
//!
//! The protocol itself is a pure state machine (`protocol`); `server` only carries its
//! requests and responses over tonic. This module does not translate Istio resources, does not
//! validate Envoy config (Envoy does), and does not serve Delta xDS or types other than
//! clusters, endpoints, listeners and routes.

mod protocol;
mod resources;
mod server;

use std::net::SocketAddr;
use std::time::Duration;

pub use resources::ResourceType;
pub(crate) use resources::expected_names;
pub use server::{XdsHandle, XdsServer};

/// One proxy's complete desired config. Names must be unique per type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProxyResources {
    pub clusters: Vec<envoy_types::pb::envoy::config::cluster::v3::Cluster>,
    pub endpoints: Vec<envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment>,
    pub listeners: Vec<envoy_types::pb::envoy::config::listener::v3::Listener>,
    pub routes: Vec<envoy_types::pb::envoy::config::route::v3::RouteConfiguration>,
}

/// Why starting the server or waiting for a proxy failed.
#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    #[error("cannot bind the xds server to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("nothing was published for node {node_id:?}")]
    NotPublished { node_id: String },
    #[error(
        "node {node_id:?} rejected {kind} v{version} (type {type_url}, nonce {nonce}): {message}"
    )]
    Nacked {
        node_id: String,
        kind: ResourceType,
        type_url: &'static str,
        version: u64,
        nonce: String,
        /// Envoy's `error_detail.message`, verbatim.
        message: String,
    },
    #[error(
        "node {node_id:?} did not ACK generation {generation} within {timeout:?}: awaited {awaited}; last seen: {last_seen}"
    )]
    Timeout {
        node_id: String,
        generation: u64,
        timeout: Duration,
        /// What was still missing, per type.
        awaited: String,
        /// The node's protocol state per type when the time ran out.
        last_seen: String,
    },
    #[error("the xds server stopped while waiting for node {node_id:?}")]
    Stopped { node_id: String },
}
