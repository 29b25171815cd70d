"""End-to-end tests of rules handlers: triggers (POST /v1/events/{name}),
sms.send, sms.kv, opt-outs, the sandbox at run time, the instruction budget
and the memory cap, and all-or-nothing effects."""
import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOST, SLOWDOWN, Daemon, Mock, check, make_temp_dir, run, run_cli, test, wait_for  # noqa: E402


def write_rules(text):
    path = os.path.join(make_temp_dir(), "rules.lua")
    with open(path, "w") as f:
        f.write(text)
    return path

KEY = "k"
AUTH = {"Authorization": "Bearer " + KEY}


def fire(d, name, body=None, timeout=10):
    return d.request("POST", "/v1/events/" + name, body=body if body is not None else {}, headers=AUTH,
                     timeout=timeout * SLOWDOWN)


def get(d, mid):
    status, _, _, doc = d.request("GET", "/v1/messages/" + mid, headers=AUTH)
    check(status == 200, "GET %s: %d" % (mid, status))
    return doc


RULES = """
sms.config{ api_keys = { "k" }, default_country = "84", instruction_budget = 200000,
            memory_limit = 32 * 1024 * 1024 }
sms.provider("mock", { adapter = "mock", url = "%(url)s" })

sms.template("order_created", "Order #{{order.number}} confirmed. Total {{ order.total }}.")
sms.on("order.created", function(ev)
  return sms.send{ to = ev.phone, template = "order_created", vars = ev,
                   idempotency_key = "order-" .. ev.order.number }
end)
sms.on("render", function(ev)
  local text, err = sms.render("order_created", ev)
  local id, send_err = sms.send{ to = "+84912345678", template = "order_created", vars = ev }
  return { text = text, err = err, id = id, send_err = send_err }
end)
sms.on("count", function(ev)
  return { n = sms.kv.incr("counter:" .. ev.name, 1) }
end)
sms.on("remember", function(ev)
  sms.kv.set("note", ev.note, ev.ttl)
  if sms.kv.get("note") ~= ev.note then error("a handler must read its own write") end
end)
sms.on("recall", function(ev)
  local v = sms.kv.get("note")
  return sms.send{ to = "+84912345678", text = "note=" .. tostring(v) }
end)
sms.on("stop", function(ev)
  sms.optout(ev.phone)
  if not sms.is_optout(ev.phone) then error("opt-out not visible in the same handler") end
end)
sms.on("send_to", function(ev) return sms.send{ to = ev.phone, text = "hello" } end)
sms.on("half_then_fail", function(ev)
  sms.kv.set("half", "written")
  sms.send{ to = "+84912345678", text = "must not exist" }
  error("failing after effects")
end)
sms.on("bad_send", function(ev)
  local id, err = sms.send{ to = "not a number", text = "x" }
  return { id = id, err = err }
end)
sms.on("spin", function() while true do end end)
sms.on("bare_yield", function() coroutine.yield() return "never" end)
sms.on("spin_pcall", function() while true do pcall(function() while true do end end) end end)
sms.on("big", function() local s = string.rep("x", 16 << 20) return #(s .. s .. s) end)
sms.on("escape", function(ev)
  return {
    os_execute = (os.execute == nil), io = (io == nil), load = (load == nil), loadfile = (loadfile == nil),
    dofile = (dofile == nil), debug = (debug == nil), dump = (string.dump == nil),
    require_os_execute = (require("os").execute == nil),
    require_io = not pcall(require, "io"), require_debug = not pcall(require, "debug"),
    os_time = type(os.time()) == "number",
  }
end)
sms.on("segments", function(ev)
  local n, enc = sms.segments(ev.text)
  return { n = n, enc = enc }
end)
"""


def start(mock, extra=""):
    return Daemon.start(RULES % {"url": mock.url} + extra)


@test(timeout=60)
def event_renders_and_provider_receives_exact_text():
    mock = Mock.start()
    d = start(mock)
    status, _, _, doc = fire(d, "order.created", {"phone": "0912345678", "order": {"number": 42, "total": "12.50"}})
    check(status == 202 and len(doc["ids"]) == 1, "event: %d %r" % (status, doc))
    mid = doc["ids"][0]
    m = wait_for(lambda: (lambda m: m if m["status"] == "sent" else None)(get(d, mid)), 10 * SLOWDOWN, "sent")
    check(m["text"] == "Order #42 confirmed. Total 12.50." and m["to"] == "+84912345678", repr(m))
    check(mock.stats()["by_recipient"] == {"+84912345678": 1}, "mock: %r" % mock.stats()["by_recipient"])
    # The same order again: the idempotency key returns the same message, no second send.
    status, _, _, again = fire(d, "order.created", {"phone": "0912345678", "order": {"number": 42, "total": "12.50"}})
    check(again["ids"] == [mid], "replayed event: %r" % again)
    d.stop()
    mock.stop()


