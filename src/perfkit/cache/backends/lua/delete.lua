-- KEYS: m value keys, then their m tag records. Deletes the values and takes them out of their tag
-- indexes; returns how many values existed.
local m = #KEYS / 2
local removed = 0
for i = 1, m do
  removed = removed + redis.call('DEL', KEYS[i])
  untag(KEYS[i], KEYS[m + i], nil)
end
return removed
