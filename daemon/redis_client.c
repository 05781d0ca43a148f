#include "redis_client.h"

#include <arpa/inet.h>
#include <assert.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sys/un.h>

#include <event2/event.h>
/* struct event is embedded in the per-connection hooks to avoid three allocations */
#include <event2/event_struct.h>
#include <event2/util.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "clock.h"
#include "log.h"
#include "loop_heap.h"
#include "redis_reply.h"

#define CLIENT_DEFAULT_NAME "datamartd"
#define CLIENT_NAME_MAX 64
#define CLIENT_SECRET_MAX 4096
#define CLIENT_DURATION_MAX_MS (24L * 3600 * 1000)
#define CLIENT_REPLY_QUOTE_MAX 200
#define CLIENT_SHA_LEN 40
/* "*<argc>\r\n$7\r\nEVALSHA\r\n$40\r\n<sha>\r\n" fits with room to spare */
#define EVAL_HEAD_ROOM 96

enum cmd_kind {
    CMD_USER = 0,
    CMD_EVAL,
    CMD_AUTH,
    CMD_SELECT,
    CMD_SETNAME,
    CMD_SCRIPT_LOAD,
};

/* One command awaiting its reply; hiredis holds it as privdata and answers in FIFO order. */
struct redis_client_cmd {
    struct redis_client_cmd *next;
    struct redis_client *client;
    enum cmd_kind kind;
    redis_client_reply_fn fn;
    void *arg;
    long timeout_ms;
    int64_t
        deadline_ms; /* CLOCK_MONOTONIC; 0: none (handshake steps run on the connect deadline) */
    int script_id;
    /* CMD_EVAL: numkeys and the caller's arguments, already in the wire format (RESP), so a
     * send only prepends EVALSHA and the SHA1 in the room left in front of them */
    bool eval_retried;
    size_t eval_argc;
    char *eval_args;
    size_t eval_args_len;
};

struct redis_client_script {
    char *source;
    bool sha_known; /* SHA1 is the content hash, so it stays valid across servers */
    char sha[CLIENT_SHA_LEN + 1];
};

/* The client's own copy of redis_client_options, defaults applied. */
struct client_options {
    char *name;
    char *host;
    int port;
    char *socket;
    char *username;
    char *password;
    int db;
    long connect_timeout_ms;
    long command_timeout_ms;
    long backoff_min_ms;
    long backoff_max_ms;
    char endpoint[128]; /* for logs: "127.0.0.1:6379", "[::1]:6379" or "unix:/path" */
};

struct redis_client {
    struct event_base *base;
    struct client_options opts;
    redis_client_state_fn on_state;
    void *arg;
    enum redis_client_state state;
    bool started;
    bool freeing;
    redisAsyncContext *ac;    /* the live connection */
    redisAsyncContext *dying; /* dropped by us; freed by drop_ev, outside hiredis callbacks */
    struct redis_client_cmd *head, *tail;
    size_t pending;
    uint64_t commands_sent; /* every command queued to hiredis, handshake and eval retries too */
    unsigned handshake_left;
    struct redis_client_script **scripts;
    int nscripts;
    unsigned attempt; /* reconnects since the last successful connect */
    int64_t armed_deadline_ms;
    struct event *connect_ev;
    struct event *deadline_ev;
    struct event *retry_ev;
    struct event *drop_ev;
    char last_error[256];
};

static void client_connect(struct redis_client *c);

/* ---- hiredis' event hooks ---- */

/*
 * Like hiredis' libevent adapter, except that the read event stays registered and a connected
 * context's output is written from a deferred callback, after everything the current loop pass
 * queues; the write event is only armed to connect or when the socket buffer is full. A command
 * round trip then needs no epoll_ctl, where the adapter's one-shot events take four.
 */
struct client_events {
    redisAsyncContext *ac;
    struct event read_ev;  /* persistent */
    struct event write_ev; /* one-shot, as hiredis expects */
    struct event flush_ev; /* activated by hand */
};

static void events_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct client_events *e = arg;

    (void)fd;
    (void)what;
    redisAsyncHandleRead(e->ac); /* may free e */
}

static void events_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct client_events *e = arg;

    (void)fd;
    (void)what;
    redisAsyncHandleWrite(e->ac); /* may free e */
}

static void events_on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct client_events *e = arg;
    int done = 0;

    (void)fd;
    (void)what;
    if (redisBufferWrite(&e->ac->c, &done) == REDIS_ERR)
        redisAsyncHandleWrite(e->ac); /* meets the same error and disconnects; may free e */
    else if (!done)
        event_add(&e->write_ev, NULL);
}

static void events_add_read(void *privdata)
{
    struct client_events *e = privdata;

    event_add(&e->read_ev, NULL); /* no-op while registered */
}

static void events_del_read(void *privdata)
{
    struct client_events *e = privdata;

    event_del(&e->read_ev);
}

