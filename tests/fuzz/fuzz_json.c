/* Fuzz target for src/codec/json.c: sr_json_parse on arbitrary bytes (the text is
 * not NUL-terminated, so any read past len is caught by ASan). An accepted
 * document is walked (sr_json_get on every member key, sr_json_is_integer on
 * every number, counts checked) and written back with sr_json_write; the
 * output must parse again whenever every key is valid UTF-8 (invalid bytes in
 * two keys may become the same U+FFFD key, which the strict parser rejects as a
 * duplicate), and writing it again must give the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "codec/json.h"
#include "codec/text.h"

/* libFuzzer's entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Walks v, checking what json.h promises of the tree. Returns 1 when every
 * object key below v is valid UTF-8. */
static int fuzz_json_walk(const sr_json *v, int depth) {
    int keys_utf8 = 1;
    if (depth > SR_JSON_MAX_DEPTH) abort();
    if (v->type == SR_JSON_NUMBER) {
        int64_t n;
        if (!v->str || v->str[v->len] != '\0') abort();
        (void)sr_json_is_integer(v, &n);
    } else if (v->type == SR_JSON_STRING) {
        if (!v->str || v->str[v->len] != '\0') abort();
    }
    if (v->type != SR_JSON_ARRAY && v->type != SR_JSON_OBJECT) return 1;
    size_t count = 0;
    for (const sr_json *c = v->child; c; c = c->next) {
        count++;
        if (v->type == SR_JSON_OBJECT) {
            if (!c->key || c->key[c->key_len] != '\0') abort();
            /* Keys are unique, so the lookup must find this very member. */
            if (sr_json_get_len(v, c->key, c->key_len) != c) abort();
            if (!sr_utf8_valid(c->key, c->key_len)) keys_utf8 = 0;
        }
        if (!fuzz_json_walk(c, depth + 1)) keys_utf8 = 0;
    }
    if (count != v->count) abort();
    return keys_utf8;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sr_json_doc doc;
    char err[128];
    if (sr_json_parse(&doc, (const char *)data, size, err, sizeof err) < 0) {
        if (doc.root || doc.blocks || !strstr(err, "offset")) abort();
        sr_json_doc_free(&doc);
        return 0;
    }
    int keys_utf8 = fuzz_json_walk(doc.root, 0);

    sr_buf first, second;
    sr_buf_init(&first);
    sr_buf_init(&second);
    sr_json_write(&first, doc.root);
    sr_json_doc again;
    if (sr_json_parse(&again, first.data, first.len, err, sizeof err) == 0) {
        sr_json_write(&second, again.root);
        if (second.len != first.len || memcmp(first.data, second.data, first.len) != 0) abort();
        sr_json_doc_free(&again);
    } else if (keys_utf8) {
        abort(); /* sr_json_write produced JSON its own parser refuses */
    }
    sr_buf_free(&first);
    sr_buf_free(&second);
    sr_json_doc_free(&doc);
    return 0;
}
