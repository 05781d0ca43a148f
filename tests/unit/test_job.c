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

/* true when [a, a+alen] and [b, b+blen] (NULs included) share no byte */
static bool apart(const char *a, size_t alen, const char *b, size_t blen)
{
    return a + alen < b || b + blen < a;
}

static void test_fields_at_their_maxima(void **state)
{
    char entry[JOB_ENTRY_ID_MAX + 1], id[JOB_ID_MAX], batch[JOB_ID_MAX], reply[JOB_ID_MAX];
    char tenant[JOB_TENANT_MAX], payload[300];
    struct job_field f[10];
    struct job *job;

    (void)state;
    memset(entry, '1', sizeof(entry));
    entry[20] = '-';
    memset(id, 'i', sizeof(id));
    memset(batch, 'b', sizeof(batch));
    memset(reply, 'r', sizeof(reply));
    for (size_t i = 0; i < sizeof(tenant); i++)
        tenant[i] = (char)i; /* every byte value, NUL first */
    memset(payload, 'p', sizeof(payload));
    f[0] = (struct job_field){"payload", 7};
    f[1] = (struct job_field){payload, sizeof(payload)};
    f[2] = (struct job_field){"job_id", 6};
    f[3] = (struct job_field){id, sizeof(id)};
    f[4] = (struct job_field){"tenant", 6};
    f[5] = (struct job_field){tenant, sizeof(tenant)};
    f[6] = (struct job_field){"batch", 5};
    f[7] = (struct job_field){batch, sizeof(batch)};
    f[8] = (struct job_field){"reply_to", 8};
    f[9] = (struct job_field){reply, sizeof(reply)};
    assert_null(job_create(entry, JOB_ENTRY_ID_MAX + 1, f, 5, sizeof(payload)));
    job = job_create(entry, JOB_ENTRY_ID_MAX, f, 5, sizeof(payload));
    assert_non_null(job);

    /* the job owns copies: the entry's buffers may go away */
    memset(entry, 0, sizeof(entry));
    memset(id, 0, sizeof(id));
    memset(batch, 0, sizeof(batch));
    memset(reply, 0, sizeof(reply));
    memset(payload, 0, sizeof(payload));

    assert_string_equal(job->envelope_error, "");
    assert_int_equal(strlen(job->entry_id), JOB_ENTRY_ID_MAX);
    assert_int_equal(job->entry_id[20], '-');
    assert_int_equal(strlen(job->job_id), JOB_ID_MAX);
    assert_int_equal(strspn(job->job_id, "i"), JOB_ID_MAX);
    assert_int_equal(strlen(job->batch), JOB_ID_MAX);
    assert_int_equal(strspn(job->batch, "b"), JOB_ID_MAX);
    assert_int_equal(strlen(job->reply_to), JOB_ID_MAX);
    assert_int_equal(strspn(job->reply_to, "r"), JOB_ID_MAX);
    assert_int_equal(job->tenant_len, JOB_TENANT_MAX);
    assert_memory_equal(job->tenant, tenant, JOB_TENANT_MAX);
    assert_int_equal(job->tenant[JOB_TENANT_MAX], '\0');
    assert_int_equal(job->payload_len, 300);
    assert_int_equal(strlen(job->payload), 300);
    assert_int_equal(strspn(job->payload, "p"), 300);

    /* packed side by side, none overlapping the next one's bytes */
    assert_true(apart(job->entry_id, JOB_ENTRY_ID_MAX, job->job_id, JOB_ID_MAX));
    assert_true(apart(job->job_id, JOB_ID_MAX, job->tenant, JOB_TENANT_MAX));
    assert_true(apart(job->tenant, JOB_TENANT_MAX, job->batch, JOB_ID_MAX));
    assert_true(apart(job->batch, JOB_ID_MAX, job->reply_to, JOB_ID_MAX));
    assert_true(apart(job->reply_to, JOB_ID_MAX, job->payload, 300));
    assert_true(apart(job->entry_id, JOB_ENTRY_ID_MAX, job->payload, 300));
    job_free(job);
}

static void test_missing_fields(void **state)
{
    const struct job_field f[] = {F("job_id"), F("j-1"), F("unknown"), F("x")};
    struct job *job = make(f, 2);

    (void)state;
    assert_string_equal(job->envelope_error, "no payload field");
    assert_null(job->payload);
    assert_int_equal(job->payload_len, 0);
    assert_string_equal(job->job_id, "j-1");
    assert_string_equal(job->entry_id, "1700000000000-7");
    assert_string_equal(job->tenant, "");
    assert_int_equal(job->tenant_len, 0);
    assert_string_equal(job->batch, "");
    assert_string_equal(job->reply_to, "");
    job_free(job);

    job = make(NULL, 0);
    assert_string_equal(job->envelope_error, "no payload field");
    assert_string_equal(job->job_id, "1700000000000-7");
    job_free(job);
}

static void test_broken_fields_fall_back(void **state)
{
    static const char big[1100] = {'{'};
    char long_tenant[JOB_TENANT_MAX + 1];
    const struct job_field f[] = {F("payload"),  {big, sizeof(big)},
                                  F("job_id"),   F("a b"),
                                  F("batch"),    F("b*"),
                                  F("reply_to"), F("r/1"),
                                  F("tenant"),   {long_tenant, sizeof(long_tenant)}};
    struct job *job;

    (void)state;
    memset(long_tenant, 't', sizeof(long_tenant));
    job = make(f, 5);
    /* the first problem is the one reported */
    assert_string_equal(job->envelope_error,
                        "job_id must match [A-Za-z0-9._:-]{1,128} (got 3 bytes)");
    assert_string_equal(job->job_id, "1700000000000-7");
    assert_string_equal(job->batch, "");
    assert_string_equal(job->reply_to, "");
    assert_int_equal(job->tenant_len, 0);
    assert_null(job->payload);
    assert_int_equal(job->payload_len, 0);
    job_free(job);
}

static void test_set_envelope_error(void **state)
{
    const struct job_field f[] = {F("payload"), F("{}")};
    const struct job_field broken[] = {F("job_id"), F("x")};
    struct job *job = make(f, 1);

    (void)state;
    assert_true(job_set_envelope_error(job, "%s", ""));
    assert_string_equal(job->envelope_error, "");
    assert_true(job_set_envelope_error(job, "entry has more than %d fields", 64));
    assert_string_equal(job->envelope_error, "entry has more than 64 fields");
    assert_true(job_set_envelope_error(job, "later problem"));
    assert_string_equal(job->envelope_error, "entry has more than 64 fields");
    assert_string_equal(job->payload, "{}");
    job_free(job);

    job = make(broken, 1);
    assert_true(job_set_envelope_error(job, "later problem"));
    assert_string_equal(job->envelope_error, "no payload field");
    job_free(job);
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
        cmocka_unit_test(test_fields_at_their_maxima),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_broken_fields_fall_back),
        cmocka_unit_test(test_set_envelope_error),
    };

    return cmocka_run_group_tests_name("job", tests, NULL, NULL);
}
