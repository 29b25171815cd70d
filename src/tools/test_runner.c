/* test_runner: `smsrules test FILE...` (see test_runner.h).
 *
 * A test file:
 *
 *   local rules = load_rules("rules.lua")   -- optional, see below
 *
 *   test("an order confirmation goes out", function()
 *     local r = fire("order.created", { phone = "+84912345678", order = { number = 42 } })
 *     assert_eq(#r.ids, 1, "one message")
 *     assert_eq(sent()[1].text, "Order #42 confirmed.")
 *   end)
 *
 * Globals of a test file (the file itself runs sandboxed like rules, without
 * the `sms` table; `require` loads Lua files from the test file's folder):
 *
 *   test(name, fn)        declares a test; tests run in file order, each with a
 *                         fresh store and a fresh load of its rules file.
 *   load_rules(path)      the rules file of the tests declared after it (path
 *                         relative to the test file); inside a test, starts
 *                         that test over on this rules file (fresh store too).
 *                         Returns {path = the resolved path}. Without it, a
 *                         file NAME_test.lua tests NAME.lua beside it; other
 *                         files run with no rules.
 *   fire(event, body)     POST /v1/events/{event}: runs the sms.on handler with
 *                         body (a table, default {}) and returns what the API
 *                         answers: {status = 200|202|404|500|507, ids = {...},
 *                         result = <the handler's return value>, error =
 *                         {code = "rule_error", message = "rules.lua:9: ..."}}.
 *   send(msg)             POST /v1/messages with one message (same fields:
 *                         to, text or template + vars, route, send_at, ...):
 *                         returns the id, or nil and "code: message".
 *   inbound{from=, to=, text=, provider=}
 *                         an inbound SMS: runs the sms.on_inbound handler and
 *                         returns {handled = true|false, id = <the inbound
 *                         message's id, the reply_to of replies>, status, ids,
 *                         result, error} like fire.
 *   provider(name)        the simulated provider `name` (declared in the
 *                         rules). Its methods queue outcomes for the next
 *                         messages it receives, one per message, in order;
 *                         with the queue empty it accepts. Each returns the
 *                         provider, so calls chain:
 *                           :accept([provider_id])   accepted
 *                           :reject([reason])        refused for good (HTTP 400,
 *                                                    about the message: it fails)
 *                           :fail([status[, retry_after_s]])
 *                                                    retryable (default 503)
 *                           :unauthorized()          refused for good (HTTP 401,
 *                                                    about the provider: next one)
 *                           :timeout()               no answer: a timeout after
 *                                                    the provider's timeout_ms
 *                           :delay(seconds)          accepted after `seconds` of
 *                                                    virtual time (a timeout when
 *                                                    that reaches timeout_ms)
 *                           :outcomes{...}           several at once: "accept",
 *                                                    {"reject", "invalid number"},
 *                                                    {"fail", 503}, {"delay", 2}, ...
 *                         and, not queued but a setting of the provider:
 *                           :dlr(status[, {error = "..."}])
 *                                                    every message it accepts from
 *                                                    now on gets that delivery
 *                                                    report once its send is
 *                                                    recorded; :dlr() none (the
 *                                                    default: no reports, so
 *                                                    advance() can pass a route's
 *                                                    dlr_timeout)
 *   advance(seconds)      moves the virtual clock forward, running everything
 *                         that falls due on the way, in time order: retries,
 *                         send_at, delayed provider answers, expiry; kv and
 *                         rate-limit state ages with it. The clock stands still
 *                         otherwise. Report deadlines (a route's dlr_timeout)
 *                         fall due on the way too. (Retries are jittered from
 *                         0 ms up: one may go out before any advance.)
 *   sent()                the messages that reached a simulated provider, in
 *                         order, one entry per attempt: {to, from, text,
 *                         provider, id, outcome = "accepted" | "rejected" |
 *                         "failed" | "unauthorized" | "timeout", provider_id}.
 *   dlr(msg_or_id, status[, {error =, part =, parts =}])
 *                         a delivery report from the provider, applied by the
 *                         report engine as a status webhook's is (sr_reports_apply:
 *                         forward only, parts combined, fallback_on, late
 *                         delivered): about an entry of sent() (that attempt),
 *                         or a message id or message(id) table (its latest
 *                         attempt a provider accepted; parked while the answer
 *                         is on its way). status: delivered, undelivered,
 *                         expired, rejected, sent or accepted. sms.on_status
 *                         has run for what it changed when dlr returns.
 *   message(id)           the message as GET /v1/messages/{id} shows it (a
 *                         table; JSON null is nil), or nil.
 *   is_optout(number)     whether the number is opted out (committed state).
 *   now()                 the virtual time in seconds, as sms.now() sees it
 *                         (and os.time() / os.date() without a time argument).
 *   assert_eq(actual, expected[, msg])   equal values (tables: deep equality)
 *   assert_true(value[, msg])            not false or nil
 *   assert_match(s, pattern[, msg])      string.find(s, pattern) succeeds
 *                         A failing assertion fails the test with the file and
 *                         line of the assertion: "file:line: msg: expected ...".
 *
 * After every helper the engine runs until it has nothing left to do without
 * time passing: handlers committed, due messages handed to their provider,
 * immediate answers recorded, scripted reports applied.
 *
 * Providers declared with poll = true are not polled (there is no network):
 * their reports are scripted like the others'. */
#include "tools/test_runner.h"
#include "core/buf.h"

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "rules/adapter.h"
#include "codec/json.h"
#include "core/log.h"
#include "model/message.h"
#include "core/metrics.h"
#include "delivery/reports.h"
#include "rules/rules.h"
#include "rules/rules_exec.h"
#include "delivery/scheduler.h"
#include "tools/sim/sim_engine.h"
#include "store/store.h"
#include "model/submission.h"
#include "codec/phone.h"
#include "codec/text.h"
#include "rules/bindings/bindings.h"

#define TR_SETTLE_LIMIT_MS 30000 /* real time for the engine to settle: past it, a bug */
#define TR_TEST_LIMIT_S 60       /* real time for one test function */
#define TR_PROVIDER_MT "smsrules.test.provider"

static const char TR_KEY = 't'; /* registry key of the runner: its address */

/* ---- simulated providers ---- */

typedef enum { SIM_ACCEPT, SIM_REJECT, SIM_FAIL, SIM_UNAUTHORIZED, SIM_TIMEOUT } sim_kind;

typedef struct sim_outcome {
    sim_kind kind;
    int http_status;      /* SIM_FAIL */
    double retry_after_s; /* SIM_FAIL; < 0: none */
    int64_t delay_ms;     /* the answer comes this long after the request */
    char text[200];       /* SIM_REJECT: the reason; SIM_ACCEPT: the provider id ("" : one is made up) */
} sim_outcome;

typedef struct sim_provider {
    char name[72];
    sim_outcome *queue;
    int head, count, cap;
    int dlr_status;      /* the report each accepted message gets (:dlr); -1: none */
    char dlr_error[256]; /* its error text, "" none */
} sim_provider;

/* A request a simulated provider has taken and answers at due_ms. */
typedef struct sim_answer {
    void *request;
    sr_transport_answer answer;
    int64_t due_ms;
    int http_status;
    int count;
    sr_adapter_outcome *outs;
    char provider[72]; /* the provider that took the request */
    int dlr_status;    /* its :dlr setting when it took the request; -1: none */
    char dlr_error[256];
    struct sim_answer *next;
} sim_answer;

/* A scripted delivery report (provider(name):dlr), applied once its
 * message's send is recorded. */
typedef struct tr_due_report {
    char provider[72];
    sr_report rep;
} tr_due_report;

typedef struct sent_entry {
    char *to, *from, *text, *provider, *id, *outcome, *provider_id;
} sent_entry;

/* One test's engine. */
typedef struct tr_engine {
    sr_sim_engine core; /* the engine: rules, store, scheduler, report engine */
    sim_provider sims[SR_MAX_PROVIDERS];
    int sim_count;
    sim_answer *answers; /* in the order the requests came */
    sent_entry *sent;
    int sent_count, sent_cap;
    long provider_ids;
    tr_due_report *due_reports; /* scripted reports waiting for their send to be recorded, in order */
    int due_report_count, due_report_cap;
} tr_engine;

