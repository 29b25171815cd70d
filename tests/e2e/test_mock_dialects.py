"""End-to-end tests of `smsrules mock-provider --dialect NAME`: the mock speaks
the API of each adapter in lua/adapters/ (docs/providers.md).

For every dialect the real daemon sends through the real adapter to the mock
(the message ends "sent" with the provider id the mock gave; a ...0000
recipient ends "failed" with the provider's error). The rest drives the mock
directly from Python: the failure answers of each dialect, status polling
(SMSBat, Devino, SMSC), delivery reports and inbound SMS posted to a small
Python HTTP server in each provider's format, with their signatures checked
with hmac/hashlib (Twilio X-Twilio-Signature, Vonage sig, generic X-Signature).

Run: SMSRULES_BIN=build/smsrules python3 tests/e2e/test_mock_dialects.py [name...]"""

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import HOST, SLOWDOWN, Daemon, TestFailure, check, run, run_cli, test, wait_for  # noqa: E402

API_KEY = "k"
AUTH = {"Authorization": "Bearer " + API_KEY}
DIALECTS = ("mock", "generic", "smsbat", "devino", "agiletelecom", "smsc", "twilio", "vonage")
OK_TO = "+84912345677"
REJECT_TO = "+84900000000"
UNDELIVERED_TO = "+84900000666"
TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "tw-token"

# ---- helpers: receivers, mocks, raw requests ----

_receivers = []


class Receiver:
    """A webhook endpoint: a threaded http.server on a free port. Records
    every POST as {"path", "headers" (lower-case), "body" (bytes), "at"}
    and answers `status` with `body` (text/plain unless content_type). As a
    relay (once `relay_port` is set) it forwards each post, headers and
    body as they came, to the same path on 127.0.0.1:relay_port (the
    daemon), answers what the daemon answered, and records that answer as
    "answer": (status, content type, body)."""

    def __init__(self, status=200, body=b"", content_type="text/plain"):
        self.posts = []
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()
        self.relay_port = None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                post = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": raw,
                        "at": time.monotonic()}
                with outer.lock:
                    outer.posts.append(post)
                outer.gate.wait(30)
                answer = (status, content_type, body)
                if outer.relay_port:
                    conn = http.client.HTTPConnection(HOST, outer.relay_port, timeout=30 * SLOWDOWN)
                    try:
                        keep = ("content-type", "x-twilio-signature", "x-signature")
                        conn.request("POST", self.path, body=raw,
                                     headers={k: v for k, v in post["headers"].items() if k in keep})
                        resp = conn.getresponse()
                        answer = (resp.status, resp.getheader("Content-Type", ""), resp.read())
                    finally:
                        conn.close()
                    with outer.lock:
                        post["answer"] = answer
                try:
                    self.send_response(answer[0])
                    self.send_header("Content-Type", answer[1])
                    self.send_header("Content-Length", str(len(answer[2])))
                    self.end_headers()
                    self.wfile.write(answer[2])
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.base = "http://%s:%d" % (HOST, self.server.server_address[1])
        self.url = self.base + "/hooks/p/status"
        self.inbound_url = self.base + "/hooks/p/inbound"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        _receivers.append(self)

    def all(self):
        with self.lock:
            return list(self.posts)

    def wait(self, n, what="posts"):
        return wait_for(lambda: (lambda p: p if len(p) >= n else None)(self.all()), 10 * SLOWDOWN,
                        "%d %s at the receiver" % (n, what))

    def close(self):
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


def dialect_test(fn=None, timeout=30.0):
    """@test, plus: the receivers the test started are closed afterwards
    (the harness kills the mocks and daemons and checks their stderr)."""

    def register(f):
        def wrapper():
            try:
                f()
            finally:
                for r in _receivers:
                    r.close()
                _receivers.clear()

        wrapper.__name__ = f.__name__
        return test(timeout=timeout)(wrapper)

    if fn is not None:
        return register(fn)
    return register


def mock_request(m, method, path, body=b"", headers=None, timeout=5.0 * SLOWDOWN):
    """(status, {lower-case header: value}, body bytes) of one request to the mock."""
    conn = http.client.HTTPConnection(HOST, m.port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers = dict(headers or {})
            headers.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def as_json(raw, what="answer"):
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        raise TestFailure("%s is not JSON: %r" % (what, raw[:300]))


def form(raw):
    """A form body → {name: value} (each name once)."""
    return dict(urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True))


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def encode(fields):
    return urllib.parse.urlencode(fields)


# ---- each dialect's send, from Python (what its adapter builds) ----

SMSBAT_AUTH = {"X-Authorization-Key": "sk"}
DEVINO_AUTH = {"Authorization": "Key dk"}
AGILE_AUTH = {"X-Api-Key": "ak"}


def send_raw(m, dialect, to, cid=None, text="hello"):
    """One message sent in the dialect's request format (with the
    credentials the mocks of these tests are started with). Returns
    (status, headers, body bytes)."""
    if dialect == "mock":
        doc = {"to": to, "from": "Shop", "message": text}
        if cid:
            doc["id"] = cid
        return mock_request(m, "POST", "/send", doc)
    if dialect == "generic":
        h = {"Authorization": "Bearer gk"}
        if cid:
            h["Idempotency-Key"] = cid
        return mock_request(m, "POST", "/send", {"to": to.lstrip("+"), "from": "Shop", "message": text}, h)
    if dialect == "smsbat":
        msg = {"from": "Shop", "to": to, "type": "sms", "text": text, "ttl": 3600}
        if cid:
            msg["customerMessageId"] = cid
        return mock_request(m, "POST", "/bat/messagelist", {"messages": [msg]}, SMSBAT_AUTH)
    if dialect == "devino":
        return mock_request(m, "POST", "/sms/messages",
                            {"messages": [{"from": "Shop", "to": to.lstrip("+"), "text": text}]}, DEVINO_AUTH)
    if dialect == "agiletelecom":
        msg = {"destinations": [to], "sender": "Shop", "body": text}
        if cid:
            msg["ids"] = [cid]
        return mock_request(m, "POST", "/services/sms/send",
                            {"enableConcatenated": True, "enableUnicode": True, "enableDelivery": True,
                             "simulation": False, "messages": [msg]}, AGILE_AUTH)
    if dialect == "smsc":
        fields = [("login", "u"), ("psw", "p"), ("phones", to), ("mes", text), ("sender", "Shop")]
        if cid:
            fields.append(("id", cid))
        fields += [("charset", "utf-8"), ("fmt", "3")]
        return mock_request(m, "POST", "/sys/send.php", encode(fields), FORM)
    if dialect == "twilio":
        h = dict(FORM)
        h["Authorization"] = basic(TWILIO_SID, TWILIO_TOKEN)
        return mock_request(m, "POST", "/2010-04-01/Accounts/%s/Messages.json" % TWILIO_SID,
                            encode([("To", to), ("From", "+15550001111"), ("Body", text)]), h)
    if dialect == "vonage":
        fields = [("api_key", "vk"), ("api_secret", "vs"), ("from", "Brand"), ("to", to.lstrip("+")),
                  ("text", text)]
        if cid:
            fields.append(("client-ref", cid))
        return mock_request(m, "POST", "/sms/json", encode(fields), FORM)
    raise ValueError(dialect)


# Mock arguments giving each dialect the credentials send_raw uses.
CREDENTIALS = {
    "mock": [],
    "generic": ["--auth-key", "gk"],
    "smsbat": ["--auth-key", "sk"],
    "devino": ["--auth-key", "dk"],
    "agiletelecom": ["--auth-key", "ak"],
    "smsc": ["--auth-key", "u:p"],
    "twilio": ["--auth-token", TWILIO_TOKEN],
    "vonage": ["--auth-key", "vk:vs"],
}


