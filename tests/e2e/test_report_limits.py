"""End-to-end tests of the limits on what delivery reports and texts can do:
parked reports for unknown ids stay within dlr_park_max / dlr_park_max_bytes
(oldest evicted, counted) and an early report still finds its message;
reports with impossible part numbers are refused (400) and change nothing;
text holding U+0000 is refused everywhere it enters (never cut short), while
inbound text is carried whole."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOWDOWN, Daemon, Mock, check, get_message, metric, run, test, wait_for, wait_message_status  # noqa: E402

KEY = "k"
AUTH = {"Authorization": "Bearer " + KEY}


def rules(mock, extra="", body=""):
    return ('sms.config{ api_keys = { "%s" }, retry_base_ms = 20, retry_cap_ms = 200 %s }\n'
            'sms.provider("m", { adapter = "mock", url = "%s" })\n%s\n' % (KEY, extra, mock.url, body))


def send(d, to, text="hello"):
    status, _, raw, doc = d.request("POST", "/v1/messages", {"to": to, "text": text}, headers=AUTH)
    check(status == 202, "send answered %d %r" % (status, raw[:200]))
    return doc["id"]


def post_reports(d, doc):
    status, _, body, parsed = d.request("POST", "/hooks/m/status", json.dumps(doc).encode(),
                                        headers={"Content-Type": "application/json"})
    return status, parsed if parsed is not None else body


def parked_in_store_after_restart(d):
    """Restarts the daemon and returns the count of parked records it found in the store on start
    (its "parked delivery reports" log line; 0 when there is none)."""
    d.stop()
    d.restart()
    for line in d.log_lines():
        if line.get("msg") == "parked delivery reports":
            return int(line["count"])
    return 0


def flood(d, first, n, per_post=400):
    """Posts n reports for ids nobody knows, per_post to a webhook call."""
    i = first
    while i < first + n:
        batch = [{"message_id": "junk-%08d" % k, "status": "DELIVRD"} for k in range(i, min(i + per_post, first + n))]
        status, body = post_reports(d, batch)
        check(status == 200, "flood post answered %d %r" % (status, body))
        i += len(batch)


@test(timeout=120)
def a_flood_of_unknown_reports_stays_within_the_cap_and_an_early_report_still_matches():
    cap = 300
    mock = Mock.start()
    d = Daemon.start(rules(mock, ", dlr_park_max = %d" % cap))
    first = send(d, "+84912000011")
    pid = wait_message_status(d, first, "sent", AUTH)["provider_id"]

    flood(d, 0, 4000)
    parked = metric(d, "smsrules_dlr_reports_total", result="parked")
    check(parked == 4000, "parked %r of 4000" % parked)
    check(metric(d, "smsrules_dlr_parked") <= cap, "parked now %r, cap %d" % (metric(d, "smsrules_dlr_parked"), cap))
    check(metric(d, "smsrules_dlr_parked_evicted_total") == 4000 - metric(d, "smsrules_dlr_parked"),
          "evicted %r, parked now %r" % (metric(d, "smsrules_dlr_parked_evicted_total"),
                                          metric(d, "smsrules_dlr_parked")))
    used_after_first = metric(d, "smsrules_store_bytes_used")

    # Four times as many again: the store does not grow with them.
    flood(d, 4000, 16000)
    check(metric(d, "smsrules_dlr_parked") <= cap, "parked now %r" % metric(d, "smsrules_dlr_parked"))
    check(metric(d, "smsrules_dlr_parked_evicted_total") >= 20000 - cap, "evictions not counted")
    used_after_second = metric(d, "smsrules_store_bytes_used")
    check(used_after_second <= used_after_first * 1.5 + 256 * 1024,
          "the store grew from %d to %d bytes" % (used_after_first, used_after_second))

    # A report that comes before its send answer is parked (newest: not evicted) and applied on the send.
    prefix, n = pid.rsplit("-", 1)
    next_pid = "%s-%d" % (prefix, int(n) + 1)
    status, body = post_reports(d, {"message_id": next_pid, "status": "DELIVRD"})
    check(status == 200, "early report answered %d %r" % (status, body))
    mid = send(d, "+84912000021")
    m = wait_message_status(d, mid, "delivered", AUTH)
    check(m["provider_id"] == next_pid, "provider id %r, expected %r" % (m["provider_id"], next_pid))

    # What the store holds, counted by the daemon as it starts: within the cap too.
    in_store = parked_in_store_after_restart(d)
    check(0 < in_store <= cap, "%d parked records in the store, cap %d" % (in_store, cap))
    check(metric(d, "smsrules_dlr_parked") == in_store, "gauge %r after the restart" % metric(d, "smsrules_dlr_parked"))


@test(timeout=60)
def the_byte_cap_evicts_too_and_expiry_drops_every_due_report():
    mock = Mock.start()
    d = Daemon.start(rules(mock, ", dlr_park_max_bytes = 20000, dlr_orphan_after = 3"))
    flood(d, 0, 3000)
    check(metric(d, "smsrules_dlr_parked_bytes") <= 20000, "bytes %r" % metric(d, "smsrules_dlr_parked_bytes"))
    check(metric(d, "smsrules_dlr_parked") < 3000, "parked now %r" % metric(d, "smsrules_dlr_parked"))
    check(metric(d, "smsrules_dlr_parked_evicted_total") > 0, "no eviction counted")

    # Expiry takes every due report (a pass a second), however many arrived; (on a slow machine it may
    # have begun during the flood). Every report parked is then either evicted or orphaned, once.
    def all_accounted():
        m = d.metrics()
        dropped = m.get("smsrules_dlr_parked_evicted_total", 0) + m.get("smsrules_dlr_orphaned_total", 0)
        return m.get("smsrules_dlr_parked", 0) == 0 and dropped == 3000
    wait_for(all_accounted, 10 * SLOWDOWN, "the parked reports to expire")
    check(metric(d, "smsrules_dlr_orphaned_total") > 0, "none orphaned")
    check(parked_in_store_after_restart(d) == 0, "records left in the store")


@test(timeout=60)
def impossible_part_numbers_are_refused_and_change_nothing():
    mock = Mock.start()
    d = Daemon.start(rules(mock))
    mid = send(d, "+84912000031", "x" * 400)
    m = wait_message_status(d, mid, "sent", AUTH)
    check(m["segments"] == 3, "segments %r" % m["segments"])
    pid = m["provider_id"]
    bad = [{"part": -1, "parts": 3}, {"part": 0, "parts": 3}, {"part": 7, "parts": 3}, {"part": "abc", "parts": 3},
           {"part": 1.5, "parts": 3}, {"part": 1, "parts": 0}, {"part": 1, "parts": 100000},
           {"part": 1, "parts": "many"}, {"part": 7}, {"part": -1}]
    for i, fields in enumerate(bad):
        report = {"message_id": pid, "status": "DELIVRD"}
        report.update(fields)
        status, doc = post_reports(d, report)
        check(status == 400 and isinstance(doc, dict) and doc["error"]["code"] == "invalid_report",
              "%r answered %d %r" % (fields, status, doc))
        m = get_message(d, mid, AUTH)
        check(m["status"] == "sent" and m.get("part_reports") is None and m["attempts"][-1].get("report") is None,
              "%r changed the message: %r" % (fields, m))
    check(metric(d, "smsrules_dlr_reports_total", result="invalid") == len(bad),
          "invalid %r" % metric(d, "smsrules_dlr_reports_total", result="invalid"))
    check(metric(d, "smsrules_webhooks_total", provider="m", kind="status", result="invalid_report") == len(bad),
          "webhooks counted %r" % metric(d, "smsrules_webhooks_total", provider="m", kind="status",
                                         result="invalid_report"))
    # A batch with one impossible report is refused whole: the good one is not applied either.
    status, doc = post_reports(d, [{"message_id": pid, "status": "DELIVRD", "part": 1, "parts": 3},
                                   {"message_id": pid, "status": "DELIVRD", "part": 0, "parts": 3}])
    check(status == 400, "mixed batch answered %d %r" % (status, doc))
    check(get_message(d, mid, AUTH).get("part_reports") is None, "the batch's good report was applied")
    # Nothing is parked for an unknown id either.
    status, doc = post_reports(d, {"message_id": "nobody", "status": "DELIVRD", "part": 4, "parts": 2})
    check(status == 400, "unknown id with part 4 of 2 answered %d" % status)
    check(metric(d, "smsrules_dlr_reports_total", result="parked") == 0, "an impossible report was parked")
    # Digits as text are numbers; the parts then combine as usual.
    for part in ("1", "2", 3):
        status, doc = post_reports(d, {"message_id": pid, "status": "DELIVRD", "part": part, "parts": "3"})
        check(status == 200, "part %r answered %d %r" % (part, status, doc))
    m = get_message(d, mid, AUTH)
    check(m["status"] == "delivered" and m["part_reports"] == ["delivered"] * 3, "after the parts: %r" % m)


NUL_RULES = '''
sms.template("hello", "Hello {{name}}")
sms.on("nul", function(ev)
  local id, err = sms.send{ to = "+84912000041", text = "a\\0bcdef" }
  local rid, rerr = sms.send{ to = "+84912000041", template = "hello", vars = { name = "x\\0y" } }
  return { id = id, err = err, rid = rid, rerr = rerr }
end)
sms.on_inbound(function(msg)
  local _, echo_err = sms.reply(msg, msg.text)
  local _, named_err = sms.reply(msg, "hello\\0x")
  sms.log.info("inbound text", { id = msg.id, len = #msg.text, nul = msg.text:find("\\0", 1, true) ~= nil,
                                 echo_err = echo_err, named_err = named_err })
end)
'''


@test(timeout=60)
def text_with_nul_is_refused_wherever_it_enters():
    mock = Mock.start()
    d = Daemon.start(rules(mock, body=NUL_RULES))
    status, _, _, doc = d.request("POST", "/v1/messages", {"to": "+84912000041", "text": "a\u0000bcdef"},
                                  headers=AUTH)
    check(status == 400 and doc["error"]["code"] == "invalid_text", "single answered %d %r" % (status, doc))
    status, _, _, doc = d.request("POST", "/v1/messages", {"to": "+84912000041", "template": "hello",
                                                           "vars": {"name": "x\u0000y"}}, headers=AUTH)
    check(status == 400 and doc["error"]["code"] == "invalid_text", "template answered %d %r" % (status, doc))
    msgs = [{"to": "+84912000041", "text": "fine"}, {"to": "+84912000041", "text": "a\u0000b"}]
    status, _, _, doc = d.request("POST", "/v1/messages", {"messages": msgs}, headers=AUTH)
    check(status == 202, "batch answered %d %r" % (status, doc))
    res = doc["result"]
    check(res[0]["code"] == "OK", repr(res))
    check(res[1]["code"] == "REJECTED" and res[1]["reasons"][0]["key"] == "invalid_text" and
          res[1]["reasons"][0]["ref"] == "messages[1].text", repr(res[1]))
    m = wait_message_status(d, res[0]["id"], "sent", AUTH)
    check(m["text"] == "fine", repr(m))
    check(mock.stats()["received"] == 1, "the mock got %r messages" % mock.stats()["received"])

    # sms.send from rules: nil and the reason (plain text and a template's vars).
    status, _, _, doc = d.request("POST", "/v1/events/nul", {}, headers=AUTH)
    check(status == 200, "event answered %d %r" % (status, doc))
    out = doc["result"]
    check(out.get("id") is None and out["err"].startswith("invalid_text:"), "sms.send gave %r" % out)
    check(out.get("rid") is None and out["rerr"].startswith("invalid_text:"), "templated sms.send gave %r" % out)

    # Inbound text is carried whole, NUL and all, to the handler and the stored record.
    status, _, _, _ = d.request("POST", "/hooks/m/inbound", json.dumps(
        {"message_id": "in-1", "from": "+84912000051", "to": "+84900000000", "text": "a\u0000bc"}).encode(),
        headers={"Content-Type": "application/json"})
    check(status == 200, "inbound answered %d" % status)
    line = d.wait_log("inbound text", timeout=5 * SLOWDOWN)
    check(line["len"] == 4 and line["nul"] is True, "the handler saw %r" % line)
    # Replying with it is refused like any text with NUL; "hello\0x" is no template name either.
    check(line["echo_err"].startswith("invalid_text:") and line["named_err"].startswith("invalid_text:"),
          "sms.reply gave %r" % line)
    status, _, _, doc = d.request("GET", "/v1/inbound/" + line["id"], headers=AUTH)
    check(status == 200 and doc["text"] == "a\u0000bc", "stored inbound %d %r" % (status, doc))


if __name__ == "__main__":
    run()
