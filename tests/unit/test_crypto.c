/* Unit tests for src/codec/crypto.c (our wrapper over OpenSSL's libcrypto)
 * and src/rules/bindings/lua_crypto.c: the official vectors of every
 * primitive (FIPS 180-4 / NIST examples for SHA-1, SHA-256 and SHA-512, the
 * RFC 1321 suite for MD5, RFC 2202 for HMAC-MD5 and HMAC-SHA1, RFC 4231 for
 * HMAC-SHA256 and HMAC-SHA512, RFC 4648 §10 for base64), streaming in odd
 * chunks against one-shot, our strict base64 rules on top of OpenSSL's
 * lenient decoder, Twilio's documented webhook signature, and the sms.crypto
 * bindings as rules see them. */
#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>

#include "codec/crypto.h"
#include "rules/bindings/bindings.h"
#include "rules/rules.h"
#include "unit.h"

/* ---- helpers ----------------------------------------------------------- */

/* The algorithms under their short names in the vectors below. */
#define ALG_MD5 SR_CRYPTO_MD5
#define ALG_SHA1 SR_CRYPTO_SHA1
#define ALG_SHA256 SR_CRYPTO_SHA256
#define ALG_SHA512 SR_CRYPTO_SHA512

/* Checks that the first strlen(expected_hex) / 2 bytes of digest have that
 * hex (a prefix when a vector is truncated, RFC 4231 case 5). */
#define CHECK_HEX(digest, digest_len, expected_hex)                                                                    \
    do {                                                                                                               \
        char hex_[2 * SR_CRYPTO_MAX_LEN + 1];                                                                          \
        size_t want_ = strlen(expected_hex) / 2;                                                                       \
        CHECK(want_ <= (digest_len));                                                                                  \
        sr_crypto_hex(hex_, (digest), want_);                                                                          \
        CHECK_STR(hex_, (expected_hex));                                                                               \
    } while (0)

/* The hash of the NUL-terminated text must have the given hex. */
#define CHECK_HASH(alg, text, expected_hex)                                                                            \
    do {                                                                                                               \
        unsigned char d_[SR_CRYPTO_MAX_LEN];                                                                           \
        sr_crypto_digest((alg), (text), strlen(text), d_);                                                             \
        CHECK_HEX(d_, sr_crypto_len(alg), (expected_hex));                                                             \
        CHECK_INT(strlen(expected_hex), 2 * sr_crypto_len(alg));                                                       \
    } while (0)

/* Fills out with n copies of byte. */
static unsigned char *crypto_test_fill(unsigned char *out, unsigned char byte, size_t n) {
    memset(out, byte, n);
    return out;
}

/* A deterministic pseudo-random byte string (a 32-bit LCG), so chunking tests
 * cover every byte value and are repeatable. */
static void crypto_test_bytes(unsigned char *out, size_t n) {
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        out[i] = (unsigned char)(x >> 16);
    }
}

/* The base64 of n bytes must be expected, and decode back to them. */
static void crypto_test_base64_pair(const char *bytes, size_t n, const char *expected) {
    char text[64];
    CHECK_INT(sr_crypto_base64_len(n), strlen(expected));
    sr_crypto_base64(text, bytes, n);
    CHECK_STR(text, expected);
    unsigned char back[64];
    size_t back_len = 99;
    CHECK(sr_crypto_unbase64_max_len(strlen(expected)) <= sizeof back);
    CHECK_INT(sr_crypto_unbase64(back, &back_len, expected, strlen(expected)), 0);
    CHECK_INT(back_len, n);
    CHECK(n == 0 || memcmp(back, bytes, n) == 0);
}

/* text_len chars of text must be refused as base64. */
static void crypto_test_base64_bad(const char *text, size_t text_len) {
    unsigned char out[64];
    size_t out_len = 99;
    if (sr_crypto_unbase64(out, &out_len, text, text_len) != -EINVAL)
        UNIT_FAIL("\"%.*s\" accepted as base64", (int)text_len, text);
    CHECK_INT(out_len, 0);
}

/* ---- SHA-1 (FIPS 180-4; NIST CSRC examples) ----------------------------- */

TEST(sha1_abc) { CHECK_HASH(ALG_SHA1, "abc", "a9993e364706816aba3e25717850c26c9cd0d89d"); }

