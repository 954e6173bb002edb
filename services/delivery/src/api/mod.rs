//! The delivery service's HTTP API (API.md, delivery table): [`deliveries`] for the journey
//! of each order's food, [`couriers`] for the fleet, [`notifications`] for everyone's
//! notifications and the managers' webhooks. Handlers are thin: authorize, issue one command
//! or one query, map the result.
//!
//! Who may see a delivery: the manager, the order's customer, and the courier it is assigned
//! to; anyone else is told it does not exist (404), so order ids cannot be probed.

pub mod couriers;
pub mod deliveries;
pub mod notifications;
mod problems;

use brigade_domain::delivery::{Courier, Delivery};
use brigade_domain::Role;
use brigade_nats::store::EventStore;
use brigade_platform::auth::Caller;
use brigade_projections::feed::FeedHub;
use brigade_projections::live_deliveries::LiveDelivery;
use poem_openapi::Tags;
use sqlx::PgPool;

use crate::geo::GeoPoint;

pub use problems::{courier_problem, delivery_problem};

#[derive(Tags)]
enum DeliveryTags {
    /// Each order's delivery, from the kitchen's pass to the customer's door.
    Deliveries,
    /// The fleet: couriers, their shifts and positions.
    Couriers,
    /// Notifications to customers, couriers and managers, and the webhooks that relay them.
    Notifications,
}

/// What every endpoint works with. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub pool: PgPool,
    pub deliveries: EventStore<Delivery>,
    pub couriers: EventStore<Courier>,
    pub hub: FeedHub,
    pub restaurant: GeoPoint,
    /// One read of a delivery per change, shared by all its live watchers.
    pub live_reads:
        brigade_projections::feed::SharedReads<brigade_projections::live_deliveries::LiveDelivery>,
    /// Route samples recorded on the delivery together.
    pub route_batch: usize,
}

/// The whole API, as served: both groups of endpoints.
#[must_use]
pub fn api(
    context: &Context,
) -> (
    deliveries::DeliveriesApi,
    couriers::CouriersApi,
    notifications::NotificationsApi,
) {
    (
        deliveries::DeliveriesApi(context.clone()),
        couriers::CouriersApi(context.clone()),
        notifications::NotificationsApi(context.clone()),
    )
}

/// Whether `caller` may see `delivery`.
#[must_use]
pub fn may_see(caller: &Caller, delivery: &LiveDelivery) -> bool {
    match caller.role {
        Role::Manager => true,
        Role::Customer => delivery.customer_id == caller.account_id,
        Role::Courier => delivery
            .courier
            .as_ref()
            .is_some_and(|c| c.id == caller.account_id),
        Role::Chef => false,
    }
}
