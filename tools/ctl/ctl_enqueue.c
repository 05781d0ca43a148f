/*
 * datamartctl enqueue [FILE|-]: one JSON body, or JSON Lines for bulk, checked locally and then
 * XADDed to P:jobs in pipelined chunks.
 *
 * The input is JSON Lines when --jsonl is given, or when its first non-blank line is a complete
 * JSON document on its own and another non-blank line follows; otherwise it is one body (which
 * may span lines). Nothing is enqueued when any job is bad, unless --skip-invalid.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "config.h"
#include "ctl.h"
#include "ctl_commands.h"
#include "ctl_idset.h"
#include "ctl_input.h"
#include "ctl_progress.h"
#include "ctl_redis.h"
#include "job.h"
#include "strbuf.h"
#include "validator.h"

/* the whole input is read before anything is enqueued, so it is bounded */
#define INPUT_MAX (1024ul * 1024 * 1024)
/* commands sent before their replies are read, and the payload bytes they may hold */
#define CHUNK 1000
#define CHUNK_BYTES (8u * 1024 * 1024)
/* bad jobs reported in full; the rest are only counted */
#define REPORT_MAX 100
#define FIELD_MAX 64

struct enq_job {
    size_t off, len; /* payload bytes within the input */
    size_t line;     /* 1-based line of a JSON Lines input; 0 for a single body */
    size_t id;       /* number in enq->ids when has_id */
    bool has_id;
    bool bad;
};

struct enqueue {
    /* options */
    const char *job_id, *job_id_field, *tenant, *batch, *reply_to;
    bool jsonl, skip_invalid, no_validate;
    size_t max_bytes;
    /* the input */
    char *name; /* for messages */
    const char *data;
    struct enq_job *jobs;
    size_t njobs, jobs_cap;
    struct ctl_idset *ids;
    size_t *id_lines; /* by id number: the line that first gave it */
    size_t nbad;
    bool more_said; /* the count of unreported bad jobs was printed */
};

static void usage(FILE *out)
{
    fputs("Usage: datamartctl enqueue [OPTIONS] [FILE|-]\n"
          "  --jsonl             the input is JSON Lines (default: detected, see the manual)\n"
          "  --job-id ID         the job's id (one job only; default: its stream entry id)\n"
          "  --job-id-field F    take each job's id from the payload's top-level string F\n"
          "  --tenant T          tenant of every job\n"
          "  --batch ID          put every job in batch ID and set its total; prints ID\n"
          "  --reply-to NAME     also push each outcome to P:reply:NAME\n"
          "  --skip-invalid      enqueue the good jobs when some are bad\n"
          "  --no-validate       skip the local payload checks\n",
          out);
}

static bool blank(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return false;
    return true;
}

/* "NAME: " or "NAME:LINE: " before a problem */
static void where(const struct enqueue *enq, const struct enq_job *job)
{
    if (job->line)
        fprintf(stderr, "%s:%zu: ", enq->name, job->line);
    else
        fprintf(stderr, "%s: ", enq->name);
}

/* Marks job bad; its problems are printed while few jobs were bad so far. */
static bool job_reject(struct enqueue *enq, struct enq_job *job)
{
    job->bad = true;
    return ++enq->nbad <= REPORT_MAX;
}

static bool job_add(struct enqueue *enq, size_t off, size_t len, size_t line)
{
    if (enq->njobs == enq->jobs_cap) {
        size_t cap = enq->jobs_cap ? enq->jobs_cap * 2 : 1024;
        struct enq_job *jobs = realloc(enq->jobs, cap * sizeof(*jobs));

        if (!jobs)
            return false;
        enq->jobs = jobs;
        enq->jobs_cap = cap;
    }
    enq->jobs[enq->njobs++] = (struct enq_job){.off = off, .len = len, .line = line};
    return true;
}

/* true when the first non-blank line is a JSON document by itself and more lines follow */
static bool looks_like_jsonl(const char *data, size_t len)
{
    size_t start = 0, end;
    const char *parse_end = NULL;
    cJSON *doc;
    bool complete;

    for (;;) {
        const char *nl = memchr(data + start, '\n', len - start);

        end = nl ? (size_t)(nl - data) : len;
        if (!blank(data + start, end - start) || end == len)
            break;
        start = end + 1;
    }
    if (end == len)
        return false;
    doc = cJSON_ParseWithLengthOpts(data + start, end - start, &parse_end, false);
    complete = doc && blank(parse_end, (size_t)(data + end - parse_end));
    cJSON_Delete(doc);
    return complete && !blank(data + end, len - end);
}

