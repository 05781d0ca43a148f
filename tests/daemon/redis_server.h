/*
 * A throwaway redis-server for the daemon tests: loopback only, no persistence, stdout and stderr
 * discarded. Failures abort the current cmocka test.
 */
#ifndef DATAMART_TEST_REDIS_SERVER_H
#define DATAMART_TEST_REDIS_SERVER_H

#include <sys/types.h>

struct redis_server {
    pid_t pid;
    int port;       /* picked by redis_server_start when 0; kept across restarts */
    char dir[64];   /* working directory; made by redis_server_start when empty */
    char sock[128]; /* "<dir>/redis.sock", for tests that add --unixsocket */
};

/* A loopback TCP port that was free a moment ago. */
int redis_server_free_port(void);
/* Start redis-server on s->port with extra "--opt", "value" pairs (NULL-terminated, or NULL). */
void redis_server_start(struct redis_server *s, const char *const *extra);
/* SIGKILL and reap it; nothing when not running. */
void redis_server_kill(struct redis_server *s);
/* Kill it and remove its directory. */
void redis_server_cleanup(struct redis_server *s);

#endif
