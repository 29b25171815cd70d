/* simulate: `smsrules simulate` (see simulate.h).
 *
 * One strategy's run: a fresh engine (the rules file loaded as `serve` loads
 * it, a store in a temporary folder committing without fsync, the real
 * scheduler whose provider requests go to the simulated providers through
 * sr_scheduler_set_transport, the real report engine), a virtual clock that
 * starts at the same moment in every run, and three sources of events kept in
 * one time-ordered heap: messages arriving (POST /v1/messages, as the API
 * takes them), provider answers and delivery reports (applied with
 * sr_reports_apply, as the status webhook does, so fallback_on, dlr_timeout
 * and late reports work as in production). Between events the clock jumps to
 * the next moment anything falls due: an event, a queued message (a retry's
 * backoff), a report deadline, the end of a rate limit.
 *
 * What a message became is read from the store once it is final (or at the
 * end of the run), then it leaves memory: memory holds the messages in
 * flight, not the whole run. Time to delivery goes into a log-scale histogram.
 *
 * Random draws: one generator for the traffic (so every strategy gets the
 * same messages) and one for the providers and the scheduler's retry jitter,
 * both seeded from --seed. */
#include "tools/sim/simulate.h"
#include "core/buf.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "rules/adapter.h"
#include "core/config.h"
#include "codec/json.h"
#include "codec/jsonw.h"
#include "core/log.h"
#include "model/message.h"
#include "core/metrics.h"
#include "codec/phone.h"
#include "delivery/reports.h"
#include "rules/rules.h"
#include "delivery/scheduler.h"
#include "tools/sim/sim_engine.h"
#include "tools/sim/sim_random.h"
#include "tools/sim/sim_report.h"
#include "store/store.h"
#include "model/submission.h"

#define SIM_START_MS 1767225600000LL /* 2026-01-01T00:00:00Z: every run starts here */
#define SIM_SETTLE_LIMIT_MS 60000    /* real time for the engine to settle: past it, a bug */
#define SIM_MAX_ERRORS 16
#define SIM_MAX_COUNTRIES 64 /* countries shown one by one; the rest add up under "other" */
#define SIM_MAX_TAGS 8
#define SIM_MAX_TAG_VALUES 16
#define SIM_NUMBER_POOL 256 /* numbers generated per country */
#define SIM_HIST_STEP 1.01  /* time-to-delivered histogram: buckets 1% wide */
#define SIM_HIST_BUCKETS 2200
#define SIM_DEFAULT_RESOLUTION_MS 10
#define SIM_DRAIN_MS (48LL * 3600 * 1000) /* after the last message: how long reports may still come */

/* ---- models ---- */

enum {
    F_ACCEPT = 1 << 0,
    F_ERRORS = 1 << 1,
    F_SEND_LATENCY = 1 << 2,
    F_DELIVERED = 1 << 3,
    F_UNDELIVERED = 1 << 4,
    F_EXPIRED = 1 << 5,
    F_REPORT_LATENCY = 1 << 6,
    F_PRICE = 1 << 7,
};

typedef struct sim_error {
    int status; /* HTTP status; 0: a timeout (no answer) */
    double weight;
} sim_error;

typedef struct sim_params {
    unsigned set; /* F_* fields this layer sets */
    double accept;
    sim_error errors[SIM_MAX_ERRORS];
    int error_count;
    double send_p50_ms, send_p95_ms;
    double delivered, undelivered, expired;
    double report_p50_ms, report_p95_ms;
    double price; /* per segment */
} sim_params;

typedef struct sim_country_params {
    int country;
    sim_params p;
} sim_country_params;

typedef struct sim_model {
    char name[72];
    sim_params def;
    sim_country_params *countries;
    int country_count;
} sim_model;

typedef struct sim_incident {
    char provider[72];
    int country; /* 0: every country */
    int64_t from_ms, to_ms;
    sim_params p;
} sim_incident;

typedef struct sim_models {
    sim_model *providers;
    int count;
    sim_incident *incidents;
    int incident_count;
} sim_models;

/* ---- traffic ---- */

typedef struct sim_tag_dist {
    char key[65];
    char values[SIM_MAX_TAG_VALUES][257];
    double shares[SIM_MAX_TAG_VALUES];
    int count;
} sim_tag_dist;

typedef struct sim_traffic {
    const char *path;
    int jsonl;
    FILE *f;       /* jsonl */
    long line;     /* jsonl: the line read last */
    char *linebuf; /* jsonl */
    size_t linecap;
    /* generator */
    long messages;
    double rate_per_s;
    int countries[SIM_MAX_COUNTRIES];
    double country_shares[SIM_MAX_COUNTRIES];
    char (*numbers)[SR_PHONE_MAX]; /* SIM_NUMBER_POOL per country */
    int country_count;
    int segments[16];
    double segment_shares[16];
    int segment_count;
    sim_tag_dist tags[SIM_MAX_TAGS];
    int tag_count;
    /* the run */
    sr_sim_random random;
    long produced;
    double at_s;
} sim_traffic;

/* One message to inject. */
typedef struct sim_input {
    int64_t at_ms; /* from the start of the run */
    sr_buf body;   /* the POST /v1/messages request */
    int country;   /* calling code, 0 unknown */
    int segments;
} sim_input;

/* ---- the results of one strategy ---- */

typedef struct sim_provider_stats {
    long attempts, delivered;
    double cost;
} sim_provider_stats;

typedef struct sim_country_stats {
    int country; /* 0: other */
    long messages, delivered;
    double cost;
} sim_country_stats;

typedef struct sim_result {
    char *name, *rules;
    long messages, refused;
    long by_status[SR_ST_COUNT];
    long no_report; /* sent, and no final report came */
    long fallbacks, retries, double_delivery_risk;
    double cost_total;
    long hist[SIM_HIST_BUCKETS];
    long hist_count;
    sim_provider_stats providers[SR_MAX_PROVIDERS];
    char provider_names[SR_MAX_PROVIDERS][72];
    int provider_count;
    sim_country_stats countries[SIM_MAX_COUNTRIES + 1];
    int country_count;
    long *timeline_accepted, *timeline_delivered; /* per simulated minute (not cumulative here) */
    int minutes;
} sim_result;

/* ---- the engine of one run ---- */

/* A message the run follows until it is final and no report for it is still to come. */
typedef struct sim_live {
    char id[SR_ID_LEN + 1];
    int country, segments;
    int pending;  /* reports of it still to come */
    int accepted; /* attempts a provider accepted so far */
    int tallied, risk, dirty;
    struct sim_live *next; /* hash chain */
} sim_live;

enum { EV_ANSWER, EV_REPORT };

typedef struct sim_answer {
    void *request;
    sr_transport_answer answer;
    int http_status;
    int count;
    sr_adapter_outcome *outs;
    sim_live **live; /* the messages' records (NULL: not followed) */
} sim_answer;

typedef struct sim_report_event {
    int provider;
    int attempt; /* which accepted attempt of the message (1-based) */
    sim_live *live;
    sr_report rep;
} sim_report_event;

typedef struct sim_event {
    int64_t at_ms;
    uint64_t seq;
    int kind;
    void *p;
} sim_event;

typedef struct sim_run {
    uv_loop_t loop;
    sr_sim_engine core; /* the engine: rules, store, scheduler, report engine */
    const sim_models *models;
    const sim_model *model_of[SR_MAX_PROVIDERS]; /* by the rules' provider index */
    sr_sim_random random;                        /* the providers' draws */
    sim_event *heap;
    int heap_count, heap_cap;
    uint64_t seq;
    sim_live **table;
    size_t table_size, live_count;
    sim_live **dirty;
    int dirty_count, dirty_cap;
    sim_result *res;
    long provider_ids;
    int64_t last_sweep_s;
    int loop_open;
} sim_run;

static char *sim_strdup(const char *s) {
    char *d = strdup(s);
    if (!d) abort();
    return d;
}

static void *sim_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) abort();
    return p;
}

/* ---- reading the models file ---- */

static int sim_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sim_fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* A calling code written as a string of 1 to 3 digits ("84"). */
static int sim_number_text(const sr_json *v, double *out) {
    if (v->len < 1 || v->len > 3) return -1;
    int n = 0;
    for (size_t i = 0; i < v->len; i++) {
        if (v->str[i] < '0' || v->str[i] > '9') return -1;
        n = n * 10 + (v->str[i] - '0');
    }
    *out = n;
    return 0;
}

static int sim_number(const sr_json *v, double lo, double hi, double *out) {
    if (!v || v->type != SR_JSON_NUMBER || !(v->num >= lo && v->num <= hi)) return -1;
    *out = v->num;
    return 0;
}

static int sim_latency(const sr_json *v, double *p50, double *p95) {
    if (!v || v->type != SR_JSON_OBJECT) return -1;
    if (sim_number(sr_json_get(v, "p50"), 0, 1e9, p50) != 0) return -1;
    if (sim_number(sr_json_get(v, "p95"), *p50, 1e9, p95) != 0) return -1;
    return 0;
}

/* Reads the fields of one layer (a provider's default, a country, an
 * incident); where names the layer in messages. Unknown fields are refused,
 * so that a typo does not silently mean "the default". */
/* "errors": {STATUS or "timeout": weight} of a model into p. */
static int sim_params_errors(const sr_json *f, sim_params *p, const char *where, char *err, size_t errlen) {
    for (const sr_json *e = f->child; e; e = e->next) {
        if (p->error_count == SIM_MAX_ERRORS)
            return sim_fail(err, errlen, "models: %s.errors: at most %d kinds", where, SIM_MAX_ERRORS);
        sim_error *se = &p->errors[p->error_count];
        if (strcmp(e->key, "timeout") == 0) {
            se->status = 0;
        } else {
            char *end;
            long st = strtol(e->key, &end, 10);
            if (*end || st < 400 || st > 599)
                return sim_fail(err, errlen,
                                "models: %s.errors: '%s' is not an HTTP error status (400-599) or \"timeout\"", where,
                                e->key);
            se->status = (int)st;
        }
        if (sim_number(e, 0, 1, &se->weight) != 0)
            return sim_fail(err, errlen, "models: %s.errors.%s must be a number from 0 to 1", where, e->key);
        p->error_count++;
    }
    return 0;
}

