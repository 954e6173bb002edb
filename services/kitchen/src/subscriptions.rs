//! Every event the kitchen consumes, and the command it issues for it.
//!
//! | subject | command on the ticket (id = order id) |
//! |---|---|
//! | `orders.order.placed` | `Open` — every line becomes a pending item, notes verbatim, options as labels ("Cuisson: saignant") |
//! | `orders.order.cancelled` | `Cancel` — the ticket leaves the queue |
//!
//! Both commands are idempotent on the ticket, so a redelivered event changes nothing. The
//! ticket's new events are applied to the kitchen queue in the same transaction
//! (`Subscription::apply_in`), so the screen shows an order one hop after it is placed; and so
//! is a new ticket's first quote, booked on the estimator's lanes ([`OpeningQuotes`]): the
//! screen and the customer get the ticket and its ready time together.
//!
//! The kitchen also reads `orders.dish.*`, for each dish's station and preparation minutes:
//! that is a read model, `brigade_projections::kitchen_queue::dishes_subscription`.

use std::sync::Arc;

use brigade_domain::kitchen::{
    EstimateCommand, NewTicketItem, ReadyEstimate, Ticket, TicketCommand,
};
use brigade_domain::ordering::{ChosenOption, OrderEvent};
use brigade_nats::store::{self, handler_error};
use brigade_nats::{EventEnvelope, EventHandler, HandlerError, ReceivedEvent, Subscription};
use brigade_projections::kitchen_queue;
use chrono::{DateTime, Utc};
use cqrs_es::AggregateError;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::estimator::OpeningQuotes;

/// The subscription that opens a ticket for each order placed: a chef's screen waits on it.
pub const FROM_ORDERS: &str = "kitchen-from-orders";

/// The kitchen's subscriptions; a new ticket's first quote is booked on `quotes`.
#[must_use]
pub fn all(quotes: OpeningQuotes) -> Vec<Subscription> {
    vec![Subscription {
        name: FROM_ORDERS.to_owned(),
        source: "orders",
        aggregate_types: vec!["order"],
        handler: Arc::new(FromOrders {
            queue: kitchen_queue::subscription(),
            estimates: kitchen_queue::estimates_subscription(),
            quotes,
        }),
    }]
}

/// Reacts to the orders service's `order` events.
pub struct FromOrders {
    /// The kitchen queue's projector, which applies the ticket's new events in this
    /// consumer's transaction: a chef's screen shows an order as the kitchen receives it.
    queue: Subscription,
    /// The queue's projector of quotes, which applies a new ticket's first quote likewise.
    estimates: Subscription,
    /// The lanes of the estimator's last pass.
    quotes: OpeningQuotes,
}

impl FromOrders {
    /// Records the first quote of the ticket of the order just placed and opened (its id and
    /// when it was placed), booked on the estimator's lanes, in the transaction that opened
    /// it. Nothing when the estimator
    /// has no lanes to offer (its first pass, or it stopped), or when the order is scheduled:
    /// its passes quote those. A quote the aggregate refuses is left to them too.
    async fn first_quote(
        &self,
        tx: &mut PgConnection,
        cause: &EventEnvelope,
        (order_id, placed_at): (Uuid, DateTime<Utc>),
        at: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        let Some(lines) = kitchen_queue::lines_in(tx, order_id).await? else {
            return Ok(());
        };
        let lines = lines
            .into_iter()
            .map(|line| (line.station, line.prep_minutes))
            .collect();
        let Some(ready_at) = self.quotes.book(order_id, placed_at, lines, at) else {
            return Ok(());
        };
        let command = EstimateCommand::Quote {
            order_id,
            ready_at,
            at,
        };
        match store::execute_in::<ReadyEstimate>(tx, cause, command, &()).await {
            Ok(stored) => {
                self.estimates.apply_in(tx, &stored).await?;
                Ok(())
            }
            Err(AggregateError::UserError(error)) => {
                tracing::warn!(%order_id, %error, "a first quote was refused; next pass");
                Ok(())
            }
            Err(error) => Err(handler_error(error)),
        }
    }
}

#[async_trait::async_trait]
impl EventHandler for FromOrders {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let order_event: OrderEvent = event
            .envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not an order event: {e}")))?;
        let at = Utc::now();
        // An order for as soon as possible gets its first quote as its ticket opens.
        let mut quote = None;
        let command = match order_event {
            OrderEvent::OrderPlaced {
                order_id,
                lines,
                placed_at,
                allergies,
                scheduled_for,
                ..
            } => {
                quote = scheduled_for.is_none().then_some((order_id, placed_at));
                TicketCommand::Open {
                    order_id,
                    placed_at,
                    allergies,
                    scheduled_for,
                    items: lines
                        .into_iter()
                        .map(|line| NewTicketItem {
                            dish_id: line.dish_id,
                            dish_name: line.name,
                            quantity: line.quantity,
                            options: line.options.iter().map(ChosenOption::label).collect(),
                            note: line.note,
                        })
                        .collect(),
                    at,
                }
            }
            OrderEvent::OrderCancelled { .. } => TicketCommand::Cancel { at },
            _ => return Ok(()),
        };
        // The ticket's events commit with this consumer's checkpoint, and so does the kitchen
        // queue's change: one hop from the orders service to the screen, rather than two.
        let stored = store::execute_in::<Ticket>(tx, &event.envelope, command, &())
            .await
            .map_err(handler_error)?;
        self.queue.apply_in(tx, &stored).await?;
        // Opened now, not by an earlier delivery of the same event.
        if let Some(order) = quote.filter(|_| !stored.is_empty()) {
            self.first_quote(tx, &event.envelope, order, at).await?;
        }
        Ok(())
    }
}
