/* store: the LMDB environment, the writer thread and group commit.
 *
 * Threads: the loop thread submits units and runs every read; one writer
 * thread owns every write transaction. Units submitted during a loop pass
 * collect in `pending` (loop only); before the loop blocks (prepare handle)
 * and after the I/O callbacks of a pass (check handle) they move to `queued`
 * (under mu), and the writer takes everything queued as one batch whenever
 * it is free (under load after a short wait for more: store_linger), so
 * batches keep submit order and the next batch collects while one commits.
 * After the commit the batch goes to `done` and an async wakes the loop,
 * which runs the callbacks in order.
 *
 * Map growth: mdb_env_set_mapsize needs every transaction of the process
 * closed, so loop-side reads hold map_lock for reading around their read
 * transaction and the writer takes it for writing to resize. */
#include "store/store.h"
#include "core/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/gcra.h"
#include "core/log.h"

#include "store/store_internal.h"
#include "store/store_pages.h"

static const char *const store_db_names[STORE_DB_COUNT] = {
    "messages", "queue", "expiry", "by_status", "provider_ids", "idempotency", "kv",     "dedup",
    "optouts",  "meta",  "watch",  "parked",    "inbound",      "owed",        "owners",
};

/* The public record spaces (sr_store_space) and their databases. */
static const int store_space_db[] = {STORE_DB_KV, STORE_DB_PARKED, STORE_DB_INBOUND, STORE_DB_OWED};

static int store_space(sr_store_space sp) {
    return (int)sp >= 0 && (size_t)sp < sizeof store_space_db / sizeof store_space_db[0] ? store_space_db[sp]
                                                                                         : STORE_DB_KV;
}

/* ---- small helpers ---- */

static void *store_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fputs("smsrules: out of memory\n", stderr);
        abort();
    }
    return p;
}

static char *store_memdup(const void *p, size_t len) {
    char *q = store_xcalloc(len + 1, 1);
    if (len) memcpy(q, p, len);
    return q;
}

static void store_put_be64(unsigned char *p, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}

static uint64_t store_get_be64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

/* Times in index keys: negative ones (never produced) sort as 0. */
static uint64_t store_key_time(int64_t ms) { return ms < 0 ? 0 : (uint64_t)ms; }

/* A number field for sr_log that is safe from any thread (sr_log_num's ring is not). */
static const char *store_num(char buf[32], int64_t v) {
    snprintf(buf, 32, "%s%lld", SR_LOG_NUM, (long long)v);
    return buf;
}

