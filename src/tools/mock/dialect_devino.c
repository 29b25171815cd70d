/* dialect_devino: the devino dialect of the mock provider. */
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

int mock_write_devino(const mock_send_ctx *ctx, sr_buf *out) {
    sr_buf_puts(out, "{\"result\":[");
    for (size_t i = 0; i < ctx->count; i++) {
        const mock_msg *m = &ctx->msgs[i];
        if (i) sr_buf_putc(out, ',');
        if (m->result == MOCK_RESULT_ACCEPTED || m->result == MOCK_RESULT_DUPLICATE) {
            sr_buf_puts(out, "{\"code\":\"OK\",\"messageId\":");
            sr_buf_json_str(out, m->provider_id, strlen(m->provider_id));
            sr_buf_putc(out, '}');
            continue;
        }
        const char *key = "invalid", *field = "to";
        if (m->result == MOCK_RESULT_INVALID) {
            key = m->problem_missing ? "must.be.not.null" : "invalid";
            field = m->problem_field;
        }
        sr_buf_printf(out, "{\"code\":\"REJECTED\",\"messageId\":null,\"segmentsId\":null,\"reasons\":[{\"key\":\"%s\","
                           "\"ref\":\"messages[%zu]%s%s\"}],\"description\":",
                      key, i, field ? "." : "", field ? field : "");
        if (m->result == MOCK_RESULT_INVALID) mock_put_problem(out, m);
        else sr_buf_puts(out, "\"invalid phone number\"");
        sr_buf_putc(out, '}');
    }
    sr_buf_puts(out, "]}");
    return 200;
}

/* Devino: POST /sms-stat/statuses/get-by-ids with a JSON array of ids
 * (numbers or strings); unknown ids are left out of the answer. */
void mock_poll_devino(mock_provider *mp, sr_http_request *req) {
    if (!mock_header_auth_ok(mp, MOCK_DIALECT_DEVINO, req, NULL)) {
        mock_poll_unauthorized(mp, MOCK_DIALECT_DEVINO, req);
        return;
    }
    sr_json_doc doc;
    char err[160];
    sr_buf out;
    sr_buf_init(&out);
    if (sr_json_parse(&doc, req->body, req->body_len, err, sizeof err) != 0 || doc.root->type != SR_JSON_ARRAY ||
        doc.root->count == 0 || doc.root->count > MOCK_DEVINO_POLL_MAX) {
        bool too_many = doc.root && doc.root->type == SR_JSON_ARRAY && doc.root->count > MOCK_DEVINO_POLL_MAX;
        sr_buf_printf(&out, "{\"reasons\":[{\"key\":\"%s\",\"ref\":\"ids\"}],\"description\":\"%s\"}",
                      too_many ? "too.many.messages" : "invalid",
                      too_many ? "at most 500 ids per request" : "the body must be a JSON array of 1 to 500 ids");
        sr_http_respond(req, 400, "application/json", out.data, out.len, NULL);
        goto done;
    }
    sr_buf_puts(&out, "{\"result\":[");
    bool first = true;
    for (const sr_json *v = doc.root->child; v; v = v->next) {
        if (v->type != SR_JSON_STRING && v->type != SR_JSON_NUMBER) continue;
        const mock_slot *s = mock_recall(&mp->statuses, &mp->statuses_old, v->str, v->len);
        if (!s) continue;
        uint64_t at_ms;
        static const char *const words[] = {"ENROUTE", "DELIVERED", "UNDELIVERABLE"};
        mock_state state = mock_status_state(mp, s, &at_ms);
        char when[32];
        mock_format_time(at_ms, "%Y-%m-%d %H:%M:%S", when, sizeof when);
        if (!first) sr_buf_putc(&out, ',');
        first = false;
        sr_buf_puts(&out, "{\"smsId\":");
        if (mock_all_digits(v->str, v->len)) sr_buf_append(&out, v->str, v->len); /* a number, digits exact */
        else sr_buf_json_str(&out, v->str, v->len);
        sr_buf_printf(&out, ",\"status\":\"%s\",\"statusDateTime\":\"%s\"}", words[state], when);
    }
    sr_buf_puts(&out, "]}");
    sr_http_respond(req, 200, "application/json", out.data, out.len, NULL);
done:
    sr_json_doc_free(&doc);
    sr_buf_free(&out);
}
