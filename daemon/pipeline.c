#include "pipeline.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_response.h"
#include "breaker.h"
#include "clock.h"
#include "cluster_limiter.h"
#include "config.h"
#include "decimal.h"
#include "http_submitter.h"
#include "job.h"
#include "log.h"
#include "metrics.h"
#include "outcome.h"
#include "rate_limiter.h"
#include "redis_client.h"
#include "retry_after.h"
#include "retry_policy.h"
#include "strbuf.h"
#include "validator.h"

#include "claim_lua.h"
#include "lease_lua.h"
#include "publish_lua.h"
#include "retry_lua.h"

#define API_PATH "/api/v2/data-app/datamarts"
/* short enough that a takeover waiting for the slots of an idle read is not held up long */
#define READ_BLOCK_MS 1000
#define REDIS_CONNECT_TIMEOUT_MS 5000
#define REDIS_COMMAND_TIMEOUT_MS 10000
#define REDIS_BACKOFF_MIN_MS 50
#define REDIS_BACKOFF_MAX_MS 1000
#define RESPONSE_MAX_BYTES (1024 * 1024)
#define MAX_ENTRY_FIELDS 64
#define KEY_MAX 256
/* "job_id=... tenant=... entry=...", the tenant escaped at up to 4 bytes per byte */
#define WHO_MAX (JOB_ID_MAX + 4 * JOB_TENANT_MAX + JOB_ENTRY_ID_MAX + 32)
#define LAG_POLL_TICKS 5
/* one publish settles at most this many jobs: a call's size and Redis's time in it stay bounded */
#define PUBLISH_BATCH_MAX 16
/* max_inflight / 8 jobs are claimed ahead of the requests, so one goes out the moment a request
 * finishes instead of a publish round trip later (at 20 ms, 92 -> 97 % of C/L at C = 64) */
#define READ_AHEAD_DIV 8
/* 4 keys and 12 arguments; per job 3 keys, 10 arguments and the outcome's field/value pairs */
#define PUBLISH_ARGC_MAX (16 + PUBLISH_BATCH_MAX * (13 + 2 * OUTCOME_MAX_FIELDS))
#define HOUSEKEEPING_MS 100
#define RETRY_MOVE_BATCH "100"
/* a 429 without Retry-After still pauses everyone this long */
#define RATE_LIMITED_PAUSE_MS 1000

enum task_state {
    TASK_PERMIT_WAIT, /* valid, queued for a rate-limit permit (nothing claimed yet) */
    TASK_CLAIM_WAIT,  /* to be claimed once the writer is connected */
    TASK_CLAIMING,
    TASK_SEND_WAIT, /* the submitter could not start it; tried again at the next tick */
    TASK_READY,     /* claimed, waiting for one of the max_inflight requests to finish */
    TASK_SENDING,
    TASK_PUBLISH_WAIT,   /* outcome decided, Redis unreachable: held in memory until it is back */
    TASK_PUBLISH_QUEUED, /* for the publish at the end of this loop pass */
    TASK_PUBLISHING,
};

enum publish_mode {
    PUBLISH_FINAL,     /* the job's outcome */
    PUBLISH_DUPLICATE, /* a finished job's outcome again, for a repeated job_id */
    PUBLISH_RETRY,     /* park the job in P:retry until its next attempt */
    PUBLISH_RELEASE,   /* shutdown: a claim whose request never went out is withdrawn */
};

/* The queues a task waits in, each through a link of its own. */
enum task_link {
    LINK_PERMIT,  /* for a rate-limit permit (or, claimed, for the pause or breaker to end) */
    LINK_PUBLISH, /* for this loop pass's publish, then the next of its batch */
    LINK_READY,   /* claimed ahead, for a request slot */
    LINK_COUNT,
};

/* A FIFO of tasks through their link `link`: a task is in each kind of queue at most once. */
struct task_queue {
    struct task *head, *tail;
    size_t len;
    enum task_link link;
};

/* One job held by this process, from the read of its entry to the ack of its outcome. */
struct task {
    struct task *prev, *next;
    struct task *queue_next[LINK_COUNT];
    struct pipeline *p;
    struct job *job;
    enum task_state state;
    enum publish_mode mode;
    bool will_send;  /* passed local validation */
    bool claimed;    /* the claim script made this entry the job's holder */
    bool probe;      /* the breaker's one test request */
    bool maybe_sent; /* an earlier attempt may have reached the API */
    bool fresh;      /* the claim created the job hash: no leftovers of earlier attempts in it */
    bool permitted;  /* holds a rate-limit permit, given back if no request goes out */
    bool wait_logged;
    bool refusal_logged; /* an outcome Redis refused: said once at error, then at debug */
    int attempts_before;
    /* the first of a batch: entries its publish reads into the slots it frees (reserved
     * meanwhile), and how many of them the publish claims, a permit held for each */
    size_t take;
    size_t take_claims;
    int64_t first_seen_ms;
    int64_t due_ms; /* PUBLISH_RETRY: when the next attempt is due */
    char nonce[192];
    struct outcome outcome;
};

struct pipeline {
    struct event_base *base;
    const struct config *cfg;
    struct metrics *metrics;
    struct redis_client *reader; /* XREADGROUP ... BLOCK only */
    struct redis_client *writer; /* claims, outcomes, housekeeping */
    int claim_script;
    int publish_script;
    int lease_script;
    int retry_script;
    struct http_submitter *http;
    struct event *retry_read_ev;
    struct event *kick_ev;           /* reader_kick at the end of this loop pass */
    struct rate_limiter *limiter;    /* scope = local */
    struct cluster_limiter *cluster; /* scope = cluster: one bucket in Redis for every instance */
    int cluster_permits;             /* granted by the cluster bucket, not yet used */
    bool cluster_outstanding;
    struct event *permit_ev;
    struct task_queue permits;
    struct breaker *breaker;
    struct retry_policy *retry_policy;
    struct event *housekeeping_ev;
    struct event *publish_ev; /* publish_send at the end of this loop pass */
    struct task_queue publishes;
    struct task_queue ready;
    struct publish_batch *batch; /* scratch for laying out a publish's arguments */

    /* identity: fixed for the life of the process (a reload cannot move the queue) */
    char prefix[128];
    char group[128];
    char consumer[128];
    char jobs_key[KEY_MAX];
    char results_key[KEY_MAX];
    char job_prefix[KEY_MAX]; /* "P:job:", for the publish script's claims */
    char retry_key[KEY_MAX];
    char dead_key[KEY_MAX];
    char paused_key[KEY_MAX];

    /* rendered once per configuration: every publish passes them */
    char ttl[DECIMAL_MAX], maxlen[DECIMAL_MAX], reply_ttl[DECIMAL_MAX];
    char nonce_prefix[160]; /* "<consumer>:<pid>:" */
    size_t nonce_prefix_len;

    struct task *tasks;
    size_t held;
    size_t reserved;          /* slots promised to reads whose entries have not arrived yet */
    size_t takes_outstanding; /* publishes that also read new entries */
    size_t sending;
    uint64_t nonce_counter;

    bool group_ready;
    bool read_outstanding;
    bool pending_pass; /* re-reading our own pending entries (after start or a reconnect) */
    char pending_cursor[JOB_ENTRY_ID_MAX + 1];
    size_t read_count;
    size_t autoclaim_count;
    bool draining;
    bool freeing;
    bool lag_outstanding;
    unsigned ticks;

    /* housekeeping: each runs at most one command at a time */
    bool paused; /* P:paused exists: start no new jobs */
    bool pause_outstanding, mover_outstanding, lease_outstanding, autoclaim_outstanding;
    bool idle_check_outstanding;
    bool autoclaim_due; /* idle entries were seen: they get the next free slots, before new ones */
    uint64_t next_lease_us, next_autoclaim_us, next_pause_check_us;
    char autoclaim_cursor[JOB_ENTRY_ID_MAX + 1];
};

static void reader_kick(struct pipeline *p);
static void take_over_idle(struct pipeline *p);
static void task_claim(struct task *t);
static void task_claimed(struct task *t, const redisReply *reply);
static void permit_refund(struct pipeline *p);
static void task_queue_for_permit(struct task *t);
static void task_send(struct task *t);
static void task_go(struct task *t);
static void task_publish(struct task *t);

/* ==== helpers ==== */

static char *append(char *dst, const char *s)
{
    size_t n = strlen(s);

    memcpy(dst, s, n);
    return dst + n;
}

/* "job_id=... tenant=... entry=..." into buf (WHO_MAX bytes); called only for lines written */
static const char *task_who(const struct task *t, char *buf)
{
    char *w = append(append(buf, "job_id="), t->job->job_id);

    w = append(w, " tenant=");
    job_tenant_printable(t->job, w, JOB_TENANT_MAX * 4 + 1);
    w = w[0] != '\0' ? w + strlen(w) : append(w, "-");
    w = append(append(w, " entry="), t->job->entry_id);
    *w = '\0';
    return buf;
}

/* "<who>: created datamart <id> (HTTP 201, 12 ms)", the line of nearly every job: built by hand,
 * as vsnprintf cost as much as everything else the line takes */
static void log_created(const struct task *t, long status, long took_ms)
{
    char who[WHO_MAX], num[DECIMAL_MAX];
    char line[WHO_MAX + API_ID_MAX + 128];
    char *w;

    if (!log_enabled(LOG_LEVEL_INFO))
        return;
    w = append(append(line, task_who(t, who)), ": created datamart ");
    w = append(w, t->outcome.datamart_id);
    if (t->outcome.recovered)
        w = append(w, " (recovered after a lost answer)");
    w = append(append(w, " (HTTP "), decimal_format(num, status));
    w = append(append(append(w, ", "), decimal_format(num, took_ms)), " ms)");
    log_text(LOG_LEVEL_INFO, line, (size_t)(w - line));
}

