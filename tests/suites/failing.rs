//! Runs that must fail, and what each failure must say: a broken fixture, expectations that
//! cannot hold, residue, a NACK, a proxy that dies.

use std::time::Duration;

use libtest_mimic::Failed;

use crate::harness::{
    FIXTURES, Replay, Running, SUITE, Workspace, envoy_playing, envoy_run_dir, gone, replay,
    run_binary,
};

/// Run an edited suite and require that it fails, and with each of `expected` in its failures.
fn fails_with(workspace: &Workspace, expected: &[&str]) -> Result<(), Failed> {
    let run = replay(&[workspace.suite().as_os_str()])?;
    check_fails_with(&run, expected)
}

pub fn check_fails_with(run: &Replay, expected: &[&str]) -> Result<(), Failed> {
    if run.code != Some(1) {
        return Err(format!("expected exit 1\n{}", run.describe()).into());
    }
    let failures = run.failures();
    // Each failure names the suite line of its check; the needles leave it out.
    if !failures.iter().all(|f| {
        f.contains("(suite line ")
            || f.contains("not run")
            || f.contains("kubectl")
            || f.contains("died")
    }) {
        return Err(format!(
            "a failure does not name its suite line:\n{}",
            failures.join("\n")
        )
        .into());
    }
    let failures = strip_suite_lines(&failures.join("\n"));
    for needle in expected {
        if !failures.contains(needle) {
            return Err(format!("no failure mentions {needle:?}; failures:\n{failures}").into());
        }
    }
    Ok(())
}

/// The tutorial's last DestinationRule with `tls.mode: DISABLE`: stage 4 gets the origin's 400
/// instead of the page, and every expectation that depends on TLS says so.
pub fn tls_disabled() -> Result<(), Failed> {
    let ws = Workspace::new()?;
    ws.edit(
        &format!("{FIXTURES}/04-destinationrule-originate-tls.yaml"),
        "mode: SIMPLE",
        "mode: DISABLE",
    )?;
    fails_with(
        &ws,
        &[
            "stage originate-tls: politics: status lines: expected [HTTP/1.1 200 OK], got [HTTP/1.1 400 Bad Request]",
            "stage originate-tls: politics: header content-length: expected 150793, got 248",
            "stage originate-tls: egress-gateway: cluster outbound|443||edition.cnn.com",
            "expected present, lb_policy LEAST_REQUEST, TLS originated (sni auto), got present, lb_policy LEAST_REQUEST, plain text upstream",
            "politics: requests that reached the origin: expected [{host=edition.cnn.com path=/politics tls=true sni=edition.cnn.com status=200}], got [{host=edition.cnn.com path=/politics tls=false sni=none status=400}]",
        ],
    )
}

/// Run one of the series' suites with one fixture edited, and require that it fails with each
/// of `expected`.
fn series_fails_with(
    suite: &str,
    fixture: &str,
    (from, to): (&str, &str),
    expected: &[&str],
) -> Result<(), Failed> {
    let ws = Workspace::new()?;
    ws.edit(&format!("fixtures/{suite}/{fixture}"), from, to)?;
    let run = replay(&[ws.path(&format!("suites/{suite}.yaml")).as_os_str()])?;
    check_fails_with(&run, expected)
}

/// egress-gateway with a Gateway for another host: the VirtualService binds nothing on the
/// gateway, whose only virtual host answers 404, and nothing reaches the site.
pub fn gateway_for_another_host() -> Result<(), Failed> {
    series_fails_with(
        "egress-gateway",
        "02-gateway-destinationrule-egressgateway-for-cnn.yaml",
        (
            "    hosts:\n    - edition.cnn.com",
            "    hosts:\n    - other.example.com",
        ),
        &[
            "stage route-through-gateway: egress-gateway: route config http.8080: virtual hosts: expected [edition.cnn.com:80], got [blackhole:80]",
            "stage route-through-gateway: politics: status lines: expected [HTTP/1.1 301 Moved Permanently, HTTP/2 200], got [HTTP/1.1 404 Not Found]",
            "stage route-through-gateway: politics: requests from egress-gateway to outbound|80||edition.cnn.com: expected 1, got 0",
        ],
    )
}

