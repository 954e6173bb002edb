//! The customer's pages: the menu (by category, with allergens, filters and a cart that lives
//! in the browser's storage), the cart and checkout, the order page that follows the order live
//! through each status, and the order history with "order again".

use std::sync::Arc;

use brigade_domain::Role;
use brigade_platform::ServiceName;
use maud::{html, Markup};
use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{handler, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{
    date_time, failed, fragment, money, page_with, time_of_day, time_sentence, token, unavailable,
    Extras, Nav,
};
use crate::i18n::{fill, ALLERGENS, DIETS};
use crate::models::{
    map_link, short_id, Delivery, Dish, LineOption, Menu, OptionGroup, Order, OrderPage, Profile,
    ReadyTime,
};
use crate::upstream::FetchError;
use crate::visitor::Visitor;
use crate::Gateway;

/// The forward path of an order, as its timeline shows it.
const JOURNEY: [&str; 6] = [
    "placed",
    "accepted",
    "in_preparation",
    "ready",
    "out_for_delivery",
    "delivered",
];

/// Orders per page of the history.
const HISTORY_PAGE_SIZE: u32 = 10;

/// `GET /`: the menu.
#[handler]
pub async fn menu_page(gateway: Data<&Arc<Gateway>>, visitor: Data<&Visitor>) -> Response {
    let t = visitor.t;
    // The quote is read fresh (it moves with the kitchen's load); without it the menu still shows.
    let (menu, ready) = tokio::join!(
        gateway.menu(),
        gateway
            .upstream
            .get_json::<ReadyTime>(ServiceName::Orders, "/menu/ready-time", None),
    );
    let body = html! {
        section.hero {
            h1 { (t.menu_title) }
            p.lead { (t.menu_intro) }
            @if let Ok(ready) = &ready { (ready_time(&visitor, ready)) }
        }
        @match &menu {
            Ok(menu) => (menu_markup(&visitor, menu)),
            Err(_) => (unavailable(&visitor, ServiceName::Orders)),
        }
        a.cart-bar href="/cart" data-cart-bar hidden {
            span { (t.view_cart) }
            span.cart-bar-detail { span data-cart-summary {} }
        }
    };
    let extras = Extras {
        scripts: &["menu.js"],
        ..Extras::default()
    };
    page_with(
        &visitor,
        StatusCode::OK,
        t.menu_title,
        Nav::Menu,
        body,
        extras,
    )
}

/// When an order placed now would be ready; when the kitchen is full, says so and gives the
/// next free time.
fn ready_time(visitor: &Visitor, ready: &ReadyTime) -> Markup {
    let t = visitor.t;
    html! {
        @if !ready.full {
            p.ready-time data-menu-ready-time="open" {
                (time_sentence(visitor, t.ready_around, ready.ready_at.unwrap_or(ready.earliest_at)))
            }
        } @else if let Some(next) = ready.ready_at {
            p.notice.notice-warn.ready-time data-menu-ready-time="full" {
                (time_sentence(visitor, t.kitchen_full, next))
            }
        } @else {
            p.notice.notice-warn.ready-time data-menu-ready-time="full" { (t.kitchen_full_no_slot) }
        }
    }
}

fn menu_markup(visitor: &Visitor, menu: &Menu) -> Markup {
    let t = visitor.t;
    html! {
        div.menu-tools role="search" {
            div.search-field {
                label.visually-hidden for="dish-search" { (t.search) }
                input #dish-search type="search" placeholder=(t.search) autocomplete="off";
            }
            details.allergen-filter {
                summary { (t.exclude_allergens) " " span.badge data-allergen-count hidden {} }
                fieldset {
                    legend.visually-hidden { (t.exclude_allergens) }
                    @for code in ALLERGENS {
                        label.check {
                            input type="checkbox" name="exclude" value=(code);
                            span { (t.allergen(code)) }
                        }
                    }
                }
            }
        }
        nav.category-nav aria-label=(t.categories) {
            @for (i, category) in menu.categories.iter().enumerate() {
                a href={ "#category-" (i) } { (t.category(&category.name)) }
            }
        }
        p.notice.notice-info data-no-results hidden {
            (t.no_results) " "
            button.btn-link type="button" data-clear-filters { (t.clear_filters) }
        }
        @for (i, category) in menu.categories.iter().enumerate() {
            section.category id={ "category-" (i) } aria-labelledby={ "category-title-" (i) } {
                h2 id={ "category-title-" (i) } { (t.category(&category.name)) }
                ul.dish-grid {
                    @for dish in &category.dishes {
                        (dish_card(visitor, dish, i))
                    }
                }
            }
        }
    }
}

fn dish_card(visitor: &Visitor, dish: &Dish, category: usize) -> Markup {
    let t = visitor.t;
    let cart_item = json!({ "dishId": dish.id, "name": dish.name, "price": dish.price });
    let initial = dish.name.chars().next().unwrap_or('·');
    let search = format!("{} {}", dish.name, dish.description).to_lowercase();
    html! {
        li.dish.unavailable[!dish.available] data-dish-id=(dish.id) data-allergens=(dish.allergens.join(" "))
            data-search=(search) {
            div class={ "dish-art art-" (category % 6) } aria-hidden="true" { span { (initial) } }
            div.dish-body {
                h3.dish-name { (dish.name) }
                @if !dish.description.is_empty() { p.dish-description { (dish.description) } }
                ul.tags aria-label=(t.allergens) {
                    @if dish.allergens.is_empty() {
                        li.tag.tag-ok { (t.no_allergens) }
                    }
                    @for allergen in &dish.allergens {
                        li.tag { (t.allergen(allergen)) }
                    }
                }
                @if dish.available && !dish.options.is_empty() {
                    div.dish-options {
                        @for group in &dish.options { (option_group(visitor, dish, group)) }
                    }
                }
                div.dish-foot {
                    span.price data-base-price=(dish.price.amount) data-currency=(dish.price.currency) {
                        (money(visitor, &dish.price))
                    }
                    @if dish.available {
                        span.in-cart data-in-cart hidden {}
                        button.btn.btn-primary type="button" data-add-to-cart=(cart_item.to_string())
                            aria-label=(fill(t.add_named, &[("name", &dish.name)])) { (t.add_to_cart) }
                    } @else {
                        span.sold-out { (t.sold_out) }
                    }
                }
            }
        }
    }
}

/// One option group of a dish card: radio buttons for "exactly one", check boxes otherwise
/// (menu.js keeps them within `data-max`, updates the price, and checks `data-min`).
fn option_group(visitor: &Visitor, dish: &Dish, group: &OptionGroup) -> Markup {
    let t = visitor.t;
    let (min, max) = (group.min_choices, group.max_choices);
    let rule = match (min, max) {
        (0, n) => fill(t.option_up_to, &[("n", &n.to_string())]),
        (min, max) if min == max => fill(t.option_required, &[("n", &min.to_string())]),
        (min, max) => fill(
            t.option_required_range,
            &[("min", &min.to_string()), ("max", &max.to_string())],
        ),
    };
    let kind = if min == 1 && max == 1 {
        "radio"
    } else {
        "checkbox"
    };
    html! {
        fieldset.option-group data-group-id=(group.id) data-group-name=(group.name) data-min=(min) data-max=(max) {
            legend { (group.name) " " span.muted { "(" (rule) ")" } }
            @for choice in &group.choices {
                label.option-choice {
                    input type=(kind) name={ "option-" (dish.id) "-" (group.id) } value=(choice.id)
                        data-choice-name=(choice.name) data-delta=(choice.price_delta.amount);
                    " " (choice.name)
                    @if choice.price_delta.amount > 0 {
                        " " span.muted { "+" (money(visitor, &choice.price_delta)) }
                    }
                }
            }
        }
    }
}

/// Options as a cart line keeps them (names for display, ids for the order).
fn cart_options(options: &[LineOption]) -> Vec<serde_json::Value> {
    options
        .iter()
        .map(|o| json!({ "groupId": o.group_id, "choiceId": o.choice_id, "group": o.group, "choice": o.choice, "priceDelta": o.price_delta }))
        .collect()
}

/// `GET /cart`: the cart (kept by the browser) and the checkout.
#[handler]
pub async fn cart_page(gateway: Data<&Arc<Gateway>>, visitor: Data<&Visitor>) -> Response {
    let t = visitor.t;
    let menu = gateway.menu().await;
    let profile = if visitor.role() == Some(Role::Customer) {
        let token = match token(&gateway, &visitor).await {
            Ok(token) => token,
            Err(response) => return response,
        };
        Some(
            gateway
                .upstream
                .get_json::<Profile>(ServiceName::Identity, "/me", token.as_deref())
                .await,
        )
    } else {
        None
    };
    // The menu as the cart script needs it: to drop dishes taken off the menu and to show
    // today's prices, not those of the day the dish went into the cart.
    let menu_data = match &menu {
        Ok(menu) => json!(menu
            .dishes()
            .map(|d| json!({ "id": d.id, "name": d.name, "price": d.price, "available": d.available, "options": d.options, "allergens": d.allergens, "prepMinutes": d.prep_minutes }))
            .collect::<Vec<_>>()),
        Err(_) => serde_json::Value::Null,
    };
    let body = html! {
        h1 { (t.cart_title) }
        @if menu.is_err() { (unavailable(&visitor, ServiceName::Orders)) }
        div.cart-layout {
            section.cart-panel aria-labelledby="cart-heading" {
                h2 #cart-heading .visually-hidden { (t.cart_title) }
                div.cart-empty data-cart-empty {
                    p { (t.cart_empty) }
                    a.btn.btn-primary href="/" { (t.browse_menu) }
                }
                ul.cart-lines data-cart-lines {}
                p.cart-total data-cart-total-row hidden { span { (t.total) } " " strong data-cart-total {} }
            }
            section.checkout-panel aria-labelledby="checkout-heading" {
                h2 #checkout-heading { (t.checkout_title) }
                (checkout_form(&visitor, profile.as_ref()))
            }
        }
        template #cart-line-template {
            li.cart-line {
                div.line-head {
                    span.line-name {}
                    span.line-total {}
                }
                p.line-options.muted hidden {}
                div.line-controls {
                    div.stepper role="group" {
                        button.btn.step-btn type="button" data-dec { "−" }
                        output.qty data-qty aria-live="polite" {}
                        button.btn.step-btn type="button" data-inc { "+" }
                    }
                    button.btn-link type="button" data-remove { (t.remove) }
                }
                label.note-field {
                    span { (t.note_for_kitchen) }
                    input type="text" maxlength="200" data-note placeholder=(t.note_placeholder);
                }
            }
        }
    };
    let extras = Extras {
        scripts: &["checkout.js"],
        data: vec![("menu-data", menu_data)],
        screen: false,
    };
    page_with(
        &visitor,
        StatusCode::OK,
        t.cart_title,
        Nav::Cart,
        body,
        extras,
    )
}

