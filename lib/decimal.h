/* Integers as decimal text without snprintf: it shows up in the per-job profile. */
#ifndef DATAMART_DECIMAL_H
#define DATAMART_DECIMAL_H

/* room for any long long with its sign and the terminating NUL */
#define DECIMAL_MAX 24

/* Write v at the end of buf (DECIMAL_MAX bytes); returns where the text starts. */
const char *decimal_format(char buf[DECIMAL_MAX], long long v);

#endif
