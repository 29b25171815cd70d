"""Webhooks cost time linear in what an outsider sends: the worst inputs we
know for every adapter's status and inbound hook, at the size limit
(max_event_bytes, 64 KiB; headers up to 16 KiB), must be answered about as
fast as a normal webhook, and /healthz must keep answering while they are
parsed (one event loop serves both).

Worst inputs: long runs of spaces or digits in the fields the adapters trim
or read as times and numbers (a backtracking pattern such as
"^%s*(.-)%s*$" took ~18 s on 64 KiB), huge signature headers, and as many
parameters as a request may carry (signature checks sort them all)."""
import base64
import hashlib
import hmac
import json
import os
import socket
import statistics
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOWDOWN, Daemon, check, run, test  # noqa: E402

LIMIT = 64 * 1024  # the default max_event_bytes
PUBLIC = "https://sms.example.com"
TWILIO_TOKEN = "tw-token"
RULES = '''
sms.config{ api_keys = { "k" }, public_url = "%s" }
sms.provider("gen", { adapter = "generic", url = "http://127.0.0.1:9/send", webhook_secret = "gen-secret" })
sms.provider("gen0", { adapter = "generic", url = "http://127.0.0.1:9/send" })
sms.provider("mock", { adapter = "mock", url = "http://127.0.0.1:9/send" })
sms.provider("agile", { adapter = "agiletelecom", api_key = "x" })
sms.provider("smsbat", { adapter = "smsbat", api_key = "x" })
sms.provider("devino", { adapter = "devino", api_key = "x" })
sms.provider("tw", { adapter = "twilio", account_sid = "AC1", auth_token = "%s" })
sms.provider("vo", { adapter = "vonage", api_key = "k", api_secret = "s", signature_secret = "vo-secret" })
sms.provider("vo0", { adapter = "vonage", api_key = "k", api_secret = "s" })
''' % (PUBLIC, TWILIO_TOKEN)

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def fill(prefix, filler, suffix, size=LIMIT):
    """prefix + filler repeated + suffix, size bytes in all."""
    prefix, suffix = prefix.encode(), suffix.encode()
    n = size - len(prefix) - len(suffix)
    return prefix + (filler.encode() * n)[:n] + suffix


def json_array(item, size=LIMIT):
    """A JSON array of as many copies of item as fit in size bytes."""
    one = json.dumps(item)
    n = (size - 2) // (len(one) + 1)
    return ("[" + ",".join([one] * n) + "]").encode()


def twilio_signed(path, params):
    """A Twilio-signed form post: (body, headers)."""
    data = PUBLIC + path + "".join(k + v for k, v in sorted(params.items()))
    sig = base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()
    return urllib.parse.urlencode(params).encode(), dict(FORM, **{"X-Twilio-Signature": sig})


def long_prefix_form(count, extra=""):
    """count parameters whose names share a long prefix, filling the limit:
    what costs most to sort for a signature check."""
    per = (LIMIT - len(extra) - 64) // count
    names = ["k" * (per - 8) + "%05d=" % ((i * 7919) % count) for i in range(count)]
    return ("&".join(names) + extra).encode()


