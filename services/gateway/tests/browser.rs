//! End-to-end tests in real headless Chromium on the whole running system (four services and
//! the gateway, on PostgreSQL and NATS): a customer orders; the chef's open kitchen screen shows
//! it live and moves each item; the courier's app gets the assignment and delivers; the
//! customer's open order page passes through every status without a reload. And an order page
//! stays usable while the delivery service is stopped, after the gateway was restarted under a
//! signed-in customer (who stays signed in).
//!
//! Screenshots of the key screens, at phone and desktop sizes, land in `target/screenshots/`.
//! Needs `chromium` and `chromium-driver` (Debian); skipped with a message without them.
#![allow(clippy::unwrap_used)]

mod system;
mod webdriver;

use std::time::Duration;

use serde_json::json;
use system::{System, MANAGER_EMAIL, MANAGER_PASSWORD, STAFF_PASSWORD};
use webdriver::{Browser, Driver, DESKTOP, PHONE};

const LIVE: Duration = Duration::from_secs(30);

/// One whole system at a time: two at once, beside the other suites' systems, would crowd
/// PostgreSQL's connections on a small machine.
static ONE_SYSTEM_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The live part of the order page shows `status` (and the page was never reloaded: the
/// marker set by the test in the page is still there).
async fn customer_sees(customer: &Browser, status: &str) {
    customer
        .wait_until(&format!("document.querySelector('#order-live [data-status]')?.dataset.status === '{status}'"), LIVE)
        .await;
    assert_eq!(
        customer.eval("return window.__notReloaded === true;").await,
        json!(true),
        "the order page was reloaded"
    );
}

/// The password of every customer the tests sign up.
const CUSTOMER_PASSWORD: &str = "mot de passe solide";

/// Signs a new customer up through the form (with a phone when given) and waits until signed
/// in; returns the e-mail address used.
async fn sign_up(browser: &Browser, name: &str, phone: Option<&str>) -> String {
    let local: String = name
        .to_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let email = format!("{local}.{}@brigade.test", uuid::Uuid::new_v4().simple());
    browser.goto("/register").await;
    browser.fill("#name", name).await;
    browser.fill("#email", &email).await;
    browser.fill("#password", CUSTOMER_PASSWORD).await;
    if let Some(phone) = phone {
        browser.fill("#phone", phone).await;
    }
    browser
        .click("form[action='/register'] button[type=submit]")
        .await;
    browser
        .wait_for("form[action='/logout']", Duration::from_secs(15))
        .await;
    email
}

async fn sign_in(browser: &Browser, email: &str, password: &str) {
    browser.goto("/login").await;
    browser.fill("#email", email).await;
    browser.fill("#password", password).await;
    browser
        .click("form[action='/login'] button[type=submit]")
        .await;
    browser
        .wait_for("form[action='/logout']", Duration::from_secs(15))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_customer_orders_and_follows_it_live_while_the_kitchen_cooks_and_the_courier_delivers() {
    let _turn = ONE_SYSTEM_AT_A_TIME.lock().await;
    let Some(driver) = Driver::start().await else {
        return;
    };
    let system = System::start().await;
    let base = system.gateway_url.clone();
    let chef_email = system.staff("chef", "Auguste").await;
    let courier_email = system.staff("courier", "Lucie").await;

    // The chef opens the kitchen screen and leaves it open.
    let chef = Browser::open(&driver, &base, DESKTOP).await;
    sign_in(&chef, &chef_email, STAFF_PASSWORD).await;
    assert_eq!(chef.path().await, "/kitchen");
    chef.wait_until(
        "document.querySelector('[data-live-state]').classList.contains('is-live')",
        LIVE,
    )
    .await;
    chef.eval("window.__notReloaded = true;").await;
    chef.screenshots("kitchen-empty").await;

    // The courier starts a shift on their phone. The phone's position is a fixed point in
    // Paris (a headless browser has no location of its own).
    let courier = Browser::open(&driver, &base, PHONE).await;
    sign_in(&courier, &courier_email, STAFF_PASSWORD).await;
    assert_eq!(courier.path().await, "/courier");
    courier.click("[data-shift='true']").await;
    courier.wait_for(".shift-on", LIVE).await;
    courier
        .eval("navigator.geolocation.watchPosition = (ok) => { ok({ coords: { latitude: 48.8686, longitude: 2.3314 } }); return 1; };")
        .await;
    courier.screenshots("courier-on-shift").await;

    // A customer signs up, fills a cart, and orders.
    let customer = Browser::open(&driver, &base, PHONE).await;
    sign_up(&customer, "Camille", Some("+33 6 12 34 56 78")).await;
    customer.screenshots("menu").await;
    let add = customer
        .client
        .find_all(fantoccini::Locator::Css("[data-add-to-cart]"))
        .await
        .unwrap();
    customer.click_element(&add[0]).await;
    customer.click_element(&add[5]).await;
    customer.click_element(&add[5]).await;
    customer
        .wait_until(
            "document.querySelector('[data-cart-count]').textContent === '3'",
            LIVE,
        )
        .await;
    customer.screenshots("menu-with-cart").await;

    // The cart survives a reload.
    customer.goto("/cart").await;
    customer.client.refresh().await.unwrap();
    customer
        .wait_until("document.querySelectorAll('.cart-line').length === 2", LIVE)
        .await;
    customer
        .fill(".cart-line [data-note]", "sans oignons")
        .await;
    customer.fill("#street", "12 rue de la Paix").await;
    customer.fill("#postal-code", "75002").await;
    customer.fill("#city", "Paris").await;
    customer.screenshots("cart").await;
    customer.click("[data-place-order]").await;
    customer
        .wait_until("location.pathname.startsWith('/orders/')", LIVE)
        .await;
    let order_id = customer
        .path()
        .await
        .trim_start_matches("/orders/")
        .to_owned();
    customer.wait_for("#order-live [data-status]", LIVE).await;
    customer.eval("window.__notReloaded = true;").await;
    customer.screenshots("order-placed").await;

    // The chef's open screen shows the ticket, without a reload, with the note.
    let card = format!("#ticket-{order_id}");
    chef.wait_for(&card, LIVE).await;
    assert!(chef.text(&card).await.contains("sans oignons"));
    assert_eq!(
        chef.eval("return window.__notReloaded === true;").await,
        json!(true),
        "the kitchen screen was reloaded"
    );
    chef.screenshots("kitchen-new-ticket").await;
    customer_sees(&customer, "accepted").await;

    // A ticket past its target turns red (its order placed an hour ago, as far as the timer
    // knows); the station filter hides a ticket with nothing for that station.
    chef.eval(&format!("document.querySelector('{card}').dataset.placedAt = new Date(Date.now() - 3600e3).toISOString();")).await;
    chef.wait_until(
        &format!("document.querySelector('{card}').classList.contains('late')"),
        LIVE,
    )
    .await;
    chef.save("kitchen-late-ticket-desktop").await;
    chef.click("[data-station-filter='pastry']").await;
    chef.wait_until(&format!("document.querySelector('{card}').hidden"), LIVE)
        .await;
    chef.click("[data-station-filter='']").await;
    chef.wait_until(&format!("!document.querySelector('{card}').hidden"), LIVE)
        .await;

    // The chef moves each item: start, then ready.
    let items = chef
        .client
        .find_all(fantoccini::Locator::Css(&format!("{card} .item")))
        .await
        .unwrap()
        .len();
    assert_eq!(items, 2);
    for index in 0..items {
        let start = format!("{card} [data-post$='/items/{index}/start']");
        chef.click(&start).await;
        let ready = format!("{card} [data-post$='/items/{index}/ready']");
        chef.wait_for(&ready, LIVE).await;
        if index == 0 {
            customer_sees(&customer, "in_preparation").await;
            chef.screenshots("kitchen-cooking").await;
            customer.screenshots("order-in-preparation").await;
            // A mis-tap is taken back: the item's undo button puts it back to waiting (the
            // kitchen records the undo), and the chef starts it again.
            chef.click(&format!("{card} [data-post$='/items/{index}/undo']"))
                .await;
            chef.wait_for(&start, LIVE).await;
            chef.wait_until(
                "[...document.querySelectorAll('.toast')].some(t => t.textContent.startsWith('Étape annulée'))",
                LIVE,
            )
            .await;
            chef.save("kitchen-step-undone-desktop").await;
            chef.click(&start).await;
            chef.wait_for(&ready, LIVE).await;
        }
        chef.click(&ready).await;
        if index + 1 < items {
            chef.wait_for(
                &format!("{card} .item:nth-child({}) .big-done", index + 1),
                LIVE,
            )
            .await;
        }
    }
    // Ready: the ticket leaves the screen.
    chef.wait_until(&format!("!document.querySelector('{card}')"), LIVE)
        .await;
    customer_sees(&customer, "ready").await;

    // Dispatch gives the delivery to the courier on shift; the courier's app shows it.
    courier
        .wait_for(
            &format!(".assignment[data-order-id='{order_id}'][data-status='assigned']"),
            LIVE,
        )
        .await;
    assert!(courier
        .text(".big-address")
        .await
        .contains("12 rue de la Paix"));
    courier.screenshots("courier-assignment").await;
    courier.click("[data-post$='/pickup']").await;
    courier
        .wait_for(".assignment[data-status='picked_up']", LIVE)
        .await;
    customer_sees(&customer, "out_for_delivery").await;
    // The courier's position reaches the customer's page.
    customer
        .wait_for(".courier-card a[href*='openstreetmap']", LIVE)
        .await;
    courier.screenshots("courier-picked-up").await;
    customer.screenshots("order-out-for-delivery").await;

    courier.fill("#received-by", "Camille").await;
    courier.click(".deliver-form button[type=submit]").await;
    courier
        .wait_until("!document.querySelector('.assignment')", LIVE)
        .await;
    customer_sees(&customer, "delivered").await;

    // Every step is on the timeline, each one done, and the page saw each change arrive.
    let steps = customer.eval("return [...document.querySelectorAll('.timeline .step')].map(s => s.dataset.step + ':' + s.className);").await;
    let steps: Vec<String> = serde_json::from_value(steps).unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s.split(':').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "placed",
            "accepted",
            "in_preparation",
            "ready",
            "out_for_delivery",
            "delivered"
        ]
    );
    assert!(
        steps[..5].iter().all(|s| s.contains("step-done")),
        "{steps:?}"
    );
    let seen = customer
        .eval("return document.querySelector('.order-page').dataset.seen;")
        .await;
    let seen = seen.as_str().unwrap().to_owned();
    assert!(
        seen.ends_with("accepted in_preparation ready out_for_delivery delivered"),
        "statuses seen live: {seen}"
    );
    customer.screenshots("order-delivered").await;

    // The history, and "order again".
    customer.goto("/orders").await;
    customer
        .wait_for(&format!("a[href='/orders/{order_id}']"), LIVE)
        .await;
    customer.screenshots("history").await;
    customer.click("[data-reorder]").await;
    customer
        .wait_until(
            "location.pathname === '/cart' && document.querySelectorAll('.cart-line').length === 2",
            LIVE,
        )
        .await;

    // The manager's console, in English.
    courier.close().await;
    let manager = Browser::open(&driver, &base, DESKTOP).await;
    manager.goto("/login?lang=en").await;
    sign_in(&manager, MANAGER_EMAIL, MANAGER_PASSWORD).await;
    assert_eq!(manager.path().await, "/manager");
    assert!(manager.text("h1").await.contains("Live board"));
    manager.wait_for(".kpis", LIVE).await;
    manager.screenshots("manager-board").await;
    manager.goto("/manager/menu").await;
    manager.screenshots("manager-menu").await;
    // Menu editing: the first dish goes off the menu, and the menu says so.
    manager
        .click("[data-availability][data-available='false']")
        .await;
    manager.wait_for(".editor-row.unavailable", LIVE).await;
    // The menu follows the change within moments (its read model is eventually consistent).
    let started = std::time::Instant::now();
    loop {
        customer.goto("/").await;
        if customer
            .eval("return Boolean(document.querySelector('.dish.unavailable .sold-out'));")
            .await
            == json!(true)
        {
            break;
        }
        assert!(
            started.elapsed() < LIVE,
            "the dish never showed as sold out"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Staff creation from the console.
    manager.goto("/manager/team").await;
    manager.fill("#staff-name", "Paul").await;
    manager
        .fill(
            "#staff-email",
            &format!("paul.{}@brigade.test", uuid::Uuid::new_v4().simple()),
        )
        .await;
    manager.fill("#staff-password", STAFF_PASSWORD).await;
    manager.click("[data-staff-form] button[type=submit]").await;
    manager.wait_until("[...document.querySelectorAll('.toast')].some(t => t.textContent === 'Account created.')", LIVE).await;
    manager.screenshots("manager-team").await;
    // Notification settings: a webhook, whose signing secret is shown once.
    manager.goto("/manager/notifications").await;
    manager
        .fill("#webhook-url", "http://127.0.0.1:9/brigade-hook")
        .await;
    manager
        .click("[data-webhook-form] button[type=submit]")
        .await;
    manager
        .wait_until(
            "!document.querySelector('[data-webhook-secret]').hidden",
            LIVE,
        )
        .await;
    assert!(manager
        .text("[data-webhook-secret]")
        .await
        .contains("signing secret"));
    manager.goto("/manager/notifications").await;
    assert!(manager.text(".webhook-url").await.contains("brigade-hook"));
    manager.screenshots("manager-notifications").await;

    // Dead letters: a message no service can read is parked by each consumer of it (the
    // kitchen's among them), shown per service with its consumer; replaying it is refused
    // (it still fails), then the kitchen's copy is discarded and leaves the console.
    system.publish_poison_order().await;
    let kitchen_letters = "[data-dead-letters='kitchen']";
    let started = std::time::Instant::now();
    loop {
        manager.goto("/manager/dead-letters").await;
        if manager
            .eval(&format!(
                "return Boolean(document.querySelector(\"{kitchen_letters} [data-dead-letter]\"));"
            ))
            .await
            == json!(true)
        {
            break;
        }
        assert!(
            started.elapsed() < LIVE,
            "the poison message was never parked"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(manager
        .text(kitchen_letters)
        .await
        .contains("kitchen-from-orders"));
    manager.screenshots("manager-dead-letters").await;
    manager
        .click(&format!("{kitchen_letters} [data-dead-letter-replay]"))
        .await;
    manager
        .wait_until(
            "[...document.querySelectorAll('.toast')].some(t => t.textContent.startsWith('The message still fails'))",
            LIVE,
        )
        .await;
    manager
        .click(&format!("{kitchen_letters} [data-dead-letter-discard]"))
        .await;
    manager.click("#confirm-dialog button[value='ok']").await;
    manager
        .wait_until(
            &format!("!document.querySelector(\"{kitchen_letters}\") && [...document.querySelectorAll('.toast')].some(t => t.textContent === 'Message discarded.')"),
            LIVE,
        )
        .await;
    manager.goto("/manager/dead-letters").await;
    manager.wait_for("[data-dead-letters='orders']", LIVE).await;
    assert_eq!(
        manager
            .eval(&format!(
                "return Boolean(document.querySelector(\"{kitchen_letters}\"));"
            ))
            .await,
        json!(false),
        "the discarded dead letter is gone for good"
    );

    chef.close().await;
    customer.close().await;
    manager.close().await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_order_page_stays_usable_while_the_delivery_service_is_stopped() {
    let _turn = ONE_SYSTEM_AT_A_TIME.lock().await;
    let Some(driver) = Driver::start().await else {
        return;
    };
    let mut system = System::start().await;
    let customer = Browser::open(&driver, &system.gateway_url, PHONE).await;
    let email = sign_up(&customer, "Inès", None).await;

    // The gateway restarts (a deploy): the customer is still signed in, since sessions live
    // in the shared store, not in the gateway's memory.
    system.restart_gateway().await;
    customer.goto("/orders").await;
    customer
        .wait_for("form[action='/logout']", Duration::from_secs(15))
        .await;
    assert_eq!(customer.path().await, "/orders", "not sent to sign in");

    // An order, placed straight at the orders service.
    let token = system.token(&email, CUSTOMER_PASSWORD).await;
    let (_, menu) = system
        .call(reqwest::Method::GET, "orders", "/menu", None, None)
        .await;
    let dish = menu["categories"][1]["dishes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = system
        .http
        .post(system.url("orders", "/orders"))
        .bearer_auth(&token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"items": [{"dishId": dish, "quantity": 1}],
                      "deliveryAddress": {"street": "3 rue Oberkampf", "city": "Paris", "postalCode": "75011"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let order: serde_json::Value = response.json().await.unwrap();
    let order_id = order["orderId"].as_str().unwrap().to_owned();

    system.stop("delivery").await;
    customer.goto(&format!("/orders/{order_id}")).await;
    customer.wait_for("#order-live [data-status]", LIVE).await;
    let page = customer.text("main").await;
    assert!(page.contains("Commande"), "the order is shown: {page}");
    assert!(page.contains("3 rue Oberkampf"), "with its address");
    let notice = customer.text("[data-unavailable='delivery']").await;
    assert!(
        notice.contains("Le suivi du livreur est momentanément indisponible"),
        "{notice}"
    );
    // The rest of the site still works.
    customer.click("[data-reorder]").await;
    customer
        .wait_until("location.pathname === '/cart'", LIVE)
        .await;
    customer.goto(&format!("/orders/{order_id}")).await;
    customer
        .wait_for("[data-unavailable='delivery']", LIVE)
        .await;
    customer.screenshots("order-delivery-down").await;

    // Cancelling still works (the kitchen has not started): confirmed in the page's dialog.
    customer.eval("window.__notReloaded = true;").await;
    customer.click("[data-cancel-order]").await;
    customer.click("#confirm-dialog button[value='ok']").await;
    customer_sees(&customer, "cancelled").await;
    assert!(customer.text(".status-card").await.contains("Annulée"));
    customer.screenshots("order-cancelled").await;

    customer.close().await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_customer_picks_a_dishs_options_and_the_chef_sees_them_on_the_ticket() {
    let _turn = ONE_SYSTEM_AT_A_TIME.lock().await;
    let Some(driver) = Driver::start().await else {
        return;
    };
    let system = System::start().await;
    let base = system.gateway_url.clone();
    let chef_email = system.staff("chef", "Auguste").await;
    let chef = Browser::open(&driver, &base, DESKTOP).await;
    sign_in(&chef, &chef_email, STAFF_PASSWORD).await;
    chef.wait_until(
        "document.querySelector('[data-live-state]').classList.contains('is-live')",
        LIVE,
    )
    .await;

    // The manager, on a phone, gives a dish an option group in the menu editor. A refused
    // group (more choices allowed than it has) is said next to the form, on its field.
    let manager = Browser::open(&driver, &base, PHONE).await;
    sign_in(&manager, MANAGER_EMAIL, MANAGER_PASSWORD).await;
    manager.goto("/manager/menu").await;
    manager
        .eval("const row = [...document.querySelectorAll('.editor-row')].find((r) => r.querySelector('strong').textContent === 'Ratatouille provençale'); row.id = 'ratatouille'; row.querySelector('details.edit-dish').open = true;")
        .await;
    manager.click("#ratatouille [data-add-group]").await;
    manager
        .fill("#ratatouille [data-group] [data-field='name']", "Taille")
        .await;
    manager
        .fill("#ratatouille [data-choice] [data-field='name']", "grande")
        .await;
    manager
        .fill(
            "#ratatouille [data-choice] [data-field='priceDelta']",
            "2.50",
        )
        .await;
    manager
        .fill("#ratatouille [data-field='maxChoices']", "2")
        .await;
    manager
        .click("#ratatouille [data-group] [data-field='required']")
        .await;
    manager.click("#ratatouille button[type=submit]").await;
    manager
        .wait_until(
            "!document.querySelector('#ratatouille [data-dish-error]').hidden",
            LIVE,
        )
        .await;
    assert_eq!(
        manager
            .eval("return document.querySelector('#ratatouille [data-field=\"maxChoices\"]').getAttribute('aria-invalid');")
            .await,
        json!("true")
    );
    let error = manager.text("#ratatouille [data-dish-error]").await;
    assert!(error.contains("Choix maximum"), "{error}");
    manager.screenshots("menu-editor-options").await;
    manager
        .fill("#ratatouille [data-field='maxChoices']", "1")
        .await;
    manager.click("#ratatouille button[type=submit]").await;
    manager
        .wait_until(
            "document.querySelector('#ratatouille [data-dish-error]')?.hidden !== false",
            LIVE,
        )
        .await;
    let started = std::time::Instant::now();
    let menu = loop {
        assert!(
            started.elapsed() < LIVE,
            "the option group never reached the menu"
        );
        let (status, menu) = system
            .call(reqwest::Method::GET, "orders", "/menu", None, None)
            .await;
        assert_eq!(status, 200);
        let dish = menu["categories"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["dishes"].as_array().unwrap().clone())
            .find(|d| d["name"] == "Ratatouille provençale")
            .unwrap();
        if !dish["options"].as_array().unwrap().is_empty() {
            break dish;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let group = &menu["options"][0];
    assert_eq!(group["name"], "Taille");
    assert_eq!(group["minChoices"], 1);
    assert_eq!(group["maxChoices"], 1);
    assert_eq!(group["choices"][0]["name"], "grande");
    assert_eq!(group["choices"][0]["priceDelta"]["amount"], 250);
    manager.close().await;

    let customer = Browser::open(&driver, &base, DESKTOP).await;
    sign_up(&customer, "Jules", None).await;
    customer
        .eval("[...document.querySelectorAll('.dish')].find((d) => d.querySelector('.dish-name').textContent.startsWith('Steak frites')).id = 'steak';")
        .await;

    // Its cooking is required: without it, nothing goes into the cart.
    customer.click("#steak [data-add-to-cart]").await;
    assert_eq!(
        customer
            .eval("return JSON.parse(localStorage.getItem('brigade.cart.v1') || '[]').length;")
            .await,
        json!(0)
    );
    customer
        .click("#steak input[data-choice-name='saignant']")
        .await;
    customer
        .click("#steak input[data-choice-name='frites en plus']")
        .await;
    customer
        .wait_until(
            "document.querySelector('#steak [data-base-price]').textContent.includes('27,00')",
            LIVE,
        )
        .await;
    customer.screenshots("menu-options").await;
    customer.click("#steak [data-add-to-cart]").await;
    customer
        .wait_until(
            "document.querySelector('[data-cart-count]').textContent === '1'",
            LIVE,
        )
        .await;

    customer.goto("/cart").await;
    customer
        .wait_until("document.querySelectorAll('.cart-line').length === 1", LIVE)
        .await;
    let line = customer.text(".cart-line").await;
    assert!(
        line.contains("Cuisson: saignant") && line.contains("Supplément: frites en plus"),
        "{line}"
    );
    assert!(line.contains("27,00"), "{line}");
    customer.fill("#street", "8 rue Saint-Denis").await;
    customer.fill("#postal-code", "75001").await;
    customer.fill("#city", "Paris").await;
    customer.click("[data-place-order]").await;
    customer
        .wait_until("location.pathname.startsWith('/orders/')", LIVE)
        .await;
    let order_id = customer
        .path()
        .await
        .trim_start_matches("/orders/")
        .to_owned();
    customer.wait_for("#order-live [data-status]", LIVE).await;
    let page = customer.text("main").await;
    assert!(
        page.contains("Cuisson: saignant") && page.contains("27,00"),
        "{page}"
    );

    // The chef's screen shows the options on the item.
    let card = format!("#ticket-{order_id}");
    chef.wait_for(&card, LIVE).await;
    let ticket = chef.text(&card).await;
    assert!(
        ticket.contains("Cuisson: saignant") && ticket.contains("Supplément: frites en plus"),
        "{ticket}"
    );
    chef.screenshots("kitchen-options").await;

    customer.close().await;
    chef.close().await;
    system.shutdown().await;
}
