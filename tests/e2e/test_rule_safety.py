"""Hardening (#10): no rule and no request can freeze, crash or poison the daemon.

Every test starts the real daemon (or check/test), triggers a bad rule or
request, and asserts that /healthz answers throughout, the bad invocation is
stopped with file:line in the log, the next normal request is served, and a
restart on the same data starts cleanly. Limits are small (time_limit_ms,
instruction_budget) so the tests are fast."""
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOWDOWN, Daemon, Mock, check, get_message, make_temp_dir, run, run_cli,  # noqa: E402
                     test, wait_for)

AUTH = {"Authorization": "Bearer k"}
HEALTH_BOUND_S = 1.0 * SLOWDOWN

LOOP_TO = "+84900000001"       # the route loops
TRAP_TO = "+84900000002"       # the route returns a table whose __index raises
CPU_TO = "+84900000003"        # the route loops over long C calls
BAD_TO = "+84900000004"        # routed to the custom adapter "bad"

RULES = """
sms.config{ api_keys = { "k" }, instruction_budget = 200000, time_limit_ms = 300, memory_limit = 8388608,
            retry_base_ms = 20, retry_cap_ms = 50, env = { "SAFETY_ALLOWED" } }
local loaded_at_start = sms.env("SAFETY_LOADED")
local trap = setmetatable({}, { __index = function() error("trap") end, __len = function() error("trap") end })

sms.adapter("bad", {
  build_send = function(cfg, msgs) %(build_send)s return { url = cfg.url, body = "x" } end,
  parse_send = function(cfg, msgs, resp) %(parse_send)s
    local out = {}
    for i = 1, #msgs do out[i] = { ok = true, provider_id = "b" .. i } end
    return out
  end,
  parse_status = function(cfg, req) %(parse_status)s return {}, { status = 200, body = "ok" } end,
  parse_inbound = function(cfg, req) %(parse_inbound)s return {}, { status = 200, body = "ok" } end,
})
sms.provider("mock", { adapter = "mock", url = "%(mock)s" })
sms.provider("bad", { adapter = "bad", url = "%(mock)s" })

sms.route(function(msg)
  if msg.to == "%(loop)s" then while true do end end
  if msg.to == "%(trap)s" then return trap end
  if msg.to == "%(cpu)s" then local s = string.rep("x", 1 << 20) for i = 1, 1e9 do s:upper() end end
  if msg.to == "%(bad)s" then return { "bad" } end
  return { "mock" }
end)

local saved_co = coroutine.create(function() while true do end end)

sms.on("poison", function(ev)
  local results = {}
  local attempts = {
    string_match = function() string.match = function() return "x" end end,
    type = function() type = function() return "table" end end,
    require = function() require = function() return {} end end,
    rawset_sms = function() rawset(sms, "send", function() return "fake" end) end,
    sms_field = function() sms.send = function() return "fake" end end,
    sms_global = function() sms = {} end,
    string_meta = function() getmetatable("").__index = {} end,
    util = function() require("adapters.util").auth_headers = function() end end,
    gc = function() setmetatable({}, { __gc = function() while true do end end }) end,
    collect = function() collectgarbage("stop") end,
    searchpath = function() return package.searchpath("x", "/etc/?") end,
  }
  for name, f in pairs(attempts) do results[name] = (pcall(f)) end
  return results
end)

sms.on("normal", function(ev)
  local word = ("  stop now"):match("^%%s*(%%a+)")
  return { word = word, kind = type(ev), id = sms.send{ to = "+84912345670", text = "hello " .. word } }
end)

sms.on("loop", function(ev) while true do end end)
sms.on("cpu", function(ev) local s = string.rep("x", 1 << 20) for i = 1, 1e9 do s:upper() end end)
sms.on("swallow", function(ev) while true do pcall(function() while true do end end) end end)
sms.on("resume", function(ev) coroutine.resume(saved_co) return "finished" end)
sms.on("fill", function(ev)
  fill = fill or {}
  for i = 1, 1e9 do fill[#fill + 1] = string.rep(string.char(65 + i %% 26), 1 << 20) .. i end
end)
sms.on("trap", function(ev) return trap end)
sms.on("env", function(ev)
  local ok, err = pcall(sms.env, "HOME")
  return { loaded = loaded_at_start, allowed = sms.env("SAFETY_ALLOWED"), keys = sms.env("SMSRULES_API_KEYS"),
           home_refused = not ok and err:find("not readable", 1, true) ~= nil }
end)
"""


