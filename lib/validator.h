/*
 * Local validation of a Create Datamart request body (../shared/databrain-api.md).
 * Pure: bytes in, a list of problems out; the payload is never rewritten.
 */
#ifndef DATAMART_VALIDATOR_H
#define DATAMART_VALIDATOR_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"

#define VALIDATOR_DEFAULT_MAX_BYTES (1024u * 1024u)
#define VALIDATOR_MAX_DEPTH 64
/* at most this many problems are kept; a last one says how many more were found */
#define VALIDATOR_MAX_PROBLEMS 64

enum validator_verdict {
    VALIDATOR_OK = 0,
    VALIDATOR_NOT_JSON, /* too large, not UTF-8, not JSON, or nested too deep: a broken envelope */
    VALIDATOR_INVALID,  /* JSON, but breaks one or more rules of the API */
};

struct validator_result;

/*
 * Check len bytes at buf (need not be NUL-terminated) against every rule; max_bytes 0 means
 * VALIDATOR_DEFAULT_MAX_BYTES. Problems come in document order (a missing key, or a rule across
 * fields, where its object ends), at most VALIDATOR_MAX_PROBLEMS plus a final "... and N more
 * problems" at "$". A key repeated in one object is a problem at its path. Unknown keys pass.
 * Returns NULL only when out of memory.
 */
struct validator_result *validator_check(const char *buf, size_t len,
                                         size_t max_bytes) DM_MUSTCHECK;
void validator_result_free(struct validator_result *r);

enum validator_verdict validator_result_verdict(const struct validator_result *r);
size_t validator_result_count(const struct validator_result *r);
/*
 * JSON path of problem i: "$", "name", "tableList[0].columns[2].sql"; a key that is not an
 * identifier is bracket-quoted with JSON escapes: meta["my key"]. NULL when i is out of range.
 */
const char *validator_result_path(const struct validator_result *r, size_t i);
/*
 * One line saying what was expected and what was found, without control characters (values are
 * quoted with JSON escapes, shortened); a broken envelope says "near byte N", N from 0.
 */
const char *validator_result_message(const struct validator_result *r, size_t i);
/* the payload's "name" when it is a non-blank string, else NULL; raw: escape it before logging */
const char *validator_result_name(const struct validator_result *r);
/* all problems as a JSON array of {"path","message"}; caller frees with free(); NULL on OOM */
char *validator_result_errors_json(const struct validator_result *r) DM_MUSTCHECK;

#endif