def start_mock(dialect, *args):
    return harness.Mock.start("--dialect", dialect, *(CREDENTIALS[dialect] + [str(a) for a in args]))


def accepted_id(dialect, status, raw):
    """The provider id of an accepted single-message answer."""
    doc = as_json(raw, "%s send answer" % dialect)
    if dialect in ("mock", "generic"):
        check(status == 200 and doc.get("status") == "accepted", "%s: %d %r" % (dialect, status, doc))
        return doc["message_id"]
    if dialect == "smsbat":
        e = doc["messages"][0]
        check(status == 200 and e["status"] == "accepted", "smsbat: %d %r" % (status, doc))
        return e["messageId"]
    if dialect == "devino":
        r = doc["result"][0]
        check(status == 200 and r["code"] == "OK", "devino: %d %r" % (status, doc))
        return r["messageId"]
    if dialect == "agiletelecom":
        r = doc["results"][0]
        check(status == 200 and r["accepted"] is True and r["statusCode"] == 200, "agile: %d %r" % (status, doc))
        return r["id"]
    if dialect == "smsc":
        check(status == 200 and "id" in doc and doc.get("cnt") == 1, "smsc: %d %r" % (status, doc))
        return str(doc["id"])
    if dialect == "twilio":
        check(status == 201 and doc.get("status") == "queued", "twilio: %d %r" % (status, doc))
        return doc["sid"]
    if dialect == "vonage":
        e = doc["messages"][0]
        check(status == 200 and doc["message-count"] == "1" and e["status"] == "0", "vonage: %d %r" % (status, doc))
        return e["message-id"]
    raise ValueError(dialect)


# ---- through the engine: each adapter against the mock speaking its dialect ----

ID_FORMAT = {
    "mock": r"^m[0-9a-f]+-\d+$",
    "generic": r"^m[0-9a-f]+-\d+$",
    "smsbat": r"^[0-9a-f]{23}$",
    "devino": r"^\d{19,20}$",
    "agiletelecom": r"^msg_[0-9a-f]{19}$",
    "smsc": r"^[0-9A-Z]{26}:849\d{8}$",  # our message id (sent as SMSC's "id") and the phone
    "twilio": r"^SM[0-9a-f]{32}$",
    "vonage": r"^[0-9A-F]{16}$",
}

# What the failed message's error says for a ...0000 recipient.
REJECT_ERROR = {
    "mock": "invalid number",
    "generic": "HTTP 400: invalid number",
    "smsbat": "rejected: invalid phone number",
    "devino": "REJECTED: invalid (messages[",
    "agiletelecom": "status 400: invalid destination",
    "smsc": "SMSC error 7",
    "twilio": "HTTP 400 (21211)",
    "vonage": "status 3: Invalid to address",
}

# What the engine answers a webhook of the provider (status, body).
HOOK_ANSWER = {
    "mock": b'{"status":"ok"}',
    "generic": b'{"status":"ok"}',
    "smsbat": b"",
    "devino": b"",
    "agiletelecom": b"+OK",
    "twilio": b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>',
    "vonage": b"",
}

WEBHOOK_SECRET = "ws"


def as_sent(dialect, to):
    """The recipient as the adapter writes it (by_recipient counts it so)."""
    return to.lstrip("+") if dialect in ("generic", "devino", "vonage") else to


def provider_decl(dialect, m, public_url):
    base = "http://%s:%d" % (HOST, m.port)
    opts = {
        "mock": 'url = "%s/send", webhook_secret = "%s"' % (base, WEBHOOK_SECRET),
        "generic": 'url = "%s/send", api_key = "gk", webhook_secret = "%s"' % (base, WEBHOOK_SECRET),
        "smsbat": 'url = "%s", api_key = "sk"' % base,
        "devino": 'url = "%s", api_key = "dk"' % base,
        "agiletelecom": 'url = "%s/services", api_key = "ak"' % base,
        "smsc": 'url = "%s", login = "u", password = "p", poll = true' % base,
        "twilio": 'url = "%s", account_sid = "%s", auth_token = "%s", sender = "+15550001111"' % (
            base, TWILIO_SID, TWILIO_TOKEN),
        "vonage": 'url = "%s", api_key = "vk", api_secret = "vs", sender = "Brand", signature_secret = "%s"' % (
            base, WEBHOOK_SECRET),
    }[dialect]
    # timeout_ms: a send that timed out would be sent again, and these tests count duplicates exactly.
    return ('sms.config{ api_keys = { "%s" }, retry_base_ms = 20, retry_cap_ms = 200, public_url = "%s" }\n'
            'sms.provider("p", { adapter = "%s", %s, timeout_ms = 30000 })\n'
            'sms.route(function(msg) return { "p" } end)\n'
            'sms.on_inbound(function(msg)\n'
            '  sms.log.info("inbound seen",\n'
            '               { from = msg.from, to = msg.to, text = msg.text, provider = msg.provider })\n'
            'end)\n' % (API_KEY, public_url, dialect, opts))


def get_message(d, mid):
    status, _, body, doc = d.request("GET", "/v1/messages/" + mid, headers=AUTH)
    check(status == 200, "GET /v1/messages/%s: %d %r" % (mid, status, body[:200]))
    return doc


FINAL = ("delivered", "undelivered", "failed", "rejected", "expired")


def wait_status(d, mid, want, timeout=15):
    def reached():
        m = get_message(d, mid)
        if m["status"] == want:
            return m
        if m["status"] in FINAL:
            raise TestFailure("message %s ended %s, expected %s: %r" % (mid, m["status"], want, m))
        return None

    return wait_for(reached, timeout * SLOWDOWN, "message %s to be %s" % (mid, want))


def dlr_id(dialect, post):
    """The provider id a delivery report names."""
    if dialect in ("twilio", "vonage"):
        f = form(post["body"])
        return f["MessageSid"] if dialect == "twilio" else f["messageId"]
    doc = as_json(post["body"], "report")
    if dialect == "devino":
        return doc[0]["messageId"]
    return doc["message_id"] if dialect in ("mock", "generic") else doc["messageId"]


