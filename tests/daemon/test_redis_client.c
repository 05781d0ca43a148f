/* redis_client against real redis-server processes on 127.0.0.1 (and a unix socket). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "log.h"
#include "redis_client.h"
#include "redis_server.h"
#include "test_loop.h"

#define MAX_STATES 512
#define PIPELINE_COUNT 10000
#define SCRIPT_ECHO "return {KEYS[1], ARGV[1]}"
#define SCRIPT_ECHO_SHA "d006f1a90249474274c76f5be725b8f5804a346b"

struct fixture {
    struct event_base *base;
    struct event *tick;
    struct redis_server srv;
    struct redis_server srv2;
    struct redis_client *c;
    struct redis_client *c2;
    enum redis_client_state states[MAX_STATES];
    int64_t state_ms[MAX_STATES];
    int nstates;
    int stderr_saved; /* >= 0 while stderr goes to stderr_path */
    char stderr_path[64];
};

/* What one reply callback saw. */
struct capture {
    struct fixture *f;
    int calls;
    int nulls;
    int type;
    long long integer;
    char str[256];
    size_t len;
    size_t elements;
    char elem[4][64];
    size_t elem_len[4];
    long long elem_int[4];
    enum redis_client_state state_at_call;
    int64_t at_ms;
};

static int64_t now_ms(void)
{
    return (int64_t)(clock_monotonic_us() / 1000);
}

/* ---- helpers ---- */

static void on_state(struct redis_client *c, enum redis_client_state state, void *arg)
{
    struct fixture *f = arg;

    (void)c;
    if (f->nstates < MAX_STATES) {
        f->states[f->nstates] = state;
        f->state_ms[f->nstates] = now_ms();
        f->nstates++;
    }
}

static bool wait_state(struct fixture *f, struct redis_client *c, enum redis_client_state state,
                       long ms)
{
    int64_t deadline = now_ms() + ms;

    while (redis_client_state(c) != state && now_ms() < deadline)
        event_base_loop(f->base, EVLOOP_ONCE);
    return redis_client_state(c) == state;
}

static int count_states(const struct fixture *f, enum redis_client_state state, int from)
{
    int n = 0;

    for (int i = from; i < f->nstates; i++)
        n += f->states[i] == state;
    return n;
}

static void on_capture(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct capture *cap = arg;

    cap->calls++;
    cap->state_at_call = redis_client_state(c);
    cap->at_ms = now_ms();
    if (reply == NULL) {
        cap->nulls++;
        return;
    }
    cap->type = reply->type;
    cap->integer = reply->integer;
    if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS ||
        reply->type == REDIS_REPLY_ERROR) {
        cap->len = reply->len < sizeof(cap->str) ? reply->len : sizeof(cap->str) - 1;
        memcpy(cap->str, reply->str, cap->len);
        cap->str[cap->len] = '\0';
    }
    cap->elements = reply->elements;
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements && i < 4; i++) {
        const redisReply *e = reply->element[i];

        cap->elem_int[i] = e->integer;
        cap->elem_len[i] = e->len < sizeof(cap->elem[i]) ? e->len : sizeof(cap->elem[i]) - 1;
        if (e->str != NULL)
            memcpy(cap->elem[i], e->str, cap->elem_len[i]);
    }
}

static struct redis_client_options options_for(const struct redis_server *s)
{
    struct redis_client_options o = {
        .name = "test-client",
        .host = "127.0.0.1",
        .port = s->port,
        .connect_timeout_ms = 3000,
        .command_timeout_ms = 3000,
        .backoff_min_ms = 20,
        .backoff_max_ms = 200,
    };
    return o;
}

static struct redis_client *start_client(struct fixture *f, const struct redis_client_options *o)
{
    struct redis_client *c = redis_client_create(f->base, o, on_state, f);

    assert_non_null(c);
    assert_true(redis_client_start(c));
    return c;
}

/* Send argv (NUL-terminated strings) and wait for the reply. */
static void command_sync(struct fixture *f, struct redis_client *c, struct capture *cap, int argc,
                         const char **argv)
{
    memset(cap, 0, sizeof(*cap));
    cap->f = f;
    assert_true(redis_client_command(c, on_capture, cap, 0, argc, argv, NULL));
    assert_true(test_loop_wait(f->base, &cap->calls, 1, 5000));
}

