#include "model/submission.h"
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/phone.h"
#include "codec/template.h"
#include "codec/text.h"

#define SUB_MAX_ROUTE 16
#define SUB_MAX_TAGS 32
#define SUB_MAX_TEXT_BYTES 8192
#define SUB_MAX_SEND_AHEAD_MS (366LL * 86400 * 1000)

static void reason_add(sr_reasons *r, const char *key, const char *prefix, const char *field, const char *fmt,
                       const char *arg) {
    if (r->count == SR_REASONS_MAX) return;
    sr_reason *x = &r->items[r->count++];
    x->key = key;
    snprintf(x->ref, sizeof x->ref, "%s%s", prefix, field);
    /* Quote at most 64 bytes of user input back. */
    char shown[80];
    if (arg) {
        size_t n = strlen(arg);
        if (n > 64) snprintf(shown, sizeof shown, "%.64s...", arg);
        else
            sr_str_copy(shown, sizeof shown, arg);
    }
    snprintf(x->message, sizeof x->message, fmt, arg ? shown : "");
}

/* An invalid_phone reason for 'to': the number (its first 40 bytes) and why
 * it cannot be sent to, from sr_phone_normalize. */
static void reason_add_phone(sr_reasons *r, const char *prefix, const sr_json *to, const char *why) {
    if (r->count == SR_REASONS_MAX) return;
    sr_reason *x = &r->items[r->count++];
    x->key = "invalid_phone";
    snprintf(x->ref, sizeof x->ref, "%sto", prefix);
    snprintf(x->message, sizeof x->message, "not a valid phone number: '%.40s%s': %.110s", to->str,
             to->len > 40 ? "..." : "", why);
}

/* FNV-1a 64 over the normalised fields, with a separator per field. */
static uint64_t hash_bytes(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t hash_str(uint64_t h, const char *s) {
    if (s) h = hash_bytes(h, s, strlen(s));
    return hash_bytes(h, "\x1f", 1);
}

static uint64_t hash_i64(uint64_t h, int64_t v) { return hash_bytes(h, &v, sizeof v); }

static int sender_valid(const char *s, size_t len) {
    if (len == 0) return 0;
    size_t digits = 0, start = s[0] == '+' ? 1 : 0;
    for (size_t i = start; i < len; i++)
        if (s[i] >= '0' && s[i] <= '9') digits++;
    if (digits == len - start && digits > 0) return digits <= 15;
    if (start || len > 11) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' || c == '.' ||
              c == '-' || c == '_' || c == '&'))
            return 0;
    }
    return 1;
}

/* The fields a message may have, in the order of sub_fields. */
enum {
    SUB_TO,
    SUB_TEXT,
    SUB_FROM,
    SUB_ROUTE,
    SUB_IDEM,
    SUB_PRIORITY,
    SUB_VALIDITY,
    SUB_SEND_AT,
    SUB_TAGS,
    SUB_TEMPLATE,
    SUB_VARS,
    SUB_FIELD_COUNT
};
static const char *const sub_fields[SUB_FIELD_COUNT] = {
    "to", "text", "from", "route", "idempotency_key", "priority", "validity", "send_at", "tags", "template", "vars"};

/* What sr_submission_parse read of one message, between its checks and building the record. */
typedef struct sub_parse {
    const sr_json *obj;
    const sr_json *field[SUB_FIELD_COUNT]; /* the object's member of each known field, or NULL */
    const char *prefix;
    sr_reasons *reasons;
    char e164[SR_PHONE_MAX];
    const sr_json *text, *tpl, *from, *route, *idem, *tags;
    sr_json rendered_node; /* the text rendered from the template; text points here then */
    sr_buf rendered;
    sr_segments seg;
    int64_t priority, validity, send_at, send_at_asked;
} sub_parse;

/* One pass over the members: each known one into its slot (the parser refuses duplicate keys), each other one
 * a reason. The readers below take the slots instead of looking every field up by name. */
static void sub_check_fields(sub_parse *ps) {
    for (const sr_json *f = ps->obj->child; f; f = f->next) {
        int known = -1;
        for (int i = 0; i < SUB_FIELD_COUNT && known < 0; i++)
            if (f->key[0] == sub_fields[i][0] && f->key_len == strlen(sub_fields[i]) &&
                memcmp(f->key, sub_fields[i], f->key_len) == 0)
                known = i;
        if (known >= 0) ps->field[known] = f;
        else
            reason_add(ps->reasons, "unknown_field", ps->prefix, f->key, "unknown field '%s'", f->key);
    }
}

