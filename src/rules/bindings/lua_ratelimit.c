/* lua_ratelimit: sms.ratelimit(key, rate, per_seconds) → allowed,
 * retry_after — a rate limit per key for rules (per sender against reply
 * loops, per prefix against SMS pumping, ...), with GCRA.
 *
 * GCRA (core/gcra.h, the engine's one) keeps one number per key, the
 * theoretical arrival time (TAT). With the emission interval
 * T = per_seconds / rate and the burst tolerance tau = (rate - 1) * T, an
 * event at `now` conforms when TAT - tau <= now (so `rate` events pass at
 * once, then one per T); it then moves TAT to max(TAT, now) + T. A refused
 * event changes nothing and learns when the next one would pass:
 * retry_after = TAT - tau - now seconds.
 *
 * Durable, so a restart does not reset it: TAT is written to the kv store
 * under the reserved prefix "\x01rl:" (sms.kv refuses keys starting with
 * \x01) with a TTL of max(TAT - now, per_seconds) + 1 s.
 *
 * Concurrency: handlers run one at a time on the loop, but several can be
 * between their run and their commit (a commit happens after the loop pass,
 * and a handler may yield in sms.http.request). Reading the committed TAT
 * alone would let them all see the same value and all pass. So the latest
 * TAT of each key lives in memory, in the registry table
 * "smsrules.ratelimit" (key → TAT), updated as soon as an event passes and
 * consulted first; the store only carries it across restarts.
 *
 * That write is a store unit of its own, submitted at once, not part of the
 * handler's unit: units commit in submit order, so the stored TAT is always
 * the latest. In the handler's unit, a handler that took an early token but
 * returned last would overwrite a later TAT with its older one, and a
 * restart would then give back tokens that were spent. It also makes the
 * rule uniform: a token is spent when sms.ratelimit says yes, whatever the
 * handler does afterwards (a limit against abuse counts attempts), before
 * and after a restart alike. (Which is also why the handler's overlay has
 * no part here: the in-memory table already holds its own writes.) The
 * handler's answer goes out after its own unit commits, so after this one.
 *
 * Cluster mode: the decision is the store's (sr_store_txn_gcra), made where
 * units are applied, in the stream's order, so one key's limit holds
 * across the nodes exactly; sms.ratelimit then yields until its unit is
 * applied (a few milliseconds). Where the caller cannot wait (a metamethod,
 * an iterator, a coroutine of the rule's own), it decides alone as above,
 * from its own table and the stored TAT read on every call (holding the
 * tokens every node took once they reached this node's replica): two
 * events of one key on two nodes within that delay may both pass. */
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gcra.h"
#include "core/log.h"
#include "rules/host.h"
#include "rules/rules_exec.h"
#include "store/store.h"
#include "rules/bindings/bindings.h"

#define RATELIMIT_MAX_KEY 200
#define RATELIMIT_MAX_PER_SECONDS (366.0 * 24 * 3600) /* a year */
#define RATELIMIT_MAX_RATE 1e9
#define RATELIMIT_CACHE_KEY "smsrules.ratelimit"
#define RATELIMIT_COUNT_KEY "smsrules.ratelimit.count"
/* The in-memory table is swept of entries in the past (equivalent to no
 * entry) when its number of keys reaches twice what the last sweep kept,
 * and at least this: amortised constant time per key. */
#define RATELIMIT_SWEEP_MIN 4096

/* How many keys the in-memory table holds, and when to sweep it. */
typedef struct ratelimit_count {
    lua_Integer entries;
    lua_Integer sweep_at;
} ratelimit_count;

/* Keys in the kv store. */
static const char ratelimit_store_prefix[] = "\x01rl:";

/* Pushes the in-memory table (key → TAT in µs), created on first use. */
static void ratelimit_push_cache(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, RATELIMIT_CACHE_KEY) == LUA_TTABLE) return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, RATELIMIT_CACHE_KEY);
}

static ratelimit_count *ratelimit_get_count(lua_State *L) {
    ratelimit_count *c;
    if (lua_getfield(L, LUA_REGISTRYINDEX, RATELIMIT_COUNT_KEY) == LUA_TUSERDATA) {
        c = lua_touserdata(L, -1);
    } else {
        c = lua_newuserdatauv(L, sizeof *c, 0);
        c->entries = 0;
        c->sweep_at = RATELIMIT_SWEEP_MIN;
        lua_setfield(L, LUA_REGISTRYINDEX, RATELIMIT_COUNT_KEY);
    }
    lua_pop(L, 1);
    return c; /* anchored in the registry */
}

/* Drops the entries of the table at idx whose TAT is not after now;
 * returns how many are left. */