static void expect_pong(struct fixture *f, struct redis_client *c)
{
    struct capture cap;

    command_sync(f, c, &cap, 1, (const char *[]){"PING"});
    assert_int_equal(cap.nulls, 0);
    assert_int_equal(cap.type, REDIS_REPLY_STATUS);
    assert_string_equal(cap.str, "PONG");
}

/* Send stderr to a file, so a test can check what was logged. */
static void stderr_capture(struct fixture *f)
{
    int fd;

    snprintf(f->stderr_path, sizeof(f->stderr_path), "/tmp/test_redis_client_log.XXXXXX");
    fd = mkstemp(f->stderr_path);
    assert_true(fd >= 0);
    fflush(stderr);
    f->stderr_saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

/* Restore stderr and return what was logged (caller frees). */
static char *stderr_release(struct fixture *f)
{
    char *text = calloc(1, 1 << 20);
    FILE *fp;
    size_t n;

    assert_non_null(text);
    fflush(stderr);
    dup2(f->stderr_saved, STDERR_FILENO);
    close(f->stderr_saved);
    f->stderr_saved = -1;
    fp = fopen(f->stderr_path, "r");
    assert_non_null(fp);
    n = fread(text, 1, (1 << 20) - 1, fp);
    text[n] = '\0';
    fclose(fp);
    unlink(f->stderr_path);
    return text;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->stderr_saved = -1;
    test_loop_start(&f->base, &f->tick, 5);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f->stderr_saved >= 0)
        free(stderr_release(f));
    redis_client_free(f->c);
    redis_client_free(f->c2);
    redis_server_cleanup(&f->srv);
    redis_server_cleanup(&f->srv2);
    test_loop_stop(f->base, f->tick);
    free(f);
    return 0;
}

/* ---- tests ---- */

static void test_connect_and_binary_args(void **state)
{
    struct fixture *f = *state;
    struct redis_client_options o;
    const char *set[] = {"SET", "k\0ey", "v\0al\0ue"};
    const size_t set_len[] = {3, 4, 7};
    const char *get[] = {"GET", "k\0ey"};
    const size_t get_len[] = {3, 4};
    struct capture cap = {.f = f};

    redis_server_start(&f->srv, NULL);
    o = options_for(&f->srv);
    f->c = start_client(f, &o);
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));
    assert_true(f->nstates >= 2);
    assert_int_equal(f->states[0], REDIS_CLIENT_CONNECTING);
    assert_int_equal(f->states[f->nstates - 1], REDIS_CLIENT_CONNECTED);
    assert_int_equal(redis_client_pending(f->c), 0);

    assert_true(redis_client_command(f->c, on_capture, &cap, 0, 3, set, set_len));
    assert_int_equal(redis_client_pending(f->c), 1);
    assert_true(test_loop_wait(f->base, &cap.calls, 1, 5000));
    assert_int_equal(cap.type, REDIS_REPLY_STATUS);
    assert_string_equal(cap.str, "OK");

    memset(&cap, 0, sizeof(cap));
    assert_true(redis_client_command(f->c, on_capture, &cap, 0, 2, get, get_len));
    assert_true(test_loop_wait(f->base, &cap.calls, 1, 5000));
    assert_int_equal(cap.type, REDIS_REPLY_STRING);
    assert_int_equal(cap.len, 7);
    assert_memory_equal(cap.str, "v\0al\0ue", 7);
    assert_int_equal(redis_client_pending(f->c), 0);

    /* the handshake named the connection */
    command_sync(f, f->c, &cap, 2, (const char *[]){"CLIENT", "GETNAME"});
    assert_string_equal(cap.str, "test-client");
}

struct pipeline {
    struct fixture *f;
    int replies;
    int out_of_order;
    struct capture chained;
};

static void on_incr(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct pipeline *p = arg;

    p->replies++;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER || reply->integer != p->replies)
        p->out_of_order++;
    /* callbacks may issue commands */
    if (p->replies == PIPELINE_COUNT)
        assert_true(redis_client_command(c, on_capture, &p->chained, 0, 2,
                                         (const char *[]){"GET", "counter"}, NULL));
}

