-- Publish a job's outcome and release its stream entry, in one atomic step.
-- KEYS[1] P:job:<job_id>  KEYS[2] P:jobs  KEYS[3] P:results  KEYS[4] P:batch:<batch> or P:jobs
-- KEYS[5] P:reply:<reply_to> or P:jobs
-- ARGV[1] group  ARGV[2] entry id  ARGV[3] consumer  ARGV[4] mode: 'final' | 'duplicate'
-- ARGV[5] result_ttl_s  ARGV[6] results_maxlen  ARGV[7] reply_ttl_s  ARGV[8] reply JSON or ''
-- ARGV[9] batch id or ''  ARGV[10] status  ARGV[11] now_ms
-- ARGV[12..] the outcome's field/value pairs
-- Returns 'ok' | 'stale'
local job, jobs, results, batch, reply = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local group, entry, consumer, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl, maxlen, reply_ttl, reply_json = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local batch_id, status, now = ARGV[9], ARGV[10], ARGV[11]

-- fencing: a worker that lost its entry to another consumer must not publish
local pel = redis.call('XPENDING', jobs, group, entry, entry, 1)
if #pel == 0 or pel[1][2] ~= consumer then
    return 'stale'
end

local fields = {}
for i = 12, #ARGV do
    fields[#fields + 1] = ARGV[i]
end

if mode == 'final' then
    redis.call('HDEL', job, 'inflight', 'maybe_sent', 'next_attempt_ms', 'error_path', 'errors',
               'datamart_id', 'recovered', 'error_code', 'error_message', 'error_source',
               'http_status', 'duplicate')
    redis.call('HSET', job, 'state', status, unpack(fields))
    redis.call('EXPIRE', job, ttl)
end

redis.call('XADD', results, 'MAXLEN', '~', maxlen, '*', unpack(fields))

if mode == 'final' and batch_id ~= '' then
    redis.call('HINCRBY', batch, status, 1)
    local b = redis.call('HMGET', batch, 'total', 'created', 'failed', 'dead', 'finished_ms')
    local total = tonumber(b[1])
    local created, failed, dead = tonumber(b[2]) or 0, tonumber(b[3]) or 0, tonumber(b[4]) or 0
    if total and not b[5] and created + failed + dead >= total then
        redis.call('HSET', batch, 'finished_ms', now)
        redis.call('XADD', results, 'MAXLEN', '~', maxlen, '*', 'event', 'batch',
                   'batch', batch_id, 'total', total,
                   'created', created, 'failed', failed, 'dead', dead, 'finished_ms', now)
    end
end

if reply_json ~= '' then
    redis.call('RPUSH', reply, reply_json)
    redis.call('EXPIRE', reply, reply_ttl)
end

redis.call('XACK', jobs, group, entry)
redis.call('XDEL', jobs, entry)
return 'ok'
