//! The manager's console: the live board of the day's orders and of the deliveries in progress
//! (with manual assignment), the menu editor, the team (staff accounts and couriers), the
//! notifications with their webhooks, and the dead letters of every service (replay, discard).
//! Each part comes from one service and degrades on its own.

use std::sync::Arc;

use brigade_domain::Role;
use brigade_platform::ServiceName;
use maud::{html, Markup};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{handler, Response};

use super::{
    date_time, fragment, money, page_with, status_only, time_of_day, token, unavailable, Extras,
    Nav,
};
use crate::i18n::{fill, ALLERGENS, STATIONS};
use crate::models::{
    map_link, short_id, Board, Courier, DeadLetterPage, Delivery, Dish, Menu, Notification,
    OptionChoice, OptionGroup, Webhook, WebhookDelivery,
};
use crate::visitor::Visitor;
use crate::Gateway;

/// Cards shown per board column (the count says how many there are).
const CARDS_PER_COLUMN: usize = 8;

/// `GET /manager`: the live board.
#[handler]
pub async fn board_page(gateway: Data<&Arc<Gateway>>, visitor: Data<&Visitor>) -> Response {
    if let Err(response) = super::require(&visitor, &[Role::Manager]) {
        return response;
    }
    let t = visitor.t;
    let live = match board_markup(&gateway, &visitor).await {
        Ok(markup) => markup,
        Err(response) => return response,
    };
    let body = html! {
        header.page-head.with-tools {
            h1 { (t.nav_board) }
            span.live-state data-live-state { (t.live_reconnecting) }
        }
        div #board-live data-fragment="/manager/live" { (live) }
    };
    let extras = Extras {
        scripts: &["manager.js"],
        ..Extras::default()
    };
    page_with(
        &visitor,
        StatusCode::OK,
        t.nav_board,
        Nav::Board,
        body,
        extras,
    )
}

/// `GET /manager/live`: the board's live part.
#[handler]
pub async fn board_live(gateway: Data<&Arc<Gateway>>, visitor: Data<&Visitor>) -> Response {
    if visitor.role() != Some(Role::Manager) {
        return status_only(StatusCode::UNAUTHORIZED);
    }
    match board_markup(&gateway, &visitor).await {
        Ok(markup) => fragment(markup),
        Err(response) => status_only(response.status()),
    }
}