static int sim_params_parse(const sr_json *obj, sim_params *p, const char *where, int incident, char *err,
                            size_t errlen) {
    memset(p, 0, sizeof *p);
    if (!obj || obj->type != SR_JSON_OBJECT) return sim_fail(err, errlen, "models: %s must be an object", where);
    for (const sr_json *f = obj->child; f; f = f->next) {
        const char *k = f->key;
        if (strcmp(k, "accept") == 0) {
            if (sim_number(f, 0, 1, &p->accept) != 0) goto range;
            p->set |= F_ACCEPT;
        } else if (strcmp(k, "errors") == 0) {
            if (f->type != SR_JSON_OBJECT) goto range;
            if (sim_params_errors(f, p, where, err, errlen) != 0) return -1;
            p->set |= F_ERRORS;
        } else if (strcmp(k, "send_latency_ms") == 0) {
            if (sim_latency(f, &p->send_p50_ms, &p->send_p95_ms) != 0) goto latency;
            p->set |= F_SEND_LATENCY;
        } else if (strcmp(k, "report_latency_ms") == 0) {
            if (sim_latency(f, &p->report_p50_ms, &p->report_p95_ms) != 0) goto latency;
            p->set |= F_REPORT_LATENCY;
        } else if (strcmp(k, "delivered") == 0) {
            if (sim_number(f, 0, 1, &p->delivered) != 0) goto range;
            p->set |= F_DELIVERED;
        } else if (strcmp(k, "undelivered") == 0) {
            if (sim_number(f, 0, 1, &p->undelivered) != 0) goto range;
            p->set |= F_UNDELIVERED;
        } else if (strcmp(k, "expired") == 0) {
            if (sim_number(f, 0, 1, &p->expired) != 0) goto range;
            p->set |= F_EXPIRED;
        } else if (strcmp(k, "price") == 0) {
            if (sim_number(f, 0, 1e9, &p->price) != 0)
                return sim_fail(err, errlen, "models: %s.price must be a number of at least 0", where);
            p->set |= F_PRICE;
        } else if (strcmp(k, "samples") == 0) {
            continue; /* what `smsrules models fit` fitted the model from: for the reader */
        } else if (incident && (strcmp(k, "provider") == 0 || strcmp(k, "country") == 0 || strcmp(k, "from_s") == 0 ||
                                strcmp(k, "to_s") == 0)) {
            continue;
        } else {
            return sim_fail(err, errlen, "models: %s: unknown field '%s'", where, k);
        }
        continue;
    range:
        return sim_fail(err, errlen, "models: %s.%s must be a number from 0 to 1", where, k);
    latency:
        return sim_fail(err, errlen, "models: %s.%s must be {\"p50\": ms, \"p95\": ms} with 0 <= p50 <= p95", where, k);
    }
    return 0;
}

/* dst gets the fields src sets. */
static void sim_params_apply(sim_params *dst, const sim_params *src) {
    if (src->set & F_ACCEPT) dst->accept = src->accept;
    if (src->set & F_ERRORS) {
        memcpy(dst->errors, src->errors, sizeof dst->errors);
        dst->error_count = src->error_count;
    }
    if (src->set & F_SEND_LATENCY) dst->send_p50_ms = src->send_p50_ms, dst->send_p95_ms = src->send_p95_ms;
    if (src->set & F_DELIVERED) dst->delivered = src->delivered;
    if (src->set & F_UNDELIVERED) dst->undelivered = src->undelivered;
    if (src->set & F_EXPIRED) dst->expired = src->expired;
    if (src->set & F_REPORT_LATENCY) dst->report_p50_ms = src->report_p50_ms, dst->report_p95_ms = src->report_p95_ms;
    if (src->set & F_PRICE) dst->price = src->price;
}

static int sim_country_code(const char *s, size_t len) {
    if (len == 0 || len > 3) return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v > 0 ? v : -1;
}

/* providers.NAME.countries: the per-country overrides of sm. */
static int sim_model_countries(sim_model *sm, const sr_json *cs, const char *path, char *err, size_t errlen) {
    char where[256];
    if (cs->type != SR_JSON_OBJECT)
        return sim_fail(err, errlen, "%s: models: providers.%s.countries must be an object", path, sm->name);
    sm->countries = sim_calloc(cs->count, sizeof *sm->countries);
    for (const sr_json *c = cs->child; c; c = c->next) {
        sim_country_params *cp = &sm->countries[sm->country_count++];
        cp->country = sim_country_code(c->key, c->key_len);
        snprintf(where, sizeof where, "providers.%s.countries.%s", sm->name, c->key);
        if (cp->country < 0)
            return sim_fail(err, errlen, "%s: models: %s: a country is its calling code (\"84\")", path, where);
        if (sim_params_parse(c, &cp->p, where, 0, err, errlen) != 0) return -1;
    }
    return 0;
}

/* providers.NAME: {default, countries} into sm. */
static int sim_model_load(sim_model *sm, const sr_json *p, const char *path, char *err, size_t errlen) {
    char where[256];
    sr_str_copy(sm->name, sizeof sm->name, p->key);
    if (p->type != SR_JSON_OBJECT)
        return sim_fail(err, errlen, "%s: models: providers.%s must be an object", path, p->key);
    for (const sr_json *f = p->child; f; f = f->next)
        if (strcmp(f->key, "default") != 0 && strcmp(f->key, "countries") != 0)
            return sim_fail(err, errlen, "%s: models: providers.%s: unknown field '%s' (default, countries)", path,
                            p->key, f->key);
    const sr_json *def = sr_json_get(p, "default");
    snprintf(where, sizeof where, "providers.%s.default", p->key);
    if (def && sim_params_parse(def, &sm->def, where, 0, err, errlen) != 0) return -1;
    const sr_json *cs = sr_json_get(p, "countries");
    return cs ? sim_model_countries(sm, cs, path, err, errlen) : 0;
}

/* incidents: [{provider, country, from_s, to_s, ...params}]. */
static int sim_incidents_load(sim_models *m, const sr_json *inc, const char *path, char *err, size_t errlen) {
    char where[256];
    if (inc->type != SR_JSON_ARRAY) return sim_fail(err, errlen, "%s: models: incidents must be an array", path);
    m->incidents = sim_calloc(inc->count, sizeof *m->incidents);
    int i = 0;
    for (const sr_json *x = inc->child; x; x = x->next, i++) {
        sim_incident *si = &m->incidents[m->incident_count++];
        snprintf(where, sizeof where, "incidents[%d]", i);
        if (sim_params_parse(x, &si->p, where, 1, err, errlen) != 0) return -1;
        const sr_json *pv = sr_json_get(x, "provider"), *cv = sr_json_get(x, "country");
        double from_s, to_s;
        if (!pv || pv->type != SR_JSON_STRING || sim_number(sr_json_get(x, "from_s"), 0, 1e9, &from_s) != 0 ||
            sim_number(sr_json_get(x, "to_s"), from_s, 1e9, &to_s) != 0)
            return sim_fail(err, errlen,
                            "%s: models: %s needs provider (a name), from_s and to_s (seconds, from <= to)", path,
                            where);
        sr_str_copy(si->provider, sizeof si->provider, pv->str);
        if (cv && (cv->type != SR_JSON_STRING || (si->country = sim_country_code(cv->str, cv->len)) < 0))
            return sim_fail(err, errlen, "%s: models: %s.country must be a calling code (\"84\")", path, where);
        si->from_ms = (int64_t)(from_s * 1000);
        si->to_ms = (int64_t)(to_s * 1000);
    }
    return 0;
}

static int sim_models_load(sim_models *m, const char *path, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    sr_buf text;
    sr_buf_init(&text);
    sr_json_doc doc = {0};
    char perr[160];
    int rc = -1;
    if (sr_buf_read_file(&text, path, NULL, err, errlen) != 0) goto done;
    if (sr_json_parse(&doc, text.data, text.len, perr, sizeof perr) != 0) {
        sim_fail(err, errlen, "%s: not JSON: %s", path, perr);
        goto done;
    }
    const sr_json *providers = doc.root->type == SR_JSON_OBJECT ? sr_json_get(doc.root, "providers") : NULL;
    if (!providers || providers->type != SR_JSON_OBJECT) {
        sim_fail(err, errlen, "%s: models: expected {\"providers\": {NAME: {...}}, \"incidents\": [...]}", path);
        goto done;
    }
    m->providers = sim_calloc(providers->count, sizeof *m->providers);
    for (const sr_json *p = providers->child; p; p = p->next)
        if (sim_model_load(&m->providers[m->count++], p, path, err, errlen) != 0) goto done;
    const sr_json *inc = sr_json_get(doc.root, "incidents");
    if (inc && sim_incidents_load(m, inc, path, err, errlen) != 0) goto done;
    rc = 0;
done:
    sr_json_doc_free(&doc);
    sr_buf_free(&text);
    return rc;
}

static void sim_models_free(sim_models *m) {
    for (int i = 0; i < m->count; i++) free(m->providers[i].countries);
    free(m->providers);
    free(m->incidents);
}

/* What a provider does for a message to country at t_ms of the run: the
 * built-in defaults, the provider's default, its country, then the incidents
 * in force, each over the one before. */
static void sim_params_at(const sim_run *run, const sim_model *sm, int country, int64_t t_ms, sim_params *out) {
    memset(out, 0, sizeof *out);
    out->accept = 1;
    out->send_p50_ms = 100;
    out->send_p95_ms = 300;
    out->delivered = 1;
    out->report_p50_ms = 2000;
    out->report_p95_ms = 10000;
    sim_params_apply(out, &sm->def);
    for (int i = 0; i < sm->country_count; i++)
        if (sm->countries[i].country == country) sim_params_apply(out, &sm->countries[i].p);
    for (int i = 0; i < run->models->incident_count; i++) {
        const sim_incident *si = &run->models->incidents[i];
        if (t_ms >= si->from_ms && t_ms < si->to_ms && strcmp(si->provider, sm->name) == 0 &&
            (si->country == 0 || si->country == country))
            sim_params_apply(out, &si->p);
    }
}

