/*
 * A Redis connection as an explicit state machine: hiredis (0.14.1) async on libevent, with the
 * connect/command deadlines, keepalive, handshake (AUTH, SELECT, CLIENT SETNAME, SCRIPT LOAD) and
 * reconnect backoff that hiredis 0.14.1 does not provide. Modelled on h2o's lib/common/redis.c.
 *
 * Rules for callers:
 * - The process must ignore SIGPIPE (hiredis writes to sockets with write(2)).
 * - host must be a literal IPv4/IPv6 address or "localhost": hiredis resolves names with a
 *   blocking getaddrinfo() inside the event loop, so DNS names are refused.
 * - A reply is valid only during its callback (hiredis frees it afterwards): copy what you keep,
 *   using reply->len, since values may contain NUL bytes. Replies are RESP2.
 * - Callbacks may issue new commands, configure or start the client, but must never call
 *   redis_client_free() on their own client.
 * - Commands are answered in order; a command's deadline is watched while it is the oldest one
 *   awaiting a reply. When a deadline passes, the connection is dropped: every pending command
 *   gets a NULL reply and the client reconnects with backoff. Give blocking commands
 *   (XREADGROUP ... BLOCK) a timeout longer than their BLOCK, and their own client.
 * - Subscribe/monitor commands and CLIENT REPLY are refused: they break reply ordering.
 */
#ifndef DATAMARTD_REDIS_CLIENT_H
#define DATAMARTD_REDIS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler.h"

struct event_base;
struct redisReply;
struct redis_client;

enum redis_client_state {
    REDIS_CLIENT_CLOSED = 0, /* not connected; a reconnect may be scheduled */
    REDIS_CLIENT_CONNECTING, /* TCP/unix connect, then AUTH, SELECT, CLIENT SETNAME, SCRIPT LOAD */
    REDIS_CLIENT_CONNECTED,  /* ready for commands */
};

/* Strings are copied; values <= 0 for the durations select the defaults noted. */
struct redis_client_options {
    const char *name;   /* logs and CLIENT SETNAME, e.g. "datamartd-reader"; default "datamartd" */
    const char *host;   /* literal IP or "localhost"; used when socket is NULL/empty */
    int port;           /* 1..65535 */
    const char *socket; /* unix socket path */
    const char *username;    /* optional: AUTH username password (Redis 6 ACL); needs password */
    const char *password;    /* optional; never logged */
    int db;                  /* SELECT when non-zero */
    long connect_timeout_ms; /* connect + handshake deadline; default 5000 */
    long command_timeout_ms; /* default per-command deadline; default 5000 */
    long backoff_min_ms;     /* reconnect delay floor; default 100 */
    long backoff_max_ms;     /* reconnect delay ceiling; default 30000 */
};

/* Called on every state change (CLOSED -> CONNECTING -> CONNECTED / CLOSED), never during free. */
typedef void (*redis_client_state_fn)(struct redis_client *c, enum redis_client_state state,
                                      void *arg);
/* reply is NULL when the command failed without a reply (connection lost, deadline, shutdown) */
typedef void (*redis_client_reply_fn)(struct redis_client *c, struct redisReply *reply, void *arg);

/* NULL when the options are invalid (logged) or memory ran out. Nothing connects before start. */
struct redis_client *redis_client_create(struct event_base *base,
                                         const struct redis_client_options *opts,
                                         redis_client_state_fn on_state, void *arg) DM_MUSTCHECK;
/*
 * Lua scripts loaded (SCRIPT LOAD) on every connect before CONNECTED; returns an id >= 0, or -1
 * when out of memory. A script added while connected is sent as EVAL until the next connect.
 */
int redis_client_add_script(struct redis_client *c, const char *lua_source) DM_MUSTCHECK;
/* Begin connecting (reconnects by itself from then on); true when already started. */
bool redis_client_start(struct redis_client *c) DM_MUSTCHECK;
/*
 * New options take effect at the next connect (the command timeout at the next command). The
 * client reconnects at once when the endpoint, db or username changed, or when it is not
 * connected (the change may be the fix). false (old options kept) when the options are invalid.
 */
bool redis_client_configure(struct redis_client *c,
                            const struct redis_client_options *opts) DM_MUSTCHECK;
/*
 * Send a command; argvlen may be NULL for NUL-terminated arguments, fn may be NULL. true: fn is
 * called exactly once, with the reply or NULL. false (fn not called): not CONNECTED, or the
 * command is refused. timeout_ms 0 = default deadline.
 */
bool redis_client_command(struct redis_client *c, redis_client_reply_fn fn, void *arg,
                          long timeout_ms, int argc, const char **argv,
                          const size_t *argvlen) DM_MUSTCHECK;
/*
 * EVALSHA of a script added with add_script, with numkeys of argv being keys; a NOSCRIPT error
 * is retried once as EVAL transparently (that reply then arrives after later commands' ones).
 */
bool redis_client_eval(struct redis_client *c, redis_client_reply_fn fn, void *arg, long timeout_ms,
                       int script_id, int numkeys, int argc, const char **argv,
                       const size_t *argvlen) DM_MUSTCHECK;
enum redis_client_state redis_client_state(const struct redis_client *c);
const char *redis_client_state_name(enum redis_client_state state);
/* "" when none; never holds the password */
const char *redis_client_last_error(const struct redis_client *c);
/* commands awaiting replies, handshake steps included */
size_t redis_client_pending(const struct redis_client *c);
/*
 * Commands queued to Redis since create, across reconnects: handshake steps, EVALSHA and its
 * EVAL retry each count one; commands a script runs inside Redis do not.
 */
uint64_t redis_client_commands_sent(const struct redis_client *c);
/* Pending callbacks fire with NULL before it returns; on_state is not called. NULL ok. */
void redis_client_free(struct redis_client *c);

#endif
