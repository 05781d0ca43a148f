#include "mock_reply.h"

#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "log.h"
#include "strbuf.h"

const char *mock_reply_reason(int status)
{
    /* NULL lets evhttp pick its own phrase */
    return status == 429 ? "Too Many Requests" : NULL;
}

void mock_reply_error_body(struct strbuf *body, int status, const char *code, const char *message)
{
    strbuf_reset(body);
    strbuf_puts(body, "{\"id\":null,\"error\":{\"code\":");
    strbuf_json_string(body, code, strlen(code));
    strbuf_puts(body, ",\"message\":");
    strbuf_json_string(body, message, strlen(message));
    strbuf_printf(body, ",\"status\":%d}}", status);
}

bool mock_reply_stage(struct evhttp_request *req, const struct strbuf *body)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);

    if (body->failed)
        return false;
    if (evbuffer_add(out, body->data, body->len) != 0 ||
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json") != 0) {
        evbuffer_drain(out, evbuffer_get_length(out));
        return false;
    }
    return true;
}

int mock_reply_send(struct evhttp_request *req, int status, const struct strbuf *body)
{
    if (!mock_reply_stage(req, body)) {
        log_error("out of memory building a %d answer; answering 500", status);
        evhttp_send_error(req, 500, NULL);
        return 500;
    }
    evhttp_send_reply(req, status, mock_reply_reason(status), NULL);
    return status;
}

int mock_reply_send_error(struct evhttp_request *req, int status, const char *code,
                          const char *message)
{
    struct strbuf body;
    int sent;

    strbuf_init(&body);
    mock_reply_error_body(&body, status, code, message);
    sent = mock_reply_send(req, status, &body);
    strbuf_release(&body);
    return sent;
}
