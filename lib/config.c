#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "strbuf.h"

#define CONFIG_FILE_MAX (1024 * 1024) /* a real config is a few KiB; more is a wrong file */
#define CONFIG_LINE_MAX 4096          /* longer lines are reported, not parsed */
#define CONFIG_ERRORS_MAX 50          /* enough to fix a file; bounds the message */
#define SECRET_MAX 4096
#define SECRET_PATH_MAX 1024
#define HOST_MAX 253
#define SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
#define CREDENTIAL_PREFIX "credential:"
#define TOKEN_ENV "DATAMARTD_API_TOKEN"

enum key_type {
    KEY_STR,  /* free text without control characters; empty means unset (NULL) */
    KEY_NAME, /* [A-Za-z0-9._:-]{1,max} */
    KEY_INT,
    KEY_LONG,
    KEY_SIZE,
    KEY_DBL,
    KEY_BOOL,
    KEY_SCOPE,
    KEY_LEVEL,
};

#define KEY_RESTART (1u << 0)       /* a SIGHUP cannot apply a change: it needs a restart */
#define KEY_MIN_EXCLUSIVE (1u << 1) /* the value must be greater than min */
#define KEY_EMPTY_OK (1u << 2)      /* a KEY_NAME that may be empty (then derived later) */

struct config_key {
    const char *section;
    const char *name;
    enum key_type type;
    size_t offset;
    const char *default_value;
    double min;
    double max; /* strings: the longest value */
    unsigned flags;
};

#define KEY(sec, key, type, field, def, min, max, flags)                                           \
    {                                                                                              \
        sec, key, type, offsetof(struct config, field), def, min, max, flags                       \
    }

#define DEFAULT_BASE_URL "https://api.usedatabrain.com"
#define MS_HOUR 3600000.0
#define MS_DAY 86400000.0
#define S_YEAR 31536000.0
#define RESTART KEY_RESTART
#define MIN_EXCL KEY_MIN_EXCLUSIVE

/* one line per key, grouped as in conf/datamartd.conf */
/* clang-format off */
static const struct config_key config_keys[] = {
    KEY("redis", "host", KEY_STR, redis_host, "127.0.0.1", 0, HOST_MAX, 0),
    KEY("redis", "port", KEY_INT, redis_port, "6379", 1, 65535, 0),
    KEY("redis", "socket", KEY_STR, redis_socket, "", 0, SOCKET_PATH_MAX, 0),
    KEY("redis", "username", KEY_STR, redis_username, "", 0, 128, 0),
    KEY("redis", "password_file", KEY_STR, redis_password_file, "", 0, SECRET_PATH_MAX, 0),
    KEY("redis", "db", KEY_INT, redis_db, "0", 0, 255, 0),
    KEY("redis", "prefix", KEY_NAME, prefix, "datamart", 0, 64, RESTART),

    KEY("api", "base_url", KEY_STR, api_base_url, DEFAULT_BASE_URL, 0, 2048, 0),
    KEY("api", "token_file", KEY_STR, api_token_file, "", 0, SECRET_PATH_MAX, 0),
    KEY("api", "connect_timeout_ms", KEY_LONG, connect_timeout_ms, "5000", 1, 300000, 0),
    KEY("api", "request_timeout_ms", KEY_LONG, request_timeout_ms, "30000", 1, MS_HOUR, 0),
    KEY("api", "max_inflight", KEY_INT, max_inflight, "64", 1, 4096, 0),
    KEY("api", "max_payload_bytes", KEY_SIZE, max_payload_bytes, "1048576", 1024, 64 << 20, 0),
    KEY("api", "allow_insecure_http", KEY_BOOL, allow_insecure_http, "no", 0, 0, 0),

    KEY("queue", "group", KEY_NAME, group, "datamartd", 0, 128, RESTART),
    KEY("queue", "consumer", KEY_NAME, consumer, "", 0, 128, RESTART | KEY_EMPTY_OK),
    KEY("queue", "claim_idle_ms", KEY_LONG, claim_idle_ms, "15000", 1000, MS_DAY, 0),
    KEY("queue", "max_attempts", KEY_INT, max_attempts, "10", 1, 1000, 0),
    KEY("queue", "max_age_s", KEY_LONG, max_age_s, "86400", 1, S_YEAR, 0),
    KEY("queue", "backoff_base_ms", KEY_LONG, backoff_base_ms, "1000", 1, MS_HOUR, 0),
    KEY("queue", "backoff_max_ms", KEY_LONG, backoff_max_ms, "300000", 1, MS_DAY, 0),
    KEY("queue", "result_ttl_s", KEY_LONG, result_ttl_s, "604800", 1, S_YEAR, 0),
    KEY("queue", "results_maxlen", KEY_LONG, results_maxlen, "100000", 1, 100000000, 0),
    KEY("queue", "reply_ttl_s", KEY_LONG, reply_ttl_s, "3600", 1, S_YEAR, 0),
    KEY("queue", "shutdown_grace_ms", KEY_LONG, shutdown_grace_ms, "10000", 0, MS_HOUR, 0),

    KEY("rate_limit", "rate", KEY_DBL, rate, "4", 0, 1000000, 0),
    KEY("rate_limit", "burst", KEY_INT, burst, "20", 1, 1000000, 0),
    KEY("rate_limit", "scope", KEY_SCOPE, rate_limit_scope, "local", 0, 0, RESTART),

    KEY("breaker", "enabled", KEY_BOOL, breaker_enabled, "yes", 0, 0, 0),
    KEY("breaker", "consecutive", KEY_INT, breaker_consecutive, "10", 1, 100000, 0),
    KEY("breaker", "failure_ratio", KEY_DBL, breaker_failure_ratio, "0.5", 0, 1, MIN_EXCL),
    KEY("breaker", "window", KEY_INT, breaker_window, "20", 1, 100000, 0),
    KEY("breaker", "probe_interval_ms", KEY_LONG, breaker_probe_interval_ms, "5000", 1, MS_HOUR, 0),
    KEY("breaker", "probe_max_ms", KEY_LONG, breaker_probe_max_ms, "60000", 1, MS_DAY, 0),

    KEY("admin", "listen", KEY_STR, admin_listen, "127.0.0.1:9187", 0, HOST_MAX + 8, 0),

    KEY("log", "level", KEY_LEVEL, log_level, "info", 0, 0, 0),
};
/* clang-format on */

