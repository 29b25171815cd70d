/* store: all durable state, in one LMDB environment under the data directory.
 * The only unit that includes lmdb.h.
 *
 * Named databases: messages (id → record), queue (due order → id), expiry
 * (expires_at → id), by_status (status,id), provider_ids (provider,id → message
 * id), idempotency (key → id, body hash, time), kv (key → value, expiry),
 * dedup (key → expiry), optouts (number → time), meta (schema version),
 * owed (message id/history number → status: sms.on_status not finished).
 *
 * Writes: the loop thread groups mutations into sr_store_txn units (each
 * committed atomically, all or nothing) and submits them. All units submitted
 * during one loop pass go to a writer thread as one batch, which applies them
 * in one LMDB write transaction (a unit that fails part way is dropped and the
 * batch redone without it) and commits it with a full sync (group commit). Only then does each unit's done callback run
 * on the loop, so an answer sent from that callback promises durability. The
 * loop never waits on fsync. While one batch commits, the next one collects.
 *
 * Reads: sr_store_get_* run on the loop thread in short read transactions and
 * see committed state only.
 *
 * Map size: starts at map_size and doubles on MDB_MAP_FULL up to
 * map_size_max; when it cannot grow (or the disk is full: ENOSPC, EDQUOT from
 * a write or a sync), units that add new work fail with SR_E_FULL (answered
 * 507) and nothing committed is touched. Units that only update or delete
 * still apply when they fit. With a reserve, units that add data are refused
 * as soon as the room left (the free space of the file system, and of the map
 * up to map_size_max) falls below it, so that recording what happened to
 * messages already accepted never competes with new ones. sr_store_full says
 * whether the store is in that state.
 *
 * Open: takes an exclusive lock on DIR/smsrules.lock (a second process on the
 * same directory gets SR_E_LOCKED and the holder's pid in err), then checks
 * data.mdb before LMDB maps it (both meta pages, the file size against the
 * newest meta's last page: a truncated file is never mapped past its end) and
 * after (a walk of every database: key order, entries inside the file, free
 * list), with SIGSEGV / SIGBUS / SIGABRT caught during that walk. A damaged
 * file fails with SR_E_CORRUPT and err says what is wrong and how to restore.
 *
 * Indexes are derived from the message by the store itself on every put or
 * update: a message is in `queue` (key: 3-priority, due ms, id) while queued,
 * in `expiry` while queued or sending, in `by_status` always, in `watch`
 * (watch time, id) while sent with a watch time, and every attempt with a
 * provider id is in `provider_ids`. */
#ifndef SR_STORE_H
#define SR_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "model/message.h"

/* Error codes (negative, errno style). */
#define SR_E_NOTFOUND (-2)
#define SR_E_CORRUPT (-3)
#define SR_E_FULL (-4)     /* map cannot grow or disk full: HTTP 507 */
#define SR_E_IO (-5)       /* any other LMDB or system failure */
#define SR_E_CONFLICT (-6) /* idempotency key reused with a different body */
#define SR_E_EXISTS (-7)   /* idempotency key already used: the existing id is returned */
#define SR_E_STATE (-8)    /* an update's mutator refused the transition */
#define SR_E_INVALID (-9)  /* a bad argument (empty or too long key, bad id) or a kv_incr on a non-integer */
#define SR_E_LOCKED (-10)  /* sr_store_open: another process holds the data directory */
/* Cluster mode: the stream did not store the unit (no quorum, no connection) within the publish
 * budget: HTTP 503. It may still land later (an acknowledgement lost on the way): resend with the
 * same idempotency key. */
#define SR_E_UNAVAILABLE (-12)

const char *sr_store_strerror(int code);
/* The LMDB version the store was built with, "MAJOR.MINOR.PATCH" (for smsrules_build_info). */
const char *sr_store_lmdb_version(void);

typedef struct sr_store sr_store;
typedef struct sr_store_txn sr_store_txn;

