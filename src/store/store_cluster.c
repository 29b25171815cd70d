/* store_cluster: cluster mode, the store's state replicated through one NATS JetStream stream.
 *
 * The stream is the authority: a totally ordered, Raft-replicated log of units. Every node keeps
 * a replica of the state in its own LMDB environment (the same databases as a single node) by
 * applying the log in order, and reads only its replica (so reads stay synchronous on the loop,
 * as in single-node mode). A node that loses its replica rebuilds it from the stream.
 *
 * Writes (the writer thread, store_cluster_commit): the loop's batch of units is resolved against
 * the replica — every update's mutator runs on the stored message and becomes a REPLACE of the
 * stored record's bytes by the new bytes, on the condition that the stored bytes still hash to
 * what the mutator saw — and published as one stream message (or several, each under the
 * server's max_payload) with a Nats-Msg-Id, so a publish retried after a lost answer is stored
 * once. The publish returns once a quorum of the stream's servers stored it. The writer then
 * waits until this node's applier applied that sequence, takes each unit's outcome from it, and
 * only then does the unit's done callback run on the loop: an accepted message was replicated
 * before the API answers 202. An update whose condition failed (another node changed the message
 * meanwhile) is resolved again on the newer state and republished: two nodes never overwrite
 * each other's transitions. Ops whose result depends on the clock carry the unit's time, so
 * every replica applies a unit alike.
 *
 * Applying (the applier thread): an ordered consumer reads the stream from the sequence after
 * the replica's last (kept in the replica's meta database in the same LMDB transaction as the
 * units, so a crash resumes exactly there) and applies each message in one transaction. Units of
 * other nodes go to the loop afterwards so that the scheduler learns of queued work and the
 * reports of provider ids; status changes are announced only on the node that made them (their
 * handlers run once).
 *
 * Why one log and not a key-value bucket per kind of record: a unit is all-or-nothing (a message
 * with its idempotency key, a status change with its owed-handler record and the kv counters its
 * handler bumps), and JetStream key-value has no transaction over several keys. One stream gives
 * every replica the same order; the hash condition gives per-message compare-and-set. */
#include <errno.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/crypto.h"
#include "core/buf.h"
#include "core/log.h"
#include "store/store_internal.h"

#define CL_MAGIC "SRU1"
#define CL_ROUNDS 32               /* resolve-and-publish rounds of one batch before giving up */
#define CL_PUBLISH_WAIT_MS 2000    /* one publish attempt waits this long for its acknowledgement */
#define CL_PUBLISH_BUDGET_MS 10000 /* attempts (same Nats-Msg-Id) go on this long: rides out a leader election */
#define CL_APPLY_WAIT_MS 30000     /* a published unit applied here within this, or it fails */
#define CL_CATCH_UP_MS 120000      /* at open: the replica reaches the stream's end within this */
#define CL_MAX_PEERS 256
#define CL_APPLY_MAX 64              /* stream messages already waiting applied in one transaction */
#define CL_BEAT_MS 1000              /* a node says it is alive this often; silent SR_STORE_NODE_TIMEOUT_MS: gone */
#define CL_ORDERED_HEARTBEAT_MS 1000 /* the stream consumer's idle heartbeat: a lost consumer is noticed in 2 */
#define CL_DUPLICATE_WINDOW_NS (120LL * 1000000000) /* the stream's Nats-Msg-Id window */

typedef struct cl_overlay_entry {
    char id[SR_ID_LEN + 1];
    const char *bytes; /* in the round's arena */
    size_t len;
    int unit; /* the round's unit index that wrote it */
    int prev; /* the previous entry in the same bucket, -1: none */
} cl_overlay_entry;

/* What the round wrote so far, by message id: a later update of the same message in the same
 * round starts from it (it is not in the replica yet). */
typedef struct cl_overlay {
    cl_overlay_entry *e;
    int n, cap;
    int heads[256];
} cl_overlay;

typedef struct store_cluster store_cluster;

struct store_cluster {
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
    char stream[64];
    char subject[96];
    char node[96];
    uint64_t incarnation; /* this process's, so that its unit messages are told from a predecessor's */
    size_t max_payload;

    pthread_t applier;
    int applier_started;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* applied_seq moved, or the applier stopped */
    uint64_t applied_seq;
    uint64_t retried, unavailable; /* units resolved again after losing a race; units the stream refused */
    int stop;
    int caught_up; /* units of other nodes go to the loop (not during the catch-up at open) */
    int closed;    /* the connection's closed callback ran: no callback of its touches this struct after */

    /* Who is alive (under mu): each (node, incarnation) heard on the heartbeat subject. */
    struct cl_peer {
        char owner[160]; /* "node/incarnation" */
        int64_t seen_ms; /* monotonic */
    } peers[CL_MAX_PEERS];
    int npeers;
    int64_t started_ms;
    int64_t timeout_ms; /* silent this long: gone */
    int64_t beat_ms;    /* applier thread: when this node last said it is alive */
    char owner[160];    /* this process's "node/incarnation" */
    char alive_subject[96];
    natsSubscription *alive_sub;

    /* The round the writer waits for (under mu): its token and units, by index. */
    uint64_t await_token;
    sr_store_txn **await_units;
    int await_n;

    /* Writer thread only. */
    uint64_t token;
    sr_buf out, rec;
    sr_arena arena; /* the batch's update results, then the batch's last unit's */
    cl_overlay ov;
};

static int64_t cl_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- wire encoding ---- */

static void cl_put_u8(sr_buf *b, unsigned v) {
    char c = (char)v;
    sr_buf_append(b, &c, 1);
}

static void cl_put_u32(sr_buf *b, uint32_t v) {
    unsigned char p[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    sr_buf_append(b, (const char *)p, 4);
}

static void cl_put_u64(sr_buf *b, uint64_t v) {
    cl_put_u32(b, (uint32_t)(v >> 32));
    cl_put_u32(b, (uint32_t)v);
}

static void cl_put_bytes(sr_buf *b, const char *p, size_t len) {
    if (!p) {
        cl_put_u32(b, UINT32_MAX);
        return;
    }
    cl_put_u32(b, (uint32_t)len);
    sr_buf_append(b, p, len);
}

typedef struct cl_reader {
    const unsigned char *p, *end;
    int bad;
} cl_reader;

static const unsigned char *cl_take(cl_reader *r, size_t n) {
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *q = r->p;
    r->p += n;
    return q;
}

static uint32_t cl_get_u32(cl_reader *r) {
    const unsigned char *p = cl_take(r, 4);
    return p ? ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3] : 0;
}

static uint64_t cl_get_u64(cl_reader *r) {
    uint64_t hi = cl_get_u32(r);
    return (hi << 32) | cl_get_u32(r);
}

static unsigned cl_get_u8(cl_reader *r) {
    const unsigned char *p = cl_take(r, 1);
    return p ? p[0] : 0;
}

