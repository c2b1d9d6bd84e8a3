//! Envoy's admin API (port 15000) inside a pod, reached through a port-forward: one HTTP/1.1
//! GET per forward, over hyper's client connection, so chunked and sized bodies both work.
//!
//! It does not interpret the config dump (see `crate::observe`) and keeps no forward open
//! between calls.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::Api;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

/// Envoy's admin port in every Istio proxy.
pub const ADMIN_PORT: u16 = 15000;

pub const CONFIG_DUMP_PATH: &str = "/config_dump?include_eds";
pub const STATS_PATH: &str = "/stats?format=json";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("port-forward to {namespace}/{pod}:{port}: {message}")]
    Forward {
        namespace: String,
        pod: String,
        port: u16,
        message: String,
    },
    #[error("GET {path}: {message}")]
    Http { path: String, message: String },
    #[error("GET {path}: status {status}: {body}")]
    Status {
        path: String,
        status: u16,
        body: String,
    },
    #[error("GET {path}: no answer within {timeout:?}")]
    Timeout { path: String, timeout: Duration },
    #[error("GET {path}: the answer is not JSON: {message}")]
    Json { path: String, message: String },
    #[error("GET {path}: the answer has no stats array")]
    NoStats { path: String },
}

/// One `GET path` over `stream` (any byte stream to an HTTP/1.1 server); the body of a 200.
pub async fn http_get<S>(stream: S, path: &str) -> Result<Bytes, AdminError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let http = |message: String| AdminError::Http {
        path: path.to_string(),
        message,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http(e.to_string()))?;
    // The connection task ends when the exchange does or when the forward closes.
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .map_err(|e| http(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| http(e.to_string()))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| http(e.to_string()))?
        .to_bytes();
    driver.abort();
    if !status.is_success() {
        return Err(AdminError::Status {
            path: path.to_string(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).chars().take(500).collect(),
        });
    }
    Ok(body)
}

/// `GET path` on port 15000 of `pod`, through a port-forward that ends with the call.
pub async fn get_through_forward(
    client: &Client,
    namespace: &str,
    pod: &str,
    path: &str,
    timeout: Duration,
) -> Result<Bytes, AdminError> {
    let forward_error = |message: String| AdminError::Forward {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        port: ADMIN_PORT,
        message,
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut forwarder = api
        .portforward(pod, &[ADMIN_PORT])
        .await
        .map_err(|e| forward_error(super::cluster::api_message(&e)))?;
    let stream = forwarder
        .take_stream(ADMIN_PORT)
        .ok_or_else(|| forward_error("no stream for the port".into()))?;
    let forward_failed = forwarder.take_error(ADMIN_PORT);
    let exchange = async {
        match forward_failed {
            // The API server reports a refused connection (Envoy not listening) on the error
            // channel, while the data stream just stays silent.
            Some(failed) => tokio::select! {
                body = http_get(stream, path) => body,
                Some(message) = failed => Err(forward_error(message)),
            },
            None => http_get(stream, path).await,
        }
    };
    let result = tokio::time::timeout(timeout, exchange).await;
    // Ending the forwarder's task closes the websocket; nothing else holds it.
    forwarder.abort();
    match result {
        Ok(body) => body,
        Err(_) => Err(AdminError::Timeout {
            path: path.to_string(),
            timeout,
        }),
    }
}

/// The body of `/config_dump` as JSON.
pub fn parse_config_dump(body: &[u8]) -> Result<Value, AdminError> {
    serde_json::from_slice(body).map_err(|e| AdminError::Json {
        path: CONFIG_DUMP_PATH.into(),
        message: e.to_string(),
    })
}

/// The counters and gauges of `/stats?format=json`.
pub fn parse_stats_body(
    body: &[u8],
) -> Result<std::collections::BTreeMap<String, u64>, AdminError> {
    let json: Value = serde_json::from_slice(body).map_err(|e| AdminError::Json {
        path: STATS_PATH.into(),
        message: e.to_string(),
    })?;
    crate::envoy::admin::parse_stats(&json).ok_or_else(|| AdminError::NoStats {
        path: STATS_PATH.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Plays Envoy's side of the forwarded stream: reads the request head, answers `response`.
    async fn serve_once(response: Vec<u8>) -> (String, Result<Bytes, AdminError>) {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let envoy = tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = server.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed before sending a request");
                head.extend_from_slice(&buf[..n]);
            }
            server.write_all(&response).await.unwrap();
            server.flush().await.unwrap();
            // Hold the stream open: a port-forward does not signal the end of a response.
            let _ = server.read(&mut buf).await;
            String::from_utf8(head).unwrap()
        });
        let result = http_get(client, CONFIG_DUMP_PATH).await;
        (envoy.await.unwrap(), result)
    }

    #[tokio::test]
    async fn sends_a_plain_get_and_reads_a_sized_body() {
        let body = br#"{"configs":[]}"#;
        let mut response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        response.extend_from_slice(body);
        let (request, result) = serve_once(response).await;
        assert!(
            request.starts_with("GET /config_dump?include_eds HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.to_ascii_lowercase().contains("host: localhost"),
            "{request}"
        );
        assert_eq!(result.unwrap().as_ref(), body);
    }

    #[tokio::test]
    async fn reads_a_chunked_body() {
        let response = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
            5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n"
            .to_vec();
        let (_, result) = serve_once(response).await;
        assert_eq!(result.unwrap().as_ref(), br#"{"a":1}"#);
    }

    #[tokio::test]
    async fn a_non_200_is_an_error_with_the_body() {
        let response =
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 14\r\n\r\ninvalid path\r\n".to_vec();
        let (_, result) = serve_once(response).await;
        let err = result.unwrap_err().to_string();
        assert!(err.contains("status 404: invalid path"), "{err}");
    }

    #[test]
    fn parses_a_captured_config_dump_and_stats() {
        // Trimmed from Envoy 1.40's answers.
        let dump = br#"{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.ListenersConfigDump","version_info":"1","dynamic_listeners":[{"name":"0.0.0.0_8443","active_state":{"version_info":"1"}}]}]}"#;
        let value = parse_config_dump(dump).unwrap();
        assert_eq!(
            value["configs"][0]["dynamic_listeners"][0]["name"],
            "0.0.0.0_8443"
        );
        let stats = br#"{"stats":[{"name":"cluster.outbound|443||edition.cnn.com.upstream_rq_total","value":1},{"name":"server.version_label","value":"1.40.0"},{"histograms":{"supported_quantiles":[0],"computed_quantiles":[]}}]}"#;
        let stats = parse_stats_body(stats).unwrap();
        assert_eq!(
            stats.get("cluster.outbound|443||edition.cnn.com.upstream_rq_total"),
            Some(&1)
        );
        assert!(!stats.contains_key("server.version_label"));
        assert!(matches!(
            parse_stats_body(b"{}"),
            Err(AdminError::NoStats { .. })
        ));
        assert!(matches!(
            parse_config_dump(b"<html>"),
            Err(AdminError::Json { .. })
        ));
    }
}
