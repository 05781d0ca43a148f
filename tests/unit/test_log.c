/* log: the exact line format on a terminal and for journald, levels, line folding, truncation,
   errno, timestamps that follow the clock across seconds, and the buffered mode */
#define _GNU_SOURCE /* timegm, to read a line's timestamp back; F_SETPIPE_SZ */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
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

/* bytes written to the capture so far, without ending it */
static size_t capture_size(struct capture *c)
{
    struct stat st;

    assert_int_equal(fstat(fileno(c->file), &st), 0);
    return (size_t)st.st_size;
}

/* journald mode on the captured stderr: lines carry no timestamp, so whole outputs compare */
static void capture_start_journal(struct capture *c)
{
    struct stat st;
    char env[64];

    capture_start(c);
    assert_int_equal(fstat(STDERR_FILENO, &st), 0);
    snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", env, 1);
    log_init("journal");
}

static char *capture_read_journal(struct capture *c)
{
    char *out = capture_read(c);

    unsetenv("JOURNAL_STREAM");
    log_init("journal");
    return out;
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

/* out is one plain line written between before and after: "<stamp> ident[pid] info: text\n" */
static void assert_plain_info_line(char *out, int64_t before, int64_t after, const char *ident,
                                   const char *text)
{
    char expect[128];
    int64_t stamp = parse_stamp(out);

    assert_true(stamp >= before && stamp <= after);
    snprintf(expect, sizeof(expect), " %s[%ld] info: %s\n", ident, (long)getpid(), text);
    assert_string_equal(out + 24, expect);
    free(out);
}

static void test_plain_line_format(void **state)
{
    struct capture c;
    char *out;
    int64_t before, after;

    (void)state;
    unsetenv("JOURNAL_STREAM");
    log_init("test-ident");
    log_set_level(LOG_LEVEL_INFO);
    before = now_ms();
    capture_start(&c);
    log_info("hello %d %s", 42, "world");
    out = capture_read(&c);
    after = now_ms();
    assert_plain_info_line(out, before, after, "test-ident", "hello 42 world");
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

/* log_text writes what log_write writes for "%.*s": folded, cut at a NUL, truncated, errno kept */
static void test_text_lines_match_formatted(void **state)
{
    static const char cases[][12] = {"plain", "a\nb\r\nc", "x\0y", "abcdef"};
    static const size_t lens[] = {5, 7, 3, 3};
    struct capture c;
    char *text_out = NULL, *fmt_out = NULL, *big;

    (void)state;
    big = malloc(5000);
    assert_non_null(big);
    memset(big, 'x', 5000);
    for (int pass = 0; pass < 2; pass++) {
        capture_start_journal(&c);
        errno = EDOM;
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            if (pass == 0)
                log_text(LOG_LEVEL_INFO, cases[i], lens[i]);
            else
                log_write(LOG_LEVEL_INFO, "%.*s", (int)lens[i], cases[i]);
        }
        if (pass == 0)
            log_text(LOG_LEVEL_WARN, big, 5000);
        else
            log_write(LOG_LEVEL_WARN, "%.*s", 5000, big);
        /* below the level: nothing */
        if (pass == 0)
            log_text(LOG_LEVEL_DEBUG, "hidden", 6);
        assert_int_equal(errno, EDOM);
        if (pass == 0)
            text_out = capture_read_journal(&c);
        else
            fmt_out = capture_read_journal(&c);
    }
    assert_string_equal(text_out, fmt_out);
    assert_non_null(strstr(text_out, "<6>plain\n<6>a b  c\n<6>x\n<6>abc\n<4>xxx"));
    assert_int_equal(strlen(text_out), strlen("<6>plain\n<6>a b  c\n<6>x\n<6>abc\n<4>") + 2047 + 1);
    free(text_out);
    free(fmt_out);
    free(big);
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

static int hook_calls;

static void count_hook(void *arg)
{
    assert_ptr_equal(arg, &hook_calls);
    hook_calls++;
}

/* info/debug lines wait for log_flush and then arrive in order, as unbuffered ones would */
static void test_buffered_lines_wait_for_flush(void **state)
{
    static const char expect[] = "<6>one 1\n<7>two\n<6>three a b\n";
    struct capture c;
    char *out;

    (void)state;
    log_set_level(LOG_LEVEL_DEBUG);
    capture_start_journal(&c);
    log_info("one %d", 1);
    log_debug("two");
    log_info("three %s", "a\nb");
    out = capture_read_journal(&c);
    assert_string_equal(out, expect);
    free(out);

    capture_start_journal(&c);
    log_set_buffered(true);
    log_info("one %d", 1);
    log_debug("two");
    errno = EILSEQ;
    log_info("three %s", "a\nb");
    assert_int_equal(errno, EILSEQ);
    assert_int_equal(capture_size(&c), 0);
    log_flush();
    assert_int_equal(errno, EILSEQ);
    log_set_buffered(false);
    log_set_level(LOG_LEVEL_INFO);
    out = capture_read_journal(&c);
    assert_string_equal(out, expect);
    free(out);
}

/* the terminal format (timestamp and ident head) is unchanged when buffered */
static void test_buffered_plain_line_format(void **state)
{
    struct capture c;
    char *out;
    int64_t before, after;

    (void)state;
    unsetenv("JOURNAL_STREAM");
    log_init("buf-ident");
    before = now_ms();
    capture_start(&c);
    log_set_buffered(true);
    log_info("hello %d", 7);
    assert_int_equal(capture_size(&c), 0);
    log_flush();
    log_set_buffered(false);
    out = capture_read(&c);
    after = now_ms();
    assert_plain_info_line(out, before, after, "buf-ident", "hello 7");
}

/* a warn or error line never waits, and what waited before it goes out first */
static void test_warn_and_error_flush_earlier_lines(void **state)
{
    struct capture c;
    char *out;

    (void)state;
    capture_start_journal(&c);
    log_set_buffered(true);
    log_info("a");
    log_info("b");
    log_warn("c");
    assert_int_equal(capture_size(&c), strlen("<6>a\n<6>b\n<4>c\n"));
    log_info("d");
    assert_int_equal(capture_size(&c), strlen("<6>a\n<6>b\n<4>c\n"));
    log_error("e");
    log_info("f");
    log_set_buffered(false); /* turning it off flushes */
    out = capture_read_journal(&c);
    assert_string_equal(out, "<6>a\n<6>b\n<4>c\n<6>d\n<3>e\n<6>f\n");
    free(out);
}

/* the hook fires when a line lands in an empty buffer, and only then */
static void test_flush_hook_once_per_fill(void **state)
{
    struct capture c;
    char *out;

    (void)state;
    hook_calls = 0;
    capture_start_journal(&c);
    log_set_flush_hook(count_hook, &hook_calls);
    log_set_buffered(true);
    log_flush();
    log_warn("unbuffered");
    assert_int_equal(hook_calls, 0);
    log_info("1");
    log_info("2");
    log_info("3");
    assert_int_equal(hook_calls, 1);
    log_flush();
    log_flush();
    assert_int_equal(hook_calls, 1);
    log_info("4");
    assert_int_equal(hook_calls, 2);
    log_error("flushes 4");
    log_info("5");
    assert_int_equal(hook_calls, 3);
    log_set_level(LOG_LEVEL_INFO);
    log_debug("filtered out: not buffered");
    log_set_buffered(false);
    log_info("6");
    assert_int_equal(hook_calls, 3);
    log_set_flush_hook(NULL, NULL);
    out = capture_read_journal(&c);
    assert_string_equal(out, "<4>unbuffered\n<6>1\n<6>2\n<6>3\n<6>4\n<3>flushes 4\n<6>5\n<6>6\n");
    free(out);
}

/* numbered lines "<6>NNNNN xxx...\n" of width bytes each, in order, and nothing else */
static void assert_numbered_lines(const char *out, size_t lines, size_t width)
{
    assert_int_equal(strlen(out), lines * width);
    for (size_t i = 0; i < lines; i++) {
        const char *line = out + i * width;
        char num[32];

        snprintf(num, sizeof(num), "<6>%05zu ", i);
        assert_memory_equal(line, num, strlen(num));
        assert_int_equal(strspn(line + strlen(num), "x"), width - strlen(num) - 1);
        assert_int_equal(line[width - 1], '\n');
    }
}

/* far more than the buffer holds: a full buffer is written before the line that would not fit,
   so only whole lines ever go out, and every one arrives */
static void test_buffer_overflow_keeps_every_line(void **state)
{
    enum { LINES = 3000, FILL = 100 };
    struct capture c;
    char *out, fill[FILL + 1];
    size_t width = strlen("<6>00000 ") + FILL + 1, written = 0;
    int overflow_writes = 0;

    (void)state;
    memset(fill, 'x', FILL);
    fill[FILL] = '\0';
    hook_calls = 0;
    capture_start_journal(&c);
    log_set_flush_hook(count_hook, &hook_calls);
    log_set_buffered(true);
    for (size_t i = 0; i < LINES; i++) {
        log_info("%05zu %s", i, fill);
        if (capture_size(&c) != written) {
            written = capture_size(&c);
            overflow_writes++;
            assert_int_equal(written % width, 0);
        }
    }
    assert_true(overflow_writes > 1);
    assert_true(written < LINES * width);
    /* each overflow write leaves the buffer empty for the line that did not fit */
    assert_int_equal(hook_calls, overflow_writes + 1);
    log_flush();
    log_set_buffered(false);
    log_set_flush_hook(NULL, NULL);
    out = capture_read_journal(&c);
    assert_numbered_lines(out, LINES, width);
    free(out);
}

/* the longest lines there are (a message cut at 2047 bytes) buffer and arrive whole */
static void test_longest_lines_buffered(void **state)
{
    enum { LINES = 100 };
    struct capture c;
    char *out, *big;

    (void)state;
    big = malloc(5000);
    assert_non_null(big);
    memset(big, 'x', 4999);
    big[4999] = '\0';
    capture_start_journal(&c);
    log_set_buffered(true);
    for (size_t i = 0; i < LINES; i++)
        log_info("%05zu %s", i, big);
    log_set_buffered(false);
    out = capture_read_journal(&c);
    assert_numbered_lines(out, LINES, strlen("<6>") + 2047 + 1);
    free(out);
    free(big);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

/* a child drains the pipe slowly into the capture file */
static pid_t start_slow_reader(const int pipe_fds[2], int out_fd)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        const struct timespec nap = {0, 200 * 1000};
        char chunk[512];
        ssize_t n;

        close(pipe_fds[1]);
        while ((n = read(pipe_fds[0], chunk, sizeof(chunk))) != 0) {
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                _exit(1);
            }
            if (write(out_fd, chunk, (size_t)n) != n)
                _exit(1);
            nanosleep(&nap, NULL);
        }
        _exit(0);
    }
    return pid;
}

