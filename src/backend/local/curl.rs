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

pub(crate) async fn run(argv: &[String]) -> Result<CommandOutput, CurlError> {
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(CurlError::Spawn)?;
    let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| CurlError::Timeout(COMMAND_TIMEOUT))?
        .map_err(CurlError::Wait)?;
    Ok(CommandOutput {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        exit_code: output.status.code().unwrap_or(-1),
    })
}

#[cfg(test)]
mod tests {
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