/// egress-tls-origination with its DestinationRule on port 443 instead of 80: port 80 stays
/// plain text to the site's 443, which answers 400.
pub fn tls_origination_on_the_wrong_port() -> Result<(), Failed> {
    series_fails_with(
        "egress-tls-origination",
        "02-serviceentry-destinationrule-originate-tls.yaml",
        (
            "    - port:\n        number: 80\n      tls:",
            "    - port:\n        number: 443\n      tls:",
        ),
        &[
            "stage originate-tls: sidecar: cluster outbound|80||edition.cnn.com: expected present, type STRICT_DNS, lb_policy LEAST_REQUEST, TLS originated (sni auto), endpoints [edition.cnn.com:443], got present, type STRICT_DNS, lb_policy LEAST_REQUEST, plain text upstream",
            "stage originate-tls: politics: status lines: expected [HTTP/1.1 200 OK], got [HTTP/1.1 400 Bad Request]",
            "got [{host=edition.cnn.com path=/politics tls=false sni=none status=400 port=443 alpn=none}]",
        ],
    )
}

/// egress-control under REGISTRY_ONLY with its ServiceEntry for another host: httpbin.org stays
/// unknown, so block_all answers and no cluster for it exists.
pub fn registry_only_without_the_service_entry() -> Result<(), Failed> {
    series_fails_with(
        "egress-control",
        "01-serviceentry-httpbin-ext.yaml",
        ("  - httpbin.org", "  - httpbin.example.org"),
        &[
            "stage http-service-entry: headers: requests from sidecar to outbound|80||httpbin.org: expected 1, got no counter",
            "stage http-service-entry: sidecar: cluster outbound|80||httpbin.org: expected present, got absent",
            "stage http-service-entry: headers: requests that reached the origin: expected [{host=httpbin.org path=/headers tls=false status=200 port=80}], got []",
        ],
    )
}

/// external-tcp-service with the mongo entry's STATIC endpoint elsewhere: the sidecar's EDS names
/// that address, nothing answers there, and the connection fails.
pub fn static_endpoint_elsewhere() -> Result<(), Failed> {
    series_fails_with(
        "external-tcp-service",
        "03-serviceentry-mongo.yaml",
        ("  - address: $MONGODB_IP", "  - address: 192.0.2.99"),
        &[
            "stage static-endpoints: sidecar: cluster outbound|27017||my-mongo.tcp.svc: expected present, type EDS, lb_policy LEAST_REQUEST, endpoints [192.0.2.20:27017], got present, type EDS, lb_policy LEAST_REQUEST, endpoints [192.0.2.99:27017]",
            "stage static-endpoints: mongo: exit code: expected 0, got 5",
            "stage static-endpoints: mongo: requests that reached the origin: expected [{host=192.0.2.20 path=/ tls=false status=200 port=27017}], got []",
        ],
    )
}

