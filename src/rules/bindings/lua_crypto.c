/* lua_crypto: sms.crypto — the hashing primitives adapters use in verify() to
 * check webhook signatures: hmac_sha256, hmac_sha512, hmac_sha1, hmac_md5,
 * sha256, sha512, sha1, md5 (raw bytes), hex, base64, unbase64, a
 * constant-time equal and random bytes, all over OpenSSL (codec/crypto.h). None of them
 * yields; all of them work outside handlers too. Strings in, strings out:
 * Lua strings hold any bytes, so digests are returned raw and encoded by the
 * caller as the provider wants (hex, base64). */
#include <lauxlib.h>
#include <stdint.h>

#include "codec/crypto.h"
#include "rules/rules.h"
#include "rules/bindings/bindings.h"

/* Pushes the alg digest of the string argument 1: raw bytes. */
static int crypto_push_digest(lua_State *L, sr_crypto_alg alg) {
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    unsigned char out[SR_CRYPTO_MAX_LEN];
    sr_crypto_digest(alg, data, len, out);
    lua_pushlstring(L, (const char *)out, sr_crypto_len(alg));
    return 1;
}

/* Pushes the HMAC over alg of argument 2 under key = argument 1: raw bytes. */
static int crypto_push_hmac(lua_State *L, sr_crypto_alg alg) {
    size_t key_len, len;
    const char *key = luaL_checklstring(L, 1, &key_len);
    const char *data = luaL_checklstring(L, 2, &len);
    unsigned char out[SR_CRYPTO_MAX_LEN];
    sr_crypto_hmac(alg, key, key_len, data, len, out);
    lua_pushlstring(L, (const char *)out, sr_crypto_len(alg));
    return 1;
}

/* sms.crypto.hmac_sha256(key, data) → 32 raw bytes; hmac_sha512 → 64, hmac_sha1 → 20, hmac_md5 → 16 */
static int l_crypto_hmac_sha256(lua_State *L) { return crypto_push_hmac(L, SR_CRYPTO_SHA256); }
static int l_crypto_hmac_sha512(lua_State *L) { return crypto_push_hmac(L, SR_CRYPTO_SHA512); }
static int l_crypto_hmac_sha1(lua_State *L) { return crypto_push_hmac(L, SR_CRYPTO_SHA1); }
static int l_crypto_hmac_md5(lua_State *L) { return crypto_push_hmac(L, SR_CRYPTO_MD5); }
/* sms.crypto.sha256(data) → 32 raw bytes; sha512 → 64, sha1 → 20, md5 → 16 */
static int l_crypto_sha256(lua_State *L) { return crypto_push_digest(L, SR_CRYPTO_SHA256); }
static int l_crypto_sha512(lua_State *L) { return crypto_push_digest(L, SR_CRYPTO_SHA512); }
static int l_crypto_sha1(lua_State *L) { return crypto_push_digest(L, SR_CRYPTO_SHA1); }
static int l_crypto_md5(lua_State *L) { return crypto_push_digest(L, SR_CRYPTO_MD5); }

/* sms.crypto.hex(bytes) → lowercase hex. The output is built in a
 * luaL_Buffer, which Lua owns, so nothing leaks if the allocation raises. */
static int l_crypto_hex(lua_State *L) {
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    if (len > (SIZE_MAX - 1) / 2) luaL_argerror(L, 1, "string too long");
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, 2 * len + 1);
    sr_crypto_hex(out, data, len);
    luaL_pushresultsize(&b, 2 * len);
    return 1;
}

/* sms.crypto.base64(bytes) → base64 text, standard alphabet, padded. */
static int l_crypto_base64(lua_State *L) {
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    if (len > SR_CRYPTO_BASE64_MAX_INPUT) luaL_argerror(L, 1, "string too long");
    size_t text_len = sr_crypto_base64_len(len);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, text_len + 1);
    sr_crypto_base64(out, data, len);
    luaL_pushresultsize(&b, text_len);
    return 1;
}

/* sms.crypto.unbase64(text) → bytes, or nil, "message" when text is not
 * strict base64 (an attacker's header is an expected failure, not misuse). */
static int l_crypto_unbase64(lua_State *L) {
    size_t text_len;
    const char *text = luaL_checklstring(L, 1, &text_len);
    luaL_Buffer b;
    /* At least 1 byte so the buffer pointer is always valid. */
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, sr_crypto_unbase64_max_len(text_len) + 1);
    size_t len;
    if (sr_crypto_unbase64(out, &len, text, text_len) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "invalid base64");
        return 2;
    }
    luaL_pushresultsize(&b, len);
    return 1;
}

/* sms.crypto.equal(a, b) → boolean, in time that depends only on #a and #b. */
static int l_crypto_equal(lua_State *L) {
    size_t alen, blen;
    const char *a = luaL_checklstring(L, 1, &alen);
    const char *b = luaL_checklstring(L, 2, &blen);
    lua_pushboolean(L, sr_crypto_equal(a, alen, b, blen));
    return 1;
}

/* sms.crypto.random(n) → n bytes from OpenSSL's CSPRNG (RAND_bytes, seeded
 * by the kernel), for codes and tokens; math.random is not fit for those.
 * n is 1..1024. */
static int l_crypto_random(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 1 && n <= 1024, 1, "must be 1 to 1024 bytes");
    luaL_Buffer b;
    unsigned char *p = (unsigned char *)luaL_buffinitsize(L, &b, (size_t)n);
    if (sr_crypto_random(p, (size_t)n) != 0)
        return luaL_error(L, "no random bytes (OpenSSL's generator has no entropy)");
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

void sr_lua_open_crypto(lua_State *L) {
    static const luaL_Reg fns[] = {{"hmac_sha256", l_crypto_hmac_sha256},
                                   {"hmac_sha512", l_crypto_hmac_sha512},
                                   {"hmac_sha1", l_crypto_hmac_sha1},
                                   {"hmac_md5", l_crypto_hmac_md5},
                                   {"sha256", l_crypto_sha256},
                                   {"sha512", l_crypto_sha512},
                                   {"sha1", l_crypto_sha1},
                                   {"md5", l_crypto_md5},
                                   {"hex", l_crypto_hex},
                                   {"base64", l_crypto_base64},
                                   {"unbase64", l_crypto_unbase64},
                                   {"equal", l_crypto_equal},
                                   {"random", l_crypto_random},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_setfield(L, -2, "crypto");
}
