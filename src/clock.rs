//! The current time and a way to wait, passed in: core code never calls `SystemTime::now()`.

/// The current time, passed in so that core code never calls `SystemTime::now()` (it panics on
/// `wasm32-unknown-unknown`), and a way to wait.
#[allow(async_fn_in_trait)]
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// Waits `ms` milliseconds (a timer on wasm; the test clock just advances).
    async fn sleep(&self, ms: u64);
}
