/* The event loop thread's heap for the libraries that allocate per request: in datamartd libcurl
 * (curl_global_init_mem) and hiredis replies (daemon/redis_reply.h), in databrain-mock libevent
 * (event_set_mem_functions). A block pool serves the thread that first initialises it; any other
 * thread (libcurl's resolver threads) gets plain malloc. Every block is a plain malloc block, so
 * any thread may free any block, before, during or after the pool's life. */
#ifndef DATAMART_LOOP_HEAP_H
#define DATAMART_LOOP_HEAP_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"

/* freed blocks kept for reuse, at most */
#define LOOP_HEAP_CACHE (128 * 1024)

/* Counted: the first call creates the pool for the calling thread; each success needs one
 * loop_heap_cleanup(). Without it every call below is plain malloc. */
bool loop_heap_init(void) DM_MUSTCHECK;
/* The last cleanup frees the cached blocks. */
void loop_heap_cleanup(void);

/* malloc, free, realloc, strdup and calloc, in the signatures libcurl's callbacks take */
void *loop_heap_malloc(size_t size);
void loop_heap_free(void *block);
void *loop_heap_realloc(void *block, size_t size);
char *loop_heap_strdup(const char *s);
void *loop_heap_calloc(size_t count, size_t size);

#endif
