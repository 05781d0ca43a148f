/* cluster_limiter against a real redis-server on 127.0.0.1: two clients stand for two daemons. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "cluster_limiter.h"
#include "log.h"
#include "redis_client.h"
#include "redis_server.h"
#include "test_loop.h"

#define PREFIX "dmtest"
#define BUCKET_KEY PREFIX ":ratelimit:bucket"
#define PAUSE_KEY PREFIX ":ratelimit:pause"
#define MAX_GRANTS 4096

struct fixture {
    struct event_base *base;
    struct event *tick;
    struct redis_server srv;
    struct redis_client *c[2];
    struct cluster_limiter *cl[2];
};

/* What one acquire callback saw. */
struct got {
    int calls;
    int nulls;
    struct cluster_grant g;
    char reason[CLUSTER_LIMITER_REASON_MAX + 1];
};

/* One simulated daemon asking for permits as fast as the bucket allows, until stop_us. */
struct runner {
    struct fixture *f;
    struct cluster_limiter *cl;
    struct event *timer;
    int want;
    uint64_t stop_us;
    uint64_t at_us[MAX_GRANTS]; /* one entry per permit */
    int n;
    int nulls;
    bool done;
};

/* A raw command's reply, as text or integer. */
struct raw {
    int calls;
    int type;
    long long integer;
    char str[128];
};

/* ---- helpers ---- */

static void connect_clients(struct fixture *f)
{
    for (int i = 0; i < 2; i++) {
        struct redis_client_options o = {
            .name = i == 0 ? "limiter-a" : "limiter-b",
            .host = "127.0.0.1",
            .port = f->srv.port,
            .backoff_min_ms = 20,
            .backoff_max_ms = 200,
        };
        uint64_t deadline = clock_monotonic_us() + 5000000;

        f->c[i] = redis_client_create(f->base, &o, NULL, NULL);
        assert_non_null(f->c[i]);
        assert_true(redis_client_start(f->c[i]));
        while (redis_client_state(f->c[i]) != REDIS_CLIENT_CONNECTED &&
               clock_monotonic_us() < deadline)
            event_base_loop(f->base, EVLOOP_ONCE);
        assert_int_equal(redis_client_state(f->c[i]), REDIS_CLIENT_CONNECTED);
    }
}

/* Both "daemons" share one bucket: same prefix, same settings. */
static void start_limiters(struct fixture *f, double rate, int burst)
{
    redis_server_start(&f->srv, NULL);
    connect_clients(f);
    for (int i = 0; i < 2; i++) {
        f->cl[i] = cluster_limiter_create(f->c[i], PREFIX, rate, burst);
        assert_non_null(f->cl[i]);
    }
}

static void on_got(void *arg, const struct cluster_grant *g)
{
    struct got *got = arg;

    got->calls++;
    if (g == NULL) {
        got->nulls++;
        return;
    }
    got->g = *g;
    snprintf(got->reason, sizeof(got->reason), "%s", g->pause_reason);
    got->g.pause_reason = NULL; /* valid only during the callback: reason holds a copy */
}

static struct got acquire_sync(struct fixture *f, struct cluster_limiter *cl, int want)
{
    struct got got = {0};

    assert_true(cluster_limiter_acquire(cl, want, on_got, &got));
    assert_int_equal(got.calls, 0); /* never from inside acquire */
    assert_true(test_loop_wait(f->base, &got.calls, 1, 5000));
    assert_int_equal(got.nulls, 0);
    return got;
}

static void on_raw(struct redis_client *c, struct redisReply *reply, void *arg)
{
    struct raw *raw = arg;

    (void)c;
    raw->calls++;
    assert_non_null(reply);
    raw->type = reply->type;
    raw->integer = reply->integer;
    if (reply->str != NULL)
        snprintf(raw->str, sizeof(raw->str), "%.*s", (int)reply->len, reply->str);
}

static struct raw command_sync(struct fixture *f, int argc, const char **argv)
{
    struct raw raw = {0};

    assert_true(redis_client_command(f->c[0], on_raw, &raw, 0, argc, argv, NULL));
    assert_true(test_loop_wait(f->base, &raw.calls, 1, 5000));
    return raw;
}

/* ---- the runner: a daemon's permit loop ---- */

