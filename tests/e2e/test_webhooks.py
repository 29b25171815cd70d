"""End-to-end tests of provider webhooks: delivery reports (matching, parking,
forward-only, duplicates, parts, DLR-driven fallback), inbound SMS (dedup,
STOP, handler errors) and webhook authentication (Twilio signatures, path
secrets, basic auth). The daemon sends to `smsrules mock-provider`; reports
and inbound posts come from the mock or from the test itself."""
import base64
import hashlib
import hmac
import json
import os
import random
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOWDOWN, Daemon, Mock, check, get_message, metric, run, test, wait_for, wait_message_status  # noqa: E402

KEY = "k"
AUTH = {"Authorization": "Bearer " + KEY}


def get(d, mid):
    return get_message(d, mid, AUTH)


def wait_status(d, mid, status, timeout=10):
    return wait_message_status(d, mid, status, AUTH, timeout)


def rules(body, extra=""):
    return 'sms.config{ api_keys = { "%s" }, retry_base_ms = 20, retry_cap_ms = 200 %s }\n%s\n' % (KEY, extra, body)


def mock_provider(name, mock, opts=""):
    return 'sms.provider("%s", { adapter = "mock", url = "%s" %s })\n' % (name, mock.url, opts)


def send(d, to, text="hello", **extra):
    body = {"to": to, "text": text}
    body.update(extra)
    status, _, raw, doc = d.request("POST", "/v1/messages", body, headers=AUTH)
    check(status == 202, "send answered %d %r" % (status, raw[:200]))
    return doc["id"]


def post_report(d, provider, doc, path=None):
    status, _, body, _ = d.request("POST", path or "/hooks/%s/status" % provider, json.dumps(doc).encode(),
                                   headers={"Content-Type": "application/json"})
    return status, body


def log_count(d, msg, **fields):
    n = 0
    for line in d.log_lines():
        if line.get("msg") == msg and all(line.get(k) == v for k, v in fields.items()):
            n += 1
    return n


def statuses(m):
    return [h["status"] for h in m["history"]]


# ---- delivery reports ----


@test(timeout=60)
def reports_posted_before_the_send_answer_are_all_matched():
    mock = Mock.start("--dlr-before-answer", "--dlr-delay-ms", "0")
    d = Daemon.start(rules(mock_provider("m", mock, ", concurrency = 8")))
    mock.control({"dlr_url": "http://127.0.0.1:%d/hooks/m/status" % d.port})
    msgs = [{"to": "+8491%07d7" % i, "text": "m%d" % i} for i in range(300)]
    status, _, raw, doc = d.request("POST", "/v1/messages", {"messages": msgs}, headers=AUTH)
    check(status == 202, "batch answered %d %r" % (status, raw[:200]))
    ids = [r["id"] for r in doc["result"]]
    wait_for(lambda: all(get(d, i)["status"] == "delivered" for i in ids[-20:]) and
             metric(d, "smsrules_dlr_reports_total", result="matched") + 0 >= 300, 30 * SLOWDOWN,
             "every message delivered")
    for i in ids:
        m = get(d, i)
        check(m["status"] == "delivered", "%s is %s" % (i, m["status"]))
        check(m["attempts"][-1]["report"] == "delivered", "attempt report: %r" % m["attempts"][-1])
    check(mock.stats()["dlr_sent"] >= 300, "mock posted %r reports" % mock.stats()["dlr_sent"])
    check(metric(d, "smsrules_dlr_reports_total", result="parked") > 0,
          "no report arrived before its send answer: the test proves nothing")
    check(metric(d, "smsrules_dlr_orphaned_total") == 0, "orphaned reports")
    check(metric(d, "smsrules_dlr_latency_seconds_count") >= 300, "latency histogram not fed")


