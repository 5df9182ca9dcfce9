-- KEYS[1] the source file's validator record; ARGV[1] the validator, ARGV[2] when the request
-- that saw it was sent (ms), ARGV[3] the record's TTL (ms). An observation older than the
-- recorded one changes nothing.
local seen = tonumber(redis.call('HGET', KEYS[1], 'seen_ms') or '0') or 0
if tonumber(ARGV[2]) < seen then return 0 end
redis.call('HSET', KEYS[1], 'validator', ARGV[1], 'seen_ms', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
