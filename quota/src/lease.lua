-- rampart-quota: one lease of a fleet-wide quota, GCRA on one key.
--
-- KEYS[1]  the quota's key: its theoretical arrival time (TAT), in microseconds
-- KEYS[2]  the processes that asked for this quota lately: a sorted set, scored by last ask
-- KEYS[3]  what each of those processes wanted at its last ask: a sorted set, scored by want
-- ARGV[1]  the emission interval T (microseconds per token; may be fractional)
-- ARGV[2]  the burst: tokens the quota may grant at once after a quiet spell
-- ARGV[3]  the tokens this process wants
-- ARGV[4]  the tokens this process already spent before the quota answered (charged first)
-- ARGV[5]  this process's id
-- ARGV[6]  how long a process counts as present after its last ask (microseconds)
-- ARGV[7]  the instant (microseconds), or '' for the server's own clock (the default: one
--          clock for the whole fleet)
-- ARGV[8]  the cadence: how long a process whose lease was cut short waits before its next
--          ask (microseconds)
--
-- Returns { granted, microseconds until the next token, processes present }.
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local debt = tonumber(ARGV[4])
local presence = tonumber(ARGV[6])
local now
if ARGV[7] ~= '' then
  now = tonumber(ARGV[7])
else
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end

redis.call('ZADD', KEYS[2], now, ARGV[5])
redis.call('ZADD', KEYS[3], want, ARGV[5])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - presence)
for i = 1, #gone do
  redis.call('ZREM', KEYS[2], gone[i])
  redis.call('ZREM', KEYS[3], gone[i])
end
local processes = redis.call('ZCARD', KEYS[2])
redis.call('PEXPIRE', KEYS[2], math.ceil(presence / 1000))
redis.call('PEXPIRE', KEYS[3], math.ceil(presence / 1000))

local tau = burst * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
  tat = now
end
-- Tokens spent before the quota answered are owed whatever is left.
tat = tat + debt * interval

-- Tokens available now, and this process's cap: the max-min fair share, by water-filling, of
-- what the quota earns over a cadence (or of what is available, if that is more) among the
-- present processes' wants. A want covers a lease horizon, two cadences: a process takes half
-- of it a cadence. Sorted by want, each process that wants less than an equal share of what
-- is left gets all it wants; the level where the rest no longer fit is the cap (at least one
-- token). When every want fits, the cap is the whole pool.
local available = math.floor((now + tau - tat) / interval)
if available < 0 then
  available = 0
end
local cadence = tonumber(ARGV[8])
local pool = math.max(cadence / interval, available)
local wants = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
local present = #wants / 2
local level = pool
local left = pool
for i = 1, present do
  local take = tonumber(wants[2 * i]) / 2
  local rest = present - i + 1
  if take * rest > left then
    level = left / rest
    break
  end
  left = left - take
end
local share = math.max(1, math.floor(level))
local granted = math.min(want, available, share)
tat = tat + granted * interval

-- The key means nothing once its TAT has passed: it expires then.
local ttl = math.ceil((tat - now) / 1000)
if ttl > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', ttl)
else
  redis.call('DEL', KEYS[1])
end

local next_token = tat + interval - tau - now
if next_token < 0 then
  next_token = 0
end
return { granted, math.ceil(next_token), processes }
