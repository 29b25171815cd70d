#include "rules/rules.h"
#include "core/buf.h"

#include <lauxlib.h>
#include <lua-cjson.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/log.h"
#include "rules/lua_string.h"
#include "model/message.h"
#include "codec/template.h"

static const char RULES_KEY = 'r'; /* registry key: its address */

static void rules_readonly(lua_State *L, const char *name);

sr_rules *sr_rules_from(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &RULES_KEY);
    sr_rules *r = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return r;
}

/* The allocator enforces the memory cap of a state while a budget runs on
 * it (heap->cap). Refusing makes Lua raise a memory error in the code that
 * asked, which the budget's protected call reports; the state stays usable.
 * Between runs the cap is off: the host's own pushes (argument tables, a
 * handler's coroutine) never fail because rules filled the state, so they
 * cannot raise outside a protected call. */
static void *rules_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    sr_lua_heap *h = ud;
    if (ptr == NULL) osize = 0;
    if (nsize == 0) {
        free(ptr);
        h->used -= osize;
        return NULL;
    }
    if (nsize > osize && h->cap && h->used + (nsize - osize) > h->cap) {
        h->exceeded = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p) return NULL;
    h->used = h->used - osize + nsize;
    return p;
}

/* ---- budgets ---- */

/* Instructions between two budget checks (and two looks at the clock). */
#define RULES_HOOK_STEP 1000

static uint64_t rules_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *sr_rules_limit_text(sr_rules *r, const sr_lua_budget *b, char *buf, size_t len) {
    switch (b->expired) {
    case SR_LIMIT_INSTRUCTIONS:
        snprintf(buf, len, "instruction budget exceeded (%llu instructions)", (unsigned long long)b->max_instructions);
        break;
    case SR_LIMIT_TIME:
        snprintf(buf, len, "time limit exceeded (%llu ms)", (unsigned long long)b->time_limit_ms);
        break;
    case SR_LIMIT_MEMORY:
        snprintf(buf, len, "memory limit reached (%llu bytes)", (unsigned long long)b->memory_limit);
        break;
    default: snprintf(buf, len, "stopped"); break;
    }
    (void)r;
    return buf;
}

/* The count hook, set on the main thread at creation so that every thread
 * inherits it. It charges the running budget and stops the run past its
 * instruction budget, its deadline (a long C call is caught at the next
 * instruction after it) or once the allocator refused it memory. Once
 * expired it fires at every instruction, so a pcall in the rule cannot
 * swallow the error and keep going. */
static void rules_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    sr_rules *r = sr_rules_from(L);
    sr_lua_budget *b = r ? r->budget : NULL;
    if (!b) return;
    int count = lua_gethookcount(L);
    if (!b->expired) {
        if (count != RULES_HOOK_STEP) {
            /* A thread left at every-instruction by an earlier expired run. */
            lua_sethook(L, rules_hook, LUA_MASKCOUNT, RULES_HOOK_STEP);
            b->instructions += 1;
        } else {
            b->instructions += RULES_HOOK_STEP;
        }
        if (b->heap && b->heap->exceeded) b->expired = SR_LIMIT_MEMORY;
        else if (b->max_instructions && b->instructions > b->max_instructions)
            b->expired = SR_LIMIT_INSTRUCTIONS;
        else if (b->deadline_ns && rules_now_ns() > b->deadline_ns)
            b->expired = SR_LIMIT_TIME;
        else
            return;
    }
    if (count != 1) lua_sethook(L, rules_hook, LUA_MASKCOUNT, 1);
    /* In a hook, level 0 is the running function: the place to name. */
    char text[96], where[160];
    sr_rules_where(L, 0, where, sizeof where);
    lua_pushfstring(L, "%s%s%s", where, where[0] ? " " : "", sr_rules_limit_text(r, b, text, sizeof text));
    lua_error(L);
}

/* Called by the bounded string functions at each call and every million
 * matching steps: a loop of many pattern calls, or one long call, runs
 * between two firings of the count hook, so the deadline is checked here
 * too. An expired budget makes the count hook raise at the next instruction
 * as well, so a pcall in the rule cannot swallow this. */
