#include "rules/adapter.h"
#include "core/buf.h"

#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec/form.h"
#include "codec/text.h"
#include "rules/adapter_generic.h"

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

void sr_adapter_http_send(sr_http_client *c, sr_adapter_request *req, long timeout_ms, sr_http_client_cb cb, void *ud) {
    sr_http_client_request r;
    memset(&r, 0, sizeof r);
    r.method = req->method;
    r.url = req->url;
    r.headers = (const char *const *)req->headers;
    r.body = req->body;
    r.body_len = req->body_len;
    r.timeout_ms = timeout_ms;
    int rc = sr_http_client_request_start(c, &r, cb, ud);
    sr_adapter_request_free(req);
    if (rc != 0) {
        sr_http_client_response fake;
        memset(&fake, 0, sizeof fake);
        fake.error = SR_HTTP_E_TRANSPORT;
        fake.error_message = "the request could not start";
        fake.body = "";
        cb(&fake, ud);
    }
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

/* The "headers" field of the table at idx as NULL-terminated "Name: value" lines (CR/LF refused), into
 * *dst before it is filled: a Lua error half-way leaves it for the caller to free. */
static void adapter_read_headers(lua_State *L, int idx, char ***dst) {
    idx = lua_absindex(L, idx);
    lua_getfield(L, idx, "headers");
    int count = 0;
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            count++;
            lua_pop(L, 1);
        }
    }
    char **headers = calloc((size_t)count + 1, sizeof(char *));
    if (!headers) abort();
    *dst = headers;
    int i = 0;
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (i < count && lua_type(L, -2) == LUA_TSTRING &&
                (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
                const char *name = lua_tostring(L, -2);
                lua_pushvalue(L, -1);
                const char *value = lua_tostring(L, -1); /* a copy: converting the value in place is harmless */
                /* Header injection through CR/LF is refused. */
                if (!strpbrk(name, "\r\n:") && !strpbrk(value, "\r\n")) {
                    size_t sz = strlen(name) + strlen(value) + 3;
                    headers[i] = malloc(sz);
                    if (!headers[i]) abort();
                    snprintf(headers[i], sz, "%s: %s", name, value);
                    i++;
                }
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* Reads the request table at the top of the stack into out (the caller frees it on error). Returns 0
 * or -1 with err. */
static int adapter_read_request(lua_State *L, const sr_provider *p, const char *fn, sr_adapter_request *out, char *err,
                                size_t errlen) {
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen, "adapter '%s': %s must return a request table", p->adapter, fn);
        return -1;
    }
    size_t len;
    lua_getfield(L, -1, "method");
    const char *method = lua_isnil(L, -1) ? "POST" : lua_tolstring(L, -1, &len);
    if (!method) {
        snprintf(err, errlen, "adapter '%s': request.method must be a string", p->adapter);
        return -1;
    }
    out->method = adapter_strdup(method, strlen(method));
    lua_pop(L, 1);
    lua_getfield(L, -1, "url");
    const char *url = lua_tolstring(L, -1, &len);
    if (!url || lua_type(L, -1) != LUA_TSTRING) {
        snprintf(err, errlen, "adapter '%s': request.url must be a string", p->adapter);
        return -1;
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
    adapter_read_headers(L, -1, &out->headers);
    return 0;
}

/* keep_ref (may be NULL) gets a reference to the messages table handed to build_send, for parse_send. */
static int adapter_build_send_in(sr_rules *r, const sr_provider *p, sr_message *const *msgs, int n,
                                 sr_adapter_request *out, int *keep_ref, char *err, size_t errlen) {
    lua_State *L = p->L;
    int top = lua_gettop(L);
    memset(out, 0, sizeof *out);
    if (adapter_push_fn(L, p, "build_send", err, errlen) != 0) return -1;
    adapter_push_messages(L, msgs, n);
    if (keep_ref) {
        lua_pushvalue(L, -1);
        *keep_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    if ((sr_rules_body_call(r, L, 2, 1), 0) || adapter_read_request(L, p, "build_send", out, err, errlen) != 0) {
        sr_adapter_request_free(out);
        lua_settop(L, top);
        return -1;
    }
    lua_settop(L, top);
    return 0;
}

/* The string (or number, as text) field of the table at idx into out; "" when it is neither. */
static void adapter_string_field(lua_State *L, int idx, const char *field, char *out, size_t outlen) {
    lua_getfield(L, idx, field);
    out[0] = '\0';
    if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
        /* Integers print without a fraction; ids are strings in practice. */
        sr_str_copy(out, outlen, lua_tostring(L, -1));
    }
    lua_pop(L, 1);
}

/* Reads the outcome table at idx into o (the stack as before). */
static void adapter_read_outcome(lua_State *L, int idx, sr_adapter_outcome *o) {
    lua_getfield(L, idx, "ok");
    o->ok = lua_toboolean(L, -1);
    lua_getfield(L, idx, "retry");
    o->retry = lua_toboolean(L, -1);
    lua_getfield(L, idx, "scope");
    o->about_provider = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "provider") == 0;
    lua_getfield(L, idx, "retry_after");
    if (lua_type(L, -1) == LUA_TNUMBER) o->retry_after_s = lua_tonumber(L, -1);
    lua_pop(L, 4);
    adapter_string_field(L, idx, "provider_id", o->provider_id, sizeof o->provider_id);
    adapter_string_field(L, idx, "error", o->error, sizeof o->error);
    lua_getfield(L, idx, "parts");
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0 && lua_tointeger(L, -1) <= 255)
        o->parts = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (o->ok && !o->provider_id[0]) {
        o->ok = 0;
        o->retry = 1;
        snprintf(o->error, sizeof o->error, "accepted without a provider id");
    }
}

