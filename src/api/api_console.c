/* api_console: static files, login, sessions and CSRF of the console (see
 * api_console.h). */
#include "api/api_console.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "codec/crypto.h"
#include "codec/form.h"
#include "codec/json.h"
#include "codec/jsonw.h"
#include "core/log.h"
#include "model/message.h"

#define CONSOLE_SECRET_LEN 32
#define CONSOLE_ID_HEX 32 /* 16 random bytes */
#define CONSOLE_MAC_HEX (2 * SR_CRYPTO_SHA256_LEN)
#define CONSOLE_MAX_SESSIONS 256
#define CONSOLE_DEFAULT_TTL_S (8 * 3600)
#define CONSOLE_COOKIE "smsrules_session"
/* Failed logins allowed per minute before the login answers 429: the admin key cannot be guessed online. */
#define CONSOLE_LOGIN_FAILURES_PER_MIN 10

/* The generated table of console/ (scripts/embed-files.sh). */
const char *sr_console_embedded(const char *name, size_t *len);

typedef struct console_session {
    char id[CONSOLE_ID_HEX + 1];
    int64_t expires_ms;
} console_session;

static struct {
    unsigned char secret[CONSOLE_SECRET_LEN];
    int ready;
    console_session sessions[CONSOLE_MAX_SESSIONS];
    int64_t failure_window_start_ms;
    int failures;
} console;

/* Security headers of every static file: scripts and styles only from here, no
 * inline script, nothing framed, nothing fetched elsewhere. */
static const char console_static_headers[] =
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "X-Frame-Options: DENY\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Cross-Origin-Resource-Policy: same-origin\r\n"
    "Cache-Control: no-cache\r\n";

static void console_random(void *out, size_t len) {
    if (sr_crypto_random(out, len) != 0) abort(); /* randomness is not optional for a session secret */
}

static void console_init(void) {
    if (console.ready) return;
    console_random(console.secret, sizeof console.secret);
    console.ready = 1;
}

static int64_t console_ttl_ms(void) {
    const char *env = getenv("SMSRULES_CONSOLE_SESSION_S");
    long v = env ? strtol(env, NULL, 10) : 0;
    return (v > 0 ? v : CONSOLE_DEFAULT_TTL_S) * 1000LL;
}

/* Lowercase hex HMAC-SHA256 of "prefix" "body" under the secret. */
static void console_mac(const char *prefix, const char *body, size_t body_len, char out[CONSOLE_MAC_HEX + 1]) {
    sr_crypto_ctx h;
    unsigned char mac[SR_CRYPTO_SHA256_LEN];
    sr_crypto_hmac_init(&h, SR_CRYPTO_SHA256, console.secret, sizeof console.secret);
    sr_crypto_update(&h, prefix, strlen(prefix));
    sr_crypto_update(&h, body, body_len);
    sr_crypto_final(&h, mac);
    sr_crypto_hex(out, mac, sizeof mac);
}

/* ---- the session table ---- */

static console_session *console_find(const char *id) {
    for (int i = 0; i < CONSOLE_MAX_SESSIONS; i++)
        if (console.sessions[i].expires_ms && strcmp(console.sessions[i].id, id) == 0) return &console.sessions[i];
    return NULL;
}

/* A free slot, else an expired one, else the one that expires first (its user logs in again). */
static console_session *console_slot(int64_t now) {
    console_session *best = &console.sessions[0];
    for (int i = 0; i < CONSOLE_MAX_SESSIONS; i++) {
        console_session *c = &console.sessions[i];
        if (c->expires_ms == 0 || c->expires_ms <= now) return c;
        if (c->expires_ms < best->expires_ms) best = c;
    }
    return best;
}

/* ---- tokens ---- */

typedef struct console_token {
    int64_t expires_ms;
    char id[CONSOLE_ID_HEX + 1];
} console_token;

/* The cookie's value, or NULL; *len its length. */
static const char *console_cookie(sr_http_request *req, size_t *len) {
    size_t hlen = 0;
    const char *h = sr_http_header_get(req, "cookie", &hlen);
    static const char name[] = CONSOLE_COOKIE "=";
    const char *end = h ? h + hlen : NULL;
    for (const char *p = h; p && p < end;) {
        while (p < end && (*p == ' ' || *p == ';')) p++;
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        if ((size_t)(stop - p) >= sizeof name - 1 && memcmp(p, name, sizeof name - 1) == 0) {
            *len = (size_t)(stop - p) - (sizeof name - 1);
            return p + sizeof name - 1;
        }
        p = semi ? semi + 1 : NULL;
    }
    return NULL;
}

