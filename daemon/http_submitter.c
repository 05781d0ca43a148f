#include "http_submitter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
/* struct event is embedded in pooled objects to avoid an allocation per socket */
#include <event2/event_struct.h>

#include "compiler.h"
#include "log.h"
#include "loop_heap.h"
#include "version.h"

#define HTTP_USER_AGENT "User-Agent: datamartd/" DATAMART_VERSION
#define HTTP_URL_MAX 4096
#define HTTP_TOKEN_MAX 4096
/* a delay in seconds or an HTTP-date (29 characters) fits with room to spare */
#define HTTP_RETRY_AFTER_MAX 64
#define HTTP_BODY_INITIAL 1024
/* libcurl's receive buffer, kept by each of max_inflight handles: its minimum, not the 16 KiB
 * default, as API answers are a few hundred bytes; a 1 MiB answer then takes 1,024 reads, not 64 */
#define HTTP_RECV_BUFFER 1024L
/* one line describing a failed transfer */
#define HTTP_MESSAGE_MAX (CURL_ERROR_SIZE + 128)

/* Everything a transfer needs from the options; shared and refcounted so a reload never
 * pulls the header list out from under a transfer still using it. */
struct http_profile {
    unsigned refs;
    unsigned long id;
    /* parsed once: libcurl copies a CURLU handle per request instead of parsing the URL text */
    CURLU *url;
    struct curl_slist *headers; /* holds the token: wiped before it is freed */
    const char *protocols;
    /* only TLS learns at connect time (ALPN) whether it can multiplex; plain http would make
     * waiting transfers queue behind an unanswered first request */
    bool pipewait;
    long connect_timeout_ms;
    long request_timeout_ms;
    size_t max_response_bytes;
};

struct http_transfer {
    struct http_transfer *prev, *next; /* in-flight list, or the pool (next only) */
    CURL *easy;
    struct http_profile *profile; /* a reference, held while in flight */
    unsigned long applied_profile;
    http_submitter_done_fn done;
    void *arg;
    struct timespec started;
    char *body;
    size_t body_len;
    size_t body_cap;
    bool body_over_cap;
    bool body_oom;
    bool reached_server; /* this transfer got a connection: request counters are its own now */
    bool resend_refused; /* libcurl wanted to send the request a second time */
    char retry_after[HTTP_RETRY_AFTER_MAX + 1];
    char curl_error[CURL_ERROR_SIZE];
};

/* One watched socket; libcurl hands it back to us through curl_multi_assign. When libcurl stops
 * watching a connection it keeps for reuse, the socket stays registered, parked: reusing the
 * connection then costs no epoll_ctl, where removing and adding it again would cost two. */
struct http_socket {
    struct http_socket *prev, *next; /* watched list, or the pool (next only) */
    struct http_submitter *owner;
    curl_socket_t fd;
    short kind;  /* the events registered; 0 while not registered */
    bool parked; /* libcurl does not watch it now; it is in owner->fds[fd].parked */
    struct event ev;
};

/* What we know of a descriptor: only a connection socket libcurl will close through us may be
 * parked, since closing a registered descriptor behind libevent's back corrupts its fd map. */
struct http_fd {
    bool connection; /* seen by CURLOPT_SOCKOPTFUNCTION, not yet closed */
    struct http_socket *parked;
};

struct http_submitter {
    struct event_base *base;
    CURLM *multi;
    struct event timer;
    struct event now; /* libcurl's zero timeouts: run at the end of this loop pass */
    struct http_profile *profile;
    unsigned long next_profile_id;
    size_t pool_limit;
    struct http_transfer *active;
    size_t inflight;
    struct http_transfer *pool;
    size_t pool_len;
    struct http_socket *watched;
    struct http_socket *socket_pool;
    size_t socket_pool_len;
    struct http_fd *fds; /* indexed by descriptor */
    size_t fds_len;
    bool proxy_env; /* a proxy variable was set at start: libcurl reads them per request */
    bool closing;
};

/* ---- small helpers ---- */

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;

    while (n--)
        *v++ = 0;
}

