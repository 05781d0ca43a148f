#include "breaker.h"

#include <stdlib.h>
#include <string.h>

struct breaker {
    struct breaker_settings s;
    enum breaker_state state;
    enum breaker_reason reason;
    int64_t probe_delay_ms; /* the delay that scheduled next_probe_ms */
    int64_t next_probe_ms;  /* OPEN: when a probe may go; HALF_OPEN: when the probe went due */

    /* closed-state history: a ring of the last s.window results, true = transient failure */
    bool *results;
    int head;     /* where the next result goes */
    int filled;   /* results recorded, up to s.window */
    int failures; /* failures among them */
    int in_a_row; /* transient failures since the last success */
};

static bool settings_valid(const struct breaker_settings *s)
{
    return s->consecutive >= 1 && s->failure_ratio > 0 && s->failure_ratio <= 1 && s->window >= 1 &&
           s->probe_interval_ms >= 1 && s->probe_max_ms >= s->probe_interval_ms;
}

static void history_forget(struct breaker *b)
{
    memset(b->results, 0, (size_t)b->s.window * sizeof(*b->results));
    b->head = 0;
    b->filled = 0;
    b->failures = 0;
    b->in_a_row = 0;
}

struct breaker *breaker_create(const struct breaker_settings *s)
{
    struct breaker *b;

    if (!settings_valid(s))
        return NULL;
    b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->results = calloc((size_t)s->window, sizeof(*b->results));
    if (!b->results) {
        free(b);
        return NULL;
    }
    b->s = *s;
    breaker_reset(b);
    return b;
}

void breaker_free(struct breaker *b)
{
    if (!b)
        return;
    free(b->results);
    free(b);
}

static void close_breaker(struct breaker *b)
{
    b->state = BREAKER_STATE_CLOSED;
    b->reason = BREAKER_REASON_NONE;
    b->probe_delay_ms = b->s.probe_interval_ms;
    b->next_probe_ms = -1;
    history_forget(b);
}

bool breaker_configure(struct breaker *b, const struct breaker_settings *s)
{
    /* results recorded under other rules (or none while disabled) would mislead the ratio */
    bool forget = s->window != b->s.window || s->enabled != b->s.enabled;

    if (!settings_valid(s))
        return false;
    if (s->window != b->s.window) {
        bool *results = calloc((size_t)s->window, sizeof(*results));

        if (!results)
            return false;
        free(b->results);
        b->results = results;
    }
    b->s = *s;
    if (forget)
        history_forget(b);
    /* reopen_after_probe() caps at the new maximum; the floor needs setting here */
    if (b->probe_delay_ms < s->probe_interval_ms)
        b->probe_delay_ms = s->probe_interval_ms;
    if (!s->enabled && b->reason == BREAKER_REASON_TRANSIENT)
        close_breaker(b);
    return true;
}

void breaker_reset(struct breaker *b)
{
    close_breaker(b);
}

enum breaker_permit breaker_allow(struct breaker *b, int64_t now_ms)
{
    switch (b->state) {
    case BREAKER_STATE_CLOSED:
        return BREAKER_PERMIT_PASS;
    case BREAKER_STATE_OPEN:
        if (now_ms < b->next_probe_ms)
            return BREAKER_PERMIT_DENY;
        b->state = BREAKER_STATE_HALF_OPEN;
        return BREAKER_PERMIT_PROBE;
    case BREAKER_STATE_HALF_OPEN:
        break;
    }
    return BREAKER_PERMIT_DENY;
}

/* open for reason, the first probe probe_interval_ms from now */
static void open_breaker(struct breaker *b, enum breaker_reason reason, int64_t now_ms)
{
    b->state = BREAKER_STATE_OPEN;
    b->reason = reason;
    b->probe_delay_ms = b->s.probe_interval_ms;
    b->next_probe_ms = now_ms + b->probe_delay_ms;
}

