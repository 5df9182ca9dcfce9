//! `GET /api/health`: probes the index (one `PING`) and the chunk store (put, get and delete of a
//! probe object) at the same time and reports each as ok or failed.
//!
//! Generic over the backend traits; the glue supplies the real ones. Anyone may call it, so an
//! isolate probes at most once every [`HEALTH_CACHE_MS`] and answers the last report meanwhile
//! ([`HealthCache`]); failures are reported as short causes, never the raw error text (which
//! could carry a server's reply or a URL).

use std::cell::RefCell;

use futures::join;
use serde::Serialize;

use crate::clock::Clock;
use crate::index::{Index, IndexError};
use crate::store::{ChunkStore, ObjectMeta, StoreError};

/// How long an isolate reuses its last health report.
pub const HEALTH_CACHE_MS: u64 = 5_000;

/// The isolate's last report and when it was made.
#[derive(Debug, Default)]
pub struct HealthCache {
    last: RefCell<Option<(u64, HealthReport)>>,
}

impl HealthCache {
    /// The last report if it is younger than [`HEALTH_CACHE_MS`], else a fresh probe (kept).
    pub async fn report(
        &self,
        index: &impl Index,
        store: &impl ChunkStore,
        clock: &impl Clock,
        probe_key: &str,
    ) -> HealthReport {
        let now = clock.now_ms();
        if let Some((at, report)) = &*self.last.borrow() {
            if now.saturating_sub(*at) < HEALTH_CACHE_MS {
                return report.clone();
            }
        }
        let report = check_health(index, store, clock, probe_key).await;
        *self.last.borrow_mut() = Some((now, report.clone()));
        report
    }
}

/// The result of probing one dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// Whether the dependency did everything asked of it.
    pub ok: bool,
    /// How long the probe took.
    pub ms: u64,
    /// What failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The whole health answer, serialised as the response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// `"ok"` when every probe passed, else `"unavailable"`.
    pub status: &'static str,
    /// Names of the failed dependencies (`index`, `storage`), empty when healthy.
    pub failed: Vec<&'static str>,
    /// The index probe.
    pub index: Probe,
    /// The storage probe.
    pub storage: Probe,
}

impl HealthReport {
    /// 200 when healthy, 503 otherwise.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        if self.failed.is_empty() {
            200
        } else {
            503
        }
    }
}

/// Probes `index` and `store` concurrently. `probe_key` must be unique per call (the glue uses a
/// random suffix): R2 accepts one write per second per key, and concurrent checks must not collide.
pub async fn check_health(
    index: &impl Index,
    store: &impl ChunkStore,
    clock: &impl Clock,
    probe_key: &str,
) -> HealthReport {
    let index_probe = timed(clock, async {
        index.ping().await.map_err(|e| index_cause(&e).to_owned())
    });
    let storage_probe = timed(clock, probe_store(store, probe_key, clock.now_ms()));
    let (index, storage) = join!(index_probe, storage_probe);
    let failed: Vec<&'static str> = [("index", &index), ("storage", &storage)]
        .into_iter()
        .filter(|(_, probe)| !probe.ok)
        .map(|(name, _)| name)
        .collect();
    HealthReport {
        status: if failed.is_empty() {
            "ok"
        } else {
            "unavailable"
        },
        failed,
        index,
        storage,
    }
}

/// Writes a small object, reads it back, compares, and deletes it (also after a mismatch).
async fn probe_store(store: &impl ChunkStore, key: &str, nonce: u64) -> Result<(), String> {
    let written = format!("zarr-edge-cache health probe {nonce}").into_bytes();
    store
        .put(key, written.clone(), &ObjectMeta::default())
        .await
        .map_err(|e| format!("put failed: {}", store_cause(&e)))?;
    let read = match store.get(key).await {
        Ok(Some(object)) => store.read_body(object.body).await.map(Some),
        other => other.map(|_| None),
    };
    let deleted = store.delete(key).await;
    match read {
        Err(e) => return Err(format!("get failed: {}", store_cause(&e))),
        Ok(None) => return Err("get found nothing right after put".into()),
        Ok(Some(bytes)) if bytes != written => {
            return Err(format!(
                "get returned {} bytes that differ from the {} written",
                bytes.len(),
                written.len()
            ))
        }
        Ok(Some(_)) => {}
    }
    deleted.map_err(|e| format!("delete failed: {}", store_cause(&e)))
}

/// A short cause for an index failure. The messages come from `index` and `upstash::reply`.
fn index_cause(error: &IndexError) -> &'static str {
    match error {
        IndexError::Protocol(_) => "the index answered something that is not the Upstash protocol",
        IndexError::Unavailable(text) if text.starts_with("no answer within") => "timeout",
        IndexError::Unavailable(text) if text.starts_with("not sent") => {
            "failing repeatedly: calls are paused for a few seconds (circuit open)"
        }
        IndexError::Unavailable(text) if text.starts_with("request failed") => "unreachable",
        IndexError::Unavailable(text)
            if text.contains("answered HTTP 401") || text.contains("answered HTTP 403") =>
        {
            "the index refused the token"
        }
        IndexError::Unavailable(_) => "the index server is failing",
    }
}

