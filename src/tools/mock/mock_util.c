/* mock_util: the mock provider's small parts: random numbers, the string map,
 * the rate window, strings, time, forms, credentials, fields and JSON members. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "tools/mock/mock_internal.h"
#include "core/buf.h"

/* ---- random numbers (splitmix64: small, fast, seedable) ---- */

uint64_t mock_rand(mock_provider *mp) {
    uint64_t z = (mp->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A uniform number in [0, 100). */
double mock_rand_pct(mock_provider *mp) { return (double)(mock_rand(mp) >> 11) * (100.0 / 9007199254740992.0); }

/* ---- the hash map ---- */

uint64_t mock_hash(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a final mix for the low bits */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h ? h : 1;
}

/* The slot holding key, or NULL. Borrowed from the map until it changes. */
static mock_slot *mock_map_find(const mock_map *m, const char *key, size_t len, uint64_t hash) {
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        mock_slot *s = &m->slots[i];
        if (!s->hash) return NULL;
        if (s->hash == hash && s->key_len == len && memcmp(s->key, key, len) == 0) return s;
    }
}

static void mock_map_grow(mock_map *m) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    mock_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) abort();
    for (size_t i = 0; i < m->cap; i++) {
        mock_slot *old = &m->slots[i];
        if (!old->hash) continue;
        size_t j = old->hash & (cap - 1);
        while (slots[j].hash) j = (j + 1) & (cap - 1);
        slots[j] = *old;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
}

/* The slot for key, created with count 0 when missing. The key (and value,
 * when not NULL) are copied. Borrowed from the map until it changes. */
mock_slot *mock_map_upsert(mock_map *m, const char *key, size_t len, uint64_t hash, const char *value) {
    mock_slot *s = mock_map_find(m, key, len, hash);
    if (s) return s;
    if ((m->used + 1) * 10 > m->cap * 7) mock_map_grow(m);
    size_t mask = m->cap - 1;
    size_t i = hash & mask;
    while (m->slots[i].hash) i = (i + 1) & mask;
    s = &m->slots[i];
    size_t value_len = value ? strlen(value) : 0;
    s->key = malloc(len + value_len + 2);
    if (!s->key) abort();
    memcpy(s->key, key, len);
    s->key[len] = '\0';
    if (value) memcpy(s->key + len + 1, value, value_len);
    s->key[len + 1 + value_len] = '\0';
    s->hash = hash;
    s->key_len = len;
    s->count = 0;
    m->used++;
    return s;
}

/* The value stored with the slot's key (maps built with values). */
const char *mock_slot_value(const mock_slot *s) { return s->key + s->key_len + 1; }

