/* Unit tests for rules/webhook_generic.c: the generic adapter's verify and parse_status in C.
 *
 * Each webhook goes through sr_webhook_verify / sr_webhook_parse_status twice, in a real rules state
 * (sr_rules_load of a rules file with a mock and a generic provider): once as the daemon runs it (the C
 * reading the webhooks it can), once with the C switched off (the Lua of lua/adapters/generic.lua). What the
 * core gets must be the same to the byte: the reports, the answer, the error. The shapes the C is meant to
 * read are also checked to be read by it, not handed to the Lua, and a few reports are spelled out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/crypto.h"
#include "core/config.h"
#include "core/log.h"
#include "rules/adapter.h"
#include "rules/bindings/bindings.h"
#include "rules/rules.h"
#include "rules/webhook_generic.h"
#include "unit.h"

#define SECRET "s3cret-key"

typedef struct wg_env {
    sr_config config;
    sr_rules *r;
    sr_provider *mock, *generic;
    char path[64];
} wg_env;

static void wg_open(wg_env *e) {
    /* The Lua's refusals are logged as rule errors: expected here. */
    sr_log_set_level(SR_LOG_ERROR);
    snprintf(e->path, sizeof e->path, "/tmp/test_webhook_generic_%d.lua", (int)getpid());
    FILE *f = fopen(e->path, "w");
    if (!f) UNIT_FAIL("cannot write %s", e->path);
    fputs("sms.provider('m', { adapter = 'mock', url = 'http://127.0.0.1:9/batch' })\n"
          "sms.provider('g', { adapter = 'generic', url = 'http://127.0.0.1:9/send', webhook_secret = '" SECRET "' })\n"
          "sms.provider('n', { adapter = 'generic', url = 'http://127.0.0.1:9/send', webhook_secret = 7 })\n",
          f);
    fclose(f);
    sr_config_init(&e->config);
    char err[512];
    if (sr_rules_load(&e->r, e->path, &e->config, err, sizeof err) != 0) UNIT_FAIL("rules: %s", err);
    e->mock = sr_rules_provider(e->r, "m");
    e->generic = sr_rules_provider(e->r, "g");
    CHECK(e->mock && e->generic && e->mock->native_webhooks && e->generic->native_webhooks);
    /* A secret that is not a string is the Lua's to refuse. */
    CHECK(!sr_rules_provider(e->r, "n")->native_webhooks);
}

static void wg_close(wg_env *e) {
    sr_rules_free(e->r);
    sr_config_free(&e->config);
    unlink(e->path);
}

static sr_webhook_request wg_request(const char *body, sr_adapter_header *h, int hc) {
    sr_webhook_request rq = {
        "POST", "http://127.0.0.1/hooks/m/status", "/hooks/m/status", "", h, hc, body, body ? strlen(body) : 0, NULL};
    return rq;
}

typedef struct wg_result {
    int rc, n;
    sr_report *reps;
    sr_webhook_answer ans;
    char err[400];
} wg_result;

static void wg_parse(wg_env *e, sr_provider *p, int native, const sr_webhook_request *rq, wg_result *out) {
    memset(out, 0, sizeof *out);
    int saved = p->native_webhooks;
    p->native_webhooks = native;
    out->rc = sr_webhook_parse_status(e->r, p, rq, &out->reps, &out->n, &out->ans, out->err, sizeof out->err);
    p->native_webhooks = saved;
}

static void wg_result_free(wg_result *w) {
    free(w->reps);
    sr_webhook_answer_free(&w->ans);
}

/* Parses body (content type ct, NULL: none) both ways and checks the results are the same. Returns whether
 * the C read it itself. */
