"""The operators' console over HTTP: its static files and their headers, the
login (admin key → HttpOnly SameSite=Strict session cookie + CSRF token), the
session rules (no CSRF token → 403, tampered or expired or logged-out token →
401), and the read endpoints it renders from (/v1/overview, /v1/search/messages,
/v1/failed, /v1/inbound, /v1/providers, /v1/rules): their answers, bounds and
errors; that no key or provider secret appears in any answer; that a hostile
text comes back as data.

Run: SMSRULES_BIN=build/smsrules python3 tests/e2e/test_console.py [name...]"""
import datetime
import http.client
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOST, SLOWDOWN, Daemon, Mock, check, run, test, wait_for  # noqa: E402

ADMIN = "admin-Secret-4711"
API_KEY = "api-Key-0815"
PROVIDER_KEY = "prov-Credential-99"
PATH_SECRET = "hookpath-Secret-42"
SECRETS = (ADMIN, API_KEY, PROVIDER_KEY, PATH_SECRET)
AUTH = {"Authorization": "Bearer " + API_KEY}
ADMIN_AUTH = {"Authorization": "Bearer " + ADMIN}
XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def rules(mock_url, admin=True, extra=""):
    return """
sms.config{ api_keys = { "%s" }, %s retry_base_ms = 20, retry_cap_ms = 100 }
sms.provider("primary", { adapter = "mock", url = "%s", api_key = "%s", webhook_path_secret = "%s",
                          rate = 50, burst = 5, max_attempts = 1 })
sms.on("ping", function(ev) return { pong = ev.n } end)
sms.on_inbound(function(msg)
  if msg.text == "HELP" then return sms.reply(msg, "How can we help?") end
  error("no handler for " .. msg.text)
end)
%s
""" % (API_KEY, ('admin_key = "%s",' % ADMIN) if admin else "", mock_url, PROVIDER_KEY, PATH_SECRET, extra)


class Session:
    """A logged-in console: the cookie and the CSRF token, as a browser holds them."""

    def __init__(self, d, cookie, csrf):
        self.d, self.cookie, self.csrf = d, cookie, csrf

    def request(self, method, path, body=None, csrf=True, extra=None):
        headers = {"Cookie": "smsrules_session=" + self.cookie}
        if csrf and method != "GET":
            headers["X-CSRF-Token"] = self.csrf
        headers.update(extra or {})
        return self.d.request(method, path, body=body, headers=headers)


def login(d, key=ADMIN):
    status, hdrs, raw, doc = d.request("POST", "/v1/console/login", body={"key": key})
    check(status == 200, "login: %d %r" % (status, raw[:200]))
    cookie = hdrs.get("set-cookie", "")
    m = re.match(r"smsrules_session=([^;]+); (.*)$", cookie)
    check(m, "no session cookie: %r" % cookie)
    attrs = [a.strip() for a in m.group(2).split(";")]
    for want in ("HttpOnly", "SameSite=Strict", "Path=/v1"):
        check(want in attrs, "cookie without %s: %r" % (want, cookie))
    check(re.fullmatch(r"[0-9a-f]{64}", doc["csrf_token"]), "csrf token %r" % doc)
    return Session(d, m.group(1), doc["csrf_token"])


def send(d, to, text="hello", tags=None, headers=AUTH):
    body = {"to": to, "text": text}
    if tags:
        body["tags"] = tags
    status, _, raw, doc = d.request("POST", "/v1/messages", body=body, headers=headers)
    check(status == 202, "send: %d %r" % (status, raw[:200]))
    return doc["id"]


def get(d, mid):
    status, _, _, doc = d.request("GET", "/v1/messages/" + mid, headers=AUTH)
    check(status == 200, "GET message %d" % status)
    return doc


def start(admin=True, extra="", env=None, mock_args=()):
    mock = Mock.start(*mock_args)
    return mock, Daemon.start(rules(mock.url, admin, extra), env=env)


