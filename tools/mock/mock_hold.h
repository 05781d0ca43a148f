/* An API request whose answer waits: for its latency timer, or forever (hang). The client going
 * away first releases it without a use-after-free. */
#ifndef DATAMART_MOCK_HOLD_H
#define DATAMART_MOCK_HOLD_H

#include <stdbool.h>

#include "compiler.h"

struct event_base;
struct evhttp_request;

enum mock_hold_end {
    MOCK_HOLD_ANSWER, /* send the staged response when the timer fires */
    MOCK_HOLD_CLOSE,  /* close the connection unanswered when the timer fires */
    MOCK_HOLD_NEVER,  /* keep it until the client goes away */
};

/* Called once when the hold is over: answered is the status sent, 0 when the connection was
 * closed or the client left (also at shutdown, when the server frees its connections). */
typedef void (*mock_hold_done_fn)(void *arg, enum mock_hold_end end, int answered);

bool mock_hold_start(struct event_base *base, struct evhttp_request *req, enum mock_hold_end end,
                     int status, unsigned delay_ms, mock_hold_done_fn done, void *arg) DM_MUSTCHECK;

#endif
