/*
 * The job pipeline: P:jobs -> claim -> validate -> POST -> outcome -> P:results, as
 * CONTRACT.md describes. It owns the two Redis clients (blocking reader, writer) and the HTTP
 * submitter, and holds at most max_inflight jobs at a time.
 */
#ifndef DATAMARTD_PIPELINE_H
#define DATAMARTD_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler.h"

struct event_base;
struct config;
struct metrics;
struct pipeline;

/* cfg must stay alive until the next pipeline_reconfigure() or pipeline_free() */
struct pipeline *pipeline_create(struct event_base *base, const struct config *cfg,
                                 struct metrics *metrics) DM_MUSTCHECK;
bool pipeline_start(struct pipeline *p) DM_MUSTCHECK;
/* Apply a reloaded config; jobs in flight keep what they started with. */
bool pipeline_reconfigure(struct pipeline *p, const struct config *cfg) DM_MUSTCHECK;
/* Shutdown, step 1: read no more jobs; those held run to their outcome. */
void pipeline_drain(struct pipeline *p);
/* Shutdown, step 2 (grace expired): abandon requests in flight; their entries stay pending. */
void pipeline_abort(struct pipeline *p);
size_t pipeline_jobs_held(const struct pipeline *p);
/* Ready when Redis is connected and the consumer group exists; *why says what is missing. */
bool pipeline_ready(const struct pipeline *p, const char **why);
/* A one-line summary for STATUS= and logs. */
void pipeline_describe(const struct pipeline *p, char *buf, size_t len);
/* Poll slow-changing facts (queue lag); called by the daemon's periodic timer. */
void pipeline_tick(struct pipeline *p);
/* Commands sent so far by the reader and by the writer (which the cluster limiter shares). */
void pipeline_redis_commands(const struct pipeline *p, uint64_t *reader, uint64_t *writer);
void pipeline_free(struct pipeline *p);

#endif
