/* Fuzz target for the binary message record in src/model/message_record.c:
 * sr_record_decode_binary on arbitrary bytes (format byte 2 + fields).
 * message_record.h promises that anything but exactly one valid record is an
 * error, never a crash, that the encoder normalises what it writes so the
 * record always reads back, and that the binary and the JSON record hold the
 * same message. So every record that decodes is checked:
 *   - its encoding decodes and encodes again to the same bytes (stable);
 *   - the message as the store holds it (that encoding, read back) and its
 *     JSON record (what older versions wrote) read back have the same API
 *     JSON (GET /v1/messages/ID is the same whichever format the store held),
 *     and so does its arena copy. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "model/message.h"
#include "model/message_record.h"

/* libFuzzer's entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(const char *what, const sr_buf *a, const sr_buf *b) {
    fprintf(stderr, "%s\n%.*s\n%.*s\n", what, (int)a->len, a->data, (int)b->len, b->data);
    abort();
}

/* The encoding of m decodes (into *norm), and encodes to the same bytes again. */
static void fuzz_check_stable(const sr_message *m, sr_message *norm) {
    sr_buf first, second;
    sr_buf_init(&first);
    sr_buf_init(&second);
    sr_message_encode(m, &first);
    if (sr_record_decode_binary(first.data, first.len, norm) < 0)
        fuzz_fail("re-encoded record does not decode", &first, &first);
    sr_message_encode(norm, &second);
    if (second.len != first.len || memcmp(first.data, second.data, first.len) != 0)
        fuzz_fail("encoding not stable", &first, &second);
    sr_buf_free(&first);
    sr_buf_free(&second);
}

/* The API JSON of m, of its JSON record read back and of its arena copy: all the same. */
static void fuzz_check_formats_agree(const sr_message *m) {
    sr_buf api, json, api_json, api_copy;
    sr_buf_init(&api);
    sr_buf_init(&json);
    sr_buf_init(&api_json);
    sr_buf_init(&api_copy);
    sr_message_to_api_json(m, &api);
    sr_message_encode_json(m, &json);
    sr_message from_json;
    if (sr_message_decode(json.data, json.len, &from_json) < 0) fuzz_fail("JSON record does not decode", &json, &json);
    sr_message_to_api_json(&from_json, &api_json);
    if (api.len != api_json.len || memcmp(api.data, api_json.data, api.len) != 0)
        fuzz_fail("binary and JSON records differ", &api, &api_json);
    sr_arena arena;
    sr_arena_init(&arena, 512);
    sr_message copy;
    sr_message_copy_in(&copy, m, &arena);
    sr_message_to_api_json(&copy, &api_copy);
    if (api.len != api_copy.len || memcmp(api.data, api_copy.data, api.len) != 0)
        fuzz_fail("arena copy differs", &api, &api_copy);
    sr_arena_free(&arena);
    sr_message_free(&from_json);
    sr_buf_free(&api);
    sr_buf_free(&json);
    sr_buf_free(&api_json);
    sr_buf_free(&api_copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sr_message m;
    if (sr_record_decode_binary((const char *)data, size, &m) < 0) {
        sr_message_free(&m); /* "m is left empty" */
        return 0;
    }
    sr_message norm;
    fuzz_check_stable(&m, &norm);
    fuzz_check_formats_agree(&norm);
    sr_message_free(&norm);
    sr_message_free(&m);
    return 0;
}
