#include "daemon.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "loop_heap.h"
#include "metrics.h"
#include "notify.h"
#include "pipeline.h"
#include "version.h"

#define JANITOR_MS 200
#define TICKS_PER_SECOND (1000 / JANITOR_MS)
/* after the grace period, how long outcomes of finished requests may still take to publish */
#define PUBLISH_AFTER_ABORT_US 2000000u

struct daemon {
    struct event_base *base;
    struct config *cfg;
    const char *config_path;
    struct metrics *metrics;
    struct pipeline *pipeline;
    struct admin *admin;
    struct event *sigterm_ev, *sigint_ev, *sighup_ev, *janitor_ev, *watchdog_ev;
    struct event *log_flush_ev;
    unsigned ticks;
    bool stopping;
    bool aborted;
    uint64_t stop_deadline_us;
    char reload_error[256];
    char last_status[700];
};

static void send_status(struct daemon *d)
{
    char line[400];

    pipeline_describe(d->pipeline, line, sizeof(line));
    if (d->reload_error[0] != '\0')
        snprintf(d->last_status, sizeof(d->last_status), "%s; %s", line, d->reload_error);
    else
        snprintf(d->last_status, sizeof(d->last_status), "%s", line);
    notify_status("%s", d->last_status);
}

static bool admin_ready(void *arg, const char **why)
{
    struct daemon *d = arg;

    if (d->stopping) {
        *why = "shutting down";
        return false;
    }
    return pipeline_ready(d->pipeline, why);
}

/* read on demand: the clients count every command, too often to push each one to metrics */
static void admin_collect(void *arg, struct metrics *metrics)
{
    struct daemon *d = arg;
    uint64_t reader, writer;

    pipeline_redis_commands(d->pipeline, &reader, &writer);
    metrics_set_redis_commands(metrics, reader, writer);
}

static bool admin_start(struct daemon *d, const struct config *cfg)
{
    if (cfg->admin_listen == NULL || cfg->admin_listen[0] == '\0')
        return true;
    d->admin = admin_create(d->base, cfg->admin_listen, d->metrics, admin_ready, admin_collect, d);
    return d->admin != NULL;
}

/* ==== signals (libevent events: these run in loop context) ==== */

static void handle_sigterm(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;

    (void)what;
    if (d->stopping)
        return;
    d->stopping = true;
    d->stop_deadline_us = clock_monotonic_us() + (uint64_t)d->cfg->shutdown_grace_ms * 1000u;
    log_info("%s: stopping; %zu jobs held, grace %ld ms", sig == SIGINT ? "SIGINT" : "SIGTERM",
             pipeline_jobs_held(d->pipeline), d->cfg->shutdown_grace_ms);
    notify_stopping();
    pipeline_drain(d->pipeline);
}

static void handle_sighup(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    struct config *fresh;
    char *errors = NULL;

    (void)sig;
    (void)what;
    notify_reloading();
    log_info("SIGHUP: reloading %s", d->config_path);
    fresh = config_load(d->config_path, CONFIG_NEED_SECRETS, &errors);
    if (fresh == NULL) {
        for (char *line = errors ? strtok(errors, "\n") : NULL; line; line = strtok(NULL, "\n"))
            log_error("reload: %s", line);
        snprintf(d->reload_error, sizeof(d->reload_error),
                 "reload failed (see log): running on the previous config");
        free(errors);
    } else if (!pipeline_reconfigure(d->pipeline, fresh)) {
        snprintf(d->reload_error, sizeof(d->reload_error),
                 "reload failed (clients refused the new settings): running on the previous "
                 "config");
        log_error("reload: the new settings were refused; keeping the previous config");
        config_free(fresh);
    } else {
        bool admin_moved = strcmp(fresh->admin_listen ? fresh->admin_listen : "",
                                  d->cfg->admin_listen ? d->cfg->admin_listen : "") != 0;

        if (admin_moved) {
            admin_free(d->admin);
            d->admin = NULL;
            if (!admin_start(d, fresh))
                log_error("reload: the admin listener could not move to %s", fresh->admin_listen);
        }
        config_free(d->cfg);
        d->cfg = fresh;
        log_set_level(fresh->log_level);
        d->reload_error[0] = '\0';
        log_info("reload: done");
    }
    send_status(d);
    notify_ready(d->last_status);
}

/* ==== timers ==== */

