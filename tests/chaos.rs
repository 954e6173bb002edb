//! Placeholder (being written).
#![allow(clippy::unwrap_used)]
mod support;
