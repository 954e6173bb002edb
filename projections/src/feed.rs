//! The change feed: what live screens follow.
//!
//! A projector records each change it makes (`feed`, `key`) in `projection_changes` in its own
//! transaction, and notifies `brigade_feed`; PostgreSQL delivers the notification on commit, to
//! every replica. A [`FeedHub`] per process listens and fans changes out to SSE clients. The
//! table is the durable part: a client that reconnects with `Last-Event-ID` reads what it
//! missed from it, so no change is lost between two connections.

use std::time::Duration;

use brigade_nats::Migration;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{broadcast, watch};

/// Schema of the feed.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "0100_projection_changes",
    sql: r"
CREATE TABLE projection_changes (
    id         bigserial   PRIMARY KEY,
    feed       text        NOT NULL,
    key        text        NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projection_changes_feed ON projection_changes (feed, id);
",
}];

/// One change to a read model: which feed, which row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub id: i64,
    pub feed: String,
    pub key: String,
}

/// Records a change inside the projector's transaction.
///
/// # Errors
/// A database error (the projector's transaction then rolls back and the event is retried).
pub async fn record(tx: &mut PgConnection, feed: &str, key: &str) -> Result<i64, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO projection_changes (feed, key) VALUES ($1, $2) RETURNING id",
    )
    .bind(feed)
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    // A rebuild replays history into a shadow table: nobody is watching that, so it stays quiet.
    sqlx::query(
        "SELECT pg_notify('brigade_feed', $1)
         WHERE coalesce(current_setting('brigade.rebuilding', true), '') <> 'on'",
    )
    .bind(format!("{id}:{feed}:{key}"))
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

/// Changes of one feed after `after`, oldest first (at most `limit`).
///
/// # Errors
/// A database error.
pub async fn since(
    pool: &PgPool,
    feed: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<Change>, sqlx::Error> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT id, feed, key FROM projection_changes WHERE feed = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(feed)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, feed, key)| Change { id, feed, key })
        .collect())
}

/// Fans the feed's notifications out to the live connections of this process.
#[derive(Clone)]
pub struct FeedHub {
    sender: broadcast::Sender<Change>,
}

impl FeedHub {
    /// Starts listening; stops with `shutdown`. Reconnects after database faults (a client
    /// may then miss a notification, but not a change: it can resume from the table).
    #[must_use]
    pub fn start(pool: PgPool, mut shutdown: watch::Receiver<bool>) -> Self {
        let (sender, _) = broadcast::channel(4096);
        let hub = Self {
            sender: sender.clone(),
        };
        tokio::spawn(async move {
            while !*shutdown.borrow() {
                let mut listener = match PgListener::connect_with(&pool).await {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::warn!(%error, "feed listener cannot connect; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Err(error) = listener.listen("brigade_feed").await {
                    tracing::warn!(%error, "feed listener cannot listen; retrying");
                    continue;
                }
                loop {
                    tokio::select! {
                        notification = listener.recv() => match notification {
                            Ok(notification) => {
                                if let Some(change) = parse(notification.payload()) {
                                    let _ = sender.send(change);
                                }
                            }
                            Err(error) => {
                                tracing::warn!(%error, "feed listener lost its connection");
                                break;
                            }
                        },
                        _ = shutdown.changed() => return,
                    }
                }
            }
        });
        hub
    }

    /// A hub that listens to nothing: for describing an API without a database.
    #[must_use]
    pub fn detached() -> Self {
        Self {
            sender: broadcast::channel(1).0,
        }
    }

    /// A receiver of every change from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}

fn parse(payload: &str) -> Option<Change> {
    let mut parts = payload.splitn(3, ':');
    let id = parts.next()?.parse().ok()?;
    let feed = parts.next()?.to_owned();
    let key = parts.next()?.to_owned();
    Some(Change { id, feed, key })
}

/// The changes of one feed (optionally of one key), as a live stream: first those after
/// `last_event_id` (when a client resumes), then new ones as they are committed. Without
/// `last_event_id` it starts from now. The stream ends when the client falls too far behind;
/// the client then reconnects with its last id and loses nothing.
pub fn follow(
    pool: PgPool,
    hub: &FeedHub,
    feed: &'static str,
    key: Option<String>,
    last_event_id: Option<i64>,
) -> impl futures::Stream<Item = Change> + Send + 'static {
    let mut live = hub.subscribe();
    let (sender, receiver) = tokio::sync::mpsc::channel::<Change>(64);
    tokio::spawn(async move {
        let wanted =
            |change: &Change| change.feed == feed && key.as_ref().is_none_or(|k| *k == change.key);
        let mut last = match last_event_id {
            Some(id) => id,
            None => sqlx::query_scalar(
                "SELECT coalesce(max(id), 0) FROM projection_changes WHERE feed = $1",
            )
            .bind(feed)
            .fetch_one(&pool)
            .await
            .unwrap_or(0),
        };
        // Catch up from the table, page by page, then switch to live notifications; the
        // subscription was taken first, so nothing committed meanwhile is missed.
        loop {
            let Ok(page) = since(&pool, feed, last, 500).await else {
                return;
            };
            let full = page.len() == 500;
            for change in page {
                last = change.id;
                if wanted(&change) && sender.send(change).await.is_err() {
                    return;
                }
            }
            if !full {
                break;
            }
        }
        loop {
            // A client that went away ends this task at once, not at the next change it wants:
            // the follower of a finished order would otherwise live, and hold its buffers, for
            // ever.
            let received = tokio::select! {
                received = live.recv() => received,
                () = sender.closed() => return,
            };
            match received {
                Ok(change) if change.id > last && wanted(&change) => {
                    last = change.id;
                    if sender.send(change).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_))
                | Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|change| (change, receiver))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_carry_id_feed_and_key() {
        assert_eq!(
            parse("42:kitchen:3f2a:b"),
            Some(Change {
                id: 42,
                feed: "kitchen".into(),
                key: "3f2a:b".into()
            })
        );
        assert_eq!(parse("x:kitchen:1"), None);
    }
}
