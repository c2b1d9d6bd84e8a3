use std::path::PathBuf;

use super::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A suite text parsed as if it sat in `suites/`, so the tutorial's fixtures resolve.
fn parse(text: &str) -> Result<Suite, SuiteError> {
    parse_suite(
        &repo().join("suites/test.yaml"),
        text,
        LoadOptions::default(),
    )
}

const HEAD: &str = "name: t\ntitle: T\nfixtures: ../fixtures/egress-gateway-tls-origination\ncommands:\n  politics: curl -s http://edition.cnn.com/politics\n";

fn message(result: Result<Suite, SuiteError>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_tutorial_suite_loads_with_its_six_stages() {
    let suite = load_suite(
        &repo().join("suites/egress-gateway-tls-origination.yaml"),
        LoadOptions::default(),
    )
    .unwrap();
    let names: Vec<&str> = suite.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "baseline",
            "service-entry",
            "gateway",
            "route-through-gateway",
            "originate-tls",
            "cleanup"
        ]
    );
    let deletes: Vec<String> = suite.stages[5]
        .steps
        .iter()
        .map(|s| match s {
            Step::Delete { key, .. } => key.to_string(),
            Step::Apply { .. } | Step::Mesh(_) => "apply".into(),
        })
        .collect();
    assert_eq!(
        deletes,
        [
            "Gateway default/istio-egressgateway",
            "ServiceEntry default/cnn",
            "VirtualService default/direct-cnn-through-egress-gateway",
            "DestinationRule default/originate-tls-for-edition-cnn-com",
            "DestinationRule default/egressgateway-for-cnn",
        ]
    );
    // The YAML anchor reuses stage 0's check at stage 5, with its live-site marking.
    let CheckKind::Command(last) = &suite.stages[5].checks.last().unwrap().kind else {
        panic!()
    };
    let lines = last.status_lines.as_ref().unwrap();
    assert_eq!(
        lines[0],
        Expected {
            value: "HTTP/1.1 301 Moved Permanently".into(),
            varies_on_live_site: false
        }
    );
    assert_eq!(
        lines[1],
        Expected {
            value: "HTTP/1.1 200 OK".into(),
            varies_on_live_site: true
        }
    );
}

#[test]
fn a_check_says_which_fields_do_not_belong() {
    let text = format!(
        "{HEAD}stages:\n  - name: a\n    checks:\n      - run: politics\n        exit_code: 0\n        listener: x\n"
    );
    let error = message(parse(&text));
    assert!(error.contains("test.yaml:9:"), "{error}");
    assert!(
        error.contains("a command check does not take listener"),
        "{error}"
    );
}

#[test]
fn unknown_fields_and_commands_and_snapshots_are_named() {
    let unknown = message(parse(&format!(
        "{HEAD}stages:\n  - name: a\n    checks:\n      - run: politics\n        exit_cod: 0\n"
    )));
    assert!(
        unknown.contains("test.yaml:10:") && unknown.contains("exit_cod"),
        "{unknown}"
    );
    let command = message(parse(&format!(
        "{HEAD}stages:\n  - name: a\n    checks:\n      - run: world\n        exit_code: 0\n"
    )));
    assert!(
        command.contains("no command named \"world\"") && command.contains("politics"),
        "{command}"
    );
    let snapshot = message(parse(&format!(
        "{HEAD}stages:\n  - name: a\n    checks:\n      - same_as: baseline\n"
    )));
    assert!(
        snapshot.contains("no earlier stage takes a snapshot named \"baseline\""),
        "{snapshot}"
    );
    let nothing = message(parse(&format!(
        "{HEAD}stages:\n  - name: a\n    checks:\n      - run: politics\n"
    )));
    assert!(nothing.contains("expects nothing"), "{nothing}");
}

#[test]
fn only_curl_commands_and_kubectl_style_deletes() {
    let text =
        "name: t\ntitle: T\nfixtures: .\ncommands:\n  x: wget http://a\nstages:\n  - name: a\n";
    assert!(message(parse(text)).contains("only curl commands are supported"));
    let delete = message(parse(&format!(
        "{HEAD}stages:\n  - name: a\n    delete: [service cnn]\n"
    )));
    assert!(delete.contains("unknown kind \"service\""), "{delete}");
    let shape = message(parse(&format!(
        "{HEAD}stages:\n  - name: a\n    delete: [cnn]\n"
    )));
    assert!(shape.contains("expected `<kind> <name>`"), "{shape}");
}

#[test]
fn live_site_marking_is_a_closed_vocabulary() {
    let text = format!(
        "{HEAD}stages:\n  - name: a\n    checks:\n      - run: politics\n        headers:\n          content-length: {{value: 1, live_site: sometimes}}\n"
    );
    assert!(parse(&text).is_err());
    let text = format!(
        "{HEAD}stages:\n  - name: a\n    checks:\n      - run: politics\n        headers:\n          content-length: {{value: 1, live_site: varies}}\n"
    );
    let suite = parse(&text).unwrap();
    let CheckKind::Command(check) = &suite.stages[0].checks[0].kind else {
        panic!()
    };
    assert_eq!(
        check.headers["content-length"],
        Expected {
            value: "1".into(),
            varies_on_live_site: true
        }
    );
}

#[test]
fn outbound_traffic_policy_follows_mesh_config() {
    let suite = parse(&format!(
        "{HEAD}mesh:\n  outboundTrafficPolicy:\n    mode: REGISTRY_ONLY\nstages:\n  - name: a\n"
    ))
    .unwrap();
    assert_eq!(
        suite.mesh.outbound_traffic_policy,
        OutboundTrafficPolicy::RegistryOnly
    );
    assert!(
        parse(&format!(
            "{HEAD}mesh:\n  outboundTrafficPolicy:\n    mode: DENY\nstages:\n  - name: a\n"
        ))
        .is_err()
    );
}
