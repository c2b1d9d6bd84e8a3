//! The local origin that stands in for edition.cnn.com (and any other external host a suite
//! names): the run's certificates ([`pki`]) and the server that answers on a plain and a TLS
//! loopback port ([`server`]), recording what reached it.
//!
//! It plays the origin only; routing traffic to it (Envoy clusters, curl's `--connect-to`) is the
//! local backend's business, not this module's.

pub(crate) mod pki;
pub(crate) mod server;

pub(crate) use pki::RunPki;
pub(crate) use server::{Origin, OriginConfig, POLITICS_BODY_LEN};
