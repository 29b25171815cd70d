/* api_read: the read endpoints of the console (admin key or console session):
 *   GET /v1/search/messages  search by id, recipient, status, provider, tag, time; newest first, paged
 *   GET /v1/failed           failed messages grouped by error and provider
 *   GET /v1/inbound          received SMS with their handler's outcome and replies, newest first
 *
 * Bounded work per request, whatever the store holds: at most READ_SCAN_BUDGET
 * messages (or inbound records) are read per call; a search that has not found
 * `limit` matches within that budget answers what it found with a `next` cursor
 * to go on from, and the console asks again. A status filter walks the status
 * index (only messages of that status are read); other filters walk messages
 * newest first (ids sort by creation time, so since/until bound the walk). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/api_console.h"
#include "codec/json.h"
#include "codec/jsonw.h"
#include "core/log.h"
#include "model/message.h"
#include "store/store.h"

#define READ_SCAN_BUDGET 2000
#define READ_MAX_LIMIT 500
#define READ_DEFAULT_LIMIT 50
#define READ_FIELD_MAX 256
#define READ_MAX_GROUPS 200

typedef struct search_query {
    char id[READ_FIELD_MAX], to[READ_FIELD_MAX], provider[READ_FIELD_MAX], tag[READ_FIELD_MAX];
    char cursor[SR_ID_LEN + 1];
    int status;                 /* -1: any */
    int64_t since_ms, until_ms; /* 0: none; created_at in [since, until) */
    int limit;
} search_query;

typedef struct search_state {
    const search_query *q;
    sr_jw *w;
    sr_buf one; /* one message's JSON, before it goes into the answer */
    int matched;
    int scanned;
    int stopped_early; /* the limit or the budget stopped the walk: there may be more */
    char last[SR_ID_LEN + 1];
} search_state;

/* ---- parameters ---- */

static int read_bad(sr_http_request *req, const char *message) {
    sr_http_respond_error(req, 400, "invalid_value", message, NULL);
    return -1;
}

/* A time parameter: RFC 3339 or milliseconds since the epoch. 0 absent, 1 set, -1 answered 400. */
static int read_time_param(sr_http_request *req, const char *name, int64_t *out) {
    char v[64];
    int rc = sr_api_query_param(req->query, name, v, sizeof v);
    if (rc == 0 || (rc == 1 && !v[0])) return 0;
    char *end = NULL;
    long long ms = rc == 1 ? strtoll(v, &end, 10) : 0;
    if (rc == 1 && end && *end == '\0' && ms > 0) *out = ms;
    else if (rc != 1 || sr_time_parse_rfc3339(v, strlen(v), out) != 0) {
        char msg[120];
        snprintf(msg, sizeof msg, "'%s' must be an RFC 3339 time or milliseconds since 1970", name);
        return read_bad(req, msg);
    }
    return 1;
}

/* A text parameter ("" when absent). 0, or -1 answered 400. */
static int read_text_param(sr_http_request *req, const char *name, char *out, size_t outlen) {
    int rc = sr_api_query_param(req->query, name, out, outlen);
    if (rc == 0) out[0] = '\0';
    if (rc >= 0) return 0;
    char msg[120];
    snprintf(msg, sizeof msg, "'%s' is too long or not valid percent-encoding", name);
    return read_bad(req, msg);
}

/* limit and cursor, shared by every list. 0, or -1 answered 400. */
static int read_paging(sr_http_request *req, int *limit, char cursor[SR_ID_LEN + 1]) {
    char v[32];
    *limit = READ_DEFAULT_LIMIT;
    int rc = sr_api_query_param(req->query, "limit", v, sizeof v);
    if (rc != 0) {
        char *end = NULL;
        long l = rc == 1 ? strtol(v, &end, 10) : 0;
        if (rc != 1 || !end || *end || l < 1 || l > READ_MAX_LIMIT)
            return read_bad(req, "'limit' must be from 1 to 500");
        *limit = (int)l;
    }
    char c[64];
    if (read_text_param(req, "cursor", c, sizeof c) != 0) return -1;
    if (c[0] && !sr_id_valid(c, strlen(c))) return read_bad(req, "'cursor' must be the 'next' of an earlier answer");
    memcpy(cursor, c, c[0] ? SR_ID_LEN + 1 : 1); /* a valid id is exactly SR_ID_LEN long */
    return 0;
}