static void rules_string_guard(lua_State *L, void *ud) {
    (void)ud;
    sr_rules *r = sr_rules_from(L);
    sr_lua_budget *b = r ? r->budget : NULL;
    if (!b) return;
    if (!b->expired) {
        if (b->deadline_ns && rules_now_ns() > b->deadline_ns) b->expired = SR_LIMIT_TIME;
        else
            return;
    }
    if (lua_gethookcount(L) != 1) lua_sethook(L, rules_hook, LUA_MASKCOUNT, 1);
    char text[96], where[160];
    sr_rules_where(L, 1, where, sizeof where);
    lua_pushfstring(L, "%s%s%s", where, where[0] ? " " : "", sr_rules_limit_text(r, b, text, sizeof text));
    lua_error(L);
}

void sr_rules_budget_init(sr_rules *r, sr_lua_budget *b, sr_lua_heap *heap, int host) {
    memset(b, 0, sizeof *b);
    b->max_instructions = r->config->instruction_budget;
    b->time_limit_ms = r->config->time_limit_ms;
    b->memory_limit = r->config->memory_limit;
    /* The daemon's own calls into rule code get a reserve above what
     * handlers may fill, so that memory a handler leaves in globals cannot
     * starve routes and custom adapters. */
    if (host && heap == &r->heap) b->memory_limit += b->memory_limit / 4;
    b->heap = heap;
}

sr_lua_budget *sr_rules_budget_enter(sr_rules *r, sr_lua_budget *b) {
    sr_lua_budget *outer = r->budget;
    r->budget = b;
    b->start_ns = rules_now_ns();
    b->deadline_ns = b->time_limit_ms ? b->start_ns + b->time_limit_ms * 1000000u : 0;
    b->saved_cap = b->heap->cap;
    /* Lua collects garbage before it gives up on an allocation: only what
     * the state really holds counts against the cap. */
    b->heap->cap = b->heap->used > b->memory_limit ? b->heap->used : b->memory_limit;
    b->heap->exceeded = 0;
    return outer;
}

void sr_rules_budget_leave(sr_rules *r, sr_lua_budget *b, sr_lua_budget *outer) {
    if (b->heap->exceeded && !b->expired) b->expired = SR_LIMIT_MEMORY;
    b->heap->cap = b->saved_cap;
    b->heap->exceeded = 0;
    r->budget = outer;
}

void sr_rules_budget_update(sr_rules *r) {
    sr_lua_budget *b = r->budget;
    if (!b) return;
    b->max_instructions = r->config->instruction_budget;
    b->time_limit_ms = r->config->time_limit_ms;
    b->deadline_ns = b->time_limit_ms ? b->start_ns + b->time_limit_ms * 1000000u : 0;
    b->memory_limit = r->config->memory_limit;
    if (b->heap->cap < b->memory_limit) b->heap->cap = b->memory_limit;
}

void sr_rules_where(lua_State *L, int level, char *out, size_t outlen) {
    lua_Debug ar;
    out[0] = '\0';
    for (; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar)) break;
        if (ar.currentline > 0) {
            snprintf(out, outlen, "%s:%d:", ar.short_src, ar.currentline);
            return;
        }
    }
}

/* require: Lua source files from the rules' folder only (mode "t": no
 * binary chunks, which can crash the VM). */
static int rules_searcher(lua_State *L) {
    sr_rules *r = sr_rules_from(L);
    const char *name = luaL_checkstring(L, 1);
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '.' || *p == '-')) {
            lua_pushfstring(L, "\n\tmodule name '%s' has characters rules may not use", name);
            return 1;
        }
    }
    if (name[0] == '.' || strstr(name, "..")) {
        lua_pushfstring(L, "\n\tmodule name '%s' is not allowed", name);
        return 1;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, r->dir);
    luaL_addchar(&b, '/');
    for (const char *p = name; *p; p++) luaL_addchar(&b, *p == '.' ? '/' : *p);
    luaL_addstring(&b, ".lua");
    luaL_pushresult(&b);
    const char *file = lua_tostring(L, -1);
    FILE *f = fopen(file, "r");
    if (!f) {
        lua_pushfstring(L, "\n\tno file '%s'", file);
        return 1;
    }
    fclose(f);
    if (luaL_loadfilex(L, file, "t") != LUA_OK)
        return luaL_error(L, "error loading module '%s':\n\t%s", name, lua_tostring(L, -1));
    lua_pushstring(L, file);
    return 2;
}

