/* sim_fit: `smsrules models fit` and `smsrules traffic export`; see sim_fit.h. */
#include "tools/sim/sim_fit.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "codec/jsonw.h"
#include "codec/phone.h"
#include "store/store.h"

/* Latency samples kept per group: percentiles from a uniform sample of this size are within about
 * a point of rank of the true ones, and memory stays fixed however long the history. */
#define FIT_RESERVOIR 4096
/* Distinct HTTP statuses counted per group; rarer ones beyond this fold into the last slot seen. */
#define FIT_MAX_ERRORS 24
/* Messages read per store read transaction: short transactions keep a running daemon's file from
 * growing while it writes beside us. */
#define FIT_SCAN_BATCH 512
#define FIT_DEFAULT_MIN_SAMPLES 200
#define FIT_DEFAULT_SETTLE_MS (10 * 60 * 1000)

static void *fit_xcalloc(size_t n, size_t size) {
    void *p = calloc(n, size);
    if (!p) abort(); /* like sr_buf: no useful way on without memory */
    return p;
}

/* ---- latency reservoirs (Vitter's algorithm R with a fixed-seed generator: same history, same file) ---- */

typedef struct reservoir {
    double *v; /* FIT_RESERVOIR slots, allocated on the first sample */
    size_t n;
    uint64_t seen;
    uint64_t rng;
} reservoir;

