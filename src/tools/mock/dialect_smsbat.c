/* dialect_smsbat: the smsbat dialect of the mock provider. */
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

int mock_write_smsbat(const mock_send_ctx *ctx, sr_buf *out) {
    sr_buf_printf(out, "{\"messagelistId\":%" PRIu64 ",\"messages\":[", ctx->list_id);
    for (size_t i = 0; i < ctx->count; i++) {
        const mock_msg *m = &ctx->msgs[i];
        bool taken = m->result == MOCK_RESULT_ACCEPTED || m->result == MOCK_RESULT_DUPLICATE;
        if (i) sr_buf_putc(out, ',');
        sr_buf_puts(out, "{\"messageId\":");
        if (taken) sr_buf_json_str(out, m->provider_id, strlen(m->provider_id));
        else sr_buf_puts(out, "null");
        sr_buf_printf(out, ",\"status\":\"%s\",\"parts\":%u", taken ? "accepted" : "rejected", taken ? m->parts : 0);
        if (m->id_json) {
            sr_buf_puts(out, ",\"customerMessageId\":");
            sr_json_write(out, m->id_json);
        }
        if (m->to) mock_put_str(out, "to", m->to, m->to_len);
        if (m->result == MOCK_RESULT_REJECTED) {
            sr_buf_puts(out, ",\"message\":\"invalid phone number\"");
        } else if (m->result == MOCK_RESULT_INVALID) {
            sr_buf_puts(out, ",\"message\":");
            mock_put_problem(out, m);
        }
        sr_buf_putc(out, '}');
    }
    sr_buf_puts(out, "]}");
    return 200;
}

/* SMSBat: GET /bat/message/{messageId}. */
void mock_poll_smsbat(mock_provider *mp, sr_http_request *req, const char *escaped_id) {
    if (!mock_header_auth_ok(mp, MOCK_DIALECT_SMSBAT, req, NULL)) {
        mock_poll_unauthorized(mp, MOCK_DIALECT_SMSBAT, req);
        return;
    }
    sr_buf id;
    sr_buf_init(&id);
    mock_form_unescape(&id, escaped_id, strlen(escaped_id));
    sr_buf_cstr(&id);
    const mock_slot *s = id.len ? mock_recall(&mp->statuses, &mp->statuses_old, id.data, id.len) : NULL;
    sr_buf out;
    sr_buf_init(&out);
    if (!s) {
        sr_buf_puts(&out, "{\"status\":404,\"error\":\"Not Found\",\"message\":\"message not found\"}");
        sr_http_respond(req, 404, "application/json", out.data, out.len, NULL);
    } else {
        uint64_t at_ms;
        static const char *const words[] = {"processing", "delivered", "undeliverable"};
        mock_state state = mock_status_state(mp, s, &at_ms);
        const char *list_id = mock_slot_value(s);
        sr_buf_printf(&out, "{\"messagelistId\":%s,\"messageId\":", list_id[0] ? list_id : "null");
        sr_buf_json_str(&out, id.data, id.len);
        sr_buf_printf(&out, ",\"deliverystatus\":\"%s\",\"partscount\":%u,\"cost\":0.05}", words[state],
                      (unsigned)(s->count >> 1 & 0x7f));
        sr_http_respond(req, 200, "application/json", out.data, out.len, NULL);
    }
    sr_buf_free(&out);
    sr_buf_free(&id);
}