static lua_Integer ratelimit_sweep(lua_State *L, int idx, lua_Integer now_us) {
    lua_Integer kept = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_Integer tat = lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (tat <= now_us) {
            /* Assigning nil to a present field during lua_next is allowed. */
            lua_pushvalue(L, -1);
            lua_pushnil(L);
            lua_rawset(L, idx);
        } else {
            kept++;
        }
    }
    return kept;
}

/* The committed TAT of key in µs, or 0. */
static lua_Integer ratelimit_committed(sr_store *store, const char *skey, size_t sklen) {
    sr_buf out;
    sr_buf_init(&out);
    lua_Integer tat = 0;
    if (sr_store_kv_get(store, skey, sklen, sr_now_ms(), &out) == 0)
        tat = (lua_Integer)strtoll(sr_buf_cstr(&out), NULL, 10);
    sr_buf_free(&out);
    return tat;
}

static void ratelimit_stored(sr_store_txn *t, void *ud) {
    int st = sr_store_txn_status(t);
    if (st != 0)
        sr_warn("ratelimit: state not stored; a restart may forget spent tokens", "error", sr_store_strerror(st));
}

/* Writes the TAT of the store key skey in a unit of its own (see the top). */
static void ratelimit_store(sr_store *store, const char *skey, size_t sklen, lua_Integer tat_us, lua_Integer now_us,
                            lua_Number per_seconds) {
    char value[32];
    int vlen = snprintf(value, sizeof value, "%lld", (long long)tat_us);
    lua_Integer ttl_us = tat_us - now_us;
    lua_Integer per_us = (lua_Integer)llround(per_seconds * 1e6);
    if (ttl_us < per_us) ttl_us = per_us;
    int64_t expires_at_ms = now_us / 1000 + (int64_t)(ttl_us / 1000) + 1000;
    sr_store_txn *t = sr_store_txn_new(store);
    sr_store_txn_kv_set(t, skey, sklen, value, (size_t)vlen, expires_at_ms);
    sr_store_txn_submit(t, ratelimit_stored, NULL);
}

/* Memory first: concurrent handlers see the key's new TAT (key at 1, the table at 4) at once. A new key
 * counts towards the next sweep of the table. */
static void ratelimit_remember(lua_State *L, lua_Integer new_tat, int cached, lua_Integer now_us) {
    lua_pushvalue(L, 1);
    lua_pushinteger(L, new_tat);
    lua_rawset(L, 4);
    if (cached) return;
    ratelimit_count *count = ratelimit_get_count(L);
    if (++count->entries >= count->sweep_at) {
        count->entries = ratelimit_sweep(L, 4, now_us);
        count->sweep_at = count->entries * 2 > RATELIMIT_SWEEP_MIN ? count->entries * 2 : RATELIMIT_SWEEP_MIN;
    }
}

/* ---- cluster mode: the store decides ---- */

/* Registry table: handler thread → the wait it is in (its address), so a decision that comes after the
 * rule resumed its handler by hand (and it waits on something else) resumes nothing. */
static const char RATELIMIT_WAITING_KEY = 'w';

typedef struct ratelimit_wait {
    sr_rules *rules; /* retained until the decision */
    sr_invocation *inv;
    lua_State *co;
} ratelimit_wait;

/* The unit is applied: its decision goes to the handler, which goes on. A store failure refuses the
 * event (a limit against abuse fails closed) for a second. */
static void ratelimit_decided(sr_store_txn *t, void *ud) {
    ratelimit_wait *w = ud;
    lua_State *L = w->rules->L;
    int top = lua_gettop(L);
    sr_lua_push_registry_table(L, &RATELIMIT_WAITING_KEY);
    int current = lua_rawgetp(L, -1, w->co) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == w;
    lua_pop(L, 1);
    if (current) {
        lua_pushnil(L);
        lua_rawsetp(L, -2, w->co);
    }
    lua_settop(L, top);
    int st = sr_store_txn_status(t);
    int64_t wait_us = st == 0 ? sr_store_txn_int(t, 0) : 1000000;
    if (st != 0) sr_warn("ratelimit: the cluster did not decide; refused", "error", sr_store_strerror(st));
    if (current && lua_status(w->co) == LUA_YIELD && lua_checkstack(w->co, 2)) {
        lua_pushboolean(w->co, wait_us == 0);
        if (wait_us == 0) lua_pushinteger(w->co, 0);
        else
            lua_pushnumber(w->co, (lua_Number)wait_us / 1e6);
        sr_invocation_resume(w->inv, 2);
    } else if (current && lua_status(w->co) != LUA_YIELD) {
        /* Resumed by hand and ran to its end elsewhere: finish the invocation (see sms.http.request). */
        if (lua_status(w->co) != LUA_OK || lua_gettop(w->co) == 0) sr_invocation_resume(w->inv, 0);
    }
    sr_rules_release(w->rules);
    free(w);
}

