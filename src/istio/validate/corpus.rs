//! The validation corpus (`tests/validation-corpus/`): manifests Istio refuses or accepts, each
//! with the verdict and the words Istio's own validation gave it (see that directory's README).
//! The harness must give the same verdict, and where Istio refuses, the same message.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::istio::parse::DEFAULT_NAMESPACE;
use crate::verdicts::{RefusedBy, Verdict, harness_verdict};

/// One entry of `index.json`.
#[derive(Debug, Deserialize)]
pub(crate) struct Entry {
    pub id: String,
    pub kind: String,
    pub rule: Option<String>,
    pub file: String,
    /// `refused` or `accepted`: what the harness must say (Istio's validation and the API
    /// server's schema together, as `kubectl apply` meets them).
    pub harness: String,
    /// `istio`, `schema` or `decoding`, when refused.
    pub refused_by: Option<String>,
    /// `refused` or `accepted`: what Istio's validation alone says (istiod without the API
    /// server in front of it).
    pub istio: String,
    /// Istio's error, after the webhook's `configuration is invalid: `.
    pub istio_message: Option<String>,
    pub webhook_warnings: Vec<String>,
}

pub(crate) fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validation-corpus")
}

pub(crate) fn entries() -> Vec<Entry> {
    let index = corpus_dir().join("index.json");
    let text =
        std::fs::read_to_string(&index).unwrap_or_else(|e| panic!("{}: {e}", index.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", index.display()))
}

/// Whether two of Istio's messages are the same. protobuf-go separates a message's fields by
/// one or two spaces, at random per build: the Gateway port messages may differ in that only.
fn same_message(expected: &str, got: &str) -> bool {
    expected == got || expected.replace("  ", " ") == got.replace("  ", " ")
}

/// What is wrong with the harness's verdict on `entry`, if anything.
pub(crate) fn mismatch(entry: &Entry) -> Option<String> {
    let got = harness_verdict(&corpus_dir().join(&entry.file), DEFAULT_NAMESPACE);
    let problem = match (&got, entry.harness.as_str()) {
        (
            Verdict::Refused {
                by, message, istio, ..
            },
            "refused",
        ) => {
            let wanted_by = match entry.refused_by.as_deref() {
                Some("istio") => RefusedBy::Istio,
                Some("schema") => RefusedBy::Schema,
                _ => RefusedBy::Decoding,
            };
            if *by != wanted_by {
                Some(format!(
                    "refused by {by:?}, expected by {wanted_by:?}: {message}"
                ))
            } else if let Some(expected) = &entry.istio_message
                && !istio
                    .as_deref()
                    .is_some_and(|got| same_message(expected, got))
            {
                Some(format!(
                    "message\n    got:      {istio:?} ({message})\n    expected: {expected:?}"
                ))
            } else {
                None
            }
        }
        (Verdict::Accepted { warnings }, "accepted") => {
            (warnings != &entry.webhook_warnings).then(|| {
                format!(
                    "warnings {warnings:?}, expected {:?}",
                    entry.webhook_warnings
                )
            })
        }
        (got, wanted) => Some(format!("{got:?}, expected {wanted}")),
    };
    problem.map(|p| {
        format!(
            "{} ({}, {}): {p}",
            entry.id,
            entry.kind,
            entry.rule.as_deref().unwrap_or("valid")
        )
    })
}

#[test]
fn the_harness_gives_each_manifest_istios_verdict_in_istios_words() {
    let entries = entries();
    let refused = entries.iter().filter(|e| e.harness == "refused").count();
    assert!(refused >= 40, "the corpus has {refused} refused manifests");
    let problems: Vec<String> = entries.iter().filter_map(mismatch).collect();
    assert!(
        problems.is_empty(),
        "{} of {} entries disagree:\n{}",
        problems.len(),
        entries.len(),
        problems.join("\n")
    );
    // Istio's verdict differs from the harness's only where the API server refuses first.
    for e in &entries {
        assert!(
            e.istio == e.harness || e.refused_by.as_deref() != Some("istio"),
            "{}",
            e.id
        );
    }
}

/// Every message the rules can give, by rule (the ids of Istio's rules as the corpus names them),
/// as a pattern; each must be given by some entry of the corpus, so that every rule implemented
/// is checked against Istio's own verdict.
const RULES: &[(&str, &str)] = &[
    ("C-1", r#"has unsupported annotation istio\.io/dry-run"#),
    (
        "C-2",
        r#""internal\.istio\.io/webhook-always-reject" annotation found, rejecting"#,
    ),
    (
        "C-3",
        r#""internal\.istio\.io/parent-namespace" annotation found, this may not be set by users"#,
    ),
    (
        "C-4",
        r#""internal\.istio\.io/parents" annotation found, this may not be set by users"#,
    ),
    (
        "H-1",
        r#"^port number -?\d+ must be in the range 1\.\.65535$"#,
    ),
    ("H-2", r#"^invalid port name: "#),
    ("H-4 long", r#"too long \(max 255\)"#),
    ("H-4 empty", r#"^empty domain name not allowed$"#),
    ("H-5 numeric", r#"cannot be all-numeric\)$"#),
    (
        "H-5 label",
        r#"^domain name ".*" invalid \(label ".*" invalid\)$"#,
    ),
    (
        "H-8 format",
        r#"invalid, should follow 'outbound_\.<PORT>_\._\.<HOSTNAME>' format$"#,
    ),
    (
        "H-8 port/host",
        r#"invalid\)\. should follow outbound_\.<PORT>_\._\.<HOSTNAME> format$"#,
    ),
    ("H-9", r#"^partial wildcard ".*" not allowed$"#),
    ("H-11", r#" is not a valid IP$"#),
    ("H-12", r#" is not a valid CIDR block$"#),
    ("H-13 empty", r#"^unix address must not be empty$"#),
    ("H-13 path", r#" is not an absolute path to a file$"#),
    ("H-14 short", r#"^duration must be greater than 1ms$"#),
    (
        "H-14 ms",
        r#"^only durations to ms precision are supported$"#,
    ),
    ("H-15", r#"is not in range 0\.\.100$"#),
    (
        "H-16",
        r#"is neither 0\.0, nor in range \[0\.0001, 100\.0\]$"#,
    ),
    ("H-17 key", r#"^invalid tag key: ".*"$"#),
    ("H-17 prefix", r#"\(DNS prefix is too long\)$"#),
    ("H-17 name", r#"\(name is too long\)$"#),
    ("H-17 value", r#"^invalid tag value: "#),
    (
        "H-18 dot",
        r#"^duplicate entries in exportTo: \. and current namespace "#,
    ),
    ("H-18 dup", r#"^duplicate entries in exportTo for entry "#),
    (
        "H-18 none",
        r#"^exportTo ~ \(none\) is not allowed for Istio configuration objects$"#,
    ),
    (
        "H-18 label",
        r#"^only \.,\*, or a valid DNS 1123 label is allowed as exportTo entry$"#,
    ),
    (
        "H-18 dr multi",
        r#"^destination rule with workload selector cannot have multiple entries in exportTo$"#,
    ),
    (
        "H-18 dr beyond",
        r#"^destination rule with workload selector cannot have exportTo beyond current namespace$"#,
    ),
    (
        "H-18 public",
        r#"^cannot have both public \(\*\) and non-public exportTo values for a resource$"#,
    ),
    (
        "H-18 tilde",
        r#"^cannot export service entry to no one \(~\) and someone$"#,
    ),
    ("H-19 empty", r#"^empty key is not supported in selector: "#),
    (
        "H-19 wildcard",
        r#"^wildcard is not supported in selector: "#,
    ),
    (
        "H-19 warn",
        r#"^workload selector specified without labels$"#,
    ),
    ("H-20 empty", r#"^subset name cannot be empty$"#),
    ("H-20 invalid", r#"^subset name is invalid: "#),
    ("H-21", r#"^invalid destination host \*$"#),
    ("H-22 legacy", r#"^using legacy gatewayName format "#),
    (
        "H-22 empty",
        r#"^config namespace and gateway name cannot be empty$"#,
    ),
    ("H-22 ns", r#"^invalid value for namespace: "#),
    ("H-22 name", r#"^invalid value for gateway name: "#),
    ("H-23 empty", r#"^header name cannot be empty$"#),
    (
        "H-23 invalid",
        r#"^header name .* is not a valid header name$"#,
    ),
    (
        "H-23 prefix",
        r#"^invalid header ".*": header cannot have ":" prefix$"#,
    ),
    (
        "H-23 host",
        r#"^invalid header ".*": cannot set Host header$"#,
    ),
    (
        "H-23 value ctl",
        r#"^header value configuration .* is invalid$"#,
    ),
    (
        "H-23 value %",
        r#"^header value configuration: invalid header configuration\. Un-escaped %$"#,
    ),
    ("H-23 value ,]", r#"Expecting ',', '\]', or whitespace$"#),
    ("H-23 value quote", r#"Expecting '"'$"#),
    (
        "H-23 value backslash",
        r#"Un-terminated backslash in JSON string$"#,
    ),
    (
        "H-23 value paren",
        r#"Expecting '\)' or whitespace after '\{\}', but found '\{\}'$"#,
    ),
    ("H-23 value end", r#"Expecting '%' or whitespace after$"#),
    (
        "H-23 value unterminated",
        r#"Un-terminated variable expression '"#,
    ),
    (
        "H-24 prefix",
        r#"^".*": prefix string match should not be empty$"#,
    ),
    (
        "H-24 empty regex",
        r#"^".*": regex string match should not be empty$"#,
    ),
    (
        "H-24 large",
        r#"^".*": regex is too large, max length allowed is 1024$"#,
    ),
    (
        "H-24 re2",
        r#"; Istio uses RE2 style regex-based match \(https://github\.com/google/re2/wiki/Syntax\)$"#,
    ),
    ("H-25", r#"^HTTP status -?\d+ is not in range 200-599$"#),
    (
        "H-26",
        r#"^gRPC status .* is not supported\. See https://github\.com/grpc"#,
    ),
    (
        "H-27 configmap",
        r#"^invalid configmap:// credentialName: invalid resource name .*\. Expected namespace and name$"#,
    ),
    (
        "H-27 configmap ns",
        r#"^invalid configmap:// credentialName: invalid resource name .*\. Expected namespace$"#,
    ),
    (
        "H-27 configmap name",
        r#"^invalid configmap:// credentialName: invalid resource name .*\. Expected name$"#,
    ),
    (
        "H-27 configmap match",
        r#"^invalid configmap:// credentialName: namespace must match the configuration namespace "#,
    ),
    (
        "H-27 insecure simple",
        r#"^cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true$"#,
    ),
    (
        "H-27 insecure mutual",
        r#"^cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true$"#,
    ),
    (
        "H-27 credname",
        r#"^cannot specify client certificates or CA certificate or CA CRL If credentialName is set$"#,
    ),
    (
        "H-27 cert",
        r#"^client certificate required for mutual tls$"#,
    ),
    ("H-27 key", r#"^private key required for mutual tls$"#),
    (
        "H-28 empty",
        r#"^connection pool must have at least one field$"#,
    ),
    (
        "H-28 http1",
        r#"^http1 max pending requests must be non-negative$"#,
    ),
    ("H-28 http2", r#"^http2 max requests must be non-negative$"#),
    (
        "H-28 per conn",
        r#"^max requests per connection must be non-negative$"#,
    ),
    ("H-28 retries", r#"^max retries must be non-negative$"#),
    (
        "H-28 client proto",
        r#"^use client protocol must not be true when H2UpgradePolicy is UPGRADE$"#,
    ),
    (
        "H-28 streams",
        r#"^max concurrent streams must be non-negative$"#,
    ),
    ("H-28 conns", r#"^max connections must be non-negative$"#),
    (
        "H-28 keepalive interval",
        r#"^http2 keepalive interval is required$"#,
    ),
    (
        "H-28 keepalive timeout",
        r#"^http2 keepalive timeout is required$"#,
    ),
    (
        "H-29 deprecated",
        r#"^outlier detection consecutive errors is deprecated"#,
    ),
    (
        "H-29 local origin",
        r#"^outlier detection consecutive local origin failures is specified"#,
    ),
    ("H-30 cookie", r#"^name required for HttpCookie$"#),
    (
        "H-30 cookie attr empty",
        r#"^cookie attribute name cannot be empty$"#,
    ),
    (
        "H-30 cookie attr dup",
        r#"^duplicate cookie attribute name: "#,
    ),
    (
        "H-30 ring deprecated",
        r#"^consistent hash MinimumRingSize is deprecated"#,
    ),
    (
        "H-30 ring and maglev",
        r#"^only one of MinimumRingSize or Maglev/Ringhash can be specified$"#,
    ),
    ("H-30 maglev set", r#"^tableSize must be set for maglev$"#),
    (
        "H-30 maglev max",
        r#"^tableSize must be less than 5000011 for maglev$"#,
    ),
    (
        "H-30 maglev prime",
        r#"^tableSize must be a prime number for maglev$"#,
    ),
    (
        "H-30 distribute failover",
        r#"^can not simultaneously specify 'distribute' and 'failover'$"#,
    ),
    (
        "H-30 failover topology",
        r#"^can not simultaneously set 'failover' and topology label"#,
    ),
    (
        "H-30 weight range",
        r#"^locality weight must be in range \[1, 100\]$"#,
    ),
    ("H-30 weight total", r#"^total locality weight \d+ != 100$"#),
    (
        "H-30 locality wildcard",
        r#"wildcard '\*' number can not exceed 1 and must be in the end$"#,
    ),
    (
        "H-30 locality overlap",
        r#"overlap with previous specified ones$"#,
    ),
    (
        "H-30 locality empty",
        r#"must not contain empty region/zone/subzone info$"#,
    ),
    (
        "H-30 failover outlier",
        r#"^outlier detection policy must be provided for failover$"#,
    ),
    (
        "H-30 failover same",
        r#"^locality lb failover settings must specify different regions$"#,
    ),
    (
        "H-30 failover region",
        r#"^locality lb failover only specify region$"#,
    ),
    (
        "H-30 failover wildcard",
        r#"^locality lb failover region should not contain '\*' wildcard$"#,
    ),
    (
        "H-30 zone both",
        r#"^only one of localityLbSetting and zoneAwareLbSetting can be set$"#,
    ),
    (
        "H-30 zone topology",
        r#"^'failover_priority' for zone aware lb must not use topology label"#,
    ),
    (
        "H-30 zone same",
        r#"^zone aware lb failover settings must specify different regions$"#,
    ),
    (
        "H-30 zone region",
        r#"^zone aware lb failover only specifies region"#,
    ),
    (
        "H-30 zone wildcard",
        r#"^zone aware lb failover region should not contain '\*' wildcard$"#,
    ),
    ("H-30 warmup duration", r#"^duration is required$"#),
    (
        "H-30 warmup percent",
        r#"^minimumPercent value should be less than or equal to 100$"#,
    ),
    (
        "H-30 warmup aggression",
        r#"^aggression should be greater than or equal to 1$"#,
    ),
    (
        "SE-2",
        r#"^service entry: workload selector specified without labels"#,
    ),
    (
        "SE-3",
        r#"^only one of WorkloadSelector or Endpoints is allowed in Service Entry$"#,
    ),
    ("SE-4", r#"^service entry must have at least one host$"#),
    ("SE-5", r#"^invalid host \*$"#),
    (
        "SE-9",
        r#"^CIDR addresses are allowed only for NONE/STATIC resolution types$"#,
    ),
    ("SE-11", r#"^service entry port name .* already defined$"#),
    ("SE-12", r#"^service entry port \d+ already defined$"#),
    ("SE-14", r#"^addresses are required for ports serving TCP"#),
    ("SE-16", r#"^unsupported protocol: "#),
    (
        "SE-18",
        r#"^no endpoints should be provided for resolution type none$"#,
    ),
    (
        "SE-19",
        r#"^workloadSelector should not be set when resolution mode is NONE$"#,
    ),
    ("SE-21", r#"^address is required$"#),
    ("SE-22", r#"^address is unset with network "#),
    ("SE-24", r#"must not include ports$"#),
    ("SE-25", r#"is not a valid IP address$"#),
    (
        "SE-26",
        r#"^endpoint port \d+ is not defined by the service entry$"#,
    ),
    (
        "SE-29",
        r#"^exactly 1 service port required for unix endpoints$"#,
    ),
    (
        "SE-30",
        r#"^hosts must be FQDN or contain only prefix wildcards"#,
    ),
    (
        "SE-31",
        r#"^there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN$"#,
    ),
    ("SE-33", r#"is not a valid FQDN or an IP address$"#),
    (
        "SE-34",
        r#"^service entry can not have more than one host specified simultaneously"#,
    ),
    (
        "SE-37",
        r#"^host must be wildcarded for resolution mode DYNAMIC_DNS$"#,
    ),
    (
        "SE-38",
        r#"^addresses cannot be set for resolution type DYNAMIC_DNS"#,
    ),
    (
        "SE-39",
        r#"^endpoints cannot be set for resolution type DYNAMIC_DNS"#,
    ),
    (
        "SE-41",
        r#"^only HTTP, TLS, GRPC, and HTTP2 protocols are supported"#,
    ),
    (
        "SE-43",
        r#"^location MESH_INTERNAL with resolution type DYNAMIC_DNS is not supported"#,
    ),
    (
        "SE-45",
        r#"^multiple hosts provided with non-HTTP, non-TLS ports$"#,
    ),
    ("GW-1", r#"^invalid gateway name: "#),
    ("GW-2", r#"^gateway must have at least one server$"#),
    ("GW-4", r#"^server config must contain at least one host$"#),
    (
        "GW-5 empty",
        r#"^config namespace and dnsName in host entry cannot be empty$"#,
    ),
    ("GW-5 ns", r#"^invalid namespace value .* in gateway$"#),
    (
        "GW-5 short",
        r#"^short names \(non FQDN\) are not allowed$"#,
    ),
    ("GW-6", r#"^port is required$"#),
    ("GW-7", r#"^invalid protocol .*, supported protocols are"#),
    ("GW-9", r#"^targetPort has no impact on Gateways$"#),
    ("GW-10", r#"^port name must be set: "#),
    (
        "GW-12",
        r#"^port number must be 0 for unix domain socket: "#,
    ),
    (
        "GW-15",
        r#"^server must have TLS settings for HTTPS/TLS protocols$"#,
    ),
    (
        "GW-16",
        r#"^server cannot have TLS settings for plain text HTTP ports$"#,
    ),
    (
        "GW-17",
        r#"^server cannot have TLS settings for non HTTPS/TLS ports$"#,
    ),
    (
        "GW-19",
        r#"^port names in servers must be unique: duplicate name "#,
    ),
    (
        "GW-20",
        r#"^tls\.httpsRedirect should only be used with http servers$"#,
    ),
    (
        "GT-1",
        r#"^TLS version below TLSV1_2 require setting compatible ciphers"#,
    ),
    ("GT-2", r#"^ignoring invalid cipher suites: "#),
    ("GT-3", r#"^ignoring duplicate cipher suites: "#),
    (
        "GT-4",
        r#"^ISTIO_MUTUAL TLS cannot have associated server certificate$"#,
    ),
    (
        "GT-5",
        r#"^ISTIO_MUTUAL TLS cannot have associated private key$"#,
    ),
    (
        "GT-6",
        r#"^ISTIO_MUTUAL TLS cannot have associated CA bundle$"#,
    ),
    (
        "GT-7",
        r#"^ISTIO_MUTUAL TLS cannot have associated tlsCertificates$"#,
    ),
    (
        "GT-8",
        r#"^ISTIO_MUTUAL TLS cannot have associated credentialName$"#,
    ),
    (
        "GT-9",
        r#"^ISTIO_MUTUAL TLS cannot have associated credentialNames$"#,
    ),
    (
        "GT-10",
        r#"mode does not use certificates, they will be ignored$"#,
    ),
    (
        "GT-11",
        r#"^only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified$"#,
    ),
    ("GT-13", r#"^MUTUAL TLS requires a client CA bundle$"#),
    ("GT-14", r#"can support up to 2 server certificates$"#),
    ("GT-15", r#"TLS requires a server certificate$"#),
    ("GT-16", r#"TLS requires a private key$"#),
    ("GT-17", r#"^CRL is not supported with credentialName"#),
    ("GT-18", r#"^CRL is not supported with SIMPLE TLS$"#),
    ("DR-4", r#"^duplicate subset names: "#),
    ("TP-1", r#"^traffic policy must have at least one field$"#),
    (
        "TP-2",
        r#"^tunnel and proxyProtocol must not be set together$"#,
    ),
    ("TP-8", r#"^portTrafficPolicy must have valid port$"#),
    (
        "TP-9",
        r#"^port traffic policy must have at least one field$"#,
    ),
    ("TP-11", r#"^tunnel protocol must be "CONNECT" or "POST"$"#),
    (
        "TP-12",
        r#"^tunnel target host must be valid FQDN or IP address: "#,
    ),
    ("TP-13", r#"^tunnel target port is invalid: "#),
    (
        "VS-1",
        r#"^delegate virtual service must have no gateways specified$"#,
    ),
    (
        "VS-2",
        r#"^delegate virtual service must have no tls route specified$"#,
    ),
    (
        "VS-3",
        r#"^delegate virtual service must have no tcp route specified$"#,
    ),
    (
        "VS-5",
        r#"^JWT claim based routing \(key: .*\) is only supported for gateway"#,
    ),
    (
        "VS-7",
        r#"^wildcard host \* is not allowed for virtual services bound to the mesh gateway$"#,
    ),
    ("VS-8", r#"^duplicate hosts in virtual service: "#),
    (
        "VS-9",
        r#"^http, tcp or tls must be provided in virtual service$"#,
    ),
    (
        "VS-15 last",
        r#"not used \(only the last rule can have no matches\)$"#,
    ),
    (
        "VS-15 before",
        r#"not used \(route without matches defined before\)$"#,
    ),
    (
        "VS-15 dup",
        r#"is not used \(duplicate/overlapping match in rule #\d+\)$"#,
    ),
    (
        "VS-15 all",
        r#"not used \(all matches used by prior rules\)$"#,
    ),
    (
        "VS-15 prefix",
        r#"of prefix .* is not used \(duplicate/overlapping match in rule .* of prefix .* on "#,
    ),
    ("HR-1", r#"^root HTTP route .* must not specify redirect$"#),
    ("HR-2", r#"^root HTTP route .* must not specify route$"#),
    ("HR-3", r#"^delegate HTTP route cannot contain delegate$"#),
    (
        "HR-4",
        r#"^HTTP route cannot contain both route and redirect$"#,
    ),
    (
        "HR-5",
        r#"^HTTP route cannot contain both fault and redirect$"#,
    ),
    (
        "HR-6",
        r#"^HTTP route rule cannot contain both rewrite and redirect$"#,
    ),
    (
        "HR-7",
        r#"^HTTP route rule cannot contain both direct_response and redirect$"#,
    ),
    (
        "HR-8",
        r#"^HTTP route cannot contain both route and direct_response$"#,
    ),
    (
        "HR-9",
        r#"^HTTP route cannot contain both fault and direct_response$"#,
    ),
    (
        "HR-10",
        r#"^HTTP route rule cannot contain both rewrite and direct_response$"#,
    ),
    (
        "HR-11",
        r#"^HTTP route, redirect or direct_response is required$"#,
    ),
    (
        "HR-12",
        r#"^HTTP route cannot contain both mirror and mirrors$"#,
    ),
    ("HR-24", r#"^sourceNamespace match .* is invalid$"#),
    (
        "HR-27",
        r#"is not a valid match type for CORS allow origins$"#,
    ),
    ("HR-29", r#"is not a supported HTTP method$"#),
    (
        "HR-31",
        r#"^max_age duration is accurate only to seconds precision$"#,
    ),
    (
        "HR-32",
        r#"^HTTP fault injection must have an abort and/or a delay$"#,
    ),
    (
        "HR-35",
        r#"^HTTP/2 abort fault injection not supported yet$"#,
    ),
    ("HR-39", r#"^exponentialDelay not supported yet$"#),
    ("HR-40", r#"^mirror_percent must have a max value of 100"#),
    ("HR-40w", r#"^using deprecated setting "mirrorPercent""#),
    (
        "HR-41 max",
        r#"^mirror_percentage must have a max value of 100"#,
    ),
    (
        "HR-41 min",
        r#"^mirror_percentage must have a min value of 0"#,
    ),
    ("HR-41d", r#"^destination is required for mirrors$"#),
    (
        "HR-41e max",
        r#"^mirror percentage must have a max value of 100"#,
    ),
    (
        "HR-41e min",
        r#"^mirror percentage must have a min value of 0"#,
    ),
    (
        "HR-43",
        r#"^redirect must specify URI, authority, scheme, or port$"#,
    ),
    (
        "HR-43a",
        r#"^redirect may only specify one of uri or prefix_rewrite$"#,
    ),
    (
        "HR-43b",
        r#"^redirect prefix_rewrite requires all URI matches to use prefix match type$"#,
    ),
    ("HR-44", r#"is not a valid redirect code, must be 3xx$"#),
    (
        "HR-45",
        r#"^invalid redirect scheme, must be "http" or "https"$"#,
    ),
    (
        "HR-47",
        r#"^large direct_responses may impact control plane performance, must be less than 1MB$"#,
    ),
    (
        "HR-47w",
        r#"^large direct_responses may impact control plane performance$"#,
    ),
    ("HR-49", r#"^attempts cannot be negative$"#),
    (
        "HR-50",
        r#"^http retry policy configured when attempts are set to 0 \(disabled\)$"#,
    ),
    ("HR-52", r#"is not a valid retryOn policy$"#),
    (
        "HR-53",
        r#"^rewrite may only contain one of URI or UriRegexRewrite$"#,
    ),
    (
        "HR-54",
        r#"^rewrite must specify at least one of URI, UriRegexRewrite, or authority"#,
    ),
    (
        "HR-55 fields",
        r#"^UriRegexRewrite has errors\nUriRegexRewrite requires both Rewrite and Match fields to be specified$"#,
    ),
    (
        "HR-55 regex",
        r#"^UriRegexRewrite has errors\n\"HTTPRewrite\.UriRegexRewrite\.Match\": "#,
    ),
    (
        "HR-56",
        r#"^authority header cannot be set multiple times: "#,
    ),
    ("HR-58", r#"^destination is required$"#),
    ("HR-60", r#"^weight -\d+ < 0$"#),
    ("HR-61", r#"^total destination weight = 0$"#),
    (
        "TL-1",
        r#"^TLS route must have at least one match condition$"#,
    ),
    ("TL-3", r#"^TLS match must have at least one SNI host$"#),
    (
        "TL-5",
        r#"goes against SNI spec and most clients do not support this$"#,
    ),
    (
        "TL-6",
        r#"is not a compatible subset of any of the virtual service hosts"#,
    ),
    ("TL-10", r#"^TLS route is required$"#),
    ("TC-3", r#"^TCP route is required$"#),
];

#[test]
fn every_rule_implemented_is_in_the_corpus() {
    let mut messages = Vec::new();
    for e in entries() {
        if let Some(m) = &e.istio_message {
            match m.split_once(" occurred:\n\t* ") {
                Some((_, list)) => {
                    messages.extend(list.trim_end().split("\n\t* ").map(String::from))
                }
                None => messages.push(m.clone()),
            }
        }
        messages.extend(e.webhook_warnings.iter().cloned());
    }
    let missing: Vec<&str> = RULES
        .iter()
        .filter(|(_, pattern)| {
            let re = ::regex::Regex::new(pattern).expect("a valid pattern");
            !messages.iter().any(|m| re.is_match(m))
        })
        .map(|(id, _)| *id)
        .collect();
    assert!(
        missing.is_empty(),
        "rules no corpus entry exercises: {missing:?}"
    );
}
