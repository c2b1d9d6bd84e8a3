//! The origin server: one loopback listener for every port the suite's sites declare (host-named
//! sites share a listener per port, each address has its own), answering as each site is
//! declared to, and a record of every request that reached them.
//!
//! A TLS port presents the run's leaf certificate, offers the port's ALPN protocols and serves
//! HTTP/2 to a client that negotiates `h2`, HTTP/1.1 to any other; a plain-HTTP request on a TLS
//! port gets nginx's `400` ("The plain HTTP request was sent to HTTPS port"). A plain port speaks
//! HTTP/1.1. What a site answers is the suite's to declare (`super::sites`); nothing about any
//! particular site is written here.
//!
//! A declared delay is served by waiting before the answer, scaled by the run's time scale (the
//! local network model's, so that a tutorial's seconds cost milliseconds): that wait is the
//! behaviour being played, not a wait for a condition.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderName, HeaderValue, LOCATION, SERVER};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::LazyConfigAcceptor;

use super::pki::{PkiError, RunPki};
use super::sites::{Answer, Body, OriginPort, Page, Sites};

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

const SERVER_NAME: &str = "nginx";

/// What to start.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    pub pki: Arc<RunPki>,
    pub sites: Sites,
    /// Declared delays are divided by this (1: as declared).
    pub time_scale: u32,
}

#[cfg(test)]
impl OriginConfig {
    /// For tests elsewhere that need any TLS origin: the hosts of `pki`'s leaf on port 443 (and
    /// a plain port 80), each answering every path with an empty `200`.
    pub fn new(pki: Arc<RunPki>) -> Self {
        use super::sites::{PathPattern, Site, SiteName, SitePort};
        let ok = Answer::Page(Page {
            status: 200,
            headers: Vec::new(),
            body: Body::Empty,
            delay: Duration::ZERO,
        });
        let sites = pki
            .hosts()
            .iter()
            .map(|host| Site {
                name: SiteName::Host(host.clone()),
                ports: vec![
                    SitePort {
                        port: 80,
                        tls: false,
                        alpn: Vec::new(),
                        paths: vec![(PathPattern::Any, ok.clone())],
                    },
                    SitePort {
                        port: 443,
                        tls: true,
                        alpn: vec!["http/1.1".into()],
                        paths: vec![(PathPattern::Any, ok.clone())],
                    },
                ],
            })
            .collect();
        OriginConfig {
            pki,
            sites: Sites { sites },
            time_scale: 1,
        }
    }
}

/// One request the origin answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginRequest {
    /// Order of arrival across every listener, from 0.
    pub seq: u64,
    /// The listener it arrived on: which port (and address) of which sites.
    pub listener: OriginPort,
    /// Whether the request came over TLS (false for plain HTTP sent to a TLS port).
    pub tls: bool,
    /// The SNI the client sent, if it sent one (TLS only).
    pub sni: Option<String>,
    /// The application protocol the TLS handshake settled on (`h2`, `http/1.1`), if any.
    pub alpn: Option<String>,
    /// `HTTP/1.1` or `HTTP/2`.
    pub version: String,
    /// The Host header (or absolute-form authority) without its port; empty if there was none.
    pub host: String,
    pub method: String,
    /// Path and query as the request line carried them.
    pub path: String,
    /// The status it was (or is being) answered with; recorded on arrival, so a client that
    /// gave up before a delayed answer still shows here.
    pub status: u16,
}

/// Why [`Origin::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("binding the listener for {listener} on {addr}")]
    Bind {
        listener: OriginPort,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the address of the listener for {listener}")]
    LocalAddr {
        listener: OriginPort,
        #[source]
        source: std::io::Error,
    },
    #[error("preparing tls")]
    Tls(#[from] PkiError),
}

/// Why [`Origin::wait_until`] gave up.
#[cfg(test)]
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OriginWaitError(String);

/// A running origin. Dropping it aborts its tasks (their sockets close when the runtime drops
/// them); [`Origin::shutdown`] stops it, resets open connections and waits.
pub struct Origin {
    listeners: BTreeMap<OriginPort, SocketAddr>,
    records: Arc<Records>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("listeners", &self.listeners)
            .finish_non_exhaustive()
    }
}

