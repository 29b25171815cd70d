/* store_internal: what the store's own files share (store.c: the LMDB environment, the writer,
 * the reads; store_cluster.c: cluster mode). Nothing outside src/store includes it. */
#ifndef SR_STORE_INTERNAL_H
#define SR_STORE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "core/arena.h"
#include "store/store.h"

/* 1: JSON message records; 2: binary ones (model/message_record.h), JSON ones still read. */
#define STORE_SCHEMA_VERSION 2
#define STORE_IDEM_TTL_MS (24LL * 3600 * 1000)
#define STORE_DEFAULT_MAP ((size_t)256 << 20)
#define STORE_DEFAULT_MAP_MAX ((size_t)64 << 30)
#define STORE_SWEEP_MAX 4096
#define STORE_IDEM_VALUE_LEN (SR_ID_LEN + 8 + 8) /* id, body hash, created ms */
#define STORE_QUEUE_KEY_LEN (1 + 8 + SR_ID_LEN)
#define STORE_EXPIRY_KEY_LEN (8 + SR_ID_LEN)
#define STORE_STATUS_KEY_LEN (1 + SR_ID_LEN)
#define STORE_WATCH_KEY_LEN (8 + SR_ID_LEN)
/* Group commit (store_linger): a batch waits for more units only after one of at least
 * MIN_BATCH units committed less than IDLE_NS ago, and for at most MAX_NS. */
#define STORE_LINGER_MIN_BATCH 8
#define STORE_LINGER_IDLE_NS 200000LL
#define STORE_LINGER_MAX_NS 1000000LL

enum {
    STORE_DB_MESSAGES,
    STORE_DB_QUEUE,
    STORE_DB_EXPIRY,
    STORE_DB_STATUS,
    STORE_DB_PROVIDER_IDS,
    STORE_DB_IDEMPOTENCY,
    STORE_DB_KV,
    STORE_DB_DEDUP,
    STORE_DB_OPTOUTS,
    STORE_DB_META,
    STORE_DB_WATCH,
    STORE_DB_PARKED,
    STORE_DB_INBOUND,
    STORE_DB_OWED,
    STORE_DB_OWNERS, /* cluster mode: who left a message sending ('s' id) or a handler owed ('o' key) */
    STORE_DB_COUNT
};

typedef enum {
    STORE_OP_PUT,
    STORE_OP_UPDATE,
    STORE_OP_KV_SET,
    STORE_OP_KV_DEL,
    STORE_OP_KV_INCR,
    STORE_OP_OPTOUT,
    STORE_OP_DEDUP,
    STORE_OP_SWEEP, /* internal: delete key from db `flag` if still expired at expires_at_ms */
    STORE_OP_APPEND,
    STORE_OP_CONSUME, /* remove val from the front of the entry's bytes, if they start with it */
    /* Cluster mode (store_cluster.c): an update resolved by the node that made it. Writes the
     * record bytes in val under id when the stored record's bytes still hash to body_hash (else
     * STORE_E_RETRY: someone changed it since), moving its indexes as an update does. */
    STORE_OP_REPLACE,
    STORE_OP_NOP,       /* cluster mode: an update whose mutator changed nothing (its slot stays) */
    STORE_OP_TAKE_OVER, /* sr_store_txn_take_over: key = kind + key; single node: nothing to do */
    STORE_OP_CLAIM,     /* cluster mode: a take-over resolved: the owner entry key, expected hash body_hash */
    STORE_OP_GCRA,      /* sr_store_txn_gcra: key, delta = T µs, body_hash = tau µs */
} store_op_kind;

typedef struct store_op {
    store_op_kind kind;
    int result;
    char id[SR_ID_LEN + 1];
    /* put: the message to write, owned; update: the message as written (NULL until then), a read-only
     * copy in the batch's arena (sr_store.warena, then the arena of the batch's last unit). */
    sr_message *msg;
    char *key; /* kv, dedup and sweep key, optout number, put idempotency key; owned, may be NULL */
    size_t klen;
    char *val; /* kv_set value; owned */
    size_t vlen;
    int64_t expires_at_ms; /* kv, dedup; sweep: the time judged against */
    int64_t delta;
    int64_t int_out;
    uint64_t body_hash;
    int flag; /* optout: opted out; sweep: the database */
    int db;   /* kv set/del/append: the database (STORE_DB_KV unless a record space says otherwise) */
    sr_message_mutator fn;
    void *arg;         /* borrowed */
    unsigned owe_mask; /* update: statuses (1 << status) whose handler is owed when set */
    unsigned events;   /* set by the writer: 1 << sr_store_event_kind of what this mutation did */
} store_op;

struct sr_store_txn {
    sr_store *store;
    store_op *ops; /* &first, or an array of cap */
    store_op first;
    int count;
    int cap;
    int status;
    int hard_error;    /* set by the writer: the unit broke a batch and is skipped when it is redone */
    int hard_slot;     /* > 0: only that mutation failed with hard_error (an SR_E_* code) */
    int64_t now_ms;    /* the unit's clock for expiry and times it records; 0: the writer's sr_now_ms() (cluster
                          mode sets it, so every replica applies the unit alike) */
    int applied;       /* cluster mode: this node's replica applied it (its outcome is in) */
    const char *owner; /* cluster mode: "node/incarnation" of the node that made it (while it is applied) */
    int remote;        /* cluster mode: a unit another node made, applied here; no callback, not in inflight */
    sr_arena arena;    /* the last unit of a batch: the arena of the batch's update results */
    sr_store_done_cb cb;
    void *ud;
    sr_store_txn *next;
};

