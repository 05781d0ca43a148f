/*
 * Create Datamart body validation: a strict linear scan of the text (grammar, UTF-8, depth),
 * then a compact tree built in one block from the text the scan accepted, then a walk driven by
 * per-object field tables.
 *
 * Choices the API leaves open, fixed here:
 * - a key repeated within one object is a problem at that key's path (parsers disagree on which
 *   value wins); the repeated value is not checked further;
 * - keys that are not identifiers ([A-Za-z_][A-Za-z0-9_]*) appear bracket-quoted in paths:
 *   tableList[0]["my key"]; long keys and values are shortened with "...";
 * - "near byte N" counts from 0; a byte order mark, an escaped NUL (\u0000) and numbers longer
 *   than 63 characters (cJSON's limit, kept from when cJSON built the tree) make the payload
 *   "not JSON";
 * - tables are the same when schemaName (absent differs from any value) and name match exactly.
 */
#include "validator.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_CAP 512
/* at most this many bytes of a key or value are quoted in a path or message */
#define QUOTE_MAX 64
/* every byte may become a 6-byte escape, plus quotes, "..." and NUL */
#define QUOTE_CAP (QUOTE_MAX * 6 + 8)
#define MESSAGE_CAP 1024
/* longest number accepted: cJSON's (its buffer is 64 bytes), so verdicts stay as they were */
#define NUMBER_MAX 63
/* objects with at most this many members need no allocation to find repeated keys */
#define INLINE_MEMBERS 16
#define NO_OFFSET SIZE_MAX

struct problem {
    size_t path; /* offsets into validator_result.text */
    size_t message;
};

struct validator_result {
    enum validator_verdict verdict;
    size_t count;
    size_t dropped; /* problems found beyond VALIDATOR_MAX_PROBLEMS */
    size_t name;    /* offset of the copied "name", or NO_OFFSET */
    bool oom;
    /* VALIDATOR_MAX_PROBLEMS + 1 entries, allocated with the first problem: a valid payload
     * should cost no large allocation */
    struct problem *problems;
    char *text; /* NUL-terminated strings, back to back */
    size_t text_len;
    size_t text_cap;
};

enum node_type {
    NODE_NULL,
    NODE_FALSE,
    NODE_TRUE,
    NODE_NUMBER,
    NODE_STRING,
    NODE_ARRAY,
    NODE_OBJECT
};

/* One JSON value; strings are NUL-terminated and decoded (no \u0000 reaches here). */
struct node {
    enum node_type type;
    const char *key;          /* a member's key */
    const char *string;       /* NODE_STRING's text */
    const struct node *child; /* a container's first member or element */
    const struct node *next;  /* the next member or element */
};

/* type test that, like cJSON's, is false for a missing value */
static bool node_is(const struct node *v, enum node_type type)
{
    return v && v->type == type;
}

/* the first member named key, as cJSON_GetObjectItemCaseSensitive finds it */
static const struct node *node_member(const struct node *obj, const char *key)
{
    const struct node *m = obj->child;

    while (m && strcmp(m->key, key) != 0)
        m = m->next;
    return m;
}

/* ---- UTF-8 and escaping ---- */

