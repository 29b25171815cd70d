#include "model/message.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/crypto.h"
#include "codec/json.h"

/* ---- statuses ---- */

static const char *const message_status_names[SR_ST_COUNT] = {
    "accepted", "queued", "sending", "sent", "delivered", "undelivered", "expired", "rejected", "failed",
};

const char *sr_status_name(sr_status s) {
    if ((int)s < 0 || s >= SR_ST_COUNT) return "unknown";
    return message_status_names[s];
}

int sr_status_parse(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < SR_ST_COUNT; i++)
        if (strcmp(name, message_status_names[i]) == 0) return i;
    return -1;
}

int sr_status_is_final(sr_status s) { return s >= SR_ST_DELIVERED && s < SR_ST_COUNT; }

/* accepted < queued < sending < sent < every final status. */
static int message_status_rank(sr_status s) { return s >= SR_ST_DELIVERED ? (int)SR_ST_DELIVERED : (int)s; }

int sr_status_is_forward(sr_status from, sr_status to) {
    if ((int)from < 0 || from >= SR_ST_COUNT || (int)to < 0 || to >= SR_ST_COUNT) return 0;
    if (sr_status_is_final(from)) return 0;
    return message_status_rank(to) > message_status_rank(from);
}

/* ---- allocation: like sr_buf, running out of memory aborts ---- */

static void *message_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fputs("smsrules: out of memory\n", stderr);
        abort();
    }
    return q;
}

