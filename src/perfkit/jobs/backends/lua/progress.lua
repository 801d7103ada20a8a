-- KEYS: the job hash. ARGV: progress, message or ''. Only updates a job that exists.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'progress_message', ARGV[2]) end
return 1
