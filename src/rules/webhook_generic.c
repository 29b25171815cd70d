/* webhook_generic: generic.verify, generic.parse_status and generic.parse_inbound in C for flat JSON webhooks
 * (see the header). Every rule here restates a line of lua/adapters/generic.lua or adapters/util.lua; where the Lua
 * would take a path this file does not follow, it answers "not mine" (1) and the Lua runs. */
#include "rules/webhook_generic.h"
#include "core/buf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec/crypto.h"
#include "model/message.h"

/* ---- the request ---- */

/* The value of the last header called name (any case), as the Lua request.headers has it (lower-case
 * names, a later header overwriting an earlier one); NULL when there is none. */
static const char *gw_header(const sr_webhook_request *rq, const char *name) {
    const char *v = NULL;
    for (int i = 0; i < rq->header_count; i++)
        if (strcasecmp(rq->headers[i].name, name) == 0) v = rq->headers[i].value;
    return v;
}

/* Lua's %s. */
static int gw_lua_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* s[0..*len) without leading and trailing %s (util.trim). */
static const char *gw_trim(const char *s, size_t *len) {
    while (*len && gw_lua_space(*s)) s++, (*len)--;
    while (*len && gw_lua_space(s[*len - 1])) (*len)--;
    return s;
}

/* ---- verify ---- */

/* Hex HMAC-SHA256 digits in X-Signature (generic.lua SIGNATURE_HEX_LEN). */
#define GW_SIGNATURE_HEX_LEN 64

int sr_webhook_generic_verify(const sr_webhook_request *rq, const char *secret, size_t secret_len, char *reason,
                              size_t reason_len) {
    if (!secret || secret_len == 0) return 1;
    const char *sig = gw_header(rq, "x-signature");
    size_t len = sig ? strlen(sig) : 0;
    sig = sig ? gw_trim(sig, &len) : sig;
    if (len == 0) {
        snprintf(reason, reason_len, "missing X-Signature");
        return 0;
    }
    if (len != GW_SIGNATURE_HEX_LEN) {
        snprintf(reason, reason_len, "X-Signature is not 64 hex digits");
        return 0;
    }
    unsigned char mac[SR_CRYPTO_SHA256_LEN];
    char hex[2 * SR_CRYPTO_SHA256_LEN + 1], given[GW_SIGNATURE_HEX_LEN];
    sr_crypto_hmac(SR_CRYPTO_SHA256, secret, secret_len, rq->body ? rq->body : "", rq->body ? rq->body_len : 0, mac);
    sr_crypto_hex(hex, mac, sizeof mac);
    /* Hex is compared in lower case: the case of the digits is no secret. */
    for (size_t i = 0; i < len; i++) given[i] = (char)(sig[i] >= 'A' && sig[i] <= 'Z' ? sig[i] + 32 : sig[i]);
    if (!sr_crypto_equal(hex, 2 * SR_CRYPTO_SHA256_LEN, given, len)) {
        snprintf(reason, reason_len, "X-Signature does not match");
        return 0;
    }
    return 1;
}

/* ---- the body: one flat JSON object ---- */

/* The fields status_update reads (generic.lua ID_FIELDS, REF_FIELDS, ...), in the order it tries them. */
enum {
    GW_MESSAGE_ID,
    GW_MSGID,
    GW_ID,
    GW_CLIENT_REF,
    GW_REFERENCE,
    GW_STATUS,
    GW_DLRSTATUS,
    GW_STAT,
    GW_ERROR,
    GW_ERR,
    GW_DONE_DATE,
    GW_TIMESTAMP,
    GW_PART,
    GW_PART_NUMBER,
    GW_PARTS,
    GW_TOTAL_PARTS,
    GW_FIELDS
};

static const char *const gw_names[GW_FIELDS] = {
    "message_id", "msgid", "id",        "client_ref", "reference", "status",      "dlrstatus", "stat",
    "error",      "err",   "done_date", "timestamp",  "part",      "part_number", "parts",     "total_parts"};

typedef struct gw_str {
    const char *s; /* NULL: not in the object */
    size_t len;
    int esc; /* has backslash escapes (wide scans only): gw_unescape reads it */
} gw_str;

typedef struct gw_scan {
    const char *b;
    size_t len, i;
    const char *const *names; /* the fields read, count of them */
    int count;
    int wide; /* strings may hold escapes and non-ASCII bytes (message texts do) */
} gw_scan;

