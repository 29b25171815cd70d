/* Fuzz target for src/codec/text.c. The first input byte is skipped (it used to
 * pick phone numbers, which moved to src/codec/phone.cc); on the rest:
 *   text:  sr_text_segments and sr_text_split on the rest, checking text.h:
 *          both refuse exactly what sr_utf8_valid refuses, the part count
 *          agrees, part ends increase strictly (one empty part for the empty
 *          text), the last is len, every end is on a UTF-8 character boundary
 *          (so no sequence, and in UCS-2 no surrogate pair, is ever cut),
 *          every part fits its limit, greedy filling (the next character did
 *          not fit), and a short part_end array is filled with a prefix. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/text.h"

/* libFuzzer's entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_TEXT_MAX_PARTS 1024

/* Decodes the (already validated) character at s[*pos] and returns its code point. */
static uint32_t fuzz_text_next(const unsigned char *s, size_t *pos) {
    unsigned char c = s[*pos];
    int need = c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
    uint32_t cp = need == 0 ? c : need == 1 ? c & 0x1Fu : need == 2 ? c & 0x0Fu : c & 0x07u;
    for (int k = 1; k <= need; k++) cp = cp << 6 | (s[*pos + k] & 0x3Fu);
    *pos += 1 + (size_t)need;
    return cp;
}

static size_t fuzz_text_units(sr_encoding e, uint32_t cp) {
    if (e == SR_ENC_GSM7) return (size_t)sr_gsm7_septets(cp);
    return cp > 0xFFFF ? 2 : 1;
}

static void fuzz_split(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    const unsigned char *u = data;
    sr_segments seg;
    static size_t ends[FUZZ_TEXT_MAX_PARTS];
    int valid = sr_utf8_valid(s, size);
    int rc = sr_text_segments(s, size, &seg);
    int count = sr_text_split(s, size, ends, FUZZ_TEXT_MAX_PARTS);
    if (!valid) {
        if (rc != -1 || count != -1) abort();
        return;
    }
    if (rc != 0 || count < 1 || count != seg.segments) abort();
    if (count > FUZZ_TEXT_MAX_PARTS) return; /* needs a 150 kB input; max_len keeps it out */
    if (ends[count - 1] != size) abort();

    size_t single = seg.encoding == SR_ENC_GSM7 ? SR_GSM7_SINGLE : SR_UCS2_SINGLE;
    size_t multi = seg.encoding == SR_ENC_GSM7 ? SR_GSM7_MULTI : SR_UCS2_MULTI;
    size_t limit = count == 1 ? single : multi;
    size_t pos = 0, total = 0;
    int gsm = 1;
    for (int i = 0; i < count; i++) {
        size_t end = ends[i], units = 0;
        if (i > 0 && end <= ends[i - 1]) abort();
        if (end > size || (size > 0 && end == pos)) abort();
        while (pos < end) {
            uint32_t cp = fuzz_text_next(u, &pos);
            if (sr_gsm7_septets(cp) == 0) gsm = 0;
            units += fuzz_text_units(seg.encoding, cp);
        }
        if (pos != end) abort(); /* the end fell inside a UTF-8 sequence */
        if (units > limit) abort();
        total += units;
        if (i + 1 < count) {
            /* Greedy: the first character of the next part did not fit. */
            size_t peek = pos;
            uint32_t cp = fuzz_text_next(u, &peek);
            if (units + fuzz_text_units(seg.encoding, cp) <= multi) abort();
        }
    }
    if (total != seg.units) abort();
    if ((seg.encoding == SR_ENC_GSM7) != gsm) abort();

    /* A short array gets the first ends and the same count, like snprintf. */
    size_t few[2] = {0, 0};
    if (sr_text_split(s, size, few, 1) != count || few[0] != ends[0] || few[1] != 0) abort();
    if (sr_text_split(s, size, NULL, 5) != count) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    /* The first byte once chose phone numbers (now src/codec/phone.cc, C++ over
     * libphonenumber) or text; it is skipped so that the seeds stay valid. */
    fuzz_split(data + 1, size - 1);
    return 0;
}
