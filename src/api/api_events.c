/* api_events: POST /v1/events/{name} — runs the rule registered with
 * sms.on(name) with the JSON body, and answers with the ids of the messages
 * it created — and the handler's return value as "result" — once they (and
 * every other effect of the rule) are on disk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "codec/json.h"
#include "codec/jsonw.h"
#include "rules/rules_exec.h"
#include "store/store.h"

static void events_done(const sr_invocation_result *res, void *ud) {
    sr_http_request *req = ud;
    switch (res->status) {
    case SR_INV_OK: {
        sr_buf body;
        sr_buf_init(&body);
        sr_jw w;
        sr_jw_init(&w, &body);
        sr_jw_object_begin(&w);
        sr_jw_key(&w, "ids");
        sr_jw_array_begin(&w);
        for (int i = 0; i < res->id_count; i++) sr_jw_cstr(&w, res->ids[i]);
        sr_jw_array_end(&w);
        if (res->result_json) {
            sr_jw_key(&w, "result");
            sr_jw_raw(&w, res->result_json, strlen(res->result_json)); /* already JSON */
        }
        sr_jw_object_end(&w);
        sr_http_respond(req, res->id_count ? 202 : 200, "application/json", body.data, body.len, NULL);
        sr_buf_free(&body);
        break;
    }
    case SR_INV_ERROR:
        /* The rule's message, never its stack. */
        sr_http_respond_error(req, 500, "rule_error", res->error, NULL);
        break;
    case SR_INV_TIMEOUT:
        /* "file:line: instruction budget exceeded (...)" or "... time limit exceeded (...)". */
        sr_http_respond_error(req, 500, "rule_timeout",
                              res->error ? res->error : "the rule ran past its instruction budget and was stopped",
                              NULL);
        break;
    case SR_INV_MEMORY:
        sr_http_respond_error(req, 500, "rule_memory",
                              res->error ? res->error : "the rule ran past the memory limit and was stopped", NULL);
        break;
    case SR_INV_STORE: {
        const char *key;
        int status = sr_api_store_status(res->store_code, &key);
        sr_http_respond_error(req, status, key, "the rule's effects could not be stored", NULL);
        break;
    }
    }
}

void sr_api_events_post(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    if (!sr_api_require_key(app, req)) return;
    sr_json_doc doc;
    memset(&doc, 0, sizeof doc);
    const sr_json *arg = NULL;
    /* Handlers get bounded input: Lua's pattern matching runs in C, where the
     * instruction budget cannot stop it, so its work must be bounded by size. */
    if (req->body_len > app->config->max_event_bytes) {
        char msg[160];
        snprintf(msg, sizeof msg, "event bodies are limited to %zu bytes (sms.config max_event_bytes)",
                 app->config->max_event_bytes);
        sr_http_respond_error(req, 413, "event_too_large", msg, NULL);
        return;
    }
    if (req->body_len > 0) {
        char err[160];
        if (sr_json_parse(&doc, req->body, req->body_len, err, sizeof err) != 0) {
            char msg[220];
            snprintf(msg, sizeof msg, "request body is not valid JSON: %s", err);
            sr_http_respond_error(req, 400, "invalid_json", msg, NULL);
            return;
        }
        arg = doc.root;
    }
    int rc = sr_rules_fire_event(app->rules, params[0], arg, events_done, req);
    sr_json_doc_free(&doc);
    if (rc == SR_E_NOTFOUND) {
        char msg[200];
        snprintf(msg, sizeof msg, "no rule handles the event '%.128s' (declare it with sms.on)", params[0]);
        sr_http_respond_error(req, 404, "unknown_event", msg, NULL);
    }
}