static double store_elapsed_ms(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* The codes the store's own logic produces, as opposed to LMDB's and errno's. */
int store_is_code(int rc) { return rc <= SR_E_NOTFOUND && rc >= SR_E_UNAVAILABLE; }

uint64_t store_bytes_hash(const void *p, size_t len) {
    const unsigned char *b = p;
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* The one place LMDB and system errors become SR_E_* codes (and a log line). */
int store_error(int rc, const char *what) {
    char num[32];
    int code;
    if (rc == 0) return 0;
    if (store_is_code(rc)) return rc;
    switch (rc) {
    case MDB_NOTFOUND: return SR_E_NOTFOUND;
    case MDB_KEYEXIST: return SR_E_EXISTS;
    case MDB_BAD_VALSIZE: return SR_E_INVALID;
    case MDB_MAP_FULL:
    case ENOSPC:
    case EDQUOT: code = SR_E_FULL; break;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID: code = SR_E_CORRUPT; break;
    default: code = SR_E_IO; break;
    }
    sr_error("store error", "op", what, "error", mdb_strerror(rc), "lmdb_code", store_num(num, rc));
    return code;
}

#define STORE_STR_(x) #x
#define STORE_STR(x) STORE_STR_(x)
const char *sr_store_lmdb_version(void) {
    return STORE_STR(MDB_VERSION_MAJOR) "." STORE_STR(MDB_VERSION_MINOR) "." STORE_STR(MDB_VERSION_PATCH);
}

const char *sr_store_strerror(int code) {
    switch (code) {
    case 0: return "ok";
    case SR_E_NOTFOUND: return "not found";
    case SR_E_CORRUPT: return "corrupt record";
    case SR_E_FULL: return "storage full";
    case SR_E_IO: return "storage error";
    case SR_E_CONFLICT: return "idempotency key reused with a different body";
    case SR_E_EXISTS: return "already exists";
    case SR_E_STATE: return "transition refused";
    case SR_E_INVALID: return "invalid argument";
    case SR_E_LOCKED: return "data directory in use by another process";
    case SR_E_UNAVAILABLE: return "the cluster did not store it (no quorum or no connection)";
    default: return "unknown error";
    }
}

/* ---- units ---- */

sr_store_txn *sr_store_txn_new(sr_store *s) {
    sr_store_txn *t = store_xcalloc(1, sizeof *t);
    t->store = s;
    sr_arena_init(&t->arena, 0);
    return t;
}

store_op *store_txn_add(sr_store_txn *t, store_op_kind kind, int *slot) {
    if (t->count == 0 && t->cap == 0) {
        t->ops = &t->first; /* most units hold one mutation: no allocation for it */
        t->cap = 1;
    } else if (t->count == t->cap) {
        int cap = t->cap * 4;
        store_op *ops = t->ops == &t->first ? malloc(sizeof(store_op) * (size_t)cap)
                                            : realloc(t->ops, sizeof(store_op) * (size_t)cap);
        if (!ops) {
            fputs("smsrules: out of memory\n", stderr);
            abort();
        }
        if (t->ops == &t->first) ops[0] = t->first;
        t->ops = ops;
        t->cap = cap;
    }
    *slot = t->count;
    store_op *op = &t->ops[t->count++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    return op;
}

static void store_free_message(sr_message **m) {
    if (!*m) return;
    sr_message_free(*m);
    free(*m);
    *m = NULL;
}

static void store_txn_free(sr_store_txn *t) {
    for (int i = 0; i < t->count; i++) {
        store_op *op = &t->ops[i];
        if (op->kind == STORE_OP_PUT) store_free_message(&op->msg);
        free(op->key);
        free(op->val);
    }
    sr_arena_free(&t->arena); /* after every earlier unit of its batch: callbacks run in order */
    if (t->ops != &t->first) free(t->ops);
    free(t);
}

void sr_store_txn_discard(sr_store_txn *t) {
    if (t) store_txn_free(t);
}

int sr_store_txn_put_message(sr_store_txn *t, sr_message *m, const char *idem_key, uint64_t body_hash) {
    int slot;
    store_op *op = store_txn_add(t, STORE_OP_PUT, &slot);
    op->msg = store_xcalloc(1, sizeof *op->msg);
    *op->msg = *m; /* the contents move into the unit */
    sr_message_init(m);
    if (!op->msg->id[0]) sr_id_new(op->msg->id, op->msg->created_at_ms ? op->msg->created_at_ms : sr_now_ms());
    op->msg->id[SR_ID_LEN] = '\0';
    memcpy(op->id, op->msg->id, sizeof op->id);
    if (idem_key && idem_key[0]) {
        op->klen = strlen(idem_key);
        op->key = store_memdup(idem_key, op->klen);
    }
    op->body_hash = body_hash;
    return slot;
}

int sr_store_txn_update_message(sr_store_txn *t, const char *id, sr_message_mutator fn, void *arg) {
    int slot;
    store_op *op = store_txn_add(t, STORE_OP_UPDATE, &slot);
    if (id && strlen(id) == SR_ID_LEN) memcpy(op->id, id, sizeof op->id); /* else: not found when applied */
    op->fn = fn;
    op->arg = arg;
    return slot;
}

/* v in decimal into out (room for 21 bytes), without the NUL; its length. snprintf's format parsing
 * was a visible share of the writer's time (an owed key and a kv incr per delivery report). */
static size_t store_fmt_i64(char *out, int64_t v) {
    char tmp[20];
    size_t n = 0, len = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) out[len++] = '-';
    while (n) out[len++] = tmp[--n];
    return len;
}

size_t sr_store_owed_key(const char *id, int64_t n, char *out, size_t outlen) {
    char num[24];
    size_t idlen = strlen(id), nlen = store_fmt_i64(num, n);
    if (idlen + 1 + nlen >= outlen) return 0;
    memcpy(out, id, idlen);
    out[idlen] = '/';
    memcpy(out + idlen + 1, num, nlen);
    out[idlen + 1 + nlen] = '\0';
    return idlen + 1 + nlen;
}

static store_op *store_txn_add_key(sr_store_txn *t, store_op_kind kind, const char *key, size_t klen, int *slot) {
    store_op *op = store_txn_add(t, kind, slot);
    op->key = store_memdup(key, key ? klen : 0);
    op->klen = key ? klen : 0;
    return op;
}

static int store_txn_add_value(sr_store_txn *t, store_op_kind kind, sr_store_space sp, const char *key, size_t klen,
                               const char *val, size_t vlen, int64_t expires_at_ms) {
    int slot;
    store_op *op = store_txn_add_key(t, kind, key, klen, &slot);
    op->db = store_space(sp);
    op->val = store_memdup(val, val ? vlen : 0);
    op->vlen = val ? vlen : 0;
    op->expires_at_ms = expires_at_ms;
    return slot;
}

int sr_store_txn_set(sr_store_txn *t, sr_store_space sp, const char *key, size_t klen, const char *val, size_t vlen,
                     int64_t expires_at_ms) {
    return store_txn_add_value(t, STORE_OP_KV_SET, sp, key, klen, val, vlen, expires_at_ms);
}

int sr_store_txn_append(sr_store_txn *t, sr_store_space sp, const char *key, size_t klen, const char *val, size_t vlen,
                        int64_t expires_at_ms) {
    return store_txn_add_value(t, STORE_OP_APPEND, sp, key, klen, val, vlen, expires_at_ms);
}

int sr_store_txn_consume(sr_store_txn *t, sr_store_space sp, const char *key, size_t klen, const char *prefix,
                         size_t plen) {
    return store_txn_add_value(t, STORE_OP_CONSUME, sp, key, klen, prefix, plen, 0);
}

int sr_store_txn_del_expired(sr_store_txn *t, sr_store_space sp, const char *key, size_t klen, int64_t now_ms) {
    int slot;
    store_op *op = store_txn_add_key(t, STORE_OP_SWEEP, key, klen, &slot);
    op->flag = store_space(sp);
    op->expires_at_ms = now_ms;
    return slot;
}

int sr_store_txn_take_over(sr_store_txn *t, char kind, const char *key, size_t klen) {
    int slot;
    char k[SR_ID_LEN + 64];
    if (klen + 1 > sizeof k) klen = sizeof k - 1; /* too long to be owned: the claim fails */
    k[0] = kind;
    memcpy(k + 1, key, klen);
    store_txn_add_key(t, STORE_OP_TAKE_OVER, k, klen + 1, &slot);
    return slot;
}

int sr_store_txn_del(sr_store_txn *t, sr_store_space sp, const char *key, size_t klen) {
    return store_txn_add_value(t, STORE_OP_KV_DEL, sp, key, klen, NULL, 0, 0);
}

int sr_store_txn_take(sr_store_txn *t, sr_store_space sp, const char *key, size_t klen) {
    int slot = store_txn_add_value(t, STORE_OP_KV_DEL, sp, key, klen, NULL, 0, 0);
    t->ops[slot].flag = 1; /* must be there */
    return slot;
}

int sr_store_txn_kv_set(sr_store_txn *t, const char *key, size_t klen, const char *val, size_t vlen,
                        int64_t expires_at_ms) {
    return sr_store_txn_set(t, SR_SPACE_KV, key, klen, val, vlen, expires_at_ms);
}

int sr_store_txn_kv_del(sr_store_txn *t, const char *key, size_t klen) {
    return sr_store_txn_del(t, SR_SPACE_KV, key, klen);
}

int sr_store_txn_kv_incr(sr_store_txn *t, const char *key, size_t klen, int64_t delta, int64_t expires_at_ms) {
    int slot;
    store_op *op = store_txn_add_key(t, STORE_OP_KV_INCR, key, klen, &slot);
    op->delta = delta;
    op->expires_at_ms = expires_at_ms;
    return slot;
}

int sr_store_txn_gcra(sr_store_txn *t, const char *key, size_t klen, int64_t interval_us, int64_t tolerance_us) {
    int slot;
    store_op *op = store_txn_add_key(t, STORE_OP_GCRA, key, klen, &slot);
    op->delta = interval_us;
    op->body_hash = (uint64_t)tolerance_us;
    return slot;
}

int sr_store_txn_optout(sr_store_txn *t, const char *number, int opted_out) {
    int slot;
    store_op *op = store_txn_add_key(t, STORE_OP_OPTOUT, number, number ? strlen(number) : 0, &slot);
    op->flag = opted_out != 0;
    return slot;
}

int sr_store_txn_dedup(sr_store_txn *t, const char *key, size_t klen, int64_t expires_at_ms) {
    int slot;
    store_op *op = store_txn_add_key(t, STORE_OP_DEDUP, key, klen, &slot);
    op->expires_at_ms = expires_at_ms;
    return slot;
}

int sr_store_txn_status(const sr_store_txn *t) { return t->status; }

int sr_store_txn_result(const sr_store_txn *t, int slot) {
    if (slot < 0 || slot >= t->count) return SR_E_NOTFOUND;
    return t->ops[slot].result;
}

const char *sr_store_txn_id(const sr_store_txn *t, int slot) {
    if (slot < 0 || slot >= t->count) return NULL;
    return t->ops[slot].id;
}

const sr_message *sr_store_txn_message(const sr_store_txn *t, int slot) {
    if (slot < 0 || slot >= t->count || t->status != 0) return NULL;
    return t->ops[slot].msg;
}

int64_t sr_store_txn_int(const sr_store_txn *t, int slot) {
    if (slot < 0 || slot >= t->count) return 0;
    return t->ops[slot].int_out;
}

/* Does the unit add data (and so fail at once when the map cannot grow)? */
static int store_txn_adds_data(const sr_store_txn *t) {
    for (int i = 0; i < t->count; i++) {
        switch (t->ops[i].kind) {
        case STORE_OP_PUT:
        case STORE_OP_KV_SET:
        case STORE_OP_APPEND:
        case STORE_OP_KV_INCR:
        case STORE_OP_GCRA:
        case STORE_OP_DEDUP: return 1;
        case STORE_OP_OPTOUT:
            if (t->ops[i].flag) return 1;
            break;
        default: break;
        }
    }
    return 0;
}

void store_txn_fail(sr_store_txn *t, int code) {
    t->status = code;
    for (int i = 0; i < t->count; i++) t->ops[i].result = code;
}

/* Back to the state before the writer first tried the unit (a batch may be redone). */
static void store_txn_reset(sr_store_txn *t) {
    t->status = 0;
    for (int i = 0; i < t->count; i++) {
        store_op *op = &t->ops[i];
        op->result = 0;
        op->int_out = 0;
        op->events = 0;
        if (op->kind == STORE_OP_PUT) memcpy(op->id, op->msg->id, sizeof op->id);
        else if (op->kind == STORE_OP_UPDATE || op->kind == STORE_OP_REPLACE)
            op->msg = NULL; /* in the batch's arena, reset with it */
    }
    if (t->hard_error && t->hard_slot > 0) t->status = t->ops[t->hard_slot].result = t->hard_error;
    else if (t->hard_error)
        store_txn_fail(t, t->hard_error);
}

/* ---- index keys (writer) ---- */

static int store_provider_key_present(const sr_buf *b, const char *key, size_t len) {
    size_t off = 0;
    while (off + 2 <= b->len) {
        size_t n = ((size_t)(unsigned char)b->data[off] << 8) | (unsigned char)b->data[off + 1];
        if (n == len && memcmp(b->data + off + 2, key, len) == 0) return 1;
        off += 2 + n;
    }
    return 0;
}

size_t sr_store_normalize_provider_id(const char *in, char *out, size_t outlen) {
    if (outlen == 0) return 0;
    while (*in == ' ' || *in == '\t') in++;
    size_t n = strlen(in);
    while (n && (in[n - 1] == ' ' || in[n - 1] == '\t')) n--;
    size_t start = 0;
    while (start + 1 < n && in[start] == '0') start++;
    size_t len = 0;
    for (size_t i = start; i < n && len + 1 < outlen; i++) {
        char c = in[i];
        out[len++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    out[len] = '\0';
    return len;
}

static void store_add_provider_key(const sr_store *s, store_keys *k, const char *provider, const char *raw_pid) {
    if (!provider || !raw_pid || !raw_pid[0]) return;
    char pid[256];
    if (sr_store_normalize_provider_id(raw_pid, pid, sizeof pid) == 0) return;
    size_t plen = strlen(provider), ilen = strlen(pid), len = plen + 1 + ilen;
    if (len > s->max_key) return; /* LMDB cannot hold the key: this provider id is not indexed */
    char stack[512];
    char *key = len <= sizeof stack ? stack : store_xcalloc(len, 1);
    memcpy(key, provider, plen);
    key[plen] = '\0';
    memcpy(key + plen + 1, pid, ilen);
    if (!store_provider_key_present(&k->providers, key, len)) {
        unsigned char hdr[2] = {(unsigned char)(len >> 8), (unsigned char)len};
        sr_buf_append(&k->providers, hdr, 2);
        sr_buf_append(&k->providers, key, len);
    }
    if (key != stack) free(key);
}

/* Fills k with the index keys of m. k->providers must be initialised. */
static void store_keys_build(const sr_store *s, const sr_message *m, store_keys *k) {
    int priority = m->priority < 0 ? 0 : m->priority > 3 ? 3 : m->priority;
    k->queued = m->status == SR_ST_QUEUED;
    k->queue[0] = (unsigned char)(3 - priority);
    store_put_be64(k->queue + 1, store_key_time(sr_message_due_ms(m)));
    memcpy(k->queue + 9, m->id, SR_ID_LEN);
    k->expiring = (m->status == SR_ST_QUEUED || m->status == SR_ST_SENDING) && m->expires_at_ms != 0;
    store_put_be64(k->expiry, store_key_time(m->expires_at_ms));
    memcpy(k->expiry + 8, m->id, SR_ID_LEN);
    k->watching = m->status == SR_ST_SENT && m->watch_at_ms > 0;
    store_put_be64(k->watch, store_key_time(m->watch_at_ms));
    memcpy(k->watch + 8, m->id, SR_ID_LEN);
    k->status[0] = (unsigned char)m->status;
    memcpy(k->status + 1, m->id, SR_ID_LEN);
    sr_buf_reset(&k->providers);
    for (int i = 0; i < m->attempt_count; i++)
        store_add_provider_key(s, k, m->attempts[i].provider, m->attempts[i].provider_id);
    store_add_provider_key(s, k, m->provider, m->provider_id);
}

/* Deletes key from dbi; a missing key is fine. */
static int store_del_quiet(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t len) {
    MDB_val k = {len, (void *)key};
    int rc = mdb_del(txn, dbi, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int store_put_empty(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t len) {
    MDB_val k = {len, (void *)key}, v = {0, NULL};
    return mdb_put(txn, dbi, &k, &v, 0);
}

/* Moves one index entry: old (present when had) to new (present when has). */
static int store_index_move(MDB_txn *txn, MDB_dbi dbi, int had, const unsigned char *old, int has,
                            const unsigned char *new, size_t len) {
    int same = had && has && memcmp(old, new, len) == 0;
    if (same) return 0;
    int rc = had ? store_del_quiet(txn, dbi, old, len) : 0;
    if (rc == 0 && has) rc = store_put_empty(txn, dbi, new, len);
    return rc;
}

/* Brings every index from old (NULL: the message is new) to new. Returns an LMDB code. */
/* Cluster mode: the owner of something in flight, under kind ('s': a message sending, 'o': an owed
 * handler) and key; owner NULL deletes the entry. */
static int store_owner_set(sr_store *s, MDB_txn *txn, char kind, const char *key, size_t klen, const char *owner) {
    char k[SR_ID_LEN + 64];
    if (klen + 1 > sizeof k) return 0;
    k[0] = kind;
    memcpy(k + 1, key, klen);
    if (!owner) return store_del_quiet(txn, s->dbi[STORE_DB_OWNERS], k, klen + 1);
    MDB_val kv = {klen + 1, k}, v = {strlen(owner), (void *)owner};
    return mdb_put(txn, s->dbi[STORE_DB_OWNERS], &kv, &v, 0);
}

/* The owner kind of a record space whose entries are work in flight (0: none). */
static char store_owner_kind(int db) {
    return db == STORE_DB_OWED ? SR_ORPHAN_OWED : db == STORE_DB_INBOUND ? SR_ORPHAN_INBOUND : 0;
}

/* Cluster mode: a record of a space of work in flight is owned by the node that wrote it last. */
static int store_owner_record(sr_store *s, MDB_txn *txn, int db, const char *key, size_t klen, int set) {
    char kind = store_owner_kind(db);
    if (!s->wowner || !kind) return 0;
    return store_owner_set(s, txn, kind, key, klen, set ? s->wowner : NULL);
}

/* Cluster mode: a message entering `sending` is owned by the node whose unit did it, until it leaves. */
static int store_owner_update(sr_store *s, MDB_txn *txn, const store_keys *old, const store_keys *new, const char *id) {
    int was = old && old->status[0] == SR_ST_SENDING, is = new->status[0] == SR_ST_SENDING;
    if (!s->wowner || was == is) return 0;
    return store_owner_set(s, txn, 's', id, SR_ID_LEN, is ? s->wowner : NULL);
}

static int store_index_update(sr_store *s, MDB_txn *txn, const store_keys *old, const store_keys *new, const char *id) {
    int rc = store_index_move(txn, s->dbi[STORE_DB_QUEUE], old && old->queued, old ? old->queue : NULL, new->queued,
                              new->queue, STORE_QUEUE_KEY_LEN);
    if (rc == 0)
        rc = store_index_move(txn, s->dbi[STORE_DB_EXPIRY], old && old->expiring, old ? old->expiry : NULL,
                              new->expiring, new->expiry, STORE_EXPIRY_KEY_LEN);
    if (rc == 0)
        rc = store_index_move(txn, s->dbi[STORE_DB_STATUS], old != NULL, old ? old->status : NULL, 1, new->status,
                              STORE_STATUS_KEY_LEN);
    if (rc == 0)
        rc = store_index_move(txn, s->dbi[STORE_DB_WATCH], old && old->watching, old ? old->watch : NULL, new->watching,
                              new->watch, STORE_WATCH_KEY_LEN);
    if (rc) return rc;
    MDB_dbi pdbi = s->dbi[STORE_DB_PROVIDER_IDS];
    if (old) {
        size_t off = 0;
        while (rc == 0 && off + 2 <= old->providers.len) {
            const char *key = old->providers.data + off + 2;
            size_t n =
                ((size_t)(unsigned char)old->providers.data[off] << 8) | (unsigned char)old->providers.data[off + 1];
            off += 2 + n;
            if (store_provider_key_present(&new->providers, key, n)) continue;
            /* Only drop the entry when it still points at this message. */
            MDB_val k = {n, (void *)key}, v;
            rc = mdb_get(txn, pdbi, &k, &v);
            if (rc == MDB_NOTFOUND) {
                rc = 0;
            } else if (rc == 0 && v.mv_size == SR_ID_LEN && memcmp(v.mv_data, id, SR_ID_LEN) == 0) {
                rc = store_del_quiet(txn, pdbi, key, n);
            }
        }
    }
    size_t off = 0;
    while (rc == 0 && off + 2 <= new->providers.len) {
        const char *key = new->providers.data + off + 2;
        size_t n = ((size_t)(unsigned char)new->providers.data[off] << 8) | (unsigned char)new->providers.data[off + 1];
        off += 2 + n;
        if (old && store_provider_key_present(&old->providers, key, n)) continue;
        MDB_val k = {n, (void *)key}, v = {SR_ID_LEN, (void *)id};
        rc = mdb_put(txn, pdbi, &k, &v, 0);
    }
    return rc ? rc : store_owner_update(s, txn, old, new, id);
}

/* ---- mutations (writer). Each returns 0, an SR_E_* code (the unit fails
 * with it) or an LMDB / errno code (translated by the caller). ---- */

static int store_check_key(const sr_store *s, const store_op *op) {
    return op->klen == 0 || op->klen > s->max_key ? SR_E_INVALID : 0;
}

/* A status the record cannot name would make it unreadable: refuse such a message. */
/* The clock of the unit being applied: its own time (cluster mode), else the writer's, read once. */
static int64_t store_wnow(sr_store *s) {
    if (!s->wnow) s->wnow = sr_now_ms();
    return s->wnow;
}

int store_message_ok(const sr_message *m) {
    if ((int)m->status < 0 || m->status >= SR_ST_COUNT) return 0;
    for (int i = 0; i < m->history_count; i++)
        if ((int)m->history[i].status < 0 || m->history[i].status >= SR_ST_COUNT) return 0;
    return 1;
}

static int store_op_put(sr_store *s, MDB_txn *txn, store_op *op) {
    sr_message *m = op->msg;
    int64_t now = m->created_at_ms ? m->created_at_ms : store_wnow(s);
    MDB_val k, v;
    int rc;
    if (!sr_id_valid(m->id, strlen(m->id)) || !store_message_ok(m)) return SR_E_INVALID;
    if (op->key) {
        if (store_check_key(s, op)) return SR_E_INVALID;
        k = (MDB_val){op->klen, op->key};
        rc = mdb_get(txn, s->dbi[STORE_DB_IDEMPOTENCY], &k, &v);
        if (rc == 0 && v.mv_size == STORE_IDEM_VALUE_LEN) {
            const unsigned char *p = v.mv_data;
            int64_t created = (int64_t)store_get_be64(p + SR_ID_LEN + 8);
            if (created + STORE_IDEM_TTL_MS > now) {
                memcpy(op->id, p, SR_ID_LEN);
                op->id[SR_ID_LEN] = '\0';
                return store_get_be64(p + SR_ID_LEN) == op->body_hash ? SR_E_EXISTS : SR_E_CONFLICT;
            }
            /* Older than 24 h: the key is free again and is replaced below. */
        } else if (rc != 0 && rc != MDB_NOTFOUND) {
            return rc;
        }
    }
    sr_buf_reset(&s->wbuf);
    sr_message_encode(m, &s->wbuf);
    k = (MDB_val){SR_ID_LEN, m->id};
    v = (MDB_val){s->wbuf.len, s->wbuf.data};
    rc = mdb_put(txn, s->dbi[STORE_DB_MESSAGES], &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) return SR_E_EXISTS;
    if (rc) return rc;
    store_keys_build(s, m, &s->wkeys_after);
    rc = store_index_update(s, txn, NULL, &s->wkeys_after, m->id);
    if (rc == 0 && s->wkeys_after.queued) op->events |= 1u << SR_STORE_EV_QUEUE;
    if (rc || !op->key) return rc;
    unsigned char idem[STORE_IDEM_VALUE_LEN];
    memcpy(idem, m->id, SR_ID_LEN);
    store_put_be64(idem + SR_ID_LEN, op->body_hash);
    store_put_be64(idem + SR_ID_LEN + 8, (uint64_t)now);
    k = (MDB_val){op->klen, op->key};
    v = (MDB_val){sizeof idem, idem};
    return mdb_put(txn, s->dbi[STORE_DB_IDEMPOTENCY], &k, &v, 0);
}

static int store_put_expiring(sr_store *s, MDB_txn *txn, MDB_dbi dbi, const store_op *op, int64_t exp, const void *val,
                              size_t vlen);

/* 1 when after holds a provider key that before does not. */
static int store_providers_grew(const sr_buf *before, const sr_buf *after) {
    size_t off = 0;
    while (off + 2 <= after->len) {
        size_t n = ((size_t)(unsigned char)after->data[off] << 8) | (unsigned char)after->data[off + 1];
        if (!store_provider_key_present(before, after->data + off + 2, n)) return 1;
        off += 2 + n;
    }
    return 0;
}

/* What an update did, for the announcements after the commit. */
static void store_note_events(store_op *op, const sr_message *m, int history_before, const store_keys *before,
                              const store_keys *after) {
    if (m->history_count > history_before) op->events |= 1u << SR_STORE_EV_STATUS;
    if (after->queued) op->events |= 1u << SR_STORE_EV_QUEUE;
    if (after->providers.len != before->providers.len || store_providers_grew(&before->providers, &after->providers))
        op->events |= 1u << SR_STORE_EV_PROVIDER_ID;
}

/* The result of an update: a read-only copy of m in the batch's arena (the loop reads it in the done
 * callback; the writer frees its own allocations itself, which keeps malloc's caches warm). */
static void store_keep_result(sr_store *s, store_op *op, const sr_message *m) {
    op->msg = sr_arena_alloc(&s->warena, sizeof *op->msg);
    sr_message_copy_in(op->msg, m, &s->warena);
}

/* Writes the owed-status entry of an update that set a status in op->owe_mask (history grew). */
static int store_owe_status(sr_store *s, MDB_txn *txn, store_op *op, const sr_message *m, int history_before) {
    if (m->history_count <= history_before || !(op->owe_mask & (1u << m->status))) return 0;
    /* The status handler is owed for this change until its own unit clears the entry. */
    char key[SR_ID_LEN + 24];
    const char *name = sr_status_name(m->status);
    store_op owed = {.key = key, .klen = sr_store_owed_key(op->id, m->history_count, key, sizeof key)};
    int rc = store_put_expiring(s, txn, s->dbi[STORE_DB_OWED], &owed, 0, name, strlen(name));
    if (rc == 0 && s->wowner) rc = store_owner_set(s, txn, 'o', owed.key, owed.klen, s->wowner);
    if (rc == 0) op->int_out = m->history_count;
    return rc;
}

/* Writes the changed message m back under op->id and moves its indexes from `before`. */
static int store_write_back(sr_store *s, MDB_txn *txn, store_op *op, sr_message *m, const store_keys *before) {
    memcpy(m->id, op->id, sizeof m->id); /* the key of the record cannot move */
    if (!store_message_ok(m)) return SR_E_INVALID;
    sr_buf_reset(&s->wbuf);
    sr_message_encode(m, &s->wbuf);
    MDB_val k = {SR_ID_LEN, op->id}, v = {s->wbuf.len, s->wbuf.data};
    int rc = mdb_put(txn, s->dbi[STORE_DB_MESSAGES], &k, &v, 0);
    if (rc) return rc;
    store_keys_build(s, m, &s->wkeys_after);
    return store_index_update(s, txn, before, &s->wkeys_after, op->id);
}

int store_get_record(sr_store *s, MDB_txn *txn, const char *id, MDB_val *v) {
    MDB_val k = {SR_ID_LEN, (void *)id};
    if (!sr_id_valid(id, strlen(id))) return SR_E_NOTFOUND;
    int rc = mdb_get(txn, s->dbi[STORE_DB_MESSAGES], &k, v);
    return rc == MDB_NOTFOUND ? SR_E_NOTFOUND : rc;
}

static int store_op_update(sr_store *s, MDB_txn *txn, store_op *op) {
    MDB_val v;
    sr_message m;
    int rc = store_get_record(s, txn, op->id, &v);
    if (rc) return rc;
    if (sr_message_decode(v.mv_data, v.mv_size, &m) < 0) {
        sr_warn("store: corrupt message record", "id", op->id);
        return SR_E_CORRUPT;
    }
    store_keys_build(s, &m, &s->wkeys_before);
    int history_before = m.history_count;
    rc = op->fn(&m, op->arg);
    if (rc == SR_STORE_UNCHANGED) {
        /* Nothing to write; the unit goes on and the result slot shows the message as it is. */
        rc = 0;
    } else if (rc != 0) {
        rc = store_is_code(rc) ? rc : SR_E_STATE;
    } else {
        rc = store_write_back(s, txn, op, &m, &s->wkeys_before);
        if (rc == 0) store_note_events(op, &m, history_before, &s->wkeys_before, &s->wkeys_after);
        if (rc == 0) rc = store_owe_status(s, txn, op, &m, history_before);
    }
    if (rc == 0) store_keep_result(s, op, &m);
    sr_message_free(&m);
    return rc;
}

/* Cluster mode: writes the record bytes a node resolved an update to (store_cluster.c), when the
 * stored record is still the one it was resolved from. The bytes go in as they are, so the next
 * update resolved from them expects exactly what is stored. */
static int store_op_replace(sr_store *s, MDB_txn *txn, store_op *op) {
    MDB_val k = {SR_ID_LEN, op->id}, v;
    sr_message m;
    int rc = store_get_record(s, txn, op->id, &v);
    if (rc) return rc;
    if (store_bytes_hash(v.mv_data, v.mv_size) != op->body_hash) return STORE_E_RETRY;
    if (sr_message_decode(v.mv_data, v.mv_size, &m) < 0) return SR_E_CORRUPT;
    store_keys_build(s, &m, &s->wkeys_before);
    int history_before = m.history_count;
    sr_message_free(&m);
    if (sr_message_decode(op->val, op->vlen, &m) < 0) return SR_E_INVALID;
    memcpy(m.id, op->id, sizeof m.id);
    if (!store_message_ok(&m)) rc = SR_E_INVALID;
    MDB_val nv = {op->vlen, op->val};
    if (rc == 0) rc = mdb_put(txn, s->dbi[STORE_DB_MESSAGES], &k, &nv, 0);
    if (rc == 0) {
        store_keys_build(s, &m, &s->wkeys_after);
        rc = store_index_update(s, txn, &s->wkeys_before, &s->wkeys_after, op->id);
    }
    if (rc == 0) store_note_events(op, &m, history_before, &s->wkeys_before, &s->wkeys_after);
    if (rc == 0) rc = store_owe_status(s, txn, op, &m, history_before);
    if (rc == 0) store_keep_result(s, op, &m);
    sr_message_free(&m);
    return rc;
}

/* An expiring value: 8 bytes of expiry (big endian ms, 0: none) then the bytes. */
static int store_alive(const MDB_val *v, int64_t now) {
    if (v->mv_size < 8) return 0;
    int64_t exp = (int64_t)store_get_be64(v->mv_data);
    return exp == 0 || exp > now;
}

static int store_put_expiring(sr_store *s, MDB_txn *txn, MDB_dbi dbi, const store_op *op, int64_t exp, const void *val,
                              size_t vlen) {
    sr_buf_reset(&s->wbuf);
    sr_buf_reserve(&s->wbuf, 8 + vlen);
    store_put_be64((unsigned char *)s->wbuf.data, (uint64_t)exp);
    s->wbuf.len = 8;
    sr_buf_append(&s->wbuf, val, vlen);
    MDB_val k = {op->klen, op->key}, v = {s->wbuf.len, s->wbuf.data};
    return mdb_put(txn, dbi, &k, &v, 0);
}

/* Parses a decimal int64 value of a kv entry; -1 when it is not one. */
static int store_parse_int(const char *p, size_t len, int64_t *out) {
    size_t i = 0;
    int negative = 0;
    uint64_t v = 0;
    if (len > 0 && (p[0] == '-' || p[0] == '+')) negative = p[i++] == '-';
    if (i == len || len - i > 19) return -1;
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX + (uint64_t)negative) return -1;
    *out = negative ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int store_op_kv_incr(sr_store *s, MDB_txn *txn, store_op *op) {
    MDB_val k = {op->klen, op->key}, v;
    int64_t now = store_wnow(s), current = 0, exp = op->expires_at_ms;
    int rc = mdb_get(txn, s->dbi[STORE_DB_KV], &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND) return rc;
    if (rc == 0 && store_alive(&v, now)) {
        exp = (int64_t)store_get_be64(v.mv_data);
        if (store_parse_int((const char *)v.mv_data + 8, v.mv_size - 8, &current) < 0) return SR_E_INVALID;
    }
    int64_t next;
    if (__builtin_add_overflow(current, op->delta, &next)) return SR_E_INVALID;
    char text[24];
    size_t n = store_fmt_i64(text, next);
    op->int_out = next;
    return store_put_expiring(s, txn, s->dbi[STORE_DB_KV], op, exp, text, n);
}

static int store_op_gcra(sr_store *s, MDB_txn *txn, store_op *op) {
    MDB_val k = {op->klen, op->key}, v;
    int64_t now_ms = store_wnow(s), now_us = now_ms * 1000, tat = 0, wait_us = 0;
    int rc = mdb_get(txn, s->dbi[STORE_DB_KV], &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND) return rc;
    if (rc == 0 && store_alive(&v, now_ms) && store_parse_int((const char *)v.mv_data + 8, v.mv_size - 8, &tat) < 0)
        tat = 0; /* not a TAT: as if never limited */
    sr_gcra g = {op->delta, (int64_t)op->body_hash};
    if (!sr_gcra_take(&g, &tat, now_us, &wait_us)) {
        op->int_out = wait_us > 0 ? wait_us : 1;
        return 0;
    }
    op->int_out = 0;
    int64_t keep_us = tat - now_us > g.interval_us + g.tolerance_us ? tat - now_us : g.interval_us + g.tolerance_us;
    char text[24];
    size_t n = store_fmt_i64(text, tat);
    return store_put_expiring(s, txn, s->dbi[STORE_DB_KV], op, now_ms + keep_us / 1000 + 1000, text, n);
}

/* Appends op's bytes to an entry (a live one keeps its expiry; a missing or expired one starts anew). */
static int store_op_append(sr_store *s, MDB_txn *txn, store_op *op) {
    MDB_val k = {op->klen, op->key}, v;
    MDB_dbi dbi = s->dbi[op->db];
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND) return rc;
    if (rc == MDB_NOTFOUND || !store_alive(&v, store_wnow(s)))
        return store_put_expiring(s, txn, dbi, op, op->expires_at_ms, op->val, op->vlen);
    /* The entry lives as long as the longer of the two (0: for ever). */
    int64_t exp = (int64_t)store_get_be64(v.mv_data);
    if (exp != 0 && (op->expires_at_ms == 0 || op->expires_at_ms > exp)) exp = op->expires_at_ms;
    sr_buf_reset(&s->wbuf);
    sr_buf_reserve(&s->wbuf, v.mv_size + op->vlen);
    store_put_be64((unsigned char *)s->wbuf.data, (uint64_t)exp);
    s->wbuf.len = 8;
    sr_buf_append(&s->wbuf, (const char *)v.mv_data + 8, v.mv_size - 8);
    sr_buf_append(&s->wbuf, op->val, op->vlen);
    MDB_val nv = {s->wbuf.len, s->wbuf.data};
    return mdb_put(txn, dbi, &k, &nv, 0);
}

static int store_op_consume(sr_store *s, MDB_txn *txn, store_op *op) {
    MDB_val k = {op->klen, op->key}, v;
    MDB_dbi dbi = s->dbi[op->db];
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return rc;
    const char *bytes = (const char *)v.mv_data + 8;
    size_t len = v.mv_size >= 8 ? v.mv_size - 8 : 0;
    if (v.mv_size < 8 || len < op->vlen || memcmp(bytes, op->val, op->vlen) != 0) return 0; /* consumed already */
    if (len == op->vlen) return store_del_quiet(txn, dbi, op->key, op->klen);
    /* What was appended since the read stays, with the entry's expiry. */
    sr_buf_reset(&s->wbuf);
    sr_buf_append(&s->wbuf, v.mv_data, 8);
    sr_buf_append(&s->wbuf, bytes + op->vlen, len - op->vlen);
    MDB_val nv = {s->wbuf.len, s->wbuf.data};
    return mdb_put(txn, dbi, &k, &nv, 0);
}

static int store_op_dedup(sr_store *s, MDB_txn *txn, store_op *op) {
    MDB_val k = {op->klen, op->key}, v;
    int rc = mdb_get(txn, s->dbi[STORE_DB_DEDUP], &k, &v);
    if (rc == 0 && store_alive(&v, store_wnow(s))) return SR_E_EXISTS;
    if (rc != 0 && rc != MDB_NOTFOUND) return rc;
    return store_put_expiring(s, txn, s->dbi[STORE_DB_DEDUP], op, op->expires_at_ms, NULL, 0);
}

/* Is the entry of a sweepable database expired at now (or unreadable)? */
static int store_sweepable(int db, const MDB_val *v, int64_t now) {
    if (db == STORE_DB_IDEMPOTENCY) {
        if (v->mv_size != STORE_IDEM_VALUE_LEN) return 1;
        int64_t created = (int64_t)store_get_be64((const unsigned char *)v->mv_data + SR_ID_LEN + 8);
        return created + STORE_IDEM_TTL_MS <= now;
    }
    return !store_alive(v, now);
}

static int store_op_sweep(sr_store *s, MDB_txn *txn, store_op *op) {
    MDB_val k = {op->klen, op->key}, v;
    int rc = mdb_get(txn, s->dbi[op->flag], &k, &v);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return rc;
    if (!store_sweepable(op->flag, &v, op->expires_at_ms)) return 0; /* written again since the scan */
    rc = store_del_quiet(txn, s->dbi[op->flag], op->key, op->klen);
    return rc ? rc : store_owner_record(s, txn, op->flag, op->key, op->klen, 0);
}

/* Cluster mode: the owner entry op->key goes to the node applying, when it is still the one the
 * claimant saw gone (its bytes hash to body_hash; 0: there was none). */
static int store_op_claim(sr_store *s, MDB_txn *txn, store_op *op) {
    MDB_val k = {op->klen, op->key}, v;
    int rc = mdb_get(txn, s->dbi[STORE_DB_OWNERS], &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND) return rc;
    uint64_t seen = rc == 0 ? store_bytes_hash(v.mv_data, v.mv_size) : 0;
    if (seen != op->body_hash) return STORE_E_RETRY;
    if (!s->wowner) return 0;
    MDB_val nv = {strlen(s->wowner), (void *)s->wowner};
    return mdb_put(txn, s->dbi[STORE_DB_OWNERS], &k, &nv, 0);
}

static int store_apply_op(sr_store *s, MDB_txn *txn, store_op *op) {
    if (op->kind != STORE_OP_PUT && op->kind != STORE_OP_UPDATE && op->kind != STORE_OP_REPLACE &&
        op->kind != STORE_OP_NOP && store_check_key(s, op))
        return SR_E_INVALID;
    switch (op->kind) {
    case STORE_OP_REPLACE: return store_op_replace(s, txn, op);
    case STORE_OP_NOP: return 0;
    case STORE_OP_PUT: return store_op_put(s, txn, op);
    case STORE_OP_UPDATE: return store_op_update(s, txn, op);
    case STORE_OP_KV_SET: {
        int rc = store_put_expiring(s, txn, s->dbi[op->db], op, op->expires_at_ms, op->val, op->vlen);
        return rc ? rc : store_owner_record(s, txn, op->db, op->key, op->klen, 1);
    }
    case STORE_OP_TAKE_OVER: return 0; /* single node: nobody else could have it */
    case STORE_OP_CLAIM: return store_op_claim(s, txn, op);
    case STORE_OP_GCRA: return store_op_gcra(s, txn, op);
    case STORE_OP_APPEND: return store_op_append(s, txn, op);
    case STORE_OP_CONSUME: return store_op_consume(s, txn, op);
    case STORE_OP_KV_DEL: {
        MDB_val k = {op->klen, op->key}, v;
        if (op->flag && mdb_get(txn, s->dbi[op->db], &k, &v) == MDB_NOTFOUND) return SR_E_NOTFOUND; /* taken */
        int rc = store_del_quiet(txn, s->dbi[op->db], op->key, op->klen);
        return rc ? rc : store_owner_record(s, txn, op->db, op->key, op->klen, 0);
    }
    case STORE_OP_KV_INCR: return store_op_kv_incr(s, txn, op);
    case STORE_OP_OPTOUT: {
        if (!op->flag) return store_del_quiet(txn, s->dbi[STORE_DB_OPTOUTS], op->key, op->klen);
        unsigned char when[8];
        store_put_be64(when, (uint64_t)store_wnow(s));
        MDB_val k = {op->klen, op->key}, v = {sizeof when, when};
        return mdb_put(txn, s->dbi[STORE_DB_OPTOUTS], &k, &v, 0);
    }
    case STORE_OP_DEDUP: return store_op_dedup(s, txn, op);
    case STORE_OP_SWEEP: return store_op_sweep(s, txn, op);
    }
    return SR_E_INVALID;
}

/* ---- the writer ---- */

/* ENOSPC, EDQUOT: from a write or a sync of a commit (or of a spill during one). */
static int store_is_disk_full(int rc) { return rc == ENOSPC || rc == EDQUOT; }

/* What applying a unit means for its batch. */
enum { STORE_UNIT_DONE = 0, STORE_UNIT_MAP_FULL, STORE_UNIT_REDO };

/* A unit applied in parent directly. A mutation fails with an SR_E_* code only before its first
 * write (every store_op_* checks first): when the first one fails nothing is left to undo. When a
 * later one fails, or LMDB fails (which may leave partial writes), the batch is redone with the
 * unit failed from the start (hard_error, hard_slot: the mutation that failed). */
static int store_apply_direct(sr_store *s, MDB_txn *parent, sr_store_txn *t, int full_mode) {
    for (int i = 0; i < t->count; i++) {
        int rc = store_apply_op(s, parent, &t->ops[i]);
        if (rc == 0) continue;
        if (store_is_code(rc) && i == 0) {
            t->status = t->ops[0].result = rc;
            return STORE_UNIT_DONE;
        }
        if (store_is_code(rc)) {
            t->hard_error = rc;
            t->hard_slot = i;
            return STORE_UNIT_REDO;
        }
        if (rc == MDB_MAP_FULL && !full_mode) return STORE_UNIT_MAP_FULL;
        t->hard_error = rc == MDB_MAP_FULL || store_is_disk_full(rc) ? SR_E_FULL : store_error(rc, "write");
        return STORE_UNIT_REDO;
    }
    return STORE_UNIT_DONE;
}

/* A unit of several mutations in a transaction nested in parent, which undoes it alone. */
static int store_apply_nested(sr_store *s, MDB_txn *parent, sr_store_txn *t, int full_mode) {
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(s->env, parent, 0, &txn);
    if (rc) goto fail;
    for (int i = 0; i < t->count; i++) {
        rc = store_apply_op(s, txn, &t->ops[i]);
        if (rc) {
            mdb_txn_abort(txn);
            if (rc == MDB_MAP_FULL) goto fail;
            t->status = t->ops[i].result = store_error(rc, "write");
            return STORE_UNIT_DONE;
        }
    }
    rc = mdb_txn_commit(txn); /* into the parent: no disk write yet */
    if (rc) goto fail;
    return STORE_UNIT_DONE;
fail:
    if (rc == MDB_MAP_FULL && !full_mode) return STORE_UNIT_MAP_FULL;
    store_txn_fail(t, rc == MDB_MAP_FULL ? SR_E_FULL : store_error(rc, "unit"));
    return STORE_UNIT_DONE;
}

/* Applies one unit, all of it or none, and sets t->status. Returns
 * STORE_UNIT_MAP_FULL when the batch must be redone on a bigger map (only
 * when !full_mode), STORE_UNIT_REDO when the batch must be redone without
 * this unit (it left partial writes in parent), else STORE_UNIT_DONE.
 *
 * Units run in parent directly (store_apply_direct): LMDB's nested
 * transaction (a 2 MB dirty list, and merging it into the parent) per unit
 * costs more than the rare redo. Once a batch was redone (careful), units of
 * several mutations run nested, so one batch is redone at most once for them. */
static int store_apply_unit(sr_store *s, MDB_txn *parent, sr_store_txn *t, int full_mode, int refuse_adds,
                            int careful) {
    if (t->hard_error || t->count == 0) return STORE_UNIT_DONE;
    s->wnow = t->now_ms; /* 0: the clock, read when an op needs it */
    s->wowner = t->owner;
    if ((full_mode || refuse_adds) && store_txn_adds_data(t)) {
        store_txn_fail(t, SR_E_FULL);
        return STORE_UNIT_DONE;
    }
    if (t->count > 1 && careful) return store_apply_nested(s, parent, t, full_mode);
    return store_apply_direct(s, parent, t, full_mode);
}

/* Bytes that can still be written: the smaller of the file system's free space (as an unprivileged
 * user sees it) and the map's room up to map_size_max. Pages on LMDB's free list are not counted:
 * they are reused first, so this errs on the small side. The writer calls it as it is; the loop
 * under map_lock (the meta pages move when the map grows). */
static uint64_t store_room(sr_store *s) {
    MDB_envinfo info;
    uint64_t room = UINT64_MAX;
    if (mdb_env_info(s->env, &info) == 0) {
        uint64_t used = ((uint64_t)info.me_last_pgno + 1) * s->page_size;
        room = s->map_size_max > used ? s->map_size_max - used : 0;
    }
    struct statvfs vfs;
    if (fstatvfs(s->lock_fd, &vfs) == 0) {
        uint64_t free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        if (free_bytes < room) room = free_bytes;
    }
    return room;
}

/* Doubles the map (up to map_size_max). 0 when it grew. */
static int store_grow(sr_store *s) {
    char num[32];
    size_t next = s->map_size > s->map_size_max / 2 ? s->map_size_max : s->map_size * 2;
    if (next <= s->map_size) return -1;
    pthread_rwlock_wrlock(&s->map_lock);
    int rc = mdb_env_set_mapsize(s->env, next);
    pthread_rwlock_unlock(&s->map_lock);
    if (rc) {
        store_error(rc, "grow map");
        return -1;
    }
    s->map_size = next;
    pthread_mutex_lock(&s->mu);
    s->grows++;
    pthread_mutex_unlock(&s->mu);
    sr_info("store map grown", "bytes", store_num(num, (int64_t)next));
    return 0;
}

/* Units of the batch refused for lack of space, and whether a unit that adds data went in. */
static void store_count_space(const sr_store_txn *head, uint64_t *refused, int *added) {
    *refused = 0;
    *added = 0;
    for (const sr_store_txn *t = head; t; t = t->next) {
        if (t->status == SR_E_FULL) (*refused)++;
        else if (t->status == 0 && store_txn_adds_data(t))
            *added = 1;
    }
}

/* The disk-full state after a batch: one log line when it starts and one when it ends, however
 * many batches are refused in between. */
static void store_note_space(sr_store *s, const sr_store_txn *head, uint64_t room, int low) {
    char num[32], size[32], res[32];
    uint64_t refused;
    int added;
    store_count_space(head, &refused, &added);
    if (refused) {
        atomic_fetch_add(&s->refused_units, refused);
        atomic_store(&s->room_at_refusal, room);
        if (!atomic_exchange(&s->refused, 1))
            sr_warn("store full: refusing new data until space returns; updates of accepted messages go on",
                    "room_bytes", store_num(size, room == UINT64_MAX ? -1 : (int64_t)room), "reserve_bytes",
                    store_num(res, (int64_t)s->reserve), "units_refused", store_num(num, (int64_t)refused));
    } else if (added || (!low && atomic_load(&s->refused) && room != UINT64_MAX &&
                         room > atomic_load(&s->room_at_refusal) + ((uint64_t)1 << 20))) {
        if (atomic_exchange(&s->refused, 0))
            sr_info("store has room again: accepting new data", "room_bytes",
                    store_num(size, room == UINT64_MAX ? -1 : (int64_t)room));
    }
}

static void store_fail_batch(sr_store_txn *head, int code) {
    for (sr_store_txn *t = head; t; t = t->next) store_txn_fail(t, code);
}

/* Begins the batch's write transaction, adopting a map another process grew. */
static int store_begin_write(sr_store *s, MDB_txn **txn) {
    int rc = mdb_txn_begin(s->env, NULL, 0, txn);
    if (rc == MDB_MAP_RESIZED) { /* another process grew it: adopt its size */
        pthread_rwlock_wrlock(&s->map_lock);
        mdb_env_set_mapsize(s->env, 0);
        pthread_rwlock_unlock(&s->map_lock);
        rc = mdb_txn_begin(s->env, NULL, 0, txn);
    }
    return rc;
}

/* A number in the meta database (cluster mode: the stream sequence the replica reached), as 8 bytes
 * big endian. */
static int store_put_meta_u64(sr_store *s, MDB_txn *txn, const char *key, uint64_t v) {
    unsigned char b[8];
    store_put_be64(b, v);
    MDB_val k = {strlen(key), (void *)key}, val = {sizeof b, b};
    return mdb_put(txn, s->dbi[STORE_DB_META], &k, &val, 0);
}

/* What one try at a batch leads to. */
enum { STORE_BATCH_COMMITTED, STORE_BATCH_FAILED, STORE_BATCH_REDO, STORE_BATCH_REDO_FULL, STORE_BATCH_GROW };

/* One try at applying and committing the batch (every unit reset first). */
static int store_try_batch(sr_store *s, sr_store_txn *head, int full_mode, int low, int careful) {
    MDB_txn *txn = NULL;
    int outcome = STORE_UNIT_DONE;
    for (sr_store_txn *t = head; t; t = t->next) store_txn_reset(t);
    sr_arena_reset(&s->warena);
    int rc = store_begin_write(s, &txn);
    if (rc) {
        store_fail_batch(head, store_error(rc, "begin"));
        return STORE_BATCH_FAILED;
    }
    for (sr_store_txn *t = head; t && outcome == STORE_UNIT_DONE; t = t->next)
        outcome = store_apply_unit(s, txn, t, full_mode, low, careful);
    if (outcome == STORE_UNIT_DONE && s->wmeta_seq)
        rc = store_put_meta_u64(s, txn, STORE_META_CLUSTER_SEQ, s->wmeta_seq);
    if (rc == MDB_MAP_FULL) outcome = STORE_UNIT_MAP_FULL;
    if (outcome != STORE_UNIT_DONE) {
        mdb_txn_abort(txn);
        return outcome == STORE_UNIT_REDO ? STORE_BATCH_REDO : STORE_BATCH_GROW;
    }
    if (rc) {
        mdb_txn_abort(txn);
        store_fail_batch(head, store_error(rc, "meta"));
        return STORE_BATCH_FAILED;
    }
    rc = mdb_txn_commit(txn); /* frees txn whatever happens */
    if (rc == 0) return STORE_BATCH_COMMITTED;
    if (store_is_disk_full(rc)) {
        if (!full_mode) return STORE_BATCH_REDO_FULL; /* the map needs no growing: the disk does */
        store_fail_batch(head, SR_E_FULL);
        return STORE_BATCH_FAILED;
    }
    if (rc == MDB_MAP_FULL) return STORE_BATCH_GROW;
    store_fail_batch(head, store_error(rc, "commit"));
    return STORE_BATCH_FAILED;
}

/* Applies a batch in one write transaction with a full sync. On MDB_MAP_FULL
 * the map grows and the batch is redone; when it cannot grow, or the disk is
 * full (ENOSPC / EDQUOT from the commit), it is redone in full mode (units
 * that add data fail with SR_E_FULL, the rest apply). Below the reserve, units
 * that add data are refused from the start (the map still grows for the
 * rest). A unit that broke the transaction is failed and the batch redone
 * without it. The results of updates go with the batch's last unit. */
int store_commit_batch(sr_store *s, sr_store_txn *head) {
    struct timespec t0;
    int full_mode = 0, careful = 0, outcome;
    uint64_t count = 0;
    uint64_t room = s->reserve || atomic_load(&s->refused) ? store_room(s) : UINT64_MAX;
    int low = s->reserve && room < s->reserve;
    sr_store_txn *tail = head;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (sr_store_txn *t = head; t; t = t->next, count++) tail = t;
    for (;;) {
        outcome = store_try_batch(s, head, full_mode, low, careful);
        if (outcome == STORE_BATCH_COMMITTED || outcome == STORE_BATCH_FAILED) break;
        if (outcome == STORE_BATCH_REDO) {
            careful = 1;
            continue;
        }
        if (outcome == STORE_BATCH_GROW && !full_mode && store_grow(s) == 0) continue;
        /* A replica applies all of a batch or none of it: what the others applied (cluster mode). */
        if (full_mode || s->cluster) {
            store_fail_batch(head, SR_E_FULL);
            break;
        }
        full_mode = 1;
    }
    tail->arena = s->warena; /* the loop frees it with the last unit, after every callback of the batch */
    sr_arena_init(&s->warena, 0);
    if (full_mode || low || atomic_load(&s->refused)) {
        if (full_mode) room = store_room(s);
        store_note_space(s, head, room, low);
    }
    pthread_mutex_lock(&s->mu);
    if (outcome == STORE_BATCH_COMMITTED) {
        s->commits++;
        s->units += count;
    }
    s->last_commit_ms = store_elapsed_ms(&t0);
    pthread_mutex_unlock(&s->mu);
    return outcome == STORE_BATCH_COMMITTED;
}

void store_list_append(store_list *dst, store_list *src) {
    if (!src->head) return;
    if (dst->tail) dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    dst->n += src->n;
    src->head = src->tail = NULL;
    src->n = 0;
}

static int64_t store_ns_between(const struct timespec *a, const struct timespec *b) {
    return (int64_t)(b->tv_sec - a->tv_sec) * 1000000000 + (b->tv_nsec - a->tv_nsec);
}

/* Group commit under load (mu held, work queued). Each commit costs a sync and the pages it
 * dirties, much the same for 10 units as for 100; so when the last batch was big and was committed
 * just now (the loop keeps submitting), a batch still smaller than it waits for more, at most as
 * long as the last batch took, so latency under load at most doubles. A unit that comes after a
 * quiet spell, or while the load is light, is written at once. */
static void store_linger(sr_store *s) {
    struct timespec now, deadline;
    if (s->last_batch < STORE_LINGER_MIN_BATCH || s->queued.n >= s->last_batch || s->stop) return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (store_ns_between(&s->last_done, &now) > STORE_LINGER_IDLE_NS) return;
    int64_t wait = s->last_cycle_ns < STORE_LINGER_MAX_NS ? s->last_cycle_ns : STORE_LINGER_MAX_NS;
    int64_t ns = now.tv_nsec + wait;
    deadline.tv_sec = now.tv_sec + (time_t)(ns / 1000000000);
    deadline.tv_nsec = (long)(ns % 1000000000);
    while (s->queued.n < s->last_batch && !s->stop)
        if (pthread_cond_timedwait(&s->work_cond, &s->mu, &deadline) == ETIMEDOUT) break;
}

static void *store_writer_main(void *arg) {
    sr_store *s = arg;
    struct timespec t0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->queued.head && !s->stop) pthread_cond_wait(&s->work_cond, &s->mu);
        if (!s->queued.head) break; /* stopping, and nothing left */
        store_linger(s);
        store_list batch = s->queued;
        s->queued.head = s->queued.tail = NULL;
        s->queued.n = 0;
        s->writer_busy = 1;
        pthread_mutex_unlock(&s->mu);

        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (s->cluster) store_cluster_commit(s, batch.head);
        else
            store_commit_batch(s, batch.head);
        clock_gettime(CLOCK_MONOTONIC, &s->last_done);
        s->last_cycle_ns = store_ns_between(&t0, &s->last_done);
        s->last_batch = batch.n;

        pthread_mutex_lock(&s->mu);
        store_list_append(&s->done, &batch);
        s->writer_busy = 0;
        pthread_cond_broadcast(&s->idle_cond);
        uv_async_send(&s->handles->async);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- the loop side ---- */

/* Hands what this loop pass submitted to the writer. */
static void store_flush(sr_store *s) {
    if (!s->pending.head) return;
    pthread_mutex_lock(&s->mu);
    store_list_append(&s->queued, &s->pending);
    pthread_cond_signal(&s->work_cond);
    pthread_mutex_unlock(&s->mu);
}

/* ---- announcements (loop thread) ---- */

void sr_store_subscribe(sr_store *s, sr_store_subscriber *sub) {
    sub->next = s->subscribers;
    s->subscribers = sub;
}

void sr_store_unsubscribe(sr_store *s, sr_store_subscriber *sub) {
    for (sr_store_subscriber **p = &s->subscribers; *p; p = &(*p)->next) {
        if (*p == sub) {
            *p = sub->next;
            sub->next = NULL;
            return;
        }
    }
}

/* The statuses whose owed record a unit writes: those of the durable status subscribers, now. */
static void store_txn_owe(sr_store_txn *t) {
    unsigned mask = 0;
    for (const sr_store_subscriber *sub = t->store->subscribers; sub; sub = sub->next)
        if (sub->kind == SR_STORE_EV_STATUS && sub->durable) mask |= sub->status_mask;
    for (int i = 0; i < t->count; i++) t->ops[i].owe_mask = mask;
}

/* Hands one event to every subscriber of its kind. The next one is taken before the call, so a
 * listener may unsubscribe itself. Subscribers of a status get it when the status is in
 * their mask, and a durable one whenever a record was written for it (its mask changed meanwhile:
 * the record must still be cleared). */
static void store_announce_one(sr_store *s, const sr_store_event *ev) {
    for (sr_store_subscriber *sub = s->subscribers, *next; sub; sub = next) {
        next = sub->next;
        if (sub->kind != ev->kind) continue;
        if (ev->kind == SR_STORE_EV_STATUS && !(sub->status_mask & (1u << ev->msg->status)) &&
            !(sub->durable && ev->owed > 0))
            continue;
        sub->fn(ev, sub->ud);
    }
}

/* What a committed unit did, to the subscribers: status changes and provider ids per message, the
 * queue once per unit. */
static void store_announce(sr_store *s, const sr_store_txn *t) {
    const sr_message *queued = NULL;
    for (int i = 0; i < t->count; i++) {
        const store_op *op = &t->ops[i];
        if (!op->events || !op->msg) continue;
        if ((op->events & (1u << SR_STORE_EV_QUEUE)) && !queued) queued = op->msg;
        if (op->events & (1u << SR_STORE_EV_PROVIDER_ID)) {
            sr_store_event ev = {SR_STORE_EV_PROVIDER_ID, op->msg, 0, t->remote};
            store_announce_one(s, &ev);
        }
        if (op->events & (1u << SR_STORE_EV_STATUS)) {
            sr_store_event ev = {SR_STORE_EV_STATUS, op->msg, op->int_out, t->remote};
            store_announce_one(s, &ev);
        }
    }
    if (queued) {
        sr_store_event ev = {SR_STORE_EV_QUEUE, queued, 0, t->remote};
        store_announce_one(s, &ev);
    }
}

/* Runs the callbacks of committed units in order, then what they did goes to the subscribers, and
 * frees them. */
static void store_run_done(sr_store *s, sr_store_txn *t) {
    while (t) {
        sr_store_txn *next = t->next;
        if (t->cb) t->cb(t, t->ud);
        if (t->status == 0 && s->subscribers) store_announce(s, t);
        int remote = t->remote;
        store_txn_free(t);
        if (!remote && --s->inflight == 0) uv_unref((uv_handle_t *)&s->handles->async);
        t = next;
    }
}

static void store_on_prepare(uv_prepare_t *h) { store_flush(h->data); }
static void store_on_check(uv_check_t *h) { store_flush(h->data); }

static void store_on_async(uv_async_t *h) {
    sr_store *s = h->data;
    pthread_mutex_lock(&s->mu);
    store_list done = s->done;
    s->done.head = s->done.tail = NULL;
    s->done.n = 0;
    pthread_mutex_unlock(&s->mu);
    store_run_done(s, done.head);
}

void sr_store_txn_submit(sr_store_txn *t, sr_store_done_cb cb, void *ud) {
    sr_store *s = t->store;
    if (s->read_only) {
        /* A programming error: a reader has no writer. The unit is dropped, its callback never runs. */
        sr_error("store: unit submitted to a read-only store; dropped");
        sr_store_txn_discard(t);
        return;
    }
    t->cb = cb;
    t->ud = ud;
    t->next = NULL;
    store_txn_owe(t);
    store_list one = {t, t, 1};
    store_list_append(&s->pending, &one);
    if (s->inflight++ == 0) uv_ref((uv_handle_t *)&s->handles->async);
}

static void store_on_handle_closed(uv_handle_t *h) {
    store_handles *hs = h->data;
    if (--hs->open == 0) free(hs);
}

static void store_close_handles(store_handles *hs) {
    if (!hs) return;
    hs->prepare.data = hs->check.data = hs->async.data = hs;
    hs->open = 3;
    uv_close((uv_handle_t *)&hs->prepare, store_on_handle_closed);
    uv_close((uv_handle_t *)&hs->check, store_on_handle_closed);
    uv_close((uv_handle_t *)&hs->async, store_on_handle_closed);
}

/* ---- open and close ---- */

/* mkdir -p */
static int store_mkdirs(const char *dir) {
    char path[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path) return ENAMETOOLONG;
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0750) < 0 && errno != EEXIST) return errno;
        path[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) < 0) return errno;
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

/* ---- the data directory lock ---- */

#define STORE_LOCK_FILE "smsrules.lock"

/* Takes an exclusive flock on DIR/smsrules.lock and writes our pid into it. Two daemons on one
 * directory would each take the other's messages in flight for crash leftovers and send them again;
 * the second one must not start. The lock belongs to the open file, so it goes with the process
 * (never stale after a crash). Returns the descriptor, or -1 with *code and err set. */
static int store_lock_dir(const char *dir, char *err, size_t errlen, int *code) {
    char path[4096];
    *code = SR_E_IO;
    if (snprintf(path, sizeof path, "%s/%s", dir, STORE_LOCK_FILE) >= (int)sizeof path) {
        snprintf(err, errlen, "data directory path too long: %s", dir);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the lock file %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            char buf[32] = "";
            ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
            long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
            char holder[48] = "pid unknown";
            if (pid > 0) snprintf(holder, sizeof holder, "pid %ld", pid);
            snprintf(err, errlen,
                     "data directory %s is in use by another smsrules process (%s); stop that one first, or give "
                     "this one another --data",
                     dir, holder);
            *code = SR_E_LOCKED;
        } else {
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
        }
        close(fd);
        return -1;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    /* Without the pid (a full disk) the lock still holds; only the second daemon's message lacks it. */
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) sr_warn("cannot write the pid to the lock file");
    return fd;
}

/* ---- the start-up check of data.mdb ----
 *
 * LMDB trusts its file: a data.mdb cut short is mapped past its end (SIGBUS on
 * the first read there), and garbage in a page can send it through wild
 * pointers or into an assertion (SIGSEGV, SIGABRT). So before mdb_env_open
 * both meta pages are read with pread and checked against LMDB 0.9's on-disk
 * layout (64-bit), and the file must hold every page up to the newest meta's
 * last page; after it, every database is walked under a signal guard. */

#if SIZE_MAX != UINT64_MAX
#error "the store check reads LMDB's 64-bit on-disk layout"
#endif

#define STORE_MDB_MAGIC 0xBEEFC0DEu
#define STORE_MDB_DATA_VERSION 1
#define STORE_P_META 0x08
#define STORE_P_INVALID UINT64_MAX
/* The flags of an MDB_db that choose how its keys and values are kept (the free DB's field also holds
 * the environment's flags FIXEDMAP and NOSUBDIR, which do not). */
#define STORE_MDB_DB_FLAGS                                                                                             \
    (MDB_REVERSEKEY | MDB_DUPSORT | MDB_INTEGERKEY | MDB_DUPFIXED | MDB_INTEGERDUP | MDB_REVERSEDUP)
/* Offsets in a meta page: the page header (pgno 8, pad 2, flags 2, lower/upper 4), then MDB_meta
 * (magic 4, version 4, address 8, mapsize 8, two MDB_db of 48 bytes, last_pg 8, txnid 8). An MDB_db:
 * pad 4 (the page size, in the free DB's), flags 2, depth 2, branch, leaf, overflow pages, entries,
 * root (8 each). */
#define STORE_META_LEN 152
#define STORE_OFF_FLAGS 10
#define STORE_OFF_MAGIC 16
#define STORE_OFF_VERSION 20
#define STORE_OFF_MAPSIZE 32
#define STORE_OFF_DB(i) (40 + 48 * (i))
#define STORE_OFF_LAST_PG 136
#define STORE_OFF_TXNID 144

typedef struct store_meta {
    uint64_t pgno;
    uint16_t flags;
    uint32_t magic, version, psize;
    uint64_t mapsize, last_pg, txnid;
    uint64_t root[2];
    uint16_t depth[2];
    uint16_t db_flags[2]; /* the free DB's, the main DB's */
} store_meta;

static void store_meta_parse(const unsigned char *p, store_meta *m) {
    m->pgno = sr_store_rd64(p);
    m->flags = sr_store_rd16(p + STORE_OFF_FLAGS);
    m->magic = sr_store_rd32(p + STORE_OFF_MAGIC);
    m->version = sr_store_rd32(p + STORE_OFF_VERSION);
    m->mapsize = sr_store_rd64(p + STORE_OFF_MAPSIZE);
    m->psize = sr_store_rd32(p + STORE_OFF_DB(0));
    for (int i = 0; i < 2; i++) {
        m->db_flags[i] = sr_store_rd16(p + STORE_OFF_DB(i) + 4);
        m->depth[i] = sr_store_rd16(p + STORE_OFF_DB(i) + 6);
        m->root[i] = sr_store_rd64(p + STORE_OFF_DB(i) + 40);
    }
    m->last_pg = sr_store_rd64(p + STORE_OFF_LAST_PG);
    m->txnid = sr_store_rd64(p + STORE_OFF_TXNID);
}

/* What is wrong with meta page n, or NULL. */
static const char *store_meta_problem(const store_meta *m, uint64_t n, char *buf, size_t len) {
    if (m->magic != STORE_MDB_MAGIC) snprintf(buf, len, "meta page %d has no LMDB magic number", (int)n);
    else if (m->version != STORE_MDB_DATA_VERSION)
        snprintf(buf, len, "meta page %d has data format version %u (this LMDB reads %d)", (int)n, m->version,
                 STORE_MDB_DATA_VERSION);
    else if (!(m->flags & STORE_P_META) || m->pgno != n)
        snprintf(buf, len, "meta page %d has a bad header", (int)n);
    else if (m->psize < 512 || m->psize > 65536 || (m->psize & (m->psize - 1)))
        snprintf(buf, len, "meta page %d has a bad page size %u", (int)n, m->psize);
    else if (m->last_pg < 1 || m->last_pg > UINT64_MAX / 65536)
        snprintf(buf, len, "meta page %d has a bad last page number", (int)n);
    else if (m->mapsize < (m->last_pg + 1) * m->psize)
        snprintf(buf, len, "meta page %d has a map size smaller than its data", (int)n);
    else if ((m->db_flags[0] & STORE_MDB_DB_FLAGS) != MDB_INTEGERKEY || (m->db_flags[1] & STORE_MDB_DB_FLAGS) != 0)
        /* LMDB makes the free DB with integer keys and the main one plain; other flags (say, DUPSORT)
         * send its write path into an assertion once the store is open. */
        snprintf(buf, len, "meta page %d has bad database flags", (int)n);
    else {
        for (int i = 0; i < 2; i++) {
            if (m->root[i] == STORE_P_INVALID) continue;
            if (m->root[i] < 2 || m->root[i] > m->last_pg || m->depth[i] == 0 || m->depth[i] > 64) {
                snprintf(buf, len, "meta page %d points at a bad root page", (int)n);
                return buf;
            }
        }
        return NULL;
    }
    return buf;
}

/* The check before LMDB opens the file. 0 (also when there is no file yet), SR_E_CORRUPT with the
 * problem in problem, or SR_E_IO. */
/* Reads and checks both meta pages of a file of size bytes. 0, SR_E_CORRUPT or SR_E_IO with problem set. */
static int store_read_metas(int fd, uint64_t size, store_meta meta[2], char *problem, size_t len) {
    unsigned char page[STORE_META_LEN];
    char why[160];
    ssize_t n = pread(fd, page, STORE_META_LEN, 0);
    if (n < 0) {
        snprintf(problem, len, "cannot read it: %s", strerror(errno));
        return SR_E_IO;
    }
    if (n < STORE_META_LEN) {
        snprintf(problem, len, "it is truncated to %llu bytes, shorter than its first page", (unsigned long long)size);
        return SR_E_CORRUPT;
    }
    store_meta_parse(page, &meta[0]);
    if (store_meta_problem(&meta[0], 0, why, sizeof why)) {
        sr_str_copy(problem, len, why);
        return SR_E_CORRUPT;
    }
    uint64_t psize = meta[0].psize;
    if (size < 2 * psize) {
        snprintf(problem, len, "it is truncated to %llu bytes, shorter than its two meta pages",
                 (unsigned long long)size);
        return SR_E_CORRUPT;
    }
    n = pread(fd, page, STORE_META_LEN, (off_t)psize);
    if (n != STORE_META_LEN) {
        snprintf(problem, len, "cannot read its second meta page");
        return n < 0 ? SR_E_IO : SR_E_CORRUPT;
    }
    store_meta_parse(page, &meta[1]);
    if (store_meta_problem(&meta[1], 1, why, sizeof why)) {
        sr_str_copy(problem, len, why);
        return SR_E_CORRUPT;
    }
    if (meta[1].psize != psize) {
        snprintf(problem, len, "its meta pages disagree on the page size");
        return SR_E_CORRUPT;
    }
    return 0;
}

static int store_check_file(const char *path, char *problem, size_t len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0; /* a new store */
        snprintf(problem, len, "cannot open it: %s", strerror(errno));
        return SR_E_IO;
    }
    int code = SR_E_CORRUPT;
    struct stat st;
    store_meta meta[2];
    if (fstat(fd, &st) != 0) {
        snprintf(problem, len, "cannot stat it: %s", strerror(errno));
        code = SR_E_IO;
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(problem, len, "it is not a regular file");
        goto done;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size == 0) {
        /* LMDB would silently start an empty store over it. A store is never empty on disk: its
         * meta pages are written when it is created. */
        snprintf(problem, len, "it is empty (0 bytes)");
        goto done;
    }
    code = store_read_metas(fd, size, meta, problem, len);
    if (code) goto done;
    /* LMDB opens the newest snapshot: every page it may touch must be in the file. */
    const store_meta *newest = meta[1].txnid > meta[0].txnid ? &meta[1] : &meta[0];
    uint64_t need = (newest->last_pg + 1) * meta[0].psize;
    if (size < need) {
        snprintf(problem, len, "it is truncated: %llu bytes, its newest snapshot needs %llu", (unsigned long long)size,
                 (unsigned long long)need);
        code = SR_E_CORRUPT;
    }
done:
    close(fd);
    return code;
}

/* The walk after LMDB opened the file. One thread at a time: the signal handlers are process-wide,
 * and the writer thread is not running yet. */
static sigjmp_buf store_walk_jmp;
static volatile sig_atomic_t store_walk_signal;
/* What a walk cut short by a signal leaves behind, kept reachable on purpose: LMDB's state is not
 * safe to free after it, and the process is about to exit. */
typedef struct store_abandoned {
    MDB_env *env;
    MDB_txn *txn;
    MDB_cursor *cursor;
    struct store_abandoned *next;
} store_abandoned;
static store_abandoned *store_abandoned_list;
static MDB_cursor *volatile store_walk_cursor; /* the walk's open cursor */
/* The free list's page numbers, gathered by the walk for the page check (freed after the walk, also
 * when a signal ends it: a static, so that siglongjmp leaves it intact). */
static uint64_t *volatile store_walk_free;
static volatile size_t store_walk_free_count, store_walk_free_cap;

static void store_walk_free_add(uint64_t pg) {
    if (store_walk_free_count == store_walk_free_cap) {
        size_t cap = store_walk_free_cap ? store_walk_free_cap * 2 : 1024;
        uint64_t *grown = realloc(store_walk_free, cap * sizeof *grown);
        if (!grown) abort();
        store_walk_free = grown;
        store_walk_free_cap = cap;
    }
    store_walk_free[store_walk_free_count++] = pg;
}

static void store_walk_free_release(void) {
    free(store_walk_free);
    store_walk_free = NULL;
    store_walk_free_count = store_walk_free_cap = 0;
}

static void store_walk_on_signal(int sig) {
    store_walk_signal = sig;
    siglongjmp(store_walk_jmp, 1);
}

typedef struct store_walk {
    MDB_txn *txn;
    const char *lo, *hi; /* the mapped bytes of the newest snapshot */
    uint64_t last_pg, psize;
    store_meta snap; /* the transaction's meta page, when has_snap */
    int has_snap;
    uint64_t entries;
    char *problem;
    size_t len;
} store_walk;

/* Where LMDB mapped data.mdb: LMDB does not say (me_mapaddr is only set with MDB_FIXEDMAP), so the
 * mapping of the file's inode is looked up in /proc/self/maps. NULL when not found (the walk then
 * leaves pointer ranges to LMDB's own checks). */
static const char *store_map_address(MDB_env *env) {
    mdb_filehandle_t fd;
    struct stat st;
    if (mdb_env_get_fd(env, &fd) != 0 || fstat(fd, &st) != 0) return NULL;
    FILE *fp = fopen("/proc/self/maps", "re");
    if (!fp) return NULL;
    char line[4096];
    const char *addr = NULL;
    while (!addr && fgets(line, sizeof line, fp)) {
        unsigned long long start, end, offset, inode;
        unsigned major, minor;
        if (sscanf(line, "%llx-%llx %*s %llx %x:%x %llu", &start, &end, &offset, &major, &minor, &inode) != 6) continue;
        if (inode == (unsigned long long)st.st_ino && offset == 0 && makedev(major, minor) == st.st_dev)
            addr = (const char *)(uintptr_t)start;
    }
    fclose(fp);
    return addr;
}

static int store_walk_in_map(const store_walk *w, const MDB_val *v) {
    const char *p = v->mv_data;
    if (v->mv_size == 0 || !w->lo) return 1;
    return p >= w->lo && p < w->hi && v->mv_size <= (size_t)(w->hi - p);
}

/* Visits every entry of dbi: keys inside the map and in order, values inside the map, free-list
 * records well formed. 0 or SR_E_CORRUPT with the problem set. */
static int store_walk_db(store_walk *w, MDB_dbi dbi, const char *name) {
    MDB_cursor *cur = NULL;
    MDB_val k, v, prev = {0, NULL};
    int rc = mdb_cursor_open(w->txn, dbi, &cur);
    if (rc) {
        snprintf(w->problem, w->len, "database '%s' cannot be read: %s", name, mdb_strerror(rc));
        return SR_E_CORRUPT;
    }
    store_walk_cursor = cur; /* reachable if a signal ends the walk */
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        w->entries++;
        if (!store_walk_in_map(w, &k) || !store_walk_in_map(w, &v)) {
            snprintf(w->problem, w->len, "database '%s' has an entry outside the file", name);
            goto fail;
        }
        if (prev.mv_data && mdb_cmp(w->txn, dbi, &prev, &k) >= 0) {
            snprintf(w->problem, w->len, "database '%s' has keys out of order", name);
            goto fail;
        }
        prev = k;
        if (dbi == 0) { /* the free list: a count, then that many page numbers */
            uint64_t count = v.mv_size >= 8 ? sr_store_rd64(v.mv_data) : UINT64_MAX;
            int ok = count != UINT64_MAX && v.mv_size == (count + 1) * 8;
            for (uint64_t i = 1; ok && i <= count; i++) {
                uint64_t pg = sr_store_rd64((const unsigned char *)v.mv_data + i * 8);
                ok = pg >= 2 && pg <= w->last_pg;
                if (ok) store_walk_free_add(pg);
            }
            if (!ok) {
                snprintf(w->problem, w->len, "the free page list is damaged");
                goto fail;
            }
        }
    }
    if (rc != MDB_NOTFOUND) {
        snprintf(w->problem, w->len, "database '%s' cannot be read: %s", name, mdb_strerror(rc));
        goto fail;
    }
    store_walk_cursor = NULL;
    mdb_cursor_close(cur);
    return 0;
fail:
    store_walk_cursor = NULL;
    mdb_cursor_close(cur);
    return SR_E_CORRUPT;
}

