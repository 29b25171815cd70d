/* dialect_smsc: SMSC's API: GET|POST /sys/send.php with a form (credentials
 * in it; one message per phone of "phones"; the client's "id" names the
 * message with its phone), errors answered 200 with an error_code, statuses
 * polled with GET|POST /sys/status.php; no pushed reports, no inbound webhook. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tools/mock/mock_internal.h"
#include "core/buf.h"

/* Field orders; the credentials come first in both lists. */
enum { SMSC_LOGIN, SMSC_PSW, SMSC_APIKEY, SMSC_PHONES, SMSC_MES, SMSC_SENDER, SMSC_ID };
static const char *const mock_smsc_send_fields[] = {"login", "psw", "apikey", "phones", "mes", "sender", "id", NULL};

enum { SMSC_STATUS_PHONE = 3, SMSC_STATUS_ID };
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
static const char *mock_parse_smsc(mock_send_ctx *ctx, const sr_http_request *req) {
    mock_fields *f = &ctx->fields;
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
static void mock_put_smsc_id(sr_jw *w, const char *id, size_t len) {
    if (mock_all_digits(id, len) && len < 16 && id[0] != '0') sr_jw_raw(w, id, len);
    else
        sr_jw_string(w, id, len);
}

static int mock_write_smsc(const mock_send_ctx *ctx, sr_buf *out) {
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
    sr_jw w;
    sr_jw_init(&w, out);
    sr_jw_object_begin(&w);
    if (taken) {
        sr_jw_key(&w, "id");
        mock_put_smsc_id(&w, taken->provider_id, strlen(taken->provider_id));
        sr_jw_field_uint(&w, "cnt", parts);
    } else {
        sr_jw_field_str(&w, "error", invalid ? "parameters error" : "invalid phone number");
        sr_jw_field_int(&w, "error_code", invalid ? 1 : 7);
    }
    sr_jw_object_end(&w);
    return 200;
}

/* SMSC answers its own errors with HTTP 200 and an error_code; a 503 comes
 * from its front. */
static int smsc_write_failure(mock_failure f, const char *detail, sr_buf *out) {
    (void)detail;
    static const char *const text[] = {"authorise error", "service temporarily unavailable",
                                       "duplicate request, wait a minute", "parameters error"};
    static const int code[] = {2, 0, 9, 1};
    sr_jw w;
    sr_jw_init(&w, out);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "error", text[f]);
    if (code[f]) sr_jw_field_int(&w, "error_code", code[f]);
    sr_jw_object_end(&w);
    return f == MOCK_FAIL_UNAVAILABLE ? 503 : 200;
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

static size_t smsc_list_count(const char *list, size_t len) {
    size_t count = 0, at = 0, item_len;
    const char *item;
    if (list)
        while (mock_list_next(list, len, &at, &item, &item_len)) count++;
    return count;
}

/* Credentials in the form: apikey, or "login:psw", against --auth-key. */
static bool smsc_body_auth_ok(const mock_provider *mp, const mock_fields *f) {
    const char *key = mp->set.auth_key;
    if (!key) return true;
    size_t len;
    const char *apikey = mock_field(f, SMSC_APIKEY, &len);
    return (apikey && mock_equal(apikey, len, key)) || mock_fields_pair_is(f, SMSC_LOGIN, SMSC_PSW, key);
}

/* The members of one status: {"status","last_date","last_timestamp","err"}
 * (-3 for an unknown message), without the closing brace. */
static void smsc_poll_status(mock_provider *mp, sr_jw *w, const sr_buf *key) {
    const mock_slot *s = mock_recall(&mp->statuses, &mp->statuses_old, key->data, key->len);
    sr_jw_object_begin(w);
    if (!s) {
        sr_jw_field_int(w, "status", -3);
        sr_jw_field_int(w, "err", 0);
        return;
    }
    uint64_t at_ms;
    static const int codes[] = {0, 1, 20};
    mock_state state = mock_status_state(mp, s, &at_ms);
    char when[32];
    mock_format_time(at_ms, "%d.%m.%Y %H:%M:%S", when, sizeof when);
    sr_jw_field_int(w, "status", codes[state]);
    sr_jw_field_str(w, "last_date", when);
    sr_jw_field_uint(w, "last_timestamp", at_ms / 1000);
    sr_jw_field_int(w, "err", 0);
}

/* The statuses of the messages named by the lists ids and phones (count
 * items each, in the same order); as a list, each names its id and phone. */
static void smsc_poll_write(mock_provider *mp, sr_jw *w, const char *ids, size_t ids_len, const char *phones,
                            size_t phones_len, size_t count) {
    bool list = memchr(ids, ',', ids_len) != NULL;
    if (list) sr_jw_array_begin(w);
    size_t id_at = 0, phone_at = 0, id_len = 0, phone_len = 0;
    const char *id = NULL, *phone = NULL;
    sr_buf key;
    sr_buf_init(&key);
    for (size_t i = 0; i < count; i++) {
        mock_list_next(ids, ids_len, &id_at, &id, &id_len);
        mock_list_next(phones, phones_len, &phone_at, &phone, &phone_len);
        sr_buf_reset(&key);
        sr_buf_append(&key, id, id_len);
        sr_buf_putc(&key, ':');
        mock_put_digits(&key, phone, phone_len);
        smsc_poll_status(mp, w, &key);
        if (list) {
            sr_jw_key(w, "id");
            mock_put_smsc_id(w, id, id_len);
            sr_jw_field_strn(w, "phone", phone, phone_len);
        }
        sr_jw_object_end(w);
    }
    sr_buf_free(&key);
    if (list) sr_jw_array_end(w);
}

/* GET|POST /sys/status.php with id and phone (comma-separated lists in the
 * same order; a comma anywhere asks for the list answer). */
static void smsc_poll(mock_provider *mp, sr_http_request *req) {
    mock_fields f;
    mock_fields_init(&f);
    mock_fields_load(&f, mock_smsc_status_fields, req, NULL);
    sr_buf out;
    sr_buf_init(&out);
    sr_jw w;
    sr_jw_init(&w, &out);
    size_t ids_len, phones_len;
    const char *ids = mock_field(&f, SMSC_STATUS_ID, &ids_len);
    const char *phones = mock_field(&f, SMSC_STATUS_PHONE, &phones_len);
    size_t count = smsc_list_count(ids, ids_len);
    if (!smsc_body_auth_ok(mp, &f)) {
        mock_poll_unauthorized(mp, req);
    } else if (!ids || !phones || count == 0 || count != smsc_list_count(phones, phones_len)) {
        smsc_write_failure(MOCK_FAIL_BAD_REQUEST, NULL, &out);
        sr_http_respond(req, 200, "application/json", out.data, out.len, NULL);
    } else {
        smsc_poll_write(mp, &w, ids, ids_len, phones, phones_len, count);
        sr_http_respond(req, 200, "application/json", out.data, out.len, NULL);
    }
    sr_buf_free(&out);
    mock_fields_free(&f);
}

static bool smsc_is_poll_path(const char *path) { return strcmp(path, "/sys/status.php") == 0; }

static bool smsc_is_send_path(const char *path, char *account, size_t account_len) {
    (void)account;
    (void)account_len;
    return strcmp(path, "/sys/send.php") == 0;
}

/* SMSC's ids are small numbers (its older libraries keep them in 32 bits). */
static void smsc_format_id(const mock_provider *mp, uint64_t n, char *out) {
    snprintf(out, MOCK_ID_LEN, "%" PRIu64, mp->start_ms / 1000 % 100000 * 10000 + n);
}

/* SMSC answers with the client's id; without one, the request gets one id. */
static void smsc_assign_id(mock_send_ctx *ctx, mock_msg *m) {
    if (m->client_id) {
        snprintf(m->provider_id, sizeof m->provider_id, "%.*s", (int)m->client_id_len, m->client_id);
        return;
    }
    if (!ctx->request_id[0]) mock_new_id(ctx->mp, ctx->dialect, ctx->request_id);
    sr_str_copy(m->provider_id, sizeof m->provider_id, ctx->request_id);
}

const mock_dialect mock_dialect_smsc = {
    .name = "smsc",
    .send_methods = MOCK_GET | MOCK_POST,
    .key_by_phone = true,
    .is_send_path = smsc_is_send_path,
    .format_id = smsc_format_id,
    .body_auth_ok = smsc_body_auth_ok,
    .parse_send = mock_parse_smsc,
    .assign_id = smsc_assign_id,
    .write_answer = mock_write_smsc,
    .write_failure = smsc_write_failure,
    .is_poll_path = smsc_is_poll_path,
    .poll_methods = MOCK_GET | MOCK_POST,
    .poll = smsc_poll,
};