/* prefix ":" kind id into dst (KEY_MAX bytes); false when it would not fit */
static bool build_key(char *dst, const struct pipeline *p, const char *kind, const char *id)
{
    size_t lp = strlen(p->prefix), lk = strlen(kind), li = strlen(id);

    if (lp + 1 + lk + li >= KEY_MAX)
        return false;
    memcpy(dst, p->prefix, lp);
    dst[lp] = ':';
    memcpy(dst + lp + 1, kind, lk);
    memcpy(dst + lp + 1 + lk, id, li + 1);
    return true;
}

static void queue_push(struct task_queue *q, struct task *t)
{
    t->queue_next[q->link] = NULL;
    if (q->tail != NULL)
        q->tail->queue_next[q->link] = t;
    else
        q->head = t;
    q->tail = t;
    q->len++;
}

static void queue_push_front(struct task_queue *q, struct task *t)
{
    t->queue_next[q->link] = q->head;
    q->head = t;
    if (q->tail == NULL)
        q->tail = t;
    q->len++;
}

static struct task *queue_pop(struct task_queue *q)
{
    struct task *t = q->head;

    if (t == NULL)
        return NULL;
    q->head = t->queue_next[q->link];
    if (q->head == NULL)
        q->tail = NULL;
    t->queue_next[q->link] = NULL;
    q->len--;
    return t;
}

static void queue_remove(struct task_queue *q, struct task *t)
{
    struct task **link = &q->head, *prev = NULL;

    while (*link != NULL && *link != t) {
        prev = *link;
        link = &(*link)->queue_next[q->link];
    }
    if (*link == NULL)
        return;
    *link = t->queue_next[q->link];
    t->queue_next[q->link] = NULL;
    if (q->tail == t)
        q->tail = prev;
    q->len--;
}

static void update_gauges(struct pipeline *p)
{
    metrics_set_inflight(p->metrics, (long)p->sending, (long)p->held);
}

static void task_done(struct task *t)
{
    struct pipeline *p = t->p;

    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        p->tasks = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    p->held--;
    job_free(t->job);
    outcome_release(&t->outcome);
    free(t);
    update_gauges(p);
    /* slots free up in bursts (one Redis reply settles many jobs): read once for all of them */
    event_active(p->kick_ev, EV_TIMEOUT, 0);
}

static struct task *task_find(const struct pipeline *p, const char *entry_id, size_t len)
{
    for (struct task *t = p->tasks; t != NULL; t = t->next) {
        if (strlen(t->job->entry_id) == len && memcmp(t->job->entry_id, entry_id, len) == 0)
            return t;
    }
    return NULL;
}

static bool task_held(const struct pipeline *p, const char *entry_id, size_t len)
{
    return task_find(p, entry_id, len) != NULL;
}

/* jobs held and jobs on their way never exceed max_inflight plus the read-ahead */
static size_t slots_free(const struct pipeline *p)
{
    size_t used = p->held + p->reserved, max = (size_t)p->cfg->max_inflight;

    max += max / READ_AHEAD_DIV;
    return used < max ? max - used : 0;
}

/* ==== step 1: read entries ==== */

static void ack_deleted_entry(struct pipeline *p, const char *id)
{
    const char *argv[] = {"XACK", p->jobs_key, p->group, id};

    /* best effort: an entry deleted while pending has no job left to run */
    if (!redis_client_command(p->writer, NULL, NULL, 0, 4, argv, NULL))
        log_warn("entry %s was deleted while pending; it will be acked later", id);
}

static struct task *task_create(struct pipeline *p, const redisReply *id, const redisReply *fields)
{
    struct job_field pairs[2 * MAX_ENTRY_FIELDS];
    size_t n = fields->elements / 2;
    struct task *t;

    if (n > MAX_ENTRY_FIELDS)
        n = MAX_ENTRY_FIELDS;
    for (size_t i = 0; i < 2 * n; i++) {
        const redisReply *f = fields->element[i];

        pairs[i].ptr = f->type == REDIS_REPLY_STRING ? f->str : "";
        pairs[i].len = f->type == REDIS_REPLY_STRING ? f->len : 0;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->job = job_create(id->str, id->len, pairs, n, p->cfg->max_payload_bytes);
    if (t->job == NULL) {
        free(t);
        return NULL;
    }
    if (fields->elements / 2 > MAX_ENTRY_FIELDS &&
        !job_set_envelope_error(t->job, "entry has more than %d fields", MAX_ENTRY_FIELDS)) {
        job_free(t->job);
        free(t);
        return NULL;
    }
    t->p = p;
    outcome_init(&t->outcome);
    return t;
}

/* snprintf's "%s" truncation without its cost */
static void copy_name(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);

    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The payload's name, the datamart id of a recovered create: read again, as it is seldom needed
 * and a copy in every task would cost more memory than the second read costs time. */
static void task_payload_name(const struct task *t, char *dst, size_t size)
{
    struct validator_result *vr =
        validator_check(t->job->payload, t->job->payload_len, t->p->cfg->max_payload_bytes);
    const char *name = vr != NULL ? validator_result_name(vr) : NULL;

    copy_name(dst, size, name != NULL ? name : "");
    if (vr == NULL)
        log_error("job_id=%s: out of memory reading the payload's name", t->job->job_id);
    validator_result_free(vr);
}

/* Decide locally what can be decided before any request: a broken envelope or payload. */
static bool task_validate(struct task *t)
{
    const struct job *job = t->job;
    struct validator_result *vr;

    if (job->envelope_error[0] != '\0') {
        outcome_set_invalid_job(&t->outcome, job->envelope_error);
        return true;
    }
    vr = validator_check(job->payload, job->payload_len, t->p->cfg->max_payload_bytes);
    if (vr == NULL)
        return false;
    switch (validator_result_verdict(vr)) {
    case VALIDATOR_OK:
        t->will_send = true;
        break;
    case VALIDATOR_NOT_JSON:
        outcome_set_invalid_job(&t->outcome, validator_result_message(vr, 0));
        break;
    case VALIDATOR_INVALID: {
        char *errors = validator_result_errors_json(vr);

        if (errors == NULL) {
            validator_result_free(vr);
            return false;
        }
        outcome_set_invalid_body(&t->outcome, validator_result_path(vr, 0),
                                 validator_result_message(vr, 0), errors);
        break;
    }
    }
    validator_result_free(vr);
    return true;
}

/* A claim answer as claim_job (scripts/claim_core.lua) gives it. */
static bool claim_answer_valid(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
           r->element[0]->type == REDIS_REPLY_STRING;
}

/*
 * Take over the claim a publish made for this entry ({id, fields, answer, job_id, nonce}); false
 * when the script read the job_id otherwise than job_create did, and the task claims it itself.
 */
static bool task_adopt_claim(struct task *t, const redisReply *e)
{
    const redisReply *answer = e->element[2], *job_id = e->element[3], *nonce = e->element[4];

    if (!claim_answer_valid(answer) || job_id->type != REDIS_REPLY_STRING ||
        strcmp(job_id->str, t->job->job_id) != 0 || nonce->type != REDIS_REPLY_STRING ||
        nonce->len >= sizeof(t->nonce)) {
        log_error("entry %s: claimed by the publish script as job_id %s, read here as %s",
                  t->job->entry_id, job_id->type == REDIS_REPLY_STRING ? job_id->str : "?",
                  t->job->job_id);
        permit_refund(t->p); /* the one the publish took for this claim */
        return false;
    }
    t->permitted = true;
    memcpy(t->nonce, nonce->str, nonce->len + 1);
    t->state = TASK_CLAIM_WAIT; /* should the answer not be taken in, the claim is made again */
    task_claimed(t, answer);
    return true;
}

/* claimed: the entry as a publish read and claimed it (see task_adopt_claim), or NULL */
static void task_start(struct pipeline *p, const redisReply *id, const redisReply *fields,
                       const redisReply *claimed)
{
    struct task *t = task_create(p, id, fields);
    char who[WHO_MAX];
    char counter[DECIMAL_MAX];
    const char *digits;
    size_t ndigits;

    if (t == NULL || !task_validate(t)) {
        /* the entry stays pending and comes back at the next pending pass */
        log_error("out of memory while reading entry %.*s", (int)id->len, id->str);
        if (t != NULL) {
            job_free(t->job);
            outcome_release(&t->outcome);
            free(t);
        }
        if (claimed != NULL)
            permit_refund(p);
        return;
    }
    t->next = p->tasks;
    if (p->tasks != NULL)
        p->tasks->prev = t;
    p->tasks = t;
    p->held++;
    update_gauges(p);
    log_debug("%s: read", task_who(t, who));
    if (claimed != NULL && task_adopt_claim(t, claimed))
        return;
    digits = decimal_format(counter, (long long)++p->nonce_counter);
    ndigits = strlen(digits);
    memcpy(t->nonce, p->nonce_prefix, p->nonce_prefix_len);
    memcpy(t->nonce + p->nonce_prefix_len, digits, ndigits + 1);
    if (t->will_send)
        task_queue_for_permit(t); /* the claim marks a request in flight: only claim to send */
    else
        task_claim(t);
}

/* Start a task for each entry of an XREADGROUP reply (an entry deleted meanwhile has no fields). */
static void start_entries(struct pipeline *p, const redisReply *entries, bool pending)
{
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        const redisReply *id, *fields;

        if (e->type != REDIS_REPLY_ARRAY || (e->elements != 2 && e->elements != 5) ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue; /* not an entry: nothing of ours to start */
        id = e->element[0];
        fields = e->element[1];
        if (pending) {
            snprintf(p->pending_cursor, sizeof(p->pending_cursor), "%.*s", (int)id->len, id->str);
            if (task_held(p, id->str, id->len))
                continue;
        }
        if (p->draining && e->elements != 5)
            continue; /* read during shutdown: stays pending for the next start */
        if (fields->type != REDIS_REPLY_ARRAY) {
            ack_deleted_entry(p, id->str);
            continue;
        }
        task_start(p, id, fields, e->elements == 5 ? e : NULL);
    }
}

static void on_read(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct pipeline *p = arg;
    const redisReply *entries;

    (void)c;
    p->read_outstanding = false;
    p->reserved -= p->read_count;
    if (p->freeing || reply == NULL)
        return; /* a lost connection: the state callback restarts reading */
    if (reply->type == REDIS_REPLY_ERROR) {
        const struct timeval again = {1, 0};

        if (strncmp(reply->str, "NOGROUP", 7) == 0)
            p->group_ready = false;
        log_error("reading %s failed: %s", p->jobs_key, reply->str);
        event_add(p->retry_read_ev, &again);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
        /* nil: a BLOCK that timed out, or nothing pending */
        p->pending_pass = false;
        reader_kick(p);
        return;
    }
    entries = reply->element[0]->element[1];
    start_entries(p, entries, p->pending_pass);
    if (p->pending_pass && entries->elements < p->read_count)
        p->pending_pass = false;
    reader_kick(p);
}

static void on_group_created(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct pipeline *p = arg;

    (void)c;
    p->read_outstanding = false;
    if (p->freeing || reply == NULL)
        return;
    if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "BUSYGROUP", 9) != 0) {
        const struct timeval again = {1, 0};

        log_error("cannot create consumer group %s on %s: %s", p->group, p->jobs_key, reply->str);
        event_add(p->retry_read_ev, &again);
        return;
    }
    if (!p->group_ready)
        log_info("consumer group %s on %s is ready; consumer %s", p->group, p->jobs_key,
                 p->consumer);
    p->group_ready = true;
    p->pending_pass = true;
    snprintf(p->pending_cursor, sizeof(p->pending_cursor), "0");
    reader_kick(p);
}

