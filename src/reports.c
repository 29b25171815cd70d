#include "reports.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "rules_exec.h"
#include "scheduler.h"

#define REPORTS_TICK_MS 1000
#define REPORTS_SWEEP_MS 2000
#define REPORTS_SCAN_MAX 1024
#define REPORTS_SWEEP_MAX 1000
#define REPORTS_CLAIM_BUCKETS 4096
#define POLL_FIRST_MS 5000
#define POLL_MAX_INTERVAL_MS 60000
#define POLL_TIMEOUT_MS 15000
#define PARK_KEY_MAX 512

typedef struct claim {
    char id[SR_ID_LEN + 1];
    struct claim *next;
} claim;

struct sr_reports {
    uv_loop_t *loop;
    sr_store *store;
    sr_scheduler *sched;
    sr_rules *rules;
    sr_http_client *client;
    const sr_config *config;
    uv_timer_t *timer;
    int stopping;
    void (*stop_done)(void *);
    void *stop_ud;
    int inflight; /* units and polls whose completion has not run */
    int64_t next_sweep_ms;
    char sweep_after[PARK_KEY_MAX];
    size_t sweep_after_len;
    claim *claimed[REPORTS_CLAIM_BUCKETS]; /* messages a watch unit or a poll holds */
    struct unpark_job *unparking;          /* parked keys being applied now (a short list) */
    sr_metric *m_matched, *m_duplicate, *m_parked, *m_unparked, *m_orphaned, *m_fallback_report,
        *m_fallback_timeout, *m_late, *m_risk, *m_latency, *m_polls, *m_poll_errors;
};

/* ---- claims ---- */

static unsigned reports_hash(const char *id) {
    return sr_fnv1a_str(SR_FNV1A_INIT, id) % REPORTS_CLAIM_BUCKETS;
}

static int reports_claimed(sr_reports *R, const char *id) {
    for (claim *c = R->claimed[reports_hash(id)]; c; c = c->next)
        if (strcmp(c->id, id) == 0) return 1;
    return 0;
}

static void reports_claim(sr_reports *R, const char *id) {
    claim *c = calloc(1, sizeof *c);
    if (!c) abort();
    snprintf(c->id, sizeof c->id, "%s", id);
    unsigned h = reports_hash(id);
    c->next = R->claimed[h];
    R->claimed[h] = c;
}

static void reports_unclaim(sr_reports *R, const char *id) {
    for (claim **pp = &R->claimed[reports_hash(id)]; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, id) == 0) {
            claim *c = *pp;
            *pp = c->next;
            free(c);
            return;
        }
    }
}

static void reports_check_stopped(sr_reports *R) {
    if (R->stopping && R->inflight == 0 && R->stop_done) {
        void (*done)(void *) = R->stop_done;
        R->stop_done = NULL;
        done(R->stop_ud);
    }
}

/* ---- watch times ---- */

static int64_t reports_deadline(const sr_message *m) {
    if (m->dlr_timeout_s <= 0 || m->route_index + 1 >= m->route_len || m->sent_at_ms == 0) return 0;
    return m->sent_at_ms + (int64_t)m->dlr_timeout_s * 1000;
}

/* The next watch time of a sent message (polls made so far in m->polls). */
static int64_t reports_next_watch(const sr_message *m, int poll, int64_t now, int64_t max_age_ms) {
    int64_t deadline = reports_deadline(m), next_poll = 0;
    if (poll) {
        int64_t interval = POLL_FIRST_MS;
        for (int i = 0; i < m->polls && interval < POLL_MAX_INTERVAL_MS; i++) interval *= 2;
        if (interval > POLL_MAX_INTERVAL_MS) interval = POLL_MAX_INTERVAL_MS;
        next_poll = (m->polls == 0 ? m->sent_at_ms : now) + interval;
        if (next_poll - m->sent_at_ms > max_age_ms) next_poll = 0;
    }
    if (deadline == 0) return next_poll;
    if (next_poll == 0) return deadline;
    return deadline < next_poll ? deadline : next_poll;
}

int64_t sr_reports_next_watch(const sr_message *m, int poll, int64_t now_ms, int64_t max_age_ms) {
    return reports_next_watch(m, poll, now_ms, max_age_ms);
}

/* ---- applying one report (mutator: the store's writer thread; touches m and the arg only) ---- */

typedef struct apply_arg {
    char provider[72];
    sr_report rep;
    int64_t now;
    int poll_round;      /* a poll's answer: count the poll and plan the next one */
    int provider_polls;  /* the provider polls (for the next watch time) */
    int64_t max_age_ms;
    int must_match;      /* 0: an attempt that cannot be found fails the unit (the report is parked) */
    /* set by the mutator (each run starts them afresh) */
    int changed;         /* the message's status changed */
    int recorded;        /* anything was recorded */
    int fallback;        /* sent on to the next provider */
    int late;            /* a late delivered for an earlier attempt */
    int risk;            /* ... while a later attempt was already out */
    char id[SR_ID_LEN + 1];
    char park_key[PARK_KEY_MAX];
    size_t park_key_len;
} apply_arg;

static int reports_same_pid(const char *a, const char *b) {
    if (!a || !b) return 0;
    char na[256], nb[256];
    sr_store_normalize_provider_id(a, na, sizeof na);
    sr_store_normalize_provider_id(b, nb, sizeof nb);
    return na[0] && strcmp(na, nb) == 0;
}

