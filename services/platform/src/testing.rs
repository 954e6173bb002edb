//! For black-box tests of one service without the identity service: a token issuer with a key
//! of its own, and its JWKS served on a local port for the service under test to fetch, exactly
//! as it fetches identity's in production.

use chrono::Utc;
use ed25519_dalek::SigningKey;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Json;
use poem::{get, handler, EndpointExt, Route, Server};
use uuid::Uuid;

use crate::auth::{sign_access_token, AccessClaims, Jwk, Jwks, Role, JWKS_PATH};

/// Signs access tokens the way the identity service does, with a key of its own.
pub struct TestIssuer {
    key: SigningKey,
    kid: String,
    url: String,
}

#[handler]
fn serve_jwks(jwks: poem::web::Data<&Jwks>) -> Json<Jwks> {
    Json(jwks.0.clone())
}

impl TestIssuer {
    /// Generates a key and serves its JWKS on a free local port (until the runtime stops).
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start() -> Self {
        let mut seed = [0u8; 32];
        seed[..16].copy_from_slice(Uuid::new_v4().as_bytes());
        seed[16..].copy_from_slice(Uuid::new_v4().as_bytes());
        let key = SigningKey::from_bytes(&seed);
        let kid = format!("test-{}", Uuid::new_v4().simple());
        let jwks = Jwks {
            keys: vec![Jwk::ed25519(kid.clone(), &key.verifying_key())],
        };
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("a local port for the test JWKS");
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().map(std::net::SocketAddr::port))
            .expect("a TCP address");
        let app = Route::new().at(JWKS_PATH, get(serve_jwks)).data(jwks);
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        Self {
            key,
            kid,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The URL to give the service as `BRIGADE_IDENTITY_URL`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A valid access token for this account and role.
    #[must_use]
    pub fn token(&self, account_id: Uuid, role: Role) -> String {
        let claims = AccessClaims::new(
            account_id,
            role,
            Utc::now(),
            std::time::Duration::from_secs(900),
        );
        sign_access_token(&self.key, &self.kid, &claims)
    }
}

/// Settings of a service under test: its own databases (`t<random>_…`), its own NATS
/// namespace, free ports, and token keys from `identity_url`.
///
/// # Panics
/// When no local port can be bound.
#[must_use]
pub fn isolated_settings(identity_url: &str) -> crate::Settings {
    let tag = Uuid::new_v4().simple().to_string();
    let tag = &tag[..10];
    let mut settings = crate::Settings {
        database_prefix: format!("t{tag}_"),
        namespace: brigade_nats::Namespace::new(Some(&format!("t{tag}")))
            .expect("a valid namespace"),
        identity_url: identity_url.to_owned(),
        pool_size: 8,
        ..crate::Settings::default()
    };
    for port in &mut settings.ports {
        *port = free_port();
    }
    settings
}

/// A local port free now and never handed out before by this process.
///
/// The port is found by binding port 0 and let go at once, for a service to bind later; the
/// kernel may offer the same free port to the next caller in between. Tests that start two
/// systems side by side could then have two services on one port, one system's requests
/// reaching the other's service (the likely cause of a login once answered 404). Remembering
/// every port given out rules that out within a test binary.
///
/// # Panics
/// When no local port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    static GIVEN: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<u16>>> =
        std::sync::OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut given = given
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if given.insert(port) {
            return port;
        }
    }
}

/// Waits until `{base}/health/ready` answers 200.
///
/// # Panics
/// After 30 seconds without an answer.
pub async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    loop {
        if let Ok(response) = client.get(format!("{base}/health/ready")).send().await {
            if response.status().is_success() {
                return;
            }
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{base} never became ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Drops the databases a test created.
pub async fn drop_databases(settings: &crate::Settings) {
    if let Ok(admin) = sqlx::PgPool::connect(&format!("{}/postgres", settings.database_url)).await {
        for service in crate::ServiceName::ALL {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                settings.database_name(service)
            ))
            .execute(&admin)
            .await;
        }
    }
}
