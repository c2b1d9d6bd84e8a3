//! egress-conformance
