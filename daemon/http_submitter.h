/* POSTs JSON bodies to one endpoint through a libcurl multi handle driven by libevent. */
#ifndef DATAMARTD_HTTP_SUBMITTER_H
#define DATAMARTD_HTTP_SUBMITTER_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"

struct event_base;
struct http_submitter;

enum http_outcome {
    HTTP_OUTCOME_RESPONSE = 0,    /* an HTTP response arrived: status is valid */
    HTTP_OUTCOME_TIMEOUT,         /* connect or total timeout */
    HTTP_OUTCOME_CONNECT_ERROR,   /* DNS, refused, unreachable, TLS handshake/verification */
    HTTP_OUTCOME_TRANSPORT_ERROR, /* reset, send/recv failure, malformed response, body over the cap
                                   */
    HTTP_OUTCOME_ABORTED,         /* cancelled by http_submitter_abort_all()/free() */
};

struct http_result {
    enum http_outcome outcome;
    long status;      /* HTTP status, 0 unless outcome == RESPONSE */
    const char *body; /* response body (NUL-terminated copy), valid during the callback only */
    size_t body_len;
    const char *retry_after; /* Retry-After header value (trimmed, bounded) or NULL */
    const char *error;       /* one line describing a non-RESPONSE outcome (never the token) */
    bool request_sent;       /* the request bytes reached the server (attempts count only these) */
    double total_s;          /* elapsed time since http_submitter_post() */
};

/* Called once per successful http_submitter_post(), from the event loop (never from inside
 * http_submitter_post() or a libcurl callback); it may post again, configure or abort_all, but
 * must not free the submitter. */
typedef void (*http_submitter_done_fn)(void *arg, const struct http_result *res);

struct http_submitter_options {
    const char *url;         /* full endpoint URL, e.g. https://api.../api/v2/data-app/datamarts */
    const char *token;       /* sent as "Authorization: Bearer <token>"; copied */
    long connect_timeout_ms; /* > 0 */
    long request_timeout_ms; /* > 0, whole transfer including connect */
    size_t max_response_bytes; /* response bodies beyond this abort the transfer */
    int max_connections;       /* connection cache size and cap on parallel connections, >= 1 */
    bool allow_insecure_http;  /* permit http:// to a non-loopback host */
};

/* NULL when the options are invalid (the reason is logged, never the token) or out of memory. */
struct http_submitter *
http_submitter_create(struct event_base *base,
                      const struct http_submitter_options *opts) DM_MUSTCHECK;

/* New url/token/timeouts/caps for transfers started from now on (SIGHUP reload); in-flight ones
 * keep what they started with. On false the previous settings stay in force. */
bool http_submitter_configure(struct http_submitter *s,
                              const struct http_submitter_options *opts) DM_MUSTCHECK;

/* Start a POST of len bytes at body, sent as is (no copy: body must stay valid until done fires).
 * On false nothing was started and done will not be called. */
bool http_submitter_post(struct http_submitter *s, const char *body, size_t len,
                         http_submitter_done_fn done, void *arg) DM_MUSTCHECK;

size_t http_submitter_inflight(const struct http_submitter *s);

/* Cancel every transfer in flight at the time of the call; each done fires once with
 * HTTP_OUTCOME_ABORTED before this returns. */
void http_submitter_abort_all(struct http_submitter *s);

/* Aborts what is in flight (done callbacks fire), then releases everything. NULL is ok. */
void http_submitter_free(struct http_submitter *s);

/* "response", "timeout", "connect_error", "transport_error", "aborted" */
const char *http_outcome_name(enum http_outcome outcome);

#endif
