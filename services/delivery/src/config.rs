//! What the delivery service needs to know beyond the platform's [`Settings`]: where the
//! restaurant is (dispatch measures distances from it, ETAs route through it), whether
//! dispatch runs by itself and how far ahead of readiness, the pace of alerts and of webhook
//! and e-mail retries, the SMTP relay, and how route samples are batched.
//!
//! The defaults run the service as the brief describes it; tests turn automatic dispatch off
//! to drive every assignment by hand.
//!
//! [`Settings`]: brigade_platform::Settings

use std::time::Duration;

use brigade_platform::Settings;

use crate::geo::GeoPoint;
use crate::smtp::SmtpConfig;

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
    /// How long before the kitchen expects the food ready dispatch sends a courier (zero:
    /// only once it is ready).
    pub dispatch_lead: Duration,
    /// The SMTP relay notifications are e-mailed through; no e-mail when `None`.
    pub smtp: Option<SmtpConfig>,
    /// How often the e-mail sender looks for e-mails due.
    pub email_interval: Duration,
    /// The wait after an e-mail's first refusal; it doubles at each further one.
    pub email_retry_base: Duration,
    /// Refusals after which an e-mail is parked.
    pub email_max_attempts: i32,
    /// Route samples recorded on the delivery together (and the rest at handover).
    pub route_batch: usize,
}

impl DeliveryConfig {
    /// The defaults, with what the platform's settings say (SMTP relay, dispatch lead).
    ///
    /// # Errors
    /// An SMTP URL or sender that cannot be used.
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        let mut config = Self::default();
        if let Some(url) = &settings.smtp_url {
            config.smtp = Some(SmtpConfig::from_url(url, settings.smtp_from.as_deref())?);
        }
        if let Some(secs) = settings.dispatch_lead_secs {
            config.dispatch_lead = Duration::from_secs(secs);
        }
        Ok(config)
    }
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
            dispatch_lead: Duration::from_secs(5 * 60),
            smtp: None,
            email_interval: Duration::from_secs(1),
            email_retry_base: Duration::from_secs(30),
            email_max_attempts: 8,
            // About five minutes of riding at one sample every 30 s.
            route_batch: 10,
        }
    }
}
