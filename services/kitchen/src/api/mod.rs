//! The kitchen's HTTP API (API.md, kitchen table). Handlers are thin: authorize, issue one
//! command or one query, map the result.
//!
//! Beyond API.md's table: `POST /tickets/{orderId}/items/{index}/undo`, the `station` and
//! `include` parameters of `GET /tickets` (and `station` on the stream), and
//! `GET /kitchen/metrics`. Every ticket also carries its routing and timing (`station` and
//! `prepMinutes` per item; `targetMinutes`, `targetAt`, `elapsedSeconds`, `late`,
//! `estimatedReadyAt`), and the customer's declared `allergies`.
//!
//! Dishes running out: `POST /dishes/{dishId}/sold-out` and `/back-in-stock` (chef, manager),
//! and `soldOutItems` on a rejection, publish `kitchen.stock.*`; the orders service takes the
//! dish off the menu.

mod problems;

use brigade_domain::kitchen::{DishStock, DishStockCommand, Ticket, TicketCommand};
use brigade_domain::ordering::Dish;
use brigade_domain::Role;
use brigade_nats::store::{self, EventStore};
use brigade_platform::auth::BearerAuth;
use brigade_platform::problem::{command_problem, read_problem};
use brigade_platform::sse::EventStream;
use brigade_platform::Problem;
use brigade_projections::feed::{self, FeedHub};
use brigade_projections::kitchen_queue::{self, ItemState, QueuedTicket, TicketState};
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON;
use poem_openapi::{Object, OpenApi, Tags};
use sqlx::PgPool;
use uuid::Uuid;

pub use problems::ticket_problem;

use crate::estimator::Load;

#[derive(Tags)]
enum KitchenTags {
    /// The kitchen queue and the chefs' actions on it.
    Tickets,
    /// How the kitchen is doing today.
    Metrics,
}

/// How long closed tickets stay on `GET /tickets?include=recent`.
pub const RECENT_MINUTES: i64 = 5;
/// Why a chef rejects a ticket.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RejectTicket {
    /// Shown to the customer and the manager: "plus de saumon".
    #[oai(validator(min_length = 1, max_length = 500))]
    pub reason: String,
    /// The items (their `index`) whose dish the kitchen has run out of: each dish is marked
    /// sold out (`kitchen.stock.dish_sold_out`, the menu stops offering it) before the
    /// ticket is rejected.
    #[oai(default, validator(max_items = 100))]
    pub sold_out_items: Vec<u32>,
}

/// A chef says the kitchen ran out of a dish; everything is optional.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SoldOut {
    /// Shown on the menu while the dish is unavailable ("plus de saumon"); at most 200
    /// characters.
    pub reason: Option<String>,
}

/// What the kitchen says of a dish's stock.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DishStockState {
    pub dish_id: Uuid,
    pub sold_out: bool,
    /// Since when the kitchen has been out of it.
    pub sold_out_since: Option<DateTime<Utc>>,
}

/// One change of the kitchen queue, as pushed to screens.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TicketChange {
    /// Also the SSE `id`: send it back as `Last-Event-ID` to resume.
    pub change_id: i64,
    pub ticket: QueuedTicket,
}

/// What `GET /tickets` adds to the open tickets (`include=`). Parsed by hand rather than as
/// an OpenAPI enum so that a wrong value is refused with a problem naming the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketsInclude {
    /// Tickets closed (ready, rejected, cancelled) in the last five minutes, after the open
    /// ones, most recently closed first.
    Recent,
}

impl TicketsInclude {
    fn parse(value: &str) -> Result<Self, Problem> {
        match value.trim() {
            "recent" => Ok(Self::Recent),
            _ => Err(Problem::bad_request(
                "invalid-include",
                format!("include={value:?} is not known: the only value is \"recent\""),
            )
            .with_field("include")),
        }
    }
}

/// Open lines of one station.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
#[oai(rename_all = "camelCase")]
pub struct StationLoad {
    pub station: String,
    pub pending: u32,
    pub in_preparation: u32,
}