static int console_all_hex(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f')) return 0;
    return 1;
}

/* 0 with the token read and its MAC checked, -1 for anything else. */
static int console_token_parse(const char *v, size_t len, console_token *out) {
    const char *dot1 = memchr(v, '.', len);
    if (!dot1 || dot1 == v || dot1 - v > 15) return -1;
    size_t rest = len - (size_t)(dot1 - v) - 1;
    if (rest != CONSOLE_ID_HEX + 1 + CONSOLE_MAC_HEX || dot1[1 + CONSOLE_ID_HEX] != '.') return -1;
    int64_t exp_s = 0;
    for (const char *p = v; p < dot1; p++) {
        if (!isdigit((unsigned char)*p)) return -1;
        exp_s = exp_s * 10 + (*p - '0');
    }
    const char *id = dot1 + 1, *mac = id + CONSOLE_ID_HEX + 1;
    if (!console_all_hex(id, CONSOLE_ID_HEX)) return -1;
    char expected[CONSOLE_MAC_HEX + 1];
    console_mac("", v, (size_t)(mac - 1 - v), expected);
    if (!sr_crypto_equal(mac, CONSOLE_MAC_HEX, expected, CONSOLE_MAC_HEX)) return -1;
    out->expires_ms = exp_s * 1000;
    memcpy(out->id, id, CONSOLE_ID_HEX);
    out->id[CONSOLE_ID_HEX] = '\0';
    return 0;
}

/* The live session of the request's cookie: 1 (in *out), 0 no cookie, -1 a cookie that is no session. */
static int console_session_of(sr_http_request *req, console_token *out) {
    console_init();
    size_t len = 0;
    const char *v = console_cookie(req, &len);
    if (!v) return 0;
    if (console_token_parse(v, len, out) != 0) return -1;
    const console_session *c = console_find(out->id);
    if (!c || c->expires_ms != out->expires_ms || out->expires_ms <= sr_now_ms()) return -1;
    return 1;
}

/* A browser names the page a request comes from in Origin: when it does, it must be this daemon (the
 * scheme, then the Host the request was sent to). A second line of defence behind the CSRF token. */
static int console_same_origin(sr_http_request *req) {
    size_t olen = 0, hlen = 0;
    const char *origin = sr_http_header_get(req, "origin", &olen);
    const char *host = sr_http_header_get(req, "host", &hlen);
    if (!origin) return 1;
    const char *sep = olen > 3 ? memmem(origin, olen, "://", 3) : NULL;
    if (!sep || !host) return 0;
    size_t rest = olen - (size_t)(sep + 3 - origin);
    return rest == hlen && strncasecmp(sep + 3, host, hlen) == 0;
}

/* A state-changing request of session t: from this origin, with the session's CSRF token. 0, or -1
 * answered 403. */
static int console_check_unsafe(sr_http_request *req, const console_token *t) {
    if (strcmp(req->method_name, "GET") == 0 || strcmp(req->method_name, "HEAD") == 0) return 0;
    if (!console_same_origin(req)) {
        sr_http_respond_error(req, 403, "cross_origin", "a state-changing request from another origin is refused",
                              NULL);
        return -1;
    }
    size_t len = 0;
    const char *csrf = sr_http_header_get(req, "x-csrf-token", &len);
    char expected[CONSOLE_MAC_HEX + 1];
    console_mac("csrf.", t->id, CONSOLE_ID_HEX, expected);
    if (!csrf || !sr_crypto_equal(csrf, len, expected, CONSOLE_MAC_HEX)) {
        sr_http_respond_error(req, 403, "csrf_token_invalid",
                              "a state-changing request with a session cookie needs its X-CSRF-Token header", NULL);
        return -1;
    }
    return 0;
}

int sr_api_console_auth(sr_api *app, sr_http_request *req) {
    (void)app;
    if (sr_http_header_get(req, "authorization", NULL)) return 0;
    console_token t;
    int rc = console_session_of(req, &t);
    if (rc == 0) return 0;
    if (rc < 0) {
        sr_http_respond_error(req, 401, "session_invalid", "the console session is invalid or expired: log in again",
                              NULL);
        return -1;
    }
    return console_check_unsafe(req, &t) == 0 ? 1 : -1;
}

/* Bearer ADMIN_KEY: 1 matches, 0 absent or wrong. */
static int console_admin_key_ok(sr_api *app, sr_http_request *req) {
    const char *key = app->config->admin_key;
    size_t len = 0;
    const char *auth = sr_http_header_get(req, "authorization", &len);
    return key && *key && auth && len > 7 && strncasecmp(auth, "Bearer ", 7) == 0 &&
           sr_api_secret_equal(auth + 7, len - 7, key, strlen(key));
}

