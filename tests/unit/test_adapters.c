/* Unit tests for the provider adapters in lua/adapters/ (generic, mock and
 * their helper module util), run in a real Lua state from the sources
 * embedded in the binary, loaded the way the daemon loads them.
 *
 * Each test builds its state with lua_fixture (cjson and the embedded
 * adapters.* modules preloaded, the shared helpers of lua_fixture.h, plus the
 * few below) and compares what Lua expressions return with the expected
 * text: requests as "METHOD url", sorted headers and the body's JSON with
 * sorted keys; outcomes as JSON with sorted keys, so every field is visible.
 * os.time() is pinned to NOW, so HTTP-date Retry-After values are exact.
 * The webhook tests run with the real sms.crypto (src/rules/bindings/lua_crypto.c); their
 * X-Signature vectors were computed independently (Python hmac/hashlib). */
#include "lua_fixture.h"

static const char prelude[] =
    /* The provider options as sms.provider would pass them. */
    "function cfg(over)\n"
    "  return merge({name = 'primary', adapter = 'generic', url = 'http://127.0.0.1:9090/send',\n"
    "                api_key = 'k', sender = 'Brand'}, over)\n"
    "end\n"
    /* Outcomes of an answer to n messages (or the list n) as JSON. */
    "function answer(adapter, n, status, body, headers)\n"
    "  return canon(outcomes(adapter, cfg(), n, status, body, headers))\n"
    "end\n"
    /* A webhook request as the core hands it over: the form parsed (body
     * plus query) when the body is form-encoded or there is a query. */
    "local util = require 'adapters.util'\n"
    "function hook(body, headers, query)\n"
    "  query = query or ''\n"
    "  local ct = headers['content-type'] or ''\n"
    "  local is_form = ct:find('application/x-www-form-urlencoded', 1, true)\n"
    "  local form = nil\n"
    "  if is_form or query ~= '' then\n"
    "    form = is_form and util.form_decode(body) or {}\n"
    "    for k, v in pairs(util.form_decode(query)) do if form[k] == nil then form[k] = v end end\n"
    "  end\n"
    "  local path = '/hooks/primary/status'\n"
    "  return {method = 'POST', url = 'https://sms.example.com' .. path .. (query ~= '' and '?' .. query or ''),\n"
    "          path = path, query = query, headers = headers, body = body, form = form}\n"
    "end\n"
    "function json_hook(body, query) return hook(body, {['content-type'] = 'application/json'}, query) end\n"
    "function form_hook(body, query)\n"
    "  return hook(body, {['content-type'] = 'application/x-www-form-urlencoded'}, query)\n"
    "end\n"
    /* A JSON webhook carrying X-Signature (nil: none). */
    "function signed(body, sig)\n"
    "  local headers = {['content-type'] = 'application/json'}\n"
    "  headers['x-signature'] = sig\n"
    "  return hook(body, headers)\n"
    "end\n"
    "function updates_of(adapter, r) return canon((adapter.parse_status(cfg(), r))) end\n";

/* A fresh state with sms.crypto and the globals generic, mock and util.
 * Close with lua_close. */
static lua_State *adapters_state(void) {
    static const char *const adapters[] = {"generic", "mock", NULL};
    return fixture_adapters_state(&(struct fixture_options){.adapters = adapters, .prelude = prelude});
}

/* ---- loading ---- */

TEST(adapters_load_as_the_daemon_loads_them) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "math.type(generic.batch_size) .. ' ' .. generic.batch_size", "integer 1");
    CHECK_LUA(L, "math.type(mock.batch_size) .. ' ' .. mock.batch_size", "integer 100");
    CHECK_LUA(L, "type(generic.build_send) .. ' ' .. type(generic.parse_send)", "function function");
    CHECK_LUA(L, "type(mock.build_send) .. ' ' .. type(mock.parse_send)", "function function");
    CHECK_LUA(L, "type(generic.verify) .. type(generic.parse_status) .. type(generic.parse_inbound)",
              "functionfunctionfunction");
    CHECK_LUA(L, "type(mock.verify) .. type(mock.parse_status) .. type(mock.parse_inbound)",
              "functionfunctionfunction");
    CHECK_LUA(L, "table.concat(generic.options, ',') .. ' ' .. table.concat(mock.options, ',')",
              "webhook_secret webhook_secret");
    /* Neither polls: reports come by webhook. */
    CHECK_LUA(L, "type(generic.build_poll) .. type(mock.build_poll)", "nilnil");
    /* The same module through require, as rules would see it. */
    CHECK_LUA(L, "require('adapters.generic').batch_size", "1");
    CHECK_LUA(L, "type(require('adapters.util').retry_after)", "function");
    lua_close(L);
}

TEST(adapters_use_no_io_or_os_beyond_time) {
    /* The rules sandbox has no io and an os with only the clock functions. */
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "io = nil; package.loaded.io = nil\n"
              "os = {time = os.time, clock = os.clock, date = os.date, difftime = os.difftime}\n"
              "package.loaded['adapters.util'] = nil; package.loaded['adapters.generic'] = nil\n"
              "local g = require('adapters.generic')\n"
              "local r = g.build_send(cfg(), {msg(1)})\n"
              "return answer(g, 1, 429, '', {['retry-after'] = 'Tue, 14 Nov 2023 22:13:25 GMT'})",
              "[{\"error\":\"HTTP 429\",\"ok\":false,\"retry\":true,\"retry_after\":5}]");
    lua_close(L);
}

/* ---- generic: the request ---- */

TEST(generic_request) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "request(generic, cfg(), {msg(1)})",
              "POST http://127.0.0.1:9090/send\n"
              "Accept: application/json\n"
              "Authorization: Bearer k\n"
              "Content-Type: application/json\n"
              "Idempotency-Key: 01K00000000000000000000001\n"
              "{\"from\":\"Brand\",\"message\":\"Hello 1\",\"to\":\"84912340001\"}");
    /* Text is passed through byte for byte: quotes, newlines, UCS-2 text. */
    CHECK_LUA(L,
              "cjson = require 'cjson'; return cjson.decode(generic.build_send(cfg(), "
              "{msg(1, {text = 'Xin chào \"bạn\"\\n😀', encoding = 'ucs2'})}).body).message",
              "Xin chào \"bạn\"\n😀");
    /* A number already without '+' is left as it is. */
    CHECK_LUA(L, "require('cjson').decode(generic.build_send(cfg(), {msg(1, {to = '84912345678'})}).body).to",
              "84912345678");
    lua_close(L);
}

TEST(generic_sender_fallback) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "require('cjson').decode(generic.build_send(cfg(), {msg(1, {from = 'Shop'})}).body).from", "Shop");
    CHECK_LUA(L, "require('cjson').decode(generic.build_send(cfg(), {msg(1)}).body).from", "Brand");
    CHECK_LUA(L, "require('cjson').decode(generic.build_send(cfg(), {msg(1, {from = ''})}).body).from", "Brand");
    /* No sender anywhere: no "from" key at all (not null). */
    CHECK_LUA(L, "request(generic, cfg{sender = NONE}, {msg(1)}):match('[^\\n]*$')",
              "{\"message\":\"Hello 1\",\"to\":\"84912340001\"}");
    lua_close(L);
}

TEST(generic_auth_variants) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "request(generic, cfg{api_key = 's3cret', auth_header = 'X-API-Key'}, {msg(1)})",
              "POST http://127.0.0.1:9090/send\n"
              "Accept: application/json\n"
              "Content-Type: application/json\n"
              "Idempotency-Key: 01K00000000000000000000001\n"
              "X-API-Key: s3cret\n"
              "{\"from\":\"Brand\",\"message\":\"Hello 1\",\"to\":\"84912340001\"}");
    CHECK_LUA(L, "generic.build_send(cfg{api_key = 's3cret'}, {msg(1)}).headers.Authorization", "Bearer s3cret");
    /* No key: no credentials header. */
    CHECK_LUA(L, "request(generic, cfg{api_key = NONE}, {msg(1)})",
              "POST http://127.0.0.1:9090/send\n"
              "Accept: application/json\n"
              "Content-Type: application/json\n"
              "Idempotency-Key: 01K00000000000000000000001\n"
              "{\"from\":\"Brand\",\"message\":\"Hello 1\",\"to\":\"84912340001\"}");
    /* The key never goes into the URL or the body. */
    CHECK_LUA(L,
              "local r = generic.build_send(cfg{api_key = 's3cret'}, {msg(1)})\n"
              "return tostring(r.url:find('s3cret', 1, true)) .. ' ' .. tostring(r.body:find('s3cret', 1, true))",
              "nil nil");
    /* A header name that could smuggle another header is refused. */
    CHECK_LUA(L, "raises(generic.build_send, cfg{auth_header = 'X-Key: a\\r\\nX-Other'}, {msg(1)})",
              "provider primary: auth_header must be a header name");
    lua_close(L);
}

