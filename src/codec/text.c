#include "codec/text.h"

#include <limits.h>
#include <string.h>

/* ---- UTF-8 ------------------------------------------------------------ */

/* Decodes one code point of s[*pos..len) into *cp and advances *pos. Returns
 * -1 (with *pos unchanged) on anything but the shortest well-formed encoding
 * of a Unicode scalar value. */
static int text_decode(const unsigned char *s, size_t len, size_t *pos, uint32_t *cp) {
    size_t i = *pos;
    unsigned char c = s[i];
    if (c < 0x80) {
        *cp = c;
        *pos = i + 1;
        return 0;
    }

    size_t need;
    uint32_t value, min;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        value = c & 0x1Fu;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        value = c & 0x0Fu;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        value = c & 0x07u;
        min = 0x10000;
    } else {
        /* Continuation bytes, C0/C1 (always overlong), F5..FF (above U+10FFFF). */
        return -1;
    }
    if (len - i - 1 < need) return -1;
    for (size_t k = 1; k <= need; k++) {
        unsigned char b = s[i + k];
        if ((b & 0xC0) != 0x80) return -1;
        value = (value << 6) | (b & 0x3Fu);
    }
    if (value < min || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return -1;
    *cp = value;
    *pos = i + 1 + need;
    return 0;
}

int sr_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t pos = 0;
    uint32_t cp;
    while (pos < len) {
        if (text_decode(p, len, &pos, &cp) < 0) return 0;
    }
    return 1;
}

/* ---- GSM 03.38 -------------------------------------------------------- */

/* Septets per ASCII character: 1 basic table, 2 extension table, 0 none.
 * Of the controls only LF and CR are basic and form feed is an extension;
 * '`' has no GSM-7 form, '$' and '@' are basic, ^ { } \ [ ~ ] | extension. */
static const unsigned char text_gsm_ascii[128] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 1, 0, 0, /* 0x00: \n, \f, \r */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20:  !"#$%&'()*+,-./ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x30: 0-9 :;<=>? */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40: @A-O */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 1, /* 0x50: P-Z [\]^_ */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60: `a-o */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 0, /* 0x70: p-z {|}~ DEL */
};

/* The non-ASCII characters of the basic table, sorted for binary search. */
static const uint16_t text_gsm_basic_high[] = {
    0x00A1, /* ¡ */ 0x00A3, /* £ */ 0x00A4, /* ¤ */ 0x00A5, /* ¥ */ 0x00A7, /* § */
    0x00BF, /* ¿ */ 0x00C4, /* Ä */ 0x00C5, /* Å */ 0x00C6, /* Æ */ 0x00C7, /* Ç */
    0x00C9, /* É */ 0x00D1, /* Ñ */ 0x00D6, /* Ö */ 0x00D8, /* Ø */ 0x00DC, /* Ü */
    0x00DF, /* ß */ 0x00E0, /* à */ 0x00E4, /* ä */ 0x00E5, /* å */ 0x00E6, /* æ */
    0x00E8, /* è */ 0x00E9, /* é */ 0x00EC, /* ì */ 0x00F1, /* ñ */ 0x00F2, /* ò */
    0x00F6, /* ö */ 0x00F8, /* ø */ 0x00F9, /* ù */ 0x00FC, /* ü */ 0x0393, /* Γ */
    0x0394, /* Δ */ 0x0398, /* Θ */ 0x039B, /* Λ */ 0x039E, /* Ξ */ 0x03A0, /* Π */
    0x03A3, /* Σ */ 0x03A6, /* Φ */ 0x03A8, /* Ψ */ 0x03A9,                 /* Ω */
};

#define TEXT_EURO 0x20AC