/* Length of the valid UTF-8 sequence at p (shortest form, no surrogates), or 0. */
static size_t utf8_decode(const unsigned char *p, const unsigned char *end, uint32_t *cp)
{
    size_t avail = (size_t)(end - p);
    unsigned char b0 = p[0];

    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        if (avail < 2 || (p[1] & 0xC0) != 0x80)
            return 0;
        *cp = ((uint32_t)(b0 & 0x1F) << 6) | (p[1] & 0x3F);
        return 2;
    }
    if (b0 >= 0xE0 && b0 <= 0xEF) {
        unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80;
        unsigned char hi = b0 == 0xED ? 0x9F : 0xBF;
        if (avail < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80)
            return 0;
        *cp = ((uint32_t)(b0 & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        return 3;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
        unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80;
        unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF;
        if (avail < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        *cp = ((uint32_t)(b0 & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) |
              ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
        return 4;
    }
    return 0;
}

/*
 * JSON-style escaping that leaves no control or line-separator characters; invalid UTF-8
 * becomes \ufffd. Writes to dst when not NULL; returns the escaped length either way.
 */
static size_t escape_text(char *dst, const char *src, size_t len)
{
    const unsigned char *p = (const unsigned char *)src;
    const unsigned char *end = p + len;
    size_t out = 0;

    while (p < end) {
        uint32_t cp = 0;
        size_t n = utf8_decode(p, end, &cp);
        char esc[8];
        const char *piece = esc;
        size_t k;

        if (n == 0) {
            n = 1;
            cp = 0xFFFD;
            k = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
        } else if (cp == '"' || cp == '\\') {
            esc[0] = '\\';
            esc[1] = (char)cp;
            k = 2;
        } else if (cp == '\n' || cp == '\r' || cp == '\t') {
            esc[0] = '\\';
            esc[1] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't';
            k = 2;
        } else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029) {
            k = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
        } else {
            piece = (const char *)p;
            k = n;
        }
        if (dst)
            memcpy(dst + out, piece, k);
        out += k;
        p += n;
    }
    return out;
}

/* "text" escaped and shortened to QUOTE_MAX bytes at a character boundary, into dst[QUOTE_CAP] */
static const char *quote(char *dst, const char *s)
{
    size_t len = strlen(s);
    bool cut = len > QUOTE_MAX;
    size_t n;

    if (cut) {
        len = QUOTE_MAX;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    dst[0] = '"';
    n = 1 + escape_text(dst + 1, s, len);
    if (cut) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    dst[n++] = '"';
    dst[n] = '\0';
    return dst;
}

/* Whitespace only: ASCII blanks and the Unicode space separators, NEL and BOM. */
static bool text_is_blank(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end;

    /* most names start with a visible ASCII character */
    if (p[0] > ' ' && p[0] < 0x7F)
        return false;
    end = p + strlen(s);

    while (p < end) {
        uint32_t cp = 0;
        size_t n = utf8_decode(p, end, &cp);

        if (n == 0)
            return false;
        if (!(cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
              (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
              cp == 0x205F || cp == 0x3000 || cp == 0xFEFF))
            return false;
        p += n;
    }
    return true;
}

static bool is_nonblank_string(const struct node *v)
{
    return node_is(v, NODE_STRING) && !text_is_blank(v->string);
}

/* ---- result storage ---- */

static size_t result_store(struct validator_result *r, const char *s, size_t len)
{
    size_t at = r->text_len;

    if (r->oom)
        return NO_OFFSET;
    if (r->text_cap - r->text_len < len + 1) {
        size_t cap = r->text_cap ? r->text_cap : 256;
        char *p;

        while (cap - r->text_len < len + 1)
            cap *= 2;
        p = realloc(r->text, cap);
        if (!p) {
            r->oom = true;
            return NO_OFFSET;
        }
        r->text = p;
        r->text_cap = cap;
    }
    memcpy(r->text + at, s, len);
    r->text[at + len] = '\0';
    r->text_len += len + 1;
    return at;
}

static void result_add(struct validator_result *r, const char *path, const char *message)
{
    struct problem *p;

    if (r->count == VALIDATOR_MAX_PROBLEMS) {
        r->dropped++;
        return;
    }
    if (!r->problems) {
        r->problems = malloc((VALIDATOR_MAX_PROBLEMS + 1) * sizeof(*r->problems));
        if (!r->problems) {
            r->oom = true;
            return;
        }
    }
    p = &r->problems[r->count];
    p->path = result_store(r, path, strlen(path));
    p->message = result_store(r, message, strlen(message));
    if (!r->oom)
        r->count++;
}

static void DM_PRINTF(2, 3) result_not_json(struct validator_result *r, const char *fmt, ...)
{
    char message[MESSAGE_CAP];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    result_add(r, "$", message);
    r->verdict = VALIDATOR_NOT_JSON;
}

/* ---- the text scan: strict RFC 8259, UTF-8, depth; linear and allocation-free ---- */

struct scan {
    const unsigned char *start;
    const unsigned char *p;
    const unsigned char *end;
    unsigned depth;
    uint64_t objects; /* bit d set: the container at depth d+1 is an object */
    size_t values;    /* the tree needs one node per value */
    const char *error;
    enum { SCAN_SYNTAX, SCAN_UTF8, SCAN_DEPTH } kind;
};

static bool scan_fail(struct scan *s, const char *error)
{
    s->error = error;
    s->kind = SCAN_SYNTAX;
    return false;
}

static void scan_space(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* the four hex digits at p as a UTF-16 unit, or -1 */
static int32_t hex4(const unsigned char *p)
{
    int32_t v = 0;

    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0)
            return -1;
        v = (v << 4) | h;
    }
    return v;
}

/* \uXXXX at s->p; advances past it */
static bool scan_u_escape(struct scan *s, uint32_t *unit)
{
    int32_t v;

    if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u')
        return false;
    v = hex4(s->p + 2);
    if (v < 0)
        return false;
    s->p += 6;
    *unit = (uint32_t)v;
    return true;
}

static bool scan_escape(struct scan *s)
{
    uint32_t unit;
    uint32_t low;

    if (s->end - s->p < 2)
        return scan_fail(s, "unterminated string");
    if (s->p[1] != 'u') {
        if (!strchr("\"\\/bfnrt", s->p[1]) || s->p[1] == '\0')
            return scan_fail(s, "invalid escape in a string");
        s->p += 2;
        return true;
    }
    if (!scan_u_escape(s, &unit))
        return scan_fail(s, "invalid \\u escape in a string");
    if (unit == 0) {
        s->p -= 6;
        return scan_fail(s, "escaped NUL (\\u0000) in a string is not accepted");
    }
    if (unit >= 0xDC00 && unit <= 0xDFFF) {
        s->p -= 6;
        return scan_fail(s, "unpaired UTF-16 surrogate in a \\u escape");
    }
    if (unit >= 0xD800 && unit <= 0xDBFF) {
        const unsigned char *high = s->p - 6;
        if (!scan_u_escape(s, &low) || low < 0xDC00 || low > 0xDFFF) {
            s->p = high;
            return scan_fail(s, "unpaired UTF-16 surrogate in a \\u escape");
        }
    }
    return true;
}

static bool scan_string(struct scan *s)
{
    s->p++; /* the opening quote */
    for (;;) {
        /* a local cursor: the bytes are unsigned char, which may alias s */
        const unsigned char *p = s->p;
        const unsigned char *end = s->end;
        uint32_t cp;
        size_t n;

        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        s->p = p;
        if (p == end)
            return scan_fail(s, "unterminated string");
        if (*p == '"') {
            s->p++;
            return true;
        }
        if (*p == '\\') {
            if (!scan_escape(s))
                return false;
            continue;
        }
        if (*p < 0x20)
            return scan_fail(s, "unescaped control character in a string");
        n = utf8_decode(p, end, &cp);
        if (n == 0) {
            s->kind = SCAN_UTF8;
            return false;
        }
        s->p += n;
    }
}

static bool scan_digits(struct scan *s)
{
    const unsigned char *first = s->p;

    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > first;
}

static bool scan_number(struct scan *s)
{
    const unsigned char *first = s->p;

    if (*s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (!scan_digits(s))
        return scan_fail(s, "invalid number");
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!scan_digits(s))
            return scan_fail(s, "invalid number");
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!scan_digits(s))
            return scan_fail(s, "invalid number");
    }
    if (s->p - first > NUMBER_MAX) {
        s->p = first;
        return scan_fail(s, "number longer than 63 characters");
    }
    return true;
}

static bool scan_literal(struct scan *s, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return scan_fail(s, "expected a value");
    s->p += n;
    return true;
}

/* a member name and its colon */
static bool scan_key(struct scan *s)
{
    scan_space(s);
    if (s->p == s->end || *s->p != '"')
        return scan_fail(s, "expected a string key");
    if (!scan_string(s))
        return false;
    scan_space(s);
    if (s->p == s->end || *s->p != ':')
        return scan_fail(s, "expected ':'");
    s->p++;
    return true;
}

static bool scan_top_is_object(const struct scan *s)
{
    return (s->objects >> (s->depth - 1)) & 1u;
}

/*
 * Reads one value; an opening bracket is entered and *opened set, leaving the scan at the
 * first member (or past an empty container's closing bracket, with *opened clear).
 */
static bool scan_value(struct scan *s, bool *opened)
{
    *opened = false;
    s->values++;
    scan_space(s);
    if (s->p == s->end)
        return scan_fail(s, "expected a value");
    switch (*s->p) {
    case '{':
    case '[': {
        bool object = *s->p == '{';
        if (s->depth == VALIDATOR_MAX_DEPTH) {
            s->kind = SCAN_DEPTH;
            return false;
        }
        s->p++;
        scan_space(s);
        if (s->p < s->end && *s->p == (object ? '}' : ']')) {
            s->p++;
            return true;
        }
        if (object)
            s->objects |= UINT64_C(1) << s->depth;
        else
            s->objects &= ~(UINT64_C(1) << s->depth);
        s->depth++;
        *opened = true;
        return object ? scan_key(s) : true;
    }
    case '"':
        return scan_string(s);
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return scan_number(s);
        return scan_fail(s, "expected a value");
    }
}

static bool scan_json(struct scan *s)
{
    for (;;) {
        bool opened;

        if (!scan_value(s, &opened))
            return false;
        if (opened)
            continue;
        /* after a complete value: close containers until a comma asks for the next value */
        for (;;) {
            bool object;

            scan_space(s);
            if (s->depth == 0) {
                if (s->p != s->end)
                    return scan_fail(s, "unexpected data after the JSON value");
                return true;
            }
            object = scan_top_is_object(s);
            if (s->p == s->end)
                return scan_fail(s, object ? "expected ',' or '}'" : "expected ',' or ']'");
            if (*s->p == ',') {
                s->p++;
                if (object && !scan_key(s))
                    return false;
                break;
            }
            if (*s->p != (object ? '}' : ']'))
                return scan_fail(s, object ? "expected ',' or '}'" : "expected ',' or ']'");
            s->p++;
            s->depth--;
        }
    }
}

/* ---- the tree: built only from text the scan accepted, so it has no error paths ---- */

struct tree {
    char *p;            /* in text: a copy of the payload, its strings decoded in place */
    struct node *nodes; /* the next free node; the scan counted one per value */
    void *block;        /* nodes and text, when they do not fit inline */
    /* a typical payload's nodes and text fit here, so its tree costs no allocation */
    struct node inline_block[4096 / sizeof(struct node)];
};

static void tree_space(struct tree *t)
{
    while (*t->p == ' ' || *t->p == '\n' || *t->p == '\r' || *t->p == '\t')
        t->p++;
}

static size_t utf8_encode(char *dst, uint32_t cp)
{
    unsigned char *d = (unsigned char *)dst;

    if (cp < 0x80) {
        d[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (unsigned char)(0xC0 | (cp >> 6));
        d[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (unsigned char)(0xE0 | (cp >> 12));
        d[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (unsigned char)(0xF0 | (cp >> 18));
    d[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the escape at r (its backslash) to *w, as cJSON does; returns the byte after it. */
static char *tree_escape(char *r, char **w)
{
    static const char names[] = "\"\\/bfnrt";
    static const char bytes[] = "\"\\/\b\f\n\r\t";
    uint32_t cp;

    if (r[1] != 'u') {
        *(*w)++ = bytes[strchr(names, r[1]) - names];
        return r + 2;
    }
    cp = (uint32_t)hex4((const unsigned char *)r + 2);
    r += 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) +
             ((uint32_t)hex4((const unsigned char *)r + 2) - 0xDC00);
        r += 6;
    }
    *w += utf8_encode(*w, cp);
    return r;
}

/* The string at t->p (its opening quote), decoded in place: no escape decodes longer than it is. */
static const char *tree_string(struct tree *t)
{
    char *start = t->p + 1;
    char *r = start;
    char *w = start;

    for (;;) {
        char *run = r;

        while (*r != '"' && *r != '\\')
            r++;
        if (w != run)
            memmove(w, run, (size_t)(r - run));
        w += r - run;
        if (*r == '"')
            break;
        r = tree_escape(r, &w);
    }
    *w = '\0';
    t->p = r + 1;
    return start;
}

static struct node *tree_value(struct tree *t);

static void tree_container(struct tree *t, struct node *v)
{
    bool object = *t->p == '{';
    char close = object ? '}' : ']';
    const struct node **link = &v->child;

    v->type = object ? NODE_OBJECT : NODE_ARRAY;
    t->p++;
    tree_space(t);
    if (*t->p == close) {
        t->p++;
        return;
    }
    for (;;) {
        const char *key = NULL;
        struct node *m;

        if (object) {
            tree_space(t);
            key = tree_string(t);
            tree_space(t);
            t->p++; /* the colon */
        }
        m = tree_value(t);
        m->key = key;
        *link = m;
        link = &m->next;
        tree_space(t);
        if (*t->p++ == close)
            return;
    }
}

static struct node *tree_value(struct tree *t)
{
    struct node *v = t->nodes++;

    *v = (struct node){.type = NODE_NULL};
    tree_space(t);
    switch (*t->p) {
    case '{':
    case '[':
        tree_container(t, v);
        break;
    case '"':
        v->type = NODE_STRING;
        v->string = tree_string(t);
        break;
    case 't':
        v->type = NODE_TRUE;
        t->p += 4;
        break;
    case 'f':
        v->type = NODE_FALSE;
        t->p += 5;
        break;
    case 'n':
        t->p += 4;
        break;
    default:
        v->type = NODE_NUMBER;
        while ((*t->p >= '0' && *t->p <= '9') || *t->p == '-' || *t->p == '+' || *t->p == '.' ||
               *t->p == 'e' || *t->p == 'E')
            t->p++;
        break;
    }
    return v;
}

/* The root of the len bytes at buf, which the scan accepted as holding values values; NULL when
 * out of memory. */
static const struct node *tree_build(struct tree *t, const char *buf, size_t len, size_t values)
{
    char *block = (char *)t->inline_block;
    size_t node_bytes;

    t->block = NULL;
    if (values > SIZE_MAX / sizeof(struct node))
        return NULL;
    node_bytes = values * sizeof(struct node);
    if (len >= SIZE_MAX - node_bytes)
        return NULL;
    if (node_bytes + len + 1 > sizeof(t->inline_block)) {
        t->block = malloc(node_bytes + len + 1);
        if (!t->block)
            return NULL;
        block = t->block;
    }
    t->nodes = (struct node *)(void *)block;
    t->p = block + node_bytes;
    memcpy(t->p, buf, len);
    t->p[len] = '\0';
    return tree_value(t);
}

static void tree_free(struct tree *t)
{
    free(t->block);
}

/* ---- repeated names: sort, so the worst case stays O(n log n) whatever the input ---- */

struct dup_entry {
    const char *a; /* NULL sorts first */
    const char *b;
    uint32_t index;
};

struct dups {
    struct dup_entry *entries;
    uint32_t *first; /* first[i]: index of the first element with i's key; i when unique */
    size_t n;
    struct dup_entry entries_inline[INLINE_MEMBERS];
    uint32_t first_inline[INLINE_MEMBERS];
};

static bool dups_init(struct dups *d, size_t n)
{
    d->n = 0;
    if (n <= INLINE_MEMBERS) {
        d->entries = d->entries_inline;
        d->first = d->first_inline;
    } else {
        d->entries = malloc(n * (sizeof(*d->entries) + sizeof(*d->first)));
        if (!d->entries)
            return false;
        d->first = (uint32_t *)(d->entries + n);
    }
    for (size_t i = 0; i < n; i++)
        d->first[i] = (uint32_t)i;
    return true;
}

static void dups_free(struct dups *d)
{
    if (d->entries != d->entries_inline)
        free(d->entries);
}

static void dups_add(struct dups *d, const char *a, const char *b, size_t index)
{
    d->entries[d->n++] = (struct dup_entry){.a = a, .b = b, .index = (uint32_t)index};
}

static int nullable_cmp(const char *x, const char *y)
{
    if (!x || !y)
        return (x != NULL) - (y != NULL);
    return strcmp(x, y);
}

static int dup_entry_cmp(const void *x, const void *y)
{
    const struct dup_entry *e = x;
    const struct dup_entry *f = y;
    int c = nullable_cmp(e->a, f->a);

    if (c == 0)
        c = nullable_cmp(e->b, f->b);
    if (c == 0)
        c = (e->index > f->index) - (e->index < f->index);
    return c;
}

static void dups_mark(struct dups *d)
{
    if (d->n <= INLINE_MEMBERS) {
        /* insertion sort beats qsort on the handful of members most objects have */
        for (size_t i = 1; i < d->n; i++) {
            struct dup_entry e = d->entries[i];
            size_t j = i;
            for (; j > 0 && dup_entry_cmp(&d->entries[j - 1], &e) > 0; j--)
                d->entries[j] = d->entries[j - 1];
            d->entries[j] = e;
        }
    } else {
        qsort(d->entries, d->n, sizeof(*d->entries), dup_entry_cmp);
    }
    for (size_t i = 1; i < d->n; i++) {
        const struct dup_entry *prev = &d->entries[i - 1];
        const struct dup_entry *e = &d->entries[i];
        if (nullable_cmp(prev->a, e->a) == 0 && nullable_cmp(prev->b, e->b) == 0)
            d->first[e->index] = d->first[prev->index];
    }
}

/* ---- the walk ---- */

/* one step of a path: a member's key, or an array index when key is NULL */
struct segment {
    const char *key;
    size_t index;
};

/* every container adds one segment, and a finish callback one more inside its object */
#define PATH_DEPTH (VALIDATOR_MAX_DEPTH + 1)

struct check {
    struct validator_result *r;
    size_t depth;
    /* rendered only when a problem is reported: most payloads have none */
    struct segment path[PATH_DEPTH];
};

static void path_push_key(struct check *c, const char *key)
{
    if (c->depth < PATH_DEPTH)
        c->path[c->depth] = (struct segment){.key = key};
    c->depth++;
}

static void path_push_index(struct check *c, size_t index)
{
    if (c->depth < PATH_DEPTH)
        c->path[c->depth] = (struct segment){.index = index};
    c->depth++;
}

static void path_pop(struct check *c)
{
    c->depth--;
}

static bool is_identifier(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

/* "$" for the root; segments that do not fit in PATH_CAP become "..." */
static const char *path_render(const struct check *c, char *out)
{
    size_t n = 0;
    size_t depth = c->depth < PATH_DEPTH ? c->depth : PATH_DEPTH;

    if (depth == 0)
        return "$";
    for (size_t i = 0; i < depth; i++) {
        const struct segment *s = &c->path[i];
        char seg[QUOTE_CAP + 3];
        size_t len;

        if (!s->key) {
            len = (size_t)snprintf(seg, sizeof(seg), "[%zu]", s->index);
        } else if (is_identifier(s->key) && strlen(s->key) <= QUOTE_MAX) {
            len = (size_t)snprintf(seg, sizeof(seg), "%s%s", i ? "." : "", s->key);
        } else {
            char q[QUOTE_CAP];
            len = (size_t)snprintf(seg, sizeof(seg), "[%s]", quote(q, s->key));
        }
        if (n + len + sizeof("...") > PATH_CAP) {
            memcpy(out + n, "...", sizeof("..."));
            return out;
        }
        memcpy(out + n, seg, len + 1);
        n += len;
    }
    return out;
}

static void DM_PRINTF(2, 3) problem(struct check *c, const char *fmt, ...)
{
    char path[PATH_CAP];
    char message[MESSAGE_CAP];
    va_list ap;

    /* past the limit only the count matters: skip the formatting */
    if (c->r->count == VALIDATOR_MAX_PROBLEMS) {
        c->r->dropped++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    result_add(c->r, path_render(c, path), message);
}

/* What a value is, for "found ..." (buf: QUOTE_CAP + 32 bytes). */
static const char *describe(const struct node *v, char *buf, size_t cap)
{
    char q[QUOTE_CAP];

    if (!v)
        return "nothing (the key is missing)";
    if (node_is(v, NODE_NULL))
        return "null";
    if (node_is(v, NODE_TRUE))
        return "true";
    if (node_is(v, NODE_FALSE))
        return "false";
    if (node_is(v, NODE_NUMBER))
        return "a number";
    if (node_is(v, NODE_ARRAY))
        return v->child ? "an array" : "an empty array";
    if (node_is(v, NODE_OBJECT))
        return "an object";
    if (v->string[0] == '\0')
        return "an empty string";
    if (text_is_blank(v->string))
        return "a blank string (whitespace only)";
    snprintf(buf, cap, "the string %s", quote(q, v->string));
    return buf;
}

static void mismatch(struct check *c, const char *expected, const struct node *found)
{
    char buf[QUOTE_CAP + 32];

    problem(c, "expected %s, found %s", expected, describe(found, buf, sizeof(buf)));
}

enum field_rule {
    FIELD_TEXT,           /* a non-blank string */
    FIELD_STRING,         /* any string */
    FIELD_BOOL,           /* true or false */
    FIELD_CHOICE,         /* one of choices */
    FIELD_CHOICE_OR_NULL, /* null or one of choices */
    FIELD_LIST,           /* an array of objects: list */
    FIELD_OBJECT,         /* an object: shape */
};

struct shape;

struct list {
    const char *expect;  /* the whole array, for messages */
    const char *element; /* one element, for messages */
    bool nonempty;
    const struct shape *shape;
};

struct field {
    const char *key;
    enum field_rule rule;
    bool required;
    const char *const *choices; /* NULL-terminated */
    const struct list *list;
    const struct shape *shape;
};

#define SHAPE_MAX_FIELDS 8

struct shape {
    const struct field *fields;
    size_t nfields;
    /* the element's identity for repeated-element checks, when it has a valid one */
    bool (*identity)(const struct node *obj, const char **a, const char **b);
    /* rules across fields, once all members were seen; first: from the identity check */
    void (*finish)(struct check *c, const struct node *const *found, size_t index,
                   const uint32_t *first);
};

static void object_check(struct check *c, const struct node *obj, const struct shape *s,
                         size_t index, const uint32_t *first);

static const char *choices_text(const struct field *f, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "%s", f->rule == FIELD_CHOICE_OR_NULL ? "null or " : "");

    n += (size_t)snprintf(buf + n, cap - n, "one of");
    for (size_t i = 0; f->choices[i] && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s %s", i ? "," : "", f->choices[i]);
    return buf;
}

static const char *field_expect(const struct field *f, char *buf, size_t cap)
{
    switch (f->rule) {
    case FIELD_TEXT:
        return "a non-blank string";
    case FIELD_STRING:
        return "a string";
    case FIELD_BOOL:
        return "true or false";
    case FIELD_CHOICE:
    case FIELD_CHOICE_OR_NULL:
        return choices_text(f, buf, cap);
    case FIELD_LIST:
        return f->list->expect;
    case FIELD_OBJECT:
        return "an object";
    }
    return "";
}

static void list_check(struct check *c, const struct node *v, const struct list *l)
{
    struct dups d;
    size_t n = 0;
    size_t i = 0;
    const struct node *el;

    if (!node_is(v, NODE_ARRAY) || (l->nonempty && !v->child)) {
        mismatch(c, l->expect, v);
        return;
    }
    for (el = v->child; el; el = el->next)
        n++;
    if (!dups_init(&d, l->shape->identity ? n : 0)) {
        c->r->oom = true;
        return;
    }
    if (l->shape->identity) {
        for (el = v->child; el; el = el->next, i++) {
            const char *a = NULL;
            const char *b = NULL;
            if (node_is(el, NODE_OBJECT) && l->shape->identity(el, &a, &b))
                dups_add(&d, a, b, i);
        }
        dups_mark(&d);
    }
    for (el = v->child, i = 0; el; el = el->next, i++) {
        path_push_index(c, i);
        if (node_is(el, NODE_OBJECT))
            object_check(c, el, l->shape, i, l->shape->identity ? d.first : NULL);
        else
            mismatch(c, l->element, el);
        path_pop(c);
    }
    dups_free(&d);
}

static void field_check(struct check *c, const struct field *f, const struct node *v)
{
    char buf[256];

    switch (f->rule) {
    case FIELD_TEXT:
        if (!is_nonblank_string(v))
            mismatch(c, "a non-blank string", v);
        return;
    case FIELD_STRING:
        if (!node_is(v, NODE_STRING))
            mismatch(c, "a string", v);
        return;
    case FIELD_BOOL:
        if (!node_is(v, NODE_TRUE) && !node_is(v, NODE_FALSE))
            mismatch(c, "true or false", v);
        return;
    case FIELD_CHOICE:
    case FIELD_CHOICE_OR_NULL:
        if (f->rule == FIELD_CHOICE_OR_NULL && node_is(v, NODE_NULL))
            return;
        if (node_is(v, NODE_STRING))
            for (size_t i = 0; f->choices[i]; i++)
                if (strcmp(v->string, f->choices[i]) == 0)
                    return;
        mismatch(c, choices_text(f, buf, sizeof(buf)), v);
        return;
    case FIELD_LIST:
        list_check(c, v, f->list);
        return;
    case FIELD_OBJECT:
        if (node_is(v, NODE_OBJECT))
            object_check(c, v, f->shape, 0, NULL);
        else
            mismatch(c, "an object", v);
        return;
    }
}

static const struct shape any_shape = {0};

/* Values under unknown keys pass through; only their repeated keys are problems. */
static void value_walk(struct check *c, const struct node *v)
{
    size_t i = 0;

    if (node_is(v, NODE_OBJECT)) {
        object_check(c, v, &any_shape, 0, NULL);
        return;
    }
    if (!node_is(v, NODE_ARRAY))
        return;
    for (const struct node *el = v->child; el; el = el->next, i++) {
        path_push_index(c, i);
        value_walk(c, el);
        path_pop(c);
    }
}

/* index of key's field in s, or s->nfields */
static size_t shape_field(const struct shape *s, const char *key)
{
    size_t f = 0;

    /* the first byte settles most comparisons without a call */
    while (f < s->nfields && (s->fields[f].key[0] != key[0] || strcmp(s->fields[f].key, key) != 0))
        f++;
    return f;
}

/* Marks repeated unknown keys of obj; false when out of memory. */
static bool unknown_keys_mark(struct dups *d, const struct node *obj, const struct shape *s)
{
    size_t n = 0;
    size_t i = 0;
    const struct node *m;

    for (m = obj->child; m; m = m->next)
        n++;
    if (!dups_init(d, n))
        return false;
    for (m = obj->child; m; m = m->next, i++)
        if (shape_field(s, m->key) == s->nfields)
            dups_add(d, m->key, NULL, i);
    dups_mark(d);
    return true;
}

static void object_check(struct check *c, const struct node *obj, const struct shape *s,
                         size_t index, const uint32_t *first)
{
    const struct node *found[SHAPE_MAX_FIELDS] = {0};
    struct dups unknown;
    /* a repeated known key shows in found[]; unknown keys are sorted once, when one is met */
    bool unknown_marked = false;
    size_t i = 0;

    for (const struct node *m = obj->child; m; m = m->next, i++) {
        size_t f = shape_field(s, m->key);
        bool repeated;

        if (f < s->nfields) {
            repeated = found[f] != NULL;
        } else {
            if (!unknown_marked && !unknown_keys_mark(&unknown, obj, s)) {
                c->r->oom = true;
                return;
            }
            unknown_marked = true;
            repeated = unknown.first[i] != i;
        }
        path_push_key(c, m->key);
        if (repeated) {
            char q[QUOTE_CAP];
            problem(c, "expected each key at most once in an object, found %s again",
                    quote(q, m->key));
        } else if (f < s->nfields) {
            found[f] = m;
            field_check(c, &s->fields[f], m);
        } else {
            value_walk(c, m);
        }
        path_pop(c);
    }
    if (unknown_marked)
        dups_free(&unknown);

    for (size_t f = 0; f < s->nfields; f++) {
        if (s->fields[f].required && !found[f]) {
            char buf[256];
            path_push_key(c, s->fields[f].key);
            mismatch(c, field_expect(&s->fields[f], buf, sizeof(buf)), NULL);
            path_pop(c);
        }
    }
    if (s->finish)
        s->finish(c, found, index, first);
}

/* ---- the Create Datamart body ---- */

static const char *const tenancy_levels[] = {"TABLE", "DATABASE", NULL};
static const char *const client_column_types[] = {"NUMBER", "STRING", NULL};
static const char *const cardinalities[] = {"ManyToMany", "ManyToOne", "OneToMany", "OneToOne",
                                            NULL};
static const char *const joins[] = {"INNER JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN", NULL};

enum {
    COLUMN_NAME,
    COLUMN_ALIAS,
    COLUMN_LABEL,
    COLUMN_IS_HIDE,
    COLUMN_IS_CUSTOM,
    COLUMN_IS_APPLY_TIMEZONE,
    COLUMN_SQL,
    COLUMN_FIELDS
};

static const struct field column_fields[COLUMN_FIELDS] = {
    [COLUMN_NAME] = {.key = "name", .rule = FIELD_TEXT, .required = true},
    [COLUMN_ALIAS] = {.key = "alias", .rule = FIELD_STRING},
    [COLUMN_LABEL] = {.key = "label", .rule = FIELD_STRING},
    [COLUMN_IS_HIDE] = {.key = "isHide", .rule = FIELD_BOOL},
    [COLUMN_IS_CUSTOM] = {.key = "isCustomColumn", .rule = FIELD_BOOL},
    [COLUMN_IS_APPLY_TIMEZONE] = {.key = "isApplyTimezone", .rule = FIELD_BOOL},
    [COLUMN_SQL] = {.key = "sql", .rule = FIELD_STRING},
};

static bool column_identity(const struct node *obj, const char **a, const char **b)
{
    const struct node *name = node_member(obj, "name");

    *a = is_nonblank_string(name) ? name->string : NULL;
    *b = NULL;
    return *a != NULL;
}

static void column_finish(struct check *c, const struct node *const *found, size_t index,
                          const uint32_t *first)
{
    const struct node *sql = found[COLUMN_SQL];
    char q[QUOTE_CAP];

    if (first[index] != index) {
        path_push_key(c, "name");
        problem(c,
                "expected each column name once in a table, found %s again (first at columns[%u])",
                quote(q, found[COLUMN_NAME]->string), (unsigned)first[index]);
        path_pop(c);
    }
    if (node_is(found[COLUMN_IS_CUSTOM], NODE_TRUE) &&
        (!sql || (node_is(sql, NODE_STRING) && text_is_blank(sql->string)))) {
        path_push_key(c, "sql");
        mismatch(c, "a non-blank SQL expression because isCustomColumn is true", sql);
        path_pop(c);
    }
}

static const struct shape column_shape = {
    .fields = column_fields,
    .nfields = COLUMN_FIELDS,
    .identity = column_identity,
    .finish = column_finish,
};

static const struct list column_list = {
    .expect = "a non-empty array of column objects",
    .element = "a column object",
    .nonempty = true,
    .shape = &column_shape,
};

enum {
    TABLE_NAME,
    TABLE_SCHEMA_NAME,
    TABLE_LABEL,
    TABLE_CLIENT_COLUMN,
    TABLE_IS_HIDE,
    TABLE_COLUMNS,
    TABLE_FIELDS
};

static const struct field table_fields[TABLE_FIELDS] = {
    [TABLE_NAME] = {.key = "name", .rule = FIELD_TEXT, .required = true},
    [TABLE_SCHEMA_NAME] = {.key = "schemaName", .rule = FIELD_TEXT},
    [TABLE_LABEL] = {.key = "label", .rule = FIELD_STRING},
    [TABLE_CLIENT_COLUMN] = {.key = "clientColumn", .rule = FIELD_TEXT},
    [TABLE_IS_HIDE] = {.key = "isHide", .rule = FIELD_BOOL},
    [TABLE_COLUMNS] = {.key = "columns",
                       .rule = FIELD_LIST,
                       .required = true,
                       .list = &column_list},
};

static bool table_identity(const struct node *obj, const char **a, const char **b)
{
    const struct node *schema = node_member(obj, "schemaName");
    const struct node *name = node_member(obj, "name");

    /* a table with a broken schemaName or name already has a problem of its own */
    if (!is_nonblank_string(name) || (schema && !is_nonblank_string(schema)))
        return false;
    *a = schema ? schema->string : NULL;
    *b = name->string;
    return true;
}

static void table_finish(struct check *c, const struct node *const *found, size_t index,
                         const uint32_t *first)
{
    const struct node *schema = found[TABLE_SCHEMA_NAME];
    char name[QUOTE_CAP];
    char in_schema[QUOTE_CAP + 16] = "";

    if (first[index] == index)
        return;
    if (schema)
        snprintf(in_schema, sizeof(in_schema), " in schema %s", quote(name, schema->string));
    problem(c, "expected each table once, found table %s%s again (first at tableList[%u])",
            quote(name, found[TABLE_NAME]->string), in_schema, (unsigned)first[index]);
}

static const struct shape table_shape = {
    .fields = table_fields,
    .nfields = TABLE_FIELDS,
    .identity = table_identity,
    .finish = table_finish,
};

static const struct list table_list = {
    .expect = "a non-empty array of table objects",
    .element = "a table object",
    .nonempty = true,
    .shape = &table_shape,
};

enum {
    TENANCY_LEVEL,
    TENANCY_CLIENT_COLUMN_TYPE,
    TENANCY_SCHEMA_NAME,
    TENANCY_TABLE_NAME,
    TENANCY_CLIENT_NAME_COLUMN,
    TENANCY_PRIMARY_KEY_COLUMN,
    TENANCY_FIELDS
};

static const struct field tenancy_fields[TENANCY_FIELDS] = {
    [TENANCY_LEVEL] = {.key = "tenancyLevel",
                       .rule = FIELD_CHOICE,
                       .required = true,
                       .choices = tenancy_levels},
    [TENANCY_CLIENT_COLUMN_TYPE] = {.key = "clientColumnType",
                                    .rule = FIELD_CHOICE,
                                    .choices = client_column_types},
    [TENANCY_SCHEMA_NAME] = {.key = "schemaName", .rule = FIELD_TEXT},
    [TENANCY_TABLE_NAME] = {.key = "tableName", .rule = FIELD_TEXT},
    [TENANCY_CLIENT_NAME_COLUMN] = {.key = "tableClientNameColumn", .rule = FIELD_TEXT},
    [TENANCY_PRIMARY_KEY_COLUMN] = {.key = "tablePrimaryKeyColumn", .rule = FIELD_TEXT},
};

/* TABLE tenancy names the client-mapping table: every other field becomes required */
static void tenancy_finish(struct check *c, const struct node *const *found, size_t index,
                           const uint32_t *first)
{
    const struct node *level = found[TENANCY_LEVEL];
    char buf[256];
    char expect[320];

    (void)index;
    (void)first;
    if (!node_is(level, NODE_STRING) || strcmp(level->string, "TABLE") != 0)
        return;
    for (size_t f = TENANCY_CLIENT_COLUMN_TYPE; f < TENANCY_FIELDS; f++) {
        if (!found[f]) {
            path_push_key(c, tenancy_fields[f].key);
            snprintf(expect, sizeof(expect), "%s because tenancyLevel is TABLE",
                     field_expect(&tenancy_fields[f], buf, sizeof(buf)));
            mismatch(c, expect, NULL);
            path_pop(c);
        }
    }
}

static const struct shape tenancy_shape = {
    .fields = tenancy_fields,
    .nfields = TENANCY_FIELDS,
    .finish = tenancy_finish,
};

static const struct field relationship_fields[] = {
    {.key = "parentTableName", .rule = FIELD_TEXT, .required = true},
    {.key = "parentColumnName", .rule = FIELD_TEXT, .required = true},
    {.key = "childTableName", .rule = FIELD_TEXT, .required = true},
    {.key = "childColumnName", .rule = FIELD_TEXT, .required = true},
    {.key = "relationshipName", .rule = FIELD_TEXT, .required = true},
    {.key = "cardinality", .rule = FIELD_CHOICE_OR_NULL, .choices = cardinalities},
    {.key = "join", .rule = FIELD_CHOICE_OR_NULL, .choices = joins},
};

static const struct shape relationship_shape = {
    .fields = relationship_fields,
    .nfields = DM_ARRAY_LEN(relationship_fields),
};

static const struct list relationship_list = {
    .expect = "an array of relationship objects",
    .element = "a relationship object",
    .shape = &relationship_shape,
};

enum { BODY_NAME, BODY_DATASOURCE, BODY_TABLES, BODY_TENANCY, BODY_RELATIONSHIPS, BODY_FIELDS };

static const struct field body_fields[BODY_FIELDS] = {
    [BODY_NAME] = {.key = "name", .rule = FIELD_TEXT, .required = true},
    [BODY_DATASOURCE] = {.key = "datasourceName", .rule = FIELD_TEXT, .required = true},
    [BODY_TABLES] = {.key = "tableList", .rule = FIELD_LIST, .required = true, .list = &table_list},
    [BODY_TENANCY] = {.key = "tenancySettings", .rule = FIELD_OBJECT, .shape = &tenancy_shape},
    [BODY_RELATIONSHIPS] = {.key = "relationships", .rule = FIELD_LIST, .list = &relationship_list},
};

static void body_finish(struct check *c, const struct node *const *found, size_t index,
                        const uint32_t *first)
{
    const struct node *name = found[BODY_NAME];

    (void)index;
    (void)first;
    if (is_nonblank_string(name))
        c->r->name = result_store(c->r, name->string, strlen(name->string));
}

static const struct shape body_shape = {
    .fields = body_fields,
    .nfields = BODY_FIELDS,
    .finish = body_finish,
};

/* ---- public API ---- */

/* The number of values in the text when it is JSON, else 0 with the verdict set. */
static size_t result_check_text(struct validator_result *r, const char *buf, size_t len,
                                size_t max_bytes)
{
    /* no arithmetic on a NULL buffer, even with len 0 */
    struct scan s = {.start = (const unsigned char *)(len ? buf : "")};

    if (len > max_bytes) {
        result_not_json(r, "payload exceeds the limit of %zu bytes", max_bytes);
        return 0;
    }
    s.p = s.start;
    s.end = s.start + len;
    scan_space(&s);
    if (s.p == s.end) {
        result_not_json(r, "payload is empty, expected a JSON object");
        return 0;
    }
    s.p = s.start;
    if (scan_json(&s))
        return s.values;
    switch (s.kind) {
    case SCAN_UTF8:
        result_not_json(r, "payload is not valid UTF-8 near byte %zu", (size_t)(s.p - s.start));
        return 0;
    case SCAN_DEPTH:
        result_not_json(r, "payload nests deeper than %d levels near byte %zu", VALIDATOR_MAX_DEPTH,
                        (size_t)(s.p - s.start));
        return 0;
    case SCAN_SYNTAX:
        result_not_json(r, "payload is not valid JSON near byte %zu: %s", (size_t)(s.p - s.start),
                        s.error);
        return 0;
    }
    return 0;
}

struct validator_result *validator_check(const char *buf, size_t len, size_t max_bytes)
{
    struct validator_result *r = calloc(1, sizeof(*r));
    size_t values;

    if (!r)
        return NULL;
    r->name = NO_OFFSET;
    values = result_check_text(r, buf, len, max_bytes ? max_bytes : VALIDATOR_DEFAULT_MAX_BYTES);
    if (r->verdict != VALIDATOR_NOT_JSON) {
        struct check c = {.r = r};
        struct tree t;
        const struct node *root = tree_build(&t, buf, len, values);

        if (!root) {
            tree_free(&t);
            validator_result_free(r);
            return NULL;
        }
        if (node_is(root, NODE_OBJECT))
            object_check(&c, root, &body_shape, 0, NULL);
        else
            mismatch(&c, "a JSON object at the root", root);
        tree_free(&t);
        if (r->count > 0)
            r->verdict = VALIDATOR_INVALID;
    }
    if (r->dropped > 0) {
        char message[64];
        snprintf(message, sizeof(message), "... and %zu more problem%s", r->dropped,
                 r->dropped == 1 ? "" : "s");
        r->problems[r->count].path = result_store(r, "$", 1);
        r->problems[r->count].message = result_store(r, message, strlen(message));
        r->count++;
    }
    if (r->oom) {
        validator_result_free(r);
        return NULL;
    }
    return r;
}

void validator_result_free(struct validator_result *r)
{
    if (!r)
        return;
    free(r->problems);
    free(r->text);
    free(r);
}

enum validator_verdict validator_result_verdict(const struct validator_result *r)
{
    return r->verdict;
}

size_t validator_result_count(const struct validator_result *r)
{
    return r->count;
}

const char *validator_result_path(const struct validator_result *r, size_t i)
{
    return i < r->count ? r->text + r->problems[i].path : NULL;
}

const char *validator_result_message(const struct validator_result *r, size_t i)
{
    return i < r->count ? r->text + r->problems[i].message : NULL;
}

const char *validator_result_name(const struct validator_result *r)
{
    return r->name == NO_OFFSET ? NULL : r->text + r->name;
}

/* dst NULL: only measure */
static size_t emit(char *dst, size_t at, const char *s)
{
    size_t len = strlen(s);

    if (dst)
        memcpy(dst + at, s, len);
    return len;
}

static size_t errors_render(const struct validator_result *r, char *dst)
{
    size_t n = emit(dst, 0, "[");

    for (size_t i = 0; i < r->count; i++) {
        const char *path = validator_result_path(r, i);
        const char *message = validator_result_message(r, i);

        n += emit(dst, n, i ? ",{\"path\":\"" : "{\"path\":\"");
        n += escape_text(dst ? dst + n : NULL, path, strlen(path));
        n += emit(dst, n, "\",\"message\":\"");
        n += escape_text(dst ? dst + n : NULL, message, strlen(message));
        n += emit(dst, n, "\"}");
    }
    return n + emit(dst, n, "]");
}

char *validator_result_errors_json(const struct validator_result *r)
{
    size_t n = errors_render(r, NULL);
    char *out = malloc(n + 1);

    if (!out)
        return NULL;
    errors_render(r, out);
    out[n] = '\0';
    return out;
}