/* Embedded modules ("adapters.util" → lua/adapters/util.lua) load from the
 * binary; preload entries make them require-able everywhere. */
static int rules_load_embedded(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    char path[128];
    sr_str_copy(path, sizeof path, name);
    for (char *p = path; *p; p++)
        if (*p == '.') *p = '/';
    size_t len;
    const char *src = sr_lua_embedded(path, &len);
    if (!src) return luaL_error(L, "no embedded module '%s'", name);
    char chunk[140];
    snprintf(chunk, sizeof chunk, "=%s", path);
    if (luaL_loadbufferx(L, src, len, chunk, "t") != LUA_OK) return lua_error(L);
    lua_call(L, 0, 1);
    /* Shared by every require in this state: read-only, so that one
     * handler cannot change what another (or a custom adapter) gets. */
    if (lua_istable(L, -1)) rules_readonly(L, name);
    return 1;
}

static int rules_open_cjson(lua_State *L) {
    lua_settop(L, 0);
    luaopen_cjson(L);
    rules_readonly(L, "cjson");
    return 1;
}

static int rules_forbidden_module(lua_State *L) {
    /* Level 2: the rule that called require (level 1 is require itself). */
    luaL_where(L, 2);
    lua_pushfstring(L, "module '%s' is not available to rules", lua_tostring(L, 1));
    lua_concat(L, 2);
    return lua_error(L);
}

/* os.time() and os.date(fmt) read "now" from sr_now_ms, the clock sms.now()
 * reads: the wall clock when serving, the virtual one under `smsrules test`.
 * With a time argument they are Lua's own (upvalue 1). */
