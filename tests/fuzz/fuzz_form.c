/* Fuzz target for src/codec/form.c (webhook queries and form bodies, the
 * API's query parameters). For arbitrary bytes: the pairs are the non-empty
 * '&' segments split at their first '=' and sr_form_count counts them;
 * decoding never grows text, matches a straightforward reference decoder
 * (the rules of form.h written out byte by byte) and gives the same bytes
 * in place; a pair's raw name satisfies sr_form_name_is of its decoding,
 * and sr_form_find of that decoding finds the first such pair. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/form.h"

/* libFuzzer's entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hex_digit(unsigned char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The reference decoder. */
static size_t reference_unescape(unsigned char *out, const unsigned char *s, size_t len) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') out[o++] = ' ';
        else if (s[i] == '%' && i + 2 < len && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
            out[o++] = (unsigned char)(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
            i += 2;
        } else
            out[o++] = s[i];
    }
    return o;
}

/* Decodes and checks len bytes at s; returns the decoding (malloc'd, NUL-terminated) and its length. */
static char *check_unescape(const char *s, size_t len, size_t *out_len) {
    char *out = malloc(len + 1), *ref = malloc(len + 1), *in_place = malloc(len + 1);
    size_t n = sr_form_unescape(out, s, len);
    if (n > len || n != reference_unescape((unsigned char *)ref, (const unsigned char *)s, len) ||
        memcmp(out, ref, n) != 0)
        abort();
    if (len) memcpy(in_place, s, len);
    if (sr_form_unescape(in_place, in_place, len) != n || memcmp(in_place, out, n) != 0) abort();
    out[n] = '\0';
    free(ref);
    free(in_place);
    *out_len = n;
    return out;
}

static void check_pair(const char *s, size_t size, const sr_form_pair *p) {
    if (p->name < s || p->name + p->name_len > s + size || memchr(p->name, '&', p->name_len) ||
        memchr(p->name, '=', p->name_len) || memchr(p->value, '&', p->value_len))
        abort();
    size_t name_len;
    char *name = check_unescape(p->name, p->name_len, &name_len);
    free(check_unescape(p->value, p->value_len, &(size_t){0}));
    /* Names with a NUL byte cannot be asked for by a C string. */
    if (!memchr(name, '\0', name_len)) {
        if (!sr_form_name_is(p->name, p->name_len, name)) abort();
        sr_form_pair first;
        if (!sr_form_find(s, size, name, &first) || first.name > p->name) abort();
    }
    free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A copy of exactly size bytes, so ASan sees any read past the end. */
    char *s = malloc(size ? size : 1);
    if (size) memcpy(s, data, size);
    size_t pos = 0, pairs = 0, segments = 0;
    sr_form_pair p;
    while (sr_form_next(s, size, &pos, &p)) {
        if (pos > size) abort();
        check_pair(s, size, &p);
        pairs++;
    }
    for (size_t i = 0; i < size;) {
        size_t end = i;
        while (end < size && s[end] != '&') end++;
        if (end > i) segments++;
        i = end + 1;
    }
    if (pairs != segments || sr_form_count(s, size) != pairs) abort();
    free(s);
    return 0;
}