typedef struct tr_runner {
    uv_loop_t loop;
    const char *path; /* the test file as given */
    sr_config host_config;
    sr_rules *host;    /* hosts the test file's sandboxed Lua state */
    int in_test;       /* a test function runs */
    char *rules_path;  /* the running test's rules file; NULL: none */
    tr_engine *engine; /* the running test's engine, started on first use */
} tr_runner;

static char *tr_strdup(const char *s) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) abort();
    return d;
}

static tr_runner *tr_from(lua_State *L) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &TR_KEY);
    tr_runner *tr = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return tr;
}

static int tr_rmtree_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    remove(path);
    return 0;
}

static void tr_rmtree(const char *dir) {
    if (dir[0]) nftw(dir, tr_rmtree_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The engine stopped making progress: a bug in smsrules, not in the test. */
static void tr_fatal(tr_runner *tr, const char *what) {
    fprintf(stderr, "smsrules test: %s: %s\n", tr->path, what);
    if (tr->engine) tr_rmtree(tr->engine->core.dir);
    exit(2);
}

static sim_provider *tr_sim(tr_engine *e, const char *name) {
    for (int i = 0; i < e->sim_count; i++)
        if (strcmp(e->sims[i].name, name) == 0) return &e->sims[i];
    if (e->sim_count == SR_MAX_PROVIDERS) return NULL;
    sim_provider *sp = &e->sims[e->sim_count++];
    memset(sp, 0, sizeof *sp);
    sr_str_copy(sp->name, sizeof sp->name, name);
    sp->dlr_status = -1;
    return sp;
}

static void sim_push(sim_provider *sp, const sim_outcome *o) {
    if (sp->head + sp->count == sp->cap) {
        if (sp->head > 0) {
            memmove(sp->queue, sp->queue + sp->head, sizeof *sp->queue * (size_t)sp->count);
            sp->head = 0;
        }
        if (sp->count == sp->cap) {
            sp->cap = sp->cap ? sp->cap * 2 : 8;
            sp->queue = realloc(sp->queue, sizeof *sp->queue * (size_t)sp->cap);
            if (!sp->queue) abort();
        }
    }
    sp->queue[sp->head + sp->count++] = *o;
}

static sim_outcome sim_pop(sim_provider *sp) {
    sim_outcome o;
    memset(&o, 0, sizeof o);
    o.kind = SIM_ACCEPT;
    o.retry_after_s = -1;
    if (sp && sp->count > 0) {
        o = sp->queue[sp->head++];
        sp->count--;
    }
    return o;
}

static const char *const sim_outcome_names[] = {"accepted", "rejected", "failed", "unauthorized", "timeout"};

static void tr_record_sent(tr_engine *e, const sr_message *m, const char *provider, const char *outcome,
                           const char *provider_id) {
    if (e->sent_count == e->sent_cap) {
        e->sent_cap = e->sent_cap ? e->sent_cap * 2 : 16;
        e->sent = realloc(e->sent, sizeof *e->sent * (size_t)e->sent_cap);
        if (!e->sent) abort();
    }
    sent_entry *s = &e->sent[e->sent_count++];
    s->to = tr_strdup(m->to);
    s->from = tr_strdup(m->from);
    s->text = tr_strdup(m->text);
    s->provider = tr_strdup(provider);
    s->id = tr_strdup(m->id);
    s->outcome = tr_strdup(outcome);
    s->provider_id = tr_strdup(provider_id);
}

/* The scheduler's transport: each message takes the next scripted outcome of
 * its provider; the answer is due after the longest delay among them, or
 * after the provider's timeout when that delay reaches it.
 * long: one pass over the request's messages that draws each outcome and
 * the request's delay together; the virtual clock's ordering depends on
 * doing both in this one place. */
static void tr_transport(void *ud, const sr_provider *p, sr_message *const *msgs, int n, void *request,
                         sr_transport_answer answer) {
    tr_engine *e = ud;
    sim_provider *sp = tr_sim(e, p->name);
    sim_answer *a = calloc(1, sizeof *a);
    sim_outcome *picked = calloc((size_t)n, sizeof *picked);
    a->outs = calloc((size_t)n, sizeof *a->outs);
    if (!a || !picked || !a->outs) abort();
    a->request = request;
    a->answer = answer;
    a->count = n;
    sr_str_copy(a->provider, sizeof a->provider, p->name);
    a->dlr_status = sp ? sp->dlr_status : -1;
    if (sp) sr_str_copy(a->dlr_error, sizeof a->dlr_error, sp->dlr_error);
    int64_t delay_ms = 0;
    int timed_out = 0;
    for (int i = 0; i < n; i++) {
        picked[i] = sim_pop(sp);
        if (picked[i].kind == SIM_TIMEOUT) timed_out = 1;
        if (picked[i].delay_ms > delay_ms) delay_ms = picked[i].delay_ms;
    }
    if (p->timeout_ms > 0 && delay_ms >= p->timeout_ms) timed_out = 1;
    int64_t now = sr_now_ms();
    a->due_ms = now + (timed_out ? p->timeout_ms : delay_ms);
    /* One HTTP status for the request: the messages' common one, else a 200
     * carrying per-message results. */
    static const int kind_status[] = {200, 400, 0, 401, 0};
    a->http_status = -1;
    for (int i = 0; i < n && !timed_out; i++) {
        int st = picked[i].kind == SIM_FAIL ? picked[i].http_status : kind_status[picked[i].kind];
        a->http_status = a->http_status < 0 || a->http_status == st ? st : 200;
    }
    if (timed_out) a->http_status = 0;
    for (int i = 0; i < n; i++) {
        sr_adapter_outcome *o = &a->outs[i];
        const sim_outcome *so = &picked[i];
        o->retry_after_s = -1;
        char provider_id[128] = "";
        sim_kind kind = timed_out ? SIM_TIMEOUT : so->kind;
        switch (kind) {
        case SIM_ACCEPT:
            o->ok = 1;
            if (so->text[0]) snprintf(provider_id, sizeof provider_id, "%.100s", so->text);
            else
                snprintf(provider_id, sizeof provider_id, "%.64s-%ld", p->name, ++e->provider_ids);
            sr_str_copy(o->provider_id, sizeof o->provider_id, provider_id);
            break;
        case SIM_REJECT: snprintf(o->error, sizeof o->error, "%s", so->text[0] ? so->text : "rejected"); break;
        case SIM_FAIL:
            o->retry = 1;
            o->retry_after_s = so->retry_after_s;
            snprintf(o->error, sizeof o->error, "HTTP %d", so->http_status);
            break;
        case SIM_UNAUTHORIZED:
            o->about_provider = 1;
            snprintf(o->error, sizeof o->error, "HTTP 401: unauthorized");
            break;
        case SIM_TIMEOUT:
            o->retry = 1;
            snprintf(o->error, sizeof o->error, "timeout: no answer in time");
            break;
        }
        tr_record_sent(e, msgs[i], p->name, sim_outcome_names[kind], provider_id[0] ? provider_id : NULL);
    }
    free(picked);
    sim_answer **tail = &e->answers;
    while (*tail) tail = &(*tail)->next;
    *tail = a;
}

/* Queues the scripted report of one accepted message (provider(name):dlr). */
static void tr_due_report_push(tr_engine *e, const char *provider, const char *provider_id, int status,
                               const char *error) {
    if (e->due_report_count == e->due_report_cap) {
        e->due_report_cap = e->due_report_cap ? e->due_report_cap * 2 : 16;
        e->due_reports = realloc(e->due_reports, sizeof *e->due_reports * (size_t)e->due_report_cap);
        if (!e->due_reports) abort();
    }
    tr_due_report *d = &e->due_reports[e->due_report_count++];
    memset(d, 0, sizeof *d);
    sr_str_copy(d->provider, sizeof d->provider, provider);
    sr_str_copy(d->rep.provider_id, sizeof d->rep.provider_id, provider_id);
    sr_str_copy(d->rep.error, sizeof d->rep.error, error);
    d->rep.status = status;
}

/* Gives the answers that are due (all of them with all set). Returns how many. */
static int tr_answer_due(tr_engine *e, int all) {
    int answered = 0;
    for (;;) {
        int64_t now = sr_now_ms();
        sim_answer **pp = &e->answers;
        while (*pp && !all && (*pp)->due_ms > now) pp = &(*pp)->next;
        sim_answer *a = *pp;
        if (!a) return answered;
        *pp = a->next;
        /* Accepted messages of a provider scripted with :dlr get that report
         * once their send is recorded (tr_settle applies it). */
        for (int i = 0; i < a->count && a->dlr_status >= 0; i++)
            if (a->outs[i].ok) tr_due_report_push(e, a->provider, a->outs[i].provider_id, a->dlr_status, a->dlr_error);
        a->answer(a->request, a->outs, a->http_status);
        free(a->outs);
        free(a);
        answered++;
    }
}

/* ---- the engine of one test ---- */

static void tr_settle(tr_runner *tr);

static int tr_engine_start(tr_runner *tr, char *err, size_t errlen) {
    tr_engine *e = calloc(1, sizeof *e);
    if (!e) abort();
    /* Reports come from the test (dlr, provider(name):dlr), as from webhooks;
     * the retry jitter is seeded, the same in every run of a test. */
    if (sr_sim_engine_start(&e->core, &tr->loop, tr->rules_path, "smsrules-test", 16u << 20, 1, tr_transport, e, err,
                            errlen) != 0) {
        free(e);
        return -1;
    }
    for (int i = 0; i < e->core.rules->provider_count; i++) tr_sim(e, e->core.rules->providers[i].name);
    tr->engine = e;
    tr_settle(tr);
    return 0;
}

/* Ends the running test's engine: the simulated providers answer what they
 * hold, the scheduler drains, everything closes and the store's folder goes. */
static int tr_flush_answers(void *ud) { return tr_answer_due(ud, 1); }

static void tr_engine_stop(tr_runner *tr) {
    tr_engine *e = tr->engine;
    if (!e) return;
    /* Scripted reports not applied yet are dropped. */
    if (sr_sim_engine_stop(&e->core, tr_flush_answers, e, TR_SETTLE_LIMIT_MS) != 0)
        tr_fatal(tr, "the engine did not stop in time");
    for (int i = 0; i < e->sent_count; i++) {
        sent_entry *s = &e->sent[i];
        free(s->to);
        free(s->from);
        free(s->text);
        free(s->provider);
        free(s->id);
        free(s->outcome);
        free(s->provider_id);
    }
    free(e->sent);
    free(e->due_reports);
    for (int i = 0; i < e->sim_count; i++) free(e->sims[i].queue);
    free(e);
    tr->engine = NULL;
    sr_metrics_reset();
}

/* A scripted report is on disk (applied or parked). */
static void tr_due_report_applied(int code, void *ud) {
    tr_engine *e = ud;
    if (code != 0) sr_error("test: a scripted delivery report could not be stored", "error", sr_store_strerror(code));
    e->core.in_flight--;
}

/* Applies the scripted reports whose sends are recorded by now (all that
 * are queued: the caller made sure the scheduler is idle), in order, the way
 * the status webhook does (sr_reports_apply). */
static void tr_apply_due_reports(tr_engine *e) {
    tr_due_report *due = e->due_reports;
    int n = e->due_report_count;
    e->due_reports = NULL;
    e->due_report_count = e->due_report_cap = 0;
    for (int i = 0; i < n; i++) {
        e->core.in_flight++;
        sr_reports_apply(e->core.reports, due[i].provider, &due[i].rep, 1, tr_due_report_applied, e);
    }
    free(due);
}

/* Runs the loop until nothing more happens without time passing: no unit or
 * handler the runner waits for, no answer due, the scheduler and the report
 * engine idle, no scripted report left to give. */
static void tr_settle(tr_runner *tr) {
    tr_engine *e = tr->engine;
    uint64_t deadline = uv_hrtime() + (uint64_t)TR_SETTLE_LIMIT_MS * 1000000u;
    for (;;) {
        if (tr_answer_due(e, 0)) continue;
        int64_t wake_ms;
        if (sr_sim_engine_idle(&e->core, &wake_ms)) {
            /* Every send answered so far is recorded: its scripted report comes now. */
            if (e->due_report_count == 0) return;
            tr_apply_due_reports(e);
            continue;
        }
        if (uv_hrtime() > deadline) tr_fatal(tr, "the engine did not settle in time");
        /* A timer due now (a look at the queue): run it without then sleeping
         * until the next one. Otherwise a store commit is coming: wait for it. */
        uv_run(&tr->loop, wake_ms == 0 ? UV_RUN_NOWAIT : UV_RUN_ONCE);
    }
}

static void tr_expire(tr_runner *tr) {
    sr_sim_engine_expire(&tr->engine->core, NULL, NULL);
    tr_settle(tr);
}

/* After the clock moved: what the daemon's timers do on their own — the
 * expiry sweep, a look at the queue, a pass of the report engine (report
 * deadlines) — then settle. */
static void tr_clock_moved(tr_runner *tr) {
    tr_engine *e = tr->engine;
    tr_expire(tr);
    sr_scheduler_kick(e->core.scheduler);
    sr_reports_tick_now(e->core.reports);
    tr_settle(tr);
}

/* Moves the virtual clock forward by ms, stopping at each moment something
 * falls due (a queued message, a provider's answer, a sent message's watch
 * time such as its report deadline, the scheduler's next look while a due
 * message waits for its lane) and settling there. */
static void tr_advance(tr_runner *tr, int64_t ms) {
    tr_engine *e = tr->engine;
    int64_t target = sr_now_ms() + ms;
    tr_settle(tr);
    for (;;) {
        int64_t now = sr_now_ms();
        if (now >= target) break;
        int64_t next = target;
        for (sim_answer *a = e->answers; a; a = a->next)
            if (a->due_ms < next) next = a->due_ms;
        next = sr_sim_engine_next(&e->core, now, next, NULL);
        if (next <= now) next = now + 1;
        sr_clock_advance_ms(next - now);
        tr_clock_moved(tr);
    }
    tr_clock_moved(tr);
}

/* ---- helpers shared by the Lua functions ---- */

static tr_runner *tr_in_test(lua_State *L, const char *what) {
    tr_runner *tr = tr_from(L);
    if (!tr->in_test) luaL_error(L, "%s may only be called inside a test function", what);
    return tr;
}

/* The running test's engine, started on first use. A rules file that does
 * not load fails the test with its own file:line. */
static tr_engine *tr_engine_get(lua_State *L, tr_runner *tr) {
    if (tr->engine) return tr->engine;
    char err[512];
    if (tr_engine_start(tr, err, sizeof err) != 0) {
        lua_pushstring(L, err);
        lua_error(L);
    }
    return tr->engine;
}

/* Encodes the table at idx as JSON (lua-cjson) and parses it into doc.
 * Raises, naming what, when the table has no JSON form. */
static void tr_table_to_json(lua_State *L, int idx, const char *what, sr_json_doc *doc) {
    idx = lua_absindex(L, idx);
    lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.test.encode");
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        lua_getglobal(L, "require");
        lua_pushstring(L, "cjson");
        lua_call(L, 1, 1);
        lua_getfield(L, -1, "new");
        lua_call(L, 0, 1);
        lua_getfield(L, -1, "encode");
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "smsrules.test.encode");
        lua_remove(L, -2);
        lua_remove(L, -2);
    }
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        luaL_error(L, "%s: the table must hold only strings, numbers, booleans and tables (%s)", what,
                   lua_tostring(L, -1));
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    char err[160];
    if (sr_json_parse(doc, text, len, err, sizeof err) != 0) luaL_error(L, "%s: %s", what, err);
    lua_pop(L, 1);
}

