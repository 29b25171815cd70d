/* lua_provider: sms.provider(name, {...}) and sms.route(fn) — declaring the
 * providers (adapter, credentials, limits) and the routing function. Both
 * only while the rules load. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

/* Options every adapter takes; adapters may list more in `adapter.options`. */
static const char *const provider_common_options[] = {
    "adapter", "url", "api_key", "sender", "rate", "burst", "concurrency", "timeout_ms", "max_attempts",
    "cost", "poll", "batch_size", "auth_header", "webhook_path_secret", "webhook_basic_auth", NULL};

static double provider_number(lua_State *L, int opts, const char *key, double def, double min, double max) {
    lua_getfield(L, opts, key);
    double v = def;
    if (!lua_isnil(L, -1)) {
        int isnum = 0;
        v = lua_tonumberx(L, -1, &isnum);
        if (!isnum || v < min || v > max)
            luaL_error(L, "sms.provider: '%s' must be a number from %f to %f", key, min, max);
    }
    lua_pop(L, 1);
    return v;
}

/* Loads the adapter table named name: a custom one from sms.adapter, else a
 * built-in one. Leaves it on the stack; raises when unknown. */
static void provider_load_adapter(lua_State *L, const char *name) {
    lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.adapters");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, name);
        if (lua_istable(L, -1)) {
            lua_remove(L, -2);
            return;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    char path[96];
    snprintf(path, sizeof path, "adapters/%s", name);
    size_t len = 0;
    const char *src = strchr(name, '/') || strchr(name, '.') ? NULL : sr_lua_embedded(path, &len);
    if (!src) luaL_error(L, "sms.provider: unknown adapter '%s'", name);
    char chunk[100];
    snprintf(chunk, sizeof chunk, "=%s", path);
    if (luaL_loadbufferx(L, src, len, chunk, "t") != LUA_OK) lua_error(L);
    lua_call(L, 0, 1);
    if (!lua_istable(L, -1)) luaL_error(L, "adapter '%s' did not return a table", name);
}

static int l_sms_provider(lua_State *L) {
    sr_rules *r = sr_rules_from(L);
    const char *name = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!r->loading) return luaL_error(L, "sms.provider may only be called while the rules load");
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > 64 || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != nlen)
        return luaL_error(L, "sms.provider: name '%s' must be 1-64 letters, digits, '_' or '-'", name);
    if (sr_rules_provider(r, name)) return luaL_error(L, "sms.provider: '%s' is declared twice", name);
    if (r->provider_count == SR_MAX_PROVIDERS) return luaL_error(L, "sms.provider: too many providers");

    lua_getfield(L, 2, "adapter");
    if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "sms.provider: '%s' needs adapter = \"...\"", name);
    const char *adapter = lua_tostring(L, -1);
    provider_load_adapter(L, adapter); /* stack: ..., adapter name, adapter table */
    int adapter_idx = lua_gettop(L);
    lua_getfield(L, adapter_idx, "build_send");
    lua_getfield(L, adapter_idx, "parse_send");
    if (!lua_isfunction(L, -1) || !lua_isfunction(L, -2))
        return luaL_error(L, "sms.provider: adapter '%s' lacks build_send/parse_send", adapter);
    lua_pop(L, 2);

    /* Unknown options are errors, so typos do not pass silently. */
    lua_getfield(L, adapter_idx, "options");
    int extra_idx = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "sms.provider: option names must be strings");
        const char *key = lua_tostring(L, -1);
        int known = 0;
        for (int i = 0; provider_common_options[i]; i++)
            if (strcmp(key, provider_common_options[i]) == 0) known = 1;
        if (!known && lua_istable(L, extra_idx)) {
            lua_Integer n = (lua_Integer)lua_rawlen(L, extra_idx);
            for (lua_Integer i = 1; i <= n && !known; i++) {
                lua_rawgeti(L, extra_idx, i);
                if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), key) == 0) known = 1;
                lua_pop(L, 1);
            }
        }
        if (!known) return luaL_error(L, "sms.provider: '%s': unknown option '%s'", name, key);
    }
    lua_pop(L, 1);

    sr_provider *p = &r->providers[r->provider_count];
    memset(p, 0, sizeof *p);
    p->rate_per_s = provider_number(L, 2, "rate", 0, 0, 1e6);
    p->burst = provider_number(L, 2, "burst", p->rate_per_s > 0 ? (p->rate_per_s / 10 > 1 ? p->rate_per_s / 10 : 1) : 0,
                               0, 1e6);
    p->concurrency = (int)provider_number(L, 2, "concurrency", 16, 1, 4096);
    p->timeout_ms = (long)provider_number(L, 2, "timeout_ms", 10000, 10, 600000);
    p->max_attempts = (int)provider_number(L, 2, "max_attempts", 5, 1, 100);
    p->cost = provider_number(L, 2, "cost", 0, 0, 1e9);
    lua_getfield(L, 2, "poll");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) return luaL_error(L, "sms.provider: '%s': poll must be true or false", name);
    p->poll = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (p->poll) {
        lua_getfield(L, adapter_idx, "build_poll");
        lua_getfield(L, adapter_idx, "parse_poll");
        int can = lua_isfunction(L, -1) && lua_isfunction(L, -2);
        lua_pop(L, 2);
        if (!can) return luaL_error(L, "sms.provider: '%s': adapter '%s' cannot poll statuses", name, adapter);
    }
    static const char *const secrets[] = {"webhook_path_secret", "webhook_basic_auth"};
    for (int i = 0; i < 2; i++) {
        lua_getfield(L, 2, secrets[i]);
        if (!lua_isnil(L, -1)) {
            size_t len = 0;
            const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
            if (!v || len < 8 || len > 200 || (i == 0 && strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != len)
                || (i == 1 && !strchr(v, ':')))
                return luaL_error(L,
                                  i == 0 ? "sms.provider: '%s': webhook_path_secret must be 8-200 letters, digits, '_' or '-'"
                                         : "sms.provider: '%s': webhook_basic_auth must be \"user:password\" (8-200 characters)",
                                  name);
            char **slot = i == 0 ? &p->webhook_path_secret : &p->webhook_basic_auth;
            *slot = strdup(v);
            if (!*slot) return luaL_error(L, "out of memory");
        }
        lua_pop(L, 1);
    }
    int adapter_batch = 1;
    lua_getfield(L, adapter_idx, "batch_size");
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 1) adapter_batch = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    p->batch_size = (int)provider_number(L, 2, "batch_size", adapter_batch, 1, 1000);
    if (p->batch_size > adapter_batch) p->batch_size = adapter_batch;

    /* The cfg table handed to the adapter: a copy of the options plus name. */
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, -4);
    }
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    p->cfg_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, adapter_idx);
    p->adapter_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    p->name = strdup(name);
    p->adapter = strdup(adapter);
    if (!p->name || !p->adapter) return luaL_error(L, "out of memory");
    r->provider_count++;
    return 0;
}

