/* lua_provider: sms.provider(name, {...}) and sms.route(fn) — declaring the
 * providers (adapter, credentials, limits) and the routing function. Both
 * only while the rules load. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules.h"
#include "core/buf.h"
#include "rules/bindings/bindings.h"

/* Options every adapter takes; adapters may list more in `adapter.options`. */
static const char *const provider_common_options[] = {"adapter",
                                                      "url",
                                                      "api_key",
                                                      "sender",
                                                      "rate",
                                                      "burst",
                                                      "concurrency",
                                                      "timeout_ms",
                                                      "max_attempts",
                                                      "cost",
                                                      "poll",
                                                      "batch_size",
                                                      "auth_header",
                                                      "webhook_path_secret",
                                                      "webhook_basic_auth",
                                                      NULL};

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

/* What sms.provider needs to know of an adapter. */
typedef struct provider_adapter_info {
    int has_send;   /* build_send and parse_send are functions */
    int has_poll;   /* build_poll and parse_poll are functions */
    int batch_size; /* adapter.batch_size, at least 1 */
    int option_count;
    char options[32][64]; /* adapter.options */
} provider_adapter_info;

/* Reads the info of the adapter table at idx (in its own state). */
static void provider_read_info(lua_State *L, int idx, provider_adapter_info *info) {
    idx = lua_absindex(L, idx);
    lua_getfield(L, idx, "build_send");
    lua_getfield(L, idx, "parse_send");
    info->has_send = lua_isfunction(L, -1) && lua_isfunction(L, -2);
    lua_getfield(L, idx, "build_poll");
    lua_getfield(L, idx, "parse_poll");
    info->has_poll = lua_isfunction(L, -1) && lua_isfunction(L, -2);
    lua_pop(L, 4);
    info->batch_size = 1;
    lua_getfield(L, idx, "batch_size");
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 1) info->batch_size = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, idx, "options");
    if (lua_istable(L, -1)) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= n && info->option_count < 32; i++) {
            lua_rawgeti(L, -1, i);
            if (lua_type(L, -1) == LUA_TSTRING)
                sr_str_copy(info->options[info->option_count++], sizeof info->options[0], lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* Copies the value at idx of from (plain data: strings, numbers, booleans
 * and tables of them) onto to's stack. Reads from raw; raises in to. */
static void provider_copy_value(lua_State *from, int idx, lua_State *to, int depth) {
    idx = lua_absindex(from, idx);
    switch (lua_type(from, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *v = lua_tolstring(from, idx, &len);
        lua_pushlstring(to, v, len);
        break;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(from, idx)) lua_pushinteger(to, lua_tointeger(from, idx));
        else
            lua_pushnumber(to, lua_tonumber(from, idx));
        break;
    case LUA_TBOOLEAN: lua_pushboolean(to, lua_toboolean(from, idx)); break;
    case LUA_TTABLE:
        if (depth > 8) luaL_error(to, "sms.provider: options nest too deep");
        luaL_checkstack(to, 4, "options nest too deep");
        if (!lua_checkstack(from, 4)) luaL_error(to, "sms.provider: options nest too deep");
        lua_newtable(to);
        lua_pushnil(from);
        while (lua_next(from, idx)) {
            provider_copy_value(from, -2, to, depth + 1);
            provider_copy_value(from, -1, to, depth + 1);
            lua_rawset(to, -3);
            lua_pop(from, 1);
        }
        break;
    default:
        luaL_error(to,
                   "sms.provider: options of a built-in adapter must be strings, numbers, booleans or tables, not %s",
                   luaL_typename(from, idx));
    }
}

/* A built-in adapter, in the adapters' own state. */
typedef struct provider_builtin {
    lua_State *rules_L; /* the options table is at index 2 of its stack */
    const char *adapter;
    const char *name;
    provider_adapter_info *info;
    int adapter_ref, cfg_ref;
} provider_builtin;

/* Runs in the adapters' state under sr_rules_protected: loads the adapter
 * (once per state), reads its info and copies the provider's options into
 * the cfg table that only this provider's adapter is handed. */
static int provider_builtin_body(lua_State *A) {
    provider_builtin *pb = lua_touserdata(A, 1);
    char path[96];
    snprintf(path, sizeof path, "adapters/%s", pb->adapter);
    lua_getfield(A, LUA_REGISTRYINDEX, "smsrules.builtin");
    if (!lua_istable(A, -1)) {
        lua_pop(A, 1);
        lua_newtable(A);
        lua_pushvalue(A, -1);
        lua_setfield(A, LUA_REGISTRYINDEX, "smsrules.builtin");
    }
    int cache = lua_gettop(A);
    if (lua_getfield(A, cache, pb->adapter) != LUA_TTABLE) {
        lua_pop(A, 1);
        size_t len = 0;
        const char *src = strchr(pb->adapter, '/') || strchr(pb->adapter, '.') ? NULL : sr_lua_embedded(path, &len);
        if (!src) return luaL_error(A, "sms.provider: unknown adapter '%s'", pb->adapter);
        char chunk[100];
        snprintf(chunk, sizeof chunk, "=%s", path);
        if (luaL_loadbufferx(A, src, len, chunk, "t") != LUA_OK) return lua_error(A);
        lua_call(A, 0, 1);
        if (!lua_istable(A, -1)) return luaL_error(A, "adapter '%s' did not return a table", pb->adapter);
        lua_pushvalue(A, -1);
        lua_setfield(A, cache, pb->adapter);
    }
    int adapter_idx = lua_gettop(A);
    provider_read_info(A, adapter_idx, pb->info);
    provider_copy_value(pb->rules_L, 2, A, 0);
    lua_pushstring(A, pb->name);
    lua_setfield(A, -2, "name");
    pb->cfg_ref = luaL_ref(A, LUA_REGISTRYINDEX);
    lua_pushvalue(A, adapter_idx);
    pb->adapter_ref = luaL_ref(A, LUA_REGISTRYINDEX);
    return 0;
}

/* Raises unless a provider called name may be declared now: while the rules load, a valid name, not yet
 * declared, room for one more. Pushes nothing. */
static void provider_check_name(lua_State *L, sr_rules *r, const char *name) {
    if (!r->loading) luaL_error(L, "sms.provider may only be called while the rules load");
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > 64 ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != nlen)
        luaL_error(L, "sms.provider: name '%s' must be 1-64 letters, digits, '_' or '-'", name);
    if (sr_rules_provider(r, name)) luaL_error(L, "sms.provider: '%s' is declared twice", name);
    if (r->provider_count == SR_MAX_PROVIDERS) luaL_error(L, "sms.provider: too many providers");
}

/* Finds the adapter called adapter for provider name (options at index 2) and reads its info. A custom
 * adapter (sms.adapter) lives in the rules' state; a built-in one in the adapters' own, out of the rules'
 * reach, where its cfg table is made too (*cfg_ref; LUA_NOREF for a custom one). Returns the adapter's state
 * and sets *adapter_ref; raises on an unknown adapter. Leaves the stack at the name and the options (2). */
static lua_State *provider_find_adapter(lua_State *L, sr_rules *r, const char *name, const char *adapter,
                                        provider_adapter_info *info, int *adapter_ref, int *cfg_ref) {
    lua_State *adapter_L = L;
    *adapter_ref = LUA_NOREF;
    *cfg_ref = LUA_NOREF;
    lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.adapters");
    if (lua_istable(L, -1) && lua_getfield(L, -1, adapter) == LUA_TTABLE) {
        provider_read_info(L, -1, info);
        *adapter_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        lua_State *A = sr_rules_adapter_state(r);
        if (!A) luaL_error(L, "sms.provider: the built-in adapters are not available");
        provider_builtin pb = {.rules_L = L, .adapter = adapter, .name = name, .info = info};
        char err[300];
        lua_settop(L, 2);
        if (sr_rules_protected(r, A, provider_builtin_body, &pb, err, sizeof err) != 0) luaL_error(L, "%s", err);
        adapter_L = A;
        *adapter_ref = pb.adapter_ref;
        *cfg_ref = pb.cfg_ref;
    }
    lua_settop(L, 2);
    return adapter_L;
}

/* Unknown options (of the table at index 2) are errors, so typos do not pass silently. Pushes nothing. */
static void provider_check_options(lua_State *L, const char *name, const provider_adapter_info *info) {
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "sms.provider: option names must be strings");
        const char *key = lua_tostring(L, -1);
        int known = 0;
        for (int i = 0; provider_common_options[i]; i++)
            if (strcmp(key, provider_common_options[i]) == 0) known = 1;
        for (int i = 0; i < info->option_count && !known; i++)
            if (strcmp(key, info->options[i]) == 0) known = 1;
        if (!known) luaL_error(L, "sms.provider: '%s': unknown option '%s'", name, key);
    }
}