/* Pushes the JSON text as a Lua value (null → nil). */
static void tr_push_json_text(lua_State *L, const char *text, size_t len) {
    sr_json_doc doc;
    if (sr_json_parse(&doc, text, len, NULL, 0) != 0) {
        lua_pushnil(L);
        return;
    }
    sr_lua_push_json(L, doc.root, 0);
    sr_json_doc_free(&doc);
}

/* A handler run by fire or inbound, as the caller sees it when it is done. */
typedef struct tr_call {
    tr_engine *e;
    sr_invocation_status status;
    int store_code;
    char *error;
    char **ids;
    int id_count;
    char *result_json;
} tr_call;

static void tr_call_done(const sr_invocation_result *res, void *ud) {
    tr_call *c = ud;
    c->status = res->status;
    c->store_code = res->store_code;
    c->error = tr_strdup(res->error);
    c->id_count = res->id_count;
    c->ids = calloc((size_t)res->id_count + 1, sizeof *c->ids);
    if (!c->ids) abort();
    for (int i = 0; i < res->id_count; i++) c->ids[i] = tr_strdup(res->ids[i]);
    c->result_json = tr_strdup(res->result_json);
    c->e->core.in_flight--;
}

static void tr_push_error(lua_State *L, const char *code, const char *message) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    lua_setfield(L, -2, "error");
}