/* The snapshot of the walk's transaction: its meta page, read right after the transaction began
 * (a writer beside this reader, `smsrules backup` of a running daemon, rewrites that page two
 * commits later). 0 when found, -1 when the map was not found or a writer was faster. */
static int store_walk_snapshot(store_walk *w) {
    uint64_t id = (uint64_t)mdb_txn_id(w->txn);
    for (int i = 0; w->lo && i < 2; i++) {
        store_meta_parse((const unsigned char *)w->lo + (size_t)i * w->psize, &w->snap);
        if (w->snap.txnid == id && w->snap.last_pg <= w->last_pg) return 0;
    }
    return -1;
}

/* The page check (store_pages.c) of the walk's snapshot, when its meta page was read. */
static int store_walk_pages(store_walk *w) {
    if (!w->has_snap) return 0;
    sr_store_pages pg = {.map = (const unsigned char *)w->lo,
                         .psize = w->psize,
                         .last_pg = w->snap.last_pg,
                         .free_root = w->snap.root[0],
                         .main_root = w->snap.root[1],
                         .free_pgs = store_walk_free,
                         .free_count = store_walk_free_count};
    return sr_store_pages_check(&pg, w->problem, w->len) == 0 ? 0 : SR_E_CORRUPT;
}

static int store_walk_all(store_walk *w) {
    MDB_dbi main_dbi;
    int code = store_walk_db(w, 0, "free pages");
    /* Opening the main database by its NULL name also sets up its key order for mdb_cmp. */
    if (code == 0 && mdb_dbi_open(w->txn, NULL, 0, &main_dbi) != 0) {
        snprintf(w->problem, w->len, "the main database cannot be opened");
        code = SR_E_CORRUPT;
    }
    if (code == 0) code = store_walk_db(w, main_dbi, "main");
    for (int i = 0; code == 0 && i < STORE_DB_COUNT; i++) {
        MDB_dbi dbi;
        int rc = mdb_dbi_open(w->txn, store_db_names[i], 0, &dbi);
        if (rc == MDB_NOTFOUND) continue; /* not created yet */
        if (rc) {
            snprintf(w->problem, w->len, "database '%s' cannot be opened: %s", store_db_names[i], mdb_strerror(rc));
            return SR_E_CORRUPT;
        }
        /* Every database of ours is plain. Flags in its record say otherwise only when damaged, and LMDB
         * follows them: DUPSORT, say, turns each overwrite into one more value under the key. */
        unsigned int flags = 0;
        if (mdb_dbi_flags(w->txn, dbi, &flags) != 0 || (flags & STORE_MDB_DB_FLAGS) != 0) {
            snprintf(w->problem, w->len, "database '%s' has bad flags", store_db_names[i]);
            return SR_E_CORRUPT;
        }
        code = store_walk_db(w, dbi, store_db_names[i]);
    }
    return code == 0 ? store_walk_pages(w) : code;
}

