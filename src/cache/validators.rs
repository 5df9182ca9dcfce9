//! Stale kerchunk bytes: an index entry records its source file's validator (`ETag`, else
//! `Last-Modified`), and the index records the validator last seen for each file. A lookup
//! returns the file's, and an entry read from another version of the file is not served (it
//! is forgotten and read again). The file's validator is learned from every origin answer and,
//! for files only ever served from the cache, from a periodic conditional check run after the
//! response: a one-byte ranged `GET` with `If-None-Match` (or `If-Modified-Since`), at most once
//! per file per isolate per check interval (`REFS_REVALIDATE_SECONDS`), usually a `304` with no
//! body.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::cache::single_flight::SingleFlight;
use crate::error::Error;
use crate::index::entry::IndexEntry;
use crate::index::Index;
use crate::origin::auth::OriginAuth;
use crate::origin::url_policy::{host_port, redact, HostPolicy};
use crate::origin::{ByteRange, Origin};
use crate::source::files::{file_id, FileMeta};

/// The most files an isolate remembers checking (beyond it, old checks are forgotten).
const MAX_TRACKED_FILES: usize = 10_000;

/// When this isolate last checked (or learned) each file's validator, and what it knows of the
/// files of block mode (their [`FileMeta`], learned from the index or the origin). A cheap
/// handle: clones share the tables.
#[derive(Clone, Default)]
pub struct FileChecks {
    checked: Rc<RefCell<HashMap<String, u64>>>,
    metas: Rc<RefCell<HashMap<String, (FileMeta, u64)>>>,
    probes: Rc<SingleFlight<Result<FileMeta, Error>>>,
    /// The validator each file had in the index's last answer to this isolate: stored bytes of
    /// another version of the file are not served before the index is asked.
    validators: Rc<RefCell<HashMap<String, String>>>,
}

impl std::fmt::Debug for FileChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileChecks")
            .field("checked", &self.checked.borrow().len())
            .field("metas", &self.metas.borrow().len())
            .field("validators", &self.validators.borrow().len())
            .finish_non_exhaustive()
    }
}

impl FileChecks {
    /// The isolate's single flight of block-mode size probes (one per file at a time).
    #[must_use]
    pub fn probes(&self) -> &Rc<SingleFlight<Result<FileMeta, Error>>> {
        &self.probes
    }

    /// The meta of the file at `url` learned at most `max_age_ms` before `now_ms`.
    #[must_use]
    pub fn meta(&self, url: &str, now_ms: u64, max_age_ms: u64) -> Option<FileMeta> {
        self.metas
            .borrow()
            .get(url)
            .filter(|(_, at)| now_ms.saturating_sub(*at) < max_age_ms)
            .map(|(meta, _)| meta.clone())
    }

    /// Records that the file at `url` was just asked of the origin (a probe counts as a check).
    pub fn checked(&self, url: &str, now_ms: u64) {
        let mut checks = self.checked.borrow_mut();
        if checks.len() >= MAX_TRACKED_FILES && !checks.contains_key(url) {
            checks.clear();
        }
        checks.insert(url.to_owned(), now_ms);
    }

    /// Remembers `validator` as the current one of the file at `url`, as the index just said
    /// (bounded like the checks).
    pub fn learn_validator(&self, url: &str, validator: &str) {
        let mut validators = self.validators.borrow_mut();
        if validators.get(url).is_some_and(|known| known == validator) {
            return;
        }
        if validators.len() >= MAX_TRACKED_FILES && !validators.contains_key(url) {
            validators.clear();
        }
        validators.insert(url.to_owned(), validator.to_owned());
    }

    /// Whether stored bytes read under `validator` (`None`: not known) may be of another
    /// version of the file at `url` than the one the index last said is current: only bytes
    /// whose validator is that one, or of a file this isolate knows no validator of, are not.
    #[must_use]
    pub fn may_be_stale(&self, url: &str, validator: Option<&str>) -> bool {
        match self.validators.borrow().get(url) {
            Some(known) => validator != Some(known.as_str()),
            None => false,
        }
    }

    /// Remembers `meta` as the file's at `now_ms` (bounded like the checks).
    pub fn remember(&self, url: &str, meta: FileMeta, now_ms: u64) {
        let mut metas = self.metas.borrow_mut();
        if metas.len() >= MAX_TRACKED_FILES && !metas.contains_key(url) {
            metas.clear();
        }
        metas.insert(url.to_owned(), (meta, now_ms));
    }

