#include "strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strbuf_init(struct strbuf *sb)
{
    memset(sb, 0, sizeof(*sb));
}

void strbuf_reset(struct strbuf *sb)
{
    sb->len = 0;
    sb->failed = false;
    if (sb->data != NULL)
        sb->data[0] = '\0';
}

void strbuf_release(struct strbuf *sb)
{
    free(sb->data);
    strbuf_init(sb);
}

static bool strbuf_reserve(struct strbuf *sb, size_t extra)
{
    size_t need, cap;
    char *p;

    if (sb->failed)
        return false;
    if (extra > SIZE_MAX / 2 - sb->len) {
        sb->failed = true;
        return false;
    }
    need = sb->len + extra + 1;
    if (need <= sb->cap)
        return true;
    cap = sb->cap ? sb->cap : 256;
    while (cap < need)
        cap *= 2;
    p = realloc(sb->data, cap);
    if (p == NULL) {
        sb->failed = true;
        return false;
    }
    sb->data = p;
    sb->cap = cap;
    return true;
}

void strbuf_append(struct strbuf *sb, const char *data, size_t len)
{
    if (!strbuf_reserve(sb, len))
        return;
    memcpy(sb->data + sb->len, data, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
}

void strbuf_puts(struct strbuf *sb, const char *s)
{
    strbuf_append(sb, s, strlen(s));
}

void strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !strbuf_reserve(sb, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

size_t utf8_sequence_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned int cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8 */
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void strbuf_json_string(struct strbuf *sb, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    strbuf_append(sb, "\"", 1);
    while (i < len) {
        size_t run = i;

        /* copy plain runs in one go; only escapes and bad bytes are handled one by one */
        while (run < len && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        strbuf_append(sb, s + i, run - i);
        i = run;
        if (i >= len)
            break;
        if (p[i] == '"' || p[i] == '\\') {
            char esc[2] = {'\\', (char)p[i]};
            strbuf_append(sb, esc, 2);
            i++;
        } else if (p[i] < 0x20) {
            strbuf_printf(sb, "\\u%04x", p[i]);
            i++;
        } else {
            size_t n = utf8_sequence_len(p + i, len - i);

            if (n == 0) {
                strbuf_puts(sb, "\\ufffd");
                i++;
            } else {
                strbuf_append(sb, s + i, n);
                i += n;
            }
        }
    }
    strbuf_append(sb, "\"", 1);
}

char *strbuf_detach(struct strbuf *sb)
{
    char *data = sb->failed ? NULL : sb->data;

    if (data == NULL && !sb->failed) {
        data = calloc(1, 1);
    } else if (sb->failed) {
        free(sb->data);
    }
    strbuf_init(sb);
    return data;
}
