/* Unit tests for the regional provider adapters in lua/adapters/ — smsbat,
 * devino, agiletelecom — and the helpers they added to adapters/util. Every
 * fixture is a payload docs/providers.md (SMSBat, Devino, Agile Telecom)
 * documents, or a documented value put into the documented shape.
 *
 * Each test builds its state with lua_fixture (cjson and the embedded
 * adapters.* modules preloaded, as the daemon loads them, the shared helpers
 * of lua_fixture.h, plus the ones below) and compares what Lua expressions
 * return with the expected text: requests as "METHOD url", sorted headers
 * and the body's JSON with sorted keys; outcomes, status updates, inbound
 * messages and webhook answers as JSON with sorted keys, so every field is
 * visible. os.time() is pinned to NOW, so HTTP-date Retry-After values are
 * exact. None of these providers signs its webhooks: no sms.crypto is needed. */
#include "lua_fixture.h"

static const char prelude[] =
    /* The provider options as sms.provider would pass them: no url, so the
     * adapter's documented default applies. */
    "function rcfg(adapter, over)\n"
    "  return merge({name = 'primary', adapter = adapter, api_key = 'k', sender = 'Brand'}, over)\n"
    "end\n"
    /* Outcomes of an answer to n messages (or the list n) as JSON. */
    "function answer(adapter, n, status, body, headers, c)\n"
    "  return canon(outcomes(adapter, c or rcfg(adapter.name), n, status, body, headers))\n"
    "end\n"
    /* A webhook request as the core hands it over. */
    "function hook(body, over)\n"
    "  return merge({method = 'POST', url = 'https://public.example.com/hooks/primary/status',\n"
    "                path = '/hooks/primary/status', query = '',\n"
    "                headers = {['content-type'] = 'application/json'}, body = body}, over)\n"
    "end\n"
    "function show_answer(a)\n"
    "  return a.status .. ' ' .. canon(a.headers or {}) .. ' ' .. string.format('%q', a.body)\n"
    "end\n"
    "function status(adapter, body, c) return canon((adapter.parse_status(c or rcfg(adapter.name), hook(body)))) end\n"
    "function status_answer(adapter, body, c)\n"
    "  local _, a = adapter.parse_status(c or rcfg(adapter.name), hook(body))\n"
    "  return show_answer(a)\n"
    "end\n"
    "function inbound(adapter, req, c) return canon((adapter.parse_inbound(c or rcfg(adapter.name), req))) end\n"
    "function inbound_answer(adapter, req, c)\n"
    "  local _, a = adapter.parse_inbound(c or rcfg(adapter.name), req)\n"
    "  return show_answer(a)\n"
    "end\n"
    /* Updates of a poll answer, then the reason when there is one. */
    "function poll(adapter, ids, st, body, c)\n"
    "  local u, err = adapter.parse_poll(c or rcfg(adapter.name), ids, {status = st, body = body, headers = {}})\n"
    "  return canon(u) .. (err and (' ' .. err) or '')\n"
    "end\n";

/* A fresh state with the globals smsbat, devino, agiletelecom and util.
 * Close with lua_close. */
static lua_State *adapters_state(void) {
    static const char *const adapters[] = {"smsbat", "devino", "agiletelecom", NULL};
    return fixture_adapters_state(
        &(struct fixture_options){.adapters = adapters, .prelude = prelude, .canon_digits = 14});
}

/* Webhook answers as show_answer gives them. */
#define ANSWER_200 "200 {\"Content-Type\":\"text/plain\"} \"\""
#define ANSWER_OK "200 {\"Content-Type\":\"text/plain\"} \"+OK\""

/* ---- loading ---- */

TEST(regional_adapters_load_as_the_daemon_loads_them) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "math.type(smsbat.batch_size) .. ' ' .. smsbat.batch_size .. ' ' .. smsbat.poll_batch",
              "integer 100 1");
    CHECK_LUA(L, "math.type(devino.batch_size) .. ' ' .. devino.batch_size .. ' ' .. devino.poll_batch",
              "integer 100 500");
    CHECK_LUA(L,
              "math.type(agiletelecom.batch_size) .. ' ' .. agiletelecom.batch_size .. ' ' .. "
              "tostring(agiletelecom.poll_batch)",
              "integer 100 nil");
    /* The options each one takes beyond the common ones. */
    CHECK_LUA(L, "table.concat(smsbat.options, ' ')", "user password auth");
    CHECK_LUA(L, "table.concat(devino.options, ' ')",
              "callback_url shorten_url priority_words utc_offset poll_id_strings");
    CHECK_LUA(L, "table.concat(agiletelecom.options, ' ')", "user password simulation utc_offset");
    /* What each one implements: polling only where the provider has it. */
    CHECK_LUA(L,
              "local t = {}\n"
              "for _, a in ipairs({smsbat, devino, agiletelecom}) do\n"
              "  local f = {}\n"
              "  for _, n in ipairs({'build_send', 'parse_send', 'parse_status', 'parse_inbound', 'build_poll',\n"
              "                      'parse_poll', 'verify'}) do\n"
              "    if type(a[n]) == 'function' then f[#f + 1] = n end\n"
              "  end\n"
              "  t[#t + 1] = a.name .. ': ' .. table.concat(f, ' ')\n"
              "end\n"
              "return table.concat(t, '\\n')",
              "smsbat: build_send parse_send parse_status build_poll parse_poll\n"
              "devino: build_send parse_send parse_status parse_inbound build_poll parse_poll\n"
              "agiletelecom: build_send parse_send parse_status parse_inbound");
    CHECK_LUA(L, "require('adapters.devino').poll_batch", "500");
    lua_close(L);
}

TEST(regional_adapters_use_no_io_or_os_beyond_time) {
    /* The rules sandbox has no io and an os with only the clock functions. */
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "io = nil; package.loaded.io = nil\n"
              "os = {time = os.time, clock = os.clock, date = os.date, difftime = os.difftime}\n"
              "package.loaded['adapters.util'] = nil\n"
              "local out = {}\n"
              "for _, name in ipairs({'smsbat', 'devino', 'agiletelecom'}) do\n"
              "  package.loaded['adapters.' .. name] = nil\n"
              "  local a = require('adapters.' .. name)\n"
              "  a.build_send(rcfg(name), msgs(2))\n"
              "  out[#out + 1] = answer(a, 1, 429, '', {['retry-after'] = 'Tue, 14 Nov 2023 22:13:25 GMT'})\n"
              "end\n"
              "return table.concat(out, ' ')",
              "[" RETRY_AFTER("HTTP 429", 5) "] [" RETRY_AFTER("HTTP 429", 5) "] [" RETRY_AFTER("HTTP 429", 5) "]");
    lua_close(L);
}

/* ---- util: the helpers the regional adapters added ---- */

TEST(util_base64_and_basic_auth) {
    lua_State *L = adapters_state();
    /* RFC 4648 §10 test vectors. */
    CHECK_LUA(
        L,
        "local t = {}\n"
        "for _, s in ipairs({'', 'f', 'fo', 'foo', 'foob', 'fooba', 'foobar'}) do t[#t + 1] = util.base64(s) end\n"
        "return table.concat(t, ' ')",
        " Zg== Zm8= Zm9v Zm9vYg== Zm9vYmE= Zm9vYmFy");
    CHECK_LUA(L, "util.base64('\\0\\255\\254\\1')", "AP/+AQ==");
    CHECK_LUA(L, "util.basic_auth('user', 'pass')", "Basic dXNlcjpwYXNz");
    /* The password may hold colons; only the user may not (RFC 7617). */
    CHECK_LUA(L, "util.basic_auth('shop', 's3cr:et')", "Basic c2hvcDpzM2NyOmV0");
    lua_close(L);
}

