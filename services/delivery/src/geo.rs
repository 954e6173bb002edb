//! Distances and arrival times: the few lines of geometry dispatch and live tracking share.
//!
//! Distances are great-circle (haversine) distances, stretched by [`ROAD_FACTOR`] because
//! streets are not straight lines; speeds are typical city speeds per vehicle. Good enough to
//! rank couriers and tell a customer "about 12 minutes"; not a routing engine.

use brigade_projections::couriers::{Position, VehicleKind};
use brigade_projections::live_deliveries::{DeliveryState, LiveDelivery};
use chrono::{DateTime, Utc};

/// How much longer a trip through streets is than the straight line, on average in a city.
pub const ROAD_FACTOR: f64 = 1.3;
const EARTH_RADIUS_KM: f64 = 6371.0;

/// A point on Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

impl From<Position> for GeoPoint {
    fn from(position: Position) -> Self {
        Self {
            lat: position.lat,
            lon: position.lon,
        }
    }
}

/// Whether a latitude/longitude pair is on Earth: lat in [-90, 90], lon in [-180, 180].
/// `Err` names the field at fault.
pub fn check_coordinates(lat: f64, lon: f64) -> Result<(), &'static str> {
    if !(-90.0..=90.0).contains(&lat) {
        return Err("lat");
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err("lon");
    }
    Ok(())
}

/// Straight-line distance in kilometres.
#[must_use]
pub fn distance_km(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// Typical city speed, km/h.
#[must_use]
pub fn speed_kmh(vehicle: VehicleKind) -> f64 {
    match vehicle {
        VehicleKind::Bike => 15.0,
        VehicleKind::Scooter => 25.0,
        VehicleKind::Car => 20.0,
    }
}

/// How long a trip along `points` takes by `vehicle`.
#[must_use]
pub fn travel_time(points: &[GeoPoint], vehicle: VehicleKind) -> chrono::Duration {
    let km: f64 = points
        .windows(2)
        .map(|leg| distance_km(leg[0], leg[1]))
        .sum::<f64>()
        * ROAD_FACTOR;
    let seconds = km / speed_kmh(vehicle) * 3600.0;
    // Bounded so that absurd coordinates cannot overflow a timestamp.
    chrono::Duration::seconds(seconds.clamp(0.0, 86_400.0) as i64)
}

/// When the courier should reach the customer's door: from their last position, through the
/// restaurant first if they have not picked the food up yet. `None` unless the delivery is on
/// its way (assigned or picked up), the courier's position is known and the address has
/// coordinates.
#[must_use]
pub fn eta(
    delivery: &LiveDelivery,
    restaurant: GeoPoint,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let courier = delivery.courier.as_ref()?;
    let position: GeoPoint = delivery.courier_position?.into();
    let door = GeoPoint {
        lat: delivery.address.lat?,
        lon: delivery.address.lon?,
    };
    let route = match delivery.status {
        DeliveryState::Assigned => vec![position, restaurant, door],
        DeliveryState::PickedUp => vec![position, door],
        _ => return None,
    };
    Some(now + travel_time(&route, courier.vehicle))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARIS: GeoPoint = GeoPoint {
        lat: 48.8566,
        lon: 2.3522,
    };
    const LYON: GeoPoint = GeoPoint {
        lat: 45.7640,
        lon: 4.8357,
    };

    #[test]
    fn paris_to_lyon_is_about_392_km() {
        let km = distance_km(PARIS, LYON);
        assert!((km - 392.0).abs() < 3.0, "{km}");
        assert!(distance_km(PARIS, PARIS).abs() < 1e-9);
    }

    #[test]
    fn coordinates_must_lie_on_earth() {
        assert_eq!(check_coordinates(48.0, 2.0), Ok(()));
        assert_eq!(check_coordinates(90.0, -180.0), Ok(()));
        assert_eq!(check_coordinates(90.5, 0.0), Err("lat"));
        assert_eq!(check_coordinates(0.0, 180.1), Err("lon"));
    }

    #[test]
    fn a_bike_rides_3_km_of_streets_in_about_15_minutes() {
        // 2.3 km straight ≈ 3 km of streets at 15 km/h ≈ 12 minutes.
        let a = PARIS;
        let b = GeoPoint {
            lat: PARIS.lat + 2.3 / 111.2,
            lon: PARIS.lon,
        };
        let minutes = travel_time(&[a, b], VehicleKind::Bike).num_minutes();
        assert!((11..=13).contains(&minutes), "{minutes}");
        assert!(
            travel_time(&[a, b], VehicleKind::Scooter) < travel_time(&[a, b], VehicleKind::Bike)
        );
    }
}
