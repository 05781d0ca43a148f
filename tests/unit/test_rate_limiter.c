/* rate_limiter: issue #5's accuracy property under greedy callers with a fake clock, exact waits,
   pauses, reloads, unlimited mode, extreme clocks */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h> /* NAN, INFINITY */
#include <stdlib.h>

#include "compiler.h"
#include "rate_limiter.h"

#define SECOND_US UINT64_C(1000000)

static double distance(double a, double b)
{
    return a > b ? a - b : b - a;
}

static struct rate_limiter *limiter(double rate, int burst, uint64_t now_us)
{
    struct rate_limiter *rl = rate_limiter_create(rate, burst, now_us);

    assert_non_null(rl);
    return rl;
}

/* how a greedy caller sleeps after try_acquire says no */
enum wake {
    WAKE_EXACT,       /* exactly rate_limiter_wait_us() later */
    WAKE_WHOLE_MS,    /* that, rounded up to a whole millisecond (a ms-resolution timer) */
    WAKE_TICK_1MS,    /* on a fixed 1 ms tick, taking every permit available at each */
    WAKE_TICK_7919US, /* on a coarse, odd tick that never lines up with the permit period */
};

/* Run a greedy caller from t0 for duration_us; returns the grant times (caller frees). */
static uint64_t *run_greedy(struct rate_limiter *rl, enum wake wake, uint64_t t0,
                            uint64_t duration_us, size_t max_grants, size_t *count)
{
    uint64_t *ts = calloc(max_grants, sizeof(*ts));
    uint64_t now = t0;

    assert_non_null(ts);
    *count = 0;
    while (now < t0 + duration_us) {
        uint64_t wait;

        while (rate_limiter_try_acquire(rl, now)) {
            assert_true(*count < max_grants);
            ts[(*count)++] = now - t0;
        }
        wait = rate_limiter_wait_us(rl, now);
        assert_true(wait > 0);
        switch (wake) {
        case WAKE_EXACT:
            now += wait;
            break;
        case WAKE_WHOLE_MS:
            now += (wait + 999) / 1000 * 1000;
            break;
        case WAKE_TICK_1MS:
            now += 1000;
            break;
        case WAKE_TICK_7919US:
            now += 7919;
            break;
        }
    }
    return ts;
}

/* each way of waking and how late after a permit's due time it can come */
static const struct {
    enum wake wake;
    uint64_t max_late_us;
} wakes[] = {
    {WAKE_EXACT, 0},
    {WAKE_WHOLE_MS, 999},
    {WAKE_TICK_1MS, 999},
    {WAKE_TICK_7919US, 7918},
};

/* the most grants in any half-open window [t, t + width) */
static size_t max_in_window(const uint64_t *ts, size_t count, uint64_t width)
{
    size_t best = 0, j = 0;

    for (size_t i = 0; i < count; i++) {
        if (j < i)
            j = i;
        while (j < count && ts[j] < ts[i] + width)
            j++;
        if (j - i > best)
            best = j - i;
    }
    return best;
}

static void test_issue_accuracy_rate20_burst5(void **state)
{
    (void)state;
    for (size_t w = 0; w < DM_ARRAY_LEN(wakes); w++) {
        struct rate_limiter *rl = limiter(20, 5, 123456789);
        size_t count;
        uint64_t *ts = run_greedy(rl, wakes[w].wake, 123456789, 20 * SECOND_US, 1000, &count);
        double mean = (double)count / 20.0;

        /* no 1-second window above rate + burst; the mean within 5 % of 20/s */
        assert_true(max_in_window(ts, count, SECOND_US) <= 25);
        if (distance(mean, 20.0) > 1.0)
            fail_msg("wake %zu: mean %.3f/s", w, mean);
        /* a greedy caller gets exactly the burst plus one permit per 50 ms */
        assert_in_range(count, 404, 405);
        free(ts);
        rate_limiter_free(rl);
    }
}

/*
 * The same property for other rates, fractional ones included: no drift over a long run. A caller
 * that wakes late loses what would overflow the bucket meanwhile (token-bucket semantics), so
 * the exact count is due only when its lateness fits in burst - 1 permits.
 */
