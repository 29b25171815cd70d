/* bindings: the `sms` tables a rules state offers, one file per table
 * (lua_sms.c, lua_kv.c, ...), and loading a rules file with all of them.
 * The Lua host below (rules.c) builds sandboxed states and calls back here
 * to fill their `sms` global. */
#ifndef SR_BINDINGS_H
#define SR_BINDINGS_H

#include <lua.h>

#include "core/config.h"
#include "rules/rules.h"

/* Loads a rules file with every sms table (sr_rules_create with the openers below; path may be
 * NULL: no rules). On error returns -1 with "file:line: message" in err. The config is borrowed for
 * the lifetime of the rules. */
int sr_rules_load(sr_rules **out, const char *path, sr_config *config, char *err, size_t errlen);

/* Renders template name with the Lua table at vars_index (0: no vars). On
 * success pushes the text (also returned through text/len) and returns 0;
 * else returns -1 with err ("missing variable 'x'", "unknown template 'y'"). */
int sr_lua_render(lua_State *L, const char *name, int vars_index, const char **text, size_t *len, char *err,
                  size_t errlen);

/* sms.send for sms.reply (a lua_CFunction): (message, inbound id) → id, or nil, "code: message". The message is
 * sent as sms.send sends it; a new one records the inbound id (when it is a valid id) as its reply_to, in the same
 * put. */
int sr_lua_send_reply(lua_State *L);
/* The same for a plain text reply, from C: sends {to, text, route = {provider}} (provider may be NULL: no route)
 * as sms.send would, recording reply_to (may be NULL) on a new message. The strings must be valid UTF-8 (JSON
 * holds them byte for byte). Pushes id, or nil, "code: message"; returns how many it pushed. */
int sr_lua_send_reply_text(lua_State *L, const char *to, size_t to_len, const char *text, size_t text_len,
                           const char *provider, const char *reply_to);

/* Pushes the registry's table at key (the address of a static), made on first use: only then can it raise.
 * Once it exists, the lookup allocates nothing, so a completion callback may use it outside a protected
 * call (sms.http's requests, sms.ratelimit's waiting handlers). */
void sr_lua_push_registry_table(lua_State *L, const void *key);

/* Openers of the Lua tables, one per file (lua_*.c). Each expects the `sms`
 * table on top of the stack and adds its fields to it. */
void sr_lua_open_sms(lua_State *L);
void sr_lua_open_log(lua_State *L);
void sr_lua_open_provider(lua_State *L);
void sr_lua_open_actions(lua_State *L);
void sr_lua_open_kv(lua_State *L);
void sr_lua_open_http(lua_State *L);
void sr_lua_open_ratelimit(lua_State *L);
void sr_lua_open_template(lua_State *L);
void sr_lua_open_crypto(lua_State *L);
void sr_lua_open_form(lua_State *L);
void sr_lua_open_inbound(lua_State *L);
void sr_lua_open_phone(lua_State *L);
void sr_lua_open_stats(lua_State *L);

#endif
