//! A suite's `origin:` section: the external sites its tutorial talks to, as the local origin is
//! to play them (`crate::origin::sites`). Read and checked here, with the line of every error;
//! nothing is started.
//!
//! ```yaml
//! origin:
//!   - host: edition.cnn.com            # or `address: 192.0.2.10` for a site without a name
//!     ports:
//!       - port: 80
//!         paths:
//!           "*": {redirect: https}     # every path: nginx's 301 to https://<host><path>
//!       - port: 443
//!         tls: true
//!         alpn: [h2, http/1.1]         # default [http/1.1]
//!         paths:
//!           /politics: {status: 200, headers: {content-type: text/html}, body_bytes: 150793}
//!           /headers: {echo: headers}  # httpbin's JSON echo; `echo: request` sends the head back
//!           /delay/5: {delay: 5s, body: "..."}
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

use crate::istio::api::Duration as IstioDuration;
use crate::origin::sites::{Answer, Body, Page, PathPattern, Site, SiteName, SitePort, Sites};
use crate::yaml::FieldPath;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSite {
    host: Option<String>,
    address: Option<String>,
    ports: Vec<RawSitePort>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSitePort {
    port: u32,
    #[serde(default)]
    tls: bool,
    alpn: Option<Vec<String>>,
    paths: BTreeMap<String, RawAnswer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnswer {
    redirect: Option<String>,
    status: Option<u16>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body_bytes: Option<usize>,
    body: Option<String>,
    echo: Option<Echo>,
    delay: Option<IstioDuration>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Echo {
    Headers,
    Request,
}

/// The longest delay a site may declare: a local run plays it at [`crate::local_network::TIME_SCALE`]
/// times the speed, and a command may take 30 s.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// The sites of `raw`, or the line and text of the first thing wrong with them.
pub(super) fn resolve(
    raw: Vec<RawSite>,
    line_of: &dyn Fn(&FieldPath) -> usize,
) -> Result<Sites, (usize, String)> {
    let base = FieldPath::default().key("origin");
    let mut sites = Vec::new();
    let mut names = BTreeSet::new();
    // Host-named sites share the origin's listener per port: plain or TLS, all alike.
    let mut shared_ports: BTreeMap<u32, (bool, String)> = BTreeMap::new();
    for (i, raw_site) in raw.into_iter().enumerate() {
        let at = base.index(i);
        let fail = |path: &FieldPath, text: String| Err((line_of(path), text));
        let name = match (&raw_site.host, &raw_site.address) {
            (Some(host), None) => {
                if host.is_empty() || host.contains(['/', ':', ' ', '*']) {
                    return fail(
                        &at.key("host"),
                        format!("origin[{i}].host: {host:?} is not a host name"),
                    );
                }
                SiteName::Host(host.to_ascii_lowercase())
            }
            (None, Some(address)) => match address.parse() {
                Ok(ip) => SiteName::Address(ip),
                Err(_) => {
                    return fail(
                        &at.key("address"),
                        format!("origin[{i}].address: {address:?} is not an IP address"),
                    );
                }
            },
            _ => {
                return fail(
                    &at,
                    format!("origin[{i}]: a site has either `host` or `address`"),
                );
            }
        };
        if !names.insert(name.clone()) {
            return fail(&at, format!("origin[{i}]: site {name} is declared twice"));
        }
        if raw_site.ports.is_empty() {
            return fail(
                &at.key("ports"),
                format!("origin[{i}].ports: a site needs a port"),
            );
        }
        let mut ports = Vec::new();
        let mut numbers = BTreeSet::new();
        for (j, raw_port) in raw_site.ports.into_iter().enumerate() {
            let port_at = at.key("ports").index(j);
            let here = format!("origin[{i}].ports[{j}]");
            if !(1..=65535).contains(&raw_port.port) || !numbers.insert(raw_port.port) {
                return fail(
                    &port_at.key("port"),
                    format!(
                        "{here}.port: {} is not a port number, or is declared twice",
                        raw_port.port
                    ),
                );
            }
            if let SiteName::Host(host) = &name {
                match shared_ports.get(&raw_port.port) {
                    Some((tls, other)) if *tls != raw_port.tls => {
                        return fail(
                            &port_at.key("tls"),
                            format!(
                                "{here}: port {} is {} for {other} but {} for {host}; host-named sites share one listener per port",
                                raw_port.port,
                                if *tls { "TLS" } else { "plain" },
                                if raw_port.tls { "TLS" } else { "plain" }
                            ),
                        );
                    }
                    _ => {
                        shared_ports.insert(raw_port.port, (raw_port.tls, host.clone()));
                    }
                }
            }
            let given_alpn = raw_port.alpn_given();
            let alpn = raw_port.alpn.unwrap_or_else(|| vec!["http/1.1".into()]);
            if let Some(bad) = alpn
                .iter()
                .find(|p| !matches!(p.as_str(), "h2" | "http/1.1"))
            {
                return fail(
                    &port_at.key("alpn"),
                    format!("{here}.alpn: {bad:?}: the origin speaks h2 and http/1.1"),
                );
            }
            if !raw_port.tls && given_alpn {
                return fail(
                    &port_at.key("alpn"),
                    format!("{here}.alpn: ALPN is for TLS ports"),
                );
            }
            if raw_port.paths.is_empty() {
                return fail(
                    &port_at.key("paths"),
                    format!("{here}.paths: a port needs a path"),
                );
            }
            let mut paths = Vec::new();
            for (path, answer) in raw_port.paths {
                let path_at = port_at.key("paths").key(&path);
                let pattern = if path == "*" {
                    PathPattern::Any
                } else if path.starts_with('/') && !path.contains('?') {
                    PathPattern::Exact(path.clone())
                } else {
                    return fail(
                        &path_at,
                        format!(
                            "{here}.paths: {path:?}: a path starts with `/` (and has no query), or is `*`"
                        ),
                    );
                };
                let answer = resolve_answer(answer)
                    .map_err(|text| (line_of(&path_at), format!("{here}.paths.{path}: {text}")))?;
                paths.push((pattern, answer));
            }
            ports.push(SitePort {
                port: raw_port.port,
                tls: raw_port.tls,
                alpn: if raw_port.tls { alpn } else { Vec::new() },
                paths,
            });
        }
        sites.push(Site { name, ports });
    }
    Ok(Sites { sites })
}

impl RawSitePort {
    fn alpn_given(&self) -> bool {
        self.alpn.as_ref().is_some_and(|a| !a.is_empty())
    }
}

fn resolve_answer(raw: RawAnswer) -> Result<Answer, String> {
    if let Some(redirect) = &raw.redirect {
        if redirect != "https" {
            return Err(format!(
                "redirect: {redirect:?}: the origin redirects to `https`"
            ));
        }
        if raw.status.is_some()
            || !raw.headers.is_empty()
            || raw.body_bytes.is_some()
            || raw.body.is_some()
            || raw.echo.is_some()
            || raw.delay.is_some()
        {
            return Err("a redirect takes nothing else".into());
        }
        return Ok(Answer::RedirectToHttps);
    }
    let body = match (raw.body_bytes, raw.body, raw.echo) {
        (None, None, None) => Body::Empty,
        (Some(n), None, None) => Body::Bytes(n),
        (None, Some(text), None) => Body::Text(text),
        (None, None, Some(Echo::Headers)) => Body::EchoHeaders,
        (None, None, Some(Echo::Request)) => Body::EchoRequest,
        _ => return Err("one of body_bytes, body and echo".into()),
    };
    let status = raw.status.unwrap_or(200);
    if !(200..=599).contains(&status) {
        return Err(format!("status {status} is not a final HTTP status"));
    }
    let mut headers = Vec::new();
    for (name, value) in raw.headers {
        let lower = name.to_ascii_lowercase();
        if hyper::header::HeaderName::from_bytes(lower.as_bytes()).is_err()
            || hyper::header::HeaderValue::from_str(&value).is_err()
        {
            return Err(format!("headers: {name}: {value:?} is not a valid header"));
        }
        headers.push((lower, value));
    }
    let delay = raw.delay.map(|d| d.to_std()).unwrap_or_default();
    if delay > MAX_DELAY {
        return Err(format!("delay: at most {MAX_DELAY:?}"));
    }
    Ok(Answer::Page(Page {
        status,
        headers,
        body,
        delay,
    }))
}
