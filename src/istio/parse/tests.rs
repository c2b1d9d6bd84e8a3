use super::*;
use crate::istio::api::{ClientTlsMode, Resolution, SimpleLb};
use crate::yaml::FieldProblem;

// The tutorial's manifests, exactly as it gives them; step 3 is one file with two documents.
const SERVICE_ENTRY: &str = "\
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: cnn
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 80
    name: http-port
    protocol: HTTP
  - number: 443
    name: http-port-for-tls-origination
    protocol: HTTP
  resolution: DNS
";

const GATEWAY: &str = "\
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 443
      name: http-port-for-tls-origination
      protocol: HTTP
    hosts:
    - edition.cnn.com
";

const DR_AND_VS: &str = "\
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: cnn
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts:
  - edition.cnn.com
  gateways:
  - istio-egressgateway
  - mesh
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: cnn
        port:
          number: 443
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: 443
    route:
    - destination:
        host: edition.cnn.com
        port:
          number: 443
      weight: 100
";

const ORIGINATE_TLS: &str = "\
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: originate-tls-for-edition-cnn-com
spec:
  host: edition.cnn.com
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    portLevelSettings:
    - port:
        number: 443
      tls:
        mode: SIMPLE # initiates HTTPS for connections to edition.cnn.com
";

fn file() -> PathBuf {
    PathBuf::from("fixtures/test.yaml")
}

fn parse(text: &str) -> Result<Vec<IstioObject>, ManifestError> {
    parse_manifests(&file(), text)
}

fn parse_one(text: &str) -> IstioObject {
    let mut objects = parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(objects.len(), 1, "{objects:#?}");
    objects.remove(0)
}

fn parse_err(text: &str) -> ManifestError {
    match parse(text) {
        Ok(objects) => panic!("expected an error, got {objects:#?}"),
        Err(error) => error,
    }
}

/// The positioned problem of a decode error.
fn field_err(text: &str) -> FieldError {
    match parse_err(text) {
        ManifestError::Field(error) => *error,
        other => panic!("expected a field error, got {other:?}"),
    }
}

/// The 1-based line of the only line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| line.contains(needle))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines.len(), 1, "`{needle}` must occur on exactly one line");
    lines[0]
}

#[test]
fn tutorial_service_entry() {
    let object = parse_one(SERVICE_ENTRY);
    assert_eq!(object.api_version, "networking.istio.io/v1alpha3");
    assert_eq!(
        (object.name.as_str(), object.namespace.as_deref()),
        ("cnn", None)
    );
    assert_eq!(object.kind(), Kind::ServiceEntry);
    assert_eq!(
        (object.source.file.clone(), object.source.line),
        (file(), 1)
    );
    assert!(object.untranslated.is_empty());
    let Spec::ServiceEntry(se) = &object.spec else {
        panic!("{:?}", object.spec)
    };
    assert_eq!(se.hosts, ["edition.cnn.com"]);
    assert_eq!(se.resolution, Resolution::Dns);
    let ports: Vec<(u32, &str, &str)> = se
        .ports
        .iter()
        .map(|p| (p.number, p.name.as_str(), p.protocol.as_str()))
        .collect();
    assert_eq!(
        ports,
        [
            (80, "http-port", "HTTP"),
            (443, "http-port-for-tls-origination", "HTTP")
        ]
    );
}

#[test]
fn tutorial_gateway() {
    let object = parse_one(GATEWAY);
    let Spec::Gateway(gw) = &object.spec else {
        panic!()
    };
    assert_eq!(
        gw.selector.get("istio").map(String::as_str),
        Some("egressgateway")
    );
    let port = gw.servers[0].port.as_ref().expect("a port");
    assert_eq!((port.number, port.protocol.as_str()), (443, "HTTP"));
    assert_eq!(gw.servers[0].hosts, ["edition.cnn.com"]);
}

