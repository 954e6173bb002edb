//! The change feed: what live screens follow.
//!
//! A projector records each change it makes (`feed`, `key`) in `projection_changes` in its own
//! transaction, and notifies `brigade_feed`; PostgreSQL delivers the notification on commit, to
//! every replica. A [`FeedHub`] per process listens and fans changes out to SSE clients. The
//! table is the durable part: a client that reconnects with `Last-Event-ID` reads what it
//! missed from it, so no change is lost between two connections.

use std::time::Duration;

use brigade_nats::Migration;
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

/// Records a change inside the projector's transaction, and notifies it (delivered on commit).
/// One statement for both: a round trip fewer per change than an insert then a notify.
///
/// # Errors
/// A database error (the projector's transaction then rolls back and the event is retried).
pub async fn record(tx: &mut PgConnection, feed: &str, key: &str) -> Result<i64, sqlx::Error> {
    // A rebuild replays history into a shadow table: nobody is watching that, so it stays quiet.
    sqlx::query_scalar(
        "WITH change AS (
             INSERT INTO projection_changes (feed, key) VALUES ($1, $2) RETURNING id)
         SELECT id,
             CASE WHEN coalesce(current_setting('brigade.rebuilding', true), '') <> 'on'
                  THEN pg_notify('brigade_feed', id || ':' || $1 || ':' || $2)::text END
         FROM change",
    )
    .bind(feed)
    .bind(key)
    .fetch_one(&mut *tx)
    .await
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
///
/// Followers of one key (a delivery's ten thousand watchers, an order's customer) listen on a
/// channel of that key only: with one channel for everything, each courier position woke every
/// live connection of the process, and nine in ten only found the change was not theirs (half
/// the delivery process's CPU per frame in the fan-out benchmark; see BENCHMARKS.md).
#[derive(Clone)]
pub struct FeedHub {
    sender: broadcast::Sender<Change>,
    keyed: Keyed,
}

/// The channel of each (feed, key) someone follows.
type Keyed = std::sync::Arc<
    std::sync::Mutex<std::collections::HashMap<(String, String), broadcast::Sender<Change>>>,
>;

/// Changes a key's channel holds for a follower that is behind: a key changes a few times a
/// second at most, so a follower this far behind is stuck and had better resume.
const KEY_CHANNEL: usize = 64;

/// Keys remembered before those nobody follows any more are forgotten.
const KEYS_KEPT: usize = 4096;

