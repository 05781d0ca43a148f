/* JSON answers on an evhttp request: staging a body, sending it, and the vendor's error shape. */
#ifndef DATAMART_MOCK_REPLY_H
#define DATAMART_MOCK_REPLY_H

#include <stdbool.h>

#include "compiler.h"

struct evhttp_request;
struct strbuf;

/* The reason phrase for status; libevent 2.1 lacks some (it calls 429 "Client Error"). */
const char *mock_reply_reason(int status);
/* Databrain's error body: {"id": null, "error": {"code", "message", "status"}}, into body. */
void mock_reply_error_body(struct strbuf *body, int status, const char *code, const char *message);
/* Put body on req's response as application/json, to be sent later; false if memory ran out. */
bool mock_reply_stage(struct evhttp_request *req, const struct strbuf *body) DM_MUSTCHECK;
/* Stage and send now. Returns the status sent: 500 when memory ran out. */
int mock_reply_send(struct evhttp_request *req, int status, const struct strbuf *body);
/* An error answer built and sent in one go (admin endpoints, where nothing is reused). */
int mock_reply_send_error(struct evhttp_request *req, int status, const char *code,
                          const char *message);

#endif
