/* The generic adapter's C path (src/rules/adapter_generic.c) against its Lua
 * original (lua/adapters/generic.lua): for providers declared by real rules
 * (sr_rules_load) and messages with every byte in their text, the request
 * sr_adapter_build_send makes with the C path on is the one the Lua adapter
 * makes with it off (method, url, body byte for byte, the same header lines),
 * and so is every outcome sr_adapter_parse_send reads from the same answers.
 * The common case must take the C path, the odd ones must decline to it, and
 * a custom adapter called "generic" is never replaced. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "rules/adapter.h"
#include "rules/adapter_generic.h"
#include "rules/bindings/bindings.h"
#include "unit.h"

static const char rules_src[] =
    "sms.config{ api_keys = { 'k' } }\n"
    "sms.provider('plain', { adapter = 'generic', url = 'http://127.0.0.1:9/send', api_key = 'key1',"
    " sender = 'Brand' })\n"
    "sms.provider('header', { adapter = 'generic', url = 'HTTPS://example.com/v1/sms?x=1', api_key = 'key2',"
    " auth_header = 'X-API-Key' })\n"
    "sms.provider('bare', { adapter = 'generic', url = 'http://example.com/send' })\n"
    "sms.provider('crlf', { adapter = 'generic', url = 'http://example.com/send', api_key = 'a\\nb' })\n"
    "sms.provider('number', { adapter = 'generic', url = 'http://example.com/send', sender = 12345 })\n"
    "sms.provider('badurl', { adapter = 'generic', url = 'ftp://example.com/send' })\n"
    "sms.provider('badheader', { adapter = 'generic', url = 'http://e.com/', api_key = 'k', auth_header = 'X Y' })\n"
    "sms.adapter('custom_generic', { batch_size = 1,\n"
    "  build_send = function(cfg, msgs) return { method = 'PUT', url = cfg.url, body = 'custom' } end,\n"
    "  parse_send = function(cfg, msgs, r) return { { ok = true, provider_id = 'custom' } } end })\n"
    "sms.provider('custom', { adapter = 'custom_generic', url = 'http://example.com/send' })\n";

typedef struct fixture {
    sr_config config;
    sr_rules *rules;
} fixture;

static void fixture_open(fixture *f) {
    char path[] = "/tmp/test_adapter_generic_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) UNIT_FAIL("mkstemp");
    if (write(fd, rules_src, sizeof rules_src - 1) != (ssize_t)(sizeof rules_src - 1)) UNIT_FAIL("write");
    close(fd);
    sr_config_init(&f->config);
    char err[512];
    int rc = sr_rules_load(&f->rules, path, &f->config, err, sizeof err);
    unlink(path);
    if (rc != 0) UNIT_FAIL("rules: %s", err);
}

static void fixture_close(fixture *f) {
    sr_rules_free(f->rules);
    sr_config_free(&f->config);
}

static const sr_provider *provider(fixture *f, const char *name) {
    for (int i = 0; i < f->rules->provider_count; i++)
        if (strcmp(f->rules->providers[i].name, name) == 0) return &f->rules->providers[i];
    UNIT_FAIL("no provider %s", name);
}

static void message(sr_message *m, const char *to, const char *from, const char *text) {
    sr_message_init(m);
    snprintf(m->id, sizeof m->id, "01JB8XQ2Z7M0000000000000AB");
    sr_message_set_str(&m->to, to);
    sr_message_set_str(&m->from, from);
    sr_message_set_str(&m->text, text);
}

static int header_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The request as one string: rc, method, url, the header lines sorted (a Lua table has no order), body. */
static void request_text(fixture *f, const sr_provider *p, sr_message *m, char *out, size_t outlen) {
    sr_message *msgs[1] = {m};
    sr_adapter_request rq;
    char err[300] = "";
    int rc = sr_adapter_build_send(f->rules, p, msgs, 1, &rq, NULL, err, sizeof err);
    if (rc != 0) {
        snprintf(out, outlen, "error: %s", err);
        return;
    }
    int n = 0;
    while (rq.headers && rq.headers[n]) n++;
    qsort(rq.headers, (size_t)n, sizeof *rq.headers, header_cmp);
    int len = snprintf(out, outlen, "%s %s\n", rq.method, rq.url);
    for (int i = 0; i < n; i++) len += snprintf(out + len, outlen - (size_t)len, "%s\n", rq.headers[i]);
    if (rq.body && strlen(rq.body) != rq.body_len) UNIT_FAIL("a NUL inside the body");
    snprintf(out + len, outlen - (size_t)len, "%s", rq.body ? rq.body : "(no body)");
    sr_adapter_request_free(&rq);
}