TEST(util_time_parsing) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "util.parse_time('2025-01-23T10:30:00Z')", "1737628200");
    /* The exact UTC form (read by its bytes) gives what the long way gives; its Z wins over an offset. */
    CHECK_LUA(L, "util.parse_time('2025-01-23t10:30:00z', 3600)", "1737628200");
    CHECK_LUA(L, "util.parse_time('2025-01-23 10:30:00Z')", "1737628200");
    CHECK_LUA(L, "util.parse_time('1999-12-31T23:59:60Z')", "946684800");
    CHECK_LUA(L, "tostring(util.parse_time('2025-01-23T24:30:00Z'))", "nil");
    CHECK_LUA(L, "tostring(util.parse_time('2025-01-32T10:30:00Z'))", "nil");
    CHECK_LUA(L, "tostring(util.parse_time('2025-00-23T10:30:00Z'))", "nil");
    CHECK_LUA(L, "tostring(util.parse_time('2025-01-23T10:3a:00Z'))", "nil");
    CHECK_LUA(L, "util.parse_time('2025-01-23T10:30:00.250Z')", "1737628200");
    CHECK_LUA(L, "util.parse_time('2025-01-23T12:30:00+02:00')", "1737628200");
    CHECK_LUA(L, "util.parse_time('2025-01-23T05:30:00-0500')", "1737628200");
    CHECK_LUA(L, "util.parse_time('2025-12-08 06:00:00.002+0200')", "1765166400");
    /* Without a zone: at the offset given (seconds east of UTC), else UTC. */
    CHECK_LUA(L, "util.parse_time('2020-11-11 11:20:35')", "1605093635");
    CHECK_LUA(L, "util.parse_time('2020-11-11 11:20:35', 3 * 3600)", "1605082835");
    CHECK_LUA(L, "util.parse_time('20150525154559')", "1432568759");
    CHECK_LUA(L, "util.parse_time('20150525154559', 3600)", "1432565159");
    /* Not a time. */
    CHECK_LUA(L, "tostring(util.parse_time('2025-13-01T00:00:00Z'))", "nil");
    CHECK_LUA(L, "tostring(util.parse_time('2025-01-23T10:30:00 Moscow'))", "nil");
    CHECK_LUA(L, "tostring(util.parse_time('yesterday'))", "nil");
    CHECK_LUA(L, "tostring(util.parse_time(1737628200))", "nil");
    /* Milliseconds since the epoch, as a number or as digits. */
    CHECK_LUA(L, "util.epoch_ms(1613404835977) .. ' ' .. util.epoch_ms('1587721283000')", "1613404835 1587721283");
    CHECK_LUA(L, "tostring(util.epoch_ms('soon')) .. ' ' .. tostring(util.epoch_ms(-1))", "nil nil");
    /* The utc_offset option. */
    CHECK_LUA(
        L,
        "util.utc_offset('devino', {utc_offset = '+03:00'}) .. ' ' .. util.utc_offset('devino', {utc_offset = '-0530'})"
        " .. ' ' .. util.utc_offset('devino', {utc_offset = 'Z'}) .. ' ' .. util.utc_offset('devino', {})",
        "10800 -19800 0 0");
    CHECK_LUA(L, "raises(util.utc_offset, 'devino', {name = 'ru', utc_offset = 'MSK'})",
              "provider ru (devino): utc_offset must look like \"+03:00\", \"-0500\" or \"Z\"");
    CHECK_LUA(L, "raises(util.utc_offset, 'devino', {name = 'ru', utc_offset = 3})",
              "provider ru (devino): utc_offset must look like \"+03:00\", \"-0500\" or \"Z\"");
    lua_close(L);
}

TEST(util_forms_and_urls) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "canon(util.form_decode('originator=%2B393301234567&text=News+ON%21&empty=&text=second&flag'))",
              "{\"empty\":\"\",\"flag\":\"\",\"originator\":\"+393301234567\",\"text\":\"News ON!\"}");
    CHECK_LUA(L, "canon(util.form_decode(nil))", "{}");
    CHECK_LUA(L, "util.url_escape('abc-1_2.3~')", "abc-1_2.3~");
    CHECK_LUA(L, "util.url_escape('a/b?c=d e%')", "a%2Fb%3Fc%3Dd%20e%25");
    CHECK_LUA(L,
              "util.base_url('x', {}, 'https://a.example/') .. ' ' .. util.base_url('x', {url = 'http://b.example//'}, "
              "'https://a')",
              "https://a.example http://b.example");
    CHECK_LUA(L, "raises(util.base_url, 'x', {name = 'p', url = 'b.example'}, 'https://a')",
              "provider p (x): url must be an http(s) URL");
    CHECK_LUA(L, "raises(util.check_ids, 'x', 2, {'a', 'b', 'c'})", "x adapter: expected 1 to 2 ids to poll");
    CHECK_LUA(L, "raises(util.check_ids, 'x', 2, {})", "x adapter: expected 1 to 2 ids to poll");
    CHECK_LUA(L, "raises(util.check_ids, 'x', 2, {'a', 7})", "x adapter: id 2 to poll must be a non-empty string");
    lua_close(L);
}

/* ---- SMSBat: the request ---- */

TEST(smsbat_request_documented_shape) {
    lua_State *L = adapters_state();
    /* The default base URL, the documented path, X-Authorization-Key; our
     * id as customerMessageId, the validity as ttl, "to" with its '+'. */
    CHECK_LUA(L, "request(smsbat, rcfg('smsbat'), {msg(1), msg(2, {from = 'Shop', validity = NONE})})",
              "POST https://restapi.smsbat.com/bat/messagelist\n"
              "Accept: application/json\n"
              "Content-Type: application/json\n"
              "X-Authorization-Key: k\n"
              "{\"messages\":["
              "{\"customerMessageId\":\"" ID1 "\",\"from\":\"Brand\",\"text\":\"Hello 1\",\"to\":\"+84912340001\","
              "\"ttl\":3600,\"type\":\"sms\"},"
              "{\"customerMessageId\":\"" ID2 "\",\"from\":\"Shop\",\"text\":\"Hello 2\",\"to\":\"+84912340002\","
              "\"type\":\"sms\"}]}");
    /* A regional base URL: the documented path is appended to it. */
    CHECK_LUA(L, "smsbat.build_send(rcfg('smsbat', {url = 'https://restapi.smsbat.example.ua/'}), {msg(1)}).url",
              "https://restapi.smsbat.example.ua/bat/messagelist");
    CHECK_LUA(L, "smsbat.build_send(rcfg('smsbat', {url = 'http://127.0.0.1:9090/api'}), {msg(1)}).url",
              "http://127.0.0.1:9090/api/bat/messagelist");
    /* Text passes byte for byte. */
    CHECK_LUA(L,
              "require('cjson').decode(smsbat.build_send(rcfg('smsbat'), "
              "{msg(1, {text = 'Привіт \"друже\"\\n😀', encoding = 'ucs2'})}).body).messages[1].text",
              "Привіт \"друже\"\n😀");
    /* 100 messages in one request, not 101. */
    CHECK_LUA(L, "#require('cjson').decode(smsbat.build_send(rcfg('smsbat'), msgs(100)).body).messages", "100");
    CHECK_LUA(L, "raises(smsbat.build_send, rcfg('smsbat'), msgs(101))", "smsbat adapter: expected 1 to 100 messages");
    CHECK_LUA(L, "raises(smsbat.build_send, rcfg('smsbat', {url = 'restapi.smsbat.com'}), msgs(1))",
              "provider primary (smsbat): url must be an http(s) URL");
    lua_close(L);
}

TEST(smsbat_auth_variants) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "canon(smsbat.build_send(rcfg('smsbat'), {msg(1)}).headers)",
              "{\"Accept\":\"application/json\",\"Content-Type\":\"application/json\",\"X-Authorization-Key\":\"k\"}");
    /* HTTP Basic user:password. */
    CHECK_LUA(L,
              "canon(smsbat.build_send(rcfg('smsbat', {api_key = NONE, user = 'user', password = 'pass'}), "
              "{msg(1)}).headers)",
              "{\"Accept\":\"application/json\",\"Authorization\":\"Basic "
              "dXNlcjpwYXNz\",\"Content-Type\":\"application/json\"}");
    /* HTTP Basic with "@" as the user and the key as the password. */
    CHECK_LUA(
        L, "canon(smsbat.build_send(rcfg('smsbat', {api_key = 'tok', auth = 'basic'}), {msg(1)}).headers)",
        "{\"Accept\":\"application/json\",\"Authorization\":\"Basic QDp0b2s=\",\"Content-Type\":\"application/json\"}");
    CHECK_LUA(L, "smsbat.build_send(rcfg('smsbat', {auth = 'header'}), {msg(1)}).headers['X-Authorization-Key']", "k");
    /* Credentials never go into the URL or the body. */
    CHECK_LUA(L,
              "local r = smsbat.build_send(rcfg('smsbat', {api_key = 's3cret'}), {msg(1)})\n"
              "return tostring(r.url:find('s3cret', 1, true)) .. ' ' .. tostring(r.body:find('s3cret', 1, true))",
              "nil nil");
    /* Misconfiguration raises (the core fails the send, next provider). */
    CHECK_LUA(L, "raises(smsbat.build_send, rcfg('smsbat', {api_key = NONE}), {msg(1)})",
              "provider primary (smsbat): needs api_key or user + password");
    CHECK_LUA(L, "raises(smsbat.build_send, rcfg('smsbat', {api_key = NONE, user = 'user'}), {msg(1)})",
              "provider primary (smsbat): user and password go together");
    CHECK_LUA(L, "raises(smsbat.build_send, rcfg('smsbat', {user = 'user', password = 'pass'}), {msg(1)})",
              "provider primary (smsbat): give api_key or user + password, not both");
    CHECK_LUA(L,
              "raises(smsbat.build_send, rcfg('smsbat', {api_key = NONE, user = 'a:b', password = 'pass'}), {msg(1)})",
              "provider primary (smsbat): user must not contain ':'");
    CHECK_LUA(L, "raises(smsbat.build_send, rcfg('smsbat', {auth = 'bearer'}), {msg(1)})",
              "provider primary (smsbat): auth must be \"header\" or \"basic\"");
    lua_close(L);
}