static double elapsed_since(const struct timespec *t0)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static bool host_is_loopback(const char *host)
{
    char buf[64];
    size_t len = strlen(host);
    struct in_addr a4;
    struct in6_addr a6;

    if (strcasecmp(host, "localhost") == 0)
        return true;
    /* the URL parser keeps IPv6 literals in brackets */
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        if (len - 2 >= sizeof(buf))
            return false;
        memcpy(buf, host + 1, len - 2);
        buf[len - 2] = '\0';
        if (inet_pton(AF_INET6, buf, &a6) != 1)
            return false;
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    if (inet_pton(AF_INET, host, &a4) != 1)
        return false;
    return (ntohl(a4.s_addr) >> 24) == 127;
}

/* The parsed API URL and the protocols it may use; NULL (logged) when datamartd may not use it. */
static CURLU *url_parse(const char *url, bool allow_insecure_http, const char **protocols,
                        bool *https)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    char *host = NULL;
    bool ok = false;

    if (u == NULL) {
        log_error("http: out of memory parsing the API URL");
        return NULL;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        log_error("http: the API URL is not a valid URL");
    } else if (strcasecmp(scheme, "https") == 0) {
        *protocols = "https";
        *https = true;
        ok = true;
    } else if (strcasecmp(scheme, "http") != 0) {
        log_error("http: the API URL must use https:// (got %s://)", scheme);
    } else if (host_is_loopback(host) || allow_insecure_http) {
        *protocols = "http,https";
        *https = false;
        ok = true;
    } else {
        log_error("http: plain http:// to a non-loopback host is refused "
                  "(allow_insecure_http = yes permits it)");
    }
    curl_free(scheme);
    curl_free(host);
    if (!ok) {
        curl_url_cleanup(u);
        return NULL;
    }
    return u;
}

static bool token_is_valid(const char *token)
{
    size_t len = strnlen(token, HTTP_TOKEN_MAX + 1);

    if (len == 0 || len > HTTP_TOKEN_MAX) {
        log_error("http: the API token must be 1..%d bytes", HTTP_TOKEN_MAX);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)token[i];

        /* a CR or LF would let the token inject headers */
        if (c < 0x20 || c == 0x7f) {
            log_error("http: the API token contains control characters");
            return false;
        }
    }
    return true;
}

static bool options_are_valid(const struct http_submitter_options *o)
{
    if (o == NULL || o->url == NULL || o->token == NULL) {
        log_error("http: the API URL and token are required");
        return false;
    }
    if (strnlen(o->url, HTTP_URL_MAX + 1) > HTTP_URL_MAX) {
        log_error("http: the API URL is longer than %d bytes", HTTP_URL_MAX);
        return false;
    }
    if (o->connect_timeout_ms <= 0 || o->request_timeout_ms <= 0) {
        log_error("http: timeouts must be positive");
        return false;
    }
    if (o->max_response_bytes == 0 || o->max_response_bytes >= SIZE_MAX / 2) {
        log_error("http: max_response_bytes is out of range");
        return false;
    }
    if (o->max_connections < 1) {
        log_error("http: max_connections must be at least 1");
        return false;
    }
    return token_is_valid(o->token);
}

/* ---- profiles ---- */

static void profile_unref(struct http_profile *p)
{
    if (p == NULL || --p->refs > 0)
        return;
    for (struct curl_slist *h = p->headers; h != NULL; h = h->next)
        wipe(h->data, strlen(h->data));
    curl_slist_free_all(p->headers);
    curl_url_cleanup(p->url);
    free(p);
}

static bool profile_add_header(struct http_profile *p, const char *line)
{
    struct curl_slist *l = curl_slist_append(p->headers, line);

    if (l == NULL)
        return false;
    p->headers = l;
    return true;
}

static bool profile_add_authorization(struct http_profile *p, const char *token)
{
    static const char prefix[] = "Authorization: Bearer ";
    size_t len = sizeof(prefix) + strlen(token);
    char *line = malloc(len);
    bool ok;

    if (line == NULL)
        return false;
    snprintf(line, len, "%s%s", prefix, token);
    ok = profile_add_header(p, line);
    wipe(line, len);
    free(line);
    return ok;
}

