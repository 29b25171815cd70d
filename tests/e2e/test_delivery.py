"""End-to-end tests of the delivery engine: the daemon sends to one or two
`smsrules mock-provider` processes on loopback."""
import calendar
import http.client
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOST, SLOWDOWN, Daemon, Mock, check, free_port, get_message, metric, run, run_cli, test, wait_for, wait_message_status  # noqa: E402

KEY = "k"
AUTH = {"Authorization": "Bearer " + KEY}


def get(d, mid):
    return get_message(d, mid, AUTH)


def wait_status(d, mid, status, timeout=10):
    return wait_message_status(d, mid, status, AUTH, timeout)


def rules(providers, extra=""):
    return 'sms.config{ api_keys = { "%s" }, retry_base_ms = 20, retry_cap_ms = 200 %s }\n%s\n' % (
        KEY, extra, providers)


def provider(name, mock, opts=""):
    return 'sms.provider("%s", { adapter = "mock", url = "%s" %s })' % (name, mock.url, opts)


class Sender:
    """Posts batches of messages on one keep-alive connection."""

    def __init__(self, d):
        self.conn = http.client.HTTPConnection(HOST, d.port, timeout=30 * SLOWDOWN)

    def batch(self, msgs):
        self.conn.request("POST", "/v1/messages", body=json.dumps({"messages": msgs}), headers=AUTH)
        r = self.conn.getresponse()
        doc = json.loads(r.read())
        check(r.status == 202, "batch answered %d %r" % (r.status, doc)[:300])
        ids = [x["id"] for x in doc["result"] if x["code"] == "OK"]
        check(len(ids) == len(msgs), "rejected: %r" % [x for x in doc["result"] if x["code"] != "OK"][:3])
        return ids

    def one(self, to, text="hello"):
        return self.batch([{"to": to, "text": text}])[0]


def rfc3339(s):
    base, frac = s.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + int(frac) / 1000.0


def rfc3339_ms(s):
    """The daemon's RFC 3339 time (always with milliseconds) as integer ms."""
    base, frac = s.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(frac)


def busiest_window(times_ms, window_ms):
    """The most of times_ms that fall in any window_ms-long span [t, t + window_ms)."""
    ts = sorted(times_ms)
    best = lo = 0
    for hi, t in enumerate(ts):
        while ts[lo] <= t - window_ms:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# A provider timeout (10 s by default) turns a slow but sound answer into a
# retry (a resend the mock counts as a duplicate, an attempt without an HTTP
# status): tests that count those exactly give the provider much longer.
PATIENT = ", timeout_ms = 30000"