typedef struct sr_store_options {
    const char *dir;     /* created when missing */
    size_t map_size;     /* bytes; 0: 256 MiB */
    size_t map_size_max; /* bytes; 0: 64 GiB */
    int no_sync;         /* 1: commit without fsync (benchmarks of other parts only; never by default) */
    size_t reserve;      /* bytes of room kept for updates of existing messages; 0: none */
    /* 1: a reader beside whoever owns the directory (`smsrules models fit` on a running daemon's
     * data): no lock taken, nothing created or written, no writer thread and no loop handles (loop
     * may be NULL; never submit a unit to it); LMDB lets it read while the daemon writes. The
     * directory and its store must exist. */
    int read_only;
    /* Cluster mode (docs/cluster.md): NULL or "" runs the single-node store. Otherwise the NATS
     * servers ("nats://HOST:PORT[,nats://HOST:PORT...]") whose JetStream holds the authoritative
     * state: every unit is published to a replicated stream before its done callback runs, and
     * the LMDB environment under dir is this node's replica of that stream (rebuilt from it). */
    const char *cluster;
    const char *cluster_stream; /* the stream's name (subjects "<name>.units"); NULL: "SMSRULES" */
    int cluster_replicas;       /* the stream's replication factor when this node creates it; 0: 3 */
    const char *node;           /* this node's name, unique in the cluster; NULL: "<hostname>-<pid>" */
    int node_timeout_ms;        /* a node not heard from for this long is gone; 0: SR_STORE_NODE_TIMEOUT_MS */
    int64_t retention_s;        /* the stream keeps units this long (JetStream max age); 0: 86400 */
} sr_store_options;

/* Opens (creating) the environment, checks the schema version, clears stale
 * readers, starts the writer thread. Returns 0 or a negative code with a
 * message in err. Main thread only. */
int sr_store_open(sr_store **out, uv_loop_t *loop, const sr_store_options *opt, char *err, size_t errlen);
/* Commits what is pending (waiting for it), stops the writer, closes. Done
 * callbacks of pending units run before it returns (units they submit are
 * committed too). Not from a done callback. The store's loop handles close
 * on the loop's next pass. */
void sr_store_close(sr_store *s);

/* ---- writes ---- */

/* A mutator runs on the writer thread inside the unit's transaction, on the
 * decoded current message. It returns 0 to write the (possibly changed)
 * message back, SR_STORE_UNCHANGED to leave it untouched (the unit goes on), SR_E_STATE to leave it
 * untouched and fail the unit. It must
 * touch nothing but the message and its own arg (no Lua, no loop state).
 * It may run more than once for one unit (the batch is redone after the map
 * grew), each time on a fresh copy of the stored message; the id cannot be
 * changed. */
typedef int (*sr_message_mutator)(sr_message *m, void *arg);
/* A mutator's answer for "nothing to change": the unit goes on, nothing is written. */
#define SR_STORE_UNCHANGED 1

typedef void (*sr_store_done_cb)(sr_store_txn *t, void *ud);

/* A new unit of mutations, committed all or nothing. */
sr_store_txn *sr_store_txn_new(sr_store *s);
/* Each add returns the index of the mutation's result slot (0, 1, ...). */
/* Creates a message. Takes ownership of m's contents: they move into the unit
 * and *m is left empty (as after sr_message_init), so m may live on the stack;
 * the store frees them. An empty m->id gets a new one (sr_id_new); an invalid
 * one fails with SR_E_INVALID. With an idempotency key (NULL or "": none):
 * when the key was used in the 24 h before m->created_at_ms (or now when 0)
 * the result is SR_E_EXISTS with the existing id (same body_hash) or
 * SR_E_CONFLICT (different body_hash), and nothing is written. A message with
 * expires_at_ms 0 never expires (it is kept out of the expiry index). */
int sr_store_txn_put_message(sr_store_txn *t, sr_message *m, const char *idem_key, uint64_t body_hash);
/* Updates a message through mutator(m, arg); arg is borrowed until done. The
 * result slot then holds the message as written (sr_store_txn_message). */
int sr_store_txn_update_message(sr_store_txn *t, const char *id, sr_message_mutator fn, void *arg);
int sr_store_txn_kv_set(sr_store_txn *t, const char *key, size_t klen, const char *val, size_t vlen,
                        int64_t expires_at_ms);
int sr_store_txn_kv_del(sr_store_txn *t, const char *key, size_t klen);
/* Adds delta to an integer value (missing or expired counts as 0); result: the new value.
 * The value is kept as decimal text (what kv_get returns). expires_at_ms applies when the key
 * is created (missing or expired); a live key keeps its expiry. A non-integer value or an
 * overflow fails with SR_E_INVALID. Expiry is judged on the wall clock (sr_now_ms). */
