//! Envoy resources as JSON, by Envoy's own field names, typed configs unpacked: what a person
//! reads in a config dump. The definitions are Envoy's `.proto` files as `envoy-types` ships them,
//! compiled by `build.rs` into one descriptor set.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::Value;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTORS).expect("build.rs wrote a valid descriptor set")
    })
}

/// `message` (of the protobuf type `full_name`) as JSON; fields at their defaults are left out,
/// as Envoy's own dumps leave them out.
pub(crate) fn to_json(full_name: &str, message: &impl Message) -> Result<Value, String> {
    let descriptor = pool()
        .get_message_by_name(full_name)
        .ok_or_else(|| format!("no definition of {full_name}"))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(|e| format!("{full_name}: {e}"))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true)
        .stringify_64_bit_integers(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| format!("{full_name}: {e}"))
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::core::v3::TransportSocket;
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
    use envoy_types::pb::google::protobuf::Any;

    use super::*;

    #[test]
    fn a_cluster_reads_with_envoys_names_and_its_typed_config_unpacked() {
        let tls = UpstreamTlsContext {
            sni: "edition.cnn.com".into(),
            ..Default::default()
        };
        let cluster = Cluster {
            name: "outbound|443||edition.cnn.com".into(),
            transport_socket: Some(TransportSocket {
                name: "envoy.transport_sockets.tls".into(),
                config_type: Some(ConfigType::TypedConfig(Any {
                    type_url: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext".into(),
                    value: tls.encode_to_vec(),
                })),
            }),
            ..Default::default()
        };
        let json = to_json("envoy.config.cluster.v3.Cluster", &cluster).unwrap();
        assert_eq!(json["name"], "outbound|443||edition.cnn.com");
        assert_eq!(
            json["transport_socket"]["typed_config"]["sni"],
            "edition.cnn.com"
        );
        assert_eq!(
            json["transport_socket"]["typed_config"]["@type"],
            "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
        );
        // Defaults are left out.
        assert!(json.get("connect_timeout").is_none(), "{json}");
        assert!(to_json("envoy.no.Such", &cluster).is_err());
    }
}
