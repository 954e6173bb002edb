//! Spawning the identity service for one test, and speaking to it.

use std::time::Duration;

use brigade_identity::config::LoginLimits;
use brigade_identity::{Identity, IdentityConfig, MIGRATIONS};
use brigade_nats::schema::EVENT_STORE;
use brigade_platform::system::SystemApi;
use brigade_platform::{ServiceName, Settings};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::EndpointExt;
use serde_json::{json, Value};
use sqlx::Connection as _;
use uuid::Uuid;

pub const MANAGER_EMAIL: &str = "boss@brigade.test";
pub const MANAGER_PASSWORD: &str = "manager password";
pub const PASSWORD: &str = "correct horse battery";

/// One running identity service with its own database.
pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pool: sqlx::PgPool,
    settings: Settings,
    database: String,
}

pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Response {
    pub fn problem_type(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default()
    }

    pub fn is_problem(&self) -> bool {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/problem+json"))
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut IdentityConfig)) -> TestApp {
    let settings = Settings {
        database_prefix: format!("it{}_", &Uuid::new_v4().simple().to_string()[..12]),
        ..Settings::from_env().expect("valid BRIGADE_* settings")
    };
    let database = settings.database_name(ServiceName::Identity);
    let pool = brigade_platform::database::open(
        &settings.database_url,
        &database,
        4,
        &[EVENT_STORE, MIGRATIONS],
    )
    .await
    .expect("PostgreSQL is running (set BRIGADE_DATABASE_URL)");
    let mut config = IdentityConfig {
        login_limits: LoginLimits {
            per_account: 3,
            per_address: 100,
            window: Duration::from_secs(600),
        },
        ..IdentityConfig::default()
    };
    configure(&mut config);
    let identity = Identity::open(pool.clone(), config)
        .await
        .expect("the identity service opens");
    identity
        .ensure_manager(MANAGER_EMAIL, MANAGER_PASSWORD, "The Boss")
        .await
        .expect("the first manager is created");

    let system = SystemApi {
        service: ServiceName::Identity,
        pool: pool.clone(),
        bus: None,
        links: Vec::new(),
    };
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("a free port");
    let address = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .expect("a TCP address");
    let url = format!("http://{address}");
    let app = brigade_platform::runtime::application(
        ServiceName::Identity,
        brigade_identity::api::api(&identity),
        system,
        &url,
    )
    .data(identity.verifier());
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    TestApp {
        url,
        client: reqwest::Client::new(),
        pool,
        settings,
        database,
    }
}

impl TestApp {
    /// Settings of this test's service (its own database prefix).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The identity database, to check what was stored.
    pub fn identity_pool(&self) -> sqlx::PgPool {
        self.pool.clone()
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the service answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Response {
            status,
            headers,
            body,
        }
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(reqwest::Method::GET, path, token, None).await
    }

    pub async fn register(&self, email: &str) -> Response {
        self.post(
            "/auth/register",
            None,
            json!({"email": email, "password": PASSWORD, "name": "Ada"}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post(
            "/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Signs in and returns (access token, refresh token).
    pub async fn tokens(&self, email: &str, password: &str) -> (String, String) {
        let response = self.login(email, password).await;
        assert_eq!(response.status, 200, "login failed: {}", response.body);
        (
            response.body["accessToken"]
                .as_str()
                .expect("an access token")
                .to_owned(),
            response.body["refreshToken"]
                .as_str()
                .expect("a refresh token")
                .to_owned(),
        )
    }

    pub async fn manager_token(&self) -> String {
        self.tokens(MANAGER_EMAIL, MANAGER_PASSWORD).await.0
    }

    /// A new customer, signed in: (account id, access token, refresh token).
    pub async fn customer(&self, email: &str) -> (Uuid, String, String) {
        let created = self.register(email).await;
        assert_eq!(created.status, 201, "{}", created.body);
        let id = created.body["accountId"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("an account id");
        let (access, refresh) = self.tokens(email, PASSWORD).await;
        (id, access, refresh)
    }

    /// Drops the test's database.
    pub async fn cleanup(self) {
        self.pool.close().await;
        let Ok(mut conn) =
            sqlx::PgConnection::connect(&format!("{}/postgres", self.settings.database_url)).await
        else {
            return;
        };
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.database
        ))
        .execute(&mut conn)
        .await;
    }
}