static uint64_t fit_random(uint64_t *state) {
    /* splitmix64 */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void reservoir_add(reservoir *r, double x) {
    if (!r->v) r->v = fit_xcalloc(FIT_RESERVOIR, sizeof *r->v);
    r->seen++;
    if (r->n < FIT_RESERVOIR) {
        r->v[r->n++] = x;
        return;
    }
    uint64_t j = fit_random(&r->rng) % r->seen;
    if (j < FIT_RESERVOIR) r->v[j] = x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile p (0..100) of the samples; sorts them in place. */
static double reservoir_percentile(reservoir *r, double p) {
    qsort(r->v, r->n, sizeof *r->v, cmp_double);
    size_t rank = (size_t)ceil(p / 100.0 * (double)r->n);
    if (rank < 1) rank = 1;
    return r->v[rank - 1];
}

/* ---- groups: one per provider (country 0, its default) and per provider × country ---- */

typedef struct fit_group {
    char *provider;
    int country; /* calling code; 0: every country (the provider's default) */
    uint64_t attempts, accepted;
    int error_status[FIT_MAX_ERRORS]; /* 0: no HTTP answer (a timeout) */
    uint64_t error_count[FIT_MAX_ERRORS];
    int errors;
    uint64_t settled; /* accepted attempts whose report came, or cannot be expected any more */
    uint64_t delivered, undelivered, expired;
    double cost;
    uint64_t cost_segments;
    reservoir send_ms, report_ms;
} fit_group;

struct sr_models_fit {
    fit_group *groups;
    size_t count, cap;
    int *index; /* open addressing over groups: -1 empty */
    size_t index_cap;
    int min_samples;
    uint64_t messages, attempts;
    int64_t first_ms, last_ms;
};

static uint32_t group_hash(const char *provider, int country) {
    uint32_t h = sr_fnv1a_str(SR_FNV1A_INIT, provider);
    return (h ^ (uint32_t)country) * 16777619u;
}

static void fit_reindex(sr_models_fit *f, size_t cap) {
    free(f->index);
    f->index_cap = cap;
    f->index = malloc(cap * sizeof *f->index);
    if (!f->index) abort();
    for (size_t i = 0; i < cap; i++) f->index[i] = -1;
    for (size_t g = 0; g < f->count; g++) {
        size_t i = group_hash(f->groups[g].provider, f->groups[g].country) & (cap - 1);
        while (f->index[i] >= 0) i = (i + 1) & (cap - 1);
        f->index[i] = (int)g;
    }
}

static fit_group *fit_group_of(sr_models_fit *f, const char *provider, int country) {
    size_t i = group_hash(provider, country) & (f->index_cap - 1);
    for (; f->index[i] >= 0; i = (i + 1) & (f->index_cap - 1)) {
        fit_group *g = &f->groups[f->index[i]];
        if (g->country == country && strcmp(g->provider, provider) == 0) return g;
    }
    if (f->count == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->groups = realloc(f->groups, f->cap * sizeof *f->groups);
        if (!f->groups) abort();
    }
    fit_group *g = &f->groups[f->count];
    memset(g, 0, sizeof *g);
    g->provider = strdup(provider);
    if (!g->provider) abort();
    g->country = country;
    g->send_ms.rng = g->report_ms.rng = group_hash(provider, country) | 1;
    f->index[i] = (int)f->count++;
    if (f->count * 2 > f->index_cap) fit_reindex(f, f->index_cap * 2);
    return &f->groups[f->count - 1];
}

sr_models_fit *sr_models_fit_new(int min_samples) {
    sr_models_fit *f = fit_xcalloc(1, sizeof *f);
    f->min_samples = min_samples > 0 ? min_samples : FIT_DEFAULT_MIN_SAMPLES;
    fit_reindex(f, 64);
    return f;
}

void sr_models_fit_free(sr_models_fit *f) {
    if (!f) return;
    for (size_t g = 0; g < f->count; g++) {
        free(f->groups[g].provider);
        free(f->groups[g].send_ms.v);
        free(f->groups[g].report_ms.v);
    }
    free(f->groups);
    free(f->index);
    free(f);
}

/* The country calling code of an E.164 number; 0 when it cannot be read. */
static int country_of(const char *to) {
    if (!to || !to[0]) return 0;
    sr_phone_info info;
    char why[SR_PHONE_WHY_MAX];
    if (sr_phone_parse(to, strlen(to), NULL, &info, why, sizeof why) != 0) return 0;
    return info.calling_code;
}

static void group_add_error(fit_group *g, int status) {
    for (int i = 0; i < g->errors; i++)
        if (g->error_status[i] == status) {
            g->error_count[i]++;
            return;
        }
    if (g->errors == FIT_MAX_ERRORS) {
        g->error_count[FIT_MAX_ERRORS - 1]++; /* so many kinds: the rarest share one slot */
        return;
    }
    g->error_status[g->errors] = status;
    g->error_count[g->errors++] = 1;
}

/* The "errors" key of a failed attempt, as an HTTP status (0: "timeout", no answer). A refusal inside a
 * successful answer (batch APIs answer 200 with a result per message) has no status of its own: it
 * counts under the status that means the same to the engine, by the class the adapter gave it:
 * permanent for the message 400, about the provider 401, retryable 503. */
static int error_key(const sr_attempt *a) {
    if (a->http_status < 200 || a->http_status >= 300) return a->http_status;
    if (strcmp(a->outcome, "rejected") == 0) return 400;
    if (strcmp(a->outcome, "failed") == 0) return 401;
    return 503;
}

/* Adds one attempt to group g; sent_ms is when the provider accepted it. */
static void group_add_attempt(fit_group *g, const sr_attempt *a, int accepted, int64_t settle_before_ms) {
    g->attempts++;
    if (a->http_status > 0 || accepted) reservoir_add(&g->send_ms, (double)a->duration_ms);
    if (!accepted) {
        group_add_error(g, error_key(a));
        return;
    }
    g->accepted++;
    int64_t sent_ms = a->started_at_ms + a->duration_ms;
    int st = a->report ? sr_status_parse(a->report) : -1;
    int final = st >= 0 && sr_status_is_final((sr_status)st);
    if (!final) {
        /* Still waiting for its report: counted as "never reported" only once it is old enough. */
        if (settle_before_ms == 0 || sent_ms < settle_before_ms) g->settled++;
        return;
    }
    g->settled++;
    if (st == SR_ST_DELIVERED) g->delivered++;
    else if (st == SR_ST_EXPIRED)
        g->expired++;
    else
        g->undelivered++; /* undelivered, and rejected reports: final, not delivered */
    if (a->reported_at_ms > 0) {
        /* The report's time is the provider's, often in whole seconds: such a time stands for the
         * middle of its second. A time before the send answer (the provider's clock behind ours)
         * counts as an immediate report. */
        int64_t at = a->reported_at_ms % 1000 == 0 ? a->reported_at_ms + 500 : a->reported_at_ms;
        reservoir_add(&g->report_ms, at > sent_ms ? (double)(at - sent_ms) : 0.0);
    }
}

void sr_models_fit_add(sr_models_fit *f, const sr_message *m, int64_t settle_before_ms) {
    int country = country_of(m->to);
    f->messages++;
    if (f->first_ms == 0 || m->created_at_ms < f->first_ms) f->first_ms = m->created_at_ms;
    if (m->created_at_ms > f->last_ms) f->last_ms = m->created_at_ms;
    for (int i = 0; i < m->attempt_count; i++) {
        const sr_attempt *a = &m->attempts[i];
        if (!a->provider || !a->outcome) continue;
        /* In flight, or lost in a crash: neither says anything about the provider. */
        if (strcmp(a->outcome, "sending") == 0 || strcmp(a->outcome, "unknown") == 0) continue;
        int accepted = a->provider_id != NULL || strcmp(a->outcome, "sent") == 0;
        f->attempts++;
        group_add_attempt(fit_group_of(f, a->provider, 0), a, accepted, settle_before_ms);
        if (country) group_add_attempt(fit_group_of(f, a->provider, country), a, accepted, settle_before_ms);
    }
    /* The price: the cost the current provider reported, per segment it carried. */
    if (m->has_cost && m->provider && m->attempt_count > 0) {
        int segments = m->parts > 0 ? m->parts : m->segments > 0 ? m->segments : 1;
        /* One group at a time: finding the second may move the first. */
        for (int k = 0; k < (country ? 2 : 1); k++) {
            fit_group *g = fit_group_of(f, m->provider, k ? country : 0);
            g->cost += m->cost;
            g->cost_segments += (uint64_t)segments;
        }
    }
}

/* ---- the models file ---- */

static void put_share(sr_jw *w, const char *key, uint64_t part, uint64_t whole) {
    sr_jw_key(w, key);
    sr_jw_double_fmt(w, "%.4f", whole ? (double)part / (double)whole : 0.0);
}

/* {"p50": .., "p95": ..} of a reservoir, in whole milliseconds. */
static void put_latency(sr_jw *w, const char *key, reservoir *r) {
    sr_jw_key(w, key);
    sr_jw_object_begin(w);
    sr_jw_key(w, "p50");
    sr_jw_double_fmt(w, "%.0f", reservoir_percentile(r, 50));
    sr_jw_key(w, "p95");
    sr_jw_double_fmt(w, "%.0f", reservoir_percentile(r, 95));
    sr_jw_object_end(w);
}

/* "errors": {STATUS: share, ...}: statuses in ascending order, "timeout" (no answer) last. */
static void put_errors(sr_jw *w, const fit_group *g) {
    sr_jw_key(w, "errors");
    sr_jw_object_begin(w);
    for (int pass = 0; pass < 2; pass++) {
        int order[FIT_MAX_ERRORS], n = 0;
        for (int i = 0; i < g->errors; i++)
            if ((g->error_status[i] == 0) == (pass == 1)) order[n++] = i;
        for (int a = 1; a < n; a++)
            for (int b = a; b > 0 && g->error_status[order[b]] < g->error_status[order[b - 1]]; b--) {
                int t = order[b];
                order[b] = order[b - 1];
                order[b - 1] = t;
            }
        for (int k = 0; k < n; k++) {
            char status[16];
            snprintf(status, sizeof status, "%d", g->error_status[order[k]]);
            put_share(w, g->error_status[order[k]] == 0 ? "timeout" : status, g->error_count[order[k]], g->attempts);
        }
    }
    sr_jw_object_end(w);
}

/* One model: the fields simulate reads, each only when the history has data for it, plus "samples". */
static void write_model(sr_jw *w, fit_group *g) {
    sr_jw_object_begin(w);
    if (g->attempts) {
        put_share(w, "accept", g->accepted, g->attempts);
        put_errors(w, g);
    }
    if (g->send_ms.n) put_latency(w, "send_latency_ms", &g->send_ms);
    if (g->settled) {
        put_share(w, "delivered", g->delivered, g->settled);
        put_share(w, "undelivered", g->undelivered, g->settled);
        put_share(w, "expired", g->expired, g->settled);
    }
    if (g->report_ms.n) put_latency(w, "report_latency_ms", &g->report_ms);
    if (g->cost_segments) {
        sr_jw_key(w, "price");
        sr_jw_double_fmt(w, "%.6g", g->cost / (double)g->cost_segments);
    }
    sr_jw_key(w, "samples");
    sr_jw_object_begin(w);
    sr_jw_field_uint(w, "attempts", g->attempts);
    sr_jw_field_uint(w, "accepted", g->accepted);
    sr_jw_field_uint(w, "reports", g->delivered + g->undelivered + g->expired);
    sr_jw_field_uint(w, "priced_segments", g->cost_segments);
    sr_jw_object_end(w);
    sr_jw_object_end(w);
}

/* Output order: providers by name, each one's default first, then its countries by volume. */
static int cmp_group(const void *a, const void *b) {
    const fit_group *x = a, *y = b;
    int c = strcmp(x->provider, y->provider);
    if (c) return c;
    if ((x->country == 0) != (y->country == 0)) return x->country == 0 ? -1 : 1;
    if (x->attempts != y->attempts) return x->attempts > y->attempts ? -1 : 1;
    return x->country - y->country;
}

/* "fitted_from": what the models were fitted from. */
static void write_fitted_from(sr_jw *w, const sr_models_fit *f) {
    sr_jw_key(w, "fitted_from");
    sr_jw_object_begin(w);
    sr_jw_field_uint(w, "messages", f->messages);
    sr_jw_field_uint(w, "attempts", f->attempts);
    if (f->messages) {
        sr_buf when;
        sr_buf_init(&when);
        sr_time_rfc3339(f->first_ms, &when);
        sr_jw_field_strn(w, "from", when.data, when.len);
        sr_buf_reset(&when);
        sr_time_rfc3339(f->last_ms, &when);
        sr_jw_field_strn(w, "to", when.data, when.len);
        sr_buf_free(&when);
    }
    sr_jw_field_int(w, "min_samples", f->min_samples);
    sr_jw_object_end(w);
}

/* The models file, spaced and one model per line for people to read and edit. */
void sr_models_fit_write(sr_models_fit *f, sr_buf *out) {
    qsort(f->groups, f->count, sizeof *f->groups, cmp_group);
    fit_reindex(f, f->index_cap); /* the groups moved */
    sr_jw w;
    sr_jw_init_spaced(&w, out);
    sr_jw_object_begin(&w);
    write_fitted_from(&w, f);
    sr_jw_break(&w, " ");
    sr_jw_key(&w, "providers");
    sr_jw_object_begin(&w);
    for (size_t i = 0; i < f->count;) {
        fit_group *def = &f->groups[i];
        sr_jw_break(&w, "  ");
        sr_jw_key(&w, def->provider);
        sr_jw_object_begin(&w);
        sr_jw_key(&w, "default");
        write_model(&w, def);
        sr_jw_break(&w, "   ");
        sr_jw_key(&w, "countries");
        sr_jw_object_begin(&w);
        int n = 0;
        size_t j = i + 1;
        for (; j < f->count && strcmp(f->groups[j].provider, def->provider) == 0; j++) {
            fit_group *g = &f->groups[j];
            if (g->attempts < (uint64_t)f->min_samples) continue;
            char country[16];
            snprintf(country, sizeof country, "%d", g->country);
            sr_jw_break(&w, "    ");
            sr_jw_key(&w, country);
            write_model(&w, g);
            n++;
        }
        if (n) sr_buf_puts(out, "\n   ");
        sr_jw_object_end(&w);
        sr_jw_object_end(&w);
        i = j;
    }
    sr_buf_puts(out, "\n ");
    sr_jw_object_end(&w);
    sr_jw_break(&w, " ");
    sr_jw_key(&w, "incidents");
    sr_jw_array_begin(&w);
    sr_jw_array_end(&w);
    sr_jw_object_end(&w);
    sr_buf_putc(out, '\n');
}

/* ---- the commands ---- */

int sr_sim_parse_duration(const char *s, int64_t *ms) {
    if (!s || !s[0]) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v > 0) || !isfinite(v)) return -1;
    double unit = 1000;
    if (*end) {
        if (end[1]) return -1;
        switch (*end) {
        case 's': unit = 1000; break;
        case 'm': unit = 60e3; break;
        case 'h': unit = 3600e3; break;
        case 'd': unit = 86400e3; break;
        case 'w': unit = 7 * 86400e3; break;
        default: return -1;
        }
    }
    if (v * unit > 9e15) return -1;
    *ms = (int64_t)(v * unit);
    return 0;
}