static void sub_read_to(sub_parse *ps, const sr_config *cfg) {
    const sr_json *to = ps->field[SUB_TO];
    char why[SR_PHONE_WHY_MAX];
    if (!to) {
        reason_add(ps->reasons, "missing_field", ps->prefix, "to", "missing field 'to'%s", NULL);
    } else if (to->type != SR_JSON_STRING) {
        reason_add(ps->reasons, "invalid_type", ps->prefix, "to", "'to' must be a string%s", NULL);
    } else if (sr_phone_normalize(to->str, to->len, cfg->default_country, ps->e164, why, sizeof why) != 0) {
        reason_add_phone(ps->reasons, ps->prefix, to, why);
    }
}

/* template + vars → the text. Returns -1 when a template was named but gave no text (nothing more to check). */
static int sub_render(sub_parse *ps, const sr_submission_templates *templates) {
    const sr_json *vars = ps->field[SUB_VARS];
    sr_reasons *reasons = ps->reasons;
    const char *prefix = ps->prefix;
    ps->text = ps->field[SUB_TEXT];
    ps->tpl = ps->field[SUB_TEMPLATE];
    if (vars && !ps->tpl) reason_add(reasons, "unknown_field", prefix, "vars", "'vars' needs 'template'%s", NULL);
    if (!ps->tpl) return 0;
    const struct sr_template *t = NULL;
    if (ps->text) {
        reason_add(reasons, "invalid_value", prefix, "template", "give 'text' or 'template', not both%s", NULL);
    } else if (ps->tpl->type != SR_JSON_STRING) {
        reason_add(reasons, "invalid_type", prefix, "template", "'template' must be a template name%s", NULL);
    } else if (vars && vars->type != SR_JSON_OBJECT) {
        reason_add(reasons, "invalid_type", prefix, "vars", "'vars' must be an object%s", NULL);
    } else if (!templates || !(t = templates->find(templates->ud, ps->tpl->str))) {
        reason_add(reasons, "unknown_template", prefix, "template", "no template named '%s'", ps->tpl->str);
    } else {
        char err[200];
        static const sr_json empty = {.type = SR_JSON_OBJECT};
        if (sr_template_render(t, sr_template_lookup_json, (void *)(vars ? vars : &empty), &ps->rendered, err,
                               sizeof err) != 0) {
            reason_add(reasons, "template_error", prefix, "vars", "%s", err);
        } else {
            memset(&ps->rendered_node, 0, sizeof ps->rendered_node);
            ps->rendered_node.type = SR_JSON_STRING;
            ps->rendered_node.str = sr_buf_cstr(&ps->rendered);
            ps->rendered_node.len = ps->rendered.len;
            ps->text = &ps->rendered_node;
        }
    }
    return ps->text ? 0 : -1;
}

static void sub_check_text(sub_parse *ps, const sr_config *cfg) {
    const sr_json *text = ps->text;
    sr_reasons *reasons = ps->reasons;
    const char *prefix = ps->prefix;
    if (!text) {
        reason_add(reasons, "missing_field", prefix, "text", "missing field 'text'%s", NULL);
    } else if (text->type != SR_JSON_STRING) {
        reason_add(reasons, "invalid_type", prefix, "text", "'text' must be a string%s", NULL);
    } else if (text->len == 0) {
        reason_add(reasons, "invalid_value", prefix, "text", "'text' must not be empty%s", NULL);
    } else if (memchr(text->str, '\0', text->len)) {
        /* U+0000 is no character an SMS carries, and the text is kept as a C string: refused, never cut short. */
        reason_add(reasons, "invalid_text", prefix, ps->tpl ? "vars" : "text",
                   ps->tpl ? "the text rendered from the template holds U+0000 (NUL), which an SMS cannot carry%s"
                           : "'text' holds U+0000 (NUL), which an SMS cannot carry%s",
                   NULL);
    } else if (text->len > SUB_MAX_TEXT_BYTES || sr_text_segments(text->str, text->len, &ps->seg) != 0) {
        if (text->len > SUB_MAX_TEXT_BYTES) {
            reason_add(reasons, "too_long", prefix, "text", "'text' is longer than 8192 bytes%s", NULL);
        } else {
            reason_add(reasons, "invalid_text", prefix, "text", "'text' is not valid UTF-8%s", NULL);
        }
    } else if (ps->seg.segments > cfg->max_parts) {
        char n[32];
        snprintf(n, sizeof n, "%d", ps->seg.segments);
        reason_add(reasons, "too_long", prefix, "text", "'text' needs %s parts, more than the maximum", n);
    }
}

