#include "mock_tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

struct token_list {
    char **items;
    size_t count;
};

struct mock_tokens {
    struct token_list current;
    struct token_list defaults;
};

static void list_release(struct token_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

static bool list_push(struct token_list *list, const char *token)
{
    char **items = realloc(list->items, (list->count + 1) * sizeof(*items));
    char *copy;

    if (items == NULL)
        return false;
    list->items = items;
    copy = strdup(token);
    if (copy == NULL)
        return false;
    list->items[list->count++] = copy;
    return true;
}

static bool list_copy(struct token_list *to, const struct token_list *from)
{
    struct token_list copy = {NULL, 0};

    for (size_t i = 0; i < from->count; i++) {
        if (!list_push(&copy, from->items[i])) {
            list_release(&copy);
            return false;
        }
    }
    list_release(to);
    *to = copy;
    return true;
}

/* the reason token is unacceptable, or NULL */
static const char *token_problem(const char *token)
{
    size_t len = strlen(token);

    if (len == 0)
        return "a token must not be empty";
    if (len > MOCK_TOKEN_MAX)
        return "a token is too long";
    for (size_t i = 0; i < len; i++) {
        if (token[i] <= ' ' || token[i] > '~')
            return "a token must be visible ASCII characters";
    }
    return NULL;
}

struct mock_tokens *mock_tokens_create(void)
{
    return calloc(1, sizeof(struct mock_tokens));
}

void mock_tokens_free(struct mock_tokens *tokens)
{
    if (tokens == NULL)
        return;
    list_release(&tokens->current);
    list_release(&tokens->defaults);
    free(tokens);
}

bool mock_tokens_add(struct mock_tokens *tokens, const char *token, char *err, size_t errlen)
{
    const char *problem = token_problem(token);

    if (problem != NULL) {
        snprintf(err, errlen, "%s", problem);
        return false;
    }
    if (!list_push(&tokens->current, token)) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    return true;
}

bool mock_tokens_replace(struct mock_tokens *tokens, const cJSON *array, char *err, size_t errlen)
{
    struct token_list fresh = {NULL, 0};
    const cJSON *item;

    if (!cJSON_IsArray(array) || cJSON_GetArraySize(array) == 0) {
        snprintf(err, errlen, "expected a non-empty JSON array of tokens");
        return false;
    }
    cJSON_ArrayForEach(item, array)
    {
        const char *problem =
            cJSON_IsString(item) ? token_problem(item->valuestring) : "a token must be a string";

        if (problem != NULL || !list_push(&fresh, item->valuestring)) {
            snprintf(err, errlen, "%s", problem != NULL ? problem : "out of memory");
            list_release(&fresh);
            return false;
        }
    }
    list_release(&tokens->current);
    tokens->current = fresh;
    return true;
}

/* compare without an early exit, so timing does not reveal how much of a token matched */
static bool same_secret(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = alen != blen;

    for (size_t i = 0; i < alen && i < blen; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

bool mock_tokens_accepts(const struct mock_tokens *tokens, const char *token, size_t len)
{
    bool match = false;

    if (len == 0)
        return false;
    if (tokens->current.count == 0)
        return true;
    for (size_t i = 0; i < tokens->current.count; i++) {
        const char *t = tokens->current.items[i];

        match |= same_secret(t, strlen(t), token, len);
    }
    return match;
}

size_t mock_tokens_count(const struct mock_tokens *tokens)
{
    return tokens->current.count;
}

bool mock_tokens_save_defaults(struct mock_tokens *tokens)
{
    return list_copy(&tokens->defaults, &tokens->current);
}

bool mock_tokens_restore_defaults(struct mock_tokens *tokens)
{
    return list_copy(&tokens->current, &tokens->defaults);
}