/* A log-normal draw with the given median and 95th percentile. */
static double sim_lognormal(sr_sim_random *r, double p50, double p95) {
    if (p50 <= 0) return 0;
    double sigma = p95 > p50 ? (log(p95) - log(p50)) / 1.6448536269514722 : 0;
    return exp(log(p50) + sigma * sr_sim_random_normal(r));
}

/* ---- reading the traffic file ---- */

static int sim_shares(const sr_json *obj, const char *what, const char *path, char *err, size_t errlen) {
    if (!obj || obj->type != SR_JSON_OBJECT || obj->count == 0)
        return sim_fail(err, errlen, "%s: traffic: %s must be an object of shares", path, what);
    double total = 0;
    for (const sr_json *v = obj->child; v; v = v->next) {
        if (v->type != SR_JSON_NUMBER || !(v->num >= 0))
            return sim_fail(err, errlen, "%s: traffic: %s.%s must be a share (a number >= 0)", path, what, v->key);
        total += v->num;
    }
    if (!(total > 0)) return sim_fail(err, errlen, "%s: traffic: the shares of %s add up to 0", path, what);
    return 0;
}

/* countries: {CODE: share} of a generator. */
static int sim_traffic_countries(sim_traffic *t, const sr_json *cs, const char *path, char *err, size_t errlen) {
    if (sim_shares(cs, "countries", path, err, errlen) != 0) return -1;
    if (cs->count > SIM_MAX_COUNTRIES)
        return sim_fail(err, errlen, "%s: traffic: at most %d countries", path, SIM_MAX_COUNTRIES);
    t->numbers = sim_calloc(cs->count * SIM_NUMBER_POOL, sizeof *t->numbers);
    for (const sr_json *c = cs->child; c; c = c->next) {
        int cc = sim_country_code(c->key, c->key_len);
        char example[SR_PHONE_MAX];
        if (cc < 0 || sr_phone_example_mobile(cc, example) != 0)
            return sim_fail(err, errlen, "%s: traffic: countries.%s is not a country calling code with numbers", path,
                            c->key);
        t->countries[t->country_count] = cc;
        t->country_shares[t->country_count] = c->num;
        t->country_count++;
    }
    return 0;
}

/* segments: {COUNT: share} of a generator (default: every message one segment). */
static int sim_traffic_segments(sim_traffic *t, const sr_json *ss, const char *path, char *err, size_t errlen) {
    if (!ss) {
        t->segments[0] = 1;
        t->segment_shares[0] = 1;
        t->segment_count = 1;
        return 0;
    }
    if (sim_shares(ss, "segments", path, err, errlen) != 0) return -1;
    for (const sr_json *s = ss->child; s; s = s->next) {
        int n = sim_country_code(s->key, s->key_len);
        if (n < 1 || n > 10 || t->segment_count == 16)
            return sim_fail(err, errlen, "%s: traffic: segments: '%s' is not a segment count from 1 to 10", path,
                            s->key);
        t->segments[t->segment_count] = n;
        t->segment_shares[t->segment_count++] = s->num;
    }
    return 0;
}

/* tags: {KEY: {VALUE: share}} of a generator. */
static int sim_traffic_tags(sim_traffic *t, const sr_json *tags, const char *path, char *err, size_t errlen) {
    if (tags->type != SR_JSON_OBJECT || tags->count > SIM_MAX_TAGS)
        return sim_fail(err, errlen, "%s: traffic: tags must be {KEY: {VALUE: share, ...}, ...} (at most %d keys)",
                        path, SIM_MAX_TAGS);
    for (const sr_json *k = tags->child; k; k = k->next) {
        sim_tag_dist *td = &t->tags[t->tag_count++];
        if (k->key_len > 64 || sim_shares(k, "tags", path, err, errlen) != 0 || k->count > SIM_MAX_TAG_VALUES) {
            if (!err[0])
                sim_fail(err, errlen, "%s: traffic: tags.%s: at most %d values", path, k->key, SIM_MAX_TAG_VALUES);
            return -1;
        }
        sr_str_copy(td->key, sizeof td->key, k->key);
        for (const sr_json *v = k->child; v; v = v->next) {
            sr_str_copy(td->values[td->count], sizeof td->values[0], v->key);
            td->shares[td->count++] = v->num;
        }
    }
    return 0;
}

/* A generator {messages, rate_per_s, countries, segments, tags} into t. */
static int sim_traffic_generator(sim_traffic *t, const sr_json *r, const char *path, char *err, size_t errlen) {
    double messages;
    if (r->type != SR_JSON_OBJECT || sim_number(sr_json_get(r, "messages"), 1, 1e9, &messages) != 0 ||
        sim_number(sr_json_get(r, "rate_per_s"), 1e-6, 1e7, &t->rate_per_s) != 0)
        return sim_fail(err, errlen,
                        "%s: traffic: expected {\"messages\": N >= 1, \"rate_per_s\": R > 0, \"countries\": {...}, "
                        "\"segments\": {...}, \"tags\": {...}} (or a .jsonl file of messages)",
                        path);
    for (const sr_json *f = r->child; f; f = f->next)
        if (strcmp(f->key, "messages") && strcmp(f->key, "rate_per_s") && strcmp(f->key, "countries") &&
            strcmp(f->key, "segments") && strcmp(f->key, "tags"))
            return sim_fail(err, errlen, "%s: traffic: unknown field '%s'", path, f->key);
    t->messages = (long)messages;
    if (sim_traffic_countries(t, sr_json_get(r, "countries"), path, err, errlen) != 0) return -1;
    if (sim_traffic_segments(t, sr_json_get(r, "segments"), path, err, errlen) != 0) return -1;
    const sr_json *tags = sr_json_get(r, "tags");
    return tags ? sim_traffic_tags(t, tags, path, err, errlen) : 0;
}

static int sim_traffic_load(sim_traffic *t, const char *path, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    t->path = path;
    size_t plen = strlen(path);
    if (plen > 6 && strcmp(path + plen - 6, ".jsonl") == 0) {
        t->jsonl = 1;
        t->f = fopen(path, "rb");
        if (!t->f) return sim_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return 0;
    }
    sr_buf text;
    sr_buf_init(&text);
    sr_json_doc doc = {0};
    char perr[160];
    int rc = -1;
    if (sr_buf_read_file(&text, path, NULL, err, errlen) != 0) goto done;
    if (sr_json_parse(&doc, text.data, text.len, perr, sizeof perr) != 0) {
        sim_fail(err, errlen, "%s: not JSON: %s", path, perr);
        goto done;
    }
    rc = sim_traffic_generator(t, doc.root, path, err, errlen);
done:
    sr_json_doc_free(&doc);
    sr_buf_free(&text);
    return rc;
}

/* A number of country calling code cc into out: its example mobile number
 * with the last four digits drawn, kept when libphonenumber finds it valid
 * (else the example itself). -1 when the code has no example number. */
static int sim_draw_number(sr_sim_random *random, int cc, char out[SR_PHONE_MAX]) {
    char example[SR_PHONE_MAX];
    if (sr_phone_example_mobile(cc, example) != 0) return -1;
    size_t len = strlen(example);
    sr_str_copy(out, SR_PHONE_MAX, example);
    for (int attempt = 0; attempt < 16; attempt++) {
        char cand[SR_PHONE_MAX];
        sr_str_copy(cand, sizeof cand, example);
        for (size_t d = len > 5 ? len - 4 : len; d < len; d++) cand[d] = (char)('0' + sr_sim_random_next(random) % 10);
        sr_phone_info info;
        if (sr_phone_parse(cand, len, NULL, &info, NULL, 0) == 0 && info.valid) {
            sr_str_copy(out, SR_PHONE_MAX, cand);
            break;
        }
    }
    return 0;
}

/* Fills the pool of numbers of each country: the example number with its
 * last digits drawn, kept when libphonenumber finds it valid. */
static void sim_traffic_numbers(sim_traffic *t) {
    for (int c = 0; c < t->country_count; c++)
        for (int i = 0; i < SIM_NUMBER_POOL; i++)
            sim_draw_number(&t->random, t->countries[c], t->numbers[c * SIM_NUMBER_POOL + i]);
}

static int sim_pick(sr_sim_random *r, const double *shares, int n) {
    double total = 0;
    for (int i = 0; i < n; i++) total += shares[i];
    double u = sr_sim_random_unit(r) * total;
    for (int i = 0; i < n; i++) {
        if (u < shares[i]) return i;
        u -= shares[i];
    }
    return n - 1;
}

/* Back to the first message, for the next strategy: the same messages again. */
static void sim_traffic_rewind(sim_traffic *t, uint64_t seed) {
    sr_sim_random_seed(&t->random, seed ^ 0x7472616666696321ULL);
    t->produced = 0;
    t->at_s = 0;
    t->line = 0;
    if (t->jsonl) rewind(t->f);
    else
        sim_traffic_numbers(t);
}

/* A text of that many GSM-7 segments (153 characters each when split, one
 * segment up to 160). */
static void sim_text(sr_buf *b, int segments) {
    int len = segments == 1 ? 120 : 153 * segments - 20;
    static const char words[] = "Your code is 482913. It expires in ten minutes. Do not share it with anyone. ";
    for (int i = 0; i < len; i++) sr_buf_putc(b, words[i % (sizeof words - 1)]);
}

/* The next generated message into in: a Poisson arrival at rate_per_s, a
 * country, a number of it, a text of drawn segments, drawn tags. */
static void sim_traffic_generate(sim_traffic *t, sim_input *in) {
    if (t->produced > 0) t->at_s += -log(1.0 - sr_sim_random_unit(&t->random)) / t->rate_per_s;
    t->produced++;
    in->at_ms = (int64_t)(t->at_s * 1000);
    int c = sim_pick(&t->random, t->country_shares, t->country_count);
    in->country = t->countries[c];
    const char *to = t->numbers[c * SIM_NUMBER_POOL + sr_sim_random_next(&t->random) % SIM_NUMBER_POOL];
    in->segments = t->segments[sim_pick(&t->random, t->segment_shares, t->segment_count)];
    sr_buf text;
    sr_buf_init(&text);
    sim_text(&text, in->segments);
    sr_jw w;
    sr_jw_init(&w, &in->body);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "to", to);
    sr_jw_field_strn(&w, "text", text.data, text.len);
    if (t->tag_count) {
        sr_jw_key(&w, "tags");
        sr_jw_object_begin(&w);
        for (int i = 0; i < t->tag_count; i++) {
            const sim_tag_dist *td = &t->tags[i];
            sr_jw_field_str(&w, td->key, td->values[sim_pick(&t->random, td->shares, td->count)]);
        }
        sr_jw_object_end(&w);
    }
    sr_jw_object_end(&w);
    sr_buf_free(&text);
}