@test(timeout=60)
def duplicate_and_backward_reports_change_nothing():
    mock = Mock.start()
    d = Daemon.start(rules(mock_provider("m", mock) + '''
sms.on_status(function(msg, status) sms.log.info("status seen", { id = msg.id, status = status }) end)
'''))
    mid = send(d, "+84912000017")
    pid = wait_status(d, mid, "sent")["provider_id"]
    report = {"message_id": pid, "status": "DELIVRD", "timestamp": "2026-11-23T10:00:00Z"}
    for _ in range(2):
        status, body = post_report(d, "m", report)
        check(status == 200, "report answered %d %r" % (status, body))
    m = get(d, mid)
    check(m["status"] == "delivered", "status %s" % m["status"])
    check(statuses(m).count("delivered") == 1, "history %r" % statuses(m))
    check(m["cost"] is None, "cost without a report saying it: %r" % m["cost"])
    status, _ = post_report(d, "m", {"message_id": pid, "status": "ENROUTE"})
    check(status == 200, "sent report answered %d" % status)
    status, _ = post_report(d, "m", {"message_id": pid, "status": "UNDELIV"})
    check(status == 200, "undelivered report answered %d" % status)
    m = get(d, mid)
    check(m["status"] == "delivered" and statuses(m).count("delivered") == 1, "after sent/undeliv: %r" % statuses(m))
    check(metric(d, "smsrules_dlr_reports_total", result="duplicate") >= 1, "duplicate not counted")
    wait_for(lambda: log_count(d, "status seen", id=mid, status="delivered") == 1, 5 * SLOWDOWN,
             "on_status for delivered")
    check(log_count(d, "status seen", id=mid, status="delivered") == 1, "on_status ran twice for delivered")
    # The provider id as providers disagree on it: upper case, leading zeros.
    mid2 = send(d, "+84912000027")
    pid2 = wait_status(d, mid2, "sent")["provider_id"]
    status, _ = post_report(d, "m", {"message_id": "00" + pid2.upper(), "status": "DELIVRD"})
    check(status == 200, "report answered %d" % status)
    check(get(d, mid2)["status"] == "delivered", "normalised id not matched")


@test(timeout=60)
def three_part_message_is_delivered_after_the_third_part():
    mock = Mock.start()
    d = Daemon.start(rules(mock_provider("m", mock)))
    mid = send(d, "+84912000037", "x" * 400)
    m = wait_status(d, mid, "sent")
    check(m["segments"] == 3, "segments %r" % m["segments"])
    pid = m["provider_id"]
    for part in (1, 2):
        status, _ = post_report(d, "m", {"message_id": pid, "status": "DELIVRD", "part": part, "parts": 3})
        check(status == 200, "part %d answered %d" % (part, status))
        m = get(d, mid)
        check(m["status"] == "sent", "after part %d: %s" % (part, m["status"]))
    post_report(d, "m", {"message_id": pid, "status": "DELIVRD", "part": 2, "parts": 3})  # a duplicate part
    check(get(d, mid)["status"] == "sent", "a duplicate part completed the message")
    status, _ = post_report(d, "m", {"message_id": pid, "status": "DELIVRD", "part": 3, "parts": 3})
    m = get(d, mid)
    check(m["status"] == "delivered", "after part 3: %s" % m["status"])
    check(m["part_reports"] == ["delivered"] * 3, "parts %r" % m["part_reports"])
    # One part undelivered: the message is undelivered once all have reported.
    mid = send(d, "+84912000047", "y" * 400)
    pid = wait_status(d, mid, "sent")["provider_id"]
    for part, st in ((1, "DELIVRD"), (2, "UNDELIV"), (3, "DELIVRD")):
        post_report(d, "m", {"message_id": pid, "status": st, "part": part, "parts": 3})
    check(get(d, mid)["status"] == "undelivered", "mixed parts: %s" % get(d, mid)["status"])


@test(timeout=60)
def the_mock_reports_each_part_and_the_message_is_delivered_after_all():
    """Multipart messages get one report per part from SMSCs; the mock provider does the same."""
    mock = Mock.start("--dlr-delay-ms", "0")
    d = Daemon.start(rules(mock_provider("m", mock)))
    mock.control({"dlr_url": "http://127.0.0.1:%d/hooks/m/status" % d.port})
    mid = send(d, "+84912000107", "x" * 400)
    m = wait_status(d, mid, "delivered")
    check(m["segments"] == 3 and m["part_reports"] == ["delivered"] * 3, "message %r" % m)
    # The mock counts a report once it has the daemon's answer, which comes after the commit.
    wait_for(lambda: mock.stats()["dlr_sent"] == 3, 5 * SLOWDOWN, "the mock to count 3 reports posted")
    # A part the daemon was slower than the mock's 5 s to answer is posted again: only that may count twice.
    dups = metric(d, "smsrules_dlr_reports_total", result="duplicate")
    check(dups <= mock.stats()["dlr_retried"], "%d part reports counted as duplicates" % dups)