fn checkout_form(visitor: &Visitor, profile: Option<&Result<Profile, FetchError>>) -> Markup {
    let t = visitor.t;
    match visitor.role() {
        None => {
            return html! {
                div.notice.notice-info {
                    p { (t.sign_in_to_order) }
                    p.actions {
                        a.btn.btn-primary href="/login?next=/cart" { (t.sign_in) }
                        " "
                        a.btn href="/register?next=/cart" { (t.sign_up) }
                    }
                }
            }
        }
        Some(Role::Customer) => {}
        Some(_) => return html! { div.notice.notice-info { (t.staff_cannot_order) } },
    }
    let profile = profile.and_then(|p| p.as_ref().ok());
    let addresses = profile.map(|p| p.addresses.as_slice()).unwrap_or_default();
    let phone = profile.and_then(|p| p.phone.clone()).unwrap_or_default();
    html! {
        @if profile.is_none() { (unavailable(visitor, ServiceName::Identity)) }
        form #checkout-form .form-stack novalidate {
            @if !addresses.is_empty() {
                fieldset.address-choice {
                    legend { (t.saved_addresses) }
                    @for (i, address) in addresses.iter().enumerate() {
                        label.radio-card {
                            input type="radio" name="address" value=(i) checked[i == 0]
                                data-address=(serde_json::to_string(address).unwrap_or_default());
                            span { (address.one_line()) }
                        }
                    }
                    label.radio-card {
                        input type="radio" name="address" value="new";
                        span { (t.new_address) }
                    }
                }
            }
            div.new-address data-new-address hidden[!addresses.is_empty()] {
                label for="street" { (t.street) }
                input #street name="street" autocomplete="street-address" maxlength="200";
                div.field-row {
                    div {
                        label for="postal-code" { (t.postal_code) }
                        input #postal-code name="postalCode" autocomplete="postal-code" inputmode="numeric" maxlength="10";
                    }
                    div {
                        label for="city" { (t.city) }
                        input #city name="city" autocomplete="address-level2" maxlength="100";
                    }
                }
                label.check {
                    input type="checkbox" name="save" checked;
                    span { (t.save_address) }
                }
            }
            label for="contact-phone" { (t.contact_phone) }
            input #contact-phone name="phone" type="tel" autocomplete="tel" value=(phone);
            (dietary_section(visitor, profile))
            div.notice.notice-warn.allergen-warning data-allergen-warning role="alert" hidden {
                strong { (t.allergen_warning_title) }
                ul data-allergen-lines {}
                label.check {
                    input type="checkbox" name="allergensConfirmed" data-allergens-confirmed;
                    span { (t.allergen_confirm) }
                }
            }
            p.ready-time data-ready-time aria-live="polite" hidden {}
            label.check data-schedule hidden {
                input type="checkbox" name="schedule" data-schedule-box;
                span data-schedule-label {}
            }
            p.notice.notice-error data-checkout-error role="alert" hidden {}
            button.btn.btn-primary.btn-block.btn-large type="submit" data-place-order {
                (t.place_order) " · " span data-cart-total {}
            }
        }
    }
}

