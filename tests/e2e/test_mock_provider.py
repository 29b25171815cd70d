"""End-to-end tests of `smsrules mock-provider`, the fake SMS provider that
speaks the generic provider API (docs/providers.md, generic): sends, batches, auth, the
recipient patterns, the seeded failure mix, latency, /stats, idempotency by
client id, /control, delivery reports and shutdown.

Each test starts the real mock on a free loopback port (--listen 127.0.0.1:0;
the port comes from its "listening" log line) and, for delivery reports, a
small Python HTTP server that receives them.
Run: SMSRULES_BIN=build/smsrules python3 tests/e2e/test_mock_provider.py [name...]"""

import datetime
import http.client
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (BIN, HOST, SLOWDOWN, Daemon, TestFailure, check, free_port, make_temp_dir,  # noqa: E402
                     run, run_cli, test, wait_for)

PATTERNS = ("0000", "0401", "0503", "0429", "0408", "0666")


def phone(i, area=9):
    """A distinct recipient for each i that matches no pattern (none ends in 7)."""
    return "+84%d%07d7" % (area, i)

# ---- helpers: the mock, a keep-alive client, a report receiver ----

_mocks = []
_receivers = []


class Mock(harness.Mock):
    """The harness's mock-provider process, remembered so each test kills it
    and checks its stderr for sanitizer reports afterwards."""

    @classmethod
    def start(cls, *args, **kw):
        m = super().start(*args, **kw)
        _mocks.append(m)
        return m

    def client(self, timeout=5.0 * SLOWDOWN):
        return Client(self.port, timeout)


class Client:
    """One keep-alive HTTP connection to the mock."""

    def __init__(self, port, timeout=5.0 * SLOWDOWN):
        self.conn = http.client.HTTPConnection(HOST, port, timeout=timeout)

    def post(self, path, doc, headers=None):
        """(status, {lower-case header: value}, parsed JSON body or None)."""
        body = doc if isinstance(doc, (bytes, str)) else json.dumps(doc)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        self.conn.request("POST", path, body=body, headers=h)
        resp = self.conn.getresponse()
        data = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        try:
            parsed = json.loads(data.decode("utf-8"))
        except ValueError:
            parsed = None
        return resp.status, hdrs, parsed

    def send(self, to, message="hello", **fields):
        doc = {"to": to, "from": "Shop", "message": message}
        doc.update(fields)
        return self.post("/send", doc)

    def close(self):
        self.conn.close()


class Receiver:
    """A delivery-report endpoint: a threaded http.server on a free port.
    Records (monotonic time, JSON body, headers) per POST. Answers 500 to
    the first `fail_first` posts, 200 after; while `gate` is cleared, every
    answer waits for it (the report is received but not yet answered)."""

    def __init__(self, fail_first=0):
        self.reports = []
        self.lock = threading.Lock()
        self.fail_first = fail_first
        self.gate = threading.Event()
        self.gate.set()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    doc = json.loads(raw.decode("utf-8"))
                except ValueError:
                    doc = {"unparsable": raw.decode("latin-1")}
                with outer.lock:
                    outer.reports.append((time.monotonic(), doc, {k.lower(): v for k, v in self.headers.items()}))
                    n = len(outer.reports)
                outer.gate.wait(30)
                status = 500 if n <= outer.fail_first else 200
                body = b'{"ok":true}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the mock stopped (or gave up) while the answer was held

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://%s:%d/dlr" % (HOST, self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        _receivers.append(self)

    def bodies(self):
        with self.lock:
            return [doc for _, doc, _ in self.reports]

    def close(self):
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


def mock_test(fn=None, timeout=20.0):
    """@test, plus: every mock and receiver the test started is stopped
    afterwards, and a sanitizer report in a mock's stderr fails the test."""

    def register(f):
        def wrapper():
            problems = []
            try:
                f()
            finally:
                for m in _mocks:
                    m.kill()
                    problems.extend(m.sanitizer_reports())
                _mocks.clear()
                for r in _receivers:
                    r.close()
                _receivers.clear()
            if problems:
                raise TestFailure("; ".join(problems))

        wrapper.__name__ = f.__name__
        return test(timeout=timeout)(wrapper)

    if fn is not None:
        return register(fn)
    return register


