//! The order endpoints: customers place, follow and cancel their orders; staff follow any
//! order; managers see every order and the day's board.
//!
//! Who sees what: a customer sees only their own orders (someone else's order answers 404, as
//! if it did not exist); chefs, couriers and managers see any order; only customers (their own)
//! and managers list orders.

use brigade_domain::ordering::{Order, OrderCommand};
use brigade_domain::Role;
use brigade_nats::store::{self, EventStore};
use brigade_platform::auth::{BearerAuth, Caller};
use brigade_platform::problem::{command_problem, read_problem};
use brigade_platform::sse::EventStream;
use brigade_platform::Problem;
use brigade_projections::feed::{self, FeedHub};
use brigade_projections::kitchen_queue;
use brigade_projections::menu::Amount;
use brigade_projections::order_tracking::{self, Board, DeliveryAddress, OrderState, TrackedOrder};
use chrono::{DateTime, Utc};
use cqrs_es::AggregateError;
use futures::StreamExt;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::problems::{checkout_problem, order_not_found, order_problem, slot_problem};
use super::{OptionalJson, OrdersTags};
use crate::checkout::{self, BasketItem, BasketOption};
use crate::dietary_profiles;
use crate::idempotency;
use crate::kitchen_capacity::KitchenCapacity;
use crate::placement::{self, KeyClaim};

/// Orders per page unless asked otherwise.
const DEFAULT_PAGE_SIZE: u32 = 20;
/// Most orders per page.
const MAX_PAGE_SIZE: u32 = 100;

/// A customer's order. Names and prices come from the menu: any sent here are ignored.
#[derive(Debug, Object, Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct PlaceOrder {
    /// At least one line, at most 100.
    #[oai(default)]
    pub items: Vec<OrderItem>,
    /// Required.
    pub delivery_address: Option<DeliveryAddress>,
    pub contact_phone: Option<String>,
    /// `true` when the customer knows that dishes of the order contain allergens they declared
    /// and orders them anyway; without it such an order is refused (409
    /// `allergen-confirmation-required`, naming the dishes and allergens in `items`).
    #[oai(default)]
    #[serde(default)]
    pub allergens_confirmed: bool,
    /// When the order should be ready, for a later kitchen slot than the earliest (see
    /// `GET /menu/ready-time`); absent: as soon as possible. A full slot is refused (409
    /// `kitchen-slot-full` with `nextAvailableAt`), never queued silently.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// One line of an order.
#[derive(Debug, Object, Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    /// The id of a dish on the menu.
    pub dish_id: String,
    /// 1 to 50.
    pub quantity: i64,
    /// For the kitchen ("sans oignons"), at most 200 characters; reaches the ticket verbatim.
    pub note: Option<String>,
    /// The dish's options picked (one entry per choice): every required group, within each
    /// group's `minChoices`..`maxChoices`. Their deltas are added to the dish's price.
    #[oai(default, validator(max_items = 200))]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<PickedOption>,
}

/// One option picked for an order line: a choice of one of the dish's option groups.
#[derive(Debug, Object, Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct PickedOption {
    /// The `id` of one of the dish's `options`.
    pub group_id: String,
    /// The `id` of one of that group's `choices`.
    pub choice_id: String,
}

impl From<&OrderItem> for BasketItem {
    fn from(item: &OrderItem) -> Self {
        Self {
            dish_id: item.dish_id.clone(),
            quantity: item.quantity,
            note: item.note.clone(),
            options: item
                .options
                .iter()
                .map(|option| BasketOption {
                    group_id: option.group_id.clone(),
                    choice_id: option.choice_id.clone(),
                })
                .collect(),
        }
    }
}

/// The answer to `POST /orders`, the same for every retry with the same key.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct PlacedOrder {
    pub order_id: Uuid,
    pub status: OrderState,
    pub total: Amount,
    /// When the order is scheduled to be ready, for a scheduled order.
    #[oai(skip_serializing_if_is_none)]
    pub scheduled_for: Option<DateTime<Utc>>,
}

#[derive(ApiResponse)]
enum OrderPlaced {
    /// The order is placed (or was, by an earlier request with the same key).
    #[oai(status = 201)]
    Created(Json<PlacedOrder>),
}

/// Why an order is cancelled; everything is optional, and so is the body.
#[derive(Debug, Object)]
pub struct CancelOrder {
    /// Shown in the order's history; at most 500 characters.
    pub reason: Option<String>,
}

/// The answer to a cancellation.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CancelledOrder {
    pub order_id: Uuid,
    pub status: OrderState,
}

