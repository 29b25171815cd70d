/* Tests of the store's cluster mode (store/store_cluster.c): two nodes, each with its own replica,
 * on one real JetStream server (Debian's nats-server, started per test on a free loopback port
 * with its own store directory, killed with the test). Both nodes run on one loop here; the
 * daemon runs one per process. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "model/message.h"
#include "store/store.h"
#include "unit.h"

typedef struct natsd {
    char dir[64];
    char url[64];
    pid_t pid;
} natsd;

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int port_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* A JetStream server of its own; it dies with the test process. */
static void natsd_start(natsd *n) {
    strcpy(n->dir, "/tmp/sr_natsd_XXXXXX");
    CHECK(mkdtemp(n->dir) != NULL);
    int port = free_port();
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(n->url, sizeof n->url, "nats://127.0.0.1:%d", port);
    n->pid = fork();
    CHECK(n->pid >= 0);
    if (n->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execlp("nats-server", "nats-server", "-js", "-a", "127.0.0.1", "-p", port_s, "-sd", n->dir, (char *)NULL);
        _exit(127);
    }
    for (int64_t deadline = mono_ms() + 5000; !port_open(port); usleep(10000))
        if (mono_ms() > deadline) UNIT_FAIL("nats-server did not listen on %d (is it installed?)", port);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) { return remove(path); }