def engine_roundtrip(dialect):
    # Reports and inbound posts go through a recording relay to the daemon's
    # /hooks/p/...; public_url is the relay's, so what the mock signs is
    # what the daemon checks.
    relay = Receiver()
    args = ["--dlr-delay-ms", "0", "--webhook-secret", WEBHOOK_SECRET, "--inbound-url", relay.inbound_url]
    if dialect != "smsc":
        args += ["--dlr-url", relay.url]
    m = start_mock(dialect, *args)
    d = Daemon.start(provider_decl(dialect, m, relay.base))
    relay.relay_port = d.port
    status, _, body, doc = d.request("POST", "/v1/messages", {"messages": [
        {"to": OK_TO, "text": "hello"}, {"to": REJECT_TO, "text": "hello"}, {"to": UNDELIVERED_TO, "text": "hi"}]},
        AUTH)
    check(status == 202, "POST /v1/messages: %d %r" % (status, body[:300]))
    ok_id, bad_id, undelivered_id = (r["id"] for r in doc["result"])

    # smsc is polled: the first poll comes 5 s after "sent".
    delivered = wait_status(d, ok_id, "delivered", 30 if dialect == "smsc" else 15)
    check([h["status"] for h in delivered["history"]][-2:] == ["sent", "delivered"], "history %r" % (
        delivered["history"],))
    pid = delivered["provider_id"]
    check(isinstance(pid, str) and re.match(ID_FORMAT[dialect], pid), "%s provider id %r" % (dialect, pid))
    undelivered = wait_status(d, undelivered_id, "undelivered", 30 if dialect == "smsc" else 15)
    failed = wait_status(d, bad_id, "failed")
    check(REJECT_ERROR[dialect] in (failed.get("error") or ""),
          "%s: the failed message's error is %r, expected it to contain %r" % (dialect, failed.get("error"),
                                                                              REJECT_ERROR[dialect]))
    st = m.stats()
    check(st["received"] == 2 and st["rejected"] == 1, "%s stats: received %d rejected %d" % (
        dialect, st["received"], st["rejected"]))
    check(st["by_recipient"] == {as_sent(dialect, OK_TO): 1, as_sent(dialect, UNDELIVERED_TO): 1},
          "%s by_recipient %r" % (dialect, st["by_recipient"]))
    check(st["duplicates"] == 0 and st["bad_requests"] == 0, "%s stats %r" % (dialect, st))

    # The ids the engine kept are the ones the mock gave: its reports (or,
    # for SMSC, the statuses the engine polled) name them; the engine
    # accepted each report (signature included) and answered as the
    # provider expects.
    if dialect == "smsc":
        check(pid == ok_id + ":84912345677", "smsc provider id %r is not our id and the phone" % pid)
        check(st["polls"] >= 1, "the engine did not poll: %r" % st)
    else:
        # dlr_sent counts reports the relay answered: their answers are recorded by then. A post the mock
        # stopped waiting for (its report timeout, 5 s) is posted again after a pause, so this may take
        # that long and the relay may hold repeats: compare the ids the posts name, and account for
        # every post as a first one or a repeat the mock counted (dlr_retried).
        wait_for(lambda: m.stats()["dlr_sent"] == 2, 20 * SLOWDOWN, "dlr_sent == 2")
        st = m.stats()
        want = sorted([pid, undelivered["provider_id"]])
        posts = [p for p in relay.all() if p["path"].startswith("/hooks/p/status")]
        named = [dlr_id(dialect, p) for p in posts]
        check(sorted(set(named)) == want, "%s reports name %r, the engine kept %r" % (dialect, named, want))
        check(len(posts) == 2 + st["dlr_retried"], "%s: %d report posts for 2 reports, %d counted as repeats"
              % (dialect, len(posts), st["dlr_retried"]))
        answered = [p for p in posts if "answer" in p]
        check(sorted({dlr_id(dialect, p) for p in answered}) == want, "%s: the engine's answers to the reports of"
              " %r are missing" % (dialect, want))
        for p in answered:
            check(p["answer"][0] == 200 and p["answer"][2] == HOOK_ANSWER[dialect],
                  "%s: the engine answered a report %r" % (dialect, p["answer"]))

    # An inbound SMS through the engine's inbound hook.
    status, _, raw = mock_request(m, "POST", "/control/inbound",
                                  {"from": "+84987654321", "to": "+84911111111", "text": "HELLO there"},
                                  timeout=15 * SLOWDOWN)
    if dialect in ("smsbat", "smsc"):
        check(status == 400 and "no inbound webhook" in as_json(raw)["error"], "%s inbound %d %r" % (
            dialect, status, raw))
    else:
        doc = as_json(raw, "inbound answer")
        check(status == 200 and doc == {"status": 200, "body": HOOK_ANSWER[dialect].decode()},
              "%s inbound: %d %r" % (dialect, status, doc))
        inbound_posts = [p for p in relay.all() if p["path"].startswith("/hooks/p/inbound")]
        check(len(inbound_posts) == 1, "%d inbound posts went through the relay, expected 1" % len(inbound_posts))
        seen = d.wait_log("inbound seen", 10 * SLOWDOWN)
        check(seen.get("from") == "+84987654321" and seen.get("to") == "+84911111111"
              and seen.get("text") == "HELLO there" and seen.get("provider") == "p", "on_inbound saw %r" % seen)
    d.stop()


def _engine_test(dialect):
    def fn():
        engine_roundtrip(dialect)

    fn.__name__ = "engine_sends_through_%s_dialect" % dialect
    return dialect_test(timeout=60.0)(fn)


for _d in DIALECTS:
    _engine_test(_d)


# ---- command line and /control ----


@dialect_test
def help_documents_dialect_flags():
    code, out, err = run_cli(["mock-provider", "--help"])
    check(code == 0, "--help exited %d: %r" % (code, err))
    for word in ("--dialect", "--auth-token", "--webhook-secret", "--inbound-url", "/control/inbound",
                 "/bat/messagelist", "/bat/message/", "/sms/messages", "/sms-stat/statuses/get-by-ids",
                 "/services/sms/send", "/sys/send.php", "/sys/status.php", "Messages.json", "/sms/json",
                 "X-Twilio-Signature", "X-Signature") + DIALECTS:
        check(word in out, "mock-provider --help does not mention %s" % word)
    for bad in (["--dialect", "nexmo"], ["--dialect"], ["--auth-token", ""], ["--inbound-url", ""]):
        code, _, err = run_cli(["mock-provider"] + bad)
        check(code == 1 and "usage: smsrules mock-provider" in err, "mock-provider %r exited %d: %r" % (bad, code, err))


@dialect_test
def control_switches_dialect():
    m = harness.Mock.start()
    check(m.control({})["dialect"] == "mock", "default dialect")
    check(mock_request(m, "POST", "/bat/messagelist", {"messages": []})[0] == 404, "smsbat path served as mock")
    doc = m.control({"dialect": "smsbat", "inbound_url": "http://127.0.0.1:1/x", "webhook_secret": "s"})
    check(doc["dialect"] == "smsbat" and doc["inbound_url"] == "http://127.0.0.1:1/x" and doc["webhook_secret"] is True,
          "control answer %r" % doc)
    check("\"s\"" not in json.dumps(doc), "the webhook secret is echoed: %r" % doc)
    status, _, raw = mock_request(m, "POST", "/bat/messagelist",
                                  {"messages": [{"from": "Shop", "to": OK_TO, "type": "sms", "text": "x"}]})
    accepted_id("smsbat", status, raw)
    check(mock_request(m, "POST", "/send", {"to": OK_TO, "message": "x"})[0] == 404, "/send still served")
    for bad in ({"dialect": "nexmo"}, {"dialect": 3}, {"inbound_url": 5}):
        status, _, _, _ = m.request("POST", "/control", bad)
        check(status == 400, "POST /control %r answered %d" % (bad, status))
    check(m.control({})["dialect"] == "smsbat", "an invalid setting changed the dialect")
    check(m.stats()["received"] == 1, "stats %r" % m.stats())


# ---- failure answers, dialect by dialect ----


def failure_answers(dialect):
    """(recipient → (status, check of the body)) for the four patterns."""
    m = start_mock(dialect, "--retry-after", "7")
    results = {}
    for to in ("+84900000000", "+84900000401", "+84900000503", "+84900000429"):
        status, headers, raw = send_raw(m, dialect, to)
        results[to[-4:]] = (status, headers, as_json(raw, "%s answer for %s" % (dialect, to)))
    return m, results