int sr_gsm7_septets(uint32_t cp) {
    if (cp < 0x80) return text_gsm_ascii[cp];
    if (cp == TEXT_EURO) return 2;
    if (cp < text_gsm_basic_high[0] || cp > 0x03A9) return 0;
    size_t lo = 0, hi = sizeof text_gsm_basic_high / sizeof text_gsm_basic_high[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (text_gsm_basic_high[mid] == cp) return 1;
        if (text_gsm_basic_high[mid] < cp) lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* ---- Encodings and parts ---------------------------------------------- */

const char *sr_encoding_name(sr_encoding e) {
    switch (e) {
    case SR_ENC_GSM7: return "gsm7";
    case SR_ENC_UCS2: return "ucs2";
    }
    return "unknown";
}

/* Units one character takes in the given encoding. */
static size_t text_char_units(sr_encoding encoding, uint32_t cp) {
    if (encoding == SR_ENC_GSM7) return (size_t)sr_gsm7_septets(cp);
    return cp > 0xFFFF ? 2 : 1;
}

/* Validates s and picks its encoding and total length in that encoding's
 * units. Returns -1 on invalid UTF-8. */
static int text_scan(const unsigned char *s, size_t len, sr_encoding *encoding, size_t *units) {
    size_t gsm_units = 0, ucs_units = 0, pos = 0;
    int gsm = 1;
    uint32_t cp;
    while (pos < len) {
        if (text_decode(s, len, &pos, &cp) < 0) return -1;
        int septets = sr_gsm7_septets(cp);
        if (septets == 0) gsm = 0;
        gsm_units += (size_t)septets;
        ucs_units += cp > 0xFFFF ? 2 : 1;
    }
    *encoding = gsm ? SR_ENC_GSM7 : SR_ENC_UCS2;
    *units = gsm ? gsm_units : ucs_units;
    return 0;
}

/* Records the end of one more part: stores it while there is room and counts
 * it, saturating at INT_MAX. */
static void text_end_part(size_t end, size_t *part_end, int max_parts, int *count) {
    if (*count < max_parts) part_end[*count] = end;
    if (*count < INT_MAX) (*count)++;
}

/* The greedy cut shared by sr_text_segments and sr_text_split, on text that
 * text_scan has already accepted. Returns the part count. */
static int text_cut(const unsigned char *s, size_t len, sr_encoding encoding, size_t units, size_t *part_end,
                    int max_parts) {
    size_t single = encoding == SR_ENC_GSM7 ? SR_GSM7_SINGLE : SR_UCS2_SINGLE;
    size_t multi = encoding == SR_ENC_GSM7 ? SR_GSM7_MULTI : SR_UCS2_MULTI;
    int count = 0;

    if (units <= single) {
        text_end_part(len, part_end, max_parts, &count);
        return count;
    }
    size_t pos = 0, used = 0;
    uint32_t cp;
    while (pos < len) {
        size_t start = pos;
        text_decode(s, len, &pos, &cp); /* cannot fail: text_scan validated s */
        size_t width = text_char_units(encoding, cp);
        /* A character never straddles two parts: an escape pair or a surrogate
         * pair that does not fit whole opens the next part. */
        if (used + width > multi) {
            text_end_part(start, part_end, max_parts, &count);
            used = 0;
        }
        used += width;
    }
    text_end_part(len, part_end, max_parts, &count);
    return count;
}

int sr_text_segments(const char *s, size_t len, sr_segments *out) {
    const unsigned char *p = (const unsigned char *)s;
    sr_encoding encoding;
    size_t units;
    if (text_scan(p, len, &encoding, &units) < 0) return -1;
    out->encoding = encoding;
    out->units = units;
    out->segments = text_cut(p, len, encoding, units, NULL, 0);
    return 0;
}

int sr_text_split(const char *s, size_t len, size_t *part_end, int max_parts) {
    const unsigned char *p = (const unsigned char *)s;
    sr_encoding encoding;
    size_t units;
    if (text_scan(p, len, &encoding, &units) < 0) return -1;
    if (!part_end) max_parts = 0;
    return text_cut(p, len, encoding, units, part_end, max_parts);
}
