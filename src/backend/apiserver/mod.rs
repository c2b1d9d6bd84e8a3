//! The apiserver backend (placeholder while it is written).
pub(crate) mod server;
pub(crate) mod workloads;

#[cfg(test)]
mod tests;