impl FeedHub {
    /// Starts listening; stops with `shutdown`. Reconnects after database faults (a client
    /// may then miss a notification, but not a change: it can resume from the table).
    #[must_use]
    pub fn start(pool: PgPool, mut shutdown: watch::Receiver<bool>) -> Self {
        let (sender, _) = broadcast::channel(4096);
        let keyed = Keyed::default();
        let hub = Self {
            sender: sender.clone(),
            keyed: keyed.clone(),
        };
        tokio::spawn(async move {
            while !*shutdown.borrow() {
                let mut listener = match brigade_nats::relay::dedicated_listener(&pool).await {
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
                                    publish_keyed(&keyed, &change);
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
            keyed: Keyed::default(),
        }
    }

    /// A receiver of every change from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }

    /// A receiver of the changes of one key of one feed from now on.
    #[must_use]
    pub fn subscribe_key(&self, feed: &str, key: &str) -> broadcast::Receiver<Change> {
        let Ok(mut keyed) = self.keyed.lock() else {
            // A poisoned map: every change, filtered by the follower, still reaches it.
            return self.sender.subscribe();
        };
        if keyed.len() >= KEYS_KEPT {
            keyed.retain(|_, sender| sender.receiver_count() > 0);
        }
        keyed
            .entry((feed.to_owned(), key.to_owned()))
            .or_insert_with(|| broadcast::channel(KEY_CHANNEL).0)
            .subscribe()
    }
}

/// Hands a change to the followers of its key, if any; forgets a key nobody follows any more.
fn publish_keyed(keyed: &Keyed, change: &Change) {
    let Ok(mut keyed) = keyed.lock() else { return };
    let id = (change.feed.clone(), change.key.clone());
    if let Some(sender) = keyed.get(&id) {
        if sender.send(change.clone()).is_err() {
            keyed.remove(&id);
        }
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
///
/// A live screen holds this stream for hours, and a delivery page may have ten thousand
/// watchers: so it is no task of its own and no channel, only what it must keep between two
/// changes (its subscription, its position, its filter). The catch-up from the table, whose
/// database futures are large, lives in a box that is freed once caught up.
pub fn follow(
    pool: PgPool,
    hub: &FeedHub,
    feed: &'static str,
    key: Option<String>,
    last_event_id: Option<i64>,
) -> impl futures::Stream<Item = Change> + Send + 'static {
    use futures::{FutureExt, StreamExt};

    // Subscribe first, then read the table: nothing committed in between is missed.
    let live = match key.as_deref() {
        Some(key) => hub.subscribe_key(feed, key),
        None => hub.subscribe(),
    };
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
    // A catch-up that fails ends the whole stream (the client resumes from its last id), not
    // just the catch-up: going live past a hole would lose the changes in it.
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let key = key.map(std::sync::Arc::<str>::from);
    let catch_up = {
        let (seen, key, failed) = (seen.clone(), key.clone(), failed.clone());
        futures::stream::unfold(
            CatchUp {
                pool,
                after: last_event_id,
                page: std::collections::VecDeque::new(),
                done: false,
            },
            move |mut state| {
                let (seen, key, failed) = (seen.clone(), key.clone(), failed.clone());
                async move {
                    loop {
                        if let Some(change) = state.page.pop_front() {
                            if wanted(&change, feed, key.as_deref()) && first_time(&seen, change.id) {
                                return Some((change, state));
                            }
                            continue;
                        }
                        if state.done {
                            return None;
                        }
                        let after = match state.after {
                            Some(after) => after,
                            None => sqlx::query_scalar(
                                "SELECT coalesce(max(id), 0) FROM projection_changes WHERE feed = $1",
                            )
                            .bind(feed)
                            .fetch_one(&state.pool)
                            .await
                            .unwrap_or(0),
                        };
                        let Ok(page) = since(&state.pool, feed, after, 500).await else {
                            failed.store(true, std::sync::atomic::Ordering::Relaxed);
                            return None;
                        };
                        state.done = page.len() < 500;
                        state.after = Some(page.last().map_or(after, |c| c.id));
                        state.page = page.into();
                    }
                }
                .boxed()
            },
        )
        .boxed()
    };
    let live = futures::stream::unfold(live, move |mut live| {
        let (seen, key, failed) = (seen.clone(), key.clone(), failed.clone());
        async move {
            if failed.load(std::sync::atomic::Ordering::Relaxed) {
                return None;
            }
            loop {
                match live.recv().await {
                    Ok(change)
                        if wanted(&change, feed, key.as_deref())
                            && first_time(&seen, change.id) =>
                    {
                        return Some((change, live));
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_))
                    | Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    catch_up.chain(live)
}

/// The changes one follower has sent lately, to send none twice where the catch-up from the
/// table and the live notifications overlap.
///
/// Not "every id above the last one sent": change ids are drawn when a projector writes its
/// change, and projectors commit in another order than they draw. A change committed just
/// after a later-numbered one is notified after it, and a follower that skipped ids below its
/// last missed it: a kitchen screen never showed about one ticket in a hundred until its next
/// change (BENCHMARKS.md, "the kitchen screen's p99"). Notifications come in commit order, so
/// a follower sends every change it has not sent yet; the few ids it keeps are only there to
/// recognise the overlap. The price: a change committed just before the follower subscribed,
/// whose notification reaches the hub just after, is sent although it predates the stream's
/// start (a frame of the key's current state once more: harmless, where skipping it was a
/// change lost).
#[derive(Default)]
struct Seen {
    recent: std::collections::VecDeque<i64>,
}

/// Ids a follower keeps: more than the changes committed while a catch-up ends and the
/// notifications it overlaps arrive.
const SEEN_KEPT: usize = 32;

/// Whether `id` is new to this follower; remembers it.
fn first_time(seen: &std::sync::Mutex<Seen>, id: i64) -> bool {
    let Ok(mut seen) = seen.lock() else {
        return true;
    };
    if seen.recent.contains(&id) {
        return false;
    }
    if seen.recent.len() == SEEN_KEPT {
        seen.recent.pop_front();
    }
    seen.recent.push_back(id);
    true
}

/// Where a follower's catch-up from the table stands.
struct CatchUp {
    pool: PgPool,
    /// The last change read from the table (`None`: start from the latest).
    after: Option<i64>,
    page: std::collections::VecDeque<Change>,
    /// The last page was not full: the table has nothing more.
    done: bool,
}

fn wanted(change: &Change, feed: &str, key: Option<&str>) -> bool {
    change.feed == feed && key.is_none_or(|k| k == change.key)
}

/// The latest read of each key, shared by every follower of that key: when one change reaches
/// a thousand watchers of one delivery, its row is read once, not a thousand times (one query
/// per watcher per courier position was what limited the live tracking fan-out; see
/// BENCHMARKS.md).
///
/// A follower handling change `n` of a key gets a read made after change `n` was committed:
/// the read of change `n` itself, or of a later change of the same key (then newer still).
#[derive(Clone)]
pub struct SharedReads<T> {
    latest: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, SharedRead<T>>>>,
}

type SharedRead<T> = (i64, std::sync::Arc<tokio::sync::OnceCell<Option<T>>>);

impl<T> Default for SharedReads<T> {
    fn default() -> Self {
        Self {
            latest: std::sync::Arc::default(),
        }
    }
}

/// Keys remembered before the ones nobody is reading are forgotten.
const SHARED_READS_KEPT: usize = 4096;

impl<T: Clone + Send + Sync + 'static> SharedReads<T> {
    /// The value of `key` as of change `change_id` (or later): `read` runs once per change,
    /// whoever asks first; the others wait for its answer.
    pub async fn get<F, Fut>(&self, key: &str, change_id: i64, read: F) -> Option<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let cell = {
            let Ok(mut latest) = self.latest.lock() else {
                return read().await;
            };
            match latest.get(key) {
                Some((id, cell)) if *id >= change_id => cell.clone(),
                _ => {
                    if latest.len() >= SHARED_READS_KEPT {
                        latest.retain(|_, (_, cell)| std::sync::Arc::strong_count(cell) > 1);
                    }
                    let cell = std::sync::Arc::new(tokio::sync::OnceCell::new());
                    latest.insert(key.to_owned(), (change_id, cell.clone()));
                    cell
                }
            }
        };
        cell.get_or_init(read).await.clone()
    }
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

    #[test]
    fn the_followers_of_a_key_hear_of_its_changes_only() {
        let hub = FeedHub::detached();
        let mut first = hub.subscribe_key("live-deliveries", "a");
        let mut second = hub.subscribe_key("live-deliveries", "a");
        let mut other = hub.subscribe_key("live-deliveries", "b");
        let mut other_feed = hub.subscribe_key("order-tracking", "a");
        let change = Change {
            id: 7,
            feed: "live-deliveries".into(),
            key: "a".into(),
        };
        publish_keyed(&hub.keyed, &change);
        assert_eq!(first.try_recv().ok(), Some(change.clone()));
        assert_eq!(second.try_recv().ok(), Some(change.clone()));
        assert!(other.try_recv().is_err());
        assert!(other_feed.try_recv().is_err());

        // Once nobody follows a key, its channel is forgotten at its next change.
        drop((first, second));
        publish_keyed(&hub.keyed, &change);
        let remembered = hub.keyed.lock().map(|keyed| keyed.len()).unwrap_or(0);
        assert_eq!(remembered, 2);
    }
}
