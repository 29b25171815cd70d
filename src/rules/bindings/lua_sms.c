/* lua_sms: the `sms` table's own functions — sms.env and sms.config. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "codec/phone.h"
#include "rules/rules.h"
#include "rules/bindings/bindings.h"

/* The daemon's own secrets: never handed to rules. */
static const char *const env_daemon_secrets[] = {"SMSRULES_API_KEYS", "SMSRULES_ADMIN_KEY", NULL};

/* sms.env(name) → the environment variable's value, or nil. While the rules
 * load, any name but the daemon's own secrets; what was read is remembered.
 * From handlers, only those remembered values and the names the operator
 * allows with sms.config{ env = {...}, env_prefix = "..." }: a snippet
 * pasted into a handler cannot walk the environment. */
static int l_sms_env(lua_State *L) {
    sr_rules *r = sr_rules_from(L);
    const char *name = luaL_checkstring(L, 1);
    for (int i = 0; env_daemon_secrets[i]; i++)
        if (strcmp(name, env_daemon_secrets[i]) == 0) {
            lua_pushnil(L);
            return 1;
        }
    lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.env");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "smsrules.env");
    }
    int seen = lua_gettop(L);
    if (!r->loading) {
        if (lua_getfield(L, seen, name) != LUA_TNIL) {
            if (!lua_toboolean(L, -1)) lua_pushnil(L);
            return 1;
        }
        int allowed = 0;
        lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.env.allow");
        if (lua_istable(L, -1)) allowed = lua_getfield(L, -1, name) != LUA_TNIL;
        lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.env.prefix");
        if (lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) > 0 &&
            strncmp(name, lua_tostring(L, -1), lua_rawlen(L, -1)) == 0)
            allowed = 1;
        if (!allowed)
            return luaL_error(L,
                              "sms.env: '%s' is not readable from a handler (read it while the rules load, or list it "
                              "in sms.config{ env = {...} })",
                              name);
    }
    const char *v = getenv(name);
    if (v) lua_pushstring(L, v);
    else
        lua_pushboolean(L, 0);
    if (r->loading) {
        lua_pushvalue(L, -1);
        lua_setfield(L, seen, name);
    }
    if (!v) lua_pushnil(L);
    return 1;
}

/* The integer value at the top for key k, within its limits; raises otherwise. */
static int64_t config_integer(lua_State *L, const sr_config_key *k) {
    int isnum = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || v < k->min || v > k->max)
        luaL_error(L, "sms.config: '%s' must be an integer from %I to %I", k->name, (lua_Integer)k->min,
                   (lua_Integer)k->max);
    return (int64_t)v;
}

static const char *config_string(lua_State *L, const char *key) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "sms.config: '%s' must be a string", key);
    return lua_tostring(L, -1);
}

/* api_keys: a list of non-empty strings, added to the keys already there. */
static void config_key_list(lua_State *L, sr_config *c) {
    if (!lua_istable(L, -1)) luaL_error(L, "sms.config: 'api_keys' must be a list of strings");
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0)
            luaL_error(L, "sms.config: 'api_keys' must be a list of non-empty strings");
        sr_config_add_api_key(c, lua_tostring(L, -1));
        lua_pop(L, 1);
    }
}

/* env: the names handlers may read with sms.env, kept in the rules state's registry. */
static void config_env_names(lua_State *L) {
    if (!lua_istable(L, -1)) luaL_error(L, "sms.config: 'env' must be a list of variable names");
    lua_newtable(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -2);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -2, i) != LUA_TSTRING) luaL_error(L, "sms.config: 'env' must be a list of variable names");
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, "smsrules.env.allow");
}

/* env_prefix: handlers may read the variables it starts, never the daemon's own. */
static void config_env_prefix(lua_State *L) {
    const char *prefix = config_string(L, "env_prefix");
    if (strncmp(prefix, "SMSRULES_", strlen(prefix) < 9 ? strlen(prefix) : 9) == 0)
        luaL_error(L, "sms.config: 'env_prefix' may not cover the daemon's own SMSRULES_ variables");
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "smsrules.env.prefix");
}

/* Sets key k from the value at the top of the stack, by the type its row in sr_config_keys gives; raises when
 * the value does not fit. */