/* A length-prefixed byte string as a fresh NUL-terminated copy (NULL for the NULL marker). */
static char *cl_get_bytes(cl_reader *r, size_t *len) {
    uint32_t n = cl_get_u32(r);
    *len = 0;
    if (r->bad || n == UINT32_MAX) return NULL;
    const unsigned char *p = cl_take(r, n);
    if (!p) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) abort();
    memcpy(s, p, n);
    s[n] = '\0';
    *len = n;
    return s;
}

/* One op as it travels: an update goes as the REPLACE (or NOP) it was resolved to (kind, val and
 * body_hash given by the caller), everything else as it is. */
static void cl_encode_op(sr_buf *b, const store_op *op, int kind, const char *val, size_t vlen, uint64_t hash) {
    cl_put_u8(b, (unsigned)kind);
    cl_put_u8(b, (unsigned)op->db);
    cl_put_u8(b, (unsigned)op->flag);
    cl_put_u32(b, op->owe_mask);
    cl_put_u64(b, (uint64_t)op->expires_at_ms);
    cl_put_u64(b, (uint64_t)op->delta);
    cl_put_u64(b, hash);
    cl_put_bytes(b, op->id, strlen(op->id));
    cl_put_bytes(b, op->key, op->klen);
    cl_put_bytes(b, val, vlen);
}

/* The decoded op's message of a PUT. */
static int cl_decode_put(store_op *op) {
    op->msg = calloc(1, sizeof *op->msg);
    if (!op->msg) abort();
    if (!op->val || sr_message_decode(op->val, op->vlen, op->msg) < 0) return -1;
    memcpy(op->msg->id, op->id, sizeof op->id);
    free(op->val);
    op->val = NULL;
    op->vlen = 0;
    return 0;
}

static int cl_decode_op(cl_reader *r, store_op *op) {
    size_t idlen = 0;
    memset(op, 0, sizeof *op);
    op->kind = (store_op_kind)cl_get_u8(r);
    op->db = (int)cl_get_u8(r);
    op->flag = (int)cl_get_u8(r);
    op->owe_mask = cl_get_u32(r);
    op->expires_at_ms = (int64_t)cl_get_u64(r);
    op->delta = (int64_t)cl_get_u64(r);
    op->body_hash = cl_get_u64(r);
    char *id = cl_get_bytes(r, &idlen);
    if (id && idlen <= SR_ID_LEN) memcpy(op->id, id, idlen + 1);
    free(id);
    op->key = cl_get_bytes(r, &op->klen);
    op->val = cl_get_bytes(r, &op->vlen);
    if (r->bad || op->db < 0 || op->db >= STORE_DB_COUNT || op->kind > STORE_OP_GCRA) return -1;
    if (op->kind == STORE_OP_UPDATE || op->kind == STORE_OP_TAKE_OVER) return -1; /* they travel resolved */
    return op->kind == STORE_OP_PUT ? cl_decode_put(op) : 0;
}

/* ---- units: the writer resolves, encodes and publishes ---- */

static void cl_overlay_reset(cl_overlay *ov) {
    ov->n = 0;
    for (size_t i = 0; i < sizeof ov->heads / sizeof ov->heads[0]; i++) ov->heads[i] = -1;
}

static int cl_overlay_find(const cl_overlay *ov, const char *id) {
    for (int i = ov->heads[sr_fnv1a_str(SR_FNV1A_INIT, id) & 255]; i >= 0; i = ov->e[i].prev)
        if (strcmp(ov->e[i].id, id) == 0) return i;
    return -1;
}

static void cl_overlay_add(cl_overlay *ov, sr_arena *a, const char *id, const char *bytes, size_t len, int unit) {
    if (ov->n == ov->cap) {
        ov->cap = ov->cap ? ov->cap * 2 : 64;
        ov->e = realloc(ov->e, sizeof *ov->e * (size_t)ov->cap);
        if (!ov->e) abort();
    }
    cl_overlay_entry *e = &ov->e[ov->n];
    unsigned h = sr_fnv1a_str(SR_FNV1A_INIT, id) & 255;
    sr_str_copy(e->id, sizeof e->id, id);
    e->bytes = sr_arena_strndup(a, bytes, len);
    e->len = len;
    e->unit = unit;
    e->prev = ov->heads[h];
    ov->heads[h] = ov->n++;
}

/* Forgets what a unit that failed to resolve wrote (its entries are the newest). */
static void cl_overlay_drop_unit(cl_overlay *ov, int unit) {
    while (ov->n > 0 && ov->e[ov->n - 1].unit == unit) {
        cl_overlay_entry *e = &ov->e[--ov->n];
        ov->heads[sr_fnv1a_str(SR_FNV1A_INIT, e->id) & 255] = e->prev;
    }
}

/* The stored bytes of a message as the round sees them: what it wrote, else the replica's. */
static int cl_current(sr_store *s, MDB_txn *rtxn, const char *id, const char **bytes, size_t *len) {
    int i = cl_overlay_find(&s->cluster->ov, id);
    if (i >= 0) {
        *bytes = s->cluster->ov.e[i].bytes;
        *len = s->cluster->ov.e[i].len;
        return 0;
    }
    MDB_val v;
    int rc = store_get_record(s, rtxn, id, &v);
    if (rc) return store_is_code(rc) ? rc : store_error(rc, "cluster read");
    *bytes = v.mv_data;
    *len = v.mv_size;
    return 0;
}

/* An update resolved: its mutator run on the current message, the op encoded as a REPLACE of the
 * current bytes (or a NOP), its result the message as it will be written. */
static int cl_resolve_update(sr_store *s, MDB_txn *rtxn, store_op *op, int unit, sr_buf *out) {
    store_cluster *cl = s->cluster;
    const char *cur = NULL;
    size_t len = 0;
    sr_message m;
    int rc = cl_current(s, rtxn, op->id, &cur, &len);
    if (rc) return rc;
    if (sr_message_decode(cur, len, &m) < 0) return SR_E_CORRUPT;
    rc = op->fn(&m, op->arg);
    if (rc != 0 && rc != SR_STORE_UNCHANGED) {
        sr_message_free(&m);
        return store_is_code(rc) ? rc : SR_E_STATE;
    }
    memcpy(m.id, op->id, sizeof m.id);
    if (rc == 0 && !store_message_ok(&m)) {
        sr_message_free(&m);
        return SR_E_INVALID;
    }
    op->msg = sr_arena_alloc(&cl->arena, sizeof *op->msg);
    sr_message_copy_in(op->msg, &m, &cl->arena);
    if (rc == SR_STORE_UNCHANGED) {
        cl_encode_op(out, op, STORE_OP_NOP, NULL, 0, 0);
    } else {
        sr_buf_reset(&cl->rec);
        sr_message_encode(&m, &cl->rec);
        cl_encode_op(out, op, STORE_OP_REPLACE, cl->rec.data, cl->rec.len, store_bytes_hash(cur, len));
        cl_overlay_add(&cl->ov, &cl->arena, op->id, cl->rec.data, cl->rec.len, unit);
    }
    sr_message_free(&m);
    return 0;
}

