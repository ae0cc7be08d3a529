-- The presence script (see redis_presence.py): every process's subscriptions
-- in one partition, summed.  Each process keeps a hash of its own entries
-- (name -> "count<TAB>user<TAB>user..."), renewed by a deadline in the nodes
-- set; the sums (per name, and per prefix: "/", "users/", "users/2/") follow
-- every change, so a query reads sums instead of adding up processes.  A
-- process whose deadline passed (it died) is subtracted by whichever calls
-- come next, at most 1000 entries per call.
-- KEYS: nodes (zset node -> deadline ms), names (zset, lexical), totals (hash
-- name -> count), prefixes (hash prefix -> count), the common start of the
-- processes' hashes (the node id follows), users (hash "name<TAB>user" ->
-- processes that list the user there), the common start of the pub/sub
-- channels of joins and leaves (the name follows), the partition's stream of
-- lifecycle events and its count of dropped ones (see events.lua).
-- A user's first process on a name is a join, their last one gone a leave:
-- each is published, as {"presence", "user", "channel"}, with ARGV[2] (the
-- publish command: PUBLISH, or SPUBLISH on a cluster); with ARGV[3] (the
-- events cap) above 0, each is also appended to the events stream, as
-- {"type", "channel", "user", "time", "process"} (the process whose tally
-- changed: a dead one's when it is subtracted), capped like events.lua's.
-- ARGV[1] is the mode, ARGV[2] the publish command, ARGV[3] the events cap,
-- then per mode:
--   beat, node, ttl ms, then name, value pairs (value "" once a name is gone):
--     apply, renew; returns 1 if the node was known, 0 if it must send all.
--   leave, node: withdraw (up to 1000 of) the node's entries; 1 once all are.
--   channel, name: returns {total, every live node's value for name...}.
--   below, prefix ("" for all), after ("" for the start), count: returns
--     {total below prefix, name, count, name, count...} from after on.
local nodes, names, totals, prefixes, hashes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local users, events, publish = KEYS[6], KEYS[7], ARGV[2]
local stream, dropped, cap = KEYS[8], KEYS[9], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function count_of(value)
  if not value or value == '' then return 0 end
  local tab = string.find(value, '\t', 1, true)
  return tonumber(tab and string.sub(value, 1, tab - 1) or value)
end

-- The users an entry lists (after its count), as a set.
local function users_of(value)
  local set = {}
  if not value or value == '' then return set end
  local first = true
  for part in string.gmatch(value, '[^\t]+') do
    if first then first = false else set[part] = true end
  end
  return set
end

-- A join or leave, as a lifecycle event (see events.lua), in this call.
local function append_event(kind, name, user, node)
  redis.call('XADD', stream, '*', 'e', cjson.encode({
    type = kind, channel = name, user = user, time = now / 1000, process = node}))
  local excess = redis.call('XLEN', stream) - cap
  if excess > 0 then
    redis.call('XTRIM', stream, 'MAXLEN', cap)
    redis.call('INCRBY', dropped, excess)
  end
end

local function moved(name, user, delta, node)
  local field = name .. '\t' .. user
  local total = redis.call('HINCRBY', users, field, delta)
  if total <= 0 then
    redis.call('HDEL', users, field)
  end
  if (delta > 0 and total == 1) or (delta < 0 and total <= 0) then
    local kind = delta > 0 and 'join' or 'leave'
    redis.call(publish, events .. name, cjson.encode({presence = kind, user = user, channel = name}))
    if cap > 0 then append_event(kind, name, user, node) end
  end
end

-- A process's entry for name went from old to new: who joined, who left.
local function shift_users(name, old, new, node)
  local before, after = users_of(old), users_of(new)
  for user in pairs(after) do
    if not before[user] then moved(name, user, 1, node) end
  end
  for user in pairs(before) do
    if not after[user] then moved(name, user, -1, node) end
  end
end

local function bump(prefix, delta)
  if redis.call('HINCRBY', prefixes, prefix, delta) <= 0 then
    redis.call('HDEL', prefixes, prefix)
  end
end

-- Add delta to a name's total and to every prefix that holds it.
local function shift(name, delta)
  if delta == 0 then return end
  local total = redis.call('HINCRBY', totals, name, delta)
  if total <= 0 then
    redis.call('HDEL', totals, name)
    redis.call('ZREM', names, name)
  elseif total == delta then
    redis.call('ZADD', names, 0, name)
  end
  bump('/', delta)
  if name == '/' then return end
  local from = 1
  while true do
    local cut = string.find(name, '/', from, true)
    if not cut then break end
    bump(string.sub(name, 1, cut), delta)
    from = cut + 1
  end
end

-- Subtract up to budget of a node's entries; forget the node once none is left.
-- Returns how many entries it subtracted.  Bounded, so that withdrawing (or
-- dropping a dead process with) 100,000 names never blocks Redis for long.
local function drop(node, budget)
  local hash = hashes .. node
  local fields = redis.call('HRANDFIELD', hash, budget, 'WITHVALUES')
  for i = 1, #fields, 2 do
    shift(fields[i], -count_of(fields[i + 1]))
    shift_users(fields[i], fields[i + 1], nil, node)
    redis.call('HDEL', hash, fields[i])
  end
  if redis.call('EXISTS', hash) == 0 then
    redis.call('ZREM', nodes, node)
  end
  return #fields / 2
end

-- Processes that stopped renewing (they died): subtracted, at most 1000 entries per call.
local budget = 1000
for _, node in ipairs(redis.call('ZRANGEBYSCORE', nodes, '-inf', '(' .. now, 'LIMIT', 0, 4)) do
  if budget <= 0 then break end
  budget = budget - drop(node, budget)
end

local mode = ARGV[1]
if mode == 'beat' then
  local node, hash = ARGV[4], hashes .. ARGV[4]
  local known = redis.call('ZSCORE', nodes, node)
  for i = 6, #ARGV, 2 do
    local name, value = ARGV[i], ARGV[i + 1]
    local old = redis.call('HGET', hash, name)
    shift(name, count_of(value) - count_of(old))
    shift_users(name, old, value, node)
    if value == '' then
      redis.call('HDEL', hash, name)
    else
      redis.call('HSET', hash, name, value)
    end
  end
  redis.call('ZADD', nodes, now + tonumber(ARGV[5]), node)
  return known and 1 or 0
elseif mode == 'leave' then
  -- 1 once the node is gone; 0 while entries remain (call again).
  drop(ARGV[4], 1000)
  return redis.call('EXISTS', hashes .. ARGV[4]) == 0 and 1 or 0
elseif mode == 'channel' then
  local name = ARGV[4]
  local result = {tonumber(redis.call('HGET', totals, name) or '0')}
  for _, node in ipairs(redis.call('ZRANGEBYSCORE', nodes, now, '+inf')) do
    local value = redis.call('HGET', hashes .. node, name)
    if value then result[#result + 1] = value end
  end
  return result
elseif mode == 'below' then
  local prefix, after, count = ARGV[4], ARGV[5], tonumber(ARGV[6])
  local low, high = '-', '+'
  if prefix ~= '' then
    -- Every name that starts with prefix (it ends in '/', and '0' follows '/').
    low = '[' .. prefix
    high = '(' .. string.sub(prefix, 1, -2) .. '0'
  end
  if after ~= '' then low = '(' .. after end
  local result = {tonumber(redis.call('HGET', prefixes, prefix == '' and '/' or prefix) or '0')}
  local found = redis.call('ZRANGEBYLEX', names, low, high, 'LIMIT', 0, count)
  if #found > 0 then
    local counts = redis.call('HMGET', totals, unpack(found))
    for i = 1, #found do
      result[#result + 1] = found[i]
      result[#result + 1] = tonumber(counts[i] or '0')
    end
  end
  return result
end
return redis.error_reply('unknown presence mode ' .. tostring(mode))
