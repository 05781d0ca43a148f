/* http_submitter against an in-process evhttp server on 127.0.0.1 in the same event_base. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "http_submitter.h"
#include "test_loop.h"
#include "log.h"
#include "version.h"

#define MAX_SERVED 512
#define MAX_HELD 64
#define MAX_SLOTS 256
#define MAX_RAW 16
#define API_PATH "/api/v2/data-app/datamarts"
#define TOKEN "tok-1-secret"

/* One request as the server saw it. */
struct served {
    char *body;
    size_t body_len;
    char *auth;
    char *ctype;
    char *accept;
    char *ua;
    bool has_expect;
    char *uri;
    bool is_post;
};

/* What one done callback reported. */
struct slot {
    struct fixture *f;
    int calls;
    enum http_outcome outcome;
    long status;
    char *body;
    size_t body_len;
    char *retry_after;
    char *error;
    bool request_sent;
    double total_s;
    int chain_left; /* chained posts still to start from the callback */
    bool abort_from_callback;
};

struct fixture {
    struct event_base *base;
    struct event *tick;
    struct evhttp *http;
    unsigned short port;
    struct served served[MAX_SERVED];
    int nserved;
    struct evhttp_request *held[MAX_HELD];
    size_t nheld;
    uint16_t peers[MAX_SERVED];
    size_t npeers;
    struct evconnlistener *raw;
    unsigned short raw_port;
    struct event *raw_events[MAX_RAW];
    size_t nraw;
    struct http_submitter *sub;
    struct slot slots[MAX_SLOTS];
    int ndone;
    char bodies[MAX_SLOTS][32];
};

static char *dup_or_null(const char *s)
{
    char *d;

    if (s == NULL)
        return NULL;
    d = strdup(s);
    assert_non_null(d);
    return d;
}

static char *dup_bytes(const char *p, size_t n)
{
    char *d = malloc(n + 1);

    assert_non_null(d);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the server ---- */

static void server_note_peer(struct fixture *f, struct evhttp_request *req)
{
    char *addr = NULL;
    uint16_t port = 0;

    evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
    for (size_t i = 0; i < f->npeers; i++) {
        if (f->peers[i] == port)
            return;
    }
    f->peers[f->npeers++] = port;
}

static void server_reply(struct evhttp_request *req, int status, const char *body, size_t len,
                         bool chunked)
{
    struct evbuffer *buf = evbuffer_new();

    assert_non_null(buf);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    assert_int_equal(evbuffer_add(buf, body, len), 0);
    if (chunked) {
        evhttp_send_reply_start(req, status, "X");
        evhttp_send_reply_chunk(req, buf);
        evhttp_send_reply_end(req);
    } else {
        evhttp_send_reply(req, status, "X", buf);
    }
    evbuffer_free(buf);
}

static void server_reply_size(struct evhttp_request *req, size_t n, bool chunked)
{
    char *big = malloc(n);

    assert_non_null(big);
    memset(big, 'x', n);
    server_reply(req, 200, big, n, chunked);
    free(big);
}

static void server_on_drop(evutil_socket_t fd, short kind, void *arg)
{
    (void)fd;
    (void)kind;
    evhttp_connection_free(arg);
}

/* The request body picks the answer: hold, status:N, retry:V, size:N, chunked:N, empty, close
 * (200 with Connection: close), drop (the connection closes unanswered). */
static void server_on_request(struct evhttp_request *req, void *arg)
{
    struct fixture *f = arg;
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(body);
    struct served *s;
    char err[64];

    assert_true(f->nserved < MAX_SERVED);
    s = &f->served[f->nserved++];
    s->body = malloc(len + 1);
    assert_non_null(s->body);
    assert_int_equal(evbuffer_copyout(body, s->body, len), (ev_ssize_t)len);
    s->body[len] = '\0';
    s->body_len = len;
    s->auth = dup_or_null(evhttp_find_header(in, "Authorization"));
    s->ctype = dup_or_null(evhttp_find_header(in, "Content-Type"));
    s->accept = dup_or_null(evhttp_find_header(in, "Accept"));
    s->ua = dup_or_null(evhttp_find_header(in, "User-Agent"));
    s->has_expect = evhttp_find_header(in, "Expect") != NULL;
    s->uri = dup_or_null(evhttp_request_get_uri(req));
    s->is_post = evhttp_request_get_command(req) == EVHTTP_REQ_POST;
    server_note_peer(f, req);

    if (strncmp(s->body, "hold", 4) == 0) {
        assert_true(f->nheld < MAX_HELD);
        f->held[f->nheld++] = req;
    } else if (strncmp(s->body, "status:", 7) == 0) {
        int status = atoi(s->body + 7);

        snprintf(err, sizeof(err), "{\"error\":\"E%d\"}", status);
        server_reply(req, status, err, strlen(err), false);
    } else if (strncmp(s->body, "retry:", 6) == 0) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", s->body + 6);
        server_reply(req, 429, "{}", 2, false);
    } else if (strncmp(s->body, "size:", 5) == 0) {
        server_reply_size(req, (size_t)atol(s->body + 5), false);
    } else if (strncmp(s->body, "chunked:", 8) == 0) {
        server_reply_size(req, (size_t)atol(s->body + 8), true);
    } else if (strcmp(s->body, "empty") == 0) {
        server_reply(req, 200, "", 0, false);
    } else if (strcmp(s->body, "drop") == 0) {
        /* not from inside the request callback: evhttp still uses the connection there */
        assert_int_equal(event_base_once(f->base, -1, EV_TIMEOUT, server_on_drop,
                                         evhttp_request_get_connection(req), NULL),
                         0);
    } else if (strcmp(s->body, "close") == 0) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        server_reply(req, 200, "{\"id\":\"dm\",\"error\":null}", 24, false);
    } else {
        server_reply(req, 200, "{\"id\":\"dm\",\"error\":null}", 24, false);
    }
}

