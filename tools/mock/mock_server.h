/* The mock's HTTP server: the listening socket, evhttp's limits, and the routing of each request
 * to the API or the admin endpoints. */
#ifndef DATAMART_MOCK_SERVER_H
#define DATAMART_MOCK_SERVER_H

#include <sys/socket.h>

#include "compiler.h"

struct mock_api;
struct mock_context;

struct mock_server;

/* Listen on addr (port 0 picks a free one) and serve. */
struct mock_server *mock_server_create(const struct mock_context *ctx, struct mock_api *api,
                                       const struct sockaddr *addr, socklen_t addrlen) DM_MUSTCHECK;
/* Closes every connection; held requests are released through their callbacks. */
void mock_server_free(struct mock_server *server);
/* "HOST:PORT" as bound, e.g. 127.0.0.1:41234 or [::1]:41234 */
const char *mock_server_address(const struct mock_server *server);

#endif