static int search_parse(sr_http_request *req, search_query *q) {
    memset(q, 0, sizeof *q);
    if (read_text_param(req, "id", q->id, sizeof q->id) || read_text_param(req, "to", q->to, sizeof q->to) ||
        read_text_param(req, "provider", q->provider, sizeof q->provider) ||
        read_text_param(req, "tag", q->tag, sizeof q->tag) || read_paging(req, &q->limit, q->cursor))
        return -1;
    char st[32];
    if (read_text_param(req, "status", st, sizeof st)) return -1;
    q->status = st[0] ? sr_status_parse(st) : -1;
    if (st[0] && q->status < 0)
        return read_bad(req, "unknown 'status' (accepted, queued, sending, sent, delivered, "
                             "undelivered, expired, rejected, failed)");
    if (read_time_param(req, "since", &q->since_ms) < 0 || read_time_param(req, "until", &q->until_ms) < 0) return -1;
    return 0;
}

/* ---- matching ---- */

static int search_has_tag(const sr_message *m, const char *tag) {
    const char *eq = strchr(tag, '=');
    size_t klen = eq ? (size_t)(eq - tag) : strlen(tag);
    for (int i = 0; i < m->tag_count; i++) {
        const sr_tag *t = &m->tags[i];
        if (strlen(t->key) != klen || memcmp(t->key, tag, klen) != 0) continue;
        if (!eq || (t->value && strcmp(t->value, eq + 1) == 0)) return 1;
    }
    return 0;
}

static int search_has_provider(const sr_message *m, const char *provider) {
    if (m->provider && strcmp(m->provider, provider) == 0) return 1;
    for (int i = 0; i < m->attempt_count; i++)
        if (m->attempts[i].provider && strcmp(m->attempts[i].provider, provider) == 0) return 1;
    return 0;
}

static int search_matches(const search_query *q, const sr_message *m) {
    if (q->status >= 0 && (int)m->status != q->status) return 0;
    if (q->to[0] && (!m->to || !strstr(m->to, q->to))) return 0;
    if (q->provider[0] && !search_has_provider(m, q->provider)) return 0;
    if (q->tag[0] && !search_has_tag(m, q->tag)) return 0;
    if (q->since_ms && m->created_at_ms < q->since_ms) return 0;
    if (q->until_ms && m->created_at_ms >= q->until_ms) return 0;
    return 1;
}

/* A match into the "messages" list. */
static void search_emit(search_state *s, const sr_message *m) {
    s->matched++;
    sr_buf_reset(&s->one);
    sr_message_to_api_json(m, &s->one);
    sr_jw_raw(s->w, s->one.data, s->one.len);
}

/* Runs inside the store's read transaction: writes the match, touches no store. */
static int search_visit(const sr_message *m, void *ud) {
    search_state *s = ud;
    s->scanned++;
    memcpy(s->last, m->id, sizeof s->last);
    if (search_matches(s->q, m)) search_emit(s, m);
    if (s->matched >= s->q->limit || s->scanned >= READ_SCAN_BUDGET) {
        s->stopped_early = 1;
        return 1;
    }
    return 0;
}

