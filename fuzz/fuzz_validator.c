/*
 * libFuzzer target for the payload validator: any bytes must give a result whose invariants
 * hold, without crashes, leaks or reads past the input (libFuzzer's copy is exactly size bytes).
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "validator.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s)
{
    if (!s)
        abort();
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            abort();
}

/* What the validator takes for JSON, cJSON must too, and decode "name" the same way. */
static void check_against_cjson(const struct validator_result *r, const uint8_t *data, size_t size)
{
    const char *name = validator_result_name(r);
    cJSON *root;

    if (validator_result_verdict(r) == VALIDATOR_NOT_JSON)
        return;
    root = cJSON_ParseWithLength((const char *)data, size);
    if (!root)
        abort();
    if (name) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "name");
        if (!cJSON_IsString(item) || strcmp(item->valuestring, name) != 0)
            abort();
    }
    cJSON_Delete(root);
}

static void check_result(const struct validator_result *r)
{
    size_t count = validator_result_count(r);
    enum validator_verdict verdict = validator_result_verdict(r);
    char *json;
    cJSON *parsed;

    if ((verdict == VALIDATOR_OK) != (count == 0) || count > VALIDATOR_MAX_PROBLEMS + 1)
        abort();
    if (verdict == VALIDATOR_NOT_JSON &&
        (count != 1 || strcmp(validator_result_path(r, 0), "$") != 0))
        abort();
    for (size_t i = 0; i < count; i++) {
        check_text(validator_result_path(r, i));
        check_text(validator_result_message(r, i));
    }
    if (validator_result_path(r, count) || validator_result_message(r, count))
        abort();
    json = validator_result_errors_json(r);
    if (!json)
        abort();
    parsed = cJSON_Parse(json);
    if (!cJSON_IsArray(parsed) || (size_t)cJSON_GetArraySize(parsed) != count)
        abort();
    cJSON_Delete(parsed);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a small limit too, so the size check is reached */
    size_t limits[] = {0, size > 0 ? size - 1 : 0};
    struct validator_result *r;

    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        r = validator_check((const char *)data, size, limits[i]);
        /* libFuzzer's allocator does not fail, so NULL is a bug */
        if (!r)
            abort();
        check_result(r);
        check_against_cjson(r, data, size);
        validator_result_free(r);
    }
    return 0;
}