/* writes into a small, slowly drained pipe, interrupted by signals without SA_RESTART, come back
   short or with EINTR: every byte must still arrive */
static void test_interrupted_writes_lose_nothing(void **state)
{
    enum { LINES = 2000, FILL = 100 };
    const struct itimerval every_ms = {{0, 1000}, {0, 1000}}, stop = {{0, 0}, {0, 0}};
    struct sigaction sa, old_sa;
    struct capture c;
    char *out, fill[FILL + 1];
    size_t width = strlen("<6>00000 ") + FILL + 1;
    int pipe_fds[2], status;
    pid_t reader;

    (void)state;
    memset(fill, 'x', FILL);
    fill[FILL] = '\0';
    capture_start_journal(&c);
    assert_int_equal(pipe(pipe_fds), 0);
    assert_true(fcntl(pipe_fds[1], F_SETPIPE_SZ, 4096) >= 4096);
    reader = start_slow_reader(pipe_fds, fileno(c.file));
    close(pipe_fds[0]);
    assert_true(dup2(pipe_fds[1], STDERR_FILENO) >= 0);
    close(pipe_fds[1]);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, &old_sa), 0);
    alarms = 0;
    assert_int_equal(setitimer(ITIMER_REAL, &every_ms, NULL), 0);
    log_set_buffered(true);
    for (size_t i = 0; i < LINES; i++) {
        log_info("%05zu %s", i, fill);
        if (i % 50 == 49)
            log_flush();
    }
    log_set_buffered(false);
    assert_int_equal(setitimer(ITIMER_REAL, &stop, NULL), 0);
    assert_int_equal(sigaction(SIGALRM, &old_sa, NULL), 0);
    assert_true(alarms > 0);

    /* the pipe's last write end closes: the reader sees EOF and exits */
    assert_true(dup2(fileno(c.file), STDERR_FILENO) >= 0);
    assert_int_equal(waitpid(reader, &status, 0), reader);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    out = capture_read_journal(&c);
    assert_numbered_lines(out, LINES, width);
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
        cmocka_unit_test(test_text_lines_match_formatted),
        cmocka_unit_test(test_timestamps_follow_the_clock),
        cmocka_unit_test(test_buffered_lines_wait_for_flush),
        cmocka_unit_test(test_buffered_plain_line_format),
        cmocka_unit_test(test_warn_and_error_flush_earlier_lines),
        cmocka_unit_test(test_flush_hook_once_per_fill),
        cmocka_unit_test(test_buffer_overflow_keeps_every_line),
        cmocka_unit_test(test_longest_lines_buffered),
        cmocka_unit_test(test_interrupted_writes_lose_nothing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
