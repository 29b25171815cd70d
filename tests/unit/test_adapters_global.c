/* Unit tests for the adapters of the international providers in
 * lua/adapters/: smsc (smsc.ru), twilio and vonage, run in a real Lua state
 * from the sources embedded in the binary, loaded the way the daemon loads
 * them, with the real sms.crypto (src/rules/bindings/lua_crypto.c) for the signatures.
 *
 * Fixtures are the payloads the providers document (docs/providers.md:
 * SMSC, Twilio, Vonage, and their API pages); signature vectors are Twilio's
 * published ones and ones computed independently (Python hmac/hashlib) for
 * Vonage. Each test builds
 * its state with lua_fixture (cjson and the embedded adapters.* modules
 * preloaded, the shared helpers of lua_fixture.h) plus a global sms table
 * holding sms.crypto and the helpers below, and compares what Lua
 * expressions return with the expected text: requests as "METHOD url",
 * sorted headers and the raw body (form encoding is part of what is
 * checked); outcomes and updates as JSON with sorted keys. os.time() is
 * pinned to NOW. */
#include "lua_fixture.h"

static const char prelude[] =
    /* The provider options as sms.provider would pass them. */
    "function twcfg(over)\n"
    "  return merge({name = 'tw', adapter = 'twilio', account_sid = 'AC0123456789abcdef0123456789abcdef',\n"
    "                auth_token = 'tok', sender = '+15005550006'}, over)\n"
    "end\n"
    "function vncfg(over)\n"
    "  return merge({name = 'vn', adapter = 'vonage', api_key = 'key1', api_secret = 'sec1', sender = 'Brand'}, over)\n"
    "end\n"
    "function sccfg(over)\n"
    "  return merge({name = 'sc', adapter = 'smsc', login = 'user', password = 'p&ss', sender = 'Brand'}, over)\n"
    "end\n"
    /* The outcome of an answer to msg(1) as JSON. */
    "function answer(adapter, c, status, body, headers)\n"
    "  return canon(outcomes(adapter, c, {msg(1)}, status, body, headers)[1])\n"
    "end\n"
    /* A webhook request as the core hands it over: form parsed (body plus
     * query) when the body is form-encoded. */
    "local util = require 'adapters.util'\n"
    "function hook(url, body, headers)\n"
    "  headers = headers or {['content-type'] = 'application/x-www-form-urlencoded'}\n"
    "  local path, query = url:match('^https?://[^/]+([^?]*)%?(.*)$')\n"
    "  if not path then path, query = url:match('^https?://[^/]+([^?]*)$'), '' end\n"
    "  local form = nil\n"
    "  local ct = headers['content-type'] or ''\n"
    "  if ct:find('application/x-www-form-urlencoded', 1, true) then\n"
    "    form = util.form_decode(body)\n"
    "    for k, v in pairs(util.form_decode(query)) do if form[k] == nil then form[k] = v end end\n"
    "  end\n"
    "  return {method = 'POST', url = url, path = path, query = query, headers = headers, body = body, form = form}\n"
    "end\n"
    "function headers_with(name, value)\n"
    "  local headers = {['content-type'] = 'application/x-www-form-urlencoded'}\n"
    "  headers[name] = value\n"
    "  return headers\n"
    "end\n"
    "function updates_of(adapter, c, r) return canon((adapter.parse_status(c, r))) end\n";

/* A fresh state with sms.crypto and the globals smsc, twilio, vonage and
 * util; requests show their bodies as sent. Close with lua_close. */
static lua_State *adapters_state(void) {
    static const char *const adapters[] = {"smsc", "twilio", "vonage", NULL};
    return fixture_adapters_state(&(struct fixture_options){
        .adapters = adapters, .prelude = prelude, .raw_request_body = true, .canon_digits = 14});
}

#define OK_PARTS(id, n) "{\"ok\":true,\"parts\":" #n ",\"provider_id\":\"" id "\"}"
#define REFUSED(err) FAILED("message", err)
#define NEXT_PROVIDER(err) FAILED("provider", err)

#define TWIML "<?xml version=\\\"1.0\\\" encoding=\\\"UTF-8\\\"?><Response></Response>"
#define TWIML_ANSWER "{\"body\":\"" TWIML "\",\"headers\":{\"Content-Type\":\"text/xml\"},\"status\":200}"
#define EMPTY_ANSWER "{\"body\":\"\",\"headers\":{\"Content-Type\":\"text/plain\"},\"status\":200}"

/* ---- loading ---- */

TEST(global_adapters_load_as_the_daemon_loads_them) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "smsc.batch_size .. ' ' .. twilio.batch_size .. ' ' .. vonage.batch_size", "1 1 1");
    CHECK_LUA(L, "math.type(smsc.poll_batch) .. ' ' .. smsc.poll_batch", "integer 20");
    CHECK_LUA(L, "table.concat(smsc.options, ',')", "login,password,send_id");
    CHECK_LUA(L, "table.concat(twilio.options, ',')",
              "account_sid,auth_token,messaging_service_sid,status_callback,public_url");
    CHECK_LUA(L, "table.concat(vonage.options, ',')",
              "api_secret,signature_secret,signature_method,status_callback,public_url,request_format");
    CHECK_LUA(L, "type(twilio.verify) .. type(twilio.parse_status) .. type(twilio.parse_inbound)",
              "functionfunctionfunction");
    CHECK_LUA(L, "type(vonage.verify) .. type(vonage.parse_status) .. type(vonage.parse_inbound)",
              "functionfunctionfunction");
    /* SMSC: statuses are polled; no webhook parsers (see smsc.lua). */
    CHECK_LUA(L, "type(smsc.build_poll) .. type(smsc.parse_poll) .. type(smsc.parse_status) .. type(smsc.verify)",
              "functionfunctionnilnil");
    lua_close(L);
}

TEST(util_form_helpers) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "util.form_encode({{'To', '+84 91'}, {'Skip', nil}, {'Body', 'a&b=c/d*e-f.g_h~ü'}, {'N', 3}})",
              "To=%2B84+91&Body=a%26b%3Dc%2Fd*e-f.g_h%7E%C3%BC&N=3");
    CHECK_LUA(L, "canon(util.form_pairs('a=1&b=x+y%21&a=2&c&=e'))",
              "[[\"a\",\"1\"],[\"b\",\"x y!\"],[\"a\",\"2\"],[\"c\",\"\"],[\"\",\"e\"]]");
    /* Round trip of every byte. */
    CHECK_LUA(L,
              "local s = '' for i = 0, 255 do s = s .. string.char(i) end\n"
              "return util.form_pairs(util.form_encode({{s, s}}))[1][2] == s",
              "true");
    CHECK_LUA(L,
              "tostring(util.byte_less('B', 'a')) .. tostring(util.byte_less('a', 'ab')) .. "
              "tostring(util.byte_less('ab', 'ab')) .. tostring(util.byte_less('\\xc3', 'z'))",
              "truetruefalsefalse");
    /* Against a byte-by-byte reference, on strings with long common prefixes, embedded zeros and high bytes. */
    CHECK_LUA(L,
              "local function ref(a, b)\n"
              "  for i = 1, math.min(#a, #b) do\n"
              "    if a:byte(i) ~= b:byte(i) then return a:byte(i) < b:byte(i) end\n"
              "  end\n"
              "  return #a < #b\n"
              "end\n"
              "local alphabet, bad = {'', 'a', 'b', '\\0', '\\255', 'ab', 'a\\0', 'ba'}, 0\n"
              "for _, p in ipairs({'', 'x', ('k'):rep(100), ('k'):rep(257)}) do\n"
              "  for _, s in ipairs(alphabet) do for _, t in ipairs(alphabet) do\n"
              "    local a, b = p .. s, p .. t\n"
              "    if util.byte_less(a, b) ~= ref(a, b) then bad = bad + 1 end\n"
              "    if util.byte_less(a .. 'z', b) ~= ref(a .. 'z', b) then bad = bad + 1 end\n"
              "  end end\n"
              "end\n"
              "return bad",
              "0");
    lua_close(L);
}

/* ---- SMSC: sending ---- */