#[test]
fn tutorial_destination_rule_and_virtual_service_share_a_file() {
    let objects = parse(DR_AND_VS).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(objects.len(), 2);
    let (Spec::DestinationRule(dr), Spec::VirtualService(vs)) =
        (&objects[0].spec, &objects[1].spec)
    else {
        panic!("{objects:#?}")
    };
    assert_eq!(dr.subsets[0].name, "cnn");
    assert_eq!(
        objects[1].source.line,
        line_of(DR_AND_VS, "kind: VirtualService") - 1
    );
    assert_eq!(vs.gateways, ["istio-egressgateway", "mesh"]);
    let first = &vs.http[0];
    assert_eq!(
        (first.matches[0].port, first.matches[0].gateways.as_slice()),
        (80, &["mesh".to_string()][..])
    );
    let destination = first.route[0].destination.as_ref().expect("a destination");
    assert_eq!(destination.subset, "cnn");
    assert_eq!(destination.port.as_ref().map(|p| p.number), Some(443));
    assert_eq!(first.route[0].weight, 100);
}

#[test]
fn tutorial_tls_origination() {
    let object = parse_one(ORIGINATE_TLS);
    let Spec::DestinationRule(dr) = &object.spec else {
        panic!()
    };
    let policy = dr.traffic_policy.as_ref().expect("a policy");
    assert_eq!(
        policy.load_balancer.as_ref().and_then(|l| l.simple),
        Some(SimpleLb::RoundRobin)
    );
    let level = &policy.port_level_settings[0];
    assert_eq!(level.port.as_ref().map(|p| p.number), Some(443));
    assert_eq!(
        level.tls.as_ref().map(|t| t.mode),
        Some(ClientTlsMode::Simple)
    );
}

#[test]
fn raw_is_the_document_as_written() {
    let object = parse_one(SERVICE_ENTRY);
    assert_eq!(
        object.raw,
        serde_json::json!({
            "apiVersion": "networking.istio.io/v1alpha3",
            "kind": "ServiceEntry",
            "metadata": {"name": "cnn"},
            "spec": {
                "hosts": ["edition.cnn.com"],
                "ports": [
                    {"number": 80, "name": "http-port", "protocol": "HTTP"},
                    {"number": 443, "name": "http-port-for-tls-origination", "protocol": "HTTP"}
                ],
                "resolution": "DNS"
            }
        })
    );
    // Not normalized: lowercase protocol and labels stay as written.
    let text = SERVICE_ENTRY
        .replace("name: cnn", "name: cnn\n  labels: {app: cnn, on: 'yes'}")
        .replace(
            "protocol: HTTP\n  - number: 443",
            "protocol: http\n  - number: 443",
        );
    let object = parse_one(&text);
    assert_eq!(object.raw["spec"]["ports"][0]["protocol"], "http");
    assert_eq!(object.raw["metadata"]["labels"]["on"], "yes");
    assert_eq!(object.labels.get("on").map(String::as_str), Some("yes"));
}

#[test]
fn v1beta1_and_v1_are_accepted_and_kept() {
    for version in ["networking.istio.io/v1beta1", "networking.istio.io/v1"] {
        let text = ORIGINATE_TLS.replace("networking.istio.io/v1alpha3", version);
        let object = parse_one(&text);
        assert_eq!(object.api_version, version);
        assert_eq!(object.raw["apiVersion"], version);
    }
}

