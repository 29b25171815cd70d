#include "delivery/scheduler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <lauxlib.h>

#include "core/buf.h"
#include "rules/adapter.h"
#include "rules/rules_exec.h"
#include "core/log.h"
#include "core/metrics.h"
#include "delivery/rate_lanes.h"
#include "delivery/reports.h"
#include "model/route_stats.h"
#include "rules/host.h"

#define SCHED_SCAN_MAX 2048
#define SCHED_CLAIM_BUCKETS 4096
#define SCHED_IDLE_POLL_MS 200
#define SCHED_BUSY_POLL_MS 50
#define SCHED_ROUTE_MAX 16
#define SCHED_WINDOW 20
#define SCHED_MAX_LANES 256

enum { CIRCUIT_CLOSED = 0, CIRCUIT_OPEN = 1, CIRCUIT_HALF_OPEN = 2 };

/* The kinds of transition the engine makes (sched_apply). */
typedef enum {
    CH_SENDING,        /* queued → sending, a new attempt */
    CH_SENT,           /* sending → sent */
    CH_RETRY,          /* sending → queued, same provider, later */
    CH_FALLBACK,       /* sending → queued, next provider of the route */
    CH_FAILED,         /* sending → failed */
    CH_EXPIRE,         /* queued → expired */
    CH_REJECT,         /* queued → rejected (opt-out) */
    CH_FAIL_QUEUED,    /* queued → failed (no usable route) */
    CH_SKIP_PROVIDER,  /* queued → queued, next provider (open circuit) */
    CH_RESCHEDULE,     /* queued → queued, later (open circuit, nothing else to try) */
    CH_CRASH_REQUEUE,  /* sending → queued after a restart */
    CH_REQUEUE_FAILED, /* failed → queued (POST .../retry) */
} sched_kind;

typedef struct sched_change {
    sched_kind kind;
    const char *provider;
    char **route; /* set on the message when it has none yet */
    int route_len;
    int route_index;
    int64_t now_ms;
    int64_t next_attempt_at_ms;
    int http_status;
    int64_t duration_ms;
    const char *provider_id;
    const char *error;
    const char *attempt_outcome;
    sr_route_options ropt;     /* CH_SENDING with a route: the route table's fallback_on / dlr_timeout */
    int attempt_count_at_send; /* CH_SENT..CH_FAILED: the attempts the message had when this one started */
    int parts;                 /* CH_SENT: the parts the provider counts */
    int poll;                  /* CH_SENT: the provider's statuses are polled */
    int64_t poll_max_age_ms;
} sched_change;

typedef struct sched_job {
    char id[SR_ID_LEN + 1];
    sr_message msg; /* as read; after the sending transition, as written */
    int lane;
    int send; /* 1: a send job; 0: a transition only */
    char *route[SCHED_ROUTE_MAX];
    int route_len;
    int route_index;
    sr_route_options ropt;
    sched_change change;
    char provider_id[128];
    char error[300];
    struct sched_job *next;  /* lane pending list / request batch */
    struct sched_job *hnext; /* claimed set */
    struct sched_request *req;
    struct sched_job *unext; /* the unrecorded list */
} sched_job;

typedef struct lane {
    char name[72];
    sr_provider *p;    /* in the current rules; NULL when a reload removed the provider */
    sr_rate_lane *tat; /* its rate lane (shared with status polls); NULL: not limited */
    /* A request goes through three stages: its messages' `sending` marks are committed (marking), it
     * waits for a slot (the ready list, first in first out), it is out to the provider
     * (requests_in_flight, bounded by the provider's concurrency). */
    int requests_in_flight;
    int marking;
    struct sched_request *ready;
    struct sched_request **ready_tail;
    int ready_count;
    int starting; /* lane_start_ready is running: a nested call leaves the work to it */
    int64_t paused_until_ms;
    int circuit;
    int consecutive_failures;
    uint32_t window; /* last outcomes, bit set = failure */
    int window_count;
    int64_t open_until_ms;
    sched_job *pending;
    sched_job **pending_tail;
    int pending_count;
    sr_metric *m_sent, *m_failed, *m_retried, *m_in_flight, *m_latency, *m_circuit, *m_fallback;
} lane;

typedef struct sched_request {
    sr_scheduler *s;
    sr_rules *rules; /* the rules the request was built with (retained) */
    const sr_provider *p;
    int lane;
    sched_job *jobs;
    int count;
    int units_pending;
    int probe;
    int64_t started_ms;
    int msgs_ref; /* the Lua messages table build_send got, for parse_send (sr_adapter_build_send); LUA_NOREF */
    struct sched_request *next; /* the lane's ready list */
} sched_request;

struct sr_scheduler {
    uv_loop_t *loop;
    sr_store *store;
    sr_rules *rules;
    sr_http_client *client;
    const sr_config *config;
    lane *lanes;
    int lane_count;
    uv_timer_t timer;
    int stopping;
    int outstanding; /* claimed jobs */
    /* Outcomes of answered requests whose write failed (a full disk): kept here and written
     * again until they land, so that a message a provider took never stays `sending` to be
     * sent again at the next start. While any waits, no new message goes out: that bounds
     * them by what was in flight when the store filled. */
    sched_job *unrecorded;
    int unrecorded_count;
    uv_timer_t outcome_timer;
    uint64_t outcome_delay_ms;
    int timers_open;
    int abandon_unrecorded; /* past the drain deadline: an outcome that cannot be written is given up */
    sr_metric *m_unrecorded, *m_outcome_retries;
    void (*stop_done)(void *);
    void *stop_ud;
    sched_job *claimed[SCHED_CLAIM_BUCKETS];
    sr_metric *m_crash, *m_expired, *m_rejected, *m_queue;
    /* Set by the test runner: requests go to it instead of HTTP. */
    sr_transport_fn transport;
    void *transport_ud;
    /* Set by the test runner and simulate: retry jitter from their seeded generator. */
    uint64_t (*random)(void *ud);
    void *random_ud;
    int jobs_at_transport;         /* claimed jobs whose request the transport holds */
    int jobs_ready;                /* claimed jobs in ready requests, waiting for a slot */
    int kicked;                    /* a look at the queue was asked for and has not run yet */
    sr_store_subscriber queue_sub; /* the store says when a committed unit queued messages */
    sr_rate_lanes *rates;          /* the providers' rates, shared with status polls */
    /* Due messages may wait in the queue: set when a unit queued one and when accept-time dispatch
     * turned one away, cleared by a pump pass that left nothing due behind. While set, new messages
     * go through the queue too, so they never overtake older ones (sr_scheduler_accept_take). */
    int backlog;
};

/* ---- claimed set ---- */

static unsigned sched_hash(const char *id) { return sr_fnv1a_str(SR_FNV1A_INIT, id) % SCHED_CLAIM_BUCKETS; }

static int sched_is_claimed(sr_scheduler *s, const char *id) {
    for (sched_job *j = s->claimed[sched_hash(id)]; j; j = j->hnext)
        if (strcmp(j->id, id) == 0) return 1;
    return 0;
}

static sched_job *sched_claim(sr_scheduler *s, const char *id) {
    sched_job *j = calloc(1, sizeof *j);
    if (!j) abort();
    sr_str_copy(j->id, sizeof j->id, id);
    sr_message_init(&j->msg);
    unsigned h = sched_hash(id);
    j->hnext = s->claimed[h];
    s->claimed[h] = j;
    s->outstanding++;
    return j;
}

static void sched_check_stopped(sr_scheduler *s) {
    if (s->stopping && s->outstanding == 0 && s->stop_done) {
        void (*done)(void *) = s->stop_done;
        s->stop_done = NULL;
        done(s->stop_ud);
    }
}

static void sched_release(sr_scheduler *s, sched_job *j) {
    for (sched_job **pp = &s->claimed[sched_hash(j->id)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == j) {
            *pp = j->hnext;
            break;
        }
    }
    for (int i = 0; i < j->route_len; i++) free(j->route[i]);
    sr_message_free(&j->msg);
    free(j);
    s->outstanding--;
    sched_check_stopped(s);
}

/* ---- transitions (run on the store's writer thread: touch only m and the change) ---- */

static sr_attempt *sched_last_attempt(sr_message *m) {
    return m->attempt_count ? &m->attempts[m->attempt_count - 1] : NULL;
}

