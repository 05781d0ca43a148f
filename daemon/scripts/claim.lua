-- Claim a job for one attempt, atomically (CONTRACT.md "A job is processed at least once").
-- KEYS[1] P:job:<job_id>   KEYS[2] P:jobs
-- ARGV[1] group  ARGV[2] entry id  ARGV[3] consumer  ARGV[4] now_ms
-- ARGV[5] nonce of this claim ("" when no request will be sent: the payload failed locally)
-- Returns {'claimed', attempts so far, maybe_sent, first_seen_ms}
--       | {'finished', field, value, ...}
--       | {'dropped', holder entry} | {'stale'}
local job, jobs = KEYS[1], KEYS[2]
local group, entry, consumer, now, nonce = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

-- fencing: only the consumer that owns the entry may act on it
local pel = redis.call('XPENDING', jobs, group, entry, entry, 1)
if #pel == 0 or pel[1][2] ~= consumer then
    return {'stale'}
end

local st = redis.call('HMGET', job, 'state', 'entry', 'attempts', 'inflight')
local state, holder, attempts, inflight = st[1], st[2], tonumber(st[3]) or 0, st[4]

if state == 'created' or state == 'failed' or state == 'dead' then
    return {'finished', unpack(redis.call('HGETALL', job))}
end

-- another live entry carries this job_id: this one is a duplicate enqueue
if holder and holder ~= entry then
    local alive = state == 'retrying' or #redis.call('XRANGE', jobs, holder, holder) > 0
    if alive then
        redis.call('XACK', jobs, group, entry)
        redis.call('XDEL', jobs, entry)
        return {'dropped', holder}
    end
end

-- an earlier claim that is not ours may have sent its request before dying: it counts as an
-- attempt (the API may have seen it) and makes "already exists" mean our own create
if inflight and inflight ~= nonce then
    redis.call('HSET', job, 'maybe_sent', '1')
    attempts = redis.call('HINCRBY', job, 'attempts', 1)
end
redis.call('HSET', job, 'state', 'active', 'entry', entry, 'consumer', consumer,
           'started_ms', now)
redis.call('HSETNX', job, 'first_seen_ms', now)
if nonce ~= '' then
    redis.call('HSET', job, 'inflight', nonce)
end
redis.call('PERSIST', job)
local seen = redis.call('HMGET', job, 'maybe_sent', 'first_seen_ms')
return {'claimed', attempts, seen[1] == '1' and 1 or 0, tonumber(seen[2])}