@test(timeout=180)
def reports_before_answers_failures_and_crashes_leave_every_message_final():
    """300 messages (1-3 parts) to a mock that posts every part's report before answering the send, fails 10%
    of sends with 503 and reports 30% undelivered; the daemon is SIGKILLed three times while they go out.
    Every message ends delivered or undelivered, its sms.on_status for the final status commits once, no
    report is orphaned or counted twice unless the mock posted it again, and the mock accepted each message once (a resend after a crash carries the same client id)."""
    rnd = random.Random(7)
    # A report posted while the daemon is down is posted again for ~80 s: a report the mock gave up on
    # would leave its message sent for good (the resend after the restart is a duplicate to the mock,
    # which reports only once).
    mock = Mock.start("--fail-5xx", "10", "--dlr-undelivered", "30", "--seed", "5", "--dlr-before-answer",
                      "--dlr-delay-ms", "0", "--dlr-attempts", "20")
    d = Daemon.start(rules(mock_provider("m", mock, ", concurrency = 16") + '''
sms.on_status(function(msg, status)
  if status ~= "sent" then sms.kv.incr("final:" .. msg.id) end
end)
sms.on("finals", function(e)
  local out = {}
  for _, id in ipairs(e.ids) do out[id] = tonumber(sms.kv.get("final:" .. id)) or 0 end
  return out
end)
'''))
    hook = lambda: mock.control({"dlr_url": "http://127.0.0.1:%d/hooks/m/status" % d.port})
    hook()
    n = 300
    ids = []
    for i in range(n):
        ids.append(send(d, "+8491%07d7" % i, "x" * rnd.choice([10, 200, 400])))
        if i % 75 == 74 and i < n - 1:
            d.kill()
            d.restart()
            hook()

    def final():
        counts = {}
        for mid in ids:
            st = get(d, mid)["status"]
            counts[st] = counts.get(st, 0) + 1
        return counts if set(counts) <= {"delivered", "undelivered"} else None
    def final_or_lost():
        check(mock.stats()["dlr_failed"] == 0, "the mock gave up on %d reports" % mock.stats()["dlr_failed"])
        return final()
    counts = wait_for(final_or_lost, 60 * SLOWDOWN, "every message delivered or undelivered", interval=0.5)
    check(sum(counts.values()) == n and counts.get("undelivered", 0) > 0, "final statuses %r" % counts)
    for mid in ids[::25]:
        m = get(d, mid)
        check(m.get("part_reports") is None or len(m["part_reports"]) == m["segments"], "parts of %r" % m)
    check(metric(d, "smsrules_dlr_orphaned_total") == 0, "reports orphaned")
    # A report the daemon applied but could not answer (SIGKILLed, or slower than the mock's 5 s timeout)
    # is posted again: it may count as a duplicate, nothing else may.
    # The status handler's effects commit with the entry that says it is owed: once per final status,
    # crashes or not.
    def finals():
        status, _, _, doc = d.request("POST", "/v1/events/finals", {"ids": ids}, headers=AUTH)
        check(status == 200, "finals answered %d %r" % (status, doc))
        return doc["result"]
    wait_for(lambda: set(finals().values()) == {1}, 20 * SLOWDOWN, "one final status handler per message",
             interval=0.5)
    stats = mock.stats()
    dups = metric(d, "smsrules_dlr_reports_total", result="duplicate")
    check(dups <= stats["dlr_retried"], "%d reports counted twice, %d posted again" % (dups, stats["dlr_retried"]))
    check(stats["received"] == n and set(stats["by_recipient"].values()) == {1},
          "the mock accepted %d (of %d), some more than once" % (stats["received"], n))


@test(timeout=60)
def unknown_reports_are_parked_then_orphaned():
    mock = Mock.start()
    d = Daemon.start(rules(mock_provider("m", mock), ", dlr_orphan_after = 1"))
    status, _ = post_report(d, "m", {"message_id": "nobody-knows", "status": "DELIVRD"})
    check(status == 200, "report answered %d" % status)
    check(metric(d, "smsrules_dlr_reports_total", result="parked") == 1, "not parked")
    wait_for(lambda: metric(d, "smsrules_dlr_orphaned_total") == 1, 15 * SLOWDOWN, "the report counted orphaned")
    status, _ = post_report(d, "nope", {"message_id": "x", "status": "DELIVRD"})
    check(status == 404, "unknown provider answered %d" % status)
    status, body = d.request("POST", "/hooks/m/status", b"{not json", headers={"Content-Type": "application/json"})[:3:2]
    check(status == 400, "garbage answered %d" % status)
    # Bodies handed to Lua are bounded: C-level pattern matching must not see megabytes.
    big = json.dumps({"message_id": "x", "status": "DELIVRD", "pad": "y" * 70000}).encode()
    status, _, _, doc = d.request("POST", "/hooks/m/status", big, headers={"Content-Type": "application/json"})
    check(status == 413 and doc["error"]["code"] == "webhook_too_large", "oversized answered %d %r" % (status, doc))