static int wg_same(wg_env *e, const char *body, const char *ct) {
    sr_adapter_header h[2] = {{"Host", "127.0.0.1"}, {"Content-Type", ct}};
    sr_webhook_request rq = wg_request(body, h, ct ? 2 : 1);
    wg_result c, lua;
    wg_parse(e, e->mock, 1, &rq, &c);
    wg_parse(e, e->mock, 0, &rq, &lua);
    CHECK_INT(c.rc, lua.rc);
    CHECK_INT(c.n, lua.n);
    CHECK_STR(c.err, lua.err);
    if (c.n == lua.n && c.n > 0 && memcmp(c.reps, lua.reps, (size_t)c.n * sizeof *c.reps) != 0)
        UNIT_FAIL("reports differ for %s: C %s/%s/%d/%s/%s/%lld, Lua %s/%s/%d/%s/%s/%lld", body, c.reps[0].provider_id,
                  c.reps[0].message_id, c.reps[0].status, c.reps[0].raw_status, c.reps[0].error,
                  (long long)c.reps[0].at_ms, lua.reps[0].provider_id, lua.reps[0].message_id, lua.reps[0].status,
                  lua.reps[0].raw_status, lua.reps[0].error, (long long)lua.reps[0].at_ms);
    CHECK_INT(c.ans.status, lua.ans.status);
    CHECK_STR(c.ans.body ? c.ans.body : "", lua.ans.body ? lua.ans.body : "");
    for (int i = 0; c.ans.headers && lua.ans.headers && (c.ans.headers[i] || lua.ans.headers[i]); i++)
        CHECK_STR(c.ans.headers[i] ? c.ans.headers[i] : "(none)", lua.ans.headers[i] ? lua.ans.headers[i] : "(none)");
    wg_result_free(&c);
    wg_result_free(&lua);
    sr_report *reps = NULL;
    int n = 0;
    sr_webhook_answer ans;
    memset(&ans, 0, sizeof ans);
    int mine = sr_webhook_generic_status(&rq, &reps, &n, &ans) == 0;
    free(reps);
    if (mine) sr_webhook_answer_free(&ans);
    return mine;
}

#define JSON "application/json"