static int reports_attempt_of(const sr_message *m, const apply_arg *a) {
    for (int i = m->attempt_count - 1; i >= 0; i--) {
        const sr_attempt *t = &m->attempts[i];
        if (t->provider && strcmp(t->provider, a->provider) == 0 && a->rep.provider_id[0]
            && reports_same_pid(t->provider_id, a->rep.provider_id))
            return i;
    }
    if (a->rep.message_id[0] && strcmp(a->rep.message_id, m->id) == 0) {
        /* Matched by our id: the latest attempt on that provider that was accepted. */
        for (int i = m->attempt_count - 1; i >= 0; i--) {
            const sr_attempt *t = &m->attempts[i];
            if (t->provider && strcmp(t->provider, a->provider) == 0 && t->provider_id) return i;
        }
    }
    return -1;
}

/* Plans the next poll of a polled message. Returns 1 when it changed m. */
static int reports_poll_advance(sr_message *m, apply_arg *a) {
    if (!a->poll_round || m->status != SR_ST_SENT) return 0;
    m->polls++;
    m->watch_at_ms = reports_next_watch(m, a->provider_polls, a->now, a->max_age_ms);
    return 1;
}

/* On to the next provider of the route. */
static void reports_fallback(sr_message *m, int64_t now, const char *why) {
    m->route_index++;
    m->next_attempt_at_ms = 0;
    m->watch_at_ms = 0;
    sr_message_set_str(&m->error, why);
    sr_message_set_status(m, SR_ST_QUEUED, now);
}

/* Records part `part` of `total` with status st in *slot ('.' = not yet). Returns the combined status
 * once every part reported (delivered when all were, else the first other outcome), -1 while parts
 * are missing, -2 when this part had reported already (a duplicate). */
static int reports_combine_parts(char **slot, int total, int part, int st) {
    size_t have = *slot ? strlen(*slot) : 0;
    if (have < (size_t)total) {
        char buf[256];
        memset(buf, '.', (size_t)total);
        if (have) memcpy(buf, *slot, have);
        buf[total] = '\0';
        sr_message_set_str(slot, buf);
    }
    if ((*slot)[part - 1] != '.') return -2;
    (*slot)[part - 1] = sr_part_report_char((sr_status)st);
    int combined = SR_ST_DELIVERED;
    for (int i = 0; i < total; i++) {
        int ps = sr_part_report_status((*slot)[i]);
        if (ps < 0) return -1;
        if (ps != SR_ST_DELIVERED && combined == SR_ST_DELIVERED) combined = ps;
    }
    return combined;
}

static int reports_apply_mutator(sr_message *m, void *arg) {
    apply_arg *a = arg;
    a->changed = a->recorded = a->fallback = a->late = a->risk = 0;
    int ai = reports_attempt_of(m, a);
    if (ai < 0) return a->must_match ? SR_E_STATE : (reports_poll_advance(m, a) ? 0 : SR_STORE_UNCHANGED);
    sr_attempt *at = &m->attempts[ai];
    int current = ai == m->attempt_count - 1 && m->status >= SR_ST_SENT;
    int st = a->rep.status;
    int64_t when = a->rep.at_ms > 0 ? a->rep.at_ms : a->now;
    int advanced = reports_poll_advance(m, a);
    if (a->rep.has_cost && current && (!m->has_cost || m->cost != a->rep.cost)) {
        m->cost = a->rep.cost;
        m->has_cost = 1;
        advanced = 1; /* something to write */
    }
    if (st < 0 || st == SR_ST_ACCEPTED || st == SR_ST_SENT) return advanced ? 0 : SR_STORE_UNCHANGED;

    /* Per-part reports combine: on the message for the current attempt, on the attempt otherwise. */
    if (a->rep.part > 0) {
        int total = a->rep.parts;
        if (current && m->parts > total) total = m->parts;
        if (current && total == 0) total = m->segments;
        if (total > 1 && a->rep.part <= total && total <= 255) {
            if (current && sr_status_is_final(m->status)) return advanced ? 0 : SR_STORE_UNCHANGED;
            int combined = reports_combine_parts(current ? &m->part_reports : &at->part_reports, total,
                                                 a->rep.part, st);
            if (current) m->parts = total;
            if (combined == -2) return advanced ? 0 : SR_STORE_UNCHANGED; /* a duplicate */
            a->recorded = 1;
            if (combined == -1) return 0; /* parts still to report: the message stays as it is */
            st = combined;
        }
    }

    /* Forward only, per attempt: a final report for the attempt stays. */
    if (at->report && sr_status_is_final((sr_status)sr_status_parse(at->report)))
        return a->recorded || advanced ? 0 : SR_STORE_UNCHANGED;
    sr_message_set_str(&at->report, sr_status_name((sr_status)st));
    at->reported_at_ms = when;
    a->recorded = 1;

    if (!current) {
        /* A report for an earlier attempt (the message went on to another provider). */
        if (st == SR_ST_DELIVERED && !sr_status_is_final(m->status)) {
            a->late = 1;
            a->risk = m->status == SR_ST_SENDING || m->status == SR_ST_SENT;
            a->changed = 1;
            m->watch_at_ms = 0;
            sr_message_set_str(&m->error, NULL);
            sr_message_set_status(m, SR_ST_DELIVERED, when);
        }
        return 0;
    }
    if (sr_status_is_final(m->status)) return 0; /* recorded on the attempt; the message stays */
    if ((m->fallback_on & (1 << st)) && m->route_index + 1 < m->route_len) {
        char why[200];
        snprintf(why, sizeof why, "%s on %.64s%s%.80s; next provider", sr_status_name((sr_status)st), a->provider,
                 a->rep.error[0] ? ": " : "", a->rep.error);
        reports_fallback(m, a->now, why);
        a->fallback = 1;
        return 0;
    }
    m->watch_at_ms = 0;
    if (st == SR_ST_DELIVERED) {
        sr_message_set_str(&m->error, NULL);
    } else {
        char why[300];
        snprintf(why, sizeof why, "%s%s%.200s", a->rep.raw_status[0] ? a->rep.raw_status : sr_status_name((sr_status)st),
                 a->rep.error[0] ? ": " : "", a->rep.error);
        sr_message_set_str(&m->error, why);
    }
    sr_message_set_status(m, (sr_status)st, when);
    a->changed = 1;
    return 0;
}