/* Where a newest-first walk starts: the cursor, else the first id of until (exclusive), else the newest. */
static const char *search_start(const search_query *q, char buf[SR_ID_LEN + 1]) {
    if (q->cursor[0]) return q->cursor;
    if (!q->until_ms) return NULL;
    /* The smallest id of that millisecond: its time in the 10 Crockford base32 digits ids start with. */
    static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    uint64_t t = (uint64_t)q->until_ms;
    for (int i = 9; i >= 0; i--, t >>= 5) buf[i] = crockford[t & 31];
    memset(buf + 10, '0', SR_ID_LEN - 10);
    buf[SR_ID_LEN] = '\0';
    return buf;
}

/* The status index, newest first, a chunk of ids at a time. */
static int search_by_status(sr_api *app, search_state *s) {
    char start[SR_ID_LEN + 1], next[SR_ID_LEN + 1];
    const char *before = search_start(s->q, start);
    char(*ids)[SR_ID_LEN + 1] = malloc(sizeof(*ids) * 256);
    if (!ids) abort();
    int rc = 0;
    while (!s->stopped_early) {
        int n = sr_store_list_status_back(app->store, (sr_status)s->q->status, before, ids, 256);
        if (n < 0) rc = n;
        if (n <= 0) break;
        for (int i = 0; i < n && !s->stopped_early; i++) {
            sr_message m;
            if (sr_store_get_message(app->store, ids[i], &m) != 0) continue;
            int too_old = s->q->since_ms && m.created_at_ms < s->q->since_ms;
            if (!too_old) search_visit(&m, s);
            sr_message_free(&m);
            if (too_old) goto done; /* the index is in creation order: nothing older matches */
        }
        memcpy(next, ids[n - 1], sizeof next);
        before = next;
        if (n < 256) break;
    }
done:
    free(ids);
    return rc;
}

static void search_by_id(sr_api *app, search_state *s) {
    sr_message m;
    if (!sr_id_valid(s->q->id, strlen(s->q->id)) || sr_store_get_message(app->store, s->q->id, &m) != 0) return;
    if (search_matches(s->q, &m)) search_emit(s, &m);
    s->scanned = 1;
    sr_message_free(&m);
}

void sr_api_search_messages(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    if (!sr_api_require_admin(app, req)) return;
    search_query q;
    if (search_parse(req, &q) != 0) return;
    sr_buf body;
    sr_buf_init(&body);
    sr_jw w;
    sr_jw_init(&w, &body);
    sr_jw_object_begin(&w);
    sr_jw_key(&w, "messages");
    sr_jw_array_begin(&w);
    search_state s;
    memset(&s, 0, sizeof s);
    s.q = &q;
    s.w = &w;
    sr_buf_init(&s.one);
    int rc = 0;
    char start[SR_ID_LEN + 1];
    if (q.id[0]) search_by_id(app, &s);
    else if (q.status >= 0)
        rc = search_by_status(app, &s);
    else
        rc = sr_store_scan_messages_before(app->store, search_start(&q, start), q.since_ms, READ_SCAN_BUDGET,
                                           search_visit, &s, NULL);
    sr_buf_free(&s.one);
    if (rc < 0) {
        sr_buf_free(&body);
        sr_error("console search: the store could not be read", "error", sr_store_strerror(rc));
        sr_http_respond_error(req, 500, "storage_error", "the messages could not be read", NULL);
        return;
    }
    sr_jw_array_end(&w);
    sr_jw_field_str(&w, "next", s.stopped_early ? s.last : NULL);
    sr_jw_field_int(&w, "scanned", s.scanned);
    sr_jw_object_end(&w);
    sr_http_respond(req, 200, "application/json", body.data, body.len, "Cache-Control: no-store\r\n");
    sr_buf_free(&body);
}

/* ---- GET /v1/failed: failed messages grouped by error and provider ---- */

typedef struct failed_group {
    char *error;
    char *provider;
    int count;
    int64_t newest_ms, oldest_ms;
    sr_buf ids; /* the message ids, each ended by a NUL */
} failed_group;

typedef struct failed_state {
    failed_group groups[READ_MAX_GROUPS];
    int group_count;
    int other; /* failed messages beyond READ_MAX_GROUPS distinct groups */
} failed_state;