#define KEY_COUNT DM_ARRAY_LEN(config_keys)

enum section_state {
    SECTION_NONE, /* before the first header */
    SECTION_KNOWN,
    SECTION_UNKNOWN, /* reported at its header; its keys are skipped */
};

struct config_parse {
    struct config *cfg;
    const char *file; /* the name messages start with */
    FILE *fp;
    int line;
    size_t bytes;
    enum section_state section;
    int key_line[KEY_COUNT]; /* where each key was set, 0 = default */
    struct strbuf errors;
    unsigned error_count;
};

static void wipe(void *buf, size_t len)
{
    volatile unsigned char *p = buf; /* volatile: the compiler may not drop the stores */

    while (len-- > 0)
        *p++ = 0;
}

DM_PRINTF(5, 0)
static void config_verror(struct config_parse *p, int line, const char *section, const char *name,
                          const char *fmt, va_list ap)
{
    char msg[512];

    if (p->error_count++ >= CONFIG_ERRORS_MAX) {
        if (p->error_count == CONFIG_ERRORS_MAX + 1)
            strbuf_printf(&p->errors, "%s: too many errors, the rest are not listed\n", p->file);
        return;
    }
    vsnprintf(msg, sizeof(msg), fmt, ap);
    strbuf_puts(&p->errors, p->file);
    if (line > 0)
        strbuf_printf(&p->errors, ":%d", line);
    if (section != NULL && name != NULL)
        strbuf_printf(&p->errors, ": [%s] %s", section, name);
    else if (section != NULL)
        strbuf_printf(&p->errors, ": [%s]", section);
    else if (name != NULL)
        strbuf_printf(&p->errors, ": %s", name);
    strbuf_printf(&p->errors, ": %s\n", msg);
}

DM_PRINTF(5, 6)
static void config_error(struct config_parse *p, int line, const char *section, const char *name,
                         const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    config_verror(p, line, section, name, fmt, ap);
    va_end(ap);
}

/* an error about a known key, at the line that set it */
DM_PRINTF(3, 4)
static void key_error(struct config_parse *p, const struct config_key *key, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    config_verror(p, p->key_line[key - config_keys], key->section, key->name, fmt, ap);
    va_end(ap);
}

static const struct config_key *key_by_name(const char *section, const char *name)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (strcasecmp(config_keys[i].section, section) == 0 &&
            strcasecmp(config_keys[i].name, name) == 0)
            return &config_keys[i];
    }
    return NULL;
}

static const struct config_key *key_by_field(size_t offset)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (config_keys[i].offset == offset)
            return &config_keys[i];
    }
    return NULL;
}

#define KEY_OF(field) key_by_field(offsetof(struct config, field))

static bool section_exists(const char *section)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (strcasecmp(config_keys[i].section, section) == 0)
            return true;
    }
    return false;
}

