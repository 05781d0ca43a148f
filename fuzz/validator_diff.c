/*
 * libFuzzer target comparing this tree's validator with a reference build of lib/validator.c from
 * another revision, its public names prefixed ref_ (built by fuzz/validator-diff): a rewrite must
 * give the same verdict, problems, name and errors JSON for any bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "validator.h"

struct ref_validator_result;

struct ref_validator_result *ref_validator_check(const char *buf, size_t len, size_t max_bytes);
void ref_validator_result_free(struct ref_validator_result *r);
enum validator_verdict ref_validator_result_verdict(const struct ref_validator_result *r);
size_t ref_validator_result_count(const struct ref_validator_result *r);
const char *ref_validator_result_path(const struct ref_validator_result *r, size_t i);
const char *ref_validator_result_message(const struct ref_validator_result *r, size_t i);
const char *ref_validator_result_name(const struct ref_validator_result *r);
char *ref_validator_result_errors_json(const struct ref_validator_result *r);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_text(const char *a, const char *b)
{
    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
        abort();
}

static void compare(const struct validator_result *r, const struct ref_validator_result *ref)
{
    size_t count = validator_result_count(r);
    char *json = validator_result_errors_json(r);
    char *ref_json = ref_validator_result_errors_json(ref);

    if (validator_result_verdict(r) != ref_validator_result_verdict(ref) ||
        count != ref_validator_result_count(ref))
        abort();
    for (size_t i = 0; i < count; i++) {
        same_text(validator_result_path(r, i), ref_validator_result_path(ref, i));
        same_text(validator_result_message(r, i), ref_validator_result_message(ref, i));
    }
    same_text(validator_result_name(r), ref_validator_result_name(ref));
    if (!json || !ref_json)
        abort();
    same_text(json, ref_json);
    free(json);
    free(ref_json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a small limit too, so the size check is reached */
    size_t limits[] = {0, size > 0 ? size - 1 : 0};

    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        struct validator_result *r = validator_check((const char *)data, size, limits[i]);
        struct ref_validator_result *ref = ref_validator_check((const char *)data, size, limits[i]);

        /* libFuzzer's allocator does not fail, so NULL is a bug in either */
        if (!r || !ref)
            abort();
        compare(r, ref);
        validator_result_free(r);
        ref_validator_result_free(ref);
    }
    return 0;
}
