/* dialect_generic: what the generic adapter speaks: POST /send (or /) with one
 * message {"to","from","message"}, the client id in the Idempotency-Key
 * header; failures, reports and inbound posts as the mock dialect's. */

#include "tools/mock/mock_internal.h"

static const char *mock_parse_generic(mock_send_ctx *ctx, const sr_http_request *req) {
    const char *bad = mock_parse_json(ctx, req);
    if (bad) return bad;
    const sr_json *root = ctx->doc.root;
    if (root->type != SR_JSON_OBJECT) return "invalid request: the body must be a JSON object";
    if (sr_json_get(root, "messages")) return "invalid request: one message per request (no \"messages\" batch)";
    mock_ctx_alloc(ctx, 1);
    mock_msg *m = &ctx->msgs[0];
    mock_msg_mock(m, root, false);
    size_t len;
    const char *key = sr_http_header_get(req, "idempotency-key", &len);
    if (key && len) {
        m->client_id = key;
        m->client_id_len = len;
    }
    return NULL;
}

static int mock_write_generic(const mock_send_ctx *ctx, sr_buf *out) {
    const mock_msg *m = &ctx->msgs[0];
    sr_jw w;
    sr_jw_init(&w, out);
    sr_jw_object_begin(&w);
    int status = 200;
    if (m->result == MOCK_RESULT_INVALID || m->result == MOCK_RESULT_REJECTED) {
        sr_jw_field_str(&w, "error", m->result == MOCK_RESULT_INVALID ? m->problem : "invalid number");
        status = 400;
    } else {
        sr_jw_field_str(&w, "message_id", m->provider_id);
        sr_jw_field_str(&w, "status", "accepted");
    }
    sr_jw_object_end(&w);
    return status;
}

const mock_dialect mock_dialect_generic = {
    .name = "generic",
    .send_methods = MOCK_POST,
    .per_part_reports = true,
    .is_send_path = mock_is_send_path_mock,
    .format_id = mock_format_id_mock,
    .header_auth_ok = mock_bearer_auth_ok,
    .parse_send = mock_parse_generic,
    .write_answer = mock_write_generic,
    .write_failure = mock_write_error_answer,
    .dlr_build = mock_dlr_build_mock,
    .inbound_build = mock_inbound_build_mock,
};
