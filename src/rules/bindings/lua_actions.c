/* lua_actions: what handlers do — sms.on (declaring a trigger), sms.send,
 * sms.optout / sms.optin / sms.is_optout, sms.segments, sms.now. Actions
 * that write add to the running invocation's store unit (committed when the
 * handler returns); reads see the handler's own pending writes. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json.h"
#include "codec/jsonw.h"
#include "rules/host.h"
#include "rules/rules_exec.h"
#include "store/store.h"
#include "model/submission.h"
#include "codec/phone.h"
#include "codec/text.h"
#include "rules/bindings/bindings.h"

static sr_invocation *actions_invocation(lua_State *L, const char *what) {
    sr_rules *r = sr_rules_from(L);
    sr_invocation *inv = sr_invocation_current(r);
    if (!inv || !sr_rules_store(r))
        luaL_error(L, "%s may only be called from a handler, not while the rules load", what);
    return inv;
}

/* sms.on(name, fn): fn runs for POST /v1/events/{name}. */
static int l_sms_on(lua_State *L) {
    sr_rules *r = sr_rules_from(L);
    const char *name = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (!r->loading) return luaL_error(L, "sms.on may only be called while the rules load");
    size_t n = strlen(name);
    if (n == 0 || n > 128 || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != n)
        return luaL_error(L, "sms.on: event name '%s' must be 1-128 letters, digits, '_', '.' or '-'", name);
    lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.events");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "smsrules.events");
    }
    lua_getfield(L, -1, name);
    if (!lua_isnil(L, -1)) return luaL_error(L, "sms.on: a handler for '%s' is already declared", name);
    lua_pop(L, 1);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, name);
    return 0;
}

/* Encodes the table at idx to JSON with lua-cjson (no functions or cycles). */
static int actions_encode(lua_State *L, int idx) {
    lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.cjson_encode");
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        lua_getglobal(L, "require");
        lua_pushstring(L, "cjson");
        lua_call(L, 1, 1);
        lua_getfield(L, -1, "new");
        lua_call(L, 0, 1); /* a private instance: rules cannot reconfigure it */
        lua_getfield(L, -1, "encode");
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "smsrules.cjson_encode");
        lua_remove(L, -2);
        lua_remove(L, -2);
    }
    lua_pushvalue(L, idx);
    return lua_pcall(L, 1, 1, 0);
}

/* sms.send's template form. Expects the stack to be exactly the message (1) and its template field (2, not
 * nil). Renders the template with the message's vars and replaces the message by a shallow copy holding the
 * text instead of template and vars: returns 0 with the stack at just that copy. On a bad template or vars
 * returns 2 with nil, "code: message" on top (the caller returns them). */
static int send_apply_template(lua_State *L) {
    /* template + vars → text, then the same path as a plain message. */
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pushnil(L);
        lua_pushstring(L, "invalid_type: 'template' must be a template name");
        return 2;
    }
    lua_getfield(L, 1, "text");
    if (!lua_isnil(L, -1)) {
        lua_pushnil(L);
        lua_pushstring(L, "invalid_value: give 'text' or 'template', not both");
        return 2;
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "vars"); /* 3 */
    if (!lua_isnil(L, 3) && !lua_istable(L, 3)) {
        lua_pushnil(L);
        lua_pushstring(L, "invalid_type: 'vars' must be a table");
        return 2;
    }
    const char *rendered;
    size_t rlen;
    char terr[200];
    if (sr_lua_render(L, lua_tostring(L, 2), lua_isnil(L, 3) ? 0 : 3, &rendered, &rlen, terr, sizeof terr) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "template_error: %s", terr);
        return 2;
    }
    /* 4: the text. A shallow copy of the message without template/vars. */
    lua_newtable(L); /* 5 */
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (k && (strcmp(k, "template") == 0 || strcmp(k, "vars") == 0)) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, 5);
    }
    lua_pushvalue(L, 4);
    lua_setfield(L, 5, "text");
    lua_replace(L, 1);
    lua_settop(L, 1);
    return 0;
}

/* Parses the JSON text of a message as POST /v1/messages does, with every provider of the route declared. On
 * success returns 0 and fills *m (the caller frees it), *idem_copy (the idempotency key in malloc'd memory, or
 * NULL; the caller frees it), *hash and *now_ms; otherwise returns -1 with "code: message" in err and nothing to
 * free. Calls nothing in Lua: the caller's own memory (json) cannot leak through a raise. */
