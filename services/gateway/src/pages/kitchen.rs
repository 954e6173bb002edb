//! The kitchen screen: open tickets as cards, oldest first, each item with one big button for
//! its next step, a timer per ticket that turns amber then red past its target, a station
//! filter, and a sound when a ticket arrives. A step just taken (started, ready) keeps a small
//! "Annuler" button for the two minutes the kitchen lets a chef take it back. The screen follows the kitchen's live stream; each
//! change re-renders one card here.
//!
//! A ticket's target is its slowest dish's preparation time (from the menu) plus
//! [`QUEUE_ALLOWANCE_MINUTES`] for the wait before a cook takes it.

use std::sync::Arc;

use brigade_domain::Role;
use brigade_platform::ServiceName;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Response};
use uuid::Uuid;

use super::{fragment, page_with, status_only, token, unavailable, Extras, Nav};
use crate::i18n::{fill, STATIONS};
use crate::models::{short_id, Menu, Ticket};
use crate::upstream::FetchError;
use crate::visitor::Visitor;
use crate::Gateway;

/// Minutes added to the slowest dish's preparation time for a ticket's target.
const QUEUE_ALLOWANCE_MINUTES: u32 = 5;
/// How long after a step its item offers an undo: the kitchen's own window
/// ([`Ticket::UNDO_WINDOW_SECS`](brigade_domain::kitchen::Ticket::UNDO_WINDOW_SECS)), so a
/// button is never shown that the kitchen would refuse (the screen hides it when it runs out).
const UNDO_WINDOW_SECS: i64 = brigade_domain::kitchen::Ticket::UNDO_WINDOW_SECS;
/// The target of a ticket whose dishes are not on the menu any more.
const DEFAULT_TARGET_MINUTES: u32 = 15;

const KITCHEN: &[Role] = &[Role::Chef, Role::Manager];

/// `GET /kitchen`.
#[handler]
pub async fn screen(gateway: Data<&Arc<Gateway>>, visitor: Data<&Visitor>) -> Response {
    if let Err(response) = super::require(&visitor, KITCHEN) {
        return response;
    }
    let t = visitor.t;
    let (tickets, menu) = match load(&gateway, &visitor).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    let count = tickets.as_ref().map_or(0, Vec::len);
    let stations: Vec<String> = match &menu {
        Some(menu) => {
            let mut used: Vec<String> = menu.dishes().map(|d| d.station.clone()).collect();
            used.sort_by_key(|s| {
                STATIONS
                    .iter()
                    .position(|k| k == s)
                    .unwrap_or(STATIONS.len())
            });
            used.dedup();
            used
        }
        None => Vec::new(),
    };
    let body = html! {
        div.kitchen data-kitchen {
            header.kitchen-bar {
                h1 { (t.kitchen_title) }
                p.ticket-count data-ticket-count aria-live="polite" { (t.count(count, t.tickets_one, t.tickets_many)) }
                @if stations.len() > 1 {
                    div.stations role="group" aria-label=(t.stations) {
                        button.chip type="button" data-station-filter="" aria-pressed="true" { (t.all_stations) }
                        @for station in &stations {
                            button.chip type="button" data-station-filter=(station) aria-pressed="false" { (t.station(station)) }
                        }
                    }
                }
                div.kitchen-tools {
                    button.btn.btn-quiet type="button" data-sound aria-pressed="false" { (t.sound_off) }
                    span.live-state data-live-state { (t.live_reconnecting) }
                    time.clock data-clock {}
                }
            }
            @match &tickets {
                Ok(tickets) => {
                    p.empty-state data-no-tickets hidden[!tickets.is_empty()] { (t.no_tickets) }
                    ol.tickets data-tickets { (cards_markup(&visitor, tickets, menu.as_deref())) }
                }
                Err(_) => {
                    (unavailable(&visitor, ServiceName::Kitchen))
                    p.empty-state data-no-tickets hidden { (t.no_tickets) }
                    ol.tickets data-tickets {}
                }
            }
        }
        dialog #reject-dialog aria-labelledby="reject-title" {
            form method="dialog" .form-stack {
                h2 #reject-title { (t.reject) }
                label for="reject-reason" { (t.reject_reason) }
                input #reject-reason name="reason" required maxlength="500" placeholder=(t.reject_placeholder);
                fieldset.reject-sold-out data-reject-items hidden {
                    legend { (t.reject_sold_out) }
                }
                div.dialog-actions {
                    button.btn value="cancel" formnovalidate { (t.dismiss) }
                    button.btn.btn-danger value="ok" { (t.reject) }
                }
            }
        }
    };
    let extras = Extras {
        scripts: &["kitchen.js"],
        data: Vec::new(),
        screen: true,
    };
    page_with(
        &visitor,
        StatusCode::OK,
        t.kitchen_title,
        Nav::Kitchen,
        body,
        extras,
    )
}

