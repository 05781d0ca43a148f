/* config_load: defaults, every key, each error kind with FILE:LINE, secrets and their sources. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#define TOKEN_ENV "DATAMARTD_API_TOKEN"
#define SECRET "s3cr3t-TOKEN-value_0123456789"

static char tmpdir[] = "/tmp/test_config.XXXXXX";
static char conf_path[512];

static int group_setup(void **state)
{
    (void)state;
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(conf_path, sizeof(conf_path), "%s/datamartd.conf", tmpdir);
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[600];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* every test starts without secrets in the environment */
static int clean_env(void **state)
{
    (void)state;
    unsetenv(TOKEN_ENV);
    unsetenv("CREDENTIALS_DIRECTORY");
    return 0;
}

/* writes content to tmpdir/name and returns the path (static buffer) */
static const char *write_file(const char *name, const char *content, size_t len)
{
    static char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

static struct config *load_text(const char *text, unsigned flags, char **errors)
{
    write_file("datamartd.conf", text, strlen(text));
    return config_load(conf_path, flags, errors);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

/* loading text must fail; errors must contain conf_path + each expected suffix */
static char *expect_errors(const char *text, unsigned flags, size_t count, const char *const *want)
{
    char *errors = NULL;
    char line[512];
    struct config *cfg = load_text(text, flags, &errors);

    if (cfg != NULL)
        fail_msg("loaded, expected errors for:\n%s", text);
    assert_non_null(errors);
    for (size_t i = 0; i < count; i++) {
        snprintf(line, sizeof(line), "%s%s", conf_path, want[i]);
        if (strstr(errors, line) == NULL)
            fail_msg("missing error '%s' in:\n%s", line, errors);
    }
    if (count_lines(errors) != count)
        fail_msg("expected %zu error lines, got:\n%s", count, errors);
    return errors;
}

static struct config *expect_ok(const char *text, unsigned flags)
{
    char *errors = NULL;
    struct config *cfg = load_text(text, flags, &errors);

    if (cfg == NULL)
        fail_msg("unexpected errors for:\n%s\n%s", text, errors);
    assert_null(errors);
    return cfg;
}

static void test_defaults(void **state)
{
    char *errors = NULL;
    char host[256] = "";
    struct config *cfg;

    (void)state;
    cfg = config_load(NULL, 0, &errors);
    assert_non_null(cfg);
    assert_null(errors);
    assert_null(cfg->path);
    assert_string_equal(cfg->redis_host, "127.0.0.1");
    assert_int_equal(cfg->redis_port, 6379);
    assert_null(cfg->redis_socket);
    assert_null(cfg->redis_username);
    assert_null(cfg->redis_password_file);
    assert_null(cfg->redis_password);
    assert_int_equal(cfg->redis_db, 0);
    assert_string_equal(cfg->prefix, "datamart");
    assert_string_equal(cfg->api_base_url, "https://api.usedatabrain.com");
    assert_null(cfg->api_token_file);
    assert_null(cfg->api_token);
    assert_int_equal(cfg->connect_timeout_ms, 5000);
    assert_int_equal(cfg->request_timeout_ms, 30000);
    assert_int_equal(cfg->max_inflight, 64);
    assert_int_equal(cfg->max_payload_bytes, 1048576);
    assert_false(cfg->allow_insecure_http);
    assert_string_equal(cfg->group, "datamartd");
    assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
    assert_string_equal(cfg->consumer, host);
    assert_int_equal(cfg->claim_idle_ms, 15000);
    assert_int_equal(cfg->max_attempts, 10);
    assert_int_equal(cfg->max_age_s, 86400);
    assert_int_equal(cfg->backoff_base_ms, 1000);
    assert_int_equal(cfg->backoff_max_ms, 300000);
    assert_int_equal(cfg->result_ttl_s, 604800);
    assert_int_equal(cfg->results_maxlen, 100000);
    assert_int_equal(cfg->reply_ttl_s, 3600);
    assert_int_equal(cfg->shutdown_grace_ms, 10000);
    assert_true(cfg->rate == 4.0);
    assert_int_equal(cfg->burst, 20);
    assert_int_equal(cfg->rate_limit_scope, RATE_LIMIT_SCOPE_LOCAL);
    assert_true(cfg->breaker_enabled);
    assert_int_equal(cfg->breaker_consecutive, 10);
    assert_true(cfg->breaker_failure_ratio == 0.5);
    assert_int_equal(cfg->breaker_window, 20);
    assert_int_equal(cfg->breaker_probe_interval_ms, 5000);
    assert_int_equal(cfg->breaker_probe_max_ms, 60000);
    assert_string_equal(cfg->admin_listen, "127.0.0.1:9187");
    assert_string_equal(cfg->admin_host, "127.0.0.1");
    assert_int_equal(cfg->admin_port, 9187);
    assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);
    config_free(cfg);
}

/* an empty file is the defaults too */
static void test_empty_file(void **state)
{
    struct config *cfg;

    (void)state;
    cfg = expect_ok("; nothing\n# at all\n\n", 0);
    assert_string_equal(cfg->path, conf_path);
    assert_int_equal(cfg->redis_port, 6379);
    config_free(cfg);
}

static void test_every_key(void **state)
{
    const char *dir = getenv("DATAMART_TEST_DATA");
    char path[512], *errors = NULL;
    struct config *cfg;

    (void)state;
    assert_non_null(dir);
    snprintf(path, sizeof(path), "%s/datamartd-test.conf", dir);
    setenv(TOKEN_ENV, SECRET, 1);
    cfg = config_load(path, CONFIG_NEED_SECRETS, &errors);
    if (cfg == NULL)
        fail_msg("%s", errors);
    assert_string_equal(cfg->path, path);
    assert_string_equal(cfg->redis_host, "localhost");
    assert_int_equal(cfg->redis_port, 6380);
    assert_int_equal(cfg->redis_db, 3);
    assert_string_equal(cfg->prefix, "dmtest");
    assert_string_equal(cfg->api_base_url, "http://127.0.0.1:18080");
    assert_string_equal(cfg->api_token, SECRET);
    assert_int_equal(cfg->connect_timeout_ms, 1500);
    assert_int_equal(cfg->request_timeout_ms, 4000);
    assert_int_equal(cfg->max_inflight, 8);
    assert_int_equal(cfg->max_payload_bytes, 65536);
    assert_false(cfg->allow_insecure_http);
    assert_string_equal(cfg->group, "dmtest-group");
    assert_string_equal(cfg->consumer, "test-consumer-1");
    assert_int_equal(cfg->claim_idle_ms, 2000);
    assert_int_equal(cfg->max_attempts, 3);
    assert_int_equal(cfg->max_age_s, 600);
    assert_int_equal(cfg->backoff_base_ms, 50);
    assert_int_equal(cfg->backoff_max_ms, 400);
    assert_int_equal(cfg->result_ttl_s, 120);
    assert_int_equal(cfg->results_maxlen, 500);
    assert_int_equal(cfg->reply_ttl_s, 60);
    assert_int_equal(cfg->shutdown_grace_ms, 2000);
    assert_true(cfg->rate == 250.5);
    assert_int_equal(cfg->burst, 50);
    assert_int_equal(cfg->rate_limit_scope, RATE_LIMIT_SCOPE_CLUSTER);
    assert_false(cfg->breaker_enabled);
    assert_int_equal(cfg->breaker_consecutive, 4);
    assert_true(cfg->breaker_failure_ratio == 0.75);
    assert_int_equal(cfg->breaker_window, 8);
    assert_int_equal(cfg->breaker_probe_interval_ms, 100);
    assert_int_equal(cfg->breaker_probe_max_ms, 800);
    assert_string_equal(cfg->admin_listen, "[::1]:19187");
    assert_string_equal(cfg->admin_host, "::1");
    assert_int_equal(cfg->admin_port, 19187);
    assert_int_equal(cfg->log_level, LOG_LEVEL_DEBUG);
    config_free(cfg);
}

/* the remaining keys, and the lexical rules: indentation, comments, case, CRLF, BOM */
static void test_syntax_accepted(void **state)
{
    char pw[512], text[1024];
    struct config *cfg;

    (void)state;
    snprintf(pw, sizeof(pw), "%s", write_file("redis-password", "pw-1\n", 5));
    snprintf(text, sizeof(text),
             "\xEF\xBB\xBF[REDIS]\r\n"
             "  socket = /run/redis/redis.sock   ; unix socket\r\n"
             "\tusername = datamartd\r\n"
             "Password_File = %s\r\n"
             "host =\r\n"
             "[queue]\n"
             "consumer =   ; default: the host name\n"
             "[api]\n"
             "base_url = https://[::1]:8443/prefix/\n"
             "allow_insecure_http = TRUE\n"
             "[breaker]\nenabled = 1\n"
             "[admin]\nlisten =\n"
             "[log]\nlevel = warning\n",
             pw);
    cfg = expect_ok(text, 0);
    assert_string_equal(cfg->redis_socket, "/run/redis/redis.sock");
    assert_null(cfg->redis_host);
    assert_string_equal(cfg->redis_username, "datamartd");
    assert_string_equal(cfg->redis_password_file, pw);
    assert_string_equal(cfg->redis_password, "pw-1");
    assert_non_null(cfg->consumer);
    assert_string_equal(cfg->api_base_url, "https://[::1]:8443/prefix");
    assert_true(cfg->allow_insecure_http);
    assert_true(cfg->breaker_enabled);
    assert_null(cfg->admin_listen);
    assert_null(cfg->admin_host);
    assert_int_equal(cfg->log_level, LOG_LEVEL_WARN);
    config_free(cfg);
}

struct bool_case {
    const char *text;
    bool value;
};

static void test_booleans(void **state)
{
    static const struct bool_case cases[] = {
        {"yes", true},  {"no", false}, {"true", true}, {"false", false}, {"on", true},
        {"off", false}, {"1", true},   {"0", false},   {"Yes", true},    {"OFF", false},
    };
    char text[128];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config *cfg;

        snprintf(text, sizeof(text), "[breaker]\nenabled = %s\n", cases[i].text);
        cfg = expect_ok(text, 0);
        assert_int_equal(cfg->breaker_enabled, cases[i].value);
        config_free(cfg);
    }
}