#[test]
fn empty_documents_are_skipped_but_an_empty_manifest_is_refused() {
    let text = format!(
        "# all five\n---\n---\n# nothing here\n---\n{SERVICE_ENTRY}---\n\n---\n{GATEWAY}---\n"
    );
    let objects = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<_> = objects.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["cnn", "istio-egressgateway"]);
    assert_eq!(
        objects[0].source.line,
        line_of(&text, "kind: ServiceEntry") - 1
    );
    for empty in ["", "# only a comment\n---\n"] {
        let error = parse_err(empty);
        assert!(matches!(error, ManifestError::Empty { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "fixtures/test.yaml:1: no objects passed to apply: the manifest is empty or only comments (kubectl apply -f refuses it)"
        );
    }
}

#[test]
fn source_line_skips_leading_comments_and_blank_lines() {
    let text = format!("\n# the cnn entry\n\n{SERVICE_ENTRY}");
    assert_eq!(parse_one(&text).source.line, 4);
}

#[test]
fn a_field_is_found_at_its_line_and_column() {
    let object = parse_one(ORIGINATE_TLS);
    let path = FieldPath::parse("spec.trafficPolicy.portLevelSettings[0].tls.mode");
    assert_eq!(
        path.to_string(),
        "spec.trafficPolicy.portLevelSettings[0].tls.mode"
    );
    assert_eq!(
        object.source.at(&path),
        format!(
            "fixtures/test.yaml:{}:9",
            line_of(ORIGINATE_TLS, "mode: SIMPLE")
        )
    );
}

#[test]
fn namespace_and_metadata_labels() {
    let text = SERVICE_ENTRY.replace(
        "name: cnn",
        "name: cnn\n  namespace: default\n  labels:\n    app: cnn\n  annotations:\n    note: x",
    );
    let object = parse_one(&text);
    assert_eq!(object.namespace.as_deref(), Some("default"));
    assert_eq!(object.key("other").namespace, "default");
    assert_eq!(
        object.annotations.get("note").map(String::as_str),
        Some("x")
    );
}

#[test]
fn unknown_field_names_path_line_and_expected_fields() {
    let text = SERVICE_ENTRY.replace("  hosts:", "  hostz:");
    let error = field_err(&text);
    assert_eq!(
        (error.file.clone(), error.line, error.column),
        (file(), Some(line_of(&text, "hostz")), Some(3))
    );
    assert_eq!(error.path, "spec.hostz");
    let FieldProblem::UnknownField { field, expected } = &error.problem else {
        panic!("{error:?}")
    };
    assert_eq!(field, "hostz");
    assert!(expected.contains(&"hosts".to_string()), "{expected:?}");
    // A real Istio field that the builtin translator does not translate is still expected.
    assert!(expected.contains(&"addresses".to_string()), "{expected:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "fixtures/test.yaml:{}:3: unknown field `hostz` at spec.hostz; expected one of hosts, ",
            error.line.unwrap()
        )),
        "{message}"
    );
}

#[test]
fn unknown_fields_deep_in_the_tree() {
    let cases = [
        (
            ORIGINATE_TLS.replace("        mode:", "        mdoe:"),
            "mdoe",
            "spec.trafficPolicy.portLevelSettings[0].tls.mdoe",
        ),
        (
            DR_AND_VS.replace(
                "      weight: 100\n  - match",
                "      wieght: 100\n  - match",
            ),
            "wieght",
            "spec.http[0].route[0].wieght",
        ),
        (
            SERVICE_ENTRY.replace("name: cnn", "name: cnn\n  uid: abc"),
            "uid",
            "metadata.uid",
        ),
        (format!("{SERVICE_ENTRY}status: {{}}\n"), "status", "status"),
        // Below a field the builtin control plane does not translate, typos are caught all the same.
        (
            ORIGINATE_TLS.replace(
                "    loadBalancer:",
                "    connectionPool:\n      tcp:\n        maxConnectons: 1\n    loadBalancer:",
            ),
            "maxConnectons",
            "spec.trafficPolicy.connectionPool.tcp.maxConnectons",
        ),
    ];
    for (text, field, expected_path) in cases {
        let error = field_err(&text);
        assert!(
            matches!(error.problem, FieldProblem::UnknownField { .. }),
            "{error:?}"
        );
        assert_eq!(error.path, expected_path);
        assert_eq!(error.line, Some(line_of(&text, &format!("{field}:"))));
    }
}

