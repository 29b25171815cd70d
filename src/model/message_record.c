#include "model/message_record.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocation: like sr_buf, running out of memory aborts ---- */

static void *record_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("smsrules: out of memory\n", stderr);
        abort();
    }
    return p;
}

/* ---- writing ---- */

static int record_clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Room for n more bytes (and sr_buf's NUL), without a call when there is. */
static inline void record_room(sr_buf *b, size_t n) {
    if (b->cap - b->len <= n) sr_buf_reserve(b, n);
}

/* Every put below writes into room reserved by its caller or by itself; the
 * buffer's trailing NUL is restored once at the end of the record. */
static void record_put_byte(sr_buf *b, unsigned v) {
    record_room(b, 1);
    b->data[b->len++] = (char)v;
}

static void record_put_uvar(sr_buf *b, uint64_t v) {
    record_room(b, 10);
    while (v >= 0x80) {
        b->data[b->len++] = (char)(v | 0x80);
        v >>= 7;
    }
    b->data[b->len++] = (char)v;
}

/* Zigzag: small negative numbers stay short. */
static void record_put_svar(sr_buf *b, int64_t v) { record_put_uvar(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63)); }

/* The length of s once every invalid UTF-8 byte is replaced by U+FFFD (3 bytes); *clean: none was. */
static size_t record_clean_len(const unsigned char *s, size_t n, int *clean) {
    size_t out = 0, i = 0;
    *clean = 1;
    while (i < n) {
        if (s[i] < 0x80) {
            i++, out++;
            continue;
        }
        size_t k = sr_utf8_seq_len(s + i, n - i);
        if (k == 0) {
            *clean = 0;
            i++, out += 3;
        } else {
            i += k, out += k;
        }
    }
    return out;
}

/* Appends s[0..n) with invalid UTF-8 replaced (room reserved by the caller). */
static void record_put_cleaned(sr_buf *b, const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t k = s[i] < 0x80 ? 1 : sr_utf8_seq_len(s + i, n - i);
        if (k == 0) {
            memcpy(b->data + b->len, "\xEF\xBF\xBD", 3);
            b->len += 3;
            i++;
        } else {
            memcpy(b->data + b->len, s + i, k);
            b->len += k;
            i += k;
        }
    }
}

/* A string: varint length + 1 then the bytes; NULL is a single 0. */
static void record_put_str(sr_buf *b, const char *s) {
    if (!s) {
        record_put_byte(b, 0);
        return;
    }
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), i = 0;
    while (i < n && u[i] < 0x80) i++;
    int clean = 1;
    size_t out = i == n ? n : i + record_clean_len(u + i, n - i, &clean);
    record_put_uvar(b, (uint64_t)out + 1);
    record_room(b, out);
    if (clean) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
    } else {
        record_put_cleaned(b, u, n);
    }
}

/* Inserts the varint v at offset at, moving what follows it. */
static void record_insert_uvar(sr_buf *b, size_t at, uint64_t v) {
    size_t end = b->len;
    record_put_uvar(b, v);
    size_t n = b->len - end;
    char tmp[10];
    memcpy(tmp, b->data + end, n);
    memmove(b->data + at + n, b->data + at, end - at);
    memcpy(b->data + at, tmp, n);
}

/* Tags: a count then (key, value) pairs. A key written twice (or two keys that read the same once
 * invalid UTF-8 is replaced) keeps its first value only, as in the JSON record. */
static void record_put_tags(sr_buf *b, const sr_message *m) {
    size_t start = b->len, stack[2 * 8], *keys = stack; /* (offset, length) of each key written */
    int written = 0;
    if (m->tag_count > 8) keys = record_xmalloc(sizeof(size_t) * 2 * (size_t)m->tag_count);
    for (int i = 0; i < m->tag_count; i++) {
        size_t mark = b->len;
        record_put_str(b, m->tags[i].key ? m->tags[i].key : "");
        int duplicate = 0;
        for (int j = 0; j < written && !duplicate; j++)
            duplicate =
                keys[2 * j + 1] == b->len - mark && memcmp(b->data + keys[2 * j], b->data + mark, b->len - mark) == 0;
        if (duplicate) {
            b->len = mark;
            continue;
        }
        keys[2 * written] = mark;
        keys[2 * written + 1] = b->len - mark;
        written++;
        record_put_str(b, m->tags[i].value);
    }
    if (keys != stack) free(keys);
    record_insert_uvar(b, start, (uint64_t)written);
}

