#include "mock_stats.h"

#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

#define STATUS_MIN 100
#define STATUS_MAX 599

struct mock_stats {
    uint64_t counters[MOCK_STAT_COUNT];
    uint64_t by_status[STATUS_MAX - STATUS_MIN + 1];
    uint64_t faults[MOCK_FAULT_COUNT];
    uint64_t concurrent, peak_concurrent;
    uint64_t hanging;
};

static const char *const stat_names[MOCK_STAT_COUNT] = {
    [MOCK_STAT_REQUESTS] = "requests",
    [MOCK_STAT_LEGACY_REQUESTS] = "legacy_requests",
    [MOCK_STAT_CREATED] = "created",
    [MOCK_STAT_DUPLICATES] = "duplicates",
    [MOCK_STAT_AUTH_FAILURES] = "auth_failures",
    [MOCK_STAT_CONNECTIONS] = "connections_accepted",
};

struct mock_stats *mock_stats_create(void)
{
    return calloc(1, sizeof(struct mock_stats));
}

void mock_stats_free(struct mock_stats *stats)
{
    free(stats);
}

void mock_stats_add(struct mock_stats *stats, enum mock_stat what)
{
    stats->counters[what]++;
}

void mock_stats_status(struct mock_stats *stats, int status)
{
    if (status >= STATUS_MIN && status <= STATUS_MAX)
        stats->by_status[status - STATUS_MIN]++;
}

void mock_stats_fault(struct mock_stats *stats, enum mock_fault fault)
{
    stats->faults[fault]++;
}

void mock_stats_request_begin(struct mock_stats *stats)
{
    stats->counters[MOCK_STAT_REQUESTS]++;
    if (++stats->concurrent > stats->peak_concurrent)
        stats->peak_concurrent = stats->concurrent;
}

void mock_stats_request_end(struct mock_stats *stats)
{
    stats->concurrent--;
}

void mock_stats_hang_begin(struct mock_stats *stats)
{
    stats->hanging++;
}

void mock_stats_hang_end(struct mock_stats *stats)
{
    stats->hanging--;
}

void mock_stats_reset(struct mock_stats *stats)
{
    uint64_t concurrent = stats->concurrent, hanging = stats->hanging;

    memset(stats, 0, sizeof(*stats));
    stats->concurrent = stats->peak_concurrent = concurrent;
    stats->hanging = hanging;
}

void mock_stats_to_json(const struct mock_stats *stats, struct strbuf *out)
{
    const char *sep = "";

    strbuf_puts(out, "{");
    for (int i = 0; i < MOCK_STAT_COUNT; i++)
        strbuf_printf(out, "\"%s\":%llu,", stat_names[i], (unsigned long long)stats->counters[i]);
    strbuf_printf(out, "\"concurrent_requests\":%llu,\"peak_concurrent_requests\":%llu,",
                  (unsigned long long)stats->concurrent,
                  (unsigned long long)stats->peak_concurrent);
    strbuf_printf(out, "\"hanging\":%llu,\"by_status\":{", (unsigned long long)stats->hanging);
    for (int s = STATUS_MIN; s <= STATUS_MAX; s++) {
        if (stats->by_status[s - STATUS_MIN] == 0)
            continue;
        strbuf_printf(out, "%s\"%d\":%llu", sep, s,
                      (unsigned long long)stats->by_status[s - STATUS_MIN]);
        sep = ",";
    }
    strbuf_puts(out, "},\"faults\":{");
    for (int f = MOCK_FAULT_FAIL_FIRST; f < MOCK_FAULT_COUNT; f++) {
        strbuf_printf(out, "%s\"%s\":%llu", f == MOCK_FAULT_FAIL_FIRST ? "" : ",",
                      mock_fault_name((enum mock_fault)f), (unsigned long long)stats->faults[f]);
    }
    strbuf_puts(out, "}}");
}
