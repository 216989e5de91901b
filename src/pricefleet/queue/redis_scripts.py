"""The Lua sources of the Redis queue (`pricefleet.queue.redis`): every state change of a site.

Each script touches the keys of ONE site only, all passed in `KEYS` in the order of `SITE_KEYS`
(they share the site's hash tag, so the scripts run unchanged on Redis Cluster), and reads the
time from the server (`TIME`) so every worker on every machine agrees. This module holds source
text only; loading and calling the scripts is `RedisQueue`'s business.

Per site:

- `ready`   ZSET  score -priority, member `%014.0f(seq) .. key`: equal scores sort by member, so
                  the order is priority first, then enqueue sequence (exact for any integers).
- `delayed` ZSET  key -> due time (delays and retry backoff).
- `leased`  ZSET  key -> lease expiry.
- `dead`    ZSET  key -> time of death.        `done` ZSET key -> finish time (retention).
- `since`   ZSET  key -> time the ready job became leasable (oldest age).
- `meta`    HASH  paused, hold_until, rate, burst, concurrency, tat (GCRA), seq, counters,
                  and the scheduler's marks as `mark:<name>`.
- `seen:<run>` SET the keys a run has enqueued, expiring SEEN_SECONDS after its last one.
- `data`    HASH  key -> job body, orjson `[kind, url, payload]` (opaque to Lua).
- `info`    HASH  key -> cmsgpack `state, attempts, max_attempts, priority, seq, token`,
                  state one of q (ready), w (delayed), l (leased), x (dead), d (done).
- `errors`  HASH  key -> last error.
"""

from __future__ import annotations

__all__ = [
    "ACK",
    "ACQUIRE",
    "ADVANCE",
    "DEAD",
    "ENQUEUE",
    "FAIL",
    "HEARTBEAT",
    "HOLD",
    "LEASE",
    "RELEASE",
    "REPLAY",
    "SITE_KEYS",
    "STATS",
]

#: Suffixes of one site's keys, in the order the scripts receive them.
SITE_KEYS = (
    "ready",
    "delayed",
    "leased",
    "dead",
    "done",
    "since",
    "meta",
    "data",
    "info",
    "errors",
)

_PRELUDE = """
local K_READY, K_DELAYED, K_LEASED, K_DEAD, K_DONE = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_SINCE, K_META, K_DATA, K_INFO, K_ERRORS = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- Lua numbers reach Redis through "%.14g" (0.1 ms at today's epoch): format times ourselves.
local function fmt(x)
  return string.format('%.6f', x)
end

local function get_info(key)
  local raw = redis.call('HGET', K_INFO, key)
  if not raw then
    return nil
  end
  return {cmsgpack.unpack(raw)}
end

local function put_info(key, i)
  redis.call('HSET', K_INFO, key, cmsgpack.pack(i[1], i[2], i[3], i[4], i[5], i[6]))
end

local function member(seq, key)
  return string.format('%014.0f', seq) .. key
end

local function to_ready(key, i, since)
  i[1] = 'q'
  i[6] = ''
  redis.call('ZADD', K_READY, -i[4], member(i[5], key))
  redis.call('ZADD', K_SINCE, fmt(since), key)
end

local function to_delayed(key, i, due)
  i[1] = 'w'
  i[6] = ''
  redis.call('ZADD', K_DELAYED, fmt(due), key)
end

local function to_dead(key, i, now, err)
  i[1] = 'x'
  i[6] = ''
  redis.call('ZADD', K_DEAD, fmt(now), key)
  redis.call('HSET', K_ERRORS, key, err)
end

local function held(i, token)
  return i ~= nil and i[1] == 'l' and i[6] == token
end

-- Due delayed jobs become ready; expired leases go back (the attempt was counted at lease
-- time) or, with their attempts used up, to the dead letters. Bounded so one call stays short.
local function housekeep(now, limit)
  local due = redis.call(
    'ZRANGEBYSCORE', K_DELAYED, '-inf', fmt(now), 'WITHSCORES', 'LIMIT', 0, limit)
  for j = 1, #due, 2 do
    local key = due[j]
    redis.call('ZREM', K_DELAYED, key)
    local i = get_info(key)
    if i then
      to_ready(key, i, tonumber(due[j + 1]))
      put_info(key, i)
    end
  end
  local expired = redis.call('ZRANGEBYSCORE', K_LEASED, '-inf', fmt(now), 'LIMIT', 0, limit)
  for _, key in ipairs(expired) do
    redis.call('ZREM', K_LEASED, key)
    local i = get_info(key)
    if i then
      if i[2] >= i[3] then
        to_dead(key, i, now, 'lease expired')
      else
        to_ready(key, i, now)
      end
      put_info(key, i)
    end
  end
end

local function hdel_all(keys)
  for s = 1, #keys, 1000 do
    local chunk = {}
    for j = s, math.min(s + 999, #keys) do
      chunk[#chunk + 1] = keys[j]
    end
    redis.call('HDEL', K_DATA, unpack(chunk))
    redis.call('HDEL', K_INFO, unpack(chunk))
    redis.call('HDEL', K_ERRORS, unpack(chunk))
  end
end
"""