/* A NUL-terminated copy of s[0..len); caller owns it. */
static char *message_strndup(const char *s, size_t len) {
    char *p = message_xrealloc(NULL, len + 1);
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static char *message_strdup(const char *s) { return s ? message_strndup(s, strlen(s)) : NULL; }

/* ---- the record in memory ---- */

void sr_message_init(sr_message *m) { memset(m, 0, sizeof *m); }

static void message_free_attempt(sr_attempt *a) {
    free(a->provider);
    free(a->provider_id);
    free(a->outcome);
    free(a->error);
    free(a->report);
    free(a->part_reports);
}

void sr_message_free(sr_message *m) {
    free(m->to);
    free(m->from);
    free(m->text);
    for (int i = 0; i < m->route_len; i++) free(m->route[i]);
    free(m->route);
    free(m->provider);
    free(m->provider_id);
    free(m->idempotency_key);
    for (int i = 0; i < m->tag_count; i++) {
        free(m->tags[i].key);
        free(m->tags[i].value);
    }
    free(m->tags);
    for (int i = 0; i < m->attempt_count; i++) message_free_attempt(&m->attempts[i]);
    free(m->attempts);
    free(m->history);
    free(m->error);
    free(m->reply_to);
    free(m->part_reports);
    sr_message_init(m);
}

void sr_message_copy(sr_message *dst, const sr_message *src) {
    *dst = *src; /* scalars and id; every pointer is replaced below */
    dst->to = message_strdup(src->to);
    dst->from = message_strdup(src->from);
    dst->text = message_strdup(src->text);
    dst->route = NULL;
    if (src->route_len > 0) {
        dst->route = message_xrealloc(NULL, sizeof(char *) * (size_t)src->route_len);
        for (int i = 0; i < src->route_len; i++) dst->route[i] = message_strdup(src->route[i]);
    }
    dst->provider = message_strdup(src->provider);
    dst->provider_id = message_strdup(src->provider_id);
    dst->idempotency_key = message_strdup(src->idempotency_key);
    dst->tags = NULL;
    if (src->tag_count > 0) {
        dst->tags = message_xrealloc(NULL, sizeof(sr_tag) * (size_t)src->tag_count);
        for (int i = 0; i < src->tag_count; i++) {
            dst->tags[i].key = message_strdup(src->tags[i].key);
            dst->tags[i].value = message_strdup(src->tags[i].value);
        }
    }
    dst->attempts = NULL;
    if (src->attempt_count > 0) {
        dst->attempts = message_xrealloc(NULL, sizeof(sr_attempt) * (size_t)src->attempt_count);
        for (int i = 0; i < src->attempt_count; i++) {
            const sr_attempt *a = &src->attempts[i];
            sr_attempt *b = &dst->attempts[i];
            *b = *a;
            b->provider = message_strdup(a->provider);
            b->provider_id = message_strdup(a->provider_id);
            b->outcome = message_strdup(a->outcome);
            b->error = message_strdup(a->error);
            b->report = message_strdup(a->report);
            b->part_reports = message_strdup(a->part_reports);
        }
    }
    dst->history = NULL;
    if (src->history_count > 0) {
        dst->history = message_xrealloc(NULL, sizeof(sr_history_entry) * (size_t)src->history_count);
        memcpy(dst->history, src->history, sizeof(sr_history_entry) * (size_t)src->history_count);
    }
    dst->error = message_strdup(src->error);
    dst->reply_to = message_strdup(src->reply_to);
    dst->part_reports = message_strdup(src->part_reports);
}

static void message_copy_attempts_in(sr_message *dst, const sr_message *src, sr_arena *arena) {
    dst->attempts = NULL;
    if (src->attempt_count <= 0) return;
    dst->attempts = sr_arena_alloc(arena, sizeof(sr_attempt) * (size_t)src->attempt_count);
    for (int i = 0; i < src->attempt_count; i++) {
        const sr_attempt *a = &src->attempts[i];
        sr_attempt *b = &dst->attempts[i];
        *b = *a;
        b->provider = sr_arena_strdup(arena, a->provider);
        b->provider_id = sr_arena_strdup(arena, a->provider_id);
        b->outcome = sr_arena_strdup(arena, a->outcome);
        b->error = sr_arena_strdup(arena, a->error);
        b->report = sr_arena_strdup(arena, a->report);
        b->part_reports = sr_arena_strdup(arena, a->part_reports);
    }
}

void sr_message_copy_in(sr_message *dst, const sr_message *src, sr_arena *arena) {
    *dst = *src; /* scalars and id; every pointer is replaced below */
    dst->to = sr_arena_strdup(arena, src->to);
    dst->from = sr_arena_strdup(arena, src->from);
    dst->text = sr_arena_strdup(arena, src->text);
    dst->route = NULL;
    if (src->route_len > 0) {
        dst->route = sr_arena_alloc(arena, sizeof(char *) * (size_t)src->route_len);
        for (int i = 0; i < src->route_len; i++) dst->route[i] = sr_arena_strdup(arena, src->route[i]);
    }
    dst->provider = sr_arena_strdup(arena, src->provider);
    dst->provider_id = sr_arena_strdup(arena, src->provider_id);
    dst->idempotency_key = sr_arena_strdup(arena, src->idempotency_key);
    dst->tags = NULL;
    if (src->tag_count > 0) {
        dst->tags = sr_arena_alloc(arena, sizeof(sr_tag) * (size_t)src->tag_count);
        for (int i = 0; i < src->tag_count; i++) {
            dst->tags[i].key = sr_arena_strdup(arena, src->tags[i].key);
            dst->tags[i].value = sr_arena_strdup(arena, src->tags[i].value);
        }
    }
    message_copy_attempts_in(dst, src, arena);
    dst->history = NULL;
    if (src->history_count > 0) {
        size_t n = sizeof(sr_history_entry) * (size_t)src->history_count;
        dst->history = sr_arena_alloc(arena, n);
        memcpy(dst->history, src->history, n);
    }
    dst->error = sr_arena_strdup(arena, src->error);
    dst->reply_to = sr_arena_strdup(arena, src->reply_to);
    dst->part_reports = sr_arena_strdup(arena, src->part_reports);
}

void sr_message_set_str(char **slot, const char *s) {
    char *copy = message_strdup(s); /* before freeing: s may be *slot itself */
    free(*slot);
    *slot = copy;
}

sr_attempt *sr_message_add_attempt(sr_message *m, const char *provider, int64_t started_at_ms) {
    m->attempts = message_xrealloc(m->attempts, sizeof(sr_attempt) * (size_t)(m->attempt_count + 1));
    sr_attempt *a = &m->attempts[m->attempt_count++];
    memset(a, 0, sizeof *a);
    a->provider = message_strdup(provider);
    a->started_at_ms = started_at_ms;
    return a;
}

void sr_message_set_status(sr_message *m, sr_status s, int64_t at_ms) {
    m->status = s;
    m->history = message_xrealloc(m->history, sizeof(sr_history_entry) * (size_t)(m->history_count + 1));
    m->history[m->history_count].status = s;
    m->history[m->history_count].at_ms = at_ms;
    m->history_count++;
}

int sr_part_report_status(char c) {
    switch (c) {
    case 'd': return SR_ST_DELIVERED;
    case 'u': return SR_ST_UNDELIVERED;
    case 'e': return SR_ST_EXPIRED;
    case 'r': return SR_ST_REJECTED;
    default: return -1;
    }
}

char sr_part_report_char(sr_status s) {
    switch (s) {
    case SR_ST_DELIVERED: return 'd';
    case SR_ST_UNDELIVERED: return 'u';
    case SR_ST_EXPIRED: return 'e';
    case SR_ST_REJECTED: return 'r';
    default: return '.';
    }
}

int64_t sr_message_due_ms(const sr_message *m) {
    return m->send_at_ms > m->next_attempt_at_ms ? m->send_at_ms : m->next_attempt_at_ms;
}

/* ---- ids ---- */

static const char message_crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* The generator's state: the last time used and its 80 random bits (big
 * endian). Loop thread only, like every caller of sr_id_new. */
static int64_t message_id_last_ms = -1;
static unsigned char message_id_random[10];

/* From OpenSSL's generator (user space, seeded by the kernel): no system
 * call per millisecond that mints an id. */
