#include "outcome.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"

static const char *const status_names[] = {"created", "failed", "dead"};
static const char *const source_names[] = {"", "local", "api"};

void outcome_init(struct outcome *o)
{
    memset(o, 0, sizeof(*o));
}

void outcome_release(struct outcome *o)
{
    free(o->errors_json);
    o->errors_json = NULL;
}

const char *outcome_status_name(enum outcome_status status)
{
    return status_names[status];
}

bool outcome_status_parse(const char *s, enum outcome_status *out)
{
    for (size_t i = 0; i < DM_ARRAY_LEN(status_names); i++) {
        if (strcmp(s, status_names[i]) == 0) {
            *out = (enum outcome_status)i;
            return true;
        }
    }
    return false;
}

static void copy_bounded(char *dst, size_t cap, const char *value, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, value, len);
    dst[len] = '\0';
}

void outcome_set_invalid_job(struct outcome *o, const char *message)
{
    o->status = OUTCOME_FAILED;
    o->source = OUTCOME_SOURCE_LOCAL;
    snprintf(o->error_code, sizeof(o->error_code), "INVALID_JOB");
    snprintf(o->error_message, sizeof(o->error_message), "%s", message);
}

void outcome_set_invalid_body(struct outcome *o, const char *path, const char *message,
                              char *errors_json)
{
    o->status = OUTCOME_FAILED;
    o->source = OUTCOME_SOURCE_LOCAL;
    snprintf(o->error_code, sizeof(o->error_code), "INVALID_REQUEST_BODY");
    snprintf(o->error_message, sizeof(o->error_message), "%s", message);
    snprintf(o->error_path, sizeof(o->error_path), "%s", path);
    free(o->errors_json);
    o->errors_json = errors_json;
}

void outcome_set_api(struct outcome *o, enum outcome_status status,
                     const struct api_classification *c)
{
    o->status = status;
    o->has_http_status = true;
    o->http_status = c->http_status;
    if (status == OUTCOME_CREATED) {
        copy_bounded(o->datamart_id, sizeof(o->datamart_id), c->datamart_id,
                     strnlen(c->datamart_id, sizeof(o->datamart_id)));
        return;
    }
    o->source = OUTCOME_SOURCE_API;
    snprintf(o->error_code, sizeof(o->error_code), "%s", c->code);
    snprintf(o->error_message, sizeof(o->error_message), "%s", c->message);
}

static long long parse_number(const char *value, size_t len)
{
    char tmp[24];

    copy_bounded(tmp, sizeof(tmp), value, len);
    return strtoll(tmp, NULL, 10);
}

bool outcome_load_field(struct outcome *o, const char *name, const char *value, size_t len)
{
    char tmp[16];

    if (strcmp(name, "status") == 0) {
        copy_bounded(tmp, sizeof(tmp), value, len);
        if (!outcome_status_parse(tmp, &o->status))
            o->status = OUTCOME_FAILED;
    } else if (strcmp(name, "error_source") == 0) {
        o->source = (len == 5 && memcmp(value, "local", 5) == 0) ? OUTCOME_SOURCE_LOCAL
                                                                 : OUTCOME_SOURCE_API;
    } else if (strcmp(name, "datamart_id") == 0) {
        copy_bounded(o->datamart_id, sizeof(o->datamart_id), value, len);
    } else if (strcmp(name, "recovered") == 0) {
        o->recovered = len == 1 && value[0] == '1';
    } else if (strcmp(name, "error_code") == 0) {
        copy_bounded(o->error_code, sizeof(o->error_code), value, len);
    } else if (strcmp(name, "error_message") == 0) {
        copy_bounded(o->error_message, sizeof(o->error_message), value, len);
    } else if (strcmp(name, "error_path") == 0) {
        copy_bounded(o->error_path, sizeof(o->error_path), value, len);
    } else if (strcmp(name, "errors") == 0) {
        free(o->errors_json);
        o->errors_json = malloc(len + 1);
        if (o->errors_json == NULL)
            return false;
        memcpy(o->errors_json, value, len);
        o->errors_json[len] = '\0';
    } else if (strcmp(name, "http_status") == 0) {
        o->has_http_status = true;
        o->http_status = (long)parse_number(value, len);
    } else if (strcmp(name, "attempts") == 0) {
        o->attempts = (int)parse_number(value, len);
    } else if (strcmp(name, "finished_ms") == 0) {
        o->finished_ms = parse_number(value, len);
    }
    return true;
}

