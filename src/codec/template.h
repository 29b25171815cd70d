/* template: message templates, "Order #{{order.number}} confirmed."
 *
 * Owns compiled templates. A template is literal text with placeholders
 * {{path.to.value}}; whitespace is allowed just inside the braces
 * ({{ order.number }}), and a path is one or more segments separated by '.',
 * each a name [A-Za-z_][A-Za-z0-9_]* or a 1-based decimal array index like
 * Lua's (items.1.name). The three bytes \{{ stand for a literal "{{"; a lone
 * '{', a '}}' that closes nothing and every other backslash are plain text.
 * (So there is no way to write a backslash directly before a placeholder.)
 *
 * A template is compiled once, when the rules load, so syntax errors surface
 * there with their byte offset; the compiled form keeps literal spans and
 * pre-split paths, and rendering does no parsing. Values come from a lookup
 * callback, so the same template renders from a Lua table or a JSON document;
 * both lookups are provided here. A missing variable is an error naming it,
 * never an empty string. Sizes are bounded so a hostile template cannot blow
 * memory: SR_TEMPLATE_MAX_SOURCE bytes of source, SR_TEMPLATE_MAX_OUTPUT bytes
 * of rendered text. */
#ifndef SR_TEMPLATE_H
#define SR_TEMPLATE_H

#include <stddef.h>

#include "core/buf.h"

/* Longest template source and longest rendered text, in bytes. */
#define SR_TEMPLATE_MAX_SOURCE 65536
#define SR_TEMPLATE_MAX_OUTPUT 65536

/* Return codes of a lookup callback besides 0 (found and appended). */
#define SR_TEMPLATE_MISSING (-1)       /* no such variable */
#define SR_TEMPLATE_NOT_PRINTABLE (-2) /* exists but is not text: object, array, null, function... */

typedef struct sr_template sr_template;

/* Compiles src[0..len) (borrowed for the call; need not be NUL-terminated and
 * may contain NUL bytes as literal text). On success returns 0 and stores a
 * new template in *out, owned by the caller (sr_template_free). On failure
 * returns -1, sets *out to NULL and writes "offset N: message" into err
 * (truncated to errlen; err may be NULL), N being the byte offset of the
 * problem: an unclosed "{{" (offset of the "{{"), an empty placeholder, a bad
 * path segment or stray character (offset of the offending byte), an array
 * index of 0 or with leading zeros, a source above SR_TEMPLATE_MAX_SOURCE. */
int sr_template_compile(const char *src, size_t len, sr_template **out, char *err, size_t errlen);

/* Releases t and everything it owns; NULL is fine. */
void sr_template_free(sr_template *t);

/* Number of distinct variable paths in t, in order of first appearance (a
 * path used twice is listed once). */
int sr_template_var_count(const sr_template *t);

/* Path i (0 <= i < sr_template_var_count) as written without whitespace,
 * "order.number"; NULL when i is out of range. Borrowed from t. */
const char *sr_template_var(const sr_template *t, int i);

/* Looks up the variable whose path is segments[0..count) (count >= 1; each
 * segment NUL-terminated, an index segment is all digits, "1" or more; the
 * strings are borrowed for the call). Appends the value's text to out and
 * returns 0, or returns SR_TEMPLATE_MISSING / SR_TEMPLATE_NOT_PRINTABLE;
 * anything it appended before failing is discarded by the caller. */
typedef int (*sr_template_lookup)(void *ud, const char *const *segments, int count, sr_buf *out);

/* Appends t rendered to out (caller-owned, typically reused across renders;
 * its existing content is kept), calling lookup(ud, ...) once per placeholder
 * in order. Returns 0, or -1 with out restored to its length at the call and
 * err (may be NULL) naming the first failure: "missing variable 'order.total'",
 * "variable 'order' is not a string or number", or "rendered text too long"
 * when more than SR_TEMPLATE_MAX_OUTPUT bytes would be produced. Any negative
 * lookup result other than SR_TEMPLATE_NOT_PRINTABLE counts as missing. */
int sr_template_render(const sr_template *t, sr_template_lookup lookup, void *ud, sr_buf *out, char *err,
                       size_t errlen);

/* Lookup in a parsed JSON document: ud is a const sr_json * (borrowed; NULL
 * means no variables at all). Name segments select object members, index
 * segments array elements (1-based); an index segment applied to an object
 * selects the member of that name ("1"). Strings are appended as they are,
 * numbers as their source text ("12.50" stays "12.50"), true/false as words;
 * null, objects and arrays are SR_TEMPLATE_NOT_PRINTABLE. */
int sr_template_lookup_json(void *ud, const char *const *segments, int count, sr_buf *out);

/* Lookup in a Lua table: ud is a sr_template_lua_vars * naming the state and
 * the stack index of the table (relative indexes are fine). Walks nested
 * tables with raw accesses only, so no metamethod (no user code) ever runs;
 * name segments are string keys, index segments integer keys, falling back
 * to the string key of the same spelling (a table decoded from a JSON object
 * keyed "1", "2"). Strings are appended as they are, integers without ".0"
 * (42), floats with "%.14g" (12.5), booleans as "true"/"false"; nil is SR_TEMPLATE_MISSING; tables, functions,
 * userdata and threads are SR_TEMPLATE_NOT_PRINTABLE. Leaves the stack as it
 * found it. Like any Lua API call it may raise a memory error (interning a
 * key string), so call it where a Lua error is caught and keep out anchored
 * (for example a buffer reused across calls), never a local that would leak. */
struct lua_State;
typedef struct sr_template_lua_vars {
    struct lua_State *L;
    int index;
} sr_template_lua_vars;

int sr_template_lookup_lua(void *ud, const char *const *segments, int count, sr_buf *out);

#endif
