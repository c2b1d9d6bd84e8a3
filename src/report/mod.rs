//! Reporting: consumers of the runner's events. They execute nothing; each writes to any
//! `impl Write`, so what they print is testable.

mod events;
mod junit;
mod transcript;

pub use events::{Event, Reporter};
pub(crate) use junit::Junit;
pub(crate) use transcript::Transcript;
