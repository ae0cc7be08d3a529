-- The events script (see redis_events.py): one partition's undelivered
-- lifecycle events, in a stream, and the lease of the one process that
-- delivers them.
-- KEYS: the stream, the lease (string: the holder's process id), the count
-- of events dropped for the cap since the holder last collected it.
-- ARGV[1] is the mode, then per mode:
--   append, cap, body...: XADD each body (field "e"), then drop the oldest
--     beyond cap; returns how many were dropped.
--   hold, process, ms: take the lease if free, renew it if held by process;
--     returns {1, dropped since last collected} when held, {0, 0} otherwise.
--   ack, process, id: if process holds the lease, delete every entry up to
--     id (delivered); returns 1, or 0 when the lease is someone else's.
--   release, process: give the lease up if process holds it.
local stream, lease, dropped = KEYS[1], KEYS[2], KEYS[3]
local mode = ARGV[1]
if mode == 'append' then
  local cap = tonumber(ARGV[2])
  for i = 3, #ARGV do
    redis.call('XADD', stream, '*', 'e', ARGV[i])
  end
  local excess = redis.call('XLEN', stream) - cap
  if excess > 0 then
    redis.call('XTRIM', stream, 'MAXLEN', cap)
    redis.call('INCRBY', dropped, excess)
    return excess
  end
  return 0
elseif mode == 'hold' then
  local process, ms = ARGV[2], ARGV[3]
  if not redis.call('SET', lease, process, 'NX', 'PX', ms) then
    if redis.call('GET', lease) ~= process then return {0, 0} end
    redis.call('PEXPIRE', lease, ms)
  end
  local count = tonumber(redis.call('GET', dropped) or '0')
  if count > 0 then redis.call('DEL', dropped) end
  return {1, count}
elseif mode == 'ack' then
  if redis.call('GET', lease) ~= ARGV[2] then return 0 end
  -- MINID keeps entries at or after it: the id just after the delivered one.
  local ms, seq = string.match(ARGV[3], '^(%d+)-(%d+)$')
  redis.call('XTRIM', stream, 'MINID', ms .. '-' .. string.format('%d', tonumber(seq) + 1))
  return 1
elseif mode == 'release' then
  if redis.call('GET', lease) == ARGV[2] then redis.call('DEL', lease) end
  return 1
end
return redis.error_reply('unknown events mode ' .. tostring(mode))