void mock_map_clear(mock_map *m) {
    for (size_t i = 0; i < m->cap; i++) free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- the sliding window of accepted sends ---- */

void mock_rate_add(mock_rate *r, uint64_t now_ms) {
    while (r->len && r->at_ms[r->head] + MOCK_RATE_WINDOW_MS <= now_ms) {
        r->head = (r->head + 1) & (r->cap - 1);
        r->len--;
    }
    if (r->len == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        uint64_t *at = malloc(cap * sizeof *at);
        if (!at) abort();
        for (size_t i = 0; i < r->len; i++) at[i] = r->at_ms[(r->head + i) & (r->cap - 1)];
        free(r->at_ms);
        r->at_ms = at;
        r->cap = cap;
        r->head = 0;
    }
    r->at_ms[(r->head + r->len) & (r->cap - 1)] = now_ms;
    r->len++;
    if (r->len > r->max_per_window) r->max_per_window = r->len;
}

void mock_rate_clear(mock_rate *r) {
    free(r->at_ms);
    memset(r, 0, sizeof *r);
}

/* Remembers key (with value, copied) in the young generation of a
 * two-generation map: when the young one holds max_ids / 2 + 1 keys, the old
 * one is dropped and the young one becomes old, so at most max_ids keys are
 * kept. Returns the slot, borrowed until the map changes. */
mock_slot *mock_remember(const mock_provider *mp, mock_map *young, mock_map *old, const char *key, size_t len,
                         const char *value) {
    if (young->used >= mp->max_ids / 2 + 1) {
        mock_map_clear(old);
        *old = *young;
        memset(young, 0, sizeof *young);
    }
    return mock_map_upsert(young, key, len, mock_hash(key, len), value);
}

/* The slot of key in either generation (the young one first), or NULL. */
mock_slot *mock_recall(const mock_map *young, const mock_map *old, const char *key, size_t len) {
    uint64_t hash = mock_hash(key, len);
    mock_slot *s = mock_map_find(young, key, len, hash);
    return s ? s : mock_map_find(old, key, len, hash);
}

/* ---- small helpers: strings, time, forms, signatures ---- */

/* A NUL-terminated copy of len bytes at s, or NULL when s is NULL. Aborts
 * when out of memory, like the rest of the mock. The caller owns it. */
char *mock_strndup(const char *s, size_t len) {
    if (!s) return NULL;
    char *copy = malloc(len + 1);
    if (!copy) abort();
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

/* Appends the ASCII digits of s: "+84 912" → "84912". */
void mock_put_digits(sr_buf *out, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (s[i] >= '0' && s[i] <= '9') sr_buf_putc(out, s[i]);
}

bool mock_all_digits(const char *s, size_t len) {
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

/* The SMS parts a text takes: 160 / 153 characters for ASCII texts, else
 * 70 / 67 code points (a rough GSM-7 / UCS-2 split, enough for a mock). */
unsigned mock_parts(const char *text, size_t len) {
    size_t chars = 0;
    bool ascii = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x80) ascii = false;
        if ((c & 0xC0) != 0x80) chars++;
    }
    size_t single = ascii ? 160 : 70, multi = ascii ? 153 : 67;
    if (chars <= single) return 1;
    size_t parts = (chars + multi - 1) / multi;
    return parts > 127 ? 127 : (unsigned)parts;
}

uint64_t mock_wall_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* Monotonic milliseconds, never 0 (0 marks "not answered yet"). */
uint64_t mock_mono_ms(void) { return uv_hrtime() / 1000000 + 1; }

/* Formats the UTC time wall_ms with strftime's fmt. */
void mock_format_time(uint64_t wall_ms, const char *fmt, char *out, size_t len) {
    time_t sec = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    if (strftime(out, len, fmt, &tm) == 0 && len) out[0] = '\0';
}

void mock_rfc3339(uint64_t wall_ms, char *out, size_t len) {
    mock_format_time(wall_ms, "%Y-%m-%dT%H:%M:%SZ", out, len);
}

/* Appends s form-encoded the way HTML forms (and the adapters'
 * util.form_encode) do: ASCII letters, digits and "*-._" as they are, a space
 * as '+', every other byte as %XX. */
static void mock_form_escape(sr_buf *out, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '*' || c == '-' ||
            c == '.' || c == '_') {
            sr_buf_putc(out, (char)c);
        } else if (c == ' ') {
            sr_buf_putc(out, '+');
        } else {
            sr_buf_putc(out, '%');
            sr_buf_putc(out, hex[c >> 4]);
            sr_buf_putc(out, hex[c & 15]);
        }
    }
}

/* Byte order of names, then of values: the order Twilio and Vonage sign in. */
static int mock_param_cmp(const void *a, const void *b) {
    const mock_param *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

void mock_params_sort(mock_param *params, size_t n) { qsort(params, n, sizeof *params, mock_param_cmp); }

/* Appends the parameters as a form body, in their order. */
void mock_form_encode(sr_buf *out, const mock_param *params, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (i) sr_buf_putc(out, '&');
        mock_form_escape(out, params[i].name);
        sr_buf_putc(out, '=');
        mock_form_escape(out, params[i].value);
    }
}

/* ---- send requests: credentials ---- */

/* The outcome chosen by the last four digits of the recipient. */
mock_outcome mock_pattern(const char *to, size_t len) {
    char last[4];
    int n = 0;
    for (size_t i = len; i > 0 && n < 4; i--) {
        char ch = to[i - 1];
        if (ch >= '0' && ch <= '9') last[3 - n++] = ch;
    }
    if (n < 4) return MOCK_OK;
    if (memcmp(last, "0000", 4) == 0) return MOCK_REJECT;
    if (memcmp(last, "0401", 4) == 0) return MOCK_UNAUTHORIZED;
    if (memcmp(last, "0503", 4) == 0) return MOCK_UNAVAILABLE;
    if (memcmp(last, "0429", 4) == 0) return MOCK_RATE_LIMITED;
    if (memcmp(last, "0408", 4) == 0) return MOCK_TIMEOUT;
    if (memcmp(last, "0666", 4) == 0) return MOCK_UNDELIVERED;
    return MOCK_OK;
}

bool mock_equal(const char *a, size_t alen, const char *b) { return a && alen == strlen(b) && memcmp(a, b, alen) == 0; }

/* Whether header name is prefix (case-insensitive) followed by key. */
bool mock_header_is(const sr_http_request *req, const char *name, const char *prefix, const char *key) {
    size_t len, prefix_len = strlen(prefix), key_len = strlen(key);
    const char *v = sr_http_header_get(req, name, &len);
    return v && len == prefix_len + key_len && strncasecmp(v, prefix, prefix_len) == 0 &&
           memcmp(v + prefix_len, key, key_len) == 0;
}

