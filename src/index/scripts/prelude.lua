-- Shared by the dataset scripts: key names, score functions, count and release.
local STATS, TOTALS, OBJECTS = KEYS[1], KEYS[2], KEYS[3]
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