@test
def templates_render_and_name_missing_variables():
    mock = Mock.start()
    d = start(mock)
    status, _, _, doc = fire(d, "render", {"order": {"number": 7, "total": 9.5}})
    check(doc["result"]["text"] == "Order #7 confirmed. Total 9.5." and doc["result"]["id"], "render: %r" % doc)
    status, _, _, doc = fire(d, "render", {"order": {"number": 7}})
    r = doc["result"]
    check(r["err"] == "template_error: missing variable 'order.total'" and "id" not in r and
          r["send_err"] == "template_error: missing variable 'order.total'", "missing variable: %r" % r)
    # POST /v1/messages takes template + vars too.
    status, _, _, doc = d.request("POST", "/v1/messages", headers=AUTH, body={
        "to": "+84912345678", "template": "order_created", "vars": {"order": {"number": "A1", "total": "3.00"}}})
    check(status == 202, "POST with template: %d %r" % (status, doc))
    check(get(d, doc["id"])["text"] == "Order #A1 confirmed. Total 3.00.", "rendered text stored")
    status, _, _, doc = d.request("POST", "/v1/messages", headers=AUTH, body={
        "to": "+84912345678", "template": "order_created", "vars": {"order": {"number": 1}}})
    check(status == 422 and doc["error"]["code"] == "template_error" and "order.total" in doc["error"]["message"],
          "missing variable over HTTP: %d %r" % (status, doc))
    status, _, _, doc = d.request("POST", "/v1/messages", headers=AUTH, body={"to": "+84912345678", "template": "nope"})
    check(status == 422 and doc["error"]["code"] == "unknown_template", "unknown template: %d %r" % (status, doc))
    d.stop()
    mock.stop()


@test
def template_syntax_checked_at_load():
    rc, out, err = run_cli(["check", write_rules('sms.config{}\nsms.template("t", "Hi {{name")\n')])
    check(rc == 1 and "rules.lua:2:" in err and "unclosed" in err, "check: %d %r" % (rc, err))


@test
def config_keys_are_checked_at_load_with_file_and_line():
    cases = [
        ("sms.config{ validity = 60 }\nsms.config{ valdity = 60 }\n", "rules.lua:2:", "unknown key 'valdity'"),
        ("sms.config{ max_parts = 256 }\n", "rules.lua:1:", "'max_parts' must be an integer from 1 to 255"),
        ("sms.config{ map_size = 1.5 }\n", "rules.lua:1:", "'map_size' must be an integer from 1048576 to"),
        ("\nsms.config{ listen = 8080 }\n", "rules.lua:2:", "'listen' must be a string"),
        ("sms.config{ log_level = 'loud' }\n", "rules.lua:1:", "log_level must be debug, info, warn or error"),
    ]
    for text, where, what in cases:
        rc, out, err = run_cli(["check", write_rules(text)])
        check(rc == 1 and where in err and what in err, "%r: %d %r" % (text, rc, err))
    rc, out, err = run_cli(["check", write_rules("sms.config{ max_parts = 255, validity = 1, store_reserve = 0 }\n")])
    check(rc == 0, "the limits themselves are accepted: %d %r" % (rc, err))


@test
def unknown_event_and_rule_error():
    mock = Mock.start()
    d = start(mock)
    status, _, _, doc = fire(d, "nope")
    check(status == 404 and doc["error"]["code"] == "unknown_event", "unknown: %d %r" % (status, doc))
    status, _, _, doc = fire(d, "order.created", {"phone": "0912345678"})  # ev.order is nil
    check(status == 500 and doc["error"]["code"] == "rule_error", "rule error: %d %r" % (status, doc))
    check("rules.lua:9:" in doc["error"]["message"] and "traceback" not in doc["error"]["message"],
          "file:line, no stack: %r" % doc["error"]["message"])
    logged = [x for x in d.log_lines() if x.get("msg") == "rule error"]
    check(logged and "rules.lua:9:" in logged[-1]["error"] and "traceback" in logged[-1]["traceback"],
          "the log has file:line and the traceback: %r" % logged[-1:])
    status, _, _, doc = fire(d, "bare_yield")
    check(status == 500 and doc["error"]["code"] == "rule_error" and "may not yield" in doc["error"]["message"],
          "a bare coroutine.yield must not hang the handler: %d %r" % (status, doc))
    status, _, _, doc = fire(d, "count", {"name": "x" * 70000})
    check(status == 413 and doc["error"]["code"] == "event_too_large", "event body over 64 KiB: %d %r" % (status, doc))
    status, _, _, doc = d.request("POST", "/v1/events/order.created", body=b"{bad", headers=AUTH)
    check(status == 400 and doc["error"]["code"] == "invalid_json", "bad body: %d" % status)
    status, _, _, doc = d.request("POST", "/v1/events/order.created", body={})
    check(status == 401, "events need the API key: %d" % status)
    d.stop()
    mock.stop()