static struct http_profile *profile_create(struct http_submitter *s,
                                           const struct http_submitter_options *o)
{
    struct http_profile *p;
    const char *protocols;
    bool https;
    CURLU *url;

    if (!options_are_valid(o))
        return NULL;
    url = url_parse(o->url, o->allow_insecure_http, &protocols, &https);
    if (url == NULL)
        return NULL;
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        curl_url_cleanup(url);
        goto oom;
    }
    p->refs = 1;
    p->url = url;
    p->id = ++s->next_profile_id;
    p->protocols = protocols;
    p->pipewait = https;
    p->connect_timeout_ms = o->connect_timeout_ms;
    p->request_timeout_ms = o->request_timeout_ms;
    p->max_response_bytes = o->max_response_bytes;
    /* empty Accept: and Expect: drop libcurl's own: no default Accept (the API answers JSON, and
     * libcurl formats every header byte one at a time), no 100-continue wait on larger bodies */
    if (!profile_add_header(p, HTTP_USER_AGENT) ||
        !profile_add_header(p, "Content-Type: application/json") ||
        !profile_add_header(p, "Accept:") || !profile_add_header(p, "Expect:") ||
        !profile_add_authorization(p, o->token))
        goto oom;
    return p;
oom:
    log_error("http: out of memory building the request settings");
    profile_unref(p);
    return NULL;
}

/* ---- transfers ---- */

/* CURLOPT_WRITEFUNCTION */
static size_t transfer_on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct http_transfer *t = userdata;
    size_t n = size * nmemb;
    size_t max = t->profile->max_response_bytes;

    if (n > max - t->body_len) {
        t->body_over_cap = true;
        return 0;
    }
    if (t->body_len + n + 1 > t->body_cap) {
        size_t cap = t->body_cap ? t->body_cap : HTTP_BODY_INITIAL;
        char *grown;

        while (cap < t->body_len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        grown = realloc(t->body, cap);
        if (grown == NULL) {
            t->body_oom = true;
            return 0;
        }
        t->body = grown;
        t->body_cap = cap;
    }
    memcpy(t->body + t->body_len, ptr, n);
    t->body_len += n;
    return n;
}

/* CURLOPT_HEADERFUNCTION */
static size_t transfer_on_header(char *line, size_t size, size_t nitems, void *userdata)
{
    static const char name[] = "retry-after:";
    struct http_transfer *t = userdata;
    size_t n = size * nitems;
    size_t start = sizeof(name) - 1;
    size_t end = n;

    /* a new status line starts a new response (1xx, or a retry on a fresh connection) */
    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        t->retry_after[0] = '\0';
        return n;
    }
    if (n < start || strncasecmp(line, name, start) != 0)
        return n;
    while (start < end && (line[start] == ' ' || line[start] == '\t'))
        start++;
    while (end > start && (line[end - 1] == '\r' || line[end - 1] == '\n' || line[end - 1] == ' ' ||
                           line[end - 1] == '\t'))
        end--;
    if (end == start || end - start > HTTP_RETRY_AFTER_MAX)
        return n;
    for (size_t i = start; i < end; i++) {
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] >= 0x7f)
            return n;
    }
    memcpy(t->retry_after, line + start, end - start);
    t->retry_after[end - start] = '\0';
    return n;
}

/* CURLOPT_PREREQFUNCTION: a connection is ready and the request is about to go out. A second
 * call means libcurl is about to re-send it on a fresh connection, because the reused one closed
 * with no answer; the first copy may have been processed (a create whose answer was lost), so
 * that is refused: the transfer fails as sent, and the caller's retry counts it as an attempt. */
static int transfer_on_prereq(void *clientp, char *conn_primary_ip, char *conn_local_ip,
                              int conn_primary_port, int conn_local_port)
{
    struct http_transfer *t = clientp;

    (void)conn_primary_ip;
    (void)conn_local_ip;
    (void)conn_primary_port;
    (void)conn_local_port;
    if (t->reached_server) {
        t->resend_refused = true;
        return CURL_PREREQFUNC_ABORT;
    }
    t->reached_server = true;
    return CURL_PREREQFUNC_OK;
}

static int transfer_on_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose);
static int transfer_on_closesocket(void *clientp, curl_socket_t fd);

