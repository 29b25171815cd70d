/* mock_control: GET /stats, POST /stats/reset and GET|POST /control. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "tools/mock/mock_internal.h"

/* ---- GET /stats, POST /stats/reset, /control ---- */

/* {"to as sent": accepted count, ...}. */
static void mock_stats_recipients(const mock_provider *mp, sr_jw *w) {
    sr_jw_object_begin(w);
    for (size_t i = 0; i < mp->recipients.cap; i++) {
        const mock_slot *slot = &mp->recipients.slots[i];
        if (!slot->hash) continue;
        sr_jw_key_len(w, slot->key, slot->key_len);
        sr_jw_uint(w, slot->count);
    }
    sr_jw_object_end(w);
}

/* The counters after "recipients", in the order GET /stats has always had. */
static void mock_stats_counters(const mock_provider *mp, sr_jw *w) {
    const mock_stats *s = &mp->stats;
    sr_jw_field_uint(w, "rejected", s->rejected);
    sr_jw_field_uint(w, "failed_5xx", s->failed_5xx);
    sr_jw_field_uint(w, "failed_429", s->failed_429);
    sr_jw_field_uint(w, "timeouts", s->timeouts);
    sr_jw_field_uint(w, "duplicates", s->duplicates);
    sr_jw_field_uint(w, "unauthorized", s->unauthorized);
    sr_jw_field_uint(w, "bad_requests", s->bad_requests);
    sr_jw_field_uint(w, "down_dropped", s->down_dropped);
    sr_jw_field_uint(w, "dlr_sent", s->dlr_sent);
    sr_jw_field_uint(w, "dlr_failed", s->dlr_failed);
    sr_jw_field_uint(w, "dlr_retried", s->dlr_retried);
    sr_jw_field_uint(w, "dlr_pending", mp->dlrs_started);
    sr_jw_field_uint(w, "polls", s->polls);
    sr_jw_field_uint(w, "inbound_sent", s->inbound_sent);
    sr_jw_field_uint(w, "inbound_failed", s->inbound_failed);
    sr_jw_field_uint(w, "in_flight", (uint64_t)mp->in_flight);
    sr_jw_field_uint(w, "max_in_flight", (uint64_t)s->max_in_flight);
}

void mock_stats_get(mock_provider *mp, sr_http_request *req) {
    bool with_recipients = strstr(req->query, "by_recipient=0") == NULL;
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_reserve(&b, 512 + (with_recipients ? mp->recipients.used * 24 : 0));
    sr_jw w;
    sr_jw_init(&w, &b);
    sr_jw_object_begin(&w);
    sr_jw_field_uint(&w, "received", mp->stats.received);
    sr_jw_field_uint(&w, "requests", mp->stats.requests);
    if (with_recipients) {
        sr_jw_key(&w, "by_recipient");
        mock_stats_recipients(mp, &w);
    }
    sr_jw_field_uint(&w, "recipients", mp->recipients.used);
    mock_stats_counters(mp, &w);
    sr_jw_key(&w, "rate");
    sr_jw_object_begin(&w);
    sr_jw_field_uint(&w, "window_ms", MOCK_RATE_WINDOW_MS);
    sr_jw_field_uint(&w, "max_per_window", mp->rate.max_per_window);
    sr_jw_field_uint(&w, "max_calls_per_window", mp->calls.max_per_window);
    sr_jw_object_end(&w);
    sr_jw_object_end(&w);
    sr_http_respond(req, 200, "application/json", b.data, b.len, NULL);
    sr_buf_free(&b);
}

void mock_stats_reset(mock_provider *mp, sr_http_request *req) {
    memset(&mp->stats, 0, sizeof mp->stats);
    mp->stats.max_in_flight = mp->in_flight;
    mock_map_clear(&mp->recipients);
    mock_map_clear(&mp->seen);
    mock_map_clear(&mp->seen_old);
    mock_map_clear(&mp->statuses);
    mock_map_clear(&mp->statuses_old);
    mock_rate_clear(&mp->rate);
    mock_rate_clear(&mp->calls);
    static const char body[] = "{\"reset\":true}";
    sr_http_respond(req, 200, "application/json", body, sizeof body - 1, NULL);
}

