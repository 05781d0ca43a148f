/* libcurl_heap: the five allocation callbacks of curl_global_init_mem over one block_pool. */
#include "libcurl_heap.h"

#include <stdint.h>
#include <string.h>

#include <curl/curl.h>

#include "block_pool.h"

static struct block_pool *heap_pool;
static unsigned heap_users;
/* true on the thread that owns heap_pool; libcurl's resolver threads see false */
static _Thread_local bool heap_owner;

static struct block_pool *pool_here(void)
{
    return heap_owner ? heap_pool : NULL;
}

static void *heap_malloc(size_t size)
{
    return block_pool_alloc(pool_here(), size);
}

static void heap_free(void *block)
{
    block_pool_release(pool_here(), block);
}

static void *heap_realloc(void *block, size_t size)
{
    return block_pool_realloc(pool_here(), block, size);
}

static char *heap_strdup(const char *s)
{
    size_t len = strlen(s) + 1;
    char *copy = heap_malloc(len);

    if (copy != NULL)
        memcpy(copy, s, len);
    return copy;
}

static void *heap_calloc(size_t count, size_t size)
{
    void *block;

    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    block = heap_malloc(count * size);
    if (block != NULL)
        memset(block, 0, count * size);
    return block;
}

bool libcurl_heap_init(void)
{
    if (heap_users == 0) {
        heap_pool = block_pool_create(LIBCURL_HEAP_CACHE);
        if (heap_pool == NULL)
            return false;
        heap_owner = true;
        if (curl_global_init_mem(CURL_GLOBAL_ALL, heap_malloc, heap_free, heap_realloc, heap_strdup,
                                 heap_calloc) != CURLE_OK) {
            heap_owner = false;
            block_pool_free(heap_pool);
            heap_pool = NULL;
            return false;
        }
    } else if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
        return false;
    }
    heap_users++;
    return true;
}

void libcurl_heap_cleanup(void)
{
    if (heap_users == 0)
        return;
    curl_global_cleanup();
    if (--heap_users > 0)
        return;
    /* blocks libcurl still holds stay valid: with no pool they go straight back to malloc */
    block_pool_free(heap_pool);
    heap_pool = NULL;
    heap_owner = false;
}
