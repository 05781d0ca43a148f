/* A set of ids numbered in insertion order: open addressing over an array of copies. */
#include "ctl_idset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ctl_idset {
    char **ids; /* copies, by number */
    size_t *lens;
    size_t count;
    size_t ids_cap;
    size_t *slots; /* number + 1, 0 = free; a power of two, at most half full */
    size_t nslots;
};

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

struct ctl_idset *ctl_idset_create(void)
{
    return calloc(1, sizeof(struct ctl_idset));
}

void ctl_idset_free(struct ctl_idset *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->count; i++)
        free(set->ids[i]);
    free(set->ids);
    free(set->lens);
    free(set->slots);
    free(set);
}

/* the slot holding s, or the free slot where it belongs */
static size_t slot_of(const struct ctl_idset *set, const char *s, size_t len)
{
    size_t mask = set->nslots - 1;
    size_t i = (size_t)hash_bytes(s, len) & mask;

    while (set->slots[i] != 0) {
        size_t n = set->slots[i] - 1;

        if (set->lens[n] == len && memcmp(set->ids[n], s, len) == 0)
            break;
        i = (i + 1) & mask;
    }
    return i;
}

static bool rehash(struct ctl_idset *set)
{
    size_t nslots = set->nslots ? set->nslots * 2 : 64;
    size_t *slots = calloc(nslots, sizeof(*slots));

    if (!slots)
        return false;
    free(set->slots);
    set->slots = slots;
    set->nslots = nslots;
    for (size_t n = 0; n < set->count; n++)
        set->slots[slot_of(set, set->ids[n], set->lens[n])] = n + 1;
    return true;
}

static bool reserve(struct ctl_idset *set)
{
    if (set->count == set->ids_cap) {
        size_t cap = set->ids_cap ? set->ids_cap * 2 : 32;
        char **ids = realloc(set->ids, cap * sizeof(*ids));
        size_t *lens;

        if (!ids)
            return false;
        set->ids = ids;
        lens = realloc(set->lens, cap * sizeof(*lens));
        if (!lens)
            return false;
        set->lens = lens;
        set->ids_cap = cap;
    }
    return (set->count + 1) * 2 <= set->nslots || rehash(set);
}

int ctl_idset_add(struct ctl_idset *set, const char *s, size_t len, size_t *index)
{
    size_t slot;
    char *copy;

    if (ctl_idset_find(set, s, len, index))
        return 0;
    if (!reserve(set) || !(copy = malloc(len + 1)))
        return -1;
    memcpy(copy, s, len);
    copy[len] = '\0';
    slot = slot_of(set, s, len);
    set->ids[set->count] = copy;
    set->lens[set->count] = len;
    set->slots[slot] = set->count + 1;
    *index = set->count++;
    return 1;
}

bool ctl_idset_find(const struct ctl_idset *set, const char *s, size_t len, size_t *index)
{
    size_t slot;

    if (set->nslots == 0)
        return false;
    slot = slot_of(set, s, len);
    if (set->slots[slot] == 0)
        return false;
    *index = set->slots[slot] - 1;
    return true;
}

size_t ctl_idset_count(const struct ctl_idset *set)
{
    return set->count;
}

const char *ctl_idset_get(const struct ctl_idset *set, size_t index)
{
    return set->ids[index];
}