/// How the kitchen is doing: now, and since midnight (UTC).
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct KitchenMetrics {
    /// Midnight UTC: the start of "today".
    pub since: DateTime<Utc>,
    pub tickets_open: u32,
    /// Open tickets past their target.
    pub tickets_late: u32,
    /// Open lines per station, by station name.
    pub stations: Vec<StationLoad>,
    /// Tickets made ready today.
    pub ready_today: i64,
    /// Of those, made ready after their target.
    pub late_today: i64,
    pub rejected_today: i64,
    pub cancelled_today: i64,
    /// From the order being placed to the ticket being ready, over today's ready tickets.
    pub average_prep_seconds: Option<f64>,
    pub p90_prep_seconds: Option<f64>,
    /// Recent actual preparation time over the dishes' minutes (1.2: 20 % slower).
    pub pace: f64,
    /// What a new order (one 15-minute dish at `main`) would be quoted now, in minutes.
    pub new_order_minutes: i64,
}

/// The kitchen service's endpoints.
pub struct KitchenApi {
    pub pool: PgPool,
    pub tickets: EventStore<Ticket>,
    pub hub: FeedHub,
    /// How many lines one station cooks at once (the estimator's capacity).
    pub lanes_per_station: u32,
}

const KITCHEN_STAFF: &[Role] = &[Role::Chef, Role::Manager];

#[OpenApi]
impl KitchenApi {
    /// Open tickets, oldest order first (a scheduled order by when it should start: its
    /// `scheduledFor` less its `targetMinutes`), each with its items and their progress, its
    /// target and whether it is late. `station=grill` shows the tickets with grill items, and only
    /// their grill items (each keeps its `index`); `include=recent` appends the tickets closed
    /// in the last five minutes, most recently closed first.
    #[oai(path = "/tickets", method = "get", tag = "KitchenTags::Tickets")]
    async fn tickets(
        &self,
        auth: BearerAuth,
        /// Only this station's tickets and items (`grill`, `cold`…; case does not matter).
        station: Query<Option<String>>,
        /// `recent`: also the tickets closed in the last five minutes.
        include: Query<Option<String>>,
    ) -> Result<Json<Vec<QueuedTicket>>, Problem> {
        auth.0.require(KITCHEN_STAFF)?;
        let station = station_filter(station.0)?;
        let include = include.0.map(|v| TicketsInclude::parse(&v)).transpose()?;
        let now = Utc::now();
        let mut tickets = kitchen_queue::open_tickets(&self.pool, now)
            .await
            .map_err(|e| read_problem(&e))?;
        if include == Some(TicketsInclude::Recent) {
            let since = now - Duration::minutes(RECENT_MINUTES);
            tickets.extend(
                kitchen_queue::closed_since(&self.pool, since, now)
                    .await
                    .map_err(|e| read_problem(&e))?,
            );
        }
        Ok(Json(match station {
            Some(station) => tickets
                .into_iter()
                .filter_map(|ticket| ticket.for_station(&station))
                .collect(),
            None => tickets,
        }))
    }