static void transfer_destroy(struct http_transfer *t)
{
    if (t == NULL)
        return;
    curl_easy_cleanup(t->easy);
    free(t->body);
    free(t);
}

/* Whether any variable libcurl takes a proxy for http:// or https:// from is set, even empty. */
static bool proxy_env_is_set(void)
{
    static const char *const names[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                        "ALL_PROXY"};

    for (size_t i = 0; i < DM_ARRAY_LEN(names); i++)
        if (getenv(names[i]) != NULL)
            return true;
    return false;
}

/* Options that never change for a pooled handle. */
static bool transfer_set_fixed_options(struct http_submitter *s, struct http_transfer *t)
{
    CURL *e = t->easy;

    /* with no proxy variable, "*" is what libcurl would conclude, without reading the
     * environment for every request */
    if (!s->proxy_env && curl_easy_setopt(e, CURLOPT_NOPROXY, "*") != CURLE_OK)
        return false;
    return curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)t) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->curl_error) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, transfer_on_body) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)t) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, transfer_on_header) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)t) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, transfer_on_prereq) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_PREREQDATA, (void *)t) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, transfer_on_sockopt) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, (void *)s) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, transfer_on_closesocket) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, (void *)s) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_BUFFERSIZE, HTTP_RECV_BUFFER) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_POST, 1L) == CURLE_OK;
}

static struct http_transfer *transfer_create(struct http_submitter *s)
{
    struct http_transfer *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->easy = curl_easy_init();
    if (t->easy == NULL || !transfer_set_fixed_options(s, t)) {
        transfer_destroy(t);
        return NULL;
    }
    return t;
}

static struct http_transfer *transfer_acquire(struct http_submitter *s)
{
    struct http_transfer *t = s->pool;

    if (t == NULL)
        return transfer_create(s);
    s->pool = t->next;
    s->pool_len--;
    t->next = NULL;
    return t;
}

static void transfer_recycle(struct http_submitter *s, struct http_transfer *t)
{
    profile_unref(t->profile);
    t->profile = NULL;
    t->done = NULL;
    t->arg = NULL;
    t->prev = NULL;
    if (s->closing || s->pool_len >= s->pool_limit) {
        transfer_destroy(t);
        return;
    }
    /* a body lives from its first byte to the done callback: pooled handles keep none */
    free(t->body);
    t->body = NULL;
    t->body_cap = 0;
    t->next = s->pool;
    s->pool = t;
    s->pool_len++;
}

/* Point the handle at profile p (skipped while it still carries p) and at this body. */
static bool transfer_prepare(struct http_transfer *t, struct http_profile *p, const char *body,
                             size_t len)
{
    CURL *e = t->easy;

    if (t->applied_profile != p->id) {
        /* clearing the URL text makes libcurl render the new CURLU once, for this handle */
        if (curl_easy_setopt(e, CURLOPT_URL, NULL) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_CURLU, p->url) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->headers) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, p->protocols) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, p->protocols) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_PIPEWAIT, p->pipewait ? 1L : 0L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, p->connect_timeout_ms) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, p->request_timeout_ms) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)p->max_response_bytes) !=
                CURLE_OK) {
            t->applied_profile = 0;
            return false;
        }
        t->applied_profile = p->id;
    }
    if (curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body) != CURLE_OK)
        return false;
    t->profile = p;
    p->refs++;
    t->body_len = 0;
    t->body_over_cap = false;
    t->body_oom = false;
    t->reached_server = false;
    t->resend_refused = false;
    t->retry_after[0] = '\0';
    t->curl_error[0] = '\0';
    clock_gettime(CLOCK_MONOTONIC, &t->started);
    return true;
}

static void transfer_link(struct http_submitter *s, struct http_transfer *t)
{
    t->prev = NULL;
    t->next = s->active;
    if (s->active != NULL)
        s->active->prev = t;
    s->active = t;
}

