//! Clocks for tests: one stuck at an instant, one that moves only when slept on.

use std::cell::Cell;

use super::{handle, yield_once};
use crate::clock::Clock;

/// A clock stuck at one instant (`sleep` does not move it).
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        self.0
    }
    async fn sleep(&self, _ms: u64) {}
}

handle!(
    /// A clock that only moves when slept on or advanced, counting sleeps.
    ManualClock => ManualClockState
);

/// The state of a [`ManualClock`].
#[derive(Default)]
pub struct ManualClockState {
    pub now: Cell<u64>,
    pub sleeps: Cell<usize>,
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.get()
    }
    async fn sleep(&self, ms: u64) {
        self.sleeps.set(self.sleeps.get() + 1);
        self.now.set(self.now.get() + ms);
        // Let other tasks run, as a real timer would.
        yield_once().await;
    }
}
