//! What the harness sees: proxies' config (from Envoy's `/config_dump`), curl's output, counters
//! and what reached the origin. Parsing only; judging is `crate::expect`'s job.

pub mod config_dump;
pub mod curl_output;

/// A request the origin answered, as backends report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginHit {
    pub host: String,
    pub path: String,
    pub tls: bool,
    pub sni: Option<String>,
    pub status: u16,
}

/// The output of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}
