/* crypto: digests, HMAC, base64, constant-time comparison and random bytes
 * over OpenSSL's libcrypto. See crypto.h.
 *
 * OpenSSL 3 looks algorithms up by name in its provider store; an implicit
 * lookup on every call (EVP_sha256() handed to EVP_DigestInit, or the HMAC()
 * one-shot, which fetches "HMAC" and its digest each time) costs more than
 * hashing a webhook's few hundred bytes. So the digests and one HMAC context
 * per digest are fetched once (crypto_load) and every HMAC starts from a
 * copy of its prepared context. */
#include "codec/crypto.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#define CRYPTO_ALGS (SR_CRYPTO_SHA512 + 1)

static const struct {
    const char *name; /* OpenSSL's name of the digest */
    size_t len;
} crypto_algs[CRYPTO_ALGS] = {
    [SR_CRYPTO_MD5] = {"MD5", SR_CRYPTO_MD5_LEN},
    [SR_CRYPTO_SHA1] = {"SHA1", SR_CRYPTO_SHA1_LEN},
    [SR_CRYPTO_SHA256] = {"SHA256", SR_CRYPTO_SHA256_LEN},
    [SR_CRYPTO_SHA512] = {"SHA512", SR_CRYPTO_SHA512_LEN},
};

static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static EVP_MD *crypto_md[CRYPTO_ALGS];
static EVP_MAC_CTX *crypto_hmac_template[CRYPTO_ALGS];

/* OpenSSL failed where only a lost allocation (or a libcrypto without its
 * default provider) can make it fail: like every allocation failure in the
 * daemon, that ends the process, loudly. */
static void crypto_fail(const char *what) {
    fprintf(stderr, "smsrules: libcrypto: %s failed\n", what);
    abort();
}

static void crypto_load(void) {
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!hmac) crypto_fail("fetching HMAC");
    for (int a = 0; a < CRYPTO_ALGS; a++) {
        crypto_md[a] = EVP_MD_fetch(NULL, crypto_algs[a].name, NULL);
        if (!crypto_md[a]) crypto_fail(crypto_algs[a].name);
        crypto_hmac_template[a] = EVP_MAC_CTX_new(hmac);
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)crypto_algs[a].name, 0),
            OSSL_PARAM_construct_end(),
        };
        if (!crypto_hmac_template[a] || !EVP_MAC_CTX_set_params(crypto_hmac_template[a], params))
            crypto_fail("preparing HMAC");
    }
    EVP_MAC_free(hmac); /* each context holds its own reference */
}

static const EVP_MD *crypto_digest_md(sr_crypto_alg alg) {
    if (pthread_once(&crypto_once, crypto_load) != 0) crypto_fail("loading the algorithms");
    return crypto_md[alg];
}

size_t sr_crypto_len(sr_crypto_alg alg) { return crypto_algs[alg].len; }

/* ---- digests and HMAC -------------------------------------------------------- */

void sr_crypto_init(sr_crypto_ctx *ctx, sr_crypto_alg alg) {
    const EVP_MD *md = crypto_digest_md(alg);
    ctx->alg = alg;
    ctx->mac = NULL;
    ctx->md = EVP_MD_CTX_new();
    if (!ctx->md || !EVP_DigestInit_ex2(ctx->md, md, NULL)) crypto_fail("EVP_DigestInit_ex2");
}

void sr_crypto_hmac_init(sr_crypto_ctx *ctx, sr_crypto_alg alg, const void *key, size_t key_len) {
    (void)crypto_digest_md(alg);
    ctx->alg = alg;
    ctx->md = NULL;
    ctx->mac = EVP_MAC_CTX_dup(crypto_hmac_template[alg]);
    /* OpenSSL refuses a NULL key even with length 0; an empty key is still a key (RFC 2104 pads it). */
    static const unsigned char no_key[1];
    if (!ctx->mac || !EVP_MAC_init(ctx->mac, key_len ? key : no_key, key_len, NULL)) crypto_fail("EVP_MAC_init");
}

void sr_crypto_update(sr_crypto_ctx *ctx, const void *data, size_t len) {
    if (len == 0) return;
    int ok = ctx->md ? EVP_DigestUpdate(ctx->md, data, len) : EVP_MAC_update(ctx->mac, data, len);
    if (!ok) crypto_fail("update");
}

void sr_crypto_final(sr_crypto_ctx *ctx, unsigned char *out) {
    size_t want = crypto_algs[ctx->alg].len, got = 0;
    if (ctx->md) {
        unsigned int n = 0;
        if (!EVP_DigestFinal_ex(ctx->md, out, &n)) crypto_fail("EVP_DigestFinal_ex");
        got = n;
    } else if (!EVP_MAC_final(ctx->mac, out, &got, want)) {
        crypto_fail("EVP_MAC_final");
    }
    if (got != want) crypto_fail("final (digest length)");
    sr_crypto_abandon(ctx);
}

