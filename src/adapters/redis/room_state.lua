-- Presence and message cache (see room_state.rs). One script, dispatched on ARGV[1]; every
-- call is one atomic step. The clock is Redis TIME, the same for every process.
--
-- KEYS: 1 instances ZSET, 2 rooms SET, 3 the room's members HASH, 4 its messages ZSET,
--       5 its ready marker ('counts': 3.. one members HASH per room)
-- ARGV: 1 op, 2 room id, 3 key ttl (ms), then per op (below)
-- Members HASH field: instance|user_id|username.

local instances, rooms, members, messages, ready = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local room, ttl = ARGV[2], ARGV[3]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- instance, user_id, username of a members field
local function split(field)
  local a = string.find(field, '|', 1, true)
  local b = string.find(field, '|', a + 1, true)
  return string.sub(field, 1, a - 1), string.sub(field, a + 1, b - 1), string.sub(field, b + 1)
end

-- set of user ids with a field in `key`
local function present_users(key)
  local users = {}
  for _, field in ipairs(redis.call('HKEYS', key)) do
    local _, user = split(field)
    users[user] = true
  end
  return users
end

-- Whether `user` has a field in the room. HSCAN's MATCH runs in C: a join storm of n users
-- made n Lua scans of n fields each, which kept Redis busy for most of a second at 1,000.
-- Fields are `instance|user|name`; none of their parts can hold `|` or a glob character.
local function user_present(user)
  local cursor = '0'
  repeat
    local reply = redis.call('HSCAN', members, cursor, 'MATCH', '*|' .. user .. '|*', 'COUNT', 1000)
    if #reply[2] > 0 then
      return true
    end
    cursor = reply[1]
  until cursor == '0'
  return false
end

-- Before a room's first field: a cache left from an earlier life of the room (a key that
-- outlived its members) may have missed messages, so it goes.
local function open_room()
  if redis.call('EXISTS', members) == 0 then
    redis.call('DEL', messages, ready)
  end
  redis.call('SADD', rooms, room)
  redis.call('PEXPIRE', rooms, ttl)
end

-- After fields were removed: an empty room loses its cache (the HASH went by itself).
local function settle_room()
  if redis.call('EXISTS', members) == 0 then
    redis.call('DEL', messages, ready)
    redis.call('SREM', rooms, room)
  end
end

-- names of `removed` (user id -> name) who have no field left
local function departed(removed)
  local present = present_users(members)
  local names = {}
  for user, name in pairs(removed) do
    if not present[user] then
      table.insert(names, name)
    end
  end
  return names
end

local function put(capacity, seq, entry)
  redis.call('ZREMRANGEBYSCORE', messages, seq, seq)
  redis.call('ZADD', messages, seq, entry)
  redis.call('ZREMRANGEBYRANK', messages, 0, -(capacity + 1))
  redis.call('PEXPIRE', messages, ttl)
end

local ops = {}

-- ARGV 4 field, 5 user id -> {1 when the user had no field in the room before, every field}
function ops.join()
  local field, user = ARGV[4], ARGV[5]
  open_room()
  local first = false
  if redis.call('HEXISTS', members, field) == 0 then
    first = not user_present(user)
    redis.call('HSET', members, field, 1)
    redis.call('PEXPIRE', members, ttl)
  end
  return {first and 1 or 0, redis.call('HKEYS', members)}
end

-- ARGV 4 instance, 5 user id -> 1 when the user has no field left
function ops.leave()
  local instance, user = ARGV[4], ARGV[5]
  local removed = false
  for _, field in ipairs(redis.call('HKEYS', members)) do
    local i, u = split(field)
    if i == instance and u == user then
      redis.call('HDEL', members, field)
      removed = true
    end
  end
  if not removed then
    return 0
  end
  local gone = not user_present(user)
  settle_room()
  return gone and 1 or 0
end

-- ARGV 4 capacity, 5 seq, 6 entry
function ops.add()
  if redis.call('EXISTS', members) == 1 then
    put(tonumber(ARGV[4]), ARGV[5], ARGV[6])
  end
  return 0
end

