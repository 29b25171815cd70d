/* jsonw: commas come from a flag per open level; the bytes from sr_buf. */
#include "codec/jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"

void sr_jw_init(sr_jw *w, sr_buf *out) {
    memset(w, 0, sizeof *w);
    w->out = out;
}

void sr_jw_init_spaced(sr_jw *w, sr_buf *out) {
    sr_jw_init(w, out);
    w->spaced = true;
}

void sr_jw_break(sr_jw *w, const char *indent) { w->newline = indent; }

/* Before every value and key: a comma unless this is the first item of its
 * level or the value of the key just written. */
static void jw_item(sr_jw *w) {
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->has_items[w->depth]) sr_buf_puts(w->out, w->spaced && !w->newline ? ", " : ",");
    w->has_items[w->depth] = true;
    if (w->newline) {
        sr_buf_putc(w->out, '\n');
        sr_buf_puts(w->out, w->newline);
        w->newline = NULL;
    }
}

static void jw_open(sr_jw *w, char c) {
    jw_item(w);
    if (w->depth >= SR_JW_MAX_DEPTH) abort(); /* a bug in the caller, not input */
    w->depth++;
    w->has_items[w->depth] = false;
    sr_buf_putc(w->out, c);
}

static void jw_close(sr_jw *w, char c) {
    if (w->depth > 0) w->depth--;
    sr_buf_putc(w->out, c);
}

void sr_jw_object_begin(sr_jw *w) { jw_open(w, '{'); }
void sr_jw_object_end(sr_jw *w) { jw_close(w, '}'); }
void sr_jw_array_begin(sr_jw *w) { jw_open(w, '['); }
void sr_jw_array_end(sr_jw *w) { jw_close(w, ']'); }

void sr_jw_key_len(sr_jw *w, const char *key, size_t len) {
    jw_item(w);
    sr_buf_json_str(w->out, key, len);
    sr_buf_puts(w->out, w->spaced ? ": " : ":");
    w->after_key = true;
}

void sr_jw_key(sr_jw *w, const char *key) { sr_jw_key_len(w, key, strlen(key)); }

void sr_jw_string(sr_jw *w, const char *s, size_t len) {
    jw_item(w);
    sr_buf_json_str(w->out, s, len);
}

void sr_jw_cstr(sr_jw *w, const char *s) {
    if (s) sr_jw_string(w, s, strlen(s));
    else
        sr_jw_null(w);
}

void sr_jw_int(sr_jw *w, int64_t v) {
    jw_item(w);
    sr_buf_put_i64(w->out, v);
}

void sr_jw_uint(sr_jw *w, uint64_t v) {
    jw_item(w);
    sr_buf_put_u64(w->out, v);
}

void sr_jw_double(sr_jw *w, double v) {
    if (!isfinite(v)) {
        sr_jw_null(w);
        return;
    }
    char text[32];
    snprintf(text, sizeof text, "%.15g", v);
    if (strtod(text, NULL) != v) snprintf(text, sizeof text, "%.17g", v);
    sr_jw_raw(w, text, strlen(text));
}

void sr_jw_double_fmt(sr_jw *w, const char *fmt, double v) {
    if (!isfinite(v)) {
        sr_jw_null(w);
        return;
    }
    char text[64];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    int n = snprintf(text, sizeof text, fmt, v);
#pragma GCC diagnostic pop
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof text) n = (int)sizeof text - 1;
    sr_jw_raw(w, text, (size_t)n);
}

void sr_jw_bool(sr_jw *w, bool v) {
    if (v) sr_jw_raw(w, "true", 4);
    else
        sr_jw_raw(w, "false", 5);
}

void sr_jw_null(sr_jw *w) { sr_jw_raw(w, "null", 4); }

void sr_jw_raw(sr_jw *w, const char *json, size_t len) {
    jw_item(w);
    sr_buf_append(w->out, json, len);
}

void sr_jw_json(sr_jw *w, const sr_json *v) {
    jw_item(w);
    sr_json_write(w->out, v);
}

void sr_jw_field_str(sr_jw *w, const char *key, const char *s) {
    sr_jw_key(w, key);
    sr_jw_cstr(w, s);
}

void sr_jw_field_strn(sr_jw *w, const char *key, const char *s, size_t len) {
    sr_jw_key(w, key);
    if (s) sr_jw_string(w, s, len);
    else
        sr_jw_null(w);
}

void sr_jw_field_int(sr_jw *w, const char *key, int64_t v) {
    sr_jw_key(w, key);
    sr_jw_int(w, v);
}

void sr_jw_field_uint(sr_jw *w, const char *key, uint64_t v) {
    sr_jw_key(w, key);
    sr_jw_uint(w, v);
}

void sr_jw_field_double(sr_jw *w, const char *key, double v) {
    sr_jw_key(w, key);
    sr_jw_double(w, v);
}

void sr_jw_field_bool(sr_jw *w, const char *key, bool v) {
    sr_jw_key(w, key);
    sr_jw_bool(w, v);
}

void sr_jw_field_null(sr_jw *w, const char *key) {
    sr_jw_key(w, key);
    sr_jw_null(w);
}
