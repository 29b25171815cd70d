/* dialect_smsc: the smsc dialect of the mock provider. */
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

static const char *const mock_smsc_send_fields[] = {"login", "psw", "apikey", "phones", "mes", "sender", "id", NULL};

static const char *const mock_smsc_status_fields[] = {"login", "psw", "apikey", "phone", "id", NULL};

/* An SMSC client id: 1..40 letters, digits and ".-_". */
static bool mock_smsc_id_ok(const char *id, size_t len) {
    if (len == 0 || len > MOCK_SMSC_ID_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == '_'))
            return false;
    }
    return true;
}

/* SMSC: a form (body or query); one message per phone of "phones". */
const char *mock_parse_smsc(mock_send_ctx *ctx, const sr_http_request *req, mock_fields *f) {
    mock_fields_load(f, mock_smsc_send_fields, req, NULL);
    size_t phones_len, mes_len, sender_len, id_len;
    const char *phones = mock_field(f, SMSC_PHONES, &phones_len);
    const char *mes = mock_field(f, SMSC_MES, &mes_len);
    const char *sender = mock_field(f, SMSC_SENDER, &sender_len);
    const char *id = mock_field(f, SMSC_ID, &id_len);
    if (!phones || !phones_len) return "phones is missing";
    if (!mes) return "mes is missing";
    if (id && !mock_smsc_id_ok(id, id_len)) return "id must be 1 to 40 letters, digits or .-_";
    size_t count = 1;
    for (size_t i = 0; i < phones_len; i++) count += phones[i] == ',' || phones[i] == ';';
    if (count > MOCK_MAX_BATCH) return "too many phones";
    mock_ctx_alloc(ctx, count);
    size_t n = 0;
    for (size_t start = 0; start <= phones_len;) {
        size_t end = start;
        while (end < phones_len && phones[end] != ',' && phones[end] != ';') end++;
        size_t a = start, b = end;
        while (a < b && phones[a] == ' ') a++;
        while (b > a && phones[b - 1] == ' ') b--;
        if (b > a) {
            mock_msg *m = &ctx->msgs[n++];
            m->to = phones + a;
            m->to_len = b - a;
            m->text = mes;
            m->text_len = mes_len;
            if (sender && sender_len) {
                m->from = sender;
                m->from_len = sender_len;
            }
            if (id) {
                m->client_id = id;
                m->client_id_len = id_len;
            }
        }
        start = end + 1;
    }
    ctx->count = n;
    if (n == 0) return "phones is empty";
    return NULL;
}

/* An id as SMSC writes it: a JSON number when it is digits, else a string. */
static void mock_put_smsc_id(sr_buf *out, const char *id, size_t len) {
    if (mock_all_digits(id, len) && len < 16 && id[0] != '0') sr_buf_append(out, id, len);
    else sr_buf_json_str(out, id, len);
}

int mock_write_smsc(const mock_send_ctx *ctx, sr_buf *out) {
    const mock_msg *taken = NULL;
    bool invalid = false;
    unsigned parts = 0;
    for (size_t i = 0; i < ctx->count; i++) {
        const mock_msg *m = &ctx->msgs[i];
        if (m->result == MOCK_RESULT_ACCEPTED || m->result == MOCK_RESULT_DUPLICATE) {
            if (!taken) taken = m;
            parts += m->parts;
        }
        invalid = invalid || m->result == MOCK_RESULT_INVALID;
    }
    if (taken) {
        sr_buf_puts(out, "{\"id\":");
        mock_put_smsc_id(out, taken->provider_id, strlen(taken->provider_id));
        sr_buf_printf(out, ",\"cnt\":%u}", parts);
    } else if (invalid) {
        sr_buf_puts(out, "{\"error\":\"parameters error\",\"error_code\":1}");
    } else {
        sr_buf_puts(out, "{\"error\":\"invalid phone number\",\"error_code\":7}");
    }
    return 200;
}

