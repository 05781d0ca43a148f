/* One human-readable line for an outcome event of P:results (or a finished job hash). */
#ifndef DATAMART_CTL_OUTCOME_H
#define DATAMART_CTL_OUTCOME_H

#include <stdbool.h>

struct redisReply;
struct strbuf;

/*
 * "acme-1 created datamart_id=acme-sales attempts=1 tenant=acme",
 * "acme-2 failed INVALID_REQUEST_BODY source=local path=name attempts=0: name must ...",
 * "batch b1 finished total=200 created=190 failed=6 dead=4"; no newline. Values are escaped.
 */
void ctl_outcome_line(struct strbuf *sb, const struct redisReply *fields);
/*
 * The outcome fields of CONTRACT.md as one JSON object of strings (a job hash's working fields,
 * such as state or payload, are left out), preceded by "id" when entry_id is not NULL; no newline.
 */
void ctl_outcome_json(struct strbuf *sb, const struct redisReply *fields, const char *entry_id);
/* true when a job's status (or a job hash's state) is final: created, failed or dead */
bool ctl_outcome_is_final(const char *status);

#endif