/* plain http is fine to a loopback host; the trailing slash goes */
static void test_base_url_accepted(void **state)
{
    static const char *const cases[][2] = {
        {"http://127.0.0.1:8080/", "http://127.0.0.1:8080"},
        {"http://127.1.2.3", "http://127.1.2.3"},
        {"http://localhost:9/", "http://localhost:9"},
        {"http://LOCALHOST", "http://LOCALHOST"},
        {"http://[::1]:8080", "http://[::1]:8080"},
        {"https://api.example.com//", "https://api.example.com"},
        {"https://api.example.com:8443/base", "https://api.example.com:8443/base"},
    };
    char text[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config *cfg;

        snprintf(text, sizeof(text), "[api]\nbase_url = %s\n", cases[i][0]);
        cfg = expect_ok(text, 0);
        assert_string_equal(cfg->api_base_url, cases[i][1]);
        config_free(cfg);
    }
}

static void test_insecure_http_allowed(void **state)
{
    struct config *cfg;

    (void)state;
    cfg = expect_ok("[api]\nbase_url = http://10.0.0.1/\nallow_insecure_http = yes\n", 0);
    assert_string_equal(cfg->api_base_url, "http://10.0.0.1");
    config_free(cfg);
}

struct error_case {
    const char *text;
    const char *want; /* appended to the config's path */
};

