#include "delivery/reports.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "codec/json.h"
#include "codec/jsonw.h"
#include "core/log.h"
#include "core/metrics.h"
#include "model/route_stats.h"
#include "rules/host.h"
#include "rules/rules_exec.h"
#include "delivery/rate_lanes.h"

#define REPORTS_TICK_MS 1000
#define REPORTS_SWEEP_MS 2000
#define REPORTS_SCAN_MAX 1024
#define REPORTS_SWEEP_MAX 1000
#define REPORTS_CLAIM_BUCKETS 4096
#define POLL_FIRST_MS 5000
#define POLL_MAX_INTERVAL_MS 60000
#define POLL_TIMEOUT_MS 15000
#define PARK_KEY_MAX 512
#define PARK_BUCKETS 65536    /* the index of parked records (by key) */
#define PARK_SEQ_HEX 16       /* the hex digits of a record key's sequence number */
#define PARK_UNIT_MAX 1000    /* deletions per unit of an eviction or expiry pass */
#define UNPARK_MAX 64         /* parked reports applied per unpark unit */
#define PARK_EXPIRE_MAX 20000 /* records looked at per expiry pass (a second) */

typedef struct claim {
    char id[SR_ID_LEN + 1];
    struct claim *next;
} claim;

/* One parked record (a report, or several in the older layout), known to the
 * loop: the list is in parking order, so eviction takes from its head and
 * expiry stops at the first record not yet due. It mirrors the store: every
 * record is in it (rebuilt by a scan at start); a record deleted by a unit
 * leaves it when the unit is submitted (and comes back when the unit fails). */
typedef struct parked {
    struct parked *prev, *next; /* R->park_head: oldest first */
    struct parked *hash_next;
    struct parked *chain; /* in a unit's list of records it deletes (out of the list meanwhile) */
    int64_t parked_at_ms;
    size_t bytes; /* key and value, as stored */
    int reports;  /* reports in the record (1 but for the older layout) */
    size_t key_len;
    char key[];
} parked;

struct sr_reports {
    uv_loop_t *loop;
    sr_store *store;
    sr_rate_lanes *rates; /* the providers' rates, shared with the scheduler's sends */
    sr_rules *rules;
    sr_http_client *client;
    const sr_config *config;
    sr_store_subscriber provider_id_sub; /* the store says when a send's provider id is known */
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
    /* Parked reports: their records in parking order, an index by key, and what they hold. */
    parked *park_head, *park_tail;
    parked **park_index;
    int64_t park_count, park_bytes;
    uint64_t park_seq; /* the last sequence number given to a record key */
    int park_legacy;   /* records of the older layout (one key per provider id) are left */
    sr_metric *m_matched, *m_duplicate, *m_parked, *m_unparked, *m_orphaned, *m_fallback_report, *m_fallback_timeout,
        *m_late, *m_risk, *m_latency, *m_polls, *m_poll_errors, *m_invalid, *m_evicted, *m_park_count, *m_park_bytes;
};

/* ---- claims ---- */

static unsigned reports_hash(const char *id) { return sr_fnv1a_str(SR_FNV1A_INIT, id) % REPORTS_CLAIM_BUCKETS; }

static int reports_claimed(sr_reports *R, const char *id) {
    for (claim *c = R->claimed[reports_hash(id)]; c; c = c->next)
        if (strcmp(c->id, id) == 0) return 1;
    return 0;
}

static void reports_claim(sr_reports *R, const char *id) {
    claim *c = calloc(1, sizeof *c);
    if (!c) abort();
    sr_str_copy(c->id, sizeof c->id, id);
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
    int poll_round;     /* a poll's answer: count the poll and plan the next one */
    int provider_polls; /* the provider polls (for the next watch time) */
    int64_t max_age_ms;
    int must_match; /* 0: an attempt that cannot be found fails the unit (the report is parked) */
    /* set by the mutator (each run starts them afresh) */
    int changed;       /* the message's status changed */
    int recorded;      /* anything was recorded */
    int fallback;      /* sent on to the next provider */
    int late;          /* a late delivered for an earlier attempt */
    int risk;          /* ... while a later attempt was already out */
    int invalid;       /* a part the message does not have: refused, nothing recorded */
    int final_attempt; /* the attempt that got its final report in this change, or -1 */
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
        if (t->provider && strcmp(t->provider, a->provider) == 0 && a->rep.provider_id[0] &&
            reports_same_pid(t->provider_id, a->rep.provider_id))
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

/* How many parts the report's message (or attempt) has: the report's count, the message's own when
 * larger (current attempt), else its segments. */
static int reports_part_total(const sr_message *m, const apply_arg *a, int current) {
    int total = a->rep.parts;
    if (current && m->parts > total) total = m->parts;
    if (total == 0) total = m->segments;
    return total;
}

/* Per-part reports combine: on the message for the current attempt, on the attempt otherwise. Returns
 * -1 when the report goes on with *st (the combined status, or its own), else the mutator's answer. */
static int reports_combine(sr_message *m, sr_attempt *at, apply_arg *a, int current, int advanced, int *st) {
    if (a->rep.part <= 0) return -1;
    int total = reports_part_total(m, a, current);
    if (total <= 1 || a->rep.part > total || total > SR_REPORT_MAX_PARTS) return -1;
    if (current && sr_status_is_final(m->status)) return advanced ? 0 : SR_STORE_UNCHANGED;
    int combined = reports_combine_parts(current ? &m->part_reports : &at->part_reports, total, a->rep.part, *st);
    if (current) m->parts = total;
    if (combined == -2) return advanced ? 0 : SR_STORE_UNCHANGED; /* a duplicate */
    a->recorded = 1;
    if (combined == -1) return 0; /* parts still to report: the message stays as it is */
    *st = combined;
    return -1;
}

/* A report recorded on the message's current attempt moves the message: on to the next provider
 * (fallback_on), or to the report's status. */
static int reports_move_message(sr_message *m, apply_arg *a, int st, int64_t when) {
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
        snprintf(why, sizeof why, "%s%s%.200s",
                 a->rep.raw_status[0] ? a->rep.raw_status : sr_status_name((sr_status)st), a->rep.error[0] ? ": " : "",
                 a->rep.error);
        sr_message_set_str(&m->error, why);
    }
    sr_message_set_status(m, (sr_status)st, when);
    a->changed = 1;
    return 0;
}

