//! egress-conformance: replays Istio's egress tutorials and checks every stage.
//!
//! The library is the binary's: its one public item is [`cli::main`]. Data flows one way:
//! suite (parse and validate) → runner → backend (control plane, local network model, proxies,
//! origin) → observations → expectations → report.

mod backend;
pub mod cli;
mod compare;
mod control_plane;
mod delivery;
mod envoy;
mod expect;
#[cfg(test)]
mod fuzz;
mod input;
mod istio;
mod istio_release;
mod kube_release;
mod kube_stub;
mod local_network;
mod mesh;
mod observe;
mod origin;
mod ports;
mod process;
mod report;
mod runner;
mod sds;
mod session;
mod signals;
mod suite;
mod translate;
mod verdicts;
mod wait;
mod xds;
mod yaml;
