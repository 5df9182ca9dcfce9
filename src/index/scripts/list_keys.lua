local order = ORDERS[tonumber(ARGV[4])]
local first = tonumber(ARGV[6])
local last = first + tonumber(ARGV[7]) - 1
local members
if ARGV[5] == '1' then
  members = redis.call('ZREVRANGE', order, first, last)
else
  members = redis.call('ZRANGE', order, first, last)
end
local out = {redis.call('ZCARD', BY_KEY)}
for _, m in ipairs(members) do
  local e = redis.call('HGETALL', ENTRY_PREFIX .. m)
  local live = #e > 0
  for i = 1, #e, 2 do if e[i] == 'evicting' then live = false end end
  if live then out[#out + 1] = {m, redis.call('ZSCORE', BY_EXPIRES, m) or '0', e} end
end
return out
