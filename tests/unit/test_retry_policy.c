/* retry_policy: full-jitter bounds and spread, overflow safety, determinism, the decide rules */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>

#include "compiler.h"
#include "retry_policy.h"

#define SAMPLES 4000

static struct retry_policy *policy(int64_t base_ms, int64_t max_ms, int max_attempts,
                                   int64_t max_age_s, uint64_t seed)
{
    struct retry_policy *p = retry_policy_create(base_ms, max_ms, max_attempts, max_age_s, seed);

    assert_non_null(p);
    return p;
}

static void test_create_rejects_bad_limits(void **state)
{
    struct retry_policy *p = policy(1000, 300000, 10, 86400, 1);

    (void)state;
    assert_null(retry_policy_create(0, 1000, 10, 60, 1));
    assert_null(retry_policy_create(2000, 1000, 10, 60, 1));
    assert_null(retry_policy_create(1000, 2000, 0, 60, 1));
    assert_null(retry_policy_create(1000, 2000, 10, 0, 1));
    assert_null(retry_policy_create(1000, 2000, 10, INT64_MAX, 1));
    assert_false(retry_policy_configure(p, 0, 1000, 10, 60));
    retry_policy_free(p);
    retry_policy_free(NULL);
}

/* every delay lies in [0, cap]; the samples reach both ends and average about cap / 2 */
static void test_delay_full_jitter_per_attempt(void **state)
{
    static const struct {
        int attempts;
        int64_t cap;
    } cases[] = {
        {-5, 1000},   {0, 1000},      {1, 1000},         {2, 2000},    {3, 4000},
        {6, 32000},   {9, 256000},    {10, 300000},      {11, 300000}, {64, 300000},
        {65, 300000}, {1000, 300000}, {INT_MAX, 300000},
    };
    struct retry_policy *p = policy(1000, 300000, 10, 86400, 42);

    (void)state;
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        int64_t lo = INT64_MAX, hi = -1;
        double sum = 0;

        for (int n = 0; n < SAMPLES; n++) {
            int64_t d = retry_policy_next_delay_ms(p, cases[i].attempts);

            assert_in_range(d, 0, cases[i].cap);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
            sum += (double)d;
        }
        assert_true(lo < cases[i].cap / 50);
        assert_true(hi > cases[i].cap - cases[i].cap / 50);
        assert_in_range((int64_t)(sum / SAMPLES), cases[i].cap * 45 / 100, cases[i].cap * 55 / 100);
    }
    retry_policy_free(p);
}

/* a cap of 1 ms has exactly two outcomes, both must appear about equally */
static void test_delay_tiny_cap_hits_both_ends(void **state)
{
    struct retry_policy *p = policy(1, 1, 3, 60, 7);
    int counts[2] = {0, 0};

    (void)state;
    for (int n = 0; n < SAMPLES; n++) {
        int64_t d = retry_policy_next_delay_ms(p, 5);

        assert_in_range(d, 0, 1);
        counts[d]++;
    }
    assert_in_range(counts[0], SAMPLES * 45 / 100, SAMPLES * 55 / 100);
    retry_policy_free(p);
}

/* huge base and max: doubling must saturate instead of overflowing */
static void test_delay_huge_limits(void **state)
{
    struct retry_policy *p = policy(INT64_MAX / 3, INT64_MAX, 10, 60, 3);

    (void)state;
    for (int a = 1; a < 200; a++)
        assert_true(retry_policy_next_delay_ms(p, a) >= 0);
    retry_policy_free(p);
}

static void test_same_seed_same_sequence(void **state)
{
    struct retry_policy *a = policy(1000, 300000, 10, 86400, 99);
    struct retry_policy *b = policy(1000, 300000, 10, 86400, 99);
    struct retry_policy *c = policy(1000, 300000, 10, 86400, 100);
    int differ = 0;

    (void)state;
    for (int n = 0; n < 100; n++) {
        int64_t da = retry_policy_next_delay_ms(a, 8);

        assert_int_equal(da, retry_policy_next_delay_ms(b, 8));
        differ += da != retry_policy_next_delay_ms(c, 8);
    }
    assert_true(differ > 90);
    retry_policy_free(a);
    retry_policy_free(b);
    retry_policy_free(c);
}

