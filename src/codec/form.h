/* form: application/x-www-form-urlencoded text — a query string or a form
 * body — read one way everywhere: the adapters' request.form
 * (rules/adapter.c), the webhook field cap (api/api_hooks.c), the API's
 * query parameters (api/api_messages.c) and the mock provider.
 *
 * The rules, those of HTML forms: pairs are separated by '&' and empty
 * segments are skipped; a pair's name ends at its first '=' (a pair without
 * '=' has an empty value; a name may be empty, callers skip such pairs);
 * '+' decodes to a space, '%' and two hex digits (either case) to that
 * byte, and a '%' not followed by two hex digits stays as it is. Decoding
 * never makes text longer, so a buffer of the raw length always has room.
 * Nothing here allocates except sr_form_unescape_buf, into the caller's
 * buffer. Input is given with its length and need not be NUL-terminated. */
#ifndef SR_FORM_H
#define SR_FORM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/* The most pairs a webhook's query, or its form body, may carry: real ones
 * have a few dozen and signature checks sort them all. */
#define SR_FORM_MAX_FIELDS 256

/* One name=value pair as it stands in the text: both still escaped.
 * Borrowed: points into the text given to sr_form_next. */
typedef struct sr_form_pair {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} sr_form_pair;

/* The pair of the next non-empty segment at or after *pos (start at 0), and
 * *pos moved past it. Returns false when there is none. */
bool sr_form_next(const char *s, size_t len, size_t *pos, sr_form_pair *pair);

/* The number of non-empty segments: what the field cap counts. */
size_t sr_form_count(const char *s, size_t len);

/* Decodes len escaped bytes at s into out (room for len bytes; out may be s
 * itself) and returns the decoded length. */
size_t sr_form_unescape(char *out, const char *s, size_t len);

/* Appends the decoding of len escaped bytes at s to out. */
void sr_form_unescape_buf(sr_buf *out, const char *s, size_t len);

/* Whether len escaped bytes at s decode to exactly name (NUL-terminated). */
bool sr_form_name_is(const char *s, size_t len, const char *name);

/* The first pair whose decoded name is name, into *pair. Returns false when
 * there is none. */
bool sr_form_find(const char *s, size_t len, const char *name, sr_form_pair *pair);

/* Decodes the value of the first pair named name into out (replacing what
 * it held, NUL-terminated). Returns whether there is such a pair. */
bool sr_form_get(const char *s, size_t len, const char *name, sr_buf *out);

#endif