/* ---- SMSBat: answers ---- */

TEST(smsbat_documented_answer) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "answer(smsbat, 1, 200, "
              "'{\"messagelistId\":123456,\"messages\":[{\"messageId\":\"abc123\",\"status\":\"accepted\","
              "\"parts\":1,\"customerMessageId\":\"" ID1 "\",\"to\":\"+84912340001\"}]}')",
              "[" OK_ID("abc123") "]");
    /* accepted, rejected and failed in one batch: each to its message. */
    CHECK_LUA(L,
              "answer(smsbat, 3, 200, [[{\"messagelistId\":123456,\"messages\":["
              "{\"messageId\":\"abc123\",\"status\":\"accepted\",\"parts\":1,\"customerMessageId\":\"" ID1 "\"},"
              "{\"messageId\":\"abc124\",\"status\":\"rejected\",\"parts\":1,\"customerMessageId\":\"" ID2 "\"},"
              "{\"status\":\"failed\",\"customerMessageId\":\"" ID3 "\",\"message\":\"route unavailable\"}]}]])",
              "[" OK_ID("abc123") "," FAILED("message", "rejected") "," RETRY("failed: route unavailable") "]");
    lua_close(L);
}

TEST(smsbat_results_are_matched_by_customer_message_id) {
    lua_State *L = adapters_state();
    /* Out of order. */
    CHECK_LUA(L,
              "answer(smsbat, 2, 200, [[{\"messages\":["
              "{\"messageId\":\"b\",\"status\":\"accepted\",\"customerMessageId\":\"" ID2 "\"},"
              "{\"messageId\":\"a\",\"status\":\"accepted\",\"customerMessageId\":\"" ID1 "\"}]}]])",
              "[" OK_ID("a") "," OK_ID("b") "]");
    /* An entry for another message is never credited; one missing is retried. */
    CHECK_LUA(L,
              "answer(smsbat, 3, 200, [[{\"messages\":["
              "{\"messageId\":\"x\",\"status\":\"accepted\",\"customerMessageId\":\"01K00000000000000000000009\"},"
              "{\"messageId\":\"b\",\"status\":\"accepted\",\"customerMessageId\":\"" ID2 "\"}]}]])",
              "[" NO_ID "," OK_ID("b") "," NO_ID "]");
    /* Entries without the echo are taken in order; numeric ids exactly. */
    CHECK_LUA(L,
              "answer(smsbat, 2, 200, '{\"messages\":[{\"messageId\":3482512350952730368,\"status\":\"accepted\"},"
              "{\"messageId\":42}]}')",
              "[" OK_ID("3482512350952730368") "," OK_ID("42") "]");
    /* 2xx without usable entries: nothing is known, retried. */
    CHECK_LUA(L, "answer(smsbat, 2, 200, '{\"messagelistId\":1}')", "[" NO_ID "," NO_ID "]");
    CHECK_LUA(L, "answer(smsbat, 1, 200, 'OK')", "[" NO_ID "]");
    CHECK_LUA(L, "answer(smsbat, 1, 200, '{\"messages\":[{\"status\":\"accepted\"}]}')", "[" NO_ID "]");
    /* A status word SMSBat does not document: not clearly taken, retried. */
    CHECK_LUA(L, "answer(smsbat, 1, 200, '{\"messages\":[{\"messageId\":\"a\",\"status\":\"queued_later\"}]}')",
              "[" RETRY("queued_later") "]");
    lua_close(L);
}

TEST(smsbat_http_errors) {
    lua_State *L = adapters_state();
    /* SMSBat's documented error body: its message, then its internal code. */
    CHECK_LUA(L,
              "answer(smsbat, 2, 400, '{\"status\":400,\"error\":\"Bad Request\","
              "\"message\":\"Missing required field: \\'messages\\'\",\"code\":1001}')",
              "[" FAILED("message", "HTTP 400: Missing required field: 'messages' (code 1001)") "," FAILED(
                  "message", "HTTP 400: Missing required field: 'messages' (code 1001)") "]");
    CHECK_LUA(L,
              "answer(smsbat, 1, 422, '{\"status\":422,\"error\":\"Unprocessable Entity\","
              "\"message\":\"Invalid phone number\",\"code\":1003}')",
              "[" FAILED("message", "HTTP 422: Invalid phone number (code 1003)") "]");
    CHECK_LUA(L, "answer(smsbat, 1, 401, '{\"status\":401,\"error\":\"Unauthorized\"}')",
              "[" FAILED("provider", "HTTP 401: Unauthorized") "]");
    CHECK_LUA(L, "answer(smsbat, 1, 403, '{\"status\":403,\"error\":\"Forbidden\",\"message\":\"Account suspended\"}')",
              "[" FAILED("provider", "HTTP 403: Account suspended") "]");
    /* A wrong regional url or request shape: not the messages' fault. */
    CHECK_LUA(L, "answer(smsbat, 1, 404, '')", "[" FAILED("provider", "HTTP 404") "]");
    CHECK_LUA(L, "answer(smsbat, 1, 415, '')", "[" FAILED("provider", "HTTP 415") "]");
    CHECK_LUA(L, "answer(smsbat, 2, 429, '{\"status\":429,\"error\":\"Too Many Requests\"}', {['retry-after'] = '3'})",
              "[" RETRY_AFTER("HTTP 429: Too Many Requests", 3) "," RETRY_AFTER("HTTP 429: Too Many Requests", 3) "]");
    CHECK_LUA(L, "answer(smsbat, 1, 500, '')", "[" RETRY("HTTP 500") "]");
    CHECK_LUA(L, "answer(smsbat, 1, 503, '<html>down</html>')", "[" RETRY("HTTP 503") "]");
    lua_close(L);
}

/* ---- SMSBat: status push and polling ---- */

TEST(smsbat_status_push) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "status(smsbat, '{\"messageId\":\"abc123def456\",\"deliverystatus\":\"delivered\","
              "\"timestamp\":\"2025-01-23T10:30:00Z\",\"cost\":0.05}')",
              "[{\"at\":1737628200,\"cost\":0.05,\"provider_id\":\"abc123def456\",\"raw_status\":\"delivered\","
              "\"status\":\"delivered\"}]");
    CHECK_LUA(L, "status_answer(smsbat, '{\"messageId\":\"abc123def456\",\"deliverystatus\":\"delivered\"}')",
              ANSWER_200);
    /* Every documented status value, and one that is not. */
    CHECK_LUA(L,
              "local t = {}\n"
              "for _, s in ipairs({'scheduled', 'processing', 'delivered', 'undeliverable', 'permanenterror', "
              "'not_used'}) do\n"
              "  local u = smsbat.parse_status(rcfg('smsbat'), hook('{\"messageId\":\"m\",\"deliverystatus\":\"' .. s "
              ".. '\"}'))[1]\n"
              "  t[#t + 1] = s .. '=' .. u.status .. (u.error and ('(' .. u.error .. ')') or '')\n"
              "end\n"
              "return table.concat(t, ' ')",
              "scheduled=accepted processing=sent delivered=delivered undeliverable=undelivered(undeliverable) "
              "permanenterror=undelivered(permanenterror) not_used=unknown");
    /* Several reports in one array; a big numeric id exactly; entries without
     * an id or a status are left out. */
    CHECK_LUA(L,
              "status(smsbat, '[{\"messageId\":3482512350952730368,\"deliverystatus\":\"processing\"},"
              "{\"deliverystatus\":\"delivered\"},{\"messageId\":\"x\"}]')",
              "[{\"provider_id\":\"3482512350952730368\",\"raw_status\":\"processing\",\"status\":\"sent\"}]");
    CHECK_LUA(L, "raises(smsbat.parse_status, rcfg('smsbat'), hook('messageId=abc'))",
              "smsbat status: body is not a JSON object: Expected value but found invalid token at character 1");
    lua_close(L);
}

