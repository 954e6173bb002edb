//! Sign-in, throttling, refresh rotation and reuse, sign-out.

use std::time::Instant;

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, PASSWORD};

#[tokio::test]
async fn sign_in_answers_tokens_and_the_account() {
    let app = spawn_app().await;
    let (id, _, _) = app.customer("ada@example.com").await;
    let signed_in = app.login("Ada@Example.com", PASSWORD).await;
    assert_eq!(signed_in.status, 200);
    assert_eq!(signed_in.body["expiresIn"], 900);
    assert_eq!(signed_in.body["tokenType"], "Bearer");
    assert_eq!(signed_in.body["account"]["id"], json!(id));
    assert_eq!(signed_in.body["account"]["role"], "customer");
    assert_eq!(
        signed_in
            .headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    app.cleanup().await;
}

#[tokio::test]
async fn unknown_account_and_wrong_password_get_the_same_answer_in_similar_time() {
    let app = spawn_app().await;
    app.customer("ada@example.com").await;

    let started = Instant::now();
    let wrong = app.login("ada@example.com", "not the password").await;
    let wrong_time = started.elapsed();
    let started = Instant::now();
    let unknown = app.login("nobody@example.com", "not the password").await;
    let unknown_time = started.elapsed();

    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(
        wrong.problem_type(),
        "https://brigade.dev/errors/invalid-credentials"
    );
    // Both verify an Argon2id hash; a missing account must not answer in a fraction of the time.
    let (fast, slow) = if wrong_time < unknown_time {
        (wrong_time, unknown_time)
    } else {
        (unknown_time, wrong_time)
    };
    assert!(
        fast * 3 > slow,
        "wrong password {wrong_time:?} vs unknown account {unknown_time:?}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn the_attempt_after_the_limit_of_failed_sign_ins_gets_429() {
    let app = spawn_app().await; // 3 failures per account
    app.customer("ada@example.com").await;
    for _ in 0..3 {
        assert_eq!(
            app.login("ada@example.com", "wrong guess!").await.status,
            401
        );
    }
    let limited = app.login("ada@example.com", "wrong guess!").await;
    assert_eq!(limited.status, 429);
    assert!(limited.is_problem());
    let retry_after: u64 = limited
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header in seconds");
    assert!((1..=600).contains(&retry_after));
    // Even the right password waits: the guesser must not learn it was right.
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status, 429);
    // Another account is not affected.
    app.customer("bob@example.com").await;
    app.cleanup().await;
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_client_address_too() {
    let app = spawn_app_with(|config| {
        config.login_limits.per_account = 100;
        config.login_limits.per_address = 4;
    })
    .await;
    for i in 0..4 {
        let attempt = app
            .login(&format!("guess{i}@example.com"), "wrong guess!")
            .await;
        assert_eq!(attempt.status, 401);
    }
    assert_eq!(
        app.login("another@example.com", "wrong guess!")
            .await
            .status,
        429
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_refresh_token_is_exchanged_once() {
    let app = spawn_app().await;
    let (_, _, first) = app.customer("ada@example.com").await;
    let refreshed = app
        .post("/auth/refresh", None, json!({"refreshToken": first}))
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let second = refreshed.body["refreshToken"]
        .as_str()
        .expect("a new token")
        .to_owned();
    assert_ne!(first, second);
    let access = refreshed.body["accessToken"]
        .as_str()
        .expect("an access token");
    assert_eq!(app.get("/me", Some(access)).await.status, 200);

    // The first token again: someone holds a copy, so the whole session ends.
    let reused = app
        .post("/auth/refresh", None, json!({"refreshToken": first}))
        .await;
    assert_eq!(reused.status, 401);
    assert_eq!(
        reused.problem_type(),
        "https://brigade.dev/errors/refresh-token-reused"
    );
    let after_reuse = app
        .post("/auth/refresh", None, json!({"refreshToken": second}))
        .await;
    assert_eq!(
        after_reuse.status, 401,
        "the newer token of the session ended too"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn logout_ends_that_session_only() {
    let app = spawn_app().await;
    let (_, _, phone) = app.customer("ada@example.com").await;
    let (_, laptop) = app.tokens("ada@example.com", PASSWORD).await;
    let ended = app
        .post("/auth/logout", None, json!({"refreshToken": phone}))
        .await;
    assert_eq!(ended.status, 204);
    let on_phone = app
        .post("/auth/refresh", None, json!({"refreshToken": phone}))
        .await;
    assert_eq!(on_phone.status, 401);
    let on_laptop = app
        .post("/auth/refresh", None, json!({"refreshToken": laptop}))
        .await;
    assert_eq!(on_laptop.status, 200);
    // Signing out twice, or with nonsense, changes nothing and tells nothing.
    let again = app
        .post("/auth/logout", None, json!({"refreshToken": "nonsense"}))
        .await;
    assert_eq!(again.status, 204);
    app.cleanup().await;
}

#[tokio::test]
async fn refresh_tokens_are_stored_as_digests() {
    let app = spawn_app().await;
    let (_, _, refresh) = app.customer("ada@example.com").await;
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM refresh_tokens")
        .fetch_all(&app.identity_pool())
        .await
        .expect("tokens");
    assert!(!stored.is_empty());
    assert!(stored
        .iter()
        .all(|hash| hash.len() == 32 && hash.as_slice() != refresh.as_bytes()));
    app.cleanup().await;
}