/* msgs_ref: the messages table build_send got (a registry reference), or LUA_NOREF to make it again. */
static int adapter_parse_send_in(sr_rules *r, const sr_provider *p, sr_message *const *msgs, int n, int msgs_ref,
                                 int status, const char *body, size_t body_len, const sr_adapter_header *headers,
                                 int header_count, sr_adapter_outcome *outs, char *err, size_t errlen) {
    lua_State *L = p->L;
    int top = lua_gettop(L);
    if (adapter_push_fn(L, p, "parse_send", err, errlen) != 0) return -1;
    if (msgs_ref == LUA_NOREF || lua_rawgeti(L, LUA_REGISTRYINDEX, msgs_ref) != LUA_TTABLE) {
        if (msgs_ref != LUA_NOREF) lua_pop(L, 1);
        adapter_push_messages(L, msgs, n);
    }
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
    if ((sr_rules_body_call(r, L, 3, 1), 0)) goto fail;
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
        adapter_read_outcome(L, idx, o);
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    return 0;
fail:
    lua_settop(L, top);
    return -1;
}

/* fallback_on and dlr_timeout of a route table (at top). Returns 0 or -1 with err. */
static int adapter_route_options(lua_State *L, sr_route_options *opt, char *err, size_t errlen) {
    lua_getfield(L, -1, "fallback_on");
    if (lua_istable(L, -1)) {
        int len = (int)lua_rawlen(L, -1);
        for (int i = 1; i <= len; i++) {
            lua_rawgeti(L, -1, i);
            int st = lua_type(L, -1) == LUA_TSTRING ? sr_status_parse(lua_tostring(L, -1)) : -1;
            lua_pop(L, 1);
            if (st != SR_ST_UNDELIVERED && st != SR_ST_EXPIRED && st != SR_ST_REJECTED) {
                snprintf(err, errlen, "sms.route: fallback_on takes \"undelivered\", \"expired\" and \"rejected\"");
                lua_pop(L, 1);
                return -1;
            }
            opt->fallback_on |= 1 << st;
        }
    } else if (!lua_isnil(L, -1)) {
        snprintf(err, errlen, "sms.route: fallback_on must be a list of statuses");
        lua_pop(L, 1);
        return -1;
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "dlr_timeout");
    if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) > 0 && lua_tonumber(L, -1) <= 30 * 86400) {
        opt->dlr_timeout_s = (int)lua_tonumber(L, -1);
        if (opt->dlr_timeout_s < 1) opt->dlr_timeout_s = 1;
    } else if (!lua_isnil(L, -1)) {
        snprintf(err, errlen, "sms.route: dlr_timeout must be seconds (1 to 2592000)");
        lua_pop(L, 1);
        return -1;
    }
    lua_pop(L, 1);
    return 0;
}