/* The body of a message read from a line: {"to","text","tags"}, a text of
 * that many segments when the line has none. */
static void sim_line_body(sim_input *in, const char *to, size_t to_len, const sr_json *text, const sr_json *tags) {
    sr_jw w;
    sr_jw_init(&w, &in->body);
    sr_jw_object_begin(&w);
    sr_jw_field_strn(&w, "to", to, to_len);
    if (text) {
        sr_jw_field_strn(&w, "text", text->str, text->len);
    } else {
        sr_buf made;
        sr_buf_init(&made);
        sim_text(&made, in->segments);
        sr_jw_field_strn(&w, "text", made.data, made.len);
        sr_buf_free(&made);
    }
    if (tags) {
        sr_jw_key(&w, "tags");
        sr_jw_json(&w, tags);
    }
    sr_jw_object_end(&w);
}

/* One parsed line of a .jsonl file into in; -1 when it is not a message
 * (or comes before the line above). */
static int sim_traffic_line(sim_traffic *t, const sr_json *r, sim_input *in) {
    double at_s = 0;
    const sr_json *to = r->type == SR_JSON_OBJECT ? sr_json_get(r, "to") : NULL;
    /* `smsrules traffic export` writes the country calling code instead of the number. */
    const sr_json *country = r->type == SR_JSON_OBJECT && !to ? sr_json_get(r, "country") : NULL;
    char drawn[SR_PHONE_MAX] = "";
    double cc = 0;
    if (country &&
        (country->type == SR_JSON_STRING ? sim_number_text(country, &cc) : sim_number(country, 1, 999, &cc)) == 0 &&
        cc >= 1 && cc <= 999 && cc == (int)cc)
        sim_draw_number(&t->random, (int)cc, drawn);
    int has_to = to || drawn[0];
    const sr_json *text = has_to ? sr_json_get(r, "text") : NULL, *seg = has_to ? sr_json_get(r, "segments") : NULL;
    const sr_json *tags = has_to ? sr_json_get(r, "tags") : NULL;
    double segments = 1;
    if (!has_to || (to && to->type != SR_JSON_STRING) || sim_number(sr_json_get(r, "at_s"), 0, 1e9, &at_s) != 0 ||
        at_s < t->at_s || (text && text->type != SR_JSON_STRING) || (seg && sim_number(seg, 1, 10, &segments) != 0) ||
        (tags && tags->type != SR_JSON_OBJECT))
        return -1;
    t->at_s = at_s;
    in->at_ms = (int64_t)(at_s * 1000);
    in->segments = (int)segments;
    const char *to_str = to ? to->str : drawn;
    size_t to_len = to ? to->len : strlen(drawn);
    sr_phone_info info;
    in->country = sr_phone_parse(to_str, to_len, NULL, &info, NULL, 0) == 0 ? info.calling_code : 0;
    sim_line_body(in, to_str, to_len, text, tags);
    return 0;
}

/* The next message into in (body reset here). Returns 1, 0 at the end, -1 on
 * a bad line (err says which). */
static int sim_traffic_next(sim_traffic *t, sim_input *in, char *err, size_t errlen) {
    sr_buf_reset(&in->body);
    if (!t->jsonl) {
        if (t->produced >= t->messages) return 0;
        sim_traffic_generate(t, in);
        return 1;
    }
    for (;;) {
        ssize_t n = getline(&t->linebuf, &t->linecap, t->f);
        if (n < 0) return 0;
        t->line++;
        while (n > 0 && (t->linebuf[n - 1] == '\n' || t->linebuf[n - 1] == '\r')) n--;
        if (n == 0) continue;
        sr_json_doc doc;
        char perr[160];
        if (sr_json_parse(&doc, t->linebuf, (size_t)n, perr, sizeof perr) != 0)
            return sim_fail(err, errlen, "%s:%ld: not JSON: %s", t->path, t->line, perr);
        int rc = sim_traffic_line(t, doc.root, in);
        sr_json_doc_free(&doc);
        if (rc != 0)
            return sim_fail(err, errlen,
                            "%s:%ld: expected {\"at_s\": seconds (not before the line above), \"to\": \"+...\" "
                            "or \"country\": \"84\", \"text\": \"...\" or \"segments\": 1-10, \"tags\": {...}}",
                            t->path, t->line);
        return 1;
    }
}

/* ---- results ---- */

static int sim_hist_bucket(double ms) {
    int b = ms < 1 ? 0 : (int)(log(ms + 1) / log(SIM_HIST_STEP));
    return b < SIM_HIST_BUCKETS ? b : SIM_HIST_BUCKETS - 1;
}

static double sim_hist_percentile(const sim_result *r, double q) {
    if (r->hist_count == 0) return 0;
    long want = (long)ceil(q * (double)r->hist_count), seen = 0;
    if (want < 1) want = 1;
    for (int b = 0; b < SIM_HIST_BUCKETS; b++) {
        seen += r->hist[b];
        if (seen >= want) return round(exp(((double)b + 0.5) * log(SIM_HIST_STEP)) - 1);
    }
    return 0;
}

static sim_country_stats *sim_country(sim_result *r, int country) {
    for (int i = 0; i < r->country_count; i++)
        if (r->countries[i].country == country) return &r->countries[i];
    if (r->country_count == SIM_MAX_COUNTRIES) country = 0;
    for (int i = 0; i < r->country_count; i++)
        if (r->countries[i].country == country) return &r->countries[i];
    sim_country_stats *c = &r->countries[r->country_count++];
    c->country = country;
    return c;
}

static void sim_timeline_add(sim_result *r, int64_t t_ms, int delivered) {
    int minute = t_ms < 0 ? 0 : (int)(t_ms / 60000);
    if (minute >= r->minutes) {
        int n = minute + 1;
        r->timeline_accepted = realloc(r->timeline_accepted, sizeof(long) * (size_t)n);
        r->timeline_delivered = realloc(r->timeline_delivered, sizeof(long) * (size_t)n);
        if (!r->timeline_accepted || !r->timeline_delivered) abort();
        for (int i = r->minutes; i < n; i++) r->timeline_accepted[i] = r->timeline_delivered[i] = 0;
        r->minutes = n;
    }
    if (delivered) r->timeline_delivered[minute]++;
    else
        r->timeline_accepted[minute]++;
}

/* What a message became, read from the store: counted once. */
static void sim_tally(sim_run *run, sim_live *l, const sr_message *m) {
    sim_result *r = run->res;
    if (m->status == SR_ST_SENT) r->no_report++;
    else
        r->by_status[m->status]++;
    /* Steps along the route: after a failure, a bad report, a missed report
     * deadline, or over a provider whose circuit was open (no attempt there). */
    r->fallbacks += m->route_index;
    for (int i = 1; i < m->attempt_count; i++) {
        const char *a = m->attempts[i - 1].provider, *b = m->attempts[i].provider;
        if (a && b && strcmp(a, b) == 0) r->retries++;
    }
    if (m->status == SR_ST_DELIVERED) {
        int64_t at = 0;
        for (int i = 0; i < m->history_count; i++)
            if (m->history[i].status == SR_ST_DELIVERED) at = m->history[i].at_ms;
        double ms = (double)(at - m->created_at_ms);
        r->hist[sim_hist_bucket(ms)]++;
        r->hist_count++;
        sim_timeline_add(r, at - SIM_START_MS, 1);
        sim_country(r, l->country)->delivered++;
    }
    l->tallied = 1;
}

/* ---- the live set (messages in flight) ---- */

static sim_live *sim_live_find(sim_run *run, const char *id) {
    for (sim_live *l = run->table[sr_fnv1a_str(SR_FNV1A_INIT, id) & (run->table_size - 1)]; l; l = l->next)
        if (strcmp(l->id, id) == 0) return l;
    return NULL;
}

static void sim_live_grow(sim_run *run) {
    size_t n = run->table_size ? run->table_size * 2 : 4096;
    sim_live **t = sim_calloc(n, sizeof *t);
    for (size_t i = 0; i < run->table_size; i++)
        for (sim_live *l = run->table[i], *next; l; l = next) {
            next = l->next;
            size_t h = sr_fnv1a_str(SR_FNV1A_INIT, l->id) & (n - 1);
            l->next = t[h];
            t[h] = l;
        }
    free(run->table);
    run->table = t;
    run->table_size = n;
}

static sim_live *sim_live_add(sim_run *run, const char *id) {
    if (run->live_count * 2 >= run->table_size) sim_live_grow(run);
    sim_live *l = sim_calloc(1, sizeof *l);
    sr_str_copy(l->id, sizeof l->id, id);
    size_t h = sr_fnv1a_str(SR_FNV1A_INIT, id) & (run->table_size - 1);
    l->next = run->table[h];
    run->table[h] = l;
    run->live_count++;
    return l;
}

static void sim_live_remove(sim_run *run, sim_live *l) {
    sim_live **pp = &run->table[sr_fnv1a_str(SR_FNV1A_INIT, l->id) & (run->table_size - 1)];
    while (*pp != l) pp = &(*pp)->next;
    *pp = l->next;
    run->live_count--;
    free(l);
}

static void sim_mark(sim_run *run, sim_live *l) {
    if (!l || l->dirty) return;
    if (run->dirty_count == run->dirty_cap) {
        run->dirty_cap = run->dirty_cap ? run->dirty_cap * 2 : 256;
        run->dirty = realloc(run->dirty, sizeof *run->dirty * (size_t)run->dirty_cap);
        if (!run->dirty) abort();
    }
    l->dirty = 1;
    run->dirty[run->dirty_count++] = l;
}

/* Looks at the messages something happened to: the final ones are counted,
 * and leave once no report of theirs is still to come. */
