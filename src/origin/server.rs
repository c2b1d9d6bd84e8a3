//! The origin server: two loopback listeners that answer as edition.cnn.com does for the
//! tutorial, and a record of every request that reached them.
//!
//! The HTTP listener plays port 80 and redirects everything to `https://`; the TLS listener plays
//! port 443, presents the run's leaf certificate and serves `/politics`. A plain-HTTP request on
//! the TLS listener gets nginx's `400` ("The plain HTTP request was sent to HTTPS port"), which is
//! what the tutorial's stage 3 shows. HTTP/1.1 only; no HTTP/2, no client certificates, no
//! content beyond what the tutorial looks at.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderValue, LOCATION, SERVER};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::LazyConfigAcceptor;

use super::pki::{PkiError, RunPki};

/// The size of edition.cnn.com's `/politics` page in the tutorial's output.
pub const POLITICS_BODY_LEN: usize = 150_793;

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

const SERVER_NAME: &str = "nginx";

/// What to start.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    pub pki: Arc<RunPki>,
    /// Hosts served on the TLS listener; any other Host gets `404` (and is recorded).
    pub hosts: Vec<String>,
    /// Exact length of the `/politics` body.
    pub politics_body_len: usize,
}

#[cfg(test)]
impl OriginConfig {
    /// A configuration serving the hosts of `pki`'s leaf certificate with the tutorial's body size.
    pub fn new(pki: Arc<RunPki>) -> Self {
        let hosts = pki.hosts().to_vec();
        OriginConfig {
            pki,
            hosts,
            politics_body_len: POLITICS_BODY_LEN,
        }
    }
}

/// Which listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginListener {
    /// The listener playing port 80.
    Http,
    /// The listener playing port 443.
    Tls,
}

/// One request the origin answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginRequest {
    /// Order of arrival across both listeners, from 0.
    pub seq: u64,
    pub listener: OriginListener,
    /// Whether the request came over TLS (false for plain HTTP sent to the TLS listener).
    pub tls: bool,
    /// The SNI the client sent, if it sent one (TLS only).
    pub sni: Option<String>,
    /// The Host header (or absolute-form authority) without its port; empty if there was none.
    pub host: String,
    pub method: String,
    /// Path and query as the request line carried them.
    pub path: String,
    pub status: u16,
}

/// Why [`Origin::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("binding the {listener:?} listener on {addr}")]
    Bind {
        listener: OriginListener,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the {listener:?} listener's address")]
    LocalAddr {
        listener: OriginListener,
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
    http_addr: SocketAddr,
    tls_addr: SocketAddr,
    records: Arc<Records>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("http_addr", &self.http_addr)
            .field("tls_addr", &self.tls_addr)
            .finish_non_exhaustive()
    }
}

