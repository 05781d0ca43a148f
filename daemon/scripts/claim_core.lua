-- The claim of a job_id for one attempt, shared by claim.lua and publish.lua (the build puts this
-- file in front of any script whose first line names it as its prelude).
-- claim_job(job key, jobs key, group, entry id, consumer, now_ms, nonce): the caller has checked
-- that the entry is pending for the consumer. nonce is '' when no request will be sent.
-- Returns {'claimed', attempts so far, maybe_sent, first_seen_ms, fresh}
--       | {'finished', field, value, ...} | {'dropped', holder entry}
-- fresh = 1: the job had no hash before this claim, so it holds nothing but what the claim wrote
local function claim_job(job, jobs, group, entry, consumer, now, nonce)
    local st = redis.call('HMGET', job, 'state', 'entry', 'attempts', 'inflight', 'maybe_sent',
                          'first_seen_ms')
    local state, holder, attempts, inflight = st[1], st[2], tonumber(st[3]) or 0, st[4]
    local maybe_sent, first_seen = st[5] == '1', st[6]

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

    -- every write in one HSET, in the order the fields were once written one command at a time
    local w = {}
    local function put(field, value)
        w[#w + 1] = field
        w[#w + 1] = value
    end
    -- an earlier claim that is not ours may have sent its request before dying: it counts as an
    -- attempt (the API may have seen it) and makes "already exists" mean our own create
    if inflight and inflight ~= nonce then
        maybe_sent = true
        attempts = attempts + 1
        put('maybe_sent', '1')
        put('attempts', attempts)
    end
    put('state', 'active')
    put('entry', entry)
    put('consumer', consumer)
    put('started_ms', now)
    if not first_seen then
        put('first_seen_ms', now)
    end
    if nonce ~= '' then
        put('inflight', nonce)
    end
    redis.call('HSET', job, unpack(w))
    -- only a hash that existed before this claim can carry an expiry
    if first_seen then
        redis.call('PERSIST', job)
    end
    return {'claimed', attempts, maybe_sent and 1 or 0, tonumber(first_seen or now),
            first_seen and 0 or 1}
end