static void test_pipeline_10000(void **state)
{
    struct fixture *f = *state;
    struct redis_client_options o;
    struct pipeline p = {.f = f};
    int64_t start;

    redis_server_start(&f->srv, NULL);
    o = options_for(&f->srv);
    f->c = start_client(f, &o);
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));

    start = now_ms();
    for (int i = 0; i < PIPELINE_COUNT; i++)
        assert_true(redis_client_command(f->c, on_incr, &p, 0, 2,
                                         (const char *[]){"INCR", "counter"}, NULL));
    assert_int_equal(redis_client_pending(f->c), PIPELINE_COUNT);
    assert_true(test_loop_wait(f->base, &p.replies, PIPELINE_COUNT, 20000));
    print_message("pipelined %d INCRs in %lld ms\n", PIPELINE_COUNT, (long long)(now_ms() - start));
    assert_int_equal(p.out_of_order, 0);
    assert_true(test_loop_wait(f->base, &p.chained.calls, 1, 5000));
    assert_int_equal(p.chained.type, REDIS_REPLY_STRING);
    assert_string_equal(p.chained.str, "10000");
    assert_int_equal(redis_client_pending(f->c), 0);
}

static void test_auth_password_and_username(void **state)
{
    struct fixture *f = *state;
    struct redis_client_options o;
    struct capture cap;

    redis_server_start(&f->srv, (const char *[]){"--requirepass", "s3cret-pw", NULL});
    o = options_for(&f->srv);
    o.password = "s3cret-pw";
    f->c = start_client(f, &o);
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));
    expect_pong(f, f->c);

    /* Redis 6 ACL: AUTH username password */
    command_sync(f, f->c, &cap, 7,
                 (const char *[]){"ACL", "SETUSER", "alice", "on", ">alice-pw", "~*", "+@all"});
    assert_string_equal(cap.str, "OK");
    o.username = "alice";
    o.password = "alice-pw";
    f->c2 = start_client(f, &o);
    assert_true(wait_state(f, f->c2, REDIS_CLIENT_CONNECTED, 5000));
    command_sync(f, f->c2, &cap, 2, (const char *[]){"ACL", "WHOAMI"});
    assert_int_equal(cap.type, REDIS_REPLY_STRING);
    assert_string_equal(cap.str, "alice");
}

static void test_auth_failure_then_configure(void **state)
{
    struct fixture *f = *state;
    struct redis_client_options o;
    char *logged;

    redis_server_start(&f->srv, (const char *[]){"--requirepass", "right-pw", NULL});
    log_set_level(LOG_LEVEL_DEBUG);
    stderr_capture(f);
    o = options_for(&f->srv);
    o.password = "wrong-pw";
    f->c = start_client(f, &o);
    test_loop_run_for(f->base, 600);
    /* rejected, and retried with backoff rather than given up or spun */
    assert_int_equal(count_states(f, REDIS_CLIENT_CONNECTED, 0), 0);
    assert_true(count_states(f, REDIS_CLIENT_CONNECTING, 0) >= 2);
    assert_true(count_states(f, REDIS_CLIENT_CONNECTING, 0) <= 30);
    assert_non_null(strstr(redis_client_last_error(f->c), "AUTH"));
    assert_non_null(strstr(redis_client_last_error(f->c), "WRONGPASS"));
    assert_null(strstr(redis_client_last_error(f->c), "wrong-pw"));

    o.password = "right-pw";
    assert_true(redis_client_configure(f->c, &o));
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 2000));
    expect_pong(f, f->c);

    logged = stderr_release(f);
    log_set_level(LOG_LEVEL_INFO);
    assert_non_null(strstr(logged, "AUTH"));
    assert_null(strstr(logged, "wrong-pw"));
    assert_null(strstr(logged, "right-pw"));
    free(logged);
}

static void test_select_db(void **state)
{
    struct fixture *f = *state;
    struct redis_client_options o;
    struct capture cap;

    redis_server_start(&f->srv, NULL);
    o = options_for(&f->srv);
    o.db = 3;
    f->c = start_client(f, &o);
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));
    command_sync(f, f->c, &cap, 3, (const char *[]){"SET", "in-db3", "1"});
    command_sync(f, f->c, &cap, 2, (const char *[]){"CLIENT", "INFO"});
    assert_non_null(strstr(cap.str, " db=3 "));

    o.db = 0;
    f->c2 = start_client(f, &o);
    assert_true(wait_state(f, f->c2, REDIS_CLIENT_CONNECTED, 5000));
    command_sync(f, f->c2, &cap, 2, (const char *[]){"EXISTS", "in-db3"});
    assert_int_equal(cap.type, REDIS_REPLY_INTEGER);
    assert_int_equal(cap.integer, 0);
    command_sync(f, f->c, &cap, 2, (const char *[]){"EXISTS", "in-db3"});
    assert_int_equal(cap.integer, 1);
}

