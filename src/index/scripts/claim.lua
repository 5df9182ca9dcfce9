local now, token, most, mode, arg = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8]
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
return out