static void record_put_attempt(sr_buf *b, const sr_attempt *a) {
    record_put_str(b, a->provider);
    record_put_str(b, a->provider_id);
    record_put_svar(b, a->started_at_ms);
    record_put_svar(b, a->duration_ms);
    record_put_uvar(b, (uint64_t)record_clamp(a->http_status, 0, 999));
    record_put_str(b, a->outcome);
    record_put_str(b, a->error);
    record_put_str(b, a->report);
    record_put_svar(b, a->report ? a->reported_at_ms : 0); /* the JSON record kept it only with a report */
    record_put_str(b, a->part_reports);
}

static void record_put_head(sr_buf *b, const sr_message *m) {
    record_put_byte(b, SR_MESSAGE_FORMAT_BINARY);
    record_room(b, SR_ID_LEN);
    memcpy(b->data + b->len, m->id, SR_ID_LEN);
    b->len += SR_ID_LEN;
    record_put_byte(b, (unsigned)m->status < SR_ST_COUNT ? (unsigned)m->status : 0xFF);
    record_put_str(b, m->to ? m->to : "");
    record_put_str(b, m->from);
    record_put_str(b, m->text ? m->text : "");
    record_put_uvar(b, (uint64_t)record_clamp(m->segments, 0, INT_MAX));
    record_put_byte(b, m->encoding == 1);
    record_put_uvar(b, (uint64_t)(m->route_len > 0 ? m->route_len : 0));
    for (int i = 0; i < m->route_len; i++) record_put_str(b, m->route[i] ? m->route[i] : "");
    record_put_uvar(b, (uint64_t)record_clamp(m->route_index, 0, m->route_len));
    record_put_str(b, m->provider);
    record_put_str(b, m->provider_id);
    record_put_str(b, m->idempotency_key);
    record_put_byte(b, (unsigned)record_clamp(m->priority, 0, 3));
    record_put_uvar(b, (uint64_t)record_clamp(m->validity_s, 0, INT_MAX));
    record_put_svar(b, m->created_at_ms);
    record_put_svar(b, m->send_at_ms);
    record_put_svar(b, m->expires_at_ms);
    record_put_svar(b, m->next_attempt_at_ms);
}

static void record_put_tail(sr_buf *b, const sr_message *m) {
    record_put_str(b, m->error);
    record_put_str(b, m->reply_to);
    record_put_uvar(b, (uint64_t)record_clamp(m->parts, 0, INT_MAX));
    record_put_str(b, m->part_reports);
    record_put_svar(b, m->sent_at_ms);
    record_put_svar(b, m->watch_at_ms);
    record_put_uvar(b, (uint64_t)record_clamp(m->polls, 0, INT_MAX));
    record_put_uvar(b, (uint64_t)record_clamp(m->fallback_on, 0, INT_MAX));
    record_put_uvar(b, (uint64_t)record_clamp(m->dlr_timeout_s, 0, INT_MAX));
    int has_cost = m->has_cost && isfinite(m->cost) && m->cost > -1e15 && m->cost < 1e15;
    record_put_byte(b, (unsigned)has_cost);
    if (has_cost) {
        uint64_t bits;
        memcpy(&bits, &m->cost, sizeof bits);
        record_room(b, 8);
        for (int i = 0; i < 8; i++) b->data[b->len++] = (char)(bits >> (8 * i)); /* little endian */
    }
}