    /// Whether the file at `url`, known current at `known_at_ms` (its entry's creation), is due
    /// for a check at `now_ms` with checks `every_ms` apart (0: never); a due check is recorded
    /// as done.
    #[must_use]
    pub fn due(&self, url: &str, known_at_ms: u64, now_ms: u64, every_ms: u64) -> bool {
        if every_ms == 0 {
            return false;
        }
        let mut checks = self.checked.borrow_mut();
        let last = checks.get(url).copied().unwrap_or(0).max(known_at_ms);
        if now_ms.saturating_sub(last) < every_ms {
            return false;
        }
        if checks.len() >= MAX_TRACKED_FILES {
            checks.retain(|_, at| now_ms.saturating_sub(*at) < every_ms);
            if checks.len() >= MAX_TRACKED_FILES {
                checks.clear();
            }
        }
        checks.insert(url.to_owned(), now_ms);
        true
    }
}

/// Whether `entry` was read from another version of its file than the one last seen.
#[must_use]
pub fn is_stale(entry: &IndexEntry, file_validator: Option<&str>) -> bool {
    match (entry.origin_validator.as_deref(), file_validator) {
        (Some(own), Some(current)) => own != current,
        _ => false,
    }
}

/// A conditional check of one source file, run after the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// The file.
    pub url: String,
    /// The validator the cached entries carry.
    pub validator: String,
    /// The hosts the dataset may fetch from.
    pub hosts: HostPolicy,
    /// The dataset's signing identity, for a private origin.
    pub auth: Option<OriginAuth>,
    /// The validator is a block-mode [`FileMeta`] (size and both validators), recorded under
    /// the file's block-mode identity ([`file_id`]).
    pub sized: bool,
}

/// Asks the origin whether `check`'s file still has its validator and records the new one when
/// it changed (then lookups stop serving the old entries).
///
/// # Errors
/// What failed, for the log: the URL not allowed, no answer, the index not recording.
pub async fn check_file(
    origin: &impl Origin,
    index: &impl Index,
    check: &FileCheck,
    now_ms: u64,
) -> Result<(), String> {
    let shown = redact(&check.url);
    let target = check
        .hosts
        .check_chunk_url(&check.url)
        .map_err(|e| format!("check {shown}: {e}"))?;
    let mut headers = match &check.auth {
        Some(auth) => auth
            .headers(&target, &host_port(&target), now_ms)
            .map_err(|e| format!("check {shown}: {e}"))?,
        None => Vec::new(),
    };
    let sized = if check.sized {
        FileMeta::from_validator(&check.validator)
    } else {
        None
    };
    let condition = match &sized {
        Some(meta) => match (&meta.etag, &meta.last_modified) {
            (Some(etag), _) => Some(("if-none-match", etag.clone())),
            (None, Some(date)) => Some(("if-modified-since", date.clone())),
            (None, None) => None,
        },
        // An ETag is quoted (`"…"` or `W/"…"`); anything else is a Last-Modified date.
        None if check.validator.ends_with('"') => Some(("if-none-match", check.validator.clone())),
        None => Some(("if-modified-since", check.validator.clone())),
    };
    if let Some((name, value)) = condition {
        headers.push((name.to_owned(), value));
    }
    let first_byte = ByteRange {
        offset: 0,
        length: 1,
    };
    let answer = origin
        .get(target.as_str(), Some(first_byte), &headers)
        .await
        .map_err(|e| format!("check {shown}: {e}"))?;
    if !matches!(answer.status, 200 | 206) {
        // 304: unchanged; anything else teaches nothing.
        return Ok(());
    }
    let (record, current) = if check.sized {
        let meta = FileMeta::of_answer(&answer);
        (
            file_id(&check.url, check.auth.as_ref()),
            meta.map(|m| m.validator()),
        )
    } else {
        (check.url.clone(), answer.etag.or(answer.last_modified))
    };
    match current {
        Some(current) if current != check.validator => index
            .set_file_validator(&record, &current, now_ms)
            .await
            .map_err(|e| format!("check {shown}: {e}")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file is due once per interval, counted from its entry's creation or the last check.
    #[test]
    fn checks_are_spaced() {
        let checks = FileChecks::default();
        assert!(!checks.due("u", 0, 1_000, 0), "0 turns checks off");
        assert!(
            !checks.due("u", 900, 1_000, 500),
            "the entry itself is recent"
        );
        assert!(checks.due("u", 0, 1_000, 500));
        assert!(!checks.due("u", 0, 1_400, 500));
        assert!(checks.due("u", 0, 1_500, 500));
        assert!(checks.due("v", 0, 1_500, 500), "per file");
    }

    /// Only an entry whose validator differs from the file's recorded one is stale.
    #[test]
    fn staleness() {
        let mut entry = IndexEntry {
            object_key: "o".into(),
            size: 1,
            checksum: "c".into(),
            created_ms: 0,
            last_access_ms: 0,
            hits: 0,
            fetch_ms: 0,
            origin_validator: Some("\"a\"".into()),
        };
        assert!(!is_stale(&entry, Some("\"a\"")));
        assert!(is_stale(&entry, Some("\"b\"")));
        assert!(!is_stale(&entry, None));
        entry.origin_validator = None;
        assert!(!is_stale(&entry, Some("\"b\"")));
    }
}
