#include "mock_admin.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>

#include "clock.h"
#include "log.h"
#include "mock.h"
#include "mock_faults.h"
#include "mock_reply.h"
#include "mock_stats.h"
#include "mock_store.h"
#include "mock_tokens.h"
#include "strbuf.h"

struct admin_request {
    const struct mock_context *ctx;
    struct evhttp_request *req;
    cJSON *json;       /* the parsed request body, NULL when there was none */
    struct strbuf out; /* the answer */
    char err[256];     /* why the request is refused, when it is */
};

typedef bool (*admin_fn)(struct admin_request *ar);

struct admin_route {
    const char *path;
    enum evhttp_cmd_type method;
    admin_fn fn;
};

static bool admin_stats(struct admin_request *ar)
{
    mock_stats_to_json(ar->ctx->stats, &ar->out);
    return true;
}

static bool admin_datamarts(struct admin_request *ar)
{
    const struct mock_store *store = ar->ctx->store;
    size_t count = mock_store_count(store);
    const char *sep = "";

    strbuf_puts(&ar->out, "{\"datamarts\":[");
    for (size_t i = 0; i < count; i++) {
        const struct mock_datamart *dm = mock_store_at(store, i);

        if (dm->body == NULL)
            continue;
        strbuf_printf(&ar->out, "%s{\"name\":", sep);
        strbuf_json_string(&ar->out, dm->name, dm->name_len);
        strbuf_puts(&ar->out, ",\"body\":");
        strbuf_json_string(&ar->out, dm->body, dm->body_len);
        strbuf_printf(&ar->out, ",\"arrival_ms\":%lld,\"path\":\"%s\"}", (long long)dm->arrival_ms,
                      dm->legacy ? MOCK_LEGACY_API_PATH : MOCK_API_PATH);
        sep = ",";
    }
    strbuf_puts(&ar->out, "],\"precreated\":[");
    sep = "";
    for (size_t i = 0; i < count; i++) {
        const struct mock_datamart *dm = mock_store_at(store, i);

        if (dm->body != NULL)
            continue;
        strbuf_puts(&ar->out, sep);
        strbuf_json_string(&ar->out, dm->name, dm->name_len);
        sep = ",";
    }
    strbuf_puts(&ar->out, "]}");
    return true;
}

/* an optional boolean member of the request body */
static bool body_flag(const struct admin_request *ar, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ar->json, key));
}

static bool admin_reset(struct admin_request *ar)
{
    const struct mock_context *ctx = ar->ctx;

    if (ar->json != NULL && !cJSON_IsObject(ar->json)) {
        snprintf(ar->err, sizeof(ar->err), "expected {\"faults\": bool, \"tokens\": bool}");
        return false;
    }
    if (body_flag(ar, "tokens") && !mock_tokens_restore_defaults(ctx->tokens)) {
        snprintf(ar->err, sizeof(ar->err), "out of memory restoring the tokens");
        return false;
    }
    if (body_flag(ar, "faults"))
        mock_faults_restore_defaults(ctx->faults);
    else
        mock_faults_restart(ctx->faults);
    mock_store_clear(ctx->store);
    mock_stats_reset(ctx->stats);
    log_info("reset%s%s", body_flag(ar, "faults") ? ", faults restored" : "",
             body_flag(ar, "tokens") ? ", tokens restored" : "");
    strbuf_puts(&ar->out, "{\"reset\":true}");
    return true;
}

static bool admin_faults_get(struct admin_request *ar)
{
    mock_faults_to_json(ar->ctx->faults, &ar->out);
    return true;
}

static bool admin_faults_put(struct admin_request *ar)
{
    if (!mock_faults_update(ar->ctx->faults, ar->json, ar->err, sizeof(ar->err)))
        return false;
    mock_faults_to_json(ar->ctx->faults, &ar->out);
    log_info("fault knobs updated");
    return true;
}