/* Fills the table on top with what POST /v1/events answers for c, and frees c's contents. */
static void tr_fill_call_result(lua_State *L, tr_call *c) {
    int status = 200;
    switch (c->status) {
    case SR_INV_OK: status = c->id_count ? 202 : 200; break;
    case SR_INV_ERROR:
        status = 500;
        tr_push_error(L, "rule_error", c->error ? c->error : "");
        break;
    case SR_INV_TIMEOUT:
        status = 500;
        tr_push_error(L, "rule_timeout",
                      c->error ? c->error : "the rule ran past its instruction budget and was stopped");
        break;
    case SR_INV_MEMORY:
        status = 500;
        tr_push_error(L, "rule_memory", c->error ? c->error : "the rule ran past the memory limit and was stopped");
        break;
    case SR_INV_STORE:
        status = c->store_code == SR_E_FULL ? 507 : 500;
        tr_push_error(L, c->store_code == SR_E_FULL ? "storage_full" : "storage_error",
                      "the rule's effects could not be stored");
        break;
    }
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    lua_createtable(L, c->id_count, 0);
    for (int i = 0; i < c->id_count; i++) {
        lua_pushstring(L, c->ids[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "ids");
    if (c->result_json) {
        tr_push_json_text(L, c->result_json, strlen(c->result_json));
        lua_setfield(L, -2, "result");
    }
    for (int i = 0; i < c->id_count; i++) free(c->ids[i]);
    free(c->ids);
    free(c->error);
    free(c->result_json);
}

/* ---- the test file's functions ---- */

/* Resolves path against the test file's folder; pushes the result. */
static const char *tr_push_path(lua_State *L, tr_runner *tr, const char *path) {
    const char *dir = tr->host->dir;
    if (path[0] == '/' || strcmp(dir, ".") == 0) lua_pushstring(L, path);
    else
        lua_pushfstring(L, "%s/%s", dir, path);
    return lua_tostring(L, -1);
}

/* test(name, fn) */
static int l_test(lua_State *L) {
    tr_runner *tr = tr_from(L);
    const char *name = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (tr->in_test) return luaL_error(L, "test() may not be called inside a test");
    if (!name[0] || strchr(name, '\n')) return luaL_argerror(L, 1, "a test name is one non-empty line");
    lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.test.list");
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "name");
        if (strcmp(lua_tostring(L, -1), name) == 0) return luaL_error(L, "a test named '%s' is already declared", name);
        lua_pop(L, 2);
    }
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "name");
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "fn");
    lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.test.rules");
    lua_setfield(L, -2, "rules");
    lua_rawseti(L, -2, n + 1);
    return 0;
}

/* load_rules(path) → {path = resolved} */
static int l_load_rules(lua_State *L) {
    tr_runner *tr = tr_from(L);
    const char *path = tr_push_path(L, tr, luaL_checkstring(L, 1));
    FILE *f = fopen(path, "r");
    if (!f) return luaL_error(L, "load_rules: cannot open '%s': %s", path, strerror(errno));
    fclose(f);
    if (tr->in_test) {
        /* Start this test over on these rules. */
        tr_engine_stop(tr);
        free(tr->rules_path);
        tr->rules_path = tr_strdup(path);
    } else {
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "smsrules.test.rules");
    }
    lua_createtable(L, 0, 1);
    lua_insert(L, -2);
    lua_setfield(L, -2, "path");
    return 1;
}

/* fire(event, body) → {status, ids, result, error} */
static int l_fire(lua_State *L) {
    tr_runner *tr = tr_in_test(L, "fire");
    const char *name = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    tr_engine *e = tr_engine_get(L, tr);
    sr_json_doc doc;
    memset(&doc, 0, sizeof doc);
    if (!lua_isnoneornil(L, 2)) tr_table_to_json(L, 2, "fire", &doc);
    tr_call c;
    memset(&c, 0, sizeof c);
    c.e = e;
    e->core.in_flight++;
    int rc = sr_rules_fire_event(e->core.rules, name, doc.root, tr_call_done, &c);
    sr_json_doc_free(&doc);
    lua_createtable(L, 0, 4);
    if (rc == SR_E_NOTFOUND) {
        e->core.in_flight--;
        lua_pushinteger(L, 404);
        lua_setfield(L, -2, "status");
        lua_newtable(L);
        lua_setfield(L, -2, "ids");
        char msg[200];
        snprintf(msg, sizeof msg, "no rule handles the event '%.128s' (declare it with sms.on)", name);
        tr_push_error(L, "unknown_event", msg);
        return 1;
    }
    tr_settle(tr);
    tr_fill_call_result(L, &c);
    return 1;
}

static const struct sr_template *tr_find_template(void *ud, const char *name) {
    return sr_rules_template_find(ud, name);
}

typedef struct tr_put {
    tr_engine *e;
    int code;
    char id[SR_ID_LEN + 1];
} tr_put;

static void tr_put_done(sr_store_txn *t, void *ud) {
    tr_put *p = ud;
    int st = sr_store_txn_status(t);
    p->code = st ? st : sr_store_txn_result(t, 0);
    const char *id = sr_store_txn_id(t, 0);
    if (id) sr_str_copy(p->id, sizeof p->id, id);
    p->e->core.in_flight--;
    sr_scheduler_kick(p->e->core.scheduler);
}

/* send(msg) → id, or nil, "code: message" */
static int l_send(lua_State *L) {
    tr_runner *tr = tr_in_test(L, "send");
    luaL_checktype(L, 1, LUA_TTABLE);
    tr_engine *e = tr_engine_get(L, tr);
    sr_json_doc doc;
    tr_table_to_json(L, 1, "send", &doc);
    sr_submission_templates templates = {tr_find_template, e->core.rules};
    sr_message m;
    const char *idem = NULL;
    uint64_t hash = 0;
    sr_reasons reasons;
    if (sr_submission_parse(doc.root, &e->core.config, &templates, sr_now_ms(), "", &m, &idem, &hash, &reasons) != 0) {
        sr_json_doc_free(&doc);
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", reasons.items[0].key, reasons.items[0].message);
        return 2;
    }
    tr_put p;
    memset(&p, 0, sizeof p);
    p.e = e;
    sr_store_txn *t = sr_store_txn_new(e->core.store);
    sr_store_txn_put_message(t, &m, idem, hash);
    sr_message_free(&m);
    sr_json_doc_free(&doc);
    e->core.in_flight++;
    sr_store_txn_submit(t, tr_put_done, &p);
    tr_settle(tr);
    if (p.code == 0 || p.code == SR_E_EXISTS) {
        lua_pushstring(L, p.id);
        return 1;
    }
    lua_pushnil(L);
    if (p.code == SR_E_CONFLICT)
        lua_pushstring(L, "idempotency_conflict: this idempotency key was used for a different message "
                          "in the last 24 h");
    else
        lua_pushfstring(L, "%s: the message could not be stored (%s)",
                        p.code == SR_E_FULL ? "storage_full" : "storage_error", sr_store_strerror(p.code));
    return 2;
}

