//! The local origin that stands in for the external sites a suite declares: what they are
//! ([`sites`]), the run's certificates ([`pki`]) and the server that plays them on loopback ports
//! ([`server`]), recording what reached it.
//!
//! It plays the sites only; routing traffic to them (Envoy clusters, curl's `--connect-to`) is
//! the local backend's business, not this module's.

pub(crate) mod pki;
pub(crate) mod server;
pub(crate) mod sites;

pub(crate) use pki::RunPki;
pub(crate) use server::{Origin, OriginConfig};