int sr_store_txn_kv_incr(sr_store_txn *t, const char *key, size_t klen, int64_t delta, int64_t expires_at_ms);
/* Takes one event of a GCRA rate limit (core/gcra.h: interval T and tolerance tau, µs) kept under the kv
 * key as its TAT in µs (decimal text, as sms.ratelimit stores it), at the unit's time: result (the
 * slot's int) 0 when the event conforms (the TAT moved on, kept until it is past, at least tau + T), else
 * the µs until one would (nothing written). Decided where units are applied, in their order, so in
 * cluster mode one key's limit holds across the nodes exactly. */
int sr_store_txn_gcra(sr_store_txn *t, const char *key, size_t klen, int64_t interval_us, int64_t tolerance_us);
int sr_store_txn_optout(sr_store_txn *t, const char *number, int opted_out);
/* Records a dedup key until expires_at_ms; result SR_E_EXISTS when it was already there (and not expired). */
int sr_store_txn_dedup(sr_store_txn *t, const char *key, size_t klen, int64_t expires_at_ms);
/* 1 when a dedup key is recorded (committed, not expired at now_ms), 0 when not, or a negative code. Loop
 * thread. */
int sr_store_dedup_seen(sr_store *s, const char *key, size_t klen, int64_t now_ms);

/* Record spaces: key → bytes with an optional expiry (0: none), like kv.
 * SR_SPACE_PARKED holds delivery reports that arrived before their message's
 * provider id was known (never swept: the report engine counts them as
 * orphaned); SR_SPACE_INBOUND holds inbound SMS by id (swept when expired); SR_SPACE_OWED holds the
 * status changes whose sms.on_status has not finished (see "durable status subscribers" below). */
typedef enum { SR_SPACE_KV = 0, SR_SPACE_PARKED, SR_SPACE_INBOUND, SR_SPACE_OWED } sr_store_space;
int sr_store_txn_set(sr_store_txn *t, sr_store_space sp, const char *key, size_t klen, const char *val, size_t vlen,
                     int64_t expires_at_ms);
/* Appends val to the entry's bytes (a missing or expired entry starts with val and expires_at_ms; a
 * live one lives until the later of its expiry and expires_at_ms). */
int sr_store_txn_append(sr_store_txn *t, sr_store_space sp, const char *key, size_t klen, const char *val, size_t vlen,
                        int64_t expires_at_ms);
/* Removes prefix from the front of the entry's bytes when they start with it (the entry goes when nothing
 * is left; what was appended after it stays); otherwise changes nothing. For entries read, then handled,
 * while appends go on: the reader consumes exactly what it read. */
int sr_store_txn_consume(sr_store_txn *t, sr_store_space sp, const char *key, size_t klen, const char *prefix,
                         size_t plen);
int sr_store_txn_del(sr_store_txn *t, sr_store_space sp, const char *key, size_t klen);
/* Deletes the entry, and fails the unit with SR_E_NOTFOUND when it is not there: whoever takes a
 * record (a parked report) applies what it holds, and a second taker (another node in cluster mode,
 * or the expiry) gets nothing. */
int sr_store_txn_take(sr_store_txn *t, sr_store_space sp, const char *key, size_t klen);
/* Deletes the entry if it is expired at now_ms when the unit runs (not if it was written again since). */
int sr_store_txn_del_expired(sr_store_txn *t, sr_store_space sp, const char *key, size_t klen, int64_t now_ms);

/* "ID/N" (N: the message's history count after the change), the SR_SPACE_OWED key of a status change
 * whose durable subscriber has not finished with it; returns the length (0 when out is too small). */
size_t sr_store_owed_key(const char *id, int64_t n, char *out, size_t outlen);

/* ---- what committed: announcements ----
 *
 * The store announces what a committed unit did, so that nobody has to remember to tell the
 * parts that act on it: the scheduler subscribes to SR_STORE_EV_QUEUE, the reports to
 * SR_STORE_EV_PROVIDER_ID, the status handlers (sms.on_status) to SR_STORE_EV_STATUS.
 * Announcements run on the loop thread after the unit's batch reached the disk, right after the
 * unit's own done callback, in submit order; a unit that failed announces nothing. They allocate
 * nothing: the event and the message are borrowed for the call.
 *
 *  - SR_STORE_EV_STATUS: a message update set a new status (its history grew) that is in the
 *    subscriber's status_mask; once per such update.
 *  - SR_STORE_EV_QUEUE: the unit left at least one message queued (a put or an update); once per
 *    unit, msg: the first such message.
 *  - SR_STORE_EV_PROVIDER_ID: a message update indexed a provider id the message did not have
 *    (a send answer recorded); once per such update.
 *
 * Cluster mode: units of other nodes, once this node's replica applied them, are announced too,
 * with ev->remote set: the queue and provider ids so that this node's scheduler and reports act on
 * them, status changes so that this node's statistics count them (a status handler runs only on
 * the node that made the change: it ignores remote ones).
 *
 * Durable status subscribers: while a SR_STORE_EV_STATUS subscriber has durable set, every unit
 * submitted writes, in the same commit as each status change in its status_mask, the
 * SR_SPACE_OWED record sr_store_owed_key(id, n) -> the status name, and announces n in
 * ev->owed. The subscriber deletes the record once it is done with the change (in the unit of
 * its own effects), so that a crash in between leaves it for the next start: at least once. */
