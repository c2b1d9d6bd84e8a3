//! The four resource types the control plane serves, and what one proxy's published resources
//! mean for the protocol: their encoded form per type, and the EDS and RDS names Envoy will ask
//! for once it has applied them.
//!
//! This module does no I/O and keeps no state; it does not validate the resources (Envoy does,
//! and its NACK is what the caller sees).

use std::collections::BTreeSet;
use std::fmt;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::ConfigSource;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use super::ProxyResources;

/// One of the four xDS resource types served over ADS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// CDS: `envoy.config.cluster.v3.Cluster`, wildcard.
    Cluster,
    /// EDS: `envoy.config.endpoint.v3.ClusterLoadAssignment`, by name.
    Endpoint,
    /// LDS: `envoy.config.listener.v3.Listener`, wildcard.
    Listener,
    /// RDS: `envoy.config.route.v3.RouteConfiguration`, by name.
    Route,
}

impl ResourceType {
    /// Every type, in push order (CDS → EDS → LDS → RDS): Envoy warms clusters with their
    /// endpoints before listeners with their routes, so pushing in this order never makes it
    /// wait for something the server already has.
    pub const ALL: [ResourceType; 4] = [
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Listener,
        ResourceType::Route,
    ];

    /// The type URL Envoy puts in its requests.
    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            ResourceType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceType::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        }
    }

    /// The type for a type URL, if it is one of the four.
    pub fn from_type_url(type_url: &str) -> Option<ResourceType> {
        ResourceType::ALL
            .into_iter()
            .find(|t| t.type_url() == type_url)
    }

    /// The xDS service's short name: `CDS`, `EDS`, `LDS` or `RDS`.
    pub fn short_name(self) -> &'static str {
        match self {
            ResourceType::Cluster => "CDS",
            ResourceType::Endpoint => "EDS",
            ResourceType::Listener => "LDS",
            ResourceType::Route => "RDS",
        }
    }

    /// Wildcard types are sent whole whatever names the client lists; the others are sent
    /// only for the names the client requests.
    pub fn is_wildcard(self) -> bool {
        matches!(self, ResourceType::Cluster | ResourceType::Listener)
    }

    pub(crate) fn index(self) -> usize {
        match self {
            ResourceType::Cluster => 0,
            ResourceType::Endpoint => 1,
            ResourceType::Listener => 2,
            ResourceType::Route => 3,
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

/// One type's resources, encoded, sorted by name. Duplicated names are kept (Envoy rejects
/// them with a message naming the duplicate, which is better than dropping one silently).
pub(crate) type Encoded = Vec<(String, Any)>;

/// Encodes a proxy's resources per type, indexed by [`ResourceType::index`].
pub(crate) fn encode(resources: &ProxyResources) -> [Encoded; 4] {
    fn any_of<M: Message + Name>(name: &str, message: &M) -> (String, Any) {
        let any = Any {
            type_url: M::type_url(),
            value: message.encode_to_vec(),
        };
        (name.to_owned(), any)
    }
    fn sorted(mut encoded: Encoded) -> Encoded {
        encoded.sort_by(|a, b| a.0.cmp(&b.0));
        encoded
    }
    [
        sorted(
            resources
                .clusters
                .iter()
                .map(|c| any_of(&c.name, c))
                .collect(),
        ),
        sorted(
            resources
                .endpoints
                .iter()
                .map(|e| any_of(&e.cluster_name, e))
                .collect(),
        ),
        sorted(
            resources
                .listeners
                .iter()
                .map(|l| any_of(&l.name, l))
                .collect(),
        ),
        sorted(
            resources
                .routes
                .iter()
                .map(|r| any_of(&r.name, r))
                .collect(),
        ),
    ]
}

/// The names Envoy will request over ADS for a non-wildcard type once it has applied these
/// resources: EDS names of the clusters with `type: EDS` and `eds_config: {ads: {}}`, RDS names
/// of the HTTP connection managers with `rds.config_source: {ads: {}}`. Wildcard types: empty.
///
/// `wait_acked` uses these because nothing in the protocol orders a client's ACK of a new cluster
/// or listener before or after its request for the new endpoints or routes: Envoy 1.40 asks
/// first, but a client that ACKs first would otherwise look done with the old names ACKed.
pub(crate) fn expected_names(resources: &ProxyResources, kind: ResourceType) -> BTreeSet<String> {
    match kind {
        ResourceType::Endpoint => resources.clusters.iter().filter_map(eds_name).collect(),
        ResourceType::Route => resources.listeners.iter().flat_map(rds_names).collect(),
        ResourceType::Cluster | ResourceType::Listener => BTreeSet::new(),
    }
}

fn is_ads(source: Option<&ConfigSource>) -> bool {
    matches!(
        source.and_then(|s| s.config_source_specifier.as_ref()),
        Some(ConfigSourceSpecifier::Ads(_))
    )
}

fn eds_name(cluster: &Cluster) -> Option<String> {
    let is_eds = matches!(
        cluster.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32
    );
    let config = cluster.eds_cluster_config.as_ref()?;
    if !is_eds || !is_ads(config.eds_config.as_ref()) {
        return None;
    }
    if config.service_name.is_empty() {
        Some(cluster.name.clone())
    } else {
        Some(config.service_name.clone())
    }
}

fn rds_names(listener: &Listener) -> Vec<String> {
    listener
        .filter_chains
        .iter()
        .chain(listener.default_filter_chain.as_ref())
        .flat_map(|chain: &FilterChain| &chain.filters)
        .filter_map(|filter| match &filter.config_type {
            Some(ConfigType::TypedConfig(any))
                if any.type_url == HttpConnectionManager::type_url() =>
            {
                // An undecodable manager is Envoy's to reject; it asks for no routes.
                HttpConnectionManager::decode(any.value.as_slice()).ok()
            }
            _ => None,
        })
        .filter_map(|hcm| match hcm.route_specifier {
            Some(RouteSpecifier::Rds(rds)) if is_ads(rds.config_source.as_ref()) => {
                Some(rds.route_config_name)
            }
            _ => None,
        })
        .collect()
}
