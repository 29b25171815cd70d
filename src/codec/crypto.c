/* crypto: SHA-1, SHA-256 (FIPS 180-4), MD5 (RFC 1321), HMAC (RFC 2104), hex,
 * base64 (RFC 4648) and a constant-time comparison. See crypto.h.
 *
 * The three hashes share the Merkle–Damgård frame: 64-byte blocks, a 0x80
 * byte, zeros, and the message length in bits in the last 8 bytes of the
 * final block. They differ in the compression function and in byte order
 * (MD5 is little-endian, the SHAs big-endian), so the buffering and padding
 * are written once (crypto_absorb, crypto_pad) and each hash supplies its
 * compression function. */
#include "codec/crypto.h"

#include <errno.h>
#include <string.h>

typedef void (*crypto_compress_fn)(uint32_t *state, const unsigned char *block);

/* ---- helpers ------------------------------------------------------------ */

static uint32_t crypto_rotl(uint32_t x, unsigned n) { return (x << n) | (x >> (32 - n)); }
static uint32_t crypto_rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static uint32_t crypto_load_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint32_t crypto_load_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void crypto_store_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void crypto_store_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* Clears memory that held key material or message state. The volatile
 * pointer keeps the compiler from dropping the stores as dead. */
static void crypto_wipe(void *p, size_t len) {
    volatile unsigned char *v = p;
    while (len--) *v++ = 0;
}

/* Feeds len bytes to a hash: completes the pending partial block first, then
 * compresses whole blocks straight from data, and keeps the tail. */
static void crypto_absorb(uint32_t *state, unsigned char *block, size_t *block_len, uint64_t *total_len,
                          crypto_compress_fn compress, const void *data, size_t len) {
    const unsigned char *p = data;
    *total_len += len;
    if (*block_len > 0) {
        size_t take = SR_CRYPTO_BLOCK_LEN - *block_len;
        if (take > len) take = len;
        if (take > 0) memcpy(block + *block_len, p, take);
        *block_len += take;
        p += take;
        len -= take;
        if (*block_len < SR_CRYPTO_BLOCK_LEN) return;
        compress(state, block);
        *block_len = 0;
    }
    for (; len >= SR_CRYPTO_BLOCK_LEN; p += SR_CRYPTO_BLOCK_LEN, len -= SR_CRYPTO_BLOCK_LEN)
        compress(state, p);
    if (len > 0) memcpy(block, p, len);
    *block_len = len;
}

/* Pads and compresses the last block(s): 0x80, zeros up to 56 mod 64, then
 * the length in bits as 64 bits in the hash's byte order (MD5 little-endian,
 * the SHAs big-endian). The bit length wraps modulo 2^64, as RFC 1321 says;
 * FIPS 180-4's limit of 2^64 bits is far beyond anything we hash. */
static void crypto_pad(uint32_t *state, unsigned char *block, size_t block_len, uint64_t total_len,
                       crypto_compress_fn compress, int big_endian) {
    uint64_t bits = total_len << 3;
    block[block_len++] = 0x80;
    if (block_len > SR_CRYPTO_BLOCK_LEN - 8) {
        memset(block + block_len, 0, SR_CRYPTO_BLOCK_LEN - block_len);
        compress(state, block);
        block_len = 0;
    }
    memset(block + block_len, 0, SR_CRYPTO_BLOCK_LEN - 8 - block_len);
    for (int i = 0; i < 8; i++) {
        int shift = big_endian ? 8 * (7 - i) : 8 * i;
        block[SR_CRYPTO_BLOCK_LEN - 8 + i] = (unsigned char)(bits >> shift);
    }
    compress(state, block);
}

/* ---- MD5 (RFC 1321) ----------------------------------------------------- */