/* the probe failed: wait twice as long (up to probe_max_ms) before the next one */
static void reopen_after_probe(struct breaker *b, enum breaker_reason reason, int64_t now_ms)
{
    b->probe_delay_ms =
        b->probe_delay_ms > b->s.probe_max_ms / 2 ? b->s.probe_max_ms : b->probe_delay_ms * 2;
    b->state = BREAKER_STATE_OPEN;
    b->reason = reason;
    b->next_probe_ms = now_ms + b->probe_delay_ms;
}

/* true for the answer of the one probe in flight */
static bool is_probe_result(const struct breaker *b, bool probe)
{
    return probe && b->state == BREAKER_STATE_HALF_OPEN;
}

static void history_record(struct breaker *b, bool failure)
{
    if (b->filled == b->s.window)
        b->failures -= b->results[b->head];
    else
        b->filled++;
    b->results[b->head] = failure;
    b->failures += failure;
    b->head = (b->head + 1) % b->s.window;
    b->in_a_row = failure ? b->in_a_row + 1 : 0;
}

/* divide: 7 / 25 rounds like a configured 0.28, while 0.28 * 25 exceeds 7 */
static bool history_says_open(const struct breaker *b)
{
    return b->in_a_row >= b->s.consecutive ||
           (b->filled == b->s.window &&
            (double)b->failures / (double)b->s.window >= b->s.failure_ratio);
}

bool breaker_success(struct breaker *b, bool probe)
{
    enum breaker_reason before = b->reason;

    if (is_probe_result(b, probe))
        close_breaker(b);
    else if (b->state == BREAKER_STATE_CLOSED && b->s.enabled)
        history_record(b, false);
    return b->reason != before;
}

bool breaker_transient_failure(struct breaker *b, bool probe, int64_t now_ms)
{
    enum breaker_reason before = b->reason;

    if (is_probe_result(b, probe)) {
        reopen_after_probe(b, b->reason, now_ms);
    } else if (b->state == BREAKER_STATE_CLOSED && b->s.enabled) {
        history_record(b, true);
        if (history_says_open(b))
            open_breaker(b, BREAKER_REASON_TRANSIENT, now_ms);
    }
    return b->reason != before;
}

bool breaker_auth_fault(struct breaker *b, bool probe, int64_t now_ms)
{
    enum breaker_reason before = b->reason;

    if (is_probe_result(b, probe))
        reopen_after_probe(b, BREAKER_REASON_AUTH, now_ms);
    else if (b->state == BREAKER_STATE_CLOSED)
        open_breaker(b, BREAKER_REASON_AUTH, now_ms);
    else
        b->reason = BREAKER_REASON_AUTH;
    return b->reason != before;
}

void breaker_probe_cancel(struct breaker *b)
{
    if (b->state != BREAKER_STATE_HALF_OPEN)
        return;
    /* next_probe_ms still holds the passed due time, so the next breaker_allow() probes */
    b->state = BREAKER_STATE_OPEN;
}

enum breaker_state breaker_state(const struct breaker *b)
{
    return b->state;
}

enum breaker_reason breaker_reason(const struct breaker *b)
{
    return b->reason;
}

int64_t breaker_next_probe_ms(const struct breaker *b)
{
    return b->state == BREAKER_STATE_OPEN ? b->next_probe_ms : -1;
}

const char *breaker_state_name(enum breaker_state state)
{
    switch (state) {
    case BREAKER_STATE_CLOSED:
        return "closed";
    case BREAKER_STATE_OPEN:
        return "open";
    case BREAKER_STATE_HALF_OPEN:
        return "half-open";
    }
    return "unknown";
}

const char *breaker_reason_name(enum breaker_reason reason)
{
    switch (reason) {
    case BREAKER_REASON_NONE:
        return "none";
    case BREAKER_REASON_TRANSIENT:
        return "transient";
    case BREAKER_REASON_AUTH:
        return "auth";
    }
    return "unknown";
}
