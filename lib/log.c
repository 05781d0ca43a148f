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

void log_write(enum log_level level, const char *fmt, ...)
{
    int saved_errno = errno; /* logging must never clobber the caller's errno */
    char msg[2048];
    va_list ap;

    if (!log_enabled(level)) {
        errno = saved_errno;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }

    if (to_journal) {
        fprintf(stderr, "<%d>%s\n", journal_priority[level], msg);
    } else {
        struct timespec ts;
        struct tm tm;
        char when[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        fprintf(stderr, "%s.%03ldZ %s[%ld] %s: %s\n", when, ts.tv_nsec / 1000000L, log_ident,
                (long)getpid(), level_names[level], msg);
    }
    errno = saved_errno;
}
