//! `kubectl exec $SOURCE_POD -c sleep -- <argv>` through the API: a websocket exec with stdout
//! and stderr attached and no tty, both streams read to the end, the exit code taken from the
//! `Status` the API server sends on the status channel.
//!
//! It does not find the pod (see `cluster::running_pod`) nor judge the output.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Client;
use kube::api::{Api, AttachParams};
use tokio::io::AsyncReadExt;

use crate::observe::CommandOutput;

/// The container the tutorial's commands run in.
pub const CLIENT_CONTAINER: &str = "sleep";
/// Big enough that neither stream stalls the other while both are drained.
const STREAM_BUFFER: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("exec in pod {namespace}/{pod}: {message}")]
    Start {
        namespace: String,
        pod: String,
        message: String,
    },
    #[error("reading the command's {stream}: {source}")]
    Read {
        stream: &'static str,
        source: std::io::Error,
    },
    #[error("the command did not finish within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Status(#[from] ExitStatusError),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExitStatusError {
    #[error("the exec stream ended without a status")]
    Missing,
    #[error("the command failed without an exit code: {reason}: {message}")]
    NoExitCode { reason: String, message: String },
    #[error("the exit code {text:?} in the status is not a number")]
    BadExitCode { text: String },
}

/// The exit code an exec's final `Status` reports: `Success` is 0; a `NonZeroExitCode` failure
/// carries the code as the message of its `ExitCode` cause; any other failure (the container
/// not found, the runtime refusing) has none.
pub fn exit_code(status: Option<&Status>) -> Result<i32, ExitStatusError> {
    let status = status.ok_or(ExitStatusError::Missing)?;
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let reason = status.reason.clone().unwrap_or_default();
    let cause = status
        .details
        .iter()
        .flat_map(|d| d.causes.iter().flatten())
        .find(|c| c.reason.as_deref() == Some("ExitCode"));
    match cause {
        Some(cause) if reason == "NonZeroExitCode" || reason.is_empty() => {
            let text = cause.message.clone().unwrap_or_default();
            text.trim()
                .parse()
                .map_err(|_| ExitStatusError::BadExitCode { text })
        }
        _ => Err(ExitStatusError::NoExitCode {
            reason,
            message: status.message.clone().unwrap_or_default(),
        }),
    }
}

/// Runs `argv` in `container` of `pod` and collects stdout, stderr and the exit code.
pub async fn exec(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: &str,
    argv: &[String],
    timeout: Duration,
) -> Result<CommandOutput, ExecError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(true)
        .tty(false)
        .max_stdout_buf_size(STREAM_BUFFER)
        .max_stderr_buf_size(STREAM_BUFFER);
    let mut attached =
        api.exec(pod, argv.to_vec(), &params)
            .await
            .map_err(|e| ExecError::Start {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                message: super::cluster::api_message(&e),
            })?;
    let (Some(mut stdout), Some(mut stderr), Some(status)) =
        (attached.stdout(), attached.stderr(), attached.take_status())
    else {
        attached.abort();
        return Err(ExecError::Start {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            message: "kube attached no stdout, stderr or status stream".into(),
        });
    };
    let collect = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (o, e, status) = tokio::join!(
            stdout.read_to_end(&mut out),
            stderr.read_to_end(&mut err),
            status
        );
        o.map_err(|source| ExecError::Read {
            stream: "stdout",
            source,
        })?;
        e.map_err(|source| ExecError::Read {
            stream: "stderr",
            source,
        })?;
        Ok::<_, ExecError>((out, err, status))
    };
    let outcome = tokio::time::timeout(timeout, collect).await;
    let (out, err, status) = match outcome {
        Ok(result) => result?,
        Err(_) => {
            attached.abort();
            return Err(ExecError::Timeout(timeout));
        }
    };
    let exit_code = exit_code(status.as_ref())?;
    // The streams are drained and the status is in: nothing is left for the task to deliver,
    // and waiting for the server to close the websocket could only hang.
    attached.abort();
    Ok(CommandOutput {
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
        exit_code,
        // The tutorial's command runs unchanged in the pod: the exec round trip is timed.
        took: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    fn failure(reason: &str, message: &str, causes: Vec<StatusCause>) -> Status {
        Status {
            status: Some("Failure".into()),
            message: Some(message.into()),
            reason: Some(reason.into()),
            details: Some(StatusDetails {
                causes: Some(causes),
                ..StatusDetails::default()
            }),
            ..Status::default()
        }
    }

    #[test]
    fn success_is_zero() {
        let status = Status {
            status: Some("Success".into()),
            ..Status::default()
        };
        assert_eq!(exit_code(Some(&status)), Ok(0));
    }

    #[test]
    fn non_zero_exit_code_comes_from_the_exit_code_cause() {
        // As the API server sends it for `curl` exiting 35.
        let status: Status = serde_json::from_value(serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command [curl -sL ...], exit code 35",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "35"}]}
        }))
        .unwrap();
        assert_eq!(exit_code(Some(&status)), Ok(35));
    }

    #[test]
    fn a_failure_without_an_exit_code_is_an_error() {
        let status = failure(
            "InternalError",
            "container sleep not found in pod sleep-1",
            vec![],
        );
        assert_eq!(
            exit_code(Some(&status)),
            Err(ExitStatusError::NoExitCode {
                reason: "InternalError".into(),
                message: "container sleep not found in pod sleep-1".into()
            })
        );
        assert_eq!(exit_code(None), Err(ExitStatusError::Missing));
    }

    #[test]
    fn a_garbled_exit_code_is_an_error() {
        let status = failure(
            "NonZeroExitCode",
            "exit",
            vec![StatusCause {
                reason: Some("ExitCode".into()),
                message: Some("thirty-five".into()),
                field: None,
            }],
        );
        assert!(matches!(
            exit_code(Some(&status)),
            Err(ExitStatusError::BadExitCode { .. })
        ));
    }
}
