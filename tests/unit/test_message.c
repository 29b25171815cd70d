/* Tests of the message record: statuses, ids, times, record and API encodings. */
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "codec/json.h"
#include "model/message.h"
#include "unit.h"

/* A message with every field set, strings included that need escaping. */
static void full_message(sr_message *m) {
    sr_message_init(m);
    strcpy(m->id, "01JD3K8ZQ4M6X8Y1R2T3V4W5XZ");
    sr_message_set_str(&m->to, "+84912345678");
    sr_message_set_str(&m->from, "MyShop");
    sr_message_set_str(&m->text, "Order \"#42\" \\ ok\nTiếng Việt ✓ \x01");
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
    m->next_attempt_at_ms = 1795408125000;
    m->tags = calloc(2, sizeof(sr_tag));
    sr_message_set_str(&m->tags[0].key, "order");
    sr_message_set_str(&m->tags[0].value, "42");
    sr_message_set_str(&m->tags[1].key, "kind \"x\"");
    sr_message_set_str(&m->tags[1].value, "otp");
    m->tag_count = 2;
    sr_attempt *a = sr_message_add_attempt(m, "primary", 1795408120001);
    a->duration_ms = 250;
    a->http_status = 503;
    sr_message_set_str(&a->outcome, "retry");
    sr_message_set_str(&a->error, "service unavailable");
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
}

static int str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static void check_same(const sr_message *a, const sr_message *b) {
    CHECK_STR(a->id, b->id);
    CHECK(str_eq(a->to, b->to));
    CHECK(str_eq(a->from, b->from));
    CHECK(str_eq(a->text, b->text));
    CHECK_INT(a->status, b->status);
    CHECK_INT(a->segments, b->segments);
    CHECK_INT(a->encoding, b->encoding);
    CHECK_INT(a->route_len, b->route_len);
    for (int i = 0; i < a->route_len; i++) CHECK(str_eq(a->route[i], b->route[i]));
    CHECK_INT(a->route_index, b->route_index);
    CHECK(str_eq(a->provider, b->provider));
    CHECK(str_eq(a->provider_id, b->provider_id));
    CHECK(str_eq(a->idempotency_key, b->idempotency_key));
    CHECK_INT(a->priority, b->priority);
    CHECK_INT(a->validity_s, b->validity_s);
    CHECK_INT(a->created_at_ms, b->created_at_ms);
    CHECK_INT(a->send_at_ms, b->send_at_ms);
    CHECK_INT(a->expires_at_ms, b->expires_at_ms);
    CHECK_INT(a->next_attempt_at_ms, b->next_attempt_at_ms);
    CHECK_INT(a->tag_count, b->tag_count);
    for (int i = 0; i < a->tag_count; i++) {
        CHECK(str_eq(a->tags[i].key, b->tags[i].key));
        CHECK(str_eq(a->tags[i].value, b->tags[i].value));
    }
    CHECK_INT(a->attempt_count, b->attempt_count);
    for (int i = 0; i < a->attempt_count; i++) {
        CHECK(str_eq(a->attempts[i].provider, b->attempts[i].provider));
        CHECK(str_eq(a->attempts[i].provider_id, b->attempts[i].provider_id));
        CHECK_INT(a->attempts[i].started_at_ms, b->attempts[i].started_at_ms);
        CHECK_INT(a->attempts[i].duration_ms, b->attempts[i].duration_ms);
        CHECK_INT(a->attempts[i].http_status, b->attempts[i].http_status);
        CHECK(str_eq(a->attempts[i].outcome, b->attempts[i].outcome));
        CHECK(str_eq(a->attempts[i].error, b->attempts[i].error));
    }
    CHECK_INT(a->history_count, b->history_count);
    for (int i = 0; i < a->history_count; i++) {
        CHECK_INT(a->history[i].status, b->history[i].status);
        CHECK_INT(a->history[i].at_ms, b->history[i].at_ms);
    }
    CHECK(str_eq(a->error, b->error));
    CHECK(str_eq(a->reply_to, b->reply_to));
}

