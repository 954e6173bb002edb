//! The orders service, black-box: the real service on a free port, its own database and NATS
//! namespace, HTTP from the outside, and the kitchen's and delivery's events arriving on the bus.
#![allow(clippy::unwrap_used)]

mod allergies;
mod cancellation;
mod capacity;
mod helpers;
mod menu;
mod options;
mod ordering;
mod sold_out;
mod tracking;