TEST(generic_misuse_raises) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "raises(generic.build_send, cfg{url = NONE}, {msg(1)})",
              "provider primary (generic): url must be an http(s) URL");
    CHECK_LUA(L, "raises(generic.build_send, cfg{url = 'ftp://x/send'}, {msg(1)})",
              "provider primary (generic): url must be an http(s) URL");
    /* A provider whose url changes is checked again. */
    CHECK_LUA(L,
              "local c = cfg(); generic.build_send(c, {msg(1)}); c.url = 'localhost:9090'\n"
              "return raises(generic.build_send, c, {msg(1)})",
              "provider primary (generic): url must be an http(s) URL");
    CHECK_LUA(L, "raises(generic.build_send, cfg(), {})", "generic adapter: expected 1 to 1 messages");
    CHECK_LUA(L, "raises(generic.build_send, cfg(), msgs(2))", "generic adapter: expected 1 to 1 messages");
    CHECK_LUA(L, "raises(generic.build_send, cfg(), {msg(1, {text = NONE})})",
              "generic adapter: message 1 needs a string to and text");
    lua_close(L);
}

/* ---- generic: answers ---- */

TEST(generic_success_ids) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "answer(generic, 1, 200, '{\"message_id\":\"abc-123\",\"status\":\"queued\"}')",
              "[" OK_ID("abc-123") "]");
    CHECK_LUA(L, "answer(generic, 1, 200, '{\"id\":\"xyz\"}')", "[" OK_ID("xyz") "]");
    CHECK_LUA(L, "answer(generic, 1, 200, '{\"message_id\":\"first\",\"id\":\"second\"}')", "[" OK_ID("first") "]");
    CHECK_LUA(L, "answer(generic, 1, 201, '{\"message_id\":\"created\"}')", "[" OK_ID("created") "]");
    CHECK_LUA(L, "answer(generic, 1, 202, '{\"id\":\"later\"}')", "[" OK_ID("later") "]");
    /* Numeric ids become strings, exactly: small ones and ones past 2^53. */
    CHECK_LUA(L, "answer(generic, 1, 200, '{\"message_id\":12345}')", "[" OK_ID("12345") "]");
    CHECK_LUA(L, "answer(generic, 1, 200, '{\"message_id\":3482512350952730368}')",
              "[" OK_ID("3482512350952730368") "]");
    CHECK_LUA(L, "answer(generic, 1, 200, '{ \"status\" : \"ok\", \"id\" : 3482512350952730368 }')",
              "[" OK_ID("3482512350952730368") "]");
    CHECK_LUA(L, "answer(generic, 1, 200, '{\"message_id\":9007199254740993,\"cost\":0.05}')",
              "[" OK_ID("9007199254740993") "]");
    /* A string id is kept as it is, digits or not. */
    CHECK_LUA(L, "answer(generic, 1, 200, '{\"message_id\":\"3482512350952730368\"}')",
              "[" OK_ID("3482512350952730368") "]");
    lua_close(L);
}

TEST(generic_2xx_without_a_usable_id_is_retried) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "answer(generic, 1, 200, 'OK')", "[" NO_ID "]");
    CHECK_LUA(L, "answer(generic, 1, 200, '<html>accepted</html>')", "[" NO_ID "]");
    CHECK_LUA(L, "answer(generic, 1, 200, '')", "[" NO_ID "]");
    CHECK_LUA(L, "answer(generic, 1, 200, nil)", "[" NO_ID "]");
    CHECK_LUA(L, "answer(generic, 1, 204, '')", "[" NO_ID "]");
    CHECK_LUA(L, "answer(generic, 1, 200, '{\"message_id\":')", "[" NO_ID "]");
    CHECK_LUA(L, "answer(generic, 1, 200, '{\"status\":\"queued\"}')", "[" NO_ID "]");
    CHECK_LUA(L, "answer(generic, 1, 200, '{\"message_id\":null}')", "[" NO_ID "]");
    CHECK_LUA(L, "answer(generic, 1, 200, '{\"message_id\":\"\"}')", "[" NO_ID "]");
    CHECK_LUA(L, "answer(generic, 1, 200, '{\"message_id\":{\"x\":1}}')", "[" NO_ID "]");
    CHECK_LUA(L, "answer(generic, 1, 200, '{\"message_id\":1.5}')", "[" NO_ID "]");
    CHECK_LUA(L, "answer(generic, 1, 200, '[\"abc\"]')", "[" NO_ID "]");
    CHECK_LUA(L, "answer(generic, 1, 200, '\"abc\"')", "[" NO_ID "]");
    CHECK_LUA(L, "answer(generic, 1, 200, 'null')", "[" NO_ID "]");
    lua_close(L);
}

TEST(generic_permanent_message_errors) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "answer(generic, 1, 400, '{\"error\":\"invalid number\"}')",
              "[{\"error\":\"HTTP 400: invalid number\",\"ok\":false,\"retry\":false,\"scope\":\"message\"}]");
    CHECK_LUA(L, "answer(generic, 1, 404, '{\"message\":\"unknown destination\"}')",
              "[{\"error\":\"HTTP 404: unknown destination\",\"ok\":false,\"retry\":false,\"scope\":\"message\"}]");
    CHECK_LUA(L, "answer(generic, 1, 413, '')",
              "[{\"error\":\"HTTP 413\",\"ok\":false,\"retry\":false,\"scope\":\"message\"}]");
    CHECK_LUA(L, "answer(generic, 1, 422, '{\"error\":{\"code\":\"E21\",\"message\":\"text too long\"}}')",
              "[{\"error\":\"HTTP 422: text too long\",\"ok\":false,\"retry\":false,\"scope\":\"message\"}]");
    CHECK_LUA(L, "answer(generic, 1, 409, '{\"errors\":[{\"detail\":\"duplicate\"}]}')",
              "[{\"error\":\"HTTP 409: duplicate\",\"ok\":false,\"retry\":false,\"scope\":\"message\"}]");
    /* A Retry-After on a permanent error changes nothing. */
    CHECK_LUA(L, "answer(generic, 1, 400, 'bad to', {['retry-after'] = '5'})",
              "[{\"error\":\"HTTP 400: bad to\",\"ok\":false,\"retry\":false,\"scope\":\"message\"}]");
    lua_close(L);
}

TEST(generic_permanent_provider_errors) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "answer(generic, 1, 401, '{\"error\":\"unauthorized\"}')",
              "[{\"error\":\"HTTP 401: unauthorized\",\"ok\":false,\"retry\":false,\"scope\":\"provider\"}]");
    CHECK_LUA(L, "answer(generic, 1, 402, '{\"error\":\"insufficient balance\"}')",
              "[{\"error\":\"HTTP 402: insufficient balance\",\"ok\":false,\"retry\":false,\"scope\":\"provider\"}]");
    CHECK_LUA(L, "answer(generic, 1, 403, '{\"error_description\":\"sender not allowed\"}')",
              "[{\"error\":\"HTTP 403: sender not allowed\",\"ok\":false,\"retry\":false,\"scope\":\"provider\"}]");
    /* A redirect means a wrong url for every message: next provider. */
    CHECK_LUA(L, "answer(generic, 1, 301, '')",
              "[{\"error\":\"HTTP 301\",\"ok\":false,\"retry\":false,\"scope\":\"provider\"}]");
    lua_close(L);
}

