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

// ---------------------------------------------------------------------------------------------
// The series' expectations: each passes on what it describes and fails on anything else.

fn with_stats(
    mut observation: CommandObservation,
    before: &[(&str, u64)],
    after: &[(&str, u64)],
) -> CommandObservation {
    let map = |pairs: &[(&str, u64)]| {
        BTreeMap::from([(
            ProxyRole::Sidecar,
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>(),
        )])
    };
    observation.stats_before = map(before);
    observation.stats_after = map(after);
    observation
}

#[test]
fn an_exit_code_among_several() {
    let mut c = check();
    c.exit_code_in = vec![52, 56];
    assert!(single(judge_command(&c, &seen("", 52))).passed);
    assert!(single(judge_command(&c, &seen("", 56))).passed);
    let failed = single(judge_command(&c, &seen("", 0)));
    assert!(!failed.passed);
    assert_eq!(
        (failed.expected.as_str(), failed.actual.as_str()),
        ("one of [52, 56]", "0")
    );
}

#[test]
fn the_whole_output_exactly() {
    let mut c = check();
    c.stdout = Some(exact("504\n"));
    assert!(single(judge_command(&c, &seen("504\n", 0))).passed);
    let failed = single(judge_command(&c, &seen("200\n", 0)));
    assert!(!failed.passed);
    assert_eq!(failed.actual, "200\n");
    // Not a prefix: the whole of it.
    assert!(!single(judge_command(&c, &seen("504\nmore", 0))).passed);
}

#[test]
fn a_duration_is_judged_in_the_tutorials_time() {
    let mut c = check();
    c.duration = Some(crate::suite::DurationBounds {
        at_least: Some(std::time::Duration::from_secs(3)),
        below: Some(std::time::Duration::from_secs(5)),
    });
    let took = |ms: u64, scale: u32| {
        let mut o = seen("", 0);
        o.took = std::time::Duration::from_millis(ms);
        o.time_scale = scale;
        single(judge_command(&c, &o))
    };
    assert!(took(3100, 1).passed);
    // 160 ms at 20× is 3.2 s of the tutorial's time.
    let scaled = took(160, 20);
    assert!(scaled.passed, "{scaled:?}");
    assert!(scaled.note.as_deref().unwrap().contains("20× faster"));
    let early = took(2900, 1);
    assert!(!early.passed);
    assert_eq!(early.expected, "at least 3.0s and below 5.0s");
    assert!(!took(260, 20).passed, "5.2 s is not below 5 s");
}

#[test]
fn blocked_by_block_all_counts_direct_responses_of_every_connection_manager() {
    let mut c = check();
    c.blocked = vec![crate::suite::Blocked {
        proxy: ProxyRole::Sidecar,
        by: crate::suite::Blocker::BlockAll,
        count: 1,
    }];
    let counter = "http.outbound_0.0.0.0_80;.rq_direct_response";
    let passed = single(judge_command(
        &c,
        &with_stats(seen("", 0), &[(counter, 2)], &[(counter, 3)]),
    ));
    assert!(passed.passed, "{passed:?}");
    let failed = single(judge_command(
        &c,
        &with_stats(seen("", 0), &[(counter, 3)], &[(counter, 3)]),
    ));
    assert!(!failed.passed);
    assert_eq!(
        (failed.expected.as_str(), failed.actual.as_str()),
        ("1", "0")
    );
    // No connection manager counts at all: not judgeable, and not a pass.
    let none = single(judge_command(&c, &with_stats(seen("", 0), &[], &[])));
    assert!(!none.passed);
    assert!(
        none.actual
            .contains("no counter http.<listener>.rq_direct_response")
    );
}

#[test]
fn blocked_by_the_blackhole_reads_its_hostless_connections_under_either_stat_name() {
    let mut c = check();
    c.blocked = vec![crate::suite::Blocked {
        proxy: ProxyRole::Sidecar,
        by: crate::suite::Blocker::BlackHoleCluster,
        count: 1,
    }];
    for name in [
        "cluster.BlackHoleCluster.upstream_cx_none_healthy",
        "cluster.BlackHoleCluster;.upstream_cx_none_healthy",
    ] {
        let o = with_stats(seen("", 35), &[(name, 0)], &[(name, 1)]);
        assert!(single(judge_command(&c, &o)).passed, "{name}");
    }
    let name = "cluster.BlackHoleCluster.upstream_cx_none_healthy";
    let passed_through = with_stats(seen("", 0), &[(name, 4)], &[(name, 4)]);
    let failed = single(judge_command(&c, &passed_through));
    assert!(!failed.passed);
    assert_eq!(failed.actual, "0");
}

