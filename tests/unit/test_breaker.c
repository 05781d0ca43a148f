/* breaker: opening rules, probe scheduling and doubling, the AUTH pause, reloads, names */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "breaker.h"
#include "compiler.h"

/* the contract's defaults */
static const struct breaker_settings defaults = {
    .enabled = true,
    .consecutive = 10,
    .failure_ratio = 0.5,
    .window = 20,
    .probe_interval_ms = 5000,
    .probe_max_ms = 60000,
};

static struct breaker *breaker(const struct breaker_settings *s)
{
    struct breaker *b = breaker_create(s);

    assert_non_null(b);
    return b;
}

/* Feed closed-state results ('F' transient failure, 'S' success); returns the 1-based result
   that opened the breaker, or 0. */
static size_t feed(struct breaker *b, const char *results)
{
    for (size_t i = 0; results[i]; i++) {
        bool changed = results[i] == 'F' ? breaker_transient_failure(b, false, 1000)
                                         : breaker_success(b, false);

        if (breaker_state(b) != BREAKER_STATE_CLOSED) {
            assert_true(changed);
            return i + 1;
        }
        assert_false(changed);
    }
    return 0;
}

static void test_opening_rules(void **state)
{
    static const struct {
        const char *what;
        int consecutive;
        double ratio;
        int window;
        const char *results;
        size_t opens_at;
    } cases[] = {
        {"10 in a row", 10, 0.5, 20, "FFFFFFFFFF", 10},
        {"9 in a row", 10, 0.5, 20, "FFFFFFFFF", 0},
        {"a success restarts the run", 3, 1, 100, "FFSFFSFFS", 0},
        {"run after a success", 3, 1, 100, "FFSFFF", 6},
        {"half of a full window", 100, 0.5, 20, "SFSFSFSFSFSFSFSFSFSF", 20},
        {"ratio waits for a full window", 100, 0.5, 4, "FFF", 0},
        {"ratio at the window filling", 100, 0.5, 4, "SSFF", 4},
        {"only a failure opens it", 100, 0.5, 4, "FFSSF", 5},
        {"just under the ratio", 100, 0.5, 20, "SSSSSSSSSSSFFFFFFFFF", 0},
        {"reaching the ratio", 100, 0.5, 20, "SSSSSSSSSSSFFFFFFFFFF", 21},
        {"window slides: old failures drop out", 100, 0.5, 4, "FSSSFSSSFSSSFSSS", 0},
        {"window slides into the ratio", 100, 0.5, 4, "SSSSFSFS", 7},
        /* 0.28 * 25 is 7.000000000000001 in doubles: 7 of 25 must still count */
        {"ratio 0.28 of 25 (no float drift)", 100, 0.28, 25, "SSSSSSSSSSSSSSSSSSFFFFFFF", 25},
        {"ratio 0.28, six of 25", 100, 0.28, 25, "SSSSSSSSSSSSSSSSSSSFFFFFF", 0},
        {"ratio 1 needs all", 100, 1, 5, "FFFFSFFFFF", 10},
        {"window 1", 100, 1, 1, "SSF", 3},
        {"consecutive 1", 1, 1, 100, "SSSF", 4},
    };

    (void)state;
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        struct breaker_settings s = defaults;
        struct breaker *b;
        size_t at;

        s.consecutive = cases[i].consecutive;
        s.failure_ratio = cases[i].ratio;
        s.window = cases[i].window;
        b = breaker(&s);
        at = feed(b, cases[i].results);
        if (at != cases[i].opens_at)
            fail_msg("%s: opened at %zu, want %zu", cases[i].what, at, cases[i].opens_at);
        if (at) {
            assert_int_equal(breaker_state(b), BREAKER_STATE_OPEN);
            assert_int_equal(breaker_reason(b), BREAKER_REASON_TRANSIENT);
        }
        breaker_free(b);
    }
}