#: KEYS: the site's, then per run named its seen set and its figures (a hash: enqueued, done,
#: dead). ARGV: n, seen time-to-live (ms), then n times (key, data, priority, delay,
#: max_attempts, run: 0 or 1-based index of the run). A job with a run is skipped when its key
#: was already seen in that run. Returns one character per job, in order: 1 new, 0 a no-op (so
#: the callers merged into one call each learn their own count).
ENQUEUE = (
    _PRELUDE
    + """
local now = clock()
local n = tonumber(ARGV[1])
local base = redis.call('HINCRBY', K_META, 'seq', n) - n
local new = 0
local flags = {}
for j = 0, n - 1 do
  flags[j + 1] = '0'
  local a = 3 + j * 6
  local key = ARGV[a]
  local run = tonumber(ARGV[a + 5])
  local i = nil
  local fresh = run == 0 or redis.call('SADD', KEYS[9 + 2 * run], key) == 1
  if fresh then
    i = get_info(key)
  end
  if fresh and not (i and (i[1] == 'q' or i[1] == 'w' or i[1] == 'l')) then
    if i then
      redis.call('ZREM', K_DONE, key)
      redis.call('ZREM', K_DEAD, key)
      redis.call('HDEL', K_ERRORS, key)
    end
    local ni = {'q', 0, tonumber(ARGV[a + 4]), tonumber(ARGV[a + 2]), base + j + 1, ''}
    redis.call('HSET', K_DATA, key, ARGV[a + 1])
    local delay = tonumber(ARGV[a + 3])
    if delay > 0 then
      to_delayed(key, ni, now + delay)
    else
      to_ready(key, ni, now)
    end
    put_info(key, ni)
    new = new + 1
    flags[j + 1] = '1'
    if run > 0 then
      redis.call('HINCRBY', KEYS[10 + 2 * run], 'enqueued', 1)
    end
  end
end
for r = 11, #KEYS do
  redis.call('PEXPIRE', KEYS[r], ARGV[2])
end
if new > 0 then
  redis.call('HINCRBY', K_META, 'enqueued', new)
end
return table.concat(flags)
"""
)

#: ARGV: want, visibility, token base, housekeeping limit.
#: Returns {expires_at, then per job: key, token, attempts, max_attempts, priority, data}.
LEASE = (
    _PRELUDE
    + """
local now = clock()
housekeep(now, tonumber(ARGV[4]))
local want = tonumber(ARGV[1])
local m = redis.call('HMGET', K_META, 'paused', 'hold_until', 'rate', 'burst', 'concurrency', 'tat')
if m[1] == '1' or tonumber(m[2] or '0') > now then
  return {}
end
local concurrency = tonumber(m[5] or '0')
if concurrency > 0 then
  want = math.min(want, concurrency - redis.call('ZCARD', K_LEASED))
end
local rate = tonumber(m[3] or '0')
local interval, tat = 0, 0
if rate > 0 then
  -- GCRA: a slot every `interval` seconds, up to `burst` of them banked ahead of time.
  interval = 1 / rate
  tat = math.max(tonumber(m[6] or '0'), now)
  -- Subtract the times first (they are ~1e9, their sum loses digits); the tolerance of a
  -- thousandth of a slot absorbs the microsecond rounding of the stored `tat`.
  local slots = math.floor(tonumber(m[4] or '1') - (tat - now) / interval + 1e-3)
  want = math.min(want, slots)
end
if want <= 0 then
  return {}
end
local popped = redis.call('ZPOPMIN', K_READY, want)
local taken = #popped / 2
if taken == 0 then
  return {}
end
local expires = now + tonumber(ARGV[2])
local out = {fmt(expires)}
local leased = 0
for j = 1, #popped, 2 do
  local key = string.sub(popped[j], 15)
  local i = get_info(key)
  redis.call('ZREM', K_SINCE, key)
  if i then
    local token = ARGV[3] .. ':' .. ((j + 1) / 2)
    i[1] = 'l'
    i[2] = i[2] + 1
    i[6] = token
    put_info(key, i)
    redis.call('ZADD', K_LEASED, fmt(expires), key)
    out[#out + 1] = key
    out[#out + 1] = token
    out[#out + 1] = i[2]
    out[#out + 1] = i[3]
    out[#out + 1] = i[4]
    out[#out + 1] = redis.call('HGET', K_DATA, key)
    leased = leased + 1
  end
  -- A ready entry without its job record (never written by these scripts) is dropped: there
  -- is nothing to run, and it takes no rate slot.
end
if rate > 0 and leased > 0 then
  redis.call('HSET', K_META, 'tat', fmt(tat + leased * interval))
end
return out
"""
)