static void message_id_fresh_random(void) {
    if (sr_crypto_random(message_id_random, sizeof message_id_random) != 0) {
        /* No entropy (should not happen): fall back to the clock, still unique
         * within this process thanks to the monotonic increment. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20);
        for (size_t i = 0; i < sizeof message_id_random; i++, x >>= 7) message_id_random[i] = (unsigned char)x;
    }
}

/* Adds one to the 80-bit random part; returns 1 when it wrapped to zero. */
static int message_id_increment(void) {
    for (int i = (int)sizeof message_id_random - 1; i >= 0; i--)
        if (++message_id_random[i] != 0) return 0;
    return 1;
}

void sr_id_new(char id[SR_ID_LEN + 1], int64_t now_ms) {
    const int64_t time_max = ((int64_t)1 << 48) - 1;
    if (now_ms < 0) now_ms = 0;
    if (now_ms > time_max) now_ms = time_max;
    if (now_ms <= message_id_last_ms) {
        /* Same millisecond, or the clock went back: keep the last time and count up, so ids
         * made by this process strictly increase. */
        now_ms = message_id_last_ms;
        if (message_id_increment() && now_ms < time_max) now_ms++;
    } else {
        message_id_fresh_random();
    }
    message_id_last_ms = now_ms;

    uint64_t t = (uint64_t)now_ms;
    for (int i = 9; i >= 0; i--) {
        id[i] = message_crockford[t & 31];
        t >>= 5;
    }
    for (int j = 0; j < 16; j++) {
        int bit = j * 5; /* 5 bits starting at this bit of the 80, most significant first */
        unsigned v = (unsigned)message_id_random[bit / 8] << 8;
        if (bit / 8 + 1 < 10) v |= message_id_random[bit / 8 + 1];
        v = (v >> (11 - bit % 8)) & 31;
        id[10 + j] = message_crockford[v];
    }
    id[SR_ID_LEN] = '\0';
}

/* Is c a character of message_crockford? (A table: the store checks an id on every write.) */
static int message_is_crockford(unsigned char c) {
    static const unsigned char digits[256] = {
        ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
        ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
        ['G'] = 1, ['H'] = 1, ['J'] = 1, ['K'] = 1, ['M'] = 1, ['N'] = 1, ['P'] = 1, ['Q'] = 1,
        ['R'] = 1, ['S'] = 1, ['T'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    };
    return digits[c];
}

int sr_id_valid(const char *s, size_t len) {
    if (!s || len != SR_ID_LEN) return 0;
    if (s[0] < '0' || s[0] > '7') return 0; /* 128 bits in 130: the first character holds 3 */
    for (size_t i = 0; i < len; i++)
        if (!message_is_crockford((unsigned char)s[i])) return 0;
    return 1;
}

/* ---- time ---- */

/* The virtual clock: a lead over the wall clock, or a frozen time. Only
 * `smsrules test` sets them; the store's writer thread reads them too. */
static _Atomic int64_t clock_offset_ms;
static _Atomic int64_t clock_frozen_ms; /* 0: the clock runs */

int64_t sr_now_ms(void) {
    int64_t frozen = clock_frozen_ms;
    if (frozen) return frozen;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + clock_offset_ms;
}

void sr_clock_freeze(void) {
    if (!clock_frozen_ms) clock_frozen_ms = sr_now_ms();
}

void sr_clock_freeze_at(int64_t at_ms) { clock_frozen_ms = at_ms > 0 ? at_ms : 1; }

void sr_clock_advance_ms(int64_t delta_ms) {
    if (delta_ms <= 0) return;
    if (clock_frozen_ms) clock_frozen_ms += delta_ms;
    else
        clock_offset_ms += delta_ms;
}

/* Floor division, for times before the epoch. */
static int64_t message_floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
int64_t sr_days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = message_floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void message_civil_from_days(int64_t z, int64_t *y_out, int *m_out, int *d_out) {
    z += 719468;
    int64_t era = message_floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y_out = y + (m <= 2);
    *m_out = m;
    *d_out = d;
}

void sr_time_rfc3339(int64_t ms, sr_buf *out) {
    /* Floor division through the remainder: days * 86400000 would overflow
     * for times near INT64_MIN (a corrupt record can hold any int64). */
    int64_t days = ms / 86400000, rest = ms % 86400000;
    if (rest < 0) {
        rest += 86400000; /* 0 .. 86399999 */
        days--;
    }
    int64_t y;
    int mo, d;
    message_civil_from_days(days, &y, &mo, &d);
    sr_buf_printf(out, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, mo, d, (int)(rest / 3600000),
                  (int)(rest / 60000 % 60), (int)(rest / 1000 % 60), (int)(rest % 1000));
}

static int message_is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int message_days_in_month(int64_t y, int m) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && message_is_leap(y) ? 29 : days[m - 1];
}

/* n decimal digits at s; -1 when one of them is not a digit. */
static int message_digits(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int sr_time_parse_rfc3339(const char *s, size_t len, int64_t *ms_out) {
    /* YYYY-MM-DDTHH:MM:SS then [.frac] then Z or +HH:MM / -HH:MM */
    if (!s || len < 20) return -1;
    if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':') return -1;
    int year = message_digits(s, 4), month = message_digits(s + 5, 2), day = message_digits(s + 8, 2);
    int hour = message_digits(s + 11, 2), minute = message_digits(s + 14, 2), second = message_digits(s + 17, 2);
    if (year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 ||
        second < 0 || second > 60)
        return -1;
    if (day > message_days_in_month(year, month)) return -1;
    size_t i = 19;
    int frac_ms = 0;
    if (i < len && s[i] == '.') {
        i++;
        size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (i - start < 3) frac_ms = frac_ms * 10 + (s[i] - '0');
            i++;
        }
        if (i == start) return -1;
        for (size_t n = i - start; n < 3; n++) frac_ms *= 10; /* ".5" is 500 ms; digits past ms are cut */
    }
    if (i >= len) return -1;
    int offset_min = 0;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        if (len - i < 6 || s[i + 3] != ':') return -1;
        int oh = message_digits(s + i + 1, 2), om = message_digits(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59) return -1;
        offset_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -1;
    }
    if (i != len) return -1;
    int64_t days = sr_days_from_civil(year, month, day);
    int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - (int64_t)offset_min * 60;
    *ms_out = secs * 1000 + frac_ms;
    return 0;
}