    /// One ticket, whatever its state.
    #[oai(
        path = "/tickets/:order_id",
        method = "get",
        tag = "KitchenTags::Tickets"
    )]
    async fn ticket(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
    ) -> Result<Json<QueuedTicket>, Problem> {
        auth.0.require(KITCHEN_STAFF)?;
        kitchen_queue::ticket(&self.pool, order_id.0, Utc::now())
            .await
            .map_err(|e| read_problem(&e))?
            .map(Json)
            .ok_or_else(|| {
                Problem::not_found(
                    "ticket-not-found",
                    format!("no ticket for order {}", order_id.0),
                )
            })
    }

    /// A chef starts preparing one item: it becomes *en préparation*.
    #[oai(
        path = "/tickets/:order_id/items/:index/start",
        method = "post",
        tag = "KitchenTags::Tickets"
    )]
    async fn start_item(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
        index: Path<u32>,
    ) -> Result<Json<QueuedTicket>, Problem> {
        auth.0.require(&[Role::Chef])?;
        let command = TicketCommand::StartItem {
            index: index.0 as usize,
            at: Utc::now(),
        };
        self.execute(&auth, order_id.0, command).await
    }

    /// A chef finishes one item: it becomes *prêt à servir* (straight from pending is
    /// allowed); the last one makes the whole ticket ready.
    #[oai(
        path = "/tickets/:order_id/items/:index/ready",
        method = "post",
        tag = "KitchenTags::Tickets"
    )]
    async fn ready_item(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
        index: Path<u32>,
    ) -> Result<Json<QueuedTicket>, Problem> {
        auth.0.require(&[Role::Chef])?;
        let command = TicketCommand::ReadyItem {
            index: index.0 as usize,
            at: Utc::now(),
        };
        self.execute(&auth, order_id.0, command).await
    }

    /// A chef takes back an item's last step (a mis-tap): `in_preparation → pending`,
    /// `ready → in_preparation` (or `pending` if it skipped preparation). Only within two
    /// minutes of that step, and only while the ticket is open: once it is ready the order
    /// and its delivery have moved on, so undo is refused (409 `ticket-too-late-to-undo`).
    #[oai(
        path = "/tickets/:order_id/items/:index/undo",
        method = "post",
        tag = "KitchenTags::Tickets"
    )]
    async fn undo_item_step(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
        index: Path<u32>,
    ) -> Result<Json<QueuedTicket>, Problem> {
        auth.0.require(&[Role::Chef])?;
        let command = TicketCommand::UndoItemStep {
            index: index.0 as usize,
            at: Utc::now(),
        };
        self.execute(&auth, order_id.0, command).await
    }

    /// Every remaining item of the ticket is ready at once ("bump").
    #[oai(
        path = "/tickets/:order_id/bump",
        method = "post",
        tag = "KitchenTags::Tickets"
    )]
    async fn bump(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
    ) -> Result<Json<QueuedTicket>, Problem> {
        auth.0.require(&[Role::Chef])?;
        self.execute(&auth, order_id.0, TicketCommand::Bump { at: Utc::now() })
            .await
    }

    /// The kitchen cannot make this order; only before any item is ready.
    #[oai(
        path = "/tickets/:order_id/reject",
        method = "post",
        tag = "KitchenTags::Tickets"
    )]
    async fn reject(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
        body: Json<RejectTicket>,
    ) -> Result<Json<QueuedTicket>, Problem> {
        auth.0.require(KITCHEN_STAFF)?;
        let body = body.0;
        if !body.sold_out_items.is_empty() {
            // The run-out is a fact whatever becomes of the ticket: recorded first, so a
            // rejection refused (an item already ready) still takes the dish off the menu.
            let loaded = store::load::<Ticket>(&self.pool, &order_id.0.to_string())
                .await
                .map_err(|e| command_problem(e, ticket_problem))?;
            let mut dishes = Vec::new();
            for index in &body.sold_out_items {
                let item = loaded
                    .aggregate
                    .items()
                    .get(*index as usize)
                    .ok_or_else(|| {
                        Problem::not_found(
                            "ticket-no-such-item",
                            format!("ticket {} has no item {index}", order_id.0),
                        )
                        .with_field("soldOutItems")
                    })?;
                dishes.push((item.dish_id, item.dish_name.clone()));
            }
            dishes.dedup();
            for (dish_id, dish_name) in dishes {
                self.mark_sold_out(&auth, dish_id, Some(dish_name), Some(body.reason.clone()))
                    .await?;
            }
        }
        let command = TicketCommand::Reject {
            reason: body.reason,
            at: Utc::now(),
        };
        self.execute(&auth, order_id.0, command).await
    }

    /// The kitchen has run out of a dish (chef, manager): `kitchen.stock.dish_sold_out`, and
    /// the orders service takes it off the menu within a second. Said again, it is recorded
    /// again (the menu may have been put back meanwhile).
    #[oai(
        path = "/dishes/:dish_id/sold-out",
        method = "post",
        tag = "KitchenTags::Tickets"
    )]
    async fn sold_out(
        &self,
        auth: BearerAuth,
        dish_id: Path<Uuid>,
        body: Json<SoldOut>,
    ) -> Result<Json<DishStockState>, Problem> {
        auth.0.require(KITCHEN_STAFF)?;
        let dish_name = kitchen_queue::dish_name(&self.pool, dish_id.0)
            .await
            .map_err(|e| read_problem(&e))?;
        self.mark_sold_out(&auth, dish_id.0, dish_name, body.0.reason)
            .await?;
        self.stock_state(dish_id.0).await
    }

    /// The kitchen can make the dish again (chef, manager): `kitchen.stock.dish_back_in_stock`,
    /// and it is back on the menu.
    #[oai(
        path = "/dishes/:dish_id/back-in-stock",
        method = "post",
        tag = "KitchenTags::Tickets"
    )]
    async fn back_in_stock(
        &self,
        auth: BearerAuth,
        dish_id: Path<Uuid>,
    ) -> Result<Json<DishStockState>, Problem> {
        auth.0.require(KITCHEN_STAFF)?;
        let command = DishStockCommand::MarkBackInStock {
            dish_id: dish_id.0,
            by: auth.0.actor(),
            at: Utc::now(),
        };
        self.execute_stock(&auth, dish_id.0, command).await?;
        self.stock_state(dish_id.0).await
    }

    /// Every change to the queue, live (server-sent events). Resume with `Last-Event-ID`.
    /// `station=grill` sends only the tickets with grill items, with only those items.
    #[oai(path = "/tickets/stream", method = "get", tag = "KitchenTags::Tickets")]
    async fn stream(
        &self,
        auth: BearerAuth,
        #[oai(name = "Last-Event-ID")] last_event_id: Header<Option<i64>>,
        /// Only this station's tickets and items (`grill`, `cold`…; case does not matter).
        station: Query<Option<String>>,
    ) -> Result<EventStream<futures::stream::BoxStream<'static, TicketChange>>, Problem> {
        auth.0.require(KITCHEN_STAFF)?;
        let station = station_filter(station.0)?;
        let pool = self.pool.clone();
        let changes = feed::follow(
            pool.clone(),
            &self.hub,
            kitchen_queue::FEED,
            None,
            last_event_id.0,
        )
        // The changes that are there at once are read in one query, not one each: when the
        // estimator re-quotes a hundred tickets, a new order's frame does not wait behind a
        // hundred reads (the kitchen screen's tail at load; see BENCHMARKS.md).
        .ready_chunks(READ_AT_ONCE)
        .then(move |changes| {
            let pool = pool.clone();
            let station = station.clone();
            async move { ticket_changes(&pool, changes, station.as_deref()).await }
        })
        // A read that fails ends the stream: the screen reconnects from the last id it got and
        // misses nothing, where sending the frames after it would skip these changes for good.
        .take_while(|frames| {
            if let Err(error) = frames {
                tracing::warn!(%error, "cannot read the tickets of the kitchen's changes; ending the stream");
            }
            std::future::ready(frames.is_ok())
        })
        .flat_map(|frames| futures::stream::iter(frames.unwrap_or_default()))
        .boxed();
        Ok(EventStream::new(changes)
            .keep_alive(std::time::Duration::from_secs(15))
            .to_event(|change| {
                poem::web::sse::Event::message(change.to_json_string())
                    .event_type("ticket")
                    .id(change.change_id.to_string())
            }))
    }

    /// Tickets open and late now, open lines per station, and today's preparation times
    /// (average and 90th percentile, from order placed to ticket ready), with the pace and
    /// the quote the estimator works with.
    #[oai(
        path = "/kitchen/metrics",
        method = "get",
        tag = "KitchenTags::Metrics"
    )]
    async fn metrics(&self, auth: BearerAuth) -> Result<Json<KitchenMetrics>, Problem> {
        auth.0.require(KITCHEN_STAFF)?;
        let now = Utc::now();
        let since = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map_or(now, |midnight| midnight.and_utc());
        let load = Load::read(&self.pool, now, self.lanes_per_station)
            .await
            .map_err(|e| read_problem(&e))?;
        let day = kitchen_queue::day_stats(&self.pool, since)
            .await
            .map_err(|e| read_problem(&e))?;
        Ok(Json(KitchenMetrics {
            since,
            tickets_open: count(load.open.len()),
            tickets_late: count(load.open.iter().filter(|t| t.late).count()),
            stations: station_loads(&load.open),
            ready_today: day.ready,
            late_today: day.ready_late,
            rejected_today: day.rejected,
            cancelled_today: day.cancelled,
            average_prep_seconds: day.average_prep_seconds.map(tenths),
            p90_prep_seconds: day.p90_prep_seconds.map(tenths),
            pace: (load.model.pace * 100.0).round() / 100.0,
            new_order_minutes: load.new_order_minutes(),
        }))
    }
}

