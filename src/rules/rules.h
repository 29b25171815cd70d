/* rules: the Lua host. Owns one sandboxed Lua 5.4 state per loaded rules
 * file: its allocator (with a memory cap), the sandbox (safe libraries only,
 * `require` limited to Lua source files in the rules' own folder), the `sms`
 * table, and loading the file.
 *
 * Sandbox: no io, debug, load, loadfile, dofile, string.dump,
 * package.loadlib, package.searchpath, C modules or binary chunks; `os` is
 * reduced to time, clock and date; collectgarbage to "count" and "collect".
 * lua-cjson is available as require "cjson".
 *
 * Protection: every run of Lua goes through sr_rules_protected /
 * sr_rules_call (or, for handlers, rules_exec's coroutines) under a budget:
 * an instruction count, a wall-clock deadline checked by the same count hook
 * (so long C calls are caught at the next instruction) and a memory cap.
 * The hook is set on the main thread when the state is created, so every
 * coroutine ever created inherits it. The standard library tables, the `sms`
 * table and the string metatable are read-only to rules; setmetatable refuses
 * __gc (no Lua runs outside a budget). Built-in adapters run in a state of
 * their own that no rule can reach (their own globals, memory and cfg
 * tables). */
#ifndef SR_RULES_H
#define SR_RULES_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"

/* One Lua state's memory: what it holds, and the cap while a budget runs
 * on it (0: no cap — the host's own pushes between runs never fail). */
typedef struct sr_lua_heap {
    size_t used;
    size_t cap;
    int exceeded; /* set by the allocator when it refused */
} sr_lua_heap;

/* What stopped a run of Lua. */
enum { SR_LIMIT_NONE = 0, SR_LIMIT_INSTRUCTIONS, SR_LIMIT_TIME, SR_LIMIT_MEMORY };

/* The limits of one run of Lua. Handlers keep one budget across their
 * resumes (instructions add up; the deadline restarts at each resume: it
 * bounds how long Lua holds the loop at once). */
typedef struct sr_lua_budget {
    uint64_t instructions; /* charged so far */
    uint64_t max_instructions;
    uint64_t time_limit_ms;
    uint64_t start_ns; /* monotonic, set by sr_rules_budget_enter */
    uint64_t deadline_ns;
    size_t memory_limit;
    sr_lua_heap *heap; /* the heap this run allocates from */
    int expired;       /* SR_LIMIT_*: once set, the hook raises at every instruction */
    size_t saved_cap;  /* the heap's cap before enter */
    char where[160];   /* "file:line:" of the Lua function called, for memory errors (Lua unwinds them unlocated) */
} sr_lua_budget;

/* A provider declared with sms.provider(name, {...}). */
typedef struct sr_provider {
    char *name;
    char *adapter;
    lua_State *L;              /* the state holding adapter_ref and cfg_ref: the adapters' own for built-in adapters */
    int adapter_ref;           /* registry reference to the adapter table */
    int cfg_ref;               /* registry reference to the options table (with name) */
    double rate_per_s;         /* messages per second; 0: no limit */
    double burst;              /* messages allowed at once above the rate */
    int concurrency;           /* requests in flight */
    long timeout_ms;           /* per request */
    int max_attempts;          /* attempts on this provider before the next of the route */
    int batch_size;            /* messages per request: min(adapter.batch_size, option batch_size) */
    double cost;               /* per segment, for least-cost routing rules */
    int poll;                  /* 1: pull statuses with the adapter's build_poll/parse_poll */
    char *webhook_path_secret; /* webhooks must come to /hooks/NAME/SECRET/{status,inbound}; NULL: not asked */
    char *webhook_basic_auth;  /* "user:password" webhooks must carry as basic auth; NULL: not asked */
    /* 1: the built-in generic or mock adapter, whose verify and parse_status rules/webhook_generic.c reads
     * in C for the usual webhook; webhook_secret is then cfg.webhook_secret (NULL: none). */
    int native_webhooks;
    char *webhook_secret;
    size_t webhook_secret_len;
    struct sr_send_template *send_template; /* the generic adapter's request parts (adapter_generic.h), owned */
} sr_provider;

#define SR_MAX_PROVIDERS 64
#define SR_MAX_TEMPLATES 1024

struct sr_template;
typedef struct sr_rules_template {
    char *name;
    struct sr_template *tpl;
} sr_rules_template;

/* Embedded Lua sources (lua/ folder, built in by scripts/embed-files.sh). */
const char *sr_lua_embedded(const char *name, size_t *len);
const char *sr_lua_embedded_name(int i);

/* Opens the tables of the `sms` global into a new state (the table on top of the stack): every one
 * for the rules' state (rules 1), sms.crypto alone for the built-in adapters' state (rules 0). They
 * live a layer up, in rules/bindings: sr_rules_load (rules/bindings/bindings.h) passes them. */
typedef void (*sr_rules_opener)(lua_State *L, int rules);

/* The largest rules file whose text the daemon keeps to show (GET /v1/rules). */
#define SR_RULES_MAX_SOURCE (1024 * 1024)