@test(timeout=30)
def static_files_are_served_with_strict_headers():
    mock, d = start()
    for path, ctype in (("/console", "text/html"), ("/console/app.js", "text/javascript"),
                        ("/console/style.css", "text/css")):
        status, hdrs, body, _ = d.request("GET", path)
        check(status == 200 and hdrs["content-type"].startswith(ctype), "%s: %d %r" % (path, status, hdrs))
        csp = hdrs.get("content-security-policy", "")
        check("default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
              and "frame-ancestors 'none'" in csp, "%s: CSP %r" % (path, csp))
        check(hdrs.get("x-content-type-options") == "nosniff" and hdrs.get("x-frame-options") == "DENY",
              "%s: headers %r" % (path, hdrs))
        check("cache-control" in hdrs, "%s: no Cache-Control" % path)
    _, _, page, _ = d.request("GET", "/console")
    page = page.decode()
    # Every script is a file of ours: no inline script, nothing from another origin.
    check(re.findall(r"<script(?![^>]*\ssrc=\"/console/)", page) == [], "inline script in the page")
    check("http://" not in page and "https://" not in page, "the page refers to another origin")
    status, _, _, doc = d.request("GET", "/console/nothing.js")
    check(status == 404 and doc["error"]["code"] == "not_found", "missing file: %d" % status)
    d.stop()
    mock.stop()


@test(timeout=30)
def login_trades_the_admin_key_for_a_session_and_never_echoes_it():
    mock, d = start()
    status, _, _, doc = d.request("POST", "/v1/console/login", body={"key": "wrong"})
    check(status == 401 and doc["error"]["code"] == "unauthorized", "wrong key: %d %r" % (status, doc))
    status, _, _, doc = d.request("POST", "/v1/console/login", body={"key": API_KEY})
    check(status == 401, "an API key is no admin key: %d" % status)
    status, _, _, doc = d.request("POST", "/v1/console/login", body=b"key=x")
    check(status == 400 and doc["error"]["code"] == "invalid_json", "form body: %d %r" % (status, doc))
    s = login(d)
    check(ADMIN not in s.cookie and ADMIN not in s.csrf, "the key is in the cookie or the token")
    status, _, _, doc = s.request("GET", "/v1/console/session")
    check(status == 200 and doc["csrf_token"] == s.csrf, "session: %d %r" % (status, doc))
    status, _, _, doc = d.request("GET", "/v1/console/session")
    check(status == 200 and doc == {"logged_in": False}, "session without a cookie: %d %r" % (status, doc))
    d.stop()
    mock.stop()


@test(timeout=30)
def without_an_admin_key_the_console_is_off():
    mock, d = start(admin=False)
    status, _, _, doc = d.request("POST", "/v1/console/login", body={"key": "anything"})
    check(status == 403 and doc["error"]["code"] == "admin_disabled", "login: %d %r" % (status, doc))
    status, _, _, doc = d.request("GET", "/v1/overview", headers=AUTH)
    check(status == 403 and doc["error"]["code"] == "admin_disabled", "overview: %d %r" % (status, doc))
    d.stop()
    mock.stop()


@test(timeout=30)
def a_cookie_alone_cannot_change_anything():
    mock, d = start()
    s = login(d)
    body = {"to": "+84912345678", "text": "hi"}
    for csrf in (None, "0" * 64, s.csrf[:-1]):
        extra = {"X-CSRF-Token": csrf} if csrf else {}
        status, _, _, doc = s.request("POST", "/v1/messages", body=body, csrf=False, extra=extra)
        check(status == 403 and doc["error"]["code"] == "csrf_token_invalid", "csrf %r: %d %r" % (csrf, status, doc))
    # A forged cross-site form post: a cookie, a form body, no token.
    status, _, _, doc = s.request("POST", "/v1/admin/reload", body=b"x=1", csrf=False,
                                  extra={"Content-Type": "application/x-www-form-urlencoded",
                                         "Origin": "http://evil.example"})
    check(status == 403, "forged reload: %d %r" % (status, doc))
    # Even with the token, a request another origin's page makes is refused.
    status, _, _, doc = s.request("POST", "/v1/messages", body=body, extra={"Origin": "http://evil.example"})
    check(status == 403 and doc["error"]["code"] == "cross_origin", "cross-origin with token: %d %r" % (status, doc))
    status, _, _, doc = s.request("POST", "/v1/console/logout", csrf=False)
    check(status == 403, "logout without its token: %d" % status)
    # Nothing was accepted by the refused requests.
    status, _, _, doc = d.request("GET", "/v1/search/messages", headers=ADMIN_AUTH)
    check(status == 200 and doc["messages"] == [], "refused requests stored messages: %r" % doc)
    # With the token it is an ordinary API call (from this origin, or without an Origin header).
    status, _, _, doc = s.request("POST", "/v1/messages", body=body,
                                  extra={"Origin": "http://%s:%d" % (HOST, d.port), "Host": "%s:%d" % (HOST, d.port)})
    check(status == 202 and doc["status"] == "queued", "with the token: %d %r" % (status, doc))
    status, _, _, doc = s.request("POST", "/v1/events/ping", body={"n": 7})
    check(status == 200 and doc["result"] == {"pong": 7}, "event: %d %r" % (status, doc))
    d.stop()
    mock.stop()


