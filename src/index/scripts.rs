//! The index's Lua scripts: every multi-step change of the index runs as one `EVAL`, so it is
//! atomic and one round trip.
//!
//! # Layout the scripts share
//! Scripts that touch a dataset's accounting take the dataset's keys first, in this order
//! (`index::UpstashIndex::dataset_eval`): `KEYS[1]` stats hash, `KEYS[2]` totals hash,
//! `KEYS[3]` objects hash (key → storage object), `KEYS[4..11]` the sorted sets of
//! `eviction::Order::ALL`, then script-specific keys. `ARGV[1]` is the dataset's entry key
//! prefix, `ARGV[2]` the holders key prefix, `ARGV[3]` the holder prefix (`{dataset}\n`), then
//! script-specific arguments. Entry and holders keys are derived inside the scripts from those
//! prefixes (which cached key or object is touched is only known there): this works on Redis and
//! Upstash, not on Redis Cluster.
//!
//! The scores are those of `eviction` (`lfu_score`, `gdsf_priority`), written again in Lua.
//! A cached key is *accounted* while it is a member of the sorted sets; `entries` and
//! `bytes_stored` in the stats and totals hashes count accounted keys.
//!
//! # Files and `EVALSHA`
//! Each script is a `.lua` file in `src/index/scripts/` (the dataset scripts start with
//! `prelude.lua`: names, score functions and `release`, which removes a key from the
//! accounting). The index sends `EVALSHA` with a script's SHA-1 and falls back to `EVAL` with
//! its text when Redis answers `NOSCRIPT` (as the official Upstash clients do), so a warm hit
//! sends 40 hex digits instead of the whole script.

use std::sync::OnceLock;

/// A Lua script and its SHA-1 (the name Redis caches it under), computed once.
pub struct Script {
    text: &'static str,
    sha: OnceLock<String>,
}

impl Script {
    /// A script with this text.
    #[must_use]
    pub const fn new(text: &'static str) -> Self {
        Self {
            text,
            sha: OnceLock::new(),
        }
    }

    /// The script's text.
    #[must_use]
    pub fn text(&self) -> &'static str {
        self.text
    }

    /// Its SHA-1, lower-case hex, as `SCRIPT LOAD` returns and `EVALSHA` takes it.
    pub fn sha(&self) -> &str {
        self.sha
            .get_or_init(|| sha1_smol::Sha1::from(self.text).digest().to_string())
    }
}

/// Every script, for finding the text of an `EVALSHA` that Redis does not know.
pub static ALL: [&Script; 11] = [
    &LOOKUP,
    &PUT_ENTRY,
    &FORGET,
    &CLAIM,
    &DROP_CLAIMED,
    &STATS,
    &LIST_KEYS,
    &RELEASE_LEASE,
    &SOURCE_VERSION,
    &BUMP_VERSION,
    &FILE_VALIDATOR,
];

/// The script whose SHA-1 is `sha`.
#[must_use]
pub fn by_sha(sha: &str) -> Option<&'static Script> {
    ALL.iter().copied().find(|script| script.sha() == sha)
}

/// `Index::lookup`: read the entry and, only if it is live (present, not being evicted), count
/// the hit on the entry, the dataset and the eviction orders; with no live entry, take the
/// object's lease when asked (`SET NX PX`; `mine` when the holder already has it). Returns `[datasets version, entry as read, source
/// version state, file validator, lease ('' not asked, 'granted', 'mine' (already the holder's), 'held')]`. A versioned read
/// first checks the dataset's source version record: when the reader's generation is not
/// current, or the record is stale, it answers `{'changed'|'stale', generation}` with no entry,
/// counts nothing and takes no lease.
/// Dataset keys, then `KEYS[12]` entry, `KEYS[13]` run-time datasets version, `KEYS[14]` the
/// dataset's source version record, `KEYS[15]` the source file's validator, `KEYS[16]` the
/// object's lease (empty: not asked); `ARGV[4]` now ms, `ARGV[5]` Zarr key, `ARGV[6]` the
/// reader's generation (empty: not versioned), `ARGV[7]` how old the record may be (ms),
/// `ARGV[8]` `1` to read the file's validator, `ARGV[9]` the lease holder, `ARGV[10]` its TTL.
pub static LOOKUP: Script = Script::new(concat!(
    include_str!("scripts/prelude.lua"),
    include_str!("scripts/lookup.lua")
));

/// `Index::record_miss` with a stored entry and `Index::adopt`: replace the key's entry (its
/// old accounting released first), account it in every order and in its object's holders, and
/// count the read (a miss from the origin, or a hit on adopted bytes). Returns the dataset's and
/// the total stored bytes, for the capacity check. When a removal is deleting the object
/// ([`CLAIM`] marked it), only the read is counted and `{'deleting'}` returned: an entry must
/// not vouch for bytes that are about to go.
/// Dataset keys, then `KEYS[12]` entry, `KEYS[13]` the set of datasets with cached keys;
/// `ARGV[4]` Zarr key, `ARGV[5]` TTL ms, `ARGV[6]` now ms,
/// `ARGV[7]` `miss` or `hit`, `ARGV[8]` origin bytes, `ARGV[9]` object key, `ARGV[10]` size,
/// `ARGV[11]` fetch ms, `ARGV[12]` created ms, `ARGV[13]` hits so far, `ARGV[14..]` the entry's
/// `HSET` field/value pairs.
pub static PUT_ENTRY: Script = Script::new(concat!(
    include_str!("scripts/prelude.lua"),
    include_str!("scripts/put_entry.lua")
));

