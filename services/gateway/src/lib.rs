//! The gateway (port 8080): the web app, and the single origin for browsers.
//!
//! The map of the service, top to bottom:
//! - [`config`]: its port, TLS, timeouts, retries and circuit-breaker settings;
//! - [`upstream`] (with [`breaker`]): every call to a service, guarded;
//! - [`session`] and [`cookies`]: who is signed in, the tokens kept server-side (in a NATS
//!   key-value bucket shared by every gateway) and never in the page;
//! - [`visitor`]: per request, the language, the session and the CSRF check;
//! - [`proxy`]: `/api/{service}/…` forwarded with the user's token, live streams relayed;
//! - [`sign_in`]: sign-in, sign-up and sign-out pages, which call identity;
//! - [`pages`]: the customer's, the kitchen's, the courier's and the manager's pages, rendered
//!   here (maud) and kept live by the small scripts of [`assets`];
//! - [`headers`]: CSP and the other security headers on every answer.
#![forbid(unsafe_code)]

pub mod assets;
pub mod breaker;
pub mod config;
pub mod cookies;
pub mod headers;
pub mod i18n;
pub mod models;
pub mod pages;
pub mod proxy;
pub mod session;
pub mod sign_in;
pub mod upstream;
pub mod visitor;

use std::sync::Arc;
use std::time::{Duration, Instant};

use brigade_platform::{ServiceName, Settings};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{get, handler, post, web::Data, EndpointExt, IntoResponse, Response, Route};

pub use config::GatewayConfig;

use crate::models::Menu;
use crate::session::Sessions;
use crate::upstream::{FetchError, Upstream};

/// How long the menu read for pages is reused: the kitchen screen renders a card per change
/// and needs each dish's station; the menu changes a few times a day.
const MENU_CACHE_TTL: Duration = Duration::from_secs(15);
/// After a manager changes the menu, how long the menu is read afresh each time (not cached):
/// the menu read model follows the change within moments, and a copy read in those moments
/// may not have it yet.
const MENU_SETTLE: Duration = Duration::from_secs(3);

#[derive(Default)]
struct MenuCache {
    copy: Option<(Instant, Arc<Menu>)>,
    changed_at: Option<Instant>,
}

/// Everything a request handler works with.
pub struct Gateway {
    pub config: GatewayConfig,
    pub upstream: Upstream,
    pub sessions: Sessions,
    menu: tokio::sync::Mutex<MenuCache>,
}

