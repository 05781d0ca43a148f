/* Size-class free lists in front of malloc, for a library that allocates and frees the same
 * small blocks for every request (libcurl: about 40 per request). Freed blocks wait in their
 * class's list for the next allocation of that class, up to a byte limit; the rest go back
 * to malloc. A pool belongs to one thread; a NULL pool means "not that thread": the block is
 * taken from or given back to malloc directly. Blocks are plain malloc blocks (glibc), so any
 * thread can free any of them, with or without the pool. */
#ifndef DATAMART_BLOCK_POOL_H
#define DATAMART_BLOCK_POOL_H

#include <stddef.h>

#include "compiler.h"

/* blocks larger than this always come from malloc (a class size: 16 k + 8) */
#define BLOCK_POOL_LARGEST 4088

struct block_pool;

/* A pool keeping at most cache_limit bytes of freed blocks. */
struct block_pool *block_pool_create(size_t cache_limit) DM_MUSTCHECK;
/* Frees the cached blocks. Blocks in use stay valid: release them with free() or a NULL pool. */
void block_pool_free(struct block_pool *pool);

/* malloc, realloc and free for pool's thread (pool != NULL) or any other (pool == NULL). */
void *block_pool_alloc(struct block_pool *pool, size_t size) DM_MUSTCHECK;
void *block_pool_realloc(struct block_pool *pool, void *block, size_t size) DM_MUSTCHECK;
void block_pool_release(struct block_pool *pool, void *block);

/* Bytes of freed blocks the pool holds now. */
size_t block_pool_cached(const struct block_pool *pool);

#endif
