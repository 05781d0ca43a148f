#include "notify.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>

static void notify_send(const char *msg)
{
    int rc = sd_notify(0, msg);

    if (rc < 0)
        log_warn("sd_notify failed: %s", strerror(-rc));
}

uint64_t notify_watchdog_usec(void)
{
    uint64_t usec = 0;

    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}
#else
static void notify_send(const char *msg)
{
    static bool warned;

    /* a unit expecting notifications would otherwise time out with no hint why */
    if (!warned && getenv("NOTIFY_SOCKET") != NULL) {
        log_warn("NOTIFY_SOCKET is set but datamartd was built without libsystemd");
        warned = true;
    }
    (void)msg;
}

uint64_t notify_watchdog_usec(void)
{
    return 0;
}
#endif

void notify_ready(const char *status)
{
    char msg[512];

    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
    notify_send(msg);
}

void notify_status(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    int n = snprintf(msg, sizeof(msg), "STATUS=");

    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    notify_send(msg);
}

void notify_reloading(void)
{
    struct timespec ts;
    char msg[128];

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
    notify_send(msg);
}

void notify_stopping(void)
{
    notify_send("STOPPING=1");
}

void notify_watchdog(void)
{
    notify_send("WATCHDOG=1");
}

void notify_extend_timeout(uint64_t usec)
{
    char msg[64];

    snprintf(msg, sizeof(msg), "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)usec);
    notify_send(msg);
}
