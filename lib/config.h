/*
 * The daemon's INI configuration (../shared/CONTRACT.md, "Config file"): a table of keys with
 * defaults and ranges. Loading is parse -> validate -> return a new object, so a reload can
 * keep the old config when the new file is bad.
 */
#ifndef DATAMART_CONFIG_H
#define DATAMART_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"
#include "log.h"

enum rate_limit_scope {
    RATE_LIMIT_SCOPE_LOCAL = 0,
    RATE_LIMIT_SCOPE_CLUSTER,
};

/*
 * A loaded configuration. Read-only after config_load(); strings are owned by it. Optional
 * strings (socket, username, password_file, token_file, listen) are NULL when unset.
 */
struct config {
    char *path; /* the file it came from */

    /* [redis] */
    char *redis_host;
    int redis_port;
    char *redis_socket; /* unix socket path; when set, host/port are not used */
    char *redis_username;
    char *redis_password_file;
    char *redis_password; /* secret: from password_file, never logged */
    int redis_db;
    char *prefix;

    /* [api] */
    char *api_base_url; /* without a trailing slash */
    char *api_token_file;
    char *api_token; /* secret: from token_file or DATAMARTD_API_TOKEN, never logged */
    long connect_timeout_ms;
    long request_timeout_ms;
    int max_inflight;
    size_t max_payload_bytes;
    bool allow_insecure_http;

    /* [queue] */
    char *group;
    char *consumer; /* default: the host name */
    long claim_idle_ms;
    int max_attempts;
    long max_age_s;
    long backoff_base_ms;
    long backoff_max_ms;
    long result_ttl_s;
    long results_maxlen;
    long reply_ttl_s;
    long shutdown_grace_ms;

    /* [rate_limit] */
    double rate; /* permits per second; 0 = unlimited */
    int burst;
    enum rate_limit_scope rate_limit_scope;

    /* [breaker] */
    bool breaker_enabled;
    int breaker_consecutive;
    double breaker_failure_ratio;
    int breaker_window;
    long breaker_probe_interval_ms;
    long breaker_probe_max_ms;

    /* [admin] */
    char *admin_listen; /* "HOST:PORT" or "[V6]:PORT"; NULL disables */
    char *admin_host;   /* admin_listen's host without brackets; NULL when disabled */
    int admin_port;

    /* [log] */
    enum log_level log_level;
};

enum config_flags {
    /* the daemon: a token source is required and the token is read (the Redis password is read
       whenever password_file is set, since every Redis client needs it) */
    CONFIG_NEED_SECRETS = 1 << 0,
};

/*
 * Load and validate path (NULL: defaults only, as datamartctl without -c).
 * On success returns the config. On failure returns NULL and *errors holds one line per problem,
 * each naming FILE:LINE and the key ("datamartd.conf:12: [api] max_inflight: ..."; problems
 * between keys name the file and both keys); free it with free(). *errors is NULL only when
 * memory ran out. Secrets never appear in messages.
 */
struct config *config_load(const char *path, unsigned flags, char **errors) DM_MUSTCHECK;
/* Frees the config, wiping secrets first. Accepts NULL. */
void config_free(struct config *cfg);

/* One line describing cfg for logs and --check-config; never contains a secret. */
void config_summary(const struct config *cfg, char *buf, size_t size);
/*
 * Keys a reload cannot apply (they need a restart) whose values differ between old and next:
 * returns how many, and writes their names ("[redis] prefix, [queue] group") into buf, truncated.
 */
size_t config_fixed_changes(const struct config *old, const struct config *next, char *buf,
                            size_t size);

#endif