static void sim_check_dirty(sim_run *run) {
    for (int i = 0; i < run->dirty_count; i++) {
        sim_live *l = run->dirty[i];
        l->dirty = 0;
        if (!l->tallied) {
            sr_message m;
            if (sr_store_get_message(run->core.store, l->id, &m) == 0) {
                if (sr_status_is_final(m.status)) sim_tally(run, l, &m);
                sr_message_free(&m);
            }
        }
        if (l->tallied && l->pending == 0) sim_live_remove(run, l);
    }
    run->dirty_count = 0;
}

/* ---- events ---- */

static void sim_push(sim_run *run, int64_t at_ms, int kind, void *p) {
    if (run->heap_count == run->heap_cap) {
        run->heap_cap = run->heap_cap ? run->heap_cap * 2 : 1024;
        run->heap = realloc(run->heap, sizeof *run->heap * (size_t)run->heap_cap);
        if (!run->heap) abort();
    }
    sim_event ev = {at_ms, run->seq++, kind, p};
    int i = run->heap_count++;
    while (i > 0) {
        int parent = (i - 1) / 2;
        sim_event *q = &run->heap[parent];
        if (q->at_ms < ev.at_ms || (q->at_ms == ev.at_ms && q->seq < ev.seq)) break;
        run->heap[i] = *q;
        i = parent;
    }
    run->heap[i] = ev;
}

static sim_event sim_pop(sim_run *run) {
    sim_event top = run->heap[0], last = run->heap[--run->heap_count];
    int i = 0, n = run->heap_count;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && (run->heap[c + 1].at_ms < run->heap[c].at_ms ||
                          (run->heap[c + 1].at_ms == run->heap[c].at_ms && run->heap[c + 1].seq < run->heap[c].seq)))
            c++;
        if (last.at_ms < run->heap[c].at_ms || (last.at_ms == run->heap[c].at_ms && last.seq < run->heap[c].seq)) break;
        run->heap[i] = run->heap[c];
        i = c;
    }
    if (n > 0) run->heap[i] = last;
    return top;
}

/* ---- the simulated providers ---- */

static int sim_provider_index(const sim_run *run, const sr_provider *p) {
    for (int i = 0; i < run->core.rules->provider_count; i++)
        if (&run->core.rules->providers[i] == p || strcmp(run->core.rules->providers[i].name, p->name) == 0) return i;
    return -1;
}

/* The scheduler's transport: each message of the request gets its outcome
 * drawn from the provider's model; the answer comes after the slowest send
 * latency among them (a timeout past the provider's timeout_ms); accepted
 * messages get their delivery report, if any, a report latency later. */
/* The error status of a refused send: one of the model's errors by weight,
 * 503 when it names none (the provider is down). */
static int sim_error_status(sim_run *run, const sim_params *P) {
    if (P->error_count == 0) return 503;
    double total = 0;
    for (int e = 0; e < P->error_count; e++) total += P->errors[e].weight;
    if (!(total > 0)) return 503;
    double u = sr_sim_random_unit(&run->random) * total;
    int e;
    for (e = 0; e < P->error_count - 1 && u >= P->errors[e].weight; e++) u -= P->errors[e].weight;
    return P->errors[e].status;
}

/* What the provider does with one message: its answer *status (200, an
 * error status), the report to come (*report_status, -1: none) after
 * *report_ms. Returns the send latency drawn. */
static double sim_draw_send(sim_run *run, const sim_model *sm, int country, int64_t t_ms, int *status,
                            int *report_status, double *report_ms) {
    sim_params P;
    sim_params_at(run, sm, country, t_ms, &P);
    double lat = sim_lognormal(&run->random, P.send_p50_ms, P.send_p95_ms);
    *report_status = -1;
    if (sr_sim_random_unit(&run->random) < P.accept) {
        *status = 200;
        double u = sr_sim_random_unit(&run->random);
        if (u < P.delivered) *report_status = SR_ST_DELIVERED;
        else if (u < P.delivered + P.undelivered)
            *report_status = SR_ST_UNDELIVERED;
        else if (u < P.delivered + P.undelivered + P.expired)
            *report_status = SR_ST_EXPIRED;
        *report_ms = sim_lognormal(&run->random, P.report_p50_ms, P.report_p95_ms);
    } else {
        *status = sim_error_status(run, &P);
    }
    return lat;
}

/* The outcome of a send the provider did not accept (st: its status, 0 timeout). */
static void sim_refused(sr_adapter_outcome *o, int st) {
    if (st == 0) {
        o->retry = 1;
        snprintf(o->error, sizeof o->error, "timeout: no answer in time");
    } else if (st == 429 || st == 408 || st >= 500) {
        o->retry = 1;
        snprintf(o->error, sizeof o->error, "HTTP %d", st);
    } else if (st == 401 || st == 403) {
        o->about_provider = 1;
        snprintf(o->error, sizeof o->error, "HTTP %d: unauthorized", st);
    } else {
        snprintf(o->error, sizeof o->error, "HTTP %d: rejected", st);
    }
}

/* Schedules the report of an accepted send for at_ms. */
static void sim_schedule_report(sim_run *run, int pi, sim_live *l, const char *provider_id, int report_status,
                                double cost, int64_t at_ms) {
    sim_report_event *re = sim_calloc(1, sizeof *re);
    re->provider = pi;
    re->live = l;
    re->attempt = l ? l->accepted : 0;
    sr_str_copy(re->rep.provider_id, sizeof re->rep.provider_id, provider_id);
    re->rep.status = report_status;
    re->rep.cost = cost;
    re->rep.has_cost = 1;
    if (report_status != SR_ST_DELIVERED)
        snprintf(re->rep.error, sizeof re->rep.error, "simulated %s", sr_status_name(report_status));
    if (l) l->pending++;
    sim_push(run, at_ms, EV_REPORT, re);
}

/* The outcome of an accepted send: a provider id and its cost (returned), counted. */
static double sim_accepted(sim_run *run, const sr_provider *p, int pi, const sim_model *sm, int64_t t_ms,
                           sr_adapter_outcome *o, sim_live *l, int segments) {
    sim_result *r = run->res;
    o->ok = 1;
    snprintf(o->provider_id, sizeof o->provider_id, "%.64s-%ld", p->name, ++run->provider_ids);
    sim_params P;
    sim_params_at(run, sm, l ? l->country : 0, t_ms, &P);
    double cost = P.price * segments;
    r->cost_total += cost;
    if (pi >= 0) r->providers[pi].cost += cost;
    if (l) {
        sim_country(r, l->country)->cost += cost;
        l->accepted++;
    }
    return cost;
}

static void sim_transport(void *ud, const sr_provider *p, sr_message *const *msgs, int n, void *request,
                          sr_transport_answer answer) {
    sim_run *run = ud;
    int pi = sim_provider_index(run, p);
    const sim_model *sm = pi >= 0 ? run->model_of[pi] : NULL;
    int64_t now = sr_now_ms(), t_ms = now - SIM_START_MS;
    sim_answer *a = sim_calloc(1, sizeof *a);
    a->request = request;
    a->answer = answer;
    a->count = n;
    a->outs = sim_calloc((size_t)n, sizeof *a->outs);
    a->live = sim_calloc((size_t)n, sizeof *a->live);
    int *status = sim_calloc((size_t)n, sizeof *status); /* 200 accepted, an error status, 0 timeout */
    double latency_ms = 0;
    double *report_ms = sim_calloc((size_t)n, sizeof *report_ms);
    int *report_status = sim_calloc((size_t)n, sizeof *report_status);
    for (int i = 0; i < n; i++) {
        sim_live *l = sim_live_find(run, msgs[i]->id);
        a->live[i] = l;
        /* The answer event holds it: it stays while the send is out (the
         * message may end meanwhile: expired, say). */
        if (l) l->pending++;
        double lat = sim_draw_send(run, sm, l ? l->country : 0, t_ms, &status[i], &report_status[i], &report_ms[i]);
        if (lat > latency_ms) latency_ms = lat;
    }
    int timed_out = p->timeout_ms > 0 && latency_ms >= (double)p->timeout_ms;
    for (int i = 0; i < n && !timed_out; i++)
        if (status[i] == 0) timed_out = 1;
    int64_t due = now + (timed_out ? p->timeout_ms : (int64_t)llround(latency_ms));
    a->http_status = -1;
    for (int i = 0; i < n && !timed_out; i++)
        a->http_status = a->http_status < 0 || a->http_status == status[i] ? status[i] : 200;
    if (timed_out) a->http_status = 0;
    for (int i = 0; i < n; i++) {
        sr_adapter_outcome *o = &a->outs[i];
        sim_live *l = a->live[i];
        o->retry_after_s = -1;
        if (pi >= 0) run->res->providers[pi].attempts++;
        int st = timed_out ? 0 : status[i];
        if (st != 200) {
            sim_refused(o, st);
            continue;
        }
        double cost = sim_accepted(run, p, pi, sm, t_ms, o, l, l ? l->segments : msgs[i]->segments);
        int64_t after = (int64_t)llround(report_ms[i]);
        if (report_status[i] >= 0)
            sim_schedule_report(run, pi, l, o->provider_id, report_status[i], cost, due + (after < 1 ? 1 : after));
    }
    free(status);
    free(report_ms);
    free(report_status);
    sim_push(run, due, EV_ANSWER, a);
}

/* ---- running the engine ---- */

static void sim_fatal(sim_run *run, const char *what) {
    fprintf(stderr, "smsrules simulate: %s: %s\n", run->res->rules, what);
    exit(2);
}

static void sim_settle(sim_run *run) {
    uint64_t deadline = uv_hrtime() + (uint64_t)SIM_SETTLE_LIMIT_MS * 1000000u;
    for (;;) {
        int64_t wake_ms;
        if (sr_sim_engine_idle(&run->core, &wake_ms)) return;
        if (uv_hrtime() > deadline) sim_fatal(run, "the engine did not settle in time");
        uv_run(&run->loop, wake_ms == 0 ? UV_RUN_NOWAIT : UV_RUN_ONCE);
    }
}

typedef struct sim_put {
    sim_run *run;
    int country, segments;
} sim_put;

