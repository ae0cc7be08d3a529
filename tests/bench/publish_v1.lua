-- The publish script as shipped before partitions (kept for make bench to measure against).
-- The history's publish script (see redis_history.py): one call per publish or batch.
-- KEYS: seq, epoch, floors, active, then one stream per message.
-- ARGV: a new epoch, max length, max age (ms), then per message: its envelope
-- head, its payload, its pub/sub channel.  Returns {epoch, first seq}: the
-- messages get consecutive numbers from there, in order.

local seq_key, epoch_key, floors, active = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local count = #KEYS - 4
local epoch = redis.call('GET', epoch_key)
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', epoch_key, epoch)
end
local max_len, max_age = tonumber(ARGV[2]), tonumber(ARGV[3])
local first_seq = redis.call('INCRBY', seq_key, count) - count + 1
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, count do
  local stream, seq = KEYS[4 + i], first_seq + i - 1
  local base = 3 + (i - 1) * 3
  local data = ARGV[base + 1] .. epoch .. ':' .. seq .. '\n' .. ARGV[base + 2]
  redis.call('XADD', stream, seq .. '-0', 't', now, 'd', data)
  local floor = nil
  while true do
    local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
    if not oldest then break end
    if redis.call('XLEN', stream) > max_len or now - tonumber(oldest[2][2]) > max_age then
      redis.call('XDEL', stream, oldest[1])
      floor = oldest[1]
    else
      break
    end
  end
  if floor then
    redis.call('HSET', floors, stream, string.match(floor, '^(%d+)'))
  end
  redis.call('ZADD', active, now, stream)
  redis.call('PUBLISH', ARGV[base + 3], data)
end
-- Streams nobody has published to for max_age hold only expired entries:
-- drop a few more than were written to (else every channel ever used stays
-- in Redis), remembering their last number so a resume from before it fails
-- loudly.
local idle = redis.call('ZRANGEBYSCORE', active, '-inf', now - max_age, 'LIMIT', 0, count + 3)
for _, key in ipairs(idle) do
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
  if last then
    redis.call('HSET', floors, key, string.match(last[1], '^(%d+)'))
  end
  redis.call('DEL', key)
  redis.call('ZREM', active, key)
end
return {epoch, first_seq}