/* The watch time came: a missed report deadline sends the message on; otherwise plan the next look. */
static int reports_watch_mutator(sr_message *m, void *arg) {
    apply_arg *a = arg;
    a->changed = a->recorded = a->fallback = a->late = a->risk = 0;
    if (m->status != SR_ST_SENT || m->watch_at_ms == 0 || m->watch_at_ms > a->now) return SR_STORE_UNCHANGED;
    int64_t deadline = reports_deadline(m);
    if (deadline && deadline <= a->now) {
        char why[160];
        snprintf(why, sizeof why, "no final report from %.64s within %d s; next provider", m->provider ? m->provider : "?",
                 m->dlr_timeout_s);
        sr_attempt *at = m->attempt_count ? &m->attempts[m->attempt_count - 1] : NULL;
        if (at && !at->error) sr_message_set_str(&at->error, "no final report in time");
        reports_fallback(m, a->now, why);
        a->fallback = 1;
        return 0;
    }
    int64_t next = reports_next_watch(m, a->provider_polls, a->now, a->max_age_ms);
    if (next == m->watch_at_ms) return SR_STORE_UNCHANGED;
    m->watch_at_ms = next;
    return 0;
}

/* ---- after a commit ---- */

static void reports_after(sr_reports *R, const apply_arg *a, const sr_store_txn *t, int slot, int fallback_is_timeout) {
    const sr_message *m = sr_store_txn_message(t, slot);
    if (!m) return;
    if (a->fallback) {
        if (fallback_is_timeout) R->m_fallback_timeout->value++;
        else R->m_fallback_report->value++;
        sr_info("report: on to the next provider", "id", m->id, "reason", m->error ? m->error : "");
        if (R->sched) sr_scheduler_kick(R->sched);
    }
    if (a->late) {
        R->m_late->value++;
        if (a->risk) R->m_risk->value++;
    }
    if (!fallback_is_timeout) {
        if (a->recorded || a->changed || a->fallback) R->m_matched->value++;
        else if (a->rep.status >= 0 && a->rep.status != SR_ST_ACCEPTED && a->rep.status != SR_ST_SENT)
            R->m_duplicate->value++;
    }
    if (a->changed && sr_status_is_final(m->status)) {
        if (m->sent_at_ms > 0) {
            int64_t at = m->history_count ? m->history[m->history_count - 1].at_ms : sr_now_ms();
            double secs = (double)(at - m->sent_at_ms) / 1000.0;
            sr_metric_observe(R->m_latency, secs < 0 ? 0 : secs);
        }
    }
    sr_rules_status_committed(R->rules, R->store, t, slot);
}

/* ---- parking ---- */

static size_t reports_park_key(const char *provider, const sr_report *rep, char *out, size_t outlen) {
    size_t plen = strlen(provider);
    if (plen + 2 >= outlen) return 0;
    memcpy(out, provider, plen);
    out[plen] = '\0';
    size_t n;
    if (rep->provider_id[0]) {
        n = sr_store_normalize_provider_id(rep->provider_id, out + plen + 1, outlen - plen - 1);
    } else {
        out[plen + 1] = '#';
        n = 1 + (size_t)snprintf(out + plen + 2, outlen - plen - 2, "%s", rep->message_id);
    }
    return n ? plen + 1 + n : 0;
}

static void reports_serialise(const sr_report *rep, int64_t parked_at, sr_buf *out) {
    sr_buf_puts(out, "{\"p\":");
    sr_buf_json_str(out, rep->provider_id, strlen(rep->provider_id));
    sr_buf_puts(out, ",\"m\":");
    sr_buf_json_str(out, rep->message_id, strlen(rep->message_id));
    sr_buf_puts(out, ",\"r\":");
    sr_buf_json_str(out, rep->raw_status, strlen(rep->raw_status));
    sr_buf_puts(out, ",\"e\":");
    sr_buf_json_str(out, rep->error, strlen(rep->error));
    sr_buf_puts(out, ",\"s\":");
    sr_buf_put_i64(out, rep->status);
    sr_buf_puts(out, ",\"a\":");
    sr_buf_put_i64(out, rep->at_ms);
    sr_buf_puts(out, ",\"n\":");
    sr_buf_put_i64(out, rep->part);
    sr_buf_puts(out, ",\"t\":");
    sr_buf_put_i64(out, rep->parts);
    if (rep->has_cost) sr_buf_printf(out, ",\"c\":%.10g", rep->cost);
    sr_buf_puts(out, ",\"k\":");
    sr_buf_put_i64(out, parked_at);
    sr_buf_puts(out, "}\n");
}

