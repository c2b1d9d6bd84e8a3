//! A client for one Envoy's admin API: what it runs (`/config_dump`), what it counted (`/stats`),
//! whether it is ready (`/ready`) and what it is (`/server_info`).
//!
//! It only reads; it does not change Envoy's state (no `/quitquitquit`, `/logging`, draining) and
//! does not interpret the configuration it returns.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use thiserror::Error;

/// Admin requests go to loopback; anything slower than this means Envoy is stuck.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of an unexpected response body an error carries.
const BODY_EXCERPT: usize = 500;

/// Reads one Envoy's admin API over plain HTTP.
#[derive(Debug, Clone)]
pub struct AdminClient {
    addr: SocketAddr,
    http: reqwest::Client,
}

/// Why an admin request gave no usable answer.
#[derive(Debug, Error)]
pub enum AdminError {
    #[error("GET {url}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url}: status {status}, body {body:?}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("GET {url}: body is not JSON")]
    Json {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("GET {url}: expected {expected}")]
    Shape { url: String, expected: &'static str },
}

impl AdminClient {
    /// A client for the admin API listening on `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        let http = reqwest::Client::builder()
            // A user's HTTP_PROXY must not capture requests to loopback.
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            // Impossible: without TLS backends or proxies nothing in the builder can fail.
            .expect("plain HTTP client");
        AdminClient { addr, http }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The full URL of an admin path such as `/stats?format=json`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// The body of `GET <path_and_query>`, which must answer 200.
    pub async fn get_text(&self, path_and_query: &str) -> Result<String, AdminError> {
        let (url, status, body) = self.get(path_and_query).await?;
        if status != 200 {
            return Err(status_error(url, status, &body));
        }
        Ok(body)
    }

    /// `/server_info`: version, state, uptime, command-line options.
    pub async fn server_info(&self) -> Result<Value, AdminError> {
        self.get_json("/server_info").await
    }

    /// `/config_dump?include_eds`: every resource the proxy holds, endpoints included.
    pub async fn config_dump(&self) -> Result<Value, AdminError> {
        self.get_json("/config_dump?include_eds").await
    }

    /// Counters and gauges by their full names (cluster names with `|` kept verbatim), from
    /// `/stats?format=json`. Histograms and text readouts are left out.
    pub async fn stats(&self) -> Result<BTreeMap<String, u64>, AdminError> {
        const PATH: &str = "/stats?format=json";
        let json = self.get_json(PATH).await?;
        parse_stats(&json).ok_or_else(|| AdminError::Shape {
            url: self.url(PATH),
            expected: "an object with a `stats` array",
        })
    }

    /// `/ready`: `true` when Envoy answers 200 (`LIVE`), `false` on 503 (pre-initializing,
    /// initializing or draining).
    #[cfg(test)]
    pub async fn ready(&self) -> Result<bool, AdminError> {
        let (url, status, body) = self.get("/ready").await?;
        match status {
            200 => Ok(true),
            503 => Ok(false),
            _ => Err(status_error(url, status, &body)),
        }
    }

    async fn get_json(&self, path_and_query: &str) -> Result<Value, AdminError> {
        let body = self.get_text(path_and_query).await?;
        serde_json::from_str(&body).map_err(|source| AdminError::Json {
            url: self.url(path_and_query),
            source,
        })
    }

    async fn get(&self, path_and_query: &str) -> Result<(String, u16, String), AdminError> {
        let url = self.url(path_and_query);
        let response = match self.http.get(&url).send().await {
            Ok(response) => response,
            Err(source) => return Err(AdminError::Request { url, source }),
        };
        let status = response.status().as_u16();
        match response.text().await {
            Ok(body) => Ok((url, status, body)),
            Err(source) => Err(AdminError::Request { url, source }),
        }
    }
}

fn status_error(url: String, status: u16, body: &str) -> AdminError {
    let body = match body.char_indices().nth(BODY_EXCERPT) {
        Some((cut, _)) => format!("{}...", &body[..cut]),
        None => body.to_owned(),
    };
    AdminError::Status { url, status, body }
}

/// Counters and gauges from Envoy's JSON stats: `{"stats": [{"name": n, "value": v}, ...,
/// {"histograms": ...}]}`; entries without an integer value (histograms, text readouts) are
/// skipped. `None` when the document has no `stats` array.
pub fn parse_stats(json: &Value) -> Option<BTreeMap<String, u64>> {
    let entries = json.get("stats")?.as_array()?;
    Some(
        entries
            .iter()
            .filter_map(|entry| {
                let name = entry.get("name")?.as_str()?;
                let value = entry.get("value")?.as_u64()?;
                Some((name.to_owned(), value))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_stats_keeps_names_verbatim_and_skips_non_integers() {
        let json = json!({"stats": [
            {"name": "cluster.outbound|443||edition.cnn.com.upstream_rq_total", "value": 3},
            {"name": "server.live", "value": 1},
            {"name": "server.version_label", "value": "1.40.0"},
            {"histograms": {"supported_quantiles": [0, 50], "computed_quantiles": []}}
        ]});
        let stats = parse_stats(&json).unwrap();
        assert_eq!(
            stats,
            BTreeMap::from([
                (
                    "cluster.outbound|443||edition.cnn.com.upstream_rq_total".to_owned(),
                    3
                ),
                ("server.live".to_owned(), 1),
            ])
        );
        assert_eq!(parse_stats(&json!({"counters": []})), None);
    }

    #[test]
    fn status_errors_name_the_url_and_cut_long_bodies() {
        let err = status_error("http://127.0.0.1:1/ready".into(), 500, &"x".repeat(2000));
        let text = err.to_string();
        assert!(
            text.starts_with("GET http://127.0.0.1:1/ready: status 500"),
            "{text}"
        );
        assert!(text.len() < 600, "{}", text.len());
    }

    #[tokio::test]
    async fn unreachable_admin_names_the_url() {
        // A port we hold but never listen on refuses connections.
        let held = crate::ports::PortReservation::reserve().unwrap();
        let addr = held.addr();
        let err = AdminClient::new(addr).server_info().await.unwrap_err();
        assert!(matches!(err, AdminError::Request { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains(&format!("http://{addr}/server_info")),
            "{err}"
        );
    }
}
