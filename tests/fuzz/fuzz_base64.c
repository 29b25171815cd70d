/* Fuzz target for sr_crypto_unbase64 in src/codec/crypto.c (webhook signatures).
 * Decodes arbitrary bytes into a buffer of exactly
 * sr_crypto_unbase64_max_len bytes (ASan catches a write past it); crypto.h
 * promises each byte string has exactly one accepted text, so an accepted
 * text must be what sr_crypto_base64 writes for the decoded bytes. The input
 * is also encoded and decoded back. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/crypto.h"

/* libFuzzer's entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t max = sr_crypto_unbase64_max_len(size);
    unsigned char *out = malloc(max ? max : 1);
    size_t out_len = 12345;
    int rc = sr_crypto_unbase64(out, &out_len, (const char *)data, size);
    if (rc == 0) {
        if (out_len > max) abort();
        char *text = malloc(sr_crypto_base64_len(out_len) + 1);
        sr_crypto_base64(text, out, out_len);
        if (strlen(text) != size || memcmp(text, data, size) != 0) abort();
        free(text);
    } else if (rc != -EINVAL || out_len != 0) {
        abort();
    }
    free(out);

    size_t text_len = sr_crypto_base64_len(size);
    char *text = malloc(text_len + 1);
    sr_crypto_base64(text, data, size);
    if (strlen(text) != text_len) abort();
    unsigned char *back = malloc(sr_crypto_unbase64_max_len(text_len) + 1);
    if (sr_crypto_unbase64(back, &out_len, text, text_len) != 0 || out_len != size || memcmp(back, data, size) != 0)
        abort();
    free(back);
    free(text);
    return 0;
}