@test(timeout=60)
def a_parked_report_survives_a_restart_and_is_claimed_by_the_send():
    mock = Mock.start()
    d = Daemon.start(rules(mock_provider("m", mock)))
    first = send(d, "+84912000087")
    pid = wait_status(d, first, "sent")["provider_id"]
    # The mock numbers its ids: the next message it accepts gets the next one.
    prefix, n = pid.rsplit("-", 1)
    next_pid = "%s-%d" % (prefix, int(n) + 1)
    status, _ = post_report(d, "m", {"message_id": next_pid, "status": "DELIVRD"})
    check(status == 200, "report answered %d" % status)
    check(metric(d, "smsrules_dlr_reports_total", result="parked") == 1, "not parked")
    d.kill()
    d.restart()
    mid = send(d, "+84912000097")
    m = wait_status(d, mid, "delivered")
    check(m["provider_id"] == next_pid, "provider id %r, expected %r" % (m["provider_id"], next_pid))
    check(metric(d, "smsrules_dlr_orphaned_total") == 0, "the report was counted orphaned")


# ---- fallback on delivery outcome ----

FALLBACK_RULES = '''
sms.route(function(msg)
  return { "primary", "backup", fallback_on = { "undelivered", "expired" }, dlr_timeout = %d }
end)
'''


@test(timeout=60)
def undelivered_on_the_primary_is_sent_by_the_backup():
    primary, backup = Mock.start(), Mock.start()
    d = Daemon.start(rules(mock_provider("primary", primary) + mock_provider("backup", backup) + FALLBACK_RULES % 60))
    mid = send(d, "+84912000067")
    pid = wait_status(d, mid, "sent")["provider_id"]
    status, _ = post_report(d, "primary", {"message_id": pid, "status": "UNDELIV"})
    check(status == 200, "report answered %d" % status)
    m = wait_for(lambda: (lambda m: m if m["status"] == "sent" and m["provider"] == "backup" else None)(get(d, mid)),
                 10 * SLOWDOWN, "the backup to send it")
    check([a["provider"] for a in m["attempts"]] == ["primary", "backup"], "attempts %r" % m["attempts"])
    check(m["attempts"][0]["report"] == "undelivered", "primary attempt %r" % m["attempts"][0])
    check(backup.stats()["received"] == 1, "backup stats %r" % backup.stats())
    check(metric(d, "smsrules_dlr_fallback_total", reason="report") == 1, "fallback not counted")


@test(timeout=60)
def no_report_in_time_goes_to_the_backup_and_a_late_delivered_is_recorded():
    primary, backup = Mock.start(), Mock.start()
    d = Daemon.start(rules(mock_provider("primary", primary) + mock_provider("backup", backup) + FALLBACK_RULES % 2))
    mid = send(d, "+84912000077")
    first_pid = wait_status(d, mid, "sent")["provider_id"]
    m = wait_for(lambda: (lambda m: m if m["provider"] == "backup" and m["status"] == "sent" else None)(get(d, mid)),
                 15 * SLOWDOWN, "the backup to send it after the report deadline")
    check(metric(d, "smsrules_dlr_fallback_total", reason="timeout") == 1, "timeout fallback not counted")
    check("no final report" in (m["attempts"][0]["error"] or ""), "primary attempt %r" % m["attempts"][0])
    status, _ = post_report(d, "primary", {"message_id": first_pid, "status": "DELIVRD"})
    check(status == 200, "late report answered %d" % status)
    m = get(d, mid)
    check(m["status"] == "delivered", "after the late delivered: %s" % m["status"])
    check(m["attempts"][0]["report"] == "delivered", "late report not on the first attempt: %r" % m["attempts"][0])
    check(len(m["attempts"]) == 2, "attempts %r" % m["attempts"])
    check(metric(d, "smsrules_dlr_late_delivered_total") == 1, "late delivered not counted")
    check(metric(d, "smsrules_double_delivery_risk_total") == 1, "double-delivery risk not counted")


# ---- polling ----


@test(timeout=90)
def smsbat_without_push_is_polled_to_delivered_on_the_backoff_schedule():
    # The mock answers "processing" until 10 s after the send, then "delivered": the first poll (5-6 s after
    # sent, the watch timer ticks each second) sees processing, the second (10 s later) delivered. The 4 s
    # margins keep a slow or loaded machine on schedule.
    mock = Mock.start("--dialect", "smsbat", "--dlr-delay-ms", "10000")
    d = Daemon.start(rules('sms.provider("bat", { adapter = "smsbat", url = "http://127.0.0.1:%d", api_key = "t",'
                           ' poll = true })' % mock.port))
    started = time.monotonic()
    mid = send(d, "+380501234567")
    m = wait_status(d, mid, "delivered", timeout=40)
    took = time.monotonic() - started
    # Poll 1 at 5 s, poll 2 at 15 s: never sooner (an upper bound would only measure the machine).
    check(took >= 14.5, "delivered %.1f s after the send: polled faster than the schedule" % took)
    check(metric(d, "smsrules_status_polls_total") == 2, "polls %r" % metric(d, "smsrules_status_polls_total"))
    check(m["attempts"][-1]["report"] == "delivered", "attempt %r" % m["attempts"][-1])
    check(m["cost"] == 0.05, "the cost the provider reported: %r" % m.get("cost"))


