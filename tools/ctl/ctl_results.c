/* Following P:results with XREAD BLOCK (see ctl_results.h). */
#include "ctl_results.h"

#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "ctl_redis.h"

/* the socket waits this much longer than the server-side block */
#define READ_GRACE_MS 10000

static bool entry_id_copy(char *id, const redisReply *entry)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING || entry->element[0]->len >= CTL_ENTRY_ID_MAX)
        return false;
    memcpy(id, entry->element[0]->str, entry->element[0]->len + 1);
    return true;
}

bool ctl_results_last_id(struct ctl_redis *r, char *id)
{
    char key[CTL_KEY_MAX];
    redisReply *reply;
    bool ok = true;

    ctl_redis_key(r, key, "results", NULL);
    reply = ctl_redis_command(r, "XREVRANGE %s + - COUNT 1", key);
    if (!reply)
        return false;
    strcpy(id, "0-0");
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1)
        ok = entry_id_copy(id, reply->element[0]);
    if (!ok)
        fprintf(stderr, "datamartctl: Redis at %s: unexpected XREVRANGE reply\n",
                ctl_redis_address(r));
    freeReplyObject(reply);
    return ok;
}

struct redisReply *ctl_results_read(struct ctl_redis *r, char *after_id, long long block_ms,
                                    size_t count, const struct redisReply **entries,
                                    bool *timed_out)
{
    char key[CTL_KEY_MAX], block[24], n[24];
    redisReply *reply;
    const redisReply *list;

    *timed_out = false;
    ctl_redis_key(r, key, "results", NULL);
    snprintf(block, sizeof(block), "%lld", block_ms);
    snprintf(n, sizeof(n), "%zu", count);
    if (!ctl_redis_set_timeout_ms(r, block_ms > 0 ? block_ms + READ_GRACE_MS : 0))
        return NULL;
    reply = ctl_redis_command(r, "XREAD COUNT %s BLOCK %s STREAMS %s %s", n, block, key, after_id);
    if (!reply)
        return NULL;
    if (reply->type == REDIS_REPLY_NIL) {
        freeReplyObject(reply);
        *timed_out = true;
        return NULL;
    }
    /* [[key, [[id, fields], ...]]] */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1 ||
        reply->element[0]->type != REDIS_REPLY_ARRAY || reply->element[0]->elements != 2 ||
        reply->element[0]->element[1]->type != REDIS_REPLY_ARRAY ||
        reply->element[0]->element[1]->elements == 0)
        goto unexpected;
    list = reply->element[0]->element[1];
    for (size_t i = 0; i < list->elements; i++)
        if (list->element[i]->type != REDIS_REPLY_ARRAY || list->element[i]->elements != 2 ||
            list->element[i]->element[1]->type != REDIS_REPLY_ARRAY)
            goto unexpected;
    if (!entry_id_copy(after_id, list->element[list->elements - 1]))
        goto unexpected;
    *entries = list;
    return reply;
unexpected:
    fprintf(stderr, "datamartctl: Redis at %s: unexpected XREAD reply\n", ctl_redis_address(r));
    freeReplyObject(reply);
    return NULL;
}