static void natsd_stop(natsd *n) {
    kill(n->pid, SIGKILL);
    waitpid(n->pid, NULL, 0);
    nftw(n->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

typedef struct node {
    char dir[64];
    char name[16];
    sr_store *s;
} node;

static uv_loop_t loop;

static int node_open(node *nd, const natsd *n, const char *name, char *err, size_t errlen) {
    if (!nd->dir[0]) {
        strcpy(nd->dir, "/tmp/sr_node_XXXXXX");
        CHECK(mkdtemp(nd->dir) != NULL);
    }
    snprintf(nd->name, sizeof nd->name, "%s", name);
    sr_store_options opt = {.dir = nd->dir,
                            .cluster = n->url,
                            .cluster_stream = "TEST",
                            .cluster_replicas = 1,
                            .node = nd->name,
                            .node_timeout_ms = 300};
    return sr_store_open(&nd->s, &loop, &opt, err, errlen);
}

static void node_up(node *nd, const natsd *n, const char *name) {
    char err[512];
    int rc = node_open(nd, n, name, err, sizeof err);
    if (rc) UNIT_FAIL("node %s: %d %s", name, rc, err);
}

static void node_close(node *nd) {
    sr_store_close(nd->s);
    nd->s = NULL;
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void node_remove(node *nd) {
    if (nd->s) node_close(nd);
    nftw(nd->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* A server and two nodes on it, "a" and "b" (the common start of a test). */
static void two_nodes(natsd *n, node *a, node *b) {
    natsd_start(n);
    uv_loop_init(&loop);
    node_up(a, n, "a");
    node_up(b, n, "b");
}

static void two_nodes_done(natsd *n, node *a, node *b) {
    node_remove(a);
    node_remove(b);
    natsd_stop(n);
}

/* One turn of waiting for something (the loop, then 2 ms); 0 once past deadline. */
static int waiting(int64_t deadline) {
    if (mono_ms() > deadline) return 0;
    uv_run(&loop, UV_RUN_NOWAIT);
    usleep(2000);
    return 1;
}

typedef struct result {
    int done, status, result0;
    char id[SR_ID_LEN + 1];
    int64_t value;
} result;

static void on_done(sr_store_txn *t, void *ud) {
    result *r = ud;
    r->done = 1;
    r->status = sr_store_txn_status(t);
    r->result0 = sr_store_txn_result(t, 0);
    const char *id = sr_store_txn_id(t, 0);
    snprintf(r->id, sizeof r->id, "%s", id ? id : "");
    r->value = sr_store_txn_int(t, 0);
}

/* Runs the loop until every one of n results is in (5 s at most). */
static void wait_done(result *r, int n) {
    int64_t deadline = mono_ms() + 5000;
    for (;;) {
        int all = 1;
        for (int i = 0; i < n; i++) all &= r[i].done;
        if (all) return;
        if (mono_ms() > deadline) UNIT_FAIL("units not done within 5 s");
        uv_run(&loop, UV_RUN_ONCE);
    }
}

static void put(node *nd, const char *text, const char *idem, result *r) {
    sr_message m;
    sr_message_init(&m);
    sr_message_set_str(&m.to, "+84912345678");
    sr_message_set_str(&m.text, text);
    m.created_at_ms = sr_now_ms();
    m.expires_at_ms = m.created_at_ms + 3600 * 1000;
    sr_message_set_status(&m, SR_ST_ACCEPTED, m.created_at_ms);
    sr_store_txn *t = sr_store_txn_new(nd->s);
    sr_store_txn_put_message(t, &m, idem, 42);
    memset(r, 0, sizeof *r);
    sr_store_txn_submit(t, on_done, r);
}

/* The message as node nd's replica has it, waited for (it may still be on its way). */
static void wait_message(node *nd, const char *id, const char *text) {
    int64_t deadline = mono_ms() + 5000;
    for (;;) {
        sr_message m;
        int rc = sr_store_get_message(nd->s, id, &m);
        int ok = rc == 0 && (!text || (m.text && strcmp(m.text, text) == 0));
        sr_message_free(&m);
        if (ok) return;
        if (!waiting(deadline)) UNIT_FAIL("%s: message %s (%s) not in the replica", nd->name, id, text ? text : "");
    }
}

TEST(a_message_put_on_one_node_is_in_the_other_nodes_replica) {
    natsd n;
    node a = {0}, b = {0};
    two_nodes(&n, &a, &b);
    result r;
    put(&a, "hello from a", NULL, &r);
    wait_done(&r, 1);
    CHECK_INT(r.status, 0);
    CHECK_INT((int)strlen(r.id), SR_ID_LEN);
    wait_message(&a, r.id, "hello from a"); /* the writer's own replica has it when the callback runs */
    wait_message(&b, r.id, "hello from a");
    two_nodes_done(&n, &a, &b);
}

static int append_char(sr_message *m, void *arg) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s%s", m->text ? m->text : "", (const char *)arg);
    sr_message_set_str(&m->text, buf);
    return 0;
}

TEST(updates_racing_on_two_nodes_are_all_kept) {
    natsd n;
    node a = {0}, b = {0};
    two_nodes(&n, &a, &b);
    result r, ra[20], rb[20];
    put(&a, "", NULL, &r);
    wait_done(&r, 1);
    wait_message(&b, r.id, "");
    /* Both nodes submit in the same loop pass: their batches race for the same record. */
    for (int i = 0; i < 20; i++) {
        sr_store_txn *t = sr_store_txn_new(a.s);
        sr_store_txn_update_message(t, r.id, append_char, "a");
        memset(&ra[i], 0, sizeof ra[i]);
        sr_store_txn_submit(t, on_done, &ra[i]);
        t = sr_store_txn_new(b.s);
        sr_store_txn_update_message(t, r.id, append_char, "b");
        memset(&rb[i], 0, sizeof rb[i]);
        sr_store_txn_submit(t, on_done, &rb[i]);
    }
    wait_done(ra, 20);
    wait_done(rb, 20);
    for (int i = 0; i < 20; i++) {
        CHECK_INT(ra[i].status, 0);
        CHECK_INT(rb[i].status, 0);
    }
    /* The nodes' batches raced: one of them resolved its units again (counted). */
    sr_store_stats sa, sb;
    sr_store_get_stats(a.s, &sa);
    sr_store_get_stats(b.s, &sb);
    CHECK(sa.retried_units + sb.retried_units > 0);
    CHECK(sa.stream_seq > 0);
    /* No update overwrote another: 40 characters, 20 of each, the same on both replicas. */
    for (int k = 0; k < 2; k++) {
        node *nd = k ? &b : &a;
        int64_t deadline = mono_ms() + 5000;
        sr_message m;
        for (;;) {
            CHECK_INT(sr_store_get_message(nd->s, r.id, &m), 0);
            if (strlen(m.text) == 40 || !waiting(deadline)) break;
            sr_message_free(&m);
        }
        CHECK_INT((int)strlen(m.text), 40);
        int as = 0;
        for (const char *p = m.text; *p; p++) as += *p == 'a';
        CHECK_INT(as, 20);
        sr_message_free(&m);
    }
    two_nodes_done(&n, &a, &b);
}

TEST(an_idempotency_key_reused_on_another_node_returns_the_first_id) {
    natsd n;
    node a = {0}, b = {0};
    two_nodes(&n, &a, &b);
    result first, again;
    put(&a, "order 17 shipped", "order-17", &first);
    wait_done(&first, 1);
    CHECK_INT(first.status, 0);
    put(&b, "order 17 shipped", "order-17", &again);
    wait_done(&again, 1);
    CHECK_INT(again.status, SR_E_EXISTS);
    CHECK_STR(again.id, first.id);
    two_nodes_done(&n, &a, &b);
}

TEST(counters_incremented_on_two_nodes_add_up) {
    natsd n;
    node a = {0}, b = {0};
    two_nodes(&n, &a, &b);
    result r[100];
    for (int i = 0; i < 100; i++) {
        sr_store_txn *t = sr_store_txn_new(i % 2 ? a.s : b.s);
        sr_store_txn_kv_incr(t, "sent:today", 10, 1, 0);
        memset(&r[i], 0, sizeof r[i]);
        sr_store_txn_submit(t, on_done, &r[i]);
    }
    wait_done(r, 100);
    int64_t max = 0;
    for (int i = 0; i < 100; i++) {
        CHECK_INT(r[i].status, 0);
        if (r[i].value > max) max = r[i].value;
    }
    CHECK_INT(max, 100); /* each increment saw every earlier one, whichever node made it */
    sr_buf v;
    sr_buf_init(&v);
    int64_t deadline = mono_ms() + 5000;
    for (;;) {
        sr_buf_reset(&v);
        if ((sr_store_kv_get(a.s, "sent:today", 10, sr_now_ms(), &v) == 0 && v.len == 3) || !waiting(deadline)) break;
    }
    CHECK(v.len == 3 && memcmp(v.data, "100", 3) == 0);
    sr_buf_free(&v);
    two_nodes_done(&n, &a, &b);
}

TEST(a_node_that_was_down_catches_up_from_where_it_stopped) {
    natsd n;
    node a = {0}, b = {0};
    two_nodes(&n, &a, &b);
    result r1, r2;
    put(&a, "before", NULL, &r1);
    wait_done(&r1, 1);
    wait_message(&b, r1.id, "before");
    node_close(&b);
    put(&a, "while b was down", NULL, &r2);
    wait_done(&r2, 1);
    node_up(&b, &n, "b"); /* the same replica directory */
    wait_message(&b, r2.id, "while b was down");
    wait_message(&b, r1.id, "before");
    /* A replica rebuilt from nothing has everything too. */
    node c = {0};
    node_up(&c, &n, "c");
    wait_message(&c, r1.id, "before");
    wait_message(&c, r2.id, "while b was down");
    node_remove(&a);
    node_remove(&b);
    node_remove(&c);
    natsd_stop(&n);
}

TEST(cluster_mode_refuses_what_it_cannot_use) {
    natsd n;
    node a = {0};
    char err[512];
    uv_loop_init(&loop);
    /* No server: a clear error, no store. */
    natsd dead = {.url = "nats://127.0.0.1:1"};
    CHECK_INT(node_open(&a, &dead, "a", err, sizeof err), SR_E_IO);
    CHECK(strstr(err, "cannot connect to the NATS cluster") != NULL);
    /* A single-node store is not a replica. */
    sr_store_options single = {.dir = a.dir};
    CHECK_INT(sr_store_open(&a.s, &loop, &single, err, sizeof err), 0);
    result r;
    put(&a, "local", NULL, &r);
    wait_done(&r, 1);
    node_close(&a);
    natsd_start(&n);
    CHECK_INT(node_open(&a, &n, "a", err, sizeof err), SR_E_INVALID);
    CHECK(strstr(err, "single-node store") != NULL);
    node_remove(&a);
    natsd_stop(&n);
}

static int take_over(node *nd, char kind, const char *key, result *r) {
    sr_store_txn *t = sr_store_txn_new(nd->s);
    sr_store_txn_take_over(t, kind, key, strlen(key));
    memset(r, 0, sizeof *r);
    sr_store_txn_submit(t, on_done, r);
    return 0;
}

TEST(work_left_by_a_node_that_is_gone_is_taken_over_by_exactly_one) {
    natsd n;
    node a = {0}, x1 = {0}, x2 = {0};
    natsd_start(&n);
    uv_loop_init(&loop);
    node_up(&a, &n, "a");
    /* a leaves a message sending and a handler owed, and stops. */
    sr_message m;
    sr_message_init(&m);
    sr_message_set_str(&m.to, "+84912345678");
    sr_message_set_str(&m.text, "in flight");
    m.created_at_ms = sr_now_ms();
    sr_message_set_status(&m, SR_ST_QUEUED, m.created_at_ms);
    sr_message_set_status(&m, SR_ST_SENDING, m.created_at_ms);
    sr_store_txn *t = sr_store_txn_new(a.s);
    sr_store_txn_put_message(t, &m, NULL, 0);
    sr_store_txn_set(t, SR_SPACE_OWED, "owed/1", 6, "sent", 4, 0);
    result r = {0};
    sr_store_txn_submit(t, on_done, &r);
    wait_done(&r, 1);
    CHECK_INT(r.status, 0);
    char id[SR_ID_LEN + 1];
    snprintf(id, sizeof id, "%s", r.id);
    CHECK_INT(sr_store_orphaned(a.s, SR_ORPHAN_SENDING, id, SR_ID_LEN), 0); /* its own, while it runs */
    CHECK_INT(sr_store_orphaned(a.s, SR_ORPHAN_OWED, "owed/1", 6), 0);
    node_close(&a);
    /* Two other nodes: a is gone once they have not heard from it for the node timeout (300 ms
     * here); both try to take over the owed handler in the same pass, one gets it. */
    node_up(&x1, &n, "x1");
    node_up(&x2, &n, "x2");
    wait_message(&x2, id, "in flight");
    /* Each node gives a node it never heard the timeout from its own start. */
    for (int64_t deadline = mono_ms() + 3000; !sr_store_orphaned(x1.s, SR_ORPHAN_SENDING, id, SR_ID_LEN) ||
                                              !sr_store_orphaned(x2.s, SR_ORPHAN_OWED, "owed/1", 6);) {
        if (!waiting(deadline)) UNIT_FAIL("a's work never seen orphaned");
    }
    result r1, r2;
    take_over(&x1, SR_ORPHAN_OWED, "owed/1", &r1);
    take_over(&x2, SR_ORPHAN_OWED, "owed/1", &r2);
    wait_done(&r1, 1);
    wait_done(&r2, 1);
    CHECK((r1.status == 0) != (r2.status == 0));
    CHECK_INT(r1.status == 0 ? r2.status : r1.status, SR_E_STATE);
    /* Taken: the winner's now, and it lives; nobody takes it again. */
    node *winner = r1.status == 0 ? &x1 : &x2, *loser = r1.status == 0 ? &x2 : &x1;
    CHECK_INT(sr_store_orphaned(winner->s, SR_ORPHAN_OWED, "owed/1", 6), 0);
    take_over(loser, SR_ORPHAN_OWED, "owed/1", &r1);
    wait_done(&r1, 1);
    CHECK_INT(r1.status, SR_E_STATE);
    /* a restarted under its own name takes its in-flight messages back at once (not the owed
     * handler: that has a live owner now). */
    node_up(&a, &n, "a");
    CHECK_INT(sr_store_orphaned(a.s, SR_ORPHAN_SENDING, id, SR_ID_LEN), 1);
    CHECK_INT(sr_store_orphaned(a.s, SR_ORPHAN_OWED, "owed/1", 6), 0);
    node_remove(&a);
    node_remove(&x1);
    node_remove(&x2);
    natsd_stop(&n);
}

/* Drops the stream's units before its last one (as its retention would). */
static void purge_all_but_last(const natsd *n) {
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsOptions o;
    jsStreamInfo *si = NULL;
    CHECK(natsConnection_ConnectTo(&nc, n->url) == NATS_OK);
    CHECK(natsConnection_JetStream(&js, nc, NULL) == NATS_OK);
    CHECK(js_GetStreamInfo(&si, js, "TEST", NULL, NULL) == NATS_OK);
    jsOptions_Init(&o);
    o.Stream.Purge.Sequence = si->State.LastSeq;
    CHECK(js_PurgeStream(js, "TEST", &o, NULL) == NATS_OK);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

/* A copy of a running node's replica in dir (what `smsrules backup` makes). */
static void seed_from(const node *from, const char *dir) {
    sr_store *ro = NULL;
    char err[256], path[128];
    sr_store_options opt = {.dir = from->dir, .read_only = 1};
    CHECK_INT(sr_store_open(&ro, NULL, &opt, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    CHECK(fd >= 0);
    CHECK_INT(sr_store_backup(ro, fd, err, sizeof err), 0);
    close(fd);
    sr_store_close(ro);
}

TEST(a_replica_the_stream_can_no_longer_build_is_seeded_from_another_nodes_backup) {
    natsd n;
    node a = {0}, c = {0};
    char err[512];
    natsd_start(&n);
    uv_loop_init(&loop);
    node_up(&a, &n, "a");
    result r1, r2;
    put(&a, "old", NULL, &r1);
    wait_done(&r1, 1);
    put(&a, "new", NULL, &r2);
    wait_done(&r2, 1);
    purge_all_but_last(&n);
    /* A new node cannot rebuild "old" from the stream: a clear refusal, nothing half built. */
    CHECK_INT(node_open(&c, &n, "c", err, sizeof err), SR_E_INVALID);
    CHECK(strstr(err, "smsrules backup") != NULL);
    node_remove(&c);
    memset(&c, 0, sizeof c);
    /* Seeded with a copy of a's replica, it starts and goes on from a's position. */
    strcpy(c.dir, "/tmp/sr_node_XXXXXX");
    CHECK(mkdtemp(c.dir) != NULL);
    seed_from(&a, c.dir);
    result r3;
    put(&a, "after the copy", NULL, &r3);
    wait_done(&r3, 1);
    node_up(&c, &n, "c");
    wait_message(&c, r1.id, "old");
    wait_message(&c, r2.id, "new");
    wait_message(&c, r3.id, "after the copy");
    node_remove(&a);
    node_remove(&c);
    natsd_stop(&n);
}

TEST(live_nodes_share_the_timed_work_of_messages) {
    natsd n;
    node a = {0}, b = {0};
    two_nodes(&n, &a, &b);
    /* Once each has heard the other, every id is looked after by exactly one of them. */
    for (int64_t deadline = mono_ms() + 3000; sr_store_cluster_nodes(a.s) != 2 || sr_store_cluster_nodes(b.s) != 2;
         usleep(10000))
        if (mono_ms() > deadline) UNIT_FAIL("the nodes did not hear each other");
    int mine_a = 0;
    char id[SR_ID_LEN + 1];
    for (int i = 0; i < 1000; i++) {
        sr_id_new(id, sr_now_ms());
        int x = sr_store_mine(a.s, id), y = sr_store_mine(b.s, id);
        CHECK(x + y == 1);
        mine_a += x;
    }
    /* About half each (binomial, n = 1000: 5 standard deviations = 79). */
    CHECK(mine_a > 500 - 79 && mine_a < 500 + 79);
    node_remove(&b);
    /* b gone (silent past the node timeout): a looks after everything. */
    for (int64_t deadline = mono_ms() + 3000; sr_store_cluster_nodes(a.s) != 1; usleep(10000))
        if (mono_ms() > deadline) UNIT_FAIL("a still counts b");
    CHECK_INT(sr_store_mine(a.s, id), 1);
    node_remove(&a);
    natsd_stop(&n);
}