static void events_add_write(void *privdata)
{
    struct client_events *e = privdata;

    if (e->ac->c.flags & REDIS_CONNECTED)
        event_active(&e->flush_ev, EV_TIMEOUT, 0); /* no-op while already active */
    else
        event_add(&e->write_ev, NULL);
}

static void events_del_write(void *privdata)
{
    struct client_events *e = privdata;

    event_del(&e->write_ev);
}

static void events_cleanup(void *privdata)
{
    struct client_events *e = privdata;

    event_del(&e->read_ev);
    event_del(&e->write_ev);
    event_del(&e->flush_ev);
    free(e);
}

static bool events_attach(redisAsyncContext *ac, struct event_base *base)
{
    struct client_events *e = calloc(1, sizeof(*e));
    int fd = ac->c.fd;

    if (e == NULL)
        return false;
    e->ac = ac;
    if (event_assign(&e->read_ev, base, fd, EV_READ | EV_PERSIST, events_on_read, e) != 0 ||
        event_assign(&e->write_ev, base, fd, EV_WRITE, events_on_write, e) != 0 ||
        event_assign(&e->flush_ev, base, -1, 0, events_on_flush, e) != 0) {
        free(e);
        return false;
    }
    /* the write event reports the end of the non-blocking connect */
    if (event_add(&e->read_ev, NULL) != 0 || event_add(&e->write_ev, NULL) != 0) {
        event_del(&e->read_ev);
        event_del(&e->write_ev);
        free(e);
        return false;
    }
    ac->ev.addRead = events_add_read;
    ac->ev.delRead = events_del_read;
    ac->ev.addWrite = events_add_write;
    ac->ev.delWrite = events_del_write;
    ac->ev.cleanup = events_cleanup;
    ac->ev.data = e;
    return true;
}

static int64_t now_ms(void)
{
    return (int64_t)(clock_monotonic_us() / 1000);
}

static bool str_same(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static bool arg_is(const char *arg, size_t len, const char *word)
{
    return len == strlen(word) && strncasecmp(arg, word, len) == 0;
}

static void secret_free(char *s)
{
    if (s == NULL)
        return;
    /* volatile so the wipe is not optimised away before free() */
    for (volatile char *p = s; *p != '\0'; p++)
        *p = '\0';
    free(s);
}

/* ---- options ---- */

static void options_clear(struct client_options *o)
{
    free(o->name);
    free(o->host);
    free(o->socket);
    free(o->username);
    secret_free(o->password);
    memset(o, 0, sizeof(*o));
}

static bool host_is_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, buf) == 1 ||
           inet_pton(AF_INET6, host, buf) == 1;
}

static bool name_is_valid(const char *name)
{
    size_t len = strlen(name);

    if (len > CLIENT_NAME_MAX)
        return false;
    /* CLIENT SETNAME refuses spaces and control characters */
    for (size_t i = 0; i < len; i++) {
        if (name[i] <= ' ' || name[i] > '~')
            return false;
    }
    return true;
}

static long duration_or(long value, long fallback)
{
    return value > 0 ? value : fallback;
}

static char *dup_nonempty(const char *s, bool *ok)
{
    char *copy;

    if (s == NULL || s[0] == '\0')
        return NULL;
    copy = strdup(s);
    if (copy == NULL)
        *ok = false;
    return copy;
}

