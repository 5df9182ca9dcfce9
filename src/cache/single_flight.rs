//! In-isolate single flight: concurrent requests for one object share one fetch.
//!
//! Workers run one thread per isolate, so a `RefCell` map of shared futures is enough. The first
//! caller for a key (the leader) starts the work and drives it; later callers get a clone of its
//! output. The entry is removed when the work finishes, so a later miss starts afresh.
//!
//! Followers do not await the leader's future: the Workers runtime cancels a request that waits
//! only on I/O started by another request ("your Worker's code had hung"). They poll it with
//! their own timer (`pause`).
//!
//! A leader's request can be cancelled (its client went away): the runtime then drops its future,
//! or simply never polls it again. Either way nobody drives the shared work any more, so:
//! - every flight carries a **deadline** (its start plus the longest a leader may take): a
//!   follower takes the key over as soon as the deadline has passed, and one arriving after it
//!   takes over at once;
//! - a **guard** in the leader's future removes its flight when the future is dropped before it
//!   finished, so followers take over at their next check.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use futures::future::{FutureExt, LocalBoxFuture, Shared};

type Work<T> = Shared<LocalBoxFuture<'static, T>>;

/// One flight: the shared work and when its leader is presumed gone.
struct Flight<T> {
    work: Work<T>,
    deadline_ms: u64,
}

/// A map of in-flight work by key.
pub struct SingleFlight<T: Clone> {
    flights: RefCell<HashMap<String, Flight<T>>>,
}

impl<T: Clone> Default for SingleFlight<T> {
    fn default() -> Self {
        Self {
            flights: RefCell::default(),
        }
    }
}

/// What a follower found when it looked at the key.
enum Seen<T> {
    /// The flight it follows finished.
    Done(T),
    /// No live flight: lead.
    Lead,
    /// Another flight replaced the one it followed: follow that one.
    Replaced,
    /// Still running before its deadline: pause and look again.
    Running,
}

/// Removes the leader's flight if its future is dropped before the work finished.
struct Release<'a, T: Clone + 'static> {
    flights: &'a SingleFlight<T>,
    key: &'a str,
    work: Work<T>,
}

impl<T: Clone + 'static> Drop for Release<'_, T> {
    fn drop(&mut self) {
        self.flights.remove_if_current(self.key, &self.work);
    }
}

