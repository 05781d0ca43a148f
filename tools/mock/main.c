/* databrain-mock: a local, fault-injecting stand-in for the Databrain Create Datamart endpoint. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/event.h>

#include "log.h"
#include "loop_heap.h"
#include "mock.h"
#include "mock_api.h"
#include "mock_faults.h"
#include "mock_payload.h"
#include "mock_server.h"
#include "mock_stats.h"
#include "mock_store.h"
#include "mock_tokens.h"
#include "version.h"

#define EXIT_USAGE 2
#define DEFAULT_DATASOURCE "postgres-main"

struct options {
    const char *listen;
    bool allow_remote;
    bool verbose;
    unsigned long max_datamarts;
    unsigned long max_store_mb;
    const char **datasources;
    size_t datasource_count;
};

enum option_id {
    OPT_HELP = 'h',
    OPT_LISTEN = 1000,
    OPT_ALLOW_REMOTE,
    OPT_TOKEN,
    OPT_DATASOURCE,
    OPT_VERBOSE,
    OPT_VERSION,
    OPT_MAX_DATAMARTS,
    OPT_MAX_STORE_MB,
    OPT_KNOB, /* any fault knob: the option's name is the knob's */
};

static const struct option long_options[] = {
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"allow-remote", no_argument, NULL, OPT_ALLOW_REMOTE},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"datasource", required_argument, NULL, OPT_DATASOURCE},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"max-datamarts", required_argument, NULL, OPT_MAX_DATAMARTS},
    {"max-store-mb", required_argument, NULL, OPT_MAX_STORE_MB},
    {"seed", required_argument, NULL, OPT_KNOB},
    {"latency-ms", required_argument, NULL, OPT_KNOB},
    {"error-500", required_argument, NULL, OPT_KNOB},
    {"error-502", required_argument, NULL, OPT_KNOB},
    {"error-503", required_argument, NULL, OPT_KNOB},
    {"error-504", required_argument, NULL, OPT_KNOB},
    {"rate-limit", required_argument, NULL, OPT_KNOB},
    {"retry-after", required_argument, NULL, OPT_KNOB},
    {"retry-after-date", no_argument, NULL, OPT_KNOB},
    {"hang", required_argument, NULL, OPT_KNOB},
    {"reset", required_argument, NULL, OPT_KNOB},
    {"lost-answer", required_argument, NULL, OPT_KNOB},
    {"fail-first", required_argument, NULL, OPT_KNOB},
    {"fail-first-status", required_argument, NULL, OPT_KNOB},
    {"auth-status", required_argument, NULL, OPT_KNOB},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
    fputs(
        "Usage: databrain-mock [OPTIONS]\n"
        "A local stand-in for the Databrain Create Datamart API: POST " MOCK_API_PATH "\n"
        "(and the legacy " MOCK_LEGACY_API_PATH "), with fault injection and /__ admin\n"
        "endpoints. Prints 'listening on HOST:PORT' on stdout once it serves.\n"
        "\n"
        "  --listen HOST:PORT       address to serve (default 127.0.0.1:8080; port 0 = any free)\n"
        "  --allow-remote           permit a non-loopback listen address\n"
        "  --token T                accept this service token (repeatable; none: any token)\n"
        "  --datasource NAME        an existing datasource (repeatable; default " DEFAULT_DATASOURCE
        ")\n"
        "  --seed N                 seed of the fault and jitter draws (default 1)\n"
        "  --latency-ms N[:J]       delay every answer by N +- J ms\n"
        "  --error-500 P            probability of 500 INTERNAL_SERVER_ERROR\n"
        "  --error-502 P, --error-503 P, --error-504 P   ... of a gateway error\n"
        "  --rate-limit P           ... of 429 with Retry-After\n"
        "  --retry-after N          Retry-After in seconds (default 1)\n"
        "  --retry-after-date       send Retry-After as an HTTP-date instead\n"
        "  --hang P                 ... of never answering (held until the client leaves)\n"
        "  --reset P                ... of closing the connection unanswered\n"
        "  --lost-answer P          ... of creating the datamart, then closing unanswered\n"
        "  --fail-first N           fail the first N requests\n"
        "  --fail-first-status S    with this status (default 500)\n"
        "  --auth-status S          400 AUTH_ERROR (default) or 401 AUTHENTICATION_ERROR\n"
        "  --max-datamarts N        keep at most N datamarts (default 1000000)\n"
        "  --max-store-mb N         and at most N MiB of names and bodies (default 1024)\n"
        "  --verbose                log every request\n"
        "  --version, --help\n"
        "Probabilities are 0..1 and add up to at most 1. See docs/databrain-mock.md.\n",
        out);
}