static const char usage_models[] =
    "usage: smsrules models fit [--data DIR] [--since DURATION] [--min-samples N] [--settle DURATION]\n"
    "                           [-o MODELS.json]\n"
    "\n"
    "Fits provider models for `smsrules simulate` from an engine's own history: per provider, the\n"
    "share of send attempts accepted and of each error (by HTTP status; \"timeout\" when no answer\n"
    "came; a refusal inside a 200 answer counts as 400 when permanent for the message, 401 when\n"
    "about the provider, 503 when retryable), send latency p50/p95, the delivered / undelivered /\n"
    "expired shares of accepted attempts\n"
    "(rejected reports count as undelivered; the rest never got a final report), report latency\n"
    "(accepted -> final report) p50/p95 and the price per segment from reported costs. A country\n"
    "(calling code of the recipient) with at least --min-samples attempts gets its own model under\n"
    "\"countries\". \"samples\" says how many attempts, reports and segments each model rests on.\n"
    "The store is opened read-only without the directory lock: it can run beside the daemon.\n"
    "  -d, --data DIR          the engine's data directory (default ./data)\n"
    "      --since DURATION    only messages created in the last DURATION: 90s, 30m, 12h, 7d, 2w\n"
    "                          (default: the whole history)\n"
    "      --min-samples N     attempts a country needs for its own model (default 200)\n"
    "      --settle DURATION   accepted attempts without a final report count as never reported only\n"
    "                          once they are this old (default 10m; younger ones may still get one)\n"
    "  -o, --output FILE       write the models here (default: stdout)\n"
    "  -h, --help              this help\n";