/* Validate src and copy it into o (zeroed on failure); the reason is logged, never a secret. */
static bool options_load(struct client_options *o, const struct redis_client_options *src)
{
    const char *name = src->name != NULL && src->name[0] != '\0' ? src->name : CLIENT_DEFAULT_NAME;
    bool unix_socket = src->socket != NULL && src->socket[0] != '\0';
    const char *problem = NULL;
    bool ok = true;

    memset(o, 0, sizeof(*o));
    if (!name_is_valid(name))
        problem = "name must be 1-64 printable characters without spaces";
    else if (unix_socket && strlen(src->socket) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
        problem = "socket path is too long";
    else if (!unix_socket && (src->host == NULL || !host_is_literal(src->host)))
        problem = "host must be a literal IP address or localhost (name lookups would block)";
    else if (!unix_socket && (src->port < 1 || src->port > 65535))
        problem = "port must be 1-65535";
    else if (src->username != NULL && src->username[0] != '\0' &&
             (src->password == NULL || src->password[0] == '\0'))
        problem = "a username needs a password";
    else if ((src->password != NULL && strlen(src->password) > CLIENT_SECRET_MAX) ||
             (src->username != NULL && strlen(src->username) > CLIENT_SECRET_MAX))
        problem = "username or password is too long";
    else if (src->db < 0)
        problem = "db must not be negative";
    else if (src->connect_timeout_ms > CLIENT_DURATION_MAX_MS ||
             src->command_timeout_ms > CLIENT_DURATION_MAX_MS ||
             src->backoff_min_ms > CLIENT_DURATION_MAX_MS ||
             src->backoff_max_ms > CLIENT_DURATION_MAX_MS)
        problem = "timeouts and backoffs must not exceed 24 hours";
    if (problem != NULL) {
        log_error("redis %s: invalid options: %s", name_is_valid(name) ? name : "?", problem);
        return false;
    }

    o->name = strdup(name);
    ok = o->name != NULL;
    if (unix_socket) {
        o->socket = dup_nonempty(src->socket, &ok);
        snprintf(o->endpoint, sizeof(o->endpoint), "unix:%s", src->socket);
    } else {
        o->host = dup_nonempty(src->host, &ok);
        o->port = src->port;
        snprintf(o->endpoint, sizeof(o->endpoint), strchr(src->host, ':') ? "[%s]:%d" : "%s:%d",
                 src->host, src->port);
    }
    o->username = dup_nonempty(src->username, &ok);
    o->password = dup_nonempty(src->password, &ok);
    o->db = src->db;
    o->connect_timeout_ms = duration_or(src->connect_timeout_ms, 5000);
    o->command_timeout_ms = duration_or(src->command_timeout_ms, 5000);
    o->backoff_min_ms = duration_or(src->backoff_min_ms, 100);
    o->backoff_max_ms = duration_or(src->backoff_max_ms, 30000);
    if (o->backoff_max_ms < o->backoff_min_ms)
        o->backoff_max_ms = o->backoff_min_ms;
    if (!ok) {
        log_error("redis %s: out of memory copying options", name);
        options_clear(o);
    }
    return ok;
}

/* ---- errors, state, timers ---- */

static void client_error(struct redis_client *c, enum log_level level, const char *fmt, ...)
    DM_PRINTF(3, 4);

/* Record last_error and log it; a message that quotes the password is withheld. */
static void client_error(struct redis_client *c, enum log_level level, const char *fmt, ...)
{
    char msg[sizeof(c->last_error)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->opts.password != NULL && strstr(msg, c->opts.password) != NULL)
        snprintf(msg, sizeof(msg), "error on %s withheld: it quoted the password",
                 c->opts.endpoint);
    for (char *p = msg; *p != '\0'; p++) {
        if ((unsigned char)*p < ' ')
            *p = ' ';
    }
    memcpy(c->last_error, msg, sizeof(msg));
    log_write(level, "redis %s: %s", c->opts.name, msg);
}

static void state_set(struct redis_client *c, enum redis_client_state state)
{
    if (c->state == state)
        return;
    log_debug("redis %s: %s -> %s", c->opts.name, redis_client_state_name(c->state),
              redis_client_state_name(state));
    c->state = state;
    if (c->on_state != NULL && !c->freeing)
        c->on_state(c, state, c->arg);
}

static void timer_arm(struct redis_client *c, struct event *ev, int64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (long)(ms % 1000) * 1000};

    if (evtimer_add(ev, &tv) != 0)
        log_error("redis %s: cannot arm a timer", c->opts.name);
}

/* Exponential with full jitter above a floor of backoff_min_ms, so never a tight loop. */
static long client_backoff_ms(struct redis_client *c)
{
    long lo = c->opts.backoff_min_ms, cap = lo;
    uint32_t r;

    for (unsigned i = 0; i < c->attempt && cap < c->opts.backoff_max_ms; i++)
        cap *= 2;
    if (cap > c->opts.backoff_max_ms)
        cap = c->opts.backoff_max_ms;
    if (c->attempt < UINT_MAX)
        c->attempt++;
    evutil_secure_rng_get_bytes(&r, sizeof(r));
    return lo + (long)(r % (uint32_t)(cap - lo + 1));
}

static void retry_schedule(struct redis_client *c)
{
    long delay;

    if (!c->started || c->freeing || evtimer_pending(c->retry_ev, NULL))
        return;
    delay = client_backoff_ms(c);
    log_info("redis %s: reconnecting to %s in %ld ms", c->opts.name, c->opts.endpoint, delay);
    timer_arm(c, c->retry_ev, delay);
}

static void retry_now(struct redis_client *c)
{
    c->attempt = 0;
    evtimer_del(c->retry_ev);
    timer_arm(c, c->retry_ev, 0);
}

/* ---- the pending FIFO and its deadline timer ---- */

static void fifo_push(struct redis_client *c, struct redis_client_cmd *cmd)
{
    cmd->next = NULL;
    if (c->tail != NULL)
        c->tail->next = cmd;
    else
        c->head = cmd;
    c->tail = cmd;
    c->pending++;
    /* every send goes through here once hiredis has queued it, so this is what reaches Redis */
    c->commands_sent++;
}

static void fifo_shift(struct redis_client *c, struct redis_client_cmd *cmd)
{
    /* hiredis answers in send order and subscribe/monitor are refused, so cmd is the head */
    assert(c->head == cmd);
    c->head = cmd->next;
    if (c->head == NULL)
        c->tail = NULL;
    c->pending--;
}