void sr_record_encode_binary(const sr_message *m, sr_buf *out) {
    record_put_head(out, m);
    record_put_tags(out, m);
    record_put_uvar(out, (uint64_t)(m->attempt_count > 0 ? m->attempt_count : 0));
    for (int i = 0; i < m->attempt_count; i++) record_put_attempt(out, &m->attempts[i]);
    record_put_uvar(out, (uint64_t)(m->history_count > 0 ? m->history_count : 0));
    for (int i = 0; i < m->history_count; i++) {
        unsigned st = (unsigned)m->history[i].status;
        record_put_byte(out, st < SR_ST_COUNT ? st : 0xFF);
        record_put_svar(out, m->history[i].at_ms);
    }
    record_put_tail(out, m);
    record_room(out, 0);
    out->data[out->len] = '\0';
}

/* ---- reading: every check fails the record, never trusts the input ---- */

typedef struct record_reader {
    const unsigned char *p;
    const unsigned char *end;
    int bad; /* set by the first failed read; every later read returns 0 */
} record_reader;

static unsigned record_byte(record_reader *r) {
    if (r->p >= r->end) {
        r->bad = 1;
        return 0;
    }
    return *r->p++;
}

static uint64_t record_uvar(record_reader *r) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) break;
        unsigned c = *r->p++;
        if (shift == 63 && c > 1) break; /* past 64 bits */
        v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) return v;
    }
    r->bad = 1;
    return 0;
}

