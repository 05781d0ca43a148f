/*
 * datamartctl stats [--json] [--watch] [--window N]: the queue as Redis shows it. Stream length,
 * entries not yet delivered, pending ones per consumer with idle times, the retry set, dead
 * letters, pause and breaker state. The daemon keeps its counters in /metrics, not in Redis, so
 * totals per status come from the newest N entries of P:results (duplicates counted apart).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "config.h"
#include "ctl.h"
#include "ctl_output.h"
#include "ctl_commands.h"
#include "ctl_fields.h"
#include "ctl_redis.h"
#include "ctl_text.h"
#include "strbuf.h"

#define WINDOW_DEFAULT 10000
#define WINDOW_MAX 1000000
#define VALUE_MAX 512 /* of the pause reason and breaker state shown */

struct stats {
    const char *group;
    bool group_exists;
    long long jobs_len, pending, lag;   /* lag -1: Redis could not tell */
    long long oldest_pending_ms;        /* -1: nothing pending */
    redisReply *consumers;              /* XINFO CONSUMERS, or NULL */
    long long retry_count, next_due_ms; /* next_due_ms -1: none */
    long long dead;
    long long results_len, window, since_ms; /* since_ms -1: no outcome in the window */
    long long created, failed, dead_outcomes, duplicates;
    char paused[VALUE_MAX];  /* "" when not paused */
    char breaker[VALUE_MAX]; /* "" when unknown */
    bool is_paused;
};

static long long reply_ll(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return -1;
}

/* the ms part of a stream id */
static long long entry_id_ms(const redisReply *id)
{
    return id && id->type == REDIS_REPLY_STRING ? strtoll(id->str, NULL, 10) : -1;
}

static void copy_value(char *out, const char *s, size_t len)
{
    if (len >= VALUE_MAX)
        len = VALUE_MAX - 1;
    memcpy(out, s, len);
    out[len] = '\0';
}

static void take_groups(struct stats *st, const redisReply *groups)
{
    for (size_t i = 0; groups->type == REDIS_REPLY_ARRAY && i < groups->elements; i++) {
        const redisReply *g = groups->element[i];
        const char *name = ctl_fields_str(g, "name");
        long long lag;

        if (!name || strcmp(name, st->group) != 0)
            continue;
        st->group_exists = true;
        if (ctl_fields_ll(g, "lag", &lag))
            st->lag = lag;
    }
}

static void take_results(struct stats *st, const redisReply *entries)
{
    for (size_t i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        const redisReply *fields;
        const char *event, *status, *dup;

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
            continue;
        fields = e->element[1];
        event = ctl_fields_str(fields, "event");
        status = ctl_fields_str(fields, "status");
        dup = ctl_fields_str(fields, "duplicate");
        if (!event || strcmp(event, "job") != 0 || !status)
            continue;
        st->since_ms = entry_id_ms(e->element[0]);
        if (dup && strcmp(dup, "1") == 0)
            st->duplicates++;
        else if (strcmp(status, "created") == 0)
            st->created++;
        else if (strcmp(status, "failed") == 0)
            st->failed++;
        else if (strcmp(status, "dead") == 0)
            st->dead_outcomes++;
    }
}

/* the breaker key: a string is its state; a hash shows its "state" field */
static bool take_breaker(struct stats *st, struct ctl_redis *r, const char *key,
                         const redisReply *type)
{
    redisReply *v;
    const char *state;

    if (type->type != REDIS_REPLY_STATUS ||
        (strcmp(type->str, "string") != 0 && strcmp(type->str, "hash") != 0))
        return true;
    v = strcmp(type->str, "string") == 0 ? ctl_redis_command(r, "GET %s", key)
                                         : ctl_redis_command(r, "HGETALL %s", key);
    if (!v)
        return false;
    if (v->type == REDIS_REPLY_STRING)
        copy_value(st->breaker, v->str, v->len);
    else if ((state = ctl_fields_str(v, "state")))
        copy_value(st->breaker, state, strlen(state));
    freeReplyObject(v);
    return true;
}

enum {
    Q_JOBS_LEN,
    Q_GROUPS,
    Q_PENDING,
    Q_CONSUMERS,
    Q_RETRY_COUNT,
    Q_RETRY_NEXT,
    Q_DEAD,
    Q_PAUSED,
    Q_BREAKER_TYPE,
    Q_RESULTS_LEN,
    Q_RESULTS,
    Q_COUNT
};