static void reports_json_str(const sr_json *o, const char *key, char *out, size_t outlen) {
    const sr_json *v = sr_json_get(o, key);
    out[0] = '\0';
    if (v && v->type == SR_JSON_STRING) snprintf(out, outlen, "%.*s", (int)v->len, v->str);
}

static int64_t reports_json_int(const sr_json *o, const char *key) {
    const sr_json *v = sr_json_get(o, key);
    int64_t x = 0;
    return v && sr_json_is_integer(v, &x) ? x : 0;
}

/* Parses parked lines into reps (at most max). Returns the count; *used is
 * the bytes of the lines read (unreadable lines count as read). */
static int reports_deserialise(const char *data, size_t len, sr_report *reps, int max, size_t *used) {
    int n = 0;
    size_t i = 0;
    while (i < len && n < max) {
        size_t end = i;
        while (end < len && data[end] != '\n') end++;
        sr_json_doc doc;
        if (end > i && sr_json_parse(&doc, data + i, end - i, NULL, 0) == 0) {
            if (doc.root->type == SR_JSON_OBJECT) {
                sr_report *r = &reps[n];
                memset(r, 0, sizeof *r);
                reports_json_str(doc.root, "p", r->provider_id, sizeof r->provider_id);
                reports_json_str(doc.root, "m", r->message_id, sizeof r->message_id);
                reports_json_str(doc.root, "r", r->raw_status, sizeof r->raw_status);
                reports_json_str(doc.root, "e", r->error, sizeof r->error);
                r->status = (int)reports_json_int(doc.root, "s");
                r->at_ms = reports_json_int(doc.root, "a");
                r->part = (int)reports_json_int(doc.root, "n");
                r->parts = (int)reports_json_int(doc.root, "t");
                const sr_json *c = sr_json_get(doc.root, "c");
                if (c && c->type == SR_JSON_NUMBER) {
                    r->cost = c->num;
                    r->has_cost = 1;
                }
                n++;
            }
            sr_json_doc_free(&doc);
        }
        i = end + 1;
    }
    *used = i < len ? i : len;
    return n;
}

/* Where a report's message is: by our id when the provider echoes it, else by provider id. */
static int reports_lookup(sr_reports *R, const char *provider, const sr_report *rep, char id[SR_ID_LEN + 1]) {
    if (rep->message_id[0] && sr_id_valid(rep->message_id, strlen(rep->message_id))) {
        sr_message m;
        int rc = sr_store_get_message(R->store, rep->message_id, &m);
        int ok = rc == 0 && m.provider && strcmp(m.provider, provider) == 0;
        sr_message_free(&m);
        if (ok) {
            memcpy(id, rep->message_id, SR_ID_LEN);
            id[SR_ID_LEN] = '\0';
            return 0;
        }
    }
    if (!rep->provider_id[0]) return SR_E_NOTFOUND;
    return sr_store_find_provider_id(R->store, provider, rep->provider_id, id);
}

typedef struct unpark_job {
    sr_reports *R;
    struct unpark_job *next; /* in R->unparking */
    int again;               /* asked for again while in flight: more may have been parked */
    int n;
    char key[PARK_KEY_MAX];
    size_t key_len;
    char provider[72];
    char id[SR_ID_LEN + 1];
    apply_arg args[];
} unpark_job;

static void reports_unpark(sr_reports *R, const char *provider, const char *key, size_t key_len, const char *id);

static void reports_unpark_done(sr_store_txn *t, void *ud) {
    unpark_job *u = ud;
    sr_reports *R = u->R;
    for (unpark_job **pp = &R->unparking; *pp; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    }
    if (sr_store_txn_status(t) == 0) {
        R->m_unparked->value += u->n;
        for (int i = 0; i < u->n; i++) reports_after(R, &u->args[i], t, i, 0);
    } else {
        sr_warn("report: parked reports could not be applied", "error", sr_store_strerror(sr_store_txn_status(t)));
    }
    if (u->again) reports_unpark(R, u->provider, u->key, u->key_len, u->id);
    free(u);
    R->inflight--;
    reports_check_stopped(R);
}

/* Applies the reports parked under key to message id, and removes exactly
 * those from the key (reports parked meanwhile stay for the next look). One
 * look per key at a time: asked again while one is in flight, it looks again
 * once that one is committed, so no report is applied twice. */
static void reports_unpark(sr_reports *R, const char *provider, const char *key, size_t key_len, const char *id) {
    for (unpark_job *j = R->unparking; j; j = j->next) {
        if (j->key_len == key_len && memcmp(j->key, key, key_len) == 0) {
            j->again = 1;
            return;
        }
    }
    sr_buf val;
    sr_buf_init(&val);
    if (sr_store_get(R->store, SR_SPACE_PARKED, key, key_len, sr_now_ms(), &val, NULL) != 0 || val.len == 0) {
        sr_buf_free(&val);
        return;
    }
    sr_report reps[64];
    size_t used = 0;
    int n = reports_deserialise(val.data, val.len, reps, 64, &used);
    unpark_job *u = calloc(1, sizeof *u + sizeof(apply_arg) * (size_t)(n ? n : 1));
    if (!u) abort();
    u->R = R;
    u->n = n;
    memcpy(u->key, key, key_len);
    u->key_len = key_len;
    snprintf(u->provider, sizeof u->provider, "%s", provider);
    snprintf(u->id, sizeof u->id, "%s", id);
    sr_store_txn *t = sr_store_txn_new(R->store);
    int64_t now = sr_now_ms();
    for (int i = 0; i < n; i++) {
        apply_arg *a = &u->args[i];
        snprintf(a->provider, sizeof a->provider, "%s", provider);
        a->rep = reps[i];
        a->now = now;
        snprintf(a->id, sizeof a->id, "%s", id);
        sr_store_txn_update_message(t, id, reports_apply_mutator, a);
    }
    /* Past 64 reports the rest stay: the look after this one takes them. */
    sr_store_txn_consume(t, SR_SPACE_PARKED, u->key, u->key_len, val.data, used);
    u->again = used < val.len;
    sr_buf_free(&val);
    u->next = R->unparking;
    R->unparking = u;
    R->inflight++;
    sr_rules_owe_status(R->rules, t);
    sr_store_txn_submit(t, reports_unpark_done, u);
}

