#include "rules.h"

#include <lauxlib.h>
#include <lua-cjson.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "message.h"
#include "template.h"

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

/* Embedded modules ("adapters.util" → lua/adapters/util.lua) load from the
 * binary; preload entries make them require-able everywhere. */
static int rules_load_embedded(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    char path[128];
    snprintf(path, sizeof path, "%s", name);
    for (char *p = path; *p; p++)
        if (*p == '.') *p = '/';
    size_t len;
    const char *src = sr_lua_embedded(path, &len);
    if (!src) return luaL_error(L, "no embedded module '%s'", name);
    char chunk[140];
    snprintf(chunk, sizeof chunk, "=%s", path);
    if (luaL_loadbufferx(L, src, len, chunk, "t") != LUA_OK) return lua_error(L);
    lua_call(L, 0, 1);
    return 1;
}

static int rules_forbidden_module(lua_State *L) {
    /* Level 2: the rule that called require (level 1 is require itself). */
    luaL_where(L, 2);
    lua_pushfstring(L, "module '%s' is not available to rules", lua_tostring(L, 1));
    lua_concat(L, 2);
    return lua_error(L);
}

/* os.time() and os.date(fmt) read "now" from sr_now_ms, the clock sms.now()
 * reads: the wall clock when serving, the virtual one under `smsrules test`.
 * With a time argument they are Lua's own (upvalue 1). */