async fn board_markup(gateway: &Gateway, visitor: &Visitor) -> Result<Markup, Response> {
    let t = visitor.t;
    let token = token(gateway, visitor).await?;
    let token = token.as_deref();
    let (board, deliveries, couriers) = tokio::join!(
        gateway
            .upstream
            .get_json::<Board>(ServiceName::Orders, "/orders/board", token),
        gateway
            .upstream
            .get_json::<Vec<Delivery>>(ServiceName::Delivery, "/deliveries", token),
        gateway
            .upstream
            .get_json::<Vec<Courier>>(ServiceName::Delivery, "/couriers", token),
    );
    let minutes = |secs: Option<f64>| {
        secs.map_or_else(
            || "—".to_owned(),
            |s| fill(t.minutes, &[("n", &format!("{:.0}", s / 60.0))]),
        )
    };
    let free: Vec<&Courier> = couriers
        .as_ref()
        .map(|all| all.iter().filter(|c| c.active && c.on_shift).collect())
        .unwrap_or_default();
    Ok(html! {
        @match &board {
            Ok(board) => {
                section.kpis aria-label=(t.orders_today) {
                    div.kpi { span.kpi-value { (board.total) } span.kpi-label { (t.orders_today) } }
                    div.kpi { span.kpi-value { (minutes(board.average_placed_to_ready_secs)) } span.kpi-label { (t.avg_prep) } }
                    div.kpi { span.kpi-value { (minutes(board.average_ready_to_delivered_secs)) } span.kpi-label { (t.avg_delivery) } }
                }
                section.board-columns aria-label=(t.orders_today) {
                    @for column in &board.columns {
                        div class={ "board-column col-" (column.status) } {
                            h2 { (t.order_status(&column.status)) " " span.badge.badge-count.zero[column.count == 0] { (column.count) } }
                            ul {
                                @for card in column.orders.iter().take(CARDS_PER_COLUMN) {
                                    li {
                                        a href={ "/orders/" (card.order_id) } {
                                            strong { "#" (short_id(card.order_id)) }
                                            " " (time_of_day(visitor, card.placed_at))
                                        }
                                        span.muted { (t.count(card.dishes as usize, t.dishes_one, t.dishes_many)) " · " (money(visitor, &card.total)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Err(_) => (unavailable(visitor, ServiceName::Orders)),
        }
        section.panel aria-labelledby="deliveries-heading" {
            h2 #deliveries-heading { (t.deliveries_in_progress) }
            @match &deliveries {
                Err(_) => (unavailable(visitor, ServiceName::Delivery)),
                Ok(list) if list.is_empty() => p.muted { (t.nothing_in_progress) },
                Ok(list) => {
                    div.table-wrap {
                        table.data {
                            thead { tr {
                                th scope="col" { (t.order_column) }
                                th scope="col" { (t.status) }
                                th scope="col" { (t.courier) }
                                th scope="col" { (t.delivery_address) }
                                th scope="col" { (t.assign) }
                            } }
                            tbody {
                                @for delivery in list {
                                    tr data-delivery=(delivery.order_id) {
                                        td { a href={ "/orders/" (delivery.order_id) } { "#" (short_id(delivery.order_id)) } }
                                        td { span class={ "pill pill-" (delivery.status) } { (t.delivery_status(&delivery.status)) } }
                                        td { (delivery.courier.as_ref().map_or("—", |c| c.name.as_str())) }
                                        td { (delivery.address.one_line()) }
                                        td {
                                            @if matches!(delivery.status.as_str(), "ready_for_pickup" | "assigned") {
                                                (assign_form(visitor, delivery, &free))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.panel aria-labelledby="couriers-heading" {
            h2 #couriers-heading { (t.couriers) }
            @match &couriers {
                Err(_) => (unavailable(visitor, ServiceName::Delivery)),
                Ok(list) => {
                    ul.courier-list {
                        @for courier in list.iter().filter(|c| c.active) {
                            li class={ "courier-row " (if courier.on_shift { "on" } else { "off" }) } {
                                span.dot aria-hidden="true" {}
                                strong { (courier.name) }
                                span.muted { (t.vehicle(&courier.vehicle)) " · " (if courier.on_shift { t.on_shift } else { t.off_shift }) }
                                @if let Some(position) = &courier.position {
                                    a href=(map_link(position.lat, position.lon)) target="_blank" rel="noopener noreferrer" {
                                        (super::time_sentence(visitor, t.last_seen, position.at))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

fn assign_form(visitor: &Visitor, delivery: &Delivery, free: &[&Courier]) -> Markup {
    let t = visitor.t;
    let current = delivery.courier.as_ref().map(|c| c.id);
    let choices: Vec<&&Courier> = free.iter().filter(|c| Some(c.id) != current).collect();
    html! {
        @if choices.is_empty() {
            span.muted { (t.no_courier_on_shift) }
        } @else {
            form.assign-form data-assign=(delivery.order_id) {
                label.visually-hidden for={ "assign-" (delivery.order_id) } { (t.choose_courier) }
                select id={ "assign-" (delivery.order_id) } name="courierId" {
                    @for courier in choices {
                        option value=(courier.id) { (courier.name) " · " (t.vehicle(&courier.vehicle)) }
                    }
                }
                button.btn.btn-secondary type="submit" { (t.assign) }
            }
        }
    }
}

/// `GET /manager/menu`: the menu editor.
#[handler]
pub async fn menu_page(gateway: Data<&Arc<Gateway>>, visitor: Data<&Visitor>) -> Response {
    if let Err(response) = super::require(&visitor, &[Role::Manager]) {
        return response;
    }
    let t = visitor.t;
    // Fresh, not the pages' cached copy: the manager must see their own last change.
    let menu = gateway
        .upstream
        .get_json::<Menu>(ServiceName::Orders, "/menu", None)
        .await;
    let categories: Vec<String> = menu
        .as_ref()
        .map(|m| m.categories.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let body = html! {
        h1 { (t.menu_editor_title) }
        datalist #categories { @for name in &categories { option value=(name) {} } }
        datalist #stations { @for station in STATIONS { option value=(station) { (t.station(station)) } } }
        @match &menu {
            Err(_) => (unavailable(&visitor, ServiceName::Orders)),
            Ok(menu) => {
                details.panel.add-dish {
                    summary.btn.btn-primary { (t.add_dish) }
                    (dish_form(&visitor, None))
                }
                @for category in &menu.categories {
                    section.panel {
                        h2 { (t.category(&category.name)) }
                        ul.editor-list {
                            @for dish in &category.dishes {
                                li.editor-row.unavailable[!dish.available] id={ "dish-" (dish.id) } {
                                    div.editor-summary {
                                        strong { (dish.name) }
                                        span.price { (money(&visitor, &dish.price)) }
                                        span.muted { (t.station(&dish.station)) " · " (fill(t.prep_time, &[("n", &dish.prep_minutes.to_string())])) }
                                        @if !dish.available { span.pill.pill-cancelled { (t.sold_out) } }
                                    }
                                    div.editor-actions {
                                        @if dish.available {
                                            button.btn.btn-quiet type="button" data-availability=(dish.id) data-available="false" { (t.mark_sold_out) }
                                        } @else {
                                            button.btn.btn-secondary type="button" data-availability=(dish.id) data-available="true" { (t.put_back) }
                                        }
                                        details.edit-dish {
                                            summary.btn { (t.edit) }
                                            (dish_form(&visitor, Some(dish)))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let extras = Extras {
        scripts: &["manager.js"],
        ..Extras::default()
    };
    page_with(
        &visitor,
        StatusCode::OK,
        t.menu_editor_title,
        Nav::MenuEditor,
        body,
        extras,
    )
}

fn dish_form(visitor: &Visitor, dish: Option<&Dish>) -> Markup {
    let t = visitor.t;
    let key = dish.map_or_else(|| "new".to_owned(), |d| d.id.to_string());
    let field = |name: &str| format!("{name}-{key}");
    let price = dish.map(|d| format!("{}.{:02}", d.price.amount / 100, d.price.amount % 100));
    html! {
        form.form-grid data-dish-form=[dish.map(|d| d.id.to_string())] data-new-dish[dish.is_none()] {
            div.field {
                label for=(field("name")) { (t.dish_name) }
                input id=(field("name")) name="name" required maxlength="120" value=[dish.map(|d| d.name.as_str())];
            }
            div.field {
                label for=(field("category")) { (t.category) }
                input id=(field("category")) name="category" required list="categories" value=[dish.map(|d| d.category.as_str())];
            }
            div.field.wide {
                label for=(field("description")) { (t.description) }
                textarea id=(field("description")) name="description" rows="2" maxlength="500" {
                    @if let Some(d) = dish { (d.description) }
                }
            }
            div.field {
                label for=(field("price")) { (t.price_eur) }
                input id=(field("price")) name="price" type="number" min="0" step="0.01" required inputmode="decimal" value=[price];
            }
            div.field {
                label for=(field("station")) { (t.station) }
                input id=(field("station")) name="station" list="stations" value=[dish.map(|d| d.station.as_str())];
            }
            div.field {
                label for=(field("prep")) { (t.prep_minutes) }
                input id=(field("prep")) name="prepMinutes" type="number" min="1" max="240" value=[dish.map(|d| d.prep_minutes)];
            }
            fieldset.field.wide.allergen-boxes {
                legend { (t.allergens) }
                @for code in ALLERGENS {
                    label.check {
                        input type="checkbox" name="allergens" value=(code)
                            checked[dish.is_some_and(|d| d.allergens.iter().any(|a| a == code))];
                        span { (t.allergen(code)) }
                    }
                }
            }
            fieldset.field.wide.option-groups data-option-groups {
                legend { (t.option_groups) }
                div data-groups {
                    @for group in dish.map_or(&[][..], |d| d.options.as_slice()) {
                        (option_group(visitor, Some(group)))
                    }
                }
                button.btn.btn-secondary type="button" data-add-group { (t.add_option_group) }
                template data-group-template { (option_group(visitor, None)) }
                template data-choice-template { (option_choice(visitor, None)) }
            }
            p.notice.notice-error.field.wide data-dish-error role="alert" hidden {}
            div.field.wide {
                button.btn.btn-primary type="submit" { @if dish.is_some() { (t.save) } @else { (t.add_dish) } }
            }
        }
    }
}

/// One option group of the dish form (`None`: a new, empty one). Its fields carry
/// `data-field` rather than `name`, so they never mix with the dish's own fields; each is
/// labelled by the label around it, as groups are added and removed in the page.
fn option_group(visitor: &Visitor, group: Option<&OptionGroup>) -> Markup {
    let t = visitor.t;
    let min = group.map_or(0, |g| g.min_choices);
    let max = group.map_or(1, |g| g.max_choices);
    html! {
        fieldset.option-group data-group data-group-id=[group.map(|g| g.id.to_string())] {
            legend { (t.option_group) }
            div.option-group-fields {
                label.stacked {
                    span { (t.option_group_name) }
                    input data-field="name" required maxlength="60" value=[group.map(|g| g.name.as_str())];
                }
                label.check {
                    input type="checkbox" data-field="required" checked[min > 0];
                    span { (t.option_group_required) }
                }
                label.stacked {
                    span { (t.min_choices) }
                    input data-field="minChoices" type="number" min="0" max="20" inputmode="numeric" value=(min);
                }
                label.stacked {
                    span { (t.max_choices) }
                    input data-field="maxChoices" type="number" min="1" max="20" inputmode="numeric" value=(max);
                }
            }
            ul.option-choices data-choices {
                @match group {
                    Some(group) => { @for choice in &group.choices { (option_choice(visitor, Some(choice))) } }
                    None => (option_choice(visitor, None)),
                }
            }
            div.actions {
                button.btn.btn-secondary type="button" data-add-choice { (t.add_choice) }
                button.btn.btn-quiet type="button" data-remove-group { (t.remove_option_group) }
            }
        }
    }
}

/// One choice of an option group (`None`: a new, empty one).
fn option_choice(visitor: &Visitor, choice: Option<&OptionChoice>) -> Markup {
    let t = visitor.t;
    let delta = choice.map(|c| {
        let amount = c.price_delta.amount;
        format!("{}.{:02}", amount / 100, amount % 100)
    });
    html! {
        li.option-choice data-choice data-choice-id=[choice.map(|c| c.id.to_string())] {
            label.stacked {
                span { (t.choice_name) }
                input data-field="name" required maxlength="60" value=[choice.map(|c| c.name.as_str())];
            }
            label.stacked {
                span { (t.price_delta_eur) }
                input data-field="priceDelta" type="number" min="0" max="1000" step="0.01" inputmode="decimal"
                    value=(delta.as_deref().unwrap_or("0.00"));
            }
            button.btn.btn-quiet type="button" data-remove-choice { (t.remove_choice) }
        }
    }
}

/// `GET /manager/team`: staff accounts and couriers.
#[handler]
pub async fn team_page(gateway: Data<&Arc<Gateway>>, visitor: Data<&Visitor>) -> Response {
    if let Err(response) = super::require(&visitor, &[Role::Manager]) {
        return response;
    }
    let t = visitor.t;
    let token = match token(&gateway, &visitor).await {
        Ok(token) => token,
        Err(response) => return response,
    };
    let couriers = gateway
        .upstream
        .get_json::<Vec<Courier>>(ServiceName::Delivery, "/couriers", token.as_deref())
        .await;
    let body = html! {
        h1 { (t.team_title) }
        div.team-layout {
            section.panel aria-labelledby="staff-heading" {
                h2 #staff-heading { (t.create_staff) }
                form.form-stack data-staff-form {
                    label for="staff-name" { (t.name) }
                    input #staff-name name="name" required autocomplete="off";
                    label for="staff-email" { (t.email) }
                    input #staff-email name="email" type="email" required autocomplete="off";
                    label for="staff-password" { (t.password) }
                    input #staff-password name="password" type="password" required minlength="8" autocomplete="new-password"
                        aria-describedby="staff-password-hint";
                    p.hint #staff-password-hint { (t.password_hint) }
                    label for="staff-phone" { (t.phone) " " span.muted { "(" (t.optional) ")" } }
                    input #staff-phone name="phone" type="tel";
                    label for="staff-role" { (t.role) }
                    select #staff-role name="role" {
                        option value="chef" { (t.role_chef) }
                        option value="courier" { (t.role_courier) }
                        option value="manager" { (t.role_manager) }
                    }
                    p.hint { (t.courier_profile_note) }
                    button.btn.btn-primary type="submit" { (t.create_staff) }
                }
            }
            section.panel aria-labelledby="fleet-heading" {
                h2 #fleet-heading { (t.couriers) }
                @match &couriers {
                    Err(_) => (unavailable(&visitor, ServiceName::Delivery)),
                    Ok(list) if list.is_empty() => p.muted { (t.nothing_in_progress) },
                    Ok(list) => {
                        ul.courier-list {
                            @for courier in list {
                                li class={ "courier-row " (if courier.on_shift { "on" } else { "off" }) } data-courier=(courier.id) {
                                    span.dot aria-hidden="true" {}
                                    div.courier-main {
                                        strong { (courier.name) }
                                        span.muted {
                                            (t.vehicle(&courier.vehicle)) " · "
                                            (if courier.active { t.active } else { t.inactive }) " · "
                                            (if courier.on_shift { t.on_shift } else { t.off_shift })
                                            @if let Some(phone) = &courier.phone { " · " (phone) }
                                        }
                                        @if let Some(position) = &courier.position {
                                            span.muted { (date_time(&visitor, position.at)) }
                                        }
                                    }
                                    div.actions {
                                        button.btn.btn-quiet type="button" data-courier-active=(courier.id)
                                            data-active=(if courier.active { "false" } else { "true" }) {
                                            (if courier.active { t.deactivate } else { t.activate })
                                        }
                                        button.btn.btn-quiet type="button" data-courier-remove=(courier.id) { (t.remove) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let extras = Extras {
        scripts: &["manager.js"],
        ..Extras::default()
    };
    page_with(
        &visitor,
        StatusCode::OK,
        t.team_title,
        Nav::Team,
        body,
        extras,
    )
}

/// `GET /manager/notifications`: the webhooks that receive every notification, and the
/// latest notifications.
#[handler]
pub async fn notifications_page(gateway: Data<&Arc<Gateway>>, visitor: Data<&Visitor>) -> Response {
    if let Err(response) = super::require(&visitor, &[Role::Manager]) {
        return response;
    }
    let t = visitor.t;
    let token = match token(&gateway, &visitor).await {
        Ok(token) => token,
        Err(response) => return response,
    };
    let token = token.as_deref();
    let (webhooks, notifications) = tokio::join!(
        gateway
            .upstream
            .get_json::<Vec<Webhook>>(ServiceName::Delivery, "/webhooks", token),
        gateway.upstream.get_json::<Vec<Notification>>(
            ServiceName::Delivery,
            "/notifications?limit=20",
            token
        ),
    );
    // Each webhook's delivery log, summed up: sent, waiting to retry, given up.
    let mut logs = Vec::new();
    if let Ok(list) = &webhooks {
        for webhook in list.iter().filter(|w| w.active) {
            let path = format!("/webhooks/{}/deliveries", webhook.id);
            let log = gateway
                .upstream
                .get_json::<Vec<WebhookDelivery>>(ServiceName::Delivery, &path, token)
                .await
                .unwrap_or_default();
            logs.push((webhook.id, log));
        }
    }
    let count =
        |log: &[WebhookDelivery], status: &str| log.iter().filter(|d| d.status == status).count();
    let body = html! {
        h1 { (t.nav_notifications) }
        div.team-layout {
            section.panel aria-labelledby="webhooks-heading" {
                h2 #webhooks-heading { (t.webhooks_title) }
                p.muted { (t.webhooks_intro) }
                form.form-stack data-webhook-form {
                    label for="webhook-url" { (t.webhook_url) }
                    input #webhook-url name="url" type="url" required placeholder="https://";
                    label for="webhook-secret" { (t.webhook_secret) " " span.muted { "(" (t.optional) ")" } }
                    input #webhook-secret name="secret" autocomplete="off" aria-describedby="webhook-secret-hint";
                    p.hint #webhook-secret-hint { (t.webhook_secret_hint) }
                    button.btn.btn-primary type="submit" { (t.add_webhook) }
                }
                p.notice.notice-info data-webhook-secret role="status" hidden {}
                @match &webhooks {
                    Err(_) => (unavailable(&visitor, ServiceName::Delivery)),
                    Ok(list) if !list.iter().any(|w| w.active) => p.muted { (t.no_webhooks) },
                    Ok(list) => {
                        ul.courier-list {
                            @for webhook in list.iter().filter(|w| w.active) {
                                @let log = logs.iter().find(|(id, _)| *id == webhook.id).map(|(_, log)| log.as_slice()).unwrap_or_default();
                                @let parked = count(log, "parked");
                                li.courier-row data-webhook=(webhook.id) {
                                    div.courier-main {
                                        strong.webhook-url { (webhook.url) }
                                        span.muted {
                                            (fill(t.webhook_delivered, &[("n", &count(log, "delivered").to_string())])) " · "
                                            (fill(t.webhook_pending, &[("n", &count(log, "pending").to_string())])) " · "
                                            (fill(t.webhook_parked, &[("n", &parked.to_string())]))
                                        }
                                        @if let Some(error) = log.iter().find_map(|d| d.last_error.as_ref()) {
                                            span.muted { (fill(t.last_error, &[("error", error)])) }
                                        }
                                        span.muted { (date_time(&visitor, webhook.created_at)) }
                                    }
                                    div.actions {
                                        @if parked > 0 {
                                            button.btn.btn-secondary type="button" data-post={ "/api/delivery/webhooks/" (webhook.id) "/retry" }
                                                data-reload { (t.retry_parked) }
                                        }
                                        button.btn.btn-quiet type="button" data-webhook-delete=(webhook.id) { (t.delete) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section.panel aria-labelledby="notifications-heading" {
                h2 #notifications-heading { (t.recent_notifications) }
                @match &notifications {
                    Err(_) => (unavailable(&visitor, ServiceName::Delivery)),
                    Ok(list) if list.is_empty() => p.muted { (t.no_notifications) },
                    Ok(list) => {
                        ul.courier-list {
                            @for notification in list {
                                li.courier-row {
                                    div.courier-main {
                                        strong { (notification.title) }
                                        span { (notification.message) }
                                        span.muted {
                                            (date_time(&visitor, notification.created_at))
                                            @if let Some(order_id) = notification.order_id {
                                                " · " a href={ "/orders/" (order_id) } { "#" (short_id(order_id)) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let extras = Extras {
        scripts: &["manager.js"],
        ..Extras::default()
    };
    page_with(
        &visitor,
        StatusCode::OK,
        t.nav_notifications,
        Nav::Notifications,
        body,
        extras,
    )
}

/// Dead letters shown per service (the count says how many there are).
const DEAD_LETTERS_PER_SERVICE: u32 = 200;

/// `GET /manager/dead-letters`: what each service could not apply, with replay and discard.
#[handler]
pub async fn dead_letters_page(gateway: Data<&Arc<Gateway>>, visitor: Data<&Visitor>) -> Response {
    if let Err(response) = super::require(&visitor, &[Role::Manager]) {
        return response;
    }
    let t = visitor.t;
    let token = match token(&gateway, &visitor).await {
        Ok(token) => token,
        Err(response) => return response,
    };
    let path = format!("/dead-letters?pageSize={DEAD_LETTERS_PER_SERVICE}");
    let read = |service| {
        gateway
            .upstream
            .get_json::<DeadLetterPage>(service, &path, token.as_deref())
    };
    let (identity, orders, kitchen, delivery) = tokio::join!(
        read(ServiceName::Identity),
        read(ServiceName::Orders),
        read(ServiceName::Kitchen),
        read(ServiceName::Delivery),
    );
    let pages = [
        (ServiceName::Identity, identity),
        (ServiceName::Orders, orders),
        (ServiceName::Kitchen, kitchen),
        (ServiceName::Delivery, delivery),
    ];
    let none = pages
        .iter()
        .all(|(_, page)| page.as_ref().is_ok_and(|p| p.items.is_empty()));
    let body = html! {
        h1 { (t.nav_dead_letters) }
        p.muted { (t.dead_letters_intro) }
        p.empty-state data-no-dead-letters hidden[!none] { (t.no_dead_letters) }
        @for (service, page) in &pages {
            @match page {
                Err(_) => (unavailable(&visitor, *service)),
                Ok(page) if page.items.is_empty() => {}
                Ok(page) => {
                    section.panel aria-labelledby={ "dead-letters-" (service.as_str()) } data-dead-letters=(service.as_str()) {
                        h2 id={ "dead-letters-" (service.as_str()) } { (service.as_str()) " · " (page.total) }
                        ul.courier-list {
                            @for letter in &page.items {
                                li.courier-row.dead-letter data-dead-letter=(letter.id) data-service=(service.as_str()) {
                                    div.courier-main {
                                        strong { "#" (letter.id) " · " (letter.consumer) }
                                        code.muted { (letter.message_id.as_deref().unwrap_or(&letter.subject)) }
                                        span.dead-letter-error { (letter.error) }
                                        span.muted {
                                            (fill(t.parked_on, &[("date", &visitor.lang.date_time(letter.parked_at))]))
                                            " · " (fill(t.dead_letter_attempts, &[("n", &letter.attempts.to_string())]))
                                        }
                                    }
                                    div.actions {
                                        @if letter.replayable {
                                            button.btn.btn-secondary type="button"
                                                data-dead-letter-replay={ "/api/" (service.as_str()) "/dead-letters/" (letter.id) "/replay" } { (t.replay) }
                                        }
                                        button.btn.btn-quiet type="button"
                                            data-dead-letter-discard={ "/api/" (service.as_str()) "/dead-letters/" (letter.id) "/discard" } { (t.discard) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let extras = Extras {
        scripts: &["manager.js"],
        ..Extras::default()
    };
    page_with(
        &visitor,
        StatusCode::OK,
        t.nav_dead_letters,
        Nav::DeadLetters,
        body,
        extras,
    )
}