static failed_group *failed_group_of(failed_state *f, const char *error, const char *provider) {
    for (int i = 0; i < f->group_count; i++)
        if (strcmp(f->groups[i].error, error) == 0 && strcmp(f->groups[i].provider, provider) == 0)
            return &f->groups[i];
    if (f->group_count == READ_MAX_GROUPS) return NULL;
    failed_group *g = &f->groups[f->group_count++];
    memset(g, 0, sizeof *g);
    g->error = strdup(error);
    g->provider = strdup(provider);
    if (!g->error || !g->provider) abort();
    sr_buf_init(&g->ids);
    return g;
}

static void failed_add(failed_state *f, const sr_message *m) {
    failed_group *g = failed_group_of(f, m->error ? m->error : "", m->provider ? m->provider : "");
    if (!g) {
        f->other++;
        return;
    }
    g->count++;
    sr_buf_append(&g->ids, m->id, strlen(m->id) + 1);
    if (m->created_at_ms > g->newest_ms) g->newest_ms = m->created_at_ms;
    if (!g->oldest_ms || m->created_at_ms < g->oldest_ms) g->oldest_ms = m->created_at_ms;
}

static void failed_time(sr_jw *w, const char *key, int64_t ms) {
    sr_buf t;
    sr_buf_init(&t);
    sr_time_rfc3339(ms, &t);
    sr_jw_field_strn(w, key, t.data ? t.data : "", t.len);
    sr_buf_free(&t);
}

/* Biggest group first. */
static int failed_cmp(const void *a, const void *b) {
    const failed_group *x = a, *y = b;
    return y->count - x->count;
}

/* One group as an object; frees what the group holds. */
static void failed_group_json(sr_jw *w, failed_group *g) {
    sr_jw_object_begin(w);
    sr_jw_field_str(w, "error", g->error);
    sr_jw_field_str(w, "provider", g->provider);
    sr_jw_field_int(w, "count", g->count);
    failed_time(w, "newest_created_at", g->newest_ms);
    failed_time(w, "oldest_created_at", g->oldest_ms);
    sr_jw_key(w, "ids");
    sr_jw_array_begin(w);
    for (size_t at = 0; at < g->ids.len;) {
        size_t len = strlen(g->ids.data + at);
        sr_jw_string(w, g->ids.data + at, len);
        at += len + 1;
    }
    sr_jw_array_end(w);
    sr_jw_object_end(w);
    free(g->error);
    free(g->provider);
    sr_buf_free(&g->ids);
}

static void failed_json(failed_state *f, sr_buf *b, int scanned, const char *next) {
    qsort(f->groups, (size_t)f->group_count, sizeof f->groups[0], failed_cmp);
    sr_jw w;
    sr_jw_init(&w, b);
    sr_jw_object_begin(&w);
    sr_jw_key(&w, "groups");
    sr_jw_array_begin(&w);
    for (int i = 0; i < f->group_count; i++) failed_group_json(&w, &f->groups[i]);
    sr_jw_array_end(&w);
    sr_jw_field_int(&w, "ungrouped", f->other);
    sr_jw_field_int(&w, "scanned", scanned);
    sr_jw_field_str(&w, "next", next);
    sr_jw_object_end(&w);
}