def in_thread(fn):
    """Runs fn in a thread; returns a dict that gets "result" or "error"."""
    out = {}

    def body():
        try:
            out["result"] = fn()
        except Exception as e:  # noqa: BLE001 - reported to the test
            out["error"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    out["thread"] = t
    return out


def check_accepted(status, doc, what="send"):
    check(status == 200, "%s answered %d %r, expected 200" % (what, status, doc))
    check(isinstance(doc, dict) and doc.get("status") == "accepted", "%s: not accepted: %r" % (what, doc))
    mid = doc.get("message_id")
    check(isinstance(mid, str) and mid, "%s: no message_id: %r" % (what, doc))
    return mid


# ---- command line ----


@mock_test
def help_documents_every_option_and_pattern():
    code, out, _ = run_cli(["--help"])
    check(code == 0 and "mock-provider" in out, "smsrules --help does not list mock-provider: %r" % out)
    code, out, err = run_cli(["mock-provider", "--help"])
    check(code == 0, "mock-provider --help exited %d: %r" % (code, err))
    for opt in ("--listen", "--latency-ms", "--latency-jitter-ms", "--fail-5xx", "--fail-429", "--retry-after",
                "--timeout", "--reject", "--auth-key", "--dlr-url", "--dlr-delay-ms", "--dlr-undelivered",
                "--dlr-before-answer", "--seed", "--log-level", "--help", "127.0.0.1:9090"):
        check(opt in out, "mock-provider --help does not describe %s" % opt)
    for p in PATTERNS:
        check(p in out, "mock-provider --help lacks the recipient pattern %s" % p)
    for path in ("/send", "/stats", "/stats/reset", "/control"):
        check(path in out, "mock-provider --help does not document %s" % path)
    for bad in (["--fail-5xx", "150"], ["--bogus"], ["--latency-ms", "-5"], ["--fail-5xx", "60", "--reject", "50"],
                ["--listen", "nonsense"], ["--log-level", "loud"], ["extra"]):
        code, _, err = run_cli(["mock-provider"] + bad)
        check(code == 1, "mock-provider %s exited %d, expected 1" % (" ".join(bad), code))
        check("usage: smsrules mock-provider" in err, "no usage on stderr for %s: %r" % (bad, err[:200]))


# ---- sends ----


@mock_test
def send_answers_unique_message_ids():
    m = Mock.start("--seed", 1)
    c = m.client()
    status, hdrs, doc = c.send("+84912345678")
    first = check_accepted(status, doc)
    check(hdrs.get("content-type", "").startswith("application/json"), "Content-Type %r" % hdrs.get("content-type"))
    status, _, doc = c.post("/", {"to": "+84912345679", "from": "Shop", "message": "via the / alias"})
    ids = {first, check_accepted(status, doc, "POST /")}
    for i in range(50):
        ids.add(check_accepted(*c.send(phone(i, 1), "n%d" % i)[::2]))
    check(len(ids) == 52, "message ids are not unique: %d distinct of 52" % len(ids))
    status, _, doc = c.post("/send", b"{not json")
    check(status == 400 and "error" in (doc or {}), "bad JSON answered %d %r" % (status, doc))
    status, _, doc = c.post("/send", {"to": "+84912345678"})
    check(status == 400 and "message" in (doc or {}).get("error", ""), "missing message answered %d %r" % (status, doc))
    status, _, _, _ = m.request("GET", "/send")
    check(status == 405, "GET /send answered %d, expected 405" % status)
    status, _, _, _ = m.request("GET", "/nowhere")
    check(status == 404, "GET /nowhere answered %d, expected 404" % status)
    s = m.stats()
    check(s["received"] == 52 and s["requests"] == 54 and s["bad_requests"] == 2,
          "stats after 52 good and 2 bad sends: %r" % {k: s[k] for k in ("received", "requests", "bad_requests")})


@mock_test
def batch_answers_one_result_per_message_in_order():
    m = Mock.start()
    c = m.client()
    batch = {"messages": [
        {"to": "+84911111111", "from": "Shop", "message": "one", "id": "b-1"},
        {"to": "+84900000000", "from": "Shop", "message": "invalid number"},
        {"to": "+84922222222", "from": "Shop", "message": "three"},
        {"from": "Shop", "message": "no recipient"},
    ]}
    status, _, doc = c.post("/send", batch)
    check(status == 200, "batch answered %d %r" % (status, doc))
    results = doc.get("results") if isinstance(doc, dict) else None
    check(isinstance(results, list) and len(results) == 4, "batch results: %r" % doc)
    check(results[0].get("status") == "accepted" and results[0].get("id") == "b-1", "result 0: %r" % results[0])
    check(results[1].get("status") == "rejected" and results[1].get("error") == "invalid number", "result 1: %r" % results[1])
    check(results[2].get("status") == "accepted", "result 2: %r" % results[2])
    check(results[3].get("status") == "rejected", "result 3: %r" % results[3])
    check(results[0]["message_id"] != results[2]["message_id"], "batch messages share a message_id")
    s = m.stats()
    check(s["received"] == 2 and s["rejected"] == 1 and s["requests"] == 1,
          "stats after the batch: %r" % {k: s[k] for k in ("received", "rejected", "requests")})
    check(s["by_recipient"] == {"+84911111111": 1, "+84922222222": 1}, "by_recipient: %r" % s["by_recipient"])
    # A request-level pattern anywhere in the batch fails the whole request.
    status, _, doc = c.post("/send", {"messages": [{"to": "+84933333333", "message": "a"},
                                                   {"to": "+84900000503", "message": "b"}]})
    check(status == 503, "batch with a ...0503 recipient answered %d %r" % (status, doc))
    status, _, doc = c.post("/send", {"messages": []})
    check(status == 400, "empty batch answered %d" % status)
    check(m.stats()["received"] == 2, "a failed batch counted receptions")


@mock_test
def auth_key_required_when_set():
    m = Mock.start("--auth-key", "s3cret")
    c = m.client()
    status, _, doc = c.send("+84912345678")
    check(status == 401 and doc == {"error": "unauthorized"}, "no Authorization answered %d %r" % (status, doc))
    status, _, doc = c.post("/send", {"to": "+84912345678", "message": "x"}, {"Authorization": "Bearer wrong"})
    check(status == 401, "a wrong key answered %d" % status)
    status, _, doc = c.post("/send", {"to": "+84912345678", "message": "x"}, {"Authorization": "Bearer s3cret"})
    check_accepted(status, doc, "the right Bearer key")
    status, _, doc = c.post("/send", {"to": "+84912345678", "message": "x"}, {"X-API-Key": "s3cret"})
    check_accepted(status, doc, "the right X-API-Key")
    s = m.stats()
    check(s["unauthorized"] == 2 and s["received"] == 2, "stats: unauthorized %d received %d" % (s["unauthorized"], s["received"]))
    check("s3cret" not in m.stderr(), "the auth key appears in the logs")


@mock_test(timeout=30.0)
def recipient_patterns_win_over_the_random_mix():
    # --reject 100 rejects every other number: the patterns must still decide.
    m = Mock.start("--reject", "100", "--retry-after", "7", "--hold-ms", "1500")
    c = m.client()
    status, _, doc = c.send("+84912345678")
    check(status == 400 and doc == {"error": "invalid number"}, "--reject 100 answered %d %r" % (status, doc))
    status, _, doc = c.send("+84900000000")
    check(status == 400 and doc == {"error": "invalid number"}, "...0000 answered %d %r" % (status, doc))
    status, _, doc = c.send("+84900000401")
    check(status == 401 and doc == {"error": "unauthorized"}, "...0401 answered %d %r" % (status, doc))
    status, _, doc = c.send("+1 (555) 010-0503")
    check(status == 503 and doc == {"error": "unavailable"}, "...0503 (formatted) answered %d %r" % (status, doc))
    status, hdrs, doc = c.send("+84900000429")
    check(status == 429 and hdrs.get("retry-after") == "7", "...0429 answered %d Retry-After %r" % (status, hdrs.get("retry-after")))
    status, _, doc = c.send("+84900000666")
    check_accepted(status, doc, "...0666")
    # ...0408: held without an answer; our client's timeout fires first.
    t0 = time.monotonic()
    try:
        status, _, _, _ = m.request("POST", "/send", {"to": "+84900000408", "message": "x"}, timeout=0.7)
        raise TestFailure("...0408 was answered (%d) instead of timing out" % status)
    except socket.timeout:
        pass
    # The hold is bounded: after --hold-ms the request gets 504.
    t0 = time.monotonic()
    status, _, _, doc = m.request("POST", "/send", {"to": "+84900000408", "message": "x"},
                                  timeout=10 * SLOWDOWN)
    held = time.monotonic() - t0
    check(status == 504 and held >= 1.4, "held request answered %d after %.2fs, expected 504 after 1.5s" % (status, held))
    s = m.stats()
    want = {"received": 1, "rejected": 2, "unauthorized": 1, "failed_5xx": 1, "failed_429": 1, "timeouts": 2}
    got = {k: s[k] for k in want}
    check(got == want, "stats %r, expected %r" % (got, want))


def mix_statuses(seed):
    m = Mock.start("--seed", seed, "--fail-5xx", "20", "--fail-429", "10", "--timeout", "5", "--reject", "10",
                   "--hold-ms", "1")
    c = m.client()
    statuses = []
    for i in range(1000):
        status, _, _ = c.send(phone(i))
        statuses.append(status)
    return m, statuses


@mock_test(timeout=60.0)
def random_mix_follows_percentages_and_seed():
    m, statuses = mix_statuses(42)
    counts = {s: statuses.count(s) for s in set(statuses)}
    expected = {503: 200, 429: 100, 504: 50, 400: 100, 200: 550}
    for status, want in expected.items():
        got = counts.get(status, 0)
        check(abs(got - want) <= max(25, want * 0.2), "status %d: %d of 1000, expected about %d (%r)" % (status, got, want, counts))
    check(set(counts) <= set(expected), "unexpected statuses: %r" % counts)
    s = m.stats()
    exact = {"failed_5xx": counts.get(503, 0), "failed_429": counts.get(429, 0), "timeouts": counts.get(504, 0),
             "rejected": counts.get(400, 0), "received": counts.get(200, 0), "requests": 1000}
    got = {k: s[k] for k in exact}
    check(got == exact, "stats %r differ from what the client saw %r" % (got, exact))
    # The same seed gives the same sequence; another seed a different one.
    _, again = mix_statuses(42)
    check(again == statuses, "the same --seed gave a different sequence of outcomes")
    _, other = mix_statuses(43)
    check(other != statuses, "--seed 43 gave the same sequence as --seed 42")


@mock_test(timeout=30.0)
def latency_applied_without_blocking():
    latency = 1.0 * SLOWDOWN  # long enough for 20 clients to have their requests in together
    m = Mock.start("--latency-ms", int(latency * 1000))
    c = m.client()
    t0 = time.monotonic()
    check_accepted(*c.send("+84912345678")[::2])
    one = time.monotonic() - t0
    check(latency - 0.02 <= one < latency + 1.0 * SLOWDOWN, "one send took %.3fs with --latency-ms %d"
          % (one, latency * 1000))
    # 20 sends at once: answered together after the latency, not one after another (20 times as long).
    # Every client connects before the barrier, so all 20 requests leave together when it opens.
    n = 20
    opened = []
    barrier = threading.Barrier(n, action=lambda: opened.append(time.monotonic()))

    def send_one(i):
        cl = m.client(timeout=10 * SLOWDOWN)
        try:
            try:
                cl.conn.connect()
            except Exception:
                barrier.abort()
                raise
            barrier.wait(10 * SLOWDOWN)
            status = cl.send(phone(i, 2))[0]
            return status, time.monotonic()
        finally:
            cl.close()

    workers = [in_thread(lambda i=i: send_one(i)) for i in range(n)]
    for w in workers:
        w["thread"].join(30 * SLOWDOWN)
    check(all(w.get("result", (None,))[0] == 200 for w in workers),
          "concurrent sends: %r" % [w.get("result", w.get("error")) for w in workers])
    first = min(w["result"][1] for w in workers) - opened[0]
    took = max(w["result"][1] for w in workers) - opened[0]
    check(first >= latency - 0.02, "a concurrent send was answered %.3fs after it was sent, before the latency" % first)
    check(took < latency + 1.5 * SLOWDOWN, "20 concurrent sends with %d ms latency took %.2fs: the latency blocks"
          % (latency * 1000, took))
    s = m.stats()
    check(s["max_in_flight"] == n, "max_in_flight %d, expected %d" % (s["max_in_flight"], n))
    check(s["in_flight"] == 0, "in_flight %d after every answer" % s["in_flight"])
    # Jitter: 200 ± 100 ms.
    m2 = Mock.start("--latency-ms", "200", "--latency-jitter-ms", "100", "--seed", "5")
    c2 = m2.client()
    took = []
    for i in range(12):
        t0 = time.monotonic()
        check_accepted(*c2.send(phone(i, 3))[::2])
        took.append(time.monotonic() - t0)
    check(min(took) >= 0.098, "a send took %.3fs, less than 200 - 100 ms" % min(took))
    check(max(took) <= 0.3 + 0.5 * SLOWDOWN, "a send took %.3fs, more than 200 + 100 ms" % max(took))
    check(max(took) - min(took) >= 0.05, "no jitter: every send took %.3f-%.3fs" % (min(took), max(took)))


# ---- stats ----


@mock_test(timeout=30.0)
def stats_count_exactly_per_recipient():
    # The rate window counts messages by the time their request arrived. Those arrivals lie between a
    # time taken before the first request and one taken after the last answer: when that span is under
    # the 1 s window, the messages are certainly in one window and the count is exact; a machine too
    # slow for that still gets the bounds that hold either way.
    m = Mock.start()
    c = m.client()
    a, b, d = "+84911110001", "+84922220002", "+84933330003"
    t_start = time.monotonic()
    for to in (a, a, b, d):
        check_accepted(*c.send(to)[::2])
    status, _, _ = c.post("/send", {"messages": [{"to": a, "message": "x"}, {"to": d, "message": "y"},
                                                 {"to": "+84900000000", "message": "z"}]})
    check(status == 200, "batch answered %d" % status)
    t_first = time.monotonic()
    s = m.stats()
    check(s["by_recipient"] == {a: 3, b: 1, d: 2}, "by_recipient %r" % s["by_recipient"])
    check(s["received"] == 6 and s["requests"] == 5 and s["rejected"] == 1,
          "received %d requests %d rejected %d" % (s["received"], s["requests"], s["rejected"]))
    first = s["rate"]["max_per_window"]
    if t_first - t_start < 0.99:
        check(s["rate"] == {"window_ms": 1000, "max_per_window": 6, "max_calls_per_window": 6},
              "rate after one burst of 6 (no polls) within %.3fs: %r" % (t_first - t_start, s["rate"]))
    else:
        check(s["rate"]["window_ms"] == 1000 and 1 <= first <= 6 and s["rate"]["max_calls_per_window"] == first,
              "rate after 6 messages over %.3fs (no polls): %r" % (t_first - t_start, s["rate"]))
    # A second burst more than a window later does not add to the first one.
    wait_for(lambda: time.monotonic() > t_first + 1.1, 5 * SLOWDOWN, "a full rate window to pass")
    t_second = time.monotonic()
    status, _, doc = c.post("/send", {"messages": [{"to": phone(i, 4), "message": "x"} for i in range(4)]})
    check(status == 200 and all(x["status"] == "accepted" for x in doc["results"]), "batch of 4: %d %r" % (status, doc))
    s = m.stats()
    check(s["received"] == 10, "received %d, expected 10" % s["received"])
    check(s["rate"]["max_per_window"] == max(first, 4), "max_per_window %d after bursts of %d and 4 a window apart"
          % (s["rate"]["max_per_window"], first))
    # A burst of 8 right after the 4 shares their window.
    status, _, doc = c.post("/send", {"messages": [{"to": phone(i, 5), "message": "x"} for i in range(8)]})
    check(status == 200 and all(x["status"] == "accepted" for x in doc["results"]), "batch of 8: %d %r" % (status, doc))
    span = time.monotonic() - t_second
    got = m.stats()["rate"]["max_per_window"]
    if span < 0.99:
        check(got == 12, "max_per_window %d after a burst of 8 right after 4 (%.3fs apart), expected 12" % (got, span))
    else:
        check(got >= max(first, 8), "max_per_window %d after a burst of 8" % got)
    status, _, _, doc = m.request("GET", "/stats?by_recipient=0")
    check(status == 200 and "by_recipient" not in doc and doc["recipients"] == 15, "?by_recipient=0: %r" % doc)


@mock_test
def duplicate_client_ids_get_the_same_message_id():
    m = Mock.start()
    c = m.client()
    first = check_accepted(*c.send("+84911110001", id="order-1")[::2])
    status, _, doc = c.send("+84911110001", id="order-1")
    check(check_accepted(status, doc, "resend") == first, "a resend with the same id got a new message_id: %r" % doc)
    check(doc.get("duplicate") is True, "the resend is not marked as a duplicate: %r" % doc)
    status, _, doc = c.post("/send", {"messages": [{"to": "+84911110001", "message": "x", "id": "order-1"},
                                                   {"to": "+84922220002", "message": "y", "id": "order-2"}]})
    results = doc["results"]
    check(results[0]["message_id"] == first, "batch resend of order-1 got %r" % results[0])
    check(results[1]["message_id"] != first and results[1]["status"] == "accepted", "order-2: %r" % results[1])
    check_accepted(*c.send("+84911110001")[::2])  # no id: always a new reception
    s = m.stats()
    check(s["received"] == 3 and s["duplicates"] == 2, "received %d duplicates %d, expected 3 and 2" % (s["received"], s["duplicates"]))
    check(s["by_recipient"] == {"+84911110001": 2, "+84922220002": 1}, "by_recipient %r" % s["by_recipient"])
    # The memory for ids is bounded: with --max-ids 4 the oldest ids are forgotten, the newest kept.
    m2 = Mock.start("--max-ids", "4")
    c2 = m2.client()
    ids = [check_accepted(*c2.send(phone(i), id="k%d" % i)[::2]) for i in range(10)]
    status, _, doc = c2.send(phone(9), id="k9")
    check(doc.get("message_id") == ids[9] and doc.get("duplicate") is True, "the newest id was forgotten: %r" % doc)
    status, _, doc = c2.send(phone(0), id="k0")
    check(check_accepted(status, doc) != ids[0] and not doc.get("duplicate"), "--max-ids 4 still remembers k0 of 10")


@mock_test
def reset_zeroes_everything():
    m = Mock.start("--latency-ms", "1")
    c = m.client()
    check_accepted(*c.send("+84911110001", id="k1")[::2])
    c.send("+84911110001", id="k1")
    c.send("+84900000000")
    c.send("+84900000503")
    c.send("+84900000429")
    before = m.stats()
    check(before["received"] == 1 and before["duplicates"] == 1 and before["rate"]["max_per_window"] == 1,
          "stats before the reset: %r" % before)
    status, _, _, doc = m.request("POST", "/stats/reset")
    check(status == 200, "POST /stats/reset answered %d" % status)
    s = m.stats()
    for key in ("received", "requests", "rejected", "failed_5xx", "failed_429", "timeouts", "duplicates",
                "unauthorized", "bad_requests", "dlr_sent", "dlr_failed", "max_in_flight", "recipients"):
        check(s[key] == 0, "%s is %r after the reset" % (key, s[key]))
    check(s["by_recipient"] == {} and s["rate"]["max_per_window"] == 0, "after the reset: %r" % s)
    status, _, doc = c.send("+84911110001", id="k1")
    check_accepted(status, doc, "the send after the reset")
    check(not doc.get("duplicate") and m.stats()["duplicates"] == 0, "client ids survived the reset: %r" % doc)


# ---- control ----


@mock_test(timeout=30.0)
def control_changes_behaviour_and_down_up():
    m = Mock.start()
    c = m.client()
    doc = m.control({"fail_5xx": 100})
    check(doc.get("fail_5xx") == 100, "control answer %r" % doc)
    check(c.send("+84911110001")[0] == 503, "fail_5xx 100 did not answer 503")
    m.control({"fail_5xx": 0, "latency_ms": 0})
    check_accepted(*c.send("+84911110001")[::2])
    # Down: sends are not answered, /stats still is.
    check(m.control({"down": True})["down"] is True, "down not reported")
    try:
        status, _, _, _ = m.request("POST", "/send", {"to": "+84911110002", "message": "x"}, timeout=0.5)
        raise TestFailure("a send was answered (%d) while down" % status)
    except socket.timeout:
        pass
    waiting = in_thread(lambda: m.request("POST", "/send", {"to": "+84911110003", "message": "x"},
                                          timeout=20 * SLOWDOWN)[0])
    wait_for(lambda: m.stats()["down_dropped"] == 2, 5 * SLOWDOWN, "the second send to be held while down")
    check("result" not in waiting, "a send was answered while down")
    s = m.stats()
    check(s["received"] == 1, "received %d while down" % s["received"])
    m.control({"down": False})
    waiting["thread"].join(5 * SLOWDOWN)
    check(waiting.get("result") == 503, "a send held while down got %r when the provider came back, expected 503"
          % waiting.get("result", waiting.get("error")))
    check_accepted(*m.client().send("+84911110004")[::2])
    check(m.stats()["received"] == 2, "the send after coming back was not received")
    # Invalid settings change nothing.
    for bad in ({"fail_5xx": "x"}, {"bogus": 1}, {"fail_5xx": 60, "reject": 50}, {"down": "yes"}, [1]):
        status, _, _, _ = m.request("POST", "/control", bad)
        check(status == 400, "POST /control %r answered %d, expected 400" % (bad, status))
    status, _, _, doc = m.request("GET", "/control")
    check(status == 200 and doc["fail_5xx"] == 0 and doc["reject"] == 0 and doc["down"] is False,
          "settings changed by invalid requests: %r" % doc)


# ---- delivery reports ----

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def check_report(report, message_id, to, status):
    check(report.get("message_id") == message_id, "report for %r: %r" % (message_id, report))
    check(report.get("status") == status, "report status %r, expected %r" % (report.get("status"), status))
    check(report.get("to") == to, "report to %r, expected %r" % (report.get("to"), to))
    ts = report.get("timestamp", "")
    check(bool(RFC3339.match(ts)), "timestamp %r is not RFC 3339" % ts)
    when = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    age = abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds())
    check(age < 60, "timestamp %r is %.0fs away from now" % (ts, age))