static void test_probe_schedule_doubles_to_max(void **state)
{
    static const int64_t delays[] = {10000, 20000, 40000, 60000, 60000};
    struct breaker *b = breaker(&defaults);
    int64_t now = 100000;

    (void)state;
    assert_int_equal(breaker_allow(b, now), BREAKER_PERMIT_PASS);
    assert_int_equal(breaker_next_probe_ms(b), -1);
    for (int i = 0; i < 10; i++)
        (void)breaker_transient_failure(b, false, now);
    assert_int_equal(breaker_state(b), BREAKER_STATE_OPEN);
    assert_int_equal(breaker_next_probe_ms(b), now + 5000);
    assert_int_equal(breaker_allow(b, now + 4999), BREAKER_PERMIT_DENY);
    now += 5000;
    for (size_t i = 0; i < DM_ARRAY_LEN(delays); i++) {
        assert_int_equal(breaker_allow(b, now), BREAKER_PERMIT_PROBE);
        assert_int_equal(breaker_state(b), BREAKER_STATE_HALF_OPEN);
        assert_int_equal(breaker_next_probe_ms(b), -1);
        /* one probe at a time */
        assert_int_equal(breaker_allow(b, now + 1000000), BREAKER_PERMIT_DENY);
        now += 700; /* the probe's round trip */
        assert_false(breaker_transient_failure(b, true, now));
        assert_int_equal(breaker_state(b), BREAKER_STATE_OPEN);
        assert_int_equal(breaker_reason(b), BREAKER_REASON_TRANSIENT);
        assert_int_equal(breaker_next_probe_ms(b), now + delays[i]);
        assert_int_equal(breaker_allow(b, now + delays[i] - 1), BREAKER_PERMIT_DENY);
        now += delays[i];
    }
    /* a probe success closes it and forgets the failures and the grown delay */
    assert_int_equal(breaker_allow(b, now), BREAKER_PERMIT_PROBE);
    assert_true(breaker_success(b, true));
    assert_int_equal(breaker_state(b), BREAKER_STATE_CLOSED);
    assert_int_equal(breaker_reason(b), BREAKER_REASON_NONE);
    assert_int_equal(breaker_allow(b, now), BREAKER_PERMIT_PASS);
    assert_int_equal(feed(b, "FFFFFFFFF"), 0);
    assert_int_equal(feed(b, "F"), 1);
    assert_int_equal(breaker_next_probe_ms(b), 1000 + 5000);
    breaker_free(b);
}

/* answers of requests sent before it opened neither close nor push it */
static void test_late_answers_ignored_while_open(void **state)
{
    struct breaker *b = breaker(&defaults);

    (void)state;
    assert_int_equal(feed(b, "FFFFFFFFFF"), 10);
    assert_false(breaker_success(b, false));
    assert_false(breaker_transient_failure(b, false, 3000));
    assert_int_equal(breaker_state(b), BREAKER_STATE_OPEN);
    assert_int_equal(breaker_next_probe_ms(b), 6000);
    assert_int_equal(breaker_allow(b, 6000), BREAKER_PERMIT_PROBE);
    assert_false(breaker_success(b, false));
    assert_false(breaker_transient_failure(b, false, 6100));
    assert_int_equal(breaker_state(b), BREAKER_STATE_HALF_OPEN);
    /* a "probe" answer while no probe is out is just late */
    breaker_probe_cancel(b);
    assert_false(breaker_success(b, true));
    assert_int_equal(breaker_state(b), BREAKER_STATE_OPEN);
    breaker_free(b);
}

static void test_probe_cancel_allows_next_probe(void **state)
{
    struct breaker *b = breaker(&defaults);

    (void)state;
    assert_int_equal(feed(b, "FFFFFFFFFF"), 10);
    assert_int_equal(breaker_allow(b, 7000), BREAKER_PERMIT_PROBE);
    breaker_probe_cancel(b);
    assert_int_equal(breaker_state(b), BREAKER_STATE_OPEN);
    assert_int_equal(breaker_next_probe_ms(b), 6000);
    assert_int_equal(breaker_allow(b, 7001), BREAKER_PERMIT_PROBE);
    /* cancelling when no probe is out changes nothing */
    breaker_probe_cancel(b);
    breaker_probe_cancel(b);
    assert_int_equal(breaker_allow(b, 7002), BREAKER_PERMIT_PROBE);
    breaker_free(b);
}

