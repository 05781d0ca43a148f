#include "job.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum envelope_field { FIELD_PAYLOAD, FIELD_JOB_ID, FIELD_TENANT, FIELD_BATCH, FIELD_REPLY_TO };

static const char *const field_names[] = {"payload", "job_id", "tenant", "batch", "reply_to"};

bool job_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > JOB_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static bool entry_id_valid(const char *s, size_t len)
{
    size_t dash = 0, digits = 0;

    if (len == 0 || len > JOB_ENTRY_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '-' && dash == 0 && digits > 0) {
            dash = i;
            digits = 0;
        } else if (s[i] >= '0' && s[i] <= '9') {
            digits++;
        } else {
            return false;
        }
    }
    return dash > 0 && digits > 0;
}

static int field_lookup(const struct job_field *f)
{
    for (size_t i = 0; i < DM_ARRAY_LEN(field_names); i++) {
        if (f->len == strlen(field_names[i]) && memcmp(f->ptr, field_names[i], f->len) == 0)
            return (int)i;
    }
    return -1;
}

/* what a field the entry does not carry points at */
static const char none[] = "";

/* The envelope as read, before anything is copied. */
struct envelope {
    const struct job_field *kept[DM_ARRAY_LEN(field_names)]; /* the value of each field kept */
    char error[JOB_ERROR_MAX]; /* the first problem wins: it is the one the outcome reports */
};

static void envelope_fail(struct envelope *env, const char *fmt, ...) DM_PRINTF(2, 3);

static void envelope_fail(struct envelope *env, const char *fmt, ...)
{
    va_list ap;

    if (env->error[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(env->error, sizeof(env->error), fmt, ap);
    va_end(ap);
}

/* A broken id is dropped, so the job keeps the default (the entry id, or none). */
static void envelope_check_id(struct envelope *env, enum envelope_field which)
{
    const struct job_field *v = env->kept[which];

    if (v != NULL && !job_id_valid(v->ptr, v->len)) {
        envelope_fail(env, "%s must match [A-Za-z0-9._:-]{1,128} (got %zu bytes)",
                      field_names[which], v->len);
        env->kept[which] = NULL;
    }
}

static void envelope_read(struct envelope *env, const struct job_field *fields, size_t nfields,
                          size_t max_payload_bytes)
{
    const struct job_field *tenant, *payload;

    for (size_t i = 0; i + 1 < 2 * nfields; i += 2) {
        int which = field_lookup(&fields[i]);

        if (which < 0)
            continue; /* unknown fields are the producer's own business */
        if (env->kept[which] != NULL)
            envelope_fail(env, "field %s given more than once", field_names[which]);
        else
            env->kept[which] = &fields[i + 1];
    }

    envelope_check_id(env, FIELD_JOB_ID);
    envelope_check_id(env, FIELD_BATCH);
    envelope_check_id(env, FIELD_REPLY_TO);
    tenant = env->kept[FIELD_TENANT];
    if (tenant != NULL && tenant->len > JOB_TENANT_MAX) {
        envelope_fail(env, "tenant longer than %d bytes", JOB_TENANT_MAX);
        env->kept[FIELD_TENANT] = NULL;
    }
    payload = env->kept[FIELD_PAYLOAD];
    if (payload == NULL) {
        envelope_fail(env, "no payload field");
    } else if (payload->len > max_payload_bytes) {
        envelope_fail(env, "payload of %zu bytes is over max_payload_bytes (%zu)", payload->len,
                      max_payload_bytes);
        env->kept[FIELD_PAYLOAD] = NULL;
    }
}

/* Copy len bytes to *w as a NUL-terminated string, return it and move *w past it. */
static const char *pack(char **w, const char *s, size_t len)
{
    char *dst = *w;

    memcpy(dst, s, len);
    dst[len] = '\0';
    *w = dst + len + 1;
    return dst;
}

static const char *pack_field(char **w, const struct job_field *v, const char *absent)
{
    return v != NULL ? pack(w, v->ptr, v->len) : absent;
}

struct job *job_create(const char *entry_id, size_t entry_id_len, const struct job_field *fields,
                       size_t nfields, size_t max_payload_bytes)
{
    struct envelope env = {0};
    size_t size = sizeof(struct job) + entry_id_len + 1;
    struct job *job;
    char *w;

    if (!entry_id_valid(entry_id, entry_id_len))
        return NULL;
    envelope_read(&env, fields, nfields, max_payload_bytes);
    for (size_t i = 0; i < DM_ARRAY_LEN(env.kept); i++) {
        if (env.kept[i] == NULL)
            continue;
        if (env.kept[i]->len >= SIZE_MAX - size)
            return NULL;
        size += env.kept[i]->len + 1;
    }

    job = malloc(size);
    if (job == NULL)
        return NULL;
    w = (char *)(job + 1);
    job->entry_id = pack(&w, entry_id, entry_id_len);
    job->job_id = pack_field(&w, env.kept[FIELD_JOB_ID], job->entry_id);
    job->tenant = pack_field(&w, env.kept[FIELD_TENANT], none);
    job->tenant_len = env.kept[FIELD_TENANT] != NULL ? env.kept[FIELD_TENANT]->len : 0;
    job->batch = pack_field(&w, env.kept[FIELD_BATCH], none);
    job->reply_to = pack_field(&w, env.kept[FIELD_REPLY_TO], none);
    job->payload = pack_field(&w, env.kept[FIELD_PAYLOAD], NULL);
    job->payload_len = env.kept[FIELD_PAYLOAD] != NULL ? env.kept[FIELD_PAYLOAD]->len : 0;
    job->envelope_error = none;
    if (!job_set_envelope_error(job, "%s", env.error)) {
        job_free(job);
        return NULL;
    }
    return job;
}

void job_free(struct job *job)
{
    if (job == NULL)
        return;
    if (job->envelope_error != none)
        free((void *)job->envelope_error);
    free(job);
}

bool job_set_envelope_error(struct job *job, const char *fmt, ...)
{
    char message[JOB_ERROR_MAX];
    va_list ap;
    size_t len;
    char *copy;

    if (job->envelope_error[0] != '\0')
        return true;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    len = strlen(message);
    if (len == 0)
        return true; /* no reason given: nothing is broken */
    copy = malloc(len + 1);
    if (copy == NULL)
        return false;
    memcpy(copy, message, len + 1);
    job->envelope_error = copy;
    return true;
}

void job_tenant_printable(const struct job *job, char *out, size_t outlen)
{
    size_t o = 0;

    if (outlen == 0)
        return;
    for (size_t i = 0; i < job->tenant_len && o + 5 < outlen; i++) {
        unsigned char c = (unsigned char)job->tenant[i];

        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
    }
    out[o] = '\0';
}