TEST(smsc_request_login_password) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "request(smsc, sccfg())",
              "POST https://smsc.ru/sys/send.php\n"
              "Accept: application/json\n"
              "Content-Type: application/x-www-form-urlencoded\n"
              "login=user&psw=p%26ss&phones=%2B84912340001&mes=Hello+1&sender=Brand"
              "&id=01K00000000000000000000001&charset=utf-8&fmt=3");
    /* UTF-8 text goes out as UTF-8 bytes (charset=utf-8 tells SMSC so). */
    CHECK_LUA(L,
              "smsc.build_send(sccfg(), {msg(1, {text = 'Код: 1234\\nспасибо', encoding = 'ucs2'})}).body"
              ":match('mes=([^&]*)')",
              "%D0%9A%D0%BE%D0%B4%3A+1234%0A%D1%81%D0%BF%D0%B0%D1%81%D0%B8%D0%B1%D0%BE");
    /* The message's own sender wins; no sender at all: none sent. */
    CHECK_LUA(L, "smsc.build_send(sccfg(), {msg(1, {from = 'Shop'})}).body:match('sender=[^&]*')", "sender=Shop");
    CHECK_LUA(L, "tostring(smsc.build_send(sccfg{sender = NONE}, {msg(1)}).body:find('sender', 1, true))", "nil");
    lua_close(L);
}

TEST(smsc_request_api_key_url_and_id) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "request(smsc, sccfg{login = NONE, password = NONE, api_key = 'K3y', url = 'https://smsc.kz/'})",
              "POST https://smsc.kz/sys/send.php\n"
              "Accept: application/json\n"
              "Content-Type: application/x-www-form-urlencoded\n"
              "apikey=K3y&phones=%2B84912340001&mes=Hello+1&sender=Brand"
              "&id=01K00000000000000000000001&charset=utf-8&fmt=3");
    /* send_id = false: SMSC numbers the message itself. */
    CHECK_LUA(L, "smsc.build_send(sccfg{send_id = false}, {msg(1)}).body",
              "login=user&psw=p%26ss&phones=%2B84912340001&mes=Hello+1&sender=Brand&charset=utf-8&fmt=3");
    /* Ids SMSC could not take (over 40 characters, other characters) are not sent. */
    CHECK_LUA(L, "tostring(smsc.build_send(sccfg(), {msg(1, {id = string.rep('a', 41)})}).body:find('&id=', 1, true))",
              "nil");
    CHECK_LUA(L, "tostring(smsc.build_send(sccfg(), {msg(1, {id = 'a b'})}).body:find('&id=', 1, true))", "nil");
    lua_close(L);
}

TEST(smsc_misuse_raises) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "raises(smsc.build_send, sccfg{login = NONE}, {msg(1)})",
              "provider sc (smsc): needs login + password or api_key");
    CHECK_LUA(L, "raises(smsc.build_send, sccfg{api_key = 'k'}, {msg(1)})",
              "provider sc (smsc): give api_key or login + password, not both");
    CHECK_LUA(L, "raises(smsc.build_send, sccfg{url = 'smsc.ru'}, {msg(1)})",
              "provider sc (smsc): url must be an http(s) URL");
    CHECK_LUA(L, "raises(smsc.build_send, sccfg(), {msg(1), msg(2)})", "smsc adapter: expected 1 to 1 messages");
    lua_close(L);
}

TEST(smsc_answers) {
    lua_State *L = adapters_state();
    /* The id is SMSC's id and the phone digits: status requests need both. */
    CHECK_LUA(L, "answer(smsc, sccfg(), 200, '{\"id\": \"01K00000000000000000000001\", \"cnt\": 2}')",
              OK_PARTS("01K00000000000000000000001:84912340001", 2));
    CHECK_LUA(L, "answer(smsc, sccfg(), 200, '{\"id\": 123, \"cnt\": 1}')", OK_PARTS("123:84912340001", 1));
    CHECK_LUA(L, "answer(smsc, sccfg(), 200, '{\"cnt\": 1}')", NO_ID);
    CHECK_LUA(L, "answer(smsc, sccfg(), 200, 'OK - 1 SMS, ID - 123')", NO_ID);
    CHECK_LUA(L, "answer(smsc, sccfg(), 503, '')", RETRY("HTTP 503"));
    lua_close(L);
}

TEST(smsc_every_error_code) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "answer(smsc, sccfg(), 200, '{\"error\": \"parameters error\", \"error_code\": 1}')",
              REFUSED("SMSC error 1: parameters error"));
    CHECK_LUA(L, "answer(smsc, sccfg(), 200, '{\"error\": \"authorise error\", \"error_code\": 2}')",
              NEXT_PROVIDER("SMSC error 2: authorise error"));
    CHECK_LUA(L, "answer(smsc, sccfg(), 200, '{\"error\": \"no money\", \"error_code\": 3}')",
              NEXT_PROVIDER("SMSC error 3: no money"));
    CHECK_LUA(L, "answer(smsc, sccfg(), 200, '{\"error\": \"ip blocked\", \"error_code\": 4}')",
              NEXT_PROVIDER("SMSC error 4: ip blocked"));
    CHECK_LUA(L, "answer(smsc, sccfg(), 200, '{\"error\": \"invalid date\", \"error_code\": 5}')",
              REFUSED("SMSC error 5: invalid date"));
    CHECK_LUA(L, "answer(smsc, sccfg(), 200, '{\"error\": \"message denied\", \"error_code\": 6}')",
              REFUSED("SMSC error 6: message denied"));
    CHECK_LUA(L, "answer(smsc, sccfg(), 200, '{\"error\": \"invalid number\", \"error_code\": 7}')",
              REFUSED("SMSC error 7: invalid number"));
    CHECK_LUA(L, "answer(smsc, sccfg(), 200, '{\"error\": \"cannot deliver\", \"error_code\": 8}')",
              REFUSED("SMSC error 8: cannot deliver"));
    CHECK_LUA(L, "answer(smsc, sccfg(), 200, '{\"error\": \"duplicate request\", \"error_code\": 9}')",
              RETRY("SMSC error 9: duplicate request"));
    /* An error_code SMSC may add later: refused, not retried blindly. */
    CHECK_LUA(L, "answer(smsc, sccfg(), 200, '{\"error\": \"new\", \"error_code\": \"42\"}')",
              REFUSED("SMSC error 42: new"));
    lua_close(L);
}

/* ---- SMSC: polling ---- */

TEST(smsc_poll_request) {
    lua_State *L = adapters_state();
    /* One message: a trailing comma keeps the list form. */
    CHECK_LUA(L, "show_request(smsc.build_poll(sccfg(), {'01K00000000000000000000001:84912340001'}))",
              "POST https://smsc.ru/sys/status.php\n"
              "Accept: application/json\n"
              "Content-Type: application/x-www-form-urlencoded\n"
              "login=user&psw=p%26ss&phone=84912340001%2C&id=01K00000000000000000000001%2C&charset=utf-8&fmt=3");
    CHECK_LUA(
        L, "smsc.build_poll(sccfg{login = NONE, password = NONE, api_key = 'K'}, {'5:7999', '6:7888', 'a:b:1'}).body",
        "apikey=K&phone=7999%2C7888%2C1&id=5%2C6%2Ca%3Ab&charset=utf-8&fmt=3");
    CHECK_LUA(L, "raises(smsc.build_poll, sccfg(), {'no-phone'})", "smsc adapter: provider id 1 is not '<id>:<phone>'");
    CHECK_LUA(L, "raises(smsc.build_poll, sccfg(), {})", "smsc adapter: expected 1 to 20 ids to poll");
    lua_close(L);
}

TEST(smsc_poll_every_status) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "local codes = {-3, -2, -1, 0, 1, 2, 3, 4, 20, 22, 23, 24, 25, 7}\n"
              "local ids, entries = {}, {}\n"
              "for i, c in ipairs(codes) do\n"
              "  ids[i] = i .. ':7999000000' .. i\n"
              "  entries[i] = string.format('{\"status\": %d, \"last_date\": \"14.11.2023 22:13:20\", "
              "\"last_timestamp\": %d, \"err\": 0}', c, NOW + i)\n"
              "end\n"
              "local out = smsc.parse_poll(sccfg(), ids, {status = 200, headers = {}, body = '[' .. "
              "table.concat(entries, ',') .. ']'})\n"
              "local lines = {}\n"
              "for i, u in ipairs(out) do\n"
              "  lines[i] = u.raw_status .. '=' .. u.status .. (u.error and (' (' .. u.error .. ')') or '')\n"
              "  assert(u.provider_id == ids[i] and u.at == NOW + i)\n"
              "end\n"
              "return table.concat(lines, '; ')",
              "-3=unknown (status -3: message not found); -2=unknown (status -2: stopped); -1=accepted; 0=sent; "
              "1=delivered; 2=delivered; 3=expired; 4=delivered; "
              "20=undelivered (status 20: cannot be delivered); 22=rejected (status 22: invalid number); "
              "23=rejected (status 23: forbidden); 24=rejected (status 24: not enough money); "
              "25=undelivered (status 25: number unavailable); 7=unknown (status 7)");
    lua_close(L);
}