#: ARGV: visibility, then (key, token) pairs. Returns {expires_at, one character per pair: 1
#: extended, 0 not held}.
HEARTBEAT = (
    _PRELUDE
    + """
local now = clock()
local expires = fmt(now + tonumber(ARGV[1]))
local flags = {}
for a = 2, #ARGV, 2 do
  local key = ARGV[a]
  if held(get_info(key), ARGV[a + 1]) then
    redis.call('ZADD', K_LEASED, 'XX', expires, key)
    flags[#flags + 1] = '1'
  else
    flags[#flags + 1] = '0'
  end
end
return {expires, table.concat(flags)}
"""
)

#: KEYS: the site's, then the figures of the runs named. ARGV: retention count, retention
#: seconds, then (key, token, run: 0 or 1-based index) triples. Returns one character per
#: triple: 1 accepted, 0 a stale token.
ACK = (
    _PRELUDE
    + """
local now = clock()
local accepted = 0
local flags = {}
for a = 3, #ARGV, 3 do
  local key = ARGV[a]
  local i = get_info(key)
  flags[#flags + 1] = '0'
  if held(i, ARGV[a + 1]) then
    flags[#flags] = '1'
    redis.call('ZREM', K_LEASED, key)
    i[1] = 'd'
    i[6] = ''
    put_info(key, i)
    redis.call('ZADD', K_DONE, fmt(now), key)
    accepted = accepted + 1
    local run = tonumber(ARGV[a + 2])
    if run > 0 and redis.call('EXISTS', KEYS[10 + run]) == 1 then  -- an expired run stays gone
      redis.call('HINCRBY', KEYS[10 + run], 'done', 1)
    end
  end
end
if accepted > 0 then
  redis.call('HINCRBY', K_META, 'acked', accepted)
end
-- Retention: drop the oldest finished jobs past the count, and all past the age.
local over = redis.call('ZCARD', K_DONE) - tonumber(ARGV[1])
local old = redis.call('ZCOUNT', K_DONE, '-inf', '(' .. fmt(now - tonumber(ARGV[2])))
local k = math.max(over, old)
if k > 0 then
  local gone = redis.call('ZRANGE', K_DONE, 0, k - 1)
  redis.call('ZREMRANGEBYRANK', K_DONE, 0, k - 1)
  hdel_all(gone)
end
return table.concat(flags)
"""
)

#: KEYS: the site's, then the figures of the runs named. ARGV: (key, token, error, retry delay,
#: run: 0 or 1-based index) quintuples. Returns one character per quintuple: - (stale token),
#: 0 (retried) or 1 (dead).
FAIL = (
    _PRELUDE
    + """
local now = clock()
local flags = {}
local failed = 0
for a = 1, #ARGV, 5 do
  local key = ARGV[a]
  local i = get_info(key)
  if not held(i, ARGV[a + 1]) then
    flags[#flags + 1] = '-'
  else
    redis.call('ZREM', K_LEASED, key)
    failed = failed + 1
    local run = tonumber(ARGV[a + 4])
    if i[2] >= i[3] then
      to_dead(key, i, now, ARGV[a + 2])
      put_info(key, i)
      if run > 0 and redis.call('EXISTS', KEYS[10 + run]) == 1 then
        redis.call('HINCRBY', KEYS[10 + run], 'dead', 1)
      end
      flags[#flags + 1] = '1'
    else
      redis.call('HSET', K_ERRORS, key, ARGV[a + 2])
      local delay = tonumber(ARGV[a + 3])
      if delay > 0 then
        to_delayed(key, i, now + delay)
      else
        to_ready(key, i, now)
      end
      put_info(key, i)
      flags[#flags + 1] = '0'
    end
  end
end
if failed > 0 then
  redis.call('HINCRBY', K_META, 'failed', failed)
end
return table.concat(flags)
"""
)

#: ARGV: (key, token) pairs. Returns one character per pair: 1 went back (its attempt does not
#: count), 0 a stale token.
RELEASE = (
    _PRELUDE
    + """
local now = clock()
local flags = {}
for a = 1, #ARGV, 2 do
  local key = ARGV[a]
  local i = get_info(key)
  if held(i, ARGV[a + 1]) then
    redis.call('ZREM', K_LEASED, key)
    i[2] = math.max(0, i[2] - 1)
    to_ready(key, i, now)
    put_info(key, i)
    flags[#flags + 1] = '1'
  else
    flags[#flags + 1] = '0'
  end
end
return table.concat(flags)
"""
)

