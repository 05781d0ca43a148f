/* retry_after: delta-seconds, the three HTTP-date forms, the cap, garbage; dates checked against
   the C library's timegm over four centuries */
#define _DEFAULT_SOURCE /* timegm, the oracle */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "compiler.h"
#include "retry_after.h"

/* Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example */
#define EXAMPLE_MS INT64_C(784111777000)
/* 2024-12-31 23:59:59 GMT */
#define END_2024_MS INT64_C(1735689599000)
/* 2099-12-31 23:59:50 GMT */
#define END_2099_MS INT64_C(4102444790000)

struct parse_case {
    const char *value;
    int64_t now_ms;
    bool ok;
    int64_t delay_ms;
};

static void run_cases(const struct parse_case *cases, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        int64_t delay = -7;
        bool ok = retry_after_parse(cases[i].value, cases[i].now_ms, &delay);

        if (ok != cases[i].ok)
            fail_msg("\"%s\": ok=%d", cases[i].value, ok);
        if (ok && delay != cases[i].delay_ms)
            fail_msg("\"%s\": delay %lld, want %lld", cases[i].value, (long long)delay,
                     (long long)cases[i].delay_ms);
        if (!ok && delay != -7)
            fail_msg("\"%s\": delay written on failure", cases[i].value);
    }
}

static void test_delta_seconds(void **state)
{
    static const struct parse_case cases[] = {
        {"0", 0, true, 0},
        {"1", 0, true, 1000},
        {"120", 5, true, 120000},
        {"007", 0, true, 7000},
        {" 120\r\n", 0, true, 120000},
        {"\t3 ", 0, true, 3000},
        {"86400", 0, true, RETRY_AFTER_MAX_MS},
        {"86401", 0, true, RETRY_AFTER_MAX_MS},
        {"4294967296", 0, true, RETRY_AFTER_MAX_MS},
        {"99999999999999999999999999999999999999999999", 0, true, RETRY_AFTER_MAX_MS},
        {"", 0, false, 0},
        {"   ", 0, false, 0},
        {"-5", 0, false, 0},
        {"+5", 0, false, 0},
        {"1.5", 0, false, 0},
        {"12a", 0, false, 0},
        {"1 2", 0, false, 0},
        {"0x10", 0, false, 0},
        {"1e3", 0, false, 0},
    };

    (void)state;
    run_cases(cases, DM_ARRAY_LEN(cases));
}