static void test_unix_socket(void **state)
{
    struct fixture *f = *state;
    struct redis_client_options o;
    struct capture cap;

    /* the path is known before start: redis_server_start fills dir and sock only when empty */
    snprintf(f->srv.dir, sizeof(f->srv.dir), "/tmp/test_redis_client.XXXXXX");
    assert_non_null(mkdtemp(f->srv.dir));
    snprintf(f->srv.sock, sizeof(f->srv.sock), "%s/redis.sock", f->srv.dir);
    redis_server_start(
        &f->srv, (const char *[]){"--unixsocket", f->srv.sock, "--unixsocketperm", "700", NULL});
    o = options_for(&f->srv);
    o.host = NULL;
    o.port = 0;
    o.socket = f->srv.sock;
    f->c = start_client(f, &o);
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));
    expect_pong(f, f->c);
    command_sync(f, f->c, &cap, 2, (const char *[]){"CLIENT", "INFO"});
    assert_non_null(strstr(cap.str, f->srv.sock));
}

static void eval_sync(struct fixture *f, struct capture *cap, int script)
{
    const char *args[] = {"k\0x", "v\0y"};
    const size_t lens[] = {3, 3};

    memset(cap, 0, sizeof(*cap));
    assert_true(redis_client_eval(f->c, on_capture, cap, 0, script, 1, 2, args, lens));
    assert_true(test_loop_wait(f->base, &cap->calls, 1, 5000));
    assert_int_equal(cap->nulls, 0);
    assert_int_equal(cap->type, REDIS_REPLY_ARRAY);
    assert_int_equal(cap->elements, 2);
    assert_int_equal(cap->elem_len[0], 3);
    assert_memory_equal(cap->elem[0], "k\0x", 3);
    assert_int_equal(cap->elem_len[1], 3);
    assert_memory_equal(cap->elem[1], "v\0y", 3);
}

static void test_script_eval(void **state)
{
    struct fixture *f = *state;
    struct redis_client_options o;
    struct capture cap;
    int echo, late;

    redis_server_start(&f->srv, NULL);
    o = options_for(&f->srv);
    f->c = redis_client_create(f->base, &o, on_state, f);
    assert_non_null(f->c);
    echo = redis_client_add_script(f->c, SCRIPT_ECHO);
    assert_int_equal(echo, 0);
    assert_true(redis_client_start(f->c));
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));

    /* loaded during the handshake, before any eval */
    command_sync(f, f->c, &cap, 3, (const char *[]){"SCRIPT", "EXISTS", SCRIPT_ECHO_SHA});
    assert_int_equal(cap.type, REDIS_REPLY_ARRAY);
    assert_int_equal(cap.elements, 1);
    assert_int_equal(cap.elem_int[0], 1);
    eval_sync(f, &cap, echo);
    assert_false(redis_client_eval(f->c, on_capture, &cap, 0, 7, 0, 0, NULL, NULL));
    assert_false(
        redis_client_eval(f->c, on_capture, &cap, 0, echo, 3, 2, (const char *[]){"a", "b"}, NULL));

    /* added while connected: sent as EVAL until the next connect */
    late = redis_client_add_script(f->c, "return {KEYS[1], ARGV[1]}");
    assert_int_equal(late, 1);
    eval_sync(f, &cap, late);
}

/* The client writes eval arguments in the wire format itself: empty ones, large ones, bytes that
 * look like the protocol, and more than nine of them all arrive intact. */
static void test_script_eval_argument_shapes(void **state)
{
    struct fixture *f = *state;
    struct redis_client_options o;
    struct capture cap = {0};
    const char *args[12] = {"", NULL, "x\r\n$3\r\n"};
    size_t lens[12] = {0, 100000, 7};
    char *big = malloc(lens[1]);
    int lengths;

    assert_non_null(big);
    memset(big, 'b', lens[1]);
    args[1] = big;
    for (size_t i = 3; i < DM_ARRAY_LEN(args); i++) {
        args[i] = "a";
        lens[i] = 1;
    }
    redis_server_start(&f->srv, NULL);
    o = options_for(&f->srv);
    f->c = redis_client_create(f->base, &o, on_state, f);
    assert_non_null(f->c);
    lengths = redis_client_add_script(f->c, "return {#KEYS[1], #ARGV[1], #ARGV[2], #ARGV}");
    assert_true(lengths >= 0);
    assert_true(redis_client_start(f->c));
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));
    assert_true(redis_client_eval(f->c, on_capture, &cap, 0, lengths, 1, 12, args, lens));
    assert_true(test_loop_wait(f->base, &cap.calls, 1, 5000));
    free(big);
    assert_int_equal(cap.type, REDIS_REPLY_ARRAY);
    assert_int_equal(cap.elements, 4);
    assert_int_equal(cap.elem_int[0], 0);
    assert_int_equal(cap.elem_int[1], 100000);
    assert_int_equal(cap.elem_int[2], 7);
    assert_int_equal(cap.elem_int[3], 11);
}