/* Answer every held request; libevent frees the ones whose client already left. */
static void server_release_held(struct fixture *f)
{
    for (size_t i = 0; i < f->nheld; i++)
        evhttp_send_reply(f->held[i], 200, "OK", NULL);
    f->nheld = 0;
}

static const struct served *server_find(const struct fixture *f, const char *body)
{
    for (int i = 0; i < f->nserved; i++) {
        if (strcmp(f->served[i].body, body) == 0)
            return &f->served[i];
    }
    return NULL;
}

/* A raw listener that reads whatever arrives, then closes without answering. */
static void raw_on_readable(evutil_socket_t fd, short kind, void *arg)
{
    char buf[4096];

    (void)kind;
    (void)arg;
    while (recv(fd, buf, sizeof(buf), 0) > 0)
        ;
    close(fd);
}

static void raw_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
    struct fixture *f = arg;
    struct event *ev;

    (void)l;
    (void)sa;
    (void)salen;
    assert_true(f->nraw < MAX_RAW);
    ev = event_new(f->base, fd, EV_READ, raw_on_readable, NULL);
    assert_non_null(ev);
    assert_int_equal(event_add(ev, NULL), 0);
    f->raw_events[f->nraw++] = ev;
}

static unsigned short local_port(evutil_socket_t fd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    return ntohs(sin.sin_port);
}

/* A loopback port with nothing listening on it. */
static unsigned short closed_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    unsigned short port;

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    port = local_port(fd);
    close(fd);
    return port;
}

/* ---- fixture ---- */

