/* dialect_agiletelecom: the agiletelecom dialect of the mock provider. */
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

/* Agile Telecom: one message per destination of each entry. */
const char *mock_parse_agiletelecom(mock_send_ctx *ctx, const sr_http_request *req) {
    const char *bad = mock_parse_json(ctx, req);
    if (bad) return bad;
    const sr_json *list = mock_batch_list(ctx, &bad);
    if (!list) return bad;
    const sr_json *global = sr_json_get(ctx->doc.root, "globalId");
    if (global && (global->type == SR_JSON_STRING || global->type == SR_JSON_NUMBER)) ctx->global_id = global;
    size_t count = 0;
    for (const sr_json *e = list->child; e; e = e->next) {
        const sr_json *dests = e->type == SR_JSON_OBJECT ? sr_json_get(e, "destinations") : NULL;
        count += dests && dests->type == SR_JSON_ARRAY && dests->count > 0 ? dests->count : 1;
    }
    if (count > MOCK_MAX_BATCH) return "too many destinations (at most 10000)";
    mock_ctx_alloc(ctx, count);
    size_t i = 0;
    for (const sr_json *e = list->child; e; e = e->next) {
        const sr_json *dests = e->type == SR_JSON_OBJECT ? sr_json_get(e, "destinations") : NULL;
        if (!dests || dests->type != SR_JSON_ARRAY || dests->count == 0) {
            mock_msg *m = &ctx->msgs[i++];
            if (e->type != SR_JSON_OBJECT) m->problem = "a message must be an object";
            else mock_msg_problem(m, "destinations", !dests || dests->type == SR_JSON_NULL);
            continue;
        }
        const sr_json *ids = sr_json_get(e, "ids");
        const sr_json *id = ids && ids->type == SR_JSON_ARRAY ? ids->child : NULL;
        for (const sr_json *dest = dests->child; dest; dest = dest->next, id = id ? id->next : NULL) {
            mock_msg *m = &ctx->msgs[i++];
            if (dest->type != SR_JSON_STRING || dest->len == 0) {
                mock_msg_problem(m, "destinations", false);
                continue;
            }
            m->to = dest->str;
            m->to_len = dest->len;
            if (!mock_json_str(e, "body", false, &m->text, &m->text_len) || !m->text) {
                mock_msg_problem(m, "body", !sr_json_get(e, "body"));
                continue;
            }
            if (!mock_json_str(e, "sender", false, &m->from, &m->from_len)) {
                mock_msg_problem(m, "sender", false);
                continue;
            }
            if (id && (id->type == SR_JSON_STRING || id->type == SR_JSON_NUMBER)) {
                m->client_id = id->str;
                m->client_id_len = id->len;
                m->id_json = id;
            }
        }
    }
    return NULL;
}

int mock_write_agiletelecom(const mock_send_ctx *ctx, sr_buf *out) {
    bool any = false;
    for (size_t i = 0; i < ctx->count; i++)
        any = any || ctx->msgs[i].result == MOCK_RESULT_ACCEPTED || ctx->msgs[i].result == MOCK_RESULT_DUPLICATE;
    sr_buf_puts(out, "{\"globalId\":");
    if (ctx->global_id) sr_json_write(out, ctx->global_id);
    else sr_buf_printf(out, "\"g%" PRIx64 "-%" PRIu64 "\"", ctx->mp->start_ms, ctx->list_id);
    sr_buf_printf(out, ",\"accepted\":%s,\"results\":[", any ? "true" : "false");
    for (size_t i = 0; i < ctx->count; i++) {
        const mock_msg *m = &ctx->msgs[i];
        if (i) sr_buf_putc(out, ',');
        sr_buf_puts(out, "{\"destination\":");
        if (m->to) sr_buf_json_str(out, m->to, m->to_len);
        else sr_buf_puts(out, "null");
        if (m->result == MOCK_RESULT_ACCEPTED || m->result == MOCK_RESULT_DUPLICATE) {
            mock_put_str(out, "id", m->provider_id, strlen(m->provider_id));
            sr_buf_puts(out, ",\"accepted\":true,\"statusCode\":200}");
            continue;
        }
        sr_buf_puts(out, ",\"id\":null,\"accepted\":false,\"statusCode\":400,\"description\":");
        if (m->result == MOCK_RESULT_INVALID) mock_put_problem(out, m);
        else sr_buf_puts(out, "\"invalid destination\"");
        sr_buf_putc(out, '}');
    }
    sr_buf_puts(out, "]}");
    return 200;
}
