/* One human-readable line per outcome event (see ctl_outcome.h). */
#include "ctl_outcome.h"

#include <string.h>

#include <hiredis/hiredis.h>

#include "compiler.h"
#include "ctl_fields.h"
#include "ctl_text.h"
#include "strbuf.h"

/* an outcome's fields (CONTRACT.md "An outcome") and a batch event's counts */
static const char *const outcome_fields[] = {
    "event",       "job_id",        "status",     "datamart_id", "recovered",
    "error_code",  "error_message", "error_path", "errors",      "error_source",
    "http_status", "attempts",      "tenant",     "batch",       "duplicate",
    "total",       "created",       "failed",     "dead",        "finished_ms",
};

/* " name=value" when the field is there; name NULL prints the bare value */
static void append_field(struct strbuf *sb, const redisReply *fields, const char *field,
                         const char *name)
{
    const redisReply *v = ctl_fields_get(fields, field);

    if (!v || v->type != REDIS_REPLY_STRING)
        return;
    strbuf_puts(sb, " ");
    if (name)
        strbuf_printf(sb, "%s=", name);
    ctl_text_printable(sb, v->str, v->len);
}

static void append_flag(struct strbuf *sb, const redisReply *fields, const char *field)
{
    const char *v = ctl_fields_str(fields, field);

    if (v && strcmp(v, "1") == 0)
        strbuf_printf(sb, " %s", field);
}

bool ctl_outcome_is_final(const char *status)
{
    return status && (strcmp(status, "created") == 0 || strcmp(status, "failed") == 0 ||
                      strcmp(status, "dead") == 0);
}

void ctl_outcome_line(struct strbuf *sb, const struct redisReply *fields)
{
    const char *event = ctl_fields_str(fields, "event");
    const redisReply *job_id, *message;

    if (event && strcmp(event, "batch") == 0) {
        strbuf_puts(sb, "batch");
        append_field(sb, fields, "batch", NULL);
        strbuf_puts(sb, " finished");
        append_field(sb, fields, "total", "total");
        append_field(sb, fields, "created", "created");
        append_field(sb, fields, "failed", "failed");
        append_field(sb, fields, "dead", "dead");
        return;
    }
    job_id = ctl_fields_get(fields, "job_id");
    if (job_id && job_id->type == REDIS_REPLY_STRING)
        ctl_text_printable(sb, job_id->str, job_id->len);
    else
        strbuf_puts(sb, "?");
    append_field(sb, fields, "status", NULL);
    append_field(sb, fields, "datamart_id", "datamart_id");
    append_field(sb, fields, "error_code", NULL);
    append_field(sb, fields, "error_source", "source");
    append_field(sb, fields, "http_status", "http");
    append_field(sb, fields, "error_path", "path");
    append_field(sb, fields, "attempts", "attempts");
    append_field(sb, fields, "tenant", "tenant");
    append_field(sb, fields, "batch", "batch");
    append_flag(sb, fields, "recovered");
    append_flag(sb, fields, "duplicate");
    message = ctl_fields_get(fields, "error_message");
    if (message && message->type == REDIS_REPLY_STRING) {
        strbuf_puts(sb, ": ");
        ctl_text_printable(sb, message->str, message->len);
    }
}

void ctl_outcome_json(struct strbuf *sb, const struct redisReply *fields, const char *entry_id)
{
    bool first = true;

    strbuf_puts(sb, "{");
    if (entry_id) {
        strbuf_puts(sb, "\"id\":");
        strbuf_json_string(sb, entry_id, strlen(entry_id));
        first = false;
    }
    for (size_t i = 0; i < DM_ARRAY_LEN(outcome_fields); i++) {
        const redisReply *v = ctl_fields_get(fields, outcome_fields[i]);

        if (!v || v->type != REDIS_REPLY_STRING)
            continue;
        strbuf_puts(sb, first ? "\"" : ",\"");
        strbuf_puts(sb, outcome_fields[i]);
        strbuf_puts(sb, "\":");
        strbuf_json_string(sb, v->str, v->len);
        first = false;
    }
    strbuf_puts(sb, "}");
}
