//! `ValidateGateway`.

use std::collections::BTreeSet;

use super::Out;
use super::helpers::{
    go_quote, ip_address, is_dns1123_label, is_ip, partial_wildcard, port, unix_address,
    wildcard_domain,
};
use crate::istio::api::{Gateway, Port, Server, ServerTlsMode, ServerTlsSettings, TlsProtocol};
use crate::istio::object::IstioObject;
use crate::istio::protocol::Protocol;
use crate::yaml::FieldPath;

const UNIX: &str = "unix://";

pub(super) fn check(out: &mut Out, spec: &FieldPath, gw: &Gateway, object: &IstioObject) {
    // Set on Gateways Istio translates from the Gateway API.
    let semantics = object
        .annotations
        .get("internal.istio.io/gateway-semantics")
        .is_some_and(|v| v == "gateway");
    if !is_dns1123_label(&object.name) && !semantics {
        out.error(
            &FieldPath::default().key("metadata").key("name"),
            format!("invalid gateway name: {}", go_quote(&object.name)),
        );
    }
    let servers = spec.key("servers");
    if gw.servers.is_empty() {
        out.error(&servers, "gateway must have at least one server");
    }
    for (i, server) in gw.servers.iter().enumerate() {
        check_server(out, &servers.index(i), server, semantics);
    }
    let mut names = BTreeSet::new();
    for (i, server) in gw.servers.iter().enumerate() {
        let Some(p) = &server.port else { continue };
        if !names.insert(p.name.as_str()) {
            out.error(
                &servers.index(i).key("port").key("name"),
                format!(
                    "port names in servers must be unique: duplicate name {}",
                    p.name
                ),
            );
        }
        let http = Protocol::parse(&p.protocol).is_some_and(Protocol::is_http);
        if !http && server.tls.0.as_ref().is_some_and(|t| t.https_redirect) {
            out.warning(
                &servers.index(i).key("tls").key("httpsRedirect"),
                "tls.httpsRedirect should only be used with http servers",
            );
        }
    }
}

fn check_server(out: &mut Out, at: &FieldPath, server: &Server, semantics: bool) {
    let hosts = at.key("hosts");
    if server.hosts.is_empty() {
        out.error(&hosts, "server config must contain at least one host");
    }
    for (i, host) in server.hosts.iter().enumerate() {
        for message in gateway_host(host, semantics) {
            out.error(&hosts.index(i), message);
        }
    }
    let bind = server.bind.0.as_str();
    let port_at = at.key("port");
    let errors_before = out.error_count();
    match &server.port {
        None => out.error(&port_at, "port is required"),
        Some(p) => {
            if Protocol::parse(&p.protocol).is_none() {
                out.error(
                    &port_at.key("protocol"),
                    format!(
                        "invalid protocol {}, supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP",
                        go_quote(&p.protocol)
                    ),
                );
            }
            if p.number > 0 || !bind.starts_with(UNIX) {
                out.check(&port_at.key("number"), port(p.number.into()));
            }
            if p.target_port.0 > 0 {
                out.error(
                    &port_at.key("targetPort"),
                    "targetPort has no impact on Gateways",
                );
            }
            if p.name.is_empty() {
                out.error(
                    &port_at.key("name"),
                    format!("port name must be set: {}", proto_text(p)),
                );
            }
        }
    }
    let port_ok = out.error_count() == errors_before;
    if let Some(path) = bind.strip_prefix(UNIX) {
        out.check(&at.key("bind"), unix_address(path));
        if let Some(p) = &server.port
            && p.number != 0
        {
            out.error(
                &at.key("bind"),
                format!(
                    "port number must be 0 for unix domain socket: {}",
                    proto_text(p)
                ),
            );
        }
    } else if !bind.is_empty() {
        out.check(&at.key("bind"), ip_address(bind));
    }
    let tls = server.tls.0.as_ref();
    if let Some(tls) = tls {
        tls_options(out, &at.key("tls"), tls);
    }
    if port_ok && let Some(p) = &server.port {
        let protocol = Protocol::parse(&p.protocol);
        let is_tls = protocol.is_some_and(Protocol::is_tls);
        let is_http = protocol.is_some_and(Protocol::is_http);
        match tls {
            None if is_tls => out.error(
                &port_at.key("protocol"),
                "server must have TLS settings for HTTPS/TLS protocols",
            ),
            Some(tls) if !is_tls => {
                let passthrough = matches!(
                    tls.mode,
                    ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
                );
                if is_http {
                    if !passthrough
                        || !tls.ca_certificates.is_empty()
                        || !tls.private_key.is_empty()
                        || !tls.server_certificate.is_empty()
                    {
                        out.error(
                            &at.key("tls"),
                            "server cannot have TLS settings for plain text HTTP ports",
                        );
                    }
                } else {
                    out.error(
                        &at.key("tls"),
                        "server cannot have TLS settings for non HTTPS/TLS ports",
                    );
                }
            }
            _ => {}
        }
    }
}