@dialect_test
def failure_patterns_in_every_dialect():
    expect = {
        "mock": {"0000": (400, {"error": "invalid number"}), "0401": (401, {"error": "unauthorized"}),
                 "0503": (503, {"error": "unavailable"}), "0429": (429, {"error": "rate limited"})},
        "generic": {"0000": (400, {"error": "invalid number"}), "0401": (401, {"error": "unauthorized"}),
                    "0503": (503, {"error": "unavailable"}), "0429": (429, {"error": "rate limited"})},
    }
    for dialect in DIALECTS:
        m, res = failure_answers(dialect)
        s0000, s0401, s0503, s0429 = (res[k] for k in ("0000", "0401", "0503", "0429"))
        if dialect in expect:
            for k, (status, body) in expect[dialect].items():
                check(res[k][0] == status and res[k][2] == body, "%s %s: %r" % (dialect, k, res[k]))
        elif dialect == "smsbat":
            e = s0000[2]["messages"][0]
            check(s0000[0] == 200 and e["status"] == "rejected" and e["messageId"] is None, "smsbat 0000 %r" % (s0000,))
            for k, (st, err) in {"0401": (401, "Unauthorized"), "0503": (503, "Service Unavailable"),
                                 "0429": (429, "Too Many Requests")}.items():
                check(res[k][0] == st and res[k][2]["status"] == st and res[k][2]["error"] == err
                      and res[k][2]["message"], "smsbat %s %r" % (k, res[k]))
        elif dialect == "devino":
            r = s0000[2]["result"][0]
            check(s0000[0] == 200 and r["code"] == "REJECTED" and r["reasons"] == [
                {"key": "invalid", "ref": "messages[0].to"}], "devino 0000 %r" % (s0000,))
            check(s0401[0] == 401 and s0503[0] == 503 and s0429[0] == 429, "devino %r" % res)
            check(s0429[2]["reasons"][0]["key"] == "too.many.messages", "devino 429 %r" % (s0429,))
        elif dialect == "agiletelecom":
            r = s0000[2]["results"][0]
            check(s0000[0] == 200 and r == {"destination": "+84900000000", "id": None, "accepted": False,
                                            "statusCode": 400, "description": "invalid destination"},
                  "agile 0000 %r" % (s0000,))
            check(s0401[0] == 401 and s0503[0] == 503 and s0429[0] == 429, "agile %r" % res)
        elif dialect == "smsc":
            check(s0000[0] == 200 and s0000[2] == {"error": "invalid phone number", "error_code": 7},
                  "smsc 0000 %r" % (s0000,))
            check(s0401[0] == 200 and s0401[2] == {"error": "authorise error", "error_code": 2},
                  "smsc 0401 %r" % (s0401,))
            check(s0503[0] == 503, "smsc 0503 %r" % (s0503,))
            check(s0429[0] == 200 and s0429[2]["error_code"] == 9, "smsc 0429 %r" % (s0429,))
        elif dialect == "twilio":
            for k, (st, code) in {"0000": (400, 21211), "0401": (401, 20003), "0503": (503, 20503),
                                  "0429": (429, 20429)}.items():
                b = res[k][2]
                check(res[k][0] == st and b["code"] == code and b["status"] == st and b["message"]
                      and b["more_info"].endswith("/%d" % code), "twilio %s %r" % (k, res[k]))
        elif dialect == "vonage":
            for k, code in {"0000": "3", "0401": "4", "0503": "5", "0429": "1"}.items():
                b = res[k][2]
                check(res[k][0] == 200 and b["message-count"] == "1" and b["messages"][0]["status"] == code
                      and b["messages"][0]["error-text"], "vonage %s %r" % (k, res[k]))
        if dialect not in ("smsc", "vonage"):
            check(s0429[1].get("retry-after") == "7", "%s 429 without Retry-After: %r" % (dialect, s0429[1]))
        st = m.stats()
        want = {"rejected": 1, "unauthorized": 1, "failed_5xx": 1, "failed_429": 1, "received": 0, "requests": 4}
        check({k: st[k] for k in want} == want, "%s stats %r" % (dialect, {k: st[k] for k in want}))


@dialect_test
def wrong_credentials_refused_in_every_dialect():
    for dialect in DIALECTS[1:]:
        m = start_mock(dialect)
        m.control({"auth_key": "x:y"})
        status, _, raw = send_raw(m, dialect, OK_TO)
        doc = as_json(raw)
        if dialect == "smsc":
            check(status == 200 and doc.get("error_code") == 2, "smsc wrong login %d %r" % (status, doc))
        elif dialect == "vonage":
            check(status == 200 and doc["messages"][0]["status"] == "4", "vonage wrong key %d %r" % (status, doc))
        else:
            check(status == 401, "%s wrong credentials answered %d %r" % (dialect, status, doc))
        st = m.stats()
        check(st["unauthorized"] == 1 and st["received"] == 0, "%s stats %r" % (dialect, st))
    # Twilio with --auth-token: the path's AccountSid and the token.
    m = start_mock("twilio")
    h = dict(FORM)
    h["Authorization"] = basic("ACother", TWILIO_TOKEN)
    status, _, _ = mock_request(m, "POST", "/2010-04-01/Accounts/%s/Messages.json" % TWILIO_SID,
                                encode([("To", OK_TO), ("From", "+15550001111"), ("Body", "x")]), h)
    check(status == 401, "twilio with another account's user answered %d" % status)


# ---- request formats: batches, ids, idempotency ----


