/*
 * datamartctl dead list|requeue|purge: the dead letters in P:dead.
 *   list [--json] [--count N]   the oldest N entries (default 100)
 *   requeue JOB_ID | --all      re-drive through requeue.lua, 500 jobs per MULTI/EXEC
 *   purge --yes                 delete every entry there now (later ones are kept)
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "ctl.h"
#include "ctl_output.h"
#include "ctl_commands.h"
#include "ctl_fields.h"
#include "ctl_outcome.h"
#include "ctl_redis.h"
#include "ctl_text.h"
#include "job.h"
#include "requeue_lua.h"
#include "strbuf.h"

#define LIST_DEFAULT 100
#define LIST_MAX 1000000
/* entries read, and requeue scripts sent, per round trip */
#define CHUNK 500
#define SHA_LEN 40

static const char *const usage_text = "Usage: datamartctl dead list [--json] [--count N]\n"
                                      "       datamartctl dead requeue JOB_ID | --all\n"
                                      "       datamartctl dead purge --yes\n";

static int usage(bool help)
{
    fputs(usage_text, help ? stdout : stderr);
    return help ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

/* the id of P:dead's newest entry, "" when empty; false on a Redis failure */
static bool newest_id(struct ctl_redis *r, const char *dead, char *id)
{
    redisReply *reply = ctl_redis_command(r, "XREVRANGE %s + - COUNT 1", dead);

    if (!reply)
        return false;
    id[0] = '\0';
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2 &&
        reply->element[0]->element[0]->len < CTL_ENTRY_ID_MAX)
        snprintf(id, CTL_ENTRY_ID_MAX, "%s", reply->element[0]->element[0]->str);
    freeReplyObject(reply);
    return true;
}

/* a well-formed [id, [field, value, ...]] entry */
static bool entry_ok(const redisReply *e)
{
    return e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
           e->element[0]->type == REDIS_REPLY_STRING && e->element[0]->len < CTL_ENTRY_ID_MAX &&
           e->element[1]->type == REDIS_REPLY_ARRAY;
}

/*
 * The entries of P:dead from after `after` ("" for the start) up to `last`, at most CHUNK; NULL
 * on a Redis failure. `after` moves to the last entry returned.
 */
static redisReply *read_chunk(struct ctl_redis *r, const char *dead, char *after, const char *last)
{
    char start[CTL_ENTRY_ID_MAX + 1], count[16];
    redisReply *reply;

    if (after[0])
        snprintf(start, sizeof(start), "(%s", after);
    else
        strcpy(start, "-");
    snprintf(count, sizeof(count), "%d", CHUNK);
    reply = ctl_redis_command(r, "XRANGE %s %s %s COUNT %s", dead, start, last, count);
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0) {
        const redisReply *e = reply->element[reply->elements - 1];

        if (entry_ok(e))
            snprintf(after, CTL_ENTRY_ID_MAX, "%s", e->element[0]->str);
    }
    return reply;
}

struct dead_args {
    enum { DEAD_LIST, DEAD_REQUEUE, DEAD_PURGE } op;
    bool json;          /* list */
    long long count;    /* list */
    const char *job_id; /* requeue; NULL: --all */
};

static int dead_list(struct ctl_redis *r, const struct dead_args *a)
{
    char dead[CTL_KEY_MAX], count[24];
    long long n = a->count, total;
    redisReply *len = NULL, *list = NULL;
    struct strbuf sb;
    int status = CTL_EXIT_REDIS;

    ctl_redis_key(r, dead, "dead", NULL);
    snprintf(count, sizeof(count), "%lld", n);
    if (!ctl_redis_append(r, "XLEN %s", dead) ||
        !ctl_redis_append(r, "XRANGE %s - + COUNT %s", dead, count))
        return CTL_EXIT_USAGE;
    if (!(len = ctl_redis_reply(r)) || !(list = ctl_redis_reply(r)) ||
        ctl_redis_reply_is_error(r, len, "XLEN") || ctl_redis_reply_is_error(r, list, "XRANGE"))
        goto out;
    total = len->type == REDIS_REPLY_INTEGER ? len->integer : 0;
    if (total == 0 && ctl_redis_prefix_check(r) <= 0) {
        status = CTL_EXIT_FAILED;
        goto out;
    }
    strbuf_init(&sb);
    for (size_t i = 0; list->type == REDIS_REPLY_ARRAY && i < list->elements; i++) {
        const redisReply *e = list->element[i];
        long long finished;

        if (!entry_ok(e))
            continue;
        if (a->json) {
            ctl_fields_json(&sb, e->element[1], "id", e->element[0]->str);
        } else {
            strbuf_printf(&sb, "%s ", e->element[0]->str);
            if (ctl_fields_ll(e->element[1], "finished_ms", &finished)) {
                ctl_text_time(&sb, finished);
                strbuf_puts(&sb, " ");
            }
            ctl_outcome_line(&sb, e->element[1]);
        }
        strbuf_puts(&sb, "\n");
    }
    status = CTL_EXIT_OK;
    if (ctl_output_write(&sb, &status) && total > n)
        fprintf(stderr, "(the oldest %lld of %lld dead jobs; --count shows more)\n", n, total);
    strbuf_release(&sb);
out:
    freeReplyObject(len);
    freeReplyObject(list);
    return status;
}

