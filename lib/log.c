#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum log_level current_level = LOG_LEVEL_INFO;
static bool to_journal;
static const char *log_ident = "datamartd";

/* the message part of a line, '\0' included, as when it was formatted on its own */
#define LOG_MSG_MAX 2048
/* " <ident>[<pid>] ": an ident longer than this is cut */
#define LOG_IDENT_HEAD_MAX 160

/* timestamp, ident head, level name and ": " fit in this much before the message */
#define LOG_HEAD_MAX (40 + LOG_IDENT_HEAD_MAX)

/* "YYYY-mm-ddTHH:MM:SS" of cached_sec: formatted once a second, not once a line */
static _Thread_local char cached_when[24];
static _Thread_local time_t cached_sec = (time_t)-1;
static _Thread_local char ident_head[LOG_IDENT_HEAD_MAX];
static _Thread_local size_t ident_head_len;

/* the longest line log_write builds, newline included */
#define LOG_LINE_MAX (LOG_HEAD_MAX + LOG_MSG_MAX + 1)
/* info/debug lines of one loop pass in buffered mode: one write(2) instead of one per line */
#define LOG_BUFFER_SIZE (32 * 1024)
_Static_assert(LOG_LINE_MAX <= LOG_BUFFER_SIZE, "a line must fit in an empty buffer");

static bool buffered;
static char pending[LOG_BUFFER_SIZE];
static size_t pending_len;
static void (*flush_hook)(void *arg);
static void *flush_hook_arg;

/* syslog priorities journald reads from a "<N>" line prefix */
static const int journal_priority[] = {3, 4, 6, 7};
static const char *const level_names[] = {"error", "warn", "info", "debug"};

static bool stderr_is_journal(void)
{
    const char *env = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (env == NULL || sscanf(env, "%llu:%llu", &dev, &ino) != 2)
        return false;
    if (fstat(STDERR_FILENO, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(const char *ident)
{
    if (ident != NULL)
        log_ident = ident;
    ident_head_len = 0;
    to_journal = stderr_is_journal();
}

void log_set_level(enum log_level level)
{
    current_level = level;
}

bool log_enabled(enum log_level level)
{
    return level <= current_level;
}

bool log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < DM_ARRAY_LEN(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    if (strcmp(name, "warning") == 0) {
        *out = LOG_LEVEL_WARN;
        return true;
    }
    return false;
}

const char *log_level_name(enum log_level level)
{
    return level_names[level];
}

static size_t put(char *dst, const char *s)
{
    size_t n = strlen(s);

    memcpy(dst, s, n);
    return n;
}

/* "Z <ident>[<pid>] " once per process (the daemon never forks after its first line) */
static void ident_head_render(void)
{
    int n = snprintf(ident_head, sizeof(ident_head), "Z %s[%ld] ", log_ident, (long)getpid());

    if (n < 0)
        n = 0;
    ident_head_len = (size_t)n < sizeof(ident_head) ? (size_t)n : sizeof(ident_head) - 1;
}

static size_t plain_head(enum log_level level, char *out)
{
    struct timespec ts;
    long ms;
    size_t o;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;

        gmtime_r(&ts.tv_sec, &tm);
        if (strftime(cached_when, sizeof(cached_when), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
            cached_when[0] = '\0';
        cached_sec = ts.tv_sec;
    }
    if (ident_head_len == 0)
        ident_head_render();
    o = put(out, cached_when);
    ms = ts.tv_nsec / 1000000L;
    out[o++] = '.';
    out[o++] = (char)('0' + ms / 100);
    out[o++] = (char)('0' + ms / 10 % 10);
    out[o++] = (char)('0' + ms % 10);
    memcpy(out + o, ident_head, ident_head_len);
    o += ident_head_len;
    o += put(out + o, level_names[level]);
    out[o++] = ':';
    out[o++] = ' ';
    return o;
}

/* write(2), not stdio, so no stdio buffer reorders lines; a short write or EINTR goes on, any other
   error drops the rest as an unwritable stderr must not stop the caller */
static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void pending_write(void)
{
    write_all(pending, pending_len);
    pending_len = 0;
}

void log_flush(void)
{
    int saved_errno = errno;

    if (pending_len > 0)
        pending_write();
    errno = saved_errno;
}

void log_set_buffered(bool on)
{
    if (!on)
        log_flush();
    buffered = on;
}

void log_set_flush_hook(void (*fn)(void *arg), void *arg)
{
    flush_hook = fn;
    flush_hook_arg = arg;
}

static void emit(enum log_level level, const char *line, size_t n)
{
    if (!buffered || level <= LOG_LEVEL_WARN) {
        /* what waits is older: written first, so the order is kept */
        if (pending_len > 0)
            pending_write();
        write_all(line, n);
        return;
    }
    if (n > sizeof(pending) - pending_len)
        pending_write();
    memcpy(pending + pending_len, line, n);
    pending_len += n;
    if (pending_len == n && flush_hook != NULL)
        flush_hook(flush_hook_arg);
}

/* The line's head (journald priority or timestamp, level and ident) at line; its length. */
static size_t line_head(enum log_level level, char *line)
{
    if (!to_journal)
        return plain_head(level, line);
    line[0] = '<';
    line[1] = (char)('0' + journal_priority[level]);
    line[2] = '>';
    return 3;
}

/* The message after the head, up to its first NUL: newlines folded, '\n' added, written. */
static void line_finish(enum log_level level, char *line, size_t head)
{
    char *msg = line + head;
    size_t len = 0;

    for (; msg[len] != '\0'; len++) {
        if (msg[len] == '\n' || msg[len] == '\r')
            msg[len] = ' ';
    }
    msg[len] = '\n';
    emit(level, line, head + len + 1);
}

void log_write(enum log_level level, const char *fmt, ...)
{
    int saved_errno = errno; /* logging must never clobber the caller's errno */
    char line[LOG_LINE_MAX];
    size_t head;
    va_list ap;

    if (!log_enabled(level)) {
        errno = saved_errno;
        return;
    }
    head = line_head(level, line);
    va_start(ap, fmt);
    if (vsnprintf(line + head, LOG_MSG_MAX, fmt, ap) < 0)
        line[head] = '\0';
    va_end(ap);
    line_finish(level, line, head);
    errno = saved_errno;
}

void log_text(enum log_level level, const char *text, size_t len)
{
    int saved_errno = errno;
    char line[LOG_LINE_MAX];
    size_t head;

    if (!log_enabled(level)) {
        errno = saved_errno;
        return;
    }
    head = line_head(level, line);
    if (len > LOG_MSG_MAX - 1)
        len = LOG_MSG_MAX - 1;
    memcpy(line + head, text, len);
    line[head + len] = '\0';
    line_finish(level, line, head);
    errno = saved_errno;
}
