#include "api_response.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "strbuf.h"

/* Copy s into a one-line printable field: control bytes become spaces, bad UTF-8 becomes '?'. */
static void copy_line(char *dst, size_t dstlen, const char *s, size_t len)
{
    size_t o = 0, i = 0;

    while (i < len && o + 1 < dstlen) {
        const unsigned char *p = (const unsigned char *)s + i;
        size_t n = utf8_sequence_len(p, len - i);

        if (n == 0 || *p < 0x20 || *p == 0x7f) {
            dst[o++] = (n == 0) ? '?' : ' ';
            i++;
        } else if (o + n < dstlen) {
            memcpy(dst + o, p, n);
            o += n;
            i += n;
        } else {
            break;
        }
    }
    dst[o] = '\0';
}

/* a bare code is upper-case letters, digits and underscores, like AUTH_ERROR */
static bool looks_like_code(const char *s)
{
    if (*s == '\0' || strlen(s) >= API_CODE_MAX)
        return false;
    for (; *s != '\0'; s++) {
        if (!isupper((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
            return false;
    }
    return true;
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay != '\0'; hay++) {
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    }
    return false;
}

/* Pull code and message out of the answer's "error", whatever shape it has. */
static void read_error(const cJSON *root, struct api_classification *out)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");

    if (cJSON_IsString(err) && err->valuestring != NULL) {
        if (looks_like_code(err->valuestring))
            snprintf(out->code, sizeof(out->code), "%s", err->valuestring);
        copy_line(out->message, sizeof(out->message), err->valuestring, strlen(err->valuestring));
    } else if (cJSON_IsObject(err)) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");

        if (cJSON_IsString(code) && looks_like_code(code->valuestring))
            snprintf(out->code, sizeof(out->code), "%s", code->valuestring);
        if (cJSON_IsString(msg))
            copy_line(out->message, sizeof(out->message), msg->valuestring,
                      strlen(msg->valuestring));
    }
    /* some gateways put the message at the top level */
    if (out->message[0] == '\0') {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "message");

        if (cJSON_IsString(msg))
            copy_line(out->message, sizeof(out->message), msg->valuestring,
                      strlen(msg->valuestring));
    }
}

static bool is_auth_fault(long status, const char *code)
{
    return strcmp(code, "AUTH_ERROR") == 0 || strcmp(code, "AUTHENTICATION_ERROR") == 0 ||
           status == 401 || status == 403 || status == 404 || status == 405;
}

static void classify_response(const struct api_answer *a, struct api_classification *out)
{
    cJSON *root = NULL;
    const cJSON *id = NULL;

    if (a->body != NULL && a->body_len > 0)
        root = cJSON_ParseWithLength(a->body, a->body_len);
    if (cJSON_IsObject(root)) {
        id = cJSON_GetObjectItemCaseSensitive(root, "id");
        read_error(root, out);
    } else if (a->body_len > 0 && a->status != 200) {
        /* a plain-text error page: keep its first line as the message */
        copy_line(out->message, sizeof(out->message), a->body, a->body_len);
    }

    if (a->status >= 200 && a->status < 300 && cJSON_IsString(id) && id->valuestring[0] != '\0') {
        out->verdict = API_VERDICT_CREATED;
        copy_line(out->datamart_id, sizeof(out->datamart_id), id->valuestring,
                  strlen(id->valuestring));
        out->code[0] = '\0';
        out->message[0] = '\0';
        cJSON_Delete(root);
        return;
    }
    cJSON_Delete(root);

    if (out->code[0] == '\0') {
        if (a->status == 429)
            snprintf(out->code, sizeof(out->code), "RATE_LIMITED");
        else
            snprintf(out->code, sizeof(out->code), "HTTP_%ld", a->status);
    }
    if (out->message[0] == '\0')
        snprintf(out->message, sizeof(out->message), "HTTP %ld from the API", a->status);

    if (is_auth_fault(a->status, out->code)) {
        out->verdict = API_VERDICT_AUTH;
    } else if (a->status == 429 || a->status == 408 || a->status >= 500 ||
               (a->status >= 200 && a->status < 300)) {
        /* a 2xx without an id may have created it: a retry settles that through EXISTS */
        out->verdict = API_VERDICT_TRANSIENT;
    } else if (contains_nocase(out->message, "already exists")) {
        out->verdict = API_VERDICT_EXISTS;
    } else {
        out->verdict = API_VERDICT_PERMANENT;
    }
}

void api_response_classify(const struct api_answer *a, struct api_classification *out)
{
    memset(out, 0, sizeof(*out));
    out->http_status = a->transport == API_TRANSPORT_RESPONSE ? a->status : 0;
    switch (a->transport) {
    case API_TRANSPORT_RESPONSE:
        classify_response(a, out);
        return;
    case API_TRANSPORT_TIMEOUT:
        snprintf(out->code, sizeof(out->code), "TIMEOUT");
        break;
    case API_TRANSPORT_CONNECT_ERROR:
    case API_TRANSPORT_ERROR:
        snprintf(out->code, sizeof(out->code), "CONNECT_ERROR");
        break;
    }
    out->verdict = API_VERDICT_TRANSIENT;
    if (a->transport_error != NULL)
        copy_line(out->message, sizeof(out->message), a->transport_error,
                  strlen(a->transport_error));
    else
        snprintf(out->message, sizeof(out->message), "%s", out->code);
}

const char *api_verdict_name(enum api_verdict verdict)
{
    static const char *const names[] = {"created", "exists", "permanent", "transient", "auth"};

    return names[verdict];
}