/// The customer's declared allergens and diets, saved to their profile (identity's `PATCH
/// /me`): the checkout warns about a dish containing a declared allergen before ordering, and
/// the kitchen's ticket carries them.
fn dietary_section(visitor: &Visitor, profile: Option<&Profile>) -> Markup {
    let t = visitor.t;
    let allergens = profile.map(|p| p.allergens.as_slice()).unwrap_or_default();
    let diets = profile.map(|p| p.diets.as_slice()).unwrap_or_default();
    html! {
        details.dietary-profile data-dietary open[!allergens.is_empty()] {
            summary { (t.dietary_title) }
            p.muted { (t.dietary_intro) }
            fieldset {
                legend { (t.my_allergens) }
                div.check-grid {
                    @for code in ALLERGENS {
                        label.check {
                            input type="checkbox" name="allergen" value=(code) checked[allergens.iter().any(|a| a == code)];
                            span { (t.allergen(code)) }
                        }
                    }
                }
            }
            fieldset {
                legend { (t.my_diets) }
                div.check-grid {
                    @for code in DIETS {
                        label.check {
                            input type="checkbox" name="diet" value=(code) checked[diets.iter().any(|d| d == code)];
                            span { (t.diet(code)) }
                        }
                    }
                }
            }
            button.btn.btn-secondary type="button" data-save-dietary { (t.save_dietary) }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    #[serde(default)]
    page: Option<u32>,
}

/// `GET /orders`: the customer's orders, newest first.
#[handler]
pub async fn history_page(
    gateway: Data<&Arc<Gateway>>,
    visitor: Data<&Visitor>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    if let Err(response) = super::require(&visitor, &[Role::Customer]) {
        return response;
    }
    let t = visitor.t;
    let token = match token(&gateway, &visitor).await {
        Ok(token) => token,
        Err(response) => return response,
    };
    let page_number = query.page.unwrap_or(1).max(1);
    let path = format!("/orders?page={page_number}&pageSize={HISTORY_PAGE_SIZE}");
    let orders = gateway
        .upstream
        .get_json::<OrderPage>(ServiceName::Orders, &path, token.as_deref())
        .await;
    if let Err(error) = &orders {
        if !error.is_unavailable() {
            return failed(&visitor, error, ServiceName::Orders);
        }
    }
    let body = html! {
        h1 { (t.history_title) }
        @match &orders {
            Err(_) => (unavailable(&visitor, ServiceName::Orders)),
            Ok(page) if page.items.is_empty() => {
                div.empty-state {
                    p { (t.history_empty) }
                    a.btn.btn-primary href="/" { (t.browse_menu) }
                }
            }
            Ok(page) => {
                ul.order-list {
                    @for order in &page.items { (history_row(&visitor, order)) }
                }
                @let pages = u32::try_from((page.total + i64::from(HISTORY_PAGE_SIZE) - 1) / i64::from(HISTORY_PAGE_SIZE)).unwrap_or(1);
                @if pages > 1 {
                    nav.pager aria-label=(t.history_title) {
                        @if page_number > 1 { a.btn href={ "/orders?page=" (page_number - 1) } rel="prev" { "← " (t.newer) } }
                        span.muted { (page_number) " / " (pages) }
                        @if page_number < pages { a.btn href={ "/orders?page=" (page_number + 1) } rel="next" { (t.older) " →" } }
                    }
                }
            }
        }
    };
    let extras = Extras {
        scripts: &["history.js"],
        ..Extras::default()
    };
    page_with(
        &visitor,
        StatusCode::OK,
        t.history_title,
        Nav::Orders,
        body,
        extras,
    )
}

fn history_row(visitor: &Visitor, order: &Order) -> Markup {
    let t = visitor.t;
    let summary: Vec<String> = order
        .items
        .iter()
        .map(|l| format!("{} × {}", l.quantity, l.name))
        .collect();
    html! {
        li.order-row {
            div.order-row-main {
                p.order-row-title {
                    a href={ "/orders/" (order.order_id) } { (fill(t.order_title, &[("id", &short_id(order.order_id))])) }
                    " " (status_pill(visitor, &order.status))
                }
                p.muted { (date_time(visitor, order.placed_at)) " · " (t.count(order.dish_count(), t.dishes_one, t.dishes_many)) }
                p.order-row-items { (summary.join(", ")) }
                @if let Some(at) = order.scheduled_for {
                    p.scheduled-for { (time_sentence(visitor, t.scheduled_for, at)) }
                }
            }
            div.order-row-side {
                strong.price { (money(visitor, &order.total)) }
                div.actions {
                    a.btn href={ "/orders/" (order.order_id) } { (t.view_order) }
                    (reorder_button(visitor, order))
                }
            }
        }
    }
}

fn reorder_button(visitor: &Visitor, order: &Order) -> Markup {
    let items: Vec<serde_json::Value> = order
        .items
        .iter()
        .map(|l| json!({ "dishId": l.dish_id, "name": l.name, "price": l.unit_price, "quantity": l.quantity, "note": l.note, "options": cart_options(&l.options) }))
        .collect();
    html! {
        button.btn.btn-secondary type="button" data-reorder=(serde_json::Value::from(items).to_string()) {
            (visitor.t.reorder)
        }
    }
}

fn status_pill(visitor: &Visitor, status: &str) -> Markup {
    html! { span class={ "pill pill-" (status) } { (visitor.t.order_status(status)) } }
}

/// What the order page shows: the order, and its delivery as far as it is known.
struct Tracking {
    order: Order,
    /// `None`: no delivery yet. `Some(Err)`: the delivery service is unavailable.
    delivery: Option<Result<Delivery, ()>>,
}

async fn tracking(
    gateway: &Gateway,
    visitor: &Visitor,
    order_id: Uuid,
) -> Result<Tracking, Response> {
    let token = token(gateway, visitor).await?;
    let token = token.as_deref();
    let order_path = format!("/orders/{order_id}");
    let delivery_path = format!("/deliveries/{order_id}");
    let (order, delivery) = tokio::join!(
        gateway
            .upstream
            .get_json::<Order>(ServiceName::Orders, &order_path, token),
        gateway
            .upstream
            .get_json::<Delivery>(ServiceName::Delivery, &delivery_path, token),
    );
    let order = order.map_err(|error| failed(visitor, &error, ServiceName::Orders))?;
    let delivery = match delivery {
        Ok(delivery) => Some(Ok(delivery)),
        Err(error) if error.status() == Some(404) => None,
        Err(error) if error.is_unavailable() => Some(Err(())),
        // Refused (a chef may see the order but not its delivery): nothing to show.
        Err(_) => None,
    };
    Ok(Tracking { order, delivery })
}

/// `GET /orders/{id}`: the order, live.
#[handler]
pub async fn order_page(
    gateway: Data<&Arc<Gateway>>,
    visitor: Data<&Visitor>,
    Path(order_id): Path<String>,
) -> Response {
    if let Err(response) = super::require(
        &visitor,
        &[Role::Customer, Role::Manager, Role::Chef, Role::Courier],
    ) {
        return response;
    }
    let t = visitor.t;
    let Ok(order_id) = order_id.parse::<Uuid>() else {
        return super::message_page(
            &visitor,
            StatusCode::NOT_FOUND,
            t.not_found_title,
            t.not_found_text,
        );
    };
    let tracking = match tracking(&gateway, &visitor, order_id).await {
        Ok(tracking) => tracking,
        Err(response) => return response,
    };
    let order = &tracking.order;
    let title = fill(t.order_title, &[("id", &short_id(order_id))]);
    let body = html! {
        article.order-page data-order-id=(order_id) {
            header.page-head {
                h1 { (title) }
                p.muted { (super::date_time_sentence(&visitor, t.placed_on, order.placed_at)) }
                @if let Some(at) = order.scheduled_for {
                    p.scheduled-for { (time_sentence(&visitor, t.scheduled_for, at)) }
                }
            }
            div.order-layout {
                div #order-live .order-live data-fragment={ "/orders/" (order_id) "/live" } {
                    (live_markup(&visitor, &tracking))
                }
                aside.order-summary aria-labelledby="summary-heading" {
                    h2 #summary-heading { (t.your_order) }
                    ul.summary-lines {
                        @for line in &order.items {
                            li {
                                span.qty { (line.quantity) "×" }
                                span.summary-name {
                                    (line.name)
                                    @for option in &line.options { br; span.muted.line-option { (option.group) ": " (option.choice) } }
                                    @if let Some(note) = &line.note { br; span.muted.note { "« " (note) " »" } }
                                }
                                span.price { (money(&visitor, &line.line_total)) }
                            }
                        }
                    }
                    p.summary-total { span { (t.total) } strong.price { (money(&visitor, &order.total)) } }
                    @if let Some(address) = &order.delivery_address {
                        h3 { (t.delivery_address) }
                        address { (address.street) br; (address.postal_code) " " (address.city) }
                    }
                    @if visitor.role() == Some(Role::Customer) {
                        p.summary-actions { (reorder_button(&visitor, order)) }
                    }
                }
            }
        }
    };
    let extras = Extras {
        scripts: &["order.js"],
        ..Extras::default()
    };
    page_with(&visitor, StatusCode::OK, &title, Nav::Orders, body, extras)
}

/// `GET /orders/{id}/live`: the live part of the order page (status, timeline, courier).
#[handler]
pub async fn order_live(
    gateway: Data<&Arc<Gateway>>,
    visitor: Data<&Visitor>,
    Path(order_id): Path<String>,
) -> Response {
    if visitor.session.is_none() {
        return super::status_only(StatusCode::UNAUTHORIZED);
    }
    let Ok(order_id) = order_id.parse::<Uuid>() else {
        return super::status_only(StatusCode::NOT_FOUND);
    };
    match tracking(&gateway, &visitor, order_id).await {
        Ok(tracking) => fragment(live_markup(&visitor, &tracking)),
        Err(response) => super::status_only(response.status()),
    }
}

fn live_markup(visitor: &Visitor, tracking: &Tracking) -> Markup {
    let t = visitor.t;
    let order = &tracking.order;
    let status = order.status.as_str();
    let stopped = matches!(status, "cancelled" | "rejected");
    let may_cancel = match visitor.role() {
        Some(Role::Customer) => order.customer_may_cancel(),
        Some(Role::Manager) => !order.is_finished(),
        _ => false,
    };
    let eta = match &tracking.delivery {
        Some(Ok(delivery)) if status == "out_for_delivery" => delivery.eta,
        _ => None,
    };
    html! {
        div data-status=(status) data-finished=(order.is_finished()) {
            // Said first, where it cannot be missed: the order goes on, only tracking is down.
            @if matches!(tracking.delivery, Some(Err(()))) && !order.is_finished() {
                div.notice.notice-warn role="status" data-unavailable="delivery" {
                    strong { (t.tracking_unavailable) }
                }
            }
            section class={ "status-card status-" (status) } aria-live="polite" {
                p.status-label { (t.order_status(status)) }
                p.status-explain { (t.order_explanation(status)) }
                @if let Some(reason) = order.reason.as_ref().filter(|_| stopped) {
                    p.status-reason { (fill(t.reason, &[("reason", reason)])) }
                }
                @if let Some(eta) = eta {
                    p.status-eta { (super::time_sentence(visitor, t.eta, eta)) }
                }
            }
            section.timeline-card aria-labelledby="timeline-heading" {
                h2 #timeline-heading { (t.progress) }
                ol.timeline {
                    @for step in JOURNEY {
                        @let at = order.reached(step);
                        @if !stopped || at.is_some() {
                            @let state = if step == status { "current" } else if at.is_some() { "done" } else { "todo" };
                            li class={ "step step-" (state) } data-step=(step) aria-current=[(state == "current").then_some("step")] {
                                span.step-dot aria-hidden="true" {}
                                span.step-label { (t.order_status(step)) }
                                @if let Some(at) = at { span.step-time { (time_of_day(visitor, at)) } }
                            }
                        }
                    }
                    @if stopped {
                        li.step.step-stopped.step-current data-step=(status) aria-current="step" {
                            span.step-dot aria-hidden="true" {}
                            span.step-label { (t.order_status(status)) }
                            @if let Some(at) = order.reached(status) { span.step-time { (time_of_day(visitor, at)) } }
                        }
                    }
                }
            }
            @if !stopped {
                (delivery_panel(visitor, order, tracking.delivery.as_ref()))
            }
            @if may_cancel {
                p.order-actions {
                    button.btn.btn-danger type="button" data-cancel-order=(order.order_id) { (t.cancel_order) }
                }
            }
        }
    }
}

fn delivery_panel(
    visitor: &Visitor,
    order: &Order,
    delivery: Option<&Result<Delivery, ()>>,
) -> Markup {
    let t = visitor.t;
    let interesting = matches!(order.status.as_str(), "ready" | "out_for_delivery");
    html! {
        @match delivery {
            Some(Ok(delivery)) if interesting => {
                section.courier-card aria-labelledby="courier-heading" {
                    h2 #courier-heading { (t.your_courier) }
                    @match &delivery.courier {
                        Some(courier) => {
                            p.courier-name { strong { (courier.name) } " · " (t.vehicle(&courier.vehicle)) }
                        }
                        None => p { (t.waiting_for_courier) }
                    }
                    @if let Some(position) = &delivery.courier_position {
                        p {
                            a href=(map_link(position.lat, position.lon)) target="_blank" rel="noopener noreferrer" {
                                (t.see_on_map)
                            }
                        }
                        p.muted { (super::time_sentence(visitor, t.position_updated, position.at)) }
                    }
                }
            }
            _ => {}
        }
    }
}
