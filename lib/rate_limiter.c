#include "rate_limiter.h"

#include <stdlib.h>

/* one permit in level units (1e-12 permits): a rate of r permits/s adds r * 1e6 units per us */
#define PERMIT INT64_C(1000000000000)

struct rate_limiter {
    int64_t rate_units_per_us; /* 0 = unlimited */
    int64_t capacity;          /* burst * PERMIT */
    int64_t level;             /* in [0, capacity] */
    uint64_t refilled_us;      /* level is exact as of this time */
    uint64_t paused_until_us;
};

static bool settings_valid(double rate, int burst)
{
    return rate >= 0 && rate <= RATE_LIMITER_MAX_RATE && burst >= 1 &&
           burst <= RATE_LIMITER_MAX_BURST;
}

/* a tiny positive rate still limits: it must not round down to 0, which means unlimited */
static int64_t rate_units(double rate)
{
    int64_t units = (int64_t)(rate * 1e6 + 0.5);

    return rate > 0 && units == 0 ? 1 : units;
}

static void refill(struct rate_limiter *rl, uint64_t now_us)
{
    uint64_t elapsed;
    int64_t deficit;

    if (now_us <= rl->refilled_us)
        return;
    elapsed = now_us - rl->refilled_us;
    rl->refilled_us = now_us;
    deficit = rl->capacity - rl->level;
    /* compare before multiplying: a long idle spell would overflow elapsed * rate */
    if (rl->rate_units_per_us == 0 || elapsed >= (uint64_t)(deficit / rl->rate_units_per_us) + 1)
        rl->level = rl->capacity;
    else
        rl->level += (int64_t)elapsed * rl->rate_units_per_us;
}

struct rate_limiter *rate_limiter_create(double rate, int burst, uint64_t now_us)
{
    struct rate_limiter *rl;

    if (!settings_valid(rate, burst))
        return NULL;
    rl = calloc(1, sizeof(*rl));
    if (!rl)
        return NULL;
    rl->rate_units_per_us = rate_units(rate);
    rl->capacity = (int64_t)burst * PERMIT;
    rl->level = rl->capacity;
    rl->refilled_us = now_us;
    return rl;
}

void rate_limiter_free(struct rate_limiter *rl)
{
    free(rl);
}

bool rate_limiter_configure(struct rate_limiter *rl, double rate, int burst, uint64_t now_us)
{
    if (!settings_valid(rate, burst))
        return false;
    refill(rl, now_us);
    rl->rate_units_per_us = rate_units(rate);
    rl->capacity = (int64_t)burst * PERMIT;
    if (rl->level > rl->capacity)
        rl->level = rl->capacity;
    return true;
}

bool rate_limiter_try_acquire(struct rate_limiter *rl, uint64_t now_us)
{
    if (now_us < rl->paused_until_us)
        return false;
    refill(rl, now_us);
    if (rl->rate_units_per_us == 0)
        return true;
    if (rl->level < PERMIT)
        return false;
    rl->level -= PERMIT;
    return true;
}

void rate_limiter_refund(struct rate_limiter *rl)
{
    rl->level = rl->level > rl->capacity - PERMIT ? rl->capacity : rl->level + PERMIT;
}

uint64_t rate_limiter_wait_us(struct rate_limiter *rl, uint64_t now_us)
{
    uint64_t pause = now_us < rl->paused_until_us ? rl->paused_until_us - now_us : 0;
    uint64_t fill = 0;

    refill(rl, now_us);
    if (rl->rate_units_per_us != 0 && rl->level < PERMIT) {
        int64_t deficit = PERMIT - rl->level;

        fill = (uint64_t)((deficit + rl->rate_units_per_us - 1) / rl->rate_units_per_us);
    }
    return pause > fill ? pause : fill;
}

void rate_limiter_pause_until(struct rate_limiter *rl, uint64_t until_us)
{
    if (until_us > rl->paused_until_us)
        rl->paused_until_us = until_us;
}
