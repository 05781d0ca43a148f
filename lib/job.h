/*
 * A job: one entry of P:jobs (CONTRACT.md "A job"). Parsing the envelope is pure: the field/value
 * pairs of a stream entry in, a job or a reason it is broken out. The payload is kept as the exact
 * bytes received so it can be POSTed unchanged.
 */
#ifndef DATAMART_JOB_H
#define DATAMART_JOB_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"

#define JOB_ID_MAX 128      /* job_id, batch and reply_to: [A-Za-z0-9._:-]{1,128} */
#define JOB_TENANT_MAX 256  /* tenant is opaque but bounded */
#define JOB_ENTRY_ID_MAX 48 /* "<ms>-<seq>" of a stream entry */
#define JOB_ERROR_MAX 256   /* an envelope error message, NUL included */

/*
 * The struct and its strings are one allocation sized to what the entry carries (max_inflight jobs
 * are held at once); only a set envelope_error is allocated apart. Strings are NUL-terminated.
 */
struct job {
    const char *entry_id;
    const char *job_id; /* the entry id when the producer gave none (or a broken one) */
    const char *tenant; /* tenant_len bytes (any byte, NUL-terminated too); "" = none */
    size_t tenant_len;
    const char *batch;    /* "" = none */
    const char *reply_to; /* "" = none */
    const char *payload;  /* exact bytes, NUL-terminated copy; NULL when absent or too big */
    size_t payload_len;
    /* "" while the envelope is sound; else the job fails INVALID_JOB with this message */
    const char *envelope_error;
};

/* One field or value of a stream entry: bytes and length (Redis strings are binary). */
struct job_field {
    const char *ptr;
    size_t len;
};

/* true when s (len bytes) matches [A-Za-z0-9._:-]{1,128} */
bool job_id_valid(const char *s, size_t len);

/*
 * Build a job from an entry's id and its nfields field/value pairs (fields[2i], fields[2i+1]).
 * A broken envelope is not an error of this function: the job comes back with envelope_error set
 * and as much of its identity as could be trusted. Returns NULL only when out of memory or when
 * the entry id itself is not a stream id.
 */
struct job *job_create(const char *entry_id, size_t entry_id_len, const struct job_field *fields,
                       size_t nfields, size_t max_payload_bytes) DM_MUSTCHECK;
void job_free(struct job *job);

/* Mark the envelope broken for a reason found outside job_create(), unless it already is (the
 * first problem wins). false only when out of memory. */
bool job_set_envelope_error(struct job *job, const char *fmt, ...) DM_PRINTF(2, 3) DM_MUSTCHECK;

/* The tenant with control and non-ASCII bytes escaped, for one-line logs; out has outlen bytes. */
void job_tenant_printable(const struct job *job, char *out, size_t outlen);

#endif