def rules(mock, build_send="", parse_send="", parse_status="", parse_inbound=""):
    return RULES % {"mock": mock.url, "loop": LOOP_TO, "trap": TRAP_TO, "cpu": CPU_TO, "bad": BAD_TO,
                    "build_send": build_send, "parse_send": parse_send, "parse_status": parse_status,
                    "parse_inbound": parse_inbound}


class Health:
    """Polls /healthz in a thread; the slowest answer must stay under the bound."""

    def __init__(self, d):
        self.d = d
        self.worst = 0.0
        self.failures = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_flag.is_set():
            t0 = time.monotonic()
            try:
                status, _, _, _ = self.d.request("GET", "/healthz", timeout=5.0 * SLOWDOWN)
                if status != 200:
                    self.failures.append("status %d" % status)
            except Exception as e:  # noqa: BLE001
                self.failures.append(repr(e))
            self.worst = max(self.worst, time.monotonic() - t0)
            time.sleep(0.02)

    def check(self):
        self.stop_flag.set()
        self.thread.join()
        check(not self.failures, "/healthz failed: %r" % self.failures[:3])
        check(self.worst < HEALTH_BOUND_S, "/healthz took %.2f s (bound %.2f s)" % (self.worst, HEALTH_BOUND_S))


def send(d, to, text="hi"):
    status, _, _, doc = d.request("POST", "/v1/messages", body={"to": to, "text": text}, headers=AUTH)
    check(status == 202, "send answered %d %r" % (status, doc))
    return doc["id"]


def wait_final(d, mid, timeout=10):
    def final():
        m = get_message(d, mid, AUTH)
        return m if m["status"] in ("sent", "delivered", "failed", "undelivered", "expired", "rejected") else None
    return wait_for(final, timeout * SLOWDOWN, "message %s final" % mid)


def stopped_in_log(d, needle):
    """A warn line of a stopped or failed rule whose error names rules.lua:line and needle."""
    def find():
        for o in d.log_lines():
            err = o.get("error") or ""
            if o.get("level") == "warn" and "rules.lua:" in err and needle in err:
                return o
        return None
    return wait_for(find, 5 * SLOWDOWN, "a log line naming rules.lua:line and %r" % needle)


def normal_request_served(d, mock):
    status, _, _, doc = d.request("POST", "/v1/events/normal", body={}, headers=AUTH)
    check(status in (200, 202), "normal event answered %d %r" % (status, doc))
    res = doc["result"]
    check(res["word"] == "stop" and res["kind"] == "table", "a later handler sees poisoned globals: %r" % res)
    m = wait_final(d, res["id"])
    check(m["status"] in ("sent", "delivered") and m["provider"] == "mock",
          "the built-in adapter no longer works: %r" % m)


def restart_clean(d):
    d.stop()
    d.restart()
    status, _, _, _ = d.request("GET", "/healthz")
    check(status == 200, "healthz after restart: %d" % status)
    for o in d.log_lines():
        check(o.get("level") != "error", "error at restart: %r" % o)


@test(timeout=90)
def route_that_loops_or_traps_fails_its_own_message():
    mock = Mock.start()
    d = Daemon.start(rules(mock))
    h = Health(d)
    loop_id = send(d, LOOP_TO)
    trap_id = send(d, TRAP_TO)
    cpu_id = send(d, CPU_TO)
    for mid in (loop_id, trap_id, cpu_id):
        m = wait_final(d, mid)
        check(m["status"] == "failed" and "rules.lua:" in (m.get("error") or ""),
              "bad route: message %r (want failed with rules.lua:line)" % m)
    stopped_in_log(d, "time limit exceeded")
    stopped_in_log(d, "trap")
    normal_request_served(d, mock)
    h.check()
    restart_clean(d)
    normal_request_served(d, mock)
    d.stop()
    mock.stop()


