//! What the pages read from the services, as API.md describes it. Only the fields the pages
//! show, each with a default, so a service that adds fields (or a page that outlives a
//! contract change by a few minutes during a deploy) still renders.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Money as the API shows it: minor units and an ISO 4217 code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount: i64,
    #[serde(default = "euro")]
    pub currency: String,
}

fn euro() -> String {
    "EUR".to_owned()
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Menu {
    #[serde(default)]
    pub categories: Vec<MenuCategory>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct MenuCategory {
    pub name: String,
    #[serde(default)]
    pub dishes: Vec<Dish>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dish {
    pub id: Uuid,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub category: String,
    pub price: Money,
    #[serde(default)]
    pub allergens: Vec<String>,
    #[serde(default = "yes")]
    pub available: bool,
    #[serde(default)]
    pub unavailable_reason: Option<String>,
    #[serde(default = "main_station")]
    pub station: String,
    #[serde(default = "ten")]
    pub prep_minutes: u32,
    /// Option groups the customer picks from (cooking, supplements…).
    #[serde(default)]
    pub options: Vec<OptionGroup>,
}

/// An option group of a dish ("Cuisson": pick 1 of 4).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionGroup {
    pub id: Uuid,
    pub name: String,
    #[serde(default)]
    pub min_choices: u32,
    #[serde(default = "one")]
    pub max_choices: u32,
    #[serde(default)]
    pub choices: Vec<OptionChoice>,
}

/// One choice of an option group, with what it adds to the price.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionChoice {
    pub id: Uuid,
    pub name: String,
    #[serde(default)]
    pub price_delta: Money,
}

/// An option picked on an order line, as the order keeps it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineOption {
    pub group_id: Uuid,
    pub group: String,
    pub choice_id: Uuid,
    pub choice: String,
    #[serde(default)]
    pub price_delta: Money,
}

fn yes() -> bool {
    true
}

fn main_station() -> String {
    "main".to_owned()
}

fn ten() -> u32 {
    10
}

impl Menu {
    /// Every dish, across categories.
    pub fn dishes(&self) -> impl Iterator<Item = &Dish> {
        self.categories.iter().flat_map(|c| c.dishes.iter())
    }

    #[must_use]
    pub fn dish(&self, id: Uuid) -> Option<&Dish> {
        self.dishes().find(|d| d.id == id)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    #[serde(default)]
    pub street: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub postal_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
}

impl Address {
    /// `12 rue de la Paix, 75002 Paris`.
    #[must_use]
    pub fn one_line(&self) -> String {
        format!("{}, {} {}", self.street, self.postal_code, self.city)
    }