@test(timeout=180)
def ten_thousand_messages_each_received_once():
    mock = Mock.start()
    d = Daemon.start(rules(provider("primary", mock, ", concurrency = 32" + PATIENT)))
    s = Sender(d)
    n = 10000
    for b in range(n // 1000):
        s.batch([{"to": "+8490%07d7" % (b * 1000 + i), "text": "m%d" % (b * 1000 + i)} for i in range(1000)])
    wait_for(lambda: metric(d, "smsrules_provider_sent_total", provider="primary") >= n, 120 * SLOWDOWN,
             "10,000 messages sent")
    st = mock.stats()
    check(st["received"] == n, "mock received %d" % st["received"])
    counts = st["by_recipient"]
    check(len(counts) == n and set(counts.values()) == {1}, "not exactly once: %d recipients, counts %r" % (
        len(counts), sorted(set(counts.values()))))
    check(st["duplicates"] == 0, "duplicates %d" % st["duplicates"])
    status, _, _, doc = d.request("GET", "/v1/messages?status=sent&limit=1000", headers=AUTH, timeout=30 * SLOWDOWN)
    check(len(doc["messages"]) == 1000 and doc["next"], "listing sent messages")
    check(metric(d, "smsrules_queue_depth") == 0, "queue not empty")
    d.stop()
    mock.stop()


@test(timeout=120)
def retries_through_thirty_percent_503():
    mock = Mock.start("--fail-5xx", 30, "--seed", 7)
    # One message a request, so 30% of requests is 30% of messages. A 30% failure rate now and then puts
    # half of a 20-request window in error, which opens the circuit: a short cooldown keeps this test
    # about retries (the circuit has its own tests) and its time far from the deadline.
    d = Daemon.start(rules(provider("primary", mock, ", max_attempts = 20, batch_size = 1" + PATIENT),
                           ", circuit_cooldown_ms = 100"))
    s = Sender(d)
    ids = s.batch([{"to": "+8491%07d7" % i, "text": "x%d" % i} for i in range(300)])
    wait_for(lambda: metric(d, "smsrules_provider_sent_total", provider="primary") >= 300, 60 * SLOWDOWN,
             "300 messages sent")
    retried = 0
    for mid in ids:
        m = get(d, mid)
        check(m["status"] == "sent", "%s is %s" % (mid, m["status"]))
        outcomes = [a["outcome"] for a in m["attempts"]]
        check(outcomes[-1] == "sent", repr(m["attempts"]))
        if len(outcomes) > 1:
            retried += 1
            check(all(a["http_status"] == 503 and a["outcome"] == "retry" for a in m["attempts"][:-1]),
                  "earlier attempts are retries after 503: %r" % m["attempts"])
    check(retried > 0, "no retry visible in attempts")
    check(metric(d, "smsrules_provider_retried_total", provider="primary") > 0, "retried metric")
    check(mock.stats()["received"] == 300, "mock received each once")
    d.stop()
    mock.stop()


@test(timeout=60)
def retry_after_pauses_the_provider():
    mock = Mock.start("--retry-after", 2)
    d = Daemon.start(rules(provider("primary", mock, ", batch_size = 1" + PATIENT)))
    s = Sender(d)
    first = s.one("+84912340429")  # always answered 429 Retry-After: 2
    m = wait_for(lambda: (lambda m: m if m["attempts"] and m["attempts"][0]["outcome"] == "retry" else None)(
        get(d, first)), 10 * SLOWDOWN, "the 429 answer")
    answered_429 = rfc3339(m["attempts"][0]["started_at"]) + m["attempts"][0]["duration_ms"] / 1000.0
    check(m["attempts"][0]["http_status"] == 429, repr(m["attempts"]))
    other = s.one("+84912345678")
    m2 = wait_status(d, other, "sent", 15)
    started = rfc3339(m2["attempts"][0]["started_at"])
    check(started >= answered_429 + 1.99, "next attempt to the provider %.3fs after the 429" % (started - answered_429))
    m = wait_for(lambda: (lambda m: m if len(m["attempts"]) >= 2 else None)(get(d, first)), 15 * SLOWDOWN,
                 "the retry of the 429'd message")
    gap = rfc3339(m["attempts"][1]["started_at"]) - answered_429
    check(gap >= 1.99, "the retry started %.3fs after the 429" % gap)
    d.stop()
    mock.stop()


@test(timeout=60)
def primary_401_sends_through_backup():
    primary = Mock.start("--auth-key", "right")
    backup = Mock.start()
    d = Daemon.start(rules(provider("primary", primary, ', api_key = "wrong"' + PATIENT) + "\n" +
                           provider("backup", backup, PATIENT)))
    s = Sender(d)
    ids = s.batch([{"to": "+8492%07d7" % i, "text": "y%d" % i} for i in range(50)])
    wait_for(lambda: metric(d, "smsrules_provider_sent_total", provider="backup") >= 50, 20 * SLOWDOWN,
             "50 messages sent by the backup")
    for mid in ids:
        m = get(d, mid)
        check(m["status"] == "sent" and m["provider"] == "backup", "%s: %s via %s" % (mid, m["status"], m["provider"]))
        check(m["route"] == ["primary", "backup"], repr(m["route"]))
        for a in m["attempts"][:-1]:
            check(a["provider"] == "primary" and a["http_status"] == 401, repr(m["attempts"]))
    check(primary.stats()["received"] == 0, "the primary accepted something")
    check(backup.stats()["received"] == 50, "backup received %d" % backup.stats()["received"])
    d.stop()
    primary.stop()
    backup.stop()


@test(timeout=90)
def a_backlog_behind_an_open_circuit_is_not_rewritten_at_each_opening():
    # Nothing listens on the provider's port: every send fails at once and its circuit opens, lets one
    # probe through after the cooldown, opens again. The 2,000 queued messages wait for it untouched:
    # before, each opening rescheduled every due message to the probe's time, a store write each.
    d = Daemon.start(rules('sms.provider("down", { adapter = "mock", url = "http://127.0.0.1:%d/send" })' % free_port(),
                           ", circuit_failures = 3, circuit_cooldown_ms = 200"))
    s = Sender(d)
    ids = []
    for b in range(2):
        ids += s.batch([{"to": "+849310%04d7" % (b * 1000 + i), "text": "backlog"} for i in range(1000)])

    def openings():
        return sum(1 for x in d.log_lines() if x.get("msg") == "circuit state" and x.get("state") == "open")

    wait_for(lambda: openings() >= 2, 30 * SLOWDOWN, "the circuit to open twice")
    units0, opened0 = metric(d, "smsrules_store_units_total"), openings()
    wait_for(lambda: openings() >= opened0 + 3, 30 * SLOWDOWN, "three more openings of the circuit")
    units = metric(d, "smsrules_store_units_total") - units0
    check(units < 100, "%d store units over three openings of the circuit with 2,000 messages queued" % units)
    check(metric(d, "smsrules_queue_depth") == 2000, "queue depth %s" % metric(d, "smsrules_queue_depth"))
    check(get(d, ids[-1])["status"] == "queued", "the last message is %r" % get(d, ids[-1])["status"])
    d.stop()


@test(timeout=90)
def circuit_opens_on_unreachable_primary_and_closes_again():
    primary = Mock.start()
    backup = Mock.start()
    # The down primary never answers: its sends end by timeout_ms. It must still be long enough for a sound
    # answer from a slow mock (the first send, the probes once it is back).
    timeout_ms = int(1000 * SLOWDOWN)
    d = Daemon.start(rules(provider("primary", primary, ", max_attempts = 2, timeout_ms = %d, batch_size = 1"
                                    % timeout_ms) + "\n" + provider("backup", backup, ", batch_size = 1"),
                           ", circuit_failures = 3, circuit_cooldown_ms = 1000"))
    s = Sender(d)
    wait_status(d, s.one("+84930000001"), "sent")
    check(primary.stats()["received"] == 1, "primary carries traffic while up")
    primary.control({"down": True})
    for i in range(20):
        s.one("+849300001%02d7" % i)
    wait_for(lambda: metric(d, "smsrules_provider_circuit_state", provider="primary") == 1, 20 * SLOWDOWN,
             "the primary's circuit to open")
    d.wait_log("circuit state", 5 * SLOWDOWN)
    wait_for(lambda: backup.stats()["received"] >= 20, 30 * SLOWDOWN, "the backup to carry the traffic")
    primary.control({"down": False})
    before = primary.stats()["received"]

    def primary_again():
        s.one("+849300002%02d7" % (int(time.monotonic() * 10) % 100))
        return metric(d, "smsrules_provider_circuit_state", provider="primary") == 0 and \
            primary.stats()["received"] > before

    wait_for(primary_again, 20 * SLOWDOWN, "the circuit to close and the primary to carry traffic", interval=0.3)
    states = [x.get("state") for x in d.log_lines() if x.get("msg") == "circuit state"]
    check(states[:1] == ["open"] and "half_open" in states and states[-1] == "closed", "circuit log: %r" % states)
    d.stop()
    primary.stop()
    backup.stop()


@test(timeout=90)
def rate_limit_respected():
    mock = Mock.start()
    d = Daemon.start(rules(provider("primary", mock, ", rate = 100, burst = 10")))
    s = Sender(d)
    t0 = time.monotonic()
    ids = s.batch([{"to": "+8494%07d7" % i, "text": "r%d" % i} for i in range(400)])
    wait_for(lambda: metric(d, "smsrules_provider_sent_total", provider="primary") >= 400, 30 * SLOWDOWN,
             "400 messages sent")
    elapsed = time.monotonic() - t0
    # The limiter is judged where it acts: the daemon takes a message's token as it starts the attempt,
    # whose started_at (in ms) the API shows. 100/s with a burst of 10 lets at most 110 attempts start in
    # any 1000 ms; one more is allowed for the millisecond rounding, one for started_at being stamped a
    # moment after the token was taken.
    starts = []
    for mid in ids:
        m = get(d, mid)
        check(m["status"] == "sent" and m["attempts"], "%s: %r" % (mid, m))
        starts.extend(rfc3339_ms(a["started_at"]) for a in m["attempts"])
    busiest = busiest_window(starts, 1000)
    check(busiest <= 100 + 10 + 2, "%d attempts started within 1000 ms at rate 100/s, burst 10" % busiest)
    # The mock stamps arrivals, which come after a store commit and the HTTP request: scheduling jitter
    # bunches them up, so that side is only a loose check.
    st = mock.stats()
    check(st["rate"]["max_per_window"] <= 111 + 20 * SLOWDOWN, "the mock received %d messages within 1 s"
          % st["rate"]["max_per_window"])
    check(elapsed >= 3.5, "400 messages at 100/s took only %.2fs" % elapsed)
    d.stop()
    mock.stop()


@test(timeout=60)
def permanent_message_error_fails_and_retry_requeues():
    mock = Mock.start()
    d = Daemon.start(rules(provider("primary", mock)))
    s = Sender(d)
    bad = s.one("+84950000000")  # answered 400 invalid number
    m = wait_status(d, bad, "failed")
    a = m["attempts"][0]
    check(a["outcome"] == "rejected" and "invalid number" in a["error"] and "invalid number" in m["error"], repr(m))
    status, _, _, lst = d.request("GET", "/v1/messages?status=failed", headers=AUTH)
    check([x["id"] for x in lst["messages"]] == [bad], repr(lst))
    status, _, _, doc = d.request("POST", "/v1/messages/%s/retry" % bad, headers=AUTH)
    check(status == 202 and doc["status"] == "queued", "retry: %d %r" % (status, doc))
    m = wait_for(lambda: (lambda m: m if m["status"] == "failed" and len(m["attempts"]) == 2 else None)(get(d, bad)),
                 10 * SLOWDOWN, "the retried message to be tried again")
    status, _, _, doc = d.request("POST", "/v1/messages/%s/retry" % s.one("+84951234567"), headers=AUTH)
    check(status in (409, 202), "retry of a non-failed message: %d" % status)
    d.stop()
    mock.stop()


@test(timeout=180)
def sigkill_while_sending_resends_after_restart():
    mock = Mock.start("--latency-ms", 300)
    d = Daemon.start(rules(provider("primary", mock, ", concurrency = 4, batch_size = 50")))
    s = Sender(d)
    n = 2000
    for b in range(n // 1000):
        s.batch([{"to": "+8496%07d7" % (b * 1000 + i), "text": "k%d" % i} for i in range(1000)])
    wait_for(lambda: mock.stats()["received"] >= 200, 30 * SLOWDOWN, "sending under way")
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    d.restart()
    wait_for(lambda: mock.stats()["received"] >= n, 120 * SLOWDOWN, "every message to reach the mock")
    counts = mock.stats()["by_recipient"]
    missing = [i for i in range(n) if counts.get("+8496%07d7" % i, 0) < 1]
    check(not missing, "%d messages never reached the mock" % len(missing))
    check(metric(d, "smsrules_resent_after_crash_total") > 0, "resends after the crash not counted")
    wait_for(lambda: metric(d, "smsrules_queue_depth") == 0, 60 * SLOWDOWN, "the queue to drain")
    d.stop()
    mock.stop()


def count_status(d, status):
    st, _, _, doc = d.request("GET", "/v1/messages?status=%s&limit=1000" % status, headers=AUTH)
    check(st == 200, "list %s: %d" % (status, st))
    return len(doc["messages"])


@test(timeout=60)
def a_message_whose_lane_has_room_is_marked_sending_in_its_accept_unit():
    # One message per request, the provider's lane with room: the put already carries `sending` (two
    # store units a message, accepted+sending and sent, not three); the history still shows queued,
    # sending, sent, and the provider gets each message once.
    mock = Mock.start()
    d = Daemon.start(rules(provider("primary", mock, ", concurrency = 8, batch_size = 1")))
    units0 = metric(d, "smsrules_store_units_total")
    n = 20
    ids = []
    for i in range(n):
        status, _, _, doc = d.request("POST", "/v1/messages", body={"to": "+8495%07d7" % i, "text": "u%d" % i},
                                      headers=AUTH)
        check(status == 202 and doc["status"] == "queued", "POST answered %d %r" % (status, doc))
        ids.append(doc["id"])
    wait_for(lambda: metric(d, "smsrules_provider_sent_total", provider="primary") >= n, 30 * SLOWDOWN,
             "every message sent")
    units = metric(d, "smsrules_store_units_total") - units0
    # 2 a message; a few more for the daemon's own sweeps, never the 3 a message of the queue's way.
    check(2 * n <= units < 2 * n + n // 2, "%d store units for %d messages" % (units, n))
    for mid in ids:
        doc = wait_status(d, mid, "sent")
        seen = [h["status"] for h in doc["history"]]
        check(seen[:3] == ["queued", "sending", "sent"], "history %r" % seen)
    counts = mock.stats()["by_recipient"]
    check(counts == {"+8495%07d7" % i: 1 for i in range(n)}, "receptions: %r" % counts)
    d.stop()
    mock.stop()


# The provider holds every send unanswered while down; few failures must not open the circuit.
HOLDING = ", concurrency = 2, batch_size = 1" + PATIENT


@test(timeout=90)
def concurrency_bounds_requests_out_not_their_sending_marks():
    # While 2 requests (the provider's concurrency) are out, the next 2 are already marked `sending`
    # (their commits overlap the round trip) and wait for a slot; the provider never sees more than 2.
    mock = Mock.start("--latency-ms", 20)
    mock.control({"down": True})
    d = Daemon.start(rules(provider("primary", mock, HOLDING), ", circuit_failures = 100"))
    s = Sender(d)
    n = 200
    s.batch([{"to": "+8493%07d7" % i, "text": "c%d" % i} for i in range(n)])
    wait_for(lambda: mock.stats()["in_flight"] == 2 and count_status(d, "sending") == 4, 20 * SLOWDOWN,
             "2 requests out and 2 more marked `sending`")
    check(count_status(d, "sending") == 4 and mock.stats()["in_flight"] == 2, "more than 4 sending, 2 out")
    mock.control({"down": False})  # the held ones get 503 and are retried
    wait_for(lambda: metric(d, "smsrules_provider_sent_total", provider="primary") >= n, 60 * SLOWDOWN,
             "every message sent")
    st = mock.stats()
    check(st["max_in_flight"] == 2, "the provider saw %d requests at once" % st["max_in_flight"])
    counts = st["by_recipient"]
    wrong = {k: v for k, v in counts.items() if v != 1}
    check(len(counts) == n and not wrong, "%d recipients, not once: %r" % (len(counts), list(wrong.items())[:5]))
    d.stop()
    mock.stop()


@test(timeout=90)
def sigterm_leaves_marked_requests_sending_and_restart_sends_them_once():
    # Requests marked `sending` but not out when the daemon stops never leave; they stay `sending` and
    # the next start sends them, as after a crash: each message reaches the provider exactly once.
    mock = Mock.start()
    mock.control({"down": True})
    d = Daemon.start(rules(provider("primary", mock, HOLDING), ", circuit_failures = 100"))
    s = Sender(d)
    n = 6
    s.batch([{"to": "+8494%07d7" % i, "text": "t%d" % i} for i in range(n)])
    wait_for(lambda: mock.stats()["in_flight"] == 2 and count_status(d, "sending") == 4, 20 * SLOWDOWN,
             "2 requests out and 2 more marked `sending`")
    d.signal(signal.SIGTERM)
    d.wait_log("stopping")
    mock.control({"down": False})  # the 2 out are answered (503: queued for a retry), the daemon ends
    d.wait_exit(30 * SLOWDOWN)
    check(d.proc.returncode == 0, "exit %s" % d.proc.returncode)
    check(mock.stats()["received"] == 0, "received before the restart: %r" % mock.stats())
    d.restart()
    # (Counted once the requeue committed, a moment after the start.)
    wait_for(lambda: metric(d, "smsrules_resent_after_crash_total") >= 2, 10 * SLOWDOWN, "2 resends counted")
    check(metric(d, "smsrules_resent_after_crash_total") == 2, "resent after the stop: %r" %
          metric(d, "smsrules_resent_after_crash_total"))
    wait_for(lambda: metric(d, "smsrules_provider_sent_total", provider="primary") >= n, 30 * SLOWDOWN,
             "every message sent")
    counts = mock.stats()["by_recipient"]
    check(counts == {"+8494%07d7" % i: 1 for i in range(n)}, "receptions: %r" % counts)
    check(mock.stats()["max_in_flight"] == 2, "max in flight %d" % mock.stats()["max_in_flight"])
    d.stop()
    mock.stop()


@test(timeout=90)
def reload_removing_a_provider_still_sends_its_marked_requests():
    # A reload drops the provider while 2 of its requests are out and 2 more wait marked `sending`:
    # those 2 still go out with the rules they were built with (none stays `sending`); the messages
    # not marked yet go by the new rules' provider.
    primary = Mock.start()
    backup = Mock.start()
    primary.control({"down": True})
    d = Daemon.start(rules(provider("primary", primary, HOLDING), ", circuit_failures = 100"))
    s = Sender(d)
    ids = s.batch([{"to": "+8495%07d7" % i, "text": "r%d" % i} for i in range(6)])
    wait_for(lambda: primary.stats()["in_flight"] == 2 and count_status(d, "sending") == 4, 20 * SLOWDOWN,
             "2 requests out and 2 more marked `sending`")
    tmp = d.rules_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(rules(provider("backup", backup, PATIENT)))
    os.replace(tmp, d.rules_path)
    d.signal(signal.SIGHUP)
    d.wait_log("rules reloaded")
    primary.control({"down": False})  # the 2 out get 503; their route names a provider gone: failed
    wait_for(lambda: count_status(d, "sending") == 0 and count_status(d, "queued") == 0, 30 * SLOWDOWN,
             "nothing left sending or queued")
    check(primary.stats()["received"] == 2 and primary.stats()["max_in_flight"] == 2, "primary: %r" %
          {k: primary.stats()[k] for k in ("received", "max_in_flight")})
    by = {}
    for mid in ids:
        m = get(d, mid)
        by.setdefault((m["status"], m["provider"]), []).append(mid)
    check({k: len(v) for k, v in by.items()} == {("sent", "primary"): 2, ("failed", "primary"): 2,
                                                  ("sent", "backup"): 2}, "outcomes: %r" % by)
    d.stop()
    primary.stop()
    backup.stop()


@test(timeout=60)
def custom_adapter_declared_in_the_rules_file():
    mock = Mock.start()
    d = Daemon.start(rules(CUSTOM_ADAPTER % mock.url))
    s = Sender(d)
    mid = s.one("+84912345677")
    m = wait_status(d, mid, "sent")
    check(m["provider"] == "home" and m["provider_id"].startswith("m"), repr(m))
    check(mock.stats()["by_recipient"] == {"+84912345677": 1}, "mock: %r" % mock.stats()["by_recipient"])
    rc, out, err = run_cli(["check", d.rules_path])
    check(rc == 0 and "home (homemade)" in out, "check summary: %r %r" % (out, err))
    d.stop()
    mock.stop()


CUSTOM_ADAPTER = """
local cjson = require "cjson"
sms.adapter("homemade", {
  build_send = function(cfg, msgs)
    local m = msgs[1]
    return { method = "POST", url = cfg.url, headers = { ["Content-Type"] = "application/json" },
             body = cjson.encode({ to = m.to, message = "[homemade] " .. m.text, id = m.id }) }
  end,
  parse_send = function(cfg, msgs, resp)
    local ok, doc = pcall(cjson.decode, resp.body)
    if resp.status == 200 and ok and doc.message_id then return { { ok = true, provider_id = doc.message_id } } end
    return { { ok = false, retry = resp.status >= 500, scope = "message", error = "HTTP " .. resp.status } }
  end,
})
sms.provider("home", { adapter = "homemade", url = "%s" })
"""


@test(timeout=30)
def route_naming_an_undeclared_provider_is_refused():
    mock = Mock.start()
    d = Daemon.start(rules(provider("primary", mock)))
    status, _, _, doc = d.request("POST", "/v1/messages", headers=AUTH,
                                  body={"to": "+84912345677", "text": "x", "route": ["primary", "nope"]})
    check(status == 422 and doc["error"]["code"] == "unknown_provider" and "nope" in doc["error"]["message"],
          "single: %d %r" % (status, doc))
    status, _, _, doc = d.request("POST", "/v1/messages", headers=AUTH, body={"messages": [
        {"to": "+84912345677", "text": "x", "route": ["primary"]},
        {"to": "+84912345677", "text": "y", "route": ["nope"]}]})
    res = doc["result"]
    check(status == 202 and res[0]["code"] == "OK" and res[1]["reasons"][0]["key"] == "unknown_provider" and
          res[1]["reasons"][0]["ref"] == "messages[1].route", "batch: %d %r" % (status, res))
    d.stop()
    mock.stop()


if __name__ == "__main__":
    run()