TEST(smsc_poll_matching_and_errors) {
    lua_State *L = adapters_state();
    /* A single answer object; a GSM error code in err. */
    CHECK_LUA(
        L,
        "canon(smsc.parse_poll(sccfg(), {'123:79991234567'}, {status = 200, headers = {}, "
        "body = '{\"status\": 20, \"last_timestamp\": 1700000000, \"err\": 6}'}))",
        "[{\"at\":1700000000,\"error\":\"status 20: cannot be delivered, err 6\",\"provider_id\":\"123:79991234567\","
        "\"raw_status\":\"20\",\"status\":\"undelivered\"}]");
    /* Entries naming their id and phone are matched by them, whatever the order;
     * one naming a message not asked for is not credited to any. */
    CHECK_LUA(
        L,
        "local out = smsc.parse_poll(sccfg(), {'1:7001', '2:7002', '3:7003'}, {status = 200, headers = {}, body = "
        "'[{\"id\": 2, \"phone\": \"+7002\", \"status\": 1}, {\"id\": 1, \"phone\": \"7001\", \"status\": 3},"
        " {\"id\": 9, \"phone\": \"7009\", \"status\": 1}]'})\n"
        "local t = {} for i, u in ipairs(out) do t[i] = u.provider_id .. '=' .. u.status end\n"
        "return table.concat(t, ' ')",
        "1:7001=expired 2:7002=delivered");
    CHECK_LUA(L,
              "raises(smsc.parse_poll, sccfg(), {'1:7001'}, {status = 200, headers = {}, "
              "body = '{\"error\": \"authorise error\", \"error_code\": 2}'})",
              "smsc status request: SMSC error 2: authorise error");
    CHECK_LUA(L, "raises(smsc.parse_poll, sccfg(), {'1:7001'}, {status = 502, headers = {}, body = 'Bad Gateway'})",
              "smsc status request: HTTP 502: Bad Gateway");
    CHECK_LUA(L, "raises(smsc.parse_poll, sccfg(), {'1:7001'}, {status = 200, headers = {}, body = 'Status = 1'})",
              "smsc status request: answer is not JSON: Expected value but found invalid token at character 1");
    lua_close(L);
}

/* ---- Twilio: sending ---- */

TEST(twilio_request_from_and_basic_auth) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "request(twilio, twcfg())",
              "POST https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json\n"
              "Accept: application/json\n"
              "Authorization: Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjp0b2s=\n"
              "Content-Type: application/x-www-form-urlencoded\n"
              "To=%2B84912340001&From=%2B15005550006&Body=Hello+1");
    /* The token never goes into the URL or the body. */
    CHECK_LUA(L,
              "local r = twilio.build_send(twcfg(), {msg(1)})\n"
              "return tostring(r.url:find('tok', 1, true)) .. ' ' .. tostring(r.body:find('tok', 1, true))",
              "nil nil");
    CHECK_LUA(L, "twilio.build_send(twcfg(), {msg(1, {from = 'Shop', text = 'Xin chào & bye\\n'})}).body",
              "To=%2B84912340001&From=Shop&Body=Xin+ch%C3%A0o+%26+bye%0A");
    lua_close(L);
}

TEST(twilio_request_messaging_service_and_callback) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "twilio.build_send(twcfg{sender = NONE, messaging_service_sid = 'MG0123'}, {msg(1)}).body",
              "To=%2B84912340001&MessagingServiceSid=MG0123&Body=Hello+1");
    CHECK_LUA(L, "twilio.build_send(twcfg{messaging_service_sid = 'MG0123'}, {msg(1)}).body",
              "To=%2B84912340001&From=%2B15005550006&MessagingServiceSid=MG0123&Body=Hello+1");
    CHECK_LUA(
        L, "twilio.build_send(twcfg{status_callback = 'https://cb.example.com/tw?x=1'}, {msg(1)}).body",
        "To=%2B84912340001&From=%2B15005550006&Body=Hello+1&StatusCallback=https%3A%2F%2Fcb.example.com%2Ftw%3Fx%3D1");
    CHECK_LUA(L, "twilio.build_send(twcfg{public_url = 'https://sms.example.com/'}, {msg(1)}).body",
              "To=%2B84912340001&From=%2B15005550006&Body=Hello+1"
              "&StatusCallback=https%3A%2F%2Fsms.example.com%2Fhooks%2Ftw%2Fstatus");
    /* A provider protected by a path secret gets its callbacks at the secret path. */
    CHECK_LUA(L,
              "twilio.build_send(twcfg{public_url = 'https://sms.example.com', webhook_path_secret = 's3cr3t-9'},"
              " {msg(1)}).body",
              "To=%2B84912340001&From=%2B15005550006&Body=Hello+1"
              "&StatusCallback=https%3A%2F%2Fsms.example.com%2Fhooks%2Ftw%2Fs3cr3t-9%2Fstatus");
    CHECK_LUA(L, "twilio.build_send(twcfg{url = 'http://127.0.0.1:9090/'}, {msg(1)}).url",
              "http://127.0.0.1:9090/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json");
    lua_close(L);
}

TEST(twilio_misuse_raises) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "raises(twilio.build_send, twcfg{auth_token = NONE}, {msg(1)})",
              "provider tw (twilio): needs account_sid and auth_token");
    CHECK_LUA(L, "raises(twilio.build_send, twcfg{account_sid = 'AC1/../x'}, {msg(1)})",
              "provider tw (twilio): account_sid must be letters and digits");
    CHECK_LUA(L, "raises(twilio.build_send, twcfg{sender = NONE}, {msg(1)})",
              "provider tw (twilio): needs a sender or messaging_service_sid");
    CHECK_LUA(L, "raises(twilio.build_send, twcfg(), {})", "twilio adapter: expected 1 to 1 messages");
    lua_close(L);
}

/* ---- Twilio: answers ---- */

TEST(twilio_answers) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "answer(twilio, twcfg(), 201, '{\"sid\": \"SM0123456789abcdef0123456789abcdef\", \"status\": \"queued\", "
              "\"num_segments\": \"2\", \"body\": \"Hello 1\"}')",
              OK_PARTS("SM0123456789abcdef0123456789abcdef", 2));
    CHECK_LUA(L, "answer(twilio, twcfg(), 201, '{\"status\": \"queued\"}')", NO_ID);
    CHECK_LUA(L, "answer(twilio, twcfg(), 200, '')", NO_ID);
    CHECK_LUA(L, "answer(twilio, twcfg(), 503, '<html>unavailable</html>', {['retry-after'] = '7'})",
              "{\"error\":\"HTTP 503\",\"ok\":false,\"retry\":true,\"retry_after\":7}");
    lua_close(L);
}