TEST(generic_retryable_errors) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "answer(generic, 1, 500, '{\"error\":\"internal\"}')",
              "[{\"error\":\"HTTP 500: internal\",\"ok\":false,\"retry\":true}]");
    CHECK_LUA(L, "answer(generic, 1, 502, '<html><body>Bad Gateway</body></html>')",
              "[{\"error\":\"HTTP 502\",\"ok\":false,\"retry\":true}]");
    CHECK_LUA(L, "answer(generic, 1, 503, '{\"error\":\"unavailable\"}', {['retry-after'] = '30'})",
              "[{\"error\":\"HTTP 503: unavailable\",\"ok\":false,\"retry\":true,\"retry_after\":30}]");
    CHECK_LUA(L, "answer(generic, 1, 504, 'upstream timed out')",
              "[{\"error\":\"HTTP 504: upstream timed out\",\"ok\":false,\"retry\":true}]");
    CHECK_LUA(L, "answer(generic, 1, 507, '')", "[{\"error\":\"HTTP 507\",\"ok\":false,\"retry\":true}]");
    CHECK_LUA(L, "answer(generic, 1, 408, '')", "[{\"error\":\"HTTP 408\",\"ok\":false,\"retry\":true}]");
    /* 429 without Retry-After: no retry_after, the core's backoff decides. */
    CHECK_LUA(L, "answer(generic, 1, 429, '{\"error\":\"rate limited\"}')",
              "[{\"error\":\"HTTP 429: rate limited\",\"ok\":false,\"retry\":true}]");
    lua_close(L);
}

TEST(generic_429_retry_after) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "answer(generic, 1, 429, '{\"error\":\"rate limited\"}', {['retry-after'] = '2'})",
              "[{\"error\":\"HTTP 429: rate limited\",\"ok\":false,\"retry\":true,\"retry_after\":2}]");
    /* An HTTP-date 7 s after NOW (Tue, 14 Nov 2023 22:13:20 GMT). */
    CHECK_LUA(L, "answer(generic, 1, 429, '', {['retry-after'] = 'Tue, 14 Nov 2023 22:13:27 GMT'})",
              "[{\"error\":\"HTTP 429\",\"ok\":false,\"retry\":true,\"retry_after\":7}]");
    /* A date already past: retry at once. */
    CHECK_LUA(L, "answer(generic, 1, 429, '', {['retry-after'] = 'Tue, 14 Nov 2023 22:00:00 GMT'})",
              "[{\"error\":\"HTTP 429\",\"ok\":false,\"retry\":true,\"retry_after\":0}]");
    /* Not understood: ignored. */
    CHECK_LUA(L, "answer(generic, 1, 429, '', {['retry-after'] = 'soon'})",
              "[{\"error\":\"HTTP 429\",\"ok\":false,\"retry\":true}]");
    lua_close(L);
}

TEST(retry_after_forms) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "util.retry_after({['retry-after'] = '0'})", "0");
    CHECK_LUA(L, "util.retry_after({['retry-after'] = ' 120 '})", "120");
    CHECK_LUA(L, "util.retry_after({['Retry-After'] = '3'})", "3");
    CHECK_LUA(L, "util.retry_after({})", "nil");
    CHECK_LUA(L, "util.retry_after(nil)", "nil");
    CHECK_LUA(L, "util.retry_after({['retry-after'] = '-1'})", "nil");
    CHECK_LUA(L, "util.retry_after({['retry-after'] = '1.5'})", "nil");
    CHECK_LUA(L, "util.retry_after({['retry-after'] = 'Tue, 14 Nov 2023 22:14:20 GMT'})", "60");
    CHECK_LUA(L, "util.retry_after({['retry-after'] = 'Wed, 15 Nov 2023 22:13:20 GMT'})", "86400");
    /* The two obsolete forms HTTP still requires recipients to accept. */
    CHECK_LUA(L, "util.retry_after({['retry-after'] = 'Tuesday, 14-Nov-23 22:13:30 GMT'})", "10");
    CHECK_LUA(L, "util.retry_after({['retry-after'] = 'Tue Nov 14 22:13:35 2023'})", "15");
    CHECK_LUA(L, "util.retry_after({['retry-after'] = 'Tue, 14 Foo 2023 22:13:35 GMT'})", "nil");
    CHECK_LUA(L, "util.retry_after({['retry-after'] = 'Tue, 14 Nov 2023 25:13:35 GMT'})", "nil");
    /* The date arithmetic itself, against known instants. */
    CHECK_LUA(L, "util.http_date('Thu, 01 Jan 1970 00:00:00 GMT')", "0");
    CHECK_LUA(L, "util.http_date('Sun, 06 Nov 1994 08:49:37 GMT')", "784111777");
    CHECK_LUA(L, "util.http_date('Tue, 29 Feb 2000 12:00:00 GMT')", "951825600");
    CHECK_LUA(L, "util.http_date('Tue, 14 Nov 2023 22:13:20 GMT')", "1700000000");
    lua_close(L);
}

/* What util reads from webhooks, at lengths an outsider can send: trimmed without backtracking, times and
 * numbers refused by length, forms read up to util.MAX_FIELDS. (tests/e2e/test_webhook_cost.py times them.) */
TEST(webhook_helpers_bound_what_they_read) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "'[' .. util.trim('  a b \\t\\r\\n') .. ']'", "[a b]");
    CHECK_LUA(L, "'[' .. util.trim('x') .. ']' .. util.trim('') .. util.trim(' \\t ') .. '.'", "[x].");
    CHECK_LUA(L, "#util.trim('a' .. (' '):rep(100000) .. 'b' .. (' '):rep(100000))", "100002");
    CHECK_LUA(L, "util.parse_time('  2025-01-23T10:30:00Z \\n')", "1737628200");
    CHECK_LUA(L, "util.parse_time('2025-01-23T10:30:00.123456789+02:00')", "1737621000");
    CHECK_LUA(L, "util.parse_time('2025-01-23T10:30:00.' .. ('1'):rep(100) .. 'Z')", "nil");
    CHECK_LUA(L, "util.parse_time('2024' .. (' '):rep(100000) .. 'x')", "nil");
    CHECK_LUA(L, "util.parse_time((' '):rep(100000))", "nil");
    /* Epoch seconds in a generic report: digits, with or without a fraction; long runs are no time. */
    CHECK_LUA(L,
              "canon(generic.parse_status(cfg(), json_hook('{\"id\":\"1\",\"status\":\"DELIVRD\",\"timestamp\":\" "
              "1700000000.5 \"}'))[1].at)",
              "1700000000");
    CHECK_LUA(L,
              "canon(generic.parse_status(cfg(), json_hook('{\"id\":\"1\",\"status\":\"DELIVRD\",\"timestamp\":\"' .. "
              "('1'):rep(60000) .. 'x\"}'))[1].at)",
              "nil");
    /* An all-zero error code is no error, however it is padded. */
    CHECK_LUA(L,
              "canon(generic.parse_status(cfg(), json_hook('{\"id\":\"1\",\"status\":\"UNDELIV\",\"err\":\" 000 "
              "\"}'))[1].error)",
              "nil");
    CHECK_LUA(L,
              "canon(generic.parse_status(cfg(), json_hook('{\"id\":\"1\",\"status\":\"UNDELIV\",\"err\":\"0' .. "
              "('0'):rep(60000) .. 'x\"}'))[1].error ~= nil)",
              "true");
    /* Forms: at most util.MAX_FIELDS pairs read, and a flag when there were more. */
    CHECK_LUA(L, "util.MAX_FIELDS", "256");
    CHECK_LUA(L, "local f, more = util.form_decode(('a=1&'):rep(256)) return tostring(f.a) .. ' ' .. tostring(more)",
              "1 nil");
    CHECK_LUA(L, "local f, more = util.form_decode(('a=1&'):rep(257)) return tostring(f.a) .. ' ' .. tostring(more)",
              "1 true");
    CHECK_LUA(L, "local l, more = util.form_pairs(('a=1&'):rep(300)) return #l .. ' ' .. tostring(more)", "256 true");
    CHECK_LUA(L, "raises(generic.parse_status, cfg(), hook(('a=1&'):rep(300), {['content-type'] = 'text/plain'}))",
              "generic status webhook: more than 256 form fields");
    lua_close(L);
}

