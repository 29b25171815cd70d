/* crypto: the hashing primitives provider adapters need to verify webhook
 * signatures (Twilio X-Twilio-Signature, Vonage `sig`, generic X-Signature).
 * Owns SHA-1 and SHA-256 (FIPS 180-4), MD5 (RFC 1321), HMAC over each of them
 * (RFC 2104), lowercase hex, base64 (RFC 4648, standard alphabet, padded)
 * and a constant-time comparison. Written from the standards so the project
 * links no crypto library; tests/unit/test_crypto.c checks the official
 * vectors.
 *
 * Nothing here allocates: every function writes into memory the caller
 * provides, with sizes given by the constants and *_len helpers below. SHA-1
 * and MD5 are here only because providers still sign with them; do not use
 * them for anything new. */
#ifndef SR_CRYPTO_H
#define SR_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define SR_CRYPTO_MD5_LEN 16
#define SR_CRYPTO_SHA1_LEN 20
#define SR_CRYPTO_SHA256_LEN 32
/* All three hashes work on 64-byte blocks (HMAC's B in RFC 2104). */
#define SR_CRYPTO_BLOCK_LEN 64

/* ---- hashes: streaming (init, update any number of times, final) -------- */

/* The contexts are plain values: copy one to fork a running hash. After
 * final the context holds no trace of the input and must be re-initialised
 * before reuse. update accepts data == NULL when len == 0. */
typedef struct sr_crypto_md5_ctx {
    uint32_t state[4];
    uint64_t total_len; /* bytes hashed so far */
    unsigned char block[SR_CRYPTO_BLOCK_LEN];
    size_t block_len; /* bytes waiting in block */
} sr_crypto_md5_ctx;

typedef struct sr_crypto_sha1_ctx {
    uint32_t state[5];
    uint64_t total_len;
    unsigned char block[SR_CRYPTO_BLOCK_LEN];
    size_t block_len;
} sr_crypto_sha1_ctx;

typedef struct sr_crypto_sha256_ctx {
    uint32_t state[8];
    uint64_t total_len;
    unsigned char block[SR_CRYPTO_BLOCK_LEN];
    size_t block_len;
} sr_crypto_sha256_ctx;

void sr_crypto_md5_init(sr_crypto_md5_ctx *ctx);
void sr_crypto_md5_update(sr_crypto_md5_ctx *ctx, const void *data, size_t len);
void sr_crypto_md5_final(sr_crypto_md5_ctx *ctx, unsigned char out[SR_CRYPTO_MD5_LEN]);

void sr_crypto_sha1_init(sr_crypto_sha1_ctx *ctx);
void sr_crypto_sha1_update(sr_crypto_sha1_ctx *ctx, const void *data, size_t len);
void sr_crypto_sha1_final(sr_crypto_sha1_ctx *ctx, unsigned char out[SR_CRYPTO_SHA1_LEN]);

void sr_crypto_sha256_init(sr_crypto_sha256_ctx *ctx);
void sr_crypto_sha256_update(sr_crypto_sha256_ctx *ctx, const void *data, size_t len);
void sr_crypto_sha256_final(sr_crypto_sha256_ctx *ctx, unsigned char out[SR_CRYPTO_SHA256_LEN]);

/* One-shot: the digest of len bytes at data, written to out. */
void sr_crypto_md5(const void *data, size_t len, unsigned char out[SR_CRYPTO_MD5_LEN]);
void sr_crypto_sha1(const void *data, size_t len, unsigned char out[SR_CRYPTO_SHA1_LEN]);
void sr_crypto_sha256(const void *data, size_t len, unsigned char out[SR_CRYPTO_SHA256_LEN]);

/* ---- HMAC (RFC 2104) ----------------------------------------------------- */

/* Streaming HMAC: init with the key (any length; keys longer than a block are
 * hashed first, as the RFC says), update with the message, final writes the
 * full-length MAC. The key is not kept: the context holds only the two hash
 * states primed with the padded key, and final wipes them. */
typedef struct sr_crypto_hmac_md5_ctx {
    sr_crypto_md5_ctx inner, outer;
} sr_crypto_hmac_md5_ctx;

