#include "mock_payload.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "strbuf.h"

/* cJSON allocates every value of a tree on its own, and malloc/free were a third of the mock's
 * CPU. A request's tree lives only while process() checks it, one at a time, so its nodes come
 * from one reused arena; what does not fit, and every other cJSON use, goes to malloc. */
#define ARENA_BYTES (64 * 1024)

static max_align_t arena[ARENA_BYTES / sizeof(max_align_t)];
static size_t arena_used;
static bool arena_open; /* a payload is being parsed into it */

static bool in_arena(const void *p)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)arena;

    return a >= lo && a < lo + sizeof(arena);
}

static void *arena_malloc(size_t n)
{
    size_t need = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);

    if (arena_open && n > 0 && need <= sizeof(arena) - arena_used) {
        void *p = (unsigned char *)arena + arena_used;

        arena_used += need;
        return p;
    }
    return malloc(n);
}

static void arena_free(void *p)
{
    if (!in_arena(p))
        free(p);
}

void mock_payload_init(void)
{
    cJSON_Hooks hooks = {.malloc_fn = arena_malloc, .free_fn = arena_free};

    cJSON_InitHooks(&hooks);
}

/* JSON text must be UTF-8; this also keeps every stored body printable as a JSON string */
static bool utf8_valid(const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;

    while (i < len) {
        size_t n = p[i] < 0x80 ? 1 : utf8_sequence_len(p + i, len - i);

        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* the string value of key when it is a non-empty string, else NULL */
static const char *nonempty_string(const cJSON *object, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);

    return cJSON_IsString(item) && item->valuestring[0] != '\0' ? item->valuestring : NULL;
}

static bool check_tables(const cJSON *tables, char *msg, size_t msglen)
{
    const cJSON *table;
    int t = 0;

    cJSON_ArrayForEach(table, tables)
    {
        const cJSON *columns = cJSON_GetObjectItemCaseSensitive(table, "columns");
        const cJSON *column;
        int c = 0;

        if (!cJSON_IsObject(table) || nonempty_string(table, "name") == NULL) {
            snprintf(msg, msglen, "Bad table/column structure: tableList[%d] needs a name", t);
            return false;
        }
        if (!cJSON_IsArray(columns) || cJSON_GetArraySize(columns) == 0) {
            snprintf(msg, msglen,
                     "Bad table/column structure: tableList[%d].columns must be a non-empty list",
                     t);
            return false;
        }
        cJSON_ArrayForEach(column, columns)
        {
            if (!cJSON_IsObject(column) || nonempty_string(column, "name") == NULL) {
                snprintf(msg, msglen,
                         "Bad table/column structure: tableList[%d].columns[%d] needs a name", t,
                         c);
                return false;
            }
            c++;
        }
        t++;
    }
    return true;
}

bool mock_payload_parse(struct mock_payload *payload, const char *body, size_t len, char *msg,
                        size_t msglen)
{
    const char *end = NULL;
    const cJSON *tables;
    char missing[64] = "";

    memset(payload, 0, sizeof(*payload));
    if (utf8_valid(body, len)) {
        arena_used = 0; /* the last payload was released before this one came */
        arena_open = true;
        payload->root = cJSON_ParseWithLengthOpts(body, len, &end, false);
        arena_open = false;
    }
    /* cJSON stops at the end of the value: anything but whitespace after it is garbage */
    while (payload->root != NULL && end < body + len && strchr(" \t\r\n", *end) != NULL)
        end++;
    if (payload->root == NULL || end != body + len) {
        snprintf(msg, msglen, "Request body is not valid JSON");
        goto fail;
    }
    if (!cJSON_IsObject(payload->root)) {
        snprintf(msg, msglen, "Request body must be a JSON object");
        goto fail;
    }

    payload->name = nonempty_string(payload->root, "name");
    payload->datasource = nonempty_string(payload->root, "datasourceName");
    tables = cJSON_GetObjectItemCaseSensitive(payload->root, "tableList");
    if (payload->name == NULL)
        strcat(missing, ", name");
    if (payload->datasource == NULL)
        strcat(missing, ", datasourceName");
    if (!cJSON_IsArray(tables))
        strcat(missing, ", tableList");
    if (missing[0] != '\0') {
        snprintf(msg, msglen, "Missing required fields: %s", missing + 2);
        goto fail;
    }
    if (cJSON_GetArraySize(tables) == 0) {
        snprintf(msg, msglen, "Empty table list");
        goto fail;
    }
    if (!check_tables(tables, msg, msglen))
        goto fail;
    return true;

fail:
    mock_payload_release(payload);
    return false;
}

void mock_payload_release(struct mock_payload *payload)
{
    cJSON_Delete(payload->root);
    memset(payload, 0, sizeof(*payload));
}