TEST(status_names_and_forward_rule) {
    const char *names[] = {"accepted",    "queued",  "sending",  "sent",  "delivered",
                           "undelivered", "expired", "rejected", "failed"};
    for (int i = 0; i < SR_ST_COUNT; i++) {
        CHECK_STR(sr_status_name((sr_status)i), names[i]);
        CHECK_INT(sr_status_parse(names[i]), i);
    }
    CHECK_INT(sr_status_parse("Sent"), -1);
    CHECK_INT(sr_status_parse(""), -1);
    CHECK(!sr_status_is_final(SR_ST_SENT));
    CHECK(sr_status_is_final(SR_ST_DELIVERED) && sr_status_is_final(SR_ST_FAILED) && sr_status_is_final(SR_ST_EXPIRED));
    CHECK(sr_status_is_forward(SR_ST_ACCEPTED, SR_ST_QUEUED));
    CHECK(sr_status_is_forward(SR_ST_QUEUED, SR_ST_SENT));
    CHECK(sr_status_is_forward(SR_ST_SENDING, SR_ST_FAILED));
    CHECK(sr_status_is_forward(SR_ST_SENT, SR_ST_UNDELIVERED));
    CHECK(sr_status_is_forward(SR_ST_ACCEPTED, SR_ST_REJECTED));
    CHECK(!sr_status_is_forward(SR_ST_SENT, SR_ST_SENDING));
    CHECK(!sr_status_is_forward(SR_ST_QUEUED, SR_ST_QUEUED));
    CHECK(!sr_status_is_forward(SR_ST_DELIVERED, SR_ST_UNDELIVERED));
    CHECK(!sr_status_is_forward(SR_ST_FAILED, SR_ST_DELIVERED));
    CHECK(!sr_status_is_forward(SR_ST_EXPIRED, SR_ST_SENT));
}

TEST(message_helpers) {
    sr_message m;
    sr_message_init(&m);
    m.send_at_ms = 500;
    m.next_attempt_at_ms = 200;
    CHECK_INT(sr_message_due_ms(&m), 500);
    m.next_attempt_at_ms = 900;
    CHECK_INT(sr_message_due_ms(&m), 900);
    sr_message_set_status(&m, SR_ST_QUEUED, 10);
    sr_message_set_status(&m, SR_ST_SENDING, 20);
    CHECK_INT(m.status, SR_ST_SENDING);
    CHECK_INT(m.history_count, 2);
    CHECK_INT(m.history[1].at_ms, 20);
    sr_message_set_str(&m.to, "+1555");
    sr_message_set_str(&m.to, m.to); /* self-assignment must not read freed memory */
    CHECK_STR(m.to, "+1555");
    sr_message_set_str(&m.to, NULL);
    CHECK(m.to == NULL);
    sr_attempt *a = sr_message_add_attempt(&m, "p1", 77);
    CHECK_STR(a->provider, "p1");
    CHECK(a->provider_id == NULL && a->outcome == NULL && a->http_status == 0);
    sr_message_free(&m);
    CHECK(m.history == NULL && m.attempt_count == 0);
    sr_message_free(&m); /* twice is fine: free leaves it empty */
}

TEST(message_copy_is_deep) {
    sr_message a, b;
    full_message(&a);
    sr_message_copy(&b, &a);
    check_same(&a, &b);
    CHECK(a.text != b.text && a.route != b.route && a.attempts[0].provider != b.attempts[0].provider);
    sr_message_free(&a);
    CHECK_STR(b.tags[1].value, "otp"); /* still valid after the source is gone */
    sr_message_free(&b);
}

