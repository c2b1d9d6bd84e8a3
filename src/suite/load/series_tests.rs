//! The loader on what the series brought: every suite under `suites/`, the origin declaration,
//! variables, mesh changes, the cleanups' `kubectl delete` forms and the new kinds of check —
//! each refused, with its line, where it is wrong.

use std::path::PathBuf;

use super::*;
use crate::origin::sites::{Answer, Body, SiteName};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn parse(text: &str) -> Result<Suite, SuiteError> {
    parse_suite(
        &repo().join("suites/test.yaml"),
        text,
        LoadOptions::default(),
    )
}

fn message(result: Result<Suite, SuiteError>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

const HEAD: &str = "name: t\ntitle: T\nfixtures: ../fixtures/external-tcp-service\ncommands:\n  c: curl -s http://a/\n";

#[test]
fn every_suite_of_the_series_loads() {
    for (file, stages) in [
        ("egress-gateway", 5),
        ("egress-tls-origination", 4),
        ("egress-control", 7),
        ("external-tcp-service", 5),
        ("egress-gateway-tls-origination", 6),
    ] {
        let suite = load_suite(
            &repo().join(format!("suites/{file}.yaml")),
            LoadOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(suite.stages.len(), stages, "{file}");
        assert!(!suite.origin.sites.is_empty(), "{file} declares its sites");
    }
}

#[test]
fn the_tcp_suite_expands_its_variables_in_fixtures_and_commands() {
    let suite = load_suite(
        &repo().join("suites/external-tcp-service.yaml"),
        LoadOptions::default(),
    )
    .unwrap();
    let Step::Apply { objects, .. } = &suite.stages[1].steps[0] else {
        panic!()
    };
    let crate::istio::Spec::ServiceEntry(se) = &objects[0].spec else {
        panic!()
    };
    assert_eq!(se.hosts, ["mysqldb.example.com"]);
    assert_eq!(se.addresses, ["192.0.2.10/32"]);
    assert_eq!(se.ports[0].number, 3306);
    let mysql = suite.all_commands().find(|c| c.name == "mysql").unwrap();
    assert_eq!(mysql.argv.last().unwrap(), "http://192.0.2.10:3306/");
    // `-n default` names the namespace it deletes in.
    let Step::Delete { key, .. } = &suite.stages[2].steps[0] else {
        panic!()
    };
    assert_eq!(key.to_string(), "ServiceEntry default/mysql-external");
}

#[test]
fn an_unset_variable_in_a_fixture_is_an_error_at_its_line() {
    let text = format!(
        "{HEAD}vars:\n  MYSQL_DB_IP: 192.0.2.10\nstages:\n  - name: a\n    apply: [01-serviceentry-mysql-external.yaml]\n"
    );
    let error = message(parse(&text));
    assert!(
        error.contains("01-serviceentry-mysql-external.yaml:7:")
            && error.contains("$MYSQL_DB_HOST is not set"),
        "{error}"
    );
    let text = "name: t\ntitle: T\nfixtures: .\ncommands:\n  c: curl -s http://$NOPE/\nstages:\n  - name: a\n";
    let error = message(parse(text));
    assert!(
        error.contains("test.yaml:5") && error.contains("$NOPE is not set"),
        "{error}"
    );
    let text = format!("{HEAD}vars:\n  X: ''\nstages:\n  - name: a\n");
    assert!(message(parse(&text)).contains("vars.X: a value is one line, not empty"));
}

#[test]
fn the_control_suite_changes_the_mesh_and_deletes_as_its_cleanup_does() {
    let suite = load_suite(
        &repo().join("suites/egress-control.yaml"),
        LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(
        suite.mesh.outbound_traffic_policy,
        crate::mesh::OutboundTrafficPolicy::AllowAny
    );
    assert!(matches!(
        &suite.stages[1].steps[..],
        [Step::Mesh(m)] if m.outbound_traffic_policy == crate::mesh::OutboundTrafficPolicy::RegistryOnly
    ));
    let deletes: Vec<(String, bool)> = suite.stages[6]
        .steps
        .iter()
        .map(|s| match s {
            Step::Delete {
                key,
                ignore_not_found,
            } => (key.to_string(), *ignore_not_found),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        deletes,
        [
            ("ServiceEntry default/httpbin-ext".to_string(), false),
            ("ServiceEntry default/google".to_string(), false),
            ("VirtualService default/httpbin-ext".to_string(), true),
        ]
    );
}

#[test]
fn an_ignored_delete_of_nothing_is_no_error_and_another_is() {
    let text = format!(
        "{HEAD}stages:\n  - name: a\n    delete: [virtualservice gone --ignore-not-found=true]\n"
    );
    assert!(parse(&text).is_ok());
    let text = format!("{HEAD}stages:\n  - name: a\n    delete: [virtualservice gone]\n");
    assert!(message(parse(&text)).contains("it does not exist at that point"));
}

#[test]
fn the_origin_is_read_as_declared() {
    let suite = load_suite(
        &repo().join("suites/egress-control.yaml"),
        LoadOptions::default(),
    )
    .unwrap();
    let httpbin = suite
        .origin
        .sites
        .iter()
        .find(|s| s.name == SiteName::Host("httpbin.org".into()))
        .unwrap();
    let port = &httpbin.ports[0];
    assert_eq!((port.port, port.tls), (80, false));
    assert!(matches!(
        port.answer_for("/headers"),
        Some(Answer::Page(p)) if p.body == Body::EchoHeaders
    ));
    assert!(matches!(
        port.answer_for("/delay/5"),
        Some(Answer::Page(p)) if p.delay == std::time::Duration::from_secs(5)
    ));
    assert_eq!(port.answer_for("/ip"), None);
}

#[test]
fn a_wrong_origin_is_refused_at_its_line() {
    let site = |body: &str| format!("{HEAD}origin:\n{body}stages:\n  - name: a\n");
    for (body, line, needle) in [
        (
            "  - host: a.example\n    address: 192.0.2.1\n    ports: []\n",
            7,
            "either `host` or `address`",
        ),
        (
            "  - address: not-an-ip\n    ports: []\n",
            7,
            "is not an IP address",
        ),
        (
            "  - host: a.example\n    ports: []\n",
            8,
            "a site needs a port",
        ),
        (
            "  - host: a.example\n    ports:\n      - port: 80\n        paths: {x: {}}\n",
            10,
            "a path starts with `/`",
        ),
        (
            "  - host: a.example\n    ports:\n      - port: 80\n        alpn: [h2]\n        paths: {/: {}}\n",
            10,
            "ALPN is for TLS ports",
        ),
        (
            "  - host: a.example\n    ports:\n      - port: 443\n        tls: true\n        alpn: [spdy/3]\n        paths: {/: {}}\n",
            11,
            "the origin speaks h2 and http/1.1",
        ),
        (
            "  - host: a.example\n    ports:\n      - port: 80\n        paths: {/: {redirect: https, status: 200}}\n",
            10,
            "a redirect takes nothing else",
        ),
        (
            "  - host: a.example\n    ports:\n      - port: 80\n        paths: {/: {body: x, echo: headers}}\n",
            10,
            "one of body_bytes, body and echo",
        ),
        (
            "  - host: a.example\n    ports:\n      - port: 80\n        paths: {/: {status: 99}}\n",
            10,
            "not a final HTTP status",
        ),
        (
            "  - host: a.example\n    ports:\n      - port: 80\n        paths: {/: {}}\n  - host: b.example\n    ports:\n      - port: 80\n        tls: true\n        paths: {/: {}}\n",
            14,
            "host-named sites share one listener per port",
        ),
        (
            "  - host: a.example\n    ports:\n      - port: 80\n        paths: {/: {}}\n  - host: a.example\n    ports:\n      - port: 81\n        paths: {/: {}}\n",
            11,
            "declared twice",
        ),
    ] {
        let error = message(parse(&site(body)));
        assert!(
            error.contains(&format!("test.yaml:{line}:")) && error.contains(needle),
            "{body}: {error}"
        );
    }
}

#[test]
fn the_new_checks_are_read_and_their_mistakes_refused() {
    let checks = |body: &str| format!("{HEAD}stages:\n  - name: a\n    checks:\n{body}");
    let suite = parse(&checks("      - run: c\n        exit_code: {any_of: [52, 56]}\n        stdout: \"504\\n\"\n        duration: {at_least: 3s, below: 5s}\n        blocked: [{proxy: sidecar, by: block_all, count: 1}]\n        connections: [{proxy: sidecar, cluster: c, count: 1}]\n        timeouts: [{proxy: sidecar, cluster: c, requests: 1}]\n")).unwrap();
    let CheckKind::Command(c) = &suite.stages[0].checks[0].kind else {
        panic!()
    };
    assert_eq!(c.exit_code_in, [52, 56]);
    assert_eq!(c.stdout.as_ref().unwrap().value, "504\n");
    assert_eq!(c.blocked[0].by, Blocker::BlockAll);
    for (body, needle) in [
        (
            "      - run: c\n        exit_code: {any_of: [52]}\n",
            "any_of takes two or more codes",
        ),
        (
            "      - run: c\n        duration: {at_least: 5s, below: 3s}\n",
            "is not below",
        ),
        (
            "      - run: c\n        duration: {}\n",
            "duration takes at_least, below or both",
        ),
        (
            "      - run: c\n        blocked: [{proxy: sidecar, by: firewall, count: 1}]\n",
            "firewall",
        ),
        (
            "      - proxy: sidecar\n        listener: x\n        timeout: 3s\n",
            "a listener check does not take timeout",
        ),
        (
            "      - proxy: sidecar\n        cluster: x\n        filter_chains: []\n",
            "a cluster check does not take filter_chains",
        ),
    ] {
        let error = message(parse(&checks(body)));
        assert!(
            error.contains(needle) && error.contains("test.yaml:"),
            "{body}: {error}"
        );
    }
}
