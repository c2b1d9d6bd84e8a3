//! egress-conformance: replays Istio's egress-gateway TLS-origination tutorial and checks every
//! stage.

pub mod backend;
pub mod envoy;
pub mod expect;
pub mod istio;
pub mod local_network;
pub mod mesh;
pub mod observe;
pub mod origin;
pub mod ports;
pub mod report;
pub mod runner;
pub mod session;
pub mod suite;
pub mod translate;
pub mod xds;
