/* json: recursive descent over text[0..len), bounded by SR_JSON_MAX_DEPTH.
 * The text need not be NUL-terminated, so every read checks the end. Nodes
 * and decoded strings are bump-allocated from the document's arena. */
#include "codec/json.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One arena block; nodes and strings are carved from data[] in order. */
struct sr_json_block {
    struct sr_json_block *next;
    size_t cap;  /* bytes in data[] */
    size_t used; /* bytes handed out */
    char data[];
};

/* data[] must be aligned for nodes since the block comes from malloc. */
_Static_assert(offsetof(struct sr_json_block, data) % alignof(sr_json) == 0, "arena block alignment");

#define JSON_BLOCK_MIN ((size_t)2048)
#define JSON_BLOCK_MAX ((size_t)16 << 20)
/* Objects up to this many members are checked for duplicate keys by a linear
 * scan; bigger ones by sorting their keys when they close, so a hostile
 * object with 100 000 keys costs O(n log n), not O(n^2). */
#define JSON_LINEAR_KEYS 32

/* A key remembered for the duplicate check of a big object. */
typedef struct json_key_entry {
    const char *key;
    size_t key_len;
    size_t index;  /* member position in its object, orders equal keys */
    size_t offset; /* byte offset of the key in the text (0 for the first JSON_LINEAR_KEYS) */
} json_key_entry;

typedef struct json_parser {
    const char *text; /* start of the input, for offsets */
    const char *p;    /* next byte to read */
    const char *end;
    sr_json_doc *doc;
    size_t next_block_size;
    char *err;
    size_t errlen;
    int failed;
    /* Stack of keys of the big objects being parsed, innermost on top. */
    json_key_entry *keys;
    size_t keys_len, keys_cap;
} json_parser;

/* Bytes that end the fast scan of a string: '"', '\\' and control characters. */
static const unsigned char json_string_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,         1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, ['"'] = 1, ['\\'] = 1,
};

