#include "rules/adapter_generic.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec/json.h"
#include "core/buf.h"

static int generic_enabled = 1;

void sr_generic_enable(int on) { generic_enabled = on != 0; }

int sr_generic_enabled(void) { return generic_enabled; }

/* ---- the template: util.check_url, the sender, util.auth_headers ---- */

/* util.check_url's pattern, "^[hH][tT][tT][pP][sS]?://[^%s]+$" (%s: C-locale isspace). */
static int generic_url_ok(const char *url, size_t len) {
    size_t i = 4;
    if (len < 4 || strncasecmp(url, "http", 4) != 0) return 0;
    if (i < len && (url[i] == 's' || url[i] == 'S')) i++;
    if (len - i < 4 || memcmp(url + i, "://", 3) != 0) return 0;
    for (i += 3; i < len; i++)
        if (isspace((unsigned char)url[i]) || url[i] == '\0') return 0;
    return 1;
}

/* util.auth_headers' pattern for auth_header, "^[%w!#$%%&'*+%-.^_`|~]+$". */
static int generic_token_ok(const char *s, size_t len) {
    if (len == 0) return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && (s[i] == '\0' || !strchr("!#$%&'*+-.^_`|~", s[i]))) return 0;
    return 1;
}

/* The string field of the table at idx: 1 with *out (NULL when nil or ""), 0 when it is something else. */
static int generic_opt_string(lua_State *L, int idx, const char *field, const char **out, size_t *len) {
    int type = lua_getfield(L, idx, field);
    *out = NULL;
    *len = 0;
    if (type == LUA_TSTRING) {
        *out = lua_tolstring(L, -1, len);
        if (*len == 0) *out = NULL;
    }
    lua_pop(L, 1); /* the string stays alive in the table */
    return type == LUA_TNIL || type == LUA_TSTRING;
}

/* The api key's header, name and value (*name NULL: Authorization, Bearer); *key NULL when there is none.
 * Clears *ok when the Lua adapter must decide (it raises on a bad option, or drops a header with CR/LF). */
static void generic_auth(lua_State *L, int cfg, const char **key, const char **name, int *ok) {
    size_t key_len, name_len;
    if (!generic_opt_string(L, cfg, "api_key", key, &key_len)) *ok = 0;
    *name = NULL;
    if (!*key) return;
    if (!generic_opt_string(L, cfg, "auth_header", name, &name_len)) *ok = 0;
    if (*name && !generic_token_ok(*name, name_len)) *ok = 0;
    if (memchr(*key, '\r', key_len) || memchr(*key, '\n', key_len) || memchr(*key, '\0', key_len)) *ok = 0;
}

/* One block: the struct, then its strings. */
static sr_send_template *generic_template_new(const char *url, const char *sender, const char *key, const char *name) {
    size_t auth_len = key ? strlen(key) + (name ? strlen(name) + 2 : 22) + 1 : 0;
    size_t size = sizeof(sr_send_template) + strlen(url) + 1 + (sender ? strlen(sender) + 1 : 0) + auth_len;
    sr_send_template *t = calloc(1, size);
    if (!t) abort();
    char *at = (char *)(t + 1);
    t->url = strcpy(at, url);
    at += strlen(url) + 1;
    if (sender) {
        t->sender = strcpy(at, sender);
        at += strlen(sender) + 1;
    }
    if (key) {
        if (name) snprintf(at, auth_len, "%s: %s", name, key);
        else
            snprintf(at, auth_len, "Authorization: Bearer %s", key);
        t->auth_line = at;
    }
    t->usable = 1;
    return t;
}

typedef struct generic_template_arg {
    sr_send_template *t; /* made here; NULL: the Lua adapter must judge an option */
    const sr_provider *p;
} generic_template_arg;

/* Runs in the adapters' state under sr_rules_protected: reads the provider's cfg into a template. The
 * template is allocated after the last call that can raise. */