#[test]
fn tcp_connections_count_at_the_tcp_proxy_and_upstream() {
    let mut c = check();
    let cluster = "outbound|3306||mysqldb.example.com";
    c.connections = vec![crate::suite::ClusterConnections {
        proxy: ProxyRole::Sidecar,
        cluster: cluster.into(),
        count: 1,
    }];
    let proxied = format!("tcp.{cluster}.downstream_cx_total");
    let upstream = format!("cluster.{cluster}.upstream_cx_total");
    let both = with_stats(
        seen("", 0),
        &[(&proxied, 0), (&upstream, 0)],
        &[(&proxied, 1), (&upstream, 1)],
    );
    assert!(single(judge_command(&c, &both)).passed);
    // An HTTP connection manager would have counted upstream only.
    let http = with_stats(
        seen("", 0),
        &[(&proxied, 0), (&upstream, 0)],
        &[(&proxied, 0), (&upstream, 1)],
    );
    let failed = single(judge_command(&c, &http));
    assert!(!failed.passed);
    assert_eq!(failed.actual, "0 through tcp_proxy, 1 upstream");
    let missing = single(judge_command(
        &c,
        &with_stats(seen("", 0), &[], &[(&upstream, 1)]),
    ));
    assert!(!missing.passed);
    assert!(
        missing.actual.contains(&format!("no counter {proxied}")),
        "{missing:?}"
    );
}

#[test]
fn timeouts_are_the_clusters_timed_out_requests() {
    let mut c = check();
    let cluster = "outbound|80||httpbin.org";
    c.timeouts = vec![ClusterTraffic {
        proxy: ProxyRole::Sidecar,
        cluster: cluster.into(),
        requests: 1,
    }];
    let name = format!("cluster.{cluster}.upstream_rq_timeout");
    assert!(
        single(judge_command(
            &c,
            &with_stats(seen("", 0), &[], &[(&name, 1)])
        ))
        .passed
    );
    let failed = single(judge_command(
        &c,
        &with_stats(seen("", 0), &[(&name, 1)], &[(&name, 1)]),
    ));
    assert!(!failed.passed);
    assert_eq!(
        (failed.expected.as_str(), failed.actual.as_str()),
        ("1", "0")
    );
}

#[test]
fn the_origin_saw_the_port_method_and_alpn() {
    let mut c = check();
    c.origin = Some(vec![OriginExpectation {
        port: Some(443),
        method: Some("HEAD".into()),
        alpn: Some(Some("h2".into())),
        ..Default::default()
    }]);
    let hit = OriginHit {
        host: "www.google.com".into(),
        path: "/".into(),
        tls: true,
        sni: Some("www.google.com".into()),
        status: 200,
        port: 443,
        method: "HEAD".into(),
        alpn: Some("h2".into()),
    };
    let mut observation = seen("", 0);
    observation.origin = Some(vec![hit.clone()]);
    assert!(single(judge_command(&c, &observation)).passed);
    // The sidecar's own TLS (http/1.1), another method, another port: each fails, and shows.
    for other in [
        OriginHit {
            alpn: Some("http/1.1".into()),
            ..hit.clone()
        },
        OriginHit {
            method: "GET".into(),
            ..hit.clone()
        },
        OriginHit {
            port: 80,
            ..hit.clone()
        },
    ] {
        observation.origin = Some(vec![other]);
        let failed = single(judge_command(&c, &observation));
        assert!(!failed.passed);
        assert!(
            failed.actual.contains("port=") && failed.actual.contains("alpn="),
            "{}",
            failed.actual
        );
    }
    c.origin = Some(vec![OriginExpectation {
        alpn: Some(None),
        ..Default::default()
    }]);
    observation.origin = Some(vec![hit]);
    assert!(!single(judge_command(&c, &observation)).passed);
}
