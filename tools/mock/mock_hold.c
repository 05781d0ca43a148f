#include "mock_hold.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>

#include "log.h"
#include "mock_reply.h"

/* answers falling due in the same quarter of a millisecond go out in one wake-up */
#define HOLD_GRID_US 250u

/* The wait until now + delay_ms, rounded to the nearest point of a HOLD_GRID_US grid: rounding to
 * the nearest keeps the mean latency exact, and each answer at most HOLD_GRID_US / 2 off. */
static uint64_t grid_wait_us(struct event_base *base, unsigned delay_ms)
{
    struct timeval now;
    uint64_t now_us, due_us;

    if (delay_ms == 0 || event_base_gettimeofday_cached(base, &now) != 0)
        return (uint64_t)delay_ms * 1000u;
    now_us = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_usec;
    due_us = now_us + (uint64_t)delay_ms * 1000u;
    due_us = (due_us + HOLD_GRID_US / 2) / HOLD_GRID_US * HOLD_GRID_US;
    return due_us - now_us; /* delay_ms >= 1, so the nearest point is never before now */
}

struct mock_hold {
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    enum mock_hold_end end;
    int status;
    struct event timer;
    /* evhttp stops reading while a request waits for its answer, so it would never notice the
     * client leaving: this event watches the socket instead */
    struct event watch;
    mock_hold_done_fn done;
    void *arg;
};

static void hold_finish(struct mock_hold *hold, int answered)
{
    event_del(&hold->watch);
    event_del(&hold->timer);
    hold->done(hold->arg, hold->end, answered);
    free(hold);
}

/* evhttp_connection_set_closecb: the connection is going away (client left, or server shutdown);
 * evhttp frees the request with it */
static void on_connection_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    hold_finish(arg, 0);
}

/* libevent: the socket became readable or the peer closed it (edge-triggered) */
static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    struct mock_hold *hold = arg;
    char byte;
    ssize_t n;

    if (!(what & EV_CLOSED)) {
        n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        /* pipelined bytes wait for their turn; only EOF or an error means the client left */
        if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)))
            return;
    }
    log_debug("client left a held request");
    /* runs on_connection_close, which frees the hold */
    evhttp_connection_free(hold->evcon);
}

/* libevent: the latency timer fired */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct mock_hold *hold = arg;
    int answered = 0;

    (void)fd;
    (void)what;
    event_del(&hold->watch);
    evhttp_connection_set_closecb(hold->evcon, NULL, NULL);
    if (hold->end == MOCK_HOLD_ANSWER) {
        evhttp_send_reply(hold->req, hold->status, mock_reply_reason(hold->status), NULL);
        answered = hold->status;
    } else {
        evhttp_connection_free(hold->evcon);
    }
    hold_finish(hold, answered);
}

bool mock_hold_start(struct event_base *base, struct evhttp_request *req, enum mock_hold_end end,
                     int status, unsigned delay_ms, mock_hold_done_fn done, void *arg)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct mock_hold *hold;
    evutil_socket_t fd;

    if (evcon == NULL)
        return false;
    fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
    hold = calloc(1, sizeof(*hold));
    if (fd < 0 || hold == NULL) {
        free(hold);
        return false;
    }
    *hold = (struct mock_hold){
        .req = req, .evcon = evcon, .end = end, .status = status, .done = done, .arg = arg};
    evtimer_assign(&hold->timer, base, on_timer, hold);
    /* edge-triggered so bytes the client pipelines do not wake us again and again */
    event_assign(&hold->watch, base, fd, EV_READ | EV_CLOSED | EV_ET | EV_PERSIST, on_watch, hold);
    if (event_add(&hold->watch, NULL) != 0) {
        free(hold);
        return false;
    }
    if (end != MOCK_HOLD_NEVER) {
        uint64_t wait_us = grid_wait_us(base, delay_ms);
        struct timeval tv = {(time_t)(wait_us / 1000000u), (suseconds_t)(wait_us % 1000000u)};

        if (evtimer_add(&hold->timer, &tv) != 0) {
            event_del(&hold->watch);
            free(hold);
            return false;
        }
    }
    evhttp_connection_set_closecb(evcon, on_connection_close, hold);
    return true;
}