/* The request of p for m with the C path and with the Lua adapter: the same text; returns whether the
 * C path built it. */
static int same_request(fixture *f, const char *name, sr_message *m, char *out, size_t outlen) {
    const sr_provider *p = provider(f, name);
    char lua_text[4096];
    sr_generic_enable(0);
    request_text(f, p, m, lua_text, sizeof lua_text);
    sr_generic_enable(1);
    request_text(f, p, m, out, outlen);
    if (strcmp(out, lua_text) != 0) UNIT_FAIL("provider %s:\nC:\n%s\nLua:\n%s", name, out, lua_text);
    const sr_send_template *t = sr_generic_template(f->rules, (sr_provider *)p);
    return t && t->usable;
}

TEST(common_request_is_built_in_c_byte_for_byte) {
    fixture f;
    fixture_open(&f);
    sr_message m;
    message(&m, "+84912345678", NULL, "Your order 7 has shipped. Track it at example.com/t/7 \"now\" \\ ok");
    char text[4096];
    CHECK_INT(same_request(&f, "plain", &m, text, sizeof text), 1);
    CHECK_STR(text, "POST http://127.0.0.1:9/send\n"
                    "Accept: application/json\n"
                    "Authorization: Bearer key1\n"
                    "Content-Type: application/json\n"
                    "Idempotency-Key: 01JB8XQ2Z7M0000000000000AB\n"
                    "{\"to\":\"84912345678\",\"from\":\"Brand\",\"message\":\"Your order 7 has shipped. Track it at "
                    "example.com\\/t\\/7 \\\"now\\\" \\\\ ok\"}");
    CHECK_INT(same_request(&f, "header", &m, text, sizeof text), 1);
    CHECK(strstr(text, "X-API-Key: key2\n") != NULL);
    CHECK(strstr(text, "\"from\"") == NULL); /* no sender: left out */
    CHECK_INT(same_request(&f, "bare", &m, text, sizeof text), 1);
    CHECK(strstr(text, "Authorization") == NULL);
    sr_message_free(&m);
    fixture_close(&f);
}

TEST(every_byte_and_sender_is_encoded_as_cjson_does) {
    fixture f;
    fixture_open(&f);
    char all[256];
    for (int i = 1; i < 256; i++) all[i - 1] = (char)i;
    all[255] = '\0';
    const char *froms[] = {NULL, "", "Shop/\"1\"", "\x01\x7f\xc3\xa9"};
    for (int k = 0; k < 4; k++) {
        sr_message m;
        message(&m, k % 2 ? "84912345678" : "+84912345678", froms[k], all);
        char text[4096];
        CHECK_INT(same_request(&f, "plain", &m, text, sizeof text), 1);
        CHECK_INT(same_request(&f, "bare", &m, text, sizeof text), 1);
        sr_message_free(&m);
    }
    fixture_close(&f);
}