static const char *tr_opt_field(lua_State *L, int idx, const char *key, int required) {
    lua_getfield(L, idx, key);
    const char *v = NULL;
    if (lua_type(L, -1) == LUA_TSTRING) v = lua_tostring(L, -1);
    else if (!lua_isnil(L, -1) || required)
        luaL_error(L, "inbound: '%s' must be a string%s", key, required ? " (it is required)" : "");
    lua_pop(L, 1); /* the table still holds the string */
    return v;
}

/* inbound{from, to, text, provider} → {handled, id, status, ids, result, error} */
static int l_inbound(lua_State *L) {
    tr_runner *tr = tr_in_test(L, "inbound");
    luaL_checktype(L, 1, LUA_TTABLE);
    tr_engine *e = tr_engine_get(L, tr);
    sr_inbound in;
    memset(&in, 0, sizeof in);
    in.from = tr_opt_field(L, 1, "from", 1);
    in.text = tr_opt_field(L, 1, "text", 1);
    in.to = tr_opt_field(L, 1, "to", 0);
    in.provider = tr_opt_field(L, 1, "provider", 0);
    if (in.provider && !sr_rules_provider(e->core.rules, in.provider))
        return luaL_error(L, "inbound: the rules declare no provider '%s'", in.provider);
    char id[SR_ID_LEN + 1];
    in.received_at_ms = sr_now_ms();
    sr_id_new(id, in.received_at_ms);
    in.id = id;
    tr_call c;
    memset(&c, 0, sizeof c);
    c.e = e;
    e->core.in_flight++;
    int rc = sr_rules_fire_inbound(e->core.rules, &in, tr_call_done, &c);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, id);
    lua_setfield(L, -2, "id");
    lua_pushboolean(L, rc == 0);
    lua_setfield(L, -2, "handled");
    if (rc == SR_E_NOTFOUND) {
        e->core.in_flight--;
        lua_pushinteger(L, 200);
        lua_setfield(L, -2, "status");
        lua_newtable(L);
        lua_setfield(L, -2, "ids");
        return 1;
    }
    tr_settle(tr);
    tr_fill_call_result(L, &c);
    return 1;
}

/* provider(name) → the simulated provider */
static int l_provider(lua_State *L) {
    tr_runner *tr = tr_in_test(L, "provider");
    const char *name = luaL_checkstring(L, 1);
    tr_engine *e = tr_engine_get(L, tr);
    if (!sr_rules_provider(e->core.rules, name))
        return luaL_error(L, "provider: the rules declare no provider '%s'", name);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "name");
    luaL_setmetatable(L, TR_PROVIDER_MT);
    return 1;
}

/* The queue of the provider object self (argument 1), in the running test's engine. */
static sim_provider *tr_self(lua_State *L, const char *method) {
    tr_runner *tr = tr_in_test(L, method);
    int ok = lua_istable(L, 1) && lua_getmetatable(L, 1);
    if (ok) {
        luaL_getmetatable(L, TR_PROVIDER_MT);
        ok = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    if (!ok) luaL_error(L, "%s: call it on a provider, as provider(\"name\"):%s(...)", method, method);
    lua_getfield(L, 1, "name");
    tr_engine *e = tr_engine_get(L, tr);
    sim_provider *sp = tr_sim(e, lua_tostring(L, -1));
    lua_pop(L, 1);
    if (!sp) luaL_error(L, "%s: too many providers", method);
    return sp;
}

static sim_outcome tr_outcome(sim_kind kind) {
    sim_outcome o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    o.retry_after_s = -1;
    return o;
}

/* Queues o and returns self. */
static int tr_queue(lua_State *L, sim_provider *sp, const sim_outcome *o) {
    sim_push(sp, o);
    lua_settop(L, 1);
    return 1;
}

static int l_provider_accept(lua_State *L) {
    sim_provider *sp = tr_self(L, "accept");
    sim_outcome o = tr_outcome(SIM_ACCEPT);
    sr_str_copy(o.text, sizeof o.text, luaL_optstring(L, 2, ""));
    return tr_queue(L, sp, &o);
}

static int l_provider_reject(lua_State *L) {
    sim_provider *sp = tr_self(L, "reject");
    sim_outcome o = tr_outcome(SIM_REJECT);
    sr_str_copy(o.text, sizeof o.text, luaL_optstring(L, 2, "rejected"));
    return tr_queue(L, sp, &o);
}

static int l_provider_fail(lua_State *L) {
    sim_provider *sp = tr_self(L, "fail");
    sim_outcome o = tr_outcome(SIM_FAIL);
    lua_Integer status = luaL_optinteger(L, 2, 503);
    if (status < 100 || status > 599) luaL_argerror(L, 2, "an HTTP status (100-599)");
    o.http_status = (int)status;
    if (!lua_isnoneornil(L, 3)) {
        o.retry_after_s = luaL_checknumber(L, 3);
        if (o.retry_after_s < 0) luaL_argerror(L, 3, "Retry-After seconds must not be negative");
    }
    return tr_queue(L, sp, &o);
}

static int l_provider_unauthorized(lua_State *L) {
    sim_provider *sp = tr_self(L, "unauthorized");
    sim_outcome o = tr_outcome(SIM_UNAUTHORIZED);
    return tr_queue(L, sp, &o);
}

static int l_provider_timeout(lua_State *L) {
    sim_provider *sp = tr_self(L, "timeout");
    sim_outcome o = tr_outcome(SIM_TIMEOUT);
    return tr_queue(L, sp, &o);
}

static int l_provider_delay(lua_State *L) {
    sim_provider *sp = tr_self(L, "delay");
    lua_Number seconds = luaL_checknumber(L, 2);
    if (!(seconds >= 0 && seconds <= 86400)) luaL_argerror(L, 2, "seconds from 0 to 86400");
    sim_outcome o = tr_outcome(SIM_ACCEPT);
    o.delay_ms = (int64_t)(seconds * 1000 + 0.5);
    return tr_queue(L, sp, &o);
}

/* ---- delivery reports ---- */

/* The report status at idx: what a provider's report can say. */
static int tr_report_status(lua_State *L, int idx) {
    static const int allowed[] = {SR_ST_DELIVERED, SR_ST_UNDELIVERED, SR_ST_EXPIRED,
                                  SR_ST_REJECTED,  SR_ST_SENT,        SR_ST_ACCEPTED};
    int st = sr_status_parse(luaL_checkstring(L, idx));
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (st == allowed[i]) return st;
    return luaL_argerror(L, idx, "a report status: delivered, undelivered, expired, rejected, sent or accepted");
}

/* Reads the options table at idx (none or nil: no options) into rep:
 * error, and when parts_allowed also part and parts. Misuse raises. */
static void tr_report_options(lua_State *L, int idx, const char *what, int parts_allowed, sr_report *rep) {
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (key && strcmp(key, "error") == 0) {
            if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: 'error' must be a string", what);
            sr_str_copy(rep->error, sizeof rep->error, lua_tostring(L, -1));
        } else if (key && parts_allowed && (strcmp(key, "part") == 0 || strcmp(key, "parts") == 0)) {
            lua_Integer v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
            if (v < 1 || v > 255) luaL_error(L, "%s: '%s' must be an integer from 1 to 255", what, key);
            if (strcmp(key, "part") == 0) rep->part = (int)v;
            else
                rep->parts = (int)v;
        } else {
            luaL_error(L, "%s: unknown option '%s' (options: %s)", what, key ? key : "?",
                       parts_allowed ? "error, part, parts" : "error");
        }
        lua_pop(L, 1);
    }
    if (rep->parts && !rep->part) luaL_error(L, "%s: 'parts' needs 'part' (the part that reports)", what);
    if (rep->part && rep->parts && rep->part > rep->parts) luaL_error(L, "%s: 'part' is beyond 'parts'", what);
}

/* :dlr(status[, {error = ...}]): every message this provider accepts from
 * now on gets that report once its send is recorded; :dlr() or :dlr(nil):
 * none (the default). */