/* A report for an earlier attempt (the message went on to another provider): a late "delivered" ends
 * the message all the same. */
static void reports_late_report(sr_message *m, apply_arg *a, int st, int64_t when) {
    if (st != SR_ST_DELIVERED || sr_status_is_final(m->status)) return;
    a->late = 1;
    a->risk = m->status == SR_ST_SENDING || m->status == SR_ST_SENT;
    a->changed = 1;
    m->watch_at_ms = 0;
    sr_message_set_str(&m->error, NULL);
    sr_message_set_status(m, SR_ST_DELIVERED, when);
}

static int reports_apply_mutator(sr_message *m, void *arg) {
    apply_arg *a = arg;
    a->changed = a->recorded = a->fallback = a->late = a->risk = a->invalid = 0;
    a->final_attempt = -1;
    int ai = reports_attempt_of(m, a);
    if (ai < 0) return a->must_match ? SR_E_STATE : (reports_poll_advance(m, a) ? 0 : SR_STORE_UNCHANGED);
    sr_attempt *at = &m->attempts[ai];
    int current = ai == m->attempt_count - 1 && m->status >= SR_ST_SENT;
    /* A part beyond what the message has (the report's own count was checked on entry, but a report may
     * name a part without a count) must not pass for a report on the whole message. */
    if (a->rep.part > 0 && a->rep.part > reports_part_total(m, a, current)) {
        a->invalid = 1;
        if (a->must_match) return SR_E_INVALID;
        return reports_poll_advance(m, a) ? 0 : SR_STORE_UNCHANGED;
    }
    int st = a->rep.status;
    int64_t when = a->rep.at_ms > 0 ? a->rep.at_ms : a->now;
    int advanced = reports_poll_advance(m, a);
    if (a->rep.has_cost && current && (!m->has_cost || m->cost != a->rep.cost)) {
        m->cost = a->rep.cost;
        m->has_cost = 1;
        advanced = 1; /* something to write */
    }
    if (st < 0 || st == SR_ST_ACCEPTED || st == SR_ST_SENT) return advanced ? 0 : SR_STORE_UNCHANGED;
    int rc = reports_combine(m, at, a, current, advanced, &st);
    if (rc != -1) return rc;

    /* Forward only, per attempt: a final report for the attempt stays. */
    if (at->report && sr_status_is_final((sr_status)sr_status_parse(at->report)))
        return a->recorded || advanced ? 0 : SR_STORE_UNCHANGED;
    sr_message_set_str(&at->report, sr_status_name((sr_status)st));
    at->reported_at_ms = when;
    a->recorded = 1;
    if (sr_status_is_final((sr_status)st)) a->final_attempt = ai;
    if (!current) {
        reports_late_report(m, a, st, when);
        return 0;
    }
    return reports_move_message(m, a, st, when);
}

/* The watch time came: a missed report deadline sends the message on; otherwise plan the next look. */
static int reports_watch_mutator(sr_message *m, void *arg) {
    apply_arg *a = arg;
    a->changed = a->recorded = a->fallback = a->late = a->risk = 0;
    a->final_attempt = -1;
    if (m->status != SR_ST_SENT || m->watch_at_ms == 0 || m->watch_at_ms > a->now) return SR_STORE_UNCHANGED;
    int64_t deadline = reports_deadline(m);
    if (deadline && deadline <= a->now) {
        char why[160];
        snprintf(why, sizeof why, "no final report from %.64s within %d s; next provider",
                 m->provider ? m->provider : "?", m->dlr_timeout_s);
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
        else
            R->m_fallback_report->value++;
        /* Queued again: the store tells the scheduler. */
        sr_info("report: on to the next provider", "id", m->id, "reason", m->error ? m->error : "");
    }
    if (a->late) {
        R->m_late->value++;
        if (a->risk) R->m_risk->value++;
    }
    if (a->invalid) {
        R->m_invalid->value++;
    } else if (!fallback_is_timeout) {
        if (a->recorded || a->changed || a->fallback) R->m_matched->value++;
        else if (a->rep.status >= 0 && a->rep.status != SR_ST_ACCEPTED && a->rep.status != SR_ST_SENT)
            R->m_duplicate->value++;
    }
    if (a->final_attempt >= 0 && sr_rules_route_stats(R->rules))
        sr_route_stats_on_report(sr_rules_route_stats(R->rules), m, a->final_attempt, sr_now_ms());
    if (a->changed && sr_status_is_final(m->status)) {
        if (m->sent_at_ms > 0) {
            int64_t at = m->history_count ? m->history[m->history_count - 1].at_ms : sr_now_ms();
            double secs = (double)(at - m->sent_at_ms) / 1000.0;
            sr_metric_observe(R->m_latency, secs < 0 ? 0 : secs);
        }
    }
    /* sms.on_status hears of a change from the store, after this. */
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

/* One parked report, one line. reports_rebuild_cb finds "k" by its bytes: ,"k":. */
static void reports_serialise(const sr_report *rep, int64_t parked_at, sr_buf *out) {
    sr_jw w;
    sr_jw_init(&w, out);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "p", rep->provider_id);
    sr_jw_field_str(&w, "m", rep->message_id);
    sr_jw_field_str(&w, "r", rep->raw_status);
    sr_jw_field_str(&w, "e", rep->error);
    sr_jw_field_int(&w, "s", rep->status);
    sr_jw_field_int(&w, "a", rep->at_ms);
    sr_jw_field_int(&w, "n", rep->part);
    sr_jw_field_int(&w, "t", rep->parts);
    if (rep->has_cost) {
        sr_jw_key(&w, "c");
        sr_jw_double_fmt(&w, "%.10g", rep->cost);
    }
    sr_jw_field_int(&w, "k", parked_at);
    sr_jw_object_end(&w);
    sr_buf_putc(out, '\n');
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

/* ---- the parked records ---- */

/* A record's key: the report's prefix (reports_park_key), NUL, and a sequence
 * number in fixed-width hex, so the records of one id sort in arrival order. */
static size_t reports_record_key(const char *prefix, size_t plen, uint64_t seq, char *out, size_t outlen) {
    if (plen + 2 + PARK_SEQ_HEX > outlen) return 0;
    memcpy(out, prefix, plen);
    out[plen] = '\0';
    snprintf(out + plen + 1, PARK_SEQ_HEX + 1, "%016" PRIx64, seq);
    return plen + 1 + PARK_SEQ_HEX;
}

/* The length of a record key's prefix and (in *seq) its sequence number; a key
 * of the older layout is a prefix itself (*seq 0). A prefix holds one NUL (after
 * the provider), a record key two. */
static size_t reports_record_prefix(const char *key, size_t klen, uint64_t *seq) {
    *seq = 0;
    if (klen < PARK_SEQ_HEX + 3) return klen;
    size_t plen = klen - PARK_SEQ_HEX - 1;
    if (key[plen] != '\0' || !memchr(key, '\0', plen)) return klen;
    uint64_t v = 0;
    for (size_t i = plen + 1; i < klen; i++) {
        char c = key[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return klen;
        v = v << 4 | (uint64_t)d;
    }
    *seq = v;
    return plen;
}

/* The provider and the id a prefix names: 0, or -1 when it is not one. */
static int reports_prefix_parse(const char *key, size_t plen, char provider[72], sr_report *rep) {
    size_t n = strnlen(key, plen);
    if (n >= plen || n >= 72) return -1;
    memcpy(provider, key, n);
    provider[n] = '\0';
    memset(rep, 0, sizeof *rep);
    const char *rest = key + n + 1;
    int rlen = (int)(plen - n - 1);
    if (rlen > 0 && rest[0] == '#') snprintf(rep->message_id, sizeof rep->message_id, "%.*s", rlen - 1, rest + 1);
    else
        snprintf(rep->provider_id, sizeof rep->provider_id, "%.*s", rlen, rest);
    return 0;
}

static uint32_t parked_hash(const char *key, size_t len) {
    uint32_t h = SR_FNV1A_INIT;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)key[i]) * 16777619u;
    return h % PARK_BUCKETS;
}