TEST(smsbat_polling) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "show_request(smsbat.build_poll(rcfg('smsbat'), {'abc123def456'}))",
              "GET https://restapi.smsbat.com/bat/message/abc123def456\n"
              "Accept: application/json\n"
              "X-Authorization-Key: k");
    CHECK_LUA(L,
              "show_request(smsbat.build_poll(rcfg('smsbat', {url = 'https://eu.example/', api_key = NONE,"
              " user = 'user', password = 'pass'}), {'a/b c'}))",
              "GET https://eu.example/bat/message/a%2Fb%20c\n"
              "Accept: application/json\n"
              "Authorization: Basic dXNlcjpwYXNz");
    /* One id per request. */
    CHECK_LUA(L, "raises(smsbat.build_poll, rcfg('smsbat'), {'a', 'b'})",
              "smsbat adapter: expected 1 to 1 ids to poll");
    /* The documented answers, plain and with fallback details. */
    CHECK_LUA(L,
              "poll(smsbat, {'abc123def456'}, 200, '{\"messagelistId\":123456,\"messageId\":\"abc123def456\","
              "\"deliverystatus\":\"delivered\",\"partscount\":1,\"cost\":0.05}')",
              "[{\"cost\":0.05,\"parts\":1,\"provider_id\":\"abc123def456\",\"raw_status\":\"delivered\","
              "\"status\":\"delivered\"}]");
    CHECK_LUA(L,
              "poll(smsbat, {'abc123def456'}, 200, '{\"messagelistId\":123456,\"messageId\":\"abc123def456\","
              "\"deliverystatus\":\"scheduled\",\"partscount\":2,\"cost\":0.05,"
              "\"fallbacks\":[{\"type\":\"sms\",\"status\":\"not_used\"}],"
              "\"extendedStatuses\":{\"viber\":\"delivered\",\"sms\":\"not_used\"},\"rate\":0.05,\"rateAmount\":0.05,"
              "\"rateCurrency\":\"USD\",\"billAmount\":0.05,\"billCurrency\":\"USD\"}')",
              "[{\"cost\":0.05,\"parts\":2,\"provider_id\":\"abc123def456\",\"raw_status\":\"scheduled\","
              "\"status\":\"accepted\"}]");
    /* Errors: no update, and why (the core polls again later). */
    CHECK_LUA(
        L, "poll(smsbat, {'nope'}, 404, '{\"status\":404,\"error\":\"Not Found\",\"message\":\"Message not found\"}')",
        "{} HTTP 404: Message not found");
    CHECK_LUA(L, "poll(smsbat, {'abc'}, 200, '{\"messageId\":\"abc\"}')", "{} no deliverystatus in answer");
    lua_close(L);
}

/* ---- Devino: the request ---- */

TEST(devino_request_documented_shape) {
    lua_State *L = adapters_state();
    /* Default base URL, documented path, "Authorization: Key"; "to" as the
     * E.164 digits; validity and priority passed through. */
    CHECK_LUA(
        L, "request(devino, rcfg('devino'), {msg(1), msg(2, {from = 'MyCompany', priority = 3, validity = 172800})})",
        "POST https://api.devino.online/sms/messages\n"
        "Accept: application/json\n"
        "Authorization: Key k\n"
        "Content-Type: application/json\n"
        "{\"messages\":["
        "{\"from\":\"Brand\",\"priority\":0,\"text\":\"Hello 1\",\"to\":\"84912340001\",\"validity\":3600},"
        "{\"from\":\"MyCompany\",\"priority\":3,\"text\":\"Hello 2\",\"to\":\"84912340002\",\"validity\":172800}]}");
    CHECK_LUA(L, "devino.build_send(rcfg('devino', {url = 'https://devino.example.test/'}), {msg(1)}).url",
              "https://devino.example.test/sms/messages");
    /* callback_url goes with every message; shorten_url as the query option. */
    CHECK_LUA(L,
              "request(devino, rcfg('devino', {callback_url = 'https://public.example.com/hooks/ru/status',"
              " shorten_url = true}), msgs(2))",
              "POST https://api.devino.online/sms/messages?shortenUrl=true\n"
              "Accept: application/json\n"
              "Authorization: Key k\n"
              "Content-Type: application/json\n"
              "{\"messages\":["
              "{\"callbackUrl\":\"https://public.example.com/hooks/ru/status\",\"from\":\"Brand\",\"priority\":0,"
              "\"text\":\"Hello 1\",\"to\":\"84912340001\",\"validity\":3600},"
              "{\"callbackUrl\":\"https://public.example.com/hooks/ru/status\",\"from\":\"Brand\",\"priority\":0,"
              "\"text\":\"Hello 2\",\"to\":\"84912340002\",\"validity\":3600}]}");
    CHECK_LUA(L, "raises(devino.build_send, rcfg('devino', {callback_url = 'hooks/status'}), msgs(1))",
              "provider primary (devino): callback_url must be an http(s) URL");
    lua_close(L);
}

TEST(devino_validity_and_priority) {
    lua_State *L = adapters_state();
    /* Devino takes 1..259200 s: longer is cut, none (or 0) leaves its default. */
    CHECK_LUA(L,
              "local t = {}\n"
              "for _, v in ipairs({1, 259200, 259201, 604800, 0}) do\n"
              "  local m = require('cjson').decode(devino.build_send(rcfg('devino'), {msg(1, {validity = "
              "v})}).body).messages[1]\n"
              "  t[#t + 1] = canon(m.validity)\n"
              "end\n"
              "local m = require('cjson').decode(devino.build_send(rcfg('devino'), {msg(1, {validity = "
              "NONE})}).body).messages[1]\n"
              "t[#t + 1] = canon(m.validity)\n"
              "return table.concat(t, ' ')",
              "1 259200 259200 259200 nil nil");
    /* Priority 0..3 as numbers, or as words with priority_words. */
    CHECK_LUA(L,
              "local t = {}\n"
              "for p = 0, 3 do\n"
              "  local c = require('cjson')\n"
              "  t[#t + 1] = canon(c.decode(devino.build_send(rcfg('devino'), {msg(1, {priority = "
              "p})}).body).messages[1].priority)\n"
              "  t[#t + 1] = c.decode(devino.build_send(rcfg('devino', {priority_words = true}), {msg(1, {priority = "
              "p})}).body)"
              ".messages[1].priority\n"
              "end\n"
              "return table.concat(t, ' ')",
              "0 LOW 1 MEDIUM 2 HIGH 3 REALTIME");
    lua_close(L);
}

TEST(devino_auth_and_misuse) {
    lua_State *L = adapters_state();
    CHECK_LUA(
        L,
        "devino.build_send(rcfg('devino', {api_key = 'QWxhZGRpbjpvcGVuIHNlc2FtZQ=='}), {msg(1)}).headers.Authorization",
        "Key QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    CHECK_LUA(L, "raises(devino.build_send, rcfg('devino', {api_key = NONE}), {msg(1)})",
              "provider primary (devino): needs api_key");
    CHECK_LUA(L, "raises(devino.build_send, rcfg('devino', {api_key = ''}), {msg(1)})",
              "provider primary (devino): needs api_key");
    CHECK_LUA(L, "#require('cjson').decode(devino.build_send(rcfg('devino'), msgs(100)).body).messages", "100");
    CHECK_LUA(L, "raises(devino.build_send, rcfg('devino'), msgs(101))", "devino adapter: expected 1 to 100 messages");
    CHECK_LUA(L, "raises(devino.build_send, rcfg('devino'), {msg(1, {to = NONE})})",
              "devino adapter: message 1 needs a string to and text");
    lua_close(L);
}

/* ---- Devino: answers ---- */

TEST(devino_documented_answer) {
    lua_State *L = adapters_state();
    /* The documented answer: one OK, one REJECTED for an unregistered sender. */
    CHECK_LUA(L,
              "answer(devino, 2, 200, [[{\"result\":[{\"code\":\"OK\",\"messageId\":\"3482512350952730368\"},"
              "{\"code\":\"REJECTED\",\"messageId\":null,\"segmentsId\":null,"
              "\"reasons\":[{\"key\":\"not.available\",\"ref\":\"messages[1].from\"}],"
              "\"description\":\"Sender is not available\"}]}]])",
              "[" OK_ID("3482512350952730368") "," FAILED(
                  "provider", "REJECTED: not.available (messages[1].from): Sender is not available") "]");
    /* A messageId sent as a JSON number beyond 2^53 is read exactly. */
    CHECK_LUA(L,
              "answer(devino, 2, 200, '{\"result\":[{\"code\":\"OK\",\"messageId\":3482512350952730368},"
              "{\"code\":\"OK\",\"messageId\":9007199254740993}]}')",
              "[" OK_ID("3482512350952730368") "," OK_ID("9007199254740993") "]");
    /* Fewer results than messages, or an OK without an id: retried. */
    CHECK_LUA(L,
              "answer(devino, 3, 200, "
              "'{\"result\":[{\"code\":\"OK\",\"messageId\":\"1\"},{\"code\":\"OK\",\"messageId\":null}]}')",
              "[" OK_ID("1") "," NO_ID "," NO_ID "]");
    CHECK_LUA(L, "answer(devino, 1, 200, '')", "[" NO_ID "]");
    CHECK_LUA(L, "answer(devino, 1, 200, '{\"result\":{}}')", "[" NO_ID "]");
    lua_close(L);
}