TEST(error_text_is_cleaned_and_bounded) {
    lua_State *L = adapters_state();
    /* Control characters and runs of spaces fold into one space. */
    CHECK_LUA(L, "answer(generic, 1, 400, '{\"error\":\"bad\\\\r\\\\n\\\\tnumber  \"}')",
              "[{\"error\":\"HTTP 400: bad number\",\"ok\":false,\"retry\":false,\"scope\":\"message\"}]");
    /* A long text is cut to 200 bytes plus "...". */
    CHECK_LUA(L,
              "local e = require('cjson').decode(answer(generic, 1, 400, "
              "'{\"error\":\"' .. string.rep('x', 500) .. '\"}'))[1].error\n"
              "return #e .. ' ' .. e:sub(1, 12) .. ' ' .. e:sub(-4)",
              "203 HTTP 400: xx x...");
    /* ...and never in the middle of a UTF-8 character. */
    CHECK_LUA(L,
              "local e = require('cjson').decode(answer(generic, 1, 400, "
              "'{\"error\":\"a' .. string.rep('é', 300) .. '\"}'))[1].error\n"
              "return tostring(utf8.len(e)) .. ' ' .. #e",
              "108 202");
    /* A plain text answer is the error text; an HTML page is not. */
    CHECK_LUA(L, "answer(generic, 1, 400, 'Invalid destination')",
              "[{\"error\":\"HTTP 400: Invalid destination\",\"ok\":false,\"retry\":false,\"scope\":\"message\"}]");
    CHECK_LUA(L, "answer(generic, 1, 403, '  <!DOCTYPE html><p>Forbidden</p>')",
              "[{\"error\":\"HTTP 403\",\"ok\":false,\"retry\":false,\"scope\":\"provider\"}]");
    lua_close(L);
}

TEST(big_integers_decode_exactly_and_nothing_else_changes) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "canon(util.decode('{\"a\":3482512350952730368,\"b\":-3482512350952730368,\"c\":[1,2.5,1e300],'"
              " .. '\"d\":\"x\\\\\"3482512350952730368\",\"e\":12345678901234567.5,\"f\":1234567890123456e2,'"
              " .. '\"g\":123456789012345}', true))",
              "{\"a\":\"3482512350952730368\",\"b\":\"-3482512350952730368\",\"c\":[1,2.5,1.0000000000000001e+300],"
              "\"d\":\"x\\\"3482512350952730368\",\"e\":12345678901234568,\"f\":123456789012345600,"
              "\"g\":123456789012345}");
    /* Without exact: plain cjson, and util.inexact tells which numbers lost digits. */
    CHECK_LUA(
        L,
        "local d = util.decode('{\"a\":3482512350952730368,\"b\":9007199254740991}')\n"
        "return tostring(util.inexact(d.a)) .. ' ' .. tostring(util.inexact(d.b)) .. ' ' .. util.id_string(d.b) .. ' '"
        " .. tostring(util.id_string(d.a))",
        "true false 9007199254740991 nil");
    CHECK_LUA(L, "select(2, util.decode('{\"a\":'))", "Expected value but found T_END at character 6");
    CHECK_LUA(L, "select(2, util.decode('{\"a\":\"unterminated 3482512350952730368', true))",
              "Expected value but found unexpected end of string at character 39");
    lua_close(L);
}

/* ---- mock: the request ---- */

TEST(mock_request_batch) {
    lua_State *L = adapters_state();
    CHECK_LUA(
        L, "request(mock, cfg{adapter = 'mock'}, {msg(1), msg(2, {from = 'Shop'}), msg(3)})",
        "POST http://127.0.0.1:9090/send\n"
        "Accept: application/json\n"
        "Authorization: Bearer k\n"
        "Content-Type: application/json\n"
        "{\"messages\":["
        "{\"from\":\"Brand\",\"id\":\"01K00000000000000000000001\",\"message\":\"Hello 1\",\"to\":\"+84912340001\"},"
        "{\"from\":\"Shop\",\"id\":\"01K00000000000000000000002\",\"message\":\"Hello 2\",\"to\":\"+84912340002\"},"
        "{\"from\":\"Brand\",\"id\":\"01K00000000000000000000003\",\"message\":\"Hello 3\",\"to\":\"+84912340003\"}]}");
    /* One message is still a batch; no key, no sender: neither is sent. */
    CHECK_LUA(
        L, "request(mock, cfg{adapter = 'mock', api_key = NONE, sender = NONE}, {msg(7)})",
        "POST http://127.0.0.1:9090/send\n"
        "Accept: application/json\n"
        "Content-Type: application/json\n"
        "{\"messages\":[{\"id\":\"01K00000000000000000000007\",\"message\":\"Hello 7\",\"to\":\"+84912340007\"}]}");
    CHECK_LUA(L, "#require('cjson').decode(mock.build_send(cfg(), msgs(100)).body).messages", "100");
    CHECK_LUA(L, "raises(mock.build_send, cfg(), msgs(101))", "mock adapter: expected 1 to 100 messages");
    CHECK_LUA(L, "raises(mock.build_send, cfg{url = NONE}, msgs(1))",
              "provider primary (mock): url must be an http(s) URL");
    lua_close(L);
}

/* ---- mock: answers ---- */

TEST(mock_batch_mixed_results) {
    lua_State *L = adapters_state();
    /* The mock's own answer format: accepted, rejected (string status), a
     * duplicate, plus the numeric-status form of errors. */
    CHECK_LUA(
        L,
        "answer(mock, 6, 200, [[{\"results\":["
        "{\"message_id\":\"m1\",\"status\":\"accepted\",\"id\":\"01K00000000000000000000001\"},"
        "{\"status\":\"rejected\",\"error\":\"invalid number\",\"id\":\"01K00000000000000000000002\"},"
        "{\"message_id\":\"m0\",\"status\":\"accepted\",\"duplicate\":true,\"id\":\"01K00000000000000000000003\"},"
        "{\"error\":\"invalid number\",\"status\":400},"
        "{\"error\":\"slow down\",\"status\":429},"
        "{\"error\":\"no credit\",\"status\":402}]}]], {['retry-after'] = '2'})",
        "[" OK_ID(
            "m1") ","
                  "{\"error\":\"rejected: invalid number\",\"ok\":false,\"retry\":false,\"scope\":\"message\"}," OK_ID(
                      "m0") ","
                            "{\"error\":\"status 400: invalid "
                            "number\",\"ok\":false,\"retry\":false,\"scope\":\"message\"},"
                            "{\"error\":\"status 429: slow down\",\"ok\":false,\"retry\":true,\"retry_after\":2},"
                            "{\"error\":\"status 402: no "
                            "credit\",\"ok\":false,\"retry\":false,\"scope\":\"provider\"}]");
    /* Numeric ids, one past 2^53; a 5xx result; a result without an id. */
    CHECK_LUA(L,
              "answer(mock, 4, 200, '{\"results\":[{\"message_id\":3482512350952730368},{\"message_id\":42},'"
              " .. '{\"error\":\"down\",\"status\":503},{\"status\":\"accepted\"}]}')",
              "[" OK_ID("3482512350952730368") "," OK_ID(
                  "42") ","
                        "{\"error\":\"status 503: down\",\"ok\":false,\"retry\":true}," NO_ID "]");
    /* An error beside a 2xx status, or a refusal word without an error text. */
    CHECK_LUA(L,
              "answer(mock, 2, 200, '{\"results\":[{\"status\":200,\"error\":\"blocked\"},'"
              " .. '{\"status\":\"failed\",\"message_id\":\"m5\"}]}')",
              "[{\"error\":\"status 200: blocked\",\"ok\":false,\"retry\":false,\"scope\":\"message\"},"
              "{\"error\":\"failed\",\"ok\":false,\"retry\":false,\"scope\":\"message\"}]");
    /* Fewer results than messages, or a result that is not an object. */
    CHECK_LUA(L, "answer(mock, 3, 200, '{\"results\":[{\"message_id\":\"a\"},7]}')",
              "[" OK_ID("a") "," NO_ID "," NO_ID "]");
    lua_close(L);
}

TEST(mock_results_are_matched_by_our_id) {
    lua_State *L = adapters_state();
    /* Out of order, but each result names its message. */
    CHECK_LUA(L,
              "answer(mock, 2, 200, [[{\"results\":["
              "{\"message_id\":\"m2\",\"id\":\"01K00000000000000000000002\"},"
              "{\"message_id\":\"m1\",\"id\":\"01K00000000000000000000001\"}]}]])",
              "[" OK_ID("m1") "," OK_ID("m2") "]");
    lua_close(L);
}

