//! Every event the delivery service consumes from the other services, and the command it
//! issues for it.
//!
//! | subject | command |
//! |---|---|
//! | `orders.order.placed` | `Delivery::Request` (id = order id): address, customer, contact phone |
//! | `orders.order.cancelled` | `Delivery::Cancel`: the delivery closes, its courier is freed |
//! | `orders.order.rejected` | `Delivery::Cancel`: the kitchen cannot make it, nothing to deliver |
//! | `kitchen.ticket.ready` | `Delivery::MarkReadyForPickup`: dispatch may assign a courier |
//! | `kitchen.estimate.ticket_estimated` | no command: the quote is kept for dispatch, which sends a courier ahead when the food is due within its lead ([`crate::dispatch`]) |
//! | `identity.account.registered` (role courier) | `Courier::Hire` (id = account id) |
//! | `identity.account.role_granted` (to courier) | `Courier::Hire`, or reactivation of a former one |
//! | `identity.account.role_granted` (from courier) | `Courier::Update { active: false }` |
//! | `identity.account.profile_updated` | `Courier::Update` of name and phone, for a courier |
//! | `identity.account.disabled` | `Courier::Update { active: false }`, for a courier |
//!
//! A courier's id is their account id: the link needs no lookup table, and a redelivered
//! registration hires nobody twice (`Hire` is idempotent for the same account).
//!
//! Every command here is idempotent on its aggregate, so a redelivered event changes nothing.
//!
//! The service's other subscriptions issue no command: the read models (`live_deliveries`,
//! `couriers`) and dispatch's courier workload ([`crate::dispatch::workload_subscription`])
//! follow its own stream; the notifications ([`crate::notifications::subscriptions`]) follow
//! `orders.order.*` and its own `delivery.delivery.*`.

use std::sync::Arc;

use brigade_domain::delivery::{
    Courier, CourierCommand, Delivery, DeliveryCommand, DeliveryError, Vehicle,
};
use brigade_domain::kitchen::{EstimateEvent, TicketEvent};
use brigade_domain::ordering::OrderEvent;
use brigade_domain::Role;
use brigade_nats::store::{self, caused_by, handler_error, EventStore};
use brigade_nats::{EventEnvelope, EventHandler, HandlerError, ReceivedEvent, Subscription};
use chrono::Utc;
use cqrs_es::AggregateError;
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

/// The delivery service's subscriptions to other services.
#[must_use]
pub fn all(couriers: EventStore<Courier>, pool: sqlx::PgPool) -> Vec<Subscription> {
    vec![
        Subscription {
            name: "delivery-from-orders".to_owned(),
            source: "orders",
            aggregate_types: vec!["order"],
            handler: Arc::new(FromOrders),
        },
        Subscription {
            name: "delivery-from-kitchen".to_owned(),
            source: "kitchen",
            aggregate_types: vec!["ticket"],
            handler: Arc::new(FromKitchen),
        },
        Subscription {
            name: "delivery-from-kitchen-estimates".to_owned(),
            source: "kitchen",
            aggregate_types: vec!["estimate"],
            handler: Arc::new(FromKitchenEstimates),
        },
        Subscription {
            name: "delivery-from-identity".to_owned(),
            source: "identity",
            aggregate_types: vec!["account"],
            handler: Arc::new(FromIdentity { couriers, pool }),
        },
    ]
}

/// Reacts to the orders service's `order` events.
pub struct FromOrders;

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
                customer_id,
                delivery_address,
                contact_phone,
                ..
            } => DeliveryCommand::Request {
                order_id,
                customer_id,
                address: delivery_address,
                contact_phone,
                at,
            },
            OrderEvent::OrderCancelled { .. } | OrderEvent::OrderRejected { .. } => {
                DeliveryCommand::Cancel { at }
            }
            _ => return Ok(()),
        };
        // The delivery's events commit with this consumer's checkpoint.
        store::execute_in::<Delivery>(tx, &event.envelope, command, &())
            .await
            .map(drop)
            .map_err(handler_error)
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
        let TicketEvent::TicketReady { .. } = ticket_event else {
            return Ok(());
        };
        let command = DeliveryCommand::MarkReadyForPickup { at: Utc::now() };
        match store::execute_in::<Delivery>(tx, &event.envelope, command, &()).await {
            Ok(_) => Ok(()),
            // The kitchen's stream and the orders stream are read by two consumers: the ticket
            // may be ready before this service has seen the order, however long the orders
            // consumer lags (seen in the chaos suite: over two minutes of backlog parked such
            // messages when they were retried as transient). Wait for it, without a limit.
            Err(AggregateError::UserError(DeliveryError::DeliveryNotFound)) => Err(
                HandlerError::NotYet("the delivery of this order is not requested yet".to_owned()),
            ),
            Err(error) => Err(handler_error(error)),
        }
    }
}

