/*
 * What every datamartctl command shares: the global options, the exit statuses and the prefix.
 * Exit statuses (documented in --help and docs/datamartctl.md): 0 success; 1 not found, invalid
 * or failed; 2 usage or I/O error (and a timeout for `wait`); 3 Redis unreachable or refusing.
 */
#ifndef DATAMART_CTL_H
#define DATAMART_CTL_H

struct config;

#define CTL_EXIT_OK 0
#define CTL_EXIT_FAILED 1
#define CTL_EXIT_USAGE 2
#define CTL_EXIT_REDIS 3

struct ctl {
    struct config *cfg; /* from -c FILE, else the defaults */
    char *redis_host;   /* --redis, overriding the config; NULL when not given */
    int redis_port;
    const char *prefix; /* --prefix, overriding the config; NULL when not given */
};

#endif