static bool split(struct enqueue *enq, size_t len)
{
    size_t start = 0, line = 1;

    if (!enq->jsonl)
        return blank(enq->data, len) || job_add(enq, 0, len, 0);
    while (start < len) {
        const char *nl = memchr(enq->data + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - enq->data) : len;
        size_t n = end - start;

        if (n > 0 && enq->data[end - 1] == '\r')
            n--;
        if (!blank(enq->data + start, n) && !job_add(enq, start, n, line))
            return false;
        start = end + 1;
        line++;
    }
    return true;
}

/* the local payload checks; false when out of memory */
static bool check_payload(struct enqueue *enq, struct enq_job *job)
{
    struct validator_result *r = validator_check(enq->data + job->off, job->len, enq->max_bytes);

    if (!r)
        return false;
    if (validator_result_count(r) > 0 && job_reject(enq, job))
        for (size_t i = 0; i < validator_result_count(r); i++) {
            where(enq, job);
            fprintf(stderr, "%s: %s\n", validator_result_path(r, i),
                    validator_result_message(r, i));
        }
    validator_result_free(r);
    return true;
}

/* the job's id from --job-id or --job-id-field, unique in the input; false when out of memory */
static bool take_id(struct enqueue *enq, struct enq_job *job)
{
    const char *id = enq->job_id;
    cJSON *doc = NULL;
    const cJSON *v;
    int added;

    if (!id) {
        doc = cJSON_ParseWithLength(enq->data + job->off, job->len);
        v = cJSON_GetObjectItemCaseSensitive(doc, enq->job_id_field);
        id = cJSON_IsString(v) ? v->valuestring : NULL;
        if (!id || !job_id_valid(id, strlen(id))) {
            if (job_reject(enq, job)) {
                where(enq, job);
                fprintf(stderr, "%s: %s\n", enq->job_id_field,
                        !doc  ? "not JSON, so it gives no job_id"
                        : !id ? "missing or not a string, so it gives no job_id"
                              : "not a valid job_id ([A-Za-z0-9._:-]{1,128})");
            }
            cJSON_Delete(doc);
            return true;
        }
    }
    added = ctl_idset_add(enq->ids, id, strlen(id), &job->id);
    cJSON_Delete(doc);
    if (added < 0)
        return false;
    if (added == 0) {
        if (job_reject(enq, job)) {
            where(enq, job);
            fprintf(stderr, "job_id %s repeats line %zu\n", ctl_idset_get(enq->ids, job->id),
                    enq->id_lines[job->id]);
        }
        return true;
    }
    enq->id_lines[job->id] = job->line;
    job->has_id = true;
    return true;
}

static bool check_jobs(struct enqueue *enq)
{
    /* every job may give an id: one line number per possible id */
    if ((enq->job_id || enq->job_id_field) &&
        !(enq->id_lines = calloc(enq->njobs ? enq->njobs : 1, sizeof(*enq->id_lines))))
        return false;
    for (size_t i = 0; i < enq->njobs; i++) {
        struct enq_job *job = &enq->jobs[i];

        if (!enq->no_validate && !check_payload(enq, job))
            return false;
        if (!job->bad && (enq->job_id || enq->job_id_field) && !take_id(enq, job))
            return false;
    }
    return true;
}

/*
 * A job_id that is already known would be a duplicate, which the daemon does not count in a
 * batch: the batch would never finish. Such jobs are bad. Returns false on a Redis failure.
 */
