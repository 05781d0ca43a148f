#include "test_loop.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>

#include "clock.h"

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

void test_loop_start(struct event_base **base, struct event **tick, long tick_ms)
{
    struct timeval tv = {tick_ms / 1000, (tick_ms % 1000) * 1000};

    *base = event_base_new();
    assert_non_null(*base);
    *tick = event_new(*base, -1, EV_PERSIST, on_tick, NULL);
    assert_non_null(*tick);
    assert_int_equal(event_add(*tick, &tv), 0);
}

void test_loop_stop(struct event_base *base, struct event *tick)
{
    event_free(tick);
    event_base_free(base);
}

bool test_loop_wait(struct event_base *base, const int *counter, int target, long ms)
{
    uint64_t deadline = clock_monotonic_us() + (uint64_t)ms * 1000u;

    while (*counter < target && clock_monotonic_us() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    return *counter >= target;
}

void test_loop_run_for(struct event_base *base, long ms)
{
    uint64_t deadline = clock_monotonic_us() + (uint64_t)ms * 1000u;

    while (clock_monotonic_us() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
}