TEST(sha1_448_bits) {
    CHECK_HASH(ALG_SHA1, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
               "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

TEST(sha1_empty) { CHECK_HASH(ALG_SHA1, "", "da39a3ee5e6b4b0d3255bfef95601890afd80709"); }

/* ---- SHA-256 (FIPS 180-4; NIST CSRC examples) --------------------------- */

TEST(sha256_abc) { CHECK_HASH(ALG_SHA256, "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"); }

TEST(sha256_448_bits) {
    CHECK_HASH(ALG_SHA256, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(sha256_empty) { CHECK_HASH(ALG_SHA256, "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"); }

/* ---- SHA-512 (FIPS 180-4; NIST CSRC examples) --------------------------- */

TEST(sha512_abc_896_bits_empty) {
    CHECK_HASH(ALG_SHA512, "abc",
               "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
               "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
    CHECK_HASH(ALG_SHA512,
               "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopq"
               "rstnopqrstu",
               "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
               "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909");
    CHECK_HASH(ALG_SHA512, "",
               "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
               "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e");
}

/* One million 'a': hashed in one shot, and streamed 1000 bytes at a time. */
TEST(hashes_million_a) {
    static const struct {
        sr_crypto_alg alg;
        const char *hex;
    } vectors[] = {
        {ALG_SHA1, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"},
        {ALG_SHA256, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
        {ALG_MD5, "7707d6ae4e027c70eea2a935c2296f21"}, /* not in RFC 1321; a common extra check */
        {ALG_SHA512, "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb"
                     "de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b"},
    };
    size_t n = 1000000;
    unsigned char *a = malloc(n);
    CHECK(a != NULL);
    crypto_test_fill(a, 'a', n);
    for (size_t v = 0; v < sizeof vectors / sizeof vectors[0]; v++) {
        unsigned char d[SR_CRYPTO_MAX_LEN];
        sr_crypto_digest(vectors[v].alg, a, n, d);
        CHECK_HEX(d, sr_crypto_len(vectors[v].alg), vectors[v].hex);
        sr_crypto_ctx ctx;
        sr_crypto_init(&ctx, vectors[v].alg);
        for (size_t i = 0; i < n; i += 1000) sr_crypto_update(&ctx, a + i, 1000);
        sr_crypto_final(&ctx, d);
        CHECK_HEX(d, sr_crypto_len(vectors[v].alg), vectors[v].hex);
    }
    free(a);
}

/* ---- MD5 (RFC 1321 §A.5 test suite) ------------------------------------- */

TEST(md5_rfc1321_suite) {
    CHECK_HASH(ALG_MD5, "", "d41d8cd98f00b204e9800998ecf8427e");
    CHECK_HASH(ALG_MD5, "a", "0cc175b9c0f1b6a831c399e269772661");
    CHECK_HASH(ALG_MD5, "abc", "900150983cd24fb0d6963f7d28e17f72");
    CHECK_HASH(ALG_MD5, "message digest", "f96b697d7cb7938d525a2f31aaf161d0");
    CHECK_HASH(ALG_MD5, "abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b");
    CHECK_HASH(ALG_MD5, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
               "d174ab98d277d9f5a5611c2c9f419d9f");
    CHECK_HASH(ALG_MD5, "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
               "57edf4a22be3c955ac49da2e2107b67a");
}

/* ---- padding boundaries --------------------------------------------------- */

/* Messages whose padding lands on each edge: 55 bytes (length fits in the
 * same block), 56 and 63 (padding spills into a second block), 64, 119, 120.
 * Expected values computed with Python's hashlib, an independent reference. */
TEST(hashes_padding_boundaries) {
    static const struct {
        size_t n;
        const char *md5, *sha1, *sha256;
    } vectors[] = {
        {55, "ef1772b6dff9a122358552954ad0df65", "c1c8bbdc22796e28c0e15163d20899b65621d65a",
         "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "3b0c8ac703f828b04c6c197006d17218", "c2db330f6083854c99d4b5bfb6e8f29f201be699",
         "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {63, "b06521f39153d618550606be297466d5", "03f09f5b158a7a8cdad920bddc29b81c18a551f5",
         "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "014842d480b571495a4a0363793f7367", "0098ba824b5c16427bd7a1122a5a442a25ec644d",
         "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {119, "8a7bd0732ed6a28ce75f6dabc90e1613", "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56",
         "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
        {120, "5f61c0ccad4cac44c75ff505e1f1e537", "f34c1488385346a55709ba056ddd08280dd4c6d6",
         "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
    };
    unsigned char a[128];
    crypto_test_fill(a, 'a', sizeof a);
    for (size_t v = 0; v < sizeof vectors / sizeof vectors[0]; v++) {
        unsigned char d[SR_CRYPTO_SHA256_LEN];
        sr_crypto_digest(ALG_MD5, a, vectors[v].n, d);
        CHECK_HEX(d, SR_CRYPTO_MD5_LEN, vectors[v].md5);
        sr_crypto_digest(ALG_SHA1, a, vectors[v].n, d);
        CHECK_HEX(d, SR_CRYPTO_SHA1_LEN, vectors[v].sha1);
        sr_crypto_digest(ALG_SHA256, a, vectors[v].n, d);
        CHECK_HEX(d, SR_CRYPTO_SHA256_LEN, vectors[v].sha256);
    }
}

/* ---- HMAC ------------------------------------------------------------------ */

/* The test cases shared by RFC 2202 and RFC 4231: keys and data are given as
 * a byte repeated n times, or as text. */
typedef struct {
    unsigned char key_byte; /* 0: key_text, else key_byte repeated key_len times */
    size_t key_len;
    const char *key_text;
    unsigned char data_byte; /* 0: data_text */
    size_t data_len;
    const char *data_text;
    const char *hex; /* expected MAC, or its prefix when truncated */
} crypto_test_hmac_case;

/* Case 4 of both RFCs uses the key 0x01 0x02 ... 0x19 (25 bytes). */
#define KEY_0102_19 1

static void crypto_test_hmac_cases(sr_crypto_alg alg, const crypto_test_hmac_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char key[200], data[200], mac[SR_CRYPTO_MAX_LEN];
        const crypto_test_hmac_case *c = &cases[i];
        size_t key_len = c->key_text ? strlen(c->key_text) : c->key_len;
        size_t data_len = c->data_text ? strlen(c->data_text) : c->data_len;
        if (c->key_text) memcpy(key, c->key_text, key_len);
        else if (c->key_byte == KEY_0102_19)
            for (size_t k = 0; k < key_len; k++) key[k] = (unsigned char)(k + 1);
        else
            crypto_test_fill(key, c->key_byte, key_len);
        if (c->data_text) memcpy(data, c->data_text, data_len);
        else
            crypto_test_fill(data, c->data_byte, data_len);
        sr_crypto_hmac(alg, key, key_len, data, data_len, mac);
        char hex[2 * SR_CRYPTO_MAX_LEN + 1];
        sr_crypto_hex(hex, mac, strlen(c->hex) / 2);
        if (strcmp(hex, c->hex) != 0) UNIT_FAIL("case %zu: got %s, expected %s", i + 1, hex, c->hex);
    }
}

TEST(hmac_md5_rfc2202) {
    static const crypto_test_hmac_case cases[] = {
        {0x0b, 16, NULL, 0, 0, "Hi There", "9294727a3638bb1c13f48ef8158bfc9d"},
        {0, 0, "Jefe", 0, 0, "what do ya want for nothing?", "750c783e6ab0b503eaa86e310a5db738"},
        {0xaa, 16, NULL, 0xdd, 50, NULL, "56be34521d144c88dbb8c733f0e8b3f6"},
        {KEY_0102_19, 25, NULL, 0xcd, 50, NULL, "697eaf0aca3a3aea3a75164746ffaa79"},
        {0x0c, 16, NULL, 0, 0, "Test With Truncation", "56461ef2342edc00f9bab995690efd4c"},
        {0xaa, 80, NULL, 0, 0, "Test Using Larger Than Block-Size Key - Hash Key First",
         "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd"},
        {0xaa, 80, NULL, 0, 0, "Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
         "6f630fad67cda0ee1fb1f562db3aa53e"},
    };
    crypto_test_hmac_cases(ALG_MD5, cases, sizeof cases / sizeof cases[0]);
}

TEST(hmac_sha1_rfc2202) {
    static const crypto_test_hmac_case cases[] = {
        {0x0b, 20, NULL, 0, 0, "Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"},
        {0, 0, "Jefe", 0, 0, "what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
        {0xaa, 20, NULL, 0xdd, 50, NULL, "125d7342b9ac11cd91a39af48aa17b4f63f175d3"},
        {KEY_0102_19, 25, NULL, 0xcd, 50, NULL, "4c9007f4026250c6bc8414f9bf50c86c2d7235da"},
        {0x0c, 20, NULL, 0, 0, "Test With Truncation", "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"},
        {0xaa, 80, NULL, 0, 0, "Test Using Larger Than Block-Size Key - Hash Key First",
         "aa4ae5e15272d00e95705637ce8a3b55ed402112"},
        {0xaa, 80, NULL, 0, 0, "Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
         "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"},
    };
    crypto_test_hmac_cases(ALG_SHA1, cases, sizeof cases / sizeof cases[0]);
}

TEST(hmac_sha256_rfc4231) {
    static const crypto_test_hmac_case cases[] = {
        {0x0b, 20, NULL, 0, 0, "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {0, 0, "Jefe", 0, 0, "what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {0xaa, 20, NULL, 0xdd, 50, NULL, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
        {KEY_0102_19, 25, NULL, 0xcd, 50, NULL, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
        /* Case 5: the RFC gives only the first 128 bits. */
        {0x0c, 20, NULL, 0, 0, "Test With Truncation", "a3b6167473100ee06e0c796c2955552b"},
        {0xaa, 131, NULL, 0, 0, "Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {0xaa, 131, NULL, 0, 0,
         "This is a test using a larger than block-size key and a larger than block-size data. The key "
         "needs to be hashed before being used by the HMAC algorithm.",
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    };
    crypto_test_hmac_cases(ALG_SHA256, cases, sizeof cases / sizeof cases[0]);
}

TEST(hmac_sha512_rfc4231) {
    static const crypto_test_hmac_case cases[] = {
        {0x0b, 20, NULL, 0, 0, "Hi There",
         "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
         "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"},
        {0, 0, "Jefe", 0, 0, "what do ya want for nothing?",
         "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
         "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
        {0xaa, 20, NULL, 0xdd, 50, NULL,
         "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39"
         "bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb"},
        {KEY_0102_19, 25, NULL, 0xcd, 50, NULL,
         "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db"
         "a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd"},
        {0x0c, 20, NULL, 0, 0, "Test With Truncation", "415fad6271580a531d4179bc891d87a6"},
        {0xaa, 131, NULL, 0, 0, "Test Using Larger Than Block-Size Key - Hash Key First",
         "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
         "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"},
        {0xaa, 131, NULL, 0, 0,
         "This is a test using a larger than block-size key and a larger than block-size data. The key "
         "needs to be hashed before being used by the HMAC algorithm.",
         "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944"
         "b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58"},
    };
    crypto_test_hmac_cases(ALG_SHA512, cases, sizeof cases / sizeof cases[0]);
}

/* A key of exactly one block is used as is, one byte more is hashed first:
 * the two must differ from each other and from the hashed-key form. */
TEST(hmac_key_block_edge) {
    unsigned char key[65], mac64[SR_CRYPTO_SHA256_LEN], mac65[SR_CRYPTO_SHA256_LEN];
    unsigned char hashed[SR_CRYPTO_SHA256_LEN], mac_hashed[SR_CRYPTO_SHA256_LEN];
    crypto_test_fill(key, 'k', sizeof key);
    sr_crypto_hmac(ALG_SHA256, key, 64, "m", 1, mac64);
    sr_crypto_hmac(ALG_SHA256, key, 65, "m", 1, mac65);
    CHECK(memcmp(mac64, mac65, sizeof mac64) != 0);
    /* RFC 2104: a long key K is replaced by H(K). */
    sr_crypto_digest(ALG_SHA256, key, 65, hashed);
    sr_crypto_hmac(ALG_SHA256, hashed, sizeof hashed, "m", 1, mac_hashed);
    CHECK(memcmp(mac65, mac_hashed, sizeof mac65) == 0);
    /* An empty key is all zeros; NULL data with length 0 is allowed. */
    unsigned char empty[SR_CRYPTO_SHA256_LEN];
    sr_crypto_hmac(ALG_SHA256, NULL, 0, NULL, 0, empty);
    CHECK_HEX(empty, SR_CRYPTO_SHA256_LEN, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

/* ---- streaming ------------------------------------------------------------ */

/* Feeds 1000 bytes in chunk sizes that straddle block edges in every way and
 * checks each streamed digest and MAC against the one-shot result. */
TEST(streaming_odd_chunks_equal_one_shot) {
    static const size_t chunk_sizes[] = {1, 2, 3, 7, 13, 55, 56, 63, 64, 65, 127, 128, 129, 999, 1000};
    static const sr_crypto_alg algs[] = {ALG_MD5, ALG_SHA1, ALG_SHA256, ALG_SHA512};
    enum { N = 1000, ALGS = sizeof algs / sizeof algs[0] };
    unsigned char data[N];
    crypto_test_bytes(data, N);
    static const char key[] = "streaming key";
    unsigned char ref[ALGS][2][SR_CRYPTO_MAX_LEN]; /* [alg][0: digest, 1: HMAC] */
    for (size_t a = 0; a < ALGS; a++) {
        sr_crypto_digest(algs[a], data, N, ref[a][0]);
        sr_crypto_hmac(algs[a], key, strlen(key), data, N, ref[a][1]);
    }
    for (size_t c = 0; c < sizeof chunk_sizes / sizeof chunk_sizes[0]; c++) {
        size_t step = chunk_sizes[c];
        sr_crypto_ctx ctx[ALGS][2];
        for (size_t a = 0; a < ALGS; a++) {
            sr_crypto_init(&ctx[a][0], algs[a]);
            sr_crypto_hmac_init(&ctx[a][1], algs[a], key, strlen(key));
        }
        /* Vary the chunk size as we go (step, step + 1, step + 2, ...) and
         * throw in empty updates, so the pending block is at every offset. */
        for (size_t i = 0, k = 0; i < N; k++) {
            size_t take = step + k % 3;
            if (take > N - i) take = N - i;
            for (size_t a = 0; a < ALGS; a++)
                for (int m = 0; m < 2; m++) {
                    sr_crypto_update(&ctx[a][m], data + i, take);
                    sr_crypto_update(&ctx[a][m], NULL, 0);
                }
            i += take;
        }
        for (size_t a = 0; a < ALGS; a++)
            for (int m = 0; m < 2; m++) {
                unsigned char d[SR_CRYPTO_MAX_LEN];
                sr_crypto_final(&ctx[a][m], d);
                if (memcmp(d, ref[a][m], sr_crypto_len(algs[a])) != 0)
                    UNIT_FAIL("%s %d, chunks of %zu", m ? "hmac" : "digest", (int)algs[a], step);
            }
    }
}

/* A context given up half way frees its state (ASan's leak check runs the
 * unit tests in make asan) and leaves the next one unaffected. */
TEST(streaming_abandon) {
    sr_crypto_ctx ctx;
    sr_crypto_hmac_init(&ctx, ALG_SHA256, "k", 1);
    sr_crypto_update(&ctx, "half", 4);
    sr_crypto_abandon(&ctx);
    CHECK(ctx.md == NULL && ctx.mac == NULL);
    sr_crypto_init(&ctx, ALG_SHA256);
    sr_crypto_update(&ctx, "abc", 3);
    unsigned char d[SR_CRYPTO_SHA256_LEN];
    sr_crypto_final(&ctx, d);
    CHECK_HEX(d, SR_CRYPTO_SHA256_LEN, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* ---- hex ------------------------------------------------------------------- */

TEST(hex_encoding) {
    char out[16];
    memset(out, 'x', sizeof out);
    sr_crypto_hex(out, "\x00\x01\x7f\x80\xab\xff", 6);
    CHECK_STR(out, "00017f80abff");
    sr_crypto_hex(out, "", 0);
    CHECK_STR(out, "");
}

/* ---- base64 (RFC 4648 §10) ------------------------------------------------- */

TEST(base64_rfc4648_vectors) {
    crypto_test_base64_pair("", 0, "");
    crypto_test_base64_pair("f", 1, "Zg==");
    crypto_test_base64_pair("fo", 2, "Zm8=");
    crypto_test_base64_pair("foo", 3, "Zm9v");
    crypto_test_base64_pair("foob", 4, "Zm9vYg==");
    crypto_test_base64_pair("fooba", 5, "Zm9vYmE=");
    crypto_test_base64_pair("foobar", 6, "Zm9vYmFy");
    /* Both ends of the alphabet and a NUL byte. */
    crypto_test_base64_pair("\xfb\xff\xbf", 3, "+/+/");
    crypto_test_base64_pair("\x00\x00\x00", 3, "AAAA");
}

/* Every byte string of every length up to 70 survives a round trip. */
TEST(base64_round_trip) {
    unsigned char data[70], back[70];
    char text[100];
    crypto_test_bytes(data, sizeof data);
    for (size_t n = 0; n <= sizeof data; n++) {
        sr_crypto_base64(text, data, n);
        CHECK_INT(strlen(text), sr_crypto_base64_len(n));
        size_t len;
        CHECK_INT(sr_crypto_unbase64(back, &len, text, strlen(text)), 0);
        CHECK_INT(len, n);
        CHECK(n == 0 || memcmp(back, data, n) == 0);
    }
}

TEST(base64_rejects_invalid) {
    crypto_test_base64_bad("Zg", 2);            /* missing padding */
    crypto_test_base64_bad("Zg=", 3);           /* short padding */
    crypto_test_base64_bad("Zm9vY", 5);         /* not a multiple of 4 */
    crypto_test_base64_bad("Z===", 4);          /* three '=' */
    crypto_test_base64_bad("====", 4);          /* padding only */
    crypto_test_base64_bad("=Zg=", 4);          /* '=' first */
    crypto_test_base64_bad("Zg=a", 4);          /* data after '=' */
    crypto_test_base64_bad("Zg==Zg==", 8);      /* padding in the middle */
    crypto_test_base64_bad("Zm9v\n", 5);        /* newline */
    crypto_test_base64_bad("Zm9v\r\nYmFy", 10); /* line break inside */
    crypto_test_base64_bad("Zm 9v", 5);         /* space */
    crypto_test_base64_bad("Zm9 ", 4);          /* trailing space */
    /* OpenSSL's EVP_DecodeBlock takes these (it skips whitespace at both
     * ends); ours does not. */
    crypto_test_base64_bad(" Zm9v", 5);            /* leading space */
    crypto_test_base64_bad("\tZm9vYmE=", 9);       /* leading tab */
    crypto_test_base64_bad("Zm9vYmF\n", 8);        /* trailing newline in place of a character */
    crypto_test_base64_bad("Zm-_", 4);             /* URL-safe alphabet */
    crypto_test_base64_bad("Zm9v*A==", 8);         /* punctuation */
    crypto_test_base64_bad("Zg\0=", 4);            /* embedded NUL */
    crypto_test_base64_bad("\xff\xfe\xfd\xfc", 4); /* non-ASCII */
    /* Non-zero bits under the padding (RFC 4648 §3.5): "Zh==" would also
     * decode to "f", "Zm9=" to "fo". */
    crypto_test_base64_bad("Zh==", 4);
    crypto_test_base64_bad("Zm9=", 4);
}

/* ---- constant-time equality --------------------------------------------- */

TEST(equal_compares_bytes_and_lengths) {
    CHECK_INT(sr_crypto_equal("abc", 3, "abc", 3), 1);
    CHECK_INT(sr_crypto_equal("", 0, "", 0), 1);
    CHECK_INT(sr_crypto_equal(NULL, 0, NULL, 0), 1);
    CHECK_INT(sr_crypto_equal("abc", 3, "abd", 3), 0);   /* last byte */
    CHECK_INT(sr_crypto_equal("xbc", 3, "abc", 3), 0);   /* first byte */
    CHECK_INT(sr_crypto_equal("a\0c", 3, "a\0d", 3), 0); /* past a NUL */
    CHECK_INT(sr_crypto_equal("\x80", 1, "\x00", 1), 0); /* high bit only */
    CHECK_INT(sr_crypto_equal("abc", 3, "abcd", 4), 0);  /* prefix */
    CHECK_INT(sr_crypto_equal("abcd", 4, "abc", 3), 0);
    CHECK_INT(sr_crypto_equal("", 0, "a", 1), 0);
    unsigned char x[256], y[256];
    crypto_test_bytes(x, sizeof x);
    memcpy(y, x, sizeof y);
    CHECK_INT(sr_crypto_equal(x, sizeof x, y, sizeof y), 1);
    for (size_t i = 0; i < sizeof y; i += 17) {
        y[i] ^= 1;
        CHECK_INT(sr_crypto_equal(x, sizeof x, y, sizeof y), 0);
        y[i] ^= 1;
    }
}

/* ---- random bytes --------------------------------------------------------- */

TEST(random_bytes) {
    unsigned char a[32], b[32];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    CHECK_INT(sr_crypto_random(a, sizeof a), 0);
    CHECK_INT(sr_crypto_random(b, sizeof b), 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
    static const unsigned char zeros[32];
    CHECK(memcmp(a, zeros, sizeof a) != 0);
    CHECK_INT(sr_crypto_random(a, 0), 0);
}

/* ---- Twilio's documented webhook signature --------------------------------- */

/* base64(HMAC-SHA1(auth token, URL + the POST parameters sorted by name, each
 * name followed by its value)). Twilio has published the same example with two
 * sets of phone numbers; both were checked with Python's hmac module:
 * +12349013030 (the current "Webhooks security" page) signs to
 * 0/KCTR6DLpKmkAf8muzZqo1nDgQ=, +14158675309 (the older docs and the Twilio
 * SDKs' own tests) to RSOYDt4T1cUTdK1PDd93/VVr8B8=. */
static void crypto_test_twilio(const char *phone, const char *expected) {
    char data[512];
    snprintf(data, sizeof data,
             "https://mycompany.com/myapp.php?foo=1&bar=2"
             "CallSidCA1234567890ABCDECaller%sDigits1234From%sTo+18005551212",
             phone, phone);
    unsigned char mac[SR_CRYPTO_SHA1_LEN];
    sr_crypto_hmac(ALG_SHA1, "12345", 5, data, strlen(data), mac);
    char signature[64];
    sr_crypto_base64(signature, mac, sizeof mac);
    CHECK_STR(signature, expected);
    CHECK_INT(sr_crypto_equal(signature, strlen(signature), expected, strlen(expected)), 1);
}

TEST(twilio_signature_example) {
    crypto_test_twilio("+12349013030", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    crypto_test_twilio("+14158675309", "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
}

/* ---- sms.crypto from Lua ------------------------------------------------- */

/* A bare state with the standard libraries and sms.crypto; each snippet
 * must run without error (they assert what they check). */
static lua_State *crypto_test_lua(void) {
    lua_State *L = luaL_newstate();
    CHECK(L != NULL);
    luaL_openlibs(L);
    lua_newtable(L);
    sr_lua_open_crypto(L);
    lua_setglobal(L, "sms");
    CHECK_INT(lua_gettop(L), 0);
    return L;
}

static void crypto_test_lua_run(lua_State *L, const char *code) {
    if (luaL_dostring(L, code) != LUA_OK) UNIT_FAIL("%s\n-> %s", code, lua_tostring(L, -1));
    lua_settop(L, 0);
}

TEST(lua_hashes_and_hex) {
    lua_State *L = crypto_test_lua();
    crypto_test_lua_run(L, "local c = sms.crypto\n"
                           "assert(c.hex(c.sha256('abc')) == "
                           "'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')\n"
                           "assert(#c.sha256('abc') == 32 and #c.sha1('abc') == 20 and #c.md5('abc') == 16)\n"
                           "assert(c.hex(c.sha1('abc')) == 'a9993e364706816aba3e25717850c26c9cd0d89d')\n"
                           "assert(c.hex(c.md5('message digest')) == 'f96b697d7cb7938d525a2f31aaf161d0')\n"
                           "assert(c.hex(c.hmac_sha256('Jefe', 'what do ya want for nothing?')) == "
                           "'5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843')\n"
                           "assert(c.hex(c.hmac_sha1('Jefe', 'what do ya want for nothing?')) == "
                           "'effcdf6ae5eb2fa2d27416d5f184df9c259a7c79')\n"
                           "assert(c.hex(c.hmac_md5('Jefe', 'what do ya want for nothing?')) == "
                           "'750c783e6ab0b503eaa86e310a5db738')\n"
                           "assert(c.hex(c.hmac_sha512('Jefe', 'what do ya want for nothing?')):sub(1, 32) == "
                           "'164b7a7bfcf819e2e395fbe73b56e0a3')\n"
                           "assert(#c.sha512('abc') == 64 and #c.hmac_sha512('k', 'abc') == 64)\n"
                           "assert(c.hex(c.sha512('abc')):sub(1, 32) == 'ddaf35a193617abacc417349ae204131')\n"
                           "assert(c.hex('') == '' and c.hex('\\0\\255') == '00ff')\n"
                           "assert(c.hex(c.sha256('a\\0b')) ~= c.hex(c.sha256('a')))\n");
    lua_close(L);
}

TEST(lua_twilio_signature) {
    lua_State *L = crypto_test_lua();
    crypto_test_lua_run(L, "local params = {CallSid = 'CA1234567890ABCDE', Caller = '+12349013030',\n"
                           "  Digits = '1234', From = '+12349013030', To = '+18005551212'}\n"
                           "local names = {}\n"
                           "for k in pairs(params) do names[#names + 1] = k end\n"
                           "table.sort(names)\n"
                           "local parts = {'https://mycompany.com/myapp.php?foo=1&bar=2'}\n"
                           "for _, k in ipairs(names) do parts[#parts + 1] = k .. params[k] end\n"
                           "local sig = sms.crypto.base64(sms.crypto.hmac_sha1('12345', table.concat(parts)))\n"
                           "assert(sms.crypto.equal(sig, '0/KCTR6DLpKmkAf8muzZqo1nDgQ='), sig)\n");
    lua_close(L);
}

TEST(lua_base64) {
    lua_State *L = crypto_test_lua();
    crypto_test_lua_run(L, "local c = sms.crypto\n"
                           "assert(c.base64('foobar') == 'Zm9vYmFy' and c.base64('f') == 'Zg==')\n"
                           "assert(c.base64('') == '' and c.unbase64('') == '')\n"
                           "local all = {}\n"
                           "for i = 0, 255 do all[#all + 1] = string.char(i) end\n"
                           "all = table.concat(all)\n"
                           "for n = 0, 256 do\n"
                           "  local s = all:sub(1, n)\n"
                           "  assert(c.unbase64(c.base64(s)) == s, n)\n"
                           "end\n"
                           "for _, bad in ipairs({'%%%%', 'Zg', 'Zg=', 'Zm9v\\n', 'Zh==', 'not base64!'}) do\n"
                           "  local v, err = c.unbase64(bad)\n"
                           "  assert(v == nil and err == 'invalid base64', bad)\n"
                           "end\n");
    lua_close(L);
}

TEST(lua_equal) {
    lua_State *L = crypto_test_lua();
    crypto_test_lua_run(L, "local c = sms.crypto\n"
                           "assert(c.equal('abc', 'abc') == true)\n"
                           "assert(c.equal('abc', 'abd') == false)\n"
                           "assert(c.equal('abc', 'abcd') == false)\n"
                           "assert(c.equal('', '') == true)\n"
                           "assert(c.equal('a\\0b', 'a\\0c') == false)\n");
    lua_close(L);
}

/* Misuse raises (luaL_checklstring); numbers are accepted as their text, as
 * everywhere in Lua's string functions. */
TEST(lua_misuse_raises) {
    lua_State *L = crypto_test_lua();
    crypto_test_lua_run(L, "local c = sms.crypto\n"
                           "for _, call in ipairs({\n"
                           "  function() return c.sha256() end,\n"
                           "  function() return c.sha1({}) end,\n"
                           "  function() return c.md5(nil) end,\n"
                           "  function() return c.hmac_sha256('key') end,\n"
                           "  function() return c.hmac_sha1(nil, 'data') end,\n"
                           "  function() return c.hmac_md5('key', {}) end,\n"
                           "  function() return c.sha512() end,\n"
                           "  function() return c.hex(true) end,\n"
                           "  function() return c.base64() end,\n"
                           "  function() return c.unbase64({}) end,\n"
                           "  function() return c.equal('a') end,\n"
                           "}) do\n"
                           "  local ok, err = pcall(call)\n"
                           "  assert(not ok and err:find('bad argument'), tostring(err))\n"
                           "end\n"
                           "assert(c.hex(c.sha1(12)) == c.hex(c.sha1('12')))\n");
    lua_close(L);
}

TEST(lua_random_bytes) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_newtable(L);
    sr_lua_open_crypto(L);
    lua_setglobal(L, "sms");
    const char *code = "local a, b = sms.crypto.random(16), sms.crypto.random(16)\n"
                       "assert(#a == 16 and #b == 16 and a ~= b)\n"
                       "assert(not pcall(sms.crypto.random, 0) and not pcall(sms.crypto.random, 1025))\n"
                       "local seen = {}\n"
                       "for i = 1, 200 do seen[sms.crypto.random(8)] = true end\n"
                       "local n = 0 for _ in pairs(seen) do n = n + 1 end\n"
                       "assert(n == 200)\n";
    if (luaL_dostring(L, code) != LUA_OK) UNIT_FAIL("%s", lua_tostring(L, -1));
    lua_close(L);
}
