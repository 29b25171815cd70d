#include "codec/template.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>

#include "codec/json.h"

/* Longest accepted array index, in digits: up to INT_MAX, which covers any
 * array that fits in memory and keeps the value in a plain int. */
#define TEMPLATE_INDEX_MAX_DIGITS 10

/* One piece of a compiled template: a literal span or a variable. */
typedef struct {
    const char *text; /* literal: its bytes, in the pool (set when compiling ends) */
    size_t offset;    /* literal: where text starts in the pool while compiling */
    size_t len;       /* literal: its length */
    int var;          /* -1 for a literal, else the index in vars */
} template_part;

typedef struct {
    const char *name;            /* "order.number", NUL-terminated, in the pool */
    const char *const *segments; /* count pointers into t->segments */
    int count;
} template_var;

struct sr_template {
    template_part *parts;
    int part_count;
    template_var *vars; /* distinct paths, in order of first appearance */
    int var_count;
    const char **segments; /* every var's segments, one contiguous run per var */
    char *pool;            /* literal bytes, names and split segments */
};

/* A variable while compiling: positions in the pool, which may still move. */
typedef struct {
    size_t name_offset;
    size_t name_len;
    int first_segment;
    int count;
} template_builder_var;

/* Everything sr_template_compile accumulates before it knows the final sizes.
 * Offsets, not pointers, because the pool grows by realloc. */
typedef struct {
    sr_buf pool;
    template_part *parts;
    int part_count, part_cap;
    template_builder_var *vars;
    int var_count, var_cap;
    size_t *segments; /* pool offsets of NUL-terminated segments */
    int segment_count, segment_cap;
    int *slots; /* hash table of vars by name: var index + 1, 0 when empty */
    size_t slot_count;
} template_builder;

/* ---- small helpers ------------------------------------------------------ */

/* Makes room for one more element in *array (of *cap elements of size elem).
 * Allocation failure aborts, as in buf.c: a process that cannot allocate a few
 * bytes cannot keep any promise anyway. */
static void template_grow(void **array, int *cap, int count, size_t elem) {
    if (count < *cap) return;
    int new_cap = *cap ? *cap * 2 : 8;
    void *p = realloc(*array, (size_t)new_cap * elem);
    if (!p) {
        fputs("smsrules: out of memory\n", stderr);
        abort();
    }
    *array = p;
    *cap = new_cap;
}

static int template_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int template_digit(char c) { return c >= '0' && c <= '9'; }

static int template_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || template_digit(c);
}

/* When s is an array index segment (digits, no leading zero, 1..INT_MAX)
 * returns 1 and stores its value; else returns 0. */
static int template_index(const char *s, int *value) {
    if (s[0] < '1' || s[0] > '9') return 0;
    long long n = 0;
    for (int i = 0; s[i]; i++) {
        if (!template_digit(s[i]) || i >= TEMPLATE_INDEX_MAX_DIGITS) return 0;
        n = n * 10 + (s[i] - '0');
    }
    if (n > INT_MAX) return 0;
    *value = (int)n;
    return 1;
}

