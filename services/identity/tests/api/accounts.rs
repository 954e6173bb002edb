//! Sign-up, profile, staff and disabling.

use serde_json::json;

use crate::helpers::{spawn_app, PASSWORD};

#[tokio::test]
async fn a_customer_signs_up_signs_in_and_reads_their_profile() {
    let app = spawn_app().await;
    let (id, access, _) = app.customer("ada@example.com").await;

    let me = app.get("/me", Some(&access)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["id"], json!(id));
    assert_eq!(me.body["email"], "ada@example.com");
    assert_eq!(me.body["role"], "customer");
    app.cleanup().await;
}

#[tokio::test]
async fn a_customer_saves_a_phone_and_addresses() {
    let app = spawn_app().await;
    let (_, access, _) = app.customer("ada@example.com").await;
    let address = json!({"street": "1 Rue de la Paix", "city": "Paris", "postalCode": "75002"});
    let patched = app
        .request(
            reqwest::Method::PATCH,
            "/me",
            Some(&access),
            Some(json!({"phone": "+33 6 12 34 56 78", "addresses": [address]})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["phone"], "+33 6 12 34 56 78");
    let saved = &patched.body["addresses"][0];
    assert_eq!(saved["city"], "Paris");
    assert!(saved["id"].is_string());

    // Keeping the saved address by id and removing the phone with null.
    let kept = app
        .request(
            reqwest::Method::PATCH,
            "/me",
            Some(&access),
            Some(json!({"phone": null, "addresses": [saved]})),
        )
        .await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    assert!(kept
        .body
        .get("phone")
        .is_none_or(serde_json::Value::is_null));
    assert_eq!(kept.body["addresses"][0]["id"], saved["id"]);

    let bad = app
        .request(
            reqwest::Method::PATCH,
            "/me",
            Some(&access),
            Some(json!({"addresses": [{"street": "", "city": "Paris", "postalCode": "75002"}]})),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["field"], "addresses[0].street");
    app.cleanup().await;
}

#[tokio::test]
async fn an_email_is_unique_whatever_its_case() {
    let app = spawn_app().await;
    assert_eq!(app.register("ada@example.com").await.status, 201);
    let again = app.register("ADA@Example.com").await;
    assert_eq!(again.status, 409);
    assert_eq!(
        again.problem_type(),
        "https://brigade.dev/errors/email-already-registered"
    );
    assert_eq!(again.body["field"], "email");
    app.cleanup().await;
}

#[tokio::test]
async fn concurrent_sign_ups_with_one_email_create_one_account() {
    let app = spawn_app().await;
    let attempts = (0..6).map(|i| {
        let email = if i % 2 == 0 {
            "race@example.com"
        } else {
            "RACE@example.com"
        };
        app.register(email)
    });
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        5,
        "{statuses:?}"
    );
    let registered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'AccountRegistered'")
            .fetch_one(&app.identity_pool())
            .await
            .expect("count");
    assert_eq!(registered, 2, "the manager and one customer");
    app.cleanup().await;
}

#[tokio::test]
async fn invalid_fields_are_refused_with_422_naming_the_field_and_store_nothing() {
    let app = spawn_app().await;
    for (body, field, code) in [
        (
            json!({"email": "not-an-email", "password": PASSWORD, "name": "Ada"}),
            "email",
            "invalid-email",
        ),
        (
            json!({"email": "ada@example.com", "password": "short", "name": "Ada"}),
            "password",
            "password-too-short",
        ),
        (
            json!({"email": "ada@example.com", "password": "x".repeat(129), "name": "Ada"}),
            "password",
            "password-too-long",
        ),
        (
            json!({"email": "ada@example.com", "password": PASSWORD, "name": "  "}),
            "name",
            "name-required",
        ),
        (
            json!({"email": "ada@example.com", "password": PASSWORD, "name": "Ada", "phone": "call me"}),
            "phone",
            "invalid-phone",
        ),
    ] {
        let refused = app.post("/auth/register", None, body).await;
        assert_eq!(refused.status, 422, "{}", refused.body);
        assert!(refused.is_problem());
        assert_eq!(refused.body["field"], field);
        assert_eq!(
            refused.problem_type(),
            format!("https://brigade.dev/errors/{code}")
        );
    }
    // Nothing was claimed: the address is still free.
    assert_eq!(app.register("ada@example.com").await.status, 201);
    app.cleanup().await;
}

