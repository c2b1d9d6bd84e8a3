//! egress-conformance: replays Istio's egress-gateway TLS-origination tutorial and checks every
//! stage.

pub mod istio;
pub mod local_network;
pub mod mesh;
pub mod translate;
pub mod xds;