static void gw_skip_ws(gw_scan *sc) {
    while (sc->i < sc->len &&
           (sc->b[sc->i] == ' ' || sc->b[sc->i] == '\t' || sc->b[sc->i] == '\n' || sc->b[sc->i] == '\r'))
        sc->i++;
}

/* A string at sc->i (its quote): 0 and *out, or -1. Without wide, of printable ASCII only and no escapes;
 * with it, bytes from 0x80 up (cjson passes them through as they are) and escapes are allowed too, checked
 * when gw_unescape reads them. Control bytes are never (cjson would take them; nobody sends them). */
static int gw_string(gw_scan *sc, gw_str *out) {
    if (sc->i >= sc->len || sc->b[sc->i] != '"') return -1;
    size_t start = ++sc->i;
    out->esc = 0;
    for (; sc->i < sc->len; sc->i++) {
        unsigned char c = (unsigned char)sc->b[sc->i];
        if (c == '"') {
            out->s = sc->b + start;
            out->len = sc->i++ - start;
            return 0;
        }
        if (c < 0x20 || ((c > 0x7e || c == '\\') && !sc->wide)) return -1;
        if (c == '\\') {
            out->esc = 1;
            if (++sc->i >= sc->len || (unsigned char)sc->b[sc->i] < 0x20) return -1;
        }
    }
    return -1;
}

static int gw_digits(gw_scan *sc) {
    size_t start = sc->i;
    while (sc->i < sc->len && sc->b[sc->i] >= '0' && sc->b[sc->i] <= '9') sc->i++;
    return sc->i > start ? 0 : -1;
}

/* A JSON number (RFC 8259 grammar, which cjson reads too), or true, false, null: 0, else -1. */
static int gw_scalar(gw_scan *sc) {
    static const char *const literals[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t n = strlen(literals[k]);
        if (sc->len - sc->i >= n && memcmp(sc->b + sc->i, literals[k], n) == 0) {
            sc->i += n;
            return 0;
        }
    }
    if (sc->i < sc->len && sc->b[sc->i] == '-') sc->i++;
    if (sc->i < sc->len && sc->b[sc->i] == '0') sc->i++;
    else if (gw_digits(sc) != 0)
        return -1;
    if (sc->i < sc->len && sc->b[sc->i] == '.' && (sc->i++, gw_digits(sc) != 0)) return -1;
    if (sc->i < sc->len && (sc->b[sc->i] == 'e' || sc->b[sc->i] == 'E')) {
        sc->i++;
        if (sc->i < sc->len && (sc->b[sc->i] == '+' || sc->b[sc->i] == '-')) sc->i++;
        if (gw_digits(sc) != 0) return -1;
    }
    return 0;
}

static int gw_escapes_read(const gw_str *v);

/* One "key": value member into f when the key is a field read: 0, or -1 (not this shape). */
static int gw_member(gw_scan *sc, gw_str *f) {
    gw_str key, value = {NULL, 0, 0};
    if (gw_string(sc, &key) != 0) return -1;
    gw_skip_ws(sc);
    if (sc->i >= sc->len || sc->b[sc->i++] != ':') return -1;
    gw_skip_ws(sc);
    int is_string = sc->i < sc->len && sc->b[sc->i] == '"';
    if ((is_string ? gw_string(sc, &value) : gw_scalar(sc)) != 0) return -1;
    if (key.esc || (value.esc && !gw_escapes_read(&value))) return -1; /* a key might spell a field read */
    for (int k = 0; k < sc->count; k++) {
        if (strlen(sc->names[k]) != key.len || memcmp(sc->names[k], key.s, key.len) != 0) continue;
        /* A field read that is not a string (a number id, null, ...) or comes twice: the Lua's. */
        if (!is_string || f[k].s) return -1;
        f[k] = value;
    }
    return 0;
}

