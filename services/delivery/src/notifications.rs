//! Notifications: every status change of an order or its delivery tells the people concerned,
//! once.
//!
//! | fact | who is told (`kind`) |
//! |---|---|
//! | `orders.order.accepted` · `in_preparation` · `ready` | the customer (`order_accepted`, `order_in_preparation`, `order_ready`) |
//! | `orders.order.cancelled` · `rejected` | the customer (`order_cancelled`, `order_rejected`) |
//! | `delivery.delivery.courier_assigned` | the courier (`delivery_assigned`) |
//! | `delivery.delivery.picked_up` · `delivered` | the customer (`delivery_picked_up`, `delivery_delivered`) |
//! | `delivery.delivery.failed` | the managers (`delivery_failed`) |
//! | a position of the courier within [`ARRIVING_KM`] of the door | the customer (`delivery_arriving`) |
//! | a delivery waiting for a courier longer than configured | the managers (`delivery_waiting`) |
//!
//! Once means: each notification carries a `dedup_key` naming its fact and recipient
//! (the event's message id, or `arriving:{order}`), unique in the table, and is inserted with
//! `ON CONFLICT DO NOTHING`, inside the consumer's transaction that also advances its
//! checkpoint. A redelivered event, a replayed one, or a second position near the door finds
//! the key and notifies nobody again. The webhook deliveries of a notification are queued in
//! that same transaction ([`crate::webhooks`]), and so is its e-mail when the SMTP channel is
//! configured ([`crate::email`]), so none is lost or doubled either.
//!
//! Notifications are shown in-app: listed at `GET /notifications`, pushed live over SSE (the
//! `notifications` feed, key `{recipient}/{id}`).

use std::sync::Arc;

use brigade_domain::delivery::{Delivery, DeliveryEvent};
use brigade_domain::ordering::OrderEvent;
use brigade_domain::{Address, Role};
use brigade_nats::store;
use brigade_nats::{EventHandler, HandlerError, ReceivedEvent, Subscription};
use brigade_platform::auth::Caller;
use brigade_projections::couriers::Position;
use brigade_projections::feed;
use chrono::{DateTime, Utc};
use poem_openapi::Object;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::geo::{distance_km, GeoPoint};

/// The feed live notification streams follow; keys are `{recipient}/{notification id}`.
pub const FEED: &str = "notifications";
/// A courier this close to the door (straight line) is "arriving".
pub const ARRIVING_KM: f64 = 0.5;

/// Who a notification is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    Account(Uuid),
    /// Every account holding the role (the managers).
    Role(Role),
}

impl Recipient {
    /// The recipient part of feed keys and dedup keys.
    #[must_use]
    pub fn key(self) -> String {
        match self {
            Self::Account(id) => format!("account:{id}"),
            Self::Role(role) => format!("role:{role}"),
        }
    }
}

/// A notification to create.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub recipient: Recipient,
    pub kind: &'static str,
    pub order_id: Option<Uuid>,
    pub title: String,
    pub message: String,
    /// Names the fact; the recipient is appended. The same key never notifies twice.
    pub fact: String,
}

/// One notification, as its recipient sees it.
#[derive(Debug, Clone, PartialEq, Object, FromRow, serde::Serialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub id: i64,
    /// `order_accepted`, `delivery_picked_up`, `delivery_assigned`, `delivery_failed`, …
    pub kind: String,
    pub order_id: Option<Uuid>,
    pub title: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// Creates a notification unless its fact already notified this recipient; queues its webhook
