/* lua_inbound: inbound SMS and status changes in rules — sms.on_status(fn),
 * and sms.on_inbound(fn) declares the
 * handler that runs for every inbound message (sr_rules_fire_inbound), and
 * sms.reply(msg, text_or_template, vars) answers one.
 *
 * A reply is an ordinary sms.send (same checks, same store unit, same ids
 * reported to the caller) to msg.from, through the provider that received
 * the message when the rules declare it, and it records msg.id as its
 * reply_to (in the message's own put). */
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "codec/text.h"
#include "rules/host.h"
#include "rules/rules_exec.h"
#include "store/store.h"
#include "rules/bindings/bindings.h"

/* sms.on_inbound(fn): fn(msg) runs for each inbound SMS. One per rules file. */
static int l_sms_on_inbound(lua_State *L) {
    sr_rules *r = sr_rules_from(L);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (!r->loading) return luaL_error(L, "sms.on_inbound may only be called while the rules load");
    lua_getfield(L, LUA_REGISTRYINDEX, SR_INBOUND_HANDLER_KEY);
    if (!lua_isnil(L, -1)) return luaL_error(L, "sms.on_inbound: an inbound handler is already declared");
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, SR_INBOUND_HANDLER_KEY);
    return 0;
}

/* sms.on_status(fn): fn(msg, status) runs after each status change the
 * engine commits (sent, failed, expired, rejected; delivery reports add
 * theirs). One per rules file. */
static int l_sms_on_status(lua_State *L) {
    sr_rules *r = sr_rules_from(L);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (!r->loading) return luaL_error(L, "sms.on_status may only be called while the rules load");
    lua_getfield(L, LUA_REGISTRYINDEX, SR_STATUS_HANDLER_KEY);
    if (!lua_isnil(L, -1)) return luaL_error(L, "sms.on_status: a status handler is already declared");
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, SR_STATUS_HANDLER_KEY);
    return 0;
}

/* Calls sms.send's C function for the reply (the stack as l_sms_reply left it: 1 msg, 2 text or template name,
 * 3 vars, 4 msg.from, 5 msg.id) with its message {to, text | template and vars, route = {provider}} as a table;
 * leaves id or nil, err on top. */
static int reply_send_table(lua_State *L, int is_template, const char *provider) {
    lua_pushcfunction(L, sr_lua_send_reply);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, 4);
    lua_setfield(L, -2, "to");
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, is_template ? "template" : "text");
    if (is_template) {
        lua_pushvalue(L, lua_isnil(L, 3) ? 1 : 3);
        lua_setfield(L, -2, "vars");
    }
    /* The sender's number belongs to the provider that received the message. */
    if (provider) {
        lua_createtable(L, 1, 0);
        lua_pushstring(L, provider);
        lua_rawseti(L, -2, 1);
        lua_setfield(L, -2, "route");
    }
    lua_pushvalue(L, 5); /* reply_to (ignored unless a valid id) */
    lua_call(L, 2, 2);
    return 2;
}

/* A plain text reply: sent from C (no table, no encoder) when every string is valid UTF-8, which JSON then holds
 * byte for byte; otherwise through the table, whose encoder keeps the bytes as they are for the submission to
 * judge. */
static int reply_text(lua_State *L, const char *body, size_t body_len, const char *provider) {
    size_t to_len, id_len = 0;
    const char *to = lua_tolstring(L, 4, &to_len);
    const char *id = lua_type(L, 5) == LUA_TSTRING ? lua_tolstring(L, 5, &id_len) : NULL;
    char reply_to[SR_ID_LEN + 1] = "";
    if (id && sr_id_valid(id, id_len)) memcpy(reply_to, id, id_len + 1);
    if (!sr_utf8_valid(to, to_len) || !sr_utf8_valid(body, body_len) ||
        (provider && !sr_utf8_valid(provider, strlen(provider))))
        return reply_send_table(L, 0, provider);
    return sr_lua_send_reply_text(L, to, to_len, body, body_len, provider, reply_to[0] ? reply_to : NULL);
}

/* sms.reply(msg, text_or_template, vars) → id, or nil, "code: message".
 * When the second argument names a declared template it is rendered with
 * vars (default: msg itself), else it is the text. The reply is sent by
 * sms.send's own C code (rules cannot replace it), and it records msg.id as
 * reply_to in its own put: no second write of the message. */
static int l_sms_reply(lua_State *L) {
    sr_rules *r = sr_rules_from(L);
    sr_invocation *inv = sr_invocation_current(r);
    if (!inv || !sr_rules_store(r))
        return luaL_error(L, "sms.reply may only be called from a handler, not while the rules load");
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t body_len;
    const char *body = luaL_checklstring(L, 2, &body_len);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    lua_getfield(L, 1, "from"); /* 4 */
    if (lua_type(L, 4) != LUA_TSTRING) return luaL_argerror(L, 1, "an inbound message with a 'from' number");
    lua_getfield(L, 1, "id");       /* 5 */
    lua_getfield(L, 1, "provider"); /* 6 */
    const char *provider = lua_type(L, 6) == LUA_TSTRING ? lua_tostring(L, 6) : NULL;
    if (provider && !sr_rules_provider(r, provider)) provider = NULL;
    /* A text holding NUL is no template name ("hello\0..." is not "hello"): it goes on as text, and is refused. */
    if (strlen(body) == body_len && sr_rules_template_find(r, body)) return reply_send_table(L, 1, provider);
    return reply_text(L, body, body_len, provider);
}

void sr_lua_open_inbound(lua_State *L) {
    lua_pushcfunction(L, l_sms_on_inbound);
    lua_setfield(L, -2, "on_inbound");
    lua_pushcfunction(L, l_sms_on_status);
    lua_setfield(L, -2, "on_status");
    lua_pushcfunction(L, l_sms_reply);
    lua_setfield(L, -2, "reply");
}