static void sched_close_attempt(sr_message *m, const sched_change *c) {
    sr_attempt *a = sched_last_attempt(m);
    if (!a) return;
    a->duration_ms = c->duration_ms;
    a->http_status = c->http_status;
    sr_message_set_str(&a->outcome, c->attempt_outcome);
    sr_message_set_str(&a->error, c->error);
    if (c->provider_id && c->provider_id[0]) sr_message_set_str(&a->provider_id, c->provider_id);
}

/* Stores the route resolved at dispatch on a message that had none. */
static void sched_set_route(sr_message *m, const sched_change *c) {
    if (m->route_len != 0 || c->route_len <= 0) return;
    free(m->route); /* an empty route may still own its array */
    m->route = calloc((size_t)c->route_len, sizeof(char *));
    if (!m->route) abort();
    for (int i = 0; i < c->route_len; i++) sr_message_set_str(&m->route[i], c->route[i]);
    m->route_len = c->route_len;
}

/* CH_SENDING: the message leaves for c->provider; an attempt opens. */
static int sched_apply_sending(sr_message *m, const sched_change *c) {
    if (m->status != SR_ST_QUEUED) return SR_E_STATE;
    if (m->route_len == 0 && c->route_len > 0) {
        m->fallback_on = c->ropt.fallback_on;
        m->dlr_timeout_s = c->ropt.dlr_timeout_s;
    }
    sched_set_route(m, c);
    m->route_index = c->route_index;
    sr_message_set_str(&m->provider, c->provider);
    sr_message_set_str(&m->provider_id, NULL);
    sr_attempt *a = sr_message_add_attempt(m, c->provider, c->now_ms);
    sr_message_set_str(&a->outcome, "sending");
    m->next_attempt_at_ms = 0;
    sr_message_set_status(m, SR_ST_SENDING, c->now_ms);
    return 0;
}

/* CH_SENT, CH_RETRY, CH_FALLBACK, CH_FAILED: the provider answered (or did not). */
static int sched_apply_answer(sr_message *m, const sched_change *c) {
    if (m->status == SR_ST_DELIVERED && c->attempt_count_at_send == m->attempt_count) {
        /* A late "delivered" for an earlier attempt arrived while this one was out: the
         * message stays delivered; this attempt's outcome (and provider id, so its own report
         * still matches) is recorded. */
        sched_close_attempt(m, c);
        return 0;
    }
    if (m->status != SR_ST_SENDING) return SR_E_STATE;
    sched_close_attempt(m, c);
    sr_message_set_str(&m->error, c->kind == CH_SENT ? NULL : c->error);
    if (c->kind == CH_SENT) {
        sr_message_set_str(&m->provider_id, c->provider_id);
        sr_message_set_status(m, SR_ST_SENT, c->now_ms);
        m->sent_at_ms = c->now_ms;
        m->parts = c->parts;
        sr_message_set_str(&m->part_reports, NULL);
        m->polls = 0;
        m->watch_at_ms = sr_reports_next_watch(m, c->poll, c->now_ms, c->poll_max_age_ms);
    } else if (c->kind == CH_FAILED) {
        sr_message_set_status(m, SR_ST_FAILED, c->now_ms);
    } else {
        if (c->kind == CH_FALLBACK) m->route_index++;
        m->next_attempt_at_ms = c->next_attempt_at_ms;
        sr_message_set_status(m, SR_ST_QUEUED, c->now_ms);
    }
    return 0;
}

/* CH_CRASH_REQUEUE, CH_REQUEUE_FAILED: back to the queue after a crash, or by POST .../retry. */
static int sched_apply_requeue(sr_message *m, const sched_change *c) {
    if (c->kind == CH_CRASH_REQUEUE) {
        if (m->status != SR_ST_SENDING) return SR_E_STATE;
        sr_attempt *a = sched_last_attempt(m);
        if (a) {
            sr_message_set_str(&a->outcome, "unknown");
            sr_message_set_str(&a->error, "the daemon stopped before the provider answered; resent");
        }
    } else {
        if (m->status != SR_ST_FAILED) return SR_E_STATE;
        m->route_index = 0;
        sr_message_set_str(&m->error, NULL);
    }
    m->next_attempt_at_ms = 0;
    sr_message_set_status(m, SR_ST_QUEUED, c->now_ms);
    return 0;
}

static int sched_apply(sr_message *m, void *arg) {
    sched_change *c = arg;
    switch (c->kind) {
    case CH_SENDING: return sched_apply_sending(m, c);
    case CH_SENT:
    case CH_RETRY:
    case CH_FALLBACK:
    case CH_FAILED: return sched_apply_answer(m, c);
    case CH_EXPIRE:
    case CH_REJECT:
    case CH_FAIL_QUEUED:
        if (m->status != SR_ST_QUEUED) return SR_E_STATE;
        sr_message_set_str(&m->error, c->error);
        sr_message_set_status(m,
                              c->kind == CH_EXPIRE   ? SR_ST_EXPIRED
                              : c->kind == CH_REJECT ? SR_ST_REJECTED
                                                     : SR_ST_FAILED,
                              c->now_ms);
        return 0;
    case CH_SKIP_PROVIDER:
    case CH_RESCHEDULE:
        if (m->status != SR_ST_QUEUED) return SR_E_STATE;
        sched_set_route(m, c);
        if (c->kind == CH_SKIP_PROVIDER) m->route_index = c->route_index + 1;
        m->next_attempt_at_ms = c->next_attempt_at_ms;
        sr_message_set_str(&m->error, c->error);
        return 0;
    case CH_CRASH_REQUEUE:
    case CH_REQUEUE_FAILED: return sched_apply_requeue(m, c);
    }
    return SR_E_STATE;
}

/* ---- helpers ---- */

static uint64_t sched_random(sr_scheduler *s) {
    if (s->random) return s->random(s->random_ud);
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) != sizeof v) v = (uint64_t)sr_now_ms() * 6364136223846793005ULL;
    return v;
}

static void sched_pump(sr_scheduler *s);

static void sched_timer_cb(uv_timer_t *t) { sched_pump(t->data); }

void sr_scheduler_kick(sr_scheduler *s) {
    if (!s || s->stopping) return;
    /* A 0 ms timer runs on the next loop pass: many kicks, one pump. */
    uv_timer_start(&s->timer, sched_timer_cb, 0, 0);
    s->kicked = 1;
}

void sr_scheduler_set_random(sr_scheduler *s, uint64_t (*fn)(void *ud), void *ud) {
    s->random = fn;
    s->random_ud = ud;
}

void sr_scheduler_set_transport(sr_scheduler *s, sr_transport_fn fn, void *ud) {
    s->transport = fn;
    s->transport_ud = ud;
}

int sr_scheduler_idle(sr_scheduler *s, int64_t *wake_ms) {
    int64_t wake = -1;
    if (uv_is_active((uv_handle_t *)&s->timer)) wake = (int64_t)uv_timer_get_due_in(&s->timer);
    if (wake_ms) *wake_ms = wake;
    /* A ready request waits for an answer to free a slot, or for a pause to end (the timer). */
    return s->outstanding == s->jobs_at_transport + s->jobs_ready && !s->kicked;
}

/* Looks at the queue again in delay_ms, unless an earlier look is already due. */
static void sched_arm(sr_scheduler *s, int64_t delay_ms) {
    if (s->stopping) return;
    if (delay_ms < 0) delay_ms = 0;
    if (uv_is_active((uv_handle_t *)&s->timer) && uv_timer_get_due_in(&s->timer) <= (uint64_t)delay_ms) return;
    uv_timer_start(&s->timer, sched_timer_cb, (uint64_t)delay_ms, 0);
}

static int lane_failed_ratio(const lane *l) {
    if (l->window_count < SCHED_WINDOW / 2) return 0;
    int n = l->window_count < SCHED_WINDOW ? l->window_count : SCHED_WINDOW;
    int fails = __builtin_popcount(l->window & ((1u << n) - 1));
    return fails * 2 >= n;
}

static const char *const circuit_names[] = {"closed", "open", "half_open"};

static void lane_set_circuit(sr_scheduler *s, lane *l, int state, int64_t now) {
    if (l->circuit == state) return;
    l->circuit = state;
    l->m_circuit->value = state;
    if (state == CIRCUIT_OPEN) l->open_until_ms = now + (int64_t)s->config->circuit_cooldown_ms;
    if (state == CIRCUIT_CLOSED) {
        l->consecutive_failures = 0;
        l->window = 0;
        l->window_count = 0;
    }
    sr_log(state == CIRCUIT_OPEN ? SR_LOG_WARN : SR_LOG_INFO, "circuit state", "provider", l->name, "state",
           circuit_names[state], (char *)0);
}