static bool parse_ulong(const char *text, unsigned long max, unsigned long *out)
{
    char *end;

    errno = 0;
    *out = strtoul(text, &end, 10);
    return end != text && *end == '\0' && errno == 0 && text[0] != '-' && *out <= max;
}

/* Returns -1 to go on, else the exit code. */
static int parse_options(int argc, char **argv, struct options *opt, struct mock_faults *faults,
                         struct mock_tokens *tokens)
{
    char err[256];
    int c, index;

    while ((c = getopt_long(argc, argv, "h", long_options, &index)) != -1) {
        switch (c) {
        case OPT_HELP:
            usage(stdout);
            return EXIT_SUCCESS;
        case OPT_VERSION:
            printf("databrain-mock %s\n", DATAMART_VERSION);
            return EXIT_SUCCESS;
        case OPT_LISTEN:
            opt->listen = optarg;
            break;
        case OPT_ALLOW_REMOTE:
            opt->allow_remote = true;
            break;
        case OPT_TOKEN:
            if (!mock_tokens_add(tokens, optarg, err, sizeof(err))) {
                fprintf(stderr, "databrain-mock: --token: %s\n", err);
                return EXIT_USAGE;
            }
            break;
        case OPT_DATASOURCE:
            opt->datasources[opt->datasource_count++] = optarg;
            break;
        case OPT_VERBOSE:
            opt->verbose = true;
            break;
        case OPT_MAX_DATAMARTS:
        case OPT_MAX_STORE_MB:
            if (!parse_ulong(optarg, c == OPT_MAX_DATAMARTS ? 100000000UL : 1048576UL,
                             c == OPT_MAX_DATAMARTS ? &opt->max_datamarts : &opt->max_store_mb)) {
                fprintf(stderr, "databrain-mock: --%s: not a valid count\n",
                        long_options[index].name);
                return EXIT_USAGE;
            }
            break;
        case OPT_KNOB:
            if (!mock_faults_set(faults, long_options[index].name, optarg != NULL ? optarg : "true",
                                 err, sizeof(err))) {
                fprintf(stderr, "databrain-mock: --%s: %s\n", long_options[index].name, err);
                return EXIT_USAGE;
            }
            break;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "databrain-mock: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (opt->datasource_count == 0)
        opt->datasources[opt->datasource_count++] = DEFAULT_DATASOURCE;
    return -1;
}

/* HOST:PORT or [V6HOST]:PORT, resolved to one socket address */
static bool parse_listen(const char *text, struct sockaddr_storage *addr, socklen_t *addrlen)
{
    char host[256];
    const char *port, *host_end;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res;
    unsigned long port_number;
    int rc;

    if (text[0] == '[') {
        host_end = strchr(text, ']');
        if (host_end == NULL || host_end[1] != ':')
            return false;
        text++;
        port = host_end + 2;
    } else {
        host_end = strrchr(text, ':');
        if (host_end == NULL)
            return false;
        port = host_end + 1;
    }
    if ((size_t)(host_end - text) >= sizeof(host) || !parse_ulong(port, 65535, &port_number))
        return false;
    memcpy(host, text, (size_t)(host_end - text));
    host[host_end - text] = '\0';
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "databrain-mock: --listen %s: %s\n", host, gai_strerror(rc));
        return false;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

static bool is_loopback(const struct sockaddr_storage *addr)
{
    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;

        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (addr->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;

        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

/* thousands of held connections need thousands of descriptors */
static void raise_nofile_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        log_warn("cannot raise the descriptor limit: %s", strerror(errno));
}

/* libevent signal event: SIGTERM or SIGINT */
static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info("signal %d: stopping", (int)sig);
    event_base_loopbreak(arg);
}

static struct event_base *base_create(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base = NULL;

    if (cfg == NULL)
        return NULL;
    /* evhttp flips read and write interest on every request: batch those epoll_ctl calls;
     * held requests watch their sockets edge-triggered for the peer closing; latency is kept to
     * the microsecond (timerfd), not to the kernel tick epoll's millisecond timeout rounds up to */
    if (event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) == 0 &&
        event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER) == 0 &&
        event_config_require_features(cfg, EV_FEATURE_ET | EV_FEATURE_EARLY_CLOSE) == 0)
        base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

static int serve(struct mock_context *ctx, const struct options *opt,
                 const struct sockaddr_storage *addr, socklen_t addrlen)
{
    struct mock_api *api = NULL;
    struct mock_server *server = NULL;
    struct event *sigterm = NULL, *sigint = NULL;
    int rc = EXIT_FAILURE;

    ctx->store = mock_store_create(opt->max_datamarts, (size_t)opt->max_store_mb << 20);
    ctx->stats = mock_stats_create();
    api = ctx->store != NULL && ctx->stats != NULL ? mock_api_create(ctx) : NULL;
    if (api == NULL) {
        log_error("out of memory");
        goto done;
    }
    server = mock_server_create(ctx, api, (const struct sockaddr *)addr, addrlen);
    if (server == NULL)
        goto done;
    sigterm = evsignal_new(ctx->base, SIGTERM, on_stop_signal, ctx->base);
    sigint = evsignal_new(ctx->base, SIGINT, on_stop_signal, ctx->base);
    if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm, NULL) != 0 ||
        evsignal_add(sigint, NULL) != 0) {
        log_error("cannot handle signals");
        goto done;
    }

    printf("listening on %s\n", mock_server_address(server));
    fflush(stdout);
    log_info("databrain-mock %s on %s: seed %llu, %zu token(s), %zu datasource(s)",
             DATAMART_VERSION, mock_server_address(server),
             (unsigned long long)mock_faults_settings(ctx->faults)->seed,
             mock_tokens_count(ctx->tokens), ctx->datasource_count);
    if (mock_tokens_count(ctx->tokens) == 0)
        log_warn("no --token given: any bearer token is accepted");
    if (event_base_dispatch(ctx->base) == 0)
        rc = EXIT_SUCCESS;
    else
        log_error("event loop failed");

