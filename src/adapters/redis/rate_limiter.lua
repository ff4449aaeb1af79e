-- An exact sliding-window rule (ports::Rule) for one user, checked and recorded in one step,
-- with Rule::wait_ms's arithmetic.
-- KEYS 1: the rule's ZSET of the user's accepted requests (score = member = Redis TIME in ms).
-- ARGV: min_gap_ms, window_ms, per_window.
-- Returns {1, slot} when granted, {0, retry_after_ms} when refused.

local MIN_GAP, WINDOW, PER_WINDOW = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Drop sends that left the window (now - time >= WINDOW).
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - WINDOW))

local ready_at = nil
local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
if newest[2] then
  ready_at = tonumber(newest[2]) + MIN_GAP
end
local count = redis.call('ZCARD', key)
if count >= PER_WINDOW then
  -- The send that must leave the window before another fits.
  local blocking = redis.call('ZRANGE', key, count - PER_WINDOW, count - PER_WINDOW, 'WITHSCORES')
  local at = tonumber(blocking[2]) + WINDOW
  if not ready_at or at > ready_at then
    ready_at = at
  end
end
if ready_at and now < ready_at then
  return {0, ready_at - now}
end

-- Every accepted request is at least MIN_GAP (>= 1 ms) after the previous one, so its time
-- is unique.
local slot = string.format('%d', now)
redis.call('ZADD', key, slot, slot)
redis.call('PEXPIRE', key, WINDOW)
return {1, now}