static parked *parked_find(sr_reports *R, const char *key, size_t len) {
    for (parked *p = R->park_index[parked_hash(key, len)]; p; p = p->hash_next)
        if (p->key_len == len && memcmp(p->key, key, len) == 0) return p;
    return NULL;
}

static parked *parked_new(const char *key, size_t len, int64_t parked_at_ms, size_t bytes, int reports) {
    parked *p = calloc(1, sizeof *p + len);
    if (!p) abort();
    memcpy(p->key, key, len);
    p->key_len = len;
    p->parked_at_ms = parked_at_ms;
    p->bytes = bytes;
    p->reports = reports;
    return p;
}

static void parked_gauges(sr_reports *R) {
    R->m_park_count->value = (double)R->park_count;
    R->m_park_bytes->value = (double)R->park_bytes;
}

/* Adds p to the index and the list: at the tail (just parked) or the head (back from a unit that failed). */
static void parked_link(sr_reports *R, parked *p, int at_head) {
    uint32_t h = parked_hash(p->key, p->key_len);
    p->hash_next = R->park_index[h];
    R->park_index[h] = p;
    p->chain = NULL;
    if (at_head) {
        p->prev = NULL;
        p->next = R->park_head;
        if (R->park_head) R->park_head->prev = p;
        else
            R->park_tail = p;
        R->park_head = p;
    } else {
        p->next = NULL;
        p->prev = R->park_tail;
        if (R->park_tail) R->park_tail->next = p;
        else
            R->park_head = p;
        R->park_tail = p;
    }
    R->park_count += p->reports;
    R->park_bytes += (int64_t)p->bytes;
    parked_gauges(R);
}

static void parked_unlink(sr_reports *R, parked *p) {
    for (parked **pp = &R->park_index[parked_hash(p->key, p->key_len)]; *pp; pp = &(*pp)->hash_next) {
        if (*pp == p) {
            *pp = p->hash_next;
            break;
        }
    }
    if (p->prev) p->prev->next = p->next;
    else
        R->park_head = p->next;
    if (p->next) p->next->prev = p->prev;
    else
        R->park_tail = p->prev;
    p->prev = p->next = p->hash_next = NULL;
    R->park_count -= p->reports;
    R->park_bytes -= (int64_t)p->bytes;
    parked_gauges(R);
}

/* Takes the record under key out of the list into *chain (a unit deletes it): 1, or 0 when not listed. */
static int parked_take(sr_reports *R, const char *key, size_t len, parked **chain) {
    parked *p = parked_find(R, key, len);
    if (!p) return 0;
    parked_unlink(R, p);
    p->chain = *chain;
    *chain = p;
    return 1;
}

static void parked_free_chain(parked *chain) {
    while (chain) {
        parked *next = chain->chain;
        free(chain);
        chain = next;
    }
}

/* Records whose deleting unit failed are still stored: back at the head, oldest first. */
static void parked_restore(sr_reports *R, parked *chain) {
    while (chain) {
        parked *next = chain->chain;
        if (parked_find(R, chain->key, chain->key_len)) free(chain);
        else
            parked_link(R, chain, 1);
        chain = next;
    }
}

/* Deletes (in t) the oldest records until the parked reports fit dlr_park_max
 * and dlr_park_max_bytes; never keep (the record t adds). The records go to
 * *chain; returns the reports they held. */
static int reports_evict(sr_reports *R, sr_store_txn *t, const parked *keep, parked **chain, int max_records) {
    int reports = 0, records = 0;
    int64_t max_count = (int64_t)R->config->dlr_park_max, max_bytes = (int64_t)R->config->dlr_park_max_bytes;
    while ((R->park_count > max_count || R->park_bytes > max_bytes) && R->park_head && R->park_head != keep &&
           records < max_records) {
        parked *p = R->park_head;
        sr_store_txn_del(t, SR_SPACE_PARKED, p->key, p->key_len);
        reports += p->reports;
        records++;
        parked_take(R, p->key, p->key_len, chain);
    }
    return reports;
}

