/* Unit tests for src/codec/jsonw.c: the streaming JSON writer. Every
 * document written is also parsed back with the strict parser, so a comma
 * or an escape out of place fails here. */
#include <math.h>
#include <stdint.h>

#include "core/buf.h"
#include "codec/json.h"
#include "codec/jsonw.h"
#include "unit.h"

/* The buffer's text, checked to be one valid JSON document. */
static const char *valid(sr_buf *b) {
    const char *text = sr_buf_cstr(b);
    sr_json_doc doc;
    char err[160];
    if (sr_json_parse(&doc, b->data, b->len, err, sizeof err) != 0) UNIT_FAIL("invalid JSON (%s): %s", err, text);
    sr_json_doc_free(&doc);
    return text;
}

TEST(empty_containers) {
    sr_buf b;
    sr_buf_init(&b);
    sr_jw w;
    sr_jw_init(&w, &b);
    sr_jw_array_begin(&w);
    sr_jw_object_begin(&w);
    sr_jw_object_end(&w);
    sr_jw_array_begin(&w);
    sr_jw_array_end(&w);
    sr_jw_array_end(&w);
    CHECK_STR(valid(&b), "[{},[]]");
    sr_buf_free(&b);
}

TEST(nesting_places_every_comma) {
    sr_buf b;
    sr_buf_init(&b);
    sr_jw w;
    sr_jw_init(&w, &b);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "id", "m1");
    sr_jw_key(&w, "list");
    sr_jw_array_begin(&w);
    for (int i = 0; i < 3; i++) {
        sr_jw_object_begin(&w);
        sr_jw_field_int(&w, "n", i);
        sr_jw_key(&w, "tags");
        sr_jw_array_begin(&w);
        sr_jw_cstr(&w, "a");
        sr_jw_null(&w);
        sr_jw_array_end(&w);
        sr_jw_object_end(&w);
    }
    sr_jw_array_end(&w);
    sr_jw_key(&w, "deep");
    sr_jw_object_begin(&w);
    sr_jw_key(&w, "inner");
    sr_jw_object_begin(&w);
    sr_jw_object_end(&w);
    sr_jw_field_bool(&w, "ok", true);
    sr_jw_object_end(&w);
    sr_jw_field_null(&w, "none");
    sr_jw_object_end(&w);
    CHECK_STR(valid(&b), "{\"id\":\"m1\",\"list\":[{\"n\":0,\"tags\":[\"a\",null]},{\"n\":1,\"tags\":[\"a\",null]},"
                         "{\"n\":2,\"tags\":[\"a\",null]}],\"deep\":{\"inner\":{},\"ok\":true},\"none\":null}");
    sr_buf_free(&b);
}

TEST(appends_after_what_the_buffer_holds) {
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_puts(&b, "data: ");
    sr_jw w;
    sr_jw_init(&w, &b);
    sr_jw_object_begin(&w);
    sr_jw_field_uint(&w, "a", 1);
    sr_jw_object_end(&w);
    CHECK_STR(sr_buf_cstr(&b), "data: {\"a\":1}");
    sr_buf_free(&b);
}

TEST(strings_are_escaped) {
    sr_buf b;
    sr_buf_init(&b);
    sr_jw w;
    sr_jw_init(&w, &b);
    sr_jw_object_begin(&w);
    static const char text[] = "q\" b\\ n\n r\r t\t bell\x07 us\x1f nul";
    sr_jw_key(&w, "k\"ey");
    sr_jw_string(&w, text, sizeof text); /* includes the NUL */
    sr_jw_object_end(&w);
    CHECK_STR(valid(&b), "{\"k\\\"ey\":\"q\\\" b\\\\ n\\n r\\r t\\t bell\\u0007 us\\u001f nul\\u0000\"}");
    sr_buf_free(&b);
}

