//! Tuning values and their defaults, in one place: the configuration (`config`) reads them
//! from the environment; every layer takes them from here.

/// Default for `INDEX_TIMEOUT_MS`: generous for a cross-continent HTTPS round trip.
pub const DEFAULT_INDEX_TIMEOUT_MS: u32 = 2_000;
/// Default for `REFS_BUDGET_BYTES`: half of the isolate's 128 MB.
pub const DEFAULT_REFS_BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// Default for `REFS_REVALIDATE_SECONDS`.
pub const DEFAULT_REFS_REVALIDATE_SECONDS: u32 = 300;
/// Default for `ORIGIN_TIMEOUT_MS`.
pub const DEFAULT_ORIGIN_TIMEOUT_MS: u32 = 30_000;
/// Default for `LEASE_MS`.
pub const DEFAULT_LEASE_MS: u32 = 60_000;
/// Default for `LEASE_WAIT_MS`.
pub const DEFAULT_LEASE_WAIT_MS: u32 = 5_000;
/// Default for `DATASETS_REFRESH_SECONDS`.
pub const DEFAULT_DATASETS_REFRESH_SECONDS: u32 = 10;
/// Default for `ORPHAN_GRACE_SECONDS`: an hour, far beyond the 30 s a write-back may run.
pub const DEFAULT_ORPHAN_GRACE_SECONDS: u32 = 3_600;
/// Default for `REFS_MAX_BYTES`: 100 MiB, about a million JSON references (parsed, they must
/// also fit in `REFS_BUDGET_BYTES`).
pub const DEFAULT_REFS_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// Default for `REFS_TIMEOUT_MS`.
pub const DEFAULT_REFS_TIMEOUT_MS: u32 = 60_000;
/// Default for `STORAGE_TIMEOUT_MS`.
pub const DEFAULT_STORAGE_TIMEOUT_MS: u32 = 10_000;
/// Default for `SWEEP_ORPHAN_PAGES`: 5,000 objects and 30 subrequests per sweep.
pub const DEFAULT_SWEEP_ORPHAN_PAGES: u32 = 10;
/// Default for `TOTAL_EVICTIONS_PER_RUN`: 800 subrequests (paid plan); the Free plan's 50 allow
/// about 5 next to the rest of a sweep.
pub const DEFAULT_TOTAL_EVICTIONS_PER_RUN: u32 = 200;
/// Default for `KEY_PREFIX`.
pub const DEFAULT_KEY_PREFIX: &str = "zec";

/// How often a request waiting on another instance's fetch polls for its object.
pub const LEASE_POLL_MS: u64 = 50;

/// The tuning values requests and sweeps run with, in the units the code uses (ms, counts).
/// Built once from the configuration (`Config::settings`); [`Settings::default`] holds the
/// documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long one origin request may take.
    pub origin_timeout_ms: u64,
    /// How long a cross-instance fetch lease lasts (longer than an origin fetch normally takes).
    pub lease_ms: u64,
    /// How long a request waits for another instance's fetch before going to the origin itself.
    pub lease_wait_ms: u64,
    /// How often it polls meanwhile.
    pub lease_poll_ms: u64,
    /// The capacity of all datasets together, and its policy.
    pub total_capacity: Option<crate::policy::capacity::Limit>,
    /// How old a stored object no entry holds must be before a sweep deletes it (a write-back
    /// stores its object before it indexes it).
    pub orphan_grace_ms: u64,
    /// How many storage listing pages a sweep scans for orphans.
    pub orphan_pages: u32,
    /// The most deployment-wide evictions per request or sweep.
    pub total_evictions: usize,
    /// How often a source file served from the cache is checked for a new validator, per
    /// isolate (`REFS_REVALIDATE_SECONDS`; 0: never).
    pub file_check_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            origin_timeout_ms: u64::from(DEFAULT_ORIGIN_TIMEOUT_MS),
            lease_ms: u64::from(DEFAULT_LEASE_MS),
            lease_wait_ms: u64::from(DEFAULT_LEASE_WAIT_MS),
            lease_poll_ms: LEASE_POLL_MS,
            total_capacity: None,
            orphan_grace_ms: u64::from(DEFAULT_ORPHAN_GRACE_SECONDS) * 1000,
            orphan_pages: DEFAULT_SWEEP_ORPHAN_PAGES,
            total_evictions: DEFAULT_TOTAL_EVICTIONS_PER_RUN as usize,
            file_check_ms: u64::from(DEFAULT_REFS_REVALIDATE_SECONDS) * 1000,
        }
    }
}
