-- wrk script for bench/mock.sh: POST small valid Create Datamart bodies with unique names, so
-- requests take the create path (hash set insert + body copy). The requests are formatted once in
-- init() and replayed, so wrk's Lua stays cheaper than the mock it measures; names repeat (and
-- are then answered as duplicates) only after BENCH_UNIQUE requests per thread.
local requests = {}
local count = 0
local next_index = 0
local thread_id = 0

function setup(thread)
    thread:set("thread_id", thread_id)
    thread_id = thread_id + 1
end

function init(args)
    local unique = tonumber(os.getenv("BENCH_UNIQUE") or "400000")
    local headers = {
        ["Content-Type"] = "application/json",
        ["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "bench-token"),
    }
    for i = 1, unique do
        local body = string.format(
            '{"name":"bench-%d-%d","datasourceName":"postgres-main","tableList":[{"name":"orders",'
            .. '"schemaName":"public","columns":[{"name":"id"},{"name":"amount","alias":"Amount"},'
            .. '{"name":"total","isCustomColumn":true,"sql":"quantity * unit_price"}]}]}',
            thread_id, i)
        requests[i] = wrk.format("POST", nil, headers, body)
    end
    count = unique
end

function request()
    next_index = next_index % count + 1
    return requests[next_index]
end

function done(summary, latency, reqs)
    io.write(string.format(
        "WRK_RESULT requests=%d duration_us=%d errors=%d non2xx=%d p50_us=%d p99_us=%d\n",
        summary.requests, summary.duration,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