TEST(devino_every_rejection_key) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "local cases = {\n"
              "  {'billing.error', 'messages[0]'}, {'forbidden', 'messages[0]'}, {'unknown', 'messages[0]'},\n"
              "  {'invalid', 'messages[0].to'}, {'invalid', 'messages[0].validity'}, {'invalid', "
              "'messages[0].callbackUrl'},\n"
              "  {'length.too.long', 'messages[0].to'}, {'length.too.long', 'messages[0].text'},\n"
              "  {'must.be.not.null', 'messages'}, {'not.available', 'messages[0].from'},\n"
              "  {'too.many.messages', 'messages'}, {'some.new.key', 'messages[0]'}}\n"
              "local t = {}\n"
              "for _, c in ipairs(cases) do\n"
              "  local body = "
              "string.format('{\"result\":[{\"code\":\"REJECTED\",\"reasons\":[{\"key\":\"%s\",\"ref\":\"%s\"}]}]}', "
              "c[1], c[2])\n"
              "  local o = devino.parse_send(rcfg('devino'), {msg(1)}, {status = 200, body = body, headers = {}})[1]\n"
              "  t[#t + 1] = c[1] .. ' ' .. c[2] .. ' -> ' .. (o.retry and 'retry' or o.scope) .. ' | ' .. o.error\n"
              "end\n"
              "return table.concat(t, '\\n')",
              "billing.error messages[0] -> provider | REJECTED: billing.error (messages[0])\n"
              "forbidden messages[0] -> provider | REJECTED: forbidden (messages[0])\n"
              "unknown messages[0] -> retry | REJECTED: unknown (messages[0])\n"
              "invalid messages[0].to -> message | REJECTED: invalid (messages[0].to)\n"
              "invalid messages[0].validity -> message | REJECTED: invalid (messages[0].validity)\n"
              "invalid messages[0].callbackUrl -> message | REJECTED: invalid (messages[0].callbackUrl)\n"
              "length.too.long messages[0].to -> message | REJECTED: length.too.long (messages[0].to)\n"
              "length.too.long messages[0].text -> message | REJECTED: length.too.long (messages[0].text)\n"
              "must.be.not.null messages -> message | REJECTED: must.be.not.null (messages)\n"
              "not.available messages[0].from -> provider | REJECTED: not.available (messages[0].from)\n"
              "too.many.messages messages -> retry | REJECTED: too.many.messages (messages)\n"
              "some.new.key messages[0] -> message | REJECTED: some.new.key (messages[0])");
    /* Several reasons: the message's own fault wins, then the provider's. */
    CHECK_LUA(
        L,
        "answer(devino, 1, 200, [[{\"result\":[{\"code\":\"REJECTED\",\"reasons\":["
        "{\"key\":\"unknown\"},{\"key\":\"not.available\",\"ref\":\"messages[0].from\"},"
        "{\"key\":\"invalid\",\"ref\":\"messages[0].to\"}]}]}]])",
        "[" FAILED("message", "REJECTED: unknown, not.available (messages[0].from), invalid (messages[0].to)") "]");
    CHECK_LUA(L,
              "answer(devino, 1, 200, [[{\"result\":[{\"code\":\"REJECTED\",\"reasons\":["
              "{\"key\":\"too.many.messages\",\"ref\":\"messages\"},{\"key\":\"billing.error\"}]}]}]])",
              "[" FAILED("provider", "REJECTED: too.many.messages (messages), billing.error") "]");
    /* A retryable key takes the answer's Retry-After. */
    CHECK_LUA(
        L,
        "answer(devino, 1, 200, [[{\"result\":[{\"code\":\"REJECTED\",\"reasons\":[{\"key\":\"too.many.messages\","
        "\"ref\":\"messages\"}]}]}]], {['retry-after'] = '10'})",
        "[" RETRY_AFTER("REJECTED: too.many.messages (messages)", 10) "]");
    /* A rejection without reasons still fails the message, with its text. */
    CHECK_LUA(L, "answer(devino, 1, 200, '{\"result\":[{\"code\":\"REJECTED\",\"description\":\"Denied\"}]}')",
              "[" FAILED("message", "REJECTED: Denied") "]");
    lua_close(L);
}

TEST(devino_http_errors) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "answer(devino, 2, 401, '')",
              "[" FAILED("provider", "HTTP 401") "," FAILED("provider", "HTTP 401") "]");
    CHECK_LUA(L, "answer(devino, 1, 403, '{\"description\":\"Access denied\"}')",
              "[" FAILED("provider", "HTTP 403: Access denied") "]");
    CHECK_LUA(L, "answer(devino, 1, 404, '')", "[" FAILED("provider", "HTTP 404") "]");
    CHECK_LUA(L, "answer(devino, 2, 429, '', {['retry-after'] = '2'})",
              "[" RETRY_AFTER("HTTP 429", 2) "," RETRY_AFTER("HTTP 429", 2) "]");
    CHECK_LUA(L, "answer(devino, 1, 500, '{\"description\":\"Internal error\"}')",
              "[" RETRY("HTTP 500: Internal error") "]");
    CHECK_LUA(L, "answer(devino, 1, 502, '<html>Bad Gateway</html>')", "[" RETRY("HTTP 502") "]");
    /* A 400 whose reasons say what kind of refusal it is. */
    CHECK_LUA(L,
              "answer(devino, 2, 400, "
              "[[{\"code\":\"REJECTED\",\"reasons\":[{\"key\":\"too.many.messages\",\"ref\":\"messages\"}],"
              "\"description\":\"Too many messages\"}]])",
              "[" RETRY("HTTP 400: too.many.messages (messages): Too many messages") "," RETRY(
                  "HTTP 400: too.many.messages (messages): Too many messages") "]");
    CHECK_LUA(L, "answer(devino, 1, 400, [[{\"reasons\":[{\"key\":\"must.be.not.null\",\"ref\":\"messages\"}]}]])",
              "[" FAILED("message", "HTTP 400: must.be.not.null (messages)") "]");
    CHECK_LUA(
        L,
        "answer(devino, 1, 400, [[{\"reasons\":[{\"key\":\"billing.error\"}],\"description\":\"Payment required\"}]])",
        "[" FAILED("provider", "HTTP 400: billing.error: Payment required") "]");
    /* Reasons do not turn a 401 or a 5xx into anything else. */
    CHECK_LUA(L, "answer(devino, 1, 401, [[{\"reasons\":[{\"key\":\"invalid\"}]}]])",
              "[" FAILED("provider", "HTTP 401: invalid") "]");
    CHECK_LUA(L, "answer(devino, 1, 503, [[{\"reasons\":[{\"key\":\"invalid\"}]}]])",
              "[" RETRY("HTTP 503: invalid") "]");
    lua_close(L);
}

/* ---- Devino: webhooks ---- */

TEST(devino_status_push) {
    lua_State *L = adapters_state();
    /* The documented push, a JSON array; answered 200. */
    CHECK_LUA(L,
              "status(devino, '[{\"messageId\":\"3597944866766620289\",\"ts\":1613404835977,\"status\":\"DELIVERED\","
              "\"errorCode\":0}]')",
              "[{\"at\":1613404835,\"provider_id\":\"3597944866766620289\",\"raw_status\":\"DELIVERED\","
              "\"status\":\"delivered\"}]");
    CHECK_LUA(L,
              "status_answer(devino, "
              "'[{\"messageId\":\"3597944866766620289\",\"ts\":1613404835977,\"status\":\"DELIVERED\"}]')",
              ANSWER_200);
    /* Ids beyond 2^53 sent as JSON numbers stay exact (3597944866766620289
     * would read 3597944866766620160 through a double). */
    CHECK_LUA(
        L,
        "status(devino, '[{\"messageId\":3597944866766620289,\"ts\":1613404835977,\"status\":\"UNDELIVERABLE\","
        "\"errorCode\":11},{\"messageId\":3482512350952730368,\"ts\":\"1613404835000\",\"status\":\"SENT\"}]')",
        "[{\"at\":1613404835,\"error\":\"error code 11\",\"provider_id\":\"3597944866766620289\","
        "\"raw_status\":\"UNDELIVERABLE\",\"status\":\"undelivered\"},"
        "{\"at\":1613404835,\"provider_id\":\"3482512350952730368\",\"raw_status\":\"SENT\",\"status\":\"sent\"}]");
    /* Every documented status. */
    CHECK_LUA(L,
              "local t = {}\n"
              "for _, s in ipairs({'ACCEPTED', 'SCHEDULED', 'ENROUTE', 'SENT', 'DELIVERED', 'EXPIRED', 'CLICKED',\n"
              "                    'UNDELIVERABLE', 'REJECTED', 'UNKNOWN', 'SOMETHING_NEW'}) do\n"
              "  local u = devino.parse_status(rcfg('devino'), hook('[{\"messageId\":\"1\",\"status\":\"' .. s .. "
              "'\"}]'))[1]\n"
              "  t[#t + 1] = s .. '=' .. u.status\n"
              "end\n"
              "return table.concat(t, ' ')",
              "ACCEPTED=accepted SCHEDULED=accepted ENROUTE=sent SENT=sent DELIVERED=delivered EXPIRED=expired "
              "CLICKED=delivered UNDELIVERABLE=undelivered REJECTED=rejected UNKNOWN=unknown SOMETHING_NEW=unknown");
    /* A single object is taken too; an empty array is no update; broken JSON raises. */
    CHECK_LUA(L, "status(devino, '{\"messageId\":\"5\",\"status\":\"EXPIRED\"}')",
              "[{\"provider_id\":\"5\",\"raw_status\":\"EXPIRED\",\"status\":\"expired\"}]");
    CHECK_LUA(L, "status(devino, '[]')", "{}");
    CHECK_LUA(L, "raises(devino.parse_status, rcfg('devino'), hook('[{\"messageId\":'))",
              "devino status: body is not JSON: Expected value but found T_END at character 15");
    lua_close(L);
}