/* ---- record encoding ---- */

static int message_clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Appends ,"key": (no comma when first). */
static void message_key(sr_buf *b, const char *key, int first) {
    if (!first) sr_buf_putc(b, ',');
    sr_buf_putc(b, '"');
    sr_buf_puts(b, key);
    sr_buf_puts(b, "\":");
}

static void message_str_or_null(sr_buf *b, const char *s) {
    if (s) sr_buf_json_str(b, s, strlen(s));
    else
        sr_buf_puts(b, "null");
}

static void message_field_str(sr_buf *b, const char *key, const char *s) {
    message_key(b, key, 0);
    message_str_or_null(b, s);
}

static void message_field_int(sr_buf *b, const char *key, int64_t v) {
    message_key(b, key, 0);
    sr_buf_put_i64(b, v);
}

static void message_field_status(sr_buf *b, const char *key, sr_status st) {
    message_key(b, key, 0);
    sr_buf_putc(b, '"');
    sr_buf_puts(b, sr_status_name(st));
    sr_buf_putc(b, '"');
}

static void message_write_route(sr_buf *b, const sr_message *m) {
    message_key(b, "route", 0);
    sr_buf_putc(b, '[');
    for (int i = 0; i < m->route_len; i++) {
        if (i) sr_buf_putc(b, ',');
        const char *name = m->route[i] ? m->route[i] : "";
        sr_buf_json_str(b, name, strlen(name));
    }
    sr_buf_putc(b, ']');
}

/* Tags as an object. A key written twice (or two keys that read the same once
 * invalid UTF-8 is replaced) keeps its first value only: JSON objects here
 * never hold duplicate keys, and the record must stay decodable. */
static void message_write_tags(sr_buf *b, const sr_message *m) {
    message_key(b, "tags", 0);
    sr_buf_putc(b, '{');
    size_t *starts = NULL, *ends = NULL; /* the keys written so far, as byte ranges of b */
    int written = 0;
    if (m->tag_count > 1) {
        starts = message_xrealloc(NULL, sizeof(size_t) * (size_t)m->tag_count);
        ends = message_xrealloc(NULL, sizeof(size_t) * (size_t)m->tag_count);
    }
    for (int i = 0; i < m->tag_count; i++) {
        size_t mark = b->len;
        if (written) sr_buf_putc(b, ',');
        size_t key_start = b->len;
        const char *k = m->tags[i].key ? m->tags[i].key : "";
        sr_buf_json_str(b, k, strlen(k));
        size_t key_end = b->len;
        int duplicate = 0;
        for (int j = 0; j < written && starts; j++)
            if (ends[j] - starts[j] == key_end - key_start &&
                memcmp(b->data + starts[j], b->data + key_start, key_end - key_start) == 0)
                duplicate = 1;
        if (duplicate) {
            b->len = mark;
            b->data[b->len] = '\0';
            continue;
        }
        if (starts) {
            starts[written] = key_start;
            ends[written] = key_end;
        }
        written++;
        sr_buf_putc(b, ':');
        message_str_or_null(b, m->tags[i].value);
    }
    free(starts);
    free(ends);
    sr_buf_putc(b, '}');
}

