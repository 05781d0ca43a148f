/* Following P:results with XREAD BLOCK, for wait and watch: the server wakes us, no polling. */
#ifndef DATAMART_CTL_RESULTS_H
#define DATAMART_CTL_RESULTS_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"

struct ctl_redis;
struct redisReply;

/* the id of the last entry of P:results into id (CTL_ENTRY_ID_MAX bytes), "0-0" when empty */
bool ctl_results_last_id(struct ctl_redis *r, char *id) DM_MUSTCHECK;

/*
 * Up to count entries of P:results after after_id, blocking up to block_ms for the first one
 * (0: no limit). Returns the reply (freeReplyObject) with *entries its array of [id, fields]
 * entries, after_id moved to the last of them. Returns NULL with *timed_out when none came in
 * time, or on a failure (printed).
 */
struct redisReply *ctl_results_read(struct ctl_redis *r, char *after_id, long long block_ms,
                                    size_t count, const struct redisReply **entries,
                                    bool *timed_out) DM_MUSTCHECK;

#endif
