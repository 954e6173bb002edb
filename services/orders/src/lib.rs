//! The orders service (port 3002): the menu, and customers' orders from placement to delivery.
//!
//! The map of the service, top to bottom:
//! - commands: the [`Dish`] aggregate (the menu, `orders.dish.*`) and the [`Order`] aggregate
//!   (`orders.order.*`), stored by postgres-es in the `orders` database;
//! - [`starter_menu`]: the French bistro menu a new installation starts with;
//! - [`checkout`]: a customer's basket priced from the menu, never from the client;
//! - [`idempotency`]: `Idempotency-Key`, so a retried `POST /orders` places one order (keys
//!   expire after 24 hours, purged hourly by a background task);
//! - [`dietary_profiles`]: customers' declared allergens (from identity), checked at checkout;
//! - [`kitchen_capacity`]: tickets per 15-minute slot, the quoted ready time, full slots;
//! - [`placement`]: a new order, its key's claim and its kitchen slot stored in one commit;
//! - [`subscriptions`]: what an order does when the kitchen or the delivery says something;
//! - read models: the menu (`brigade_projections::menu`) and order tracking
//!   (`brigade_projections::order_tracking`), fed by the service's own stream (plus the
//!   kitchen's ready-time estimates), the latter pushed live to tracking pages;
//! - [`api`]: the HTTP endpoints.
#![forbid(unsafe_code)]

pub mod api;
pub mod checkout;
pub mod dietary_profiles;
pub mod idempotency;
pub mod kitchen_capacity;
pub mod placement;
pub mod starter_menu;
pub mod subscriptions;

use brigade_domain::ordering::{Dish, Order};
use brigade_platform::auth::TokenVerifier;
use brigade_platform::{Service, ServiceName, Settings};
use brigade_projections::{feed, menu, order_tracking};

/// Starts the orders service and serves until SIGTERM.
///
/// # Errors
/// When PostgreSQL cannot be reached at start-up, the starter menu cannot be stored, or the
/// port is taken.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let verifier = TokenVerifier::remote(&settings.identity_url, &settings.token_audience);
    let mut service = Service::start(
        ServiceName::Orders,
        settings,
        &[
            feed::MIGRATIONS,
            menu::MIGRATIONS,
            order_tracking::MIGRATIONS,
            idempotency::MIGRATIONS,
            kitchen_capacity::MIGRATIONS,
            dietary_profiles::MIGRATIONS,
        ],
    )
    .await?;
    let capacity = kitchen_capacity::KitchenCapacity::new(
        service.pool.clone(),
        service.settings.kitchen_slot_capacity,
    );
    let orders = brigade_nats::store::event_store::<Order>(service.pool.clone(), ());
    let dishes = brigade_nats::store::event_store::<Dish>(service.pool.clone(), ());
    starter_menu::seed(&dishes).await?;
    service.run_relay();
    // Nobody watches these consumers' effects to the millisecond: they gather (`Pace`).
    service.subscribe_all(consumers(&service.pool), &[]);
    // Tokens of accounts disabled in identity stop working here too.
    let (bus, guard) = (service.bus.clone(), verifier.clone());
    service.spawn(move |shutdown| {
        brigade_platform::auth::follow_disabled_accounts(bus, guard, shutdown)
    });
    let pool = service.pool.clone();
    service.spawn(move |shutdown| idempotency::purge_task(pool, shutdown));
    let hub = feed::FeedHub::start(service.pool.clone(), service.shutdown_signal());
    let api = (
        api::MenuApi {
            pool: service.pool.clone(),
            dishes,
        },
        api::OrdersApi {
            pool: service.pool.clone(),
            orders,
            hub,
            capacity: capacity.clone(),
        },
        api::ReadyTimeApi {
            pool: service.pool.clone(),
            capacity,
        },
    );
    service
        .serve(
            api,
            vec![
                ("/menu", "The menu (anyone)"),
                ("/orders", "Orders (customer: own; manager: all)"),
            ],
            verifier,
        )
        .await
}

/// The read models of the orders service, for `brigade projections` (status, rebuild).
#[must_use]
pub fn projections() -> Vec<brigade_projections::rebuild::ProjectionSpec> {
    vec![menu::spec(), order_tracking::spec()]
}

/// The orders service's OpenAPI document (committed as `openapi/orders.json`).
#[must_use]
pub fn openapi_document() -> String {
    let pool = brigade_platform::system::lazy_pool();
    let api = (
        api::MenuApi {
            pool: pool.clone(),
            dishes: brigade_nats::store::event_store::<Dish>(pool.clone(), ()),
        },
        api::OrdersApi {
            pool: pool.clone(),
            orders: brigade_nats::store::event_store::<Order>(pool.clone(), ()),
            hub: feed::FeedHub::detached(),
            capacity: kitchen_capacity::KitchenCapacity::new(pool.clone(), None),
        },
        api::ReadyTimeApi {
            pool: pool.clone(),
            capacity: kitchen_capacity::KitchenCapacity::new(pool, None),
        },
    );
    brigade_platform::runtime::openapi_document(ServiceName::Orders, api)
}

/// Every durable consumer of the orders service: what it does with the kitchen's and the
/// delivery's events, and its read models. `brigade dead-letters replay` finds a parked
/// message's handler here.
#[must_use]
pub fn consumers(pool: &sqlx::PgPool) -> Vec<brigade_nats::Subscription> {
    let mut all = subscriptions::all(pool.clone());
    all.push(menu::subscription());
    all.push(order_tracking::subscription());
    all.push(order_tracking::estimates_subscription());
    all.push(kitchen_capacity::subscription());
    all
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_openapi_document_describes_the_contract() {
        let document: serde_json::Value =
            serde_json::from_str(&super::openapi_document()).expect("a JSON document");
        for path in [
            "/menu",
            "/menu/dishes",
            "/menu/dishes/{dish_id}",
            "/menu/ready-time",
            "/orders",
            "/orders/board",
            "/orders/{order_id}",
            "/orders/{order_id}/cancel",
            "/orders/{order_id}/stream",
        ] {
            assert!(
                document["paths"].get(path).is_some(),
                "{path} is not documented"
            );
        }
        let dish = &document["components"]["schemas"]["MenuDish"]["properties"];
        assert!(dish.get("allergens").is_some() && dish.get("available").is_some());
    }
}