static void test_script_flush_fallback(void **state)
{
    struct fixture *f = *state;
    struct redis_client_options o;
    struct capture cap;
    int echo;

    redis_server_start(&f->srv, NULL);
    o = options_for(&f->srv);
    f->c = redis_client_create(f->base, &o, on_state, f);
    assert_non_null(f->c);
    echo = redis_client_add_script(f->c, SCRIPT_ECHO);
    assert_true(echo >= 0);
    assert_true(redis_client_start(f->c));
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));
    eval_sync(f, &cap, echo);

    command_sync(f, f->c, &cap, 2, (const char *[]){"SCRIPT", "FLUSH"});
    assert_string_equal(cap.str, "OK");
    /* EVALSHA now gets NOSCRIPT; the caller still sees the script's result */
    eval_sync(f, &cap, echo);
    eval_sync(f, &cap, echo);
    assert_int_equal(count_states(f, REDIS_CLIENT_CLOSED, 0), 0);
}

static void test_command_deadline(void **state)
{
    struct fixture *f = *state;
    struct redis_client_options o;
    struct capture slow = {.f = f}, behind = {.f = f};
    int64_t start;
    int closed_before;

    redis_server_start(&f->srv, NULL);
    o = options_for(&f->srv);
    f->c = start_client(f, &o);
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));
    closed_before = count_states(f, REDIS_CLIENT_CLOSED, 0);

    start = now_ms();
    assert_true(redis_client_command(f->c, on_capture, &slow, 200, 3,
                                     (const char *[]){"DEBUG", "SLEEP", "1"}, NULL));
    assert_true(
        redis_client_command(f->c, on_capture, &behind, 0, 1, (const char *[]){"PING"}, NULL));
    assert_true(test_loop_wait(f->base, &behind.calls, 1, 5000));
    assert_int_equal(slow.calls, 1);
    assert_int_equal(slow.nulls, 1);
    assert_int_equal(behind.nulls, 1);
    assert_true(slow.at_ms - start >= 190);
    assert_true(slow.at_ms - start < 800); /* not the 1000 ms the server sleeps */
    assert_int_equal(slow.state_at_call, REDIS_CLIENT_CLOSED);
    assert_true(count_states(f, REDIS_CLIENT_CLOSED, 0) > closed_before);
    assert_non_null(strstr(redis_client_last_error(f->c), "timed out"));
    assert_int_equal(redis_client_pending(f->c), 0);

    /* reconnects by itself; commands work again */
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));
    expect_pong(f, f->c);
}

static void test_server_killed_then_restarted(void **state)
{
    struct fixture *f = *state;
    struct redis_client_options o;
    struct capture blocked = {.f = f};
    int mark;

    redis_server_start(&f->srv, NULL);
    o = options_for(&f->srv);
    f->c = start_client(f, &o);
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));
    assert_true(redis_client_command(f->c, on_capture, &blocked, 30000, 3,
                                     (const char *[]){"BLPOP", "nothing", "0"}, NULL));
    test_loop_run_for(f->base, 100);
    assert_int_equal(redis_client_pending(f->c), 1);

    redis_server_kill(&f->srv);
    assert_true(test_loop_wait(f->base, &blocked.calls, 1, 5000));
    assert_int_equal(blocked.nulls, 1);
    /* CLOSED is reported before the pending callbacks get NULL */
    assert_int_equal(blocked.state_at_call, REDIS_CLIENT_CLOSED);
    assert_int_equal(redis_client_pending(f->c), 0);
    assert_false(
        redis_client_command(f->c, on_capture, &blocked, 0, 1, (const char *[]){"PING"}, NULL));

    mark = f->nstates;
    test_loop_run_for(f->base, 400);
    assert_true(count_states(f, REDIS_CLIENT_CONNECTING, mark) >= 2);
    assert_true(count_states(f, REDIS_CLIENT_CONNECTING, mark) <= 25);
    assert_int_not_equal(redis_client_state(f->c), REDIS_CLIENT_CONNECTED);

    redis_server_start(&f->srv, NULL);
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));
    expect_pong(f, f->c);
}