/* Keep the timer at or before the head's deadline; it re-checks the head when it fires. */
static void deadline_arm(struct redis_client *c)
{
    const struct redis_client_cmd *head = c->head;
    int64_t now;

    if (head == NULL || head->deadline_ms == 0)
        return;
    if (evtimer_pending(c->deadline_ev, NULL) && c->armed_deadline_ms <= head->deadline_ms)
        return;
    now = now_ms();
    c->armed_deadline_ms = head->deadline_ms;
    timer_arm(c, c->deadline_ev, head->deadline_ms > now ? head->deadline_ms - now : 0);
}

/* ---- connection teardown ---- */

static void dying_free(struct redis_client *c)
{
    redisAsyncContext *ac = c->dying;

    if (ac == NULL)
        return;
    c->dying = NULL;
    ac->data = NULL; /* its connect/disconnect callbacks become no-ops */
    redisAsyncFree(ac);
}

/* We end the connection: CLOSED now, the context freed from drop_ev, a reconnect scheduled. */
static void client_drop(struct redis_client *c, enum log_level level, const char *fmt, ...)
    DM_PRINTF(3, 4);

static void client_drop(struct redis_client *c, enum log_level level, const char *fmt, ...)
{
    char msg[sizeof(c->last_error)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    client_error(c, level, "%s", msg);
    evtimer_del(c->connect_ev);
    evtimer_del(c->deadline_ev);
    if (c->ac != NULL) {
        /* never free inside a hiredis callback; later replies of c->dying count as lost */
        c->dying = c->ac;
        c->ac = NULL;
        event_active(c->drop_ev, EV_TIMEOUT, 0);
    }
    retry_schedule(c);
    state_set(c, REDIS_CLIENT_CLOSED);
}

/* hiredis reported the live connection gone; it frees the context itself. */
static void client_lost(struct redis_client *c, const redisAsyncContext *ac, bool connecting)
{
    const char *why = ac->c.errstr[0] != '\0' ? ac->c.errstr : "connection closed";

    if (connecting)
        client_error(c, LOG_LEVEL_WARN, "connect to %s failed: %s", c->opts.endpoint, why);
    else
        client_error(c, LOG_LEVEL_WARN, "connection to %s lost: %s", c->opts.endpoint, why);
    evtimer_del(c->connect_ev);
    evtimer_del(c->deadline_ev);
    c->ac = NULL;
    retry_schedule(c);
    state_set(c, REDIS_CLIENT_CLOSED);
}

/* ---- sending ---- */

static struct redis_client_cmd *cmd_new(struct redis_client *c, enum cmd_kind kind,
                                        redis_client_reply_fn fn, void *arg, long timeout_ms,
                                        size_t extra)
{
    struct redis_client_cmd *cmd = calloc(1, sizeof(*cmd) + extra);

    if (cmd == NULL) {
        log_error("redis %s: out of memory queueing a command", c->opts.name);
        return NULL;
    }
    cmd->client = c;
    cmd->kind = kind;
    cmd->fn = fn;
    cmd->arg = arg;
    cmd->script_id = -1;
    if (timeout_ms > 0) {
        cmd->timeout_ms = timeout_ms;
        cmd->deadline_ms = now_ms() + timeout_ms;
    }
    return cmd;
}

static void client_on_reply(redisAsyncContext *ac, void *r, void *privdata);

/* Queue cmd on the live connection; false (cmd not queued) when hiredis refuses it. */
static bool cmd_send(struct redis_client *c, struct redis_client_cmd *cmd, int argc,
                     const char **argv, const size_t *argvlen)
{
    if (redisAsyncCommandArgv(c->ac, client_on_reply, cmd, argc, argv, argvlen) != REDIS_OK)
        return false;
    fifo_push(c, cmd);
    deadline_arm(c);
    return true;
}

/* Queue a command already in the wire format; it is copied, as with cmd_send. */
static bool cmd_send_formatted(struct redis_client *c, struct redis_client_cmd *cmd,
                               const char *resp, size_t len)
{
    if (redisAsyncFormattedCommand(c->ac, client_on_reply, cmd, resp, len) != REDIS_OK)
        return false;
    fifo_push(c, cmd);
    deadline_arm(c);
    return true;
}

/* Decimal digits of n. */
static size_t decimal_len(size_t n)
{
    size_t digits = 1;

    while (n >= 10) {
        n /= 10;
        digits++;
    }
    return digits;
}

/* Write n in decimal at dst (no NUL); the byte after it. */
static char *decimal_put(char *dst, size_t n)
{
    size_t digits = decimal_len(n);

    for (size_t i = digits; i > 0; i--) {
        dst[i - 1] = (char)('0' + n % 10);
        n /= 10;
    }
    return dst + digits;
}

/* What resp_bulk writes for len bytes of data. */
static size_t resp_bulk_len(size_t len)
{
    return 1 + decimal_len(len) + 2 + len + 2;
}

/* Write one RESP bulk string ("$<len>\r\n<data>\r\n") at dst; the byte after it. */
static char *resp_bulk(char *dst, const char *data, size_t len)
{
    *dst++ = '$';
    dst = decimal_put(dst, len);
    *dst++ = '\r';
    *dst++ = '\n';
    memcpy(dst, data, len);
    dst[len] = '\r';
    dst[len + 1] = '\n';
    return dst + len + 2;
}

/* Write a RESP array header ("*<n>\r\n") at dst; the byte after it. */
static char *resp_array(char *dst, size_t n)
{
    *dst++ = '*';
    dst = decimal_put(dst, n);
    *dst++ = '\r';
    *dst++ = '\n';
    return dst;
}

static bool eval_send(struct redis_client *c, struct redis_client_cmd *cmd)
{
    const struct redis_client_script *script = c->scripts[cmd->script_id];
    char head[EVAL_HEAD_ROOM];
    char *resp, *end;
    size_t head_len, source_len;
    bool ok;

    if (script->sha_known && !cmd->eval_retried) {
        end = resp_array(head, cmd->eval_argc + 2);
        end = resp_bulk(end, "EVALSHA", 7);
        end = resp_bulk(end, script->sha, CLIENT_SHA_LEN);
        head_len = (size_t)(end - head);
        /* the arguments were formatted EVAL_HEAD_ROOM bytes into the command's buffer */
        resp = cmd->eval_args - head_len;
        memcpy(resp, head, head_len);
        return cmd_send_formatted(c, cmd, resp, head_len + cmd->eval_args_len);
    }
    /* the rare fallback (no SHA yet, or the server lost its script cache) carries the source */
    source_len = strlen(script->source);
    resp = malloc(EVAL_HEAD_ROOM + resp_bulk_len(source_len) + cmd->eval_args_len);
    if (resp == NULL)
        return false;
    end = resp_array(resp, cmd->eval_argc + 2);
    end = resp_bulk(end, "EVAL", 4);
    end = resp_bulk(end, script->source, source_len);
    memcpy(end, cmd->eval_args, cmd->eval_args_len);
    ok = cmd_send_formatted(c, cmd, resp, (size_t)(end - resp) + cmd->eval_args_len);
    free(resp);
    return ok;
}

static bool handshake_send(struct redis_client *c, enum cmd_kind kind, int script_id, int argc,
                           const char **argv)
{
    struct redis_client_cmd *cmd = cmd_new(c, kind, NULL, NULL, 0, 0);

    if (cmd == NULL)
        return false;
    cmd->script_id = script_id;
    if (!cmd_send(c, cmd, argc, argv, NULL)) {
        free(cmd);
        return false;
    }
    c->handshake_left++;
    return true;
}

/* Pipeline AUTH, SELECT, CLIENT SETNAME and SCRIPT LOADs; the last reply makes us CONNECTED. */
static void client_handshake(struct redis_client *c)
{
    const struct client_options *o = &c->opts;
    bool ok = true;
    char db[16];

    c->handshake_left = 0;
    if (o->password != NULL) {
        const char *argv[3] = {"AUTH"};
        int argc = 1;

        if (o->username != NULL)
            argv[argc++] = o->username;
        argv[argc++] = o->password;
        ok = handshake_send(c, CMD_AUTH, -1, argc, argv);
    }
    if (ok && o->db != 0) {
        snprintf(db, sizeof(db), "%d", o->db);
        ok = handshake_send(c, CMD_SELECT, -1, 2, (const char *[]){"SELECT", db});
    }
    if (ok)
        ok = handshake_send(c, CMD_SETNAME, -1, 3, (const char *[]){"CLIENT", "SETNAME", o->name});
    for (int i = 0; ok && i < c->nscripts; i++) {
        ok = handshake_send(c, CMD_SCRIPT_LOAD, i, 3,
                            (const char *[]){"SCRIPT", "LOAD", c->scripts[i]->source});
    }
    if (!ok)
        client_drop(c, LOG_LEVEL_ERROR, "handshake with %s failed: cannot queue a command",
                    o->endpoint);
}

static void client_ready(struct redis_client *c)
{
    evtimer_del(c->connect_ev);
    c->attempt = 0;
    log_info("redis %s: connected to %s%s", c->opts.name, c->opts.endpoint,
             c->opts.password != NULL ? " (authenticated)" : "");
    state_set(c, REDIS_CLIENT_CONNECTED);
}

static void handshake_reply(struct redis_client *c, const struct redis_client_cmd *cmd,
                            const redisReply *reply)
{
    static const char *const step_names[] = {
        [CMD_AUTH] = "AUTH",
        [CMD_SELECT] = "SELECT",
        [CMD_SETNAME] = "CLIENT SETNAME",
        [CMD_SCRIPT_LOAD] = "SCRIPT LOAD",
    };
    struct redis_client_script *script;

    /* a lost connection is handled by client_lost; a dropped one's replies are moot */
    if (reply == NULL || c->state != REDIS_CLIENT_CONNECTING)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        int len = reply->len > CLIENT_REPLY_QUOTE_MAX ? CLIENT_REPLY_QUOTE_MAX : (int)reply->len;

        client_drop(c, LOG_LEVEL_ERROR, "%s on %s rejected: %.*s", step_names[cmd->kind],
                    c->opts.endpoint, len, reply->str);
        return;
    }
    if (cmd->kind == CMD_SCRIPT_LOAD) {
        if (reply->type != REDIS_REPLY_STRING || reply->len != CLIENT_SHA_LEN) {
            client_drop(c, LOG_LEVEL_ERROR, "SCRIPT LOAD on %s: unexpected reply",
                        c->opts.endpoint);
            return;
        }
        script = c->scripts[cmd->script_id];
        memcpy(script->sha, reply->str, CLIENT_SHA_LEN);
        script->sha[CLIENT_SHA_LEN] = '\0';
        script->sha_known = true;
    }
    if (--c->handshake_left == 0)
        client_ready(c);
}