/* The body as one flat object whose fields read (names, count of them) are strings into f: 0, or -1. */
static int gw_object(const char *body, size_t len, const char *const *names, int count, int wide, gw_str *f) {
    gw_scan sc = {body, len, 0, names, count, wide};
    memset(f, 0, (size_t)count * sizeof *f);
    gw_skip_ws(&sc);
    if (sc.i >= len || body[sc.i++] != '{') return -1;
    gw_skip_ws(&sc);
    if (sc.i < len && body[sc.i] == '}') return -1; /* no report in it: the Lua's error */
    for (;;) {
        if (gw_member(&sc, f) != 0) return -1;
        gw_skip_ws(&sc);
        if (sc.i >= len) return -1;
        char c = body[sc.i++];
        if (c == '}') break;
        if (c != ',') return -1;
        gw_skip_ws(&sc);
    }
    gw_skip_ws(&sc);
    return sc.i == len ? 0 : -1;
}

/* The 4 hex digits at s as a number, or -1. */
static long gw_hex4(const char *s) {
    long v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* The \uXXXX escape (or surrogate pair) at s[*i] (its 'u'), as cjson decodes it, in UTF-8 at out: its length,
 * or 0 when cjson would refuse it or it is U+0000 (the core's strings end there: the Lua's). */
static size_t gw_unicode(const char *s, size_t len, size_t *i, char *out) {
    if (len - *i < 5) return 0;
    long cp = gw_hex4(s + *i + 1);
    *i += 4;
    if (cp <= 0) return 0;
    if ((cp & 0xF800) == 0xD800) {
        if ((cp & 0x400) || len - *i < 7 || s[*i + 1] != '\\' || s[*i + 2] != 'u') return 0;
        long lo = gw_hex4(s + *i + 3);
        if (lo < 0 || (lo & 0xFC00) != 0xDC00) return 0;
        cp = (((cp & 0x3FF) << 10) | (lo & 0x3FF)) + 0x10000;
        *i += 6;
    }
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) return o[0] = (unsigned char)cp, 1;
    if (cp < 0x800) return o[0] = (unsigned char)(0xC0 | cp >> 6), o[1] = (unsigned char)(0x80 | (cp & 0x3F)), 2;
    int n = cp < 0x10000 ? 3 : 4;
    o[0] = (unsigned char)(n == 3 ? 0xE0 | cp >> 12 : 0xF0 | cp >> 18);
    for (int k = 1; k < n; k++) o[k] = (unsigned char)(0x80 | ((cp >> (6 * (n - 1 - k))) & 0x3F));
    return (size_t)n;
}

/* The text of string v as cjson decodes it into out (room for v->len bytes, never more is needed): 0 and
 * *n, or -1 when cjson would refuse an escape (or it is one left to the Lua). */
static int gw_unescape(const gw_str *v, char *out, size_t *n) {
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    size_t o = 0;
    for (size_t i = 0; i < v->len; i++) {
        if (v->s[i] != '\\') {
            out[o++] = v->s[i];
            continue;
        }
        char e = v->s[++i];
        const char *at = e ? strchr(from, e) : NULL;
        size_t u = e == 'u' ? gw_unicode(v->s, v->len, &i, out + o) : 0;
        if (!at && !u) return -1;
        if (u) o += u;
        else
            out[o++] = to[at - from];
    }
    *n = o;
    return 0;
}

/* Whether every escape of v is one gw_unescape reads: cjson refuses a body with a bad one, wherever it is. */
static int gw_escapes_read(const gw_str *v) {
    char *scratch = malloc(v->len + 1);
    if (!scratch) abort();
    size_t n;
    int ok = gw_unescape(v, scratch, &n) == 0;
    free(scratch);
    return ok;
}

/* ---- time stamps (util.parse_time with offset 0) ---- */

/* util.lua TIME_MAX_BYTES. */
#define GW_TIME_MAX_BYTES 64