static struct http_submitter_options default_options(const struct fixture *f, char *url,
                                                     size_t url_len)
{
    struct http_submitter_options o = {
        .url = url,
        .token = TOKEN,
        .connect_timeout_ms = 2000,
        .request_timeout_ms = 5000,
        .max_response_bytes = 1024 * 1024,
        .max_connections = 8,
        .allow_insecure_http = false,
    };

    snprintf(url, url_len, "http://127.0.0.1:%u" API_PATH, f->port);
    return o;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct evhttp_bound_socket *bound;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char url[128];
    struct http_submitter_options o;

    assert_non_null(f);
    for (size_t i = 0; i < MAX_SLOTS; i++)
        f->slots[i].f = f;
    test_loop_start(&f->base, &f->tick, 10);

    f->http = evhttp_new(f->base);
    assert_non_null(f->http);
    evhttp_set_gencb(f->http, server_on_request, f);
    bound = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
    assert_non_null(bound);
    f->port = local_port(evhttp_bound_socket_get_fd(bound));

    f->raw = evconnlistener_new_bind(f->base, raw_on_accept, f,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                     (struct sockaddr *)&sin, sizeof(sin));
    assert_non_null(f->raw);
    f->raw_port = local_port(evconnlistener_get_fd(f->raw));

    o = default_options(f, url, sizeof(url));
    f->sub = http_submitter_create(f->base, &o);
    assert_non_null(f->sub);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    /* set by test_proxy_environment; left behind only if it failed */
    unsetenv("http_proxy");
    http_submitter_free(f->sub);
    server_release_held(f);
    test_loop_run_for(f->base, 50);
    for (size_t i = 0; i < f->nraw; i++)
        event_free(f->raw_events[i]);
    evconnlistener_free(f->raw);
    evhttp_free(f->http);
    test_loop_stop(f->base, f->tick);
    for (int i = 0; i < f->nserved; i++) {
        struct served *s = &f->served[i];

        free(s->body);
        free(s->auth);
        free(s->ctype);
        free(s->accept);
        free(s->ua);
        free(s->uri);
    }
    for (size_t i = 0; i < MAX_SLOTS; i++) {
        free(f->slots[i].body);
        free(f->slots[i].retry_after);
        free(f->slots[i].error);
    }
    free(f);
    return 0;
}

static void on_done(void *arg, const struct http_result *res)
{
    struct slot *s = arg;
    struct fixture *f = s->f;

    s->calls++;
    s->outcome = res->outcome;
    s->status = res->status;
    s->request_sent = res->request_sent;
    s->total_s = res->total_s;
    free(s->body);
    free(s->retry_after);
    free(s->error);
    s->body = res->body != NULL ? dup_bytes(res->body, res->body_len) : NULL;
    s->body_len = res->body_len;
    s->retry_after = dup_or_null(res->retry_after);
    s->error = dup_or_null(res->error);
    if (res->outcome != HTTP_OUTCOME_RESPONSE) {
        assert_non_null(res->error);
        assert_null(strstr(res->error, TOKEN));
        assert_null(strchr(res->error, '\n'));
        assert_int_equal(res->status, 0);
    }
    f->ndone++;
    if (s->chain_left > 0) {
        s->chain_left--;
        assert_true(http_submitter_post(f->sub, f->bodies[0], strlen(f->bodies[0]), on_done, s));
    }
    if (s->abort_from_callback)
        http_submitter_abort_all(f->sub);
}

static void post(struct fixture *f, const char *body, size_t len, size_t slot)
{
    assert_true(http_submitter_post(f->sub, body, len, on_done, &f->slots[slot]));
}

static void post_str(struct fixture *f, const char *body, size_t slot)
{
    post(f, body, strlen(body), slot);
}

/* Post one body and wait for its callback. */
static struct slot *round_trip(struct fixture *f, const char *body)
{
    int target = f->ndone + 1;

    post_str(f, body, 0);
    assert_true(test_loop_wait(f->base, &f->ndone, target, 10000));
    assert_int_equal(http_submitter_inflight(f->sub), 0);
    return &f->slots[0];
}

/* an answer of exactly len bytes, taken in whole */
static struct slot *expect_body(struct fixture *f, const char *body, size_t len)
{
    struct slot *r = round_trip(f, body);

    assert_int_equal(r->outcome, HTTP_OUTCOME_RESPONSE);
    assert_int_equal(r->body_len, len);
    return r;
}

/* an answer larger than the cap: refused, cap_text ("exceeds N bytes") in the error */
static struct slot *expect_over_cap(struct fixture *f, const char *body, const char *cap_text)
{
    struct slot *r = round_trip(f, body);

    assert_int_equal(r->outcome, HTTP_OUTCOME_TRANSPORT_ERROR);
    assert_non_null(strstr(r->error, cap_text));
    return r;
}

static void reconfigure(struct fixture *f, const char *url, const char *token, long request_ms,
                        size_t max_response)
{
    char buf[128];
    struct http_submitter_options o = default_options(f, buf, sizeof(buf));

    if (url != NULL)
        o.url = url;
    o.token = token;
    o.request_timeout_ms = request_ms;
    o.max_response_bytes = max_response;
    assert_true(http_submitter_configure(f->sub, &o));
}

/* ---- tests ---- */

