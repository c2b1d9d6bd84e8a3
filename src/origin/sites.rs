//! What the origin plays: the external sites a suite declares, as data. A site is a host name
//! (answering by SNI and `Host`) or an IP address (a service that has no name, as a database
//! often has), with the ports it listens on, plain or TLS, and per path what it answers.
//!
//! Pure data, no I/O: the suite loader builds it from the suite's `origin:` section, the server
//! (`super::server`) serves it, the local network model routes each port to it.

use std::time::Duration;

/// Every site a suite talks to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sites {
    pub sites: Vec<Site>,
}

/// One external site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub name: SiteName,
    pub ports: Vec<SitePort>,
}

/// How a site is reached.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SiteName {
    /// A DNS name: every host-named site on a port shares one listener and is told apart by
    /// SNI and `Host`.
    Host(String),
    /// An IP address: a listener of its own for each port.
    Address(std::net::IpAddr),
}

impl std::fmt::Display for SiteName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SiteName::Host(h) => f.write_str(h),
            SiteName::Address(a) => write!(f, "{a}"),
        }
    }
}

/// One port of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitePort {
    /// The port the site has on the internet (80, 443, 3306): what Istio's config names.
    pub port: u32,
    pub tls: bool,
    /// The application protocols offered in TLS, in order of preference (`h2`, `http/1.1`). A
    /// client that offers none (as Envoy's TLS origination for HTTP/1.1 does) gets HTTP/1.1.
    pub alpn: Vec<String>,
    /// What each path answers; `*` answers every path no other entry names.
    pub paths: Vec<(PathPattern, Answer)>,
}

impl SitePort {
    /// The answer for `path` (without its query), if the port serves it.
    pub fn answer_for(&self, path: &str) -> Option<&Answer> {
        self.paths
            .iter()
            .find(|(p, _)| matches!(p, PathPattern::Exact(e) if e == path))
            .or_else(|| self.paths.iter().find(|(p, _)| *p == PathPattern::Any))
            .map(|(_, a)| a)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    Exact(String),
    /// `*`: every path.
    Any,
}

/// What a path answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// nginx's `301 Moved Permanently` to the same host and path under `https://`, as a plain
    /// port of a site that only serves TLS answers.
    RedirectToHttps,
    /// A response of the site's own.
    Page(Page),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub status: u16,
    /// Headers as the site sends them (names lowercase).
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// How long the site takes to answer (httpbin's `/delay/N`), in the tutorial's time.
    pub delay: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Empty,
    /// A deterministic HTML page of exactly this many bytes.
    Bytes(usize),
    Text(String),
    /// httpbin's `/headers`: `{"headers": {...}}`, every request header, names in Title-Case.
    EchoHeaders,
    /// The request head as the site received it: what a TCP echo sends back, in a response
    /// curl can print. Headers a proxy would add (`x-request-id`, `x-envoy-*`) show in it.
    EchoRequest,
}

/// The origin's listener for a port: host-named sites share one per port, each address site has
/// its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OriginPort {
    pub address: Option<std::net::IpAddr>,
    pub port: u32,
}

impl std::fmt::Display for OriginPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.address {
            Some(a) => write!(f, "{a}:{}", self.port),
            None => write!(f, "*:{}", self.port),
        }
    }
}

impl Sites {
    /// Every listener the sites need, with whether it is TLS and the ALPN protocols it offers.
    pub fn listeners(&self) -> Vec<(OriginPort, bool, Vec<String>)> {
        let mut out: Vec<(OriginPort, bool, Vec<String>)> = Vec::new();
        for site in &self.sites {
            for port in &site.ports {
                let key = OriginPort {
                    address: match &site.name {
                        SiteName::Address(a) => Some(*a),
                        SiteName::Host(_) => None,
                    },
                    port: port.port,
                };
                match out.iter_mut().find(|(k, _, _)| *k == key) {
                    Some((_, _, alpn)) => {
                        for p in &port.alpn {
                            if !alpn.contains(p) {
                                alpn.push(p.clone());
                            }
                        }
                    }
                    None => out.push((key, port.tls, port.alpn.clone())),
                }
            }
        }
        out.sort_by_key(|(k, _, _)| *k);
        out
    }

    /// The host names served over TLS: the leaf certificate's names.
    pub fn tls_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .sites
            .iter()
            .filter(|s| s.ports.iter().any(|p| p.tls))
            .filter_map(|s| match &s.name {
                SiteName::Host(h) => Some(h.clone()),
                SiteName::Address(_) => None,
            })
            .collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// The port of the site that a request for `host` on listener `at` is for.
    pub fn port_for(&self, at: OriginPort, host: &str) -> Option<&SitePort> {
        let host = host.strip_suffix('.').unwrap_or(host);
        self.sites
            .iter()
            .filter(|s| match (&s.name, at.address) {
                (SiteName::Address(a), Some(b)) => *a == b,
                (SiteName::Host(h), None) => h.eq_ignore_ascii_case(host),
                _ => false,
            })
            .flat_map(|s| s.ports.iter())
            .find(|p| p.port == at.port)
    }
}