TEST(mock_result_for_another_message_is_not_credited) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "answer(mock, 2, 200, [[{\"results\":["
              "{\"message_id\":\"mx\",\"id\":\"01K00000000000000000000009\"},"
              "{\"message_id\":\"m2\",\"id\":\"01K00000000000000000000002\"}]}]])",
              "[" NO_ID "," OK_ID("m2") "]");
    lua_close(L);
}

TEST(mock_whole_request_failures_apply_to_every_message) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "answer(mock, 3, 401, '{\"error\":\"unauthorized\"}')",
              "[{\"error\":\"HTTP 401: unauthorized\",\"ok\":false,\"retry\":false,\"scope\":\"provider\"},"
              "{\"error\":\"HTTP 401: unauthorized\",\"ok\":false,\"retry\":false,\"scope\":\"provider\"},"
              "{\"error\":\"HTTP 401: unauthorized\",\"ok\":false,\"retry\":false,\"scope\":\"provider\"}]");
    CHECK_LUA(L, "answer(mock, 2, 429, '{\"error\":\"rate limited\"}', {['retry-after'] = '2'})",
              "[{\"error\":\"HTTP 429: rate limited\",\"ok\":false,\"retry\":true,\"retry_after\":2},"
              "{\"error\":\"HTTP 429: rate limited\",\"ok\":false,\"retry\":true,\"retry_after\":2}]");
    CHECK_LUA(L, "answer(mock, 2, 503, '{\"error\":\"unavailable\"}')",
              "[{\"error\":\"HTTP 503: unavailable\",\"ok\":false,\"retry\":true},"
              "{\"error\":\"HTTP 503: unavailable\",\"ok\":false,\"retry\":true}]");
    CHECK_LUA(
        L, "answer(mock, 2, 400, '{\"error\":\"invalid request: \\\\\"messages\\\\\" must be an array\"}')",
        "[{\"error\":\"HTTP 400: invalid request: \\\"messages\\\" must be an array\",\"ok\":false,\"retry\":false,"
        "\"scope\":\"message\"},"
        "{\"error\":\"HTTP 400: invalid request: \\\"messages\\\" must be an array\",\"ok\":false,\"retry\":false,"
        "\"scope\":\"message\"}]");
    /* Each message gets its own table: changing one changes no other. */
    CHECK_LUA(L,
              "local o = mock.parse_send(cfg(), msgs(2), {status = 503, body = '', headers = {}})\n"
              "o[1].error = 'changed'; return o[2].error .. ' ' .. tostring(o[1] ~= o[2])",
              "HTTP 503 true");
    lua_close(L);
}

TEST(mock_plain_form_for_one_message) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "answer(mock, 1, 200, '{\"message_id\":\"m9\",\"status\":\"accepted\"}')", "[" OK_ID("m9") "]");
    /* Our id echoed in "id" is never taken for the provider's. */
    CHECK_LUA(L, "answer(mock, 1, 200, '{\"id\":\"01K00000000000000000000001\"}')", "[" NO_ID "]");
    /* The plain form cannot say which of several messages it is about. */
    CHECK_LUA(L, "answer(mock, 2, 200, '{\"message_id\":\"m9\"}')", "[" NO_ID "," NO_ID "]");
    CHECK_LUA(L, "answer(mock, 2, 200, 'garbage')", "[" NO_ID "," NO_ID "]");
    CHECK_LUA(L, "answer(mock, 1, 200, '')", "[" NO_ID "]");
    lua_close(L);
}

/* ---- generic and mock: webhooks ---- */

/* The mock provider's delivery report, as src/tools/mock/mock_provider.c posts it. */
#define DLR_M1                                                                                                         \
    "{\"message_id\":\"m1\",\"status\":\"DELIVRD\",\"to\":\"+84912340001\",\"timestamp\":\"2023-11-14T22:13:20Z\"}"
/* hex HMAC-SHA256 of DLR_M1 keyed by "whsec" (Python hmac). */
#define DLR_M1_SIG "e27f6264244b5423f0e6652c013d4e32a5a9b3f0976495f0dcbf4f696d68bfa1"
#define OK_ANSWER                                                                                                      \
    "{\"body\":\"{\\\"status\\\":\\\"ok\\\"}\",\"headers\":{\"Content-Type\":\"application/json\"},\"status\":200}"

TEST(generic_verify_x_signature) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "verdict(generic, cfg{webhook_secret = 'whsec'}, signed([[" DLR_M1 "]], '" DLR_M1_SIG "'))", "true");
    /* Upper-case hex and surrounding spaces are the same signature. */
    CHECK_LUA(L,
              "verdict(generic, cfg{webhook_secret = 'whsec'}, signed([[" DLR_M1 "]], ' ' .. ('" DLR_M1_SIG
              "'):upper() .. ' '))",
              "true");
    /* A form body is signed the same way: the raw bytes. */
    CHECK_LUA(L,
              "local r = form_hook('message_id=m2&status=UNDELIV&err=001')\n"
              "r.headers['x-signature'] = '86bd93169f2a00b94a9cf6650216a4190618d9ceb4c23153d7bd54f211b0eac2'\n"
              "return verdict(generic, cfg{webhook_secret = 'whsec'}, r)",
              "true");
    /* An empty body has a signature too. */
    CHECK_LUA(L,
              "verdict(generic, cfg{webhook_secret = 'whsec'}, "
              "signed('', '30b8ae759085dd8ae9890354d6a941d37f53008e834e2e4a819d9fc155e99438'))",
              "true");
    /* One byte of the body changed (UNDELIV for DELIVRD), or another secret. */
    CHECK_LUA(L,
              "verdict(generic, cfg{webhook_secret = 'whsec'}, signed(([[" DLR_M1
              "]]):gsub('DELIVRD', 'UNDELIV'), '" DLR_M1_SIG "'))",
              "false: X-Signature does not match");
    CHECK_LUA(L, "verdict(generic, cfg{webhook_secret = 'other'}, signed([[" DLR_M1 "]], '" DLR_M1_SIG "'))",
              "false: X-Signature does not match");
    /* A signature cut short or too long (refused by its length, before any hashing), or not hex at all. */
    CHECK_LUA(L,
              "verdict(generic, cfg{webhook_secret = 'whsec'}, signed([[" DLR_M1 "]], ('" DLR_M1_SIG "'):sub(1, 63)))",
              "false: X-Signature is not 64 hex digits");
    CHECK_LUA(L, "verdict(generic, cfg{webhook_secret = 'whsec'}, signed([[" DLR_M1 "]], 'sha256=" DLR_M1_SIG "'))",
              "false: X-Signature is not 64 hex digits");
    CHECK_LUA(L,
              "verdict(generic, cfg{webhook_secret = 'whsec'}, signed([[" DLR_M1 "]], 'a' .. (' '):rep(20000) .. 'b'))",
              "false: X-Signature is not 64 hex digits");
    CHECK_LUA(L, "verdict(generic, cfg{webhook_secret = 'whsec'}, signed([[" DLR_M1 "]], ('z'):rep(64)))",
              "false: X-Signature does not match");
    /* Whitespace around a right one is trimmed. */
    CHECK_LUA(L, "verdict(generic, cfg{webhook_secret = 'whsec'}, signed([[" DLR_M1 "]], ' \t" DLR_M1_SIG "  '))",
              "true");
    /* No header, or an empty one. */
    CHECK_LUA(L, "verdict(generic, cfg{webhook_secret = 'whsec'}, signed([[" DLR_M1 "]], nil))",
              "false: missing X-Signature");
    CHECK_LUA(L, "verdict(generic, cfg{webhook_secret = 'whsec'}, signed([[" DLR_M1 "]], '  '))",
              "false: missing X-Signature");
    /* The header name in another case (a table built by hand). */
    CHECK_LUA(L,
              "verdict(generic, cfg{webhook_secret = 'whsec'}, hook([[" DLR_M1 "]], {['X-Signature'] = '" DLR_M1_SIG
              "'}))",
              "true");
    /* No secret configured (or an empty one): every request passes. */
    CHECK_LUA(L, "verdict(generic, cfg(), signed([[" DLR_M1 "]], nil))", "true");
    CHECK_LUA(L, "verdict(generic, cfg(), signed([[" DLR_M1 "]], 'deadbeef'))", "true");
    CHECK_LUA(L, "verdict(generic, cfg{webhook_secret = ''}, signed([[" DLR_M1 "]], nil))", "true");
    /* A secret that is not a string is a configuration error. */
    CHECK_LUA(L, "raises(generic.verify, cfg{webhook_secret = 42}, signed([[" DLR_M1 "]], nil))",
              "provider primary (generic): webhook_secret must be a string");
    lua_close(L);
}