static int rules_os_time(lua_State *L) {
    if (lua_isnoneornil(L, 1)) {
        lua_pushinteger(L, (lua_Integer)(sr_now_ms() / 1000));
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int rules_os_date(lua_State *L) {
    lua_settop(L, 2);
    if (lua_isnil(L, 1)) lua_pushliteral(L, "%c"), lua_replace(L, 1);
    if (lua_isnil(L, 2)) lua_pushinteger(L, (lua_Integer)(sr_now_ms() / 1000)), lua_replace(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

/* Pushes the rules' os: the clock functions only (time and date wrapped), also set as the global. */
static void rules_sandbox_os(lua_State *L) {
    lua_newtable(L);
    lua_getglobal(L, "os");
    const char *keep[] = {"clock", "difftime"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        lua_getfield(L, -1, keep[i]);
        lua_setfield(L, -3, keep[i]);
    }
    lua_getfield(L, -1, "time");
    lua_pushcclosure(L, rules_os_time, 1);
    lua_setfield(L, -3, "time");
    lua_getfield(L, -1, "date");
    lua_pushcclosure(L, rules_os_date, 1);
    lua_setfield(L, -3, "date");
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "os");
}

/* package.preload (the table on top): cjson, the embedded modules, a refusal for the removed libraries. */
static void rules_sandbox_preload(lua_State *L) {
    lua_pushcfunction(L, rules_open_cjson);
    lua_setfield(L, -2, "cjson");
    lua_pushcfunction(L, rules_forbidden_module);
    lua_setfield(L, -2, "io");
    lua_pushcfunction(L, rules_forbidden_module);
    lua_setfield(L, -2, "debug");
    for (int i = 0; sr_lua_embedded_name(i); i++) {
        char mod[128];
        sr_str_copy(mod, sizeof mod, sr_lua_embedded_name(i));
        for (char *p = mod; *p; p++)
            if (*p == '/') *p = '.';
        lua_pushcfunction(L, rules_load_embedded);
        lua_setfield(L, -2, mod);
    }
}

/* package (on top, the safe os below it): no C modules, no paths, loaded os is the safe one; require
 * finds preloads, then (rules) Lua sources in the rules' folder. */
static void rules_sandbox_package(lua_State *L, int rules) {
    lua_getfield(L, -1, "loaded");
    lua_pushvalue(L, -3); /* safe os */
    lua_setfield(L, -2, "os");
    lua_pushnil(L);
    lua_setfield(L, -2, "io");
    lua_pushnil(L);
    lua_setfield(L, -2, "debug");
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_setfield(L, -2, "loadlib");
    lua_pushstring(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pushstring(L, "");
    lua_setfield(L, -2, "path");
    /* searchpath would tell rules whether any file on the machine exists. */
    lua_pushnil(L);
    lua_setfield(L, -2, "searchpath");
    lua_getfield(L, -1, "preload");
    rules_sandbox_preload(L);
    lua_pop(L, 1);
    /* searchers: preload, then our Lua-source searcher. */
    lua_getfield(L, -1, "searchers");
    lua_rawgeti(L, -1, 1);
    lua_newtable(L);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    if (rules) {
        lua_pushcfunction(L, rules_searcher);
        lua_rawseti(L, -2, 2);
    }
    lua_setfield(L, -3, "searchers");
    lua_pop(L, 1); /* old searchers */
}

static void rules_sandbox(lua_State *L, int rules) {
    luaL_openlibs(L);
    sr_lua_bound_string(L); /* patterns with a step budget: C work the count hook cannot stop */
    sr_lua_string_set_guard(L, rules_string_guard, NULL);
    rules_sandbox_os(L);
    const char *globals[] = {"io", "debug", "load", "loadfile", "dofile"};
    for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, globals[i]);
    }
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    lua_getglobal(L, "package");
    rules_sandbox_package(L, rules);
    lua_pop(L, 2); /* package, safe os */
}

static int rules_traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = luaL_tolstring(L, 1, NULL);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* The first line of an error (file:line: message), without the traceback. */
static void rules_first_line(const char *msg, char *out, size_t outlen) {
    size_t n = strcspn(msg, "\n");
    if (n >= outlen) n = outlen - 1;
    memcpy(out, msg, n);
    out[n] = '\0';
}

/* "file:line:" where the function at idx is defined. */
static void rules_note_where(lua_State *L, int idx, sr_lua_budget *b) {
    lua_Debug ar;
    b->where[0] = '\0';
    if (!b || !lua_isfunction(L, idx)) return;
    lua_pushvalue(L, idx);
    if (lua_getinfo(L, ">S", &ar) && ar.linedefined > 0)
        snprintf(b->where, sizeof b->where, "%s:%d:", ar.short_src, ar.linedefined);
}

void sr_rules_body_call(sr_rules *r, lua_State *L, int nargs, int nresults) {
    if (r->budget) rules_note_where(L, lua_gettop(L) - nargs, r->budget);
    lua_call(L, nargs, nresults);
}

/* The error of a failed protected run (its message on top of L) into err,
 * logged with its traceback. */
static void rules_report(sr_rules *r, lua_State *L, const sr_lua_budget *b, int rc, char *err, size_t errlen, int log) {
    const char *msg = lua_tostring(L, -1);
    if (!msg) msg = "error object is not a string";
    char text[96];
    if (rc == LUA_ERRMEM || (b->expired == SR_LIMIT_MEMORY && strcmp(msg, "not enough memory") == 0)) {
        sr_lua_budget tmp = *b;
        tmp.expired = SR_LIMIT_MEMORY;
        snprintf(err, errlen, "%s%s%s", b->where, b->where[0] ? " " : "",
                 sr_rules_limit_text(r, &tmp, text, sizeof text));
        if (log) sr_warn("rule stopped: memory limit reached", "error", err);
        lua_gc(L, LUA_GCCOLLECT);
        return;
    }
    rules_first_line(msg, err, errlen);
    if (log)
        sr_warn(b->expired == SR_LIMIT_INSTRUCTIONS ? "rule stopped: instruction budget exceeded"
                : b->expired == SR_LIMIT_TIME       ? "rule stopped: time limit exceeded"
                : b->expired == SR_LIMIT_MEMORY     ? "rule stopped: memory limit reached"
                                                    : "rule error",
                "error", err, "traceback", msg);
    if (b->expired == SR_LIMIT_MEMORY) lua_gc(L, LUA_GCCOLLECT);
}

static sr_lua_heap *rules_heap_of(sr_rules *r, lua_State *L) { return L == r->adapter_L ? &r->adapter_heap : &r->heap; }

/* sr_rules_call; log: 0 when the caller reports the error itself (loading). */
/* lua_pcall under budget b (message handler at msgh). A run that passed a
 * limit and returned all the same (a coroutine of the rule's swallowed the
 * error) fails too: the stack is cut to top and the limit's error pushed. */
static int rules_pcall_budgeted(sr_rules *r, lua_State *L, sr_lua_budget *b, int nargs, int nresults, int msgh,
                                int top) {
    sr_lua_budget *outer = sr_rules_budget_enter(r, b);
    int rc = lua_pcall(L, nargs, nresults, msgh);
    sr_rules_budget_leave(r, b, outer);
    if (rc == LUA_OK && b->expired) {
        char text[96];
        lua_settop(L, top);
        lua_pushfstring(L, "%s%s%s", b->where, b->where[0] ? " " : "", sr_rules_limit_text(r, b, text, sizeof text));
        rc = LUA_ERRRUN;
    }
    return rc;
}

static int rules_call(sr_rules *r, int nargs, int nresults, char *err, size_t errlen, int log) {
    lua_State *L = r->L;
    int base = lua_gettop(L) - nargs; /* the function's index */
    sr_lua_budget b;
    sr_rules_budget_init(r, &b, &r->heap, 1);
    rules_note_where(L, base, &b);
    lua_pushcfunction(L, rules_traceback);
    lua_insert(L, base);
    int rc = rules_pcall_budgeted(r, L, &b, nargs, nresults, base, base);
    if (rc != LUA_OK) {
        rules_report(r, L, &b, rc, err, errlen, log);
        lua_settop(L, base - 1);
        return -1;
    }
    lua_remove(L, base);
    return 0;
}

int sr_rules_call(sr_rules *r, int nargs, int nresults, char *err, size_t errlen) {
    return rules_call(r, nargs, nresults, err, errlen, 1);
}

int sr_rules_protected(sr_rules *r, lua_State *L, lua_CFunction body, void *ud, char *err, size_t errlen) {
    int top = lua_gettop(L);
    sr_lua_budget b;
    sr_rules_budget_init(r, &b, rules_heap_of(r, L), 1);
    lua_pushcfunction(L, rules_traceback);
    lua_pushcfunction(L, body);
    lua_pushlightuserdata(L, ud);
    int rc = rules_pcall_budgeted(r, L, &b, 1, 0, top + 1, top);
    if (rc != LUA_OK) rules_report(r, L, &b, rc, err, errlen, 1);
    lua_settop(L, top);
    return rc == LUA_OK ? 0 : -1;
}

/* Registry keys: their addresses. */
static const char READONLY_KEY = 'o'; /* set of read-only proxies */
static const char BASE_KEY = 'b';     /* the protected globals of a rules state */

/* setmetatable(t, mt) without finalizers: a __gc would run Lua whenever the
 * collector gets to it — in the middle of another run, at a reload, at
 * exit — outside every budget. */
static int rules_setmetatable(lua_State *L) {
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc finalizers are not available to rules");
        lua_pop(L, 1);
    }
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

static int rules_is_readonly(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &READONLY_KEY);
    lua_pushvalue(L, idx);
    int yes = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return yes;
}

/* rawset refuses the read-only tables and the protected globals. */
static int rules_rawset(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    if (rules_is_readonly(L, 1)) return luaL_error(L, "rawset: the table is read-only");
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    int globals = lua_rawequal(L, -1, 1);
    lua_pop(L, 1);
    if (globals && lua_rawgetp(L, LUA_REGISTRYINDEX, &BASE_KEY) == LUA_TTABLE) {
        lua_pushvalue(L, 2);
        int protected_name = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 2);
        if (protected_name) return luaL_error(L, "rawset: global '%s' is read-only", luaL_tolstring(L, 2, NULL));
    }
    lua_settop(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 3, 1);
    return 1;
}

