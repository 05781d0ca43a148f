/* log: the exact line format on a terminal and for journald, levels, line folding, truncation,
   errno, and timestamps that follow the clock across seconds */
#define _DEFAULT_SOURCE /* timegm, to read a line's timestamp back */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct capture {
    FILE *file;
    int saved_fd;
};

/* stderr goes to a temporary file until capture_read */
static void capture_start(struct capture *c)
{
    c->file = tmpfile();
    assert_non_null(c->file);
    fflush(stderr);
    c->saved_fd = dup(STDERR_FILENO);
    assert_true(c->saved_fd >= 0);
    assert_true(dup2(fileno(c->file), STDERR_FILENO) >= 0);
}

/* everything written since capture_start; the caller frees it */
static char *capture_read(struct capture *c)
{
    long len;
    char *text;

    fflush(stderr);
    assert_true(dup2(c->saved_fd, STDERR_FILENO) >= 0);
    close(c->saved_fd);
    len = ftell(c->file);
    assert_true(len >= 0);
    text = malloc((size_t)len + 1);
    assert_non_null(text);
    rewind(c->file);
    assert_int_equal(fread(text, 1, (size_t)len, c->file), (size_t)len);
    text[len] = '\0';
    fclose(c->file);
    return text;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "YYYY-mm-ddTHH:MM:SS.mmmZ " at line, as ms since the epoch; -1 when malformed */
static int64_t parse_stamp(const char *line)
{
    struct tm tm;
    int ms = -1;
    char z = 0;

    memset(&tm, 0, sizeof(tm));
    if (sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &z) != 8 ||
        z != 'Z' || ms < 0 || ms > 999 || line[19] != '.' || line[23] != 'Z' || line[24] != ' ')
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static void test_plain_line_format(void **state)
{
    struct capture c;
    char *out, expect[128];
    int64_t before, after, stamp;

    (void)state;
    unsetenv("JOURNAL_STREAM");
    log_init("test-ident");
    log_set_level(LOG_LEVEL_INFO);
    before = now_ms();
    capture_start(&c);
    log_info("hello %d %s", 42, "world");
    out = capture_read(&c);
    after = now_ms();

    stamp = parse_stamp(out);
    assert_true(stamp >= before && stamp <= after);
    snprintf(expect, sizeof(expect), " test-ident[%ld] info: hello 42 world\n", (long)getpid());
    assert_string_equal(out + 24, expect);
    free(out);
}

static void test_levels_and_names(void **state)
{
    struct capture c;
    char *out, *line;
    const char *names[] = {"error", "warn", "info", "debug"};
    int n = 0;

    (void)state;
    unsetenv("JOURNAL_STREAM");
    log_init("lv");
    log_set_level(LOG_LEVEL_DEBUG);
    capture_start(&c);
    log_error("e");
    log_warn("w");
    log_info("i");
    log_debug("d");
    log_set_level(LOG_LEVEL_WARN);
    log_info("hidden");
    log_debug("hidden");
    log_warn("w2");
    out = capture_read(&c);
    log_set_level(LOG_LEVEL_INFO);

    for (line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n"), n++) {
        char expect[64];
        const char *rest = strchr(line, ']');

        assert_non_null(rest);
        if (n < 4)
            snprintf(expect, sizeof(expect), "] %s: %c", names[n], names[n][0]);
        else
            snprintf(expect, sizeof(expect), "] warn: w2");
        assert_string_equal(rest, expect);
    }
    assert_int_equal(n, 5);
    free(out);
}

static void test_newlines_folded_and_errno_kept(void **state)
{
    struct capture c;
    char *out;
    const char *msg;

    (void)state;
    unsetenv("JOURNAL_STREAM");
    log_init("fold");
    capture_start(&c);
    errno = ERANGE;
    log_warn("a\nb\r\nc%s", "\nd");
    assert_int_equal(errno, ERANGE);
    out = capture_read(&c);

    msg = strstr(out, "warn: ");
    assert_non_null(msg);
    assert_string_equal(msg, "warn: a b  c d\n");
    free(out);
}

static void test_long_message_truncated(void **state)
{
    struct capture c;
    char *out, *big;
    const char *msg;

    (void)state;
    unsetenv("JOURNAL_STREAM");
    log_init("long");
    big = malloc(5000);
    assert_non_null(big);
    memset(big, 'x', 4999);
    big[4999] = '\0';
    capture_start(&c);
    log_error("%s", big);
    out = capture_read(&c);

    msg = strstr(out, "error: ");
    assert_non_null(msg);
    msg += strlen("error: ");
    assert_int_equal(strspn(msg, "x"), 2047);
    assert_string_equal(msg + 2047, "\n");
    free(big);
    free(out);
}

static void test_journal_prefix(void **state)
{
    struct capture c;
    struct stat st;
    char env[64], *out;

    (void)state;
    capture_start(&c);
    assert_int_equal(fstat(STDERR_FILENO, &st), 0);
    snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", env, 1);
    log_init("journal");
    log_set_level(LOG_LEVEL_DEBUG);
    log_error("boom %d", 1);
    log_warn("careful");
    log_info("note\nnext");
    log_debug("detail");
    log_set_level(LOG_LEVEL_INFO);
    out = capture_read(&c);
    unsetenv("JOURNAL_STREAM");
    log_init("journal");

    assert_string_equal(out, "<3>boom 1\n<4>careful\n<6>note next\n<7>detail\n");
    free(out);
}

/* the cached second must move on with the clock */
static void test_timestamps_follow_the_clock(void **state)
{
    const struct timespec pause = {1, 100 * 1000 * 1000};
    struct capture c;
    char *out, *second;
    int64_t before, after, first_stamp, second_stamp;

    (void)state;
    unsetenv("JOURNAL_STREAM");
    log_init("clock");
    before = now_ms();
    capture_start(&c);
    log_info("one");
    nanosleep(&pause, NULL);
    log_info("two");
    out = capture_read(&c);
    after = now_ms();

    second = strchr(out, '\n');
    assert_non_null(second);
    second++;
    first_stamp = parse_stamp(out);
    second_stamp = parse_stamp(second);
    assert_true(first_stamp >= before && first_stamp <= after);
    assert_true(second_stamp >= first_stamp + 1100 && second_stamp <= after);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_line_format),
        cmocka_unit_test(test_levels_and_names),
        cmocka_unit_test(test_newlines_folded_and_errno_kept),
        cmocka_unit_test(test_long_message_truncated),
        cmocka_unit_test(test_journal_prefix),
        cmocka_unit_test(test_timestamps_follow_the_clock),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
