/*
 * datamartctl: the operator and producer CLI (../shared/CONTRACT.md, "datamartctl").
 * Exit status: 0 success, 1 a checked thing is bad (an invalid payload), 2 usage or I/O error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "validator.h"
#include "version.h"

#define EXIT_INVALID 1
#define EXIT_USAGE 2
#define PREFIX_MAX 64
/* how standard input is named in output */
#define STDIN_NAME "<stdin>"

struct ctl {
    struct config *cfg; /* from -c FILE, else the defaults */
    char *redis_host;   /* --redis, overriding the config; NULL when not given */
    int redis_port;
    const char *prefix; /* --prefix, overriding the config; NULL when not given */
};

struct command {
    const char *name;
    const char *args;
    const char *help;
    /* argv[0] is the command's name */
    int (*run)(struct ctl *ctl, int argc, char **argv);
};

static int cmd_validate(struct ctl *ctl, int argc, char **argv);

static const struct command commands[] = {
    {"validate", "FILE...",
     "check Create Datamart payloads offline (- is standard input, shown as " STDIN_NAME ")",
     cmd_validate},
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: datamartctl [-c FILE] [--redis HOST:PORT] [--prefix P] COMMAND [ARGS...]\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE      settings file (as datamartd's); default: built-in defaults\n"
            "      --redis HOST:PORT  Redis server, overriding the config\n"
            "      --prefix P         key prefix, overriding the config\n"
            "  -h, --help             print this help and exit\n"
            "  -V, --version          print the version and exit\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < DM_ARRAY_LEN(commands); i++) {
        char left[64];
        snprintf(left, sizeof(left), "%s %s", commands[i].name, commands[i].args);
        fprintf(out, "  %-22s %s\n", left, commands[i].help);
    }
    fputs("\nExit status: 0 success, 1 something checked is invalid or failed, 2 usage or I/O "
          "error.\n",
          out);
}

/* HOST:PORT, HOST may be a bracketed IPv6 address */
static bool redis_option_parse(const char *arg, struct ctl *ctl)
{
    const char *colon = strrchr(arg, ':');
    const char *host = arg;
    size_t host_len;
    char *end;
    long port;

    if (!colon)
        return false;
    host_len = (size_t)(colon - arg);
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (host_len == 0 || host_len > 255 || colon[1] < '0' || colon[1] > '9' || *end != '\0' ||
        errno != 0 || port < 1 || port > 65535)
        return false;
    free(ctl->redis_host);
    ctl->redis_host = strndup(host, host_len);
    ctl->redis_port = (int)port;
    return ctl->redis_host != NULL;
}

/* the same rule as the config's [redis] prefix: [A-Za-z0-9._:-]{1,64} */
static bool prefix_valid(const char *p)
{
    size_t n = strlen(p);

    if (n == 0 || n > PREFIX_MAX)
        return false;
    return strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") == n;
}

