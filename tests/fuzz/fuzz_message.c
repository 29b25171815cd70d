/* Fuzz target for the stored record decoder: sr_message_decode on arbitrary
 * bytes (format byte + JSON, as older versions wrote, in src/model/message.c;
 * or format byte + binary, src/model/message_record.c, which fuzz_record.c
 * checks more closely). message.h promises that a corrupt record is an
 * error, never a crash, and sr_message_encode promises that "a record the
 * store writes must always read back": so every record that decodes is
 * encoded again (in the current format), and that encoding must decode
 * (abort otherwise) and encode to the same bytes (the first encoding is
 * already normalised). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "model/message.h"

/* libFuzzer's entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sr_message m;
    if (sr_message_decode((const char *)data, size, &m) < 0) {
        sr_message_free(&m); /* "m is left empty and safe to free" */
        return 0;
    }
    /* The API view reads every field too. */
    sr_buf api;
    sr_buf_init(&api);
    sr_message_to_api_json(&m, &api);
    sr_buf_free(&api);

    sr_buf first, second;
    sr_buf_init(&first);
    sr_buf_init(&second);
    sr_message_encode(&m, &first);
    sr_message again;
    if (sr_message_decode(first.data, first.len, &again) < 0) {
        fprintf(stderr, "re-encoded record does not decode (%zu bytes)\n", first.len);
        abort();
    }
    sr_message_encode(&again, &second);
    if (second.len != first.len || memcmp(first.data, second.data, first.len) != 0) {
        fprintf(stderr, "encoding not stable: %zu and %zu bytes\n", first.len, second.len);
        abort();
    }
    sr_message_free(&again);
    sr_message_free(&m);
    sr_buf_free(&first);
    sr_buf_free(&second);
    return 0;
}