/* Walks every database of the open environment once. 0, or SR_E_CORRUPT with the problem set (also
 * when LMDB faulted or asserted during the walk: the environment is then abandoned and *env NULL). */
static int store_walk_env(MDB_env **env, char *problem, size_t len) {
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
    struct sigaction old[sizeof sigs / sizeof sigs[0]], sa;
    MDB_envinfo info;
    MDB_stat st;
    store_walk w = {.problem = problem, .len = len};
    volatile int code = 0;
    int rc = mdb_txn_begin(*env, NULL, MDB_RDONLY, &w.txn);
    if (rc) {
        snprintf(problem, len, "it cannot be read: %s", mdb_strerror(rc));
        return SR_E_CORRUPT;
    }
    /* The bounds after the transaction began: a daemon writing beside a reader (`smsrules backup`)
     * may commit in between, and the newest meta then covers the transaction's pages, where one read
     * before it did not (a false "entry outside the file"). */
    if (mdb_env_info(*env, &info) != 0 || mdb_env_stat(*env, &st) != 0) {
        mdb_txn_abort(w.txn);
        snprintf(problem, len, "its meta pages cannot be read");
        return SR_E_CORRUPT;
    }
    w.last_pg = info.me_last_pgno;
    w.psize = st.ms_psize;
    w.lo = store_map_address(*env);
    w.hi = w.lo ? w.lo + (info.me_last_pgno + 1) * st.ms_psize : NULL;
    w.has_snap = store_walk_snapshot(&w) == 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = store_walk_on_signal;
    sigemptyset(&sa.sa_mask);
    store_walk_signal = 0;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, &old[i]);
    if (sigsetjmp(store_walk_jmp, 1) == 0) {
        code = store_walk_all(&w);
        mdb_txn_abort(w.txn);
    } else {
        snprintf(problem, len, "reading it stopped with %s", strsignal(store_walk_signal));
        store_abandoned *a = store_xcalloc(1, sizeof *a);
        a->env = *env;
        a->txn = w.txn;
        a->cursor = store_walk_cursor;
        a->next = store_abandoned_list;
        store_abandoned_list = a;
        store_walk_cursor = NULL;
        *env = NULL;
        code = SR_E_CORRUPT;
    }
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &old[i], NULL);
    store_walk_free_release();
    return code;
}

