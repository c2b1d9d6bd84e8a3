//! Waiting for a condition: the one place in the harness that waits in time.
//!
//! A wait is a pure look at the world ([`Look`]), a deadline and what it waits for. It looks,
//! and until the condition holds it pauses — for a fixed interval, or until a change is
//! signalled — and looks again. When the deadline passes, the error says what it waited for, how
//! long, how many times it looked and what it saw last. Nothing else in `src/` sleeps.
//!
//! What it does not do: notice a process dying. Callers race a wait against the death of what
//! they depend on (`crate::process`), so a dead proxy is reported at once, not at the deadline.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// What one look saw.
#[derive(Debug)]
pub(crate) enum Look<T, S = String> {
    /// The condition holds: stop with this value.
    Ready(T),
    /// Not yet; this is what was seen, for the error if time runs out.
    NotYet(S),
}

/// How to wait: what for, how long, and when to look again.
#[derive(Debug, Clone)]
pub(crate) struct Wait {
    what: String,
    timeout: Duration,
    every: Duration,
}

/// A condition that held, and what it took.
#[derive(Debug)]
pub(crate) struct Settled<T> {
    pub value: T,
    pub looks: u32,
    pub waited: Duration,
}

/// The deadline passed before the condition held.
#[derive(Debug, thiserror::Error)]
pub(crate) struct TimedOut<S: fmt::Display> {
    pub what: String,
    pub waited: Duration,
    pub looks: u32,
    pub last_seen: S,
}

impl<S: fmt::Display> fmt::Display for TimedOut<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waited {:.1?} for {}; looked {} time{}, last saw: {}",
            self.waited,
            self.what,
            self.looks,
            if self.looks == 1 { "" } else { "s" },
            self.last_seen
        )
    }
}

/// Why a wait ended without its condition.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WaitError<S: fmt::Display, E> {
    #[error(transparent)]
    TimedOut(TimedOut<S>),
    /// A look itself failed; waiting longer would not help.
    #[error(transparent)]
    Failed(E),
}

/// The pause between looks when none is given.
const DEFAULT_EVERY: Duration = Duration::from_millis(20);

impl Wait {
    pub(crate) fn new(what: impl Into<String>, timeout: Duration) -> Wait {
        Wait {
            what: what.into(),
            timeout,
            every: DEFAULT_EVERY,
        }
    }

    /// Look again after this long (for polls; change-driven waits look on every change).
    pub(crate) fn every(mut self, every: Duration) -> Wait {
        self.every = every;
        self
    }

    /// Look every [`Wait::every`] until the look is ready or the deadline passes. The look may
    /// borrow its caller's state mutably (running a command on a backend it holds); the price
    /// is that this future cannot be sent to another task — [`Wait::on_change`]'s can.
    pub(crate) async fn poll<T, S, E>(
        &self,
        mut look: impl AsyncFnMut() -> Result<Look<T, S>, E>,
    ) -> Result<Settled<T>, WaitError<S, E>>
    where
        S: fmt::Display,
    {
        let mut clock = Clock::start(self);
        loop {
            if let Some(settled) = clock.judge(look().await)? {
                return Ok(settled);
            }
            clock.pause().await;
        }
    }

    /// [`Wait::poll`] for a look whose futures own what they use, so that the wait itself can be
    /// spawned onto another task.
    pub(crate) async fn poll_owned<T, S, E, Fut>(
        &self,
        mut look: impl FnMut() -> Fut,
    ) -> Result<Settled<T>, WaitError<S, E>>
    where
        S: fmt::Display,
        Fut: Future<Output = Result<Look<T, S>, E>>,
    {
        let mut clock = Clock::start(self);
        loop {
            if let Some(settled) = clock.judge(look().await)? {
                return Ok(settled);
            }
            clock.pause().await;
        }
    }

    /// Look, then look again each time `changes` signals a change, until the look is ready or
    /// the deadline passes. A closed channel counts as a change, and then as the last one: the
    /// next look decides.
    pub(crate) async fn on_change<T, S, E, C, Fut>(
        &self,
        changes: &mut watch::Receiver<C>,
        mut look: impl FnMut() -> Fut,
    ) -> Result<Settled<T>, WaitError<S, E>>
    where
        S: fmt::Display,
        Fut: Future<Output = Result<Look<T, S>, E>>,
    {
        let mut clock = Clock::start(self);
        loop {
            // Marked seen before the look, so a change during the look wakes the next pause.
            changes.borrow_and_update();
            if let Some(settled) = clock.judge(look().await)? {
                return Ok(settled);
            }
            clock.changed(changes).await;
        }
    }
}

/// One wait's progress: when it started, its deadline, how often it looked.
struct Clock<'w> {
    wait: &'w Wait,
    started: Instant,
    deadline: Instant,
    looks: u32,
    /// The change channel closed: the look just made was the last.
    closed: bool,
}