static bool gather(struct stats *st, struct ctl_redis *r)
{
    char jobs[CTL_KEY_MAX], retry[CTL_KEY_MAX], dead[CTL_KEY_MAX], paused[CTL_KEY_MAX],
        breaker[CTL_KEY_MAX], results[CTL_KEY_MAX], window[24];
    redisReply *q[Q_COUNT] = {0};
    bool ok = true;
    int i;

    ctl_redis_key(r, jobs, "jobs", NULL);
    ctl_redis_key(r, retry, "retry", NULL);
    ctl_redis_key(r, dead, "dead", NULL);
    ctl_redis_key(r, paused, "paused", NULL);
    ctl_redis_key(r, breaker, "ratelimit:breaker", NULL);
    ctl_redis_key(r, results, "results", NULL);
    snprintf(window, sizeof(window), "%lld", st->window);
    ok = ctl_redis_append(r, "XLEN %s", jobs) && ctl_redis_append(r, "XINFO GROUPS %s", jobs) &&
         ctl_redis_append(r, "XPENDING %s %s", jobs, st->group) &&
         ctl_redis_append(r, "XINFO CONSUMERS %s %s", jobs, st->group) &&
         ctl_redis_append(r, "ZCARD %s", retry) &&
         ctl_redis_append(r, "ZRANGE %s 0 0 WITHSCORES", retry) &&
         ctl_redis_append(r, "XLEN %s", dead) && ctl_redis_append(r, "GET %s", paused) &&
         ctl_redis_append(r, "TYPE %s", breaker) && ctl_redis_append(r, "XLEN %s", results) &&
         ctl_redis_append(r, "XREVRANGE %s + - COUNT %s", results, window);
    for (i = 0; ok && i < Q_COUNT; i++)
        ok = (q[i] = ctl_redis_reply(r)) != NULL;
    /* a missing stream or group is an error reply of XINFO and XPENDING: nothing there yet */
    for (i = 0; ok && i < Q_COUNT; i++)
        if (i != Q_GROUPS && i != Q_PENDING && i != Q_CONSUMERS)
            ok = !ctl_redis_reply_is_error(r, q[i], "stats");
    if (!ok)
        goto out;
    st->jobs_len = reply_ll(q[Q_JOBS_LEN]);
    take_groups(st, q[Q_GROUPS]);
    if (q[Q_PENDING]->type == REDIS_REPLY_ARRAY && q[Q_PENDING]->elements == 4) {
        st->pending = reply_ll(q[Q_PENDING]->element[0]);
        if (st->pending > 0)
            st->oldest_pending_ms = entry_id_ms(q[Q_PENDING]->element[1]);
    }
    if (q[Q_CONSUMERS]->type == REDIS_REPLY_ARRAY) {
        st->consumers = q[Q_CONSUMERS];
        q[Q_CONSUMERS] = NULL;
    }
    st->retry_count = reply_ll(q[Q_RETRY_COUNT]);
    if (q[Q_RETRY_NEXT]->type == REDIS_REPLY_ARRAY && q[Q_RETRY_NEXT]->elements == 2)
        st->next_due_ms = reply_ll(q[Q_RETRY_NEXT]->element[1]);
    st->dead = reply_ll(q[Q_DEAD]);
    if (q[Q_PAUSED]->type == REDIS_REPLY_STRING) {
        st->is_paused = true;
        copy_value(st->paused, q[Q_PAUSED]->str, q[Q_PAUSED]->len);
    }
    st->results_len = reply_ll(q[Q_RESULTS_LEN]);
    take_results(st, q[Q_RESULTS]);
    ok = take_breaker(st, r, breaker, q[Q_BREAKER_TYPE]);
out:
    for (i = 0; i < Q_COUNT; i++)
        freeReplyObject(q[i]);
    return ok;
}

static void stats_release(struct stats *st)
{
    freeReplyObject(st->consumers);
    st->consumers = NULL;
}

static void json_ms(struct strbuf *sb, const char *name, long long ms)
{
    if (ms < 0)
        strbuf_printf(sb, "\"%s\":null", name);
    else
        strbuf_printf(sb, "\"%s\":%lld", name, ms);
}

