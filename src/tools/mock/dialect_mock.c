/* dialect_mock: our own "mock" JSON API, the default dialect: POST /send (or /)
 * with one message or a batch {"messages":[...]}, client ids "id", JSON
 * reports one per part, JSON inbound posts, X-Signature under --webhook-secret.
 * The generic dialect (dialect_generic.c) shares its answers and webhooks. */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <uv.h>

#include "core/buf.h"
#include "core/log.h"
#include "codec/crypto.h"
#include "codec/json.h"
#include "http/http_client.h"
#include "http/http_server.h"
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
static int mock_write_mock_result(const mock_msg *m, bool batch, sr_buf *out) {
    switch (m->result) {
    case MOCK_RESULT_INVALID:
        sr_buf_puts(out, batch ? "{\"status\":\"rejected\",\"error\":" : "{\"error\":");
        sr_buf_json_str(out, m->problem, strlen(m->problem));
        sr_buf_putc(out, '}');
        return 400;
    case MOCK_RESULT_REJECTED:
        sr_buf_puts(out, batch ? "{\"status\":\"rejected\",\"error\":\"invalid number\""
                               : "{\"error\":\"invalid number\"");
        if (batch && m->id_json) {
            sr_buf_puts(out, ",\"id\":");
            sr_json_write(out, m->id_json);
        }
        sr_buf_putc(out, '}');
        return 400;
    default:
        sr_buf_puts(out, "{\"message_id\":");
        sr_buf_json_str(out, m->provider_id, strlen(m->provider_id));
        sr_buf_puts(out, ",\"status\":\"accepted\"");
        if (m->result == MOCK_RESULT_DUPLICATE) sr_buf_puts(out, ",\"duplicate\":true");
        if (m->id_json) {
            sr_buf_puts(out, ",\"id\":");
            sr_json_write(out, m->id_json); /* as the client wrote it */
        }
        sr_buf_putc(out, '}');
        return 200;
    }
}

static int mock_write_mock(const mock_send_ctx *ctx, sr_buf *out) {
    if (!ctx->batch) return mock_write_mock_result(&ctx->msgs[0], false, out);
    sr_buf_puts(out, "{\"results\":[");
    for (size_t i = 0; i < ctx->count; i++) {
        if (i) sr_buf_putc(out, ',');
        mock_write_mock_result(&ctx->msgs[i], true, out);
    }
    sr_buf_puts(out, "]}");
    return 200;
}

/* Request-level failures: {"error": "..."} (mock and generic). */
int mock_write_error_answer(mock_failure f, const char *detail, sr_buf *out) {
    static const int http[] = {401, 503, 429, 400};
    static const char *const text[] = {"unauthorized", "unavailable", "rate limited", NULL};
    const char *message = text[f] ? text[f] : detail;
    sr_buf_puts(out, "{\"error\":");
    sr_buf_json_str(out, message, strlen(message));
    sr_buf_putc(out, '}');
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
    sr_buf *b = &post->body;
    mock_post_init(post, mock_ct_json);
    sr_buf_puts(b, "{\"message_id\":");
    sr_buf_json_str(b, d->message_id, strlen(d->message_id));
    sr_buf_puts(b, d->undelivered ? ",\"status\":\"UNDELIV\",\"to\":" : ",\"status\":\"DELIVRD\",\"to\":");
    sr_buf_json_str(b, d->to, d->to_len);
    sr_buf_puts(b, ",\"timestamp\":\"");
    sr_buf_puts(b, timestamp);
    sr_buf_putc(b, '"');
    if (d->parts) sr_buf_printf(b, ",\"part\":%u,\"parts\":%u", d->part, d->parts);
    sr_buf_putc(b, '}');
    mock_post_sign_body(d->mp, post);
}

/* {"message_id","from","to","text","timestamp"}; X-Signature when signed. */
void mock_inbound_build_mock(mock_provider *mp, const mock_inbound_sms *sms, const char *url, mock_post *post) {
    (void)url;
    char timestamp[32];
    mock_rfc3339(sms->now_ms, timestamp, sizeof timestamp);
    sr_buf *b = &post->body;
    mock_post_init(post, mock_ct_json);
    sr_buf_puts(b, "{\"message_id\":");
    sr_buf_json_str(b, sms->id, strlen(sms->id));
    mock_put_str(b, "from", sms->from, strlen(sms->from));
    mock_put_str(b, "to", sms->to, strlen(sms->to));
    mock_put_str(b, "text", sms->text, sms->text_len);
    mock_put_str(b, "timestamp", timestamp, strlen(timestamp));
    sr_buf_putc(b, '}');
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