TEST(mock_verify_is_generic) {
    lua_State *L = adapters_state();
    CHECK_LUA(
        L, "verdict(mock, cfg{adapter = 'mock', webhook_secret = 'whsec'}, signed([[" DLR_M1 "]], '" DLR_M1_SIG "'))",
        "true");
    CHECK_LUA(
        L, "verdict(mock, cfg{adapter = 'mock', webhook_secret = 'whsec'}, signed([[" DLR_M1 " ]], '" DLR_M1_SIG "'))",
        "false: X-Signature does not match");
    CHECK_LUA(L, "verdict(mock, cfg{adapter = 'mock', webhook_secret = 'whsec'}, signed([[" DLR_M1 "]], nil))",
              "false: missing X-Signature");
    CHECK_LUA(L, "verdict(mock, cfg{adapter = 'mock'}, signed([[" DLR_M1 "]], nil))", "true");
    lua_close(L);
}

TEST(generic_status_json) {
    lua_State *L = adapters_state();
    CHECK_LUA(
        L, "status_of(generic, cfg(), json_hook([[" DLR_M1 "]]))",
        "[{\"at\":1700000000,\"provider_id\":\"m1\",\"raw_status\":\"DELIVRD\",\"status\":\"delivered\"}] " OK_ANSWER);
    /* Every optional field, under its first name. */
    CHECK_LUA(L,
              "updates_of(generic, json_hook([[{\"message_id\":\"abc-9\",\"status\":\"UNDELIV\",\"done_date\":"
              "\"2023-11-14T23:13:25+01:00\",\"part\":2,\"parts\":3,\"error\":\"absent subscriber\","
              "\"client_ref\":\"" ID1 "\",\"to\":\"84912340001\",\"cost\":0.05}]]))",
              "[{\"at\":1700000005,\"error\":\"absent subscriber\",\"message_id\":\"" ID1 "\",\"part\":2,\"parts\":3,"
              "\"provider_id\":\"abc-9\",\"raw_status\":\"UNDELIV\",\"status\":\"undelivered\"}]");
    /* ...and under the others: msgid, dlrstatus, timestamp, part_number,
     * total_parts, err, reference. */
    CHECK_LUA(L,
              "updates_of(generic, json_hook([[{\"msgid\":\"x1\",\"dlrstatus\":\"EXPIRED\",\"timestamp\":"
              "\"2023-11-14 22:13:30\",\"part_number\":\"1\",\"total_parts\":\"2\",\"err\":\"027\","
              "\"reference\":\"" ID2 "\"}]]))",
              "[{\"at\":1700000010,\"error\":\"027\",\"message_id\":\"" ID2 "\",\"part\":1,\"parts\":2,"
              "\"provider_id\":\"x1\",\"raw_status\":\"EXPIRED\",\"status\":\"expired\"}]");
    CHECK_LUA(L, "updates_of(generic, json_hook([[{\"id\":\"x2\",\"stat\":\"REJECTD\",\"timestamp\":1700000020}]]))",
              "[{\"at\":1700000020,\"provider_id\":\"x2\",\"raw_status\":\"REJECTD\",\"status\":\"rejected\"}]");
    /* message_id comes before msgid and id; done_date before timestamp. */
    CHECK_LUA(L,
              "updates_of(generic, json_hook([[{\"id\":\"c\",\"msgid\":\"b\",\"message_id\":\"a\",\"status\":\"sent\","
              "\"timestamp\":1700000099,\"done_date\":\"1700000030\"}]]))",
              "[{\"at\":1700000030,\"provider_id\":\"a\",\"raw_status\":\"sent\",\"status\":\"sent\"}]");
    /* An SMPP "no error" code is no error; null and empty fields are absent;
     * part numbers that are not positive integers are handed over as given, for
     * the core to refuse the report (sr_reports_check), never dropped: a report
     * for "part 0" must not pass for one on the whole message. */
    CHECK_LUA(L,
              "updates_of(generic, json_hook([[{\"message_id\":\"m1\",\"status\":\"DELIVRD\",\"err\":\"000\","
              "\"part\":null,\"parts\":\"\",\"client_ref\":\"\",\"timestamp\":\"yesterday\"}]]))",
              "[{\"provider_id\":\"m1\",\"raw_status\":\"DELIVRD\",\"status\":\"delivered\"}]");
    CHECK_LUA(L, "updates_of(generic, json_hook([[{\"message_id\":\"m1\",\"status\":\"DELIVRD\",\"parts\":0}]]))",
              "[{\"parts\":0,\"provider_id\":\"m1\",\"raw_status\":\"DELIVRD\",\"status\":\"delivered\"}]");
    CHECK_LUA(
        L,
        "updates_of(generic, json_hook([[{\"message_id\":\"m1\",\"status\":\"UNDELIV\",\"error\":0,\"part\":1.5}]]))",
        "[{\"part\":1.5,\"provider_id\":\"m1\",\"raw_status\":\"UNDELIV\",\"status\":\"undelivered\"}]");
    CHECK_LUA(
        L,
        "updates_of(generic, "
        "json_hook([[{\"message_id\":\"m1\",\"status\":\"DELIVRD\",\"part\":\"abc\",\"parts\":\"3\"}]]))",
        "[{\"part\":\"abc\",\"parts\":3,\"provider_id\":\"m1\",\"raw_status\":\"DELIVRD\",\"status\":\"delivered\"}]");
    /* A JSON body posted to a URL with a query is still read as JSON. */
    CHECK_LUA(L, "updates_of(generic, json_hook([[" DLR_M1 "]], 'token=abc'))",
              "[{\"at\":1700000000,\"provider_id\":\"m1\",\"raw_status\":\"DELIVRD\",\"status\":\"delivered\"}]");
    /* Without a Content-Type, a body that starts like JSON is JSON. */
    CHECK_LUA(L, "updates_of(generic, hook([[ " DLR_M1 "]], {}))",
              "[{\"at\":1700000000,\"provider_id\":\"m1\",\"raw_status\":\"DELIVRD\",\"status\":\"delivered\"}]");
    /* Each answer is a fresh table. */
    CHECK_LUA(L,
              "local _, a = generic.parse_status(cfg(), json_hook([[" DLR_M1 "]]))\n"
              "local _, b = generic.parse_status(cfg(), json_hook([[" DLR_M1 "]]))\n"
              "return tostring(a ~= b and a.headers ~= b.headers)",
              "true");
    lua_close(L);
}

TEST(generic_status_form) {
    lua_State *L = adapters_state();
    CHECK_LUA(
        L,
        "status_of(generic, cfg(), form_hook('message_id=m2&status=UNDELIV&err=001&done_date=2023-11-14+22%3A13%3A20"
        "&part=1&parts=2&client_ref=" ID1 "'))",
        "[{\"at\":1700000000,\"error\":\"001\",\"message_id\":\"" ID1
        "\",\"part\":1,\"parts\":2,\"provider_id\":\"m2\","
        "\"raw_status\":\"UNDELIV\",\"status\":\"undelivered\"}] " OK_ANSWER);
    /* GET-style: the parameters in the query, no body. */
    CHECK_LUA(L, "updates_of(generic, hook('', {}, 'msgid=77&stat=DELIVRD&timestamp=1700000040'))",
              "[{\"at\":1700000040,\"provider_id\":\"77\",\"raw_status\":\"DELIVRD\",\"status\":\"delivered\"}]");
    /* A form the core did not parse (no Content-Type): decoded here. */
    CHECK_LUA(L, "updates_of(generic, hook('id=9&dlrstatus=ACCEPTD', {}))",
              "[{\"provider_id\":\"9\",\"raw_status\":\"ACCEPTD\",\"status\":\"accepted\"}]");
    /* Form values are text: digits stay as written. */
    CHECK_LUA(L, "updates_of(generic, form_hook('message_id=3482512350952730368&status=1'))",
              "[{\"provider_id\":\"3482512350952730368\",\"raw_status\":\"1\",\"status\":\"delivered\"}]");
    lua_close(L);
}

