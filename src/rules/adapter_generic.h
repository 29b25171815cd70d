/* adapter_generic: the built-in generic adapter's build_send and parse_send
 * (lua/adapters/generic.lua) done in C for the common case, because with one
 * message per request the two Lua calls are a large share of each send.
 * rules/adapter.c puts these parts together into its request and outcome.
 *
 * The C path writes the same request (the body byte for byte, the same
 * header lines) and reads the same outcome as the Lua adapter; wherever it
 * is not sure to (an option the adapter would refuse or drop, an answer
 * other than a 2xx JSON object with a string "message_id", a body with
 * escapes), it declines and the caller runs the Lua adapter, under its
 * protected call as before. Custom adapters (sms.adapter), even one called
 * "generic", always run in Lua: only a provider whose adapter is the
 * built-in one, in the adapters' own state, takes this path. */
#ifndef SR_ADAPTER_GENERIC_H
#define SR_ADAPTER_GENERIC_H

#include <stddef.h>

#include "rules/rules.h"

/* What a provider's options make of every request, read once from its cfg
 * table. One allocation (the strings follow the struct): the provider owns
 * it and its rules free it with free(). */
typedef struct sr_send_template {
    int usable;            /* 0: an option needs the Lua adapter (it would raise, or drop a header) */
    const char *url;       /* cfg.url, checked as util.check_url does */
    const char *sender;    /* cfg.sender when a non-empty string, else NULL */
    const char *auth_line; /* "Authorization: Bearer KEY" or "AUTH_HEADER: KEY"; NULL without api_key */
} sr_send_template;

/* The template of provider p of rules r, made on first use (in a protected
 * call on the adapters' state) and kept in p; NULL when p's adapter is not
 * the built-in generic one (or the C path is off). Loop thread only. */
const sr_send_template *sr_generic_template(sr_rules *r, sr_provider *p);

/* The JSON body for one message: to (its leading '+' dropped), from (NULL:
 * left out) and text, in that order, encoded as lua-cjson encodes strings.
 * Returns a heap string (the caller frees it), its length in *len. */
char *sr_generic_body(const char *to, const char *from, const char *text, size_t *len);

/* The provider id of an answer when it is the plain case (a 2xx JSON object
 * with a non-empty string "message_id", no escapes in the body): 1 with the
 * id in out (truncated to outlen), else 0 (the Lua adapter reads it). */
int sr_generic_provider_id(int status, const char *body, size_t body_len, char *out, size_t outlen);

/* Tests compare both paths: 0 sends every call to the Lua adapter. */
void sr_generic_enable(int on);
int sr_generic_enabled(void);

#endif