/* The settings; secrets only as whether they are set. */
void mock_settings_write(const mock_provider *mp, sr_buf *b) {
    const mock_settings *s = &mp->set;
    sr_jw w;
    sr_jw_init(&w, b);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "dialect", s->dialect->name);
    sr_jw_field_double(&w, "fail_5xx", s->fail_5xx_pct);
    sr_jw_field_double(&w, "fail_429", s->fail_429_pct);
    sr_jw_field_uint(&w, "retry_after", s->retry_after_s);
    sr_jw_field_double(&w, "timeout", s->timeout_pct);
    sr_jw_field_uint(&w, "hold_ms", s->hold_ms);
    sr_jw_field_double(&w, "reject", s->reject_pct);
    sr_jw_field_uint(&w, "latency_ms", s->latency_ms);
    sr_jw_field_uint(&w, "latency_jitter_ms", s->latency_jitter_ms);
    sr_jw_field_str(&w, "dlr_url", s->dlr_url);
    sr_jw_field_uint(&w, "dlr_delay_ms", s->dlr_delay_ms);
    sr_jw_field_double(&w, "dlr_undelivered", s->dlr_undelivered_pct);
    sr_jw_field_str(&w, "inbound_url", s->inbound_url);
    sr_jw_field_bool(&w, "dlr_before_answer", s->dlr_before_answer);
    sr_jw_field_bool(&w, "auth", s->auth_key);
    sr_jw_field_bool(&w, "auth_token", s->auth_token);
    sr_jw_field_bool(&w, "webhook_secret", s->webhook_secret);
    sr_jw_field_bool(&w, "down", s->down);
    sr_jw_object_end(&w);
}

/* A percentage member: 0 when absent, 1 when valid (stored), -1 when invalid. */
static int mock_control_pct(const sr_json *root, const char *name, double *out) {
    const sr_json *v = sr_json_get(root, name);
    if (!v) return 0;
    if (v->type != SR_JSON_NUMBER || !(v->num >= 0 && v->num <= 100)) return -1;
    *out = v->num;
    return 1;
}

static int mock_control_uint(const sr_json *root, const char *name, uint64_t *out) {
    const sr_json *v = sr_json_get(root, name);
    if (!v) return 0;
    int64_t n;
    if (!sr_json_is_integer(v, &n) || n < 0 || n > 86400000) return -1;
    *out = (uint64_t)n;
    return 1;
}

static int mock_control_bool(const sr_json *root, const char *name, bool *out) {
    const sr_json *v = sr_json_get(root, name);
    if (!v) return 0;
    if (v->type != SR_JSON_TRUE && v->type != SR_JSON_FALSE) return -1;
    *out = v->type == SR_JSON_TRUE;
    return 1;
}

/* A string-or-null member: *out becomes a new copy (or NULL); *set tells it was there. */
static int mock_control_str(const sr_json *root, const char *name, char **out, bool *set) {
    const sr_json *v = sr_json_get(root, name);
    if (!v) return 0;
    if (v->type == SR_JSON_NULL) {
        *out = NULL;
    } else if (v->type == SR_JSON_STRING && v->len > 0 && strlen(v->str) == v->len) {
        *out = strdup(v->str);
        if (!*out) abort();
    } else {
        return -1;
    }
    *set = true;
    return 1;
}

static int mock_control_dialect(const sr_json *root, const mock_dialect **out) {
    const sr_json *v = sr_json_get(root, "dialect");
    if (!v) return 0;
    const mock_dialect *d = v->type == SR_JSON_STRING ? mock_dialect_find(v->str, v->len) : NULL;
    if (!d) return -1;
    *out = d;
    return 1;
}

/* Answers the held "down" requests: the provider is back. */
static void mock_release_down(mock_provider *mp) {
    mock_pending *p = mp->pending;
    while (p) {
        mock_pending *next = p->next;
        if (p->hold == MOCK_HOLD_DOWN) mock_pending_answer(p);
        p = next;
    }
}

/* The string settings /control may change, in one place: names, the new
 * values (owned until applied) and whether each was given. */
#define MOCK_CONTROL_STRS 5
#define MOCK_CONTROL_DLR_URL 1 /* the index of dlr_url in the strings */
typedef struct mock_control_strs {
    const char *name[MOCK_CONTROL_STRS];
    char *value[MOCK_CONTROL_STRS];
    bool set[MOCK_CONTROL_STRS];
} mock_control_strs;

static char **mock_control_str_slot(mock_settings *s, size_t i) {
    char **slots[MOCK_CONTROL_STRS] = {&s->auth_key, &s->dlr_url, &s->auth_token, &s->webhook_secret, &s->inbound_url};
    return slots[i];
}

/* Parses the body into doc: a JSON object of known settings; else answers
 * 400 and returns false. */