static void test_unreachable_port_backs_off(void **state)
{
    struct fixture *f = *state;
    struct redis_client_options o = {
        .name = "test-backoff",
        .host = "127.0.0.1",
        .port = redis_server_free_port(),
        .backoff_min_ms = 20,
        .backoff_max_ms = 640,
    };
    long cap = 20;
    int attempts, starts[MAX_STATES], n = 0;
    bool long_gap = false;

    f->c = start_client(f, &o);
    test_loop_run_for(f->base, 2500);
    for (int i = 0; i < f->nstates; i++) {
        if (f->states[i] == REDIS_CLIENT_CONNECTING)
            starts[n++] = i;
    }
    attempts = n;
    print_message("%d connect attempts in 2500 ms\n", attempts);
    /* a fixed 20 ms delay would make ~125 attempts; doubling to 640 ms makes ~10 */
    assert_true(attempts >= 4);
    assert_true(attempts <= 40);
    for (int k = 1; k < n; k++) {
        int64_t gap = f->state_ms[starts[k]] - f->state_ms[starts[k - 1]];

        /* libevent's coarse monotonic clock may fire a timer a few ms early */
        if (gap < 12 || gap > cap + 150)
            fail_msg("attempt %d came %lld ms after the previous one, cap %ld ms", k,
                     (long long)gap, cap);
        long_gap |= gap >= 160;
        cap = cap * 2 > 640 ? 640 : cap * 2;
    }
    assert_true(long_gap);
    assert_int_not_equal(redis_client_state(f->c), REDIS_CLIENT_CONNECTED);
    assert_non_null(strstr(redis_client_last_error(f->c), "refused"));
}

static void test_connect_timeout(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int silent = socket(AF_INET, SOCK_STREAM, 0);
    struct redis_client_options o = {
        .host = "127.0.0.1", .connect_timeout_ms = 300, .backoff_min_ms = 5000};
    int64_t start;

    /* a listener that never answers: the TCP handshake completes, the Redis one never does */
    assert_true(silent >= 0);
    assert_int_equal(bind(silent, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(silent, 8), 0);
    assert_int_equal(getsockname(silent, (struct sockaddr *)&sa, &len), 0);
    o.port = ntohs(sa.sin_port);

    start = now_ms();
    f->c = start_client(f, &o);
    assert_true(test_loop_wait(f->base, &f->nstates, 2, 3000));
    assert_int_equal(f->states[1], REDIS_CLIENT_CLOSED);
    assert_true(f->state_ms[1] - start >= 290);
    assert_true(f->state_ms[1] - start < 1500);
    assert_non_null(strstr(redis_client_last_error(f->c), "timed out"));
    close(silent);
}

struct probe {
    int *calls;
    int *nulls;
    int *refused;
};

static void on_probe(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct probe *p = arg;

    (*p->calls)++;
    *p->nulls += reply == NULL;
    /* a callback during free may try to send; it must be refused, not crash */
    *p->refused += !redis_client_command(c, NULL, NULL, 0, 1, (const char *[]){"PING"}, NULL);
    free(p);
}

static void test_free_with_pending(void **state)
{
    struct fixture *f = *state;
    struct redis_client_options o;
    int calls = 0, nulls = 0, refused = 0, states_before;

    redis_server_start(&f->srv, NULL);
    o = options_for(&f->srv);
    f->c = start_client(f, &o);
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));
    for (int i = 0; i < 6; i++) {
        /* heap privdata: LeakSanitizer reports any callback that never fires */
        struct probe *p = malloc(sizeof(*p));
        bool sent;

        assert_non_null(p);
        *p = (struct probe){&calls, &nulls, &refused};
        if (i == 0)
            sent = redis_client_command(f->c, on_probe, p, 30000, 3,
                                        (const char *[]){"BLPOP", "nothing", "0"}, NULL);
        else
            sent = redis_client_command(f->c, on_probe, p, 30000, 2, (const char *[]){"GET", "x"},
                                        NULL);
        assert_true(sent);
    }
    test_loop_run_for(f->base, 100);
    assert_int_equal(calls, 0);
    assert_int_equal(redis_client_pending(f->c), 6);

    states_before = f->nstates;
    redis_client_free(f->c);
    f->c = NULL;
    assert_int_equal(calls, 6);
    assert_int_equal(nulls, 6);
    assert_int_equal(refused, 6);
    assert_int_equal(f->nstates, states_before); /* on_state is not called during free */
}

