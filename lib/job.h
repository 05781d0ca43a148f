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

#define JOB_ID_MAX 128        /* job_id, batch and reply_to: [A-Za-z0-9._:-]{1,128} */
#define JOB_TENANT_MAX 256    /* tenant is opaque but bounded */
#define JOB_ENTRY_ID_MAX 48   /* "<ms>-<seq>" of a stream entry */
#define JOB_ERROR_MAX 256

struct job {
    char entry_id[JOB_ENTRY_ID_MAX + 1];
    char job_id[JOB_ID_MAX + 1]; /* the entry id when the producer gave none (or a broken one) */
    char tenant[JOB_TENANT_MAX + 1];
    size_t tenant_len;           /* tenant may hold any byte; 0 = none */
    char batch[JOB_ID_MAX + 1];  /* "" = none */
    char reply_to[JOB_ID_MAX + 1];
    char *payload;               /* exact bytes, NUL-terminated copy; NULL when absent */
    size_t payload_len;
    /* set when the envelope is broken: the job fails INVALID_JOB with this message */
    char envelope_error[JOB_ERROR_MAX];
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

/* The tenant with control and non-ASCII bytes escaped, for one-line logs; out has outlen bytes. */
void job_tenant_printable(const struct job *job, char *out, size_t outlen);

#endif