@test(timeout=90)
def custom_adapter_that_loops_or_traps_fails_its_own_message():
    for where, code, needle in (("build_send", "while true do end", "exceeded"),
                                ("parse_send", "do return { setmetatable({}, {__index = function() error('trap') end}) } end",
                                 "trap"),
                                ("build_send", "local s = string.rep('x', 1 << 20) for i = 1, 1e9 do s:upper() end",
                                 "time limit exceeded")):
        mock = Mock.start()
        d = Daemon.start(rules(mock, **{where: code}))
        h = Health(d)
        mid = send(d, BAD_TO)
        stopped_in_log(d, needle)
        if where == "build_send":
            m = wait_final(d, mid)
            check(m["status"] == "failed" and "rules.lua:" in (m.get("error") or ""), "%s: %r" % (where, m))
        normal_request_served(d, mock)
        h.check()
        restart_clean(d)
        normal_request_served(d, mock)
        d.stop()
        mock.stop()


@test(timeout=60)
def webhooks_into_a_looping_custom_adapter_are_answered():
    mock = Mock.start()
    d = Daemon.start(rules(mock, parse_status="while true do end", parse_inbound="while true do end"))
    h = Health(d)
    for kind in ("status", "inbound"):
        t0 = time.monotonic()
        status, _, body, _ = d.request("POST", "/hooks/bad/" + kind, body=b"id=1&status=DELIVRD",
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
        check(time.monotonic() - t0 < HEALTH_BOUND_S, "%s webhook took %.2f s" % (kind, time.monotonic() - t0))
        check(status == 400 and b"rules.lua:" in body and b"exceeded" in body,
              "%s webhook answered %d %r" % (kind, status, body[:300]))
    stopped_in_log(d, "exceeded")
    normal_request_served(d, mock)
    h.check()
    restart_clean(d)
    d.stop()
    mock.stop()


@test(timeout=60)
def handlers_that_loop_spin_or_swallow_are_stopped():
    mock = Mock.start()
    d = Daemon.start(rules(mock))
    h = Health(d)
    for event, needle in (("loop", "exceeded"), ("cpu", "time limit exceeded"), ("swallow", "exceeded"),
                          ("resume", "exceeded"), ("trap", "")):
        t0 = time.monotonic()
        status, _, _, doc = d.request("POST", "/v1/events/" + event, body={}, headers=AUTH)
        check(time.monotonic() - t0 < HEALTH_BOUND_S, "%s took %.2f s" % (event, time.monotonic() - t0))
        if event != "trap":
            check(status >= 400 and "rules.lua:" in doc["error"]["message"] and needle in doc["error"]["message"],
                  "%s answered %d %r" % (event, status, doc))
    normal_request_served(d, mock)
    h.check()
    restart_clean(d)
    d.stop()
    mock.stop()


@test(timeout=60)
def one_handler_cannot_poison_the_next():
    mock = Mock.start()
    d = Daemon.start(rules(mock))
    status, _, _, doc = d.request("POST", "/v1/events/poison", body={}, headers=AUTH)
    check(status == 200, "poison answered %d %r" % (status, doc))
    opened = [name for name, ok in doc["result"].items() if ok]
    check(not opened, "these changes were allowed: %r" % opened)
    normal_request_served(d, mock)
    # Filling the state up to the memory cap fails that handler alone.
    status, _, _, doc = d.request("POST", "/v1/events/fill", body={}, headers=AUTH)
    check(status >= 400 and "memory limit" in doc["error"]["message"], "fill answered %d %r" % (status, doc))
    normal_request_served(d, mock)
    d.stop()
    mock.stop()


@test(timeout=30)
def env_from_handlers_only_what_the_operator_allows():
    mock = Mock.start()
    d = Daemon.start(rules(mock), env={"SAFETY_LOADED": "l-1", "SAFETY_ALLOWED": "a-2",
                                       "SMSRULES_API_KEYS": "secret-key"})
    status, _, _, doc = d.request("POST", "/v1/events/env", body={}, headers=AUTH)
    check(status == 200, "env answered %d %r" % (status, doc))
    res = doc["result"]
    check(res.get("loaded") == "l-1" and res.get("allowed") == "a-2", "allowed names: %r" % res)
    check(res.get("keys") is None, "sms.env handed out SMSRULES_API_KEYS: %r" % res)
    check(res.get("home_refused") is True, "a handler read HOME: %r" % res)
    d.stop()
    mock.stop()


LOOPING_TOP = "sms.config{ time_limit_ms = 200 }\nlocal n = 0\nwhile true do n = n + 1 end\n"
FINALIZER = "setmetatable({}, { __gc = function() while true do end end })\n"


@test(timeout=60)
def reload_of_a_looping_file_keeps_the_old_rules():
    mock = Mock.start()
    d = Daemon.start(rules(mock).replace('api_keys = { "k" }', 'api_keys = { "k" }, admin_key = "adm"'))
    h = Health(d)
    good = open(d.rules_path).read()

    def write(text):  # atomic: a reload never reads half a file
        with open(d.rules_path + ".tmp", "w") as f:
            f.write(text)
        os.replace(d.rules_path + ".tmp", d.rules_path)

    def failed_reloads():
        return sum(1 for o in d.log_lines() if o.get("msg", "").startswith("rules reload failed"))

    for bad in (LOOPING_TOP, FINALIZER):
        write(bad)
        t0 = time.monotonic()
        status, _, _, doc = d.request("POST", "/v1/admin/reload", headers={"Authorization": "Bearer adm"})
        check(time.monotonic() - t0 < HEALTH_BOUND_S, "reload took %.2f s" % (time.monotonic() - t0))
        check(status >= 400 and "rules.lua:" in json.dumps(doc), "reload answered %d %r" % (status, doc))
        before = failed_reloads()
        d.signal(signal.SIGHUP)
        wait_for(lambda: failed_reloads() > before, 5 * SLOWDOWN, "SIGHUP reload refused")
        write(good)
        normal_request_served(d, mock)
    h.check()
    d.stop()
    check(d.proc.returncode == 0, "SIGTERM exit %s" % d.proc.returncode)
    d.restart()
    normal_request_served(d, mock)
    d.stop()
    mock.stop()


@test(timeout=60)
def serve_check_and_test_stop_a_looping_or_exploding_file():
    tmp = make_temp_dir()
    cases = {"loop.lua": (LOOPING_TOP, "loop.lua:3:", "exceeded"),
             "budget.lua": ("sms.config{ instruction_budget = 1000 }\nfor i = 1, 1e9 do end\n", "budget.lua:2:",
                            "instruction budget exceeded"),
             "gc.lua": (FINALIZER, "gc.lua:1:", "__gc"),
             "memory.lua": ("sms.config{ memory_limit = 1048576, time_limit_ms = 60000 }\nlocal t = {}\n"
                            "for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end\n", "memory.lua",
                            "memory limit reached")}
    for name, (src, where, needle) in cases.items():
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(src)
        for cmd in (["check", path], ["serve", "-c", path, "--listen", "127.0.0.1:1", "--data", tmp + "/d"]):
            t0 = time.monotonic()
            code, out, err = run_cli(cmd, timeout=5 * SLOWDOWN)
            check(code == 1 and where in err and needle in err,
                  "%s %s: exit %d, stderr %r" % (cmd[0], name, code, err[-300:]))
            check(time.monotonic() - t0 < 3 * SLOWDOWN, "%s %s took %.1f s" % (cmd[0], name, time.monotonic() - t0))
        test_path = os.path.join(tmp, name.replace(".lua", "_test.lua"))
        with open(test_path, "w") as f:
            f.write('test("loads", function() load_rules("%s") advance(1) end)\n' % name)
        code, out, err = run_cli(["test", test_path], timeout=5 * SLOWDOWN)
        check(code == 1 and "FAIL" in out and needle in out, "test %s: exit %d %r %r" % (name, code, out, err[-200:]))
    # A test file whose own top level loops is stopped too.
    path = os.path.join(tmp, "top_test.lua")
    with open(path, "w") as f:
        f.write("while true do end\n")
    code, out, err = run_cli(["test", path], timeout=5 * SLOWDOWN)
    check(code != 0 and "top_test.lua:1:" in out and "exceeded" in out, "test top level: %d %r" % (code, out))


if __name__ == "__main__":
    run()