impl Origin {
    /// Binds both listeners on `127.0.0.1:0` and starts serving.
    pub async fn start(config: OriginConfig) -> Result<Origin, OriginError> {
        let tls_config = config.pki.server_config()?;
        let http = bind(OriginListener::Http).await?;
        let tls = bind(OriginListener::Tls).await?;
        let http_addr = local_addr(&http, OriginListener::Http)?;
        let tls_addr = local_addr(&tls, OriginListener::Tls)?;

        let records = Arc::new(Records::default());
        let shared = Arc::new(Shared {
            hosts: config.hosts,
            politics_body: Bytes::from(politics_body(config.politics_body_len)),
            tls_config,
            records: records.clone(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(accept_loop(
                http,
                OriginListener::Http,
                shared.clone(),
                stop_rx.clone(),
            )),
            tokio::spawn(accept_loop(tls, OriginListener::Tls, shared, stop_rx)),
        ];
        Ok(Origin {
            http_addr,
            tls_addr,
            records,
            stop,
            tasks,
        })
    }

    /// The listener playing port 80.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The listener playing port 443.
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls_addr
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

    /// Stops accepting, resets every open connection and waits for all tasks; both ports are free
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

async fn bind(listener: OriginListener) -> Result<TcpListener, OriginError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    TcpListener::bind(addr)
        .await
        .map_err(|source| OriginError::Bind {
            listener,
            addr,
            source,
        })
}

fn local_addr(listener: &TcpListener, which: OriginListener) -> Result<SocketAddr, OriginError> {
    listener
        .local_addr()
        .map_err(|source| OriginError::LocalAddr {
            listener: which,
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
    hosts: Vec<String>,
    politics_body: Bytes,
    tls_config: Arc<ServerConfig>,
    records: Arc<Records>,
}

/// How a connection reached the origin, for recording and for choosing the answer.
#[derive(Debug, Clone)]
struct ConnInfo {
    listener: OriginListener,
    tls: bool,
    sni: Option<String>,
}

async fn accept_loop(
    listener: TcpListener,
    which: OriginListener,
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
                    connections.spawn(run_connection(stream, peer, which, shared.clone(), stop));
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
    which: OriginListener,
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
        _ = serve_connection(stream, peer, which, shared) => {}
        _ = stop.wait_for(|stop| *stop) => {
            if let Ok(socket) = &socket {
                // Linger zero makes the final close send a reset; if it cannot be set, the
                // connection still closes, only gracefully.
                let _ = socket.set_linger(Some(Duration::ZERO));
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    which: OriginListener,
    shared: Arc<Shared>,
) {
    match which {
        OriginListener::Http => {
            let info = ConnInfo {
                listener: which,
                tls: false,
                sni: None,
            };
            serve_http1(stream, info, shared).await;
        }
        OriginListener::Tls => {
            let mut first = [0u8; 1];
            match stream.peek(&mut first).await {
                Ok(1) if first[0] == TLS_HANDSHAKE_RECORD => {
                    serve_tls(stream, peer, shared).await;
                }
                Ok(1) => {
                    let info = ConnInfo {
                        listener: which,
                        tls: false,
                        sni: None,
                    };
                    serve_http1(stream, info, shared).await;
                }
                // Closed before sending anything, or failed: nothing to answer.
                _ => {}
            }
        }
    }
}

async fn serve_tls(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
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
    match start.into_stream(shared.tls_config.clone()).await {
        Ok(tls) => {
            let info = ConnInfo {
                listener: OriginListener::Tls,
                tls: true,
                sni,
            };
            serve_http1(tls, info, shared).await;
        }
        Err(err) => {
            let sni = sni.as_deref().unwrap_or("(none)");
            shared
                .records
                .handshake_failure(format!("from {peer}, sni {sni}: {err}"));
        }
    }
}

async fn serve_http1<S>(stream: S, info: ConnInfo, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let response = answer(&shared, &info, &request);
        async move { Ok::<_, Infallible>(response) }
    });
    // A connection error (client went away mid-request) ends only this connection.
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Chooses the response to `request` and records it.
fn answer(shared: &Shared, info: &ConnInfo, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let host = request_host(request);
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());

    let response = match (info.listener, info.tls) {
        (OriginListener::Tls, false) => plain_http_on_https_port(),
        _ if host.is_empty() => nginx_page(StatusCode::BAD_REQUEST, None),
        (OriginListener::Http, _) => redirect_to_https(&host, &path),
        (OriginListener::Tls, true) => {
            if !shared.serves(&host) || request.uri().path() != "/politics" {
                nginx_page(StatusCode::NOT_FOUND, None)
            } else if request.method() != Method::GET && request.method() != Method::HEAD {
                nginx_page(StatusCode::METHOD_NOT_ALLOWED, None)
            } else {
                let mut response = Response::new(Full::new(shared.politics_body.clone()));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                response
            }
        }
    };
    let mut response = response;
    response
        .headers_mut()
        .insert(SERVER, HeaderValue::from_static(SERVER_NAME));

    shared.records.request(OriginRequest {
        seq: 0,
        listener: info.listener,
        tls: info.tls,
        sni: info.sni.clone(),
        host,
        method: request.method().as_str().to_string(),
        path,
        status: response.status().as_u16(),
    });
    response
}

impl Shared {
    fn serves(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }
}

/// The request's host without its port: the absolute-form authority if the request line has one
/// (as HTTP/1.1 says it wins), else the Host header; empty if neither.
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
fn politics_body(len: usize) -> Vec<u8> {
    const HEAD: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
                        <title>Politics - egress-conformance origin</title></head>\n<body>\n";
    const LINE: &str = "<p>Local stand-in for edition.cnn.com/politics.</p>\n";
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

    const CNN: &str = "edition.cnn.com";
    const WAIT: Duration = Duration::from_secs(10);

    struct Fixture {
        origin: Origin,
        ca: PathBuf,
        _dir: tempfile::TempDir,
    }

    async fn start() -> Fixture {
        let pki = Arc::new(RunPki::generate(&[CNN.to_string()]).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        pki.write_ca_pem(&ca).unwrap();
        let origin = Origin::start(OriginConfig::new(pki)).await.unwrap();
        Fixture {
            origin,
            ca,
            _dir: dir,
        }
    }

    fn connect_http(origin: &Origin) -> String {
        format!("{CNN}:80:127.0.0.1:{}", origin.http_addr().port())
    }

    fn connect_tls(origin: &Origin) -> String {
        format!("{CNN}:443:127.0.0.1:{}", origin.tls_addr().port())
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
    fn politics_body_has_the_exact_length() {
        for len in [0, 1, 10, 120, 121, 1000, POLITICS_BODY_LEN] {
            let body = politics_body(len);
            assert_eq!(body.len(), len);
            assert_eq!(body, politics_body(len), "deterministic");
        }
        let body = String::from_utf8(politics_body(POLITICS_BODY_LEN)).unwrap();
        assert!(body.starts_with("<!DOCTYPE html>"));
        assert!(body.ends_with("</html>\n"));
    }

    #[test]
    fn strip_port_keeps_the_host() {
        assert_eq!(strip_port("edition.cnn.com:443"), "edition.cnn.com");
        assert_eq!(strip_port("edition.cnn.com"), "edition.cnn.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("user@edition.cnn.com:80"), "edition.cnn.com");
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
            "http://edition.cnn.com/politics?x=1",
        ])
        .await;
        let headers = stdout(&out);
        assert!(out.status.success(), "curl failed: {out:?}");
        assert!(
            headers.starts_with("HTTP/1.1 301 Moved Permanently\r\n"),
            "{headers}"
        );
        assert!(
            headers.contains("\r\nlocation: https://edition.cnn.com/politics?x=1\r\n"),
            "{headers}"
        );
        let requests = f.origin.requests();
        assert_eq!(
            requests,
            vec![OriginRequest {
                seq: 0,
                listener: OriginListener::Http,
                tls: false,
                sni: None,
                host: CNN.to_string(),
                method: "GET".to_string(),
                path: "/politics?x=1".to_string(),
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
            "https://edition.cnn.com/politics",
        ])
        .await;
        let headers = stdout(&out);
        assert!(out.status.success(), "curl failed: {out:?}");
        assert!(headers.starts_with("HTTP/1.1 200 OK\r\n"), "{headers}");
        assert!(
            headers.contains("\r\ncontent-length: 150793\r\n"),
            "{headers}"
        );
        assert!(
            headers.contains("\r\ncontent-type: text/html; charset=utf-8\r\n"),
            "{headers}"
        );
        let requests = f.origin.requests();
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert_eq!(requests[0].listener, OriginListener::Tls);
        assert!(requests[0].tls);
        assert_eq!(requests[0].sni.as_deref(), Some(CNN));
        assert_eq!(requests[0].host, CNN);
        assert_eq!(requests[0].path, "/politics");
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
                    "https://edition.cnn.com/politics",
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
        let other_path = curl(&[&common[..], &["https://edition.cnn.com/world"]].concat()).await;
        assert_eq!(stdout(&other_path), "404", "{other_path:?}");
        // The certificate still names edition.cnn.com; only the Host differs.
        let other_host = [
            &common[..],
            &[
                "-H",
                "Host: www.example.com",
                "https://edition.cnn.com/politics",
            ],
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
                (0, CNN.to_string(), "/world".to_string(), 404),
                (
                    1,
                    "www.example.com".to_string(),
                    "/politics".to_string(),
                    404
                ),
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
            "http://edition.cnn.com:443/politics",
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
        assert_eq!(requests[0].listener, OriginListener::Tls);
        assert!(!requests[0].tls);
        assert_eq!(requests[0].sni, None);
        assert_eq!(requests[0].host, CNN);
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
            "https://edition.cnn.com/politics",
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
        assert!(failures[0].contains("sni edition.cnn.com"), "{failures:?}");
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
            "http://edition.cnn.com/politics",
        ])
        .await;
        let headers = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let redirect = headers
            .find("HTTP/1.1 301 Moved Permanently\r\n")
            .expect(&headers);
        let ok = headers.find("HTTP/1.1 200 OK\r\n").expect(&headers);
        assert!(redirect < ok, "{headers}");
        assert!(headers.contains("content-length: 150793\r\n"), "{headers}");
        let seen: Vec<_> = f
            .origin
            .requests()
            .into_iter()
            .map(|r| (r.listener, r.tls, r.status))
            .collect();
        assert_eq!(
            seen,
            vec![
                (OriginListener::Http, false, 301),
                (OriginListener::Tls, true, 200)
            ]
        );
    }

    #[tokio::test]
    async fn shutdown_releases_both_ports() {
        let f = start().await;
        let (http_addr, tls_addr) = (f.origin.http_addr(), f.origin.tls_addr());
        // An open keep-alive connection must not keep the origin alive.
        let mut idle = TcpStream::connect(http_addr).await.unwrap();
        // Once served, the connection is in the origin's hands, not in the accept queue.
        idle.write_all(b"GET /politics HTTP/1.1\r\nHost: edition.cnn.com\r\n\r\n")
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
    async fn drop_releases_both_ports() {
        let f = start().await;
        let (http_addr, tls_addr) = (f.origin.http_addr(), f.origin.tls_addr());
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
            - name: cnn
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
        sni: {CNN}
        common_tls_context:
          validation_context:
            trusted_ca: {{filename: {ca}}}
            match_typed_subject_alt_names:
            - san_type: DNS
              matcher: {{exact: {CNN}}}
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
        std::fs::write(&config, envoy_bootstrap(f.origin.tls_addr().port(), &f.ca)).unwrap();
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

        let via = |port: u16| format!("{CNN}:80:127.0.0.1:{port}");
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
                    "http://edition.cnn.com/politics",
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
        assert!(stage4.contains("content-length: 150793\r\n"), "{stage4}");
        let seen: Vec<_> = f
            .origin
            .requests()
            .into_iter()
            .map(|r| (r.tls, r.sni, r.host, r.status))
            .collect();
        assert_eq!(
            seen,
            vec![
                (false, None, CNN.to_string(), 400),
                (true, Some(CNN.to_string()), CNN.to_string(), 200),
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
}