@dialect_test
def batches_and_client_ids():
    # SMSBat: a batch, results in order echoing customerMessageId; a resend is a duplicate.
    m = start_mock("smsbat")
    msgs = [{"from": "Shop", "to": "+84911111117", "type": "sms", "text": "a", "customerMessageId": "c1"},
            {"from": "Shop", "to": REJECT_TO, "type": "sms", "text": "b", "customerMessageId": "c2"},
            {"from": "Shop", "type": "sms", "text": "no to", "customerMessageId": "c3"}]
    status, _, raw = mock_request(m, "POST", "/bat/messagelist", {"messages": msgs}, SMSBAT_AUTH)
    doc = as_json(raw)
    check(status == 200 and isinstance(doc["messagelistId"], int) and len(doc["messages"]) == 3,
          "smsbat batch %r" % doc)
    e = doc["messages"]
    check(e[0]["status"] == "accepted" and e[0]["customerMessageId"] == "c1" and e[0]["to"] == "+84911111117"
          and e[0]["parts"] == 1, "entry 0 %r" % e[0])
    check(e[1]["status"] == "rejected" and e[1]["customerMessageId"] == "c2", "entry 1 %r" % e[1])
    check(e[2]["status"] == "rejected" and "to" in e[2]["message"], "entry 2 %r" % e[2])
    status, _, raw = send_raw(m, "smsbat", "+84911111117", cid="c1")
    check(accepted_id("smsbat", status, raw) == e[0]["messageId"], "resent c1 got another id")
    st = m.stats()
    check(st["received"] == 1 and st["duplicates"] == 1 and st["bad_requests"] == 1 and st["rejected"] == 1,
          "smsbat stats %r" % st)
    status, _, raw = mock_request(m, "POST", "/bat/messagelist", {"msgs": []}, SMSBAT_AUTH)
    check(status == 400 and as_json(raw)["message"] == "Missing required field: 'messages'", "no messages: %r" % raw)

    # Devino: one result per message in order; no client id, so no duplicates.
    m = start_mock("devino")
    status, _, raw = mock_request(m, "POST", "/sms/messages", {"messages": [
        {"from": "Shop", "to": "84911111117", "text": "a"}, {"from": "Shop", "to": "84922222227"},
        {"from": "Shop", "to": "84933333337", "text": "c"}]}, DEVINO_AUTH)
    res = as_json(raw)["result"]
    check(status == 200 and [r["code"] for r in res] == ["OK", "REJECTED", "OK"], "devino batch %r" % res)
    check(res[1]["reasons"] == [{"key": "must.be.not.null", "ref": "messages[1].text"}], "devino reasons %r" % res[1])
    check(res[0]["messageId"] != res[2]["messageId"] and int(res[0]["messageId"]) > 2 ** 53, "devino ids %r" % res)

    # Agile Telecom: a result per destination; ids are client ids.
    m = start_mock("agiletelecom")
    body = {"globalId": "g-1", "enableDelivery": True, "messages": [
        {"ids": ["a1", "a2"], "destinations": ["+84911111117", "+84922222227"], "sender": "Shop", "body": "x"}]}
    status, _, raw = mock_request(m, "POST", "/services/sms/send", body, AGILE_AUTH)
    doc = as_json(raw)
    check(status == 200 and doc["globalId"] == "g-1" and doc["accepted"] is True, "agile %r" % doc)
    check([r["destination"] for r in doc["results"]] == ["+84911111117", "+84922222227"], "agile results %r" % doc)
    status, _, raw = mock_request(m, "POST", "/sms/send", body, AGILE_AUTH)
    again = as_json(raw)
    check([r["id"] for r in again["results"]] == [r["id"] for r in doc["results"]], "agile resend %r" % again)
    check(m.stats()["duplicates"] == 2 and m.stats()["received"] == 2, "agile stats %r" % m.stats())

    # SMSC: the client's id comes back; a list of phones shares it; GET works too.
    m = start_mock("smsc")
    status, _, raw = send_raw(m, "smsc", OK_TO, cid="ours-1")
    check(status == 200 and as_json(raw) == {"id": "ours-1", "cnt": 1}, "smsc with id %r" % raw)
    status, _, raw = send_raw(m, "smsc", OK_TO, cid="ours-1")
    check(as_json(raw) == {"id": "ours-1", "cnt": 1} and m.stats()["duplicates"] == 1, "smsc resend %r" % raw)
    q = encode([("login", "u"), ("psw", "p"), ("phones", "+84911111117;+84922222227"), ("mes", "x" * 200),
                ("fmt", "3")])
    status, _, raw = mock_request(m, "GET", "/sys/send.php?" + q)
    doc = as_json(raw)
    check(status == 200 and isinstance(doc["id"], int) and doc["cnt"] == 4, "smsc two phones, two parts each %r" % doc)
    status, _, raw = send_raw(m, "smsc", OK_TO, cid="not ok!")
    check(as_json(raw) == {"error": "parameters error", "error_code": 1}, "smsc bad id %r" % raw)

    # Twilio: required fields are Twilio's errors.
    m = start_mock("twilio")
    h = dict(FORM)
    h["Authorization"] = basic(TWILIO_SID, TWILIO_TOKEN)
    path = "/2010-04-01/Accounts/%s/Messages.json" % TWILIO_SID
    for fields, code in (([("From", "+1555"), ("Body", "x")], 21604), ([("To", OK_TO), ("From", "+1555")], 21602),
                         ([("To", OK_TO), ("Body", "x")], 21603)):
        status, _, raw = mock_request(m, "POST", path, encode(fields), h)
        check(status == 400 and as_json(raw)["code"] == code, "twilio %r: %d %r" % (fields, status, raw))
    status, _, raw = mock_request(m, "POST", path, encode([("To", OK_TO), ("MessagingServiceSid", "MG1"),
                                                           ("Body", "x")]), h)
    doc = as_json(raw)
    check(status == 201 and doc["messaging_service_sid"] == "MG1" and doc["account_sid"] == TWILIO_SID
          and doc["uri"].endswith("/Messages/%s.json" % doc["sid"]), "twilio via service %r" % doc)

    # Vonage: form or JSON; client-ref echoed and deduplicated.
    m = start_mock("vonage")
    status, _, raw = send_raw(m, "vonage", OK_TO, cid="ref-1")
    first = accepted_id("vonage", status, raw)
    check(as_json(raw)["messages"][0]["client-ref"] == "ref-1", "vonage client-ref %r" % raw)
    status, _, raw = mock_request(m, "POST", "/sms/json", {"api_key": "vk", "api_secret": "vs", "from": "Brand",
                                                          "to": "84912345677", "text": "x", "client-ref": "ref-1"})
    check(accepted_id("vonage", status, raw) == first, "vonage JSON resend got another id")
    status, _, raw = mock_request(m, "POST", "/sms/json", encode([("api_key", "vk"), ("api_secret", "vs"),
                                                                  ("to", "84912345677"), ("text", "x")]), FORM)
    e = as_json(raw)["messages"][0]
    check(e["status"] == "2" and "from" in e["error-text"], "vonage without from %r" % e)


# ---- status polling ----

# How long the mock keeps a polled status "in progress" after the send answer: the first polls, right
# after the sends, must come before it ends (so it grows with the machine's slowness).
POLL_DELAY_MS = int(1000 * SLOWDOWN)


@dialect_test(timeout=40.0)
def smsbat_status_polling():
    m = start_mock("smsbat", "--dlr-delay-ms", POLL_DELAY_MS)  # no --dlr-url: polled only
    ids = {}
    for to in (OK_TO, UNDELIVERED_TO):
        before = time.monotonic()  # the answer, and so the delay, come after this
        status, _, raw = send_raw(m, "smsbat", to)
        ids[to] = (accepted_id("smsbat", status, raw), before)

    def poll(mid, headers=SMSBAT_AUTH):
        status, _, raw = mock_request(m, "GET", "/bat/message/" + mid, headers=headers)
        return status, as_json(raw)

    for to, (mid, _) in ids.items():
        status, doc = poll(mid)
        check(status == 200 and doc["messageId"] == mid and doc["deliverystatus"] == "processing"
              and isinstance(doc["messagelistId"], int) and doc["partscount"] == 1, "first poll %r" % doc)
    final = {}
    for to, (mid, before) in ids.items():
        doc = wait_for(lambda: (lambda d: d if d["deliverystatus"] != "processing" else None)(poll(mid)[1]),
                       10 * SLOWDOWN, "the status of %s to change" % to, interval=0.02)
        took = time.monotonic() - before
        check(took >= POLL_DELAY_MS / 1000.0 - 0.02, "final status %.3fs after the send, before --dlr-delay-ms %d"
              % (took, POLL_DELAY_MS))
        final[to] = doc["deliverystatus"]
    check(final == {OK_TO: "delivered", UNDELIVERED_TO: "undeliverable"}, "final statuses %r" % final)
    status, doc = poll("0123456789abcdef0123456")
    check(status == 404 and doc["status"] == 404, "unknown id answered %d %r" % (status, doc))
    status, _ = poll(ids[OK_TO][0], headers={"X-Authorization-Key": "wrong"})
    check(status == 401, "poll with a wrong key answered %d" % status)
    check(m.stats()["polls"] >= 5, "polls not counted: %r" % m.stats())