typedef struct sr_crypto_hmac_sha1_ctx {
    sr_crypto_sha1_ctx inner, outer;
} sr_crypto_hmac_sha1_ctx;

typedef struct sr_crypto_hmac_sha256_ctx {
    sr_crypto_sha256_ctx inner, outer;
} sr_crypto_hmac_sha256_ctx;

void sr_crypto_hmac_md5_init(sr_crypto_hmac_md5_ctx *ctx, const void *key, size_t key_len);
void sr_crypto_hmac_md5_update(sr_crypto_hmac_md5_ctx *ctx, const void *data, size_t len);
void sr_crypto_hmac_md5_final(sr_crypto_hmac_md5_ctx *ctx, unsigned char out[SR_CRYPTO_MD5_LEN]);

void sr_crypto_hmac_sha1_init(sr_crypto_hmac_sha1_ctx *ctx, const void *key, size_t key_len);
void sr_crypto_hmac_sha1_update(sr_crypto_hmac_sha1_ctx *ctx, const void *data, size_t len);
void sr_crypto_hmac_sha1_final(sr_crypto_hmac_sha1_ctx *ctx, unsigned char out[SR_CRYPTO_SHA1_LEN]);

void sr_crypto_hmac_sha256_init(sr_crypto_hmac_sha256_ctx *ctx, const void *key, size_t key_len);
void sr_crypto_hmac_sha256_update(sr_crypto_hmac_sha256_ctx *ctx, const void *data, size_t len);
void sr_crypto_hmac_sha256_final(sr_crypto_hmac_sha256_ctx *ctx,
                                 unsigned char out[SR_CRYPTO_SHA256_LEN]);

/* One-shot HMAC of len bytes at data under key. */
void sr_crypto_hmac_md5(const void *key, size_t key_len, const void *data, size_t len,
                        unsigned char out[SR_CRYPTO_MD5_LEN]);
void sr_crypto_hmac_sha1(const void *key, size_t key_len, const void *data, size_t len,
                         unsigned char out[SR_CRYPTO_SHA1_LEN]);
void sr_crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                           unsigned char out[SR_CRYPTO_SHA256_LEN]);

/* ---- encodings ----------------------------------------------------------- */

/* Writes the lowercase hex of len bytes to out, which must hold 2 * len + 1
 * chars; out is NUL-terminated. */
void sr_crypto_hex(char *out, const void *data, size_t len);

/* Length of the base64 text of len bytes, padding included, NUL excluded:
 * 4 * ceil(len / 3). len must be at most SR_CRYPTO_BASE64_MAX_INPUT. */
#define SR_CRYPTO_BASE64_MAX_INPUT (SIZE_MAX / 4 * 3 - 3)
size_t sr_crypto_base64_len(size_t len);

/* Writes the base64 of len bytes to out, which must hold
 * sr_crypto_base64_len(len) + 1 chars; out is NUL-terminated. */
void sr_crypto_base64(char *out, const void *data, size_t len);

/* Upper bound of the bytes text_len chars of base64 decode to. */
size_t sr_crypto_unbase64_max_len(size_t text_len);

/* Decodes text_len chars of base64 into out (room for
 * sr_crypto_unbase64_max_len(text_len) bytes) and sets *out_len.
 * Strict, as signatures deserve: the length must be a multiple of 4, only
 * the 64 alphabet characters are accepted (no whitespace, no URL-safe
 * alphabet), '=' may only end the text (at most two), and the bits the
 * padding discards must be zero (RFC 4648 §3.5), so each byte string has
 * exactly one accepted text. Returns 0, or -EINVAL (out's content is then
 * unspecified and *out_len is 0). */
int sr_crypto_unbase64(unsigned char *out, size_t *out_len, const char *text, size_t text_len);

/* ---- comparison ---------------------------------------------------------- */

/* 1 if the two byte strings are equal, else 0. The time taken depends only
 * on the two lengths, never on the bytes, so comparing a received signature
 * with the expected one leaks nothing about where they differ. */
int sr_crypto_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