static void sim_put_done(sr_store_txn *t, void *ud) {
    sim_put *p = ud;
    sim_run *run = p->run;
    int st = sr_store_txn_status(t);
    int code = st ? st : sr_store_txn_result(t, 0);
    const char *id = sr_store_txn_id(t, 0);
    run->core.in_flight--;
    if (code != 0 || !id) {
        run->res->refused++;
    } else {
        sim_live *l = sim_live_add(run, id);
        l->country = p->country;
        l->segments = p->segments;
        sim_country(run->res, p->country)->messages++;
        /* A message final at once (opted out, rejected by a rule) is counted at the end of the run. */
    }
    free(p);
    sr_scheduler_kick(run->core.scheduler);
}

/* POST /v1/messages with the input's body, as the API takes it. */
static void sim_submit(sim_run *run, const sim_input *in) {
    sim_result *r = run->res;
    r->messages++;
    sim_timeline_add(r, in->at_ms, 0);
    sr_json_doc doc;
    if (sr_json_parse(&doc, in->body.data, in->body.len, NULL, 0) != 0) {
        r->refused++;
        return;
    }
    sr_message m;
    const char *idem = NULL;
    uint64_t hash = 0;
    sr_reasons reasons;
    if (sr_submission_parse(doc.root, &run->core.config, NULL, sr_now_ms(), "", &m, &idem, &hash, &reasons) != 0) {
        sr_json_doc_free(&doc);
        r->refused++;
        return;
    }
    sim_put *p = sim_calloc(1, sizeof *p);
    p->run = run;
    p->country = in->country;
    p->segments = m.segments > 0 ? m.segments : in->segments;
    sr_store_txn *t = sr_store_txn_new(run->core.store);
    sr_store_txn_put_message(t, &m, idem, hash);
    sr_message_free(&m);
    sr_json_doc_free(&doc);
    run->core.in_flight++;
    sr_store_txn_submit(t, sim_put_done, p);
}

static void sim_report_applied(int code, void *ud) {
    sim_run *run = ud;
    if (code != 0) sr_error("simulate: a delivery report could not be stored", "error", sr_store_strerror(code));
    run->core.in_flight--;
}

static void sim_run_event(sim_run *run, sim_event *ev) {
    if (ev->kind == EV_ANSWER) {
        sim_answer *a = ev->p;
        a->answer(a->request, a->outs, a->http_status);
        /* An accepted message is `sent`, not final: only the others may have ended. */
        for (int i = 0; i < a->count; i++) {
            sim_live *l = a->live[i];
            if (!l) continue;
            l->pending--;
            if (!a->outs[i].ok || l->tallied) sim_mark(run, l);
        }
        free(a->outs);
        free(a->live);
        free(a);
        return;
    }
    sim_report_event *re = ev->p;
    sim_live *l = re->live;
    if (l) {
        l->pending--;
        /* A delivered for an attempt while a later one was already out: the
         * recipient may get the message twice. */
        if (re->rep.status == SR_ST_DELIVERED && re->attempt < l->accepted && !l->risk) {
            l->risk = 1;
            run->res->double_delivery_risk++;
        }
        sim_mark(run, l);
    }
    if (re->rep.status == SR_ST_DELIVERED && re->provider >= 0) run->res->providers[re->provider].delivered++;
    run->core.in_flight++;
    sr_reports_apply(run->core.reports, run->core.rules->providers[re->provider].name, &re->rep, 1, sim_report_applied,
                     run);
    free(re);
}

static void sim_expired(const char *id, void *ud) {
    sim_run *run = ud;
    sim_mark(run, sim_live_find(run, id));
}

/* The daemon's sweep, once a simulated second: queued messages whose validity ended. */
static void sim_expire(sim_run *run, int64_t now) {
    if (now / 1000 == run->last_sweep_s) return;
    run->last_sweep_s = now / 1000;
    sr_sim_engine_expire(&run->core, sim_expired, run);
}

static int sim_engine_start(sim_run *run, const char *rules_path, uint64_t seed, char *err, size_t errlen) {
    if (uv_loop_init(&run->loop) != 0) return sim_fail(err, errlen, "cannot start an event loop");
    run->loop_open = 1;
    if (sr_sim_engine_start(&run->core, &run->loop, rules_path, "smsrules-simulate", 64u << 20, seed, sim_transport,
                            run, err, errlen) != 0)
        return -1;
    for (int i = 0; i < run->core.rules->provider_count; i++) {
        const char *name = run->core.rules->providers[i].name;
        for (int j = 0; j < run->models->count; j++)
            if (strcmp(run->models->providers[j].name, name) == 0) run->model_of[i] = &run->models->providers[j];
        if (!run->model_of[i])
            return sim_fail(err, errlen, "%s: provider '%s' has no model in the models file", rules_path, name);
        sr_str_copy(run->res->provider_names[i], sizeof run->res->provider_names[i], name);
    }
    run->res->provider_count = run->core.rules->provider_count;
    /* The providers' draws: a stream of their own, apart from the retry jitter's. */
    sr_sim_random_seed(&run->random, seed ^ 0x70726f7669646572ULL);
    run->last_sweep_s = -1;
    return 0;
}

/* Answers the requests the simulated providers still hold; reports still to come are dropped. */
static int sim_flush(void *ud) {
    sim_run *run = ud;
    int n = 0;
    while (run->heap_count > 0) {
        sim_event ev = sim_pop(run);
        if (ev.kind == EV_ANSWER) sim_run_event(run, &ev);
        else
            free(ev.p);
        n++;
    }
    return n;
}

/* Stops and frees whatever sim_engine_start got to. */
static void sim_engine_stop(sim_run *run) {
    if (run->core.scheduler && sr_sim_engine_stop(&run->core, sim_flush, run, SIM_SETTLE_LIMIT_MS) != 0)
        sim_fatal(run, "the engine did not stop in time");
    if (run->loop_open) {
        uv_run(&run->loop, UV_RUN_DEFAULT);
        uv_loop_close(&run->loop);
    }
    sim_flush(run);
    for (size_t i = 0; i < run->table_size; i++)
        for (sim_live *l = run->table[i], *next; l; l = next) {
            next = l->next;
            free(l);
        }
    free(run->table);
    free(run->heap);
    free(run->dirty);
}

static void sim_progress(long done, long total, int strategy, int strategies) {
    int width = 40, filled = total > 0 ? (int)((double)done / (double)total * width) : 0;
    if (filled > width) filled = width;
    fprintf(stderr, "\rstrategy %d/%d [", strategy, strategies);
    for (int i = 0; i < width; i++) fputc(i < filled ? '#' : '.', stderr);
    fprintf(stderr, "] %ld/%ld", done, total);
    fflush(stderr);
}

/* Runs one strategy over the whole traffic into res. */
/* The next moment of the run after now: the next message (next_input_ms,
 * INT64_MAX: none left), the next simulated event or what the engine waits
 * for (*kick: a look at the queue is due then), rounded up to a step of
 * resolution_ms: what falls due within one step runs together at its end,
 * in fewer, larger store commits. INT64_MAX when the run is over: nothing
 * left, or nothing but report deadlines long after the last activity. */
static int64_t sim_next_moment(sim_run *run, int64_t next_input_ms, int64_t now, int64_t last_activity,
                               int64_t resolution_ms, int *kick) {
    int64_t next = next_input_ms;
    if (run->heap_count > 0 && run->heap[0].at_ms < next) next = run->heap[0].at_ms;
    int idle = next == INT64_MAX;
    next = sr_sim_engine_next(&run->core, now, idle ? now + SIM_DRAIN_MS + 1 : next, kick);
    if (next == now + SIM_DRAIN_MS + 1 && idle) return INT64_MAX;
    if (next == INT64_MAX || next > last_activity + SIM_DRAIN_MS) return INT64_MAX;
    if (next <= now) next = now + 1;
    if (resolution_ms > 1) {
        int64_t rel = next - SIM_START_MS;
        next = SIM_START_MS + (rel + resolution_ms - 1) / resolution_ms * resolution_ms;
    }
    return next;
}

/* What is still in flight at the end: counted as it stands. */
static void sim_tally_in_flight(sim_run *run) {
    for (size_t i = 0; i < run->table_size; i++)
        for (sim_live *l = run->table[i]; l; l = l->next) {
            if (l->tallied) continue;
            sr_message m;
            if (sr_store_get_message(run->core.store, l->id, &m) != 0) continue;
            if (sr_status_is_final(m.status) || m.status == SR_ST_SENT) sim_tally(run, l, &m);
            else
                run->res->by_status[SR_ST_QUEUED]++;
            sr_message_free(&m);
        }
}

static int sim_run_strategy(const sim_models *models, sim_traffic *traffic, const char *rules_path, uint64_t seed,
                            int64_t resolution_ms, int index, int count, sim_result *res, char *err, size_t errlen) {
    sim_run *run = sim_calloc(1, sizeof *run);
    run->models = models;
    run->res = res;
    int rc = -1;
    sim_input in = {0}; /* its body: an empty sr_buf */
    sr_clock_freeze_at(SIM_START_MS);
    sim_traffic_rewind(traffic, seed);
    if (sim_engine_start(run, rules_path, seed, err, errlen) != 0) goto done;
    sim_settle(run);
    int have = sim_traffic_next(traffic, &in, err, errlen);
    if (have < 0) goto done;
    int progress = isatty(2);
    uint64_t started = uv_hrtime(), last_progress = started;
    int64_t last_activity = SIM_START_MS;
    for (;;) {
        int64_t now = sr_now_ms();
        while (have > 0 && SIM_START_MS + in.at_ms <= now) {
            sim_submit(run, &in);
            have = sim_traffic_next(traffic, &in, err, errlen);
            if (have < 0) goto done;
        }
        while (run->heap_count > 0 && run->heap[0].at_ms <= now) {
            sim_event ev = sim_pop(run);
            sim_run_event(run, &ev);
        }
        sim_settle(run);
        sim_check_dirty(run);
        if (progress && uv_hrtime() - last_progress > 200000000u) {
            last_progress = uv_hrtime();
            if (!traffic->jsonl) sim_progress(res->messages, traffic->messages, index + 1, count);
        }
        if (have > 0 || run->heap_count > 0) last_activity = now;
        int kick = 0;
        int64_t next_input = have > 0 ? SIM_START_MS + in.at_ms : INT64_MAX;
        int64_t next = sim_next_moment(run, next_input, now, last_activity, resolution_ms, &kick);
        if (next == INT64_MAX) break;
        sr_clock_advance_ms(next - now);
        now = sr_now_ms();
        sim_expire(run, now);
        /* A look at the queue when a queued message falls due or a lane's
         * wait ends (new messages and answers wake the scheduler themselves):
         * with a backlog, each look reads the messages it cannot send yet. */
        if (kick) sr_scheduler_kick(run->core.scheduler);
        /* Report deadlines that fell due (a missed dlr_timeout sends a message on). */
        sr_reports_tick_now(run->core.reports);
    }
    sim_tally_in_flight(run);
    if (progress && !traffic->jsonl) {
        sim_progress(res->messages, traffic->messages, index + 1, count);
        fputc('\n', stderr);
    }
    rc = 0;
done:
    sr_buf_free(&in.body);
    sim_engine_stop(run);
    free(run);
    return rc;
}