/// `ValidateNamespaceSlashWildcardHostname` for a Gateway's host: every error, in order.
pub(super) fn gateway_host(entry: &str, semantics: bool) -> Vec<String> {
    let mut errors = Vec::new();
    let host = match entry.split_once('/') {
        None => entry,
        Some((namespace, host)) => {
            if namespace.is_empty() || host.is_empty() {
                errors.push("config namespace and dnsName in host entry cannot be empty".into());
            }
            if namespace != "*"
                && namespace != "."
                && (namespace != "~" || !semantics)
                && !is_dns1123_label(namespace)
            {
                errors.push(format!(
                    "invalid namespace value {} in gateway",
                    go_quote(namespace)
                ));
            }
            host
        }
    };
    if host != "*" && !host.contains('.') {
        errors.push("short names (non FQDN) are not allowed".into());
    }
    if let Err(error) = wildcard_domain(host)
        && !is_ip(host)
    {
        errors.push(error);
    }
    if let Err(error) = partial_wildcard(host) {
        errors.push(error);
    }
    errors
}

/// `validateTLSOptions`: a server's TLS settings.
fn tls_options(out: &mut Out, at: &FieldPath, tls: &ServerTlsSettings) {
    if matches!(
        tls.min_protocol_version,
        TlsProtocol::V1_0 | TlsProtocol::V1_1
    ) && tls.cipher_suites.is_empty()
    {
        out.warning(
            &at.key("minProtocolVersion"),
            "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.",
        );
    }
    let mut invalid = BTreeSet::new();
    let mut valid = BTreeSet::new();
    let mut duplicate = BTreeSet::new();
    for suite in &tls.cipher_suites {
        if !is_valid_cipher_suite(suite) {
            invalid.insert(suite.as_str());
        } else if !valid.insert(suite.as_str()) {
            duplicate.insert(suite.as_str());
        }
    }
    let list =
        |set: &BTreeSet<&str>| format!("[{}]", set.iter().copied().collect::<Vec<_>>().join(" "));
    if !invalid.is_empty() {
        out.warning(
            &at.key("cipherSuites"),
            format!("ignoring invalid cipher suites: {}", list(&invalid)),
        );
    }
    if !duplicate.is_empty() {
        out.warning(
            &at.key("cipherSuites"),
            format!("ignoring duplicate cipher suites: {}", list(&duplicate)),
        );
    }
    if tls.mode == ServerTlsMode::IstioMutual {
        let fields: [(bool, &str, &str); 6] = [
            (
                !tls.server_certificate.is_empty(),
                "serverCertificate",
                "server certificate",
            ),
            (!tls.private_key.is_empty(), "privateKey", "private key"),
            (
                !tls.ca_certificates.is_empty(),
                "caCertificates",
                "CA bundle",
            ),
            (
                !tls.tls_certificates.is_empty(),
                "tlsCertificates",
                "tlsCertificates",
            ),
            (
                !tls.credential_name.is_empty(),
                "credentialName",
                "credentialName",
            ),
            (
                !tls.credential_names.is_empty(),
                "credentialNames",
                "credentialNames",
            ),
        ];
        for (set, field, what) in fields {
            if set {
                out.error(
                    &at.key(field),
                    format!("ISTIO_MUTUAL TLS cannot have associated {what}"),
                );
            }
        }
        return;
    }
    let passthrough = matches!(
        tls.mode,
        ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
    );
    if passthrough
        && (!tls.ca_crl.is_empty()
            || !tls.server_certificate.is_empty()
            || !tls.private_key.is_empty()
            || !tls.ca_certificates.is_empty()
            || !tls.tls_certificates.is_empty()
            || !tls.credential_name.is_empty()
            || !tls.credential_names.is_empty())
    {
        out.warning(
            at,
            format!(
                "{} mode does not use certificates, they will be ignored",
                tls.mode
            ),
        );
    }
    let sources = [
        !tls.server_certificate.is_empty() && !tls.private_key.is_empty(),
        !tls.credential_name.is_empty(),
        !tls.credential_names.is_empty(),
        !tls.tls_certificates.is_empty(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        out.error(
            at,
            "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified",
        );
    }
    let terminating = matches!(
        tls.mode,
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    if terminating && (!tls.credential_name.is_empty() || !tls.credential_names.is_empty()) {
        // The credentials come from elsewhere: nothing more to check.
        return;
    }
    if terminating {
        let mutual = tls.mode != ServerTlsMode::Simple;
        let prefix = if mutual { "MUTUAL TLS" } else { "SIMPLE TLS" };
        if mutual && tls.ca_certificates.is_empty() {
            out.error(
                &at.key("caCertificates"),
                format!("{prefix} requires a client CA bundle"),
            );
        }
        if tls.tls_certificates.len() > 2 {
            out.warning(
                &at.key("tlsCertificates"),
                format!("{prefix} can support up to 2 server certificates"),
            );
        }
        let certificates: Vec<(FieldPath, &str, &str)> = if tls.tls_certificates.is_empty() {
            vec![(
                at.clone(),
                tls.server_certificate.as_str(),
                tls.private_key.as_str(),
            )]
        } else {
            tls.tls_certificates
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    (
                        at.key("tlsCertificates").index(i),
                        c.server_certificate.as_str(),
                        c.private_key.as_str(),
                    )
                })
                .collect()
        };
        for (here, certificate, key) in certificates {
            if certificate.is_empty() {
                out.error(
                    &here.key("serverCertificate"),
                    format!("{prefix} requires a server certificate"),
                );
            }
            if key.is_empty() {
                out.error(
                    &here.key("privateKey"),
                    format!("{prefix} requires a private key"),
                );
            }
        }
    }
    if !tls.ca_crl.is_empty() {
        if !tls.credential_name.is_empty() {
            out.error(
                &at.key("caCrl"),
                "CRL is not supported with credentialName. CRL has to be specified in the credential",
            );
        }
        if tls.mode == ServerTlsMode::Simple {
            out.error(&at.key("caCrl"), "CRL is not supported with SIMPLE TLS");
        }
    }
}