static void test_refusals(void **state)
{
    struct fixture *f = *state;
    struct redis_client_options o;
    struct capture cap = {.f = f};
    const char *const refused[][3] = {
        {"SUBSCRIBE", "ch"}, {"psubscribe", "p*"}, {"UNSUBSCRIBE"},
        {"MONITOR"},         {"ssubscribe", "c"},  {"CLIENT", "REPLY", "OFF"},
    };
    const int refused_argc[] = {2, 2, 1, 1, 2, 3};

    redis_server_start(&f->srv, NULL);
    o = options_for(&f->srv);

    /* invalid options never make a client */
    o.host = "redis.example.com";
    assert_null(redis_client_create(f->base, &o, on_state, f));
    o.host = "127.0.0.1";
    o.username = "alice";
    assert_null(redis_client_create(f->base, &o, on_state, f));
    o.username = NULL;
    o.name = "has space";
    assert_null(redis_client_create(f->base, &o, on_state, f));
    o.name = "test-client";

    f->c = redis_client_create(f->base, &o, on_state, f);
    assert_non_null(f->c);
    /* not connected: false, callback never called */
    assert_false(
        redis_client_command(f->c, on_capture, &cap, 0, 1, (const char *[]){"PING"}, NULL));
    assert_true(redis_client_start(f->c));
    assert_true(redis_client_start(f->c));
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));
    for (size_t i = 0; i < sizeof(refused_argc) / sizeof(refused_argc[0]); i++)
        assert_false(redis_client_command(f->c, on_capture, &cap, 0, refused_argc[i],
                                          (const char **)refused[i], NULL));
    assert_false(
        redis_client_command(f->c, on_capture, &cap, -1, 1, (const char *[]){"PING"}, NULL));
    assert_false(
        redis_client_configure(f->c, &(struct redis_client_options){.host = "::1", .port = 0}));
    test_loop_run_for(f->base, 50);
    assert_int_equal(cap.calls, 0);
    /* a rejected configure changed nothing */
    assert_int_equal(redis_client_state(f->c), REDIS_CLIENT_CONNECTED);
    expect_pong(f, f->c);
}

static void test_configure_new_target(void **state)
{
    struct fixture *f = *state;
    struct redis_client_options o;
    struct capture cap;
    char port[16];
    int mark;

    redis_server_start(&f->srv, NULL);
    redis_server_start(&f->srv2, NULL);
    o = options_for(&f->srv);
    f->c = start_client(f, &o);
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));

    /* same target, new password and name: nothing to do while connected */
    mark = f->nstates;
    o.name = "renamed";
    assert_true(redis_client_configure(f->c, &o));
    assert_int_equal(f->nstates, mark);

    o.port = f->srv2.port;
    assert_true(redis_client_configure(f->c, &o));
    assert_int_equal(redis_client_state(f->c), REDIS_CLIENT_CLOSED);
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 2000));
    command_sync(f, f->c, &cap, 3, (const char *[]){"CONFIG", "GET", "port"});
    snprintf(port, sizeof(port), "%d", f->srv2.port);
    assert_int_equal(cap.elements, 2);
    assert_string_equal(cap.elem[1], port);
    command_sync(f, f->c, &cap, 2, (const char *[]){"CLIENT", "GETNAME"});
    assert_string_equal(cap.str, "renamed");
}

struct reconfigure {
    struct capture cap;
    struct redis_client_options opts;
};

static void on_reconfigure(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct reconfigure *r = arg;

    on_capture(c, reply, &r->cap);
    /* a new db from inside a reply callback: the drop is deferred out of hiredis */
    assert_true(redis_client_configure(c, &r->opts));
    assert_int_equal(redis_client_state(c), REDIS_CLIENT_CLOSED);
}