static void test_accuracy_table(void **state)
{
    static const struct {
        double rate;
        int burst;
        uint64_t seconds;
    } cases[] = {
        {4, 20, 60},    {0.5, 1, 120}, {3.3, 2, 100},     {7.77, 1, 100},
        {1000, 50, 20}, {0.1, 3, 600}, {333.333, 10, 30}, {1, 1, 50},
    };
    (void)state;
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        double rate = cases[i].rate;
        double expected = cases[i].burst + rate * (double)cases[i].seconds;
        size_t max_grants = (size_t)expected + 16;

        for (size_t w = 0; w < DM_ARRAY_LEN(wakes); w++) {
            struct rate_limiter *rl = limiter(rate, cases[i].burst, 0);
            bool lossless = (double)wakes[w].max_late_us * rate <= (cases[i].burst - 1) * 1e6;
            /* permits that came due in the last, unfinished sleep are not taken */
            double tail = rate * (double)wakes[w].max_late_us / 1e6;
            double lowest = lossless ? expected - 1.5 - tail : expected * 0.9;
            size_t count, window_max, second_half;
            uint64_t *ts =
                run_greedy(rl, wakes[w].wake, 0, cases[i].seconds * SECOND_US, max_grants, &count);

            window_max = max_in_window(ts, count, SECOND_US);
            if (window_max > (size_t)(rate + cases[i].burst) || (double)count > expected + 1.5 ||
                (double)count < lowest)
                fail_msg("rate %g burst %d wake %zu: %zu grants (want %.1f), %zu in a second", rate,
                         cases[i].burst, w, count, expected, window_max);
            /* the second half, long after the burst is spent, runs at the rate itself */
            second_half = 0;
            for (size_t k = 0; k < count; k++)
                second_half += ts[k] >= cases[i].seconds * SECOND_US / 2;
            if (lossless &&
                distance((double)second_half, rate * (double)cases[i].seconds / 2) > 1.5 + tail)
                fail_msg("rate %g wake %zu: %zu grants in the second half", rate, w, second_half);
            free(ts);
            rate_limiter_free(rl);
        }
    }
}

static void test_starts_full_then_waits_exactly(void **state)
{
    struct rate_limiter *rl = limiter(20, 5, 0);

    (void)state;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(rate_limiter_wait_us(rl, 0), 0);
        assert_true(rate_limiter_try_acquire(rl, 0));
    }
    assert_false(rate_limiter_try_acquire(rl, 0));
    assert_int_equal(rate_limiter_wait_us(rl, 0), 50000);
    assert_int_equal(rate_limiter_wait_us(rl, 20000), 30000);
    assert_false(rate_limiter_try_acquire(rl, 49999));
    assert_int_equal(rate_limiter_wait_us(rl, 49999), 1);
    assert_true(rate_limiter_try_acquire(rl, 50000));
    assert_false(rate_limiter_try_acquire(rl, 50000));
    rate_limiter_free(rl);
}

/* sub-permit precision: 3/s leaves a third of a microsecond over each time, and it adds up */
static void test_refund_gives_back_up_to_burst(void **state)
{
    struct rate_limiter *rl = rate_limiter_create(1, 2, 0);

    (void)state;
    assert_non_null(rl);
    assert_true(rate_limiter_try_acquire(rl, 0));
    assert_true(rate_limiter_try_acquire(rl, 0));
    assert_false(rate_limiter_try_acquire(rl, 0));
    rate_limiter_refund(rl);
    assert_int_equal(rate_limiter_wait_us(rl, 0), 0);
    assert_true(rate_limiter_try_acquire(rl, 0));
    assert_false(rate_limiter_try_acquire(rl, 0));
    /* a full bucket stays at burst */
    rate_limiter_refund(rl);
    rate_limiter_refund(rl);
    rate_limiter_refund(rl);
    assert_true(rate_limiter_try_acquire(rl, 0));
    assert_true(rate_limiter_try_acquire(rl, 0));
    assert_false(rate_limiter_try_acquire(rl, 0));
    rate_limiter_free(rl);
}

