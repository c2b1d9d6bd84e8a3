//! A real Kubernetes API server for one run: etcd and kube-apiserver on loopback, every port
//! chosen for the run, certificates made for it, in a directory of its own.
//!
//! etcd runs as a single member with its client and peer URLs on 127.0.0.1 (the default peer
//! URL, `localhost:2380`, would collide between runs) and `--unsafe-no-fsync` (the data lives
//! as long as the run). kube-apiserver serves TLS on 127.0.0.1 with a certificate from a CA made
//! for the run (rcgen), authenticates the harness (and istiod) by a bearer token in the
//! `system:masters` group, authorizes everything (`AlwaysAllow`), and signs service-account
//! tokens with a key made for the run. It advertises 127.0.0.1 with no endpoint reconciler: the
//! reconciler would write 127.0.0.1 into the `kubernetes` Endpoints, which refuse loopback
//! addresses. Nothing listens beyond loopback.
//!
//! Ready means etcd's `/health` says so, then kube-apiserver's `/readyz` answers 200 to the
//! run's client; a death of either is noticed while waiting. [`ApiServer::shutdown`] stops
//! kube-apiserver before etcd: with both stopped at once, kube-apiserver waits for etcd to come
//! back and does not exit.
//!
//! What it does not run: a controller manager, a scheduler, a kubelet. What they would write
//! (pods and their status, endpoint slices) is `workloads`' to write.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use tokio::process::Command;

use crate::process::{Death, Liveness, Supervised, tail_lines};
use crate::wait::{Look, Wait, WaitError};

/// How long etcd may take to say it is healthy (0.4-0.8 s measured).
const ETCD_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long kube-apiserver may take to be ready (3-5 s measured, under load).
const APISERVER_READY_TIMEOUT: Duration = Duration::from_secs(90);
/// SIGTERM to exit: kube-apiserver takes 2.5-3.1 s, etcd about 2 s.
const APISERVER_GRACE: Duration = Duration::from_secs(15);
const ETCD_GRACE: Duration = Duration::from_secs(10);
/// The Service network: kind's, so Services get addresses like a kind cluster's.
pub(crate) const SERVICE_CIDR: &str = "10.96.0.0/16";
/// The user the harness and istiod are to the API server.
const USER: &str = "egress-conformance";