static int64_t record_svar(record_reader *r) {
    uint64_t z = record_uvar(r);
    return (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
}

/* An int in [0, max]. */
static int record_int(record_reader *r, int max) {
    uint64_t v = record_uvar(r);
    if (v > (uint64_t)max) {
        r->bad = 1;
        return 0;
    }
    return (int)v;
}

/* A count of elements of at least min_size bytes each: never more than the bytes left allow. */
static int record_count(record_reader *r, size_t min_size) {
    uint64_t n = record_uvar(r);
    if (n > INT_MAX || n > (uint64_t)(r->end - r->p) / min_size) {
        r->bad = 1;
        return 0;
    }
    return (int)n;
}

static sr_status record_status(record_reader *r) {
    unsigned st = record_byte(r);
    if (st >= SR_ST_COUNT) r->bad = 1;
    return r->bad ? SR_ST_ACCEPTED : (sr_status)st;
}

/* A string: *slot gets a malloc'd copy, or NULL (refused unless nullable). */
static void record_str(record_reader *r, char **slot, int nullable) {
    uint64_t n = record_uvar(r);
    if (r->bad || (n == 0 && !nullable)) {
        r->bad = 1;
        return;
    }
    if (n == 0) return;
    if (n - 1 > (uint64_t)(r->end - r->p)) {
        r->bad = 1;
        return;
    }
    char *s = record_xmalloc((size_t)n);
    memcpy(s, r->p, (size_t)n - 1);
    s[n - 1] = '\0';
    r->p += n - 1;
    *slot = s;
}

static void record_get_head(record_reader *r, sr_message *m) {
    if (record_byte(r) != SR_MESSAGE_FORMAT_BINARY || r->end - r->p < SR_ID_LEN ||
        !sr_id_valid((const char *)r->p, SR_ID_LEN)) {
        r->bad = 1;
        return;
    }
    memcpy(m->id, r->p, SR_ID_LEN);
    m->id[SR_ID_LEN] = '\0';
    r->p += SR_ID_LEN;
    m->status = record_status(r);
    record_str(r, &m->to, 0);
    record_str(r, &m->from, 1);
    record_str(r, &m->text, 0);
    m->segments = record_int(r, INT_MAX);
    m->encoding = record_int(r, 1);
}

static void record_get_route(record_reader *r, sr_message *m) {
    int n = record_count(r, 1);
    if (r->bad) return;
    if (n > 0) m->route = calloc((size_t)n, sizeof(char *));
    if (n > 0 && !m->route) abort();
    for (int i = 0; i < n && !r->bad; i++) {
        record_str(r, &m->route[i], 0);
        if (!r->bad) m->route_len++;
    }
    m->route_index = record_int(r, INT_MAX);
    if (m->route_index > m->route_len) r->bad = 1;
}

static void record_get_middle(record_reader *r, sr_message *m) {
    record_str(r, &m->provider, 1);
    record_str(r, &m->provider_id, 1);
    record_str(r, &m->idempotency_key, 1);
    m->priority = record_int(r, 3);
    m->validity_s = record_int(r, INT_MAX);
    m->created_at_ms = record_svar(r);
    m->send_at_ms = record_svar(r);
    m->expires_at_ms = record_svar(r);
    m->next_attempt_at_ms = record_svar(r);
}

static void record_get_tags(record_reader *r, sr_message *m) {
    int n = record_count(r, 2);
    if (r->bad || n == 0) return;
    m->tags = calloc((size_t)n, sizeof(sr_tag));
    if (!m->tags) abort();
    for (int i = 0; i < n && !r->bad; i++) {
        sr_tag *t = &m->tags[m->tag_count++];
        record_str(r, &t->key, 0);
        record_str(r, &t->value, 1);
    }
}

static void record_get_attempts(record_reader *r, sr_message *m) {
    int n = record_count(r, 10); /* the smallest attempt: 10 one-byte fields */
    if (r->bad || n == 0) return;
    m->attempts = calloc((size_t)n, sizeof(sr_attempt));
    if (!m->attempts) abort();
    for (int i = 0; i < n && !r->bad; i++) {
        sr_attempt *a = &m->attempts[m->attempt_count++];
        record_str(r, &a->provider, 1);
        record_str(r, &a->provider_id, 1);
        a->started_at_ms = record_svar(r);
        a->duration_ms = record_svar(r);
        a->http_status = record_int(r, 999);
        record_str(r, &a->outcome, 1);
        record_str(r, &a->error, 1);
        record_str(r, &a->report, 1);
        a->reported_at_ms = record_svar(r);
        record_str(r, &a->part_reports, 1);
    }
}

static void record_get_history(record_reader *r, sr_message *m) {
    int n = record_count(r, 2);
    if (r->bad || n == 0) return;
    m->history = record_xmalloc(sizeof(sr_history_entry) * (size_t)n);
    for (int i = 0; i < n && !r->bad; i++) {
        m->history[i].status = record_status(r);
        m->history[i].at_ms = record_svar(r);
        if (!r->bad) m->history_count++;
    }
}

static void record_get_tail(record_reader *r, sr_message *m) {
    record_str(r, &m->error, 1);
    record_str(r, &m->reply_to, 1);
    m->parts = record_int(r, INT_MAX);
    record_str(r, &m->part_reports, 1);
    m->sent_at_ms = record_svar(r);
    m->watch_at_ms = record_svar(r);
    m->polls = record_int(r, INT_MAX);
    m->fallback_on = record_int(r, INT_MAX);
    m->dlr_timeout_s = record_int(r, INT_MAX);
    m->has_cost = record_int(r, 1);
    if (!m->has_cost || r->bad) return;
    if (r->end - r->p < 8) {
        r->bad = 1;
        return;
    }
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++) bits |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    memcpy(&m->cost, &bits, sizeof bits);
    if (!isfinite(m->cost) || m->cost <= -1e15 || m->cost >= 1e15) r->bad = 1;
}

int sr_record_decode_binary(const char *data, size_t len, sr_message *m) {
    sr_message_init(m);
    if (!data) return -1;
    record_reader r = {(const unsigned char *)data, (const unsigned char *)data + len, 0};
    record_get_head(&r, m);
    if (!r.bad) record_get_route(&r, m);
    if (!r.bad) record_get_middle(&r, m);
    if (!r.bad) record_get_tags(&r, m);
    if (!r.bad) record_get_attempts(&r, m);
    if (!r.bad) record_get_history(&r, m);
    if (!r.bad) record_get_tail(&r, m);
    if (r.bad || r.p != r.end) {
        sr_message_free(m);
        return -1;
    }
    return 0;
}

/* ---- the record of any format ---- */

void sr_message_encode(const sr_message *m, sr_buf *out) { sr_record_encode_binary(m, out); }

int sr_message_decode(const char *data, size_t len, sr_message *m) {
    if (data && len > 0 && (unsigned char)data[0] == SR_MESSAGE_FORMAT_BINARY)
        return sr_record_decode_binary(data, len, m);
    return sr_message_decode_json(data, len, m);
}
