local version = redis.call('GET', KEYS[13]) or '0'
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
return {version, e}