/* Reads the limits and poll of p from the options at index 2; raises on a bad one. Pushes nothing. */
static void provider_read_limits(lua_State *L, sr_provider *p, const char *name, const char *adapter,
                                 const provider_adapter_info *info) {
    p->rate_per_s = provider_number(L, 2, "rate", 0, 0, 1e6);
    p->burst = provider_number(L, 2, "burst", p->rate_per_s > 0 ? (p->rate_per_s / 10 > 1 ? p->rate_per_s / 10 : 1) : 0,
                               0, 1e6);
    p->concurrency = (int)provider_number(L, 2, "concurrency", 16, 1, 4096);
    p->timeout_ms = (long)provider_number(L, 2, "timeout_ms", 10000, 10, 600000);
    p->max_attempts = (int)provider_number(L, 2, "max_attempts", 5, 1, 100);
    p->cost = provider_number(L, 2, "cost", 0, 0, 1e9);
    lua_getfield(L, 2, "poll");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
        luaL_error(L, "sms.provider: '%s': poll must be true or false", name);
    p->poll = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (p->poll && !info->has_poll)
        luaL_error(L, "sms.provider: '%s': adapter '%s' cannot poll statuses", name, adapter);
}

/* Reads webhook_path_secret and webhook_basic_auth of p (strdup'd into it) from the options at index 2;
 * raises on a bad one. Pushes nothing. */
