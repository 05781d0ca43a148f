/* The daemon's counters and gauges, rendered in the Prometheus text exposition format. */
#ifndef DATAMART_METRICS_H
#define DATAMART_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"
#include "outcome.h"
#include "strbuf.h"

struct metrics;

struct metrics *metrics_create(void) DM_MUSTCHECK;
void metrics_free(struct metrics *m);

void metrics_job_finished(struct metrics *m, enum outcome_status status, bool duplicate);
/* one HTTP attempt; code 0 for a transport error (timeout, connect, reset) */
void metrics_http_request(struct metrics *m, long code, double seconds);
void metrics_set_inflight(struct metrics *m, long requests, long jobs);
void metrics_set_redis_connected(struct metrics *m, bool connected);
/* commands each Redis connection has sent so far (totals, not increments) */
void metrics_set_redis_commands(struct metrics *m, uint64_t reader, uint64_t writer);
/* entries in P:jobs not yet delivered to the group; negative when unknown */
void metrics_set_queue_lag(struct metrics *m, long long lag);
void metrics_outcome_stale(struct metrics *m);
void metrics_outcome_refused(struct metrics *m); /* Redis refused to write an outcome */
/* a transient failure parked the job in P:retry */
void metrics_job_retried(struct metrics *m);
/* 0 closed, 1 open because of transient failures, 2 paused because the API rejects the token */
void metrics_set_submissions_paused(struct metrics *m, int why);

uint64_t metrics_jobs_total(const struct metrics *m, enum outcome_status status);

void metrics_render(const struct metrics *m, const char *version, struct strbuf *sb);

#endif
