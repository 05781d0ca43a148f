#include "mock_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "clock.h"
#include "log.h"
#include "mock.h"
#include "mock_faults.h"
#include "mock_hold.h"
#include "mock_payload.h"
#include "mock_reply.h"
#include "mock_stats.h"
#include "mock_store.h"
#include "mock_tokens.h"
#include "strbuf.h"

struct mock_api {
    const struct mock_context *ctx;
    struct strbuf body; /* every answer is built here, so a warm mock allocates none */
};

struct status_error {
    int status;
    const char *code;
    const char *message;
};

/* what the mock says for a status it produces on its own (faults, routing, limits) */
static const struct status_error status_errors[] = {
    {400, "BAD_REQUEST", "Bad request"},
    {401, "AUTHENTICATION_ERROR", "Invalid or expired service token"},
    {403, "FORBIDDEN", "Forbidden"},
    {404, "NOT_FOUND", "No such endpoint"},
    {405, "METHOD_NOT_ALLOWED", "Method not allowed; use POST"},
    {408, "REQUEST_TIMEOUT", "Request timeout"},
    {413, "PAYLOAD_TOO_LARGE", "Request body is larger than 1048576 bytes"},
    {429, "TOO_MANY_REQUESTS", "Too many requests"},
    {500, "INTERNAL_SERVER_ERROR", "Internal server error"},
    {502, "BAD_GATEWAY", "Bad gateway"},
    {503, "SERVICE_UNAVAILABLE", "Service unavailable"},
    {504, "GATEWAY_TIMEOUT", "Gateway timeout"},
};

static const int fault_status[MOCK_FAULT_COUNT] = {
    [MOCK_FAULT_ERROR_500] = 500, [MOCK_FAULT_ERROR_502] = 502,  [MOCK_FAULT_ERROR_503] = 503,
    [MOCK_FAULT_ERROR_504] = 504, [MOCK_FAULT_RATE_LIMIT] = 429,
};

struct mock_api *mock_api_create(const struct mock_context *ctx)
{
    struct mock_api *api = calloc(1, sizeof(*api));

    if (api == NULL)
        return NULL;
    api->ctx = ctx;
    strbuf_init(&api->body);
    return api;
}

void mock_api_free(struct mock_api *api)
{
    if (api == NULL)
        return;
    strbuf_release(&api->body);
    free(api);
}

static void status_error_body(struct mock_api *api, int status)
{
    char code[16];

    for (size_t i = 0; i < DM_ARRAY_LEN(status_errors); i++) {
        if (status_errors[i].status == status) {
            mock_reply_error_body(&api->body, status, status_errors[i].code,
                                  status_errors[i].message);
            return;
        }
    }
    snprintf(code, sizeof(code), "HTTP_%d", status);
    mock_reply_error_body(&api->body, status, code, "Simulated failure");
}