struct requeue {
    struct ctl_redis *r;
    char dead[CTL_KEY_MAX], jobs[CTL_KEY_MAX];
    char sha[SHA_LEN + 1];
    size_t requeued, skipped;
};

static bool requeue_init(struct requeue *q, struct ctl_redis *r)
{
    redisReply *reply;
    bool ok;

    q->r = r;
    ctl_redis_key(r, q->dead, "dead", NULL);
    ctl_redis_key(r, q->jobs, "jobs", NULL);
    reply = ctl_redis_command(r, "SCRIPT LOAD %s", requeue_lua);
    if (!reply)
        return false;
    ok = reply->type == REDIS_REPLY_STRING && reply->len == SHA_LEN;
    if (ok)
        memcpy(q->sha, reply->str, SHA_LEN + 1);
    else
        fprintf(stderr, "datamartctl: Redis at %s: unexpected SCRIPT LOAD reply\n",
                ctl_redis_address(r));
    freeReplyObject(reply);
    return ok;
}

/* Queue the script for a dead entry; false when it has no usable job_id (skipped) or on OOM. */
static bool requeue_append(struct requeue *q, const redisReply *e, bool *queued)
{
    const redisReply *fields = e->element[1];
    const redisReply *job_id = ctl_fields_get(fields, "job_id");
    const redisReply *batch = ctl_fields_get(fields, "batch");
    char job_key[CTL_KEY_MAX], batch_key[CTL_KEY_MAX];

    *queued = false;
    if (!job_id || job_id->type != REDIS_REPLY_STRING || !job_id_valid(job_id->str, job_id->len) ||
        (batch && (batch->type != REDIS_REPLY_STRING || !job_id_valid(batch->str, batch->len)))) {
        fprintf(stderr, "datamartctl: dead entry %s has no valid job_id or batch; left alone\n",
                e->element[0]->str);
        q->skipped++;
        return true;
    }
    ctl_redis_key(q->r, job_key, "job", job_id->str);
    if (batch)
        ctl_redis_key(q->r, batch_key, "batch", batch->str);
    *queued = true;
    return ctl_redis_append(q->r, "EVALSHA %s 4 %s %s %s %s %s %s %s", q->sha, q->dead, q->jobs,
                            job_key, batch ? batch_key : q->dead, e->element[0]->str, job_id->str,
                            batch ? batch->str : "");
}

/* One script's answer (an element of the EXEC reply); false on a Redis failure. */
static bool requeue_result(struct requeue *q, const redisReply *e, const redisReply *reply)
{
    const char *job_id = ctl_fields_str(e->element[1], "job_id");
    const char *word;

    if (ctl_redis_reply_is_error(q->r, reply, "requeue script"))
        return false;
    word = reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
                   reply->element[0]->type == REDIS_REPLY_STRING
               ? reply->element[0]->str
               : "";
    if (strcmp(word, "ok") == 0) {
        printf("%s\n", job_id);
        q->requeued++;
    } else {
        q->skipped++;
        if (strcmp(word, "busy") == 0 && reply->elements == 2)
            fprintf(stderr,
                    "datamartctl: job %s is %s again (enqueued anew since it died); its dead "
                    "entry %s stays\n",
                    job_id, reply->element[1]->str, e->element[0]->str);
        else if (strcmp(word, "no_payload") == 0)
            fprintf(stderr, "datamartctl: dead entry %s has no payload; left alone\n",
                    e->element[0]->str);
        else
            fprintf(stderr, "datamartctl: dead entry %s of job %s changed meanwhile (%s)\n",
                    e->element[0]->str, job_id, word);
    }
    return true;
}