@test(timeout=90)
def polls_take_their_share_of_the_provider_rate():
    """Sends and status polls draw on one rate: at rate 4/s (burst 1), 12 messages are sent, and 12 more
    while the first ones' polls are due; together they stay within the rate."""
    mock = Mock.start("--dialect", "smsbat", "--dlr-delay-ms", "600000")
    d = Daemon.start(rules('sms.provider("bat", { adapter = "smsbat", url = "http://127.0.0.1:%d", api_key = "t",'
                           ' poll = true, rate = 4, burst = 1 })' % mock.port))
    for i in range(12):
        send(d, "+3805012345%02d" % i)
    wait_for(lambda: mock.stats()["polls"] >= 1, 20 * SLOWDOWN, "the first poll")
    for i in range(12, 24):
        send(d, "+3805012345%02d" % i)
    wait_for(lambda: (lambda s: s["received"] == 24 and s["polls"] >= 12)(mock.stats()), 30 * SLOWDOWN,
             "24 messages sent and the first 12 polled")
    rate = mock.stats()["rate"]
    # GCRA at 4/s with a burst of 1 lets at most 4 + 1 + 1 calls into any 1 s window; up to 3 more when the
    # mock (slow under ASan) stalls and stamps requests sent 250 ms apart together. Polls that skip the
    # rate all go in the same tick: 14 were seen.
    # Sends reach the mock after a store commit, polls straight from the watch tick: slow commits (ASan)
    # bunch arrivals a little. Without the shared rate 14 arrive, above either bound.
    check(rate["max_calls_per_window"] <= 9 + 2 * (SLOWDOWN > 1), "sends and polls together reached %d in a second (rate 4, burst 1)"
          % rate["max_calls_per_window"])
    check(metric(d, "smsrules_status_polls_total") >= 12, "polls %r" % metric(d, "smsrules_status_polls_total"))


# ---- inbound ----

INBOUND_RULES = '''
sms.provider("agile", { adapter = "agiletelecom", url = "http://127.0.0.1:9/services", api_key = "x" })
sms.on_inbound(function(msg)
  sms.log.info("inbound seen", { id = msg.id, from = msg.from, text = msg.text, provider = msg.provider })
  local word = msg.text:upper():match("^%s*(%a+)")
  if word == "STOP" then sms.optout(msg.from); return sms.reply(msg, "You are unsubscribed.") end
  if word == "BOOM" then error("handler exploded") end
end)
'''


def agile_inbound(d, sender, text, when="20261123101500"):
    form = urllib.parse.urlencode({"originator": sender, "destination": "393400000000", "date_time": when,
                                   "text": text}).encode()
    return d.request("POST", "/hooks/agile/inbound", form,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})


@test(timeout=60)
def agile_inbound_is_acknowledged_deduplicated_and_stop_opts_out():
    mock = Mock.start()
    d = Daemon.start(rules(INBOUND_RULES.replace("http://127.0.0.1:9/services", "http://127.0.0.1:%d" % mock.port)))
    status, hdrs, body, _ = agile_inbound(d, "393331234567", "hello there")
    check(status == 200 and body == b"+OK", "inbound answered %d %r" % (status, body))
    status, _, body, _ = agile_inbound(d, "393331234567", "hello there")
    check(status == 200 and body == b"+OK", "the repeat answered %d %r" % (status, body))
    wait_for(lambda: log_count(d, "inbound seen", text="hello there") >= 1, 5 * SLOWDOWN, "the handler")
    check(metric(d, "smsrules_inbound_duplicates_total") == 1, "duplicate not counted")
    check(log_count(d, "inbound seen", text="hello there") == 1, "the handler ran twice")
    check(log_count(d, "inbound seen", text="hello there", **{"from": "+393331234567"}) == 1,
          "sender not normalised to E.164")
    status, _, body, _ = agile_inbound(d, "393337654327", "stop")
    check(status == 200 and body == b"+OK", "STOP answered %d %r" % (status, body))
    wait_for(lambda: log_count(d, "inbound seen", text="stop") == 1, 5 * SLOWDOWN, "the STOP handler")
    # The handler's effects commit after the answer: wait for the opt-out to be visible.
    def rejected():
        mid = send(d, "+393337654327", "a promotion")
        return wait_for(lambda: (lambda m: m if m["status"] in ("rejected", "sent") else None)(get(d, mid)),
                        5 * SLOWDOWN, "the send to settle")["status"] == "rejected"
    wait_for(rejected, 10 * SLOWDOWN, "a send to the opted-out number to be rejected")
    # A handler that fails: the provider still gets +OK, the error is recorded.
    status, _, body, _ = agile_inbound(d, "393331111117", "boom")
    check(status == 200 and body == b"+OK", "failing handler answered %d %r" % (status, body))
    wait_for(lambda: metric(d, "smsrules_inbound_handler_errors_total") == 1, 5 * SLOWDOWN, "the error counted")
    boom = [l for l in d.log_lines() if l.get("msg") == "inbound seen" and l.get("text") == "boom"][0]["id"]

    def recorded():
        status, _, _, doc = d.request("GET", "/v1/inbound/" + boom, headers=AUTH)
        return doc if status == 200 and doc["state"] == "error" else None
    doc = wait_for(recorded, 5 * SLOWDOWN, "the handler's error on the stored inbound message")
    check("handler exploded" in doc["error"] and doc["from"] == "+393331111117" and doc["text"] == "boom",
          "stored inbound %r" % doc)


