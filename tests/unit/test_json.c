/* Unit tests for src/codec/json.c: the strict JSON parser, lookups, integer
 * extraction and the compact writer. Inputs are copied into buffers of their
 * exact size, so under AddressSanitizer any read past the end is caught. */
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"
#include "codec/json.h"
#include "unit.h"

/* A realistic message, the sample for truncation and fuzzing. */
static const char sample_message[] =
    "{\"id\":3482512350952730368,\"from\":\"+4915112345678\",\"to\":[\"+33612345678\",\"+447700900123\"],"
    "\"text\":\"Hello \\\"world\\\" \\u00e9\\ud83d\\ude00\\n\\t\\\\ \\/\",\"parts\":1,\"ratio\":-12.5e-3,"
    "\"flags\":{\"unicode\":true,\"flash\":false,\"ref\":null},\"empty\":[],\"obj\":{},\"big\":1E+2}";

/* Copies text[0..len) into a heap buffer of exactly len bytes (no NUL). */
static char *exact_copy(const char *text, size_t len) {
    char *copy = malloc(len ? len : 1);
    CHECK(copy != NULL);
    memcpy(copy, text, len);
    return copy;
}

static int parse_exact(sr_json_doc *doc, const char *text, size_t len, char *err, size_t errlen) {
    char *copy = exact_copy(text, len);
    int rc = sr_json_parse(doc, copy, len, err, errlen);
    free(copy);
    return rc;
}

/* Parses text (NUL-terminated) and fails the test on error. */
static sr_json_doc parse_ok(const char *text) {
    sr_json_doc doc;
    char err[128];
    if (parse_exact(&doc, text, strlen(text), err, sizeof err) != 0) UNIT_FAIL("parse of %s failed: %s", text, err);
    CHECK(doc.root != NULL);
    return doc;
}

/* Parses text[0..len) and checks it fails with exactly message. */
static void expect_error_len(const char *text, size_t len, const char *message) {
    sr_json_doc doc;
    char err[128] = "not written";
    if (parse_exact(&doc, text, len, err, sizeof err) != -1) UNIT_FAIL("parse of %.*s succeeded", (int)len, text);
    CHECK(doc.root == NULL);
    CHECK(doc.blocks == NULL);
    if (strcmp(err, message) != 0) UNIT_FAIL("parse of %.*s: \"%s\", expected \"%s\"", (int)len, text, err, message);
}

static void expect_error(const char *text, const char *message) { expect_error_len(text, strlen(text), message); }

