/* datamartctl's synchronous Redis connection (see ctl_redis.h). */
#include "ctl_redis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "config.h"
#include "ctl.h"

#define CONNECT_TIMEOUT_MS 5000
/* plain commands; blocking reads set their own */
#define COMMAND_TIMEOUT_MS 30000
/* how much of an error reply is quoted */
#define ERROR_QUOTE_MAX 200

struct ctl_redis {
    redisContext *c;
    const char *prefix;
    char address[300];
};

static struct timeval timeval_ms(long long ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static void print_io_error(const struct ctl_redis *r)
{
    fprintf(stderr, "datamartctl: lost the connection to Redis at %s: %s\n", r->address,
            r->c->errstr[0] ? r->c->errstr : "I/O error");
}

bool ctl_redis_reply_is_error(const struct ctl_redis *r, const struct redisReply *reply,
                              const char *what)
{
    if (reply->type != REDIS_REPLY_ERROR)
        return false;
    fprintf(stderr, "datamartctl: Redis at %s: %s: %.*s\n", r->address, what,
            reply->len > ERROR_QUOTE_MAX ? ERROR_QUOTE_MAX : (int)reply->len, reply->str);
    return true;
}

/* one handshake step (AUTH, SELECT); false after printing why */
static bool handshake(struct ctl_redis *r, const char *what, int argc, const char **argv)
{
    redisReply *reply = redisCommandArgv(r->c, argc, argv, NULL);
    bool ok;

    if (!reply) {
        print_io_error(r);
        return false;
    }
    ok = !ctl_redis_reply_is_error(r, reply, what);
    freeReplyObject(reply);
    return ok;
}

struct ctl_redis *ctl_redis_connect(const struct ctl *ctl)
{
    const struct config *cfg = ctl->cfg;
    struct ctl_redis *r = calloc(1, sizeof(*r));
    struct timeval connect_tv = timeval_ms(CONNECT_TIMEOUT_MS);
    const char *host = ctl->redis_host ? ctl->redis_host : cfg->redis_host;
    int port = ctl->redis_host ? ctl->redis_port : cfg->redis_port;
    bool unix_socket = !ctl->redis_host && cfg->redis_socket;

    if (!r) {
        fputs("datamartctl: out of memory\n", stderr);
        return NULL;
    }
    r->prefix = ctl->prefix ? ctl->prefix : cfg->prefix;
    if (unix_socket)
        snprintf(r->address, sizeof(r->address), "unix:%s", cfg->redis_socket);
    else
        snprintf(r->address, sizeof(r->address), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
                 port);
    r->c = unix_socket ? redisConnectUnixWithTimeout(cfg->redis_socket, connect_tv)
                       : redisConnectWithTimeout(host, port, connect_tv);
    if (!r->c || r->c->err) {
        fprintf(stderr, "datamartctl: cannot connect to Redis at %s: %s\n", r->address,
                r->c ? r->c->errstr : "out of memory");
        ctl_redis_free(r);
        return NULL;
    }
    if (!ctl_redis_set_timeout_ms(r, COMMAND_TIMEOUT_MS) || redisEnableKeepAlive(r->c) != REDIS_OK)
        goto fail;
    if (cfg->redis_password) {
        const char *argv[3] = {"AUTH"};
        int argc = 1;

        if (cfg->redis_username)
            argv[argc++] = cfg->redis_username;
        argv[argc++] = cfg->redis_password;
        if (!handshake(r, "AUTH", argc, argv))
            goto fail;
    }
    if (cfg->redis_db != 0) {
        char db[16];

        snprintf(db, sizeof(db), "%d", cfg->redis_db);
        if (!handshake(r, "SELECT", 2, (const char *[]){"SELECT", db}))
            goto fail;
    }
    return r;
fail:
    ctl_redis_free(r);
    return NULL;
}

void ctl_redis_free(struct ctl_redis *r)
{
    if (!r)
        return;
    if (r->c)
        redisFree(r->c);
    free(r);
}

const char *ctl_redis_prefix(const struct ctl_redis *r)
{
    return r->prefix;
}

const char *ctl_redis_address(const struct ctl_redis *r)
{
    return r->address;
}

void ctl_redis_key(const struct ctl_redis *r, char *key, const char *name, const char *id)
{
    if (id)
        snprintf(key, CTL_KEY_MAX, "%s:%s:%s", r->prefix, name, id);
    else
        snprintf(key, CTL_KEY_MAX, "%s:%s", r->prefix, name);
}

/* the command's name (its first word) for messages */
static void command_name(const char *fmt, char *out, size_t size)
{
    size_t n = strcspn(fmt, " ");

    snprintf(out, size, "%.*s", (int)n, fmt);
}

static redisReply *command_reply(struct ctl_redis *r, redisReply *reply, const char *what)
{
    if (!reply) {
        print_io_error(r);
        return NULL;
    }
    if (ctl_redis_reply_is_error(r, reply, what)) {
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

struct redisReply *ctl_redis_command(struct ctl_redis *r, const char *fmt, ...)
{
    char what[32];
    redisReply *reply;
    va_list ap;

    va_start(ap, fmt);
    reply = redisvCommand(r->c, fmt, ap);
    va_end(ap);
    command_name(fmt, what, sizeof(what));
    return command_reply(r, reply, what);
}

struct redisReply *ctl_redis_command_argv(struct ctl_redis *r, int argc, const char **argv,
                                          const size_t *lens)
{
    redisReply *reply = redisCommandArgv(r->c, argc, argv, lens);

    return command_reply(r, reply, argv[0]);
}

bool ctl_redis_append(struct ctl_redis *r, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = redisvAppendCommand(r->c, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        fputs("datamartctl: out of memory\n", stderr);
        return false;
    }
    return true;
}

bool ctl_redis_append_argv(struct ctl_redis *r, int argc, const char **argv, const size_t *lens)
{
    if (redisAppendCommandArgv(r->c, argc, argv, lens) != REDIS_OK) {
        fputs("datamartctl: out of memory\n", stderr);
        return false;
    }
    return true;
}

struct redisReply *ctl_redis_reply(struct ctl_redis *r)
{
    void *reply = NULL;

    if (redisGetReply(r->c, &reply) != REDIS_OK || !reply) {
        print_io_error(r);
        return NULL;
    }
    return reply;
}

bool ctl_redis_set_timeout_ms(struct ctl_redis *r, long long ms)
{
    if (redisSetTimeout(r->c, timeval_ms(ms)) != REDIS_OK) {
        print_io_error(r);
        return false;
    }
    return true;
}

int ctl_redis_prefix_check(struct ctl_redis *r)
{
    char jobs[CTL_KEY_MAX], results[CTL_KEY_MAX], dead[CTL_KEY_MAX];
    redisReply *reply;
    int used;

    ctl_redis_key(r, jobs, "jobs", NULL);
    ctl_redis_key(r, results, "results", NULL);
    ctl_redis_key(r, dead, "dead", NULL);
    reply = ctl_redis_command(r, "EXISTS %s %s %s", jobs, results, dead);
    if (!reply)
        return -1;
    used = reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
    freeReplyObject(reply);
    if (!used)
        fprintf(stderr, "datamartctl: nothing under prefix %s at %s (wrong --prefix?)\n", r->prefix,
                r->address);
    return used;
}