def normal_cases():
    """One documented webhook per (provider, kind): (name, path, body, headers)."""
    tw_status = twilio_signed("/hooks/tw/status", {"MessageSid": "SM1", "MessageStatus": "delivered"})
    tw_inbound = twilio_signed("/hooks/tw/inbound", {"MessageSid": "SM2", "From": "+14155550100",
                                                     "To": "+14155550199", "Body": "hi"})
    return [
        ("generic status", "/hooks/gen0/status",
         json.dumps({"message_id": "n1", "status": "DELIVRD", "timestamp": "2026-11-23T10:00:00Z"}).encode(), JSON),
        ("generic inbound", "/hooks/gen0/inbound",
         json.dumps({"message_id": "n2", "from": "+84912345678", "to": "+84900000000", "text": "hi"}).encode(), JSON),
        ("agile status", "/hooks/agile/status",
         json.dumps({"eventType": "DELIVERY", "messageId": "n3", "statusCode": 3,
                     "timestamp": "2024-01-15T10:30:00Z"}).encode(), JSON),
        ("agile inbound", "/hooks/agile/inbound",
         b"originator=%2B393351234567&destination=%2B393400000000&date_time=20150525154559&text=hi", FORM),
        ("smsbat status", "/hooks/smsbat/status",
         json.dumps({"messageId": "n4", "deliverystatus": "delivered", "timestamp": "2024-01-15 10:30:00"}).encode(),
         JSON),
        ("devino status", "/hooks/devino/status",
         json.dumps([{"messageId": "n5", "status": "DELIVERED", "ts": 1587721283000}]).encode(), JSON),
        ("devino inbound", "/hooks/devino/inbound",
         json.dumps({"incomingMessageId": "n6", "from": "79101111111", "to": "1234", "text": "hi",
                     "ts": 1587721283000}).encode(), JSON),
        ("twilio status", "/hooks/tw/status") + tw_status,
        ("twilio inbound", "/hooks/tw/inbound") + tw_inbound,
        ("vonage status", "/hooks/vo0/status",
         b"messageId=n7&status=delivered&msisdn=447700900000&to=Brand&message-timestamp=2020-01-01+12%3A00%3A00", FORM),
        ("vonage inbound", "/hooks/vo0/inbound",
         b"messageId=n8&msisdn=447700900000&to=447700900001&text=hi&message-timestamp=2020-01-01+12%3A00%3A00", FORM),
    ]


