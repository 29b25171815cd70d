#include "rules/rules_exec.h"
#include "core/buf.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "rules/host.h"
#include "store/store.h"

struct sr_invocation {
    sr_rules *rules;
    lua_State *co;
    int co_ref;
    int overlay_ref;
    sr_store_txn *unit;
    char (*ids)[SR_ID_LEN + 1];
    int id_count;
    int id_cap;
    sr_lua_budget budget; /* across all its resumes */
    char *result_json;
    int yield_expected;
    int no_result; /* the caller does not read the handler's return value: it is not encoded */
    sr_invocation_done done;
    void *ud;
    int (*before_commit)(sr_store_txn *unit, const char (*ids)[SR_ID_LEN + 1], int id_count, void *ud);
    void *before_commit_ud;
    char owed_key[SR_ID_LEN + 24]; /* SR_SPACE_OWED entry cleared when the handler ends, or "" */
    char error[512];
};

sr_invocation *sr_invocation_current(sr_rules *r) { return r->current; }

sr_store_txn *sr_invocation_unit(sr_invocation *inv) {
    if (!inv->unit) inv->unit = sr_store_txn_new(sr_rules_store(inv->rules));
    return inv->unit;
}

void sr_invocation_add_id(sr_invocation *inv, const char *id) {
    if (inv->id_count == inv->id_cap) {
        inv->id_cap = inv->id_cap ? inv->id_cap * 2 : 4;
        inv->ids = realloc(inv->ids, sizeof *inv->ids * (size_t)inv->id_cap);
        if (!inv->ids) abort();
    }
    sr_str_copy(inv->ids[inv->id_count++], SR_ID_LEN + 1, id);
}

void sr_invocation_push_overlay(sr_invocation *inv, lua_State *L) {
    if (inv->overlay_ref == LUA_NOREF) {
        lua_newtable(L);
        inv->overlay_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, inv->overlay_ref);
}

void sr_lua_push_json(lua_State *L, const sr_json *v, int depth) {
    luaL_checkstack(L, 4, "JSON too deep");
    switch (v->type) {
    case SR_JSON_NULL: lua_pushnil(L); break;
    case SR_JSON_FALSE: lua_pushboolean(L, 0); break;
    case SR_JSON_TRUE: lua_pushboolean(L, 1); break;
    case SR_JSON_NUMBER: {
        int64_t i;
        if (sr_json_is_integer(v, &i)) lua_pushinteger(L, (lua_Integer)i);
        else
            lua_pushnumber(L, v->num);
        break;
    }
    case SR_JSON_STRING: lua_pushlstring(L, v->str, v->len); break;
    case SR_JSON_ARRAY: {
        lua_createtable(L, (int)v->count, 0);
        lua_Integer i = 1;
        for (const sr_json *c = v->child; c; c = c->next) {
            sr_lua_push_json(L, c, depth + 1);
            lua_rawseti(L, -2, i++);
        }
        break;
    }
    case SR_JSON_OBJECT:
        lua_createtable(L, 0, (int)v->count);
        for (const sr_json *c = v->child; c; c = c->next) {
            lua_pushlstring(L, c->key, c->key_len);
            sr_lua_push_json(L, c, depth + 1);
            lua_rawset(L, -3);
        }
        break;
    }
}

static void exec_free(sr_invocation *inv) {
    lua_State *L = inv->rules->L;
    if (inv->unit) sr_store_txn_discard(inv->unit);
    luaL_unref(L, LUA_REGISTRYINDEX, inv->co_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, inv->overlay_ref);
    /* Handlers in flight across a reload finish on the old rules, which go
     * away with the last of them. */
    inv->rules->live_invocations--;
    sr_rules_release(inv->rules);
    free(inv->ids);
    free(inv->result_json);
    free(inv);
}

static void exec_owed_cleared(sr_store_txn *t, void *ud) {
    (void)ud;
    if (sr_store_txn_status(t) != 0)
        sr_warn("status handler: could not clear its owed entry", "error", sr_store_strerror(sr_store_txn_status(t)));
}

/* A status handler that failed ran to its end all the same: it is not owed any more. */
static void exec_clear_owed(sr_store *store, const char *key) {
    sr_store_txn *t = sr_store_txn_new(store);
    sr_store_txn_del(t, SR_SPACE_OWED, key, strlen(key));
    sr_store_txn_submit(t, exec_owed_cleared, NULL);
}