/* one bad line each: the message names FILE:LINE and the key */
static void test_error_kinds(void **state)
{
    static const struct error_case cases[] = {
        {"[nope]\nx = 1\n", ":1: [nope]: unknown section"},
        {"[redis\n", ":1: syntax error: expected '[section]'"},
        {"[redis] extra\n", ":1: syntax error: expected '[section]'"},
        {"[api]\nbogus = 1\n", ":2: [api] bogus: unknown key"},
        {"[api]\nAbc123== = 1\n", ":2: [api]: unknown key"},
        {"port = 1\n", ":1: port: key outside any section"},
        {"[redis]\nthis line has no equals sign\n", ":2: syntax error: expected 'key = value'"},
        {"[redis]\n= 5\n", ":2: syntax error: expected 'key = value'"},
        {"[redis]\nport = 1\n\nport = 2\n",
         ":4: [redis] port: duplicate key (first set on line 2)"},
        {"[redis]\nport = 6379\n[redis]\nPORT = 6379\n",
         ":4: [redis] port: duplicate key (first set on line 2)"},
        {"[api]\nmax_inflight = 12x\n", ":2: [api] max_inflight: '12x' is not a whole number"},
        {"[api]\nmax_inflight =\n", ":2: [api] max_inflight: '' is not a whole number"},
        {"[api]\nmax_inflight = 1.5\n", ":2: [api] max_inflight: '1.5' is not a whole number"},
        {"[api]\nmax_inflight = +5\n", ":2: [api] max_inflight: '+5' is not a whole number"},
        {"[api]\nmax_inflight = 99999999999999999999\n",
         ":2: [api] max_inflight: '99999999999999999999' is too large"},
        {"[api]\nmax_inflight = 0\n", ":2: [api] max_inflight: 0 is out of range: must be 1..4096"},
        {"[api]\nmax_inflight = 4097\n",
         ":2: [api] max_inflight: 4097 is out of range: must be 1..4096"},
        {"[api]\nmax_payload_bytes = 1023\n",
         ":2: [api] max_payload_bytes: 1023 is out of range: must be 1024..67108864"},
        {"[redis]\nport = 65536\n", ":2: [redis] port: 65536 is out of range: must be 1..65535"},
        {"[redis]\ndb = -1\n", ":2: [redis] db: -1 is out of range: must be 0..255"},
        {"[queue]\nclaim_idle_ms = 999\n",
         ":2: [queue] claim_idle_ms: 999 is out of range: must be 1000..86400000"},
        {"[api]\nrequest_timeout_ms = 0\n",
         ":2: [api] request_timeout_ms: 0 is out of range: must be 1..3600000"},
        {"[rate_limit]\nrate = 1.5x\n", ":2: [rate_limit] rate: '1.5x' is not a number"},
        {"[rate_limit]\nrate = nan\n", ":2: [rate_limit] rate: 'nan' is not a number"},
        {"[rate_limit]\nrate = 1e999\n", ":2: [rate_limit] rate: '1e999' is not a number"},
        {"[rate_limit]\nrate = -0.5\n",
         ":2: [rate_limit] rate: -0.5 is out of range: must be 0..1e+06"},
        {"[rate_limit]\nburst = 0\n",
         ":2: [rate_limit] burst: 0 is out of range: must be 1..1000000"},
        {"[rate_limit]\nscope = global\n",
         ":2: [rate_limit] scope: 'global': must be local or cluster"},
        {"[breaker]\nfailure_ratio = 0\n",
         ":2: [breaker] failure_ratio: 0 is out of range: must be > 0 and <= 1"},
        {"[breaker]\nfailure_ratio = 1.01\n",
         ":2: [breaker] failure_ratio: 1.01 is out of range: must be > 0 and <= 1"},
        {"[breaker]\nenabled = maybe\n",
         ":2: [breaker] enabled: 'maybe' is not a boolean: use yes or no"},
        {"[log]\nlevel = loud\n", ":2: [log] level: 'loud': must be error, warn, info or debug"},
        {"[redis]\nprefix = bad prefix!\n",
         ":2: [redis] prefix: may contain only letters, digits and . _ : -"},
        {"[redis]\nprefix =\n", ":2: [redis] prefix: must not be empty"},
        {"[queue]\ngroup = g/1\n",
         ":2: [queue] group: may contain only letters, digits and . _ : -"},
        {"[queue]\nconsumer = host name\n",
         ":2: [queue] consumer: may contain only letters, digits and . _ : -"},
        {"[redis]\nprefix = "
         "a234567890123456789012345678901234567890123456789012345678901234x\n",
         ":2: [redis] prefix: longer than 64 characters"},
        {"[redis]\nsocket = redis.sock\n", ":2: [redis] socket: must be an absolute path"},
        {"[redis]\nhost =\n", ":2: [redis] host: must not be empty (or set [redis] socket)"},
        {"[redis]\nhost = redis.internal\n",
         ":2: [redis] host: must be an IP address or localhost (not a DNS name)"},
        {"[redis]\nusername = u\n", ":2: [redis] username: needs [redis] password_file"},
        {"[api]\nbase_url = http://example.com\n",
         ":2: [api] base_url: plain http:// to the non-loopback host 'example.com'"},
        {"[api]\nbase_url = http://127.0.0.1.example.com\n",
         ":2: [api] base_url: plain http:// to the non-loopback host"},
        {"[api]\nallow_insecure_http = no\nbase_url = http://10.1.2.3:80/\n",
         ":3: [api] base_url: plain http:// to the non-loopback host '10.1.2.3'"},
        {"[api]\nbase_url = ftp://example.com\n",
         ":2: [api] base_url: must start with https:// (or http:// for a loopback host)"},
        {"[api]\nbase_url = api.example.com\n", ":2: [api] base_url: must start with https://"},
        {"[api]\nbase_url = https://\n", ":2: [api] base_url: has no valid host[:port]"},
        {"[api]\nbase_url = https:///path\n", ":2: [api] base_url: has no valid host[:port]"},
        {"[api]\nbase_url = https://h:0\n", ":2: [api] base_url: has no valid host[:port]"},
        {"[api]\nbase_url = https://h:99999\n", ":2: [api] base_url: has no valid host[:port]"},
        {"[api]\nbase_url = https://u:p@h\n",
         ":2: [api] base_url: must not contain credentials: use token_file"},
        {"[api]\nbase_url = https://h/?q=1\n",
         ":2: [api] base_url: must not contain blanks, a query or a fragment"},
        {"[api]\nbase_url =\n", ":2: [api] base_url: must not be empty"},
        {"[admin]\nlisten = 9187\n",
         ":2: [admin] listen: must be HOST:PORT or [IPV6]:PORT, or empty to disable"},
        {"[admin]\nlisten = 127.0.0.1:\n", ":2: [admin] listen: must be HOST:PORT"},
        {"[admin]\nlisten = ::1:9187\n", ":2: [admin] listen: must be HOST:PORT"},
        {"[queue]\nbackoff_base_ms = 5000\nbackoff_max_ms = 1000\n",
         ": [queue] backoff_base_ms: 5000 must not exceed [queue] backoff_max_ms (1000)"},
        {"[breaker]\nprobe_interval_ms = 9000\nprobe_max_ms = 8000\n",
         ": [breaker] probe_interval_ms: 9000 must not exceed [breaker] probe_max_ms (8000)"},
        {"[api]\ntoken_file = token.txt\n",
         ":2: [api] token_file: must be an absolute path or credential:NAME"},
        {"[redis]\npassword_file = /nonexistent/dir/pw\n",
         ":2: [redis] password_file: /nonexistent/dir/pw: No such file or directory"},
        {"[api]\nbase_url = https://h\x01x\n", ":2: [api] base_url: contains control characters"},
    };
    char *errors;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        errors = expect_errors(cases[i].text, 0, 1, &cases[i].want);
        free(errors);
    }
}