/* One request's result for the breaker: failure (transport, 5xx, provider
 * refusal) or success (any answer about the messages themselves). */
static void lane_record(sr_scheduler *s, lane *l, int failure, int probe, int64_t now) {
    l->window = (l->window << 1) | (failure ? 1u : 0u);
    if (l->window_count < SCHED_WINDOW) l->window_count++;
    l->consecutive_failures = failure ? l->consecutive_failures + 1 : 0;
    if (l->circuit == CIRCUIT_HALF_OPEN && probe) {
        lane_set_circuit(s, l, failure ? CIRCUIT_OPEN : CIRCUIT_CLOSED, now);
        if (failure) l->open_until_ms = now + (int64_t)s->config->circuit_cooldown_ms;
        return;
    }
    if (l->circuit == CIRCUIT_CLOSED && failure &&
        (l->consecutive_failures >= s->config->circuit_failures || lane_failed_ratio(l)))
        lane_set_circuit(s, l, CIRCUIT_OPEN, now);
}

static void sched_request_free(sched_request *rq) {
    sr_adapter_msgs_release(rq->p, rq->msgs_ref);
    sr_rules_release(rq->rules);
    free(rq);
}

/* Releases request rq's jobs unsent (their messages stay as they are on disk) and frees it. */
static void sched_request_drop(sr_scheduler *s, sched_request *rq) {
    sched_job *next;
    for (sched_job *j = rq->jobs; j; j = next) {
        next = j->next;
        sched_release(s, j);
    }
    sched_request_free(rq);
}

/* ---- transitions without a send ---- */

static void sched_transition_done(sr_store_txn *t, void *ud) {
    sched_job *j = ud;
    sr_scheduler *s = j->req ? j->req->s : NULL;
    /* Counted once requeued: in cluster mode another node may have taken the message over first. */
    if (s && j->change.kind == CH_CRASH_REQUEUE && sr_store_txn_status(t) == 0) s->m_crash->value++;
    /* The job holds its scheduler through a one-element fake request. */
    sched_request *holder = j->req;
    j->req = NULL;
    sched_release(s, j);
    free(holder);
    sr_scheduler_kick(s);
}

/* Submits change for job j (claimed) and releases it after the commit. */
static void sched_transition(sr_scheduler *s, sched_job *j) {
    sched_request *holder = calloc(1, sizeof *holder);
    if (!holder) abort();
    holder->s = s;
    holder->msgs_ref = LUA_NOREF;
    j->req = holder;
    sr_store_txn *t = sr_store_txn_new(s->store);
    /* A requeue after a crash claims the message from its gone owner first: in cluster mode the unit
     * then fails if another node took it over and is sending it again (the status alone would not
     * tell: it is `sending` once more). Single node: nothing to claim. */
    if (j->change.kind == CH_CRASH_REQUEUE) sr_store_txn_take_over(t, SR_ORPHAN_SENDING, j->id, SR_ID_LEN);
    sr_store_txn_update_message(t, j->id, sched_apply, &j->change);
    sr_store_txn_submit(t, sched_transition_done, j);
}

/* ---- sending ---- */

static void sched_http_done(const sr_http_client_response *resp, void *ud);
static void lane_start_ready(sr_scheduler *s, lane *l);

/* The requests lane l may have out to its provider at once: the provider's concurrency, or, once a reload
 * removed the provider, that of the rules request rq was built with (its ready requests still go out). */
static int lane_concurrency(const lane *l, const sched_request *rq) {
    return l->p ? l->p->concurrency : rq->p->concurrency;
}

/* The requests lane l holds in any stage: being marked, ready, or out. */
static int lane_requests(const lane *l) { return l->requests_in_flight + l->marking + l->ready_count; }

/* How many requests lane l may hold in all (lane_requests): its concurrency out, and while its circuit is
 * closed some more being marked or ready, so that the `sending` commit of the next requests overlaps the
 * round trip of those out. Ahead go as many messages as it may have requests out (requests of batch_size):
 * as many requests again when each carries one message; a request or two of a batching adapter already
 * cover a commit, and more ahead only make the group commits bigger (measured: more CPU per message,
 * scripts/bench/outbound.py). Otherwise none ahead: a half-open probe stays alone. */
static int lane_capacity(const lane *l) {
    if (!l->p) return 0;
    if (l->circuit != CIRCUIT_CLOSED) return l->p->concurrency;
    int batch = l->p->batch_size > 0 ? l->p->batch_size : 1;
    return l->p->concurrency + (l->p->concurrency + batch - 1) / batch;
}

static void sched_complete_done(sr_store_txn *t, void *ud);

/* Submits the outcome of job j (an answered request) in a unit of its own. */
static void sched_record_outcome(sr_scheduler *s, sched_job *j) {
    sr_store_txn *t = sr_store_txn_new(s->store);
    sr_store_txn_update_message(t, j->id, sched_apply, &j->change);
    sr_store_txn_submit(t, sched_complete_done, j);
}

/* Takes the whole list of outcomes waiting to be written (linked by unext). */
static sched_job *sched_take_unrecorded(sr_scheduler *s) {
    sched_job *list = s->unrecorded;
    s->unrecorded = NULL;
    s->unrecorded_count = 0;
    s->m_unrecorded->value = 0;
    return list;
}

static void sched_outcome_timer_cb(uv_timer_t *h) {
    sr_scheduler *s = h->data;
    sched_job *list = sched_take_unrecorded(s);
    for (sched_job *j = list, *next; j; j = next) {
        next = j->unext;
        j->unext = NULL;
        s->m_outcome_retries->value++;
        sched_record_outcome(s, j);
    }
}

/* The outcome's write failed for the store (full, or an I/O error): keep the job claimed and
 * write it again later, backing off from 100 ms to 2 s. */
static void sched_outcome_defer(sr_scheduler *s, sched_job *j, int code) {
    if (s->abandon_unrecorded) {
        sr_error("stopping: a send outcome could not be written; the message stays `sending` and is sent again at "
                 "the next start",
                 "id", j->id, "error", sr_store_strerror(code));
        sched_request *rq = j->req;
        if (--rq->units_pending == 0) sched_request_free(rq);
        sched_release(s, j);
        return;
    }
    if (!s->unrecorded && !s->outcome_delay_ms)
        sr_warn("cannot record send outcomes: kept in memory and written again until they land; no new sends "
                "meanwhile",
                "error", sr_store_strerror(code));
    j->unext = s->unrecorded;
    s->unrecorded = j;
    s->unrecorded_count++;
    s->m_unrecorded->value = s->unrecorded_count;
    if (uv_is_active((uv_handle_t *)&s->outcome_timer)) return;
    s->outcome_delay_ms = s->outcome_delay_ms ? s->outcome_delay_ms * 2 : 100;
    if (s->outcome_delay_ms > 2000) s->outcome_delay_ms = 2000;
    uv_timer_start(&s->outcome_timer, sched_outcome_timer_cb, s->outcome_delay_ms, 0);
}

static void sched_complete_done(sr_store_txn *t, void *ud) {
    sched_job *j = ud;
    sched_request *rq = j->req;
    sr_scheduler *s = rq->s;
    lane *l = &s->lanes[rq->lane];
    int st = sr_store_txn_status(t);
    if (st == SR_E_FULL || st == SR_E_IO || st == SR_E_UNAVAILABLE) {
        sched_outcome_defer(s, j, st);
        return;
    }
    if (st == 0 && s->outcome_delay_ms) s->outcome_delay_ms = 0; /* writes land again */
    if (st == 0 && sr_rules_route_stats(s->rules)) {
        const sr_message *m = sr_store_txn_message(t, 0);
        if (m)
            sr_route_stats_on_attempt(sr_rules_route_stats(s->rules), m, j->change.attempt_count_at_send - 1,
                                      rq->p->cost);
    }
    /* Its status handler and the reports waiting for its provider id hear of it from the store. */
    if (st != 0) sr_error("cannot record a send outcome", "id", j->id, "error", sr_store_strerror(st));
    else if (j->change.kind == CH_SENT)
        l->m_sent->value++;
    else if (j->change.kind == CH_RETRY)
        l->m_retried->value++;
    else if (j->change.kind == CH_FAILED)
        l->m_failed->value++;
    else if (j->change.kind == CH_FALLBACK)
        l->m_fallback->value++;
    if (--rq->units_pending == 0) sched_request_free(rq);
    sched_release(s, j);
    sr_scheduler_kick(s);
}

