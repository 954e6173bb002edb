//! The kitchen service (port 3003): receives orders as tickets, and chefs move each dish
//! through *en préparation* and *prêt à servir* on the live kitchen screen.
//!
//! The map of the service, top to bottom:
//! - commands: the [`Ticket`](brigade_domain::kitchen::Ticket) aggregate, one per order,
//!   stored by postgres-es in the `kitchen` database and published on `kitchen.ticket.*`;
//! - [`subscriptions`]: what the kitchen does when the orders service says something;
//! - read model: the kitchen queue (`brigade_projections::kitchen_queue`), fed by the
//!   kitchen's own stream and pushed live to screens;
//! - [`api`]: the HTTP endpoints.
#![forbid(unsafe_code)]

pub mod api;
pub mod subscriptions;

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
    for subscription in subscriptions::all(tickets.clone()) {
        service.subscribe(subscription);
    }
    service.subscribe(kitchen_queue::subscription());
    let hub = feed::FeedHub::start(service.pool.clone(), service.shutdown_signal());
    let api = api::KitchenApi {
        pool: service.pool.clone(),
        tickets,
        hub,
    };
    service
        .serve(
            api,
            vec![("/tickets", "Kitchen queue (chef, manager)")],
            verifier,
        )
        .await
}

/// The kitchen's OpenAPI document (committed as `openapi/kitchen.json`).
#[must_use]
pub fn openapi_document() -> String {
    let pool = brigade_platform::system::lazy_pool();
    let api = api::KitchenApi {
        tickets: brigade_nats::store::event_store::<Ticket>(pool.clone(), ()),
        pool,
        hub: feed::FeedHub::detached(),
    };
    brigade_platform::runtime::openapi_document(ServiceName::Kitchen, api)
}
