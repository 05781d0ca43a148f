/* loop_heap: one block_pool, owned by the thread that set it up. */
#include "loop_heap.h"

#include <stdint.h>
#include <string.h>

#include "block_pool.h"

static struct block_pool *heap_pool;
static unsigned heap_users;
/* true on the thread that owns heap_pool; libcurl's resolver threads see false */
static _Thread_local bool heap_owner;

static struct block_pool *pool_here(void)
{
    return heap_owner ? heap_pool : NULL;
}

void *loop_heap_malloc(size_t size)
{
    return block_pool_alloc(pool_here(), size);
}

void loop_heap_free(void *block)
{
    /* libcurl frees NULL about a hundred times per request */
    if (block != NULL)
        block_pool_release(pool_here(), block);
}

void *loop_heap_realloc(void *block, size_t size)
{
    return block_pool_realloc(pool_here(), block, size);
}

char *loop_heap_strdup(const char *s)
{
    size_t len = strlen(s) + 1;
    char *copy = loop_heap_malloc(len);

    if (copy != NULL)
        memcpy(copy, s, len);
    return copy;
}

void *loop_heap_calloc(size_t count, size_t size)
{
    void *block;

    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    block = loop_heap_malloc(count * size);
    if (block != NULL)
        memset(block, 0, count * size);
    return block;
}

bool loop_heap_init(void)
{
    if (heap_users == 0) {
        heap_pool = block_pool_create(LOOP_HEAP_CACHE);
        if (heap_pool == NULL)
            return false;
        heap_owner = true;
    }
    heap_users++;
    return true;
}

void loop_heap_cleanup(void)
{
    if (heap_users == 0 || --heap_users > 0)
        return;
    /* blocks still in use stay valid: with no pool they go straight back to malloc */
    block_pool_free(heap_pool);
    heap_pool = NULL;
    heap_owner = false;
}