static int adapter_route_in(sr_rules *r, const sr_message *m, char **names, int max, sr_route_options *opt, char *err,
                            size_t errlen, int *made) {
    if (opt) memset(opt, 0, sizeof *opt);
    if (r->route_ref == LUA_NOREF) return 0;
    lua_State *L = r->L;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->route_ref);
    adapter_push_message(L, m);
    if ((sr_rules_body_call(r, L, 1, 1), 0)) {
        lua_settop(L, top);
        return -1;
    }
    int n = 0;
    if (lua_istable(L, -1)) {
        sr_route_options scratch;
        memset(&scratch, 0, sizeof scratch);
        if (adapter_route_options(L, opt ? opt : &scratch, err, errlen) != 0) {
            lua_settop(L, top);
            return -1;
        }
        int len = (int)lua_rawlen(L, -1);
        for (int i = 1; i <= len && n < max; i++) {
            lua_rawgeti(L, -1, i);
            if (lua_type(L, -1) == LUA_TSTRING) {
                names[n++] = adapter_strdup(lua_tostring(L, -1), lua_rawlen(L, -1));
                *made = n;
            }
            lua_pop(L, 1);
        }
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        names[n++] = adapter_strdup(lua_tostring(L, -1), lua_rawlen(L, -1));
        *made = n;
    } else if (!lua_isnil(L, -1)) {
        snprintf(err, errlen, "sms.route must return a list of provider names");
        lua_settop(L, top);
        return -1;
    }
    lua_settop(L, top);
    return n;
}

/* ---- webhooks and polling ---- */

/* Pushes the decoded bytes of len escaped form bytes at s. */
static void adapter_push_unescaped(lua_State *L, const char *s, size_t len) {
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, len);
    luaL_pushresultsize(&b, sr_form_unescape(out, s, len));
}

int sr_adapter_add_form(lua_State *L, const char *s, size_t len, size_t max) {
    size_t pos = 0, n = 0;
    sr_form_pair pair;
    for (; n < max && sr_form_next(s, len, &pos, &pair); n++) {
        if (pair.name_len == 0) continue;
        adapter_push_unescaped(L, pair.name, pair.name_len);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) != LUA_TNIL) {
            lua_pop(L, 2);
            continue;
        }
        lua_pop(L, 1);
        adapter_push_unescaped(L, pair.value, pair.value_len);
        lua_rawset(L, -3);
    }
    return sr_form_next(s, len, &pos, &pair);
}

static void adapter_make_webhook(lua_State *L, const sr_webhook_request *rq);

/* Pushes the request table of rq: the one an earlier call for the same webhook made, or a new one. */
static void adapter_push_webhook(lua_State *L, const sr_webhook_request *rq) {
    if (rq->table_ref && *rq->table_ref > 0) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, *rq->table_ref);
        return;
    }
    adapter_make_webhook(L, rq);
    if (rq->table_ref) {
        lua_pushvalue(L, -1);
        *rq->table_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
}

void sr_adapter_webhook_done(const sr_provider *p, const sr_webhook_request *rq) {
    if (!rq->table_ref || *rq->table_ref <= 0) return;
    luaL_unref(p->L, LUA_REGISTRYINDEX, *rq->table_ref);
    *rq->table_ref = 0;
}

static void adapter_make_webhook(lua_State *L, const sr_webhook_request *rq) {
    lua_createtable(L, 0, 7);
    lua_pushstring(L, rq->method ? rq->method : "POST");
    lua_setfield(L, -2, "method");
    lua_pushstring(L, rq->url ? rq->url : "");
    lua_setfield(L, -2, "url");
    lua_pushstring(L, rq->path ? rq->path : "");
    lua_setfield(L, -2, "path");
    lua_pushstring(L, rq->query ? rq->query : "");
    lua_setfield(L, -2, "query");
    int form = 0;
    lua_createtable(L, 0, rq->header_count);
    for (int i = 0; i < rq->header_count; i++) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (const char *c = rq->headers[i].name; *c; c++)
            luaL_addchar(&b, (*c >= 'A' && *c <= 'Z') ? (char)(*c + 32) : *c);
        luaL_pushresult(&b);
        const char *name = lua_tostring(L, -1);
        if (strcmp(name, "content-type") == 0 &&
            strncasecmp(rq->headers[i].value, "application/x-www-form-urlencoded", 33) == 0)
            form = 1;
        lua_pushstring(L, rq->headers[i].value);
        lua_settable(L, -3);
    }
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, rq->body ? rq->body : "", rq->body ? rq->body_len : 0);
    lua_setfield(L, -2, "body");
    if (form || (rq->query && rq->query[0])) {
        lua_newtable(L);
        /* The core refused webhooks with more than SR_WEBHOOK_MAX_FIELDS pairs before they got here. */
        if (form && rq->body) sr_adapter_add_form(L, rq->body, rq->body_len, SR_WEBHOOK_MAX_FIELDS);
        if (rq->query) sr_adapter_add_form(L, rq->query, strlen(rq->query), SR_WEBHOOK_MAX_FIELDS);
        lua_setfield(L, -2, "form");
    }
}

