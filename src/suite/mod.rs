//! Suites: a tutorial's stages and expectations as data (see the README's "Suite format").

mod load;
mod model;
pub(crate) mod vars;

pub(crate) use load::{SuiteError, discover, load_suite};
pub use model::*;