/* Unknown names are echoed only when they look like a key, so a pasted secret is not. */
static const char *shown_name(const char *name)
{
    size_t len = strspn(name, "abcdefghijklmnopqrstuvwxyz_");

    return len > 0 && len <= 40 && name[len] == '\0' ? name : NULL;
}

/* a value for a message: printable, bounded, quoted (size >= 8) */
static const char *shown_value(const char *value, char *buf, size_t size)
{
    size_t n = 0, i;

    buf[n++] = '\'';
    for (i = 0; value[i] != '\0' && n + 5 < size; i++)
        buf[n++] = (value[i] >= 0x20 && value[i] < 0x7f) ? value[i] : '?';
    if (value[i] != '\0') {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n++] = '\'';
    buf[n] = '\0';
    return buf;
}

static bool name_valid(const char *s, size_t max)
{
    size_t len = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-");

    return len > 0 && len <= max && s[len] == '\0';
}

static bool has_control_chars(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    }
    return false;
}

/* a decimal integer with nothing after it; *overflow tells a too-large one apart */
static bool integer_parse(const char *s, long long *out, bool *overflow)
{
    char *end;

    *overflow = false;
    if (!(s[0] >= '0' && s[0] <= '9') && !(s[0] == '-' && s[1] >= '0' && s[1] <= '9'))
        return false;
    errno = 0;
    *out = strtoll(s, &end, 10);
    *overflow = errno == ERANGE;
    return errno == 0 && *end == '\0';
}

static bool double_parse(const char *s, double *out)
{
    char *end;

    /* strtod alone would take "inf", "nan" and hex floats */
    if (s[0] == '\0' || s[strspn(s, "0123456789.eE+-")] != '\0')
        return false;
    errno = 0;
    *out = strtod(s, &end);
    return errno == 0 && *end == '\0' && isfinite(*out);
}

static bool bool_parse(const char *s, bool *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < DM_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *out = strcasecmp(s, yes[i]) == 0;
            return true;
        }
    }
    return false;
}

static bool scope_parse(const char *s, enum rate_limit_scope *out)
{
    if (strcmp(s, "local") == 0)
        *out = RATE_LIMIT_SCOPE_LOCAL;
    else if (strcmp(s, "cluster") == 0)
        *out = RATE_LIMIT_SCOPE_CLUSTER;
    else
        return false;
    return true;
}

static bool range_check(const struct config_key *key, double v, char *why, size_t why_size)
{
    bool integral = key->type != KEY_DBL;
    bool low = (key->flags & KEY_MIN_EXCLUSIVE) ? v <= key->min : v < key->min;

    if (!low && v <= key->max)
        return true;
    if (key->flags & KEY_MIN_EXCLUSIVE)
        snprintf(why, why_size, "%g is out of range: must be > %g and <= %g", v, key->min,
                 key->max);
    else if (integral)
        snprintf(why, why_size, "%.0f is out of range: must be %.0f..%.0f", v, key->min, key->max);
    else
        snprintf(why, why_size, "%g is out of range: must be %g..%g", v, key->min, key->max);
    return false;
}

static bool string_set(char **field, const struct config_key *key, const char *value, char *why,
                       size_t why_size)
{
    char *copy = NULL;

    if (strlen(value) > (size_t)key->max) {
        snprintf(why, why_size, "longer than %.0f characters", key->max);
        return false;
    }
    if (key->type == KEY_NAME) {
        if (value[0] == '\0' && !(key->flags & KEY_EMPTY_OK)) {
            snprintf(why, why_size, "must not be empty");
            return false;
        }
        if (value[0] != '\0' && !name_valid(value, (size_t)key->max)) {
            snprintf(why, why_size, "may contain only letters, digits and . _ : -");
            return false;
        }
    } else if (has_control_chars(value)) {
        snprintf(why, why_size, "contains control characters");
        return false;
    }
    if (value[0] != '\0' && (copy = strdup(value)) == NULL) {
        snprintf(why, why_size, "out of memory");
        return false;
    }
    free(*field);
    *field = copy;
    return true;
}

