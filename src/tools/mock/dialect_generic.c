/* dialect_generic: the generic dialect of the mock provider. */
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

const char *mock_parse_generic(mock_send_ctx *ctx, const sr_http_request *req) {
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

int mock_write_generic(const mock_send_ctx *ctx, sr_buf *out) {
    const mock_msg *m = &ctx->msgs[0];
    if (m->result == MOCK_RESULT_INVALID || m->result == MOCK_RESULT_REJECTED) {
        sr_buf_puts(out, "{\"error\":");
        const char *text = m->result == MOCK_RESULT_INVALID ? m->problem : "invalid number";
        sr_buf_json_str(out, text, strlen(text));
        sr_buf_putc(out, '}');
        return 400;
    }
    sr_buf_puts(out, "{\"message_id\":");
    sr_buf_json_str(out, m->provider_id, strlen(m->provider_id));
    sr_buf_puts(out, ",\"status\":\"accepted\"}");
    return 200;
}