/* Decides and records the outcome of one message of an answered (or
 * failed) request. */
static void sched_decide(sr_scheduler *s, const sr_provider *p, sched_job *j, const sr_adapter_outcome *o,
                         int http_status, int64_t duration_ms, int64_t now) {
    sched_change *c = &j->change;
    memset(c, 0, sizeof *c);
    c->now_ms = now;
    c->attempt_count_at_send = j->msg.attempt_count;
    c->http_status = http_status;
    c->duration_ms = duration_ms;
    sr_str_copy(j->error, sizeof j->error, o->error);
    c->error = j->error[0] ? j->error : NULL;
    if (o->ok) {
        sr_str_copy(j->provider_id, sizeof j->provider_id, o->provider_id);
        c->kind = CH_SENT;
        c->provider_id = j->provider_id;
        c->attempt_outcome = "sent";
        c->parts = o->parts;
        c->poll = p->poll;
        c->poll_max_age_ms = (int64_t)s->config->poll_max_age_s * 1000;
        return;
    }
    int attempts_here = 0;
    for (int i = 0; i < j->msg.attempt_count; i++)
        if (j->msg.attempts[i].provider && strcmp(j->msg.attempts[i].provider, p->name) == 0) attempts_here++;
    int has_next = j->msg.route_index + 1 < j->msg.route_len;
    if (o->retry && attempts_here < p->max_attempts) {
        /* Exponential backoff with full jitter, Retry-After as a floor. */
        double cap = (double)s->config->retry_cap_ms;
        double ceiling = (double)s->config->retry_base_ms * pow(2.0, attempts_here - 1);
        if (ceiling > cap) ceiling = cap;
        int64_t delay = (int64_t)((double)(sched_random(s) % 1000001) / 1000000.0 * ceiling);
        if (o->retry_after_s >= 0) {
            double ra = o->retry_after_s;
            if (ra > (double)s->config->retry_after_max_s) ra = (double)s->config->retry_after_max_s;
            if ((int64_t)(ra * 1000) > delay) delay = (int64_t)(ra * 1000);
        }
        c->kind = CH_RETRY;
        c->next_attempt_at_ms = now + delay;
        c->attempt_outcome = "retry";
        return;
    }
    if (o->retry || o->about_provider) {
        c->attempt_outcome = o->retry ? "retry" : "failed";
        if (o->retry) {
            snprintf(j->error, sizeof j->error, "%.200s (attempts on %.64s exhausted)", o->error, p->name);
            c->error = j->error;
        }
        if (has_next) {
            c->kind = CH_FALLBACK;
            c->next_attempt_at_ms = 0;
        } else {
            c->kind = CH_FAILED;
        }
        return;
    }
    c->kind = CH_FAILED;
    c->attempt_outcome = "rejected";
}

static void sched_finish_request(sr_scheduler *s, sched_request *rq, const sr_adapter_outcome *outs, int http_status,
                                 int64_t duration_ms) {
    int64_t now = sr_now_ms();
    rq->units_pending = rq->count;
    sched_job *j = rq->jobs;
    int i = 0;
    sched_job *next;
    for (; j; j = next, i++) {
        next = j->next;
        sched_decide(s, rq->p, j, &outs[i], http_status, duration_ms, now);
        sched_record_outcome(s, j);
    }
}

/* A Retry-After in an answer pauses the whole lane until then. */
static void lane_pause_for_retry_after(sr_scheduler *s, lane *l, const sr_adapter_outcome *outs, int n, int64_t now) {
    for (int i = 0; i < n; i++) {
        if (outs[i].retry_after_s >= 0) {
            double ra = outs[i].retry_after_s;
            if (ra > (double)s->config->retry_after_max_s) ra = (double)s->config->retry_after_max_s;
            int64_t until = now + (int64_t)(ra * 1000);
            if (until > l->paused_until_ms) l->paused_until_ms = until;
        }
    }
}

/* Every message of the request gets "retry", with why it failed: the transport gave no answer. */
static void sched_transport_failed(const sched_request *rq, const sr_http_client_response *resp,
                                   sr_adapter_outcome *outs) {
    for (int i = 0; i < rq->count; i++) {
        outs[i].retry = 1;
        outs[i].retry_after_s = -1;
        sr_str_copy(outs[i].error, sizeof outs[i].error,
                    resp->error == SR_HTTP_E_TIMEOUT   ? "timeout: no answer in time"
                    : resp->error == SR_HTTP_E_CONNECT ? "connection failed"
                                                       : "transport error");
        if (resp->error_message && resp->error_message[0])
            snprintf(outs[i].error + strlen(outs[i].error), sizeof outs[i].error - strlen(outs[i].error), ": %s",
                     resp->error_message);
    }
}

/* The adapter's reading of an answer into outs; 1 when it says the provider failed (5xx, or a refusal
 * for a reason of its own), for the circuit breaker. */
static int sched_parse_answer(sched_request *rq, const sr_http_client_response *resp, sr_adapter_outcome *outs) {
    sr_message *msgs[1000];
    int n = 0;
    for (sched_job *j = rq->jobs; j && n < 1000; j = j->next) msgs[n++] = &j->msg;
    sr_adapter_header hdrs[64];
    int hn = 0;
    for (int i = 0; i < resp->header_count && hn < 64; i++) {
        hdrs[hn].name = resp->headers[i].name;
        hdrs[hn].value = resp->headers[i].value;
        hn++;
    }
    char err[300];
    int msgs_ref = rq->msgs_ref;
    rq->msgs_ref = LUA_NOREF; /* the parse releases it */
    if (sr_adapter_parse_send(rq->rules, rq->p, msgs, n, msgs_ref, resp->status, resp->body, resp->body_len, hdrs, hn,
                              outs, err, sizeof err) != 0) {
        /* We cannot tell whether it was accepted: retry with the same key. */
        for (int i = 0; i < rq->count; i++) {
            memset(&outs[i], 0, sizeof outs[i]);
            outs[i].retry = 1;
            outs[i].retry_after_s = -1;
            snprintf(outs[i].error, sizeof outs[i].error, "adapter error: %.200s", err);
        }
    }
    int failure = resp->status >= 500;
    for (int i = 0; i < rq->count; i++)
        if (!outs[i].ok && !outs[i].retry && outs[i].about_provider) failure = 1;
    return failure;
}

static void sched_http_done(const sr_http_client_response *resp, void *ud) {
    sched_request *rq = ud;
    sr_scheduler *s = rq->s;
    lane *l = &s->lanes[rq->lane];
    l->requests_in_flight--;
    int64_t now = sr_now_ms();
    sr_metric_observe(l->m_latency, resp->duration_ms / 1000.0);
    if (resp->error == SR_HTTP_E_CANCELLED) {
        /* Shutting down without an answer: the messages stay `sending` on
         * disk and are resent after the restart, like after a crash. */
        sched_request_drop(s, rq);
        lane_start_ready(s, l);
        return;
    }
    sr_adapter_outcome *outs = calloc((size_t)rq->count, sizeof *outs);
    if (!outs) abort();
    int failure = 1;
    if (resp->error) {
        sched_transport_failed(rq, resp, outs);
    } else {
        failure = sched_parse_answer(rq, resp, outs);
        lane_pause_for_retry_after(s, l, outs, rq->count, now);
    }
    lane_record(s, l, failure, rq->probe, now);
    sched_finish_request(s, rq, outs, resp->error ? 0 : resp->status, (int64_t)resp->duration_ms);
    free(outs);
    lane_start_ready(s, l);
    sr_scheduler_kick(s);
}

/* The transport's answer (sr_scheduler_set_transport): the outcomes come
 * ready-made, the rest is what an HTTP answer goes through. */
static void sched_transport_answered(void *request, const sr_adapter_outcome *outs, int http_status) {
    sched_request *rq = request;
    sr_scheduler *s = rq->s;
    lane *l = &s->lanes[rq->lane];
    l->requests_in_flight--;
    s->jobs_at_transport -= rq->count;
    int64_t now = sr_now_ms();
    sr_metric_observe(l->m_latency, (double)(now - rq->started_ms) / 1000.0);
    int failure = http_status == 0 || http_status >= 500;
    for (int i = 0; i < rq->count; i++)
        if (!outs[i].ok && !outs[i].retry && outs[i].about_provider) failure = 1;
    lane_pause_for_retry_after(s, l, outs, rq->count, now);
    lane_record(s, l, failure, rq->probe, now);
    sched_finish_request(s, rq, outs, http_status, now - rq->started_ms);
    lane_start_ready(s, l);
    sr_scheduler_kick(s);
}