static bool check_known_ids(struct enqueue *enq, struct ctl_redis *r)
{
    size_t i = 0;

    while (i < enq->njobs) {
        size_t sent[CHUNK], n = 0;

        for (; i < enq->njobs && n < CHUNK; i++) {
            char key[CTL_KEY_MAX];

            if (enq->jobs[i].bad || !enq->jobs[i].has_id)
                continue;
            ctl_redis_key(r, key, "job", ctl_idset_get(enq->ids, enq->jobs[i].id));
            if (!ctl_redis_append(r, "EXISTS %s", key))
                return false;
            sent[n++] = i;
        }
        for (size_t k = 0; k < n; k++) {
            struct enq_job *job = &enq->jobs[sent[k]];
            redisReply *reply = ctl_redis_reply(r);
            bool known;

            if (!reply)
                return false;
            if (ctl_redis_reply_is_error(r, reply, "EXISTS")) {
                freeReplyObject(reply);
                return false;
            }
            known = reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
            freeReplyObject(reply);
            if (known && job_reject(enq, job)) {
                where(enq, job);
                fprintf(stderr,
                        "job_id %s is already known under prefix %s: as a duplicate it "
                        "would not count in batch %s\n",
                        ctl_idset_get(enq->ids, job->id), ctl_redis_prefix(r), enq->batch);
            }
        }
    }
    return true;
}

/* "nothing enqueued" when bad jobs are not to be skipped; the exit status, or -1 to go on */
static int verdict(struct enqueue *enq)
{
    if (enq->nbad > REPORT_MAX && !enq->more_said) {
        fprintf(stderr, "... and %zu more bad jobs\n", enq->nbad - REPORT_MAX);
        enq->more_said = true;
    }
    if (enq->nbad > 0 && !enq->skip_invalid && !enq->jsonl) {
        fprintf(stderr, "datamartctl: %s: nothing enqueued\n", enq->name);
        return CTL_EXIT_FAILED;
    }
    if (enq->nbad > 0 && !enq->skip_invalid) {
        fprintf(stderr,
                "datamartctl: %zu of %zu jobs are bad; nothing enqueued (--skip-invalid enqueues "
                "the rest)\n",
                enq->nbad, enq->njobs);
        return CTL_EXIT_FAILED;
    }
    if (enq->njobs == enq->nbad) {
        fprintf(stderr, "datamartctl: %s: no job to enqueue\n", enq->name);
        return CTL_EXIT_FAILED;
    }
    return -1;
}

/* HSETNX total before any XADD, so the batch can finish; an existing batch is refused */
static int batch_create(struct enqueue *enq, struct ctl_redis *r)
{
    char key[CTL_KEY_MAX], total[24];
    redisReply *reply;
    bool created;

    ctl_redis_key(r, key, "batch", enq->batch);
    snprintf(total, sizeof(total), "%zu", enq->njobs - enq->nbad);
    reply = ctl_redis_command(r, "HSETNX %s total %s", key, total);
    if (!reply)
        return CTL_EXIT_REDIS;
    created = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    freeReplyObject(reply);
    if (!created) {
        fprintf(stderr,
                "datamartctl: batch %s already exists under prefix %s; nothing enqueued (use a "
                "new batch id)\n",
                enq->batch, ctl_redis_prefix(r));
        return CTL_EXIT_FAILED;
    }
    return -1;
}

static bool xadd_append(struct enqueue *enq, struct ctl_redis *r, const char *jobs_key,
                        const struct enq_job *job)
{
    const char *argv[FIELD_MAX];
    size_t lens[FIELD_MAX];
    int argc = 0;

#define ARG(s, n) (argv[argc] = (s), lens[argc++] = (n))
#define FIELD(name, value) (ARG(name, strlen(name)), ARG(value, strlen(value)))
    ARG("XADD", 4);
    ARG(jobs_key, strlen(jobs_key));
    ARG("*", 1);
    if (job->has_id)
        FIELD("job_id", ctl_idset_get(enq->ids, job->id));
    if (enq->tenant)
        FIELD("tenant", enq->tenant);
    if (enq->batch)
        FIELD("batch", enq->batch);
    if (enq->reply_to)
        FIELD("reply_to", enq->reply_to);
    ARG("payload", 7);
    ARG(enq->data + job->off, job->len);
#undef FIELD
#undef ARG
    return ctl_redis_append_argv(r, argc, argv, lens);
}

static void progress(size_t done, size_t total)
{
    struct strbuf sb;

    strbuf_init(&sb);
    strbuf_puts(&sb, "\renqueue ");
    ctl_progress_bar(&sb, done, total);
    if (!sb.failed)
        fputs(sb.data, stderr);
    strbuf_release(&sb);
}

