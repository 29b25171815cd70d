/* Tests of the binary message record (src/model/message_record.c): every field
 * round trips, the binary and the JSON record (what older versions wrote) read
 * back as the same message, and anything that is not exactly one valid record
 * is refused without a crash. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "model/message.h"
#include "model/message_record.h"
#include "unit.h"

#define ID_A "01JD3K8ZQ4M6X8Y1R2T3V4W5XZ"

/* A message with every field set to a value other than its default. */
static void every_field(sr_message *m) {
    sr_message_init(m);
    strcpy(m->id, ID_A);
    sr_message_set_str(&m->to, "+84912345678");
    sr_message_set_str(&m->from, "MyShop");
    sr_message_set_str(&m->text, "Order \"#42\" \\ ok\nTiếng Việt ✓ \x01");
    m->status = SR_ST_SENT;
    m->segments = 2;
    m->encoding = 1;
    m->route = calloc(2, sizeof(char *));
    sr_message_set_str(&m->route[0], "primary");
    sr_message_set_str(&m->route[1], "backup");
    m->route_len = 2;
    m->route_index = 1;
    sr_message_set_str(&m->provider, "backup");
    sr_message_set_str(&m->provider_id, "bk-777");
    sr_message_set_str(&m->idempotency_key, "order-42");
    m->priority = 3;
    m->validity_s = 3600;
    m->created_at_ms = 1795408110123;
    m->send_at_ms = 1795408120000;
    m->expires_at_ms = 1795411720000;
    m->next_attempt_at_ms = -5; /* negative times survive too */
    m->tags = calloc(2, sizeof(sr_tag));
    sr_message_set_str(&m->tags[0].key, "order");
    sr_message_set_str(&m->tags[0].value, "42");
    sr_message_set_str(&m->tags[1].key, "kind");
    m->tag_count = 2; /* tags[1].value NULL */
    sr_attempt *a = sr_message_add_attempt(m, "primary", 1795408120001);
    a->duration_ms = 250;
    a->http_status = 503;
    sr_message_set_str(&a->outcome, "fallback");
    sr_message_set_str(&a->error, "service unavailable");
    sr_message_set_str(&a->report, "undelivered");
    a->reported_at_ms = 1795408121000;
    sr_message_set_str(&a->part_reports, "u.");
    a = sr_message_add_attempt(m, "backup", 1795408125002);
    sr_message_set_str(&a->provider_id, "bk-777");
    a->duration_ms = 80;
    a->http_status = 200;
    sr_message_set_str(&a->outcome, "sent");
    sr_message_set_status(m, SR_ST_ACCEPTED, 1795408110123);
    sr_message_set_status(m, SR_ST_QUEUED, 1795408110124);
    sr_message_set_status(m, SR_ST_SENT, 1795408125082);
    sr_message_set_str(&m->error, "primary: service unavailable");
    sr_message_set_str(&m->reply_to, "01JD3K8ZQ4M6X8Y1R2T3V4W5X0");
    m->parts = 3;
    sr_message_set_str(&m->part_reports, "d.d");
    m->sent_at_ms = 1795408125082;
    m->watch_at_ms = 1795408185082;
    m->polls = 4;
    m->fallback_on = 1 << SR_ST_UNDELIVERED | 1 << SR_ST_EXPIRED;
    m->dlr_timeout_s = 60;
    m->cost = 0.0425;
    m->has_cost = 1;
}

static int str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static void check_attempts_same(const sr_message *a, const sr_message *b) {
    CHECK_INT(a->attempt_count, b->attempt_count);
    for (int i = 0; i < a->attempt_count; i++) {
        const sr_attempt *x = &a->attempts[i], *y = &b->attempts[i];
        CHECK(str_eq(x->provider, y->provider));
        CHECK(str_eq(x->provider_id, y->provider_id));
        CHECK_INT(x->started_at_ms, y->started_at_ms);
        CHECK_INT(x->duration_ms, y->duration_ms);
        CHECK_INT(x->http_status, y->http_status);
        CHECK(str_eq(x->outcome, y->outcome));
        CHECK(str_eq(x->error, y->error));
        CHECK(str_eq(x->report, y->report));
        CHECK_INT(x->reported_at_ms, y->reported_at_ms);
        CHECK(str_eq(x->part_reports, y->part_reports));
    }
}