/* A take-over resolved: refused while the owner lives, else a claim of the owner entry as seen. */
static int cl_resolve_take_over(sr_store *s, MDB_txn *rtxn, store_op *op, sr_buf *out) {
    MDB_val k = {op->klen, op->key}, v;
    int rc = mdb_get(rtxn, s->dbi[STORE_DB_OWNERS], &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND) return store_error(rc, "cluster read");
    if (rc == 0 && !store_cluster_owner_gone(s, v.mv_data, v.mv_size)) return SR_E_STATE;
    cl_encode_op(out, op, STORE_OP_CLAIM, NULL, 0, rc == 0 ? store_bytes_hash(v.mv_data, v.mv_size) : 0);
    return 0;
}

static int cl_resolve_op(sr_store *s, MDB_txn *rtxn, store_op *op, int unit, sr_buf *out) {
    store_cluster *cl = s->cluster;
    if (op->kind == STORE_OP_UPDATE) return cl_resolve_update(s, rtxn, op, unit, out);
    if (op->kind == STORE_OP_TAKE_OVER) return cl_resolve_take_over(s, rtxn, op, out);
    if (op->kind != STORE_OP_PUT) {
        cl_encode_op(out, op, op->kind, op->val, op->vlen, op->body_hash);
        return 0;
    }
    if (!store_message_ok(op->msg)) return SR_E_INVALID;
    sr_buf_reset(&cl->rec);
    sr_message_encode(op->msg, &cl->rec);
    cl_encode_op(out, op, STORE_OP_PUT, cl->rec.data, cl->rec.len, op->body_hash);
    cl_overlay_add(&cl->ov, &cl->arena, op->id, cl->rec.data, cl->rec.len, unit);
    return 0;
}

/* Appends the unit to out, resolved; on a failure (a mutator refused, the message is gone) the
 * unit fails here with that code and out is as it was. */
static int cl_resolve_unit(sr_store *s, MDB_txn *rtxn, sr_store_txn *t, int unit, sr_buf *out) {
    size_t mark = out->len;
    if (!t->now_ms) t->now_ms = sr_now_ms();
    cl_put_u32(out, (uint32_t)unit); /* which unit of the round: its outcome goes back to it */
    cl_put_u64(out, (uint64_t)t->now_ms);
    cl_put_u32(out, (uint32_t)t->count);
    for (int i = 0; i < t->count; i++) {
        int rc = cl_resolve_op(s, rtxn, &t->ops[i], unit, out);
        if (rc == 0) continue;
        out->len = mark;
        cl_overlay_drop_unit(&s->cluster->ov, unit);
        t->status = t->ops[i].result = rc;
        return rc;
    }
    return 0;
}

/* ---- publishing (writer thread) ---- */

/* The header of one stream message: whose units, which round (each unit then carries its index in it). */
static void cl_begin_message(store_cluster *cl, sr_buf *b) {
    sr_buf_reset(b);
    sr_buf_append(b, CL_MAGIC, 4);
    cl_put_bytes(b, cl->node, strlen(cl->node));
    cl_put_u64(b, cl->incarnation);
    cl_put_u64(b, cl->token);
    cl_put_u32(b, 0); /* the unit count, set when the message is complete */
}

static void cl_set_count(sr_buf *b, size_t count_at, uint32_t n) {
    unsigned char *p = (unsigned char *)b->data + count_at;
    p[0] = (unsigned char)(n >> 24);
    p[1] = (unsigned char)(n >> 16);
    p[2] = (unsigned char)(n >> 8);
    p[3] = (unsigned char)n;
}

/* Publishes one message; its stream sequence in *seq. Retried with the same Nats-Msg-Id, so a
 * message whose acknowledgement was lost is stored once. */
static int cl_publish(store_cluster *cl, const sr_buf *b, int part, uint64_t *seq) {
    char msg_id[192];
    snprintf(msg_id, sizeof msg_id, "%s.%016llx.%llu.%d", cl->node, (unsigned long long)cl->incarnation,
             (unsigned long long)cl->token, part);
    natsStatus st = NATS_OK;
    jsErrCode jerr = 0;
    for (int64_t until = cl_mono_ms() + CL_PUBLISH_BUDGET_MS; cl_mono_ms() < until;) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MsgId = msg_id;
        po.MaxWait = CL_PUBLISH_WAIT_MS;
        jsPubAck *pa = NULL;
        st = js_Publish(&pa, cl->js, cl->subject, b->data, (int)b->len, &po, &jerr);
        if (st == NATS_OK) {
            *seq = pa->Sequence;
            jsPubAck_Destroy(pa);
            return 0;
        }
        usleep(100000); /* not connected, no responders: they answer at once */
    }
    sr_error("cluster: the stream did not store a unit", "error", natsStatus_GetText(st), "stream", cl->stream);
    return SR_E_UNAVAILABLE;
}

/* Resolves the round's units into stream messages and publishes them; *last: the last sequence. */
static int cl_publish_round(sr_store *s, sr_store_txn **round, int n, uint64_t *last) {
    store_cluster *cl = s->cluster;
    MDB_txn *rtxn = NULL;
    sr_buf unit;
    sr_buf_init(&unit);
    int rc = 0, part = 0, in_msg = 0;
    size_t count_at = 0;
    pthread_rwlock_rdlock(&s->map_lock);
    int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &rtxn);
    cl_overlay_reset(&cl->ov);
    cl_begin_message(cl, &cl->out);
    count_at = cl->out.len - 4;
    for (int i = 0; i < n && rc == 0; i++) {
        sr_buf_reset(&unit);
        if (mrc) {
            store_txn_fail(round[i], store_error(mrc, "cluster read"));
            continue;
        }
        if (cl_resolve_unit(s, rtxn, round[i], i, &unit)) continue;
        if (cl->out.len + unit.len > cl->max_payload && in_msg > 0) {
            cl_set_count(&cl->out, count_at, (uint32_t)in_msg);
            rc = cl_publish(cl, &cl->out, part++, last);
            cl_begin_message(cl, &cl->out);
            in_msg = 0;
        }
        if (cl->out.len + unit.len > cl->max_payload) {
            sr_error("cluster: a unit is larger than the NATS servers' max_payload; raise it", "bytes",
                     sr_log_num((int64_t)unit.len));
            store_txn_fail(round[i], SR_E_INVALID);
            continue;
        }
        sr_buf_append(&cl->out, unit.data, unit.len);
        in_msg++;
    }
    if (rtxn) mdb_txn_abort(rtxn);
    pthread_rwlock_unlock(&s->map_lock);
    if (rc == 0 && in_msg > 0) {
        cl_set_count(&cl->out, count_at, (uint32_t)in_msg);
        rc = cl_publish(cl, &cl->out, part, last);
    }
    sr_buf_free(&unit);
    return rc;
}

