/* The Create Datamart endpoint as the vendor answers it, with the configured faults and latency. */
#ifndef DATAMART_MOCK_API_H
#define DATAMART_MOCK_API_H

#include <stdbool.h>

#include "compiler.h"

struct evhttp_request;
struct mock_context;

struct mock_api;

struct mock_api *mock_api_create(const struct mock_context *ctx) DM_MUSTCHECK;
void mock_api_free(struct mock_api *api);

/* POST MOCK_API_PATH, or MOCK_LEGACY_API_PATH when legacy. */
void mock_api_handle(struct mock_api *api, struct evhttp_request *req, bool legacy);
/* Any other path outside /__: a counted 404. */
void mock_api_not_found(struct mock_api *api, struct evhttp_request *req);

#endif
