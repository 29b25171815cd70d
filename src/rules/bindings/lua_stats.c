/* lua_stats: sms.stats(provider[, country]) → the live route quality of a
 * provider (route_stats.h), one table per window:
 *
 *   local s = sms.stats("budget", "84")["15m"]
 *   if s.delivered_ratio and s.delivered_ratio < 0.8 then ... end
 *
 * Does not yield and reads no store: it is cheap enough for sms.route. The
 * tables are fresh plain tables the rule may keep or change. country: a
 * calling code ("84", "+84" or 84), "other" for the countries not tracked on
 * their own, or nil for all countries of the provider. Figures not measured
 * (no final report, nothing delivered, no latency) are nil. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "model/message.h"
#include "model/route_stats.h"
#include "rules/host.h"
#include "rules/rules.h"
#include "rules/bindings/bindings.h"

static void stats_set_int(lua_State *L, const char *name, uint64_t v) {
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, name);
}

/* Sets t[name] = v, or leaves it nil when v is negative (not measured). */
static void stats_set_num(lua_State *L, const char *name, double v) {
    if (v < 0) return;
    lua_pushnumber(L, v);
    lua_setfield(L, -2, name);
}

static void stats_push_figures(lua_State *L, const sr_route_figures *f) {
    lua_createtable(L, 0, 16);
    stats_set_int(L, "attempts", f->attempts);
    stats_set_int(L, "accepted", f->accepted);
    lua_createtable(L, 0, 4);
    stats_set_int(L, "retryable", f->errors[SR_RS_ERR_RETRYABLE]);
    stats_set_int(L, "permanent_message", f->errors[SR_RS_ERR_PERMANENT_MESSAGE]);
    stats_set_int(L, "permanent_provider", f->errors[SR_RS_ERR_PERMANENT_PROVIDER]);
    stats_set_int(L, "timeout", f->errors[SR_RS_ERR_TIMEOUT]);
    lua_setfield(L, -2, "errors");
    stats_set_int(L, "delivered", f->reports[SR_RS_DELIVERED]);
    stats_set_int(L, "undelivered", f->reports[SR_RS_UNDELIVERED]);
    stats_set_int(L, "expired", f->reports[SR_RS_EXPIRED]);
    stats_set_int(L, "rejected", f->reports[SR_RS_REJECTED]);
    stats_set_int(L, "pending", f->pending);
    stats_set_num(L, "delivered_ratio", f->delivered_ratio);
    lua_createtable(L, 0, 2);
    stats_set_num(L, "p50", f->report_latency_p50_ms);
    stats_set_num(L, "p95", f->report_latency_p95_ms);
    lua_setfield(L, -2, "report_latency_ms");
    lua_createtable(L, 0, 2);
    stats_set_num(L, "p50", f->send_latency_p50_ms);
    stats_set_num(L, "p95", f->send_latency_p95_ms);
    lua_setfield(L, -2, "send_latency_ms");
    lua_pushnumber(L, f->cost_total);
    lua_setfield(L, -2, "cost_total");
    stats_set_num(L, "cost_per_delivered", f->cost_per_delivered);
}

/* The country argument: -1 (all), 0 ("other") or a calling code. */
static int stats_country_arg(lua_State *L, int arg) {
    if (lua_isnoneornil(L, arg)) return -1;
    if (lua_type(L, arg) == LUA_TNUMBER) {
        lua_Integer c = luaL_checkinteger(L, arg);
        luaL_argcheck(L, c >= 1 && c <= 999, arg, "a country calling code is 1 to 999");
        return (int)c;
    }
    size_t len;
    const char *s = luaL_checklstring(L, arg, &len);
    if (strcmp(s, "other") == 0) return 0;
    if (len && s[0] == '+') s++, len--;
    luaL_argcheck(L, len >= 1 && len <= 3 && strspn(s, "0123456789") == len && s[0] != '0', arg,
                  "a country calling code (\"84\", \"+84\") or \"other\"");
    return atoi(s);
}

static int l_stats(lua_State *L) {
    const char *provider = luaL_checkstring(L, 1);
    int country = stats_country_arg(L, 2);
    sr_rules *r = sr_rules_from(L);
    /* A provider the rules do not declare is a typo, not a provider without traffic. */
    if (r && r->provider_count > 0 && !sr_rules_provider(r, provider))
        return luaL_argerror(L, 1, lua_pushfstring(L, "unknown provider '%s'", provider));
    int64_t now = sr_now_ms();
    lua_createtable(L, 0, SR_ROUTE_STATS_WINDOWS);
    for (int w = 0; w < SR_ROUTE_STATS_WINDOWS; w++) {
        sr_route_figures f;
        sr_route_stats_get(sr_rules_route_stats(r), provider, country, w, now, &f);
        stats_push_figures(L, &f);
        lua_setfield(L, -2, sr_route_stats_window_names[w]);
    }
    return 1;
}

void sr_lua_open_stats(lua_State *L) {
    lua_pushcfunction(L, l_stats);
    lua_setfield(L, -2, "stats");
}
