//! The samples the kitchen's pace is learnt from, read line by line in SQL
//! (`kitchen_queue::prep_samples`), are the lines the tickets show finished in the period:
//! started, made ready at or after its start, on a ticket placed in it.
#![allow(clippy::unwrap_used)]

mod support;

use brigade_domain::kitchen::estimate::PrepSample;
use brigade_domain::kitchen::{ItemStatus, NewTicketItem, TicketEvent};
use brigade_nats::EventHandler;
use brigade_projections::kitchen_queue;
use chrono::{DateTime, Duration, TimeZone, Utc};
use support::received;
use uuid::Uuid;

fn item(dish_id: Uuid) -> NewTicketItem {
    NewTicketItem {
        dish_id,
        dish_name: "Plat".into(),
        quantity: 1,
        note: None,
        options: Vec::new(),
    }
}

/// The samples as the estimator used to compute them, from the tickets themselves.
fn from_tickets(tickets: &[kitchen_queue::QueuedTicket], since: DateTime<Utc>) -> Vec<(i64, u32)> {
    let mut samples: Vec<(i64, u32)> = tickets
        .iter()
        .filter(|ticket| ticket.placed_at >= since)
        .flat_map(|ticket| &ticket.items)
        .filter_map(|item| {
            let (started, ready) = (item.started_at?, item.ready_at?);
            (ready >= since).then(|| ((ready - started).num_seconds(), item.prep_minutes))
        })
        .collect();
    samples.sort_unstable();
    samples
}

fn sorted(samples: Vec<PrepSample>) -> Vec<(i64, u32)> {
    let mut samples: Vec<(i64, u32)> = samples
        .into_iter()
        .map(|s| (s.actual_secs, s.prep_minutes))
        .collect();
    samples.sort_unstable();
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pace_is_learnt_from_the_lines_finished_in_the_period() {
    let (database, grill) = support::kitchen_queue_with_grill("pace").await;
    let pool = database.pool.clone();
    let t0 = Utc.with_ymd_and_hms(2025, 3, 1, 19, 0, 0).unwrap();
    let at = |seconds: i64| t0 + Duration::seconds(seconds);
    // Ticket n is placed at n minutes; its grill line takes 7 minutes and a half plus n
    // seconds, its unknown dish (15 minutes) is made ready without being started, then
    // ticket 3's grill line is taken back to in preparation (no longer finished).
    let ids: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    let mut events = Vec::new();
    for (n, order_id) in (0_i64..).zip(&ids) {
        let placed = n * 60;
        let started = placed + 30;
        let life = vec![
            TicketEvent::TicketOpened {
                order_id: *order_id,
                placed_at: at(placed),
                items: vec![item(grill), item(Uuid::new_v4())],
                at: at(placed),
                allergies: Vec::new(),
                scheduled_for: None,
            },
            TicketEvent::ItemStarted {
                index: 0,
                at: at(started),
            },
            TicketEvent::ItemReady {
                index: 0,
                at: at(started + 450 + n),
            },
            TicketEvent::ItemReady {
                index: 1,
                at: at(started + 60),
            },
        ];
        for (sequence, event) in (1..).zip(&life) {
            events.push(received(*order_id, sequence, event));
        }
    }
    events.push(received(
        ids[3],
        5,
        &TicketEvent::ItemStepUndone {
            index: 0,
            to: ItemStatus::InPreparation,
            at: at(900),
        },
    ));
    let mut tx = pool.begin().await.unwrap();
    for event in &events {
        kitchen_queue::KitchenQueue
            .handle(event, &mut tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let tickets = kitchen_queue::tickets(&pool, &ids, Utc::now())
        .await
        .unwrap();
    assert_eq!(tickets.len(), ids.len());

    // Everything; then a period that leaves out the first two tickets.
    let all = sorted(kitchen_queue::prep_samples(&pool, at(-60)).await.unwrap());
    assert_eq!(all, from_tickets(&tickets, at(-60)));
    assert_eq!(
        all,
        vec![(450, 22), (451, 22), (452, 22), (454, 22), (455, 22)]
    );
    let later = sorted(kitchen_queue::prep_samples(&pool, at(120)).await.unwrap());
    assert_eq!(later, from_tickets(&tickets, at(120)));
    assert_eq!(later, vec![(452, 22), (454, 22), (455, 22)]);
    database.drop_it().await;
}