static int adapter_verify_in(sr_rules *r, const sr_provider *p, const sr_webhook_request *rq, char *reason,
                             size_t len) {
    lua_State *L = p->L;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->adapter_ref);
    lua_getfield(L, -1, "verify");
    lua_remove(L, -2);
    if (lua_isnil(L, -1)) {
        lua_settop(L, top);
        return 1;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->cfg_ref);
    adapter_push_webhook(L, rq);
    if ((sr_rules_body_call(r, L, 2, 2), 0)) {
        lua_settop(L, top);
        return -1;
    }
    int ok = lua_toboolean(L, -2);
    if (!ok) sr_str_copy(reason, len, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "signature check failed");
    lua_settop(L, top);
    return ok;
}

void sr_webhook_answer_free(sr_webhook_answer *a) {
    free(a->body);
    if (a->headers)
        for (char **h = a->headers; *h; h++) free(*h);
    free(a->headers);
    memset(a, 0, sizeof *a);
}

/* The answer table at idx (nil: 200, empty). */
static void adapter_read_answer(lua_State *L, int idx, sr_webhook_answer *ans) {
    memset(ans, 0, sizeof *ans);
    ans->status = 200;
    if (!lua_istable(L, idx)) {
        ans->headers = calloc(1, sizeof(char *));
        if (!ans->headers) abort();
        return;
    }
    lua_getfield(L, idx, "status");
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 200 && lua_tointeger(L, -1) <= 599)
        ans->status = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, idx, "body");
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t len;
        const char *b = lua_tolstring(L, -1, &len);
        ans->body = adapter_strdup(b, len);
        ans->body_len = len;
    }
    lua_pop(L, 1);
    adapter_read_headers(L, idx, &ans->headers);
}

static int64_t adapter_field_time(lua_State *L, int idx, const char *field) {
    lua_getfield(L, idx, field);
    int64_t ms = lua_type(L, -1) == LUA_TNUMBER ? (int64_t)(lua_tonumber(L, -1) * 1000.0) : 0;
    lua_pop(L, 1);
    return ms > 0 ? ms : 0;
}

/* A report's part or parts: 0 when not given, the number when it is a whole
 * number of at least 1 (or a string of one), else SR_REPORT_PART_INVALID so that
 * the report engine refuses the report rather than take it for one on the
 * whole message (range checks are the engine's: sr_reports_check). */
static int adapter_field_part(lua_State *L, int idx, const char *field) {
    lua_getfield(L, idx, field);
    int nil = lua_isnil(L, -1), isnum = 0;
    lua_Integer v = nil ? 0 : lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    if (nil) return 0;
    if (!isnum || v < 1) return SR_REPORT_PART_INVALID;
    return v > INT_MAX ? INT_MAX : (int)v;
}

/* The updates list at idx into *out (heap, count in *n). */
static int adapter_read_reports(lua_State *L, int idx, const sr_provider *p, const char *fn, sr_report **out, int *n,
                                char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    if (lua_isnil(L, idx)) return 0;
    if (!lua_istable(L, idx)) {
        snprintf(err, errlen, "adapter '%s': %s must return a list of updates", p->adapter, fn);
        return -1;
    }
    int len = (int)lua_rawlen(L, idx);
    if (len == 0) return 0;
    sr_report *reps = calloc((size_t)len, sizeof *reps);
    if (!reps) abort();
    *out = reps;
    int count = 0;
    for (int i = 1; i <= len; i++) {
        lua_rawgeti(L, idx, i);
        int e = lua_gettop(L);
        if (lua_istable(L, e)) {
            sr_report *rp = &reps[count];
            adapter_string_field(L, e, "provider_id", rp->provider_id, sizeof rp->provider_id);
            adapter_string_field(L, e, "message_id", rp->message_id, sizeof rp->message_id);
            char status[32];
            adapter_string_field(L, e, "status", status, sizeof status);
            int st = sr_status_parse(status);
            rp->status = st == SR_ST_SENT || st == SR_ST_DELIVERED || st == SR_ST_UNDELIVERED || st == SR_ST_EXPIRED ||
                                 st == SR_ST_REJECTED || st == SR_ST_ACCEPTED
                             ? st
                             : -1;
            adapter_string_field(L, e, "raw_status", rp->raw_status, sizeof rp->raw_status);
            if (!rp->raw_status[0]) sr_str_copy(rp->raw_status, sizeof rp->raw_status, status);
            adapter_string_field(L, e, "error", rp->error, sizeof rp->error);
            rp->at_ms = adapter_field_time(L, e, "at");
            rp->part = adapter_field_part(L, e, "part");
            rp->parts = adapter_field_part(L, e, "parts");
            lua_getfield(L, e, "cost");
            if (lua_type(L, -1) == LUA_TNUMBER) {
                rp->cost = lua_tonumber(L, -1);
                rp->has_cost = rp->cost == rp->cost && rp->cost >= 0 && rp->cost < 1e12;
            }
            lua_pop(L, 1);
            if (rp->provider_id[0] || rp->message_id[0]) count++;
            else
                memset(rp, 0, sizeof *rp);
        }
        lua_settop(L, e - 1);
    }
    *out = reps;
    *n = count;
    return 0;
}

