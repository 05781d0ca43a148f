/*
 * datamartctl: the operator and producer CLI (../shared/CONTRACT.md, "datamartctl"): global
 * options, the command table and dispatch. Each command lives in ctl/ctl_<command>.c.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "ctl_commands.h"
#include "ctl_input.h"
#include "version.h"

#define PREFIX_MAX 64

struct command {
    const char *name;
    const char *args;
    const char *help;
    /* argv[0] is the command's name */
    int (*run)(struct ctl *ctl, int argc, char **argv);
};

static const struct command commands[] = {
    {"enqueue", "[FILE|-]", "XADD one JSON body, or JSON Lines; prints the job ids",
     ctl_enqueue_run},
    {"validate", "FILE...",
     "check Create Datamart payloads offline (- is standard input, shown as " CTL_INPUT_STDIN_NAME
     ")",
     ctl_validate_run},
    {"status", "JOB_ID", "a job's state and outcome", ctl_status_run},
    {"wait", "JOB_ID... [--timeout S]", "until the jobs finish: 0 all created, 1 any failed/dead",
     ctl_wait_run},
    {"watch", "[--from ID]", "follow the outcomes as they are published", ctl_watch_run},
    {"stats", "[--watch]", "queue, consumers, retries, dead letters, pause", ctl_stats_run},
    {"dead", "list|requeue|purge", "the dead letters: list, requeue JOB_ID|--all, purge --yes",
     ctl_dead_run},
    {"batch", "status ID", "a batch's counts and progress", ctl_batch_run},
    {"pause", "[REASON]", "stop every daemon from starting new jobs", ctl_pause_run},
    {"resume", "", "let the daemons start jobs again", ctl_pause_resume_run},
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
        fprintf(out, "  %-30s %s\n", left, commands[i].help);
    }
    fputs("\n`datamartctl COMMAND --help` shows a command's options; --json gives JSON output.\n"
          "\n"
          "Exit status:\n"
          "  0  success\n"
          "  1  not found (job, batch, dead job, prefix), invalid input, or a job failed/dead\n"
          "  2  usage or I/O error; `wait`: timed out\n"
          "  3  Redis unreachable or refusing (AUTH, SELECT, a command's error)\n",
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
                return CTL_EXIT_USAGE;
            }
            break;
        case OPT_PREFIX:
            if (!prefix_valid(optarg)) {
                fprintf(stderr, "datamartctl: --prefix wants 1 to %d of [A-Za-z0-9._:-]\n",
                        PREFIX_MAX);
                return CTL_EXIT_USAGE;
            }
            ctl->prefix = optarg;
            break;
        case 'h':
            usage(stdout);
            return CTL_EXIT_OK;
        case 'V':
            printf("datamartctl %s\n", DATAMART_VERSION);
            return CTL_EXIT_OK;
        default:
            usage(stderr);
            return CTL_EXIT_USAGE;
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
    status = CTL_EXIT_USAGE;
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
    /* a write to a closed Redis connection or pipe must fail with EPIPE, not kill us silently */
    signal(SIGPIPE, SIG_IGN);
    status = cmd->run(&ctl, argc - optind, argv + optind);
    /* a reader that went away (watch | head -1) ends the output normally */
    if ((fflush(stdout) != 0 || ferror(stdout)) && errno != EPIPE) {
        perror("datamartctl: standard output");
        status = CTL_EXIT_USAGE;
    }
out:
    free(errors);
    config_free(ctl.cfg);
    free(ctl.redis_host);
    return status;
}