typedef struct store_list {
    sr_store_txn *head;
    sr_store_txn *tail;
    size_t n; /* units in the list */
} store_list;

/* The loop handles live apart from the store: they are freed by their close
 * callbacks, after sr_store_close has freed the store itself. */
typedef struct store_handles {
    uv_prepare_t prepare;
    uv_check_t check;
    uv_async_t async;
    int open; /* handles still to close */
} store_handles;

/* The index entries of one message (writer). */
typedef struct store_keys {
    int queued;
    unsigned char queue[STORE_QUEUE_KEY_LEN];
    int expiring;
    unsigned char expiry[STORE_EXPIRY_KEY_LEN];
    unsigned char status[STORE_STATUS_KEY_LEN];
    int watching;
    unsigned char watch[STORE_WATCH_KEY_LEN];
    sr_buf providers; /* each key: 2 bytes length (big endian), provider, NUL, provider id */
} store_keys;

struct sr_store {
    uv_loop_t *loop;
    MDB_env *env;
    MDB_dbi dbi[STORE_DB_COUNT];
    size_t map_size_max;
    size_t max_key;
    size_t page_size;
    size_t reserve; /* bytes of room kept for updates: below it, units that add data fail with SR_E_FULL */
    int lock_fd;    /* holds the flock on DIR/smsrules.lock; -1 when none */
    int read_only;  /* opened with sr_store_options.read_only: no lock, no writer, no handles */
    store_handles *handles;

    /* Disk-full state, written by the writer, read by the loop (sr_store_full). */
    atomic_int refused;               /* the last batch refused units for lack of space */
    _Atomic uint64_t room_at_refusal; /* store_room when it did */
    atomic_uint_fast64_t refused_units;

    /* Loop thread only. */
    store_list pending;
    size_t inflight;   /* submitted units whose callback has not run; the async is ref'd while > 0 */
    MDB_txn *read_txn; /* kept reset between reads, renewed for each */
    int sweep_inflight;
    sr_store_subscriber *subscribers; /* what committed units are announced to */

    /* Shared with the writer, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t work_cond; /* queued or stop, for the writer */
    pthread_cond_t idle_cond; /* the writer finished a batch, for close */
    store_list queued;
    store_list done;
    int writer_busy;
    int stop;
    uint64_t commits;
    uint64_t units;
    uint64_t grows;
    double last_commit_ms;

    pthread_rwlock_t map_lock;
    pthread_t writer;
    int writer_started;
    int sync_initialised;

    /* Writer thread only (after open). */
    size_t map_size;
    sr_buf wbuf;
    store_keys wkeys_before, wkeys_after; /* an update's index keys, reused */
    sr_arena warena;                      /* the batch's update results; goes to the batch's last unit, freed with it */
    size_t last_batch;                    /* units of the writer's last batch */
    struct timespec last_done;            /* when it was committed (CLOCK_MONOTONIC) */
    int64_t last_cycle_ns;                /* how long it took, from taking it to its commit */
    int64_t wnow;                         /* the clock of the unit being applied (sr_store_txn.now_ms) */
    const char *wowner; /* cluster mode: the owner of the unit being applied (its node); NULL: single node */
    uint64_t wmeta_seq; /* cluster mode: > 0, the stream sequence the batch brings the replica to */

    struct store_cluster *cluster; /* cluster mode (store_cluster.c); NULL: a single node */
};

/* An update whose expectation failed (cluster mode): resolved again and republished. Never seen
 * outside the store. */
#define STORE_E_RETRY (-11)

/* FNV-1a over bytes, 64 bits: what a cluster REPLACE expects the stored record to hash to. */
uint64_t store_bytes_hash(const void *p, size_t len);

/* store.c, for store_cluster.c */
/* 1 when the batch committed (each unit's status says how it fared), 0 when nothing did. */
int store_commit_batch(sr_store *s, sr_store_txn *head);
int store_error(int rc, const char *what);
int store_is_code(int rc);
store_op *store_txn_add(sr_store_txn *t, store_op_kind kind, int *slot);
int store_message_ok(const sr_message *m);
void store_txn_fail(sr_store_txn *t, int code);
void store_list_append(store_list *dst, store_list *src);
int store_read_meta_u64(sr_store *s, const char *key, uint64_t *out);
/* The stored record of message id in txn (v): 0, SR_E_NOTFOUND or an LMDB code. */
int store_get_record(sr_store *s, MDB_txn *txn, const char *id, MDB_val *v);
int store_write_meta_u64(sr_store *s, const char *key, uint64_t v); /* in a transaction of its own */
int store_has_messages(sr_store *s);
#define STORE_META_CLUSTER_SEQ "cluster_seq"
#define STORE_META_CLUSTER_STREAM "cluster_stream"

/* store_cluster.c */
/* 1 when the owner ("node/incarnation", as in the owners database) is gone: this node's
 * predecessor, or a node not heard from for a while. */
int store_cluster_owner_gone(sr_store *s, const char *owner, size_t len);
int store_cluster_live_nodes(sr_store *s);
int store_cluster_mine(sr_store *s, const char *id);
void store_cluster_stats(sr_store *s, sr_store_stats *out);
int store_cluster_open(sr_store *s, const sr_store_options *opt, char *err, size_t errlen);
/* Writer thread: publishes the batch's units and waits until the replica applied them. */
void store_cluster_commit(sr_store *s, sr_store_txn *head);
void store_cluster_close(sr_store *s);

#endif