def tampered(cookie):
    exp, sid, mac = cookie.split(".")
    later = str(int(exp) + 3600)
    flip = lambda s: s[:-1] + ("0" if s[-1] != "0" else "1")  # noqa: E731
    return [".".join((later, sid, mac)), ".".join((exp, flip(sid), mac)), ".".join((exp, sid, flip(mac))),
            ".".join((exp, sid)), "", "x" * 200, cookie + "0"]


@test(timeout=30)
def tampered_and_logged_out_tokens_are_refused():
    mock, d = start()
    s = login(d)
    for bad in tampered(s.cookie):
        status, _, _, doc = Session(d, bad, s.csrf).request("GET", "/v1/overview")
        check(status == 401 and doc["error"]["code"] == "session_invalid", "token %r: %d %r" % (bad, status, doc))
    status, hdrs, _, _ = s.request("POST", "/v1/console/logout")
    check(status == 200 and "Max-Age=0" in hdrs.get("set-cookie", ""), "logout: %d %r" % (status, hdrs))
    status, _, _, _ = s.request("GET", "/v1/overview")
    check(status == 401, "a logged-out session still works: %d" % status)
    # A session of a daemon started before: another secret, refused.
    s2 = login(d)
    d.stop()
    d.restart()
    status, _, _, _ = s2.request("GET", "/v1/overview")
    check(status == 401, "a session from before the restart still works: %d" % status)
    d.stop()
    mock.stop()


@test(timeout=40)
def an_expired_session_is_refused():
    mock, d = start(env={"SMSRULES_CONSOLE_SESSION_S": "1"})
    s = login(d)
    status, _, _, _ = s.request("GET", "/v1/overview")
    check(status in (200, 401), "fresh session: %d" % status)
    wait_for(lambda: s.request("GET", "/v1/overview")[0] == 401, 10 * SLOWDOWN, "the session to expire")
    exp = int(s.cookie.split(".")[0])
    check(time.time() >= exp, "refused before its expiry %d" % exp)
    d.stop()
    mock.stop()


@test(timeout=30)
def read_endpoints_need_the_admin_key_or_a_session():
    mock, d = start()
    paths = ["/v1/overview", "/v1/search/messages", "/v1/failed", "/v1/inbound", "/v1/providers", "/v1/rules"]
    for p in paths:
        for headers in ({}, AUTH, {"Authorization": "Bearer nope"}):
            status, _, _, doc = d.request("GET", p, headers=headers)
            check(status == 401 and doc["error"]["code"] == "unauthorized", "%s %r: %d" % (p, headers, status))
        status, _, _, doc = d.request("GET", p, headers=ADMIN_AUTH)
        check(status == 200 and isinstance(doc, dict), "%s with the admin key: %d" % (p, status))
    d.stop()
    mock.stop()