/* Waits until the applier applied seq (0: it did; SR_E_IO: it stopped or took too long). */
static int cl_wait_applied(store_cluster *cl, uint64_t seq) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += CL_APPLY_WAIT_MS / 1000;
    int rc = 0;
    pthread_mutex_lock(&cl->mu);
    while (cl->applied_seq < seq && !cl->stop && rc == 0)
        if (pthread_cond_timedwait(&cl->cond, &cl->mu, &deadline) == ETIMEDOUT) rc = SR_E_IO;
    if (cl->applied_seq < seq) rc = SR_E_IO;
    pthread_mutex_unlock(&cl->mu);
    if (rc) sr_error("cluster: a published unit was not applied here in time", "stream", cl->stream);
    return rc;
}

/* After a round: a unit that lost a race (STORE_E_RETRY) goes round again, as if never tried; one the
 * replica applied, or that failed before it was published, is done; the rest fail with rc (the
 * publish or the wait failed). Returns how many go round again. */
static int cl_after_round(sr_store_txn **round, int n, int rc) {
    int again = 0;
    for (int i = 0; i < n; i++) {
        sr_store_txn *t = round[i];
        if (!t->applied) {
            if (t->status == 0) store_txn_fail(t, rc ? rc : SR_E_IO);
            continue;
        }
        if (t->status != STORE_E_RETRY) continue;
        again++;
        t->status = 0;
        t->applied = 0;
        for (int j = 0; j < t->count; j++) {
            store_op *op = &t->ops[j];
            op->result = 0;
            op->int_out = 0;
            op->events = 0;
            if (op->kind == STORE_OP_UPDATE) op->msg = NULL; /* in the batch's arena */
        }
        round[again - 1] = t;
    }
    return again;
}

static void cl_set_await(store_cluster *cl, sr_store_txn **units, int n) {
    pthread_mutex_lock(&cl->mu);
    cl->await_token = n ? cl->token : 0;
    cl->await_units = units;
    cl->await_n = n;
    pthread_mutex_unlock(&cl->mu);
}

/* One round: resolve, publish, wait for this node's replica; 0, or the code every unit left fails with. */
static int cl_round(sr_store *s, sr_store_txn **round, int n) {
    store_cluster *cl = s->cluster;
    uint64_t last = 0;
    cl->token++;
    cl_set_await(cl, round, n);
    int rc = cl_publish_round(s, round, n, &last);
    /* Even when a later part failed, the parts the stream stored are applied: their units get their
     * outcomes (the others fail with rc). */
    int wait_rc = last ? cl_wait_applied(cl, last) : 0;
    if (rc == 0) rc = wait_rc;
    cl_set_await(cl, NULL, 0);
    if (rc == SR_E_UNAVAILABLE) {
        pthread_mutex_lock(&cl->mu);
        cl->unavailable += (uint64_t)n;
        pthread_mutex_unlock(&cl->mu);
    }
    return rc;
}

void store_cluster_commit(sr_store *s, sr_store_txn *head) {
    store_cluster *cl = s->cluster;
    int n = 0, rounds = 0;
    for (sr_store_txn *t = head; t; t = t->next) n++;
    sr_store_txn **round = malloc(sizeof *round * (size_t)(n ? n : 1));
    if (!round) abort();
    n = 0;
    sr_store_txn *tail = NULL;
    for (sr_store_txn *t = head; t; t = t->next) {
        t->applied = 0;
        round[n++] = tail = t;
    }
    while (n > 0) {
        if (rounds++ == CL_ROUNDS) {
            sr_error("cluster: units kept losing races with other nodes; failed", "units", sr_log_num(n));
            for (int i = 0; i < n; i++) store_txn_fail(round[i], SR_E_IO);
            break;
        }
        n = cl_after_round(round, n, cl_round(s, round, n));
        if (n > 0) {
            pthread_mutex_lock(&cl->mu);
            cl->retried += (uint64_t)n;
            pthread_mutex_unlock(&cl->mu);
        }
    }
    if (tail) {
        tail->arena = cl->arena; /* the loop frees it with the last unit, after every callback of the batch */
        sr_arena_init(&cl->arena, 0);
    }
    free(round);
}

/* ---- applying (applier thread) ---- */

typedef struct cl_message {
    char node[96];
    char owner[160]; /* "node/incarnation": who owns the work its units leave in flight */
    uint64_t incarnation, token;
    sr_store_txn *head, *tail;
    int n;
    int *index; /* each unit's index in its round */
} cl_message;

static void cl_free_units(sr_store_txn *t) {
    while (t) {
        sr_store_txn *next = t->next;
        sr_store_txn_discard(t);
        t = next;
    }
}

static sr_store_txn *cl_decode_unit(sr_store *s, cl_reader *r, int *index) {
    *index = (int)cl_get_u32(r);
    int64_t now = (int64_t)cl_get_u64(r);
    uint32_t count = cl_get_u32(r);
    if (r->bad || count > (uint32_t)(r->end - r->p)) return NULL;
    sr_store_txn *t = sr_store_txn_new(s);
    t->now_ms = now;
    for (uint32_t i = 0; i < count; i++) {
        int slot;
        store_op *op = store_txn_add(t, STORE_OP_NOP, &slot);
        if (cl_decode_op(r, op) < 0) {
            sr_store_txn_discard(t);
            return NULL;
        }
    }
    return t;
}

/* A stream message into units (0), or -1 when it is not one of ours or damaged. */
static int cl_decode_message(sr_store *s, const char *data, size_t len, cl_message *m) {
    cl_reader r = {(const unsigned char *)data, (const unsigned char *)data + len, 0};
    size_t nlen = 0;
    memset(m, 0, sizeof *m);
    const unsigned char *magic = cl_take(&r, 4);
    if (!magic || memcmp(magic, CL_MAGIC, 4) != 0) return -1;
    char *node = cl_get_bytes(&r, &nlen);
    sr_str_copy(m->node, sizeof m->node, node ? node : "");
    free(node);
    m->incarnation = cl_get_u64(&r);
    m->token = cl_get_u64(&r);
    uint32_t n = cl_get_u32(&r);
    if (r.bad || n > len) return -1;
    m->index = calloc(n ? n : 1, sizeof *m->index);
    if (!m->index) abort();
    for (uint32_t i = 0; i < n; i++) {
        sr_store_txn *t = cl_decode_unit(s, &r, &m->index[i]);
        if (!t) goto fail;
        if (m->tail) m->tail->next = t;
        else
            m->head = t;
        m->tail = t;
        m->n++;
    }
    if (r.p == r.end) return 0;
fail:
    cl_free_units(m->head);
    free(m->index);
    memset(m, 0, sizeof *m);
    return -1;
}

