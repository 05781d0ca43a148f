-- prelude: claim_core.lua
-- Settle attempts of a batch of jobs and release their stream entries, then read (and claim) the
-- next entries into the slots they free: the writes of a whole loop pass in one script call.
-- KEYS[1] P:jobs  KEYS[2] P:results  KEYS[3] P:retry  KEYS[4] P:dead
-- KEYS[5 + 3i ..] for job i (0-based): P:job:<job_id>, P:batch:<batch> or P:jobs,
--                 P:reply:<reply_to> or P:jobs
-- ARGV[1] group  ARGV[2] consumer  ARGV[3] result_ttl_s  ARGV[4] results_maxlen
-- ARGV[5] reply_ttl_s  ARGV[6] now_ms
-- ARGV[7] how many new entries to read for the consumer once the batch is released ('0': none)
-- ARGV[8] how many of those to claim at once, for sending (the daemon holds a permit for each)
-- ARGV[9] job key prefix 'P:job:'  ARGV[10] nonce prefix  ARGV[11] the first claim's nonce number
-- ARGV[12] the number of jobs in the batch
-- then one block per job:
--   entry id, mode: 'final' (the outcome) | 'duplicate' (an outcome again) | 'retry' (park it)
--   | 'release' (shutdown: withdraw the claim of a job never sent; the entry stays pending),
--   reply JSON or '', batch id or '', status, job_id,
--   retry: due ms; final dead: the payload; release: the claim's nonce; else '',
--   final dead: reply_to or '',
--   '1' when the claim found no job hash (claim.lua's fresh): nothing but the claim's fields can
--   be in it, and the job was never in P:retry; else '',
--   the number of field/value pairs, then the pairs: the outcome ('final', 'duplicate') or the
--   job hash fields ('retry')
-- Returns {verdicts, entries read or nothing}: a verdict per job, 'ok' | 'released' | 'stale' |
-- the error that stopped its settling; an entry is {id, fields} as XREADGROUP gives it, followed by
-- claim_job's answer, the job_id and the nonce for one claimed here.
-- A job that fails wrote nothing: every key it would write is checked first, so publishing it
-- again once the key is mended leaves one outcome, not two.
local jobs, results, retry, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, consumer, ttl, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local reply_ttl, now = ARGV[5], ARGV[6]
local take, to_claim, count = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[12])

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

-- A key someone else made of another type would stop a job's writes halfway: nil when key is
-- missing or of type want, else the refusal. The shared keys are looked at once per call.
local types = {}
local function refusal(key, want)
    local t = types[key]
    if not t then
        t = redis.call('TYPE', key).ok
        types[key] = t
    end
    if t == 'none' or t == want then
        return nil
    end
    return 'WRONGTYPE ' .. key .. ' is not a ' .. want .. ': outcome not published'
end

-- one job: its writes, and whether its entry is still ours to release
local function settle(k, a, fields, nfields)
    local job, batch, reply = KEYS[k], KEYS[k + 1], KEYS[k + 2]
    local entry, mode, reply_json, batch_id = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
    local status, job_id, extra, extra_reply_to = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
    local fresh = ARGV[a + 8] == '1'
    local last = fields + 2 * nfields - 1

    -- fencing: a worker that lost its entry to another consumer must not publish
    local pel = redis.call('XPENDING', jobs, group, entry, entry, 1)
    if #pel == 0 or pel[1][2] ~= consumer then
        return 'stale'
    end
    -- (the job hash needs no check: HDEL, its first write, fails before any other)
    local refused = mode ~= 'release' and refusal(results, 'stream') or
        mode == 'retry' and refusal(retry, 'zset') or
        mode == 'final' and (not fresh and refusal(retry, 'zset') or
                             status == 'dead' and refusal(dead, 'stream') or
                             batch_id ~= '' and refusal(batch, 'hash')) or
        reply_json ~= '' and refusal(reply, 'list')
    if refused then
        return refused
    end

    if mode == 'release' then
        -- its nonce would make the next claim count an attempt that never reached the API
        if redis.call('HGET', job, 'inflight') == extra then
            redis.call('HDEL', job, 'inflight')
        end
        return 'released'
    end

    if mode == 'retry' then
        -- the attempt is over: its request is no longer in flight; the job waits in P:retry
        redis.call('HDEL', job, 'inflight')
        redis.call('HSET', job, 'state', 'retrying', 'next_attempt_ms', extra,
                   unpack(ARGV, fields, last))
        redis.call('ZADD', retry, extra, job_id)
        return 'ok'
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
        redis.call('HSET', job, 'state', status, unpack(ARGV, fields, last))
        redis.call('EXPIRE', job, ttl)
        if not fresh then
            redis.call('ZREM', retry, job_id)
        end
        if status == 'dead' then
            local letter = {unpack(ARGV, fields, last)}
            letter[#letter + 1] = 'payload'
            letter[#letter + 1] = extra
            if extra_reply_to ~= '' then
                letter[#letter + 1] = 'reply_to'
                letter[#letter + 1] = extra_reply_to
            end
            redis.call('XADD', dead, '*', unpack(letter))
        end
    end

    redis.call('XADD', results, 'MAXLEN', '~', maxlen, '*', unpack(ARGV, fields, last))

    if mode == 'final' and batch_id ~= '' then
        redis.call('HINCRBY', batch, status, 1)
        local b = redis.call('HMGET', batch, 'total', 'created', 'failed', 'dead', 'finished_ms')
        local total = tonumber(b[1])
        local created, failed = tonumber(b[2]) or 0, tonumber(b[3]) or 0
        local dead_n = tonumber(b[4]) or 0
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
    return 'ok'
end

local verdicts, settled = {}, {}
local a = 13
for i = 0, count - 1 do
    local nfields = tonumber(ARGV[a + 9])
    -- pcall: one job's error (a key of the wrong type, say) must not sink the others' outcomes
    local ok, verdict = pcall(settle, 5 + 3 * i, a, a + 10, nfields)
    if not ok then
        verdict = type(verdict) == 'table' and verdict.err or tostring(verdict)
    elseif verdict == 'ok' then
        settled[#settled + 1] = ARGV[a]
    end
    verdicts[i + 1] = verdict
    a = a + 10 + 2 * nfields
end
if #settled > 0 then
    redis.call('XACK', jobs, group, unpack(settled))
    redis.call('XDEL', jobs, unpack(settled))
end

-- read only after the acks, so the consumer never holds more entries than its slots
if take == 0 then
    return {verdicts}
end
-- pcall: the outcomes are settled whatever the read does (a lost group is the reader's)
local read = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', take,
                         'STREAMS', jobs, '>')
if type(read) ~= 'table' or not read[1] then
    return {verdicts}
end
local entries, next_nonce = read[1][2], tonumber(ARGV[11])
for i = 1, math.min(#entries, to_claim) do
    local e = entries[i]
    local id = entry_job_id(e[1], e[2])
    local nonce = ARGV[10] .. (next_nonce + i - 1) -- "%.14g": exact digits below 1e14
    e[3] = claim_job(ARGV[9] .. id, jobs, group, e[1], consumer, now, nonce)
    e[4] = id
    e[5] = nonce
end
return {verdicts, entries}