typedef enum {
    SR_STORE_EV_STATUS = 0,
    SR_STORE_EV_QUEUE,
    SR_STORE_EV_PROVIDER_ID,
    SR_STORE_EV_KINDS
} sr_store_event_kind;

typedef struct sr_store_event {
    sr_store_event_kind kind;
    const sr_message *msg; /* as written (borrowed for the call) */
    int64_t owed;          /* SR_STORE_EV_STATUS: the owed record's history number, 0 when none was written */
    int remote;            /* cluster mode: another node made the change (its handlers ran there) */
} sr_store_event;

typedef void (*sr_store_listener)(const sr_store_event *ev, void *ud);

/* A subscription; the subscriber owns it (it may live in the subscriber's own struct) and may change
 * status_mask and durable at any time on the loop thread: units submitted from then on use them. */
typedef struct sr_store_subscriber {
    sr_store_event_kind kind;
    unsigned status_mask; /* SR_STORE_EV_STATUS: the statuses announced (bits 1 << sr_status) */
    int durable;          /* SR_STORE_EV_STATUS: write the owed record with each change in status_mask */
    sr_store_listener fn;
    void *ud;
    struct sr_store_subscriber *next; /* the store's list */
} sr_store_subscriber;

/* Adds sub (borrowed until sr_store_unsubscribe or the store closes). Loop thread. */
void sr_store_subscribe(sr_store *s, sr_store_subscriber *sub);
/* Removes sub; nothing is announced to it afterwards (a subscriber that goes away first does this). */
void sr_store_unsubscribe(sr_store *s, sr_store_subscriber *sub);

/* Submits the unit; takes ownership of t. cb runs on the loop after the batch
 * holding it committed to disk (or failed), then t is freed. cb may be NULL.
 * Callbacks run in submit order. */
void sr_store_txn_submit(sr_store_txn *t, sr_store_done_cb cb, void *ud);
/* Frees a unit that was never submitted. */
void sr_store_txn_discard(sr_store_txn *t);

/* In the done callback: the unit's status (0, SR_E_FULL, SR_E_IO, or the first
 * failing mutation's code, in which case nothing of the unit was written).
 * Check it first: when it is not 0 only the failing mutation's result (or, for
 * SR_E_FULL / SR_E_IO of the whole batch, every result) carries the code. */
int sr_store_txn_status(const sr_store_txn *t);
/* A mutation's result: 0 or a negative code. */
int sr_store_txn_result(const sr_store_txn *t, int slot);
/* The message id of a put (the existing one on SR_E_EXISTS) or update. */
const char *sr_store_txn_id(const sr_store_txn *t, int slot);
/* The message as written by a put/update (borrowed until the callback returns). */
const sr_message *sr_store_txn_message(const sr_store_txn *t, int slot);
/* The value of a kv_incr. */
int64_t sr_store_txn_int(const sr_store_txn *t, int slot);

/* ---- reads (loop thread; committed state) ---- */

int sr_store_get_message(sr_store *s, const char *id, sr_message *out); /* out initialised here */
/* 0 and the value in out (its contents replaced), or SR_E_NOTFOUND when missing or expired. */
int sr_store_kv_get(sr_store *s, const char *key, size_t klen, int64_t now_ms, sr_buf *out);
/* A record of a space: 0 with its bytes in out (and its expiry, 0: none), or SR_E_NOTFOUND. */
int sr_store_get(sr_store *s, sr_store_space sp, const char *key, size_t klen, int64_t now_ms, sr_buf *out,
                 int64_t *expires_at_ms);
/* Calls cb for up to max entries of a space in key order, starting after the key `after` (NULL: from
 * the first); expired entries included. cb runs inside a read transaction: it copies what it keeps and
 * touches no store; a non-zero return stops the scan. Returns how many it visited, or a negative code. */