/* This node's writer waits for these units: their outcomes go to its own units (under mu). */
static void cl_hand_outcomes(store_cluster *cl, const cl_message *m) {
    int i = 0;
    for (const sr_store_txn *t = m->head; t; t = t->next, i++) {
        int at = m->index[i];
        if (at < 0 || at >= cl->await_n) continue;
        sr_store_txn *own = cl->await_units[at];
        if (own->count != t->count) continue;
        own->status = t->status;
        own->applied = 1;
        for (int j = 0; j < t->count; j++) {
            store_op *o = &own->ops[j];
            const store_op *a = &t->ops[j];
            o->result = a->result;
            o->int_out = a->int_out;
            o->events = a->events;
            if (o->kind == STORE_OP_PUT) memcpy(o->id, a->id, sizeof o->id); /* the first id of a reused key */
        }
    }
}

/* Units of another node (or of this node's predecessor): to the loop, for the scheduler, the reports
 * and the statistics, when they did something those act on; else freed here. */
static void cl_to_loop(sr_store *s, sr_store_txn *head, sr_store_txn *tail, size_t n) {
    int wanted = 0;
    for (sr_store_txn *t = head; t; t = t->next) {
        t->remote = 1;
        t->owner = NULL; /* it pointed into the applier's batch */
        for (int j = 0; j < t->count && t->status == 0; j++)
            if (t->ops[j].events) wanted = 1;
    }
    if (!wanted || !s->cluster->caught_up) {
        cl_free_units(head);
        return;
    }
    store_list list = {head, tail, n};
    pthread_mutex_lock(&s->mu);
    store_list_append(&s->done, &list);
    pthread_mutex_unlock(&s->mu);
    uv_async_send(&s->handles->async);
}

/* A stream message into units; one that is not a unit of ours becomes an empty unit (every replica
 * skips it alike: only the position moves). */
static void cl_decode_or_skip(sr_store *s, const char *data, size_t len, uint64_t seq, cl_message *m) {
    if (cl_decode_message(s, data, len, m) < 0) {
        sr_warn("cluster: skipped a stream message that is not a unit of ours", "seq", sr_log_num((int64_t)seq));
        m->head = m->tail = sr_store_txn_new(s);
        m->n = 1;
    }
    char owner[sizeof m->owner];
    snprintf(owner, sizeof owner, "%.95s/%016llx", m->node, (unsigned long long)m->incarnation);
    memcpy(m->owner, owner, sizeof owner);
    for (sr_store_txn *t = m->head; t; t = t->next) t->owner = m->owner;
}

/* Is m the round this node's writer waits for (under mu)? */
static int cl_is_awaited(const store_cluster *cl, const cl_message *m) {
    return m->index && strcmp(m->node, cl->node) == 0 && m->incarnation == cl->incarnation &&
           m->token == cl->await_token && cl->await_token != 0;
}

/* After the commit: outcomes to this node's writer (its own units are freed), the replica's position
 * moved to seq, the other units (linked anew) to the loop with the batch's results arena. */
static void cl_after_apply(sr_store *s, cl_message *ms, int n, uint64_t seq, sr_arena *arena) {
    store_cluster *cl = s->cluster;
    sr_store_txn *head = NULL, *tail = NULL;
    size_t count = 0;
    pthread_mutex_lock(&cl->mu);
    for (int i = 0; i < n; i++) ms[i].tail->next = NULL;
    for (int i = 0; i < n; i++) {
        if (cl_is_awaited(cl, &ms[i])) {
            cl_hand_outcomes(cl, &ms[i]);
            cl_free_units(ms[i].head);
        } else {
            if (tail) tail->next = ms[i].head;
            else
                head = ms[i].head;
            tail = ms[i].tail;
            count += (size_t)ms[i].n;
        }
        free(ms[i].index);
    }
    cl->applied_seq = seq;
    pthread_cond_broadcast(&cl->cond);
    pthread_mutex_unlock(&cl->mu);
    if (!tail) {
        sr_arena_free(arena);
        return;
    }
    tail->arena = *arena; /* freed with the last unit, after every callback */
    cl_to_loop(s, head, tail, count);
}

/* Applies n stream messages (their data and sequences) in one transaction. 0 when the replica is at the
 * last one's sequence afterwards; -1 when it could not write (they are tried again). */
static int cl_apply(sr_store *s, natsMsg **msgs, const uint64_t *seqs, int n) {
    cl_message ms[CL_APPLY_MAX];
    for (int i = 0; i < n; i++) {
        cl_decode_or_skip(s, natsMsg_GetData(msgs[i]), (size_t)natsMsg_GetDataLength(msgs[i]), seqs[i], &ms[i]);
        if (i > 0) ms[i - 1].tail->next = ms[i].head;
    }
    s->wmeta_seq = seqs[n - 1];
    int committed = store_commit_batch(s, ms[0].head);
    s->wmeta_seq = 0;
    if (!committed) {
        cl_free_units(ms[0].head);
        for (int i = 0; i < n; i++) free(ms[i].index);
        return -1;
    }
    /* The results arena went to the batch's last unit: it follows the units that go to the loop. */
    sr_arena arena = ms[n - 1].tail->arena;
    sr_arena_init(&ms[n - 1].tail->arena, 0);
    cl_after_apply(s, ms, n, seqs[n - 1], &arena);
    return 0;
}

static int cl_stopping(store_cluster *cl) {
    pthread_mutex_lock(&cl->mu);
    int stop = cl->stop;
    pthread_mutex_unlock(&cl->mu);
    return stop;
}

/* The stream sequence of a message (0: unknown). */
static uint64_t cl_seq_of(natsMsg *msg) {
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) return 0;
    uint64_t seq = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
    return seq;
}

/* The messages in msgs[0..n) (destroyed here), applied in one transaction (those already applied
 * skipped: the ordered consumer restarted); a replica that cannot write waits and tries again. */
static void cl_apply_msgs(sr_store *s, natsMsg **msgs, int n) {
    store_cluster *cl = s->cluster;
    natsMsg *unapplied[CL_APPLY_MAX];
    uint64_t seqs[CL_APPLY_MAX], last = cl->applied_seq;
    int k = 0;
    for (int i = 0; i < n; i++) {
        uint64_t seq = cl_seq_of(msgs[i]);
        if (seq > last) {
            unapplied[k] = msgs[i];
            seqs[k++] = last = seq;
        }
    }
    while (k > 0 && cl_apply(s, unapplied, seqs, k) < 0) {
        sr_error("cluster: the replica cannot apply the stream; retrying", "seq", sr_log_num((int64_t)seqs[0]));
        for (int i = 0; i < 10 && !cl_stopping(cl); i++) usleep(100000);
        if (cl_stopping(cl)) break;
    }
    for (int i = 0; i < n; i++) natsMsg_Destroy(msgs[i]);
}

