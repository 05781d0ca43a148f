/* redis_reply: hiredis' redisReplyObjectFunctions over loop_heap, with the same objects and the
 * same attach-to-parent contract as hiredis' own (hiredis.c, createStringObject and friends). */
#include "redis_reply.h"

#include <stdint.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "loop_heap.h"

/* A new object of type with extra bytes after it, hung into its parent array if it has one. */
static redisReply *reply_new(const redisReadTask *task, int type, size_t extra)
{
    redisReply *r;

    if (extra > SIZE_MAX - sizeof(*r))
        return NULL;
    r = loop_heap_malloc(sizeof(*r) + extra);
    if (r == NULL)
        return NULL;
    memset(r, 0, sizeof(*r));
    r->type = type;
    if (task->parent != NULL) {
        redisReply *parent = task->parent->obj;

        parent->element[task->idx] = r;
    }
    return r;
}

static void *reply_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r;

    if (len == SIZE_MAX)
        return NULL;
    r = reply_new(task, task->type, len + 1);
    if (r == NULL)
        return NULL;
    r->str = (char *)(r + 1);
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static void *reply_array(const redisReadTask *task, int elements)
{
    size_t n = elements > 0 ? (size_t)elements : 0;
    redisReply *r;

    if (n > (SIZE_MAX - sizeof(*r)) / sizeof(redisReply *))
        return NULL;
    r = reply_new(task, REDIS_REPLY_ARRAY, n * sizeof(redisReply *));
    if (r == NULL)
        return NULL;
    /* elements not read yet stay NULL, so a reply cut short frees cleanly */
    if (n > 0) {
        r->element = (redisReply **)(r + 1);
        memset(r->element, 0, n * sizeof(redisReply *));
    }
    r->elements = n;
    return r;
}

static void *reply_integer(const redisReadTask *task, long long value)
{
    redisReply *r = reply_new(task, REDIS_REPLY_INTEGER, 0);

    if (r != NULL)
        r->integer = value;
    return r;
}

static void *reply_nil(const redisReadTask *task)
{
    return reply_new(task, REDIS_REPLY_NIL, 0);
}

static void reply_free(void *object)
{
    redisReply *r = object;

    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            reply_free(r->element[i]);
    loop_heap_free(r);
}

static redisReplyObjectFunctions reply_functions = {
    reply_string, reply_array, reply_integer, reply_nil, reply_free,
};

void redis_reply_attach(redisReader *reader)
{
    reader->fn = &reply_functions;
}
