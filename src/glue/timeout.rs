//! [`within`]: a runtime timer raced against any future, for every call that waits on I/O.

use futures::future::{select, Either};
use futures::pin_mut;
use worker::Delay;

/// `Some(output)` when `future` finishes within `ms`, `None` when the timer wins (the future is
/// dropped; for a `fetch`, abort its controller as well).
pub async fn within<T>(ms: u32, future: impl std::future::Future<Output = T>) -> Option<T> {
    let timer = Delay::from(std::time::Duration::from_millis(u64::from(ms)));
    pin_mut!(future);
    match select(future, timer).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(((), _)) => None,
    }
}
