//! Every event the orders service consumes from other services, and the command it issues for
//! it on the order (aggregate id = order id = ticket id = delivery id).
//!
//! | subject | command on the order |
//! |---|---|
//! | `kitchen.ticket.opened` | `Accept` |
//! | `kitchen.ticket.item_started` | `StartPreparation` (the first one moves the order; the rest change nothing) |
//! | `kitchen.ticket.ready` | `MarkReady` |
//! | `kitchen.ticket.rejected` | `Reject { reason }` |
//! | `delivery.delivery.picked_up` | `MarkOutForDelivery` |
//! | `delivery.delivery.delivered` | `MarkDelivered` |
//!
//! Besides orders:
//!
//! | subject | what the orders service does |
//! |---|---|
//! | `kitchen.stock.dish_sold_out` | `Dish::ChangeAvailability { available: false }`: off the menu |
//! | `kitchen.stock.dish_back_in_stock` | `Dish::ChangeAvailability { available: true }` |
//! | `identity.account.dietary_profile_changed` | keeps the customer's declared allergens (`dietary_profiles`) |
//! | `kitchen.ticket.*`, `kitchen.estimate.*` | the kitchen's load per slot (`kitchen_capacity`) |
//!
//! A pickup normally follows the kitchen's `ready`, but the two arrive through two independent
//! consumers: when the pickup comes first, it waits (retried with a growing delay, a few
//! seconds at most) for the kitchen's `ready`, so the order's history keeps every step with the
//! kitchen's own time. If the kitchen's event still has not come, the order moves on without it
//! (the aggregate accepts a forward jump) rather than stalling, and the kitchen's steps, when
//! they come, are recorded late in their place in the history (`OrderStepRecordedLate`).
//!
//! Every other kitchen or delivery event is ignored (`item_ready`, `item_step_undone` — the
//! order never moves back —, `cancelled` — which follows the order's own
//! cancellation —, `requested`, `courier_assigned`, `failed`, ...).
//! Each command is idempotent on the order (a status already reached, or an order that ended,
//! changes nothing), so a redelivered event changes nothing. The order's history is stamped with
//! the time the kitchen or the courier acted, not the time the event arrived.
//!
//! The orders service's own `dish` and `order` events feed its read models, and so do the
//! kitchen's ready-time quotes (`kitchen.estimate.*`): see `brigade_projections::{menu,
//! order_tracking}`.

use std::sync::Arc;

use brigade_domain::delivery::DeliveryEvent;
use brigade_domain::kitchen::DishStockEvent;
use brigade_domain::kitchen::TicketEvent;
use brigade_domain::ordering::{Dish, DishCommand, DishError, Order, OrderCommand, OrderStatus};
use brigade_domain::{Allergen, Diet};
use brigade_nats::store::{self, caused_by, handler_error, EventStore};
use brigade_nats::{EventHandler, HandlerError, ReceivedEvent, Subscription};
use chrono::{DateTime, Utc};
use cqrs_es::AggregateError;
use serde::Deserialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Deliveries of a pickup that wait for the kitchen's `ready` before the order moves on
/// without it (about six seconds with the consumer's growing delay).
const PICKUP_WAITS_FOR_KITCHEN: i64 = 6;

/// The orders service's subscriptions to other services.
#[must_use]
pub fn all(pool: PgPool) -> Vec<Subscription> {
    vec![
        Subscription {
            name: "orders-from-kitchen".to_owned(),
            source: "kitchen",
            aggregate_types: vec!["ticket"],
            handler: Arc::new(FromKitchen),
        },
        Subscription {
            name: "orders-from-kitchen-stock".to_owned(),
            source: "kitchen",
            aggregate_types: vec!["stock"],
            handler: Arc::new(FromKitchenStock {
                dishes: store::event_store::<Dish>(pool.clone(), ()),
            }),
        },
        Subscription {
            name: "orders-from-identity".to_owned(),
            source: "identity",
            aggregate_types: vec!["account"],
            handler: Arc::new(FromIdentity),
        },
        Subscription {
            name: "orders-from-delivery".to_owned(),
            source: "delivery",
            aggregate_types: vec!["delivery"],
            handler: Arc::new(FromDelivery { pool }),
        },
    ]
}