/* A heartbeat heard (a NATS thread). */
static void cl_on_alive(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *ud) {
    store_cluster *cl = ud;
    int len = natsMsg_GetDataLength(msg);
    const char *data = natsMsg_GetData(msg);
    (void)nc;
    (void)sub;
    if (len > 0 && (size_t)len < sizeof cl->peers[0].owner) {
        int64_t now = cl_mono_ms();
        pthread_mutex_lock(&cl->mu);
        int at = -1, oldest = 0;
        for (int i = 0; i < cl->npeers; i++) {
            if (strncmp(cl->peers[i].owner, data, (size_t)len) == 0 && cl->peers[i].owner[len] == '\0') at = i;
            if (cl->peers[i].seen_ms < cl->peers[oldest].seen_ms) oldest = i;
        }
        if (at < 0) at = cl->npeers < CL_MAX_PEERS ? cl->npeers++ : oldest;
        snprintf(cl->peers[at].owner, sizeof cl->peers[at].owner, "%.*s", len, data);
        cl->peers[at].seen_ms = now;
        pthread_mutex_unlock(&cl->mu);
    }
    natsMsg_Destroy(msg);
}

/* Says this node is alive, every CL_BEAT_MS (applier thread). */
static void cl_beat(store_cluster *cl) {
    int64_t now = cl_mono_ms();
    /* Several beats per timeout, so one lost or late beat does not make a node look gone. */
    int64_t every = cl->timeout_ms / 4 < CL_BEAT_MS ? cl->timeout_ms / 4 : CL_BEAT_MS;
    if (now - cl->beat_ms < every) return;
    cl->beat_ms = now;
    natsConnection_Publish(cl->nc, cl->alive_subject, cl->owner, (int)strlen(cl->owner));
}

int store_cluster_live_nodes(sr_store *s) {
    store_cluster *cl = s->cluster;
    int64_t now = cl_mono_ms();
    int n = 1; /* this one */
    pthread_mutex_lock(&cl->mu);
    for (int i = 0; i < cl->npeers; i++)
        if (now - cl->peers[i].seen_ms <= cl->timeout_ms && strcmp(cl->peers[i].owner, cl->owner) != 0) n++;
    pthread_mutex_unlock(&cl->mu);
    return n;
}

/* This node's place among the live ones (by their "node/incarnation" order) decides which ids are its. */
int store_cluster_mine(sr_store *s, const char *id) {
    store_cluster *cl = s->cluster;
    int64_t now = cl_mono_ms();
    int n = 1, before = 0;
    pthread_mutex_lock(&cl->mu);
    for (int i = 0; i < cl->npeers; i++) {
        if (now - cl->peers[i].seen_ms > cl->timeout_ms) continue;
        int c = strcmp(cl->peers[i].owner, cl->owner);
        if (c == 0) continue;
        n++;
        if (c < 0) before++;
    }
    pthread_mutex_unlock(&cl->mu);
    return (int)(sr_fnv1a_str(SR_FNV1A_INIT, id) % (uint32_t)n) == before;
}

void store_cluster_stats(sr_store *s, sr_store_stats *out) {
    store_cluster *cl = s->cluster;
    out->nodes = store_cluster_live_nodes(s);
    pthread_mutex_lock(&cl->mu);
    out->stream_seq = cl->applied_seq;
    out->retried_units = cl->retried;
    out->unavailable_units = cl->unavailable;
    pthread_mutex_unlock(&cl->mu);
}

int store_cluster_owner_gone(sr_store *s, const char *owner, size_t len) {
    store_cluster *cl = s->cluster;
    const char *slash = memchr(owner, '/', len);
    size_t node_len = slash ? (size_t)(slash - owner) : len;
    if (!cl) return 1;
    if (len == strlen(cl->owner) && memcmp(owner, cl->owner, len) == 0) return 0;         /* this process */
    if (node_len == strlen(cl->node) && memcmp(owner, cl->node, node_len) == 0) return 1; /* its predecessor */
    int64_t now = cl_mono_ms(), seen = -1;
    pthread_mutex_lock(&cl->mu);
    for (int i = 0; i < cl->npeers; i++)
        if (strlen(cl->peers[i].owner) == len && memcmp(cl->peers[i].owner, owner, len) == 0)
            seen = cl->peers[i].seen_ms;
    pthread_mutex_unlock(&cl->mu);
    /* Never heard: gone once this node has listened long enough to have heard it. */
    if (seen < 0) seen = cl->started_ms;
    return now - seen > cl->timeout_ms;
}

static void *cl_applier_main(void *arg) {
    sr_store *s = arg;
    store_cluster *cl = s->cluster;
    while (!cl_stopping(cl)) {
        natsMsg *msg = NULL;
        cl_beat(cl);
        natsStatus st = natsSubscription_NextMsg(&msg, cl->sub, cl->timeout_ms / 8 < 200 ? cl->timeout_ms / 8 : 200);
        if (st == NATS_TIMEOUT) continue;
        if (st != NATS_OK) {
            /* The ordered consumer recreates itself after a gap or a server change; a closed
             * connection ends here. */
            if (st == NATS_CONNECTION_CLOSED || st == NATS_INVALID_SUBSCRIPTION) break;
            usleep(50000);
            continue;
        }
        /* Whatever else waits already goes into the same transaction (one sync for all). */
        natsMsg *msgs[CL_APPLY_MAX];
        int n = 0, pending = 0;
        msgs[n++] = msg;
        while (n < CL_APPLY_MAX && natsSubscription_GetPending(cl->sub, &pending, NULL) == NATS_OK && pending > 0 &&
               natsSubscription_NextMsg(&msgs[n], cl->sub, 1) == NATS_OK)
            n++;
        cl_apply_msgs(s, msgs, n);
    }
    pthread_mutex_lock(&cl->mu);
    cl->stop = 1;
    pthread_cond_broadcast(&cl->cond);
    pthread_mutex_unlock(&cl->mu);
    return NULL;
}

/* ---- open and close ---- */

/* "nats://a:1,nats://b:2" into the connection options. */
static natsStatus cl_set_servers(natsOptions *o, const char *urls) {
    char *copy = strdup(urls);
    const char *list[32];
    int n = 0;
    if (!copy) abort();
    for (char *save = NULL, *p = strtok_r(copy, ", ", &save); p && n < 32; p = strtok_r(NULL, ", ", &save))
        list[n++] = p;
    natsStatus st = n ? natsOptions_SetServers(o, list, n) : NATS_INVALID_ARG;
    free(copy);
    return st;
}

static int cl_stopping(store_cluster *cl);

static void cl_on_disconnected(natsConnection *nc, void *ud) {
    (void)nc;
    if (cl_stopping(ud)) return; /* closing */
    sr_warn("cluster: lost the connection to NATS; reconnecting", "stream", ((store_cluster *)ud)->stream);
}

/* The last callback of a connection (on the client's callback thread): close waits for it before it
 * frees what the callbacks use. */
static void cl_on_closed(natsConnection *nc, void *ud) {
    store_cluster *cl = ud;
    (void)nc;
    pthread_mutex_lock(&cl->mu);
    cl->closed = 1;
    pthread_cond_broadcast(&cl->cond);
    pthread_mutex_unlock(&cl->mu);
}

