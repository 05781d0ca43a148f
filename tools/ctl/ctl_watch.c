/*
 * datamartctl watch [--from ID] [--count N] [--json]: follow P:results, one line per outcome
 * event, with XREAD BLOCK from the stream's end (or after --from ID).
 */
#include <getopt.h>
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
#include "ctl_results.h"
#include "ctl_text.h"
#include "strbuf.h"

#define CHUNK 1000

/* "0", "<ms>" or "<ms>-<seq>" */
static bool entry_id_valid(const char *s)
{
    size_t ms = strspn(s, "0123456789"), seq;

    if (ms == 0 || ms > 20)
        return false;
    if (s[ms] == '\0')
        return true;
    seq = strspn(s + ms + 1, "0123456789");
    return s[ms] == '-' && seq > 0 && seq <= 20 && s[ms + 1 + seq] == '\0';
}

static void show(struct strbuf *sb, const redisReply *entry, bool json)
{
    const redisReply *fields = entry->element[1];
    long long finished;

    if (json) {
        ctl_outcome_json(sb, fields, entry->element[0]->str);
    } else {
        if (ctl_fields_ll(fields, "finished_ms", &finished))
            ctl_text_time(sb, finished);
        else
            strbuf_puts(sb, entry->element[0]->str);
        strbuf_puts(sb, " ");
        ctl_outcome_line(sb, fields);
    }
    strbuf_puts(sb, "\n");
}

static int follow(struct ctl_redis *r, char *after, unsigned long long count, bool json)
{
    unsigned long long seen = 0;
    struct strbuf sb;
    int status = CTL_EXIT_OK;

    strbuf_init(&sb);
    while (count == 0 || seen < count) {
        const redisReply *entries;
        redisReply *reply;
        bool expired;

        reply = ctl_results_read(r, after, 0, CHUNK, &entries, &expired);
        if (!reply) {
            status = CTL_EXIT_REDIS;
            break;
        }
        strbuf_reset(&sb);
        for (size_t i = 0; i < entries->elements && (count == 0 || seen < count); i++, seen++)
            show(&sb, entries->element[i], json);
        freeReplyObject(reply);
        if (!ctl_output_write(&sb, &status))
            break;
    }
    strbuf_release(&sb);
    return status;
}

int ctl_watch_run(struct ctl *ctl, int argc, char **argv)
{
    static const struct option options[] = {
        {"from", required_argument, NULL, 'f'},
        {"count", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *usage = "Usage: datamartctl watch [--from ID] [--count N] [--json]\n";
    char after[CTL_ENTRY_ID_MAX] = "";
    unsigned long long count = 0;
    struct ctl_redis *r;
    bool json = false;
    char *end;
    int opt, status;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == 'f' && entry_id_valid(optarg)) {
            snprintf(after, sizeof(after), "%s", optarg);
        } else if (opt == 'n' && optarg[0] >= '1' && optarg[0] <= '9' &&
                   (count = strtoull(optarg, &end, 10)) > 0 && *end == '\0') {
            continue;
        } else if (opt == 'j') {
            json = true;
        } else {
            if (opt == 'f')
                fputs("datamartctl watch: --from wants a stream id (0 for the beginning)\n",
                      stderr);
            if (opt == 'n')
                fputs("datamartctl watch: --count wants a positive number\n", stderr);
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
    if (ctl_redis_prefix_check(r) < 0 || (after[0] == '\0' && !ctl_results_last_id(r, after)))
        status = CTL_EXIT_REDIS;
    else
        status = follow(r, after, count, json);
    ctl_redis_free(r);
    return status;
}