static bool mock_control_read(sr_http_request *req, sr_json_doc *doc) {
    static const char *const known[] = {
        "fail_5xx",   "fail_429",          "retry_after", "timeout",      "hold_ms",         "reject",
        "latency_ms", "latency_jitter_ms", "dlr_url",     "dlr_delay_ms", "dlr_undelivered", "dlr_before_answer",
        "down",       "auth_key",          "dialect",     "auth_token",   "webhook_secret",  "inbound_url",
        NULL};
    char err[160];
    if (sr_json_parse(doc, req->body, req->body_len, err, sizeof err) != 0 || doc->root->type != SR_JSON_OBJECT) {
        mock_respond_error(req, 400, "the body must be a JSON object of settings", NULL);
        return false;
    }
    for (const sr_json *m = doc->root->child; m; m = m->next) {
        bool ok = false;
        for (int i = 0; known[i]; i++) ok = ok || strcmp(m->key, known[i]) == 0;
        if (!ok) {
            char msg[200];
            snprintf(msg, sizeof msg, "unknown setting \"%.100s\"", m->key);
            mock_respond_error(req, 400, msg, NULL);
            return false;
        }
    }
    return true;
}

/* Reads every setting of root into next and strs; false when one is invalid. */
static bool mock_control_parse(const sr_json *root, mock_settings *next, mock_control_strs *strs) {
    bool bad = mock_control_pct(root, "fail_5xx", &next->fail_5xx_pct) < 0 ||
               mock_control_pct(root, "fail_429", &next->fail_429_pct) < 0 ||
               mock_control_pct(root, "timeout", &next->timeout_pct) < 0 ||
               mock_control_pct(root, "reject", &next->reject_pct) < 0 ||
               mock_control_pct(root, "dlr_undelivered", &next->dlr_undelivered_pct) < 0 ||
               mock_control_uint(root, "retry_after", &next->retry_after_s) < 0 ||
               mock_control_uint(root, "hold_ms", &next->hold_ms) < 0 ||
               mock_control_uint(root, "latency_ms", &next->latency_ms) < 0 ||
               mock_control_uint(root, "latency_jitter_ms", &next->latency_jitter_ms) < 0 ||
               mock_control_uint(root, "dlr_delay_ms", &next->dlr_delay_ms) < 0 ||
               mock_control_bool(root, "dlr_before_answer", &next->dlr_before_answer) < 0 ||
               mock_control_bool(root, "down", &next->down) < 0 || mock_control_dialect(root, &next->dialect) < 0;
    for (size_t i = 0; i < MOCK_CONTROL_STRS && !bad; i++)
        bad = mock_control_str(root, strs->name[i], &strs->value[i], &strs->set[i]) < 0;
    if (!bad && strs->value[MOCK_CONTROL_DLR_URL] && !mock_url_list_ok(strs->value[MOCK_CONTROL_DLR_URL]))
        bad = true; /* a dlr_url list with an empty URL */
    return !bad && next->fail_5xx_pct + next->fail_429_pct + next->timeout_pct + next->reject_pct <= 100;
}

/* Makes next the settings (the strings given replace the old ones). */
static void mock_control_apply(mock_provider *mp, mock_settings *next, mock_control_strs *strs) {
    for (size_t i = 0; i < MOCK_CONTROL_STRS; i++) {
        if (!strs->set[i]) continue;
        free(*mock_control_str_slot(&mp->set, i));
        *mock_control_str_slot(next, i) = strs->value[i];
    }
    bool was_down = mp->set.down;
    const mock_dialect *was_dialect = mp->set.dialect;
    mp->set = *next;
    if (was_dialect != next->dialect) sr_info("dialect changed", "dialect", next->dialect->name);
    if (was_down != next->down) sr_info(next->down ? "provider down" : "provider up");
    if (was_down && !next->down) mock_release_down(mp);
}

/* POST /control: validates every setting into a copy, then applies them at
 * once; answers the settings. */
void mock_control(mock_provider *mp, sr_http_request *req) {
    sr_json_doc doc;
    if (!mock_control_read(req, &doc)) {
        sr_json_doc_free(&doc);
        return;
    }
    mock_settings next = mp->set;
    mock_control_strs strs = {{"auth_key", "dlr_url", "auth_token", "webhook_secret", "inbound_url"}, {0}, {0}};
    bool ok = mock_control_parse(doc.root, &next, &strs);
    sr_json_doc_free(&doc);
    if (!ok) {
        for (size_t i = 0; i < MOCK_CONTROL_STRS; i++) free(strs.value[i]);
        mock_respond_error(req, 400,
                           "invalid setting: percentages are numbers 0-100 (fail_5xx + fail_429 + timeout + reject "
                           "at most 100), durations non-negative integers, flags true or false, dialect one of mock, "
                           "generic, smsbat, devino, agiletelecom, smsc, twilio, vonage, keys and URLs strings or null",
                           NULL);
        return;
    }
    mock_control_apply(mp, &next, &strs);
    sr_buf b;
    sr_buf_init(&b);
    mock_settings_write(mp, &b);
    sr_http_respond(req, 200, "application/json", b.data, b.len, NULL);
    sr_buf_free(&b);
}
