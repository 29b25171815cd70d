/* lua_http: sms.http.request{method, url, headers, body, timeout_ms} →
 * status, body, headers — outgoing HTTP from rule handlers, without blocking
 * the loop (the OpenResty pattern). The handler's coroutine starts the
 * request on the daemon's HTTP client and yields; the completion callback
 * pushes the results onto the coroutine and resumes it. Meanwhile the loop
 * serves everything else, other handlers included.
 *
 * Expected failures come back as nil, "message" ("timeout: ...",
 * "connection failed: ...", "response too large ...", "cancelled" at
 * shutdown); misuse (bad arguments, a call at load time or from a place that
 * cannot yield) raises.
 *
 * The invocation's instruction budget keeps counting across the yield, but
 * time spent waiting is not instructions: the timeout_ms of the request is
 * what bounds the wait. */
#include <errno.h>
#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_client.h"
#include "rules/host.h"
#include "rules/rules_exec.h"
#include "rules/bindings/bindings.h"

#define HTTP_DEFAULT_TIMEOUT_MS 10000
#define HTTP_MAX_TIMEOUT_MS 60000
#define HTTP_MAX_URL 8192
#define HTTP_MAX_HEADERS 100
#define HTTP_MAX_HEADER_LINE 8192
#define HTTP_MAX_REQUEST_BODY (8 * 1024 * 1024)
/* Response bodies handed to Lua: longer ones are nil, "response too large". */
#define HTTP_MAX_RESPONSE_BODY (1024 * 1024)

/* Registry table: handler thread (light userdata; the thread itself is
 * anchored by its invocation until it finishes) → token of the request it
 * waits on. A completion that no longer matches (the rule got hold of its
 * handler's thread with coroutine.running and resumed it by hand) is dropped
 * instead of resuming a thread that waits for something else. */
static const char HTTP_PENDING_KEY = 'h'; /* registry key: its address */

/* Tokens of requests, unique across states (loop thread only). */
static lua_Integer http_next_token;

/* One request in flight. Allocated just before the request starts (after
 * everything that can raise) and freed by the completion callback, which
 * the client runs exactly once, also on shutdown (SR_HTTP_E_CANCELLED). */
typedef struct http_pending {
    sr_rules *rules;
    sr_invocation *inv;
    lua_State *co; /* the handler's thread, anchored by the invocation */
    lua_Integer token;
} http_pending;

/* What the completion hands to http_push_results under lua_pcall. */
typedef struct http_results {
    const sr_http_client_response *resp;
    int nresults;
} http_results;

static const char *const http_methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", NULL};

/* RFC 9110 token characters, for header names. */
static int http_is_token(const char *s, size_t len) {
    if (len == 0) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("!#$%&'*+-.^_`|~", ch)))
            return 0;
    }
    return 1;
}

/* Checks the method field; returns its canonical (upper-case) spelling. */
static const char *http_check_method(lua_State *L) {
    int t = lua_getfield(L, 1, "method");
    const char *method = "GET";
    if (t != LUA_TNIL) {
        if (t != LUA_TSTRING) luaL_argerror(L, 1, "method must be a string");
        const char *m = lua_tostring(L, -1);
        method = NULL;
        for (int i = 0; http_methods[i]; i++)
            if (strcasecmp(m, http_methods[i]) == 0) method = http_methods[i];
        if (!method) luaL_argerror(L, 1, "method must be one of GET, POST, PUT, PATCH, DELETE, HEAD");
    }
    lua_pop(L, 1);
    return method;
}

/* Checks the url field; leaves the string on the stack (anchored). */
static const char *http_check_url(lua_State *L) {
    if (lua_getfield(L, 1, "url") != LUA_TSTRING) luaL_argerror(L, 1, "url is required and must be a string");
    size_t len;
    const char *url = lua_tolstring(L, -1, &len);
    if (len > HTTP_MAX_URL) luaL_argerror(L, 1, "url is longer than 8192 bytes");
    size_t scheme = strncasecmp(url, "http://", 7) == 0 ? 7 : strncasecmp(url, "https://", 8) == 0 ? 8 : 0;
    if (!scheme || len == scheme) luaL_argerror(L, 1, "url must be an http:// or https:// URL");
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)url[i];
        if (ch <= ' ' || ch == 0x7f) luaL_argerror(L, 1, "url must not contain spaces or control characters");
    }
    return url;
}

