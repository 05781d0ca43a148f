/*
 * What one Create Datamart attempt came back with, and what it means for the job
 * (CONTRACT.md "Statuses", databrain-api.md "Response"). Pure: no curl types here.
 */
#ifndef DATAMART_API_RESPONSE_H
#define DATAMART_API_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"

enum api_transport {
    API_TRANSPORT_RESPONSE = 0, /* an HTTP answer arrived */
    API_TRANSPORT_TIMEOUT,
    API_TRANSPORT_CONNECT_ERROR,
    API_TRANSPORT_ERROR, /* reset, malformed or oversized answer */
};

struct api_answer {
    enum api_transport transport;
    long status;           /* HTTP status when transport == RESPONSE */
    const char *body;      /* need not be NUL-terminated */
    size_t body_len;
    const char *transport_error; /* one line, for the non-RESPONSE cases */
};

enum api_verdict {
    API_VERDICT_CREATED,   /* 200 with an id */
    API_VERDICT_EXISTS,    /* "Datamart name already exists": created earlier, or a real clash */
    API_VERDICT_PERMANENT, /* failed, never retried */
    API_VERDICT_TRANSIENT, /* 429, 408, 5xx, timeouts, connection errors: retry */
    API_VERDICT_AUTH,      /* credential or endpoint fault: pause everything, don't fail the job */
};

#define API_CODE_MAX 64
#define API_MESSAGE_MAX 300
#define API_ID_MAX 512

struct api_classification {
    enum api_verdict verdict;
    long http_status;                /* 0 for a transport error */
    char code[API_CODE_MAX];         /* the API's code, or TIMEOUT, CONNECT_ERROR, RATE_LIMITED, HTTP_<n> */
    char message[API_MESSAGE_MAX];   /* one line, printable */
    char datamart_id[API_ID_MAX];    /* when CREATED */
};

/*
 * Classify an answer. The body may be anything: JSON with an "error" that is an object, a string,
 * null or missing, or not JSON at all.
 */
void api_response_classify(const struct api_answer *answer, struct api_classification *out);

const char *api_verdict_name(enum api_verdict verdict);

#endif
