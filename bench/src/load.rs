//! Open-loop load: requests leave at a fixed rate whether or not earlier ones have been
//! answered, so a slow system cannot slow the load down and hide its own latency (the
//! "coordinated omission" of closed-loop generators). Each latency is measured from the
//! moment its request was *due*, so a generator that falls behind counts against the system
//! rather than disappearing.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

/// The resolution of tokio's timers.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// What one open-loop run did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Requests due in the run.
    pub due: u64,
    pub ok: u64,
    pub errors: u64,
    /// Due but not sent because `max_in_flight` requests were already waiting: the system
    /// was not keeping up.
    pub shed: u64,
    /// Latencies of the successful requests, in milliseconds from their due time.
    pub latencies_ms: Vec<f64>,
    /// How late each request was sent, in milliseconds after its due time: the generator's
    /// own lateness, counted in the latencies (a generator held up by the system must not
    /// hide it), shown apart so that it is not mistaken for the system's.
    pub sent_late_ms: Vec<f64>,
    /// From the first due time to the last answer.
    pub elapsed: Duration,
    pub max_in_flight: usize,
    /// A few error messages, for the log.
    pub sample_errors: Vec<String>,
}

impl Outcome {
    /// Successful requests per second over the run.
    #[must_use]
    pub fn achieved_rate(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let ok = self.ok as f64;
        ok / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `request(i)` at `rate` per second for `duration`, at most `max_in_flight` at once.
/// `request` returns whether it succeeded (and may record anything it wants on its own).
pub async fn open_loop<F, Fut>(
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
    request: F,
) -> Outcome
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let due_total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let start = Instant::now();
    let mut outcome = Outcome {
        due: due_total,
        ..Outcome::default()
    };
    let mut tasks: JoinSet<(Result<(), String>, f64)> = JoinSet::new();
    let collect = |outcome: &mut Outcome, result: (Result<(), String>, f64)| match result.0 {
        Ok(()) => {
            outcome.ok += 1;
            outcome.latencies_ms.push(result.1);
        }
        Err(error) => {
            outcome.errors += 1;
            if outcome.sample_errors.len() < 5 {
                outcome.sample_errors.push(error);
            }
        }
    };
    for i in 0..due_total {
        #[allow(clippy::cast_possible_truncation)]
        let due = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
        let now = Instant::now();
        if due > now {
            // tokio's timers fire on whole milliseconds, up to one late (0.5 ms on average was
            // counted as the system's latency): sleep to within a tick of the due time, then
            // yield until it comes.
            if let Some(early) = due.checked_sub(TIMER_TICK).filter(|early| *early > now) {
                tokio::time::sleep_until(early.into()).await;
            }
            while Instant::now() < due {
                tokio::task::yield_now().await;
            }
        }
        while let Some(done) = tasks.try_join_next() {
            if let Ok(result) = done {
                collect(&mut outcome, result);
            }
        }
        if tasks.len() >= max_in_flight {
            outcome.shed += 1;
            continue;
        }
        outcome
            .sent_late_ms
            .push(due.elapsed().as_secs_f64() * 1000.0);
        let future = request(i);
        tasks.spawn(async move {
            let result = future.await;
            (result, due.elapsed().as_secs_f64() * 1000.0)
        });
        outcome.max_in_flight = outcome.max_in_flight.max(tasks.len());
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(result) = done {
            collect(&mut outcome, result);
        }
    }
    outcome.elapsed = start.elapsed();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_leave_on_schedule_whatever_the_answers_take() {
        // Each request takes 200 ms; at 50/s for 0.2 s, a closed loop of one would send one.
        let outcome = open_loop(50.0, Duration::from_millis(200), 100, |_| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(())
        })
        .await;
        assert_eq!(outcome.due, 10);
        assert_eq!(outcome.ok, 10);
        assert!(outcome.max_in_flight > 1);
    }
}
