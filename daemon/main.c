/* datamartd: option parsing, the config load, then the daemon or a config check. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "version.h"

#define DEFAULT_CONFIG "/etc/datamartd/datamartd.conf"
#define EXIT_USAGE 2

static void usage(FILE *out)
{
    static const char text[] =
        "Usage: datamartd [-c FILE]                 run the daemon in the foreground\n"
        "       datamartd --check-config [-c FILE]  check FILE and the API token, then exit\n"
        "       datamartd --version | --help\n"
        "\n"
        "  -c, --config FILE   config file (default " DEFAULT_CONFIG ")\n"
        "  -t, --check-config  exit 0 when the config is valid, 1 with one line per problem\n"
        "  -V, --version       print the version and exit\n"
        "  -h, --help          print this help and exit\n"
        "\n"
        "The API token comes from [api] token_file or the environment variable\n"
        "DATAMARTD_API_TOKEN. conf/datamartd.conf documents every key.\n";

    fputs(text, out);
}

/* the loader's error text, one problem per line, to stderr */
static void print_errors(const char *errors)
{
    fputs(errors != NULL ? errors : "datamartd: out of memory loading the config\n", stderr);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = DEFAULT_CONFIG;
    struct config *cfg;
    char *errors = NULL;
    bool check = false;
    char summary[1024];
    int opt;

    while ((opt = getopt_long(argc, argv, "c:tVh", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            check = true;
            break;
        case 'V':
            printf("datamartd %s\n", DATAMART_VERSION);
            return EXIT_SUCCESS;
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "datamartd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }

    cfg = config_load(path, CONFIG_NEED_SECRETS, &errors);
    if (cfg == NULL) {
        print_errors(errors);
        free(errors);
        return EXIT_FAILURE;
    }
    if (check) {
        config_summary(cfg, summary, sizeof(summary));
        printf("%s: ok (%s)\n", path, summary);
        config_free(cfg);
        return EXIT_SUCCESS;
    }
    log_init("datamartd"); /* journald priorities when stderr is the journal */
    return daemon_run(cfg, path);
}
