//! Suites: a tutorial's stages and expectations as data (see the README's "Suite format").

mod command;
mod confine;
mod kubectl;
mod load;
mod model;
mod origin;
pub(crate) mod vars;

pub(crate) use confine::LoadOptions;
pub(crate) use load::{SuiteError, discover, load_suite};
pub use model::*;
