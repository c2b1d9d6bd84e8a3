//! The Istio networking API for the four kinds, as `networking.istio.io` defines it
//! (istio.io/api, networking/v1alpha3): one typed model per kind, the single source of truth of
//! what a manifest may say. Every field of the API is here, so a real field is never taken for a
//! typo and a typo never passes; a field the builtin control plane does not translate is
//! [`Untranslated`], which every other control plane takes as written.
//!
//! What it does not do: check values against Istio's rules (that is `super::validate`), or know
//! what any field means to Envoy (that is `crate::translate`).

mod common;
mod destination_rule;
mod gateway;
mod service_entry;
mod virtual_service;

pub(crate) use common::*;
pub(crate) use destination_rule::*;
pub(crate) use gateway::*;
pub(crate) use service_entry::*;
pub(crate) use virtual_service::*;

pub(crate) use crate::yaml::Untranslated;

/// A message of the API: every field optional (proto3), unknown fields refused, camelCase names
/// as the CRDs and `kubectl` have them.
macro_rules! message {
    ($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
        #[serde(default, deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
        pub(crate) struct $name { $($body)* }
    };
}
pub(crate) use message;

/// A proto enum, written by its names only (as the CRDs' schemas have it).
macro_rules! proto_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Deserialize)]
        pub(crate) enum $name {
            #[default]
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub(crate) fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}
pub(crate) use proto_enum;