static void test_line_too_long(void **state)
{
    char text[6000];
    const char *want[] = {":2: line too long (at most 197 characters)",
                          ":3: line too long (at most 197 characters)"};
    size_t n;

    (void)state;
    n = (size_t)snprintf(text, sizeof(text), "[redis]\nhost = ");
    memset(text + n, 'h', 200);
    n += 200;
    n += (size_t)snprintf(text + n, sizeof(text) - n, "\nprefix = ");
    memset(text + n, 'p', 5000);
    n += 5000;
    /* a long comment line is fine */
    n += (size_t)snprintf(text + n, sizeof(text) - n, "\n# ");
    memset(text + n, 'c', 300);
    n += 300;
    snprintf(text + n, sizeof(text) - n, "\nport = 1\n");
    free(expect_errors(text, 0, 2, want));
}

/* all problems of a file are reported, in line order, not only the first */
static void test_multiple_errors(void **state)
{
    const char *want[] = {
        ":2: [redis] port: 'x' is not a whole number",
        ":4: [api] nope: unknown key",
        ":5: [api] max_inflight: 0 is out of range",
        ":7: syntax error: expected 'key = value'",
        ": [queue] backoff_base_ms: 9 must not exceed [queue] backoff_max_ms (8)",
        (": [api] token_file: no API token: set token_file or the environment variable " TOKEN_ENV),
    };
    char *errors;

    (void)state;
    errors = expect_errors("[redis]\nport = x\n[api]\nnope = 1\nmax_inflight = 0\n[queue]\n"
                           "oops\nbackoff_base_ms = 9\nbackoff_max_ms = 8\n",
                           CONFIG_NEED_SECRETS, 6, want);
    assert_true(strstr(errors, ":2:") < strstr(errors, ":4:"));
    free(errors);
}