void sr_crypto_abandon(sr_crypto_ctx *ctx) {
    EVP_MD_CTX_free(ctx->md);
    EVP_MAC_CTX_free(ctx->mac);
    ctx->md = ctx->mac = NULL;
}

void sr_crypto_digest(sr_crypto_alg alg, const void *data, size_t len, unsigned char *out) {
    static const unsigned char nothing[1];
    if (!EVP_Digest(len ? data : nothing, len, out, NULL, crypto_digest_md(alg), NULL)) crypto_fail("EVP_Digest");
}

void sr_crypto_hmac(sr_crypto_alg alg, const void *key, size_t key_len, const void *data, size_t len,
                    unsigned char *out) {
    sr_crypto_ctx ctx;
    sr_crypto_hmac_init(&ctx, alg, key, key_len);
    sr_crypto_update(&ctx, data, len);
    sr_crypto_final(&ctx, out);
}

/* ---- hex ------------------------------------------------------------------ */

void sr_crypto_hex(char *out, const void *data, size_t len) {
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * len] = '\0';
}

/* ---- base64 (RFC 4648 §4) ----------------------------------------------- */

/* EVP_EncodeBlock and EVP_DecodeBlock take an int length: longer input goes
 * in pieces of this many bytes (a multiple of 3, and of 4 for text). */
#define CRYPTO_BASE64_PIECE ((size_t)3 * 4 * (1 << 26))

size_t sr_crypto_base64_len(size_t len) { return (len / 3 + (len % 3 != 0)) * 4; }

void sr_crypto_base64(char *out, const void *data, size_t len) {
    const unsigned char *p = data;
    out[0] = '\0';
    for (size_t i = 0; i < len; i += CRYPTO_BASE64_PIECE) {
        size_t n = len - i < CRYPTO_BASE64_PIECE ? len - i : CRYPTO_BASE64_PIECE;
        /* Writes 4 * ceil(n / 3) characters and a NUL, padded like ours. */
        EVP_EncodeBlock((unsigned char *)out, p + i, (int)n);
        out += n / 3 * 4;
    }
}

size_t sr_crypto_unbase64_max_len(size_t text_len) { return text_len / 4 * 3; }

/* The 6-bit value of a base64 character, or -1 (also for '='). */
static int crypto_base64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Whether text is base64 by the rules of crypto.h; sets *padding (0-2).
 * EVP_DecodeBlock alone is lenient: it skips leading and trailing
 * whitespace, takes '=' anywhere and ignores the bits under the padding. */
static int crypto_base64_strict(const char *text, size_t text_len, size_t *padding) {
    if (text_len % 4 != 0) return 0;
    size_t pad = 0;
    while (pad < 2 && pad < text_len && text[text_len - 1 - pad] == '=') pad++;
    size_t data_len = text_len - pad;
    int last = 0;
    for (size_t i = 0; i < data_len; i++)
        if ((last = crypto_base64_value((unsigned char)text[i])) < 0) return 0;
    /* The bits below the last encoded byte must be zero (RFC 4648 §3.5),
     * otherwise several texts would decode to the same bytes. */
    if (pad && (last & (pad == 2 ? 0x0f : 0x03))) return 0;
    *padding = pad;
    return 1;
}

int sr_crypto_unbase64(unsigned char *out, size_t *out_len, const char *text, size_t text_len) {
    size_t padding = 0, o = 0;
    *out_len = 0;
    if (!crypto_base64_strict(text, text_len, &padding)) return -EINVAL;
    for (size_t i = 0; i < text_len; i += CRYPTO_BASE64_PIECE) {
        size_t n = text_len - i < CRYPTO_BASE64_PIECE ? text_len - i : CRYPTO_BASE64_PIECE;
        /* 3 bytes per 4 characters, the padding's decoded as zeros. */
        int r = EVP_DecodeBlock(out + o, (const unsigned char *)text + i, (int)n);
        if (r < 0 || (size_t)r != n / 4 * 3) return -EINVAL;
        o += (size_t)r;
    }
    *out_len = o - padding;
    return 0;
}

/* ---- comparison and randomness --------------------------------------------- */

int sr_crypto_equal(const void *a, size_t alen, const void *b, size_t blen) {
    size_t n = alen < blen ? alen : blen;
    /* CRYPTO_memcmp reads every byte whatever it finds; the length check
     * after it is no branch on the content. */
    int same_bytes = n == 0 || CRYPTO_memcmp(a, b, n) == 0;
    return same_bytes & (alen == blen);
}

int sr_crypto_random(void *out, size_t len) {
    unsigned char *p = out;
    while (len) {
        int n = len > INT_MAX ? INT_MAX : (int)len;
        if (RAND_bytes(p, n) != 1) return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
