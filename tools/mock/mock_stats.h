/* Counters of API traffic for GET /__stats; admin requests never touch them. */
#ifndef DATAMART_MOCK_STATS_H
#define DATAMART_MOCK_STATS_H

#include "compiler.h"
#include "mock_faults.h"

struct strbuf;

enum mock_stat {
    MOCK_STAT_REQUESTS,
    MOCK_STAT_LEGACY_REQUESTS,
    MOCK_STAT_CREATED,
    MOCK_STAT_DUPLICATES,
    MOCK_STAT_AUTH_FAILURES,
    MOCK_STAT_CONNECTIONS, /* every TCP connection accepted, admin ones included */
    MOCK_STAT_COUNT,
};

struct mock_stats;

struct mock_stats *mock_stats_create(void) DM_MUSTCHECK;
void mock_stats_free(struct mock_stats *stats);

void mock_stats_add(struct mock_stats *stats, enum mock_stat what);
/* an answer went out with this status */
void mock_stats_status(struct mock_stats *stats, int status);
void mock_stats_fault(struct mock_stats *stats, enum mock_fault fault);
/* A request is in progress from begin until it is answered, closed, or its client leaves. */
void mock_stats_request_begin(struct mock_stats *stats);
void mock_stats_request_end(struct mock_stats *stats);
void mock_stats_hang_begin(struct mock_stats *stats);
void mock_stats_hang_end(struct mock_stats *stats);

/* Zero the counters; requests still in progress stay counted as current (and as the peak). */
void mock_stats_reset(struct mock_stats *stats);
void mock_stats_to_json(const struct mock_stats *stats, struct strbuf *out);

#endif