TEST(devino_inbound_push) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "inbound(devino, hook([[{\"incomingMessageId\":\"3777714415805253122\",\"to\":\"MyCompany\","
              "\"from\":\"79101111111\",\"text\":\"Да, "
              "подтверждаю\",\"transactionId\":\"a7d76677f699\",\"countryName\":\"ru\","
              "\"operator\":\"\",\"prefix\":\"2135\",\"ts\":\"1587721283000\"}]]))",
              "[{\"at\":1587721283,\"from\":\"79101111111\",\"provider_message_id\":\"3777714415805253122\","
              "\"text\":\"Да, подтверждаю\",\"to\":\"MyCompany\"}]");
    CHECK_LUA(L,
              "inbound_answer(devino, hook('{\"incomingMessageId\":\"1\",\"from\":\"79101111111\",\"text\":\"x\"}'))",
              ANSWER_200);
    /* A numeric id beyond 2^53 exactly; a numeric "to" gets its '+'. */
    CHECK_LUA(L,
              "inbound(devino, hook('{\"incomingMessageId\":3777714415805253122,\"to\":\"79001234567\","
              "\"from\":\"79101111111\",\"text\":\"\",\"ts\":1587721283000}'))",
              "[{\"at\":1587721283,\"from\":\"79101111111\",\"provider_message_id\":\"3777714415805253122\","
              "\"text\":\"\",\"to\":\"79001234567\"}]");
    CHECK_LUA(L, "raises(devino.parse_inbound, rcfg('devino'), hook('text=hi'))",
              "devino inbound: body is not JSON: Expected value but found invalid token at character 1");
    lua_close(L);
}

/* ---- Devino: polling ---- */

TEST(devino_polling) {
    lua_State *L = adapters_state();
    /* Ids as JSON numbers, their digits exactly as given. */
    CHECK_LUA(L,
              "local r = devino.build_poll(rcfg('devino'), {'3482512350952730368', '3597944866766620289'})\n"
              "r.body, r.body_text = nil, r.body\n"
              "return show_request(r) .. '\\n' .. r.body_text",
              "POST https://api.devino.online/sms-stat/statuses/get-by-ids\n"
              "Accept: application/json\n"
              "Authorization: Key k\n"
              "Content-Type: application/json\n"
              "[3482512350952730368,3597944866766620289]");
    CHECK_LUA(L, "devino.build_poll(rcfg('devino', {poll_id_strings = true}), {'3482512350952730368', '7'}).body",
              "[\"3482512350952730368\",\"7\"]");
    /* An id that is not digits can only be a string. */
    CHECK_LUA(L, "devino.build_poll(rcfg('devino', {url = 'http://127.0.0.1:9/'}), {'12', 'ab\"c'}).body",
              "[12,\"ab\\\"c\"]");
    CHECK_LUA(L, "devino.build_poll(rcfg('devino', {url = 'http://127.0.0.1:9/'}), {'1'}).url",
              "http://127.0.0.1:9/sms-stat/statuses/get-by-ids");
    /* At most 500 ids per request: poll_batch says so and build_poll holds to it. */
    CHECK_LUA(L,
              "local ids = {} for i = 1, 500 do ids[i] = tostring(3482512350952730368 + i) end\n"
              "local n = 0 for _ in devino.build_poll(rcfg('devino'), ids).body:gmatch('%d+') do n = n + 1 end\n"
              "ids[501] = '1'\n"
              "return devino.poll_batch .. ' ' .. n .. ' ' .. raises(devino.build_poll, rcfg('devino'), ids)",
              "500 500 devino adapter: expected 1 to 500 ids to poll");
    /* The documented answer: smsId a JSON number beyond 2^53, read exactly. */
    CHECK_LUA(L,
              "poll(devino, {'3482512350952730368'}, 200, '{\"result\":[{\"smsId\":3482512350952730368,"
              "\"status\":\"DELIVERED\",\"statusDateTime\":\"2020-11-11 11:20:35\"}]}')",
              "[{\"at\":1605093635,\"provider_id\":\"3482512350952730368\",\"raw_status\":\"DELIVERED\","
              "\"status\":\"delivered\"}]");
    /* statusDateTime carries no zone: utc_offset says which it is. */
    CHECK_LUA(L,
              "poll(devino, {'1', '2'}, 200, '{\"result\":[{\"smsId\":1,\"status\":\"ENROUTE\","
              "\"statusDateTime\":\"2020-11-11 11:20:35\"},{\"smsId\":\"2\",\"status\":\"REJECTED\"}]}',"
              " rcfg('devino', {utc_offset = '+03:00'}))",
              "[{\"at\":1605082835,\"provider_id\":\"1\",\"raw_status\":\"ENROUTE\",\"status\":\"sent\"},"
              "{\"provider_id\":\"2\",\"raw_status\":\"REJECTED\",\"status\":\"rejected\"}]");
    CHECK_LUA(L, "poll(devino, {'1'}, 401, '')", "{} HTTP 401");
    CHECK_LUA(L, "poll(devino, {'1'}, 200, '{\"result\":[]}')", "{}");
    lua_close(L);
}

/* ---- Agile Telecom: the request ---- */

TEST(agiletelecom_request_documented_shape) {
    lua_State *L = adapters_state();
    /* Default (legacy) base, "/sms/send"; one entry per message with our id
     * in "ids" and its number in "destinations". */
    CHECK_LUA(L, "request(agiletelecom, rcfg('agiletelecom'), {msg(1), msg(2, {from = 'Shop', to = '+393351234567'})})",
              "POST https://secure.agiletelecom.com/services/sms/send\n"
              "Accept: application/json\n"
              "Content-Type: application/json\n"
              "X-Api-Key: k\n"
              "{\"enableConcatenated\":true,\"enableDelivery\":true,\"enableUnicode\":true,\"messages\":["
              "{\"body\":\"Hello 1\",\"destinations\":[\"+84912340001\"],\"ids\":[\"" ID1 "\"],\"sender\":\"Brand\"},"
              "{\"body\":\"Hello 2\",\"destinations\":[\"+393351234567\"],\"ids\":[\"" ID2 "\"],\"sender\":\"Shop\"}],"
              "\"simulation\":false}");
    /* The base for newer accounts, and a test double. */
    CHECK_LUA(L,
              "agiletelecom.build_send(rcfg('agiletelecom', {url = 'https://http-api.agiletelecom.com/services/'}), "
              "{msg(1)}).url",
              "https://http-api.agiletelecom.com/services/sms/send");
    CHECK_LUA(L, "agiletelecom.build_send(rcfg('agiletelecom', {url = 'http://127.0.0.1:9090'}), {msg(1)}).url",
              "http://127.0.0.1:9090/sms/send");
    /* simulation: checked by Agile Telecom, nothing sent. */
    CHECK_LUA(L,
              "tostring(require('cjson').decode(agiletelecom.build_send(rcfg('agiletelecom', {simulation = true}), "
              "{msg(1)}).body).simulation)",
              "true");
    CHECK_LUA(L, "raises(agiletelecom.build_send, rcfg('agiletelecom', {simulation = 'yes'}), {msg(1)})",
              "provider primary (agiletelecom): simulation must be true or false");
    CHECK_LUA(L, "#require('cjson').decode(agiletelecom.build_send(rcfg('agiletelecom'), msgs(100)).body).messages",
              "100");
    CHECK_LUA(L, "raises(agiletelecom.build_send, rcfg('agiletelecom'), msgs(101))",
              "agiletelecom adapter: expected 1 to 100 messages");
    lua_close(L);
}

TEST(agiletelecom_auth_variants) {
    lua_State *L = adapters_state();
    CHECK_LUA(L, "canon(agiletelecom.build_send(rcfg('agiletelecom', {api_key = 'your_api_key'}), {msg(1)}).headers)",
              "{\"Accept\":\"application/json\",\"Content-Type\":\"application/json\",\"X-Api-Key\":\"your_api_key\"}");
    CHECK_LUA(L,
              "canon(agiletelecom.build_send(rcfg('agiletelecom', {api_key = NONE, user = 'agile', password = 'pw'}),"
              " {msg(1)}).headers)",
              "{\"Accept\":\"application/json\",\"Authorization\":\"Basic "
              "YWdpbGU6cHc=\",\"Content-Type\":\"application/json\"}");
    CHECK_LUA(L, "raises(agiletelecom.build_send, rcfg('agiletelecom', {api_key = NONE}), {msg(1)})",
              "provider primary (agiletelecom): needs api_key or user + password");
    CHECK_LUA(L, "raises(agiletelecom.build_send, rcfg('agiletelecom', {api_key = NONE, password = 'pw'}), {msg(1)})",
              "provider primary (agiletelecom): user and password go together");
    CHECK_LUA(L, "raises(agiletelecom.build_send, rcfg('agiletelecom', {user = 'agile', password = 'pw'}), {msg(1)})",
              "provider primary (agiletelecom): give api_key or user + password, not both");
    lua_close(L);
}

