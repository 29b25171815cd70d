/* lua_form: sms.form — application/x-www-form-urlencoded text read by the
 * core's one decoder (codec/form.h), for adapters (util.form_decode,
 * util.form_pairs: the webhook bodies the core did not parse itself) and
 * rules. decode(text) → {name = value} (a name given twice keeps its first
 * value; pairs with an empty name are skipped); pairs(text) → {{name,
 * value}, ...} in order, repeated and empty names included. Both read at
 * most SR_FORM_MAX_FIELDS pairs and return true as a second result when
 * there were more (a webhook the caller refuses). Neither yields; both work
 * outside handlers. */
#include <lauxlib.h>

#include "codec/form.h"
#include "rules/adapter.h"
#include "rules/bindings/bindings.h"
#include "rules/rules.h"

/* Pushes the decoding of len escaped bytes at s. The luaL_Buffer is Lua's,
 * so nothing leaks if the allocation raises. */
static void form_push_unescaped(lua_State *L, const char *s, size_t len) {
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, len);
    luaL_pushresultsize(&b, sr_form_unescape(out, s, len));
}

/* sms.form.decode(text) → table, [true when more than SR_FORM_MAX_FIELDS pairs]: request.form's own reader. */
static int l_form_decode(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    lua_newtable(L);
    if (!sr_adapter_add_form(L, text, len, SR_FORM_MAX_FIELDS)) return 1;
    lua_pushboolean(L, 1);
    return 2;
}

/* sms.form.pairs(text) → {{name, value}, ...}, [true when more than SR_FORM_MAX_FIELDS pairs] */
static int l_form_pairs(lua_State *L) {
    size_t len, pos = 0;
    const char *text = luaL_checklstring(L, 1, &len);
    lua_newtable(L);
    sr_form_pair p;
    for (int n = 0; n < SR_FORM_MAX_FIELDS && sr_form_next(text, len, &pos, &p); n++) {
        lua_createtable(L, 2, 0);
        form_push_unescaped(L, p.name, p.name_len);
        lua_rawseti(L, -2, 1);
        form_push_unescaped(L, p.value, p.value_len);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, n + 1);
    }
    if (!sr_form_next(text, len, &pos, &p)) return 1;
    lua_pushboolean(L, 1);
    return 2;
}

/* sms.form.unescape(text) → text with '+' a space and %XX a byte. */
static int l_form_unescape(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    form_push_unescaped(L, text, len);
    return 1;
}

void sr_lua_open_form(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"decode", l_form_decode}, {"pairs", l_form_pairs}, {"unescape", l_form_unescape}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushinteger(L, SR_FORM_MAX_FIELDS);
    lua_setfield(L, -2, "MAX_FIELDS");
    lua_setfield(L, -2, "form");
}
