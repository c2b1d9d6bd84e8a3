//! Envoy as a managed child process: finding (or installing) the binary, running it under a guard
//! that always stops it, and reading its admin API.
//!
//! This module knows nothing about Istio or xDS: callers hand it a bootstrap and read back what
//! Envoy reports. It does not generate bootstraps or configuration.

pub mod admin;
pub mod locate;
pub mod process;

pub use admin::{AdminClient, AdminError};
pub use locate::{EnvoyBinary, LocateError, find_or_install};
pub use process::{EnvoyError, EnvoyOptions, EnvoyProcess, ShutdownError};