static void exec_report(sr_invocation *inv, sr_invocation_status st, const char *error, int store_code) {
    if (!inv->done) return;
    sr_invocation_result res;
    memset(&res, 0, sizeof res);
    res.status = st;
    res.error = error;
    res.store_code = store_code;
    res.ids = (const char(*)[SR_ID_LEN + 1]) inv->ids;
    res.id_count = st == SR_INV_OK ? inv->id_count : 0;
    res.result_json = st == SR_INV_OK ? inv->result_json : NULL;
    inv->done(&res, inv->ud);
}

static void exec_committed(sr_store_txn *t, void *ud) {
    sr_invocation *inv = ud;
    int st = sr_store_txn_status(t);
    if (st == SR_E_EXISTS) {
        /* A concurrent handler used the same idempotency key first: this one's
         * effects are not written; its message is the existing one. */
        for (int slot = 0; slot < inv->id_count; slot++) {
            if (sr_store_txn_result(t, slot) == SR_E_EXISTS) {
                const char *id = sr_store_txn_id(t, slot);
                if (id) sr_str_copy(inv->ids[slot], SR_ID_LEN + 1, id);
            }
        }
        st = 0;
    }
    if (st == 0) {
        /* Messages it queued reach the scheduler through the store's announcement. */
        exec_report(inv, SR_INV_OK, NULL, 0);
    } else {
        exec_report(inv, SR_INV_STORE, sr_store_strerror(st), st);
    }
    exec_free(inv);
}

/* Keeps the handler's first return value as JSON for the caller (values
 * that have no JSON form — functions, cycles — are left out). */
static void exec_keep_result(sr_invocation *inv) {
    lua_State *co = inv->co;
    if (lua_gettop(co) < 1 || lua_isnil(co, 1)) return;
    lua_getfield(co, LUA_REGISTRYINDEX, "smsrules.cjson_encode");
    if (!lua_isfunction(co, -1)) {
        lua_pop(co, 1);
        lua_getglobal(co, "require");
        lua_pushstring(co, "cjson");
        if (lua_pcall(co, 1, 1, 0) != LUA_OK) {
            lua_pop(co, 1);
            return;
        }
        lua_getfield(co, -1, "new");
        if (lua_pcall(co, 0, 1, 0) != LUA_OK) {
            lua_pop(co, 2);
            return;
        }
        lua_getfield(co, -1, "encode");
        lua_pushvalue(co, -1);
        lua_setfield(co, LUA_REGISTRYINDEX, "smsrules.cjson_encode");
        lua_remove(co, -2);
        lua_remove(co, -2);
    }
    lua_pushvalue(co, 1);
    /* lua-cjson reads tables raw: no rule code runs in the encoding. */
    if (lua_pcall(co, 1, 1, 0) == LUA_OK) {
        size_t len;
        const char *json = lua_tolstring(co, -1, &len);
        if (json && len <= 65536) {
            inv->result_json = malloc(len + 1);
            if (!inv->result_json) abort();
            memcpy(inv->result_json, json, len + 1);
        }
    }
    lua_pop(co, 1);
}

/* The handler returned: its effects (with the caller's record and the owed entry it clears) commit as
 * one unit, and done runs after that. */
static void exec_commit(sr_invocation *inv) {
    sr_store *store = sr_rules_store(inv->rules);
    if (!inv->no_result) exec_keep_result(inv);
    lua_settop(inv->co, 0);
    int dropped = inv->before_commit && store
                      ? inv->before_commit(sr_invocation_unit(inv), (const char(*)[SR_ID_LEN + 1]) inv->ids,
                                           inv->id_count, inv->before_commit_ud)
                      : 0;
    if (dropped) {
        /* The caller's record cannot go with these effects: none of them is written. */
        exec_report(inv, SR_INV_STORE, sr_store_strerror(dropped), dropped);
        exec_free(inv);
        return;
    }
    if (inv->owed_key[0] && store)
        sr_store_txn_del(sr_invocation_unit(inv), SR_SPACE_OWED, inv->owed_key, strlen(inv->owed_key));
    if (inv->unit && !store) {
        /* The store closed while the handler ran (the daemon stopped): nothing can be written. */
        sr_store_txn_discard(inv->unit);
        inv->unit = NULL;
        exec_report(inv, SR_INV_STORE, "the store is closed", SR_E_IO);
        exec_free(inv);
        return;
    }
    if (inv->unit) {
        sr_store_txn *t = inv->unit;
        inv->unit = NULL;
        sr_store_txn_submit(t, exec_committed, inv);
        return;
    }
    exec_report(inv, SR_INV_OK, NULL, 0);
    exec_free(inv);
}