static void test_decide_rules(void **state)
{
    static const struct {
        const char *what;
        int attempts;
        int64_t first_seen, now, retry_after;
        enum retry_decision want;
        int64_t due_lo, due_hi;
    } cases[] = {
        {"first retry", 1, 0, 10000, -1, RETRY_DECISION_RETRY, 10000, 11000},
        {"third retry", 3, 0, 10000, -1, RETRY_DECISION_RETRY, 10000, 14000},
        {"attempts used up", 5, 0, 10000, -1, RETRY_DECISION_GIVE_UP, 0, 0},
        {"beyond attempts", 6, 0, 10000, -1, RETRY_DECISION_GIVE_UP, 0, 0},
        {"retry-after wins", 1, 0, 10000, 30000, RETRY_DECISION_RETRY, 40000, 40000},
        {"retry-after 0", 1, 0, 10000, 0, RETRY_DECISION_RETRY, 10000, 11000},
        {"retry-after exactly at max age", 1, 0, 10000, 50000, RETRY_DECISION_RETRY, 60000, 60000},
        {"retry-after past max age", 1, 0, 10000, 50001, RETRY_DECISION_GIVE_UP, 0, 0},
        {"already too old", 1, 0, 60001, -1, RETRY_DECISION_GIVE_UP, 0, 0},
        {"huge retry-after", 1, 0, 10000, INT64_MAX, RETRY_DECISION_GIVE_UP, 0, 0},
        {"huge now", 1, INT64_MAX - 1000, INT64_MAX - 10, -1, RETRY_DECISION_RETRY, INT64_MAX - 10,
         INT64_MAX},
    };
    /* base 1 s, max 4 s, 5 attempts, 60 s age */
    struct retry_policy *p = policy(1000, 4000, 5, 60, 5);

    (void)state;
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        for (int n = 0; n < 200; n++) {
            int64_t due = -12345;
            enum retry_decision d = retry_policy_decide(p, cases[i].attempts, cases[i].first_seen,
                                                        cases[i].now, cases[i].retry_after, &due);

            if (d != cases[i].want)
                fail_msg("%s: decision %d", cases[i].what, (int)d);
            if (d == RETRY_DECISION_GIVE_UP)
                assert_int_equal(due, -12345);
            else if (due < cases[i].due_lo || due > cases[i].due_hi)
                fail_msg("%s: due %lld", cases[i].what, (long long)due);
        }
    }
    retry_policy_free(p);
}

/* a jittered delay can push the due time over the age limit: then it gives up, never retries late
 */
static void test_decide_near_age_limit_never_late(void **state)
{
    struct retry_policy *p = policy(1000, 4000, 100, 60, 11);
    int retried = 0, gave_up = 0;

    (void)state;
    for (int n = 0; n < SAMPLES; n++) {
        int64_t due;

        if (retry_policy_decide(p, 3, 0, 58000, -1, &due) == RETRY_DECISION_RETRY) {
            assert_in_range(due, 58000, 60000);
            retried++;
        } else {
            gave_up++;
        }
    }
    /* cap 4 s, 2 s left: about half the draws fit */
    assert_in_range(retried, SAMPLES * 40 / 100, SAMPLES * 60 / 100);
    assert_int_equal(retried + gave_up, SAMPLES);
    retry_policy_free(p);
}

static void test_configure_applies_new_limits(void **state)
{
    struct retry_policy *p = policy(1000, 4000, 5, 60, 5);
    int64_t due;

    (void)state;
    assert_int_equal(retry_policy_decide(p, 5, 0, 0, -1, &due), RETRY_DECISION_GIVE_UP);
    assert_true(retry_policy_configure(p, 10, 20, 8, 60));
    assert_int_equal(retry_policy_decide(p, 5, 0, 0, -1, &due), RETRY_DECISION_RETRY);
    assert_in_range(due, 0, 20);
    assert_int_equal(retry_policy_decide(p, 8, 0, 0, -1, &due), RETRY_DECISION_GIVE_UP);
    retry_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_rejects_bad_limits),
        cmocka_unit_test(test_delay_full_jitter_per_attempt),
        cmocka_unit_test(test_delay_tiny_cap_hits_both_ends),
        cmocka_unit_test(test_delay_huge_limits),
        cmocka_unit_test(test_same_seed_same_sequence),
        cmocka_unit_test(test_decide_rules),
        cmocka_unit_test(test_decide_near_age_limit_never_late),
        cmocka_unit_test(test_configure_applies_new_limits),
    };

    return cmocka_run_group_tests_name("retry_policy", tests, NULL, NULL);
}
