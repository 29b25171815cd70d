"""End-to-end tests of the bounded string functions (src/rules/lua_string.c): a
rule whose pattern backtracks for seconds in Lua's own matcher fails with a
rule error at its file:line within milliseconds, /healthz keeps answering
within 1 s all along, and the next event is served as usual."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOWDOWN, Daemon, check, run, test  # noqa: E402

AUTH = {"Authorization": "Bearer k"}

RULES = """sms.config{ api_keys = { "k" } }
sms.on("backtrack", function(ev)
  local s = string.rep("a", 40)
  return { m = s:match(".-.-.-.-.-.-.-.-x") }
end)
sms.on("gsub_backtrack", function(ev)
  local r = string.rep("(", 65536):gsub("%b()", "")
  return { n = #r }
end)
sms.on("gmatch_backtrack", function(ev)
  local n = 0
  for w in string.rep("a", 4096):gmatch("a-a-a-b") do n = n + 1 end
  return { n = n }
end)
sms.on("caught", function(ev)
  local ok, err = pcall(string.find, string.rep("a", 40), ".-.-.-.-.-.-.-.-x")
  return { ok = ok, err = err }
end)
sms.on("rep", function(ev)
  return { n = #string.rep("", 1 << 62), big = string.rep("ab", 1e9) }
end)
sms.on("normal", function(ev)
  local word = ev.text:upper():match("^%s*(%a+)")
  local n = select(2, ev.text:gsub("%s+", " "))
  return { word = word, spaces = n }
end)
"""


class HealthPoller:
    """Polls GET /healthz on fresh connections from a thread and keeps the
    slowest answer time, and any failure, until stop()."""

    def __init__(self, d):
        self.d = d
        self.slowest = 0.0
        self.count = 0
        self.failure = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                status = self.d.request("GET", "/healthz", timeout=5.0 * SLOWDOWN)[0]
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                self.failure = "healthz: %s" % e
                return
            took = time.monotonic() - t0
            self.slowest = max(self.slowest, took)
            self.count += 1
            if status != 200:
                self.failure = "healthz answered %d" % status
                return

    def stop(self):
        self._stop.set()
        self._thread.join()


def fire(d, name, body=None):
    return d.request("POST", "/v1/events/" + name, body=body if body is not None else {}, headers=AUTH,
                     timeout=10 * SLOWDOWN)


@test(timeout=60)
def backtracking_pattern_fails_at_its_line_and_the_daemon_keeps_serving():
    d = Daemon.start(rules=RULES)
    poller = HealthPoller(d)
    try:
        for name, line in (("backtrack", 4), ("gsub_backtrack", 7), ("gmatch_backtrack", 12)):
            for _ in range(5):
                t0 = time.monotonic()
                status, _, _, doc = fire(d, name)
                took = time.monotonic() - t0
                check(status == 500 and doc["error"]["code"] == "rule_error", "%s: %d %r" % (name, status, doc))
                message = doc["error"]["message"]
                check(("rules.lua:%d: pattern too complex: more than " % line) in message,
                      "%s names file:line and the limit: %r" % (name, message))
                check(took < 1.0 * SLOWDOWN, "%s took %.2f s" % (name, took))
                status, _, _, doc = fire(d, "normal", {"text": "  stop  now please "})
                check(status == 200 and doc["result"] == {"word": "STOP", "spaces": 4},
                      "the next event after %s: %d %r" % (name, status, doc))
    finally:
        poller.stop()
    check(poller.failure is None, poller.failure or "")
    check(poller.count > 0, "healthz was never polled")
    check(poller.slowest < 1.0 * SLOWDOWN, "the slowest /healthz took %.2f s" % poller.slowest)
    logged = [x for x in d.log_lines() if x.get("msg") == "rule error"]
    check(logged and "pattern too complex" in logged[-1]["error"], "the rule error is logged: %r" % logged[-1:])
    d.stop()


@test
def rules_can_catch_the_error_and_rep_is_bounded():
    d = Daemon.start(rules=RULES)
    status, _, _, doc = fire(d, "caught")
    check(status == 200 and doc["result"]["ok"] is False and "pattern too complex" in doc["result"]["err"],
          "pcall catches the budget error: %d %r" % (status, doc))
    t0 = time.monotonic()
    status, _, _, doc = fire(d, "rep")
    check(status == 500 and doc["error"]["code"] == "rule_error"
          and "rules.lua:20: resulting string too large" in doc["error"]["message"],
          "string.rep over its limit: %d %r" % (status, doc))
    check(time.monotonic() - t0 < 1.0 * SLOWDOWN, "string.rep of empty pieces is immediate")
    status, _, _, doc = fire(d, "normal", {"text": "help"})
    check(status == 200 and doc["result"]["word"] == "HELP", "normal event: %d %r" % (status, doc))
    d.stop()


if __name__ == "__main__":
    run()
