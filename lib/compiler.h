/* Attribute macros shared by every module (pgbouncer's base.h idea). */
#ifndef DATAMART_COMPILER_H
#define DATAMART_COMPILER_H

/* the caller must look at the result: status returns, allocations */
#define DM_MUSTCHECK __attribute__((warn_unused_result))
/* printf-style argument checking: fmt is argument F, the values start at A */
#define DM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define DM_UNUSED __attribute__((unused))

#define DM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* a macro's value as a string literal: DM_XSTR(2000) is "2000" */
#define DM_STR(x) #x
#define DM_XSTR(x) DM_STR(x)

#endif