/* After the coroutine returned or failed. */
static void exec_finish(sr_invocation *inv, int rc) {
    sr_rules *r = inv->rules;
    sr_store *store = sr_rules_store(r);
    if (rc == LUA_OK) {
        exec_commit(inv);
        return;
    }
    const char *msg = lua_tostring(inv->co, -1);
    if (!msg) msg = "error object is not a string";
    int limit = inv->budget.expired;
    if (rc == LUA_ERRMEM) limit = SR_LIMIT_MEMORY;
    sr_invocation_status st = limit == SR_LIMIT_INSTRUCTIONS || limit == SR_LIMIT_TIME ? SR_INV_TIMEOUT
                              : limit == SR_LIMIT_MEMORY                               ? SR_INV_MEMORY
                                                                                       : SR_INV_ERROR;
    if (rc == LUA_ERRMEM) {
        /* Lua raises memory errors without a place: the coroutine's stack
         * (kept after the error) says where it was. */
        char where[160], text[96];
        sr_rules_where(inv->co, 0, where, sizeof where);
        if (!where[0]) sr_str_copy(where, sizeof where, inv->budget.where);
        inv->budget.expired = SR_LIMIT_MEMORY;
        snprintf(inv->error, sizeof inv->error, "%s%s%s", where, where[0] ? " " : "",
                 sr_rules_limit_text(r, &inv->budget, text, sizeof text));
    } else {
        size_t n = strcspn(msg, "\n");
        snprintf(inv->error, sizeof inv->error, "%.*s", (int)(n < 500 ? n : 500), msg);
    }
    luaL_traceback(r->L, inv->co, msg, 0);
    sr_warn(limit == SR_LIMIT_INSTRUCTIONS ? "rule stopped: instruction budget exceeded"
            : limit == SR_LIMIT_TIME       ? "rule stopped: time limit exceeded"
            : limit == SR_LIMIT_MEMORY     ? "rule stopped: memory limit reached"
                                           : "rule error",
            "error", inv->error, "traceback", lua_tostring(r->L, -1));
    lua_pop(r->L, 1);
    /* Nothing of a failed handler is written. */
    if (inv->unit) {
        sr_store_txn_discard(inv->unit);
        inv->unit = NULL;
    }
    if (inv->owed_key[0] && store) exec_clear_owed(store, inv->owed_key);
    exec_report(inv, st, inv->error, 0);
    exec_free(inv);
    /* A memory-capped state gets its memory back now. */
    lua_gc(r->L, LUA_GCCOLLECT);
}

/* Resumes the coroutine with nargs values on its stack. Returns 1 when it waits for an async action (inv lives
 * on), 0 when it ended (inv may be gone). */
static int exec_resume(sr_invocation *inv, int nargs) {
    sr_rules *r = inv->rules;
    sr_invocation *outer = r->current;
    r->current = inv;
    int nres = 0;
    inv->yield_expected = 0;
    sr_lua_budget *outer_budget = sr_rules_budget_enter(r, &inv->budget);
    int rc = lua_resume(inv->co, r->L, nargs, &nres);
    sr_rules_budget_leave(r, &inv->budget, outer_budget);
    r->current = outer;
    if ((rc == LUA_OK || rc == LUA_YIELD) && inv->budget.expired) {
        /* Past a limit and yet returned: the error was swallowed (a
         * coroutine of its own caught it) before the hook could fire again. */
        char where[160], text[96];
        sr_rules_where(inv->co, 0, where, sizeof where);
        if (!where[0]) sr_str_copy(where, sizeof where, inv->budget.where);
        lua_settop(inv->co, 0);
        lua_pushfstring(inv->co, "%s%s%s", where, where[0] ? " " : "",
                        sr_rules_limit_text(r, &inv->budget, text, sizeof text));
        exec_finish(inv, LUA_ERRRUN);
        return 0;
    }
    if (rc == LUA_YIELD && inv->yield_expected) return 1; /* an async action resumes it later */
    if (rc == LUA_YIELD) {
        /* Nothing would ever resume it. */
        lua_settop(inv->co, 0);
        lua_pushstring(inv->co, "a handler may not yield (coroutine.yield outside a coroutine of its own); "
                                "only async sms.* functions wait");
        rc = LUA_ERRRUN;
    }
    exec_finish(inv, rc);
    return 0;
}