static void test_fractional_period(void **state)
{
    struct rate_limiter *rl = limiter(3, 2, 0);
    struct rate_limiter *slow = limiter(0.5, 1, 0);

    (void)state;
    assert_true(rate_limiter_try_acquire(rl, 0));
    assert_true(rate_limiter_try_acquire(rl, 0));
    assert_int_equal(rate_limiter_wait_us(rl, 0), 333334);
    assert_true(rate_limiter_try_acquire(rl, 333334));
    /* after 3 permits the clock is exactly one second on, not 1000002 us */
    assert_false(rate_limiter_try_acquire(rl, 666666));
    assert_true(rate_limiter_try_acquire(rl, 666667));
    assert_int_equal(rate_limiter_wait_us(rl, 666667), 333333);
    assert_true(rate_limiter_try_acquire(rl, SECOND_US));

    assert_true(rate_limiter_try_acquire(slow, 0));
    assert_int_equal(rate_limiter_wait_us(slow, 0), 2 * SECOND_US);
    assert_false(rate_limiter_try_acquire(slow, 2 * SECOND_US - 1));
    assert_true(rate_limiter_try_acquire(slow, 2 * SECOND_US));
    rate_limiter_free(rl);
    rate_limiter_free(slow);
}

static void test_unlimited(void **state)
{
    struct rate_limiter *rl = limiter(0, 1, 0);

    (void)state;
    for (int i = 0; i < 100000; i++)
        assert_true(rate_limiter_try_acquire(rl, 5));
    assert_int_equal(rate_limiter_wait_us(rl, 5), 0);
    /* a 429 pauses even an unlimited limiter */
    rate_limiter_pause_until(rl, 1000);
    assert_false(rate_limiter_try_acquire(rl, 999));
    assert_int_equal(rate_limiter_wait_us(rl, 400), 600);
    assert_true(rate_limiter_try_acquire(rl, 1000));
    rate_limiter_free(rl);
}

static void test_pause_until(void **state)
{
    struct rate_limiter *rl = limiter(10, 3, 0);

    (void)state;
    rate_limiter_pause_until(rl, 2 * SECOND_US);
    assert_false(rate_limiter_try_acquire(rl, 0));
    assert_int_equal(rate_limiter_wait_us(rl, 0), 2 * SECOND_US);
    /* a shorter pause does not cut the longer one short; a longer one extends it */
    rate_limiter_pause_until(rl, SECOND_US);
    assert_false(rate_limiter_try_acquire(rl, SECOND_US));
    rate_limiter_pause_until(rl, 3 * SECOND_US);
    assert_false(rate_limiter_try_acquire(rl, 2 * SECOND_US));
    assert_int_equal(rate_limiter_wait_us(rl, 2 * SECOND_US), SECOND_US);
    /* afterwards the saved-up burst is there, then the rate */
    for (int i = 0; i < 3; i++)
        assert_true(rate_limiter_try_acquire(rl, 3 * SECOND_US));
    assert_false(rate_limiter_try_acquire(rl, 3 * SECOND_US));
    assert_int_equal(rate_limiter_wait_us(rl, 3 * SECOND_US), 100000);
    /* a pause shorter than the refill wait: the refill decides */
    rate_limiter_pause_until(rl, 3 * SECOND_US + 10);
    assert_int_equal(rate_limiter_wait_us(rl, 3 * SECOND_US), 100000);
    rate_limiter_free(rl);
}

