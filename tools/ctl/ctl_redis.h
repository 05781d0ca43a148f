/*
 * datamartctl's Redis connection (hiredis, synchronous): where to connect (--redis, else the
 * config's socket or host:port), AUTH and SELECT from the config, keys under the prefix, and
 * commands whose failures are reported once, naming the server's address.
 */
#ifndef DATAMART_CTL_REDIS_H
#define DATAMART_CTL_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"

struct ctl;
struct redisReply;
struct ctl_redis;

/* prefix (64) + ":" + the longest key name ("batch") + ":" + an id (128), with room to spare */
#define CTL_KEY_MAX 256
/* a stream entry id, "<ms>-<seq>" */
#define CTL_ENTRY_ID_MAX 48

/*
 * Connect, then AUTH and SELECT as the config says. On failure prints why, with the address
 * ("cannot connect to Redis at 127.0.0.1:6379: Connection refused"), and returns NULL: the
 * caller exits CTL_EXIT_REDIS. The password is never printed.
 */
struct ctl_redis *ctl_redis_connect(const struct ctl *ctl) DM_MUSTCHECK;
void ctl_redis_free(struct ctl_redis *r);

const char *ctl_redis_prefix(const struct ctl_redis *r);
const char *ctl_redis_address(const struct ctl_redis *r);

/* "P:name", or "P:name:id" when id is not NULL, into key (CTL_KEY_MAX bytes) */
void ctl_redis_key(const struct ctl_redis *r, char *key, const char *name, const char *id);

/*
 * One command in hiredis' format (%s a C string, %b bytes and a size_t length). Returns the
 * reply (freeReplyObject), or NULL after printing why when the connection failed or Redis
 * answered with an error.
 */
struct redisReply *ctl_redis_command(struct ctl_redis *r, const char *fmt, ...) DM_MUSTCHECK;
struct redisReply *ctl_redis_command_argv(struct ctl_redis *r, int argc, const char **argv,
                                          const size_t *lens) DM_MUSTCHECK;

/* Queue a command for a pipeline; false (printed) when out of memory. */
bool ctl_redis_append(struct ctl_redis *r, const char *fmt, ...) DM_MUSTCHECK;
bool ctl_redis_append_argv(struct ctl_redis *r, int argc, const char **argv,
                           const size_t *lens) DM_MUSTCHECK;
/*
 * The next reply of the pipeline (sending what is queued first). NULL after printing why when
 * the connection failed; error replies are returned for the caller to judge.
 */
struct redisReply *ctl_redis_reply(struct ctl_redis *r) DM_MUSTCHECK;
/* true, after printing it with what, when reply is an error reply */
bool ctl_redis_reply_is_error(const struct ctl_redis *r, const struct redisReply *reply,
                              const char *what);

/* socket read timeout for the next commands; a blocking read needs its block time and more */
bool ctl_redis_set_timeout_ms(struct ctl_redis *r, long long ms) DM_MUSTCHECK;

/*
 * Whether anything lives under the prefix (P:jobs, P:results or P:dead exists): 1 yes; 0 no,
 * after printing "nothing under prefix P: wrong --prefix?"; -1 on a Redis failure (printed).
 */
int ctl_redis_prefix_check(struct ctl_redis *r) DM_MUSTCHECK;

#endif
