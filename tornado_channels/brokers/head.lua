-- The head script (see redis_history.py): where a new subscriber starts.
-- KEYS: meta.  ARGV: new epoch (if this master must start one).
-- Returns {epoch, seq}.
local epoch = claim(KEYS[1], ARGV[1])
return {epoch, tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')}