/* Compact form of text through sr_json_write. Caller frees. */
static char *rewrite(const char *text) {
    sr_json_doc doc = parse_ok(text);
    sr_buf out;
    sr_buf_init(&out);
    sr_json_write(&out, doc.root);
    sr_json_doc_free(&doc);
    return sr_buf_steal(&out, NULL);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rng_next(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

TEST(parses_every_scalar_type) {
    sr_json_doc doc = parse_ok(" \t\r\n null \n");
    CHECK_INT(doc.root->type, SR_JSON_NULL);
    CHECK(doc.root->str == NULL && doc.root->key == NULL && doc.root->next == NULL);
    sr_json_doc_free(&doc);

    doc = parse_ok("true");
    CHECK_INT(doc.root->type, SR_JSON_TRUE);
    sr_json_doc_free(&doc);
    doc = parse_ok("false");
    CHECK_INT(doc.root->type, SR_JSON_FALSE);
    sr_json_doc_free(&doc);

    doc = parse_ok("-1.5e3");
    CHECK_INT(doc.root->type, SR_JSON_NUMBER);
    CHECK_STR(doc.root->str, "-1.5e3");
    CHECK_INT(doc.root->len, 6);
    CHECK(doc.root->num == -1500.0);
    sr_json_doc_free(&doc);

    doc = parse_ok("0");
    CHECK(doc.root->type == SR_JSON_NUMBER && doc.root->num == 0.0);
    sr_json_doc_free(&doc);

    doc = parse_ok("\"hello\"");
    CHECK_INT(doc.root->type, SR_JSON_STRING);
    CHECK_STR(doc.root->str, "hello");
    CHECK_INT(doc.root->len, 5);
    sr_json_doc_free(&doc);

    doc = parse_ok("\"\"");
    CHECK_INT(doc.root->type, SR_JSON_STRING);
    CHECK_STR(doc.root->str, "");
    CHECK_INT(doc.root->len, 0);
    sr_json_doc_free(&doc);
}

TEST(number_values) {
    static const struct {
        const char *text;
        double value;
    } cases[] = {
        {"0.1", 0.1},
        {"-0.5", -0.5},
        {"1e-400", 0.0},
        {"2.5E-3", 2.5e-3},
        {"1e22", 1e22},
        {"1e23", 1e23},
        {"9007199254740993", 9007199254740993.0},
        {"123456789012345678901234567890", 123456789012345678901234567890.0},
        {"1.7976931348623157e308", 1.7976931348623157e308},
        {"4.9e-324", 4.9e-324},
        {"0.000001234", 0.000001234},
        {"1E+2", 100.0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sr_json_doc doc = parse_ok(cases[i].text);
        if (doc.root->num != cases[i].value) UNIT_FAIL("%s parsed as %.17g", cases[i].text, doc.root->num);
        CHECK_STR(doc.root->str, cases[i].text);
        sr_json_doc_free(&doc);
    }
    sr_json_doc doc = parse_ok("-0");
    CHECK(doc.root->num == 0.0 && signbit(doc.root->num));
    sr_json_doc_free(&doc);

    /* The exact fast path and strtod agree on random decimals. */
    for (int i = 0; i < 20000; i++) {
        char text[64];
        uint64_t r = rng_next();
        snprintf(text, sizeof text, "%s%llu.%llue%d", r & 1 ? "-" : "", (unsigned long long)(r >> 8) % 100000000,
                 (unsigned long long)rng_next() % 1000000, (int)(rng_next() % 61) - 30);
        doc = parse_ok(text);
        if (doc.root->num != strtod(text, NULL)) UNIT_FAIL("%s parsed as %.17g", text, doc.root->num);
        sr_json_doc_free(&doc);
    }
    /* Mantissas around 2^53..2^64, where a second rounding would show. */
    for (int i = 0; i < 20000; i++) {
        char text[64];
        int digits = 15 + (int)(rng_next() % 6);
        size_t n = 0;
        text[n++] = (char)('1' + rng_next() % 9);
        for (int d = 1; d < digits; d++) text[n++] = (char)('0' + rng_next() % 10);
        snprintf(text + n, sizeof text - n, "e%d", (int)(rng_next() % 31) - 15);
        doc = parse_ok(text);
        if (doc.root->num != strtod(text, NULL)) UNIT_FAIL("%s parsed as %.17g", text, doc.root->num);
        sr_json_doc_free(&doc);
    }
}

TEST(strings_and_keys_are_nul_terminated) {
    /* Escaped and plain strings of every small length, so each arena
     * alignment case follows a decoded string. */
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_putc(&b, '{');
    for (int i = 0; i < 40; i++) {
        sr_buf_printf(&b, "%s\"k\\n%.*s\":", i ? "," : "", i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        sr_buf_printf(&b, "[\"%.*s\\t\",\"%.*s\",%d]", i % 13, "yyyyyyyyyyyyy", i % 7, "zzzzzzz", i);
    }
    sr_buf_putc(&b, '}');
    sr_json_doc doc = parse_ok(sr_buf_cstr(&b));
    CHECK_INT(doc.root->count, 40);
    int i = 0;
    for (const sr_json *m = doc.root->child; m; m = m->next, i++) {
        CHECK_INT(m->key_len, 2 + i);
        CHECK_INT(strlen(m->key), m->key_len);
        const sr_json *e = m->child;
        CHECK_INT(e->len, i % 13 + 1);
        CHECK_INT(strlen(e->str), e->len);
        CHECK(e->str[e->len - 1] == '\t');
        CHECK_INT(strlen(e->next->str), i % 7);
        CHECK_INT(strlen(e->next->next->str), e->next->next->len);
    }
    sr_json_doc_free(&doc);
    sr_buf_free(&b);
}

TEST(numbers_ignore_the_process_locale) {
    /* Needs a locale with a decimal comma; passes vacuously when none is installed. */
    if (!setlocale(LC_NUMERIC, "de_DE.UTF-8") && !setlocale(LC_NUMERIC, "fr_FR.UTF-8")) return;
    sr_json_doc doc = parse_ok("[1.5e300, 0.123456789012345678901]");
    CHECK(doc.root->child->num == 1.5e300);
    CHECK(doc.root->child->next->num == 0.123456789012345678901);
    sr_json_doc_free(&doc);
}

TEST(parses_arrays_and_objects) {
    sr_json_doc doc = parse_ok("[1, \"two\", [], {}, [null]]");
    sr_json *a = doc.root;
    CHECK_INT(a->type, SR_JSON_ARRAY);
    CHECK_INT(a->count, 5);
    sr_json *e = a->child;
    CHECK(e->type == SR_JSON_NUMBER && e->num == 1 && e->key == NULL);
    e = e->next;
    CHECK_STR(e->str, "two");
    e = e->next;
    CHECK(e->type == SR_JSON_ARRAY && e->count == 0 && e->child == NULL);
    e = e->next;
    CHECK(e->type == SR_JSON_OBJECT && e->count == 0 && e->child == NULL);
    e = e->next;
    CHECK(e->type == SR_JSON_ARRAY && e->count == 1 && e->child->type == SR_JSON_NULL);
    CHECK(e->next == NULL);
    sr_json_doc_free(&doc);

    doc = parse_ok("{\"b\": 2, \"a\": 1, \"c\": {\"d\": {\"e\": [true, {\"f\": \"deep\"}]}}}");
    sr_json *o = doc.root;
    CHECK_INT(o->type, SR_JSON_OBJECT);
    CHECK_INT(o->count, 3);
    /* Members stay in document order. */
    CHECK_STR(o->child->key, "b");
    CHECK_INT(o->child->key_len, 1);
    CHECK_STR(o->child->next->key, "a");
    sr_json *f = sr_json_get(sr_json_get(sr_json_get(sr_json_get(o, "c"), "d"), "e")->child->next, "f");
    CHECK(f != NULL);
    CHECK_STR(f->str, "deep");
    CHECK_STR(f->key, "f");
    sr_json_doc_free(&doc);
}

TEST(decodes_escapes_and_surrogate_pairs) {
    sr_json_doc doc = parse_ok("\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t\"");
    CHECK_STR(doc.root->str, "q\" b\\ s/ \b\f\n\r\t");
    sr_json_doc_free(&doc);

    doc = parse_ok("\"\\u0041\\u00e9\\u20AC\\ud83d\\ude00\"");
    CHECK_STR(doc.root->str, "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
    CHECK_INT(doc.root->len, 1 + 2 + 3 + 4);
    sr_json_doc_free(&doc);

    /* NUL via \u0000: len is authoritative. */
    doc = parse_ok("\"a\\u0000b\"");
    CHECK_INT(doc.root->len, 3);
    CHECK(memcmp(doc.root->str, "a\0b", 4) == 0);
    sr_json_doc_free(&doc);

    /* Lone surrogates keep their generalized 3-byte form. */
    doc = parse_ok("[\"\\ud800\", \"\\udc00x\", \"\\ud800\\u0041\", "
                   "\"\\ud800\\ud800\\udc00\", \"x\\udbff\"]");
    sr_json *e = doc.root->child;
    CHECK_STR(e->str, "\xED\xA0\x80");
    CHECK_STR(e->next->str, "\xED\xB0\x80x");
    CHECK_STR(e->next->next->str, "\xED\xA0\x80"
                                  "A");
    CHECK_STR(e->next->next->next->str, "\xED\xA0\x80\xF0\x90\x80\x80");
    CHECK_STR(e->next->next->next->next->str, "x\xED\xAF\xBF");
    sr_json_doc_free(&doc);

    /* Raw bytes >= 0x80 pass through unvalidated, DEL is not a control character. */
    doc = parse_ok("[\"h\xC3\xA9\", \"\xFF\xFE\", \"\x7F\"]");
    CHECK_STR(doc.root->child->str, "h\xC3\xA9");
    CHECK_STR(doc.root->child->next->str, "\xFF\xFE");
    CHECK_STR(doc.root->child->next->next->str, "\x7F");
    sr_json_doc_free(&doc);

    /* Keys are decoded too. */
    doc = parse_ok("{\"k\\u00e9\\n\": 1}");
    CHECK_STR(doc.root->child->key, "k\xC3\xA9\n");
    CHECK_INT(doc.root->child->key_len, 4);
    CHECK(sr_json_get(doc.root, "k\xC3\xA9\n") == doc.root->child);
    sr_json_doc_free(&doc);
}

/* The string scanner reads words of 8 bytes: put every kind of special byte
 * at every position of the first words and check each is found exactly. */
TEST(special_bytes_at_every_position) {
    for (size_t at = 0; at < 24; at++) {
        char text[40], expected[40], message[64];
        memset(text + 1, 'a', 30);
        text[0] = '"';
        /* Closing quote at position at: the string is the at bytes before it. */
        text[1 + at] = '"';
        sr_json_doc doc;
        CHECK_INT(parse_exact(&doc, text, 2 + at, NULL, 0), 0);
        CHECK_INT(doc.root->len, at);
        sr_json_doc_free(&doc);
        /* An escape at position at. */
        memset(text + 1, 'a', 30);
        memcpy(text + 1 + at, "\\n", 2);
        text[31] = '"';
        memset(expected, 'a', 29);
        expected[at] = '\n';
        CHECK_INT(parse_exact(&doc, text, 32, NULL, 0), 0);
        CHECK_INT(doc.root->len, 29);
        CHECK(memcmp(doc.root->str, expected, 29) == 0);
        sr_json_doc_free(&doc);
        /* Control characters, and the bytes around them that are plain data. */
        static const unsigned char controls[] = {0x00, 0x01, 0x0a, 0x1f};
        static const unsigned char plain[] = {0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xa0, 0xa2, 0xdc, 0xff};
        for (size_t c = 0; c < sizeof controls; c++) {
            memset(text + 1, 'a', 30);
            text[1 + at] = (char)controls[c];
            text[31] = '"';
            snprintf(message, sizeof message, "control character in string at offset %zu", 1 + at);
            expect_error_len(text, 32, message);
        }
        for (size_t c = 0; c < sizeof plain; c++) {
            memset(text + 1, 'a', 30);
            text[1 + at] = (char)plain[c];
            text[31] = '"';
            CHECK_INT(parse_exact(&doc, text, 32, NULL, 0), 0);
            CHECK_INT(doc.root->len, 30);
            CHECK(memcmp(doc.root->str, text + 1, 30) == 0);
            sr_json_doc_free(&doc);
        }
    }
}

TEST(big_integer_keeps_its_text) {
    sr_json_doc doc = parse_ok("{\"id\": 3482512350952730368}");
    sr_json *id = sr_json_get(doc.root, "id");
    CHECK_STR(id->str, "3482512350952730368");
    CHECK_INT(id->len, 19);
    int64_t v = 0;
    CHECK(sr_json_is_integer(id, &v));
    CHECK(v == INT64_C(3482512350952730368));
    CHECK(id->num == 3482512350952730368.0);
    sr_json_doc_free(&doc);
    char *out = rewrite("{\"id\": 3482512350952730368}");
    CHECK_STR(out, "{\"id\":3482512350952730368}");
    free(out);
}

TEST(rejects_what_rfc8259_forbids) {
    static const struct {
        const char *text;
        const char *message;
    } cases[] = {
        {"", "unexpected end of input at offset 0"},
        {" \n ", "unexpected end of input at offset 3"},
        {"[1,]", "unexpected character ']' at offset 3"},
        {"{\"a\":1,}", "unexpected character '}', expected a string key at offset 7"},
        {"[1] // c", "unexpected character '/' after the top-level value at offset 4"},
        {"/* c */ 1", "unexpected character '/' at offset 0"},
        {"[1, /* c */ 2]", "unexpected character '/' at offset 4"},
        {"01", "leading zero in number at offset 0"},
        {"-01", "leading zero in number at offset 1"},
        {"[00]", "leading zero in number at offset 1"},
        {"NaN", "unexpected character 'N' at offset 0"},
        {"[nan]", "unexpected character 'a' at offset 2"},
        {"Infinity", "unexpected character 'I' at offset 0"},
        {"-Infinity", "unexpected character 'I', expected a digit at offset 1"},
        {"'a'", "unexpected character ''' at offset 0"},
        {"{'a':1}", "unexpected character ''', expected a string key at offset 1"},
        {"\"a\x01"
         "b\"",
         "control character in string at offset 2"},
        {"\"a\nb\"", "control character in string at offset 2"},
        {"\"a\\n\tb\"", "control character in string at offset 4"},
        {"1 2", "unexpected character '2' after the top-level value at offset 2"},
        {"{} x", "unexpected character 'x' after the top-level value at offset 3"},
        {"+1", "unexpected character '+' at offset 0"},
        {".5", "unexpected character '.' at offset 0"},
        {"1.", "unexpected end of input at offset 2"},
        {"[1.]", "unexpected character ']', expected a digit at offset 3"},
        {"1.e5", "unexpected character 'e', expected a digit at offset 2"},
        {"1e", "unexpected end of input at offset 2"},
        {"1e+", "unexpected end of input at offset 3"},
        {"-", "unexpected end of input at offset 1"},
        {"1e400", "number out of range at offset 0"},
        {"[-1e400]", "number out of range at offset 1"},
        {"{\"a\" 1}", "unexpected character '1', expected ':' at offset 5"},
        {"{a:1}", "unexpected character 'a', expected a string key at offset 1"},
        {"{\"a\":1 \"b\":2}", "unexpected character '\"', expected ',' or '}' at offset 7"},
        {"[1 2]", "unexpected character '2', expected ',' or ']' at offset 3"},
        {"\"\\x\"", "invalid escape at offset 1"},
        {"\"ab\\'\"", "invalid escape at offset 3"},
        {"\"\\u12g4\"", "invalid \\u escape at offset 1"},
        {"\"\\u12\"", "invalid \\u escape at offset 1"},
        {"\"\\u\"", "invalid \\u escape at offset 1"},
        {"\"abc", "unexpected end of input at offset 4"},
        {"\"ab\\", "unexpected end of input at offset 4"},
        {"tru", "unexpected end of input at offset 3"},
        {"nul l", "unexpected character ' ' at offset 3"},
        {"True", "unexpected character 'T' at offset 0"},
        {"\f1", "unexpected byte 0x0c at offset 0"},
        {"[1,\v2]", "unexpected byte 0x0b at offset 3"},
        {"\xEF\xBB\xBF{}", "unexpected byte 0xef at offset 0"},
        {"{", "unexpected end of input at offset 1"},
        {"[", "unexpected end of input at offset 1"},
        {"{\"a\":", "unexpected end of input at offset 5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_error(cases[i].text, cases[i].message);
    /* NUL bytes are data, not terminators. */
    expect_error_len("[1,\0]", 5, "unexpected byte 0x00 at offset 3");
    expect_error_len("[1]\0", 4, "unexpected byte 0x00 after the top-level value at offset 3");
    expect_error_len("\"a\0\"", 4, "control character in string at offset 2");
}

TEST(reads_only_len_bytes) {
    sr_json_doc doc;
    char err[128];
    CHECK_INT(sr_json_parse(&doc, "[1]xyz", 3, err, sizeof err), 0);
    CHECK_INT(doc.root->count, 1);
    sr_json_doc_free(&doc);
    /* A number that ends the buffer (exact-size copy: ASan catches overreads). */
    doc = parse_ok("12345");
    CHECK_STR(doc.root->str, "12345");
    sr_json_doc_free(&doc);
    CHECK_INT(sr_json_parse(&doc, NULL, 0, err, sizeof err), -1);
    CHECK_STR(err, "unexpected end of input at offset 0");
}

TEST(depth_limit) {
    char text[4 * SR_JSON_MAX_DEPTH + 16];
    /* Exactly SR_JSON_MAX_DEPTH levels parse. */
    size_t n = 0;
    for (int i = 0; i < SR_JSON_MAX_DEPTH; i++) text[n++] = '[';
    for (int i = 0; i < SR_JSON_MAX_DEPTH; i++) text[n++] = ']';
    text[n] = '\0';
    sr_json_doc doc = parse_ok(text);
    int depth = 0;
    for (const sr_json *v = doc.root; v; v = v->child) depth++;
    CHECK_INT(depth, SR_JSON_MAX_DEPTH);
    sr_json_doc_free(&doc);

    /* One more is refused at the offending bracket. */
    n = 0;
    for (int i = 0; i <= SR_JSON_MAX_DEPTH; i++) text[n++] = '[';
    for (int i = 0; i <= SR_JSON_MAX_DEPTH; i++) text[n++] = ']';
    expect_error_len(text, n, "nesting deeper than 64 levels at offset 64");

    /* Objects count too: {"a":{"a":...}} */
    sr_buf b;
    sr_buf_init(&b);
    for (int i = 0; i < SR_JSON_MAX_DEPTH; i++) sr_buf_puts(&b, i % 2 ? "[" : "{\"a\":");
    sr_buf_puts(&b, "1");
    for (int i = SR_JSON_MAX_DEPTH - 1; i >= 0; i--) sr_buf_puts(&b, i % 2 ? "]" : "}");
    doc = parse_ok(sr_buf_cstr(&b));
    sr_json_doc_free(&doc);
    sr_buf_reset(&b);
    for (int i = 0; i <= SR_JSON_MAX_DEPTH; i++) sr_buf_puts(&b, "{\"a\":");
    expect_error_len(b.data, b.len, "nesting deeper than 64 levels at offset 320");

    /* A million open brackets neither recurse deeply nor crash. */
    sr_buf_reset(&b);
    for (int i = 0; i < 1000000; i++) sr_buf_putc(&b, '[');
    expect_error_len(b.data, b.len, "nesting deeper than 64 levels at offset 64");
    sr_buf_free(&b);
}

TEST(duplicate_keys) {
    expect_error("{\"a\":1,\"a\":2}", "duplicate key \"a\" at offset 7");
    expect_error("{\"a\":1, \"b\":2, \"\\u0061\":3}", "duplicate key \"a\" at offset 15");
    /* Keys are names: one holding U+0000 is refused (code reads keys as C strings). */
    expect_error("{\"a\\u0000b\":1}", "a key holds U+0000 at offset 1");
    expect_error("{\"route\":[],\"route\\u0000\":[]}", "a key holds U+0000 at offset 12");
    expect_error("{\"x\":{\"a\":1,\"a\":2}}", "duplicate key \"a\" at offset 12");
    /* The same key in different objects is fine. */
    sr_json_doc doc = parse_ok("{\"a\":{\"a\":1},\"b\":{\"a\":2},\"ab\":5}");
    CHECK_INT(doc.root->count, 3);
    CHECK(sr_json_get_len(doc.root, "ab", 2) != NULL);
    CHECK_INT(sr_json_get_len(doc.root, "ab", 2)->num, 5);
    sr_json_doc_free(&doc);
    /* Long keys are shown shortened. */
    char text[256];
    char key[61];
    memset(key, 'k', 60);
    key[60] = '\0';
    snprintf(text, sizeof text, "{\"%s\":1,\"%s\":2}", key, key);
    char message[128];
    snprintf(message, sizeof message, "duplicate key \"%.40s...\" at offset 66", key);
    expect_error(text, message);
}

/* {"k0":0,"k1":1,...} with n members, then extra appended before '}'. */
static void build_big_object(sr_buf *b, int n, const char *extra, size_t *extra_offset) {
    sr_buf_reset(b);
    sr_buf_putc(b, '{');
    for (int i = 0; i < n; i++) sr_buf_printf(b, "%s\"k%d\":%d", i ? "," : "", i, i);
    if (extra) {
        sr_buf_putc(b, ',');
        if (extra_offset) *extra_offset = b->len;
        sr_buf_puts(b, extra);
    }
    sr_buf_putc(b, '}');
}

TEST(duplicate_keys_in_big_objects) {
    sr_buf b;
    sr_buf_init(&b);
    char message[128];
    size_t offset;
    for (int n = 15; n <= 18; n++) {
        /* Around the switch from the linear scan to the sorted check. */
        build_big_object(&b, n, NULL, NULL);
        sr_json_doc doc = parse_ok(sr_buf_cstr(&b));
        CHECK_INT(doc.root->count, n);
        sr_json_doc_free(&doc);
        build_big_object(&b, n, "\"k3\":0", &offset);
        snprintf(message, sizeof message, "duplicate key \"k3\" at offset %zu", offset);
        expect_error_len(b.data, b.len, message);
        build_big_object(&b, n, "\"new\":0,\"new\":1", &offset);
        snprintf(message, sizeof message, "duplicate key \"new\" at offset %zu", offset + 8);
        expect_error_len(b.data, b.len, message);
    }
    build_big_object(&b, 1000, "\"k999\":1,\"k500\":2", &offset);
    snprintf(message, sizeof message, "duplicate key \"k999\" at offset %zu", offset);
    expect_error_len(b.data, b.len, message);

    /* Big objects nested in big objects keep their own key sets. */
    sr_buf_reset(&b);
    sr_buf_putc(&b, '{');
    for (int i = 0; i < 40; i++) {
        sr_buf_printf(&b, "%s\"k%d\":{", i ? "," : "", i);
        for (int j = 0; j < 40; j++) sr_buf_printf(&b, "%s\"k%d\":[{\"k%d\":1}]", j ? "," : "", j, i);
        sr_buf_putc(&b, '}');
    }
    sr_buf_putc(&b, '}');
    sr_json_doc doc = parse_ok(sr_buf_cstr(&b));
    CHECK_INT(doc.root->count, 40);
    CHECK_INT(sr_json_get(sr_json_get(doc.root, "k39"), "k39")->child->child->num, 1);
    sr_json_doc_free(&doc);

    /* 200 000 distinct keys: O(n log n), well under the test timeout. */
    build_big_object(&b, 200000, NULL, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    doc = parse_ok(sr_buf_cstr(&b));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK_INT(doc.root->count, 200000);
    double elapsed_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (elapsed_s > 2.0) UNIT_FAIL("200000 keys took %.3f s", elapsed_s);
    sr_json_doc_free(&doc);
    sr_buf_free(&b);
}

/* Random objects of 1..200 members whose keys share prefixes and lengths
 * ("", "a", "ab", "abc", ...), with 0 to 3 planted duplicates: the parser
 * must accept exactly the objects without one and otherwise name the first
 * member, in document order, that repeats a key. */
TEST(duplicate_keys_match_brute_force) {
    /* Every string over {a,b,c} of length 0..5: 364 distinct keys. */
    static char pool[364][6];
    int pool_len = 0;
    for (int len = 0; len <= 5; len++) {
        int combinations = 1;
        for (int k = 0; k < len; k++) combinations *= 3;
        for (int c = 0; c < combinations; c++, pool_len++) {
            int x = c;
            for (int k = 0; k < len; k++, x /= 3) pool[pool_len][k] = (char)('a' + x % 3);
            pool[pool_len][len] = '\0';
        }
    }
    CHECK_INT(pool_len, 364);
    sr_buf b;
    sr_buf_init(&b);
    int outcomes[2] = {0, 0};
    for (int round = 0; round < 3000; round++) {
        int n = 1 + (int)(rng_next() % 200);
        const char *keys[200];
        size_t offsets[200];
        for (int i = 0; i < pool_len && i < n; i++) { /* partial shuffle: n distinct keys */
            int j = i + (int)(rng_next() % (uint64_t)(pool_len - i));
            char tmp[6];
            memcpy(tmp, pool[i], 6);
            memcpy(pool[i], pool[j], 6);
            memcpy(pool[j], tmp, 6);
            keys[i] = pool[i];
        }
        int planted = (int)(rng_next() % 4);
        for (int d = 0; d < planted && n > 1; d++) {
            int to = 1 + (int)(rng_next() % (uint64_t)(n - 1)), from = (int)(rng_next() % (uint64_t)n);
            keys[to] = keys[from];
        }
        sr_buf_reset(&b);
        sr_buf_putc(&b, '{');
        for (int i = 0; i < n; i++) {
            if (i) sr_buf_putc(&b, ',');
            offsets[i] = b.len;
            sr_buf_printf(&b, "\"%s\":%d", keys[i], i);
        }
        sr_buf_putc(&b, '}');
        int first = -1;
        for (int i = 1; i < n && first < 0; i++)
            for (int j = 0; j < i; j++)
                if (strcmp(keys[i], keys[j]) == 0) {
                    first = i;
                    break;
                }
        if (first < 0) {
            sr_json_doc doc = parse_ok(sr_buf_cstr(&b));
            CHECK_INT(doc.root->count, n);
            sr_json_doc_free(&doc);
        } else {
            char message[64];
            snprintf(message, sizeof message, "duplicate key \"%s\" at offset %zu", keys[first], offsets[first]);
            expect_error_len(b.data, b.len, message);
        }
        if (n > 16) outcomes[first < 0]++;
    }
    /* Both outcomes were exercised on big objects. */
    CHECK(outcomes[0] > 500 && outcomes[1] > 500);
    sr_buf_free(&b);
}

TEST(get_members) {
    sr_json_doc doc = parse_ok("{\"ab\": 1, \"a\": 2, \"\": 3, \"list\": [{\"a\": 4}]}");
    CHECK_INT(sr_json_get(doc.root, "a")->num, 2);
    CHECK_INT(sr_json_get(doc.root, "ab")->num, 1);
    CHECK_INT(sr_json_get(doc.root, "")->num, 3);
    CHECK(sr_json_get(doc.root, "abc") == NULL);
    CHECK(sr_json_get(doc.root, "b") == NULL);
    CHECK(sr_json_get(NULL, "a") == NULL);
    CHECK(sr_json_get(doc.root, NULL) == NULL);
    sr_json *list = sr_json_get(doc.root, "list");
    CHECK(sr_json_get(list, "a") == NULL); /* arrays have no members */
    CHECK(sr_json_get(sr_json_get(doc.root, "a"), "a") == NULL);
    CHECK_INT(sr_json_get(list->child, "a")->num, 4);
    sr_json_doc_free(&doc);
}

TEST(is_integer_edges) {
    static const struct {
        const char *text;
        int is_integer;
        int64_t value;
    } cases[] = {
        {"0", 1, 0},
        {"-0", 1, 0},
        {"42", 1, 42},
        {"-42", 1, -42},
        {"9223372036854775807", 1, INT64_MAX},
        {"9223372036854775808", 0, 0},
        {"-9223372036854775808", 1, INT64_MIN},
        {"-9223372036854775809", 0, 0},
        {"18446744073709551616", 0, 0},
        {"99999999999999999999999", 0, 0},
        {"1.0", 0, 0},
        {"1e3", 0, 0},
        {"1E3", 0, 0},
        {"-1.5", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sr_json_doc doc = parse_ok(cases[i].text);
        int64_t v = 12345;
        int rc = sr_json_is_integer(doc.root, &v);
        if (rc != cases[i].is_integer) UNIT_FAIL("is_integer(%s) == %d", cases[i].text, rc);
        if (rc && v != cases[i].value) UNIT_FAIL("is_integer(%s) gave %lld", cases[i].text, (long long)v);
        if (!rc && v != 12345) UNIT_FAIL("is_integer(%s) wrote *out", cases[i].text);
        sr_json_doc_free(&doc);
    }
    sr_json_doc doc = parse_ok("[\"1\", true, null]");
    int64_t v = 7;
    for (const sr_json *e = doc.root->child; e; e = e->next) CHECK_INT(sr_json_is_integer(e, &v), 0);
    CHECK_INT(sr_json_is_integer(doc.root, &v), 0);
    CHECK_INT(sr_json_is_integer(NULL, &v), 0);
    CHECK_INT(v, 7);
    sr_json_doc_free(&doc);
}

TEST(write_round_trip) {
    const char *text = " { \"id\" : 3482512350952730368 ,"
                       " \"t\" : \"h\\u00e9 \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t\\u0001\" ,\n"
                       "  \"a\" : [ 1 , -0 , 1E+2 , 2.50 , true , false , null , { } , [ ] ] ,"
                       " \"n\" : \"\\u0000k\" } ";
    const char *compact = "{\"id\":3482512350952730368,"
                          "\"t\":\"h\xC3\xA9 \\\"q\\\" \\\\ / \\u0008\\u000c\\n\\r\\t\\u0001\","
                          "\"a\":[1,-0,1E+2,2.50,true,false,null,{},[]],\"n\":\"\\u0000k\"}";
    char *once = rewrite(text);
    CHECK_STR(once, compact);
    char *twice = rewrite(once);
    CHECK_STR(twice, compact);
    free(once);
    free(twice);

    /* Every value of the sample message survives a round trip unchanged. */
    once = rewrite(sample_message);
    twice = rewrite(once);
    CHECK_STR(twice, once);
    sr_json_doc a = parse_ok(sample_message), b = parse_ok(once);
    CHECK_STR(sr_json_get(b.root, "text")->str, sr_json_get(a.root, "text")->str);
    CHECK_STR(sr_json_get(b.root, "ratio")->str, "-12.5e-3");
    sr_json_doc_free(&a);
    sr_json_doc_free(&b);
    free(once);
    free(twice);

    sr_buf out;
    sr_buf_init(&out);
    sr_json_write(&out, NULL);
    CHECK_STR(sr_buf_cstr(&out), "null");
    sr_buf_free(&out);
}

TEST(every_truncation_fails_cleanly) {
    size_t len = strlen(sample_message);
    sr_json_doc doc = parse_ok(sample_message);
    CHECK_INT(doc.root->count, 10);
    sr_json_doc_free(&doc);
    for (size_t cut = 0; cut < len; cut++) {
        char message[64];
        snprintf(message, sizeof message, "unexpected end of input at offset %zu", cut);
        expect_error_len(sample_message, cut, message);
    }
}

/* Parses text[0..len); on success the written form must parse again and be
 * stable; on failure the message must name an offset within the input. */
static void fuzz_one(const char *text, size_t len) {
    sr_json_doc doc;
    char err[128];
    char *copy = exact_copy(text, len);
    int rc = sr_json_parse(&doc, copy, len, err, sizeof err);
    free(copy);
    if (rc == 0) {
        CHECK(doc.root != NULL);
        sr_buf out;
        sr_buf_init(&out);
        sr_json_write(&out, doc.root);
        sr_json_doc_free(&doc);
        /* Distinct invalid UTF-8 keys may both become U+FFFD when written. */
        if (sr_json_parse(&doc, sr_buf_cstr(&out), out.len, err, sizeof err) == 0) {
            sr_buf again;
            sr_buf_init(&again);
            sr_json_write(&again, doc.root);
            CHECK_STR(sr_buf_cstr(&again), out.data);
            sr_buf_free(&again);
            sr_json_doc_free(&doc);
        } else if (strncmp(err, "duplicate key", 13) != 0) {
            UNIT_FAIL("written form %s does not parse: %s", out.data, err);
        }
        sr_buf_free(&out);
    } else {
        CHECK_INT(rc, -1);
        CHECK(doc.root == NULL && doc.blocks == NULL);
        const char *at = strstr(err, " at offset ");
        if (!at) UNIT_FAIL("message without offset: %s", err);
        CHECK(strtoull(at + 11, NULL, 10) <= len);
    }
}

TEST(fuzzed_documents_never_crash) {
    static const char interesting[] = "{}[],:\"\\u0123456789.eE+- tfnl\x01\x7f\x80\xff";
    sr_buf big;
    sr_buf_init(&big);
    build_big_object(&big, 20, "\"s\":\"\\ud83d\\ude00\\u0000\"", NULL);
    const char *samples[] = {sample_message, sr_buf_cstr(&big)};
    char text[2048];
    int parsed = 0;
    for (int round = 0; round < 60000; round++) {
        const char *sample = samples[round % 2];
        size_t len = strlen(sample);
        memcpy(text, sample, len);
        int mutations = 1 + (int)(rng_next() % 4);
        for (int m = 0; m < mutations; m++) {
            size_t at = (size_t)(rng_next() % len);
            switch (rng_next() % 4) {
            case 0: text[at] = (char)rng_next(); break;
            case 1: text[at] = interesting[rng_next() % (sizeof interesting - 1)]; break;
            case 2: /* delete a byte */
                memmove(text + at, text + at + 1, len - at - 1);
                len--;
                break;
            default: /* insert a byte */
                if (len + 1 >= sizeof text) break;
                memmove(text + at + 1, text + at, len - at);
                text[at] = interesting[rng_next() % (sizeof interesting - 1)];
                len++;
                break;
            }
        }
        sr_json_doc doc;
        char *copy = exact_copy(text, len);
        if (sr_json_parse(&doc, copy, len, NULL, 0) == 0) parsed++;
        sr_json_doc_free(&doc);
        free(copy);
        fuzz_one(text, len);
    }
    /* Some mutations (inside strings, digits for digits) leave valid JSON. */
    CHECK(parsed > 100);
    sr_buf_free(&big);
}

TEST(large_documents_span_blocks) {
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_putc(&b, '[');
    for (int i = 0; i < 100000; i++) sr_buf_printf(&b, "%s{\"n\":%d,\"s\":\"v%d\"}", i ? "," : "", i, i);
    sr_buf_putc(&b, ']');
    sr_json_doc doc = parse_ok(sr_buf_cstr(&b));
    CHECK_INT(doc.root->count, 100000);
    int i = 0;
    for (const sr_json *e = doc.root->child; e; e = e->next, i++) {
        int64_t n;
        CHECK(sr_json_is_integer(sr_json_get(e, "n"), &n) && n == i);
    }
    CHECK_INT(i, 100000);
    sr_json_doc_free(&doc);

    /* A 3 MB string in one piece. */
    sr_buf_reset(&b);
    sr_buf_putc(&b, '"');
    for (int j = 0; j < 3 << 20; j++) sr_buf_putc(&b, (char)('a' + j % 26));
    sr_buf_puts(&b, "\\n\"");
    doc = parse_ok(sr_buf_cstr(&b));
    CHECK_INT(doc.root->len, (3 << 20) + 1);
    CHECK(doc.root->str[doc.root->len - 1] == '\n' && doc.root->str[doc.root->len] == '\0');
    sr_json_doc_free(&doc);
    sr_buf_free(&b);
}

TEST(errors_and_frees_are_safe) {
    sr_json_doc doc = {0};
    sr_json_doc_free(&doc);
    sr_json_doc_free(&doc);
    char err[12];
    CHECK_INT(sr_json_parse(&doc, "[1,,2]", 6, err, sizeof err), -1);
    CHECK_STR(err, "unexpected "); /* truncated, still terminated */
    CHECK_INT(sr_json_parse(&doc, "[1,,2]", 6, NULL, 0), -1);
    sr_json_doc_free(&doc);
    doc = parse_ok("[1]");
    sr_json_doc_free(&doc);
    sr_json_doc_free(&doc);
    CHECK(doc.root == NULL && doc.blocks == NULL);
}