/// One page of orders, newest first.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct OrderPage {
    pub items: Vec<TrackedOrder>,
    /// From 1.
    pub page: u32,
    pub page_size: u32,
    /// Orders in all pages.
    pub total: i64,
}

/// One change of an order, as pushed to its tracking page.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct OrderUpdate {
    /// Also the SSE `id`: send it back as `Last-Event-ID` to resume.
    pub change_id: i64,
    pub order: TrackedOrder,
}

/// Why an order was not placed: refused as asked (the customer may fix the request and send it
/// with the same key), failed on our side (nothing stored: a retry places it), or its key is
/// taken (by this order, placed by a concurrent request, or by another).
enum Attempt {
    Refused(Problem),
    Failed(Problem),
    KeyTaken,
}

/// The order endpoints.
pub struct OrdersApi {
    pub pool: PgPool,
    pub orders: EventStore<Order>,
    pub hub: FeedHub,
    /// The kitchen's tickets per slot, checked before an order is placed.
    pub capacity: KitchenCapacity,
}

const STAFF: &[Role] = &[Role::Chef, Role::Courier, Role::Manager];

#[OpenApi(tag = "OrdersTags::Orders")]
impl OrdersApi {
    /// Places an order (customer). Send a fresh `Idempotency-Key` with each new order and the
    /// same one when retrying: a retry answers with the order the first attempt placed. A key
    /// expires 24 hours after its first use (then it is a fresh key again). Each line may pick
    /// the dish's options (`options`: group and choice ids from the menu); the line is priced
    /// as the dish's price plus the picked choices' deltas.
    #[oai(path = "/orders", method = "post")]
    async fn place_order(
        &self,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: Json<PlaceOrder>,
    ) -> Result<OrderPlaced, Problem> {
        auth.0.require(&[Role::Customer])?;
        let key = idempotency::valid_key(idempotency_key.0.as_deref()).map_err(|e| {
            Problem::bad_request(e.code(), e.to_string()).with_field("Idempotency-Key")
        })?;
        let customer_id = auth.0.account_id;
        let request_hash = idempotency::request_hash(&body.0);
        let claim = KeyClaim {
            customer_id,
            key,
            request_hash: &request_hash,
        };
        let mut order_id = Uuid::new_v4();
        // Twice at most: the second time under the id of a claim without its order.
        for _ in 0..2 {
            let refusal = match self.place(&auth.0, claim, order_id, &body.0).await {
                Ok(placed) => return Ok(OrderPlaced::Created(Json(placed))),
                Err(Attempt::Failed(problem)) => return Err(problem),
                Err(Attempt::Refused(problem)) => Some(problem),
                Err(Attempt::KeyTaken) => None,
            };
            // The key may stand for an order already: a retry is answered with it, even when
            // the same request would be refused now (the dish sold out since, the slot filled).
            let held = idempotency::lookup(&self.pool, customer_id, key)
                .await
                .map_err(|e| read_problem(&e))?;
            match held {
                Some(held) if held.request_hash != request_hash => {
                    return Err(Problem::unprocessable(
                        "idempotency-key-reused",
                        "this Idempotency-Key was already used for a different order; use a new key for a new order",
                    )
                    .with_field("Idempotency-Key"))
                }
                Some(held) => {
                    if let Some(placed) = self.placed(held.order_id).await? {
                        return Ok(OrderPlaced::Created(Json(placed)));
                    }
                    // A claim committed without its order (by an earlier version of the
                    // service): the order is placed under the id the key stands for.
                    order_id = held.order_id;
                }
                None => {}
            }
            if let Some(problem) = refusal {
                return Err(problem);
            }
        }
        Err(Problem::unavailable(
            "the Idempotency-Key is being used by another request right now; try again",
        ))
    }

    /// Orders, newest first: a customer's own, or everyone's for a manager.
    #[oai(path = "/orders", method = "get")]
    async fn list_orders(
        &self,
        auth: BearerAuth,
        page: Query<Option<u32>>,
        #[oai(name = "pageSize")] page_size: Query<Option<u32>>,
    ) -> Result<Json<OrderPage>, Problem> {
        let customer = match auth.0.role {
            Role::Customer => Some(auth.0.account_id),
            Role::Manager => None,
            Role::Chef | Role::Courier => {
                return Err(Problem::forbidden(
                    "only customers and managers list orders",
                ))
            }
        };
        let (page, page_size) = brigade_platform::problem::page_request(
            page.0,
            page_size.0,
            DEFAULT_PAGE_SIZE,
            MAX_PAGE_SIZE,
            "orders",
        )?;
        let (items, total) = order_tracking::page(&self.pool, customer, page, page_size)
            .await
            .map_err(|e| read_problem(&e))?;
        Ok(Json(OrderPage {
            items,
            page,
            page_size,
            total,
        }))
    }