void sr_api_failed_groups(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    if (!sr_api_require_admin(app, req)) return;
    int limit;
    char cursor[SR_ID_LEN + 1];
    if (read_paging(req, &limit, cursor) != 0) return;
    (void)limit; /* groups are bounded by the scan budget, not by a page size */
    failed_state *f = calloc(1, sizeof *f);
    char(*ids)[SR_ID_LEN + 1] = malloc(sizeof(*ids) * READ_SCAN_BUDGET);
    if (!f || !ids) abort();
    int count = sr_store_list_status_back(app->store, SR_ST_FAILED, cursor[0] ? cursor : NULL, ids, READ_SCAN_BUDGET);
    for (int i = 0; i < count; i++) {
        sr_message m;
        if (sr_store_get_message(app->store, ids[i], &m) != 0) continue;
        failed_add(f, &m);
        sr_message_free(&m);
    }
    sr_buf body;
    sr_buf_init(&body);
    failed_json(f, &body, count < 0 ? 0 : count, count == READ_SCAN_BUDGET ? ids[count - 1] : NULL);
    free(ids);
    free(f);
    if (count < 0) {
        sr_buf_free(&body);
        sr_http_respond_error(req, 500, "storage_error", "the failed messages could not be read", NULL);
        return;
    }
    sr_http_respond(req, 200, "application/json", body.data, body.len, "Cache-Control: no-store\r\n");
    sr_buf_free(&body);
}

/* ---- GET /v1/inbound: received SMS, newest first ---- */

typedef struct inbound_state {
    sr_jw *w;
    const char *from; /* substring filter, "" none */
    int64_t now;
    int limit, matched, scanned, stopped_early;
    char last[SR_ID_LEN + 1];
} inbound_state;

/* Runs inside the store's read transaction. The records are the JSON the webhook handler wrote. */
static int inbound_visit(const char *key, size_t klen, const char *val, size_t vlen, int64_t expires_at_ms, void *ud) {
    inbound_state *s = ud;
    if (klen != SR_ID_LEN) return 0;
    s->scanned++;
    memcpy(s->last, key, SR_ID_LEN);
    s->last[SR_ID_LEN] = '\0';
    int keep = !expires_at_ms || expires_at_ms > s->now;
    if (keep && s->from[0]) {
        sr_json_doc doc;
        memset(&doc, 0, sizeof doc);
        keep = sr_json_parse(&doc, val, vlen, NULL, 0) == 0 && doc.root->type == SR_JSON_OBJECT;
        const sr_json *from = keep ? sr_json_get(doc.root, "from") : NULL;
        keep = from && from->type == SR_JSON_STRING && strstr(from->str, s->from);
        sr_json_doc_free(&doc);
    }
    if (keep) {
        s->matched++;
        sr_jw_raw(s->w, val, vlen); /* the record is a JSON object already */
    }
    if (s->matched >= s->limit || s->scanned >= READ_SCAN_BUDGET) {
        s->stopped_early = 1;
        return 1;
    }
    return 0;
}

void sr_api_inbound_list(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    if (!sr_api_require_admin(app, req)) return;
    inbound_state s;
    memset(&s, 0, sizeof s);
    char cursor[SR_ID_LEN + 1], from[READ_FIELD_MAX];
    if (read_paging(req, &s.limit, cursor) != 0 || read_text_param(req, "from", from, sizeof from) != 0) return;
    sr_buf body;
    sr_buf_init(&body);
    sr_jw w;
    sr_jw_init(&w, &body);
    sr_jw_object_begin(&w);
    sr_jw_key(&w, "inbound");
    sr_jw_array_begin(&w);
    s.w = &w;
    s.from = from;
    s.now = sr_now_ms();
    int rc = sr_store_scan_back(app->store, SR_SPACE_INBOUND, cursor[0] ? cursor : NULL, strlen(cursor),
                                READ_SCAN_BUDGET, inbound_visit, &s);
    if (rc < 0) {
        sr_buf_free(&body);
        sr_http_respond_error(req, 500, "storage_error", "the inbound messages could not be read", NULL);
        return;
    }
    sr_jw_array_end(&w);
    sr_jw_field_str(&w, "next", s.stopped_early ? s.last : NULL);
    sr_jw_field_int(&w, "scanned", s.scanned);
    sr_jw_object_end(&w);
    sr_http_respond(req, 200, "application/json", body.data, body.len, "Cache-Control: no-store\r\n");
    sr_buf_free(&body);
}