static int l_provider_dlr(lua_State *L) {
    sim_provider *sp = tr_self(L, "dlr");
    if (lua_isnoneornil(L, 2)) {
        if (!lua_isnoneornil(L, 3)) luaL_argerror(L, 3, "no options without a status");
        sp->dlr_status = -1;
        sp->dlr_error[0] = '\0';
    } else {
        int st = tr_report_status(L, 2);
        sr_report rep;
        memset(&rep, 0, sizeof rep);
        tr_report_options(L, 3, "dlr", 0, &rep);
        sp->dlr_status = st;
        sr_str_copy(sp->dlr_error, sizeof sp->dlr_error, rep.error);
    }
    lua_settop(L, 1);
    return 1;
}

/* :outcomes{"accept", {"reject", "invalid number"}, {"fail", 503}, ...}:
 * each entry calls the method it names with the arguments that follow. */
static int l_provider_outcomes(lua_State *L) {
    tr_self(L, "outcomes");
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    static const char *const kinds[] = {"accept", "reject", "fail", "unauthorized", "timeout", "delay", NULL};
    lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i); /* 3 */
        int is_table = lua_istable(L, 3);
        if (is_table) lua_rawgeti(L, 3, 1);
        else
            lua_pushvalue(L, 3);
        const char *kind = lua_tostring(L, -1);
        int k = -1;
        for (int j = 0; kind && kinds[j]; j++)
            if (strcmp(kind, kinds[j]) == 0) k = j;
        if (k < 0)
            return luaL_error(L,
                              "outcomes: entry %d is not an outcome (accept, reject, fail, unauthorized, timeout, "
                              "delay, or a table {name, arguments...})",
                              (int)i);
        lua_pop(L, 1);
        luaL_getmetatable(L, TR_PROVIDER_MT);
        lua_getfield(L, -1, "__index");
        lua_getfield(L, -1, kinds[k]);
        lua_pushvalue(L, 1);
        int nargs = 1;
        if (is_table) {
            lua_Integer m = (lua_Integer)lua_rawlen(L, 3);
            for (lua_Integer a = 2; a <= m; a++, nargs++) lua_rawgeti(L, 3, a);
        }
        lua_call(L, nargs, 0);
        lua_settop(L, 2);
    }
    lua_settop(L, 1);
    return 1;
}

/* advance(seconds) */
static int l_advance(lua_State *L) {
    tr_runner *tr = tr_in_test(L, "advance");
    lua_Number seconds = luaL_checknumber(L, 1);
    if (!(seconds >= 0 && seconds <= 366.0 * 86400)) luaL_argerror(L, 1, "seconds from 0 to a year");
    tr_engine_get(L, tr);
    tr_advance(tr, (int64_t)(seconds * 1000 + 0.5));
    return 0;
}

static void tr_set_str(lua_State *L, const char *key, const char *value) {
    if (!value) return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
}

/* sent() → {{to, from, text, provider, id, outcome, provider_id}, ...} */
static int l_sent(lua_State *L) {
    tr_runner *tr = tr_in_test(L, "sent");
    tr_engine *e = tr_engine_get(L, tr);
    lua_createtable(L, e->sent_count, 0);
    for (int i = 0; i < e->sent_count; i++) {
        const sent_entry *s = &e->sent[i];
        lua_createtable(L, 0, 7);
        tr_set_str(L, "to", s->to);
        tr_set_str(L, "from", s->from);
        tr_set_str(L, "text", s->text);
        tr_set_str(L, "provider", s->provider);
        tr_set_str(L, "id", s->id);
        tr_set_str(L, "outcome", s->outcome);
        tr_set_str(L, "provider_id", s->provider_id);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* Where a report about the value at idx goes (provider and rep->provider_id):
 * a table with provider and provider_id (an entry of sent(), or message(id))
 * names that attempt; a message id, or a table with only an id, names the
 * message's latest attempt a simulated provider accepted (as sent() shows
 * it: the send answer may still be on its way, then the report is parked
 * until it is recorded, as in the daemon). Misuse raises. */
static void tr_report_target(lua_State *L, tr_engine *e, int idx, char *provider, size_t provider_len, sr_report *rep) {
    static const char usage[] =
        "a message id, or a table with id (message(id)) or with provider and provider_id (an entry of sent())";
    char id[SR_ID_LEN + 8];
    if (lua_istable(L, idx)) {
        lua_getfield(L, idx, "provider_id");
        lua_getfield(L, idx, "provider");
        if (lua_type(L, -2) == LUA_TSTRING) {
            if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, idx, "the attempt has a provider_id but no provider");
            const char *name = lua_tostring(L, -1);
            if (!sr_rules_provider(e->core.rules, name)) luaL_error(L, "dlr: the rules declare no provider '%s'", name);
            sr_str_copy(provider, provider_len, name);
            sr_str_copy(rep->provider_id, sizeof rep->provider_id, lua_tostring(L, -2));
            lua_pop(L, 2);
            return;
        }
        lua_pop(L, 2);
        lua_getfield(L, idx, "outcome");
        if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "accepted") != 0)
            luaL_error(L, "dlr: that attempt was not accepted (outcome '%s'): there is no provider id to report on",
                       lua_tostring(L, -1));
        lua_getfield(L, idx, "id");
        if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, idx, usage);
        sr_str_copy(id, sizeof id, lua_tostring(L, -1));
        lua_pop(L, 2);
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        sr_str_copy(id, sizeof id, lua_tostring(L, idx));
    } else {
        luaL_argerror(L, idx, usage);
        return;
    }
    for (int i = e->sent_count - 1; i >= 0; i--) {
        const sent_entry *s = &e->sent[i];
        if (s->id && strcmp(s->id, id) == 0 && s->provider_id && strcmp(s->outcome, "accepted") == 0) {
            sr_str_copy(provider, provider_len, s->provider);
            sr_str_copy(rep->provider_id, sizeof rep->provider_id, s->provider_id);
            return;
        }
    }
    sr_message m;
    int found = sr_id_valid(id, strlen(id)) && sr_store_get_message(e->core.store, id, &m) == 0;
    char status[32] = "";
    if (found) sr_str_copy(status, sizeof status, sr_status_name(m.status));
    if (sr_id_valid(id, strlen(id))) sr_message_free(&m);
    if (!found) luaL_error(L, "dlr: no message '%s'", id);
    luaL_error(L, "dlr: message %s was not accepted by a provider (status %s): there is no provider id to report on",
               id, status);
}

typedef struct tr_dlr_call {
    tr_engine *e;
    int code;
} tr_dlr_call;

static void tr_dlr_applied(int code, void *ud) {
    tr_dlr_call *c = ud;
    c->code = code;
    c->e->core.in_flight--;
}

/* dlr(msg_or_id, status[, {error =, part =, parts =}]): a delivery report
 * from the message's provider, through the report engine like a webhook's */
static int l_dlr(lua_State *L) {
    tr_runner *tr = tr_in_test(L, "dlr");
    tr_engine *e = tr_engine_get(L, tr);
    sr_report rep;
    memset(&rep, 0, sizeof rep);
    char provider[72];
    tr_report_target(L, e, 1, provider, sizeof provider, &rep);
    rep.status = tr_report_status(L, 2);
    tr_report_options(L, 3, "dlr", 1, &rep);
    tr_dlr_call c = {e, 0};
    e->core.in_flight++;
    sr_reports_apply(e->core.reports, provider, &rep, 1, tr_dlr_applied, &c);
    tr_settle(tr);
    if (c.code != 0) return luaL_error(L, "dlr: the report could not be stored (%s)", sr_store_strerror(c.code));
    return 0;
}