impl Origin {
    /// Binds one listener on `127.0.0.1:0` for every port the sites declare and starts serving.
    pub async fn start(config: OriginConfig) -> Result<Origin, OriginError> {
        let records = Arc::new(Records::default());
        let shared = Arc::new(Shared {
            sites: config.sites.clone(),
            time_scale: config.time_scale.max(1),
            records: records.clone(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut listeners = BTreeMap::new();
        let mut tasks = Vec::new();
        for (key, tls, alpn) in config.sites.listeners() {
            let tls = if tls {
                Some(config.pki.server_config(&alpn)?)
            } else {
                None
            };
            let listener = bind(key).await?;
            listeners.insert(key, local_addr(&listener, key)?);
            tasks.push(tokio::spawn(accept_loop(
                listener,
                Port { key, tls },
                shared.clone(),
                stop_rx.clone(),
            )));
        }
        Ok(Origin {
            listeners,
            records,
            stop,
            tasks,
        })
    }

    /// Where the origin plays each port of the sites.
    pub fn listeners(&self) -> &BTreeMap<OriginPort, SocketAddr> {
        &self.listeners
    }

    /// The listener playing `port` of a host-named site (`address: None`) or of an address.
    #[cfg(test)]
    pub fn addr(&self, address: Option<std::net::IpAddr>, port: u32) -> SocketAddr {
        self.listeners[&OriginPort { address, port }]
    }

    /// The listener playing port 443 of the host-named sites (tests elsewhere use it).
    #[cfg(test)]
    pub fn tls_addr(&self) -> SocketAddr {
        self.addr(None, 443)
    }

    /// Every request answered so far, in order of `seq`.
    pub fn requests(&self) -> Vec<OriginRequest> {
        self.records.lock().requests.clone()
    }

    /// Every failed TLS handshake so far: the peer, the SNI offered (if the hello got that far) and
    /// the error.
    #[cfg(test)]
    pub fn handshake_failures(&self) -> Vec<String> {
        self.records.lock().handshake_failures.clone()
    }

    /// Waits until `condition` holds over the requests and handshake failures recorded so far.
    ///
    /// Requests are recorded before their response is sent, so a client that has its answer needs
    /// no wait; handshake failures are recorded when the server notices them, which can be after
    /// the client has exited.
    #[cfg(test)]
    pub async fn wait_until<F>(
        &self,
        waited_for: &str,
        timeout: Duration,
        condition: F,
    ) -> Result<(), OriginWaitError>
    where
        F: Fn(&[OriginRequest], &[String]) -> bool,
    {
        use crate::wait::{Look, Wait, WaitError};
        let mut changed = self.records.changed.subscribe();
        let looked = Wait::new(waited_for, timeout)
            .on_change(&mut changed, || {
                let inner = self.records.lock();
                let looked = Ok::<_, std::convert::Infallible>(
                    if condition(&inner.requests, &inner.handshake_failures) {
                        Look::Ready(())
                    } else {
                        Look::NotYet(format!(
                            "{} requests and handshake failures {:?}",
                            inner.requests.len(),
                            inner.handshake_failures
                        ))
                    },
                );
                async move { looked }
            })
            .await;
        match looked {
            Ok(_) => Ok(()),
            Err(WaitError::TimedOut(t)) => Err(OriginWaitError(t.to_string())),
            Err(WaitError::Failed(never)) => match never {},
        }
    }

    /// Stops accepting, resets every open connection and waits for all tasks; every port is free
    /// when this returns.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            // A task that panicked has already released what it held; nothing more to do.
            let _ = task.await;
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn bind(key: OriginPort) -> Result<TcpListener, OriginError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    TcpListener::bind(addr)
        .await
        .map_err(|source| OriginError::Bind {
            listener: key,
            addr,
            source,
        })
}

fn local_addr(listener: &TcpListener, key: OriginPort) -> Result<SocketAddr, OriginError> {
    listener
        .local_addr()
        .map_err(|source| OriginError::LocalAddr {
            listener: key,
            source,
        })
}

#[derive(Default)]
struct Records {
    inner: Mutex<RecordsInner>,
    changed: watch::Sender<()>,
}

#[derive(Default)]
struct RecordsInner {
    requests: Vec<OriginRequest>,
    handshake_failures: Vec<String>,
}

impl Records {
    fn lock(&self) -> MutexGuard<'_, RecordsInner> {
        // Recording never panics while holding the lock, and the data stays valid if it did.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn request(&self, mut request: OriginRequest) {
        {
            let mut inner = self.lock();
            request.seq = inner.requests.len() as u64;
            inner.requests.push(request);
        }
        self.changed.send_replace(());
    }

    fn handshake_failure(&self, failure: String) {
        self.lock().handshake_failures.push(failure);
        self.changed.send_replace(());
    }
}

struct Shared {
    sites: Sites,
    time_scale: u32,
    records: Arc<Records>,
}

/// One listener: which port of which sites it plays, and its TLS if it is a TLS port.
#[derive(Clone)]
struct Port {
    key: OriginPort,
    tls: Option<Arc<ServerConfig>>,
}

/// How a connection reached the origin, for recording and for choosing the answer.
#[derive(Debug, Clone)]
struct ConnInfo {
    listener: OriginPort,
    /// The listener is a TLS port.
    tls_port: bool,
    tls: bool,
    sni: Option<String>,
    alpn: Option<String>,
}

async fn accept_loop(
    listener: TcpListener,
    port: Port,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let connection_stop = stop.clone();
    loop {
        tokio::select! {
            // Stop when asked, or when the `Origin` is gone without asking.
            _ = stop.wait_for(|stop| *stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                // Accept errors (a peer that reset before accept, fd exhaustion) concern one
                // connection attempt; the listener itself stays good.
                if let Ok((stream, peer)) = accepted {
                    let stop = connection_stop.clone();
                    connections.spawn(run_connection(stream, peer, port.clone(), shared.clone(), stop));
                }
            }
        }
    }
    drop(listener);
    // Every connection task sees the same stop signal and resets its connection.
    while connections.join_next().await.is_some() {}
}

/// Serves one connection until it ends or the origin stops.
///
/// On stop the connection is reset rather than closed: a graceful close by the server leaves its
/// end in FIN_WAIT_2 while the client keeps the connection open (Envoy pools upstream
/// connections), and such a socket can keep the port from being bound again.
async fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    port: Port,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    // A second descriptor for the same socket, to set SO_LINGER after the stream has moved into
    // the server; the socket closes when both are dropped, at the end of this function.
    let socket = stream
        .as_fd()
        .try_clone_to_owned()
        .map(socket2::Socket::from);
    tokio::select! {
        _ = serve_connection(stream, peer, port, shared) => {}
        _ = stop.wait_for(|stop| *stop) => {
            if let Ok(socket) = &socket {
                // Linger zero makes the final close send a reset; if it cannot be set, the
                // connection still closes, only gracefully.
                let _ = socket.set_linger(Some(Duration::ZERO));
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, port: Port, shared: Arc<Shared>) {
    let plain = ConnInfo {
        listener: port.key,
        tls_port: port.tls.is_some(),
        tls: false,
        sni: None,
        alpn: None,
    };
    let Some(config) = port.tls else {
        return serve_http(stream, plain, shared).await;
    };
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(1) if first[0] == TLS_HANDSHAKE_RECORD => {
            serve_tls(stream, peer, plain, config, shared).await;
        }
        Ok(1) => serve_http(stream, plain, shared).await,
        // Closed before sending anything, or failed: nothing to answer.
        _ => {}
    }
}

async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    info: ConnInfo,
    config: Arc<ServerConfig>,
    shared: Arc<Shared>,
) {
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = match acceptor.await {
        Ok(start) => start,
        Err(err) => {
            shared
                .records
                .handshake_failure(format!("from {peer}, before the client hello: {err}"));
            return;
        }
    };
    let sni = start.client_hello().server_name().map(str::to_string);
    match start.into_stream(config).await {
        Ok(tls) => {
            let alpn = tls
                .get_ref()
                .1
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            let info = ConnInfo {
                tls: true,
                sni,
                alpn,
                ..info
            };
            serve_http(tls, info, shared).await;
        }
        Err(err) => {
            let sni = sni.as_deref().unwrap_or("(none)");
            shared
                .records
                .handshake_failure(format!("from {peer}, sni {sni}: {err}"));
        }
    }
}

/// HTTP/2 when TLS settled on `h2`, else HTTP/1.1.
async fn serve_http<S>(stream: S, info: ConnInfo, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let h2 = info.alpn.as_deref() == Some("h2");
    let service = service_fn(move |request: Request<Incoming>| {
        let answer = answer(&shared, &info, &request);
        let scale = shared.time_scale;
        async move {
            if !answer.delay.is_zero() {
                // The site's own slowness, as declared (see the module doc).
                tokio::time::sleep(answer.delay / scale).await;
            }
            Ok::<_, Infallible>(answer.response)
        }
    });
    // A connection error (client went away mid-request) ends only this connection.
    if h2 {
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }
}

/// A response and how long to hold it back.
struct Answered {
    response: Response<Full<Bytes>>,
    delay: Duration,
}

/// Chooses the response to `request` and records it.
fn answer(shared: &Shared, info: &ConnInfo, request: &Request<Incoming>) -> Answered {
    let host = request_host(request);
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let mut delay = Duration::ZERO;
    let response = if info.tls_port && !info.tls {
        plain_http_on_https_port()
    } else if host.is_empty() && info.listener.address.is_none() {
        nginx_page(StatusCode::BAD_REQUEST, None)
    } else {
        match shared
            .sites
            .port_for(info.listener, &host)
            .and_then(|p| p.answer_for(request.uri().path()))
        {
            None => nginx_page(StatusCode::NOT_FOUND, None),
            Some(Answer::RedirectToHttps) => redirect_to_https(&host, &path),
            Some(Answer::Page(page)) => {
                delay = page.delay;
                serve_page(page, request)
            }
        }
    };
    let mut response = response;
    if !response.headers().contains_key(SERVER) {
        response
            .headers_mut()
            .insert(SERVER, HeaderValue::from_static(SERVER_NAME));
    }
    shared.records.request(OriginRequest {
        seq: 0,
        listener: info.listener,
        tls: info.tls,
        sni: info.sni.clone(),
        alpn: info.alpn.clone(),
        version: version_name(request.version()).to_string(),
        host,
        method: request.method().as_str().to_string(),
        path,
        status: response.status().as_u16(),
    });
    Answered { response, delay }
}

fn version_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

/// A declared page: its status and headers, and its body (or an echo of the request).
fn serve_page(page: &Page, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let echo = matches!(page.body, Body::EchoHeaders | Body::EchoRequest);
    if !echo && request.method() != Method::GET && request.method() != Method::HEAD {
        return nginx_page(StatusCode::METHOD_NOT_ALLOWED, None);
    }
    let (body, content_type) = match &page.body {
        Body::Empty => (Bytes::new(), None),
        Body::Bytes(n) => (Bytes::from(filler_page(*n)), Some("text/html")),
        Body::Text(text) => (Bytes::from(text.clone()), Some("text/plain")),
        Body::EchoHeaders => (Bytes::from(echo_headers(request)), Some("application/json")),
        Body::EchoRequest => (Bytes::from(echo_request(request)), Some("text/plain")),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = StatusCode::from_u16(page.status).unwrap_or(StatusCode::OK);
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    for (name, value) in &page.headers {
        // The loader checked names and values; one that still does not parse is left out
        // rather than answered wrongly.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// httpbin's `/headers`: every request header, names in Title-Case, as an indented JSON object.
fn echo_headers(request: &Request<Incoming>) -> String {
    let mut headers = serde_json::Map::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers.insert(title_case(name.as_str()), serde_json::Value::String(value));
    }
    if let Some(authority) = request.uri().authority()
        && !headers.contains_key("Host")
    {
        // HTTP/2 carries the host as `:authority`; httpbin shows it as Host.
        headers.insert(
            "Host".into(),
            serde_json::Value::String(authority.to_string()),
        );
    }
    let body = serde_json::json!({ "headers": headers });
    format!(
        "{}\n",
        serde_json::to_string_pretty(&body).unwrap_or_default()
    )
}

/// The request head as received: what an echo service sends back.
fn echo_request(request: &Request<Incoming>) -> String {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut out = format!(
        "{} {path} {}\r\n",
        request.method(),
        version_name(request.version())
    );
    for (name, value) in request.headers() {
        out.push_str(&format!(
            "{name}: {}\r\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    out.push_str("\r\n");
    out
}

/// `x-envoy-decorator-operation` → `X-Envoy-Decorator-Operation`.
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The request's host without its port: the absolute-form authority if the request line has one
/// (as HTTP/1.1 says it wins, and as HTTP/2 carries it), else the Host header; empty if neither.
fn request_host(request: &Request<Incoming>) -> String {
    let raw = match request.uri().authority() {
        Some(authority) => authority.as_str().to_string(),
        None => request
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_string(),
    };
    strip_port(&raw).to_string()
}

fn strip_port(authority: &str) -> &str {
    // Userinfo is not allowed in a Host header; drop it from an absolute-form authority.
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(rest) = authority.strip_prefix('[') {
        // An IPv6 literal keeps its brackets.
        return match rest.find(']') {
            Some(end) => &authority[..end + 2],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

fn redirect_to_https(host: &str, path: &str) -> Response<Full<Bytes>> {
    let location = format!("https://{host}{path}");
    let mut response = nginx_page(StatusCode::MOVED_PERMANENTLY, None);
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(LOCATION, value);
            response
        }
        // The host and path came from a parsed request, so this cannot happen; answer as a
        // server would to a request it cannot redirect rather than panic.
        Err(_) => nginx_page(StatusCode::BAD_REQUEST, None),
    }
}

fn plain_http_on_https_port() -> Response<Full<Bytes>> {
    let mut response = nginx_page(
        StatusCode::BAD_REQUEST,
        Some("The plain HTTP request was sent to HTTPS port"),
    );
    // nginx closes such a connection: it cannot know what the client meant to do next.
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// An nginx-style error page; `detail` replaces the reason phrase in the title, as nginx does.
fn nginx_page(status: StatusCode, detail: Option<&str>) -> Response<Full<Bytes>> {
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("");
    let title = format!("{code} {}", detail.unwrap_or(reason));
    let detail_line = detail
        .map(|d| format!("<center>{d}</center>\r\n"))
        .unwrap_or_default();
    let body = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n\
         <center><h1>{code} {reason}</h1></center>\r\n{detail_line}\
         <hr><center>{SERVER_NAME}</center>\r\n</body>\r\n</html>\r\n"
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

/// A deterministic html page of exactly `len` bytes.
fn filler_page(len: usize) -> Vec<u8> {
    const HEAD: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
                        <title>egress-conformance origin</title></head>\n<body>\n";
    const LINE: &str = "<p>Local stand-in for an external site.</p>\n";
    const TAIL: &str = "</body>\n</html>\n";

    let mut body = Vec::with_capacity(len);
    if len < HEAD.len() + TAIL.len() {
        // Too short for a whole page: a prefix of one, still deterministic.
        body.extend(HEAD.bytes().chain(TAIL.bytes()).cycle().take(len));
        return body;
    }
    body.extend_from_slice(HEAD.as_bytes());
    let room = len - HEAD.len() - TAIL.len();
    for _ in 0..room / LINE.len() {
        body.extend_from_slice(LINE.as_bytes());
    }
    // Whitespace between elements does not change the page.
    body.resize(len - TAIL.len(), b'\n');
    body.extend_from_slice(TAIL.as_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Output;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const SITE: &str = "news.example";
    const PAGE_LEN: usize = 12_345;
    const WAIT: Duration = Duration::from_secs(10);

    struct Fixture {
        origin: Origin,
        ca: PathBuf,
        _dir: tempfile::TempDir,
    }

    async fn start() -> Fixture {
        start_with(sites(), 1).await
    }

    /// A news site: plain port 80 redirects everything to https; TLS port 443 serves `/news`.
    fn sites() -> Sites {
        use super::super::sites::{PathPattern, Site, SiteName, SitePort};
        Sites {
            sites: vec![Site {
                name: SiteName::Host(SITE.into()),
                ports: vec![
                    SitePort {
                        port: 80,
                        tls: false,
                        alpn: vec![],
                        paths: vec![(PathPattern::Any, Answer::RedirectToHttps)],
                    },
                    SitePort {
                        port: 443,
                        tls: true,
                        alpn: vec!["http/1.1".into()],
                        paths: vec![(
                            PathPattern::Exact("/news".into()),
                            Answer::Page(Page {
                                status: 200,
                                headers: vec![(
                                    "content-type".into(),
                                    "text/html; charset=utf-8".into(),
                                )],
                                body: Body::Bytes(PAGE_LEN),
                                delay: Duration::ZERO,
                            }),
                        )],
                    },
                ],
            }],
        }
    }

    async fn start_with(sites: Sites, time_scale: u32) -> Fixture {
        let mut hosts = sites.tls_hosts();
        if hosts.is_empty() {
            hosts.push("unused.example".into());
        }
        let pki = Arc::new(RunPki::generate(&hosts).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        pki.write_ca_pem(&ca).unwrap();
        let origin = Origin::start(OriginConfig {
            pki,
            sites,
            time_scale,
        })
        .await
        .unwrap();
        Fixture {
            origin,
            ca,
            _dir: dir,
        }
    }

    fn connect_http(origin: &Origin) -> String {
        format!("{SITE}:80:127.0.0.1:{}", origin.addr(None, 80).port())
    }

    fn connect_tls(origin: &Origin) -> String {
        format!("{SITE}:443:127.0.0.1:{}", origin.addr(None, 443).port())
    }

    /// Runs curl. curl is the harness's client and a requirement of every run, so its absence
    /// fails the test rather than passing it unchecked.
    async fn curl(args: &[&str]) -> Output {
        tokio::process::Command::new("curl")
            .args(["--max-time", "20"])
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .unwrap_or_else(|err| {
                panic!("running curl ({err}); install curl, e.g. `apt-get install curl`")
            })
    }

    fn stdout(output: &Output) -> String {
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn ca_arg(ca: &Path) -> &str {
        ca.to_str().expect("temp path is utf-8")
    }

    #[test]
    fn the_filler_page_has_the_exact_length() {
        for len in [0, 1, 10, 120, 121, 1000, PAGE_LEN] {
            let body = filler_page(len);
            assert_eq!(body.len(), len);
            assert_eq!(body, filler_page(len), "deterministic");
        }
        let body = String::from_utf8(filler_page(PAGE_LEN)).unwrap();
        assert!(body.starts_with("<!DOCTYPE html>"));
        assert!(body.ends_with("</html>\n"));
    }

    #[test]
    fn strip_port_keeps_the_host() {
        assert_eq!(strip_port("news.example:443"), "news.example");
        assert_eq!(strip_port("news.example"), "news.example");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("user@news.example:80"), "news.example");
    }

    #[tokio::test]
    async fn http_port_redirects_to_https() {
        let f = start().await;
        let connect = connect_http(&f.origin);
        let out = curl(&[
            "-s",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "--connect-to",
            &connect,
            "http://news.example/news?x=1",
        ])
        .await;
        let headers = stdout(&out);
        assert!(out.status.success(), "curl failed: {out:?}");
        assert!(
            headers.starts_with("HTTP/1.1 301 Moved Permanently\r\n"),
            "{headers}"
        );
        assert!(
            headers.contains("\r\nlocation: https://news.example/news?x=1\r\n"),
            "{headers}"
        );
        let requests = f.origin.requests();
        assert_eq!(
            requests,
            vec![OriginRequest {
                seq: 0,
                listener: OriginPort {
                    address: None,
                    port: 80
                },
                alpn: None,
                version: "HTTP/1.1".into(),
                tls: false,
                sni: None,
                host: SITE.to_string(),
                method: "GET".to_string(),
                path: "/news?x=1".to_string(),
                status: 301,
            }]
        );
    }

    #[tokio::test]
    async fn tls_port_serves_politics() {
        let f = start().await;
        let connect = connect_tls(&f.origin);
        let out = curl(&[
            "-s",
            "--http1.1",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "--cacert",
            ca_arg(&f.ca),
            "--connect-to",
            &connect,
            "https://news.example/news",
        ])
        .await;
        let headers = stdout(&out);
        assert!(out.status.success(), "curl failed: {out:?}");
        assert!(headers.starts_with("HTTP/1.1 200 OK\r\n"), "{headers}");
        assert!(
            headers.contains("\r\ncontent-length: 12345\r\n"),
            "{headers}"
        );
        assert!(
            headers.contains("\r\ncontent-type: text/html; charset=utf-8\r\n"),
            "{headers}"
        );
        let requests = f.origin.requests();
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert_eq!(
            requests[0].listener,
            OriginPort {
                address: None,
                port: 443
            }
        );
        assert!(requests[0].tls);
        assert_eq!(requests[0].sni.as_deref(), Some(SITE));
        assert_eq!(requests[0].host, SITE);
        assert_eq!(requests[0].path, "/news");
        assert_eq!(requests[0].status, 200);
        assert!(f.origin.handshake_failures().is_empty());
    }

    #[tokio::test]
    async fn tls_port_speaks_tls12_and_tls13() {
        let f = start().await;
        let connect = connect_tls(&f.origin);
        for version in [
            ["--tlsv1.2", "--tls-max", "1.2"],
            ["--tlsv1.3", "--tls-max", "1.3"],
        ] {
            let args = [
                &version[..],
                &[
                    "-s",
                    "--http1.1",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-v",
                    "--cacert",
                    ca_arg(&f.ca),
                    "--connect-to",
                    &connect,
                    "https://news.example/news",
                ],
            ]
            .concat();
            let out = curl(&args).await;
            assert_eq!(stdout(&out), "200", "{out:?}");
            // curl 7.x has no %{ssl_version}; its verbose log names the negotiated version.
            let log = String::from_utf8_lossy(&out.stderr);
            let negotiated = format!("SSL connection using TLSv{} ", version[2]);
            assert!(log.contains(&negotiated), "{log}");
        }
    }

    #[tokio::test]
    async fn tls_port_answers_404_for_other_paths_and_hosts() {
        let f = start().await;
        let connect = connect_tls(&f.origin);
        let ca = ca_arg(&f.ca);
        let common = [
            "-s",
            "--http1.1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            ca,
            "--connect-to",
            &connect,
        ];
        let other_path = curl(&[&common[..], &["https://news.example/world"]].concat()).await;
        assert_eq!(stdout(&other_path), "404", "{other_path:?}");
        // The certificate still names news.example; only the Host differs.
        let other_host = [
            &common[..],
            &["-H", "Host: www.example.com", "https://news.example/news"],
        ]
        .concat();
        let other_host = curl(&other_host).await;
        assert_eq!(stdout(&other_host), "404", "{other_host:?}");
        let seen: Vec<_> = f
            .origin
            .requests()
            .into_iter()
            .map(|r| (r.seq, r.host, r.path, r.status))
            .collect();
        assert_eq!(
            seen,
            vec![
                (0, SITE.to_string(), "/world".to_string(), 404),
                (1, "www.example.com".to_string(), "/news".to_string(), 404),
            ]
        );
    }

    #[tokio::test]
    async fn plain_http_on_tls_port_gets_nginx_400() {
        let f = start().await;
        let connect = connect_tls(&f.origin);
        let out = curl(&[
            "-s",
            "-i",
            "--connect-to",
            &connect,
            "http://news.example:443/news",
        ])
        .await;
        let text = stdout(&out);
        assert!(out.status.success(), "curl failed: {out:?}");
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
        assert!(
            text.contains("The plain HTTP request was sent to HTTPS port"),
            "{text}"
        );
        let requests = f.origin.requests();
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert_eq!(
            requests[0].listener,
            OriginPort {
                address: None,
                port: 443
            }
        );
        assert!(!requests[0].tls);
        assert_eq!(requests[0].sni, None);
        assert_eq!(requests[0].host, SITE);
        assert_eq!(requests[0].status, 400);
    }

    #[tokio::test]
    async fn curl_without_the_run_ca_fails_verification() {
        let f = start().await;
        let connect = connect_tls(&f.origin);
        let out = curl(&[
            "-s",
            "--http1.1",
            "-o",
            "/dev/null",
            "--connect-to",
            &connect,
            "https://news.example/news",
        ])
        .await;
        assert_eq!(out.status.code(), Some(60), "{out:?}");
        assert!(f.origin.requests().is_empty());
        f.origin
            .wait_until("one handshake failure", WAIT, |_, failures| {
                failures.len() == 1
            })
            .await
            .unwrap();
        let failures = f.origin.handshake_failures();
        assert!(failures[0].contains("sni news.example"), "{failures:?}");
    }

    #[tokio::test]
    async fn redirect_chain_ends_in_200() {
        let f = start().await;
        let (http, tls) = (connect_http(&f.origin), connect_tls(&f.origin));
        let out = curl(&[
            "-sL",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "--cacert",
            ca_arg(&f.ca),
            "--connect-to",
            &http,
            "--connect-to",
            &tls,
            "http://news.example/news",
        ])
        .await;
        let headers = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let redirect = headers
            .find("HTTP/1.1 301 Moved Permanently\r\n")
            .expect(&headers);
        let ok = headers.find("HTTP/1.1 200 OK\r\n").expect(&headers);
        assert!(redirect < ok, "{headers}");
        assert!(headers.contains("content-length: 12345\r\n"), "{headers}");
        let seen: Vec<_> = f
            .origin
            .requests()
            .into_iter()
            .map(|r| (r.listener, r.tls, r.status))
            .collect();
        assert_eq!(
            seen,
            vec![
                (
                    OriginPort {
                        address: None,
                        port: 80
                    },
                    false,
                    301
                ),
                (
                    OriginPort {
                        address: None,
                        port: 443
                    },
                    true,
                    200
                )
            ]
        );
    }

    #[tokio::test]
    async fn shutdown_releases_every_port() {
        let f = start().await;
        let (http_addr, tls_addr) = (f.origin.addr(None, 80), f.origin.addr(None, 443));
        // An open keep-alive connection must not keep the origin alive.
        let mut idle = TcpStream::connect(http_addr).await.unwrap();
        // Once served, the connection is in the origin's hands, not in the accept queue.
        idle.write_all(b"GET /news HTTP/1.1\r\nHost: news.example\r\n\r\n")
            .await
            .unwrap();
        f.origin
            .wait_until("the request on the idle connection", WAIT, |requests, _| {
                requests.len() == 1
            })
            .await
            .unwrap();
        f.origin.shutdown().await;
        std::net::TcpListener::bind(http_addr).expect("http port free after shutdown");
        std::net::TcpListener::bind(tls_addr).expect("tls port free after shutdown");
        // The 301 arrives first, then the reset.
        let mut received = Vec::new();
        let end = idle.read_to_end(&mut received).await;
        assert!(
            String::from_utf8_lossy(&received).starts_with("HTTP/1.1 301 "),
            "{received:?}"
        );
        assert_eq!(
            end.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionReset)
        );
    }

    #[tokio::test]
    async fn drop_releases_every_port() {
        let f = start().await;
        let (http_addr, tls_addr) = (f.origin.addr(None, 80), f.origin.addr(None, 443));
        drop(f.origin);
        // Aborted tasks release their sockets when the runtime next polls them.
        crate::wait::Wait::new("both ports to be free after drop", WAIT)
            .poll(|| async {
                let (http, tls) = (
                    std::net::TcpListener::bind(http_addr),
                    std::net::TcpListener::bind(tls_addr),
                );
                Ok::<_, ()>(if http.is_ok() && tls.is_ok() {
                    crate::wait::Look::Ready(())
                } else {
                    crate::wait::Look::NotYet(format!("http {:?}, tls {:?}", http.err(), tls.err()))
                })
            })
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
    }

    /// Envoy to use as a client, found as a run finds it.
    fn envoy_bin() -> Option<PathBuf> {
        crate::envoy::locate::binary_for_tests().map(|b| b.path)
    }

    /// Two Envoy listeners in front of the origin's TLS port: one speaks plain HTTP to it (the
    /// tutorial's stage 3), one originates TLS with the run's CA as `trusted_ca` (stage 4).
    fn envoy_bootstrap(tls_port: u16, ca: &Path) -> String {
        let route = |stat: &str, cluster: &str| {
            format!(
                r#"  - name: {stat}
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {stat}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            virtual_hosts:
            - name: site
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: {cluster}}}
"#
            )
        };
        let cluster = |name: &str, tls: bool| {
            let transport = if tls {
                format!(
                    r#"    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: {SITE}
        common_tls_context:
          validation_context:
            trusted_ca: {{filename: {ca}}}
            match_typed_subject_alt_names:
            - san_type: DNS
              matcher: {{exact: {SITE}}}
"#,
                    ca = ca.display()
                )
            } else {
                String::new()
            };
            format!(
                r#"  - name: {name}
    type: STATIC
    connect_timeout: 5s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {tls_port}}}}}}}
{transport}"#
            )
        };
        format!(
            "admin:\n  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}\n\
             static_resources:\n  listeners:\n{}{}  clusters:\n{}{}",
            route("plain", "origin_plain"),
            route("originate", "origin_tls"),
            cluster("origin_plain", false),
            cluster("origin_tls", true),
        )
    }

    /// Reads an Envoy listener's bound address from the admin API.
    async fn envoy_listener_port(admin: &str, name: &str) -> u16 {
        let out = curl(&["-sf", &format!("http://{admin}/listeners?format=json")]).await;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("listeners json");
        json["listener_statuses"]
            .as_array()
            .expect("listener_statuses")
            .iter()
            .find(|l| l["name"] == name)
            .and_then(|l| l["local_address"]["socket_address"]["port_value"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("listener {name} in {json}"))
    }

    #[tokio::test]
    async fn envoy_as_client_gets_400_in_plain_http_and_200_with_tls() {
        let Some(envoy) = envoy_bin() else {
            println!("skipped: EGRESS_CONFORMANCE_SKIP_ENVOY_TESTS is set");
            return;
        };
        let f = start().await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("envoy.yaml");
        let admin_path = dir.path().join("admin");
        std::fs::write(
            &config,
            envoy_bootstrap(f.origin.addr(None, 443).port(), &f.ca),
        )
        .unwrap();
        let mut child = tokio::process::Command::new(envoy)
            .arg("-c")
            .arg(&config)
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["--disable-hot-restart", "-l", "warning"])
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();

        // Envoy writes the admin address once it serves; listeners are ready when /ready is LIVE.
        let admin = crate::wait::Wait::new("the client Envoy to be LIVE", WAIT)
            .poll(async || {
                let admin = std::fs::read_to_string(&admin_path).unwrap_or_default();
                let admin = admin.trim().to_string();
                if !admin.is_empty() {
                    let ready = curl(&["-s", &format!("http://{admin}/ready")]).await;
                    if stdout(&ready).trim() == "LIVE" {
                        return Ok(crate::wait::Look::Ready(admin));
                    }
                }
                match child.try_wait().unwrap() {
                    Some(status) => Err(format!("envoy exited with {status}")),
                    None => Ok(crate::wait::Look::NotYet(format!(
                        "admin address {admin:?}"
                    ))),
                }
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .value;
        let plain = envoy_listener_port(&admin, "plain").await;
        let originate = envoy_listener_port(&admin, "originate").await;

        let via = |port: u16| format!("{SITE}:80:127.0.0.1:{port}");
        let (via_plain, via_originate) = (via(plain), via(originate));
        let headers = |connect: &str| {
            let connect = connect.to_string();
            async move {
                curl(&[
                    "-s",
                    "-o",
                    "/dev/null",
                    "-D",
                    "-",
                    "--connect-to",
                    &connect,
                    "http://news.example/news",
                ])
                .await
            }
        };
        let stage3 = headers(&via_plain).await;
        let stage4 = headers(&via_originate).await;
        child.kill().await.unwrap();

        assert!(
            stdout(&stage3).starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{stage3:?}"
        );
        let stage4 = stdout(&stage4);
        assert!(stage4.starts_with("HTTP/1.1 200 OK\r\n"), "{stage4}");
        assert!(stage4.contains("content-length: 12345\r\n"), "{stage4}");
        let seen: Vec<_> = f
            .origin
            .requests()
            .into_iter()
            .map(|r| (r.tls, r.sni, r.host, r.status))
            .collect();
        assert_eq!(
            seen,
            vec![
                (false, None, SITE.to_string(), 400),
                (true, Some(SITE.to_string()), SITE.to_string(), 200),
            ]
        );
        assert!(f.origin.handshake_failures().is_empty());
    }

    #[tokio::test]
    async fn wait_until_times_out_with_what_it_saw() {
        let f = start().await;
        let err = f
            .origin
            .wait_until("a request", Duration::from_millis(50), |requests, _| {
                !requests.is_empty()
            })
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("for a request") && text.contains("last saw: 0 requests"),
            "{text}"
        );
    }

    /// Sites for the newer tests: an h2 site on 443, httpbin on 80 (echo and delay), and an
    /// address that echoes what it received.
    fn series_sites() -> Sites {
        use super::super::sites::{PathPattern, Site, SiteName, SitePort};
        let page = |body: Body, delay: Duration| {
            Answer::Page(Page {
                status: 200,
                headers: vec![],
                body,
                delay,
            })
        };
        Sites {
            sites: vec![
                Site {
                    name: SiteName::Host("search.example".into()),
                    ports: vec![SitePort {
                        port: 443,
                        tls: true,
                        alpn: vec!["h2".into(), "http/1.1".into()],
                        paths: vec![(
                            PathPattern::Exact("/".into()),
                            page(Body::Empty, Duration::ZERO),
                        )],
                    }],
                },
                Site {
                    name: SiteName::Host("bin.example".into()),
                    ports: vec![SitePort {
                        port: 80,
                        tls: false,
                        alpn: vec![],
                        paths: vec![
                            (
                                PathPattern::Exact("/headers".into()),
                                page(Body::EchoHeaders, Duration::ZERO),
                            ),
                            (
                                PathPattern::Exact("/delay/5".into()),
                                page(Body::Text("late\n".into()), Duration::from_secs(5)),
                            ),
                        ],
                    }],
                },
                Site {
                    name: SiteName::Address("192.0.2.10".parse().unwrap()),
                    ports: vec![SitePort {
                        port: 3306,
                        tls: false,
                        alpn: vec![],
                        paths: vec![(PathPattern::Any, page(Body::EchoRequest, Duration::ZERO))],
                    }],
                },
            ],
        }
    }

    #[tokio::test]
    async fn one_listener_per_port_of_host_sites_and_per_address() {
        let f = start_with(series_sites(), 1000).await;
        let keys: Vec<String> = f.origin.listeners().keys().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["*:80", "*:443", "192.0.2.10:3306"]);
    }

    #[tokio::test]
    async fn a_tls_port_speaks_http2_to_a_client_that_asks_and_head_has_no_body() {
        let f = start_with(series_sites(), 1000).await;
        let connect = format!(
            "search.example:443:127.0.0.1:{}",
            f.origin.addr(None, 443).port()
        );
        let out = curl(&[
            "-sI",
            "--cacert",
            ca_arg(&f.ca),
            "--connect-to",
            &connect,
            "https://search.example/",
        ])
        .await;
        assert!(stdout(&out).starts_with("HTTP/2 200"), "{out:?}");
        let out = curl(&[
            "-sI",
            "--http1.1",
            "--cacert",
            ca_arg(&f.ca),
            "--connect-to",
            &connect,
            "https://search.example/",
        ])
        .await;
        assert!(stdout(&out).starts_with("HTTP/1.1 200 OK"), "{out:?}");
        let seen: Vec<_> = f
            .origin
            .requests()
            .into_iter()
            .map(|r| (r.method, r.alpn, r.version, r.sni))
            .collect();
        let sni = Some("search.example".to_string());
        assert_eq!(
            seen,
            vec![
                (
                    "HEAD".into(),
                    Some("h2".into()),
                    "HTTP/2".into(),
                    sni.clone()
                ),
                (
                    "HEAD".into(),
                    Some("http/1.1".into()),
                    "HTTP/1.1".into(),
                    sni
                ),
            ]
        );
    }

    #[tokio::test]
    async fn headers_are_echoed_as_httpbin_does() {
        let f = start_with(series_sites(), 1000).await;
        let connect = format!(
            "bin.example:80:127.0.0.1:{}",
            f.origin.addr(None, 80).port()
        );
        let out = curl(&[
            "-sS",
            "-H",
            "x-envoy-decorator-operation: bin.example:80/*",
            "--connect-to",
            &connect,
            "http://bin.example/headers",
        ])
        .await;
        let body = stdout(&out);
        assert!(body.starts_with("{\n  \"headers\": {\n"), "{body}");
        assert!(body.contains("\"Host\": \"bin.example\""), "{body}");
        assert!(
            body.contains("\"X-Envoy-Decorator-Operation\": \"bin.example:80/*\""),
            "{body}"
        );
        let other = curl(&[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--connect-to",
            &connect,
            "http://bin.example/ip",
        ])
        .await;
        assert_eq!(stdout(&other), "404");
        let unknown = curl(&[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--connect-to",
            &connect.replace("bin.example", "other.example"),
            "http://other.example/headers",
        ])
        .await;
        assert_eq!(stdout(&unknown), "404", "a host no site declares");
    }

    #[tokio::test]
    async fn a_delay_is_played_at_the_run_time_scale_and_recorded_on_arrival() {
        // 5 s at 1/1000: 5 ms.
        let f = start_with(series_sites(), 1000).await;
        let connect = format!(
            "bin.example:80:127.0.0.1:{}",
            f.origin.addr(None, 80).port()
        );
        let started = std::time::Instant::now();
        let out = curl(&[
            "-sS",
            "--connect-to",
            &connect,
            "http://bin.example/delay/5",
        ])
        .await;
        assert_eq!(stdout(&out), "late\n");
        assert!(started.elapsed() >= Duration::from_millis(5));
        // A client that gives up first is still recorded, with the status it was to get.
        let f = start_with(series_sites(), 1).await;
        let connect = format!(
            "bin.example:80:127.0.0.1:{}",
            f.origin.addr(None, 80).port()
        );
        let out = curl(&[
            "-sS",
            "--max-time",
            "0.2",
            "--connect-to",
            &connect,
            "http://bin.example/delay/5",
        ])
        .await;
        assert_eq!(out.status.code(), Some(28), "{out:?}");
        let seen: Vec<_> = f
            .origin
            .requests()
            .into_iter()
            .map(|r| (r.path, r.status))
            .collect();
        assert_eq!(seen, vec![("/delay/5".to_string(), 200)]);
    }

    #[tokio::test]
    async fn an_address_site_echoes_the_request_it_received() {
        let f = start_with(series_sites(), 1000).await;
        let connect = format!(
            "192.0.2.10:3306:127.0.0.1:{}",
            f.origin
                .addr(Some("192.0.2.10".parse().unwrap()), 3306)
                .port()
        );
        let out = curl(&[
            "-sS",
            "-D",
            "-",
            "--connect-to",
            &connect,
            "http://192.0.2.10:3306/",
        ])
        .await;
        let text = stdout(&out);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.contains("\r\n\r\nGET / HTTP/1.1\r\nhost: 192.0.2.10:3306\r\n"),
            "{text}"
        );
        let seen = f.origin.requests();
        assert_eq!(seen[0].host, "192.0.2.10");
        assert_eq!(seen[0].listener.to_string(), "192.0.2.10:3306");
    }

    #[test]
    fn header_names_are_title_cased() {
        assert_eq!(
            title_case("x-envoy-decorator-operation"),
            "X-Envoy-Decorator-Operation"
        );
        assert_eq!(title_case("host"), "Host");
    }
}
