/* The service tokens the mock accepts as `Authorization: Bearer`; never logged or echoed. */
#ifndef DATAMART_MOCK_TOKENS_H
#define DATAMART_MOCK_TOKENS_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"

struct cJSON;

/* longest token accepted, in bytes */
#define MOCK_TOKEN_MAX 4096

struct mock_tokens;

struct mock_tokens *mock_tokens_create(void) DM_MUSTCHECK;
void mock_tokens_free(struct mock_tokens *tokens);

/* Accept one more token: 1..MOCK_TOKEN_MAX visible ASCII characters. */
bool mock_tokens_add(struct mock_tokens *tokens, const char *token, char *err,
                     size_t errlen) DM_MUSTCHECK;
/* Replace every token with a non-empty JSON array of strings, all or nothing (token rotation). */
bool mock_tokens_replace(struct mock_tokens *tokens, const struct cJSON *array, char *err,
                         size_t errlen) DM_MUSTCHECK;
/* With no token configured any non-empty token is accepted. */
bool mock_tokens_accepts(const struct mock_tokens *tokens, const char *token, size_t len);
size_t mock_tokens_count(const struct mock_tokens *tokens);

/* The current tokens become the ones mock_tokens_restore_defaults() returns to. */
bool mock_tokens_save_defaults(struct mock_tokens *tokens) DM_MUSTCHECK;
bool mock_tokens_restore_defaults(struct mock_tokens *tokens) DM_MUSTCHECK;

#endif