/* from, route, idempotency_key. */
static void sub_read_addressing(sub_parse *ps) {
    sr_reasons *reasons = ps->reasons;
    const char *prefix = ps->prefix;
    const sr_json *from = ps->from = ps->field[SUB_FROM];
    if (from && from->type != SR_JSON_NULL) {
        if (from->type != SR_JSON_STRING)
            reason_add(reasons, "invalid_type", prefix, "from", "'from' must be a string%s", NULL);
        else if (!sender_valid(from->str, from->len))
            reason_add(reasons, "invalid_value", prefix, "from",
                       "'from' must be up to 11 letters, digits, spaces or .-_& or up to 15 digits: '%s'", from->str);
    }
    const sr_json *route = ps->route = ps->field[SUB_ROUTE];
    if (route && route->type != SR_JSON_NULL) {
        int ok = route->type == SR_JSON_ARRAY && route->count <= SUB_MAX_ROUTE;
        for (const sr_json *p = ok ? route->child : NULL; p; p = p->next)
            if (p->type != SR_JSON_STRING || p->len == 0 || p->len > 64 || memchr(p->str, '\0', p->len)) ok = 0;
        if (!ok)
            reason_add(reasons, "invalid_value", prefix, "route",
                       "'route' must be a list of at most 16 provider names%s", NULL);
    }
    const sr_json *idem = ps->idem = ps->field[SUB_IDEM];
    if (idem && idem->type != SR_JSON_NULL) {
        if (idem->type != SR_JSON_STRING || idem->len == 0 || idem->len > 256 || memchr(idem->str, 0, idem->len))
            reason_add(reasons, "invalid_value", prefix, "idempotency_key",
                       "'idempotency_key' must be a string of 1 to 256 bytes%s", NULL);
    }
}

/* priority, validity, send_at. */
static void sub_read_timing(sub_parse *ps, const sr_config *cfg, int64_t now_ms) {
    sr_reasons *reasons = ps->reasons;
    const char *prefix = ps->prefix;
    const sr_json *prio = ps->field[SUB_PRIORITY];
    if (prio && prio->type != SR_JSON_NULL &&
        (!sr_json_is_integer(prio, &ps->priority) || ps->priority < 0 || ps->priority > 3))
        reason_add(reasons, "invalid_value", prefix, "priority", "'priority' must be an integer from 0 to 3%s", NULL);
    ps->validity = cfg->validity_s;
    const sr_json *val = ps->field[SUB_VALIDITY];
    if (val && val->type != SR_JSON_NULL &&
        (!sr_json_is_integer(val, &ps->validity) || ps->validity < 1 || ps->validity > 259200))
        reason_add(reasons, "invalid_value", prefix, "validity",
                   "'validity' must be a number of seconds from 1 to 259200%s", NULL);
    ps->send_at_asked = -1;
    const sr_json *sat = ps->field[SUB_SEND_AT];
    if (sat && sat->type != SR_JSON_NULL) {
        if (sat->type != SR_JSON_STRING || sr_time_parse_rfc3339(sat->str, sat->len, &ps->send_at) != 0)
            reason_add(reasons, "invalid_value", prefix, "send_at",
                       "'send_at' must be an RFC 3339 time like 2026-01-02T15:04:05Z%s", NULL);
        else if (ps->send_at > now_ms + SUB_MAX_SEND_AHEAD_MS)
            reason_add(reasons, "invalid_value", prefix, "send_at", "'send_at' is more than a year ahead%s", NULL);
        ps->send_at_asked = ps->send_at;
        if (ps->send_at <= now_ms) ps->send_at = 0;
    }
}

static void sub_read_tags(sub_parse *ps) {
    const sr_json *tags = ps->tags = ps->field[SUB_TAGS];
    if (!tags || tags->type == SR_JSON_NULL) return;
    int ok = tags->type == SR_JSON_OBJECT && tags->count <= SUB_MAX_TAGS;
    for (const sr_json *p = ok ? tags->child : NULL; p; p = p->next)
        if (p->type != SR_JSON_STRING || p->key_len == 0 || p->key_len > 64 || p->len > 256 ||
            memchr(p->str, '\0', p->len))
            ok = 0;
    if (!ok)
        reason_add(ps->reasons, "invalid_value", ps->prefix, "tags",
                   "'tags' must be an object of at most 32 strings (keys up to 64, values up to 256 bytes, "
                   "without U+0000)%s",
                   NULL);
}