TEST(generic_status_array) {
    lua_State *L = adapters_state();
    CHECK_LUA(
        L,
        "status_of(generic, cfg(), json_hook([=[[{\"message_id\":\"m1\",\"status\":\"DELIVRD\"},"
        "{\"message_id\":\"m2\",\"status\":\"UNDELIV\",\"err\":\"011\"}]]=]))",
        "[{\"provider_id\":\"m1\",\"raw_status\":\"DELIVRD\",\"status\":\"delivered\"},"
        "{\"error\":\"011\",\"provider_id\":\"m2\",\"raw_status\":\"UNDELIV\",\"status\":\"undelivered\"}] " OK_ANSWER);
    /* Entries without an id or a status, or that are not objects, are skipped. */
    CHECK_LUA(L,
              "updates_of(generic, json_hook([=[[{\"status\":\"DELIVRD\"},7,null,{\"message_id\":\"m3\"},"
              "{\"message_id\":\"m4\",\"status\":\"EXPIRED\"}]]=]))",
              "[{\"provider_id\":\"m4\",\"raw_status\":\"EXPIRED\",\"status\":\"expired\"}]");
    /* Our id alone is enough to match. */
    CHECK_LUA(L, "updates_of(generic, json_hook([=[[{\"client_ref\":\"" ID3 "\",\"status\":\"DELIVRD\"}]]=]))",
              "[{\"message_id\":\"" ID3 "\",\"raw_status\":\"DELIVRD\",\"status\":\"delivered\"}]");
    /* An empty array: nothing to do, answered all the same. */
    CHECK_LUA(L, "status_of(generic, cfg(), json_hook('[]'))", "{} " OK_ANSWER);
    lua_close(L);
}

TEST(generic_status_big_numeric_id) {
    lua_State *L = adapters_state();
    /* Ids past 2^53 are read from the raw text, in every id field. */
    CHECK_LUA(L, "updates_of(generic, json_hook('{\"message_id\":3482512350952730368,\"status\":\"DELIVRD\"}'))",
              "[{\"provider_id\":\"3482512350952730368\",\"raw_status\":\"DELIVRD\",\"status\":\"delivered\"}]");
    CHECK_LUA(L, "updates_of(generic, json_hook('[{\"msgid\" : 9007199254740993, \"stat\" : \"UNDELIV\"}]'))",
              "[{\"provider_id\":\"9007199254740993\",\"raw_status\":\"UNDELIV\",\"status\":\"undelivered\"}]");
    CHECK_LUA(L, "updates_of(generic, json_hook('{\"id\":12345,\"status\":2,\"timestamp\":1700000000}'))",
              "[{\"at\":1700000000,\"provider_id\":\"12345\",\"raw_status\":\"2\",\"status\":\"undelivered\"}]");
    lua_close(L);
}

TEST(generic_status_every_word) {
    lua_State *L = adapters_state();
    CHECK_LUA(
        L,
        "local t = {}\n"
        "for _, w in ipairs({'DELIVRD', 'delivrd', 'delivered', 'Delivered', '1', 'UNDELIV', 'undelivered', '2',\n"
        "                    'EXPIRED', 'expired', 'REJECTD', 'rejected', 'DELETED', 'ACCEPTD', 'accepted',\n"
        "                    'sent', 'SENT', 'ENROUTE', 'enroute', 'UNKNOWN', 'unknown', 'queued', '3', 'DELIVERED '}) "
        "do\n"
        "  local u = generic.parse_status(cfg(), json_hook('{\"message_id\":\"m1\",\"status\":\"' .. w .. '\"}'))[1]\n"
        "  t[#t + 1] = w .. '=' .. u.status .. (u.raw_status == w and '' or '(raw ' .. u.raw_status .. ')')\n"
        "end\n"
        "return table.concat(t, ' ')",
        "DELIVRD=delivered delivrd=delivered delivered=delivered Delivered=delivered 1=delivered "
        "UNDELIV=undelivered undelivered=undelivered 2=undelivered EXPIRED=expired expired=expired "
        "REJECTD=rejected rejected=rejected DELETED=undelivered ACCEPTD=accepted accepted=accepted "
        "sent=sent SENT=sent ENROUTE=sent enroute=sent UNKNOWN=unknown unknown=unknown queued=unknown "
        "3=unknown DELIVERED =unknown");
    /* The numeric variants as JSON numbers. */
    CHECK_LUA(L,
              "local a = generic.parse_status(cfg(), json_hook('{\"message_id\":\"m1\",\"status\":1}'))[1]\n"
              "local b = generic.parse_status(cfg(), json_hook('{\"message_id\":\"m1\",\"status\":2.0}'))[1]\n"
              "return a.status .. ' ' .. a.raw_status .. ' ' .. b.status .. ' ' .. b.raw_status",
              "delivered 1 undelivered 2");
    lua_close(L);
}

TEST(generic_status_unreadable_body_raises) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "raises(generic.parse_status, cfg(), hook('garbage', {['content-type'] = 'text/plain'}))",
              "generic status webhook: no report with an id and a status");
    CHECK_LUA(
        L, "raises(generic.parse_status, cfg(), json_hook('{\"message_id\":'))",
        "generic status webhook: body is not a JSON object or array: Expected value but found T_END at character 15");
    CHECK_LUA(L, "raises(generic.parse_status, cfg(), json_hook('<html>hi</html>'))",
              "generic status webhook: body is not a JSON object or array: Expected value but found invalid token at "
              "character 1");
    CHECK_LUA(L, "raises(generic.parse_status, cfg(), json_hook(''))",
              "generic status webhook: body is not a JSON object or array: empty body");
    CHECK_LUA(L, "raises(generic.parse_status, cfg(), json_hook('null'))",
              "generic status webhook: body is not a JSON object or array");
    CHECK_LUA(L, "raises(generic.parse_status, cfg(), json_hook('\"DELIVRD\"'))",
              "generic status webhook: body is not a JSON object or array");
    CHECK_LUA(L, "raises(generic.parse_status, cfg(), form_hook(''))", "generic status webhook: empty body");
    CHECK_LUA(L, "raises(generic.parse_status, cfg(), hook('', {}))", "generic status webhook: empty body");
    /* Readable, but nothing to match or no status. */
    CHECK_LUA(L, "raises(generic.parse_status, cfg(), json_hook('{}'))",
              "generic status webhook: no report with an id and a status");
    CHECK_LUA(L, "raises(generic.parse_status, cfg(), json_hook('{\"message_id\":\"m1\"}'))",
              "generic status webhook: no report with an id and a status");
    CHECK_LUA(L, "raises(generic.parse_status, cfg(), json_hook('[1, \"x\"]'))",
              "generic status webhook: no report with an id and a status");
    CHECK_LUA(L, "raises(generic.parse_status, cfg(), form_hook('status=DELIVRD'))",
              "generic status webhook: no report with an id and a status");
    /* The mock's errors name the mock. */
    CHECK_LUA(L, "raises(mock.parse_status, cfg{adapter = 'mock'}, json_hook('nope'))",
              "mock status webhook: body is not a JSON object or array: Expected value but found invalid token at "
              "character 1");
    lua_close(L);
}

