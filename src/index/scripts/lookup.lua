local version = redis.call('GET', KEYS[13]) or '0'
-- No live entry: take the object's lease in the same round trip when asked (KEYS[16] the
-- lease, ARGV[9] the holder, ARGV[10] its TTL), so that a cold miss waits on one round trip.
local function lease()
  if KEYS[16] == nil or KEYS[16] == '' then return '' end
  if redis.call('SET', KEYS[16], ARGV[9], 'NX', 'PX', tonumber(ARGV[10])) then return 'granted' end
  -- Already this holder's (another reader of the same isolate took it).
  if redis.call('GET', KEYS[16]) == ARGV[9] then return 'mine' end
  return 'held'
end
-- The source file's recorded validator, when the reader named its file (ARGV[8] = '1').
local file = ''
if ARGV[8] == '1' then file = redis.call('HGET', KEYS[15], 'validator') or '' end
-- A versioned read (ARGV[6] = the generation it keys objects by, ARGV[7] = how old the source
-- record may be): unless that generation is current and fresh, answer without counting.
local source = {}
if ARGV[6] ~= '' then
  local r = redis.call('HMGET', KEYS[14], 'generation', 'checked_ms')
  local generation, checked = r[1], tonumber(r[2] or '')
  if not generation or not checked or tonumber(ARGV[4]) - checked >= tonumber(ARGV[7]) then
    return {version, {}, {'stale', generation or '0'}, file, ''}
  end
  if generation ~= ARGV[6] then return {version, {}, {'changed', generation}, file, ''} end
  source = {'current', generation}
end
local e = redis.call('HGETALL', KEYS[12])
if #e == 0 then return {version, e, source, file, lease()} end
local f = {}
for i = 1, #e, 2 do f[e[i]] = e[i + 1] end
if f['evicting'] then return {version, {}, source, file, lease()} end
local now, m, size = tonumber(ARGV[4]), ARGV[5], num(f['size'])
local accesses = redis.call('HINCRBY', KEYS[12], 'hits', 1) + 1
redis.call('HSET', KEYS[12], 'last_access_ms', ARGV[4])
redis.call('HINCRBY', STATS, 'hits', 1)
redis.call('HINCRBY', STATS, 'bytes_from_cache', size)
redis.call('ZADD', BY_LAST_ACCESS, 'XX', now, m)
redis.call('ZADD', BY_FREQUENCY, 'XX', lfu_score(accesses, now), m)
redis.call('ZADD', BY_PRIORITY, 'XX', priority(gdsf_clock(), accesses, num(f['fetch_ms']), size), m)
return {version, e, source, file, ''}
