/* outcome rendering (fields and reply JSON), redaction, reload; strbuf JSON escaping; metrics */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "metrics.h"
#include "outcome.h"
#include "strbuf.h"

static struct job *sample_job(const char *tenant, size_t tenant_len, const char *batch)
{
    struct job_field f[8] = {{"payload", 7}, {"{}", 2}, {"job_id", 6}, {"onboard-acme-1", 14}};
    size_t n = 2;
    struct job *job;

    if (tenant_len > 0) {
        f[2 * n] = (struct job_field){"tenant", 6};
        f[2 * n++ + 1] = (struct job_field){tenant, tenant_len};
    }
    if (batch[0] != '\0') {
        f[2 * n] = (struct job_field){"batch", 5};
        f[2 * n++ + 1] = (struct job_field){batch, strlen(batch)};
    }
    job = job_create("1-1", 3, f, n, 1024);
    assert_non_null(job);
    assert_string_equal(job->envelope_error, "");
    return job;
}

static const char *field(const struct outcome_render *r, const char *name)
{
    for (size_t i = 0; i < r->count; i++) {
        if (strcmp(r->fields[i].name, name) == 0)
            return r->fields[i].value;
    }
    return NULL;
}

static void test_created_fields(void **state)
{
    struct job *job = sample_job("acme", 4, "b1");
    struct api_classification c = {API_VERDICT_CREATED, 200, "", "", "acme-sales"};
    struct outcome o;
    struct outcome_render r;

    (void)state;
    outcome_init(&o);
    outcome_set_api(&o, OUTCOME_CREATED, &c);
    o.attempts = 1;
    o.finished_ms = 1700000000123LL;
    outcome_render_fields(&o, job, &r);
    assert_string_equal(field(&r, "event"), "job");
    assert_string_equal(field(&r, "job_id"), "onboard-acme-1");
    assert_string_equal(field(&r, "status"), "created");
    assert_string_equal(field(&r, "datamart_id"), "acme-sales");
    assert_string_equal(field(&r, "http_status"), "200");
    assert_string_equal(field(&r, "attempts"), "1");
    assert_string_equal(field(&r, "tenant"), "acme");
    assert_string_equal(field(&r, "batch"), "b1");
    assert_string_equal(field(&r, "finished_ms"), "1700000000123");
    assert_null(field(&r, "error_code"));
    assert_null(field(&r, "recovered"));
    assert_null(field(&r, "duplicate"));
    outcome_release(&o);
    job_free(job);
}

static void test_local_failure_fields_and_json(void **state)
{
    struct job *job = sample_job("", 0, "");
    struct outcome o;
    struct outcome_render r;
    struct strbuf sb;
    char *errors = strdup("[{\"path\":\"name\",\"message\":\"missing\"}]");

    (void)state;
    outcome_init(&o);
    outcome_set_invalid_body(&o, "name", "missing", errors);
    o.finished_ms = 5;
    outcome_render_fields(&o, job, &r);
    assert_string_equal(field(&r, "status"), "failed");
    assert_string_equal(field(&r, "error_code"), "INVALID_REQUEST_BODY");
    assert_string_equal(field(&r, "error_source"), "local");
    assert_string_equal(field(&r, "error_path"), "name");
    assert_string_equal(field(&r, "attempts"), "0");
    assert_null(field(&r, "http_status"));
    assert_null(field(&r, "tenant"));

    strbuf_init(&sb);
    outcome_render_json(&o, job, &sb);
    assert_string_equal(sb.data,
                        "{\"event\":\"job\",\"job_id\":\"onboard-acme-1\",\"status\":\"failed\","
                        "\"error_code\":\"INVALID_REQUEST_BODY\",\"error_message\":\"missing\","
                        "\"error_source\":\"local\",\"error_path\":\"name\",\"errors\":[{\"path\":"
                        "\"name\",\"message\":\"missing\"}],\"attempts\":0,\"finished_ms\":5}");
    strbuf_release(&sb);
    outcome_release(&o);
    job_free(job);
}

static void test_json_escapes_binary_tenant(void **state)
{
    struct job *job = sample_job("a\"\x01\xff", 4, "");
    struct outcome o;
    struct strbuf sb;

    (void)state;
    outcome_init(&o);
    outcome_set_invalid_job(&o, "no payload field");
    strbuf_init(&sb);
    outcome_render_json(&o, job, &sb);
    assert_non_null(strstr(sb.data, "\"tenant\":\"a\\\"\\u0001\\ufffd\""));
    strbuf_release(&sb);
    outcome_release(&o);
    job_free(job);
}

static void test_redact_token(void **state)
{
    struct api_classification c = {API_VERDICT_PERMANENT, 400, "HTTP_400",
                                   "bad token s3cr3t-token-value here", ""};
    struct outcome o;

    (void)state;
    outcome_init(&o);
    outcome_set_api(&o, OUTCOME_FAILED, &c);
    outcome_redact(&o, "s3cr3t-token-value");
    assert_string_equal(o.error_message, "bad token [redacted] here");
    outcome_release(&o);
}