/* Record (api == 0: times as integer ms) or API (api == 1: RFC 3339, 0 as null). */
static void message_field_time(sr_buf *b, const char *key, int64_t ms, int api, int zero_is_null) {
    message_key(b, key, 0);
    if (!api) {
        sr_buf_put_i64(b, ms);
    } else if (ms == 0 && zero_is_null) {
        sr_buf_puts(b, "null");
    } else {
        sr_buf_putc(b, '"');
        sr_time_rfc3339(ms, b);
        sr_buf_putc(b, '"');
    }
}

static void message_write_attempts(sr_buf *b, const sr_message *m, int api) {
    message_key(b, "attempts", 0);
    sr_buf_putc(b, '[');
    for (int i = 0; i < m->attempt_count; i++) {
        const sr_attempt *a = &m->attempts[i];
        if (i) sr_buf_putc(b, ',');
        sr_buf_putc(b, '{');
        message_key(b, "provider", 1);
        message_str_or_null(b, a->provider);
        message_field_str(b, "provider_id", a->provider_id);
        message_field_time(b, "started_at", a->started_at_ms, api, 1);
        message_field_int(b, "duration_ms", a->duration_ms);
        if (api && a->http_status == 0) {
            message_key(b, "http_status", 0);
            sr_buf_puts(b, "null");
        } else {
            message_field_int(b, "http_status", message_clamp(a->http_status, 0, 999));
        }
        message_field_str(b, "outcome", a->outcome);
        message_field_str(b, "error", a->error);
        if (a->report) {
            message_field_str(b, "report", a->report);
            message_field_time(b, "reported_at", a->reported_at_ms, api, 1);
        }
        if (a->part_reports && !api) message_field_str(b, "part_reports", a->part_reports);
        sr_buf_putc(b, '}');
    }
    sr_buf_putc(b, ']');
}

static void message_write_history(sr_buf *b, const sr_message *m, int api) {
    message_key(b, "history", 0);
    sr_buf_putc(b, '[');
    for (int i = 0; i < m->history_count; i++) {
        if (i) sr_buf_putc(b, ',');
        sr_buf_putc(b, '{');
        message_key(b, "status", 1);
        sr_buf_putc(b, '"');
        sr_buf_puts(b, sr_status_name(m->history[i].status));
        sr_buf_putc(b, '"');
        message_field_time(b, "at", m->history[i].at_ms, api, 0);
        sr_buf_putc(b, '}');
    }
    sr_buf_putc(b, ']');
}

/* "cost": the provider's charge as a number, or null when no report said. */
static void message_field_cost(sr_buf *b, const sr_message *m) {
    message_key(b, "cost", 0);
    if (m->has_cost && m->cost == m->cost && m->cost > -1e15 && m->cost < 1e15) sr_buf_printf(b, "%.10g", m->cost);
    else
        sr_buf_puts(b, "null");
}

void sr_message_encode_json(const sr_message *m, sr_buf *out) {
    sr_buf_putc(out, (char)SR_MESSAGE_FORMAT_JSON);
    sr_buf_putc(out, '{');
    message_key(out, "id", 1);
    sr_buf_json_str(out, m->id, strnlen(m->id, SR_ID_LEN));
    message_field_str(out, "to", m->to ? m->to : "");
    message_field_str(out, "from", m->from);
    message_field_str(out, "text", m->text ? m->text : "");
    message_field_status(out, "status", m->status);
    /* Out-of-range numbers are written clamped to what the decoder accepts: a record the store
     * writes must always read back. */
    message_field_int(out, "segments", message_clamp(m->segments, 0, INT_MAX));
    message_field_int(out, "encoding", m->encoding == 1);
    message_write_route(out, m);
    message_field_int(out, "route_index", message_clamp(m->route_index, 0, m->route_len));
    message_field_str(out, "provider", m->provider);
    message_field_str(out, "provider_id", m->provider_id);
    message_field_str(out, "idempotency_key", m->idempotency_key);
    message_field_int(out, "priority", message_clamp(m->priority, 0, 3));
    message_field_int(out, "validity", message_clamp(m->validity_s, 0, INT_MAX));
    message_field_int(out, "created_at", m->created_at_ms);
    message_field_int(out, "send_at", m->send_at_ms);
    message_field_int(out, "expires_at", m->expires_at_ms);
    message_field_int(out, "next_attempt_at", m->next_attempt_at_ms);
    message_write_tags(out, m);
    message_write_attempts(out, m, 0);
    message_write_history(out, m, 0);
    message_field_str(out, "error", m->error);
    message_field_str(out, "reply_to", m->reply_to);
    message_field_int(out, "parts", message_clamp(m->parts, 0, INT_MAX));
    message_field_str(out, "part_reports", m->part_reports);
    message_field_int(out, "sent_at", m->sent_at_ms);
    message_field_int(out, "watch_at", m->watch_at_ms);
    message_field_int(out, "polls", message_clamp(m->polls, 0, INT_MAX));
    message_field_int(out, "fallback_on", message_clamp(m->fallback_on, 0, INT_MAX));
    message_field_int(out, "dlr_timeout", message_clamp(m->dlr_timeout_s, 0, INT_MAX));
    message_field_cost(out, m);
    sr_buf_putc(out, '}');
}

