#include "adapter.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

static void adapter_push_message(lua_State *L, const sr_message *m) {
    lua_createtable(L, 0, 12);
    lua_pushstring(L, m->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, m->to);
    lua_setfield(L, -2, "to");
    if (m->from) {
        lua_pushstring(L, m->from);
        lua_setfield(L, -2, "from");
    }
    lua_pushstring(L, m->text ? m->text : "");
    lua_setfield(L, -2, "text");
    lua_pushinteger(L, m->segments);
    lua_setfield(L, -2, "segments");
    lua_pushstring(L, sr_encoding_name((sr_encoding)m->encoding));
    lua_setfield(L, -2, "encoding");
    lua_pushinteger(L, m->priority);
    lua_setfield(L, -2, "priority");
    lua_pushinteger(L, m->validity_s);
    lua_setfield(L, -2, "validity");
    /* One message keeps one idempotency key across retries and restarts: its id. */
    lua_pushstring(L, m->id);
    lua_setfield(L, -2, "idempotency_key");
    lua_createtable(L, 0, m->tag_count);
    for (int i = 0; i < m->tag_count; i++) {
        lua_pushstring(L, m->tags[i].value);
        lua_setfield(L, -2, m->tags[i].key);
    }
    lua_setfield(L, -2, "tags");
}

static void adapter_push_messages(lua_State *L, sr_message *const *msgs, int n) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        adapter_push_message(L, msgs[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

/* Pushes adapter.fn and the provider's cfg; returns 0 or -1 with err. */
static int adapter_push_fn(lua_State *L, const sr_provider *p, const char *fn, char *err, size_t errlen) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->adapter_ref);
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        snprintf(err, errlen, "adapter '%s' has no %s", p->adapter, fn);
        return -1;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->cfg_ref);
    return 0;
}

static char *adapter_strdup(const char *s, size_t len) {
    char *p = malloc(len + 1);
    if (!p) abort();
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void sr_adapter_request_free(sr_adapter_request *req) {
    free(req->method);
    free(req->url);
    if (req->headers)
        for (char **h = req->headers; *h; h++) free(*h);
    free(req->headers);
    free(req->body);
    memset(req, 0, sizeof *req);
}

int sr_adapter_build_send(sr_rules *r, const sr_provider *p, sr_message *const *msgs, int n, sr_adapter_request *out,
                          char *err, size_t errlen) {
    lua_State *L = r->L;
    int top = lua_gettop(L);
    memset(out, 0, sizeof *out);
    if (adapter_push_fn(L, p, "build_send", err, errlen) != 0) return -1;
    adapter_push_messages(L, msgs, n);
    if (sr_rules_call(r, 2, 1, err, errlen) != 0) goto fail;
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen, "adapter '%s': build_send must return a request table", p->adapter);
        goto fail;
    }
    size_t len;
    lua_getfield(L, -1, "method");
    const char *method = lua_isnil(L, -1) ? "POST" : lua_tolstring(L, -1, &len);
    if (!method) {
        snprintf(err, errlen, "adapter '%s': request.method must be a string", p->adapter);
        goto fail;
    }
    out->method = adapter_strdup(method, strlen(method));
    lua_pop(L, 1);
    lua_getfield(L, -1, "url");
    const char *url = lua_tolstring(L, -1, &len);
    if (!url || lua_type(L, -1) != LUA_TSTRING) {
        snprintf(err, errlen, "adapter '%s': request.url must be a string", p->adapter);
        goto fail;
    }
    out->url = adapter_strdup(url, len);
    lua_pop(L, 1);
    lua_getfield(L, -1, "body");
    if (lua_type(L, -1) == LUA_TSTRING) {
        const char *body = lua_tolstring(L, -1, &len);
        out->body = adapter_strdup(body, len);
        out->body_len = len;
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "headers");
    int count = 0;
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            count++;
            lua_pop(L, 1);
        }
    }
    out->headers = calloc((size_t)count + 1, sizeof(char *));
    if (!out->headers) abort();
    int i = 0;
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2) && i < count) {
            if (lua_type(L, -2) == LUA_TSTRING && (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
                const char *name = lua_tostring(L, -2);
                const char *value = lua_tostring(L, -1);
                /* Header injection through CR/LF is refused. */
                if (!strpbrk(name, "\r\n:") && !strpbrk(value, "\r\n")) {
                    size_t sz = strlen(name) + strlen(value) + 3;
                    out->headers[i] = malloc(sz);
                    if (!out->headers[i]) abort();
                    snprintf(out->headers[i], sz, "%s: %s", name, value);
                    i++;
                }
            }
            lua_pop(L, 1);
        }
    }
    lua_settop(L, top);
    return 0;
