-- Prepended to every history script (see redis_history.py): the partition's
-- epoch, and a new one whenever this master is not the one that wrote it.
--
-- Redis replicates asynchronously, so a promoted replica may lack the last
-- writes its master acknowledged, and would hand their numbers out again.
-- Every master has its own replication id (a promoted replica takes a new
-- one, and so does a restarted master), which the meta hash records: when
-- it differs, numbers handed out before may be gone, so the epoch changes
-- and positions from the old one fail loudly.  The sequence itself goes on,
-- so stream IDs keep growing; ``base`` is where the epoch began.
local function claim(meta, new_epoch)
  local info = redis.call('INFO', 'replication')
  local replid = string.match(info, 'master_replid:(%w+)')
  local state = redis.call('HMGET', meta, 'epoch', 'replid', 'base', 'mark')
  local epoch, base = state[1], tonumber(state[3] or '0')
  if not epoch or state[2] ~= replid then
    epoch, base = new_epoch, tonumber(redis.call('HGET', meta, 'seq') or '0')
    redis.call('HSET', meta, 'epoch', epoch, 'replid', replid, 'base', base, 'seq', base)
  end
  return epoch, base, state[4]
end