#[tokio::test]
async fn a_long_passphrase_is_welcome() {
    let app = spawn_app().await;
    let passphrase = "a long passphrase that goes on and on ".repeat(3);
    let created = app
        .post(
            "/auth/register",
            None,
            json!({"email": "ada@example.com", "password": passphrase, "name": "Ada"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(app.login("ada@example.com", &passphrase).await.status, 200);
    app.cleanup().await;
}

#[tokio::test]
async fn password_hashes_are_argon2id_and_never_in_events() {
    let app = spawn_app().await;
    app.customer("ada@example.com").await;
    let hash: String = sqlx::query_scalar(
        "SELECT password_hash FROM credentials c JOIN account_emails e USING (account_id)
          WHERE e.email_lower = 'ada@example.com'",
    )
    .fetch_one(&app.identity_pool())
    .await
    .expect("a stored hash");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE payload::text LIKE '%argon2%' OR payload::text LIKE $1",
    )
    .bind(format!("%{PASSWORD}%"))
    .fetch_one(&app.identity_pool())
    .await
    .expect("count");
    assert_eq!(leaked, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn only_a_manager_creates_staff() {
    let app = spawn_app().await;
    let staff =
        json!({"email": "chef@example.com", "password": PASSWORD, "name": "Chef", "role": "chef"});

    let anonymous = app.post("/staff", None, staff.clone()).await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.is_problem());

    let (_, customer, _) = app.customer("ada@example.com").await;
    let forbidden = app.post("/staff", Some(&customer), staff.clone()).await;
    assert_eq!(forbidden.status, 403);
    assert!(forbidden.is_problem());

    let manager = app.manager_token().await;
    let created = app.post("/staff", Some(&manager), staff).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let signed_in = app.login("chef@example.com", PASSWORD).await;
    assert_eq!(signed_in.body["account"]["role"], "chef");

    let customer_role = app
        .post(
            "/staff",
            Some(&manager),
            json!({"email": "c@example.com", "password": PASSWORD, "name": "C", "role": "customer"}),
        )
        .await;
    assert_eq!(customer_role.status, 422);
    assert_eq!(customer_role.body["field"], "role");
    app.cleanup().await;
}

#[tokio::test]
async fn a_registered_courier_is_published_for_delivery() {
    let app = spawn_app().await;
    let manager = app.manager_token().await;
    let created = app
        .post(
            "/staff",
            Some(&manager),
            json!({"email": "bike@example.com", "password": PASSWORD, "name": "Bike", "role": "courier", "phone": "+33 6 00 00 00 01"}),
        )
        .await;
    assert_eq!(created.status, 201);
    let payload: serde_json::Value = sqlx::query_scalar(
        "SELECT payload::jsonb FROM outbox WHERE event_type = 'AccountRegistered'
          AND payload::jsonb #>> '{AccountRegistered,role}' = 'courier'",
    )
    .fetch_one(&app.identity_pool())
    .await
    .expect("the courier's registration is in the outbox");
    let event = &payload["AccountRegistered"];
    assert_eq!(event["accountId"], created.body["accountId"]);
    assert_eq!(event["name"], "Bike");
    assert_eq!(event["phone"], "+33 6 00 00 00 01");
    assert_eq!(event["registeredBy"]["kind"], "user");
    app.cleanup().await;
}

#[tokio::test]
async fn a_disabled_account_loses_its_tokens_and_sessions_at_once() {
    let app = spawn_app().await;
    let (id, access, refresh) = app.customer("ada@example.com").await;
    assert_eq!(app.get("/me", Some(&access)).await.status, 200);

    let customer_tries = app
        .post(&format!("/accounts/{id}/disable"), Some(&access), json!({}))
        .await;
    assert_eq!(customer_tries.status, 403);

    let manager = app.manager_token().await;
    let disabled = app
        .post(
            &format!("/accounts/{id}/disable"),
            Some(&manager),
            json!({"reason": "fraud"}),
        )
        .await;
    assert_eq!(disabled.status, 204, "{}", disabled.body);

    let revoked = app.get("/me", Some(&access)).await;
    assert_eq!(revoked.status, 401);
    assert!(revoked.is_problem());
    let refreshed = app
        .post("/auth/refresh", None, json!({"refreshToken": refresh}))
        .await;
    assert_eq!(refreshed.status, 401);
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status, 401);
    app.cleanup().await;
}

#[tokio::test]
async fn a_password_change_needs_the_current_password_and_ends_sessions() {
    let app = spawn_app().await;
    let (_, access, refresh) = app.customer("ada@example.com").await;
    let wrong = app
        .post(
            "/me/password",
            Some(&access),
            json!({"currentPassword": "not it at all", "newPassword": "a brand new secret"}),
        )
        .await;
    assert_eq!(wrong.status, 422);
    assert_eq!(wrong.body["field"], "currentPassword");

    let changed = app
        .post(
            "/me/password",
            Some(&access),
            json!({"currentPassword": PASSWORD, "newPassword": "a brand new secret"}),
        )
        .await;
    assert_eq!(changed.status, 204, "{}", changed.body);
    let old_session = app
        .post("/auth/refresh", None, json!({"refreshToken": refresh}))
        .await;
    assert_eq!(old_session.status, 401);
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status, 401);
    assert_eq!(
        app.login("ada@example.com", "a brand new secret")
            .await
            .status,
        200
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_customer_declares_allergies_and_diets_and_the_change_is_published() {
    let app = spawn_app().await;
    let (id, access, _) = app.customer("ada@example.com").await;
    let patched = app
        .request(
            reqwest::Method::PATCH,
            "/me",
            Some(&access),
            Some(json!({"allergens": ["milk", "Peanuts", "milk"], "diets": ["vegetarian"]})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["allergens"], json!(["peanuts", "milk"]));
    assert_eq!(patched.body["diets"], json!(["vegetarian"]));
    let me = app.get("/me", Some(&access)).await;
    assert_eq!(me.body["allergens"], json!(["peanuts", "milk"]));

    // Published like every account event: in the outbox, for `identity.account.*`.
    let pool = app.identity_pool();
    let published: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload FROM outbox
          WHERE aggregate_id = $1 AND event_type = 'DietaryProfileChanged'",
    )
    .bind(id.to_string())
    .fetch_all(&pool)
    .await
    .expect("the outbox is readable");
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0]["DietaryProfileChanged"]["allergens"],
        json!(["peanuts", "milk"])
    );

    // The same declaration again changes nothing; only the diets change keeps the allergens.
    let same = app
        .request(
            reqwest::Method::PATCH,
            "/me",
            Some(&access),
            Some(json!({"allergens": ["peanuts", "milk"]})),
        )
        .await;
    assert_eq!(same.status, 200);
    let diets_only = app
        .request(
            reqwest::Method::PATCH,
            "/me",
            Some(&access),
            Some(json!({"diets": []})),
        )
        .await;
    assert_eq!(diets_only.body["allergens"], json!(["peanuts", "milk"]));
    assert_eq!(diets_only.body["diets"], json!([]));
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'DietaryProfileChanged'",
    )
    .bind(id.to_string())
    .fetch_one(&pool)
    .await
    .expect("the events are readable");
    assert_eq!(count, 2);
    app.cleanup().await;
}

