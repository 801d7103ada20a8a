-- A channel's epoch and last offset, and its history after an offset (publish.lua's layout).
-- KEYS[1]: the meta hash; KEYS[2]: the history list. ARGV: since (-1: the position only), an epoch to
-- start when the channel has none (its meta was lost: a new epoch, offsets from 1), meta ttl (ms).
-- Returns {epoch, last offset, now ms, {entries after since, oldest first}}.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
local last = tonumber(redis.call('HGET', KEYS[1], 'offset'))
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local since = tonumber(ARGV[1])
if since < 0 or since >= last then return {epoch, last, now, {}} end
local first = last - redis.call('LLEN', KEYS[2]) + 1
local start = since + 1 - first
if start < 0 then start = 0 end
return {epoch, last, now, redis.call('LRANGE', KEYS[2], start, -1)}