/* The decoded "user:password" of an Authorization: Basic header, into out
 * (replacing what it held). false when there is none or it is malformed. */
static bool mock_basic_credentials(const sr_http_request *req, sr_buf *out) {
    size_t len;
    const char *v = sr_http_header_get(req, "authorization", &len);
    if (!v || len < 6 || strncasecmp(v, "Basic ", 6) != 0) return false;
    v += 6;
    len -= 6;
    while (len && *v == ' ') v++, len--;
    unsigned char *raw = malloc(sr_crypto_unbase64_max_len(len) + 1);
    if (!raw) abort();
    size_t raw_len = 0;
    bool ok = sr_crypto_unbase64(raw, &raw_len, v, len) == 0;
    if (ok) {
        sr_buf_reset(out);
        sr_buf_append(out, raw, raw_len);
    }
    free(raw);
    return ok;
}

/* Whether HTTP Basic carries exactly user ":" password. */
bool mock_basic_is(const sr_http_request *req, const char *user, const char *password) {
    sr_buf got, want;
    sr_buf_init(&got);
    sr_buf_init(&want);
    sr_buf_printf(&want, "%s:%s", user, password);
    bool ok = mock_basic_credentials(req, &got) && got.len == want.len && memcmp(got.data, want.data, got.len) == 0;
    sr_buf_free(&got);
    sr_buf_free(&want);
    return ok;
}

/* Whether HTTP Basic's whole "user:password" is key. */
bool mock_basic_key(const sr_http_request *req, const char *key) {
    sr_buf got;
    sr_buf_init(&got);
    bool ok = mock_basic_credentials(req, &got) && mock_equal(got.data, got.len, key);
    sr_buf_free(&got);
    return ok;
}

/* ---- form fields (smsc, twilio, vonage) ---- */

void mock_fields_init(mock_fields *f) {
    for (int i = 0; i < MOCK_MAX_FIELDS; i++) sr_buf_init(&f->value[i]);
    memset(f->has, 0, sizeof f->has);
}

void mock_fields_free(mock_fields *f) {
    for (int i = 0; i < MOCK_MAX_FIELDS; i++) sr_buf_free(&f->value[i]);
}

/* Loads the named fields: from json (an object: strings and numbers) when
 * given, else from the form body; then from the query string for those
 * still missing (SMSC takes GET too; Vonage takes query parameters too). */
void mock_fields_load(mock_fields *f, const char *const *names, const sr_http_request *req, const sr_json *json) {
    for (int i = 0; names[i] && i < MOCK_MAX_FIELDS; i++) {
        if (json) {
            const sr_json *v = sr_json_get(json, names[i]);
            if (v && (v->type == SR_JSON_STRING || v->type == SR_JSON_NUMBER)) {
                sr_buf_append(&f->value[i], v->str, v->len);
                f->has[i] = true;
            }
        } else {
            f->has[i] = sr_form_get(req->body, req->body_len, names[i], &f->value[i]);
        }
        if (!f->has[i]) f->has[i] = sr_form_get(req->query, req->query_len, names[i], &f->value[i]);
        sr_buf_cstr(&f->value[i]);
    }
}

/* Field i, or NULL when absent; *len gets its length. */
const char *mock_field(const mock_fields *f, int i, size_t *len) {
    if (!f->has[i]) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = f->value[i].len;
    return f->value[i].data;
}

/* Fields a and b joined by ':' equal key (both present). */
bool mock_fields_pair_is(const mock_fields *f, int a, int b, const char *key) {
    if (!f->has[a] || !f->has[b]) return false;
    sr_buf joined;
    sr_buf_init(&joined);
    sr_buf_append(&joined, f->value[a].data, f->value[a].len);
    sr_buf_putc(&joined, ':');
    sr_buf_append(&joined, f->value[b].data, f->value[b].len);
    bool ok = mock_equal(joined.data, joined.len, key);
    sr_buf_free(&joined);
    return ok;
}

/* A string member of a JSON object into s/len; whether it is usable:
 * absent or null (optional) passes, a string passes (non-empty when
 * required), anything else fails. */
bool mock_json_str(const sr_json *obj, const char *name, bool required, const char **s, size_t *len) {
    const sr_json *v = sr_json_get(obj, name);
    if (!v || v->type == SR_JSON_NULL) return !required;
    if (v->type != SR_JSON_STRING) return false;
    if (required && v->len == 0) return false;
    *s = v->str;
    *len = v->len;
    return true;
}

/* A client id member (string or number, as written) into m. */
bool mock_json_client_id(const sr_json *obj, const char *name, mock_msg *m) {
    const sr_json *v = name ? sr_json_get(obj, name) : NULL;
    if (!v || v->type == SR_JSON_NULL) return true;
    if (v->type != SR_JSON_STRING && v->type != SR_JSON_NUMBER) return false;
    m->client_id = v->str;
    m->client_id_len = v->len;
    m->id_json = v;
    return true;
}