static void runner_ask(struct runner *r);

static void on_runner_grant(void *arg, const struct cluster_grant *g)
{
    struct runner *r = arg;
    uint64_t now = clock_monotonic_us();
    long long wait_us;
    struct timeval tv;

    if (g == NULL) {
        r->nulls++;
        r->done = true;
        return;
    }
    for (int i = 0; i < g->granted && r->n < MAX_GRANTS; i++)
        r->at_us[r->n++] = now;
    if (now >= r->stop_us) {
        r->done = true;
        return;
    }
    /* a full batch may leave more in the bucket: ask again at once */
    wait_us = g->granted == r->want ? 0 : g->wait_us;
    tv.tv_sec = (time_t)(wait_us / 1000000);
    tv.tv_usec = (suseconds_t)(wait_us % 1000000);
    assert_int_equal(evtimer_add(r->timer, &tv), 0);
}

static void on_runner_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    runner_ask(arg);
}

static void runner_ask(struct runner *r)
{
    assert_true(cluster_limiter_acquire(r->cl, r->want, on_runner_grant, r));
}

static struct runner *runner_new(struct fixture *f, struct cluster_limiter *cl, int want)
{
    struct runner *r = calloc(1, sizeof(*r));

    assert_non_null(r);
    r->f = f;
    r->cl = cl;
    r->want = want;
    r->timer = evtimer_new(f->base, on_runner_timer, r);
    assert_non_null(r->timer);
    return r;
}

static void runner_free(struct runner *r)
{
    event_free(r->timer);
    free(r);
}