static void test_http_dates(void **state)
{
    static const struct parse_case cases[] = {
        /* the three forms of the same instant */
        {"Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE_MS - 5000, true, 5000},
        {"Sunday, 06-Nov-94 08:49:37 GMT", EXAMPLE_MS - 5000, true, 5000},
        {"Sun Nov  6 08:49:37 1994", EXAMPLE_MS - 5000, true, 5000},
        {"Sun Nov 06 08:49:37 1994", EXAMPLE_MS - 5000, true, 5000},
        {" Sun, 06 Nov 1994 08:49:37 GMT\r\n", EXAMPLE_MS - 1, true, 1},
        /* sub-second now: the delay keeps the milliseconds */
        {"Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE_MS - 1234, true, 1234},
        /* now or past: 0 */
        {"Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE_MS, true, 0},
        {"Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE_MS + 1, true, 0},
        {"Thu, 01 Jan 1970 00:00:00 GMT", END_2024_MS, true, 0},
        {"Mon, 01 Jan 0001 00:00:00 GMT", END_2024_MS, true, 0},
        /* far future: capped */
        {"Fri, 31 Dec 9999 23:59:59 GMT", END_2024_MS, true, RETRY_AFTER_MAX_MS},
        {"Sun, 07 Nov 1994 08:49:37 GMT", EXAMPLE_MS, true, RETRY_AFTER_MAX_MS},
        {"Sun, 07 Nov 1994 08:49:36 GMT", EXAMPLE_MS, true, RETRY_AFTER_MAX_MS - 1000},
        /* the weekday name is not cross-checked, as in most HTTP stacks */
        {"Mon, 06 Nov 1994 08:49:37 GMT", EXAMPLE_MS - 5000, true, 5000},
        /* leap days and a leap second */
        {"Tue, 29 Feb 2000 00:00:00 GMT", INT64_C(951782400000) - 60000, true, 60000},
        {"Thu, 29 Feb 2024 12:00:00 GMT", INT64_C(1709208000000) - 10, true, 10},
        {"Sat, 31 Dec 2016 23:59:60 GMT", INT64_C(1483228800000) - 2000, true, 2000},
        /* year 0 (proleptic Gregorian, leap): its January lies before the 400-year era */
        {"Sat, 01 Jan 0000 00:00:00 GMT", INT64_C(-62167219200000) - 1000, true, 1000},
        {"Tue, 29 Feb 0000 00:00:00 GMT", INT64_C(-62162121600000) - 1000, true, 1000},
        /* RFC 850 two-digit years: within 50 years ahead this century, else the last one */
        {"Wednesday, 01-Jan-25 00:00:10 GMT", END_2024_MS, true, 11000},
        {"Friday, 31-Dec-99 23:59:59 GMT", END_2024_MS, true, 0},
        {"Friday, 01-Jan-00 00:00:05 GMT", END_2099_MS, true, 15000},
        /* asctime with a two-digit day */
        {"Tue Dec 31 23:59:59 2024", END_2024_MS - 3000, true, 3000},
    };

    (void)state;
    run_cases(cases, DM_ARRAY_LEN(cases));
}

static void test_garbage(void **state)
{
    static const struct parse_case cases[] = {
        {"Sun, 06 Nov 1994 08:49:37 UTC", 0, false, 0},
        {"Sun, 06 Nov 1994 08:49:37 gmt", 0, false, 0},
        {"sun, 06 Nov 1994 08:49:37 GMT", 0, false, 0},
        {"Sun, 06 nov 1994 08:49:37 GMT", 0, false, 0},
        {"Xyz, 06 Nov 1994 08:49:37 GMT", 0, false, 0},
        {"Sun, 06 Foo 1994 08:49:37 GMT", 0, false, 0},
        {"Sun, 6 Nov 1994 08:49:37 GMT", 0, false, 0},
        {"Sun, 06 Nov 94 08:49:37 GMT", 0, false, 0},
        {"Sun, 06 Nov 1994 8:49:37 GMT", 0, false, 0},
        {"Sun, 06 Nov 1994 08:49 GMT", 0, false, 0},
        {"Sun, 06 Nov 1994 08:49:37", 0, false, 0},
        {"Sun, 06 Nov 1994 08:49:37 GMT x", 0, false, 0},
        {"Sun,  06 Nov 1994 08:49:37 GMT", 0, false, 0},
        {"Sun, 06 Nov 1994 24:00:00 GMT", 0, false, 0},
        {"Sun, 06 Nov 1994 23:60:00 GMT", 0, false, 0},
        {"Sun, 06 Nov 1994 23:59:61 GMT", 0, false, 0},
        {"Sun, 00 Nov 1994 08:49:37 GMT", 0, false, 0},
        {"Sun, 31 Nov 1994 08:49:37 GMT", 0, false, 0},
        {"Sun, 30 Feb 2000 08:49:37 GMT", 0, false, 0},
        {"Thu, 29 Feb 1900 00:00:00 GMT", 0, false, 0},
        {"Mon, 29 Feb 2100 00:00:00 GMT", 0, false, 0},
        {"Sun, 06-Nov-94 08:49:37 GMT", 0, false, 0},
        {"Sunday, 06 Nov 1994 08:49:37 GMT", 0, false, 0},
        {"Sunday, 06-Nov-1994 08:49:37 GMT", 0, false, 0},
        {"Sun Nov 6 08:49:37 1994", 0, false, 0},
        {"Sun Nov   6 08:49:37 1994", 0, false, 0},
        {"Sun Nov  6 08:49:37 94", 0, false, 0},
        {"Sun Nov  6 08:49:37 1994 GMT", 0, false, 0},
        {"Sun", 0, false, 0},
        {"Sun,", 0, false, 0},
        {"tomorrow", 0, false, 0},
        {"\xff\xfe", 0, false, 0},
    };

    (void)state;
    run_cases(cases, DM_ARRAY_LEN(cases));
}

/* the value's length is bounded before it is read */
static void test_length_bound(void **state)
{
    char value[300];
    int64_t delay;

    (void)state;
    memset(value, '9', sizeof(value));
    value[256] = '\0';
    assert_true(retry_after_parse(value, 0, &delay));
    assert_int_equal(delay, RETRY_AFTER_MAX_MS);
    value[256] = '9';
    value[257] = '\0';
    assert_false(retry_after_parse(value, 0, &delay));
    value[sizeof(value) - 1] = '\0';
    assert_false(retry_after_parse(value, 0, &delay));
}

/* an RFC 850 date under a clock beyond year 9999 is refused, not miscomputed */
static void test_rfc850_absurd_clock(void **state)
{
    int64_t delay;

    (void)state;
    assert_false(retry_after_parse("Sunday, 06-Nov-94 08:49:37 GMT", INT64_MAX, &delay));
    assert_false(retry_after_parse("Sunday, 06-Nov-94 08:49:37 GMT", INT64_MIN, &delay));
    assert_true(retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", INT64_MIN, &delay));
    assert_int_equal(delay, RETRY_AFTER_MAX_MS);
    assert_true(retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", INT64_MAX, &delay));
    assert_int_equal(delay, 0);
}

/* every 13th day (and a moving time of day) from 1601 to 2400 against timegm */
static void test_dates_match_timegm(void **state)
{
    static const char *const wdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm start = {.tm_year = 1601 - 1900, .tm_mon = 0, .tm_mday = 1};
    time_t t = timegm(&start);
    int checked = 0;

    (void)state;
    for (; t < INT64_C(13569465600); t += 13 * 86400 + 3607) {
        struct tm tm;
        char imf[64], asc[64];
        int64_t delay_imf, delay_asc;
        int64_t date_ms = (int64_t)t * 1000;

        assert_non_null(gmtime_r(&t, &tm));
        snprintf(imf, sizeof(imf), "%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[tm.tm_wday],
                 tm.tm_mday, mons[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        snprintf(asc, sizeof(asc), "%s %s %2d %02d:%02d:%02d %04d", wdays[tm.tm_wday],
                 mons[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
        assert_true(retry_after_parse(imf, date_ms - 4321, &delay_imf));
        assert_true(retry_after_parse(asc, date_ms - 4321, &delay_asc));
        if (delay_imf != 4321 || delay_asc != 4321)
            fail_msg("%s / %s: %lld / %lld", imf, asc, (long long)delay_imf, (long long)delay_asc);
        checked++;
    }
    assert_true(checked > 20000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delta_seconds),
        cmocka_unit_test(test_http_dates),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_length_bound),
        cmocka_unit_test(test_rfc850_absurd_clock),
        cmocka_unit_test(test_dates_match_timegm),
    };

    return cmocka_run_group_tests_name("retry_after", tests, NULL, NULL);
}