#[tokio::test]
async fn an_unknown_allergen_is_refused_naming_it_and_nothing_is_stored() {
    let app = spawn_app().await;
    let (id, access, _) = app.customer("ada@example.com").await;
    let pool = app.identity_pool();
    let events_of = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE aggregate_id = $1")
            .bind(id.to_string())
            .fetch_one(&pool)
            .await
            .expect("the events are readable")
    };
    let before = events_of().await;
    let refused = app
        .request(
            reqwest::Method::PATCH,
            "/me",
            Some(&access),
            Some(json!({"name": "Ada L.", "allergens": ["milk", "shellfish"]})),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(
        refused.problem_type(),
        "https://brigade.dev/errors/unknown-allergen"
    );
    assert_eq!(refused.body["field"], "allergens[1]");
    let unknown_diet = app
        .request(
            reqwest::Method::PATCH,
            "/me",
            Some(&access),
            Some(json!({"diets": ["paleo"]})),
        )
        .await;
    assert_eq!(unknown_diet.status, 422);
    assert_eq!(unknown_diet.body["field"], "diets[0]");
    assert_eq!(events_of().await, before);
    let me = app.get("/me", Some(&access)).await;
    assert_eq!(me.body["name"], "Ada");
    assert_eq!(me.body["allergens"], json!([]));
    app.cleanup().await;
}