    /// Today's orders (since midnight UTC) by status, with counts and average times (manager).
    #[oai(path = "/orders/board", method = "get")]
    async fn board(&self, auth: BearerAuth) -> Result<Json<Board>, Problem> {
        auth.0.require(&[Role::Manager])?;
        let midnight = Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map(|start| start.and_utc())
            .unwrap_or_else(Utc::now);
        order_tracking::board(&self.pool, midnight)
            .await
            .map(Json)
            .map_err(|e| read_problem(&e))
    }

    /// One order with its lines, total and status history (its customer, or staff).
    #[oai(path = "/orders/:order_id", method = "get")]
    async fn order(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
    ) -> Result<Json<TrackedOrder>, Problem> {
        self.visible_order(&auth.0, order_id.0).await.map(Json)
    }

    /// Cancels an order: its customer until the kitchen starts cooking, a manager until it is
    /// delivered. 409 `order-too-late-to-cancel` when it is too late.
    #[oai(path = "/orders/:order_id/cancel", method = "post")]
    async fn cancel(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
        body: OptionalJson<CancelOrder>,
    ) -> Result<Json<CancelledOrder>, Problem> {
        auth.0.require(&[Role::Customer, Role::Manager])?;
        let command = OrderCommand::Cancel {
            by: auth.0.actor(),
            reason: body.0.and_then(|body| body.reason),
            at: Utc::now(),
        };
        let metadata = auth.0.command_metadata(order_id.0.to_string())?;
        // The kitchen's and delivery's news of the order may land at the same moment: cancelling
        // is decided again on the fresh order (and refused if cooking has started meanwhile).
        store::execute_deciding_again(&self.orders, &order_id.0.to_string(), &command, &metadata)
            .await
            .map_err(|e| command_problem(e, order_problem))?;
        Ok(Json(CancelledOrder {
            order_id: order_id.0,
            status: OrderState::Cancelled,
        }))
    }

    /// The order, live (server-sent events): first the order as it stands, then the order again
    /// after each status change. Resume with `Last-Event-ID`.
    #[oai(path = "/orders/:order_id/stream", method = "get")]
    async fn stream(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
        #[oai(name = "Last-Event-ID")] last_event_id: Header<Option<i64>>,
    ) -> Result<EventStream<futures::stream::BoxStream<'static, OrderUpdate>>, Problem> {
        let order_id = order_id.0;
        let pool = self.pool.clone();
        // Take the position first, then read the order: a change committed in between is both
        // in the order read and in the changes followed, never in neither.
        let (after, current) = match last_event_id.0 {
            Some(after) => {
                self.visible_order(&auth.0, order_id).await?;
                (after, None)
            }
            None => {
                let after = order_tracking::last_change_id(&pool)
                    .await
                    .map_err(|e| read_problem(&e))?;
                let order = self.visible_order(&auth.0, order_id).await?;
                (
                    after,
                    Some(OrderUpdate {
                        change_id: after,
                        order,
                    }),
                )
            }
        };
        let changes = feed::follow(
            pool.clone(),
            &self.hub,
            order_tracking::FEED,
            Some(order_id.to_string()),
            Some(after),
        )
        .filter_map(move |change| {
            let pool = pool.clone();
            async move {
                let order = order_tracking::order(&pool, order_id).await.ok()??;
                Some(OrderUpdate {
                    change_id: change.id,
                    order,
                })
            }
        });
        let events = futures::stream::iter(current).chain(changes).boxed();
        Ok(EventStream::new(events)
            .keep_alive(std::time::Duration::from_secs(15))
            .to_event(|update| {
                poem::web::sse::Event::message(update.to_json_string())
                    .event_type("order")
                    .id(update.change_id.to_string())
            }))
    }
}