TEST(flat_json_reports_are_read_in_c_as_the_lua_reads_them) {
    wg_env e;
    wg_open(&e);
    static const char *const bodies[] = {
        "{\"message_id\":\"m1\",\"status\":\"DELIVRD\",\"timestamp\":\"2026-11-23T10:00:00Z\"}",
        " {\n\t\"id\" : \"x-1\" , \"stat\":\"undeliv\",\"err\":\" 000 \",\"done_date\":\"2025-01-23 "
        "10:30:00.250+02:00\","
        "\"price\":1.5e2,\"ok\":true,\"no\":false,\"n\":null,\"neg\":-0.5E-3} \r\n",
        "{\"client_ref\":\"01ABCDEFGHJKMNPQRSTVWXYZ00\",\"status\":\"ACCEPTD\"}",
        "{\"msgid\":\"7\",\"dlrstatus\":\"REJECTD\",\"error\":\"  0x  \",\"timestamp\":\"2025-01-23t10:30:00 UTC\"}",
        "{\"message_id\":\"\",\"msgid\":\"m9\",\"status\":\"\",\"stat\":\"sent\",\"done_date\":\"\","
        "\"timestamp\":\"20150525154559\"}",
        "{\"message_id\":\"m2\",\"status\":\"weird\",\"timestamp\":\"2025-01-23T10:30:00-0530\"}",
        "{\"message_id\":\"m3\",\"status\":\"Delivered\",\"timestamp\":\"1969-12-31T23:59:59Z\"}",
        "{\"message_id\":\"m4\",\"status\":\"2\",\"timestamp\":\"2000-02-29T00:00:00.5+05\",\"reference\":\"r\"}",
        "{\"message_id\":\"m5\",\"status\":\"enroute\",\"error\":\"0\",\"err\":\"late\",\"x\":\"\"}",
        "{\"message_id\":\"m6\",\"status\":\"expired\",\"timestamp\":\"  0000-01-01T00:00:00GMT  \"}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) CHECK(wg_same(&e, bodies[i], JSON));
    /* No content type, or a text one: a body that opens with '{' is JSON all the same. */
    CHECK(wg_same(&e, bodies[0], NULL));
    CHECK(wg_same(&e, bodies[0], "text/plain"));
    /* Ids and texts longer than the core keeps are cut the same way. */
    char body[1400], id[300];
    memset(id, 'a', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    snprintf(body, sizeof body, "{\"message_id\":\"%s\",\"status\":\"%s\",\"error\":\"%s%s\"}", id, id, id, id);
    CHECK(wg_same(&e, body, JSON));
    wg_close(&e);
}

TEST(other_webhooks_are_left_to_the_lua) {
    wg_env e;
    wg_open(&e);
    static const char *const bodies[] = {
        "{\"message_id\":12345,\"status\":\"DELIVRD\"}",                /* a number id */
        "{\"message_id\":12345678901234567890,\"status\":\"DELIVRD\"}", /* one that lost digits */
        "{\"message_id\":null,\"id\":\"1\",\"status\":\"DELIVRD\"}",
        "[{\"message_id\":\"m1\",\"status\":\"DELIVRD\"}]",
        "{\"message_id\":\"m\\u0031\",\"status\":\"DELIVRD\"}",
        "{\"message_id\":\"m\xc3\xa9\",\"status\":\"DELIVRD\"}",
        "{\"message_id\":\"m1\",\"status\":\"DELIVRD\",\"meta\":{\"a\":1}}",
        "{\"message_id\":\"m1\",\"status\":\"DELIVRD\",\"status\":\"UNDELIV\"}",
        "{\"message_id\":\"m1\",\"status\":\"DELIVRD\",\"part\":\"1\",\"parts\":\"2\"}",
        "{\"message_id\":\"m1\",\"status\":\"DELIVRD\",\"part_number\":\"\"}",
        "{\"message_id\":\"m1\"}",
        "{\"status\":\"DELIVRD\"}",
        "{}",
        "{\"message_id\":\"m1\",\"status\":\"DELIVRD\"} x",
        "{\"message_id\":\"m1\",\"status\":\"DELIVRD\",}",
        "{\"message_id\":\"m1\",\"status\":\"DELIVRD\",\"n\":01}",
        "{\"message_id\":\"m1\",\"status\":\"DELIVRD\",\"n\":.5}",
        "\v{\"message_id\":\"m1\",\"status\":\"DELIVRD\"}",
        "{\"message_id\":\"m1\",\"status\":\"DELIVRD\",\"timestamp\":\"1700000000\"}",
        "{\"message_id\":\"m1\",\"status\":\"DELIVRD\",\"timestamp\":\"2025-13-01T00:00:00Z\"}",
        "{\"message_id\":\"m1\",\"status\":\"DELIVRD\",\"done_date\":\"2025-01-01T00:00:00+24:00\","
        "\"timestamp\":\"2025-01-01T00:00:00Z\"}",
        "{\"message_id\":\"m1\",\"status\":\"DELIVRD\",\"timestamp\":\"   \"}",
        "message_id=m1&status=DELIVRD",
        "",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) CHECK(!wg_same(&e, bodies[i], JSON));
    /* A form is read from the parsed fields: the Lua's, whatever the body looks like. */
    CHECK(!wg_same(&e, "{\"message_id\":\"m1\",\"status\":\"DELIVRD\"}", "application/x-www-form-urlencoded"));
    CHECK(!wg_same(&e, "message_id=m1&status=DELIVRD", "Application/X-WWW-Form-Urlencoded; charset=utf-8"));
    wg_close(&e);
}

TEST(a_report_read_in_c_says_what_the_provider_sent) {
    sr_adapter_header h[1] = {{"content-type", JSON}};
    sr_webhook_request rq = wg_request(
        "{\"message_id\":\"m1\",\"status\":\"UNDELIV\",\"err\":\"E12\",\"timestamp\":\"2026-11-23T10:00:00+01:00\"}", h,
        1);
    sr_report *reps = NULL;
    int n = 0;
    sr_webhook_answer ans;
    CHECK_INT(sr_webhook_generic_status(&rq, &reps, &n, &ans), 0);
    CHECK_INT(n, 1);
    CHECK_STR(reps[0].provider_id, "m1");
    CHECK_STR(reps[0].message_id, "");
    CHECK_INT(reps[0].status, SR_ST_UNDELIVERED);
    CHECK_STR(reps[0].raw_status, "UNDELIV");
    CHECK_STR(reps[0].error, "E12");
    CHECK(reps[0].at_ms == 1795424400000LL); /* 2026-11-23T09:00:00Z */
    CHECK_INT(reps[0].part, 0);
    CHECK_INT(ans.status, 200);
    CHECK_STR(ans.body, "{\"status\":\"ok\"}");
    CHECK_STR(ans.headers[0], "Content-Type: application/json");
    CHECK(ans.headers[1] == NULL);
    free(reps);
    sr_webhook_answer_free(&ans);
}

/* verify both ways: the same verdict and reason. */
static void wg_verify_same(wg_env *e, sr_provider *p, const char *sig, int expected) {
    sr_adapter_header h[3] = {{"Content-Type", JSON}, {"X-Signature", "not this one"}, {"x-signature", sig}};
    sr_webhook_request rq = wg_request("{\"message_id\":\"m1\",\"status\":\"DELIVRD\"}", h, sig ? 3 : 1);
    char c_reason[200] = "", lua_reason[200] = "";
    int c = sr_webhook_verify(e->r, p, &rq, c_reason, sizeof c_reason);
    p->native_webhooks = 0;
    int lua = sr_webhook_verify(e->r, p, &rq, lua_reason, sizeof lua_reason);
    p->native_webhooks = 1;
    CHECK_INT(c, expected);
    CHECK_INT(lua, expected);
    CHECK_STR(c_reason, lua_reason);
}

TEST(signatures_are_checked_in_c_as_the_lua_checks_them) {
    wg_env e;
    wg_open(&e);
    const char *body = "{\"message_id\":\"m1\",\"status\":\"DELIVRD\"}";
    unsigned char mac[SR_CRYPTO_SHA256_LEN];
    char hex[2 * SR_CRYPTO_SHA256_LEN + 1], spaced[100];
    sr_crypto_hmac(SR_CRYPTO_SHA256, SECRET, strlen(SECRET), body, strlen(body), mac);
    sr_crypto_hex(hex, mac, sizeof mac);
    wg_verify_same(&e, e.generic, hex, 1);
    for (char *c = hex; *c; c++)
        if (*c >= 'a' && *c <= 'f') *c = (char)(*c - 32);
    snprintf(spaced, sizeof spaced, "  %s \t", hex);
    wg_verify_same(&e, e.generic, spaced, 1); /* upper case, spaces around */
    hex[0] = hex[0] == '0' ? '1' : '0';
    wg_verify_same(&e, e.generic, hex, 0);
    wg_verify_same(&e, e.generic, "abc", 0);
    wg_verify_same(&e, e.generic, "   ", 0);
    wg_verify_same(&e, e.generic, NULL, 0);
    /* Without a secret every webhook passes. */
    wg_verify_same(&e, e.mock, NULL, 1);
    wg_close(&e);
}

/* ---- inbound messages ---- */

typedef struct wg_inbound {
    int rc, n;
    sr_inbound_sms *msgs;
    sr_webhook_answer ans;
    char err[400];
} wg_inbound;

static void wg_parse_inbound(wg_env *e, int native, const sr_webhook_request *rq, wg_inbound *out) {
    memset(out, 0, sizeof *out);
    int saved = e->mock->native_webhooks;
    e->mock->native_webhooks = native;
    out->rc = sr_webhook_parse_inbound(e->r, e->mock, rq, &out->msgs, &out->n, &out->ans, out->err, sizeof out->err);
    e->mock->native_webhooks = saved;
}

static void wg_inbound_free(wg_inbound *w) {
    sr_inbound_sms_free(w->msgs, w->n);
    sr_webhook_answer_free(&w->ans);
}

/* Whether what the core gets is the same to the byte (messages, answer, error); says what differs. */
static int wg_inbound_equal(const wg_inbound *a, const wg_inbound *b, const char *body) {
    const char *what = NULL;
    if (a->rc != b->rc || a->n != b->n || strcmp(a->err, b->err) != 0) what = "rc, count or error";
    for (int i = 0; !what && i < a->n; i++) {
        const sr_inbound_sms *x = &a->msgs[i], *y = &b->msgs[i];
        if (strcmp(x->provider_message_id, y->provider_message_id) != 0) what = "provider_message_id";
        else if (strcmp(x->from, y->from) != 0 || strcmp(x->to, y->to) != 0)
            what = "from or to";
        else if (x->text_len != y->text_len || memcmp(x->text, y->text, x->text_len + 1) != 0)
            what = "text";
        else if (x->at_ms != y->at_ms)
            what = "at";
    }
    if (!what && (a->ans.status != b->ans.status || a->ans.body_len != b->ans.body_len ||
                  (a->ans.body_len && memcmp(a->ans.body, b->ans.body, a->ans.body_len) != 0)))
        what = "answer";
    for (int i = 0; !what && a->ans.headers && b->ans.headers && (a->ans.headers[i] || b->ans.headers[i]); i++)
        if (!a->ans.headers[i] || !b->ans.headers[i] || strcmp(a->ans.headers[i], b->ans.headers[i]) != 0)
            what = "answer headers";
    if (what) fprintf(stderr, "  inbound %s differs for %s\n", what, body);
    return what == NULL;
}

/* Parses an inbound body both ways and checks the results are the same; returns whether the C read it. */
static int wg_inbound_same(wg_env *e, const char *body, const char *ct) {
    sr_adapter_header h[2] = {{"Host", "127.0.0.1"}, {"Content-Type", ct}};
    sr_webhook_request rq = wg_request(body, h, ct ? 2 : 1);
    wg_inbound c, lua;
    wg_parse_inbound(e, 1, &rq, &c);
    wg_parse_inbound(e, 0, &rq, &lua);
    CHECK(wg_inbound_equal(&c, &lua, body));
    wg_inbound_free(&c);
    wg_inbound_free(&lua);
    sr_inbound_sms *msgs = NULL;
    int n = 0;
    sr_webhook_answer ans;
    memset(&ans, 0, sizeof ans);
    int mine = sr_webhook_generic_inbound(&rq, &msgs, &n, &ans) == 0;
    if (mine) {
        sr_inbound_sms_free(msgs, n);
        sr_webhook_answer_free(&ans);
    }
    return mine;
}

#define INBOUND(rest) "{\"from\":\"+84912345678\",\"to\":\"+84900000001\"," rest "}"

TEST(flat_json_inbound_messages_are_read_in_c_as_the_lua_reads_them) {
    wg_env e;
    wg_open(&e);
    static const char *const bodies[] = {
        "{\"message_id\":\"in-1-1\",\"from\":\"+84900000017\",\"to\":\"+84900000001\","
        "\"text\":\"Hello, is my order 1 on its way?\",\"timestamp\":\"2026-11-23T10:00:00Z\"}",
        INBOUND("\"text\":\"a\\nb \\\"q\\\" \\\\ \\/ \\t\\b\\f\\r end\""),
        INBOUND(
            "\"text\":\"Xin ch\\u00e0o \\u4E2D\\u6587 \\ud83d\\ude00 caf\\u00E9 \\u007f\\u0080\\u07ff\\u0800\\uffff\""),
        "{\"from\":\"Nguy\xe1\xbb\x85n\",\"text\":\"Xin ch\xc3\xa0o \xf0\x9f\x98\x80\",\"to\":\"\xff\xfe\"}",
        "{\"from\":\"\",\"sender\":\"Brand\",\"message\":\"hi\",\"recipient\":\"123\",\"msgid\":\"\",\"id\":\"7\"}",
        "{\"msisdn\":\"84912345678\",\"body\":\"b\",\"to\":\"\",\"recipient\":\"r\"}",
        INBOUND("\"text\":\"\",\"message\":\"not this one\""),
        " {\n\t\"from\" : \"+1\" , \"text\":\"t\",\"price\":1.5e2,\"ok\":true,\"no\":false,\"n\":null,\"neg\":-0.5E-3,"
        "\"other\":\"\\u00e9\\n\"} \r\n",
        INBOUND("\"text\":\"t\",\"timestamp\":\"1700000000\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\" 1700000000.9 \""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"12.\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"0\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"0.5\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\".5\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"1.2.3\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"9007199254740991\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"9007199254740992\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"9007199254740991.9\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"00000000000000000000000000000001700000000\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"0000000000000000000000000000001700000000\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"2025-13-01T00:00:00Z\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"2025-01-23 10:30:00.250+02:00\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"2000-02-29T00:00:00.5+05\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"1969-12-31T23:59:59Z\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"20150525154559\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"\\u0032\\u00300150525154559\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"2025-01-01T00:00:00+24:00\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"abc\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"\""),
        INBOUND("\"text\":\"t\",\"timestamp\":\"   \""),
        INBOUND("\"text\":\"t\",\"done_date\":\"2025-01-01T00:00:00Z\""),
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        if (!wg_inbound_same(&e, bodies[i], JSON)) UNIT_FAIL("not read in C: %s", bodies[i]);
    CHECK(wg_inbound_same(&e, bodies[0], NULL));
    CHECK(wg_inbound_same(&e, bodies[0], "text/plain"));
    /* Fields longer than the core keeps are cut the same way (a UTF-8 character may be cut: the same one);
     * texts are kept whole. */
    static char body[12000], id[300], text[8001];
    static const unsigned char e_acute_a[] = {0xc3, 0xa9, 'a'};
    for (size_t i = 0; i + 1 < sizeof id; i++) id[i] = (char)e_acute_a[i % 3];
    id[sizeof id - 1] = '\0';
    for (size_t i = 0; i + 1 < sizeof text; i++) text[i] = "ab\\n\\u00e9"[i % 10];
    text[sizeof text - 1] = '\0';
    snprintf(body, sizeof body, "{\"message_id\":\"%s\",\"from\":\"%s\",\"to\":\"%s\",\"text\":\"%s\"}", id, id, id,
             text);
    CHECK(wg_inbound_same(&e, body, JSON));
    wg_close(&e);
}

TEST(other_inbound_webhooks_are_left_to_the_lua) {
    wg_env e;
    wg_open(&e);
    static const char *const bodies[] = {
        "{\"from\":84912345678,\"text\":\"x\"}", /* a number sender */
        "{\"from\":\"+1\",\"text\":12.5}",       /* a number text */
        "{\"from\":\"+1\",\"text\":\"x\",\"message_id\":12345678901234567890}",
        "{\"from\":\"+1\",\"text\":\"x\",\"timestamp\":1700000000}",
        "{\"from\":null,\"sender\":\"s\",\"text\":\"x\"}",
        "{\"text\":\"x\"}",  /* no sender: the Lua's error */
        "{\"from\":\"+1\"}", /* no text */
        "{\"from\":\"\",\"text\":\"x\"}",
        "{}",
        "[{\"from\":\"+1\",\"text\":\"x\"}]",
        "{\"from\":\"+1\",\"text\":\"x\",\"text\":\"y\"}",
        "{\"from\":\"+1\",\"text\":\"x\",\"meta\":{\"a\":1}}",
        "{\"fr\\u006fm\":\"+1\",\"text\":\"x\"}",   /* a key spelled with an escape */
        "{\"from\":\"+1\",\"text\":\"a\\u0000b\"}", /* NUL: the core's strings end there */
        "{\"from\":\"+1\",\"text\":\"\\ud83d\"}",   /* a lone surrogate: cjson refuses */
        "{\"from\":\"+1\",\"text\":\"\\ud83dx\\ude00\"}",
        "{\"from\":\"+1\",\"text\":\"\\ude00\"}",
        "{\"from\":\"+1\",\"text\":\"\\u12g4\"}",
        "{\"from\":\"+1\",\"text\":\"x\",\"other\":\"\\q\"}", /* a bad escape anywhere: cjson refuses */
        "{\"from\":\"+1\",\"text\":\"a\x01"
        "b\"}", /* a control byte */
        "{\"from\":\"+1\",\"text\":\"x\"} x",
        "{\"from\":\"+1\",\"text\":\"x\",}",
        "{\"from\":\"+1\",\"text\":\"x\"",
        "{\"from\":\"+1\",\"text\":\"x\\",
        "\v{\"from\":\"+1\",\"text\":\"x\"}",
        "from=%2B1&text=x",
        "",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        if (wg_inbound_same(&e, bodies[i], JSON)) UNIT_FAIL("read in C: %s", bodies[i]);
    CHECK(!wg_inbound_same(&e, "{\"from\":\"+1\",\"text\":\"x\"}", "application/x-www-form-urlencoded"));
    wg_close(&e);
}

TEST(an_inbound_message_read_in_c_says_what_the_provider_sent) {
    sr_adapter_header h[1] = {{"content-type", JSON}};
    sr_webhook_request rq =
        wg_request("{\"message_id\":\"in-1\",\"from\":\"+84912345678\",\"to\":\"+84900000001\",\"text\":\"Ch\\u00e0o\\n"
                   "\xf0\x9f\x98\x80\",\"timestamp\":\"2026-11-23T10:00:00+01:00\"}",
                   h, 1);
    sr_inbound_sms *msgs = NULL;
    int n = 0;
    sr_webhook_answer ans;
    CHECK_INT(sr_webhook_generic_inbound(&rq, &msgs, &n, &ans), 0);
    CHECK_INT(n, 1);
    CHECK_STR(msgs[0].provider_message_id, "in-1");
    CHECK_STR(msgs[0].from, "+84912345678");
    CHECK_STR(msgs[0].to, "+84900000001");
    CHECK_STR(msgs[0].text, "Ch\xc3\xa0o\n\xf0\x9f\x98\x80");
    CHECK(msgs[0].text_len == 10);
    CHECK(msgs[0].at_ms == 1795424400000LL); /* 2026-11-23T09:00:00Z */
    CHECK_INT(ans.status, 200);
    CHECK_STR(ans.body, "{\"status\":\"ok\"}");
    sr_inbound_sms_free(msgs, n);
    sr_webhook_answer_free(&ans);
}

/* The comparison catches a C reading that is off by one thing: each field of the C's message changed in
 * turn must make it differ from the Lua's. */
TEST(the_inbound_comparison_fails_when_the_c_reads_differently) {
    wg_env e;
    wg_open(&e);
    const char *body = "{\"message_id\":\"in-1\",\"from\":\"+1\",\"to\":\"+2\",\"text\":\"caf\\u00e9\","
                       "\"timestamp\":\"2026-11-23T10:00:00Z\"}";
    sr_adapter_header h[1] = {{"Content-Type", JSON}};
    sr_webhook_request rq = wg_request(body, h, 1);
    wg_inbound c, lua;
    wg_parse_inbound(&e, 0, &rq, &lua);
    for (int k = 0; k < 7; k++) {
        wg_parse_inbound(&e, 1, &rq, &c);
        CHECK(wg_inbound_equal(&c, &lua, body));
        sr_inbound_sms *m = &c.msgs[0];
        switch (k) {
        case 0: m->provider_message_id[0] = 'x'; break;
        case 1: m->from[1] = '9'; break;
        case 2: m->to[0] = '\0'; break;
        case 3: m->text[4] = '\0'; break; /* the second byte of é */
        case 4: m->text_len--; break;
        case 5: m->at_ms += 1000; break;
        default: c.ans.status = 204; break;
        }
        fprintf(stderr, "  (a difference is expected next)\n");
        CHECK(!wg_inbound_equal(&c, &lua, body));
        wg_inbound_free(&c);
    }
    wg_inbound_free(&lua);
    wg_close(&e);
}
