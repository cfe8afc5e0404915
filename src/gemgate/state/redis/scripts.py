"""The Lua scripts: each decision that must be atomic across replicas is one script, one round
trip, timed by Redis's clock (TIME) so that replicas' clocks never disagree about a window.

A window is a hash of bucket start (ms) → amount, a bucket being a sixtieth of the window, as
in state/windows.py: memory does not grow with traffic, and a bucket counts until its *end* is
older than the window plus its margin (never earlier than Google's own window empties).
"""

# Shared by the scripts below: the window functions, with `now` read once from TIME.
_WINDOWS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function window(key, span, width)
  local raw = redis.call('HGETALL', key)
  local total, buckets = 0, {}
  for i = 1, #raw, 2 do
    local start, amount = tonumber(raw[i]), tonumber(raw[i + 1])
    if start + width <= now - span then
      redis.call('HDEL', key, raw[i])
    else
      total = total + amount
      buckets[#buckets + 1] = {start, amount}
    end
  end
  return total, buckets
end

-- 0 when `amount` fits under `limit` now, else milliseconds until enough has passed.
local function wait_for(key, amount, limit, span, width)
  local total, buckets = window(key, span, width)
  local excess = total + amount - limit
  if excess <= 0 then return 0 end
  if amount > limit then return span end
  table.sort(buckets, function(a, b) return a[1] < b[1] end)
  for _, bucket in ipairs(buckets) do
    excess = excess - bucket[2]
    if excess <= 0 then return bucket[1] + width + span - now end
  end
  return span
end

local function count(key, bucket, amount, span, width)
  redis.call('HINCRBY', key, bucket, amount)
  redis.call('PEXPIRE', key, span + width + 1000)
end
"""

# KEYS: three per candidate (requests/minute, tokens/minute, requests/day), then two per scope
#       (a virtual key's own requests/minute and tokens/minute).
# ARGV: tokens, span ms, bucket width ms, day span ms (0: a calendar-day counter), ms left in
#       the day, number of candidates, number of scopes, a scope window's span ms and bucket
#       width ms, then rpm, tpm, rpd per candidate and rpm, tpm per scope (0: no limit).
# Every scope must have room, and one candidate: then all are counted together. Returns
# {index (0-based), minute bucket, day bucket, scope bucket} for the first candidate with room
# in every window; {-1, ms until the soonest room} when none has; {-2, ms} when a scope is full
# (the key is over its own limit: refused at once, not queued).
RESERVE = _WINDOWS + """
local tokens, span, width = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local day_span, day_left, n = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
-- Scopes: ss/sw their window's span and bucket width; a scope's limits start at ARGV[sa],
-- its two windows at KEYS[sk].
local scopes, ss, sw = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local sa, sk = 10 + n * 3, 1 + n * 3
local scope_wait = 0
for s = 0, scopes - 1 do
  local rpm, tpm = tonumber(ARGV[sa + s * 2]), tonumber(ARGV[sa + s * 2 + 1])
  if rpm > 0 then
    scope_wait = math.max(scope_wait, wait_for(KEYS[sk + s * 2], 1, rpm, ss, sw))
  end
  if tpm > 0 then
    scope_wait = math.max(scope_wait, wait_for(KEYS[sk + s * 2 + 1], tokens, tpm, ss, sw))
  end
end
if scope_wait > 0 then return {-2, scope_wait} end
local day_width = day_span / 60
local soonest = -1
for c = 0, n - 1 do
  local rpm, tpm, rpd = tonumber(ARGV[10 + c * 3]), tonumber(ARGV[11 + c * 3]),
                        tonumber(ARGV[12 + c * 3])
  local k_rpm, k_tpm, k_rpd = KEYS[1 + c * 3], KEYS[2 + c * 3], KEYS[3 + c * 3]
  local wait = 0
  if rpm > 0 then wait = math.max(wait, wait_for(k_rpm, 1, rpm, span, width)) end
  if tpm > 0 then wait = math.max(wait, wait_for(k_tpm, tokens, tpm, span, width)) end
  if rpd > 0 then
    if day_span > 0 then
      wait = math.max(wait, wait_for(k_rpd, 1, rpd, day_span, day_width))
    elseif tonumber(redis.call('GET', k_rpd) or '0') + 1 > rpd then
      wait = math.max(wait, day_left)
    end
  end
  if wait == 0 then
    local bucket = now - now % width
    local day_bucket = 0
    if rpm > 0 then count(k_rpm, bucket, 1, span, width) end
    if tpm > 0 then count(k_tpm, bucket, tokens, span, width) end
    if rpd > 0 then
      if day_span > 0 then
        day_bucket = now - now % day_width
        count(k_rpd, day_bucket, 1, day_span, day_width)
      else
        redis.call('INCR', k_rpd)
        redis.call('PEXPIRE', k_rpd, day_left + 3600000)
      end
    end
    local scope_bucket = now - now % sw
    for s = 0, scopes - 1 do
      if tonumber(ARGV[sa + s * 2]) > 0 then
        count(KEYS[sk + s * 2], scope_bucket, 1, ss, sw)
      end
      if tonumber(ARGV[sa + s * 2 + 1]) > 0 then
        count(KEYS[sk + s * 2 + 1], scope_bucket, tokens, ss, sw)
      end
    end
    return {c, bucket, day_bucket, scope_bucket}
  end
  if soonest < 0 or wait < soonest then soonest = wait end
end
return {-1, soonest}
"""

# Corrections to counts already made (real tokens replacing an estimate; an attempt Google
# never counted given back). KEYS: the windows, then the model's count of queued requests;
# ARGV: per window a bucket ('' for a plain counter) and the change, then the channel and the
# model. A bucket already expired is left alone (its count no longer matters). When room was
# freed and requests wait somewhere, the model is published on the channel — in the same
# round trip, and only then (a publish per request would cost every replica a wake-up).
ADJUST = """
local freed = false
local windows = #KEYS - 1
for i = 1, windows do
  local key, bucket, change = KEYS[i], ARGV[i * 2 - 1], tonumber(ARGV[i * 2])
  if change < 0 then freed = true end
  if bucket == '' then
    if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('INCRBY', key, change) end
  elseif redis.call('HEXISTS', key, bucket) == 1 then
    redis.call('HINCRBY', key, bucket, change)
  end
end
if freed and tonumber(redis.call('GET', KEYS[#KEYS]) or '0') > 0 then
  redis.call('PUBLISH', ARGV[windows * 2 + 1], ARGV[windows * 2 + 2])
end
return 1
"""

# Adds counts made locally while Redis was away (reconciliation), into the current bucket.
# KEYS: windows; ARGV: span ms, width ms, then one amount per key.
MERGE = _WINDOWS + """
local span, width = tonumber(ARGV[1]), tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local amount = tonumber(ARGV[i + 2])
  if amount > 0 then count(key, now - now % width, amount, span, width) end
end
return 1
"""

# A budget reservation. KEYS[1]: the key's open reservations (a sorted set: member →
# expiry ms); then one spend hash per budget period ({spent, reserved, alerted levels}).
# ARGV: reservation id, USD reserved, time to live ms, then per period: its limit and the
# spend the ledger knew when the period's counter was first made (set only if absent).
# Reservations past their expiry (a replica died before settling) are given back first, so
# they can never leave phantom refusals behind. Returns {} when admitted, else
# {period index (1-based), spent, reserved} of the first period with no room left.
BUDGET_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local open = KEYS[1]
for _, member in ipairs(redis.call('ZRANGEBYSCORE', open, '-inf', now)) do
  local amount = tonumber(string.match(member, '|([^|]+)$'))
  for period in string.gmatch(member, '%[([^%]]+)%]') do
    if redis.call('EXISTS', period) == 1 then
      redis.call('HINCRBYFLOAT', period, 'reserved', -amount)
    end
  end
  redis.call('ZREM', open, member)
end
local id, amount, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 2, #KEYS do
  local limit, seed = tonumber(ARGV[2 + (i - 1) * 2]), ARGV[3 + (i - 1) * 2]
  redis.call('HSETNX', KEYS[i], 'spent', seed)
  redis.call('HSETNX', KEYS[i], 'reserved', '0')
  local spent = tonumber(redis.call('HGET', KEYS[i], 'spent'))
  local reserved = tonumber(redis.call('HGET', KEYS[i], 'reserved'))
  if spent + reserved >= limit then return {i - 1, tostring(spent), tostring(reserved)} end
end
local member = id
for i = 2, #KEYS do
  redis.call('HINCRBYFLOAT', KEYS[i], 'reserved', amount)
  redis.call('PEXPIRE', KEYS[i], 40 * 86400000)
  member = member .. '[' .. KEYS[i] .. ']'
end
redis.call('ZADD', open, now + ttl, member .. '|' .. ARGV[2])
redis.call('PEXPIRE', open, ttl + 60000)
return {}
"""

# Settles a reservation with the real cost (0 releases it). KEYS[1]: open reservations; then
# the spend hashes. ARGV: the reservation's member ('' when there was none), USD spent, then
# per period its limit and the alert shares (e.g. 0.8 and 1). Returns, per period, the new
# spend and the levels it crossed first (so one replica alone announces each).
BUDGET_SETTLE = """
local open, member, usd = KEYS[1], ARGV[1], tonumber(ARGV[2])
if member ~= '' and redis.call('ZREM', open, member) == 1 then
  local amount = tonumber(string.match(member, '|([^|]+)$'))
  for i = 2, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then
      redis.call('HINCRBYFLOAT', KEYS[i], 'reserved', -amount)
    end
  end
end
local out = {}
for i = 2, #KEYS do
  local limit = tonumber(ARGV[3 + (i - 2) * 3])
  local spent = tonumber(redis.call('HINCRBYFLOAT', KEYS[i], 'spent', usd))
  redis.call('PEXPIRE', KEYS[i], 40 * 86400000)
  local crossed = ''
  for j = 1, 2 do
    local share = tonumber(ARGV[3 + (i - 2) * 3 + j])
    if usd > 0 and spent >= limit * share and
       redis.call('HSETNX', KEYS[i], 'alerted:' .. j, '1') == 1 then
      crossed = crossed .. j
    end
  end
  out[#out + 1] = tostring(spent)
  out[#out + 1] = crossed
end
return out
"""
