//! The harness's stand-in for pilot-agent's secret server: a State-of-the-World SDS server
//! (`envoy.service.secret.v3.SecretDiscoveryService` over gRPC) that hands Envoy the TLS secrets
//! istiod's config refers to by name, and a maker of the mesh identity that fills them.
//!
//! istiod writes every TLS setting as an SDS reference to the bootstrap cluster `sds-grpc`
//! ([`config_source`]): `default` is the workload's certificate chain and key, `ROOTCA` the mesh
//! root, and `file-root:<path>` (such as `file-root:system`) a CA bundle read from a file, which in
//! a local run is the run's own CA standing in for the public roots. Until those names are
//! answered, the clusters that use them stay warming and Envoy never asks for listeners. Envoy
//! reaches the server through the static cluster [`bootstrap_cluster`] adds to its bootstrap.
//!
//! The secrets are fixed for the server's life: it answers subscriptions, records what it sent,
//! the NACKs it got and the names it does not hold, and pushes nothing later. A stream's protocol decisions are a pure state
//! machine (`StreamState`); the tonic service only carries them. Written by hand because no
//! well-kept Rust crate serves SDS; the xDS types and the generated service come from
//! `envoy-types`.
//!
//! What it does not do: serve over a Unix socket as pilot-agent does (Envoy reaches it over
//! loopback TCP), rotate or update secrets, serve Delta SDS, or check that a secret is usable
//! (Envoy does, and NACKs it if not).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::secret::Type as SecretType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, TlsCertificate,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::{
    SecretDiscoveryService, SecretDiscoveryServiceServer,
};
use envoy_types::pb::google::protobuf::Any;
use futures::StreamExt;
use futures::stream::BoxStream;
use prost::{Message, Name};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

/// The bootstrap cluster istiod's SDS references name.
pub(crate) const SDS_CLUSTER: &str = "sds-grpc";
/// The workload's certificate chain and private key.
pub(crate) const WORKLOAD_SECRET: &str = "default";
/// The mesh's root certificate.
pub(crate) const ROOT_CA_SECRET: &str = "ROOTCA";
/// How istiod names a CA bundle read from a file (`file-root:system`, `file-root:/etc/ca.pem`).
const FILE_ROOT_PREFIX: &str = "file-root:";

/// The `version_info` of every response: the secrets never change, so neither does the version.
const SECRETS_VERSION: &str = "1";
/// How long `shutdown` lets open streams finish before it aborts the server.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The SDS name istiod gives a CA bundle read from `path` (`system` for the public roots).
pub(crate) fn file_root(path: &str) -> String {
    format!("{FILE_ROOT_PREFIX}{path}")
}

#[cfg(test)]
/// The `sds_config` istiod writes into every SDS reference: SotW gRPC to [`SDS_CLUSTER`], v3.
pub(crate) fn config_source() -> Value {
    json!({
        "api_config_source": {
            "api_type": "GRPC",
            "grpc_services": [{"envoy_grpc": {"cluster_name": SDS_CLUSTER}}],
            "transport_api_version": "V3",
        },
        "resource_api_version": "V3",
    })
}

/// The bootstrap cluster Envoy reaches the server by: [`SDS_CLUSTER`], STATIC to `addr`, HTTP/2
/// (gRPC), in the shape the local backend's bootstrap gives `xds-grpc`.
pub(crate) fn bootstrap_cluster(addr: SocketAddr) -> Value {
    json!({
        "name": SDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": SDS_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": addr.ip().to_string(),
                "port_value": addr.port(),
            }}}}]}],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            },
        },
    })
}

/// The secrets a server holds, by name. Built once, before the server starts.
#[derive(Clone, Default, PartialEq)]
pub(crate) struct Secrets {
    by_name: BTreeMap<String, Secret>,
}

impl fmt::Debug for Secrets {
    // Names and kinds only: private keys stay out of debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.by_name
                    .iter()
                    .map(|(name, secret)| (name, kind(secret))),
            )
            .finish()
    }
}

fn kind(secret: &Secret) -> &'static str {
    match secret.r#type {
        Some(SecretType::TlsCertificate(_)) => "tls_certificate",
        Some(SecretType::ValidationContext(_)) => "validation_context",
        Some(SecretType::SessionTicketKeys(_)) => "session_ticket_keys",
        Some(SecretType::GenericSecret(_)) => "generic_secret",
        None => "empty",
    }
}

fn inline(pem: String) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(Specifier::InlineBytes(pem.into_bytes())),
        ..Default::default()
    })
}

impl Secrets {
    pub(crate) fn new() -> Self {
        Secrets::default()
    }

    /// A certificate chain and its private key (both PEM) under `name`, as `default` is.
    /// A later secret of the same name replaces an earlier one.
    pub(crate) fn tls_certificate(
        mut self,
        name: impl Into<String>,
        cert_chain_pem: impl Into<String>,
        private_key_pem: impl Into<String>,
    ) -> Self {
        let name = name.into();
        let secret = Secret {
            name: name.clone(),
            r#type: Some(SecretType::TlsCertificate(TlsCertificate {
                certificate_chain: inline(cert_chain_pem.into()),
                private_key: inline(private_key_pem.into()),
                ..Default::default()
            })),
        };
        self.by_name.insert(name, secret);
        self
    }

    /// A validation context trusting the CA bundle `ca_pem` under `name`, as `ROOTCA` and
    /// `file-root:<path>` are. A later secret of the same name replaces an earlier one.
    pub(crate) fn validation_context(
        mut self,
        name: impl Into<String>,
        ca_pem: impl Into<String>,
    ) -> Self {
        let name = name.into();
        let secret = Secret {
            name: name.clone(),
            r#type: Some(SecretType::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: inline(ca_pem.into()),
                    ..Default::default()
                },
            )),
        };
        self.by_name.insert(name, secret);
        self
    }

    #[cfg(test)]
    /// The names held, sorted.
    pub(crate) fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    /// The held secrets among `names`, in the order asked, and the names not held.
    fn split<'n>(&self, names: &'n [String]) -> (Vec<&Secret>, Vec<&'n String>) {
        let mut held = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            match self.by_name.get(name) {
                Some(secret) => held.push(secret),
                None => missing.push(name),
            }
        }
        (held, missing)
    }
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SdsError {
    #[error("cannot bind the sds server to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A response Envoy rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SdsNack {
    pub node_id: String,
    /// The secrets the rejected response carried.
    pub names: Vec<String>,
    /// The nonce of the rejected response.
    pub nonce: String,
    /// Envoy's `error_detail.message`, verbatim.
    pub message: String,
}

