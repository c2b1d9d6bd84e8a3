//! The one place where Istio-only Envoy extensions are taken out of what istiod sends, before
//! stock Envoy sees it. istiod runs with `PILOT_ENABLE_METADATA_EXCHANGE=false`,
//! `PILOT_ENABLE_ALPN_FILTER=false` and no metrics provider, so at the versions supported there is
//! nothing left to take out; this is the guard for what those switches do not cover. Every
//! extension named here is telemetry or protocol negotiation between Istio proxies, which the
//! local mesh does not have:
//! - `istio.metadata_exchange`: in a cluster's `filters`, a listener chain's network `filters`
//!   and an HTTP connection manager's `http_filters`;
//! - `istio.alpn`: in an HTTP connection manager's `http_filters`;
//! - `istio.stats`: in `http_filters` or network `filters`.
//!
//! The README lists the same names.

use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use crate::xds::ProxyResources;

/// The extensions stock Envoy does not have.
pub(crate) const ISTIO_ONLY: [&str; 3] = ["istio.metadata_exchange", "istio.alpn", "istio.stats"];

fn istio_only(name: &str) -> bool {
    ISTIO_ONLY.contains(&name)
}

/// `resources` without any Istio-only extension.
pub(crate) fn strip_istio_only(mut resources: ProxyResources) -> ProxyResources {
    for cluster in &mut resources.clusters {
        cluster.filters.retain(|f| !istio_only(&f.name));
    }
    for listener in &mut resources.listeners {
        for chain in &mut listener.filter_chains {
            chain.filters.retain(|f| !istio_only(&f.name));
            for filter in &mut chain.filters {
                if let Some(ConfigType::TypedConfig(any)) = &mut filter.config_type {
                    strip_http_filters(any);
                }
            }
        }
    }
    resources
}

fn strip_http_filters(any: &mut Any) {
    if any.type_url != HttpConnectionManager::type_url() {
        return;
    }
    let Ok(mut hcm) = HttpConnectionManager::decode(any.value.as_slice()) else {
        return;
    };
    let before = hcm.http_filters.len();
    hcm.http_filters.retain(|f| !istio_only(&f.name));
    if hcm.http_filters.len() != before {
        any.value = hcm.encode_to_vec();
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::{Cluster, Filter as ClusterFilter};
    use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;

    use super::*;

    fn any_of<M: Message + Name>(message: &M) -> Any {
        Any {
            type_url: M::type_url(),
            value: message.encode_to_vec(),
        }
    }

    #[test]
    fn istio_only_extensions_go_and_the_rest_stays() {
        let hcm = HttpConnectionManager {
            http_filters: [
                "istio.metadata_exchange",
                "istio.alpn",
                "envoy.filters.http.router",
            ]
            .map(|name| HttpFilter {
                name: name.into(),
                ..Default::default()
            })
            .to_vec(),
            ..Default::default()
        };
        let resources = ProxyResources {
            clusters: vec![Cluster {
                name: "c".into(),
                filters: [
                    "istio.metadata_exchange",
                    "envoy.filters.network.upstream.x",
                ]
                .map(|name| ClusterFilter {
                    name: name.into(),
                    ..Default::default()
                })
                .to_vec(),
                ..Default::default()
            }],
            listeners: vec![Listener {
                name: "l".into(),
                filter_chains: vec![FilterChain {
                    filters: vec![
                        Filter {
                            name: "istio.metadata_exchange".into(),
                            ..Default::default()
                        },
                        Filter {
                            name: "envoy.filters.network.http_connection_manager".into(),
                            config_type: Some(ConfigType::TypedConfig(any_of(&hcm))),
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let stripped = strip_istio_only(resources);
        let names: Vec<&str> = stripped.clusters[0]
            .filters
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names, ["envoy.filters.network.upstream.x"]);
        let chain = &stripped.listeners[0].filter_chains[0];
        assert_eq!(chain.filters.len(), 1);
        let Some(ConfigType::TypedConfig(any)) = &chain.filters[0].config_type else {
            panic!()
        };
        let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
        let names: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["envoy.filters.http.router"]);
    }
}
