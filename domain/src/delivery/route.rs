//! The route a courier took with an order's food: points sampled from their live positions.
//!
//! Positions arrive several times a minute and are kept out of the event store (only each
//! courier's last one is stored). What the delivery keeps for good is a *sample* of them: a
//! point at most every [`RoutePoint::SAMPLE_EVERY_SECS`], or sooner when the courier has moved
//! [`RoutePoint::SAMPLE_EVERY_METRES`] — enough to draw the route and settle a dispute, far
//! fewer than the pings. The delivery service decides when a ping is a sample
//! ([`RoutePoint::is_due_after`]) and records them in batches (`DeliveryRouteRecorded`), at the
//! latest when the food is handed over or the delivery fails.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One sampled position of the courier carrying the food.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutePoint {
    pub lat: f64,
    pub lon: f64,
    pub at: DateTime<Utc>,
}

impl RoutePoint {
    /// A new sample at least this long after the last one...
    pub const SAMPLE_EVERY_SECS: i64 = 30;
    /// ...or as soon as the courier is this far from it.
    pub const SAMPLE_EVERY_METRES: f64 = 100.0;

    /// Whether `self`, a new position, should be sampled after `last`, the last sample.
    #[must_use]
    pub fn is_due_after(&self, last: &RoutePoint) -> bool {
        self.at > last.at
            && ((self.at - last.at).num_seconds() >= Self::SAMPLE_EVERY_SECS
                || self.metres_from(last) >= Self::SAMPLE_EVERY_METRES)
    }

    /// Great-circle distance (haversine), in metres.
    #[must_use]
    pub fn metres_from(&self, other: &RoutePoint) -> f64 {
        const EARTH_RADIUS_M: f64 = 6_371_000.0;
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let d_lat = lat2 - lat1;
        let d_lon = (other.lon - self.lon).to_radians();
        let h = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * h.sqrt().asin()
    }

    /// Coordinates on the globe (a corrupt point is dropped, never recorded).
    #[must_use]
    pub fn is_valid(&self) -> bool {
        (-90.0..=90.0).contains(&self.lat) && (-180.0..=180.0).contains(&self.lon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::at;

    fn point(metres_north: f64, at: DateTime<Utc>) -> RoutePoint {
        RoutePoint {
            lat: 48.8566 + metres_north / 111_195.0,
            lon: 2.3522,
            at,
        }
    }

    #[test]
    fn a_position_is_sampled_after_thirty_seconds_or_a_hundred_metres() {
        let last = point(0.0, at(0));
        let ten_seconds = at(0) + chrono::Duration::seconds(10);
        let thirty_seconds = at(0) + chrono::Duration::seconds(30);
        assert!(!point(20.0, ten_seconds).is_due_after(&last));
        assert!(point(120.0, ten_seconds).is_due_after(&last));
        assert!(point(0.0, thirty_seconds).is_due_after(&last));
        // An older position arriving late is never a sample.
        assert!(!point(500.0, at(0)).is_due_after(&point(0.0, thirty_seconds)));
    }

    #[test]
    fn distances_are_in_metres() {
        let metres = point(1000.0, at(0)).metres_from(&point(0.0, at(0)));
        assert!((metres - 1000.0).abs() < 1.0, "{metres}");
    }
}