static int send_parse_json(sr_rules *r, const char *json, size_t len, sr_message *m, char **idem_copy, uint64_t *hash,
                           int64_t *now_ms, char *err, size_t errlen) {
    sr_json_doc doc;
    char perr[160];
    if (sr_json_parse(&doc, json, len, perr, sizeof perr) != 0) {
        snprintf(err, errlen, "invalid_type: %s", perr);
        return -1;
    }
    int64_t now = sr_now_ms();
    const char *idem = NULL;
    sr_reasons reasons;
    /* An empty Lua table encodes as {} and an array-like one as [...]: both refused by the parser below. */
    if (sr_submission_parse(doc.root, r->config, NULL, now, "", m, &idem, hash, &reasons) != 0) {
        sr_json_doc_free(&doc);
        snprintf(err, errlen, "%s: %s", reasons.items[0].key, reasons.items[0].message);
        return -1;
    }
    for (int i = 0; i < m->route_len; i++) {
        if (sr_rules_provider(r, m->route[i])) continue;
        snprintf(err, errlen, "unknown_provider: the route names '%s', which the rules do not declare", m->route[i]);
        sr_json_doc_free(&doc);
        sr_message_free(m);
        return -1;
    }
    *idem_copy = idem ? strdup(idem) : NULL;
    sr_json_doc_free(&doc);
    *now_ms = now;
    return 0;
}

/* Encodes the message table at index 1 to JSON and parses that (send_parse_json). Pushes the JSON text (leave it
 * until the call returns). On success returns 0 with what send_parse_json fills. Otherwise returns 2 with nil,
 * "code: message" on top (the caller returns them) and nothing to free. */
