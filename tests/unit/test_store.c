/* Tests of the LMDB store: units, group commit, indexes, TTLs, map growth,
 * corruption and reopening. Each test works in its own mkdtemp directory. */
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "model/message.h"
#include "store/store.h"
#include "unit.h"

#define HOUR_MS (3600LL * 1000)

typedef struct fx {
    char dir[64];
    uv_loop_t loop;
    sr_store *s;
} fx;

static void fx_open_store(fx *f, size_t map_size, size_t map_size_max) {
    sr_store_options opt = {.dir = f->dir, .map_size = map_size, .map_size_max = map_size_max};
    char err[256];
    int rc = sr_store_open(&f->s, &f->loop, &opt, err, sizeof err);
    if (rc != 0) UNIT_FAIL("sr_store_open: %d %s", rc, err);
}

static void fx_open(fx *f, size_t map_size, size_t map_size_max) {
    strcpy(f->dir, "/tmp/sr_store_XXXXXX");
    CHECK(mkdtemp(f->dir) != NULL);
    CHECK_INT(uv_loop_init(&f->loop), 0);
    fx_open_store(f, map_size, map_size_max);
}

/* Closes the store and lets the loop close its handles. */
static void fx_close_store(fx *f) {
    sr_store_close(f->s);
    f->s = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static int fx_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw) { return remove(path); }

static void fx_close(fx *f) {
    if (f->s) fx_close_store(f);
    CHECK_INT(uv_loop_close(&f->loop), 0);
    nftw(f->dir, fx_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* What a done callback saw. */
typedef struct result {
    int done;
    int status;
    int results[8];
    char ids[8][SR_ID_LEN + 1];
    int64_t ints[8];
    int has_msg; /* slot 0 had a message as written: its id and status */
    char msg_id[SR_ID_LEN + 1];
    int msg_status;
    int order; /* position among callbacks, from a shared counter */
} result;

static int callback_counter;

static void on_done(sr_store_txn *t, void *ud) {
    result *r = ud;
    r->done = 1;
    r->order = callback_counter++;
    r->status = sr_store_txn_status(t);
    for (int i = 0; i < 8; i++) {
        r->results[i] = sr_store_txn_result(t, i);
        const char *id = sr_store_txn_id(t, i);
        snprintf(r->ids[i], sizeof r->ids[i], "%s", id ? id : "");
        r->ints[i] = sr_store_txn_int(t, i);
    }
    const sr_message *m = sr_store_txn_message(t, 0);
    if (m) {
        r->has_msg = 1;
        strcpy(r->msg_id, m->id);
        r->msg_status = m->status;
    }
}

static void result_free(result *r) { memset(r, 0, sizeof *r); }

/* Submits t and runs the loop until its callback ran; returns the status. */
static int run_unit(fx *f, sr_store_txn *t, result *r) {
    memset(r, 0, sizeof *r);
    sr_store_txn_submit(t, on_done, r);
    CHECK(!r->done); /* never before the commit */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    CHECK(r->done);
    return r->status;
}

static void make_message(sr_message *m, int priority, int64_t created_ms) {
    sr_message_init(m);
    sr_message_set_str(&m->to, "+84912345678");
    sr_message_set_str(&m->text, "Your code is 1234");
    m->priority = priority;
    m->created_at_ms = created_ms;
    m->validity_s = 3600;
    m->expires_at_ms = created_ms + 3600 * 1000;
    sr_message_set_status(m, SR_ST_ACCEPTED, created_ms);
}

/* Puts one message (status st) and returns its id in id_out. */
static void put_one(fx *f, int priority, int64_t created_ms, int64_t send_at_ms, sr_status st, char *id_out) {
    sr_message m;
    make_message(&m, priority, created_ms);
    m.send_at_ms = send_at_ms;
    if (st != SR_ST_ACCEPTED) sr_message_set_status(&m, st, created_ms);
    sr_store_txn *t = sr_store_txn_new(f->s);
    int slot = sr_store_txn_put_message(t, &m, NULL, 0);
    CHECK(m.to == NULL); /* the contents moved into the unit */
    result r;
    CHECK_INT(run_unit(f, t, &r), 0);
    CHECK_INT(r.results[slot], 0);
    strcpy(id_out, r.ids[slot]);
    result_free(&r);
}

/* A mutator driven by a description of the change. */
typedef struct change {
    int status; /* -1: keep */
    int64_t at_ms;
    const char *provider; /* non-NULL: add an attempt with this provider and provider id */
    const char *provider_id;
    int64_t next_attempt_at_ms; /* -1: keep */
    int calls;
} change;

static int mutate(sr_message *m, void *arg) {
    change *c = arg;
    c->calls++;
    if (c->status >= 0) {
        if (!sr_status_is_forward(m->status, (sr_status)c->status)) return SR_E_STATE;
        sr_message_set_status(m, (sr_status)c->status, c->at_ms);
    }
    if (c->provider) {
        sr_attempt *a = sr_message_add_attempt(m, c->provider, c->at_ms);
        sr_message_set_str(&a->provider_id, c->provider_id);
        sr_message_set_str(&m->provider, c->provider);
        sr_message_set_str(&m->provider_id, c->provider_id);
    }
    if (c->next_attempt_at_ms >= 0) m->next_attempt_at_ms = c->next_attempt_at_ms;
    return 0;
}

static int update_one(fx *f, const char *id, change *c) {
    sr_store_txn *t = sr_store_txn_new(f->s);
    sr_store_txn_update_message(t, id, mutate, c);
    result r;
    int rc = run_unit(f, t, &r);
    result_free(&r);
    return rc;
}

static int bad_status(sr_message *m, void *arg) {
    m->status = (sr_status)-3;
    return 0;
}

TEST(store_open_close_unused) {
    fx f;
    fx_open(&f, 0, 0);
    sr_store_stats st;
    sr_store_get_stats(f.s, &st);
    CHECK_INT(st.map_size, 256u << 20);
    CHECK_INT(st.commits, 0);
    fx_close(&f);
}

TEST(store_open_creates_nested_dir_and_reports_errors) {
    fx f;
    fx_open(&f, 0, 0);
    fx_close_store(&f);
    char nested[128];
    snprintf(nested, sizeof nested, "%s/a/b", f.dir);
    sr_store_options opt = {.dir = nested};
    char err[256];
    CHECK_INT(sr_store_open(&f.s, &f.loop, &opt, err, sizeof err), 0);
    fx_close_store(&f);
    /* A file where the directory should be: a clear error, no store. */
    char file[128];
    snprintf(file, sizeof file, "%s/file", f.dir);
    FILE *fp = fopen(file, "w");
    fclose(fp);
    opt.dir = file;
    sr_store *s = (sr_store *)&f; /* must be reset to NULL */
    CHECK(sr_store_open(&s, &f.loop, &opt, err, sizeof err) < 0);
    CHECK(s == NULL);
    CHECK(strstr(err, file) != NULL);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    fx_close(&f);
}

TEST(store_put_get) {
    fx f;
    fx_open(&f, 0, 0);
    int64_t now = sr_now_ms();
    sr_message m;
    make_message(&m, 2, now);
    sr_message_set_str(&m.from, "MyShop");
    sr_message_set_status(&m, SR_ST_QUEUED, now);
    sr_store_txn *t = sr_store_txn_new(f.s);
    CHECK_INT(sr_store_txn_put_message(t, &m, NULL, 0), 0);
    result r;
    CHECK_INT(run_unit(&f, t, &r), 0);
    CHECK(sr_id_valid(r.ids[0], strlen(r.ids[0]))); /* an empty id got a new one */
    CHECK(r.has_msg);
    CHECK_STR(r.msg_id, r.ids[0]);
    char got_id[SR_ID_LEN + 1];
    strcpy(got_id, r.ids[0]);

    sr_message got;
    CHECK_INT(sr_store_get_message(f.s, r.ids[0], &got), 0);
    CHECK_STR(got.id, r.ids[0]);
    CHECK_STR(got.to, "+84912345678");
    CHECK_STR(got.from, "MyShop");
    CHECK_STR(got.text, "Your code is 1234");
    CHECK_INT(got.status, SR_ST_QUEUED);
    CHECK_INT(got.priority, 2);
    CHECK_INT(got.created_at_ms, now);
    CHECK_INT(got.history_count, 2);
    sr_message_free(&got);
    result_free(&r);

    CHECK_INT(sr_store_get_message(f.s, "01JD3K8ZQ4M6X8Y1R2T3V4W5XZ", &got), SR_E_NOTFOUND);
    CHECK_INT(sr_store_get_message(f.s, "", &got), SR_E_NOTFOUND);
    CHECK(got.to == NULL);

    /* An invalid id is refused, not written. */
    make_message(&m, 0, now);
    strcpy(m.id, "not-an-id");
    t = sr_store_txn_new(f.s);
    sr_store_txn_put_message(t, &m, NULL, 0);
    CHECK_INT(run_unit(&f, t, &r), SR_E_INVALID);
    result_free(&r);

    /* A status the record cannot name is refused too, on put and on update. */
    make_message(&m, 0, now);
    m.status = (sr_status)42;
    t = sr_store_txn_new(f.s);
    sr_store_txn_put_message(t, &m, NULL, 0);
    CHECK_INT(run_unit(&f, t, &r), SR_E_INVALID);
    result_free(&r);
    change c = {.status = -1, .next_attempt_at_ms = -1};
    t = sr_store_txn_new(f.s);
    sr_store_txn_update_message(t, got_id, bad_status, &c);
    CHECK_INT(run_unit(&f, t, &r), SR_E_INVALID);
    CHECK_INT(sr_store_get_message(f.s, got_id, &got), 0);
    CHECK_INT(got.status, SR_ST_QUEUED);
    sr_message_free(&got);

    /* A unit that is discarded never runs. */
    make_message(&m, 0, now);
    t = sr_store_txn_new(f.s);
    sr_store_txn_put_message(t, &m, NULL, 0);
    sr_store_txn_discard(t);
    fx_close(&f);
}

TEST(store_idempotency) {
    fx f;
    fx_open(&f, 0, 0);
    int64_t now = sr_now_ms();
    sr_message m;
    result r;

    make_message(&m, 0, now);
    sr_store_txn *t = sr_store_txn_new(f.s);
    sr_store_txn_put_message(t, &m, "order-42", 111);
    CHECK_INT(run_unit(&f, t, &r), 0);
    char first[SR_ID_LEN + 1];
    strcpy(first, r.ids[0]);
    result_free(&r);

    /* Same key, same body: EXISTS with the first id; nothing written. */
    make_message(&m, 0, now + 1000);
    t = sr_store_txn_new(f.s);
    sr_store_txn_put_message(t, &m, "order-42", 111);
    char second[SR_ID_LEN + 1];
    strcpy(second, sr_store_txn_id(t, 0));
    CHECK(strcmp(first, second) != 0);
    CHECK_INT(run_unit(&f, t, &r), SR_E_EXISTS);
    CHECK_INT(r.results[0], SR_E_EXISTS);
    CHECK_STR(r.ids[0], first);
    CHECK(!r.has_msg);
    result_free(&r);
    sr_message got;
    CHECK_INT(sr_store_get_message(f.s, second, &got), SR_E_NOTFOUND);

    /* Same key, other body: CONFLICT. */
    make_message(&m, 0, now + 2000);
    t = sr_store_txn_new(f.s);
    sr_store_txn_put_message(t, &m, "order-42", 222);
    CHECK_INT(run_unit(&f, t, &r), SR_E_CONFLICT);
    result_free(&r);

    /* A key used more than 24 h before the new message is free again. */
    make_message(&m, 0, now - 25 * HOUR_MS);
    t = sr_store_txn_new(f.s);
    sr_store_txn_put_message(t, &m, "order-7", 1);
    CHECK_INT(run_unit(&f, t, &r), 0);
    strcpy(first, r.ids[0]);
    result_free(&r);
    make_message(&m, 0, now);
    t = sr_store_txn_new(f.s);
    sr_store_txn_put_message(t, &m, "order-7", 2);
    CHECK_INT(run_unit(&f, t, &r), 0);
    CHECK(strcmp(r.ids[0], first) != 0);
    strcpy(second, r.ids[0]);
    result_free(&r);
    /* ... and now it points at the new message. */
    make_message(&m, 0, now + 1);
    t = sr_store_txn_new(f.s);
    sr_store_txn_put_message(t, &m, "order-7", 2);
    CHECK_INT(run_unit(&f, t, &r), SR_E_EXISTS);
    CHECK_STR(r.ids[0], second);
    result_free(&r);

    /* Idempotency entries expire after 24 h: the sweep finds both keys then. */
    CHECK_INT(sr_store_sweep_ttl(f.s, now + 1000), 0);
    CHECK_INT(sr_store_sweep_ttl(f.s, now + 25 * HOUR_MS), 2);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    CHECK_INT(sr_store_sweep_ttl(f.s, now + 25 * HOUR_MS), 0);
    make_message(&m, 0, now + 2);
    t = sr_store_txn_new(f.s);
    sr_store_txn_put_message(t, &m, "order-42", 999); /* swept: no conflict any more */
    CHECK_INT(run_unit(&f, t, &r), 0);
    result_free(&r);
    fx_close(&f);
}

TEST(store_update_transitions) {
    fx f;
    fx_open(&f, 0, 0);
    int64_t now = sr_now_ms();
    char id[SR_ID_LEN + 1];
    put_one(&f, 1, now, 0, SR_ST_ACCEPTED, id);

    change c = {.status = SR_ST_QUEUED, .at_ms = now + 1, .next_attempt_at_ms = -1};
    sr_store_txn *t = sr_store_txn_new(f.s);
    sr_store_txn_update_message(t, id, mutate, &c);
    result r;
    CHECK_INT(run_unit(&f, t, &r), 0);
    CHECK_INT(c.calls, 1);
    CHECK(r.has_msg); /* the message as written */
    CHECK_INT(r.msg_status, SR_ST_QUEUED);
    CHECK_STR(r.ids[0], id);
    result_free(&r);

    /* Backwards: refused, and the record is untouched. */
    c = (change){.status = SR_ST_ACCEPTED, .at_ms = now + 2, .next_attempt_at_ms = 5};
    CHECK_INT(update_one(&f, id, &c), SR_E_STATE);
    sr_message got;
    CHECK_INT(sr_store_get_message(f.s, id, &got), 0);
    CHECK_INT(got.status, SR_ST_QUEUED);
    CHECK_INT(got.history_count, 2);
    CHECK_INT(got.next_attempt_at_ms, 0);
    sr_message_free(&got);

    c = (change){.status = SR_ST_DELIVERED, .at_ms = now + 3, .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, id, &c), 0);
    c = (change){.status = SR_ST_UNDELIVERED, .at_ms = now + 4, .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, id, &c), SR_E_STATE); /* finals never move */
    CHECK_INT(sr_store_get_message(f.s, id, &got), 0);
    CHECK_INT(got.status, SR_ST_DELIVERED);
    CHECK_INT(got.history[2].at_ms, now + 3);
    sr_message_free(&got);

    /* Unknown id. */
    c = (change){.status = -1, .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, "01JD3K8ZQ4M6X8Y1R2T3V4W5XZ", &c), SR_E_NOTFOUND);
    CHECK_INT(update_one(&f, "bogus", &c), SR_E_NOTFOUND);
    fx_close(&f);
}