int sr_api_require_admin(sr_api *app, sr_http_request *req) {
    const char *key = app->config->admin_key;
    if (!key || !*key) {
        sr_http_respond_error(req, 403, "admin_disabled",
                              "the admin API is off: set sms.config{admin_key = ...} to use it", NULL);
        return 0;
    }
    int session = sr_api_console_auth(app, req);
    if (session != 0) return session > 0;
    if (console_admin_key_ok(app, req)) return 1;
    sr_http_respond_error(req, 401, "unauthorized",
                          "this endpoint needs Authorization: Bearer <admin key> or a console session",
                          "WWW-Authenticate: Bearer\r\n");
    return 0;
}

/* ---- static files ---- */

static const char *console_content_type(const char *name) {
    const char *dot = strrchr(name, '.');
    if (dot && strcmp(dot, ".html") == 0) return "text/html; charset=utf-8";
    if (dot && strcmp(dot, ".css") == 0) return "text/css; charset=utf-8";
    if (dot && strcmp(dot, ".js") == 0) return "text/javascript; charset=utf-8";
    if (dot && strcmp(dot, ".svg") == 0) return "image/svg+xml";
    return "application/octet-stream";
}

void sr_api_console_page(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    (void)app;
    const char *name = n > 0 ? params[0] : "index.html";
    size_t len = 0;
    const char *src = sr_console_embedded(name, &len);
    if (!src) {
        sr_http_respond_error(req, 404, "not_found", "no such console file", console_static_headers);
        return;
    }
    sr_http_respond(req, 200, console_content_type(name), src, len, console_static_headers);
}

/* ---- login, logout, session ---- */

/* The cookie (value, attributes) as a Set-Cookie header line. */
static void console_set_cookie(sr_api *app, sr_buf *out, const char *value, int64_t max_age_s) {
    const char *url = app->config->public_url;
    sr_buf_printf(out, "Set-Cookie: " CONSOLE_COOKIE "=%s; Path=/v1; Max-Age=%lld; HttpOnly; SameSite=Strict%s\r\n",
                  value, (long long)max_age_s, url && strncasecmp(url, "https://", 8) == 0 ? "; Secure" : "");
    sr_buf_puts(out, "Cache-Control: no-store\r\n");
}

static void console_session_json(sr_buf *b, const console_token *t) {
    char csrf[CONSOLE_MAC_HEX + 1];
    console_mac("csrf.", t->id, CONSOLE_ID_HEX, csrf);
    sr_buf expires_at;
    sr_buf_init(&expires_at);
    sr_time_rfc3339(t->expires_ms, &expires_at);
    sr_jw w;
    sr_jw_init(&w, b);
    sr_jw_object_begin(&w);
    sr_jw_field_bool(&w, "logged_in", true);
    sr_jw_field_str(&w, "csrf_token", csrf);
    sr_jw_field_strn(&w, "expires_at", expires_at.data ? expires_at.data : "", expires_at.len);
    sr_jw_object_end(&w);
    sr_buf_free(&expires_at);
}

/* 1 when too many logins failed in the last minute (counts this one when failed is set). */
static int console_login_throttled(int64_t now, int failed) {
    if (now - console.failure_window_start_ms > 60000) {
        console.failure_window_start_ms = now;
        console.failures = 0;
    }
    if (failed) console.failures++;
    return console.failures >= CONSOLE_LOGIN_FAILURES_PER_MIN;
}

/* The "key" of a JSON body {"key": "..."}: 0, or -1 (answered 400). */
static int console_login_key(sr_http_request *req, sr_json_doc *doc, const sr_json **key) {
    char err[160];
    if (sr_json_parse(doc, req->body, req->body_len, err, sizeof err) != 0 || doc->root->type != SR_JSON_OBJECT) {
        sr_http_respond_error(req, 400, "invalid_json", "the body must be a JSON object {\"key\": \"...\"}", NULL);
        return -1;
    }
    *key = sr_json_get(doc->root, "key");
    if (!*key || (*key)->type != SR_JSON_STRING) {
        sr_http_respond_error(req, 400, "missing_field", "'key' (the admin key) is required", NULL);
        return -1;
    }
    return 0;
}