fail:
    sr_adapter_request_free(out);
    lua_settop(L, top);
    return -1;
}

static void outcome_string(lua_State *L, int idx, const char *field, char *out, size_t outlen) {
    lua_getfield(L, idx, field);
    out[0] = '\0';
    if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
        /* Integers print without a fraction; ids are strings in practice. */
        snprintf(out, outlen, "%s", lua_tostring(L, -1));
    }
    lua_pop(L, 1);
}

int sr_adapter_parse_send(sr_rules *r, const sr_provider *p, sr_message *const *msgs, int n, int status,
                          const char *body, size_t body_len, const sr_adapter_header *headers, int header_count,
                          sr_adapter_outcome *outs, char *err, size_t errlen) {
    lua_State *L = r->L;
    int top = lua_gettop(L);
    if (adapter_push_fn(L, p, "parse_send", err, errlen) != 0) return -1;
    adapter_push_messages(L, msgs, n);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, body ? body : "", body ? body_len : 0);
    lua_setfield(L, -2, "body");
    lua_createtable(L, 0, header_count);
    for (int i = 0; i < header_count; i++) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (const char *c = headers[i].name; *c; c++)
            luaL_addchar(&b, (*c >= 'A' && *c <= 'Z') ? (char)(*c + 32) : *c);
        luaL_pushresult(&b);
        lua_pushstring(L, headers[i].value);
        lua_settable(L, -3);
    }
    lua_setfield(L, -2, "headers");
    if (sr_rules_call(r, 3, 1, err, errlen) != 0) goto fail;
    if (!lua_istable(L, -1) || (int)lua_rawlen(L, -1) != n) {
        snprintf(err, errlen, "adapter '%s': parse_send must return one outcome per message (%d)", p->adapter, n);
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        sr_adapter_outcome *o = &outs[i];
        memset(o, 0, sizeof *o);
        o->retry_after_s = -1;
        lua_rawgeti(L, -1, i + 1);
        int idx = lua_gettop(L);
        if (!lua_istable(L, idx)) {
            snprintf(err, errlen, "adapter '%s': outcome %d is not a table", p->adapter, i + 1);
            goto fail;
        }
        lua_getfield(L, idx, "ok");
        o->ok = lua_toboolean(L, -1);
        lua_getfield(L, idx, "retry");
        o->retry = lua_toboolean(L, -1);
        lua_getfield(L, idx, "scope");
        o->about_provider = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "provider") == 0;
        lua_getfield(L, idx, "retry_after");
        if (lua_type(L, -1) == LUA_TNUMBER) o->retry_after_s = lua_tonumber(L, -1);
        lua_pop(L, 4);
        outcome_string(L, idx, "provider_id", o->provider_id, sizeof o->provider_id);
        outcome_string(L, idx, "error", o->error, sizeof o->error);
        if (o->ok && !o->provider_id[0]) {
            o->ok = 0;
            o->retry = 1;
            snprintf(o->error, sizeof o->error, "accepted without a provider id");
        }
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    return 0;
fail:
    lua_settop(L, top);
    return -1;
}

int sr_adapter_route(sr_rules *r, const sr_message *m, char **names, int max, char *err, size_t errlen) {
    if (r->route_ref == LUA_NOREF) return 0;
    lua_State *L = r->L;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->route_ref);
    adapter_push_message(L, m);
    if (sr_rules_call(r, 1, 1, err, errlen) != 0) {
        lua_settop(L, top);
        return -1;
    }
    int n = 0;
    if (lua_istable(L, -1)) {
        int len = (int)lua_rawlen(L, -1);
        for (int i = 1; i <= len && n < max; i++) {
            lua_rawgeti(L, -1, i);
            if (lua_type(L, -1) == LUA_TSTRING) names[n++] = adapter_strdup(lua_tostring(L, -1), lua_rawlen(L, -1));
            lua_pop(L, 1);
        }
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        names[n++] = adapter_strdup(lua_tostring(L, -1), lua_rawlen(L, -1));
    } else if (!lua_isnil(L, -1)) {
        snprintf(err, errlen, "sms.route must return a list of provider names");
        lua_settop(L, top);
        return -1;
    }
    lua_settop(L, top);
    return n;
}