TEST(store_queue_order_and_send_at) {
    fx f;
    fx_open(&f, 0, 0);
    int64_t now = sr_now_ms();
    char low_old[SR_ID_LEN + 1], low_new[SR_ID_LEN + 1], high[SR_ID_LEN + 1], mid[SR_ID_LEN + 1];
    char later[SR_ID_LEN + 1], accepted[SR_ID_LEN + 1];
    put_one(&f, 0, now - 5000, 0, SR_ST_QUEUED, low_new);
    put_one(&f, 0, now - 9000, 0, SR_ST_QUEUED, low_old);
    put_one(&f, 3, now - 1000, 0, SR_ST_QUEUED, high);
    put_one(&f, 1, now - 3000, 0, SR_ST_QUEUED, mid);
    put_one(&f, 3, now, now + 60000, SR_ST_QUEUED, later); /* send_at a minute ahead */
    put_one(&f, 3, now, 0, SR_ST_ACCEPTED, accepted);      /* not queued */

    /* Due order is priority first, then due time. low_old / low_new have no send_at (due 0): set
     * their next attempt times so the order shows. */
    change c = {.status = -1, .next_attempt_at_ms = now - 9000};
    CHECK_INT(update_one(&f, low_old, &c), 0);
    c = (change){.status = -1, .next_attempt_at_ms = now - 5000};
    CHECK_INT(update_one(&f, low_new, &c), 0);

    sr_queue_entry q[10];
    int n = sr_store_queue_due(f.s, now, q, 10);
    CHECK_INT(n, 4);
    CHECK_STR(q[0].id, high);
    CHECK_INT(q[0].priority, 3);
    CHECK_STR(q[1].id, mid);
    CHECK_STR(q[2].id, low_old);
    CHECK_INT(q[2].due_ms, now - 9000);
    CHECK_STR(q[3].id, low_new);
    CHECK_INT(sr_store_queue_due(f.s, now, q, 2), 2); /* max is honoured */
    CHECK_STR(q[1].id, mid);

    /* Once its send_at has passed, the delayed one is due: after high (same priority, due earlier),
     * before every lower priority. */
    n = sr_store_queue_due(f.s, now + 60000, q, 10);
    CHECK_INT(n, 5);
    CHECK_STR(q[0].id, high);
    CHECK_STR(q[1].id, later);
    CHECK_INT(q[1].due_ms, now + 60000);

    /* A retry pushed into the future leaves the queue until then. */
    c = (change){.status = -1, .next_attempt_at_ms = now + 30000};
    CHECK_INT(update_one(&f, high, &c), 0);
    n = sr_store_queue_due(f.s, now, q, 10);
    CHECK_INT(n, 3);
    CHECK_STR(q[0].id, mid);

    /* Sending: out of the queue. */
    c = (change){.status = SR_ST_SENDING, .at_ms = now, .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, mid, &c), 0);
    n = sr_store_queue_due(f.s, now, q, 10);
    CHECK_INT(n, 2);
    CHECK_STR(q[0].id, low_old);
    CHECK_INT(sr_store_queue_due(f.s, now, q, 0), 0);
    fx_close(&f);
}

TEST(store_expiry_status_and_provider_indexes) {
    fx f;
    fx_open(&f, 0, 0);
    int64_t now = sr_now_ms();
    char a[SR_ID_LEN + 1], b[SR_ID_LEN + 1], c_id[SR_ID_LEN + 1], d[SR_ID_LEN + 1];
    put_one(&f, 0, now - 2 * HOUR_MS, 0, SR_ST_QUEUED, a);    /* expired an hour ago */
    put_one(&f, 0, now - 90 * 60 * 1000, 0, SR_ST_QUEUED, b); /* expired half an hour ago */
    put_one(&f, 0, now, 0, SR_ST_QUEUED, c_id);               /* valid for an hour */
    put_one(&f, 0, now - 2 * HOUR_MS, 0, SR_ST_ACCEPTED, d);  /* not queued: never listed */

    char ids[10][SR_ID_LEN + 1];
    int n = sr_store_expired(f.s, now, ids, 10);
    CHECK_INT(n, 2);
    CHECK_STR(ids[0], a);
    CHECK_STR(ids[1], b);
    CHECK_INT(sr_store_expired(f.s, now, ids, 1), 1);
    CHECK_INT(sr_store_expired(f.s, now + 2 * HOUR_MS, ids, 10), 3);

    /* Sending keeps it in expiry; sent takes it out. */
    change ch = {.status = SR_ST_SENDING, .at_ms = now, .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, a, &ch), 0);
    CHECK_INT(sr_store_expired(f.s, now, ids, 10), 2);
    ch = (change){
        .status = SR_ST_SENT, .at_ms = now, .provider = "primary", .provider_id = "p-1", .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, a, &ch), 0);
    n = sr_store_expired(f.s, now, ids, 10);
    CHECK_INT(n, 1);
    CHECK_STR(ids[0], b);

    /* Status lists, in id order, with paging. */
    n = sr_store_list_status(f.s, SR_ST_QUEUED, NULL, ids, 10);
    CHECK_INT(n, 2);
    CHECK_STR(ids[0], b);
    CHECK_STR(ids[1], c_id);
    n = sr_store_list_status(f.s, SR_ST_QUEUED, b, ids, 10);
    CHECK_INT(n, 1);
    CHECK_STR(ids[0], c_id);
    CHECK_INT(sr_store_list_status(f.s, SR_ST_QUEUED, c_id, ids, 10), 0);
    n = sr_store_list_status(f.s, SR_ST_SENT, NULL, ids, 10);
    CHECK_INT(n, 1);
    CHECK_STR(ids[0], a);
    CHECK_INT(sr_store_list_status(f.s, SR_ST_SENDING, NULL, ids, 10), 0);
    CHECK_INT(sr_store_list_status(f.s, SR_ST_ACCEPTED, NULL, ids, 10), 1);

    /* Provider ids: found while the message carries them. */
    char found[SR_ID_LEN + 1];
    CHECK_INT(sr_store_find_provider_id(f.s, "primary", "p-1", found), 0);
    CHECK_STR(found, a);
    /* Reports that disagree on case and leading zeros still match. */
    CHECK_INT(sr_store_find_provider_id(f.s, "primary", "00P-1", found), 0);
    CHECK_STR(found, a);
    CHECK_INT(sr_store_find_provider_id(f.s, "backup", "p-1", found), SR_E_NOTFOUND);
    CHECK_INT(sr_store_find_provider_id(f.s, "primary", "p-2", found), SR_E_NOTFOUND);
    ch = (change){.status = -1, .at_ms = now, .provider = "backup", .provider_id = "b-9", .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, b, &ch), 0);
    CHECK_INT(sr_store_find_provider_id(f.s, "backup", "b-9", found), 0);
    CHECK_STR(found, b);
    CHECK_INT(sr_store_find_provider_id(f.s, "primary", "p-1", found), 0); /* a's attempt is still there */
    CHECK_STR(found, a);
    fx_close(&f);
}