impl Gateway {
    /// The gateway for `config`. NATS (the session store) is connected in the background when
    /// it is down: pages that need no session keep working meanwhile.
    ///
    /// # Errors
    /// When the HTTP client cannot be built or the NATS URL is invalid.
    pub async fn new(config: GatewayConfig) -> anyhow::Result<Arc<Self>> {
        let nats = async_nats::ConnectOptions::new()
            .name("brigade-gateway")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .connect(&config.nats_url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach NATS at {}: {e}", config.nats_url))?;
        Ok(Arc::new(Self {
            upstream: Upstream::new(&config)?,
            sessions: Sessions::new(nats, &config.sessions, config.session_idle_timeout),
            config,
            menu: tokio::sync::Mutex::new(MenuCache::default()),
        }))
    }

    /// The menu, read at most every few seconds. A stale copy is better than none when the
    /// orders service is down.
    ///
    /// # Errors
    /// When the orders service cannot give it and no copy was read before.
    pub async fn menu(&self) -> Result<Arc<Menu>, FetchError> {
        let mut cached = self.menu.lock().await;
        let settling = cached
            .changed_at
            .is_some_and(|at| at.elapsed() < MENU_SETTLE);
        if let Some((at, menu)) = cached.copy.as_ref() {
            if at.elapsed() < MENU_CACHE_TTL && !settling {
                return Ok(menu.clone());
            }
        }
        match self
            .upstream
            .get_json::<Menu>(ServiceName::Orders, "/menu", None)
            .await
        {
            Ok(menu) => {
                let menu = Arc::new(menu);
                cached.copy = Some((Instant::now(), menu.clone()));
                Ok(menu)
            }
            Err(error) => cached
                .copy
                .as_ref()
                .map(|(_, menu)| menu.clone())
                .ok_or(error),
        }
    }

    /// Forgets the cached menu (after a manager changed it).
    pub async fn forget_menu(&self) {
        let mut cached = self.menu.lock().await;
        cached.copy = None;
        cached.changed_at = Some(Instant::now());
    }
}

/// The whole web app as one endpoint (what [`run`] serves; tests serve it on a free port).
pub fn app(gateway: Arc<Gateway>) -> impl poem::Endpoint {
    let tls = gateway.config.tls;
    Route::new()
        // The customer's pages.
        .at("/", get(pages::customer::menu_page))
        .at("/cart", get(pages::customer::cart_page))
        .at("/orders", get(pages::customer::history_page))
        .at("/orders/:order_id", get(pages::customer::order_page))
        .at("/orders/:order_id/live", get(pages::customer::order_live))
        // The kitchen screen.
        .at("/kitchen", get(pages::kitchen::screen))
        .at("/kitchen/tickets", get(pages::kitchen::cards))
        .at("/kitchen/tickets/:order_id", get(pages::kitchen::card))
        // The courier's app.
        .at("/courier", get(pages::courier::app_page))
        .at("/courier/live", get(pages::courier::live_part))
        // The manager's console.
        .at("/manager", get(pages::manager::board_page))
        .at("/manager/live", get(pages::manager::board_live))
        .at("/manager/menu", get(pages::manager::menu_page))
        .at("/manager/team", get(pages::manager::team_page))
        .at(
            "/manager/notifications",
            get(pages::manager::notifications_page),
        )
        .at(
            "/manager/dead-letters",
            get(pages::manager::dead_letters_page),
        )
        // Signing in and out.
        .at("/login", get(sign_in::login_form).post(sign_in::login))
        .at(
            "/register",
            get(sign_in::register_form).post(sign_in::register),
        )
        .at("/logout", post(sign_in::logout))
        // The services, for the pages' scripts.
        .at("/api/:service/*rest", proxy::forward)
        .at("/assets/:file", get(assets::serve))
        .at("/health/live", get(live))
        .at("/health/ready", get(ready))
        .around(visitor::visit)
        .data(gateway)
        .around(move |next, request| headers::secure(next, request, tls))
        // Each page and each forwarded call in a span of the gateway's own, continuing the
        // browser's `traceparent` if it sent one; the services' spans are its children.
        .around(brigade_platform::telemetry::trace_requests)
}

#[handler]
fn live() -> &'static str {
    "ok"
}

/// Ready as soon as it listens: a service that is down makes pages degrade, not the gateway
/// unready. The body says which circuits are open.
#[handler]
fn ready(gateway: Data<&Arc<Gateway>>) -> Response {
    let open: Vec<&str> = ServiceName::ALL
        .into_iter()
        .filter(|s| gateway.upstream.is_open(*s))
        .map(ServiceName::as_str)
        .collect();
    poem::web::Json(serde_json::json!({ "status": "ready", "openCircuits": open })).into_response()
}

/// Starts the gateway and serves until SIGTERM or Ctrl-C.
///
/// # Errors
/// When a `BRIGADE_GATEWAY_*` variable is invalid or the port is taken.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let config = GatewayConfig::from_env(&settings).map_err(anyhow::Error::msg)?;
    serve(config, brigade_platform::runtime::termination()).await
}

/// Serves the gateway for `config` until `stop` completes.
///
/// # Errors
/// When the port is taken.
pub async fn serve(
    config: GatewayConfig,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = config.address;
    let max_connections = config.max_connections;
    let gateway = Gateway::new(config).await?;
    let acceptor = TcpListener::bind(address)
        .into_acceptor()
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
    let local = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .unwrap_or(address);
    tracing::info!(service = "gateway", "listening on http://{local}");
    println!("gateway listening on http://{local}");
    // Live streams stay open until the browser goes: give them a moment, then close.
    brigade_platform::server::serve(
        acceptor,
        app(gateway),
        stop,
        brigade_platform::server::Limits {
            max_connections,
            idle: brigade_platform::runtime::IDLE_TIMEOUT,
            grace: Duration::from_secs(5),
        },
    )
    .await;
    Ok(())
}