    /// A link that opens the address in a map, on any phone or computer: the coordinates when
    /// known, else the address searched.
    #[must_use]
    pub fn map_link(&self) -> String {
        match (self.lat, self.lon) {
            (Some(lat), Some(lon)) => map_link(lat, lon),
            _ => format!(
                "https://www.openstreetmap.org/search?query={}",
                url_encode(&self.one_line())
            ),
        }
    }
}

/// An OpenStreetMap link centred on a point.
#[must_use]
pub fn map_link(lat: f64, lon: f64) -> String {
    format!("https://www.openstreetmap.org/?mlat={lat:.5}&mlon={lon:.5}#map=17/{lat:.5}/{lon:.5}")
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub id: Uuid,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub addresses: Vec<Address>,
    /// Declared allergens (`peanuts`, `milk`…).
    #[serde(default)]
    pub allergens: Vec<String>,
    /// Declared diets (`vegetarian`…).
    #[serde(default)]
    pub diets: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: Uuid,
    #[serde(default)]
    pub customer_id: Option<Uuid>,
    pub status: String,
    #[serde(default)]
    pub items: Vec<OrderLine>,
    #[serde(default)]
    pub total: Money,
    #[serde(default)]
    pub delivery_address: Option<Address>,
    #[serde(default)]
    pub contact_phone: Option<String>,
    pub placed_at: DateTime<Utc>,
    #[serde(default)]
    pub history: Vec<StatusEntry>,
    #[serde(default)]
    pub reason: Option<String>,
    /// When a scheduled order is to be ready; absent: as soon as possible.
    #[serde(default)]
    pub scheduled_for: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub dish_id: Uuid,
    pub name: String,
    #[serde(default)]
    pub unit_price: Money,
    pub quantity: u32,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub options: Vec<LineOption>,
    #[serde(default)]
    pub line_total: Money,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatusEntry {
    pub status: String,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub reason: Option<String>,
}

impl Order {
    /// The order's customer may still cancel it (API.md: until cooking starts).
    #[must_use]
    pub fn customer_may_cancel(&self) -> bool {
        matches!(self.status.as_str(), "placed" | "accepted")
    }

    /// Delivered, cancelled or rejected.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "delivered" | "cancelled" | "rejected")
    }

    /// When the order reached `status`, if it did.
    #[must_use]
    pub fn reached(&self, status: &str) -> Option<DateTime<Utc>> {
        self.history
            .iter()
            .find(|h| h.status == status)
            .map(|h| h.at)
    }

    /// How many dishes, all lines together.
    #[must_use]
    pub fn dish_count(&self) -> usize {
        self.items.iter().map(|l| l.quantity as usize).sum()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    #[serde(default)]
    pub items: Vec<Order>,
    #[serde(default = "first")]
    pub page: u32,
    #[serde(default = "twenty")]
    pub page_size: u32,
    #[serde(default)]
    pub total: i64,
}

fn first() -> u32 {
    1
}

fn twenty() -> u32 {
    20
}

/// The manager's board of the day.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Board {
    #[serde(default)]
    pub total: u32,
    #[serde(default)]
    pub columns: Vec<BoardColumn>,
    #[serde(default)]
    pub average_placed_to_ready_secs: Option<f64>,
    #[serde(default)]
    pub average_ready_to_delivered_secs: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct BoardColumn {
    pub status: String,
    #[serde(default)]
    pub count: u32,
    #[serde(default)]
    pub orders: Vec<BoardCard>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoardCard {
    pub order_id: Uuid,
    pub placed_at: DateTime<Utc>,
    #[serde(default)]
    pub total: Money,
    #[serde(default)]
    pub dishes: u32,
}

/// A kitchen ticket.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    pub order_id: Uuid,
    pub placed_at: DateTime<Utc>,
    #[serde(default = "open")]
    pub status: String,
    #[serde(default)]
    pub items: Vec<TicketItem>,
    /// The customer's declared allergens: the card's allergy banner.
    #[serde(default)]
    pub allergies: Vec<String>,
    /// When a scheduled order is to be ready.
    #[serde(default)]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The kitchen's preparation target (its longest dish), in minutes.
    #[serde(default)]
    pub target_minutes: Option<u32>,
}

impl Ticket {
    /// Where the ticket takes its place in the queue, as the kitchen orders it: when it was
    /// placed, or for a scheduled order when it should start (its time less its target).
    #[must_use]
    pub fn queue_at(&self) -> DateTime<Utc> {
        self.scheduled_for.map_or(self.placed_at, |at| {
            at - chrono::Duration::minutes(i64::from(self.target_minutes.unwrap_or(15)))
        })
    }
}

fn open() -> String {
    "open".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketItem {
    pub index: u32,
    #[serde(default)]
    pub dish_id: Option<Uuid>,
    pub dish_name: String,
    #[serde(default = "one")]
    pub quantity: u32,
    #[serde(default)]
    pub note: Option<String>,
    /// The options the customer picked ("Cuisson: saignant").
    #[serde(default)]
    pub options: Vec<String>,
    pub status: String,
    /// When it went *en préparation* (the kitchen's `startedAt`).
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it became ready (the kitchen's `readyAt`).
    #[serde(default)]
    pub ready_at: Option<DateTime<Utc>>,
}

impl TicketItem {
    /// When its last step (start or ready) was taken: what the undo window counts from.
    #[must_use]
    pub fn last_step_at(&self) -> Option<DateTime<Utc>> {
        match self.status.as_str() {
            "ready" => self.ready_at.or(self.started_at),
            "in_preparation" => self.started_at,
            _ => None,
        }
    }
}

fn one() -> u32 {
    1
}

/// A delivery, as its customer, courier and manager see it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub order_id: Uuid,
    pub status: String,
    #[serde(default)]
    pub address: Address,
    #[serde(default)]
    pub contact_phone: Option<String>,
    #[serde(default)]
    pub courier: Option<CourierSummary>,
    #[serde(default)]
    pub courier_position: Option<Position>,
    #[serde(default)]
    pub eta: Option<DateTime<Utc>>,
    #[serde(default)]
    pub requested_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ready_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub picked_up_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub failure_reason: Option<String>,
}

impl Delivery {
    /// Assigned to a courier and not finished: the courier's current job.
    #[must_use]
    pub fn is_current(&self) -> bool {
        matches!(self.status.as_str(), "assigned" | "picked_up")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CourierSummary {
    pub id: Uuid,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub vehicle: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
    pub at: DateTime<Utc>,
}

/// A courier of the fleet.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Courier {
    pub id: Uuid,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub vehicle: String,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub on_shift: bool,
    #[serde(default)]
    pub position: Option<Position>,
}

/// The short form of an order id people read aloud: its first eight hex digits, upper case.
#[must_use]
pub fn short_id(id: Uuid) -> String {
    id.simple().to_string()[..8].to_ascii_uppercase()
}

/// A notification (an order's or a delivery's status change), as its recipient sees it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    #[serde(default)]
    pub order_id: Option<Uuid>,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// A message a service could not apply, parked for a manager (`GET /dead-letters`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub id: i64,
    pub consumer: String,
    pub subject: String,
    #[serde(default)]
    pub message_id: Option<String>,
    pub error: String,
    #[serde(default)]
    pub attempts: i64,
    pub parked_at: DateTime<Utc>,
    /// Its consumer runs in that service: a replay can be tried.
    #[serde(default)]
    pub replayable: bool,
}

/// A page of dead letters.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetter>,
    #[serde(default)]
    pub total: i64,
}

/// A webhook a manager registered for the notifications.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    #[serde(default)]
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// One post (or attempts at it) of a notification to a webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    /// `pending`, `delivered` or `parked`.
    pub status: String,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// The quoted ready time of an order placed now (`GET /menu/ready-time`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyTime {
    /// When it would be ready: the earliest, or the next slot with room when the kitchen is
    /// full; absent when no slot has room within a day.
    #[serde(default)]
    pub ready_at: Option<DateTime<Utc>>,
    pub earliest_at: DateTime<Utc>,
    /// Whether the slot of the earliest time is full.
    pub full: bool,
}
