-- The watch script (see redis_history.py): subtrees a process subscribes to.
-- KEYS: meta, watch, wstart.  ARGV: new epoch (if this master must start one),
-- how long a watch lasts unless renewed (ms), then the subtrees' prefixes.
-- Returns {epoch, seq, then per prefix 1 if its watch had lapsed (or never
-- was)}: its b-stream holds everything below it only from the next number
-- on, which it records.  So a subscriber that starts from the position
-- returned misses nothing below the subtree.
local meta, watch, starts = KEYS[1], KEYS[2], KEYS[3]
local epoch = claim(meta, ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local seq = tonumber(redis.call('HGET', meta, 'seq') or '0')
local result = {epoch, seq}
for i = 3, #ARGV do
  local name = ARGV[i]
  local expiry = redis.call('ZSCORE', watch, name)
  if not expiry or tonumber(expiry) < now then
    redis.call('HSET', starts, name, seq + 1)
    result[#result + 1] = 1
  else
    result[#result + 1] = 0
  end
  redis.call('ZADD', watch, 'GT', now + ttl, name)
end
-- Both keys outlive every watch they hold (the latest ends at now + ttl),
-- and no more: once nobody watches any subtree of this partition, they are
-- gone, whether or not another watch ever comes to prune them.
redis.call('PEXPIRE', watch, 2 * ttl)
redis.call('PEXPIRE', starts, 2 * ttl)
-- Watches nobody renewed (their processes are gone): a few at a time.
for _, name in ipairs(redis.call('ZRANGEBYSCORE', watch, '-inf', now, 'LIMIT', 0, 16)) do
  redis.call('ZREM', watch, name)
  redis.call('HDEL', starts, name)
end
return result