typedef int (*sr_store_scan_cb)(const char *key, size_t klen, const char *val, size_t vlen, int64_t expires_at_ms,
                                void *ud);
int sr_store_scan(sr_store *s, sr_store_space sp, const char *after, size_t after_len, int max, sr_store_scan_cb cb,
                  void *ud);
/* Like sr_store_scan, in reverse key order: entries whose keys sort before `before` (NULL or
 * before_len 0: from the last). */
int sr_store_scan_back(sr_store *s, sr_store_space sp, const char *before, size_t before_len, int max,
                       sr_store_scan_cb cb, void *ud);
/* Up to max ids of sent messages whose watch time (m->watch_at_ms: a status poll or a report
 * deadline) is at or before now_ms, earliest first. *next_ms (may be NULL) gets the next watch time
 * after those, 0 when none. */
int sr_store_watch_due(sr_store *s, int64_t now_ms, char (*ids)[SR_ID_LEN + 1], int max, int64_t *next_ms);
int sr_store_is_optout(sr_store *s, const char *number); /* 1, 0 or a negative code */
/* Calls cb for up to max messages in id (creation time) order, starting after the id `after` (NULL or
 * "": from the first id at or after since_ms, 0: from the start). m is decoded for the call only
 * (borrowed; cb copies what it keeps, touches no store); corrupt records are skipped with a warning.
 * A non-zero return stops the scan. Returns how many it visited, or a negative code; *last gets the
 * id of the last one visited, to continue from. */
typedef int (*sr_store_message_cb)(const sr_message *m, void *ud);
int sr_store_scan_messages(sr_store *s, const char *after, int64_t since_ms, int max, sr_store_message_cb cb, void *ud,
                           char last[SR_ID_LEN + 1]);
/* Provider ids are indexed and looked up normalised: trimmed, ASCII
 * lower-case, without leading zeros ("00AbC1" and "abc1" are one id), since
 * providers' send answers and delivery reports disagree on case and zeros.
 * Writes at most outlen-1 bytes plus NUL; returns the length. */
size_t sr_store_normalize_provider_id(const char *in, char *out, size_t outlen);
int sr_store_find_provider_id(sr_store *s, const char *provider, const char *provider_id, char id_out[SR_ID_LEN + 1]);

/* Reads messages newest first (id order: ids sort by creation time) until one created before since_ms
 * or max read, calling cb with each (borrowed for the call; cb touches no store, a non-zero return
 * stops). Runs in one read transaction on the loop: for bounded scans at start. Returns how many it
 * read, or a negative code. */
int sr_store_scan_messages_back(sr_store *s, int64_t since_ms, int max, sr_store_message_cb cb, void *ud);

/* Newest first: calls cb for up to max messages whose ids sort before `before` (NULL or "": from the
 * newest), stopping at the first created before since_ms (0: no bound). Same contract as
 * sr_store_scan_messages otherwise (*last: the last id visited, to continue from). For paged searches. */
int sr_store_scan_messages_before(sr_store *s, const char *before, int64_t since_ms, int max, sr_store_message_cb cb,
                                  void *ud, char last[SR_ID_LEN + 1]);
/* Like sr_store_list_status, newest first: up to max ids with this status that sort before before_id
 * (NULL: from the newest). */
int sr_store_list_status_back(sr_store *s, sr_status st, const char *before_id, char (*ids)[SR_ID_LEN + 1], int max);
/* How many messages were created in [since_ms, until_ms), counting at most max (keys only, nothing
 * decoded: cheap enough for a periodic sample). Returns the count or a negative code. */
int64_t sr_store_count_messages(sr_store *s, int64_t since_ms, int64_t until_ms, int64_t max);

typedef struct sr_queue_entry {
    char id[SR_ID_LEN + 1];
    int priority;
    int64_t due_ms;
} sr_queue_entry;
/* Up to max queued messages due at or before now_ms, highest priority first,
 * then earliest due. Returns the count or a negative code. */
int sr_store_queue_due(sr_store *s, int64_t now_ms, sr_queue_entry *out, int max);
/* The message id (and body hash) an idempotency key was used for in the
 * 24 h before now_ms: 0, or SR_E_NOTFOUND. */
int sr_store_idempotency_get(sr_store *s, const char *key, int64_t now_ms, char id_out[SR_ID_LEN + 1],
                             uint64_t *body_hash);
