/* dialect_mock: the mock dialect of the mock provider. */
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

const char *mock_parse_mock(mock_send_ctx *ctx, const sr_http_request *req) {
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

int mock_write_mock(const mock_send_ctx *ctx, sr_buf *out) {
    if (!ctx->batch) return mock_write_mock_result(&ctx->msgs[0], false, out);
    sr_buf_puts(out, "{\"results\":[");
    for (size_t i = 0; i < ctx->count; i++) {
        if (i) sr_buf_putc(out, ',');
        mock_write_mock_result(&ctx->msgs[i], true, out);
    }
    sr_buf_puts(out, "]}");
    return 200;
}
