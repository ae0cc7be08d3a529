-- The publish script (see redis_history.py): one call per partition per batch.
-- KEYS: meta, marks, one stream per message, then one idempotency key per
-- group that has one.
-- ARGV: new epoch, entries kept per stream, stream TTL (ms), marks kept,
-- idempotency TTL (ms), the publish command, message count, group count, the
-- partition's key base; then per message: its envelope head, its payload, its
-- pub/sub channel, and the subtrees it reaches below (each followed by "\n");
-- then per group: its message count and its fingerprint ("" when it has no key).
-- Returns {epoch, one result per group}: the group's first number (its
-- messages are numbered consecutively from it), or "=" and the positions a
-- key already published, or "!" when the key was used for something else.
local meta, marks = KEYS[1], KEYS[2]
local keep, ttl, kept_marks = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local key_ttl, publish, messages, groups = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local base = ARGV[9]
local STRIDE, FIRST = 4, 10
-- Subtrees someone subscribes to: checked only when there are any.
local watch = base .. 'watch'
local watched = redis.call('ZCARD', watch) > 0
local epoch, _, mark = claim(meta, ARGV[1])
local t = redis.call('TIME')
local second = t[1]
local now = tonumber(second) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- The fewest entries any writer kept per stream within the history age
-- (processes or publishers set up with different history sizes): a recovery
-- takes a stream that long as possibly trimmed, whatever its own setting
-- (see redis_history.py).  Older trims took only what the age expires anyway.
local least, lasts = unpack(redis.call('HMGET', meta, 'keep', 'keep_until'))
least, lasts = tonumber(least or '0'), tonumber(lasts or '0')
if least == 0 or lasts < now or keep < least or (keep == least and lasts - now < ttl / 2) then
  redis.call('HSET', meta, 'keep', keep, 'keep_until', now + ttl)
end
-- Keys already used are answered from what they stored; the rest publish.
local stored = {}
local fresh, key_index = 0, 3 + messages
for group = 1, groups do
  local spec = FIRST + STRIDE * messages + 2 * (group - 1)
  if ARGV[spec + 1] ~= '' then
    stored[group] = redis.call('GET', KEYS[key_index]) or false
    key_index = key_index + 1
  end
  if not stored[group] then
    fresh = fresh + tonumber(ARGV[spec])
  end
end
local results = {epoch}
local seq = 0
if fresh > 0 then
  seq = redis.call('HINCRBY', meta, 'seq', fresh) - fresh
end
local first_seq = seq + 1
local message = 0
key_index = 3 + messages
for group = 1, groups do
  local spec = FIRST + STRIDE * messages + 2 * (group - 1)
  local count, fingerprint = tonumber(ARGV[spec]), ARGV[spec + 1]
  local previous = stored[group]
  if previous then
    if string.sub(previous, 1, #fingerprint + 1) == fingerprint .. ' ' then
      results[group + 1] = '=' .. string.sub(previous, #fingerprint + 2)
    else
      results[group + 1] = '!'
    end
    message = message + count
  else
    results[group + 1] = seq + 1
    local positions = {}
    for _ = 1, count do
      message = message + 1
      seq = seq + 1
      local arg = FIRST + STRIDE * (message - 1)
      local stream, position = KEYS[2 + message], epoch .. ':' .. seq
      local data = ARGV[arg] .. position .. '\n' .. ARGV[arg + 1]
      -- Exactly `keep` (size + 1) entries: the oldest one kept is then
      -- newer than every entry ever trimmed, which is how a recovery knows
      -- what trimming took (Redis 7.0 records nothing of it).
      redis.call('XADD', stream, 'MAXLEN', keep, seq .. '-0', 't', now, 'd', data)
      -- An idle stream vanishes: memory follows what is live.
      redis.call('PEXPIRE', stream, ttl)
      redis.call(publish, ARGV[arg + 2], data)
      if watched and ARGV[arg + 3] ~= '' then
        -- Each watched subtree above the target gets it too, once, in its
        -- own stream (for recovery) and on its own channel (live).
        local names = {}
        for name in string.gmatch(ARGV[arg + 3], '([^\n]*)\n') do
          names[#names + 1] = name
        end
        local expiries = redis.call('ZMSCORE', watch, unpack(names))
        for i, name in ipairs(names) do
          if expiries[i] and tonumber(expiries[i]) >= now then
            local below = base .. 'h:b:' .. name
            redis.call('XADD', below, 'MAXLEN', keep, seq .. '-0', 't', now, 'd', data)
            redis.call('PEXPIRE', below, ttl)
            redis.call(publish, base .. 'b:' .. name, data)
          end
        end
      end
      if fingerprint ~= '' then
        positions[#positions + 1] = position
      end
    end
    if fingerprint ~= '' then
      redis.call('SET', KEYS[key_index], fingerprint .. ' ' .. table.concat(positions, ' '), 'PX', key_ttl)
    end
  end
  if fingerprint ~= '' then
    key_index = key_index + 1
  end
end
if fresh > 0 and mark ~= second then
  -- The first number published in each second: the watermark's marks.
  redis.call('HSET', meta, 'mark', second)
  redis.call('RPUSH', marks, second .. ':' .. first_seq)
  redis.call('LTRIM', marks, -kept_marks, -1)
  redis.call('PEXPIRE', marks, ttl)
end
return results
