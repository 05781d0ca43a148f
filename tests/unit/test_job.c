/* job envelope parsing: every field rule both ways */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "job.h"

#define F(s) {(s), sizeof(s) - 1}

static struct job *make(const struct job_field *fields, size_t npairs)
{
    struct job *job = job_create("1700000000000-7", 15, fields, npairs, 1024);

    assert_non_null(job);
    return job;
}

static void test_full_envelope(void **state)
{
    const struct job_field f[] = {F("payload"), F("{\"name\":\"x\"}"), F("job_id"),
                                  F("onboard-acme-1"), F("tenant"), F("acme"),
                                  F("batch"), F("b.1:2"), F("reply_to"), F("r_1"),
                                  F("extra"), F("ignored")};
    struct job *job = make(f, 6);

    (void)state;
    assert_string_equal(job->envelope_error, "");
    assert_string_equal(job->entry_id, "1700000000000-7");
    assert_string_equal(job->job_id, "onboard-acme-1");
    assert_int_equal(job->tenant_len, 4);
    assert_memory_equal(job->tenant, "acme", 4);
    assert_string_equal(job->batch, "b.1:2");
    assert_string_equal(job->reply_to, "r_1");
    assert_int_equal(job->payload_len, 12);
    assert_string_equal(job->payload, "{\"name\":\"x\"}");
    job_free(job);
}

static void test_defaults_to_entry_id(void **state)
{
    const struct job_field f[] = {F("payload"), F("{}")};
    struct job *job = make(f, 1);

    (void)state;
    assert_string_equal(job->job_id, "1700000000000-7");
    assert_string_equal(job->batch, "");
    assert_int_equal(job->tenant_len, 0);
    job_free(job);
}

static void test_payload_bytes_kept_exactly(void **state)
{
    static const char body[] = "{ \"name\" :\t\"a\\u00e9\", \"x\": [1,2] }\n";
    const struct job_field f[] = {F("payload"), {body, sizeof(body) - 1}};
    struct job *job = make(f, 1);

    (void)state;
    assert_int_equal(job->payload_len, sizeof(body) - 1);
    assert_memory_equal(job->payload, body, sizeof(body) - 1);
    job_free(job);
}

struct envelope_case {
    const char *what;
    struct job_field fields[6];
    size_t npairs;
    const char *error_contains;
};

static void test_broken_envelopes(void **state)
{
    static const char big[1100] = {'{'};
    const struct envelope_case cases[] = {
        {"no payload", {F("job_id"), F("a")}, 1, "no payload"},
        {"payload too big", {F("payload"), {big, sizeof(big)}}, 1, "over max_payload_bytes"},
        {"job_id space", {F("payload"), F("{}"), F("job_id"), F("a b")}, 2, "job_id must match"},
        {"job_id empty", {F("payload"), F("{}"), F("job_id"), F("")}, 2, "job_id must match"},
        {"job_id slash", {F("payload"), F("{}"), F("job_id"), F("a/b")}, 2, "job_id must match"},
        {"batch star", {F("payload"), F("{}"), F("batch"), F("b*")}, 2, "batch must match"},
        {"reply_to key", {F("payload"), F("{}"), F("reply_to"), F("x:jobs y")}, 2,
         "reply_to must match"},
        {"field twice", {F("payload"), F("{}"), F("payload"), F("{}")}, 2, "more than once"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct job *job = make(cases[i].fields, cases[i].npairs);

        if (strstr(job->envelope_error, cases[i].error_contains) == NULL)
            fail_msg("%s: got \"%s\"", cases[i].what, job->envelope_error);
        job_free(job);
    }
}

static void test_job_id_pattern(void **state)
{
    char longest[129], too_long[130];

    (void)state;
    memset(longest, 'a', 128);
    longest[128] = '\0';
    memset(too_long, 'a', 129);
    too_long[129] = '\0';
    assert_true(job_id_valid("A-z_0.9:x", 9));
    assert_true(job_id_valid(longest, 128));
    assert_false(job_id_valid(too_long, 129));
    assert_false(job_id_valid("", 0));
    assert_false(job_id_valid("a\0b", 3));
    assert_false(job_id_valid("é", 2));
}

static void test_tenant_binary_and_bounded(void **state)
{
    char big[300];
    const struct job_field bin[] = {F("payload"), F("{}"), F("tenant"), {"a\0\n\xff", 4}};
    const struct job_field over[] = {F("payload"), F("{}"), F("tenant"), {big, sizeof(big)}};
    struct job *job = make(bin, 2);
    char printable[64];

    (void)state;
    assert_string_equal(job->envelope_error, "");
    assert_int_equal(job->tenant_len, 4);
    job_tenant_printable(job, printable, sizeof(printable));
    assert_string_equal(printable, "a\\x00\\x0a\\xff");
    job_free(job);

    memset(big, 't', sizeof(big));
    job = make(over, 2);
    assert_non_null(strstr(job->envelope_error, "tenant longer than"));
    job_free(job);
}

static void test_bad_entry_id_rejected(void **state)
{
    const struct job_field f[] = {F("payload"), F("{}")};

    (void)state;
    assert_null(job_create("abc", 3, f, 1, 1024));
    assert_null(job_create("1-", 2, f, 1, 1024));
    assert_null(job_create("", 0, f, 1, 1024));
    job_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_envelope),
        cmocka_unit_test(test_defaults_to_entry_id),
        cmocka_unit_test(test_payload_bytes_kept_exactly),
        cmocka_unit_test(test_broken_envelopes),
        cmocka_unit_test(test_job_id_pattern),
        cmocka_unit_test(test_tenant_binary_and_bounded),
        cmocka_unit_test(test_bad_entry_id_rejected),
    };

    return cmocka_run_group_tests_name("job", tests, NULL, NULL);
}
