/* The /__* endpoints that tests and benchmarks use to inspect and steer the mock; never counted as
 * API traffic. */
#ifndef DATAMART_MOCK_ADMIN_H
#define DATAMART_MOCK_ADMIN_H

struct evhttp_request;
struct mock_context;

/* GET /__stats, GET /__datamarts, POST /__reset, GET|PUT /__faults, PUT /__tokens,
 * POST /__precreate; anything else under /__ is a 404. */
void mock_admin_handle(const struct mock_context *ctx, struct evhttp_request *req,
                       const char *path);

#endif
