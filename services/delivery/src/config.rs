//! What the delivery service needs to know beyond the platform's [`Settings`]: where the
//! restaurant is (dispatch measures distances from it, ETAs route through it), whether
//! dispatch runs by itself, and the pace of alerts and webhook retries.
//!
//! The defaults run the service as the brief describes it; tests turn automatic dispatch off
//! to drive every assignment by hand.
//!
//! [`Settings`]: brigade_platform::Settings

use std::time::Duration;

use crate::geo::GeoPoint;

/// The delivery service's own settings.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Where couriers collect the food.
    pub restaurant: GeoPoint,
    /// Assign the nearest free courier on shift as soon as a delivery is ready for pickup.
    pub auto_dispatch: bool,
    /// How often dispatch looks at the queue even when no change woke it: the safety net for
    /// a missed notification.
    pub dispatch_interval: Duration,
    /// A delivery ready for pickup this long with no courier is reported to the managers.
    pub waiting_alert: Duration,
    /// How often the webhook sender looks for deliveries due.
    pub webhook_interval: Duration,
    /// The wait after a webhook's first failure; it doubles at each further failure.
    pub webhook_retry_base: Duration,
    /// Failed attempts after which a webhook delivery is parked.
    pub webhook_max_attempts: i32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            // Place de l'Hôtel de Ville, Paris: the demo restaurant.
            restaurant: GeoPoint {
                lat: 48.8566,
                lon: 2.3522,
            },
            auto_dispatch: true,
            dispatch_interval: Duration::from_secs(2),
            waiting_alert: Duration::from_secs(5 * 60),
            webhook_interval: Duration::from_millis(500),
            webhook_retry_base: Duration::from_secs(2),
            webhook_max_attempts: 10,
        }
    }
}
