/*
 * The HTTP Retry-After header (RFC 9110 section 10.2.3): delta-seconds or an HTTP-date, turned into
 * a delay. Pure: no clock, locale or TZ reads; the caller passes "now".
 */
#ifndef DATAMART_RETRY_AFTER_H
#define DATAMART_RETRY_AFTER_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler.h"

/* a server cannot park us for longer than this (24 h), whatever it asks for */
#define RETRY_AFTER_MAX_MS (INT64_C(86400) * 1000)

/*
 * Parse value (surrounding spaces, tabs, CR and LF ignored) and store in *delay_ms the wait from
 * now_ms (ms since the epoch), clamped to [0, RETRY_AFTER_MAX_MS]; a date in the past gives 0.
 * Accepted: delta-seconds (digits only), IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT",
 * RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT" (a two-digit year more than 50 years ahead means
 * the previous century) and asctime "Sun Nov  6 08:49:37 1994".
 * Returns false, *delay_ms untouched, for anything else (including impossible dates and values
 * over 256 bytes).
 */
bool retry_after_parse(const char *value, int64_t now_ms, int64_t *delay_ms) DM_MUSTCHECK;

#endif