typedef struct sr_rules {
    int refs; /* the daemon's current rules hold one; so does each handler and provider request in flight */
    lua_State *L;
    char *path;               /* the rules file as given */
    char *dir;                /* its folder, for require */
    sr_config *config;        /* borrowed: sms.config{} writes here while loading */
    int loading;              /* 1 while the file's top level runs (declarations allowed) */
    sr_lua_heap heap;         /* L's memory */
    lua_State *adapter_L;     /* built-in adapters (created on first use), unreachable from rules */
    sr_lua_heap adapter_heap; /* adapter_L's memory */
    sr_lua_budget *budget;    /* the run of Lua in progress, or NULL */
    sr_provider providers[SR_MAX_PROVIDERS];
    int provider_count;
    int route_ref; /* registry reference to the sms.route function, or LUA_NOREF */
    sr_rules_template templates[SR_MAX_TEMPLATES];
    int template_count;
    sr_buf render_buf;    /* reused by renders: owned here, so a Lua error mid-render leaks nothing */
    sr_rules_opener open; /* the sms tables of every state it creates */
    /* What handler actions act on (the store, the HTTP client, route statistics), set by whoever runs
     * the rules (sr_host_attach) and outliving this generation; NULL for `smsrules check`. */
    struct sr_host *host;
    int64_t loaded_at_ms; /* when sr_rules_load finished (wall clock); shown by the console */
    char *source;         /* the file's bytes as loaded (NULL past SR_RULES_MAX_SOURCE): the console shows them */
    size_t source_len;
    int64_t source_mtime_ms;       /* the file's modification time when it was read */
    double load_ms;                /* how long loading the file took */
    struct sr_invocation *current; /* the handler running now */
    int live_invocations;          /* handlers started and not yet finished (committed or failed) */
} sr_rules;

/* Calls the function below nargs arguments on the stack of r->L with a
 * traceback handler, under a fresh budget. On success leaves nresults values
 * and returns 0; on error pops everything it pushed, writes "file:line:
 * message" to err, logs the traceback, and returns -1. */
int sr_rules_call(sr_rules *r, int nargs, int nresults, char *err, size_t errlen);

/* Runs body(L) with ud as its only argument (a light userdata) in protected
 * mode on L (r->L or r->adapter_L) under a fresh budget: everything body does
 * — building argument tables, calling Lua, reading what Lua returned, with
 * its metamethods — is bounded, and an error of any kind comes back as -1
 * with "file:line: message" in err (logged with its traceback). Results go
 * through ud; what body allocated there before an error is the caller's to
 * free. Returns 0 or -1; L's stack is as before. */
int sr_rules_protected(sr_rules *r, lua_State *L, lua_CFunction body, void *ud, char *err, size_t errlen);

/* For bodies of sr_rules_protected: calls the Lua function below nargs
 * arguments (lua_call: errors go to the protected call) and notes where it
 * is defined, which a memory error reports. */
void sr_rules_body_call(sr_rules *r, lua_State *L, int nargs, int nresults);

/* Budgets. host: 1 for the daemon's own calls into rules (routes, adapters),
 * which get a quarter more memory than handlers so that what handlers leave
 * in globals cannot starve them. enter makes b the running budget (returns
 * the one it replaces: runs nest), leave restores it. */
void sr_rules_budget_init(sr_rules *r, sr_lua_budget *b, sr_lua_heap *heap, int host);
sr_lua_budget *sr_rules_budget_enter(sr_rules *r, sr_lua_budget *b);
void sr_rules_budget_leave(sr_rules *r, sr_lua_budget *b, sr_lua_budget *outer);
/* While the rules load: sms.config changed the limits, the running budget takes them. */
void sr_rules_budget_update(sr_rules *r);
/* "instruction budget exceeded (...)", "time limit exceeded (...)" or "memory limit reached (...)". */
const char *sr_rules_limit_text(sr_rules *r, const sr_lua_budget *b, char *buf, size_t len);
/* Writes "file:line:" of the innermost Lua function of L's stack (from
 * level, 0-based) with a current line, or "" when none. */
void sr_rules_where(lua_State *L, int level, char *out, size_t outlen);

/* The state of built-in adapters, created on first use (NULL when it cannot be created). */
lua_State *sr_rules_adapter_state(sr_rules *r);

/* The template declared with sms.template(name, ...), or NULL. */
const struct sr_template *sr_rules_template_find(sr_rules *r, const char *name);

/* The provider named name, or NULL. */
sr_provider *sr_rules_provider(sr_rules *r, const char *name);

/* Creates the state with open's tables and runs the rules file (path may be NULL: no rules).
 * On error returns -1 with "file:line: message" in err. The config is
 * borrowed for the lifetime of the rules. */
int sr_rules_create(sr_rules **out, const char *path, sr_config *config, sr_rules_opener open, char *err,
                    size_t errlen);
void sr_rules_free(sr_rules *r);
/* Reference counting across a reload: old rules live until the last
 * handler or provider request started on them is done. Release frees at 0. */
sr_rules *sr_rules_retain(sr_rules *r);
void sr_rules_release(sr_rules *r);
/* A one-line summary of what the rules declare. */
void sr_rules_summary(sr_rules *r, char *out, size_t outlen);

/* From the Lua side: the host of a state. */
sr_rules *sr_rules_from(lua_State *L);

#endif