static bool reply_is_noscript(const redisReply *reply)
{
    return reply != NULL && reply->type == REDIS_REPLY_ERROR && reply->len >= 8 &&
           memcmp(reply->str, "NOSCRIPT", 8) == 0;
}

/* redisCallbackFn for every command: fires exactly once per command, frees its cmd. */
static void client_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redis_client_cmd *cmd = privdata;
    struct redis_client *c = cmd->client;
    bool live = ac == c->ac;
    redisReply *reply = live ? r : NULL;

    fifo_shift(c, cmd);
    if (live && reply == NULL)
        client_lost(c, ac, false);
    else if (live)
        deadline_arm(c);

    if (cmd->kind == CMD_EVAL && reply_is_noscript(reply) && !cmd->eval_retried) {
        /* the server lost its script cache (SCRIPT FLUSH, restart, failover): send the body */
        cmd->eval_retried = true;
        if (eval_send(c, cmd))
            return;
    }
    if (cmd->kind == CMD_USER || cmd->kind == CMD_EVAL) {
        if (cmd->fn != NULL)
            cmd->fn(c, reply, cmd->arg);
    } else {
        handshake_reply(c, cmd, reply);
    }
    free(cmd);
}

/* ---- hiredis connection callbacks ---- */

/* redisConnectCallback */
static void client_on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_client *c = ac->data;

    if (c == NULL)
        return;
    if (ac != c->ac) {
        /* hiredis frees a failed context itself, right after this returns */
        if (ac == c->dying && status != REDIS_OK)
            c->dying = NULL;
        return;
    }
    if (status != REDIS_OK) {
        client_lost(c, ac, true);
        return;
    }
    client_handshake(c);
}

