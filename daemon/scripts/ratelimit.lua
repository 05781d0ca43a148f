-- The cluster-wide token bucket and fleet pause ([rate_limit] scope = cluster), atomically.
-- Redis TIME is the only clock, so the hosts' clocks never matter.
-- KEYS[1] P:ratelimit:bucket  hash: level (micro-permits), t (us of TIME at the last refill)
-- KEYS[2] P:ratelimit:pause   hash: until (ms of TIME), reason; expires at until
-- ARGV[1] 'acquire': ARGV[2] want >= 1, ARGV[3] rate (permits/s, 0 = unlimited), ARGV[4] burst
-- ARGV[1] 'pause':   ARGV[2] delay_ms >= 1, ARGV[3] reason (the longest pause wins)
-- Returns {granted, wait_us, paused_us, reason}: wait_us is the time until a permit can be
-- granted again (the pause included), paused_us > 0 while a pause holds, with its reason.
local bucket, pause = KEYS[1], KEYS[2]
local PERMIT = 1000000 -- micro-permits in a permit: integers keep fractional rates exact
local MAX_US = 1e15    -- longest wait reported (~31 years): tiny rates must not overflow
local MAX_TTL_MS = 1e13

-- Redis < 5 forbids writes after TIME unless effects are replicated; later ones ignore this
if redis.replicate_commands then
    redis.replicate_commands()
end

-- Lua would print large numbers as 1.7e+15
local function int(x)
    return string.format('%.0f', x)
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local held = redis.call('HMGET', pause, 'until', 'reason')
local paused = math.max((tonumber(held[1]) or 0) * 1000 - now, 0)
local reason = paused > 0 and (held[2] or '') or ''

if ARGV[1] == 'pause' then
    local delay = tonumber(ARGV[2])
    if not delay or delay < 1 then
        return redis.error_reply('ERR ratelimit: bad pause arguments')
    end
    local until_ms = math.floor(now / 1000) + math.floor(delay)
    if until_ms * 1000 - now > paused then
        paused, reason = until_ms * 1000 - now, ARGV[3] or ''
        redis.call('HSET', pause, 'until', int(until_ms), 'reason', reason)
        redis.call('PEXPIREAT', pause, int(until_ms))
    end
    return {0, paused, paused, reason}
end

local want, rate, burst = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if ARGV[1] ~= 'acquire' or not want or not rate or not burst or want < 1 or rate < 0 or
    burst < 1 then
    return redis.error_reply('ERR ratelimit: bad acquire arguments')
end
if paused > 0 then
    return {0, paused, paused, reason}
end
if rate == 0 then
    return {want, 0, 0, ''}
end

local cap = math.floor(burst) * PERMIT
local state = redis.call('HMGET', bucket, 'level', 't')
local level, last = tonumber(state[1]), tonumber(state[2])
if not level or not last then
    level = cap -- never used, or idle long enough to have expired: full
elseif now > last then
    -- compare before adding: a long idle spell times a high rate is far beyond cap
    local elapsed = now - last
    if elapsed * rate >= cap - level then
        level = cap
    else
        level = level + math.floor(elapsed * rate)
    end
end
-- a clock that stepped back refills nothing; a smaller burst after a reload caps the level
level = math.max(math.min(level, cap), 0)

local granted = math.min(math.floor(want), math.floor(level / PERMIT))
level = level - granted * PERMIT
local wait = 0
if level < PERMIT then
    wait = math.min(math.ceil((PERMIT - level) / rate), MAX_US)
end
redis.call('HSET', bucket, 'level', int(level), 't', int(now))
-- kept a second past the moment it is full again: after that, no state means a full bucket
redis.call('PEXPIRE', bucket, int(math.min(math.ceil((cap - level) / rate / 1000), MAX_TTL_MS) + 1000))
return {granted, wait, 0, ''}