/* after a partial failure the batch's total is too high for it ever to finish: say how to fix it */
static void batch_mismatch(const struct enqueue *enq, const struct ctl_redis *r, size_t done)
{
    if (enq->batch)
        fprintf(stderr,
                "datamartctl: batch %s expects %zu jobs; to finish it with the %zu "
                "enqueued: HSET %s:batch:%s total %zu\n",
                enq->batch, enq->njobs - enq->nbad, done, ctl_redis_prefix(r), enq->batch, done);
}

/* XADD the good jobs in chunks, printing each job's id (or nothing with --batch) */
static int xadd_all(struct enqueue *enq, struct ctl_redis *r)
{
    char jobs_key[CTL_KEY_MAX];
    size_t total = enq->njobs - enq->nbad, done = 0, failed = 0, i = 0;
    bool tty = isatty(STDERR_FILENO);

    ctl_redis_key(r, jobs_key, "jobs", NULL);
    while (i < enq->njobs) {
        size_t sent[CHUNK], n = 0, bytes = 0;

        for (; i < enq->njobs && n < CHUNK && bytes < CHUNK_BYTES; i++) {
            if (enq->jobs[i].bad)
                continue;
            if (!xadd_append(enq, r, jobs_key, &enq->jobs[i]))
                return CTL_EXIT_USAGE;
            bytes += enq->jobs[i].len;
            sent[n++] = i;
        }
        for (size_t k = 0; k < n; k++) {
            const struct enq_job *job = &enq->jobs[sent[k]];
            redisReply *reply = ctl_redis_reply(r);

            if (!reply) {
                fprintf(stderr, "datamartctl: %zu of %zu jobs were enqueued before the failure\n",
                        done, total);
                batch_mismatch(enq, r, done);
                return CTL_EXIT_REDIS;
            }
            if (reply->type == REDIS_REPLY_STRING) {
                done++;
                if (!enq->batch)
                    printf("%s\n", job->has_id ? ctl_idset_get(enq->ids, job->id) : reply->str);
            } else if (failed++ == 0) {
                where(enq, job);
                (void)ctl_redis_reply_is_error(r, reply, "XADD");
            }
            freeReplyObject(reply);
        }
        if (tty)
            progress(done, total);
    }
    if (tty)
        fputs("\n", stderr);
    if (enq->batch && done > 0)
        printf("%s\n", enq->batch);
    if (failed > 0) {
        fprintf(stderr, "datamartctl: %zu of %zu jobs were not enqueued\n", failed, total);
        batch_mismatch(enq, r, done);
        return CTL_EXIT_REDIS;
    }
    if (enq->nbad > 0)
        fprintf(stderr, "datamartctl: skipped %zu bad jobs, enqueued %zu\n", enq->nbad, done);
    return CTL_EXIT_OK;
}