static int gw_num(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* util.lua offset_seconds: 0 and *sec, or -1. */
static int gw_offset(const char *z, size_t len, int *sec) {
    if ((len == 1 && (*z == 'Z' || *z == 'z')) || (len == 3 && (!memcmp(z, "UTC", 3) || !memcmp(z, "GMT", 3)))) {
        *sec = 0;
        return 0;
    }
    if (len < 3 || (z[0] != '+' && z[0] != '-')) return -1;
    int hh = gw_num(z + 1, 2), mm = 0;
    if (len == 6 && z[3] == ':') mm = gw_num(z + 4, 2);
    else if (len == 5)
        mm = gw_num(z + 3, 2);
    else if (len != 3)
        return -1;
    if (hh < 0 || mm < 0 || hh > 23 || mm > 59) return -1;
    *sec = (hh * 3600 + mm * 60) * (z[0] == '-' ? -1 : 1);
    return 0;
}

/* Epoch seconds of a time stamp as util.parse_time(s, 0) reads it: 0 and *at, or -1 (nil). */
static int gw_parse_time(const char *s, size_t len, int64_t *at) {
    s = gw_trim(s, &len);
    if (len > GW_TIME_MAX_BYTES) return -1;
    int v[6];
    const char *rest;
    if (len >= 19 && s[4] == '-' && s[7] == '-' && (s[10] == 'T' || s[10] == 't' || s[10] == ' ') && s[13] == ':' &&
        s[16] == ':') {
        static const int at_[6] = {0, 5, 8, 11, 14, 17};
        for (int k = 0; k < 6; k++) v[k] = gw_num(s + at_[k], k ? 2 : 4);
        rest = s + 19;
    } else if (len == 14) {
        for (int k = 0; k < 6; k++) v[k] = gw_num(s + (k ? 2 + 2 * k : 0), k ? 2 : 4);
        rest = s + 14;
    } else {
        return -1;
    }
    for (int k = 0; k < 6; k++)
        if (v[k] < 0) return -1;
    size_t rlen = len - (size_t)(rest - s);
    if (rlen >= 2 && rest[0] == '.' && rest[1] >= '0' && rest[1] <= '9') {
        rest++, rlen--;
        while (rlen && *rest >= '0' && *rest <= '9') rest++, rlen--;
    }
    int zone = 0;
    if (rlen) {
        if (*rest == ' ') rest++, rlen--;
        if (gw_offset(rest, rlen, &zone) != 0) return -1;
    }
    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60) return -1;
    *at = sr_days_from_civil(v[0], v[1], v[2]) * 86400 + v[3] * 3600 + v[4] * 60 + v[5] - zone;
    return 0;
}

/* ---- the report ---- */

/* generic.lua STATUS: a report word (lower case) → our status name; "unknown" for any other. */
static const char *gw_status_name(const char *raw, size_t len) {
    static const char *const map[][2] = {{"delivrd", "delivered"},
                                         {"delivered", "delivered"},
                                         {"1", "delivered"},
                                         {"undeliv", "undelivered"},
                                         {"undelivered", "undelivered"},
                                         {"2", "undelivered"},
                                         {"expired", "expired"},
                                         {"rejectd", "rejected"},
                                         {"rejected", "rejected"},
                                         {"deleted", "undelivered"},
                                         {"acceptd", "accepted"},
                                         {"accepted", "accepted"},
                                         {"sent", "sent"},
                                         {"enroute", "sent"},
                                         {"unknown", "unknown"}};
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
        if (strlen(map[k][0]) == len && strncasecmp(map[k][0], raw, len) == 0) return map[k][1];
    return "unknown";
}

/* The first of fields [from, to) that is set and not empty (generic.lua first with text). */
static const gw_str *gw_first(const gw_str *f, int from, int to) {
    for (int k = from; k < to; k++)
        if (f[k].s && f[k].len) return &f[k];
    return NULL;
}

/* An error text of zeros only ("0", " 000 ") means none. */
static int gw_zero_error(const gw_str *e) {
    size_t len = e->len;
    const char *s = gw_trim(e->s, &len);
    if (len == 0) return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] != '0') return 0;
    return 1;
}

/* The time of the report (first of done_date, timestamp) in *at (0: none): 0, or -1 when one is set that
 * parse_time does not read (the Lua then tries epoch seconds). */
static int gw_report_time(const gw_str *f, int64_t *at) {
    *at = 0;
    for (int k = GW_DONE_DATE; k <= GW_TIMESTAMP; k++) {
        if (!f[k].s || !f[k].len) continue;
        return gw_parse_time(f[k].s, f[k].len, at);
    }
    return 0;
}