static int generic_template_body(lua_State *L) {
    generic_template_arg *a = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->p->cfg_ref);
    int cfg = lua_gettop(L);
    const char *url = NULL, *sender = NULL, *key = NULL, *name = NULL;
    size_t url_len, sender_len;
    int ok = lua_istable(L, cfg);
    if (ok && (!generic_opt_string(L, cfg, "url", &url, &url_len) || !url || !generic_url_ok(url, url_len))) ok = 0;
    if (ok && !generic_opt_string(L, cfg, "sender", &sender, &sender_len)) ok = 0;
    if (ok && sender && memchr(sender, '\0', sender_len)) ok = 0;
    if (ok) generic_auth(L, cfg, &key, &name, &ok);
    if (ok) a->t = generic_template_new(url, sender, key, name);
    lua_pop(L, 1);
    return 0;
}

const sr_send_template *sr_generic_template(sr_rules *r, sr_provider *p) {
    if (!generic_enabled || !p->L || p->L != r->adapter_L || !p->adapter || strcmp(p->adapter, "generic") != 0)
        return NULL;
    if (p->send_template) return p->send_template;
    generic_template_arg arg = {NULL, p};
    char err[200];
    if (sr_rules_protected(r, p->L, generic_template_body, &arg, err, sizeof err) != 0 || !arg.t) {
        /* An option the Lua adapter must judge, or no memory in the adapters' state: Lua has the last word. */
        free(arg.t);
        arg.t = calloc(1, sizeof *arg.t);
        if (!arg.t) abort();
    }
    p->send_template = arg.t;
    return arg.t;
}

/* ---- build_send ---- */

/* s as lua-cjson encodes a string (its char2escape table): '"', '\\' and '/' escaped, the control bytes
 * and DEL as \b \t \n \f \r or \u00XX, every other byte as it is (UTF-8 is not checked). */
static void generic_json_string(sr_buf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    sr_buf_putc(b, '"');
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        const char *esc = NULL;
        switch (*c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '/': esc = "\\/"; break;
        case '\b': esc = "\\b"; break;
        case '\t': esc = "\\t"; break;
        case '\n': esc = "\\n"; break;
        case '\f': esc = "\\f"; break;
        case '\r': esc = "\\r"; break;
        default: break;
        }
        if (esc) {
            sr_buf_puts(b, esc);
        } else if (*c < 0x20 || *c == 0x7f) {
            char u[7] = {'\\', 'u', '0', '0', hex[*c >> 4], hex[*c & 15], '\0'};
            sr_buf_puts(b, u);
        } else {
            sr_buf_putc(b, (char)*c);
        }
    }
    sr_buf_putc(b, '"');
}

char *sr_generic_body(const char *to, const char *from, const char *text, size_t *len) {
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_puts(&b, "{\"to\":");
    generic_json_string(&b, to[0] == '+' ? to + 1 : to);
    if (from) {
        sr_buf_puts(&b, ",\"from\":");
        generic_json_string(&b, from);
    }
    sr_buf_puts(&b, ",\"message\":");
    generic_json_string(&b, text);
    sr_buf_putc(&b, '}');
    return sr_buf_steal(&b, len);
}

/* ---- parse_send ---- */

int sr_generic_provider_id(int status, const char *body, size_t body_len, char *out, size_t outlen) {
    /* An escape could be one cjson refuses (a lone surrogate) where the strict parser here does not: such
     * answers, like everything but the plain 2xx with a string id, go to the Lua adapter. */
    if (!generic_enabled || status < 200 || status > 299 || !body || body_len == 0 || memchr(body, '\\', body_len))
        return 0;
    sr_json_doc doc;
    if (sr_json_parse(&doc, body, body_len, NULL, 0) != 0) return 0;
    const sr_json *id = doc.root && doc.root->type == SR_JSON_OBJECT ? sr_json_get(doc.root, "message_id") : NULL;
    int done = id && id->type == SR_JSON_STRING && id->len > 0 && !memchr(id->str, '\0', id->len);
    if (done) sr_str_copy(out, outlen, id->str);
    sr_json_doc_free(&doc);
    return done;
}