/* The per-part reports as the API shows them: an array of statuses (null: none yet). */
static void message_write_parts(sr_buf *b, const sr_message *m) {
    message_field_int(b, "parts", m->parts > 0 ? m->parts : m->segments);
    if (!m->part_reports) return;
    message_key(b, "part_reports", 0);
    sr_buf_putc(b, '[');
    for (const char *p = m->part_reports; *p; p++) {
        if (p != m->part_reports) sr_buf_putc(b, ',');
        int st = sr_part_report_status(*p);
        if (st < 0) {
            sr_buf_puts(b, "null");
        } else {
            sr_buf_putc(b, '"');
            sr_buf_puts(b, sr_status_name((sr_status)st));
            sr_buf_putc(b, '"');
        }
    }
    sr_buf_putc(b, ']');
}

void sr_message_to_api_json(const sr_message *m, sr_buf *out) {
    sr_buf_putc(out, '{');
    message_key(out, "id", 1);
    sr_buf_json_str(out, m->id, strnlen(m->id, SR_ID_LEN));
    message_field_str(out, "to", m->to);
    message_field_str(out, "from", m->from);
    message_field_str(out, "text", m->text);
    message_field_status(out, "status", m->status);
    message_field_int(out, "segments", m->segments);
    message_field_str(out, "encoding", m->encoding == 1 ? "ucs2" : "gsm7");
    message_write_route(out, m);
    message_field_str(out, "provider", m->provider);
    message_field_str(out, "provider_id", m->provider_id);
    message_write_attempts(out, m, 1);
    message_write_history(out, m, 1);
    message_field_str(out, "error", m->error);
    message_write_tags(out, m);
    message_field_time(out, "created_at", m->created_at_ms, 1, 1);
    message_field_time(out, "send_at", m->send_at_ms, 1, 1);
    message_field_time(out, "expires_at", m->expires_at_ms, 1, 1);
    message_field_int(out, "priority", m->priority);
    message_field_int(out, "validity", m->validity_s);
    message_field_str(out, "idempotency_key", m->idempotency_key);
    message_field_str(out, "reply_to", m->reply_to);
    message_write_parts(out, m);
    message_field_time(out, "sent_at", m->sent_at_ms, 1, 1);
    message_field_cost(out, m);
    sr_buf_putc(out, '}');
}

/* ---- record decoding: every check fails with -1, never trusts the input ---- */

/* A string field: *slot gets a copy (or NULL for null when nullable). */
static int message_get_str(const sr_json *v, char **slot, int nullable) {
    if (v->type == SR_JSON_NULL && nullable) {
        sr_message_set_str(slot, NULL);
        return 0;
    }
    if (v->type != SR_JSON_STRING) return -1;
    free(*slot);
    *slot = message_strndup(v->str, v->len);
    return 0;
}

static int message_get_int64(const sr_json *v, int64_t *out) { return sr_json_is_integer(v, out) ? 0 : -1; }

static int message_get_int(const sr_json *v, int *out, int min, int max) {
    int64_t x;
    if (!sr_json_is_integer(v, &x) || x < min || x > max) return -1;
    *out = (int)x;
    return 0;
}

static int message_get_status(const sr_json *v, sr_status *out) {
    if (v->type != SR_JSON_STRING || strlen(v->str) != v->len) return -1;
    int st = sr_status_parse(v->str);
    if (st < 0) return -1;
    *out = (sr_status)st;
    return 0;
}

static int message_get_route(const sr_json *v, sr_message *m) {
    if (v->type != SR_JSON_ARRAY || v->count > INT_MAX) return -1;
    m->route = message_xrealloc(NULL, sizeof(char *) * (v->count ? v->count : 1));
    for (const sr_json *e = v->child; e; e = e->next) {
        if (e->type != SR_JSON_STRING) return -1;
        m->route[m->route_len++] = message_strndup(e->str, e->len);
    }
    return 0;
}

static int message_get_tags(const sr_json *v, sr_message *m) {
    if (v->type != SR_JSON_OBJECT || v->count > INT_MAX) return -1;
    m->tags = message_xrealloc(NULL, sizeof(sr_tag) * (v->count ? v->count : 1));
    for (const sr_json *e = v->child; e; e = e->next) {
        if (e->type != SR_JSON_STRING && e->type != SR_JSON_NULL) return -1;
        sr_tag *t = &m->tags[m->tag_count++];
        t->key = message_strndup(e->key, e->key_len);
        t->value = e->type == SR_JSON_NULL ? NULL : message_strndup(e->str, e->len);
    }
    return 0;
}

