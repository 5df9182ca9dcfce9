//! A per-isolate circuit breaker in front of the index transport: when the index keeps failing
//! (timeouts, refused connections, 5xx), an outage should cost one timeout, not one per read.
//!
//! Closed: every call goes through; [`FAILURES_TO_OPEN`] failures in a row open it. Open: calls
//! fail at once ([`TransportError::CircuitOpen`]) for [`OPEN_MS`]. Then one call is let through
//! as a probe (half open): its success closes the circuit, its failure opens it again. Readers
//! meanwhile are served as in any index outage (stored bytes younger than the TTL, else the
//! origin).
//!
//! Pure state plus [`CircuitTransport`], a wrapper over any [`UpstashTransport`]; time comes
//! from a [`Clock`].

use std::cell::Cell;
use std::rc::Rc;

use crate::clock::Clock;
use crate::index::transport::{RawReply, TransportError, UpstashTransport};
use crate::upstash::HttpCall;

/// Failures in a row that open the circuit.
pub const FAILURES_TO_OPEN: u32 = 3;
/// How long the circuit stays open before a probe.
pub const OPEN_MS: u64 = 5_000;

/// The breaker's state, shared by every request of an isolate.
#[derive(Debug, Default)]
pub struct Circuit {
    failures: Cell<u32>,
    /// When open: until when.
    open_until_ms: Cell<Option<u64>>,
    /// When the probe now out was let through (half open): other calls still fail fast. A probe
    /// whose request was cancelled never reports back, so after [`OPEN_MS`] another one goes.
    probe_since_ms: Cell<Option<u64>>,
}

impl Circuit {
    /// Whether a call may go out now; `false` while open (and while a probe is out).
    #[must_use]
    pub fn admit(&self, now_ms: u64) -> bool {
        let Some(until) = self.open_until_ms.get() else {
            return true;
        };
        let probe_out = self
            .probe_since_ms
            .get()
            .is_some_and(|since| now_ms.saturating_sub(since) < OPEN_MS);
        if now_ms >= until && !probe_out {
            self.probe_since_ms.set(Some(now_ms));
            return true;
        }
        false
    }

    /// Records a call's outcome.
    pub fn record(&self, ok: bool, now_ms: u64) {
        self.probe_since_ms.set(None);
        if ok {
            self.failures.set(0);
            self.open_until_ms.set(None);
            return;
        }
        let failures = self.failures.get().saturating_add(1);
        self.failures.set(failures);
        if failures >= FAILURES_TO_OPEN || self.open_until_ms.get().is_some() {
            self.open_until_ms.set(Some(now_ms.saturating_add(OPEN_MS)));
        }
    }

    /// Whether calls currently fail fast.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.open_until_ms.get().is_some()
    }
}

/// An answer that says the index is failing: no answer at all, or a 5xx.
fn failed(outcome: &Result<RawReply, TransportError>) -> bool {
    match outcome {
        Ok(reply) => reply.status >= 500,
        Err(_) => true,
    }
}

/// `T` behind the isolate's [`Circuit`].
#[derive(Debug, Clone)]
pub struct CircuitTransport<T, C> {
    inner: T,
    circuit: Rc<Circuit>,
    clock: C,
}

impl<T, C> CircuitTransport<T, C> {
    /// `inner` guarded by `circuit`, timed by `clock`.
    pub fn new(inner: T, circuit: Rc<Circuit>, clock: C) -> Self {
        Self {
            inner,
            circuit,
            clock,
        }
    }
}

impl<T: UpstashTransport, C: Clock> UpstashTransport for CircuitTransport<T, C> {
    async fn send(&self, call: &HttpCall) -> Result<RawReply, TransportError> {
        if !self.circuit.admit(self.clock.now_ms()) {
            return Err(TransportError::CircuitOpen);
        }
        let outcome = self.inner.send(call).await;
        self.circuit.record(!failed(&outcome), self.clock.now_ms());
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{CannedTransport, FixedClock};
    use crate::upstash::Command;
    use futures::executor::block_on;

    /// Three failures open it; while open nothing is sent; after `OPEN_MS` one probe goes out,
    /// and its outcome closes or reopens the circuit.
    #[test]
    fn opens_after_failures_and_probes_to_close() {
        let circuit = Circuit::default();
        for i in 0..FAILURES_TO_OPEN {
            assert!(circuit.admit(0), "call {i} is admitted while closed");
            circuit.record(false, 0);
        }
        assert!(circuit.is_open());
        assert!(!circuit.admit(OPEN_MS - 1));
        assert!(circuit.admit(OPEN_MS), "the probe");
        assert!(!circuit.admit(OPEN_MS), "only one probe at a time");
        circuit.record(false, OPEN_MS);
        assert!(!circuit.admit(2 * OPEN_MS - 1), "a failed probe reopens it");
        assert!(circuit.admit(2 * OPEN_MS));
        // That probe's request was cancelled: it never reports. Another goes after OPEN_MS.
        assert!(!circuit.admit(3 * OPEN_MS - 1));
        assert!(circuit.admit(3 * OPEN_MS));
        circuit.record(true, 3 * OPEN_MS);
        assert!(!circuit.is_open());
        assert!(circuit.admit(3 * OPEN_MS));
    }

    /// Successes in between reset the count: sporadic failures never open it.
    #[test]
    fn sporadic_failures_keep_it_closed() {
        let circuit = Circuit::default();
        for _ in 0..10 {
            circuit.record(false, 0);
            circuit.record(false, 0);
            circuit.record(true, 0);
        }
        assert!(!circuit.is_open());
    }

    /// The transport wrapper counts timeouts and 5xx answers, and fails fast while open
    /// without sending.
    #[test]
    fn transport_fails_fast_while_open() {
        let circuit = Rc::new(Circuit::default());
        let down = CircuitTransport::new(
            CannedTransport::failing(TransportError::Timeout(2_000)),
            Rc::clone(&circuit),
            FixedClock(0),
        );
        let call = HttpCall::single("t", &Command::new("PING"));
        for _ in 0..FAILURES_TO_OPEN {
            assert_eq!(
                block_on(down.send(&call)),
                Err(TransportError::Timeout(2_000))
            );
        }
        assert_eq!(block_on(down.send(&call)), Err(TransportError::CircuitOpen));
        assert_eq!(down.inner.sent.borrow().len(), FAILURES_TO_OPEN as usize);

        let failing = CircuitTransport::new(
            CannedTransport::answering(503, r#"{"error":"down"}"#),
            Rc::new(Circuit::default()),
            FixedClock(0),
        );
        for _ in 0..FAILURES_TO_OPEN {
            assert!(block_on(failing.send(&call)).is_ok());
        }
        assert!(failing.circuit.is_open());
        let refused = CircuitTransport::new(
            CannedTransport::answering(401, r#"{"error":"WRONGPASS"}"#),
            Rc::new(Circuit::default()),
            FixedClock(0),
        );
        for _ in 0..5 {
            assert!(block_on(refused.send(&call)).is_ok());
        }
        assert!(
            !refused.circuit.is_open(),
            "a refused token is not an outage"
        );
    }
}
