/* buf: a growable byte buffer.
 *
 * Owns its bytes; sr_buf_free releases them. Appends never fail silently:
 * on allocation failure the process aborts (a gateway that cannot allocate a
 * few bytes cannot keep any promise anyway), which keeps every caller simple. */
#ifndef SR_BUF_H
#define SR_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Copies the string src (NULL: an empty one) into dst of size bytes, cut to fit, always NUL-terminated:
 * snprintf(dst, size, "%s", src) without the cost of reading a format. */
static inline void sr_str_copy(char *dst, size_t size, const char *src) {
    if (size == 0) return;
    size_t n = src ? strnlen(src, size - 1) : 0;
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

typedef struct sr_buf {
    char *data;
    size_t len;
    size_t cap;
} sr_buf;

void sr_buf_init(sr_buf *b);
void sr_buf_free(sr_buf *b);
void sr_buf_reset(sr_buf *b); /* len = 0, keeps capacity */
void sr_buf_reserve(sr_buf *b, size_t extra);
void sr_buf_append(sr_buf *b, const void *data, size_t len);
void sr_buf_puts(sr_buf *b, const char *s);
void sr_buf_putc(sr_buf *b, char c);
void sr_buf_printf(sr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sr_buf_vprintf(sr_buf *b, const char *fmt, va_list ap);
void sr_buf_put_u64(sr_buf *b, uint64_t v);
void sr_buf_put_i64(sr_buf *b, int64_t v);
/* Appends s as a JSON string literal, quotes included. Invalid UTF-8 bytes
 * are replaced by U+FFFD so the output is always valid JSON. */
void sr_buf_json_str(sr_buf *b, const char *s, size_t len);
/* Returns a NUL-terminated view (does not count the NUL in len). */
const char *sr_buf_cstr(sr_buf *b);
/* Takes the bytes out: caller owns the returned pointer (free()), b is reset. */
char *sr_buf_steal(sr_buf *b, size_t *len_out);
/* Appends the whole file at path to out: 0, or -1 with "cannot open PATH: why" or "cannot read PATH" in
 * err. mtime_ms (may be NULL) gets the file's modification time, in ms since the epoch. */
int sr_buf_read_file(sr_buf *out, const char *path, int64_t *mtime_ms, char *err, size_t errlen);

/* FNV-1a (32-bit) of a NUL-terminated string, continuing from h (start
 * with SR_FNV1A_INIT): for the small hash tables of ids and names. */
#define SR_FNV1A_INIT 2166136261u
static inline uint32_t sr_fnv1a_str(uint32_t h, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) h = (h ^ *p) * 16777619u;
    return h;
}

/* Length of the valid UTF-8 sequence at s (1-4 of the n bytes there), or 0 when it is invalid
 * (overlong, a surrogate, past U+10FFFF, cut short): how sr_buf_json_str judges text. */
size_t sr_utf8_seq_len(const unsigned char *s, size_t n);

#endif