@test(timeout=60)
def search_filters_pages_and_bounds():
    mock, d = start(mock_args=("--latency-ms", 0))
    s = login(d)
    ids_a = [send(d, "+8491234%04d" % (i + 10), "a%d" % i, tags={"shop": "north"}) for i in range(7)]
    # since/until below split the two groups at a creation time (ms): the second group starts in a
    # later millisecond than the first ends, however fast the store commits.
    last_a = datetime.datetime.fromisoformat(get(d, ids_a[-1])["created_at"].replace("Z", "+00:00"))
    wait_for(lambda: time.time() > last_a.timestamp() + 0.002, 5 * SLOWDOWN, "the clock past the first group")
    ids_b = [send(d, "+4915112%04d" % (i + 10), "b%d" % i) for i in range(3)]
    for mid in ids_a + ids_b:
        wait_for(lambda: get(d, mid)["status"] == "sent", 10 * SLOWDOWN, "message %s sent" % mid)

    def search(query):
        status, _, _, doc = s.request("GET", "/v1/search/messages?" + query)
        check(status == 200, "search %s: %d %r" % (query, status, doc))
        return doc

    doc = search("")
    check([m["id"] for m in doc["messages"]] == list(reversed(ids_a + ids_b)), "not newest first: %r" % doc)
    check(doc["next"] is None, "a complete answer has no next")
    check([m["id"] for m in search("to=%2B49151")["messages"]] == list(reversed(ids_b)), "to filter")
    check([m["id"] for m in search("tag=shop%3Dnorth")["messages"]] == list(reversed(ids_a)), "tag filter")
    check(search("tag=shop%3Dsouth")["messages"] == [], "tag value filter")
    check(len(search("status=sent&provider=primary")["messages"]) == 10, "status + provider")
    check(search("status=failed")["messages"] == [], "status filter")
    check([m["id"] for m in search("id=" + ids_a[3])["messages"]] == [ids_a[3]], "id")
    created = get(d, ids_b[0])["created_at"]
    check([m["id"] for m in search("since=" + created.replace("+", "%2B"))["messages"]] == list(reversed(ids_b)),
          "since")
    check([m["id"] for m in search("until=" + created)["messages"]] == list(reversed(ids_a)), "until")
    # Pages of 3, newest first, by cursor, and the same again through the status index.
    for base in ("", "status=sent&"):
        seen, cursor = [], None
        while True:
            doc = search(base + "limit=3" + ("&cursor=" + cursor if cursor else ""))
            check(len(doc["messages"]) <= 3, "page larger than its limit")
            seen += [m["id"] for m in doc["messages"]]
            cursor = doc["next"]
            if not cursor:
                break
        check(seen == list(reversed(ids_a + ids_b)), "paging %r: %r" % (base, seen))
    for bad in ("limit=0", "limit=501", "limit=x", "cursor=nope", "status=lost", "since=yesterday", "to=%zz"):
        status, _, _, doc = s.request("GET", "/v1/search/messages?" + bad)
        check(status == 400 and doc["error"]["code"] == "invalid_value", "%s: %d %r" % (bad, status, doc))
    d.stop()
    mock.stop()


@test(timeout=30)
def hostile_text_comes_back_as_data():
    mock, d = start()
    s = login(d)
    mid = send(d, "+84912345678", XSS)
    status, hdrs, raw, doc = s.request("GET", "/v1/search/messages?id=" + mid)
    check(status == 200 and hdrs["content-type"].startswith("application/json"), "search: %d %r" % (status, hdrs))
    check(doc["messages"][0]["text"] == XSS, "text changed: %r" % doc["messages"][0]["text"])
    check(b"<script>" not in raw or raw.count(b"<script>") == 1, "text duplicated")
    status, hdrs, raw, doc = s.request("GET", "/v1/messages/" + mid)
    check(status == 200 and doc["text"] == XSS and hdrs["content-type"].startswith("application/json"), "get")
    d.stop()
    mock.stop()


