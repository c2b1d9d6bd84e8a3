//! Istio's own validation of the four kinds (istio/istio `pkg/config/validation`, the rules
//! istiod's webhook and `istioctl validate` apply), run on every object before any backend sees
//! it, in Istio's own words. Each finding also carries the path of the field it is about, so the
//! error can name the file, line and column — which Istio's messages do not.
//!
//! The rules are Istio 1.30's and 1.31's for these kinds; where the two differ, the stricter
//! applies (only `warmup.aggression` does). They run in Istio's order, so that the errors, put
//! together the way Istio's multierror puts them ([`Report::istio_message`]), read exactly as
//! the webhook's `configuration is invalid: ...`. Warnings are kept where Istio keeps them and
//! dropped where Istio drops them. Deviations, all about the order or the wording of an error
//! and never about whether there is one:
//! - map entries (labels, headers, endpoint ports) are checked in key order, where Go's order is
//!   random;
//! - a regular expression is checked by the `regex-syntax` crate against Go's RE2 dialect
//!   ([`regex`]); its message names Go's error kind, and the fragment it quotes may differ.
//!
//! Besides, a few rules of the API server's schema (CRD `oneOf`s and ranges), which refuse
//! what Istio's Go code lets through, are checked too ([`schema`]), in their own words.
//!
//! What it does not do: check one object against another, or decide what a control plane can
//! translate.

mod destination_rule;
mod gateway;
mod helpers;
mod regex;
mod schema;
mod service_entry;
mod virtual_service;

#[cfg(test)]
mod corpus;
#[cfg(test)]
mod tests;

use super::object::{IstioObject, Spec};
use crate::yaml::FieldPath;

/// One thing Istio says about a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub path: FieldPath,
    pub message: String,
    /// Made by Go inside a multierror of its own: alone, it still prints as a list.
    pub listed: bool,
}

/// Everything the rules found about one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Report {
    /// What Istio's validation refuses, in its order.
    pub errors: Vec<Finding>,
    /// What Istio accepts with a warning (as `kubectl apply` prints them).
    pub warnings: Vec<Finding>,
    /// What the API server's schema refuses before Istio is asked.
    pub schema: Vec<Finding>,
}

impl Report {
    /// Whether the object is refused.
    pub(crate) fn refused(&self) -> bool {
        !self.errors.is_empty() || !self.schema.is_empty()
    }

    /// The errors as Go's error value prints them: the text after the webhook's
    /// `configuration is invalid: `.
    pub(crate) fn istio_message(&self) -> Option<String> {
        render(&self.errors)
    }

    /// The warnings' messages, one each, as the webhook returns them.
    pub(crate) fn warning_messages(&self) -> Vec<String> {
        self.warnings.iter().map(|w| w.message.clone()).collect()
    }
}

/// hashicorp/go-multierror's rendering of a list of errors: one plain error prints bare, any
/// other list (a lone error made inside a multierror included) as `N errors occurred:`.
pub(crate) fn render(errors: &[Finding]) -> Option<String> {
    match errors {
        [] => None,
        [one] if !one.listed => Some(one.message.clone()),
        [one] => Some(format!("1 error occurred:\n\t* {}\n\n", one.message)),
        many => Some(format!(
            "{} errors occurred:\n\t* {}\n\n",
            many.len(),
            many.iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("\n\t* ")
        )),
    }
}

/// What the rules of one object are told besides the object: the namespace it is applied in
/// when the manifest names none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub namespace: &'a str,
}

/// The findings about `object`, applied in `namespace` unless it names its own.
pub(crate) fn check(object: &IstioObject, namespace: &str) -> Report {
    let namespace = object.namespace.as_deref().unwrap_or(namespace);
    let cx = Context { namespace };
    let mut out = Out::default();
    let spec = FieldPath::default().key("spec");
    if !metadata(&mut out, object, namespace) {
        match &object.spec {
            Spec::ServiceEntry(se) => service_entry::check(&mut out, &spec, se, object, cx),
            Spec::Gateway(gw) => gateway::check(&mut out, &spec, gw, object),
            Spec::VirtualService(vs) => virtual_service::check(&mut out, &spec, vs, object, cx),
            Spec::DestinationRule(dr) => destination_rule::check(&mut out, &spec, dr, cx),
        }
    }
    let mut report = out.report;
    report.schema = schema::check(object);
    report
}

/// The metadata rules Istio runs before any kind's (`validateMetadata`): the first that fires is
/// the only error. True when one did.
fn metadata(out: &mut Out, object: &IstioObject, namespace: &str) -> bool {
    let Some(name) = [
        // Only an AuthorizationPolicy may carry it.
        "istio.io/dry-run",
        "internal.istio.io/webhook-always-reject",
        "internal.istio.io/parent-namespace",
        "internal.istio.io/parents",
    ]
    .into_iter()
    .find(|n| object.annotations.contains_key(*n)) else {
        return false;
    };
    let message = match name {
        "istio.io/dry-run" => format!(
            "{namespace}/{} has unsupported annotation istio.io/dry-run, please remove the annotation",
            object.name
        ),
        "internal.istio.io/webhook-always-reject" => {
            format!("{name:?} annotation found, rejecting")
        }
        _ => format!("{name:?} annotation found, this may not be set by users"),
    };
    let at = FieldPath::default()
        .key("metadata")
        .key("annotations")
        .key(name);
    out.error(&at, message);
    true
}

/// Where the rules write what they find; warnings can be dropped for a while, as Go's
/// `appendErrors` drops them.
#[derive(Default)]
pub(crate) struct Out {
    report: Report,
    dropping_warnings: u32,
}

impl Out {
    pub(crate) fn error(&mut self, at: &FieldPath, message: impl Into<String>) {
        self.report.errors.push(Finding {
            path: at.clone(),
            message: message.into(),
            listed: false,
        });
    }

    /// An error Go makes inside a multierror of its own (`multierror.Append(nil, ...)`).
    pub(crate) fn listed(&mut self, at: &FieldPath, message: impl Into<String>) {
        self.report.errors.push(Finding {
            path: at.clone(),
            message: message.into(),
            listed: true,
        });
    }

    pub(crate) fn warning(&mut self, at: &FieldPath, message: impl Into<String>) {
        if self.dropping_warnings == 0 {
            self.report.warnings.push(Finding {
                path: at.clone(),
                message: message.into(),
                listed: false,
            });
        }
    }

    pub(crate) fn check(&mut self, at: &FieldPath, result: Result<(), String>) {
        if let Err(message) = result {
            self.error(at, message);
        }
    }

    /// Run `rules`, keeping their errors and dropping their warnings (Go's `appendErrors`).
    pub(crate) fn errors_only<R>(&mut self, rules: impl FnOnce(&mut Out) -> R) -> R {
        self.dropping_warnings += 1;
        let result = rules(self);
        self.dropping_warnings -= 1;
        result
    }

    /// How many errors so far (to tell whether a part of the rules found any).
    pub(crate) fn error_count(&self) -> usize {
        self.report.errors.len()
    }
}
