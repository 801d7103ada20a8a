-- Publish one message of a channel, atomically: number it, keep it in the bounded history, fan it out.
-- KEYS[1]: the channel's meta hash (epoch, offset); KEYS[2]: its history list, entries
-- "<offset>:<ms>:<frame>", oldest first, offsets dense (the list is always a suffix of the channel).
-- ARGV: channel name as JSON, data as JSON, history size, history ttl (ms), meta ttl (ms),
-- the pub/sub channel, an epoch to use when the channel has none (new, or its history was lost), the
-- publish command: PUBLISH (one node) or SPUBLISH (a cluster's sharded pub/sub; the pub/sub channel
-- hashes to the keys' slot).
-- Returns {epoch, offset, ms}. The published payload is "<epoch>:<offset>:<ms>:<frame>".
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[7]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local frame = '{"type":"message","channel":' .. ARGV[1] .. ',"epoch":"' .. epoch .. '","offset":' ..
  string.format('%d', offset) .. ',"data":' .. ARGV[2] .. '}'
local entry = string.format('%d', offset) .. ':' .. string.format('%d', ms) .. ':' .. frame
redis.call('RPUSH', KEYS[2], entry)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
local cutoff = ms - tonumber(ARGV[4])
while true do
  local first = redis.call('LINDEX', KEYS[2], 0)
  if not first then break end
  local at = tonumber(string.match(first, '^%d+:(%d+):'))
  if at >= cutoff then break end
  redis.call('LPOP', KEYS[2])
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call(ARGV[8], ARGV[6], epoch .. ':' .. entry)
return {epoch, offset, ms}
