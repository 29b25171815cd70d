#include "lua_fixture.h"

#include <lauxlib.h>
#include <lua-cjson.h>
#include <lualib.h>

#include "rules/lua_string.h"

/* Declared here, as the test files always did, rather than through
 * src/rules/rules.h: the fixture needs only the embedded sources. */
const char *sr_lua_embedded(const char *name, size_t *len);
/* sms.crypto's opener (src/rules/bindings/lua_crypto.c): util.base64 and verify() use it. */
void sr_lua_open_crypto(lua_State *L);
/* sms.form's opener (src/rules/bindings/lua_form.c): util.form_decode reads forms with it. */
void sr_lua_open_form(lua_State *L);

/* The helpers every adapter test uses (listed in lua_fixture.h). The chunk
 * gets two arguments: whether show_request shows bodies as sent, and the
 * string.format format canon uses for numbers that are not integers. */
static const char shared_prelude[] =
    "local raw_request_body, number_format = ...\n"
    "local cjson = require 'cjson'\n"
    "local real_time = os.time\n"
    "NOW = 1700000000 -- 2023-11-14 22:13:20 UTC, a Tuesday\n"
    "os.time = function(t) if t then return real_time(t) end return NOW end\n"
    "NONE = {}\n"
    /* JSON with sorted keys; integers without \".0\" (cjson 2.1 decodes floats). */
    "function canon(v)\n"
    "  if v == cjson.null then return 'null' end\n"
    "  local t = type(v)\n"
    "  if t == 'table' then\n"
    "    if next(v) == nil then return '{}' end\n"
    "    local parts = {}\n"
    "    if #v > 0 then\n"
    "      for i = 1, #v do parts[i] = canon(v[i]) end\n"
    "      return '[' .. table.concat(parts, ',') .. ']'\n"
    "    end\n"
    "    local keys = {}\n"
    "    for k in pairs(v) do keys[#keys + 1] = k end\n"
    "    table.sort(keys)\n"
    "    for i, k in ipairs(keys) do parts[i] = string.format('%q', k):gsub('\\\\\\n', '\\\\n') .. ':' .. canon(v[k]) "
    "end\n"
    "    return '{' .. table.concat(parts, ',') .. '}'\n"
    "  elseif t == 'string' then return (string.format('%q', v):gsub('\\\\\\n', '\\\\n'))\n"
    "  elseif t == 'number' then\n"
    "    local i = math.tointeger(v)\n"
    "    return i and string.format('%d', i) or string.format(number_format, v)\n"
    "  end\n"
    "  return tostring(v)\n"
    "end\n"
    "function merge(t, over)\n"
    "  for k, v in pairs(over or {}) do if v == NONE then t[k] = nil else t[k] = v end end\n"
    "  return t\n"
    "end\n"
    /* Message n: id 01K...000n, to +849123400n, with every field the core
     * passes (docs/providers.md, Writing an adapter). */
    "function msg(n, over)\n"
    "  local id = string.format('01K0000000000000000000%04d', n)\n"
    "  return merge({id = id, to = string.format('+8491234%04d', n), text = 'Hello ' .. n,\n"
    "                segments = 1, encoding = 'gsm7', priority = 0, validity = 3600,\n"
    "                idempotency_key = id, tags = {}}, over)\n"
    "end\n"
    "function msgs(n) local t = {} for i = 1, n do t[i] = msg(i) end return t end\n"
    /* A request as text: first line, sorted headers, the body if any. */
    "function show_request(r)\n"
    "  local lines = {r.method .. ' ' .. r.url}\n"
    "  local names = {}\n"
    "  for k in pairs(r.headers) do names[#names + 1] = k end\n"
    "  table.sort(names)\n"
    "  for _, k in ipairs(names) do lines[#lines + 1] = k .. ': ' .. r.headers[k] end\n"
    "  if r.body ~= nil then\n"
    "    lines[#lines + 1] = raw_request_body and r.body or canon(cjson.decode(r.body))\n"
    "  end\n"
    "  return table.concat(lines, '\\n')\n"
    "end\n"
    "function request(adapter, c, ms) return show_request(adapter.build_send(c, ms or {msg(1)})) end\n"
    /* Outcomes of an answer; raises unless there is one per message. */
    "function outcomes(adapter, c, ms, status, body, headers)\n"
    "  ms = type(ms) == 'table' and ms or msgs(ms)\n"
    "  local out = adapter.parse_send(c, ms, {status = status, body = body, headers = headers or {}})\n"
    "  if type(out) ~= 'table' or #out ~= #ms then\n"
    "    error(string.format('%d outcomes for %d messages', type(out) == 'table' and #out or -1, #ms))\n"
    "  end\n"
    "  return out\n"
    "end\n"
    /* The error a call raises, or 'no error'. */
    "function raises(f, ...)\n"
    "  local ok, err = pcall(f, ...)\n"
    "  return ok and 'no error' or tostring(err)\n"
    "end\n"
    /* verify's answer as text: 'true' or 'false: reason'. */
    "function verdict(adapter, c, r)\n"
    "  local ok, why = adapter.verify(c, r)\n"
    "  return ok and tostring(ok) or (tostring(ok) .. ': ' .. tostring(why))\n"
    "end\n"
    /* What parse_status / parse_inbound return, as JSON. */
    "function status_of(adapter, c, r)\n"
    "  local updates, ans = adapter.parse_status(c, r)\n"
    "  return canon(updates) .. ' ' .. canon(ans)\n"
    "end\n"
    "function inbound_of(adapter, c, r)\n"
    "  local messages, ans = adapter.parse_inbound(c, r)\n"
    "  return canon(messages) .. ' ' .. canon(ans)\n"
    "end\n";

