/*
 * datamartctl wait JOB_ID... [--timeout S] [--json]: until every job has its final outcome.
 * The last id of P:results is read before the job hashes are checked, and XREAD BLOCK follows
 * from there, so an outcome published between the two steps is not missed. Exit 0 all created,
 * 1 any failed or dead, 2 timeout (or usage).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "ctl.h"
#include "ctl_commands.h"
#include "ctl_fields.h"
#include "ctl_idset.h"
#include "ctl_outcome.h"
#include "ctl_redis.h"
#include "ctl_results.h"
#include "job.h"
#include "strbuf.h"

/* job hashes read per round trip, and results read per XREAD */
#define CHUNK 1000
/* a year: longer waits are surely a mistake */
#define TIMEOUT_MAX_S 31536000
/* ids named in the timeout message */
#define TIMEOUT_NAMES_MAX 10

struct waiter {
    struct ctl_idset *ids;
    bool *done;
    size_t left;
    bool any_failed;
    bool json;
};

/* Print a final outcome of job number i and count it; false when out of memory. */
static bool record(struct waiter *w, size_t i, const redisReply *fields)
{
    const char *status = ctl_fields_str(fields, "status");
    struct strbuf sb;
    bool ok;

    if (w->done[i])
        return true;
    w->done[i] = true;
    w->left--;
    if (strcmp(status, "created") != 0)
        w->any_failed = true;
    strbuf_init(&sb);
    if (w->json)
        ctl_outcome_json(&sb, fields, NULL);
    else
        ctl_outcome_line(&sb, fields);
    strbuf_puts(&sb, "\n");
    ok = !sb.failed;
    if (ok) {
        fwrite(sb.data, 1, sb.len, stdout);
        fflush(stdout);
    }
    strbuf_release(&sb);
    return ok;
}

/* Jobs already finished, from their hashes; the exit status on failure, else -1. */
static int check_hashes(struct waiter *w, struct ctl_redis *r)
{
    size_t n = ctl_idset_count(w->ids);

    for (size_t start = 0; start < n; start += CHUNK) {
        size_t end = start + CHUNK < n ? start + CHUNK : n;

        for (size_t i = start; i < end; i++) {
            char key[CTL_KEY_MAX];

            ctl_redis_key(r, key, "job", ctl_idset_get(w->ids, i));
            if (!ctl_redis_append(r, "HGETALL %s", key))
                return CTL_EXIT_USAGE;
        }
        for (size_t i = start; i < end; i++) {
            redisReply *hash = ctl_redis_reply(r);
            bool ok;

            if (!hash)
                return CTL_EXIT_REDIS;
            ok = !ctl_redis_reply_is_error(r, hash, "HGETALL");
            if (ok && ctl_outcome_is_final(ctl_fields_str(hash, "state")) &&
                ctl_outcome_is_final(ctl_fields_str(hash, "status")) && !record(w, i, hash))
                ok = false;
            freeReplyObject(hash);
            if (!ok)
                return CTL_EXIT_REDIS;
        }
    }
    return -1;
}

/* Outcomes of P:results entries for our jobs; false when out of memory. */
static bool take_entries(struct waiter *w, const redisReply *entries)
{
    for (size_t e = 0; e < entries->elements; e++) {
        const redisReply *fields = entries->element[e]->element[1];
        const redisReply *job_id = ctl_fields_get(fields, "job_id");
        const char *event = ctl_fields_str(fields, "event");
        size_t i;

        if (!event || strcmp(event, "job") != 0 || !job_id || job_id->type != REDIS_REPLY_STRING ||
            !ctl_outcome_is_final(ctl_fields_str(fields, "status")) ||
            !ctl_idset_find(w->ids, job_id->str, job_id->len, &i))
            continue;
        if (!record(w, i, fields))
            return false;
    }
    return true;
}

static void timed_out(const struct waiter *w, double timeout_s)
{
    size_t named = 0;

    fprintf(stderr, "datamartctl: timed out after %gs; %zu job%s not finished:", timeout_s, w->left,
            w->left == 1 ? "" : "s");
    for (size_t i = 0; i < ctl_idset_count(w->ids) && named < TIMEOUT_NAMES_MAX; i++)
        if (!w->done[i]) {
            fprintf(stderr, " %s", ctl_idset_get(w->ids, i));
            named++;
        }
    fputs(w->left > named ? " ...\n" : "\n", stderr);
}

