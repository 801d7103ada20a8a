-- KEYS[1] = the lease key; ARGV = owner, ttl ms. Takes or renews the lease unless another owner holds it.
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
