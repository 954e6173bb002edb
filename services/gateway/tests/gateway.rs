//! Black-box tests of the gateway: the real gateway on a local port, stand-ins for the four
//! services (`fakes`), and a minimal browser (HTTP with its own cookie jar) talking to it.
#![allow(clippy::unwrap_used)]

mod fakes;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fakes::{Fakes, ORDER_ID};
use futures::StreamExt;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

/// What the browser got back.
struct Reply {
    status: u16,
    headers: HeaderMap,
    set_cookies: Vec<String>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn cookie(&self, name: &str) -> Option<&String> {
        self.set_cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }
}

/// A browser: keeps the cookies it is given and sends them back.
struct Browser {
    http: reqwest::Client,
    base: String,
    jar: Mutex<HashMap<String, String>>,
}

impl Browser {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            jar: Mutex::new(HashMap::new()),
        }
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(name).cloned()
    }

    fn csrf(&self) -> String {
        self.cookie("brigade_csrf")
            .or_else(|| self.cookie("__Host-brigade_csrf"))
            .expect("a CSRF cookie")
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let cookies: Vec<String> = self
            .jar
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let request = if cookies.is_empty() {
            request
        } else {
            request.header("cookie", cookies.join("; "))
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let set_cookies: Vec<String> = headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for cookie in &set_cookies {
            let pair = cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let mut jar = self.jar.lock().unwrap();
            if cookie.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        let body = response.text().await.unwrap_or_default();
        Reply {
            status,
            headers,
            set_cookies,
            body,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).form(fields))
            .await
    }

    /// A call a page's script makes: JSON, with the CSRF header unless `csrf` is `None`.
    async fn api(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        csrf: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = csrf {
            request = request.header("x-csrf-token", token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    /// Signs in through the form, as a person would.
    async fn sign_in(&self, email: &str) -> Reply {
        self.get("/login").await;
        let csrf = self.csrf();
        let reply = self
            .post_form(
                "/login",
                &[
                    ("_csrf", &csrf),
                    ("email", email),
                    ("password", "right password"),
                ],
            )
            .await;
        assert_eq!(reply.status, 303, "sign-in of {email}: {}", reply.body);
        reply
    }
}

/// Starts a gateway in front of `fakes`; returns its base URL.
async fn gateway(fakes: &Fakes, tls: bool) -> String {
    serve(fakes.config(tls), std::future::pending()).await
}

/// Starts a gateway for `config` that serves until `stop`; returns its base URL.
async fn serve(
    config: brigade_gateway::GatewayConfig,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> String {
    let base = format!("http://{}", config.address);
    tokio::spawn(brigade_gateway::serve(config, stop));
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http
        .get(format!("{base}/health/live"))
        .send()
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the gateway did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    base
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let fakes = Fakes::start(true).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    for path in [
        "/",
        "/api/orders/menu",
        "/assets/common.js",
        "/no-such-page",
    ] {
        let reply = browser.get(path).await;
        let csp = reply.header("content-security-policy");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(reply.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(reply.header("referrer-policy"), "same-origin", "{path}");
        assert_eq!(
            reply.header("strict-transport-security"),
            "",
            "no HSTS over plain HTTP"
        );
    }
    let page = browser.get("/").await;
    assert_eq!(page.header("cache-control"), "no-store");
    assert!(
        !page.body.contains("<script>"),
        "no inline script in a page"
    );
}

#[tokio::test]
async fn behind_tls_cookies_are_secure_and_hsts_is_sent() {
    let fakes = Fakes::start(true).await;
    let browser = Browser::new(&gateway(&fakes, true).await);
    let page = browser.get("/").await;
    assert!(page
        .header("strict-transport-security")
        .starts_with("max-age="));
    let csrf = page
        .cookie("__Host-brigade_csrf")
        .expect("the CSRF cookie, __Host- prefixed");
    assert!(
        csrf.contains("; Secure") && csrf.contains("HttpOnly"),
        "{csrf}"
    );
    let reply = browser
        .post_form(
            "/login",
            &[
                ("_csrf", &browser.csrf()),
                ("email", "camille@brigade.test"),
                ("password", "right password"),
            ],
        )
        .await;
    let session = reply
        .cookie("__Host-brigade_session")
        .expect("a session cookie");
    assert!(
        session.contains("; Secure")
            && session.contains("HttpOnly")
            && session.contains("SameSite=Lax"),
        "{session}"
    );
}

#[tokio::test]
async fn pages_are_french_by_default_and_english_on_request() {
    let fakes = Fakes::start(true).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    let french = browser.get("/").await;
    assert!(french.body.contains("<html lang=\"fr\""));
    assert!(french.body.contains("La carte"));
    assert!(french.body.contains("22,50\u{a0}€"), "French price");
    assert!(french.body.contains("Épuisé"), "a sold-out dish says so");

    let english = browser.get("/?lang=en").await;
    assert!(english
        .cookie("brigade_lang")
        .is_some_and(|c| c.starts_with("brigade_lang=en")));
    assert!(english.body.contains("<html lang=\"en\""));
    assert!(english.body.contains("€22.50"), "English price");
    assert!(
        english.body.contains("Mains"),
        "the starter categories are translated"
    );
    assert!(
        browser.get("/cart").await.body.contains("Your cart"),
        "the choice is remembered"
    );
}

#[tokio::test]
async fn the_menu_shows_the_quoted_ready_time_and_says_when_the_kitchen_is_full() {
    let fakes = Fakes::start(true).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    let open = browser.get("/").await;
    assert_eq!(open.status, 200);
    assert!(
        open.body.contains("data-menu-ready-time=\"open\""),
        "{}",
        open.body
    );
    assert!(
        open.body
            .contains("Prête vers <time datetime=\"2025-03-14T12:45:00+00:00\""),
        "{}",
        open.body
    );
    assert_eq!(fakes.log.seen("/menu/ready-time").len(), 1);

    fakes.log.kitchen_full.store(true, Ordering::SeqCst);
    let full = browser.get("/?lang=en").await;
    assert!(
        full.body.contains("data-menu-ready-time=\"full\""),
        "{}",
        full.body
    );
    assert!(
        full.body
            .contains("Next free slot: <time datetime=\"2025-03-14T13:00:00+00:00\""),
        "{}",
        full.body
    );
    assert!(!full.body.contains("data-menu-ready-time=\"open\""));
}

#[tokio::test]
async fn signing_in_keeps_the_tokens_on_the_server() {
    let fakes = Fakes::start(true).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    let reply = browser.sign_in("camille@brigade.test").await;
    assert_eq!(reply.header("location"), "/");
    let session = reply.cookie("brigade_session").expect("a session cookie");
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Lax")
            && session.contains("Path=/"),
        "{session}"
    );
    assert!(
        !session.contains("access-0"),
        "the cookie is an opaque id, not the token"
    );
    assert!(
        reply.cookie("brigade_csrf").is_some(),
        "a new CSRF token after signing in"
    );

    for path in ["/", "/cart", "/orders"] {
        let page = browser.get(path).await;
        assert!(
            !page.body.contains("access-0") && !page.body.contains("refresh-0"),
            "{path} shows no token"
        );
    }
    let cart = browser.get("/cart").await;
    assert!(
        cart.body.contains("12 rue de la Paix"),
        "checkout offers the saved address"
    );
    assert!(
        cart.body
            .contains(r#"name="allergen" value="milk" checked"#),
        "the declared allergens are checked in the dietary section"
    );
    assert!(cart.body.contains("data-allergen-warning"));
    let login = &fakes.log.seen("/auth/login")[0];
    assert_eq!(
        login.forwarded_for.as_deref(),
        Some("127.0.0.1"),
        "identity learns the client's address"
    );
}

#[tokio::test]
async fn a_wrong_password_is_said_plainly_and_opens_no_session() {
    let fakes = Fakes::start(true).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    browser.get("/login").await;
    let reply = browser
        .post_form(
            "/login",
            &[
                ("_csrf", &browser.csrf()),
                ("email", "camille@brigade.test"),
                ("password", "nope"),
            ],
        )
        .await;
    assert_eq!(reply.status, 401);
    assert!(reply.body.contains("E-mail ou mot de passe incorrect."));
    assert!(reply.cookie("brigade_session").is_none());
}

#[tokio::test]
async fn a_form_without_the_csrf_token_is_refused_before_reaching_identity() {
    let fakes = Fakes::start(true).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    browser.get("/login").await;
    let reply = browser
        .post_form(
            "/login",
            &[
                ("email", "camille@brigade.test"),
                ("password", "right password"),
            ],
        )
        .await;
    assert_eq!(reply.status, 403);
    assert!(reply.body.contains("Cette page a expiré"));
    let forged = browser
        .post_form(
            "/login",
            &[
                ("_csrf", "A".repeat(43).as_str()),
                ("email", "camille@brigade.test"),
                ("password", "right password"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(
        fakes.log.seen("/auth/login").is_empty(),
        "nothing reached identity"
    );
}

#[tokio::test]
async fn a_script_call_without_the_csrf_header_or_from_another_site_is_refused() {
    let fakes = Fakes::start(true).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    browser.sign_in("camille@brigade.test").await;
    let order = json!({ "items": [{ "dishId": fakes::DISH_ID, "quantity": 2 }] });

    let missing = browser
        .api(
            Method::POST,
            "/api/orders/orders",
            Some(order.clone()),
            None,
            &[],
        )
        .await;
    assert_eq!(missing.status, 403);
    assert!(missing
        .header("content-type")
        .starts_with("application/problem+json"));
    assert_eq!(
        missing.json()["type"],
        "https://brigade.dev/errors/forbidden"
    );

    let wrong = browser
        .api(
            Method::POST,
            "/api/orders/orders",
            Some(order.clone()),
            Some("not-the-token"),
            &[],
        )
        .await;
    assert_eq!(wrong.status, 403);

    let csrf = browser.csrf();
    let foreign = browser
        .api(
            Method::POST,
            "/api/orders/orders",
            Some(order.clone()),
            Some(&csrf),
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(foreign.status, 403);
    assert!(
        fakes.log.seen("/orders").is_empty(),
        "no refused call reached the service"
    );

    let placed = browser
        .api(
            Method::POST,
            "/api/orders/orders",
            Some(order),
            Some(&csrf),
            &[("idempotency-key", "key-1")],
        )
        .await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    assert_eq!(placed.json()["orderId"], ORDER_ID);
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Signs in and places an (empty) order through the proxy once per set of extra request
/// headers; what the orders service saw of each call.
async fn orders_seen_through_the_proxy(calls: &[&[(&str, &str)]]) -> Vec<fakes::Seen> {
    let fakes = Fakes::start(true).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    browser.sign_in("camille@brigade.test").await;
    let csrf = browser.csrf();
    for headers in calls {
        let reply = browser
            .api(
                Method::POST,
                "/api/orders/orders",
                Some(json!({ "items": [] })),
                Some(&csrf),
                headers,
            )
            .await;
        assert_eq!(reply.status, 201);
    }
    fakes.log.seen("/orders")
}

#[tokio::test]
async fn the_service_gets_the_sessions_token_never_the_browsers_credentials() {
    let seen = orders_seen_through_the_proxy(&[&[
        ("authorization", "Bearer forged"),
        ("idempotency-key", "key-2"),
        ("traceparent", TRACEPARENT),
    ]])
    .await;
    let seen = &seen[0];
    assert_eq!(seen.authorization.as_deref(), Some("Bearer access-0"));
    assert_eq!(seen.idempotency_key.as_deref(), Some("key-2"));
    assert_eq!(
        seen.traceparent.as_deref().map(trace_id),
        Some(trace_id(TRACEPARENT)),
        "the caller's trace goes on"
    );
    assert_eq!(seen.cookie, None, "cookies stay at the gateway");
}

/// The trace id of a `traceparent` (`00-{trace id}-{parent span id}-{flags}`).
fn trace_id(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or_default()
}

#[tokio::test]
async fn in_a_trace_the_browser_began_the_gateways_span_is_the_parent_of_the_services() {
    // The subscriber that gives spans their trace context, as the gateway's binary installs it.
    brigade_platform::telemetry::init_logging();
    let seen = orders_seen_through_the_proxy(&[
        &[("idempotency-key", "key-3"), ("traceparent", TRACEPARENT)],
        &[("idempotency-key", "key-4")],
    ])
    .await;
    let continued = seen[0].traceparent.clone().unwrap();
    assert_eq!(trace_id(&continued), trace_id(TRACEPARENT));
    assert_ne!(
        continued, TRACEPARENT,
        "the parent is the gateway's span, not the browser's"
    );
    assert_eq!(
        seen[1].traceparent, None,
        "a call the browser did not trace leaves the service free to join the order's trace"
    );
}

#[tokio::test]
async fn identitys_sign_in_endpoints_are_not_reachable_through_the_proxy() {
    let fakes = Fakes::start(true).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    browser.get("/").await;
    let csrf = browser.csrf();
    for path in [
        "/api/identity/auth/login",
        "/api/identity/auth/refresh",
        "/api/identity//auth/refresh",
    ] {
        let reply = browser
            .api(
                Method::POST,
                path,
                Some(json!({ "email": "a@b.c", "password": "right password" })),
                Some(&csrf),
                &[],
            )
            .await;
        assert_eq!(reply.status, 404, "{path}");
    }
    assert!(fakes.log.seen("/auth/login").is_empty() && fakes.log.seen("/auth/refresh").is_empty());
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_for_concurrent_requests() {
    let fakes = Fakes::start(true).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    fakes.log.expires_in.store(0, Ordering::SeqCst);
    browser.sign_in("camille@brigade.test").await;
    let path = format!("/api/orders/orders/{ORDER_ID}");
    let replies = futures::future::join_all((0..5).map(|_| browser.get(&path))).await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(
        fakes.log.refreshes.load(Ordering::SeqCst),
        1,
        "one refresh for all five"
    );
    let seen = fakes.log.seen(&format!("/orders/{ORDER_ID}"));
    assert!(seen
        .iter()
        .all(|s| s.authorization.as_deref() == Some("Bearer access-1")));
}

/// A browser at `base` holding the cookies of `other` (the same browser, behind a load
/// balancer that sent it elsewhere).
fn same_browser_at(other: &Browser, base: &str) -> Browser {
    let browser = Browser::new(base);
    *browser.jar.lock().unwrap() = other.jar.lock().unwrap().clone();
    browser
}

#[tokio::test]
async fn a_session_outlives_its_gateway_and_works_at_any_other() {
    let fakes = Fakes::start(true).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let first = serve(fakes.config(false), async {
        let _ = stopped.await;
    })
    .await;
    let browser = Browser::new(&first);
    browser.sign_in("camille@brigade.test").await;
    let path = format!("/api/orders/orders/{ORDER_ID}");
    assert_eq!(browser.get(&path).await.status, 200);

    // That gateway stops (a deploy, a crash); another one, on the same store, takes over.
    stop.send(()).unwrap();
    let started = Instant::now();
    while reqwest::get(format!("{first}/health/live")).await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "it did not stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = gateway(&fakes, false).await;
    let browser = same_browser_at(&browser, &second);
    let reply = browser.get(&path).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.cookie("brigade_session").is_none(),
        "the cookie stays"
    );
    let page = browser.get("/").await;
    assert!(
        page.body.contains("Camille"),
        "still signed in at the new gateway"
    );
    let seen = fakes.log.seen(&format!("/orders/{ORDER_ID}"));
    assert_eq!(seen.len(), 2);
    assert!(seen
        .iter()
        .all(|s| s.authorization.as_deref() == Some("Bearer access-0")));
    assert_eq!(fakes.log.seen("/auth/login").len(), 1, "signed in once");
}

#[tokio::test]
async fn two_gateways_refresh_a_shared_session_once_between_them() {
    let fakes = Fakes::start(true).await;
    let first = Browser::new(&gateway(&fakes, false).await);
    let second = gateway(&fakes, false).await;
    fakes.log.expires_in.store(0, Ordering::SeqCst);
    first.sign_in("camille@brigade.test").await;
    let second = same_browser_at(&first, &second);
    let path = format!("/api/orders/orders/{ORDER_ID}");
    let (here, there) = tokio::join!(
        futures::future::join_all((0..4).map(|_| first.get(&path))),
        futures::future::join_all((0..4).map(|_| second.get(&path))),
    );
    for reply in here.iter().chain(&there) {
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(
        fakes.log.refreshes.load(Ordering::SeqCst),
        1,
        "one refresh for both gateways"
    );
    let seen = fakes.log.seen(&format!("/orders/{ORDER_ID}"));
    assert_eq!(seen.len(), 8);
    assert!(seen
        .iter()
        .all(|s| s.authorization.as_deref() == Some("Bearer access-1")));
}

#[tokio::test]
async fn a_live_stream_is_relayed_as_it_comes() {
    let fakes = Fakes::start(true).await;
    let base = gateway(&fakes, false).await;
    let browser = Browser::new(&base);
    browser.sign_in("camille@brigade.test").await;
    let response = browser
        .http
        .get(format!("{base}/api/orders/orders/{ORDER_ID}/stream"))
        .header("accept", "text/event-stream")
        .header(
            "cookie",
            format!(
                "brigade_session={}",
                browser.cookie("brigade_session").unwrap()
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = response.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(3), body.next())
        .await
        .expect("the first event arrives before the stream ends")
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&first);
    assert!(
        text.contains("event: order") && text.contains("in_preparation"),
        "{text}"
    );
}

#[tokio::test]
async fn the_order_page_shows_the_order_and_says_tracking_is_unavailable_when_delivery_is_down() {
    let fakes = Fakes::start(false).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    browser.sign_in("camille@brigade.test").await;
    let page = browser.get(&format!("/orders/{ORDER_ID}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Bœuf bourguignon") && page.body.contains("45,00\u{a0}€"),
        "the order is shown"
    );
    assert!(page.body.contains("En préparation"), "with its status");
    assert!(
        page.body.contains("data-step=\"accepted\""),
        "and its timeline"
    );
    assert!(page.body.contains("data-unavailable=\"delivery\""));
    assert!(
        page.body
            .contains("Le suivi du livreur est momentanément indisponible"),
        "tracking is said to be unavailable"
    );
    let live = browser.get(&format!("/orders/{ORDER_ID}/live")).await;
    assert_eq!(live.status, 200);
    assert!(live.body.contains("data-unavailable=\"delivery\"") && !live.body.contains("<html"));
}

#[tokio::test]
async fn a_scheduled_order_shows_when_it_is_scheduled_for() {
    let fakes = Fakes::start(true).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    browser.sign_in("camille@brigade.test").await;
    let french = browser.get(&format!("/orders/{ORDER_ID}")).await;
    assert_eq!(french.status, 200);
    assert!(
        french
            .body
            .contains("Programmée pour <time datetime=\"2025-03-14T19:30:00+00:00\""),
        "{}",
        french.body
    );
    let english = browser.get(&format!("/orders/{ORDER_ID}?lang=en")).await;
    assert!(
        english
            .body
            .contains("Scheduled for <time datetime=\"2025-03-14T19:30:00+00:00\""),
        "{}",
        english.body
    );
}

#[tokio::test]
async fn get_calls_are_retried_but_other_calls_are_not() {
    let fakes = Fakes::start(true).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    browser.get("/").await;
    fakes.log.flaky_failures.store(2, Ordering::SeqCst);
    let reply = browser.get("/api/orders/flaky").await;
    assert_eq!(
        reply.status, 200,
        "two failures, then success on the third attempt"
    );
    assert_eq!(fakes.log.seen("/flaky").len(), 3);

    fakes.log.flaky_failures.store(1, Ordering::SeqCst);
    let csrf = browser.csrf();
    let reply = browser
        .api(
            Method::POST,
            "/api/orders/flaky",
            Some(json!({})),
            Some(&csrf),
            &[],
        )
        .await;
    assert_eq!(
        reply.status, 503,
        "a POST may have been applied: not retried"
    );
    let posts = fakes
        .log
        .seen("/flaky")
        .into_iter()
        .filter(|s| s.method == "POST")
        .count();
    assert_eq!(posts, 1);
}

#[tokio::test]
async fn a_service_that_keeps_failing_opens_its_circuit() {
    let fakes = Fakes::start(false).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    let first = browser
        .get(&format!("/api/delivery/deliveries/{ORDER_ID}"))
        .await;
    assert_eq!(first.status, 503);
    assert_eq!(
        first.json()["type"],
        "https://brigade.dev/errors/service-unavailable"
    );
    assert!(!first.header("retry-after").is_empty());

    let started = Instant::now();
    let second = browser
        .get(&format!("/api/delivery/deliveries/{ORDER_ID}"))
        .await;
    assert_eq!(second.status, 503);
    assert!(
        second.json()["detail"].as_str().unwrap().contains("paused"),
        "{}",
        second.body
    );
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "an open circuit answers at once"
    );
    let ready = browser.get("/health/ready").await;
    assert_eq!(ready.json()["openCircuits"], json!(["delivery"]));
    assert_eq!(
        browser.get("/api/orders/menu").await.status,
        200,
        "other services are not affected"
    );
}

#[tokio::test]
async fn signing_out_ends_the_session_here_and_at_identity() {
    let fakes = Fakes::start(true).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    browser.sign_in("camille@brigade.test").await;
    let session = browser.cookie("brigade_session").unwrap();
    let reply = browser
        .post_form("/logout", &[("_csrf", &browser.csrf())])
        .await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.header("location"), "/login?notice=signed-out");
    assert!(reply
        .cookie("brigade_session")
        .is_some_and(|c| c.contains("Max-Age=0")));
    assert!(fakes.log.seen("/auth/logout")[0].body.contains("refresh-0"));

    // The old cookie, replayed, is worth nothing.
    let replay = reqwest::Client::new()
        .get(format!("{}/api/orders/orders/{ORDER_ID}", browser.base))
        .header("cookie", format!("brigade_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
}

#[tokio::test]
async fn staff_pages_send_visitors_to_sign_in_and_refuse_other_roles() {
    let fakes = Fakes::start(true).await;
    let base = gateway(&fakes, false).await;
    let visitor = Browser::new(&base);
    let reply = visitor.get("/kitchen").await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.header("location"), "/login?next=/kitchen");

    let customer = Browser::new(&base);
    customer.sign_in("camille@brigade.test").await;
    assert_eq!(customer.get("/kitchen").await.status, 403);
    assert_eq!(customer.get("/manager").await.status, 403);

    let chef = Browser::new(&base);
    let reply = chef.sign_in("chef@brigade.test").await;
    assert_eq!(
        reply.header("location"),
        "/kitchen",
        "a chef starts at the kitchen screen"
    );
    let screen = chef.get("/kitchen").await;
    assert_eq!(screen.status, 200);
    assert!(screen.body.contains("Bœuf bourguignon") && screen.body.contains("sans oignons"));
    assert!(screen
        .body
        .contains(&format!("/api/kitchen/tickets/{ORDER_ID}/items/0/start")));
    assert!(
        screen.body.contains("Fourneaux"),
        "the station comes from the menu"
    );
    assert!(
        screen.body.contains("ALLERGIE : Arachides, Lait"),
        "a customer's allergies are a banner on the card"
    );
    assert!(screen
        .body
        .contains(&format!(r#"data-sold-out="{}""#, fakes::DISH_ID)));
}

#[tokio::test]
async fn signing_up_creates_a_customer_and_signs_them_in() {
    let fakes = Fakes::start(true).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    browser.get("/register").await;
    let csrf = browser.csrf();
    let taken = browser
        .post_form(
            "/register",
            &[
                ("_csrf", &csrf),
                ("name", "Camille"),
                ("email", "taken@brigade.test"),
                ("password", "right password"),
            ],
        )
        .await;
    assert_eq!(taken.status, 409);
    assert!(taken.body.contains("Un compte existe déjà"));
    let reply = browser
        .post_form(
            "/register",
            &[
                ("_csrf", &csrf),
                ("name", "Camille"),
                ("email", "camille@brigade.test"),
                ("password", "right password"),
                ("next", "/cart"),
            ],
        )
        .await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(reply.header("location"), "/cart");
    assert!(reply.cookie("brigade_session").is_some());
}

#[tokio::test]
async fn assets_are_served_with_their_type_and_revalidated_by_etag() {
    let fakes = Fakes::start(true).await;
    let browser = Browser::new(&gateway(&fakes, false).await);
    let script = browser.get("/assets/kitchen.js").await;
    assert_eq!(script.status, 200);
    assert!(script.header("content-type").starts_with("text/javascript"));
    let etag = script.header("etag").to_owned();
    let again = browser
        .send(
            browser
                .http
                .get(format!("{}/assets/kitchen.js", browser.base))
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(again.status, 304);
    assert_eq!(browser.get("/assets/../Cargo.toml").await.status, 404);
}
