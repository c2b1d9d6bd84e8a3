//! Istio's networking API as the harness understands it: the typed objects ([`types`]) and the
//! parser that turns manifests into them, validating every field on the way.
//!
//! Nothing here talks to a cluster or to Envoy; translating these objects is another module's job.

pub(crate) mod parse;
pub mod types;

pub(crate) use parse::{ManifestError, load_manifests};
pub use types::*;