static void console_start_session(sr_api *app, sr_http_request *req, int64_t now) {
    console_token t;
    unsigned char raw[CONSOLE_ID_HEX / 2];
    console_random(raw, sizeof raw);
    sr_crypto_hex(t.id, raw, sizeof raw);
    t.expires_ms = (now + console_ttl_ms()) / 1000 * 1000;
    console_session *slot = console_slot(now);
    memcpy(slot->id, t.id, sizeof slot->id);
    slot->expires_ms = t.expires_ms;
    char value[16 + 1 + CONSOLE_ID_HEX + 1 + CONSOLE_MAC_HEX + 1];
    int head = snprintf(value, sizeof value, "%lld.%s", (long long)(t.expires_ms / 1000), t.id);
    value[head] = '.';
    console_mac("", value, (size_t)head, value + head + 1);
    sr_buf extra, body;
    sr_buf_init(&extra);
    sr_buf_init(&body);
    console_set_cookie(app, &extra, value, (t.expires_ms - now) / 1000);
    console_session_json(&body, &t);
    sr_http_respond(req, 200, "application/json", body.data, body.len, sr_buf_cstr(&extra));
    sr_buf_free(&extra);
    sr_buf_free(&body);
    sr_info("console: logged in", "session", t.id);
}

void sr_api_console_login(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    console_init();
    const char *admin = app->config->admin_key;
    if (!admin || !*admin) {
        sr_http_respond_error(req, 403, "admin_disabled",
                              "the console needs an admin key: set sms.config{admin_key = ...}", NULL);
        return;
    }
    int64_t now = sr_now_ms();
    if (console_login_throttled(now, 0)) {
        sr_http_respond_error(req, 429, "too_many_attempts", "too many failed logins; wait a minute",
                              "Retry-After: 60\r\n");
        return;
    }
    sr_json_doc doc;
    memset(&doc, 0, sizeof doc);
    const sr_json *key = NULL;
    if (console_login_key(req, &doc, &key) != 0) {
        sr_json_doc_free(&doc);
        return;
    }
    int ok = sr_api_secret_equal(key->str, key->len, admin, strlen(admin));
    sr_json_doc_free(&doc);
    if (!ok) {
        console_login_throttled(now, 1);
        sr_warn("console: login refused (wrong admin key)");
        sr_http_respond_error(req, 401, "unauthorized", "wrong admin key", NULL);
        return;
    }
    console_start_session(app, req, now);
}

void sr_api_console_logout(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    console_token t;
    int rc = console_session_of(req, &t);
    if (rc == 1 && console_check_unsafe(req, &t) != 0) return; /* a logout needs its CSRF token too */
    if (rc == 1) {
        console_session *c = console_find(t.id);
        if (c) memset(c, 0, sizeof *c);
        sr_info("console: logged out", "session", t.id);
    }
    sr_buf extra;
    sr_buf_init(&extra);
    console_set_cookie(app, &extra, "", 0);
    static const char body[] = "{\"status\":\"logged_out\"}";
    sr_http_respond(req, 200, "application/json", body, sizeof body - 1, sr_buf_cstr(&extra));
    sr_buf_free(&extra);
}

void sr_api_console_session(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    /* 200 either way: the page asks this first, and "not logged in" is an answer, not an error. */
    console_token t;
    if (console_session_of(req, &t) != 1) {
        static const char out[] = "{\"logged_in\":false}";
        sr_http_respond(req, 200, "application/json", out, sizeof out - 1, "Cache-Control: no-store\r\n");
        return;
    }
    sr_buf body;
    sr_buf_init(&body);
    console_session_json(&body, &t);
    sr_http_respond(req, 200, "application/json", body.data, body.len, "Cache-Control: no-store\r\n");
    sr_buf_free(&body);
}

void sr_api_console_start(sr_api *app) {
    console_init();
    sr_api_overview_start(app);
}

/* ---- query parameters ---- */

/* Strict over codec/form's reading: a '%' must start an escape, and the value
 * must decode without a NUL (which would cut it short unseen). */
int sr_api_query_param(const char *query, const char *name, char *out, size_t outlen) {
    sr_form_pair pair;
    if (!query || !sr_form_find(query, strlen(query), name, &pair)) return 0;
    for (size_t i = 0; i < pair.value_len; i++)
        if (pair.value[i] == '%' && (i + 2 >= pair.value_len || !isxdigit((unsigned char)pair.value[i + 1]) ||
                                     !isxdigit((unsigned char)pair.value[i + 2])))
            return -1;
    sr_buf v;
    sr_buf_init(&v);
    sr_form_unescape_buf(&v, pair.value, pair.value_len);
    int rc = v.len < outlen && !memchr(v.data, '\0', v.len) ? 1 : -1;
    if (rc == 1) {
        if (v.len) memcpy(out, v.data, v.len);
        out[v.len] = '\0';
    }
    sr_buf_free(&v);
    return rc;
}
