/* Unit tests for src/codec/text.c: strict UTF-8, the GSM 03.38 table, and how
 * texts are counted and cut into parts (phone numbers: test_phone.c). */
#include "core/buf.h"
#include "codec/text.h"
#include "unit.h"

/* ---- helpers ----------------------------------------------------------- */

/* Appends unit (a NUL-terminated UTF-8 string) n times to b. */
static void text_test_repeat(sr_buf *b, const char *unit, int n) {
    for (int i = 0; i < n; i++) sr_buf_puts(b, unit);
}

/* Measures unit repeated n times. */
static sr_segments text_test_measure(const char *unit, int n) {
    sr_buf b;
    sr_buf_init(&b);
    text_test_repeat(&b, unit, n);
    sr_segments seg = {SR_ENC_UCS2, -1, 0};
    if (sr_text_segments(b.data, b.len, &seg) != 0) UNIT_FAIL("sr_text_segments refused %d x \"%s\"", n, unit);
    sr_buf_free(&b);
    return seg;
}

/* Length in bytes of the UTF-8 sequence starting with lead (valid input). */
static size_t text_test_seq_len(unsigned char lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

/* ---- UTF-8 and the GSM table ------------------------------------------ */

TEST(encoding_names) {
    CHECK_STR(sr_encoding_name(SR_ENC_GSM7), "gsm7");
    CHECK_STR(sr_encoding_name(SR_ENC_UCS2), "ucs2");
}

TEST(utf8_invalid_rejected) {
    static const struct {
        const char *bytes;
        size_t len;
        const char *what;
    } bad[] = {
        {"\x80", 1, "lone continuation"},
        {"abc\xbf", 4, "continuation after ASCII"},
        {"\xc0\x80", 2, "overlong NUL"},
        {"\xc1\xbf", 2, "overlong 2-byte"},
        {"\xe0\x80\xaf", 3, "overlong 3-byte"},
        {"\xf0\x8f\xbf\xbf", 4, "overlong 4-byte"},
        {"\xed\xa0\x80", 3, "surrogate D800"},
        {"\xed\xbf\xbf", 3, "surrogate DFFF"},
        {"\xf4\x90\x80\x80", 4, "above U+10FFFF"},
        {"\xf5\x80\x80\x80", 4, "F5 lead"},
        {"\xff", 1, "FF"},
        /* Truncated: the missing byte follows in memory, outside the range. */
        {"\xe2\x82\xac", 2, "truncated euro"},
        {"ok \xf0\x9f\x98\x80", 6, "truncated emoji at the end"},
        {"\xe2\x82z", 3, "sequence cut by ASCII"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sr_segments seg = {SR_ENC_UCS2, 42, 42};
        size_t ends[4] = {7, 7, 7, 7};
        if (sr_utf8_valid(bad[i].bytes, bad[i].len)) UNIT_FAIL("accepted: %s", bad[i].what);
        if (sr_text_segments(bad[i].bytes, bad[i].len, &seg) != -1) UNIT_FAIL("segments: %s", bad[i].what);
        if (sr_text_split(bad[i].bytes, bad[i].len, ends, 4) != -1) UNIT_FAIL("split: %s", bad[i].what);
        CHECK_INT(seg.segments, 42);
        CHECK_INT(ends[0], 7);
    }
}

TEST(utf8_valid_edges_accepted) {
    CHECK(sr_utf8_valid("", 0));
    CHECK(sr_utf8_valid(NULL, 0));
    CHECK(sr_utf8_valid("a\0b", 3));
    CHECK(sr_utf8_valid("\xc2\x80", 2));         /* U+0080 */
    CHECK(sr_utf8_valid("\xed\x9f\xbf", 3));     /* U+D7FF */
    CHECK(sr_utf8_valid("\xee\x80\x80", 3));     /* U+E000 */
    CHECK(sr_utf8_valid("\xf0\x90\x80\x80", 4)); /* U+10000 */
    CHECK(sr_utf8_valid("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
    CHECK(sr_utf8_valid("Ti\xe1\xba\xbfng Vi\xe1\xbb\x87t", 14));
}

/* The basic table in GSM order (0x00..0x7F, the escape 0x1B left out). */
static const char text_test_gsm_basic[] = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
                                          " !\"#¤%&'()*+,-./0123456789:;<=>?"
                                          "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
                                          "¿abcdefghijklmnopqrstuvwxyzäöñüà";
static const char text_test_gsm_extension[] = "\f^{}\\[~]|€";

TEST(gsm_table_exact) {
    /* Every character of the table is basic... */
    size_t chars = 0;
    for (size_t i = 0; i < sizeof text_test_gsm_basic - 1; chars++) {
        size_t n = text_test_seq_len((unsigned char)text_test_gsm_basic[i]);
        sr_segments seg;
        CHECK_INT(sr_text_segments(text_test_gsm_basic + i, n, &seg), 0);
        if (seg.encoding != SR_ENC_GSM7 || seg.units != 1)
            UNIT_FAIL("character at byte %zu (%.*s) not basic GSM", i, (int)n, text_test_gsm_basic + i);
        i += n;
    }
    CHECK_INT(chars, 127);
    for (size_t i = 0; i < sizeof text_test_gsm_extension - 1;) {
        size_t n = text_test_seq_len((unsigned char)text_test_gsm_extension[i]);
        sr_segments seg;
        CHECK_INT(sr_text_segments(text_test_gsm_extension + i, n, &seg), 0);
        if (seg.encoding != SR_ENC_GSM7 || seg.units != 2)
            UNIT_FAIL("character at byte %zu (%.*s) not a GSM extension", i, (int)n, text_test_gsm_extension + i);
        i += n;
    }
    /* ...and nothing else in Unicode is: 127 basic and 10 extension characters. */
    size_t basic = 0, extension = 0;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        int septets = sr_gsm7_septets(cp);
        if (septets == 1) basic++;
        if (septets == 2) extension++;
    }
    CHECK_INT(basic, 127);
    CHECK_INT(extension, 10);
}

TEST(gsm_table_tricky_characters) {
    CHECK_INT(sr_gsm7_septets('$'), 1);
    CHECK_INT(sr_gsm7_septets('@'), 1);
    CHECK_INT(sr_gsm7_septets('_'), 1);
    CHECK_INT(sr_gsm7_septets(0xA4), 1);   /* ¤ */
    CHECK_INT(sr_gsm7_septets(0x20AC), 2); /* € */
    CHECK_INT(sr_gsm7_septets('\f'), 2);
    CHECK_INT(sr_gsm7_septets('`'), 0);
    CHECK_INT(sr_gsm7_septets('\t'), 0);
    CHECK_INT(sr_gsm7_septets(0), 0);
    CHECK_INT(sr_gsm7_septets(0x1B), 0); /* the escape itself is not a character */
    CHECK_INT(sr_gsm7_septets(0x7F), 0);
    CHECK_INT(sr_gsm7_septets(0xE7), 0);   /* ç: only the capital Ç is in the table */
    CHECK_INT(sr_gsm7_septets(0x2126), 0); /* Ohm sign, not Greek Omega */
    CHECK_INT(sr_gsm7_septets(0x03A9), 1); /* Greek Omega */
    CHECK_INT(sr_gsm7_septets(0x0391), 0); /* Greek Alpha has no GSM form */
}

/* ---- segments: GSM-7 ---------------------------------------------------- */

TEST(segments_empty_text) {
    sr_segments seg = {SR_ENC_UCS2, -1, 99};
    CHECK_INT(sr_text_segments("", 0, &seg), 0);
    CHECK_INT(seg.encoding, SR_ENC_GSM7);
    CHECK_INT(seg.segments, 1);
    CHECK_INT(seg.units, 0);
    CHECK_INT(sr_text_segments(NULL, 0, &seg), 0);
    CHECK_INT(seg.segments, 1);
    size_t end = 99;
    CHECK_INT(sr_text_split("", 0, &end, 1), 1);
    CHECK_INT(end, 0);
}

TEST(segments_gsm7_single_part_limit) {
    sr_segments seg = text_test_measure("a", 160);
    CHECK_INT(seg.encoding, SR_ENC_GSM7);
    CHECK_INT(seg.units, 160);
    CHECK_INT(seg.segments, 1);
    seg = text_test_measure("a", 161);
    CHECK_INT(seg.units, 161);
    CHECK_INT(seg.segments, 2);
}

TEST(segments_gsm7_multi_part_boundaries) {
    CHECK_INT(text_test_measure("a", 306).segments, 2);
    CHECK_INT(text_test_measure("a", 307).segments, 3);
    CHECK_INT(text_test_measure("a", 459).segments, 3);
    CHECK_INT(text_test_measure("a", 460).segments, 4);
    size_t ends[3];
    CHECK_INT(sr_text_split("aaaaaaaaaa", 10, ends, 3), 1);
    CHECK_INT(ends[0], 10);
}

TEST(segments_gsm7_extension_counts_two) {
    sr_segments seg = text_test_measure("{", 80);
    CHECK_INT(seg.encoding, SR_ENC_GSM7);
    CHECK_INT(seg.units, 160);
    CHECK_INT(seg.segments, 1);
    seg = text_test_measure("{", 81);
    CHECK_INT(seg.units, 162);
    CHECK_INT(seg.segments, 2);
    seg = text_test_measure("€", 80); /* three bytes, two septets */
    CHECK_INT(seg.encoding, SR_ENC_GSM7);
    CHECK_INT(seg.units, 160);
    CHECK_INT(seg.segments, 1);
}

TEST(split_gsm7_extension_pair_moves_to_next_part) {
    /* 152 septets, then '{' (2): the pair would straddle 153, so part 1 stops
     * at 152 and the pair opens part 2. */
    sr_buf b;
    sr_buf_init(&b);
    text_test_repeat(&b, "a", 152);
    sr_buf_puts(&b, "{");
    text_test_repeat(&b, "a", 10);
    size_t ends[4] = {0};
    CHECK_INT(sr_text_split(b.data, b.len, ends, 4), 2);
    CHECK_INT(ends[0], 152);
    CHECK_INT(ends[1], b.len);

    /* 306 septets would fit 2 x 153, but the moved pair makes it 3 parts:
     * 152 | '{' + 151 | 1. */
    sr_buf_reset(&b);
    text_test_repeat(&b, "a", 152);
    sr_buf_puts(&b, "{");
    text_test_repeat(&b, "a", 152);
    sr_segments seg;
    CHECK_INT(sr_text_segments(b.data, b.len, &seg), 0);
    CHECK_INT(seg.units, 306);
    CHECK_INT(seg.segments, 3);
    CHECK_INT(sr_text_split(b.data, b.len, ends, 4), 3);
    CHECK_INT(ends[0], 152);
    CHECK_INT(ends[1], 152 + 1 + 151);
    CHECK_INT(ends[2], b.len);
    sr_buf_free(&b);
}

TEST(split_gsm7_plain_boundaries) {
    sr_buf b;
    sr_buf_init(&b);
    text_test_repeat(&b, "a", 161);
    size_t ends[2];
    CHECK_INT(sr_text_split(b.data, b.len, ends, 2), 2);
    CHECK_INT(ends[0], 153);
    CHECK_INT(ends[1], 161);
    sr_buf_free(&b);
}

TEST(split_reports_full_count_when_array_small) {
    sr_buf b;
    sr_buf_init(&b);
    text_test_repeat(&b, "a", 400);
    size_t ends[3] = {0, 77, 77};
    CHECK_INT(sr_text_split(b.data, b.len, ends, 1), 3);
    CHECK_INT(ends[0], 153);
    CHECK_INT(ends[1], 77);
    CHECK_INT(sr_text_split(b.data, b.len, NULL, 0), 3);
    sr_buf_free(&b);
}

/* ---- segments: UCS-2 ---------------------------------------------------- */

TEST(segments_ucs2_boundaries) {
    sr_segments seg = text_test_measure("Ж", 70);
    CHECK_INT(seg.encoding, SR_ENC_UCS2);
    CHECK_INT(seg.units, 70);
    CHECK_INT(seg.segments, 1);
    CHECK_INT(text_test_measure("Ж", 71).segments, 2);
    CHECK_INT(text_test_measure("Ж", 134).segments, 2);
    CHECK_INT(text_test_measure("Ж", 135).segments, 3);
    CHECK_INT(text_test_measure("Ж", 201).segments, 3);
    CHECK_INT(text_test_measure("Ж", 202).segments, 4);
}

TEST(segments_ucs2_emoji_counts_two) {
    sr_segments seg = text_test_measure("\xf0\x9f\x98\x80", 1); /* U+1F600 */
    CHECK_INT(seg.encoding, SR_ENC_UCS2);
    CHECK_INT(seg.units, 2);
    CHECK_INT(seg.segments, 1);
    seg = text_test_measure("\xf0\x9f\x98\x80", 35);
    CHECK_INT(seg.units, 70);
    CHECK_INT(seg.segments, 1);
    seg = text_test_measure("\xf0\x9f\x98\x80", 36);
    CHECK_INT(seg.units, 72);
    CHECK_INT(seg.segments, 2);
}

TEST(split_ucs2_emoji_never_split) {
    /* 66 units, then an emoji (2): it would straddle 67, so it opens part 2. */
    sr_buf b;
    sr_buf_init(&b);
    text_test_repeat(&b, "Ж", 66);
    sr_buf_puts(&b, "\xf0\x9f\x98\x80");
    text_test_repeat(&b, "Ж", 66);
    sr_segments seg;
    CHECK_INT(sr_text_segments(b.data, b.len, &seg), 0);
    CHECK_INT(seg.encoding, SR_ENC_UCS2);
    CHECK_INT(seg.units, 134);
    CHECK_INT(seg.segments, 3); /* 134 = 2 x 67, but the parts are 66 | 67 | 1 */
    size_t ends[3];
    CHECK_INT(sr_text_split(b.data, b.len, ends, 3), 3);
    CHECK_INT(ends[0], 66 * 2);
    CHECK_INT(ends[1], 66 * 2 + 4 + 65 * 2);
    CHECK_INT(ends[2], b.len);
    sr_buf_free(&b);
}

TEST(segments_one_non_gsm_char_flips_to_ucs2) {
    sr_buf b;
    sr_buf_init(&b);
    text_test_repeat(&b, "a", 100);
    sr_segments seg;
    CHECK_INT(sr_text_segments(b.data, b.len, &seg), 0);
    CHECK_INT(seg.encoding, SR_ENC_GSM7);
    CHECK_INT(seg.segments, 1);

    sr_buf_puts(&b, "Ж");
    CHECK_INT(sr_text_segments(b.data, b.len, &seg), 0);
    CHECK_INT(seg.encoding, SR_ENC_UCS2);
    CHECK_INT(seg.units, 101);
    CHECK_INT(seg.segments, 2);

    sr_buf_reset(&b);
    sr_buf_puts(&b, "`");
    text_test_repeat(&b, "a", 100);
    CHECK_INT(sr_text_segments(b.data, b.len, &seg), 0);
    CHECK_INT(seg.encoding, SR_ENC_UCS2);
    CHECK_INT(seg.units, 101);
    CHECK_INT(seg.segments, 2);

    /* In UCS-2 the GSM extension characters are ordinary single units. */
    CHECK_INT(sr_text_segments("Ж{€", strlen("Ж{€"), &seg), 0);
    CHECK_INT(seg.encoding, SR_ENC_UCS2);
    CHECK_INT(seg.units, 3);
    sr_buf_free(&b);
}

TEST(segments_vietnamese_is_ucs2) {
    static const char text[] = "Tiếng Việt có dấu"; /* 17 characters, all in the BMP */
    sr_segments seg;
    CHECK_INT(sr_text_segments(text, sizeof text - 1, &seg), 0);
    CHECK_INT(seg.encoding, SR_ENC_UCS2);
    CHECK_STR(sr_encoding_name(seg.encoding), "ucs2");
    CHECK_INT(seg.units, 17);
    CHECK_INT(seg.segments, 1);
}

TEST(segments_gsm_accents_stay_gsm7) {
    static const char text[] = "Café à Zürich, 5€ {ok}"; /* é à ü are basic GSM */
    sr_segments seg;
    CHECK_INT(sr_text_segments(text, sizeof text - 1, &seg), 0);
    CHECK_INT(seg.encoding, SR_ENC_GSM7);
    CHECK_INT(seg.units, 22 + 3); /* € { } count two */
}