static void transfer_unlink(struct http_submitter *s, struct http_transfer *t)
{
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        s->active = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

/* Request bytes were written to the connection. In 7.88 CURLINFO_REQUEST_SIZE grows after each
 * successful send of the request (HTTP/1 and HTTP/2), but a pooled handle keeps the previous
 * transfer's value until libcurl starts the new one, hence the prereq flag. The upload size would
 * miss an empty body; a refused connection or failed handshake never reaches prereq; a refused
 * re-send means the first copy went out. */
static bool transfer_request_sent(struct http_transfer *t)
{
    long request_size = 0;

    return t->resend_refused ||
           (t->reached_server &&
            curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &request_size) == CURLE_OK &&
            request_size > 0);
}

static enum http_outcome outcome_of(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return HTTP_OUTCOME_RESPONSE;
    case CURLE_OPERATION_TIMEDOUT:
        return HTTP_OUTCOME_TIMEOUT;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return HTTP_OUTCOME_CONNECT_ERROR;
    default:
        return HTTP_OUTCOME_TRANSPORT_ERROR;
    }
}

/* Fill msg (HTTP_MESSAGE_MAX bytes) with one printable line describing rc. */
static const char *transfer_describe(const struct http_transfer *t, CURLcode rc, char *msg)
{
    size_t len;

    if (t->resend_refused)
        snprintf(msg, HTTP_MESSAGE_MAX,
                 "the connection closed after the request was sent, with no answer");
    else if (t->body_over_cap || rc == CURLE_FILESIZE_EXCEEDED)
        snprintf(msg, HTTP_MESSAGE_MAX, "response body exceeds %zu bytes",
                 t->profile->max_response_bytes);
    else if (t->body_oom)
        snprintf(msg, HTTP_MESSAGE_MAX, "out of memory buffering the response body");
    else if (t->curl_error[0] != '\0')
        snprintf(msg, HTTP_MESSAGE_MAX, "%s: %s", curl_easy_strerror(rc), t->curl_error);
    else
        snprintf(msg, HTTP_MESSAGE_MAX, "%s", curl_easy_strerror(rc));
    for (char *c = msg; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
    }
    len = strlen(msg);
    while (len > 0 && msg[len - 1] == ' ')
        msg[--len] = '\0';
    return msg;
}

/* Remove a transfer that is off the active list from the multi handle, report it, recycle it. */
static void transfer_finish(struct http_submitter *s, struct http_transfer *t, CURLcode rc,
                            bool aborted)
{
    struct http_result res = {0};
    char message[HTTP_MESSAGE_MAX]; /* on the stack: a done callback may finish other transfers */
    CURLMcode mc = curl_multi_remove_handle(s->multi, t->easy);

    if (mc != CURLM_OK)
        log_error("http: curl_multi_remove_handle: %s", curl_multi_strerror(mc));
    s->inflight--;
    res.total_s = elapsed_since(&t->started);
    res.request_sent = transfer_request_sent(t);
    if (aborted) {
        res.outcome = HTTP_OUTCOME_ABORTED;
        res.error = "request aborted";
    } else if (rc == CURLE_OK) {
        res.outcome = HTTP_OUTCOME_RESPONSE;
        if (curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &res.status) != CURLE_OK)
            res.status = 0;
        if (t->body != NULL)
            t->body[t->body_len] = '\0';
        res.body = t->body != NULL ? t->body : "";
        res.body_len = t->body_len;
        res.retry_after = t->retry_after[0] != '\0' ? t->retry_after : NULL;
    } else {
        res.outcome = outcome_of(rc);
        res.error = transfer_describe(t, rc, message);
    }
    t->done(t->arg, &res);
    transfer_recycle(s, t);
}

/* ---- libcurl <-> libevent glue ---- */

static void submitter_check_multi_info(struct http_submitter *s)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
        /* the message dies with curl_multi_remove_handle: copy what we need first */
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        char *priv = NULL;
        struct http_transfer *t;

        if (msg->msg != CURLMSG_DONE)
            continue;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || priv == NULL)
            continue;
        t = (struct http_transfer *)(void *)priv;
        transfer_unlink(s, t);
        transfer_finish(s, t, rc, false);
    }
}

static void submitter_socket_action(struct http_submitter *s, curl_socket_t fd, int flags)
{
    int running;
    CURLMcode mc = curl_multi_socket_action(s->multi, fd, flags, &running);

    /* a socket libcurl already closed may still report readiness once */
    if (mc != CURLM_OK && mc != CURLM_BAD_SOCKET)
        log_error("http: curl_multi_socket_action: %s", curl_multi_strerror(mc));
    submitter_check_multi_info(s);
}