/* T[i] = floor(2^32 * |sin(i + 1)|), RFC 1321 §3.4. */
static const uint32_t crypto_md5_t[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

/* Left-rotation amounts, four per round. */
static const unsigned char crypto_md5_shift[4][4] = {
    {7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21}};

static void crypto_md5_compress(uint32_t *state, const unsigned char *block) {
    uint32_t x[16];
    for (int i = 0; i < 16; i++) x[i] = crypto_load_le32(block + 4 * i);
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int k;
        if (i < 16) { /* round 1: F(b,c,d) = bc v not(b)d, words in order */
            f = (b & c) | (~b & d);
            k = i;
        } else if (i < 32) { /* round 2: G(b,c,d) = bd v c not(d) */
            f = (b & d) | (c & ~d);
            k = (5 * i + 1) & 15;
        } else if (i < 48) { /* round 3: H(b,c,d) = b xor c xor d */
            f = b ^ c ^ d;
            k = (3 * i + 5) & 15;
        } else { /* round 4: I(b,c,d) = c xor (b v not(d)) */
            f = c ^ (b | ~d);
            k = (7 * i) & 15;
        }
        uint32_t rotated = crypto_rotl(a + f + x[k] + crypto_md5_t[i], crypto_md5_shift[i >> 4][i & 3]);
        a = d;
        d = c;
        c = b;
        b = b + rotated;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    crypto_wipe(x, sizeof x);
}

void sr_crypto_md5_init(sr_crypto_md5_ctx *ctx) {
    static const uint32_t initial[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    memcpy(ctx->state, initial, sizeof initial);
    ctx->total_len = 0;
    ctx->block_len = 0;
}

void sr_crypto_md5_update(sr_crypto_md5_ctx *ctx, const void *data, size_t len) {
    crypto_absorb(ctx->state, ctx->block, &ctx->block_len, &ctx->total_len, crypto_md5_compress, data, len);
}

void sr_crypto_md5_final(sr_crypto_md5_ctx *ctx, unsigned char out[SR_CRYPTO_MD5_LEN]) {
    crypto_pad(ctx->state, ctx->block, ctx->block_len, ctx->total_len, crypto_md5_compress, 0);
    for (int i = 0; i < 4; i++) crypto_store_le32(out + 4 * i, ctx->state[i]);
    crypto_wipe(ctx, sizeof *ctx);
}

void sr_crypto_md5(const void *data, size_t len, unsigned char out[SR_CRYPTO_MD5_LEN]) {
    sr_crypto_md5_ctx ctx;
    sr_crypto_md5_init(&ctx);
    sr_crypto_md5_update(&ctx, data, len);
    sr_crypto_md5_final(&ctx, out);
}

/* ---- SHA-1 (FIPS 180-4 §6.1) --------------------------------------------- */

static void crypto_sha1_compress(uint32_t *state, const unsigned char *block) {
    uint32_t w[80];
    for (int t = 0; t < 16; t++) w[t] = crypto_load_be32(block + 4 * t);
    for (int t = 16; t < 80; t++) w[t] = crypto_rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3], e = state[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) { /* Ch */
            f = (b & c) ^ (~b & d);
            k = 0x5a827999;
        } else if (t < 40) { /* Parity */
            f = b ^ c ^ d;
            k = 0x6ed9eba1;
        } else if (t < 60) { /* Maj */
            f = (b & c) ^ (b & d) ^ (c & d);
            k = 0x8f1bbcdc;
        } else { /* Parity */
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        uint32_t temp = crypto_rotl(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = crypto_rotl(b, 30);
        b = a;
        a = temp;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    crypto_wipe(w, sizeof w);
}

void sr_crypto_sha1_init(sr_crypto_sha1_ctx *ctx) {
    static const uint32_t initial[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    memcpy(ctx->state, initial, sizeof initial);
    ctx->total_len = 0;
    ctx->block_len = 0;
}

void sr_crypto_sha1_update(sr_crypto_sha1_ctx *ctx, const void *data, size_t len) {
    crypto_absorb(ctx->state, ctx->block, &ctx->block_len, &ctx->total_len, crypto_sha1_compress, data, len);
}

void sr_crypto_sha1_final(sr_crypto_sha1_ctx *ctx, unsigned char out[SR_CRYPTO_SHA1_LEN]) {
    crypto_pad(ctx->state, ctx->block, ctx->block_len, ctx->total_len, crypto_sha1_compress, 1);
    for (int i = 0; i < 5; i++) crypto_store_be32(out + 4 * i, ctx->state[i]);
    crypto_wipe(ctx, sizeof *ctx);
}

void sr_crypto_sha1(const void *data, size_t len, unsigned char out[SR_CRYPTO_SHA1_LEN]) {
    sr_crypto_sha1_ctx ctx;
    sr_crypto_sha1_init(&ctx);
    sr_crypto_sha1_update(&ctx, data, len);
    sr_crypto_sha1_final(&ctx, out);
}

/* ---- SHA-256 (FIPS 180-4 §6.2) ------------------------------------------- */

/* First 32 bits of the fractional parts of the cube roots of the first 64
 * primes (FIPS 180-4 §4.2.2). */
static const uint32_t crypto_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static void crypto_sha256_compress(uint32_t *state, const unsigned char *block) {
    uint32_t w[64];
    for (int t = 0; t < 16; t++) w[t] = crypto_load_be32(block + 4 * t);
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = crypto_rotr(w[t - 15], 7) ^ crypto_rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = crypto_rotr(w[t - 2], 17) ^ crypto_rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = s1 + w[t - 7] + s0 + w[t - 16];
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 64; t++) {
        uint32_t big_s1 = crypto_rotr(e, 6) ^ crypto_rotr(e, 11) ^ crypto_rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + big_s1 + ch + crypto_sha256_k[t] + w[t];
        uint32_t big_s0 = crypto_rotr(a, 2) ^ crypto_rotr(a, 13) ^ crypto_rotr(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = big_s0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
    crypto_wipe(w, sizeof w);
}

void sr_crypto_sha256_init(sr_crypto_sha256_ctx *ctx) {
    /* First 32 bits of the fractional parts of the square roots of the
     * first 8 primes (FIPS 180-4 §5.3.3). */
    static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(ctx->state, initial, sizeof initial);
    ctx->total_len = 0;
    ctx->block_len = 0;
}

void sr_crypto_sha256_update(sr_crypto_sha256_ctx *ctx, const void *data, size_t len) {
    crypto_absorb(ctx->state, ctx->block, &ctx->block_len, &ctx->total_len, crypto_sha256_compress, data,
                  len);
}

void sr_crypto_sha256_final(sr_crypto_sha256_ctx *ctx, unsigned char out[SR_CRYPTO_SHA256_LEN]) {
    crypto_pad(ctx->state, ctx->block, ctx->block_len, ctx->total_len, crypto_sha256_compress, 1);
    for (int i = 0; i < 8; i++) crypto_store_be32(out + 4 * i, ctx->state[i]);
    crypto_wipe(ctx, sizeof *ctx);
}

void sr_crypto_sha256(const void *data, size_t len, unsigned char out[SR_CRYPTO_SHA256_LEN]) {
    sr_crypto_sha256_ctx ctx;
    sr_crypto_sha256_init(&ctx);
    sr_crypto_sha256_update(&ctx, data, len);
    sr_crypto_sha256_final(&ctx, out);
}

/* ---- HMAC (RFC 2104) ----------------------------------------------------- */

/* HMAC(K, m) = H((K0 ^ opad) || H((K0 ^ ipad) || m)), K0 the key padded with
 * zeros to the block length (B = 64 for all three hashes), or the hash of the
 * key when it is longer than a block. init sets k0 (already hashed if
 * needed); this turns it into the two padded blocks that prime the inner and
 * outer hashes. */
static void crypto_hmac_pads(const unsigned char k0[SR_CRYPTO_BLOCK_LEN],
                             unsigned char inner_pad[SR_CRYPTO_BLOCK_LEN],
                             unsigned char outer_pad[SR_CRYPTO_BLOCK_LEN]) {
    for (int i = 0; i < SR_CRYPTO_BLOCK_LEN; i++) {
        inner_pad[i] = k0[i] ^ 0x36;
        outer_pad[i] = k0[i] ^ 0x5c;
    }
}

/* The three HMACs differ only in their hash: one definition, expanded per
 * hash (H = md5, sha1, sha256; LEN its digest length). */
#define CRYPTO_DEFINE_HMAC(H, LEN)                                                                       \
    void sr_crypto_hmac_##H##_init(sr_crypto_hmac_##H##_ctx *ctx, const void *key, size_t key_len) {       \
        unsigned char k0[SR_CRYPTO_BLOCK_LEN] = {0}, inner_pad[SR_CRYPTO_BLOCK_LEN],                      \
                      outer_pad[SR_CRYPTO_BLOCK_LEN];                                                     \
        if (key_len > SR_CRYPTO_BLOCK_LEN) sr_crypto_##H(key, key_len, k0);                               \
        else if (key_len > 0) memcpy(k0, key, key_len);                                                   \
        crypto_hmac_pads(k0, inner_pad, outer_pad);                                                       \
        sr_crypto_##H##_init(&ctx->inner);                                                                \
        sr_crypto_##H##_update(&ctx->inner, inner_pad, sizeof inner_pad);                                 \
        sr_crypto_##H##_init(&ctx->outer);                                                                \
        sr_crypto_##H##_update(&ctx->outer, outer_pad, sizeof outer_pad);                                 \
        crypto_wipe(k0, sizeof k0);                                                                       \
        crypto_wipe(inner_pad, sizeof inner_pad);                                                         \
        crypto_wipe(outer_pad, sizeof outer_pad);                                                         \
    }                                                                                                     \
    void sr_crypto_hmac_##H##_update(sr_crypto_hmac_##H##_ctx *ctx, const void *data, size_t len) {       \
        sr_crypto_##H##_update(&ctx->inner, data, len);                                                   \
    }                                                                                                     \
    void sr_crypto_hmac_##H##_final(sr_crypto_hmac_##H##_ctx *ctx, unsigned char out[LEN]) {              \
        unsigned char inner_digest[LEN];                                                                  \
        sr_crypto_##H##_final(&ctx->inner, inner_digest);                                                 \
        sr_crypto_##H##_update(&ctx->outer, inner_digest, sizeof inner_digest);                           \
        sr_crypto_##H##_final(&ctx->outer, out);                                                          \
        crypto_wipe(inner_digest, sizeof inner_digest);                                                   \
    }                                                                                                     \
    void sr_crypto_hmac_##H(const void *key, size_t key_len, const void *data, size_t len,                \
                            unsigned char out[LEN]) {                                                     \
        sr_crypto_hmac_##H##_ctx ctx;                                                                     \
        sr_crypto_hmac_##H##_init(&ctx, key, key_len);                                                    \
        sr_crypto_hmac_##H##_update(&ctx, data, len);                                                     \
        sr_crypto_hmac_##H##_final(&ctx, out);                                                            \
    }

CRYPTO_DEFINE_HMAC(md5, SR_CRYPTO_MD5_LEN)
CRYPTO_DEFINE_HMAC(sha1, SR_CRYPTO_SHA1_LEN)
CRYPTO_DEFINE_HMAC(sha256, SR_CRYPTO_SHA256_LEN)

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

static const char crypto_base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t sr_crypto_base64_len(size_t len) { return (len / 3 + (len % 3 != 0)) * 4; }

void sr_crypto_base64(char *out, const void *data, size_t len) {
    const unsigned char *p = data;
    size_t o = 0, i = 0;
    for (; len - i >= 3; i += 3) {
        uint32_t group = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2];
        out[o++] = crypto_base64_alphabet[group >> 18];
        out[o++] = crypto_base64_alphabet[(group >> 12) & 63];
        out[o++] = crypto_base64_alphabet[(group >> 6) & 63];
        out[o++] = crypto_base64_alphabet[group & 63];
    }
    /* The final quantum: one byte gives two characters and "==", two bytes
     * give three characters and "=" (RFC 4648 §4, cases 2 and 3). */
    if (len - i == 1) {
        uint32_t group = (uint32_t)p[i] << 16;
        out[o++] = crypto_base64_alphabet[group >> 18];
        out[o++] = crypto_base64_alphabet[(group >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        uint32_t group = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = crypto_base64_alphabet[group >> 18];
        out[o++] = crypto_base64_alphabet[(group >> 12) & 63];
        out[o++] = crypto_base64_alphabet[(group >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
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

int sr_crypto_unbase64(unsigned char *out, size_t *out_len, const char *text, size_t text_len) {
    const unsigned char *t = (const unsigned char *)text;
    size_t o = 0;
    *out_len = 0;
    if (text_len % 4 != 0) return -EINVAL;
    for (size_t i = 0; i < text_len; i += 4) {
        int last = i + 4 == text_len;
        /* '=' is only allowed as the last one or two characters of the text. */
        int padding = last && t[i + 3] == '=' ? (t[i + 2] == '=' ? 2 : 1) : 0;
        int v[4] = {0, 0, 0, 0};
        for (int j = 0; j < 4 - padding; j++) {
            v[j] = crypto_base64_value(t[i + j]);
            if (v[j] < 0) return -EINVAL;
        }
        uint32_t group = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* The bits below the last encoded byte must be zero (RFC 4648 §3.5),
         * otherwise several texts would decode to the same bytes. */
        if (padding == 2 && (group & 0xffff) != 0) return -EINVAL;
        if (padding == 1 && (group & 0xff) != 0) return -EINVAL;
        out[o++] = (unsigned char)(group >> 16);
        if (padding < 2) out[o++] = (unsigned char)(group >> 8);
        if (padding < 1) out[o++] = (unsigned char)group;
    }
    *out_len = o;
    return 0;
}

/* ---- comparison ------------------------------------------------------------ */

int sr_crypto_equal(const void *a, size_t alen, const void *b, size_t blen) {
    const unsigned char *pa = a, *pb = b;
    size_t n = alen < blen ? alen : blen;
    /* Accumulate every difference instead of stopping at the first one; the
     * volatile keeps the compiler from turning the loop into an early exit. */
    volatile unsigned char diff = 0;
    for (size_t i = 0; i < n; i++) diff |= pa[i] ^ pb[i];
    /* (diff - 1) >> 8 is all ones exactly when diff == 0: no branch on it. */
    unsigned same_bytes = (((unsigned)diff - 1) >> 8) & 1;
    return (int)(same_bytes & (alen == blen));
}
