//! Running curl on this machine, where the sleep pod would run it (`crate::local_network` says
//! with which flags), and the hosts and ports a command's URLs name.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use crate::observe::CommandOutput;

/// How long one command may take: far more than any stage needs, so a hang still ends the run.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// `(host, port)` pairs a URL argument names, with the scheme's default port.
pub(crate) fn url_targets(argv: &[String]) -> BTreeSet<(String, u32)> {
    argv.iter()
        .filter_map(|arg| {
            let (default_port, rest) = if let Some(rest) = arg.strip_prefix("http://") {
                (80, rest)
            } else if let Some(rest) = arg.strip_prefix("https://") {
                (443, rest)
            } else {
                return None;
            };
            let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().ok()?),
                None => (authority, default_port),
            };
            Some((host.to_ascii_lowercase(), port))
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CurlError {
    #[error("cannot run curl ({0}); install curl (e.g. `apt-get install curl`)")]
    Spawn(std::io::Error),
    #[error("curl did not finish within {0:?}")]
    Timeout(Duration),
    #[error("waiting for curl: {0}")]
    Wait(std::io::Error),
}

/// `curl --version` answers: curl is there to play the sleep pod's client.
pub(crate) async fn check_available() -> Result<(), CurlError> {
    let output = tokio::process::Command::new("curl")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(CurlError::Spawn)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(CurlError::Spawn(std::io::Error::other(format!(
            "`curl --version` failed: {}",
            output.status
        ))))
    }
}

/// What starts the line curl writes last on stderr: its own measure of the transfer.
const TIMING_MARKER: &str = "egress-conformance-time-total ";

/// curl's own `time_total`, asked for on stderr, unless the command writes its own `-w`: the
/// time a process takes to start (much of it, on a loaded machine) is no part of what a
/// tutorial's duration is about, and a local run multiplies what it measures by its time scale.
fn timing_args(argv: &[String]) -> Vec<String> {
    let writes_out = argv.iter().any(|a| {
        a.starts_with("--write-out")
            || (!a.starts_with("--") && a.starts_with('-') && a.contains('w'))
    });
    if writes_out {
        return Vec::new();
    }
    vec![
        "--write-out".into(),
        format!("%{{stderr}}\n{TIMING_MARKER}%{{time_total}}\n"),
    ]
}

/// Takes curl's timing line out of `stderr`, returning the time it gives.
fn take_timing(stderr: &mut String) -> Option<Duration> {
    let at = stderr.rfind(TIMING_MARKER)?;
    let seconds: f64 = stderr[at + TIMING_MARKER.len()..].trim().parse().ok()?;
    // The newline written before the marker, so that the marker starts a line.
    let start = if stderr[..at].ends_with('\n') {
        at - 1
    } else {
        at
    };
    stderr.truncate(start);
    Duration::try_from_secs_f64(seconds).ok()
}

pub(crate) async fn run(argv: &[String]) -> Result<CommandOutput, CurlError> {
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .args(timing_args(argv))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(CurlError::Spawn)?;
    let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| CurlError::Timeout(COMMAND_TIMEOUT))?
        .map_err(CurlError::Wait)?;
    let mut stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let took = take_timing(&mut stderr);
    Ok(CommandOutput {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr,
        exit_code: output.status.code().unwrap_or(-1),
        took,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn curls_own_timing_is_taken_out_of_stderr() {
        let mut quiet = "\negress-conformance-time-total 0.153802\n".to_string();
        assert_eq!(
            super::take_timing(&mut quiet),
            Some(super::Duration::from_micros(153_802))
        );
        assert_eq!(quiet, "");
        let mut failed =
            "curl: (35) wrong version number\n\negress-conformance-time-total 0.01\n".to_string();
        assert_eq!(
            super::take_timing(&mut failed),
            Some(super::Duration::from_millis(10))
        );
        assert_eq!(failed, "curl: (35) wrong version number\n");
        let mut none = "curl: (7) refused\n".to_string();
        assert_eq!(super::take_timing(&mut none), None);
        assert_eq!(none, "curl: (7) refused\n");
    }

    #[test]
    fn a_command_with_its_own_write_out_is_left_alone() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(
            super::timing_args(&argv(&["curl", "-sS", "-w", "%{http_code}", "http://a/"]))
                .is_empty()
        );
        assert!(
            super::timing_args(&argv(&["curl", "--write-out=%{http_code}", "http://a/"]))
                .is_empty()
        );
        assert!(
            super::timing_args(&argv(&["curl", "-sSw", "%{http_code}", "http://a/"])).is_empty()
        );
        assert_eq!(
            super::timing_args(&argv(&["curl", "-sSL", "-o", "/dev/null", "http://a/"])).len(),
            2
        );
    }

    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn finds_hosts_and_ports_of_urls() {
        let targets = url_targets(&args(
            "curl -sL -o /dev/null -D - http://edition.cnn.com:443/politics https://Example.com?q",
        ));
        assert_eq!(
            targets.into_iter().collect::<Vec<_>>(),
            [
                ("edition.cnn.com".to_string(), 443),
                ("example.com".to_string(), 443)
            ]
        );
        assert_eq!(
            url_targets(&args("curl http://edition.cnn.com/politics"))
                .into_iter()
                .collect::<Vec<_>>(),
            [("edition.cnn.com".to_string(), 80)]
        );
    }
}
