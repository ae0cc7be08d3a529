-- The recovery script (see redis_history.py): one partition's view of a channel.
-- KEYS: meta, marks, wstart, then the streams the recovery merges.
-- ARGV: new epoch (if this master must start one), the position's number,
-- the history age (s), and for a subtree its prefix.
-- Returns {epoch, seq, base, now (ms), watermark, the subtree's watch start
-- (-1 if none or not asked), the fewest entries any writer kept per stream
-- within the history age (0 if none), then per stream: its length, its oldest number
-- (-1 if none), its entries after the position as XRANGE returns them}.
local meta, marks = KEYS[1], KEYS[2]
local since, age = tonumber(ARGV[2]), tonumber(ARGV[3])
local epoch, base = claim(meta, ARGV[1])
local seq = tonumber(redis.call('HGET', meta, 'seq') or '0')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- The first number published within the age (see core/history.py watermark).
local low = seq + 1
for _, item in ipairs(redis.call('LRANGE', marks, 0, -1)) do
  local second, first = string.match(item, '^(%d+):(%d+)$')
  if tonumber(second) >= tonumber(t[1]) - age then
    low = tonumber(first)
    break
  end
end
local start = -1
if ARGV[4] then
  start = tonumber(redis.call('HGET', KEYS[3], ARGV[4]) or '-1')
end
local least, lasts = unpack(redis.call('HMGET', meta, 'keep', 'keep_until'))
least = tonumber(lasts or '0') >= now and tonumber(least or '0') or 0
local result = {epoch, seq, base, now, low, start, least}
for i = 4, #KEYS do
  local oldest = redis.call('XRANGE', KEYS[i], '-', '+', 'COUNT', 1)[1]
  result[#result + 1] = redis.call('XLEN', KEYS[i])
  result[#result + 1] = oldest and tonumber(string.match(oldest[1], '^(%d+)')) or -1
  if since < seq then
    result[#result + 1] = redis.call('XRANGE', KEYS[i], (since + 1) .. '-0', '+')
  else
    result[#result + 1] = {}
  end
end
return result