static void test_headers_and_body(void **state)
{
    struct fixture *f = *state;
    static const char utf8[] =
        "{\"name\":\"caf\xc3\xa9-\xe6\x97\xa5\xe6\x9c\xac-\xf0\x9f\x98\x80\"}";
    const struct served *s;
    struct slot *r;

    r = round_trip(f, utf8);
    assert_int_equal(r->calls, 1);
    assert_int_equal(r->outcome, HTTP_OUTCOME_RESPONSE);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "{\"id\":\"dm\",\"error\":null}");
    assert_int_equal(r->body_len, 24);
    assert_null(r->retry_after);
    assert_null(r->error);
    assert_true(r->request_sent);
    assert_true(r->total_s > 0 && r->total_s < 10);

    assert_int_equal(f->nserved, 1);
    s = &f->served[0];
    assert_true(s->is_post);
    assert_string_equal(s->uri, API_PATH);
    assert_int_equal(s->body_len, sizeof(utf8) - 1);
    assert_memory_equal(s->body, utf8, sizeof(utf8) - 1);
    assert_string_equal(s->auth, "Bearer " TOKEN);
    assert_string_equal(s->ctype, "application/json");
    /* no Accept: the API answers JSON anyway, and each header byte costs libcurl 7.88 ~150
     * instructions per request */
    assert_null(s->accept);
    assert_string_equal(s->ua, "datamartd/" DATAMART_VERSION);
    assert_false(s->has_expect);
}

static char *json_of_size(size_t n)
{
    char *big = malloc(n);

    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    memcpy(big, "{\"d\":\"", 6);
    memcpy(big + n - 2, "\"}", 2);
    return big;
}

static void test_large_body(void **state)
{
    struct fixture *f = *state;
    size_t n = 100 * 1024;
    char *big = json_of_size(n);
    struct slot *r;

    /* an empty body still counts as sent */
    r = round_trip(f, "");
    assert_int_equal(r->status, 200);
    assert_true(r->request_sent);
    assert_int_equal(f->served[0].body_len, 0);
    assert_true(http_submitter_post(f->sub, big, n, on_done, &f->slots[1]));
    assert_true(test_loop_wait(f->base, &f->ndone, 2, 10000));
    assert_int_equal(f->slots[1].outcome, HTTP_OUTCOME_RESPONSE);
    assert_int_equal(f->slots[1].status, 200);
    assert_int_equal(f->nserved, 2);
    assert_int_equal(f->served[1].body_len, n);
    assert_memory_equal(f->served[1].body, big, n);
    assert_false(f->served[1].has_expect);
    free(big);

    /* past 1 MiB libcurl 7.88 would add Expect: 100-continue and wait for the server */
    n = 1536 * 1024;
    big = json_of_size(n);
    assert_true(http_submitter_post(f->sub, big, n, on_done, &f->slots[2]));
    assert_true(test_loop_wait(f->base, &f->ndone, 3, 10000));
    assert_int_equal(f->slots[2].status, 200);
    assert_int_equal(f->served[2].body_len, n);
    assert_memory_equal(f->served[2].body, big, n);
    assert_false(f->served[2].has_expect);
    free(big);
}

static void test_error_statuses(void **state)
{
    struct fixture *f = *state;
    struct slot *r;

    r = round_trip(f, "status:400");
    assert_int_equal(r->outcome, HTTP_OUTCOME_RESPONSE);
    assert_int_equal(r->status, 400);
    assert_string_equal(r->body, "{\"error\":\"E400\"}");
    assert_null(r->error);

    r = round_trip(f, "status:500");
    assert_int_equal(r->outcome, HTTP_OUTCOME_RESPONSE);
    assert_int_equal(r->status, 500);
    assert_string_equal(r->body, "{\"error\":\"E500\"}");
    assert_null(r->retry_after);

    r = round_trip(f, "empty");
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "");
    assert_int_equal(r->body_len, 0);
    assert_int_equal(r->calls, 3);
}

