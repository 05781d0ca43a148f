/* Human-readable renderings for datamartctl's output: safe one-line text, times, durations. */
#ifndef DATAMART_CTL_TEXT_H
#define DATAMART_CTL_TEXT_H

#include <stddef.h>

struct strbuf;

/* s (len bytes, any bytes) with control bytes and invalid UTF-8 as \xNN, so it stays one line */
void ctl_text_printable(struct strbuf *sb, const char *s, size_t len);
/* ms since the epoch as 2024-05-01T12:00:00.123Z */
void ctl_text_time(struct strbuf *sb, long long ms);
/* a duration as 850ms, 4.2s, 3m12s, 2h05m or 3d04h (a negative one as 0ms) */
void ctl_text_duration(struct strbuf *sb, long long ms);
/* ms since the epoch as its time and how far from now: "...Z (in 4.2s)" or "...Z (3m12s ago)" */
void ctl_text_time_relative(struct strbuf *sb, long long ms, long long now_ms);

#endif