static void config_set(lua_State *L, sr_config *c, const sr_config_key *k) {
    switch (k->type) {
    case SR_CONFIG_INT: sr_config_set_int(c, k, config_integer(L, k)); break;
    case SR_CONFIG_STRING: {
        const char *v = config_string(L, k->name);
        char why[512];
        if (sr_config_check_string(k, v, why, sizeof why) != 0) luaL_error(L, "sms.config: '%s' %s", k->name, why);
        sr_config_set_str(sr_config_str_slot(c, k), v);
        break;
    }
    case SR_CONFIG_LOG_LEVEL: {
        int lvl = sr_log_parse_level(config_string(L, k->name));
        if (lvl < 0) luaL_error(L, "sms.config: log_level must be debug, info, warn or error");
        sr_config_set_int(c, k, lvl);
        break;
    }
    case SR_CONFIG_COUNTRY: {
        const char *cc = config_string(L, k->name);
        char why[SR_PHONE_WHY_MAX];
        if (!*cc || sr_phone_country_check(cc, why, sizeof why) != 0)
            luaL_error(L, "sms.config: '%s' %s", k->name, *cc ? why : "must not be empty");
        sr_config_set_str(sr_config_str_slot(c, k), cc);
        break;
    }
    case SR_CONFIG_KEY_LIST: config_key_list(L, c); break;
    case SR_CONFIG_NAME_LIST: config_env_names(L); break;
    case SR_CONFIG_PREFIX: config_env_prefix(L); break;
    }
}

/* cluster.urls given as a list (at the top of the stack): replaced by the comma-separated string the flat key
 * takes. */
static void config_join_urls(lua_State *L) {
    int t = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, t);
    if (n == 0) luaL_error(L, "sms.config: 'cluster.urls' must be a string or a non-empty list of strings");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, ',');
        if (lua_rawgeti(L, t, i) != LUA_TSTRING)
            luaL_error(L, "sms.config: 'cluster.urls' must be a string or a non-empty list of strings");
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_replace(L, t);
}

/* cluster = { urls = "nats://h:4222,..." or {...}, stream = ..., replicas = ..., node = ... } (at the top of the
 * stack): the nested form of the flat keys cluster, cluster_stream, cluster_replicas and node, each set and
 * checked by its own row. */
static void config_cluster_table(lua_State *L, sr_config *c) {
    static const char *const fields[][2] = {{"urls", "cluster"},
                                            {"stream", "cluster_stream"},
                                            {"replicas", "cluster_replicas"},
                                            {"node", "node"},
                                            {"node_timeout_ms", "cluster_node_timeout_ms"},
                                            {"retention_s", "cluster_retention_s"}};
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        const char *key = NULL;
        for (size_t i = 0; i < sizeof fields / sizeof fields[0] && lua_type(L, -2) == LUA_TSTRING; i++)
            if (strcmp(lua_tostring(L, -2), fields[i][0]) == 0) key = fields[i][1];
        if (!key && lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "sms.config: 'cluster' as a table takes the fields urls, stream, replicas, node, "
                          "node_timeout_ms and retention_s");
        if (!key)
            luaL_error(L,
                       "sms.config: 'cluster' as a table takes urls, stream, replicas, node, node_timeout_ms and "
                       "retention_s; not '%s'",
                       lua_tostring(L, -2));
        if (strcmp(key, "cluster") == 0 && lua_istable(L, -1)) config_join_urls(L);
        config_set(L, c, sr_config_key_find(key));
        lua_pop(L, 1);
    }
}

/* sms.config{key = value, ...}: settings for the daemon, one row each of sr_config_keys (core/config.c). Only at
 * load time; an unknown key is an error naming it, so typos do not pass silently. */
static int l_sms_config(lua_State *L) {
    sr_rules *r = sr_rules_from(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!r->loading) return luaL_error(L, "sms.config may only be called while the rules load");
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "sms.config: keys must be strings");
        const char *name = lua_tostring(L, -2);
        const sr_config_key *k = sr_config_key_find(name);
        if (!k) return luaL_error(L, "sms.config: unknown key '%s'", name);
        if (strcmp(name, "cluster") == 0 && lua_istable(L, -1)) config_cluster_table(L, r->config);
        else
            config_set(L, r->config, k);
        lua_pop(L, 1);
    }
    sr_rules_budget_update(r);
    return 0;
}

void sr_lua_open_sms(lua_State *L) {
    lua_pushcfunction(L, l_sms_env);
    lua_setfield(L, -2, "env");
    lua_pushcfunction(L, l_sms_config);
    lua_setfield(L, -2, "config");
}
