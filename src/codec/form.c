/* form: application/x-www-form-urlencoded pairs and their decoding. See form.h. */
#include "codec/form.h"

#include <string.h>

static int form_hex(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The byte that the escaped text at s[*i] (of len) stands for; moves *i past it. */
static unsigned char form_byte(const char *s, size_t len, size_t *i) {
    unsigned char c = (unsigned char)s[*i];
    if (c == '+') {
        *i += 1;
        return ' ';
    }
    if (c == '%' && len - *i >= 3) {
        int hi = form_hex((unsigned char)s[*i + 1]), lo = form_hex((unsigned char)s[*i + 2]);
        if (hi >= 0 && lo >= 0) {
            *i += 3;
            return (unsigned char)(hi * 16 + lo);
        }
    }
    *i += 1; /* a byte as it is, a lone '%' included */
    return c;
}

bool sr_form_next(const char *s, size_t len, size_t *pos, sr_form_pair *pair) {
    size_t i = *pos;
    while (i < len && s[i] == '&') i++;
    if (i >= len) {
        *pos = len;
        return false;
    }
    const char *amp = memchr(s + i, '&', len - i);
    size_t end = amp ? (size_t)(amp - s) : len;
    const char *eq = memchr(s + i, '=', end - i);
    pair->name = s + i;
    pair->name_len = eq ? (size_t)(eq - (s + i)) : end - i;
    pair->value = eq ? eq + 1 : s + end;
    pair->value_len = eq ? (size_t)(s + end - (eq + 1)) : 0;
    *pos = end;
    return true;
}

size_t sr_form_count(const char *s, size_t len) {
    size_t n = 0, pos = 0;
    sr_form_pair pair;
    while (sr_form_next(s, len, &pos, &pair)) n++;
    return n;
}

size_t sr_form_unescape(char *out, const char *s, size_t len) {
    size_t o = 0;
    /* o never passes i, so out may be s. */
    for (size_t i = 0; i < len;) out[o++] = (char)form_byte(s, len, &i);
    return o;
}

void sr_form_unescape_buf(sr_buf *out, const char *s, size_t len) {
    sr_buf_reserve(out, len + 1);
    out->len += sr_form_unescape(out->data + out->len, s, len);
    out->data[out->len] = '\0';
}

bool sr_form_name_is(const char *s, size_t len, const char *name) {
    size_t i = 0;
    const unsigned char *n = (const unsigned char *)name;
    while (i < len && *n)
        if (form_byte(s, len, &i) != *n++) return false;
    return i == len && *n == '\0';
}

bool sr_form_find(const char *s, size_t len, const char *name, sr_form_pair *pair) {
    size_t pos = 0;
    while (sr_form_next(s, len, &pos, pair))
        if (sr_form_name_is(pair->name, pair->name_len, name)) return true;
    return false;
}

bool sr_form_get(const char *s, size_t len, const char *name, sr_buf *out) {
    sr_form_pair pair;
    if (!sr_form_find(s, len, name, &pair)) return false;
    sr_buf_reset(out);
    sr_form_unescape_buf(out, pair.value, pair.value_len);
    sr_buf_cstr(out);
    return true;
}
