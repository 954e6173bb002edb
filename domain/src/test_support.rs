//! Helpers for the aggregate tests: fixed instants and the reload-after-commit check.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;

/// A fixed instant, `minute` minutes after noon on 2025-01-15 UTC, so events compare equal.
pub fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 15, 12, minute, 0)
        .single()
        .expect("a valid fixed date")
}

/// Runs `command` on the aggregate built from `given`, then rebuilds a second aggregate from
/// `given` plus the emitted events, as a repository would after the commit. Returns both with
/// the emitted events; callers assert the two aggregates are equal.
pub fn handle_then_reload<A>(given: Vec<A::Event>, command: A::Command) -> (A, A, Vec<A::Event>)
where
    A: Aggregate<Services = ()>,
    A::Error: std::fmt::Debug,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds");
    let mut handled = A::default();
    for event in given.iter().cloned() {
        handled.apply(event);
    }
    let sink = EventSink::default();
    runtime
        .block_on(handled.handle(command, &(), &sink))
        .expect("the command succeeds");
    let emitted = runtime.block_on(sink.collect());

    let mut reloaded = A::default();
    for event in given.into_iter().chain(emitted.iter().cloned()) {
        reloaded.apply(event);
    }
    (handled, reloaded, emitted)
}