static bool admin_tokens(struct admin_request *ar)
{
    const cJSON *list =
        cJSON_IsObject(ar->json) ? cJSON_GetObjectItemCaseSensitive(ar->json, "tokens") : ar->json;

    if (!mock_tokens_replace(ar->ctx->tokens, list, ar->err, sizeof(ar->err)))
        return false;
    log_info("accepted tokens replaced (%zu)", mock_tokens_count(ar->ctx->tokens));
    strbuf_printf(&ar->out, "{\"tokens\":%zu}", mock_tokens_count(ar->ctx->tokens));
    return true;
}

static bool admin_precreate(struct admin_request *ar)
{
    const cJSON *list =
        cJSON_IsObject(ar->json) ? cJSON_GetObjectItemCaseSensitive(ar->json, "names") : ar->json;
    const cJSON *item;
    size_t added = 0, existing = 0;

    if (!cJSON_IsArray(list)) {
        snprintf(ar->err, sizeof(ar->err), "expected a JSON array of names");
        return false;
    }
    cJSON_ArrayForEach(item, list)
    {
        if (!cJSON_IsString(item) || item->valuestring[0] == '\0') {
            snprintf(ar->err, sizeof(ar->err), "every name must be a non-empty string");
            return false;
        }
    }
    cJSON_ArrayForEach(item, list)
    {
        struct mock_datamart dm = {
            .name = item->valuestring,
            .name_len = strlen(item->valuestring),
            .arrival_ms = clock_realtime_ms(),
        };

        switch (mock_store_add(ar->ctx->store, &dm)) {
        case MOCK_STORE_ADDED:
            added++;
            break;
        case MOCK_STORE_EXISTS:
            existing++;
            break;
        case MOCK_STORE_FULL:
        case MOCK_STORE_NO_MEMORY:
            snprintf(ar->err, sizeof(ar->err), "the datamart store is full after %zu names", added);
            return false;
        }
    }
    strbuf_printf(&ar->out, "{\"added\":%zu,\"existing\":%zu}", added, existing);
    return true;
}

static const struct admin_route routes[] = {
    {"/__stats", EVHTTP_REQ_GET, admin_stats},
    {"/__datamarts", EVHTTP_REQ_GET, admin_datamarts},
    {"/__reset", EVHTTP_REQ_POST, admin_reset},
    {"/__faults", EVHTTP_REQ_GET, admin_faults_get},
    {"/__faults", EVHTTP_REQ_PUT, admin_faults_put},
    {"/__tokens", EVHTTP_REQ_PUT, admin_tokens},
    {"/__precreate", EVHTTP_REQ_POST, admin_precreate},
};

/* Parse the request body, if any, into ar->json. */
static bool parse_body(struct admin_request *ar)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(ar->req);
    size_t len = evbuffer_get_length(in);
    const char *body;

    if (len == 0)
        return true;
    body = (const char *)evbuffer_pullup(in, -1);
    if (body != NULL)
        ar->json = cJSON_ParseWithLength(body, len);
    if (ar->json == NULL) {
        snprintf(ar->err, sizeof(ar->err), "request body is not valid JSON");
        return false;
    }
    return true;
}

static void admin_dispatch(struct admin_request *ar, const struct admin_route *route)
{
    if (!parse_body(ar) || !route->fn(ar)) {
        mock_reply_send_error(ar->req, 400, "INVALID_ADMIN_REQUEST", ar->err);
        return;
    }
    mock_reply_send(ar->req, 200, &ar->out);
}

void mock_admin_handle(const struct mock_context *ctx, struct evhttp_request *req, const char *path)
{
    struct admin_request ar = {.ctx = ctx, .req = req};
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    bool known_path = false;

    strbuf_init(&ar.out);
    for (size_t i = 0; i < DM_ARRAY_LEN(routes); i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        known_path = true;
        if (routes[i].method == method) {
            admin_dispatch(&ar, &routes[i]);
            goto done;
        }
    }
    if (known_path)
        mock_reply_send_error(req, 405, "METHOD_NOT_ALLOWED", "Method not allowed");
    else
        mock_reply_send_error(req, 404, "NOT_FOUND", "No such admin endpoint");
done:
    cJSON_Delete(ar.json);
    strbuf_release(&ar.out);
}