/* Parse value into key's field of cfg; false with the reason in why. */
static bool key_set(struct config *cfg, const struct config_key *key, const char *value, char *why,
                    size_t why_size)
{
    void *field = (char *)cfg + key->offset;
    char shown[48];
    bool overflow;
    long long n;
    double d;

    switch (key->type) {
    case KEY_STR:
    case KEY_NAME:
        return string_set(field, key, value, why, why_size);
    case KEY_INT:
    case KEY_LONG:
    case KEY_SIZE:
        if (!integer_parse(value, &n, &overflow)) {
            snprintf(why, why_size, "%s is %s", shown_value(value, shown, sizeof(shown)),
                     overflow ? "too large" : "not a whole number");
            return false;
        }
        if (!range_check(key, (double)n, why, why_size))
            return false;
        if (key->type == KEY_INT)
            *(int *)field = (int)n;
        else if (key->type == KEY_LONG)
            *(long *)field = (long)n;
        else
            *(size_t *)field = (size_t)n;
        return true;
    case KEY_DBL:
        if (!double_parse(value, &d)) {
            snprintf(why, why_size, "%s is not a number", shown_value(value, shown, sizeof(shown)));
            return false;
        }
        if (!range_check(key, d, why, why_size))
            return false;
        *(double *)field = d;
        return true;
    case KEY_BOOL:
        if (!bool_parse(value, field)) {
            snprintf(why, why_size, "%s is not a boolean: use yes or no",
                     shown_value(value, shown, sizeof(shown)));
            return false;
        }
        return true;
    case KEY_SCOPE:
        if (!scope_parse(value, field)) {
            snprintf(why, why_size, "%s: must be local or cluster",
                     shown_value(value, shown, sizeof(shown)));
            return false;
        }
        return true;
    case KEY_LEVEL:
        if (!log_level_parse(value, field)) {
            snprintf(why, why_size, "%s: must be error, warn, info or debug",
                     shown_value(value, shown, sizeof(shown)));
            return false;
        }
        return true;
    }
    snprintf(why, why_size, "unhandled key type");
    return false;
}

/* ini_handler: one key = value of a known section */
static int config_on_key(void *user, const char *section, const char *name, const char *value)
{
    struct config_parse *p = user;
    const struct config_key *key;
    char why[256];
    size_t i;

    if (p->section == SECTION_UNKNOWN)
        return 1;
    if (p->section == SECTION_NONE) {
        config_error(p, p->line, NULL, shown_name(name), "key outside any section");
        return 1;
    }
    key = key_by_name(section, name);
    if (key == NULL) {
        config_error(p, p->line, section, shown_name(name), "unknown key");
        return 1;
    }
    i = (size_t)(key - config_keys);
    if (p->key_line[i] != 0) {
        config_error(p, p->line, key->section, key->name, "duplicate key (first set on line %d)",
                     p->key_line[i]);
        return 1;
    }
    p->key_line[i] = p->line;
    if (!key_set(p->cfg, key, value, why, sizeof(why)))
        key_error(p, key, "%s", why);
    return 1;
}

static char *trim(char *s)
{
    size_t len;

    while (*s == ' ' || *s == '\t')
        s++;
    len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
        s[--len] = '\0';
    return s;
}

/* a section header line: report it when unknown or malformed, rewrite it as "[name]" */
static void config_on_section(struct config_parse *p, char *s)
{
    size_t len = strlen(s);
    char name[CONFIG_LINE_MAX + 1];

    if (len < 2 || s[len - 1] != ']' || memchr(s + 1, ']', len - 2) != NULL) {
        config_error(p, p->line, NULL, NULL, "syntax error: expected '[section]'");
        p->section = SECTION_UNKNOWN;
        *s = '\0';
        return;
    }
    s[len - 1] = '\0';
    snprintf(name, sizeof(name), "%s", trim(s + 1));
    snprintf(s, len + 1, "[%s]", name);
    if (section_exists(name)) {
        p->section = SECTION_KNOWN;
        return;
    }
    if (shown_name(name) != NULL)
        config_error(p, p->line, name, NULL, "unknown section");
    else
        config_error(p, p->line, NULL, NULL, "unknown section");
    p->section = SECTION_UNKNOWN;
}

/*
 * ini_reader: hands inih one line at a time, so the handler knows its number, and screens it
 * first: comments, malformed and overlong lines never reach inih, and leading blanks are cut
 * so an indented key is not taken as a multi-line continuation.
 */
