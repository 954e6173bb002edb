//! The copy of the open tickets the estimator keeps (`kitchen_queue::OpenTickets`): caught up
//! from the changes the projector recorded, it is what reading the whole queue gives, in
//! queue order; it reads only the tickets it was told of, and forgets nothing it was told of
//! when a read fails.
#![allow(clippy::unwrap_used)]

mod support;

use brigade_domain::kitchen::{NewTicketItem, TicketEvent};
use brigade_nats::{EventHandler, ReceivedEvent};
use brigade_projections::feed;
use brigade_projections::kitchen_queue::{self, ItemState, OpenTickets, QueuedTicket};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::PgPool;
use support::received;
use uuid::Uuid;

fn opened(
    order_id: Uuid,
    dish_id: Uuid,
    at: DateTime<Utc>,
    scheduled_for: Option<DateTime<Utc>>,
) -> TicketEvent {
    TicketEvent::TicketOpened {
        order_id,
        placed_at: at,
        items: vec![NewTicketItem {
            dish_id,
            dish_name: "Entrecôte".into(),
            quantity: 1,
            note: None,
            options: Vec::new(),
        }],
        at,
        allergies: Vec::new(),
        scheduled_for,
    }
}

async fn apply(pool: &PgPool, events: &[ReceivedEvent]) {
    let mut tx = pool.begin().await.unwrap();
    for event in events {
        kitchen_queue::KitchenQueue
            .handle(event, &mut tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Order ids and item states, as a comparison sees them.
fn shown(tickets: &[&QueuedTicket]) -> Vec<(Uuid, Vec<ItemState>)> {
    tickets
        .iter()
        .map(|t| (t.order_id, t.items.iter().map(|i| i.status).collect()))
        .collect()
}

async fn whole_queue(pool: &PgPool) -> Vec<(Uuid, Vec<ItemState>)> {
    let open = kitchen_queue::open_tickets(pool, Utc::now()).await.unwrap();
    shown(&open.iter().collect::<Vec<_>>())
}

/// Tells `open` of the kitchen feed's changes after `after`; returns the last one's id.
async fn tell(pool: &PgPool, open: &mut OpenTickets, after: i64) -> i64 {
    let changes = feed::since(pool, kitchen_queue::FEED, after, 1000)
        .await
        .unwrap();
    for change in &changes {
        open.note_change(change);
    }
    changes.last().map_or(after, |change| change.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kept_copy_follows_the_changes_it_is_told_of() {
    let (database, grill) = support::kitchen_queue_with_grill("open_copy").await;
    let pool = database.pool.clone();
    let t0 = Utc.with_ymd_and_hms(2025, 3, 1, 19, 0, 0).unwrap();
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    let [a, b, c, d, e] = [(); 5].map(|()| Uuid::new_v4());
    // Placed a, b, c; c is for later (22 minutes of grill before 19:40: it starts at 19:18,
    // after b placed at 19:10).
    apply(
        &pool,
        &[
            received(a, 1, &opened(a, grill, at(0), None)),
            received(b, 1, &opened(b, grill, at(10), None)),
            received(c, 1, &opened(c, grill, at(5), Some(at(40)))),
        ],
    )
    .await;
    let mut open = OpenTickets::new();
    open.catch_up(&pool, Utc::now()).await.unwrap();
    assert_eq!(shown(&open.in_order()), whole_queue(&pool).await);
    let order: Vec<Uuid> = open.in_order().iter().map(|t| t.order_id).collect();
    assert_eq!(order, [a, b, c]);
    let seen = tell(&pool, &mut open, 0).await;

    // a starts cooking, b is rejected, d arrives (placed at 19:14, before c starts): told of
    // these, the copy is the queue again.
    apply(
        &pool,
        &[
            received(
                a,
                2,
                &TicketEvent::ItemStarted {
                    index: 0,
                    at: at(12),
                },
            ),
            received(
                b,
                2,
                &TicketEvent::TicketRejected {
                    reason: "Plus de grill".into(),
                    at: at(13),
                },
            ),
            received(d, 1, &opened(d, grill, at(14), None)),
        ],
    )
    .await;
    let seen = tell(&pool, &mut open, seen).await;
    open.catch_up(&pool, Utc::now()).await.unwrap();
    assert_eq!(shown(&open.in_order()), whole_queue(&pool).await);
    assert_eq!(
        shown(&open.in_order()),
        [
            (a, vec![ItemState::InPreparation]),
            (d, vec![ItemState::Pending]),
            (c, vec![ItemState::Pending]),
        ]
    );

    // A change it is not told of is not read (it reads only what it is told of)...
    apply(
        &pool,
        &[received(
            d,
            2,
            &TicketEvent::ItemStarted {
                index: 0,
                at: at(15),
            },
        )],
    )
    .await;
    open.catch_up(&pool, Utc::now()).await.unwrap();
    assert_eq!(open.in_order()[1].items[0].status, ItemState::Pending);
    // ...until it may have missed changes: then it reads the whole queue.
    open.missed_changes();
    open.catch_up(&pool, Utc::now()).await.unwrap();
    assert_eq!(shown(&open.in_order()), whole_queue(&pool).await);
    let seen = tell(&pool, &mut open, seen).await;

    // Told of e, it cannot read (the database is out of reach): it keeps e for the next read.
    apply(&pool, &[received(e, 1, &opened(e, grill, at(16), None))]).await;
    tell(&pool, &mut open, seen).await;
    let unreachable = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/nowhere")
        .unwrap();
    assert!(open.catch_up(&unreachable, Utc::now()).await.is_err());
    open.catch_up(&pool, Utc::now()).await.unwrap();
    assert_eq!(shown(&open.in_order()), whole_queue(&pool).await);
    assert_eq!(open.in_order().len(), 4);
    database.drop_it().await;
}

/// The tickets read by id (what a screen's stream and the copy read for changes) are the
/// tickets of the whole queue's read, field for field, a quote included or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_read_by_id_are_those_of_the_whole_queue_quotes_included() {
    let (database, grill) = support::kitchen_queue_with_grill("by_id").await;
    let pool = database.pool.clone();
    let t0 = Utc.with_ymd_and_hms(2025, 3, 1, 19, 0, 0).unwrap();
    let [a, b] = [(); 2].map(|()| Uuid::new_v4());
    apply(
        &pool,
        &[
            received(a, 1, &opened(a, grill, t0, None)),
            received(b, 1, &opened(b, grill, t0 + Duration::minutes(1), None)),
        ],
    )
    .await;
    sqlx::query(
        "INSERT INTO kitchen_estimates (order_id, ready_at, quoted_at) VALUES ($1, $2, $3)",
    )
    .bind(b)
    .bind(t0 + Duration::minutes(30))
    .bind(t0)
    .execute(&pool)
    .await
    .unwrap();
    let now = Utc::now();
    let whole = kitchen_queue::open_tickets(&pool, now).await.unwrap();
    let mut by_id = kitchen_queue::tickets(&pool, &[b, a], now).await.unwrap();
    by_id.sort_by_key(QueuedTicket::queue_position);
    assert_eq!(by_id, whole);
    assert_eq!(by_id[0].estimated_ready_at, None);
    assert_eq!(
        by_id[1].estimated_ready_at,
        Some(t0 + Duration::minutes(30))
    );
    database.drop_it().await;
}