static void test_too_many_errors(void **state)
{
    char text[8192] = "[api]\n";
    char *errors = NULL;

    (void)state;
    for (int i = 0; i < 80; i++)
        strcat(text, "nope = 1\n");
    assert_null(load_text(text, 0, &errors));
    assert_non_null(errors);
    assert_int_equal(count_lines(errors), 51);
    assert_non_null(strstr(errors, "too many errors"));
    free(errors);
}

static void test_missing_file(void **state)
{
    char *errors = NULL;
    char path[600];

    (void)state;
    snprintf(path, sizeof(path), "%s/absent.conf", tmpdir);
    assert_null(config_load(path, 0, &errors));
    assert_non_null(errors);
    assert_non_null(strstr(errors, path));
    assert_non_null(strstr(errors, ": cannot open: No such file or directory"));
    free(errors);
    errors = NULL;
    assert_null(config_load(tmpdir, 0, &errors));
    assert_non_null(strstr(errors, ": cannot read: is a directory"));
    free(errors);
}

static void test_token_from_file(void **state)
{
    static const char *const contents[] = {SECRET, SECRET "\n", SECRET "\r\n"};
    char text[600];

    (void)state;
    setenv(TOKEN_ENV, "from-the-environment", 1); /* token_file wins */
    for (size_t i = 0; i < sizeof(contents) / sizeof(contents[0]); i++) {
        const char *path = write_file("token", contents[i], strlen(contents[i]));
        struct config *cfg;

        snprintf(text, sizeof(text), "[api]\ntoken_file = %s\n", path);
        cfg = expect_ok(text, CONFIG_NEED_SECRETS);
        assert_string_equal(cfg->api_token, SECRET);
        config_free(cfg);
    }
}

