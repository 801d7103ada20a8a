-- KEYS = snapshots hash, aggregate string. Both as of one moment: a fold between two separate reads
-- would count the folded processes twice or not at all.
return {redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2])}