/* A unit that drops records: evicted (over the caps) or orphaned (expired). */
typedef struct drop_job {
    sr_reports *R;
    parked *chain;
    int records;
    int reports;
    int orphaned;
} drop_job;

static void reports_dropped(sr_store_txn *t, void *ud) {
    drop_job *j = ud;
    sr_reports *R = j->R;
    if (sr_store_txn_status(t) == 0) {
        if (j->orphaned) {
            R->m_orphaned->value += j->reports;
            sr_warn("delivery reports orphaned: no message with their provider id appeared", "count",
                    sr_log_num(j->reports));
        } else {
            R->m_evicted->value += j->reports;
            sr_warn("parked delivery reports evicted: more than dlr_park_max / dlr_park_max_bytes", "count",
                    sr_log_num(j->reports));
        }
        parked_free_chain(j->chain);
    } else {
        sr_warn("parked delivery reports could not be dropped", "error", sr_store_strerror(sr_store_txn_status(t)));
        parked_restore(R, j->chain);
    }
    free(j);
    R->inflight--;
    reports_check_stopped(R);
}

static void reports_drop_submit(sr_reports *R, sr_store_txn *t, drop_job *j) {
    R->inflight++;
    sr_store_txn_submit(t, reports_dropped, j);
}

/* Brings the parked reports within the caps (lowered by a reload, or on start). */
static void reports_fit(sr_reports *R) {
    while (R->park_count > (int64_t)R->config->dlr_park_max || R->park_bytes > (int64_t)R->config->dlr_park_max_bytes) {
        drop_job *j = calloc(1, sizeof *j);
        if (!j) abort();
        j->R = R;
        sr_store_txn *t = sr_store_txn_new(R->store);
        j->reports = reports_evict(R, t, NULL, &j->chain, PARK_UNIT_MAX);
        reports_drop_submit(R, t, j);
    }
}

/* ---- applying parked reports ---- */

typedef struct unpark_job {
    sr_reports *R;
    struct unpark_job *next; /* in R->unparking */
    int again;               /* asked for again while in flight, or more were left: look again */
    int listed_only;         /* see unpark_scan */
    int n;
    parked *chain;          /* the records this unit deletes */
    char key[PARK_KEY_MAX]; /* the prefix */
    size_t key_len;
    char provider[72];
    char id[SR_ID_LEN + 1];
    apply_arg args[];
} unpark_job;

typedef struct unpark_scan {
    sr_reports *R;
    int listed_only; /* cluster mode, on a provider id: only the records this node parked (below) */
    const char *prefix;
    size_t prefix_len;
    int n;
    int more;
    char keys[UNPARK_MAX][PARK_KEY_MAX];
    size_t lens[UNPARK_MAX];
    size_t offsets[UNPARK_MAX + 1];
    sr_buf values;
} unpark_scan;

/* Runs inside the store's read transaction: collects the records of one prefix. */
static int reports_unpark_cb(const char *key, size_t klen, const char *val, size_t vlen, int64_t expires_at_ms,
                             void *ud) {
    unpark_scan *sc = ud;
    (void)expires_at_ms;
    if (klen <= sc->prefix_len || memcmp(key, sc->prefix, sc->prefix_len) != 0 || key[sc->prefix_len] != '\0')
        return 1; /* past the prefix */
    if (klen > PARK_KEY_MAX) return 0;
    if (sc->listed_only && !parked_find(sc->R, key, klen)) return 0;
    if (sc->n == UNPARK_MAX) {
        sc->more = 1;
        return 1;
    }
    memcpy(sc->keys[sc->n], key, klen);
    sc->lens[sc->n] = klen;
    sr_buf_append(&sc->values, val, vlen);
    sc->offsets[++sc->n] = sc->values.len;
    return 0;
}

static void reports_unpark(sr_reports *R, const char *provider, const char *key, size_t key_len, const char *id,
                           int listed_only);

/* An unpark unit failed because a parked record it took was gone (its updates, slots 0..n-1, were fine). */
static int reports_taken_by_another(const sr_store_txn *t, int n) {
    if (sr_store_txn_status(t) != SR_E_NOTFOUND) return 0;
    for (int i = 0; i < n; i++)
        if (sr_store_txn_result(t, i) == SR_E_NOTFOUND) return 0;
    return 1;
}

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
        parked_free_chain(u->chain);
    } else if (reports_taken_by_another(t, u->n)) {
        /* Gone from the store (applied by whoever took them, or expired): not ours to restore; what was
         * parked meanwhile is looked at again. */
        parked_free_chain(u->chain);
        u->again = 1;
    } else {
        sr_warn("report: parked reports could not be applied", "error", sr_store_strerror(sr_store_txn_status(t)));
        parked_restore(R, u->chain);
    }
    if (u->again) reports_unpark(R, u->provider, u->key, u->key_len, u->id, u->listed_only);
    free(u);
    R->inflight--;
    reports_check_stopped(R);
}

/* A job applying reps[0..n) (parked under key) to message id, each with its own mutator argument. */
static unpark_job *reports_unpark_job(sr_reports *R, const char *provider, const char *key, size_t key_len,
                                      const char *id, const sr_report *reps, int n) {
    unpark_job *u = calloc(1, sizeof *u + sizeof(apply_arg) * (size_t)(n ? n : 1));
    if (!u) abort();
    u->R = R;
    u->n = n;
    memcpy(u->key, key, key_len);
    u->key_len = key_len;
    sr_str_copy(u->provider, sizeof u->provider, provider);
    sr_str_copy(u->id, sizeof u->id, id);
    int64_t now = sr_now_ms();
    for (int i = 0; i < n; i++) {
        apply_arg *a = &u->args[i];
        sr_str_copy(a->provider, sizeof a->provider, provider);
        a->rep = reps[i];
        a->now = now;
        sr_str_copy(a->id, sizeof a->id, id);
    }
    return u;
}

