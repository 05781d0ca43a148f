#include "metrics.h"

#include <stdlib.h>

/* request duration buckets in seconds, upper bounds; +Inf is implicit */
static const double duration_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5,   1.0,  2.5,   5.0,  10.0, 30.0};
#define N_BUCKETS DM_ARRAY_LEN(duration_buckets)
#define MAX_HTTP_CODE 600

struct metrics {
    uint64_t jobs[3];
    uint64_t duplicates;
    uint64_t stale;
    uint64_t refused;
    uint64_t retries;
    int paused_why;
    uint64_t http_by_code[MAX_HTTP_CODE]; /* index 0: transport errors */
    uint64_t duration_buckets[N_BUCKETS];
    uint64_t duration_count;
    double duration_sum;
    long inflight_requests;
    long jobs_held;
    bool redis_connected;
    uint64_t redis_commands_reader;
    uint64_t redis_commands_writer;
    long long queue_lag;
};

struct metrics *metrics_create(void)
{
    struct metrics *m = calloc(1, sizeof(*m));

    if (m != NULL)
        m->queue_lag = -1;
    return m;
}

void metrics_free(struct metrics *m)
{
    free(m);
}

void metrics_job_finished(struct metrics *m, enum outcome_status status, bool duplicate)
{
    if (duplicate)
        m->duplicates++;
    else
        m->jobs[status]++;
}

void metrics_http_request(struct metrics *m, long code, double seconds)
{
    m->http_by_code[(code > 0 && code < MAX_HTTP_CODE) ? code : 0]++;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        if (seconds <= duration_buckets[i])
            m->duration_buckets[i]++;
    }
    m->duration_count++;
    m->duration_sum += seconds;
}

void metrics_set_inflight(struct metrics *m, long requests, long jobs)
{
    m->inflight_requests = requests;
    m->jobs_held = jobs;
}

void metrics_set_redis_connected(struct metrics *m, bool connected)
{
    m->redis_connected = connected;
}

void metrics_set_redis_commands(struct metrics *m, uint64_t reader, uint64_t writer)
{
    m->redis_commands_reader = reader;
    m->redis_commands_writer = writer;
}

void metrics_set_queue_lag(struct metrics *m, long long lag)
{
    m->queue_lag = lag;
}

void metrics_outcome_stale(struct metrics *m)
{
    m->stale++;
}

void metrics_outcome_refused(struct metrics *m)
{
    m->refused++;
}

void metrics_job_retried(struct metrics *m)
{
    m->retries++;
}

void metrics_set_submissions_paused(struct metrics *m, int why)
{
    m->paused_why = why;
}

uint64_t metrics_jobs_total(const struct metrics *m, enum outcome_status status)
{
    return m->jobs[status];
}

static void header(struct strbuf *sb, const char *name, const char *type, const char *help)
{
    strbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_render(const struct metrics *m, const char *version, struct strbuf *sb)
{
    header(sb, "datamartd_jobs_total", "counter", "Jobs finished, by final status.");
    for (int s = OUTCOME_CREATED; s <= OUTCOME_DEAD; s++)
        strbuf_printf(sb, "datamartd_jobs_total{status=\"%s\"} %llu\n",
                      outcome_status_name((enum outcome_status)s), (unsigned long long)m->jobs[s]);
    header(sb, "datamartd_duplicate_jobs_total", "counter",
           "Repeated job_ids whose stored outcome was published again.");
    strbuf_printf(sb, "datamartd_duplicate_jobs_total %llu\n", (unsigned long long)m->duplicates);
    header(sb, "datamartd_stale_outcomes_total", "counter",
           "Outcomes dropped because the entry was no longer ours.");
    strbuf_printf(sb, "datamartd_stale_outcomes_total %llu\n", (unsigned long long)m->stale);
    header(sb, "datamartd_refused_outcomes_total", "counter",
           "Outcome writes Redis refused; each is tried again every second.");
    strbuf_printf(sb, "datamartd_refused_outcomes_total %llu\n", (unsigned long long)m->refused);

    header(sb, "datamartd_retries_total", "counter",
           "Transient failures that scheduled another attempt.");
    strbuf_printf(sb, "datamartd_retries_total %llu\n", (unsigned long long)m->retries);
    header(sb, "datamartd_submissions_paused", "gauge",
           "0 sending; 1 circuit breaker open (API failing); 2 paused: the API rejects the token.");
    strbuf_printf(sb, "datamartd_submissions_paused %d\n", m->paused_why);

    header(sb, "datamartd_http_requests_total", "counter",
           "API requests, by HTTP status (0: no answer: timeout or connection error).");
    for (int c = 0; c < MAX_HTTP_CODE; c++) {
        if (m->http_by_code[c] != 0)
            strbuf_printf(sb, "datamartd_http_requests_total{code=\"%d\"} %llu\n", c,
                          (unsigned long long)m->http_by_code[c]);
    }

    header(sb, "datamartd_request_duration_seconds", "histogram", "API request duration.");
    for (size_t i = 0; i < N_BUCKETS; i++)
        strbuf_printf(sb, "datamartd_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                      duration_buckets[i], (unsigned long long)m->duration_buckets[i]);
    strbuf_printf(sb, "datamartd_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                  (unsigned long long)m->duration_count);
    strbuf_printf(sb, "datamartd_request_duration_seconds_sum %.6f\n", m->duration_sum);
    strbuf_printf(sb, "datamartd_request_duration_seconds_count %llu\n",
                  (unsigned long long)m->duration_count);

    header(sb, "datamartd_inflight_requests", "gauge", "API requests in flight.");
    strbuf_printf(sb, "datamartd_inflight_requests %ld\n", m->inflight_requests);
    header(sb, "datamartd_jobs_held", "gauge", "Jobs read from the queue and not yet finished.");
    strbuf_printf(sb, "datamartd_jobs_held %ld\n", m->jobs_held);
    header(sb, "datamartd_redis_connected", "gauge", "1 when Redis is connected.");
    strbuf_printf(sb, "datamartd_redis_connected %d\n", m->redis_connected ? 1 : 0);
    header(sb, "datamartd_redis_commands_total", "counter",
           "Commands sent to Redis, by connection; a script counts once, not the calls it makes.");
    strbuf_printf(sb, "datamartd_redis_commands_total{connection=\"reader\"} %llu\n",
                  (unsigned long long)m->redis_commands_reader);
    strbuf_printf(sb, "datamartd_redis_commands_total{connection=\"writer\"} %llu\n",
                  (unsigned long long)m->redis_commands_writer);
    if (m->queue_lag >= 0) {
        header(sb, "datamartd_queue_lag", "gauge",
               "Entries in the job stream not yet delivered to the consumer group.");
        strbuf_printf(sb, "datamartd_queue_lag %lld\n", m->queue_lag);
    }
    header(sb, "datamartd_build_info", "gauge", "Build information.");
    strbuf_printf(sb, "datamartd_build_info{version=\"%s\"} 1\n", version);
}
