#include "job.h"

#include <stdarg.h>
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

/* the first problem wins: it is the one the outcome reports */
static void envelope_fail(struct job *job, const char *fmt, ...) DM_PRINTF(2, 3);

static void envelope_fail(struct job *job, const char *fmt, ...)
{
    va_list ap;

    if (job->envelope_error[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(job->envelope_error, sizeof(job->envelope_error), fmt, ap);
    va_end(ap);
}

static void copy_id_field(struct job *job, char *dst, const char *name, const struct job_field *v)
{
    if (!job_id_valid(v->ptr, v->len)) {
        envelope_fail(job, "%s must match [A-Za-z0-9._:-]{1,128} (got %zu bytes)", name, v->len);
        return;
    }
    memcpy(dst, v->ptr, v->len);
    dst[v->len] = '\0';
}

struct job *job_create(const char *entry_id, size_t entry_id_len, const struct job_field *fields,
                       size_t nfields, size_t max_payload_bytes)
{
    const struct job_field *seen[DM_ARRAY_LEN(field_names)] = {0};
    struct job *job;

    if (!entry_id_valid(entry_id, entry_id_len))
        return NULL;
    job = calloc(1, sizeof(*job));
    if (job == NULL)
        return NULL;
    memcpy(job->entry_id, entry_id, entry_id_len);
    memcpy(job->job_id, entry_id, entry_id_len);

    for (size_t i = 0; i + 1 < 2 * nfields; i += 2) {
        int which = field_lookup(&fields[i]);

        if (which < 0)
            continue; /* unknown fields are the producer's own business */
        if (seen[which] != NULL)
            envelope_fail(job, "field %s given more than once", field_names[which]);
        else
            seen[which] = &fields[i + 1];
    }

    if (seen[FIELD_JOB_ID] != NULL)
        copy_id_field(job, job->job_id, "job_id", seen[FIELD_JOB_ID]);
    if (seen[FIELD_BATCH] != NULL)
        copy_id_field(job, job->batch, "batch", seen[FIELD_BATCH]);
    if (seen[FIELD_REPLY_TO] != NULL)
        copy_id_field(job, job->reply_to, "reply_to", seen[FIELD_REPLY_TO]);
    if (seen[FIELD_TENANT] != NULL) {
        const struct job_field *t = seen[FIELD_TENANT];

        if (t->len > JOB_TENANT_MAX) {
            envelope_fail(job, "tenant longer than %d bytes", JOB_TENANT_MAX);
        } else {
            memcpy(job->tenant, t->ptr, t->len);
            job->tenant_len = t->len;
        }
    }

    if (seen[FIELD_PAYLOAD] == NULL) {
        envelope_fail(job, "no payload field");
    } else if (seen[FIELD_PAYLOAD]->len > max_payload_bytes) {
        envelope_fail(job, "payload of %zu bytes is over max_payload_bytes (%zu)",
                      seen[FIELD_PAYLOAD]->len, max_payload_bytes);
    } else {
        const struct job_field *p = seen[FIELD_PAYLOAD];

        job->payload = malloc(p->len + 1);
        if (job->payload == NULL) {
            free(job);
            return NULL;
        }
        memcpy(job->payload, p->ptr, p->len);
        job->payload[p->len] = '\0';
        job->payload_len = p->len;
    }
    return job;
}

void job_free(struct job *job)
{
    if (job == NULL)
        return;
    free(job->payload);
    free(job);
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
