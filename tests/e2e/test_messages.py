"""End-to-end tests of the send API: durable accepts, validation, idempotency,
reading messages back, and the SIGKILL crash test."""
import http.client
import json
import os
import random
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOST, SLOWDOWN, Daemon, RawConn, build_request, check, run, test, wait_for  # noqa: E402

KEY = "test-key-1"
RULES = """
sms.config{ api_keys = { "%s", "second-key" }, default_country = "84" }
""" % KEY
AUTH = {"Authorization": "Bearer " + KEY}


def post(d, body, key=KEY, raw=None):
    headers = {"Authorization": "Bearer " + key} if key else {}
    if raw is not None:
        return d.request("POST", "/v1/messages", body=raw, headers=headers)
    return d.request("POST", "/v1/messages", body=body, headers=headers)


def get(d, mid):
    return d.request("GET", "/v1/messages/" + mid, headers=AUTH)


@test
def single_message_accepted_and_readable():
    d = Daemon.start(RULES)
    status, _, _, doc = post(d, {"to": "0912 345 678", "text": "Hello there", "tags": {"order": "42"}})
    check(status == 202, "status %d %r" % (status, doc))
    check(doc["status"] == "queued" and doc["segments"] == 1 and doc["encoding"] == "gsm7", repr(doc))
    mid = doc["id"]
    check(len(mid) == 26, "id %r" % mid)
    status, _, _, msg = get(d, mid)
    check(status == 200, "GET %d" % status)
    check(msg["to"] == "+84912345678", "normalised to %r" % msg["to"])
    check(msg["text"] == "Hello there" and msg["status"] == "queued", repr(msg))
    check(msg["tags"] == {"order": "42"}, repr(msg["tags"]))
    check([h["status"] for h in msg["history"]] == ["queued"], repr(msg["history"]))
    check(msg["history"][0]["at"].endswith("Z") and "T" in msg["history"][0]["at"], repr(msg["history"]))
    check(msg["attempts"] == [], repr(msg["attempts"]))
    status, _, _, doc = get(d, "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    check(status == 404 and doc["error"]["code"] == "not_found", "unknown id: %d %r" % (status, doc))
    check(d.stop() == 0, "exit code")


@test
def segments_and_encoding_reported():
    d = Daemon.start(RULES)
    cases = [("a" * 160, 1, "gsm7"), ("a" * 161, 2, "gsm7"), ("{" * 80, 1, "gsm7"), ("Ж" * 70, 1, "ucs2"),
             ("Ж" * 71, 2, "ucs2"), ("😀" * 35, 1, "ucs2"), ("😀" * 36, 2, "ucs2")]
    for text, segments, encoding in cases:
        status, _, _, doc = post(d, {"to": "+84912345678", "text": text})
        check(status == 202, "status %d for %r" % (status, text[:10]))
        check(doc["segments"] == segments and doc["encoding"] == encoding,
              "%r...: got %r, expected %d %s" % (text[:5], doc, segments, encoding))
    status, _, _, doc = post(d, {"to": "+84912345678", "text": "a" * 1531})
    check(status == 422 and doc["error"]["code"] == "too_long", "11 parts: %d %r" % (status, doc))
    d.stop()


@test
def api_key_required():
    d = Daemon.start(RULES)
    status, hdrs, _, doc = post(d, {"to": "+84912345678", "text": "x"}, key=None)
    check(status == 401 and doc["error"]["code"] == "unauthorized", "no key: %d %r" % (status, doc))
    status, _, _, doc = post(d, {"to": "+84912345678", "text": "x"}, key="wrong")
    check(status == 401, "wrong key: %d" % status)
    status, _, _, doc = post(d, {"to": "+84912345678", "text": "x"}, key="second-key")
    check(status == 202, "second key: %d" % status)
    status, _, _, _ = d.request("GET", "/v1/messages/" + doc["id"])
    check(status == 401, "GET without key: %d" % status)
    status, _, _, _ = d.request("GET", "/healthz")
    check(status == 200, "healthz stays open")
    d.stop()


@test
def api_keys_from_environment():
    d = Daemon.start("", env={"SMSRULES_API_KEYS": "env-a, env-b"})
    status, _, _, _ = post(d, {"to": "+84912345678", "text": "x"}, key="env-b")
    check(status == 202, "env key: %d" % status)
    status, _, _, _ = post(d, {"to": "+84912345678", "text": "x"}, key=KEY)
    check(status == 401, "unknown key: %d" % status)
    d.stop()


def count_queued(d):
    status, _, _, doc = d.request("GET", "/v1/messages?status=queued&limit=1000", headers=AUTH)
    check(status == 200, "list: %d" % status)
    return len(doc["messages"])


@test
def bad_input_is_refused_and_stores_nothing():
    d = Daemon.start(RULES)
    cases = [
        (b"{not json", 400, "invalid_json"),
        (b"[1,2]", 400, "invalid_json"),
        (json.dumps({"text": "x"}).encode(), 400, "missing_field"),
        (json.dumps({"to": "+84912345678"}).encode(), 400, "missing_field"),
        (json.dumps({"to": "+84912345678", "text": "x", "txet": "y"}).encode(), 400, "unknown_field"),
        (b'{"to":"+84912345678","text":"x","tags":{"a":"1","a\\u0000":"2"}}', 400, "invalid_json"),
        (json.dumps({"to": 84912345678, "text": "x"}).encode(), 400, "invalid_type"),
        (b'{"to":"+84912345678","text":"\xff\xfe"}', 400, "invalid_text"),
        (b'{"to":"+84912345678","text":"\\ud800"}', 400, "invalid_text"),
        (json.dumps({"to": "abc", "text": "x"}).encode(), 422, "invalid_phone"),
        (json.dumps({"to": "+123", "text": "x"}).encode(), 422, "invalid_phone"),
        (json.dumps({"to": "+84912345678", "text": "x", "priority": 4}).encode(), 422, "invalid_value"),
        (json.dumps({"to": "+84912345678", "text": "x", "validity": 259201}).encode(), 422, "invalid_value"),
        (json.dumps({"to": "+84912345678", "text": "x", "send_at": "tomorrow"}).encode(), 422, "invalid_value"),
        (json.dumps({"to": "+84912345678", "text": "x", "tags": {"a": 1}}).encode(), 422, "invalid_value"),
        (json.dumps({"messages": [{"to": "+84912345678", "text": "x"}] * 1001}).encode(), 422, "too_many_messages"),
    ]
    for raw, status_want, code in cases:
        status, _, _, doc = post(d, None, raw=raw)
        check(status == status_want and doc and doc["error"]["code"] == code,
              "%r: got %d %r, want %d %s" % (raw[:60], status, doc, status_want, code))
    status, _, _, doc = post(d, {"to": "abc", "text": "x"})
    check("abc" in doc["error"]["message"], "invalid_phone names the input: %r" % doc)
    status, _, _, doc = post(d, {"to": "+84912345678", "text": "x", "txet": "y"})
    check("txet" in doc["error"]["message"], "unknown_field names the field: %r" % doc)
    # The daemon answers 413 from the headers alone, without reading the body.
    c = d.connect()
    c.send(b"POST /v1/messages HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + KEY.encode() +
           b"\r\nContent-Length: %d\r\n\r\n" % (1024 * 1024 + 10))
    resp = c.read_response()
    check(resp.status == 413 and resp.json()["error"]["code"] == "body_too_large", "oversized body: %r" % resp)
    c.close()
    check(count_queued(d) == 0, "bad input stored something")
    d.stop()


@test
def batch_results_in_order():
    d = Daemon.start(RULES)
    msgs = [{"to": "+84912345678", "text": "one"}, {"to": "nope", "text": "two"},
            {"to": "0912345679", "text": "three", "priority": 3}, {"to": "+84912345678"}]
    status, _, _, doc = post(d, {"messages": msgs})
    check(status == 202, "batch status %d %r" % (status, doc))
    res = doc["result"]
    check(len(res) == 4, repr(res))
    check(res[0]["code"] == "OK" and res[2]["code"] == "OK", repr(res))
    check(res[1]["code"] == "REJECTED" and res[1]["reasons"][0]["key"] == "invalid_phone" and
          res[1]["reasons"][0]["ref"] == "messages[1].to", repr(res[1]))
    check(res[3]["code"] == "REJECTED" and res[3]["reasons"][0]["ref"] == "messages[3].text", repr(res[3]))
    check(res[0]["id"] < res[2]["id"], "ids written together sort together")
    for i in (0, 2):
        status, _, _, m = get(d, res[i]["id"])
        check(status == 200 and m["text"] == msgs[i]["text"], repr(m))
    status, _, _, doc = post(d, {"messages": [{"to": "x", "text": "a"}]})
    check(status == 422 and doc["result"][0]["code"] == "REJECTED", "all rejected: %d" % status)
    status, _, _, doc = post(d, {"messages": [], })
    check(status == 400, "empty batch: %d" % status)
    status, _, _, doc = post(d, {"messages": [{"to": "+84912345678", "text": "a"}], "extra": 1})
    check(status == 400 and doc["error"]["code"] == "unknown_field", "field beside messages: %d" % status)
    d.stop()


@test
def idempotency_key_returns_the_original():
    d = Daemon.start(RULES)
    body = {"to": "+84912345678", "text": "Order 7 shipped", "idempotency_key": "order-7"}
    status, _, _, first = post(d, body)
    check(status == 202, "first %d" % status)
    status, _, _, again = post(d, body)
    check(status == 200 and again["id"] == first["id"], "repeat: %d %r" % (status, again))
    status, _, _, doc = post(d, dict(body, text="Order 7 cancelled"))
    check(status == 409 and doc["error"]["code"] == "idempotency_conflict", "conflict: %d %r" % (status, doc))
    d.stop()
    d.restart()
    status, _, _, again = post(d, body)
    check(status == 200 and again["id"] == first["id"], "after restart: %d %r" % (status, again))
    check(count_queued(d) == 1, "one message")
    d.stop()


@test(timeout=60)
def idempotency_under_concurrency():
    d = Daemon.start(RULES)
    body = {"to": "+84912345678", "text": "only once", "idempotency_key": "same-key-50"}
    results = []
    barrier = threading.Barrier(50)

    def worker():
        conn = http.client.HTTPConnection(HOST, d.port, timeout=10 * SLOWDOWN)
        conn.connect()
        barrier.wait()
        conn.request("POST", "/v1/messages", body=json.dumps(body), headers=AUTH)
        r = conn.getresponse()
        results.append((r.status, json.loads(r.read())))
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(len(results) == 50, "answers: %d" % len(results))
    ids = {doc.get("id") for _, doc in results}
    statuses = sorted(s for s, _ in results)
    check(len(ids) == 1 and None not in ids, "ids: %r" % ids)
    check(statuses.count(202) == 1 and statuses.count(200) == 49, "statuses: %r" % statuses)
    check(count_queued(d) == 1, "exactly one message stored")
    d.stop()


@test
def send_at_and_validity():
    d = Daemon.start(RULES)
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    status, _, _, doc = post(d, {"to": "+84912345678", "text": "later", "send_at": later, "validity": 60})
    check(status == 202, "status %d" % status)
    status, _, _, m = get(d, doc["id"])
    check(m["send_at"].startswith(later[:19]), "send_at %r" % m["send_at"])
    check(m["status"] == "queued", m["status"])
    status, _, _, doc = post(d, {"to": "+84912345678", "text": "short-lived", "validity": 1})
    mid = doc["id"]

    def expired():
        s, _, _, m = get(d, mid)
        return m if m["status"] == "expired" else None

    m = wait_for(expired, 10 * SLOWDOWN, "the message to expire")
    check([h["status"] for h in m["history"]] == ["queued", "expired"], repr(m["history"]))
    check(m["error"], "an expired message says why")
    status, _, _, lst = d.request("GET", "/v1/messages?status=expired", headers=AUTH)
    check([x["id"] for x in lst["messages"]] == [mid], repr(lst))
    d.stop()


def send_request(text):
    body = json.dumps({"to": "+84912345677", "text": text}).encode()
    return build_request("POST", "/v1/messages", {"Authorization": "Bearer " + KEY,
                                                  "Content-Type": "application/json"}, body)


@test
def a_client_that_half_closes_after_its_requests_gets_every_answer():
    """Answers come after the commit; a client may shut its side down before then."""
    d = Daemon.start(RULES)
    c = RawConn(d.port)
    c.send(send_request("one") + send_request("two"))
    c.sock.shutdown(socket.SHUT_WR)
    answers = [c.read_response(), c.read_response()]
    check([a.status for a in answers] == [202, 202], "answers %r" % answers)
    for a, text in zip(answers, ["one", "two"]):
        status, _, _, msg = get(d, a.json()["id"])
        check(status == 200 and msg["text"] == text, "message %r" % msg)
    check(c.wait_closed(5.0 * SLOWDOWN), "the connection stayed open after the answers")


@test(timeout=60)
def a_long_pipeline_of_sends_is_answered_in_order():
    """More is pipelined than the server buffers while a request waits on its commit: it stops
    reading, then goes on, and every request is answered, in order."""
    d = Daemon.start(RULES)
    c = RawConn(d.port)
    texts = ["pipelined %03d %s" % (i, "x" * 400) for i in range(400)]
    c.send(b"".join(send_request(t) for t in texts))
    ids = []
    for i in range(len(texts)):
        r = c.read_response(timeout=10.0 * SLOWDOWN)
        check(r.status == 202, "request %d answered %r" % (i, r))
        ids.append(r.json()["id"])
    for i in (0, 199, 399):
        status, _, _, msg = get(d, ids[i])
        check(status == 200 and msg["text"] == texts[i], "answer %d is not for request %d: %r" % (i, i, msg))
    check(c.request("GET", "/healthz").status == 200, "connection unusable after the pipeline")


@test(timeout=240)
def crash_keeps_every_accepted_message():
    """Clients send concurrently; SIGKILL at a random moment; every id answered
    202 is readable after restart with its content. Repeated several times."""
    d = Daemon.start(RULES)
    accepted = {}
    lock = threading.Lock()
    rounds = 5
    for rnd in range(rounds):
        stop = threading.Event()

        def client(n):
            seq = 0
            conn = None
            while not stop.is_set():
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(HOST, d.port, timeout=5)
                    if seq % 5 == 4:
                        batch = [{"to": "+8491234%04d" % (n * 100 + i), "text": "r%d c%d s%d b%d" % (rnd, n, seq, i)}
                                 for i in range(10)]
                        conn.request("POST", "/v1/messages", body=json.dumps({"messages": batch}), headers=AUTH)
                        r = conn.getresponse()
                        doc = json.loads(r.read())
                        if r.status == 202:
                            with lock:
                                for m, res in zip(batch, doc["result"]):
                                    if res["code"] == "OK":
                                        accepted[res["id"]] = m
                    else:
                        m = {"to": "+8491234%04d" % n, "text": "r%d c%d s%d" % (rnd, n, seq)}
                        conn.request("POST", "/v1/messages", body=json.dumps(m), headers=AUTH)
                        r = conn.getresponse()
                        doc = json.loads(r.read())
                        if r.status == 202:
                            with lock:
                                accepted[doc["id"]] = m
                    seq += 1
                except (OSError, http.client.HTTPException, ValueError):
                    conn = None
                    if stop.is_set():
                        return
                    time.sleep(0.01)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        before = len(accepted)
        for t in threads:
            t.start()
        # Kill at a random moment once the clients are well under way.
        wait_for(lambda: len(accepted) - before >= 200, 30 * SLOWDOWN, "clients to get going")
        time.sleep(random.uniform(0.05, 0.8))
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        stop.set()
        for t in threads:
            t.join()
        d.restart()
        # Every acknowledged id, including all earlier rounds, is there with its content.
        conn = http.client.HTTPConnection(HOST, d.port, timeout=10)
        for mid, m in list(accepted.items()):
            conn.request("GET", "/v1/messages/" + mid, headers=AUTH)
            r = conn.getresponse()
            body = r.read()
            check(r.status == 200, "round %d: accepted id %s missing after SIGKILL (%d)" % (rnd, mid, r.status))
            got = json.loads(body)
            check(got["text"] == m["text"] and got["to"] == m["to"], "round %d: %s content differs" % (rnd, mid))
        conn.close()
    check(len(accepted) >= 1000 * rounds / 5, "only %d messages accepted" % len(accepted))
    print("crash test: %d accepted messages survived %d SIGKILLs" % (len(accepted), rounds), file=sys.stderr)
    d.stop()


if __name__ == "__main__":
    run()