/* Read the MULTI, QUEUED... replies and return EXEC's array (n results); NULL on a failure. */
static redisReply *requeue_exec_reply(struct requeue *q, size_t n)
{
    redisReply *reply;

    for (size_t i = 0; i < n + 1; i++) {
        reply = ctl_redis_reply(q->r);
        if (!reply || ctl_redis_reply_is_error(q->r, reply, "requeue transaction")) {
            freeReplyObject(reply);
            return NULL;
        }
        freeReplyObject(reply);
    }
    reply = ctl_redis_reply(q->r);
    if (reply && (reply->type != REDIS_REPLY_ARRAY || reply->elements != n)) {
        fputs("datamartctl: the requeue transaction was not executed\n", stderr);
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

/*
 * Requeue the entries of one XRANGE reply in one MULTI/EXEC, so no daemon finishes a requeued job
 * of a batch before the others are counted back in (the batch completes once); false on a failure.
 */
static bool requeue_entries(struct requeue *q, const redisReply *list)
{
    bool queued[CHUNK];
    size_t n = 0, k = 0;
    redisReply *results;
    bool ok = true;

    if (!ctl_redis_append(q->r, "MULTI"))
        return false;
    for (size_t i = 0; i < list->elements && i < CHUNK; i++) {
        if (!requeue_append(q, list->element[i], &queued[i]))
            return false;
        n += queued[i];
    }
    if (!ctl_redis_append(q->r, "EXEC"))
        return false;
    results = requeue_exec_reply(q, n);
    if (results == NULL)
        return false;
    for (size_t i = 0; ok && i < list->elements && i < CHUNK; i++)
        if (queued[i])
            ok = requeue_result(q, list->element[i], results->element[k++]);
    freeReplyObject(results);
    return ok;
}

/* every entry up to the newest one seen at the start: jobs that die again meanwhile wait */
static int requeue_all(struct requeue *q)
{
    char after[CTL_ENTRY_ID_MAX] = "", last[CTL_ENTRY_ID_MAX];

    if (!newest_id(q->r, q->dead, last))
        return CTL_EXIT_REDIS;
    if (!last[0] && ctl_redis_prefix_check(q->r) < 0)
        return CTL_EXIT_REDIS;
    while (last[0]) {
        redisReply *list = read_chunk(q->r, q->dead, after, last);
        bool ok, more;

        if (!list)
            return CTL_EXIT_REDIS;
        more = list->type == REDIS_REPLY_ARRAY && list->elements == CHUNK;
        for (size_t i = 0; list->type == REDIS_REPLY_ARRAY && i < list->elements; i++)
            if (!entry_ok(list->element[i])) {
                freeReplyObject(list);
                fputs("datamartctl: unexpected XRANGE reply\n", stderr);
                return CTL_EXIT_REDIS;
            }
        ok = list->type != REDIS_REPLY_ARRAY || requeue_entries(q, list);
        freeReplyObject(list);
        if (!ok)
            return CTL_EXIT_REDIS;
        if (!more)
            break;
    }
    fprintf(stderr, "datamartctl: requeued %zu dead jobs", q->requeued);
    if (q->skipped)
        fprintf(stderr, ", left %zu", q->skipped);
    fputs("\n", stderr);
    return q->skipped ? CTL_EXIT_FAILED : CTL_EXIT_OK;
}

/* the newest dead entry of job_id: a job that died twice is requeued once */
static int requeue_one(struct requeue *q, const char *job_id)
{
    char after[CTL_ENTRY_ID_MAX] = "", last[CTL_ENTRY_ID_MAX];
    redisReply *found = NULL;
    size_t found_at = 0;
    bool queued;
    int status = CTL_EXIT_OK;

    if (!newest_id(q->r, q->dead, last))
        return CTL_EXIT_REDIS;
    while (last[0]) {
        redisReply *list = read_chunk(q->r, q->dead, after, last);
        bool more, kept = false;

        if (!list) {
            freeReplyObject(found);
            return CTL_EXIT_REDIS;
        }
        more = list->type == REDIS_REPLY_ARRAY && list->elements == CHUNK;
        for (size_t i = 0; list->type == REDIS_REPLY_ARRAY && i < list->elements; i++) {
            const char *id = entry_ok(list->element[i])
                                 ? ctl_fields_str(list->element[i]->element[1], "job_id")
                                 : NULL;

            if (id && strcmp(id, job_id) == 0) {
                if (!kept) {
                    freeReplyObject(found);
                    found = list;
                    kept = true;
                }
                found_at = i;
            }
        }
        if (!kept)
            freeReplyObject(list);
        if (!more)
            break;
    }
    if (!found) {
        fprintf(stderr, "datamartctl: no dead job %s under prefix %s\n", job_id,
                ctl_redis_prefix(q->r));
        return ctl_redis_prefix_check(q->r) < 0 ? CTL_EXIT_REDIS : CTL_EXIT_FAILED;
    }
    if (!requeue_append(q, found->element[found_at], &queued)) {
        status = CTL_EXIT_REDIS;
    } else if (queued) {
        redisReply *reply = ctl_redis_reply(q->r);

        if (!reply || !requeue_result(q, found->element[found_at], reply))
            status = CTL_EXIT_REDIS;
        freeReplyObject(reply);
    }
    if (status != CTL_EXIT_REDIS && q->requeued == 0)
        status = CTL_EXIT_FAILED;
    freeReplyObject(found);
    return status;
}

static int dead_requeue(struct ctl_redis *r, const struct dead_args *a)
{
    struct requeue q = {0};

    if (!requeue_init(&q, r))
        return CTL_EXIT_REDIS;
    return a->job_id ? requeue_one(&q, a->job_id) : requeue_all(&q);
}

/* the smallest stream id after id ("<ms>-<seq>") */
static bool id_next(const char *id, char *out)
{
    uint64_t ms, seq;
    char tail;

    if (sscanf(id, "%" SCNu64 "-%" SCNu64 "%c", &ms, &seq, &tail) != 2)
        return false;
    if (seq == UINT64_MAX)
        snprintf(out, CTL_ENTRY_ID_MAX, "%" PRIu64 "-0", ms + 1);
    else
        snprintf(out, CTL_ENTRY_ID_MAX, "%" PRIu64 "-%" PRIu64, ms, seq + 1);
    return true;
}

static int dead_purge(struct ctl_redis *r)
{
    char dead[CTL_KEY_MAX], last[CTL_ENTRY_ID_MAX], min_id[CTL_ENTRY_ID_MAX];
    redisReply *reply;
    long long purged;

    ctl_redis_key(r, dead, "dead", NULL);
    if (!newest_id(r, dead, last))
        return CTL_EXIT_REDIS;
    if (!last[0]) {
        printf("no dead jobs\n");
        return ctl_redis_prefix_check(r) < 0 ? CTL_EXIT_REDIS : CTL_EXIT_OK;
    }
    if (!id_next(last, min_id)) {
        fprintf(stderr, "datamartctl: unexpected stream id %s\n", last);
        return CTL_EXIT_REDIS;
    }
    /* up to the newest entry seen, so a job dying meanwhile is not purged unseen */
    reply = ctl_redis_command(r, "XTRIM %s MINID %s", dead, min_id);
    if (!reply)
        return CTL_EXIT_REDIS;
    purged = reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
    freeReplyObject(reply);
    printf("purged %lld dead jobs\n", purged);
    return CTL_EXIT_OK;
}

static int args_parse(struct dead_args *a, int argc, char **argv)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"count", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *op = argc >= 2 ? argv[1] : "";
    char *end;
    int opt;

    if (strcmp(op, "--help") == 0 || strcmp(op, "-h") == 0 ||
        (argc == 3 && strcmp(argv[2], "--help") == 0))
        return usage(true);
    if (strcmp(op, "list") == 0) {
        a->op = DEAD_LIST;
        a->count = LIST_DEFAULT;
        optind = 0;
        while ((opt = getopt_long(argc - 1, argv + 1, "h", options, NULL)) != -1) {
            if (opt == 'j')
                a->json = true;
            else if (opt == 'n' && (a->count = strtoll(optarg, &end, 10)) >= 1 &&
                     a->count <= LIST_MAX && *end == '\0')
                continue;
            else
                return usage(opt == 'h');
        }
        return optind == argc - 1 ? -1 : usage(false);
    }
    if (strcmp(op, "requeue") == 0 && argc == 3) {
        a->op = DEAD_REQUEUE;
        if (strcmp(argv[2], "--all") == 0)
            return -1;
        a->job_id = argv[2];
        return job_id_valid(argv[2], strlen(argv[2])) ? -1 : usage(false);
    }
    if (strcmp(op, "purge") == 0 && argc == 3 && strcmp(argv[2], "--yes") == 0) {
        a->op = DEAD_PURGE;
        return -1;
    }
    if (strcmp(op, "purge") == 0) {
        fputs("datamartctl dead purge: deletes every dead job and its payload for good; say "
              "--yes\n",
              stderr);
        return CTL_EXIT_USAGE;
    }
    return usage(false);
}

int ctl_dead_run(struct ctl *ctl, int argc, char **argv)
{
    struct dead_args a = {0};
    struct ctl_redis *r;
    int status = args_parse(&a, argc, argv);

    if (status >= 0)
        return status;
    if (!(r = ctl_redis_connect(ctl)))
        return CTL_EXIT_REDIS;
    if (a.op == DEAD_LIST)
        status = dead_list(r, &a);
    else if (a.op == DEAD_REQUEUE)
        status = dead_requeue(r, &a);
    else
        status = dead_purge(r);
    ctl_redis_free(r);
    return status;
}