/* How many messages are queued (due or not). */
int64_t sr_store_queue_depth(sr_store *s);
/* Up to max ids of queued or sending messages whose validity ended before now_ms. */
int sr_store_expired(sr_store *s, int64_t now_ms, char (*ids)[SR_ID_LEN + 1], int max);
/* Up to max ids with this status, in id (time) order, after after_id (NULL: from the start). */
int sr_store_list_status(sr_store *s, sr_status st, const char *after_id, char (*ids)[SR_ID_LEN + 1], int max);
/* Drops expired kv, dedup and idempotency entries (idempotency keys live 24 h);
 * returns how many it found. It scans on the loop (at most a few thousand per
 * call) and deletes through a unit of its own, so the space is freed when that
 * unit commits; while it is in flight, further calls return 0. */
int sr_store_sweep_ttl(sr_store *s, int64_t now_ms);

/* ---- cluster mode (docs/cluster.md) ---- */

/* 1 in cluster mode: other nodes change the state too, so whoever takes over work left by a
 * node that is gone asks sr_store_orphaned now and then, not only at start. */
int sr_store_clustered(const sr_store *s);
/* Cluster mode: the nodes alive now (heard within the node timeout), this one included; 1 on a
 * single node. Each takes its share of a provider's rate. */
int sr_store_cluster_nodes(sr_store *s);
/* Whether this node looks after a message's timed work (status polls, report deadlines, expiry):
 * the live nodes share messages by a hash of the id, so that each is polled by one node. Always 1 on
 * a single node. While nodes come and go, a message may briefly have two such nodes or none: that
 * work is idempotent (a poll asks twice; a transition's compare makes the second a no-op). */
int sr_store_mine(sr_store *s, const char *id);
/* Work in flight whose owner is gone, so the caller takes it over (a status change's compare
 * makes sure only one node does): SR_ORPHAN_SENDING, key a message id in `sending`;
 * SR_ORPHAN_OWED, key an SR_SPACE_OWED key. Single node: always 1 (call it at start: the owner
 * was this process's predecessor). Cluster mode: 1 when the node that left it was this node's
 * predecessor (same name, earlier process) or a node not heard from for the node timeout;
 * 0 while its node lives. Loop thread. */
#define SR_ORPHAN_SENDING 's'
#define SR_ORPHAN_OWED 'o'
#define SR_ORPHAN_INBOUND 'i' /* key: an SR_SPACE_INBOUND id (its handler was waiting) */
#define SR_STORE_NODE_TIMEOUT_MS 10000
int sr_store_orphaned(sr_store *s, char kind, const char *key, size_t klen);
/* Takes over what sr_store_orphaned said is orphaned, in this unit: in cluster mode the unit fails
 * with SR_E_STATE when the owner is alive after all or another node took it over first, so that
 * exactly one node reruns the work. Single node: always succeeds. */
int sr_store_txn_take_over(sr_store_txn *t, char kind, const char *key, size_t klen);

/* 1 while the store refuses new data for lack of space: the room left is
 * below the reserve, or the last write that added data found no room (until
 * one lands or the room grows). Loop thread; a statvfs each call. */
int sr_store_full(sr_store *s);

typedef struct sr_store_stats {
    uint64_t room;          /* bytes that can still be written (file system and map), see sr_store_full */
    uint64_t refused_units; /* units refused for lack of space since open */
    uint64_t commits;
    uint64_t units;
    uint64_t map_size;
    uint64_t map_used;
    uint64_t grows;
    double last_commit_ms;
    /* cluster mode (0 on a single node) */
    uint64_t stream_seq;        /* the stream position this node's replica reached */
    uint64_t retried_units;     /* units resolved again after another node changed their message first */
    uint64_t unavailable_units; /* units the stream did not store in time (answered 503) */
    int nodes;                  /* live nodes, this one included */
} sr_store_stats;
void sr_store_get_stats(sr_store *s, sr_store_stats *out);

/* Writes a consistent, compacted copy of the store's committed state (one read transaction: what
 * was committed when it began, nothing after) to fd, a file LMDB can open as data.mdb. Free pages
 * are left out and the rest renumbered, so the copy may be much smaller than data.mdb. Works on a
 * read_only store beside a running daemon, which goes on writing meanwhile (its file may grow
 * while the copy's transaction keeps old pages alive). Blocks for the whole copy: not on the
 * daemon's loop. Returns 0, or a negative code with a message in err (SR_E_FULL when the
 * destination's disk is full). */
int sr_store_backup(sr_store *s, int fd, char *err, size_t errlen);

#endif