static void test_retry_after(void **state)
{
    struct fixture *f = *state;
    struct slot *r;

    r = round_trip(f, "retry:  120  ");
    assert_int_equal(r->status, 429);
    assert_non_null(r->retry_after);
    assert_string_equal(r->retry_after, "120");

    r = round_trip(f, "retry:Wed, 21 Oct 2015 07:28:00 GMT");
    assert_string_equal(r->retry_after, "Wed, 21 Oct 2015 07:28:00 GMT");

    /* over the bound: ignored rather than truncated */
    r = round_trip(f, "retry:1111111111111111111111111111111111111111111111111111111111111111111");
    assert_int_equal(r->status, 429);
    assert_null(r->retry_after);

    /* a later response on the same handle must not inherit the header */
    r = round_trip(f, "ok");
    assert_int_equal(r->status, 200);
    assert_null(r->retry_after);
}

static void test_response_cap(void **state)
{
    struct fixture *f = *state;
    struct slot *r;

    reconfigure(f, NULL, TOKEN, 5000, 1024);
    expect_body(f, "size:1024", 1024);
    r = expect_over_cap(f, "size:4096", "exceeds 1024 bytes");
    assert_int_equal(r->status, 0);

    /* no Content-Length: the write callback enforces the cap */
    expect_over_cap(f, "chunked:4096", "exceeds 1024 bytes");
    expect_body(f, "chunked:1000", 1000);
}

/* libcurl reads 1 KiB at a time: a 1 MiB answer still arrives whole, one byte more is refused */
static void test_response_cap_one_mib(void **state)
{
    struct fixture *f = *state;
    const size_t mib = 1024 * 1024;
    struct slot *r;

    reconfigure(f, NULL, TOKEN, 5000, mib);
    r = expect_body(f, "size:1048576", mib);
    assert_int_equal(r->body[0], 'x');
    assert_int_equal(r->body[mib - 1], 'x');

    expect_over_cap(f, "chunked:1048577", "exceeds 1048576 bytes");

    /* the pooled handle starts the next answer from an empty body */
    r = expect_body(f, "size:10", 10);
    assert_memory_equal(r->body, "xxxxxxxxxx", 10);
}

static void test_timeout_after_send(void **state)
{
    struct fixture *f = *state;
    struct slot *r;

    reconfigure(f, NULL, TOKEN, 300, 1024 * 1024);
    r = round_trip(f, "hold");
    assert_int_equal(r->outcome, HTTP_OUTCOME_TIMEOUT);
    assert_true(r->request_sent);
    assert_non_null(strstr(r->error, "Timeout was reached"));
    assert_true(r->total_s >= 0.25 && r->total_s < 5);
    assert_int_equal(f->nserved, 1);
}

static void test_connection_refused(void **state)
{
    struct fixture *f = *state;
    char url[128];
    struct slot *r;

    /* the pooled handle has sent a request before: its counters must not leak over */
    r = round_trip(f, "ok");
    assert_true(r->request_sent);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u" API_PATH, closed_port());
    reconfigure(f, url, TOKEN, 5000, 1024 * 1024);
    r = round_trip(f, "ok");
    assert_int_equal(r->outcome, HTTP_OUTCOME_CONNECT_ERROR);
    assert_false(r->request_sent);
    assert_non_null(strstr(r->error, "Couldn't connect to server"));
}

/* The URL is parsed once per profile; a pooled handle must follow a new one. */
static void test_reconfigure_url(void **state)
{
    struct fixture *f = *state;
    char url[128];

    expect_body(f, "a", 24);
    assert_string_equal(server_find(f, "a")->uri, API_PATH);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v3/marts?x=1", f->port);
    reconfigure(f, url, TOKEN, 5000, 1024 * 1024);
    expect_body(f, "b", 24);
    assert_string_equal(server_find(f, "b")->uri, "/v3/marts?x=1");
    reconfigure(f, NULL, TOKEN, 5000, 1024 * 1024);
    expect_body(f, "c", 24);
    assert_string_equal(server_find(f, "c")->uri, API_PATH);
}

/* With no proxy variable at start requests go direct without libcurl reading the environment
 * each time; with one set, libcurl's proxy rules still apply. */
static void test_proxy_environment(void **state)
{
    struct fixture *f = *state;
    char url[128], proxy[64];
    struct http_submitter_options o;

    http_submitter_free(f->sub);
    snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%u", f->port);
    assert_int_equal(setenv("http_proxy", proxy, 1), 0);
    o = default_options(f, url, sizeof(url));
    snprintf(url, sizeof(url), "http://127.0.0.1:%u" API_PATH, closed_port());
    f->sub = http_submitter_create(f->base, &o);
    assert_non_null(f->sub);
    /* the target port is closed: only the proxy (the test server) can answer */
    expect_body(f, "via-proxy", 24);
    assert_int_equal(unsetenv("http_proxy"), 0);
    assert_string_equal(server_find(f, "via-proxy")->uri, url);
}

