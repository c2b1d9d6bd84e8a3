use std::collections::BTreeMap;

use super::*;
use crate::suite::{ClusterTraffic, CommandLine};

fn check() -> CommandCheck {
    CommandCheck {
        command: CommandLine {
            name: "politics".into(),
            argv: vec!["curl".into()],
        },
        ..Default::default()
    }
}

fn exact(value: &str) -> Expected {
    Expected {
        value: value.into(),
        varies_on_live_site: false,
    }
}

fn live(value: &str) -> Expected {
    Expected {
        value: value.into(),
        varies_on_live_site: true,
    }
}

const REDIRECT_THEN_PAGE: &str = "HTTP/1.1 301 Moved Permanently\r\nlocation: https://edition.cnn.com/politics\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 150793\r\n\r\n";

fn seen(stdout: &str, exit_code: i32) -> CommandObservation {
    CommandObservation {
        output: CommandOutput {
            stdout: stdout.into(),
            stderr: String::new(),
            exit_code,
        },
        stats_before: BTreeMap::new(),
        stats_after: BTreeMap::new(),
        origin: Some(Vec::new()),
        live_site: false,
        took: std::time::Duration::ZERO,
        time_scale: 1,
    }
}

fn single(outcomes: Vec<Outcome>) -> Outcome {
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    outcomes.into_iter().next().unwrap()
}

#[test]
fn exit_code_passes_and_fails() {
    let mut c = check();
    c.exit_code = Some(35);
    assert!(single(judge_command(&c, &seen("", 35))).passed);
    let failed = single(judge_command(&c, &seen("", 0)));
    assert!(!failed.passed);
    assert_eq!(
        (failed.expected.as_str(), failed.actual.as_str()),
        ("35", "0")
    );
}

#[test]
fn status_lines_must_match_in_order_and_number() {
    let mut c = check();
    c.status_lines = Some(vec![
        exact("HTTP/1.1 301 Moved Permanently"),
        exact("HTTP/1.1 200 OK"),
    ]);
    assert!(single(judge_command(&c, &seen(REDIRECT_THEN_PAGE, 0))).passed);
    c.status_lines = Some(vec![exact("HTTP/1.1 200 OK")]);
    let failed = single(judge_command(&c, &seen(REDIRECT_THEN_PAGE, 0)));
    assert!(!failed.passed);
    assert_eq!(
        failed.actual,
        "[HTTP/1.1 301 Moved Permanently, HTTP/1.1 200 OK]"
    );
}

#[test]
fn live_site_values_are_only_required_to_be_there() {
    let mut c = check();
    c.status_lines = Some(vec![live("HTTP/1.1 400 Bad Request")]);
    c.headers.insert("content-length".into(), live("1"));
    let mut observation = seen("HTTP/1.1 403 Forbidden\r\ncontent-length: 7\r\n\r\n", 0);
    // Locally, the marked values are exact.
    assert!(judge_command(&c, &observation).iter().all(|o| !o.passed));
    observation.live_site = true;
    let outcomes = judge_command(&c, &observation);
    assert!(outcomes.iter().all(|o| o.passed), "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o.note.is_some()));
    // ... but a missing header or status line still fails.
    let outcomes = judge_command(
        &c,
        &CommandObservation {
            live_site: true,
            ..seen("", 0)
        },
    );
    assert!(outcomes.iter().all(|o| !o.passed), "{outcomes:?}");
}

#[test]
fn headers_are_read_from_the_last_response() {
    let mut c = check();
    c.headers.insert("content-length".into(), exact("150793"));
    assert!(single(judge_command(&c, &seen(REDIRECT_THEN_PAGE, 0))).passed);
    c.headers.clear();
    c.headers
        .insert("location".into(), exact("https://edition.cnn.com/politics"));
    let failed = single(judge_command(&c, &seen(REDIRECT_THEN_PAGE, 0)));
    assert!(
        !failed.passed,
        "the location belongs to the first response, not the last"
    );
    assert_eq!(failed.actual, "(none)");
}

#[test]
fn output_includes_and_excludes() {
    let mut c = check();
    c.stdout_includes = vec!["200 OK".into()];
    c.stdout_excludes = vec!["301 Moved Permanently".into()];
    let outcomes = judge_command(&c, &seen(REDIRECT_THEN_PAGE, 0));
    assert!(outcomes[0].passed);
    assert!(!outcomes[1].passed);
    assert_eq!(outcomes[1].actual, "HTTP/1.1 301 Moved Permanently");
    assert!(!judge_command(&c, &seen("", 0))[0].passed);
}

#[test]
fn traffic_is_the_growth_of_upstream_requests() {
    let mut c = check();
    c.through = vec![ClusterTraffic {
        proxy: ProxyRole::EgressGateway,
        cluster: "outbound|443||edition.cnn.com".into(),
        requests: 1,
    }];
    let stats = |n: u64| {
        BTreeMap::from([(
            ProxyRole::EgressGateway,
            BTreeMap::from([(
                "cluster.outbound|443||edition.cnn.com.upstream_rq_total".to_string(),
                n,
            )]),
        )])
    };
    let mut observation = seen("", 0);
    observation.stats_before = stats(4);
    observation.stats_after = stats(5);
    assert!(single(judge_command(&c, &observation)).passed);
    observation.stats_after = stats(4);
    let failed = single(judge_command(&c, &observation));
    assert!(!failed.passed);
    assert_eq!(failed.actual, "0");
    // Istio's `alt_stat_name` form counts too.
    observation.stats_after = BTreeMap::from([(
        ProxyRole::EgressGateway,
        BTreeMap::from([(
            "cluster.outbound|443||edition.cnn.com;.upstream_rq_total".to_string(),
            1,
        )]),
    )]);
    observation.stats_before = BTreeMap::new();
    assert!(single(judge_command(&c, &observation)).passed);
    // No counter at all: not even "0 requests" holds.
    c.through[0].requests = 0;
    observation.stats_after = BTreeMap::from([(ProxyRole::EgressGateway, BTreeMap::new())]);
    let unknown = single(judge_command(&c, &observation));
    assert!(!unknown.passed);
    assert!(
        unknown
            .actual
            .starts_with("no counter cluster.outbound|443||edition.cnn.com.upstream_rq_total"),
        "{}",
        unknown.actual
    );
}

#[test]
fn origin_requests_match_field_by_field_and_in_number() {
    let mut c = check();
    c.origin = Some(vec![OriginExpectation {
        tls: Some(true),
        sni: Some(Some("edition.cnn.com".into())),
        status: Some(200),
        ..Default::default()
    }]);
    let hit = OriginHit {
        host: "edition.cnn.com".into(),
        path: "/politics".into(),
        tls: true,
        sni: Some("edition.cnn.com".into()),
        status: 200,
        port: 443,
        method: "GET".into(),
        alpn: None,
    };
    let mut observation = seen("", 0);
    observation.origin = Some(vec![hit.clone()]);
    assert!(single(judge_command(&c, &observation)).passed);
    observation.origin = Some(vec![OriginHit {
        tls: false,
        sni: None,
        status: 400,
        ..hit.clone()
    }]);
    assert!(!single(judge_command(&c, &observation)).passed);
    observation.origin = Some(vec![hit.clone(), hit]);
    assert!(
        !single(judge_command(&c, &observation)).passed,
        "one request more than expected"
    );
    observation.origin = None;
    let unseen = single(judge_command(&c, &observation));
    assert!(
        unseen.passed && unseen.note.is_some(),
        "a backend that cannot see the origin says so"
    );
}