/* redisDisconnectCallback: hiredis frees the context right after this returns */
static void client_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_client *c = ac->data;

    (void)status;
    if (c == NULL)
        return;
    if (ac == c->dying)
        c->dying = NULL;
    else if (ac == c->ac)
        client_lost(c, ac, false);
}

/* ---- libevent callbacks ---- */

/* connect_ev: connect + handshake deadline */
static void client_on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct redis_client *c = arg;

    (void)fd;
    (void)what;
    client_drop(c, LOG_LEVEL_WARN, "connect to %s timed out after %ld ms", c->opts.endpoint,
                c->opts.connect_timeout_ms);
}

/* deadline_ev: the oldest pending command's deadline */
static void client_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct redis_client *c = arg;
    const struct redis_client_cmd *head = c->head;

    (void)fd;
    (void)what;
    if (head == NULL || head->deadline_ms == 0)
        return;
    if (head->deadline_ms > now_ms()) {
        deadline_arm(c);
        return;
    }
    client_drop(c, LOG_LEVEL_WARN, "a command to %s timed out after %ld ms (%zu pending)",
                c->opts.endpoint, head->timeout_ms, c->pending);
}

/* retry_ev: backoff elapsed */
static void client_on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    client_connect(arg);
}

/* drop_ev: free a dropped context now that no hiredis callback is on the stack */
static void client_on_drop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dying_free(arg);
}

static void client_connect(struct redis_client *c)
{
    redisAsyncContext *ac;

    dying_free(c);
    if (c->opts.socket != NULL)
        ac = redisAsyncConnectUnix(c->opts.socket);
    else
        ac = redisAsyncConnect(c->opts.host, c->opts.port);
    if (ac == NULL) {
        client_error(c, LOG_LEVEL_ERROR, "connect to %s: out of memory", c->opts.endpoint);
        goto failed;
    }
    if (ac->err) {
        client_error(c, LOG_LEVEL_WARN, "connect to %s failed: %s", c->opts.endpoint, ac->errstr);
        redisAsyncFree(ac);
        goto failed;
    }
    redis_reply_attach(ac->c.reader);
    if (c->opts.socket == NULL && redisEnableKeepAlive(&ac->c) != REDIS_OK) {
        log_warn("redis %s: TCP keepalive unavailable: %s", c->opts.name, ac->c.errstr);
        /* hiredis would treat the leftover error as fatal on the next read */
        ac->c.err = 0;
        ac->c.errstr[0] = '\0';
    }
    if (!events_attach(ac, c->base)) {
        client_error(c, LOG_LEVEL_ERROR, "connect to %s: cannot attach to the event loop",
                     c->opts.endpoint);
        redisAsyncFree(ac);
        goto failed;
    }
    ac->data = c;
    /* both only fail when already set, and ac is fresh */
    (void)redisAsyncSetConnectCallback(ac, client_on_connect);
    (void)redisAsyncSetDisconnectCallback(ac, client_on_disconnect);
    c->ac = ac;
    timer_arm(c, c->connect_ev, c->opts.connect_timeout_ms);
    log_debug("redis %s: connecting to %s", c->opts.name, c->opts.endpoint);
    state_set(c, REDIS_CLIENT_CONNECTING);
    return;

failed:
    retry_schedule(c);
    /* every attempt shows as CONNECTING then CLOSED, even one that failed at once */
    state_set(c, REDIS_CLIENT_CONNECTING);
    if (c->state == REDIS_CLIENT_CONNECTING)
        state_set(c, REDIS_CLIENT_CLOSED);
}

