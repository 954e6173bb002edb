//! The kitchen service (port 3003): receives orders as tickets, and chefs move each dish
//! through *en préparation* and *prêt à servir* on the live kitchen screen.
//!
//! The map of the service, top to bottom:
//! - commands: the [`Ticket`](brigade_domain::kitchen::Ticket) aggregate, one per order,
//!   stored by postgres-es in the `kitchen` database and published on `kitchen.ticket.*`;
//! - [`subscriptions`]: what the kitchen does when the orders service says something;
//! - read model: the kitchen queue (`brigade_projections::kitchen_queue`), fed by the
//!   kitchen's own stream and pushed live to screens, with each item's station and minutes
//!   from the kitchen's copy of the menu (fed by `orders.dish.*`);
//! - [`estimator`]: quotes when each open ticket will be ready, from the live load, and
//!   records the quote (the `ReadyEstimate` aggregate, published on `kitchen.estimate.*`);
//! - dishes running out: the `DishStock` aggregate, one per dish, published on
//!   `kitchen.stock.*` (a chef's "Épuisé", or a ticket rejected for a missing dish), which
//!   the orders service turns into the dish leaving the menu;
//! - [`api`]: the HTTP endpoints.
#![forbid(unsafe_code)]

pub mod api;
pub mod estimator;
pub mod subscriptions;

use brigade_domain::kitchen::estimate::KitchenModel;
use brigade_domain::kitchen::Ticket;
use brigade_platform::auth::TokenVerifier;
use brigade_platform::{Service, ServiceName, Settings};
use brigade_projections::{feed, kitchen_queue};

/// Starts the kitchen service and serves until SIGTERM.
///
/// # Errors
/// When PostgreSQL cannot be reached at start-up, or the port is taken.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let verifier = TokenVerifier::remote(&settings.identity_url, &settings.token_audience);
    let mut service = Service::start(
        ServiceName::Kitchen,
        settings,
        &[feed::MIGRATIONS, kitchen_queue::MIGRATIONS],
    )
    .await?;
    let tickets = brigade_nats::store::event_store::<Ticket>(service.pool.clone(), ());
    service.run_relay();
    // The chefs' screens follow the queue: a new order shows as soon as its ticket opens, a
    // new quote as soon as it is made. The kitchen's copy of the dishes may gather a few
    // milliseconds of events into one transaction. (Gathered, the quotes reached the screens
    // in bursts that held a new order's frame back: 5 → 37 ms p99 at 20 orders/s.)
    service.subscribe_all(
        consumers(),
        &[
            subscriptions::FROM_ORDERS,
            kitchen_queue::NAME,
            kitchen_queue::ESTIMATES_NAME,
        ],
    );
    // Tokens of accounts disabled in identity stop working here too.
    let (bus, guard) = (service.bus.clone(), verifier.clone());
    service.spawn(move |shutdown| {
        brigade_platform::auth::follow_disabled_accounts(bus, guard, shutdown)
    });
    let hub = feed::FeedHub::start(service.pool.clone(), service.shutdown_signal());
    let lanes = lanes_per_station();
    {
        let (pool, hub) = (service.pool.clone(), hub.clone());
        service.spawn(move |shutdown| estimator::run(pool, hub, lanes, shutdown));
    }
    let api = api::KitchenApi {
        pool: service.pool.clone(),
        tickets,
        hub,
        lanes_per_station: lanes,
    };
    service
        .serve(
            api,
            vec![
                ("/tickets", "Kitchen queue (chef, manager)"),
                ("/kitchen/metrics", "Kitchen metrics (chef, manager)"),
            ],
            verifier,
        )
        .await
}

/// How many lines one station cooks at once, for the estimator: `BRIGADE_KITCHEN_LANES`
/// (1 to 20), or 2. A kitchen-only knob, so it is read here rather than in the shared settings.
fn lanes_per_station() -> u32 {
    std::env::var("BRIGADE_KITCHEN_LANES")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|lanes| (1..=20).contains(lanes))
        .unwrap_or(KitchenModel::DEFAULT_LANES_PER_STATION)
}

/// Every durable consumer of the kitchen: what it does with other services' events, and its
/// read models. `brigade dead-letters replay` finds a parked message's handler here.
#[must_use]
pub fn consumers() -> Vec<brigade_nats::Subscription> {
    let mut all = subscriptions::all();
    all.push(kitchen_queue::subscription());
    all.push(kitchen_queue::dishes_subscription());
    all.push(kitchen_queue::estimates_subscription());
    all
}

/// The kitchen's OpenAPI document (committed as `openapi/kitchen.json`).
#[must_use]
pub fn openapi_document() -> String {
    let pool = brigade_platform::system::lazy_pool();
    let api = api::KitchenApi {
        tickets: brigade_nats::store::event_store::<Ticket>(pool.clone(), ()),
        pool,
        hub: feed::FeedHub::detached(),
        lanes_per_station: KitchenModel::DEFAULT_LANES_PER_STATION,
    };
    brigade_platform::runtime::openapi_document(ServiceName::Kitchen, api)
}
