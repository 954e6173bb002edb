//! The courier's app, made for a phone in one hand: start and end the shift, see the current
//! delivery with its address, a map link and the customer's phone, and one big button per step
//! (picked up, delivered, could not deliver). While a delivery is under way the page shares
//! the phone's position (browser geolocation), which the customer's order page shows.
//!
//! There is no courier-wide live stream in the API: the page re-reads its live part every few
//! seconds, and follows the current delivery's own stream.

use std::sync::Arc;

use brigade_domain::Role;
use brigade_platform::ServiceName;
use maud::{html, Markup};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{handler, Response};

use super::{fragment, page_with, status_only, token, unavailable, Extras, Nav};
use crate::i18n::fill;
use crate::models::{short_id, Courier, Delivery};
use crate::upstream::FetchError;
use crate::visitor::Visitor;
use crate::Gateway;

/// `GET /courier`.
#[handler]
pub async fn app_page(gateway: Data<&Arc<Gateway>>, visitor: Data<&Visitor>) -> Response {
    if let Err(response) = super::require(&visitor, &[Role::Courier]) {
        return response;
    }
    let t = visitor.t;
    let live = match live_markup(&gateway, &visitor).await {
        Ok(markup) => markup,
        Err(response) => return response,
    };
    let body = html! {
        div.courier-app {
            h1.visually-hidden { (t.courier_title) }
            div #courier-live data-fragment="/courier/live" { (live) }
            p.geo-state data-geo-state role="status" hidden {}
        }
        dialog #fail-dialog aria-labelledby="fail-title" {
            form method="dialog" .form-stack {
                h2 #fail-title { (t.fail_reason) }
                @for (i, reason) in [t.fail_absent, t.fail_address, t.fail_refused].into_iter().enumerate() {
                    label.radio-card {
                        input type="radio" name="reason" value=(reason) checked[i == 0];
                        span { (reason) }
                    }
                }
                div.dialog-actions {
                    button.btn value="cancel" formnovalidate { (t.dismiss) }
                    button.btn.btn-danger value="ok" { (t.could_not_deliver) }
                }
            }
        }
    };
    let extras = Extras {
        scripts: &["courier.js"],
        ..Extras::default()
    };
    page_with(
        &visitor,
        StatusCode::OK,
        t.courier_title,
        Nav::Courier,
        body,
        extras,
    )
}

/// `GET /courier/live`: the shift and the current delivery.
#[handler]
pub async fn live_part(gateway: Data<&Arc<Gateway>>, visitor: Data<&Visitor>) -> Response {
    if visitor.role() != Some(Role::Courier) {
        return status_only(StatusCode::UNAUTHORIZED);
    }
    match live_markup(&gateway, &visitor).await {
        Ok(markup) => fragment(markup),
        Err(response) => status_only(response.status()),
    }
}

async fn live_markup(gateway: &Gateway, visitor: &Visitor) -> Result<Markup, Response> {
    let t = visitor.t;
    let token = token(gateway, visitor).await?;
    let token = token.as_deref();
    let (me, deliveries) = tokio::join!(
        gateway
            .upstream
            .get_json::<Courier>(ServiceName::Delivery, "/couriers/me", token),
        gateway
            .upstream
            .get_json::<Vec<Delivery>>(ServiceName::Delivery, "/deliveries", token),
    );
    let me = match me {
        Ok(me) => me,
        Err(error) if error.is_unavailable() => {
            return Ok(unavailable(visitor, ServiceName::Delivery))
        }
        Err(FetchError::Status { status: 404, .. }) => {
            return Ok(html! { div.notice.notice-info { (t.not_a_courier) } })
        }
        Err(error) => return Err(super::failed(visitor, &error, ServiceName::Delivery)),
    };
    let current = deliveries
        .as_ref()
        .ok()
        .and_then(|list| list.iter().find(|d| d.is_current()).cloned());
    Ok(html! {
        div.courier-state data-on-shift=(me.on_shift)
            data-current=[current.as_ref().map(|d| d.order_id.to_string())]
            data-current-status=[current.as_ref().map(|d| d.status.clone())] {
            section class={ "shift-card " (if me.on_shift { "shift-on" } else { "shift-off" }) } {
                p.shift-state {
                    span.dot aria-hidden="true" {}
                    strong { (me.name) } " · " (if me.on_shift { t.on_shift } else { t.off_shift })
                }
                @if me.on_shift {
                    // Not while carrying food: the delivery is finished (or failed) first.
                    @if current.is_none() {
                        button.btn.btn-secondary type="button" data-shift="false" { (t.end_shift) }
                    }
                } @else {
                    button.big-btn.btn-start type="button" data-shift="true" { (t.start_shift) }
                }
            }
            @if deliveries.is_err() { (unavailable(visitor, ServiceName::Delivery)) }
            @match &current {
                Some(delivery) => (assignment(visitor, delivery)),
                None if me.on_shift => p.empty-state { (t.no_assignment) },
                None => p.empty-state { (t.off_shift_hint) },
            }
        }
    })
}

fn assignment(visitor: &Visitor, delivery: &Delivery) -> Markup {
    let t = visitor.t;
    let id = delivery.order_id;
    let address = &delivery.address;
    html! {
        article.assignment data-order-id=(id) data-status=(delivery.status) aria-labelledby="assignment-title" {
            header.assignment-head {
                h2 #assignment-title { (t.current_delivery) " · #" (short_id(id)) }
                span class={ "pill pill-" (delivery.status) } { (t.delivery_status(&delivery.status)) }
            }
            address.big-address {
                (address.street) br;
                (address.postal_code) " " (address.city)
            }
            div.assignment-links {
                a.btn href=(address.map_link()) target="_blank" rel="noopener noreferrer" { (t.open_directions) }
                @if let Some(phone) = &delivery.contact_phone {
                    a.btn href={ "tel:" (phone.replace(' ', "")) } { (t.call_customer) " · " (phone) }
                }
            }
            @match delivery.status.as_str() {
                // Sent ahead, on the kitchen's estimate: the food is not ready yet, and the
                // delivery service would refuse the pickup. The page redraws when it is.
                "assigned" if delivery.ready_at.is_none() => {
                    button.big-btn.btn-start type="button" disabled aria-disabled="true" { (t.food_not_ready) }
                }
                "assigned" => {
                    button.big-btn.btn-start type="button" data-post={ "/api/delivery/deliveries/" (id) "/pickup" } { (t.pick_up) }
                }
                _ => {
                    form.deliver-form data-deliver=(id) {
                        label for="received-by" { (t.received_by) " " span.muted { "(" (t.optional) ")" } }
                        input #received-by name="receivedBy" maxlength="100" placeholder=(t.received_by_placeholder);
                        button.big-btn.btn-ready type="submit" { (t.delivered) }
                    }
                    button.btn.btn-danger.btn-block type="button" data-fail=(id) { (t.could_not_deliver) }
                }
            }
            @if let Some(eta) = delivery.eta {
                p.muted { (super::time_sentence(visitor, t.eta, eta)) }
            }
            p.muted.sr-hint { (fill(t.order_title, &[("id", &short_id(id))])) }
        }
    }
}
