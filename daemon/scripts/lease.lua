-- Renew this consumer's lease on the entries it is working on, so no other instance takes them
-- over (XCLAIM ... JUSTID resets their idle time). Entries it no longer owns are left alone.
-- KEYS[1] P:jobs  ARGV[1] group  ARGV[2] consumer  ARGV[3..] entry ids
-- Returns the ids that are no longer pending for this consumer.
local jobs, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local lost = {}

for i = 3, #ARGV do
    local id = ARGV[i]
    local pel = redis.call('XPENDING', jobs, group, id, id, 1)
    if #pel == 1 and pel[1][2] == consumer then
        redis.call('XCLAIM', jobs, group, consumer, 0, id, 'JUSTID')
    else
        lost[#lost + 1] = id
    end
end
return lost