static int message_get_attempt(const sr_json *v, sr_attempt *a) {
    if (v->type != SR_JSON_OBJECT) return -1;
    for (const sr_json *f = v->child; f; f = f->next) {
        const char *k = f->key;
        int rc;
        if (strcmp(k, "provider") == 0) {
            rc = message_get_str(f, &a->provider, 1);
        } else if (strcmp(k, "provider_id") == 0) {
            rc = message_get_str(f, &a->provider_id, 1);
        } else if (strcmp(k, "started_at") == 0) {
            rc = message_get_int64(f, &a->started_at_ms);
        } else if (strcmp(k, "duration_ms") == 0) {
            rc = message_get_int64(f, &a->duration_ms);
        } else if (strcmp(k, "http_status") == 0) {
            rc = message_get_int(f, &a->http_status, 0, 999);
        } else if (strcmp(k, "outcome") == 0) {
            rc = message_get_str(f, &a->outcome, 1);
        } else if (strcmp(k, "error") == 0) {
            rc = message_get_str(f, &a->error, 1);
        } else if (strcmp(k, "report") == 0) {
            rc = message_get_str(f, &a->report, 1);
        } else if (strcmp(k, "reported_at") == 0) {
            rc = message_get_int64(f, &a->reported_at_ms);
        } else if (strcmp(k, "part_reports") == 0) {
            rc = message_get_str(f, &a->part_reports, 1);
        } else {
            rc = 0; /* a field from a later minor change: ignored */
        }
        if (rc < 0) return -1;
    }
    return 0;
}

static int message_get_attempts(const sr_json *v, sr_message *m) {
    if (v->type != SR_JSON_ARRAY || v->count > INT_MAX) return -1;
    m->attempts = message_xrealloc(NULL, sizeof(sr_attempt) * (v->count ? v->count : 1));
    for (const sr_json *e = v->child; e; e = e->next) {
        sr_attempt *a = &m->attempts[m->attempt_count++];
        memset(a, 0, sizeof *a);
        if (message_get_attempt(e, a) < 0) return -1;
    }
    return 0;
}

static int message_get_history(const sr_json *v, sr_message *m) {
    if (v->type != SR_JSON_ARRAY || v->count > INT_MAX) return -1;
    m->history = message_xrealloc(NULL, sizeof(sr_history_entry) * (v->count ? v->count : 1));
    for (const sr_json *e = v->child; e; e = e->next) {
        if (e->type != SR_JSON_OBJECT) return -1;
        const sr_json *st = sr_json_get(e, "status"), *at = sr_json_get(e, "at");
        sr_history_entry *h = &m->history[m->history_count];
        if (!st || !at || message_get_status(st, &h->status) < 0 || message_get_int64(at, &h->at_ms) < 0) return -1;
        m->history_count++;
    }
    return 0;
}

enum {
    MESSAGE_HAS_ID = 1 << 0,
    MESSAGE_HAS_TO = 1 << 1,
    MESSAGE_HAS_TEXT = 1 << 2,
    MESSAGE_HAS_STATUS = 1 << 3,
    MESSAGE_HAS_CREATED = 1 << 4,
    MESSAGE_REQUIRED = (1 << 5) - 1,
};

/* The plain fields of the record: a string, an int64 time or a bounded int at an offset of sr_message. */
typedef enum { MESSAGE_FIELD_STR, MESSAGE_FIELD_STR_REQUIRED, MESSAGE_FIELD_I64, MESSAGE_FIELD_INT } message_field_kind;

typedef struct message_field {
    const char *name;
    message_field_kind kind;
    size_t offset;
    int max;  /* MESSAGE_FIELD_INT: the range is 0..max */
    int seen; /* a MESSAGE_HAS_* bit, or 0 */
} message_field;

