/* Field/value arrays as Redis returns them (see ctl_fields.h). */
#include "ctl_fields.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "strbuf.h"

static bool is_text(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

const struct redisReply *ctl_fields_get(const struct redisReply *pairs, const char *name)
{
    size_t n = strlen(name);

    if (!pairs || pairs->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < pairs->elements; i += 2) {
        const redisReply *k = pairs->element[i];

        if (is_text(k) && k->len == n && memcmp(k->str, name, n) == 0)
            return pairs->element[i + 1];
    }
    return NULL;
}

const char *ctl_fields_str(const struct redisReply *pairs, const char *name)
{
    const redisReply *v = ctl_fields_get(pairs, name);

    return v && is_text(v) ? v->str : NULL;
}

bool ctl_fields_ll(const struct redisReply *pairs, const char *name, long long *out)
{
    const redisReply *v = ctl_fields_get(pairs, name);
    char *end;

    if (!v)
        return false;
    if (v->type == REDIS_REPLY_INTEGER) {
        *out = v->integer;
        return true;
    }
    if (!is_text(v) || v->len == 0)
        return false;
    errno = 0;
    *out = strtoll(v->str, &end, 10);
    return errno == 0 && end == v->str + v->len;
}

void ctl_fields_json(struct strbuf *sb, const struct redisReply *pairs, const char *lead_name,
                     const char *lead_value)
{
    bool first = true;

    strbuf_puts(sb, "{");
    if (lead_name && !ctl_fields_get(pairs, lead_name)) {
        strbuf_json_string(sb, lead_name, strlen(lead_name));
        strbuf_puts(sb, ":");
        strbuf_json_string(sb, lead_value, strlen(lead_value));
        first = false;
    }
    for (size_t i = 0; pairs && pairs->type == REDIS_REPLY_ARRAY && i + 1 < pairs->elements;
         i += 2) {
        const redisReply *k = pairs->element[i], *v = pairs->element[i + 1];

        if (!is_text(k) || !is_text(v))
            continue;
        if (!first)
            strbuf_puts(sb, ",");
        first = false;
        strbuf_json_string(sb, k->str, k->len);
        strbuf_puts(sb, ":");
        strbuf_json_string(sb, v->str, v->len);
    }
    strbuf_puts(sb, "}");
}