TEST(twilio_error_codes) {
    lua_State *L = adapters_state();
#define TW_ERR(status, code, text)                                                                                     \
    "answer(twilio, twcfg(), " #status ", '{\"code\": " #code ", \"message\": \"" text "\", \"status\": " #status "}'" \
    ")"
    CHECK_LUA(L, TW_ERR(400, 21211, "The To number +849 is not a valid phone number."),
              REFUSED("HTTP 400 (21211): The To number +849 is not a valid phone number."));
    CHECK_LUA(L, TW_ERR(400, 21608, "The number is unverified."),
              REFUSED("HTTP 400 (21608): The number is unverified."));
    CHECK_LUA(L, TW_ERR(400, 21610, "Attempt to send to unsubscribed recipient"),
              REFUSED("HTTP 400 (21610): Attempt to send to unsubscribed recipient"));
    CHECK_LUA(L, TW_ERR(400, 21614, "To is not a valid mobile number"),
              REFUSED("HTTP 400 (21614): To is not a valid mobile number"));
    CHECK_LUA(L, TW_ERR(400, 21612, "cannot route"), REFUSED("HTTP 400 (21612): cannot route"));
    CHECK_LUA(L, TW_ERR(400, 21408, "Permission to send an SMS has not been enabled"),
              REFUSED("HTTP 400 (21408): Permission to send an SMS has not been enabled"));
    CHECK_LUA(L, TW_ERR(400, 21606, "The From phone number is not a valid, SMS-capable number"),
              NEXT_PROVIDER("HTTP 400 (21606): The From phone number is not a valid, SMS-capable number"));
    CHECK_LUA(L, TW_ERR(401, 20003, "Authenticate"), NEXT_PROVIDER("HTTP 401 (20003): Authenticate"));
    CHECK_LUA(L, TW_ERR(404, 20404, "The requested resource was not found"),
              NEXT_PROVIDER("HTTP 404 (20404): The requested resource was not found"));
    CHECK_LUA(L, TW_ERR(429, 20429, "Too Many Requests"), RETRY("HTTP 429 (20429): Too Many Requests"));
    CHECK_LUA(L, TW_ERR(400, 21611, "This From number has exceeded the maximum number of queued messages"),
              RETRY("HTTP 400 (21611): This From number has exceeded the maximum number of queued messages"));
    /* Codes not in the table: the HTTP status decides. */
    CHECK_LUA(L, TW_ERR(400, 21999, "something new"), REFUSED("HTTP 400 (21999): something new"));
    CHECK_LUA(L, TW_ERR(403, 99999, "forbidden"), NEXT_PROVIDER("HTTP 403 (99999): forbidden"));
    CHECK_LUA(L, TW_ERR(500, 20500, "Internal Server Error"), RETRY("HTTP 500 (20500): Internal Server Error"));
    CHECK_LUA(L,
              "answer(twilio, twcfg(), 429, '{\"code\": 20429, \"message\": \"Too Many Requests\"}', {['retry-after'] "
              "= '3'})",
              "{\"error\":\"HTTP 429 (20429): Too Many Requests\",\"ok\":false,\"retry\":true,\"retry_after\":3}");
#undef TW_ERR
    lua_close(L);
}

/* ---- Twilio: webhooks ---- */

TEST(twilio_status_callback_every_status) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "local t = {}\n"
              "for _, s in ipairs({'queued', 'accepted', 'scheduled', 'sending', 'sent', 'delivered', 'read',\n"
              "                    'undelivered', 'failed', 'canceled', 'partially_delivered', 'receiving', "
              "'Delivered'}) do\n"
              "  local u = twilio.parse_status(twcfg(), hook('https://sms.example.com/hooks/tw/status',\n"
              "    'MessageSid=SM1&MessageStatus=' .. s))[1]\n"
              "  t[#t + 1] = s .. '=' .. u.status\n"
              "end\n"
              "return table.concat(t, ' ')",
              "queued=accepted accepted=accepted scheduled=accepted sending=sent sent=sent delivered=delivered "
              "read=delivered undelivered=undelivered failed=rejected canceled=rejected partially_delivered=unknown "
              "receiving=unknown Delivered=delivered");
    /* The documented form, with the answer Twilio expects: empty TwiML. */
    CHECK_LUA(L,
              "status_of(twilio, twcfg(), hook('https://sms.example.com/hooks/tw/status',\n"
              "  'AccountSid=AC0123&From=%2B15005550006&MessageSid=SM0123&MessageStatus=undelivered'"
              " .. '&SmsSid=SM0123&SmsStatus=undelivered&To=%2B84912340001&ErrorCode=30003'))",
              "[{\"error\":\"Twilio error 30003\",\"provider_id\":\"SM0123\",\"raw_status\":\"undelivered\","
              "\"status\":\"undelivered\"}] " TWIML_ANSWER);
    CHECK_LUA(L,
              "updates_of(twilio, twcfg(), hook('https://sms.example.com/hooks/tw/status',"
              " 'MessageSid=SM9&MessageStatus=failed&ErrorCode=30001'))",
              "[{\"error\":\"Twilio error "
              "30001\",\"provider_id\":\"SM9\",\"raw_status\":\"failed\",\"status\":\"rejected\"}]");
    /* The older names only; the body parsed here when the core did not. */
    CHECK_LUA(L,
              "updates_of(twilio, twcfg(), hook('https://x/hooks/tw/status', 'SmsSid=SM7&SmsStatus=sent&ErrorCode=0',"
              " {['content-type'] = 'text/plain'}))",
              "[{\"provider_id\":\"SM7\",\"raw_status\":\"sent\",\"status\":\"sent\"}]");
    CHECK_LUA(L, "raises(twilio.parse_status, twcfg(), hook('https://x/hooks/tw/status', 'MessageStatus=sent'))",
              "twilio status callback: needs MessageSid and MessageStatus");
    lua_close(L);
}

TEST(twilio_inbound) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "inbound_of(twilio, twcfg(), hook('https://sms.example.com/hooks/tw/inbound',\n"
              "  'ToCountry=US&SmsMessageSid=SM5&NumMedia=0&MessageSid=SM5&From=%2B14155550100'"
              " .. '&To=%2B15005550006&Body=STOP+now+%F0%9F%98%80&NumSegments=1&ApiVersion=2010-04-01'))",
              "[{\"from\":\"+14155550100\",\"provider_message_id\":\"SM5\",\"text\":\"STOP now "
              "😀\",\"to\":\"+15005550006\"}] " TWIML_ANSWER);
    CHECK_LUA(L, "raises(twilio.parse_inbound, twcfg(), hook('https://x/hooks/tw/inbound', 'Body=hi'))",
              "twilio inbound message: needs From and To");
    lua_close(L);
}

/* Twilio's published validator vector: auth token 12345, this URL, these
 * parameters. It circulates in two versions: Caller/From +14158675309 with
 * the signature RSOYDt4T1cUTdK1PDd93/VVr8B8= (Twilio's SDK test suites), and
 * Caller/From +12349013030 (Twilio's security page), whose signature is
 * 0/KCTR6DLpKmkAf8muzZqo1nDgQ=. Mixing them (+12349013030 with RSOY...) does
 * not verify, and must not: both versions are checked with the signature
 * that belongs to them. */
#define TW_DOC_URL "'https://mycompany.com/myapp.php?foo=1&bar=2'"
#define TW_DOC_BODY(phone)                                                                                             \
    "'To=%2B18005551212&Digits=1234&From=%2B" phone "&Caller=%2B" phone "&CallSid=CA1234567890ABCDE'"

TEST(twilio_signature_valid) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "verdict(twilio, twcfg{auth_token = '12345'}, hook(" TW_DOC_URL
              ", " TW_DOC_BODY("14158675309") ", headers_with('x-twilio-signature', 'RSOYDt4T1cUTdK1PDd93/VVr8B8=')))",
              "true");
    CHECK_LUA(L,
              "verdict(twilio, twcfg{auth_token = '12345'}, hook(" TW_DOC_URL
              ", " TW_DOC_BODY("12349013030") ", headers_with('x-twilio-signature', '0/KCTR6DLpKmkAf8muzZqo1nDgQ=')))",
              "true");
    CHECK_LUA(L,
              "verdict(twilio, twcfg{auth_token = '12345'}, hook(" TW_DOC_URL
              ", " TW_DOC_BODY("12349013030") ", headers_with('x-twilio-signature', 'RSOYDt4T1cUTdK1PDd93/VVr8B8=')))",
              "false: X-Twilio-Signature does not match");
    /* Repeated names: sorted by value, a repeated pair counted once (Twilio SDK vector). */
    CHECK_LUA(L,
              "verdict(twilio, twcfg{auth_token = '12345'}, hook(" TW_DOC_URL ", "
              "'Digits=5678&Sid=CA123&Digits=1234&SidAccount=AC123&Digits=1234', "
              "headers_with('x-twilio-signature', 'IK+Dwps556ElfBT0I3Rgjkr1wJU=')))",
              "true");
    /* The URL is signed as written (host case kept). */
    CHECK_LUA(
        L,
        "verdict(twilio, twcfg{auth_token = '12345'}, hook('https://MyCompany.com/myapp.php?foo=1&bar=2', " TW_DOC_BODY(
            "14158675309") ", headers_with('x-twilio-signature', 'g9IN/x4Cft2g517EjYvEvM/W7LU=')))",
        "true");
    /* Signed with the default port written out, received without it. */
    CHECK_LUA(L,
              "verdict(twilio, twcfg{auth_token = '12345'}, hook(" TW_DOC_URL
              ", " TW_DOC_BODY("14158675309") ", headers_with('x-twilio-signature', 'kvajT1Ptam85bY51eRf/AJRuM3w=')))",
              "true");
    /* A JSON body: the URL carries its SHA-256 in bodySHA256 (Twilio SDK fixture body). */
    CHECK_LUA(L,
              "verdict(twilio, twcfg{auth_token = '12345'}, hook('https://mycompany.com/myapp.php?foo=1&bar=2"
              "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620', "
              "'{\"property\": \"value\", \"boolean\": true}', {['content-type'] = 'application/json', "
              "['x-twilio-signature'] = 'a9nBmqA0ju/hNViExpshrM61xv4='}))",
              "true");
    /* A status callback as Twilio posts it to our hook. */
    CHECK_LUA(L,
              "verdict(twilio, twcfg(), hook('https://hooks.example.com/hooks/tw/status', "
              "'ApiVersion=2010-04-01&SmsSid=SM0123456789abcdef0123456789abcdef&SmsStatus=delivered"
              "&MessageStatus=delivered&To=%2B84912340001&MessageSid=SM0123456789abcdef0123456789abcdef"
              "&AccountSid=AC0123456789abcdef0123456789abcdef&From=%2B15005550006', "
              "headers_with('x-twilio-signature', 'm06DMIUYe23AVgVUSjSnrglQpxc=')))",
              "true");
    lua_close(L);
}