/* The next item of a comma-separated list at *at (advanced past it).
 * false at the end; a trailing comma ends the list. */
static bool mock_list_next(const char *list, size_t len, size_t *at, const char **item, size_t *item_len) {
    if (*at >= len) return false;
    size_t end = *at;
    while (end < len && list[end] != ',') end++;
    *item = list + *at;
    *item_len = end - *at;
    *at = end + 1;
    return true;
}

/* SMSC: GET|POST /sys/status.php with id and phone (comma-separated lists
 * in the same order; a comma anywhere asks for the list answer). */
void mock_poll_smsc(mock_provider *mp, sr_http_request *req) {
    mock_fields f;
    mock_fields_init(&f);
    mock_fields_load(&f, mock_smsc_status_fields, req, NULL);
    sr_buf out;
    sr_buf_init(&out);
    if (!mock_body_auth_ok(mp, MOCK_DIALECT_SMSC, &f)) {
        mock_poll_unauthorized(mp, MOCK_DIALECT_SMSC, req);
        goto done;
    }
    size_t ids_len, phones_len;
    const char *ids = mock_field(&f, SMSC_STATUS_ID, &ids_len);
    const char *phones = mock_field(&f, SMSC_STATUS_PHONE, &phones_len);
    size_t id_count = 0, phone_count = 0, at = 0;
    const char *item;
    size_t item_len;
    if (ids)
        while (mock_list_next(ids, ids_len, &at, &item, &item_len)) id_count++;
    at = 0;
    if (phones)
        while (mock_list_next(phones, phones_len, &at, &item, &item_len)) phone_count++;
    if (!ids || !phones || id_count == 0 || id_count != phone_count) {
        sr_buf_puts(&out, "{\"error\":\"parameters error\",\"error_code\":1}");
        sr_http_respond(req, 200, "application/json", out.data, out.len, NULL);
        goto done;
    }
    bool list = memchr(ids, ',', ids_len) != NULL;
    if (list) sr_buf_putc(&out, '[');
    size_t id_at = 0, phone_at = 0;
    const char *id = NULL, *phone = NULL;
    size_t id_len = 0, phone_len = 0;
    sr_buf key;
    sr_buf_init(&key);
    for (size_t i = 0; i < id_count; i++) {
        mock_list_next(ids, ids_len, &id_at, &id, &id_len);
        mock_list_next(phones, phones_len, &phone_at, &phone, &phone_len);
        sr_buf_reset(&key);
        sr_buf_append(&key, id, id_len);
        sr_buf_putc(&key, ':');
        mock_put_digits(&key, phone, phone_len);
        const mock_slot *s = mock_recall(&mp->statuses, &mp->statuses_old, key.data, key.len);
        if (i) sr_buf_putc(&out, ',');
        if (!s) {
            sr_buf_puts(&out, "{\"status\":-3,\"err\":0");
        } else {
            uint64_t at_ms;
            static const int codes[] = {0, 1, 20};
            mock_state state = mock_status_state(mp, s, &at_ms);
            char when[32];
            mock_format_time(at_ms, "%d.%m.%Y %H:%M:%S", when, sizeof when);
            sr_buf_printf(&out, "{\"status\":%d,\"last_date\":\"%s\",\"last_timestamp\":%" PRIu64 ",\"err\":0",
                          codes[state], when, at_ms / 1000);
        }
        if (list) {
            sr_buf_puts(&out, ",\"id\":");
            mock_put_smsc_id(&out, id, id_len);
            mock_put_str(&out, "phone", phone, phone_len);
        }
        sr_buf_putc(&out, '}');
    }
    sr_buf_free(&key);
    if (list) sr_buf_putc(&out, ']');
    sr_http_respond(req, 200, "application/json", out.data, out.len, NULL);
done:
    sr_buf_free(&out);
    mock_fields_free(&f);
}
