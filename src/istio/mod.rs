//! Placeholder until the parser lands.
pub mod types;
pub use types::*;