TEST(twilio_signature_invalid) {
    lua_State *L = adapters_state();
    /* Altered body. */
    CHECK_LUA(L,
              "verdict(twilio, twcfg{auth_token = '12345'}, hook(" TW_DOC_URL ", "
              "'To=%2B18005551212&Digits=9999&From=%2B14158675309&Caller=%2B14158675309&CallSid=CA1234567890ABCDE', "
              "headers_with('x-twilio-signature', 'RSOYDt4T1cUTdK1PDd93/VVr8B8=')))",
              "false: X-Twilio-Signature does not match");
    /* An added parameter. */
    CHECK_LUA(L,
              "verdict(twilio, twcfg{auth_token = '12345'}, hook(" TW_DOC_URL ", " TW_DOC_BODY(
                  "14158675309") " .. '&Extra=1', headers_with('x-twilio-signature', 'RSOYDt4T1cUTdK1PDd93/VVr8B8=')))",
              "false: X-Twilio-Signature does not match");
    /* Altered URL. */
    CHECK_LUA(
        L,
        "verdict(twilio, twcfg{auth_token = '12345'}, hook('https://mycompany.com/myapp.php?foo=2&bar=2', " TW_DOC_BODY(
            "14158675309") ", headers_with('x-twilio-signature', 'RSOYDt4T1cUTdK1PDd93/VVr8B8=')))",
        "false: X-Twilio-Signature does not match");
    CHECK_LUA(
        L,
        "verdict(twilio, twcfg{auth_token = '12345'}, hook('http://mycompany.com/myapp.php?foo=1&bar=2', " TW_DOC_BODY(
            "14158675309") ", headers_with('x-twilio-signature', 'RSOYDt4T1cUTdK1PDd93/VVr8B8=')))",
        "false: X-Twilio-Signature does not match");
    /* Another auth token. */
    CHECK_LUA(L,
              "verdict(twilio, twcfg{auth_token = '54321'}, hook(" TW_DOC_URL
              ", " TW_DOC_BODY("14158675309") ", headers_with('x-twilio-signature', 'RSOYDt4T1cUTdK1PDd93/VVr8B8=')))",
              "false: X-Twilio-Signature does not match");
    /* Missing or empty header. */
    CHECK_LUA(L, "verdict(twilio, twcfg{auth_token = '12345'}, hook(" TW_DOC_URL ", " TW_DOC_BODY("14158675309") "))",
              "false: missing X-Twilio-Signature");
    CHECK_LUA(L,
              "verdict(twilio, twcfg{auth_token = '12345'}, hook(" TW_DOC_URL
              ", " TW_DOC_BODY("14158675309") ", headers_with('x-twilio-signature', '')))",
              "false: missing X-Twilio-Signature");
    /* Not the length of a base64 HMAC-SHA1: refused before the body is read. */
    CHECK_LUA(L,
              "verdict(twilio, twcfg{auth_token = '12345'}, hook(" TW_DOC_URL
              ", " TW_DOC_BODY("14158675309") ", headers_with('x-twilio-signature', 'RSOYDt4T1cUTdK1PDd93/VVr8B8= ')))",
              "false: X-Twilio-Signature is not 28 characters");
    CHECK_LUA(L,
              "verdict(twilio, twcfg{auth_token = '12345'}, hook(" TW_DOC_URL
              ", " TW_DOC_BODY("14158675309") ", headers_with('x-twilio-signature', ('A'):rep(15000))))",
              "false: X-Twilio-Signature is not 28 characters");
    /* More parameters than any webhook has (util.MAX_FIELDS): refused, not sorted. */
    CHECK_LUA(L,
              "verdict(twilio, twcfg{auth_token = '12345'}, hook(" TW_DOC_URL ", ('a=1&'):rep(257), "
              "headers_with('x-twilio-signature', 'RSOYDt4T1cUTdK1PDd93/VVr8B8=')))",
              "false: more than 256 parameters");
    /* A JSON body that does not match its bodySHA256. */
    CHECK_LUA(L,
              "verdict(twilio, twcfg{auth_token = '12345'}, hook('https://mycompany.com/myapp.php?foo=1&bar=2"
              "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620', "
              "'{\"property\": \"other\", \"boolean\": true}', {['content-type'] = 'application/json', "
              "['x-twilio-signature'] = 'a9nBmqA0ju/hNViExpshrM61xv4='}))",
              "false: body does not match bodySHA256");
    /* No auth token to check with. */
    CHECK_LUA(L,
              "verdict(twilio, twcfg{auth_token = NONE}, hook(" TW_DOC_URL
              ", " TW_DOC_BODY("14158675309") ", headers_with('x-twilio-signature', 'RSOYDt4T1cUTdK1PDd93/VVr8B8=')))",
              "false: auth_token is not set: cannot check X-Twilio-Signature");
    lua_close(L);
}

/* ---- Vonage: sending ---- */

TEST(vonage_request_form) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "request(vonage, vncfg())",
              "POST https://rest.nexmo.com/sms/json\n"
              "Accept: application/json\n"
              "Content-Type: application/x-www-form-urlencoded\n"
              "api_key=key1&api_secret=sec1&from=Brand&to=84912340001&text=Hello+1"
              "&client-ref=01K00000000000000000000001");
    /* UCS-2 texts go as type=unicode; the callback from public_url. */
    CHECK_LUA(L,
              "vonage.build_send(vncfg{public_url = 'https://sms.example.com'}, "
              "{msg(1, {text = 'Chào', encoding = 'ucs2', from = '+15005550006'})}).body",
              "api_key=key1&api_secret=sec1&from=%2B15005550006&to=84912340001&text=Ch%C3%A0o&type=unicode"
              "&callback=https%3A%2F%2Fsms.example.com%2Fhooks%2Fvn%2Fstatus&client-ref=01K00000000000000000000001");
    CHECK_LUA(L,
              "vonage.build_send(vncfg{status_callback = 'https://cb.example.com/dlr', url = 'http://127.0.0.1:9/'}, "
              "{msg(1)}).url .. ' ' .. vonage.build_send(vncfg{status_callback = 'https://cb.example.com/dlr'}, "
              "{msg(1)}).body:match('callback=[^&]*')",
              "http://127.0.0.1:9/sms/json callback=https%3A%2F%2Fcb.example.com%2Fdlr");
    lua_close(L);
}

TEST(vonage_request_json_and_misuse) {
    lua_State *L = adapters_state();
    CHECK_LUA(
        L,
        "local r = vonage.build_send(vncfg{request_format = 'json'}, {msg(1, {encoding = 'ucs2'})})\n"
        "return r.headers['Content-Type'] .. ' ' .. canon(require('cjson').decode(r.body))",
        "application/json {\"api_key\":\"key1\",\"api_secret\":\"sec1\",\"client-ref\":\"01K00000000000000000000001\","
        "\"from\":\"Brand\",\"text\":\"Hello 1\",\"to\":\"84912340001\",\"type\":\"unicode\"}");
    CHECK_LUA(L, "raises(vonage.build_send, vncfg{api_secret = NONE}, {msg(1)})",
              "provider vn (vonage): needs api_key and api_secret");
    CHECK_LUA(L, "raises(vonage.build_send, vncfg{sender = NONE}, {msg(1)})",
              "provider vn (vonage): needs a sender (the SMS API requires from)");
    CHECK_LUA(L, "raises(vonage.build_send, vncfg{request_format = 'xml'}, {msg(1)})",
              "provider vn (vonage): request_format must be \"form\" or \"json\"");
    lua_close(L);
}

