#include "cluster_limiter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "log.h"
#include "rate_limiter.h"
#include "redis_client.h"

#include "ratelimit_lua.h"

#define PREFIX_MAX 256
#define ERROR_QUOTE_MAX 200

/* One acquire awaiting Redis; the redis_client answers it exactly once, even during its free. */
struct cluster_call {
    struct cluster_call *prev, *next;
    struct cluster_limiter *cl; /* NULL once the limiter is freed: the answer is dropped */
    cluster_limiter_fn fn;
    void *arg;
    int want;
};

struct cluster_limiter {
    struct redis_client *writer;
    int script;
    char *bucket_key;
    char *pause_key;
    char rate_arg[32]; /* as the script reads them */
    char burst_arg[16];
    struct cluster_call *calls;
};

static bool settings_valid(double rate, int burst)
{
    return rate >= 0 && rate <= RATE_LIMITER_MAX_RATE && burst >= 1 &&
           burst <= RATE_LIMITER_MAX_BURST;
}

static void settings_store(struct cluster_limiter *cl, double rate, int burst)
{
    /* %.17g round-trips a double, so every instance computes with the same rate */
    snprintf(cl->rate_arg, sizeof(cl->rate_arg), "%.17g", rate);
    snprintf(cl->burst_arg, sizeof(cl->burst_arg), "%d", burst);
}

static char *key_new(const char *prefix, const char *name)
{
    size_t len = strlen(prefix) + strlen(":ratelimit:") + strlen(name) + 1;
    char *key = malloc(len);

    if (key != NULL)
        snprintf(key, len, "%s:ratelimit:%s", prefix, name);
    return key;
}

/* Copy at most CLUSTER_LIMITER_REASON_MAX bytes, control characters replaced: it reaches logs. */
static void reason_copy(char *dst, const char *src, size_t len)
{
    if (len > CLUSTER_LIMITER_REASON_MAX)
        len = CLUSTER_LIMITER_REASON_MAX;
    for (size_t i = 0; i < len; i++)
        dst[i] = (unsigned char)src[i] < ' ' || src[i] == 0x7f ? '?' : src[i];
    dst[len] = '\0';
}

static void reply_log_failure(const char *what, const redisReply *reply)
{
    if (reply == NULL) {
        log_warn("cluster rate limit: %s got no answer from Redis", what);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        int len = reply->len > ERROR_QUOTE_MAX ? ERROR_QUOTE_MAX : (int)reply->len;

        log_warn("cluster rate limit: %s failed: %.*s", what, len, reply->str);
    } else {
        log_warn("cluster rate limit: %s: unexpected reply from Redis", what);
    }
}

/* The script's {granted, wait_us, paused_us, reason}; false when it is not that. */
static bool grant_parse(const redisReply *reply, int want, struct cluster_grant *g,
                        char reason[CLUSTER_LIMITER_REASON_MAX + 1])
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4)
        return false;
    for (size_t i = 0; i < 3; i++) {
        if (reply->element[i]->type != REDIS_REPLY_INTEGER)
            return false;
    }
    if (reply->element[3]->type != REDIS_REPLY_STRING)
        return false;
    if (reply->element[0]->integer < 0 || reply->element[0]->integer > want ||
        reply->element[1]->integer < 0 || reply->element[2]->integer < 0)
        return false;
    reason_copy(reason, reply->element[3]->str, reply->element[3]->len);
    g->granted = (int)reply->element[0]->integer;
    g->wait_us = reply->element[1]->integer;
    g->paused_us = reply->element[2]->integer;
    g->pause_reason = reason;
    return true;
}

static void call_unlink(struct cluster_limiter *cl, struct cluster_call *call)
{
    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        cl->calls = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
}

/* redis_client_reply_fn of an acquire */
static void on_acquire_reply(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct cluster_call *call = arg;
    char reason[CLUSTER_LIMITER_REASON_MAX + 1];
    struct cluster_grant g;

    (void)c;
    if (call->cl != NULL) {
        /* unlinked first: fn may free the limiter */
        call_unlink(call->cl, call);
        if (grant_parse(reply, call->want, &g, reason)) {
            call->fn(call->arg, &g);
        } else {
            reply_log_failure("acquire", reply);
            call->fn(call->arg, NULL);
        }
    }
    free(call);
}