@test(timeout=60)
def quickstart_stop_through_the_mock_inbound_hook():
    """Issue 5's end-to-end STOP: the quickstart rules, an inbound STOP posted to the mock adapter's inbound
    webhook, the confirmation sent as a reply, and a later send to that number rejected."""
    mock = Mock.start()
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "quickstart",
                           "rules.lua")) as f:
        src = f.read().replace("http://127.0.0.1:9090/send", mock.url)
    d = Daemon.start(src, env={"SMSRULES_DEMO_KEY": KEY})
    inbound = {"message_id": "mo-1", "from": "+84912340007", "to": "+84900000000", "text": "Stop please",
               "timestamp": "2026-11-23T10:00:00Z"}
    status, _, body, _ = d.request("POST", "/hooks/mock/inbound", inbound)
    check(status == 200, "inbound answered %d %r" % (status, body))

    def reply():
        status, _, _, doc = d.request("GET", "/v1/messages?status=sent", headers=AUTH)
        for m in doc["messages"] if status == 200 else []:
            if m["to"] == "+84912340007" and m.get("reply_to"):
                return m
        return None
    m = wait_for(reply, 10 * SLOWDOWN, "the STOP confirmation to be sent")
    check(m["text"].startswith("You are unsubscribed"), "reply text %r" % m["text"])
    status, _, _, stored = d.request("GET", "/v1/inbound/" + m["reply_to"], headers=AUTH)
    check(status == 200 and stored["state"] == "handled" and stored["replies"] == [m["id"]] and
          stored["text"] == "Stop please" and stored["provider"] == "mock", "stored inbound %r" % stored)
    mid = send(d, "+84912340007", "a promotion")
    wait_status(d, mid, "rejected")
    # The same inbound again (a provider retry): no second confirmation.
    status, _, _, _ = d.request("POST", "/hooks/mock/inbound", inbound)
    check(status == 200, "repeat answered %d" % status)
    check(metric(d, "smsrules_inbound_duplicates_total") == 1, "repeat not dropped as a duplicate")


@test(timeout=60)
def the_same_inbound_posted_at_once_is_stored_and_answered_once():
    """A provider that posts one message several times at once (its retries racing the first post): every post
    is answered 200, one message is stored and handled, the others are counted duplicates, one reply is sent."""
    import threading
    mock = Mock.start()
    d = Daemon.start(rules(mock_provider("m", mock) +
                           'sms.on_inbound(function(msg) return sms.reply(msg, "got it") end)\n'))
    inbound = {"message_id": "mo-race", "from": "+84912340031", "to": "+84900000000", "text": "hello?"}
    statuses = []
    start = threading.Barrier(8)

    def post():
        start.wait()
        statuses.append(d.request("POST", "/hooks/m/inbound", inbound)[0])
    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(statuses == [200] * 8, "answers %r" % statuses)
    check(metric(d, "smsrules_inbound_total") == 1 and metric(d, "smsrules_inbound_duplicates_total") == 7,
          "stored %d, duplicates %d" % (metric(d, "smsrules_inbound_total"),
                                        metric(d, "smsrules_inbound_duplicates_total")))

    def replies():
        status, _, _, doc = d.request("GET", "/v1/messages?status=sent", headers=AUTH)
        got = [m for m in doc["messages"] if m["to"] == "+84912340031"] if status == 200 else []
        return got or None
    got = wait_for(replies, 10 * SLOWDOWN, "the reply to be sent")
    status, _, _, stored = d.request("GET", "/v1/inbound/" + got[0]["reply_to"], headers=AUTH)
    check(status == 200 and stored["state"] == "handled" and stored["replies"] == [got[0]["id"]],
          "stored inbound %r" % stored)
    check(len(got) == 1, "replies sent %r" % got)
    for st in ("queued", "sending"):
        status, _, _, doc = d.request("GET", "/v1/messages?status=" + st, headers=AUTH)
        check(status == 200 and not [m for m in doc["messages"] if m["to"] == "+84912340031"],
              "%s messages %r" % (st, doc))


