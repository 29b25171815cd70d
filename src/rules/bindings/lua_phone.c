/* lua_phone: sms.phone(number [, default_country]) — what a phone number is,
 * read with the numbering plans of libphonenumber (src/codec/phone.h): its E.164
 * form, country, calling code, type, whether it is valid and possible, and
 * where the data has them its time zones, original carrier, location and
 * extension. Pure and quick: it does not yield and works outside handlers. */
#include <lauxlib.h>
#include <string.h>

#include "codec/phone.h"
#include "rules/rules.h"
#include "rules/bindings/bindings.h"

/* Pushes the '&'-joined zones as a list of strings. */
static void phone_push_zones(lua_State *L, const char *zones) {
    lua_newtable(L);
    lua_Integer i = 1;
    while (*zones) {
        size_t n = strcspn(zones, "&");
        lua_pushlstring(L, zones, n);
        lua_rawseti(L, -2, i++);
        zones += n;
        if (*zones == '&') zones++;
    }
}

/* sms.phone(number [, default_country]) → table, or nil, "reason" when the
 * text is no phone number. default_country defaults to sms.config's. */
static int l_sms_phone(lua_State *L) {
    size_t len;
    const char *in = luaL_checklstring(L, 1, &len);
    const char *country = luaL_optstring(L, 2, NULL);
    if (!country) {
        sr_rules *r = sr_rules_from(L);
        country = r->config ? r->config->default_country : NULL;
    } else {
        char why[SR_PHONE_WHY_MAX];
        if (sr_phone_country_check(country, why, sizeof why) != 0) return luaL_argerror(L, 2, why);
    }
    sr_phone_info info;
    char why[SR_PHONE_WHY_MAX];
    if (sr_phone_parse(in, len, country, &info, why, sizeof why) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    lua_createtable(L, 0, 10);
    lua_pushstring(L, info.e164);
    lua_setfield(L, -2, "e164");
    if (info.region[0]) {
        lua_pushstring(L, info.region);
        lua_setfield(L, -2, "country");
    }
    lua_pushinteger(L, info.calling_code);
    lua_setfield(L, -2, "calling_code");
    lua_pushstring(L, info.type);
    lua_setfield(L, -2, "type");
    lua_pushboolean(L, info.valid);
    lua_setfield(L, -2, "valid");
    lua_pushboolean(L, info.possible);
    lua_setfield(L, -2, "possible");
    if (info.extension[0]) {
        lua_pushstring(L, info.extension);
        lua_setfield(L, -2, "extension");
    }
    const char *zones = sr_phone_time_zones(&info);
    if (zones) {
        phone_push_zones(L, zones);
        lua_setfield(L, -2, "time_zones");
    }
    const char *carrier = sr_phone_carrier(&info);
    if (carrier) {
        lua_pushstring(L, carrier);
        lua_setfield(L, -2, "carrier");
    }
    char where[128];
    sr_phone_location(&info, where, sizeof where);
    if (where[0]) {
        lua_pushstring(L, where);
        lua_setfield(L, -2, "location");
    }
    return 1;
}

void sr_lua_open_phone(lua_State *L) {
    lua_pushcfunction(L, l_sms_phone);
    lua_setfield(L, -2, "phone");
}