impl KitchenApi {
    async fn mark_sold_out(
        &self,
        auth: &BearerAuth,
        dish_id: Uuid,
        dish_name: Option<String>,
        reason: Option<String>,
    ) -> Result<(), Problem> {
        let command = DishStockCommand::MarkSoldOut {
            dish_id,
            dish_name,
            reason,
            by: auth.0.actor(),
            at: Utc::now(),
        };
        self.execute_stock(auth, dish_id, command).await
    }

    /// Issues one command on a dish's stock (a conflict is retried: each try decides again).
    async fn execute_stock(
        &self,
        auth: &BearerAuth,
        dish_id: Uuid,
        command: DishStockCommand,
    ) -> Result<(), Problem> {
        let stock = store::event_store::<DishStock>(self.pool.clone(), ());
        let id = dish_id.to_string();
        let metadata = auth.0.command_metadata(id.clone())?;
        store::execute_deciding_again(&stock, &id, &command, &metadata)
            .await
            .map_err(|error| command_problem(error, problems::stock_problem))
    }

    async fn stock_state(&self, dish_id: Uuid) -> Result<Json<DishStockState>, Problem> {
        let loaded = store::load::<DishStock>(&self.pool, &dish_id.to_string())
            .await
            .map_err(|e| command_problem(e, problems::stock_problem))?;
        let since = loaded.aggregate.sold_out_since();
        Ok(Json(DishStockState {
            dish_id,
            sold_out: since.is_some(),
            sold_out_since: since,
        }))
    }

