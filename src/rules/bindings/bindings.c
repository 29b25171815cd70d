#include "rules/bindings/bindings.h"

void sr_lua_push_registry_table(lua_State *L, const void *key) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TTABLE) return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

/* Every table for a rules state; sms.crypto alone for the built-in adapters' state. */
static void bindings_open(lua_State *L, int rules) {
    if (!rules) {
        sr_lua_open_crypto(L);
        sr_lua_open_form(L);
        return;
    }
    sr_lua_open_sms(L);
    sr_lua_open_log(L);
    sr_lua_open_provider(L);
    sr_lua_open_actions(L);
    sr_lua_open_kv(L);
    sr_lua_open_http(L);
    sr_lua_open_ratelimit(L);
    sr_lua_open_template(L);
    sr_lua_open_crypto(L);
    sr_lua_open_form(L);
    sr_lua_open_phone(L);
    sr_lua_open_stats(L);
    sr_lua_open_inbound(L);
}

int sr_rules_load(sr_rules **out, const char *path, sr_config *config, char *err, size_t errlen) {
    return sr_rules_create(out, path, config, bindings_open, err, errlen);
}