/* redis_client_reply_fn of a pause: nothing waits for it, a failure is only logged */
static void on_pause_reply(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct cluster_grant g;
    char reason[CLUSTER_LIMITER_REASON_MAX + 1];

    (void)c;
    (void)arg;
    if (!grant_parse(reply, 0, &g, reason))
        reply_log_failure("pause", reply);
    else
        log_debug("cluster rate limit: paused for %lld ms (%s)", g.paused_us / 1000,
                  g.pause_reason);
}

struct cluster_limiter *cluster_limiter_create(struct redis_client *writer, const char *prefix,
                                               double rate, int burst)
{
    struct cluster_limiter *cl;

    if (writer == NULL || prefix == NULL || prefix[0] == '\0' || strlen(prefix) > PREFIX_MAX ||
        !settings_valid(rate, burst)) {
        log_error("cluster rate limit: invalid prefix, rate or burst");
        return NULL;
    }
    cl = calloc(1, sizeof(*cl));
    if (cl == NULL)
        goto oom;
    cl->writer = writer;
    cl->bucket_key = key_new(prefix, "bucket");
    cl->pause_key = key_new(prefix, "pause");
    if (cl->bucket_key == NULL || cl->pause_key == NULL)
        goto oom;
    cl->script = redis_client_add_script(writer, ratelimit_lua);
    if (cl->script < 0)
        goto oom;
    settings_store(cl, rate, burst);
    return cl;

oom:
    log_error("cluster rate limit: out of memory");
    cluster_limiter_free(cl);
    return NULL;
}

bool cluster_limiter_configure(struct cluster_limiter *cl, double rate, int burst)
{
    if (cl == NULL || !settings_valid(rate, burst))
        return false;
    settings_store(cl, rate, burst);
    return true;
}

bool cluster_limiter_acquire(struct cluster_limiter *cl, int want, cluster_limiter_fn fn, void *arg)
{
    struct cluster_call *call;
    char want_arg[16];
    const char *argv[6];

    if (cl == NULL || fn == NULL || want < 1)
        return false;
    call = calloc(1, sizeof(*call));
    if (call == NULL) {
        log_error("cluster rate limit: out of memory");
        return false;
    }
    snprintf(want_arg, sizeof(want_arg), "%d", want);
    argv[0] = cl->bucket_key;
    argv[1] = cl->pause_key;
    argv[2] = "acquire";
    argv[3] = want_arg;
    argv[4] = cl->rate_arg;
    argv[5] = cl->burst_arg;
    call->cl = cl;
    call->fn = fn;
    call->arg = arg;
    call->want = want;
    call->next = cl->calls;
    if (cl->calls != NULL)
        cl->calls->prev = call;
    cl->calls = call;
    if (!redis_client_eval(cl->writer, on_acquire_reply, call, 0, cl->script, 2, 6, argv, NULL)) {
        call_unlink(cl, call);
        free(call);
        return false;
    }
    return true;
}

bool cluster_limiter_pause(struct cluster_limiter *cl, long long delay_ms, const char *reason)
{
    char delay_arg[24], why[CLUSTER_LIMITER_REASON_MAX + 1];
    const char *argv[5];

    if (cl == NULL || delay_ms < 1 || reason == NULL)
        return false;
    if (delay_ms > CLUSTER_LIMITER_MAX_PAUSE_MS)
        delay_ms = CLUSTER_LIMITER_MAX_PAUSE_MS;
    snprintf(delay_arg, sizeof(delay_arg), "%lld", delay_ms);
    reason_copy(why, reason, strlen(reason));
    argv[0] = cl->bucket_key;
    argv[1] = cl->pause_key;
    argv[2] = "pause";
    argv[3] = delay_arg;
    argv[4] = why;
    return redis_client_eval(cl->writer, on_pause_reply, NULL, 0, cl->script, 2, 5, argv, NULL);
}

void cluster_limiter_free(struct cluster_limiter *cl)
{
    if (cl == NULL)
        return;
    for (struct cluster_call *call = cl->calls; call != NULL; call = call->next)
        call->cl = NULL;
    free(cl->bucket_key);
    free(cl->pause_key);
    free(cl);
}
