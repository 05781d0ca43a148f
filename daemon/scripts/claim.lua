-- prelude: claim_core.lua
-- Claim a job for one attempt, atomically (CONTRACT.md "A job is processed at least once").
-- KEYS[1] P:job:<job_id>   KEYS[2] P:jobs
-- ARGV[1] group  ARGV[2] entry id  ARGV[3] consumer  ARGV[4] now_ms
-- ARGV[5] nonce of this claim ("" when no request will be sent: the payload failed locally)
-- Returns claim_job's answer (claim_core.lua) | {'stale'}
local job, jobs = KEYS[1], KEYS[2]
local group, entry, consumer = ARGV[1], ARGV[2], ARGV[3]

-- fencing: only the consumer that owns the entry may act on it
local pel = redis.call('XPENDING', jobs, group, entry, entry, 1)
if #pel == 0 or pel[1][2] ~= consumer then
    return {'stale'}
end
return claim_job(job, jobs, group, entry, consumer, ARGV[4], ARGV[5])