static void reader_kick(struct pipeline *p)
{
    char count[24];

    take_over_idle(p); /* idle entries first: they are older than anything left to read */
    if (p->draining || p->freeing || p->read_outstanding)
        return;
    /* paused by an operator, or the API is failing and a job to probe with is at hand */
    if (p->paused || (breaker_state(p->breaker) != BREAKER_STATE_CLOSED && p->permits.len > 0))
        return;
    if (redis_client_state(p->reader) != REDIS_CLIENT_CONNECTED)
        return;
    if (!p->group_ready) {
        const char *argv[] = {"XGROUP", "CREATE", p->jobs_key, p->group, "0", "MKSTREAM"};

        if (redis_client_command(p->reader, on_group_created, p, 0, 6, argv, NULL))
            p->read_outstanding = true;
        return;
    }
    if (slots_free(p) == 0)
        return; /* resumed by task_done when a slot frees */
    /* our own pending entries come first: wait for the publishes that read new ones */
    if (p->pending_pass && p->takes_outstanding > 0)
        return;
    p->read_count = slots_free(p);
    if (breaker_state(p->breaker) != BREAKER_STATE_CLOSED)
        p->read_count = 1; /* the probe's job: the rest stay in the stream */
    snprintf(count, sizeof(count), "%zu", p->read_count);
    if (p->pending_pass) {
        const char *argv[] = {"XREADGROUP", "GROUP",   p->group,    p->consumer,      "COUNT",
                              count,        "STREAMS", p->jobs_key, p->pending_cursor};

        p->read_outstanding =
            redis_client_command(p->reader, on_read, p, 0, DM_ARRAY_LEN(argv), argv, NULL);
    } else {
        const char *argv[] = {"XREADGROUP", "GROUP",     p->group, p->consumer,
                              "COUNT",      count,       "BLOCK",  DM_XSTR(READ_BLOCK_MS),
                              "STREAMS",    p->jobs_key, ">"};

        p->read_outstanding =
            redis_client_command(p->reader, on_read, p, READ_BLOCK_MS + REDIS_COMMAND_TIMEOUT_MS,
                                 DM_ARRAY_LEN(argv), argv, NULL);
    }
    if (p->read_outstanding)
        p->reserved += p->read_count;
}

static void on_kick_reader(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reader_kick(arg);
}

/* ==== step 2: wait for a rate-limit permit ==== */

static void permit_grant(struct pipeline *p);

static void permit_timer_in(struct pipeline *p, uint64_t us)
{
    struct timeval tv = {(time_t)(us / 1000000u), (suseconds_t)(us % 1000000u)};

    event_add(p->permit_ev, &tv);
}

/* CLUSTER_LIMITER acquire callback: permits for this instance from the shared bucket */
static void on_cluster_grant(void *arg, const struct cluster_grant *g)
{
    struct pipeline *p = arg;

    p->cluster_outstanding = false;
    if (p->freeing)
        return;
    if (g == NULL) {
        permit_timer_in(p, 100000u); /* Redis unreachable: ask again soon */
        return;
    }
    p->cluster_permits += g->granted;
    if (g->paused_us > 0 && g->pause_reason != NULL)
        log_debug("cluster pause: %s (%lld ms left)", g->pause_reason, g->paused_us / 1000);
    if (g->granted > 0)
        permit_grant(p);
    else
        permit_timer_in(p, (uint64_t)(g->wait_us > 0 ? g->wait_us : 1000));
}

/* One permit if one is at hand: from the local bucket or from what the cluster bucket granted. */
static bool permit_try(struct pipeline *p, uint64_t now_us)
{
    if (p->cluster == NULL)
        return rate_limiter_try_acquire(p->limiter, now_us);
    if (p->cluster_permits == 0)
        return false;
    p->cluster_permits--;
    return true;
}

/* A permit taken for a job that sends no request after all: the next waiting job gets it. */
static void permit_refund(struct pipeline *p)
{
    if (p->cluster == NULL)
        rate_limiter_refund(p->limiter);
    else
        p->cluster_permits++;
    if (p->permits.head != NULL)
        permit_timer_in(p, 0);
}

/* The task will send no request (or not now): its permit goes to the next job. */
static void task_give_back_permit(struct task *t)
{
    if (!t->permitted)
        return;
    t->permitted = false;
    permit_refund(t->p);
}

/* One permit now, or a timer (or a cluster request) set for when there may be one. */
static bool permit_take(struct pipeline *p, uint64_t now_us)
{
    if (permit_try(p, now_us))
        return true;
    if (p->cluster == NULL) {
        permit_timer_in(p, rate_limiter_wait_us(p->limiter, now_us));
        return false;
    }
    /* one round trip asks for as many permits as jobs wait, at most a read's worth */
    if (!p->cluster_outstanding)
        p->cluster_outstanding = cluster_limiter_acquire(
            p->cluster, (int)(p->permits.len < 64 ? p->permits.len : 64), on_cluster_grant, p);
    if (!p->cluster_outstanding)
        permit_timer_in(p, 100000u);
    return false;
}

/* Hand out permits in arrival order; re-arm the timer for the next one. */
static void permit_grant(struct pipeline *p)
{
    while (p->permits.head != NULL && !p->paused && !p->draining) {
        uint64_t now_us = clock_monotonic_us();
        enum breaker_permit permit = breaker_allow(p->breaker, (int64_t)(now_us / 1000));
        struct task *t;

        if (permit == BREAKER_PERMIT_DENY) {
            int64_t next = breaker_next_probe_ms(p->breaker);

            /* no probe scheduled: the one in flight calls us back with its result */
            if (next >= 0) {
                int64_t wait_ms = next - (int64_t)(now_us / 1000);

                permit_timer_in(p, wait_ms > 0 ? (uint64_t)wait_ms * 1000u : 0);
            }
            return;
        }
        if (!permit_take(p, now_us)) {
            if (permit == BREAKER_PERMIT_PROBE)
                breaker_probe_cancel(p->breaker);
            return;
        }
        t = queue_pop(&p->permits);
        t->probe = permit == BREAKER_PERMIT_PROBE;
        t->permitted = true;
        /* a job held back by an auth pause keeps its claim: it only needs sending again */
        if (t->claimed)
            task_send(t);
        else
            task_claim(t);
    }
}

static void on_permit_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    permit_grant(arg);
}

static void task_queue_for_permit(struct task *t)
{
    struct pipeline *p = t->p;

    t->state = TASK_PERMIT_WAIT;
    queue_push(&p->permits, t);
    if (p->permits.head == t)
        permit_grant(p);
}

/* Put a claimed task back at the head of the queue: it goes first once sending resumes. */
static void task_requeue_first(struct task *t)
{
    struct pipeline *p = t->p;

    t->state = TASK_PERMIT_WAIT;
    queue_push_front(&p->permits, t);
}

/* ==== step 3: claim the job_id ==== */

static void task_finish_local(struct task *t)
{
    char who[WHO_MAX];

    log_info("%s: failed %s before any request: %s%s%s", task_who(t, who), t->outcome.error_code,
             t->outcome.error_path[0] ? t->outcome.error_path : "",
             t->outcome.error_path[0] ? ": " : "", t->outcome.error_message);
    t->outcome.attempts = t->attempts_before;
    t->outcome.finished_ms = clock_realtime_ms();
    task_publish(t);
}