/* ---- output ---- */

/* A number with up to 6 decimals, trailing zeros cut: the same bytes for the
 * same value (null when not finite). */
static void sim_put_num(sr_jw *w, double v) {
    if (!isfinite(v)) {
        sr_jw_null(w);
        return;
    }
    char s[64];
    snprintf(s, sizeof s, "%.6f", v);
    char *dot = strchr(s, '.');
    if (dot) {
        char *end = s + strlen(s) - 1;
        while (end > dot && *end == '0') *end-- = '\0';
        if (end == dot) *end = '\0';
    }
    if (strcmp(s, "-0") == 0) snprintf(s, sizeof s, "0");
    sr_jw_raw(w, s, strlen(s));
}

static void sim_field_num(sr_jw *w, const char *key, double v) {
    sr_jw_key(w, key);
    sim_put_num(w, v);
}

static double sim_ratio(long a, long b) { return b > 0 ? (double)a / (double)b : 0; }

/* "providers": {NAME: {attempts, delivered, cost}} and "timeline": [{t_s, accepted, delivered}] (running totals
 * per minute) of one strategy. */
static void sim_json_providers_timeline(sr_jw *w, const sim_result *r) {
    sr_jw_key(w, "providers");
    sr_jw_object_begin(w);
    for (int i = 0; i < r->provider_count; i++) {
        sr_jw_key(w, r->provider_names[i]);
        sr_jw_object_begin(w);
        sr_jw_field_int(w, "attempts", r->providers[i].attempts);
        sr_jw_field_int(w, "delivered", r->providers[i].delivered);
        sim_field_num(w, "cost", r->providers[i].cost);
        sr_jw_object_end(w);
    }
    sr_jw_object_end(w);
    sr_jw_field_int(w, "fallbacks", r->fallbacks);
    sr_jw_field_int(w, "double_delivery_risk", r->double_delivery_risk);
    sr_jw_field_int(w, "retries", r->retries);
    sr_jw_key(w, "timeline");
    sr_jw_array_begin(w);
    long acc = 0, del = 0;
    for (int m = 0; m < r->minutes; m++) {
        acc += r->timeline_accepted[m];
        del += r->timeline_delivered[m];
        sr_jw_object_begin(w);
        sr_jw_field_int(w, "t_s", (m + 1) * 60);
        sr_jw_field_int(w, "accepted", acc);
        sr_jw_field_int(w, "delivered", del);
        sr_jw_object_end(w);
    }
    sr_jw_array_end(w);
}

/* "countries": {"CODE" or "other": {messages, delivered, cost}} of one strategy. */
static void sim_json_countries(sr_jw *w, const sim_result *r) {
    sr_jw_key(w, "countries");
    sr_jw_object_begin(w);
    for (int i = 0; i < r->country_count; i++) {
        const sim_country_stats *c = &r->countries[i];
        char code[16];
        snprintf(code, sizeof code, "%d", c->country);
        sr_jw_key(w, c->country ? code : "other");
        sr_jw_object_begin(w);
        sr_jw_field_int(w, "messages", c->messages);
        sr_jw_field_int(w, "delivered", c->delivered);
        sim_field_num(w, "cost", c->cost);
        sr_jw_object_end(w);
    }
    sr_jw_object_end(w);
}

/* The figures of one strategy, one object. */
static void sim_json_strategy(sr_jw *w, sim_result *r) {
    long delivered = r->by_status[SR_ST_DELIVERED];
    sr_jw_object_begin(w);
    sr_jw_field_str(w, "name", r->name);
    sr_jw_field_str(w, "rules", r->rules);
    sr_jw_field_int(w, "messages", r->messages);
    sr_jw_field_int(w, "delivered", delivered);
    sim_field_num(w, "delivered_ratio", sim_ratio(delivered, r->messages));
    sr_jw_field_int(w, "undelivered", r->by_status[SR_ST_UNDELIVERED]);
    sr_jw_field_int(w, "expired", r->by_status[SR_ST_EXPIRED]);
    sr_jw_field_int(w, "failed", r->by_status[SR_ST_FAILED]);
    sr_jw_field_int(w, "rejected", r->by_status[SR_ST_REJECTED]);
    sr_jw_field_int(w, "no_report", r->no_report);
    sr_jw_field_int(w, "refused", r->refused);
    sr_jw_field_int(w, "pending", r->by_status[SR_ST_QUEUED]);
    sr_jw_key(w, "time_to_delivered_ms");
    sr_jw_object_begin(w);
    sim_field_num(w, "p50", sim_hist_percentile(r, 0.50));
    sim_field_num(w, "p95", sim_hist_percentile(r, 0.95));
    sim_field_num(w, "p99", sim_hist_percentile(r, 0.99));
    sr_jw_object_end(w);
    sim_field_num(w, "cost_total", r->cost_total);
    sim_field_num(w, "cost_per_delivered", delivered ? r->cost_total / (double)delivered : 0);
    sim_json_providers_timeline(w, r);
    sim_json_countries(w, r);
    sr_jw_object_end(w);
}

/* The --json document: {"strategies": [...]}, one strategy per line. */
static void sim_json(sr_buf *b, sim_result *res, int count) {
    sr_jw w;
    sr_jw_init(&w, b);
    sr_jw_object_begin(&w);
    sr_jw_key(&w, "strategies");
    sr_jw_array_begin(&w);
    for (int s = 0; s < count; s++) {
        sr_jw_break(&w, "");
        sim_json_strategy(&w, &res[s]);
    }
    sr_buf_putc(b, '\n');
    sr_jw_array_end(&w);
    sr_jw_object_end(&w);
    sr_buf_putc(b, '\n');
}

/* The terminal table: a row per figure, a column per strategy, the best
 * value of each comparable row marked with '*'. */
typedef struct sim_row {
    const char *label;
    int better; /* 1 higher is better, -1 lower, 0 not compared */
    double v[64];
    char text[64][32];
} sim_row;

static void sim_row_add(sim_row *rows, int *n, const char *label, int better) {
    memset(&rows[*n], 0, sizeof rows[*n]);
    rows[*n].label = label;
    rows[*n].better = better;
    (*n)++;
}

enum {
    SIM_ROW_MESSAGES,
    SIM_ROW_DELIVERED,
    SIM_ROW_P50 = SIM_ROW_DELIVERED + 6,
    SIM_ROW_COST = SIM_ROW_P50 + 3,
    SIM_ROW_CPD,
    SIM_ROW_FALLBACKS,
    SIM_ROW_RETRIES,
    SIM_ROW_RISK,
    SIM_ROW_PROVIDERS
};

/* The rows of the table: the fixed ones (in the order of the enum above),
 * then one attempts row per provider any strategy declares (its name into
 * pnames). Returns the number of rows; *provider_rows gets how many of them
 * are providers'. */
static int sim_table_rows(sim_row *rows, const sim_result *res, int count, const char **pnames, int *provider_rows) {
    static const char *const labels[] = {
        "messages",   "delivered",        "undelivered",      "expired",          "failed",
        "rejected",   "no report",        "to delivered p50", "to delivered p95", "to delivered p99",
        "cost total", "cost / delivered", "fallbacks",        "retries",          "double-delivery risk"};
    static const int better[] = {0, 1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, -1};
    static char provider_labels[64][96];
    int n = 0;
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++) sim_row_add(rows, &n, labels[i], better[i]);
    *provider_rows = 0;
    for (int s = 0; s < count; s++)
        for (int i = 0; i < res[s].provider_count; i++) {
            int seen = 0;
            for (int k = 0; k < *provider_rows; k++) seen |= strcmp(pnames[k], res[s].provider_names[i]) == 0;
            if (seen || *provider_rows >= 32) continue;
            pnames[*provider_rows] = res[s].provider_names[i];
            snprintf(provider_labels[*provider_rows], sizeof provider_labels[0], "%s attempts",
                     res[s].provider_names[i]);
            sim_row_add(rows, &n, provider_labels[*provider_rows], 0);
            (*provider_rows)++;
        }
    return n;
}

