/*
 * A job's outcome (CONTRACT.md "An outcome"): built once, then rendered as the field/value pairs
 * written to P:job:<id> and P:results, and as the JSON pushed to P:reply:<name>.
 */
#ifndef DATAMART_OUTCOME_H
#define DATAMART_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>

#include "api_response.h"
#include "compiler.h"
#include "decimal.h"
#include "job.h"
#include "strbuf.h"

enum outcome_status {
    OUTCOME_CREATED = 0,
    OUTCOME_FAILED,
    OUTCOME_DEAD,
};

enum outcome_source {
    OUTCOME_SOURCE_NONE = 0,
    OUTCOME_SOURCE_LOCAL,
    OUTCOME_SOURCE_API,
};

struct outcome {
    enum outcome_status status;
    enum outcome_source source;
    char datamart_id[API_ID_MAX];
    bool recovered;
    bool duplicate;
    char error_code[API_CODE_MAX];
    char error_message[API_MESSAGE_MAX];
    char error_path[256];
    char *errors_json; /* local validation: JSON array of {path,message}; owned */
    long http_status;
    bool has_http_status; /* only after a request was made */
    int attempts;
    long long finished_ms;
};

/* The most fields an outcome renders to (pairs are 2 entries each). */
#define OUTCOME_MAX_FIELDS 20

struct outcome_field {
    const char *name;
    const char *value;
    size_t len;
};

/* Scratch space for rendering numbers, so fields can point into it. */
struct outcome_render {
    struct outcome_field fields[OUTCOME_MAX_FIELDS];
    size_t count;
    char numbers[4][DECIMAL_MAX];
};

void outcome_init(struct outcome *o);
void outcome_release(struct outcome *o); /* frees errors_json */

const char *outcome_status_name(enum outcome_status status);
/* parse "created"/"failed"/"dead"; false otherwise */
bool outcome_status_parse(const char *s, enum outcome_status *out) DM_MUSTCHECK;

/* failed before any request: a broken envelope (INVALID_JOB) */
void outcome_set_invalid_job(struct outcome *o, const char *message);
/* failed local validation; takes ownership of errors_json */
void outcome_set_invalid_body(struct outcome *o, const char *path, const char *message,
                              char *errors_json);
/* from the API's classified answer; status must be CREATED, FAILED or DEAD as the caller decided */
void outcome_set_api(struct outcome *o, enum outcome_status status,
                     const struct api_classification *c);

/*
 * Restore one stored field of a finished P:job:<id> hash (for re-publishing it to a repeated
 * job_id). Unknown fields are ignored; false only when out of memory.
 */
bool outcome_load_field(struct outcome *o, const char *name, const char *value,
                        size_t len) DM_MUSTCHECK;

/* Replace every occurrence of secret in the message fields (defence in depth for the token). */
void outcome_redact(struct outcome *o, const char *secret);

/* The `event=job` fields for HSET and XADD: event, job_id, status, ..., finished_ms. */
void outcome_render_fields(const struct outcome *o, const struct job *job,
                           struct outcome_render *r);
/* The same fields as one JSON object, for the reply list. */
void outcome_render_json(const struct outcome *o, const struct job *job, struct strbuf *sb);

#endif
