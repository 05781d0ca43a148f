/* The daemon's process: event loop, signals, reload, systemd notifications, shutdown. */
#ifndef DATAMARTD_DAEMON_H
#define DATAMARTD_DAEMON_H

struct config;

/*
 * Run until SIGTERM/SIGINT (exit status 0) or a fatal start-up error (1). Takes ownership of cfg;
 * config_path is re-read on SIGHUP.
 */
int daemon_run(struct config *cfg, const char *config_path);

#endif
