#include "core/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void sr_buf_init(sr_buf *b) {
    b->data = NULL;
    b->len = b->cap = 0;
}

void sr_buf_free(sr_buf *b) {
    free(b->data);
    sr_buf_init(b);
}

void sr_buf_reset(sr_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void sr_buf_reserve(sr_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        fputs("smsrules: out of memory\n", stderr);
        abort();
    }
    b->data = p;
    b->cap = cap;
}

void sr_buf_append(sr_buf *b, const void *data, size_t len) {
    sr_buf_reserve(b, len);
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void sr_buf_puts(sr_buf *b, const char *s) { sr_buf_append(b, s, strlen(s)); }

void sr_buf_putc(sr_buf *b, char c) {
    sr_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void sr_buf_vprintf(sr_buf *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return;
    sr_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void sr_buf_printf(sr_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sr_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void sr_buf_put_u64(sr_buf *b, uint64_t v) {
    char tmp[24];
    int i = (int)sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sr_buf_append(b, tmp + i, sizeof tmp - (size_t)i);
}

void sr_buf_put_i64(sr_buf *b, int64_t v) {
    if (v < 0) {
        sr_buf_putc(b, '-');
        sr_buf_put_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        sr_buf_put_u64(b, (uint64_t)v);
    }
}

size_t sr_utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned min;
    if ((c & 0xE0) == 0xC0) {
        len = 2;
        min = 0x80;
        c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        min = 0x800;
        c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        min = 0x10000;
        c &= 0x07;
    } else
        return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    return len;
}

void sr_buf_json_str(sr_buf *b, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    sr_buf_reserve(b, len + 2);
    sr_buf_putc(b, '"');
    size_t i = 0;
    while (i < len) {
        size_t run = i;
        while (run < len && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\') run++;
        if (run > i) {
            sr_buf_append(b, p + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t n = sr_utf8_seq_len(p + i, len - i);
            if (n == 0) {
                sr_buf_append(b, "\xEF\xBF\xBD", 3);
                i++;
            } else {
                sr_buf_append(b, p + i, n);
                i += n;
            }
            continue;
        }
        switch (c) {
        case '"': sr_buf_append(b, "\\\"", 2); break;
        case '\\': sr_buf_append(b, "\\\\", 2); break;
        case '\n': sr_buf_append(b, "\\n", 2); break;
        case '\r': sr_buf_append(b, "\\r", 2); break;
        case '\t': sr_buf_append(b, "\\t", 2); break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            sr_buf_append(b, esc, 6);
        }
        }
        i++;
    }
    sr_buf_putc(b, '"');
}

const char *sr_buf_cstr(sr_buf *b) {
    if (!b->data) sr_buf_reserve(b, 0), b->data[0] = '\0';
    return b->data;
}

char *sr_buf_steal(sr_buf *b, size_t *len_out) {
    sr_buf_cstr(b);
    char *p = b->data;
    if (len_out) *len_out = b->len;
    sr_buf_init(b);
    return p;
}

int sr_buf_read_file(sr_buf *out, const char *path, int64_t *mtime_ms, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        if (f) fclose(f);
        return -1;
    }
    if (mtime_ms) *mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) sr_buf_append(out, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "cannot read %s", path);
        return -1;
    }
    return 0;
}