static void on_claim(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct task *t = arg;
    struct pipeline *p = t->p;
    char who[WHO_MAX];

    (void)c;
    if (p->freeing)
        return;
    t->state = TASK_CLAIM_WAIT;
    if (reply == NULL)
        return; /* retried when the writer reconnects; the claim is idempotent for our nonce */
    if (!claim_answer_valid(reply)) {
        log_error("%s: claim failed: %s", task_who(t, who),
                  reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        return; /* tried again at the next tick */
    }
    if (t->probe && (strcmp(reply->element[0]->str, "claimed") != 0 || !t->will_send)) {
        breaker_probe_cancel(p->breaker); /* this job will not test the API after all */
        t->probe = false;
        permit_grant(p);
    }
    task_claimed(t, reply);
}

/* Go on from a claim answer: send, finish locally, re-publish a finished job, or let go. */
static void task_claimed(struct task *t, const redisReply *reply)
{
    struct pipeline *p = t->p;
    const char *verdict = reply->element[0]->str;
    char who[WHO_MAX];

    if (strcmp(verdict, "claimed") != 0 || !t->will_send)
        task_give_back_permit(t);
    if (strcmp(verdict, "claimed") == 0 && reply->elements == 5) {
        t->claimed = true;
        t->attempts_before = (int)reply->element[1]->integer;
        t->maybe_sent = reply->element[2]->integer != 0;
        t->first_seen_ms = reply->element[3]->integer;
        t->fresh = reply->element[4]->integer != 0;
        if (!t->will_send)
            task_finish_local(t);
        else
            task_go(t); /* paused or failing since its permit: it waits, claimed */
    } else if (strcmp(verdict, "finished") == 0) {
        for (size_t i = 1; i + 1 < reply->elements; i += 2) {
            if (!outcome_load_field(&t->outcome, reply->element[i]->str, reply->element[i + 1]->str,
                                    reply->element[i + 1]->len)) {
                log_error("%s: out of memory loading the stored outcome", task_who(t, who));
                return;
            }
        }
        t->mode = PUBLISH_DUPLICATE;
        t->outcome.duplicate = true;
        log_info("%s: job_id already finished (%s): publishing its outcome again", task_who(t, who),
                 outcome_status_name(t->outcome.status));
        task_publish(t);
    } else if (strcmp(verdict, "dropped") == 0) {
        log_info("%s: dropped: job_id is already held by entry %s", task_who(t, who),
                 reply->elements > 1 ? reply->element[1]->str : "?");
        task_done(t);
    } else {
        log_warn("%s: entry is no longer pending for consumer %s: left to its owner",
                 task_who(t, who), p->consumer);
        metrics_outcome_stale(p->metrics);
        task_done(t);
    }
}

static void task_claim(struct task *t)
{
    struct pipeline *p = t->p;
    char job_key[KEY_MAX], now[DECIMAL_MAX];
    const char *argv[7];

    if (!build_key(job_key, p, "job:", t->job->job_id)) {
        log_error("job key for %s too long", t->job->job_id);
        return;
    }
    argv[0] = job_key;
    argv[1] = p->jobs_key;
    argv[2] = p->group;
    argv[3] = t->job->entry_id;
    argv[4] = p->consumer;
    argv[5] = decimal_format(now, (long long)clock_realtime_ms());
    argv[6] = t->will_send ? t->nonce : "";
    t->state = TASK_CLAIM_WAIT;
    if (redis_client_eval(p->writer, on_claim, t, 0, p->claim_script, 2, 7, argv, NULL))
        t->state = TASK_CLAIMING;
}

/* ==== step 4: submit and classify ==== */

static enum api_transport transport_of(enum http_outcome o)
{
    switch (o) {
    case HTTP_OUTCOME_RESPONSE:
        return API_TRANSPORT_RESPONSE;
    case HTTP_OUTCOME_TIMEOUT:
        return API_TRANSPORT_TIMEOUT;
    case HTTP_OUTCOME_CONNECT_ERROR:
        return API_TRANSPORT_CONNECT_ERROR;
    default:
        return API_TRANSPORT_ERROR;
    }
}

/* Tell the operator, once per change, why submissions stopped or resumed. */
/* Show the breaker in /metrics and, for `datamartctl stats`, in P:ratelimit:breaker. */
static void breaker_report(struct pipeline *p)
{
    static const char *const states[] = {"closed", "open: the API keeps failing",
                                         "paused: the API rejects the token"};
    int why = breaker_state(p->breaker) == BREAKER_STATE_CLOSED   ? 0
              : breaker_reason(p->breaker) == BREAKER_REASON_AUTH ? 2
                                                                  : 1;
    char key[KEY_MAX], value[256];
    const char *argv[3] = {"SET", key, value};
    time_t now = time(NULL);
    struct tm tm;

    metrics_set_submissions_paused(p->metrics, why);
    gmtime_r(&now, &tm);
    snprintf(key, sizeof(key), "%s:ratelimit:breaker", p->prefix);
    snprintf(value, sizeof(value), "%s (reported by %s at %04d-%02d-%02dT%02d:%02d:%02dZ)",
             states[why], p->consumer, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec);
    /* best effort: it only informs operators */
    if (!redis_client_command(p->writer, NULL, NULL, 0, 3, argv, NULL))
        log_debug("breaker state not written: Redis unavailable");
}

static void breaker_changed(struct pipeline *p, const struct api_classification *c)
{
    breaker_report(p);
    if (breaker_state(p->breaker) == BREAKER_STATE_CLOSED) {
        log_info("API accepts requests again: resuming submissions");
        reader_kick(p);
    } else if (breaker_reason(p->breaker) == BREAKER_REASON_AUTH) {
        /* with a shared budget the whole fleet holds off until our probe settles it */
        if (p->cluster != NULL &&
            !cluster_limiter_pause(p->cluster, p->cfg->breaker_probe_interval_ms,
                                   "the API rejected the token"))
            log_warn("could not pause the fleet (Redis unreachable)");
        log_error("API rejected the credentials (%s: %s): ALL submissions paused; probing one "
                  "request at a time; install a new token and send SIGHUP",
                  c->code, c->message);
    } else {
        log_warn("circuit breaker open after sustained transient failures (last %s: %s): no new "
                 "jobs are started; probing one request at a time",
                 c->code, c->message);
    }
}

/* A 429 pauses every submission until its Retry-After, not only this job's. */
static void rate_limited(struct pipeline *p, int64_t retry_after_ms)
{
    int64_t pause_ms = retry_after_ms >= 0 ? retry_after_ms : RATE_LIMITED_PAUSE_MS;

    if (p->cluster != NULL) {
        if (!cluster_limiter_pause(p->cluster, pause_ms, "the API answered 429"))
            log_warn("could not pause the fleet for a 429 (Redis unreachable)");
    } else {
        rate_limiter_pause_until(p->limiter, clock_monotonic_us() + (uint64_t)pause_ms * 1000u);
    }
    log_warn("API answered 429: submissions paused for %lld ms%s", (long long)pause_ms,
             p->cluster != NULL ? " on every instance" : "");
}

/* The job's final outcome from a definite answer. */
static void task_decide(struct task *t, const struct api_classification *c)
{
    struct outcome *o = &t->outcome;

    switch (c->verdict) {
    case API_VERDICT_CREATED:
        outcome_set_api(o, OUTCOME_CREATED, c);
        break;
    case API_VERDICT_EXISTS:
        if (t->maybe_sent || t->attempts_before > 0) {
            /* our own earlier attempt created it and its answer was lost */
            outcome_set_api(o, OUTCOME_CREATED, c);
            task_payload_name(t, o->datamart_id, sizeof(o->datamart_id));
            o->recovered = true;
        } else {
            outcome_set_api(o, OUTCOME_FAILED, c);
            snprintf(o->error_code, sizeof(o->error_code), "DATAMART_EXISTS");
        }
        break;
    case API_VERDICT_PERMANENT:
        outcome_set_api(o, OUTCOME_FAILED, c);
        break;
    case API_VERDICT_TRANSIENT:
    case API_VERDICT_AUTH:
        outcome_set_api(o, OUTCOME_DEAD, c); /* the caller gave up on it */
        break;
    }
    outcome_redact(o, t->p->cfg->api_token);
}

/* A transient failure: park the job in P:retry, or give up on it. */
static void task_retry_or_die(struct task *t, const struct api_classification *c,
                              int64_t retry_after_ms)
{
    struct pipeline *p = t->p;
    int64_t now = clock_realtime_ms();

    task_decide(t, c);
    if (retry_policy_decide(p->retry_policy, t->outcome.attempts, t->first_seen_ms, now,
                            retry_after_ms, &t->due_ms) == RETRY_DECISION_RETRY)
        t->mode = PUBLISH_RETRY;
}

/* A claimed job goes out, or waits at the head of the queue while paused or failing. */
static void task_go(struct task *t)
{
    struct pipeline *p = t->p;

    if (t->probe || (!p->paused && breaker_state(p->breaker) == BREAKER_STATE_CLOSED)) {
        task_send(t);
        return;
    }
    task_give_back_permit(t);
    task_requeue_first(t);
    permit_grant(p);
}

/* Requests finished (or max_inflight grew): the jobs claimed ahead take the free slots. */
static void ready_fill(struct pipeline *p)
{
    while (p->ready.head != NULL && !p->draining && p->sending < (size_t)p->cfg->max_inflight)
        task_go(queue_pop(&p->ready));
}

/* Take in the answer to a task's request (or its failure), and decide the outcome. */
static void task_answered(struct task *t, const struct http_result *res)
{
    struct pipeline *p = t->p;
    struct api_answer answer;
    struct api_classification c;
    int64_t now_ms = (int64_t)(clock_monotonic_us() / 1000);
    int64_t retry_after_ms = -1;
    bool probe = t->probe;
    char who[WHO_MAX];
    long took_ms;

    t->probe = false;
    if (res->outcome == HTTP_OUTCOME_ABORTED) {
        if (probe)
            breaker_probe_cancel(p->breaker);
        task_done(t); /* shutdown: the entry stays pending for the next start */
        return;
    }
    metrics_http_request(p->metrics, res->status, res->total_s);
    answer.transport = transport_of(res->outcome);
    answer.status = res->status;
    answer.body = res->body;
    answer.body_len = res->body_len;
    answer.transport_error = res->error;
    api_response_classify(&answer, &c);
    if (res->retry_after != NULL &&
        !retry_after_parse(res->retry_after, clock_realtime_ms(), &retry_after_ms))
        retry_after_ms = -1;

    if (c.verdict == API_VERDICT_AUTH) {
        if (breaker_auth_fault(p->breaker, probe, now_ms))
            breaker_changed(p, &c);
        if (clock_realtime_ms() - t->first_seen_ms <= p->cfg->max_age_s * 1000) {
            /* a credential fault is the daemon's, not the job's: it waits, attempt unspent */
            log_info("%s: held back: %s (%s)", task_who(t, who), c.code, c.message);
            task_requeue_first(t);
            permit_grant(p);
            return;
        }
    }
    t->outcome.attempts = t->attempts_before + (res->request_sent ? 1 : 0);
    t->outcome.finished_ms = clock_realtime_ms();
    if (c.verdict == API_VERDICT_TRANSIENT) {
        if (breaker_transient_failure(p->breaker, probe, now_ms))
            breaker_changed(p, &c);
        if (res->status == 429)
            rate_limited(p, retry_after_ms);
        task_retry_or_die(t, &c, retry_after_ms);
    } else {
        if (c.verdict != API_VERDICT_AUTH && breaker_success(p->breaker, probe))
            breaker_changed(p, &c);
        task_decide(t, &c);
    }
    permit_grant(p); /* a probe's result may have reopened the gate */

    /* whole milliseconds: glibc's %f costs as much as the rest of the line */
    took_ms = (long)(res->total_s * 1000.0 + 0.5);
    if (t->mode == PUBLISH_RETRY)
        log_info("%s: attempt %d failed, %s: %s (HTTP %ld, %ld ms); next attempt in %lld ms",
                 task_who(t, who), t->outcome.attempts, c.code, t->outcome.error_message,
                 res->status, took_ms, (long long)(t->due_ms - clock_realtime_ms()));
    else if (t->outcome.status == OUTCOME_CREATED)
        log_created(t, res->status, took_ms);
    else
        log_info("%s: %s %s: %s (HTTP %ld, %ld ms)", task_who(t, who),
                 outcome_status_name(t->outcome.status), t->outcome.error_code,
                 t->outcome.error_message, res->status, took_ms);
    task_publish(t);
}

/* http_submitter: a request finished. Its slot goes to the job claimed ahead once the answer,
 * which may open the breaker, is taken in. */
static void on_http_done(void *arg, const struct http_result *res)
{
    struct task *t = arg;
    struct pipeline *p = t->p;

    p->sending--;
    update_gauges(p);
    task_answered(t, res);
    if (res->outcome != HTTP_OUTCOME_ABORTED) /* aborted: shutting down */
        ready_fill(p);
}

static void task_send(struct task *t)
{
    struct pipeline *p = t->p;

    if (p->sending >= (size_t)p->cfg->max_inflight) {
        /* claimed ahead: it goes when a request finishes (ready_fill) */
        t->state = TASK_READY;
        queue_push(&p->ready, t);
        return;
    }
    t->state = TASK_SEND_WAIT;
    if (!http_submitter_post(p->http, t->job->payload, t->job->payload_len, on_http_done, t))
        return; /* tried again at the next tick */
    t->state = TASK_SENDING;
    p->sending++;
    update_gauges(p);
}

/* ==== step 5: publish the outcome ==== */

/* Redis is unreachable: the outcome stays in memory (bounded by max_inflight); say so once */
static void task_hold_outcome(struct task *t)
{
    char who[WHO_MAX];

    t->state = TASK_PUBLISH_WAIT;
    if (t->wait_logged)
        return;
    t->wait_logged = true;
    log_warn("%s: Redis unavailable: outcome held in memory until it is back", task_who(t, who));
}

/* The slots a publish frees go to the next entries, read by the same script: no read of its own */
static size_t publish_take(const struct pipeline *p, size_t freed)
{
    if (p->draining || p->paused || p->pending_pass || !p->group_ready || p->autoclaim_due ||
        breaker_state(p->breaker) != BREAKER_STATE_CLOSED)
        return 0;
    return freed + slots_free(p);
}

/* Permits for the entries the publish claims as well, so they go out without a claim of their
 * own; none while jobs queue for a permit, which keeps the queue's order. */
static size_t publish_permits(struct pipeline *p, size_t take)
{
    uint64_t now_us = clock_monotonic_us();
    size_t n = 0;

    if (p->permits.head != NULL)
        return 0;
    while (n < take && permit_try(p, now_us))
        n++;
    return n;
}

/* The publish is settled: permits not used by a claim it made go back. */
static void publish_settle_take(struct task *head, const redisReply *entries)
{
    struct pipeline *p = head->p;
    size_t unused = head->take_claims;

    for (size_t i = 0; entries != NULL && i < entries->elements; i++) {
        const redisReply *e = entries->element[i];

        if (unused > 0 && e->type == REDIS_REPLY_ARRAY && e->elements == 5)
            unused--; /* its task holds the permit from now on */
    }
    while (unused-- > 0)
        permit_refund(p);
    p->reserved -= head->take;
    p->takes_outstanding--;
    head->take = 0;
    head->take_claims = 0;
    event_active(p->kick_ev, EV_TIMEOUT, 0); /* the slots it reserved are free again */
}

/* Redis refused the outcome (a key of the wrong type, out of memory, ...): the next tick tries
 * again, and the metric counts every refusal while the log says it once per job */
static void task_refused(struct task *t, const char *why)
{
    char who[WHO_MAX];

    metrics_outcome_refused(t->p->metrics);
    if (!t->refusal_logged)
        log_error("%s: publishing the outcome failed: %s (tried again every second)",
                  task_who(t, who), why);
    else
        log_debug("%s: publishing the outcome failed again: %s", task_who(t, who), why);
    t->refusal_logged = true;
}

/* One job's verdict in a publish reply (NULL: none, the whole call failed). */
static void task_published(struct task *t, const redisReply *reply, const redisReply *verdict)
{
    struct pipeline *p = t->p;
    char who[WHO_MAX];

    t->state = TASK_PUBLISH_WAIT; /* unless it ends here, the next tick publishes it again */
    if (verdict == NULL || verdict->type != REDIS_REPLY_STRING) {
        task_refused(t, reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    } else if (strcmp(verdict->str, "ok") == 0) {
        if (t->mode == PUBLISH_RETRY)
            metrics_job_retried(p->metrics);
        else
            metrics_job_finished(p->metrics, t->outcome.status, t->mode == PUBLISH_DUPLICATE);
        task_done(t);
    } else if (strcmp(verdict->str, "released") == 0) {
        log_info("%s: not sent before shutdown: claim withdrawn, the entry stays pending",
                 task_who(t, who));
        task_done(t);
    } else if (strcmp(verdict->str, "stale") == 0) {
        log_warn("%s: outcome not published: the entry is no longer pending for %s "
                 "(already published, or taken over)",
                 task_who(t, who), p->consumer);
        metrics_outcome_stale(p->metrics);
        task_done(t);
    } else {
        task_refused(t, verdict->str);
    }
}

/* The reply to a batch's publish: arg is its first task, the others follow on LINK_PUBLISH. */
static void on_publish(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct task *t = arg;
    struct pipeline *p = t->p;
    const redisReply *verdicts = NULL, *entries = NULL;
    size_t i = 0;

    (void)c;
    if (p->freeing)
        return;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY)
        verdicts = reply->element[0];
    if (verdicts != NULL && reply->elements > 1 && reply->element[1]->type == REDIS_REPLY_ARRAY)
        entries = reply->element[1];
    if (t->take > 0)
        publish_settle_take(t, entries);
    while (t != NULL) {
        struct task *next = t->queue_next[LINK_PUBLISH]; /* t may be done and freed */

        t->queue_next[LINK_PUBLISH] = NULL;
        if (reply == NULL) /* entries it may have read stay pending: the reconnect finds them */
            task_hold_outcome(t);
        else
            task_published(
                t, reply, verdicts != NULL && i < verdicts->elements ? verdicts->element[i] : NULL);
        i++;
        t = next;
    }
    if (entries != NULL)
        start_entries(p, entries, false);
}

/* Queue the outcome for this loop pass's publish: one script call settles all of them. */
static void task_publish(struct task *t)
{
    struct pipeline *p = t->p;

    if (redis_client_state(p->writer) != REDIS_CLIENT_CONNECTED) {
        task_hold_outcome(t);
        return;
    }
    t->state = TASK_PUBLISH_QUEUED;
    queue_push(&p->publishes, t);
    if (p->publishes.len == 1)
        event_active(p->publish_ev, EV_TIMEOUT, 0);
}

/* What one job passes to the publish script, rendered before the call's arguments are laid out. */
struct publish_slot {
    struct task *t;
    struct strbuf reply;
    struct outcome_render r;
    char job_key[KEY_MAX], batch_key[KEY_MAX], reply_key[KEY_MAX];
    char due[DECIMAL_MAX], attempts[DECIMAL_MAX], http_status[DECIMAL_MAX], pairs[DECIMAL_MAX];
};

struct publish_batch {
    size_t argc;
    const char *argv[PUBLISH_ARGC_MAX];
    size_t lens[PUBLISH_ARGC_MAX];
    struct publish_slot slots[PUBLISH_BATCH_MAX];
};

/* false: the job cannot be published now (out of memory); it waits for the next tick */
static bool publish_slot_prepare(const struct pipeline *p, struct publish_slot *s, struct task *t)
{
    s->t = t;
    strbuf_reset(&s->reply);
    if (t->mode == PUBLISH_FINAL || t->mode == PUBLISH_DUPLICATE) {
        if (t->job->reply_to[0] != '\0')
            outcome_render_json(&t->outcome, t->job, &s->reply);
        outcome_render_fields(&t->outcome, t->job, &s->r);
    }
    /* the keys cannot overflow: prefix and ids are bounded well below KEY_MAX */
    return !s->reply.failed && build_key(s->job_key, p, "job:", t->job->job_id) &&
           (t->job->batch[0] == '\0' || build_key(s->batch_key, p, "batch:", t->job->batch)) &&
           (t->job->reply_to[0] == '\0' || build_key(s->reply_key, p, "reply:", t->job->reply_to));
}

#define ARG(s, n) (b->argv[b->argc] = (s), b->lens[b->argc] = (n), b->argc++)
#define ARGS(s) ARG((s), strlen(s))

/* The job's block of arguments: see publish.lua */
static void publish_slot_args(struct publish_batch *b, struct publish_slot *s)
{
    static const char *const modes[] = {"final", "duplicate", "retry", "release"};
    const struct task *t = s->t;
    const struct job *job = t->job;
    bool dead = t->mode == PUBLISH_FINAL && t->outcome.status == OUTCOME_DEAD;
    size_t pairs_at, first;

    ARGS(job->entry_id);
    ARGS(modes[t->mode]);
    ARG(s->reply.data ? s->reply.data : "", s->reply.len);
    ARGS(job->batch);
    ARGS(outcome_status_name(t->outcome.status));
    ARGS(job->job_id);
    if (t->mode == PUBLISH_RETRY) {
        ARGS(decimal_format(s->due, (long long)t->due_ms));
        ARGS("");
        ARGS("");
    } else if (t->mode == PUBLISH_RELEASE) {
        ARGS(t->nonce);
        ARGS("");
        ARGS("");
    } else {
        /* a dead letter keeps the payload so it can be requeued */
        ARG(dead ? job->payload : "", dead ? job->payload_len : 0);
        ARGS(dead ? job->reply_to : "");
        ARGS(t->fresh ? "1" : "");
    }
    pairs_at = b->argc;
    ARGS("");
    first = b->argc;
    if (t->mode == PUBLISH_RETRY) {
        /* the job hash carries the envelope while the stream entry is gone */
        ARGS("attempts");
        ARGS(decimal_format(s->attempts, t->outcome.attempts));
        ARGS("payload");
        ARG(job->payload, job->payload_len);
        ARGS("last_error_code");
        ARGS(t->outcome.error_code);
        ARGS("last_error_message");
        ARGS(t->outcome.error_message);
        ARGS("last_http_status");
        ARGS(decimal_format(s->http_status, t->outcome.http_status));
        if (job->tenant_len > 0) {
            ARGS("tenant");
            ARG(job->tenant, job->tenant_len);
        }
        if (job->batch[0] != '\0') {
            ARGS("batch");
            ARGS(job->batch);
        }
        if (job->reply_to[0] != '\0') {
            ARGS("reply_to");
            ARGS(job->reply_to);
        }
    } else if (t->mode != PUBLISH_RELEASE) {
        for (size_t i = 0; i < s->r.count; i++) {
            ARGS(s->r.fields[i].name);
            ARG(s->r.fields[i].value, s->r.fields[i].len);
        }
    }
    b->argv[pairs_at] = decimal_format(s->pairs, (long long)(b->argc - first) / 2);
    b->lens[pairs_at] = strlen(b->argv[pairs_at]);
}

/* Send one publish for up to PUBLISH_BATCH_MAX queued jobs. */
static void publish_send(struct pipeline *p)
{
    struct publish_batch *b = p->batch;
    struct task_queue batch = {.link = LINK_PUBLISH};
    struct task *t;
    char now[DECIMAL_MAX], take_buf[DECIMAL_MAX], claims_buf[DECIMAL_MAX];
    char nonce_buf[DECIMAL_MAX], count_buf[DECIMAL_MAX];
    size_t n = 0, take, claims;
    bool sent;

    while (n < PUBLISH_BATCH_MAX && (t = queue_pop(&p->publishes)) != NULL) {
        if (!publish_slot_prepare(p, &b->slots[n], t)) {
            t->state = TASK_PUBLISH_WAIT;
            continue;
        }
        queue_push(&batch, t); /* the batch's tasks stay linked until its reply */
        n++;
    }
    if (n == 0)
        return;
    take = publish_take(p, n);
    claims = publish_permits(p, take);

    b->argc = 0;
    ARGS(p->jobs_key);
    ARGS(p->results_key);
    ARGS(p->retry_key);
    ARGS(p->dead_key);
    for (size_t i = 0; i < n; i++) {
        const struct publish_slot *s = &b->slots[i];

        ARGS(s->job_key);
        ARGS(s->t->job->batch[0] ? s->batch_key : p->jobs_key);
        ARGS(s->t->job->reply_to[0] ? s->reply_key : p->jobs_key);
    }
    ARGS(p->group);
    ARGS(p->consumer);
    ARGS(p->ttl);
    ARGS(p->maxlen);
    ARGS(p->reply_ttl);
    ARGS(decimal_format(now, (long long)clock_realtime_ms()));
    ARGS(decimal_format(take_buf, (long long)take));
    ARGS(decimal_format(claims_buf, (long long)claims));
    ARGS(p->job_prefix);
    ARGS(p->nonce_prefix);
    ARGS(decimal_format(nonce_buf, (long long)p->nonce_counter + 1));
    ARGS(decimal_format(count_buf, (long long)n));
    for (size_t i = 0; i < n; i++)
        publish_slot_args(b, &b->slots[i]);

    sent = redis_client_eval(p->writer, on_publish, batch.head, 0, p->publish_script,
                             (int)(4 + 3 * n), (int)b->argc, b->argv, b->lens);
    if (sent) {
        batch.head->take = take;
        batch.head->take_claims = claims;
        p->nonce_counter += claims; /* the script numbers its claims' nonces from here */
        p->reserved += take;
        if (take > 0)
            p->takes_outstanding++;
        for (t = batch.head; t != NULL; t = t->queue_next[LINK_PUBLISH])
            t->state = TASK_PUBLISHING;
    } else {
        while (claims-- > 0)
            permit_refund(p);
        while ((t = queue_pop(&batch)) != NULL)
            task_hold_outcome(t);
    }
}

#undef ARGS
#undef ARG

/* libevent: the end of a loop pass; every outcome decided in it goes out */
static void on_publish_flush(evutil_socket_t fd, short what, void *arg)
{
    struct pipeline *p = arg;

    (void)fd;
    (void)what;
    while (p->publishes.head != NULL)
        publish_send(p);
}

/* Resume every task that waits for Redis or for the submitter. */
static void resume_waiting(struct pipeline *p)
{
    struct task *t = p->tasks;

    while (t != NULL) {
        struct task *next = t->next; /* a resumed task may finish and be freed */

        if (redis_client_state(p->writer) == REDIS_CLIENT_CONNECTED) {
            if (t->state == TASK_CLAIM_WAIT)
                task_claim(t);
            else if (t->state == TASK_PUBLISH_WAIT)
                task_publish(t);
        }
        if (t->state == TASK_SEND_WAIT)
            task_send(t);
        t = next;
    }
}

/* ==== Redis connection state ==== */

static void on_redis_state(struct redis_client *c, enum redis_client_state state, void *arg)
{
    struct pipeline *p = arg;
    bool up = redis_client_state(p->reader) == REDIS_CLIENT_CONNECTED &&
              redis_client_state(p->writer) == REDIS_CLIENT_CONNECTED;

    metrics_set_redis_connected(p->metrics, up);
    if (state != REDIS_CLIENT_CONNECTED)
        return;
    /* after any reconnect, first look for our own pending entries again: a publish whose reply
     * was lost may have read entries for us */
    p->group_ready = false;
    if (c == p->writer)
        resume_waiting(p);
    reader_kick(p);
}

/* ==== housekeeping: retries, leases, takeover, pause ==== */

static void on_retries_moved(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct pipeline *p = arg;

    (void)c;
    p->mover_outstanding = false;
    if (p->freeing || reply == NULL)
        return;
    if (reply->type == REDIS_REPLY_ERROR)
        log_error("moving due retries failed: %s", reply->str);
    else if (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
        log_debug("%lld due retries moved back to %s", reply->integer, p->jobs_key);
}

/* due retries go back to the stream, where any free instance takes them */
static void move_due_retries(struct pipeline *p)
{
    char now[24];
    const char *argv[5];

    if (p->mover_outstanding)
        return;
    snprintf(now, sizeof(now), "%lld", (long long)clock_realtime_ms());
    argv[0] = p->retry_key;
    argv[1] = p->jobs_key;
    argv[2] = p->prefix;
    argv[3] = now;
    argv[4] = RETRY_MOVE_BATCH;
    p->mover_outstanding =
        redis_client_eval(p->writer, on_retries_moved, p, 0, p->retry_script, 2, 5, argv, NULL);
}

static void on_lease_renewed(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct pipeline *p = arg;

    (void)c;
    p->lease_outstanding = false;
    if (p->freeing || reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
            log_error("renewing leases failed: %s", reply->str);
        return;
    }
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *id = reply->element[i];
        struct task *t = task_find(p, id->str, id->len);

        if (t == NULL)
            continue;
        log_warn("entry %s (job_id=%s) now belongs to another consumer: %s", t->job->entry_id,
                 t->job->job_id,
                 t->state == TASK_SENDING ? "its late answer will be dropped" : "dropped here");
        /* a job not yet sent is simply left to its new owner */
        if (t->state == TASK_PERMIT_WAIT) {
            queue_remove(&p->permits, t);
            task_done(t);
        } else if (t->state == TASK_READY) {
            queue_remove(&p->ready, t);
            task_done(t);
        } else if (t->state == TASK_CLAIM_WAIT) {
            task_done(t);
        }
    }
}

/* XCLAIM ... JUSTID our own entries, so a slow request is never taken over */
static void renew_leases(struct pipeline *p)
{
    const char **argv;
    int argc = 0;

    if (p->lease_outstanding || p->held == 0)
        return;
    argv = malloc((p->held + 3) * sizeof(*argv));
    if (argv == NULL)
        return;
    argv[argc++] = p->jobs_key;
    argv[argc++] = p->group;
    argv[argc++] = p->consumer;
    for (struct task *t = p->tasks; t != NULL; t = t->next)
        argv[argc++] = t->job->entry_id;
    p->lease_outstanding =
        redis_client_eval(p->writer, on_lease_renewed, p, 0, p->lease_script, 1, argc, argv, NULL);
    free(argv);
}

static void on_autoclaim(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct pipeline *p = arg;
    const redisReply *entries;

    (void)c;
    p->autoclaim_outstanding = false;
    p->reserved -= p->autoclaim_count;
    if (p->freeing)
        return;
    event_active(p->kick_ev, EV_TIMEOUT, 0); /* what it did not fill goes to the reader */
    if (reply == NULL)
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING) {
        if (reply->type == REDIS_REPLY_ERROR)
            log_error("taking over idle entries failed: %s", reply->str);
        return;
    }
    snprintf(p->autoclaim_cursor, sizeof(p->autoclaim_cursor), "%s", reply->element[0]->str);
    entries = reply->element[1];
    /* a full answer may leave more idle entries: they keep the next free slots */
    p->autoclaim_due =
        entries->elements == p->autoclaim_count && strcmp(p->autoclaim_cursor, "0-0") != 0;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
            task_held(p, e->element[0]->str, e->element[0]->len))
            continue;
        if (e->element[1]->type != REDIS_REPLY_ARRAY) {
            ack_deleted_entry(p, e->element[0]->str);
            continue;
        }
        log_info("took over entry %s: its consumer was silent for over %ld ms", e->element[0]->str,
                 p->cfg->claim_idle_ms);
        task_start(p, e->element[0], e->element[1], NULL);
    }
}

