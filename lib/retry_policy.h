/*
 * When to try a failed job again (issue #5, "Retries"): exponential backoff with full jitter,
 * bounded by max_attempts and max_age_s. Pure: the caller passes every time value in.
 */
#ifndef DATAMART_RETRY_POLICY_H
#define DATAMART_RETRY_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"

struct retry_policy;

enum retry_decision {
    RETRY_DECISION_RETRY = 0,
    RETRY_DECISION_GIVE_UP,
};

/*
 * base_ms >= 1, max_ms >= base_ms, max_attempts >= 1, max_age_s >= 1 (the [queue] keys).
 * seed drives the jitter PRNG (any value; tests pass a constant, the daemon something varying).
 * Returns NULL when out of memory or an argument is out of range.
 */
struct retry_policy *retry_policy_create(int64_t base_ms, int64_t max_ms, int max_attempts,
                                         int64_t max_age_s, uint64_t seed) DM_MUSTCHECK;
void retry_policy_free(struct retry_policy *p);

/* A reload: new limits, same PRNG stream. Returns false (policy unchanged) when out of range. */
bool retry_policy_configure(struct retry_policy *p, int64_t base_ms, int64_t max_ms,
                            int max_attempts, int64_t max_age_s) DM_MUSTCHECK;

/*
 * Full jitter: uniform in [0, min(max_ms, base_ms * 2^(attempts_made - 1))], all values equally
 * likely. attempts_made < 1 counts as 1; any large count saturates at max_ms without overflow.
 */
int64_t retry_policy_next_delay_ms(struct retry_policy *p, int attempts_made);

/*
 * Decide after a transient failure; attempts_made counts requests actually sent for the job.
 * Rules, in order:
 *  1. attempts_made >= max_attempts: GIVE_UP.
 *  2. due = now_ms + retry_policy_next_delay_ms(attempts_made).
 *  3. retry_after_ms >= 0 (the server's Retry-After, a delay from now_ms): due is at least
 *     now_ms + retry_after_ms.
 *  4. due > first_seen_ms + max_age_s * 1000: GIVE_UP (the job would outlive its age limit).
 *  5. otherwise RETRY at due.
 * *due_ms is written on RETRY only. Arithmetic saturates, so huge inputs cannot overflow.
 */
enum retry_decision retry_policy_decide(struct retry_policy *p, int attempts_made,
                                        int64_t first_seen_ms, int64_t now_ms,
                                        int64_t retry_after_ms, int64_t *due_ms) DM_MUSTCHECK;

#endif