/* ---- public API ---- */

struct redis_client *redis_client_create(struct event_base *base,
                                         const struct redis_client_options *opts,
                                         redis_client_state_fn on_state, void *arg)
{
    struct redis_client *c;

    if (base == NULL || opts == NULL)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    if (!options_load(&c->opts, opts)) {
        free(c);
        return NULL;
    }
    if (!loop_heap_init()) {
        options_clear(&c->opts);
        free(c);
        return NULL;
    }
    c->base = base;
    c->on_state = on_state;
    c->arg = arg;
    c->connect_ev = evtimer_new(base, client_on_connect_timeout, c);
    c->deadline_ev = evtimer_new(base, client_on_deadline, c);
    c->retry_ev = evtimer_new(base, client_on_retry, c);
    c->drop_ev = event_new(base, -1, 0, client_on_drop, c);
    if (c->connect_ev == NULL || c->deadline_ev == NULL || c->retry_ev == NULL ||
        c->drop_ev == NULL) {
        log_error("redis %s: out of memory creating timers", c->opts.name);
        redis_client_free(c);
        return NULL;
    }
    return c;
}

int redis_client_add_script(struct redis_client *c, const char *lua_source)
{
    struct redis_client_script **grown, *script;

    if (c == NULL || lua_source == NULL || c->nscripts == INT_MAX)
        return -1;
    grown = realloc(c->scripts, ((size_t)c->nscripts + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    c->scripts = grown;
    script = calloc(1, sizeof(*script));
    if (script == NULL)
        return -1;
    script->source = strdup(lua_source);
    if (script->source == NULL) {
        free(script);
        return -1;
    }
    c->scripts[c->nscripts] = script;
    return c->nscripts++;
}

bool redis_client_start(struct redis_client *c)
{
    if (c == NULL || c->freeing)
        return false;
    if (c->started)
        return true;
    c->started = true;
    client_connect(c);
    return true;
}

bool redis_client_configure(struct redis_client *c, const struct redis_client_options *opts)
{
    struct client_options next;
    bool target_changed;

    if (c == NULL || opts == NULL || c->freeing || !options_load(&next, opts))
        return false;
    target_changed = !str_same(next.socket, c->opts.socket) || !str_same(next.host, c->opts.host) ||
                     next.port != c->opts.port || next.db != c->opts.db ||
                     !str_same(next.username, c->opts.username);
    options_clear(&c->opts);
    c->opts = next;
    if (!c->started || (c->state == REDIS_CLIENT_CONNECTED && !target_changed))
        return true;
    /* armed first, so the drop below does not schedule a backoff delay */
    retry_now(c);
    if (c->state != REDIS_CLIENT_CLOSED)
        client_drop(c, LOG_LEVEL_INFO, "reconnecting to %s: configuration changed",
                    c->opts.endpoint);
    return true;
}

static long command_timeout(const struct redis_client *c, long timeout_ms)
{
    if (timeout_ms < 0 || timeout_ms > CLIENT_DURATION_MAX_MS) {
        log_error("redis %s: invalid command timeout %ld ms", c->opts.name, timeout_ms);
        return -1;
    }
    return timeout_ms > 0 ? timeout_ms : c->opts.command_timeout_ms;
}

/* Subscribe/monitor replies and CLIENT REPLY OFF would break the one-reply-per-command FIFO. */
static bool command_refused(int argc, const char **argv, const size_t *argvlen)
{
    const char *name = argv[0];
    size_t len = argvlen != NULL ? argvlen[0] : strlen(argv[0]);

    if (arg_is(name, len, "ssubscribe") || arg_is(name, len, "sunsubscribe"))
        return true;
    if (len > 0 && (name[0] == 'p' || name[0] == 'P')) {
        /* hiredis itself strips one leading 'p' when it looks for these */
        name++;
        len--;
    }
    if (arg_is(name, len, "subscribe") || arg_is(name, len, "unsubscribe") ||
        arg_is(name, len, "monitor"))
        return true;
    return argc > 1 && arg_is(argv[0], argvlen != NULL ? argvlen[0] : strlen(argv[0]), "client") &&
           arg_is(argv[1], argvlen != NULL ? argvlen[1] : strlen(argv[1]), "reply");
}

bool redis_client_command(struct redis_client *c, redis_client_reply_fn fn, void *arg,
                          long timeout_ms, int argc, const char **argv, const size_t *argvlen)
{
    struct redis_client_cmd *cmd;
    long timeout;

    if (c == NULL || c->state != REDIS_CLIENT_CONNECTED)
        return false;
    if (argc < 1 || argv == NULL) {
        log_error("redis %s: a command needs at least its name", c->opts.name);
        return false;
    }
    if (command_refused(argc, argv, argvlen)) {
        log_error("redis %s: subscribe, monitor and CLIENT REPLY are not supported", c->opts.name);
        return false;
    }
    timeout = command_timeout(c, timeout_ms);
    if (timeout < 0)
        return false;
    cmd = cmd_new(c, CMD_USER, fn, arg, timeout, 0);
    if (cmd == NULL)
        return false;
    if (!cmd_send(c, cmd, argc, argv, argvlen)) {
        free(cmd);
        return false;
    }
    return true;
}

bool redis_client_eval(struct redis_client *c, redis_client_reply_fn fn, void *arg, long timeout_ms,
                       int script_id, int numkeys, int argc, const char **argv,
                       const size_t *argvlen)
{
    struct redis_client_cmd *cmd;
    size_t bytes = EVAL_HEAD_ROOM;
    char numkeys_text[24];
    size_t numkeys_len;
    long timeout;
    char *end;

    if (c == NULL || c->state != REDIS_CLIENT_CONNECTED)
        return false;
    if (script_id < 0 || script_id >= c->nscripts || argc < 0 || argc > INT_MAX - 3 ||
        numkeys < 0 || numkeys > argc || (argc > 0 && argv == NULL)) {
        log_error("redis %s: invalid eval of script %d", c->opts.name, script_id);
        return false;
    }
    timeout = command_timeout(c, timeout_ms);
    if (timeout < 0)
        return false;
    numkeys_len = (size_t)(decimal_put(numkeys_text, (size_t)numkeys) - numkeys_text);
    bytes += resp_bulk_len(numkeys_len);
    for (int i = 0; i < argc; i++) {
        size_t len = argvlen != NULL ? argvlen[i] : strlen(argv[i]);

        if (len > SIZE_MAX / 4 - bytes)
            return false;
        bytes += resp_bulk_len(len);
    }
    cmd = cmd_new(c, CMD_EVAL, fn, arg, timeout, bytes);
    if (cmd == NULL)
        return false;
    cmd->script_id = script_id;
    cmd->eval_argc = (size_t)argc + 1;
    cmd->eval_args = (char *)(cmd + 1) + EVAL_HEAD_ROOM;
    end = resp_bulk(cmd->eval_args, numkeys_text, numkeys_len);
    for (int i = 0; i < argc; i++)
        end = resp_bulk(end, argv[i], argvlen != NULL ? argvlen[i] : strlen(argv[i]));
    cmd->eval_args_len = (size_t)(end - cmd->eval_args);
    if (!eval_send(c, cmd)) {
        free(cmd);
        return false;
    }
    return true;
}

enum redis_client_state redis_client_state(const struct redis_client *c)
{
    return c != NULL ? c->state : REDIS_CLIENT_CLOSED;
}

const char *redis_client_state_name(enum redis_client_state state)
{
    switch (state) {
    case REDIS_CLIENT_CLOSED:
        return "closed";
    case REDIS_CLIENT_CONNECTING:
        return "connecting";
    case REDIS_CLIENT_CONNECTED:
        return "connected";
    }
    return "unknown";
}

const char *redis_client_last_error(const struct redis_client *c)
{
    return c != NULL ? c->last_error : "";
}

size_t redis_client_pending(const struct redis_client *c)
{
    return c != NULL ? c->pending : 0;
}

uint64_t redis_client_commands_sent(const struct redis_client *c)
{
    return c != NULL ? c->commands_sent : 0;
}

void redis_client_free(struct redis_client *c)
{
    redisAsyncContext *ac;

    if (c == NULL)
        return;
    c->freeing = true;
    c->state = REDIS_CLIENT_CLOSED;
    /* the dying context's commands are the oldest: fail them first, in order */
    dying_free(c);
    ac = c->ac;
    if (ac != NULL) {
        c->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac); /* pending callbacks run now, with NULL */
    }
    if (c->connect_ev != NULL)
        event_free(c->connect_ev);
    if (c->deadline_ev != NULL)
        event_free(c->deadline_ev);
    if (c->retry_ev != NULL)
        event_free(c->retry_ev);
    if (c->drop_ev != NULL)
        event_free(c->drop_ev);
    for (int i = 0; i < c->nscripts; i++) {
        free(c->scripts[i]->source);
        free(c->scripts[i]);
    }
    free(c->scripts);
    options_clear(&c->opts);
    free(c);
    /* after the contexts: their replies' blocks went back to the heap above */
    loop_heap_cleanup();
}