/* sms.adapter(name, table): a custom provider adapter written in the rules
 * file, with the same interface as the built-in ones (build_send and
 * parse_send at least). Declare it before the providers that use it. */
static int l_sms_adapter(lua_State *L) {
    sr_rules *r = sr_rules_from(L);
    const char *name = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!r->loading) return luaL_error(L, "sms.adapter may only be called while the rules load");
    size_t n = strlen(name);
    if (n == 0 || n > 64 || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != n)
        return luaL_error(L, "sms.adapter: name '%s' must be 1-64 letters, digits, '_' or '-'", name);
    const char *fns[] = {"build_send", "parse_send"};
    for (int i = 0; i < 2; i++) {
        lua_getfield(L, 2, fns[i]);
        if (!lua_isfunction(L, -1)) return luaL_error(L, "sms.adapter '%s': %s must be a function", name, fns[i]);
        lua_pop(L, 1);
    }
    const char *optional[] = {"parse_status", "parse_inbound", "verify", "build_poll", "parse_poll"};
    for (int i = 0; i < 5; i++) {
        lua_getfield(L, 2, optional[i]);
        if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
            return luaL_error(L, "sms.adapter '%s': %s must be a function", name, optional[i]);
        lua_pop(L, 1);
    }
    lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.adapters");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "smsrules.adapters");
    }
    lua_getfield(L, -1, name);
    if (!lua_isnil(L, -1)) return luaL_error(L, "sms.adapter: '%s' is declared twice", name);
    lua_pop(L, 1);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, name);
    return 0;
}

/* sms.route(function(msg) return {"a", "b"} end) */
static int l_sms_route(lua_State *L) {
    sr_rules *r = sr_rules_from(L);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (!r->loading) return luaL_error(L, "sms.route may only be called while the rules load");
    if (r->route_ref != LUA_NOREF) return luaL_error(L, "sms.route is declared twice");
    lua_pushvalue(L, 1);
    r->route_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

void sr_lua_open_provider(lua_State *L) {
    lua_pushcfunction(L, l_sms_provider);
    lua_setfield(L, -2, "provider");
    lua_pushcfunction(L, l_sms_route);
    lua_setfield(L, -2, "route");
    lua_pushcfunction(L, l_sms_adapter);
    lua_setfield(L, -2, "adapter");
}