/* ---- Vonage: answers ---- */

TEST(vonage_answers) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "answer(vonage, vncfg(), 200, '{\"message-count\": \"1\", \"messages\": [{\"to\": \"84912340001\", "
              "\"message-id\": \"0C000000217B7F02\", \"status\": \"0\", \"remaining-balance\": \"15.53590000\", "
              "\"message-price\": \"0.03330000\", \"network\": \"23410\"}]}')",
              OK_PARTS("0C000000217B7F02", 1));
    /* A long text: one entry per part; the first part's id, the part count. */
    CHECK_LUA(L,
              "answer(vonage, vncfg(), 200, '{\"message-count\": \"3\", \"messages\": ["
              "{\"to\": \"84912340001\", \"message-id\": \"0A00000012345671\", \"status\": \"0\"},"
              "{\"to\": \"84912340001\", \"message-id\": \"0A00000012345672\", \"status\": \"0\"},"
              "{\"to\": \"84912340001\", \"message-id\": \"0A00000012345673\", \"status\": \"0\"}]}')",
              OK_PARTS("0A00000012345671", 3));
    /* A part refused after others were taken: the message went out (a retry
     * would repeat the taken parts); parts counts what was taken. */
    CHECK_LUA(L,
              "answer(vonage, vncfg(), 200, '{\"message-count\": \"2\", \"messages\": ["
              "{\"message-id\": \"0A00000012345671\", \"status\": \"0\"},"
              "{\"status\": \"1\", \"error-text\": \"Throughput Rate Exceeded\"}]}')",
              OK_PARTS("0A00000012345671", 1));
    CHECK_LUA(L, "answer(vonage, vncfg(), 200, '{\"message-count\": \"1\", \"messages\": []}')", NO_ID);
    CHECK_LUA(L, "answer(vonage, vncfg(), 200, '{\"messages\": [{\"status\": \"0\"}]}')", NO_ID);
    CHECK_LUA(L, "answer(vonage, vncfg(), 200, 'garbage')", NO_ID);
    CHECK_LUA(L, "answer(vonage, vncfg(), 401, '{\"error-text\": \"Bad Credentials\"}')", NEXT_PROVIDER("HTTP 401"));
    CHECK_LUA(L, "answer(vonage, vncfg(), 500, '')", RETRY("HTTP 500"));
    lua_close(L);
}

TEST(vonage_every_status_code) {
    lua_State *L = adapters_state();
#define VN_ERR(code, text)                                                                                             \
    "answer(vonage, vncfg(), 200, '{\"message-count\": \"1\", \"messages\": [{\"status\": \"" #code                    \
    "\", \"error-text\": \"" text "\"}]}')"
    CHECK_LUA(L, VN_ERR(1, "Throughput Rate Exceeded"), RETRY("status 1: Throughput Rate Exceeded"));
    CHECK_LUA(L, VN_ERR(2, "Missing to param"), REFUSED("status 2: Missing to param"));
    CHECK_LUA(L, VN_ERR(3, "Invalid to param"), REFUSED("status 3: Invalid to param"));
    CHECK_LUA(L, VN_ERR(4, "Bad Credentials"), NEXT_PROVIDER("status 4: Bad Credentials"));
    CHECK_LUA(L, VN_ERR(5, "Internal Error"), RETRY("status 5: Internal Error"));
    CHECK_LUA(L, VN_ERR(6, "Invalid Message"), REFUSED("status 6: Invalid Message"));
    CHECK_LUA(L, VN_ERR(7, "Number Barred"), REFUSED("status 7: Number Barred"));
    CHECK_LUA(L, VN_ERR(8, "Partner Account Barred"), NEXT_PROVIDER("status 8: Partner Account Barred"));
    CHECK_LUA(L, VN_ERR(9, "Partner Quota Exceeded"), NEXT_PROVIDER("status 9: Partner Quota Exceeded"));
    CHECK_LUA(L, VN_ERR(10, "Too Many Existing Binds"), RETRY("status 10: Too Many Existing Binds"));
    CHECK_LUA(L, VN_ERR(11, "Account not enabled for HTTP"), NEXT_PROVIDER("status 11: Account not enabled for HTTP"));
    CHECK_LUA(L, VN_ERR(12, "Message Too Long"), REFUSED("status 12: Message Too Long"));
    CHECK_LUA(L, VN_ERR(14, "Invalid Signature"), NEXT_PROVIDER("status 14: Invalid Signature"));
    CHECK_LUA(L, VN_ERR(15, "Illegal Sender Address - rejected"),
              NEXT_PROVIDER("status 15: Illegal Sender Address - rejected"));
    CHECK_LUA(L, VN_ERR(22, "Invalid Network Code"), REFUSED("status 22: Invalid Network Code"));
    CHECK_LUA(L, VN_ERR(23, "Invalid Callback Url"), NEXT_PROVIDER("status 23: Invalid Callback Url"));
    CHECK_LUA(L, VN_ERR(29, "Non White-listed Destination"), REFUSED("status 29: Non White-listed Destination"));
    CHECK_LUA(L, VN_ERR(32, "Signature And API Secret Disallowed"),
              NEXT_PROVIDER("status 32: Signature And API Secret Disallowed"));
    CHECK_LUA(L, VN_ERR(33, "Number De-activated"), REFUSED("status 33: Number De-activated"));
    CHECK_LUA(L, VN_ERR(99, "Something new"), REFUSED("status 99: Something new"));
    /* A number status, and no error text. */
    CHECK_LUA(L, "answer(vonage, vncfg(), 200, '{\"messages\": [{\"status\": 4}]}')", NEXT_PROVIDER("status 4"));
#undef VN_ERR
    lua_close(L);
}

/* ---- Vonage: webhooks ---- */

#define VN_DLR(status, err)                                                                                            \
    "'msisdn=84912340001&to=Brand&network-code=45204&messageId=0A0000001234567B&price=0.03330000"                      \
    "&status=" status "&scts=2311142213&err-code=" err "&client-ref=01K00000000000000000000001"                        \
    "&message-timestamp=2023-11-14+22%3A13%3A20'"

TEST(vonage_delivery_receipt_every_status) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "local t = {}\n"
              "for _, s in ipairs({'delivered', 'expired', 'failed', 'rejected', 'accepted', 'buffered', 'unknown', "
              "'weird'}) do\n"
              "  local u = vonage.parse_status(vncfg(), hook('https://sms.example.com/hooks/vn/status',\n"
              "    'messageId=0A01&status=' .. s .. '&err-code=0'))[1]\n"
              "  t[#t + 1] = s .. '=' .. u.status\n"
              "end\n"
              "return table.concat(t, ' ')",
              "delivered=delivered expired=expired failed=undelivered rejected=rejected accepted=sent buffered=sent "
              "unknown=unknown weird=unknown");
    CHECK_LUA(
        L, "status_of(vonage, vncfg(), hook('https://sms.example.com/hooks/vn/status', " VN_DLR("delivered", "0") "))",
        "[{\"at\":1700000000,\"cost\":0.0333,\"message_id\":\"01K00000000000000000000001\",\"provider_id\":"
        "\"0A0000001234567B\","
        "\"raw_status\":\"delivered\",\"status\":\"delivered\"}] " EMPTY_ANSWER);
    CHECK_LUA(
        L, "updates_of(vonage, vncfg(), hook('https://sms.example.com/hooks/vn/status', " VN_DLR("failed", "2") "))",
        "[{\"at\":1700000000,\"cost\":0.0333,\"error\":\"err-code 2\",\"message_id\":\"01K00000000000000000000001\","
        "\"provider_id\":\"0A0000001234567B\",\"raw_status\":\"failed\",\"status\":\"undelivered\"}]");
    /* POST-JSON webhooks, and GET-style parameters in the query. */
    CHECK_LUA(
        L,
        "updates_of(vonage, vncfg(), hook('https://sms.example.com/hooks/vn/status', "
        "'{\"msisdn\": \"84912340001\", \"to\": \"Brand\", \"messageId\": \"0A0000001234567C\", \"status\": "
        "\"expired\", "
        "\"err-code\": \"5\", \"message-timestamp\": \"2023-11-14 22:13:25\"}', {['content-type'] = "
        "'application/json'}))",
        "[{\"at\":1700000005,\"error\":\"err-code 5\",\"provider_id\":\"0A0000001234567C\",\"raw_status\":\"expired\","
        "\"status\":\"expired\"}]");
    CHECK_LUA(
        L,
        "updates_of(vonage, vncfg(), hook('https://sms.example.com/hooks/vn/status?messageId=0A03&status=rejected"
        "&err-code=6', '', {}))",
        "[{\"error\":\"err-code 6\",\"provider_id\":\"0A03\",\"raw_status\":\"rejected\",\"status\":\"rejected\"}]");
    CHECK_LUA(L, "raises(vonage.parse_status, vncfg(), hook('https://x/hooks/vn/status', 'status=delivered'))",
              "vonage delivery receipt: needs messageId and status");
    CHECK_LUA(L,
              "raises(vonage.parse_status, vncfg(), hook('https://x/hooks/vn/status', '[1]', {['content-type'] = "
              "'application/json'}))",
              "vonage webhook: body is not a JSON object");
    CHECK_LUA(
        L,
        "raises(vonage.parse_status, vncfg(), hook('https://x/hooks/vn/status', '{\\\"messageId', {['content-type'] = "
        "'application/json'}))",
        "vonage webhook: body is not a JSON object: Expected object key string but found unexpected end of string at "
        "character 12");
    lua_close(L);
}

