//! The harness's verdict on one manifest, as one value: accepted (with Istio's warnings) or
//! refused, by what, in whose words. For tests that hold the harness against Istio itself (the
//! validation corpus under `tests/validation-corpus/`, and runs of the same corpus through
//! istiod).

use std::path::Path;

use super::parse::{DEFAULT_NAMESPACE, ManifestError, parse_manifests_in};

/// What refused a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusedBy {
    /// Reading it: not a file, not UTF-8, not YAML, an unknown kind or field, a value of the
    /// wrong type or an enum's unknown name (what the API server's decoding and Istio's decoding
    /// refuse).
    Decoding,
    /// The API server's schema, in a rule Istio's validation does not have.
    Schema,
    /// Istio's validation.
    Istio,
}

/// The harness's verdict on a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Accepted, with Istio's warnings (their messages, as the webhook returns them).
    Accepted { warnings: Vec<String> },
    /// Refused. For [`RefusedBy::Istio`], `message` is Istio's error as its webhook prints it
    /// after `configuration is invalid: `; otherwise it is the harness's own message.
    Refused { by: RefusedBy, message: String },
}

/// The verdict on the manifest in `file`, applied in the `default` namespace unless it names its
/// own.
pub(crate) fn verdict(file: &Path) -> Verdict {
    match crate::input::read_text(file, file) {
        Ok(text) => verdict_of(file, &text),
        Err(error) => Verdict::Refused {
            by: RefusedBy::Decoding,
            message: error.to_string(),
        },
    }
}

/// The verdict on `text`, read from `file`.
pub(crate) fn verdict_of(file: &Path, text: &str) -> Verdict {
    match parse_manifests_in(file, text, DEFAULT_NAMESPACE) {
        Ok(objects) => Verdict::Accepted {
            warnings: objects
                .iter()
                .flat_map(|o| {
                    let report = super::validate::check(o, DEFAULT_NAMESPACE);
                    report.warning_messages()
                })
                .collect(),
        },
        Err(ManifestError::Invalid {
            report, message, ..
        }) => match report.istio_message() {
            Some(istio) => Verdict::Refused {
                by: RefusedBy::Istio,
                message: istio,
            },
            None => Verdict::Refused {
                by: RefusedBy::Schema,
                message,
            },
        },
        Err(other) => Verdict::Refused {
            by: RefusedBy::Decoding,
            message: other.to_string(),
        },
    }
}