void sr_reports_on_sent(sr_reports *R, const sr_message *m) {
    if (!R || !m->provider || !m->provider_id) return;
    char key[PARK_KEY_MAX];
    sr_report rep;
    memset(&rep, 0, sizeof rep);
    snprintf(rep.provider_id, sizeof rep.provider_id, "%s", m->provider_id);
    size_t n = reports_park_key(m->provider, &rep, key, sizeof key);
    if (n) reports_unpark(R, m->provider, key, n, m->id);
    memset(&rep, 0, sizeof rep);
    snprintf(rep.message_id, sizeof rep.message_id, "%s", m->id);
    n = reports_park_key(m->provider, &rep, key, sizeof key);
    if (n) reports_unpark(R, m->provider, key, n, m->id);
}

/* ---- applying a webhook's or a poll's reports ---- */

typedef struct apply_batch {
    sr_reports *R;
    int pending;
    int code;
    void (*cb)(int code, void *ud);
    void *ud;
} apply_batch;

typedef struct apply_one {
    apply_batch *b;
    apply_arg a;
    int parking;
} apply_one;

static void reports_one_finished(apply_one *o, int code) {
    apply_batch *b = o->b;
    sr_reports *R = b->R;
    if (code && !b->code) b->code = code;
    free(o);
    R->inflight--;
    if (--b->pending == 0) {
        if (b->cb) b->cb(b->code, b->ud);
        free(b);
    }
    reports_check_stopped(R);
}

static void reports_park(sr_reports *R, apply_one *o);

static void reports_parked_done(sr_store_txn *t, void *ud) {
    apply_one *o = ud;
    sr_reports *R = o->b->R;
    int st = sr_store_txn_status(t);
    if (st == 0) {
        R->m_parked->value++;
        /* The send answer may have been recorded while this report was parking: look again. */
        char id[SR_ID_LEN + 1];
        if (reports_lookup(R, o->a.provider, &o->a.rep, id) == 0)
            reports_unpark(R, o->a.provider, o->a.park_key, o->a.park_key_len, id);
    }
    reports_one_finished(o, st);
}

static void reports_park(sr_reports *R, apply_one *o) {
    o->a.park_key_len = reports_park_key(o->a.provider, &o->a.rep, o->a.park_key, sizeof o->a.park_key);
    if (o->a.park_key_len == 0) {
        reports_one_finished(o, 0);
        return;
    }
    int64_t now = sr_now_ms();
    sr_buf line;
    sr_buf_init(&line);
    reports_serialise(&o->a.rep, now, &line);
    sr_store_txn *t = sr_store_txn_new(R->store);
    sr_store_txn_append(t, SR_SPACE_PARKED, o->a.park_key, o->a.park_key_len, line.data, line.len,
                        now + (int64_t)R->config->dlr_orphan_after_s * 1000);
    sr_buf_free(&line);
    sr_store_txn_submit(t, reports_parked_done, o);
}

static void reports_applied_done(sr_store_txn *t, void *ud) {
    apply_one *o = ud;
    sr_reports *R = o->b->R;
    int st = sr_store_txn_status(t);
    if (st == SR_E_STATE || st == SR_E_NOTFOUND) {
        /* The message is not at the point the report speaks of yet (its send answer is not recorded). */
        reports_park(R, o);
        return;
    }
    if (st == 0) reports_after(R, &o->a, t, 0, 0);
    reports_one_finished(o, st);
}

void sr_reports_apply(sr_reports *R, const char *provider, const sr_report *reps, int n,
                      void (*cb)(int code, void *ud), void *ud) {
    if (n <= 0) {
        if (cb) cb(0, ud);
        return;
    }
    apply_batch *b = calloc(1, sizeof *b);
    if (!b) abort();
    b->R = R;
    b->pending = n;
    b->cb = cb;
    b->ud = ud;
    int64_t now = sr_now_ms();
    for (int i = 0; i < n; i++) {
        apply_one *o = calloc(1, sizeof *o);
        if (!o) abort();
        o->b = b;
        snprintf(o->a.provider, sizeof o->a.provider, "%s", provider);
        o->a.rep = reps[i];
        o->a.now = now;
        o->a.must_match = 1;
        R->inflight++;
        if (reports_lookup(R, provider, &reps[i], o->a.id) != 0) {
            reports_park(R, o);
            continue;
        }
        sr_store_txn *t = sr_store_txn_new(R->store);
        sr_store_txn_update_message(t, o->a.id, reports_apply_mutator, &o->a);
        sr_rules_owe_status(R->rules, t);
        sr_store_txn_submit(t, reports_applied_done, o);
    }
}

/* ---- watching: deadlines and polls ---- */

typedef struct watch_job {
    sr_reports *R;
    int n;
    int timeout_only; /* a watch unit, not a poll's answer */
    apply_arg args[];
} watch_job;

