//! egress-conformance: replays Istio's egress-gateway TLS-origination tutorial and checks every
//! stage.

pub mod envoy;
pub mod istio;
pub mod local_network;
pub mod mesh;
pub mod observe;
pub mod ports;
pub mod suite;
pub mod translate;
pub mod xds;