/// The dish command for a kitchen stock event: a dish the kitchen ran out of leaves the menu
/// (with the chef's reason, or "épuisé en cuisine"), and comes back when it is in stock again.
#[must_use]
pub fn from_stock(event: DishStockEvent) -> (Uuid, DishCommand) {
    match event {
        DishStockEvent::DishSoldOut {
            dish_id,
            reason,
            at,
            ..
        } => (
            dish_id,
            DishCommand::ChangeAvailability {
                available: false,
                reason: Some(reason.unwrap_or_else(|| "épuisé en cuisine".to_owned())),
                at,
            },
        ),
        DishStockEvent::DishBackInStock { dish_id, at, .. } => (
            dish_id,
            DishCommand::ChangeAvailability {
                available: true,
                reason: None,
                at,
            },
        ),
    }
}

/// Reacts to the kitchen's `stock` events: the menu follows what the kitchen can make.
pub struct FromKitchenStock {
    pub dishes: EventStore<Dish>,
}

#[async_trait::async_trait]
impl EventHandler for FromKitchenStock {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        _tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let stock_event: DishStockEvent = event
            .envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not a stock event: {e}")))?;
        let (dish_id, command) = from_stock(stock_event);
        match self
            .dishes
            .execute_with_metadata(
                &dish_id.to_string(),
                command,
                caused_by(&event.envelope).into_map(),
            )
            .await
        {
            // A dish the menu does not have (removed, or from another menu): nothing to take off.
            Ok(()) | Err(AggregateError::UserError(DishError::DishNotFound)) => Ok(()),
            Err(error) => Err(handler_error(error)),
        }
    }
}

/// The part of identity's `DietaryProfileChanged` this service reads (decoded leniently:
/// other account events and unknown fields are ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DietaryProfileChanged {
    allergens: Vec<Allergen>,
    #[serde(default)]
    diets: Vec<Diet>,
    at: DateTime<Utc>,
}

/// Reacts to the identity service's `account` events: keeps each customer's declared
/// allergens and diets for checkout.
pub struct FromIdentity;

#[async_trait::async_trait]
impl EventHandler for FromIdentity {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let envelope = &event.envelope;
        let Some(body) = envelope.payload.get("DietaryProfileChanged") else {
            return Ok(());
        };
        let customer_id: Uuid = envelope.aggregate_uuid("account")?;
        let changed: DietaryProfileChanged = serde_json::from_value(body.clone()).map_err(|e| {
            HandlerError::Permanent(format!("malformed DietaryProfileChanged: {e}"))
        })?;
        crate::dietary_profiles::record(
            tx,
            customer_id,
            &changed.allergens,
            &changed.diets,
            changed.at,
        )
        .await?;
        Ok(())
    }
}

/// The order command for a kitchen event, if any.
#[must_use]
pub fn from_ticket(event: TicketEvent) -> Option<OrderCommand> {
    match event {
        TicketEvent::TicketOpened { at, .. } => Some(OrderCommand::Accept { at }),
        TicketEvent::ItemStarted { at, .. } => Some(OrderCommand::StartPreparation { at }),
        TicketEvent::TicketReady { at } => Some(OrderCommand::MarkReady { at }),
        TicketEvent::TicketRejected { reason, at } => Some(OrderCommand::Reject { reason, at }),
        // An undone step never moves the order back: it stays in preparation.
        TicketEvent::ItemReady { .. }
        | TicketEvent::ItemStepUndone { .. }
        | TicketEvent::TicketCancelled { .. } => None,
    }
}

