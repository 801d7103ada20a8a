-- KEYS: active. ARGV: tag, now ms, now_s, retention s, max stalls. Requeues lapsed leases; returns the dead.
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, 1000)
local dead = {}
for _, id in ipairs(lapsed) do
  redis.call('ZREM', KEYS[1], id)
  local j = jk(id)
  if redis.call('HGET', j, 'status') == 'running' then
    local stalls = redis.call('HINCRBY', j, 'stalls', 1)
    if redis.call('HGET', j, 'cancel_requested') == '1' then
      finish(id, j, 'cancelled', ARGV[3], tonumber(ARGV[4]))
    elseif stalls >= tonumber(ARGV[5]) then
      redis.call('HSET', j, 'error', 'lease lapsed ' .. stalls .. ' times: its worker died or hung each time')
      finish(id, j, 'dead', ARGV[3], tonumber(ARGV[4]))
      dead[#dead + 1] = redis.call('HGETALL', j)
    else
      redis.call('HSET', j, 'status', 'queued')
          requeue(id, j)
    end
  end
end
if #lapsed > 0 then wake() end
return dead
