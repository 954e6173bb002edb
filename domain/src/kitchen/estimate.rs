//! When will each ticket be ready? A small model of the kitchen's live load, pure so that it
//! can be tested to the second (the caller passes `now`).
//!
//! Each station (grill, cold, pastry…) cooks a few lines at once: it has
//! [`KitchenModel::lanes_per_station`] lanes. Lines are put on the lane that frees first:
//! those already in preparation first (they are on the fire), then the pending ones, oldest
//! order first, which is how a brigade works through its tickets. A line takes its dish's
//! preparation minutes, scaled by the kitchen's recent *pace* (how long lines have actually
//! taken compared with their dish's minutes); a line is cooked as one batch whatever its
//! quantity. A line in preparation has what is left of its time, never less than
//! [`MIN_REMAINING_SECS`] (it is late, but not done). A ticket is ready when its last line is.
//!
//! A scheduled ticket is no load before its time: each of its pending lines starts no earlier
//! than its `scheduled_for` minus the line's time, and while the ticket's earliest start (for
//! its longest pending line) is still ahead, its lines are taken after every other pending
//! line, the earliest start first.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::ItemStatus;

/// A line in preparation past its time is still assumed to need this long.
pub const MIN_REMAINING_SECS: i64 = 60;
/// Fewer finished lines than this, and the pace is assumed to be 1 (dishes take their minutes).
pub const MIN_PACE_SAMPLES: usize = 3;
/// The pace never goes beyond these bounds: one odd evening must not make quotes absurd.
pub const PACE_BOUNDS: (f64, f64) = (0.5, 3.0);

/// One line of an open ticket, as the model sees it. It borrows its station's name from the
/// ticket it was read from: a pass of the estimator views thousands of lines, and copying each
/// name was a third of its time on a long queue (BENCHMARKS.md).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadItem<'a> {
    pub station: &'a str,
    pub prep_minutes: u32,
    pub status: ItemStatus,
    pub started_at: Option<DateTime<Utc>>,
}

/// One open ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadTicket<'a> {
    pub order_id: Uuid,
    pub placed_at: DateTime<Utc>,
    pub items: Vec<LoadItem<'a>>,
    /// When a scheduled order is to be ready; `None`: as soon as possible.
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// A line finished recently: how long it took from start to ready, against its dish's minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepSample {
    pub actual_secs: i64,
    pub prep_minutes: u32,
}

/// The kitchen's capacity and pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KitchenModel {
    /// How many lines one station cooks at the same time.
    pub lanes_per_station: u32,
    /// Actual time over the dishes' minutes, from [`pace`]: 1.2 means 20 % slower.
    pub pace: f64,
}

impl KitchenModel {
    pub const DEFAULT_LANES_PER_STATION: u32 = 2;
}

impl Default for KitchenModel {
    fn default() -> Self {
        Self {
            lanes_per_station: Self::DEFAULT_LANES_PER_STATION,
            pace: 1.0,
        }
    }
}

/// The kitchen's recent pace: the median of actual over expected time of the finished lines,
/// within [`PACE_BOUNDS`]; 1 with fewer than [`MIN_PACE_SAMPLES`] lines. The median, because
/// one line forgotten on the pass for half an hour must not slow every quote down.
#[must_use]
pub fn pace(samples: &[PrepSample]) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let mut ratios: Vec<f64> = samples
        .iter()
        .filter(|s| s.prep_minutes > 0 && s.actual_secs >= 0)
        .map(|s| s.actual_secs as f64 / (f64::from(s.prep_minutes) * 60.0))
        .collect();
    if ratios.len() < MIN_PACE_SAMPLES {
        return 1.0;
    }
    ratios.sort_by(f64::total_cmp);
    let middle = ratios.len() / 2;
    let median = if ratios.len().is_multiple_of(2) {
        (ratios[middle - 1] + ratios[middle]) / 2.0
    } else {
        ratios[middle]
    };
    median.clamp(PACE_BOUNDS.0, PACE_BOUNDS.1)
}