/* What adapter.c's adapter_read_reports makes of the update: the report in rp; 0, or -1 (the Lua's). */
static int gw_report(const gw_str *f, sr_report *rp) {
    const gw_str *id = gw_first(f, GW_MESSAGE_ID, GW_ID + 1), *ours = gw_first(f, GW_CLIENT_REF, GW_REFERENCE + 1);
    const gw_str *raw = gw_first(f, GW_STATUS, GW_STAT + 1), *err = gw_first(f, GW_ERROR, GW_ERR + 1);
    if (!raw || !(id || ours)) return -1;
    for (int k = GW_PART; k <= GW_TOTAL_PARTS; k++)
        if (f[k].s) return -1;
    int64_t at;
    if (gw_report_time(f, &at) != 0) return -1;
    memset(rp, 0, sizeof *rp);
    if (id) snprintf(rp->provider_id, sizeof rp->provider_id, "%.*s", (int)id->len, id->s);
    if (ours) snprintf(rp->message_id, sizeof rp->message_id, "%.*s", (int)ours->len, ours->s);
    int st = sr_status_parse(gw_status_name(raw->s, raw->len));
    rp->status = st == SR_ST_SENT || st == SR_ST_DELIVERED || st == SR_ST_UNDELIVERED || st == SR_ST_EXPIRED ||
                         st == SR_ST_REJECTED || st == SR_ST_ACCEPTED
                     ? st
                     : -1;
    snprintf(rp->raw_status, sizeof rp->raw_status, "%.*s", (int)raw->len, raw->s);
    if (err && !gw_zero_error(err)) snprintf(rp->error, sizeof rp->error, "%.*s", (int)err->len, err->s);
    rp->at_ms = at > 0 ? at * 1000 : 0;
    return 0;
}

/* generic.lua answer_ok. */
static void gw_answer_ok(sr_webhook_answer *ans) {
    static const char body[] = "{\"status\":\"ok\"}";
    memset(ans, 0, sizeof *ans);
    ans->status = 200;
    ans->body = strdup(body);
    ans->body_len = sizeof body - 1;
    ans->headers = calloc(2, sizeof(char *));
    if (!ans->body || !ans->headers || !(ans->headers[0] = strdup("Content-Type: application/json"))) abort();
}

/* A form is read from request.form and the query: the Lua's. Any other body that opens with '{' is JSON. */
static int gw_is_form(const sr_webhook_request *rq) {
    const char *ct = gw_header(rq, "content-type");
    return ct && strcasestr(ct, "application/x-www-form-urlencoded") != NULL;
}

int sr_webhook_generic_status(const sr_webhook_request *rq, sr_report **out, int *n, sr_webhook_answer *ans) {
    if (gw_is_form(rq)) return 1;
    gw_str f[GW_FIELDS];
    sr_report rp;
    if (!rq->body || gw_object(rq->body, rq->body_len, gw_names, GW_FIELDS, 0, f) != 0 || gw_report(f, &rp) != 0)
        return 1;
    *out = malloc(sizeof rp);
    if (!*out) abort();
    **out = rp;
    *n = 1;
    gw_answer_ok(ans);
    return 0;
}

/* ---- inbound messages (generic.parse_inbound) ---- */

/* The fields parse_inbound reads (generic.lua FROM_FIELDS, TEXT_FIELDS, TO_FIELDS, ID_FIELDS), in order. */
enum {
    GI_FROM,
    GI_SENDER,
    GI_MSISDN,
    GI_TEXT,
    GI_MESSAGE,
    GI_BODY,
    GI_TO,
    GI_RECIPIENT,
    GI_MESSAGE_ID,
    GI_MSGID,
    GI_ID,
    GI_TIMESTAMP,
    GI_FIELDS
};

static const char *const gi_names[GI_FIELDS] = {"from", "sender",    "msisdn",     "text",  "message", "body",
                                                "to",   "recipient", "message_id", "msgid", "id",      "timestamp"};

/* generic.lua EPOCH_MAX_BYTES. */
#define GW_EPOCH_MAX_BYTES 40

/* generic.lua epoch_seconds of a string, as adapter.c's adapter_field_time turns it into ms (0: none): an
 * RFC 3339-like time, else epoch seconds in digits (with a fraction). */
static int64_t gw_epoch_ms(const char *s, size_t len) {
    int64_t at;
    if (gw_parse_time(s, len, &at) == 0) return at > 0 ? at * 1000 : 0;
    s = gw_trim(s, &len);
    if (len == 0 || len > GW_EPOCH_MAX_BYTES) return 0;
    char digits[GW_EPOCH_MAX_BYTES + 1];
    int dots = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.' && i > 0 && !dots) dots++;
        else if (s[i] < '0' || s[i] > '9')
            return 0;
        digits[i] = s[i];
    }
    digits[len] = '\0';
    /* tonumber reads it as strtod does (correctly rounded); math.floor; then ms in a double, as the Lua. */
    double v = strtod(digits, NULL);
    if (!(v > 0 && v < 9007199254740992.0)) return 0;
    int64_t ms = (int64_t)(floor(v) * 1000.0);
    return ms > 0 ? ms : 0;
}

