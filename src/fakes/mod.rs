//! In-memory fakes of the backend traits, for unit tests only (`#[cfg(test)]`), a file per
//! trait: `index`, `store`, `origin` (origin and reference source), `transport`, `clock`.
//!
//! They count calls and inject faults, so tests can assert "written once", "deleted after a
//! failed read" and the like. Integration tests in `tests/` cannot see this module.

mod clock;
mod index;
mod origin;
mod store;
mod transport;

pub use clock::{FixedClock, ManualClock};
pub use index::FakeIndex;
pub use origin::{FakeOrigin, FakeRefsSource};
pub use store::{InMemoryStore, StoreFault};
pub use transport::CannedTransport;

/// A cheap handle to a fake's state: tests keep a clone and hand another to the code under
/// test, both seeing the same state (no forwarding impls over `Rc<T>`). Configure a fake
/// (`DerefMut`) before cloning it.
macro_rules! handle {
    ($(#[$doc:meta])* $handle:ident => $state:ident) => {
        $(#[$doc])*
        #[derive(Clone, Default)]
        pub struct $handle(std::rc::Rc<$state>);

        impl std::ops::Deref for $handle {
            type Target = $state;
            fn deref(&self) -> &$state {
                &self.0
            }
        }

        impl std::ops::DerefMut for $handle {
            fn deref_mut(&mut self) -> &mut $state {
                std::rc::Rc::get_mut(&mut self.0).expect("a fake is configured before it is shared")
            }
        }

        impl From<$state> for $handle {
            fn from(state: $state) -> Self {
                Self(std::rc::Rc::new(state))
            }
        }
    };
}

pub(crate) use handle;

/// The fakes as a platform: what the unit tests of the request handler and the cache path run on.
pub struct Fakes;

impl crate::platform::Platform for Fakes {
    type Index = FakeIndex;
    type Store = InMemoryStore;
    type Origin = FakeOrigin;
    type Clock = ManualClock;
    type Refs = FakeRefsSource;
}

/// Pending once (and woken at once), so other tasks of a local executor get to run.
pub async fn yield_once() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}
