/*
 * The commands of datamartctl, one entry point each. argv[0] is the command's name; each returns
 * the process exit status (ctl.h).
 */
#ifndef DATAMART_CTL_COMMANDS_H
#define DATAMART_CTL_COMMANDS_H

struct ctl;

int ctl_validate_run(struct ctl *ctl, int argc, char **argv);
int ctl_enqueue_run(struct ctl *ctl, int argc, char **argv);
int ctl_status_run(struct ctl *ctl, int argc, char **argv);
int ctl_wait_run(struct ctl *ctl, int argc, char **argv);
int ctl_watch_run(struct ctl *ctl, int argc, char **argv);
int ctl_stats_run(struct ctl *ctl, int argc, char **argv);
int ctl_dead_run(struct ctl *ctl, int argc, char **argv);
int ctl_batch_run(struct ctl *ctl, int argc, char **argv);
int ctl_pause_run(struct ctl *ctl, int argc, char **argv);
int ctl_pause_resume_run(struct ctl *ctl, int argc, char **argv);

#endif