static void reports_watch_done(sr_store_txn *t, void *ud) {
    watch_job *w = ud;
    sr_reports *R = w->R;
    int st = sr_store_txn_status(t);
    if (st != 0) sr_warn("report: watch update failed", "error", sr_store_strerror(st));
    for (int i = 0; i < w->n; i++) {
        if (st == 0) reports_after(R, &w->args[i], t, i, w->timeout_only);
        reports_unclaim(R, w->args[i].id);
    }
    free(w);
    R->inflight--;
    reports_check_stopped(R);
}

static watch_job *reports_watch_job(sr_reports *R, int n) {
    watch_job *w = calloc(1, sizeof *w + sizeof(apply_arg) * (size_t)(n ? n : 1));
    if (!w) abort();
    w->R = R;
    w->n = n;
    return w;
}

typedef struct poll_req {
    sr_reports *R;
    sr_rules *rules; /* retained */
    const sr_provider *p;
    int n;
    char ids[500][SR_ID_LEN + 1];
    char *pids[500];
    int polls; /* provider polls */
} poll_req;

static void poll_req_free(poll_req *q) {
    for (int i = 0; i < q->n; i++) free(q->pids[i]);
    sr_rules_release(q->rules);
    free(q);
}

/* Records a poll's reports (reps may be empty: nothing new) and plans the next polls. */
static void reports_poll_record(poll_req *q, const sr_report *reps, int nreps) {
    sr_reports *R = q->R;
    watch_job *w = reports_watch_job(R, q->n);
    sr_store_txn *t = sr_store_txn_new(R->store);
    int64_t now = sr_now_ms();
    for (int i = 0; i < q->n; i++) {
        apply_arg *a = &w->args[i];
        snprintf(a->provider, sizeof a->provider, "%s", q->p->name);
        snprintf(a->id, sizeof a->id, "%s", q->ids[i]);
        a->now = now;
        a->poll_round = 1;
        a->provider_polls = 1;
        a->max_age_ms = (int64_t)R->config->poll_max_age_s * 1000;
        a->rep.status = -1;
        snprintf(a->rep.provider_id, sizeof a->rep.provider_id, "%s", q->pids[i]);
        for (int k = 0; k < nreps; k++) {
            if (!reports_same_pid(reps[k].provider_id, q->pids[i])) continue;
            /* The most final answer wins when several speak of one id. */
            if (a->rep.status < 0 || sr_status_is_final((sr_status)reps[k].status)) a->rep = reps[k];
        }
        sr_store_txn_update_message(t, a->id, reports_apply_mutator, a);
    }
    R->inflight++;
    sr_rules_owe_status(R->rules, t);
    sr_store_txn_submit(t, reports_watch_done, w);
}

static void reports_poll_answered(const sr_http_client_response *resp, void *ud) {
    poll_req *q = ud;
    sr_reports *R = q->R;
    sr_report *reps = NULL;
    int n = 0;
    R->m_polls->value++;
    if (resp->error != 0) {
        R->m_poll_errors->value++;
        sr_warn("status poll failed", "provider", q->p->name, "error", resp->error_message ? resp->error_message : "");
    } else {
        char err[300];
        if (sr_adapter_parse_poll(q->rules, q->p, (const char *const *)q->pids, q->n, resp->status, resp->body,
                                  resp->body_len, &reps, &n, err, sizeof err)
            != 0) {
            R->m_poll_errors->value++;
            sr_warn("status poll answer not understood", "provider", q->p->name, "error", err);
        }
    }
    if (R->stopping) {
        for (int i = 0; i < q->n; i++) reports_unclaim(R, q->ids[i]);
    } else {
        reports_poll_record(q, reps, n);
    }
    free(reps);
    poll_req_free(q);
    R->inflight--;
    reports_check_stopped(R);
}

static void reports_poll_start(sr_reports *R, poll_req *q) {
    sr_adapter_request req;
    char err[300];
    if (sr_adapter_build_poll(q->rules, q->p, (const char *const *)q->pids, q->n, &req, err, sizeof err) != 0) {
        sr_warn("status poll could not be built", "provider", q->p->name, "error", err);
        R->m_poll_errors->value++;
        R->inflight++;
        reports_poll_record(q, NULL, 0);
        R->inflight--;
        poll_req_free(q);
        return;
    }
    R->inflight++;
    sr_adapter_http_send(R->client, &req, q->p->timeout_ms < POLL_TIMEOUT_MS ? q->p->timeout_ms : POLL_TIMEOUT_MS,
                         reports_poll_answered, q);
}

/* Watch units for messages that need no poll now (a deadline or a new watch time). */
static void reports_watch_units(sr_reports *R, char (*ids)[SR_ID_LEN + 1], const int *polls, int n, int64_t now) {
    if (n == 0) return;
    watch_job *w = reports_watch_job(R, n);
    w->timeout_only = 1;
    sr_store_txn *t = sr_store_txn_new(R->store);
    for (int i = 0; i < n; i++) {
        apply_arg *a = &w->args[i];
        snprintf(a->id, sizeof a->id, "%s", ids[i]);
        a->now = now;
        a->provider_polls = polls[i];
        a->max_age_ms = (int64_t)R->config->poll_max_age_s * 1000;
        sr_store_txn_update_message(t, a->id, reports_watch_mutator, a);
    }
    R->inflight++;
    sr_rules_owe_status(R->rules, t);
    sr_store_txn_submit(t, reports_watch_done, w);
}