/* collectgarbage: "count" and "collect" only. Stopping the collector or
 * retuning it would change every later run. */
static int rules_collectgarbage(lua_State *L) {
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "count") != 0 && strcmp(opt, "collect") != 0)
        return luaL_error(L, "collectgarbage: option '%s' is not available to rules", opt);
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int rules_readonly_newindex(lua_State *L) {
    return luaL_error(L, "'%s' is read-only: rules may not change it (field '%s')",
                      lua_tostring(L, lua_upvalueindex(1)), luaL_tolstring(L, 2, NULL));
}

static int rules_readonly_pairs(lua_State *L) {
    lua_getglobal(L, "next");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushnil(L);
    return 3;
}

static int rules_readonly_len(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, lua_upvalueindex(1)));
    return 1;
}

/* Replaces the table at the top with a read-only view of it: reads go to
 * the table, writes raise, rawset refuses it, its metatable is locked. The
 * way Redis protects the globals of its scripts. */
static void rules_readonly(lua_State *L, const char *name) {
    int real = lua_gettop(L);
    lua_newtable(L); /* the view */
    lua_createtable(L, 0, 5);
    lua_pushvalue(L, real);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_pushcclosure(L, rules_readonly_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, real);
    lua_pushcclosure(L, rules_readonly_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushvalue(L, real);
    lua_pushcclosure(L, rules_readonly_len, 1);
    lua_setfield(L, -2, "__len");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &READONLY_KEY);
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_replace(L, real);
}