static void cl_on_reconnected(natsConnection *nc, void *ud) {
    (void)nc;
    sr_info("cluster: reconnected to NATS", "stream", ((store_cluster *)ud)->stream);
}

static int cl_connect(store_cluster *cl, const char *urls, char *err, size_t errlen) {
    natsOptions *o = NULL;
    natsStatus st = natsOptions_Create(&o);
    if (st == NATS_OK) st = cl_set_servers(o, urls);
    if (st == NATS_OK) st = natsOptions_SetName(o, cl->node);
    if (st == NATS_OK) st = natsOptions_SetTimeout(o, 2000);
    if (st == NATS_OK) st = natsOptions_SetMaxReconnect(o, -1); /* for ever: the servers come back */
    if (st == NATS_OK) st = natsOptions_SetReconnectWait(o, 250);
    if (st == NATS_OK) st = natsOptions_SetDisconnectedCB(o, cl_on_disconnected, cl);
    if (st == NATS_OK) st = natsOptions_SetReconnectedCB(o, cl_on_reconnected, cl);
    if (st == NATS_OK) st = natsOptions_SetClosedCB(o, cl_on_closed, cl);
    if (st == NATS_OK) st = natsConnection_Connect(&cl->nc, o);
    natsOptions_Destroy(o);
    if (st == NATS_OK) st = natsConnection_JetStream(&cl->js, cl->nc, NULL);
    if (st != NATS_OK) {
        snprintf(err, errlen, "cannot connect to the NATS cluster: %s", natsStatus_GetText(st));
        return SR_E_IO;
    }
    int64_t max = natsConnection_GetMaxPayload(cl->nc);
    cl->max_payload = max > 1024 ? (size_t)max - 512 : 1024; /* room for the headers */
    return 0;
}

/* The stream keeps units for the retention (its max age): a stream made with another is changed. */
static natsStatus cl_keep_retention(store_cluster *cl, jsStreamInfo **si, int64_t max_age_ns) {
    if (!(*si)->Config || (*si)->Config->MaxAge == max_age_ns) return NATS_OK;
    jsStreamConfig cfg = *(*si)->Config;
    jsStreamInfo *updated = NULL;
    jsErrCode jerr = 0;
    cfg.MaxAge = max_age_ns;
    natsStatus st = js_UpdateStream(&updated, cl->js, &cfg, NULL, &jerr);
    if (st != NATS_OK) return st;
    sr_info("cluster: the stream's retention changed", "stream", cl->stream, "seconds",
            sr_log_num(max_age_ns / 1000000000));
    jsStreamInfo_Destroy(*si);
    *si = updated;
    return NATS_OK;
}

/* The stream's info, the stream created first when it does not exist (by whichever node comes
 * first: a second one finds it). */
static int cl_stream_info(store_cluster *cl, int replicas, int64_t retention_s, jsStreamInfo **si, char *err,
                          size_t errlen) {
    int64_t max_age_ns = (retention_s > 0 ? retention_s : 86400) * 1000000000;
    jsErrCode jerr = 0;
    natsStatus st = js_GetStreamInfo(si, cl->js, cl->stream, NULL, &jerr);
    if (st == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
        jsStreamConfig cfg;
        const char *subjects[1] = {cl->subject};
        jsStreamConfig_Init(&cfg);
        cfg.Name = cl->stream;
        cfg.Subjects = subjects;
        cfg.SubjectsLen = 1;
        cfg.Storage = js_FileStorage;
        cfg.Replicas = replicas;
        cfg.Duplicates = CL_DUPLICATE_WINDOW_NS;
        cfg.MaxAge = max_age_ns;
        jerr = 0;
        st = js_AddStream(si, cl->js, &cfg, NULL, &jerr);
        if (st == NATS_OK)
            sr_info("cluster: created the stream", "stream", cl->stream, "replicas", sr_log_num(replicas));
        if (jerr == JSStreamNameExistErr) st = js_GetStreamInfo(si, cl->js, cl->stream, NULL, &jerr);
    }
    if (st == NATS_OK) st = cl_keep_retention(cl, si, max_age_ns);
    if (st != NATS_OK) {
        const char *why = nats_GetLastError(NULL);
        snprintf(err, errlen, "cannot open the JetStream stream %s: %s%s", cl->stream,
                 why && *why ? why : natsStatus_GetText(st),
                 jerr == JSStreamReplicasNotSupportedErr ? " (a single server: set cluster_replicas = 1)" : "");
        return SR_E_IO;
    }
    return 0;
}

/* The replica belongs to this stream (its creation time recorded at its first unit), and the
 * stream still holds what the replica has not applied. */
static int cl_check_replica(sr_store *s, const jsStreamInfo *si, char *err, size_t errlen) {
    store_cluster *cl = s->cluster;
    uint64_t created = 0, seq = 0;
    int rc = store_read_meta_u64(s, STORE_META_CLUSTER_STREAM, &created);
    if (rc == 0) rc = store_read_meta_u64(s, STORE_META_CLUSTER_SEQ, &seq);
    if (rc) {
        snprintf(err, errlen, "cannot read the replica's position: %s", sr_store_strerror(rc));
        return rc;
    }
    if (created == 0 && store_has_messages(s)) {
        snprintf(err, errlen,
                 "the data directory holds a single-node store; cluster mode keeps a replica of the stream "
                 "there: give it an empty directory");
        return SR_E_INVALID;
    }
    if (created != 0 && created != (uint64_t)si->Created) {
        snprintf(err, errlen,
                 "the data directory is a replica of another stream named %s (created at another time); move it "
                 "away: the replica is rebuilt from the stream",
                 cl->stream);
        return SR_E_INVALID;
    }
    /* Units older than the retention are gone from the stream: a replica that missed them (down that
     * long, or new) cannot be built from it. */
    uint64_t first = si->State.Msgs > 0 ? si->State.FirstSeq : si->State.LastSeq + 1;
    if (first > seq + 1) {
        snprintf(err, errlen,
                 "the stream no longer holds the units after this replica's position (%llu; it starts at %llu, "
                 "older ones are past cluster_retention_s): seed this node's data directory with `smsrules backup` "
                 "of another node's, then start it again",
                 (unsigned long long)seq, (unsigned long long)first);
        return SR_E_INVALID;
    }
    cl->applied_seq = seq;
    return created == 0 ? store_write_meta_u64(s, STORE_META_CLUSTER_STREAM, (uint64_t)si->Created) : 0;
}

