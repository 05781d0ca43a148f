/* block_pool: a size class every 16 bytes up to BLOCK_POOL_LARGEST, each a LIFO list of freed
 * blocks threaded through the blocks themselves. A block's class comes from malloc_usable_size(),
 * so blocks carry no header and the pool can take in a block any thread malloc'd: a block of u
 * usable bytes serves any request up to the class size at or below u. Class sizes are glibc's
 * usable sizes (16 k + 8), so a block the pool allocates wastes nothing glibc would not. */
#define _GNU_SOURCE /* malloc_usable_size */
#include "block_pool.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#define CLASS_STEP 16
#define CLASS_EXTRA 8 /* class c holds c * CLASS_STEP + CLASS_EXTRA bytes, from c = 1 */
#define CLASS_COUNT ((BLOCK_POOL_LARGEST - CLASS_EXTRA) / CLASS_STEP + 1)

_Static_assert((BLOCK_POOL_LARGEST - CLASS_EXTRA) % CLASS_STEP == 0,
               "BLOCK_POOL_LARGEST is a class size");

struct free_block {
    struct free_block *next;
};

struct block_pool {
    struct free_block *free[CLASS_COUNT];
    size_t cached; /* bytes in the free lists, by class size */
    size_t cache_limit;
};

static size_t class_size(size_t cls)
{
    return cls * CLASS_STEP + CLASS_EXTRA;
}

/* the smallest class that holds size bytes; size <= BLOCK_POOL_LARGEST */
static size_t class_for_request(size_t size)
{
    return size <= CLASS_STEP + CLASS_EXTRA ? 1 : (size - CLASS_EXTRA + CLASS_STEP - 1) / CLASS_STEP;
}

/* the largest class a block of usable bytes can serve; 0 if none can take it */
static size_t class_for_block(size_t usable)
{
    if (usable < class_size(1) || usable > BLOCK_POOL_LARGEST)
        return 0;
    return (usable - CLASS_EXTRA) / CLASS_STEP;
}

struct block_pool *block_pool_create(size_t cache_limit)
{
    struct block_pool *pool = calloc(1, sizeof(*pool));

    if (pool != NULL)
        pool->cache_limit = cache_limit;
    return pool;
}

void block_pool_free(struct block_pool *pool)
{
    if (pool == NULL)
        return;
    for (size_t cls = 1; cls < CLASS_COUNT; cls++) {
        while (pool->free[cls] != NULL) {
            struct free_block *b = pool->free[cls];

            pool->free[cls] = b->next;
            free(b);
        }
    }
    free(pool);
}

void *block_pool_alloc(struct block_pool *pool, size_t size)
{
    size_t cls;
    struct free_block *b;

    if (size > BLOCK_POOL_LARGEST)
        return malloc(size);
    cls = class_for_request(size);
    b = pool != NULL ? pool->free[cls] : NULL;
    if (b == NULL)
        return malloc(class_size(cls));
    pool->free[cls] = b->next;
    pool->cached -= class_size(cls);
    return b;
}

void block_pool_release(struct block_pool *pool, void *block)
{
    struct free_block *b = block;
    size_t cls;

    if (block == NULL)
        return;
    cls = pool != NULL ? class_for_block(malloc_usable_size(block)) : 0;
    if (cls == 0 || class_size(cls) > pool->cache_limit - pool->cached) {
        free(block);
        return;
    }
    b->next = pool->free[cls];
    pool->free[cls] = b;
    pool->cached += class_size(cls);
}

void *block_pool_realloc(struct block_pool *pool, void *block, size_t size)
{
    size_t usable;
    void *fresh;

    if (block == NULL)
        return block_pool_alloc(pool, size);
    usable = malloc_usable_size(block);
    if (size <= usable)
        return block;
    if (pool == NULL || usable > BLOCK_POOL_LARGEST || size > BLOCK_POOL_LARGEST)
        return realloc(block, size);
    fresh = block_pool_alloc(pool, size);
    if (fresh == NULL)
        return NULL;
    memcpy(fresh, block, usable);
    block_pool_release(pool, block);
    return fresh;
}

size_t block_pool_cached(const struct block_pool *pool)
{
    return pool->cached;
}