/* Replaces the table at the top with a copy of it whose table fields are
 * read-only views (one level). A copy: the original may be read raw by the
 * libraries (require walks package.searchers with rawgeti). */
static void rules_readonly_fields(lua_State *L, const char *prefix) {
    int t = lua_gettop(L);
    lua_newtable(L);
    int copy = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -1) == LUA_TTABLE && lua_type(L, -2) == LUA_TSTRING && !rules_is_readonly(L, -1)) {
            char name[128];
            snprintf(name, sizeof name, "%s.%s", prefix, lua_tostring(L, -2));
            rules_readonly(L, name);
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, copy);
    }
    lua_replace(L, t);
}

/* The standard library tables, `sms` and `package` (with what it holds)
 * become read-only views, in _G and in package.loaded; the string
 * metatable is locked. */
static void rules_protect_libraries(lua_State *L) {
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &READONLY_KEY);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    int loaded = lua_gettop(L);
    static const char *const libs[] = {"string", "table", "math", "utf8", "coroutine", "os", "package", "sms"};
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        if (lua_getglobal(L, libs[i]) != LUA_TTABLE) {
            lua_pop(L, 1);
            continue;
        }
        if (strcmp(libs[i], "package") == 0 || strcmp(libs[i], "sms") == 0) rules_readonly_fields(L, libs[i]);
        rules_readonly(L, libs[i]);
        lua_pushvalue(L, -1);
        lua_setglobal(L, libs[i]);
        if (strcmp(libs[i], "sms") != 0) lua_setfield(L, loaded, libs[i]);
        else
            lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
}

/* Assigning a global that is a protected name (the standard library and
 * `sms`) raises; any other global is the rules' own. */
static int rules_global_newindex(lua_State *L) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
        return luaL_error(L, "global '%s' is read-only: rules may not replace it", luaL_tolstring(L, 2, NULL));
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

/* The globals present now move to a protected base that _G reads through. */
static void rules_protect_globals(lua_State *L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    int g = lua_gettop(L);
    lua_newtable(L);
    int base = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, g)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, base);
    }
    lua_pushnil(L);
    while (lua_next(L, base)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, g);
    }
    lua_pushvalue(L, base);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &BASE_KEY);
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, base);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, base);
    lua_pushcclosure(L, rules_global_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, g);
    lua_pop(L, 2);
}

/* Wraps the base function name with f (the original as upvalue 1). */
static void rules_wrap_global(lua_State *L, const char *name, lua_CFunction f) {
    lua_getglobal(L, name);
    lua_pushcclosure(L, f, 1);
    lua_setglobal(L, name);
}

/* How the state is set up; rules: 1 for the rules' state (sms table with
 * everything, require from the rules' folder), 0 for the built-in adapters'
 * state (sms.crypto only, embedded modules only). Runs under lua_pcall. */
static int rules_setup(lua_State *L) {
    int rules = lua_toboolean(L, 1);
    int globals = lua_toboolean(L, 2);
    rules_sandbox(L, rules);
    rules_wrap_global(L, "setmetatable", rules_setmetatable);
    rules_wrap_global(L, "rawset", rules_rawset);
    rules_wrap_global(L, "collectgarbage", rules_collectgarbage);
    /* The host's JSON encoder, a private lua-cjson instance: rules cannot
     * reconfigure or replace it. */
    lua_pushcfunction(L, luaopen_cjson);
    lua_call(L, 0, 1);
    lua_getfield(L, -1, "new");
    lua_call(L, 0, 1);
    /* A handler's result holding 1/0 or 0/0 is still answered: as null. */
    lua_getfield(L, -1, "encode_invalid_numbers");
    lua_pushliteral(L, "null");
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "encode");
    lua_setfield(L, LUA_REGISTRYINDEX, "smsrules.cjson_encode");
    lua_pop(L, 2);

    lua_newtable(L);
    sr_rules *r = sr_rules_from(L);
    if (r->open) r->open(L, rules);
    lua_setglobal(L, "sms");
    rules_protect_libraries(L);
    if (globals) rules_protect_globals(L);
    return 0;
}

