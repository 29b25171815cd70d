/* jsonw: a small streaming JSON writer that appends to an sr_buf.
 *
 * The writer owns nothing: it borrows the buffer it appends to, and every
 * string it is given is copied into that buffer at once. It places the
 * commas and colons itself, so a caller writes values and keys in order and
 * never splices punctuation by hand:
 *
 *     sr_jw w;
 *     sr_jw_init(&w, &out);
 *     sr_jw_object_begin(&w);
 *     sr_jw_field_str(&w, "id", id);
 *     sr_jw_key(&w, "ids");
 *     sr_jw_array_begin(&w);
 *     for (...) sr_jw_int(&w, n);
 *     sr_jw_array_end(&w);
 *     sr_jw_object_end(&w);
 *
 * Output is compact (no spaces), or spaced for files people read and edit
 * (", " between items, ": " after keys: sr_jw_init_spaced). Strings go through sr_buf_json_str: '"',
 * '\\', \n, \r and \t get their short escapes, other control characters
 * \u00XX, valid UTF-8 is kept as it is and an invalid byte becomes U+FFFD, so
 * the output is always valid JSON. A double that is not finite (NaN, inf)
 * is written as null. The writer does not check the call order (a key
 * outside an object, an unbalanced end): misuse gives invalid JSON, which the
 * unit tests of each caller catch. Nesting deeper than SR_JW_MAX_DEPTH
 * aborts: no answer of ours nests that deep. */
#ifndef SR_JSONW_H
#define SR_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct sr_json;

#define SR_JW_MAX_DEPTH 64

typedef struct sr_jw {
    sr_buf *out;         /* borrowed */
    int depth;           /* open arrays and objects */
    bool after_key;      /* the next value is a member's value: no comma before it */
    bool spaced;         /* ", " and ": " instead of "," and ":" */
    const char *newline; /* the indent of the next item, on a new line after its comma; NULL: none */
    /* has_items[d]: the array/object open at depth d (1-based; 0 is the top
     * level, where a writer may put several values one after the other)
     * already holds an item, so the next one needs a comma. */
    bool has_items[SR_JW_MAX_DEPTH + 1];
} sr_jw;

/* Starts writing to out, after what out already holds (out stays the
 * caller's; the writer keeps a pointer to it). */
void sr_jw_init(sr_jw *w, sr_buf *out);
/* The same, writing ", " between items and ": " after keys. */
void sr_jw_init_spaced(sr_jw *w, sr_buf *out);
/* The next item (value or key) starts on a new line after its comma,
 * indented by indent (a static string, "" for none): one item per line in
 * documents that people read. */
void sr_jw_break(sr_jw *w, const char *indent);

void sr_jw_object_begin(sr_jw *w);
void sr_jw_object_end(sr_jw *w);
void sr_jw_array_begin(sr_jw *w);
void sr_jw_array_end(sr_jw *w);

/* The name of the next member of the open object (NUL-terminated, or len
 * bytes for sr_jw_key_len), escaped like any string. */
void sr_jw_key(sr_jw *w, const char *key);
void sr_jw_key_len(sr_jw *w, const char *key, size_t len);

/* Values. sr_jw_string takes len bytes (NUL allowed, written \u0000);
 * sr_jw_cstr a NUL-terminated string or NULL, written as null. */
void sr_jw_string(sr_jw *w, const char *s, size_t len);
void sr_jw_cstr(sr_jw *w, const char *s);
void sr_jw_int(sr_jw *w, int64_t v);
void sr_jw_uint(sr_jw *w, uint64_t v);
/* The shortest of "%.15g" and "%.17g" that reads back as v (so 0.1 is
 * "0.1", and every double survives a round trip); null when not finite. */
void sr_jw_double(sr_jw *w, double v);
/* v with a printf format of one double conversion ("%.6g", "%.4f"), for
 * answers whose clients rely on a fixed precision; null when not finite. */
void sr_jw_double_fmt(sr_jw *w, const char *fmt, double v);
void sr_jw_bool(sr_jw *w, bool v);
void sr_jw_null(sr_jw *w);
/* A value that is already JSON text (len bytes), written as it is: the
 * caller vouches that it is one valid value. */
void sr_jw_raw(sr_jw *w, const char *json, size_t len);
/* A parsed value (and its children) as compact JSON, as sr_json_write
 * writes it; NULL is written as null. */
void sr_jw_json(sr_jw *w, const struct sr_json *v);

/* Members: the key, then the value (shorthands for the common case). */
void sr_jw_field_str(sr_jw *w, const char *key, const char *s);
void sr_jw_field_strn(sr_jw *w, const char *key, const char *s, size_t len);
void sr_jw_field_int(sr_jw *w, const char *key, int64_t v);
void sr_jw_field_uint(sr_jw *w, const char *key, uint64_t v);
void sr_jw_field_double(sr_jw *w, const char *key, double v);
void sr_jw_field_bool(sr_jw *w, const char *key, bool v);
void sr_jw_field_null(sr_jw *w, const char *key);

#endif
