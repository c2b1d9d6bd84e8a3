//! Istio's networking API as the harness understands it: the typed objects ([`types`]) and the
//! parser that turns manifests into them, validating every field on the way.
//!
//! Nothing here talks to a cluster or to Envoy; translating these objects is another module's job.

mod parse;
pub mod types;

pub use parse::{ManifestError, load_manifests, parse_manifests};
pub use types::*;