/* without CONFIG_NEED_SECRETS no token is read or needed */
static void test_token_not_needed(void **state)
{
    struct config *cfg;

    (void)state;
    setenv(TOKEN_ENV, SECRET, 1);
    cfg = expect_ok("[api]\ntoken_file = /nonexistent/token\n", 0);
    assert_null(cfg->api_token);
    config_free(cfg);
}

static void test_token_from_env(void **state)
{
    struct config *cfg;

    (void)state;
    setenv(TOKEN_ENV, SECRET "\n", 1);
    cfg = expect_ok("[api]\nmax_inflight = 2\n", CONFIG_NEED_SECRETS);
    assert_string_equal(cfg->api_token, SECRET);
    config_free(cfg);
}

struct bad_secret {
    const char *content;
    size_t len;
    const char *why;
};

/* each bad token is refused, the message names the file and never shows the content */
static void test_token_rejected(void **state)
{
    static char big[5000];
    static const struct bad_secret cases[] = {
        {"", 0, "is empty"},
        {"\n", 1, "is empty"},
        {"\r\n", 2, "is empty"},
        {SECRET "\n\n", sizeof(SECRET) + 1, "contains whitespace"},
        {"s3cr3t TOKEN", 12, "contains whitespace"},
        {"s3cr3t\tTOKEN", 12, "contains whitespace"},
        {"s3cr3t\x01TOKEN", 12, "contains whitespace, control or non-ASCII characters"},
        {"s3cr3t\0TOKEN", 12, "contains whitespace, control or non-ASCII characters"},
        {"s3cr3t\xc3\xa9TOKEN", 13, "contains whitespace, control or non-ASCII characters"},
        {big, 4097, "is longer than 4096 bytes"},
        {big, sizeof(big), "is longer than 4096 bytes"},
    };
    char text[600], want[600];

    (void)state;
    memset(big, 'A', sizeof(big));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *path = write_file("token", cases[i].content, cases[i].len);
        const char *wantp = want;
        char *errors;

        snprintf(text, sizeof(text), "[api]\ntoken_file = %s\n", path);
        snprintf(want, sizeof(want), ":2: [api] token_file: %s: %s", path, cases[i].why);
        errors = expect_errors(text, CONFIG_NEED_SECRETS, 1, &wantp);
        assert_null(strstr(errors, "s3cr3t"));
        assert_null(strstr(errors, "TOKEN"));
        assert_null(strstr(errors, "AAAA"));
        free(errors);
    }
    /* exactly 4096 bytes is fine */
    {
        const char *path = write_file("token", big, 4096);
        struct config *cfg;

        snprintf(text, sizeof(text), "[api]\ntoken_file = %s\n", path);
        cfg = expect_ok(text, CONFIG_NEED_SECRETS);
        assert_int_equal(strlen(cfg->api_token), 4096);
        config_free(cfg);
    }
}

