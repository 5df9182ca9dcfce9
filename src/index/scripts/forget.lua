local e = redis.call('HMGET', KEYS[12], 'object_key', 'created_ms')
if e[1] ~= ARGV[5] or e[2] ~= ARGV[6] then return 0 end
release(ARGV[4])
redis.call('DEL', KEYS[12])
redis.call('HINCRBY', STATS, 'hits', -1)
redis.call('HINCRBY', STATS, 'bytes_from_cache', -tonumber(ARGV[7]))
return 1