/* Column s of the table: the figures of strategy r. */
static void sim_table_column(sim_row *rows, int s, const sim_result *r, const char **pnames, int provider_rows) {
    long d = r->by_status[SR_ST_DELIVERED];
    double m = (double)(r->messages ? r->messages : 1);
    long counts[] = {d,
                     r->by_status[SR_ST_UNDELIVERED],
                     r->by_status[SR_ST_EXPIRED],
                     r->by_status[SR_ST_FAILED],
                     r->by_status[SR_ST_REJECTED],
                     r->no_report};
    rows[SIM_ROW_MESSAGES].v[s] = (double)r->messages;
    snprintf(rows[SIM_ROW_MESSAGES].text[s], 32, "%ld", r->messages);
    for (int k = 0; k < 6; k++) {
        rows[SIM_ROW_DELIVERED + k].v[s] = (double)counts[k] / m;
        snprintf(rows[SIM_ROW_DELIVERED + k].text[s], 32, "%.2f%%", 100.0 * (double)counts[k] / m);
    }
    double q[] = {0.5, 0.95, 0.99};
    for (int k = 0; k < 3; k++) {
        rows[SIM_ROW_P50 + k].v[s] = d ? sim_hist_percentile(r, q[k]) : INFINITY;
        snprintf(rows[SIM_ROW_P50 + k].text[s], 32, d ? "%.1f s" : "-", sim_hist_percentile(r, q[k]) / 1000.0);
    }
    rows[SIM_ROW_COST].v[s] = r->cost_total;
    snprintf(rows[SIM_ROW_COST].text[s], 32, "%.2f", r->cost_total);
    rows[SIM_ROW_CPD].v[s] = d ? r->cost_total / (double)d : INFINITY;
    snprintf(rows[SIM_ROW_CPD].text[s], 32, d ? "%.5f" : "-", d ? r->cost_total / (double)d : 0);
    snprintf(rows[SIM_ROW_FALLBACKS].text[s], 32, "%ld", r->fallbacks);
    snprintf(rows[SIM_ROW_RETRIES].text[s], 32, "%ld", r->retries);
    rows[SIM_ROW_RISK].v[s] = (double)r->double_delivery_risk;
    snprintf(rows[SIM_ROW_RISK].text[s], 32, "%ld", r->double_delivery_risk);
    for (int k = 0; k < provider_rows; k++) {
        snprintf(rows[SIM_ROW_PROVIDERS + k].text[s], 32, "-");
        for (int i = 0; i < r->provider_count; i++)
            if (strcmp(r->provider_names[i], pnames[k]) == 0)
                snprintf(rows[SIM_ROW_PROVIDERS + k].text[s], 32, "%ld (%.1f%%)", r->providers[i].attempts,
                         100.0 * (double)r->providers[i].attempts / m);
    }
}

/* One printed row, its best value marked when the strategies can be compared on it. */
static void sim_table_print_row(const sim_row *row, int count, int label_w, int col_w) {
    double best = 0;
    int have = 0;
    for (int s = 0; s < count && row->better && count > 1; s++) {
        double v = row->v[s];
        if (!isfinite(v)) continue;
        if (!have || (row->better > 0 ? v > best : v < best)) best = v;
        have = 1;
    }
    printf("%-*s", label_w, row->label);
    for (int s = 0; s < count; s++) {
        char cell[48];
        int mark = have && row->v[s] == best;
        snprintf(cell, sizeof cell, "%s%s", row->text[s], mark ? " *" : "  ");
        printf("%*s", col_w, cell);
    }
    printf("\n");
}

static void sim_table(sim_result *res, int count) {
    static sim_row rows[64];
    static const char *pnames[64];
    int provider_rows;
    int n = sim_table_rows(rows, res, count, pnames, &provider_rows);
    for (int s = 0; s < count && s < 64; s++) sim_table_column(rows, s, &res[s], pnames, provider_rows);
    if (count > 64) count = 64;
    int label_w = 22, col_w = 14;
    for (int s = 0; s < count; s++) {
        int w = (int)strlen(res[s].name) + 2;
        if (w > col_w) col_w = w;
    }
    printf("%-*s", label_w, "");
    for (int s = 0; s < count; s++) printf("%*s", col_w, res[s].name);
    printf("\n");
    for (int i = 0; i < n; i++) sim_table_print_row(&rows[i], count, label_w, col_w);
    if (count > 1) printf("(* the best value of the row)\n");
}

/* ---- the command ---- */

static const char usage_simulate[] =
    "usage: smsrules simulate --models MODELS.json --traffic TRAFFIC.json|TRAFFIC.jsonl [--seed N] [--json]\n"
    "                         [--html REPORT.html] STRATEGY.lua [STRATEGY.lua ...]\n"
    "\n"
    "Runs each strategy (a rules file) through the real engine on a virtual clock, with\n"
    "simulated providers drawn from the models, and compares what they yield.\n"
    "  -m, --models FILE    provider models (JSON): per provider a default, per-country\n"
    "                       overrides, and incidents over windows of simulated time\n"
    "  -t, --traffic FILE   a generator (JSON: messages, rate_per_s, countries, segments,\n"
    "                       tags) or a .jsonl file of messages (at_s, to, text or segments, tags)\n"
    "  -s, --seed N         seed of every random draw (default 1): the same seed, the same numbers\n"
    "  -j, --json           print the results as one JSON document instead of the table\n"
    "      --html FILE      also write an HTML report\n"
    "      --resolution-ms N  step of the virtual clock (default 10): what falls due within\n"
    "                       one step runs at its end; 1 is exact, larger is faster\n"
    "  -h, --help           this help\n"
    "See docs/strategy-lab.md for the file formats and every output column.\n";

/* What the command line asks for. */
typedef struct sim_options {
    const char *models_path, *traffic_path, *html;
    uint64_t seed;
    int64_t resolution_ms;
    int json;
} sim_options;

static const struct option sim_long_opts[] = {
    {"models", required_argument, NULL, 'm'}, {"traffic", required_argument, NULL, 't'},
    {"seed", required_argument, NULL, 's'},   {"json", no_argument, NULL, 'j'},
    {"html", required_argument, NULL, 'H'},   {"resolution-ms", required_argument, NULL, 'r'},
    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};

/* A number option (-r, -s) into o: 0, or 1 after the usage error. */
static int sim_option_number(sim_options *o, int ch, const char *arg) {
    char *end;
    if (ch == 'r') {
        long v = strtol(arg, &end, 10);
        if (*end || !*arg || v < 1 || v > 60000) {
            fprintf(stderr, "smsrules: --resolution-ms needs a whole number from 1 to 60000, not '%s'\n\n%s", arg,
                    usage_simulate);
            return 1;
        }
        o->resolution_ms = v;
        return 0;
    }
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (errno || *end || !*arg || arg[0] == '-') {
        fprintf(stderr, "smsrules: --seed needs a whole number >= 0, not '%s'\n\n%s", arg, usage_simulate);
        return 1;
    }
    o->seed = v;
    return 0;
}

/* Reads the options into o. Returns -1 to go on, else the exit code (help
 * printed, or a usage error). optind is left at the first strategy. */
static int sim_parse_options(int argc, char **argv, sim_options *o) {
    opterr = 0;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, ":m:t:s:jh", sim_long_opts, NULL)) != -1) {
        switch (ch) {
        case 'h': fputs(usage_simulate, stdout); return 0;
        case 'm': o->models_path = optarg; break;
        case 't': o->traffic_path = optarg; break;
        case 'j': o->json = 1; break;
        case 'H': o->html = optarg; break;
        case 'r':
        case 's':
            if (sim_option_number(o, ch, optarg) != 0) return 1;
            break;
        case ':':
            fprintf(stderr, "smsrules: option '%s' needs a value\n\n%s", argv[optind - 1], usage_simulate);
            return 1;
        default: fprintf(stderr, "smsrules: unknown option '%s'\n\n%s", argv[optind - 1], usage_simulate); return 1;
        }
    }
    if (!o->models_path || !o->traffic_path || optind >= argc) {
        fprintf(stderr, "smsrules: simulate needs --models, --traffic and at least one strategy file\n\n%s",
                usage_simulate);
        return 1;
    }
    return -1;
}

/* Writes the HTML report of the --json document doc_text to path; 0, or
 * the exit code 2. */
static int sim_write_html(const sr_buf *doc_text, const char *path) {
    int code = 0;
    sr_json_doc doc;
    sr_buf page;
    sr_buf_init(&page);
    if (sr_json_parse(&doc, doc_text->data, doc_text->len, NULL, 0) == 0) {
        if (sr_sim_report_html(doc.root, &page) == 0) {
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(page.data, 1, page.len, f) != page.len) {
                fprintf(stderr, "smsrules simulate: cannot write %s: %s\n", path, strerror(errno));
                code = 2;
            }
            if (f && fclose(f) != 0) code = 2;
        } else {
            fprintf(stderr, "smsrules simulate: the HTML report could not be rendered\n");
            code = 2;
        }
        sr_json_doc_free(&doc);
    }
    sr_buf_free(&page);
    return code;
}

/* Runs every strategy (files paths[0..count)) into res; 0, or 1 (printed). */
static int sim_run_all(const sim_options *o, sim_models *models, sim_traffic *traffic, char **paths, int count,
                       sim_result *res) {
    char err[1024];
    for (int s = 0; s < count; s++) {
        const char *path = paths[s];
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        res[s].name = sim_strdup(base);
        size_t bl = strlen(res[s].name);
        if (bl > 4 && strcmp(res[s].name + bl - 4, ".lua") == 0) res[s].name[bl - 4] = '\0';
        res[s].rules = sim_strdup(path);
        err[0] = '\0';
        if (sim_run_strategy(models, traffic, path, o->seed, o->resolution_ms, s, count, &res[s], err, sizeof err) !=
            0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
    }
    return 0;
}

/* Prints the results (table or --json) and writes the HTML report; the exit code. */
static int sim_output(const sim_options *o, sim_result *res, int count) {
    sr_buf out;
    sr_buf_init(&out);
    sim_json(&out, res, count);
    if (o->json) fwrite(out.data, 1, out.len, stdout);
    else
        sim_table(res, count);
    int code = o->html ? sim_write_html(&out, o->html) : 0;
    sr_buf_free(&out);
    return code;
}

int sr_simulate_main(int argc, char **argv) {
    sim_options o = {NULL, NULL, NULL, 1, SIM_DEFAULT_RESOLUTION_MS, 0};
    int code = sim_parse_options(argc, argv, &o);
    if (code >= 0) return code;
    sr_log_set_level(SR_LOG_ERROR);
    char err[1024] = "";
    sim_models models;
    sim_traffic traffic;
    memset(&traffic, 0, sizeof traffic);
    int count = argc - optind;
    sim_result *res = NULL;
    code = 1;
    if (sim_models_load(&models, o.models_path, err, sizeof err) != 0 ||
        sim_traffic_load(&traffic, o.traffic_path, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        goto done;
    }
    res = sim_calloc((size_t)count, sizeof *res);
    code = sim_run_all(&o, &models, &traffic, argv + optind, count, res);
    if (code == 0) code = sim_output(&o, res, count);
done:
    for (int s = 0; res && s < count; s++) {
        free(res[s].name);
        free(res[s].rules);
        free(res[s].timeline_accepted);
        free(res[s].timeline_delivered);
    }
    free(res);
    sim_models_free(&models);
    if (traffic.f) fclose(traffic.f);
    free(traffic.linebuf);
    free(traffic.numbers);
    return code;
}