static const char usage_traffic[] =
    "usage: smsrules traffic export [--data DIR] [--since DURATION] [-o TRAFFIC.jsonl]\n"
    "\n"
    "Writes what an engine really sent as a traffic file for `smsrules simulate`: one JSON line per\n"
    "message, in the order they were accepted, without texts or numbers:\n"
    "  {\"at_s\": 12.345, \"country\": \"84\", \"segments\": 1, \"tags\": {\"kind\": \"otp\"}}\n"
    "at_s counts from the first message exported; country is the recipient's calling code.\n"
    "Messages whose number has no readable country are left out (their count goes to stderr).\n"
    "The store is opened read-only without the directory lock: it can run beside the daemon.\n"
    "  -d, --data DIR          the engine's data directory (default ./data)\n"
    "      --since DURATION    only messages created in the last DURATION (default: all)\n"
    "  -o, --output FILE       write the traffic here (default: stdout)\n"
    "  -h, --help              this help\n";

typedef struct fit_options {
    const char *data, *output;
    int64_t since_ms; /* 0: all */
    int64_t settle_ms;
    int min_samples;
} fit_options;

static int fit_usage_error(const char *usage, const char *fmt, const char *arg) {
    fprintf(stderr, "smsrules: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage);
    return 1;
}

/* argv[0] is the command ("models"), argv[1] the verb; returns -1 when the outcome is decided. */
/* --settle or --min-samples (models fit only) from optarg; -1 with *code set when bad. */
static int fit_parse_flag(int ch, const char *usage, fit_options *o, int *code) {
    if (ch == 't') {
        if (sr_sim_parse_duration(optarg, &o->settle_ms) == 0) return 0;
        *code = fit_usage_error(usage, "bad --settle '%s' (e.g. 10m)", optarg);
        return -1;
    }
    char *end;
    errno = 0;
    long n = strtol(optarg, &end, 10);
    if (errno || *end || end == optarg || n < 1 || n > 1000000000) {
        *code = fit_usage_error(usage, "bad --min-samples '%s'", optarg);
        return -1;
    }
    o->min_samples = (int)n;
    return 0;
}

static int fit_parse(int argc, char **argv, const char *verb, const char *usage, int fit_flags, fit_options *o,
                     int *code) {
    memset(o, 0, sizeof *o);
    o->data = "./data";
    o->settle_ms = FIT_DEFAULT_SETTLE_MS;
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)) {
        fputs(usage, stdout);
        *code = 0;
        return -1;
    }
    if (argc < 2 || strcmp(argv[1], verb) != 0) {
        *code = fit_usage_error(usage, "expected `%s`", verb);
        return -1;
    }
    static const struct option long_opts[] = {{"data", required_argument, NULL, 'd'},
                                              {"since", required_argument, NULL, 's'},
                                              {"min-samples", required_argument, NULL, 'n'},
                                              {"settle", required_argument, NULL, 't'},
                                              {"output", required_argument, NULL, 'o'},
                                              {"help", no_argument, NULL, 'h'},
                                              {NULL, 0, NULL, 0}};
    opterr = 0;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc - 1, argv + 1, ":d:o:h", long_opts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            fputs(usage, stdout);
            *code = 0;
            return -1;
        case 'd': o->data = optarg; break;
        case 'o': o->output = optarg; break;
        case 's':
            if (sr_sim_parse_duration(optarg, &o->since_ms) != 0) {
                *code = fit_usage_error(usage, "bad --since '%s' (e.g. 7d, 12h, 30m)", optarg);
                return -1;
            }
            break;
        case 'n':
        case 't':
            if (!fit_flags) {
                /* Options of `models fit` only: name the option, not its value. */
                *code = fit_usage_error(usage, "unknown option '%s'", ch == 'n' ? "--min-samples" : "--settle");
                return -1;
            }
            if (fit_parse_flag(ch, usage, o, code) != 0) return -1;
            break;
        case ':': *code = fit_usage_error(usage, "option '%s' needs a value", argv[optind]); return -1;
        default: *code = fit_usage_error(usage, "unknown option '%s'", argv[optind]); return -1;
        }
    }
    if (optind + 1 < argc) {
        *code = fit_usage_error(usage, "unexpected argument '%s'", argv[optind + 1]);
        return -1;
    }
    return 0;
}

