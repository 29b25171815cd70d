/* api_rules_view: what the console shows of the configuration (admin key or
 * console session):
 *   GET /v1/providers  each provider's limits (rate, burst, concurrency, ...) and
 *                      their current use (circuit, requests in flight, rate used)
 *   GET /v1/rules      the loaded rules file: its text, what it declares, when it
 *                      was loaded and how long that took
 *
 * No secret leaves: providers are shown by their limits, never their options
 * (credentials, URLs with keys in them); the rules file's text has every secret
 * the daemon holds replaced by "[redacted]" — the API and admin keys, webhook
 * path secrets and basic auth, and every string option of a provider whose name
 * says it is one (key, secret, token, password, auth, sid, sign, credential) —
 * wherever it appears in the file. */
#include <ctype.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "api/api.h"
#include "api/api_console.h"
#include "codec/jsonw.h"
#include "codec/template.h"
#include "delivery/scheduler.h"
#include "model/message.h"

#define RULES_MAX_SECRETS 512
#define RULES_MAX_EVENTS 512
/* Shorter values are not redacted: they would blank out ordinary words of the file. */
#define RULES_MIN_SECRET_LEN 4

/* ---- GET /v1/providers ---- */

/* A time as an RFC 3339 string member. */
static void rules_field_time(sr_jw *w, const char *key, int64_t ms) {
    sr_buf t;
    sr_buf_init(&t);
    sr_time_rfc3339(ms, &t);
    sr_jw_field_strn(w, key, t.data ? t.data : "", t.len);
    sr_buf_free(&t);
}

/* A double member with a fixed printf format (the console shows these figures as they come). */
static void rules_field_fmt(sr_jw *w, const char *key, const char *fmt, double v) {
    sr_jw_key(w, key);
    sr_jw_double_fmt(w, fmt, v);
}

static void providers_one(sr_api *app, sr_jw *w, const sr_provider *p, int64_t now) {
    sr_jw_object_begin(w);
    sr_jw_field_str(w, "name", p->name);
    sr_jw_field_str(w, "adapter", p->adapter);
    rules_field_fmt(w, "rate_per_s", "%.6g", p->rate_per_s);
    rules_field_fmt(w, "burst", "%.6g", p->burst);
    sr_jw_field_int(w, "concurrency", p->concurrency);
    sr_jw_field_int(w, "timeout_ms", p->timeout_ms);
    sr_jw_field_int(w, "max_attempts", p->max_attempts);
    sr_jw_field_int(w, "batch_size", p->batch_size);
    rules_field_fmt(w, "cost", "%.6g", p->cost);
    sr_jw_field_bool(w, "poll", p->poll);
    sr_lane_info li;
    memset(&li, 0, sizeof li);
    li.circuit = "closed";
    sr_scheduler_lane_info(app->scheduler, p->name, now, &li);
    sr_jw_field_str(w, "circuit", li.circuit);
    sr_jw_field_int(w, "in_flight", li.in_flight);
    sr_jw_field_int(w, "pending", li.pending);
    rules_field_fmt(w, "rate_used", "%.3f", li.rate_used);
    if (li.paused_until_ms) rules_field_time(w, "paused_until", li.paused_until_ms);
    else
        sr_jw_field_null(w, "paused_until");
    sr_jw_object_end(w);
}

void sr_api_providers(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    if (!sr_api_require_admin(app, req)) return;
    int64_t now = sr_now_ms();
    sr_buf b;
    sr_buf_init(&b);
    sr_jw w;
    sr_jw_init(&w, &b);
    sr_jw_object_begin(&w);
    sr_jw_key(&w, "providers");
    sr_jw_array_begin(&w);
    for (int i = 0; app->rules && i < app->rules->provider_count; i++)
        providers_one(app, &w, &app->rules->providers[i], now);
    sr_jw_array_end(&w);
    sr_jw_object_end(&w);
    sr_http_respond(req, 200, "application/json", b.data, b.len, "Cache-Control: no-store\r\n");
    sr_buf_free(&b);
}

/* ---- secrets ---- */

typedef struct rules_secrets {
    const char *items[RULES_MAX_SECRETS];
    size_t lens[RULES_MAX_SECRETS];
    int count;
} rules_secrets;

static void secrets_add(rules_secrets *s, const char *v, size_t len) {
    if (v && len >= RULES_MIN_SECRET_LEN && s->count < RULES_MAX_SECRETS) {
        s->items[s->count] = v;
        s->lens[s->count++] = len;
    }
}

static int secrets_key_is_secret(const char *k) {
    static const char *const words[] = {"key", "secret", "token", "pass", "auth", "sid", "sign", "credential"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcasestr(k, words[i])) return 1;
    return 0;
}

/* The string options of p whose names say they are secret. Raw table walk (lua_next runs no metamethod);
 * the strings stay valid while the rules live, which outlasts this request. */
