-- Presence and message cache (see room_state.rs). One script, dispatched on ARGV[1]; every
-- call is one atomic step. The clock is Redis TIME, the same for every process.
--
-- KEYS: 1 instances ZSET, 2 rooms SET, 3 the room's members HASH, 4 its messages ZSET,
--       5 its ready marker, 6 its users HASH ('counts': 3.. one users HASH per room)
-- ARGV: 1 op, 2 room id, 3 key ttl (ms), then per op (below)
-- members HASH field: instance|user_id|username -> 1.
-- users HASH: username -> how many members fields name that user. Joins and leaves keep
-- it in step in O(1), so a crowd joining costs O(1) each here, not a scan of the room;
-- reconcile and sweep rebuild it from members (which also mends a room a process of an
-- earlier version touched).

local instances, rooms, members, messages, ready, users =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
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

-- Rebuilds users from members; returns the names in `removed` (a set of names whose
-- fields this call deleted) that have no field left.
local function recount(removed)
  local counts = {}
  for _, field in ipairs(redis.call('HKEYS', members)) do
    local _, _, name = split(field)
    counts[name] = (counts[name] or 0) + 1
  end
  redis.call('DEL', users)
  local args = {}
  for name, n in pairs(counts) do
    table.insert(args, name)
    table.insert(args, n)
    if #args >= 1000 then
      redis.call('HSET', users, unpack(args))
      args = {}
    end
  end
  if #args > 0 then
    redis.call('HSET', users, unpack(args))
  end
  redis.call('PEXPIRE', users, ttl)
  local names = {}
  for name in pairs(removed) do
    if not counts[name] then
      table.insert(names, name)
    end
  end
  return names
end

-- Before a room's first field: a cache left from an earlier life of the room (a key that
-- outlived its members) may have missed messages, so it goes.
local function open_room()
  if redis.call('EXISTS', members) == 0 then
    redis.call('DEL', messages, ready, users)
  end
  redis.call('SADD', rooms, room)
  redis.call('PEXPIRE', rooms, ttl)
end

-- After fields were removed: an empty room loses its cache (the HASH went by itself).
local function settle_room()
  if redis.call('EXISTS', members) == 0 then
    redis.call('DEL', messages, ready, users)
    redis.call('SREM', rooms, room)
  end
end

-- The rev of a cached entry (the JSON Entry of room_state.rs). Decoding the one entry at
-- a seq, rather than keeping a parallel seq -> rev HASH, leaves the ZSET the only key a
-- message lives in: nothing else to trim, expire and delete in step on the join, leave,
-- reconcile and sweep paths, and nothing to leak. An entry that does not decode (another
-- version's) is older than any state.
local function rev_of(entry)
  local ok, decoded = pcall(cjson.decode, entry)
  if ok and type(decoded) == 'table' and type(decoded.rev) == 'number' then
    return decoded.rev
  end
  return -1
end

-- Caches entry (state rev of the message seq) unless the entry at seq has a rev at least
-- rev: of two states of one message, the newer stays (-> false). With no entry at seq,
-- caches it only if `insert` (-> nil otherwise). Keeps the newest `capacity`.
local function put(capacity, seq, rev, entry, insert)
  local held = redis.call('ZRANGEBYSCORE', messages, seq, seq)
  if held[1] then
    if held[1] == entry or rev_of(held[1]) >= tonumber(rev) then
      return false
    end
    redis.call('ZREMRANGEBYSCORE', messages, seq, seq)
  elseif not insert then
    return nil
  end
  redis.call('ZADD', messages, seq, entry)
  redis.call('ZREMRANGEBYRANK', messages, 0, -(capacity + 1))
  redis.call('PEXPIRE', messages, ttl)
  return true
end

local ops = {}

-- ARGV 4 field, 5 username -> 1 when the user had no field in the room before. The
-- caller reads the users HASH in the same round trip (natively: a crowd's member lists
-- are O(n) each, too many to pass through Lua).
function ops.join()
  local field, name = ARGV[4], ARGV[5]
  open_room()
  local first = false
  if redis.call('HSETNX', members, field, 1) == 1 then
    first = redis.call('HINCRBY', users, name, 1) == 1
  end
  redis.call('PEXPIRE', members, ttl)
  redis.call('PEXPIRE', users, ttl)
  return first and 1 or 0
end

-- ARGV 4 field, 5 username -> 1 when the user has no field left
function ops.leave()
  local field, name = ARGV[4], ARGV[5]
  if redis.call('HDEL', members, field) == 0 then
    return 0
  end
  local gone = redis.call('HINCRBY', users, name, -1) <= 0
  if gone then
    redis.call('HDEL', users, name)
  end
  settle_room()
  return gone and 1 or 0
end

-- ARGV 4 capacity, 5 seq, 6 rev, 7 entry: a new message
function ops.add()
  if redis.call('EXISTS', members) == 1 then
    put(tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7], true)
  end
  return 0
end

-- ARGV 4 capacity, 5 seq, 6 rev, 7 entry: a changed message's new state. Replaces only a
-- cached entry; while not ready (a fill is reading the store, maybe before this change) it
-- is kept even if uncached, and the fill keeps it or drops it.
function ops.update()
  if redis.call('EXISTS', members) == 1 then
    local pending = redis.call('EXISTS', ready) == 0
    put(tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7], pending)
  end
  return 0
end

-- ARGV 4 capacity, then seq, rev, entry triples (the store's tail)
function ops.fill()
  if redis.call('EXISTS', members) == 0 then
    return 0
  end
  local capacity = tonumber(ARGV[4])
  if redis.call('EXISTS', ready) == 0 and #ARGV >= 5 then
    -- What update kept while the tail was read, if older than the tail: the cache stays
    -- one unbroken run of seqs, as `after` assumes.
    local first = tonumber(ARGV[5])
    for i = 8, #ARGV, 3 do
      first = math.min(first, tonumber(ARGV[i]))
    end
    redis.call('ZREMRANGEBYSCORE', messages, '-inf', '(' .. first)
  end
  for i = 5, #ARGV, 3 do
    put(capacity, ARGV[i], ARGV[i + 1], ARGV[i + 2], true)
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

-- ARGV 4.. seqs -> the entries at those seqs that are cached; nil when not ready
function ops.at()
  if redis.call('EXISTS', ready) == 0 then
    return false
  end
  local found = {}
  for i = 4, #ARGV do
    local held = redis.call('ZRANGEBYSCORE', messages, ARGV[i], ARGV[i])
    if held[1] then
      table.insert(found, held[1])
    end
  end
  return found
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

-- KEYS 3.. users HASHes -> distinct users per room
function ops.counts()
  local counts = {}
  for i = 3, #KEYS do
    counts[i - 2] = redis.call('HLEN', KEYS[i])
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
    local i, _, name = split(field)
    if i == instance then
      if want[field] then
        want[field] = nil
      else
        redis.call('HDEL', members, field)
        removed[name] = true
      end
    end
  end
  for field in pairs(want) do
    redis.call('HSET', members, field, 1)
  end
  local names = recount(removed)
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
    local i, _, name = split(field)
    if dead[i] then
      redis.call('HDEL', members, field)
      removed[name] = true
    end
  end
  local names = recount(removed)
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