/* The record of a message that passed every check. */
static void sub_build(const sub_parse *ps, int64_t now_ms, sr_message *out, const char **idem_key) {
    sr_message_set_str(&out->to, ps->e164);
    sr_message_set_str(&out->text, ps->text->str);
    if (ps->from && ps->from->type == SR_JSON_STRING) sr_message_set_str(&out->from, ps->from->str);
    out->segments = ps->seg.segments;
    out->encoding = (int)ps->seg.encoding;
    out->priority = (int)ps->priority;
    out->validity_s = (int)ps->validity;
    out->created_at_ms = now_ms;
    out->send_at_ms = ps->send_at;
    out->expires_at_ms = (ps->send_at ? ps->send_at : now_ms) + ps->validity * 1000;
    const sr_json *route = ps->route, *tags = ps->tags;
    if (route && route->type == SR_JSON_ARRAY && route->count) {
        out->route = calloc(route->count, sizeof(char *));
        if (!out->route) abort();
        for (const sr_json *p = route->child; p; p = p->next) sr_message_set_str(&out->route[out->route_len++], p->str);
    }
    if (tags && tags->type == SR_JSON_OBJECT && tags->count) {
        out->tags = calloc(tags->count, sizeof(sr_tag));
        if (!out->tags) abort();
        for (const sr_json *p = tags->child; p; p = p->next) {
            sr_tag *t = &out->tags[out->tag_count++];
            sr_message_set_str(&t->key, p->key);
            sr_message_set_str(&t->value, p->str);
        }
    }
    if (ps->idem && ps->idem->type == SR_JSON_STRING) {
        *idem_key = ps->idem->str;
        sr_message_set_str(&out->idempotency_key, ps->idem->str);
    }
    sr_message_set_status(out, SR_ST_QUEUED, now_ms);
}

/* What makes two submissions with one idempotency key the same request. */
static uint64_t sub_hash(const sr_message *out, const sub_parse *ps) {
    uint64_t h = 14695981039346656037ULL;
    h = hash_str(h, out->to);
    h = hash_str(h, out->text);
    h = hash_str(h, out->from);
    for (int i = 0; i < out->route_len; i++) h = hash_str(h, out->route[i]);
    h = hash_str(h, "");
    h = hash_i64(h, out->priority);
    h = hash_i64(h, ps->validity);
    h = hash_i64(h, ps->send_at_asked);
    for (int i = 0; i < out->tag_count; i++) {
        h = hash_str(h, out->tags[i].key);
        h = hash_str(h, out->tags[i].value);
    }
    return h;
}

int sr_submission_parse(const sr_json *obj, const sr_config *cfg, const sr_submission_templates *templates,
                        int64_t now_ms, const char *prefix, sr_message *out, const char **idem_key, uint64_t *body_hash,
                        sr_reasons *reasons) {
    sr_message_init(out);
    *idem_key = NULL;
    *body_hash = 0;
    reasons->count = 0;
    if (!obj || obj->type != SR_JSON_OBJECT) {
        reason_add(reasons, "invalid_type", prefix, "", "a message must be a JSON object%s", NULL);
        return -1;
    }
    sub_parse ps;
    memset(&ps, 0, sizeof ps);
    ps.obj = obj;
    ps.prefix = prefix;
    ps.reasons = reasons;
    sr_buf_init(&ps.rendered);
    sub_check_fields(&ps);
    sub_read_to(&ps, cfg);
    int rc = sub_render(&ps, templates);
    if (rc == 0) {
        sub_check_text(&ps, cfg);
        sub_read_addressing(&ps);
        sub_read_timing(&ps, cfg, now_ms);
        sub_read_tags(&ps);
        rc = reasons->count ? -1 : 0;
    }
    if (rc == 0) {
        sub_build(&ps, now_ms, out, idem_key);
        *body_hash = sub_hash(out, &ps);
    }
    sr_buf_free(&ps.rendered);
    return rc;
}

int sr_submission_http_status(const sr_reasons *r) {
    for (int i = 0; i < r->count; i++) {
        const char *k = r->items[i].key;
        if (strcmp(k, "missing_field") == 0 || strcmp(k, "unknown_field") == 0 || strcmp(k, "invalid_type") == 0 ||
            strcmp(k, "invalid_text") == 0)
            return 400;
    }
    return 422;
}