/* Builds and sends request rq, counted in flight by the caller (lane_start_ready, which goes on with the
 * next ready request when a build fails here). */
static void sched_send(sr_scheduler *s, sched_request *rq) {
    lane *l = &s->lanes[rq->lane];
    sr_message *msgs[1000];
    int n = 0;
    for (sched_job *j = rq->jobs; j && n < 1000; j = j->next) msgs[n++] = &j->msg;
    sr_adapter_request ar;
    char err[300];
    /* Only an HTTP answer is parsed by the adapter: a transport hands outcomes over ready-made. */
    if (sr_adapter_build_send(rq->rules, rq->p, msgs, n, &ar, s->transport ? NULL : &rq->msgs_ref, err, sizeof err) !=
        0) {
        l->requests_in_flight--;
        sr_adapter_outcome *outs = calloc((size_t)n, sizeof *outs);
        if (!outs) abort();
        for (int i = 0; i < n; i++) {
            outs[i].about_provider = 1;
            snprintf(outs[i].error, sizeof outs[i].error, "adapter error: %.200s", err);
        }
        lane_record(s, l, 1, rq->probe, sr_now_ms());
        sched_finish_request(s, rq, outs, 0, 0);
        free(outs);
        return;
    }
    if (s->transport) {
        /* The request was built (adapter errors surface as above); the
         * transport, not HTTP, carries it. */
        sr_adapter_request_free(&ar);
        rq->started_ms = sr_now_ms();
        s->jobs_at_transport += rq->count;
        s->transport(s->transport_ud, rq->p, msgs, n, rq, sched_transport_answered);
        return;
    }
    rq->started_ms = sr_now_ms();
    sr_adapter_http_send(s->client, &ar, rq->p->timeout_ms, sched_http_done, rq);
}

/* Starts lane l's ready requests, first in first out, while fewer than its concurrency are out and no
 * Retry-After pause holds the lane (the pump comes back when it ends). An answer that comes back at once
 * (a request that cannot start) or a build error calls this again from inside: the running loop goes on. */
static void lane_start_ready(sr_scheduler *s, lane *l) {
    if (l->starting) return;
    l->starting = 1;
    while (l->ready && !s->stopping && l->requests_in_flight < lane_concurrency(l, l->ready) &&
           l->paused_until_ms <= sr_now_ms()) {
        sched_request *rq = l->ready;
        l->ready = rq->next;
        if (!l->ready) l->ready_tail = &l->ready;
        rq->next = NULL;
        l->ready_count--;
        s->jobs_ready -= rq->count;
        l->requests_in_flight++;
        sched_send(s, rq);
    }
    l->starting = 0;
}

/* Stopping: lane l's ready requests never leave. Their messages stay `sending` on disk and are resent
 * after the restart, like after a crash. */
static void lane_drop_ready(sr_scheduler *s, lane *l) {
    while (l->ready) {
        sched_request *rq = l->ready;
        l->ready = rq->next;
        l->ready_count--;
        s->jobs_ready -= rq->count;
        sched_request_drop(s, rq);
    }
    l->ready_tail = &l->ready;
}

static void sched_marked(sr_store_txn *t, void *ud) {
    sched_job *j = ud;
    sched_request *rq = j->req;
    sr_scheduler *s = rq->s;
    if (sr_store_txn_status(t) == 0) {
        /* The store applied this change to the message the pump read (a queued message is ours while
         * claimed): applied to our copy too, it gives what was written without copying that back. Only
         * should something else have changed it meanwhile (a late report on an earlier attempt) is the
         * written one copied. */
        const sr_message *written = sr_store_txn_message(t, 0);
        if (sched_apply(&j->msg, &j->change) != 0 || j->msg.attempt_count != written->attempt_count ||
            j->msg.history_count != written->history_count || j->msg.route_len != written->route_len) {
            sr_message_free(&j->msg);
            sr_message_copy(&j->msg, written);
        }
    } else {
        j->send = 0; /* changed meanwhile (or the store failed): not ours to send */
    }
    if (--rq->units_pending > 0) return;
    lane *l = &s->lanes[rq->lane];
    l->marking--;
    /* Every message of the request is `sending` on disk: drop the others, send. */
    sched_job **pp = &rq->jobs;
    while (*pp) {
        sched_job *x = *pp;
        if (!x->send) {
            *pp = x->next;
            rq->count--;
            sched_release(s, x);
        } else {
            pp = &x->next;
        }
    }
    if (rq->count == 0 || s->stopping) {
        /* Stopping: leave them `sending` on disk; resent after the restart. */
        sched_request_drop(s, rq);
        sr_scheduler_kick(s); /* room in the lane */
        return;
    }
    rq->next = NULL;
    *l->ready_tail = rq;
    l->ready_tail = &rq->next;
    l->ready_count++;
    s->jobs_ready += rq->count;
    lane_start_ready(s, l);
}

/* A new request of lane li with its first pending jobs (up to a batch). */
static sched_request *lane_take_request(sr_scheduler *s, int li) {
    lane *l = &s->lanes[li];
    sched_request *rq = calloc(1, sizeof *rq);
    if (!rq) abort();
    rq->s = s;
    rq->rules = sr_rules_retain(s->rules);
    rq->p = l->p;
    rq->msgs_ref = LUA_NOREF;
    rq->lane = li;
    rq->probe = l->circuit == CIRCUIT_HALF_OPEN;
    sched_job **tail = &rq->jobs;
    while (l->pending && rq->count < l->p->batch_size) {
        sched_job *j = l->pending;
        l->pending = j->next;
        j->next = NULL;
        j->req = rq;
        *tail = j;
        tail = &j->next;
        rq->count++;
        l->pending_count--;
    }
    if (!l->pending) l->pending_tail = &l->pending;
    return rq;
}

/* Turns a lane's pending jobs into requests, as many as it may hold (lane_capacity), and submits their
 * `sending` marks; sched_marked takes each request on once all its marks are committed. */
static void lane_flush(sr_scheduler *s, int li) {
    lane *l = &s->lanes[li];
    while (l->p && l->pending_count > 0 && lane_requests(l) < lane_capacity(l)) {
        sched_request *rq = lane_take_request(s, li);
        l->marking++;
        int64_t now = sr_now_ms();
        rq->units_pending = rq->count;
        for (sched_job *j = rq->jobs; j; j = j->next) {
            sched_change *c = &j->change;
            memset(c, 0, sizeof *c);
            c->kind = CH_SENDING;
            c->provider = l->p->name;
            c->route = j->route;
            c->route_len = j->msg.route_len == 0 ? j->route_len : 0;
            c->route_index = j->route_index;
            c->ropt = j->ropt;
            c->now_ms = now;
            sr_store_txn *t = sr_store_txn_new(s->store);
            sr_store_txn_update_message(t, j->id, sched_apply, c);
            sr_store_txn_submit(t, sched_marked, j);
        }
    }
}

/* ---- the pump ---- */

/* Room for more messages in lane l now; 0 when blocked (then *wake_ms says when to look again, or -1). */
static int lane_room(sr_scheduler *s, lane *l, int64_t now, int64_t *wake_ms) {
    *wake_ms = -1;
    if (!l->p) return 0;
    if (l->paused_until_ms > now) {
        *wake_ms = l->paused_until_ms - now;
        return 0;
    }
    if (l->circuit == CIRCUIT_HALF_OPEN) return lane_requests(l) == 0 && l->pending_count == 0 ? 1 : 0;
    int room = (lane_capacity(l) - lane_requests(l)) * l->p->batch_size - l->pending_count;
    return room > 0 ? room : 0;
}

/* The provider's rate (shared with status polls): could one message go now? Else *wake_ms says when. */
static int lane_rate_ready(const lane *l, int64_t now, int64_t *wake_ms) {
    *wake_ms = -1;
    return !l->p || sr_rate_lane_ready(l->tat, l->p, now, wake_ms);
}