static void on_idle_checked(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct pipeline *p = arg;
    const redisReply *first;

    (void)c;
    p->idle_check_outstanding = false;
    if (p->freeing || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements == 0)
        return;
    first = reply->element[0];
    if (first->type != REDIS_REPLY_ARRAY || first->elements == 0 ||
        first->element[0]->type != REDIS_REPLY_STRING || first->element[0]->len > JOB_ENTRY_ID_MAX)
        return;
    /* the takeover starts its scan there, so a long list of live entries costs it nothing */
    memcpy(p->autoclaim_cursor, first->element[0]->str, first->element[0]->len + 1);
    p->autoclaim_due = true;
    take_over_idle(p);
}

/* Is any entry idle for claim_idle_ms? A read-only look, so free slots are held back for a
 * takeover only when there is something to take over. */
static void look_for_idle(struct pipeline *p)
{
    char idle[24];
    const char *argv[] = {"XPENDING", p->jobs_key, p->group, "IDLE", idle, "-", "+", "1"};

    if (p->idle_check_outstanding || p->autoclaim_due)
        return;
    snprintf(idle, sizeof(idle), "%ld", p->cfg->claim_idle_ms);
    p->idle_check_outstanding =
        redis_client_command(p->writer, on_idle_checked, p, 0, DM_ARRAY_LEN(argv), argv, NULL);
}