/* Every field of sr_message, compared. */
static void check_same(const sr_message *a, const sr_message *b) {
    CHECK_STR(a->id, b->id);
    CHECK(str_eq(a->to, b->to) && str_eq(a->from, b->from) && str_eq(a->text, b->text));
    CHECK_INT(a->status, b->status);
    CHECK_INT(a->segments, b->segments);
    CHECK_INT(a->encoding, b->encoding);
    CHECK_INT(a->route_len, b->route_len);
    for (int i = 0; i < a->route_len; i++) CHECK(str_eq(a->route[i], b->route[i]));
    CHECK_INT(a->route_index, b->route_index);
    CHECK(str_eq(a->provider, b->provider) && str_eq(a->provider_id, b->provider_id));
    CHECK(str_eq(a->idempotency_key, b->idempotency_key));
    CHECK_INT(a->priority, b->priority);
    CHECK_INT(a->validity_s, b->validity_s);
    CHECK_INT(a->created_at_ms, b->created_at_ms);
    CHECK_INT(a->send_at_ms, b->send_at_ms);
    CHECK_INT(a->expires_at_ms, b->expires_at_ms);
    CHECK_INT(a->next_attempt_at_ms, b->next_attempt_at_ms);
    CHECK_INT(a->tag_count, b->tag_count);
    for (int i = 0; i < a->tag_count; i++)
        CHECK(str_eq(a->tags[i].key, b->tags[i].key) && str_eq(a->tags[i].value, b->tags[i].value));
    check_attempts_same(a, b);
    CHECK_INT(a->history_count, b->history_count);
    for (int i = 0; i < a->history_count; i++) {
        CHECK_INT(a->history[i].status, b->history[i].status);
        CHECK_INT(a->history[i].at_ms, b->history[i].at_ms);
    }
    CHECK(str_eq(a->error, b->error) && str_eq(a->reply_to, b->reply_to));
    CHECK_INT(a->parts, b->parts);
    CHECK(str_eq(a->part_reports, b->part_reports));
    CHECK_INT(a->sent_at_ms, b->sent_at_ms);
    CHECK_INT(a->watch_at_ms, b->watch_at_ms);
    CHECK_INT(a->polls, b->polls);
    CHECK_INT(a->fallback_on, b->fallback_on);
    CHECK_INT(a->dlr_timeout_s, b->dlr_timeout_s);
    CHECK_INT(a->has_cost, b->has_cost);
    CHECK(!a->has_cost || a->cost == b->cost);
}

/* The message's API JSON, as GET /v1/messages/ID answers it (caller frees). */
static char *api_json(const sr_message *m) {
    sr_buf b;
    sr_buf_init(&b);
    sr_message_to_api_json(m, &b);
    return sr_buf_steal(&b, NULL);
}

TEST(binary_round_trip_every_field) {
    sr_message m, back;
    every_field(&m);
    sr_buf b, again;
    sr_buf_init(&b);
    sr_buf_init(&again);
    sr_message_encode(&m, &b);
    CHECK_INT((unsigned char)b.data[0], SR_MESSAGE_FORMAT_BINARY);
    CHECK_INT(sr_message_decode(b.data, b.len, &back), 0);
    check_same(&m, &back);
    sr_message_encode(&back, &again); /* the same bytes again */
    CHECK_INT(again.len, b.len);
    CHECK(memcmp(again.data, b.data, b.len) == 0);
    sr_message_free(&back);

    /* And the JSON record of older versions, which is several times longer, reads as the same message. */
    sr_buf json;
    sr_buf_init(&json);
    sr_message_encode_json(&m, &json);
    CHECK((unsigned char)json.data[0] == SR_MESSAGE_FORMAT_JSON);
    CHECK(b.len * 2 < json.len);
    CHECK_INT(sr_message_decode(json.data, json.len, &back), 0);
    check_same(&m, &back);
    sr_message_free(&back);
    sr_buf_free(&json);
    sr_buf_free(&b);
    sr_buf_free(&again);
    sr_message_free(&m);
}

