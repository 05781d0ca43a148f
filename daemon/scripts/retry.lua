-- Move due retries back into the job stream, so whichever instance is free takes them.
-- KEYS[1] P:retry  KEYS[2] P:jobs
-- ARGV[1] prefix  ARGV[2] now_ms  ARGV[3] at most this many
-- Returns the number of jobs moved.
local retry, jobs = KEYS[1], KEYS[2]
local prefix, now, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local moved = 0

for _, job_id in ipairs(redis.call('ZRANGEBYSCORE', retry, '-inf', now, 'LIMIT', 0, limit)) do
    local job = prefix .. ':job:' .. job_id
    local f = redis.call('HMGET', job, 'state', 'payload', 'tenant', 'batch', 'reply_to')
    redis.call('ZREM', retry, job_id)
    -- a job that is no longer retrying (requeued by hand, expired) has nothing to move
    if f[1] == 'retrying' and f[2] then
        local entry = {'job_id', job_id, 'payload', f[2]}
        local names = {'tenant', 'batch', 'reply_to'}
        for i = 3, 5 do
            if f[i] then
                entry[#entry + 1] = names[i - 2]
                entry[#entry + 1] = f[i]
            end
        end
        local id = redis.call('XADD', jobs, '*', unpack(entry))
        redis.call('HSET', job, 'state', 'queued', 'entry', id)
        redis.call('HDEL', job, 'next_attempt_ms', 'payload')
        moved = moved + 1
    end
end
return moved
