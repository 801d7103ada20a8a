-- Lua: take value key `key` out of the tag indexes its record (`rec`) lists, except those in `keep` (a
-- set of index keys), and delete the record. A value without tags has no record: one GET of nothing.
local function untag(key, rec, keep)
  local old = redis.call('GET', rec)
  if not old then return end
  for _, t in ipairs(cmsgpack.unpack(old)) do
    if not (keep and keep[t]) then redis.call('ZREM', t, key) end
  end
  if not keep then redis.call('DEL', rec) end
end
