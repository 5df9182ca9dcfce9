//! Counters of what the server has served, for benchmarks (`GET /__stats`).
//!
//! All counters are relaxed atomics: each is exact, a snapshot taken while
//! requests are in flight may mix values from slightly different instants.
//!
//! | counter | counts |
//! | --- | --- |
//! | `http_requests` | HTTP round trips answered, whatever their outcome, except `/__stats` itself |
//! | `commands` | Redis commands asked for: 1 per single command, N per pipeline or transaction of N |
//! | `single_commands` | requests carrying one command (`POST /` or the path form) |
//! | `pipelines` | `POST /pipeline` requests |
//! | `transactions` | `POST /multi-exec` requests |
//! | `errors` | `{"error": …}` objects answered: per failed command inside a pipeline or transaction, plus every request answered with an error |
//! | `bytes_in` / `bytes_out` | request and response body bytes |
//! | `eval` / `evalsha` | commands among `commands` that ran a Lua script by its text / by its SHA-1 |

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{json, Value as Json};

/// The kind of request being counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One command (`POST /` or the path form).
    Single,
    /// `POST /pipeline`.
    Pipeline,
    /// `POST /multi-exec`.
    Transaction,
}

/// Process-wide counters; see the module docs for their meaning.
#[derive(Debug)]
pub struct Stats {
    http_requests: AtomicU64,
    commands: AtomicU64,
    single_commands: AtomicU64,
    pipelines: AtomicU64,
    transactions: AtomicU64,
    errors: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    eval: AtomicU64,
    evalsha: AtomicU64,
    reset_at: std::sync::Mutex<Instant>,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// All counters at zero.
    pub fn new() -> Self {
        Self {
            http_requests: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            single_commands: AtomicU64::new(0),
            pipelines: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            eval: AtomicU64::new(0),
            evalsha: AtomicU64::new(0),
            reset_at: std::sync::Mutex::new(Instant::now()),
        }
    }

    /// One HTTP round trip with `bytes_in` request body bytes.
    pub fn http_request(&self, bytes_in: usize) {
        self.http_requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes_in as u64, Ordering::Relaxed);
    }

    /// A request of `kind` carrying `commands` commands.
    pub fn batch(&self, kind: Kind, commands: usize) {
        let counter = match kind {
            Kind::Single => &self.single_commands,
            Kind::Pipeline => &self.pipelines,
            Kind::Transaction => &self.transactions,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.commands.fetch_add(commands as u64, Ordering::Relaxed);
    }

    /// Counts the script commands among commands named `names` (`EVAL`, `EVALSHA`, any case).
    pub fn scripts<'a>(&self, names: impl IntoIterator<Item = &'a [u8]>) {
        for name in names {
            if name.eq_ignore_ascii_case(b"EVAL") {
                self.eval.fetch_add(1, Ordering::Relaxed);
            } else if name.eq_ignore_ascii_case(b"EVALSHA") {
                self.evalsha.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// `n` error objects answered.
    pub fn errors(&self, n: usize) {
        self.errors.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A response body of `n` bytes.
    pub fn bytes_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        for counter in [
            &self.http_requests,
            &self.commands,
            &self.single_commands,
            &self.pipelines,
            &self.transactions,
            &self.errors,
            &self.bytes_in,
            &self.bytes_out,
            &self.eval,
            &self.evalsha,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        *self.reset_at.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// The counters as the JSON object served by `GET /__stats`.
    pub fn snapshot(&self) -> Json {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let since = self
            .reset_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        json!({
            "http_requests": get(&self.http_requests),
            "commands": get(&self.commands),
            "single_commands": get(&self.single_commands),
            "pipelines": get(&self.pipelines),
            "transactions": get(&self.transactions),
            "errors": get(&self.errors),
            "bytes_in": get(&self.bytes_in),
            "bytes_out": get(&self.bytes_out),
            "eval": get(&self.eval),
            "evalsha": get(&self.evalsha),
            "seconds_since_reset": since.as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let stats = Stats::new();
        stats.http_request(10);
        stats.batch(Kind::Pipeline, 5);
        stats.http_request(3);
        stats.batch(Kind::Single, 1);
        stats.http_request(0);
        stats.batch(Kind::Transaction, 2);
        stats.errors(2);
        stats.bytes_out(7);
        stats.scripts([&b"EVALSHA"[..], b"get", b"eval", b"evalsha"]);
        let snap = stats.snapshot();
        let expected = [
            ("http_requests", 3),
            ("commands", 8),
            ("single_commands", 1),
            ("pipelines", 1),
            ("transactions", 1),
            ("errors", 2),
            ("bytes_in", 13),
            ("bytes_out", 7),
            ("eval", 1),
            ("evalsha", 2),
        ];
        for (key, want) in expected {
            assert_eq!(snap[key], json!(want), "{key}");
        }
        stats.reset();
        let snap = stats.snapshot();
        for (key, _) in expected {
            assert_eq!(snap[key], json!(0), "{key} after reset");
        }
    }
}