done:
    if (sigterm != NULL)
        event_free(sigterm);
    if (sigint != NULL)
        event_free(sigint);
    /* before the API: freeing the connections releases held requests into it */
    mock_server_free(server);
    mock_api_free(api);
    mock_stats_free(ctx->stats);
    mock_store_free(ctx->store);
    return rc;
}

int main(int argc, char **argv)
{
    struct options opt = {
        .listen = "127.0.0.1:8080", .max_datamarts = 1000000, .max_store_mb = 1024};
    struct mock_context ctx = {0};
    struct sockaddr_storage addr;
    socklen_t addrlen = 0;
    struct sigaction ignore = {.sa_handler = SIG_IGN};
    int rc;

    log_init("databrain-mock");
    /* evhttp allocates a request, its URI and every header name and value per request: from a
     * pool, not through glibc's bins; before libevent allocates anything */
    if (!loop_heap_init()) {
        log_error("out of memory");
        return EXIT_FAILURE;
    }
    event_set_mem_functions(loop_heap_malloc, loop_heap_realloc, loop_heap_free);
    mock_payload_init();
    ctx.faults = mock_faults_create();
    ctx.tokens = mock_tokens_create();
    opt.datasources = calloc((size_t)argc + 1, sizeof(*opt.datasources));
    if (ctx.faults == NULL || ctx.tokens == NULL || opt.datasources == NULL) {
        log_error("out of memory");
        rc = EXIT_FAILURE;
        goto done;
    }
    rc = parse_options(argc, argv, &opt, ctx.faults, ctx.tokens);
    if (rc >= 0)
        goto done;
    rc = EXIT_USAGE;
    if (!parse_listen(opt.listen, &addr, &addrlen)) {
        fprintf(stderr, "databrain-mock: --listen: expected HOST:PORT, got '%s'\n", opt.listen);
        goto done;
    }
    if (!opt.allow_remote && !is_loopback(&addr)) {
        fprintf(stderr,
                "databrain-mock: refusing to listen on non-loopback %s (use --allow-remote)\n",
                opt.listen);
        goto done;
    }
    log_set_level(opt.verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
    mock_faults_save_defaults(ctx.faults);
    rc = EXIT_FAILURE;
    if (!mock_tokens_save_defaults(ctx.tokens)) {
        log_error("out of memory");
        goto done;
    }
    raise_nofile_limit();
    /* a client that vanishes mid-answer must not kill the mock */
    if (sigaction(SIGPIPE, &ignore, NULL) != 0) {
        log_error("sigaction(SIGPIPE): %s", strerror(errno));
        goto done;
    }
    ctx.base = base_create();
    if (ctx.base == NULL) {
        log_error("cannot create an event loop with edge-triggered close detection");
        goto done;
    }
    ctx.datasources = opt.datasources;
    ctx.datasource_count = opt.datasource_count;
    rc = serve(&ctx, &opt, &addr, addrlen);

done:
    if (ctx.base != NULL)
        event_base_free(ctx.base);
    mock_tokens_free(ctx.tokens);
    mock_faults_free(ctx.faults);
    free(opt.datasources);
    loop_heap_cleanup();
    return rc;
}
