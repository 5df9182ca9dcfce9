//! In-isolate single flight: concurrent requests for one object share one fetch.
//!
//! Workers run one thread per isolate, so a `RefCell` map of shared futures is enough. The first
//! caller for a key (the leader) starts the work and drives it; later callers get a clone of its
//! output. The entry is removed when the work finishes, so a later miss starts afresh.
//!
//! Followers do not await the leader's future: the Workers runtime cancels a request that waits
//! only on I/O started by another request ("your Worker's code had hung"). They poll it with
//! their own timer (`pause`) and, if the leader never finishes (its client went away), take the
//! key over after `max_waits` pauses.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use futures::future::{FutureExt, LocalBoxFuture, Shared};

/// A map of in-flight work by key.
pub struct SingleFlight<T: Clone> {
    flights: RefCell<HashMap<String, Shared<LocalBoxFuture<'static, T>>>>,
}

impl<T: Clone> Default for SingleFlight<T> {
    fn default() -> Self {
        Self {
            flights: RefCell::default(),
        }
    }
}

impl<T: Clone + 'static> SingleFlight<T> {
    /// Runs `work` for `key` unless it is already running, and returns its output. The boolean is
    /// `true` for a caller that ran the work itself.
    ///
    /// A follower checks the running work after each `pause`, up to `max_waits` times. If it is
    /// still not done (its leader's request was cancelled, or is stuck), the follower takes the
    /// key over: it replaces the stale flight with its own, so callers after it wait on work that
    /// is actually running.
    pub async fn run<F, P>(
        self: &Rc<Self>,
        key: &str,
        work: impl FnOnce() -> F,
        mut pause: impl FnMut() -> P,
        max_waits: usize,
    ) -> (T, bool)
    where
        F: Future<Output = T> + 'static,
        P: Future<Output = ()>,
    {
        let existing = self.flights.borrow().get(key).cloned();
        if let Some(stale) = existing {
            for _ in 0..max_waits {
                if let Some(output) = stale.peek() {
                    return (output.clone(), false);
                }
                pause().await;
            }
            if let Some(output) = stale.peek() {
                return (output.clone(), false);
            }
            let mut flights = self.flights.borrow_mut();
            if flights.get(key).is_some_and(|f| f.ptr_eq(&stale)) {
                flights.remove(key);
            }
        }
        let shared = work().boxed_local().shared();
        self.flights
            .borrow_mut()
            .insert(key.to_owned(), shared.clone());
        let output = shared.clone().await;
        let mut flights = self.flights.borrow_mut();
        if flights.get(key).is_some_and(|f| f.ptr_eq(&shared)) {
            flights.remove(key);
        }
        (output, true)
    }

    /// How many keys are in flight.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.flights.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::yield_once;
    use futures::channel::oneshot;
    use futures::executor::LocalPool;
    use futures::task::LocalSpawnExt;
    use std::cell::Cell;

    /// Concurrent callers for one key run the work once and all get its output; only the first
    /// is the leader; a later call runs it again.
    #[test]
    fn concurrent_callers_share_one_run() {
        let flights: Rc<SingleFlight<u32>> = Rc::default();
        let runs = Rc::new(Cell::new(0));
        let (release, gate) = oneshot::channel::<()>();
        let gate = gate.shared();
        let results = Rc::new(RefCell::new(Vec::new()));
        let mut pool = LocalPool::new();
        for _ in 0..5 {
            let (flights, runs, gate, results) =
                (flights.clone(), runs.clone(), gate.clone(), results.clone());
            pool.spawner()
                .spawn_local(async move {
                    let out = flights
                        .run(
                            "k",
                            || async move {
                                runs.set(runs.get() + 1);
                                let _ = gate.await;
                                7
                            },
                            yield_once,
                            1_000,
                        )
                        .await;
                    results.borrow_mut().push(out);
                })
                .unwrap();
        }
        // Open the gate after every caller has started and polled a few times.
        let watcher = flights.clone();
        pool.spawner()
            .spawn_local(async move {
                for _ in 0..5 {
                    yield_once().await;
                }
                assert_eq!(watcher.in_flight(), 1);
                release.send(()).unwrap();
            })
            .unwrap();
        pool.run();
        assert_eq!(runs.get(), 1);
        let results = results.borrow();
        assert_eq!(results.len(), 5);
        assert!(results.iter().all(|(v, _)| *v == 7));
        assert_eq!(results.iter().filter(|(_, leader)| *leader).count(), 1);
        assert_eq!(flights.in_flight(), 0);
        drop(results);
        let again = futures::executor::block_on(flights.run("k", || async { 8 }, yield_once, 1));
        assert_eq!(again, (8, true));
    }

    /// A follower whose leader never finishes does the work itself after its waits.
    #[test]
    fn follower_gives_up_on_a_stuck_leader() {
        let flights: Rc<SingleFlight<u32>> = Rc::default();
        let mut pool = LocalPool::new();
        let stuck = flights.clone();
        pool.spawner()
            .spawn_local(async move {
                stuck
                    .run("k", futures::future::pending::<u32>, yield_once, 1)
                    .await;
            })
            .unwrap();
        pool.run_until_stalled();
        assert_eq!(flights.in_flight(), 1);
        let follower = pool.run_until(flights.run("k", || async { 9 }, yield_once, 3));
        assert_eq!(follower, (9, true));
        assert_eq!(
            flights.in_flight(),
            0,
            "the stuck flight was taken over and finished"
        );
    }
}
