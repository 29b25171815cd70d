#!/bin/sh
# The webhook primitives of src/codec, one call at a time, CPU only (no
# daemon, no HTTP):
#  1. one signature check: HMAC-SHA256 + hex of a 400-byte body (generic and
#     mock X-Signature), HMAC-SHA1 + base64 (Twilio), MD5 + hex (Vonage
#     md5hash), through src/codec/crypto.c (OpenSSL's libcrypto) and, for
#     comparison, through the hand-written MD5/SHA code it replaced (taken
#     from git history, when there is one);
#  2. reading a form body as an adapter does: sms.form.decode (the core's
#     decoder, src/codec/form.c) against the Lua decoder util.form_decode had
#     before (gsub of '+' and of %XX), on a Twilio inbound body and on the
#     worst bodies the webhook limits let through.
# Environment: CC (default cc), N (signature checks per scheme, 200000),
# BUILD (default build: the library part 2 links).
set -eu
NAME=codec.sh
CC=${CC:-cc}
N=${N:-200000}
BUILD=${BUILD:-build}
OLD_COMMIT=098bddf~1 # the last commit with our own hashes
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

cat >"$work/sig.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "codec/crypto.h"
#ifdef OLD_API
#define HMAC256(k, kl, d, l, o) sr_crypto_hmac_sha256(k, kl, d, l, o)
#define HMAC1(k, kl, d, l, o) sr_crypto_hmac_sha1(k, kl, d, l, o)
#define MD5(d, l, o) sr_crypto_md5(d, l, o)
#else
#define HMAC256(k, kl, d, l, o) sr_crypto_hmac(SR_CRYPTO_SHA256, k, kl, d, l, o)
#define HMAC1(k, kl, d, l, o) sr_crypto_hmac(SR_CRYPTO_SHA1, k, kl, d, l, o)
#define MD5(d, l, o) sr_crypto_digest(SR_CRYPTO_MD5, d, l, o)
#endif
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    char body[400], hex[129], b64[64];
    unsigned char mac[64];
    memset(body, 'x', sizeof body);
    static const char *const names[] = {"hmac-sha256 + hex (generic)", "hmac-sha1 + base64 (twilio)",
                                        "md5 + hex (vonage md5hash)"};
    unsigned sink = 0;
    for (int w = 0; w < 3; w++) {
        double t0 = now();
        for (int i = 0; i < n; i++) {
            body[i % 400] = (char)i;
            if (w == 0) HMAC256("secret-key", 10, body, sizeof body, mac), sr_crypto_hex(hex, mac, 32);
            else if (w == 1) HMAC1("secret-key", 10, body, sizeof body, mac), sr_crypto_base64(b64, mac, 20);
            else MD5(body, sizeof body, mac), sr_crypto_hex(hex, mac, 16);
            sink += (unsigned char)hex[0] + (unsigned char)b64[0];
        }
        printf("  %-30s %6.2f us a check\n", names[w], (now() - t0) / n * 1e6);
    }
    return sink == 1; /* keeps the loop */
}
C

echo "== signature checks ($N each)"
if mkdir -p "$work/old/codec" && git -C "$root" show "$OLD_COMMIT:src/codec/crypto.c" >"$work/old/codec/crypto.c" 2>/dev/null &&
    git -C "$root" show "$OLD_COMMIT:src/codec/crypto.h" >"$work/old/codec/crypto.h" 2>/dev/null; then
    $CC -O2 -DOLD_API -I"$work/old" "$work/sig.c" "$work/old/codec/crypto.c" -o "$work/sig_old"
    echo "our own MD5/SHA code (before):"
    "$work/sig_old" "$N"
fi
$CC -O2 -I"$root/src" "$work/sig.c" "$root/src/codec/crypto.c" -o "$work/sig_new" $(pkg-config --libs libcrypto) -lpthread
echo "libcrypto (src/codec/crypto.c):"
"$work/sig_new" "$N"

cat >"$work/form.c" <<'C'
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
void sr_lua_open_form(lua_State *L);
static const char code[] =
    "local function unescape(v)\n"
    "  return (v:gsub('%+', ' '):gsub('%%(%x%x)', function(h) return string.char(tonumber(h, 16)) end))\n"
    "end\n"
    "local function lua_decode(body)\n"
    "  local form, n = {}, 0\n"
    "  for pair in body:gmatch('[^&]+') do\n"
    "    n = n + 1\n"
    "    if n > 256 then return form, true end\n"
    "    local k, v = pair:match('^([^=]*)=?(.*)$')\n"
    "    k = unescape(k)\n"
    "    if k ~= '' and form[k] == nil then form[k] = unescape(v) end\n"
    "  end\n"
    "  return form\n"
    "end\n"
    "local bodies = {\n"
    "  {'twilio inbound', 'ToCountry=US&ToState=CA&SmsMessageSid=SM1234567890abcdef&NumMedia=0&ToCity=SAN+FRANCISCO'\n"
    "    .. '&FromZip=94105&SmsSid=SM1234567890abcdef&FromState=CA&SmsStatus=received&FromCity=SAN+FRANCISCO'\n"
    "    .. '&Body=Hello+%F0%9F%91%8B+world%21&FromCountry=US&To=%2B15005550006&ToZip=94105&NumSegments=1'\n"
    "    .. '&MessageSid=SM1234567890abcdef&AccountSid=AC123&From=%2B14155551234&ApiVersion=2010-04-01', 100000},\n"
    "  {'64 KiB of escapes', 'a=' .. ('%41'):rep(21800), 300},\n"
    "  {'256 fields of escapes', ('k=' .. ('%2B'):rep(80) .. '&'):rep(256), 300},\n"
    "}\n"
    "for _, b in ipairs(bodies) do\n"
    "  local name, body, n = b[1], b[2], b[3]\n"
    "  local t0 = os.clock() for i = 1, n do lua_decode(body) end\n"
    "  local lua_s = (os.clock() - t0) / n\n"
    "  t0 = os.clock() for i = 1, n do sms.form.decode(body) end\n"
    "  local c_s = (os.clock() - t0) / n\n"
    "  print(string.format('  %-22s %6d bytes: Lua %8.2f us, sms.form %7.2f us (%.1fx)', name, #body, lua_s * 1e6,\n"
    "                      c_s * 1e6, lua_s / c_s))\n"
    "end\n";
int main(void) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_newtable(L);
    sr_lua_open_form(L);
    lua_setglobal(L, "sms");
    if (luaL_dostring(L, code) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        return 1;
    }
    lua_close(L);
    return 0;
}
C
# sms.form from the daemon's own library (and every library it links, as the Makefile's LDLIBS).
lib="$BUILD/libsmsrules.a"
[ -f "$lib" ] || { echo "$NAME: no $lib (run make)" >&2; exit 1; }
$CC -O2 $(pkg-config --cflags lua5.4) "$work/form.c" "$lib" -o "$work/form" \
    $(pkg-config --libs lua5.4 libcurl libuv lmdb lua5.4-cjson libcrypto) \
    -lgeocoding -lphonenumber $(pkg-config --libs icu-uc protobuf) -lstdc++ -lm -lpthread
echo "== reading a form body (the adapters' util.form_decode)"
"$work/form"