static void test_configure_keeps_level(void **state)
{
    struct rate_limiter *rl = limiter(10, 10, 0);

    (void)state;
    for (int i = 0; i < 6; i++)
        assert_true(rate_limiter_try_acquire(rl, 0));
    /* 4 left; at 100 ms the old rate has added one: 5, clamped to the new burst of 3 */
    assert_true(rate_limiter_configure(rl, 1, 3, 100000));
    for (int i = 0; i < 3; i++)
        assert_true(rate_limiter_try_acquire(rl, 100000));
    assert_false(rate_limiter_try_acquire(rl, 100000));
    assert_int_equal(rate_limiter_wait_us(rl, 100000), SECOND_US);

    /* a larger burst does not invent permits */
    assert_true(rate_limiter_configure(rl, 1, 50, 100000));
    assert_false(rate_limiter_try_acquire(rl, 100000));

    /* out of range: refused, nothing changes */
    assert_false(rate_limiter_configure(rl, -1, 3, 100000));
    assert_false(rate_limiter_configure(rl, NAN, 3, 100000));
    assert_false(rate_limiter_configure(rl, 2e6, 3, 100000));
    assert_false(rate_limiter_configure(rl, 1, 0, 100000));
    assert_int_equal(rate_limiter_wait_us(rl, 100000), SECOND_US);

    /* unlimited, then limited again: it counts as full */
    assert_true(rate_limiter_configure(rl, 0, 4, 200000));
    assert_true(rate_limiter_try_acquire(rl, 200000));
    assert_true(rate_limiter_configure(rl, 2, 4, 300000));
    for (int i = 0; i < 4; i++)
        assert_true(rate_limiter_try_acquire(rl, 300000));
    assert_false(rate_limiter_try_acquire(rl, 300000));
    rate_limiter_free(rl);
}

static void test_create_rejects_bad_settings(void **state)
{
    (void)state;
    assert_null(rate_limiter_create(-0.5, 1, 0));
    assert_null(rate_limiter_create(NAN, 1, 0));
    assert_null(rate_limiter_create(INFINITY, 1, 0));
    assert_null(rate_limiter_create(RATE_LIMITER_MAX_RATE * 2, 1, 0));
    assert_null(rate_limiter_create(1, 0, 0));
    assert_null(rate_limiter_create(1, RATE_LIMITER_MAX_BURST + 1, 0));
    rate_limiter_free(NULL);
}

/* the extremes of the ranges, long idle spells and a clock stepping back stay exact */
static void test_extremes(void **state)
{
    struct rate_limiter *big = limiter(RATE_LIMITER_MAX_RATE, RATE_LIMITER_MAX_BURST, 0);
    struct rate_limiter *tiny = limiter(1e-9, 1, 0);
    struct rate_limiter *rl = limiter(2, 2, 1000);

    (void)state;
    for (int i = 0; i < RATE_LIMITER_MAX_BURST; i++)
        assert_true(rate_limiter_try_acquire(big, 0));
    assert_false(rate_limiter_try_acquire(big, 0));
    assert_int_equal(rate_limiter_wait_us(big, 0), 1);
    assert_true(rate_limiter_try_acquire(big, UINT64_MAX));

    /* a rate that rounds below one unit still limits */
    assert_true(rate_limiter_try_acquire(tiny, 0));
    assert_false(rate_limiter_try_acquire(tiny, 1000 * SECOND_US));
    assert_true(rate_limiter_wait_us(tiny, 0) > 1000 * SECOND_US);

    /* a stepped-back clock adds nothing and does not break later refills */
    assert_true(rate_limiter_try_acquire(rl, 1000));
    assert_true(rate_limiter_try_acquire(rl, 1000));
    assert_false(rate_limiter_try_acquire(rl, 10));
    assert_int_equal(rate_limiter_wait_us(rl, 1000), 500000);
    assert_true(rate_limiter_try_acquire(rl, 501000));
    /* after a very long idle spell: full, no more */
    assert_true(rate_limiter_try_acquire(rl, UINT64_MAX / 2));
    assert_true(rate_limiter_try_acquire(rl, UINT64_MAX / 2));
    assert_false(rate_limiter_try_acquire(rl, UINT64_MAX / 2));
    rate_limiter_free(big);
    rate_limiter_free(tiny);
    rate_limiter_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_accuracy_rate20_burst5),
        cmocka_unit_test(test_accuracy_table),
        cmocka_unit_test(test_starts_full_then_waits_exactly),
        cmocka_unit_test(test_refund_gives_back_up_to_burst),
        cmocka_unit_test(test_fractional_period),
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_pause_until),
        cmocka_unit_test(test_configure_keeps_level),
        cmocka_unit_test(test_create_rejects_bad_settings),
        cmocka_unit_test(test_extremes),
    };

    return cmocka_run_group_tests_name("rate_limiter", tests, NULL, NULL);
}