/// Expectations that cannot hold: an exit code, a header, a listener, a virtual host's domains,
/// a counter and an excluded line, each wrong in the suite rather than in the mesh.
pub fn wrong_expectations() -> Result<(), Failed> {
    let ws = Workspace::new()?;
    ws.edit(
        SUITE,
        "exit_code: 0\n        status_lines:\n          - HTTP/1.1 301 Moved Permanently\n          - {value: HTTP/1.1 200 OK, live_site: varies}\n        through:\n          - {proxy: sidecar, cluster: outbound|80||edition.cnn.com",
        "exit_code: 35\n        status_lines:\n          - HTTP/1.1 301 Moved Permanently\n          - {value: HTTP/1.1 200 OK, live_site: varies}\n        through:\n          - {proxy: sidecar, cluster: outbound|80||edition.cnn.com",
    )?;
    ws.edit(
        SUITE,
        "content-length: {value: 150793, live_site: varies}",
        "content-length: {value: 150000, live_site: varies}",
    )?;
    ws.edit(
        SUITE,
        "listeners: [0.0.0.0_8443]",
        "listeners: [0.0.0.0_443]",
    )?;
    ws.edit(
        SUITE,
        "domains: [edition.cnn.com, edition.cnn.com.]",
        "domains: [edition.cnn.com]",
    )?;
    ws.edit(
        SUITE,
        "{proxy: egress-gateway, cluster: outbound|443||edition.cnn.com, requests: 0}",
        "{proxy: egress-gateway, cluster: outbound|443||edition.cnn.com, requests: 1}",
    )?;
    ws.edit(
        SUITE,
        "stdout_excludes: [301 Moved Permanently]",
        "stdout_excludes: [200 OK]",
    )?;
    ws.edit(
        SUITE,
        "virtual_hosts: [blackhole:443]",
        "virtual_hosts: [edition.cnn.com:443]",
    )?;
    ws.edit(SUITE, "discovery: EDS", "discovery: STRICT_DNS")?;
    ws.edit(SUITE, "rds: http.8443", "rds: http.443")?;
    ws.edit(
        SUITE,
        "{proxy: sidecar, cluster: outbound|443||edition.cnn.com, requests: 1}",
        "{proxy: sidecar, cluster: outbound|443||edition.cnn.com, requests: 1}\n          - {proxy: sidecar, cluster: outbound|443||no-such-cluster.example, requests: 0}",
    )?;
    fails_with(
        &ws,
        &[
            "stage service-entry: politics: exit code: expected 35, got 0",
            "stage originate-tls: politics: header content-length: expected 150000, got 150793",
            "stage gateway: egress-gateway: listeners: expected [0.0.0.0_443], got [0.0.0.0_8443]",
            "stage gateway: egress-gateway: listener 0.0.0.0_8443: expected RDS http.443 from ADS, got RDS http.8443 from ADS",
            "egress-gateway: route config http.8443: virtual hosts: expected [edition.cnn.com:443], got [blackhole:443]",
            "sidecar: route config 80: virtual host edition.cnn.com:80: expected domains [edition.cnn.com], every route to outbound|80||edition.cnn.com, got domains [edition.cnn.com, edition.cnn.com.], routes to [outbound|80||edition.cnn.com]",
            "cluster outbound|443|cnn|istio-egressgateway.istio-system.svc.cluster.local: expected present, type STRICT_DNS, got present, type EDS",
            "politics: output excludes \"200 OK\": expected no line with \"200 OK\", got HTTP/1.1 200 OK",
            "politics-port-443: requests from egress-gateway to outbound|443||edition.cnn.com: expected 1, got 0",
            "politics-port-443: requests from sidecar to outbound|443||no-such-cluster.example: expected 0, got no counter cluster.outbound|443||no-such-cluster.example.upstream_rq_total on the sidecar",
        ],
    )
}