/* take over entries whose consumer went silent (crashed, partitioned) */
static void take_over_idle(struct pipeline *p)
{
    char idle[24], count[24];
    const char *argv[9];

    if (!p->autoclaim_due || p->autoclaim_outstanding || slots_free(p) == 0 || p->paused ||
        p->draining || breaker_state(p->breaker) != BREAKER_STATE_CLOSED ||
        redis_client_state(p->writer) != REDIS_CLIENT_CONNECTED)
        return;
    p->autoclaim_count = slots_free(p);
    snprintf(idle, sizeof(idle), "%ld", p->cfg->claim_idle_ms);
    snprintf(count, sizeof(count), "%zu", p->autoclaim_count);
    argv[0] = "XAUTOCLAIM";
    argv[1] = p->jobs_key;
    argv[2] = p->group;
    argv[3] = p->consumer;
    argv[4] = idle;
    argv[5] = p->autoclaim_cursor;
    argv[6] = "COUNT";
    argv[7] = count;
    p->autoclaim_outstanding = redis_client_command(p->writer, on_autoclaim, p, 0, 8, argv, NULL);
    if (p->autoclaim_outstanding) {
        p->reserved += p->autoclaim_count;
        p->autoclaim_due = false;
    }
}

static void on_pause_checked(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct pipeline *p = arg;
    bool paused;

    (void)c;
    p->pause_outstanding = false;
    if (p->freeing || reply == NULL || reply->type != REDIS_REPLY_INTEGER)
        return;
    paused = reply->integer != 0;
    if (paused == p->paused)
        return;
    p->paused = paused;
    log_warn("%s %s", p->paused_key,
             paused ? "exists: paused by an operator: no new jobs start" : "is gone: resuming");
    if (paused)
        return;
    reader_kick(p);
    permit_grant(p);
}

