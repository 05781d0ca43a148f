/* libcurl's allocator: a block pool for the thread that sets it up (the event loop's), plain
 * malloc for any other (libcurl's resolver threads). Each request allocates and frees the same
 * few dozen small blocks; from the pool they cost a list push and pop instead of a trip through
 * glibc's bins. */
#ifndef DATAMARTD_LIBCURL_HEAP_H
#define DATAMARTD_LIBCURL_HEAP_H

#include <stdbool.h>

#include "compiler.h"

/* freed blocks kept for reuse, at most */
#define LIBCURL_HEAP_CACHE (256 * 1024)

/* curl_global_init(CURL_GLOBAL_ALL) with the pool, counted: each success needs one cleanup. */
bool libcurl_heap_init(void) DM_MUSTCHECK;
/* curl_global_cleanup(); the last one also frees the cached blocks. */
void libcurl_heap_cleanup(void);

#endif
