/* Fuzz target for the store's start-up path in src/store/store.c: sr_store_open on
 * an arbitrary data.mdb, then the reads a starting daemon makes (messages by
 * status, each message, the queue, expiry, watch, the owed space) and its first
 * writes (a new message, a status update, a kv record: LMDB's write path, its
 * free-page list included, can assert on damage its reads pass). store.h
 * promises that a damaged file fails the open with SR_E_CORRUPT (or SR_E_IO;
 * SR_E_INVALID for a schema version from the future)
 * and never a crash: the checks before LMDB maps the file, the guarded walk
 * after, and the reads and writes of a store that passed them must hold on
 * any bytes (a write may fail, with an error).
 * Any other open result aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "core/log.h"
#include "model/message.h"
#include "store/store.h"

/* libFuzzer's entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[64];

static int fuzz_scan(const char *key, size_t klen, const char *val, size_t vlen, int64_t exp, void *ud) {
    size_t *total = ud;
    for (size_t i = 0; i < vlen; i++) *total += (unsigned char)val[i]; /* touch every byte */
    for (size_t i = 0; i < klen; i++) *total += (unsigned char)key[i];
    return 0;
}

static void fuzz_reads(sr_store *s) {
    static char ids[256][SR_ID_LEN + 1];
    for (int st = 0; st < SR_ST_COUNT; st++) {
        int n = sr_store_list_status(s, (sr_status)st, NULL, ids, 256);
        for (int i = 0; i < n; i++) {
            sr_message m;
            if (sr_store_get_message(s, ids[i], &m) == 0) {
                sr_buf api;
                sr_buf_init(&api);
                sr_message_to_api_json(&m, &api);
                sr_buf_free(&api);
            }
            sr_message_free(&m);
        }
    }
    sr_queue_entry q[256];
    sr_store_queue_due(s, INT64_MAX / 2, q, 256);
    sr_store_expired(s, INT64_MAX / 2, ids, 256);
    int64_t next;
    sr_store_watch_due(s, INT64_MAX / 2, ids, 256, &next);
    size_t total = 0;
    sr_store_scan(s, SR_SPACE_OWED, NULL, 0, 1000, fuzz_scan, &total);
    sr_store_scan(s, SR_SPACE_PARKED, NULL, 0, 1000, fuzz_scan, &total);
    sr_store_queue_depth(s);
}

/* A message's status moves on (queued → sending): an update of the records a daemon rewrites most. */
static int fuzz_to_sending(sr_message *m, void *arg) {
    (void)arg;
    if (m->status != SR_ST_QUEUED) return SR_E_STATE;
    sr_message_set_status(m, SR_ST_SENDING, 1);
    return 0;
}

/* The first writes a starting daemon makes: a new message, an update of an existing one, a kv record. The
 * unit may fail (a damaged record, a full map); it must not crash. */
static void fuzz_writes(sr_store *s, uv_loop_t *loop) {
    char ids[1][SR_ID_LEN + 1];
    sr_store_txn *t = sr_store_txn_new(s);
    sr_message m;
    sr_message_init(&m);
    sr_message_set_str(&m.to, "+84912345678");
    sr_message_set_str(&m.text, "Your code is 1234");
    m.created_at_ms = 1;
    m.validity_s = 3600;
    m.expires_at_ms = 3600 * 1000;
    sr_message_set_status(&m, SR_ST_QUEUED, 1);
    sr_store_txn_put_message(t, &m, "fuzz-key", 1);
    sr_message_free(&m);
    if (sr_store_list_status(s, SR_ST_QUEUED, NULL, ids, 1) == 1)
        sr_store_txn_update_message(t, ids[0], fuzz_to_sending, NULL);
    sr_store_txn_kv_set(t, "fuzz", 4, "value", 5, 0);
    sr_store_txn_submit(t, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fuzz_dir[0]) {
        strcpy(fuzz_dir, "/tmp/sr_fuzz_store_XXXXXX");
        if (!mkdtemp(fuzz_dir)) abort();
        sr_log_set_level(SR_LOG_ERROR);
    }
    char path[128];
    /* A fresh lock file each time: a walk cut short by a signal leaves its reader slot behind. */
    snprintf(path, sizeof path, "%s/lock.mdb", fuzz_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/data.mdb", fuzz_dir);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);

    uv_loop_t loop;
    uv_loop_init(&loop);
    sr_store_options opt = {.dir = fuzz_dir, .map_size = 1 << 20, .map_size_max = 1 << 20, .no_sync = 1};
    sr_store *s = NULL;
    char err[1024];
    int rc = sr_store_open(&s, &loop, &opt, err, sizeof err);
    if (rc == 0) {
        fuzz_reads(s);
        fuzz_writes(s, &loop);
        sr_store_close(s);
    } else if (rc != SR_E_CORRUPT && rc != SR_E_IO && rc != SR_E_INVALID) { /* INVALID: a newer schema */
        fprintf(stderr, "unexpected open result %d: %s\n", rc, err);
        abort();
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}