static int rules_os_time(lua_State *L) {
    if (lua_isnoneornil(L, 1)) {
        lua_pushinteger(L, (lua_Integer)(sr_now_ms() / 1000));
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int rules_os_date(lua_State *L) {
    lua_settop(L, 2);
    if (lua_isnil(L, 1)) lua_pushliteral(L, "%c"), lua_replace(L, 1);
    if (lua_isnil(L, 2)) lua_pushinteger(L, (lua_Integer)(sr_now_ms() / 1000)), lua_replace(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

static void rules_sandbox(lua_State *L) {
    luaL_openlibs(L);

    /* os: only the clock functions. */
    lua_newtable(L);
    lua_getglobal(L, "os");
    const char *keep[] = {"clock", "difftime"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        lua_getfield(L, -1, keep[i]);
        lua_setfield(L, -3, keep[i]);
    }
    lua_getfield(L, -1, "time");
    lua_pushcclosure(L, rules_os_time, 1);
    lua_setfield(L, -3, "time");
    lua_getfield(L, -1, "date");
    lua_pushcclosure(L, rules_os_date, 1);
    lua_setfield(L, -3, "date");
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
    for (int i = 0; sr_lua_embedded_name(i); i++) {
        char mod[128];
        snprintf(mod, sizeof mod, "%s", sr_lua_embedded_name(i));
        for (char *p = mod; *p; p++)
            if (*p == '/') *p = '.';
        lua_pushcfunction(L, rules_load_embedded);
        lua_setfield(L, -2, mod);
    }
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

int sr_rules_call(sr_rules *r, int nargs, int nresults, char *err, size_t errlen) {
    lua_State *L = r->L;
    int base = lua_gettop(L) - nargs; /* the function's index */
    lua_pushcfunction(L, rules_traceback);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nresults, base);
    if (rc != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        rules_first_line(msg ? msg : "error", err, errlen);
        sr_warn("rule error", "error", err, "traceback", msg ? msg : "");
        lua_settop(L, base - 1);
        return -1;
    }
    lua_remove(L, base);
    return 0;
}

int sr_rules_load(sr_rules **out, const char *path, sr_config *config, char *err, size_t errlen) {
    *out = NULL;
    sr_rules *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->config = config;
    r->refs = 1;
    r->route_ref = LUA_NOREF;
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
    sr_lua_open_provider(L);
    sr_lua_open_actions(L);
    sr_lua_open_kv(L);
    sr_lua_open_http(L);
    sr_lua_open_ratelimit(L);
    sr_lua_open_template(L);
    sr_lua_open_crypto(L);
    sr_lua_open_phone(L);
    sr_lua_open_inbound(L); /* after actions: sms.reply uses sms.send */
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

sr_provider *sr_rules_provider(sr_rules *r, const char *name) {
    for (int i = 0; i < r->provider_count; i++)
        if (strcmp(r->providers[i].name, name) == 0) return &r->providers[i];
    return NULL;
}

sr_rules *sr_rules_retain(sr_rules *r) {
    if (r) r->refs++;
    return r;
}

void sr_rules_release(sr_rules *r) {
    if (r && --r->refs == 0) sr_rules_free(r);
}

const struct sr_template *sr_rules_template_find(sr_rules *r, const char *name) {
    for (int i = 0; i < r->template_count; i++)
        if (strcmp(r->templates[i].name, name) == 0) return r->templates[i].tpl;
    return NULL;
}

void sr_rules_free(sr_rules *r) {
    if (!r) return;
    sr_buf_free(&r->render_buf);
    for (int i = 0; i < r->template_count; i++) {
        free(r->templates[i].name);
        sr_template_free(r->templates[i].tpl);
    }
    for (int i = 0; i < r->provider_count; i++) {
        free(r->providers[i].name);
        free(r->providers[i].adapter);
        free(r->providers[i].webhook_path_secret);
        free(r->providers[i].webhook_basic_auth);
    }
    if (r->L) lua_close(r->L);
    free(r->path);
    free(r->dir);
    free(r);
}

void sr_rules_summary(sr_rules *r, char *out, size_t outlen) {
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_printf(&b, "%s: ok; %d provider%s", r->path ? r->path : "(no rules)", r->provider_count,
                  r->provider_count == 1 ? "" : "s");
    for (int i = 0; i < r->provider_count; i++)
        sr_buf_printf(&b, "%s%s (%s)", i ? ", " : ": ", r->providers[i].name, r->providers[i].adapter);
    sr_buf_printf(&b, "; %d template%s", r->template_count, r->template_count == 1 ? "" : "s");
    for (int i = 0; i < r->template_count; i++) {
        const sr_template *t = r->templates[i].tpl;
        sr_buf_printf(&b, "%s%s(", i ? ", " : ": ", r->templates[i].name);
        for (int v = 0; v < sr_template_var_count(t); v++)
            sr_buf_printf(&b, "%s%s", v ? " " : "", sr_template_var(t, v));
        sr_buf_putc(&b, ')');
    }
    /* Handlers: the events, in name order (the registry table has none). */
    lua_State *L = r->L;
    lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.events");
    int events = 0;
    sr_buf names;
    sr_buf_init(&names);
    if (lua_istable(L, -1)) {
        lua_newtable(L);
        lua_pushnil(L);
        while (lua_next(L, -3)) {
            lua_pop(L, 1);
            lua_pushvalue(L, -1);
            lua_rawseti(L, -3, ++events);
        }
        /* Rules may have replaced the global `table`: sort only with a real one. */
        lua_getglobal(L, "table");
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "sort");
            lua_pushvalue(L, -3);
            if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
        }
        lua_pop(L, 1); /* table */
        for (int i = 1; i <= events; i++) {
            lua_rawgeti(L, -1, i);
            sr_buf_printf(&names, "%s%s", i > 1 ? ", " : ": ", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        lua_pop(L, 1); /* the name list */
    }
    lua_pop(L, 1);
    sr_buf_printf(&b, "; %d event handler%s%s", events, events == 1 ? "" : "s", names.len ? names.data : "");
    lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.on_inbound");
    if (lua_isfunction(L, -1)) sr_buf_puts(&b, "; sms.on_inbound defined");
    lua_pop(L, 1);
    if (r->route_ref != LUA_NOREF) sr_buf_puts(&b, "; sms.route defined");
    sr_buf_free(&names);
    snprintf(out, outlen, "%s", sr_buf_cstr(&b));
    sr_buf_free(&b);
}