typedef int (*fit_visit)(const sr_message *m, void *ud);

/* Opens the store read-only and calls visit for every message created since o->since_ms. */
static int fit_scan(const fit_options *o, int64_t now_ms, fit_visit visit, void *ud) {
    sr_store *store = NULL;
    char err[512];
    sr_store_options so = {.dir = o->data, .read_only = 1};
    int rc = sr_store_open(&store, NULL, &so, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "smsrules: cannot read the store in %s: %s\n", o->data, err);
        return rc == SR_E_IO ? 2 : 1;
    }
    char last[SR_ID_LEN + 1] = "";
    int64_t since = o->since_ms ? now_ms - o->since_ms : 0;
    for (;;) {
        int n = sr_store_scan_messages(store, last, since, FIT_SCAN_BATCH, visit, ud, last);
        if (n < 0) {
            fprintf(stderr, "smsrules: reading the store failed: %s\n", sr_store_strerror(n));
            sr_store_close(store);
            return 2;
        }
        if (n < FIT_SCAN_BATCH) break;
    }
    sr_store_close(store);
    return 0;
}

/* Writes text to path (through a temporary file renamed into place) or to stdout when path is NULL. */
static int fit_write_output(const char *path, const sr_buf *text) {
    if (!path || strcmp(path, "-") == 0) {
        if (fwrite(text->data, 1, text->len, stdout) != text->len || fflush(stdout) != 0) {
            fprintf(stderr, "smsrules: cannot write to stdout\n");
            return 2;
        }
        return 0;
    }
    sr_buf tmp;
    sr_buf_init(&tmp);
    sr_buf_printf(&tmp, "%s.tmp", path);
    FILE *f = fopen(sr_buf_cstr(&tmp), "wb");
    int ok = f != NULL;
    if (ok) ok = fwrite(text->data, 1, text->len, f) == text->len;
    if (f && fclose(f) != 0) ok = 0;
    if (ok) ok = rename(sr_buf_cstr(&tmp), path) == 0;
    if (!ok) {
        fprintf(stderr, "smsrules: cannot write %s: %s\n", path, strerror(errno));
        remove(sr_buf_cstr(&tmp));
    }
    sr_buf_free(&tmp);
    return ok ? 0 : 2;
}