/* Run the runners together for ms; returns when every one has stopped. */
static void runners_run(struct fixture *f, struct runner **rs, int n, long ms)
{
    uint64_t start = clock_monotonic_us(), deadline = start + (uint64_t)(ms + 5000) * 1000;
    bool all_done = false;

    for (int i = 0; i < n; i++) {
        rs[i]->stop_us = start + (uint64_t)ms * 1000;
        runner_ask(rs[i]);
    }
    while (!all_done && clock_monotonic_us() < deadline) {
        event_base_loop(f->base, EVLOOP_ONCE);
        all_done = true;
        for (int i = 0; i < n; i++)
            all_done &= rs[i]->done;
    }
    assert_true(all_done);
    for (int i = 0; i < n; i++)
        assert_int_equal(rs[i]->nulls, 0);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* The most permits any one-second window [t, t + 1 s) holds, over all runners' grants. */
static int busiest_second(struct runner **rs, int n, int *total)
{
    static uint64_t all[2 * MAX_GRANTS];
    int count = 0, best = 0;

    for (int i = 0; i < n; i++) {
        memcpy(all + count, rs[i]->at_us, (size_t)rs[i]->n * sizeof(all[0]));
        count += rs[i]->n;
    }
    qsort(all, (size_t)count, sizeof(all[0]), cmp_u64);
    for (int i = 0, j = 0; i < count; i++) {
        while (j < count && all[j] < all[i] + 1000000)
            j++;
        if (j - i > best)
            best = j - i;
    }
    *total = count;
    return best;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    test_loop_start(&f->base, &f->tick, 5);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    for (int i = 0; i < 2; i++) {
        cluster_limiter_free(f->cl[i]);
        redis_client_free(f->c[i]);
    }
    redis_server_cleanup(&f->srv);
    test_loop_stop(f->base, f->tick);
    free(f);
    return 0;
}

/* ---- tests ---- */

static void test_burst_then_rate(void **state)
{
    struct fixture *f = *state;
    struct runner *r;
    struct raw raw;
    struct got got;
    int total, busiest;

    start_limiters(f, 10, 5);
    got = acquire_sync(f, f->cl[0], 8);
    assert_int_equal(got.g.granted, 5);
    assert_int_equal(got.g.wait_us, 100000); /* the bucket is empty: 1/rate */
    assert_int_equal(got.g.paused_us, 0);
    assert_string_equal(got.reason, "");

    /* the state is integers in Redis, and goes away a second after the bucket is full again */
    raw = command_sync(f, 3, (const char *[]){"HGET", BUCKET_KEY, "level"});
    assert_int_equal(raw.type, REDIS_REPLY_STRING);
    assert_true(strlen(raw.str) < 7 && strspn(raw.str, "0123456789") == strlen(raw.str));
    raw = command_sync(f, 3, (const char *[]){"HGET", BUCKET_KEY, "t"});
    assert_true(strlen(raw.str) == 16 && strspn(raw.str, "0123456789") == 16);
    raw = command_sync(f, 2, (const char *[]){"PTTL", BUCKET_KEY});
    assert_true(raw.integer > 1000 && raw.integer <= 1500);

    /* empty: nothing, and the wait until the next permit */
    got = acquire_sync(f, f->cl[1], 1);
    assert_int_equal(got.g.granted, 0);
    assert_true(got.g.wait_us > 50000 && got.g.wait_us <= 100000);

    /* 0.35 s refill 3.5 permits: 3 whole ones */
    test_loop_run_for(f->base, 350);
    got = acquire_sync(f, f->cl[0], 8);
    assert_true(got.g.granted == 3 || got.g.granted == 4);

    /* then the rate: about 10 in a second, never more than rate + burst */
    r = runner_new(f, f->cl[0], 1);
    runners_run(f, &r, 1, 1000);
    busiest = busiest_second(&r, 1, &total);
    print_message("rate 10: %d permits in 1 s after the burst\n", total);
    assert_true(total >= 9 && total <= 11);
    assert_true(busiest <= 15);
    runner_free(r);
}

static void test_fractional_rate(void **state)
{
    struct fixture *f = *state;
    struct runner *r;
    struct got got;
    int total;

    start_limiters(f, 2.5, 1);
    got = acquire_sync(f, f->cl[0], 1);
    assert_int_equal(got.g.granted, 1);
    assert_int_equal(got.g.wait_us, 400000);
    got = acquire_sync(f, f->cl[1], 1);
    assert_int_equal(got.g.granted, 0);
    assert_true(got.g.wait_us > 350000 && got.g.wait_us <= 400000);

    /* one every 0.4 s: 5 in 2 s (the first after a wait), never 2 in one 0.4 s */
    r = runner_new(f, f->cl[0], 1);
    runners_run(f, &r, 1, 2000);
    (void)busiest_second(&r, 1, &total);
    print_message("rate 2.5: %d permits in 2 s\n", total);
    assert_true(total >= 4 && total <= 6);
    for (int i = 1; i < r->n; i++)
        assert_true(r->at_us[i] - r->at_us[i - 1] >= 390000);
    runner_free(r);
}

static void test_two_instances_share_the_rate(void **state)
{
    struct fixture *f = *state;
    struct runner *rs[2];
    const double seconds = 5, rate = 20;
    const int burst = 5;
    int total, busiest;
    double mean;

    start_limiters(f, rate, burst);
    /* one asks one at a time, the other in batches */
    rs[0] = runner_new(f, f->cl[0], 1);
    rs[1] = runner_new(f, f->cl[1], 3);
    runners_run(f, rs, 2, (long)(seconds * 1000));
    busiest = busiest_second(rs, 2, &total);
    mean = (total - burst) / seconds;
    print_message("two instances, rate 20 burst 5: %d + %d permits in %.0f s, mean %.2f/s after "
                  "the burst, busiest second %d\n",
                  rs[0]->n, rs[1]->n, seconds, mean, busiest);
    assert_true(busiest <= rate + burst);
    assert_true(mean >= rate * 0.95 && mean <= rate * 1.05);
    /* both drew from it (the split is a race the limiter does not arbitrate) */
    assert_true(rs[0]->n > 0 && rs[1]->n > 0);
    runner_free(rs[0]);
    runner_free(rs[1]);
}

static void test_pause_holds_everyone_longest_wins(void **state)
{
    struct fixture *f = *state;
    struct raw raw;
    struct got got;

    start_limiters(f, 100, 10);
    assert_false(cluster_limiter_pause(f->cl[0], 0, "zero"));
    assert_true(cluster_limiter_pause(f->cl[0], 400, "429 Retry-After"));
    /* the same connection answers in order: this acquire sees the pause */
    got = acquire_sync(f, f->cl[0], 1);
    assert_int_equal(got.g.granted, 0);
    assert_true(got.g.paused_us > 300000 && got.g.paused_us <= 400000);
    assert_int_equal(got.g.wait_us, got.g.paused_us);
    assert_string_equal(got.reason, "429 Retry-After");
    got = acquire_sync(f, f->cl[1], 1);
    assert_int_equal(got.g.granted, 0);
    assert_string_equal(got.reason, "429 Retry-After");

    /* a shorter pause changes nothing */
    assert_true(cluster_limiter_pause(f->cl[1], 100, "short"));
    got = acquire_sync(f, f->cl[1], 1);
    assert_string_equal(got.reason, "429 Retry-After");
    assert_true(got.g.paused_us > 200000);

    /* a longer one wins; control characters never reach the reason */
    assert_true(cluster_limiter_pause(f->cl[1], 700, "AUTH_ERROR\nsecond line"));
    got = acquire_sync(f, f->cl[0], 1);
    assert_int_equal(got.g.granted, 0);
    assert_true(got.g.paused_us > 600000 && got.g.paused_us <= 700000);
    assert_string_equal(got.reason, "AUTH_ERROR?second line");
    raw = command_sync(f, 2, (const char *[]){"PTTL", PAUSE_KEY});
    assert_true(raw.integer > 500 && raw.integer <= 700);

    /* it expires by itself; the bucket filled meanwhile */
    test_loop_run_for(f->base, 720);
    got = acquire_sync(f, f->cl[1], 20);
    assert_int_equal(got.g.granted, 10);
    assert_int_equal(got.g.paused_us, 0);
    assert_string_equal(got.reason, "");
    raw = command_sync(f, 2, (const char *[]){"EXISTS", PAUSE_KEY});
    assert_int_equal(raw.integer, 0);
}

static void test_configure(void **state)
{
    struct fixture *f = *state;
    struct runner *r;
    struct got got;
    int slow, fast;

    start_limiters(f, 5, 1);
    assert_false(cluster_limiter_configure(f->cl[0], -1, 1));
    assert_false(cluster_limiter_configure(f->cl[0], 5, 0));
    assert_false(cluster_limiter_configure(f->cl[0], 2e6, 1));

    r = runner_new(f, f->cl[0], 1);
    runners_run(f, &r, 1, 1000);
    slow = r->n;
    assert_true(cluster_limiter_configure(f->cl[0], 50, 1));
    r->n = 0;
    r->done = false;
    runners_run(f, &r, 1, 1000);
    fast = r->n;
    print_message("rate 5 then 50: %d then %d permits in 1 s\n", slow, fast);
    /* never above the rate; below it by a few when a loaded machine delays a runner's next ask
     * past a permit (burst 1 keeps none) */
    assert_true(slow >= 4 && slow <= 7);
    assert_true(fast >= 40 && fast <= 52);
    runner_free(r);

    /* a smaller burst caps what was saved up */
    assert_true(cluster_limiter_configure(f->cl[0], 50, 10));
    test_loop_run_for(f->base, 300);
    got = acquire_sync(f, f->cl[0], 1);
    assert_int_equal(got.g.granted, 1); /* leaves 9 in Redis */
    assert_true(cluster_limiter_configure(f->cl[0], 50, 3));
    got = acquire_sync(f, f->cl[0], 10);
    assert_int_equal(got.g.granted, 3);

    /* unlimited: everything asked for, and no state */
    assert_true(cluster_limiter_configure(f->cl[1], 0, 1));
    got = acquire_sync(f, f->cl[1], 1000);
    assert_int_equal(got.g.granted, 1000);
    assert_int_equal(got.g.wait_us, 0);
}

static void test_bad_state_and_arguments(void **state)
{
    struct fixture *f = *state;
    struct got got = {0};
    struct raw raw;

    assert_null(cluster_limiter_create(NULL, PREFIX, 1, 1));
    start_limiters(f, 10, 5);
    assert_null(cluster_limiter_create(f->c[0], "", 1, 1));
    assert_null(cluster_limiter_create(f->c[0], PREFIX, 1, 0));
    assert_false(cluster_limiter_acquire(f->cl[0], 0, on_got, &got));
    assert_false(cluster_limiter_acquire(f->cl[0], 1, NULL, NULL));

    /* a key of the wrong type: the caller gets no answer (logged), not a crash */
    raw = command_sync(f, 3, (const char *[]){"SET", BUCKET_KEY, "junk"});
    assert_string_equal(raw.str, "OK");
    assert_true(cluster_limiter_acquire(f->cl[0], 1, on_got, &got));
    assert_true(test_loop_wait(f->base, &got.calls, 1, 5000));
    assert_int_equal(got.nulls, 1);
}

static void test_redis_down(void **state)
{
    struct fixture *f = *state;
    struct got got = {0};
    struct raw busy = {0};
    uint64_t deadline;

    start_limiters(f, 10, 5);
    /* the server is busy, so the acquire is still pending when it dies */
    assert_true(redis_client_command(f->c[1], NULL, &busy, 10000, 3,
                                     (const char *[]){"DEBUG", "SLEEP", "1"}, NULL));
    test_loop_run_for(f->base, 50);
    assert_true(cluster_limiter_acquire(f->cl[0], 1, on_got, &got));
    redis_server_kill(&f->srv);
    assert_true(test_loop_wait(f->base, &got.calls, 1, 5000));
    assert_int_equal(got.nulls, 1);

    deadline = clock_monotonic_us() + 2000000;
    while (redis_client_state(f->c[0]) == REDIS_CLIENT_CONNECTED && clock_monotonic_us() < deadline)
        event_base_loop(f->base, EVLOOP_ONCE);
    memset(&got, 0, sizeof(got));
    assert_false(cluster_limiter_acquire(f->cl[0], 1, on_got, &got));
    assert_false(cluster_limiter_pause(f->cl[0], 1000, "429"));
    test_loop_run_for(f->base, 100);
    assert_int_equal(got.calls, 0);
}

struct self_free {
    struct cluster_limiter **cl;
    int calls;
};

static void on_free_limiter(void *arg, const struct cluster_grant *g)
{
    struct self_free *s = arg;

    (void)g;
    s->calls++;
    cluster_limiter_free(*s->cl);
    *s->cl = NULL;
}

static void test_free_with_pending(void **state)
{
    struct fixture *f = *state;
    struct self_free s = {.cl = &f->cl[1]};
    struct got got[3] = {{0}};
    struct raw busy = {0};

    start_limiters(f, 10, 5);
    /* freed while its answer is on the way: fn is never called, nothing leaks */
    assert_true(redis_client_command(f->c[1], on_raw, &busy, 10000, 3,
                                     (const char *[]){"DEBUG", "SLEEP", "0.2"}, NULL));
    assert_true(cluster_limiter_acquire(f->cl[0], 1, on_got, &got[0]));
    assert_true(cluster_limiter_acquire(f->cl[0], 2, on_got, &got[1]));
    cluster_limiter_free(f->cl[0]);
    f->cl[0] = NULL;
    assert_true(test_loop_wait(f->base, &busy.calls, 1, 5000));
    test_loop_run_for(f->base, 100);
    assert_int_equal(redis_client_pending(f->c[0]), 0);
    assert_int_equal(got[0].calls + got[1].calls, 0);

    /* freed from its own callback, with a second call behind it */
    assert_true(cluster_limiter_acquire(f->cl[1], 1, on_free_limiter, &s));
    assert_true(cluster_limiter_acquire(f->cl[1], 1, on_got, &got[2]));
    assert_true(test_loop_wait(f->base, &s.calls, 1, 5000));
    test_loop_run_for(f->base, 100);
    assert_int_equal(s.calls, 1);
    assert_int_equal(got[2].calls, 0);
    assert_null(f->cl[1]);

    /* the writer freed first: its pending calls end with NULL, the limiter is freed after */
    f->cl[1] = cluster_limiter_create(f->c[1], PREFIX, 10, 5);
    assert_non_null(f->cl[1]);
    memset(got, 0, sizeof(got));
    assert_true(cluster_limiter_acquire(f->cl[1], 1, on_got, &got[0]));
    redis_client_free(f->c[1]);
    f->c[1] = NULL;
    assert_int_equal(got[0].calls, 1);
    assert_int_equal(got[0].nulls, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_then_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fractional_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_instances_share_the_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_holds_everyone_longest_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_configure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_state_and_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    log_init("test_cluster_limiter");
    return cmocka_run_group_tests_name("cluster_limiter", tests, NULL, NULL);
}