static char *config_read_line(char *str, int num, void *stream)
{
    struct config_parse *p = stream;
    char raw[CONFIG_LINE_MAX + 1];
    size_t len = 0;
    bool overlong = false, nul = false, any = false;
    char *s, *c;
    int ch;

    while ((ch = getc(p->fp)) != EOF) {
        any = true;
        if (++p->bytes > CONFIG_FILE_MAX) {
            config_error(p, 0, NULL, NULL, "larger than %d bytes", CONFIG_FILE_MAX);
            return NULL;
        }
        if (ch == '\n')
            break;
        if (ch == '\0')
            nul = true;
        else if (len < CONFIG_LINE_MAX)
            raw[len++] = (char)ch;
        else
            overlong = true;
    }
    if (ferror(p->fp)) {
        config_error(p, p->line, NULL, NULL, "read error: %s", strerror(errno));
        return NULL;
    }
    if (!any)
        return NULL;
    p->line++;
    raw[len] = '\0';
    s = raw;
    if (p->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    s = trim(s);
    if (*s == '\0' || *s == ';' || *s == '#') {
        *s = '\0';
    } else if (nul) {
        config_error(p, p->line, NULL, NULL, "contains a NUL byte");
        *s = '\0';
    } else {
        /* an inline comment is a ';' after a blank, as inih has it */
        for (c = s + 1; *c != '\0'; c++) {
            if (*c == ';' && (c[-1] == ' ' || c[-1] == '\t')) {
                *c = '\0';
                break;
            }
        }
        s = trim(s);
        if (overlong || (int)strlen(s) > num - 3) {
            config_error(p, p->line, NULL, NULL, "line too long (at most %d characters)", num - 3);
            *s = '\0';
        } else if (*s == '[') {
            config_on_section(p, s);
        } else if (strcspn(s, "=:") == 0 || s[strcspn(s, "=:")] == '\0') {
            config_error(p, p->line, NULL, NULL, "syntax error: expected 'key = value'");
            *s = '\0';
        }
    }
    snprintf(str, (size_t)num, "%s", s);
    wipe(raw, sizeof(raw));
    return str;
}

static bool config_set_defaults(struct config_parse *p)
{
    char why[256];

    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (!key_set(p->cfg, &config_keys[i], config_keys[i].default_value, why, sizeof(why))) {
            key_error(p, &config_keys[i], "default: %s", why);
            return false;
        }
    }
    return true;
}

/* false when the file cannot be read at all: its other checks would only add noise */
static bool config_parse_file(struct config_parse *p, const char *path)
{
    const char *why = NULL;
    struct stat st;
    int fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        config_error(p, 0, NULL, NULL, "cannot open: %s", strerror(errno));
        return false;
    }
    if (fstat(fd, &st) != 0)
        why = strerror(errno);
    else if (S_ISDIR(st.st_mode))
        why = "is a directory";
    else if ((p->fp = fdopen(fd, "r")) == NULL)
        why = strerror(errno);
    if (why != NULL) {
        config_error(p, 0, NULL, NULL, "cannot read: %s", why);
        close(fd);
        return false;
    }
    rc = ini_parse_stream(config_read_line, p, config_on_key, p);
    if (rc < 0)
        config_error(p, 0, NULL, NULL, "out of memory");
    else if (rc > 0 && p->error_count == 0)
        config_error(p, rc, NULL, NULL, "syntax error");
    fclose(p->fp);
    p->fp = NULL;
    return true;
}

static bool host_is_loopback(const char *host)
{
    struct in6_addr a6;
    struct in_addr a4;

    if (strcasecmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return false;
}

static bool port_parse(const char *s, int *port)
{
    bool overflow;
    long long n;

    if (s[strspn(s, "0123456789")] != '\0' || !integer_parse(s, &n, &overflow) || n < 1 ||
        n > 65535)
        return false;
    *port = (int)n;
    return true;
}

/*
 * Split "HOST[:PORT]" or "[V6][:PORT]" into host (brackets removed, in buf) and port
 * (0 when absent); false when malformed.
 */
static bool authority_split(const char *s, size_t len, char *buf, size_t size, int *port)
{
    const char *host = s, *colon;
    char portbuf[8];
    size_t hlen;

    *port = 0;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);

        if (close == NULL)
            return false;
        host = s + 1;
        hlen = (size_t)(close - host);
        colon = close + 1 < s + len ? close + 1 : NULL;
        if (colon != NULL && *colon != ':')
            return false;
    } else {
        colon = memchr(s, ':', len);
        hlen = colon != NULL ? (size_t)(colon - s) : len;
        if (colon != NULL && memchr(colon + 1, ':', len - hlen - 1) != NULL)
            return false;
    }
    if (hlen == 0 || hlen >= size)
        return false;
    memcpy(buf, host, hlen);
    buf[hlen] = '\0';
    if (colon != NULL) {
        size_t plen = len - (size_t)(colon + 1 - s);

        if (plen == 0 || plen >= sizeof(portbuf))
            return false;
        memcpy(portbuf, colon + 1, plen);
        portbuf[plen] = '\0';
        if (!port_parse(portbuf, port))
            return false;
    }
    return strspn(buf, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-:%") ==
           hlen;
}