/* The message for a damaged store: what is wrong and how to recover. */
static void store_damaged(char *err, size_t errlen, const char *dir, const char *problem) {
    snprintf(err, errlen,
             "the store file %s/data.mdb is damaged: %s. Stop smsrules and restore a backup (`smsrules restore "
             "--data %s FILE`, FILE made by `smsrules backup`), then start again; or move %s/data.mdb away to "
             "start with an empty store",
             dir, problem, dir, dir);
}

/* Writes the schema version this smsrules writes. */
static int store_put_schema(sr_store *s, MDB_txn *txn) {
    MDB_val k = {strlen("schema_version"), (void *)"schema_version"}, v;
    char text[16];
    int n = snprintf(text, sizeof text, "%d", STORE_SCHEMA_VERSION);
    v = (MDB_val){(size_t)n, text};
    return mdb_put(txn, s->dbi[STORE_DB_META], &k, &v, 0);
}

/* Checks the schema version (writing it into a new store, and raising an older one: version 1 holds
 * JSON message records, which this version reads, but from the first binary record on an older
 * smsrules could not read the store, so it must refuse it). Returns an LMDB code, or an SR_E_* code
 * with err set. */
static int store_check_schema(sr_store *s, MDB_txn *txn, char *err, size_t errlen) {
    MDB_val k = {strlen("schema_version"), (void *)"schema_version"}, v;
    int rc = mdb_get(txn, s->dbi[STORE_DB_META], &k, &v);
    if (rc == MDB_NOTFOUND && s->read_only) {
        snprintf(err, errlen, "store has no schema version (never opened by a daemon)");
        return SR_E_CORRUPT;
    }
    if (rc == MDB_NOTFOUND) return store_put_schema(s, txn);
    if (rc) return rc;
    int64_t version = 0;
    if (store_parse_int(v.mv_data, v.mv_size, &version) < 0 || version < 1) {
        snprintf(err, errlen, "store schema version is unreadable (corrupt meta database)");
        return SR_E_CORRUPT;
    }
    if (version > STORE_SCHEMA_VERSION) {
        snprintf(err, errlen, "store schema version %lld is newer than this smsrules supports (%d); upgrade smsrules",
                 (long long)version, STORE_SCHEMA_VERSION);
        return SR_E_INVALID;
    }
    if (version < STORE_SCHEMA_VERSION && !s->read_only) return store_put_schema(s, txn);
    return 0;
}