TEST(utf8_is_kept_and_invalid_bytes_replaced) {
    sr_buf b;
    sr_buf_init(&b);
    sr_jw w;
    sr_jw_init(&w, &b);
    sr_jw_array_begin(&w);
    sr_jw_cstr(&w, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    sr_jw_cstr(&w, "bad \xff end \xc3");
    sr_jw_array_end(&w);
    CHECK_STR(valid(&b), "[\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\",\"bad \xef\xbf\xbd end \xef\xbf\xbd\"]");
    sr_buf_free(&b);
}

TEST(integers_at_their_limits) {
    sr_buf b;
    sr_buf_init(&b);
    sr_jw w;
    sr_jw_init(&w, &b);
    sr_jw_array_begin(&w);
    sr_jw_int(&w, INT64_MIN);
    sr_jw_int(&w, INT64_MAX);
    sr_jw_int(&w, 0);
    sr_jw_int(&w, -7);
    sr_jw_uint(&w, UINT64_MAX);
    sr_jw_array_end(&w);
    CHECK_STR(valid(&b), "[-9223372036854775808,9223372036854775807,0,-7,18446744073709551615]");
    sr_buf_free(&b);
}

TEST(doubles_shortest_round_trip_and_non_finite_null) {
    sr_buf b;
    sr_buf_init(&b);
    sr_jw w;
    sr_jw_init(&w, &b);
    sr_jw_array_begin(&w);
    sr_jw_double(&w, 0.1);
    sr_jw_double(&w, 30);
    sr_jw_double(&w, -2.5e-7);
    sr_jw_double(&w, 1.0 / 3.0);
    sr_jw_double(&w, NAN);
    sr_jw_double(&w, INFINITY);
    sr_jw_double(&w, -INFINITY);
    sr_jw_double_fmt(&w, "%.4f", 0.5);
    sr_jw_double_fmt(&w, "%.6g", NAN);
    sr_jw_array_end(&w);
    CHECK_STR(valid(&b), "[0.1,30,-2.5e-07,0.33333333333333331,null,null,null,0.5000,null]");
    sr_buf_free(&b);
}

TEST(raw_and_parsed_values) {
    sr_json_doc doc;
    static const char in[] = "{\"big\":18446744073709551616,\"s\":\"x\\ny\"}";
    CHECK_INT(sr_json_parse(&doc, in, sizeof in - 1, NULL, 0), 0);
    sr_buf b;
    sr_buf_init(&b);
    sr_jw w;
    sr_jw_init(&w, &b);
    sr_jw_object_begin(&w);
    sr_jw_key(&w, "raw");
    sr_jw_raw(&w, "[1,2]", 5);
    sr_jw_key(&w, "big");
    sr_jw_json(&w, sr_json_get(doc.root, "big"));
    sr_jw_key(&w, "doc");
    sr_jw_json(&w, doc.root);
    sr_jw_key(&w, "missing");
    sr_jw_json(&w, NULL);
    sr_jw_object_end(&w);
    CHECK_STR(valid(&b), "{\"raw\":[1,2],\"big\":18446744073709551616,\"doc\":{\"big\":18446744073709551616,"
                         "\"s\":\"x\\ny\"},\"missing\":null}");
    sr_json_doc_free(&doc);
    sr_buf_free(&b);
}

TEST(field_shorthands) {
    sr_buf b;
    sr_buf_init(&b);
    sr_jw w;
    sr_jw_init(&w, &b);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "s", NULL);
    sr_jw_field_strn(&w, "n", "abc", 2);
    sr_jw_field_strn(&w, "z", NULL, 0);
    sr_jw_field_double(&w, "d", 1.5);
    sr_jw_field_bool(&w, "f", false);
    sr_jw_object_end(&w);
    CHECK_STR(valid(&b), "{\"s\":null,\"n\":\"ab\",\"z\":null,\"d\":1.5,\"f\":false}");
    sr_buf_free(&b);
}

TEST(spaced_for_people) {
    sr_buf b;
    sr_buf_init(&b);
    sr_jw w;
    sr_jw_init_spaced(&w, &b);
    sr_jw_object_begin(&w);
    sr_jw_field_int(&w, "a", 1);
    sr_jw_key(&w, "b");
    sr_jw_array_begin(&w);
    sr_jw_int(&w, 2);
    sr_jw_int(&w, 3);
    sr_jw_array_end(&w);
    sr_jw_object_end(&w);
    CHECK_STR(valid(&b), "{\"a\": 1, \"b\": [2, 3]}");
    sr_buf_free(&b);
}

