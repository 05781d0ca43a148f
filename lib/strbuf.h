/* A growable byte buffer for building replies, metrics pages and JSON without fixed limits. */
#ifndef DATAMART_STRBUF_H
#define DATAMART_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"

/* Always NUL-terminated after a successful append; `failed` sticks after an allocation failure. */
struct strbuf {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
};

void strbuf_init(struct strbuf *sb);
void strbuf_reset(struct strbuf *sb); /* keep the memory, drop the contents */
void strbuf_release(struct strbuf *sb);
void strbuf_append(struct strbuf *sb, const char *data, size_t len);
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...) DM_PRINTF(2, 3);
/* A JSON string literal (with quotes); invalid UTF-8 becomes U+FFFD so the output stays JSON. */
void strbuf_json_string(struct strbuf *sb, const char *s, size_t len);
/* Hand the contents over (caller frees); NULL if any append failed. The buffer is left empty. */
char *strbuf_detach(struct strbuf *sb) DM_MUSTCHECK;

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 when invalid. */
size_t utf8_sequence_len(const unsigned char *s, size_t avail);

#endif
