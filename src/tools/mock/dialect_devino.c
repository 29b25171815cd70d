/* dialect_devino: Devino's API: POST /sms/messages with a list of messages
 * (Authorization: Key; no client ids), JSON reports, statuses polled with
 * POST /sms-stat/statuses/get-by-ids, JSON inbound posts. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tools/mock/mock_internal.h"

/* The members of a rejected message i: a reason naming its field. */
static void devino_write_rejected(sr_jw *w, const mock_msg *m, size_t i) {
    const char *key = "invalid", *field = "to";
    if (m->result == MOCK_RESULT_INVALID) {
        key = m->problem_missing ? "must.be.not.null" : "invalid";
        field = m->problem_field;
    }
    char ref[96];
    snprintf(ref, sizeof ref, "messages[%zu]%s%s", i, field ? "." : "", field ? field : "");
    sr_jw_field_str(w, "code", "REJECTED");
    sr_jw_field_null(w, "messageId");
    sr_jw_field_null(w, "segmentsId");
    sr_jw_key(w, "reasons");
    sr_jw_array_begin(w);
    sr_jw_object_begin(w);
    sr_jw_field_str(w, "key", key);
    sr_jw_field_str(w, "ref", ref);
    sr_jw_object_end(w);
    sr_jw_array_end(w);
    sr_jw_key(w, "description");
    if (m->result == MOCK_RESULT_INVALID) mock_put_problem(w, m);
    else
        sr_jw_cstr(w, "invalid phone number");
}

static int mock_write_devino(const mock_send_ctx *ctx, sr_buf *out) {
    sr_jw w;
    sr_jw_init(&w, out);
    sr_jw_object_begin(&w);
    sr_jw_key(&w, "result");
    sr_jw_array_begin(&w);
    for (size_t i = 0; i < ctx->count; i++) {
        const mock_msg *m = &ctx->msgs[i];
        sr_jw_object_begin(&w);
        if (m->result == MOCK_RESULT_ACCEPTED || m->result == MOCK_RESULT_DUPLICATE) {
            sr_jw_field_str(&w, "code", "OK");
            sr_jw_field_str(&w, "messageId", m->provider_id);
        } else {
            devino_write_rejected(&w, m, i);
        }
        sr_jw_object_end(&w);
    }
    sr_jw_array_end(&w);
    sr_jw_object_end(&w);
    return 200;
}

/* Authorization: Key KEY. */
static bool devino_auth_ok(const mock_provider *mp, const sr_http_request *req, const char *account) {
    (void)account;
    return !mp->set.auth_key || mock_header_is(req, "authorization", "Key ", mp->set.auth_key);
}

static bool devino_is_poll_path(const char *path) { return strcmp(path, "/sms-stat/statuses/get-by-ids") == 0; }

static void devino_write_poll_error(sr_jw *w, bool too_many) {
    sr_jw_object_begin(w);
    sr_jw_key(w, "reasons");
    sr_jw_array_begin(w);
    sr_jw_object_begin(w);
    sr_jw_field_str(w, "key", too_many ? "too.many.messages" : "invalid");
    sr_jw_field_str(w, "ref", "ids");
    sr_jw_object_end(w);
    sr_jw_array_end(w);
    sr_jw_field_str(w, "description",
                    too_many ? "at most 500 ids per request" : "the body must be a JSON array of 1 to 500 ids");
    sr_jw_object_end(w);
}

/* The status of the message id v, when it is known. */
static void devino_write_poll_status(mock_provider *mp, sr_jw *w, const sr_json *v) {
    if (v->type != SR_JSON_STRING && v->type != SR_JSON_NUMBER) return;
    const mock_slot *s = mock_recall(&mp->statuses, &mp->statuses_old, v->str, v->len);
    if (!s) return;
    uint64_t at_ms;
    static const char *const words[] = {"ENROUTE", "DELIVERED", "UNDELIVERABLE"};
    mock_state state = mock_status_state(mp, s, &at_ms);
    char when[32];
    mock_format_time(at_ms, "%Y-%m-%d %H:%M:%S", when, sizeof when);
    sr_jw_object_begin(w);
    sr_jw_key(w, "smsId");
    if (mock_all_digits(v->str, v->len)) sr_jw_raw(w, v->str, v->len); /* a number, digits exact */
    else
        sr_jw_string(w, v->str, v->len);
    sr_jw_field_str(w, "status", words[state]);
    sr_jw_field_str(w, "statusDateTime", when);
    sr_jw_object_end(w);
}

/* POST /sms-stat/statuses/get-by-ids with a JSON array of ids
 * (numbers or strings); unknown ids are left out of the answer. */