/// Keeps the kitchen's latest ready-time quote of each order, for dispatch ahead of readiness.
pub struct FromKitchenEstimates;

#[async_trait::async_trait]
impl EventHandler for FromKitchenEstimates {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let EstimateEvent::TicketEstimated {
            order_id,
            ready_at,
            at,
        } = event
            .envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not an estimate event: {e}")))?;
        // Quotes of one order arrive in order; the guard only protects against a replay.
        sqlx::query(
            "INSERT INTO delivery_ready_estimates (order_id, ready_at, quoted_at) VALUES ($1, $2, $3)
             ON CONFLICT (order_id) DO UPDATE SET ready_at = EXCLUDED.ready_at, quoted_at = EXCLUDED.quoted_at
             WHERE delivery_ready_estimates.quoted_at <= EXCLUDED.quoted_at",
        )
        .bind(order_id)
        .bind(ready_at)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// The parts of identity's `account` events this service reads. Decoded leniently (unknown
/// events and fields are ignored): delivery depends on what identity says, not on its types.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountRegistered {
    #[serde(default)]
    email: Option<String>,
    name: String,
    phone: Option<String>,
    role: Role,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileUpdated {
    name: String,
    phone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleGranted {
    role: Role,
    previous_role: Role,
}

/// Reacts to the identity service's `account` events: courier accounts become couriers.
pub struct FromIdentity {
    pub couriers: EventStore<Courier>,
    pub pool: sqlx::PgPool,
}

#[async_trait::async_trait]
impl EventHandler for FromIdentity {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let envelope = &event.envelope;
        let account_id: Uuid = envelope.aggregate_uuid("account")?;
        let Some((kind, body)) = envelope
            .payload
            .as_object()
            .and_then(|fields| fields.iter().next())
        else {
            return Err(HandlerError::Permanent("not an account event".to_owned()));
        };
        let decode_error =
            |e: serde_json::Error| HandlerError::Permanent(format!("malformed {kind}: {e}"));
        match kind.as_str() {
            "AccountRegistered" => {
                let registered: AccountRegistered =
                    serde_json::from_value(body.clone()).map_err(decode_error)?;
                remember(
                    tx,
                    account_id,
                    &registered.name,
                    registered.phone.as_deref(),
                )
                .await?;
                // For the e-mail channel; an address that could not be used as is, is not kept.
                if let Some(email) = registered
                    .email
                    .as_deref()
                    .map(str::trim)
                    .filter(|e| crate::smtp::is_plain_address(e))
                {
                    sqlx::query("UPDATE identity_accounts SET email = $2 WHERE account_id = $1")
                        .bind(account_id)
                        .bind(email)
                        .execute(&mut *tx)
                        .await?;
                }
                if registered.role == Role::Courier {
                    self.hire(envelope, account_id, &registered.name, registered.phone)
                        .await?;
                }
            }
            "ProfileUpdated" => {
                let updated: ProfileUpdated =
                    serde_json::from_value(body.clone()).map_err(decode_error)?;
                remember(tx, account_id, &updated.name, updated.phone.as_deref()).await?;
                if self.courier(account_id).await?.exists() {
                    let command = CourierCommand::Update {
                        name: Some(courier_name(&updated.name)),
                        // A blank phone removes it: the profile no longer has one.
                        phone: Some(courier_phone(updated.phone).unwrap_or_default()),
                        vehicle: None,
                        active: None,
                        at: Utc::now(),
                    };
                    self.execute(envelope, account_id, command).await?;
                }
            }
            "RoleGranted" => {
                let granted: RoleGranted =
                    serde_json::from_value(body.clone()).map_err(decode_error)?;
                if granted.role == Role::Courier {
                    let known: Option<(String, Option<String>)> = sqlx::query_as(
                        "SELECT name, phone FROM identity_accounts WHERE account_id = $1",
                    )
                    .bind(account_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let (name, phone) = known.unwrap_or_else(|| ("Courier".to_owned(), None));
                    self.hire(envelope, account_id, &name, phone).await?;
                    self.set_active(envelope, account_id, true).await?;
                } else if granted.previous_role == Role::Courier {
                    self.set_active(envelope, account_id, false).await?;
                }
            }
            "AccountDisabled" => self.set_active(envelope, account_id, false).await?,
            _ => {}
        }
        Ok(())
    }
}

impl FromIdentity {
    async fn hire(
        &self,
        envelope: &EventEnvelope,
        account_id: Uuid,
        name: &str,
        phone: Option<String>,
    ) -> Result<(), HandlerError> {
        let command = CourierCommand::Hire {
            courier_id: account_id,
            account_id: Some(account_id),
            name: courier_name(name),
            phone: courier_phone(phone),
            // Identity knows nothing of vehicles; a manager corrects it with `PUT /couriers/{id}`.
            vehicle: Vehicle::Bike,
            at: Utc::now(),
        };
        self.execute(envelope, account_id, command).await
    }

    /// Activates or deactivates the courier of this account, if there is one and it is not
    /// already so.
    async fn set_active(
        &self,
        envelope: &EventEnvelope,
        account_id: Uuid,
        active: bool,
    ) -> Result<(), HandlerError> {
        let courier = self.courier(account_id).await?;
        if !courier.exists() || courier.is_active() == active {
            return Ok(());
        }
        let command = CourierCommand::Update {
            name: None,
            phone: None,
            vehicle: None,
            active: Some(active),
            at: Utc::now(),
        };
        self.execute(envelope, account_id, command).await
    }

    async fn courier(&self, account_id: Uuid) -> Result<Courier, HandlerError> {
        store::load::<Courier>(&self.pool, &account_id.to_string())
            .await
            .map(|loaded| loaded.aggregate)
            .map_err(handler_error)
    }

    async fn execute(
        &self,
        envelope: &EventEnvelope,
        account_id: Uuid,
        command: CourierCommand,
    ) -> Result<(), HandlerError> {
        self.couriers
            .execute_with_metadata(
                &account_id.to_string(),
                command,
                caused_by(envelope).into_map(),
            )
            .await
            .map_err(handler_error)
    }
}

async fn remember(
    tx: &mut PgConnection,
    account_id: Uuid,
    name: &str,
    phone: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO identity_accounts (account_id, name, phone) VALUES ($1, $2, $3)
         ON CONFLICT (account_id) DO UPDATE SET name = EXCLUDED.name, phone = EXCLUDED.phone",
    )
    .bind(account_id)
    .bind(name)
    .bind(phone)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Identity allows longer names than the fleet list does: shorten rather than refuse, so a
/// valid account never becomes a dead letter here.
fn courier_name(name: &str) -> String {
    let name: String = name.trim().chars().take(Courier::MAX_NAME_CHARS).collect();
    if name.trim().is_empty() {
        "Courier".to_owned()
    } else {
        name.trim().to_owned()
    }
}

/// A phone the fleet list cannot hold is left out rather than cut (a cut number is wrong).
fn courier_phone(phone: Option<String>) -> Option<String> {
    phone
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty() && p.chars().count() <= Courier::MAX_PHONE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_names_and_phones_always_fit_the_fleet() {
        assert_eq!(
            courier_name(&"é".repeat(100)).chars().count(),
            Courier::MAX_NAME_CHARS
        );
        assert_eq!(courier_name("  "), "Courier");
        assert_eq!(
            courier_phone(Some("+33 6 12 34 56 78".into())).as_deref(),
            Some("+33 6 12 34 56 78")
        );
        assert_eq!(courier_phone(Some("1".repeat(40))), None);
    }

    #[test]
    fn an_account_registration_is_read_without_identity_types() {
        let payload = serde_json::json!({
            "accountId": Uuid::nil(), "email": "a@b.fr", "name": "Alice", "phone": null,
            "role": "courier", "registeredBy": {"kind": "system"}, "at": "2025-01-01T00:00:00Z"
        });
        let registered: AccountRegistered = serde_json::from_value(payload).expect("lenient");
        assert_eq!(registered.role, Role::Courier);
        assert_eq!(registered.name, "Alice");
    }
}
