//! The local origin that stands in for edition.cnn.com (and any other external host a suite
//! names): the run's certificates ([`pki`]) and the server that answers on a plain and a TLS
//! loopback port ([`server`]), recording what reached it.
//!
//! It plays the origin only; routing traffic to it (Envoy clusters, curl's `--connect-to`) is the
//! local backend's business, not this module's.

pub mod pki;
pub mod server;

pub use pki::{PkiError, RunPki};
pub use server::{
    Origin, OriginConfig, OriginError, OriginListener, OriginRequest, OriginWaitError,
    POLITICS_BODY_LEN,
};