static int options_parse(struct enqueue *enq, int argc, char **argv, const char **path)
{
    enum {
        OPT_JSONL = 256,
        OPT_JOB_ID,
        OPT_JOB_ID_FIELD,
        OPT_TENANT,
        OPT_BATCH,
        OPT_REPLY_TO,
        OPT_SKIP_INVALID,
        OPT_NO_VALIDATE
    };
    static const struct option options[] = {
        {"jsonl", no_argument, NULL, OPT_JSONL},
        {"job-id", required_argument, NULL, OPT_JOB_ID},
        {"job-id-field", required_argument, NULL, OPT_JOB_ID_FIELD},
        {"tenant", required_argument, NULL, OPT_TENANT},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"reply-to", required_argument, NULL, OPT_REPLY_TO},
        {"skip-invalid", no_argument, NULL, OPT_SKIP_INVALID},
        {"no-validate", no_argument, NULL, OPT_NO_VALIDATE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *bad = NULL;
    int opt;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_JSONL:
            enq->jsonl = true;
            break;
        case OPT_JOB_ID:
            enq->job_id = optarg;
            if (!job_id_valid(optarg, strlen(optarg)))
                bad = "--job-id wants [A-Za-z0-9._:-]{1,128}";
            break;
        case OPT_JOB_ID_FIELD:
            enq->job_id_field = optarg;
            if (optarg[0] == '\0')
                bad = "--job-id-field wants a field name";
            break;
        case OPT_TENANT:
            enq->tenant = optarg;
            if (optarg[0] == '\0' || strlen(optarg) > JOB_TENANT_MAX)
                bad = "--tenant wants 1 to " DM_XSTR(JOB_TENANT_MAX) " bytes";
            break;
        case OPT_BATCH:
            enq->batch = optarg;
            if (!job_id_valid(optarg, strlen(optarg)))
                bad = "--batch wants [A-Za-z0-9._:-]{1,128}";
            break;
        case OPT_REPLY_TO:
            enq->reply_to = optarg;
            if (!job_id_valid(optarg, strlen(optarg)))
                bad = "--reply-to wants [A-Za-z0-9._:-]{1,128}";
            break;
        case OPT_SKIP_INVALID:
            enq->skip_invalid = true;
            break;
        case OPT_NO_VALIDATE:
            enq->no_validate = true;
            break;
        case 'h':
            usage(stdout);
            return CTL_EXIT_OK;
        default:
            usage(stderr);
            return CTL_EXIT_USAGE;
        }
    }
    if (enq->job_id && enq->job_id_field)
        bad = "--job-id and --job-id-field exclude each other";
    if (argc - optind > 1)
        bad = "one input at most";
    if (bad) {
        fprintf(stderr, "datamartctl enqueue: %s\n", bad);
        return CTL_EXIT_USAGE;
    }
    *path = optind < argc ? argv[optind] : "-";
    return -1;
}

/* read, split and check the input; the exit status, or -1 to go on */
static int load(struct enqueue *enq, const char *path, struct ctl_input *in)
{
    size_t len;

    if (!ctl_input_read(path, INPUT_MAX + 1, in, &len)) {
        fprintf(stderr, "datamartctl: %s: %s\n", enq->name, strerror(errno));
        return CTL_EXIT_USAGE;
    }
    if (len > INPUT_MAX) {
        fprintf(stderr, "datamartctl: %s: more than %lu bytes; split it\n", enq->name, INPUT_MAX);
        return CTL_EXIT_USAGE;
    }
    enq->data = in->data ? in->data : "";
    enq->jsonl = enq->jsonl || looks_like_jsonl(enq->data, len);
    if (!split(enq, len) || !(enq->ids = ctl_idset_create()) || !check_jobs(enq)) {
        fputs("datamartctl: out of memory\n", stderr);
        return CTL_EXIT_USAGE;
    }
    if (enq->job_id && enq->njobs > 1) {
        fprintf(stderr,
                "datamartctl enqueue: --job-id names one job, the input has %zu (see "
                "--job-id-field)\n",
                enq->njobs);
        return CTL_EXIT_USAGE;
    }
    return verdict(enq);
}

int ctl_enqueue_run(struct ctl *ctl, int argc, char **argv)
{
    struct enqueue enq = {.max_bytes = ctl->cfg->max_payload_bytes};
    struct ctl_input in = {0};
    struct ctl_redis *r = NULL;
    const char *path;
    int status = options_parse(&enq, argc, argv, &path);

    if (status >= 0)
        return status;
    if (!(enq.name = ctl_input_display_name(path))) {
        fputs("datamartctl: out of memory\n", stderr);
        return CTL_EXIT_USAGE;
    }
    status = load(&enq, path, &in);
    if (status >= 0)
        goto out;
    if (!(r = ctl_redis_connect(ctl))) {
        status = CTL_EXIT_REDIS;
        goto out;
    }
    if (enq.batch && (enq.job_id || enq.job_id_field)) {
        if (!check_known_ids(&enq, r)) {
            status = CTL_EXIT_REDIS;
            goto out;
        }
        if ((status = verdict(&enq)) >= 0)
            goto out;
    }
    if (enq.batch && (status = batch_create(&enq, r)) >= 0)
        goto out;
    status = xadd_all(&enq, r);
out:
    ctl_redis_free(r);
    ctl_idset_free(enq.ids);
    free(enq.jobs);
    free(enq.id_lines);
    free(enq.name);
    ctl_input_release(&in);
    return status;
}