lua_State *sr_invocation_thread(sr_invocation *inv) { return inv->co; }

void sr_invocation_resume(sr_invocation *inv, int nresults) { (void)exec_resume(inv, nresults); }

void sr_invocation_expect_yield(sr_invocation *inv) { inv->yield_expected = 1; }

/* Starts an invocation of the handler on top of r->L's stack (popped):
 * its own coroutine, under the budget. The caller then pushes the handler's
 * argument onto the returned invocation's thread and calls exec_resume. */
static sr_invocation *exec_start(sr_rules *r, sr_invocation_done done, void *ud) {
    lua_State *L = r->L;
    sr_invocation *inv = calloc(1, sizeof *inv);
    if (!inv) abort();
    inv->rules = sr_rules_retain(r);
    r->live_invocations++;
    inv->done = done;
    inv->ud = ud;
    inv->overlay_ref = LUA_NOREF;
    sr_rules_budget_init(r, &inv->budget, &r->heap, 0);
    /* The coroutine inherits the count hook of the main thread. */
    inv->co = lua_newthread(L);
    inv->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_xmove(L, inv->co, 1); /* the handler */
    lua_Debug ar;
    lua_pushvalue(inv->co, 1);
    if (lua_getinfo(inv->co, ">S", &ar) && ar.linedefined > 0)
        snprintf(inv->budget.where, sizeof inv->budget.where, "%s:%d:", ar.short_src, ar.linedefined);
    return inv;
}

int sr_rules_fire_event(sr_rules *r, const char *name, const sr_json *arg, sr_invocation_done done, void *ud) {
    lua_State *L = r->L;
    lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.events");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return SR_E_NOTFOUND;
    }
    lua_getfield(L, -1, name);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 2);
        return SR_E_NOTFOUND;
    }
    sr_invocation *inv = exec_start(r, done, ud);
    lua_pop(L, 1); /* the events table */
    if (arg) sr_lua_push_json(inv->co, arg, 0);
    else
        lua_newtable(inv->co);
    exec_resume(inv, 1);
    return 0;
}

int sr_rules_fire_inbound(sr_rules *r, const sr_inbound *msg, sr_invocation_done done, void *ud) {
    lua_State *L = r->L;
    lua_getfield(L, LUA_REGISTRYINDEX, SR_INBOUND_HANDLER_KEY);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return SR_E_NOTFOUND;
    }
    sr_invocation *inv = exec_start(r, done, ud);
    inv->before_commit = msg->before_commit;
    inv->before_commit_ud = msg->before_commit_ud;
    inv->no_result = msg->no_result;
    /* The handler's argument: msg.id, msg.from, msg.to, msg.text, msg.provider, msg.received_at. */
    lua_State *co = inv->co;
    lua_createtable(co, 0, 6);
    const char *fields[][2] = {
        {"id", msg->id}, {"from", msg->from}, {"to", msg->to}, {"text", msg->text}, {"provider", msg->provider}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (!fields[i][1]) continue;
        lua_pushstring(co, fields[i][1]);
        lua_setfield(co, -2, fields[i][0]);
    }
    if (msg->text && msg->text_len) {
        /* Whole, NUL bytes included: an inbound SMS is never cut short. */
        lua_pushlstring(co, msg->text, msg->text_len);
        lua_setfield(co, -2, "text");
    }
    lua_pushnumber(co, (lua_Number)msg->received_at_ms / 1000.0);
    lua_setfield(co, -2, "received_at");
    int waiting = exec_resume(inv, 1);
    if (msg->waiting) *msg->waiting = waiting;
    return 0;
}

/* The message as handlers see it: the fields of GET /v1/messages/{id} that
 * rules decide on. */
