/* dialect_mock: our own "mock" JSON API, the default dialect: POST /send (or /)
 * with one message or a batch {"messages":[...]}, client ids "id", JSON
 * reports one per part, JSON inbound posts, X-Signature under --webhook-secret.
 * The generic dialect (dialect_generic.c) shares its answers and webhooks. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tools/mock/mock_internal.h"

/* The recipient of a message, or NULL when it is not a usable message. */
static const sr_json *mock_message_to(const sr_json *msg) {
    if (!msg || msg->type != SR_JSON_OBJECT) return NULL;
    const sr_json *to = sr_json_get(msg, "to");
    return to && to->type == SR_JSON_STRING && to->len > 0 ? to : NULL;
}

/* Why a message of the mock dialect is unusable, or NULL when it is fine. */
static const char *mock_message_problem(const sr_json *msg) {
    if (!msg || msg->type != SR_JSON_OBJECT) return "invalid request: a message must be an object";
    if (!mock_message_to(msg)) return "invalid request: \"to\" must be a non-empty string";
    const sr_json *text = sr_json_get(msg, "message");
    if (!text || text->type != SR_JSON_STRING) return "invalid request: \"message\" must be a string";
    const sr_json *from = sr_json_get(msg, "from");
    if (from && from->type != SR_JSON_STRING && from->type != SR_JSON_NULL)
        return "invalid request: \"from\" must be a string";
    const sr_json *id = sr_json_get(msg, "id");
    if (id && id->type != SR_JSON_STRING && id->type != SR_JSON_NUMBER && id->type != SR_JSON_NULL)
        return "invalid request: \"id\" must be a string";
    return NULL;
}

/* A message of the mock (and generic) JSON shape. */
void mock_msg_mock(mock_msg *m, const sr_json *obj, bool with_id) {
    m->problem = mock_message_problem(obj);
    if (m->problem) return;
    mock_json_str(obj, "to", true, &m->to, &m->to_len);
    mock_json_str(obj, "message", false, &m->text, &m->text_len);
    mock_json_str(obj, "from", false, &m->from, &m->from_len);
    if (with_id) mock_json_client_id(obj, "id", m);
}

static const char *mock_parse_mock(mock_send_ctx *ctx, const sr_http_request *req) {
    const char *bad = mock_parse_json(ctx, req);
    if (bad) return bad;
    const sr_json *root = ctx->doc.root;
    if (root->type != SR_JSON_OBJECT) return "invalid request: the body must be a JSON object";
    const sr_json *list = sr_json_get(root, "messages");
    if (list) {
        if (list->type != SR_JSON_ARRAY || list->count == 0 || list->count > MOCK_MAX_BATCH)
            return "invalid request: \"messages\" must be an array of 1 to 10000 messages";
        ctx->batch = true;
        mock_ctx_alloc(ctx, list->count);
        size_t i = 0;
        for (const sr_json *m = list->child; m; m = m->next) mock_msg_mock(&ctx->msgs[i++], m, true);
        return NULL;
    }
    mock_ctx_alloc(ctx, 1);
    mock_msg_mock(&ctx->msgs[0], root, true);
    return NULL;
}

/* The mock dialect's result object of one message; returns the status a
 * single send gets. */
static int mock_write_mock_result(const mock_msg *m, bool batch, sr_jw *w) {
    sr_jw_object_begin(w);
    int status = 400;
    if (m->result == MOCK_RESULT_INVALID || m->result == MOCK_RESULT_REJECTED) {
        if (batch) sr_jw_field_str(w, "status", "rejected");
        sr_jw_field_str(w, "error", m->result == MOCK_RESULT_INVALID ? m->problem : "invalid number");
        if (batch && m->id_json && m->result == MOCK_RESULT_REJECTED) {
            sr_jw_key(w, "id");
            sr_jw_json(w, m->id_json);
        }
    } else {
        status = 200;
        sr_jw_field_str(w, "message_id", m->provider_id);
        sr_jw_field_str(w, "status", "accepted");
        if (m->result == MOCK_RESULT_DUPLICATE) sr_jw_field_bool(w, "duplicate", true);
        if (m->id_json) {
            sr_jw_key(w, "id");
            sr_jw_json(w, m->id_json); /* as the client wrote it */
        }
    }
    sr_jw_object_end(w);
    return status;
}

