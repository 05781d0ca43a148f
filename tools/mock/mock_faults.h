/* Fault knobs of databrain-mock and the seeded PRNG that draws them, so a run is reproducible. */
#ifndef DATAMART_MOCK_FAULTS_H
#define DATAMART_MOCK_FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler.h"

struct cJSON;
struct strbuf;

/* What one API request gets instead of (or on top of) normal processing. */
enum mock_fault {
    MOCK_FAULT_NONE = 0,
    MOCK_FAULT_FAIL_FIRST,  /* one of the first --fail-first requests */
    MOCK_FAULT_ERROR_500,   /* 500 INTERNAL_SERVER_ERROR */
    MOCK_FAULT_ERROR_502,   /* 502 from a gateway */
    MOCK_FAULT_ERROR_503,   /* 503 from a gateway */
    MOCK_FAULT_ERROR_504,   /* 504 from a gateway */
    MOCK_FAULT_RATE_LIMIT,  /* 429 with Retry-After */
    MOCK_FAULT_HANG,        /* never answered; held until the client goes away */
    MOCK_FAULT_RESET,       /* connection closed unanswered, nothing created */
    MOCK_FAULT_LOST_ANSWER, /* processed (the datamart is created), then closed unanswered */
    MOCK_FAULT_COUNT,
};

/* The knobs, as set by flags and PUT /__faults. */
struct mock_fault_settings {
    double probability[MOCK_FAULT_COUNT]; /* used from MOCK_FAULT_ERROR_500 on; sum <= 1 */
    unsigned latency_ms;
    unsigned latency_jitter_ms;
    unsigned retry_after_s;
    bool retry_after_date; /* Retry-After as an HTTP-date instead of seconds */
    unsigned fail_first;
    int fail_first_status;
    int auth_status; /* 400 AUTH_ERROR (the brief) or 401 AUTHENTICATION_ERROR */
    uint64_t seed;
};

struct mock_faults;

/* No faults, seed 1, Retry-After 1 s, fail-first status 500, auth status 400. */
struct mock_faults *mock_faults_create(void) DM_MUSTCHECK;
void mock_faults_free(struct mock_faults *faults);

/* Set one knob from text: name as a flag (`error-500`) or JSON key (`error_500`); latency takes
 * N[:JITTER]. False with a reason in err when the name or value is not acceptable. */
bool mock_faults_set(struct mock_faults *faults, const char *name, const char *value, char *err,
                     size_t errlen) DM_MUSTCHECK;
/* Apply every key of a JSON object, all or nothing (PUT /__faults). */
bool mock_faults_update(struct mock_faults *faults, const struct cJSON *object, char *err,
                        size_t errlen) DM_MUSTCHECK;

/* The current knobs become the ones mock_faults_restore_defaults() returns to. */
void mock_faults_save_defaults(struct mock_faults *faults);
void mock_faults_restore_defaults(struct mock_faults *faults);
/* Start the draws over: reseed the PRNG and re-arm fail-first. */
void mock_faults_restart(struct mock_faults *faults);

const struct mock_fault_settings *mock_faults_settings(const struct mock_faults *faults);
/* One draw per API request, whatever the knobs, so the sequence depends only on the seed. */
enum mock_fault mock_faults_draw(struct mock_faults *faults);
/* The delay of one answer: latency +- jitter, from a PRNG stream of its own. */
unsigned mock_faults_latency_ms(struct mock_faults *faults);

/* The knobs as a JSON object, keys as PUT /__faults takes them. */
void mock_faults_to_json(const struct mock_faults *faults, struct strbuf *out);
/* "fail_first", "error_500", ... as /__stats names them */
const char *mock_fault_name(enum mock_fault fault);

#endif