static int drop_attempts(sr_message *m, void *arg) {
    for (int i = 0; i < m->attempt_count; i++) {
        free(m->attempts[i].provider);
        free(m->attempts[i].provider_id);
        free(m->attempts[i].outcome);
        free(m->attempts[i].error);
    }
    m->attempt_count = 0;
    sr_message_set_str(&m->provider, NULL);
    sr_message_set_str(&m->provider_id, NULL);
    strcpy(m->id, "01JD3K8ZQ4M6X8Y1R2T3V4W5XZ"); /* ignored: the id cannot move */
    return 0;
}

TEST(store_provider_index_follows_removal) {
    fx f;
    fx_open(&f, 0, 0);
    int64_t now = sr_now_ms();
    char a[SR_ID_LEN + 1], found[SR_ID_LEN + 1];
    put_one(&f, 0, now, 0, SR_ST_QUEUED, a);
    change ch = {.status = -1, .at_ms = now, .provider = "primary", .provider_id = "p-1", .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, a, &ch), 0);
    CHECK_INT(sr_store_find_provider_id(f.s, "primary", "p-1", found), 0);
    sr_store_txn *t = sr_store_txn_new(f.s);
    sr_store_txn_update_message(t, a, drop_attempts, NULL);
    result r;
    CHECK_INT(run_unit(&f, t, &r), 0);
    CHECK_STR(r.msg_id, a);
    result_free(&r);
    CHECK_INT(sr_store_find_provider_id(f.s, "primary", "p-1", found), SR_E_NOTFOUND);
    sr_message got;
    CHECK_INT(sr_store_get_message(f.s, a, &got), 0);
    sr_message_free(&got);
    fx_close(&f);
}

TEST(store_unit_is_all_or_nothing) {
    fx f;
    fx_open(&f, 0, 0);
    int64_t now = sr_now_ms();
    sr_message m;
    result r1, r2, r3, r4;

    /* Four units in one loop pass (one batch): the second fails on its third mutation (the batch is
     * redone without it), the fourth on its second (applied nested in the redone batch). */
    sr_store_txn *t1 = sr_store_txn_new(f.s);
    sr_store_txn_kv_set(t1, "k1", 2, "one", 3, 0);
    sr_store_txn *t2 = sr_store_txn_new(f.s);
    make_message(&m, 0, now);
    sr_store_txn_put_message(t2, &m, NULL, 0);
    sr_store_txn_kv_set(t2, "k2", 2, "two", 3, 0);
    change c = {.status = -1, .next_attempt_at_ms = -1};
    sr_store_txn_update_message(t2, "01JD3K8ZQ4M6X8Y1R2T3V4W5XZ", mutate, &c); /* no such message */
    char put_id[SR_ID_LEN + 1];
    strcpy(put_id, sr_store_txn_id(t2, 0));
    sr_store_txn *t3 = sr_store_txn_new(f.s);
    sr_store_txn_kv_set(t3, "k3", 2, "three", 5, 0);
    sr_store_txn *t4 = sr_store_txn_new(f.s);
    sr_store_txn_kv_set(t4, "k5", 2, "five", 4, 0);
    sr_store_txn_update_message(t4, "01JD3K8ZQ4M6X8Y1R2T3V4W5XZ", mutate, &c);
    memset(&r4, 0, sizeof r4);
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    memset(&r3, 0, sizeof r3);
    sr_store_txn_submit(t1, on_done, &r1);
    sr_store_txn_submit(t2, on_done, &r2);
    sr_store_txn_submit(t3, on_done, &r3);
    sr_store_txn_submit(t4, on_done, &r4);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    CHECK_INT(r1.status, 0);
    CHECK_INT(r2.status, SR_E_NOTFOUND);
    CHECK_INT(r2.results[2], SR_E_NOTFOUND);
    CHECK_INT(r3.status, 0);
    CHECK_INT(r4.status, SR_E_NOTFOUND);
    CHECK_INT(r4.results[1], SR_E_NOTFOUND);
    sr_store_stats st;
    sr_store_get_stats(f.s, &st);
    CHECK_INT(st.commits, 1);
    CHECK_INT(st.units, 4);

    sr_buf v;
    sr_buf_init(&v);
    CHECK_INT(sr_store_kv_get(f.s, "k1", 2, now, &v), 0);
    CHECK_INT(sr_store_kv_get(f.s, "k2", 2, now, &v), SR_E_NOTFOUND);
    CHECK_INT(sr_store_kv_get(f.s, "k3", 2, now, &v), 0);
    CHECK_STR(sr_buf_cstr(&v), "three");
    CHECK_INT(sr_store_kv_get(f.s, "k5", 2, now, &v), SR_E_NOTFOUND);
    sr_message got;
    CHECK_INT(sr_store_get_message(f.s, put_id, &got), SR_E_NOTFOUND);
    char ids[4][SR_ID_LEN + 1];
    CHECK_INT(sr_store_list_status(f.s, SR_ST_ACCEPTED, NULL, ids, 4), 0); /* no index entry leaked */

    /* A dedup that finds its key fails the whole unit too. */
    sr_store_txn *t = sr_store_txn_new(f.s);
    sr_store_txn_dedup(t, "event-1", 7, 0);
    CHECK_INT(run_unit(&f, t, &r1), 0);
    t = sr_store_txn_new(f.s);
    sr_store_txn_kv_set(t, "k4", 2, "four", 4, 0);
    sr_store_txn_dedup(t, "event-1", 7, 0);
    CHECK_INT(run_unit(&f, t, &r1), SR_E_EXISTS);
    CHECK_INT(r1.results[1], SR_E_EXISTS);
    CHECK_INT(sr_store_kv_get(f.s, "k4", 2, now, &v), SR_E_NOTFOUND);
    sr_buf_free(&v);
    fx_close(&f);
}

TEST(store_kv_ttl_incr_del_sweep) {
    fx f;
    fx_open(&f, 0, 0);
    int64_t now = sr_now_ms();
    sr_buf v;
    sr_buf_init(&v);
    result r;

    sr_store_txn *t = sr_store_txn_new(f.s);
    sr_store_txn_kv_set(t, "name", 4, "alice", 5, 0);
    sr_store_txn_kv_set(t, "gone", 4, "old", 3, now - 1); /* already expired */
    sr_store_txn_kv_set(t, "soon", 4, "x", 1, now + HOUR_MS);
    sr_store_txn_kv_set(t, "bin", 3, "a\0b", 3, 0); /* any bytes */
    CHECK_INT(run_unit(&f, t, &r), 0);
    CHECK_INT(sr_store_kv_get(f.s, "name", 4, now, &v), 0);
    CHECK_STR(sr_buf_cstr(&v), "alice");
    CHECK_INT(sr_store_kv_get(f.s, "gone", 4, now, &v), SR_E_NOTFOUND);
    CHECK_INT(sr_store_kv_get(f.s, "soon", 4, now, &v), 0);
    CHECK_INT(sr_store_kv_get(f.s, "soon", 4, now + HOUR_MS, &v), SR_E_NOTFOUND); /* expiry is exclusive */
    CHECK_INT(sr_store_kv_get(f.s, "bin", 3, now, &v), 0);
    CHECK_INT(v.len, 3);
    CHECK(memcmp(v.data, "a\0b", 3) == 0);
    CHECK_INT(sr_store_kv_get(f.s, "nope", 4, now, &v), SR_E_NOTFOUND);

    /* incr: missing counts as 0, expired counts as 0, a live key keeps its expiry. */
    t = sr_store_txn_new(f.s);
    sr_store_txn_kv_incr(t, "n", 1, 5, 0);
    sr_store_txn_kv_incr(t, "n", 1, -2, now - 1); /* live key: its (no) expiry stays */
    sr_store_txn_kv_incr(t, "gone", 4, 7, now + HOUR_MS);
    CHECK_INT(run_unit(&f, t, &r), 0);
    CHECK_INT(r.ints[0], 5);
    CHECK_INT(r.ints[1], 3);
    CHECK_INT(r.ints[2], 7);
    CHECK_INT(sr_store_kv_get(f.s, "n", 1, now + 100 * HOUR_MS, &v), 0);
    CHECK_STR(sr_buf_cstr(&v), "3");
    CHECK_INT(sr_store_kv_get(f.s, "gone", 4, now, &v), 0);
    CHECK_STR(sr_buf_cstr(&v), "7");
    CHECK_INT(sr_store_kv_get(f.s, "gone", 4, now + HOUR_MS, &v), SR_E_NOTFOUND);

    /* Negative counts, down to the smallest int64, are written in decimal. */
    t = sr_store_txn_new(f.s);
    sr_store_txn_kv_incr(t, "neg", 3, -40, 0);
    sr_store_txn_kv_incr(t, "min", 3, INT64_MIN, 0);
    CHECK_INT(run_unit(&f, t, &r), 0);
    CHECK_INT(sr_store_kv_get(f.s, "neg", 3, now, &v), 0);
    CHECK_STR(sr_buf_cstr(&v), "-40");
    CHECK_INT(sr_store_kv_get(f.s, "min", 3, now, &v), 0);
    CHECK_STR(sr_buf_cstr(&v), "-9223372036854775808");

    /* incr on text, overflow, empty key: SR_E_INVALID, nothing written. */
    t = sr_store_txn_new(f.s);
    sr_store_txn_kv_incr(t, "name", 4, 1, 0);
    CHECK_INT(run_unit(&f, t, &r), SR_E_INVALID);
    t = sr_store_txn_new(f.s);
    sr_store_txn_kv_set(t, "big", 3, "9223372036854775807", 19, 0);
    CHECK_INT(run_unit(&f, t, &r), 0);
    t = sr_store_txn_new(f.s);
    sr_store_txn_kv_incr(t, "big", 3, 1, 0);
    CHECK_INT(run_unit(&f, t, &r), SR_E_INVALID);
    t = sr_store_txn_new(f.s);
    sr_store_txn_kv_set(t, "", 0, "x", 1, 0);
    CHECK_INT(run_unit(&f, t, &r), SR_E_INVALID);
    char long_key[600];
    memset(long_key, 'k', sizeof long_key);
    t = sr_store_txn_new(f.s);
    sr_store_txn_kv_set(t, long_key, sizeof long_key, "x", 1, 0);
    CHECK_INT(run_unit(&f, t, &r), SR_E_INVALID);

    /* del */
    t = sr_store_txn_new(f.s);
    sr_store_txn_kv_del(t, "name", 4);
    sr_store_txn_kv_del(t, "never", 5); /* deleting a missing key is fine */
    CHECK_INT(run_unit(&f, t, &r), 0);
    CHECK_INT(sr_store_kv_get(f.s, "name", 4, now, &v), SR_E_NOTFOUND);

    /* sweep: finds what is expired at the given time, frees it once committed. */
    CHECK_INT(sr_store_sweep_ttl(f.s, now), 0);
    int n = sr_store_sweep_ttl(f.s, now + 2 * HOUR_MS); /* "soon" and "gone" */
    CHECK_INT(n, 2);
    CHECK_INT(sr_store_sweep_ttl(f.s, now + 2 * HOUR_MS), 0); /* in flight */
    uv_run(&f.loop, UV_RUN_DEFAULT);
    CHECK_INT(sr_store_sweep_ttl(f.s, now + 2 * HOUR_MS), 0);
    CHECK_INT(sr_store_kv_get(f.s, "n", 1, now, &v), 0); /* no expiry: kept */
    CHECK_INT(sr_store_kv_get(f.s, "bin", 3, now, &v), 0);
    sr_buf_free(&v);
    fx_close(&f);
}

