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

/// Names, score functions and `release` (remove a key from the accounting), shared by scripts.
macro_rules! prelude {
    () => {
        r"local STATS, TOTALS, OBJECTS = KEYS[1], KEYS[2], KEYS[3]
local ORDERS = {KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]}
local BY_LAST_ACCESS, BY_FREQUENCY, BY_SIZE, BY_FETCH = ORDERS[1], ORDERS[2], ORDERS[3], ORDERS[4]
local BY_CREATED, BY_EXPIRES, BY_PRIORITY, BY_KEY = ORDERS[5], ORDERS[6], ORDERS[7], ORDERS[8]
local ENTRY_PREFIX, HOLDERS_PREFIX, HOLDER_PREFIX = ARGV[1], ARGV[2], ARGV[3]
local function num(v) return tonumber(v or '0') or 0 end
local function deleting_key(object) return HOLDERS_PREFIX .. 'deleting:' .. object end
local function lfu_score(accesses, now_ms)
  local recency = math.floor(now_ms / 1000) - 1700000000
  if recency < 0 then recency = 0 end
  if recency > 268435455 then recency = 268435455 end
  return accesses * 268435456 + recency
end
local function priority(clock, accesses, fetch_ms, size)
  return clock + accesses * math.max(fetch_ms, 1) / math.max(size, 1)
end
local function gdsf_clock() return num(redis.call('HGET', STATS, 'gdsf_clock')) end
local function count(field, by)
  redis.call('HINCRBY', STATS, field, by)
  redis.call('HINCRBY', TOTALS, field, by)
end
local function release(m)
  local size = redis.call('ZSCORE', BY_SIZE, m)
  local object = redis.call('HGET', OBJECTS, m) or ''
  for _, z in ipairs(ORDERS) do redis.call('ZREM', z, m) end
  redis.call('HDEL', OBJECTS, m)
  local unheld = '0'
  if object ~= '' then
    local holders = HOLDERS_PREFIX .. object
    redis.call('SREM', holders, HOLDER_PREFIX .. m)
    if redis.call('SCARD', holders) == 0 then unheld = '1' end
  end
  local bytes = 0
  if size then
    bytes = -num(size)
    count('entries', -1)
    count('bytes_stored', -bytes)
  end
  return {m, object, tostring(bytes), unheld}
end
"
    };
}