def worst_cases():
    """(name, path, body, headers, expected status) at the limits."""
    ws = " "
    ts = str(int(time.time()))
    tw_long_error = twilio_signed("/hooks/tw/status", {
        "MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "3" + " " * 30000 + "x",
        "ErrorMessage": "a" + " " * 10000 + "b"})
    cases = [
        # Spaces, then not a time: "^%s*(.-)%s*$" was quadratic in the run.
        ("generic status: spaces in timestamp", "/hooks/gen0/status",
         fill('{"message_id":"w1","status":"DELIVRD","timestamp":"2024', ws, 'x"}'), JSON, 200),
        ("generic status: digits in timestamp", "/hooks/gen0/status",
         fill('{"message_id":"w1","status":"DELIVRD","timestamp":"', "1", 'x"}'), JSON, 200),
        ("generic status: zeros in err", "/hooks/gen0/status",
         fill('{"message_id":"w1","status":"UNDELIV","err":" ', "0", ' x"}'), JSON, 200),
        ("generic status: many reports", "/hooks/gen0/status",
         json_array({"id": "w2", "stat": "DELIVRD", "timestamp": " 1 "}), JSON, 200),
        ("generic status: leading spaces", "/hooks/gen0/status",
         fill("", ws, '{"message_id":"w1","status":"DELIVRD"}'), {}, 200),
        ("generic status: too many form fields", "/hooks/gen0/status", fill("", "a=1&", "b=2"), FORM, 400),
        ("generic status: many fields, no form type", "/hooks/gen0/status", fill("", "a=1&", "b=2"), {}, 400),
        ("generic status: too many query fields", "/hooks/gen0/status?" + "a=1&" * 300,
         b'{"message_id":"w1","status":"DELIVRD"}', JSON, 400),
        ("generic inbound: spaces in timestamp", "/hooks/gen0/inbound",
         fill('{"from":"+84912345678","text":"hi","timestamp":"1', ws, 'x"}'), JSON, 200),
        ("mock status: spaces in timestamp", "/hooks/mock/status",
         fill('{"message_id":"w1","status":"DELIVRD","timestamp":"', ws, '1"}'), JSON, 200),
        # Signatures: refused by their length, whatever it is.
        ("generic status: huge X-Signature", "/hooks/gen/status", b'{"message_id":"w1","status":"DELIVRD"}',
         dict(JSON, **{"X-Signature": "a" + " " * 15000 + "b"}), 401),
        ("generic status: wrong signature, full body", "/hooks/gen/status",
         fill('{"message_id":"w1","status":"DELIVRD","timestamp":"2024', ws, 'x"}'),
         dict(JSON, **{"X-Signature": "0" * 64}), 401),
        ("agile status: spaces in timestamp", "/hooks/agile/status",
         fill('{"messageId":"w3","statusCode":3,"timestamp":"2024', ws, 'x"}'), JSON, 200),
        ("agile inbound: spaces in date_time", "/hooks/agile/inbound",
         fill("originator=%2B393351234567&text=hi&date_time=2015", "+", "x"), FORM, 200),
        ("agile inbound: spaces in date_time, no form type", "/hooks/agile/inbound",
         fill("originator=%2B393351234567&text=hi&date_time=2015", "+", "x"), {}, 200),
        ("smsbat status: spaces in timestamp", "/hooks/smsbat/status",
         fill('{"messageId":"w4","deliverystatus":"delivered","timestamp":"2024', ws, 'x"}'), JSON, 200),
        ("devino status: digits in ts", "/hooks/devino/status",
         fill('[{"messageId":"w5","status":"DELIVERED","ts":"', "1", 'x"}]'), JSON, 200),
        ("devino inbound: spaces in from", "/hooks/devino/inbound",
         fill('{"from":"7', ws, '1","text":"hi"}'), JSON, 200),
        ("twilio status: huge X-Twilio-Signature", "/hooks/tw/status", b"MessageSid=SM1&MessageStatus=sent",
         dict(FORM, **{"X-Twilio-Signature": "A" * 15000}), 401),
        ("twilio status: 256 long parameters", "/hooks/tw/status", long_prefix_form(250),
         dict(FORM, **{"X-Twilio-Signature": "A" * 28}), 401),
        ("twilio inbound: 256 long parameters, no form type", "/hooks/tw/inbound", long_prefix_form(250),
         {"X-Twilio-Signature": "A" * 28}, 401),
        ("twilio status: too many parameters", "/hooks/tw/status", fill("", "a=1&", "b=2"),
         dict(FORM, **{"X-Twilio-Signature": "A" * 28}), 400),
        ("twilio status: signed, long error", "/hooks/tw/status") + tw_long_error + (200,),
        ("vonage status: 256 long parameters, right-length sig", "/hooks/vo/status",
         long_prefix_form(250, "&timestamp=%s&sig=%s" % (ts, "0" * 32)), FORM, 401),
        ("vonage status: too many JSON keys", "/hooks/vo/status",
         ("{" + ",".join('"k%d":"v"' % i for i in range(3000)) + ',"sig":"x","timestamp":"%s"}' % ts).encode(),
         JSON, 401),
        ("vonage status: huge sig", "/hooks/vo/status",
         fill("messageId=w6&status=delivered&timestamp=%s&sig=" % ts, "a", ""), FORM, 401),
        ("vonage status: spaces in message-timestamp", "/hooks/vo0/status",
         fill("messageId=w6&status=delivered&message-timestamp=2020", "+", "x"), FORM, 200),
        ("vonage status: spaces in err-code", "/hooks/vo0/status",
         fill("messageId=w6&status=failed&err-code=1", "+", "x"), FORM, 200),
        ("vonage inbound: spaces in message-timestamp", "/hooks/vo0/inbound",
         fill("msisdn=447700900000&to=447700900001&text=hi&message-timestamp=2020", "+", "x"), FORM, 200),
        ("vonage inbound: JSON, spaces in message-timestamp", "/hooks/vo0/inbound",
         fill('{"msisdn":"447700900000","to":"447700900001","text":"hi","message-timestamp":"2020', ws, 'x"}'),
         JSON, 200),
    ]
    for name, _, body, headers, _ in cases:
        assert len(body) <= LIMIT, "%s: %d bytes" % (name, len(body))
    return cases