/* The unit of job u: its reports applied, and exactly the records read (sc, and legacy_used bytes of
 * the older layout's record) deleted; then submitted. */
static void reports_unpark_submit(sr_reports *R, unpark_job *u, const unpark_scan *sc, const sr_buf *legacy,
                                  size_t legacy_used) {
    sr_store_txn *t = sr_store_txn_new(R->store);
    for (int i = 0; i < u->n; i++) sr_store_txn_update_message(t, u->id, reports_apply_mutator, &u->args[i]);
    for (int i = 0; i < sc->n; i++) {
        /* Taken, not just deleted: if another node (cluster mode) or the expiry took one first, this
         * unit applies nothing and the reports count once. */
        sr_store_txn_take(t, SR_SPACE_PARKED, sc->keys[i], sc->lens[i]);
        parked_take(R, sc->keys[i], sc->lens[i], &u->chain);
    }
    if (legacy->len) {
        /* Past UNPARK_MAX reports the rest stay: the look after this one takes them. */
        sr_store_txn_consume(t, SR_SPACE_PARKED, u->key, u->key_len, legacy->data, legacy_used);
        if (legacy_used == legacy->len) parked_take(R, u->key, u->key_len, &u->chain);
    }
    u->again = sc->more || (legacy->len && legacy_used < legacy->len) || (R->park_legacy && sc->n == UNPARK_MAX);
    u->next = R->unparking;
    R->unparking = u;
    R->inflight++;
    sr_store_txn_submit(t, reports_unpark_done, u);
}

/* Applies the reports parked under prefix key to message id and deletes
 * exactly their records (reports parked meanwhile stay for the next look).
 * One look per prefix at a time: asked again while one is in flight, it looks
 * again once that one is committed, so no report is applied twice. */
static void reports_unpark(sr_reports *R, const char *provider, const char *key, size_t key_len, const char *id,
                           int listed_only) {
    for (unpark_job *j = R->unparking; j; j = j->next) {
        if (j->key_len == key_len && memcmp(j->key, key, key_len) == 0) {
            j->again = 1;
            return;
        }
    }
    unpark_scan *sc = calloc(1, sizeof *sc);
    if (!sc) abort();
    sc->R = R;
    sc->listed_only = listed_only;
    sc->prefix = key;
    sc->prefix_len = key_len;
    sr_buf_init(&sc->values);
    int rc = sr_store_scan(R->store, SR_SPACE_PARKED, key, key_len, UNPARK_MAX + 1, reports_unpark_cb, sc);
    /* The older layout: every report of the id appended to one record under the prefix itself. */
    sr_buf legacy;
    sr_buf_init(&legacy);
    int has_legacy = R->park_legacy && sc->n < UNPARK_MAX &&
                     sr_store_get(R->store, SR_SPACE_PARKED, key, key_len, sr_now_ms(), &legacy, NULL) == 0 &&
                     legacy.len > 0;
    if (!has_legacy) legacy.len = 0;
    if (rc >= 0 && (sc->n > 0 || has_legacy)) {
        sr_report reps[UNPARK_MAX];
        int n = 0;
        size_t used = 0, legacy_used = 0;
        for (int i = 0; i < sc->n; i++)
            n += reports_deserialise(sc->values.data + sc->offsets[i], sc->offsets[i + 1] - sc->offsets[i], reps + n,
                                     UNPARK_MAX - n, &used);
        if (has_legacy) n += reports_deserialise(legacy.data, legacy.len, reps + n, UNPARK_MAX - n, &legacy_used);
        unpark_job *u = reports_unpark_job(R, provider, key, key_len, id, reps, n);
        u->listed_only = listed_only;
        reports_unpark_submit(R, u, sc, &legacy, legacy_used);
    }
    sr_buf_free(&sc->values);
    sr_buf_free(&legacy);
    free(sc);
}

/* A send's provider id is known (committed): claim its parked reports. */
static void reports_on_provider_id(const sr_store_event *ev, void *ud) {
    sr_reports *R = ud;
    const sr_message *m = ev->msg;
    if (!m->provider || !m->provider_id) return;
    /* The list mirrors the stored records (a record is listed from the moment
     * its unit is submitted): nothing listed, nothing to scan the store for. */
    if (!R->park_head && !R->park_legacy) return;
    char key[PARK_KEY_MAX];
    sr_report rep;
    memset(&rep, 0, sizeof rep);
    sr_str_copy(rep.provider_id, sizeof rep.provider_id, m->provider_id);
    /* Cluster mode: every node hears of the provider id; each applies the reports it parked itself, so
     * its list keeps mirroring the store (the slow sweep takes those of a node that is gone). */
    int listed_only = sr_store_clustered(R->store);
    size_t n = reports_park_key(m->provider, &rep, key, sizeof key);
    if (n) reports_unpark(R, m->provider, key, n, m->id, listed_only);
    memset(&rep, 0, sizeof rep);
    sr_str_copy(rep.message_id, sizeof rep.message_id, m->id);
    n = reports_park_key(m->provider, &rep, key, sizeof key);
    if (n) reports_unpark(R, m->provider, key, n, m->id, listed_only);
}

/* ---- checking a report on entry ---- */