/* Called by libevent when a watched socket is ready */
static void submitter_on_socket(evutil_socket_t fd, short kind, void *arg)
{
    struct http_socket *sock = arg;
    int flags =
        ((kind & EV_READ) ? CURL_CSELECT_IN : 0) | ((kind & EV_WRITE) ? CURL_CSELECT_OUT : 0);

    if (sock->parked) {
        /* an idle connection the server closed, most likely: libcurl finds out when it next
         * picks the connection; until then, stop hearing about it */
        event_del(&sock->ev);
        sock->kind = 0;
        return;
    }
    submitter_socket_action(sock->owner, fd, flags);
}

/* Called by libevent when libcurl's timeout expires */
static void submitter_on_timer(evutil_socket_t fd, short kind, void *arg)
{
    (void)fd;
    (void)kind;
    submitter_socket_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_TIMERFUNCTION: only arms our timer, never calls back into libcurl */
static int submitter_on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct http_submitter *s = userp;
    struct timeval tv;

    (void)multi;
    if (timeout_ms < 0) {
        evtimer_del(&s->timer);
        return 0;
    }
    if (timeout_ms == 0) {
        /* a new transfer starts in this pass, not after another epoll_wait through the timers */
        evtimer_del(&s->timer);
        event_active(&s->now, EV_TIMEOUT, 0);
        return 0;
    }
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    if (evtimer_add(&s->timer, &tv) != 0) {
        log_error("http: cannot arm the libcurl timer");
        return -1;
    }
    return 0;
}

static struct http_fd *fd_slot(struct http_submitter *s, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < s->fds_len ? &s->fds[fd] : NULL;
}

static void socket_release(struct http_submitter *s, struct http_socket *sock)
{
    /* a fresh context whose curl_multi_assign failed was never assigned an event */
    if (sock->kind != 0)
        event_del(&sock->ev);
    sock->kind = 0;
    if (sock->parked) {
        fd_slot(s, sock->fd)->parked = NULL;
        sock->parked = false;
    }
    if (sock->prev != NULL)
        sock->prev->next = sock->next;
    else
        s->watched = sock->next;
    if (sock->next != NULL)
        sock->next->prev = sock->prev;
    sock->prev = NULL;
    if (s->closing || s->socket_pool_len >= s->pool_limit) {
        free(sock);
        return;
    }
    sock->next = s->socket_pool;
    s->socket_pool = sock;
    s->socket_pool_len++;
}

static struct http_socket *socket_acquire(struct http_submitter *s, curl_socket_t fd)
{
    struct http_socket *sock = s->socket_pool;

    if (sock != NULL) {
        s->socket_pool = sock->next;
        s->socket_pool_len--;
    } else {
        sock = calloc(1, sizeof(*sock));
        if (sock == NULL)
            return NULL;
    }
    sock->owner = s;
    sock->fd = fd;
    sock->kind = 0;
    sock->parked = false;
    sock->prev = NULL;
    sock->next = s->watched;
    if (s->watched != NULL)
        s->watched->prev = sock;
    s->watched = sock;
    return sock;
}

/* libcurl stops watching a connection socket it keeps: leave it registered for the next use */
static void socket_park(struct http_submitter *s, struct http_socket *sock)
{
    struct http_fd *slot = fd_slot(s, sock->fd);

    if (s->closing || slot == NULL || !slot->connection || slot->parked != NULL) {
        socket_release(s, sock);
        return;
    }
    sock->parked = true;
    slot->parked = sock;
}

/* The parked context of fd, taken back into use; NULL if there is none. */
static struct http_socket *socket_unpark(struct http_submitter *s, curl_socket_t fd)
{
    struct http_fd *slot = fd_slot(s, fd);
    struct http_socket *sock = slot != NULL ? slot->parked : NULL;

    if (sock != NULL) {
        slot->parked = NULL;
        sock->parked = false;
    }
    return sock;
}

