/* classification of every kind of API answer (databrain-api.md "Response") */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "api_response.h"

struct answer_case {
    const char *what;
    enum api_transport transport;
    long status;
    const char *body;
    enum api_verdict verdict;
    const char *code;
    const char *message_contains;
};

static const struct answer_case cases[] = {
    {"created", API_TRANSPORT_RESPONSE, 200, "{\"id\":\"acme\",\"error\":null}", API_VERDICT_CREATED,
     "", ""},
    {"created, error key missing", API_TRANSPORT_RESPONSE, 200, "{\"id\":\"acme\"}",
     API_VERDICT_CREATED, "", ""},
    {"200 without id", API_TRANSPORT_RESPONSE, 200, "{\"error\":null}", API_VERDICT_TRANSIENT,
     "HTTP_200", "HTTP 200"},
    {"200 not json", API_TRANSPORT_RESPONSE, 200, "ok", API_VERDICT_TRANSIENT, "HTTP_200", ""},
    {"error object", API_TRANSPORT_RESPONSE, 400,
     "{\"id\":null,\"error\":{\"code\":\"DATASOURCE_NAME_ERROR\",\"message\":\"no such "
     "datasource\",\"status\":400}}",
     API_VERDICT_PERMANENT, "DATASOURCE_NAME_ERROR", "no such datasource"},
    {"already exists", API_TRANSPORT_RESPONSE, 400,
     "{\"id\":null,\"error\":{\"code\":\"INVALID_REQUEST_BODY\",\"message\":\"Datamart name "
     "already exists\"}}",
     API_VERDICT_EXISTS, "INVALID_REQUEST_BODY", "already exists"},
    {"invalid tenancy", API_TRANSPORT_RESPONSE, 400,
     "{\"error\":{\"code\":\"INVALID_TENANCY\",\"message\":\"bad level\"}}", API_VERDICT_PERMANENT,
     "INVALID_TENANCY", "bad level"},
    {"error as bare code", API_TRANSPORT_RESPONSE, 400, "{\"id\":null,\"error\":\"AUTH_ERROR\"}",
     API_VERDICT_AUTH, "AUTH_ERROR", "AUTH_ERROR"},
    {"error as sentence", API_TRANSPORT_RESPONSE, 400, "{\"error\":\"name is required\"}",
     API_VERDICT_PERMANENT, "HTTP_400", "name is required"},
    {"error null on 400", API_TRANSPORT_RESPONSE, 400, "{\"id\":null,\"error\":null}",
     API_VERDICT_PERMANENT, "HTTP_400", "HTTP 400"},
    {"401 sibling", API_TRANSPORT_RESPONSE, 401,
     "{\"error\":{\"code\":\"AUTHENTICATION_ERROR\",\"message\":\"expired\"}}", API_VERDICT_AUTH,
     "AUTHENTICATION_ERROR", "expired"},
    {"403 no body", API_TRANSPORT_RESPONSE, 403, "", API_VERDICT_AUTH, "HTTP_403", ""},
    {"404 html", API_TRANSPORT_RESPONSE, 404, "<html>nope</html>", API_VERDICT_AUTH, "HTTP_404",
     "<html>nope</html>"},
    {"405", API_TRANSPORT_RESPONSE, 405, "", API_VERDICT_AUTH, "HTTP_405", ""},
    {"429", API_TRANSPORT_RESPONSE, 429, "slow down", API_VERDICT_TRANSIENT, "RATE_LIMITED",
     "slow down"},
    {"408", API_TRANSPORT_RESPONSE, 408, "", API_VERDICT_TRANSIENT, "HTTP_408", ""},
    {"500 code", API_TRANSPORT_RESPONSE, 500,
     "{\"error\":{\"code\":\"INTERNAL_SERVER_ERROR\",\"message\":\"boom\"}}",
     API_VERDICT_TRANSIENT, "INTERNAL_SERVER_ERROR", "boom"},
    {"503 plain", API_TRANSPORT_RESPONSE, 503, "Service Unavailable\nretry", API_VERDICT_TRANSIENT,
     "HTTP_503", "Service Unavailable retry"},
    {"422 other 4xx", API_TRANSPORT_RESPONSE, 422, "{}", API_VERDICT_PERMANENT, "HTTP_422", ""},
    {"lowercase code ignored", API_TRANSPORT_RESPONSE, 400,
     "{\"error\":{\"code\":\"bad code\",\"message\":\"m\"}}", API_VERDICT_PERMANENT, "HTTP_400",
     "m"},
    {"timeout", API_TRANSPORT_TIMEOUT, 0, NULL, API_VERDICT_TRANSIENT, "TIMEOUT", ""},
    {"connect", API_TRANSPORT_CONNECT_ERROR, 0, NULL, API_VERDICT_TRANSIENT, "CONNECT_ERROR", ""},
    {"reset", API_TRANSPORT_ERROR, 0, NULL, API_VERDICT_TRANSIENT, "CONNECT_ERROR", ""},
};

static void test_classify_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct answer_case *tc = &cases[i];
        struct api_answer a = {tc->transport, tc->status, tc->body, tc->body ? strlen(tc->body) : 0,
                               "connection refused"};
        struct api_classification c;

        api_response_classify(&a, &c);
        if (c.verdict != tc->verdict)
            fail_msg("%s: verdict %s, want %s", tc->what, api_verdict_name(c.verdict),
                     api_verdict_name(tc->verdict));
        if (strcmp(c.code, tc->code) != 0)
            fail_msg("%s: code \"%s\", want \"%s\"", tc->what, c.code, tc->code);
        if (strstr(c.message, tc->message_contains) == NULL)
            fail_msg("%s: message \"%s\" lacks \"%s\"", tc->what, c.message,
                     tc->message_contains);
        assert_int_equal(c.http_status, tc->transport == API_TRANSPORT_RESPONSE ? tc->status : 0);
    }
}

static void test_created_id(void **state)
{
    const char *body = "{\"id\":\"acme-sales\",\"error\":null}";
    struct api_answer a = {API_TRANSPORT_RESPONSE, 200, body, strlen(body), NULL};
    struct api_classification c;

    (void)state;
    api_response_classify(&a, &c);
    assert_string_equal(c.datamart_id, "acme-sales");
}

static void test_message_is_one_printable_line(void **state)
{
    const char *body = "{\"error\":{\"code\":\"INVALID_REQUEST_BODY\",\"message\":\"a\\nb\\u0001c\"}}";
    struct api_answer a = {API_TRANSPORT_RESPONSE, 400, body, strlen(body), NULL};
    struct api_classification c;

    (void)state;
    api_response_classify(&a, &c);
    assert_string_equal(c.message, "a b c");
}

static void test_body_not_nul_terminated(void **state)
{
    char body[64];
    const char *src = "{\"id\":\"abc\"}";
    struct api_answer a = {API_TRANSPORT_RESPONSE, 200, body, strlen(src), NULL};
    struct api_classification c;

    (void)state;
    memset(body, 'x', sizeof(body));
    memcpy(body, src, strlen(src));
    api_response_classify(&a, &c);
    assert_int_equal(c.verdict, API_VERDICT_CREATED);
    assert_string_equal(c.datamart_id, "abc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_created_id),
        cmocka_unit_test(test_message_is_one_printable_line),
        cmocka_unit_test(test_body_not_nul_terminated),
    };

    return cmocka_run_group_tests_name("api_response", tests, NULL, NULL);
}