/* The same, taking one message's worth when yes. */
static int lane_rate_take(lane *l, int64_t now, int64_t *wake_ms) {
    return sr_rate_lane_take(l->tat, l->p, now, wake_ms);
}

/* The route of m: its own, else sms.route(m), else every provider in
 * declaration order. Fills j->route; returns its length or -1 (error in err). */
static int sched_resolve_route(sr_scheduler *s, sched_job *j, char *err, size_t errlen) {
    const sr_message *m = &j->msg;
    if (m->route_len > 0) {
        for (int i = 0; i < m->route_len && i < SCHED_ROUTE_MAX; i++) j->route[j->route_len++] = strdup(m->route[i]);
        return j->route_len;
    }
    int n = sr_adapter_route(s->rules, m, j->route, SCHED_ROUTE_MAX, &j->ropt, err, errlen);
    if (n < 0) return -1;
    if (n == 0 && s->rules->route_ref == LUA_NOREF)
        for (int i = 0; i < s->rules->provider_count && n < SCHED_ROUTE_MAX; i++)
            j->route[n++] = strdup(s->rules->providers[i].name);
    j->route_len = n;
    return n;
}

static int sched_lane_index(sr_scheduler *s, const char *name) {
    for (int i = 0; i < s->lane_count; i++)
        if (s->lanes[i].p && strcmp(s->lanes[i].name, name) == 0) return i;
    return -1;
}

/* Lanes that could take a message now; adds up their room in *room_total and lowers *wake to when the
 * first blocked one can (by rate, pause or its open circuit's probe). */
static int sched_ready_lanes(sr_scheduler *s, int64_t now, int *room_total, int64_t *wake) {
    int ready_lanes = 0;
    int64_t w;
    for (int i = 0; i < s->lane_count; i++) {
        lane *l = &s->lanes[i];
        if (l->p && l->circuit == CIRCUIT_OPEN && now < l->open_until_ms) {
            /* Nothing for it before its probe: reading its messages now would only reschedule each one to
             * the probe's time, a write per queued message at every opening of the circuit. */
            if (l->open_until_ms - now < *wake) *wake = l->open_until_ms - now;
            continue;
        }
        int room = lane_room(s, l, now, &w);
        *room_total += room;
        if (room > 0 && lane_rate_ready(l, now, &w)) ready_lanes++;
        else if (l->p && w >= 0 && w < *wake)
            *wake = w;
    }
    return ready_lanes;
}

/* Ends job j before any provider when its validity ended or its recipient opted out: 1 when it did. */
static int sched_close_early(sr_scheduler *s, sched_job *j) {
    sched_change *c = &j->change;
    if (j->msg.expires_at_ms && j->msg.expires_at_ms <= c->now_ms) {
        c->kind = CH_EXPIRE;
        c->error = "validity ended before the message was sent";
        s->m_expired->value++;
        sched_transition(s, j);
        return 1;
    }
    /* A reply answers a message the person just sent (the STOP
     * confirmation above all), so it goes out even to an opted-out number;
     * everything else to that number is rejected. */
    if (!j->msg.reply_to && sr_store_is_optout(s->store, j->msg.to) == 1) {
        c->kind = CH_REJECT;
        c->error = "the recipient opted out";
        s->m_rejected->value++;
        sched_transition(s, j);
        return 1;
    }
    return 0;
}

/* The lane of job j's next provider, or -1 after failing j (no route, route exhausted, unknown provider). */
static int sched_job_lane(sr_scheduler *s, sched_job *j) {
    char err[256];
    int rl = sched_resolve_route(s, j, err, sizeof err);
    int li = -1;
    if (rl < 0) {
        snprintf(j->error, sizeof j->error, "sms.route failed: %.250s", err);
    } else if (rl == 0) {
        snprintf(j->error, sizeof j->error, "no provider in the route");
    } else if (j->msg.route_index >= rl) {
        snprintf(j->error, sizeof j->error, "every provider of the route was tried");
    } else {
        li = sched_lane_index(s, j->route[j->msg.route_index]);
        if (li < 0)
            snprintf(j->error, sizeof j->error, "the route names an unknown provider '%s'",
                     j->route[j->msg.route_index]);
    }
    if (li < 0) {
        j->change.kind = CH_FAIL_QUEUED;
        j->change.error = j->error;
        sched_transition(s, j);
    }
    return li;
}

/* An open circuit: half-open once its cooldown ended (0: go on), else job j goes to the next provider or
 * waits for the circuit (1: j is taken care of). */
static int sched_circuit_gate(sr_scheduler *s, sched_job *j, lane *l, int64_t now) {
    if (l->circuit != CIRCUIT_OPEN) return 0;
    if (now >= l->open_until_ms) {
        lane_set_circuit(s, l, CIRCUIT_HALF_OPEN, now);
        return 0;
    }
    sched_change *c = &j->change;
    c->route = j->route;
    c->route_len = j->msg.route_len == 0 ? j->route_len : 0;
    c->route_index = j->route_index;
    if (j->route_index + 1 < j->route_len) {
        c->kind = CH_SKIP_PROVIDER;
        snprintf(j->error, sizeof j->error, "circuit of '%s' open; next provider", l->p->name);
    } else {
        c->kind = CH_RESCHEDULE;
        c->next_attempt_at_ms = l->open_until_ms;
        snprintf(j->error, sizeof j->error, "circuit of '%s' open; waiting for it", l->p->name);
    }
    c->error = j->error;
    sched_transition(s, j);
    return 1;
}

/* What one pass of the pump knows about its lanes. */
typedef struct sched_pass {
    int64_t now;
    int64_t wake;                  /* when to look again */
    char blocked[SCHED_MAX_LANES]; /* lanes that took all they could this pass */
    int blocked_count;
} sched_pass;

/* One due message: claimed, checked, routed and put in its lane's batch (or released for later). */
static void sched_pump_one(sr_scheduler *s, const char *id, sched_pass *ps) {
    if (sched_is_claimed(s, id)) return;
    sched_job *j = sched_claim(s, id);
    if (sr_store_get_message(s->store, j->id, &j->msg) != 0 || j->msg.status != SR_ST_QUEUED) {
        sched_release(s, j);
        return;
    }
    memset(&j->change, 0, sizeof j->change);
    j->change.now_ms = ps->now;
    if (sched_close_early(s, j)) return;
    int li = sched_job_lane(s, j);
    if (li < 0) return;
    j->lane = li;
    j->route_index = j->msg.route_index;
    lane *l = &s->lanes[li];
    if (sched_circuit_gate(s, j, l, ps->now)) return;
    int64_t lane_wake = -1;
    if (ps->blocked[li] || lane_room(s, l, ps->now, &lane_wake) == 0 || !lane_rate_take(l, ps->now, &lane_wake)) {
        if (!ps->blocked[li]) {
            ps->blocked[li] = 1;
            ps->blocked_count++;
        }
        if (lane_wake >= 0 && lane_wake < ps->wake) ps->wake = lane_wake;
        sched_release(s, j);
        return;
    }
    j->send = 1;
    j->next = NULL;
    *l->pending_tail = j;
    l->pending_tail = &j->next;
    l->pending_count++;
    if (l->pending_count >= l->p->batch_size) lane_flush(s, li);
}

static void sched_pump(sr_scheduler *s) {
    s->kicked = 0;
    if (s->stopping) return;
    /* Ready requests held by a pause that ended, or by a concurrency a reload raised. */
    for (int i = 0; i < s->lane_count; i++) lane_start_ready(s, &s->lanes[i]);
    if (s->unrecorded) {
        /* Outcomes wait for room in the store: send nothing new until they are written. */
        sched_arm(s, SCHED_IDLE_POLL_MS);
        return;
    }
    if (!s->rules || s->rules->provider_count == 0) {
        /* No provider declared: messages wait (and expire by their validity). */
        sched_arm(s, 1000);
        return;
    }
    sched_pass ps;
    memset(&ps, 0, sizeof ps);
    ps.now = sr_now_ms();
    ps.wake = SCHED_IDLE_POLL_MS;
    int room_total = 0;
    if (sched_ready_lanes(s, ps.now, &room_total, &ps.wake) == 0) {
        /* Every lane is full, paused or out of rate: reading and decoding the
         * queue now would only put it back. Expiry keeps running in the app's
         * sweep; look again when the first lane can take a message. */
        sched_arm(s, ps.wake);
        return;
    }
    int max = s->outstanding + room_total + 64;
    if (max > SCHED_SCAN_MAX) max = SCHED_SCAN_MAX;
    sr_queue_entry *entries = malloc(sizeof *entries * (size_t)max);
    if (!entries) abort();
    int n = sr_store_queue_due(s->store, ps.now, entries, max);
    /* Cluster mode: the live nodes share the queue by a hash of the id (sr_store_mine), so they do
     * not all race for the same messages; the compare on `sending` keeps it right while that share
     * moves as nodes come and go. */
    for (int i = 0; i < n && ps.blocked_count < s->lane_count; i++)
        if (sr_store_mine(s->store, entries[i].id)) sched_pump_one(s, entries[i].id, &ps);
    free(entries);
    if (n < max && ps.blocked_count == 0) s->backlog = 0;
    for (int i = 0; i < s->lane_count; i++) lane_flush(s, i);
    if (n > 0 && ps.wake > SCHED_BUSY_POLL_MS) ps.wake = SCHED_BUSY_POLL_MS;
    sched_arm(s, ps.wake);
}