static void test_token_env_rejected(void **state)
{
    const char *want[] = {": environment variable DATAMARTD_API_TOKEN: contains whitespace"};
    const char *want_empty[] = {": environment variable DATAMARTD_API_TOKEN: is empty"};
    const char *want_none[] = {": [api] token_file: no API token"};
    char *errors;

    (void)state;
    setenv(TOKEN_ENV, "s3cr3t TOKEN", 1);
    errors = expect_errors("[api]\n", CONFIG_NEED_SECRETS, 1, want);
    assert_null(strstr(errors, "s3cr3t"));
    free(errors);
    setenv(TOKEN_ENV, "", 1);
    free(expect_errors("[api]\n", CONFIG_NEED_SECRETS, 1, want_empty));
    unsetenv(TOKEN_ENV);
    free(expect_errors("[api]\n", CONFIG_NEED_SECRETS, 1, want_none));
}

static void test_token_not_a_file(void **state)
{
    char text[600], want[700];
    const char *wantp = want;

    (void)state;
    snprintf(text, sizeof(text), "[api]\ntoken_file = %s\n", tmpdir);
    snprintf(want, sizeof(want), ":2: [api] token_file: %s: not a regular file", tmpdir);
    free(expect_errors(text, CONFIG_NEED_SECRETS, 1, &wantp));
}

static void test_credentials(void **state)
{
    const char *want_no_dir[] = {
        ":2: [api] token_file: credential:databrain-token needs $CREDENTIALS_DIRECTORY"};
    const char *want_name[] = {":2: [api] token_file: credential:NAME needs a plain file name"};
    struct config *cfg;
    char want[700];
    const char *wantp = want;

    (void)state;
    write_file("databrain-token", SECRET "\n", sizeof(SECRET));
    write_file("redis-password", "pw-2\r\n", 6);
    free(expect_errors("[api]\ntoken_file = credential:databrain-token\n", CONFIG_NEED_SECRETS, 1,
                       want_no_dir));
    setenv("CREDENTIALS_DIRECTORY", tmpdir, 1);
    cfg = expect_ok("[api]\ntoken_file = credential:databrain-token\n"
                    "[redis]\npassword_file = credential:redis-password\nusername = dm\n",
                    CONFIG_NEED_SECRETS);
    assert_string_equal(cfg->api_token, SECRET);
    assert_string_equal(cfg->redis_password, "pw-2");
    config_free(cfg);
    free(expect_errors("[api]\ntoken_file = credential:../databrain-token\n", CONFIG_NEED_SECRETS,
                       1, want_name));
    free(expect_errors("[api]\ntoken_file = credential:\n", CONFIG_NEED_SECRETS, 1, want_name));
    free(expect_errors("[api]\ntoken_file = credential:..\n", CONFIG_NEED_SECRETS, 1, want_name));
    snprintf(want, sizeof(want), ":2: [api] token_file: %s/absent: No such file", tmpdir);
    free(expect_errors("[api]\ntoken_file = credential:absent\n", CONFIG_NEED_SECRETS, 1, &wantp));
}

