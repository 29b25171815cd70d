/* json: a strict RFC 8259 parser that builds a read-only tree (DOM).
 *
 * This unit owns parsed documents. A sr_json_doc owns every node, key and
 * decoded string of one parse in a single arena made of a few large blocks
 * (no malloc per node); the caller borrows them until sr_json_doc_free. The
 * input text is never referenced after sr_json_parse returns.
 *
 * The parser is strict: no trailing commas, comments, leading zeros, NaN,
 * Infinity, single quotes or raw control characters in strings; only
 * whitespace around the one top-level value; at most SR_JSON_MAX_DEPTH nested
 * arrays/objects; no duplicate keys in one object. It does not validate UTF-8:
 * raw bytes >= 0x80 inside strings are copied through so the caller can check
 * the text and answer a more specific error, and a lone surrogate escape
 * (\ud800) is decoded to its 3-byte generalized form (ED A0 80), which any
 * UTF-8 validator rejects. Numbers keep their exact source text, so integer ids
 * above 2^53 are never rounded. */
#ifndef SR_JSON_H
#define SR_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Deepest accepted nesting of arrays and objects: "[[1]]" has depth 2. */
#define SR_JSON_MAX_DEPTH 64

typedef enum {
    SR_JSON_NULL,
    SR_JSON_FALSE,
    SR_JSON_TRUE,
    SR_JSON_NUMBER,
    SR_JSON_STRING,
    SR_JSON_ARRAY,
    SR_JSON_OBJECT
} sr_json_type;

typedef struct sr_json sr_json;
struct sr_json {
    sr_json_type type;
    /* Set on object members (decoded, NUL-terminated), else NULL. */
    const char *key;
    size_t key_len;
    /* STRING: the decoded bytes, NUL-terminated; may contain NUL (\u0000),
     * so len is authoritative. NUMBER: the number text exactly as written,
     * NUL-terminated. Other types: NULL and 0. */
    const char *str;
    size_t len;
    double num;     /* NUMBER: the value as the nearest double */
    sr_json *child; /* ARRAY/OBJECT: first element/member, in document order */
    sr_json *next;  /* next sibling, NULL on the last one */
    size_t count;   /* ARRAY/OBJECT: number of children */
};

struct sr_json_block;
typedef struct sr_json_doc {
    sr_json *root;
    struct sr_json_block *blocks; /* private: the arena, newest block first */
} sr_json_doc;

/* Parses text[0..len); text need not be NUL-terminated and is only borrowed
 * for the call. On success returns 0 and doc->root is the top-level value,
 * owned by doc. On failure returns -1, leaves doc empty (root NULL, nothing
 * to free) and writes a short message ending in the byte offset of the
 * problem into err ("unexpected character 'x' at offset 12"), truncated to
 * errlen; err may be NULL. Overwrites doc without freeing it: free a previous
 * document first. Memory: about 80 bytes per value plus the string bytes. */
int sr_json_parse(sr_json_doc *doc, const char *text, size_t len, char *err, size_t errlen);

/* Releases everything the document owns; every node, key and string taken
 * from it becomes invalid. Safe on a zeroed, failed or already freed doc. */
void sr_json_doc_free(sr_json_doc *doc);

/* Member of obj named key (NUL-terminated), or NULL when obj is NULL, not an
 * object, or has no such member. Borrowed from obj's document. Linear in the
 * number of members. */
sr_json *sr_json_get(const sr_json *obj, const char *key);
/* Same, for a key of key_len bytes. (Parsed keys never hold NUL: the parser
 * refuses "\u0000" in a key, so every key can be read as a C string.) */
sr_json *sr_json_get_len(const sr_json *obj, const char *key, size_t key_len);

/* Returns 1 and stores the value in *out when v is a NUMBER written without
 * fraction or exponent that fits int64_t ("-0" gives 0); else returns 0 and
 * leaves *out alone. "1.0" and "1e3" are not integers here. */
int sr_json_is_integer(const sr_json *v, int64_t *out);

/* Appends v (and its children; not its key) as compact JSON to out: numbers
 * as their source text, strings through sr_buf_json_str (invalid UTF-8 becomes
 * U+FFFD). A NULL v is written as null. */
void sr_json_write(sr_buf *out, const sr_json *v);

#endif
