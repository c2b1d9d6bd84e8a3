//! `Gateway` (networking/v1alpha3/gateway.proto).

use std::collections::BTreeMap;

use super::{Untranslated, api};

api! {
    pub struct Gateway { pub servers: Vec<Server>, pub selector: BTreeMap<String, String> }

    pub struct Server {
        pub port: Option<Port>, pub bind: Untranslated<String>, pub hosts: Vec<String>,
        pub tls: Untranslated<Option<ServerTlsSettings>>,
        pub default_endpoint: Untranslated<String>, pub name: String,
    }

    pub struct Port {
        pub number: u32, pub protocol: String, pub name: String, pub target_port: Untranslated<u32>,
    }

    pub struct ServerTlsSettings {
        pub https_redirect: bool, pub mode: ServerTlsMode, pub server_certificate: String,
        pub private_key: String, pub ca_certificates: String, pub ca_crl: String,
        pub credential_name: String, pub credential_names: Vec<String>,
        pub ca_cert_credential_name: String, pub tls_certificates: Vec<TlsCertificate>,
        pub subject_alt_names: Vec<String>, pub verify_certificate_spki: Vec<String>,
        pub verify_certificate_hash: Vec<String>, pub min_protocol_version: TlsProtocol,
        pub max_protocol_version: TlsProtocol, pub cipher_suites: Vec<String>,
        pub insecure_skip_verify: Option<bool>,
    }

    pub struct TlsCertificate {
        pub server_certificate: String, pub private_key: String, pub ca_certificates: String,
    }

    pub enum ServerTlsMode {
        Passthrough = "PASSTHROUGH", Simple = "SIMPLE", Mutual = "MUTUAL",
        AutoPassthrough = "AUTO_PASSTHROUGH", IstioMutual = "ISTIO_MUTUAL",
        OptionalMutual = "OPTIONAL_MUTUAL",
    }

    pub enum TlsProtocol {
        Auto = "TLS_AUTO", V1_0 = "TLSV1_0", V1_1 = "TLSV1_1", V1_2 = "TLSV1_2", V1_3 = "TLSV1_3",
    }
}