fn strip_suite_lines(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(" (suite line ") {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(')').map(|e| e + 1).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// REGISTRY_ONLY in real Envoy: the baseline's unknown host gets `block_all`'s 502 instead of
/// passing through, and its TLS connection to 443 goes to BlackHoleCluster.
pub fn registry_only() -> Result<(), Failed> {
    let ws = Workspace::new()?;
    ws.edit(SUITE, "mode: ALLOW_ANY", "mode: REGISTRY_ONLY")?;
    fails_with(
        &ws,
        &[
            "stage baseline: politics: status lines: expected [HTTP/1.1 301 Moved Permanently, HTTP/1.1 200 OK], got [HTTP/1.1 502 Bad Gateway]",
            "stage baseline: politics: requests from sidecar to PassthroughCluster: expected 2, got 0",
            "stage baseline: politics: requests that reached the origin: expected [{host=edition.cnn.com path=/politics tls=false status=301}, {host=edition.cnn.com path=/politics tls=true sni=edition.cnn.com status=200}], got []",
        ],
    )
}

/// A cleanup that forgets one delete leaves residue, and the no-residue check names it.
pub fn residue_is_found() -> Result<(), Failed> {
    let ws = Workspace::new()?;
    ws.edit(
        &format!("{FIXTURES}/05-cleanup.sh"),
        "kubectl delete destinationrule egressgateway-for-cnn\n",
        "",
    )?;
    fails_with(
        &ws,
        &[
            "stage cleanup: no residue: resources as at baseline: expected [], got [DestinationRule default/egressgateway-for-cnn]",
            "no residue: sidecar config as at baseline",
            "outbound|443|cnn|istio-egressgateway.istio-system.svc.cluster.local",
        ],
    )
}

/// Envoy rejecting a config fails that stage with Envoy's own words, and the run stops there.
pub fn envoy_rejects() -> Result<(), Failed> {
    let ws = Workspace::new()?;
    let long_sni = "a".repeat(300);
    ws.edit(
        &format!("{FIXTURES}/04-destinationrule-originate-tls.yaml"),
        "mode: SIMPLE # initiates HTTPS for connections to edition.cnn.com",
        &format!("mode: SIMPLE\n        sni: {long_sni}"),
    )?;
    let run = replay(&[ws.suite().as_os_str()])?;
    let failures = run.failures().join("\n");
    let wanted = [
        "stage originate-tls: kubectl apply -f 04-destinationrule-originate-tls.yaml",
        "rejected the config (type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "Sni: value length must be at most 255 bytes",
        "stage cleanup: not run",
    ];
    for needle in wanted {
        if !failures.contains(needle) {
            return Err(format!("no failure mentions {needle:?}\n{}", run.describe()).into());
        }
    }
    Ok(())
}

/// SIGKILL of `proxy`'s Envoy in the middle of stage `stage`: the run notices at once — it exits
/// 1 within 2 s of the kill, naming the proxy and the signal — marks the later stages not run,
/// and leaves nothing behind.
pub fn proxy_dies(proxy: &'static str, stage: usize) -> Result<(), Failed> {
    use std::io::{BufRead, BufReader};
    let mut command = run_binary()?;
    command.arg(crate::harness::root().join(SUITE));
    let mut child = Running::spawn(&mut command)?;
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let header = format!("-- stage {stage}:");
    let mut seen = Vec::new();
    let mut in_stage = false;
    // The first thing the stage does after its header (a step, a snapshot, a check) is printed
    // as it happens; the kill lands while the rest of the stage is still to come.
    loop {
        let line = lines
            .next()
            .ok_or_else(|| format!("the run ended before stage {stage} began: {seen:#?}"))?
            .map_err(|e| e.to_string())?;
        let acting = in_stage
            && (line.starts_with("$ ")
                || line.starts_with("  snapshot")
                || line.starts_with("  ok"));
        in_stage |= line.starts_with(&header);
        seen.push(line);
        if acting {
            break;
        }
    }
    let pid = envoy_playing(child.0.id(), proxy).ok_or(format!("no {proxy} Envoy child"))?;
    let other = envoy_playing(
        child.0.id(),
        if proxy == "sidecar" {
            "egress-gateway"
        } else {
            "sidecar"
        },
    );
    let run_dir = envoy_run_dir(pid).ok_or("cannot read the Envoy's command line")?;
    // SAFETY: kill(2) of a grandchild we just found; it is alive (it is not a zombie: its
    // parent, the harness, reaps it only after this).
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    // Read on while waiting: a full pipe would block the run.
    let reader = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<String>>());
    let (status, took) = child.wait_at_most(Duration::from_secs(30))?;
    let rest = reader.join().map_err(|_| "the reader panicked")?;
    let stdout = seen.into_iter().chain(rest).collect::<Vec<_>>().join("\n");
    let stderr = child.rest_of_stderr();
    let describe = || format!("exit {status} after {took:?}\n{stdout}\n{stderr}");
    if status.code() != Some(1) {
        return Err(format!("expected exit 1: {}", describe()).into());
    }
    if took > Duration::from_secs(2) {
        return Err(format!(
            "the run took {took:?} after the kill to end: {}",
            describe()
        )
        .into());
    }
    let died = format!("the {proxy} Envoy (pid {pid}) died: killed by SIGKILL");
    if !stdout.contains(&died) {
        return Err(format!("the transcript does not say {died:?}: {}", describe()).into());
    }
    if stage < 5 && !stdout.contains(&format!("not run: the {proxy} Envoy died")) {
        return Err(format!("the later stages are not marked not run: {}", describe()).into());
    }
    if !stdout.contains("nothing left behind") {
        return Err(format!("the clean-up found leftovers: {}", describe()).into());
    }
    if other.is_some_and(|p| !gone(p)) || run_dir.exists() {
        return Err(format!(
            "the other Envoy ({other:?}) or {} outlived the run",
            run_dir.display()
        )
        .into());
    }
    Ok(())
}