/* A file name fit for one output line: control bytes become '?'. */
static char *display_name(const char *path)
{
    char *name = strdup(strcmp(path, "-") == 0 ? STDIN_NAME : path);

    for (char *p = name; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return name;
}

struct read_buf {
    char *data;
    size_t cap;
};

/*
 * Reads at most limit bytes of path ("-": standard input) into b, growing it as needed.
 * Returns false with errno set on failure.
 */
static bool read_bounded(const char *path, size_t limit, struct read_buf *b, size_t *len)
{
    bool is_stdin = strcmp(path, "-") == 0;
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    bool ok = true;

    *len = 0;
    if (fd < 0)
        return false;
    while (*len < limit) {
        ssize_t n;

        if (*len == b->cap) {
            size_t cap = b->cap ? b->cap * 2 : 64 * 1024;
            char *p;

            if (cap > limit)
                cap = limit;
            p = realloc(b->data, cap);
            if (!p) {
                errno = ENOMEM;
                ok = false;
                break;
            }
            b->data = p;
            b->cap = cap;
        }
        n = read(fd, b->data + *len, b->cap - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ok = false;
            break;
        }
        if (n == 0)
            break;
        *len += (size_t)n;
    }
    if (!is_stdin) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return ok;
}

/* Prints FILE: ok or one FILE: PATH: MESSAGE line per problem; returns the exit status. */
static int validate_one(const char *path, size_t max_bytes, struct read_buf *b)
{
    char *name = display_name(path);
    struct validator_result *r = NULL;
    size_t len;
    int status = EXIT_SUCCESS;

    if (!name) {
        perror("datamartctl");
        return EXIT_USAGE;
    }
    /* one byte over the limit is enough for the validator to call it too large */
    if (!read_bounded(path, max_bytes + 1, b, &len)) {
        fprintf(stderr, "datamartctl: %s: %s\n", name, strerror(errno));
        status = EXIT_USAGE;
    } else if (!(r = validator_check(b->data, len, max_bytes))) {
        fprintf(stderr, "datamartctl: %s: out of memory\n", name);
        status = EXIT_USAGE;
    } else if (validator_result_count(r) == 0) {
        printf("%s: ok\n", name);
    } else {
        for (size_t i = 0; i < validator_result_count(r); i++)
            printf("%s: %s: %s\n", name, validator_result_path(r, i),
                   validator_result_message(r, i));
        status = EXIT_INVALID;
    }
    validator_result_free(r);
    free(name);
    return status;
}

static int cmd_validate(struct ctl *ctl, int argc, char **argv)
{
    struct read_buf b = {0};
    int status = EXIT_SUCCESS;
    int first = 1;

    if (first < argc && strcmp(argv[first], "--") == 0)
        first++;
    else
        for (int i = first; i < argc; i++)
            if (argv[i][0] == '-' && argv[i][1] != '\0') {
                fprintf(stderr, "datamartctl validate: unknown option %s\n", argv[i]);
                return EXIT_USAGE;
            }
    if (first == argc) {
        fprintf(stderr, "Usage: datamartctl validate FILE...\n");
        return EXIT_USAGE;
    }
    for (int i = first; i < argc; i++) {
        int s = validate_one(argv[i], ctl->cfg->max_payload_bytes, &b);
        if (s > status)
            status = s;
    }
    free(b.data);
    return status;
}

/* Global options into ctl; returns -1 to go on, else the exit status. */
static int options_parse(int argc, char **argv, struct ctl *ctl, const char **config_path)
{
    enum { OPT_REDIS = 256, OPT_PREFIX };
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"redis", required_argument, NULL, OPT_REDIS},
        {"prefix", required_argument, NULL, OPT_PREFIX},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    /* "+": options end at the command, whose own arguments may look like options */
    while ((opt = getopt_long(argc, argv, "+c:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            *config_path = optarg;
            break;
        case OPT_REDIS:
            if (!redis_option_parse(optarg, ctl)) {
                fprintf(stderr, "datamartctl: --redis wants HOST:PORT\n");
                return EXIT_USAGE;
            }
            break;
        case OPT_PREFIX:
            if (!prefix_valid(optarg)) {
                fprintf(stderr, "datamartctl: --prefix wants 1 to %d of [A-Za-z0-9._:-]\n",
                        PREFIX_MAX);
                return EXIT_USAGE;
            }
            ctl->prefix = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS;
        case 'V':
            printf("datamartctl %s\n", DATAMART_VERSION);
            return EXIT_SUCCESS;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    return -1;
}

static const struct command *command_find(const char *name)
{
    for (size_t i = 0; i < DM_ARRAY_LEN(commands); i++)
        if (strcmp(name, commands[i].name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    struct ctl ctl = {0};
    const char *config_path = NULL;
    const struct command *cmd;
    char *errors = NULL;
    int status = options_parse(argc, argv, &ctl, &config_path);

    if (status >= 0)
        goto out;
    status = EXIT_USAGE;
    cmd = optind < argc ? command_find(argv[optind]) : NULL;
    if (!cmd) {
        if (optind < argc)
            fprintf(stderr, "datamartctl: unknown command %s\n", argv[optind]);
        usage(stderr);
        goto out;
    }
    ctl.cfg = config_load(config_path, 0, &errors);
    if (!ctl.cfg) {
        fprintf(stderr, "%s", errors ? errors : "datamartctl: out of memory\n");
        goto out;
    }
    status = cmd->run(&ctl, argc - optind, argv + optind);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        perror("datamartctl: standard output");
        status = EXIT_USAGE;
    }
out:
    free(errors);
    config_free(ctl.cfg);
    free(ctl.redis_host);
    return status;
}
