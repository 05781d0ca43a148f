/* hiredis reply objects built on the loop heap. hiredis 0.14 mallocs every reply object and, apart,
 * every string and element vector, and frees them one by one after the callback: for a batch of
 * claimed jobs that is hundreds of blocks of the same few sizes at once, the pattern glibc's small
 * caches handle worst. Here a string lives in the same block as its object, and blocks come from
 * and go back to the loop heap's pool. The objects are ordinary redisReply structs. */
#ifndef DATAMARTD_REDIS_REPLY_H
#define DATAMARTD_REDIS_REPLY_H

#include <hiredis/read.h>

/* Make reader build its replies here; call before it reads anything. */
void redis_reply_attach(redisReader *reader);

#endif
