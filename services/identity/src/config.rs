//! The identity service's knobs, derived from the platform [`Settings`] with defaults that
//! follow OWASP's session and authentication guidance.

use std::net::IpAddr;
use std::time::Duration;

use brigade_platform::Settings;

/// How the identity service issues tokens and throttles sign-ins.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Audience of the access tokens (shared by all services).
    pub audience: String,
    /// Lifetime of an access token: short, because a stolen one cannot be recalled except by
    /// disabling the account.
    pub access_token_ttl: Duration,
    /// Longest a session lasts from sign-in, however often it is refreshed.
    pub session_ttl: Duration,
    /// How long a rotated-in signing key is published before it signs (see [`crate::keys`]).
    pub key_activation_delay: Duration,
    pub login_limits: LoginLimits,
    /// Peers whose `X-Forwarded-For` is believed (the gateway, a load balancer). Empty: the
    /// TCP peer is the client address.
    pub trusted_proxies: Vec<IpAddr>,
    /// The first manager (e-mail, password), created at start-up when not there yet.
    pub first_manager: Option<(String, String)>,
}

/// Failed sign-ins allowed per window before further attempts get 429.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Per e-mail address (guards one account against password guessing).
    pub per_account: u32,
    /// Per client address (guards every account against one guesser).
    pub per_address: u32,
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_account: 5,
            per_address: 30,
            window: Duration::from_secs(15 * 60),
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            audience: brigade_platform::auth::AUDIENCE.to_owned(),
            access_token_ttl: Duration::from_secs(15 * 60),
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            key_activation_delay: crate::keys::KEY_ACTIVATION_DELAY,
            login_limits: LoginLimits::default(),
            trusted_proxies: Vec::new(),
            first_manager: None,
        }
    }
}

impl IdentityConfig {
    #[must_use]
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            audience: settings.token_audience.clone(),
            first_manager: settings.first_manager.clone(),
            ..Self::default()
        }
    }
}
