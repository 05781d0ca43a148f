/* Human-readable renderings for datamartctl's output (see ctl_text.h). */
#include "ctl_text.h"

#include <time.h>

#include "strbuf.h"

void ctl_text_printable(struct strbuf *sb, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        size_t n = p[i] >= 0x80 ? utf8_sequence_len(p + i, len - i) : 1;

        if (p[i] == '\\') {
            strbuf_puts(sb, "\\\\");
            n = 1;
        } else if (n == 0 || p[i] < 0x20 || p[i] == 0x7f) {
            strbuf_printf(sb, "\\x%02x", p[i]);
            n = 1;
        } else {
            strbuf_append(sb, s + i, n);
        }
        i += n;
    }
}

void ctl_text_time(struct strbuf *sb, long long ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char buf[32];

    if (ms < 0 || !gmtime_r(&secs, &tm) ||
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        strbuf_printf(sb, "%lld", ms);
        return;
    }
    strbuf_printf(sb, "%s.%03lldZ", buf, ms % 1000);
}

void ctl_text_duration(struct strbuf *sb, long long ms)
{
    long long s;

    if (ms < 0)
        ms = 0;
    s = ms / 1000;
    if (ms < 1000)
        strbuf_printf(sb, "%lldms", ms);
    else if (s < 60)
        strbuf_printf(sb, "%lld.%llds", s, ms % 1000 / 100);
    else if (s < 3600)
        strbuf_printf(sb, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        strbuf_printf(sb, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else
        strbuf_printf(sb, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

void ctl_text_time_relative(struct strbuf *sb, long long ms, long long now_ms)
{
    ctl_text_time(sb, ms);
    if (ms >= now_ms) {
        strbuf_puts(sb, " (in ");
        ctl_text_duration(sb, ms - now_ms);
        strbuf_puts(sb, ")");
    } else {
        strbuf_puts(sb, " (");
        ctl_text_duration(sb, now_ms - ms);
        strbuf_puts(sb, " ago)");
    }
}