@test(timeout=60)
def an_inbound_without_a_handler_is_stored_unhandled():
    mock = Mock.start()
    d = Daemon.start(rules(mock_provider("m", mock)))
    inbound = {"message_id": "mo-u1", "from": "+84912340027", "to": "+84900000000", "text": "anyone there?"}
    status, _, body, _ = d.request("POST", "/hooks/m/inbound", inbound)
    check(status == 200, "inbound answered %d %r" % (status, body))

    def logged():
        for line in d.log_lines():
            if line.get("msg") == "inbound: stored, no sms.on_inbound handler":
                return line
        return None
    line = wait_for(logged, 5 * SLOWDOWN, "a log line naming the stored inbound")
    check(line.get("provider") == "m", "log line %r" % line)
    status, _, _, stored = d.request("GET", "/v1/inbound/" + line["id"], headers=AUTH)
    check(status == 200 and stored["state"] == "unhandled" and stored["text"] == "anyone there?" and
          stored["from"] == "+84912340027" and stored["replies"] == [], "stored inbound %r" % stored)
    check(metric(d, "smsrules_inbound_total") == 1, "not counted stored")


@test(timeout=60)
def an_inbound_whose_handler_did_not_finish_runs_again_after_a_crash():
    from test_rules_async import Peer
    peer = Peer()
    try:
        mock = Mock.start()
        d = Daemon.start(rules(mock_provider("m", mock) + '''
sms.on_inbound(function(msg)
  local status = sms.http.request{ url = "%s", timeout_ms = 60000 }
  return sms.reply(msg, "looked it up: " .. tostring(status))
end)
''' % peer.url("/hang?s=%d" % (3 * SLOWDOWN))))
        inbound = {"message_id": "mo-crash", "from": "+84912340017", "to": "+84900000000", "text": "hello"}
        status, _, _, _ = d.request("POST", "/hooks/m/inbound", inbound)
        check(status == 200, "inbound answered %d" % status)
        wait_for(lambda: peer.count("/hang") == 1, 5 * SLOWDOWN, "the handler to be waiting on its request")
        d.kill()
        d.restart()
        wait_for(lambda: peer.count("/hang") == 2, 10 * SLOWDOWN, "the handler to run again after the restart")

        def replies():
            status, _, _, doc = d.request("GET", "/v1/messages?status=sent", headers=AUTH)
            return [m for m in doc["messages"] if m["to"] == "+84912340017"] if status == 200 else []
        wait_for(lambda: replies(), 10 * SLOWDOWN, "the reply")
        got = replies()
        check(len(got) == 1 and got[0]["text"] == "looked it up: 200" and got[0]["reply_to"], "replies %r" % got)
    finally:
        peer.close()


@test(timeout=60)
def a_status_handler_that_did_not_finish_runs_again_after_a_crash():
    """sms.on_status is owed in the same commit as the status change: a handler still waiting on
    sms.http.request when the daemon is SIGKILLed runs again after the restart, with the status it is
    owed for, and its effects commit once."""
    from test_rules_async import Peer
    peer = Peer()
    try:
        mock = Mock.start()
        d = Daemon.start(rules(mock_provider("m", mock) + '''
sms.on_status(function(msg, status)
  local code = sms.http.request{ url = "%s", timeout_ms = 60000 }
  sms.kv.incr("seen:" .. status .. ":" .. tostring(code))
end)
sms.on("peek", function() return { n = sms.kv.get("seen:sent:200") } end)
''' % peer.url("/hang?s=%d" % (3 * SLOWDOWN))))
        mid = send(d, "+84912340027", "hello")
        wait_for(lambda: peer.count("/hang") == 1, 10 * SLOWDOWN, "the status handler to be waiting on its request")
        check(get(d, mid)["status"] == "sent", "status %r" % get(d, mid)["status"])
        d.kill()
        d.restart()
        check(metric(d, "smsrules_status_handlers_rerun_total") == 1, "handlers run again at start")
        wait_for(lambda: peer.count("/hang") == 2, 10 * SLOWDOWN, "the status handler to run again after the restart")

        def seen():
            status, _, _, doc = d.request("POST", "/v1/events/peek", {}, headers=AUTH)
            return doc["result"].get("n") if status == 200 and doc.get("result") else None
        wait_for(lambda: seen() is not None, 10 * SLOWDOWN, "the handler's effect")
        check(str(seen()) == "1", "the handler committed %r times" % seen())
        # Finished handlers are not owed any more: another restart runs nothing again.
        d.stop()
        d.restart()
        check(metric(d, "smsrules_status_handlers_rerun_total") == 0, "handlers run again after a clean stop")
        check(str(seen()) == "1", "seen %r after the second restart" % seen())
    finally:
        peer.close()