static void devino_poll(mock_provider *mp, sr_http_request *req) {
    if (!devino_auth_ok(mp, req, "")) {
        mock_poll_unauthorized(mp, req);
        return;
    }
    sr_json_doc doc;
    char err[160];
    sr_buf out;
    sr_buf_init(&out);
    sr_jw w;
    sr_jw_init(&w, &out);
    if (sr_json_parse(&doc, req->body, req->body_len, err, sizeof err) != 0 || doc.root->type != SR_JSON_ARRAY ||
        doc.root->count == 0 || doc.root->count > MOCK_DEVINO_POLL_MAX) {
        bool too_many = doc.root && doc.root->type == SR_JSON_ARRAY && doc.root->count > MOCK_DEVINO_POLL_MAX;
        devino_write_poll_error(&w, too_many);
        sr_http_respond(req, 400, "application/json", out.data, out.len, NULL);
    } else {
        sr_jw_object_begin(&w);
        sr_jw_key(&w, "result");
        sr_jw_array_begin(&w);
        for (const sr_json *v = doc.root->child; v; v = v->next) devino_write_poll_status(mp, &w, v);
        sr_jw_array_end(&w);
        sr_jw_object_end(&w);
        sr_http_respond(req, 200, "application/json", out.data, out.len, NULL);
    }
    sr_json_doc_free(&doc);
    sr_buf_free(&out);
}

static const char *devino_parse_send(mock_send_ctx *ctx, const sr_http_request *req) {
    return mock_parse_list(ctx, req, NULL);
}

/* Devino's ids are decimal numbers beyond 2^53 (clients must read them exactly). */
static void devino_format_id(const mock_provider *mp, uint64_t n, char *out) {
    snprintf(out, MOCK_ID_LEN, "%" PRIu64, mp->start_ms * 1000000 + n);
}

static bool devino_is_send_path(const char *path, char *account, size_t account_len) {
    (void)account;
    (void)account_len;
    return strcmp(path, "/sms/messages") == 0;
}

static int devino_write_failure(mock_failure f, const char *detail, sr_buf *out) {
    static const int http[] = {401, 503, 429, 400};
    static const char *const key[] = {"forbidden", NULL, "too.many.messages", "invalid"};
    static const char *const text[] = {"invalid api key", "service temporarily unavailable", "too many requests",
                                       "bad request"};
    sr_jw w;
    sr_jw_init(&w, out);
    sr_jw_object_begin(&w);
    if (key[f]) {
        sr_jw_key(&w, "reasons");
        sr_jw_array_begin(&w);
        sr_jw_object_begin(&w);
        sr_jw_field_str(&w, "key", key[f]);
        sr_jw_field_str(&w, "ref", "messages");
        sr_jw_object_end(&w);
        sr_jw_array_end(&w);
    }
    sr_jw_field_str(&w, "description", detail ? detail : text[f]);
    sr_jw_object_end(&w);
    return http[f];
}

/* [{"messageId","ts","status":"DELIVERED"|"UNDELIVERABLE","errorCode"}]. */
static void devino_dlr_build(const mock_dlr *d, const char *url, mock_post *post) {
    (void)url;
    mock_post_init(post, mock_ct_json);
    sr_jw w;
    sr_jw_init(&w, &post->body);
    sr_jw_array_begin(&w);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "messageId", d->message_id);
    sr_jw_field_uint(&w, "ts", mock_wall_ms());
    sr_jw_field_str(&w, "status", d->undelivered ? "UNDELIVERABLE" : "DELIVERED");
    sr_jw_field_int(&w, "errorCode", d->undelivered ? 1 : 0);
    sr_jw_object_end(&w);
    sr_jw_array_end(&w);
}

/* {"incomingMessageId","to","from","text","transactionId",...,"ts"}. */
static void devino_inbound_build(mock_provider *mp, const mock_inbound_sms *sms, const char *url, mock_post *post) {
    (void)mp;
    (void)url;
    char transaction[16], ts[24];
    snprintf(transaction, sizeof transaction, "%012" PRIx64, mock_hash(sms->id, strlen(sms->id)) & 0xffffffffffffu);
    snprintf(ts, sizeof ts, "%" PRIu64, sms->now_ms);
    mock_post_init(post, mock_ct_json);
    sr_jw w;
    sr_jw_init(&w, &post->body);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "incomingMessageId", sms->id);
    sr_jw_field_str(&w, "to", sms->to_bare);
    sr_jw_field_str(&w, "from", sms->from_bare);
    sr_jw_field_strn(&w, "text", sms->text, sms->text_len);
    sr_jw_field_str(&w, "transactionId", transaction);
    sr_jw_field_str(&w, "countryName", "");
    sr_jw_field_str(&w, "operator", "");
    sr_jw_field_str(&w, "prefix", "");
    sr_jw_field_str(&w, "ts", ts);
    sr_jw_object_end(&w);
}

const mock_dialect mock_dialect_devino = {
    .name = "devino",
    .send_methods = MOCK_POST,
    .is_send_path = devino_is_send_path,
    .format_id = devino_format_id,
    .header_auth_ok = devino_auth_ok,
    .parse_send = devino_parse_send,
    .write_answer = mock_write_devino,
    .write_failure = devino_write_failure,
    .dlr_build = devino_dlr_build,
    .inbound_build = devino_inbound_build,
    .is_poll_path = devino_is_poll_path,
    .poll_methods = MOCK_POST,
    .poll = devino_poll,
};