static void test_auth_pause(void **state)
{
    struct breaker_settings s = defaults;
    struct breaker *b;

    (void)state;
    /* the AUTH pause is contract behaviour: it applies with the breaker disabled too */
    s.enabled = false;
    b = breaker(&s);
    assert_int_equal(feed(b, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"), 0);
    assert_true(breaker_auth_fault(b, false, 1000));
    assert_int_equal(breaker_state(b), BREAKER_STATE_OPEN);
    assert_int_equal(breaker_reason(b), BREAKER_REASON_AUTH);
    assert_int_equal(breaker_next_probe_ms(b), 6000);
    /* more 401s from requests already out: reported once, schedule kept */
    assert_false(breaker_auth_fault(b, false, 2000));
    assert_int_equal(breaker_next_probe_ms(b), 6000);
    /* other requests' successes and failures do not lift it */
    assert_false(breaker_success(b, false));
    assert_false(breaker_transient_failure(b, false, 2500));
    assert_int_equal(breaker_reason(b), BREAKER_REASON_AUTH);
    assert_int_equal(breaker_allow(b, 5999), BREAKER_PERMIT_DENY);
    /* probe hits a 503: still an auth pause, twice the delay */
    assert_int_equal(breaker_allow(b, 6000), BREAKER_PERMIT_PROBE);
    assert_false(breaker_transient_failure(b, true, 6100));
    assert_int_equal(breaker_reason(b), BREAKER_REASON_AUTH);
    assert_int_equal(breaker_next_probe_ms(b), 16100);
    /* probe still unauthorised: doubled again */
    assert_int_equal(breaker_allow(b, 16100), BREAKER_PERMIT_PROBE);
    assert_false(breaker_auth_fault(b, true, 16200));
    assert_int_equal(breaker_next_probe_ms(b), 36200);
    /* the first success resumes everything */
    assert_int_equal(breaker_allow(b, 36200), BREAKER_PERMIT_PROBE);
    assert_true(breaker_success(b, true));
    assert_int_equal(breaker_state(b), BREAKER_STATE_CLOSED);
    assert_int_equal(breaker_reason(b), BREAKER_REASON_NONE);
    breaker_free(b);
}

static void test_auth_overrides_transient(void **state)
{
    struct breaker *b = breaker(&defaults);

    (void)state;
    assert_int_equal(feed(b, "FFFFFFFFFF"), 10);
    /* a late 401 turns the open breaker into an auth pause on the same schedule */
    assert_true(breaker_auth_fault(b, false, 2000));
    assert_int_equal(breaker_reason(b), BREAKER_REASON_AUTH);
    assert_int_equal(breaker_next_probe_ms(b), 6000);
    breaker_reset(b);
    /* an auth probe answer during a transient opening */
    assert_int_equal(feed(b, "FFFFFFFFFF"), 10);
    assert_int_equal(breaker_allow(b, 6000), BREAKER_PERMIT_PROBE);
    assert_true(breaker_auth_fault(b, true, 6500));
    assert_int_equal(breaker_reason(b), BREAKER_REASON_AUTH);
    assert_int_equal(breaker_next_probe_ms(b), 16500);
    breaker_free(b);
}

static void test_reset(void **state)
{
    struct breaker *b = breaker(&defaults);

    (void)state;
    assert_true(breaker_auth_fault(b, false, 0));
    breaker_reset(b);
    assert_int_equal(breaker_state(b), BREAKER_STATE_CLOSED);
    assert_int_equal(breaker_reason(b), BREAKER_REASON_NONE);
    assert_int_equal(breaker_allow(b, 1), BREAKER_PERMIT_PASS);
    assert_int_equal(breaker_next_probe_ms(b), -1);
    /* the history went too: 9 more failures do not open it */
    assert_int_equal(feed(b, "FFFFFFFFF"), 0);
    breaker_reset(b);
    assert_int_equal(feed(b, "FFFFFFFFF"), 0);
    assert_int_equal(feed(b, "F"), 1);
    breaker_free(b);
}

static void test_configure(void **state)
{
    struct breaker_settings s = defaults;
    struct breaker *b = breaker(&defaults);

    (void)state;
    /* out of range: refused, unchanged */
    s.failure_ratio = 0;
    assert_false(breaker_configure(b, &s));
    s = defaults;
    s.probe_max_ms = 1000;
    assert_false(breaker_configure(b, &s));
    s = defaults;
    s.window = 0;
    assert_false(breaker_configure(b, &s));
    assert_int_equal(feed(b, "FFFFFFFFF"), 0);

    /* same window: history kept, new threshold applies */
    s = defaults;
    s.consecutive = 12;
    assert_true(breaker_configure(b, &s));
    assert_int_equal(feed(b, "FF"), 0);
    assert_int_equal(feed(b, "F"), 1);

    /* disabling closes a transient opening */
    s.enabled = false;
    assert_true(breaker_configure(b, &s));
    assert_int_equal(breaker_state(b), BREAKER_STATE_CLOSED);
    assert_int_equal(breaker_reason(b), BREAKER_REASON_NONE);

    /* but keeps an auth pause */
    assert_true(breaker_auth_fault(b, false, 0));
    s.enabled = true;
    assert_true(breaker_configure(b, &s));
    s.enabled = false;
    assert_true(breaker_configure(b, &s));
    assert_int_equal(breaker_reason(b), BREAKER_REASON_AUTH);
    breaker_reset(b);

    /* a new window size forgets the old results, the run of failures included */
    s = defaults;
    assert_true(breaker_configure(b, &s));
    assert_int_equal(feed(b, "FFFFFFFFF"), 0);
    s.window = 4;
    assert_true(breaker_configure(b, &s));
    assert_int_equal(feed(b, "F"), 0);
    assert_int_equal(feed(b, "FF"), 0);
    assert_int_equal(feed(b, "F"), 1);

    /* a lower maximum caps the delay of the next reopening */
    s = defaults;
    assert_true(breaker_configure(b, &s));
    breaker_reset(b);
    assert_true(breaker_auth_fault(b, false, 0));
    for (int64_t t = 5000; t < 200000; t += 100000) {
        assert_int_equal(breaker_allow(b, t), BREAKER_PERMIT_PROBE);
        (void)breaker_auth_fault(b, true, t);
    }
    s.probe_max_ms = 7000;
    assert_true(breaker_configure(b, &s));
    assert_int_equal(breaker_allow(b, 500000), BREAKER_PERMIT_PROBE);
    (void)breaker_auth_fault(b, true, 500000);
    assert_int_equal(breaker_next_probe_ms(b), 507000);

    /* a higher interval raises the delay still to come; the scheduled probe keeps its time */
    breaker_reset(b);
    assert_true(breaker_auth_fault(b, false, 0));
    s.probe_interval_ms = 20000;
    s.probe_max_ms = 60000;
    assert_true(breaker_configure(b, &s));
    assert_int_equal(breaker_next_probe_ms(b), 5000);
    assert_int_equal(breaker_allow(b, 5000), BREAKER_PERMIT_PROBE);
    (void)breaker_auth_fault(b, true, 5000);
    assert_int_equal(breaker_next_probe_ms(b), 45000);
    breaker_free(b);
}

static void test_create_rejects_bad_settings(void **state)
{
    static const struct {
        const char *what;
        int consecutive;
        double ratio;
        int window;
        int64_t interval, max;
    } cases[] = {
        {"consecutive 0", 0, 0.5, 20, 5000, 60000},
        {"ratio 0", 10, 0, 20, 5000, 60000},
        {"ratio above 1", 10, 1.01, 20, 5000, 60000},
        {"window 0", 10, 0.5, 0, 5000, 60000},
        {"interval 0", 10, 0.5, 20, 0, 60000},
        {"max below interval", 10, 0.5, 20, 5000, 4999},
    };

    (void)state;
    for (size_t i = 0; i < DM_ARRAY_LEN(cases); i++) {
        struct breaker_settings s = {
            true,        cases[i].consecutive, cases[i].ratio, cases[i].window, cases[i].interval,
            cases[i].max};

        if (breaker_create(&s))
            fail_msg("%s: accepted", cases[i].what);
    }
    breaker_free(NULL);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(breaker_state_name(BREAKER_STATE_CLOSED), "closed");
    assert_string_equal(breaker_state_name(BREAKER_STATE_OPEN), "open");
    assert_string_equal(breaker_state_name(BREAKER_STATE_HALF_OPEN), "half-open");
    assert_string_equal(breaker_reason_name(BREAKER_REASON_NONE), "none");
    assert_string_equal(breaker_reason_name(BREAKER_REASON_TRANSIENT), "transient");
    assert_string_equal(breaker_reason_name(BREAKER_REASON_AUTH), "auth");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opening_rules),
        cmocka_unit_test(test_probe_schedule_doubles_to_max),
        cmocka_unit_test(test_late_answers_ignored_while_open),
        cmocka_unit_test(test_probe_cancel_allows_next_probe),
        cmocka_unit_test(test_auth_pause),
        cmocka_unit_test(test_auth_overrides_transient),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_configure),
        cmocka_unit_test(test_create_rejects_bad_settings),
        cmocka_unit_test(test_names),
    };

    return cmocka_run_group_tests_name("breaker", tests, NULL, NULL);
}
