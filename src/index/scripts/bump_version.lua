-- KEYS[1] the dataset's source version record; ARGV[1] now (ms). Raises the generation; a
-- missing record starts at the time (see source_version.lua), never at 1.
local generation = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0') or 0
if generation == 0 then generation = tonumber(ARGV[1]) else generation = generation + 1 end
redis.call('HSET', KEYS[1], 'generation', generation)
return generation
