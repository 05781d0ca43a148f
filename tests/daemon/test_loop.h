/*
 * The daemon tests' event loop: a base with a heartbeat, so that EVLOOP_ONCE returns often enough
 * for the waits below to see their deadlines. Failures abort the current cmocka test.
 */
#ifndef DATAMART_TEST_LOOP_H
#define DATAMART_TEST_LOOP_H

#include <stdbool.h>

struct event;
struct event_base;

/* A new base in *base, woken every tick_ms by the event in *tick. */
void test_loop_start(struct event_base **base, struct event **tick, long tick_ms);
void test_loop_stop(struct event_base *base, struct event *tick);

/* Run the loop until *counter >= target or ms pass; true when reached. */
bool test_loop_wait(struct event_base *base, const int *counter, int target, long ms);
/* Run the loop for ms. */
void test_loop_run_for(struct event_base *base, long ms);

#endif