#[test]
fn invalid_tls_mode_names_value_path_line_and_allowed_values() {
    let text = ORIGINATE_TLS.replace("mode: SIMPLE", "mode: SIMPEL");
    let error = field_err(&text);
    let line = line_of(&text, "SIMPEL");
    assert_eq!((error.line, error.column), (Some(line), Some(15)));
    assert_eq!(
        error.path,
        "spec.trafficPolicy.portLevelSettings[0].tls.mode"
    );
    assert_eq!(
        error.problem,
        FieldProblem::Invalid {
            value: "SIMPEL".into(),
            expected: "one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL".into()
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "fixtures/test.yaml:{line}:15: invalid value `SIMPEL` at \
             spec.trafficPolicy.portLevelSettings[0].tls.mode: expected one of DISABLE, \
             SIMPLE, MUTUAL, ISTIO_MUTUAL"
        )
    );
}

#[test]
fn invalid_values() {
    // (manifest, the value as reported, its path, part of what is expected, its line's text)
    let cases = [
        (
            SERVICE_ENTRY.replace("resolution: DNS", "resolution: DSN"),
            "DSN",
            "spec.resolution",
            "one of NONE",
            "DSN",
        ),
        (
            SERVICE_ENTRY.replace("number: 80", "number: \"80\""),
            "80",
            "spec.ports[0].number",
            "u32, found string",
            "number: \"80\"",
        ),
        (
            SERVICE_ENTRY.replace("number: 80", "number: -1"),
            "-1",
            "spec.ports[0].number",
            "u32",
            "-1",
        ),
        (
            ORIGINATE_TLS.replace("ROUND_ROBIN", "round_robin"),
            "round_robin",
            "spec.trafficPolicy.loadBalancer.simple",
            "ROUND_ROBIN",
            "round_robin",
        ),
        (
            SERVICE_ENTRY.replace("resolution: DNS", "resolution: DNS\n  location: OUTSIDE"),
            "OUTSIDE",
            "spec.location",
            "MESH_EXTERNAL",
            "OUTSIDE",
        ),
        (
            SERVICE_ENTRY.replace("  - edition.cnn.com", "  - {name: edition.cnn.com}"),
            "{...}",
            "spec.hosts[0]",
            "a string",
            "{name",
        ),
        (
            ORIGINATE_TLS.replace(
                "    loadBalancer:\n      simple: ROUND_ROBIN",
                "    loadBalancer: [ROUND_ROBIN]",
            ),
            "[...]",
            "spec.trafficPolicy.loadBalancer",
            "a mapping",
            "[ROUND_ROBIN]",
        ),
        (
            GATEWAY.replace("istio: egressgateway", "istio: 1"),
            "1",
            "spec.selector.istio",
            "a string",
            "istio: 1",
        ),
        (
            DR_AND_VS.replace(
                "  - match:\n    - gateways:\n      - mesh",
                "  - timeout: 5 seconds\n    match:\n    - gateways:\n      - mesh",
            ),
            "5 seconds",
            "spec.http[0].timeout",
            "a duration",
            "5 seconds",
        ),
    ];
    for (text, bad, expected_path, expected_fragment, marker) in cases {
        let error = field_err(&text);
        let FieldProblem::Invalid { value, expected } = &error.problem else {
            panic!("{expected_path}: {error:?}")
        };
        assert_eq!(error.path, expected_path);
        assert_eq!(value, bad, "{expected_path}");
        assert!(
            expected.contains(expected_fragment),
            "{expected_path}: {expected}"
        );
        assert_eq!(error.line, Some(line_of(&text, marker)), "{expected_path}");
    }
}