/* Checks the webhook secrets of the options (index 2) and points out[0] (path secret) and out[1]
 * (basic auth) at them, or NULL: strings the options table keeps alive for the call. Copies are
 * made last, once nothing can raise, so a refused declaration leaks nothing. */
static void provider_read_secrets(lua_State *L, const char *name, const char *out[2]) {
    static const char *const secrets[] = {"webhook_path_secret", "webhook_basic_auth"};
    for (int i = 0; i < 2; i++) {
        out[i] = NULL;
        lua_getfield(L, 2, secrets[i]);
        if (!lua_isnil(L, -1)) {
            size_t len = 0;
            const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
            if (!v || len < 8 || len > 200 ||
                (i == 0 && strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != len) ||
                (i == 1 && !strchr(v, ':')))
                luaL_error(L,
                           i == 0
                               ? "sms.provider: '%s': webhook_path_secret must be 8-200 letters, digits, '_' or '-'"
                               : "sms.provider: '%s': webhook_basic_auth must be \"user:password\" (8-200 characters)",
                           name);
            out[i] = v;
        }
        lua_pop(L, 1);
    }
}

/* The provider's own copies of its strings; on a failed copy frees them all, clears them, and returns -1. */
static int provider_copy_strings(sr_provider *p, const char *name, const char *adapter, const char *secrets[2]) {
    p->name = strdup(name);
    p->adapter = strdup(adapter);
    p->webhook_path_secret = secrets[0] ? strdup(secrets[0]) : NULL;
    p->webhook_basic_auth = secrets[1] ? strdup(secrets[1]) : NULL;
    if (p->name && p->adapter && (!secrets[0] || p->webhook_path_secret) && (!secrets[1] || p->webhook_basic_auth))
        return 0;
    free(p->name);
    free(p->adapter);
    free(p->webhook_path_secret);
    free(p->webhook_basic_auth);
    p->name = p->adapter = p->webhook_path_secret = p->webhook_basic_auth = NULL;
    return -1;
}

