//! Access tokens as other services see them: the JWKS, rotation, and forged tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use brigade_platform::auth::{TokenVerifier, AUDIENCE};
use serde_json::json;

use std::time::Duration;

use crate::helpers::{spawn_app, spawn_app_with, PASSWORD};

fn header_of(token: &str) -> serde_json::Value {
    let header = token.split('.').next().expect("a header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url")).expect("json")
}

#[tokio::test]
async fn another_service_verifies_tokens_with_the_published_keys() {
    let app = spawn_app().await;
    let (id, access, _) = app.customer("ada@example.com").await;
    let jwks = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, 200);
    let key = &jwks.body["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["kid"], header_of(&access)["kid"]);
    assert!(key.get("d").is_none(), "never the private key");

    let verifier = TokenVerifier::remote(&app.url, AUDIENCE);
    let caller = verifier.verify(&access).await.expect("a valid token");
    assert_eq!(caller.account_id, id);
    assert_eq!(caller.role.as_str(), "customer");
    app.cleanup().await;
}

#[tokio::test]
async fn after_a_key_rotation_old_tokens_stay_valid_until_they_expire() {
    let app = spawn_app_with(|config| config.key_activation_delay = Duration::ZERO).await;
    let (_, before, _) = app.customer("ada@example.com").await;
    let manager = app.manager_token().await;
    let rotated = app.post("/keys/rotate", Some(&manager), json!({})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let (after, _) = app.tokens("ada@example.com", PASSWORD).await;
    assert_eq!(header_of(&after)["kid"], rotated.body["kid"]);
    assert_ne!(header_of(&after)["kid"], header_of(&before)["kid"]);

    let jwks = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.body["keys"].as_array().map(Vec::len), Some(2));
    let verifier = TokenVerifier::remote(&app.url, AUDIENCE);
    assert!(verifier.verify(&after).await.is_ok());
    assert!(verifier.verify(&before).await.is_ok());
    assert_eq!(app.get("/me", Some(&before)).await.status, 200);
    assert_eq!(app.get("/me", Some(&after)).await.status, 200);
    app.cleanup().await;
}

#[tokio::test]
async fn a_rotated_in_key_is_published_before_it_signs() {
    let app = spawn_app_with(|config| config.key_activation_delay = Duration::from_secs(2)).await;
    let (_, before, _) = app.customer("ada@example.com").await;
    // A verifier that has just fetched the keys, and may not fetch again for a while.
    let verifier = TokenVerifier::remote(&app.url, AUDIENCE);
    assert!(verifier.verify(&before).await.is_ok());

    let manager = app.manager_token().await;
    let rotated = app.post("/keys/rotate", Some(&manager), json!({})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let jwks = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.body["keys"].as_array().map(Vec::len), Some(2));
    let (during, _) = app.tokens("ada@example.com", PASSWORD).await;
    assert_eq!(
        header_of(&during)["kid"],
        header_of(&before)["kid"],
        "not signing yet"
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (after, _) = app.tokens("ada@example.com", PASSWORD).await;
    assert_eq!(header_of(&after)["kid"], rotated.body["kid"]);
    app.cleanup().await;
}

#[tokio::test]
async fn the_signing_key_survives_a_restart() {
    let app = spawn_app().await;
    let (_, access, _) = app.customer("ada@example.com").await;
    let reopened = brigade_identity::Identity::open(
        app.identity_pool(),
        brigade_identity::IdentityConfig::default(),
    )
    .await
    .expect("reopens");
    assert_eq!(reopened.keys().current_kid(), header_of(&access)["kid"]);
    assert!(reopened.verifier().verify(&access).await.is_ok());
    app.cleanup().await;
}

#[tokio::test]
async fn forged_and_malformed_tokens_get_401_problems() {
    let app = spawn_app().await;
    let (_, access, _) = app.customer("ada@example.com").await;
    let mut parts: Vec<&str> = access.split('.').collect();
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{}.", parts[1]);
    let promoted_claims = {
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        claims["role"] = json!("manager");
        URL_SAFE_NO_PAD.encode(claims.to_string())
    };
    parts[1] = &promoted_claims;
    let tampered = parts.join(".");
    for token in [alg_none.as_str(), tampered.as_str(), "garbage", "a.b.c"] {
        let refused = app.get("/me", Some(token)).await;
        assert_eq!(refused.status, 401, "{token}");
        assert!(refused.is_problem(), "{token}");
    }
    let refused = app.get("/me", Some(&alg_none)).await;
    assert_eq!(
        refused.problem_type(),
        "https://brigade.dev/errors/invalid-token"
    );
    let challenge = refused
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok());
    assert_eq!(
        challenge,
        Some("Bearer realm=\"brigade\", error=\"invalid_token\"")
    );
    let missing = app.get("/me", None).await;
    assert_eq!(missing.status, 401);
    assert!(missing.is_problem());
    app.cleanup().await;
}

#[tokio::test]
async fn other_services_refuse_a_disabled_accounts_tokens_once_the_event_arrives() {
    let app = spawn_app().await;
    let prefix = app
        .settings()
        .database_prefix
        .trim_end_matches('_')
        .to_owned();
    let bus = brigade_nats::Bus::connect(
        &app.settings().nats_url,
        brigade_nats::Namespace::new(Some(&prefix)).expect("a valid namespace"),
        1,
    )
    .await
    .expect("NATS is running (set BRIGADE_NATS_URL)");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relay = brigade_nats::OutboxRelay::new(app.identity_pool(), bus.clone(), "identity");
    tokio::spawn(relay.run(stopped.clone()));
    // Another service's guard: remote keys, revocations from the bus.
    let verifier = TokenVerifier::remote(&app.url, AUDIENCE);
    tokio::spawn(brigade_platform::auth::follow_disabled_accounts(
        bus.clone(),
        verifier.clone(),
        stopped,
    ));

    let (id, access, _) = app.customer("ada@example.com").await;
    assert!(verifier.verify(&access).await.is_ok());
    let manager = app.manager_token().await;
    let disabled = app
        .post(
            &format!("/accounts/{id}/disable"),
            Some(&manager),
            json!({}),
        )
        .await;
    assert_eq!(disabled.status, 204);

    let mut outcome = verifier.verify(&access).await;
    for _ in 0..100 {
        if outcome.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        outcome = verifier.verify(&access).await;
    }
    assert_eq!(outcome, Err(brigade_platform::auth::AuthError::Revoked));

    let _ = stop.send(true);
    let _ = bus
        .jetstream
        .delete_stream(bus.namespace.stream("identity"))
        .await;
    app.cleanup().await;
}