/* message(id) → the message as GET /v1/messages/{id} shows it, or nil */
static int l_message(lua_State *L) {
    tr_runner *tr = tr_in_test(L, "message");
    const char *id = luaL_checkstring(L, 1);
    tr_engine *e = tr_engine_get(L, tr);
    sr_message m;
    if (!sr_id_valid(id, strlen(id))) {
        lua_pushnil(L);
        return 1;
    }
    if (sr_store_get_message(e->core.store, id, &m) != 0) {
        sr_message_free(&m);
        lua_pushnil(L);
        return 1;
    }
    sr_buf b;
    sr_buf_init(&b);
    sr_message_to_api_json(&m, &b);
    sr_message_free(&m);
    tr_push_json_text(L, b.data, b.len);
    sr_buf_free(&b);
    return 1;
}

/* is_optout(number) → boolean */
static int l_is_optout(lua_State *L) {
    tr_runner *tr = tr_in_test(L, "is_optout");
    size_t len;
    const char *number = luaL_checklstring(L, 1, &len);
    tr_engine *e = tr_engine_get(L, tr);
    char e164[SR_PHONE_MAX];
    char why[SR_PHONE_WHY_MAX];
    if (sr_phone_normalize(number, len, e->core.config.default_country, e164, why, sizeof why) != 0)
        return luaL_argerror(L, 1, lua_pushfstring(L, "not a valid phone number: %s", why));
    lua_pushboolean(L, sr_store_is_optout(e->core.store, e164) == 1);
    return 1;
}

/* now() → virtual seconds since the epoch */
static int l_now(lua_State *L) {
    lua_pushnumber(L, (lua_Number)sr_now_ms() / 1000.0);
    return 1;
}

/* ---- assertions ---- */

/* Appends a short readable form of the value at idx. */
static void tr_describe(lua_State *L, int idx, sr_buf *b, int depth) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        sr_buf_json_str(b, s, len > 300 ? 300 : len);
        if (len > 300) sr_buf_puts(b, "...");
        break;
    }
    case LUA_TTABLE: {
        if (depth >= 3 || b->len > 600) {
            sr_buf_puts(b, "{...}");
            break;
        }
        sr_buf_putc(b, '{');
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
        int first = 1;
        for (lua_Integer i = 1; i <= n; i++) {
            if (!first) sr_buf_puts(b, ", ");
            first = 0;
            lua_rawgeti(L, idx, i);
            tr_describe(L, -1, b, depth + 1);
            lua_pop(L, 1);
        }
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1 && lua_tointeger(L, -2) <= n) {
                lua_pop(L, 1);
                continue;
            }
            if (!first) sr_buf_puts(b, ", ");
            first = 0;
            if (lua_type(L, -2) == LUA_TSTRING) {
                sr_buf_puts(b, lua_tostring(L, -2));
            } else {
                sr_buf_putc(b, '[');
                tr_describe(L, -2, b, depth + 1);
                sr_buf_putc(b, ']');
            }
            sr_buf_puts(b, " = ");
            tr_describe(L, -1, b, depth + 1);
            lua_pop(L, 1);
        }
        sr_buf_putc(b, '}');
        break;
    }
    default: {
        const char *s = luaL_tolstring(L, idx, NULL);
        sr_buf_puts(b, s);
        lua_pop(L, 1);
    }
    }
}

/* Raises "file:line: msg: what" (or without "msg: ") at the caller's line; frees b. */
static int tr_assert_fail(lua_State *L, int msg_idx, sr_buf *b) {
    lua_settop(L, msg_idx); /* the message, or nil when not given */
    luaL_where(L, 1);
    if (!lua_isnoneornil(L, msg_idx)) {
        luaL_tolstring(L, msg_idx, NULL);
        lua_pushliteral(L, ": ");
    } else {
        lua_pushliteral(L, "");
        lua_pushliteral(L, "");
    }
    lua_pushlstring(L, b->data ? b->data : "", b->len);
    sr_buf_free(b);
    lua_concat(L, 4);
    return lua_error(L);
}

static int tr_equal(lua_State *L, int a, int b, int depth) {
    a = lua_absindex(L, a);
    b = lua_absindex(L, b);
    if (lua_rawequal(L, a, b)) return 1;
    if (lua_type(L, a) == LUA_TNUMBER && lua_type(L, b) == LUA_TNUMBER) return lua_compare(L, a, b, LUA_OPEQ);
    if (!lua_istable(L, a) || !lua_istable(L, b) || depth > 32) return 0;
    /* Every key of a is in b with an equal value, and b has no other key. */
    lua_pushnil(L);
    while (lua_next(L, a)) {
        lua_pushvalue(L, -2);
        lua_rawget(L, b);
        int same = !lua_isnil(L, -1) && tr_equal(L, -2, -1, depth + 1);
        lua_pop(L, 2);
        if (!same) {
            lua_pop(L, 1);
            return 0;
        }
    }
    lua_pushnil(L);
    while (lua_next(L, b)) {
        lua_pushvalue(L, -2);
        lua_rawget(L, a);
        int present = !lua_isnil(L, -1);
        lua_pop(L, 2);
        if (!present) {
            lua_pop(L, 1);
            return 0;
        }
    }
    return 1;
}

/* assert_eq(actual, expected[, msg]) */
static int l_assert_eq(lua_State *L) {
    luaL_checkany(L, 2);
    if (tr_equal(L, 1, 2, 0)) return 0;
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_puts(&b, "expected ");
    tr_describe(L, 2, &b, 0);
    sr_buf_puts(&b, ", got ");
    tr_describe(L, 1, &b, 0);
    return tr_assert_fail(L, 3, &b);
}

/* assert_true(value[, msg]) */
static int l_assert_true(lua_State *L) {
    luaL_checkany(L, 1);
    if (lua_toboolean(L, 1)) return 0;
    sr_buf b;
    sr_buf_init(&b);
    sr_buf_puts(&b, "expected a true value, got ");
    tr_describe(L, 1, &b, 0);
    return tr_assert_fail(L, 2, &b);
}

/* assert_match(s, pattern[, msg]) */
static int l_assert_match(lua_State *L) {
    const char *pattern = luaL_checkstring(L, 2);
    if (lua_type(L, 1) == LUA_TSTRING) {
        lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.test.find");
        lua_pushvalue(L, 1);
        lua_pushvalue(L, 2);
        lua_call(L, 2, 1);
        int found = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (found) return 0;
    }
    sr_buf b;
    sr_buf_init(&b);
    if (lua_type(L, 1) == LUA_TSTRING) {
        tr_describe(L, 1, &b, 0);
        sr_buf_puts(&b, " does not match ");
    } else {
        sr_buf_puts(&b, "expected a string matching ");
    }
    lua_pushstring(L, pattern);
    tr_describe(L, -1, &b, 0);
    lua_pop(L, 1);
    if (lua_type(L, 1) != LUA_TSTRING) {
        sr_buf_puts(&b, ", got ");
        tr_describe(L, 1, &b, 0);
    }
    return tr_assert_fail(L, 3, &b);
}

/* ---- running a file ---- */

/* Keeps the message of an error (its first line is file:line: message). */
static int tr_message_handler(lua_State *L) {
    if (lua_type(L, 1) == LUA_TSTRING) return 1;
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    return 1;
}

/* Prints one result line; newlines in message become spaces so the line stays one line. */
static void tr_report(const char *path, const char *name, const char *message) {
    if (!message) {
        printf("PASS %s:%s\n", path, name);
    } else {
        printf("FAIL %s%s%s: ", path, name ? ":" : "", name ? name : "");
        for (const char *p = message; *p; p++) putchar(*p == '\n' || *p == '\r' || *p == '\t' ? ' ' : *p);
        putchar('\n');
    }
    fflush(stdout);
}

/* NAME_test.lua tests NAME.lua beside it unless load_rules says otherwise. */
static void tr_default_rules(lua_State *L, tr_runner *tr) {
    const char *base = strrchr(tr->path, '/');
    base = base ? base + 1 : tr->path;
    size_t len = strlen(base);
    static const char suffix[] = "_test.lua";
    if (len > sizeof suffix - 1 && strcmp(base + len - (sizeof suffix - 1), suffix) == 0) {
        char name[PATH_MAX];
        snprintf(name, sizeof name, "%.*s.lua", (int)(len - (sizeof suffix - 1)), base);
        lua_pushstring(L, name);
        tr_push_path(L, tr, name);
        lua_setfield(L, LUA_REGISTRYINDEX, "smsrules.test.rules");
        lua_pop(L, 1);
    }
}