impl<'w> Clock<'w> {
    fn start(wait: &'w Wait) -> Clock<'w> {
        let started = Instant::now();
        Clock {
            wait,
            started,
            deadline: started + wait.timeout,
            looks: 0,
            closed: false,
        }
    }

    /// Count a look: `Some` when it is ready, `None` to look again, an error when the deadline
    /// has passed or the look failed.
    fn judge<T, S: fmt::Display, E>(
        &mut self,
        looked: Result<Look<T, S>, E>,
    ) -> Result<Option<Settled<T>>, WaitError<S, E>> {
        self.looks += 1;
        match looked.map_err(WaitError::Failed)? {
            Look::Ready(value) => Ok(Some(Settled {
                value,
                looks: self.looks,
                waited: self.started.elapsed(),
            })),
            Look::NotYet(last_seen) if self.closed || Instant::now() >= self.deadline => {
                Err(WaitError::TimedOut(TimedOut {
                    what: self.wait.what.clone(),
                    waited: self.started.elapsed(),
                    looks: self.looks,
                    last_seen,
                }))
            }
            Look::NotYet(_) => Ok(None),
        }
    }

    /// Until the next look, never past the deadline: the last look happens at it.
    async fn pause(&self) {
        tokio::time::sleep_until((Instant::now() + self.wait.every).min(self.deadline)).await;
    }

    async fn changed<C>(&mut self, changes: &mut watch::Receiver<C>) {
        if let Ok(Err(_)) = tokio::time::timeout_at(self.deadline, changes.changed()).await {
            self.closed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test]
    async fn a_poll_returns_the_value_once_the_condition_holds() {
        let count = Cell::new(0);
        let settled = Wait::new("the third look", Duration::from_secs(5))
            .every(Duration::from_millis(1))
            .poll(|| {
                count.set(count.get() + 1);
                let n = count.get();
                async move {
                    Ok::<_, ()>(if n == 3 {
                        Look::Ready(n)
                    } else {
                        Look::NotYet(format!("look {n}"))
                    })
                }
            })
            .await
            .unwrap();
        assert_eq!((settled.value, settled.looks), (3, 3));
    }

    #[tokio::test]
    async fn a_timeout_says_what_it_waited_for_how_often_it_looked_and_what_it_saw_last() {
        let count = Cell::new(0);
        let error = Wait::new("the moon", Duration::from_millis(30))
            .every(Duration::from_millis(5))
            .poll(|| {
                count.set(count.get() + 1);
                let n = count.get();
                async move { Ok::<Look<(), String>, ()>(Look::NotYet(format!("look {n}"))) }
            })
            .await
            .unwrap_err();
        let WaitError::TimedOut(timed_out) = error else {
            panic!("expected a timeout");
        };
        assert!(timed_out.looks >= 2, "{timed_out}");
        assert_eq!(timed_out.last_seen, format!("look {}", count.get()));
        let text = timed_out.to_string();
        assert!(
            text.contains("for the moon")
                && text.contains(&format!("looked {} times", count.get())),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_failed_look_ends_the_wait_at_once() {
        let error = Wait::new("anything", Duration::from_secs(5))
            .poll(|| async { Err::<Look<(), String>, _>("broken") })
            .await
            .unwrap_err();
        assert!(matches!(error, WaitError::Failed("broken")));
    }

    #[tokio::test]
    async fn a_change_driven_wait_looks_again_on_every_change() {
        let (sender, mut receiver) = watch::channel(0u32);
        let waiter = tokio::spawn(async move {
            Wait::new("the value 3", Duration::from_secs(5))
                .on_change(&mut receiver.clone(), || {
                    let value = *receiver.borrow_and_update();
                    async move {
                        Ok::<_, ()>(if value == 3 {
                            Look::Ready(value)
                        } else {
                            Look::NotYet(value.to_string())
                        })
                    }
                })
                .await
        });
        for v in 1..=3 {
            sender.send_replace(v);
            tokio::task::yield_now().await;
        }
        let settled = waiter.await.unwrap().unwrap();
        assert_eq!(settled.value, 3);
    }

    #[tokio::test]
    async fn a_change_driven_wait_times_out_with_what_it_saw() {
        let (_sender, mut receiver) = watch::channel(7u32);
        let error = Wait::new("the value 3", Duration::from_millis(20))
            .on_change(&mut receiver, || async {
                Ok::<Look<(), String>, ()>(Look::NotYet("7".into()))
            })
            .await
            .unwrap_err();
        let WaitError::TimedOut(t) = error else {
            panic!()
        };
        // One look at the start, one at the deadline.
        assert_eq!((t.looks, t.last_seen.as_str()), (2, "7"));
    }
}