static void secrets_of_provider(rules_secrets *s, const sr_provider *p) {
    lua_State *L = p->L;
    if (!L || !lua_checkstack(L, 4)) return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->cfg_ref);
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING &&
                secrets_key_is_secret(lua_tostring(L, -2))) {
                size_t len = 0;
                const char *v = lua_tolstring(L, -1, &len);
                secrets_add(s, v, len);
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

static void secrets_collect(sr_api *app, rules_secrets *s) {
    const sr_config *c = app->config;
    for (int i = 0; i < c->api_key_count; i++) secrets_add(s, c->api_keys[i], strlen(c->api_keys[i]));
    if (c->admin_key) secrets_add(s, c->admin_key, strlen(c->admin_key));
    for (int i = 0; app->rules && i < app->rules->provider_count; i++) {
        const sr_provider *p = &app->rules->providers[i];
        if (p->webhook_path_secret) secrets_add(s, p->webhook_path_secret, strlen(p->webhook_path_secret));
        if (p->webhook_basic_auth) {
            secrets_add(s, p->webhook_basic_auth, strlen(p->webhook_basic_auth));
            const char *colon = strchr(p->webhook_basic_auth, ':');
            if (colon) secrets_add(s, colon + 1, strlen(colon + 1));
        }
        secrets_of_provider(s, p);
    }
}

/* src with every secret replaced, as a JSON string. */
static void secrets_redacted_json(const rules_secrets *s, const char *src, size_t len, sr_jw *w) {
    sr_buf clean;
    sr_buf_init(&clean);
    for (size_t i = 0; i < len;) {
        size_t hit = 0;
        for (int k = 0; k < s->count && !hit; k++)
            if (s->lens[k] <= len - i && memcmp(src + i, s->items[k], s->lens[k]) == 0) hit = s->lens[k];
        if (hit) {
            sr_buf_puts(&clean, "[redacted]");
            i += hit;
        } else {
            sr_buf_putc(&clean, src[i++]);
        }
    }
    sr_jw_string(w, clean.data ? clean.data : "", clean.len);
    sr_buf_free(&clean);
}

/* ---- GET /v1/rules ---- */

static int rules_name_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names of sms.on handlers, sorted, as a JSON list (a raw walk of the registry table). */
static void rules_events_json(sr_rules *r, sr_jw *w) {
    const char *names[RULES_MAX_EVENTS];
    int count = 0;
    lua_State *L = r->L;
    sr_jw_array_begin(w);
    if (!lua_checkstack(L, 4)) goto done;
    lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.events");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) == LUA_TSTRING && count < RULES_MAX_EVENTS) names[count++] = lua_tostring(L, -2);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    qsort(names, (size_t)count, sizeof names[0], rules_name_cmp);
    for (int i = 0; i < count; i++) sr_jw_cstr(w, names[i]);
done:
    sr_jw_array_end(w);
}

static void rules_declared_json(sr_rules *r, sr_jw *w) {
    sr_jw_key(w, "providers");
    sr_jw_array_begin(w);
    for (int i = 0; i < r->provider_count; i++) {
        sr_jw_object_begin(w);
        sr_jw_field_str(w, "name", r->providers[i].name);
        sr_jw_field_str(w, "adapter", r->providers[i].adapter);
        sr_jw_object_end(w);
    }
    sr_jw_array_end(w);
    sr_jw_key(w, "templates");
    sr_jw_array_begin(w);
    for (int i = 0; i < r->template_count; i++) {
        const sr_template *t = r->templates[i].tpl;
        sr_jw_object_begin(w);
        sr_jw_field_str(w, "name", r->templates[i].name);
        sr_jw_key(w, "vars");
        sr_jw_array_begin(w);
        for (int v = 0; v < sr_template_var_count(t); v++) sr_jw_cstr(w, sr_template_var(t, v));
        sr_jw_array_end(w);
        sr_jw_object_end(w);
    }
    sr_jw_array_end(w);
    sr_jw_key(w, "events");
    rules_events_json(r, w);
    lua_getfield(r->L, LUA_REGISTRYINDEX, "smsrules.on_inbound");
    sr_jw_field_bool(w, "on_inbound", lua_isfunction(r->L, -1));
    lua_pop(r->L, 1);
    sr_jw_field_bool(w, "route", r->route_ref != LUA_NOREF);
}

/* The text the running rules were compiled from, kept by sr_rules: nothing is read on the loop. One
 * stat says whether the file has changed on disk since (a reload would pick the change up). */
static void rules_source_json(sr_api *app, sr_rules *r, sr_jw *w) {
    if (!r->source) {
        sr_jw_field_null(w, "source");
        char why[80];
        snprintf(why, sizeof why, "the file is larger than %d bytes: not shown", SR_RULES_MAX_SOURCE);
        sr_jw_field_str(w, "source_error", why);
    } else {
        rules_secrets *secrets = calloc(1, sizeof *secrets);
        if (!secrets) abort();
        secrets_collect(app, secrets);
        sr_jw_key(w, "source");
        secrets_redacted_json(secrets, r->source, r->source_len, w);
        free(secrets);
    }
    struct stat st;
    int changed = 1; /* gone or unreadable counts as changed */
    if (stat(r->path, &st) == 0)
        changed = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000 != r->source_mtime_ms ||
                  (r->source && (size_t)st.st_size != r->source_len);
    sr_jw_field_bool(w, "changed_since_load", changed);
}

void sr_api_rules_get(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    if (!sr_api_require_admin(app, req)) return;
    sr_rules *r = app->rules;
    if (!r || !r->path) {
        sr_http_respond_error(req, 404, "no_rules", "the daemon runs without a rules file", NULL);
        return;
    }
    sr_buf b;
    sr_buf_init(&b);
    sr_jw w;
    sr_jw_init(&w, &b);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "path", r->path);
    rules_field_time(&w, "loaded_at", r->loaded_at_ms);
    rules_field_fmt(&w, "load_ms", "%.3f", r->load_ms);
    rules_declared_json(r, &w);
    rules_source_json(app, r, &w);
    sr_jw_object_end(&w);
    sr_http_respond(req, 200, "application/json", b.data, b.len, "Cache-Control: no-store\r\n");
    sr_buf_free(&b);
}