static void template_error(char *err, size_t errlen, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes "offset N: <message>" into err (when there is one). */
static void template_error(char *err, size_t errlen, size_t offset, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    int n = snprintf(err, errlen, "offset %zu: ", offset);
    if (n < 0 || (size_t)n >= errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Describes the byte c for an error message: 'x' when printable ASCII, else
 * its hexadecimal value, so the message stays readable plain ASCII. */
static const char *template_describe(char c, char buf[16]) {
    unsigned char u = (unsigned char)c;
    if (u >= 0x20 && u < 0x7f && u != '\'') snprintf(buf, 16, "character '%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02X", u);
    return buf;
}

/* FNV-1a: good enough to spread a few thousand short paths. */
static size_t template_hash(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

/* ---- compiling ---------------------------------------------------------- */

static void template_builder_free(template_builder *b) {
    sr_buf_free(&b->pool);
    free(b->parts);
    free(b->vars);
    free(b->segments);
    free(b->slots);
}

/* Appends literal bytes, extending the previous literal part when it ends
 * where the pool ends (text around an escape stays one span). */
static void template_add_literal(template_builder *b, const char *s, size_t len) {
    if (len == 0) return;
    template_part *last = b->part_count ? &b->parts[b->part_count - 1] : NULL;
    if (!last || last->var >= 0 || last->offset + last->len != b->pool.len) {
        template_grow((void **)&b->parts, &b->part_cap, b->part_count, sizeof *b->parts);
        last = &b->parts[b->part_count++];
        last->text = NULL;
        last->offset = b->pool.len;
        last->len = 0;
        last->var = -1;
    }
    sr_buf_append(&b->pool, s, len);
    last->len += len;
}

/* Rebuilds the name hash table with room for twice the current vars. */
static void template_rehash(template_builder *b) {
    size_t slot_count = b->slot_count ? b->slot_count * 2 : 32;
    int *slots = calloc(slot_count, sizeof *slots);
    if (!slots) {
        fputs("smsrules: out of memory\n", stderr);
        abort();
    }
    for (int v = 0; v < b->var_count; v++) {
        const template_builder_var *var = &b->vars[v];
        size_t h = template_hash(b->pool.data + var->name_offset, var->name_len) & (slot_count - 1);
        while (slots[h]) h = (h + 1) & (slot_count - 1);
        slots[h] = v + 1;
    }
    free(b->slots);
    b->slots = slots;
    b->slot_count = slot_count;
}

/* Returns the index of the var for path name[0..len) (already validated),
 * adding it, its NUL-terminated name and its split segments on first use. */
static int template_intern_var(template_builder *b, const char *name, size_t len) {
    if ((size_t)(b->var_count + 1) * 2 > b->slot_count) template_rehash(b);
    size_t h = template_hash(name, len) & (b->slot_count - 1);
    while (b->slots[h]) {
        const template_builder_var *var = &b->vars[b->slots[h] - 1];
        if (var->name_len == len && memcmp(b->pool.data + var->name_offset, name, len) == 0) return b->slots[h] - 1;
        h = (h + 1) & (b->slot_count - 1);
    }

    template_grow((void **)&b->vars, &b->var_cap, b->var_count, sizeof *b->vars);
    template_builder_var *var = &b->vars[b->var_count];
    var->name_offset = b->pool.len;
    var->name_len = len;
    var->first_segment = b->segment_count;
    var->count = 0;
    sr_buf_append(&b->pool, name, len);
    sr_buf_putc(&b->pool, '\0');
    /* The segments follow as a second copy with every '.' turned into NUL. */
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && name[i] != '.') continue;
        template_grow((void **)&b->segments, &b->segment_cap, b->segment_count, sizeof *b->segments);
        b->segments[b->segment_count++] = b->pool.len;
        sr_buf_append(&b->pool, name + start, i - start);
        sr_buf_putc(&b->pool, '\0');
        var->count++;
        start = i + 1;
    }
    b->slots[h] = b->var_count + 1;
    return b->var_count++;
}

/* Parses the placeholder whose "{{" is at src[open] and adds it as a var
 * part. Returns 0 and the offset just past its "}}" in *next, or -1 with err.
 * long: one left-to-right scan of the placeholder's grammar (spaces, path
 * segments, indexes, the closing braces), each branch with the error it owes;
 * cut apart, the position and the segment state would travel through every
 * piece. */
static int template_parse_placeholder(template_builder *b, const char *src, size_t len, size_t open, size_t *next,
                                      char *err, size_t errlen) {
    char what[16];
    /* The placeholder ends at the first "}}"; a "{{" before it means this one
     * was never closed (most likely the author forgot its braces). */
    size_t close = SIZE_MAX;
    for (size_t k = open + 2; k + 1 < len; k++) {
        if (src[k] == '}' && src[k + 1] == '}') {
            close = k;
            break;
        }
        if (src[k] == '{' && src[k + 1] == '{') break;
    }
    if (close == SIZE_MAX) {
        template_error(err, errlen, open, "unclosed '{{' (write \\{{ for a literal '{{')");
        return -1;
    }

    size_t k = open + 2;
    while (k < close && template_space(src[k])) k++;
    if (k == close) {
        template_error(err, errlen, open, "empty placeholder '{{}}'");
        return -1;
    }
    size_t path_start = k;
    for (;;) {
        size_t segment = k;
        while (k < close && template_name_char(src[k])) k++;
        size_t segment_len = k - segment;
        if (segment_len == 0) {
            if (k == close || src[k] == '.' || template_space(src[k]))
                template_error(err, errlen, k, "expected a name or an array index in the path");
            else
                template_error(err, errlen, k, "unexpected %s in placeholder", template_describe(src[k], what));
            return -1;
        }
        if (template_digit(src[segment])) {
            for (size_t i = segment; i < k; i++) {
                if (!template_digit(src[i])) {
                    template_error(err, errlen, segment, "bad path segment '%.*s': a name starts with a letter or '_'",
                                   (int)segment_len, src + segment);
                    return -1;
                }
            }
            if (src[segment] == '0') {
                template_error(err, errlen, segment,
                               "bad array index '%.*s': indexes start at 1, without leading zeros", (int)segment_len,
                               src + segment);
                return -1;
            }
            /* Checked here, so a lookup can rely on template_index. */
            char digits[TEMPLATE_INDEX_MAX_DIGITS + 1];
            int value;
            size_t copied = segment_len < TEMPLATE_INDEX_MAX_DIGITS ? segment_len : TEMPLATE_INDEX_MAX_DIGITS;
            memcpy(digits, src + segment, copied);
            digits[copied] = '\0';
            if (segment_len > TEMPLATE_INDEX_MAX_DIGITS || !template_index(digits, &value)) {
                template_error(err, errlen, segment, "array index too large");
                return -1;
            }
        }
        if (k < close && src[k] == '.') {
            k++;
            continue;
        }
        break;
    }
    size_t path_end = k;
    while (k < close && template_space(src[k])) k++;
    if (k != close && k > path_end && (src[k] == '.' || template_name_char(src[k]))) {
        template_error(err, errlen, path_end, "unexpected whitespace in the path");
        return -1;
    }
    if (k != close) {
        template_error(err, errlen, k, "unexpected %s in placeholder (expected '.' or '}}')",
                       template_describe(src[k], what));
        return -1;
    }

    int var = template_intern_var(b, src + path_start, path_end - path_start);
    template_grow((void **)&b->parts, &b->part_cap, b->part_count, sizeof *b->parts);
    template_part *part = &b->parts[b->part_count++];
    part->text = NULL;
    part->offset = 0;
    part->len = 0;
    part->var = var;
    *next = close + 2;
    return 0;
}

int sr_template_compile(const char *src, size_t len, sr_template **out, char *err, size_t errlen) {
    template_builder b;
    memset(&b, 0, sizeof b);
    sr_buf_init(&b.pool);
    sr_template *t = NULL;
    *out = NULL;
    if (err && errlen) err[0] = '\0';

    if (len > SR_TEMPLATE_MAX_SOURCE) {
        template_error(err, errlen, (size_t)SR_TEMPLATE_MAX_SOURCE, "template longer than %d bytes",
                       SR_TEMPLATE_MAX_SOURCE);
        goto fail;
    }
    for (size_t i = 0; i < len;) {
        if (src[i] == '\\' && len - i >= 3 && src[i + 1] == '{' && src[i + 2] == '{') {
            template_add_literal(&b, "{{", 2);
            i += 3;
        } else if (src[i] == '{' && len - i >= 2 && src[i + 1] == '{') {
            if (template_parse_placeholder(&b, src, len, i, &i, err, errlen) < 0) goto fail;
        } else {
            size_t j = i + 1;
            while (j < len && src[j] != '\\' && src[j] != '{') j++;
            template_add_literal(&b, src + i, j - i);
            i = j;
        }
    }

    t = calloc(1, sizeof *t);
    if (!t) goto oom;
    if (b.var_count) {
        t->vars = calloc((size_t)b.var_count, sizeof *t->vars);
        t->segments = calloc((size_t)b.segment_count, sizeof *t->segments);
        if (!t->vars || !t->segments) goto oom;
    }
    /* The pool is final now: turn offsets into pointers. */
    t->pool = sr_buf_steal(&b.pool, NULL);
    for (int i = 0; i < b.segment_count; i++) t->segments[i] = t->pool + b.segments[i];
    for (int v = 0; v < b.var_count; v++) {
        t->vars[v].name = t->pool + b.vars[v].name_offset;
        t->vars[v].segments = t->segments + b.vars[v].first_segment;
        t->vars[v].count = b.vars[v].count;
    }
    t->var_count = b.var_count;
    for (int i = 0; i < b.part_count; i++)
        if (b.parts[i].var < 0) b.parts[i].text = t->pool + b.parts[i].offset;
    t->parts = b.parts; /* ownership moves to t */
    t->part_count = b.part_count;
    b.parts = NULL;
    template_builder_free(&b);
    *out = t;
    return 0;

oom:
    template_error(err, errlen, 0, "out of memory");
fail:
    sr_template_free(t);
    template_builder_free(&b);
    return -1;
}

void sr_template_free(sr_template *t) {
    if (!t) return;
    free(t->parts);
    free(t->vars);
    free(t->segments);
    free(t->pool);
    free(t);
}

int sr_template_var_count(const sr_template *t) { return t->var_count; }

const char *sr_template_var(const sr_template *t, int i) {
    if (i < 0 || i >= t->var_count) return NULL;
    return t->vars[i].name;
}

/* ---- rendering ---------------------------------------------------------- */

int sr_template_render(const sr_template *t, sr_template_lookup lookup, void *ud, sr_buf *out, char *err,
                       size_t errlen) {
    size_t start = out->len;
    const template_var *var = NULL;
    int rc = 0;

    for (int i = 0; i < t->part_count; i++) {
        const template_part *part = &t->parts[i];
        if (part->var < 0) {
            if (out->len - start + part->len > SR_TEMPLATE_MAX_OUTPUT) goto too_long;
            sr_buf_append(out, part->text, part->len);
            continue;
        }
        var = &t->vars[part->var];
        rc = lookup ? lookup(ud, var->segments, var->count, out) : SR_TEMPLATE_MISSING;
        if (rc != 0) goto failed_lookup;
        if (out->len - start > SR_TEMPLATE_MAX_OUTPUT) goto too_long;
    }
    return 0;

failed_lookup:
    if (err && errlen) {
        if (rc == SR_TEMPLATE_NOT_PRINTABLE)
            snprintf(err, errlen, "variable '%s' is not a string or number", var->name);
        else
            snprintf(err, errlen, "missing variable '%s'", var->name);
    }
    goto fail;
too_long:
    if (err && errlen) snprintf(err, errlen, "rendered text too long (more than %d bytes)", SR_TEMPLATE_MAX_OUTPUT);
fail:
    out->len = start;
    if (out->data) out->data[start] = '\0';
    return -1;
}

/* ---- lookups ------------------------------------------------------------ */

int sr_template_lookup_json(void *ud, const char *const *segments, int count, sr_buf *out) {
    const sr_json *node = ud;
    for (int i = 0; i < count && node; i++) {
        int index;
        if (node->type == SR_JSON_OBJECT) {
            node = sr_json_get(node, segments[i]);
        } else if (node->type == SR_JSON_ARRAY && template_index(segments[i], &index)) {
            if ((size_t)index > node->count) return SR_TEMPLATE_MISSING;
            node = node->child;
            while (--index > 0) node = node->next;
        } else {
            return SR_TEMPLATE_MISSING;
        }
    }
    if (!node) return SR_TEMPLATE_MISSING;
    switch (node->type) {
    case SR_JSON_STRING:
    case SR_JSON_NUMBER: sr_buf_append(out, node->str, node->len); return 0;
    case SR_JSON_TRUE: sr_buf_append(out, "true", 4); return 0;
    case SR_JSON_FALSE: sr_buf_append(out, "false", 5); return 0;
    default: return SR_TEMPLATE_NOT_PRINTABLE;
    }
}

/* Replaces the table on top of L's stack by its field segment, read raw. An
 * index segment is an integer key first, then (for tables decoded from JSON
 * objects) the string key of the same spelling. */
static void template_lua_step(lua_State *L, const char *segment) {
    int index;
    if (template_index(segment, &index)) {
        if (lua_rawgeti(L, -1, index) != LUA_TNIL) {
            lua_replace(L, -2);
            return;
        }
        lua_pop(L, 1);
    }
    lua_pushstring(L, segment);
    lua_rawget(L, -2);
    lua_replace(L, -2);
}

int sr_template_lookup_lua(void *ud, const char *const *segments, int count, sr_buf *out) {
    const sr_template_lua_vars *vars = ud;
    lua_State *L = vars->L;
    int top = lua_gettop(L);
    int rc = SR_TEMPLATE_MISSING;

    /* Two slots: the current table and the key or value beside it. */
    if (!lua_checkstack(L, 2)) return SR_TEMPLATE_MISSING;
    lua_pushvalue(L, vars->index);
    for (int i = 0; i < count; i++) {
        if (lua_type(L, -1) != LUA_TTABLE) goto done;
        template_lua_step(L, segments[i]);
    }
    switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        sr_buf_append(out, s, len);
        rc = 0;
        break;
    }
    case LUA_TNUMBER:
        /* Formatted here rather than with lua_tolstring, which would convert
         * the number in place on the stack (and allocate). */
        if (lua_isinteger(L, -1)) sr_buf_put_i64(out, (int64_t)lua_tointeger(L, -1));
        else
            sr_buf_printf(out, "%.14g", (double)lua_tonumber(L, -1));
        rc = 0;
        break;
    case LUA_TBOOLEAN:
        sr_buf_puts(out, lua_toboolean(L, -1) ? "true" : "false");
        rc = 0;
        break;
    case LUA_TNIL: rc = SR_TEMPLATE_MISSING; break;
    default: rc = SR_TEMPLATE_NOT_PRINTABLE; break;
    }
done:
    lua_settop(L, top);
    return rc;
}
