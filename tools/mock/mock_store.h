/* The datamarts the mock has created (name, exact body, arrival), in order, with a hash set on
 * the names; bounded in count and bytes. */
#ifndef DATAMART_MOCK_STORE_H
#define DATAMART_MOCK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler.h"

struct mock_datamart {
    const char *name; /* NUL-terminated */
    size_t name_len;
    const char *body; /* the request body as received; NULL for a precreated name */
    size_t body_len;
    int64_t arrival_ms; /* ms since the epoch */
    bool legacy;        /* arrived on the legacy path */
};

enum mock_store_result {
    MOCK_STORE_ADDED,
    MOCK_STORE_EXISTS,
    MOCK_STORE_FULL,
    MOCK_STORE_NO_MEMORY,
};

struct mock_store;

struct mock_store *mock_store_create(size_t max_entries, size_t max_bytes) DM_MUSTCHECK;
void mock_store_free(struct mock_store *store);

/* Copy dm in, unless its name is already there or a bound would be passed. */
enum mock_store_result mock_store_add(struct mock_store *store,
                                      const struct mock_datamart *dm) DM_MUSTCHECK;
size_t mock_store_count(const struct mock_store *store);
/* the i-th datamart in arrival order */
const struct mock_datamart *mock_store_at(const struct mock_store *store, size_t i);
void mock_store_clear(struct mock_store *store);

#endif