/* CURLOPT_SOCKOPTFUNCTION: a new connection socket, closed later through the callback below */
static int transfer_on_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
    struct http_submitter *s = clientp;
    size_t len = s->fds_len;

    (void)purpose;
    if (fd < 0)
        return CURL_SOCKOPT_OK;
    if ((size_t)fd >= len) {
        size_t want = (size_t)fd + 1 > 2 * len ? (size_t)fd + 1 : 2 * len;
        struct http_fd *grown = realloc(s->fds, want * sizeof(*grown));

        /* without a slot the socket is simply never parked */
        if (grown == NULL)
            return CURL_SOCKOPT_OK;
        memset(grown + len, 0, (want - len) * sizeof(*grown));
        s->fds = grown;
        s->fds_len = want;
    }
    s->fds[fd].connection = true;
    return CURL_SOCKOPT_OK;
}

/* CURLOPT_CLOSESOCKETFUNCTION: unregister a parked socket before the descriptor goes away */
static int transfer_on_closesocket(void *clientp, curl_socket_t fd)
{
    struct http_submitter *s = clientp;
    struct http_fd *slot = fd_slot(s, fd);

    if (slot != NULL) {
        if (slot->parked != NULL)
            socket_release(s, slot->parked);
        slot->connection = false;
    }
    return close(fd);
}

/* CURLMOPT_SOCKETFUNCTION: mirror what libcurl wants to watch into a persistent event */
static int submitter_on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                                    void *socketp)
{
    struct http_submitter *s = userp;
    struct http_socket *sock = socketp;
    short kind = EV_PERSIST;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (sock != NULL)
            socket_park(s, sock);
        return 0;
    }
    if (sock == NULL) {
        sock = socket_unpark(s, fd);
        if (sock == NULL)
            sock = socket_acquire(s, fd);
        /* left unwatched, the transfer still ends through its timeout */
        if (sock == NULL) {
            log_error("http: out of memory watching a socket");
            return 0;
        }
        if (curl_multi_assign(s->multi, fd, sock) != CURLM_OK) {
            log_error("http: curl_multi_assign failed");
            socket_release(s, sock);
            return 0;
        }
    }
    if (what & CURL_POLL_IN)
        kind |= EV_READ;
    if (what & CURL_POLL_OUT)
        kind |= EV_WRITE;
    if (kind == sock->kind)
        return 0; /* a parked socket taken back as it was: nothing to change */
    /* re-assigning a pending event would corrupt libevent's queues */
    if (sock->kind != 0)
        event_del(&sock->ev);
    sock->kind = 0;
    if (event_assign(&sock->ev, s->base, fd, kind, submitter_on_socket, sock) != 0 ||
        event_add(&sock->ev, NULL) != 0) {
        log_error("http: cannot watch socket %d", (int)fd);
        return 0;
    }
    sock->kind = kind;
    return 0;
}

/* ---- public API ---- */

static bool submitter_apply_connection_limits(struct http_submitter *s, int max_connections)
{
    s->pool_limit = (size_t)max_connections;
    return curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)max_connections) == CURLM_OK &&
           curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)max_connections) ==
               CURLM_OK;
}

/* curl_global_init with libcurl allocating from the loop heap: only the first call sets the
 * allocator, later ones count */
static bool global_init(void)
{
    if (!loop_heap_init())
        return false;
    if (curl_global_init_mem(CURL_GLOBAL_ALL, loop_heap_malloc, loop_heap_free, loop_heap_realloc,
                             loop_heap_strdup, loop_heap_calloc) != CURLE_OK) {
        loop_heap_cleanup();
        return false;
    }
    return true;
}

static void global_cleanup(void)
{
    curl_global_cleanup();
    loop_heap_cleanup();
}