static void redact_in(char *s, size_t cap, const char *secret)
{
    static const char mask[] = "[redacted]";
    size_t slen = strlen(secret);
    char *hit;

    while ((hit = strstr(s, secret)) != NULL) {
        size_t tail = strlen(hit + slen);

        if ((size_t)(hit - s) + sizeof(mask) - 1 + tail + 1 > cap)
            tail = cap - (size_t)(hit - s) - sizeof(mask); /* truncate rather than overflow */
        memmove(hit + sizeof(mask) - 1, hit + slen, tail);
        hit[sizeof(mask) - 1 + tail] = '\0';
        memcpy(hit, mask, sizeof(mask) - 1);
    }
}

void outcome_redact(struct outcome *o, const char *secret)
{
    if (secret == NULL || strlen(secret) < 4)
        return; /* a tiny "secret" would shred ordinary words */
    redact_in(o->error_message, sizeof(o->error_message), secret);
    redact_in(o->datamart_id, sizeof(o->datamart_id), secret);
}

static void add(struct outcome_render *r, const char *name, const char *value, size_t len)
{
    r->fields[r->count].name = name;
    r->fields[r->count].value = value;
    r->fields[r->count].len = len;
    r->count++;
}

static void add_str(struct outcome_render *r, const char *name, const char *value)
{
    add(r, name, value, strlen(value));
}

/* Decimal text of v, NUL-terminated, written backwards into the slot (snprintf costs more than
 * the rest of the rendering together). */
static void add_num(struct outcome_render *r, const char *name, long long v, int slot)
{
    add_str(r, name, decimal_format(r->numbers[slot], v));
}

void outcome_render_fields(const struct outcome *o, const struct job *job, struct outcome_render *r)
{
    r->count = 0;
    add_str(r, "event", "job");
    add_str(r, "job_id", job->job_id);
    add_str(r, "status", status_names[o->status]);
    if (o->status == OUTCOME_CREATED) {
        add_str(r, "datamart_id", o->datamart_id);
        if (o->recovered)
            add_str(r, "recovered", "1");
    } else {
        add_str(r, "error_code", o->error_code);
        add_str(r, "error_message", o->error_message);
        add_str(r, "error_source", source_names[o->source]);
        if (o->error_path[0] != '\0')
            add_str(r, "error_path", o->error_path);
        if (o->errors_json != NULL)
            add_str(r, "errors", o->errors_json);
    }
    if (o->has_http_status)
        add_num(r, "http_status", o->http_status, 0);
    add_num(r, "attempts", o->attempts, 1);
    if (job->tenant_len > 0)
        add(r, "tenant", job->tenant, job->tenant_len);
    if (job->batch[0] != '\0')
        add_str(r, "batch", job->batch);
    if (o->duplicate)
        add_str(r, "duplicate", "1");
    add_num(r, "finished_ms", o->finished_ms, 2);
}

static bool field_is_number(const char *name)
{
    return strcmp(name, "http_status") == 0 || strcmp(name, "attempts") == 0 ||
           strcmp(name, "finished_ms") == 0 || strcmp(name, "recovered") == 0 ||
           strcmp(name, "duplicate") == 0;
}

void outcome_render_json(const struct outcome *o, const struct job *job, struct strbuf *sb)
{
    struct outcome_render r;

    outcome_render_fields(o, job, &r);
    strbuf_append(sb, "{", 1);
    for (size_t i = 0; i < r.count; i++) {
        const struct outcome_field *f = &r.fields[i];

        if (i > 0)
            strbuf_append(sb, ",", 1);
        strbuf_json_string(sb, f->name, strlen(f->name));
        strbuf_append(sb, ":", 1);
        /* errors is already a JSON array; numbers stay numbers */
        if (field_is_number(f->name) || strcmp(f->name, "errors") == 0)
            strbuf_append(sb, f->value, f->len);
        else
            strbuf_json_string(sb, f->value, f->len);
    }
    strbuf_append(sb, "}", 1);
}