impl OrdersApi {
    /// Prices the basket from the menu, decides `Place` under `order_id` and stores the order
    /// with its key's claim and its kitchen slot, in one commit.
    async fn place(
        &self,
        caller: &Caller,
        claim: KeyClaim<'_>,
        order_id: Uuid,
        request: &PlaceOrder,
    ) -> Result<PlacedOrder, Attempt> {
        let delivery_address = request.delivery_address.clone().ok_or_else(|| {
            Attempt::Refused(
                Problem::unprocessable("order-invalid-address", "a delivery address is required")
                    .with_field("deliveryAddress"),
            )
        })?;
        let basket: Vec<BasketItem> = request.items.iter().map(BasketItem::from).collect();
        // The menu and the customer's allergies, read at once (two connections, one wait).
        let (priced, declared) = tokio::join!(
            checkout::price(&self.pool, &basket),
            dietary_profiles::allergens_of(&self.pool, caller.account_id)
        );
        let checkout::Priced { lines, dishes } = priced
            .map_err(|e| {
                tracing::warn!(error = %e, "pricing failed");
                Attempt::Failed(Problem::unavailable(
                    "the menu cannot be read right now; nothing was applied, try again",
                ))
            })?
            .map_err(|e| Attempt::Refused(checkout_problem(&e)))?;
        let declared = declared.map_err(|e| Attempt::Failed(read_problem(&e)))?;
        let allergy = dietary_profiles::allergy_check(
            &declared,
            &lines,
            &dishes,
            request.allergens_confirmed,
        );
        let now = Utc::now();
        let longest = lines
            .iter()
            .filter_map(|line| dishes.get(&line.dish_id))
            .map(|dish| dish.prep_minutes)
            .max()
            .unwrap_or(kitchen_queue::DEFAULT_PREP_MINUTES);
        let earliest = now + chrono::Duration::minutes(i64::from(longest));
        // The kitchen's slot: held (under the booking lock) until the order is committed.
        let reservation = self
            .capacity
            .reserve(now, earliest, request.scheduled_for)
            .await
            .map_err(|e| Attempt::Failed(read_problem(&e)))?
            .map_err(|refusal| Attempt::Refused(slot_problem(&refusal)))?;
        let command = OrderCommand::Place {
            order_id,
            customer_id: caller.account_id,
            lines,
            delivery_address: delivery_address.into(),
            contact_phone: request.contact_phone.clone(),
            allergy,
            scheduled_for: request.scheduled_for,
            at: now,
        };
        let metadata = caller
            .command_metadata(order_id.to_string())
            .map_err(Attempt::Failed)?;
        let (order, events) = store::decide_new::<Order>(command, &(), metadata)
            .await
            .map_err(|error| match error {
                AggregateError::UserError(error) => Attempt::Refused(order_problem(error)),
                error => Attempt::Failed(command_problem(error, order_problem)),
            })?;
        let total = order
            .total()
            .ok_or_else(|| Attempt::Failed(Problem::internal(&"a placed order has no total")))?;
        let booking = reservation.booking();
        match reservation
            .commit(placement::statement(claim, order_id, &events, booking))
            .await
        {
            Ok(Some(_)) => Ok(PlacedOrder {
                order_id,
                status: OrderState::Placed,
                total: Amount::from(total),
                scheduled_for: order.scheduled_for(),
            }),
            Ok(None) => Err(Attempt::KeyTaken),
            Err(error) if store::sequence_taken(&error) => Err(Attempt::KeyTaken),
            Err(error) => Err(Attempt::Failed(read_problem(&error))),
        }
    }

    /// The answer for an order placed under this id, if it is.
    async fn placed(&self, order_id: Uuid) -> Result<Option<PlacedOrder>, Problem> {
        let loaded = store::load::<Order>(&self.pool, &order_id.to_string())
            .await
            .map_err(|e| command_problem(e, order_problem))?;
        Ok(loaded.aggregate.total().map(|total| PlacedOrder {
            order_id,
            status: OrderState::Placed,
            total: Amount::from(total),
            scheduled_for: loaded.aggregate.scheduled_for(),
        }))
    }

    /// The order if the caller may see it: from the read model, or from the aggregate when the
    /// read model has not caught up yet (right after `POST /orders`, or while NATS is down).
    async fn visible_order(
        &self,
        caller: &Caller,
        order_id: Uuid,
    ) -> Result<TrackedOrder, Problem> {
        let tracked = order_tracking::order(&self.pool, order_id)
            .await
            .map_err(|e| read_problem(&e))?;
        let order = match tracked {
            Some(order) => order,
            None => {
                let loaded = store::load::<Order>(&self.pool, &order_id.to_string())
                    .await
                    .map_err(|e| command_problem(e, order_problem))?;
                TrackedOrder::from_aggregate(&loaded.aggregate, loaded.version)
                    .ok_or_else(order_not_found)?
            }
        };
        let allowed = STAFF.contains(&caller.role) || order.customer_id == caller.account_id;
        if allowed {
            Ok(order)
        } else {
            Err(order_not_found())
        }
    }
}