static void json_text(struct strbuf *sb, const char *name, const char *s, bool present)
{
    strbuf_printf(sb, "\"%s\":", name);
    if (present)
        strbuf_json_string(sb, s, strlen(s));
    else
        strbuf_puts(sb, "null");
}

static void render_json(struct strbuf *sb, const struct stats *st, struct ctl_redis *r)
{
    const redisReply *cs = st->consumers;

    strbuf_puts(sb, "{");
    json_text(sb, "prefix", ctl_redis_prefix(r), true);
    strbuf_puts(sb, ",");
    json_text(sb, "address", ctl_redis_address(r), true);
    strbuf_puts(sb, ",");
    json_text(sb, "group", st->group, true);
    strbuf_printf(sb, ",\"group_exists\":%s", st->group_exists ? "true" : "false");
    strbuf_printf(sb, ",\"jobs\":{\"length\":%lld,\"undelivered\":%lld,\"pending\":%lld,",
                  st->jobs_len, st->jobs_len - st->pending, st->pending);
    json_ms(sb, "lag", st->lag);
    strbuf_puts(sb, ",");
    json_ms(sb, "oldest_pending_ms", st->oldest_pending_ms);
    strbuf_puts(sb, "},\"consumers\":[");
    for (size_t i = 0; cs && i < cs->elements; i++) {
        const char *name = ctl_fields_str(cs->element[i], "name");
        long long pending = 0, idle = -1;

        (void)ctl_fields_ll(cs->element[i], "pending", &pending);
        (void)ctl_fields_ll(cs->element[i], "idle", &idle);
        strbuf_puts(sb, i ? ",{" : "{");
        json_text(sb, "name", name ? name : "", true);
        strbuf_printf(sb, ",\"pending\":%lld,", pending);
        json_ms(sb, "idle_ms", idle);
        strbuf_puts(sb, "}");
    }
    strbuf_printf(sb, "],\"retry\":{\"count\":%lld,", st->retry_count);
    json_ms(sb, "next_due_ms", st->next_due_ms);
    strbuf_printf(sb, "},\"dead\":%lld,\"results\":{\"length\":%lld,\"window\":%lld,", st->dead,
                  st->results_len, st->window);
    json_ms(sb, "since_ms", st->since_ms);
    strbuf_printf(sb, ",\"created\":%lld,\"failed\":%lld,\"dead\":%lld,\"duplicates\":%lld},",
                  st->created, st->failed, st->dead_outcomes, st->duplicates);
    json_text(sb, "paused", st->paused, st->is_paused);
    strbuf_puts(sb, ",");
    json_text(sb, "breaker", st->breaker, st->breaker[0] != '\0');
    strbuf_puts(sb, "}\n");
}

static void render_human(struct strbuf *sb, const struct stats *st, struct ctl_redis *r)
{
    const redisReply *cs = st->consumers;
    long long now = clock_realtime_ms();

    strbuf_printf(sb, "prefix %s at %s, group %s%s\n", ctl_redis_prefix(r), ctl_redis_address(r),
                  st->group, st->group_exists ? "" : " (not created yet: no daemon has run)");
    strbuf_printf(sb, "jobs       length %lld, undelivered %lld, pending %lld", st->jobs_len,
                  st->jobs_len - st->pending, st->pending);
    if (st->lag >= 0)
        strbuf_printf(sb, ", group lag %lld", st->lag);
    if (st->oldest_pending_ms >= 0) {
        strbuf_puts(sb, ", oldest pending enqueued ");
        ctl_text_duration(sb, now - st->oldest_pending_ms);
        strbuf_puts(sb, " ago");
    }
    strbuf_printf(sb, "\nconsumers  %zu\n", cs ? cs->elements : 0);
    for (size_t i = 0; cs && i < cs->elements; i++) {
        const redisReply *name = ctl_fields_get(cs->element[i], "name");
        long long pending = 0, idle = 0;

        (void)ctl_fields_ll(cs->element[i], "pending", &pending);
        (void)ctl_fields_ll(cs->element[i], "idle", &idle);
        strbuf_puts(sb, "  ");
        if (name && name->type == REDIS_REPLY_STRING)
            ctl_text_printable(sb, name->str, name->len);
        strbuf_printf(sb, ": pending %lld, idle ", pending);
        ctl_text_duration(sb, idle);
        strbuf_puts(sb, "\n");
    }
    strbuf_printf(sb, "retry      %lld waiting", st->retry_count);
    if (st->next_due_ms >= 0) {
        strbuf_puts(sb, ", next due ");
        ctl_text_time_relative(sb, st->next_due_ms, now);
    }
    strbuf_printf(sb, "\ndead       %lld\n", st->dead);
    strbuf_printf(sb, "results    %lld entries; newest %lld outcomes", st->results_len,
                  st->created + st->failed + st->dead_outcomes + st->duplicates);
    if (st->since_ms >= 0) {
        strbuf_puts(sb, " (since ");
        ctl_text_time(sb, st->since_ms);
        strbuf_puts(sb, ")");
    }
    strbuf_printf(sb, ": created %lld, failed %lld, dead %lld, duplicates %lld\n", st->created,
                  st->failed, st->dead_outcomes, st->duplicates);
    strbuf_puts(sb, "paused     ");
    if (st->is_paused) {
        strbuf_puts(sb, "yes, ");
        ctl_text_printable(sb, st->paused, strlen(st->paused));
    } else {
        strbuf_puts(sb, "no");
    }
    strbuf_puts(sb, "\nbreaker    ");
    if (st->breaker[0])
        ctl_text_printable(sb, st->breaker, strlen(st->breaker));
    else
        strbuf_puts(sb, "unknown");
    strbuf_puts(sb, "\n");
}