static void check_pause(struct pipeline *p)
{
    const char *argv[] = {"EXISTS", p->paused_key};

    if (!p->pause_outstanding)
        p->pause_outstanding =
            redis_client_command(p->writer, on_pause_checked, p, 0, 2, argv, NULL);
}

static void on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
    struct pipeline *p = arg;
    uint64_t now = clock_monotonic_us();
    uint64_t lease_every = (uint64_t)p->cfg->claim_idle_ms * 1000u / 3u;

    (void)fd;
    (void)what;
    if (p->freeing || redis_client_state(p->writer) != REDIS_CLIENT_CONNECTED)
        return;
    move_due_retries(p);
    if (now >= p->next_lease_us) {
        renew_leases(p);
        p->next_lease_us = now + lease_every;
    }
    if (now >= p->next_autoclaim_us) {
        look_for_idle(p);
        p->next_autoclaim_us = now + lease_every;
    }
    if (now >= p->next_pause_check_us) {
        check_pause(p);
        p->next_pause_check_us = now + 1000000u;
    }
}

/* ==== lag ==== */

static long long find_integer_field(const redisReply *flat, const char *name)
{
    for (size_t i = 0; i + 1 < flat->elements; i += 2) {
        const redisReply *k = flat->element[i], *v = flat->element[i + 1];

        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0)
            return v->type == REDIS_REPLY_INTEGER ? v->integer : -1;
    }
    return -1;
}

static bool field_equals(const redisReply *flat, const char *name, const char *value)
{
    for (size_t i = 0; i + 1 < flat->elements; i += 2) {
        const redisReply *k = flat->element[i], *v = flat->element[i + 1];

        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0)
            return v->type == REDIS_REPLY_STRING && strcmp(v->str, value) == 0;
    }
    return false;
}

static void on_groups_info(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct pipeline *p = arg;

    (void)c;
    p->lag_outstanding = false;
    if (p->freeing || reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *g = reply->element[i];

        if (g->type == REDIS_REPLY_ARRAY && field_equals(g, "name", p->group)) {
            metrics_set_queue_lag(p->metrics, find_integer_field(g, "lag"));
            return;
        }
    }
}

/* ==== public ==== */

static void redis_options(const struct config *cfg, const char *name,
                          struct redis_client_options *o)
{
    memset(o, 0, sizeof(*o));
    o->name = name;
    o->host = cfg->redis_host;
    o->port = cfg->redis_port;
    o->socket = cfg->redis_socket;
    o->username = cfg->redis_username;
    o->password = cfg->redis_password;
    o->db = cfg->redis_db;
    o->connect_timeout_ms = REDIS_CONNECT_TIMEOUT_MS;
    o->command_timeout_ms = REDIS_COMMAND_TIMEOUT_MS;
    o->backoff_min_ms = REDIS_BACKOFF_MIN_MS;
    o->backoff_max_ms = REDIS_BACKOFF_MAX_MS;
}

static bool http_options(const struct config *cfg, char *url, size_t urllen,
                         struct http_submitter_options *o)
{
    int n = snprintf(url, urllen, "%s%s", cfg->api_base_url, API_PATH);

    memset(o, 0, sizeof(*o));
    o->url = url;
    o->token = cfg->api_token;
    o->connect_timeout_ms = cfg->connect_timeout_ms;
    o->request_timeout_ms = cfg->request_timeout_ms;
    o->max_response_bytes = RESPONSE_MAX_BYTES;
    o->max_connections = cfg->max_inflight;
    o->allow_insecure_http = cfg->allow_insecure_http;
    return n > 0 && (size_t)n < urllen;
}

static void breaker_options(const struct config *cfg, struct breaker_settings *b)
{
    b->enabled = cfg->breaker_enabled;
    b->consecutive = cfg->breaker_consecutive;
    b->failure_ratio = cfg->breaker_failure_ratio;
    b->window = cfg->breaker_window;
    b->probe_interval_ms = cfg->breaker_probe_interval_ms;
    b->probe_max_ms = cfg->breaker_probe_max_ms;
}

/* the publish script's numeric settings, as text */
static void render_settings(struct pipeline *p, const struct config *cfg)
{
    char buf[24];

    copy_name(p->ttl, sizeof(p->ttl), decimal_format(buf, cfg->result_ttl_s));
    copy_name(p->maxlen, sizeof(p->maxlen), decimal_format(buf, cfg->results_maxlen));
    copy_name(p->reply_ttl, sizeof(p->reply_ttl), decimal_format(buf, cfg->reply_ttl_s));
}

struct pipeline *pipeline_create(struct event_base *base, const struct config *cfg,
                                 struct metrics *metrics)
{
    struct pipeline *p = calloc(1, sizeof(*p));
    struct breaker_settings bs;
    struct redis_client_options ro;
    struct http_submitter_options ho;
    char url[2048];

    if (p == NULL)
        return NULL;
    p->base = base;
    p->cfg = cfg;
    p->metrics = metrics;
    p->permits.link = LINK_PERMIT;
    p->publishes.link = LINK_PUBLISH;
    p->ready.link = LINK_READY;
    breaker_options(cfg, &bs);
    snprintf(p->prefix, sizeof(p->prefix), "%s", cfg->prefix);
    snprintf(p->group, sizeof(p->group), "%s", cfg->group);
    snprintf(p->consumer, sizeof(p->consumer), "%s", cfg->consumer);
    /* claim nonces: unique per process and claim, without a getpid per job */
    p->nonce_prefix_len = (size_t)snprintf(p->nonce_prefix, sizeof(p->nonce_prefix),
                                           "%s:%ld:", p->consumer, (long)getpid());
    render_settings(p, cfg);
    if (!build_key(p->jobs_key, p, "jobs", "") || !build_key(p->results_key, p, "results", "") ||
        !build_key(p->retry_key, p, "retry", "") || !build_key(p->dead_key, p, "dead", "") ||
        !build_key(p->paused_key, p, "paused", "") || !build_key(p->job_prefix, p, "job:", ""))
        goto fail;
    snprintf(p->autoclaim_cursor, sizeof(p->autoclaim_cursor), "0-0");