/* ---- accept-time dispatch ---- */

/* One message per request costs three synced store units through the queue (accepted, sending, sent).
 * A new message that could leave at once instead goes into its lane at accept time: its put already
 * holds the `sending` transition, and once that unit committed it joins the lane's ready requests
 * (sched_marked), skipping a unit, the queue index and the pump's read. Only when nothing due waits
 * in the queue (backlog) and the lane would take it now: due, not expired, not opted out, its
 * provider's circuit closed, unbatched (a batching provider gathers from the queue), room and rate.
 * Anything else goes through the queue, where the pump decides (and fails or reroutes) as ever. */
static lane *sched_accept_lane(sr_scheduler *s, sched_job *j, int64_t now) {
    char err[256];
    int rl = sched_resolve_route(s, j, err, sizeof err);
    int li = rl > j->msg.route_index ? sched_lane_index(s, j->route[j->msg.route_index]) : -1;
    lane *l = li >= 0 ? &s->lanes[li] : NULL;
    int64_t wake;
    if (!l || l->circuit != CIRCUIT_CLOSED || l->p->batch_size != 1 || l->pending_count ||
        lane_room(s, l, now, &wake) == 0 || !lane_rate_take(l, now, &wake))
        return NULL;
    j->lane = li;
    j->route_index = j->msg.route_index;
    return l;
}

void *sr_scheduler_accept_take(sr_scheduler *s, const sr_message *m) {
    if (s->backlog || s->stopping || s->unrecorded || s->transport || !s->rules || s->rules->provider_count == 0)
        return NULL;
    int64_t now = sr_now_ms();
    if (m->send_at_ms > now || m->status != SR_ST_QUEUED || (m->expires_at_ms && m->expires_at_ms <= now) ||
        (!m->reply_to && sr_store_is_optout(s->store, m->to) != 0) || sched_is_claimed(s, m->id))
        return NULL;
    sched_job *j = sched_claim(s, m->id);
    sr_message_copy(&j->msg, m);
    lane *l = sched_accept_lane(s, j, now);
    if (!l) {
        s->backlog = 1; /* it waits in the queue: the next ones wait behind it */
        sched_release(s, j);
        return NULL;
    }
    j->send = 1;
    sched_request *rq = calloc(1, sizeof *rq);
    if (!rq) abort();
    *rq = (sched_request){.s = s,
                          .rules = sr_rules_retain(s->rules),
                          .p = l->p,
                          .lane = j->lane,
                          .jobs = j,
                          .count = 1,
                          .units_pending = 1};
    j->req = rq;
    l->marking++;
    sched_change *c = &j->change;
    *c = (sched_change){.kind = CH_SENDING,
                        .provider = l->p->name,
                        .route = j->route,
                        .route_len = m->route_len == 0 ? j->route_len : 0,
                        .route_index = j->route_index,
                        .ropt = j->ropt,
                        .now_ms = now};
    return j;
}

void sr_scheduler_accept_mark(sr_scheduler *s, void *job, sr_message *m) {
    (void)s;
    sched_apply(m, &((sched_job *)job)->change);
}

void sr_scheduler_accept_done(sr_scheduler *s, void *job, sr_store_txn *t) {
    (void)s;
    sched_marked(t, job); /* a failed unit (a duplicate, a full store) lets the job go */
}

/* ---- metrics ---- */

static double sched_queue_depth(void *ud) {
    sr_scheduler *s = ud;
    int64_t d = sr_store_queue_depth(s->store);
    return d < 0 ? 0 : (double)d;
}

/* How long the most overdue queued message has waited past its due time, in seconds (0: none due).
 * Messages waiting for a retry, a send_at or an open circuit are not due yet and do not count: a
 * value that grows means due messages wait for a lane (rate, concurrency) or for nothing at all.
 * Reads the first SCHED_OLDEST_SCAN due entries (highest priority first, then earliest due): exact
 * while fewer are due; past that, the lower priorities' oldest may be missed (the depth shows it). */
#define SCHED_OLDEST_SCAN 1024

/* The creation time an id begins with (its first 10 Crockford base32 digits are the ms, as
 * sr_id_new writes them); 0 when it is not one. */