# ---- authentication ----

TWILIO_TOKEN = "12345"


def twilio_signature(url, params):
    data = url + "".join(k + v for k, v in sorted(params.items()))
    return base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()


@test(timeout=60)
def twilio_signatures_are_checked():
    public = "https://sms.example.com"
    d = Daemon.start(rules('''
sms.provider("tw", { adapter = "twilio", account_sid = "ACxxx", auth_token = "%s", url = "http://127.0.0.1:9" })
sms.on_inbound(function(msg) sms.log.info("inbound seen", { text = msg.text }) end)
''' % TWILIO_TOKEN, ', public_url = "%s"' % public))
    params = {"MessageSid": "SM1", "From": "+14155550100", "To": "+14155550199", "Body": "hi there"}
    url = public + "/hooks/tw/inbound"
    form = urllib.parse.urlencode(params).encode()
    good = twilio_signature(url, params)
    ct = {"Content-Type": "application/x-www-form-urlencoded"}
    # Missing, altered body, altered URL: 401 and nothing stored.
    cases = [
        ("missing", "/hooks/tw/inbound", form, dict(ct)),
        ("altered body", "/hooks/tw/inbound", form.replace(b"hi+there", b"hi+THERE"),
         dict(ct, **{"X-Twilio-Signature": good})),
        ("altered url", "/hooks/tw/inbound?x=1", form, dict(ct, **{"X-Twilio-Signature": good})),
    ]
    for what, path, body, headers in cases:
        status, _, raw, doc = d.request("POST", path, body, headers=headers)
        check(status == 401, "%s answered %d %r" % (what, status, raw[:200]))
        check(doc["error"]["code"] == "bad_signature", "%s: %r" % (what, doc))
    check(metric(d, "smsrules_inbound_total") == 0, "a refused webhook was stored")
    status, hdrs, raw, _ = d.request("POST", "/hooks/tw/inbound", form, headers=dict(ct, **{"X-Twilio-Signature": good}))
    check(status == 200, "valid signature answered %d %r" % (status, raw[:200]))
    check(hdrs.get("content-type", "").startswith("text/xml") and b"<Response" in raw, "TwiML answer %r" % raw)
    wait_for(lambda: log_count(d, "inbound seen", text="hi there") == 1, 5 * SLOWDOWN, "the handler")
    check(metric(d, "smsrules_webhooks_total", provider="tw", kind="inbound", result="bad_signature") == 3,
          "refusals not counted")


@test(timeout=60)
def path_secret_and_basic_auth_protect_unsigned_webhooks():
    mock = Mock.start()
    d = Daemon.start(rules(
        mock_provider("s", mock, ', webhook_path_secret = "s3cr3t-path"') +
        mock_provider("b", mock, ', webhook_basic_auth = "carrier:pa55word"')))
    rep = {"message_id": "zz", "status": "DELIVRD"}
    check(post_report(d, "s", rep)[0] == 404, "no secret: not 404")
    check(post_report(d, "s", rep, "/hooks/s/wrong-secret/status")[0] == 404, "wrong secret: not 404")
    check(post_report(d, "s", rep, "/hooks/s/s3cr3t-path/status")[0] == 200, "right secret refused")
    check(post_report(d, "b", rep, "/hooks/b/whatever/status")[0] == 404, "a secret where none is set: not 404")
    status, hdrs, _, _ = d.request("POST", "/hooks/b/status", json.dumps(rep).encode(),
                                   headers={"Content-Type": "application/json"})
    check(status == 401 and hdrs.get("www-authenticate", "").startswith("Basic"), "no auth answered %d" % status)
    bad = "Basic " + base64.b64encode(b"carrier:wrong").decode()
    status = d.request("POST", "/hooks/b/status", json.dumps(rep).encode(),
                       headers={"Content-Type": "application/json", "Authorization": bad})[0]
    check(status == 401, "wrong password answered %d" % status)
    good = "Basic " + base64.b64encode(b"carrier:pa55word").decode()
    status = d.request("POST", "/hooks/b/status", json.dumps(rep).encode(),
                       headers={"Content-Type": "application/json", "Authorization": good})[0]
    check(status == 200, "right password answered %d" % status)


if __name__ == "__main__":
    run()
