//! The cache lock: at most one origin fetch per object, inside an isolate and across instances,
//! with write and read permits (pingora-cache's `CacheLock` is the model).
//!
//! Both levels are owned here:
//! - **In the isolate** ([`CacheLock::lead_or_follow`]): concurrent misses for one object share
//!   one future ([`SingleFlight`]). The first request leads; the others poll its outcome with
//!   their own timer, and take over once a leader whose request was cancelled is past its
//!   deadline.
//! - **Across instances**: the object's lease (`SET NX PX`) in the isolate's name
//!   ([`CacheLock::holder`]), taken by the reader's lookup itself when it finds no live entry
//!   (see `cache::read`), else asked for by the leader ([`acquire`]); the leader gets a
//!   [`Permit`]. A lease the isolate already held is the leader's, unless a write-back of the
//!   isolate is still storing the object ([`CacheLock::is_storing`]): then its bytes are awaited.
//!   The permits:
//!   - [`Permit::Write`]: fetch, answer, store; the write-back releases the lease after storing
//!     (an error releases it at once, so another instance may try);
//!   - [`Permit::Read`]: another instance is fetching; [`ReadPermit::wait`] polls storage for its
//!     bytes for a bounded time, and after that the reader fetches without writing back;
//!   - [`Permit::Unlocked`]: the index could not say (down): fetch and write back without a
//!     lease rather than wait on a failing index twice.
//!
//! A dead holder's lease expires by itself (`LEASE_MS`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use crate::cache::single_flight::SingleFlight;
use crate::clock::Clock;
use crate::index::Index;
use crate::store::{ChunkStore, StoredObject};

/// How often a request following another request's fetch in the same isolate checks it.
const FOLLOWER_POLL_MS: u64 = 10;

/// The isolate's lock table: one in-flight fetch per object, shared by the requests that want
/// it. A cheap handle (clones share the table).
pub struct CacheLock<T: Clone> {
    flights: Rc<SingleFlight<T>>,
    /// The isolate's name as a lease holder: its lookups ask for leases in it, so that
    /// whichever of its readers leads an object's fetch holds the lease.
    holder: Rc<str>,
    /// Objects whose fetch in this isolate ended with the lease held for the write-back that
    /// stores them, and when: a reader that finds the lease already the isolate's waits for
    /// those bytes instead of fetching again.
    storing: Rc<RefCell<HashMap<String, u64>>>,
}

impl<T: Clone> Default for CacheLock<T> {
    fn default() -> Self {
        Self::with_holder("isolate")
    }
}

impl<T: Clone> Clone for CacheLock<T> {
    fn clone(&self) -> Self {
        Self {
            flights: Rc::clone(&self.flights),
            holder: Rc::clone(&self.holder),
            storing: Rc::clone(&self.storing),
        }
    }
}

impl<T: Clone> CacheLock<T> {
    /// The lock table of an isolate named `holder` (unique per isolate).
    #[must_use]
    pub fn with_holder(holder: &str) -> Self {
        Self {
            flights: Rc::default(),
            holder: Rc::from(holder),
            storing: Rc::default(),
        }
    }

    /// The isolate's lease holder id.
    #[must_use]
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Records that the fetch of `object` ended at `now_ms` with its lease kept for the
    /// write-back that stores it (marks older than a lease's life are dropped meanwhile).
    pub fn storing(&self, object: &str, now_ms: u64, lease_ms: u64) {
        let mut storing = self.storing.borrow_mut();
        storing.retain(|_, at| now_ms.saturating_sub(*at) < lease_ms);
        storing.insert(object.to_owned(), now_ms);
    }

    /// Whether a write-back of this isolate may still be storing `object` under its lease.
    #[must_use]
    pub fn is_storing(&self, object: &str, now_ms: u64, lease_ms: u64) -> bool {
        self.storing
            .borrow()
            .get(object)
            .is_some_and(|at| now_ms.saturating_sub(*at) < lease_ms)
    }
}

impl<T: Clone + 'static> CacheLock<T> {
    /// Runs `fetch` for `object` unless a request of this isolate is already running it, and
    /// returns its outcome; `true` for the request that ran it (the leader, who alone gets to
    /// write back). A leader is given `leader_ms` before a follower takes over.
    pub async fn lead_or_follow<F>(
        &self,
        object: &str,
        fetch: impl FnOnce() -> F,
        clock: &impl Clock,
        leader_ms: u64,
    ) -> (T, bool)
    where
        F: Future<Output = T> + 'static,
    {
        self.flights
            .run(
                object,
                fetch,
                || clock.sleep(FOLLOWER_POLL_MS),
                || clock.now_ms(),
                leader_ms,
            )
            .await
    }

    /// Whether a request of this isolate is fetching `object` now (a new reader would follow
    /// it).
    #[must_use]
    pub fn is_running(&self, object: &str) -> bool {
        self.flights.is_running(object)
    }

    /// How many objects are being fetched in this isolate right now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.flights.in_flight()
    }
}

/// What the cross-instance lock allows the leader of an isolate.
#[derive(Debug, PartialEq, Eq)]
pub enum Permit {
    /// This request holds the object's lease: it fetches and writes back.
    Write(WritePermit),
    /// Another instance holds the lease: wait for its bytes.
    Read(ReadPermit),
    /// The index could not say: fetch and write back without a lease.
    Unlocked,
}

impl Permit {
    /// The write permit of a lease `holder` already holds (taken with a lookup).
    #[must_use]
    pub fn granted(object: &str, holder: &str) -> Self {
        Self::Write(WritePermit {
            object: object.to_owned(),
            holder: holder.to_owned(),
        })
    }