TEST(ids_unique_increasing_same_ms) {
    enum { N = 100000 };
    char prev[SR_ID_LEN + 1], id[SR_ID_LEN + 1];
    const int64_t ms = 1795408110123;
    sr_id_new(prev, ms);
    for (int i = 1; i < N; i++) {
        sr_id_new(id, ms);
        CHECK_INT(strlen(id), SR_ID_LEN);
        if (strcmp(prev, id) >= 0) UNIT_FAIL("id %d not increasing: %s then %s", i, prev, id);
        memcpy(prev, id, sizeof id);
    }
    CHECK(sr_id_valid(id, strlen(id)));
    for (int i = 0; i < SR_ID_LEN; i++) /* URL-safe: Crockford base32 upper case only */
        CHECK(strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", id[i]) != NULL);
}

TEST(ids_carry_time_and_sort_by_it) {
    char a[SR_ID_LEN + 1], b[SR_ID_LEN + 1], c[SR_ID_LEN + 1];
    sr_id_new(a, 1795408110123);
    sr_id_new(b, 1795408110124);
    sr_id_new(c, 1795408110000); /* the clock went back: still after b */
    CHECK(strcmp(a, b) < 0);
    CHECK(strcmp(b, c) < 0);
    /* The first 10 characters are the time, big-endian base32. */
    const char *alpha = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    int64_t t = 0;
    for (int i = 0; i < 10; i++) t = t * 32 + (strchr(alpha, b[i]) - alpha);
    CHECK_INT(t, 1795408110124);
    /* Different processes-worth of randomness: two fresh ms give different tails. */
    CHECK(memcmp(a + 10, b + 10, 16) != 0);
    CHECK(!sr_id_valid("01JD3K8ZQ4M6X8Y1R2T3V4W5X", 25));
    CHECK(!sr_id_valid("01JD3K8ZQ4M6X8Y1R2T3V4W5XI", 26)); /* I is not Crockford */
    CHECK(!sr_id_valid("81JD3K8ZQ4M6X8Y1R2T3V4W5XZ", 26)); /* above 2^128 */
    CHECK(!sr_id_valid("01jd3k8zq4m6x8y1r2t3v4w5xz", 26));
    CHECK(sr_id_valid("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", 26));
}

TEST(rfc3339_format) {
    struct {
        int64_t ms;
        const char *text;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1795408110123, "2026-11-23T04:28:30.123Z"},
        {951868799999, "2000-02-29T23:59:59.999Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {1709164800000, "2024-02-29T00:00:00.000Z"},
        {253402300799999, "9999-12-31T23:59:59.999Z"},
        {-62135596800000, "0001-01-01T00:00:00.000Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sr_buf b;
        sr_buf_init(&b);
        sr_time_rfc3339(cases[i].ms, &b);
        CHECK_STR(sr_buf_cstr(&b), cases[i].text);
        int64_t back = 42;
        CHECK_INT(sr_time_parse_rfc3339(b.data, b.len, &back), 0);
        CHECK_INT(back, cases[i].ms);
        sr_buf_free(&b);
    }
}

static int64_t parse_ok(const char *s) {
    int64_t ms = 0;
    if (sr_time_parse_rfc3339(s, strlen(s), &ms) != 0) UNIT_FAIL("rejected valid time %s", s);
    return ms;
}

TEST(rfc3339_parse_valid) {
    CHECK_INT(parse_ok("2026-11-23T04:28:30Z"), 1795408110000);
    CHECK_INT(parse_ok("2026-11-23T04:28:30.123Z"), 1795408110123);
    CHECK_INT(parse_ok("2026-11-23t04:28:30.123z"), 1795408110123);
    CHECK_INT(parse_ok("2026-11-23T04:28:30.5Z"), 1795408110500);
    CHECK_INT(parse_ok("2026-11-23T04:28:30.12Z"), 1795408110120);
    CHECK_INT(parse_ok("2026-11-23T04:28:30.123999999Z"), 1795408110123); /* cut, not rounded */
    CHECK_INT(parse_ok("2026-11-23T11:28:30.123+07:00"), 1795408110123);
    CHECK_INT(parse_ok("2026-11-22T20:28:30.123-08:00"), 1795408110123);
    CHECK_INT(parse_ok("2026-11-23T09:58:30.123+05:30"), 1795408110123);
    CHECK_INT(parse_ok("2026-11-23T04:28:30.123+00:00"), 1795408110123);
    CHECK_INT(parse_ok("2026-11-23T04:28:30.123-00:00"), 1795408110123);
    CHECK_INT(parse_ok("2024-02-29T00:00:00Z"), 1709164800000);
    CHECK_INT(parse_ok("2000-02-29T23:59:59.999Z"), 951868799999);
    CHECK_INT(parse_ok("1970-01-01T00:00:00Z"), 0);
    CHECK_INT(parse_ok("1969-12-31T23:59:59.999Z"), -1);
    CHECK_INT(parse_ok("2016-12-31T23:59:60Z"), 1483228800000); /* leap second: the next instant */
    /* Not NUL-terminated: only len bytes count. */
    int64_t ms = 0;
    CHECK_INT(sr_time_parse_rfc3339("2026-11-23T04:28:30Zjunk", 20, &ms), 0);
    CHECK_INT(ms, 1795408110000);
}

TEST(rfc3339_parse_invalid) {
    const char *bad[] = {
        "",
        "2026-11-23",
        "2026-11-23T04:28:30",  /* no zone */
        "2026-11-23 04:28:30Z", /* space instead of T */
        "2026-02-30T00:00:00Z", /* no such day */
        "2026-02-29T00:00:00Z", /* not a leap year */
        "1900-02-29T00:00:00Z", /* century, not a leap year */
        "2026-04-31T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-01-00T00:00:00Z",
        "2026-11-23T25:00:00Z",
        "2026-11-23T24:00:00Z",
        "2026-11-23T04:60:00Z",
        "2026-11-23T04:28:61Z",
        "2026-11-23T04:28:30.Z", /* empty fraction */
        "2026-11-23T04:28:30,123Z",
        "2026-11-23T04:28:30+0700",
        "2026-11-23T04:28:30+07",
        "2026-11-23T04:28:30+24:00",
        "2026-11-23T04:28:30+07:60",
        "2026-11-23T04:28:30Z ",
        "2026-11-23T04:28:30ZZ",
        "2026-1-23T04:28:30Z",
        "+2026-11-23T04:28:30Z",
        "2026-11-23T04:28:3aZ",
        "2026-11-23T-4:28:30Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 12345;
        if (sr_time_parse_rfc3339(bad[i], strlen(bad[i]), &ms) != -1) UNIT_FAIL("accepted invalid time '%s'", bad[i]);
        CHECK_INT(ms, 12345);
    }
    int64_t ms;
    CHECK_INT(sr_time_parse_rfc3339(NULL, 0, &ms), -1);
}

TEST(rfc3339_round_trip_many) {
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t ms = (int64_t)(x % 253402300800000ull); /* 1970 .. 9999 */
        sr_buf b;
        sr_buf_init(&b);
        sr_time_rfc3339(ms, &b);
        int64_t back = -1;
        CHECK_INT(sr_time_parse_rfc3339(b.data, b.len, &back), 0);
        CHECK_INT(back, ms);
        sr_buf_free(&b);
    }
}

TEST(now_ms_is_wall_clock) {
    int64_t now = sr_now_ms();
    CHECK(now > 1700000000000); /* after 2023 */
    CHECK(now < 4102444800000); /* before 2100 */
}

TEST(record_round_trip_every_field) {
    sr_message m, back;
    full_message(&m);
    sr_buf b;
    sr_buf_init(&b);
    sr_message_encode(&m, &b);
    CHECK_INT((unsigned char)b.data[0], SR_MESSAGE_FORMAT);
    CHECK_INT(sr_message_decode(b.data, b.len, &back), 0);
    check_same(&m, &back);
    /* Encoding the decoded message gives the same bytes. */
    sr_buf b2;
    sr_buf_init(&b2);
    sr_message_encode(&back, &b2);
    CHECK_INT(b2.len, b.len);
    CHECK(memcmp(b.data, b2.data, b.len) == 0);
    sr_buf_free(&b2);
    sr_message_free(&back);
    sr_message_free(&m);

    /* A minimal message: NULLs stay NULL, empty arrays stay empty. */
    sr_message_init(&m);
    strcpy(m.id, "01JD3K8ZQ4M6X8Y1R2T3V4W5XZ");
    sr_message_set_str(&m.to, "+1555000");
    sr_message_set_str(&m.text, "");
    m.created_at_ms = 5;
    sr_buf_reset(&b);
    sr_message_encode(&m, &b);
    CHECK_INT(sr_message_decode(b.data, b.len, &back), 0);
    check_same(&m, &back);
    CHECK(back.from == NULL && back.route_len == 0 && back.tag_count == 0 && back.attempt_count == 0);
    sr_message_free(&back);
    sr_message_free(&m);
    sr_buf_free(&b);
}

TEST(record_duplicate_tag_keys_stay_decodable) {
    sr_message m, back;
    full_message(&m);
    sr_message_set_str(&m.tags[1].key, "order"); /* same key twice: the first wins */
    sr_buf b;
    sr_buf_init(&b);
    sr_message_encode(&m, &b);
    CHECK_INT(sr_message_decode(b.data, b.len, &back), 0);
    CHECK_INT(back.tag_count, 1);
    CHECK_STR(back.tags[0].value, "42");
    sr_message_free(&back);
    sr_message_free(&m);
    sr_buf_free(&b);
}

TEST(record_out_of_range_fields_still_decode) {
    sr_message m, back;
    full_message(&m);
    m.priority = 9;
    m.encoding = 5;
    m.segments = -1;
    m.validity_s = -30;
    m.route_index = 7; /* past the route */
    m.attempts[0].http_status = 1234;
    sr_message_set_str(&m.attempts[1].provider, NULL);
    sr_buf b;
    sr_buf_init(&b);
    sr_message_encode(&m, &b);
    CHECK_INT(sr_message_decode(b.data, b.len, &back), 0);
    CHECK_INT(back.priority, 3);
    CHECK_INT(back.encoding, 0);
    CHECK_INT(back.segments, 0);
    CHECK_INT(back.validity_s, 0);
    CHECK_INT(back.route_index, 2);
    CHECK_INT(back.attempts[0].http_status, 999);
    CHECK(back.attempts[1].provider == NULL);
    sr_message_free(&back);
    sr_message_free(&m);
    sr_buf_free(&b);
}

/* Decodes version byte + json (the record of older versions); returns the decoder's answer. */
static int decode_json(const char *json) {
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_putc(&b, (char)SR_MESSAGE_FORMAT_JSON);
    sr_buf_puts(&b, json);
    sr_message m;
    int rc = sr_message_decode(b.data, b.len, &m);
    sr_message_free(&m);
    sr_buf_free(&b);
    return rc;
}

#define REC_ID "{\"id\":\"01JD3K8ZQ4M6X8Y1R2T3V4W5XZ\""
#define REC_HEAD REC_ID ",\"to\":\"+1555\",\"text\":\"hi\",\"status\":\"queued\",\"created_at\":1"

TEST(record_decode_rejects_corrupt) {
    CHECK_INT(decode_json(REC_HEAD "}"), 0); /* the baseline is valid */
    const char *bad[] = {
        REC_HEAD,                                                                    /* truncated JSON */
        REC_HEAD ",}",                                                               /* bad JSON */
        "[1,2]",                                                                     /* not an object */
        "{\"to\":\"+1555\",\"text\":\"hi\",\"status\":\"queued\",\"created_at\":1}", /* no id */
        REC_HEAD ",\"id\":\"01JD3K8ZQ4M6X8Y1R2T3V4W5XZ\"}",                          /* duplicate key */
        "{\"id\":\"short\",\"to\":\"+1\",\"text\":\"\",\"status\":\"queued\",\"created_at\":1}",
        REC_ID ",\"to\":null,\"text\":\"\",\"status\":\"queued\",\"created_at\":1}",
        REC_ID ",\"to\":\"+1\",\"text\":\"\",\"status\":\"bogus\",\"created_at\":1}",
        REC_ID ",\"to\":\"+1\",\"text\":\"\",\"status\":3,\"created_at\":1}",
        REC_ID ",\"to\":\"+1\",\"text\":\"\",\"status\":\"queued\",\"created_at\":\"1\"}",
        REC_HEAD ",\"priority\":\"3\"}",
        REC_HEAD ",\"priority\":9}",
        REC_HEAD ",\"segments\":1.5}",
        REC_HEAD ",\"segments\":-1}",
        REC_HEAD ",\"encoding\":7}",
        REC_HEAD ",\"send_at\":1e3}",
        REC_HEAD ",\"send_at\":99999999999999999999}",
        REC_HEAD ",\"route\":\"primary\"}",
        REC_HEAD ",\"route\":[1]}",
        REC_HEAD ",\"route\":[],\"route_index\":2}",
        REC_HEAD ",\"tags\":[]}",
        REC_HEAD ",\"tags\":{\"a\":1}}",
        REC_HEAD ",\"attempts\":[1]}",
        REC_HEAD ",\"attempts\":[{\"provider\":7}]}",
        REC_HEAD ",\"attempts\":[{\"provider\":\"p\",\"http_status\":\"200\"}]}",
        REC_HEAD ",\"attempts\":{}}",
        REC_HEAD ",\"history\":[{\"status\":\"sent\"}]}",
        REC_HEAD ",\"history\":[{\"status\":\"nope\",\"at\":1}]}",
        REC_HEAD ",\"from\":5}",
        REC_HEAD ",\"error\":[]}",
        /* A second collection under a name with a NUL once overflowed the first one's array. */
        REC_HEAD ",\"route\":[\"a\",\"b\"],\"route\\u0000\":[\"c\"]}",
        REC_HEAD ",\"tags\":{\"a\":\"1\"},\"tags\\u0000\":{\"b\":\"2\"}}",
        REC_HEAD ",\"attempts\":[{},{}],\"attempts\\u0000\":[{}]}",
        REC_HEAD ",\"history\":[{\"status\":\"queued\",\"at\":1}],\"history\\u0000\":[{\"status\":\"sent\",\"at\":2}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (decode_json(bad[i]) != -1) UNIT_FAIL("accepted corrupt record %zu: %s", i, bad[i]);

    /* Wrong version byte, empty, NULL. */
    sr_message m;
    char rec[] = "\x02{}";
    CHECK_INT(sr_message_decode(rec, sizeof rec - 1, &m), -1);
    CHECK_INT(sr_message_decode("", 0, &m), -1);
    CHECK_INT(sr_message_decode(NULL, 0, &m), -1);
    sr_message_free(&m);
}

TEST(record_decode_truncations_and_flips) {
    sr_message m, back;
    full_message(&m);
    sr_buf b;
    sr_buf_init(&b);
    sr_message_encode(&m, &b);
    /* Every proper prefix is corrupt. */
    for (size_t n = 0; n < b.len; n++) {
        char *copy = malloc(n ? n : 1); /* exact size: ASan catches any read past it */
        memcpy(copy, b.data, n);
        if (sr_message_decode(copy, n, &back) != -1) UNIT_FAIL("prefix of %zu bytes accepted", n);
        CHECK(back.to == NULL && back.attempts == NULL);
        free(copy);
    }
    /* Random byte flips: never a crash; what decodes is a complete message. */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        char *copy = malloc(b.len);
        memcpy(copy, b.data, b.len);
        int flips = 1 + i % 4;
        for (int f = 0; f < flips; f++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            copy[x % b.len] ^= (char)(1u << (x >> 32) % 8);
        }
        if (sr_message_decode(copy, b.len, &back) == 0) {
            accepted++;
            CHECK(back.to != NULL && back.text != NULL && sr_id_valid(back.id, strlen(back.id)));
        } else {
            CHECK(back.to == NULL && back.route == NULL && back.history == NULL);
        }
        sr_message_free(&back);
        free(copy);
    }
    CHECK(accepted < 20000);
    sr_message_free(&m);
    sr_buf_free(&b);
}

TEST(times_at_the_ends_of_int64_are_written_without_overflow) {
    /* A corrupt record may hold any int64 time; the API view must still write it (UBSan checks). */
    sr_buf b;
    sr_buf_init(&b);
    sr_time_rfc3339(INT64_MIN, &b);
    CHECK(b.len > 0);
    sr_buf_reset(&b);
    sr_time_rfc3339(INT64_MAX, &b);
    CHECK(b.len > 0);
    sr_buf_reset(&b);
    sr_time_rfc3339(-1, &b);
    CHECK_STR(sr_buf_cstr(&b), "1969-12-31T23:59:59.999Z");
    sr_buf_reset(&b);
    sr_time_rfc3339(-86400000, &b);
    CHECK_STR(sr_buf_cstr(&b), "1969-12-31T00:00:00.000Z");
    sr_buf_reset(&b);
    sr_time_rfc3339(1795428909123, &b);
    CHECK_STR(sr_buf_cstr(&b), "2026-11-23T10:15:09.123Z");
    sr_buf_free(&b);
}

TEST(api_json_shape) {
    sr_message m;
    full_message(&m);
    sr_buf b;
    sr_buf_init(&b);
    sr_message_to_api_json(&m, &b);
    sr_json_doc doc;
    char err[128];
    if (sr_json_parse(&doc, b.data, b.len, err, sizeof err) != 0) UNIT_FAIL("invalid JSON: %s: %s", err, b.data);
    const sr_json *r = doc.root;
    CHECK_STR(sr_json_get(r, "id")->str, "01JD3K8ZQ4M6X8Y1R2T3V4W5XZ");
    CHECK_STR(sr_json_get(r, "to")->str, "+84912345678");
    CHECK_STR(sr_json_get(r, "from")->str, "MyShop");
    CHECK_STR(sr_json_get(r, "text")->str, m.text);
    CHECK_STR(sr_json_get(r, "status")->str, "sent");
    CHECK_STR(sr_json_get(r, "segments")->str, "2");
    CHECK_STR(sr_json_get(r, "encoding")->str, "ucs2");
    CHECK_INT(sr_json_get(r, "route")->count, 2);
    CHECK_STR(sr_json_get(r, "route")->child->next->str, "backup");
    CHECK_STR(sr_json_get(r, "provider")->str, "backup");
    CHECK_STR(sr_json_get(r, "provider_id")->str, "bk-777");
    const sr_json *attempts = sr_json_get(r, "attempts");
    CHECK_INT(attempts->count, 2);
    const sr_json *a0 = attempts->child;
    CHECK_STR(sr_json_get(a0, "provider")->str, "primary");
    CHECK_INT(sr_json_get(a0, "provider_id")->type, SR_JSON_NULL);
    CHECK_STR(sr_json_get(a0, "started_at")->str, "2026-11-23T04:28:40.001Z");
    CHECK_STR(sr_json_get(a0, "duration_ms")->str, "250");
    CHECK_STR(sr_json_get(a0, "http_status")->str, "503");
    CHECK_STR(sr_json_get(a0, "outcome")->str, "retry");
    CHECK_STR(sr_json_get(a0, "error")->str, "service unavailable");
    CHECK_INT(sr_json_get(a0, "error")->type, SR_JSON_STRING);
    CHECK_INT(sr_json_get(a0->next, "error")->type, SR_JSON_NULL);
    const sr_json *history = sr_json_get(r, "history");
    CHECK_INT(history->count, 3);
    CHECK_STR(sr_json_get(history->child, "status")->str, "accepted");
    CHECK_STR(sr_json_get(history->child, "at")->str, "2026-11-23T04:28:30.123Z");
    CHECK_STR(sr_json_get(r, "error")->str, "primary: service unavailable");
    CHECK_STR(sr_json_get(sr_json_get(r, "tags"), "kind \"x\"")->str, "otp");
    CHECK_STR(sr_json_get(r, "created_at")->str, "2026-11-23T04:28:30.123Z");
    CHECK_STR(sr_json_get(r, "send_at")->str, "2026-11-23T04:28:40.000Z");
    CHECK_STR(sr_json_get(r, "expires_at")->str, "2026-11-23T05:28:40.000Z");
    CHECK_STR(sr_json_get(r, "priority")->str, "3");
    CHECK_STR(sr_json_get(r, "validity")->str, "3600");
    CHECK_STR(sr_json_get(r, "idempotency_key")->str, "order-42");
    CHECK_STR(sr_json_get(r, "reply_to")->str, "01JD3K8ZQ4M6X8Y1R2T3V4W5X0");
    CHECK(sr_json_get(r, "route_index") == NULL && sr_json_get(r, "next_attempt_at") == NULL);
    sr_json_doc_free(&doc);
    sr_message_free(&m);

    /* Absent values are null, empty collections empty. */
    sr_message_init(&m);
    strcpy(m.id, "01JD3K8ZQ4M6X8Y1R2T3V4W5XZ");
    sr_message_set_str(&m.to, "+1555");
    sr_message_set_str(&m.text, "hi");
    m.created_at_ms = 1795408110123;
    sr_message_add_attempt(&m, "p", 1795408110123); /* no HTTP answer: http_status null */
    sr_buf_reset(&b);
    sr_message_to_api_json(&m, &b);
    CHECK(sr_json_parse(&doc, b.data, b.len, NULL, 0) == 0);
    r = doc.root;
    const char *nulls[] = {"from",    "provider",   "provider_id",     "error",
                           "send_at", "expires_at", "idempotency_key", "reply_to"};
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        if (!sr_json_get(r, nulls[i]) || sr_json_get(r, nulls[i])->type != SR_JSON_NULL)
            UNIT_FAIL("%s is not null in %s", nulls[i], b.data);
    CHECK_STR(sr_json_get(r, "encoding")->str, "gsm7");
    CHECK_STR(sr_json_get(r, "status")->str, "accepted");
    CHECK_INT(sr_json_get(r, "route")->type, SR_JSON_ARRAY);
    CHECK_INT(sr_json_get(r, "route")->count, 0);
    CHECK_INT(sr_json_get(r, "tags")->type, SR_JSON_OBJECT);
    CHECK_INT(sr_json_get(r, "history")->count, 0);
    CHECK_INT(sr_json_get(sr_json_get(r, "attempts")->child, "http_status")->type, SR_JSON_NULL);
    sr_json_doc_free(&doc);
    sr_message_free(&m);
    sr_buf_free(&b);
}
