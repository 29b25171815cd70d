/* Fuzz target for the webhook parsers of every built-in adapter, through the
 * C entry points the daemon uses (src/rules/adapter.c: sr_adapter_verify,
 * sr_adapter_parse_status, sr_adapter_parse_inbound), so it follows whatever
 * those do around the Lua call (protection, budgets). One rules state,
 * loaded once, declares a provider per adapter that has webhooks (with and
 * without a signing secret, so parsing is reached either way).
 *
 * An input is one webhook request:
 *   content-type \n query \n headers \n body
 * where headers is "name: value" items separated by '\r' (the body is the
 * rest, any bytes). Every provider gets it three times: verify, parse_status
 * and parse_inbound, whatever the verdict. Checked: no crash, no sanitizer
 * report, the Lua stack left as it was, results within their bounds; and,
 * with libFuzzer's -timeout, no input that takes seconds (pattern
 * backtracking was quadratic; tests/e2e/test_webhook_cost.py times the
 * known worst cases at the full size limit). Seeds: the documented payloads
 * of tests/unit/test_adapters*.c.
 *
 * The adapters are Lua, which libFuzzer's instrumentation does not see (the
 * interpreter is the system's): a line hook counts the Lua lines run into
 * libFuzzer's extra counters, so inputs that reach new adapter code are kept.
 * (Should the core install its own hook around adapter calls, that feedback
 * is lost there, and the target fuzzes blind but still checks.) */
#include <lua.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rules/adapter.h"
#include "core/config.h"
#include "core/log.h"
#include "delivery/reports.h"
#include "rules/rules.h"
#include "rules/webhook_generic.h"
#include "rules/bindings/bindings.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_HEADERS 16

static const char fuzz_rules[] =
    "sms.config{ public_url = 'https://sms.example.com' }\n"
    "sms.provider('generic', { adapter = 'generic', url = 'http://127.0.0.1:9/send', webhook_secret = 'whsec' })\n"
    "sms.provider('generic0', { adapter = 'generic', url = 'http://127.0.0.1:9/send' })\n"
    "sms.provider('mock', { adapter = 'mock', url = 'http://127.0.0.1:9/send' })\n"
    "sms.provider('agile', { adapter = 'agiletelecom', api_key = 'k', utc_offset = '+01:00' })\n"
    "sms.provider('smsbat', { adapter = 'smsbat', api_key = 'k' })\n"
    "sms.provider('devino', { adapter = 'devino', api_key = 'k' })\n"
    "sms.provider('smsc', { adapter = 'smsc', login = 'l', password = 'p' })\n"
    "sms.provider('twilio', { adapter = 'twilio', account_sid = 'AC1', auth_token = '12345' })\n"
    "sms.provider('vonage', { adapter = 'vonage', api_key = 'k', api_secret = 's', signature_secret = 'sec' })\n"
    "sms.provider('vonage0', { adapter = 'vonage', api_key = 'k', api_secret = 's' })\n";

static const char *const fuzz_providers[] = {"generic", "generic0", "mock",   "agile",  "smsbat",
                                             "devino",  "smsc",     "twilio", "vonage", "vonage0"};
#define FUZZ_PROVIDERS (sizeof fuzz_providers / sizeof fuzz_providers[0])

/* Lua line coverage: one counter per (chunk, line) hash; libFuzzer reads the section. */
#define FUZZ_LUA_COUNTERS (1 << 14)
__attribute__((section("__libfuzzer_extra_counters"))) static uint8_t fuzz_lua_counters[FUZZ_LUA_COUNTERS];

static void fuzz_line_hook(lua_State *L, lua_Debug *ar) {
    if (!lua_getinfo(L, "S", ar)) return;
    /* The source string of a chunk is one interned object: its address names the chunk. */
    uintptr_t h = ((uintptr_t)ar->source >> 4) * 2654435761u + (uintptr_t)ar->currentline * 40503u;
    uint8_t *c = &fuzz_lua_counters[h % FUZZ_LUA_COUNTERS];
    if (*c < 255) (*c)++;
}