TEST(binary_round_trip_minimal_message) {
    sr_message m, back;
    sr_message_init(&m);
    strcpy(m.id, ID_A);
    sr_message_set_str(&m.to, "+1555000");
    sr_message_set_str(&m.text, "");
    sr_buf b;
    sr_buf_init(&b);
    sr_message_encode(&m, &b);
    CHECK_INT(sr_message_decode(b.data, b.len, &back), 0);
    check_same(&m, &back);
    CHECK(back.from == NULL && back.route == NULL && back.tags == NULL && back.attempts == NULL);
    CHECK(back.history == NULL && back.error == NULL && back.part_reports == NULL);
    CHECK(b.len < 100); /* the JSON record of it: about 420 bytes */
    sr_message_free(&back);
    /* NULL to and text are written as "" (as the JSON record did): the record always reads back. */
    sr_message_set_str(&m.to, NULL);
    sr_message_set_str(&m.text, NULL);
    sr_buf_reset(&b);
    sr_message_encode(&m, &b);
    CHECK_INT(sr_message_decode(b.data, b.len, &back), 0);
    CHECK_STR(back.to, "");
    CHECK_STR(back.text, "");
    sr_message_free(&back);
    sr_message_free(&m);
    sr_buf_free(&b);
}

/* Encodes m in both formats, decodes both: the two messages must be the same, and so must their API
 * JSON; with in_range (nothing for the encoders to clamp), the API JSON of m itself too. */
static void check_formats_agree(const sr_message *m, int in_range) {
    sr_buf bin, json;
    sr_buf_init(&bin);
    sr_buf_init(&json);
    sr_message_encode(m, &bin);
    sr_message_encode_json(m, &json);
    sr_message from_bin, from_json;
    CHECK_INT(sr_message_decode(bin.data, bin.len, &from_bin), 0);
    CHECK_INT(sr_message_decode(json.data, json.len, &from_json), 0);
    check_same(&from_json, &from_bin);
    char *a = api_json(&from_bin), *b = api_json(&from_json), *orig = api_json(m);
    CHECK_STR(a, b);
    if (in_range) CHECK_STR(a, orig);
    free(a);
    free(b);
    free(orig);
    sr_message_free(&from_bin);
    sr_message_free(&from_json);
    sr_buf_free(&bin);
    sr_buf_free(&json);
}

TEST(binary_and_json_records_normalise_alike) {
    sr_message m;
    every_field(&m);
    check_formats_agree(&m, 1);
    /* Out-of-range numbers are clamped, as the JSON record did. */
    m.priority = 9;
    m.encoding = 5;
    m.segments = -1;
    m.validity_s = -30;
    m.route_index = 7;
    m.parts = -2;
    m.polls = -1;
    m.attempts[0].http_status = 1234;
    m.attempts[1].reported_at_ms = 99; /* no report: not kept */
    check_formats_agree(&m, 0);
    /* Invalid UTF-8 becomes U+FFFD; a tag key written twice keeps its first value. */
    sr_message_set_str(&m.text, "bad \xC3 byte \xFF and \xED\xA0\x80 surrogate, ok é");
    sr_message_set_str(&m.provider_id, "\x80id");
    sr_message_set_str(&m.tags[1].key, "order");
    check_formats_agree(&m, 0);
    sr_message back;
    sr_buf b;
    sr_buf_init(&b);
    sr_message_encode(&m, &b);
    CHECK_INT(sr_message_decode(b.data, b.len, &back), 0);
    CHECK_STR(back.text, "bad \xEF\xBF\xBD byte \xEF\xBF\xBD and \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD surrogate, ok é");
    CHECK_INT(back.tag_count, 1);
    CHECK_STR(back.tags[0].value, "42");
    sr_message_free(&back);
    /* A cost that is not a number within +-1e15 is dropped. */
    m.cost = NAN;
    check_formats_agree(&m, 0);
    m.cost = 2e15;
    check_formats_agree(&m, 0);
    sr_buf_reset(&b);
    sr_message_encode(&m, &b);
    CHECK_INT(sr_message_decode(b.data, b.len, &back), 0);
    CHECK_INT(back.has_cost, 0);
    sr_message_free(&back);
    sr_buf_free(&b);
    sr_message_free(&m);
}

