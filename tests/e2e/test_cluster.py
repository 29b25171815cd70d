"""Cluster mode end to end, the happy path (issue #14, "It must show"): three smsrules nodes on a real
3-server NATS JetStream cluster (natscluster.py), the same rules file, one mock provider posting its
delivery reports to every node in turn (cluster_kit.py).

- A client spreads POST /v1/messages over the nodes: every 202'd message reaches the provider once,
  every report matches its message (each message ends `delivered` on every node), and sms.on_status
  ran exactly once per status change (its sms.kv counters against each message's history).
- A message accepted on node A and reported on node C ends `delivered`, for every pair A != C.
- An idempotency key reused on another node returns the first id (200); sent at once to all three
  nodes, it makes one message.

The failure scenarios are in test_cluster_chaos.py."""

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOWDOWN, check, metric, run, test, wait_for  # noqa: E402
from cluster_kit import (Cluster, handled_changes, handler_counts, get_message, phone, post_message,  # noqa: E402
                         status_url, wait_all_status)

REPORTS = ("matched", "duplicate", "parked", "invalid")


def reports(d):
    """{result: count} of smsrules_dlr_reports_total on node d."""
    m = d.metrics()
    return {r: m.get('smsrules_dlr_reports_total{result="%s"}' % r, 0) for r in REPORTS}


def spread(c, n, clients=6):
    """n POST /v1/messages from `clients` threads, message i to node i % 3. Returns the ids (in i
    order); checks every answer is 202."""
    ids, answers = [None] * n, {}

    def client(k):
        for i in range(k, n, clients):
            answers[i] = post_message(c.nodes[i % len(c.nodes)], phone(i))

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 * SLOWDOWN)
    for i in range(n):
        status, doc = answers.get(i, (None, None))
        check(status == 202 and doc and doc.get("id"), "message %d: POST answered %r %r" % (i, status, doc))
        ids[i] = doc["id"]
    check(len(set(ids)) == n, "ids are not unique")
    return ids


@test(timeout=60)
def spread_over_nodes_every_message_sent_reported_and_handled_once():
    c = Cluster.start()
    n = 150  # a multiple of 3: each node gets n / 3 report posts
    ids = spread(c, n)
    # Every 202'd message reached the provider, exactly once.
    wait_for(lambda: c.mock.stats()["received"] >= n, 20 * SLOWDOWN, "%d messages at the provider" % n, 0.05)
    for d in c.nodes:
        wait_all_status(d, ids, "delivered", 20)
    st = c.mock.stats()
    check(st["received"] == n and st["duplicates"] == 0 and st["recipients"] == n,
          "the provider got %d messages (%d duplicates, %d recipients), expected %d once each"
          % (st["received"], st["duplicates"], st["recipients"], n))
    check(all(st["by_recipient"].get(phone(i)) == 1 for i in range(n)), "a recipient did not get exactly one")
    # Every report matched its message: the mock posted n reports, in turn to the nodes, none failed
    # or was repeated, none was invalid or orphaned (one that came before the node's replica knew the
    # provider id waits parked, then applies) and each message ends delivered by its own provider id
    # (below). That each report is applied exactly once, and none left listed as parked, is
    # parked_report_applied_once_in_the_cluster's.
    wait_for(lambda: c.mock.stats()["dlr_sent"] == n, 10 * SLOWDOWN, "%d reports posted" % n)
    st = c.mock.stats()
    check(st["dlr_failed"] == 0 and st["dlr_retried"] == 0, "report posts failed: %r" % st)
    for d in c.nodes:
        r = reports(d)
        check(r["invalid"] == 0 and r["matched"] > 0, "node :%d: reports %r" % (d.port, r))
        check(metric(d, "smsrules_dlr_orphaned_total") == 0, "node :%d: reports orphaned" % d.port)
    for i, mid in enumerate(ids):
        msg = get_message(c.nodes[(i + 1) % 3], mid)
        check(msg["to"] == phone(i) and len(msg["attempts"]) == 1 and msg["attempts"][0]["report"] == "delivered"
              and msg["attempts"][0]["provider_id"] == msg["provider_id"], "message %s: %r" % (mid, msg))
    check(len({get_message(c.nodes[0], mid)["provider_id"] for mid in ids}) == n, "provider ids are not unique")
    # sms.on_status ran once per change that has a handler (sent, delivered), on whichever node: the
    # counters every node's replica holds equal each message's history.
    changes = {mid: handled_changes(get_message(c.nodes[0], mid)) for mid in ids}
    total = sum(len(v) for v in changes.values())
    check(total == 2 * n, "history: %d handled changes, expected sent and delivered for each" % total)
    for d in c.nodes:
        wait_for(lambda: handler_counts(d, [])[0] >= total, 10 * SLOWDOWN, "%d handler runs on :%d" % (total, d.port),
                 0.05)
        runs, per = handler_counts(d, ids)
        check(runs == total, "node :%d counts %d handler runs for %d changes" % (d.port, runs, total))
        for mid in ids:
            want = {s: changes[mid].count(s) for s in per[mid]}
            check(per[mid] == want, "message %s: handler runs %r, changes %r" % (mid, per[mid], want))
    check(sum(metric(d, "smsrules_resent_after_crash_total") for d in c.nodes) == 0, "resends without a crash")