@mock_test(timeout=30.0)
def dlr_posted_with_the_right_fields():
    r = Receiver()
    m = Mock.start("--dlr-url", r.url, "--dlr-delay-ms", "200")
    c = m.client()
    # Each send is timed from before its request: the answer, and so the delay, come after that.
    sent1 = time.monotonic()
    mid1 = check_accepted(*c.send("+84912345678")[::2])
    sent2 = time.monotonic()
    mid2 = check_accepted(*c.send("+84900000666")[::2])
    c.send("+84900000000")  # rejected: no report
    wait_for(lambda: len(r.reports) >= 2, 5 * SLOWDOWN, "two delivery reports")
    by_id = {doc.get("message_id"): doc for doc in r.bodies()}
    check_report(by_id.get(mid1, {}), mid1, "+84912345678", "DELIVRD")
    check_report(by_id.get(mid2, {}), mid2, "+84900000666", "UNDELIV")
    with r.lock:
        arrived = {doc.get("message_id"): at for at, doc, _ in r.reports}
    for mid, sent in ((mid1, sent1), (mid2, sent2)):
        check(arrived[mid] - sent >= 0.2 - 0.02, "the report of %s came %.3fs after its send, before --dlr-delay-ms 200"
              % (mid, arrived[mid] - sent))
    check(r.reports[0][2].get("content-type", "").startswith("application/json"), "report Content-Type %r"
          % r.reports[0][2].get("content-type"))
    wait_for(lambda: m.stats()["dlr_sent"] == 2, 5 * SLOWDOWN, "dlr_sent == 2")
    # --dlr-undelivered, changed at runtime: every report UNDELIV.
    m.control({"dlr_undelivered": 100, "dlr_delay_ms": 0})
    mid3 = check_accepted(*c.send("+84912345670")[::2])
    wait_for(lambda: len(r.reports) >= 3, 5 * SLOWDOWN, "the third report")
    check_report(r.bodies()[2], mid3, "+84912345670", "UNDELIV")
    wait_for(lambda: m.stats()["dlr_sent"] == 3, 5 * SLOWDOWN, "dlr_sent == 3")
    check(len(r.reports) == 3, "reports for rejected sends: %r" % r.bodies())
    check(m.stats()["dlr_failed"] == 0, "dlr_failed counted a report that went through")


