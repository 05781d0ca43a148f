/*
 * datamartctl status JOB_ID [--json]: the job's hash P:job:<id> (its state, attempts and, once
 * finished, its outcome). Exit 0 when found, 1 when unknown.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "ctl.h"
#include "ctl_output.h"
#include "ctl_commands.h"
#include "ctl_fields.h"
#include "ctl_redis.h"
#include "ctl_text.h"
#include "job.h"
#include "strbuf.h"

/* the fields shown first, in this order; any others follow as stored */
static const char *const field_order[] = {
    "job_id",
    "state",
    "status",
    "datamart_id",
    "recovered",
    "duplicate",
    "error_code",
    "error_source",
    "error_message",
    "error_path",
    "errors",
    "http_status",
    "attempts",
    "next_attempt_ms",
    "last_error_code",
    "last_error_message",
    "last_http_status",
    "tenant",
    "batch",
    "reply_to",
    "first_seen_ms",
    "started_ms",
    "finished_ms",
    "consumer",
    "entry",
    "inflight",
    "maybe_sent",
    "payload",
};

#define LABEL_WIDTH 18

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);

    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* "name  value" on one line: times as ISO 8601 and from now, the payload by its size */
static void show_field(struct strbuf *sb, const char *name, size_t name_len, const redisReply *v,
                       long long now)
{
    size_t start = sb->len;
    long long ms;
    char *end;

    if (v->type != REDIS_REPLY_STRING)
        return;
    ctl_text_printable(sb, name, name_len);
    strbuf_printf(sb, "%*s",
                  sb->len - start < LABEL_WIDTH ? (int)(LABEL_WIDTH - (sb->len - start)) : 0, "");
    strbuf_puts(sb, " ");
    ms = strtoll(v->str, &end, 10);
    if (ends_with(name, name_len, "_ms") && v->len > 0 && end == v->str + v->len)
        ctl_text_time_relative(sb, ms, now);
    else if (name_len == 7 && memcmp(name, "payload", 7) == 0)
        strbuf_printf(sb, "%zu bytes (--json shows it)", v->len);
    else
        ctl_text_printable(sb, v->str, v->len);
    strbuf_puts(sb, "\n");
}

static bool in_order(const redisReply *k)
{
    for (size_t i = 0; i < DM_ARRAY_LEN(field_order); i++)
        if (k->len == strlen(field_order[i]) && memcmp(k->str, field_order[i], k->len) == 0)
            return true;
    return false;
}

static void show_human(struct strbuf *sb, const char *job_id, const redisReply *hash, long long ttl)
{
    long long now = clock_realtime_ms();

    if (!ctl_fields_get(hash, "job_id"))
        strbuf_printf(sb, "%-*s %s\n", LABEL_WIDTH, "job_id", job_id);
    for (size_t i = 0; i < DM_ARRAY_LEN(field_order); i++) {
        const redisReply *v = ctl_fields_get(hash, field_order[i]);

        if (v)
            show_field(sb, field_order[i], strlen(field_order[i]), v, now);
    }
    for (size_t j = 0; j + 1 < hash->elements; j += 2) {
        const redisReply *k = hash->element[j];

        if (k->type == REDIS_REPLY_STRING && !in_order(k))
            show_field(sb, k->str, k->len, hash->element[j + 1], now);
    }
    if (ttl > 0) {
        strbuf_printf(sb, "%-*s in ", LABEL_WIDTH, "expires");
        ctl_text_duration(sb, ttl * 1000);
        strbuf_puts(sb, "\n");
    }
}

static int status_show(struct ctl_redis *r, const char *job_id, bool json)
{
    char key[CTL_KEY_MAX];
    redisReply *hash = NULL, *ttl = NULL;
    struct strbuf sb;
    int status = CTL_EXIT_REDIS;

    ctl_redis_key(r, key, "job", job_id);
    if (!ctl_redis_append(r, "HGETALL %s", key) || !ctl_redis_append(r, "TTL %s", key))
        return CTL_EXIT_FAILED;
    if (!(hash = ctl_redis_reply(r)) || !(ttl = ctl_redis_reply(r)) ||
        ctl_redis_reply_is_error(r, hash, "HGETALL") || ctl_redis_reply_is_error(r, ttl, "TTL"))
        goto out;
    if (hash->type != REDIS_REPLY_ARRAY || hash->elements == 0) {
        fprintf(stderr, "datamartctl: no job %s under prefix %s\n", job_id, ctl_redis_prefix(r));
        status = ctl_redis_prefix_check(r) < 0 ? CTL_EXIT_REDIS : CTL_EXIT_FAILED;
        goto out;
    }
    strbuf_init(&sb);
    if (json) {
        ctl_fields_json(&sb, hash, "job_id", job_id);
        strbuf_puts(&sb, "\n");
    } else {
        show_human(&sb, job_id, hash, ttl->type == REDIS_REPLY_INTEGER ? ttl->integer : -1);
    }
    status = CTL_EXIT_OK;
    ctl_output_write(&sb, &status);
    strbuf_release(&sb);
out:
    freeReplyObject(hash);
    freeReplyObject(ttl);
    return status;
}

int ctl_status_run(struct ctl *ctl, int argc, char **argv)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *usage = "Usage: datamartctl status [--json] JOB_ID\n";
    struct ctl_redis *r;
    bool json = false;
    int opt, status;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == 'j') {
            json = true;
        } else {
            fputs(usage, opt == 'h' ? stdout : stderr);
            return opt == 'h' ? CTL_EXIT_OK : CTL_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        fputs(usage, stderr);
        return CTL_EXIT_USAGE;
    }
    if (!job_id_valid(argv[optind], strlen(argv[optind]))) {
        fputs("datamartctl status: a job id is [A-Za-z0-9._:-]{1,128}\n", stderr);
        return CTL_EXIT_USAGE;
    }
    if (!(r = ctl_redis_connect(ctl)))
        return CTL_EXIT_REDIS;
    status = status_show(r, argv[optind], json);
    ctl_redis_free(r);
    return status;
}
