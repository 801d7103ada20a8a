-- KEYS: none beyond the tag's. ARGV: tag, before_s. Deletes finished jobs completed before `before`.
local removed = 0
for _, status in ipairs({'succeeded', 'failed', 'dead', 'cancelled'}) do
  local zkey = tag .. 'done:' .. status
  local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', '(' .. ARGV[2], 'LIMIT', 0, 5000)
  for _, id in ipairs(old) do redis.call('DEL', jk(id)) end
  if #old > 0 then redis.call('ZREM', zkey, unpack(old)) end
  removed = removed + #old
end
return removed