@dialect_test(timeout=40.0)
def devino_status_polling():
    m = start_mock("devino", "--dlr-delay-ms", POLL_DELAY_MS, "--dlr-undelivered", "0")
    ok = accepted_id("devino", *send_raw(m, "devino", OK_TO)[::2])
    bad = accepted_id("devino", *send_raw(m, "devino", UNDELIVERED_TO)[::2])
    path = "/sms-stat/statuses/get-by-ids"

    def poll(ids_json):
        headers = dict(DEVINO_AUTH, **{"Content-Type": "application/json"})
        status, _, raw = mock_request(m, "POST", path, ids_json, headers)
        return status, raw

    # Ids as JSON numbers beyond 2^53 (as the adapter sends them), and as strings.
    body = "[%s,\"%s\",1234]" % (ok, bad)
    status, raw = poll(body)
    doc = as_json(raw)
    check(status == 200 and [r["status"] for r in doc["result"]] == ["ENROUTE", "ENROUTE"], "first poll %r" % doc)
    check(re.search(r'"smsId":%s\b' % ok, raw.decode()), "smsId is not the exact number %s: %r" % (ok, raw))

    def final():
        r = as_json(poll(body)[1])["result"]
        return r if all(x["status"] != "ENROUTE" for x in r) else None

    res = wait_for(final, 10 * SLOWDOWN, "final statuses", interval=0.02)
    check([r["status"] for r in res] == ["DELIVERED", "UNDELIVERABLE"], "final %r" % res)
    check(all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", r["statusDateTime"]) for r in res), "dates %r" % res)
    check(poll(json.dumps(list(range(501))))[0] == 400, "501 ids accepted")
    check(poll("{}")[0] == 400, "an object accepted")


@dialect_test(timeout=40.0)
def smsc_status_polling():
    m = start_mock("smsc", "--dlr-delay-ms", POLL_DELAY_MS)
    with_id = accepted_id("smsc", *send_raw(m, "smsc", OK_TO, cid="c-77")[::2])
    numbered = accepted_id("smsc", *send_raw(m, "smsc", UNDELIVERED_TO)[::2])
    check(with_id == "c-77" and numbered.isdigit(), "smsc ids %r %r" % (with_id, numbered))

    def status(ids, phones, creds=(("login", "u"), ("psw", "p"))):
        code, _, raw = mock_request(m, "POST", "/sys/status.php",
                                    encode(list(creds) + [("phone", phones), ("id", ids), ("fmt", "3")]), FORM)
        check(code == 200, "status.php answered %d" % code)
        return as_json(raw)

    lst = status("c-77,%s,nope," % numbered, "84912345677,84900000666,84911111111,")
    check(isinstance(lst, list) and [e["status"] for e in lst] == [0, 0, -3], "first poll %r" % lst)
    check(lst[0]["id"] == "c-77" and lst[1]["id"] == int(numbered) and lst[0]["phone"] == "84912345677", "%r" % lst)
    one = status("c-77", "+84912345677")
    check(isinstance(one, dict) and one["status"] == 0 and "last_timestamp" in one, "single form %r" % one)
    done = wait_for(lambda: (lambda l: l if l[0]["status"] != 0 and l[1]["status"] != 0 else None)(
        status("c-77,%s," % numbered, "84912345677,84900000666,")), 10 * SLOWDOWN, "final statuses", interval=0.02)
    check([e["status"] for e in done] == [1, 20], "final %r" % done)
    check(re.match(r"^\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d$", done[0]["last_date"]), "last_date %r" % done[0])
    check(status("c-77", "84912345677", creds=(("apikey", "nope"),)) == {"error": "authorise error", "error_code": 2},
          "a wrong key was accepted")
    check(status("a,b,", "1,") == {"error": "parameters error", "error_code": 1}, "unequal lists accepted")


# ---- delivery reports in each provider's format ----


def twilio_signature(token, url, params):
    data = url + "".join(k + v for k, v in sorted(params.items()))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def vonage_sig(secret, params):
    text = "".join("&%s=%s" % (k.replace("&", "_").replace("=", "_"), v.replace("&", "_").replace("=", "_"))
                   for k, v in sorted(params.items()) if k != "sig")
    return hashlib.md5((text + secret).encode()).hexdigest()


@dialect_test(timeout=40.0)
def twilio_status_posts_are_signed():
    r = Receiver(200, b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>', "text/xml")
    m = start_mock("twilio", "--dlr-url", r.url, "--dlr-delay-ms", "0")
    ok = accepted_id("twilio", *send_raw(m, "twilio", OK_TO)[::2])
    bad = accepted_id("twilio", *send_raw(m, "twilio", UNDELIVERED_TO)[::2])
    posts = {form(p["body"])["MessageSid"]: p for p in r.wait(2, "status callbacks")}
    for sid, status in ((ok, "delivered"), (bad, "undelivered")):
        p = posts[sid]
        f = form(p["body"])
        check(p["headers"]["content-type"].startswith("application/x-www-form-urlencoded"), "content type %r" % p)
        check(f["MessageStatus"] == status and f["AccountSid"] == TWILIO_SID and f["From"] == "+15550001111"
              and f["To"] in (OK_TO, UNDELIVERED_TO), "callback %r" % f)
        check((f.get("ErrorCode") == "30003") == (status == "undelivered"), "ErrorCode %r" % f)
        want = twilio_signature(TWILIO_TOKEN, r.url, f)
        check(p["headers"].get("x-twilio-signature") == want, "X-Twilio-Signature %r, expected %r" % (
            p["headers"].get("x-twilio-signature"), want))
    wait_for(lambda: m.stats()["dlr_sent"] == 2, 5 * SLOWDOWN, "dlr_sent == 2")


@dialect_test(timeout=40.0)
def vonage_receipts_carry_sig():
    secret = "vonage-secret"
    r = Receiver()
    m = start_mock("vonage", "--dlr-url", r.url, "--dlr-delay-ms", "0", "--webhook-secret", secret)
    ok = accepted_id("vonage", *send_raw(m, "vonage", OK_TO, cid="ref-9")[::2])
    p = r.wait(1, "delivery receipts")[0]
    f = form(p["body"])
    check(f["messageId"] == ok and f["status"] == "delivered" and f["msisdn"] == "84912345677" and f["to"] == "Brand"
          and f["client-ref"] == "ref-9" and f["err-code"] == "0", "receipt %r" % f)
    check(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", f["message-timestamp"]), "message-timestamp %r" % f)
    check(abs(int(f["timestamp"]) - time.time()) < 60 and f["nonce"], "timestamp/nonce %r" % f)
    check(f["sig"] == vonage_sig(secret, f), "sig %r, expected %r" % (f["sig"], vonage_sig(secret, f)))
    # Without the secret: no signature parameters.
    m.control({"webhook_secret": None, "dialect": "vonage"})
    accepted_id("vonage", *send_raw(m, "vonage", UNDELIVERED_TO)[::2])
    f = form(r.wait(2, "delivery receipts")[1]["body"])
    check("sig" not in f and f["status"] == "failed" and f["err-code"] != "0", "unsigned receipt %r" % f)


@dialect_test(timeout=40.0)
def json_reports_in_each_format():
    secret = "generic-secret"
    checks = {
        "generic": lambda doc, mid: doc["message_id"] == mid and doc["status"] == "DELIVRD"
        and doc["to"] == "84912345677" and doc["timestamp"].endswith("Z"),
        "smsbat": lambda doc, mid: doc["messageId"] == mid and doc["deliverystatus"] == "delivered"
        and doc["timestamp"].endswith("Z"),
        "devino": lambda doc, mid: isinstance(doc, list) and doc[0]["messageId"] == mid
        and doc[0]["status"] == "DELIVERED" and doc[0]["errorCode"] == 0 and doc[0]["ts"] > 1e12,
        "agiletelecom": lambda doc, mid: doc["messageId"] == mid and doc["statusCode"] == 3
        and doc["eventType"] == "DELIVERY" and doc["channel"] == "SMS" and doc["numPart"] == 1,
    }
    undelivered = {"generic": ("status", "UNDELIV"), "smsbat": ("deliverystatus", "undeliverable"),
                   "agiletelecom": ("statusCode", 6)}
    for dialect, ok in checks.items():
        r = Receiver(200, b"+OK")
        m = start_mock(dialect, "--dlr-url", r.url, "--dlr-delay-ms", "0", "--webhook-secret", secret)
        mid = accepted_id(dialect, *send_raw(m, dialect, OK_TO)[::2])
        p = r.wait(1, "%s reports" % dialect)[0]
        doc = as_json(p["body"], "%s report" % dialect)
        check(p["headers"]["content-type"] == "application/json", "%s content type %r" % (dialect, p["headers"]))
        check(ok(doc, mid), "%s report %r for %s" % (dialect, doc, mid))
        if dialect == "generic":
            want = hmac.new(secret.encode(), p["body"], hashlib.sha256).hexdigest()
            check(p["headers"].get("x-signature") == want, "X-Signature %r, expected %r" % (
                p["headers"].get("x-signature"), want))
        else:
            check("x-signature" not in p["headers"], "%s report signed with X-Signature" % dialect)
        if dialect in undelivered:
            accepted_id(dialect, *send_raw(m, dialect, UNDELIVERED_TO)[::2])
            doc = as_json(r.wait(2, "%s reports" % dialect)[1]["body"])
            key, value = undelivered[dialect]
            check(doc[key] == value, "%s undelivered report %r" % (dialect, doc))


@dialect_test(timeout=40.0)
def dlr_before_answer_in_another_dialect():
    r = Receiver()
    m = start_mock("devino", "--dlr-url", r.url, "--dlr-delay-ms", "0", "--dlr-before-answer")
    r.gate.clear()  # reports are received but not answered yet
    out = {}
    t = threading.Thread(target=lambda: out.update(answer=send_raw(m, "devino", OK_TO)), daemon=True)
    t.start()
    r.wait(1, "the report before the answer")
    t.join(0.3)
    check("answer" not in out, "the send was answered before its report was")
    r.gate.set()
    t.join(5 * SLOWDOWN)
    check("answer" in out, "no answer after the report")
    mid = accepted_id("devino", *out["answer"][::2])
    check(as_json(r.all()[0]["body"])[0]["messageId"] == mid, "report and answer name different messages")


@dialect_test
def smsc_pushes_no_reports():
    r = Receiver()
    m = start_mock("smsc", "--dlr-url", r.url, "--dlr-delay-ms", "0")
    accepted_id("smsc", *send_raw(m, "smsc", OK_TO)[::2])
    m.wait_log("this dialect pushes no delivery reports (its statuses are polled): --dlr-url is not used",
               5 * SLOWDOWN)
    st = m.stats()
    check(st["dlr_pending"] == 0 and st["dlr_sent"] == 0 and not r.all(), "smsc made reports: %r" % st)


# ---- inbound SMS ----


def inbound(m, doc):
    status, _, raw = mock_request(m, "POST", "/control/inbound", doc, timeout=15 * SLOWDOWN)
    return status, as_json(raw, "inbound answer")


@dialect_test(timeout=40.0)
def inbound_posted_in_each_format():
    msg = {"from": "+84987654321", "to": "+84911111111", "text": "stop please"}
    # Twilio: signed form, answered with TwiML (passed back).
    twiml = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    r = Receiver(200, twiml, "text/xml")
    m = start_mock("twilio", "--inbound-url", r.url)
    accepted_id("twilio", *send_raw(m, "twilio", OK_TO)[::2])  # the AccountSid to use
    status, doc = inbound(m, dict(msg, id="SMinbound1"))
    check(status == 200 and doc == {"status": 200, "body": twiml.decode()}, "twilio inbound answer %r" % doc)
    p = r.all()[0]
    f = form(p["body"])
    check(f["MessageSid"] == "SMinbound1" and f["From"] == msg["from"] and f["To"] == msg["to"]
          and f["Body"] == msg["text"] and f["AccountSid"] == TWILIO_SID, "twilio inbound %r" % f)
    check(p["headers"].get("x-twilio-signature") == twilio_signature(TWILIO_TOKEN, r.url, f),
          "twilio inbound signature")

    # Vonage: form with sig.
    r = Receiver(200, b"")
    m = start_mock("vonage", "--inbound-url", r.url, "--webhook-secret", "vsec")
    status, doc = inbound(m, msg)
    check(status == 200 and doc == {"status": 200, "body": ""}, "vonage inbound answer %r" % doc)
    f = form(r.all()[0]["body"])
    check(f["msisdn"] == "84987654321" and f["to"] == "84911111111" and f["text"] == msg["text"]
          and f["keyword"] == "STOP" and f["type"] == "text" and re.match(r"^[0-9A-F]{16}$", f["messageId"]),
          "vonage inbound %r" % f)
    check(f["sig"] == vonage_sig("vsec", f), "vonage inbound sig")

    # Devino: JSON, digits without '+', ts in milliseconds as a string.
    r = Receiver(200, b"")
    m = start_mock("devino", "--inbound-url", r.url)
    status, doc = inbound(m, msg)
    body = as_json(r.all()[0]["body"])
    check(status == 200 and doc["status"] == 200, "devino inbound answer %r" % doc)
    check(body["from"] == "84987654321" and body["to"] == "84911111111" and body["text"] == msg["text"]
          and body["incomingMessageId"].isdigit() and body["ts"].isdigit(), "devino inbound %r" % body)

    # Agile Telecom: form, answered "+OK".
    r = Receiver(200, b"+OK")
    m = start_mock("agiletelecom", "--inbound-url", r.url)
    status, doc = inbound(m, msg)
    check(status == 200 and doc == {"status": 200, "body": "+OK"}, "agile inbound answer %r" % doc)
    f = form(r.all()[0]["body"])
    check(f["originator"] == "84987654321" and f["destination"] == "84911111111" and f["text"] == msg["text"]
          and re.match(r"^\d{14}$", f["date_time"]), "agile inbound %r" % f)

    # mock: JSON {"message_id","from","to","text","timestamp"}; the receiver's status comes back.
    r = Receiver(422, b"no thanks")
    m = harness.Mock.start("--inbound-url", r.url)
    status, doc = inbound(m, dict(msg, id="in-1"))
    check(status == 200 and doc == {"status": 422, "body": "no thanks"}, "mock inbound answer %r" % doc)
    body = as_json(r.all()[0]["body"])
    check(body["message_id"] == "in-1" and body["from"] == msg["from"] and body["to"] == msg["to"]
          and body["text"] == msg["text"] and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", body["timestamp"]),
          "mock inbound %r" % body)
    check(m.stats()["inbound_sent"] == 1, "inbound_sent %r" % m.stats())


@dialect_test
def inbound_refused_where_there_is_no_webhook():
    r = Receiver()
    for dialect in ("smsbat", "smsc"):
        m = start_mock(dialect, "--inbound-url", r.url)
        status, doc = inbound(m, {"from": "+84987654321", "to": "+84911111111", "text": "hi"})
        check(status == 400 and "no inbound webhook" in doc["error"], "%s inbound: %d %r" % (dialect, status, doc))
    m = harness.Mock.start()
    status, doc = inbound(m, {"from": "+84987654321", "to": "+84911111111", "text": "hi"})
    check(status == 400 and "inbound" in doc["error"], "no --inbound-url: %d %r" % (status, doc))
    m.control({"inbound_url": r.url})
    for bad in ({"from": "+1", "to": "+2"}, {"from": "", "to": "+2", "text": "x"}, {"from": "+1", "to": "+2",
                                                                                    "text": "x", "extra": 1}):
        status, _ = inbound(m, bad)
        check(status == 400, "inbound %r answered %d" % (bad, status))
    check(not r.all(), "refused inbound requests were posted")
    # Nobody listens: 502 with the reason.
    m.control({"inbound_url": "http://%s:%d/in" % (HOST, harness.free_port())})
    status, doc = inbound(m, {"from": "+1", "to": "+2", "text": "x"})
    check(status == 502 and "failed" in doc["error"], "unreachable inbound url: %d %r" % (status, doc))
    check(m.stats()["inbound_failed"] == 1, "inbound_failed %r" % m.stats())


# ---- the adapters read what the mock emits ----

# An event handler that runs one adapter function on what the test hands it
# (the adapters are built into the daemon; the rules sandbox can require them).
ADAPTER_RULES = """
sms.config{ api_keys = { "%s" } }
sms.on("adapter", function(ev)
  local a = require("adapters." .. ev.adapter)
  local cfg = ev.cfg
  cfg.name = "p"
  local out = {}
  if ev.verify then out.verified, out.reason = a.verify(cfg, ev.request) end
  if ev.kind == "status" then out.updates, out.answer = a.parse_status(cfg, ev.request)
  elseif ev.kind == "inbound" then
    if not a.parse_inbound then return { missing = true } end
    out.messages, out.answer = a.parse_inbound(cfg, ev.request)
  elseif ev.kind == "build_poll" then out.request = a.build_poll(cfg, ev.ids)
  elseif ev.kind == "poll" then out.updates, out.reason = a.parse_poll(cfg, ev.ids, ev.response) end
  return out
end)
""" % API_KEY


def adapter_call(d, adapter, kind, cfg, **fields):
    doc = dict(fields, adapter=adapter, kind=kind, cfg=cfg)
    status, _, body, answer = d.request("POST", "/v1/events/adapter", doc, AUTH, timeout=10 * SLOWDOWN)
    check(status in (200, 202) and isinstance(answer, dict), "%s %s: %d %r" % (adapter, kind, status, body[:400]))
    return answer["result"]


def webhook_request(post, url):
    """A captured post as the core hands it to an adapter."""
    ct = post["headers"].get("content-type", "")
    body = post["body"].decode("utf-8")
    return {"method": "POST", "url": url, "path": urllib.parse.urlsplit(url).path, "query": "",
            "headers": post["headers"], "body": body,
            "form": form(post["body"]) if ct.startswith("application/x-www-form-urlencoded") else None}


@dialect_test(timeout=60.0)
def adapters_parse_reports_and_inbound_from_the_mock():
    d = Daemon.start(ADAPTER_RULES)
    cases = {
        "smsbat": ({"api_key": "sk"}, False),
        "devino": ({"api_key": "dk"}, False),
        "agiletelecom": ({"api_key": "ak"}, False),
        "twilio": ({"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "sender": "+15550001111"}, True),
        "vonage": ({"api_key": "vk", "api_secret": "vs", "signature_secret": "vsec"}, True),
    }
    want_status = {"delivered": "delivered", "undelivered": "undelivered"}
    for dialect, (cfg, signed) in cases.items():
        r = Receiver(200, b"+OK")
        m = start_mock(dialect, "--dlr-url", r.url, "--dlr-delay-ms", "0", "--inbound-url", r.url,
                       "--webhook-secret", "vsec")
        ids = {}
        for to, outcome in ((OK_TO, "delivered"), (UNDELIVERED_TO, "undelivered")):
            ids[accepted_id(dialect, *send_raw(m, dialect, to)[::2])] = outcome
        for post in r.wait(2, "%s reports" % dialect):
            res = adapter_call(d, dialect, "status", cfg, request=webhook_request(post, r.url), verify=signed)
            if signed:
                check(res.get("verified") is True, "%s verify refused the mock's report: %r" % (dialect, res))
            ups = res["updates"]
            check(len(ups) == 1 and ups[0]["provider_id"] in ids, "%s updates %r for %r" % (dialect, ups, ids))
            check(ups[0]["status"] == want_status[ids[ups[0]["provider_id"]]], "%s update %r, expected %s" % (
                dialect, ups[0], ids[ups[0]["provider_id"]]))
        if dialect == "smsbat":
            continue  # SMSBat documents no inbound webhook
        n = len(r.all())
        status, doc = inbound(m, {"from": "+84987654321", "to": "+84911111111", "text": "HELP me"})
        check(status == 200, "%s inbound %d %r" % (dialect, status, doc))
        res = adapter_call(d, dialect, "inbound", cfg, request=webhook_request(r.all()[n], r.url), verify=signed)
        if signed:
            check(res.get("verified") is True, "%s verify refused the mock's inbound post: %r" % (dialect, res))
        msgs = res["messages"]
        # Adapters hand numbers over as the provider wrote them (with or without '+'); the core reads
        # them with the numbering plan (test_phone.py).
        check(len(msgs) == 1 and msgs[0]["from"].lstrip("+") == "84987654321"
              and msgs[0]["to"].lstrip("+") == "84911111111"
              and msgs[0]["text"] == "HELP me", "%s inbound parsed as %r" % (dialect, msgs))
    # mock: its parse_inbound reads {"message_id","from","to","text","timestamp"} (when the adapter has one).
    r = Receiver()
    m = harness.Mock.start("--inbound-url", r.url)
    inbound(m, {"from": "+84987654321", "to": "+84911111111", "text": "hi", "id": "in-7"})
    res = adapter_call(d, "mock", "inbound", {"url": "http://x/send"}, request=webhook_request(r.all()[0], r.url))
    if not res.get("missing"):
        msgs = res["messages"]
        check(len(msgs) == 1 and msgs[0]["from"] == "+84987654321" and msgs[0]["text"] == "hi"
              and msgs[0].get("provider_message_id") == "in-7", "mock inbound parsed as %r" % msgs)


@dialect_test(timeout=60.0)
def adapters_poll_the_mock():
    d = Daemon.start(ADAPTER_RULES)
    for dialect, cfg in (("smsbat", {"api_key": "sk"}), ("devino", {"api_key": "dk"}),
                         ("smsc", {"login": "u", "password": "p"})):
        m = start_mock(dialect, "--dlr-delay-ms", POLL_DELAY_MS)
        cfg = dict(cfg, url="http://%s:%d" % (HOST, m.port))
        want = {}
        for to, outcome in ((OK_TO, "delivered"), (UNDELIVERED_TO, "undelivered")):
            cid = "x" + to[-4:] if dialect == "smsc" else None
            pid = accepted_id(dialect, *send_raw(m, dialect, to, cid=cid)[::2])
            if dialect == "smsc":
                pid += ":" + to.lstrip("+")  # the adapter's provider id
            want[pid] = outcome
        batches = [[pid] for pid in want] if dialect == "smsbat" else [list(want)]

        def poll_all():
            got = {}
            for ids in batches:
                req = adapter_call(d, dialect, "build_poll", cfg, ids=ids)["request"]
                u = urllib.parse.urlsplit(req["url"])
                status, headers, raw = mock_request(m, req["method"], u.path + ("?" + u.query if u.query else ""),
                                                    (req.get("body") or "").encode(), req.get("headers"))
                res = adapter_call(d, dialect, "poll", cfg, ids=ids, response={
                    "status": status, "headers": headers, "body": raw.decode()})
                for upd in res.get("updates") or []:
                    got[upd["provider_id"]] = upd["status"]
            return got

        first = poll_all()
        check(first == {pid: "sent" for pid in want}, "%s first poll %r" % (dialect, first))
        final = wait_for(lambda: (lambda g: g if "sent" not in g.values() else None)(poll_all()), 10 * SLOWDOWN,
                         "%s final statuses" % dialect, interval=0.05)
        check(final == want, "%s final poll %r, expected %r" % (dialect, final, want))


if __name__ == "__main__":
    run()
