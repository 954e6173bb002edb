//! The kitchen estimator's pass, on a queue of open tickets: reading the whole queue (what
//! each pass did until the estimator kept the open tickets in memory) against catching up on
//! the tickets a pass's changes name (what it does now), each followed by the same simulation
//! of the queue (`estimator::ready_times`). Recording the quotes that moved is left out: it
//! is the same work either way.
//!
//! The tickets are real: stored as `TicketOpened` events and projected by a rebuild of the
//! kitchen queue, as in the rebuild benchmark.

use std::time::Instant;

use brigade_domain::kitchen::estimate::KitchenModel;
use brigade_kitchen::estimator;
use brigade_projections::feed::Change;
use brigade_projections::kitchen_queue::{self, OpenTickets};
use chrono::Utc;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::rebuild;
use crate::stats::{median, round3};
use crate::system::in_scratch_database;

/// Tickets a pass's changes name: at 50 orders/s, a pass (300 ms of debounce plus its own
/// time) sees about fifteen new tickets.
pub const CHANGED_PER_PASS: usize = 16;

/// Passes of one kind on one queue.
#[derive(Debug, Clone, Serialize)]
pub struct Passes {
    pub open_tickets: usize,
    pub changed_tickets: usize,
    /// Reading every open ticket, then the simulation: median of the passes, ms.
    pub whole_queue_ms: f64,
    /// Reading the changed tickets into the kept copy, then the simulation: median, ms.
    pub kept_copy_ms: f64,
    /// `whole_queue_ms / kept_copy_ms`.
    pub speedup: f64,
    pub passes: usize,
}

/// Measures `passes` passes of each kind on queues of each size in `sizes`.
///
/// # Errors
/// A database error, or a copy that differs from the queue.
pub async fn run(sizes: &[usize], passes: usize) -> anyhow::Result<Vec<Passes>> {
    let mut all = Vec::with_capacity(sizes.len());
    for &size in sizes {
        all.push(
            in_scratch_database("estimator", async |pool| {
                rebuild::kitchen_schema(pool).await?;
                rebuild::store_tickets(pool, u64::try_from(size)?, 1).await?;
                brigade_projections::rebuild::rebuild(pool, &kitchen_queue::spec(), |_| {}).await?;
                measure(pool, size, passes).await
            })
            .await?,
        );
    }
    Ok(all)
}

async fn measure(pool: &PgPool, size: usize, passes: usize) -> anyhow::Result<Passes> {
    let model = KitchenModel {
        lanes_per_station: 4,
        pace: 1.0,
    };
    let mut kept = OpenTickets::new();
    kept.catch_up(pool, Utc::now()).await?;
    let ids: Vec<Uuid> = kept.in_order().iter().map(|t| t.order_id).collect();
    if ids.len() != size {
        anyhow::bail!("{} open tickets in the queue, {size} stored", ids.len());
    }
    let (mut whole, mut copy) = (Vec::with_capacity(passes), Vec::with_capacity(passes));
    for pass in 0..passes {
        let now = Utc::now();
        let started = Instant::now();
        let open = kitchen_queue::open_tickets(pool, now).await?;
        let quotes = estimator::ready_times(&open.iter().collect::<Vec<_>>(), &model, now);
        whole.push(started.elapsed().as_secs_f64() * 1000.0);

        // The changes a pass is told of: the next few tickets, round the queue.
        for n in 0..CHANGED_PER_PASS {
            let order_id = ids[(pass * CHANGED_PER_PASS + n) % ids.len()];
            kept.note_change(&Change {
                id: 0,
                feed: kitchen_queue::FEED.to_owned(),
                key: order_id.to_string(),
            });
        }
        let started = Instant::now();
        kept.catch_up(pool, now).await?;
        let from_copy = estimator::ready_times(&kept.in_order(), &model, now);
        copy.push(started.elapsed().as_secs_f64() * 1000.0);
        if from_copy != quotes {
            anyhow::bail!("the kept copy's quotes differ from the whole queue's");
        }
    }
    let (whole_queue_ms, kept_copy_ms) = (median(&whole), median(&copy));
    println!(
        "    {size} open tickets, {CHANGED_PER_PASS} changed: whole queue {whole_queue_ms:.2} ms, kept copy {kept_copy_ms:.2} ms a pass (×{:.1})",
        whole_queue_ms / kept_copy_ms
    );
    Ok(Passes {
        open_tickets: size,
        changed_tickets: CHANGED_PER_PASS,
        whole_queue_ms: round3(whole_queue_ms),
        kept_copy_ms: round3(kept_copy_ms),
        speedup: round3(whole_queue_ms / kept_copy_ms),
        passes,
    })
}