/* The ordered consumer from the replica's next sequence, and the applier thread. */
static int cl_start_applier(sr_store *s, char *err, size_t errlen) {
    store_cluster *cl = s->cluster;
    jsSubOptions so;
    jsErrCode jerr = 0;
    jsSubOptions_Init(&so);
    so.Stream = cl->stream;
    so.Ordered = true;
    /* The server's idle heartbeats tell the client that the consumer is gone (its server died): the
     * client recreates it after two missed. The default (5 s) stalls every write (they wait to be
     * applied here) for 10 s and more after a nats-server dies; 1 s keeps that short. */
    so.Config.Heartbeat = (int64_t)CL_ORDERED_HEARTBEAT_MS * 1000000;
    so.Config.DeliverPolicy = cl->applied_seq ? js_DeliverByStartSequence : js_DeliverAll;
    so.Config.OptStartSeq = cl->applied_seq ? cl->applied_seq + 1 : 0;
    natsStatus st = js_SubscribeSync(&cl->sub, cl->js, cl->subject, NULL, &so, &jerr);
    if (st != NATS_OK) {
        const char *why = nats_GetLastError(NULL);
        snprintf(err, errlen, "cannot read the stream %s: %s", cl->stream, why && *why ? why : natsStatus_GetText(st));
        return SR_E_IO;
    }
    int rc = pthread_create(&cl->applier, NULL, cl_applier_main, s);
    if (rc) {
        snprintf(err, errlen, "cannot start the cluster applier thread: %s", strerror(rc));
        return SR_E_IO;
    }
    cl->applier_started = 1;
    return 0;
}

/* At open: the replica applies the stream up to its end as it was, so what the daemon reads at
 * start (owed handlers, messages in flight, statistics) is the cluster's. */
static int cl_catch_up(store_cluster *cl, uint64_t last, char *err, size_t errlen) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += CL_CATCH_UP_MS / 1000;
    pthread_mutex_lock(&cl->mu);
    while (cl->applied_seq < last && !cl->stop)
        if (pthread_cond_timedwait(&cl->cond, &cl->mu, &deadline) == ETIMEDOUT) break;
    uint64_t at = cl->applied_seq;
    cl->caught_up = 1;
    pthread_mutex_unlock(&cl->mu);
    if (at >= last) return 0;
    snprintf(err, errlen, "the replica did not catch up with the stream (at %llu of %llu)", (unsigned long long)at,
             (unsigned long long)last);
    return SR_E_IO;
}

/* At open: long enough for every live node's heartbeat to be heard (a beat interval and a quarter),
 * so this node counts them before it takes its share of a provider's rate. */
static void cl_hear_peers(store_cluster *cl) {
    int64_t every = cl->timeout_ms / 4 < CL_BEAT_MS ? cl->timeout_ms / 4 : CL_BEAT_MS;
    int64_t wait = cl->started_ms + every + every / 4 - cl_mono_ms();
    if (wait > 0) usleep((useconds_t)wait * 1000);
}

static void cl_node_name(char *out, size_t len, const char *node) {
    char host[64] = "node";
    if (node && node[0]) {
        sr_str_copy(out, len, node);
        return;
    }
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(out, len, "%s-%ld", host, (long)getpid());
}

int store_cluster_open(sr_store *s, const sr_store_options *opt, char *err, size_t errlen) {
    store_cluster *cl = calloc(1, sizeof *cl);
    jsStreamInfo *si = NULL;
    if (!cl) abort();
    s->cluster = cl;
    pthread_mutex_init(&cl->mu, NULL);
    pthread_cond_init(&cl->cond, NULL);
    sr_buf_init(&cl->out);
    sr_buf_init(&cl->rec);
    sr_arena_init(&cl->arena, 0);
    sr_str_copy(cl->stream, sizeof cl->stream,
                opt->cluster_stream && opt->cluster_stream[0] ? opt->cluster_stream : "SMSRULES");
    snprintf(cl->subject, sizeof cl->subject, "%s.units", cl->stream);
    snprintf(cl->alive_subject, sizeof cl->alive_subject, "%s.alive", cl->stream);
    cl_node_name(cl->node, sizeof cl->node, opt->node);
    sr_crypto_random(&cl->incarnation, sizeof cl->incarnation);
    snprintf(cl->owner, sizeof cl->owner, "%s/%016llx", cl->node, (unsigned long long)cl->incarnation);
    cl->started_ms = cl_mono_ms();
    cl->timeout_ms = opt->node_timeout_ms > 0 ? opt->node_timeout_ms : SR_STORE_NODE_TIMEOUT_MS;
    int rc = cl_connect(cl, opt->cluster, err, errlen);
    if (rc == 0)
        rc = cl_stream_info(cl, opt->cluster_replicas > 0 ? opt->cluster_replicas : 3, opt->retention_s, &si, err,
                            errlen);
    if (rc == 0) rc = cl_check_replica(s, si, err, errlen);
    uint64_t last = si ? si->State.LastSeq : 0;
    if (si) jsStreamInfo_Destroy(si);
    if (rc == 0 && natsConnection_Subscribe(&cl->alive_sub, cl->nc, cl->alive_subject, cl_on_alive, cl) != NATS_OK) {
        snprintf(err, errlen, "cannot subscribe to %s", cl->alive_subject);
        rc = SR_E_IO;
    }
    if (rc == 0) rc = cl_start_applier(s, err, errlen);
    if (rc == 0) rc = cl_catch_up(cl, last, err, errlen);
    if (rc == 0) cl_hear_peers(cl);
    if (rc == 0)
        sr_info("cluster: replica caught up with the stream", "stream", cl->stream, "node", cl->node, "seq",
                sr_log_num((int64_t)cl->applied_seq));
    return rc;
}

void store_cluster_close(sr_store *s) {
    store_cluster *cl = s->cluster;
    if (!cl) return;
    pthread_mutex_lock(&cl->mu);
    cl->stop = 1;
    pthread_cond_broadcast(&cl->cond);
    pthread_mutex_unlock(&cl->mu);
    if (cl->applier_started) pthread_join(cl->applier, NULL);
    if (cl->sub) natsSubscription_Destroy(cl->sub);
    if (cl->alive_sub) {
        /* Drained: no heartbeat callback runs after this (it takes mu, destroyed below). */
        if (natsSubscription_Drain(cl->alive_sub) == NATS_OK)
            natsSubscription_WaitForDrainCompletion(cl->alive_sub, 2000);
        natsSubscription_Destroy(cl->alive_sub);
    }
    if (cl->js) jsCtx_Destroy(cl->js);
    if (cl->nc) {
        natsConnection_Close(cl->nc);
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 5;
        pthread_mutex_lock(&cl->mu);
        while (!cl->closed)
            if (pthread_cond_timedwait(&cl->cond, &cl->mu, &deadline) == ETIMEDOUT) break;
        pthread_mutex_unlock(&cl->mu);
        natsConnection_Destroy(cl->nc);
    }
    pthread_mutex_destroy(&cl->mu);
    pthread_cond_destroy(&cl->cond);
    sr_buf_free(&cl->out);
    sr_buf_free(&cl->rec);
    sr_arena_free(&cl->arena);
    free(cl->ov.e);
    free(cl);
    s->cluster = NULL;
}