TEST(odd_options_and_custom_adapters_stay_in_lua) {
    fixture f;
    fixture_open(&f);
    sr_message m;
    message(&m, "+84912345678", "Shop", "hi");
    char text[4096];
    CHECK_INT(same_request(&f, "crlf", &m, text, sizeof text), 0); /* Lua drops the header: so does the result */
    CHECK(strstr(text, "Authorization") == NULL);
    sr_message_free(&m);
    message(&m, "+84912345678", NULL, "hi");
    CHECK_INT(same_request(&f, "number", &m, text, sizeof text), 0);
    CHECK(strstr(text, "\"from\":12345") != NULL);
    CHECK_INT(same_request(&f, "badurl", &m, text, sizeof text), 0);
    CHECK_STR(text, "error: provider badurl (generic): url must be an http(s) URL");
    CHECK_INT(same_request(&f, "badheader", &m, text, sizeof text), 0);
    CHECK(strncmp(text, "error: ", 7) == 0);
    CHECK(sr_generic_template(f.rules, (sr_provider *)provider(&f, "custom")) == NULL);
    request_text(&f, provider(&f, "custom"), &m, text, sizeof text);
    CHECK_STR(text, "PUT http://example.com/send\ncustom");
    sr_message_free(&m);
    fixture_close(&f);
}

/* The outcome of an answer as text. */
static void outcome_text(fixture *f, const char *name, int status, const char *body, char *out, size_t outlen) {
    sr_message m;
    message(&m, "+84912345678", NULL, "hi");
    sr_message *msgs[1] = {&m};
    sr_adapter_outcome o;
    memset(&o, 0, sizeof o);
    char err[300] = "";
    int rc = sr_adapter_parse_send(f->rules, provider(f, name), msgs, 1, LUA_NOREF, status, body, strlen(body), NULL, 0,
                                   &o, err, sizeof err);
    snprintf(out, outlen, "rc=%d ok=%d retry=%d provider=%d id=%s error=%s after=%g parts=%d err=%s", rc, o.ok, o.retry,
             o.about_provider, o.provider_id, o.error, o.retry_after_s, o.parts, rc ? err : "");
    sr_message_free(&m);
}

TEST(answers_read_the_same_in_c_and_lua) {
    fixture f;
    fixture_open(&f);
    char long_id[300];
    snprintf(long_id, sizeof long_id, "{\"message_id\":\"%0200d\"}", 7);
    const struct {
        int status;
        const char *body;
        int fast;
    } cases[] = {
        {200, "{\"message_id\":\"9f1c\",\"status\":\"accepted\"}", 1},
        {201, " {\"id\": 5, \"message_id\" : \"a/b\xc3\xa9\", \"x\": [1, {\"y\": null}, 2.5e3]} ", 1},
        {200, long_id, 1},
        {200, "{\"message_id\":\"a\\u00e9\"}", 0},
        {200, "{\"message_id\":\"x\",\"message_id\":\"y\"}", 0},
        {200, "{\"message_id\":123}", 0},
        {200, "{\"message_id\":12345678901234567890}", 0},
        {200, "{\"message_id\":\"\",\"id\":\"z\"}", 0},
        {200, "{\"id\":\"z\"}", 0},
        {200, "[{\"message_id\":\"x\"}]", 0},
        {200, "not json", 0},
        {200, "", 0},
        {500, "{\"message_id\":\"x\"}", 0},
        {429, "{\"error\":\"slow down\"}", 0},
        {400, "{\"message_id\":\"x\",\"error\":\"bad number\"}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char c_text[600], lua_text[600];
        sr_generic_enable(0);
        outcome_text(&f, "plain", cases[i].status, cases[i].body, lua_text, sizeof lua_text);
        sr_generic_enable(1);
        outcome_text(&f, "plain", cases[i].status, cases[i].body, c_text, sizeof c_text);
        if (strcmp(c_text, lua_text) != 0) UNIT_FAIL("case %zu:\nC:   %s\nLua: %s", i, c_text, lua_text);
        char id[128];
        int fast = sr_generic_provider_id(cases[i].status, cases[i].body, strlen(cases[i].body), id, sizeof id);
        if (fast != cases[i].fast) UNIT_FAIL("case %zu: C path %d, expected %d (%s)", i, fast, cases[i].fast, c_text);
    }
    fixture_close(&f);
}
