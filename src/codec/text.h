/* text: the SMS text rules: UTF-8 validity, encodings and parts.
 *
 * Owns the knowledge of what a network does to a message before it is sent:
 * which alphabet (GSM 03.38 7-bit or UCS-2) a text needs, how many septets or
 * UTF-16 code units it takes, and where a provider cuts it into concatenated
 * parts (160 / 70 for one part, 153 / 67 per part when several are needed,
 * never cutting an escape pair or a surrogate pair). Everything here is pure: no allocation, no I/O, no
 * global state, and every input is a byte range that need not be
 * NUL-terminated and may contain NUL bytes. */
#ifndef SR_TEXT_H
#define SR_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Septets / code units per part: a text that fits in SR_*_SINGLE goes as one
 * part; a longer one is cut into parts of at most SR_*_MULTI (the rest of
 * each part carries the concatenation header). */
#define SR_GSM7_SINGLE 160
#define SR_GSM7_MULTI 153
#define SR_UCS2_SINGLE 70
#define SR_UCS2_MULTI 67

typedef enum { SR_ENC_GSM7 = 0, SR_ENC_UCS2 = 1 } sr_encoding;

/* "gsm7" or "ucs2" (static strings); "unknown" for any other value. */
const char *sr_encoding_name(sr_encoding e);

/* Returns 1 when s[0..len) is strict UTF-8 (shortest forms only, no UTF-16
 * surrogates U+D800..U+DFFF, nothing above U+10FFFF, no truncated sequence),
 * 0 otherwise. U+0000 is valid. s is borrowed and may be NULL when len is 0. */
int sr_utf8_valid(const char *s, size_t len);

/* Septets the code point takes in the GSM 03.38 default alphabet: 1 for the
 * basic table, 2 for the extension table (escape + character: form feed,
 * ^ { } \ [ ~ ] | and the euro sign), 0 when it has no GSM-7 form at all. */
int sr_gsm7_septets(uint32_t cp);

/* What a text costs: its encoding, the number of parts a provider sends, and
 * its length in the encoding's units (GSM septets, extension characters
 * counting two; or UTF-16 code units, characters above U+FFFF counting two). */
typedef struct {
    sr_encoding encoding;
    int segments;
    size_t units;
} sr_segments;

/* Fills *out for s[0..len) (borrowed; NULL allowed when len is 0). The text is
 * GSM-7 when every character has a GSM-7 form, UCS-2 otherwise: one character
 * outside the table moves the whole text to UCS-2. The empty text is one GSM-7
 * segment of 0 units. segments always equals what sr_text_split returns (it
 * saturates at INT_MAX for absurdly long texts). Returns 0, or -1 when s is not
 * valid UTF-8 (*out is then left untouched). */
int sr_text_segments(const char *s, size_t len, sr_segments *out);

/* Cuts s[0..len) into parts as a provider would: the text's encoding decides
 * the part size (see the SR_*_SINGLE / SR_*_MULTI limits), parts are filled
 * greedily in order, and a character that would not fit whole (an extension
 * pair, a surrogate pair) starts the next part, so such a part holds 152 / 66.
 * Part i is the byte range [part_end[i - 1], part_end[i]) with part_end[-1]
 * taken as 0; the last end is len. Writes the first min(count, max_parts)
 * ends into part_end (caller-owned; may be NULL when max_parts <= 0) and
 * returns the full part count, like snprintf: a result above max_parts means
 * the array was too small. The empty text is one empty part. Returns -1 on
 * invalid UTF-8 (part_end is then untouched). */
int sr_text_split(const char *s, size_t len, size_t *part_end, int max_parts);

#endif
