local dropped = 0
local entries = tonumber(ARGV[2])
for i, k in ipairs(KEYS) do
  if i <= entries then
    if redis.call('HGET', k, 'evicting') == ARGV[1] then
      redis.call('DEL', k)
      dropped = dropped + 1
    end
  elseif redis.call('GET', k) == ARGV[1] then
    redis.call('DEL', k)
  end
end
return dropped
