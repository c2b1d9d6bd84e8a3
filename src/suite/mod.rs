//! Suites: a tutorial's stages and expectations as data (see the README's "Suite format").

mod load;
mod model;

pub use load::{SuiteError, discover, load_suite, parse_suite};
pub use model::*;