/// `Index::forget`: the entry's bytes are missing from storage. Delete the entry and undo the
/// hit only if it is still that entry (same object and creation time), releasing its accounting.
/// Dataset keys, then `KEYS[12]` entry; `ARGV[4]` Zarr key, `ARGV[5]` object key, `ARGV[6]`
/// created ms, `ARGV[7]` size.
pub static FORGET: Script = Script::new(concat!(
    include_str!("scripts/prelude.lua"),
    include_str!("scripts/forget.lua")
));

/// `Index::claim`: choose keys to remove and take them out of the accounting, marking their
/// entries `evicting` with a token (lookups then treat them as absent) until
/// [`DROP_CLAIMED`] deletes them, after the caller deleted the objects nobody holds any more.
/// Expired keys are always claimed first. Returns `[key, object, bytes, unheld, reason]` per key.
/// An object no entry holds any more is marked *deleting* for `ARGV[11]` ms (the caller deletes
/// it within that): [`PUT_ENTRY`] refuses to index it meanwhile, so no entry written between the
/// claim and the delete vouches for a deleted object.
/// Dataset keys; `ARGV[4]` now ms, `ARGV[5]` token, `ARGV[6]` most keys to claim, `ARGV[7]`
/// mode, `ARGV[8]` its argument, `ARGV[9]` order position, `ARGV[10]` `1` when evicting by
/// priority (then the GDSF clock rises to each evicted priority). Modes: `expired` (nothing
/// more), `capacity` (evict lowest scores while bytes stored exceed `ARGV[8]`), `head` (evict the
/// `ARGV[8]` lowest scores), `key` (the key `ARGV[8]`), `prefix` (keys starting with `ARGV[8]`),
/// `all`.
pub static CLAIM: Script = Script::new(concat!(
    include_str!("scripts/prelude.lua"),
    include_str!("scripts/claim.lua")
));

/// `Index::drop_claimed`: delete the entries a [`CLAIM`] marked with this token (an entry
/// written again meanwhile has no mark and stays), and the *being deleted* marks of the objects
/// the caller deleted, where they are still this claim's. `KEYS` the entries, then the marks;
/// `ARGV[1]` token, `ARGV[2]` how many of `KEYS` are entries.
pub static DROP_CLAIMED: Script = Script::new(include_str!("scripts/drop_claimed.lua"));

/// `Index::cache_stats`: the stats hash, the number of accounted keys, and the origin fetch
/// times at ranks `ARGV[4]` and `ARGV[5]` of the fetch-time order (computed by the caller from
/// the count it does not know yet, so passed as percentiles: 50 and 95; nearest rank).
/// Dataset keys; `ARGV[4]`, `ARGV[5]` percentiles.
pub static STATS: Script = Script::new(concat!(
    include_str!("scripts/prelude.lua"),
    include_str!("scripts/stats.lua")
));

/// `Index::list_keys`: one page of a dataset's keys in an order, each with its entry. Keys whose
/// entry is gone (expired, not yet swept) or being evicted are left out of the page.
/// Dataset keys; `ARGV[4]` order position, `ARGV[5]` `1` for descending scores, `ARGV[6]`
/// offset, `ARGV[7]` page size. Returns `[accounted keys, [key, expires, entry pairs]...]`.
pub static LIST_KEYS: Script = Script::new(concat!(
    include_str!("scripts/prelude.lua"),
    include_str!("scripts/list_keys.lua")
));

/// `Index::release_lease`: delete the lease only if it is still ours.
/// `KEYS[1]` lease; `ARGV[1]` holder.
pub static RELEASE_LEASE: Script = Script::new(include_str!("scripts/release_lease.lua"));

/// `Index::set_source_version`: record a version document's digest; a new digest raises the
/// dataset's source generation, an observation older than the record's is ignored. Returns the
/// generation. `KEYS[1]` the record; `ARGV[1]` digest, `ARGV[2]` when it was read (ms).
pub static SOURCE_VERSION: Script = Script::new(include_str!("scripts/source_version.lua"));

/// `Index::bump_source_version`: raise the generation (a missing record starts at now).
/// `KEYS[1]` the record; `ARGV[1]` now (ms).
pub static BUMP_VERSION: Script = Script::new(include_str!("scripts/bump_version.lua"));

/// `Index::set_file_validator`: record a source file's validator unless a later-sent
/// observation is recorded. `KEYS[1]` the record; `ARGV[1]` validator, `ARGV[2]` sent at (ms),
/// `ARGV[3]` TTL (ms).
pub static FILE_VALIDATOR: Script = Script::new(include_str!("scripts/file_validator.lua"));