/* Opens the named databases and checks (or writes) the schema version. */
static int store_open_schema(sr_store *s, char *err, size_t errlen) {
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(s->env, NULL, s->read_only ? MDB_RDONLY : 0, &txn);
    if (rc) goto fail;
    for (int i = 0; i < STORE_DB_COUNT; i++) {
        rc = mdb_dbi_open(txn, store_db_names[i], s->read_only ? 0 : MDB_CREATE, &s->dbi[i]);
        if (rc) goto fail;
    }
    rc = store_check_schema(s, txn, err, errlen);
    if (store_is_code(rc)) {
        mdb_txn_abort(txn);
        return rc;
    }
    if (rc) goto fail;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc) goto fail;
    return 0;
fail:
    if (txn) mdb_txn_abort(txn);
    snprintf(err, errlen, "cannot open store databases: %s", mdb_strerror(rc));
    return store_error(rc, "open");
}

/* A store not yet open: its sizes, buffers and locks initialised. */
static sr_store *store_new(uv_loop_t *loop, const sr_store_options *opt) {
    sr_store *s = store_xcalloc(1, sizeof *s);
    s->loop = loop;
    s->lock_fd = -1;
    s->reserve = opt->reserve;
    s->read_only = opt->read_only;
    s->map_size = opt->map_size ? opt->map_size : STORE_DEFAULT_MAP;
    s->map_size_max = opt->map_size_max ? opt->map_size_max : STORE_DEFAULT_MAP_MAX;
    if (s->map_size_max < s->map_size) s->map_size_max = s->map_size;
    sr_buf_init(&s->wbuf);
    sr_buf_init(&s->wkeys_before.providers);
    sr_buf_init(&s->wkeys_after.providers);
    sr_arena_init(&s->warena, 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t attr; /* store_linger's deadlines are CLOCK_MONOTONIC */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->work_cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&s->idle_cond, NULL);
    pthread_rwlock_init(&s->map_lock, NULL);
    s->sync_initialised = 1;
    return s;
}

/* The data directory: created and locked (a reader only checks it exists). 0 or a code, err set. */
static int store_open_dir(sr_store *s, const char *dir, char *err, size_t errlen) {
    int code = SR_E_IO;
    if (!dir || !dir[0]) {
        snprintf(err, errlen, "no data directory given");
        return code;
    }
    if (s->read_only) {
        struct stat dir_st;
        if (stat(dir, &dir_st) != 0 || !S_ISDIR(dir_st.st_mode)) {
            snprintf(err, errlen, "no data directory %s", dir);
            return code;
        }
        return 0;
    }
    int rc = store_mkdirs(dir);
    if (rc) {
        snprintf(err, errlen, "cannot create data directory %s: %s", dir, strerror(rc));
        return code;
    }
    /* Before anything is read: a second daemon stops here. A reader does not take the lock: it
     * reads beside the daemon, which LMDB allows. */
    s->lock_fd = store_lock_dir(dir, err, errlen, &code);
    return s->lock_fd < 0 ? code : 0;
}

/* Checks data.mdb, opens the environment and walks it. 0 or a code, err set. */
static int store_open_env(sr_store *s, const sr_store_options *opt, char *err, size_t errlen) {
    char path[4096], problem[256];
    snprintf(path, sizeof path, "%s/data.mdb", opt->dir);
    int code = store_check_file(path, problem, sizeof problem);
    if (code == SR_E_CORRUPT) store_damaged(err, errlen, opt->dir, problem);
    else if (code)
        snprintf(err, errlen, "cannot check the store file %s: %s", path, problem);
    if (code) return code;
    int rc = mdb_env_create(&s->env);
    if (rc == 0) rc = mdb_env_set_maxdbs(s->env, 16);
    /* No size before opening: LMDB then keeps the size an existing file was grown to, and only
     * a smaller one is raised to map_size below. */
    /* A cluster node's replica syncs its data but not its meta page: a system crash may undo its last
     * transactions (never its integrity), and the applier then applies them again from the stream,
     * whose position is in the same transactions. What was acknowledged is safe in the stream. */
    int replica = opt->cluster && opt->cluster[0] && !s->read_only;
    unsigned env_flags =
        MDB_NOTLS | (opt->no_sync ? MDB_NOSYNC : 0) | (replica ? MDB_NOMETASYNC : 0) | (s->read_only ? MDB_RDONLY : 0);
    if (rc == 0) rc = mdb_env_open(s->env, opt->dir, env_flags, 0640);
    MDB_envinfo info;
    if (rc == 0) rc = mdb_env_info(s->env, &info);
    if (rc == 0 && !s->read_only && info.me_mapsize < s->map_size) rc = mdb_env_set_mapsize(s->env, s->map_size);
    if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND) {
        store_damaged(err, errlen, opt->dir, mdb_strerror(rc));
        return SR_E_CORRUPT;
    }
    if (rc) {
        snprintf(err, errlen, "cannot open store in %s: %s", opt->dir, mdb_strerror(rc));
        return store_error(rc, "open");
    }
    code = store_walk_env(&s->env, problem, sizeof problem);
    if (code) store_damaged(err, errlen, opt->dir, problem);
    return code;
}