struct http_submitter *http_submitter_create(struct event_base *base,
                                             const struct http_submitter_options *opts)
{
    struct http_submitter *s;

    if (base == NULL)
        return NULL;
    if (!global_init()) {
        log_error("http: curl_global_init failed");
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        log_error("http: out of memory");
        global_cleanup();
        return NULL;
    }
    s->base = base;
    s->proxy_env = proxy_env_is_set();
    if (evtimer_assign(&s->timer, base, submitter_on_timer, s) != 0 ||
        event_assign(&s->now, base, -1, 0, submitter_on_timer, s) != 0)
        goto fail;
    s->profile = profile_create(s, opts);
    if (s->profile == NULL)
        goto fail;
    s->multi = curl_multi_init();
    if (s->multi == NULL ||
        curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, submitter_on_curl_socket) !=
            CURLM_OK ||
        curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, (void *)s) != CURLM_OK ||
        curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, submitter_on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, (void *)s) != CURLM_OK ||
        curl_multi_setopt(s->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX) != CURLM_OK ||
        !submitter_apply_connection_limits(s, opts->max_connections)) {
        log_error("http: cannot set up the libcurl multi handle");
        goto fail;
    }
    return s;
fail:
    http_submitter_free(s);
    return NULL;
}

bool http_submitter_configure(struct http_submitter *s, const struct http_submitter_options *opts)
{
    struct http_profile *p;

    if (s == NULL || s->closing)
        return false;
    p = profile_create(s, opts);
    if (p == NULL)
        return false;
    if (!submitter_apply_connection_limits(s, opts->max_connections)) {
        log_error("http: cannot apply the connection limits");
        profile_unref(p);
        return false;
    }
    profile_unref(s->profile);
    s->profile = p;
    return true;
}

bool http_submitter_post(struct http_submitter *s, const char *body, size_t len,
                         http_submitter_done_fn done, void *arg)
{
    struct http_transfer *t;
    CURLMcode mc;

    if (s == NULL || s->closing || done == NULL || (body == NULL && len > 0))
        return false;
    t = transfer_acquire(s);
    if (t == NULL) {
        log_error("http: out of memory starting a request");
        return false;
    }
    if (!transfer_prepare(t, s->profile, body != NULL ? body : "", len)) {
        log_error("http: cannot set up a request");
        transfer_recycle(s, t);
        return false;
    }
    t->done = done;
    t->arg = arg;
    /* add_handle arms the timer at 0 ms: the transfer starts from the event loop */
    mc = curl_multi_add_handle(s->multi, t->easy);
    if (mc != CURLM_OK) {
        log_error("http: curl_multi_add_handle: %s", curl_multi_strerror(mc));
        transfer_recycle(s, t);
        return false;
    }
    transfer_link(s, t);
    s->inflight++;
    return true;
}

size_t http_submitter_inflight(const struct http_submitter *s)
{
    return s != NULL ? s->inflight : 0;
}

void http_submitter_abort_all(struct http_submitter *s)
{
    struct http_transfer *t;

    if (s == NULL)
        return;
    /* detach the batch: transfers the callbacks start belong to the next one */
    t = s->active;
    s->active = NULL;
    while (t != NULL) {
        struct http_transfer *next = t->next;

        t->prev = t->next = NULL;
        transfer_finish(s, t, CURLE_OK, true);
        t = next;
    }
}

void http_submitter_free(struct http_submitter *s)
{
    if (s == NULL)
        return;
    s->closing = true;
    http_submitter_abort_all(s);
    while (s->pool != NULL) {
        struct http_transfer *t = s->pool;

        s->pool = t->next;
        transfer_destroy(t);
    }
    /* closing cached connections may still call the socket callback, so s stays valid */
    curl_multi_cleanup(s->multi);
    while (s->watched != NULL)
        socket_release(s, s->watched);
    while (s->socket_pool != NULL) {
        struct http_socket *sock = s->socket_pool;

        s->socket_pool = sock->next;
        free(sock);
    }
    free(s->fds);
    if (evtimer_initialized(&s->timer))
        evtimer_del(&s->timer);
    if (event_initialized(&s->now))
        event_del(&s->now);
    profile_unref(s->profile);
    free(s);
    global_cleanup();
}

const char *http_outcome_name(enum http_outcome outcome)
{
    switch (outcome) {
    case HTTP_OUTCOME_RESPONSE:
        return "response";
    case HTTP_OUTCOME_TIMEOUT:
        return "timeout";
    case HTTP_OUTCOME_CONNECT_ERROR:
        return "connect_error";
    case HTTP_OUTCOME_TRANSPORT_ERROR:
        return "transport_error";
    case HTTP_OUTCOME_ABORTED:
        return "aborted";
    }
    return "unknown";
}
