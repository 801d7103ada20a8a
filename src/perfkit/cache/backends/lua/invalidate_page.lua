-- KEYS: n tag keys; ARGV: for each tag, the size c of the page just read from its index, then those c
-- members (value keys). UNLINKs them, takes them out of every index their tag record lists (not only
-- this one) and deletes the records, and removes exactly the page from this index, atomically: a value
-- re-set meanwhile keeps its (new) index entry. Returns how many keys existed (a key on two tags' pages
-- is unlinked by the first and counted once). The value keys and their records are not repeated in
-- KEYS: that would send every page twice (20% slower on 100k keys, benchmarks/cache.py); they share the
-- index's hash tag, so on a cluster they are on this node all the same.
local removed, a = 0, 1
for i = 1, #KEYS do
  local c = tonumber(ARGV[a])
  removed = removed + redis.call('UNLINK', unpack(ARGV, a + 1, a + c))
  for j = a + 1, a + c do untag(ARGV[j], 'perfkit:ktags:' .. ARGV[j], nil) end
  redis.call('ZREM', KEYS[i], unpack(ARGV, a + 1, a + c))
  a = a + c + 1
end
return removed
