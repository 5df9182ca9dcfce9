local n = redis.call('ZCARD', BY_FETCH)
local function at(p)
  if n == 0 then return '' end
  local rank = math.ceil(n * p / 100)
  if rank < 1 then rank = 1 end
  if rank > n then rank = n end
  return redis.call('ZRANGE', BY_FETCH, rank - 1, rank - 1, 'WITHSCORES')[2]
end
return {redis.call('HGETALL', STATS), n, at(tonumber(ARGV[4])), at(tonumber(ARGV[5]))}