/* the one periodic timer: housekeeping, STATUS=, and the shutdown check */
static void on_janitor(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    uint64_t now = clock_monotonic_us();

    (void)fd;
    (void)what;
    if (++d->ticks % TICKS_PER_SECOND == 0) {
        pipeline_tick(d->pipeline);
        send_status(d);
    }
    if (!d->stopping)
        return;
    if (pipeline_jobs_held(d->pipeline) == 0) {
        event_base_loopbreak(d->base);
    } else if (!d->aborted && now >= d->stop_deadline_us) {
        d->aborted = true;
        d->stop_deadline_us = now + PUBLISH_AFTER_ABORT_US;
        pipeline_abort(d->pipeline);
    } else if (d->aborted && now >= d->stop_deadline_us) {
        log_warn("%zu outcomes could not be published before exit; their jobs stay pending and "
                 "are settled at the next start",
                 pipeline_jobs_held(d->pipeline));
        event_base_loopbreak(d->base);
    }
}

/* from the loop itself, so a wedged loop stops the pings and systemd restarts us */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    notify_watchdog();
}

/* the info/debug lines of a loop pass go out in one write, after that pass's other events */
static void on_log_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_flush();
}

static void schedule_log_flush(void *arg)
{
    event_active(arg, EV_TIMEOUT, 0);
}

static bool add_timer(struct daemon *d, struct event **ev, event_callback_fn fn, uint64_t usec)
{
    struct timeval tv = {(time_t)(usec / 1000000u), (suseconds_t)(usec % 1000000u)};

    *ev = event_new(d->base, -1, EV_PERSIST, fn, d);
    return *ev != NULL && event_add(*ev, &tv) == 0;
}

static bool add_signal(struct daemon *d, struct event **ev, int sig, event_callback_fn fn)
{
    *ev = evsignal_new(d->base, sig, fn, d);
    return *ev != NULL && event_add(*ev, NULL) == 0;
}

static void free_event(struct event *ev)
{
    if (ev != NULL)
        event_free(ev);
}

static bool daemon_setup(struct daemon *d)
{
    uint64_t watchdog_usec = notify_watchdog_usec();
    cJSON_Hooks hooks = {.malloc_fn = loop_heap_malloc, .free_fn = loop_heap_free};

    /* every API answer is parsed with cJSON: its nodes come from the loop heap too */
    cJSON_InitHooks(&hooks);
    d->base = event_base_new();
    d->metrics = metrics_create();
    if (d->base == NULL || d->metrics == NULL)
        return false;
    d->pipeline = pipeline_create(d->base, d->cfg, d->metrics);
    if (d->pipeline == NULL)
        return false;
    if (!add_signal(d, &d->sigterm_ev, SIGTERM, handle_sigterm) ||
        !add_signal(d, &d->sigint_ev, SIGINT, handle_sigterm) ||
        !add_signal(d, &d->sighup_ev, SIGHUP, handle_sighup) ||
        !add_timer(d, &d->janitor_ev, on_janitor, JANITOR_MS * 1000u))
        return false;
    if (watchdog_usec > 0 && !add_timer(d, &d->watchdog_ev, on_watchdog, watchdog_usec / 2))
        return false;
    if (!admin_start(d, d->cfg))
        return false;
    d->log_flush_ev = event_new(d->base, -1, 0, on_log_flush, NULL);
    if (d->log_flush_ev == NULL)
        return false;
    return pipeline_start(d->pipeline);
}

static void daemon_teardown(struct daemon *d)
{
    /* the pipeline's clients still need the base while they close */
    pipeline_free(d->pipeline);
    admin_free(d->admin);
    free_event(d->sigterm_ev);
    free_event(d->sigint_ev);
    free_event(d->sighup_ev);
    free_event(d->janitor_ev);
    free_event(d->watchdog_ev);
    free_event(d->log_flush_ev);
    metrics_free(d->metrics);
    if (d->base != NULL)
        event_base_free(d->base);
    config_free(d->cfg);
    cJSON_InitHooks(NULL);
}

int daemon_run(struct config *cfg, const char *config_path)
{
    struct daemon d;
    int rc = 0;

    memset(&d, 0, sizeof(d));
    d.cfg = cfg;
    d.config_path = config_path;
    /* a peer closing a socket must be an error return, not a process kill */
    signal(SIGPIPE, SIG_IGN);
    log_set_level(cfg->log_level);
    log_info("datamartd %s starting: consumer %s, group %s, prefix %s, max_inflight %d",
             DATAMART_VERSION, cfg->consumer, cfg->group, cfg->prefix, cfg->max_inflight);

    if (!daemon_setup(&d)) {
        log_error("start-up failed");
        rc = 1;
    } else {
        send_status(&d);
        notify_ready(d.last_status);
        /* a crash loses at most the info/debug lines of the loop pass it happens in */
        log_set_flush_hook(schedule_log_flush, d.log_flush_ev);
        log_set_buffered(true);
        event_base_dispatch(d.base);
        /* no loop pass flushes from here on: what waits goes out now, later lines at once */
        log_set_buffered(false);
        log_set_flush_hook(NULL, NULL);
        log_info("stopped");
    }
    daemon_teardown(&d);
    return rc;
}