/* Submits the decision to the store and yields until it is made. */
static int ratelimit_in_cluster(lua_State *L, sr_rules *r, sr_invocation *inv, const char *skey, size_t sklen,
                                const sr_gcra *g) {
    ratelimit_wait *w = calloc(1, sizeof *w);
    if (!w) return luaL_error(L, "out of memory");
    w->rules = sr_rules_retain(r);
    w->inv = inv;
    w->co = L;
    sr_lua_push_registry_table(L, &RATELIMIT_WAITING_KEY);
    lua_pushlightuserdata(L, w);
    lua_rawsetp(L, -2, L);
    lua_pop(L, 1);
    sr_store_txn *t = sr_store_txn_new(sr_rules_store(r));
    sr_store_txn_gcra(t, skey, sklen, g->interval_us, g->tolerance_us);
    sr_store_txn_submit(t, ratelimit_decided, w);
    sr_invocation_expect_yield(inv);
    return lua_yield(L, 0);
}

/* sms.ratelimit(key, rate, per_seconds) → allowed, retry_after (seconds; 0
 * when allowed). Does not yield, but in cluster mode (see the top). */
static int l_ratelimit(lua_State *L) {
    sr_rules *r = sr_rules_from(L);
    sr_invocation *inv = sr_invocation_current(r);
    if (!inv || !sr_rules_store(r))
        return luaL_error(L, "sms.ratelimit may only be called from a handler, not while the rules load");
    size_t klen;
    const char *key = luaL_checklstring(L, 1, &klen);
    if (klen == 0 || klen > RATELIMIT_MAX_KEY) return luaL_argerror(L, 1, "key must be 1-200 bytes");
    lua_Number rate = luaL_checknumber(L, 2);
    if (!(rate >= 1 && rate <= RATELIMIT_MAX_RATE))
        return luaL_argerror(L, 2, "rate must be a number of events from 1 to 1e9");
    lua_Number per_seconds = luaL_checknumber(L, 3);
    if (!(per_seconds > 0 && per_seconds <= RATELIMIT_MAX_PER_SECONDS))
        return luaL_argerror(L, 3, "per_seconds must be a positive number of seconds, at most a year");
    lua_settop(L, 3);

    /* Microseconds: T is exact enough for any rate up to 1e9 a year. */
    lua_Integer now_us = (lua_Integer)sr_now_ms() * 1000;
    sr_gcra g = sr_gcra_per_period(rate, per_seconds);

    ratelimit_push_cache(L); /* 4 */
    lua_pushvalue(L, 1);
    int cached = lua_rawget(L, 4) == LUA_TNUMBER;
    lua_Integer tat = cached ? lua_tointeger(L, -1) : 0;
    lua_pop(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, ratelimit_store_prefix, sizeof ratelimit_store_prefix - 1);
    luaL_addlstring(&b, key, klen);
    luaL_pushresult(&b); /* 5: the store key */
    size_t sklen;
    const char *skey = lua_tolstring(L, 5, &sklen);
    if (sr_store_clustered(sr_rules_store(r)) && lua_isyieldable(L) && L == sr_invocation_thread(inv))
        return ratelimit_in_cluster(L, r, inv, skey, sklen, &g);
    /* Not in memory (first use since the start, or swept as past): the
     * store has the value kept across restarts, if any. TAT only grows, so
     * the larger of the two is the true one. In cluster mode the store also
     * has what the other nodes took (once it reached this node's replica,
     * milliseconds later): it is read every time. */
    if (!cached || sr_store_clustered(sr_rules_store(r))) {
        lua_Integer committed = ratelimit_committed(sr_rules_store(r), skey, sklen);
        if (committed > tat) tat = committed;
    }

    int64_t new_tat = tat, wait_us = 0;
    if (!sr_gcra_take(&g, &new_tat, now_us, &wait_us)) {
        lua_pushboolean(L, 0);
        lua_pushnumber(L, (lua_Number)wait_us / 1e6);
        return 2;
    }

    ratelimit_remember(L, new_tat, cached, now_us);
    ratelimit_store(sr_rules_store(r), skey, sklen, new_tat, now_us, per_seconds);

    lua_pushboolean(L, 1);
    lua_pushinteger(L, 0);
    return 2;
}

void sr_lua_open_ratelimit(lua_State *L) {
    lua_pushcfunction(L, l_ratelimit);
    lua_setfield(L, -2, "ratelimit");
}