#[test]
fn fields_the_builtin_control_plane_does_not_translate_are_noted_where_they_are_set() {
    let text = DR_AND_VS.replace(
        "  - match:\n    - gateways:\n      - mesh",
        "  - rewrite:\n      uri: /\n    retries:\n      attempts: 3\n    match:\n    - gateways:\n      - mesh",
    );
    let objects = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let noted: Vec<(String, usize)> = objects[1]
        .untranslated
        .iter()
        .map(|u| (u.path.to_string(), u.line))
        .collect();
    assert_eq!(
        noted,
        [
            ("spec.http[0].rewrite".to_string(), line_of(&text, "uri: /")),
            (
                "spec.http[0].retries".to_string(),
                line_of(&text, "attempts: 3")
            ),
        ]
    );
    assert!(objects[0].untranslated.is_empty());
    // Null is unset, as Kubernetes has it.
    let text = SERVICE_ENTRY.replace(
        "  resolution: DNS",
        "  resolution: DNS\n  addresses:\n  exportTo: ~",
    );
    let object = parse_one(&text);
    assert!(object.untranslated.is_empty(), "{:?}", object.untranslated);
    match &object.spec {
        Spec::ServiceEntry(se) => assert!(se.export_to.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_required_fields() {
    let cases = [
        (
            SERVICE_ENTRY.replace("  name: cnn\n", "  namespace: default\n"),
            "metadata.name",
            "metadata:",
        ),
        (
            SERVICE_ENTRY.replace("metadata:\n  name: cnn\n", ""),
            "metadata.name",
            "apiVersion",
        ),
        (
            SERVICE_ENTRY.replace("kind: ServiceEntry\n", ""),
            "kind",
            "apiVersion",
        ),
    ];
    for (text, expected_path, marker) in cases {
        let error = field_err(&text);
        assert_eq!(error.problem, FieldProblem::MissingField, "{expected_path}");
        assert_eq!(error.path, expected_path);
        assert_eq!(error.line, Some(line_of(&text, marker)), "{expected_path}");
    }
    let error = parse_err(&SERVICE_ENTRY.replace("  name: cnn\n", "  namespace: default\n"));
    assert!(
        error
            .to_string()
            .ends_with(": missing required field metadata.name"),
        "{error}"
    );
}

#[test]
fn istio_rules_reject_in_istios_words_at_the_field() {
    // (manifest, the field, Istio's message, the line's text)
    let cases = [
        (
            SERVICE_ENTRY.replace("  hosts:\n  - edition.cnn.com\n", ""),
            "spec.hosts",
            "service entry must have at least one host",
            "spec:",
        ),
        (
            SERVICE_ENTRY.replace(
                "name: http-port-for-tls-origination",
                "name: http-port # again",
            ),
            "spec.ports[1].name",
            "service entry port name \"http-port\" already defined",
            "# again",
        ),
        (
            SERVICE_ENTRY.replace("number: 443", "number: 80 # again"),
            "spec.ports[1].number",
            "service entry port 80 already defined",
            "# again",
        ),
        (
            SERVICE_ENTRY.replace("number: 80", "number: 70000"),
            "spec.ports[0].number",
            "port number 70000 must be in the range 1..65535",
            "70000",
        ),
        (
            SERVICE_ENTRY.replace(
                "protocol: HTTP\n  - number: 443",
                "protocol: HTTTP\n  - number: 443",
            ),
            "spec.ports[0].protocol",
            "unsupported protocol: HTTTP",
            "HTTTP",
        ),
        (
            SERVICE_ENTRY.replace("  - edition.cnn.com\n", "  - \"\"\n"),
            "spec.hosts[0]",
            "empty domain name not allowed",
            "\"\"",
        ),
        (
            GATEWAY.replace("    hosts:\n    - edition.cnn.com\n", ""),
            "spec.servers[0].hosts",
            "server config must contain at least one host",
            "- port:",
        ),
        (
            GATEWAY.replace("      name: http-port-for-tls-origination\n", ""),
            "spec.servers[0].port.name",
            "port name must be set",
            "- port:",
        ),
        (
            ORIGINATE_TLS.replace("  host: edition.cnn.com\n", ""),
            "spec.host",
            "empty domain name not allowed",
            "spec:",
        ),
        (
            ORIGINATE_TLS.replace("    - port:\n        number: 443\n      tls:", "    - tls:"),
            "spec.trafficPolicy.portLevelSettings[0].port",
            "portTrafficPolicy must have valid port",
            "- tls:",
        ),
    ];
    for (text, expected_path, message, marker) in cases {
        let error = parse_err(&text);
        let ManifestError::Invalid {
            at,
            path,
            message: got,
            ..
        } = &error
        else {
            panic!("{expected_path}: {error:?}")
        };
        assert_eq!(path, expected_path);
        assert!(got.starts_with(message), "{expected_path}: {got}");
        assert!(
            at.starts_with(&format!("fixtures/test.yaml:{}:", line_of(&text, marker))),
            "{expected_path}: {at}"
        );
    }
}

#[test]
fn unknown_kind_and_api_version() {
    let text = SERVICE_ENTRY.replace("kind: ServiceEntry", "kind: Sidecar");
    let error = parse_err(&text);
    match &error {
        ManifestError::UnknownKind {
            kind, api_version, ..
        } => {
            assert_eq!(kind, "Sidecar");
            assert_eq!(api_version, "networking.istio.io/v1alpha3");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        error
            .to_string()
            .starts_with("fixtures/test.yaml:2:7: unknown kind `Sidecar`"),
        "{error}"
    );

    let text = SERVICE_ENTRY.replace("networking.istio.io/v1alpha3", "networking.istio.io/v2");
    let error = parse_err(&text);
    match &error {
        ManifestError::UnknownApiVersion {
            kind, api_version, ..
        } => {
            assert_eq!(*kind, Kind::ServiceEntry);
            assert_eq!(api_version, "networking.istio.io/v2");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        error.to_string().starts_with("fixtures/test.yaml:1:13:"),
        "{error}"
    );
}

#[test]
fn malformed_yaml_names_file_line_and_column() {
    let text = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n  name: x\n";
    let error = field_err(text);
    assert_eq!((error.file.clone(), error.line), (file(), Some(3)));
    assert!(error.column.is_some());
    let FieldProblem::Malformed(message) = &error.problem else {
        panic!("{error:?}")
    };
    assert!(
        !message.is_empty() && !message.contains("line 3"),
        "location only once: {message}"
    );
    assert!(
        error.to_string().starts_with("fixtures/test.yaml:3:"),
        "{error}"
    );
}

#[test]
fn a_duplicate_key_names_both_places_and_no_library_hint() {
    let text =
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: a\n  name: b\n";
    let error = field_err(text);
    assert_eq!(
        error.problem,
        FieldProblem::DuplicateKey {
            key: "name".into(),
            first_line: 4
        }
    );
    assert_eq!(error.line, Some(5));
    let message = error.to_string();
    assert!(!message.contains("DuplicateKeyPolicy"), "{message}");
    assert!(message.contains("duplicate key `name`"), "{message}");
}

#[test]
fn a_document_that_is_not_a_mapping() {
    let error = field_err(&format!("{SERVICE_ENTRY}---\n- just\n- a list\n"));
    assert_eq!(error.line, Some(17));
    assert!(error.to_string().contains("expected a mapping"), "{error}");
}

#[test]
fn load_manifests_reads_the_file() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("03-dr-vs.yaml");
    std::fs::write(&path, DR_AND_VS)?;
    let objects = load_manifests(&path)?;
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[1].source.file, path);

    let missing = dir.path().join("missing.yaml");
    match load_manifests(&missing) {
        Err(ManifestError::Read(crate::input::ReadError::Missing { file })) => {
            assert_eq!(file, missing);
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

#[test]
fn field_paths_quote_keys_that_are_not_plain_names() {
    let path = FieldPath::default()
        .key("metadata")
        .key("labels")
        .key("app.kubernetes.io/name");
    assert_eq!(
        path.to_string(),
        "metadata.labels[\"app.kubernetes.io/name\"]"
    );
    assert_eq!(
        FieldPath::default()
            .key("spec")
            .key("http")
            .index(2)
            .key("match")
            .index(0)
            .to_string(),
        "spec.http[2].match[0]"
    );
}
