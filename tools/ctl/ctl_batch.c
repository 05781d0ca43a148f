/*
 * datamartctl batch status ID [--json]: a batch's counts from P:batch:<id> (total set by the
 * producer; created, failed, dead by the daemon), pending = total - done, and a progress bar.
 */
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "ctl.h"
#include "ctl_output.h"
#include "ctl_commands.h"
#include "ctl_fields.h"
#include "ctl_progress.h"
#include "ctl_redis.h"
#include "ctl_text.h"
#include "job.h"
#include "strbuf.h"

struct batch_counts {
    long long total; /* -1: not set */
    long long created, failed, dead, done, pending;
    long long finished_ms; /* -1: not finished */
};

static void counts_take(struct batch_counts *c, const redisReply *hash)
{
    *c = (struct batch_counts){.total = -1, .finished_ms = -1, .pending = -1};
    (void)ctl_fields_ll(hash, "total", &c->total);
    (void)ctl_fields_ll(hash, "created", &c->created);
    (void)ctl_fields_ll(hash, "failed", &c->failed);
    (void)ctl_fields_ll(hash, "dead", &c->dead);
    (void)ctl_fields_ll(hash, "finished_ms", &c->finished_ms);
    c->done = c->created + c->failed + c->dead;
    if (c->total >= 0)
        c->pending = c->total > c->done ? c->total - c->done : 0;
}

static void json_count(struct strbuf *sb, const char *name, long long v)
{
    if (v < 0)
        strbuf_printf(sb, ",\"%s\":null", name);
    else
        strbuf_printf(sb, ",\"%s\":%lld", name, v);
}

static void render_json(struct strbuf *sb, const char *id, const struct batch_counts *c)
{
    strbuf_puts(sb, "{\"batch\":");
    strbuf_json_string(sb, id, strlen(id));
    json_count(sb, "total", c->total);
    json_count(sb, "created", c->created);
    json_count(sb, "failed", c->failed);
    json_count(sb, "dead", c->dead);
    json_count(sb, "done", c->done);
    json_count(sb, "pending", c->pending);
    json_count(sb, "finished_ms", c->finished_ms);
    strbuf_puts(sb, "}\n");
}

static void render_human(struct strbuf *sb, const char *id, const struct batch_counts *c)
{
    strbuf_printf(sb, "batch %s ", id);
    if (c->total >= 0)
        ctl_progress_bar(sb, (unsigned long long)c->done, (unsigned long long)c->total);
    else
        strbuf_printf(sb, "%lld done of an unknown total (no total was set)", c->done);
    strbuf_printf(sb, "\ncreated %lld, failed %lld, dead %lld", c->created, c->failed, c->dead);
    if (c->pending >= 0)
        strbuf_printf(sb, ", pending %lld", c->pending);
    if (c->finished_ms >= 0) {
        strbuf_puts(sb, "\nfinished ");
        ctl_text_time_relative(sb, c->finished_ms, clock_realtime_ms());
    }
    strbuf_puts(sb, "\n");
}

static int batch_status(struct ctl_redis *r, const char *id, bool json)
{
    char key[CTL_KEY_MAX];
    redisReply *hash;
    struct batch_counts c;
    struct strbuf sb;
    int status = CTL_EXIT_OK;

    ctl_redis_key(r, key, "batch", id);
    if (!(hash = ctl_redis_command(r, "HGETALL %s", key)))
        return CTL_EXIT_REDIS;
    if (hash->type != REDIS_REPLY_ARRAY || hash->elements == 0) {
        freeReplyObject(hash);
        fprintf(stderr, "datamartctl: no batch %s under prefix %s\n", id, ctl_redis_prefix(r));
        return ctl_redis_prefix_check(r) < 0 ? CTL_EXIT_REDIS : CTL_EXIT_FAILED;
    }
    counts_take(&c, hash);
    freeReplyObject(hash);
    strbuf_init(&sb);
    if (json)
        render_json(&sb, id, &c);
    else
        render_human(&sb, id, &c);
    ctl_output_write(&sb, &status);
    strbuf_release(&sb);
    return status;
}

int ctl_batch_run(struct ctl *ctl, int argc, char **argv)
{
    const char *usage = "Usage: datamartctl batch status [--json] ID\n";
    const char *id = NULL;
    bool json = false, help = false, bad = false;
    struct ctl_redis *r;
    int status;

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
        help = true;
    else if (argc < 2 || strcmp(argv[1], "status") != 0)
        bad = true;
    for (int i = 2; !help && !bad && i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--help") == 0)
            help = true;
        else if (!id && argv[i][0] != '-')
            id = argv[i];
        else
            bad = true;
    }
    if (help || bad || !id) {
        fputs(usage, help ? stdout : stderr);
        return help ? CTL_EXIT_OK : CTL_EXIT_USAGE;
    }
    if (!job_id_valid(id, strlen(id))) {
        fputs("datamartctl batch: a batch id is [A-Za-z0-9._:-]{1,128}\n", stderr);
        return CTL_EXIT_USAGE;
    }
    if (!(r = ctl_redis_connect(ctl)))
        return CTL_EXIT_REDIS;
    status = batch_status(r, id, json);
    ctl_redis_free(r);
    return status;
}