static int adapter_parse_status_in(sr_rules *r, const sr_provider *p, const sr_webhook_request *rq, sr_report **out,
                                   int *n, sr_webhook_answer *ans, char *err, size_t errlen) {
    lua_State *L = p->L;
    int top = lua_gettop(L);
    *out = NULL;
    *n = 0;
    memset(ans, 0, sizeof *ans);
    if (adapter_push_fn(L, p, "parse_status", err, errlen) != 0) return -1;
    adapter_push_webhook(L, rq);
    if ((sr_rules_body_call(r, L, 2, 2), 0) ||
        adapter_read_reports(L, top + 1, p, "parse_status", out, n, err, errlen) != 0) {
        lua_settop(L, top);
        return -1;
    }
    adapter_read_answer(L, top + 2, ans);
    lua_settop(L, top);
    return 0;
}

void sr_inbound_sms_free(sr_inbound_sms *msgs, int n) {
    for (int i = 0; i < n; i++) free(msgs[i].text);
    free(msgs);
}

static int adapter_parse_inbound_in(sr_rules *r, const sr_provider *p, const sr_webhook_request *rq,
                                    sr_inbound_sms **out, int *n, sr_webhook_answer *ans, char *err, size_t errlen) {
    lua_State *L = p->L;
    int top = lua_gettop(L);
    *out = NULL;
    *n = 0;
    memset(ans, 0, sizeof *ans);
    if (adapter_push_fn(L, p, "parse_inbound", err, errlen) != 0) return -1;
    adapter_push_webhook(L, rq);
    if ((sr_rules_body_call(r, L, 2, 2), 0)) {
        lua_settop(L, top);
        return -1;
    }
    int idx = top + 1;
    if (!lua_isnil(L, idx) && !lua_istable(L, idx)) {
        snprintf(err, errlen, "adapter '%s': parse_inbound must return a list of messages", p->adapter);
        lua_settop(L, top);
        return -1;
    }
    int len = lua_istable(L, idx) ? (int)lua_rawlen(L, idx) : 0;
    sr_inbound_sms *msgs = len ? calloc((size_t)len, sizeof *msgs) : NULL;
    if (len && !msgs) abort();
    *out = msgs;
    *n = -len; /* until the end: the caller frees len entries on a Lua error */
    int count = 0;
    for (int i = 1; i <= len; i++) {
        lua_rawgeti(L, idx, i);
        int e = lua_gettop(L);
        if (lua_istable(L, e)) {
            sr_inbound_sms *m = &msgs[count];
            adapter_string_field(L, e, "provider_message_id", m->provider_message_id, sizeof m->provider_message_id);
            adapter_string_field(L, e, "from", m->from, sizeof m->from);
            adapter_string_field(L, e, "to", m->to, sizeof m->to);
            m->at_ms = adapter_field_time(L, e, "at");
            lua_getfield(L, e, "text");
            size_t tlen = 0;
            const char *text = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &tlen) : NULL;
            if (text && m->from[0]) {
                m->text = adapter_strdup(text, tlen);
                m->text_len = tlen;
                count++;
            } else {
                memset(m, 0, sizeof *m);
            }
        }
        lua_settop(L, e - 1);
    }
    adapter_read_answer(L, top + 2, ans);
    lua_settop(L, top);
    *out = msgs;
    *n = count;
    return 0;
}