/// `security.IsValidCipherSuite`: a known suite, `ALL`, empty, or an entry that does not start
/// with a letter or digit (an OpenSSL operator such as `-` or `!`).
fn is_valid_cipher_suite(suite: &str) -> bool {
    const SUITES: [&str; 15] = [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
        "AES128-SHA",
        "AES256-SHA",
        "DES-CBC3-SHA",
    ];
    if suite.is_empty() || suite == "ALL" {
        return true;
    }
    // Go reads the first byte as a code point.
    let first = char::from(suite.as_bytes()[0]);
    if !first.is_alphanumeric() {
        return true;
    }
    SUITES.contains(&suite)
}

/// A `Port` as Go's `%v` prints the proto message (protobuf-go's compact text format): the
/// fields that are set, in field order. This build of Istio separates them with two spaces;
/// others use one (protobuf-go varies it on purpose).
fn proto_text(p: &Port) -> String {
    let mut fields = Vec::new();
    if p.number != 0 {
        fields.push(format!("number:{}", p.number));
    }
    if !p.protocol.is_empty() {
        fields.push(format!("protocol:{}", go_quote(&p.protocol)));
    }
    if !p.name.is_empty() {
        fields.push(format!("name:{}", go_quote(&p.name)));
    }
    if p.target_port.0 != 0 {
        fields.push(format!("target_port:{}", p.target_port.0));
    }
    fields.join("  ")
}
