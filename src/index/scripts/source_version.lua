-- KEYS[1] the dataset's source version record; ARGV[1] the version document's digest, ARGV[2]
-- when it was read from the origin (ms). A new digest raises the generation; an observation
-- older than the record's never replaces it (a slow revalidation cannot undo a newer one). A
-- first generation is the time it was read: a record lost and made anew never repeats the
-- numbers of an earlier one (whose objects may still be stored).
local r = redis.call('HMGET', KEYS[1], 'generation', 'digest', 'checked_ms')
local generation, digest, checked = tonumber(r[1] or '0') or 0, r[2], tonumber(r[3] or '0') or 0
local at = tonumber(ARGV[2])
if at < checked then return generation end
if generation == 0 then
  generation = at
  redis.call('HSET', KEYS[1], 'generation', generation)
elseif digest ~= ARGV[1] then
  generation = redis.call('HINCRBY', KEYS[1], 'generation', 1)
end
redis.call('HSET', KEYS[1], 'digest', ARGV[1], 'checked_ms', ARGV[2])
return generation