/* Checks the headers field and leaves on the stack a userdata holding the
 * NULL-terminated array of "Name: value" lines the client wants, and after
 * it a table anchoring those strings. Returns the array. */
static const char **http_check_headers(lua_State *L) {
    int t = lua_getfield(L, 1, "headers");
    if (t != LUA_TNIL && t != LUA_TTABLE) luaL_argerror(L, 1, "headers must be a table of name = value strings");
    int headers = lua_gettop(L);
    const char **lines = lua_newuserdatauv(L, sizeof *lines * (HTTP_MAX_HEADERS + 1), 0);
    lua_newtable(L); /* anchors the lines */
    int count = 0;
    if (t == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, headers)) {
            if (lua_type(L, -2) != LUA_TSTRING) luaL_argerror(L, 1, "headers: names must be strings");
            size_t nlen, vlen;
            const char *name = lua_tolstring(L, -2, &nlen);
            if (!http_is_token(name, nlen)) luaL_argerror(L, 1, "headers: a name is not a valid header name");
            if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0)
                luaL_argerror(L, 1, "headers: Content-Length and Transfer-Encoding are set from the body");
            int vt = lua_type(L, -1);
            if (vt != LUA_TSTRING && vt != LUA_TNUMBER) luaL_argerror(L, 1, "headers: values must be strings");
            /* A number converted in place would confuse lua_next: copy it. */
            lua_pushvalue(L, -1);
            const char *value = lua_tolstring(L, -1, &vlen);
            if (memchr(value, '\r', vlen) || memchr(value, '\n', vlen) || strlen(value) != vlen)
                luaL_argerror(L, 1, "headers: values must not contain CR, LF or NUL");
            if (nlen + vlen + 2 > HTTP_MAX_HEADER_LINE) luaL_argerror(L, 1, "headers: a header is longer than 8 KiB");
            if (count == HTTP_MAX_HEADERS) luaL_argerror(L, 1, "headers: more than 100 headers");
            lines[count] = lua_pushfstring(L, "%s: %s", name, value);
            lua_rawseti(L, headers + 2, count + 1);
            count++;
            lua_pop(L, 2); /* the copy and the value */
        }
    }
    lines[count] = NULL;
    return lines;
}

/* Every field of the request table is known: a typo must not be ignored. */
static void http_check_fields(lua_State *L) {
    static const char *const known[] = {"method", "url", "headers", "body", "timeout_ms", NULL};
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (int i = 0; known[i] && !ok; i++) ok = strcmp(lua_tostring(L, -1), known[i]) == 0;
        if (!ok) {
            const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1);
            luaL_argerror(
                L, 1, lua_pushfstring(L, "unknown field '%s' (known: method, url, headers, body, timeout_ms)", name));
        }
    }
}

/* Pushes nil, "prefix: detail" (or nil, "prefix" without a detail). */
static int http_push_failure(lua_State *L, const char *prefix, const char *detail) {
    lua_pushnil(L);
    if (detail && detail[0]) lua_pushfstring(L, "%s: %s", prefix, detail);
    else
        lua_pushstring(L, prefix);
    return 2;
}

/* Run under lua_pcall on the main thread (a memory error must not escape
 * the loop callback): pushes status, body, headers — or nil, "message" —
 * and records how many. */