static size_t count_lines(const struct strbuf *sb)
{
    size_t n = 0;

    for (size_t i = 0; i < sb->len; i++)
        n += sb->data[i] == '\n';
    return n;
}

static int stats_loop(struct ctl_redis *r, const char *group, long long window, bool json,
                      bool watch)
{
    bool tty = isatty(STDOUT_FILENO);
    size_t shown_lines = 0;
    struct strbuf sb;
    int status = CTL_EXIT_OK;

    strbuf_init(&sb);
    for (;;) {
        struct stats st = {.group = group,
                           .lag = -1,
                           .oldest_pending_ms = -1,
                           .next_due_ms = -1,
                           .since_ms = -1,
                           .window = window};

        strbuf_reset(&sb);
        if (!gather(&st, r)) {
            stats_release(&st);
            status = CTL_EXIT_REDIS;
            break;
        }
        /* redraw in place: up over the last frame, then clear to the end of the screen */
        if (watch && tty && !json && shown_lines > 0)
            strbuf_printf(&sb, "\033[%zuA\033[J", shown_lines);
        if (json)
            render_json(&sb, &st, r);
        else
            render_human(&sb, &st, r);
        if (watch && !tty && !json)
            strbuf_puts(&sb, "\n");
        stats_release(&st);
        if (!ctl_output_write(&sb, &status))
            break;
        shown_lines = count_lines(&sb);
        if (!watch)
            break;
        nanosleep(&(struct timespec){.tv_sec = 1}, NULL);
    }
    strbuf_release(&sb);
    return status;
}

int ctl_stats_run(struct ctl *ctl, int argc, char **argv)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"watch", no_argument, NULL, 'w'},
        {"window", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *usage = "Usage: datamartctl stats [--json] [--watch] [--window N]\n";
    long long window = WINDOW_DEFAULT;
    bool json = false, watch = false;
    struct ctl_redis *r;
    char *end;
    int opt, status;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == 'j') {
            json = true;
        } else if (opt == 'w') {
            watch = true;
        } else if (opt == 'n' && (window = strtoll(optarg, &end, 10)) >= 1 && *end == '\0' &&
                   optarg[0] != '\0' && window <= WINDOW_MAX) {
            continue;
        } else {
            if (opt == 'n')
                fputs("datamartctl stats: --window wants 1 to " DM_XSTR(WINDOW_MAX) "\n", stderr);
            fputs(usage, opt == 'h' ? stdout : stderr);
            return opt == 'h' ? CTL_EXIT_OK : CTL_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return CTL_EXIT_USAGE;
    }
    if (!(r = ctl_redis_connect(ctl)))
        return CTL_EXIT_REDIS;
    status = ctl_redis_prefix_check(r);
    if (status < 0)
        status = CTL_EXIT_REDIS;
    else if (status == 0)
        status = CTL_EXIT_FAILED;
    else
        status = stats_loop(r, ctl->cfg->group, window, json, watch);
    ctl_redis_free(r);
    return status;
}