/* A new sandboxed state on heap, with the count hook set before anything
 * runs. Returns NULL with err. */
static lua_State *rules_new_state(sr_rules *r, sr_lua_heap *heap, int rules, int globals, char *err, size_t errlen) {
    lua_State *L = lua_newstate(rules_alloc, heap);
    if (!L) {
        snprintf(err, errlen, "cannot create a Lua state");
        return NULL;
    }
    lua_sethook(L, rules_hook, LUA_MASKCOUNT, RULES_HOOK_STEP);
    lua_pushlightuserdata(L, r);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &RULES_KEY);
    lua_pushcfunction(L, rules_setup);
    lua_pushboolean(L, rules);
    lua_pushboolean(L, globals);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        snprintf(err, errlen, "cannot set up a Lua state: %s", lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    return L;
}

lua_State *sr_rules_adapter_state(sr_rules *r) {
    if (!r->adapter_L) {
        char err[200];
        r->adapter_L = rules_new_state(r, &r->adapter_heap, 0, 1, err, sizeof err);
        if (!r->adapter_L) sr_error("built-in adapters", "error", err);
    }
    return r->adapter_L;
}

/* Compiles the rules file from one read of it, and keeps those bytes for the console (so what it shows
 * is what runs, and showing it reads no file on the loop). Like luaL_loadfile, a leading UTF-8 BOM
 * and a first line starting with '#' are skipped, its newline kept so line numbers stay right. */
static int rules_load_file(sr_rules *r, const char *path, char *err, size_t errlen) {
    sr_buf src;
    sr_buf_init(&src);
    if (sr_buf_read_file(&src, path, &r->source_mtime_ms, err, errlen) != 0) {
        sr_buf_free(&src);
        return -1;
    }
    const char *p = src.data ? src.data : "";
    size_t n = src.len;
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3, n -= 3;
    if (n > 0 && p[0] == '#')
        while (n > 0 && p[0] != '\n') p++, n--;
    sr_buf chunkname;
    sr_buf_init(&chunkname);
    sr_buf_printf(&chunkname, "@%s", path);
    int rc = luaL_loadbufferx(r->L, p, n, sr_buf_cstr(&chunkname), "t");
    sr_buf_free(&chunkname);
    if (rc != LUA_OK) {
        rules_first_line(lua_tostring(r->L, -1), err, errlen);
        sr_buf_free(&src);
        return -1;
    }
    if (src.len <= SR_RULES_MAX_SOURCE) {
        r->source = sr_buf_steal(&src, &r->source_len);
        if (!r->source) r->source = strdup("");
    }
    sr_buf_free(&src);
    return 0;
}