static void tr_open_globals(lua_State *L, tr_runner *tr) {
    lua_pushlightuserdata(L, tr);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &TR_KEY);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "smsrules.test.list");
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "find");
    lua_setfield(L, LUA_REGISTRYINDEX, "smsrules.test.find");
    lua_pop(L, 1);
    /* The test file is not a rules file. */
    lua_pushnil(L);
    lua_setglobal(L, "sms");

    static const luaL_Reg globals[] = {{"test", l_test},
                                       {"load_rules", l_load_rules},
                                       {"fire", l_fire},
                                       {"send", l_send},
                                       {"inbound", l_inbound},
                                       {"provider", l_provider},
                                       {"advance", l_advance},
                                       {"sent", l_sent},
                                       {"dlr", l_dlr},
                                       {"message", l_message},
                                       {"is_optout", l_is_optout},
                                       {"now", l_now},
                                       {"assert_eq", l_assert_eq},
                                       {"assert_true", l_assert_true},
                                       {"assert_match", l_assert_match},
                                       {NULL, NULL}};
    lua_pushglobaltable(L);
    luaL_setfuncs(L, globals, 0);
    lua_pop(L, 1);

    static const luaL_Reg methods[] = {{"accept", l_provider_accept},
                                       {"reject", l_provider_reject},
                                       {"fail", l_provider_fail},
                                       {"unauthorized", l_provider_unauthorized},
                                       {"timeout", l_provider_timeout},
                                       {"delay", l_provider_delay},
                                       {"dlr", l_provider_dlr},
                                       {"outcomes", l_provider_outcomes},
                                       {NULL, NULL}};
    luaL_newmetatable(L, TR_PROVIDER_MT);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    tr_default_rules(L, tr);
}

/* Runs one test of the list at the top of the stack. */
static int tr_run_test(tr_runner *tr, lua_State *L, lua_Integer i) {
    lua_rawgeti(L, -1, i);
    lua_getfield(L, -1, "name");
    char *name = tr_strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, -1, "rules");
    tr->rules_path = tr_strdup(lua_tostring(L, -1)); /* NULL when none */
    lua_pop(L, 1);
    lua_pushcfunction(L, tr_message_handler);
    lua_getfield(L, -2, "fn");
    tr->in_test = 1;
    /* A test drives the engine as long as it likes, up to a wall-clock
     * limit (the rules it loads run under their own budgets). */
    sr_lua_budget b;
    sr_rules_budget_init(tr->host, &b, &tr->host->heap, 0);
    b.max_instructions = 0;
    b.time_limit_ms = (uint64_t)TR_TEST_LIMIT_S * 1000;
    sr_lua_budget *outer = sr_rules_budget_enter(tr->host, &b);
    int rc = lua_pcall(L, 0, 0, -2);
    sr_rules_budget_leave(tr->host, &b, outer);
    tr->in_test = 0;
    tr_engine_stop(tr);
    free(tr->rules_path);
    tr->rules_path = NULL;
    tr_report(tr->path, name, rc == LUA_OK ? NULL : lua_tostring(L, -1));
    lua_pop(L, rc == LUA_OK ? 2 : 3); /* the handler (or the message and the handler), the test */
    free(name);
    lua_gc(L, LUA_GCCOLLECT);
    return rc == LUA_OK;
}

/* Runs the tests of one file. Returns 0, or -1 when the file itself could
 * not be run (reported as a FAIL line for the file). */
static int tr_run_file(tr_runner *tr, const char *path, int *passed, int *failed) {
    memset(&tr->host_config, 0, sizeof tr->host_config);
    tr->path = path;
    FILE *f = fopen(path, "r");
    if (!f) {
        char msg[512];
        snprintf(msg, sizeof msg, "cannot open the test file: %s", strerror(errno));
        tr_report(path, NULL, msg);
        (*failed)++;
        return -1;
    }
    fclose(f);
    sr_config_init(&tr->host_config);
    char err[512];
    if (sr_rules_load(&tr->host, NULL, &tr->host_config, err, sizeof err) != 0) {
        tr_report(path, NULL, err);
        (*failed)++;
        sr_config_free(&tr->host_config);
        return -1;
    }
    /* The host's folder is the test file's: require and load_rules look there. */
    const char *slash = strrchr(path, '/');
    tr->host->path = tr_strdup(path);
    tr->host->dir = slash ? strndup(path, (size_t)(slash - path)) : tr_strdup(".");
    if (!tr->host->dir) abort();
    lua_State *L = tr->host->L;
    tr_open_globals(L, tr);

    /* The top level only declares tests: it runs under the rules' limits,
     * so a file that loops or explodes is reported, not waited for. */
    int rc = 0;
    lua_pushcfunction(L, tr_message_handler);
    sr_lua_budget b;
    sr_rules_budget_init(tr->host, &b, &tr->host->heap, 0);
    int loaded = luaL_loadfilex(L, path, "t") == LUA_OK;
    if (loaded) {
        sr_lua_budget *outer = sr_rules_budget_enter(tr->host, &b);
        loaded = lua_pcall(L, 0, 0, -2) == LUA_OK;
        sr_rules_budget_leave(tr->host, &b, outer);
    }
    if (!loaded) {
        tr_report(path, NULL, lua_tostring(L, -1));
        (*failed)++;
        rc = -1;
    } else {
        lua_pop(L, 1);
        lua_getfield(L, LUA_REGISTRYINDEX, "smsrules.test.list");
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            if (tr_run_test(tr, L, i)) (*passed)++;
            else
                (*failed)++;
        }
    }
    sr_rules_release(tr->host);
    tr->host = NULL;
    sr_config_free(&tr->host_config);
    return rc;
}

static const char usage_test[] =
    "usage: smsrules test [--log-level LEVEL] FILE...\n"
    "\n"
    "Runs rule tests offline: each test gets a fresh store and a fresh load of its\n"
    "rules file, providers are simulated and the clock is virtual; nothing goes to\n"
    "the network. A test file NAME_test.lua tests NAME.lua beside it (or the file\n"
    "given to load_rules). Prints `PASS file:name` or\n"
    "`FAIL file:name: file:line: message` for each test, then `N passed, N failed`.\n"
    "  --log-level LVL   the engine's log on stderr: debug, info, warn or error (default error)\n"
    "  -h, --help        this help\n"
    "Exit codes: 0 all passed, 1 a test failed, 2 a test file could not be run.\n";

int sr_test_main(int argc, char **argv) {
    static const struct option long_opts[] = {
        {"log-level", required_argument, NULL, 'L'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int level = SR_LOG_ERROR;
    opterr = 0;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
        switch (ch) {
        case 'h': fputs(usage_test, stdout); return 0;
        case 'L':
            level = sr_log_parse_level(optarg);
            if (level < 0) {
                fprintf(stderr, "smsrules: unknown log level '%s'\n\n%s", optarg, usage_test);
                return 1;
            }
            break;
        case ':': fprintf(stderr, "smsrules: option '%s' needs a value\n\n%s", argv[optind - 1], usage_test); return 1;
        default: fprintf(stderr, "smsrules: unknown option '%s'\n\n%s", argv[optind - 1], usage_test); return 1;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "smsrules: test needs at least one test file\n\n%s", usage_test);
        return 1;
    }
    sr_log_set_level((sr_log_level)level);
    /* Time moves only through advance(): tests see exact, repeatable times. */
    sr_clock_freeze();
    tr_runner tr;
    memset(&tr, 0, sizeof tr);
    if (uv_loop_init(&tr.loop) != 0) {
        fprintf(stderr, "smsrules test: cannot create an event loop\n");
        return 2;
    }
    int passed = 0, failed = 0, broken = 0;
    for (int i = optind; i < argc; i++)
        if (tr_run_file(&tr, argv[i], &passed, &failed) != 0) broken = 1;
    printf("%d passed, %d failed\n", passed, failed);
    uv_loop_close(&tr.loop);
    return broken ? 2 : failed ? 1 : 0;
}
