/*
 * Field/value arrays as Redis returns them (HGETALL, a stream entry's fields, XINFO's
 * name/value lists): element 2i is a name, 2i+1 its value.
 */
#ifndef DATAMART_CTL_FIELDS_H
#define DATAMART_CTL_FIELDS_H

#include <stdbool.h>

struct redisReply;
struct strbuf;

/* the value of name, or NULL when absent (or pairs is not an array) */
const struct redisReply *ctl_fields_get(const struct redisReply *pairs, const char *name);
/* the value of name when it is a string, else NULL */
const char *ctl_fields_str(const struct redisReply *pairs, const char *name);
/* the value of name as an integer (an integer reply, or a string of digits); false otherwise */
bool ctl_fields_ll(const struct redisReply *pairs, const char *name, long long *out);
/*
 * {"name":"value",...} with every string value as a JSON string (other values are left out).
 * When lead_name is not NULL and pairs lacks it, "lead_name":"lead_value" comes first.
 */
void ctl_fields_json(struct strbuf *sb, const struct redisReply *pairs, const char *lead_name,
                     const char *lead_value);

#endif
