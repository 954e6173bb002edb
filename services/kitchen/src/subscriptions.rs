//! Every event the kitchen consumes, and the command it issues for it.
//!
//! | subject | command on the ticket (id = order id) |
//! |---|---|
//! | `orders.order.placed` | `Open` — every line becomes a pending item, notes verbatim, options as labels ("Cuisson: saignant") |
//! | `orders.order.cancelled` | `Cancel` — the ticket leaves the queue |
//!
//! Both commands are idempotent on the ticket, so a redelivered event changes nothing. The
//! ticket's new events are applied to the kitchen queue in the same transaction
//! (`Subscription::apply_in`), so the screen shows an order one hop after it is placed.
//!
//! The kitchen also reads `orders.dish.*`, for each dish's station and preparation minutes:
//! that is a read model, `brigade_projections::kitchen_queue::dishes_subscription`.

use std::sync::Arc;

use brigade_domain::kitchen::{NewTicketItem, Ticket, TicketCommand};
use brigade_domain::ordering::{ChosenOption, OrderEvent};
use brigade_nats::store::{self, handler_error};
use brigade_nats::{EventHandler, HandlerError, ReceivedEvent, Subscription};
use brigade_projections::kitchen_queue;
use chrono::Utc;
use sqlx::PgConnection;

/// The subscription that opens a ticket for each order placed: a chef's screen waits on it.
pub const FROM_ORDERS: &str = "kitchen-from-orders";

/// The kitchen's subscriptions.
#[must_use]
pub fn all() -> Vec<Subscription> {
    vec![Subscription {
        name: FROM_ORDERS.to_owned(),
        source: "orders",
        aggregate_types: vec!["order"],
        handler: Arc::new(FromOrders {
            queue: kitchen_queue::subscription(),
        }),
    }]
}

/// Reacts to the orders service's `order` events.
pub struct FromOrders {
    /// The kitchen queue's projector, which applies the ticket's new events in this
    /// consumer's transaction: a chef's screen shows an order as the kitchen receives it.
    queue: Subscription,
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
        let command = match order_event {
            OrderEvent::OrderPlaced {
                order_id,
                lines,
                placed_at,
                allergies,
                scheduled_for,
                ..
            } => TicketCommand::Open {
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
            },
            OrderEvent::OrderCancelled { .. } => TicketCommand::Cancel { at },
            _ => return Ok(()),
        };
        // The ticket's events commit with this consumer's checkpoint, and so does the kitchen
        // queue's change: one hop from the orders service to the screen, rather than two.
        let stored = store::execute_in::<Ticket>(tx, &event.envelope, command, &())
            .await
            .map_err(handler_error)?;
        self.queue.apply_in(tx, &stored).await?;
        Ok(())
    }
}
