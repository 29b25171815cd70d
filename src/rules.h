/* rules: the Lua host. Owns one sandboxed Lua 5.4 state per loaded rules
 * file: its allocator (with a memory cap), the sandbox (safe libraries only,
 * `require` limited to Lua source files in the rules' own folder), the `sms`
 * table, and loading the file.
 *
 * Sandbox: no io, debug, load, loadfile, dofile, string.dump,
 * package.loadlib, C modules or binary chunks; `os` is reduced to time, clock
 * and date. lua-cjson is available as require "cjson". */
#ifndef SR_RULES_H
#define SR_RULES_H

#include <lua.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"

/* A provider declared with sms.provider(name, {...}). */
typedef struct sr_provider {
    char *name;
    char *adapter;
    int adapter_ref;   /* registry reference to the adapter table */
    int cfg_ref;       /* registry reference to the options table (with name) */
    double rate_per_s; /* messages per second; 0: no limit */
    double burst;      /* messages allowed at once above the rate */
    int concurrency;   /* requests in flight */
    long timeout_ms;   /* per request */
    int max_attempts;  /* attempts on this provider before the next of the route */
    int batch_size;    /* messages per request: min(adapter.batch_size, option batch_size) */
    double cost;       /* per segment, for least-cost routing rules */
    int poll;          /* 1: pull statuses with the adapter's build_poll/parse_poll */
    char *webhook_path_secret; /* webhooks must come to /hooks/NAME/SECRET/{status,inbound}; NULL: not asked */
    char *webhook_basic_auth;  /* "user:password" webhooks must carry as basic auth; NULL: not asked */
} sr_provider;

#define SR_MAX_PROVIDERS 64
#define SR_MAX_TEMPLATES 1024

struct sr_template;
typedef struct sr_rules_template {
    char *name;
    struct sr_template *tpl;
} sr_rules_template;

/* Embedded Lua sources (lua/ folder, built in by scripts/embed-lua.sh). */
const char *sr_lua_embedded(const char *name, size_t *len);
const char *sr_lua_embedded_name(int i);

typedef struct sr_rules {
    int refs;            /* the daemon's current rules hold one; so does each handler and provider request in flight */
    lua_State *L;
    char *path;          /* the rules file as given */
    char *dir;           /* its folder, for require */
    sr_config *config;   /* borrowed: sms.config{} writes here while loading */
    int loading;         /* 1 while the file's top level runs (declarations allowed) */
    size_t memory_used;
    size_t memory_limit;
    int memory_exceeded; /* set by the allocator when it refused */
    sr_provider providers[SR_MAX_PROVIDERS];
    int provider_count;
    int route_ref;       /* registry reference to the sms.route function, or LUA_NOREF */
    sr_rules_template templates[SR_MAX_TEMPLATES];
    int template_count;
    sr_buf render_buf; /* reused by renders: owned here, so a Lua error mid-render leaks nothing */
    /* Set by the daemon after loading (NULL for `smsrules check`): what
     * handler actions act on. */
    struct sr_store *store;
    struct sr_scheduler *scheduler;
    struct sr_http_client *client;
    struct sr_invocation *current; /* the handler running now */
    int live_invocations;          /* handlers started and not yet finished (committed or failed) */
} sr_rules;

/* Calls the function below nargs arguments on the stack with a traceback
 * handler. On success leaves nresults values and returns 0; on error pops
 * everything it pushed, writes "file:line: message" to err, logs the
 * traceback, and returns -1. */
int sr_rules_call(sr_rules *r, int nargs, int nresults, char *err, size_t errlen);

/* The template declared with sms.template(name, ...), or NULL. */
const struct sr_template *sr_rules_template_find(sr_rules *r, const char *name);

/* Renders template name with the Lua table at vars_index (0: no vars). On
 * success pushes the text (also returned through text/len) and returns 0;
 * else returns -1 with err ("missing variable 'x'", "unknown template 'y'"). */
int sr_lua_render(lua_State *L, const char *name, int vars_index, const char **text, size_t *len, char *err,
                  size_t errlen);

/* The provider named name, or NULL. */
sr_provider *sr_rules_provider(sr_rules *r, const char *name);

/* Creates the state and runs the rules file (path may be NULL: no rules).
 * On error returns -1 with "file:line: message" in err. The config is
 * borrowed for the lifetime of the rules. */
int sr_rules_load(sr_rules **out, const char *path, sr_config *config, char *err, size_t errlen);
void sr_rules_free(sr_rules *r);
/* Reference counting across a reload: old rules live until the last
 * handler or provider request started on them is done. Release frees at 0. */
sr_rules *sr_rules_retain(sr_rules *r);
void sr_rules_release(sr_rules *r);
/* A one-line summary of what the rules declare. */
void sr_rules_summary(sr_rules *r, char *out, size_t outlen);

/* From the Lua side: the host of a state. */
sr_rules *sr_rules_from(lua_State *L);

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
void sr_lua_open_inbound(lua_State *L);
void sr_lua_open_phone(lua_State *L);

#endif