static void add_retry_after(struct mock_api *api, struct evhttp_request *req)
{
    const struct mock_fault_settings *s = mock_faults_settings(api->ctx->faults);
    char value[64];

    if (s->retry_after_date) {
        time_t when = time(NULL) + (time_t)s->retry_after_s;
        struct tm tm;

        gmtime_r(&when, &tm);
        strftime(value, sizeof(value), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    } else {
        snprintf(value, sizeof(value), "%u", s->retry_after_s);
    }
    if (evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", value) != 0)
        log_error("out of memory adding Retry-After");
}

/* The token of `Authorization: Bearer <token>`, surrounding blanks trimmed. */
static bool bearer_token(struct evhttp_request *req, const char **token, size_t *len)
{
    const char *value = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    size_t n;

    if (value == NULL || strncasecmp(value, "Bearer ", 7) != 0)
        return false;
    value += 7;
    while (*value == ' ' || *value == '\t')
        value++;
    n = strlen(value);
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
        n--;
    *token = value;
    *len = n;
    return n > 0;
}

static bool datasource_exists(const struct mock_context *ctx, const char *name)
{
    for (size_t i = 0; i < ctx->datasource_count; i++) {
        if (strcmp(ctx->datasources[i], name) == 0)
            return true;
    }
    return false;
}

static int invalid_body(struct mock_api *api, const char *message)
{
    mock_reply_error_body(&api->body, 400, "INVALID_REQUEST_BODY", message);
    return 400;
}

/* Create the datamart of a checked payload; the answer goes to api->body. */
static int create(struct mock_api *api, const struct mock_payload *payload, const char *body,
                  size_t len, bool legacy)
{
    const struct mock_context *ctx = api->ctx;
    struct mock_datamart dm = {
        .name = payload->name,
        .name_len = strlen(payload->name),
        .body = body,
        .body_len = len,
        .arrival_ms = clock_realtime_ms(),
        .legacy = legacy,
    };

    switch (mock_store_add(ctx->store, &dm)) {
    case MOCK_STORE_ADDED:
        mock_stats_add(ctx->stats, MOCK_STAT_CREATED);
        strbuf_reset(&api->body);
        strbuf_puts(&api->body, "{\"id\":");
        strbuf_json_string(&api->body, dm.name, dm.name_len);
        strbuf_puts(&api->body, ",\"error\":null}");
        return 200;
    case MOCK_STORE_EXISTS:
        mock_stats_add(ctx->stats, MOCK_STAT_DUPLICATES);
        return invalid_body(api, "Datamart name already exists");
    case MOCK_STORE_FULL:
        log_warn("datamart store is full; raise --max-datamarts or --max-store-mb");
        mock_reply_error_body(&api->body, 500, "INTERNAL_SERVER_ERROR",
                              "The mock's datamart store is full");
        return 500;
    case MOCK_STORE_NO_MEMORY:
        break;
    }
    log_error("out of memory storing a datamart");
    status_error_body(api, 500);
    return 500;
}

/* Answer the way the vendor does; the answer goes to api->body. */
static int process(struct mock_api *api, struct evhttp_request *req, bool legacy)
{
    const struct mock_context *ctx = api->ctx;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    struct mock_payload payload;
    const char *token, *body;
    size_t token_len;
    char message[160];
    int status;

    if (!bearer_token(req, &token, &token_len) ||
        !mock_tokens_accepts(ctx->tokens, token, token_len)) {
        status = mock_faults_settings(ctx->faults)->auth_status;
        mock_stats_add(ctx->stats, MOCK_STAT_AUTH_FAILURES);
        mock_reply_error_body(&api->body, status,
                              status == 401 ? "AUTHENTICATION_ERROR" : "AUTH_ERROR",
                              "Invalid or expired service token");
        return status;
    }
    /* evhttp's own limit is looser; this is the vendor's, answered in its JSON shape */
    if (len > MOCK_BODY_MAX) {
        status_error_body(api, 413);
        return 413;
    }
    body = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
    if (body == NULL) {
        log_error("out of memory reading a request body");
        status_error_body(api, 500);
        return 500;
    }
    if (!mock_payload_parse(&payload, body, len, message, sizeof(message)))
        return invalid_body(api, message);
    if (!datasource_exists(ctx, payload.datasource)) {
        mock_reply_error_body(&api->body, 400, "DATASOURCE_NAME_ERROR",
                              "Datasource does not exist or is not accessible");
        status = 400;
    } else {
        status = create(api, &payload, body, len, legacy);
    }
    mock_payload_release(&payload);
    return status;
}

static void request_done(struct mock_api *api, int answered)
{
    if (answered != 0)
        mock_stats_status(api->ctx->stats, answered);
    mock_stats_request_end(api->ctx->stats);
}

/* mock_hold_done_fn */
static void on_hold_done(void *arg, enum mock_hold_end end, int answered)
{
    struct mock_api *api = arg;

    if (end == MOCK_HOLD_NEVER)
        mock_stats_hang_end(api->ctx->stats);
    request_done(api, answered);
}

/* Send api->body with status now, or hold the request for delay_ms (or forever). */
static void respond(struct mock_api *api, struct evhttp_request *req, enum mock_hold_end end,
                    int status, unsigned delay_ms)
{
    if (status == 429)
        add_retry_after(api, req);
    if (end == MOCK_HOLD_ANSWER && (delay_ms == 0 || !mock_reply_stage(req, &api->body))) {
        request_done(api, mock_reply_send(req, status, &api->body));
        return;
    }
    if (end == MOCK_HOLD_NEVER)
        mock_stats_hang_begin(api->ctx->stats);
    if (mock_hold_start(api->ctx->base, req, end, status, delay_ms, on_hold_done, api))
        return;

    log_error("out of memory holding a request; answering now");
    if (end == MOCK_HOLD_NEVER)
        mock_stats_hang_end(api->ctx->stats);
    if (end == MOCK_HOLD_ANSWER) {
        evhttp_send_reply(req, status, mock_reply_reason(status), NULL);
        request_done(api, status);
    } else {
        evhttp_send_error(req, 500, NULL);
        request_done(api, 500);
    }
}

void mock_api_handle(struct mock_api *api, struct evhttp_request *req, bool legacy)
{
    const struct mock_context *ctx = api->ctx;
    enum mock_fault fault;
    unsigned delay_ms;
    int status;

    mock_stats_request_begin(ctx->stats);
    if (legacy)
        mock_stats_add(ctx->stats, MOCK_STAT_LEGACY_REQUESTS);
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        if (evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST") != 0)
            log_error("out of memory adding Allow");
        status_error_body(api, 405);
        request_done(api, mock_reply_send(req, 405, &api->body));
        return;
    }

    fault = mock_faults_draw(ctx->faults);
    delay_ms = mock_faults_latency_ms(ctx->faults);
    if (fault != MOCK_FAULT_NONE)
        mock_stats_fault(ctx->stats, fault);
    switch (fault) {
    case MOCK_FAULT_HANG:
        log_debug("holding a request until its client leaves");
        respond(api, req, MOCK_HOLD_NEVER, 0, 0);
        return;
    case MOCK_FAULT_RESET:
        log_debug("closing a connection unanswered in %u ms", delay_ms);
        respond(api, req, MOCK_HOLD_CLOSE, 0, delay_ms);
        return;
    case MOCK_FAULT_LOST_ANSWER:
        status = process(api, req, legacy);
        log_debug("processed a request (%d), losing its answer in %u ms", status, delay_ms);
        respond(api, req, MOCK_HOLD_CLOSE, 0, delay_ms);
        return;
    case MOCK_FAULT_NONE:
        status = process(api, req, legacy);
        break;
    case MOCK_FAULT_FAIL_FIRST:
        status = mock_faults_settings(ctx->faults)->fail_first_status;
        status_error_body(api, status);
        break;
    default:
        status = fault_status[fault];
        status_error_body(api, status);
        break;
    }
    log_debug("answering %d%s in %u ms (fault: %s)", status, legacy ? " on the legacy path" : "",
              delay_ms, mock_fault_name(fault));
    respond(api, req, MOCK_HOLD_ANSWER, status, delay_ms);
}

void mock_api_not_found(struct mock_api *api, struct evhttp_request *req)
{
    mock_stats_request_begin(api->ctx->stats);
    status_error_body(api, 404);
    request_done(api, mock_reply_send(req, 404, &api->body));
}