/// deliveries and pushes it to live streams, all in `tx`. Returns its id when created.
///
/// # Errors
/// A database error.
pub async fn notify(
    tx: &mut PgConnection,
    notification: NewNotification,
) -> Result<Option<i64>, sqlx::Error> {
    let recipient = notification.recipient;
    let (recipient_id, recipient_role) = match recipient {
        Recipient::Account(id) => (Some(id), None),
        Recipient::Role(role) => (None, Some(role.as_str())),
    };
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO notifications (recipient_id, recipient_role, kind, order_id, title, message, dedup_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
    )
    .bind(recipient_id)
    .bind(recipient_role)
    .bind(notification.kind)
    .bind(notification.order_id)
    .bind(&notification.title)
    .bind(&notification.message)
    .bind(format!("{}/{}", notification.fact, recipient.key()))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else {
        return Ok(None);
    };
    sqlx::query(
        "INSERT INTO webhook_deliveries (webhook_id, notification_id)
         SELECT id, $1 FROM webhooks WHERE active ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if let Recipient::Account(account_id) = recipient {
        // Queued only while the e-mail channel is on, to an address identity gave us.
        sqlx::query(
            "INSERT INTO email_deliveries (notification_id, address)
             SELECT $1, a.email FROM identity_accounts a JOIN email_channel c ON c.enabled
              WHERE a.account_id = $2 AND a.email IS NOT NULL
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    }
    feed::record(tx, FEED, &format!("{}/{id}", recipient.key())).await?;
    Ok(Some(id))
}

/// The caller's notifications, newest first: their own and their role's.
///
/// # Errors
/// A database error.
pub async fn for_caller(
    pool: &PgPool,
    caller: &Caller,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, order_id, title, message, created_at FROM notifications
          WHERE recipient_id = $1 OR recipient_role = $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(caller.account_id)
    .bind(caller.role.as_str())
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One notification, by id.
///
/// # Errors
/// A database error.
pub async fn notification(pool: &PgPool, id: i64) -> Result<Option<Notification>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, order_id, title, message, created_at FROM notifications WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Whether a feed key (`{recipient}/{id}`) is for `caller`; returns the notification id.
#[must_use]
pub fn addressed_to(key: &str, caller: &Caller) -> Option<i64> {
    let (recipient, id) = key.rsplit_once('/')?;
    let mine = recipient == Recipient::Account(caller.account_id).key()
        || recipient == Recipient::Role(caller.role).key();
    mine.then(|| id.parse().ok()).flatten()
}

/// Tells customers whose food is about to arrive: called with each new position of a courier,
/// in the transaction that stores it.
///
/// # Errors
/// A database error.
pub async fn notify_arriving(
    tx: &mut PgConnection,
    courier_id: Uuid,
    position: Position,
) -> Result<(), sqlx::Error> {
    let carried: Vec<(Uuid, Uuid, Json<Address>)> = sqlx::query_as(
        "SELECT order_id, customer_id, address FROM live_deliveries WHERE courier_id = $1 AND status = 'picked_up'",
    )
    .bind(courier_id)
    .fetch_all(&mut *tx)
    .await?;
    for (order_id, customer_id, Json(address)) in carried {
        let (Some(lat), Some(lon)) = (address.lat, address.lon) else {
            continue;
        };
        if distance_km(position.into(), GeoPoint { lat, lon }) > ARRIVING_KM {
            continue;
        }
        notify(
            tx,
            NewNotification {
                recipient: Recipient::Account(customer_id),
                kind: "delivery_arriving",
                order_id: Some(order_id),
                title: "Your courier is arriving".to_owned(),
                message: "Your courier is a few minutes away.".to_owned(),
                fact: format!("arriving:{order_id}"),
            },
        )
        .await?;
    }
    Ok(())
}

/// Tells the managers a delivery has waited for a courier since `ready_at` (once per order).
///
/// # Errors
/// A database error.
pub async fn notify_waiting(
    pool: &PgPool,
    order_id: Uuid,
    ready_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let minutes = (Utc::now() - ready_at).num_minutes();
    let mut tx = pool.begin().await?;
    notify(
        &mut tx,
        NewNotification {
            recipient: Recipient::Role(Role::Manager),
            kind: "delivery_waiting",
            order_id: Some(order_id),
            title: "A delivery is waiting for a courier".to_owned(),
            message: format!(
                "Order {order_id} has been ready for {minutes} min and no courier is free."
            ),
            fact: format!("waiting:{order_id}"),
        },
    )
    .await?;
    tx.commit().await
}

/// The notification subscriptions: order facts from the orders service, delivery facts from
/// this service's own stream.
#[must_use]
pub fn subscriptions(pool: PgPool) -> Vec<Subscription> {
    vec![
        Subscription {
            name: "notifications-from-orders".to_owned(),
            source: "orders",
            aggregate_types: vec!["order"],
            handler: Arc::new(OrderNotifications),
        },
        Subscription {
            name: "notifications-from-deliveries".to_owned(),
            source: "delivery",
            aggregate_types: vec!["delivery"],
            handler: Arc::new(DeliveryNotifications { pool }),
        },
    ]
}

/// Turns order events into notifications to the customer.
pub struct OrderNotifications;

#[async_trait::async_trait]
impl EventHandler for OrderNotifications {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let envelope = &event.envelope;
        let order_event: OrderEvent = envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not an order event: {e}")))?;
        let order_id: Uuid = envelope.aggregate_uuid("order")?;
        let (kind, title, message) = match order_event {
            OrderEvent::OrderPlaced { customer_id, .. } => {
                // Placing is the customer's own act: nothing to tell, only whom to tell later.
                sqlx::query(
                    "INSERT INTO notification_orders (order_id, customer_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(order_id)
                .bind(customer_id)
                .execute(&mut *tx)
                .await?;
                return Ok(());
            }
            OrderEvent::OrderAccepted { .. } => (
                "order_accepted",
                "Order accepted",
                "The kitchen has accepted your order.".to_owned(),
            ),
            OrderEvent::OrderInPreparation { .. } => (
                "order_in_preparation",
                "In preparation",
                "The kitchen is preparing your order.".to_owned(),
            ),
            OrderEvent::OrderReady { .. } => (
                "order_ready",
                "Ready",
                "Your order is ready and waits for its courier.".to_owned(),
            ),
            OrderEvent::OrderCancelled { .. } => (
                "order_cancelled",
                "Order cancelled",
                "Your order was cancelled.".to_owned(),
            ),
            OrderEvent::OrderRejected { reason, .. } => (
                "order_rejected",
                "Order rejected",
                format!("The kitchen cannot make your order: {reason}"),
            ),
            // The delivery's own events say "picked up" and "delivered", with more to tell;
            // a step heard late is news the customer has already overtaken.
            OrderEvent::OrderOutForDelivery { .. }
            | OrderEvent::OrderDelivered { .. }
            | OrderEvent::OrderStepRecordedLate { .. } => return Ok(()),
        };
        let customer: Option<Uuid> =
            sqlx::query_scalar("SELECT customer_id FROM notification_orders WHERE order_id = $1")
                .bind(order_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(customer) = customer else {
            // The order's placement was parked as a dead letter: nobody to tell.
            tracing::warn!(%order_id, kind, "no customer known for this order; notification skipped");
            return Ok(());
        };
        notify(
            tx,
            NewNotification {
                recipient: Recipient::Account(customer),
                kind,
                order_id: Some(order_id),
                title: title.to_owned(),
                message,
                fact: envelope.message_id(),
            },
        )
        .await?;
        Ok(())
    }
}

/// Turns delivery events into notifications to the customer, the courier or the managers.
pub struct DeliveryNotifications {
    pool: PgPool,
}

#[async_trait::async_trait]
impl EventHandler for DeliveryNotifications {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let envelope = &event.envelope;
        let delivery_event: DeliveryEvent = envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not a delivery event: {e}")))?;
        let order_id: Uuid = envelope.aggregate_uuid("delivery")?;
        let delivery = || async {
            store::load::<Delivery>(&self.pool, &envelope.aggregate_id)
                .await
                .map(|loaded| loaded.aggregate)
                .map_err(store::handler_error)
        };
        let to_customer = |customer: Option<Uuid>| customer.map(Recipient::Account);
        let (recipient, kind, title, message) = match delivery_event {
            DeliveryEvent::CourierAssigned { courier_id, .. } => {
                let address = delivery()
                    .await?
                    .address()
                    .map_or_else(String::new, |a| format!(" to {}, {}", a.street, a.city));
                (
                    Some(Recipient::Account(courier_id)),
                    "delivery_assigned",
                    "New delivery",
                    format!("Order {order_id}{address} is yours: collect it at the restaurant."),
                )
            }
            DeliveryEvent::DeliveryPickedUp { .. } => (
                to_customer(delivery().await?.customer_id()),
                "delivery_picked_up",
                "On its way",
                "Your courier has collected your order.".to_owned(),
            ),
            DeliveryEvent::DeliveryDelivered { .. } => (
                to_customer(delivery().await?.customer_id()),
                "delivery_delivered",
                "Delivered",
                "Your order has been delivered. Enjoy!".to_owned(),
            ),
            DeliveryEvent::DeliveryFailed { reason, .. } => (
                Some(Recipient::Role(Role::Manager)),
                "delivery_failed",
                "Delivery failed",
                format!("The delivery of order {order_id} failed: {reason}"),
            ),
            DeliveryEvent::DeliveryRequested { .. }
            | DeliveryEvent::DeliveryReadyForPickup { .. }
            | DeliveryEvent::CourierUnassigned { .. }
            | DeliveryEvent::DeliveryCancelled { .. }
            | DeliveryEvent::DeliveryRouteRecorded { .. } => return Ok(()),
        };
        let Some(recipient) = recipient else {
            return Ok(());
        };
        notify(
            tx,
            NewNotification {
                recipient,
                kind,
                order_id: Some(order_id),
                title: title.to_owned(),
                message,
                fact: envelope.message_id(),
            },
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_key_is_for_its_account_or_its_role() {
        let me = Uuid::from_u128(7);
        let manager = Caller {
            account_id: me,
            role: Role::Manager,
        };
        let courier = Caller {
            account_id: me,
            role: Role::Courier,
        };
        assert_eq!(
            addressed_to(&format!("account:{me}/12"), &courier),
            Some(12)
        );
        assert_eq!(addressed_to("role:manager/13", &manager), Some(13));
        assert_eq!(addressed_to("role:manager/13", &courier), None);
        assert_eq!(
            addressed_to(&format!("account:{}/14", Uuid::from_u128(8)), &manager),
            None
        );
        assert_eq!(addressed_to("garbage", &manager), None);
    }
}