TEST(store_append_consume_and_delete_expired) {
    fx f;
    fx_open(&f, 0, 0);
    int64_t now = sr_now_ms();
    sr_buf v;
    sr_buf_init(&v);
    result r;

    /* Two lines appended; a reader takes them; a third is appended before the reader's unit runs. */
    sr_store_txn *t = sr_store_txn_new(f.s);
    sr_store_txn_append(t, SR_SPACE_PARKED, "k", 1, "one\n", 4, now + HOUR_MS);
    sr_store_txn_append(t, SR_SPACE_PARKED, "k", 1, "two\n", 4, now + 5 * HOUR_MS); /* lives as long as the later */
    CHECK_INT(run_unit(&f, t, &r), 0);
    int64_t exp = 0;
    CHECK_INT(sr_store_get(f.s, SR_SPACE_PARKED, "k", 1, now, &v, &exp), 0);
    CHECK_STR(sr_buf_cstr(&v), "one\ntwo\n");
    CHECK(exp == now + 5 * HOUR_MS);
    t = sr_store_txn_new(f.s);
    sr_store_txn_append(t, SR_SPACE_PARKED, "k", 1, "three\n", 6, now + 2 * HOUR_MS);
    sr_store_txn_consume(t, SR_SPACE_PARKED, "k", 1, "one\ntwo\n", 8);
    CHECK_INT(run_unit(&f, t, &r), 0);
    CHECK_INT(sr_store_get(f.s, SR_SPACE_PARKED, "k", 1, now, &v, &exp), 0);
    CHECK_STR(sr_buf_cstr(&v), "three\n"); /* what came after the read stays */
    CHECK(exp == now + 5 * HOUR_MS);

    /* Consuming again what is gone changes nothing; consuming the rest removes the entry. */
    t = sr_store_txn_new(f.s);
    sr_store_txn_consume(t, SR_SPACE_PARKED, "k", 1, "one\n", 4);
    sr_store_txn_consume(t, SR_SPACE_PARKED, "missing", 7, "x", 1);
    CHECK_INT(run_unit(&f, t, &r), 0);
    CHECK_INT(sr_store_get(f.s, SR_SPACE_PARKED, "k", 1, now, &v, NULL), 0);
    CHECK_STR(sr_buf_cstr(&v), "three\n");
    t = sr_store_txn_new(f.s);
    sr_store_txn_consume(t, SR_SPACE_PARKED, "k", 1, "three\n", 6);
    CHECK_INT(run_unit(&f, t, &r), 0);
    CHECK_INT(sr_store_get(f.s, SR_SPACE_PARKED, "k", 1, now, &v, NULL), SR_E_NOTFOUND);

    /* del_expired: only what is expired when the unit runs; an entry written again since stays. */
    t = sr_store_txn_new(f.s);
    sr_store_txn_append(t, SR_SPACE_PARKED, "old", 3, "a\n", 2, now + HOUR_MS);
    sr_store_txn_append(t, SR_SPACE_PARKED, "live", 4, "b\n", 2, now + 3 * HOUR_MS);
    CHECK_INT(run_unit(&f, t, &r), 0);
    t = sr_store_txn_new(f.s);
    sr_store_txn_del_expired(t, SR_SPACE_PARKED, "old", 3, now + 2 * HOUR_MS);
    sr_store_txn_del_expired(t, SR_SPACE_PARKED, "live", 4, now + 2 * HOUR_MS);
    CHECK_INT(run_unit(&f, t, &r), 0);
    CHECK_INT(sr_store_get(f.s, SR_SPACE_PARKED, "old", 3, now, &v, NULL), SR_E_NOTFOUND);
    CHECK_INT(sr_store_get(f.s, SR_SPACE_PARKED, "live", 4, now, &v, NULL), 0);
    CHECK_STR(sr_buf_cstr(&v), "b\n");
    sr_buf_free(&v);
    fx_close(&f);
}

static int count_entries(const char *key, size_t klen, const char *val, size_t vlen, int64_t exp, void *ud) {
    (void)key, (void)klen, (void)val, (void)vlen, (void)exp, (void)ud;
    return 0;
}

/* What the subscribers of a test heard. */
typedef struct heard {
    int count[SR_STORE_EV_KINDS];
    char id[SR_STORE_EV_KINDS][SR_ID_LEN + 1];
    int status;
    int64_t owed;
} heard;

static void on_event(const sr_store_event *ev, void *ud) {
    heard *h = ud;
    h->count[ev->kind]++;
    snprintf(h->id[ev->kind], sizeof h->id[0], "%s", ev->msg->id);
    if (ev->kind == SR_STORE_EV_STATUS) {
        h->status = ev->msg->status;
        h->owed = ev->owed;
    }
}

/* Announcements: the queue once per unit that leaves messages queued, provider ids when an update indexes a
 * new one, nothing for a failed unit nor after unsubscribing. */
TEST(store_announces_queue_and_provider_ids) {
    fx f;
    fx_open(&f, 0, 0);
    int64_t now = sr_now_ms();
    heard h;
    memset(&h, 0, sizeof h);
    sr_store_subscriber q = {.kind = SR_STORE_EV_QUEUE, .fn = on_event, .ud = &h};
    sr_store_subscriber p = {.kind = SR_STORE_EV_PROVIDER_ID, .fn = on_event, .ud = &h};
    sr_store_subscribe(f.s, &q);
    sr_store_subscribe(f.s, &p);
    char a[SR_ID_LEN + 1], b[SR_ID_LEN + 1];
    put_one(&f, 1, now, 0, SR_ST_ACCEPTED, a); /* not queued: no announcement */
    CHECK_INT(h.count[SR_STORE_EV_QUEUE], 0);

    sr_store_txn *t = sr_store_txn_new(f.s);
    for (int i = 0; i < 3; i++) {
        sr_message m;
        make_message(&m, 1, now + i);
        sr_message_set_status(&m, SR_ST_QUEUED, now);
        sr_store_txn_put_message(t, &m, NULL, 0);
    }
    result r;
    CHECK_INT(run_unit(&f, t, &r), 0);
    CHECK_INT(h.count[SR_STORE_EV_QUEUE], 1); /* one unit, one look at the queue */
    snprintf(b, sizeof b, "%s", r.ids[0]);
    CHECK_STR(h.id[SR_STORE_EV_QUEUE], b);
    result_free(&r);

    /* a goes to the queue by an update: announced. */
    change c = {.status = SR_ST_QUEUED, .at_ms = now + 1, .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, a, &c), 0);
    CHECK_INT(h.count[SR_STORE_EV_QUEUE], 2);
    CHECK_STR(h.id[SR_STORE_EV_QUEUE], a);

    /* Sent with a provider id: known once; the same id again is not news. */
    c = (change){.status = SR_ST_SENDING, .at_ms = now + 2, .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, b, &c), 0);
    CHECK_INT(h.count[SR_STORE_EV_PROVIDER_ID], 0);
    c = (change){
        .status = SR_ST_SENT, .at_ms = now + 3, .provider = "primary", .provider_id = "P-1", .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, b, &c), 0);
    CHECK_INT(h.count[SR_STORE_EV_PROVIDER_ID], 1);
    CHECK_STR(h.id[SR_STORE_EV_PROVIDER_ID], b);
    c = (change){.status = -1, .next_attempt_at_ms = now + 9};
    CHECK_INT(update_one(&f, b, &c), 0);
    CHECK_INT(h.count[SR_STORE_EV_PROVIDER_ID], 1);

    /* A failed unit announces nothing; an unsubscribed one hears nothing. */
    c = (change){.status = SR_ST_QUEUED, .at_ms = now + 4, .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, b, &c), SR_E_STATE);
    CHECK_INT(h.count[SR_STORE_EV_QUEUE], 2);
    sr_store_unsubscribe(f.s, &q);
    put_one(&f, 1, now, 0, SR_ST_QUEUED, a);
    CHECK_INT(h.count[SR_STORE_EV_QUEUE], 2);
    sr_store_unsubscribe(f.s, &p);
    fx_close(&f);
}

/* Owed status handlers: written in the unit that sets a status of a durable subscriber's mask, keyed by
 * history number, and announced with that number after the commit. */
TEST(store_owed_status_entries_follow_the_mask) {
    fx f;
    fx_open(&f, 0, 0);
    int64_t now = sr_now_ms();
    char id[SR_ID_LEN + 1], key[SR_ID_LEN + 24];
    put_one(&f, 1, now, 0, SR_ST_ACCEPTED, id); /* history: accepted */
    sr_buf v;
    sr_buf_init(&v);
    heard h;
    memset(&h, 0, sizeof h);
    sr_store_subscriber sub = {.kind = SR_STORE_EV_STATUS,
                               .status_mask = 1u << SR_ST_SENT | 1u << SR_ST_DELIVERED,
                               .durable = 1,
                               .fn = on_event,
                               .ud = &h};
    sr_store_subscribe(f.s, &sub);

    /* queued is not in the mask: nothing owed, nothing announced. */
    change c = {.status = SR_ST_QUEUED, .at_ms = now + 1, .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, id, &c), 0);
    CHECK_INT(h.count[SR_STORE_EV_STATUS], 0);
    CHECK_INT(sr_store_scan(f.s, SR_SPACE_OWED, NULL, 0, 10, count_entries, NULL), 0);

    /* sent is: the entry is "ID/3" → "sent", in the same commit, and the subscriber hears n = 3. */
    c = (change){.status = SR_ST_SENT, .at_ms = now + 2, .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, id, &c), 0);
    CHECK_INT(h.count[SR_STORE_EV_STATUS], 1);
    CHECK_INT(h.status, SR_ST_SENT);
    CHECK(h.owed == 3);
    CHECK_STR(h.id[SR_STORE_EV_STATUS], id);
    size_t klen = sr_store_owed_key(id, 3, key, sizeof key);
    CHECK_INT(klen, SR_ID_LEN + 2); /* the key is on disk: "ID/N" */
    CHECK_STR(key + SR_ID_LEN, "/3");
    CHECK_INT(sr_store_owed_key(id, 3, key, SR_ID_LEN + 2), 0); /* no room for the NUL */
    CHECK_INT(sr_store_get(f.s, SR_SPACE_OWED, key, klen, now, &v, NULL), 0);
    CHECK_STR(sr_buf_cstr(&v), "sent");

    /* An update that sets no status owes nothing; nor does a unit while the subscriber is not durable
     * (it still hears the change, with owed 0). */
    c = (change){.status = -1, .next_attempt_at_ms = now + 9};
    CHECK_INT(update_one(&f, id, &c), 0);
    CHECK_INT(h.count[SR_STORE_EV_STATUS], 1);
    sub.durable = 0;
    c = (change){.status = SR_ST_DELIVERED, .at_ms = now + 3, .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, id, &c), 0);
    CHECK_INT(h.count[SR_STORE_EV_STATUS], 2);
    CHECK(h.owed == 0);
    klen = sr_store_owed_key(id, 4, key, sizeof key);
    CHECK_INT(sr_store_get(f.s, SR_SPACE_OWED, key, klen, now, &v, NULL), SR_E_NOTFOUND);

    /* A refused update owes nothing and announces nothing: the unit wrote nothing. */
    sub.durable = 1;
    c = (change){.status = SR_ST_SENT, .at_ms = now + 4, .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, id, &c), SR_E_STATE);
    CHECK_INT(h.count[SR_STORE_EV_STATUS], 2);
    klen = sr_store_owed_key(id, 5, key, sizeof key);
    CHECK_INT(sr_store_get(f.s, SR_SPACE_OWED, key, klen, now, &v, NULL), SR_E_NOTFOUND);
    sr_store_unsubscribe(f.s, &sub);

    /* Clearing the entry is a plain delete. */
    result r;
    sr_store_txn *t = sr_store_txn_new(f.s);
    klen = sr_store_owed_key(id, 3, key, sizeof key);
    sr_store_txn_del(t, SR_SPACE_OWED, key, klen);
    CHECK_INT(run_unit(&f, t, &r), 0);
    CHECK_INT(sr_store_get(f.s, SR_SPACE_OWED, key, klen, now, &v, NULL), SR_E_NOTFOUND);
    sr_buf_free(&v);
    fx_close(&f);
}