/* String v decoded (gw_unescape) into a fresh buffer (*n bytes, NUL after them): NULL when it is not read. */
static char *gw_decoded(const gw_str *v, size_t *n) {
    char *out = malloc(v->len + 1);
    if (!out) abort();
    if (!v->esc) memcpy(out, v->s, *n = v->len);
    else if (gw_unescape(v, out, n) != 0) {
        free(out);
        return NULL;
    }
    out[*n] = '\0';
    return out;
}

/* String v decoded into out[size], cut as adapter.c's snprintf cuts it: 0, or -1. */
static int gw_copy(const gw_str *v, char *out, size_t size) {
    out[0] = '\0';
    if (!v) return 0;
    size_t n;
    char *d = gw_decoded(v, &n);
    if (!d) return -1;
    sr_str_copy(out, size, d);
    free(d);
    return 0;
}

/* The message of the fields f, as adapter.c reads parse_inbound's into m: 0, or -1 (the Lua's: no from or
 * text, which it refuses, or an escape it is to read). */
static int gw_inbound_sms(const gw_str *f, sr_inbound_sms *m) {
    const gw_str *from = gw_first(f, GI_FROM, GI_MSISDN + 1), *text = NULL;
    for (int k = GI_TEXT; k <= GI_BODY && !text; k++)
        if (f[k].s) text = &f[k]; /* an empty text is a text */
    if (!from || !text) return -1;
    memset(m, 0, sizeof *m);
    if (gw_copy(from, m->from, sizeof m->from) != 0 ||
        gw_copy(gw_first(f, GI_TO, GI_RECIPIENT + 1), m->to, sizeof m->to) != 0 ||
        gw_copy(gw_first(f, GI_MESSAGE_ID, GI_ID + 1), m->provider_message_id, sizeof m->provider_message_id) != 0)
        return -1;
    if (f[GI_TIMESTAMP].s) {
        size_t n;
        char *at = gw_decoded(&f[GI_TIMESTAMP], &n);
        if (!at) return -1;
        m->at_ms = gw_epoch_ms(at, n);
        free(at);
    }
    if (!(m->text = gw_decoded(text, &m->text_len))) return -1;
    return 0;
}

int sr_webhook_generic_inbound(const sr_webhook_request *rq, sr_inbound_sms **out, int *n, sr_webhook_answer *ans) {
    if (gw_is_form(rq)) return 1;
    gw_str f[GI_FIELDS];
    sr_inbound_sms m;
    if (!rq->body || gw_object(rq->body, rq->body_len, gi_names, GI_FIELDS, 1, f) != 0 || gw_inbound_sms(f, &m) != 0)
        return 1;
    *out = malloc(sizeof m);
    if (!*out) abort();
    **out = m;
    *n = 1;
    gw_answer_ok(ans);
    return 0;
}

int sr_webhook_verify(sr_rules *r, const sr_provider *p, const sr_webhook_request *rq, char *reason, size_t len) {
    if (p->native_webhooks) return sr_webhook_generic_verify(rq, p->webhook_secret, p->webhook_secret_len, reason, len);
    return sr_adapter_verify(r, p, rq, reason, len);
}

int sr_webhook_parse_status(sr_rules *r, const sr_provider *p, const sr_webhook_request *rq, sr_report **out, int *n,
                            sr_webhook_answer *ans, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    memset(ans, 0, sizeof *ans);
    if (p->native_webhooks && sr_webhook_generic_status(rq, out, n, ans) == 0) return 0;
    return sr_adapter_parse_status(r, p, rq, out, n, ans, err, errlen);
}

int sr_webhook_parse_inbound(sr_rules *r, const sr_provider *p, const sr_webhook_request *rq, sr_inbound_sms **out,
                             int *n, sr_webhook_answer *ans, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    memset(ans, 0, sizeof *ans);
    if (p->native_webhooks && sr_webhook_generic_inbound(rq, out, n, ans) == 0) return 0;
    return sr_adapter_parse_inbound(r, p, rq, out, n, ans, err, errlen);
}
