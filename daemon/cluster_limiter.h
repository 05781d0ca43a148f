/*
 * The cluster-wide rate limit ([rate_limit] scope = cluster): every datamartd sharing a Redis
 * draws from one token bucket and honours one fleet-wide pause, both kept under
 * "<prefix>:ratelimit:" by daemon/scripts/ratelimit.lua, with Redis TIME as the only clock.
 * One round trip hands out a batch of permits; the in-process twin is lib/rate_limiter.h.
 */
#ifndef DATAMARTD_CLUSTER_LIMITER_H
#define DATAMARTD_CLUSTER_LIMITER_H

#include <stdbool.h>

#include "compiler.h"

struct redis_client;
struct cluster_limiter;

/* longest pause_reason kept; longer ones are cut */
#define CLUSTER_LIMITER_REASON_MAX 120
/* longest pause asked for; longer ones are cut to it */
#define CLUSTER_LIMITER_MAX_PAUSE_MS (24LL * 3600 * 1000)

/* One answer from Redis. */
struct cluster_grant {
    int granted;              /* 0..want permits, already taken from the bucket */
    long long wait_us;        /* until a permit can be granted again, the pause included; 0: now */
    long long paused_us;      /* > 0 while a fleet-wide pause holds */
    const char *pause_reason; /* the pause's reason, "" when none; valid during the callback */
};

/* g is NULL when there was no answer (connection lost, deadline, error reply: logged) */
typedef void (*cluster_limiter_fn)(void *arg, const struct cluster_grant *g);

/*
 * rate in permits/s (fractions allowed, 0 = unlimited), burst >= 1, within lib/rate_limiter.h's
 * ranges. The script is registered on writer (the daemon's shared writer client). The writer may
 * be freed first: pending calls then end with fn(NULL). NULL when out of memory or the arguments
 * are invalid (logged).
 */
struct cluster_limiter *cluster_limiter_create(struct redis_client *writer, const char *prefix,
                                               double rate, int burst) DM_MUSTCHECK;
/* A reload: later calls use the new rate and burst (the level is capped to it); false when out
 * of range (nothing changed). */
bool cluster_limiter_configure(struct cluster_limiter *cl, double rate, int burst) DM_MUSTCHECK;
/*
 * Ask for up to want permits (1..burst is useful) in one round trip. true: fn is called once,
 * later, from the event loop. false (fn never called): the writer is not connected or want < 1.
 */
bool cluster_limiter_acquire(struct cluster_limiter *cl, int want, cluster_limiter_fn fn,
                             void *arg) DM_MUSTCHECK;
/*
 * Pause every instance for delay_ms (>= 1, cut to CLUSTER_LIMITER_MAX_PAUSE_MS) from Redis' now;
 * a pause that ends later stays (the longest wins). reason is short text for operators, never a
 * secret. false: the writer is not connected or the arguments are invalid.
 */
bool cluster_limiter_pause(struct cluster_limiter *cl, long long delay_ms,
                           const char *reason) DM_MUSTCHECK;
/* Calls still awaiting Redis are cancelled: their fn is never called. Callable from fn. NULL ok. */
void cluster_limiter_free(struct cluster_limiter *cl);

#endif