/* After the schema: the sizes the environment has, and the loop's read transaction. */
static int store_open_reads(sr_store *s, char *err, size_t errlen) {
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    s->map_size = info.me_mapsize; /* an existing file may be bigger than asked */
    if (s->map_size_max < s->map_size) s->map_size_max = s->map_size;
    s->max_key = (size_t)mdb_env_get_maxkeysize(s->env);
    MDB_stat env_stat;
    mdb_env_stat(s->env, &env_stat);
    s->page_size = env_stat.ms_psize;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->read_txn);
    if (rc) {
        snprintf(err, errlen, "cannot start a read transaction: %s", mdb_strerror(rc));
        return store_error(rc, "open");
    }
    mdb_txn_reset(s->read_txn);
    return 0;
}

/* The loop handles and the writer thread. */
static int store_start_writer(sr_store *s, uv_loop_t *loop, char *err, size_t errlen) {
    s->handles = store_xcalloc(1, sizeof *s->handles);
    uv_prepare_init(loop, &s->handles->prepare);
    uv_check_init(loop, &s->handles->check);
    uv_async_init(loop, &s->handles->async, store_on_async);
    s->handles->prepare.data = s->handles->check.data = s->handles->async.data = s;
    uv_prepare_start(&s->handles->prepare, store_on_prepare);
    uv_check_start(&s->handles->check, store_on_check);
    /* None of them keeps the loop alive on its own: the async does while units are in flight. */
    uv_unref((uv_handle_t *)&s->handles->prepare);
    uv_unref((uv_handle_t *)&s->handles->check);
    uv_unref((uv_handle_t *)&s->handles->async);

    int rc = pthread_create(&s->writer, NULL, store_writer_main, s);
    if (rc) {
        snprintf(err, errlen, "cannot start the store writer thread: %s", strerror(rc));
        return SR_E_IO;
    }
    s->writer_started = 1;
    return 0;
}

int sr_store_open(sr_store **out, uv_loop_t *loop, const sr_store_options *opt, char *err, size_t errlen) {
    char dummy[8];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    *out = NULL;
    sr_store *s = store_new(loop, opt);
    int code = store_open_dir(s, opt->dir, err, errlen);
    if (code == 0) code = store_open_env(s, opt, err, errlen);
    if (code) goto fail;
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    if (dead > 0) sr_info("store: cleared stale readers", "count", sr_log_num(dead));
    code = store_open_schema(s, err, errlen);
    if (code == 0) code = store_open_reads(s, err, errlen);
    if (code == 0 && !s->read_only) code = store_start_writer(s, loop, err, errlen);
    if (code == 0 && !s->read_only && opt->cluster && opt->cluster[0]) code = store_cluster_open(s, opt, err, errlen);
    if (code) goto fail;
    *out = s;
    return 0;
fail:
    sr_store_close(s);
    return code;
}

void sr_store_close(sr_store *s) {
    if (!s) return;
    if (s->writer_started) {
        /* Drain: callbacks may submit more units, which are committed too. */
        for (;;) {
            store_flush(s);
            pthread_mutex_lock(&s->mu);
            while (s->queued.head || s->writer_busy) pthread_cond_wait(&s->idle_cond, &s->mu);
            store_list done = s->done;
            s->done.head = s->done.tail = NULL;
            s->done.n = 0;
            pthread_mutex_unlock(&s->mu);
            if (!done.head && !s->pending.head) break;
            store_run_done(s, done.head);
        }
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_signal(&s->work_cond);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->writer, NULL);
        store_cluster_close(s);
        /* Units of other nodes the applier handed over after the last drain: nothing waits on them. */
        for (sr_store_txn *t = s->done.head, *next; t; t = next) {
            next = t->next;
            store_txn_free(t);
        }
        s->done.head = s->done.tail = NULL;
    } else {
        /* Never started: units submitted before cannot exist (open failed). */
    }
    store_close_handles(s->handles);
    if (s->read_txn) mdb_txn_abort(s->read_txn);
    if (s->env) mdb_env_close(s->env);
    if (s->sync_initialised) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->work_cond);
        pthread_cond_destroy(&s->idle_cond);
        pthread_rwlock_destroy(&s->map_lock);
    }
    sr_buf_free(&s->wbuf);
    sr_buf_free(&s->wkeys_before.providers);
    sr_buf_free(&s->wkeys_after.providers);
    sr_arena_free(&s->warena);
    if (s->lock_fd >= 0) close(s->lock_fd); /* the lock goes last: nothing of ours touches the files after */
    free(s);
}

/* ---- backup ---- */

int sr_store_backup(sr_store *s, int fd, char *err, size_t errlen) {
    /* Held for reading like any read: in a daemon's own store the writer cannot move the map under
     * the copy's transaction (it waits to grow until the copy is done). */
    pthread_rwlock_rdlock(&s->map_lock);
    int rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
    for (int tries = 0; rc == MDB_MAP_RESIZED && s->read_only && tries < 8; tries++) {
        /* The daemon beside us grew the map since we opened: adopt its size (as store_read_begin
         * does) and start again. The copy's transaction failed to begin, so nothing was written. */
        rc = mdb_env_set_mapsize(s->env, 0);
        if (rc == 0) rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
    }
    pthread_rwlock_unlock(&s->map_lock);
    if (rc == 0) return 0;
    snprintf(err, errlen, "copying the store failed: %s", mdb_strerror(rc));
    return store_error(rc, "backup");
}

/* ---- reads ---- */

static int store_read_begin(sr_store *s) {
    pthread_rwlock_rdlock(&s->map_lock);
    int rc = mdb_txn_renew(s->read_txn);
    if (rc == MDB_MAP_RESIZED && s->read_only) {
        /* The daemon beside us grew the map: adopt its size (no transaction of ours is live) and go on. */
        rc = mdb_env_set_mapsize(s->env, 0);
        if (rc == 0) rc = mdb_txn_renew(s->read_txn);
    }
    if (rc) {
        pthread_rwlock_unlock(&s->map_lock);
        return store_error(rc, "read");
    }
    return 0;
}

static void store_read_end(sr_store *s) {
    mdb_txn_reset(s->read_txn);
    pthread_rwlock_unlock(&s->map_lock);
}

int store_read_meta_u64(sr_store *s, const char *key, uint64_t *out) {
    MDB_txn *txn = NULL;
    MDB_val k = {strlen(key), (void *)key}, v;
    *out = 0;
    pthread_rwlock_rdlock(&s->map_lock);
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) rc = mdb_get(txn, s->dbi[STORE_DB_META], &k, &v);
    if (rc == 0 && v.mv_size == 8) *out = store_get_be64(v.mv_data);
    if (txn) mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->map_lock);
    return rc == MDB_NOTFOUND ? 0 : rc ? store_error(rc, "read meta") : 0;
}

int store_write_meta_u64(sr_store *s, const char *key, uint64_t v) {
    MDB_txn *txn = NULL;
    int rc = store_begin_write(s, &txn);
    if (rc == 0) rc = store_put_meta_u64(s, txn, key, v);
    if (rc == 0) rc = mdb_txn_commit(txn);
    else if (txn)
        mdb_txn_abort(txn);
    return rc ? store_error(rc, "write meta") : 0;
}

int store_has_messages(sr_store *s) {
    MDB_txn *txn = NULL;
    MDB_stat st;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) rc = mdb_stat(txn, s->dbi[STORE_DB_MESSAGES], &st);
    if (txn) mdb_txn_abort(txn);
    return rc == 0 && st.ms_entries > 0;
}

int sr_store_clustered(const sr_store *s) { return s->cluster != NULL; }

int sr_store_cluster_nodes(sr_store *s) { return s->cluster ? store_cluster_live_nodes(s) : 1; }

int sr_store_mine(sr_store *s, const char *id) { return s->cluster ? store_cluster_mine(s, id) : 1; }

int sr_store_orphaned(sr_store *s, char kind, const char *key, size_t klen) {
    char k[SR_ID_LEN + 64], owner[160];
    size_t olen = 0;
    if (!s->cluster) return 1;
    if (klen + 1 > sizeof k) return 1;
    k[0] = kind;
    memcpy(k + 1, key, klen);
    if (store_read_begin(s)) return 0; /* unknown: leave it for the next look */
    MDB_val kv = {klen + 1, k}, v;
    int rc = mdb_get(s->read_txn, s->dbi[STORE_DB_OWNERS], &kv, &v);
    if (rc == 0 && v.mv_size < sizeof owner) {
        olen = v.mv_size;
        memcpy(owner, v.mv_data, olen);
    }
    store_read_end(s);
    /* No owner recorded (written before cluster mode knew of owners): nobody else will take it. */
    if (rc == MDB_NOTFOUND || olen == 0) return 1;
    return store_cluster_owner_gone(s, owner, olen);
}

int sr_store_get_message(sr_store *s, const char *id, sr_message *out) {
    sr_message_init(out);
    size_t len = id ? strlen(id) : 0;
    if (len == 0 || len > s->max_key) return SR_E_NOTFOUND;
    int code = store_read_begin(s);
    if (code) return code;
    MDB_val k = {len, (void *)id}, v;
    int rc = mdb_get(s->read_txn, s->dbi[STORE_DB_MESSAGES], &k, &v);
    if (rc == 0 && sr_message_decode(v.mv_data, v.mv_size, out) < 0) {
        sr_warn("store: corrupt message record", "id", id);
        code = SR_E_CORRUPT;
    } else {
        code = store_error(rc, "get message");
    }
    store_read_end(s);
    return code;
}

int sr_store_get(sr_store *s, sr_store_space sp, const char *key, size_t klen, int64_t now_ms, sr_buf *out,
                 int64_t *expires_at_ms) {
    if (!key || klen == 0 || klen > s->max_key) return SR_E_NOTFOUND;
    int code = store_read_begin(s);
    if (code) return code;
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(s->read_txn, s->dbi[store_space(sp)], &k, &v);
    if (rc == 0) {
        if (!store_alive(&v, now_ms)) {
            code = SR_E_NOTFOUND;
        } else {
            sr_buf_reset(out);
            sr_buf_append(out, (const char *)v.mv_data + 8, v.mv_size - 8);
            if (expires_at_ms) *expires_at_ms = (int64_t)store_get_be64(v.mv_data);
        }
    } else {
        code = store_error(rc, "get");
    }
    store_read_end(s);
    return code;
}

int sr_store_dedup_seen(sr_store *s, const char *key, size_t klen, int64_t now_ms) {
    if (!key || klen == 0 || klen > s->max_key) return 0;
    int code = store_read_begin(s);
    if (code) return code;
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(s->read_txn, s->dbi[STORE_DB_DEDUP], &k, &v);
    code = rc == 0 ? store_alive(&v, now_ms) : rc == MDB_NOTFOUND ? 0 : store_error(rc, "dedup get");
    store_read_end(s);
    return code;
}

int sr_store_kv_get(sr_store *s, const char *key, size_t klen, int64_t now_ms, sr_buf *out) {
    return sr_store_get(s, SR_SPACE_KV, key, klen, now_ms, out, NULL);
}

int sr_store_is_optout(sr_store *s, const char *number) {
    size_t len = number ? strlen(number) : 0;
    if (len == 0 || len > s->max_key) return 0;
    int code = store_read_begin(s);
    if (code) return code;
    MDB_val k = {len, (void *)number}, v;
    int rc = mdb_get(s->read_txn, s->dbi[STORE_DB_OPTOUTS], &k, &v);
    code = rc == 0 ? 1 : rc == MDB_NOTFOUND ? 0 : store_error(rc, "optout get");
    store_read_end(s);
    return code;
}

int sr_store_find_provider_id(sr_store *s, const char *provider, const char *raw_provider_id,
                              char id_out[SR_ID_LEN + 1]) {
    if (!provider || !raw_provider_id) return SR_E_NOTFOUND;
    char provider_id[256];
    sr_store_normalize_provider_id(raw_provider_id, provider_id, sizeof provider_id);
    size_t plen = strlen(provider), ilen = strlen(provider_id), len = plen + 1 + ilen;
    if (ilen == 0 || len > s->max_key) return SR_E_NOTFOUND;
    char key[512];
    if (len > sizeof key) return SR_E_NOTFOUND;
    memcpy(key, provider, plen);
    key[plen] = '\0';
    memcpy(key + plen + 1, provider_id, ilen);
    int code = store_read_begin(s);
    if (code) return code;
    MDB_val k = {len, key}, v;
    int rc = mdb_get(s->read_txn, s->dbi[STORE_DB_PROVIDER_IDS], &k, &v);
    if (rc == 0 && v.mv_size == SR_ID_LEN) {
        memcpy(id_out, v.mv_data, SR_ID_LEN);
        id_out[SR_ID_LEN] = '\0';
    } else {
        code = rc == 0 ? SR_E_CORRUPT : store_error(rc, "provider id get");
    }
    store_read_end(s);
    return code;
}

int sr_store_queue_due(sr_store *s, int64_t now_ms, sr_queue_entry *out, int max) {
    MDB_cursor *cur = NULL;
    int n = 0, rc;
    if (max <= 0) return 0;
    int code = store_read_begin(s);
    if (code) return code;
    rc = mdb_cursor_open(s->read_txn, s->dbi[STORE_DB_QUEUE], &cur);
    if (rc) goto fail;
    /* One band per priority (key byte 0 = priority 3), each in due order. */
    for (int band = 0; band < 4 && n < max; band++) {
        unsigned char start = (unsigned char)band;
        MDB_val k = {1, &start}, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        for (; rc == 0 && n < max; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            const unsigned char *p = k.mv_data;
            if (p[0] != band) break;
            if (k.mv_size != STORE_QUEUE_KEY_LEN) continue;
            uint64_t due = store_get_be64(p + 1);
            if (now_ms < 0 || due > (uint64_t)now_ms) break;
            memcpy(out[n].id, p + 9, SR_ID_LEN);
            out[n].id[SR_ID_LEN] = '\0';
            out[n].priority = 3 - band;
            out[n].due_ms = (int64_t)due;
            n++;
        }
        if (rc && rc != MDB_NOTFOUND) goto fail;
    }
    rc = 0;
fail:
    if (cur) mdb_cursor_close(cur);
    store_read_end(s);
    return rc ? store_error(rc, "queue scan") : n;
}

/* Up to max ids of a (be64 time, id) index whose time is before `before`, earliest first; *next_ms (may
 * be NULL) gets the first time at or after it, 0 when none. */
static int store_time_index_due(sr_store *s, int db, int64_t before, char (*ids)[SR_ID_LEN + 1], int max,
                                int64_t *next_ms, const char *what) {
    MDB_cursor *cur = NULL;
    int n = 0, rc;
    if (next_ms) *next_ms = 0;
    if (max <= 0) return 0;
    int code = store_read_begin(s);
    if (code) return code;
    rc = mdb_cursor_open(s->read_txn, s->dbi[db], &cur);
    if (rc) goto fail;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && n < max; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8 + SR_ID_LEN) continue;
        const unsigned char *p = k.mv_data;
        uint64_t at = store_get_be64(p);
        if (before <= 0 || at >= (uint64_t)before) {
            if (next_ms) *next_ms = (int64_t)at;
            break;
        }
        memcpy(ids[n], p + 8, SR_ID_LEN);
        ids[n][SR_ID_LEN] = '\0';
        n++;
    }
    if (rc == MDB_NOTFOUND) rc = 0;