impl fmt::Display for SdsNack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {:?} rejected secrets {} (nonce {}): {}",
            self.node_id,
            self.names.join(", "),
            self.nonce,
            self.message
        )
    }
}

/// The last response sent on a stream.
#[derive(Debug)]
struct Sent {
    nonce: String,
    names: Vec<String>,
}

/// One StreamSecrets stream's protocol state. Pure: requests in, what to send and record out.
#[derive(Debug, Default)]
struct StreamState {
    /// From the first request that names a node; Envoy may send it only once.
    node_id: String,
    /// What the last request that was not a bare ACK or NACK asked for, deduplicated, in order.
    requested: Vec<String>,
    sent: Option<Sent>,
}

/// What one request calls for.
#[derive(Debug, Default)]
struct Handled {
    response: Option<DiscoveryResponse>,
    /// The names the response carries.
    served: Vec<String>,
    /// Names asked for that the server does not hold.
    unknown: Vec<String>,
    nack: Option<SdsNack>,
}

impl StreamState {
    /// The SotW rules for one request:
    /// - a request echoing the nonce of the last response is its ACK, or its NACK when it has an
    ///   `error_detail`; either way it gets no response unless it also changes the names asked for;
    /// - a request with an older nonce is stale (Envoy will send a current one) and is ignored;
    /// - any other request subscribes to its names and is answered with exactly the named
    ///   secrets the server holds. Names it does not hold are reported, and a request naming none
    ///   it holds gets no response at all, so Envoy keeps waiting for them (warming) rather than
    ///   being told they were removed.
    fn handle(
        &mut self,
        secrets: &Secrets,
        request: DiscoveryRequest,
        next_nonce: impl FnOnce() -> String,
    ) -> Result<Handled, Status> {
        let secret_type = Secret::type_url();
        if !request.type_url.is_empty() && request.type_url != secret_type {
            return Err(Status::invalid_argument(format!(
                "this server serves {secret_type} only, not {}",
                request.type_url
            )));
        }
        if self.node_id.is_empty()
            && let Some(node) = &request.node
        {
            self.node_id.clone_from(&node.id);
        }
        let mut handled = Handled::default();
        let mut names: Vec<String> = Vec::with_capacity(request.resource_names.len());
        for name in request.resource_names {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        if let Some(sent) = &self.sent
            && !request.response_nonce.is_empty()
        {
            if request.response_nonce != sent.nonce {
                return Ok(handled);
            }
            if let Some(error) = request.error_detail {
                handled.nack = Some(SdsNack {
                    node_id: self.node_id.clone(),
                    names: sent.names.clone(),
                    nonce: sent.nonce.clone(),
                    message: error.message,
                });
            }
            if names == self.requested {
                return Ok(handled);
            }
        }
        let (held, unknown) = secrets.split(&names);
        handled.unknown = unknown.into_iter().cloned().collect();
        if !held.is_empty() {
            let nonce = next_nonce();
            handled.served = held.iter().map(|secret| secret.name.clone()).collect();
            handled.response = Some(DiscoveryResponse {
                version_info: SECRETS_VERSION.to_owned(),
                resources: held
                    .into_iter()
                    .map(|secret| Any {
                        type_url: secret_type.clone(),
                        value: secret.encode_to_vec(),
                    })
                    .collect(),
                type_url: secret_type,
                nonce: nonce.clone(),
                ..Default::default()
            });
            self.sent = Some(Sent {
                nonce,
                names: handled.served.clone(),
            });
        }
        self.requested = names;
        Ok(handled)
    }
}

/// What the server did, for tests and the transcript.
#[derive(Debug, Default)]
struct Record {
    /// `(node id, secret name)` per secret per response, in the order sent.
    served: Vec<(String, String)>,
    /// `(node id, secret name)` asked for but not held, each once, in the order first asked.
    unknown: Vec<(String, String)>,
    nacks: Vec<SdsNack>,
    /// The last nonce issued; nonces are unique across the server's streams.
    nonce: u64,
}

impl Record {
    fn note(&mut self, node_id: &str, handled: &Handled) {
        for name in &handled.served {
            self.served.push((node_id.to_owned(), name.clone()));
        }
        for name in &handled.unknown {
            let entry = (node_id.to_owned(), name.clone());
            if !self.unknown.contains(&entry) {
                self.unknown.push(entry);
            }
        }
        self.nacks.extend(handled.nack.clone());
    }

    fn next_nonce(&mut self) -> String {
        self.nonce += 1;
        self.nonce.to_string()
    }
}

#[derive(Debug)]
struct Shared {
    secrets: Secrets,
    record: Mutex<Record>,
    /// Bumped after every change to the record.
    changed: watch::Sender<u64>,
    /// Set once when the server stops.
    stopping: watch::Sender<bool>,
}

impl Shared {
    fn record(&self) -> MutexGuard<'_, Record> {
        // Every mutation is a plain push; a panic while holding the lock leaves it readable.
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Handles one stream request and records what it did.
    fn receive(
        &self,
        state: &mut StreamState,
        request: DiscoveryRequest,
    ) -> Result<Option<DiscoveryResponse>, Status> {
        let mut record = self.record();
        let handled = state.handle(&self.secrets, request, || record.next_nonce())?;
        record.note(&state.node_id, &handled);
        drop(record);
        self.notify();
        Ok(handled.response)
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once the server stops.
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopping = self.stopping.subscribe();
        async move {
            // An error means the sender is gone, which also means stop.
            let _ = stopping.wait_for(|stopping| *stopping).await;
        }
    }
}

struct SdsService {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl SecretDiscoveryService for SdsService {
    type DeltaSecretsStream = tokio_stream::Empty<Result<DeltaDiscoveryResponse, Status>>;
    type StreamSecretsStream = BoxStream<'static, Result<DiscoveryResponse, Status>>;