void mock_msg_problem(mock_msg *m, const char *field, bool missing) {
    m->problem = missing ? "missing" : "invalid";
    m->problem_field = field;
    m->problem_missing = missing;
}

/* Fills m from a JSON message object with the dialect's field names
 * (from_name and id_name may be NULL). */
static void mock_msg_from_object(mock_msg *m, const sr_json *obj, const char *to_name, const char *text_name,
                                 const char *from_name, const char *id_name) {
    if (!obj || obj->type != SR_JSON_OBJECT) {
        m->problem = "a message must be an object";
        return;
    }
    if (!mock_json_str(obj, to_name, true, &m->to, &m->to_len)) {
        const sr_json *v = sr_json_get(obj, to_name);
        mock_msg_problem(m, to_name, !v || v->type == SR_JSON_NULL);
        m->to = NULL;
        return;
    }
    if (!mock_json_str(obj, text_name, false, &m->text, &m->text_len) || !m->text) {
        const sr_json *v = sr_json_get(obj, text_name);
        mock_msg_problem(m, text_name, !v || v->type == SR_JSON_NULL);
        return;
    }
    if (from_name && !mock_json_str(obj, from_name, false, &m->from, &m->from_len)) {
        mock_msg_problem(m, from_name, false);
        return;
    }
    if (!mock_json_client_id(obj, id_name, m)) mock_msg_problem(m, id_name, false);
}

/* Parses a JSON body into ctx->doc. NULL, or the problem (in ctx->bad). */
const char *mock_parse_json(mock_send_ctx *ctx, const sr_http_request *req) {
    char err[160];
    if (sr_json_parse(&ctx->doc, req->body, req->body_len, err, sizeof err) != 0) {
        snprintf(ctx->bad, sizeof ctx->bad, "invalid JSON: %s", err);
        return ctx->bad;
    }
    return NULL;
}

/* The "messages" array of a batch body, or NULL with the problem in *bad. */
const sr_json *mock_batch_list(mock_send_ctx *ctx, const char **bad) {
    const sr_json *root = ctx->doc.root;
    if (root->type != SR_JSON_OBJECT) {
        *bad = "the body must be a JSON object";
        return NULL;
    }
    const sr_json *list = sr_json_get(root, "messages");
    if (!list || list->type == SR_JSON_NULL) {
        *bad = "Missing required field: 'messages'";
        return NULL;
    }
    if (list->type != SR_JSON_ARRAY || list->count == 0 || list->count > MOCK_MAX_BATCH) {
        *bad = "'messages' must be an array of 1 to 10000 messages";
        return NULL;
    }
    return list;
}

/* SMSBat and Devino: {"messages":[...]}. */
const char *mock_parse_list(mock_send_ctx *ctx, const sr_http_request *req, const char *id_name) {
    const char *bad = mock_parse_json(ctx, req);
    if (bad) return bad;
    const sr_json *list = mock_batch_list(ctx, &bad);
    if (!list) return bad;
    mock_ctx_alloc(ctx, list->count);
    size_t i = 0;
    for (const sr_json *m = list->child; m; m = m->next)
        mock_msg_from_object(&ctx->msgs[i++], m, "to", "text", "from", id_name);
    return NULL;
}

/* "missing 'to'" / "invalid 'to'", or the problem as it is. */
void mock_put_problem(sr_jw *w, const mock_msg *m) {
    char text[160];
    if (m->problem_field)
        snprintf(text, sizeof text, "%s '%s'", m->problem_missing ? "missing" : "invalid", m->problem_field);
    else
        sr_str_copy(text, sizeof text, m->problem);
    sr_jw_cstr(w, text);
}

/* What a polled status says now: in progress until dlr_delay_ms after the
 * send answer, then final. *at_ms: the wall-clock time of that state. */
mock_state mock_status_state(const mock_provider *mp, const mock_slot *s, uint64_t *at_ms) {
    uint64_t answered = s->count >> 8, now = mock_mono_ms(), wall = mock_wall_ms();
    if (!answered) {
        *at_ms = wall;
        return MOCK_STATE_PENDING;
    }
    uint64_t elapsed = now > answered ? now - answered : 0;
    uint64_t answered_wall = wall > elapsed ? wall - elapsed : wall;
    if (elapsed < mp->set.dlr_delay_ms) {
        *at_ms = answered_wall;
        return MOCK_STATE_PENDING;
    }
    *at_ms = answered_wall + mp->set.dlr_delay_ms;
    return (s->count & 1) ? MOCK_STATE_UNDELIVERED : MOCK_STATE_DELIVERED;
}