    /// The read permit of a lease another holder has (seen by a lookup).
    #[must_use]
    pub fn held_elsewhere(object: &str) -> Self {
        Self::Read(ReadPermit {
            object: object.to_owned(),
        })
    }
}

/// The lease on one object, held by this request until its write-back (or a failure) releases
/// it, or it expires.
#[derive(Debug, PartialEq, Eq)]
pub struct WritePermit {
    object: String,
    holder: String,
}

impl WritePermit {
    /// The holder id, for the write-back that releases the lease after storing.
    #[must_use]
    pub fn into_holder(self) -> String {
        self.holder
    }

    /// The holder id.
    #[must_use]
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Releases the lease now (the fetch failed, or the bytes turned out to be stored already),
    /// so another instance may fetch at once instead of after the lease expires. Best effort:
    /// an unreleased lease expires by itself.
    pub async fn release(self, index: &impl Index) {
        let _ = index.release_lease(&self.object, &self.holder).await;
    }
}

/// Another instance's lease on one object: what this request may wait for.
#[derive(Debug, PartialEq, Eq)]
pub struct ReadPermit {
    object: String,
}

/// How a reader waits for another instance's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    /// How long at most.
    pub wait_ms: u64,
    /// How often storage is polled.
    pub poll_ms: u64,
    /// The length the bytes must have (`None`: any).
    pub expected_length: Option<u64>,
}

impl ReadPermit {
    /// Polls storage until the lease holder's bytes appear (complete and accepted by
    /// `is_current`, so that older bytes under the same key are not taken for them) or the wait
    /// ends (`None`: fetch without writing back).
    pub async fn wait<S: ChunkStore>(
        &self,
        store: &S,
        clock: &impl Clock,
        wait: Wait,
        is_current: impl Fn(&StoredObject<S::Body>) -> bool,
    ) -> Option<Vec<u8>> {
        let deadline = clock.now_ms().saturating_add(wait.wait_ms);
        loop {
            clock.sleep(wait.poll_ms).await;
            if let Ok(Some(object)) = store.get(&self.object).await {
                let complete = wait.expected_length.is_none_or(|n| object.size == n);
                if complete && is_current(&object) {
                    if let Ok(bytes) = store.read_body(object.body).await {
                        return Some(bytes);
                    }
                }
            }
            if clock.now_ms() >= deadline {
                return None;
            }
        }
    }
}

/// Asks the index for `object`'s lease as `holder` (`None`: the index is known to be down, do
/// not ask), for `lease_ms`.
pub async fn acquire(
    index: &impl Index,
    object: &str,
    holder: Option<&str>,
    lease_ms: u64,
) -> Permit {
    let Some(holder) = holder else {
        return Permit::Unlocked;
    };
    match index.try_lease(object, holder, lease_ms).await {
        Ok(true) => Permit::Write(WritePermit {
            object: object.to_owned(),
            holder: holder.to_owned(),
        }),
        Ok(false) => Permit::Read(ReadPermit {
            object: object.to_owned(),
        }),
        Err(_) => Permit::Unlocked,
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::fakes::{FakeIndex, InMemoryStore, ManualClock};
    use crate::index::IndexError;

    /// One write permit per object: a second holder gets a read permit; after release, the
    /// next asker writes; a failing index gives no lock at all.
    #[test]
    fn one_writer_per_object() {
        let index = FakeIndex::healthy();
        let Permit::Write(first) = block_on(acquire(&index, "o", Some("a"), 1_000)) else {
            panic!("the first asker writes");
        };
        assert_eq!(first.holder(), "a");
        assert!(matches!(
            block_on(acquire(&index, "o", Some("b"), 1_000)),
            Permit::Read(_)
        ));
        assert!(matches!(
            block_on(acquire(&index, "other", Some("b"), 1_000)),
            Permit::Write(_)
        ));
        block_on(first.release(&index));
        assert!(matches!(
            block_on(acquire(&index, "o", Some("b"), 1_000)),
            Permit::Write(_)
        ));
        assert_eq!(
            block_on(acquire(&index, "o", None, 1_000)),
            Permit::Unlocked
        );
        let down = FakeIndex::failing(IndexError::Unavailable("down".into()));
        assert_eq!(
            block_on(acquire(&down, "o", Some("a"), 1_000)),
            Permit::Unlocked
        );
    }

    /// A reader takes the writer's bytes once they are complete and current, and gives up
    /// after its wait.
    #[test]
    fn a_reader_waits_for_the_writer() {
        let (store, clock) = (InMemoryStore::default(), ManualClock::default());
        let index = FakeIndex::healthy();
        let _writer = block_on(acquire(&index, "o", Some("a"), 1_000));
        let Permit::Read(reader) = block_on(acquire(&index, "o", Some("b"), 1_000)) else {
            panic!("a second asker reads");
        };
        let wait = Wait {
            wait_ms: 200,
            poll_ms: 50,
            expected_length: Some(3),
        };
        assert_eq!(block_on(reader.wait(&store, &clock, wait, |_| true)), None);
        assert!(clock.now.get() >= 200);
        block_on(store.put("o", vec![1, 2], &crate::store::ObjectMeta::default())).unwrap();
        assert_eq!(
            block_on(reader.wait(&store, &clock, wait, |_| true)),
            None,
            "incomplete bytes are not the writer's"
        );
        block_on(store.put("o", vec![1, 2, 3], &crate::store::ObjectMeta::default())).unwrap();
        assert_eq!(
            block_on(reader.wait(&store, &clock, wait, |_| false)),
            None,
            "stale bytes are not the writer's"
        );
        assert_eq!(
            block_on(reader.wait(&store, &clock, wait, |_| true)),
            Some(vec![1, 2, 3])
        );
    }
}