static void exec_push_message(lua_State *L, const sr_message *m) {
    lua_createtable(L, 0, 14);
    const char *strings[][2] = {{"id", m->id},
                                {"to", m->to},
                                {"from", m->from},
                                {"text", m->text},
                                {"status", sr_status_name(m->status)},
                                {"provider", m->provider},
                                {"provider_id", m->provider_id},
                                {"error", m->error},
                                {"reply_to", m->reply_to}};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        if (!strings[i][1]) continue;
        lua_pushstring(L, strings[i][1]);
        lua_setfield(L, -2, strings[i][0]);
    }
    lua_pushinteger(L, m->segments);
    lua_setfield(L, -2, "segments");
    lua_pushinteger(L, m->attempt_count);
    lua_setfield(L, -2, "attempts");
    lua_createtable(L, 0, m->tag_count);
    for (int i = 0; i < m->tag_count; i++) {
        lua_pushstring(L, m->tags[i].value ? m->tags[i].value : "");
        lua_setfield(L, -2, m->tags[i].key);
    }
    lua_setfield(L, -2, "tags");
}

/* Runs sms.on_status(msg, status) for m; owed_key (may be NULL) is the
 * SR_SPACE_OWED entry the handler's unit clears. */
static int exec_fire_status(sr_rules *r, const sr_message *m, sr_status status, const char *owed_key) {
    lua_State *L = r->L;
    lua_getfield(L, LUA_REGISTRYINDEX, SR_STATUS_HANDLER_KEY);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return SR_E_NOTFOUND;
    }
    sr_invocation *inv = exec_start(r, NULL, NULL);
    if (owed_key) sr_str_copy(inv->owed_key, sizeof inv->owed_key, owed_key);
    exec_push_message(inv->co, m);
    lua_pushstring(inv->co, sr_status_name(status));
    exec_resume(inv, 2);
    return 0;
}

int sr_rules_has_status_handler(sr_rules *r) {
    if (!r) return 0;
    lua_getfield(r->L, LUA_REGISTRYINDEX, SR_STATUS_HANDLER_KEY);
    int yes = lua_isfunction(r->L, -1);
    lua_pop(r->L, 1);
    return yes;
}

void sr_rules_status_changed(sr_rules *r, sr_store *store, const sr_message *m, int64_t owed) {
    char key[SR_ID_LEN + 24] = "";
    if (owed > 0) sr_store_owed_key(m->id, owed, key, sizeof key);
    /* Rules reloaded meanwhile without a handler: nothing will run it. */
    if ((!r || exec_fire_status(r, m, m->status, key[0] ? key : NULL) != 0) && key[0]) exec_clear_owed(store, key);
}

typedef struct exec_owed_scan {
    int count;
    char last[SR_ID_LEN + 24];
    struct {
        char key[SR_ID_LEN + 24];
        char status[16];
    } owed[500];
} exec_owed_scan;

/* Runs inside the store's read transaction: only collects. */
static int exec_owed_cb(const char *key, size_t klen, const char *val, size_t vlen, int64_t expires_at_ms, void *ud) {
    exec_owed_scan *sc = ud;
    (void)expires_at_ms;
    if (klen >= sizeof sc->last) return 0;
    memcpy(sc->last, key, klen);
    sc->last[klen] = '\0';
    memcpy(sc->owed[sc->count].key, key, klen);
    sc->owed[sc->count].key[klen] = '\0';
    snprintf(sc->owed[sc->count].status, sizeof sc->owed[0].status, "%.*s", (int)vlen, val);
    sc->count++;
    return 0;
}

static int exec_status_by_name(const char *name) {
    for (int st = 0; st < SR_ST_COUNT; st++)
        if (strcmp(sr_status_name((sr_status)st), name) == 0) return st;
    return -1;
}

/* Runs the handler owed under key for status (-1: unknown); 1 when it started, else the entry is
 * cleared (no handler, or the message is gone) and 0. */
static int exec_rerun_owed(sr_rules *r, sr_store *store, const char *key, int status) {
    char id[SR_ID_LEN + 1];
    sr_message m;
    snprintf(id, sizeof id, "%.*s", (int)strcspn(key, "/"), key);
    sr_message_init(&m);
    int rc = status >= 0 ? sr_store_get_message(store, id, &m) : SR_E_CORRUPT;
    int fired = rc == 0 && r && exec_fire_status(r, &m, (sr_status)status, key) == 0;
    if (!fired) exec_clear_owed(store, key);
    sr_message_free(&m);
    return fired;
}

static void exec_count_rerun(int fired) {
    sr_metric_counter("smsrules_status_handlers_rerun_total",
                      "sms.on_status handlers run again (the daemon, or in a cluster the node that owed them, "
                      "stopped before they finished).",
                      NULL)
        ->value += fired;
}

