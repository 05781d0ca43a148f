-- prelude: claim_core.lua
-- Settle one attempt of a job and release its stream entry, in one atomic step.
-- KEYS[1] P:job:<job_id>  KEYS[2] P:jobs  KEYS[3] P:results  KEYS[4] P:batch:<batch> or P:jobs
-- KEYS[5] P:reply:<reply_to> or P:jobs  KEYS[6] P:retry  KEYS[7] P:dead
-- ARGV[1] group  ARGV[2] entry id  ARGV[3] consumer
-- ARGV[4] mode: 'final' (the outcome) | 'duplicate' (an outcome again) | 'retry' (park the job)
-- ARGV[5] result_ttl_s  ARGV[6] results_maxlen  ARGV[7] reply_ttl_s  ARGV[8] reply JSON or ''
-- ARGV[9] batch id or ''  ARGV[10] status  ARGV[11] now_ms  ARGV[12] job_id
-- ARGV[13] retry: due ms; final dead: the payload; else ''
-- ARGV[14] final dead: reply_to or ''
-- ARGV[15] '1' when the claim found no job hash (claim.lua's fresh): nothing but the claim's
--          fields can be in it, and the job was never in P:retry; else ''
-- ARGV[16] how many new entries to read for the consumer once this one is released: the slot it
--          frees goes straight to the next job, without a round trip of its own ('0': none)
-- ARGV[17] how many of those to claim at once, for sending (the daemon holds a permit for each)
-- ARGV[18] job key prefix 'P:job:'  ARGV[19] nonce prefix  ARGV[20] the first claim's nonce number
-- ARGV[21..] field/value pairs: the outcome ('final', 'duplicate') or the job hash fields ('retry')
-- Returns {'ok' | 'stale', entries read or nothing}; an entry is {id, fields} as XREADGROUP gives
-- it, followed by claim_job's answer, the job_id and the nonce for one claimed here
local job, jobs, results, batch, reply = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local retry, dead = KEYS[6], KEYS[7]
local group, entry, consumer, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl, maxlen, reply_ttl, reply_json = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local batch_id, status, now, job_id = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local fresh = ARGV[15] == '1'
local take, to_claim = tonumber(ARGV[16]), tonumber(ARGV[17])

-- the job_id as job_create (lib/job.c) reads it from the first 64 field pairs: the entry id
-- when it is missing or broken (the daemon checks that it read the same)
local function entry_job_id(id, f)
    for i = 1, math.min(#f, 128), 2 do
        if f[i] == 'job_id' then
            local v = f[i + 1]
            if #v >= 1 and #v <= 128 and not v:find('[^A-Za-z0-9._:%-]') then
                return v
            end
            return id
        end
    end
    return id
end

-- read only after the ack, so the consumer never holds more entries than its slots
local function release(verdict)
    if take == 0 then
        return {verdict}
    end
    -- pcall: the outcome is settled whatever the read does (a lost group is the reader's)
    local read = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', take,
                             'STREAMS', jobs, '>')
    if type(read) ~= 'table' or not read[1] then
        return {verdict}
    end
    local entries, next_nonce = read[1][2], tonumber(ARGV[20])
    for i = 1, math.min(#entries, to_claim) do
        local e = entries[i]
        local id = entry_job_id(e[1], e[2])
        local nonce = ARGV[19] .. (next_nonce + i - 1) -- "%.14g": exact digits below 1e14
        e[3] = claim_job(ARGV[18] .. id, jobs, group, e[1], consumer, now, nonce)
        e[4] = id
        e[5] = nonce
    end
    return {verdict, entries}
end

-- fencing: a worker that lost its entry to another consumer must not publish
local pel = redis.call('XPENDING', jobs, group, entry, entry, 1)
if #pel == 0 or pel[1][2] ~= consumer then
    return release('stale')
end

-- the field/value pairs, passed on without copying them into a table of their own
local FIELDS = 21

if mode == 'retry' then
    -- the attempt is over: its request is no longer in flight; the job waits in P:retry
    redis.call('HDEL', job, 'inflight')
    redis.call('HSET', job, 'state', 'retrying', 'next_attempt_ms', ARGV[13], unpack(ARGV, FIELDS))
    redis.call('ZADD', retry, ARGV[13], job_id)
    redis.call('XACK', jobs, group, entry)
    redis.call('XDEL', jobs, entry)
    return release('ok')
end

if mode == 'final' then
    if fresh then
        redis.call('HDEL', job, 'inflight')
    else
        redis.call('HDEL', job, 'inflight', 'maybe_sent', 'next_attempt_ms', 'error_path',
                   'errors', 'datamart_id', 'recovered', 'error_code', 'error_message',
                   'error_source', 'http_status', 'duplicate', 'payload', 'reply_to',
                   'last_error_code', 'last_error_message', 'last_http_status')
    end
    redis.call('HSET', job, 'state', status, unpack(ARGV, FIELDS))
    redis.call('EXPIRE', job, ttl)
    if not fresh then
        redis.call('ZREM', retry, job_id)
    end
    if status == 'dead' then
        local letter = {unpack(ARGV, FIELDS)}
        letter[#letter + 1] = 'payload'
        letter[#letter + 1] = ARGV[13]
        if ARGV[14] ~= '' then
            letter[#letter + 1] = 'reply_to'
            letter[#letter + 1] = ARGV[14]
        end
        redis.call('XADD', dead, '*', unpack(letter))
    end
end

redis.call('XADD', results, 'MAXLEN', '~', maxlen, '*', unpack(ARGV, FIELDS))

if mode == 'final' and batch_id ~= '' then
    redis.call('HINCRBY', batch, status, 1)
    local b = redis.call('HMGET', batch, 'total', 'created', 'failed', 'dead', 'finished_ms')
    local total = tonumber(b[1])
    local created, failed, dead_n = tonumber(b[2]) or 0, tonumber(b[3]) or 0, tonumber(b[4]) or 0
    if total and not b[5] and created + failed + dead_n >= total then
        redis.call('HSET', batch, 'finished_ms', now)
        redis.call('XADD', results, 'MAXLEN', '~', maxlen, '*', 'event', 'batch',
                   'batch', batch_id, 'total', total,
                   'created', created, 'failed', failed, 'dead', dead_n, 'finished_ms', now)
    end
end

if reply_json ~= '' then
    redis.call('RPUSH', reply, reply_json)
    redis.call('EXPIRE', reply, reply_ttl)
end

redis.call('XACK', jobs, group, entry)
redis.call('XDEL', jobs, entry)
return release('ok')