@mock_test(timeout=30.0)
def dlr_post_retried_then_given_up():
    r = Receiver(fail_first=2)
    m = Mock.start("--dlr-url", r.url, "--dlr-delay-ms", "0")
    mid = check_accepted(*m.client().send("+84912345678")[::2])
    wait_for(lambda: m.stats()["dlr_sent"] == 1, 5 * SLOWDOWN, "the report to go through on the third post")
    check([doc.get("message_id") for doc in r.bodies()] == [mid] * 3, "posts: %r" % r.bodies())
    check(m.stats()["dlr_failed"] == 0, "dlr_failed counted a report that went through")
    # Nobody listens there: four posts, then dlr_failed.
    m.control({"dlr_url": "http://%s:%d/dlr" % (HOST, free_port())})
    check_accepted(*m.client().send("+84912345679")[::2])
    wait_for(lambda: m.stats()["dlr_failed"] == 1, 10 * SLOWDOWN, "dlr_failed == 1")
    check(m.stats()["dlr_sent"] == 1, "dlr_sent grew for a report nobody received")
    check(any(line.get("msg") == "delivery report not delivered" for line in m.log_lines()),
          "no log line for the report given up")


@mock_test(timeout=30.0)
def dlr_url_list_takes_the_urls_in_turn():
    # Three receivers (the nodes of a cluster): six reports, two each, in turn.
    rs = [Receiver() for _ in range(3)]
    m = Mock.start("--dlr-url", ",".join(r.url for r in rs), "--dlr-delay-ms", "0")
    c = m.client()
    mids = []
    for i in range(6):
        mids.append(check_accepted(*c.send(phone(i, 7))[::2]))
        # One at a time, so that the order of the posts is the order of the sends.
        wait_for(lambda: m.stats()["dlr_sent"] == i + 1, 5 * SLOWDOWN, "report %d" % (i + 1))
    for k, r in enumerate(rs):
        got = [doc.get("message_id") for doc in r.bodies()]
        check(got == [mids[k], mids[k + 3]], "receiver %d got %r, expected %r" % (k, got, [mids[k], mids[k + 3]]))
    # A retry goes to the URL after the one the report's last post went to, so a report tries every
    # URL before any twice: with two dead URLs of three and --dlr-attempts 3, every report arrives.
    r = Receiver()
    dead = ["http://%s:%d/dlr" % (HOST, free_port()) for _ in range(2)]
    m2 = Mock.start("--dlr-url", ",".join(dead + [r.url]), "--dlr-delay-ms", "0", "--dlr-attempts", "3")
    c2 = m2.client()
    for i in range(3):
        mid = check_accepted(*c2.send(phone(i, 8))[::2])
        wait_for(lambda: m2.stats()["dlr_sent"] == i + 1, 10 * SLOWDOWN, "report %d via the third URL" % (i + 1))
        check(r.bodies()[-1].get("message_id") == mid, "the receiver got %r" % r.bodies())
    stats = m2.stats()
    # The reports start at the first, second and third URL: 2 + 1 + 0 failed posts.
    check(stats["dlr_retried"] == 3 and stats["dlr_failed"] == 0, "posts: %r"
          % {k: stats[k] for k in ("dlr_sent", "dlr_retried", "dlr_failed")})
    settings = m.control({"dlr_url": dead[0] + "," + r.url})
    check(settings["dlr_url"] == dead[0] + "," + r.url, "/control did not take the list: %r" % settings)
    # An empty URL in the list is refused, on the command line and by /control.
    for bad in (r.url + ",", "," + r.url, r.url + ",," + r.url):
        code, _, err = run_cli(["mock-provider", "--dlr-url", bad])
        check(code == 1 and "invalid value for" in err, "--dlr-url %r: %d %r" % (bad, code, err))
        status, _, _, _ = m.request("POST", "/control", {"dlr_url": bad})
        check(status == 400, "/control dlr_url %r answered %d" % (bad, status))