-- ARGV 4 capacity, then seq, entry pairs (the store's tail)
function ops.fill()
  if redis.call('EXISTS', members) == 0 then
    return 0
  end
  local capacity = tonumber(ARGV[4])
  for i = 5, #ARGV, 2 do
    put(capacity, ARGV[i], ARGV[i + 1])
  end
  redis.call('SET', ready, 1, 'PX', ttl)
  return 1
end

-- ARGV 4 limit -> the newest `limit` entries, oldest first; nil when not ready
function ops.latest()
  local limit = tonumber(ARGV[4])
  if redis.call('EXISTS', ready) == 0 then
    return false
  end
  if limit == 0 then
    return {}
  end
  return redis.call('ZRANGE', messages, -limit, -1)
end

-- ARGV 4 after, 5 limit -> entries with seq > after, oldest first; nil when not ready or
-- when the oldest cached seq is beyond after + 1 (a message may be missing)
function ops.after()
  local after, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
  if redis.call('EXISTS', ready) == 0 then
    return false
  end
  local oldest = redis.call('ZRANGE', messages, 0, 0, 'WITHSCORES')
  if oldest[2] and tonumber(oldest[2]) > after + 1 then
    return false
  end
  if limit == 0 then
    return {}
  end
  return redis.call('ZRANGEBYSCORE', messages, '(' .. ARGV[4], '+inf', 'LIMIT', 0, limit)
end

-- KEYS 3.. members -> distinct users per room
function ops.counts()
  local counts = {}
  for i = 3, #KEYS do
    local n = 0
    for _ in pairs(present_users(KEYS[i])) do
      n = n + 1
    end
    counts[i - 2] = n
  end
  return counts
end

-- ARGV 4 instance, 5 expiry (ms) -> instances whose heartbeat is older than expiry
function ops.beat()
  local now = now_ms()
  redis.call('ZADD', instances, now, ARGV[4])
  redis.call('PEXPIRE', instances, ttl)
  redis.call('PEXPIRE', rooms, ttl)
  local cutoff = string.format('%d', now - tonumber(ARGV[5]))
  return redis.call('ZRANGEBYSCORE', instances, '-inf', '(' .. cutoff)
end

-- ARGV 4 instance, 5.. its fields that should be in the room (possibly none)
-- Makes this instance's fields exactly those, refreshes the room's ttl, and returns the
-- names of users who left the room because a field went.
function ops.reconcile()
  local instance, want = ARGV[4], {}
  for i = 5, #ARGV do
    want[ARGV[i]] = true
  end
  if #ARGV >= 5 then
    open_room()
  end
  local removed = {}
  for _, field in ipairs(redis.call('HKEYS', members)) do
    local i, user, name = split(field)
    if i == instance then
      if want[field] then
        want[field] = nil
      else
        redis.call('HDEL', members, field)
        removed[user] = name
      end
    end
  end
  for field in pairs(want) do
    redis.call('HSET', members, field, 1)
  end
  local names = departed(removed)
  settle_room()
  redis.call('PEXPIRE', members, ttl)
  redis.call('PEXPIRE', messages, ttl)
  redis.call('PEXPIRE', ready, ttl)
  return names
end

-- ARGV 4 expiry (ms), 5.. instances found dead
-- Removes the fields of those still dead and returns the names of users who left.
function ops.sweep()
  local cutoff, dead = now_ms() - tonumber(ARGV[4]), {}
  for i = 5, #ARGV do
    local beat = redis.call('ZSCORE', instances, ARGV[i])
    if not beat or tonumber(beat) < cutoff then
      dead[ARGV[i]] = true
    end
  end
  local removed = {}
  for _, field in ipairs(redis.call('HKEYS', members)) do
    local i, user, name = split(field)
    if dead[i] then
      redis.call('HDEL', members, field)
      removed[user] = name
    end
  end
  local names = departed(removed)
  settle_room()
  return names
end

-- ARGV 4 expiry (ms), 5.. instances swept: forgets those still dead
function ops.forget()
  local cutoff = now_ms() - tonumber(ARGV[4])
  for i = 5, #ARGV do
    local beat = redis.call('ZSCORE', instances, ARGV[i])
    if beat and tonumber(beat) < cutoff then
      redis.call('ZREM', instances, ARGV[i])
    end
  end
  return 0
end

return ops[ARGV[1]]()