/* ---- Agile Telecom: answers ---- */

TEST(agiletelecom_documented_answer) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "answer(agiletelecom, {msg(1, {to = '+393351234567'})}, 200, [[{\"globalId\":\"req_1234567890\","
              "\"accepted\":true,\"results\":[{\"destination\":\"+393351234567\",\"id\":\"msg_abc123\","
              "\"accepted\":true,\"statusCode\":200}]}]])",
              "[" OK_ID("msg_abc123") "]");
    /* Every documented per-destination code, in one batch. */
    CHECK_LUA(
        L,
        "local ms = msgs(7)\n"
        "local rs = {}\n"
        "for i, code in ipairs({200, 400, 401, 402, 403, 429, 500}) do\n"
        "  rs[i] = string.format('{\"destination\":\"%s\",\"id\":\"m%d\",\"accepted\":%s,\"statusCode\":%d}',\n"
        "                        ms[i].to, i, tostring(code == 200), code)\n"
        "end\n"
        "return answer(agiletelecom, ms, 200, '{\"accepted\":true,\"results\":[' .. table.concat(rs, ',') .. ']}',"
        " {['retry-after'] = '4'})",
        "[" OK_ID("m1") "," FAILED("message", "status 400") "," FAILED("provider", "status 401") "," FAILED(
            "provider", "status 402") "," FAILED("message",
                                                 "status 403") "," RETRY_AFTER("status 429",
                                                                               4) "," RETRY_AFTER("status 500", 4) "]");
    /* accepted false with a description and no code; refused beside a 200. */
    CHECK_LUA(L,
              "answer(agiletelecom, 2, 200, [[{\"accepted\":false,\"results\":["
              "{\"destination\":\"+84912340001\",\"accepted\":false,\"description\":\"Invalid destination\"},"
              "{\"destination\":\"+84912340002\",\"accepted\":false,\"statusCode\":200}]}]])",
              "[" FAILED("message", "not accepted: Invalid destination") "," FAILED("message", "status 200") "]");
    /* An accepted result without an id: our id, the one sent in "ids". */
    CHECK_LUA(L,
              "answer(agiletelecom, 1, 200, '{\"accepted\":true,\"results\":[{\"destination\":\"+84912340001\","
              "\"accepted\":true,\"statusCode\":200}]}')",
              "[" OK_ID(ID1) "]");
    lua_close(L);
}

TEST(agiletelecom_results_are_matched_to_their_messages) {
    lua_State *L = adapters_state();
    /* Our ids echoed, out of order. */
    CHECK_LUA(L,
              "answer(agiletelecom, 2, 200, [[{\"results\":["
              "{\"destination\":\"+84912340002\",\"id\":\"" ID2 "\",\"accepted\":true,\"statusCode\":200},"
              "{\"destination\":\"+84912340001\",\"id\":\"" ID1 "\",\"accepted\":false,\"statusCode\":400}]}]])",
              "[" FAILED("message", "status 400") "," OK_ID(ID2) "]");
    /* Provider ids, out of order: matched by destination ("0039" and "+39" alike). */
    CHECK_LUA(
        L,
        "answer(agiletelecom, {msg(1, {to = '+393351234567'}), msg(2, {to = '+393351234568'})}, 200, [[{\"results\":["
        "{\"destination\":\"00393351234568\",\"id\":\"b\",\"accepted\":true,\"statusCode\":200},"
        "{\"destination\":\"393351234567\",\"id\":\"a\",\"accepted\":true,\"statusCode\":200}]}]])",
        "[" OK_ID("a") "," OK_ID("b") "]");
    /* Two messages to one number: each result used once, in order. */
    CHECK_LUA(
        L,
        "answer(agiletelecom, {msg(1, {to = '+393351234567'}), msg(2, {to = '+393351234567'})}, 200, [[{\"results\":["
        "{\"destination\":\"+393351234567\",\"id\":\"a\",\"accepted\":true},"
        "{\"destination\":\"+393351234567\",\"id\":\"b\",\"accepted\":true}]}]])",
        "[" OK_ID("a") "," OK_ID("b") "]");
    /* A result for another number or another of our messages is not credited. */
    CHECK_LUA(L,
              "answer(agiletelecom, 2, 200, [[{\"results\":["
              "{\"destination\":\"+19995550000\",\"id\":\"x\",\"accepted\":true},"
              "{\"destination\":\"+84912340002\",\"id\":\"" ID2 "\",\"accepted\":true}]}]])",
              "[" NO_ID "," OK_ID(ID2) "]");
    /* No results at all: a refusal when the request says so, else unknown. */
    CHECK_LUA(L, "answer(agiletelecom, 2, 200, '{\"globalId\":\"g\",\"accepted\":false,\"statusCode\":402}')",
              "[" FAILED("provider", "status 402") "," FAILED("provider", "status 402") "]");
    CHECK_LUA(L, "answer(agiletelecom, 1, 200, '{\"globalId\":\"g\",\"accepted\":true}')", "[" NO_ID "]");
    CHECK_LUA(L, "answer(agiletelecom, 1, 200, 'OK')", "[" NO_ID "]");
    lua_close(L);
}

TEST(agiletelecom_http_errors) {
    lua_State *L = adapters_state();
    CHECK_LUA(
        L, "answer(agiletelecom, 2, 400, '{\"message\":\"Malformed request\"}')",
        "[" FAILED("message", "HTTP 400: Malformed request") "," FAILED("message", "HTTP 400: Malformed request") "]");
    CHECK_LUA(L, "answer(agiletelecom, 1, 401, '')", "[" FAILED("provider", "HTTP 401") "]");
    CHECK_LUA(L, "answer(agiletelecom, 1, 403, 'IP not whitelisted')",
              "[" FAILED("provider", "HTTP 403: IP not whitelisted") "]");
    CHECK_LUA(L, "answer(agiletelecom, 1, 404, '')", "[" FAILED("provider", "HTTP 404") "]");
    CHECK_LUA(L, "answer(agiletelecom, 1, 413, '')", "[" FAILED("provider", "HTTP 413") "]");
    CHECK_LUA(L, "answer(agiletelecom, 1, 415, '')", "[" FAILED("provider", "HTTP 415") "]");
    CHECK_LUA(L, "answer(agiletelecom, 1, 408, '')", "[" RETRY("HTTP 408") "]");
    CHECK_LUA(L, "answer(agiletelecom, 1, 429, '', {['retry-after'] = '60'})", "[" RETRY_AFTER("HTTP 429", 60) "]");
    CHECK_LUA(L, "answer(agiletelecom, 1, 500, '')", "[" RETRY("HTTP 500") "]");
    CHECK_LUA(L, "answer(agiletelecom, 1, 503, '')", "[" RETRY("HTTP 503") "]");
    lua_close(L);
}

/* ---- Agile Telecom: webhooks ---- */

TEST(agiletelecom_delivery_callback) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "status(agiletelecom, [[{\"channel\":\"SMS\",\"eventType\":\"DELIVERY\",\"messageId\":\"uuid\","
              "\"statusCode\":3,\"statusDescription\":\"Delivered\",\"price\":0.035,\"numPart\":1,\"totalParts\":1,"
              "\"timestamp\":\"2024-01-15T10:30:00Z\"}]])",
              "[{\"at\":1705314600,\"cost\":0.035,\"part\":1,\"parts\":1,\"provider_id\":\"uuid\",\"raw_status\":\"3\","
              "\"status\":\"delivered\"}]");
    /* The exact answer Agile Telecom expects. */
    CHECK_LUA(L, "status_answer(agiletelecom, '{\"eventType\":\"DELIVERY\",\"messageId\":\"uuid\",\"statusCode\":3}')",
              ANSWER_OK);
    /* Not delivered, part 2 of 3 of a multipart message. */
    CHECK_LUA(L,
              "status(agiletelecom, [[{\"channel\":\"SMS\",\"eventType\":\"DELIVERY\",\"messageId\":\"" ID1 "\","
              "\"statusCode\":6,\"statusDescription\":\"Not Delivered\",\"price\":0,\"numPart\":2,\"totalParts\":3,"
              "\"timestamp\":\"2024-01-15T10:30:05Z\"}]])",
              "[{\"at\":1705314605,\"cost\":0,\"error\":\"Not Delivered\",\"part\":2,\"parts\":3,\"provider_id\":\"" ID1
              "\","
              "\"raw_status\":\"6\",\"status\":\"undelivered\"}]");
    /* A code this API does not document says nothing final. */
    CHECK_LUA(L, "status(agiletelecom, '{\"eventType\":\"DELIVERY\",\"messageId\":\"u\",\"statusCode\":1}')",
              "[{\"provider_id\":\"u\",\"raw_status\":\"1\",\"status\":\"unknown\"}]");
    /* Other event types are not delivery reports: no update, still +OK. */
    CHECK_LUA(L,
              "status(agiletelecom, '{\"eventType\":\"READ\",\"messageId\":\"u\"}') .. ' | ' .."
              " status_answer(agiletelecom, '{\"eventType\":\"READ\",\"messageId\":\"u\"}')",
              "{} | " ANSWER_OK);
    CHECK_LUA(L, "raises(agiletelecom.parse_status, rcfg('agiletelecom'), hook('messageId=u&statusCode=3'))",
              "agiletelecom status: body is not JSON: Expected value but found invalid token at character 1");
    lua_close(L);
}

