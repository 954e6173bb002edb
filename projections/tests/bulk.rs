//! The kitchen queue's bulk replay (`handle_many`, what a rebuild runs) leaves exactly the
//! table that applying the same events one at a time (`handle`, what the live projector runs)
//! leaves: every column, every kind of ticket event, pages cut anywhere.
#![allow(clippy::unwrap_used)]

mod support;

use brigade_domain::kitchen::{ItemStatus, NewTicketItem, TicketEvent};
use brigade_nats::{EventHandler, HandlerError, ReceivedEvent};
use brigade_projections::kitchen_queue;
use chrono::{Duration, TimeZone, Utc};
use sqlx::PgPool;
use support::received;
use uuid::Uuid;

/// Tickets living every kind of life, their events interleaved as a kitchen interleaves them.
fn history(grill: Uuid) -> Vec<ReceivedEvent> {
    let t0 = Utc.with_ymd_and_hms(2025, 3, 1, 19, 0, 0).unwrap();
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    let open = |order_id: Uuid, minute: i64| TicketEvent::TicketOpened {
        order_id,
        placed_at: at(minute - 1),
        items: vec![
            NewTicketItem {
                dish_id: grill,
                dish_name: "Entrecôte".into(),
                quantity: 2,
                note: Some("saignante".into()),
                options: vec!["Cuisson: saignant".into()],
            },
            NewTicketItem {
                dish_id: Uuid::new_v4(),
                dish_name: "Plat inconnu".into(),
                quantity: 1,
                note: None,
                options: Vec::new(),
            },
        ],
        at: at(minute),
        allergies: vec![brigade_domain::Allergen::Peanuts],
        scheduled_for: None,
    };
    let ids: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    let lives: Vec<Vec<TicketEvent>> = vec![
        // Cooked and ready.
        vec![
            open(ids[0], 0),
            TicketEvent::ItemStarted {
                index: 0,
                at: at(1),
            },
            TicketEvent::ItemReady {
                index: 1,
                at: at(2),
            },
            TicketEvent::ItemReady {
                index: 0,
                at: at(9),
            },
            TicketEvent::TicketReady { at: at(9) },
        ],
        // Steps taken back.
        vec![
            open(ids[1], 1),
            TicketEvent::ItemStarted {
                index: 0,
                at: at(2),
            },
            TicketEvent::ItemReady {
                index: 0,
                at: at(3),
            },
            TicketEvent::ItemStepUndone {
                index: 0,
                to: ItemStatus::InPreparation,
                at: at(4),
            },
            TicketEvent::ItemStepUndone {
                index: 0,
                to: ItemStatus::Pending,
                at: at(5),
            },
        ],
        // Rejected.
        vec![
            open(ids[2], 2),
            TicketEvent::TicketRejected {
                reason: "plus de saumon".into(),
                at: at(3),
            },
        ],
        // Cancelled while cooking.
        vec![
            open(ids[3], 3),
            TicketEvent::ItemStarted {
                index: 1,
                at: at(4),
            },
            TicketEvent::TicketCancelled { at: at(5) },
        ],
        // Opened twice (a replayed command): the first opening stands.
        vec![open(ids[4], 4), open(ids[4], 6)],
        // Only opened.
        vec![open(ids[5], 5)],
    ];
    let mut cursors = vec![0; lives.len()];
    let mut events = Vec::new();
    // Round-robin over the tickets: each page holds pieces of several lives.
    while cursors.iter().zip(&lives).any(|(c, life)| *c < life.len()) {
        for (n, life) in lives.iter().enumerate() {
            if let Some(event) = life.get(cursors[n]) {
                cursors[n] += 1;
                events.push(received(ids[n], i64::try_from(cursors[n]).unwrap(), event));
            }
        }
    }
    events
}

async fn table(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT concat_ws(' | ', order_id, placed_at, opened_at, status, items::text, reason,
                          closed_at, version, target_minutes)
           FROM kitchen_queue ORDER BY order_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_replay_leaves_the_table_one_event_at_a_time_leaves() {
    let (database, grill) = support::kitchen_queue_with_grill("bulk").await;
    let pool = database.pool.clone();
    let events = history(grill);
    let projector = kitchen_queue::KitchenQueue;

    let mut tx = pool.begin().await.unwrap();
    for event in &events {
        projector.handle(event, &mut tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    let one_at_a_time = table(&pool).await;
    assert_eq!(one_at_a_time.len(), 6);

    for page in [1, 2, 3, 7, events.len()] {
        sqlx::query("TRUNCATE kitchen_queue")
            .execute(&pool)
            .await
            .unwrap();
        let mut tx = pool.begin().await.unwrap();
        for chunk in events.chunks(page) {
            projector.handle_many(chunk, &mut tx).await.unwrap();
        }
        tx.commit().await.unwrap();
        assert_eq!(table(&pool).await, one_at_a_time, "pages of {page}");
    }

    // An item of a ticket the queue does not have is refused both ways.
    let stray = received(
        Uuid::new_v4(),
        2,
        &TicketEvent::ItemStarted {
            index: 0,
            at: Utc::now(),
        },
    );
    let mut tx = pool.begin().await.unwrap();
    assert!(matches!(
        projector.handle(&stray, &mut tx).await,
        Err(HandlerError::Permanent(_))
    ));
    drop(tx);
    let mut tx = pool.begin().await.unwrap();
    assert!(matches!(
        projector
            .handle_many(std::slice::from_ref(&stray), &mut tx)
            .await,
        Err(HandlerError::Permanent(_))
    ));
    drop(tx);

    database.drop_it().await;
}