impl<T: Clone + 'static> SingleFlight<T> {
    /// Runs `work` for `key` unless it is already running, and returns its output. The boolean is
    /// `true` for a caller that ran the work itself.
    ///
    /// `now()` is the time in ms; a leader is given `leader_ms` to finish. A follower checks the
    /// running work after each `pause`; once that flight's deadline has passed (its leader's
    /// request was cancelled, or is stuck), or its leader's future was dropped, the follower
    /// takes the key over: it replaces the stale flight with its own, so callers after it wait on
    /// work that is actually running.
    pub async fn run<F, P>(
        self: &Rc<Self>,
        key: &str,
        work: impl FnOnce() -> F,
        mut pause: impl FnMut() -> P,
        now: impl Fn() -> u64,
        leader_ms: u64,
    ) -> (T, bool)
    where
        F: Future<Output = T> + 'static,
        P: Future<Output = ()>,
    {
        let mut followed = self.current(key);
        while let Some((stale, deadline_ms)) = followed.take() {
            loop {
                match self.look(key, &stale, deadline_ms, now()) {
                    Seen::Done(output) => return (output, false),
                    Seen::Lead => break,
                    Seen::Replaced => {
                        followed = self.current(key);
                        break;
                    }
                    Seen::Running => pause().await,
                }
            }
        }
        let shared = work().boxed_local().shared();
        self.flights.borrow_mut().insert(
            key.to_owned(),
            Flight {
                work: shared.clone(),
                deadline_ms: now().saturating_add(leader_ms),
            },
        );
        let guard = Release {
            flights: self,
            key,
            work: shared.clone(),
        };
        let output = shared.await;
        drop(guard);
        (output, true)
    }

    /// The live flight for `key`, if any.
    fn current(&self, key: &str) -> Option<(Work<T>, u64)> {
        self.flights
            .borrow()
            .get(key)
            .map(|f| (f.work.clone(), f.deadline_ms))
    }

    fn look(&self, key: &str, followed: &Work<T>, deadline_ms: u64, now_ms: u64) -> Seen<T> {
        if let Some(output) = followed.peek() {
            return Seen::Done(output.clone());
        }
        let same = self
            .flights
            .borrow()
            .get(key)
            .map(|f| f.work.ptr_eq(followed));
        match same {
            // Its leader's future was dropped (the guard removed it): nobody drives it.
            None => Seen::Lead,
            Some(false) => Seen::Replaced,
            Some(true) if now_ms >= deadline_ms => {
                self.remove_if_current(key, followed);
                Seen::Lead
            }
            Some(true) => Seen::Running,
        }
    }

    fn remove_if_current(&self, key: &str, work: &Work<T>) {
        let mut flights = self.flights.borrow_mut();
        if flights.get(key).is_some_and(|f| f.work.ptr_eq(work)) {
            flights.remove(key);
        }
    }

    /// Whether work for `key` is running (a leader's future not yet done or dropped).
    #[must_use]
    pub fn is_running(&self, key: &str) -> bool {
        self.flights
            .borrow()
            .get(key)
            .is_some_and(|f| f.work.peek().is_none())
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

    /// A clock the test moves, and a pause that counts and moves it by `step` ms.
    #[derive(Clone, Default)]
    struct TestTime {
        now: Rc<Cell<u64>>,
        pauses: Rc<Cell<u64>>,
    }

    impl TestTime {
        fn now(&self) -> impl Fn() -> u64 {
            let now = Rc::clone(&self.now);
            move || now.get()
        }
        fn pause(&self, step: u64) -> impl FnMut() -> LocalBoxFuture<'static, ()> {
            let (now, pauses) = (Rc::clone(&self.now), Rc::clone(&self.pauses));
            move || {
                now.set(now.get() + step);
                pauses.set(pauses.get() + 1);
                yield_once().boxed_local()
            }
        }
    }

    /// Concurrent callers for one key run the work once and all get its output; only the first
    /// is the leader; a later call runs it again.
    #[test]
    fn concurrent_callers_share_one_run() {
        let flights: Rc<SingleFlight<u32>> = Rc::default();
        let runs = Rc::new(Cell::new(0));
        let (release, gate) = oneshot::channel::<()>();
        let gate = gate.shared();
        let results = Rc::new(RefCell::new(Vec::new()));
        let time = TestTime::default();
        let mut pool = LocalPool::new();
        for _ in 0..5 {
            let (flights, runs, gate, results, time) = (
                flights.clone(),
                runs.clone(),
                gate.clone(),
                results.clone(),
                time.clone(),
            );
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
                            time.pause(0),
                            time.now(),
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
        let again = futures::executor::block_on(flights.run(
            "k",
            || async { 8 },
            time.pause(0),
            time.now(),
            1,
        ));
        assert_eq!(again, (8, true));
    }

    /// Spawns on `pool` a leader for `k` whose work never finishes (1 s deadline); the pool is
    /// then never run again, as a cancelled request's future is never polled again.
    fn start_stuck_leader(pool: &LocalPool, flights: &Rc<SingleFlight<u32>>, time: &TestTime) {
        let (flights, time) = (flights.clone(), time.clone());
        pool.spawner()
            .spawn_local(async move {
                flights
                    .run(
                        "k",
                        futures::future::pending::<u32>,
                        time.pause(10),
                        time.now(),
                        1_000,
                    )
                    .await;
            })
            .unwrap();
    }

    /// A leader whose future is never polled again (its request was cancelled): a follower
    /// already waiting takes over when the deadline passes, and a reader arriving after the
    /// deadline takes over at once, without a single pause.
    #[test]
    fn a_stuck_leader_is_taken_over_at_its_deadline() {
        let flights: Rc<SingleFlight<u32>> = Rc::default();
        let time = TestTime::default();
        let mut abandoned = LocalPool::new();
        start_stuck_leader(&abandoned, &flights, &time);
        abandoned.run_until_stalled();
        assert_eq!(flights.in_flight(), 1);
        // Arriving at t=400: waits out the remaining 600 ms (60 pauses of 10 ms), not more.
        time.now.set(400);
        let mut pool = LocalPool::new();
        let follower =
            pool.run_until(flights.run("k", || async { 9 }, time.pause(10), time.now(), 1_000));
        assert_eq!(follower, (9, true));
        assert_eq!(time.pauses.get(), 60);
        assert_eq!(
            flights.in_flight(),
            0,
            "the stuck flight was replaced and finished"
        );

        // Another stuck leader; a reader hours later takes over at once.
        start_stuck_leader(&abandoned, &flights, &time);
        abandoned.run_until_stalled();
        time.now.set(time.now.get() + 3_600_000);
        time.pauses.set(0);
        let late =
            pool.run_until(flights.run("k", || async { 10 }, time.pause(10), time.now(), 1_000));
        assert_eq!((late, time.pauses.get()), ((10, true), 0));
    }

    /// A leader whose future is dropped releases its flight at once: a follower waiting on it
    /// takes over at its next check, long before the deadline.
    #[test]
    fn a_dropped_leader_releases_its_flight() {
        use std::task::{Context, Poll};
        let flights: Rc<SingleFlight<u32>> = Rc::default();
        let time = TestTime::default();
        let mut pool = LocalPool::new();
        let (leader, handle) = {
            let (flights, time) = (flights.clone(), time.clone());
            async move {
                flights
                    .run(
                        "k",
                        futures::future::pending::<u32>,
                        time.pause(10),
                        time.now(),
                        60_000,
                    )
                    .await
            }
            .remote_handle()
        };
        pool.spawner().spawn_local(leader).unwrap();
        pool.run_until_stalled();
        assert_eq!(flights.in_flight(), 1);
        // A follower, polled by hand: three checks, each followed by a pause.
        let follower = flights.run("k", || async { 11 }, time.pause(10), time.now(), 60_000);
        let mut follower = std::pin::pin!(follower);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..3 {
            assert!(follower.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(time.pauses.get(), 3);
        drop(handle); // the runtime drops the cancelled leader's future
        pool.run_until_stalled();
        assert_eq!(flights.in_flight(), 0, "the guard released the flight");
        let mut done = None;
        for _ in 0..3 {
            if let Poll::Ready(out) = follower.as_mut().poll(&mut cx) {
                done = Some(out);
                break;
            }
        }
        assert_eq!(done, Some((11, true)));
        assert!(
            time.pauses.get() <= 4,
            "took over at its next check, not at the deadline: {} pauses",
            time.pauses.get()
        );
    }
}