/// `Index::lookup`: read the entry and, only if it is live (present, not being evicted), count
/// the hit on the entry, the dataset and the eviction orders. Returns `[datasets version, entry
/// as read]`.
/// Dataset keys, then `KEYS[12]` entry, `KEYS[13]` run-time datasets version; `ARGV[4]` now ms,
/// `ARGV[5]` Zarr key.
pub const LOOKUP: &str = concat!(
    prelude!(),
    r"local version = redis.call('GET', KEYS[13]) or '0'
local e = redis.call('HGETALL', KEYS[12])
if #e == 0 then return {version, e} end
local f = {}
for i = 1, #e, 2 do f[e[i]] = e[i + 1] end
if f['evicting'] then return {version, {}} end
local now, m, size = tonumber(ARGV[4]), ARGV[5], num(f['size'])
local accesses = redis.call('HINCRBY', KEYS[12], 'hits', 1) + 1
redis.call('HSET', KEYS[12], 'last_access_ms', ARGV[4])
redis.call('HINCRBY', STATS, 'hits', 1)
redis.call('HINCRBY', STATS, 'bytes_from_cache', size)
redis.call('ZADD', BY_LAST_ACCESS, 'XX', now, m)
redis.call('ZADD', BY_FREQUENCY, 'XX', lfu_score(accesses, now), m)
redis.call('ZADD', BY_PRIORITY, 'XX', priority(gdsf_clock(), accesses, num(f['fetch_ms']), size), m)
return {version, e}"
);

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
pub const PUT_ENTRY: &str = concat!(
    prelude!(),
    r"local m, ttl, now = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local object, size, fetch = ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11])
local accesses = tonumber(ARGV[13]) + 1
if redis.call('EXISTS', deleting_key(object)) == 1 then
  if ARGV[7] == 'miss' then
    redis.call('HINCRBY', STATS, 'misses', 1)
    redis.call('HINCRBY', STATS, 'bytes_from_origin', tonumber(ARGV[8]))
  else
    redis.call('HINCRBY', STATS, 'hits', 1)
    redis.call('HINCRBY', STATS, 'bytes_from_cache', size)
  end
  return {'deleting'}
end
if redis.call('ZSCORE', BY_KEY, m) then release(m) end
redis.call('DEL', KEYS[12])
redis.call('HSET', KEYS[12], unpack(ARGV, 14))
redis.call('PEXPIRE', KEYS[12], ttl)
redis.call('SADD', KEYS[13], string.sub(HOLDER_PREFIX, 1, -2))
redis.call('ZADD', BY_LAST_ACCESS, now, m)
redis.call('ZADD', BY_FREQUENCY, lfu_score(accesses, now), m)
redis.call('ZADD', BY_SIZE, -size, m)
redis.call('ZADD', BY_FETCH, fetch, m)
redis.call('ZADD', BY_CREATED, tonumber(ARGV[12]), m)
redis.call('ZADD', BY_EXPIRES, now + ttl, m)
redis.call('ZADD', BY_PRIORITY, priority(gdsf_clock(), accesses, fetch, size), m)
redis.call('ZADD', BY_KEY, 0, m)
redis.call('HSET', OBJECTS, m, object)
redis.call('SADD', HOLDERS_PREFIX .. object, HOLDER_PREFIX .. m)
count('entries', 1)
count('bytes_stored', size)
if ARGV[7] == 'miss' then
  redis.call('HINCRBY', STATS, 'misses', 1)
  redis.call('HINCRBY', STATS, 'bytes_from_origin', tonumber(ARGV[8]))
  redis.call('HINCRBY', STATS, 'entries_written', 1)
  redis.call('HINCRBY', STATS, 'bytes_written', size)
else
  redis.call('HINCRBY', STATS, 'hits', 1)
  redis.call('HINCRBY', STATS, 'bytes_from_cache', size)
end
return {tostring(num(redis.call('HGET', STATS, 'bytes_stored'))), tostring(num(redis.call('HGET', TOTALS, 'bytes_stored')))}"
);