static void reports_watch(sr_reports *R, int64_t now) {
    if (!R->rules) return;
    char(*ids)[SR_ID_LEN + 1] = malloc(sizeof(*ids) * REPORTS_SCAN_MAX);
    char(*units)[SR_ID_LEN + 1] = malloc(sizeof(*units) * REPORTS_SCAN_MAX);
    int *unit_polls = malloc(sizeof(int) * REPORTS_SCAN_MAX);
    poll_req *open[SR_MAX_PROVIDERS] = {0};
    if (!ids || !units || !unit_polls) abort();
    int n = sr_store_watch_due(R->store, now, ids, REPORTS_SCAN_MAX, NULL), nunits = 0;
    for (int i = 0; i < n; i++) {
        if (reports_claimed(R, ids[i])) continue;
        sr_message m;
        if (sr_store_get_message(R->store, ids[i], &m) != 0) {
            sr_message_free(&m);
            continue;
        }
        const sr_provider *p = m.provider ? sr_rules_provider(R->rules, m.provider) : NULL;
        int pi = p ? (int)(p - R->rules->providers) : -1;
        int polls = p && p->poll;
        int64_t deadline = reports_deadline(&m);
        int poll_now = m.status == SR_ST_SENT && polls && m.provider_id && (deadline == 0 || deadline > now)
                       && now - m.sent_at_ms <= (int64_t)R->config->poll_max_age_s * 1000;
        if (poll_now) {
            int64_t wake = 0;
            poll_req *q = open[pi];
            if (!q) {
                if (sr_scheduler_take_rate(R->sched, p->name, now, &wake) != 1) {
                    sr_message_free(&m);
                    continue; /* out of rate: next tick */
                }
                q = calloc(1, sizeof *q);
                if (!q) abort();
                q->R = R;
                q->rules = sr_rules_retain(R->rules);
                q->p = p;
                open[pi] = q;
            }
            snprintf(q->ids[q->n], sizeof q->ids[q->n], "%s", ids[i]);
            q->pids[q->n] = strdup(m.provider_id);
            if (!q->pids[q->n]) abort();
            q->n++;
            reports_claim(R, ids[i]);
            int batch = sr_adapter_poll_batch(R->rules, p);
            if (q->n >= batch || q->n >= 500) {
                open[pi] = NULL;
                reports_poll_start(R, q);
            }
        } else {
            snprintf(units[nunits], sizeof units[nunits], "%s", ids[i]);
            unit_polls[nunits++] = polls;
            reports_claim(R, ids[i]);
        }
        sr_message_free(&m);
    }
    for (int i = 0; i < SR_MAX_PROVIDERS; i++)
        if (open[i]) reports_poll_start(R, open[i]);
    reports_watch_units(R, units, unit_polls, nunits, now);
    free(ids);
    free(units);
    free(unit_polls);
}

/* ---- orphans ---- */

typedef struct sweep_scan {
    sr_reports *R;
    int64_t now;
    int count;
    char keys[REPORTS_SWEEP_MAX][PARK_KEY_MAX];
    size_t lens[REPORTS_SWEEP_MAX];
    int expired[REPORTS_SWEEP_MAX];
    int reports[REPORTS_SWEEP_MAX];
} sweep_scan;

static int reports_sweep_cb(const char *key, size_t klen, const char *val, size_t vlen, int64_t expires_at_ms,
                            void *ud) {
    sweep_scan *sc = ud;
    if (klen > PARK_KEY_MAX) return 0;
    int i = sc->count++;
    memcpy(sc->keys[i], key, klen);
    sc->lens[i] = klen;
    sc->expired[i] = expires_at_ms != 0 && expires_at_ms <= sc->now;
    int lines = 0;
    for (size_t k = 0; k < vlen; k++) lines += val[k] == '\n';
    sc->reports[i] = lines;
    return 0;
}

typedef struct orphan_job {
    sr_reports *R;
    int reports;
} orphan_job;

static void reports_orphans_done(sr_store_txn *t, void *ud) {
    orphan_job *o = ud;
    if (sr_store_txn_status(t) == 0) {
        o->R->m_orphaned->value += o->reports;
        if (o->reports) {
            char n[24];
            snprintf(n, sizeof n, "%d", o->reports);
            sr_warn("delivery reports orphaned: no message with their provider id appeared", "count", n);
        }
    }
    o->R->inflight--;
    reports_check_stopped(o->R);
    free(o);
}