TEST(store_dedup_and_optout) {
    fx f;
    fx_open(&f, 0, 0);
    int64_t now = sr_now_ms();
    result r;
    sr_store_txn *t = sr_store_txn_new(f.s);
    sr_store_txn_dedup(t, "dlr:abc", 7, now + HOUR_MS);
    sr_store_txn_dedup(t, "dlr:old", 7, now - 1);
    CHECK_INT(sr_store_dedup_seen(f.s, "dlr:abc", 7, now), 0); /* not committed yet */
    CHECK_INT(run_unit(&f, t, &r), 0);
    /* What a dedup would find, read without a unit: recorded and alive, expired, never recorded. */
    CHECK_INT(sr_store_dedup_seen(f.s, "dlr:abc", 7, now), 1);
    CHECK_INT(sr_store_dedup_seen(f.s, "dlr:abc", 7, now + HOUR_MS), 0);
    CHECK_INT(sr_store_dedup_seen(f.s, "dlr:old", 7, now), 0);
    CHECK_INT(sr_store_dedup_seen(f.s, "dlr:new", 7, now), 0);
    t = sr_store_txn_new(f.s);
    sr_store_txn_dedup(t, "dlr:abc", 7, now + HOUR_MS);
    CHECK_INT(run_unit(&f, t, &r), SR_E_EXISTS);
    t = sr_store_txn_new(f.s);
    sr_store_txn_dedup(t, "dlr:old", 7, now + HOUR_MS); /* the old one expired: recorded again */
    CHECK_INT(run_unit(&f, t, &r), 0);
    t = sr_store_txn_new(f.s);
    sr_store_txn_dedup(t, "dlr:old", 7, now + HOUR_MS);
    CHECK_INT(run_unit(&f, t, &r), SR_E_EXISTS);

    CHECK_INT(sr_store_is_optout(f.s, "+84912345678"), 0);
    t = sr_store_txn_new(f.s);
    sr_store_txn_optout(t, "+84912345678", 1);
    CHECK_INT(run_unit(&f, t, &r), 0);
    CHECK_INT(sr_store_is_optout(f.s, "+84912345678"), 1);
    CHECK_INT(sr_store_is_optout(f.s, "+84900000000"), 0);
    t = sr_store_txn_new(f.s);
    sr_store_txn_optout(t, "+84912345678", 0);
    CHECK_INT(run_unit(&f, t, &r), 0);
    CHECK_INT(sr_store_is_optout(f.s, "+84912345678"), 0);
    CHECK_INT(sr_store_is_optout(f.s, ""), 0);
    fx_close(&f);
}

/* Rewrites messages[key] with raw bytes straight through LMDB (store closed). */
static void plant_raw(const char *dir, const char *key, const void *val, size_t len) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    CHECK_INT(mdb_env_create(&env), 0);
    CHECK_INT(mdb_env_set_maxdbs(env, 16), 0);
    CHECK_INT(mdb_env_open(env, dir, 0, 0640), 0);
    CHECK_INT(mdb_txn_begin(env, NULL, 0, &txn), 0);
    CHECK_INT(mdb_dbi_open(txn, "messages", 0, &dbi), 0);
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};
    CHECK_INT(mdb_put(txn, dbi, &k, &v, 0), 0);
    CHECK_INT(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

TEST(store_corrupt_record_is_an_error) {
    fx f;
    fx_open(&f, 0, 0);
    char id[SR_ID_LEN + 1], good[SR_ID_LEN + 1];
    int64_t now = sr_now_ms();
    put_one(&f, 0, now, 0, SR_ST_QUEUED, id);
    put_one(&f, 0, now, 0, SR_ST_QUEUED, good);
    fx_close_store(&f);
    plant_raw(f.dir, id, "\x01{\"id\":\"trunc", 13);
    fx_open_store(&f, 0, 0);

    sr_message got;
    CHECK_INT(sr_store_get_message(f.s, id, &got), SR_E_CORRUPT);
    CHECK(got.to == NULL);
    change c = {.status = SR_ST_SENDING, .at_ms = now, .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, id, &c), SR_E_CORRUPT);
    CHECK_INT(c.calls, 0);
    CHECK_INT(sr_store_get_message(f.s, good, &got), 0); /* the neighbour is fine */
    sr_message_free(&got);

    /* A wrong version byte and an empty value too. */
    fx_close_store(&f);
    plant_raw(f.dir, id, "\x07{}", 3);
    fx_open_store(&f, 0, 0);
    CHECK_INT(sr_store_get_message(f.s, id, &got), SR_E_CORRUPT);
    fx_close_store(&f);
    plant_raw(f.dir, id, "", 0);
    fx_open_store(&f, 0, 0);
    CHECK_INT(sr_store_get_message(f.s, id, &got), SR_E_CORRUPT);
    fx_close(&f);
}

TEST(store_reopen_keeps_everything) {
    fx f;
    fx_open(&f, 0, 0);
    int64_t now = sr_now_ms();
    char id[SR_ID_LEN + 1];
    put_one(&f, 2, now - 1000, 0, SR_ST_QUEUED, id);
    result r;
    sr_store_txn *t = sr_store_txn_new(f.s);
    sr_store_txn_kv_set(t, "k", 1, "v", 1, 0);
    sr_store_txn_optout(t, "+15550001", 1);
    sr_store_txn_dedup(t, "d", 1, 0);
    CHECK_INT(run_unit(&f, t, &r), 0);
    change c = {.status = -1, .at_ms = now, .provider = "primary", .provider_id = "x1", .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, id, &c), 0);
    fx_close_store(&f);

    fx_open_store(&f, 0, 0);
    sr_message got;
    CHECK_INT(sr_store_get_message(f.s, id, &got), 0);
    CHECK_INT(got.status, SR_ST_QUEUED);
    CHECK_INT(got.attempt_count, 1);
    sr_message_free(&got);
    sr_buf v;
    sr_buf_init(&v);
    CHECK_INT(sr_store_kv_get(f.s, "k", 1, now, &v), 0);
    CHECK_STR(sr_buf_cstr(&v), "v");
    sr_buf_free(&v);
    CHECK_INT(sr_store_is_optout(f.s, "+15550001"), 1);
    sr_queue_entry q[4];
    CHECK_INT(sr_store_queue_due(f.s, now, q, 4), 1);
    CHECK_STR(q[0].id, id);
    CHECK_INT(q[0].priority, 2);
    char found[SR_ID_LEN + 1];
    CHECK_INT(sr_store_find_provider_id(f.s, "primary", "x1", found), 0);
    t = sr_store_txn_new(f.s);
    sr_store_txn_dedup(t, "d", 1, 0);
    CHECK_INT(run_unit(&f, t, &r), SR_E_EXISTS);
    fx_close(&f);
}

/* Opens the environment of f (store closed) raw; *dbi: the named database. */
static MDB_env *raw_open(fx *f, const char *db, MDB_txn **txn, MDB_dbi *dbi) {
    MDB_env *env;
    CHECK_INT(mdb_env_create(&env), 0);
    CHECK_INT(mdb_env_set_maxdbs(env, 16), 0);
    CHECK_INT(mdb_env_open(env, f->dir, 0, 0640), 0);
    CHECK_INT(mdb_txn_begin(env, NULL, 0, txn), 0);
    CHECK_INT(mdb_dbi_open(*txn, db, 0, dbi), 0);
    return env;
}

/* The format byte of a message's record, read raw (store closed). */
static int raw_record_format(fx *f, const char *id) {
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_env *env = raw_open(f, "messages", &txn, &dbi);
    MDB_val k = {SR_ID_LEN, (void *)id}, v;
    CHECK_INT(mdb_get(txn, dbi, &k, &v), 0);
    int format = ((const unsigned char *)v.mv_data)[0];
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return format;
}

/* Makes f's store look written by smsrules before the binary record: every message record in JSON
 * (the indexes were the same then) and schema version 1. */