    /// Issues one command on a ticket and answers with the ticket as it now stands (read from
    /// the aggregate: the queue may lag a few milliseconds behind; routing and target come
    /// from the queue, which has them from the moment the ticket appears there).
    ///
    /// A conflict (someone else wrote to the ticket meanwhile: with stations, the grill and
    /// the pastry chef work on one ticket at once) is retried for commands that say where an
    /// item must end up, since they are decided again on the fresh state: two chefs on
    /// different items both succeed, and a second chef starting the same item hears "already
    /// started" (409). Not for undo, which is relative to what the chef saw: a retry could
    /// take back someone else's step, so its conflict is answered as is (409).
    async fn execute(
        &self,
        auth: &BearerAuth,
        order_id: Uuid,
        command: TicketCommand,
    ) -> Result<Json<QueuedTicket>, Problem> {
        let id = order_id.to_string();
        let metadata = auth.0.command_metadata(id.clone())?;
        let result = if matches!(command, TicketCommand::UndoItemStep { .. }) {
            self.tickets
                .execute_with_metadata(&id, command, metadata.into_map())
                .await
        } else {
            store::execute_deciding_again(&self.tickets, &id, &command, &metadata).await
        };
        result.map_err(|error| command_problem(error, ticket_problem))?;
        let loaded = store::load::<Ticket>(&self.pool, &id)
            .await
            .map_err(|e| command_problem(e, ticket_problem))?;
        let now = Utc::now();
        let routed = kitchen_queue::ticket(&self.pool, order_id, now)
            .await
            .map_err(|e| read_problem(&e))?;
        Ok(Json(problems::queued(
            &loaded.aggregate,
            order_id,
            loaded.version,
            routed.as_ref(),
            now,
        )))
    }
}