@test(timeout=60)
def budget_and_memory_cap_stop_handlers_and_the_daemon_keeps_serving():
    mock = Mock.start()
    d = start(mock)
    for name, code in (("spin", "rule_timeout"), ("spin_pcall", "rule_timeout"), ("big", "rule_memory")):
        t0 = time.monotonic()
        status, _, _, doc = fire(d, name, timeout=30)
        check(status == 500 and doc["error"]["code"] == code, "%s: %d %r" % (name, status, doc))
        check(time.monotonic() - t0 < 10 * SLOWDOWN, "%s took %.1fs" % (name, time.monotonic() - t0))
        status, _, _, doc = fire(d, "count", {"name": "after-" + name})
        check(status == 200, "the next request after %s: %d %r" % (name, status, doc))
    check(d.request("GET", "/healthz")[0] == 200, "healthz")
    d.stop()
    mock.stop()


@test(timeout=60)
def effects_are_all_or_nothing():
    mock = Mock.start()
    d = start(mock)
    status, _, _, doc = fire(d, "half_then_fail")
    check(status == 500 and doc["error"]["code"] == "rule_error", "%d %r" % (status, doc))
    status, _, _, doc = d.request("GET", "/v1/messages?status=queued", headers=AUTH)
    check(doc["messages"] == [], "a failed handler's message was stored")
    check(mock.stats()["received"] == 0, "a failed handler's message was sent")
    status, _, _, doc = fire(d, "recall")
    check(status == 202, "recall %d" % status)
    check(get(d, doc["ids"][0])["text"] == "note=nil", "a failed handler's kv write was stored")
    d.stop()
    mock.stop()


@test(timeout=60)
def kv_is_durable_and_counts_under_concurrency():
    mock = Mock.start()
    d = start(mock)
    results = []

    def worker():
        c = http.client.HTTPConnection(HOST, d.port, timeout=20 * SLOWDOWN)
        for _ in range(25):
            c.request("POST", "/v1/events/count", body=json.dumps({"name": "c"}), headers=AUTH)
            r = c.getresponse()
            r.read()
            results.append(r.status)
        c.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(results.count(200) == 200, "statuses %r" % sorted(set(results)))
    status, _, _, doc = fire(d, "remember", {"note": "kept"})
    check(status == 200, "remember %d %r" % (status, doc))
    d.stop()
    d.restart()
    status, _, _, doc = fire(d, "recall")
    check(get(d, doc["ids"][0])["text"] == "note=kept", "kv after restart")
    # 200 increments, none lost: the next one is 201.
    status, _, _, doc = fire(d, "count", {"name": "c"})
    check(status == 200 and doc["result"] == {"n": 201}, "count after 200 concurrent increments: %r" % doc)
    status, _, _, doc = fire(d, "remember", {"note": "short", "ttl": 1})
    wait_for(lambda: (lambda doc: get(d, doc["ids"][0])["text"] == "note=nil")(fire(d, "recall")[3]), 10 * SLOWDOWN,
             "the note to expire after its ttl", interval=0.3)
    d.stop()
    mock.stop()


@test(timeout=60)
def optout_in_a_handler_rejects_later_sends():
    mock = Mock.start()
    d = start(mock)
    status, _, _, doc = fire(d, "stop", {"phone": "0912000111"})
    check(status == 200, "stop: %d %r" % (status, doc))
    status, _, _, doc = fire(d, "send_to", {"phone": "+84912000111"})
    mid = doc["ids"][0]
    m = wait_for(lambda: (lambda m: m if m["status"] == "rejected" else None)(get(d, mid)), 10 * SLOWDOWN,
                 "the send to an opted-out number to be rejected")
    check("opted out" in m["error"], repr(m))
    check(mock.stats()["received"] == 0, "an opted-out number received a message")
    status, _, _, doc = fire(d, "send_to", {"phone": "+84912000222"})
    wait_for(lambda: get(d, doc["ids"][0])["status"] == "sent", 10 * SLOWDOWN, "other numbers still get messages")
    d.stop()
    mock.stop()


@test
def sandbox_sealed_at_run_time_and_send_errors_returned():
    mock = Mock.start()
    d = start(mock)
    status, _, _, doc = fire(d, "escape")
    check(status == 200 and doc["result"] and all(doc["result"].values()), "escape: %d %r" % (status, doc))
    check(len(doc["result"]) == 11, repr(doc["result"]))
    status, _, _, doc = fire(d, "segments", {"text": "Привет"})
    check(doc["result"] == {"n": 1, "enc": "ucs2"}, "segments %r" % doc)
    status, _, _, doc = fire(d, "bad_send")
    check(status == 200 and "id" not in doc["result"] and doc["result"]["err"].startswith("invalid_phone:"),
          "a refused send is a return value, not an error: %d %r" % (status, doc))
    d.stop()
    mock.stop()


if __name__ == "__main__":
    run()