static void make_json_store(fx *f, char ids[][SR_ID_LEN + 1], const sr_message *msgs, int n) {
    MDB_txn *txn;
    MDB_dbi dbi, meta;
    MDB_env *env = raw_open(f, "messages", &txn, &dbi);
    for (int i = 0; i < n; i++) {
        sr_buf b;
        sr_buf_init(&b);
        sr_message_encode_json(&msgs[i], &b);
        MDB_val k = {SR_ID_LEN, ids[i]}, v = {b.len, b.data};
        CHECK_INT(mdb_put(txn, dbi, &k, &v, 0), 0);
        sr_buf_free(&b);
    }
    CHECK_INT(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    MDB_val k = {14, (void *)"schema_version"}, v = {1, (void *)"1"};
    CHECK_INT(mdb_put(txn, meta, &k, &v, 0), 0);
    CHECK_INT(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* The API JSON of a stored message (caller frees). */
static char *stored_api_json(fx *f, const char *id) {
    sr_message m;
    CHECK_INT(sr_store_get_message(f->s, id, &m), 0);
    sr_buf b;
    sr_buf_init(&b);
    sr_message_to_api_json(&m, &b);
    sr_message_free(&m);
    return sr_buf_steal(&b, NULL);
}

static int count_scanned(const sr_message *m, void *ud) {
    (void)m;
    (*(int *)ud)++;
    return 0;
}

TEST(store_serves_json_records_of_older_versions) {
    fx f;
    fx_open(&f, 0, 0);
    int64_t now = sr_now_ms();
    char ids[3][SR_ID_LEN + 1];
    sr_message msgs[3];
    char *before[3];
    put_one(&f, 1, now - 2000, 0, SR_ST_QUEUED, ids[0]);
    put_one(&f, 2, now - 1000, 0, SR_ST_QUEUED, ids[1]);
    put_one(&f, 0, now, 0, SR_ST_QUEUED, ids[2]);
    change c = {
        .status = SR_ST_SENDING, .at_ms = now, .provider = "p1", .provider_id = "X-1", .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, ids[1], &c), 0);
    c = (change){.status = SR_ST_SENT, .at_ms = now + 5, .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, ids[1], &c), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(sr_store_get_message(f.s, ids[i], &msgs[i]), 0);
        before[i] = stored_api_json(&f, ids[i]);
    }
    fx_close_store(&f);
    make_json_store(&f, ids, msgs, 3);
    CHECK_INT(raw_record_format(&f, ids[0]), SR_MESSAGE_FORMAT_JSON);

    fx_open_store(&f, 0, 0);
    for (int i = 0; i < 3; i++) {
        char *after = stored_api_json(&f, ids[i]);
        CHECK_STR(after, before[i]); /* every message served unchanged */
        free(after);
    }
    int scanned = 0;
    CHECK_INT(sr_store_scan_messages(f.s, NULL, 0, 10, count_scanned, &scanned, NULL), 3);
    CHECK_INT(scanned, 3);
    char found[SR_ID_LEN + 1];
    CHECK_INT(sr_store_find_provider_id(f.s, "p1", "x-1", found), 0);
    CHECK_STR(found, ids[1]);
    sr_queue_entry q[4];
    CHECK_INT(sr_store_queue_due(f.s, now + 1, q, 4), 2);
    /* A change rewrites the record in the binary format; the rest stay JSON until they change. */
    c = (change){
        .status = SR_ST_SENDING, .at_ms = now + 10, .provider = "p2", .provider_id = "Y", .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, ids[0], &c), 0);
    sr_message m;
    CHECK_INT(sr_store_get_message(f.s, ids[0], &m), 0);
    CHECK_INT(m.status, SR_ST_SENDING);
    CHECK_INT(m.history_count, msgs[0].history_count + 1);
    CHECK_STR(m.to, msgs[0].to);
    sr_message_free(&m);
    CHECK_INT(sr_store_queue_due(f.s, now + 1, q, 4), 1);
    fx_close_store(&f);
    CHECK_INT(raw_record_format(&f, ids[0]), SR_MESSAGE_FORMAT_BINARY);
    CHECK_INT(raw_record_format(&f, ids[2]), SR_MESSAGE_FORMAT_JSON);

    /* The schema version was raised on open: an older smsrules refuses the store instead of failing on a
     * binary record. */
    MDB_txn *txn;
    MDB_dbi meta;
    MDB_env *env = raw_open(&f, "meta", &txn, &meta);
    MDB_val k = {14, (void *)"schema_version"}, v;
    CHECK_INT(mdb_get(txn, meta, &k, &v), 0);
    CHECK(v.mv_size == 1 && memcmp(v.mv_data, "2", 1) == 0);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    for (int i = 0; i < 3; i++) {
        sr_message_free(&msgs[i]);
        free(before[i]);
    }
    fx_close(&f);
}