@mock_test(timeout=30.0)
def dlr_before_answer_orders_the_report_first():
    r = Receiver()
    m = Mock.start("--dlr-url", r.url, "--dlr-delay-ms", "0", "--dlr-before-answer")
    r.gate.clear()  # the receiver takes reports but does not answer them yet
    sending = in_thread(lambda: m.client(timeout=20 * SLOWDOWN).send("+84912345678"))
    # (At least one post: one held past the mock's 5 s report timeout is posted again.)
    wait_for(lambda: len(r.reports) >= 1, 5 * SLOWDOWN, "the report, before the send answer")
    check("result" not in sending, "the send was answered before its report")
    # The answer waits for the report's answer, not only for its post.
    sending["thread"].join(0.3)
    check("result" not in sending, "the send was answered while its report was still unanswered")
    r.gate.set()
    sending["thread"].join(5 * SLOWDOWN)
    check("result" in sending, "no send answer after the report was answered: %r" % sending.get("error"))
    status, _, doc = sending["result"]
    check(check_accepted(status, doc) == r.bodies()[0].get("message_id"), "report and answer name different messages")
    # Without the flag the answer does not wait for the report.
    m.control({"dlr_before_answer": False})
    r.gate.clear()
    n = len(r.bodies())
    status, _, doc = m.client().send("+84912345679")
    mid2 = check_accepted(status, doc, "the send without --dlr-before-answer")
    wait_for(lambda: len(r.reports) > n, 5 * SLOWDOWN, "the second report")
    check(r.bodies()[n].get("message_id") == mid2, "the second report names %r, not %r" % (r.bodies()[n], mid2))
    r.gate.set()
    wait_for(lambda: m.stats()["dlr_sent"] == 2, 5 * SLOWDOWN, "dlr_sent == 2")