/// The binaries and the directory to run in.
pub(crate) struct ApiServerStart<'a> {
    pub kube_apiserver: PathBuf,
    pub etcd: PathBuf,
    /// The directory its files go to (certificates, etcd's data, logs, the kubeconfig).
    pub dir: &'a Path,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiServerError {
    #[error("writing the API server's files in {}: {source}", .dir.display())]
    Files {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("making the API server's certificates: {0}")]
    Certificates(#[source] rcgen::Error),
    #[error("choosing the API server's ports: {0}")]
    Ports(#[source] std::io::Error),
    #[error(transparent)]
    Spawn(#[from] crate::process::ProcessError),
    #[error("{0}")]
    Died(Death),
    #[error("{waited}; {who}'s log ends:\n{log_tail}")]
    NotReady {
        who: &'static str,
        waited: String,
        log_tail: String,
    },
    #[error("the API server's kubeconfig {}: {message}", .file.display())]
    Kubeconfig { file: PathBuf, message: String },
}

/// A running etcd and kube-apiserver, and a client of it.
pub(crate) struct ApiServer {
    // Field order is drop order: kube-apiserver before etcd.
    apiserver: Option<Supervised>,
    etcd: Option<Supervised>,
    client: Client,
    kubeconfig: PathBuf,
    url: String,
    ports: Vec<u16>,
    pids: Vec<u32>,
}

/// Free loopback ports for processes that bind them themselves (Go sets no `SO_REUSEPORT`, so the
/// run cannot hold them meanwhile).
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<_, _>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// The run's CA and the API server's serving certificate (for 127.0.0.1), PEM.
struct Certificates {
    ca: String,
    server: String,
    server_key: String,
    /// Service-account tokens are signed with this key (PKCS#8 PEM)…
    service_account_key: String,
    /// …and verified with its public half (kube-apiserver reads no public key out of a PKCS#8
    /// private key file).
    service_account_public: String,
}

fn certificates() -> Result<Certificates, rcgen::Error> {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "egress-conformance API server CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let issuer = CertifiedIssuer::self_signed(ca, ca_key)?;
    let mut server = CertificateParams::new(vec![
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        "kubernetes.default.svc.cluster.local".to_string(),
    ])?;
    server
        .subject_alt_names
        .push(SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
    server.distinguished_name = rcgen::DistinguishedName::new();
    server
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    let server_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let server_cert = server.signed_by(&server_key, &issuer)?;
    let service_account = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    Ok(Certificates {
        ca: issuer.pem(),
        server: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        service_account_key: service_account.serialize_pem(),
        service_account_public: service_account.public_key_pem(),
    })
}

/// A bearer token no one can guess: 32 bytes of the kernel's randomness, hex.
fn token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn kubeconfig_text(url: &str, ca_file: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: egress-conformance\n  cluster:\n    server: {url}\n    certificate-authority: {ca}\n\
         users:\n- name: {USER}\n  user:\n    token: {token}\n\
         contexts:\n- name: egress-conformance\n  context:\n    cluster: egress-conformance\n    user: {USER}\n\
         current-context: egress-conformance\n",
        ca = ca_file.display()
    )
}

impl ApiServer {
    /// Start etcd, then kube-apiserver, and wait until both are ready. Whatever was started is
    /// stopped again when this fails (the guards' drop).
    pub(crate) async fn start(
        start: ApiServerStart<'_>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ApiServer, ApiServerError> {
        let dir = start.dir;
        let files = |source| ApiServerError::Files {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(files)?;
        let certs = certificates().map_err(ApiServerError::Certificates)?;
        let token = token().map_err(files)?;
        let write = |name: &str, text: &str| -> Result<PathBuf, ApiServerError> {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(files)?;
            Ok(path)
        };
        let ca_file = write("ca.pem", &certs.ca)?;
        let cert_file = write("apiserver.pem", &certs.server)?;
        let key_file = write("apiserver-key.pem", &certs.server_key)?;
        let sa_file = write("service-account-key.pem", &certs.service_account_key)?;
        let sa_public = write("service-account.pub", &certs.service_account_public)?;
        let tokens = write(
            "tokens.csv",
            &format!("{token},{USER},{USER},\"system:masters\"\n"),
        )?;
        let ports = free_ports(3).map_err(ApiServerError::Ports)?;
        let [client_port, peer_port, secure_port] = [ports[0], ports[1], ports[2]];
        let url = format!("https://127.0.0.1:{secure_port}");
        let kubeconfig = write("kubeconfig", &kubeconfig_text(&url, &ca_file, &token))?;

        // etcd.
        let loopback = |port: u16| format!("http://127.0.0.1:{port}");
        let etcd_log = dir.join("etcd.log");
        let mut etcd = Command::new(&start.etcd);
        etcd.arg("--name=egress-conformance")
            .arg(format!("--data-dir={}", dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={}", loopback(client_port)))
            .arg(format!("--advertise-client-urls={}", loopback(client_port)))
            .arg(format!("--listen-peer-urls={}", loopback(peer_port)))
            .arg(format!(
                "--initial-advertise-peer-urls={}",
                loopback(peer_port)
            ))
            .arg(format!(
                "--initial-cluster=egress-conformance={}",
                loopback(peer_port)
            ))
            .arg("--unsafe-no-fsync")
            .current_dir(dir);
        redirect(&mut etcd, &etcd_log).map_err(files)?;
        progress(&format!(
            "starting etcd ({}), clients on 127.0.0.1:{client_port}",
            start.etcd.display()
        ));
        let etcd = Supervised::spawn("etcd", etcd, etcd_log.clone())?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_default();
        let health = format!("{}/health", loopback(client_port));
        Wait::new(
            format!("etcd to be healthy (GET {health})"),
            ETCD_READY_TIMEOUT,
        )
        .every(Duration::from_millis(20))
        .poll(async || {
            if let Some(death) = etcd.dead() {
                return Err(ApiServerError::Died(death));
            }
            Ok(match http.get(&health).send().await {
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    if status.is_success() && body.contains("\"health\":\"true\"") {
                        Look::Ready(())
                    } else {
                        Look::NotYet(format!("{status}: {}", body.trim()))
                    }
                }
                Err(e) => Look::NotYet(e.to_string()),
            })
        })
        .await
        .map_err(|e| not_ready(e, "etcd", &etcd_log))?;

        // kube-apiserver.
        let apiserver_log = dir.join("kube-apiserver.log");
        let mut apiserver = Command::new(&start.kube_apiserver);
        apiserver
            .arg(format!("--etcd-servers={}", loopback(client_port)))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={secure_port}"))
            .arg("--advertise-address=127.0.0.1")
            .arg("--endpoint-reconciler-type=none")
            .arg(format!("--cert-dir={}", dir.join("certs").display()))
            .arg(format!("--tls-cert-file={}", cert_file.display()))
            .arg(format!("--tls-private-key-file={}", key_file.display()))
            .arg(format!("--token-auth-file={}", tokens.display()))
            .arg("--authorization-mode=AlwaysAllow")
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!(
                "--service-account-key-file={}",
                sa_public.display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                sa_file.display()
            ))
            .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
            .arg("--profiling=false")
            .current_dir(dir);
        redirect(&mut apiserver, &apiserver_log).map_err(files)?;
        progress(&format!(
            "starting kube-apiserver ({}) on {url}",
            start.kube_apiserver.display()
        ));
        let apiserver = Supervised::spawn("kube-apiserver", apiserver, apiserver_log.clone())?;
        let client = client_of(&kubeconfig).await?;
        Wait::new(
            format!("kube-apiserver to be ready (GET {url}/readyz)"),
            APISERVER_READY_TIMEOUT,
        )
        .every(Duration::from_millis(50))
        .poll(async || {
            for process in [&apiserver, &etcd] {
                if let Some(death) = process.dead() {
                    return Err(ApiServerError::Died(death));
                }
            }
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("a GET of a fixed path is a valid request");
            Ok(match client.request_text(request).await {
                Ok(text) if text.trim() == "ok" => Look::Ready(()),
                Ok(text) => Look::NotYet(text.trim().to_string()),
                Err(e) => Look::NotYet(crate::backend::kind::cluster::api_message(&e)),
            })
        })
        .await
        .map_err(|e| not_ready(e, "kube-apiserver", &apiserver_log))?;
        let pids = vec![apiserver.pid(), etcd.pid()];
        Ok(ApiServer {
            apiserver: Some(apiserver),
            etcd: Some(etcd),
            client,
            kubeconfig,
            url,
            ports,
            pids,
        })
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// A kubeconfig that reaches it, as `kubectl --kubeconfig` and istiod take it.
    pub(crate) fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Its pids (kube-apiserver, etcd), for the leftover check after it stopped.
    pub(crate) fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// Every loopback port it listens on.
    pub(crate) fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Watch both processes: a death fails the stage at once.
    pub(crate) fn watch(&self, liveness: &mut Liveness) {
        for process in self.apiserver.iter().chain(self.etcd.iter()) {
            liveness.watch(process);
        }
    }

    /// Stop kube-apiserver, then etcd; what could not be stopped, in words.
    pub(crate) async fn shutdown(mut self) -> Vec<String> {
        let mut leftovers = Vec::new();
        for (process, grace) in [
            (self.apiserver.take(), APISERVER_GRACE),
            (self.etcd.take(), ETCD_GRACE),
        ] {
            if let Some(process) = process
                && let Err(e) = process.shutdown(grace).await
            {
                leftovers.push(e.to_string());
            }
        }
        leftovers
    }
}

/// Send the child's stdout and stderr to `log`.
fn redirect(command: &mut Command, log: &Path) -> std::io::Result<()> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    command
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    Ok(())
}

fn not_ready(
    error: WaitError<String, ApiServerError>,
    who: &'static str,
    log: &Path,
) -> ApiServerError {
    match error {
        WaitError::Failed(e) => e,
        WaitError::TimedOut(t) => ApiServerError::NotReady {
            who,
            waited: t.to_string(),
            log_tail: tail_lines(log, 20),
        },
    }
}

/// A client of the kubeconfig `file`, as a user's kubectl would read it.
async fn client_of(file: &Path) -> Result<Client, ApiServerError> {
    let error = |message: String| ApiServerError::Kubeconfig {
        file: file.to_path_buf(),
        message,
    };
    let kubeconfig = Kubeconfig::read_from(file).map_err(|e| error(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| error(e.to_string()))?;
    Client::try_from(config).map_err(|e| error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_names_the_server_its_ca_and_the_token() {
        let text = kubeconfig_text("https://127.0.0.1:4242", Path::new("/run/ca.pem"), "t0k");
        let parsed: Kubeconfig = serde_saphyr::from_str(&text).unwrap();
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:4242"));
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some("/run/ca.pem")
        );
        assert_eq!(
            parsed.current_context.as_deref(),
            Some("egress-conformance")
        );
        assert!(text.contains("token: t0k"), "{text}");
    }

    #[test]
    fn tokens_are_fresh_and_long() {
        let (a, b) = (token().unwrap(), token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn the_serving_certificate_is_for_loopback() {
        let certs = certificates().unwrap();
        assert!(certs.ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(
            certs
                .service_account_key
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert!(certs.server_key.starts_with("-----BEGIN PRIVATE KEY-----"));
    }
}
