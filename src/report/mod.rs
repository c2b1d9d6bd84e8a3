//! Reporting: consumers of the runner's events. They execute nothing; each writes to any
//! `impl Write`, so what they print is testable.

mod events;
mod junit;
mod transcript;

pub use events::{Event, Reporter};
pub use junit::Junit;
pub use transcript::Transcript;

/// Sends every event to several reporters.
pub struct Tee<'a>(pub Vec<&'a mut dyn Reporter>);

impl Reporter for Tee<'_> {
    fn report(&mut self, event: &Event) {
        for r in self.0.iter_mut() {
            r.report(event);
        }
    }
}