@test(timeout=60)
def parked_report_applied_once_in_the_cluster():
    # --dlr-before-answer: each report comes before its send's answer, so every one is parked first,
    # on the node it went to (in turn), and applied when that node learns the provider id.
    c = Cluster.start()
    c.mock.control({"dlr_before_answer": True, "dlr_delay_ms": 0})
    n = 30
    ids = spread(c, n, clients=3)
    for d in c.nodes:
        wait_all_status(d, ids, "delivered", 20)
    wait_for(lambda: c.mock.stats()["dlr_sent"] == n, 10 * SLOWDOWN, "%d reports posted" % n)
    st = c.mock.stats()
    check(st["dlr_failed"] == 0 and st["dlr_retried"] == 0, "report posts failed: %r" % st)
    for d in c.nodes:
        wait_for(lambda: handler_counts(d, [])[0] >= 2 * n, 10 * SLOWDOWN, "handler runs on :%d" % d.port, 0.05)
        check(handler_counts(d, [])[0] == 2 * n, "node :%d: handlers ran more than once per change" % d.port)
    got = [reports(d) for d in c.nodes]
    parked = [metric(d, "smsrules_dlr_parked") for d in c.nodes]
    # Each node received n / 3 reports, each parked once and applied once.
    for k, r in enumerate(got):
        check(r["parked"] == n // 3 and parked[k] == 0, "node %d: reports %r, %d still parked" % (k, r, parked[k]))
    check([r["duplicate"] for r in got] == [0, 0, 0] and sum(r["matched"] for r in got) == n,
          "reports posted once each were applied %d times (%d as duplicates): %r"
          % (sum(r["matched"] + r["duplicate"] for r in got), sum(r["duplicate"] for r in got), got))


@test(timeout=60)
def accepted_on_one_node_reported_on_another_ends_delivered():
    c = Cluster.start()
    i = 0
    for a in range(3):
        for r in range(3):
            if a == r:
                continue
            # Reports go to node r only; the message is accepted on node a.
            c.mock.control({"dlr_url": status_url(c.nodes[r])})
            before = [reports(d) for d in c.nodes]
            status, doc = post_message(c.nodes[a], phone(i, 2))
            check(status == 202, "node %d answered %r %r" % (a, status, doc))
            i += 1
            for d in c.nodes:
                wait_all_status(d, [doc["id"]], "delivered", 10)
            after = [reports(d) for d in c.nodes]
            for k in range(3):
                got = {x: after[k][x] - before[k][x] for x in REPORTS if after[k][x] != before[k][x]}
                want = {"matched": 1} if k == r else {}
                # (parked: it came before node r's replica knew the provider id, and matched since)
                got.pop("parked", None)
                check(got == want, "node %d: reports %r, expected %r (reports go to node %d)" % (k, got, want, r))
    st = c.mock.stats()
    check(st["received"] == 6 and st["duplicates"] == 0 and st["dlr_sent"] == 6, "provider: %r" % st)


@test(timeout=60)
def idempotency_key_reused_on_another_node_returns_the_first_id():
    c = Cluster.start()
    status, first = post_message(c.nodes[0], phone(1, 3), key="order-1")
    check(status == 202, "first POST: %r %r" % (status, first))
    for d in c.nodes[1:] + c.nodes[:1]:
        status, doc = post_message(d, phone(1, 3), key="order-1")
        check(status == 200 and doc and doc["id"] == first["id"],
              "the key again on :%d answered %r %r, expected 200 with id %s" % (d.port, status, doc, first["id"]))
    # The same key with another message is a conflict on every node.
    for d in c.nodes:
        status, doc = post_message(d, phone(2, 3), key="order-1")
        check(status == 409 and doc["error"]["code"] == "idempotency_conflict",
              "another message with the key on :%d answered %r %r" % (d.port, status, doc))
    # One key sent at once to the three nodes: one message, every answer names it.
    for k in range(5):
        answers = [None] * 3
        barrier = threading.Barrier(3)

        def send(j, k=k):
            barrier.wait(10 * SLOWDOWN)
            answers[j] = post_message(c.nodes[j], phone(10 + k, 3), key="race-%d" % k)

        threads = [threading.Thread(target=send, args=(j,), daemon=True) for j in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30 * SLOWDOWN)
        check(all(a and a[0] in (200, 202) for a in answers), "race %d answered %r" % (k, answers))
        got = {a[1]["id"] for a in answers}
        check(len(got) == 1, "race %d: one key made %d messages: %r" % (k, len(got), answers))
        check(sum(a[0] == 202 for a in answers) == 1, "race %d: not exactly one 202: %r" % (k, answers))
    wait_for(lambda: c.mock.stats()["received"] >= 6, 10 * SLOWDOWN, "6 messages at the provider")
    for d in c.nodes:
        wait_all_status(d, [first["id"]], "delivered", 10)
    st = c.mock.stats()
    check(st["received"] == 6 and st["duplicates"] == 0, "the provider got %r" % st)


if __name__ == "__main__":
    run()
