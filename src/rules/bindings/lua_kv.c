/* lua_kv: sms.kv.get/set/incr/del — durable key-value state for rules, in
 * LMDB, with an optional TTL in seconds. Writes join the handler's store unit
 * (committed when it returns); reads see the handler's own pending writes.
 * Values are strings (numbers are stored as their text). */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "rules/host.h"
#include "rules/rules_exec.h"
#include "store/store.h"
#include "rules/bindings/bindings.h"

#define KV_MAX_KEY 256
#define KV_MAX_VALUE (64 * 1024)

static sr_invocation *kv_invocation(lua_State *L, const char *what) {
    sr_rules *r = sr_rules_from(L);
    sr_invocation *inv = sr_invocation_current(r);
    if (!inv || !sr_rules_store(r))
        luaL_error(L, "%s may only be called from a handler, not while the rules load", what);
    return inv;
}

static const char *kv_key(lua_State *L, size_t *len) {
    const char *k = luaL_checklstring(L, 1, len);
    if (*len == 0 || *len > KV_MAX_KEY) luaL_argerror(L, 1, "key must be 1-256 bytes");
    /* Keys starting with \x01 belong to the host (sms.ratelimit keeps its state there). */
    if (k[0] == '\x01') luaL_argerror(L, 1, "keys starting with \\x01 are reserved");
    return k;
}

/* The longest TTL: 10 years (of 365.25 days). Longer ones (1e17, math.huge) are clamped to it: in milliseconds
 * they would overflow the expiry time, which then lay in the past and the value was gone at once. */
#define KV_MAX_TTL_S 315576000.0

static int64_t kv_expiry(lua_State *L, int idx) {
    if (lua_isnoneornil(L, idx)) return 0;
    lua_Number ttl = luaL_checknumber(L, idx);
    /* Written so that NaN is refused too. */
    if (!(ttl > 0)) luaL_argerror(L, idx, "ttl must be a positive number of seconds");
    if (ttl > KV_MAX_TTL_S) ttl = KV_MAX_TTL_S;
    int64_t ms = (int64_t)(ttl * 1000);
    return sr_now_ms() + (ms > 0 ? ms : 1);
}

/* Overlay entries: "kv:<key>" → value string, or false when deleted, or
 * {delta} for pending increments. */
static void kv_overlay_key(lua_State *L, const char *k, size_t len) {
    lua_pushliteral(L, "kv:");
    lua_pushlstring(L, k, len);
    lua_concat(L, 2);
}

static int l_kv_get(lua_State *L) {
    sr_invocation *inv = kv_invocation(L, "sms.kv.get");
    sr_rules *r = sr_rules_from(L);
    size_t len;
    const char *k = kv_key(L, &len);
    sr_invocation_push_overlay(inv, L);
    kv_overlay_key(L, k, len);
    lua_rawget(L, -2);
    if (lua_type(L, -1) == LUA_TSTRING) return 1;
    if (lua_type(L, -1) == LUA_TBOOLEAN) {
        lua_pushnil(L);
        return 1;
    }
    lua_Integer pending = lua_istable(L, -1) ? (lua_rawgeti(L, -1, 1), lua_tointeger(L, -1)) : 0;
    sr_buf out;
    sr_buf_init(&out);
    int rc = sr_store_kv_get(sr_rules_store(r), k, len, sr_now_ms(), &out);
    if (rc == 0 && !pending) {
        lua_pushlstring(L, out.data ? out.data : "", out.len);
    } else if (rc == 0 || pending) {
        lua_Integer base = rc == 0 ? (lua_Integer)strtoll(sr_buf_cstr(&out), NULL, 10) : 0;
        lua_pushfstring(L, "%I", base + pending);
    } else {
        lua_pushnil(L);
    }
    sr_buf_free(&out);
    return 1;
}

static int l_kv_set(lua_State *L) {
    sr_invocation *inv = kv_invocation(L, "sms.kv.set");
    size_t len, vlen;
    const char *k = kv_key(L, &len);
    if (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER)
        return luaL_argerror(L, 2, "value must be a string or a number");
    const char *v = lua_tolstring(L, 2, &vlen);
    if (vlen > KV_MAX_VALUE) return luaL_argerror(L, 2, "value longer than 64 KiB");
    int64_t exp = kv_expiry(L, 3);
    sr_store_txn_kv_set(sr_invocation_unit(inv), k, len, v, vlen, exp);
    sr_invocation_push_overlay(inv, L);
    kv_overlay_key(L, k, len);
    lua_pushlstring(L, v, vlen);
    lua_rawset(L, -3);
    return 0;
}

static int l_kv_del(lua_State *L) {
    sr_invocation *inv = kv_invocation(L, "sms.kv.del");
    size_t len;
    const char *k = kv_key(L, &len);
    sr_store_txn_kv_del(sr_invocation_unit(inv), k, len);
    sr_invocation_push_overlay(inv, L);
    kv_overlay_key(L, k, len);
    lua_pushboolean(L, 0);
    lua_rawset(L, -3);
    return 0;
}

/* sms.kv.incr(key, delta=1, ttl) → the new value (an integer). The store
 * applies the increment atomically at commit, so concurrent handlers never
 * lose one; the value returned counts this handler's own pending ones. */
static int l_kv_incr(lua_State *L) {
    sr_invocation *inv = kv_invocation(L, "sms.kv.incr");
    size_t len;
    const char *k = kv_key(L, &len);
    lua_Integer delta = luaL_optinteger(L, 2, 1);
    int64_t exp = kv_expiry(L, 3);
    lua_settop(L, 3);
    sr_store_txn_kv_incr(sr_invocation_unit(inv), k, len, delta, exp);
    sr_invocation_push_overlay(inv, L); /* 4 */
    kv_overlay_key(L, k, len);          /* 5 */
    lua_pushvalue(L, 5);
    lua_rawget(L, 4); /* 6: the pending entry */
    if (lua_type(L, 6) == LUA_TSTRING || lua_type(L, 6) == LUA_TBOOLEAN) {
        /* set or deleted earlier in this handler: keep counting from that value */
        lua_Integer base = lua_type(L, 6) == LUA_TSTRING ? (lua_Integer)strtoll(lua_tostring(L, 6), NULL, 10) : 0;
        lua_pushvalue(L, 5);
        lua_pushfstring(L, "%I", base + delta);
        lua_rawset(L, 4);
        lua_pushinteger(L, base + delta);
        return 1;
    }
    lua_Integer pending = lua_istable(L, 6) ? (lua_rawgeti(L, 6, 1), lua_tointeger(L, -1)) : 0;
    lua_settop(L, 5);
    lua_createtable(L, 1, 0);
    lua_pushinteger(L, pending + delta);
    lua_rawseti(L, -2, 1);
    lua_rawset(L, 4);
    sr_rules *r = sr_rules_from(L);
    sr_buf out;
    sr_buf_init(&out);
    lua_Integer base = 0;
    if (sr_store_kv_get(sr_rules_store(r), k, len, sr_now_ms(), &out) == 0)
        base = (lua_Integer)strtoll(sr_buf_cstr(&out), NULL, 10);
    sr_buf_free(&out);
    lua_pushinteger(L, base + pending + delta);
    return 1;
}

void sr_lua_open_kv(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"get", l_kv_get}, {"set", l_kv_set}, {"del", l_kv_del}, {"incr", l_kv_incr}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_setfield(L, -2, "kv");
}