static void test_server_closes(void **state)
{
    struct fixture *f = *state;
    char url[128];
    struct slot *r;

    snprintf(url, sizeof(url), "http://127.0.0.1:%u" API_PATH, f->raw_port);
    reconfigure(f, url, TOKEN, 5000, 1024 * 1024);
    r = round_trip(f, "{}");
    assert_int_equal(r->outcome, HTTP_OUTCOME_TRANSPORT_ERROR);
    assert_true(r->request_sent);
    assert_int_equal(f->nraw, 1);
}

/* A kept-alive connection closed unanswered after the request went out: libcurl would send the
 * request again on a fresh connection, which could create a datamart twice over a lost answer;
 * the transfer fails as sent instead, and the server saw the request once. */
static void test_no_resend_after_a_lost_answer(void **state)
{
    struct fixture *f = *state;
    struct slot *r;

    r = round_trip(f, "first");
    assert_int_equal(r->status, 200);
    r = round_trip(f, "drop");
    assert_int_equal(r->outcome, HTTP_OUTCOME_TRANSPORT_ERROR);
    assert_true(r->request_sent);
    assert_non_null(strstr(r->error, "closed after the request was sent"));
    assert_int_equal(f->nserved, 2);
    r = round_trip(f, "after");
    assert_int_equal(r->status, 200);
    assert_int_equal(f->nserved, 3);
}

static void test_tls_to_plain_port(void **state)
{
    struct fixture *f = *state;
    char url[128];
    struct slot *r;

    snprintf(url, sizeof(url), "https://127.0.0.1:%u" API_PATH, f->port);
    reconfigure(f, url, TOKEN, 5000, 1024 * 1024);
    r = round_trip(f, "{}");
    assert_int_equal(r->outcome, HTTP_OUTCOME_CONNECT_ERROR);
    assert_false(r->request_sent);
    assert_int_equal(f->nserved, 0);
}

static void test_keepalive_sequential(void **state)
{
    struct fixture *f = *state;

    /* each callback starts the next post: 100 requests, one after the other */
    snprintf(f->bodies[0], sizeof(f->bodies[0]), "seq");
    f->slots[0].chain_left = 99;
    post_str(f, f->bodies[0], 0);
    assert_true(test_loop_wait(f->base, &f->ndone, 100, 20000));
    assert_int_equal(f->slots[0].calls, 100);
    assert_int_equal(f->slots[0].status, 200);
    assert_int_equal(f->nserved, 100);
    assert_int_equal(f->npeers, 1);
}

static void on_pipe(evutil_socket_t fd, short kind, void *arg)
{
    (void)fd;
    (void)kind;
    *(bool *)arg = true;
}