static int http_push_results(lua_State *L) {
    http_results *res = lua_touserdata(L, 1);
    const sr_http_client_response *resp = res->resp;
    lua_settop(L, 0);
    res->nresults = 2;
    switch (resp->error) {
    case 0: break;
    case SR_HTTP_E_TIMEOUT: return http_push_failure(L, "timeout", resp->error_message);
    case SR_HTTP_E_CONNECT: return http_push_failure(L, "connection failed", resp->error_message);
    case SR_HTTP_E_CANCELLED: return http_push_failure(L, "cancelled", NULL);
    default: return http_push_failure(L, "transport error", resp->error_message);
    }
    if (resp->body_len > HTTP_MAX_RESPONSE_BODY) {
        lua_pushnil(L);
        lua_pushfstring(L, "response too large (%I bytes; the limit is %d)", (lua_Integer)resp->body_len,
                        HTTP_MAX_RESPONSE_BODY);
        return 2;
    }
    lua_pushinteger(L, resp->status);
    lua_pushlstring(L, resp->body ? resp->body : "", resp->body_len);
    lua_createtable(L, 0, resp->header_count);
    for (int i = 0; i < resp->header_count; i++) {
        /* Names in lower case; repeated headers joined with ", " (RFC 9110 5.3). */
        luaL_Buffer b;
        const char *name = resp->headers[i].name;
        size_t nlen = strlen(name);
        char *lower = luaL_buffinitsize(L, &b, nlen);
        for (size_t j = 0; j < nlen; j++) lower[j] = (char)(name[j] >= 'A' && name[j] <= 'Z' ? name[j] + 32 : name[j]);
        luaL_pushresultsize(&b, nlen);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TSTRING) {
            lua_pushliteral(L, ", ");
            lua_pushstring(L, resp->headers[i].value);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, resp->headers[i].value);
        }
        lua_rawset(L, -3);
    }
    res->nresults = 3;
    return 3;
}

/* The completion: hands the results to the waiting handler and resumes it. */
static void http_on_done(const sr_http_client_response *resp, void *ud) {
    http_pending *p = ud;
    lua_State *L = p->rules->L;
    lua_State *co = p->co;
    int top = lua_gettop(L);

    sr_lua_push_registry_table(L, &HTTP_PENDING_KEY);
    int current = lua_rawgetp(L, -1, co) == LUA_TNUMBER && lua_tointeger(L, -1) == p->token;
    lua_pop(L, 1);
    if (!current) {
        /* The thread no longer waits on this request (see HTTP_PENDING_KEY). */
        lua_settop(L, top);
        free(p);
        return;
    }
    lua_pushnil(L);
    lua_rawsetp(L, -2, co);
    lua_settop(L, top);

    sr_invocation *inv = p->inv;
    free(p);
    if (lua_status(co) != LUA_YIELD) {
        /* The rule resumed its handler by hand and it ran to its end elsewhere:
         * resuming the dead coroutine fails, which finishes the invocation
         * (an error, nothing committed) instead of leaking it. */
        if (lua_status(co) != LUA_OK || lua_gettop(co) == 0) sr_invocation_resume(inv, 0);
        return;
    }
    http_results res = {resp, 0};
    lua_pushcfunction(L, http_push_results);
    lua_pushlightuserdata(L, &res);
    int nresults;
    if (lua_pcall(L, 1, LUA_MULTRET, 0) == LUA_OK && lua_checkstack(co, res.nresults)) {
        nresults = res.nresults;
        lua_xmove(L, co, nresults);
    } else {
        /* Out of memory under the state's cap: the handler sees a plain nil
         * (pushing a message could fail again). */
        lua_settop(L, top);
        lua_pushnil(co);
        nresults = 1;
    }
    lua_settop(L, top);
    sr_invocation_resume(inv, nresults);
}

/* The invocation sms.http.request runs in; raises when it is called where it cannot wait (at load time, where
 * it cannot yield, or on a coroutine other than the handler's). Pushes nothing. */
