#include "rules.h"

#include <lauxlib.h>
#include <lua-cjson.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char RULES_KEY = 'r'; /* registry key: its address */

sr_rules *sr_rules_from(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &RULES_KEY);
    sr_rules *r = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return r;
}

/* The allocator enforces the memory cap of the whole state. Refusing makes
 * Lua raise a memory error in the code that asked, which the caller's pcall
 * reports; the state stays usable. */
static void *rules_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    sr_rules *r = ud;
    if (ptr == NULL) osize = 0;
    if (nsize == 0) {
        free(ptr);
        r->memory_used -= osize;
        return NULL;
    }
    if (nsize > osize && r->memory_limit && r->memory_used + (nsize - osize) > r->memory_limit) {
        r->memory_exceeded = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p) return NULL;
    r->memory_used = r->memory_used - osize + nsize;
    return p;
}

/* require: Lua source files from the rules' folder only (mode "t": no
 * binary chunks, which can crash the VM). */
static int rules_searcher(lua_State *L) {
    sr_rules *r = sr_rules_from(L);
    const char *name = luaL_checkstring(L, 1);
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '.' || *p == '-')) {
            lua_pushfstring(L, "\n\tmodule name '%s' has characters rules may not use", name);
            return 1;
        }
    }
    if (name[0] == '.' || strstr(name, "..")) {
        lua_pushfstring(L, "\n\tmodule name '%s' is not allowed", name);
        return 1;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, r->dir);
    luaL_addchar(&b, '/');
    for (const char *p = name; *p; p++) luaL_addchar(&b, *p == '.' ? '/' : *p);
    luaL_addstring(&b, ".lua");
    luaL_pushresult(&b);
    const char *file = lua_tostring(L, -1);
    FILE *f = fopen(file, "r");
    if (!f) {
        lua_pushfstring(L, "\n\tno file '%s'", file);
        return 1;
    }
    fclose(f);
    if (luaL_loadfilex(L, file, "t") != LUA_OK)
        return luaL_error(L, "error loading module '%s':\n\t%s", name, lua_tostring(L, -1));
    lua_pushstring(L, file);
    return 2;
}

static int rules_forbidden_module(lua_State *L) {
    /* Level 2: the rule that called require (level 1 is require itself). */
    luaL_where(L, 2);
    lua_pushfstring(L, "module '%s' is not available to rules", lua_tostring(L, 1));
    lua_concat(L, 2);
    return lua_error(L);
}

static void rules_sandbox(lua_State *L) {
    luaL_openlibs(L);

    /* os: only the clock functions. */
    lua_newtable(L);
    lua_getglobal(L, "os");
    const char *keep[] = {"time", "clock", "date", "difftime"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        lua_getfield(L, -1, keep[i]);
        lua_setfield(L, -3, keep[i]);
    }
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "os");

    const char *globals[] = {"io", "debug", "load", "loadfile", "dofile"};
    for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, globals[i]);
    }

    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);

    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_pushvalue(L, -3); /* safe os */
    lua_setfield(L, -2, "os");
    lua_pushnil(L);
    lua_setfield(L, -2, "io");
    lua_pushnil(L);
    lua_setfield(L, -2, "debug");
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_setfield(L, -2, "loadlib");
    lua_pushstring(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pushstring(L, "");
    lua_setfield(L, -2, "path");
    /* preload: cjson, and a refusal for the removed libraries. */
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_cjson);
    lua_setfield(L, -2, "cjson");
    lua_pushcfunction(L, rules_forbidden_module);
    lua_setfield(L, -2, "io");
    lua_pushcfunction(L, rules_forbidden_module);
    lua_setfield(L, -2, "debug");
    lua_pop(L, 1);
    /* searchers: preload, then our Lua-source searcher. */
    lua_getfield(L, -1, "searchers");
    lua_rawgeti(L, -1, 1);
    lua_newtable(L);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    lua_pushcfunction(L, rules_searcher);
    lua_rawseti(L, -2, 2);
    lua_setfield(L, -3, "searchers");
    lua_pop(L, 1); /* old searchers */
    lua_pop(L, 2); /* package, safe os */
}

static int rules_traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = luaL_tolstring(L, 1, NULL);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* The first line of an error (file:line: message), without the traceback. */
static void rules_first_line(const char *msg, char *out, size_t outlen) {
    size_t n = strcspn(msg, "\n");
    if (n >= outlen) n = outlen - 1;
    memcpy(out, msg, n);
    out[n] = '\0';
}

int sr_rules_load(sr_rules **out, const char *path, sr_config *config, char *err, size_t errlen) {
    *out = NULL;
    sr_rules *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->config = config;
    r->memory_limit = config->memory_limit;
    r->L = lua_newstate(rules_alloc, r);
    if (!r->L) {
        snprintf(err, errlen, "cannot create a Lua state");
        free(r);
        return -1;
    }
    lua_State *L = r->L;
    lua_pushlightuserdata(L, r);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &RULES_KEY);
    rules_sandbox(L);

    lua_newtable(L);
    sr_lua_open_sms(L);
    sr_lua_open_log(L);
    lua_setglobal(L, "sms");

    if (path) {
        r->path = strdup(path);
        const char *slash = strrchr(path, '/');
        r->dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
        if (!r->path || !r->dir) abort();
        lua_pushcfunction(L, rules_traceback);
        if (luaL_loadfilex(L, path, "t") != LUA_OK) {
            rules_first_line(lua_tostring(L, -1), err, errlen);
            goto fail;
        }
        r->loading = 1;
        int rc = lua_pcall(L, 0, 0, -2);
        r->loading = 0;
        if (rc != LUA_OK) {
            rules_first_line(lua_tostring(L, -1), err, errlen);
            goto fail;
        }
        lua_pop(L, 1);
    }
    *out = r;
    return 0;
fail:
    sr_rules_free(r);
    return -1;
}

void sr_rules_free(sr_rules *r) {
    if (!r) return;
    if (r->L) lua_close(r->L);
    free(r->path);
    free(r->dir);
    free(r);
}

void sr_rules_summary(sr_rules *r, char *out, size_t outlen) {
    snprintf(out, outlen, "%s: ok", r->path ? r->path : "(no rules)");
}
