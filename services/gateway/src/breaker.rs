//! A circuit breaker per service: after a run of failures the gateway stops calling a service
//! for a cool-down, answering at once that it is unavailable, instead of making every page wait
//! for timeouts and piling more load on a service that is already struggling. After the
//! cool-down one trial call goes through: its success closes the circuit, its failure opens it
//! again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Calls go through; `failures` in a row so far.
    Closed { failures: u32 },
    /// Calls are refused until `until`.
    Open { until: Instant },
    /// One trial call is in flight since `since`; others are refused meanwhile.
    HalfOpen { since: Instant },
}

/// The breaker of one service.
#[derive(Debug)]
pub struct CircuitBreaker {
    state: Mutex<State>,
    threshold: u32,
    cool_down: Duration,
}

/// A call refused because the circuit is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    /// When a trial call will be let through.
    pub retry_after: Duration,
}

impl CircuitBreaker {
    /// A closed breaker that opens after `threshold` failures in a row, for `cool_down`.
    #[must_use]
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold: threshold.max(1),
            cool_down,
        }
    }

    /// Asks to make one call. `Err` when the circuit is open (or a trial is in flight).
    ///
    /// # Errors
    /// [`Open`] with the time left before a trial.
    pub fn permit(&self) -> Result<(), Open> {
        let now = Instant::now();
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if now < until => Err(Open {
                retry_after: until - now,
            }),
            State::Open { .. } => {
                *state = State::HalfOpen { since: now };
                Ok(())
            }
            // A trial whose caller went away without reporting must not block the service
            // forever: after a cool-down, another trial may go.
            State::HalfOpen { since } if now.duration_since(since) >= self.cool_down => {
                *state = State::HalfOpen { since: now };
                Ok(())
            }
            State::HalfOpen { since } => Err(Open {
                retry_after: self.cool_down.saturating_sub(now.duration_since(since)),
            }),
        }
    }

    /// Reports a call that reached the service and got a sound answer.
    pub fn record_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    /// Reports a call that failed on the service's side (unreachable, timed out, 5xx).
    pub fn record_failure(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            State::Closed { .. } | State::HalfOpen { .. } => State::Open {
                until: now + self.cool_down,
            },
            open @ State::Open { .. } => open,
        };
        if matches!(*state, State::Open { .. }) {
            tracing::warn!("circuit opened for {:?}", self.cool_down);
        }
    }

    /// Whether calls are being refused right now (pages use it to say so without waiting).
    #[must_use]
    pub fn is_open(&self) -> bool {
        matches!(*self.lock(), State::Open { until } if Instant::now() < until)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written (each update is
        // one assignment), so a poisoned lock is still sound to use.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_failures_opens_the_circuit() {
        let breaker = CircuitBreaker::new(3, Duration::from_secs(60));
        for _ in 0..2 {
            breaker.permit().expect("closed");
            breaker.record_failure();
        }
        assert!(breaker.permit().is_ok(), "two failures are not enough");
        breaker.record_failure();
        let refused = breaker.permit().expect_err("open after three");
        assert!(refused.retry_after > Duration::from_secs(50));
        assert!(breaker.is_open());
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = CircuitBreaker::new(2, Duration::from_secs(60));
        breaker.record_failure();
        breaker.record_success();
        breaker.record_failure();
        assert!(breaker.permit().is_ok());
    }

    #[test]
    fn after_the_cool_down_one_trial_goes_through_and_its_success_closes_the_circuit() {
        let breaker = CircuitBreaker::new(1, Duration::from_millis(20));
        breaker.record_failure();
        assert!(breaker.permit().is_err());
        std::thread::sleep(Duration::from_millis(30));
        breaker.permit().expect("the trial");
        assert!(breaker.permit().is_err(), "only one trial at a time");
        breaker.record_success();
        assert!(breaker.permit().is_ok());
        assert!(!breaker.is_open());
    }

    #[test]
    fn a_failed_trial_opens_the_circuit_again() {
        let breaker = CircuitBreaker::new(1, Duration::from_millis(20));
        breaker.record_failure();
        std::thread::sleep(Duration::from_millis(30));
        breaker.permit().expect("the trial");
        breaker.record_failure();
        assert!(breaker.permit().is_err());
    }
}
