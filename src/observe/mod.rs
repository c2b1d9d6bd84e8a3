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
    /// The site's port it arrived at.
    pub port: u32,
    pub method: String,
    /// The application protocol its TLS settled on.
    pub alpn: Option<String>,
}

/// The output of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}