@test(timeout=60)
def failed_groups_and_retry_with_a_session():
    mock, d = start(mock_args=("--latency-ms", 0))
    s = login(d)
    mock.control({"reject": 100})
    ids = [send(d, "+8491200%04d" % (i + 10)) for i in range(4)]
    for mid in ids:
        wait_for(lambda: get(d, mid)["status"] == "failed", 10 * SLOWDOWN, "message %s failed" % mid)
    status, _, _, doc = s.request("GET", "/v1/failed")
    check(status == 200 and len(doc["groups"]) == 1, "groups: %d %r" % (status, doc))
    g = doc["groups"][0]
    check(g["provider"] == "primary" and g["count"] == 4 and sorted(g["ids"]) == sorted(ids), "group %r" % g)
    mock.control({"reject": 0})
    for mid in g["ids"]:
        status, _, _, doc = s.request("POST", "/v1/messages/%s/retry" % mid)
        check(status == 202 and doc["status"] == "queued", "retry: %d %r" % (status, doc))
    for mid in ids:
        wait_for(lambda: get(d, mid)["status"] == "sent", 10 * SLOWDOWN, "retried message %s sent" % mid)
    got = mock.stats()["by_recipient"]
    check(all(get(d, mid)["to"] in got for mid in ids), "the mock did not get the retried messages: %r" % got)
    status, _, _, doc = s.request("GET", "/v1/failed")
    check(doc["groups"] == [], "failed groups after the retry: %r" % doc)
    d.stop()
    mock.stop()


def post_inbound(d, text, from_="+84911112222", msg_id=None):
    body = {"message_id": msg_id or "in-%f" % time.time(), "from": from_, "to": "+84900000000", "text": text,
            "timestamp": "2026-11-23T10:00:00Z"}
    status, _, raw, _ = d.request("POST", "/hooks/primary/%s/inbound" % PATH_SECRET, body=body)
    check(status == 200, "inbound webhook: %d %r" % (status, raw[:200]))


@test(timeout=60)
def inbound_list_shows_outcomes_and_replies():
    mock, d = start()
    s = login(d)
    post_inbound(d, "HELP", msg_id="in-1")
    post_inbound(d, "WHAT", from_="+84933334444", msg_id="in-2")

    def listed():
        status, _, _, doc = s.request("GET", "/v1/inbound")
        check(status == 200, "inbound: %d" % status)
        states = [m["state"] for m in doc["inbound"]]
        return doc if states == ["error", "handled"] else None

    doc = wait_for(listed, 10 * SLOWDOWN, "both handlers to finish")
    bad, good = doc["inbound"]
    check(bad["text"] == "WHAT" and "no handler for WHAT" in bad["error"], "error outcome %r" % bad)
    check(good["text"] == "HELP" and len(good["replies"]) == 1, "handled %r" % good)
    check(get(d, good["replies"][0])["text"] == "How can we help?", "the reply")
    status, _, _, doc = s.request("GET", "/v1/inbound?from=%2B8493")
    check([m["text"] for m in doc["inbound"]] == ["WHAT"], "from filter %r" % doc)
    status, _, _, doc = s.request("GET", "/v1/inbound?limit=1")
    check(len(doc["inbound"]) == 1 and doc["next"], "page of 1 %r" % doc)
    status, _, _, doc2 = s.request("GET", "/v1/inbound?limit=1&cursor=" + doc["next"])
    check([m["text"] for m in doc2["inbound"]] == ["HELP"], "second page %r" % doc2)
    d.stop()
    mock.stop()