TEST(generic_inbound) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "inbound_of(generic, cfg(), "
              "json_hook('{\"message_id\":\"in-1\",\"from\":\"84912340001\",\"to\":\"84900000000\","
              "\"text\":\"Xin chào\",\"timestamp\":\"2023-11-14T22:13:20Z\"}'))",
              "[{\"at\":1700000000,\"from\":\"84912340001\",\"provider_message_id\":\"in-1\",\"text\":\"Xin chào\","
              "\"to\":\"84900000000\"}] " OK_ANSWER);
    /* The other names; numbers already with '+', short codes and sender
     * names as given; a big numeric id exactly. */
    CHECK_LUA(L,
              "canon((generic.parse_inbound(cfg(), json_hook('{\"id\":3482512350952730368,\"sender\":\"+84912340002\","
              "\"recipient\":\"8085\",\"message\":\"STOP\",\"timestamp\":1700000050}'))))",
              "[{\"at\":1700000050,\"from\":\"+84912340002\",\"provider_message_id\":\"3482512350952730368\","
              "\"text\":\"STOP\",\"to\":\"8085\"}]");
    CHECK_LUA(L, "canon((generic.parse_inbound(cfg(), json_hook('{\"msisdn\":84912340003,\"body\":\"hi\"}'))))",
              "[{\"from\":\"84912340003\",\"text\":\"hi\"}]");
    CHECK_LUA(L,
              "canon((generic.parse_inbound(cfg(), "
              "json_hook('{\"from\":\"Brand\",\"to\":\"+84912340001\",\"text\":\"\"}'))))",
              "[{\"from\":\"Brand\",\"text\":\"\",\"to\":\"+84912340001\"}]");
    /* Form, and an array of messages. */
    CHECK_LUA(L,
              "inbound_of(generic, cfg(), form_hook('from=84912340001&to=84900000000&text=Hello+there%21"
              "&message_id=in-2&timestamp=2023-11-14+22%3A13%3A21'))",
              "[{\"at\":1700000001,\"from\":\"84912340001\",\"provider_message_id\":\"in-2\",\"text\":\"Hello there!\","
              "\"to\":\"84900000000\"}] " OK_ANSWER);
    CHECK_LUA(L,
              "canon((generic.parse_inbound(cfg(), json_hook('[{\"from\":\"84912340001\",\"text\":\"a\"},"
              "{\"from\":\"84912340002\",\"text\":\"b\"}]'))))",
              "[{\"from\":\"84912340001\",\"text\":\"a\"},{\"from\":\"84912340002\",\"text\":\"b\"}]");
    lua_close(L);
}

TEST(generic_inbound_missing_fields_raise) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "raises(generic.parse_inbound, cfg(), json_hook('{\"to\":\"84900000000\",\"text\":\"hi\"}'))",
              "generic inbound webhook: message 1 needs from and text");
    CHECK_LUA(L, "raises(generic.parse_inbound, cfg(), json_hook('{\"from\":\"\",\"text\":\"hi\"}'))",
              "generic inbound webhook: message 1 needs from and text");
    CHECK_LUA(L, "raises(generic.parse_inbound, cfg(), json_hook('{\"from\":\"84912340001\",\"to\":\"84900000000\"}'))",
              "generic inbound webhook: message 1 needs from and text");
    CHECK_LUA(L, "raises(generic.parse_inbound, cfg(), json_hook('{\"from\":\"84912340001\",\"text\":null}'))",
              "generic inbound webhook: message 1 needs from and text");
    CHECK_LUA(L, "raises(generic.parse_inbound, cfg(), form_hook('to=84900000000&text=hi'))",
              "generic inbound webhook: message 1 needs from and text");
    CHECK_LUA(L, "raises(generic.parse_inbound, cfg(), json_hook('[{\"from\":\"84912340001\",\"text\":\"a\"},7]'))",
              "generic inbound webhook: message 2 needs from and text");
    CHECK_LUA(
        L, "raises(generic.parse_inbound, cfg(), json_hook('{\"from\":'))",
        "generic inbound webhook: body is not a JSON object or array: Expected value but found T_END at character 9");
    CHECK_LUA(L, "raises(generic.parse_inbound, cfg(), form_hook(''))", "generic inbound webhook: empty body");
    lua_close(L);
}

TEST(mock_webhooks_are_generic) {
    lua_State *L = adapters_state();
    /* What the mock provider posts: its delivery report, one part of a
     * multipart message, and an inbound message. */
    CHECK_LUA(
        L, "status_of(mock, cfg{adapter = 'mock'}, json_hook([[" DLR_M1 "]]))",
        "[{\"at\":1700000000,\"provider_id\":\"m1\",\"raw_status\":\"DELIVRD\",\"status\":\"delivered\"}] " OK_ANSWER);
    CHECK_LUA(L,
              "updates_of(mock, json_hook('{\"message_id\":\"m7\",\"status\":\"UNDELIV\",\"to\":\"+84912340001\","
              "\"timestamp\":\"2023-11-14T22:13:25Z\",\"part\":2,\"parts\":2}'))",
              "[{\"at\":1700000005,\"part\":2,\"parts\":2,\"provider_id\":\"m7\",\"raw_status\":\"UNDELIV\","
              "\"status\":\"undelivered\"}]");
    CHECK_LUA(L,
              "inbound_of(mock, cfg{adapter = 'mock'}, json_hook('{\"message_id\":\"in-9\",\"from\":\"+84912340001\","
              "\"to\":\"+84900000000\",\"text\":\"YES\",\"timestamp\":\"2023-11-14T22:13:20Z\"}'))",
              "[{\"at\":1700000000,\"from\":\"+84912340001\",\"provider_message_id\":\"in-9\",\"text\":\"YES\","
              "\"to\":\"+84900000000\"}] " OK_ANSWER);
    CHECK_LUA(L, "raises(mock.parse_inbound, cfg{adapter = 'mock'}, json_hook('{\"text\":\"YES\"}'))",
              "mock inbound webhook: message 1 needs from and text");
    lua_close(L);
}

/* ---- both ---- */

TEST(one_outcome_per_message_always) {
    /* Every status from 100 to 599 and odd ones, against bodies of every
     * kind, batches of 1 to 5 (mock) or 1 (generic): as many outcomes as
     * messages, each of one of the four shapes. */
    lua_State *L = adapters_state();
    CHECK_LUA(
        L,
        "local bodies = {'', 'x', '{}', 'null', '[]', '{\"message_id\":\"a\"}', '{\"id\":7}',\n"
        "  '{\"results\":[]}', '{\"results\":{}}', '{\"results\":[{\"message_id\":\"a\"},{\"error\":\"e\"}]}',\n"
        "  '{\"results\":[null,{\"status\":500},{\"message_id\":null},{\"message_id\":\"b\",\"error\":null}]}',\n"
        "  '{\"error\":[1]}', '{\"error\":{\"message\":{}}}', '{\"errors\":\"x\"}',\n"
        "  '{\"results\":[{\"status\":200,\"error\":\"x\"},{\"status\":\"rejected\",\"message_id\":\"c\"}]}',\n"
        "  '{\"message_id\":3482512350952730368,\"status\":201,\"error\":{}}'}\n"
        "local statuses = {0, -1, 600, 999, 1.5}\n"
        "for s = 100, 599 do statuses[#statuses + 1] = s end\n"
        "local function shape(o)\n"
        "  if o.ok == true then return type(o.provider_id) == 'string' and o.provider_id ~= '' end\n"
        "  if o.ok ~= false or type(o.error) ~= 'string' or o.error == '' then return false end\n"
        "  if o.retry == true then\n"
        "    return o.scope == nil and (o.retry_after == nil or math.type(o.retry_after) == 'integer')\n"
        "  end\n"
        "  return o.retry == false and (o.scope == 'provider' or o.scope == 'message') and o.retry_after == nil\n"
        "end\n"
        "local checked = 0\n"
        "for _, a in ipairs({{generic, 1}, {mock, 5}}) do\n"
        "  for n = 1, a[2] do\n"
        "    for _, s in ipairs(statuses) do\n"
        "      for _, b in ipairs(bodies) do\n"
        "        local out = a[1].parse_send(cfg(), msgs(n), {status = s, body = b, headers = {['retry-after'] = "
        "'1'}})\n"
        "        if #out ~= n then error(string.format('%d outcomes for %d, status %s body %s', #out, n, s, b)) end\n"
        "        for i = 1, n do\n"
        "          if not shape(out[i]) then error(string.format('bad outcome %s for status %s body %s', "
        "canon(out[i]), s, b)) end\n"
        "        end\n"
        "        checked = checked + 1\n"
        "      end\n"
        "    end\n"
        "  end\n"
        "end\n"
        "return checked",
        "48480");
    lua_close(L);
}

TEST(rules_changing_the_shared_cjson_do_not_change_adapters) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "local c = require('cjson'); c.decode_max_depth(1); c.encode_keep_buffer(false)\n"
              "return answer(generic, 1, 200, '{\"message_id\":\"deep\",\"x\":{\"y\":[1]}}')",
              "[" OK_ID("deep") "]");
    lua_close(L);
}