static void test_load_fields_round_trip(void **state)
{
    struct job *job = sample_job("t", 1, "");
    struct outcome a, b;
    struct outcome_render r;
    struct api_classification c = {API_VERDICT_CREATED, 200, "", "", "dm-1"};

    (void)state;
    outcome_init(&a);
    outcome_init(&b);
    outcome_set_api(&a, OUTCOME_CREATED, &c);
    a.recovered = true;
    a.attempts = 3;
    a.finished_ms = 42;
    outcome_render_fields(&a, job, &r);
    for (size_t i = 0; i < r.count; i++)
        assert_true(outcome_load_field(&b, r.fields[i].name, r.fields[i].value, r.fields[i].len));
    assert_int_equal(b.status, OUTCOME_CREATED);
    assert_string_equal(b.datamart_id, "dm-1");
    assert_true(b.recovered);
    assert_int_equal(b.attempts, 3);
    assert_int_equal(b.http_status, 200);
    assert_int_equal(b.finished_ms, 42);
    outcome_release(&a);
    outcome_release(&b);
    job_free(job);
}

static void test_utf8_sequences(void **state)
{
    (void)state;
    assert_int_equal(utf8_sequence_len((const unsigned char *)"a", 1), 1);
    assert_int_equal(utf8_sequence_len((const unsigned char *)"\xc3\xa9", 2), 2);
    assert_int_equal(utf8_sequence_len((const unsigned char *)"\xe2\x82\xac", 3), 3);
    assert_int_equal(utf8_sequence_len((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
    assert_int_equal(utf8_sequence_len((const unsigned char *)"\xc0\xaf", 2), 0);  /* overlong */
    assert_int_equal(utf8_sequence_len((const unsigned char *)"\xed\xa0\x80", 3), 0); /* surrogate */
    assert_int_equal(utf8_sequence_len((const unsigned char *)"\xe2\x82", 2), 0); /* truncated */
    assert_int_equal(utf8_sequence_len((const unsigned char *)"\xf4\x90\x80\x80", 4), 0);
}

static void test_metrics_render(void **state)
{
    struct metrics *m = metrics_create();
    struct strbuf sb;

    (void)state;
    assert_non_null(m);
    metrics_job_finished(m, OUTCOME_CREATED, false);
    metrics_job_finished(m, OUTCOME_CREATED, false);
    metrics_job_finished(m, OUTCOME_FAILED, true);
    metrics_http_request(m, 200, 0.02);
    metrics_http_request(m, 0, 40.0);
    metrics_set_inflight(m, 3, 5);
    metrics_set_redis_connected(m, true);
    metrics_set_redis_commands(m, 7, 12345678901ULL);
    metrics_set_queue_lag(m, 17);
    metrics_job_retried(m);
    metrics_set_submissions_paused(m, 2);
    strbuf_init(&sb);
    metrics_render(m, "9.9.9", &sb);
    assert_non_null(strstr(sb.data, "datamartd_jobs_total{status=\"created\"} 2\n"));
    assert_non_null(strstr(sb.data, "datamartd_jobs_total{status=\"failed\"} 0\n"));
    assert_non_null(strstr(sb.data, "datamartd_duplicate_jobs_total 1\n"));
    assert_non_null(strstr(sb.data, "datamartd_http_requests_total{code=\"200\"} 1\n"));
    assert_non_null(strstr(sb.data, "datamartd_http_requests_total{code=\"0\"} 1\n"));
    assert_non_null(strstr(sb.data, "datamartd_request_duration_seconds_bucket{le=\"0.025\"} 1\n"));
    assert_non_null(strstr(sb.data, "datamartd_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(sb.data, "datamartd_inflight_requests 3\n"));
    assert_non_null(strstr(sb.data, "datamartd_redis_connected 1\n"));
    assert_non_null(strstr(sb.data, "datamartd_redis_commands_total{connection=\"reader\"} 7\n"));
    assert_non_null(
        strstr(sb.data, "datamartd_redis_commands_total{connection=\"writer\"} 12345678901\n"));
    assert_non_null(strstr(sb.data, "datamartd_queue_lag 17\n"));
    assert_non_null(strstr(sb.data, "datamartd_retries_total 1\n"));
    assert_non_null(strstr(sb.data, "datamartd_submissions_paused 2\n"));
    assert_non_null(strstr(sb.data, "datamartd_build_info{version=\"9.9.9\"} 1\n"));
    strbuf_release(&sb);
    metrics_free(m);
    metrics_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_created_fields),
        cmocka_unit_test(test_local_failure_fields_and_json),
        cmocka_unit_test(test_json_escapes_binary_tenant),
        cmocka_unit_test(test_redact_token),
        cmocka_unit_test(test_load_fields_round_trip),
        cmocka_unit_test(test_utf8_sequences),
        cmocka_unit_test(test_metrics_render),
    };

    return cmocka_run_group_tests_name("outcome", tests, NULL, NULL);
}