int sr_reports_check(const sr_report *rep, char *err, size_t errlen) {
    if (rep->part < 0 || rep->parts < 0) {
        snprintf(err, errlen, "the report's %s is not a whole number of at least 1", rep->part < 0 ? "part" : "parts");
        return SR_E_INVALID;
    }
    if (rep->part > SR_REPORT_MAX_PARTS || rep->parts > SR_REPORT_MAX_PARTS) {
        snprintf(err, errlen, "the report's %s is %d: a message has at most %d parts",
                 rep->part > SR_REPORT_MAX_PARTS ? "part" : "parts",
                 rep->part > SR_REPORT_MAX_PARTS ? rep->part : rep->parts, SR_REPORT_MAX_PARTS);
        return SR_E_INVALID;
    }
    if (rep->part > 0 && rep->parts > 0 && rep->part > rep->parts) {
        snprintf(err, errlen, "the report is for part %d of %d", rep->part, rep->parts);
        return SR_E_INVALID;
    }
    return 0;
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
    parked *evicted; /* the records its parking dropped (back in the list when the unit fails) */
    int evicted_reports;
    char record[PARK_KEY_MAX];
    size_t record_len;
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

static void reports_parked_done(sr_store_txn *t, void *ud) {
    apply_one *o = ud;
    sr_reports *R = o->b->R;
    int st = sr_store_txn_status(t);
    if (st == 0) {
        R->m_parked->value++;
        if (o->evicted_reports) R->m_evicted->value += o->evicted_reports;
        parked_free_chain(o->evicted);
        /* The send answer may have been recorded while this report was parking: look again. */
        char id[SR_ID_LEN + 1];
        if (reports_lookup(R, o->a.provider, &o->a.rep, id) == 0)
            reports_unpark(R, o->a.provider, o->a.park_key, o->a.park_key_len, id, 0);
    } else {
        parked *p = parked_find(R, o->record, o->record_len);
        if (p) {
            parked_unlink(R, p);
            free(p);
        }
        parked_restore(R, o->evicted);
    }
    reports_one_finished(o, st);
}

/* Parks a report whose message is not known yet: a record of its own, within the caps. */
static void reports_park(sr_reports *R, apply_one *o) {
    o->a.park_key_len = reports_park_key(o->a.provider, &o->a.rep, o->a.park_key, sizeof o->a.park_key);
    if (o->a.park_key_len)
        o->record_len =
            reports_record_key(o->a.park_key, o->a.park_key_len, R->park_seq + 1, o->record, sizeof o->record);
    if (o->record_len == 0) {
        reports_one_finished(o, 0);
        return;
    }
    R->park_seq++;
    int64_t now = sr_now_ms();
    sr_buf line;
    sr_buf_init(&line);
    reports_serialise(&o->a.rep, now, &line);
    sr_store_txn *t = sr_store_txn_new(R->store);
    sr_store_txn_set(t, SR_SPACE_PARKED, o->record, o->record_len, line.data, line.len,
                     now + (int64_t)R->config->dlr_orphan_after_s * 1000);
    parked *p = parked_new(o->record, o->record_len, now, o->record_len + line.len, 1);
    sr_buf_free(&line);
    parked_link(R, p, 0);
    o->evicted_reports = reports_evict(R, t, p, &o->evicted, INT32_MAX);
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
    if (st == SR_E_INVALID) R->m_invalid->value++; /* a part the message does not have */
    if (st == 0) reports_after(R, &o->a, t, 0, 0);
    reports_one_finished(o, st);
}

void sr_reports_apply(sr_reports *R, const char *provider, const sr_report *reps, int n, void (*cb)(int code, void *ud),
                      void *ud) {
    if (n <= 0) {
        if (cb) cb(0, ud);
        return;
    }
    /* Impossible part numbers are refused before anything is applied: a report for "part 0" or "part 7 of
     * 3" must not pass for one on the whole message. */
    int invalid = 0;
    for (int i = 0; i < n; i++) {
        char err[160];
        if (sr_reports_check(&reps[i], err, sizeof err) != 0) invalid++;
    }
    if (invalid) {
        R->m_invalid->value += invalid;
        if (cb) cb(SR_E_INVALID, ud);
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
        sr_str_copy(o->a.provider, sizeof o->a.provider, provider);
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
        sr_str_copy(a->provider, sizeof a->provider, q->p->name);
        sr_str_copy(a->id, sizeof a->id, q->ids[i]);
        a->now = now;
        a->poll_round = 1;
        a->provider_polls = 1;
        a->max_age_ms = (int64_t)R->config->poll_max_age_s * 1000;
        a->rep.status = -1;
        sr_str_copy(a->rep.provider_id, sizeof a->rep.provider_id, q->pids[i]);
        for (int k = 0; k < nreps; k++) {
            if (!reports_same_pid(reps[k].provider_id, q->pids[i])) continue;
            char err[160];
            if (sr_reports_check(&reps[k], err, sizeof err) != 0) {
                R->m_invalid->value++;
                sr_warn("status poll: report refused", "provider", q->p->name, "id", q->pids[i], "error", err);
                continue;
            }
            /* The most final answer wins when several speak of one id. */
            if (a->rep.status < 0 || sr_status_is_final((sr_status)reps[k].status)) a->rep = reps[k];
        }
        sr_store_txn_update_message(t, a->id, reports_apply_mutator, a);
    }
    R->inflight++;
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
                                  resp->body_len, &reps, &n, err, sizeof err) != 0) {
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
        sr_str_copy(a->id, sizeof a->id, ids[i]);
        a->now = now;
        a->provider_polls = polls[i];
        a->max_age_ms = (int64_t)R->config->poll_max_age_s * 1000;
        sr_store_txn_update_message(t, a->id, reports_watch_mutator, a);
    }
    R->inflight++;
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
        if (reports_claimed(R, ids[i]) || !sr_store_mine(R->store, ids[i])) continue; /* cluster: another's */
        sr_message m;
        if (sr_store_get_message(R->store, ids[i], &m) != 0) {
            sr_message_free(&m);
            continue;
        }
        const sr_provider *p = m.provider ? sr_rules_provider(R->rules, m.provider) : NULL;
        int pi = p ? (int)(p - R->rules->providers) : -1;
        int polls = p && p->poll;
        int64_t deadline = reports_deadline(&m);
        int poll_now = m.status == SR_ST_SENT && polls && m.provider_id && (deadline == 0 || deadline > now) &&
                       now - m.sent_at_ms <= (int64_t)R->config->poll_max_age_s * 1000;
        if (poll_now) {
            int64_t wake = 0;
            poll_req *q = open[pi];
            if (!q) {
                if (sr_rate_lanes_take(R->rates, p, now, &wake) != 1) {
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
            sr_str_copy(q->ids[q->n], sizeof q->ids[q->n], ids[i]);
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
            sr_str_copy(units[nunits], sizeof units[nunits], ids[i]);
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

/* ---- orphans and the sweep ---- */

/* Drops (as orphaned) the records parked dlr_orphan_after ago or more, oldest
 * first: every one that is due, up to PARK_EXPIRE_MAX a pass, so expiry keeps
 * up with any arrival rate (the caps bound what can be parked meanwhile). A
 * record whose message appeared after all is applied instead. */
static void reports_expire(sr_reports *R, int64_t now) {
    int64_t ttl_ms = (int64_t)R->config->dlr_orphan_after_s * 1000;
    struct {
        char provider[72];
        char prefix[PARK_KEY_MAX];
        size_t prefix_len;
        char id[SR_ID_LEN + 1];
    } found[8];
    int nfound = 0, seen = 0;
    sr_store_txn *t = NULL;
    drop_job *j = NULL;
    parked *p = R->park_head;
    while (p && p->parked_at_ms + ttl_ms <= now && seen < PARK_EXPIRE_MAX) {
        parked *next = p->next;
        seen++;
        uint64_t seq;
        size_t plen = reports_record_prefix(p->key, p->key_len, &seq);
        char provider[72], id[SR_ID_LEN + 1];
        sr_report rep;
        if (reports_prefix_parse(p->key, plen, provider, &rep) == 0 && reports_lookup(R, provider, &rep, id) == 0) {
            /* Unparked after this walk (which it changes); one that is in flight already waits for it. */
            int listed = 0;
            for (int i = 0; i < nfound; i++)
                if (found[i].prefix_len == plen && memcmp(found[i].prefix, p->key, plen) == 0) listed = 1;
            if (!listed && nfound < (int)(sizeof found / sizeof found[0])) {
                sr_str_copy(found[nfound].provider, sizeof found[nfound].provider, provider);
                memcpy(found[nfound].prefix, p->key, plen);
                found[nfound].prefix_len = plen;
                memcpy(found[nfound].id, id, sizeof found[nfound].id);
                nfound++;
            }
            p = next;
            continue;
        }
        if (!t) {
            t = sr_store_txn_new(R->store);
            j = calloc(1, sizeof *j);
            if (!j) abort();
            j->R = R;
            j->orphaned = 1;
        }
        sr_store_txn_del(t, SR_SPACE_PARKED, p->key, p->key_len);
        j->reports += p->reports;
        parked_take(R, p->key, p->key_len, &j->chain);
        if (++j->records == PARK_UNIT_MAX) {
            reports_drop_submit(R, t, j);
            t = NULL;
        }
        p = next;
    }
    if (t) reports_drop_submit(R, t, j);
    for (int i = 0; i < nfound; i++)
        reports_unpark(R, found[i].provider, found[i].prefix, found[i].prefix_len, found[i].id, 0);
}

typedef struct sweep_scan {
    int count;
    char keys[REPORTS_SWEEP_MAX][PARK_KEY_MAX];
    size_t lens[REPORTS_SWEEP_MAX];
} sweep_scan;

static int reports_sweep_cb(const char *key, size_t klen, const char *val, size_t vlen, int64_t expires_at_ms,
                            void *ud) {
    sweep_scan *sc = ud;
    (void)val, (void)vlen, (void)expires_at_ms;
    if (klen > PARK_KEY_MAX) return 0;
    memcpy(sc->keys[sc->count], key, klen);
    sc->lens[sc->count++] = klen;
    return 0;
}

/* A slow walk over the parked records (REPORTS_SWEEP_MAX every REPORTS_SWEEP_MS)
 * that applies those whose message is known by now: the send answer and the
 * report can cross in ways the unpark on send does not see. */
static void reports_sweep(sr_reports *R) {
    sweep_scan *sc = calloc(1, sizeof *sc);
    if (!sc) abort();
    int n = sr_store_scan(R->store, SR_SPACE_PARKED, R->sweep_after_len ? R->sweep_after : NULL, R->sweep_after_len,
                          REPORTS_SWEEP_MAX, reports_sweep_cb, sc);
    if (n < REPORTS_SWEEP_MAX) {
        R->sweep_after_len = 0; /* from the start next time */
    } else if (sc->count > 0) {
        memcpy(R->sweep_after, sc->keys[sc->count - 1], sc->lens[sc->count - 1]);
        R->sweep_after_len = sc->lens[sc->count - 1];
    }
    size_t last_len = 0;
    const char *last = NULL;
    for (int i = 0; i < sc->count; i++) {
        uint64_t seq;
        size_t plen = reports_record_prefix(sc->keys[i], sc->lens[i], &seq);
        if (last && last_len == plen && memcmp(last, sc->keys[i], plen) == 0) continue; /* one look per id */
        last = sc->keys[i];
        last_len = plen;
        char provider[72], id[SR_ID_LEN + 1];
        sr_report rep;
        if (reports_prefix_parse(sc->keys[i], plen, provider, &rep) == 0 && reports_lookup(R, provider, &rep, id) == 0)
            reports_unpark(R, provider, sc->keys[i], plen, id, 0);
    }
    free(sc);
}

/* ---- the list of parked records, rebuilt on start ---- */

typedef struct rebuild_scan {
    parked **items;
    size_t n, cap;
    char last[PARK_KEY_MAX];
    size_t last_len;
    uint64_t max_seq;
    int legacy;
} rebuild_scan;

static int reports_rebuild_cb(const char *key, size_t klen, const char *val, size_t vlen, int64_t expires_at_ms,
                              void *ud) {
    rebuild_scan *sc = ud;
    (void)expires_at_ms;
    if (klen > PARK_KEY_MAX) return 0;
    memcpy(sc->last, key, klen);
    sc->last_len = klen;
    uint64_t seq;
    size_t plen = reports_record_prefix(key, klen, &seq);
    if (seq > sc->max_seq) sc->max_seq = seq;
    if (plen == klen) sc->legacy++;
    /* When it was parked: the first line's "k" (reports_serialise). */
    int64_t at = 0;
    static const char k[] = ",\"k\":";
    const char *f = memmem(val, vlen, k, sizeof k - 1);
    if (f) {
        f += sizeof k - 1;
        while (f < val + vlen && *f >= '0' && *f <= '9') at = at * 10 + (*f++ - '0');
    }
    int reports = 0;
    for (size_t i = 0; i < vlen; i++) reports += val[i] == '\n';
    if (sc->n == sc->cap) {
        sc->cap = sc->cap ? sc->cap * 2 : 1024;
        sc->items = realloc(sc->items, sc->cap * sizeof *sc->items);
        if (!sc->items) abort();
    }
    sc->items[sc->n++] = parked_new(key, klen, at, klen + vlen, reports ? reports : 1);
    return 0;
}

static int reports_rebuild_order(const void *a, const void *b) {
    const parked *x = *(const parked *const *)a, *y = *(const parked *const *)b;
    if (x->parked_at_ms != y->parked_at_ms) return x->parked_at_ms < y->parked_at_ms ? -1 : 1;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Lists the records in the store, oldest first (a scan before the loop runs). */
static void reports_rebuild(sr_reports *R) {
    rebuild_scan sc;
    memset(&sc, 0, sizeof sc);
    for (;;) {
        int n = sr_store_scan(R->store, SR_SPACE_PARKED, sc.last_len ? sc.last : NULL, sc.last_len, 4096,
                              reports_rebuild_cb, &sc);
        if (n < 4096) break;
    }
    if (sc.n > 1) qsort(sc.items, sc.n, sizeof *sc.items, reports_rebuild_order);
    for (size_t i = 0; i < sc.n; i++) parked_link(R, sc.items[i], 0);
    free(sc.items);
    R->park_seq = sc.max_seq;
    R->park_legacy = sc.legacy > 0;
    if (sc.n)
        sr_info("parked delivery reports", "count", sr_log_num(R->park_count), "bytes", sr_log_num(R->park_bytes));
}

/* ---- the timer ---- */

static void reports_tick(uv_timer_t *timer) {
    sr_reports *R = timer->data;
    if (R->stopping) return;
    int64_t now = sr_now_ms();
    reports_watch(R, now);
    reports_expire(R, now);
    reports_fit(R); /* the caps may have been lowered by a reload */
    if (now >= R->next_sweep_ms) {
        R->next_sweep_ms = now + REPORTS_SWEEP_MS;
        reports_sweep(R);
    }
}

/* The reports' metric series, registered once at start. */
static void reports_metrics(sr_reports *R) {
    R->m_matched =
        sr_metric_counter("smsrules_dlr_reports_total", "Delivery reports received, by result.", "result=\"matched\"");
    R->m_duplicate = sr_metric_counter("smsrules_dlr_reports_total", "Delivery reports received, by result.",
                                       "result=\"duplicate\"");
    R->m_parked =
        sr_metric_counter("smsrules_dlr_reports_total", "Delivery reports received, by result.", "result=\"parked\"");
    R->m_unparked =
        sr_metric_counter("smsrules_dlr_unparked_total",
                          "Parked delivery reports matched once their message's provider id was known.", NULL);
    R->m_orphaned = sr_metric_counter("smsrules_dlr_orphaned_total",
                                      "Parked delivery reports whose message never appeared (dlr_orphan_after).", NULL);
    R->m_fallback_report =
        sr_metric_counter("smsrules_dlr_fallback_total",
                          "Messages sent on to the next provider because of a delivery outcome.", "reason=\"report\"");
    R->m_fallback_timeout =
        sr_metric_counter("smsrules_dlr_fallback_total",
                          "Messages sent on to the next provider because of a delivery outcome.", "reason=\"timeout\"");
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
    R->m_invalid =
        sr_metric_counter("smsrules_dlr_reports_total", "Delivery reports received, by result.", "result=\"invalid\"");
    R->m_evicted = sr_metric_counter("smsrules_dlr_parked_evicted_total",
                                     "Parked delivery reports dropped, oldest first, to stay within dlr_park_max and "
                                     "dlr_park_max_bytes.",
                                     NULL);
    R->m_park_count =
        sr_metric_gauge("smsrules_dlr_parked", "Delivery reports parked now (their message unknown).", NULL);
    R->m_park_bytes =
        sr_metric_gauge("smsrules_dlr_parked_bytes", "Bytes of the parked delivery reports (keys and values).", NULL);
}

int sr_reports_start(sr_reports **out, uv_loop_t *loop, sr_store *store, sr_rate_lanes *rates, sr_rules *rules,
                     sr_http_client *client, const sr_config *config) {
    sr_reports *R = calloc(1, sizeof *R);
    if (!R) return -1;
    R->loop = loop;
    R->store = store;
    R->rates = rates;
    R->rules = rules;
    R->client = client;
    R->config = config;
    R->provider_id_sub = (sr_store_subscriber){.kind = SR_STORE_EV_PROVIDER_ID, .fn = reports_on_provider_id, .ud = R};
    sr_store_subscribe(store, &R->provider_id_sub);
    R->timer = calloc(1, sizeof *R->timer);
    if (!R->timer) abort();
    uv_timer_init(loop, R->timer);
    R->timer->data = R;
    reports_metrics(R);
    R->park_index = calloc(PARK_BUCKETS, sizeof *R->park_index);
    if (!R->park_index) abort();
    reports_rebuild(R);
    reports_fit(R);
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
    sr_store_unsubscribe(R->store, &R->provider_id_sub);
    uv_close((uv_handle_t *)R->timer, reports_timer_closed);
    for (int i = 0; i < REPORTS_CLAIM_BUCKETS; i++) {
        claim *c = R->claimed[i];
        while (c) {
            claim *next = c->next;
            free(c);
            c = next;
        }
    }
    for (parked *p = R->park_head; p;) {
        parked *next = p->next;
        free(p);
        p = next;
    }
    free(R->park_index);
    free(R);
}

/* ---- for the offline test runner (smsrules test) ---- */

int sr_reports_idle(sr_reports *R) { return R->inflight == 0; }

void sr_reports_tick_now(sr_reports *R) { reports_tick(R->timer); }
