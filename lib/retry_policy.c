#include "retry_policy.h"

#include <stdlib.h>

struct retry_policy {
    int64_t base_ms;
    int64_t max_ms;
    int max_attempts;
    int64_t max_age_ms;
    uint64_t prng; /* splitmix64 state: every seed, zero included, gives a full-period stream */
};

/* the configured max_age_s is at most a year, but a wild value must not overflow the ms */
#define MAX_AGE_S_LIMIT (INT64_MAX / 1000)

static bool limits_valid(int64_t base_ms, int64_t max_ms, int max_attempts, int64_t max_age_s)
{
    return base_ms >= 1 && max_ms >= base_ms && max_attempts >= 1 && max_age_s >= 1 &&
           max_age_s <= MAX_AGE_S_LIMIT;
}

struct retry_policy *retry_policy_create(int64_t base_ms, int64_t max_ms, int max_attempts,
                                         int64_t max_age_s, uint64_t seed)
{
    struct retry_policy *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->prng = seed;
    if (!retry_policy_configure(p, base_ms, max_ms, max_attempts, max_age_s)) {
        free(p);
        return NULL;
    }
    return p;
}

void retry_policy_free(struct retry_policy *p)
{
    free(p);
}

bool retry_policy_configure(struct retry_policy *p, int64_t base_ms, int64_t max_ms,
                            int max_attempts, int64_t max_age_s)
{
    if (!limits_valid(base_ms, max_ms, max_attempts, max_age_s))
        return false;
    p->base_ms = base_ms;
    p->max_ms = max_ms;
    p->max_attempts = max_attempts;
    p->max_age_ms = max_age_s * 1000;
    return true;
}

static uint64_t splitmix64_next(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));

    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* uniform in [0, bound]; rejection sampling removes the modulo bias */
static uint64_t uniform_inclusive(uint64_t *state, uint64_t bound)
{
    uint64_t n, limit, r;

    if (bound == UINT64_MAX)
        return splitmix64_next(state);
    n = bound + 1;
    limit = UINT64_MAX - UINT64_MAX % n;
    do {
        r = splitmix64_next(state);
    } while (r >= limit);
    return r % n;
}

/* min(max_ms, base_ms * 2^(attempts - 1)), doubling only while it stays below max_ms */
static int64_t backoff_cap_ms(const struct retry_policy *p, int attempts_made)
{
    int64_t cap = p->base_ms;

    for (int i = 1; i < attempts_made && cap < p->max_ms; i++)
        cap = cap > p->max_ms / 2 ? p->max_ms : cap * 2;
    return cap < p->max_ms ? cap : p->max_ms;
}

int64_t retry_policy_next_delay_ms(struct retry_policy *p, int attempts_made)
{
    return (int64_t)uniform_inclusive(&p->prng, (uint64_t)backoff_cap_ms(p, attempts_made));
}

static int64_t add_saturating(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

enum retry_decision retry_policy_decide(struct retry_policy *p, int attempts_made,
                                        int64_t first_seen_ms, int64_t now_ms,
                                        int64_t retry_after_ms, int64_t *due_ms)
{
    int64_t due;

    if (attempts_made >= p->max_attempts)
        return RETRY_DECISION_GIVE_UP;
    due = add_saturating(now_ms, retry_policy_next_delay_ms(p, attempts_made));
    if (retry_after_ms >= 0) {
        int64_t earliest = add_saturating(now_ms, retry_after_ms);

        if (earliest > due)
            due = earliest;
    }
    if (due > add_saturating(first_seen_ms, p->max_age_ms))
        return RETRY_DECISION_GIVE_UP;
    *due_ms = due;
    return RETRY_DECISION_RETRY;
}
