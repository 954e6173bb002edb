//! Live feeds on real PostgreSQL: a follower hears of every change committed, in the order
//! the changes commit, whatever the order of their ids.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use brigade_projections::feed::{self, FeedHub};
use futures::StreamExt;
use support::ScratchDatabase;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_committed_after_a_later_numbered_one_still_reaches_the_follower() {
    let database = ScratchDatabase::create("feed", &[feed::MIGRATIONS]).await;
    let pool = database.pool.clone();
    let (stop, stopped) = watch::channel(false);
    let hub = FeedHub::start(pool.clone(), stopped);
    // The hub's listener connects in the background: a first change shows it listening.
    let mut follower = Box::pin(feed::follow(pool.clone(), &hub, "kitchen", None, None));
    let mut warm_up = 0;
    let first = loop {
        let mut tx = pool.begin().await.unwrap();
        feed::record(&mut tx, "kitchen", "warm-up").await.unwrap();
        tx.commit().await.unwrap();
        warm_up += 1;
        if let Ok(Some(change)) =
            tokio::time::timeout(Duration::from_millis(500), follower.next()).await
        {
            break change;
        }
        assert!(warm_up < 20, "the hub never heard a change");
    };
    assert_eq!(first.key, "warm-up");

    // Two projectors at once: the first draws its id, the second draws the next and commits
    // first.
    let mut slow = pool.begin().await.unwrap();
    let slow_id = feed::record(&mut slow, "kitchen", "ticket-a")
        .await
        .unwrap();
    let mut quick = pool.begin().await.unwrap();
    let quick_id = feed::record(&mut quick, "kitchen", "ticket-b")
        .await
        .unwrap();
    assert!(slow_id < quick_id);
    quick.commit().await.unwrap();
    slow.commit().await.unwrap();

    let mut heard = Vec::new();
    while heard.len() < 2 {
        let change = tokio::time::timeout(Duration::from_secs(5), follower.next())
            .await
            .unwrap_or_else(|_| panic!("only {heard:?} reached the follower"))
            .unwrap();
        if change.key != "warm-up" {
            heard.push((change.key, change.id));
        }
    }
    assert_eq!(
        heard,
        [
            ("ticket-b".to_owned(), quick_id),
            ("ticket-a".to_owned(), slow_id)
        ]
    );

    let _ = stop.send(true);
    drop(follower);
    database.drop_it().await;
}