/// When each ticket should be ready, in the order given. `tickets` should be sorted oldest
/// order first (the queue's order): that is the order pending lines are taken in.
#[must_use]
pub fn ready_times(
    tickets: &[LoadTicket<'_>],
    model: &KitchenModel,
    now: DateTime<Utc>,
) -> Vec<(Uuid, DateTime<Utc>)> {
    let lanes = usize::try_from(model.lanes_per_station.max(1)).unwrap_or(1);
    let mut stations: BTreeMap<&str, Vec<DateTime<Utc>>> = BTreeMap::new();
    let mut finish: Vec<DateTime<Utc>> = vec![now; tickets.len()];
    let duration = |minutes: u32| -> i64 {
        #[allow(clippy::cast_possible_truncation)]
        let secs = (f64::from(minutes) * 60.0 * model.pace).round() as i64;
        secs
    };
    // When a scheduled ticket's longest pending line must start: until then it waits.
    let earliest_start = |ticket: &LoadTicket<'_>| -> Option<DateTime<Utc>> {
        let longest = ticket
            .items
            .iter()
            .filter(|item| item.status == ItemStatus::Pending)
            .map(|item| duration(item.prep_minutes))
            .max()?;
        Some(ticket.scheduled_for? - Duration::seconds(longest))
    };
    let mut pending_order: Vec<usize> = (0..tickets.len()).collect();
    // Stable: the tickets due keep their order, and go before those whose time is ahead.
    pending_order.sort_by_cached_key(|&n| earliest_start(&tickets[n]).filter(|start| *start > now));
    let in_preparation: Vec<usize> = (0..tickets.len()).collect();
    for (wanted, order) in [
        (ItemStatus::InPreparation, in_preparation),
        (ItemStatus::Pending, pending_order),
    ] {
        for n in order {
            let ticket = &tickets[n];
            for item in ticket.items.iter().filter(|item| item.status == wanted) {
                let mut needed = duration(item.prep_minutes);
                let mut not_before = None;
                if wanted == ItemStatus::InPreparation {
                    if let Some(started) = item.started_at {
                        needed = (needed - (now - started).num_seconds()).max(MIN_REMAINING_SECS);
                    }
                } else {
                    not_before = ticket
                        .scheduled_for
                        .map(|when| when - Duration::seconds(needed));
                }
                let station = stations
                    .entry(item.station)
                    .or_insert_with(|| vec![now; lanes]);
                // The lane that frees first takes the line.
                let Some(lane) = station.iter_mut().min() else {
                    continue;
                };
                *lane = (*lane).max(not_before.unwrap_or(*lane)) + Duration::seconds(needed);
                finish[n] = finish[n].max(*lane);
            }
        }
    }
    tickets
        .iter()
        .zip(finish)
        .map(|(ticket, ready_at)| (ticket.order_id, ready_at))
        .collect()
}