TEST(store_refuses_newer_schema) {
    fx f;
    fx_open(&f, 0, 0);
    fx_close_store(&f);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    CHECK_INT(mdb_env_create(&env), 0);
    CHECK_INT(mdb_env_set_maxdbs(env, 16), 0);
    CHECK_INT(mdb_env_open(env, f.dir, 0, 0640), 0);
    CHECK_INT(mdb_txn_begin(env, NULL, 0, &txn), 0);
    CHECK_INT(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    MDB_val k = {14, (void *)"schema_version"}, v;
    CHECK_INT(mdb_get(txn, dbi, &k, &v), 0);
    CHECK_INT(v.mv_size, 1);
    CHECK(memcmp(v.mv_data, "2", 1) == 0); /* written on create */
    v = (MDB_val){1, (void *)"3"};
    CHECK_INT(mdb_put(txn, dbi, &k, &v, 0), 0);
    CHECK_INT(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    sr_store_options opt = {.dir = f.dir};
    char err[256];
    CHECK(sr_store_open(&f.s, &f.loop, &opt, err, sizeof err) < 0);
    CHECK(f.s == NULL);
    CHECK(strstr(err, "schema version 3") != NULL);
    fx_close(&f);
}

/* Puts n messages, `per_pass` per loop pass; fills statuses (0 or a code) per message. */
static void put_many(fx *f, int n, int per_pass, int *statuses, char (*ids)[SR_ID_LEN + 1]) {
    result *rs = calloc((size_t)n, sizeof *rs);
    int64_t now = sr_now_ms();
    for (int i = 0; i < n; i += per_pass) {
        for (int j = i; j < i + per_pass && j < n; j++) {
            sr_message m;
            make_message(&m, j % 4, now);
            char text[400];
            snprintf(text, sizeof text, "message %d %0300d", j, j);
            sr_message_set_str(&m.text, text);
            sr_message_set_status(&m, SR_ST_QUEUED, now);
            sr_store_txn *t = sr_store_txn_new(f->s);
            sr_store_txn_put_message(t, &m, NULL, 0);
            sr_store_txn_submit(t, on_done, &rs[j]);
        }
        uv_run(&f->loop, UV_RUN_DEFAULT);
    }
    for (int j = 0; j < n; j++) {
        CHECK(rs[j].done);
        statuses[j] = rs[j].status;
        strcpy(ids[j], rs[j].ids[0]);
    }
    free(rs);
}

TEST(store_map_grows) {
    enum { N = 5000 };
    fx f;
    fx_open(&f, 1 << 20, 0);
    static int statuses[N];
    static char ids[N][SR_ID_LEN + 1];
    put_many(&f, N, 250, statuses, ids);
    for (int i = 0; i < N; i++) CHECK_INT(statuses[i], 0);
    sr_store_stats st;
    sr_store_get_stats(f.s, &st);
    CHECK(st.grows >= 1);
    CHECK(st.map_size > (1u << 20));
    CHECK(st.map_used > (1u << 20));
    CHECK(st.map_used <= st.map_size);
    CHECK_INT(st.units, N);
    for (int i = 0; i < N; i++) {
        sr_message got;
        CHECK_INT(sr_store_get_message(f.s, ids[i], &got), 0);
        char text[32];
        snprintf(text, sizeof text, "message %d ", i);
        CHECK(strncmp(got.text, text, strlen(text)) == 0);
        sr_message_free(&got);
    }
    char status_ids[8][SR_ID_LEN + 1];
    CHECK_INT(sr_store_list_status(f.s, SR_ST_QUEUED, ids[N - 2], status_ids, 8), 1);
    fx_close_store(&f);
    /* The grown size is kept by the file. */
    fx_open_store(&f, 1 << 20, 0);
    sr_store_stats st2;
    sr_store_get_stats(f.s, &st2);
    CHECK_INT(st2.map_size, st.map_size);
    fx_close(&f);
}

TEST(store_map_full_fails_new_work_only) {
    enum { N = 3000 };
    fx f;
    fx_open(&f, 1 << 20, 1 << 20);
    static int statuses[N];
    static char ids[N][SR_ID_LEN + 1];
    put_many(&f, N, 100, statuses, ids);
    int ok = 0, full = 0;
    for (int i = 0; i < N; i++) {
        if (statuses[i] == 0) ok++;
        else if (statuses[i] == SR_E_FULL)
            full++;
        else
            UNIT_FAIL("message %d: status %d", i, statuses[i]);
    }
    CHECK(ok > 100);
    CHECK(full > 0);
    CHECK_INT(ok + full, N);
    for (int i = 0; i < N; i++) {
        sr_message got;
        int rc = sr_store_get_message(f.s, ids[i], &got);
        CHECK_INT(rc, statuses[i] == 0 ? 0 : SR_E_NOTFOUND);
        sr_message_free(&got);
    }
    sr_store_stats st;
    sr_store_get_stats(f.s, &st);
    CHECK_INT(st.grows, 0);
    CHECK_INT(st.map_size, 1 << 20);
    /* kv_set (new data) fills what room the failed batches left, then is refused as well. */
    result r;
    char big[200];
    memset(big, 'v', sizeof big);
    int kv_status = 0, rounds = 0;
    for (; rounds < 1000 && kv_status == 0; rounds++) {
        sr_store_txn *t = sr_store_txn_new(f.s);
        for (int i = 0; i < 20; i++) {
            char key[32];
            snprintf(key, sizeof key, "key%d-%d", rounds, i);
            sr_store_txn_kv_set(t, key, strlen(key), big, sizeof big, 0);
        }
        kv_status = run_unit(&f, t, &r);
    }
    CHECK_INT(kv_status, SR_E_FULL);
    CHECK(rounds < 100);
    sr_buf v;
    sr_buf_init(&v);
    CHECK_INT(sr_store_kv_get(f.s, "key0-0", 6, sr_now_ms(), &v), rounds > 1 ? 0 : SR_E_NOTFOUND);
    sr_buf_free(&v);
    fx_close_store(&f);
    /* After reopening everything committed is still there. */
    fx_open_store(&f, 1 << 20, 1 << 20);
    for (int i = 0; i < N; i += 97) {
        sr_message got;
        CHECK_INT(sr_store_get_message(f.s, ids[i], &got), statuses[i] == 0 ? 0 : SR_E_NOTFOUND);
        sr_message_free(&got);
    }
    fx_close(&f);
}

TEST(store_batch_redone_after_growth_applies_updates_once) {
    enum { OLD = 600, NEW = 1500 };
    fx f;
    fx_open(&f, 1 << 20, 0);
    static int statuses[OLD];
    static char ids[OLD][SR_ID_LEN + 1];
    put_many(&f, OLD, OLD, statuses, ids);
    sr_store_stats st;
    sr_store_get_stats(f.s, &st);
    uint64_t grows_before = st.grows;
    /* One pass: updates of every old message, then enough new ones to overflow the map. */
    static change changes[OLD];
    static result rs[OLD + NEW];
    int64_t now = sr_now_ms();
    for (int i = 0; i < OLD; i++) {
        changes[i] = (change){.status = SR_ST_SENDING, .at_ms = now, .next_attempt_at_ms = -1};
        sr_store_txn *t = sr_store_txn_new(f.s);
        sr_store_txn_update_message(t, ids[i], mutate, &changes[i]);
        sr_store_txn_submit(t, on_done, &rs[i]);
    }
    for (int i = 0; i < NEW; i++) {
        sr_message m;
        make_message(&m, 0, now);
        char text[400];
        snprintf(text, sizeof text, "new %0380d", i);
        sr_message_set_str(&m.text, text);
        sr_store_txn *t = sr_store_txn_new(f.s);
        sr_store_txn_put_message(t, &m, NULL, 0);
        sr_store_txn_submit(t, on_done, &rs[OLD + i]);
    }
    uv_run(&f.loop, UV_RUN_DEFAULT);
    sr_store_get_stats(f.s, &st);
    CHECK(st.grows > grows_before);
    int redone = 0;
    for (int i = 0; i < OLD + NEW; i++) CHECK_INT(rs[i].status, 0);
    for (int i = 0; i < OLD; i++) {
        redone += changes[i].calls > 1;
        sr_message got;
        CHECK_INT(sr_store_get_message(f.s, ids[i], &got), 0);
        CHECK_INT(got.status, SR_ST_SENDING);
        CHECK_INT(got.history_count, 3); /* accepted, queued, sending: once, however often the mutator ran */
        sr_message_free(&got);
    }
    CHECK(redone > 0); /* the batch really was redone */
    fx_close(&f);
}

static int make_huge(sr_message *m, void *arg) {
    size_t n = 2u << 20; /* bigger than the whole map */
    char *text = malloc(n + 1);
    memset(text, 'x', n);
    text[n] = '\0';
    free(m->text);
    m->text = text;
    return 0;
}

TEST(store_full_map_fails_only_what_cannot_fit) {
    fx f;
    fx_open(&f, 1 << 20, 1 << 20);
    int64_t now = sr_now_ms();
    char a[SR_ID_LEN + 1], b[SR_ID_LEN + 1];
    put_one(&f, 0, now, 0, SR_ST_QUEUED, a);
    put_one(&f, 0, now, 0, SR_ST_QUEUED, b);
    result r0;
    sr_store_txn *t = sr_store_txn_new(f.s);
    sr_store_txn_kv_set(t, "x", 1, "1", 1, 0);
    CHECK_INT(run_unit(&f, t, &r0), 0);

    /* One batch: an update too big for the map, a small update, a delete and a new message. */
    result r[4];
    memset(r, 0, sizeof r);
    t = sr_store_txn_new(f.s);
    sr_store_txn_update_message(t, a, make_huge, NULL);
    sr_store_txn_submit(t, on_done, &r[0]);
    change c = {.status = SR_ST_SENDING, .at_ms = now, .next_attempt_at_ms = -1};
    t = sr_store_txn_new(f.s);
    sr_store_txn_update_message(t, b, mutate, &c);
    sr_store_txn_submit(t, on_done, &r[1]);
    t = sr_store_txn_new(f.s);
    sr_store_txn_kv_del(t, "x", 1);
    sr_store_txn_submit(t, on_done, &r[2]);
    sr_message m;
    make_message(&m, 0, now);
    t = sr_store_txn_new(f.s);
    sr_store_txn_put_message(t, &m, NULL, 0);
    sr_store_txn_submit(t, on_done, &r[3]);
    uv_run(&f.loop, UV_RUN_DEFAULT);

    CHECK_INT(r[0].status, SR_E_FULL);
    CHECK_INT(r[1].status, 0);
    CHECK_INT(r[2].status, 0);
    CHECK_INT(r[3].status, SR_E_FULL); /* the map could not grow: new work waits for room */
    sr_message got;
    CHECK_INT(sr_store_get_message(f.s, a, &got), 0);
    CHECK_STR(got.text, "Your code is 1234"); /* untouched */
    sr_message_free(&got);
    CHECK_INT(sr_store_get_message(f.s, b, &got), 0);
    CHECK_INT(got.status, SR_ST_SENDING);
    sr_message_free(&got);
    sr_buf v;
    sr_buf_init(&v);
    CHECK_INT(sr_store_kv_get(f.s, "x", 1, now, &v), SR_E_NOTFOUND);
    sr_buf_free(&v);

    /* The next batch starts afresh: a message that fits is taken. */
    char c_id[SR_ID_LEN + 1];
    put_one(&f, 0, now, 0, SR_ST_QUEUED, c_id);
    fx_close(&f);
}

/* Callbacks: in submit order, after the commit, and units submitted from a callback commit too. */
typedef struct order_ctx {
    fx *f;
    int next;
    int bad_order;
    int not_found;
    int chained;
    int chain_done;
    char ids[64][SR_ID_LEN + 1];
} order_ctx;

static order_ctx *order;

static void on_chain_done(sr_store_txn *t, void *ud) { order->chain_done = sr_store_txn_status(t) == 0 ? 1 : -1; }

static void on_ordered(sr_store_txn *t, void *ud) {
    int i = (int)(intptr_t)ud;
    if (i != order->next) order->bad_order = 1;
    order->next++;
    sr_message m;
    if (sr_store_get_message(order->f->s, sr_store_txn_id(t, 0), &m) != 0) order->not_found++;
    sr_message_free(&m);
    if (i == 10 && !order->chained) {
        order->chained = 1;
        sr_store_txn *t2 = sr_store_txn_new(order->f->s);
        sr_store_txn_kv_set(t2, "chained", 7, "yes", 3, 0);
        sr_store_txn_submit(t2, on_chain_done, NULL);
    }
}

TEST(store_callbacks_in_order_after_commit) {
    fx f;
    fx_open(&f, 0, 0);
    order_ctx ctx = {.f = &f};
    order = &ctx;
    int64_t now = sr_now_ms();
    for (int i = 0; i < 64; i++) {
        sr_message m;
        make_message(&m, i % 4, now);
        sr_store_txn *t = sr_store_txn_new(f.s);
        sr_store_txn_put_message(t, &m, NULL, 0);
        sr_store_txn_submit(t, on_ordered, (void *)(intptr_t)i);
        if (i == 31) uv_run(&f.loop, UV_RUN_NOWAIT); /* hand the first half over while the rest collects */
    }
    uv_run(&f.loop, UV_RUN_DEFAULT);
    CHECK_INT(ctx.next, 64);
    CHECK(!ctx.bad_order);
    CHECK_INT(ctx.not_found, 0);
    CHECK_INT(ctx.chain_done, 1);
    sr_buf v;
    sr_buf_init(&v);
    CHECK_INT(sr_store_kv_get(f.s, "chained", 7, now, &v), 0);
    sr_buf_free(&v);
    sr_store_stats st;
    sr_store_get_stats(f.s, &st);
    CHECK(st.commits >= 2);
    CHECK_INT(st.units, 65);
    CHECK(st.last_commit_ms > 0);
    fx_close(&f);
}

static result timer_result;

static void on_timer_submit(uv_timer_t *timer) {
    fx *f = timer->data;
    sr_store_txn *t = sr_store_txn_new(f->s);
    sr_store_txn_kv_set(t, "from-timer", 10, "1", 1, 0);
    sr_store_txn_submit(t, on_done, &timer_result);
    uv_close((uv_handle_t *)timer, NULL);
}

TEST(store_submit_from_timer_does_not_stall) {
    fx f;
    fx_open(&f, 0, 0);
    uv_timer_t timer;
    uv_timer_init(&f.loop, &timer);
    timer.data = &f;
    uv_timer_start(&timer, on_timer_submit, 1, 0);
    uv_run(&f.loop, UV_RUN_DEFAULT); /* would block forever if nothing handed the unit over */
    CHECK(timer_result.done);
    CHECK_INT(timer_result.status, 0);
    fx_close(&f);
}

TEST(store_close_flushes_pending) {
    fx f;
    fx_open(&f, 0, 0);
    result r;
    memset(&r, 0, sizeof r);
    sr_store_txn *t = sr_store_txn_new(f.s);
    sr_store_txn_kv_set(t, "late", 4, "1", 1, 0);
    sr_store_txn_submit(t, on_done, &r);
    fx_close_store(&f); /* no loop pass in between */
    CHECK(r.done);
    CHECK_INT(r.status, 0);
    fx_open_store(&f, 0, 0);
    sr_buf v;
    sr_buf_init(&v);
    CHECK_INT(sr_store_kv_get(f.s, "late", 4, sr_now_ms(), &v), 0);
    sr_buf_free(&v);
    fx_close(&f);
}

TEST(store_strerror_names_every_code) {
    int codes[] = {SR_E_NOTFOUND, SR_E_CORRUPT, SR_E_FULL,    SR_E_IO,     SR_E_CONFLICT,
                   SR_E_EXISTS,   SR_E_STATE,   SR_E_INVALID, SR_E_LOCKED, SR_E_UNAVAILABLE};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        CHECK(strcmp(sr_store_strerror(codes[i]), "unknown error") != 0);
    CHECK_STR(sr_store_strerror(0), "ok");
}

TEST(provider_ids_match_after_normalising_case_and_leading_zeros) {
    char out[64];
    CHECK_INT(sr_store_normalize_provider_id("  00AbC123 ", out, sizeof out), 6);
    CHECK_STR(out, "abc123");
    sr_store_normalize_provider_id("0000", out, sizeof out);
    CHECK_STR(out, "0");
    sr_store_normalize_provider_id("3482512350952730368", out, sizeof out);
    CHECK_STR(out, "3482512350952730368");
}

/* ---- the lock, the start-up check, the reserve ---- */

TEST(store_lock_refuses_a_second_open_naming_the_holder) {
    fx f;
    fx_open(&f, 0, 0);
    sr_store_options opt = {.dir = f.dir};
    char err[512], pid[32];
    sr_store *second = NULL;
    CHECK_INT(sr_store_open(&second, &f.loop, &opt, err, sizeof err), SR_E_LOCKED);
    CHECK(second == NULL);
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    CHECK(strstr(err, pid) != NULL);
    CHECK(strstr(err, f.dir) != NULL);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    /* The lock goes with the store: the directory opens again after close. */
    fx_close_store(&f);
    fx_open_store(&f, 0, 0);
    fx_close(&f);
}

/* Fills a store with some messages, closes it, damages data.mdb by `how` and opens it again. */
static int reopen_damaged(fx *f, void (*how)(int fd, off_t size), char *err, size_t errlen) {
    char id[SR_ID_LEN + 1];
    for (int i = 0; i < 50; i++) put_one(f, 0, sr_now_ms(), 0, SR_ST_QUEUED, id);
    fx_close_store(f);
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    struct stat st;
    CHECK_INT(fstat(fd, &st), 0);
    how(fd, st.st_size);
    close(fd);
    sr_store_options opt = {.dir = f->dir};
    int rc = sr_store_open(&f->s, &f->loop, &opt, err, errlen);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return rc;
}

static void cut_to_zero(int fd, off_t size) { CHECK_INT(ftruncate(fd, 0), 0); }
static void cut_to_one_page(int fd, off_t size) { CHECK_INT(ftruncate(fd, 4096), 0); }
static void cut_last_page(int fd, off_t size) { CHECK_INT(ftruncate(fd, size - 4096), 0); }
static void break_meta_magic(int fd, off_t size) { CHECK_INT(pwrite(fd, "\0\0\0\0", 4, 4096 + 16), 4); }
static void break_root_pointer(int fd, off_t size) {
    uint64_t bad = (uint64_t)size; /* a page number past the end */
    CHECK_INT(pwrite(fd, &bad, 8, 128), 8);
    CHECK_INT(pwrite(fd, &bad, 8, 4096 + 128), 8);
}
static void break_free_db_flags(int fd, off_t size) {
    uint16_t dupsort = 0x05; /* FIXEDMAP | DUPSORT, without INTEGERKEY: found by fuzz_store_open */
    CHECK_INT(pwrite(fd, &dupsort, 2, 44), 2);
    CHECK_INT(pwrite(fd, &dupsort, 2, 4096 + 44), 2);
}
/* Marks the 'queue' database DUPSORT in its record in the main database (every copy in the file). */
static void break_named_db_flags(int fd, off_t size) {
    unsigned char *file = malloc((size_t)size);
    CHECK(file != NULL);
    CHECK_INT(pread(fd, file, (size_t)size, 0), size);
    int found = 0;
    /* A leaf node: data size (4), flags (2: F_SUBDATA), key size (2), the key, then the MDB_db (pad 4, flags 2). */
    for (off_t i = 8; i + 5 + 6 <= size; i++) {
        if (memcmp(file + i, "queue", 5) != 0 || file[i - 2] != 5 || file[i - 1] != 0 || file[i - 4] != 2) continue;
        uint16_t dupsort = 0x04;
        CHECK_INT(pwrite(fd, &dupsort, 2, i + 5 + 4), 2);
        found++;
    }
    CHECK(found > 0);
    free(file);
}
static void garble_data_pages(int fd, off_t size) {
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 7 + 3);
    for (off_t off = 2 * 4096; off < size; off += 4096) CHECK_INT(pwrite(fd, junk, sizeof junk, off), 4096);
}

TEST(store_refuses_damaged_files_with_a_way_to_restore) {
    void (*hows[])(int, off_t) = {cut_to_zero,        cut_to_one_page,     cut_last_page,        break_meta_magic,
                                  break_root_pointer, break_free_db_flags, break_named_db_flags, garble_data_pages};
    const char *expect[] = {"empty", "truncated", "truncated", "magic", "root", "database flags", "'queue' has", ""};
    for (size_t i = 0; i < sizeof hows / sizeof hows[0]; i++) {
        fx f;
        fx_open(&f, 0, 0);
        char err[1024];
        CHECK_INT(reopen_damaged(&f, hows[i], err, sizeof err), SR_E_CORRUPT);
        CHECK(f.s == NULL);
        if (!strstr(err, "damaged") || !strstr(err, "backup") || !strstr(err, expect[i]))
            UNIT_FAIL("case %zu: %s", i, err);
        fx_close(&f);
    }
}

TEST(store_reserve_refuses_new_data_but_applies_updates) {
    fx f;
    fx_open(&f, 0, 0);
    char id[SR_ID_LEN + 1];
    put_one(&f, 0, sr_now_ms(), 0, SR_ST_QUEUED, id);
    CHECK_INT(sr_store_full(f.s), 0);
    fx_close_store(&f);
    /* A reserve larger than any disk: always below it. */
    sr_store_options opt = {.dir = f.dir, .reserve = (size_t)1 << 62};
    char err[512];
    CHECK_INT(sr_store_open(&f.s, &f.loop, &opt, err, sizeof err), 0);
    CHECK_INT(sr_store_full(f.s), 1);
    sr_message m;
    make_message(&m, 0, sr_now_ms());
    sr_store_txn *t = sr_store_txn_new(f.s);
    sr_store_txn_put_message(t, &m, NULL, 0);
    result r;
    CHECK_INT(run_unit(&f, t, &r), SR_E_FULL);
    t = sr_store_txn_new(f.s);
    sr_store_txn_kv_set(t, "k", 1, "v", 1, 0);
    CHECK_INT(run_unit(&f, t, &r), SR_E_FULL);
    /* What happened to an accepted message is still written. */
    change c = {.status = SR_ST_SENDING, .at_ms = sr_now_ms(), .next_attempt_at_ms = -1};
    CHECK_INT(update_one(&f, id, &c), 0);
    sr_message got;
    CHECK_INT(sr_store_get_message(f.s, id, &got), 0);
    CHECK_INT(got.status, SR_ST_SENDING);
    sr_message_free(&got);
    sr_store_stats st;
    sr_store_get_stats(f.s, &st);
    CHECK_INT(st.refused_units, 2);
    CHECK(st.room < ((uint64_t)1 << 62));
    fx_close(&f);
}

static int collect_ids(const sr_message *m, void *ud) {
    sr_buf *b = ud;
    sr_buf_append(b, m->id, SR_ID_LEN);
    sr_buf_putc(b, ' ');
    return 0;
}

static int collect_keys(const char *key, size_t klen, const char *val, size_t vlen, int64_t exp, void *ud) {
    sr_buf *b = ud;
    sr_buf_append(b, key, klen);
    sr_buf_putc(b, ' ');
    return 0;
}

/* The console's newest-first walks: messages by id, by status, a record space, and the key-only count. */
TEST(store_newest_first_scans_and_count) {
    fx f;
    fx_open(&f, 0, 0);
    int64_t t0 = sr_now_ms() + 10000;
    char ids[5][SR_ID_LEN + 1];
    for (int i = 0; i < 5; i++) put_one(&f, 0, t0 + i * 1000, 0, i % 2 ? SR_ST_QUEUED : SR_ST_SENT, ids[i]);
    sr_buf b;
    sr_buf_init(&b);
    char last[SR_ID_LEN + 1];
    CHECK_INT(sr_store_scan_messages_before(f.s, NULL, 0, 10, collect_ids, &b, last), 5);
    char want[6 * (SR_ID_LEN + 1) + 1];
    snprintf(want, sizeof want, "%s %s %s %s %s ", ids[4], ids[3], ids[2], ids[1], ids[0]);
    CHECK_STR(sr_buf_cstr(&b), want);
    CHECK_STR(last, ids[0]);
    /* A page of two, then on from its last id; and a lower time bound. */
    sr_buf_reset(&b);
    CHECK_INT(sr_store_scan_messages_before(f.s, NULL, 0, 2, collect_ids, &b, last), 2);
    CHECK_STR(last, ids[3]);
    sr_buf_reset(&b);
    CHECK_INT(sr_store_scan_messages_before(f.s, last, 0, 10, collect_ids, &b, NULL), 3);
    snprintf(want, sizeof want, "%s %s %s ", ids[2], ids[1], ids[0]);
    CHECK_STR(sr_buf_cstr(&b), want);
    sr_buf_reset(&b);
    CHECK_INT(sr_store_scan_messages_before(f.s, ids[3], t0 + 1000, 10, collect_ids, &b, NULL), 2);
    snprintf(want, sizeof want, "%s %s ", ids[2], ids[1]);
    CHECK_STR(sr_buf_cstr(&b), want);
    /* By status, newest first, before an id. */
    char got[5][SR_ID_LEN + 1];
    CHECK_INT(sr_store_list_status_back(f.s, SR_ST_SENT, NULL, got, 5), 3);
    CHECK_STR(got[0], ids[4]);
    CHECK_STR(got[2], ids[0]);
    CHECK_INT(sr_store_list_status_back(f.s, SR_ST_SENT, ids[4], got, 5), 2);
    CHECK_STR(got[0], ids[2]);
    CHECK_INT(sr_store_list_status_back(f.s, SR_ST_QUEUED, NULL, got, 1), 1);
    CHECK_STR(got[0], ids[3]);
    CHECK_INT(sr_store_list_status_back(f.s, SR_ST_FAILED, NULL, got, 5), 0);
    /* Counting by creation time, keys only. */
    CHECK_INT(sr_store_count_messages(f.s, t0, t0 + 5000, 100), 5);
    CHECK_INT(sr_store_count_messages(f.s, t0 + 1000, t0 + 3000, 100), 2);
    CHECK_INT(sr_store_count_messages(f.s, t0, t0 + 5000, 3), 3);
    CHECK_INT(sr_store_count_messages(f.s, t0 + 9000, t0 + 19000, 100), 0);
    /* A record space backwards. */
    sr_store_txn *t = sr_store_txn_new(f.s);
    sr_store_txn_set(t, SR_SPACE_INBOUND, "a", 1, "1", 1, 0);
    sr_store_txn_set(t, SR_SPACE_INBOUND, "b", 1, "2", 1, 0);
    sr_store_txn_set(t, SR_SPACE_INBOUND, "c", 1, "3", 1, 0);
    result r;
    CHECK_INT(run_unit(&f, t, &r), 0);
    sr_buf_reset(&b);
    CHECK_INT(sr_store_scan_back(f.s, SR_SPACE_INBOUND, NULL, 0, 10, collect_keys, &b), 3);
    CHECK_STR(sr_buf_cstr(&b), "c b a ");
    sr_buf_reset(&b);
    CHECK_INT(sr_store_scan_back(f.s, SR_SPACE_INBOUND, "c", 1, 1, collect_keys, &b), 1);
    CHECK_STR(sr_buf_cstr(&b), "b ");
    sr_buf_reset(&b);
    CHECK_INT(sr_store_scan_back(f.s, SR_SPACE_INBOUND, "bz", 2, 10, collect_keys, &b), 2);
    CHECK_STR(sr_buf_cstr(&b), "b a ");
    sr_buf_free(&b);
    fx_close(&f);
}

TEST(store_take_deletes_once_and_fails_a_second_taker) {
    fx f;
    fx_open(&f, 0, 0);
    result r1, r2;
    sr_store_txn *t = sr_store_txn_new(f.s);
    sr_store_txn_set(t, SR_SPACE_PARKED, "mock/abc/1", 10, "report", 6, 0);
    CHECK_INT(run_unit(&f, t, &r1), 0);
    /* Two units take the same record: the first gets it, the second fails whole (its kv write too). */
    t = sr_store_txn_new(f.s);
    sr_store_txn_take(t, SR_SPACE_PARKED, "mock/abc/1", 10);
    sr_store_txn *t2 = sr_store_txn_new(f.s);
    sr_store_txn_kv_set(t2, "applied", 7, "yes", 3, 0);
    sr_store_txn_take(t2, SR_SPACE_PARKED, "mock/abc/1", 10);
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    sr_store_txn_submit(t, on_done, &r1);
    sr_store_txn_submit(t2, on_done, &r2);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    CHECK_INT(r1.status, 0);
    CHECK_INT(r2.status, SR_E_NOTFOUND);
    CHECK_INT(r2.results[1], SR_E_NOTFOUND);
    sr_buf v;
    sr_buf_init(&v);
    CHECK_INT(sr_store_kv_get(f.s, "applied", 7, sr_now_ms(), &v), SR_E_NOTFOUND);
    CHECK_INT(sr_store_get(f.s, SR_SPACE_PARKED, "mock/abc/1", 10, sr_now_ms(), &v, NULL), SR_E_NOTFOUND);
    sr_buf_free(&v);
    fx_close(&f);
}

TEST(store_gcra_takes_tokens_in_unit_order) {
    fx f;
    fx_open(&f, 0, 0);
    /* 3 events an hour: three pass at once, the fourth learns how long to wait (about 20 minutes). */
    int64_t interval = 1200LL * 1000000, tolerance = 2 * interval;
    result r[4];
    for (int i = 0; i < 4; i++) {
        sr_store_txn *t = sr_store_txn_new(f.s);
        sr_store_txn_gcra(t, "\x01rl:k", 5, interval, tolerance);
        memset(&r[i], 0, sizeof r[i]);
        sr_store_txn_submit(t, on_done, &r[i]);
    }
    uv_run(&f.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(r[i].status, 0);
        CHECK_INT(r[i].ints[0], 0);
    }
    CHECK_INT(r[3].status, 0);
    CHECK(r[3].ints[0] > interval - 5000000 && r[3].ints[0] <= interval);
    /* The TAT is kept as sms.ratelimit keeps it: decimal µs. */
    sr_buf v;
    sr_buf_init(&v);
    CHECK_INT(sr_store_kv_get(f.s, "\x01rl:k", 5, sr_now_ms(), &v), 0);
    CHECK(strtoll(sr_buf_cstr(&v), NULL, 10) > sr_now_ms() * 1000 + 2 * interval);
    sr_buf_free(&v);
    fx_close(&f);
}
