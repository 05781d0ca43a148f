/* Wall-clock and monotonic time in the units the daemon uses. */
#ifndef DATAMART_CLOCK_H
#define DATAMART_CLOCK_H

#include <stdint.h>

/* milliseconds since the epoch: stored in Redis (finished_ms, next_attempt_ms) */
int64_t clock_realtime_ms(void);
/* microseconds on the monotonic clock: durations and deadlines inside the process */
uint64_t clock_monotonic_us(void);

#endif