#: ARGV: rate, burst. Takes one slot of the site's GCRA (the one LEASE takes from) and returns
#: "0", or returns the seconds until one is free (as text) and takes nothing.
ACQUIRE = (
    _PRELUDE
    + """
local now = clock()
local interval = 1 / tonumber(ARGV[1])
local tat = math.max(tonumber(redis.call('HGET', K_META, 'tat') or '0'), now)
-- Same rule and tolerance as LEASE: free while tat is at most burst-1 slots ahead.
local wait = (tat - now) - (tonumber(ARGV[2]) - 1) * interval
if wait > interval * 1e-3 then
  return fmt(wait)
end
redis.call('HSET', K_META, 'tat', fmt(tat + interval))
return '0'
"""
)

#: ARGV: mark name, value. Returns 1 when the mark moved forward to value, 0 when it was there.
ADVANCE = (
    _PRELUDE
    + """
local field = 'mark:' .. ARGV[1]
local current = redis.call('HGET', K_META, field)
if current and tonumber(current) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', K_META, field, ARGV[2])
return 1
"""
)

#: ARGV: seconds. A longer hold already in place stays.
HOLD = (
    _PRELUDE
    + """
local hold_until = clock() + tonumber(ARGV[1])
if hold_until > tonumber(redis.call('HGET', K_META, 'hold_until') or '0') then
  redis.call('HSET', K_META, 'hold_until', fmt(hold_until))
end
return 1
"""
)

#: ARGV: retention seconds. Read-only. Returns {queued, delayed, leased, dead, done, oldest age,
#: paused, hold seconds, enqueued, acked, failed}.
STATS = (
    _PRELUDE
    + """
local now = clock()
local due = redis.call('ZCOUNT', K_DELAYED, '-inf', fmt(now))
local oldest = now
local first = redis.call('ZRANGE', K_SINCE, 0, 0, 'WITHSCORES')
if first[2] then
  oldest = math.min(oldest, tonumber(first[2]))
end
first = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
if first[2] then
  oldest = math.min(oldest, tonumber(first[2]))
end
local m = redis.call('HMGET', K_META, 'paused', 'hold_until', 'enqueued', 'acked', 'failed')
return {
  redis.call('ZCARD', K_READY) + due,
  redis.call('ZCARD', K_DELAYED) - due,
  redis.call('ZCARD', K_LEASED),
  redis.call('ZCARD', K_DEAD),
  redis.call('ZCOUNT', K_DONE, fmt(now - tonumber(ARGV[1])), '+inf'),
  fmt(now - oldest),
  m[1] == '1' and 1 or 0,
  fmt(math.max(0, tonumber(m[2] or '0') - now)),
  tonumber(m[3] or '0'),
  tonumber(m[4] or '0'),
  tonumber(m[5] or '0'),
}
"""
)

#: ARGV: limit. Read-only. Returns per dead job, newest first:
#: key, attempts, max_attempts, priority, data, error.
DEAD = (
    _PRELUDE
    + """
local out = {}
for _, key in ipairs(redis.call('ZREVRANGE', K_DEAD, 0, tonumber(ARGV[1]) - 1)) do
  local i = get_info(key)
  if i then
    out[#out + 1] = key
    out[#out + 1] = i[2]
    out[#out + 1] = i[3]
    out[#out + 1] = i[4]
    out[#out + 1] = redis.call('HGET', K_DATA, key)
    out[#out + 1] = redis.call('HGET', K_ERRORS, key) or ''
  end
end
return out
"""
)

#: ARGV: 'all', or 'some' then the keys. Returns how many were queued again.
REPLAY = (
    _PRELUDE
    + """
local now = clock()
local keys = {}
if ARGV[1] == 'all' then
  keys = redis.call('ZRANGE', K_DEAD, 0, -1)
else
  for a = 2, #ARGV do
    keys[#keys + 1] = ARGV[a]
  end
end
local replayed = 0
for _, key in ipairs(keys) do
  local i = get_info(key)
  if i and i[1] == 'x' then
    redis.call('ZREM', K_DEAD, key)
    redis.call('HDEL', K_ERRORS, key)
    i[2] = 0
    i[5] = redis.call('HINCRBY', K_META, 'seq', 1)
    to_ready(key, i, now)
    put_info(key, i)
    replayed = replayed + 1
  end
end
return replayed
"""
)