static int send_parse(lua_State *L, sr_rules *r, sr_message *m, char **idem_copy, uint64_t *hash, int64_t *now_ms) {
    if (actions_encode(L, 1) != LUA_OK) {
        lua_pushnil(L);
        lua_pushfstring(L, "invalid_type: the message must hold only strings, numbers and tables (%s)",
                        lua_tostring(L, -2));
        return 2;
    }
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    char err[400];
    if (send_parse_json(r, text, len, m, idem_copy, hash, now_ms, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 0;
}

/* Adds the parsed message m to the invocation's store unit under a new id, or, when its idempotency key
 * (idem_copy, may be NULL) already names a message with the same hash, takes that one. A new message records
 * reply_to (may be NULL); one found by its key keeps what it has. Frees m and idem_copy. Pushes the id and
 * returns 1, or nil, "idempotency_conflict: ..." and returns 2. */
static int send_store(lua_State *L, sr_invocation *inv, sr_message *m, char *idem_copy, uint64_t hash, int64_t now,
                      const char *reply_to) {
    sr_rules *r = sr_rules_from(L);
    char existing[SR_ID_LEN + 1];
    uint64_t existing_hash = 0;
    if (idem_copy && sr_store_idempotency_get(sr_rules_store(r), idem_copy, now, existing, &existing_hash) == 0) {
        free(idem_copy);
        sr_message_free(m);
        if (existing_hash != hash) {
            lua_pushnil(L);
            lua_pushstring(L, "idempotency_conflict: this idempotency key was used for a different message");
            return 2;
        }
        sr_invocation_add_id(inv, existing);
        lua_pushstring(L, existing);
        return 1;
    }
    sr_id_new(m->id, now);
    if (reply_to) sr_message_set_str(&m->reply_to, reply_to);
    char id[SR_ID_LEN + 1];
    memcpy(id, m->id, sizeof id);
    sr_store_txn_put_message(sr_invocation_unit(inv), m, idem_copy, hash);
    free(idem_copy);
    sr_message_free(m);
    sr_invocation_add_id(inv, id);
    lua_pushstring(L, id);
    return 1;
}

/* sms.send's work on the message table at index 1 (the stack holds only it); reply_to: see send_store. */
static int send_message(lua_State *L, const char *what, const char *reply_to) {
    sr_invocation *inv = actions_invocation(L, what);
    sr_rules *r = sr_rules_from(L);
    lua_getfield(L, 1, "template");
    if (!lua_isnil(L, -1)) {
        if (send_apply_template(L) != 0) return 2;
    } else {
        lua_pop(L, 1);
    }
    sr_message m;
    char *idem_copy = NULL;
    uint64_t hash = 0;
    int64_t now = 0;
    if (send_parse(L, r, &m, &idem_copy, &hash, &now) != 0) return 2;
    return send_store(L, inv, &m, idem_copy, hash, now, reply_to);
}

/* sms.send{to=..., text=..., ...} → id, or nil, "code: message". The same
 * fields as POST /v1/messages. */
static int l_sms_send(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    return send_message(L, "sms.send", NULL);
}

int sr_lua_send_reply(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    char reply_to[SR_ID_LEN + 1] = "";
    size_t len = 0;
    const char *id = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &len) : NULL;
    /* Copied: the stack is cut to the message before the send's work. */
    if (id && sr_id_valid(id, len)) memcpy(reply_to, id, len + 1);
    lua_settop(L, 1);
    return send_message(L, "sms.reply", reply_to[0] ? reply_to : NULL);
}

int sr_lua_send_reply_text(lua_State *L, const char *to, size_t to_len, const char *text, size_t text_len,
                           const char *provider, const char *reply_to) {
    sr_invocation *inv = actions_invocation(L, "sms.reply");
    sr_rules *r = sr_rules_from(L);
    /* The JSON sms.send would make of {to = to, text = text, route = {provider}}, written here: no table, no
     * encoder. Nothing below calls into Lua until json is freed. */
    sr_buf json;
    sr_buf_init(&json);
    sr_jw w;
    sr_jw_init(&w, &json);
    sr_jw_object_begin(&w);
    sr_jw_key(&w, "to");
    sr_jw_string(&w, to, to_len);
    sr_jw_key(&w, "text");
    sr_jw_string(&w, text, text_len);
    if (provider) {
        sr_jw_key(&w, "route");
        sr_jw_array_begin(&w);
        sr_jw_cstr(&w, provider);
        sr_jw_array_end(&w);
    }
    sr_jw_object_end(&w);
    sr_message m;
    char *idem_copy = NULL;
    uint64_t hash = 0;
    int64_t now = 0;
    char err[400];
    int rc = send_parse_json(r, json.data, json.len, &m, &idem_copy, &hash, &now, err, sizeof err);
    sr_buf_free(&json);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return send_store(L, inv, &m, idem_copy, hash, now, reply_to);
}

/* Normalises the number argument; raises on a bad one. */
static void actions_number(lua_State *L, char out[SR_PHONE_MAX]) {
    size_t len;
    const char *in = luaL_checklstring(L, 1, &len);
    sr_rules *r = sr_rules_from(L);
    char why[SR_PHONE_WHY_MAX];
    if (sr_phone_normalize(in, len, r->config->default_country, out, why, sizeof why) != 0)
        luaL_argerror(L, 1, lua_pushfstring(L, "not a valid phone number: %s", why));
}

static int actions_set_optout(lua_State *L, int on) {
    sr_invocation *inv = actions_invocation(L, on ? "sms.optout" : "sms.optin");
    char number[SR_PHONE_MAX];
    actions_number(L, number);
    sr_store_txn_optout(sr_invocation_unit(inv), number, on);
    sr_invocation_push_overlay(inv, L);
    lua_pushfstring(L, "optout:%s", number);
    lua_pushboolean(L, on);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    return 0;
}

static int l_sms_optout(lua_State *L) { return actions_set_optout(L, 1); }
static int l_sms_optin(lua_State *L) { return actions_set_optout(L, 0); }

static int l_sms_is_optout(lua_State *L) {
    sr_invocation *inv = actions_invocation(L, "sms.is_optout");
    sr_rules *r = sr_rules_from(L);
    char number[SR_PHONE_MAX];
    actions_number(L, number);
    sr_invocation_push_overlay(inv, L);
    lua_pushfstring(L, "optout:%s", number);
    lua_rawget(L, -2);
    if (!lua_isnil(L, -1)) return 1;
    lua_pushboolean(L, sr_store_is_optout(sr_rules_store(r), number) == 1);
    return 1;
}

/* sms.segments(text) → count, encoding ("gsm7"/"ucs2"); nil, error on invalid UTF-8. */
static int l_sms_segments(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    sr_segments seg;
    if (sr_text_segments(text, len, &seg) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, "invalid_text: not valid UTF-8");
        return 2;
    }
    lua_pushinteger(L, seg.segments);
    lua_pushstring(L, sr_encoding_name(seg.encoding));
    return 2;
}

/* sms.now() → seconds since the epoch, with milliseconds. */
static int l_sms_now(lua_State *L) {
    lua_pushnumber(L, (lua_Number)sr_now_ms() / 1000.0);
    return 1;
}

void sr_lua_open_actions(lua_State *L) {
    static const luaL_Reg fns[] = {{"on", l_sms_on},
                                   {"send", l_sms_send},
                                   {"optout", l_sms_optout},
                                   {"optin", l_sms_optin},
                                   {"is_optout", l_sms_is_optout},
                                   {"segments", l_sms_segments},
                                   {"now", l_sms_now},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