static sr_invocation *http_check_caller(lua_State *L, sr_rules *r) {
    sr_invocation *inv = sr_invocation_current(r);
    if (!inv || !sr_rules_store(r))
        luaL_error(L, "sms.http.request may only be called from a handler, not while the rules load");
    if (!lua_isyieldable(L))
        luaL_error(L, "sms.http.request cannot wait here: it cannot be called from a metamethod, an "
                      "iterator or a callback of a C function (table.sort, string.gsub)");
    if (L != sr_invocation_thread(inv))
        luaL_error(L, "sms.http.request cannot be called from a coroutine the rule created; call it from "
                      "the handler itself");
    return inv;
}

/* Checks the body field (none for HEAD); pushes it (nil or the string, anchoring what it returns) and
 * returns the bytes, NULL for none. */
static const char *http_check_body(lua_State *L, const char *method, size_t *body_len) {
    const char *body = NULL;
    *body_len = 0;
    int t = lua_getfield(L, 1, "body");
    if (t != LUA_TNIL) {
        if (t != LUA_TSTRING) luaL_argerror(L, 1, "body must be a string");
        body = lua_tolstring(L, -1, body_len);
        if (*body_len > HTTP_MAX_REQUEST_BODY) luaL_argerror(L, 1, "body is longer than 8 MiB");
        if (strcmp(method, "HEAD") == 0) luaL_argerror(L, 1, "body: a HEAD request has no body");
    }
    return body;
}

/* Checks the timeout_ms field; pushes its value (nil or the number) and returns it or the default. */
static lua_Integer http_check_timeout(lua_State *L) {
    lua_Integer timeout_ms = HTTP_DEFAULT_TIMEOUT_MS;
    int t = lua_getfield(L, 1, "timeout_ms");
    if (t != LUA_TNIL) {
        int isint = 0;
        timeout_ms = lua_tointegerx(L, -1, &isint);
        if (t != LUA_TNUMBER || !isint || timeout_ms < 1 || timeout_ms > HTTP_MAX_TIMEOUT_MS)
            luaL_argerror(L, 1, "timeout_ms must be an integer from 1 to 60000");
    }
    return timeout_ms;
}

/* sms.http.request{method="GET", url=..., headers={...}, body=..., timeout_ms=...}
 * → status, body, headers (names in lower case) | nil, "message". Yields. */
static int l_http_request(lua_State *L) {
    sr_rules *r = sr_rules_from(L);
    sr_invocation *inv = http_check_caller(L, r);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    http_check_fields(L);
    const char *method = http_check_method(L);
    const char *url = http_check_url(L);          /* 2 */
    const char **headers = http_check_headers(L); /* 3, 4, 5 */
    size_t body_len;
    const char *body = http_check_body(L, method, &body_len); /* 6 */
    lua_Integer timeout_ms = http_check_timeout(L);           /* 7 */
    if (!sr_rules_client(r)) return http_push_failure(L, "cancelled", "the daemon is shutting down");

    /* Register the wait before anything is allocated outside Lua: this is
     * the last step that can raise. */
    lua_Integer token = ++http_next_token;
    sr_lua_push_registry_table(L, &HTTP_PENDING_KEY);
    lua_pushinteger(L, token);
    lua_rawsetp(L, -2, L);

    http_pending *p = malloc(sizeof *p);
    if (!p) abort();
    p->rules = r;
    p->inv = inv;
    p->co = L;
    p->token = token;
    sr_http_client_request req = {
        .method = method,
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = body_len,
        .timeout_ms = (long)timeout_ms,
    };
    int rc = sr_http_client_request_start(sr_rules_client(r), &req, http_on_done, p);
    if (rc != 0) {
        /* The callback never runs: undo the registration. */
        free(p);
        lua_pushnil(L);
        lua_rawsetp(L, -2, L);
        if (rc == -ECANCELED) return http_push_failure(L, "cancelled", "the daemon is shutting down");
        return http_push_failure(L, "request failed", rc == -ENOMEM ? "out of memory" : "invalid request");
    }
    sr_invocation_expect_yield(inv);
    return lua_yield(L, 0);
}

void sr_lua_open_http(lua_State *L) {
    static const luaL_Reg fns[] = {{"request", l_http_request}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_setfield(L, -2, "http");
}