int sr_adapter_poll_batch(sr_rules *r, const sr_provider *p) {
    (void)r;
    lua_State *L = p->L;
    /* Raw reads: a custom adapter's table may have metamethods, which run only in a protected call. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->adapter_ref);
    lua_pushliteral(L, "build_poll");
    lua_rawget(L, -2);
    int can = lua_isfunction(L, -1);
    lua_pushliteral(L, "poll_batch");
    lua_rawget(L, -3);
    lua_Integer n = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 1;
    lua_pop(L, 3);
    if (!can) return 0;
    return n < 1 ? 1 : n > 1000 ? 1000 : (int)n;
}

static void adapter_push_ids(lua_State *L, const char *const *ids, int n) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, ids[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static int adapter_build_poll_in(sr_rules *r, const sr_provider *p, const char *const *ids, int n,
                                 sr_adapter_request *out, char *err, size_t errlen) {
    lua_State *L = p->L;
    int top = lua_gettop(L);
    memset(out, 0, sizeof *out);
    if (adapter_push_fn(L, p, "build_poll", err, errlen) != 0) return -1;
    adapter_push_ids(L, ids, n);
    if ((sr_rules_body_call(r, L, 2, 1), 0) || adapter_read_request(L, p, "build_poll", out, err, errlen) != 0) {
        sr_adapter_request_free(out);
        lua_settop(L, top);
        return -1;
    }
    lua_settop(L, top);
    return 0;
}

static int adapter_parse_poll_in(sr_rules *r, const sr_provider *p, const char *const *ids, int n, int status,
                                 const char *body, size_t body_len, sr_report **out, int *count, char *err,
                                 size_t errlen) {
    lua_State *L = p->L;
    int top = lua_gettop(L);
    *out = NULL;
    *count = 0;
    if (adapter_push_fn(L, p, "parse_poll", err, errlen) != 0) return -1;
    adapter_push_ids(L, ids, n);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, body ? body : "", body ? body_len : 0);
    lua_setfield(L, -2, "body");
    lua_newtable(L);
    lua_setfield(L, -2, "headers");
    if ((sr_rules_body_call(r, L, 3, 1), 0) ||
        adapter_read_reports(L, top + 1, p, "parse_poll", out, count, err, errlen) != 0) {
        lua_settop(L, top);
        return -1;
    }
    lua_settop(L, top);
    return 0;
}

/* ---- every call into an adapter or the route runs in one protected, budgeted call ---- */

/* The arguments and results of one call, for the bodies below. */
typedef struct adapter_call {
    sr_rules *r;
    const sr_provider *p;
    sr_message *const *msgs;
    const sr_message *m;
    int n;
    int *keep_ref; /* build_send: where the messages table's reference goes (NULL: not kept) */
    int msgs_ref;  /* parse_send: that reference, or LUA_NOREF */
    int status;
    const char *body;
    size_t body_len;
    const sr_adapter_header *headers;
    int header_count;
    const sr_webhook_request *rq;
    const char *const *ids;
    sr_adapter_request *req;
    sr_adapter_outcome *outs;
    sr_report **reports;
    int *count;
    sr_inbound_sms **inbound;
    sr_webhook_answer *ans;
    char **names;
    int max;
    int made; /* route names copied so far */
    sr_route_options *opt;
    char *err;
    size_t errlen;
    int rc; /* what the adapter_*_in function returned */
} adapter_call;

static int adapter_body_build_send(lua_State *L) {
    adapter_call *c = lua_touserdata(L, 1);
    c->rc = adapter_build_send_in(c->r, c->p, c->msgs, c->n, c->req, c->keep_ref, c->err, c->errlen);
    return 0;
}

static int adapter_body_parse_send(lua_State *L) {
    adapter_call *c = lua_touserdata(L, 1);
    c->rc = adapter_parse_send_in(c->r, c->p, c->msgs, c->n, c->msgs_ref, c->status, c->body, c->body_len, c->headers,
                                  c->header_count, c->outs, c->err, c->errlen);
    return 0;
}

static int adapter_body_route(lua_State *L) {
    adapter_call *c = lua_touserdata(L, 1);
    c->rc = adapter_route_in(c->r, c->m, c->names, c->max, c->opt, c->err, c->errlen, &c->made);
    return 0;
}

static int adapter_body_verify(lua_State *L) {
    adapter_call *c = lua_touserdata(L, 1);
    c->rc = adapter_verify_in(c->r, c->p, c->rq, c->err, c->errlen);
    return 0;
}

static int adapter_body_parse_status(lua_State *L) {
    adapter_call *c = lua_touserdata(L, 1);
    c->rc = adapter_parse_status_in(c->r, c->p, c->rq, c->reports, c->count, c->ans, c->err, c->errlen);
    return 0;
}

static int adapter_body_parse_inbound(lua_State *L) {
    adapter_call *c = lua_touserdata(L, 1);
    c->rc = adapter_parse_inbound_in(c->r, c->p, c->rq, c->inbound, c->count, c->ans, c->err, c->errlen);
    return 0;
}

static int adapter_body_build_poll(lua_State *L) {
    adapter_call *c = lua_touserdata(L, 1);
    c->rc = adapter_build_poll_in(c->r, c->p, c->ids, c->n, c->req, c->err, c->errlen);
    return 0;
}

static int adapter_body_parse_poll(lua_State *L) {
    adapter_call *c = lua_touserdata(L, 1);
    c->rc = adapter_parse_poll_in(c->r, c->p, c->ids, c->n, c->status, c->body, c->body_len, c->reports, c->count,
                                  c->err, c->errlen);
    return 0;
}

/* ---- the generic adapter's C path (rules/adapter_generic.h) ---- */

/* The generic template of p, a provider of r (whose array keeps it), or NULL. */
static const sr_send_template *adapter_generic_template(sr_rules *r, const sr_provider *p) {
    if (p < r->providers || p >= r->providers + r->provider_count) return NULL;
    return sr_generic_template(r, &r->providers[p - r->providers]);
}

static char *adapter_header_line(const char *name, const char *value) {
    size_t size = strlen(name) + strlen(value) + 3;
    char *line = malloc(size);
    if (!line) abort();
    snprintf(line, size, "%s: %s", name, value);
    return line;
}

/* generic.build_send in C: 1 with out filled, 0 when the Lua adapter must build this request. */
static int adapter_generic_build(sr_rules *r, const sr_provider *p, sr_message *const *msgs, int n,
                                 sr_adapter_request *out) {
    const sr_send_template *t = adapter_generic_template(r, p);
    if (!t || !t->usable || n != 1 || !msgs[0]->to) return 0;
    const sr_message *m = msgs[0];
    const char *from = m->from && m->from[0] ? m->from : t->sender;
    out->body = sr_generic_body(m->to, from, m->text ? m->text : "", &out->body_len);
    out->method = adapter_strdup("POST", 4);
    out->url = adapter_strdup(t->url, strlen(t->url));
    out->headers = calloc(5, sizeof(char *));
    if (!out->headers) abort();
    int h = 0;
    out->headers[h++] = adapter_header_line("Content-Type", "application/json");
    out->headers[h++] = adapter_header_line("Accept", "application/json");
    /* The idempotency key is the message's id (adapter_push_message). */
    if (m->id[0]) out->headers[h++] = adapter_header_line("Idempotency-Key", m->id);
    if (t->auth_line) out->headers[h++] = adapter_strdup(t->auth_line, strlen(t->auth_line));
    return 1;
}

/* generic.parse_send in C: 1 with outs[0] filled, 0 when the Lua adapter must read this answer. */
static int adapter_generic_parse(sr_rules *r, const sr_provider *p, int n, int status, const char *body,
                                 size_t body_len, sr_adapter_outcome *outs) {
    char id[sizeof outs[0].provider_id];
    if (n != 1 || !adapter_generic_template(r, p) || !sr_generic_provider_id(status, body, body_len, id, sizeof id))
        return 0;
    memset(&outs[0], 0, sizeof outs[0]);
    outs[0].ok = 1;
    outs[0].retry_after_s = -1;
    memcpy(outs[0].provider_id, id, sizeof id);
    return 1;
}

/* Runs body on L; -1 when it raised (err from the protected call) or returned -1 (err from it). */
static int adapter_run(adapter_call *c, lua_State *L, lua_CFunction body) {
    c->rc = -1;
    if (sr_rules_protected(c->r, L, body, c, c->err, c->errlen) != 0) return -1;
    return c->rc;
}

int sr_adapter_build_send(sr_rules *r, const sr_provider *p, sr_message *const *msgs, int n, sr_adapter_request *out,
                          int *msgs_ref, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (msgs_ref) *msgs_ref = LUA_NOREF;
    if (adapter_generic_build(r, p, msgs, n, out)) return 0;
    /* The kept tables live in the adapter's state until the answer: only while they cannot crowd its
     * memory cap (sr_rules_budget_enter), else parse_send gets new ones. */
    const sr_lua_heap *heap = p->L == r->adapter_L ? &r->adapter_heap : &r->heap;
    if (heap->used > r->config->memory_limit / 4) msgs_ref = NULL;
    adapter_call c = {
        .r = r, .p = p, .msgs = msgs, .n = n, .keep_ref = msgs_ref, .req = out, .err = err, .errlen = errlen};
    int rc = adapter_run(&c, p->L, adapter_body_build_send);
    if (rc != 0) {
        sr_adapter_request_free(out);
        if (msgs_ref) {
            sr_adapter_msgs_release(p, *msgs_ref);
            *msgs_ref = LUA_NOREF;
        }
    }
    return rc;
}

void sr_adapter_msgs_release(const sr_provider *p, int msgs_ref) {
    /* Clearing an existing registry slot allocates nothing: safe outside a protected call. */
    if (msgs_ref >= 0) luaL_unref(p->L, LUA_REGISTRYINDEX, msgs_ref);
}

int sr_adapter_parse_send(sr_rules *r, const sr_provider *p, sr_message *const *msgs, int n, int msgs_ref, int status,
                          const char *body, size_t body_len, const sr_adapter_header *headers, int header_count,
                          sr_adapter_outcome *outs, char *err, size_t errlen) {
    if (adapter_generic_parse(r, p, n, status, body, body_len, outs)) {
        sr_adapter_msgs_release(p, msgs_ref);
        return 0;
    }
    adapter_call c = {.r = r,
                      .p = p,
                      .msgs = msgs,
                      .n = n,
                      .msgs_ref = msgs_ref,
                      .status = status,
                      .body = body,
                      .body_len = body_len,
                      .headers = headers,
                      .header_count = header_count,
                      .outs = outs,
                      .err = err,
                      .errlen = errlen};
    int rc = adapter_run(&c, p->L, adapter_body_parse_send) == 0 ? 0 : -1;
    sr_adapter_msgs_release(p, msgs_ref);
    return rc;
}

int sr_adapter_route(sr_rules *r, const sr_message *m, char **names, int max, sr_route_options *opt, char *err,
                     size_t errlen) {
    if (opt) memset(opt, 0, sizeof *opt);
    if (r->route_ref == LUA_NOREF) return 0;
    adapter_call c = {.r = r, .m = m, .names = names, .max = max, .opt = opt, .err = err, .errlen = errlen};
    int rc = adapter_run(&c, r->L, adapter_body_route);
    if (rc < 0) {
        for (int i = 0; i < c.made; i++) {
            free(names[i]);
            names[i] = NULL;
        }
        if (opt) memset(opt, 0, sizeof *opt);
    }
    return rc;
}

int sr_adapter_verify(sr_rules *r, const sr_provider *p, const sr_webhook_request *rq, char *reason, size_t len) {
    adapter_call c = {.r = r, .p = p, .rq = rq, .err = reason, .errlen = len};
    c.rc = -1;
    if (sr_rules_protected(r, p->L, adapter_body_verify, &c, reason, len) != 0) return -1;
    return c.rc;
}

int sr_adapter_parse_status(sr_rules *r, const sr_provider *p, const sr_webhook_request *rq, sr_report **out, int *n,
                            sr_webhook_answer *ans, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    memset(ans, 0, sizeof *ans);
    adapter_call c = {.r = r, .p = p, .rq = rq, .reports = out, .count = n, .ans = ans, .err = err, .errlen = errlen};
    if (adapter_run(&c, p->L, adapter_body_parse_status) != 0) {
        free(*out);
        *out = NULL;
        *n = 0;
        sr_webhook_answer_free(ans);
        return -1;
    }
    return 0;
}

int sr_adapter_parse_inbound(sr_rules *r, const sr_provider *p, const sr_webhook_request *rq, sr_inbound_sms **out,
                             int *n, sr_webhook_answer *ans, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    memset(ans, 0, sizeof *ans);
    adapter_call c = {.r = r, .p = p, .rq = rq, .inbound = out, .count = n, .ans = ans, .err = err, .errlen = errlen};
    if (adapter_run(&c, p->L, adapter_body_parse_inbound) != 0) {
        /* *n is minus the entries allocated until the list was complete. */
        sr_inbound_sms_free(*out, *n < 0 ? -*n : *n);
        *out = NULL;
        *n = 0;
        sr_webhook_answer_free(ans);
        return -1;
    }
    return 0;
}

int sr_adapter_build_poll(sr_rules *r, const sr_provider *p, const char *const *ids, int n, sr_adapter_request *out,
                          char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    adapter_call c = {.r = r, .p = p, .ids = ids, .n = n, .req = out, .err = err, .errlen = errlen};
    int rc = adapter_run(&c, p->L, adapter_body_build_poll);
    if (rc != 0) sr_adapter_request_free(out);
    return rc;
}

int sr_adapter_parse_poll(sr_rules *r, const sr_provider *p, const char *const *ids, int n, int status,
                          const char *body, size_t body_len, sr_report **out, int *count, char *err, size_t errlen) {
    *out = NULL;
    *count = 0;
    adapter_call c = {.r = r,
                      .p = p,
                      .ids = ids,
                      .n = n,
                      .status = status,
                      .body = body,
                      .body_len = body_len,
                      .reports = out,
                      .count = count,
                      .err = err,
                      .errlen = errlen};
    if (adapter_run(&c, p->L, adapter_body_parse_poll) != 0) {
        free(*out);
        *out = NULL;
        *count = 0;
        return -1;
    }
    return 0;
}