TEST(binary_many_tags_dedup_past_the_stack) {
    sr_message m, back;
    sr_message_init(&m);
    strcpy(m.id, ID_A);
    sr_message_set_str(&m.to, "+1");
    sr_message_set_str(&m.text, "x");
    m.tags = calloc(40, sizeof(sr_tag));
    for (int i = 0; i < 40; i++) {
        char key[16], val[16];
        snprintf(key, sizeof key, "k%d", i % 20);
        snprintf(val, sizeof val, "v%d", i);
        sr_message_set_str(&m.tags[i].key, key);
        sr_message_set_str(&m.tags[i].value, val);
    }
    m.tag_count = 40;
    sr_buf b;
    sr_buf_init(&b);
    sr_message_encode(&m, &b);
    CHECK_INT(sr_message_decode(b.data, b.len, &back), 0);
    CHECK_INT(back.tag_count, 20);
    CHECK_STR(back.tags[19].key, "k19");
    CHECK_STR(back.tags[19].value, "v19");
    check_formats_agree(&m, 1);
    sr_message_free(&back);
    sr_message_free(&m);
    sr_buf_free(&b);
}

TEST(binary_refuses_every_prefix_and_any_extra_byte) {
    sr_message m, back;
    every_field(&m);
    sr_buf b;
    sr_buf_init(&b);
    sr_message_encode(&m, &b);
    for (size_t n = 0; n < b.len; n++) {
        char *copy = malloc(n ? n : 1); /* exact size: ASan catches any read past it */
        memcpy(copy, b.data, n);
        if (sr_message_decode(copy, n, &back) != -1) UNIT_FAIL("prefix of %zu bytes accepted", n);
        CHECK(back.to == NULL && back.attempts == NULL && back.route == NULL);
        free(copy);
    }
    sr_buf_putc(&b, 0);
    CHECK_INT(sr_message_decode(b.data, b.len, &back), -1);
    CHECK_INT(sr_record_decode_binary(NULL, 0, &back), -1);
    sr_message_free(&m);
    sr_buf_free(&b);
}

/* The record of a minimal message with one byte at `at` replaced. */
static int decode_patched(size_t at, unsigned char byte) {
    sr_message m, back;
    sr_message_init(&m);
    strcpy(m.id, ID_A);
    sr_message_set_str(&m.to, "+1");
    sr_message_set_str(&m.text, "hi");
    sr_buf b;
    sr_buf_init(&b);
    sr_message_encode(&m, &b);
    if (at < b.len) b.data[at] = (char)byte;
    int rc = sr_message_decode(b.data, b.len, &back);
    sr_message_free(&back);
    sr_message_free(&m);
    sr_buf_free(&b);
    return rc;
}

TEST(binary_refuses_out_of_range_fields) {
    /* Layout of the minimal record: format, 26 id bytes, status (27), to (28: length 3, "+1"),
     * from (31), text (32: length 3, "hi"), segments (35), encoding (36), route count (37),
     * route index (38), provider (39), provider id (40), idempotency key (41), priority (42). */
    CHECK_INT(decode_patched(SIZE_MAX, 0), 0); /* the baseline decodes */
    CHECK_INT(decode_patched(0, 1), -1);       /* the JSON format byte on a binary body */
    CHECK_INT(decode_patched(0, 3), -1);       /* a format from the future */
    CHECK_INT(decode_patched(1, 'I'), -1);     /* not an id character */
    CHECK_INT(decode_patched(27, SR_ST_COUNT), -1);
    CHECK_INT(decode_patched(28, 0), -1);   /* `to` NULL */
    CHECK_INT(decode_patched(28, 50), -1);  /* `to` longer than the record */
    CHECK_INT(decode_patched(32, 0), -1);   /* `text` NULL */
    CHECK_INT(decode_patched(36, 2), -1);   /* encoding */
    CHECK_INT(decode_patched(37, 100), -1); /* route count past the record */
    CHECK_INT(decode_patched(38, 1), -1);   /* route index past the route */
    CHECK_INT(decode_patched(42, 4), -1);   /* priority */
}