/* The lowest free descriptor, likely one libcurl just closed, works for someone else's event. */
static void assert_fresh_descriptor_works(struct fixture *f)
{
    double end = now_s() + 5;
    bool fired = false;
    struct event *ev;
    int p[2];

    assert_int_equal(pipe(p), 0);
    ev = event_new(f->base, p[0], EV_READ, on_pipe, &fired);
    assert_non_null(ev);
    assert_int_equal(event_add(ev, NULL), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    while (!fired && now_s() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    event_free(ev);
    close(p[0]);
    close(p[1]);
    assert_true(fired);
}

/* A kept-alive connection stays registered between requests. Whoever closes it, libcurl after a
 * Connection: close answer or the server while it is idle, the descriptor is unregistered first,
 * and the next request goes out on a fresh connection and is answered. */
static void test_connection_closed_between_requests(void **state)
{
    struct fixture *f = *state;
    static const char *const bodies[] = {"close", "after-close", "close", "after-close", "idle"};
    struct slot *r;

    for (size_t i = 0; i < DM_ARRAY_LEN(bodies); i++) {
        r = round_trip(f, bodies[i]);
        assert_int_equal(r->outcome, HTTP_OUTCOME_RESPONSE);
        assert_int_equal(r->status, 200);
        if (strcmp(bodies[i], "close") == 0)
            assert_fresh_descriptor_works(f);
    }
    evhttp_set_timeout(f->http, 1);
    for (int round = 0; round < 2; round++) {
        test_loop_run_for(f->base, 1500); /* the server drops the idle connection */
        r = round_trip(f, "idle");
        assert_int_equal(r->outcome, HTTP_OUTCOME_RESPONSE);
        assert_int_equal(r->status, 200);
        assert_true(r->request_sent);
    }
    assert_int_equal(f->nserved, DM_ARRAY_LEN(bodies) + 2);
}

static void test_concurrent(void **state)
{
    struct fixture *f = *state;

    for (size_t i = 0; i < 200; i++) {
        snprintf(f->bodies[i], sizeof(f->bodies[i]), "c%zu", i);
        post_str(f, f->bodies[i], i);
    }
    assert_int_equal(http_submitter_inflight(f->sub), 200);
    assert_true(test_loop_wait(f->base, &f->ndone, 200, 30000));
    for (size_t i = 0; i < 200; i++) {
        assert_int_equal(f->slots[i].calls, 1);
        assert_int_equal(f->slots[i].outcome, HTTP_OUTCOME_RESPONSE);
        assert_int_equal(f->slots[i].status, 200);
        assert_non_null(server_find(f, f->bodies[i]));
    }
    assert_int_equal(f->nserved, 200);
    assert_int_equal(http_submitter_inflight(f->sub), 0);
    /* max_connections caps the parallel connections */
    assert_true(f->npeers <= 8);
}

static void test_reconfigure_midflight(void **state)
{
    struct fixture *f = *state;

    for (size_t i = 0; i < 3; i++) {
        snprintf(f->bodies[i], sizeof(f->bodies[i]), "old%zu", i);
        post_str(f, f->bodies[i], i);
    }
    /* nothing has been sent yet: the old transfers still need the old header list */
    reconfigure(f, NULL, "tok-2", 5000, 1024 * 1024);
    for (size_t i = 3; i < 6; i++) {
        snprintf(f->bodies[i], sizeof(f->bodies[i]), "new%zu", i);
        post_str(f, f->bodies[i], i);
    }
    reconfigure(f, NULL, "tok-3", 5000, 1024 * 1024);
    assert_true(test_loop_wait(f->base, &f->ndone, 6, 10000));
    for (size_t i = 0; i < 6; i++) {
        const struct served *s = server_find(f, f->bodies[i]);

        assert_non_null(s);
        assert_string_equal(s->auth, i < 3 ? "Bearer " TOKEN : "Bearer tok-2");
        assert_int_equal(f->slots[i].status, 200);
    }
    post_str(f, "last", 6);
    assert_true(test_loop_wait(f->base, &f->ndone, 7, 10000));
    assert_string_equal(server_find(f, "last")->auth, "Bearer tok-3");
}

static void test_abort_all(void **state)
{
    struct fixture *f = *state;

    /* not started yet, on a pooled handle that did send before: no byte left this time */
    post_str(f, "ok", 11);
    assert_true(test_loop_wait(f->base, &f->ndone, 1, 10000));
    assert_true(f->slots[11].request_sent);
    post_str(f, "hold-early", 10);
    http_submitter_abort_all(f->sub);
    assert_int_equal(f->slots[10].calls, 1);
    assert_int_equal(f->slots[10].outcome, HTTP_OUTCOME_ABORTED);
    assert_false(f->slots[10].request_sent);

    for (size_t i = 0; i < 5; i++)
        post_str(f, "hold", i);
    assert_true(test_loop_wait(f->base, &f->nserved, 6, 10000));
    assert_int_equal(http_submitter_inflight(f->sub), 5);
    http_submitter_abort_all(f->sub);
    assert_int_equal(http_submitter_inflight(f->sub), 0);
    assert_int_equal(f->ndone, 7);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(f->slots[i].calls, 1);
        assert_int_equal(f->slots[i].outcome, HTTP_OUTCOME_ABORTED);
        assert_true(f->slots[i].request_sent);
    }
    /* still usable, and nothing fires twice */
    post_str(f, "ok", 20);
    assert_true(test_loop_wait(f->base, &f->ndone, 8, 10000));
    assert_int_equal(f->slots[20].status, 200);
    test_loop_run_for(f->base, 100);
    assert_int_equal(f->ndone, 8);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(f->slots[i].calls, 1);
}

static void test_abort_from_callback(void **state)
{
    struct fixture *f = *state;

    for (size_t i = 0; i < 3; i++)
        post_str(f, "hold", i);
    assert_true(test_loop_wait(f->base, &f->nserved, 3, 10000));
    f->slots[3].abort_from_callback = true;
    post_str(f, "ok", 3);
    assert_true(test_loop_wait(f->base, &f->ndone, 4, 10000));
    assert_int_equal(f->slots[3].status, 200);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(f->slots[i].calls, 1);
        assert_int_equal(f->slots[i].outcome, HTTP_OUTCOME_ABORTED);
    }
    assert_int_equal(http_submitter_inflight(f->sub), 0);
}