static void test_configure_inside_callback(void **state)
{
    struct fixture *f = *state;
    struct reconfigure r;
    struct capture later[2] = {{.f = f}, {.f = f}};
    struct capture cap;

    redis_server_start(&f->srv, NULL);
    memset(&r, 0, sizeof(r));
    r.opts = options_for(&f->srv);
    f->c = start_client(f, &r.opts);
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));
    r.opts.db = 5;
    assert_true(
        redis_client_command(f->c, on_reconfigure, &r, 0, 1, (const char *[]){"PING"}, NULL));
    for (int i = 0; i < 2; i++)
        assert_true(redis_client_command(f->c, on_capture, &later[i], 0, 1,
                                         (const char *[]){"PING"}, NULL));
    assert_true(test_loop_wait(f->base, &later[1].calls, 1, 5000));
    assert_int_equal(r.cap.nulls, 0);
    /* replies that arrive after the drop still count as lost, in order */
    assert_int_equal(later[0].nulls, 1);
    assert_int_equal(later[1].nulls, 1);
    assert_true(later[0].at_ms <= later[1].at_ms);

    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 2000));
    command_sync(f, f->c, &cap, 2, (const char *[]){"CLIENT", "INFO"});
    assert_non_null(strstr(cap.str, " db=5 "));
}

/* The counter says what this client sent, not what Redis ran: a script's inner calls are not
 * counted, while handshake steps and the EVAL behind a NOSCRIPT are. */
static void test_commands_sent(void **state)
{
    struct fixture *f = *state;
    struct redis_client_options o;
    struct capture cap;
    uint64_t before;
    int incr3;

    redis_server_start(&f->srv, (const char *[]){"--requirepass", "count-pw", NULL});
    o = options_for(&f->srv);
    o.password = "count-pw";
    o.db = 2;
    f->c = redis_client_create(f->base, &o, on_state, f);
    assert_non_null(f->c);
    assert_int_equal(redis_client_commands_sent(f->c), 0);
    assert_int_equal(redis_client_commands_sent(NULL), 0);
    incr3 = redis_client_add_script(f->c, "redis.call('INCR', KEYS[1]) redis.call('INCR', KEYS[1]) "
                                          "return redis.call('INCR', KEYS[1])");
    assert_true(incr3 >= 0);
    assert_true(redis_client_start(f->c));
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 5000));
    /* AUTH, SELECT, CLIENT SETNAME, SCRIPT LOAD */
    assert_int_equal(redis_client_commands_sent(f->c), 4);

    expect_pong(f, f->c);
    assert_int_equal(redis_client_commands_sent(f->c), 5);
    memset(&cap, 0, sizeof(cap));
    assert_true(redis_client_eval(f->c, on_capture, &cap, 0, incr3, 1, 1,
                                  (const char *[]){"counted"}, NULL));
    assert_true(test_loop_wait(f->base, &cap.calls, 1, 5000));
    assert_int_equal(cap.integer, 3);
    assert_int_equal(redis_client_commands_sent(f->c), 6);

    /* refused or unconnected commands are never sent */
    assert_false(
        redis_client_command(f->c, on_capture, &cap, 0, 1, (const char *[]){"MONITOR"}, NULL));
    assert_int_equal(redis_client_commands_sent(f->c), 6);

    /* EVALSHA answered NOSCRIPT, then EVAL: two commands for one eval */
    command_sync(f, f->c, &cap, 2, (const char *[]){"SCRIPT", "FLUSH"});
    before = redis_client_commands_sent(f->c);
    memset(&cap, 0, sizeof(cap));
    assert_true(redis_client_eval(f->c, on_capture, &cap, 0, incr3, 1, 1,
                                  (const char *[]){"counted"}, NULL));
    assert_true(test_loop_wait(f->base, &cap.calls, 1, 5000));
    assert_int_equal(cap.integer, 6);
    assert_int_equal(redis_client_commands_sent(f->c), before + 2);

    /* a reconnect repeats the handshake, and the count carries on across it */
    before = redis_client_commands_sent(f->c);
    o.db = 3;
    assert_true(redis_client_configure(f->c, &o));
    assert_int_equal(redis_client_state(f->c), REDIS_CLIENT_CLOSED);
    assert_false(
        redis_client_command(f->c, on_capture, &cap, 0, 1, (const char *[]){"PING"}, NULL));
    assert_true(wait_state(f, f->c, REDIS_CLIENT_CONNECTED, 2000));
    assert_int_equal(redis_client_commands_sent(f->c), before + 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_and_binary_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_10000, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_password_and_username, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_failure_then_configure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_select_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_script_eval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_script_eval_argument_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_script_flush_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_killed_then_restarted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_port_backs_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_configure_new_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_configure_inside_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commands_sent, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    log_init("test_redis_client");
    return cmocka_run_group_tests_name("redis_client", tests, NULL, NULL);
}