TEST(vonage_client_ref_round_trip) {
    lua_State *L = adapters_state();
    /* build_send sends our message id as client-ref, form or JSON... */
    CHECK_LUA(L, "vonage.build_send(vncfg(), {msg(2)}).body:match('client%-ref=[^&]*')",
              "client-ref=01K00000000000000000000002");
    CHECK_LUA(L,
              "require('cjson').decode(vonage.build_send(vncfg{request_format = 'json'}, {msg(3)}).body)['client-ref']",
              "01K00000000000000000000003");
    /* ...but not an id Vonage could refuse as too long (40 characters, the
     * stricter of its documented limits), nor an empty one. */
    CHECK_LUA(L, "vonage.build_send(vncfg(), {msg(1, {id = string.rep('a', 40)})}).body:match('client%-ref=[^&]*')",
              "client-ref="
              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    CHECK_LUA(
        L,
        "tostring(vonage.build_send(vncfg(), {msg(1, {id = string.rep('a', 41)})}).body:find('client-ref', 1, true))",
        "nil");
    CHECK_LUA(L, "tostring(vonage.build_send(vncfg(), {msg(1, {id = ''})}).body:find('client-ref', 1, true))", "nil");
    /* The receipts of a two-part message: each part's own messageId, the
     * same client-ref, passed up as message_id for the core to match. */
    CHECK_LUA(L,
              "updates_of(vonage, vncfg(), hook('https://sms.example.com/hooks/vn/status', "
              "'msisdn=84912340001&to=Brand&messageId=0A00000012345671&status=delivered&err-code=0"
              "&client-ref=01K00000000000000000000001'))",
              "[{\"message_id\":\"01K00000000000000000000001\",\"provider_id\":\"0A00000012345671\","
              "\"raw_status\":\"delivered\",\"status\":\"delivered\"}]");
    CHECK_LUA(L,
              "updates_of(vonage, vncfg(), hook('https://sms.example.com/hooks/vn/status', "
              "'{\"msisdn\": \"84912340001\", \"messageId\": \"0A00000012345672\", \"status\": \"delivered\", "
              "\"client-ref\": \"01K00000000000000000000001\"}', {['content-type'] = 'application/json'}))",
              "[{\"message_id\":\"01K00000000000000000000001\",\"provider_id\":\"0A00000012345672\","
              "\"raw_status\":\"delivered\",\"status\":\"delivered\"}]");
    /* A receipt without client-ref (or an empty one): no message_id. */
    CHECK_LUA(L,
              "updates_of(vonage, vncfg(), hook('https://sms.example.com/hooks/vn/status', "
              "'messageId=0A01&status=delivered&client-ref='))",
              "[{\"provider_id\":\"0A01\",\"raw_status\":\"delivered\",\"status\":\"delivered\"}]");
    lua_close(L);
}

TEST(vonage_inbound) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "inbound_of(vonage, vncfg(), hook('https://sms.example.com/hooks/vn/inbound', "
              "'msisdn=447700900001&to=447700900000&messageId=0A0000000123ABCD1&text=Hello+world&type=text"
              "&keyword=HELLO&message-timestamp=2020-01-01+12%3A00%3A00'))",
              "[{\"at\":1577880000,\"from\":\"447700900001\",\"provider_message_id\":\"0A0000000123ABCD1\","
              "\"text\":\"Hello world\",\"to\":\"447700900000\"}] " EMPTY_ANSWER);
    /* One part of a long message: the parts are passed on. */
    CHECK_LUA(
        L,
        "canon((vonage.parse_inbound(vncfg(), hook('https://sms.example.com/hooks/vn/inbound', "
        "'{\"msisdn\": \"447700900001\", \"to\": \"447700900000\", \"messageId\": \"0A02\", \"text\": \"part two\", "
        "\"type\": \"text\", \"concat\": \"true\", \"concat-ref\": \"108\", \"concat-total\": \"2\", \"concat-part\": "
        "\"2\"}', "
        "{['content-type'] = 'application/json'}))))",
        "[{\"concat_ref\":\"108\",\"from\":\"447700900001\",\"part\":2,\"parts\":2,\"provider_message_id\":\"0A02\","
        "\"text\":\"part two\",\"to\":\"447700900000\"}]");
    CHECK_LUA(L, "raises(vonage.parse_inbound, vncfg(), hook('https://x/hooks/vn/inbound', 'text=hi'))",
              "vonage inbound message: needs msisdn and to");
    lua_close(L);
}

/* Vonage signatures: the Python SDK's vector (a=1, b=2, timestamp, secret
 * "secret" → md5hash 6af838ef...), and HMACs of the same text computed with
 * Python's hmac module. */
#define VN_SIMPLE(sig) "'a=1&b=2&timestamp=1461605396&sig=" sig "'"

