//! `GET /menu/ready-time`: when an order placed now would be ready, given the kitchen's load
//! per 15-minute slot (see [`crate::kitchen_capacity`]). Anyone may ask: the checkout page
//! shows it before the customer orders, and offers the next slot with room when the earliest
//! one is full.

use brigade_platform::problem::read_problem;
use brigade_platform::Problem;
use brigade_projections::kitchen_queue;
use brigade_projections::menu;
use chrono::{DateTime, Duration, Utc};
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use sqlx::PgPool;
use uuid::Uuid;

use super::OrdersTags;
use crate::kitchen_capacity::{KitchenCapacity, SLOT_MINUTES};

/// Most dishes one quote is asked for.
const MAX_QUOTED_DISHES: usize = 100;

/// The quoted ready time of a new order.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ReadyTime {
    /// When an order placed now would be ready: the earliest (its longest dish from now) or,
    /// when that slot is full, the start of the next slot with room (order with
    /// `scheduledFor` set to it). Absent when no slot has room within a day.
    pub ready_at: Option<DateTime<Utc>>,
    /// The earliest the order could be ready, whatever the load.
    pub earliest_at: DateTime<Utc>,
    /// The 15-minute slot of `earliestAt`.
    pub slot_start: DateTime<Utc>,
    pub slot_end: DateTime<Utc>,
    /// Open tickets expected ready in that slot.
    pub booked: u32,
    /// Tickets the kitchen takes per slot; absent: no limit.
    pub tickets_per_slot: Option<u32>,
    /// Whether that slot is full: an order must then be scheduled (`scheduledFor`).
    pub full: bool,
}

/// The quote endpoint.
pub struct ReadyTimeApi {
    pub pool: PgPool,
    pub capacity: KitchenCapacity,
}

#[OpenApi(tag = "OrdersTags::Menu")]
impl ReadyTimeApi {
    /// When an order placed now would be ready. `dishIds` (comma-separated) quotes for those
    /// dishes (their longest preparation time); without it, for a dish of the kitchen's
    /// default time (15 minutes).
    #[oai(path = "/menu/ready-time", method = "get")]
    async fn ready_time(
        &self,
        #[oai(name = "dishIds")] dish_ids: Query<Option<String>>,
    ) -> Result<Json<ReadyTime>, Problem> {
        let ids = parse_ids(dish_ids.0.as_deref())?;
        let prep_minutes = if ids.is_empty() {
            kitchen_queue::DEFAULT_PREP_MINUTES
        } else {
            menu::dishes(&self.pool, &ids)
                .await
                .map_err(|e| read_problem(&e))?
                .values()
                .map(|dish| dish.prep_minutes)
                .max()
                .unwrap_or(kitchen_queue::DEFAULT_PREP_MINUTES)
        };
        let now = Utc::now();
        let quote = self
            .capacity
            .quote(now, prep_minutes)
            .await
            .map_err(|e| read_problem(&e))?;
        let full = quote.per_slot.is_some_and(|limit| quote.booked >= limit);
        Ok(Json(ReadyTime {
            ready_at: quote.ready_at,
            earliest_at: now + Duration::minutes(i64::from(prep_minutes)),
            slot_start: quote.slot_start,
            slot_end: quote.slot_start + Duration::minutes(SLOT_MINUTES),
            booked: quote.booked,
            tickets_per_slot: quote.per_slot,
            full,
        }))
    }
}

/// `"id,id"` as dish ids; a malformed one is refused naming the parameter.
fn parse_ids(raw: Option<&str>) -> Result<Vec<Uuid>, Problem> {
    let ids: Vec<Uuid> = raw
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(|id| {
            id.parse().map_err(|_| {
                Problem::bad_request("invalid-dish-id", format!("{id:?} is not a dish id"))
                    .with_field("dishIds")
            })
        })
        .collect::<Result<_, _>>()?;
    if ids.len() > MAX_QUOTED_DISHES {
        return Err(Problem::bad_request(
            "too-many-dish-ids",
            format!("at most {MAX_QUOTED_DISHES} dishes per quote"),
        )
        .with_field("dishIds"));
    }
    Ok(ids)
}