/// The order command for a delivery event, if any.
#[must_use]
pub fn from_delivery(event: DeliveryEvent) -> Option<OrderCommand> {
    match event {
        DeliveryEvent::DeliveryPickedUp { at, .. } => Some(OrderCommand::MarkOutForDelivery { at }),
        DeliveryEvent::DeliveryDelivered { at, .. } => Some(OrderCommand::MarkDelivered { at }),
        DeliveryEvent::DeliveryRequested { .. }
        | DeliveryEvent::DeliveryReadyForPickup { .. }
        | DeliveryEvent::CourierAssigned { .. }
        | DeliveryEvent::CourierUnassigned { .. }
        | DeliveryEvent::DeliveryFailed { .. }
        | DeliveryEvent::DeliveryCancelled { .. }
        | DeliveryEvent::DeliveryRouteRecorded { .. } => None,
    }
}

/// Reacts to the kitchen's `ticket` events.
pub struct FromKitchen;

#[async_trait::async_trait]
impl EventHandler for FromKitchen {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let ticket_event: TicketEvent = event
            .envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not a ticket event: {e}")))?;
        match from_ticket(ticket_event) {
            // The order's events commit with this consumer's checkpoint.
            Some(command) => store::execute_in::<Order>(tx, &event.envelope, command, &())
                .await
                .map(drop)
                .map_err(handler_error),
            None => Ok(()),
        }
    }
}

/// Reacts to the delivery service's `delivery` events.
pub struct FromDelivery {
    pub pool: PgPool,
}

impl FromDelivery {
    /// Whether a pickup should wait for the kitchen's `ready` a little longer.
    async fn kitchen_lags(&self, event: &ReceivedEvent) -> Result<bool, HandlerError> {
        if event.delivered >= PICKUP_WAITS_FOR_KITCHEN {
            return Ok(false);
        }
        let order = store::load::<Order>(&self.pool, &event.envelope.aggregate_id)
            .await
            .map_err(handler_error)?;
        Ok(matches!(
            order.aggregate.status(),
            Some(OrderStatus::Placed | OrderStatus::Accepted | OrderStatus::InPreparation)
        ))
    }
}

#[async_trait::async_trait]
impl EventHandler for FromDelivery {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let delivery_event: DeliveryEvent = event
            .envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not a delivery event: {e}")))?;
        match from_delivery(delivery_event) {
            Some(OrderCommand::MarkOutForDelivery { .. }) if self.kitchen_lags(event).await? => {
                Err(HandlerError::NotYet(
                    "picked up before the kitchen's ready arrived; waiting for it".to_owned(),
                ))
            }
            // The order's events commit with this consumer's checkpoint.
            Some(command) => store::execute_in::<Order>(tx, &event.envelope, command, &())
                .await
                .map(drop)
                .map_err(handler_error),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn the_kitchen_moves_the_order_forward_or_rejects_it() {
        let at = Utc
            .timestamp_opt(1_700_000_000, 0)
            .single()
            .expect("a valid time");
        assert_eq!(
            from_ticket(TicketEvent::ItemStarted { index: 1, at }),
            Some(OrderCommand::StartPreparation { at })
        );
        assert_eq!(
            from_ticket(TicketEvent::TicketRejected {
                reason: "plus de saumon".into(),
                at
            }),
            Some(OrderCommand::Reject {
                reason: "plus de saumon".into(),
                at
            })
        );
        assert_eq!(from_ticket(TicketEvent::ItemReady { index: 0, at }), None);
        assert_eq!(from_ticket(TicketEvent::TicketCancelled { at }), None);
    }

    #[test]
    fn only_pickup_and_handover_concern_the_order() {
        let at = Utc
            .timestamp_opt(1_700_000_000, 0)
            .single()
            .expect("a valid time");
        let courier_id = Uuid::from_u128(7);
        assert_eq!(
            from_delivery(DeliveryEvent::DeliveryPickedUp { courier_id, at }),
            Some(OrderCommand::MarkOutForDelivery { at })
        );
        assert_eq!(
            from_delivery(DeliveryEvent::DeliveryDelivered {
                courier_id,
                received_by: None,
                note: None,
                at
            }),
            Some(OrderCommand::MarkDelivered { at })
        );
        assert_eq!(
            from_delivery(DeliveryEvent::CourierAssigned { courier_id, at }),
            None
        );
    }
}