def timed(d, path, body, headers, limit, tries=3):
    """The fastest of tries posts (load on the machine only ever adds) and
    the last answer: (seconds, status, body); (None, None, None) when one
    took more than limit seconds (quadratic parsing takes minutes)."""
    best = None
    for _ in range(tries):
        t0 = time.monotonic()
        try:
            status, _, raw, _ = d.request("POST", path, body, headers=headers, timeout=limit)
        except (socket.timeout, TimeoutError):
            return None, None, None
        took = time.monotonic() - t0
        best = took if best is None else min(best, took)
    return best, status, raw


@test(timeout=120)
def worst_webhooks_cost_about_what_a_normal_one_does():
    d = Daemon.start(RULES)
    normal = []
    for name, path, body, headers in normal_cases():
        took, status, raw = timed(d, path, body, headers, 10 * SLOWDOWN)
        check(took is not None, "%s took more than %.0f s" % (name, 10 * SLOWDOWN))
        check(status == 200, "%s answered %d %r" % (name, status, raw[:200]))
        normal.append(took)
    typical = statistics.median(normal)
    # A loaded CI box can stall any one request; the fastest of three is
    # stable, and quadratic parsing took seconds, far beyond this.
    bound = max(20 * typical, 0.25) * SLOWDOWN
    slow, slowest = [], (0.0, "")
    for name, path, body, headers, expected in worst_cases():
        took, status, raw = timed(d, path, body, headers, 10 * bound)
        if took is None:
            slow.append("%s: more than %.1f s" % (name, 10 * bound))
            continue
        check(status == expected, "%s answered %d, expected %d: %r" % (name, status, expected, raw[:200]))
        slowest = max(slowest, (took, name))
        if took > bound:
            slow.append("%s: %.3f s" % (name, took))
    status, _, raw, doc = d.request("POST", "/hooks/gen0/status", fill("", "a=1&", "b=2"), headers=FORM)
    check(status == 400 and doc and doc["error"]["code"] == "too_many_fields", "too many fields: %d %r" % (status, raw))
    sys.stderr.write("normal webhook %.4f s; slowest worst case %.4f s (%s); bound %.3f s\n"
                     % (typical, slowest[0], slowest[1], bound))
    check(not slow, "slower than %.3f s (a normal webhook: %.4f s): %s" % (bound, typical, "; ".join(slow)))


@test(timeout=120)
def healthz_answers_while_worst_webhooks_are_parsed():
    d = Daemon.start(RULES)
    cases = worst_cases()
    done = threading.Event()
    errors = []

    def flood():
        try:
            for _ in range(2):
                for name, path, body, headers, expected in cases:
                    status, _, raw, _ = d.request("POST", path, body, headers=headers, timeout=60)
                    if status != expected:
                        errors.append("%s answered %d %r" % (name, status, raw[:100]))
        except Exception as e:  # noqa: BLE001 - reported by the test
            errors.append("%s: %s" % (type(e).__name__, e))
        finally:
            done.set()

    flooders = [threading.Thread(target=flood) for _ in range(2)]
    for t in flooders:
        t.start()
    worst, probes = 0.0, 0
    try:
        while not done.is_set():
            t0 = time.monotonic()
            try:
                status, _, _, _ = d.request("GET", "/healthz", timeout=5 * SLOWDOWN)
            except (socket.timeout, TimeoutError):
                status = None
            worst = max(worst, time.monotonic() - t0)
            check(status is not None, "/healthz did not answer within %.0f s" % (5 * SLOWDOWN))
            probes += 1
            check(status == 200, "/healthz answered %d" % status)
    finally:
        for t in flooders:
            t.join()
    check(not errors, "; ".join(errors[:3]))
    check(probes >= 5, "only %d /healthz probes while the webhooks ran" % probes)
    check(worst < 1.0 * SLOWDOWN, "/healthz took %.3f s while webhooks were parsed" % worst)


if __name__ == "__main__":
    run()
