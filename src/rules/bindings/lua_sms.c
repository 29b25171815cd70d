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
        if (lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) > 0
            && strncmp(name, lua_tostring(L, -1), lua_rawlen(L, -1)) == 0)
            allowed = 1;
        if (!allowed)
            return luaL_error(L, "sms.env: '%s' is not readable from a handler (read it while the rules load, or list it "
                                 "in sms.config{ env = {...} })", name);
    }
    const char *v = getenv(name);
    if (v) lua_pushstring(L, v);
    else lua_pushboolean(L, 0);
    if (r->loading) {
        lua_pushvalue(L, -1);
        lua_setfield(L, seen, name);
    }
    if (!v) lua_pushnil(L);
    return 1;
}

static lua_Integer config_integer(lua_State *L, const char *key, lua_Integer min, lua_Integer max) {
    int isnum = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || v < min || v > max)
        luaL_error(L, "sms.config: '%s' must be an integer from %I to %I", key, min, max);
    return v;
}

static const char *config_string(lua_State *L, const char *key) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "sms.config: '%s' must be a string", key);
    return lua_tostring(L, -1);
}

/* sms.config{key = value, ...}: settings for the daemon. Only at load time;
 * an unknown key is an error naming it, so typos do not pass silently. */
static int l_sms_config(lua_State *L) {
    sr_rules *r = sr_rules_from(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!r->loading) return luaL_error(L, "sms.config may only be called while the rules load");
    sr_config *c = r->config;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "sms.config: keys must be strings");
        const char *key = lua_tostring(L, -2);
        if (strcmp(key, "listen") == 0) {
            sr_config_set_str(&c->listen, config_string(L, key));
        } else if (strcmp(key, "data") == 0) {
            sr_config_set_str(&c->data, config_string(L, key));
        } else if (strcmp(key, "log_level") == 0) {
            int lvl = sr_log_parse_level(config_string(L, key));
            if (lvl < 0) return luaL_error(L, "sms.config: log_level must be debug, info, warn or error");
            c->log_level = lvl;
        } else if (strcmp(key, "api_keys") == 0) {
            if (!lua_istable(L, -1)) return luaL_error(L, "sms.config: 'api_keys' must be a list of strings");
            lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, -1, i);
                if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0)
                    return luaL_error(L, "sms.config: 'api_keys' must be a list of non-empty strings");
                sr_config_add_api_key(c, lua_tostring(L, -1));
                lua_pop(L, 1);
            }
        } else if (strcmp(key, "admin_key") == 0) {
            sr_config_set_str(&c->admin_key, config_string(L, key));
        } else if (strcmp(key, "default_country") == 0) {
            const char *cc = config_string(L, key);
            char why[SR_PHONE_WHY_MAX];
            if (!*cc || sr_phone_country_check(cc, why, sizeof why) != 0)
                return luaL_error(L, "sms.config: 'default_country' %s", *cc ? why : "must not be empty");
            sr_config_set_str(&c->default_country, cc);
        } else if (strcmp(key, "public_url") == 0) {
            sr_config_set_str(&c->public_url, config_string(L, key));
        } else if (strcmp(key, "validity") == 0) {
            c->validity_s = (int)config_integer(L, key, 1, 259200);
        } else if (strcmp(key, "max_parts") == 0) {
            c->max_parts = (int)config_integer(L, key, 1, 255);
        } else if (strcmp(key, "max_header_bytes") == 0) {
            c->max_header_bytes = (size_t)config_integer(L, key, 1024, 1 << 24);
        } else if (strcmp(key, "max_body_bytes") == 0) {
            c->max_body_bytes = (size_t)config_integer(L, key, 1024, 1 << 30);
        } else if (strcmp(key, "max_connections") == 0) {
            c->max_connections = (int)config_integer(L, key, 1, 1000000);
        } else if (strcmp(key, "header_timeout_ms") == 0) {
            c->header_timeout_ms = (uint64_t)config_integer(L, key, 1, 3600000);
        } else if (strcmp(key, "body_timeout_ms") == 0) {
            c->body_timeout_ms = (uint64_t)config_integer(L, key, 1, 3600000);
        } else if (strcmp(key, "idle_timeout_ms") == 0) {
            c->idle_timeout_ms = (uint64_t)config_integer(L, key, 1, 86400000);
        } else if (strcmp(key, "request_timeout_ms") == 0) {
            c->request_timeout_ms = (uint64_t)config_integer(L, key, 1, 3600000);
        } else if (strcmp(key, "max_unsent_bytes") == 0) {
            c->max_unsent_bytes = (size_t)config_integer(L, key, 4096, 1 << 30);
        } else if (strcmp(key, "shutdown_timeout_ms") == 0) {
            c->shutdown_timeout_ms = (uint64_t)config_integer(L, key, 0, 600000);
        } else if (strcmp(key, "map_size") == 0) {
            c->map_size = (size_t)config_integer(L, key, 1 << 20, (lua_Integer)1 << 44);
        } else if (strcmp(key, "map_size_max") == 0) {
            c->map_size_max = (size_t)config_integer(L, key, 1 << 20, (lua_Integer)1 << 46);
        } else if (strcmp(key, "store_reserve") == 0) {
            c->store_reserve = (size_t)config_integer(L, key, 0, (lua_Integer)1 << 40);
        } else if (strcmp(key, "retry_base_ms") == 0) {
            c->retry_base_ms = (uint64_t)config_integer(L, key, 1, 3600000);
        } else if (strcmp(key, "retry_cap_ms") == 0) {
            c->retry_cap_ms = (uint64_t)config_integer(L, key, 1, 86400000);
        } else if (strcmp(key, "retry_after_max_s") == 0) {
            c->retry_after_max_s = (uint64_t)config_integer(L, key, 0, 86400);
        } else if (strcmp(key, "circuit_failures") == 0) {
            c->circuit_failures = (int)config_integer(L, key, 1, 1000);
        } else if (strcmp(key, "circuit_cooldown_ms") == 0) {
            c->circuit_cooldown_ms = (uint64_t)config_integer(L, key, 10, 3600000);
        } else if (strcmp(key, "instruction_budget") == 0) {
            c->instruction_budget = (uint64_t)config_integer(L, key, 1000, (lua_Integer)1 << 40);
        } else if (strcmp(key, "env") == 0) {
            if (!lua_istable(L, -1)) return luaL_error(L, "sms.config: 'env' must be a list of variable names");
            lua_newtable(L);
            lua_Integer n = (lua_Integer)lua_rawlen(L, -2);
            for (lua_Integer i = 1; i <= n; i++) {
                if (lua_rawgeti(L, -2, i) != LUA_TSTRING) return luaL_error(L, "sms.config: 'env' must be a list of variable names");
                lua_pushboolean(L, 1);
                lua_rawset(L, -3);
            }
            lua_setfield(L, LUA_REGISTRYINDEX, "smsrules.env.allow");
        } else if (strcmp(key, "env_prefix") == 0) {
            const char *prefix = config_string(L, key);
            if (strncmp(prefix, "SMSRULES_", strlen(prefix) < 9 ? strlen(prefix) : 9) == 0)
                return luaL_error(L, "sms.config: 'env_prefix' may not cover the daemon's own SMSRULES_ variables");
            lua_pushvalue(L, -1);
            lua_setfield(L, LUA_REGISTRYINDEX, "smsrules.env.prefix");
        } else if (strcmp(key, "time_limit_ms") == 0) {
            c->time_limit_ms = (uint64_t)config_integer(L, key, 10, 600000);
        } else if (strcmp(key, "max_event_bytes") == 0) {
            c->max_event_bytes = (size_t)config_integer(L, key, 1024, 1 << 20);
        } else if (strcmp(key, "dlr_orphan_after") == 0) {
            c->dlr_orphan_after_s = (uint64_t)config_integer(L, key, 1, 30 * 86400);
        } else if (strcmp(key, "dlr_park_max") == 0) {
            c->dlr_park_max = (uint64_t)config_integer(L, key, 1, 100000000);
        } else if (strcmp(key, "dlr_park_max_bytes") == 0) {
            c->dlr_park_max_bytes = (uint64_t)config_integer(L, key, 4096, (lua_Integer)1 << 40);
        } else if (strcmp(key, "poll_max_age") == 0) {
            c->poll_max_age_s = (uint64_t)config_integer(L, key, 10, 30 * 86400);
        } else if (strcmp(key, "inbound_retention") == 0) {
            c->inbound_retention_s = (uint64_t)config_integer(L, key, 3600, 3650 * 86400);
        } else if (strcmp(key, "memory_limit") == 0) {
            c->memory_limit = (size_t)config_integer(L, key, 1 << 20, (lua_Integer)1 << 40);
        } else {
            return luaL_error(L, "sms.config: unknown key '%s'", key);
        }
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