fail:
    if (cur) mdb_cursor_close(cur);
    store_read_end(s);
    return rc ? store_error(rc, what) : n;
}

int sr_store_expired(sr_store *s, int64_t now_ms, char (*ids)[SR_ID_LEN + 1], int max) {
    return store_time_index_due(s, STORE_DB_EXPIRY, now_ms, ids, max, NULL, "expiry scan");
}

int sr_store_watch_due(sr_store *s, int64_t now_ms, char (*ids)[SR_ID_LEN + 1], int max, int64_t *next_ms) {
    return store_time_index_due(s, STORE_DB_WATCH, now_ms + 1, ids, max, next_ms, "watch scan");
}

static int store_cursor_before(MDB_cursor *cur, const void *start, size_t start_len, MDB_val *k, MDB_val *v);

/* The ids of status st after from_id (back: before it), in id order (back: newest first); from_id NULL or
 * not an id: from the first (back: the last) of st. */
static int store_list_status(sr_store *s, sr_status st, const char *from_id, int back, char (*ids)[SR_ID_LEN + 1],
                             int max) {
    MDB_cursor *cur = NULL;
    int n = 0, rc;
    if (max <= 0 || (int)st < 0 || st >= SR_ST_COUNT) return 0;
    int code = store_read_begin(s);
    if (code) return code;
    /* At (st, from_id), else at the first key of st (back: of the status after it). */
    unsigned char start[STORE_STATUS_KEY_LEN];
    size_t start_len = 1;
    start[0] = (unsigned char)(back ? st + 1 : st);
    if (from_id && strlen(from_id) == SR_ID_LEN) {
        start[0] = (unsigned char)st;
        memcpy(start + 1, from_id, SR_ID_LEN);
        start_len = STORE_STATUS_KEY_LEN;
    }
    rc = mdb_cursor_open(s->read_txn, s->dbi[STORE_DB_STATUS], &cur);
    if (rc) goto fail;
    MDB_val k = {start_len, start}, v;
    for (rc = back ? store_cursor_before(cur, start, start_len, &k, &v) : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && n < max; rc = mdb_cursor_get(cur, &k, &v, back ? MDB_PREV : MDB_NEXT)) {
        const unsigned char *p = k.mv_data;
        if (p[0] != (unsigned char)st) break;
        if (k.mv_size != STORE_STATUS_KEY_LEN) continue;
        if (!back && start_len == STORE_STATUS_KEY_LEN && memcmp(p, start, STORE_STATUS_KEY_LEN) == 0) continue;
        memcpy(ids[n], p + 1, SR_ID_LEN);
        ids[n][SR_ID_LEN] = '\0';
        n++;
    }
    if (rc == MDB_NOTFOUND) rc = 0;
fail:
    if (cur) mdb_cursor_close(cur);
    store_read_end(s);
    return rc ? store_error(rc, "status scan") : n;
}

int sr_store_list_status(sr_store *s, sr_status st, const char *after_id, char (*ids)[SR_ID_LEN + 1], int max) {
    return store_list_status(s, st, after_id, 0, ids, max);
}

static void store_on_sweep_done(sr_store_txn *t, void *ud) {
    sr_store *s = ud;
    s->sweep_inflight = 0;
}

int sr_store_sweep_ttl(sr_store *s, int64_t now_ms) {
    static const int dbs[] = {STORE_DB_KV, STORE_DB_DEDUP, STORE_DB_IDEMPOTENCY, STORE_DB_INBOUND};
    if (s->sweep_inflight) return 0;
    sr_store_txn *t = sr_store_txn_new(s);
    MDB_cursor *cur = NULL;
    int rc = 0, found = 0;
    int code = store_read_begin(s);
    if (code) {
        sr_store_txn_discard(t);
        return code;
    }
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0] && found < STORE_SWEEP_MAX; i++) {
        rc = mdb_cursor_open(s->read_txn, s->dbi[dbs[i]], &cur);
        if (rc) goto fail;
        MDB_val k, v;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && found < STORE_SWEEP_MAX;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (!store_sweepable(dbs[i], &v, now_ms)) continue;
            int slot;
            store_op *op = store_txn_add_key(t, STORE_OP_SWEEP, k.mv_data, k.mv_size, &slot);
            op->flag = dbs[i];
            op->expires_at_ms = now_ms;
            found++;
        }
        mdb_cursor_close(cur);
        cur = NULL;
        if (rc != MDB_NOTFOUND && rc != 0) goto fail;
        rc = 0;
    }
fail:
    if (cur) mdb_cursor_close(cur);
    store_read_end(s);
    if (rc || found == 0) {
        sr_store_txn_discard(t);
        return rc ? store_error(rc, "sweep scan") : 0;
    }
    s->sweep_inflight = 1;
    sr_store_txn_submit(t, store_on_sweep_done, s);
    return found;
}

void sr_store_get_stats(sr_store *s, sr_store_stats *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    out->commits = s->commits;
    out->units = s->units;
    out->grows = s->grows;
    out->last_commit_ms = s->last_commit_ms;
    pthread_mutex_unlock(&s->mu);
    MDB_envinfo info;
    MDB_stat st;
    pthread_rwlock_rdlock(&s->map_lock); /* the map must not move while its meta pages are read */
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    pthread_rwlock_unlock(&s->map_lock);
    out->map_size = info.me_mapsize;
    out->map_used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    pthread_rwlock_rdlock(&s->map_lock);
    out->room = store_room(s);
    pthread_rwlock_unlock(&s->map_lock);
    out->refused_units = atomic_load(&s->refused_units);
    if (s->cluster) store_cluster_stats(s, out);
}

int sr_store_full(sr_store *s) {
    pthread_rwlock_rdlock(&s->map_lock);
    uint64_t room = store_room(s);
    pthread_rwlock_unlock(&s->map_lock);
    if (s->reserve && room < s->reserve) return 1;
    if (!atomic_load(&s->refused)) return 0;
    /* Refused at the last try; space freed since then (more than a little) ends the state now,
     * otherwise the next write that lands does. */
    return room <= atomic_load(&s->room_at_refusal) + ((uint64_t)1 << 20);
}

int64_t sr_store_queue_depth(sr_store *s) {
    int code = store_read_begin(s);
    if (code) return code;
    MDB_stat st;
    int rc = mdb_stat(s->read_txn, s->dbi[STORE_DB_QUEUE], &st);
    store_read_end(s);
    return rc ? store_error(rc, "stat") : (int64_t)st.ms_entries;
}

int sr_store_idempotency_get(sr_store *s, const char *key, int64_t now_ms, char id_out[SR_ID_LEN + 1],
                             uint64_t *body_hash) {
    size_t len = key ? strlen(key) : 0;
    if (len == 0 || len > s->max_key) return SR_E_NOTFOUND;
    int code = store_read_begin(s);
    if (code) return code;
    MDB_val k = {len, (void *)key}, v;
    int rc = mdb_get(s->read_txn, s->dbi[STORE_DB_IDEMPOTENCY], &k, &v);
    code = SR_E_NOTFOUND;
    if (rc == 0 && v.mv_size == STORE_IDEM_VALUE_LEN) {
        const unsigned char *p = v.mv_data;
        if ((int64_t)store_get_be64(p + SR_ID_LEN + 8) + STORE_IDEM_TTL_MS > now_ms) {
            memcpy(id_out, p, SR_ID_LEN);
            id_out[SR_ID_LEN] = '\0';
            if (body_hash) *body_hash = store_get_be64(p + SR_ID_LEN);
            code = 0;
        }
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        code = store_error(rc, "idempotency get");
    }
    store_read_end(s);
    return code;
}

/* The id prefix of a time: its 10 Crockford base32 digits, as sr_id_new writes them. Every id made in
 * that millisecond or later sorts at or after it. */
static void store_id_time_prefix(int64_t ms, char out[10]) {
    static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    uint64_t t = ms < 0 ? 0 : (uint64_t)ms;
    for (int i = 9; i >= 0; i--, t >>= 5) out[i] = crockford[t & 31];
}

/* Positions cur on the last key that sorts before start (start_len 0: the last key). */
static int store_cursor_before(MDB_cursor *cur, const void *start, size_t start_len, MDB_val *k, MDB_val *v) {
    if (start_len == 0) return mdb_cursor_get(cur, k, v, MDB_LAST);
    k->mv_size = start_len;
    k->mv_data = (void *)start;
    int rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND) return mdb_cursor_get(cur, k, v, MDB_LAST);
    return rc ? rc : mdb_cursor_get(cur, k, v, MDB_PREV);
}

/* The message scans: up to max messages in id (creation time) order from
 * the key start (start_len 0: the first; skip_start: not the key itself), or
 * newest first (back) from the last key before start (start_len 0: the newest)
 * until one created before stop_before_ms (0: no bound), which cb does not see
 * (back | STORE_SCAN_COUNT_END: it is counted, and noted in *last, as read).
 * *last, when asked, gets the id of the last one visited. */
#define STORE_SCAN_COUNT_END 2
static int store_scan_messages(sr_store *s, const char *start, size_t start_len, int skip_start, int back,
                               int64_t stop_before_ms, int max, sr_store_message_cb cb, void *ud,
                               char last[SR_ID_LEN + 1]) {
    MDB_cursor *cur = NULL;
    int n = 0, rc;
    if (max <= 0) return 0;
    int code = store_read_begin(s);
    if (code) return code;
    rc = mdb_cursor_open(s->read_txn, s->dbi[STORE_DB_MESSAGES], &cur);
    if (rc) goto fail;
    MDB_val k = {start_len, (void *)start}, v;
    MDB_cursor_op step = back ? MDB_PREV : MDB_NEXT;
    rc = back ? store_cursor_before(cur, start, start_len, &k, &v)
              : mdb_cursor_get(cur, &k, &v, start_len ? MDB_SET_RANGE : MDB_FIRST);
    for (; rc == 0 && n < max; rc = mdb_cursor_get(cur, &k, &v, step)) {
        if (skip_start && k.mv_size == start_len && memcmp(k.mv_data, start, start_len) == 0) continue;
        sr_message m;
        if (sr_message_decode(v.mv_data, v.mv_size, &m) < 0) {
            sr_warn("store: corrupt message record skipped in a scan");
            continue;
        }
        int ends = back && m.created_at_ms < stop_before_ms;
        if (ends && !(back & STORE_SCAN_COUNT_END)) {
            sr_message_free(&m);
            break;
        }
        n++;
        if (last) {
            size_t len = k.mv_size < SR_ID_LEN ? k.mv_size : SR_ID_LEN;
            memcpy(last, k.mv_data, len);
            last[len] = '\0';
        }
        int stop = ends || cb(&m, ud) != 0;
        sr_message_free(&m);
        if (stop) break;
    }
    if (rc == MDB_NOTFOUND) rc = 0;
fail:
    if (cur) mdb_cursor_close(cur);
    store_read_end(s);
    return rc ? store_error(rc, "message scan") : n;
}

int sr_store_scan_messages_back(sr_store *s, int64_t since_ms, int max, sr_store_message_cb cb, void *ud) {
    return store_scan_messages(s, NULL, 0, 0, 1 | STORE_SCAN_COUNT_END, since_ms, max, cb, ud, NULL);
}

int sr_store_scan_messages(sr_store *s, const char *after, int64_t since_ms, int max, sr_store_message_cb cb, void *ud,
                           char last[SR_ID_LEN + 1]) {
    /* Ids begin with their creation time, so the first id of since_ms is where the scan starts. */
    char start[SR_ID_LEN + 1];
    size_t start_len = 0;
    int skip_start = 0;
    if (after && after[0]) {
        start_len = strnlen(after, SR_ID_LEN);
        memcpy(start, after, start_len);
        skip_start = 1;
    } else if (since_ms > 0) {
        /* Not sr_id_new itself, which never goes back in time. */
        store_id_time_prefix(since_ms, start);
        start_len = 10;
    }
    return store_scan_messages(s, start, start_len, skip_start, 0, 0, max, cb, ud, last);
}

int sr_store_scan_messages_before(sr_store *s, const char *before, int64_t since_ms, int max, sr_store_message_cb cb,
                                  void *ud, char last[SR_ID_LEN + 1]) {
    return store_scan_messages(s, before, before ? strnlen(before, SR_ID_LEN) : 0, 0, 1, since_ms, max, cb, ud, last);
}

int sr_store_list_status_back(sr_store *s, sr_status st, const char *before_id, char (*ids)[SR_ID_LEN + 1], int max) {
    return store_list_status(s, st, before_id, 1, ids, max);
}

int64_t sr_store_count_messages(sr_store *s, int64_t since_ms, int64_t until_ms, int64_t max) {
    MDB_cursor *cur = NULL;
    int64_t n = 0;
    int rc;
    char from[10], to[10];
    store_id_time_prefix(since_ms, from);
    store_id_time_prefix(until_ms, to);
    int code = store_read_begin(s);
    if (code) return code;
    rc = mdb_cursor_open(s->read_txn, s->dbi[STORE_DB_MESSAGES], &cur);
    if (rc) goto fail;
    MDB_val k = {sizeof from, from}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && n < max;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t cmp_len = k.mv_size < sizeof to ? k.mv_size : sizeof to;
        if (memcmp(k.mv_data, to, cmp_len) >= 0) break;
        n++;
    }
    if (rc == MDB_NOTFOUND) rc = 0;
fail:
    if (cur) mdb_cursor_close(cur);
    store_read_end(s);
    return rc ? store_error(rc, "message count") : n;
}

/* sr_store_scan (from the first key after `from`) and sr_store_scan_back (from the last key before it). */
static int store_scan_entries(sr_store *s, sr_store_space sp, const char *from, size_t from_len, int back, int max,
                              sr_store_scan_cb cb, void *ud) {
    MDB_cursor *cur = NULL;
    int n = 0, rc;
    if (max <= 0) return 0;
    int code = store_read_begin(s);
    if (code) return code;
    rc = mdb_cursor_open(s->read_txn, s->dbi[store_space(sp)], &cur);
    if (rc) goto fail;
    if (!from) from_len = 0;
    MDB_val k = {from_len, (void *)from}, v;
    if (back) {
        rc = store_cursor_before(cur, from, from_len, &k, &v);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, from_len ? MDB_SET_RANGE : MDB_FIRST);
        if (rc == 0 && from_len && k.mv_size == from_len && memcmp(k.mv_data, from, from_len) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    for (; rc == 0 && n < max; rc = mdb_cursor_get(cur, &k, &v, back ? MDB_PREV : MDB_NEXT)) {
        if (v.mv_size < 8) continue;
        n++;
        if (cb(k.mv_data, k.mv_size, (const char *)v.mv_data + 8, v.mv_size - 8, (int64_t)store_get_be64(v.mv_data),
               ud) != 0)
            break;
    }
    if (rc == MDB_NOTFOUND) rc = 0;
fail:
    if (cur) mdb_cursor_close(cur);
    store_read_end(s);
    return rc ? store_error(rc, "scan") : n;
}

int sr_store_scan(sr_store *s, sr_store_space sp, const char *after, size_t after_len, int max, sr_store_scan_cb cb,
                  void *ud) {
    return store_scan_entries(s, sp, after, after_len, 0, max, cb, ud);
}

int sr_store_scan_back(sr_store *s, sr_store_space sp, const char *before, size_t before_len, int max,
                       sr_store_scan_cb cb, void *ud) {
    return store_scan_entries(s, sp, before, before_len, 1, max, cb, ud);
}