static void check_base_url(struct config_parse *p)
{
    const struct config_key *key = KEY_OF(api_base_url);
    char *url = p->cfg->api_base_url;
    char host[HOST_MAX + 1];
    size_t scheme_len, auth_len, len;
    bool plain;
    int port;

    if (url == NULL) {
        key_error(p, key, "must not be empty");
        return;
    }
    if (strncasecmp(url, "https://", 8) == 0) {
        scheme_len = 8;
        plain = false;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        scheme_len = 7;
        plain = true;
    } else {
        key_error(p, key, "must start with https:// (or http:// for a loopback host)");
        return;
    }
    if (url[strcspn(url, " ?#")] != '\0') {
        key_error(p, key, "must not contain blanks, a query or a fragment");
        return;
    }
    auth_len = strcspn(url + scheme_len, "/");
    if (memchr(url + scheme_len, '@', auth_len) != NULL) {
        key_error(p, key, "must not contain credentials: use token_file");
        return;
    }
    if (!authority_split(url + scheme_len, auth_len, host, sizeof(host), &port)) {
        key_error(p, key, "has no valid host[:port]");
        return;
    }
    if (plain && !p->cfg->allow_insecure_http && !host_is_loopback(host)) {
        key_error(p, key,
                  "plain http:// to the non-loopback host '%s' sends the token in clear; use "
                  "https:// (or set [api] allow_insecure_http = yes, never in production)",
                  host);
        return;
    }
    len = strlen(url);
    while (len > scheme_len + auth_len && url[len - 1] == '/')
        url[--len] = '\0';
}

static void check_admin_listen(struct config_parse *p)
{
    const struct config_key *key = KEY_OF(admin_listen);
    const char *listen = p->cfg->admin_listen;
    char host[HOST_MAX + 1];
    int port;

    if (listen == NULL)
        return;
    if (!authority_split(listen, strlen(listen), host, sizeof(host), &port) || port == 0) {
        key_error(p, key, "must be HOST:PORT or [IPV6]:PORT, or empty to disable");
        return;
    }
    p->cfg->admin_host = strdup(host);
    if (p->cfg->admin_host == NULL)
        key_error(p, key, "out of memory");
    p->cfg->admin_port = port;
}

/* two keys where the first must not exceed the second */
static void check_order(struct config_parse *p, const struct config_key *lo, long lo_value,
                        const struct config_key *hi, long hi_value)
{
    if (lo_value > hi_value)
        config_error(p, 0, lo->section, lo->name, "%ld must not exceed [%s] %s (%ld)", lo_value,
                     hi->section, hi->name, hi_value);
}

static void check_consumer(struct config_parse *p)
{
    const struct config_key *key = KEY_OF(consumer);
    char host[256];

    if (p->cfg->consumer != NULL)
        return;
    if (gethostname(host, sizeof(host)) != 0) {
        key_error(p, key, "not set and the host name is unknown: %s", strerror(errno));
        return;
    }
    host[sizeof(host) - 1] = '\0';
    if (!name_valid(host, (size_t)key->max)) {
        key_error(p, key, "not set and the host name is not a valid consumer name: set it");
        return;
    }
    p->cfg->consumer = strdup(host);
    if (p->cfg->consumer == NULL)
        key_error(p, key, "out of memory");
}

/* Checks a secret's bytes; false with the reason. Strips one trailing newline. */
static bool secret_accept(const char *buf, size_t *len, const char **why)
{
    if (*len > 0 && buf[*len - 1] == '\n') {
        (*len)--;
        if (*len > 0 && buf[*len - 1] == '\r')
            (*len)--;
    }
    if (*len == 0) {
        *why = "is empty";
        return false;
    }
    if (*len > SECRET_MAX) {
        *why = "is longer than 4096 bytes";
        return false;
    }
    for (size_t i = 0; i < *len; i++) {
        if ((unsigned char)buf[i] <= 0x20 || (unsigned char)buf[i] >= 0x7f) {
            *why = "contains whitespace, control or non-ASCII characters";
            return false;
        }
    }
    return true;
}

/* A secret's source must be an absolute path or "credential:NAME"; false after reporting. */
static bool secret_source_check(struct config_parse *p, const struct config_key *key,
                                const char *source)
{
    const char *name = source + strlen(CREDENTIAL_PREFIX);

    if (strncmp(source, CREDENTIAL_PREFIX, strlen(CREDENTIAL_PREFIX)) != 0) {
        if (source[0] == '/')
            return true;
        key_error(p, key, "must be an absolute path or credential:NAME");
        return false;
    }
    if (name[0] == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0 || strlen(name) > 255) {
        key_error(p, key, "credential:NAME needs a plain file name");
        return false;
    }
    return true;
}

