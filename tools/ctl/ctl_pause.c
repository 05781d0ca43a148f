/*
 * datamartctl pause [REASON...] and resume: the P:paused key. While it exists no daemon starts
 * new jobs (in-flight ones finish). Its value says who paused, when and why.
 */
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "ctl.h"
#include "ctl_commands.h"
#include "ctl_redis.h"
#include "ctl_text.h"
#include "strbuf.h"

#define REASON_MAX 400
#define HOST_MAX 256

/* "by <user>@<host> at <iso time>[: <reason>]" */
static void pause_value(struct strbuf *sb, int argc, char **argv)
{
    const struct passwd *pw = getpwuid(geteuid());
    char host[HOST_MAX + 1] = "";
    size_t reason_start;

    if (gethostname(host, HOST_MAX) != 0)
        snprintf(host, sizeof(host), "unknown-host");
    host[HOST_MAX] = '\0';
    strbuf_puts(sb, "by ");
    if (pw)
        ctl_text_printable(sb, pw->pw_name, strlen(pw->pw_name));
    else
        strbuf_printf(sb, "uid %lu", (unsigned long)geteuid());
    strbuf_puts(sb, "@");
    ctl_text_printable(sb, host, strlen(host));
    strbuf_puts(sb, " at ");
    ctl_text_time(sb, clock_realtime_ms());
    if (argc < 2)
        return;
    strbuf_puts(sb, ": ");
    reason_start = sb->len;
    for (int i = 1; i < argc; i++) {
        if (i > 1)
            strbuf_puts(sb, " ");
        ctl_text_printable(sb, argv[i], strlen(argv[i]));
    }
    /* a long reason is cut, never at the cost of the who and when */
    if (!sb->failed && sb->len - reason_start > REASON_MAX) {
        sb->len = reason_start + REASON_MAX;
        while (sb->len > reason_start && ((unsigned char)sb->data[sb->len] & 0xc0) == 0x80)
            sb->len--;
        sb->data[sb->len] = '\0';
    }
}

static void print_value(const char *what, const redisReply *v)
{
    struct strbuf sb;

    strbuf_init(&sb);
    ctl_text_printable(&sb, v->str, v->len);
    if (!sb.failed)
        printf("%s%s\n", what, sb.data);
    strbuf_release(&sb);
}

static bool help_asked(int argc, char **argv, const char *usage)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return true;
    }
    return false;
}

int ctl_pause_run(struct ctl *ctl, int argc, char **argv)
{
    char key[CTL_KEY_MAX];
    struct ctl_redis *r;
    redisReply *old = NULL;
    struct strbuf value;
    int status = CTL_EXIT_REDIS;

    if (help_asked(argc, argv, "Usage: datamartctl pause [REASON...]\n"))
        return CTL_EXIT_OK;
    if (!(r = ctl_redis_connect(ctl)))
        return CTL_EXIT_REDIS;
    strbuf_init(&value);
    pause_value(&value, argc, argv);
    if (value.failed) {
        fputs("datamartctl: out of memory\n", stderr);
        status = CTL_EXIT_USAGE;
        goto out;
    }
    ctl_redis_key(r, key, "paused", NULL);
    /* a pause under a prefix nobody uses is most likely a typo: say so, but pause anyway */
    if (ctl_redis_prefix_check(r) < 0 ||
        !(old = ctl_redis_command(r, "SET %s %b GET", key, value.data, value.len)))
        goto out;
    printf("paused %s\n", value.data);
    if (old->type == REDIS_REPLY_STRING)
        print_value("it was already paused ", old);
    status = CTL_EXIT_OK;
out:
    freeReplyObject(old);
    strbuf_release(&value);
    ctl_redis_free(r);
    return status;
}

int ctl_pause_resume_run(struct ctl *ctl, int argc, char **argv)
{
    const char *usage = "Usage: datamartctl resume\n";
    char key[CTL_KEY_MAX];
    struct ctl_redis *r;
    redisReply *old;

    if (help_asked(argc, argv, usage))
        return CTL_EXIT_OK;
    if (argc != 1) {
        fputs(usage, stderr);
        return CTL_EXIT_USAGE;
    }
    if (!(r = ctl_redis_connect(ctl)))
        return CTL_EXIT_REDIS;
    ctl_redis_key(r, key, "paused", NULL);
    old = ctl_redis_command(r, "GETDEL %s", key);
    ctl_redis_free(r);
    if (!old)
        return CTL_EXIT_REDIS;
    if (old->type == REDIS_REPLY_STRING)
        print_value("resumed; it was paused ", old);
    else
        printf("resumed; it was not paused\n");
    freeReplyObject(old);
    return CTL_EXIT_OK;
}
