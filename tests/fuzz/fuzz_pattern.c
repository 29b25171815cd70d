/* Fuzz target for src/rules/lua_string.c: the bounded string.find, match, gmatch
 * and gsub against Lua's own (lstrlib), through the comparison the unit test
 * uses (tests/unit/lua_string_compare.h). Checks: for every subject, pattern
 * and extra arguments, both give the same values of the same types, or the
 * same error; a case where ours ran out of steps is left out (Lua's could
 * run for a long time), so only patterns that finish fast are compared.
 *
 * Input: byte 0 picks the function (bits 0-1), the third argument (bits 2-4:
 * an init position, or a gsub replacement) and the fourth (bits 5-7: plain,
 * or gsub's max n); byte 1 is the subject's length (modulo what is left);
 * the subject follows, then the pattern (any bytes, NULs included). */
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/lua_string_compare.h"
#include "rules/lua_string.h"

/* libFuzzer's entry points. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *fuzz_pattern_L;

static void fuzz_pattern_copy(lua_State *L, const char *to) {
    static const char *const names[] = {"find", "match", "gmatch", "gsub"};
    lua_newtable(L);
    lua_getglobal(L, "string");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        lua_getfield(L, -1, names[i]);
        lua_setfield(L, -3, names[i]);
    }
    lua_pop(L, 1);
    lua_setglobal(L, to);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    fuzz_pattern_copy(L, "REAL");
    sr_lua_bound_string(L);
    fuzz_pattern_copy(L, "OURS");
    if (luaL_loadbuffer(L, string_compare_lua, sizeof string_compare_lua - 1, "=compare") != LUA_OK ||
        lua_pcall(L, 0, 0, 0) != LUA_OK) {
        fprintf(stderr, "compare: %s\n", lua_tostring(L, -1));
        abort();
    }
    fuzz_pattern_L = L;
    return 0;
}

/* Pushes the third argument: an init position, or for gsub a replacement. */
static void fuzz_pattern_push_a(lua_State *L, int fn, int code) {
    static const lua_Integer inits[] = {1, 2, -1, -3, 0, 5, 40, 1};
    static const char *const repls[] = {"<%0>", "%1", "%2", "x%%", "F", "T", "FT", "%"};
    if (fn == 3) lua_pushstring(L, repls[code]);
    else if (code == 7)
        lua_pushnil(L);
    else
        lua_pushinteger(L, inits[code]);
}

/* Pushes the fourth argument: find's plain, or gsub's max n. */
static void fuzz_pattern_push_b(lua_State *L, int fn, int code) {
    static const lua_Integer ns[] = {0, 1, 2, -1, 3};
    if (fn == 3 && code < 5) lua_pushinteger(L, ns[code]);
    else if (fn == 3)
        lua_pushnil(L);
    else
        lua_pushboolean(L, code & 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const fns[] = {"find", "match", "gmatch", "gsub"};
    if (size < 2) return 0;
    lua_State *L = fuzz_pattern_L;
    int fn = data[0] & 3, a = (data[0] >> 2) & 7, b = data[0] >> 5;
    size_t ls = data[1] % (size - 1);
    const char *s = (const char *)data + 2;
    const char *p = s + ls;
    size_t lp = size - 2 - ls;
    lua_getglobal(L, "compare");
    lua_pushstring(L, fns[fn]);
    lua_pushlstring(L, s, ls);
    lua_pushlstring(L, p, lp);
    fuzz_pattern_push_a(L, fn, a);
    fuzz_pattern_push_b(L, fn, b);
    if (lua_pcall(L, 5, 1, 0) != LUA_OK) {
        fprintf(stderr, "compare raised: %s\n", lua_tostring(L, -1));
        abort();
    }
    if (!lua_isnil(L, -1)) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        abort();
    }
    lua_settop(L, 0);
    return 0;
}
