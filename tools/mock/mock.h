/* What every databrain-mock endpoint shares: the components main() owns and wires together. */
#ifndef DATAMART_MOCK_H
#define DATAMART_MOCK_H

#include <stddef.h>

struct event_base;
struct mock_faults;
struct mock_stats;
struct mock_store;
struct mock_tokens;

/* the vendor answers 413 beyond this request body size */
#define MOCK_BODY_MAX (1024 * 1024)

#define MOCK_API_PATH "/api/v2/data-app/datamarts"
#define MOCK_LEGACY_API_PATH "/api/v2/dataApp/datamarts"

struct mock_context {
    struct event_base *base;
    struct mock_faults *faults;
    struct mock_tokens *tokens;
    struct mock_store *store;
    struct mock_stats *stats;
    const char *const *datasources; /* names that exist, compared case-sensitively */
    size_t datasource_count;
};

#endif
