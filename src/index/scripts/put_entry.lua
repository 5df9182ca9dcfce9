local m, ttl, now = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
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
return {tostring(num(redis.call('HGET', STATS, 'bytes_stored'))), tostring(num(redis.call('HGET', TOTALS, 'bytes_stored')))}
