/* crypto: the hashing primitives provider adapters need to verify webhook
 * signatures (Twilio X-Twilio-Signature, Vonage `sig`, generic X-Signature),
 * as a thin wrapper over OpenSSL's libcrypto: MD5, SHA-1, SHA-256 and
 * SHA-512 digests (EVP), HMAC over each of them (EVP_MAC), base64 (RFC 4648,
 * standard alphabet, padded; OpenSSL encodes and decodes, the strictness
 * rules signatures deserve are ours), lowercase hex, a constant-time
 * comparison (CRYPTO_memcmp) and random bytes (RAND_bytes).
 * tests/unit/test_crypto.c checks the official vectors through this wrapper.
 *
 * Nothing here returns an error: the algorithms are fetched from OpenSSL's
 * default provider once, and what can still fail is an allocation, which
 * aborts as every allocation failure in the daemon does. MD5 and SHA-1 are
 * here only because providers still sign with them; do not use them for
 * anything new. */
#ifndef SR_CRYPTO_H
#define SR_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

/* The digests; each also names the HMAC over it. */
typedef enum sr_crypto_alg {
    SR_CRYPTO_MD5,
    SR_CRYPTO_SHA1,
    SR_CRYPTO_SHA256,
    SR_CRYPTO_SHA512,
} sr_crypto_alg;

#define SR_CRYPTO_MD5_LEN 16
#define SR_CRYPTO_SHA1_LEN 20
#define SR_CRYPTO_SHA256_LEN 32
#define SR_CRYPTO_SHA512_LEN 64
/* The longest digest: room enough for any alg's output. */
#define SR_CRYPTO_MAX_LEN SR_CRYPTO_SHA512_LEN

/* The digest (and HMAC) length of alg in bytes. */
size_t sr_crypto_len(sr_crypto_alg alg);

/* ---- one-shot -------------------------------------------------------------- */

/* Writes the alg digest of len bytes at data to out (sr_crypto_len(alg)
 * bytes). data may be NULL when len is 0. */
void sr_crypto_digest(sr_crypto_alg alg, const void *data, size_t len, unsigned char *out);

/* Writes the HMAC (RFC 2104) over alg of len bytes at data under key (any
 * length) to out (sr_crypto_len(alg) bytes). */
void sr_crypto_hmac(sr_crypto_alg alg, const void *key, size_t key_len, const void *data, size_t len,
                    unsigned char *out);

/* ---- streaming: init, update any number of times, final ---------------------- */

/* A running digest or HMAC. It holds OpenSSL state: every init must be
 * followed by final (which frees it) or sr_crypto_abandon. */
typedef struct sr_crypto_ctx {
    void *md;  /* EVP_MD_CTX, for a digest */
    void *mac; /* EVP_MAC_CTX, for an HMAC */
    sr_crypto_alg alg;
} sr_crypto_ctx;

void sr_crypto_init(sr_crypto_ctx *ctx, sr_crypto_alg alg);
/* The key is not kept past the call (OpenSSL keeps only the padded-key hash
 * states, and clears them when the context is freed). */
void sr_crypto_hmac_init(sr_crypto_ctx *ctx, sr_crypto_alg alg, const void *key, size_t key_len);
/* data may be NULL when len is 0. */
void sr_crypto_update(sr_crypto_ctx *ctx, const void *data, size_t len);
/* Writes the digest or MAC (sr_crypto_len(alg) bytes) and frees the state. */
void sr_crypto_final(sr_crypto_ctx *ctx, unsigned char *out);
/* Frees the state without an output. */
void sr_crypto_abandon(sr_crypto_ctx *ctx);

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

/* ---- comparison and randomness --------------------------------------------- */

/* 1 if the two byte strings are equal, else 0. The time taken depends only
 * on the two lengths, never on the bytes, so comparing a received signature
 * with the expected one leaks nothing about where they differ. */
int sr_crypto_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Fills out with len bytes from OpenSSL's CSPRNG (seeded by the kernel).
 * Returns 0, or -EIO when it has no entropy (out is then unspecified). */
int sr_crypto_random(void *out, size_t len);

#endif