static void test_free_inflight(void **state)
{
    struct fixture *f = *state;

    for (size_t i = 0; i < 5; i++)
        post_str(f, "hold", i);
    assert_true(test_loop_wait(f->base, &f->nserved, 5, 10000));
    post_str(f, "hold-late", 5);
    http_submitter_free(f->sub);
    f->sub = NULL;
    assert_int_equal(f->ndone, 6);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(f->slots[i].calls, 1);
        assert_int_equal(f->slots[i].outcome, HTTP_OUTCOME_ABORTED);
    }
}

static void test_options(void **state)
{
    struct fixture *f = *state;
    char url[128];
    struct http_submitter_options o = default_options(f, url, sizeof(url));
    struct http_submitter *s;
    static const char *const refused[] = {
        "http://api.example.com/x",
        "ftp://127.0.0.1/x",
        "not a url",
        "http://127.0.0.1.example/x",
    };
    static const char *const allowed[] = {
        "https://api.example.com/x",
        "http://localhost:1/x",
        "http://[::1]:8080/x",
        "http://127.0.0.2/x",
    };

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        o.url = refused[i];
        assert_null(http_submitter_create(f->base, &o));
    }
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        o.url = allowed[i];
        s = http_submitter_create(f->base, &o);
        assert_non_null(s);
        http_submitter_free(s);
    }
    o.url = "http://api.example.com/x";
    o.allow_insecure_http = true;
    s = http_submitter_create(f->base, &o);
    assert_non_null(s);
    http_submitter_free(s);
    http_submitter_free(NULL);

    /* bad settings leave the old ones in force */
    o = default_options(f, url, sizeof(url));
    o.token = "evil\r\nX-Injected: 1";
    assert_false(http_submitter_configure(f->sub, &o));
    o.token = "";
    assert_false(http_submitter_configure(f->sub, &o));
    o.token = TOKEN;
    o.request_timeout_ms = 0;
    assert_false(http_submitter_configure(f->sub, &o));
    o.request_timeout_ms = 5000;
    o.max_connections = 0;
    assert_false(http_submitter_configure(f->sub, &o));
    o.max_connections = 8;
    o.max_response_bytes = 0;
    assert_false(http_submitter_configure(f->sub, &o));
    assert_false(http_submitter_post(f->sub, "x", 1, NULL, NULL));
    assert_false(http_submitter_post(f->sub, NULL, 1, on_done, &f->slots[0]));
    assert_int_equal(http_submitter_inflight(f->sub), 0);
    round_trip(f, "ok");
    assert_string_equal(f->served[0].auth, "Bearer " TOKEN);

    assert_string_equal(http_outcome_name(HTTP_OUTCOME_TIMEOUT), "timeout");
    assert_string_equal(http_outcome_name(HTTP_OUTCOME_ABORTED), "aborted");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_headers_and_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_statuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_cap_one_mib, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_after_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconfigure_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_environment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_resend_after_a_lost_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_to_plain_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_sequential, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_closed_between_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconfigure_midflight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_inflight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options, setup, teardown),
    };

    /* the server side writes to sockets the client already closed */
    signal(SIGPIPE, SIG_IGN);
    log_init("test_http_submitter");
    log_set_level(LOG_LEVEL_WARN);
    return cmocka_run_group_tests_name("http_submitter", tests, NULL, NULL);
}
