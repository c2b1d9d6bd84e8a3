//! Envoy as a managed child process: finding (or installing) the binary, running it under a guard
//! that always stops it, and reading its admin API.
//!
//! This module knows nothing about Istio or xDS: callers hand it a bootstrap and read back what
//! Envoy reports. It does not generate bootstraps or configuration.

pub(crate) mod admin;
pub(crate) mod locate;
pub(crate) mod process;

pub use locate::{EnvoyBinary, LocateError, find_or_install};
pub(crate) use process::{EnvoyOptions, EnvoyProcess};
