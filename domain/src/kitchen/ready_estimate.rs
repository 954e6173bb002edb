//! The `ReadyEstimate` aggregate: the kitchen's running quote of when one order's ticket will
//! be ready (aggregate id = order id, like the ticket).
//!
//! Kept apart from the [`Ticket`](super::Ticket) on purpose: a quote is the system's guess,
//! not something that happened to the food. On the ticket it would interleave with the chefs'
//! steps (and race with them for the ticket's next sequence, turning a chef's tap into a
//! conflict), and it would fill the order's kitchen history with guesses. Here it has its own
//! stream, `kitchen.estimate.*`, with the same guarantees (outbox, in order per order, applied
//! once) for whoever wants it.
//!
//! A quote is recorded only when it moves the last one by [`ReadyEstimate::MIN_CHANGE_SECS`]
//! or more: that is the rate limit on what the orders service and dispatch react to.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{EstimateCommand, EstimateError, EstimateEvent};

/// The quotes of one order. `ReadyEstimate::default()` has never been quoted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyEstimate {
    order_id: Option<Uuid>,
    ready_at: Option<DateTime<Utc>>,
    quoted_at: Option<DateTime<Utc>>,
}

impl ReadyEstimate {
    /// A new quote is recorded only when it moves the last one by at least this much.
    pub const MIN_CHANGE_SECS: i64 = 120;
    /// A quote may be this far before the instant it is made (a line finishing right now,
    /// rounded down) without being refused as nonsense.
    pub const PAST_TOLERANCE_SECS: i64 = 60;

    pub fn order_id(&self) -> Option<Uuid> {
        self.order_id
    }

    /// The last quote.
    pub fn ready_at(&self) -> Option<DateTime<Utc>> {
        self.ready_at
    }

    /// When the last quote was made.
    pub fn quoted_at(&self) -> Option<DateTime<Utc>> {
        self.quoted_at
    }

    fn decide(&self, command: EstimateCommand) -> Result<Vec<EstimateEvent>, EstimateError> {
        match command {
            EstimateCommand::Quote {
                order_id,
                ready_at,
                at,
            } => {
                if (at - ready_at).num_seconds() > Self::PAST_TOLERANCE_SECS {
                    return Err(EstimateError::ReadyBeforeQuote);
                }
                let moved = self.ready_at.is_none_or(|last| {
                    (ready_at - last).num_seconds().abs() >= Self::MIN_CHANGE_SECS
                });
                Ok(if moved {
                    vec![EstimateEvent::TicketEstimated {
                        order_id,
                        ready_at,
                        at,
                    }]
                } else {
                    Vec::new()
                })
            }
        }
    }
}

impl Aggregate for ReadyEstimate {
    const TYPE: &'static str = "estimate";
    type Command = EstimateCommand;
    type Event = EstimateEvent;
    type Error = EstimateError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            EstimateEvent::TicketEstimated {
                order_id,
                ready_at,
                at,
            } => {
                self.order_id = Some(order_id);
                self.ready_at = Some(ready_at);
                self.quoted_at = Some(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use cqrs_es::DomainEvent;

    use super::*;
    use crate::test_support::{at, handle_then_reload};

    type EstimateTest = TestFramework<ReadyEstimate>;

    const ORDER: Uuid = Uuid::from_u128(1);

    fn quote(ready_minute: u32, minute: u32) -> EstimateCommand {
        EstimateCommand::Quote {
            order_id: ORDER,
            ready_at: at(ready_minute),
            at: at(minute),
        }
    }

    fn estimated(ready_minute: u32, minute: u32) -> EstimateEvent {
        EstimateEvent::TicketEstimated {
            order_id: ORDER,
            ready_at: at(ready_minute),
            at: at(minute),
        }
    }

    #[test]
    fn the_first_quote_is_recorded() {
        EstimateTest::with(())
            .given_no_previous_events()
            .when(quote(20, 1))
            .then_expect_events(vec![estimated(20, 1)]);
    }

    #[test]
    fn a_quote_is_recorded_again_only_when_it_moves_two_minutes() {
        EstimateTest::with(())
            .given(vec![estimated(20, 1)])
            .when(quote(21, 2))
            .then_expect_events(vec![]);
        EstimateTest::with(())
            .given(vec![estimated(20, 1)])
            .when(quote(22, 2))
            .then_expect_events(vec![estimated(22, 2)]);
        EstimateTest::with(())
            .given(vec![estimated(20, 1)])
            .when(quote(18, 2))
            .then_expect_events(vec![estimated(18, 2)]);
    }

    #[test]
    fn a_quote_cannot_be_in_the_past() {
        EstimateTest::with(())
            .given_no_previous_events()
            .when(quote(3, 5))
            .then_expect_error(EstimateError::ReadyBeforeQuote);
        // A line finishing now, rounded down to the second: allowed.
        EstimateTest::with(())
            .given_no_previous_events()
            .when(quote(5, 5))
            .then_expect_events(vec![estimated(5, 5)]);
    }

    #[test]
    fn the_last_quote_is_kept() {
        let (handled, reloaded, emitted) =
            handle_then_reload::<ReadyEstimate>(vec![estimated(20, 1)], quote(25, 3));
        assert_eq!(emitted, vec![estimated(25, 3)]);
        assert_eq!(handled, reloaded);
        assert_eq!(handled.ready_at(), Some(at(25)));
        assert_eq!(handled.quoted_at(), Some(at(3)));
        assert_eq!(handled.order_id(), Some(ORDER));
        assert_eq!(ReadyEstimate::default().ready_at(), None);
    }

    #[test]
    fn quotes_name_their_type_and_subject() {
        let event = estimated(20, 1);
        assert_eq!(event.event_type(), "TicketEstimated");
        assert_eq!(event.subject_suffix(), "ticket_estimated");
        assert_eq!(event.occurred_at(), at(1));
        let json = serde_json::to_value(&event).expect("an event serializes");
        assert_eq!(json["TicketEstimated"]["readyAt"], "2025-01-15T12:20:00Z");
        assert_eq!(
            EstimateError::ReadyBeforeQuote.code(),
            "estimate-ready-before-quote"
        );
    }
}
