/*
 * The circuit breaker and the credential pause (issue #5, "Circuit breaking"): while open, no
 * request is sent except one probe at a time, the first probe_interval_ms after opening, then
 * doubling up to probe_max_ms while probes fail; a probe success closes it. Pure: the caller passes
 * monotonic milliseconds in.
 */
#ifndef DATAMART_BREAKER_H
#define DATAMART_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"

struct breaker;

enum breaker_state {
    BREAKER_STATE_CLOSED = 0, /* requests flow */
    BREAKER_STATE_OPEN,       /* nothing is sent; a probe is due at breaker_next_probe_ms() */
    BREAKER_STATE_HALF_OPEN,  /* one probe is in flight; nothing else is sent */
};

/* why it is not closed */
enum breaker_reason {
    BREAKER_REASON_NONE = 0,
    BREAKER_REASON_TRANSIENT, /* sustained transient failures (429, 408, 5xx, transport) */
    BREAKER_REASON_AUTH,      /* credential/endpoint fault (401, 403, 404, 405, AUTH_ERROR...) */
};

enum breaker_permit {
    BREAKER_PERMIT_DENY = 0, /* do not send: the job waits without spending an attempt */
    BREAKER_PERMIT_PASS,     /* send normally */
    BREAKER_PERMIT_PROBE,    /* send as the probe; report its result with probe = true */
};

/* the [breaker] keys */
struct breaker_settings {
    bool enabled;              /* false: transient failures never open it; AUTH still pauses */
    int consecutive;           /* >= 1: transient failures in a row that open it */
    double failure_ratio;      /* (0, 1]: failure share of a full window that opens it */
    int window;                /* >= 1: the last results the ratio looks at */
    int64_t probe_interval_ms; /* >= 1: the first probe's delay */
    int64_t probe_max_ms;      /* >= probe_interval_ms: the doubling stops here */
};

/* Closed; NULL when out of memory or a setting is out of range. */
struct breaker *breaker_create(const struct breaker_settings *s) DM_MUSTCHECK;
void breaker_free(struct breaker *b);

/*
 * A reload. A new window size or enabled flag forgets the recorded results; disabling closes a
 * TRANSIENT breaker; a scheduled probe keeps its time, later delays follow the new interval and
 * max. Returns false, breaker unchanged, when out of memory or a setting is out of range.
 */
bool breaker_configure(struct breaker *b, const struct breaker_settings *s) DM_MUSTCHECK;

/* May a request go out at now_ms? A due probe moves OPEN to HALF_OPEN and returns PROBE. */
enum breaker_permit breaker_allow(struct breaker *b, int64_t now_ms) DM_MUSTCHECK;

/*
 * Results of sent requests; probe says whether breaker_allow() returned PROBE for it. While the
 * breaker is not closed only the probe's result counts: late answers of requests sent before it
 * opened are ignored. Each returns true when the reason changed (a pause began, ended or changed
 * cause), which is when the caller should log and update STATUS=.
 *  - success: any answer that is neither transient nor an auth fault (a 400 proves the API
 *    is up). Closed: recorded. Probe: closes, forgets the window, resets the probe delay.
 *  - transient failure. Closed and enabled: recorded; opens (TRANSIENT, probe after
 *    probe_interval_ms) at `consecutive` in a row or at failure_ratio of a full window.
 *    Probe: reopens with the probe delay doubled (capped at probe_max_ms), same reason.
 *  - auth fault, enabled or not. Closed: opens (AUTH, probe after probe_interval_ms). Open for
 *    TRANSIENT: the reason becomes AUTH, the schedule stays. Probe: reopens as AUTH with the
 *    probe delay doubled.
 */
bool breaker_success(struct breaker *b, bool probe);
bool breaker_transient_failure(struct breaker *b, bool probe, int64_t now_ms);
bool breaker_auth_fault(struct breaker *b, bool probe, int64_t now_ms);

/* The probe was never sent or its result is lost: the next breaker_allow() may probe again. */
void breaker_probe_cancel(struct breaker *b);

/* Closed, window and probe delay forgotten (SIGHUP with a new token). */
void breaker_reset(struct breaker *b);

enum breaker_state breaker_state(const struct breaker *b);
enum breaker_reason breaker_reason(const struct breaker *b);
/* when OPEN, the earliest time a probe may go out; -1 otherwise */
int64_t breaker_next_probe_ms(const struct breaker *b);
/* "closed", "open", "half-open" */
const char *breaker_state_name(enum breaker_state state);
/* "none", "transient", "auth" */
const char *breaker_reason_name(enum breaker_reason reason);

#endif
