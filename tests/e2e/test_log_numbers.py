"""Numbers that JSON cannot hold (infinities, NaN) in what the daemon writes:
sms.log fields become the strings "inf", "-inf", "nan", so every log line
stays one JSON object; an event whose handler returns them still answers
valid JSON."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOWDOWN, Daemon, check, run, test, wait_for  # noqa: E402

AUTH = {"Authorization": "Bearer k"}
RULES = '''
sms.config{ api_keys = { "k" } }
sms.on("log", function(ev)
  sms.log.info("numbers", { pinf = 1/0, ninf = -1/0, nan = 0/0, nnan = -(0/0), half = 1.5, big = 1e300,
                            min = math.mininteger, two63 = 2^63, zero = -0.0, yes = true, text = "1/0" })
  sms.log.warn("huge", { v = math.huge })
  return { ok = true }
end)
sms.on("result", function(ev) return { x = 1/0, y = 0/0, z = 1 } end)
'''


def logged(d, msg):
    # log_lines() fails on any line that is not a JSON object.
    return wait_for(lambda: next((l for l in d.log_lines() if l.get("msg") == msg), None), 5 * SLOWDOWN,
                    "the log line %r" % msg)


@test(timeout=30)
def log_fields_that_are_not_finite_are_strings():
    d = Daemon.start(RULES)
    status, _, raw, _ = d.request("POST", "/v1/events/log", {}, headers=AUTH)
    check(status == 200, "event answered %d %r" % (status, raw[:200]))
    line = logged(d, "numbers")
    check(line["pinf"] == "inf" and line["ninf"] == "-inf", "infinities: %r" % line)
    check(line["nan"] == "nan" and line["nnan"] == "nan", "NaN: %r" % line)
    check(line["half"] == 1.5 and line["big"] == 1e300 and line["min"] == -2 ** 63, "finite numbers: %r" % line)
    check(abs(line["two63"] / 2.0 ** 63 - 1) < 1e-13 and line["zero"] == 0 and line["yes"] is True, "others: %r" % line)
    check(line["text"] == "1/0", "a string: %r" % line)
    check(logged(d, "huge")["v"] == "inf", "math.huge")


@test(timeout=30)
def an_event_result_with_non_finite_numbers_still_answers_json():
    d = Daemon.start(RULES)
    status, hdrs, raw, doc = d.request("POST", "/v1/events/result", {}, headers=AUTH)
    check(status == 200, "event answered %d %r" % (status, raw[:200]))
    check(isinstance(doc, dict) and doc.get("ids") == [], "answer is not the JSON expected: %r" % raw[:200])
    check(b"inf" not in raw.lower() and b"nan" not in raw.lower(), "answer has a bare non-finite number: %r" % raw)
    d.log_lines()


if __name__ == "__main__":
    run()
