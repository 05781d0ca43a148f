/* Levelled, one-line-per-event logging to stderr, with journald priorities. */
#ifndef DATAMART_LOG_H
#define DATAMART_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
};

/* Detect whether stderr is a journald stream; ident prefixes plain-terminal lines. */
void log_init(const char *ident);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);
/* "error", "warn", "info", "debug"; false for anything else */
bool log_level_parse(const char *name, enum log_level *out) DM_MUSTCHECK;
const char *log_level_name(enum log_level level);

/* Write one line; newlines inside the message are replaced so a line stays one event. */
void log_write(enum log_level level, const char *fmt, ...) DM_PRINTF(2, 3);
/* The same line as log_write(level, "%.*s", len, text), without a format to interpret: for a
 * line written for every job, where vsnprintf costs as much as building it by hand. */
void log_text(enum log_level level, const char *text, size_t len);

/*
 * Buffered mode (off by default; one thread only): info and debug lines wait in a fixed buffer for
 * log_flush(), or go out when the buffer is full; an error or warn line writes what waits first,
 * then itself at once. Lines are byte-identical to unbuffered ones. Turning it off flushes.
 */
void log_set_buffered(bool on);
/* Write every waiting line to stderr; cheap when none waits. */
void log_flush(void);
/* fn(arg) runs each time a line lands in an empty buffer, to schedule a log_flush(); fn must not
   log. NULL removes it. */
void log_set_flush_hook(void (*fn)(void *arg), void *arg);

#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)                                                                              \
    do {                                                                                           \
        if (log_enabled(LOG_LEVEL_INFO))                                                           \
            log_write(LOG_LEVEL_INFO, __VA_ARGS__);                                                \
    } while (0)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_LEVEL_DEBUG))                                                          \
            log_write(LOG_LEVEL_DEBUG, __VA_ARGS__);                                               \
    } while (0)

#endif