static int wait_all(struct waiter *w, struct ctl_redis *r, double timeout_s)
{
    char after[CTL_ENTRY_ID_MAX];
    uint64_t deadline_us = 0;
    int status;

    if (!ctl_results_last_id(r, after))
        return CTL_EXIT_REDIS;
    if ((status = check_hashes(w, r)) >= 0)
        return status;
    /* a hint only: the jobs may still be enqueued later */
    if (w->left == ctl_idset_count(w->ids) && ctl_redis_prefix_check(r) < 0)
        return CTL_EXIT_REDIS;
    if (timeout_s >= 0)
        deadline_us = clock_monotonic_us() + (uint64_t)(timeout_s * 1e6);
    while (w->left > 0) {
        const redisReply *entries;
        redisReply *reply;
        long long block_ms = 0;
        bool expired;

        if (timeout_s >= 0) {
            uint64_t now = clock_monotonic_us();

            /* XREAD BLOCK 0 would wait forever: round up to at least 1 ms */
            block_ms = now >= deadline_us ? 0 : (long long)((deadline_us - now + 999) / 1000);
            if (block_ms == 0) {
                timed_out(w, timeout_s);
                return CTL_EXIT_USAGE;
            }
        }
        reply = ctl_results_read(r, after, block_ms, CHUNK, &entries, &expired);
        if (!reply && !expired)
            return CTL_EXIT_REDIS;
        if (reply) {
            bool ok = take_entries(w, entries);

            freeReplyObject(reply);
            if (!ok) {
                fputs("datamartctl: out of memory\n", stderr);
                return CTL_EXIT_USAGE;
            }
        }
    }
    return w->any_failed ? CTL_EXIT_FAILED : CTL_EXIT_OK;
}

static bool timeout_parse(const char *s, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(s, &end);
    return errno == 0 && end != s && *end == '\0' && isfinite(*out) && *out >= 0 &&
           *out <= TIMEOUT_MAX_S;
}

int ctl_wait_run(struct ctl *ctl, int argc, char **argv)
{
    static const struct option options[] = {
        {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *usage = "Usage: datamartctl wait [--timeout S] [--json] JOB_ID...\n";
    struct waiter w = {0};
    struct ctl_redis *r = NULL;
    double timeout_s = -1;
    int opt, status = CTL_EXIT_USAGE;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == 't' && timeout_parse(optarg, &timeout_s))
            continue;
        if (opt == 'j') {
            w.json = true;
            continue;
        }
        if (opt == 't')
            fputs("datamartctl wait: --timeout wants seconds, 0 to " DM_XSTR(TIMEOUT_MAX_S) "\n",
                  stderr);
        fputs(usage, opt == 'h' ? stdout : stderr);
        return opt == 'h' ? CTL_EXIT_OK : CTL_EXIT_USAGE;
    }
    if (optind == argc) {
        fputs(usage, stderr);
        return CTL_EXIT_USAGE;
    }
    if (!(w.ids = ctl_idset_create()))
        goto oom;
    for (int i = optind; i < argc; i++) {
        size_t index;

        if (!job_id_valid(argv[i], strlen(argv[i]))) {
            fprintf(stderr, "datamartctl wait: %s is not a job id ([A-Za-z0-9._:-]{1,128})\n",
                    argv[i]);
            goto out;
        }
        if (ctl_idset_add(w.ids, argv[i], strlen(argv[i]), &index) < 0)
            goto oom;
    }
    w.left = ctl_idset_count(w.ids);
    if (!(w.done = calloc(w.left, sizeof(*w.done))))
        goto oom;
    if (!(r = ctl_redis_connect(ctl))) {
        status = CTL_EXIT_REDIS;
        goto out;
    }
    status = wait_all(&w, r, timeout_s);
    goto out;
oom:
    fputs("datamartctl: out of memory\n", stderr);
out:
    ctl_redis_free(r);
    free(w.done);
    ctl_idset_free(w.ids);
    return status;
}