TEST(break_puts_items_on_their_own_lines) {
    sr_buf b;
    sr_buf_init(&b);
    sr_jw w;
    sr_jw_init(&w, &b);
    sr_jw_array_begin(&w);
    for (int i = 0; i < 3; i++) {
        sr_jw_break(&w, i == 2 ? "  " : "");
        sr_jw_int(&w, i);
    }
    sr_jw_array_end(&w);
    CHECK_STR(valid(&b), "[\n0,\n1,\n  2]");
    sr_buf_reset(&b);
    sr_jw_init_spaced(&w, &b);
    sr_jw_object_begin(&w);
    sr_jw_field_int(&w, "a", 1);
    sr_jw_break(&w, " ");
    sr_jw_field_int(&w, "b", 2);
    sr_jw_object_end(&w);
    CHECK_STR(valid(&b), "{\"a\": 1,\n \"b\": 2}");
    sr_buf_free(&b);
}

/* A small deterministic generator (splitmix64) for the round-trip tests. */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A string of pieces that need every kind of care (quotes, backslashes,
 * control characters, NUL, 2-4 byte UTF-8); *valid: no invalid byte in it. */
static size_t random_text(uint64_t *s, char *out, size_t cap, int *valid) {
    static const char *const pieces[] = {"a",
                                         "Z ",
                                         "\"",
                                         "\\",
                                         "\n",
                                         "\r\t",
                                         "\x01",
                                         "\x1f",
                                         "\x7f",
                                         "/",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80",
                                         "\xff",
                                         "\xc3",
                                         "\xed\xa0\x80"};
    static const size_t lens[] = {1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 2, 3, 4, 1, 1, 3};
    size_t len = 0, n = rng_next(s) % 24;
    *valid = 1;
    for (size_t i = 0; i < n; i++) {
        size_t k = rng_next(s) % 17; /* 16: a NUL byte */
        size_t piece_len = k == 16 ? 1 : lens[k];
        if (len + piece_len > cap) break;
        if (k == 16) out[len] = '\0';
        else
            memcpy(out + len, pieces[k], piece_len);
        if (k >= 13 && k <= 15) *valid = 0;
        len += piece_len;
    }
    return len;
}

TEST(random_strings_and_numbers_read_back) {
    uint64_t seed = 42;
    for (int round = 0; round < 3000; round++) {
        char key[128], value[128];
        int key_valid, value_valid;
        size_t key_len = random_text(&seed, key, sizeof key, &key_valid);
        size_t value_len = random_text(&seed, value, sizeof value, &value_valid);
        int64_t i = (int64_t)rng_next(&seed);
        uint64_t bits = rng_next(&seed);
        double d;
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d)) d = 0.5;
        sr_buf b;
        sr_buf_init(&b);
        sr_jw w;
        sr_jw_init(&w, &b);
        sr_jw_array_begin(&w);
        sr_jw_object_begin(&w);
        /* A key with NUL can be written but the parser refuses it in a key. */
        if (memchr(key, '\0', key_len)) key_len = 0;
        sr_jw_key_len(&w, key, key_len);
        sr_jw_string(&w, value, value_len);
        sr_jw_object_end(&w);
        sr_jw_int(&w, i);
        sr_jw_double(&w, d);
        sr_jw_array_end(&w);
        sr_json_doc doc;
        char err[160];
        if (sr_json_parse(&doc, b.data, b.len, err, sizeof err) != 0) UNIT_FAIL("round %d: %s: %s", round, err, b.data);
        const sr_json *obj = doc.root->child, *num = obj->next, *dbl = num->next;
        if (key_valid && (obj->child->key_len != key_len || memcmp(obj->child->key, key, key_len) != 0))
            UNIT_FAIL("round %d: the key did not read back: %s", round, sr_buf_cstr(&b));
        if (value_valid && (obj->child->len != value_len || memcmp(obj->child->str, value, value_len) != 0))
            UNIT_FAIL("round %d: the value did not read back: %s", round, sr_buf_cstr(&b));
        int64_t back;
        CHECK(sr_json_is_integer(num, &back) && back == i);
        CHECK(dbl->type == SR_JSON_NUMBER && strtod(dbl->str, NULL) == d);
        sr_json_doc_free(&doc);
        sr_buf_free(&b);
    }
}