/* The file a checked source names; NULL after reporting why. */
static char *secret_path(struct config_parse *p, const struct config_key *key, const char *source)
{
    const char *name = source + strlen(CREDENTIAL_PREFIX), *dir;
    char *path;
    size_t size;

    if (strncmp(source, CREDENTIAL_PREFIX, strlen(CREDENTIAL_PREFIX)) != 0) {
        path = strdup(source);
        if (path == NULL)
            key_error(p, key, "out of memory");
        return path;
    }
    dir = getenv("CREDENTIALS_DIRECTORY");
    if (dir == NULL || dir[0] != '/') {
        key_error(p, key, "%s needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=)", source);
        return NULL;
    }
    size = strlen(dir) + strlen(name) + 2;
    path = malloc(size);
    if (path == NULL) {
        key_error(p, key, "out of memory");
        return NULL;
    }
    snprintf(path, size, "%s/%s", dir, name);
    return path;
}

/* Reads a secret file (bounded, never echoed); NULL after reporting why. */
static char *secret_read(struct config_parse *p, const struct config_key *key, const char *source)
{
    char buf[SECRET_MAX + 3]; /* room for "\r\n" and one byte to notice a longer file */
    const char *why = NULL;
    char *path, *secret = NULL;
    size_t len = 0;
    struct stat st;
    ssize_t n;
    int fd;

    if (!secret_source_check(p, key, source))
        return NULL;
    path = secret_path(p, key, source);
    if (path == NULL)
        return NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 || fstat(fd, &st) != 0) {
        key_error(p, key, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        key_error(p, key, "%s: not a regular file", path);
        goto out;
    }
    while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            key_error(p, key, "%s: %s", path, strerror(errno));
            goto out;
        }
        len += (size_t)n;
    }
    if (len == sizeof(buf))
        why = "is longer than 4096 bytes";
    else
        buf[len] = '\0';
    if (why != NULL || !secret_accept(buf, &len, &why)) {
        key_error(p, key, "%s: %s", path, why);
        goto out;
    }
    secret = strndup(buf, len);
    if (secret == NULL)
        key_error(p, key, "out of memory");
out:
    if (fd >= 0)
        close(fd);
    wipe(buf, sizeof(buf));
    free(path);
    return secret;
}

static void check_token(struct config_parse *p)
{
    const struct config_key *key = KEY_OF(api_token_file);
    const char *env, *why;
    char *copy;
    size_t len;

    if (p->cfg->api_token_file != NULL) {
        p->cfg->api_token = secret_read(p, key, p->cfg->api_token_file);
        return;
    }
    env = getenv(TOKEN_ENV);
    if (env == NULL) {
        key_error(p, key, "no API token: set token_file or the environment variable " TOKEN_ENV);
        return;
    }
    len = strlen(env);
    if (!secret_accept(env, &len, &why)) {
        config_error(p, 0, NULL, "environment variable " TOKEN_ENV, "%s", why);
        return;
    }
    copy = strndup(env, len);
    if (copy == NULL)
        config_error(p, 0, NULL, NULL, "out of memory");
    p->cfg->api_token = copy;
}

static bool host_is_literal(const char *host)
{
    unsigned char addr[sizeof(struct in6_addr)];

    return strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, addr) == 1 ||
           inet_pton(AF_INET6, host, addr) == 1;
}

static void config_check(struct config_parse *p, unsigned flags)
{
    struct config *cfg = p->cfg;

    if (cfg->redis_socket != NULL && cfg->redis_socket[0] != '/')
        key_error(p, KEY_OF(redis_socket), "must be an absolute path");
    if (cfg->redis_socket == NULL && cfg->redis_host == NULL)
        key_error(p, KEY_OF(redis_host), "must not be empty (or set [redis] socket)");
    /* hiredis resolves names with a blocking getaddrinfo() inside the event loop */
    if (cfg->redis_socket == NULL && cfg->redis_host != NULL && !host_is_literal(cfg->redis_host))
        key_error(p, KEY_OF(redis_host), "must be an IP address or localhost (not a DNS name)");
    if (cfg->redis_username != NULL && cfg->redis_password_file == NULL)
        key_error(p, KEY_OF(redis_username), "needs [redis] password_file");
    if (cfg->redis_username != NULL && strpbrk(cfg->redis_username, " \t") != NULL)
        key_error(p, KEY_OF(redis_username), "must not contain blanks");
    check_base_url(p);
    check_admin_listen(p);
    check_consumer(p);
    check_order(p, KEY_OF(backoff_base_ms), cfg->backoff_base_ms, KEY_OF(backoff_max_ms),
                cfg->backoff_max_ms);
    check_order(p, KEY_OF(breaker_probe_interval_ms), cfg->breaker_probe_interval_ms,
                KEY_OF(breaker_probe_max_ms), cfg->breaker_probe_max_ms);
    if (cfg->redis_password_file != NULL)
        cfg->redis_password = secret_read(p, KEY_OF(redis_password_file), cfg->redis_password_file);
    if (flags & CONFIG_NEED_SECRETS)
        check_token(p);
    else if (cfg->api_token_file != NULL)
        secret_source_check(p, KEY_OF(api_token_file), cfg->api_token_file);
}