/* The minimal record with the segments byte (35) replaced by the bytes of `varint`. */
static int decode_with_segments(const char *varint, size_t n) {
    sr_message m, back;
    sr_message_init(&m);
    strcpy(m.id, ID_A);
    sr_message_set_str(&m.to, "+1");
    sr_message_set_str(&m.text, "hi");
    sr_buf b, c;
    sr_buf_init(&b);
    sr_buf_init(&c);
    sr_message_encode(&m, &b);
    sr_buf_append(&c, b.data, 35);
    sr_buf_append(&c, varint, n);
    sr_buf_append(&c, b.data + 36, b.len - 36);
    int rc = sr_message_decode(c.data, c.len, &back);
    int segments = back.segments;
    sr_message_free(&back);
    sr_message_free(&m);
    sr_buf_free(&b);
    sr_buf_free(&c);
    return rc == 0 ? segments : -1;
}

TEST(binary_varints_are_checked) {
    CHECK_INT(decode_with_segments("\x05", 1), 5);
    CHECK_INT(decode_with_segments("\x85\x00", 2), 5);                                   /* long, but a number */
    CHECK_INT(decode_with_segments("\xFF\xFF\xFF\xFF\x07", 5), 2147483647);              /* INT_MAX */
    CHECK_INT(decode_with_segments("\x80\x80\x80\x80\x08", 5), -1);                      /* INT_MAX + 1 */
    CHECK_INT(decode_with_segments("\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x02", 10), -1); /* past 64 bits */
    CHECK_INT(decode_with_segments("\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x01", 11), -1);
}

TEST(binary_random_flips_never_crash) {
    sr_message m, back;
    every_field(&m);
    sr_buf b;
    sr_buf_init(&b);
    sr_message_encode(&m, &b);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        char *copy = malloc(b.len);
        memcpy(copy, b.data, b.len);
        for (int f = 0; f < 1 + i % 4; f++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            copy[x % b.len] ^= (char)(1u << (x >> 32) % 8);
        }
        if (sr_message_decode(copy, b.len, &back) == 0) {
            accepted++; /* a flip inside a string or a time: a complete message all the same */
            CHECK(back.to != NULL && back.text != NULL && sr_id_valid(back.id, strlen(back.id)));
            CHECK(back.route_index <= back.route_len);
        } else {
            CHECK(back.to == NULL && back.route == NULL && back.history == NULL && back.attempts == NULL);
        }
        sr_message_free(&back);
        free(copy);
    }
    CHECK(accepted > 0 && accepted < 20000);
    sr_message_free(&m);
    sr_buf_free(&b);
}

TEST(copy_in_arena_is_a_deep_copy) {
    sr_message m, copy;
    sr_arena arena;
    sr_arena_init(&arena, 256); /* small blocks: the copy spans several, the text gets its own */
    every_field(&m);
    char long_text[600];
    memset(long_text, 'a', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    sr_message_set_str(&m.text, long_text);
    sr_message_copy_in(&copy, &m, &arena);
    check_same(&m, &copy);
    CHECK(copy.text != m.text && copy.route != m.route && copy.attempts[1].provider != m.attempts[1].provider);
    sr_message kept;
    sr_message_copy(&kept, &m);
    sr_message_free(&m); /* the arena copy does not depend on the original */
    check_same(&kept, &copy);
    sr_arena_reset(&arena);
    sr_message_copy_in(&copy, &kept, &arena);
    check_same(&kept, &copy);
    sr_message_free(&kept);
    sr_arena_free(&arena);
}
