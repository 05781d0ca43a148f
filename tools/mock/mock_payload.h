/* The mock's own basic checks of a Create Datamart body, as the vendor answers them. Deliberately
 * independent of lib/validator: the mock stands in for the vendor, not for the daemon. */
#ifndef DATAMART_MOCK_PAYLOAD_H
#define DATAMART_MOCK_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"

struct cJSON;

struct mock_payload {
    struct cJSON *root;
    const char *name;       /* into root */
    const char *datasource; /* into root */
};

/* Once at start, before any other cJSON use: payload trees are allocated from an arena. */
void mock_payload_init(void);
/* Parse and check body; false with an INVALID_REQUEST_BODY message in msg. */
bool mock_payload_parse(struct mock_payload *payload, const char *body, size_t len, char *msg,
                        size_t msglen) DM_MUSTCHECK;
void mock_payload_release(struct mock_payload *payload);

#endif