static void reports_sweep(sr_reports *R, int64_t now) {
    sweep_scan *sc = calloc(1, sizeof *sc);
    if (!sc) abort();
    sc->R = R;
    sc->now = now;
    int n = sr_store_scan(R->store, SR_SPACE_PARKED, R->sweep_after_len ? R->sweep_after : NULL, R->sweep_after_len,
                          REPORTS_SWEEP_MAX, reports_sweep_cb, sc);
    if (n < REPORTS_SWEEP_MAX) {
        R->sweep_after_len = 0; /* from the start next time */
    } else if (sc->count > 0) {
        memcpy(R->sweep_after, sc->keys[sc->count - 1], sc->lens[sc->count - 1]);
        R->sweep_after_len = sc->lens[sc->count - 1];
    }
    sr_store_txn *t = NULL;
    orphan_job *o = NULL;
    for (int i = 0; i < sc->count; i++) {
        const char *provider = sc->keys[i];
        size_t plen = strnlen(provider, sc->lens[i]);
        if (plen >= sc->lens[i]) continue;
        sr_report rep;
        memset(&rep, 0, sizeof rep);
        const char *rest = sc->keys[i] + plen + 1;
        size_t rlen = sc->lens[i] - plen - 1;
        if (rest[0] == '#') snprintf(rep.message_id, sizeof rep.message_id, "%.*s", (int)rlen - 1, rest + 1);
        else snprintf(rep.provider_id, sizeof rep.provider_id, "%.*s", (int)rlen, rest);
        char id[SR_ID_LEN + 1];
        if (reports_lookup(R, provider, &rep, id) == 0) {
            reports_unpark(R, provider, sc->keys[i], sc->lens[i], id);
        } else if (sc->expired[i]) {
            if (!t) {
                t = sr_store_txn_new(R->store);
                o = calloc(1, sizeof *o);
                if (!o) abort();
                o->R = R;
            }
            /* Only if still expired: a report parked under the key since the scan starts it afresh. */
            sr_store_txn_del_expired(t, SR_SPACE_PARKED, sc->keys[i], sc->lens[i], now);
            o->reports += sc->reports[i];
        }
    }
    if (t) {
        R->inflight++;
        sr_store_txn_submit(t, reports_orphans_done, o);
    }
    free(sc);
}

/* ---- the timer ---- */

static void reports_tick(uv_timer_t *timer) {
    sr_reports *R = timer->data;
    if (R->stopping) return;
    int64_t now = sr_now_ms();
    reports_watch(R, now);
    if (now >= R->next_sweep_ms) {
        R->next_sweep_ms = now + REPORTS_SWEEP_MS;
        reports_sweep(R, now);
    }
}

int sr_reports_start(sr_reports **out, uv_loop_t *loop, sr_store *store, sr_scheduler *sched, sr_rules *rules,
                     sr_http_client *client, const sr_config *config) {
    sr_reports *R = calloc(1, sizeof *R);
    if (!R) return -1;
    R->loop = loop;
    R->store = store;
    R->sched = sched;
    R->rules = rules;
    R->client = client;
    R->config = config;
    R->timer = calloc(1, sizeof *R->timer);
    if (!R->timer) abort();
    uv_timer_init(loop, R->timer);
    R->timer->data = R;
    R->m_matched = sr_metric_counter("smsrules_dlr_reports_total", "Delivery reports received, by result.",
                                     "result=\"matched\"");
    R->m_duplicate = sr_metric_counter("smsrules_dlr_reports_total", "Delivery reports received, by result.",
                                       "result=\"duplicate\"");
    R->m_parked = sr_metric_counter("smsrules_dlr_reports_total", "Delivery reports received, by result.",
                                    "result=\"parked\"");
    R->m_unparked = sr_metric_counter("smsrules_dlr_unparked_total",
                                      "Parked delivery reports matched once their message's provider id was known.",
                                      NULL);
    R->m_orphaned = sr_metric_counter("smsrules_dlr_orphaned_total",
                                      "Parked delivery reports whose message never appeared (dlr_orphan_after).", NULL);
    R->m_fallback_report = sr_metric_counter("smsrules_dlr_fallback_total",
                                             "Messages sent on to the next provider because of a delivery outcome.",
                                             "reason=\"report\"");
    R->m_fallback_timeout = sr_metric_counter("smsrules_dlr_fallback_total",
                                              "Messages sent on to the next provider because of a delivery outcome.",
                                              "reason=\"timeout\"");
    R->m_late = sr_metric_counter("smsrules_dlr_late_delivered_total",
                                  "Delivered reports for an earlier attempt, after the message went on.", NULL);
    R->m_risk = sr_metric_counter("smsrules_double_delivery_risk_total",
                                  "Late delivered reports while a later attempt had been sent too.", NULL);
    static const double bounds[] = {1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 14400, 86400};
    R->m_latency = sr_metric_histogram("smsrules_dlr_latency_seconds", "Time from sent to the final delivery report.",
                                       NULL, bounds, (int)(sizeof bounds / sizeof bounds[0]));
    R->m_polls = sr_metric_counter("smsrules_status_polls_total", "Status poll requests made.", NULL);
    R->m_poll_errors = sr_metric_counter("smsrules_status_poll_errors_total",
                                         "Status polls that failed or were not understood.", NULL);
    R->next_sweep_ms = sr_now_ms() + 1000;
    uv_timer_start(R->timer, reports_tick, REPORTS_TICK_MS, REPORTS_TICK_MS);
    *out = R;
    return 0;
}

void sr_reports_set_rules(sr_reports *R, sr_rules *rules) { R->rules = rules; }

void sr_reports_stop(sr_reports *R, void (*done)(void *ud), void *ud) {
    R->stopping = 1;
    uv_timer_stop(R->timer);
    R->stop_done = done;
    R->stop_ud = ud;
    reports_check_stopped(R);
}

static void reports_timer_closed(uv_handle_t *h) { free(h); }

void sr_reports_free(sr_reports *R) {
    if (!R) return;
    uv_close((uv_handle_t *)R->timer, reports_timer_closed);
    for (int i = 0; i < REPORTS_CLAIM_BUCKETS; i++) {
        claim *c = R->claimed[i];
        while (c) {
            claim *next = c->next;
            free(c);
            c = next;
        }
    }
    free(R);
}

/* ---- for the offline test runner (smsrules test) ---- */

int sr_reports_idle(sr_reports *R) { return R->inflight == 0; }

void sr_reports_tick_now(sr_reports *R) { reports_tick(R->timer); }