struct config *config_load(const char *path, unsigned flags, char **errors)
{
    struct config_parse p;

    memset(&p, 0, sizeof(p));
    strbuf_init(&p.errors);
    p.file = path != NULL ? path : "(defaults)";
    *errors = NULL;
    p.cfg = calloc(1, sizeof(*p.cfg));
    if (p.cfg == NULL)
        return NULL;
    if (!config_set_defaults(&p))
        goto fail;
    if (path != NULL) {
        p.cfg->path = strdup(path);
        if (p.cfg->path == NULL) {
            config_error(&p, 0, NULL, NULL, "out of memory");
            goto fail;
        }
        if (!config_parse_file(&p, path))
            goto fail;
    }
    config_check(&p, flags);
    if (p.error_count == 0 && !p.errors.failed) {
        strbuf_release(&p.errors);
        return p.cfg;
    }
fail:
    config_free(p.cfg);
    *errors = strbuf_detach(&p.errors);
    return NULL;
}

static void secret_free(char *s)
{
    if (s != NULL) {
        wipe(s, strlen(s));
        free(s);
    }
}

void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (config_keys[i].type == KEY_STR || config_keys[i].type == KEY_NAME)
            free(*(char **)((char *)cfg + config_keys[i].offset));
    }
    secret_free(cfg->api_token);
    secret_free(cfg->redis_password);
    free(cfg->admin_host);
    free(cfg->path);
    free(cfg);
}

void config_summary(const struct config *cfg, char *buf, size_t size)
{
    char redis[300];
    const char *token = cfg->api_token_file != NULL ? "token_file"
                        : cfg->api_token != NULL    ? "environment"
                                                    : "not loaded";

    if (cfg->redis_socket != NULL)
        snprintf(redis, sizeof(redis), "unix:%s", cfg->redis_socket);
    else
        snprintf(redis, sizeof(redis), "%s:%d", cfg->redis_host, cfg->redis_port);
    snprintf(buf, size,
             "redis=%s db=%d prefix=%s group=%s consumer=%s api=%s token=%s max_inflight=%d "
             "rate=%g burst=%d scope=%s breaker=%s admin=%s log=%s",
             redis, cfg->redis_db, cfg->prefix, cfg->group, cfg->consumer, cfg->api_base_url, token,
             cfg->max_inflight, cfg->rate, cfg->burst,
             cfg->rate_limit_scope == RATE_LIMIT_SCOPE_CLUSTER ? "cluster" : "local",
             cfg->breaker_enabled ? "on" : "off",
             cfg->admin_listen != NULL ? cfg->admin_listen : "off", log_level_name(cfg->log_level));
}

static bool key_equal(const struct config_key *key, const struct config *a, const struct config *b)
{
    const char *fa = (const char *)a + key->offset, *fb = (const char *)b + key->offset;

    switch (key->type) {
    case KEY_STR:
    case KEY_NAME: {
        const char *sa = *(char *const *)fa, *sb = *(char *const *)fb;

        return (sa == NULL || sb == NULL) ? sa == sb : strcmp(sa, sb) == 0;
    }
    case KEY_INT:
        return *(const int *)fa == *(const int *)fb;
    case KEY_LONG:
        return *(const long *)fa == *(const long *)fb;
    case KEY_SIZE:
        return *(const size_t *)fa == *(const size_t *)fb;
    case KEY_DBL:
        return *(const double *)fa == *(const double *)fb;
    case KEY_BOOL:
        return *(const bool *)fa == *(const bool *)fb;
    case KEY_SCOPE:
        return *(const enum rate_limit_scope *)fa == *(const enum rate_limit_scope *)fb;
    case KEY_LEVEL:
        return *(const enum log_level *)fa == *(const enum log_level *)fb;
    }
    return false;
}

size_t config_fixed_changes(const struct config *old, const struct config *next, char *buf,
                            size_t size)
{
    size_t count = 0, used = 0;

    if (size > 0)
        buf[0] = '\0';
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const struct config_key *key = &config_keys[i];
        int n;

        if (!(key->flags & KEY_RESTART) || key_equal(key, old, next))
            continue;
        if (used < size) {
            n = snprintf(buf + used, size - used, "%s[%s] %s", count > 0 ? ", " : "", key->section,
                         key->name);
            used += n > 0 ? (size_t)n : 0;
        }
        count++;
    }
    return count;
}
