//! The delivery service (port 3000): gets each order's food from the kitchen's pass to the
//! customer's door, and runs the courier fleet.
//!
//! The map of the service, top to bottom:
//! - commands: the [`Delivery`] aggregate (one per order, id = order id) and the [`Courier`]
//!   aggregate (id = the courier's account id), stored by postgres-es in the `delivery`
//!   database and published on `delivery.delivery.*` and `delivery.courier.*`;
//! - [`subscriptions`]: what delivery does when orders, the kitchen or identity say something;
//! - [`dispatch`]: who carries which delivery — bookings that never give a courier two
//!   deliveries, and the automatic dispatcher serving the queue;
//! - read models: live deliveries and the fleet (`brigade_projections::{live_deliveries,
//!   couriers}`), fed by the service's own stream and pushed live over SSE; couriers' last
//!   positions, kept out of the event store;
//! - [`notifications`]: who is told what, once, in-app, through [`webhooks`] and by
//!   [`email`] (over [`smtp`]) when a relay is configured;
//! - [`route`]: the courier's way with the food, sampled from positions into the delivery;
//! - [`api`]: the HTTP endpoints; [`geo`]: distances and ETAs.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod dispatch;
pub mod email;
pub mod geo;
pub mod notifications;
pub mod route;
pub mod schema;
pub mod smtp;
pub mod subscriptions;
pub mod webhooks;

use brigade_domain::delivery::{Courier, Delivery};
use brigade_platform::auth::TokenVerifier;
use brigade_platform::{Service, ServiceName, Settings};
use brigade_projections::{couriers, feed, live_deliveries};

pub use config::DeliveryConfig;

/// Starts the delivery service with its default configuration (and the SMTP relay and
/// dispatch lead of `settings`) and serves until SIGTERM.
///
/// # Errors
/// When PostgreSQL cannot be reached at start-up, or the port is taken.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let config = DeliveryConfig::from_settings(&settings).map_err(anyhow::Error::msg)?;
    run_with(settings, config).await
}

/// Starts the delivery service with `config` and serves until SIGTERM.
///
/// # Errors
/// When PostgreSQL cannot be reached at start-up, or the port is taken.
pub async fn run_with(settings: Settings, config: DeliveryConfig) -> anyhow::Result<()> {
    let verifier = TokenVerifier::remote(&settings.identity_url, &settings.token_audience);
    let mut service = Service::start(
        ServiceName::Delivery,
        settings,
        &[
            feed::MIGRATIONS,
            couriers::MIGRATIONS,
            live_deliveries::MIGRATIONS,
            schema::MIGRATIONS,
        ],
    )
    .await?;
    let deliveries = brigade_nats::store::event_store::<Delivery>(service.pool.clone(), ());
    let fleet = brigade_nats::store::event_store::<Courier>(service.pool.clone(), ());
    service.run_relay();
    // Tokens of accounts disabled in identity stop working here too.
    let (bus, guard) = (service.bus.clone(), verifier.clone());
    service.spawn(move |shutdown| {
        brigade_platform::auth::follow_disabled_accounts(bus, guard, shutdown)
    });
    // Nobody watches these consumers' effects to the millisecond: they gather (`Pace`).
    service.subscribe_all(consumers(&service.pool), &[]);
    let hub = feed::FeedHub::start(service.pool.clone(), service.shutdown_signal());
    if config.auto_dispatch {
        let dispatcher =
            dispatch::Dispatcher::new(service.pool.clone(), deliveries.clone(), config.restaurant)
                .alert_after(config.waiting_alert)
                .dispatch_ahead(config.dispatch_lead);
        let (hub, interval) = (hub.clone(), config.dispatch_interval);
        service.spawn(move |shutdown| dispatcher.run(hub, interval, shutdown));
    }
    let sender = webhooks::WebhookSender::new(
        service.pool.clone(),
        config.webhook_retry_base,
        config.webhook_max_attempts,
    );
    let interval = config.webhook_interval;
    service.spawn(move |shutdown| sender.run(interval, shutdown));
    email::set_channel(&service.pool, config.smtp.is_some()).await?;
    if let Some(smtp) = config.smtp.clone() {
        let sender = email::EmailSender::new(
            service.pool.clone(),
            smtp,
            config.email_retry_base,
            config.email_max_attempts,
        );
        let interval = config.email_interval;
        service.spawn(move |shutdown| sender.run(interval, shutdown));
    }
    let context = api::Context {
        pool: service.pool.clone(),
        deliveries,
        couriers: fleet,
        hub,
        restaurant: config.restaurant,
        live_reads: feed::SharedReads::default(),
        route_batch: config.route_batch,
    };
    service
        .serve(
            api::api(&context),
            vec![
                (
                    "/deliveries",
                    "Deliveries in progress (courier: own, manager: all)",
                ),
                ("/couriers", "The courier fleet (manager)"),
                (
                    "/dispatch/queue",
                    "Deliveries waiting for a courier (manager)",
                ),
                ("/notifications", "Your notifications"),
            ],
            verifier,
        )
        .await
}

/// The delivery service's OpenAPI document (committed as `openapi/delivery.json`), described
/// without a database.
#[must_use]
pub fn openapi_document() -> String {
    let pool = brigade_platform::system::lazy_pool();
    let context = api::Context {
        deliveries: brigade_nats::store::event_store::<Delivery>(pool.clone(), ()),
        couriers: brigade_nats::store::event_store::<Courier>(pool.clone(), ()),
        pool,
        hub: feed::FeedHub::detached(),
        restaurant: DeliveryConfig::default().restaurant,
        live_reads: feed::SharedReads::default(),
        route_batch: DeliveryConfig::default().route_batch,
    };
    brigade_platform::runtime::openapi_document(ServiceName::Delivery, api::api(&context))
}

/// Every durable consumer of the delivery service: what it does with the orders', kitchen's
/// and identity's events, its read models and its notifications. `brigade dead-letters replay`
/// finds a parked message's handler here.
#[must_use]
pub fn consumers(pool: &sqlx::PgPool) -> Vec<brigade_nats::Subscription> {
    let fleet = brigade_nats::store::event_store::<Courier>(pool.clone(), ());
    let mut all = subscriptions::all(fleet, pool.clone());
    all.push(live_deliveries::subscription());
    all.push(couriers::subscription());
    all.push(dispatch::workload_subscription());
    all.extend(notifications::subscriptions(pool.clone()));
    all
}

/// The delivery service's read models, for `brigade projections`.
#[must_use]
pub fn projections() -> Vec<brigade_projections::rebuild::ProjectionSpec> {
    vec![
        brigade_projections::live_deliveries::spec(),
        brigade_projections::couriers::spec(),
    ]
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_openapi_document_describes_every_endpoint() {
        let document = super::openapi_document();
        for path in [
            "\"/deliveries\"",
            "\"/deliveries/{order_id}/assign\"",
            "\"/deliveries/{order_id}/stream\"",
            "\"/couriers/{id}\"",
            "\"/couriers/me/position\"",
            "\"/notifications\"",
            "\"/webhooks/{id}/deliveries\"",
        ] {
            assert!(document.contains(path), "{path} is missing");
        }
    }
}
