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

/// The API's messages and enums, as one listing in the proto's order (a muncher over items).
/// Messages: every field optional (proto3), unknown fields refused, camelCase names as the CRDs
/// and `kubectl` have them; fields are listed several to a line, like the proto. Enums: written
/// by their names only, as the CRDs' schemas have them.
macro_rules! api {
    () => {};
    ($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* } $($rest:tt)*) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
        #[serde(default, deny_unknown_fields, rename_all = "camelCase", expecting = "a mapping")]
        pub(crate) struct $name { $($body)* }

        $crate::istio::api::api! { $($rest)* }
    };
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }
        $($rest:tt)*
    ) => {
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

        $crate::istio::api::api! { $($rest)* }
    };
}
pub(crate) use api;