static const double json_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static void json_fail(json_parser *jp, const char *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Records the first error only: callers unwind by returning NULL/-1, and the
 * innermost message is the precise one. */
static void json_fail(json_parser *jp, const char *at, const char *fmt, ...) {
    if (jp->failed) return;
    jp->failed = 1;
    if (!jp->err || jp->errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(jp->err, jp->errlen, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n < jp->errlen)
        snprintf(jp->err + n, jp->errlen - (size_t)n, " at offset %zu", (size_t)(at - jp->text));
}

/* Reports the byte at `at` (or the end of input). context is appended to
 * the message as is: ", expected ':'" or " after the top-level value". */
static void json_fail_unexpected(json_parser *jp, const char *at, const char *context) {
    if (at >= jp->end) {
        json_fail(jp, jp->end, "unexpected end of input");
        return;
    }
    unsigned char c = (unsigned char)*at;
    if (c >= 0x20 && c < 0x7f) json_fail(jp, at, "unexpected character '%c'%s", c, context);
    else
        json_fail(jp, at, "unexpected byte 0x%02x%s", c, context);
}

/* Size of the first block from the input length: a typical message needs 4
 * to 5 arena bytes per input byte (an 80-byte node per ~20 bytes of text plus
 * the strings), so most documents fit in one malloc. */
static size_t json_first_block_size(size_t text_len) {
    size_t size = text_len < JSON_BLOCK_MAX / 8 ? text_len * 5 + 256 : JSON_BLOCK_MAX;
    return size < JSON_BLOCK_MIN ? JSON_BLOCK_MIN : size;
}

/* Starts a new block that can hold size bytes and returns them, or NULL
 * (error set). The rest of the previous block is left unused. */
static __attribute__((noinline)) void *json_alloc_block(json_parser *jp, size_t size) {
    struct sr_json_block *block;
    size_t cap = jp->next_block_size;
    if (cap < size) cap = size;
    if (cap > SIZE_MAX - sizeof *block || !(block = malloc(sizeof *block + cap))) {
        json_fail(jp, jp->p, "out of memory");
        return NULL;
    }
    block->next = jp->doc->blocks;
    block->cap = cap;
    block->used = size;
    jp->doc->blocks = block;
    jp->next_block_size = jp->next_block_size < JSON_BLOCK_MAX / 2 ? jp->next_block_size * 2 : JSON_BLOCK_MAX;
    return block->data;
}

/* Returns size bytes aligned to align from the arena, or NULL (error set). */
static inline void *json_alloc(json_parser *jp, size_t size, size_t align) {
    struct sr_json_block *block = jp->doc->blocks;
    if (block) {
        size_t at = (block->used + align - 1) & ~(align - 1);
        if (at <= block->cap && size <= block->cap - at) {
            block->used = at + size;
            return block->data + at;
        }
    }
    return json_alloc_block(jp, size);
}

/* Hands back the unused tail of the most recent allocation p of had bytes. */
static void json_shrink_last(json_parser *jp, char *p, size_t had, size_t keep) {
    struct sr_json_block *block = jp->doc->blocks;
    if (p + had == block->data + block->used) block->used -= had - keep;
}

static inline sr_json *json_new_node(json_parser *jp, sr_json_type type) {
    sr_json *node = json_alloc(jp, sizeof *node, alignof(sr_json));
    if (node) *node = (sr_json){.type = type};
    return node;
}

static inline void json_skip_space(json_parser *jp) {
    const char *p = jp->p, *end = jp->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    jp->p = p;
}

static int json_hex4(const unsigned char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/* Writes code point cp (up to 0x10FFFF, surrogates included) as UTF-8. */
static unsigned char *json_put_utf8(unsigned char *d, unsigned cp) {
    if (cp < 0x80) {
        *d++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *d++ = (unsigned char)(0xC0 | cp >> 6);
        *d++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *d++ = (unsigned char)(0xE0 | cp >> 12);
        *d++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        *d++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *d++ = (unsigned char)(0xF0 | cp >> 18);
        *d++ = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
        *d++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        *d++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    return d;
}

/* Decodes the escapes of the raw string body [p, stop) into d, which has room
 * for stop - p bytes: no escape decodes to more bytes than it is written with.
 * Every backslash in [p, stop) is followed by another byte of it, because
 * stop is the first quote that no backslash escapes. Returns the end of the
 * output, or NULL (error set). */
static unsigned char *json_decode_escapes(json_parser *jp, const unsigned char *p, const unsigned char *stop,
                                          unsigned char *d) {
    while (p < stop) {
        if (*p != '\\') {
            const unsigned char *run = p;
            while (p < stop && *p != '\\') p++;
            memcpy(d, run, (size_t)(p - run));
            d += p - run;
            continue;
        }
        unsigned cp, low;
        switch (p[1]) {
        case '"': *d++ = '"'; break;
        case '\\': *d++ = '\\'; break;
        case '/': *d++ = '/'; break;
        case 'b': *d++ = '\b'; break;
        case 'f': *d++ = '\f'; break;
        case 'n': *d++ = '\n'; break;
        case 'r': *d++ = '\r'; break;
        case 't': *d++ = '\t'; break;
        case 'u':
            if (stop - p < 6 || json_hex4(p + 2, &cp) < 0) {
                json_fail(jp, (const char *)p, "invalid \\u escape");
                return NULL;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF && stop - p >= 12 && p[6] == '\\' && p[7] == 'u' &&
                json_hex4(p + 8, &low) == 0 && low >= 0xDC00 && low <= 0xDFFF) {
                d = json_put_utf8(d, 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00));
                p += 12;
            } else {
                /* A lone surrogate keeps its generalized 3-byte form on purpose. */
                d = json_put_utf8(d, cp);
                p += 6;
            }
            continue;
        default: json_fail(jp, (const char *)p, "invalid escape"); return NULL;
        }
        p += 2;
    }
    return d;
}

/* Flags (high bit of the byte) the bytes of w that are '"', '\\' or below
 * 0x20. Each term is the classic "has a zero byte" test: borrows can flag
 * false bytes only above a true one, so the lowest flag is exact. */
static inline uint64_t json_stop_bytes(uint64_t w) {
    const uint64_t ones = UINT64_C(0x0101010101010101), high = UINT64_C(0x8080808080808080);
    uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
    return (((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | ((w - ones * 0x20) & ~w)) & high;
}

/* Returns the first '"', '\\' or control byte in [p, end), or end. */
static inline const unsigned char *json_scan_plain(const unsigned char *p, const unsigned char *end) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* Eight bytes at a time; the lowest flagged byte is the first stop byte. */
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t stops = json_stop_bytes(w);
        if (stops) return p + __builtin_ctzll(stops) / 8;
        p += 8;
    }
#endif
    while (p < end && !json_string_stop[*p]) p++;
    return p;
}

/* Parses the string whose opening quote is at jp->p into a NUL-terminated
 * arena copy. Returns 0, or -1 (error set). */
static int json_parse_string(json_parser *jp, const char **out, size_t *out_len) {
    const unsigned char *start = (const unsigned char *)jp->p + 1;
    const unsigned char *end = (const unsigned char *)jp->end;
    const unsigned char *p = json_scan_plain(start, end);
    if (p < end && *p == '"') {
        size_t n = (size_t)(p - start);
        char *copy = json_alloc(jp, n + 1, 1);
        if (!copy) return -1;
        memcpy(copy, start, n);
        copy[n] = '\0';
        *out = copy;
        *out_len = n;
        jp->p = (const char *)p + 1;
        return 0;
    }
    /* Escapes (or an error): find the closing quote, then decode. */
    const unsigned char *first_escape = p;
    while (p < end && *p != '"') {
        if (*p < 0x20) {
            json_fail(jp, (const char *)p, "control character in string");
            return -1;
        }
        p += *p == '\\' ? 2 : 1;
    }
    if (p >= end) {
        json_fail(jp, jp->end, "unexpected end of input");
        return -1;
    }
    size_t raw_len = (size_t)(p - start);
    unsigned char *copy = json_alloc(jp, raw_len + 1, 1);
    if (!copy) return -1;
    size_t plain = (size_t)(first_escape - start);
    memcpy(copy, start, plain);
    unsigned char *d = json_decode_escapes(jp, first_escape, p, copy + plain);
    if (!d) return -1;
    *d = '\0';
    *out = (const char *)copy;
    *out_len = (size_t)(d - copy);
    json_shrink_last(jp, (char *)copy, raw_len + 1, *out_len + 1);
    jp->p = (const char *)p + 1;
    return 0;
}

static pthread_once_t json_c_locale_once = PTHREAD_ONCE_INIT;
static locale_t json_c_locale;

static void json_c_locale_init(void) { json_c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0); }

/* strtod that ignores the process locale (a "," decimal point would cut
 * "1.5" short). Only used for numbers the exact fast path cannot take. */
static double json_strtod(const char *s) {
    pthread_once(&json_c_locale_once, json_c_locale_init);
    return json_c_locale ? strtod_l(s, NULL, json_c_locale) : strtod(s, NULL);
}

static int json_is_digit(const char *p, const char *end) { return p < end && *p >= '0' && *p <= '9'; }

/* What json_scan_number read of a number: its digits as an integer (when
 * they fit) and its decimal exponent. */
typedef struct json_number_scan {
    uint64_t mantissa;
    int mantissa_exact; /* all significant digits are in mantissa */
    long exponent10;    /* the value is mantissa * 10^exponent10 */
} json_number_scan;

/* Appends the digits at *pp to sc's mantissa; returns how many went in. */
static long json_scan_digits(const char **pp, const char *end, json_number_scan *sc) {
    long taken = 0;
    for (const char *p = *pp; json_is_digit(p, end); p++, *pp = p) {
        if (sc->mantissa < UINT64_MAX / 10) {
            sc->mantissa = sc->mantissa * 10 + (uint64_t)(*p - '0');
            taken++;
        } else {
            sc->mantissa_exact = 0;
        }
    }
    return taken;
}

/* The number's syntax (RFC 8259 6); returns where it ends, or NULL after json_fail. */
static const char *json_scan_number(json_parser *jp, const char *p, json_number_scan *sc) {
    const char *end = jp->end;
    long exponent = 0;
    if (*p == '-') p++;
    if (!json_is_digit(p, end)) goto expected_digit;
    if (*p == '0') {
        p++;
        if (json_is_digit(p, end)) {
            json_fail(jp, p - 1, "leading zero in number");
            return NULL;
        }
    } else {
        json_scan_digits(&p, end, sc);
    }
    if (p < end && *p == '.') {
        p++;
        if (!json_is_digit(p, end)) goto expected_digit;
        sc->exponent10 -= json_scan_digits(&p, end, sc);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int negative = p < end && *p == '-';
        if (p < end && (*p == '-' || *p == '+')) p++;
        if (!json_is_digit(p, end)) goto expected_digit;
        for (; json_is_digit(p, end); p++)
            if (exponent < 100000) exponent = exponent * 10 + (*p - '0');
        sc->exponent10 += negative ? -exponent : exponent;
    }
    return p;
expected_digit:
    json_fail_unexpected(jp, p, ", expected a digit");
    return NULL;
}

static sr_json *json_parse_number(json_parser *jp) {
    const char *start = jp->p;
    json_number_scan sc = {.mantissa_exact = 1};
    const char *p = json_scan_number(jp, start, &sc);
    if (!p) return NULL;
    size_t len = (size_t)(p - start);
    sr_json *node = json_new_node(jp, SR_JSON_NUMBER);
    char *text = node ? json_alloc(jp, len + 1, 1) : NULL;
    if (!text) return NULL;
    memcpy(text, start, len);
    text[len] = '\0';
    node->str = text;
    node->len = len;
    /* Exact fast path: an integer of at most 2^53 times or divided by an
     * exact power of ten (10^22 at most) is one correctly rounded operation,
     * the same result strtod gives. */
    if (sc.mantissa_exact && sc.mantissa <= (UINT64_C(1) << 53) && sc.exponent10 >= -22 && sc.exponent10 <= 22) {
        double v = (double)sc.mantissa;
        v = sc.exponent10 < 0 ? v / json_pow10[-sc.exponent10] : v * json_pow10[sc.exponent10];
        node->num = *start == '-' ? -v : v;
    } else {
        node->num = json_strtod(text);
        if (isinf(node->num)) {
            json_fail(jp, start, "number out of range");
            return NULL;
        }
    }
    jp->p = p;
    return node;
}

static sr_json *json_parse_literal(json_parser *jp, const char *word, size_t word_len, sr_json_type type) {
    const char *p = jp->p;
    for (size_t i = 0; i < word_len; i++) {
        if (p + i >= jp->end || p[i] != word[i]) {
            json_fail_unexpected(jp, p + i, "");
            return NULL;
        }
    }
    jp->p = p + word_len;
    return json_new_node(jp, type);
}

static sr_json *json_parse_value(json_parser *jp, int depth);

static sr_json *json_parse_array(json_parser *jp, int depth) {
    if (depth > SR_JSON_MAX_DEPTH) {
        json_fail(jp, jp->p, "nesting deeper than %d levels", SR_JSON_MAX_DEPTH);
        return NULL;
    }
    sr_json *array = json_new_node(jp, SR_JSON_ARRAY);
    if (!array) return NULL;
    jp->p++;
    json_skip_space(jp);
    if (jp->p < jp->end && *jp->p == ']') {
        jp->p++;
        return array;
    }
    sr_json **tail = &array->child;
    for (;;) {
        sr_json *value = json_parse_value(jp, depth);
        if (!value) return NULL;
        *tail = value;
        tail = &value->next;
        array->count++;
        json_skip_space(jp);
        if (jp->p < jp->end && *jp->p == ',') {
            jp->p++;
        } else if (jp->p < jp->end && *jp->p == ']') {
            jp->p++;
            return array;
        } else {
            json_fail_unexpected(jp, jp->p, ", expected ',' or ']'");
            return NULL;
        }
    }
}

/* Writes key into the error message in a printable, bounded form. */
static void json_fail_duplicate(json_parser *jp, const char *key, size_t key_len, size_t offset) {
    char shown[48];
    size_t n = 0;
    for (size_t i = 0; i < key_len && n < 40; i++) {
        unsigned char c = (unsigned char)key[i];
        shown[n++] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
    }
    if (key_len > 40) {
        memcpy(shown + n, "...", 3);
        n += 3;
    }
    shown[n] = '\0';
    json_fail(jp, jp->text + offset, "duplicate key \"%s\"", shown);
}

static int json_push_key(json_parser *jp, const char *key, size_t key_len, size_t index, size_t offset) {
    if (jp->keys_len == jp->keys_cap) {
        size_t cap = jp->keys_cap ? jp->keys_cap * 2 : 256;
        json_key_entry *keys = realloc(jp->keys, cap * sizeof *keys);
        if (!keys) {
            json_fail(jp, jp->p, "out of memory");
            return -1;
        }
        jp->keys = keys;
        jp->keys_cap = cap;
    }
    jp->keys[jp->keys_len++] = (json_key_entry){key, key_len, index, offset};
    return 0;
}

static int json_compare_keys(const void *a, const void *b) {
    const json_key_entry *x = a, *y = b;
    if (x->key_len != y->key_len) return x->key_len < y->key_len ? -1 : 1;
    int c = memcmp(x->key, y->key, x->key_len);
    if (c) return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Duplicate check of a big object whose keys are jp->keys[base..]: sorts
 * them and reports the first member, in document order, that repeats an
 * earlier key. Pops the keys. Returns 0 or -1 (error set). */
static int json_check_big_object(json_parser *jp, size_t base) {
    json_key_entry *keys = jp->keys + base;
    size_t n = jp->keys_len - base;
    qsort(keys, n, sizeof *keys, json_compare_keys);
    const json_key_entry *first = NULL;
    for (size_t i = 1; i < n; i++) {
        int same = keys[i].key_len == keys[i - 1].key_len && memcmp(keys[i].key, keys[i - 1].key, keys[i].key_len) == 0;
        if (same && (!first || keys[i].index < first->index)) first = &keys[i];
    }
    jp->keys_len = base;
    if (first) {
        json_fail_duplicate(jp, first->key, first->key_len, first->offset);
        return -1;
    }
    return 0;
}

/* A cheap fingerprint of a key: equal keys have equal signatures, so the
 * linear duplicate scan compares words in a local array and looks at the
 * members themselves only on a match. */
static inline uint64_t json_key_signature(const char *key, size_t key_len) {
    const unsigned char *k = (const unsigned char *)key; /* NUL-terminated: k[0] is always readable */
    uint64_t sig = (uint64_t)key_len | (uint64_t)k[0] << 32;
    if (key_len) sig |= (uint64_t)k[key_len / 2] << 40 | (uint64_t)k[key_len - 1] << 48;
    return sig;
}

/* Checks a new key against the members so far. The first JSON_LINEAR_KEYS
 * members are scanned linearly by signature (signatures[] holds theirs);
 * from then on keys go on jp->keys and are checked when the object closes.
 * Returns 0 or -1 (error set). */
static int json_check_key(json_parser *jp, const sr_json *object, uint64_t *signatures, const char *key, size_t key_len,
                          size_t offset) {
    size_t count = object->count;
    if (count < JSON_LINEAR_KEYS) {
        uint64_t sig = json_key_signature(key, key_len);
        for (size_t i = 0; i < count; i++) {
            if (signatures[i] != sig) continue;
            const sr_json *m = object->child;
            for (size_t j = 0; j < i; j++) m = m->next;
            if (m->key_len == key_len && memcmp(m->key, key, key_len) == 0) {
                json_fail_duplicate(jp, key, key_len, offset);
                return -1;
            }
        }
        signatures[count] = sig;
        return 0;
    }
    if (count == JSON_LINEAR_KEYS) {
        /* The first members are known distinct: their offsets never get reported. */
        size_t index = 0;
        for (const sr_json *m = object->child; m; m = m->next)
            if (json_push_key(jp, m->key, m->key_len, index++, 0) < 0) return -1;
    }
    return json_push_key(jp, key, key_len, count, offset);
}

static sr_json *json_parse_object(json_parser *jp, int depth) {
    if (depth > SR_JSON_MAX_DEPTH) {
        json_fail(jp, jp->p, "nesting deeper than %d levels", SR_JSON_MAX_DEPTH);
        return NULL;
    }
    sr_json *object = json_new_node(jp, SR_JSON_OBJECT);
    if (!object) return NULL;
    size_t keys_base = jp->keys_len;
    uint64_t signatures[JSON_LINEAR_KEYS];
    jp->p++;
    json_skip_space(jp);
    if (jp->p < jp->end && *jp->p == '}') {
        jp->p++;
        return object;
    }
    sr_json **tail = &object->child;
    for (;;) {
        json_skip_space(jp);
        if (jp->p >= jp->end || *jp->p != '"') {
            json_fail_unexpected(jp, jp->p, ", expected a string key");
            return NULL;
        }
        size_t key_offset = (size_t)(jp->p - jp->text);
        const char *key;
        size_t key_len;
        if (json_parse_string(jp, &key, &key_len) < 0) return NULL;
        /* Keys are names, read as C strings everywhere: "to\u0000x" would pass
         * for "to" in a strcmp (and a second "route" in a stored record). */
        if (memchr(key, '\0', key_len)) {
            json_fail(jp, jp->text + key_offset, "a key holds U+0000");
            return NULL;
        }
        if (json_check_key(jp, object, signatures, key, key_len, key_offset) < 0) return NULL;
        json_skip_space(jp);
        if (jp->p >= jp->end || *jp->p != ':') {
            json_fail_unexpected(jp, jp->p, ", expected ':'");
            return NULL;
        }
        jp->p++;
        sr_json *value = json_parse_value(jp, depth);
        if (!value) return NULL;
        value->key = key;
        value->key_len = key_len;
        *tail = value;
        tail = &value->next;
        object->count++;
        json_skip_space(jp);
        if (jp->p < jp->end && *jp->p == ',') {
            jp->p++;
        } else if (jp->p < jp->end && *jp->p == '}') {
            jp->p++;
            if (object->count > JSON_LINEAR_KEYS && json_check_big_object(jp, keys_base) < 0) return NULL;
            return object;
        } else {
            json_fail_unexpected(jp, jp->p, ", expected ',' or '}'");
            return NULL;
        }
    }
}

/* depth counts the arrays/objects around the value. Recursion is bounded by
 * SR_JSON_MAX_DEPTH. */
static sr_json *json_parse_value(json_parser *jp, int depth) {
    json_skip_space(jp);
    if (jp->p >= jp->end) {
        json_fail_unexpected(jp, jp->p, "");
        return NULL;
    }
    switch (*jp->p) {
    case '{': return json_parse_object(jp, depth + 1);
    case '[': return json_parse_array(jp, depth + 1);
    case '"': {
        sr_json *node = json_new_node(jp, SR_JSON_STRING);
        if (!node || json_parse_string(jp, &node->str, &node->len) < 0) return NULL;
        return node;
    }
    case 't': return json_parse_literal(jp, "true", 4, SR_JSON_TRUE);
    case 'f': return json_parse_literal(jp, "false", 5, SR_JSON_FALSE);
    case 'n': return json_parse_literal(jp, "null", 4, SR_JSON_NULL);
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9': return json_parse_number(jp);
    default: json_fail_unexpected(jp, jp->p, ""); return NULL;
    }
}

int sr_json_parse(sr_json_doc *doc, const char *text, size_t len, char *err, size_t errlen) {
    if (!text) {
        text = "";
        len = 0;
    }
    doc->root = NULL;
    doc->blocks = NULL;
    if (err && errlen) err[0] = '\0';
    json_parser jp = {
        .text = text,
        .p = text,
        .end = text + len,
        .doc = doc,
        .next_block_size = json_first_block_size(len),
        .err = err,
        .errlen = errlen,
    };
    sr_json *root = json_parse_value(&jp, 0);
    if (root) {
        json_skip_space(&jp);
        if (jp.p < jp.end) json_fail_unexpected(&jp, jp.p, " after the top-level value");
    }
    free(jp.keys);
    if (jp.failed) {
        sr_json_doc_free(doc);
        return -1;
    }
    doc->root = root;
    return 0;
}

void sr_json_doc_free(sr_json_doc *doc) {
    struct sr_json_block *block = doc->blocks;
    while (block) {
        struct sr_json_block *next = block->next;
        free(block);
        block = next;
    }
    doc->blocks = NULL;
    doc->root = NULL;
}

sr_json *sr_json_get_len(const sr_json *obj, const char *key, size_t key_len) {
    if (!obj || obj->type != SR_JSON_OBJECT || !key) return NULL;
    for (sr_json *m = obj->child; m; m = m->next)
        if (m->key_len == key_len && memcmp(m->key, key, key_len) == 0) return m;
    return NULL;
}

sr_json *sr_json_get(const sr_json *obj, const char *key) {
    return key ? sr_json_get_len(obj, key, strlen(key)) : NULL;
}

int sr_json_is_integer(const sr_json *v, int64_t *out) {
    if (!v || v->type != SR_JSON_NUMBER || !v->str) return 0;
    const char *p = v->str, *end = v->str + v->len;
    int negative = p < end && *p == '-';
    if (negative) p++;
    if (p == end) return 0;
    /* Magnitude as uint64; the limit is INT64_MAX, or one more for negatives. */
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t value = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') return 0;
        unsigned digit = (unsigned)(*p - '0');
        if (value > (limit - digit) / 10) return 0;
        value = value * 10 + digit;
    }
    if (out) *out = negative ? (int64_t)(0 - value) : (int64_t)value;
    return 1;
}

void sr_json_write(sr_buf *out, const sr_json *v) {
    if (!v) {
        sr_buf_append(out, "null", 4);
        return;
    }
    switch (v->type) {
    case SR_JSON_NULL: sr_buf_append(out, "null", 4); break;
    case SR_JSON_FALSE: sr_buf_append(out, "false", 5); break;
    case SR_JSON_TRUE: sr_buf_append(out, "true", 4); break;
    case SR_JSON_NUMBER: sr_buf_append(out, v->str, v->len); break;
    case SR_JSON_STRING: sr_buf_json_str(out, v->str, v->len); break;
    case SR_JSON_ARRAY:
        sr_buf_putc(out, '[');
        for (const sr_json *c = v->child; c; c = c->next) {
            if (c != v->child) sr_buf_putc(out, ',');
            sr_json_write(out, c);
        }
        sr_buf_putc(out, ']');
        break;
    case SR_JSON_OBJECT:
        sr_buf_putc(out, '{');
        for (const sr_json *c = v->child; c; c = c->next) {
            if (c != v->child) sr_buf_putc(out, ',');
            sr_buf_json_str(out, c->key ? c->key : "", c->key ? c->key_len : 0);
            sr_buf_putc(out, ':');
            sr_json_write(out, c);
        }
        sr_buf_putc(out, '}');
        break;
    }
}
