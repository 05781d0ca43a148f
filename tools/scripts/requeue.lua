-- Requeue one dead job, atomically (datamartctl dead requeue): a fresh P:jobs entry with the dead
-- entry's job_id, payload, tenant, batch and reply_to; the job hash dropped so it starts at
-- attempt 0; its batch no longer counting it dead (nor finished); the dead entry deleted.
-- KEYS[1] P:dead  KEYS[2] P:jobs  KEYS[3] P:job:<job_id>  KEYS[4] P:batch:<batch> (P:dead if none)
-- ARGV[1] the dead entry's id  ARGV[2] its job_id  ARGV[3] its batch or ''
-- Returns {'ok', new entry id} | {'gone'} | {'changed'} | {'no_payload'} | {'busy', state}
local dead, jobs, job, batch = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local entry, job_id, batch_id = ARGV[1], ARGV[2], ARGV[3]

local found = redis.call('XRANGE', dead, entry, entry)
if #found == 0 then
    return {'gone'}
end
local f = {}
local list = found[1][2]
for i = 1, #list, 2 do
    f[list[i]] = list[i + 1]
end
-- the keys were named from an earlier read: the entry must still say the same
if f.job_id ~= job_id or (f.batch or '') ~= batch_id then
    return {'changed'}
end
if not f.payload then
    return {'no_payload'}
end
-- the same job_id was enqueued anew since it died: a requeue would only be a duplicate
local state = redis.call('HGET', job, 'state')
if state and state ~= 'dead' then
    return {'busy', state}
end

local fields = {'job_id', job_id}
for _, name in ipairs({'tenant', 'batch', 'reply_to'}) do
    if f[name] then
        fields[#fields + 1] = name
        fields[#fields + 1] = f[name]
    end
end
fields[#fields + 1] = 'payload'
fields[#fields + 1] = f.payload
local id = redis.call('XADD', jobs, '*', unpack(fields))
redis.call('DEL', job)
if batch_id ~= '' then
    if (tonumber(redis.call('HGET', batch, 'dead')) or 0) > 0 then
        redis.call('HINCRBY', batch, 'dead', -1)
    end
    -- the batch finishes again, with a new event, once this job has its outcome
    redis.call('HDEL', batch, 'finished_ms')
end
redis.call('XDEL', dead, entry)
return {'ok', id}
