/* The admin HTTP listener (evhttp): /healthz, /readyz and /metrics. */
#ifndef DATAMARTD_ADMIN_H
#define DATAMARTD_ADMIN_H

#include <stdbool.h>

#include "compiler.h"

struct event_base;
struct metrics;
struct admin;

/* true when ready; *why is a short reason either way (shown by /readyz) */
typedef bool (*admin_ready_fn)(void *arg, const char **why);
/* called before each /metrics render to copy in the counters that live elsewhere */
typedef void (*admin_collect_fn)(void *arg, struct metrics *metrics);

/* listen is "HOST:PORT" (IPv6 as "[::1]:PORT"). NULL when it cannot listen (logged). */
struct admin *admin_create(struct event_base *base, const char *listen, struct metrics *metrics,
                           admin_ready_fn ready, admin_collect_fn collect, void *arg) DM_MUSTCHECK;
void admin_free(struct admin *a);

#endif
