#include "mock_server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "log.h"
#include "mock.h"
#include "mock_admin.h"
#include "mock_api.h"
#include "mock_stats.h"

/* evhttp's hard bound: bodies past MOCK_BODY_MAX up to here get the API's JSON 413, larger ones
 * evhttp's own 413 without being buffered */
#define SERVER_BODY_MAX (2 * MOCK_BODY_MAX)
#define SERVER_HEADERS_MAX (16 * 1024)
/* room for thousands of simultaneous connects (the kernel caps it at somaxconn) */
#define SERVER_BACKLOG 4096

struct mock_server {
    const struct mock_context *ctx;
    struct mock_api *api;
    struct evhttp *http;
    char address[INET6_ADDRSTRLEN + 16];
};

/* evhttp_set_bevcb: called once per accepted connection */
static struct bufferevent *on_connection(struct event_base *base, void *arg)
{
    struct mock_server *server = arg;

    mock_stats_add(server->ctx->stats, MOCK_STAT_CONNECTIONS);
    return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
}

/* evhttp_set_gencb: every request evhttp parsed */
static void on_request(struct evhttp_request *req, void *arg)
{
    struct mock_server *server = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;

    if (path == NULL)
        path = "";
    if (strncmp(path, "/__", 3) == 0)
        mock_admin_handle(server->ctx, req, path);
    else if (strcmp(path, MOCK_API_PATH) == 0)
        mock_api_handle(server->api, req, false);
    else if (strcmp(path, MOCK_LEGACY_API_PATH) == 0)
        mock_api_handle(server->api, req, true);
    else
        mock_api_not_found(server->api, req);
}

static bool server_listen(struct mock_server *server, const struct sockaddr *addr,
                          socklen_t addrlen)
{
    struct evconnlistener *listener;
    struct sockaddr_storage bound;
    socklen_t len = sizeof(bound);
    char host[INET6_ADDRSTRLEN], port[16];
    int rc;

    listener =
        evconnlistener_new_bind(server->ctx->base, NULL, NULL,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                SERVER_BACKLOG, addr, (int)addrlen);
    if (listener == NULL) {
        log_error("cannot listen: %s", strerror(errno));
        return false;
    }
    if (evhttp_bind_listener(server->http, listener) == NULL) {
        log_error("cannot serve HTTP on the listening socket");
        evconnlistener_free(listener);
        return false;
    }
    if (getsockname(evconnlistener_get_fd(listener), (struct sockaddr *)&bound, &len) != 0) {
        log_error("getsockname: %s", strerror(errno));
        return false;
    }
    rc = getnameinfo((struct sockaddr *)&bound, len, host, sizeof(host), port, sizeof(port),
                     NI_NUMERICHOST | NI_NUMERICSERV);
    if (rc != 0) {
        log_error("getnameinfo: %s", gai_strerror(rc));
        return false;
    }
    snprintf(server->address, sizeof(server->address),
             bound.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
    return true;
}

struct mock_server *mock_server_create(const struct mock_context *ctx, struct mock_api *api,
                                       const struct sockaddr *addr, socklen_t addrlen)
{
    struct mock_server *server = calloc(1, sizeof(*server));

    if (server == NULL)
        return NULL;
    server->ctx = ctx;
    server->api = api;
    server->http = evhttp_new(ctx->base);
    if (server->http == NULL)
        goto fail;
    evhttp_set_max_body_size(server->http, SERVER_BODY_MAX);
    evhttp_set_max_headers_size(server->http, SERVER_HEADERS_MAX);
    /* read and drop an oversized body before answering 413, so the client sees the answer */
    if (evhttp_set_flags(server->http, EVHTTP_SERVER_LINGERING_CLOSE) != 0)
        goto fail;
    /* every method reaches us, so the API can answer 405 in its own JSON */
    evhttp_set_allowed_methods(server->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                                 EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                                 EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                                 EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_bevcb(server->http, on_connection, server);
    evhttp_set_gencb(server->http, on_request, server);
    if (!server_listen(server, addr, addrlen))
        goto fail;
    return server;

fail:
    mock_server_free(server);
    return NULL;
}

void mock_server_free(struct mock_server *server)
{
    if (server == NULL)
        return;
    if (server->http != NULL)
        evhttp_free(server->http);
    free(server);
}

const char *mock_server_address(const struct mock_server *server)
{
    return server->address;
}