#define MESSAGE_AT(field) offsetof(sr_message, field)
static const message_field message_fields[] = {
    {"to", MESSAGE_FIELD_STR_REQUIRED, MESSAGE_AT(to), 0, MESSAGE_HAS_TO},
    {"text", MESSAGE_FIELD_STR_REQUIRED, MESSAGE_AT(text), 0, MESSAGE_HAS_TEXT},
    {"from", MESSAGE_FIELD_STR, MESSAGE_AT(from), 0, 0},
    {"provider", MESSAGE_FIELD_STR, MESSAGE_AT(provider), 0, 0},
    {"provider_id", MESSAGE_FIELD_STR, MESSAGE_AT(provider_id), 0, 0},
    {"idempotency_key", MESSAGE_FIELD_STR, MESSAGE_AT(idempotency_key), 0, 0},
    {"error", MESSAGE_FIELD_STR, MESSAGE_AT(error), 0, 0},
    {"reply_to", MESSAGE_FIELD_STR, MESSAGE_AT(reply_to), 0, 0},
    {"part_reports", MESSAGE_FIELD_STR, MESSAGE_AT(part_reports), 0, 0},
    {"created_at", MESSAGE_FIELD_I64, MESSAGE_AT(created_at_ms), 0, MESSAGE_HAS_CREATED},
    {"send_at", MESSAGE_FIELD_I64, MESSAGE_AT(send_at_ms), 0, 0},
    {"expires_at", MESSAGE_FIELD_I64, MESSAGE_AT(expires_at_ms), 0, 0},
    {"next_attempt_at", MESSAGE_FIELD_I64, MESSAGE_AT(next_attempt_at_ms), 0, 0},
    {"sent_at", MESSAGE_FIELD_I64, MESSAGE_AT(sent_at_ms), 0, 0},
    {"watch_at", MESSAGE_FIELD_I64, MESSAGE_AT(watch_at_ms), 0, 0},
    {"segments", MESSAGE_FIELD_INT, MESSAGE_AT(segments), INT_MAX, 0},
    {"encoding", MESSAGE_FIELD_INT, MESSAGE_AT(encoding), 1, 0},
    {"route_index", MESSAGE_FIELD_INT, MESSAGE_AT(route_index), INT_MAX, 0},
    {"priority", MESSAGE_FIELD_INT, MESSAGE_AT(priority), 3, 0},
    {"validity", MESSAGE_FIELD_INT, MESSAGE_AT(validity_s), INT_MAX, 0},
    {"parts", MESSAGE_FIELD_INT, MESSAGE_AT(parts), INT_MAX, 0},
    {"polls", MESSAGE_FIELD_INT, MESSAGE_AT(polls), INT_MAX, 0},
    {"fallback_on", MESSAGE_FIELD_INT, MESSAGE_AT(fallback_on), INT_MAX, 0},
    {"dlr_timeout", MESSAGE_FIELD_INT, MESSAGE_AT(dlr_timeout_s), INT_MAX, 0},
};
#undef MESSAGE_AT

/* A plain field: 1 when f is one (*rc its outcome), 0 when it is not. */
static int message_decode_plain(const sr_json *f, sr_message *m, int *seen, int *rc) {
    for (size_t i = 0; i < sizeof message_fields / sizeof message_fields[0]; i++) {
        const message_field *d = &message_fields[i];
        if (strcmp(f->key, d->name) != 0) continue;
        void *at = (char *)m + d->offset;
        *seen |= d->seen;
        switch (d->kind) {
        case MESSAGE_FIELD_STR: *rc = message_get_str(f, at, 1); break;
        case MESSAGE_FIELD_STR_REQUIRED: *rc = message_get_str(f, at, 0); break;
        case MESSAGE_FIELD_I64: *rc = message_get_int64(f, at); break;
        case MESSAGE_FIELD_INT: *rc = message_get_int(f, at, 0, d->max); break;
        }
        return 1;
    }
    return 0;
}

static int message_decode_field(const sr_json *f, sr_message *m, int *seen) {
    const char *k = f->key;
    int rc = -1;
    if (message_decode_plain(f, m, seen, &rc)) return rc;
    if (strcmp(k, "id") == 0) {
        if (f->type != SR_JSON_STRING || !sr_id_valid(f->str, f->len)) return -1;
        memcpy(m->id, f->str, SR_ID_LEN);
        m->id[SR_ID_LEN] = '\0';
        *seen |= MESSAGE_HAS_ID;
        return 0;
    }
    if (strcmp(k, "status") == 0) {
        *seen |= MESSAGE_HAS_STATUS;
        return message_get_status(f, &m->status);
    }
    if (strcmp(k, "cost") == 0) {
        if (f->type == SR_JSON_NULL) return 0;
        if (f->type != SR_JSON_NUMBER) return -1;
        m->cost = f->num;
        m->has_cost = 1;
        return 0;
    }
    if (strcmp(k, "route") == 0) return message_get_route(f, m);
    if (strcmp(k, "tags") == 0) return message_get_tags(f, m);
    if (strcmp(k, "attempts") == 0) return message_get_attempts(f, m);
    if (strcmp(k, "history") == 0) return message_get_history(f, m);
    return 0; /* unknown fields are ignored: a later minor change may add some */
}

int sr_message_decode_json(const char *data, size_t len, sr_message *m) {
    sr_message_init(m);
    if (!data || len < 3 || (unsigned char)data[0] != SR_MESSAGE_FORMAT_JSON) return -1;
    sr_json_doc doc;
    if (sr_json_parse(&doc, data + 1, len - 1, NULL, 0) < 0) return -1;
    int rc = -1, seen = 0;
    if (doc.root->type != SR_JSON_OBJECT) goto fail;
    for (const sr_json *f = doc.root->child; f; f = f->next)
        if (message_decode_field(f, m, &seen) < 0) goto fail;
    if ((seen & MESSAGE_REQUIRED) != MESSAGE_REQUIRED) goto fail;
    if (m->route_index > m->route_len) goto fail;
    rc = 0;
fail:
    sr_json_doc_free(&doc);
    if (rc < 0) sr_message_free(m);
    return rc;
}
