//! The run's public key infrastructure: one certificate authority made fresh for every run and one
//! leaf certificate, signed by it, for every external host the local origin plays.
//!
//! The CA plays the public roots: curl's `--cacert` and Envoy's `trusted_ca` read the file written
//! by [`RunPki::write_ca_pem`], so nothing outside the run ever trusts it. Keys are ECDSA P-256
//! made with ring. This module makes certificates and the origin's rustls server configuration; it
//! does not serve anything (see `origin::server`) and keeps no key on disk.

use std::path::Path;
use std::sync::Arc;
use std::{fs, io};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The CA certificate's common name, so a run's CA is recognisable in any tool that shows it.
pub const CA_COMMON_NAME: &str = "egress-conformance run CA";

/// Why [`RunPki::generate`] failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("no hosts given for the leaf certificate")]
    NoHosts,
    #[error("host {host:?} is not a valid dns name for a certificate")]
    InvalidHost {
        host: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("generating the {what} key")]
    Key {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("signing the {what} certificate")]
    Sign {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("building the tls server config for hosts {hosts:?}")]
    ServerConfig {
        hosts: Vec<String>,
        #[source]
        source: rustls::Error,
    },
}

/// A run's CA and the origin's leaf certificate and key.
pub struct RunPki {
    hosts: Vec<String>,
    ca_pem: String,
    #[cfg(test)]
    ca_der: CertificateDer<'static>,
    leaf_der: CertificateDer<'static>,
    leaf_key: PrivatePkcs8KeyDer<'static>,
}

impl std::fmt::Debug for RunPki {
    // The private key stays out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunPki")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl RunPki {
    /// Makes a fresh self-signed CA and one leaf certificate whose subject alternative names are
    /// exactly `hosts` (DNS names), usable for TLS server authentication.
    pub fn generate(hosts: &[String]) -> Result<RunPki, PkiError> {
        if hosts.is_empty() {
            return Err(PkiError::NoHosts);
        }

        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|source| PkiError::Key { what: "ca", source })?;
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = rcgen::DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, CA_COMMON_NAME);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key)
            .map_err(|source| PkiError::Sign { what: "ca", source })?;

        let mut leaf_params =
            CertificateParams::new(hosts.to_vec()).map_err(|source| PkiError::InvalidHost {
                host: first_invalid_host(hosts),
                source,
            })?;
        leaf_params.distinguished_name = rcgen::DistinguishedName::new();
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, hosts[0].as_str());
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf_params.use_authority_key_identifier_extension = true;
        let leaf_key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| PkiError::Key {
                what: "leaf",
                source,
            })?;
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca)
            .map_err(|source| PkiError::Sign {
                what: "leaf",
                source,
            })?;

        Ok(RunPki {
            hosts: hosts.to_vec(),
            ca_pem: ca.pem(),
            #[cfg(test)]
            ca_der: ca.der().clone(),
            leaf_der: leaf.der().clone(),
            leaf_key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        })
    }

    /// The hosts the leaf certificate names.
    #[cfg(test)]
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate, DER.
    #[cfg(test)]
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// The leaf certificate, DER.
    #[cfg(test)]
    pub fn leaf_der(&self) -> &CertificateDer<'static> {
        &self.leaf_der
    }

    /// Writes the CA certificate as PEM to `path`, for curl's `--cacert` and Envoy's `trusted_ca`.
    pub fn write_ca_pem(&self, path: impl AsRef<Path>) -> io::Result<()> {
        fs::write(path, self.ca_pem.as_bytes())
    }

    /// A rustls server configuration presenting the leaf certificate (whatever the SNI), TLS 1.2
    /// and 1.3, offering `alpn` (in the server's order of preference), built on ring explicitly
    /// rather than the process-wide provider. A client that offers no ALPN (Envoy's upstream TLS
    /// context for an HTTP/1.1 cluster) is accepted too: rustls refuses only a client whose offer
    /// has no overlap.
    pub fn server_config(&self, alpn: &[String]) -> Result<Arc<ServerConfig>, PkiError> {
        let to_error = |source| PkiError::ServerConfig {
            hosts: self.hosts.clone(),
            source,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(to_error)?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.leaf_der.clone()],
                PrivateKeyDer::Pkcs8(self.leaf_key.clone_key()),
            )
            .map_err(to_error)?;
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// rcgen reports which conversion failed but not for which name; find it for the error.
fn first_invalid_host(hosts: &[String]) -> String {
    hosts
        .iter()
        .find(|h| CertificateParams::new(vec![(*h).clone()]).is_err())
        .cloned()
        .unwrap_or_else(|| hosts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::RootCertStore;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};

    fn verify(pki: &RunPki, trusted_ca: &CertificateDer<'static>, name: &str) -> bool {
        let mut roots = RootCertStore::empty();
        roots.add(trusted_ca.clone()).expect("ca parses");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .expect("verifier builds");
        let name = ServerName::try_from(name.to_string()).expect("valid server name");
        verifier
            .verify_server_cert(pki.leaf_der(), &[], &name, &[], UnixTime::now())
            .is_ok()
    }

    fn site() -> Vec<String> {
        vec!["news.example".to_string()]
    }

    #[test]
    fn leaf_verifies_against_the_ca_for_its_host_only() {
        let pki = RunPki::generate(&site()).unwrap();
        assert!(verify(&pki, pki.ca_der(), "news.example"));
        assert!(!verify(&pki, pki.ca_der(), "www.news.example"));
        assert!(!verify(&pki, pki.ca_der(), "example.com"));
    }

    #[test]
    fn every_run_has_its_own_ca() {
        let first = RunPki::generate(&site()).unwrap();
        let second = RunPki::generate(&site()).unwrap();
        assert_ne!(first.ca_pem(), second.ca_pem());
        // A leaf from one run must not verify against another run's CA.
        assert!(!verify(&first, second.ca_der(), "news.example"));
    }

    #[test]
    fn leaf_names_every_host() {
        let hosts = vec!["news.example".to_string(), "search.example".to_string()];
        let pki = RunPki::generate(&hosts).unwrap();
        assert!(verify(&pki, pki.ca_der(), "news.example"));
        assert!(verify(&pki, pki.ca_der(), "search.example"));
        assert_eq!(pki.hosts(), hosts.as_slice());
    }

    #[test]
    fn no_hosts_is_an_error() {
        assert!(matches!(RunPki::generate(&[]), Err(PkiError::NoHosts)));
    }

    #[test]
    fn ca_pem_is_written_and_server_config_builds() {
        let pki = RunPki::generate(&site()).unwrap();
        assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        pki.write_ca_pem(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), pki.ca_pem());
        let config = pki
            .server_config(&["h2".into(), "http/1.1".into()])
            .unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