typedef struct fit_visit_arg {
    sr_models_fit *fit;
    int64_t settle_before_ms;
} fit_visit_arg;

static int models_visit(const sr_message *m, void *ud) {
    fit_visit_arg *a = ud;
    sr_models_fit_add(a->fit, m, a->settle_before_ms);
    return 0;
}

int sr_models_main(int argc, char **argv) {
    fit_options o;
    int code = 0;
    if (fit_parse(argc, argv, "fit", usage_models, 1, &o, &code) < 0) return code;
    int64_t now = sr_now_ms();
    fit_visit_arg arg = {sr_models_fit_new(o.min_samples), now - o.settle_ms};
    code = fit_scan(&o, now, models_visit, &arg);
    if (code == 0) {
        sr_buf out;
        sr_buf_init(&out);
        sr_models_fit_write(arg.fit, &out);
        code = fit_write_output(o.output, &out);
        sr_buf_free(&out);
    }
    sr_models_fit_free(arg.fit);
    return code;
}

typedef struct traffic_arg {
    sr_buf out;
    int64_t first_ms;
    int have_first;
    uint64_t written, no_country;
} traffic_arg;

static int traffic_visit(const sr_message *m, void *ud) {
    traffic_arg *t = ud;
    int country = country_of(m->to);
    if (!country) {
        t->no_country++;
        return 0;
    }
    if (!t->have_first) {
        t->first_ms = m->created_at_ms;
        t->have_first = 1;
    }
    /* Ids are time-ordered but several engines' clocks or a clock step can put one a little before. */
    int64_t at = m->created_at_ms - t->first_ms;
    if (at < 0) at = 0;
    char at_s[32], code[16];
    int at_len = snprintf(at_s, sizeof at_s, "%lld.%03lld", (long long)(at / 1000), (long long)(at % 1000));
    snprintf(code, sizeof code, "%d", country);
    sr_jw w;
    sr_jw_init_spaced(&w, &t->out);
    sr_jw_object_begin(&w);
    sr_jw_key(&w, "at_s");
    sr_jw_raw(&w, at_s, (size_t)at_len);
    sr_jw_field_str(&w, "country", code);
    sr_jw_field_int(&w, "segments", m->segments > 0 ? m->segments : 1);
    if (m->tag_count > 0) {
        sr_jw_key(&w, "tags");
        sr_jw_object_begin(&w);
        for (int i = 0; i < m->tag_count; i++)
            sr_jw_field_str(&w, m->tags[i].key ? m->tags[i].key : "", m->tags[i].value ? m->tags[i].value : "");
        sr_jw_object_end(&w);
    }
    sr_jw_object_end(&w);
    sr_buf_putc(&t->out, '\n');
    t->written++;
    return 0;
}

int sr_traffic_main(int argc, char **argv) {
    fit_options o;
    int code = 0;
    if (fit_parse(argc, argv, "export", usage_traffic, 0, &o, &code) < 0) return code;
    traffic_arg t = {.have_first = 0};
    sr_buf_init(&t.out);
    code = fit_scan(&o, sr_now_ms(), traffic_visit, &t);
    if (code == 0) code = fit_write_output(o.output, &t.out);
    if (code == 0 && t.no_country)
        fprintf(stderr, "smsrules: %llu message(s) left out: no country could be read from the number\n",
                (unsigned long long)t.no_country);
    sr_buf_free(&t.out);
    return code;
}