/* the token never shows up in errors, even when the rest of the file is wrong */
static void test_secrets_absent_from_errors(void **state)
{
    const char *path = write_file("token", SECRET "\n", sizeof(SECRET));
    char text[1024];
    char *errors = NULL;

    (void)state;
    setenv(TOKEN_ENV, SECRET, 1);
    /* a pasted token line, a pasted key = token, a token with '=' padding, and bad keys */
    snprintf(text, sizeof(text),
             "[api]\ntoken_file = %s\n" SECRET "\ntoken = " SECRET "\n" SECRET "== = 1\n"
             "max_inflight = many\n[redis]\npassword_file = " SECRET "\n",
             path);
    assert_null(load_text(text, CONFIG_NEED_SECRETS, &errors));
    assert_non_null(errors);
    assert_int_equal(count_lines(errors), 5);
    assert_null(strstr(errors, SECRET));
    assert_null(strstr(errors, "s3cr3t"));
    free(errors);
}

static void test_summary_has_no_secret(void **state)
{
    const char *pw = write_file("redis-password", "pw-secret-3\n", 12);
    char text[600], summary[1024];
    struct config *cfg;

    (void)state;
    setenv(TOKEN_ENV, SECRET, 1);
    snprintf(text, sizeof(text), "[redis]\npassword_file = %s\n", pw);
    cfg = expect_ok(text, CONFIG_NEED_SECRETS);
    config_summary(cfg, summary, sizeof(summary));
    assert_non_null(strstr(summary, "redis=127.0.0.1:6379"));
    assert_non_null(strstr(summary, "token=environment"));
    assert_null(strstr(summary, SECRET));
    assert_null(strstr(summary, "pw-secret"));
    config_free(cfg);
}

static void test_fixed_changes(void **state)
{
    struct config *a, *b;
    char names[256];

    (void)state;
    a = expect_ok("[redis]\nprefix = a\n[api]\nmax_inflight = 2\n", 0);
    b = expect_ok("[redis]\nprefix = b\nport = 7001\n[api]\nmax_inflight = 3\n"
                  "[queue]\ngroup = other\n"
                  "[log]\nlevel = debug\n",
                  0);
    assert_int_equal(config_fixed_changes(a, b, names, sizeof(names)), 2);
    assert_string_equal(names, "[redis] prefix, [queue] group");
    assert_int_equal(config_fixed_changes(a, a, names, sizeof(names)), 0);
    assert_string_equal(names, "");
    assert_int_equal(config_fixed_changes(a, b, names, 8), 2);
    assert_string_equal(names, "[redis]");
    config_free(a);
    config_free(b);
}

static void test_free_null(void **state)
{
    (void)state;
    config_free(NULL);
}

#define T(f) cmocka_unit_test_setup(f, clean_env)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_empty_file),
        T(test_every_key),
        T(test_syntax_accepted),
        T(test_booleans),
        T(test_base_url_accepted),
        T(test_insecure_http_allowed),
        T(test_error_kinds),
        T(test_line_too_long),
        T(test_multiple_errors),
        T(test_too_many_errors),
        T(test_missing_file),
        T(test_token_from_file),
        T(test_token_not_needed),
        T(test_token_from_env),
        T(test_token_rejected),
        T(test_token_env_rejected),
        T(test_token_not_a_file),
        T(test_credentials),
        T(test_secrets_absent_from_errors),
        T(test_summary_has_no_secret),
        T(test_fixed_changes),
        T(test_free_null),
    };

    return cmocka_run_group_tests_name("config", tests, group_setup, group_teardown);
}
