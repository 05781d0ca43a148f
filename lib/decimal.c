#include "decimal.h"

const char *decimal_format(char buf[DECIMAL_MAX], long long v)
{
    char *p = buf + DECIMAL_MAX - 1;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

    *p = '\0';
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    return p;
}