    async fn delta_secrets(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaSecretsStream>, Status> {
        Err(Status::unimplemented(
            "this sds server serves state-of-the-world sds only (api_type: GRPC)",
        ))
    }

    /// Answers each request on the stream as `StreamState::handle` decides; the response
    /// stream ends with the request stream, or when the server stops.
    async fn stream_secrets(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamSecretsStream>, Status> {
        let shared = Arc::clone(&self.shared);
        let stopped = shared.stopped();
        let responses = futures::stream::unfold(
            (request.into_inner(), StreamState::default(), shared, false),
            |(mut inbound, mut state, shared, failed)| async move {
                if failed {
                    return None;
                }
                loop {
                    match inbound.message().await {
                        Ok(Some(request)) => match shared.receive(&mut state, request) {
                            Ok(Some(response)) => {
                                return Some((Ok(response), (inbound, state, shared, false)));
                            }
                            Ok(None) => {}
                            Err(status) => {
                                return Some((Err(status), (inbound, state, shared, true)));
                            }
                        },
                        // The client ended the stream or the connection failed: either way
                        // it is gone.
                        Ok(None) | Err(_) => return None,
                    }
                }
            },
        );
        Ok(Response::new(responses.take_until(stopped).boxed()))
    }

    /// The requested secrets the server holds; `NOT_FOUND` when it holds none of them.
    async fn fetch_secrets(
        &self,
        request: Request<DiscoveryRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        let request = request.into_inner();
        let node_id = request.node.as_ref().map(|n| n.id.clone());
        // A fresh state each time: a unary fetch has no nonce to echo.
        let mut state = StreamState::default();
        let request = DiscoveryRequest {
            response_nonce: String::new(),
            error_detail: None,
            ..request
        };
        let names = request.resource_names.clone();
        match self.shared.receive(&mut state, request)? {
            Some(response) => Ok(Response::new(response)),
            None => Err(Status::not_found(format!(
                "node {:?} asked for {names:?}, none of which this server holds",
                node_id.unwrap_or_default(),
            ))),
        }
    }
}

/// The running SDS server. Dropping it stops serving at once; [`SdsServer::shutdown`] ends the
/// streams first so that Envoy sees a clean end of stream.
#[derive(Debug)]
pub(crate) struct SdsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl SdsServer {
    /// Binds `127.0.0.1:0` and serves `secrets` until shut down.
    pub(crate) async fn start(secrets: Secrets) -> Result<SdsServer, SdsError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SdsError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SdsError::Bind { addr, source })?;
        let shared = Arc::new(Shared {
            secrets,
            record: Mutex::default(),
            changed: watch::Sender::new(0),
            stopping: watch::Sender::new(false),
        });
        let service = SecretDiscoveryServiceServer::new(SdsService {
            shared: Arc::clone(&shared),
        });
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    shared.stopped(),
                ),
        );
        Ok(SdsServer {
            addr,
            shared,
            task: Some(task),
        })
    }

    /// The address the server listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    #[cfg(test)]
    /// `(node id, secret name)` for every secret sent, one entry per secret per response, in the
    /// order sent. The node id is empty for a client that never named its node.
    pub(crate) fn served(&self) -> Vec<(String, String)> {
        self.shared.record().served.clone()
    }

    /// `(node id, secret name)` for every name asked for that the server does not hold, once
    /// each. Such a name is never answered: whatever needs it stays warming.
    pub(crate) fn unknown(&self) -> Vec<(String, String)> {
        self.shared.record().unknown.clone()
    }

    /// Every response Envoy rejected, in the order rejected.
    pub(crate) fn nacks(&self) -> Vec<SdsNack> {
        self.shared.record().nacks.clone()
    }