static sr_config fuzz_config;
static sr_rules *fuzz_rules_state;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    /* Adapters raise on most fuzzed bodies; each raise would log a warning. */
    sr_log_set_level(SR_LOG_ERROR);
    char path[] = "/tmp/smsrules-fuzz-webhooks-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, fuzz_rules, sizeof fuzz_rules - 1) != (ssize_t)(sizeof fuzz_rules - 1)) abort();
    close(fd);
    sr_config_init(&fuzz_config);
    char err[400];
    int rc = sr_rules_load(&fuzz_rules_state, path, &fuzz_config, err, sizeof err);
    unlink(path);
    if (rc != 0) {
        fprintf(stderr, "fuzz_webhooks: rules: %s\n", err);
        abort();
    }
    for (size_t i = 0; i < FUZZ_PROVIDERS; i++)
        if (!sr_rules_provider(fuzz_rules_state, fuzz_providers[i])) abort();
    lua_sethook(fuzz_rules_state->L, fuzz_line_hook, LUA_MASKLINE, 0);
    return 0;
}

/* The next line of [*p, end) as a NUL-terminated copy (the caller frees); *p moves past its '\n'. */
static char *fuzz_line(const char **p, const char *end) {
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *stop = nl ? nl : end;
    size_t len = (size_t)(stop - *p);
    char *s = malloc(len + 1);
    if (!s) abort();
    memcpy(s, *p, len);
    s[len] = '\0';
    *p = nl ? nl + 1 : end;
    return s;
}

static void fuzz_check_answer(const sr_webhook_answer *a) {
    if (a->status < 200 || a->status > 599) abort();
    if (a->body_len && !a->body) abort();
    if (!a->headers) abort();
}

static int fuzz_same_answer(const sr_webhook_answer *a, const sr_webhook_answer *b) {
    if (a->status != b->status || a->body_len != b->body_len) return 0;
    if (a->body_len && memcmp(a->body, b->body, a->body_len) != 0) return 0;
    for (int i = 0; a->headers[i] || b->headers[i]; i++)
        if (!a->headers[i] || !b->headers[i] || strcmp(a->headers[i], b->headers[i]) != 0) return 0;
    return 1;
}

static void fuzz_check_reports(const sr_report *reps, int n) {
    if (n < 0 || (n > 0 && !reps)) abort();
    for (int k = 0; k < n; k++) {
        if (!reps[k].provider_id[0] && !reps[k].message_id[0]) abort();
        /* A part the adapter could not read is SR_REPORT_PART_INVALID, for the report engine to
         * refuse; what the engine takes has its parts within a message's. */
        if (reps[k].part < SR_REPORT_PART_INVALID || reps[k].parts < SR_REPORT_PART_INVALID) abort();
        char why[160];
        if (sr_reports_check(&reps[k], why, sizeof why) == 0 &&
            (reps[k].part < 0 || reps[k].part > 255 || reps[k].parts < 0 || reps[k].parts > 255))
            abort();
        if (reps[k].at_ms < 0) abort();
    }
}

/* A status webhook as the daemon reads it (sr_webhook_parse_status: in C when the adapter is the built-in
 * generic or mock one and the webhook has the usual shape). When C read it, the Lua must give the same. */
static void fuzz_status(sr_provider *prov, const sr_webhook_request *rq) {
    char err[400];
    sr_report *reps = NULL;
    int n = 0;
    sr_webhook_answer ans;
    if (sr_webhook_parse_status(fuzz_rules_state, prov, rq, &reps, &n, &ans, err, sizeof err) != 0) return;
    fuzz_check_reports(reps, n);
    fuzz_check_answer(&ans);
    sr_webhook_answer_free(&ans);
    free(reps);
    if (!prov->native_webhooks || sr_webhook_generic_status(rq, &reps, &n, &ans) != 0) return;
    sr_report *lua = NULL;
    int ln = 0;
    sr_webhook_answer lans;
    if (sr_adapter_parse_status(fuzz_rules_state, prov, rq, &lua, &ln, &lans, err, sizeof err) != 0) abort();
    if (ln != n || (n && memcmp(lua, reps, (size_t)n * sizeof *reps) != 0) || !fuzz_same_answer(&ans, &lans))
        abort(); /* the C reader and generic.lua disagree */
    sr_webhook_answer_free(&ans);
    sr_webhook_answer_free(&lans);
    free(reps);
    free(lua);
}

static int fuzz_same_inbound(const sr_inbound_sms *a, const sr_inbound_sms *b) {
    return strcmp(a->provider_message_id, b->provider_message_id) == 0 && strcmp(a->from, b->from) == 0 &&
           strcmp(a->to, b->to) == 0 && a->text_len == b->text_len && a->at_ms == b->at_ms &&
           (!a->text_len || memcmp(a->text, b->text, a->text_len) == 0);
}

