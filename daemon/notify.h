/* The one wrapper around sd_notify; a no-op when built without libsystemd. */
#ifndef DATAMARTD_NOTIFY_H
#define DATAMARTD_NOTIFY_H

#include <stdint.h>

#include "compiler.h"

/* READY=1, with the STATUS= line */
void notify_ready(const char *status);
/* STATUS=<text> */
void notify_status(const char *fmt, ...) DM_PRINTF(1, 2);
/* RELOADING=1 with MONOTONIC_USEC, before a reload */
void notify_reloading(void);
/* STOPPING=1 */
void notify_stopping(void);
/* WATCHDOG=1: call from the event loop itself */
void notify_watchdog(void);
/* EXTEND_TIMEOUT_USEC=, while draining takes longer than systemd's stop timeout expects */
void notify_extend_timeout(uint64_t usec);
/* The watchdog interval systemd asked for (WatchdogSec), 0 when none */
uint64_t notify_watchdog_usec(void);

#endif