/* Whether the webhooks of a provider with a built-in adapter may be read in C (rules/webhook_generic.h: the
 * generic adapter's, which mock uses too), with a copy of cfg.webhook_secret (options at index 2). Not when
 * the secret is not a string: the Lua raises on that. Returns -1 when a copy failed. */
static int provider_native_webhooks(lua_State *L, sr_provider *p, const char *adapter, int builtin) {
    if (!builtin || (strcmp(adapter, "generic") != 0 && strcmp(adapter, "mock") != 0)) return 0;
    lua_pushliteral(L, "webhook_secret");
    int type = lua_rawget(L, 2);
    size_t len = 0;
    const char *v = type == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (type == LUA_TNIL || (v && len == 0)) p->native_webhooks = 1;
    else if (v && (p->webhook_secret = malloc(len + 1)) != NULL) {
        memcpy(p->webhook_secret, v, len + 1);
        p->webhook_secret_len = len;
        p->native_webhooks = 1;
    }
    lua_pop(L, 1);
    return v && len && !p->webhook_secret ? -1 : 0;
}

/* The cfg table handed to a custom adapter: a copy of the options (index 2) plus name, in the registry.
 * Returns its reference; the stack is as before. */
static int provider_cfg_ref(lua_State *L, const char *name) {
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, -4);
    }
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int l_sms_provider(lua_State *L) {
    sr_rules *r = sr_rules_from(L);
    const char *name = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    provider_check_name(L, r, name);

    lua_getfield(L, 2, "adapter");
    if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "sms.provider: '%s' needs adapter = \"...\"", name);
    char adapter_name[72]; /* a copy: the string leaves the stack below */
    sr_str_copy(adapter_name, sizeof adapter_name, lua_tostring(L, -1));
    const char *adapter = adapter_name;
    provider_adapter_info info;
    memset(&info, 0, sizeof info);
    int adapter_ref, cfg_ref;
    lua_State *adapter_L = provider_find_adapter(L, r, name, adapter, &info, &adapter_ref, &cfg_ref);
    if (!info.has_send) return luaL_error(L, "sms.provider: adapter '%s' lacks build_send/parse_send", adapter);
    provider_check_options(L, name, &info);

    sr_provider *p = &r->providers[r->provider_count];
    memset(p, 0, sizeof *p);
    provider_read_limits(L, p, name, adapter, &info);
    const char *secrets[2];
    provider_read_secrets(L, name, secrets);
    int adapter_batch = info.batch_size;
    p->batch_size = (int)provider_number(L, 2, "batch_size", adapter_batch, 1, 1000);
    if (p->batch_size > adapter_batch) p->batch_size = adapter_batch;

    /* A built-in adapter's cfg table was made in its own state. */
    if (adapter_L == L) cfg_ref = provider_cfg_ref(L, name);
    p->L = adapter_L;
    p->cfg_ref = cfg_ref;
    p->adapter_ref = adapter_ref;
    if (provider_copy_strings(p, name, adapter, secrets) != 0) return luaL_error(L, "out of memory");
    if (provider_native_webhooks(L, p, adapter, adapter_L != L) != 0) {
        free(p->name);
        free(p->adapter);
        free(p->webhook_path_secret);
        free(p->webhook_basic_auth);
        return luaL_error(L, "out of memory");
    }
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