/* An inbound webhook as the daemon reads it; when C read it, the Lua must give the same. */
static void fuzz_inbound(sr_provider *prov, const sr_webhook_request *rq) {
    char err[400];
    sr_inbound_sms *msgs = NULL;
    int n = 0;
    sr_webhook_answer ans;
    if (sr_webhook_parse_inbound(fuzz_rules_state, prov, rq, &msgs, &n, &ans, err, sizeof err) != 0) return;
    if (n < 0 || (n > 0 && !msgs)) abort();
    for (int k = 0; k < n; k++)
        if (msgs[k].text_len && !msgs[k].text) abort();
    fuzz_check_answer(&ans);
    sr_webhook_answer_free(&ans);
    sr_inbound_sms_free(msgs, n);
    if (!prov->native_webhooks || sr_webhook_generic_inbound(rq, &msgs, &n, &ans) != 0) return;
    sr_inbound_sms *lua = NULL;
    int ln = 0;
    sr_webhook_answer lans;
    if (sr_adapter_parse_inbound(fuzz_rules_state, prov, rq, &lua, &ln, &lans, err, sizeof err) != 0) abort();
    if (ln != n || !fuzz_same_answer(&ans, &lans)) abort();
    for (int k = 0; k < n; k++)
        if (!fuzz_same_inbound(&msgs[k], &lua[k])) abort(); /* the C reader and generic.lua disagree */
    sr_webhook_answer_free(&ans);
    sr_webhook_answer_free(&lans);
    sr_inbound_sms_free(msgs, n);
    sr_inbound_sms_free(lua, ln);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data, *end = p + size;
    char *content_type = fuzz_line(&p, end);
    char *query = fuzz_line(&p, end);
    char *header_line = fuzz_line(&p, end);
    /* The body: a copy of exactly its bytes, so a read past it is caught. */
    size_t body_len = (size_t)(end - p);
    char *body = malloc(body_len + 1);
    if (!body) abort();
    memcpy(body, p, body_len);
    body[body_len] = '\0';

    /* Headers: "name: value" items separated by '\r'; names as the HTTP server gives them (any case). */
    sr_adapter_header headers[FUZZ_MAX_HEADERS + 1];
    int hc = 0;
    headers[hc].name = "Content-Type";
    headers[hc].value = content_type;
    hc++;
    for (char *item = header_line; item && *item && hc <= FUZZ_MAX_HEADERS;) {
        char *next = strchr(item, '\r');
        if (next) *next++ = '\0';
        char *colon = strchr(item, ':');
        if (colon && colon > item) {
            *colon = '\0';
            char *value = colon + 1;
            while (*value == ' ') value++;
            headers[hc].name = item;
            headers[hc].value = value;
            hc++;
        }
        item = next;
    }

    char url[2048];
    lua_State *L = fuzz_rules_state->L;
    for (size_t i = 0; i < FUZZ_PROVIDERS; i++) {
        sr_provider *prov = sr_rules_provider(fuzz_rules_state, fuzz_providers[i]);
        char path[128];
        snprintf(path, sizeof path, "/hooks/%s/status", fuzz_providers[i]);
        snprintf(url, sizeof url, "https://sms.example.com%s%s%.1900s", path, query[0] ? "?" : "", query);
        sr_webhook_request rq = {"POST", url, path, query, headers, hc, body, body_len, NULL};
        int top = lua_gettop(L);
        char err[400];

        int ok = sr_webhook_verify(fuzz_rules_state, prov, &rq, err, sizeof err);
        if (ok < -1 || ok > 1 || lua_gettop(L) != top) abort();
        if (prov->native_webhooks && sr_adapter_verify(fuzz_rules_state, prov, &rq, err, sizeof err) != ok) abort();

        fuzz_status(prov, &rq);
        if (lua_gettop(L) != top) abort();

        snprintf(path, sizeof path, "/hooks/%s/inbound", fuzz_providers[i]);
        rq.path = path;
        fuzz_inbound(prov, &rq);
        if (lua_gettop(L) != top) abort();
    }
    free(content_type);
    free(query);
    free(header_line);
    free(body);
    return 0;
}