static int mock_write_mock(const mock_send_ctx *ctx, sr_buf *out) {
    sr_jw w;
    sr_jw_init(&w, out);
    if (!ctx->batch) return mock_write_mock_result(&ctx->msgs[0], false, &w);
    sr_jw_object_begin(&w);
    sr_jw_key(&w, "results");
    sr_jw_array_begin(&w);
    for (size_t i = 0; i < ctx->count; i++) mock_write_mock_result(&ctx->msgs[i], true, &w);
    sr_jw_array_end(&w);
    sr_jw_object_end(&w);
    return 200;
}

/* Request-level failures: {"error": "..."} (mock and generic). */
int mock_write_error_answer(mock_failure f, const char *detail, sr_buf *out) {
    static const int http[] = {401, 503, 429, 400};
    static const char *const text[] = {"unauthorized", "unavailable", "rate limited", NULL};
    sr_jw w;
    sr_jw_init(&w, out);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "error", text[f] ? text[f] : detail);
    sr_jw_object_end(&w);
    return http[f];
}

/* Authorization: Bearer KEY or X-API-Key: KEY (mock and generic). */
bool mock_bearer_auth_ok(const mock_provider *mp, const sr_http_request *req, const char *account) {
    (void)account;
    const char *key = mp->set.auth_key;
    return !key || mock_header_is(req, "authorization", "Bearer ", key) || mock_header_is(req, "x-api-key", "", key);
}

void mock_format_id_mock(const mock_provider *mp, uint64_t n, char *out) {
    snprintf(out, MOCK_ID_LEN, "%s%" PRIu64, mp->id_prefix, n);
}

bool mock_is_send_path_mock(const char *path, char *account, size_t account_len) {
    (void)account;
    (void)account_len;
    return strcmp(path, "/send") == 0 || strcmp(path, "/") == 0;
}

/* {"message_id","status":"DELIVRD"|"UNDELIV","to","timestamp"}, with "part"
 * and "parts" for a part of a multipart message; X-Signature when signed. */
void mock_dlr_build_mock(const mock_dlr *d, const char *url, mock_post *post) {
    (void)url;
    char timestamp[32];
    mock_rfc3339(mock_wall_ms(), timestamp, sizeof timestamp);
    mock_post_init(post, mock_ct_json);
    sr_jw w;
    sr_jw_init(&w, &post->body);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "message_id", d->message_id);
    sr_jw_field_str(&w, "status", d->undelivered ? "UNDELIV" : "DELIVRD");
    sr_jw_field_strn(&w, "to", d->to, d->to_len);
    sr_jw_field_str(&w, "timestamp", timestamp);
    if (d->parts) {
        sr_jw_field_uint(&w, "part", d->part);
        sr_jw_field_uint(&w, "parts", d->parts);
    }
    sr_jw_object_end(&w);
    mock_post_sign_body(d->mp, post);
}

/* {"message_id","from","to","text","timestamp"}; X-Signature when signed. */
void mock_inbound_build_mock(mock_provider *mp, const mock_inbound_sms *sms, const char *url, mock_post *post) {
    (void)url;
    char timestamp[32];
    mock_rfc3339(sms->now_ms, timestamp, sizeof timestamp);
    mock_post_init(post, mock_ct_json);
    sr_jw w;
    sr_jw_init(&w, &post->body);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "message_id", sms->id);
    sr_jw_field_str(&w, "from", sms->from);
    sr_jw_field_str(&w, "to", sms->to);
    sr_jw_field_strn(&w, "text", sms->text, sms->text_len);
    sr_jw_field_str(&w, "timestamp", timestamp);
    sr_jw_object_end(&w);
    mock_post_sign_body(mp, post);
}

const mock_dialect mock_dialect_mock = {
    .name = "mock",
    .send_methods = MOCK_POST,
    .per_part_reports = true,
    .is_send_path = mock_is_send_path_mock,
    .format_id = mock_format_id_mock,
    .header_auth_ok = mock_bearer_auth_ok,
    .parse_send = mock_parse_mock,
    .write_answer = mock_write_mock,
    .write_failure = mock_write_error_answer,
    .dlr_build = mock_dlr_build_mock,
    .inbound_build = mock_inbound_build_mock,
};