TEST(vonage_signature_valid) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "NOW = 1461605396 + 60\n"
              "return verdict(vonage, vncfg{signature_secret = 'secret'}, hook('https://x/hooks/vn/status', " VN_SIMPLE(
                  "6af838ef94998832dbfc29020b564830") "))",
              "true");
    CHECK_LUA(L,
              "NOW = 1461605396 - 60\n"
              "return verdict(vonage, vncfg{signature_secret = 'secret', signature_method = 'sha256'}, "
              "hook('https://x/hooks/vn/status', " VN_SIMPLE(
                  "A321E824B9B816BE7C3F28859A31749A098713D39F613C80D455BBAFFAE1CD24") "))",
              "true");
    CHECK_LUA(L,
              "NOW = 1461605396\n"
              "return verdict(vonage, vncfg{signature_secret = 'secret', signature_method = 'sha1'}, "
              "hook('https://x/hooks/vn/status', " VN_SIMPLE("3E19A4E6880FDC2C1426BFD0587C98B9532F0210") "))",
              "true");
    CHECK_LUA(L,
              "NOW = 1461605396\n"
              "return verdict(vonage, vncfg{signature_secret = 'secret', signature_method = 'md5'}, "
              "hook('https://x/hooks/vn/status', " VN_SIMPLE("C15C21CED558C93A226C305F58F902F2") "))",
              "true");
    CHECK_LUA(L,
              "NOW = 1461605396\n"
              "return verdict(vonage, vncfg{signature_secret = 'secret', signature_method = 'sha512'}, "
              "hook('https://x/hooks/vn/status', " VN_SIMPLE(
                  "812A18F76680FA0FE1B8BD9EE1625466CEB1BD96242E4D050D2CFD9A7B40166C"
                  "63ED26EC9702168781B6EDCF1633DB8FF95AF9341701004EEC3FCF9550572EE8") "))",
              "true");
    /* HMAC-MD5 with a key longer than the block (hashed first). */
    CHECK_LUA(L,
              "NOW = 1461605396\n"
              "return verdict(vonage, vncfg{signature_secret = string.rep('k', 80), signature_method = 'MD5'}, "
              "hook('https://x/hooks/vn/status', " VN_SIMPLE("81a58a67b6b3659af2c90ab2cf851136") "))",
              "true");
    /* A signed delivery receipt: '&' and '=' in a value become '_'. */
    CHECK_LUA(L,
              "NOW = 1700000000\n"
              "return verdict(vonage, vncfg{signature_secret = 's3cr3t'}, hook('https://x/hooks/vn/status', "
              "'msisdn=447700900000&to=AcmeInc&network-code=23410&messageId=0A0000001234567B&price=0.03330000"
              "&status=delivered&scts=2001011400&err-code=0&client-ref=01K00000000000000000000001"
              "&message-timestamp=2020-01-01+12%3A00%3A00&timestamp=1700000000&nonce=n%3D1%26x"
              "&sig=499c0c9edd79643ffe8cd684a2b8d45e'))",
              "true");
    CHECK_LUA(L,
              "verdict(vonage, vncfg{signature_secret = 's3cr3t', signature_method = 'sha256'}, "
              "hook('https://x/hooks/vn/status', '{\"msisdn\": \"447700900000\", \"to\": \"AcmeInc\", "
              "\"network-code\": \"23410\", \"messageId\": \"0A0000001234567B\", \"price\": \"0.03330000\", "
              "\"status\": \"delivered\", \"scts\": \"2001011400\", \"err-code\": \"0\", "
              "\"client-ref\": \"01K00000000000000000000001\", \"message-timestamp\": \"2020-01-01 12:00:00\", "
              "\"timestamp\": 1700000000, \"nonce\": \"n=1&x\", "
              "\"sig\": \"1F31EF97522634101BF320CE1AFE98084915BF50B1B612D61C56CE73F4082F5E\"}', "
              "{['content-type'] = 'application/json'}))",
              "true");
    /* An empty parameter: signed with it left out (Java SDK) or kept (Python SDK). */
    CHECK_LUA(L,
              "verdict(vonage, vncfg{signature_secret = 's3cr3t'}, hook('https://x/hooks/vn/inbound', "
              "'msisdn=447700900001&to=447700900000&messageId=0A0000000123ABCD1&text=Hello+world&type=text&keyword="
              "&message-timestamp=2020-01-01+12%3A00%3A00&timestamp=1700000000&nonce=abc"
              "&sig=c341d648bec810efc4819541aec7d7b2'))",
              "true");
    CHECK_LUA(L,
              "verdict(vonage, vncfg{signature_secret = 's3cr3t'}, hook('https://x/hooks/vn/inbound', "
              "'msisdn=447700900001&to=447700900000&messageId=0A0000000123ABCD1&text=Hello+world&type=text&keyword="
              "&message-timestamp=2020-01-01+12%3A00%3A00&timestamp=1700000000&nonce=abc"
              "&sig=7cc299a749f47b8dafb7a8ef2b858390'))",
              "true");
    /* No signature_secret: nothing to check. */
    CHECK_LUA(L, "verdict(vonage, vncfg(), hook('https://x/hooks/vn/status', 'messageId=1&status=delivered'))", "true");
    lua_close(L);
}

TEST(vonage_signature_invalid) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "NOW = 1461605396\n"
              "return verdict(vonage, vncfg{signature_secret = 'secret'}, hook('https://x/hooks/vn/status', "
              "'a=1&b=3&timestamp=1461605396&sig=6af838ef94998832dbfc29020b564830'))",
              "false: sig does not match");
    CHECK_LUA(L,
              "NOW = 1461605396\n"
              "return verdict(vonage, vncfg{signature_secret = 'other'}, hook('https://x/hooks/vn/status', " VN_SIMPLE(
                  "6af838ef94998832dbfc29020b564830") "))",
              "false: sig does not match");
    /* The right signature under another method: refused by its length, before any hashing. */
    CHECK_LUA(L,
              "NOW = 1461605396\n"
              "return verdict(vonage, vncfg{signature_secret = 'secret', signature_method = 'sha256'}, "
              "hook('https://x/hooks/vn/status', " VN_SIMPLE("6af838ef94998832dbfc29020b564830") "))",
              "false: sig is not 64 hex digits");
    CHECK_LUA(L,
              "NOW = 1461605396\n"
              "return verdict(vonage, vncfg{signature_secret = 'secret', signature_method = 'md5'}, "
              "hook('https://x/hooks/vn/status', " VN_SIMPLE("6af838ef94998832dbfc29020b56483") "))",
              "false: sig is not 32 hex digits");
    /* An added parameter. */
    CHECK_LUA(L,
              "NOW = 1461605396\n"
              "return verdict(vonage, vncfg{signature_secret = 'secret'}, hook('https://x/hooks/vn/status', " VN_SIMPLE(
                  "6af838ef94998832dbfc29020b564830") " .. '&c=1'))",
              "false: sig does not match");
    /* Replayed more than 5 minutes later, or from the future. */
    CHECK_LUA(L,
              "NOW = 1461605396 + 301\n"
              "return verdict(vonage, vncfg{signature_secret = 'secret'}, hook('https://x/hooks/vn/status', " VN_SIMPLE(
                  "6af838ef94998832dbfc29020b564830") "))",
              "false: timestamp more than 5 minutes from now");
    CHECK_LUA(L,
              "NOW = 1461605396 - 301\n"
              "return verdict(vonage, vncfg{signature_secret = 'secret'}, hook('https://x/hooks/vn/status', " VN_SIMPLE(
                  "6af838ef94998832dbfc29020b564830") "))",
              "false: timestamp more than 5 minutes from now");
    CHECK_LUA(L, "verdict(vonage, vncfg{signature_secret = 'secret'}, hook('https://x/hooks/vn/status', 'a=1&b=2'))",
              "false: missing sig");
    CHECK_LUA(L,
              "verdict(vonage, vncfg{signature_secret = 'secret'}, hook('https://x/hooks/vn/status', "
              "'a=1&b=2&sig=6af838ef94998832dbfc29020b564830'))",
              "false: missing timestamp");
    /* A JSON object of more keys than any webhook has (util.MAX_FIELDS): refused before anything is sorted. */
    CHECK_LUA(L,
              "local keys = {} for i = 1, 300 do keys[i] = '\"k' .. i .. '\":1' end\n"
              "local body = '{' .. table.concat(keys, ',') .. '}'\n"
              "return verdict(vonage, vncfg{signature_secret = 'secret'}, hook('https://x/hooks/vn/status', body, "
              "{['content-type'] = 'application/json'})) .. ' / ' .. raises(vonage.parse_status, vncfg(), "
              "hook('https://x/hooks/vn/status', body, {['content-type'] = 'application/json'}))",
              "false: webhook has more than 256 parameters / vonage webhook: webhook has more than 256 parameters");
    CHECK_LUA(L,
              "raises(vonage.verify, vncfg{signature_secret = 'secret', signature_method = 'sha384'}, "
              "hook('https://x/hooks/vn/status', " VN_SIMPLE("00") "))",
              "provider vn (vonage): signature_method must be md5hash, md5, sha1, sha256 or sha512");
    lua_close(L);
}

/* ---- all three ---- */

TEST(global_one_outcome_per_message_always) {
    /* Every status from 100 to 599 and odd ones, against bodies of every
     * kind: one outcome, of one of the four shapes. */
    lua_State *L = adapters_state();
    CHECK_LUA(
        L,
        "local bodies = {'', 'x', '{}', 'null', '[]', '{\"sid\":\"SM1\"}', '{\"sid\":7}', '{\"code\":\"x\"}',\n"
        "  '{\"code\":21211,\"message\":{}}', '{\"id\":1,\"cnt\":\"x\"}', '{\"error_code\":null}', '{\"error\":[1]}',\n"
        "  '{\"messages\":{}}', '{\"messages\":[null,{\"status\":{}}]}', '{\"messages\":[{\"status\":\"0\"}]}',\n"
        "  '{\"messages\":[{\"status\":\"0\",\"message-id\":\"a\"},{\"status\":\"4\"}]}', "
        "'{\"id\":3482512350952730368}'}\n"
        "local statuses = {0, -1, 600, 1.5}\n"
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
        "for _, a in ipairs({{smsc, sccfg()}, {twilio, twcfg()}, {vonage, vncfg()}}) do\n"
        "  for _, s in ipairs(statuses) do\n"
        "    for _, b in ipairs(bodies) do\n"
        "      local out = a[1].parse_send(a[2], {msg(1)}, {status = s, body = b, headers = {['retry-after'] = '1'}})\n"
        "      if #out ~= 1 or not shape(out[1]) then\n"
        "        error(string.format('%s: bad outcome %s for status %s body %s', a[1].name, canon(out), s, b))\n"
        "      end\n"
        "      checked = checked + 1\n"
        "    end\n"
        "  end\n"
        "end\n"
        "return checked",
        "25704");
    lua_close(L);
}