    #[cfg(test)]
    /// Changes with every request handled, for `Wait::on_change` on the accessors above.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changed.subscribe()
    }

    /// Ends every stream, stops accepting, and waits (a few seconds at most) for the connections
    /// to finish.
    pub(crate) async fn shutdown(mut self) {
        self.shared.stop();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for SdsServer {
    fn drop(&mut self) {
        self.shared.stop();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A workload's identity in the mesh: a fresh mesh root and a certificate for one SPIFFE ID,
/// signed by it, in the shape istiod's CA issues them.
pub(crate) struct MeshIdentity {
    spiffe_id: String,
    root_pem: String,
    chain_pem: String,
    key_pem: String,
}

impl fmt::Debug for MeshIdentity {
    // The private key stays out of debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshIdentity")
            .field("spiffe_id", &self.spiffe_id)
            .finish_non_exhaustive()
    }
}

impl MeshIdentity {
    #[cfg(test)]
    pub(crate) fn spiffe_id(&self) -> &str {
        &self.spiffe_id
    }

    #[cfg(test)]
    /// The mesh root certificate, PEM: what `ROOTCA` trusts.
    pub(crate) fn root_pem(&self) -> &str {
        &self.root_pem
    }

    #[cfg(test)]
    /// The workload certificate then the root, PEM, as istiod's CA answers a CSR.
    pub(crate) fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    #[cfg(test)]
    /// The workload's private key, PKCS#8 PEM.
    pub(crate) fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// `default` (chain and key) and `ROOTCA` (the root); add `file-root:` bundles to taste.
    pub(crate) fn secrets(&self) -> Secrets {
        Secrets::new()
            .tls_certificate(WORKLOAD_SECRET, &self.chain_pem, &self.key_pem)
            .validation_context(ROOT_CA_SECRET, &self.root_pem)
    }
}

/// Why [`mesh_identity`] failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IdentityError {
    #[error("{id:?} is not a workload spiffe id (spiffe://<trust domain>/<path>): {reason}")]
    SpiffeId { id: String, reason: &'static str },
    #[error("generating the {what} key for {id}")]
    Key {
        what: &'static str,
        id: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("signing the {what} certificate for {id}")]
    Sign {
        what: &'static str,
        id: String,
        #[source]
        source: rcgen::Error,
    },
}

/// Makes a fresh mesh root and a workload certificate for `spiffe_id`
/// (`spiffe://cluster.local/ns/default/sa/sleep`) signed by it. Like istiod's: the root's
/// organisation is the trust domain; the workload certificate has an empty subject, the SPIFFE ID
/// as its only (URI) subject alternative name, and serves both client and server
/// authentication. Keys are ECDSA P-256.
pub(crate) fn mesh_identity(spiffe_id: &str) -> Result<MeshIdentity, IdentityError> {
    let invalid = |reason| IdentityError::SpiffeId {
        id: spiffe_id.to_owned(),
        reason,
    };
    let rest = spiffe_id
        .strip_prefix("spiffe://")
        .ok_or_else(|| invalid("it does not start with spiffe://"))?;
    let (trust_domain, path) = rest
        .split_once('/')
        .ok_or_else(|| invalid("it has no path"))?;
    if trust_domain.is_empty() {
        return Err(invalid("its trust domain is empty"));
    }
    if path.is_empty() {
        return Err(invalid("its path is empty"));
    }
    let uri = rcgen::string::Ia5String::try_from(spiffe_id)
        .map_err(|_| invalid("it is not ASCII (IA5)"))?;
    let key = |what| {
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| IdentityError::Key {
            what,
            id: spiffe_id.to_owned(),
            source,
        })
    };
    let sign = |what| {
        move |source| IdentityError::Sign {
            what,
            id: spiffe_id.to_owned(),
            source,
        }
    };

    let mut root_params = CertificateParams::default();
    root_params.distinguished_name = rcgen::DistinguishedName::new();
    root_params
        .distinguished_name
        .push(DnType::OrganizationName, trust_domain);
    root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let root =
        CertifiedIssuer::self_signed(root_params, key("mesh root")?).map_err(sign("mesh root"))?;

    let mut leaf_params = CertificateParams::default();
    // Empty, as istiod's are; rcgen then marks the subject alternative names critical.
    leaf_params.distinguished_name = rcgen::DistinguishedName::new();
    leaf_params.subject_alt_names = vec![SanType::URI(uri)];
    leaf_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf_params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    leaf_params.use_authority_key_identifier_extension = true;
    let leaf_key = key("workload")?;
    let leaf = leaf_params
        .signed_by(&leaf_key, &root)
        .map_err(sign("workload"))?;

    let root_pem = root.pem();
    Ok(MeshIdentity {
        spiffe_id: spiffe_id.to_owned(),
        chain_pem: format!("{}{root_pem}", leaf.pem()),
        root_pem,
        key_pem: leaf_key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use envoy_types::pb::envoy::config::core::v3::Node;
    use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
    use envoy_types::pb::google::rpc::Status as RpcStatus;
    use rustls::RootCertStore;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, UnixTime};
    use rustls::server::WebPkiClientVerifier;
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::UnboundedReceiverStream;
    use tonic::transport::Channel;

    use super::*;
    use crate::envoy::locate::binary_for_tests;
    use crate::envoy::process::{EnvoyOptions, EnvoyProcess};
    use crate::origin::{Origin, OriginConfig};
    use crate::wait::{Look, Wait, WaitError};

    const WAIT: Duration = Duration::from_secs(30);
    const NODE: &str = "sidecar~127.0.0.2~sleep-x.default~default.svc.cluster.local";
    const SYSTEM: &str = "file-root:system";

    /// Fixed text, not real PEM: the protocol tests never parse it.
    fn secrets() -> Secrets {
        Secrets::new()
            .tls_certificate(WORKLOAD_SECRET, "chain", "key")
            .validation_context(ROOT_CA_SECRET, "mesh root")
            .validation_context(file_root("system"), "run ca")
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|&n| n.to_owned()).collect()
    }

    fn request(resource_names: &[&str], nonce: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            node: Some(Node {
                id: NODE.to_owned(),
                ..Default::default()
            }),
            type_url: Secret::type_url(),
            resource_names: names(resource_names),
            response_nonce: nonce.to_owned(),
            version_info: if nonce.is_empty() { "" } else { "1" }.to_owned(),
            ..Default::default()
        }
    }

    fn nack(resource_names: &[&str], nonce: &str, message: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            error_detail: Some(RpcStatus {
                code: tonic::Code::InvalidArgument as i32,
                message: message.to_owned(),
                ..Default::default()
            }),
            version_info: String::new(),
            ..request(resource_names, nonce)
        }
    }

    fn decoded(response: &DiscoveryResponse) -> Vec<Secret> {
        response
            .resources
            .iter()
            .map(|any| {
                assert_eq!(any.type_url, Secret::type_url());
                Secret::decode(any.value.as_slice()).unwrap()
            })
            .collect()
    }

    fn secret_names(response: &DiscoveryResponse) -> Vec<String> {
        decoded(response).into_iter().map(|s| s.name).collect()
    }

    fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|&(node, name)| (node.to_owned(), name.to_owned()))
            .collect()
    }

    // The protocol alone.

    #[test]
    fn a_stale_nonce_is_ignored_and_a_nack_with_new_names_is_also_a_request() {
        let secrets = secrets();
        let mut state = StreamState::default();
        let mut nonces = 0;
        let mut nonce = || {
            nonces += 1;
            format!("n{nonces}")
        };
        let first = state
            .handle(&secrets, request(&[WORKLOAD_SECRET], ""), &mut nonce)
            .unwrap();
        assert_eq!(first.served, names(&[WORKLOAD_SECRET]));
        let second = state
            .handle(
                &secrets,
                request(&[WORKLOAD_SECRET, ROOT_CA_SECRET], "n1"),
                &mut nonce,
            )
            .unwrap();
        assert_eq!(second.served, names(&[WORKLOAD_SECRET, ROOT_CA_SECRET]));
        // Envoy's request was sent before it saw n2: stale, whatever it asks for.
        let stale = state
            .handle(&secrets, request(&[SYSTEM], "n1"), &mut nonce)
            .unwrap();
        assert!(
            stale.response.is_none() && stale.nack.is_none(),
            "{stale:?}"
        );
        let nacked = state
            .handle(&secrets, nack(&[SYSTEM], "n2", "bad"), &mut nonce)
            .unwrap();
        assert_eq!(nacked.nack.unwrap().names, second.served);
        assert_eq!(nacked.served, names(&[SYSTEM]));
        assert_eq!(nacked.response.unwrap().nonce, "n3");
    }

    #[test]
    fn a_request_for_another_type_is_refused() {
        let mut state = StreamState::default();
        let wrong = DiscoveryRequest {
            type_url: "type.googleapis.com/envoy.config.cluster.v3.Cluster".to_owned(),
            ..request(&["outbound|443||edition.cnn.com"], "")
        };
        let status = state
            .handle(&secrets(), wrong, || unreachable!())
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("Secret only"), "{status:?}");
    }

    #[test]
    fn secrets_debug_shows_names_and_kinds_but_no_key() {
        let secrets = Secrets::new().tls_certificate("default", "CHAIN", "PRIVATE KEY");
        let text = format!("{secrets:?}");
        assert_eq!(text, r#"{"default": "tls_certificate"}"#);
        assert_eq!(secrets.names(), [WORKLOAD_SECRET]);
    }

    // Over gRPC, with tonic's generated client.

    async fn client(server: &SdsServer) -> SecretDiscoveryServiceClient<Channel> {
        SecretDiscoveryServiceClient::connect(format!("http://{}", server.addr()))
            .await
            .unwrap()
    }

    /// A client stream: requests go in through the sender, responses come out of the stream.
    async fn open(
        server: &SdsServer,
    ) -> (
        mpsc::UnboundedSender<DiscoveryRequest>,
        Streaming<DiscoveryResponse>,
    ) {
        let (requests, outgoing) = mpsc::unbounded_channel();
        let responses = client(server)
            .await
            .stream_secrets(UnboundedReceiverStream::new(outgoing))
            .await
            .unwrap()
            .into_inner();
        (requests, responses)
    }

    async fn next(responses: &mut Streaming<DiscoveryResponse>) -> DiscoveryResponse {
        tokio::time::timeout(WAIT, responses.message())
            .await
            .expect("a response in time")
            .unwrap()
            .expect("an open stream")
    }

    /// Until the server's record satisfies `done`.
    async fn recorded(server: &SdsServer, what: &str, done: impl Fn(&SdsServer) -> bool) {
        let mut changes = server.changes();
        Wait::new(what, WAIT)
            .on_change(&mut changes, || {
                let look = if done(server) {
                    Look::Ready(())
                } else {
                    Look::NotYet(format!(
                        "served {:?}, unknown {:?}, nacks {:?}",
                        server.served(),
                        server.unknown(),
                        server.nacks()
                    ))
                };
                async move { Ok::<_, std::convert::Infallible>(look) }
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test]
    async fn a_stream_is_answered_acked_nacked_and_answered_again_when_its_names_change() {
        let server = SdsServer::start(secrets()).await.unwrap();
        assert!(server.addr().ip().is_loopback());
        assert_ne!(server.addr().port(), 0);
        let (requests, mut responses) = open(&server).await;

        requests
            .send(request(&[WORKLOAD_SECRET, ROOT_CA_SECRET], ""))
            .unwrap();
        let first = next(&mut responses).await;
        assert_eq!(first.type_url, Secret::type_url());
        assert_eq!(first.version_info, SECRETS_VERSION);
        assert!(!first.nonce.is_empty());
        let [workload, root] = decoded(&first).try_into().unwrap();
        assert_eq!(workload.name, WORKLOAD_SECRET);
        let Some(SecretType::TlsCertificate(certificate)) = workload.r#type else {
            panic!("default is a tls certificate: {workload:?}");
        };
        assert_eq!(
            certificate.certificate_chain.unwrap().specifier,
            Some(Specifier::InlineBytes(b"chain".to_vec()))
        );
        assert_eq!(
            certificate.private_key.unwrap().specifier,
            Some(Specifier::InlineBytes(b"key".to_vec()))
        );
        assert_eq!(root.name, ROOT_CA_SECRET);
        let Some(SecretType::ValidationContext(validation)) = root.r#type else {
            panic!("ROOTCA is a validation context: {root:?}");
        };
        assert_eq!(
            validation.trusted_ca.unwrap().specifier,
            Some(Specifier::InlineBytes(b"mesh root".to_vec()))
        );

        // The ACK gets no response: the next message on the stream answers the request after it.
        requests
            .send(request(&[WORKLOAD_SECRET, ROOT_CA_SECRET], &first.nonce))
            .unwrap();
        requests
            .send(request(
                &[WORKLOAD_SECRET, ROOT_CA_SECRET, SYSTEM],
                &first.nonce,
            ))
            .unwrap();
        let second = next(&mut responses).await;
        assert_eq!(
            secret_names(&second),
            names(&[WORKLOAD_SECRET, ROOT_CA_SECRET, SYSTEM])
        );
        assert_ne!(second.nonce, first.nonce);

        // Likewise the NACK, which is kept.
        requests
            .send(nack(
                &[WORKLOAD_SECRET, ROOT_CA_SECRET, SYSTEM],
                &second.nonce,
                "Failed to load certificate chain from <inline>",
            ))
            .unwrap();
        requests.send(request(&[SYSTEM], &second.nonce)).unwrap();
        let third = next(&mut responses).await;
        assert_eq!(secret_names(&third), names(&[SYSTEM]));
        let nacks = server.nacks();
        assert_eq!(
            nacks,
            [SdsNack {
                node_id: NODE.to_owned(),
                names: names(&[WORKLOAD_SECRET, ROOT_CA_SECRET, SYSTEM]),
                nonce: second.nonce.clone(),
                message: "Failed to load certificate chain from <inline>".to_owned(),
            }]
        );
        assert!(
            nacks[0]
                .to_string()
                .contains("rejected secrets default, ROOTCA, file-root:system"),
            "{}",
            nacks[0]
        );
        assert_eq!(
            server.served(),
            pairs(&[
                (NODE, WORKLOAD_SECRET),
                (NODE, ROOT_CA_SECRET),
                (NODE, WORKLOAD_SECRET),
                (NODE, ROOT_CA_SECRET),
                (NODE, SYSTEM),
                (NODE, SYSTEM),
            ])
        );
        assert!(server.unknown().is_empty());
        server.shutdown().await;
    }

    #[tokio::test]
    async fn an_unknown_name_gets_no_response_and_is_reported_once() {
        let server = SdsServer::start(secrets()).await.unwrap();
        let (requests, mut responses) = open(&server).await;
        requests
            .send(request(&["file-root:/etc/none.pem"], ""))
            .unwrap();
        recorded(&server, "the unknown name", |s| !s.unknown().is_empty()).await;

        // Asked again with a name the server holds: only that one is sent, and the unknown name
        // is still reported once.
        requests
            .send(request(&["file-root:/etc/none.pem", WORKLOAD_SECRET], ""))
            .unwrap();
        let response = next(&mut responses).await;
        assert_eq!(secret_names(&response), names(&[WORKLOAD_SECRET]));
        assert_eq!(
            server.unknown(),
            pairs(&[(NODE, "file-root:/etc/none.pem")])
        );
        assert_eq!(server.served(), pairs(&[(NODE, WORKLOAD_SECRET)]));

        // A second stream, one secret per stream as Envoy often does: the unknown name of another
        // node is reported for that node.
        let (other, mut other_responses) = open(&server).await;
        let mut from_gateway = request(&[ROOT_CA_SECRET, "ROOTCA2"], "");
        from_gateway.node.as_mut().unwrap().id = "router~gw".to_owned();
        other.send(from_gateway).unwrap();
        assert_eq!(
            secret_names(&next(&mut other_responses).await),
            names(&[ROOT_CA_SECRET])
        );
        assert_eq!(
            server.unknown(),
            pairs(&[(NODE, "file-root:/etc/none.pem"), ("router~gw", "ROOTCA2")])
        );
        server.shutdown().await;
    }

    #[tokio::test]
    async fn fetch_answers_held_names_refuses_unknown_ones_and_delta_is_unimplemented() {
        let server = SdsServer::start(secrets()).await.unwrap();
        let mut client = client(&server).await;
        let fetched = client
            .fetch_secrets(request(&[ROOT_CA_SECRET, "nope"], ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(secret_names(&fetched), names(&[ROOT_CA_SECRET]));
        assert_eq!(fetched.version_info, SECRETS_VERSION);

        let refused = client
            .fetch_secrets(request(&["nope"], ""))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
        assert!(refused.message().contains("\"nope\""), "{refused:?}");
        assert_eq!(server.unknown(), pairs(&[(NODE, "nope")]));
        assert_eq!(server.served(), pairs(&[(NODE, ROOT_CA_SECRET)]));

        let delta = client
            .delta_secrets(futures::stream::empty::<DeltaDiscoveryRequest>())
            .await
            .unwrap_err();
        assert_eq!(delta.code(), tonic::Code::Unimplemented, "{delta:?}");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn shutdown_ends_open_streams() {
        let server = SdsServer::start(secrets()).await.unwrap();
        let (requests, mut responses) = open(&server).await;
        requests.send(request(&[WORKLOAD_SECRET], "")).unwrap();
        next(&mut responses).await;
        let addr = server.addr();
        server.shutdown().await;
        let end = tokio::time::timeout(WAIT, responses.message())
            .await
            .expect("the stream ends in time");
        assert!(!matches!(end, Ok(Some(_))), "{end:?}");
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[test]
    fn bootstrap_cluster_and_config_source_are_istiods() {
        let addr: SocketAddr = "127.0.0.1:15012".parse().unwrap();
        let cluster = bootstrap_cluster(addr);
        assert_eq!(cluster["name"], SDS_CLUSTER);
        assert_eq!(
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"],
            json!({"address": "127.0.0.1", "port_value": 15012})
        );
        assert_eq!(
            config_source()["api_config_source"]["grpc_services"][0]["envoy_grpc"]["cluster_name"],
            SDS_CLUSTER
        );
    }

    // The mesh identity.

    fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_mesh_identity_chains_to_its_root_and_names_its_spiffe_id() {
        let id = "spiffe://cluster.local/ns/default/sa/sleep";
        let identity = mesh_identity(id).unwrap();
        assert_eq!(identity.spiffe_id(), id);
        let chain = pem_certs(identity.chain_pem());
        let root = pem_certs(identity.root_pem());
        assert_eq!((chain.len(), root.len()), (2, 1));
        assert_eq!(chain[1], root[0], "the chain ends with the root");
        // The URI SAN is in the leaf as its IA5 bytes.
        assert!(
            chain[0].windows(id.len()).any(|w| w == id.as_bytes()),
            "no spiffe id in the leaf"
        );
        assert!(
            identity
                .key_pem()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert!(!format!("{identity:?}").contains("PRIVATE"));

        let verify = |trusted: &CertificateDer<'static>| {
            let mut roots = RootCertStore::empty();
            roots.add(trusted.clone()).unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap()
                .verify_client_cert(&chain[0], &[], UnixTime::now())
                .is_ok()
        };
        assert!(verify(&root[0]));
        let other = mesh_identity(id).unwrap();
        assert!(!verify(&pem_certs(other.root_pem())[0]), "roots are fresh");

        let secrets = identity.secrets();
        assert_eq!(secrets.names(), [ROOT_CA_SECRET, WORKLOAD_SECRET]);
    }

    #[test]
    fn a_malformed_spiffe_id_is_refused_with_the_reason() {
        for (id, reason) in [
            ("cluster.local/ns/default/sa/sleep", "spiffe://"),
            ("spiffe://cluster.local", "no path"),
            ("spiffe:///ns/default", "trust domain is empty"),
            ("spiffe://cluster.local/", "path is empty"),
            ("spiffe://cluster.local/ns/défaut", "ASCII"),
        ] {
            let error = mesh_identity(id).unwrap_err();
            let text = error.to_string();
            assert!(
                matches!(error, IdentityError::SpiffeId { .. }) && text.contains(reason),
                "{id}: {text}"
            );
        }
    }

    // End to end, with a real Envoy.

    /// A STATIC cluster to `upstream` whose upstream TLS (SNI `edition.cnn.com`) takes its
    /// client certificate from SDS `certificate` and its trusted CA from SDS `validation`, with
    /// the `sds_config` istiod writes (`initial_fetch_timeout` added when given).
    fn tls_cluster(
        name: &str,
        upstream: SocketAddr,
        certificate: &str,
        validation: &str,
        initial_fetch_timeout: Option<&str>,
    ) -> Value {
        let mut sds = config_source();
        if let Some(timeout) = initial_fetch_timeout {
            sds["initial_fetch_timeout"] = json!(timeout);
        }
        json!({
            "name": name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {
                    "address": upstream.ip().to_string(),
                    "port_value": upstream.port(),
                }}
            }}]}]},
            "transport_socket": {
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                    "sni": "edition.cnn.com",
                    "common_tls_context": {
                        "tls_certificate_sds_secret_configs": [{"name": certificate, "sds_config": sds}],
                        "combined_validation_context": {
                            "default_validation_context": {},
                            "validation_context_sds_secret_config": {"name": validation, "sds_config": sds},
                        },
                    },
                },
            },
        })
    }

    /// Node, admin API, the `sds-grpc` cluster, the static `tls-upstream` cluster (to `upstream`,
    /// with `default` and `file-root:system`) and a TCP listener to it; `dynamic` clusters arrive
    /// by CDS from `cds.json` in `dir`, so that they warm as clusters from istiod do.
    fn bootstrap(dir: &Path, sds: SocketAddr, upstream: SocketAddr, dynamic: Vec<Value>) -> Value {
        let cds_path = dir.join("cds.json");
        let resources: Vec<Value> = dynamic
            .into_iter()
            .map(|mut cluster| {
                cluster["@type"] = json!("type.googleapis.com/envoy.config.cluster.v3.Cluster");
                cluster
            })
            .collect();
        std::fs::write(
            &cds_path,
            json!({"version_info": "1", "resources": resources}).to_string(),
        )
        .unwrap();
        json!({
            "node": {"id": NODE, "cluster": "sleep.default"},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "dynamic_resources": {
                "cds_config": {
                    "path_config_source": {"path": cds_path.display().to_string()},
                    "resource_api_version": "V3",
                },
            },
            "static_resources": {
                "clusters": [
                    bootstrap_cluster(sds),
                    tls_cluster("tls-upstream", upstream, WORKLOAD_SECRET, SYSTEM, None),
                ],
                "listeners": [{
                    "name": "to-tls-upstream",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                    "filter_chains": [{"filters": [{
                        "name": "envoy.filters.network.tcp_proxy",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                            "stat_prefix": "to-tls-upstream",
                            "cluster": "tls-upstream",
                        },
                    }]}],
                }],
            },
        })
    }

    async fn start_envoy(binary: &Path, dir: &Path, bootstrap: Value) -> EnvoyProcess {
        EnvoyProcess::start(EnvoyOptions {
            binary: binary.to_owned(),
            name: "sidecar".into(),
            bootstrap,
            dir: dir.to_owned(),
            log_level: "info".into(),
            extra_args: vec!["--drain-time-s".into(), "1".into()],
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Until Envoy's stats satisfy `done`; fails at once if Envoy dies.
    async fn stats_until(
        envoy: &EnvoyProcess,
        what: &str,
        done: impl Fn(&BTreeMap<String, u64>) -> bool,
    ) -> BTreeMap<String, u64> {
        let wait = Wait::new(what, WAIT).every(Duration::from_millis(50));
        let looked = wait.poll(|| async {
            Ok::<_, std::convert::Infallible>(match envoy.admin().stats().await {
                Ok(stats) if done(&stats) => Look::Ready(stats),
                Ok(stats) => Look::NotYet(sds_stats(&stats)),
                Err(e) => Look::NotYet(e.to_string()),
            })
        });
        tokio::select! {
            looked = looked => match looked {
                Ok(settled) => settled.value,
                Err(WaitError::TimedOut(t)) => panic!("{t}\n{}", envoy.log_tail(30)),
                Err(WaitError::Failed(never)) => match never {},
            },
            death = envoy.process().death() => panic!("envoy died ({}):\n{}", death.how, death.log_tail),
        }
    }

    /// The stats a failed wait shows.
    fn sds_stats(stats: &BTreeMap<String, u64>) -> String {
        stats
            .iter()
            .filter(|(name, _)| {
                name.starts_with("sds.")
                    || name.starts_with("cluster_manager.")
                    || name.as_str() == "server.state"
            })
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn stat(stats: &BTreeMap<String, u64>, name: &str) -> u64 {
        stats.get(name).copied().unwrap_or(0)
    }

    /// The names in the list `list` of the config dump section `kind`, each once, sorted; an
    /// item's name is `item[key].name` (or `item.name`).
    fn dumped(dump: &Value, kind: &str, list: &str, key: &str) -> Vec<String> {
        let configs = dump["configs"].as_array().expect("configs");
        let Some(section) = configs
            .iter()
            .find(|c| c["@type"].as_str().is_some_and(|t| t.ends_with(kind)))
        else {
            return Vec::new();
        };
        let mut names: Vec<String> = section[list]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        item[key]["name"]
                            .as_str()
                            .or(item["name"].as_str())
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Envoy lists a secret once per subscription to it, and clusters subscribe separately.
        names.sort();
        names.dedup();
        names
    }

    /// Sends `request` through the bootstrap's one listener and returns everything read back.
    async fn through_listener(envoy: &EnvoyProcess, request: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listeners = envoy
            .admin()
            .get_text("/listeners?format=json")
            .await
            .unwrap();
        let listeners: Value = serde_json::from_str(&listeners).unwrap();
        let address = &listeners["listener_statuses"][0]["local_address"]["socket_address"];
        let port = address["port_value"].as_u64().expect("a bound port");
        let port = u16::try_from(port).unwrap();
        let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
            .await
            .expect("the response in time");
        let mut text = String::from_utf8_lossy(&response).into_owned();
        if let Err(e) = read {
            // Envoy resets the downstream connection when the upstream handshake fails.
            text.push_str(&format!("(read failed: {e})"));
        }
        text
    }

    /// `server.state`: 0 is LIVE.
    const LIVE: u64 = 0;

    #[tokio::test]
    async fn envoy_gets_its_secrets_and_its_tls_clusters_go_active() {
        let Some(envoy) = binary_for_tests() else {
            return;
        };
        let identity = mesh_identity("spiffe://cluster.local/ns/default/sa/sleep").unwrap();
        // The run's CA plays the public roots, as in a local run.
        let run_pki =
            Arc::new(crate::origin::RunPki::generate(&["edition.cnn.com".to_owned()]).unwrap());
        let origin = Origin::start(OriginConfig::new(Arc::clone(&run_pki)))
            .await
            .unwrap();
        let server = SdsServer::start(
            identity
                .secrets()
                .validation_context(file_root("system"), run_pki.ca_pem()),
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dynamic = vec![tls_cluster(
            "tls-upstream-cds",
            origin.tls_addr(),
            WORKLOAD_SECRET,
            SYSTEM,
            Some("0s"),
        )];
        let proxy = start_envoy(
            &envoy.path,
            dir.path(),
            bootstrap(dir.path(), server.addr(), origin.tls_addr(), dynamic),
        )
        .await;

        // Each cluster subscribes on its own, under the same stat names: the clusters' state says
        // when all of them have their secrets.
        let stats = stats_until(&proxy, "both TLS clusters to go active", |stats| {
            stat(stats, "cluster_manager.active_clusters") == 3
                && stat(stats, "cluster_manager.warming_clusters") == 0
                && stats.get("server.state") == Some(&LIVE)
        })
        .await;
        assert!(stat(&stats, "sds.default.update_success") >= 1);
        assert!(stat(&stats, "sds.file-root_system.update_success") >= 1);
        assert_eq!(stat(&stats, "sds.default.update_rejected"), 0);
        assert_eq!(stat(&stats, "sds.file-root_system.update_rejected"), 0);
        assert!(proxy.admin().ready().await.unwrap());

        let dump = proxy.admin().config_dump().await.unwrap();
        assert_eq!(
            dumped(
                &dump,
                "SecretsConfigDump",
                "dynamic_active_secrets",
                "secret"
            ),
            [WORKLOAD_SECRET, SYSTEM]
        );
        assert!(
            dumped(
                &dump,
                "SecretsConfigDump",
                "dynamic_warming_secrets",
                "secret"
            )
            .is_empty()
        );
        assert_eq!(
            dumped(
                &dump,
                "ClustersConfigDump",
                "dynamic_active_clusters",
                "cluster"
            ),
            ["tls-upstream-cds"]
        );
        assert_eq!(
            dumped(&dump, "ClustersConfigDump", "static_clusters", "cluster"),
            [SDS_CLUSTER, "tls-upstream"]
        );
        let served = server.served();
        for name in [WORKLOAD_SECRET, SYSTEM] {
            assert!(
                served.contains(&(NODE.to_owned(), name.to_owned())),
                "{served:?}"
            );
        }
        assert!(server.nacks().is_empty(), "{:?}", server.nacks());
        assert!(server.unknown().is_empty(), "{:?}", server.unknown());

        // The secrets are in force: Envoy's TLS to the origin verifies against `file-root:system`.
        let response = through_listener(
            &proxy,
            "GET /politics HTTP/1.1\r\nHost: edition.cnn.com\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "{}; the origin's handshake failures: {:?}",
            &response[..response.len().min(300)],
            origin.handshake_failures()
        );
        assert!(origin.handshake_failures().is_empty());

        proxy.shutdown().await.unwrap();
        server.shutdown().await;
        origin.shutdown().await;
    }

    #[tokio::test]
    async fn a_cluster_whose_secret_the_server_lacks_stays_warming() {
        let Some(envoy) = binary_for_tests() else {
            return;
        };
        let identity = mesh_identity("spiffe://cluster.local/ns/default/sa/sleep").unwrap();
        let server = SdsServer::start(
            identity
                .secrets()
                .validation_context(file_root("system"), identity.root_pem()),
        )
        .await
        .unwrap();
        let missing = file_root("/etc/ssl/missing.pem");
        let dir = tempfile::tempdir().unwrap();
        // No initial fetch timeout, as istiod sometimes writes: Envoy waits for the secret for
        // ever instead of giving up on it after 15 s.
        // Nothing needs to listen: no traffic is sent.
        let nowhere = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
        let dynamic = vec![tls_cluster(
            "tls-upstream-cds",
            nowhere,
            WORKLOAD_SECRET,
            &missing,
            Some("0s"),
        )];
        let proxy = start_envoy(
            &envoy.path,
            dir.path(),
            bootstrap(dir.path(), server.addr(), nowhere, dynamic),
        )
        .await;

        // Envoy has asked for the missing secret and taken the ones the server holds, so it had
        // every answer it will get.
        recorded(&server, "Envoy to ask for the missing secret", |s| {
            s.unknown().contains(&(NODE.to_owned(), missing.clone()))
        })
        .await;
        let stats = stats_until(
            &proxy,
            "Envoy to take the secrets the server holds",
            |stats| {
                stat(stats, "sds.file-root_system.update_success") >= 1
                    && stat(stats, "sds.default.update_success") >= 1
                    && stat(stats, "cluster_manager.warming_clusters") >= 1
            },
        )
        .await;
        assert_eq!(
            stat(&stats, "cluster_manager.warming_clusters"),
            1,
            "{}",
            sds_stats(&stats)
        );
        // The static cluster, whose secrets the server holds, is active beside it.
        assert_eq!(
            stat(&stats, "cluster_manager.active_clusters"),
            2,
            "{}",
            sds_stats(&stats)
        );
        assert_eq!(stat(&stats, "sds.file-root_system.update_rejected"), 0);

        let dump = proxy.admin().config_dump().await.unwrap();
        assert_eq!(
            dumped(
                &dump,
                "ClustersConfigDump",
                "dynamic_warming_clusters",
                "cluster"
            ),
            ["tls-upstream-cds"]
        );
        assert!(
            dumped(
                &dump,
                "ClustersConfigDump",
                "dynamic_active_clusters",
                "cluster"
            )
            .is_empty()
        );
        assert_eq!(
            dumped(
                &dump,
                "SecretsConfigDump",
                "dynamic_warming_secrets",
                "secret"
            ),
            std::slice::from_ref(&missing)
        );
        assert_eq!(server.unknown(), [(NODE.to_owned(), missing)]);
        assert!(server.nacks().is_empty(), "{:?}", server.nacks());

        proxy.shutdown().await.unwrap();
        server.shutdown().await;
    }

    #[tokio::test]
    async fn envoy_nacks_a_certificate_it_cannot_load_and_the_nack_is_kept() {
        let Some(envoy) = binary_for_tests() else {
            return;
        };
        let identity = mesh_identity("spiffe://cluster.local/ns/default/sa/sleep").unwrap();
        let server = SdsServer::start(
            Secrets::new()
                .tls_certificate(WORKLOAD_SECRET, "not a certificate", identity.key_pem())
                .validation_context(file_root("system"), identity.root_pem()),
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let nowhere = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
        let proxy = start_envoy(
            &envoy.path,
            dir.path(),
            bootstrap(dir.path(), server.addr(), nowhere, Vec::new()),
        )
        .await;
        tokio::select! {
            () = recorded(&server, "Envoy to NACK `default`", |s| !s.nacks().is_empty()) => {}
            death = proxy.process().death() => panic!("envoy died ({}):\n{}", death.how, death.log_tail),
        }
        // Envoy checks a TLS context once it has all of its secrets, so the NACK lands on
        // whichever of the two arrived last, with the certificate's error.
        let [nack] = server.nacks().try_into().unwrap();
        assert_eq!(nack.node_id, NODE);
        assert!(
            nack.names == [WORKLOAD_SECRET] || nack.names == [SYSTEM],
            "{nack}"
        );
        assert!(
            nack.message.contains("Failed to load certificate chain"),
            "{nack}"
        );
        let rejected = format!("sds.{}.update_rejected", nack.names[0].replace(':', "_"));
        stats_until(&proxy, "Envoy to count the rejection", |stats| {
            stat(stats, &rejected) == 1
        })
        .await;
        println!("{nack}");

        proxy.shutdown().await.unwrap();
        server.shutdown().await;
    }
}