int sr_rules_create(sr_rules **out, const char *path, sr_config *config, sr_rules_opener open, char *err,
                    size_t errlen) {
    *out = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sr_rules *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->config = config;
    r->open = open;
    r->refs = 1;
    r->route_ref = LUA_NOREF;
    /* A state without a rules file (the test runner's host) runs no rules:
     * its globals stay writable. */
    r->L = rules_new_state(r, &r->heap, 1, path != NULL, err, errlen);
    if (!r->L) {
        free(r);
        return -1;
    }

    if (path) {
        r->path = strdup(path);
        const char *slash = strrchr(path, '/');
        r->dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
        if (!r->path || !r->dir) abort();
        if (rules_load_file(r, path, err, errlen) != 0) goto fail;
        /* The top level runs under the same limits as a handler: a file
         * that loops or explodes is stopped and reported, never hangs a
         * start, a reload or `smsrules check`. */
        r->loading = 1;
        int rc = rules_call(r, 0, 0, err, errlen, 0);
        r->loading = 0;
        if (rc != 0) {
            if (strncmp(err, "memory limit", 12) == 0) {
                char tmp[512];
                snprintf(tmp, sizeof tmp, "%s: %s", path, err);
                sr_str_copy(err, errlen, tmp);
            }
            goto fail;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->load_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    r->loaded_at_ms = sr_now_ms();
    *out = r;
    return 0;
fail:
    sr_rules_free(r);
    return -1;
}

sr_provider *sr_rules_provider(sr_rules *r, const char *name) {
    for (int i = 0; i < r->provider_count; i++)
        if (strcmp(r->providers[i].name, name) == 0) return &r->providers[i];
    return NULL;
}

sr_rules *sr_rules_retain(sr_rules *r) {
    if (r) r->refs++;
    return r;
}

void sr_rules_release(sr_rules *r) {
    if (r && --r->refs == 0) sr_rules_free(r);
}

const struct sr_template *sr_rules_template_find(sr_rules *r, const char *name) {
    for (int i = 0; i < r->template_count; i++)
        if (strcmp(r->templates[i].name, name) == 0) return r->templates[i].tpl;
    return NULL;
}

void sr_rules_free(sr_rules *r) {
    if (!r) return;
    sr_buf_free(&r->render_buf);
    for (int i = 0; i < r->template_count; i++) {
        free(r->templates[i].name);
        sr_template_free(r->templates[i].tpl);
    }
    for (int i = 0; i < r->provider_count; i++) {
        free(r->providers[i].name);
        free(r->providers[i].adapter);
        free(r->providers[i].webhook_path_secret);
        free(r->providers[i].webhook_basic_auth);
        free(r->providers[i].webhook_secret);
        free(r->providers[i].send_template); /* one block (rules/adapter_generic.h) */
    }
    if (r->L) lua_close(r->L);
    if (r->adapter_L) lua_close(r->adapter_L);
    free(r->path);
    free(r->dir);
    free(r->source);
    free(r);
}

void sr_rules_summary(sr_rules *r, char *out, size_t outlen) {
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_printf(&b, "%s: ok; %d provider%s", r->path ? r->path : "(no rules)", r->provider_count,
                  r->provider_count == 1 ? "" : "s");
    for (int i = 0; i < r->provider_count; i++)
        sr_buf_printf(&b, "%s%s (%s)", i ? ", " : ": ", r->providers[i].name, r->providers[i].adapter);
    sr_buf_printf(&b, "; %d template%s", r->template_count, r->template_count == 1 ? "" : "s");
    for (int i = 0; i < r->template_count; i++) {
        const sr_template *t = r->templates[i].tpl;
        sr_buf_printf(&b, "%s%s(", i ? ", " : ": ", r->templates[i].name);
        for (int v = 0; v < sr_template_var_count(t); v++)
            sr_buf_printf(&b, "%s%s", v ? " " : "", sr_template_var(t, v));
        sr_buf_putc(&b, ')');
    }
    /* Handlers: the events, in name order (the registry table has none). */
    lua_State *L = r->L;
    lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.events");
    int events = 0;
    sr_buf names;
    sr_buf_init(&names);
    if (lua_istable(L, -1)) {
        lua_newtable(L);
        lua_pushnil(L);
        while (lua_next(L, -3)) {
            lua_pop(L, 1);
            lua_pushvalue(L, -1);
            lua_rawseti(L, -3, ++events);
        }
        /* Rules may have replaced the global `table`: sort only with a real one. */
        lua_getglobal(L, "table");
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "sort");
            lua_pushvalue(L, -3);
            if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
        }
        lua_pop(L, 1); /* table */
        for (int i = 1; i <= events; i++) {
            lua_rawgeti(L, -1, i);
            sr_buf_printf(&names, "%s%s", i > 1 ? ", " : ": ", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        lua_pop(L, 1); /* the name list */
    }
    lua_pop(L, 1);
    sr_buf_printf(&b, "; %d event handler%s%s", events, events == 1 ? "" : "s", names.len ? names.data : "");
    lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.on_inbound");
    if (lua_isfunction(L, -1)) sr_buf_puts(&b, "; sms.on_inbound defined");
    lua_pop(L, 1);
    if (r->route_ref != LUA_NOREF) sr_buf_puts(&b, "; sms.route defined");
    sr_buf_free(&names);
    sr_str_copy(out, outlen, sr_buf_cstr(&b));
    sr_buf_free(&b);
}
