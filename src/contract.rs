//! What the contract suites of the I/O traits share ([`index::contract`](crate::index::contract),
//! [`store::contract`](crate::store::contract)): the outcome of one case, the report of a run,
//! and the checks a case is written with.
//!
//! The suites are library code, not `#[cfg(test)]`: the same cases run against the in-memory
//! fakes (unit tests), the real index (`tests/index_contract.rs`) and the real R2 binding inside
//! the worker (a test-only route). So a case never panics: it returns `Err` with what it saw, the
//! runner records it and goes on with the next case, and the report is plain data (serialisable,
//! so the worker can answer it as JSON).

use std::fmt::{Debug, Display};

/// What one case of a contract suite found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CaseOutcome {
    /// The case's name (what it asserts, in a few words).
    pub name: String,
    /// Whether every expectation of the case held.
    pub passed: bool,
    /// Empty when it passed; otherwise the first expectation that failed, with what was seen.
    pub detail: String,
}

/// The outcomes of a suite's cases, in the order they ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// One outcome per case.
    pub cases: Vec<CaseOutcome>,
}

impl Report {
    /// Records the outcome of the case `name`.
    pub fn record(&mut self, name: &str, outcome: Result<(), String>) {
        let (passed, detail) = match outcome {
            Ok(()) => (true, String::new()),
            Err(detail) => (false, detail),
        };
        self.cases.push(CaseOutcome {
            name: name.to_owned(),
            passed,
            detail,
        });
    }

    /// Whether every case passed (and there was at least one).
    #[must_use]
    pub fn all_passed(&self) -> bool {
        !self.cases.is_empty() && self.cases.iter().all(|c| c.passed)
    }

    /// The cases that failed.
    #[must_use]
    pub fn failures(&self) -> Vec<&CaseOutcome> {
        self.cases.iter().filter(|c| !c.passed).collect()
    }

    /// One line per failed case (`name: detail`), for a test's failure message.
    #[must_use]
    pub fn failure_text(&self) -> String {
        self.failures()
            .iter()
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `Ok` when exactly the `expected` cases ran, once each and in that order, and all passed;
    /// else what differs (a test's failure message).
    ///
    /// # Errors
    /// The cases that ran, when they are not `expected`; the failed cases otherwise.
    pub fn verify(&self, expected: &[&str]) -> Result<(), String> {
        let ran: Vec<&str> = self.cases.iter().map(|c| c.name.as_str()).collect();
        if ran != expected {
            return Err(format!(
                "ran {ran:?}, expected every case once, in order: {expected:?}"
            ));
        }
        if self.all_passed() {
            Ok(())
        } else {
            Err(format!("failed cases:\n{}", self.failure_text()))
        }
    }
}

/// `Ok` when `got == want`, else an `Err` naming `what` and both values.
#[allow(clippy::needless_pass_by_value)] // by value, so that cases compare temporaries
pub fn ensure_eq<T: PartialEq + Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

/// `Ok` when `holds`, else an `Err` with `what` (the expectation that failed).
pub fn ensure(what: &str, holds: bool) -> Result<(), String> {
    if holds {
        Ok(())
    } else {
        Err(what.to_owned())
    }
}

/// Names the call whose error fails a case: `index.lookup(…).await.call("lookup k")?`.
pub trait CallContext<T> {
    /// The value, or the error as `what: error`.
    fn call(self, what: &str) -> Result<T, String>;
}

impl<T, E: Display> CallContext<T> for Result<T, E> {
    fn call(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failed cases are recorded with their detail and do not stop the report; an empty report
    /// has not passed.
    #[test]
    fn reports_record_every_case() {
        let mut report = Report::default();
        assert!(!report.all_passed(), "nothing ran");
        report.record("one", ensure_eq("n", 1, 1));
        report.record("two", ensure_eq("n", 1, 2));
        report.record("three", ensure("holds", true));
        report.record("four", Err::<(), _>("boom").call("put k"));
        assert_eq!(report.cases.len(), 4);
        assert!(!report.all_passed());
        let failed: Vec<&str> = report.failures().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(failed, ["two", "four"]);
        assert_eq!(
            report.failure_text(),
            "two: n: got 1, want 2\nfour: put k: boom"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["cases"][1]["passed"], false);
        assert_eq!(json["cases"][0]["detail"], "");
    }
}