/// A short cause for a storage failure; a store that refuses the deployment is named by its
/// error code (`refused: SignatureDoesNotMatch`), which says what the operator must fix.
fn store_cause(error: &StoreError) -> String {
    match error {
        StoreError::RateLimited(_) => "rate limited".into(),
        StoreError::Retryable(text) if text.contains("no answer within") => "timeout".into(),
        StoreError::Retryable(_) => "unavailable".into(),
        StoreError::Fatal(_) => match error.fatal_code() {
            Some(code) => format!("refused: {code} (configuration)"),
            None => "refused (configuration)".into(),
        },
    }
}

async fn timed(
    clock: &impl Clock,
    work: impl std::future::Future<Output = Result<(), String>>,
) -> Probe {
    let start = clock.now_ms();
    let outcome = work.await;
    let ms = clock.now_ms().saturating_sub(start);
    Probe {
        ok: outcome.is_ok(),
        ms,
        error: outcome.err(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeIndex, FixedClock, InMemoryStore, StoreFault};
    use crate::index::IndexError;
    use crate::store::StoreError;
    use futures::executor::block_on;

    /// Both probes passing gives 200, and the probe object is gone afterwards.
    #[test]
    fn healthy_when_index_and_storage_work() {
        let store = InMemoryStore::default();
        let report = block_on(check_health(
            &FakeIndex::healthy(),
            &store,
            &FixedClock(5),
            "_health/a",
        ));
        assert_eq!(report.http_status(), 200);
        assert_eq!(report.status, "ok");
        assert!(report.failed.is_empty());
        assert_eq!(store.len(), 0, "probe object must be deleted");
        assert_eq!(store.calls(), (1, 1, 1));
    }

    /// A failing index is named, with a short cause (never the raw text), and the answer is 503.
    #[test]
    fn index_failure_is_named() {
        for (error, cause) in [
            (
                IndexError::Unavailable("request failed: connect https://x.test/ refused".into()),
                "unreachable",
            ),
            (
                IndexError::Unavailable("no answer within 2000 ms".into()),
                "timeout",
            ),
            (
                IndexError::Unavailable("index server answered HTTP 401: WRONGPASS tok".into()),
                "the index refused the token",
            ),
            (
                IndexError::Unavailable("index server answered HTTP 500: oops".into()),
                "the index server is failing",
            ),
            (
                IndexError::Protocol("body is not JSON: <html>secret".into()),
                "the index answered something that is not the Upstash protocol",
            ),
        ] {
            let report = block_on(check_health(
                &FakeIndex::failing(error),
                &InMemoryStore::default(),
                &FixedClock(5),
                "_health/b",
            ));
            assert_eq!(report.http_status(), 503);
            assert_eq!(report.failed, vec!["index"]);
            assert_eq!(report.index.error.as_deref(), Some(cause));
            assert!(report.storage.ok);
        }
    }

    /// An isolate probes at most once per [`HEALTH_CACHE_MS`]; anonymous callers cannot make it
    /// write to storage on every call.
    #[test]
    fn reports_are_reused_for_a_few_seconds() {
        let (store, cache) = (InMemoryStore::default(), HealthCache::default());
        let index = FakeIndex::healthy();
        let at = |ms| block_on(cache.report(&index, &store, &FixedClock(ms), "_health/e"));
        assert_eq!(at(1_000).status, "ok");
        at(1_000 + HEALTH_CACHE_MS - 1);
        assert_eq!(
            store.calls(),
            (1, 1, 1),
            "the second call reused the report"
        );
        at(1_000 + HEALTH_CACHE_MS);
        assert_eq!(store.calls(), (2, 2, 2));
    }

    /// Each storage fault is reported with the step that failed, and the probe is still cleaned up
    /// when the read fails or differs.
    #[test]
    fn storage_faults_are_named_by_step() {
        let cases = [
            (
                StoreFault::Put(StoreError::Retryable("R2: down at https://x/?sig=1".into())),
                "put failed: unavailable",
                0,
            ),
            (
                StoreFault::Get(StoreError::Retryable(
                    "R2 get: no answer within 5 ms".into(),
                )),
                "get failed: timeout",
                0,
            ),
            (
                StoreFault::LoseWrites,
                "get found nothing right after put",
                0,
            ),
            (StoreFault::CorruptReads, "get returned", 0),
            (
                StoreFault::Put(StoreError::from_s3(
                    "put k",
                    403,
                    Some("SignatureDoesNotMatch"),
                )),
                "put failed: refused: SignatureDoesNotMatch (configuration)",
                0,
            ),
            (
                StoreFault::Delete(StoreError::RateLimited("k".into())),
                "delete failed: rate limited",
                1,
            ),
        ];
        for (fault, want, left) in cases {
            let store = InMemoryStore::with_fault(fault);
            let report = block_on(check_health(
                &FakeIndex::healthy(),
                &store,
                &FixedClock(1),
                "_health/c",
            ));
            assert_eq!(report.failed, vec!["storage"]);
            let error = report.storage.error.unwrap_or_default();
            assert!(error.starts_with(want), "{error} should start with {want}");
            assert_eq!(store.len(), left);
        }
    }

    /// The JSON shape clients see.
    #[test]
    fn report_serialises_without_empty_errors() {
        let report = block_on(check_health(
            &FakeIndex::healthy(),
            &InMemoryStore::default(),
            &FixedClock(0),
            "_health/d",
        ));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "status": "ok", "failed": [],
                "index": {"ok": true, "ms": 0},
                "storage": {"ok": true, "ms": 0}
            })
        );
    }
}
