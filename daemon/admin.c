#include "admin.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "strbuf.h"
#include "version.h"

#define LISTEN_MAX 300

struct admin {
    struct evhttp *http;
    struct metrics *metrics;
    admin_ready_fn ready;
    admin_collect_fn collect;
    void *arg;
    struct strbuf page; /* reused for every /metrics render */
};

static void reply_text(struct evhttp_request *req, int code, const char *reason,
                       const char *content_type, const char *body, size_t len)
{
    struct evbuffer *buf = evbuffer_new();

    if (buf == NULL) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", content_type);
    evbuffer_add(buf, body, len);
    evhttp_send_reply(req, code, reason, buf);
    evbuffer_free(buf);
}

/* evhttp generic callback: every admin path */
static void on_request(struct evhttp_request *req, void *arg)
{
    struct admin *a = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

    if (path == NULL)
        path = "";
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        reply_text(req, 405, "Method Not Allowed", "text/plain", "method not allowed\n", 19);
    } else if (strcmp(path, "/healthz") == 0) {
        reply_text(req, 200, "OK", "text/plain", "ok\n", 3);
    } else if (strcmp(path, "/readyz") == 0) {
        const char *why = "";
        bool ok = a->ready(a->arg, &why);
        struct strbuf sb;

        strbuf_init(&sb);
        strbuf_printf(&sb, "%s\n", why);
        reply_text(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", "text/plain",
                   sb.data ? sb.data : "", sb.len);
        strbuf_release(&sb);
    } else if (strcmp(path, "/metrics") == 0) {
        strbuf_reset(&a->page);
        a->collect(a->arg, a->metrics);
        metrics_render(a->metrics, DATAMART_VERSION, &a->page);
        if (a->page.failed)
            evhttp_send_error(req, 500, "out of memory");
        else
            reply_text(req, 200, "OK", "text/plain; version=0.0.4", a->page.data, a->page.len);
    } else {
        reply_text(req, 404, "Not Found", "text/plain", "not found\n", 10);
    }
}

/* "127.0.0.1:9187" or "[::1]:9187" into host and port */
static bool split_listen(const char *listen, char *host, size_t hostlen, unsigned short *port)
{
    const char *colon = strrchr(listen, ':');
    const char *h = listen;
    size_t n;
    char *end;
    long v;

    if (colon == NULL)
        return false;
    n = (size_t)(colon - listen);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= hostlen)
        return false;
    memcpy(host, h, n);
    host[n] = '\0';
    v = strtol(colon + 1, &end, 10);
    if (*end != '\0' || v < 0 || v > 65535)
        return false;
    *port = (unsigned short)v;
    return true;
}

struct admin *admin_create(struct event_base *base, const char *listen, struct metrics *metrics,
                           admin_ready_fn ready, admin_collect_fn collect, void *arg)
{
    struct admin *a;
    char host[LISTEN_MAX];
    unsigned short port;

    if (!split_listen(listen, host, sizeof(host), &port)) {
        log_error("admin.listen %s is not HOST:PORT", listen);
        return NULL;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->metrics = metrics;
    a->ready = ready;
    a->collect = collect;
    a->arg = arg;
    strbuf_init(&a->page);
    a->http = evhttp_new(base);
    if (a->http == NULL) {
        free(a);
        return NULL;
    }
    /* the admin port serves tiny GETs: keep what a client can make it buffer small */
    evhttp_set_max_headers_size(a->http, 8192);
    evhttp_set_max_body_size(a->http, 1024);
    evhttp_set_timeout(a->http, 10);
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(a->http, on_request, a);
    if (evhttp_bind_socket(a->http, host, port) != 0) {
        log_error("admin: cannot listen on %s", listen);
        admin_free(a);
        return NULL;
    }
    log_info("admin: listening on %s (/healthz, /readyz, /metrics)", listen);
    return a;
}

void admin_free(struct admin *a)
{
    if (a == NULL)
        return;
    if (a->http != NULL)
        evhttp_free(a->http);
    strbuf_release(&a->page);
    free(a);
}