/// When a new order of one line of `prep_minutes` at `station`, placed now, would be ready:
/// the quote for an order not placed yet.
#[must_use]
pub fn quote(
    tickets: &[LoadTicket<'_>],
    model: &KitchenModel,
    now: DateTime<Utc>,
    station: &str,
    prep_minutes: u32,
) -> DateTime<Utc> {
    let mut all = tickets.to_vec();
    all.push(LoadTicket {
        order_id: Uuid::nil(),
        placed_at: now,
        scheduled_for: None,
        items: vec![LoadItem {
            station,
            prep_minutes,
            status: ItemStatus::Pending,
            started_at: None,
        }],
    });
    ready_times(&all, model, now)
        .last()
        .map_or(now, |(_, ready_at)| *ready_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::at;

    fn item(station: &str, prep_minutes: u32) -> LoadItem<'_> {
        LoadItem {
            station,
            prep_minutes,
            status: ItemStatus::Pending,
            started_at: None,
        }
    }

    fn ticket(n: u128, items: Vec<LoadItem<'_>>) -> LoadTicket<'_> {
        LoadTicket {
            order_id: Uuid::from_u128(n),
            placed_at: at(0),
            items,
            scheduled_for: None,
        }
    }

    fn minutes_after_noon(times: &[(Uuid, DateTime<Utc>)]) -> Vec<i64> {
        times
            .iter()
            .map(|(_, t)| (*t - at(0)).num_minutes())
            .collect()
    }

    const ONE_LANE: KitchenModel = KitchenModel {
        lanes_per_station: 1,
        pace: 1.0,
    };

    #[test]
    fn an_idle_kitchen_is_ready_after_the_longest_dish() {
        let tickets = [ticket(1, vec![item("grill", 12), item("cold", 5)])];
        let times = ready_times(&tickets, &KitchenModel::default(), at(0));
        assert_eq!(minutes_after_noon(&times), [12]);
    }

    #[test]
    fn lines_of_one_station_wait_for_a_free_lane_oldest_order_first() {
        let tickets = [
            ticket(1, vec![item("grill", 10)]),
            ticket(2, vec![item("grill", 10)]),
            ticket(3, vec![item("cold", 4)]),
        ];
        assert_eq!(
            minutes_after_noon(&ready_times(&tickets, &ONE_LANE, at(0))),
            [10, 20, 4]
        );
        let two_lanes = KitchenModel {
            lanes_per_station: 2,
            pace: 1.0,
        };
        assert_eq!(
            minutes_after_noon(&ready_times(&tickets, &two_lanes, at(0))),
            [10, 10, 4]
        );
    }

    #[test]
    fn a_line_in_preparation_has_only_its_remaining_time_and_goes_first() {
        let mut cooking = item("grill", 10);
        cooking.status = ItemStatus::InPreparation;
        cooking.started_at = Some(at(0));
        let tickets = [
            ticket(1, vec![item("grill", 10)]),
            ticket(2, vec![cooking.clone()]),
        ];
        // At 12:06 the started line needs 4 more minutes; the older pending one follows it.
        assert_eq!(
            minutes_after_noon(&ready_times(&tickets, &ONE_LANE, at(6))),
            [20, 10]
        );
        // Overdue: still a minute to go.
        let times = ready_times(&[ticket(2, vec![cooking])], &ONE_LANE, at(30));
        assert_eq!(minutes_after_noon(&times), [31]);
    }

    #[test]
    fn ready_lines_take_no_time_and_a_slow_pace_stretches_the_rest() {
        let mut done = item("grill", 10);
        done.status = ItemStatus::Ready;
        let tickets = [ticket(1, vec![done, item("cold", 10)])];
        let slow = KitchenModel {
            lanes_per_station: 2,
            pace: 1.5,
        };
        assert_eq!(
            minutes_after_noon(&ready_times(&tickets, &slow, at(0))),
            [15]
        );
    }

    fn scheduled(n: u128, items: Vec<LoadItem<'_>>, minutes: u32) -> LoadTicket<'_> {
        LoadTicket {
            scheduled_for: Some(at(minutes)),
            ..ticket(n, items)
        }
    }

    #[test]
    fn a_scheduled_ticket_is_no_load_before_its_time() {
        // Scheduled for 12:50: neither the order behind it nor a new order waits for it.
        let tickets = [
            scheduled(1, vec![item("grill", 10), item("cold", 5)], 50),
            ticket(2, vec![item("grill", 10)]),
        ];
        assert_eq!(
            minutes_after_noon(&ready_times(&tickets, &ONE_LANE, at(0))),
            [50, 10]
        );
        assert_eq!(
            (quote(&tickets, &ONE_LANE, at(0), "grill", 10) - at(0)).num_minutes(),
            20
        );
        // A slow pace makes it start earlier, never later than its time.
        let slow = KitchenModel {
            lanes_per_station: 1,
            pace: 2.0,
        };
        assert_eq!(
            minutes_after_noon(&ready_times(&tickets[..1], &slow, at(0))),
            [50]
        );
    }

    #[test]
    fn a_scheduled_ticket_whose_time_has_come_keeps_its_place_in_the_queue() {
        // Scheduled for 12:15, its 10 minutes start at 12:05: at 12:06 it is due and first.
        let tickets = [
            scheduled(1, vec![item("grill", 10)], 15),
            ticket(2, vec![item("grill", 10)]),
        ];
        assert_eq!(
            minutes_after_noon(&ready_times(&tickets, &ONE_LANE, at(6))),
            [16, 26]
        );
        // Behind a busy lane it is late, as it would really be.
        let tickets = [
            ticket(2, vec![item("grill", 30)]),
            scheduled(1, vec![item("grill", 10)], 15),
        ];
        assert_eq!(
            minutes_after_noon(&ready_times(&tickets, &ONE_LANE, at(6))),
            [36, 46]
        );
    }

    #[test]
    fn the_pace_is_the_bounded_median_of_recent_lines() {
        let sample = |actual_minutes: i64| PrepSample {
            actual_secs: actual_minutes * 60,
            prep_minutes: 10,
        };
        assert!((pace(&[]) - 1.0).abs() < f64::EPSILON);
        assert!((pace(&[sample(20), sample(20)]) - 1.0).abs() < f64::EPSILON);
        assert!((pace(&[sample(12), sample(100), sample(11)]) - 1.2).abs() < 1e-9);
        assert!((pace(&[sample(10), sample(20), sample(10), sample(20)]) - 1.5).abs() < 1e-9);
        assert!((pace(&[sample(1), sample(1), sample(1)]) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_quote_for_a_new_order_queues_behind_the_open_tickets() {
        let tickets = [ticket(1, vec![item("main", 15)])];
        assert_eq!(
            (quote(&tickets, &ONE_LANE, at(0), "main", 15) - at(0)).num_minutes(),
            30
        );
        assert_eq!(
            (quote(&tickets, &ONE_LANE, at(0), "grill", 8) - at(0)).num_minutes(),
            8
        );
        assert_eq!(
            (quote(&[], &ONE_LANE, at(0), "main", 15) - at(0)).num_minutes(),
            15
        );
    }
}