/// `GET /kitchen/tickets`: every open card (the screen resynchronizes with it after a break
/// in its live stream).
#[handler]
pub async fn cards(gateway: Data<&Arc<Gateway>>, visitor: Data<&Visitor>) -> Response {
    if !visitor.role().is_some_and(|r| KITCHEN.contains(&r)) {
        return status_only(StatusCode::UNAUTHORIZED);
    }
    match load(&gateway, &visitor).await {
        Ok((Ok(tickets), menu)) => fragment(cards_markup(&visitor, &tickets, menu.as_deref())),
        Ok((Err(_), _)) => status_only(StatusCode::SERVICE_UNAVAILABLE),
        Err(response) => status_only(response.status()),
    }
}

/// `GET /kitchen/tickets/{orderId}`: one card; 204 when the ticket is no longer open.
#[handler]
pub async fn card(
    gateway: Data<&Arc<Gateway>>,
    visitor: Data<&Visitor>,
    Path(order_id): Path<String>,
) -> Response {
    if !visitor.role().is_some_and(|r| KITCHEN.contains(&r)) {
        return status_only(StatusCode::UNAUTHORIZED);
    }
    let Ok(order_id) = order_id.parse::<Uuid>() else {
        return status_only(StatusCode::NOT_FOUND);
    };
    let token = match token(&gateway, &visitor).await {
        Ok(token) => token,
        Err(response) => return status_only(response.status()),
    };
    let path = format!("/tickets/{order_id}");
    let (ticket, menu) = tokio::join!(
        gateway
            .upstream
            .get_json::<Ticket>(ServiceName::Kitchen, &path, token.as_deref()),
        gateway.menu(),
    );
    match ticket {
        Ok(ticket) if ticket.status == "open" => {
            fragment(card_markup(&visitor, &ticket, menu.ok().as_deref()))
        }
        Ok(_) => status_only(StatusCode::NO_CONTENT),
        Err(error) => status_only(
            error
                .status()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        ),
    }
}

type Loaded = (Result<Vec<Ticket>, FetchError>, Option<Arc<Menu>>);

async fn load(gateway: &Gateway, visitor: &Visitor) -> Result<Loaded, Response> {
    let token = token(gateway, visitor).await?;
    let (tickets, menu) = tokio::join!(
        gateway.upstream.get_json::<Vec<Ticket>>(
            ServiceName::Kitchen,
            "/tickets",
            token.as_deref()
        ),
        gateway.menu(),
    );
    if let Err(error) = &tickets {
        if matches!(error.status(), Some(401 | 403)) {
            return Err(super::failed(visitor, error, ServiceName::Kitchen));
        }
    }
    Ok((tickets, menu.ok()))
}

fn cards_markup(visitor: &Visitor, tickets: &[Ticket], menu: Option<&Menu>) -> Markup {
    html! {
        @for ticket in tickets.iter().filter(|t| t.status == "open") {
            (card_markup(visitor, ticket, menu))
        }
    }
}