@test(timeout=60)
def overview_providers_and_rules_show_the_daemon_without_secrets():
    mock, d = start()
    s = login(d)
    # The mock reports each message delivered, to the provider's webhook.
    mock.control({"dlr_url": "http://%s:%d/hooks/primary/%s/status" % (HOST, d.port, PATH_SECRET)})
    ids = [send(d, "+8491300%04d" % (i + 10)) for i in range(5)]
    for mid in ids:
        wait_for(lambda: get(d, mid)["status"] == "delivered", 10 * SLOWDOWN, "message %s delivered" % mid)

    def counted():
        doc = s.request("GET", "/v1/overview")[3]
        total = lambda k: sum(m[k] for m in doc["minutes"])  # noqa: E731
        return doc if total("accepted") >= 5 and total("sent") >= 5 and total("delivered") >= 5 else None

    doc = wait_for(counted, 15 * SLOWDOWN, "the overview to count 5 accepted, sent and delivered")
    check(sum(m["webhooks"] for m in doc["minutes"]) >= 5, "webhooks not counted")
    check(len(doc["minutes"]) == 30 and doc["queue"]["depth"] == 0, "overview %r" % doc["queue"])
    p = doc["providers"][0]
    check(p["name"] == "primary" and p["circuit"] == "closed" and p["in_flight"] == 0 and p["attempts"] >= 5,
          "provider %r" % p)
    check(doc["rules"]["path"].endswith("rules.lua") and doc["rules"]["load_ms"] > 0, "rules %r" % doc["rules"])
    doc = s.request("GET", "/v1/providers")[3]
    p = doc["providers"][0]
    check(p["rate_per_s"] == 50 and p["burst"] == 5 and p["max_attempts"] == 1 and p["circuit"] == "closed", repr(p))
    # The rate in use: messages the provider's GCRA counts ahead of now, at most its burst + 1.
    check(0 <= p["rate_used"] <= p["burst"] + 1, "rate_used %r" % p)
    doc = s.request("GET", "/v1/rules")[3]
    check(doc["events"] == ["ping"] and doc["on_inbound"] is True and doc["providers"][0]["adapter"] == "mock",
          "rules %r" % {k: v for k, v in doc.items() if k != "source"})
    check('sms.on("ping"' in doc["source"] and "[redacted]" in doc["source"], "source %r" % doc["source"][:300])
    # No secret in any answer the console can get, nor in their headers.
    answers = []
    for p in ("/v1/overview", "/v1/search/messages", "/v1/failed", "/v1/inbound", "/v1/providers", "/v1/rules",
              "/v1/console/session", "/v1/stats/routes", "/v1/messages/" + ids[0], "/console", "/console/app.js"):
        status, hdrs, raw, _ = s.request("GET", p)
        check(status == 200, "%s: %d" % (p, status))
        answers.append(raw.decode("utf-8", "replace") + json.dumps(hdrs))
    for secret in SECRETS:
        leaks = [a[:80] for a in answers if secret in a]
        check(not leaks, "%s leaks in %r" % (secret, leaks))
    d.stop()
    mock.stop()


@test(timeout=60)
def reload_from_the_console_shows_file_and_line():
    mock, d = start()
    s = login(d)
    with open(d.rules_path) as f:
        good = f.read()
    with open(d.rules_path, "w") as f:
        f.write(good + "\nsms.on(\"broken\", function(ev)\n  return nope(\nend)\n")
    status, _, _, doc = s.request("GET", "/v1/rules")
    check(doc["changed_since_load"] is True, "the change is not noticed")
    # The source shown is the one running, not the file's new text.
    check('sms.on("ping"' in doc["source"] and "broken" not in doc["source"], "source %r" % doc["source"][-200:])
    status, _, _, doc = s.request("POST", "/v1/admin/reload")
    check(status == 422 and doc["error"]["code"] == "rules_error" and re.search(r"rules\.lua:\d+:", doc["error"]["message"]),
          "reload: %d %r" % (status, doc))
    status, _, _, doc = s.request("POST", "/v1/admin/reload", csrf=False)
    check(status == 403, "reload without a token: %d" % status)
    with open(d.rules_path, "w") as f:
        f.write(good + '\nsms.on("added", function(ev) return 1 end)\n')
    status, _, _, doc = s.request("POST", "/v1/admin/reload")
    check(status == 200 and doc["status"] == "reloaded", "reload: %d %r" % (status, doc))
    check(s.request("GET", "/v1/rules")[3]["events"] == ["added", "ping"], "events after reload")
    status, _, _, doc = d.request("POST", "/v1/admin/reload", headers=ADMIN_AUTH)
    check(status == 200, "the admin key still reloads: %d" % status)
    d.stop()
    mock.stop()


@test(timeout=30)
def login_is_throttled_after_many_failures():
    mock, d = start()
    codes = [d.request("POST", "/v1/console/login", body={"key": "guess%d" % i})[0] for i in range(12)]
    check(codes[:10] == [401] * 10 and codes[10:] == [429, 429], "codes %r" % codes)
    status, hdrs, _, doc = d.request("POST", "/v1/console/login", body={"key": ADMIN})
    check(status == 429 and hdrs.get("retry-after") == "60", "even the right key waits: %d" % status)
    d.stop()
    mock.stop()


if __name__ == "__main__":
    run()
