#include "redis_server.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REDIS_SERVER "/usr/bin/redis-server"

int redis_server_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static bool port_accepts(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok;

    assert_true(fd >= 0);
    ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

void redis_server_start(struct redis_server *s, const char *const *extra)
{
    char port[16];
    const char *argv[32] = {REDIS_SERVER, "--save",     "",       "--appendonly",
                            "no",         "--port",     port,     "--bind",
                            "127.0.0.1",  "--dir",      s->dir,   "--enable-debug-command",
                            "yes",        "--loglevel", "warning"};
    int argc = 15;

    if (s->dir[0] == '\0') {
        snprintf(s->dir, sizeof(s->dir), "/tmp/test_redis_server.XXXXXX");
        assert_non_null(mkdtemp(s->dir));
        snprintf(s->sock, sizeof(s->sock), "%s/redis.sock", s->dir);
    }
    if (s->port == 0)
        s->port = redis_server_free_port();
    snprintf(port, sizeof(port), "%d", s->port);
    for (; extra != NULL && *extra != NULL; extra++) {
        assert_true(argc < (int)(sizeof(argv) / sizeof(argv[0])) - 1);
        argv[argc++] = *extra;
    }
    argv[argc] = NULL;

    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);

        dup2(devnull, STDOUT_FILENO);
        dup2(devnull, STDERR_FILENO);
        execv(REDIS_SERVER, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 500 && !port_accepts(s->port); i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    assert_true(port_accepts(s->port));
}

void redis_server_kill(struct redis_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

void redis_server_cleanup(struct redis_server *s)
{
    redis_server_kill(s);
    if (s->dir[0] != '\0') {
        unlink(s->sock);
        rmdir(s->dir);
    }
}