/* Cluster mode: an owed handler of a node that is gone, run here once this node took it over (so
 * no other node runs it too). */
typedef struct exec_take_over {
    sr_rules *r;
    sr_store *store;
    int status;
    char key[SR_ID_LEN + 24];
} exec_take_over;

static void exec_owed_taken(sr_store_txn *t, void *ud) {
    exec_take_over *x = ud;
    if (sr_store_txn_status(t) == 0) exec_count_rerun(exec_rerun_owed(x->r, x->store, x->key, x->status));
    if (x->r) sr_rules_release(x->r);
    free(x);
}

static void exec_take_over_owed(sr_rules *r, sr_store *store, const char *key, int status) {
    exec_take_over *x = calloc(1, sizeof *x);
    if (!x) abort();
    x->r = r ? sr_rules_retain(r) : NULL;
    x->store = store;
    x->status = status;
    sr_str_copy(x->key, sizeof x->key, key);
    sr_store_txn *t = sr_store_txn_new(store);
    sr_store_txn_take_over(t, SR_ORPHAN_OWED, key, strlen(key));
    sr_store_txn_submit(t, exec_owed_taken, x);
}

int sr_rules_status_recover(sr_rules *r, sr_store *store) {
    exec_owed_scan *sc = calloc(1, sizeof *sc);
    if (!sc) abort();
    int fired = 0, dropped = 0, taken = 0;
    for (;;) {
        char after[sizeof sc->last];
        memcpy(after, sc->last, sizeof after);
        sc->count = 0;
        int n = sr_store_scan(store, SR_SPACE_OWED, after[0] ? after : NULL, strlen(after), 500, exec_owed_cb, sc);
        for (int i = 0; i < sc->count; i++) {
            const char *key = sc->owed[i].key;
            int status = exec_status_by_name(sc->owed[i].status);
            if (!sr_store_orphaned(store, SR_ORPHAN_OWED, key, strlen(key))) continue; /* its node is at it */
            if (sr_store_clustered(store)) {
                exec_take_over_owed(r, store, key, status);
                taken++;
            } else if (exec_rerun_owed(r, store, key, status)) {
                fired++;
            } else {
                dropped++;
            }
        }
        if (n < 500) break;
    }
    free(sc);
    exec_count_rerun(fired);
    if (fired)
        sr_info("status: handlers run again for changes whose sms.on_status did not finish", "count",
                sr_log_num(fired));
    if (taken) sr_info("status: taking over handlers owed by a node that is gone", "count", sr_log_num(taken));
    if (dropped)
        sr_warn("status: owed handlers dropped (no sms.on_status, or the message is gone)", "count",
                sr_log_num(dropped));
    return fired + taken;
}

/* ---- the host (rules/host.h): status handlers subscribe to the store ---- */

/* A committed status change: its handler runs on the current generation. */
static void host_on_status(const sr_store_event *ev, void *ud) {
    sr_host *h = ud;
    if (ev->remote) return; /* another node's change: its handler ran there */
    sr_rules_status_changed(h->current, h->store, ev->msg, ev->owed);
}

void sr_host_init(sr_host *h, sr_store *store, struct sr_http_client *client, struct sr_route_stats *route_stats) {
    memset(h, 0, sizeof *h);
    h->store = store;
    h->client = client;
    h->route_stats = route_stats;
    h->status_sub.kind = SR_STORE_EV_STATUS;
    h->status_sub.fn = host_on_status;
    h->status_sub.ud = h;
}

void sr_host_attach(sr_host *h, sr_rules *r) {
    if (r) r->host = h;
}

void sr_host_set_current(sr_host *h, sr_rules *r) {
    sr_host_attach(h, r);
    h->current = r;
    /* Owed durably exactly while a handler is declared: rules without one pay nothing per change. */
    int on = sr_rules_has_status_handler(r);
    h->status_sub.status_mask = on ? SR_STATUS_HANDLER_MASK : 0;
    h->status_sub.durable = on;
    if (h->store && !h->subscribed) {
        sr_store_subscribe(h->store, &h->status_sub);
        h->subscribed = 1;
    }
}

void sr_host_drop_client(sr_host *h) { h->client = NULL; }

void sr_host_close(sr_host *h) {
    if (h->store && h->subscribed) sr_store_unsubscribe(h->store, &h->status_sub);
    h->subscribed = 0;
    h->store = NULL;
    h->client = NULL;
}