/* Message handler for every pcall here: the error with a traceback. */
static int fixture_traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

/* package.preload entry for an embedded module: "adapters.util" loads the
 * embedded "adapters/util", as the daemon does. */
static int fixture_load_embedded(lua_State *L) {
    char path[128];
    snprintf(path, sizeof path, "%s", luaL_checkstring(L, 1));
    for (char *p = path; *p; p++)
        if (*p == '.') *p = '/';
    size_t len;
    const char *src = sr_lua_embedded(path, &len);
    if (!src) return luaL_error(L, "no embedded module '%s'", path);
    char chunk[140];
    snprintf(chunk, sizeof chunk, "=%s", path);
    if (luaL_loadbufferx(L, src, len, chunk, "t") != LUA_OK) return lua_error(L);
    lua_call(L, 0, 1);
    return 1;
}

/* Loads the embedded adapter name ("generic") exactly as the daemon will,
 * calls the chunk with no arguments and stores the table it returns in the
 * global of the same name. */
static void fixture_load_adapter(lua_State *L, const char *name) {
    char path[64], chunk[72];
    snprintf(path, sizeof path, "adapters/%s", name);
    snprintf(chunk, sizeof chunk, "=%s", path);
    size_t len;
    const char *src = sr_lua_embedded(path, &len);
    if (!src) UNIT_FAIL("adapter %s is not embedded", path);
    lua_pushcfunction(L, fixture_traceback);
    if (luaL_loadbufferx(L, src, len, chunk, "t") != LUA_OK) UNIT_FAIL("%s: %s", path, lua_tostring(L, -1));
    if (lua_pcall(L, 0, 1, -2) != LUA_OK) UNIT_FAIL("%s: %s", path, lua_tostring(L, -1));
    if (!lua_istable(L, -1)) UNIT_FAIL("%s returned a %s, not a table", path, luaL_typename(L, -1));
    lua_setglobal(L, name);
    lua_pop(L, 1);
}

/* Runs a prelude chunk with the options it reads as its arguments (...):
 * raw_request_body and canon's number format. */
static void fixture_run_prelude(lua_State *L, const char *code, const char *chunk,
                                const struct fixture_options *options) {
    lua_pushcfunction(L, fixture_traceback);
    if (luaL_loadbufferx(L, code, strlen(code), chunk, "t") != LUA_OK)
        UNIT_FAIL("%s: %s", chunk + 1, lua_tostring(L, -1));
    lua_pushboolean(L, options->raw_request_body);
    lua_pushfstring(L, "%%.%dg", options->canon_digits ? options->canon_digits : 17);
    if (lua_pcall(L, 2, 0, -4) != LUA_OK) UNIT_FAIL("%s: %s", chunk + 1, lua_tostring(L, -1));
    lua_pop(L, 1);
}

lua_State *fixture_adapters_state(const struct fixture_options *options) {
    lua_State *L = luaL_newstate();
    CHECK(L != NULL);
    luaL_openlibs(L);
    sr_lua_bound_string(L); /* the daemon's bounded patterns, as rules_sandbox installs them */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_cjson);
    lua_setfield(L, -2, "cjson");
    lua_pushcfunction(L, fixture_load_embedded);
    lua_setfield(L, -2, "adapters.util");
    for (const char *const *name = options->adapters; *name; name++) {
        const char *module = lua_pushfstring(L, "adapters.%s", *name);
        lua_pushcfunction(L, fixture_load_embedded);
        lua_setfield(L, -3, module);
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    lua_newtable(L);
    sr_lua_open_crypto(L);
    sr_lua_open_form(L);
    lua_setglobal(L, "sms");
    fixture_run_prelude(L, shared_prelude, "=lua_fixture", options);
    if (options->prelude) fixture_run_prelude(L, options->prelude, "=prelude", options);
    for (const char *const *name = options->adapters; *name; name++) fixture_load_adapter(L, *name);
    lua_getglobal(L, "require");
    lua_pushstring(L, "adapters.util");
    lua_call(L, 1, 1);
    lua_setglobal(L, "util");
    return L;
}

char *fixture_eval(lua_State *L, const char *code) {
    int base = lua_gettop(L);
    lua_pushcfunction(L, fixture_traceback);
    lua_pushfstring(L, "return %s", code);
    if (luaL_loadbufferx(L, lua_tostring(L, -1), lua_rawlen(L, -1), "=test", "t") != LUA_OK) {
        lua_pop(L, 2);
        if (luaL_loadbufferx(L, code, strlen(code), "=test", "t") != LUA_OK)
            UNIT_FAIL("lua: %s\n  in: %s", lua_tostring(L, -1), code);
    } else {
        lua_remove(L, -2);
    }
    if (lua_pcall(L, 0, 1, base + 1) != LUA_OK) UNIT_FAIL("lua: %s\n  in: %s", lua_tostring(L, -1), code);
    size_t len;
    const char *s = luaL_tolstring(L, -1, &len);
    char *copy = strndup(s, len);
    CHECK(copy != NULL);
    lua_settop(L, base);
    return copy;
}
