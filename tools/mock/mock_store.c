#include "mock_store.h"

#include <stdlib.h>
#include <string.h>

#define SLOTS_MIN 1024

struct mock_store {
    struct mock_datamart *entries; /* arrival order; name and body share one allocation */
    uint64_t *hashes;              /* hash of entries[i].name */
    size_t count, capacity;
    uint32_t *slots; /* open addressing: entry index + 1, 0 = free */
    size_t slot_mask;
    size_t bytes, max_entries, max_bytes;
};

/* FNV-1a, 64 bit */
static uint64_t name_hash(const char *name, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

struct mock_store *mock_store_create(size_t max_entries, size_t max_bytes)
{
    struct mock_store *store = calloc(1, sizeof(*store));

    if (store == NULL)
        return NULL;
    store->slots = calloc(SLOTS_MIN, sizeof(*store->slots));
    if (store->slots == NULL) {
        free(store);
        return NULL;
    }
    store->slot_mask = SLOTS_MIN - 1;
    /* slot values are uint32 indexes */
    store->max_entries = max_entries < UINT32_MAX - 1 ? max_entries : UINT32_MAX - 1;
    store->max_bytes = max_bytes;
    return store;
}

static void entries_release(struct mock_store *store)
{
    for (size_t i = 0; i < store->count; i++)
        free((char *)store->entries[i].name);
    store->count = 0;
    store->bytes = 0;
}

void mock_store_free(struct mock_store *store)
{
    if (store == NULL)
        return;
    entries_release(store);
    free(store->entries);
    free(store->hashes);
    free(store->slots);
    free(store);
}

/* the slot holding name, or the free slot where it would go */
static size_t slot_find(const struct mock_store *store, const char *name, size_t len, uint64_t h)
{
    size_t i = (size_t)h & store->slot_mask;

    for (;;) {
        uint32_t v = store->slots[i];
        const struct mock_datamart *dm;

        if (v == 0)
            return i;
        dm = &store->entries[v - 1];
        if (store->hashes[v - 1] == h && dm->name_len == len && memcmp(dm->name, name, len) == 0)
            return i;
        i = (i + 1) & store->slot_mask;
    }
}

/* keep the load factor at or under one half */
static bool slots_grow(struct mock_store *store)
{
    size_t size = (store->slot_mask + 1) * 2;
    uint32_t *slots = calloc(size, sizeof(*slots));

    if (slots == NULL)
        return false;
    free(store->slots);
    store->slots = slots;
    store->slot_mask = size - 1;
    for (size_t e = 0; e < store->count; e++) {
        size_t i = (size_t)store->hashes[e] & store->slot_mask;

        while (slots[i] != 0)
            i = (i + 1) & store->slot_mask;
        slots[i] = (uint32_t)(e + 1);
    }
    return true;
}

static bool entries_grow(struct mock_store *store)
{
    size_t capacity = store->capacity ? store->capacity * 2 : 256;
    struct mock_datamart *entries;
    uint64_t *hashes;

    entries = realloc(store->entries, capacity * sizeof(*entries));
    if (entries == NULL)
        return false;
    store->entries = entries;
    hashes = realloc(store->hashes, capacity * sizeof(*hashes));
    if (hashes == NULL)
        return false;
    store->hashes = hashes;
    store->capacity = capacity;
    return true;
}

enum mock_store_result mock_store_add(struct mock_store *store, const struct mock_datamart *dm)
{
    uint64_t h = name_hash(dm->name, dm->name_len);
    size_t slot = slot_find(store, dm->name, dm->name_len, h);
    size_t size = dm->name_len + 1 + (dm->body != NULL ? dm->body_len + 1 : 0);
    struct mock_datamart *entry;
    char *copy;

    if (store->slots[slot] != 0)
        return MOCK_STORE_EXISTS;
    if (store->count >= store->max_entries || size > store->max_bytes - store->bytes)
        return MOCK_STORE_FULL;
    if ((store->count + 1) * 2 > store->slot_mask + 1) {
        if (!slots_grow(store))
            return MOCK_STORE_NO_MEMORY;
        slot = slot_find(store, dm->name, dm->name_len, h);
    }
    if (store->count == store->capacity && !entries_grow(store))
        return MOCK_STORE_NO_MEMORY;
    copy = malloc(size);
    if (copy == NULL)
        return MOCK_STORE_NO_MEMORY;

    entry = &store->entries[store->count];
    *entry = *dm;
    memcpy(copy, dm->name, dm->name_len);
    copy[dm->name_len] = '\0';
    entry->name = copy;
    if (dm->body != NULL) {
        memcpy(copy + dm->name_len + 1, dm->body, dm->body_len);
        copy[size - 1] = '\0';
        entry->body = copy + dm->name_len + 1;
    }
    store->hashes[store->count] = h;
    store->slots[slot] = (uint32_t)(++store->count);
    store->bytes += size;
    return MOCK_STORE_ADDED;
}

size_t mock_store_count(const struct mock_store *store)
{
    return store->count;
}

const struct mock_datamart *mock_store_at(const struct mock_store *store, size_t i)
{
    return &store->entries[i];
}

void mock_store_clear(struct mock_store *store)
{
    entries_release(store);
    memset(store->slots, 0, (store->slot_mask + 1) * sizeof(*store->slots));
}