/// `Index::forget`: the entry's bytes are missing from storage. Delete the entry and undo the
/// hit only if it is still that entry (same object and creation time), releasing its accounting.
/// Dataset keys, then `KEYS[12]` entry; `ARGV[4]` Zarr key, `ARGV[5]` object key, `ARGV[6]`
/// created ms, `ARGV[7]` size.
pub const FORGET: &str = concat!(
    prelude!(),
    r"local e = redis.call('HMGET', KEYS[12], 'object_key', 'created_ms')
if e[1] ~= ARGV[5] or e[2] ~= ARGV[6] then return 0 end
release(ARGV[4])
redis.call('DEL', KEYS[12])
redis.call('HINCRBY', STATS, 'hits', -1)
redis.call('HINCRBY', STATS, 'bytes_from_cache', -tonumber(ARGV[7]))
return 1"
);

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
pub const CLAIM: &str = concat!(
    prelude!(),
    r"local now, token, most, mode, arg = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8]
local DELETING_MS = tonumber(ARGV[11])
local out, n = {}, 0
local function claim(m, reason)
  local v = release(m)
  if v[4] == '1' then redis.call('SET', deleting_key(v[2]), token, 'PX', DELETING_MS) end
  local e = ENTRY_PREFIX .. m
  if redis.call('EXISTS', e) == 1 then redis.call('HSET', e, 'evicting', token) end
  v[5] = reason
  for _, x in ipairs(v) do out[#out + 1] = x end
  n = n + 1
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', BY_EXPIRES, '-inf', now, 'LIMIT', 0, most)) do
  claim(m, 'expired')
end
local order = ORDERS[tonumber(ARGV[9])]
local function evict_head()
  local head = redis.call('ZRANGE', order, 0, 0, 'WITHSCORES')
  if #head == 0 then return false end
  if ARGV[10] == '1' then redis.call('HSET', STATS, 'gdsf_clock', head[2]) end
  claim(head[1], 'evicted')
  return true
end
if mode == 'capacity' then
  local capacity = tonumber(arg)
  while n < most and num(redis.call('HGET', STATS, 'bytes_stored')) > capacity do
    if not evict_head() then break end
  end
elseif mode == 'head' then
  local wanted = tonumber(arg)
  while n < most and wanted > 0 do
    if not evict_head() then break end
    wanted = wanted - 1
  end
elseif mode == 'key' then
  if redis.call('ZSCORE', BY_KEY, arg) then claim(arg, 'purged') end
elseif mode == 'prefix' then
  if n < most then
    for _, m in ipairs(redis.call('ZRANGEBYLEX', BY_KEY, '[' .. arg, '[' .. arg .. '\255', 'LIMIT', 0, most - n)) do
      claim(m, 'purged')
    end
  end
elseif mode == 'all' then
  if n < most then
    for _, m in ipairs(redis.call('ZRANGE', BY_KEY, 0, most - n - 1)) do claim(m, 'purged') end
  end
end
return out"
);

/// `Index::drop_claimed`: delete the entries a [`CLAIM`] marked with this token (an entry
/// written again meanwhile has no mark and stays), and the *being deleted* marks of the objects
/// the caller deleted, where they are still this claim's. `KEYS` the entries, then the marks;
/// `ARGV[1]` token, `ARGV[2]` how many of `KEYS` are entries.
pub const DROP_CLAIMED: &str = r"local dropped = 0
local entries = tonumber(ARGV[2])
for i, k in ipairs(KEYS) do
  if i <= entries then
    if redis.call('HGET', k, 'evicting') == ARGV[1] then
      redis.call('DEL', k)
      dropped = dropped + 1
    end
  elseif redis.call('GET', k) == ARGV[1] then
    redis.call('DEL', k)
  end
end
return dropped";

/// `Index::cache_stats`: the stats hash, the number of accounted keys, and the origin fetch
/// times at ranks `ARGV[4]` and `ARGV[5]` of the fetch-time order (computed by the caller from
/// the count it does not know yet, so passed as percentiles: 50 and 95; nearest rank).
/// Dataset keys; `ARGV[4]`, `ARGV[5]` percentiles.
pub const STATS: &str = concat!(
    prelude!(),
    r"local n = redis.call('ZCARD', BY_FETCH)
local function at(p)
  if n == 0 then return '' end
  local rank = math.ceil(n * p / 100)
  if rank < 1 then rank = 1 end
  if rank > n then rank = n end
  return redis.call('ZRANGE', BY_FETCH, rank - 1, rank - 1, 'WITHSCORES')[2]
end
return {redis.call('HGETALL', STATS), n, at(tonumber(ARGV[4])), at(tonumber(ARGV[5]))}"
);

/// `Index::list_keys`: one page of a dataset's keys in an order, each with its entry. Keys whose
/// entry is gone (expired, not yet swept) or being evicted are left out of the page.
/// Dataset keys; `ARGV[4]` order position, `ARGV[5]` `1` for descending scores, `ARGV[6]`
/// offset, `ARGV[7]` page size. Returns `[accounted keys, [key, expires, entry pairs]...]`.
pub const LIST_KEYS: &str = concat!(
    prelude!(),
    r"local order = ORDERS[tonumber(ARGV[4])]
local first = tonumber(ARGV[6])
local last = first + tonumber(ARGV[7]) - 1
local members
if ARGV[5] == '1' then
  members = redis.call('ZREVRANGE', order, first, last)
else
  members = redis.call('ZRANGE', order, first, last)
end
local out = {redis.call('ZCARD', BY_KEY)}
for _, m in ipairs(members) do
  local e = redis.call('HGETALL', ENTRY_PREFIX .. m)
  local live = #e > 0
  for i = 1, #e, 2 do if e[i] == 'evicting' then live = false end end
  if live then out[#out + 1] = {m, redis.call('ZSCORE', BY_EXPIRES, m) or '0', e} end
end
return out"
);

/// `Index::release_lease`: delete the lease only if it is still ours.
/// `KEYS[1]` lease; `ARGV[1]` holder.
pub const RELEASE_LEASE: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";