TEST(agiletelecom_inbound) {
    lua_State *L = adapters_state();
    /* The documented form, as the core parses it. No provider id: the core
     * deduplicates by a hash of the message. */
    CHECK_LUA(
        L,
        "inbound(agiletelecom, hook('originator=%2B393301234567&destination=%2B393331234333&date_time=20150525154559"
        "&text=News+ON', {headers = {['content-type'] = 'application/x-www-form-urlencoded'},"
        " form = {originator = '+393301234567', destination = '+393331234333', date_time = '20150525154559',"
        " text = 'News ON'}}))",
        "[{\"at\":1432568759,\"from\":\"+393301234567\",\"text\":\"News ON\",\"to\":\"+393331234333\"}]");
    CHECK_LUA(
        L,
        "tostring(agiletelecom.parse_inbound(rcfg('agiletelecom'), hook('', {form = {originator = '+393301234567',"
        " text = 'x'}}))[1].provider_message_id)",
        "nil");
    /* Exactly "+OK": anything else makes Agile Telecom resend. */
    CHECK_LUA(
        L,
        "inbound_answer(agiletelecom, hook('', {form = {originator = '+393301234567', destination = '+393331234333',"
        " date_time = '20150525154559', text = 'News ON'}}))",
        ANSWER_OK);
    /* A body the core did not parse (no form Content-Type): read here. */
    CHECK_LUA(L,
              "inbound(agiletelecom, hook('originator=%2B393301234567&destination=%2B393331234333"
              "&date_time=20150525154559&text=Si%2C+confermo+%C3%A8', {headers = {}}))",
              "[{\"at\":1432568759,\"from\":\"+393301234567\",\"text\":\"Si, confermo è\",\"to\":\"+393331234333\"}]");
    /* date_time carries no zone: utc_offset says which it is. */
    CHECK_LUA(L,
              "inbound(agiletelecom, hook('', {form = {originator = '393301234567', destination = '+393331234333',"
              " date_time = '20150525154559', text = 'News ON'}}), rcfg('agiletelecom', {utc_offset = '+01:00'}))",
              "[{\"at\":1432565159,\"from\":\"393301234567\",\"text\":\"News ON\",\"to\":\"+393331234333\"}]");
    CHECK_LUA(L, "raises(agiletelecom.parse_inbound, rcfg('agiletelecom'), hook('', {form = {text = 'x'}}))",
              "agiletelecom inbound: no originator in the form");
    lua_close(L);
}

/* ---- all three ---- */

TEST(regional_one_outcome_per_message_always) {
    /* Every status from 100 to 599 and odd ones, against bodies of every
     * kind, batches of 1 to 3: as many outcomes as messages, each of one of
     * the four shapes. */
    lua_State *L = adapters_state();
    CHECK_LUA(
        L,
        "local bodies = {'', 'x', '{}', 'null', '[]', '\"s\"', '{\"messages\":[]}', '{\"messages\":{}}',\n"
        "  '{\"messages\":[null,{\"status\":\"rejected\"},{\"messageId\":\"a\",\"status\":7},{\"messageId\":{}}]}',\n"
        "  "
        "'{\"messages\":[{\"messageId\":\"a\",\"customerMessageId\":5},{\"messageId\":\"\",\"status\":\"accepted\"}]}',"
        "\n"
        "  "
        "'{\"result\":[{\"code\":\"OK\",\"messageId\":\"3482512350952730368\"},{\"code\":\"REJECTED\",\"reasons\":{}}]}"
        "',\n"
        "  "
        "'{\"result\":[{\"code\":7,\"reasons\":[null,{\"key\":5},{\"key\":\"x\",\"ref\":{}}]},null,{\"code\":\"OK\"}]}'"
        ",\n"
        "  '{\"reasons\":[{\"key\":\"unknown\"}],\"description\":{}}',\n"
        "  '{\"accepted\":false,\"statusCode\":\"x\"}', '{\"accepted\":false,\"statusCode\":99999}',\n"
        "  "
        "'{\"results\":[{\"accepted\":false,\"statusCode\":1.5},{\"destination\":7,\"id\":{}},null,{\"id\":\"\"}]}',\n"
        "  '{\"results\":[{\"destination\":\"+84912340002\",\"accepted\":true}]}',\n"
        "  '{\"error\":[1]}', '{\"message\":{},\"code\":{}}'}\n"
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
        "for _, a in ipairs({smsbat, devino, agiletelecom}) do\n"
        "  for n = 1, 3 do\n"
        "    for _, s in ipairs(statuses) do\n"
        "      for _, b in ipairs(bodies) do\n"
        "        local out = a.parse_send(rcfg(a.name), msgs(n), {status = s, body = b, headers = {['retry-after'] = "
        "'1'}})\n"
        "        if #out ~= n then error(string.format('%s: %d outcomes for %d, status %s body %s', a.name, #out, n, "
        "s, b)) end\n"
        "        for i = 1, n do\n"
        "          if not shape(out[i]) then\n"
        "            error(string.format('%s: bad outcome %s for status %s body %s', a.name, canon(out[i]), s, b))\n"
        "          end\n"
        "        end\n"
        "        checked = checked + 1\n"
        "      end\n"
        "    end\n"
        "  end\n"
        "end\n"
        "return checked",
        "86355");
    lua_close(L);
}

TEST(regional_webhooks_survive_odd_payloads) {
    /* Odd but valid JSON never raises and never yields a malformed update:
     * entries without an id or a status are left out. */
    lua_State *L = adapters_state();
    CHECK_LUA(
        L,
        "local bodies = {'{}', '[]', '[null]', '[1,\"x\",[]]', '{\"messageId\":{}}', "
        "'{\"messageId\":\"a\",\"status\":{}}',\n"
        "  '[{\"messageId\":\"a\",\"deliverystatus\":5,\"status\":5,\"statusCode\":{}}]',\n"
        "  '{\"messageId\":1.5,\"deliverystatus\":\"delivered\",\"status\":\"DELIVERED\",\"statusCode\":3}',\n"
        "  '{\"messageId\":\"a\",\"deliverystatus\":\"delivered\",\"status\":\"DELIVERED\",\"statusCode\":3,'\n"
        "   .. '\"ts\":\"x\",\"timestamp\":5,\"cost\":\"x\",\"price\":{},\"numPart\":\"x\",\"errorCode\":\"x\"}'}\n"
        "local statuses = {accepted = 1, sent = 1, delivered = 1, undelivered = 1, expired = 1, rejected = 1, unknown "
        "= 1}\n"
        "local n = 0\n"
        "for _, a in ipairs({smsbat, devino, agiletelecom}) do\n"
        "  for _, b in ipairs(bodies) do\n"
        "    local updates, ans = a.parse_status(rcfg(a.name), hook(b))\n"
        "    if type(ans) ~= 'table' or ans.status ~= 200 then error(a.name .. ': no answer for ' .. b) end\n"
        "    for _, u in ipairs(updates) do\n"
        "      if type(u.provider_id) ~= 'string' or not statuses[u.status]\n"
        "         or (u.at ~= nil and math.type(u.at) ~= 'integer') then\n"
        "        error(a.name .. ': bad update ' .. canon(u) .. ' for ' .. b)\n"
        "      end\n"
        "      n = n + 1\n"
        "    end\n"
        "  end\n"
        "end\n"
        "return n",
        "3");
    lua_close(L);
}

TEST(rules_changing_the_shared_cjson_do_not_change_regional_adapters) {
    lua_State *L = adapters_state();
    CHECK_LUA(L,
              "local c = require('cjson'); c.decode_max_depth(1); c.encode_keep_buffer(false)\n"
              "return answer(devino, 1, 200, '{\"result\":[{\"code\":\"OK\",\"messageId\":\"deep\"}]}')",
              "[" OK_ID("deep") "]");
    lua_close(L);
}
