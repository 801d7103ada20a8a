-- KEYS: active. ARGV: tag, now_s, retention s, then id, token, result triples: the common case of FINISH
-- (succeeded), with 3 arguments per job instead of 7 and one HSET.
finish_ok(ARGV[2], tonumber(ARGV[3]), 4)
return 1