fn card_markup(visitor: &Visitor, ticket: &Ticket, menu: Option<&Menu>) -> Markup {
    let t = visitor.t;
    let id = ticket.order_id;
    let dish =
        |item: &crate::models::TicketItem| item.dish_id.and_then(|d| menu.and_then(|m| m.dish(d)));
    let target_minutes = ticket
        .items
        .iter()
        .filter_map(|item| dish(item).map(|d| d.prep_minutes))
        .max()
        .map_or(DEFAULT_TARGET_MINUTES, |m| m + QUEUE_ALLOWANCE_MINUTES);
    let stations: Vec<String> = ticket
        .items
        .iter()
        .map(|item| dish(item).map_or_else(|| "main".to_owned(), |d| d.station.clone()))
        .collect();
    let any_ready = ticket.items.iter().any(|i| i.status == "ready");
    let all_ready = ticket.items.iter().all(|i| i.status == "ready");
    let short = short_id(id);
    let now = Utc::now();
    html! {
        li.ticket id={ "ticket-" (id) } data-order-id=(id) data-placed-at=(ticket.placed_at.to_rfc3339())
            data-queue-at=(ticket.queue_at().to_rfc3339())
            data-target-secs=(target_minutes * 60) data-stations=(stations.join(" ")) data-short=(short)
            aria-labelledby={ "ticket-title-" (id) } {
            @if !ticket.allergies.is_empty() {
                @let list = ticket.allergies.iter().map(|a| t.allergen(a)).collect::<Vec<_>>().join(", ");
                p.allergy-banner role="alert" { "⚠ " (fill(t.allergy_banner, &[("list", &list)])) }
            }
            @if let Some(at) = ticket.scheduled_for {
                p.scheduled-for { (fill(t.scheduled_for, &[("time", &visitor.lang.time(at))])) }
            }
            header.ticket-head {
                h2 id={ "ticket-title-" (id) } { "#" (short) }
                div.ticket-timing {
                    span.timer data-timer role="timer" aria-label=(t.elapsed) { "00:00" }
                    span.target { (fill(t.target, &[("n", &target_minutes.to_string())])) }
                }
            }
            ul.items {
                @for (item, station) in ticket.items.iter().zip(&stations) {
                    li class={ "item item-" (item.status) } data-station=(station) data-index=(item.index)
                        data-dish-name=(item.dish_name) data-dish-id=[item.dish_id] {
                        div.item-text {
                            p.item-name { span.qty { (item.quantity) "×" } " " (item.dish_name) }
                            @if !item.options.is_empty() {
                                ul.item-options { @for option in &item.options { li { (option) } } }
                            }
                            @if let Some(note) = &item.note { p.item-note { (note) } }
                            p.item-meta { span.station-tag { (t.station(station)) } " · " span.item-state { (t.item_status(&item.status)) } }
                        }
                        @match item.status.as_str() {
                            "pending" => {
                                button.big-btn.btn-start type="button" data-post={ "/api/kitchen/tickets/" (id) "/items/" (item.index) "/start" }
                                    data-ticket=(id) aria-label={ (t.start) " : " (item.dish_name) } { (t.start) }
                            }
                            "in_preparation" => {
                                button.big-btn.btn-ready type="button" data-post={ "/api/kitchen/tickets/" (id) "/items/" (item.index) "/ready" }
                                    data-ticket=(id) aria-label={ (t.mark_ready) " : " (item.dish_name) } { (t.mark_ready) }
                            }
                            _ => { span.big-done { (t.item_ready) } }
                        }
                        @if let Some(dish_id) = item.dish_id {
                            button.btn.btn-quiet.btn-sold-out type="button" data-sold-out=(dish_id) data-dish-name=(item.dish_name)
                                aria-label={ (t.sold_out_button) " : " (item.dish_name) } { (t.sold_out_button) }
                        }
                        @if let Some(until) = undo_until(item, now) {
                            button.btn.btn-quiet.btn-undo type="button" data-post={ "/api/kitchen/tickets/" (id) "/items/" (item.index) "/undo" }
                                data-ticket=(id) data-undo=(item.dish_name) data-undo-until=(until.to_rfc3339())
                                aria-label=(fill(t.undo_step, &[("name", &item.dish_name)])) title=(fill(t.undo_step, &[("name", &item.dish_name)])) {
                                "↶ " (t.undo)
                            }
                        }
                    }
                }
            }
            footer.ticket-foot {
                @if !all_ready {
                    button.btn.btn-secondary type="button" data-post={ "/api/kitchen/tickets/" (id) "/bump" } data-ticket=(id) { (t.bump) }
                }
                @if !any_ready {
                    button.btn.btn-quiet type="button" data-reject=(id) { (t.reject) }
                }
            }
        }
    }
}

/// Until when an item's last step may be undone, when that is still in the future: a chef's
/// mis-tap is taken back with one more tap, within the kitchen's window.
fn undo_until(item: &crate::models::TicketItem, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let until = item.last_step_at()? + chrono::Duration::seconds(UNDO_WINDOW_SECS);
    (until > now).then_some(until)
}