/// Most changes of the kitchen feed one stream reads in one query.
const READ_AT_ONCE: usize = 256;

/// The frames for changes of the kitchen feed: each order's ticket as it is now, read in one
/// query for them all, sent once under its highest change id (an earlier change of the same
/// order would only show the same ticket), in id order, cut to `station` if one is asked for.
/// Notifications come in commit order, which is not always id order: the highest id, not the
/// last one received, is what a client that resumes from it must have seen.
async fn ticket_changes(
    pool: &PgPool,
    changes: Vec<feed::Change>,
    station: Option<&str>,
) -> Result<Vec<TicketChange>, sqlx::Error> {
    let latest = latest_per_order(&changes);
    let order_ids: Vec<Uuid> = latest.iter().map(|(_, id)| *id).collect();
    let tickets = kitchen_queue::tickets(pool, &order_ids, Utc::now()).await?;
    Ok(latest
        .into_iter()
        .filter_map(|(change_id, order_id)| {
            let ticket = tickets.iter().find(|t| t.order_id == order_id)?.clone();
            let ticket = match station {
                Some(station) => ticket.for_station(station)?,
                None => ticket,
            };
            Some(TicketChange { change_id, ticket })
        })
        .collect())
}

/// Each order of `changes` once, with its highest change id, in id order.
fn latest_per_order(changes: &[feed::Change]) -> Vec<(i64, Uuid)> {
    let mut latest: Vec<(i64, Uuid)> = Vec::with_capacity(changes.len());
    for change in changes {
        let Ok(order_id) = change.key.parse::<Uuid>() else {
            continue;
        };
        match latest.iter_mut().find(|(_, id)| *id == order_id) {
            Some(seen) => seen.0 = seen.0.max(change.id),
            None => latest.push((change.id, order_id)),
        }
    }
    latest.sort_unstable();
    latest
}

/// A station name as the menu spells it (trimmed, lower case); a blank one is refused.
fn station_filter(station: Option<String>) -> Result<Option<String>, Problem> {
    let Some(station) = station else {
        return Ok(None);
    };
    let station = station.trim().to_lowercase();
    if station.is_empty() || station.chars().count() > Dish::MAX_STATION_CHARS {
        return Err(Problem::bad_request(
            "invalid-station",
            format!(
                "a station is 1 to {} characters, like \"grill\"",
                Dish::MAX_STATION_CHARS
            ),
        )
        .with_field("station"));
    }
    Ok(Some(station))
}

fn station_loads(open: &[QueuedTicket]) -> Vec<StationLoad> {
    let mut stations: std::collections::BTreeMap<&str, StationLoad> = Default::default();
    for item in open
        .iter()
        .filter(|ticket| ticket.status == TicketState::Open)
        .flat_map(|ticket| &ticket.items)
    {
        let load = stations
            .entry(item.station.as_str())
            .or_insert_with(|| StationLoad {
                station: item.station.clone(),
                pending: 0,
                in_preparation: 0,
            });
        match item.status {
            ItemState::Pending => load.pending += 1,
            ItemState::InPreparation => load.in_preparation += 1,
            ItemState::Ready => {}
        }
    }
    stations.into_values().collect()
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn tenths(seconds: f64) -> f64 {
    (seconds * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: i64, order_id: Uuid) -> feed::Change {
        feed::Change {
            id,
            feed: kitchen_queue::FEED.to_owned(),
            key: order_id.to_string(),
        }
    }

    /// Notifications come in commit order: an order changed at 11 and 12, received as 12 then
    /// 11, is sent under 12, and before an order whose change is 13, so that a screen that
    /// resumes from 13 has seen them all.
    #[test]
    fn a_burst_sends_each_order_once_under_its_highest_change_in_id_order() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let changes = [change(12, a), change(13, b), change(11, a)];
        assert_eq!(latest_per_order(&changes), [(12, a), (13, b)]);
        let mut broken = change(14, b);
        broken.key = "not an order".to_owned();
        assert_eq!(latest_per_order(&[broken]), []);
    }
}