    redis_options(cfg, "datamartd-reader", &ro);
    p->reader = redis_client_create(base, &ro, on_redis_state, p);
    redis_options(cfg, "datamartd-writer", &ro);
    p->writer = redis_client_create(base, &ro, on_redis_state, p);
    if (p->reader == NULL || p->writer == NULL)
        goto fail;
    p->claim_script = redis_client_add_script(p->writer, claim_lua);
    p->publish_script = redis_client_add_script(p->writer, publish_lua);
    p->lease_script = redis_client_add_script(p->writer, lease_lua);
    p->retry_script = redis_client_add_script(p->writer, retry_lua);
    if (p->claim_script < 0 || p->publish_script < 0 || p->lease_script < 0 || p->retry_script < 0)
        goto fail;
    if (!http_options(cfg, url, sizeof(url), &ho))
        goto fail;
    p->http = http_submitter_create(base, &ho);
    p->retry_read_ev = evtimer_new(base, on_kick_reader, p);
    p->kick_ev = event_new(base, -1, 0, on_kick_reader, p);
    p->permit_ev = evtimer_new(base, on_permit_timer, p);
    p->limiter = rate_limiter_create(cfg->rate, cfg->burst, clock_monotonic_us());
    if (cfg->rate_limit_scope == RATE_LIMIT_SCOPE_CLUSTER &&
        (p->cluster = cluster_limiter_create(p->writer, p->prefix, cfg->rate, cfg->burst)) == NULL)
        goto fail;
    p->breaker = breaker_create(&bs);
    p->retry_policy =
        retry_policy_create(cfg->backoff_base_ms, cfg->backoff_max_ms, cfg->max_attempts,
                            cfg->max_age_s, clock_monotonic_us() ^ (uint64_t)getpid());
    p->housekeeping_ev = event_new(base, -1, EV_PERSIST, on_housekeeping, p);
    p->publish_ev = event_new(base, -1, 0, on_publish_flush, p);
    if ((p->batch = calloc(1, sizeof(*p->batch))) != NULL) {
        for (size_t i = 0; i < PUBLISH_BATCH_MAX; i++)
            strbuf_init(&p->batch->slots[i].reply);
    }
    if (p->http == NULL || p->retry_read_ev == NULL || p->kick_ev == NULL || p->permit_ev == NULL ||
        p->limiter == NULL || p->breaker == NULL || p->retry_policy == NULL ||
        p->housekeeping_ev == NULL || p->publish_ev == NULL || p->batch == NULL)
        goto fail;
    return p;
fail:
    pipeline_free(p);
    return NULL;
}

bool pipeline_start(struct pipeline *p)
{
    const struct timeval every = {0, HOUSEKEEPING_MS * 1000};

    if (event_add(p->housekeeping_ev, &every) != 0)
        return false;
    return redis_client_start(p->writer) && redis_client_start(p->reader);
}

bool pipeline_reconfigure(struct pipeline *p, const struct config *cfg)
{
    struct redis_client_options ro;
    struct http_submitter_options ho;
    char url[2048], fixed[256];

    if (config_fixed_changes(p->cfg, cfg, fixed, sizeof(fixed)) > 0)
        log_warn("reload: %s changed: that takes effect at the next restart", fixed);
    if (!http_options(cfg, url, sizeof(url), &ho) || !http_submitter_configure(p->http, &ho))
        return false;
    redis_options(cfg, "datamartd-reader", &ro);
    if (!redis_client_configure(p->reader, &ro))
        return false;
    redis_options(cfg, "datamartd-writer", &ro);
    if (!redis_client_configure(p->writer, &ro))
        return false;
    struct breaker_settings bs;
    bool new_token = strcmp(cfg->api_token, p->cfg->api_token) != 0;

    breaker_options(cfg, &bs);
    if (!rate_limiter_configure(p->limiter, cfg->rate, cfg->burst, clock_monotonic_us()) ||
        (p->cluster != NULL && !cluster_limiter_configure(p->cluster, cfg->rate, cfg->burst)) ||
        !breaker_configure(p->breaker, &bs) ||
        !retry_policy_configure(p->retry_policy, cfg->backoff_base_ms, cfg->backoff_max_ms,
                                cfg->max_attempts, cfg->max_age_s))
        return false;
    if (new_token && breaker_reason(p->breaker) == BREAKER_REASON_AUTH) {
        log_info("reload: new API token: resuming submissions");
        breaker_reset(p->breaker);
        breaker_report(p);
    }
    p->cfg = cfg;
    render_settings(p, cfg);
    permit_grant(p); /* a higher rate may release waiting tasks now */
    ready_fill(p);   /* max_inflight may have grown */
    reader_kick(p);
    return true;
}

void pipeline_drain(struct pipeline *p)
{
    struct task *t = p->tasks;

    p->draining = true;
    /* jobs not sent are left pending: nothing went out for them. One already claimed (read
     * ahead, or held back while paused) withdraws its claim first, so the next start does not
     * count its nonce as an attempt that may have reached the API. */
    while (t != NULL) {
        struct task *next = t->next;

        if (t->state == TASK_PERMIT_WAIT)
            queue_remove(&p->permits, t);
        else if (t->state == TASK_READY)
            queue_remove(&p->ready, t);
        if ((t->state == TASK_PERMIT_WAIT || t->state == TASK_READY) && t->claimed) {
            task_give_back_permit(t);
            t->mode = PUBLISH_RELEASE;
            task_publish(t);
        } else if (t->state == TASK_CLAIM_WAIT || t->state == TASK_PERMIT_WAIT) {
            task_done(t);
        }
        t = next;
    }
}

void pipeline_abort(struct pipeline *p)
{
    size_t n = p->sending;

    if (n > 0)
        log_warn("shutdown grace expired: abandoning %zu requests in flight; their jobs stay "
                 "pending for the next start",
                 n);
    http_submitter_abort_all(p->http);
}

size_t pipeline_jobs_held(const struct pipeline *p)
{
    return p->held;
}

bool pipeline_ready(const struct pipeline *p, const char **why)
{
    if (redis_client_state(p->writer) != REDIS_CLIENT_CONNECTED ||
        redis_client_state(p->reader) != REDIS_CLIENT_CONNECTED) {
        *why = "redis not connected";
        return false;
    }
    if (!p->group_ready) {
        *why = "consumer group not ready";
        return false;
    }
    if (breaker_reason(p->breaker) == BREAKER_REASON_AUTH) {
        *why = "paused: the API rejects the token; probing; install a new token and reload";
        return false;
    }
    if (breaker_state(p->breaker) != BREAKER_STATE_CLOSED) {
        *why = "circuit breaker open: the API keeps failing; probing";
        return false;
    }
    *why = "ready";
    return true;
}

void pipeline_describe(const struct pipeline *p, char *buf, size_t len)
{
    const char *why;
    const char *err = redis_client_last_error(p->writer);
    bool ready = pipeline_ready(p, &why);
    bool redis_up = redis_client_state(p->writer) == REDIS_CLIENT_CONNECTED &&
                    redis_client_state(p->reader) == REDIS_CLIENT_CONNECTED;

    if (!redis_up && p->cfg->redis_socket && p->cfg->redis_socket[0])
        snprintf(buf, len, "waiting for Redis at %s%s%s", p->cfg->redis_socket, err[0] ? ": " : "",
                 err);
    else if (!redis_up)
        snprintf(buf, len, "waiting for Redis at %s:%d%s%s", p->cfg->redis_host, p->cfg->redis_port,
                 err[0] ? ": " : "", err);
    else if (!ready || p->paused)
        snprintf(buf, len, "%s; %zu jobs held, %zu requests in flight",
                 p->paused ? "paused by an operator" : why, p->held, p->sending);
    else
        snprintf(buf, len,
                 "%s%zu jobs held, %zu requests in flight; %llu created, %llu failed, "
                 "%llu dead",
                 p->draining ? "draining: " : "", p->held, p->sending,
                 (unsigned long long)metrics_jobs_total(p->metrics, OUTCOME_CREATED),
                 (unsigned long long)metrics_jobs_total(p->metrics, OUTCOME_FAILED),
                 (unsigned long long)metrics_jobs_total(p->metrics, OUTCOME_DEAD));
}

void pipeline_tick(struct pipeline *p)
{
    resume_waiting(p);
    if (++p->ticks % LAG_POLL_TICKS == 0 && !p->lag_outstanding) {
        const char *argv[] = {"XINFO", "GROUPS", p->jobs_key};

        p->lag_outstanding = redis_client_command(p->writer, on_groups_info, p, 0, 3, argv, NULL);
    }
}

void pipeline_free(struct pipeline *p)
{
    if (p == NULL)
        return;
    /* aborted transfers finish their tasks; then Redis callbacks fire with NULL and are ignored */
    http_submitter_free(p->http);
    p->freeing = true;
    redis_client_free(p->reader);
    redis_client_free(p->writer);
    while (p->tasks != NULL) {
        struct task *t = p->tasks;

        p->tasks = t->next;
        job_free(t->job);
        outcome_release(&t->outcome);
        free(t);
    }
    if (p->retry_read_ev != NULL)
        event_free(p->retry_read_ev);
    if (p->kick_ev != NULL)
        event_free(p->kick_ev);
    if (p->permit_ev != NULL)
        event_free(p->permit_ev);
    if (p->housekeeping_ev != NULL)
        event_free(p->housekeeping_ev);
    if (p->publish_ev != NULL)
        event_free(p->publish_ev);
    if (p->batch != NULL) {
        for (size_t i = 0; i < PUBLISH_BATCH_MAX; i++)
            strbuf_release(&p->batch->slots[i].reply);
        free(p->batch);
    }
    rate_limiter_free(p->limiter);
    cluster_limiter_free(p->cluster);
    breaker_free(p->breaker);
    retry_policy_free(p->retry_policy);
    free(p);
}

void pipeline_redis_commands(const struct pipeline *p, uint64_t *reader, uint64_t *writer)
{
    *reader = redis_client_commands_sent(p->reader);
    *writer = redis_client_commands_sent(p->writer);
}
