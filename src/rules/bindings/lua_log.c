/* lua_log: sms.log.debug/info/warn/error(msg, fields) — structured log lines
 * from rules, through the same JSON logger as the core. */
#include <lauxlib.h>
#include <math.h>
#include <string.h>

#include "core/log.h"
#include "rules/rules.h"
#include "rules/bindings/bindings.h"

#define LOG_MAX_FIELDS 32

static int log_at(lua_State *L, sr_log_level level) {
    const char *msg = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    if (!sr_log_enabled(level)) return 0;
    lua_settop(L, 2);
    luaL_checkstack(L, LOG_MAX_FIELDS + 8, "too many log fields");
    const char *pairs[2 * LOG_MAX_FIELDS + 3];
    int n = 0;
    pairs[n++] = "source";
    pairs[n++] = "rules";
    if (lua_istable(L, 2)) {
        lua_pushnil(L);
        while (n < 2 * LOG_MAX_FIELDS && lua_next(L, 2)) {
            if (lua_type(L, -2) != LUA_TSTRING) {
                lua_pop(L, 1);
                continue;
            }
            int bare = lua_type(L, -1) == LUA_TNUMBER || lua_type(L, -1) == LUA_TBOOLEAN;
            lua_Number num = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
            if (!isfinite(num)) {
                /* JSON has no infinities or NaN ("inf", "-nan" would break the line): they go as strings. */
                lua_pushstring(L, isnan(num) ? "nan" : num > 0 ? "inf" : "-inf");
                bare = 0;
            } else {
                luaL_tolstring(L, -1, NULL);
            }
            if (bare) {
                lua_pushstring(L, SR_LOG_NUM);
                lua_insert(L, -2);
                lua_concat(L, 2);
            }
            /* Anchor the value string below the iteration pair (at index 3 up). */
            lua_insert(L, 3);
            lua_pop(L, 1);
            pairs[n++] = lua_tostring(L, -1); /* the key, anchored by the table */
            pairs[n++] = lua_tostring(L, 3);
        }
    }
    pairs[n] = NULL;
    sr_log_pairs(level, msg, pairs);
    return 0;
}

static int l_log_debug(lua_State *L) { return log_at(L, SR_LOG_DEBUG); }
static int l_log_info(lua_State *L) { return log_at(L, SR_LOG_INFO); }
static int l_log_warn(lua_State *L) { return log_at(L, SR_LOG_WARN); }
static int l_log_error(lua_State *L) { return log_at(L, SR_LOG_ERROR); }

void sr_lua_open_log(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"debug", l_log_debug}, {"info", l_log_info}, {"warn", l_log_warn}, {"error", l_log_error}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_setfield(L, -2, "log");
}
