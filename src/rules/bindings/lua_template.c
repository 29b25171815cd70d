/* lua_template: sms.template(name, text) — declared at load time, syntax
 * checked then — and sms.render(name, vars). {{path.to.value}} substitution;
 * a missing variable is an error naming it, never an empty string. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules.h"
#include "codec/template.h"
#include "rules/bindings/bindings.h"

static int l_sms_template(lua_State *L) {
    sr_rules *r = sr_rules_from(L);
    const char *name = luaL_checkstring(L, 1);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    if (!r->loading) return luaL_error(L, "sms.template may only be called while the rules load");
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > 128 ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != nlen)
        return luaL_error(L, "sms.template: name '%s' must be 1-128 letters, digits, '_', '.' or '-'", name);
    if (sr_rules_template_find(r, name)) return luaL_error(L, "sms.template: '%s' is declared twice", name);
    if (r->template_count == SR_MAX_TEMPLATES) return luaL_error(L, "sms.template: too many templates");
    /* Every message rendered from it would be refused (invalid_text): say so once, at load. */
    if (memchr(text, '\0', len)) return luaL_error(L, "sms.template '%s': the text holds a NUL byte (\\0)", name);
    sr_template *t = NULL;
    char err[200];
    if (sr_template_compile(text, len, &t, err, sizeof err) != 0)
        return luaL_error(L, "sms.template '%s': %s", name, err);
    char *copy = strdup(name);
    if (!copy) {
        sr_template_free(t);
        return luaL_error(L, "out of memory");
    }
    r->templates[r->template_count].name = copy;
    r->templates[r->template_count].tpl = t;
    r->template_count++;
    return 0;
}

int sr_lua_render(lua_State *L, const char *name, int vars_index, const char **text, size_t *len, char *err,
                  size_t errlen) {
    sr_rules *r = sr_rules_from(L);
    const sr_template *t = sr_rules_template_find(r, name);
    if (!t) {
        snprintf(err, errlen, "unknown template '%s'", name);
        return -1;
    }
    int own_vars = vars_index == 0;
    if (own_vars) {
        lua_newtable(L);
        vars_index = lua_gettop(L);
    } else {
        vars_index = lua_absindex(L, vars_index);
    }
    sr_template_lua_vars vars = {L, vars_index};
    sr_buf_reset(&r->render_buf);
    int rc = sr_template_render(t, sr_template_lookup_lua, &vars, &r->render_buf, err, errlen);
    if (own_vars) lua_pop(L, 1);
    if (rc != 0) return -1;
    lua_pushlstring(L, r->render_buf.data ? r->render_buf.data : "", r->render_buf.len);
    *text = lua_tolstring(L, -1, len);
    return 0;
}

/* sms.render(name, vars) → text, or nil, "template_error: ...". */
static int l_sms_render(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    sr_rules *r = sr_rules_from(L);
    if (!sr_rules_template_find(r, name)) return luaL_argerror(L, 1, "unknown template");
    const char *text;
    size_t len;
    char err[200];
    if (sr_lua_render(L, name, lua_isnoneornil(L, 2) ? 0 : 2, &text, &len, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "template_error: %s", err);
        return 2;
    }
    return 1;
}

void sr_lua_open_template(lua_State *L) {
    lua_pushcfunction(L, l_sms_template);
    lua_setfield(L, -2, "template");
    lua_pushcfunction(L, l_sms_render);
    lua_setfield(L, -2, "render");
}