# ---- shutdown ----


@mock_test(timeout=30.0)
def sigterm_and_sigint_exit_0():
    for signum in (signal.SIGTERM, signal.SIGINT):
        r = Receiver()
        r.gate.clear()
        m = Mock.start("--latency-ms", "30000", "--dlr-url", r.url, "--dlr-delay-ms", "0", "--dlr-before-answer")
        # In flight: one answer waiting for its latency (30 s) and report, one held (timeout, 60 s).
        slow = in_thread(lambda: m.request("POST", "/send", {"to": "+84912345678", "message": "x"},
                                           timeout=40 * SLOWDOWN))
        held = in_thread(lambda: m.request("POST", "/send", {"to": "+84900000408", "message": "x"},
                                           timeout=40 * SLOWDOWN))
        wait_for(lambda: m.stats()["in_flight"] == 2 and len(r.reports) >= 1, 5 * SLOWDOWN, "two sends in flight")
        t0 = time.monotonic()
        m.signal(signum)
        # Stopping is bounded by the drain (3 s), far from the latency and the hold.
        limit = 3 + 1.0 * SLOWDOWN
        code = m.wait_exit(limit + 5 * SLOWDOWN)
        took = time.monotonic() - t0
        check(code == 0, "exit code %r after %s" % (code, signal.Signals(signum).name))
        check(took < limit, "stopping took %.1fs" % took)
        for w in (slow, held):
            w["thread"].join(5 * SLOWDOWN)
            check(not w["thread"].is_alive(), "a client still waits after the mock stopped")
        m.wait_log("stopped", 5 * SLOWDOWN)
        r.gate.set()


if __name__ == "__main__":
    run()
