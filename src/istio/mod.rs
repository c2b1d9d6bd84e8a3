//! Istio's networking API as the harness reads it: one typed model per kind ([`api`]), the
//! objects manifests make ([`object`]), the parser that reads them ([`parse`]), Istio's own
//! validation rules ([`validate`]). Verdicts on whole files are `crate::verdicts`'.
//!
//! Nothing here talks to a cluster or to Envoy; translating these objects is another module's job.

pub(crate) mod api;
mod object;
pub(crate) mod parse;
mod protocol;
pub(crate) mod validate;

pub(crate) use api::*;
pub(crate) use object::{IstioObject, Kind, ObjectKey, Spec};
#[cfg(test)]
pub(crate) use parse::load_manifests;
pub(crate) use parse::{ManifestError, parse_manifests_in};
pub(crate) use protocol::Protocol;
