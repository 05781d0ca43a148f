/*
 * A token bucket for API requests ([rate_limit] rate, burst): `rate` permits per second, at most
 * `burst` saved up, full at creation. Pure: the caller passes monotonic microseconds in.
 * The level is kept in 1e-12 permits, so fractional rates neither drift nor round away.
 */
#ifndef DATAMART_RATE_LIMITER_H
#define DATAMART_RATE_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"

struct rate_limiter;

/* the [rate_limit] ranges: 0 <= rate <= this (0 = unlimited), 1 <= burst <= this */
#define RATE_LIMITER_MAX_RATE 1000000.0
#define RATE_LIMITER_MAX_BURST 1000000

/* NULL when out of memory or rate/burst are out of range */
struct rate_limiter *rate_limiter_create(double rate, int burst, uint64_t now_us) DM_MUSTCHECK;
void rate_limiter_free(struct rate_limiter *rl);

/*
 * A reload: the bucket fills at the old rate up to now_us, then keeps its level, clamped to the
 * new burst (an unlimited limiter counts as full). Returns false, limiter unchanged, when rate or
 * burst are out of range.
 */
bool rate_limiter_configure(struct rate_limiter *rl, double rate, int burst,
                            uint64_t now_us) DM_MUSTCHECK;

/* Take one permit if one is available at now_us (never during a pause). */
bool rate_limiter_try_acquire(struct rate_limiter *rl, uint64_t now_us) DM_MUSTCHECK;

/* Give back a permit taken for a request that will not be sent (never above burst). */
void rate_limiter_refund(struct rate_limiter *rl);

/* Microseconds from now_us until try_acquire can succeed; 0 when it can now. */
uint64_t rate_limiter_wait_us(struct rate_limiter *rl, uint64_t now_us);

/*
 * No permit before until_us (a 429's Retry-After). An earlier pause that ends later stays: the
 * longest wait asked for wins. The bucket keeps filling meanwhile, up to burst.
 */
void rate_limiter_pause_until(struct rate_limiter *rl, uint64_t until_us);

#endif