static int64_t sched_id_time_ms(const char *id) {
    static const char digits[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    int64_t t = 0;
    for (int i = 0; i < 10; i++) {
        const char *d = id[i] ? strchr(digits, id[i]) : NULL;
        if (!d) return 0;
        t = t * 32 + (d - digits);
    }
    return t;
}

static double sched_queue_oldest_due(void *ud) {
    sr_scheduler *s = ud;
    int64_t now = sr_now_ms();
    sr_queue_entry *entries = malloc(sizeof *entries * SCHED_OLDEST_SCAN);
    if (!entries) abort();
    int n = sr_store_queue_due(s->store, now, entries, SCHED_OLDEST_SCAN);
    int64_t oldest = now;
    for (int i = 0; i < n; i++) {
        /* Due 0 is "at once": due since it was queued, which for a new message is its creation. */
        int64_t due = entries[i].due_ms > 0 ? entries[i].due_ms : sched_id_time_ms(entries[i].id);
        if (due > 0 && due < oldest) oldest = due;
    }
    free(entries);
    return (double)(now - oldest) / 1000.0;
}

static double lane_in_flight(void *ud) {
    lane *l = ud;
    return l->requests_in_flight;
}

static void lane_metrics(lane *l) {
    static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    char labels[128];
    snprintf(labels, sizeof labels, "provider=\"%s\"", l->name);
    l->m_sent = sr_metric_counter("smsrules_provider_sent_total", "Messages a provider accepted.", labels);
    l->m_failed = sr_metric_counter("smsrules_provider_failed_total", "Messages that failed on a provider.", labels);
    l->m_retried =
        sr_metric_counter("smsrules_provider_retried_total", "Retryable failures, to be tried again later.", labels);
    l->m_fallback = sr_metric_counter("smsrules_provider_fallback_total",
                                      "Messages passed on to the next provider of their route.", labels);
    l->m_in_flight = sr_metric_gauge_fn("smsrules_provider_in_flight", "Requests in flight to a provider.", labels,
                                        lane_in_flight, l);
    l->m_latency = sr_metric_histogram("smsrules_provider_request_seconds", "Provider request latency.", labels, bounds,
                                       (int)(sizeof bounds / sizeof bounds[0]));
    l->m_circuit =
        sr_metric_gauge("smsrules_provider_circuit_state", "Circuit breaker: 0 closed, 1 open, 2 half-open.", labels);
}

/* ---- lifecycle ---- */

/* Messages left `sending` by a process that is gone (this one's predecessor; in cluster mode also
 * a node gone silent) go back to the queue, to be resent. In cluster mode the requeue's status
 * check makes sure one node does it. */
static void sched_recover(sr_scheduler *s) {
    char ids[256][SR_ID_LEN + 1];
    char after[SR_ID_LEN + 1] = "";
    int total = 0;
    for (;;) {
        int n = sr_store_list_status(s->store, SR_ST_SENDING, after[0] ? after : NULL, ids, 256);
        if (n <= 0) break;
        for (int i = 0; i < n; i++) {
            /* A live node's (or this process's own, or one being requeued): not ours to resend. */
            if (sched_is_claimed(s, ids[i]) || !sr_store_orphaned(s->store, SR_ORPHAN_SENDING, ids[i], SR_ID_LEN))
                continue;
            sched_job *j = sched_claim(s, ids[i]);
            j->change.kind = CH_CRASH_REQUEUE;
            j->change.now_ms = sr_now_ms();
            sched_transition(s, j);
            total++;
        }
        sr_str_copy(after, sizeof after, ids[n - 1]);
        if (n < 256) break;
    }
    if (total > 0) sr_warn("messages left sending by a stop without drain are resent", "count", sr_log_num(total));
}

void sr_scheduler_take_over(sr_scheduler *s) {
    if (!s->stopping) sched_recover(s);
}

/* A committed unit left messages queued (from the API, a handler, a report's fallback, a retry). */
static void sched_on_queue(const sr_store_event *ev, void *ud) {
    (void)ev;
    sr_scheduler *s = ud;
    s->backlog = 1;
    sr_scheduler_kick(s);
}

void sr_scheduler_set_rules(sr_scheduler *s, sr_rules *rules) {
    s->rules = rules;
    for (int i = 0; i < s->lane_count; i++) s->lanes[i].p = NULL;
    for (int i = 0; rules && i < rules->provider_count; i++) {
        sr_provider *p = &rules->providers[i];
        int found = -1;
        for (int k = 0; k < s->lane_count; k++)
            if (strcmp(s->lanes[k].name, p->name) == 0) found = k;
        if (found < 0) {
            if (s->lane_count == SCHED_MAX_LANES) {
                sr_error("too many providers over reloads; restart to add more", "provider", p->name);
                continue;
            }
            found = s->lane_count++;
            lane *l = &s->lanes[found];
            sr_str_copy(l->name, sizeof l->name, p->name);
            l->tat = sr_rate_lanes_lane(s->rates, l->name);
            l->pending_tail = &l->pending;
            l->ready_tail = &l->ready;
            lane_metrics(l);
        }
        /* Rate, circuit and counters carry over; limits come from the new rules. */
        s->lanes[found].p = p;
    }
    if (!s->stopping) sr_scheduler_kick(s);
}

int sr_scheduler_start(sr_scheduler **out, uv_loop_t *loop, sr_store *store, sr_rules *rules, sr_http_client *client,
                       sr_rate_lanes *rates, const sr_config *config) {
    sr_scheduler *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->loop = loop;
    s->rates = rates;
    s->store = store;
    s->client = client;
    s->config = config;
    /* Lanes are never removed (requests in flight refer to them by index):
     * a reload matches them by provider name and adds new ones. */
    s->lanes = calloc(SCHED_MAX_LANES, sizeof(lane));
    if (!s->lanes) abort();
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    uv_timer_init(loop, &s->outcome_timer);
    s->outcome_timer.data = s;
    s->timers_open = 2;
    s->backlog = 1; /* until the first pump pass has looked at the queue */
    s->rules = NULL;
    sr_scheduler_set_rules(s, rules);
    s->m_crash = sr_metric_counter("smsrules_resent_after_crash_total",
                                   "Messages found `sending` at start (outcome unknown) and sent again.", NULL);
    s->m_expired = sr_metric_counter("smsrules_messages_expired_total", "Messages whose validity ended unsent.", NULL);
    s->m_rejected =
        sr_metric_counter("smsrules_messages_rejected_total", "Messages rejected by rules (opt-out).", NULL);
    s->m_unrecorded =
        sr_metric_gauge("smsrules_outcomes_unrecorded",
                        "Provider answers whose write failed (store full), kept to be written again.", NULL);
    s->m_outcome_retries =
        sr_metric_counter("smsrules_outcome_write_retries_total",
                          "Writes of provider answers tried again after the store refused them.", NULL);
    s->m_queue =
        sr_metric_gauge_fn("smsrules_queue_depth", "Messages queued (due or later).", NULL, sched_queue_depth, s);
    sr_metric_gauge_fn("smsrules_queue_oldest_due_seconds",
                       "How long the most overdue queued message has waited past its due time (0: none due).", NULL,
                       sched_queue_oldest_due, s);
    sched_recover(s);
    s->queue_sub = (sr_store_subscriber){.kind = SR_STORE_EV_QUEUE, .fn = sched_on_queue, .ud = s};
    sr_store_subscribe(store, &s->queue_sub);
    sr_scheduler_kick(s);
    *out = s;
    return 0;
}

void sr_scheduler_stop(sr_scheduler *s, void (*done)(void *ud), void *ud) {
    s->stopping = 1;
    uv_timer_stop(&s->timer);
    /* Before done is set: releasing them must not end the stop halfway. Requests still being marked are
     * dropped the same way when their marks commit (sched_marked). */
    for (int i = 0; i < s->lane_count; i++) lane_drop_ready(s, &s->lanes[i]);
    s->stop_done = done;
    s->stop_ud = ud;
    sched_check_stopped(s);
}

static void sched_timer_closed(uv_handle_t *h) {
    sr_scheduler *s = h->data;
    if (--s->timers_open == 0) free(s);
}

void sr_scheduler_abandon_unrecorded(sr_scheduler *s) {
    if (!s) return;
    s->abandon_unrecorded = 1;
    if (!s->unrecorded) return;
    sr_error("stopping with send outcomes still unwritten: those messages stay `sending` and are sent again at "
             "the next start",
             "count", sr_log_num(s->unrecorded_count));
    uv_timer_stop(&s->outcome_timer);
    sched_job *list = sched_take_unrecorded(s);
    for (sched_job *j = list, *next; j; j = next) {
        next = j->unext;
        sched_request *rq = j->req;
        if (--rq->units_pending == 0) sched_request_free(rq);
        sched_release(s, j);
    }
}

void sr_scheduler_free(sr_scheduler *s) {
    if (!s) return;
    sr_store_unsubscribe(s->store, &s->queue_sub);
    uv_close((uv_handle_t *)&s->timer, sched_timer_closed);
    uv_close((uv_handle_t *)&s->outcome_timer, sched_timer_closed);
    for (int i = 0; i < s->lane_count; i++) {
        sched_job *next;
        for (sched_job *j = s->lanes[i].pending; j; j = next) {
            next = j->next;
            sr_message_free(&j->msg);
            free(j);
        }
        /* Ready requests are dropped by the stop; without one, their messages stay `sending` too. */
        for (sched_request *rq = s->lanes[i].ready, *rq_next; rq; rq = rq_next) {
            rq_next = rq->next;
            for (sched_job *j = rq->jobs; j; j = next) {
                next = j->next;
                sr_message_free(&j->msg);
                free(j);
            }
            sched_request_free(rq);
        }
    }
    free(s->lanes);
    /* s itself is freed by the timer's close callback. */
}

/* ---- POST /v1/messages/{id}/retry ---- */

typedef struct sched_retry {
    sr_scheduler *s;
    sched_change change;
    void (*cb)(int, void *);
    void *ud;
} sched_retry;

static void sched_retry_done(sr_store_txn *t, void *ud) {
    sched_retry *r = ud;
    int st = sr_store_txn_status(t);
    r->cb(st, r->ud); /* back in the queue: the store tells the engine */
    free(r);
}

void sr_scheduler_retry(sr_scheduler *s, const char *id, void (*cb)(int code, void *ud), void *ud) {
    sched_retry *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->s = s;
    r->cb = cb;
    r->ud = ud;
    r->change.kind = CH_REQUEUE_FAILED;
    r->change.now_ms = sr_now_ms();
    sr_store_txn *t = sr_store_txn_new(s->store);
    sr_store_txn_update_message(t, id, sched_apply, &r->change);
    sr_store_txn_submit(t, sched_retry_done, r);
}

int sr_scheduler_lane_info(sr_scheduler *s, const char *provider, int64_t now_ms, sr_lane_info *out) {
    int li = s ? sched_lane_index(s, provider) : -1;
    if (li < 0) return -1;
    const lane *l = &s->lanes[li];
    out->circuit = circuit_names[l->circuit];
    out->in_flight = l->requests_in_flight;
    out->marking = l->marking;
    out->ready = l->ready_count;
    out->pending = l->pending_count;
    out->rate_used = 0;
    int64_t now_us = now_ms * 1000; /* the GCRA's time is µs (core/gcra.h) */
    if (l->p && l->p->rate_per_s > 0 && l->tat && l->tat->tat_us > now_us)
        out->rate_used = (double)(l->tat->tat_us - now_us) * sr_rate_lane_rate(l->tat, l->p) / 1e6;
    out->paused_until_ms = l->paused_until_ms > now_ms ? l->paused_until_ms : 0;
    return 0;
}
