"""End-to-end tests of `smsrules models fit` and `smsrules traffic export`:
the daemon sends through `smsrules mock-provider` configured with known error
and delivery shares, then the commands read its data directory (read-only,
beside the running daemon) and must recover those shares and what was sent.

Run: SMSRULES_BIN=build/smsrules python3 tests/e2e/test_models_fit.py [name...]"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOWDOWN, Daemon, Mock, check, make_temp_dir, run, run_cli, test, wait_for  # noqa: E402

KEY = "k"
AUTH = {"Authorization": "Bearer " + KEY}

# The mock's mix, per send request (one message a request: batch_size = 1).
FAIL_5XX = 0.10
REJECT = 0.05
UNDELIVERED = 0.20
# Messages. The fitted shares are binomial estimates: with N messages the
# undelivered share (p = 0.2, the widest of them) has a standard deviation of
# sqrt(p (1 - p) / N); 5000 puts the ±2 point tolerance at 3.5 of them. And the
# mock's failure mix is drawn from a seeded generator in request order, so the
# drawn shares are the same on every run: the test cannot flake on them.
N = 5000
TOLERANCE = 0.02


def sd(p, n):
    return math.sqrt(p * (1 - p) / n)


assert TOLERANCE >= 3.5 * sd(UNDELIVERED, N)


def recipient(i):
    # Even: Viet Nam (+84), odd: Russia (+7); none ends in a mock pattern (they all end in 7).
    return "+8491%07d7" % i if i % 2 == 0 else "+7912%06d7" % i


def text(i):
    # Every fifth is 200 GSM characters: two segments.
    return "a" * 200 if i % 5 == 0 else "code %d" % i


def tags(i):
    return {"kind": "otp"} if i % 3 == 0 else {}


def unsettled(d):
    """How many messages still wait for a send or a final report."""
    n = 0
    for st in ("accepted", "queued", "sending", "sent"):
        status, _, _, doc = d.request("GET", "/v1/messages?status=%s&limit=10" % st, headers=AUTH)
        check(status == 200, "listing %s answered %d" % (st, status))
        n += len(doc["messages"])
    return n


def send_history():
    """Runs the daemon against the mock until every message is final; returns (daemon, mock)."""
    mock = Mock.start("--fail-5xx", FAIL_5XX * 100, "--reject", REJECT * 100, "--dlr-undelivered",
                      UNDELIVERED * 100, "--dlr-delay-ms", 20, "--seed", 20261205)
    # Short backoff, and a short circuit cooldown: 10% 503s now and then open the breaker, which
    # only delays sends (no attempt is made while it is open), never changes the shares.
    rules = ('sms.config{ api_keys = { "%s" }, retry_base_ms = 5, retry_cap_ms = 50, circuit_cooldown_ms = 50 }\n'
             'sms.provider("m", { adapter = "mock", url = "%s", batch_size = 1, concurrency = 32, '
             'max_attempts = 20, timeout_ms = 30000 })\n' % (KEY, mock.url))
    d = Daemon.start(rules)
    mock.control({"dlr_url": "http://127.0.0.1:%d/hooks/m/status" % d.port})
    for b in range(0, N, 1000):
        msgs = []
        for i in range(b, b + 1000):
            m = {"to": recipient(i), "text": text(i)}
            if tags(i):
                m["tags"] = tags(i)
            msgs.append(m)
        status, _, raw, doc = d.request("POST", "/v1/messages", {"messages": msgs}, headers=AUTH,
                                        timeout=30 * SLOWDOWN)
        check(status == 202, "batch answered %d %r" % (status, raw[:200]))
        check(all(r["code"] == "OK" for r in doc["result"]), "refused: %r" % [
            r for r in doc["result"] if r["code"] != "OK"][:3])
    wait_for(lambda: unsettled(d) == 0, 120 * SLOWDOWN, "every message final", interval=0.2)
    return d, mock


@test(timeout=240)
def models_fit_recovers_the_mock_shares_and_traffic_export_what_was_sent():
    d, mock = send_history()
    data = os.path.join(d.dir, "data")
    truth = mock.stats()

    # Fitted while the daemon runs: the store is read beside it, without its lock.
    out = os.path.join(d.dir, "models.json")
    code, stdout, stderr = run_cli(["models", "fit", "--data", data, "--since", "1h", "-o", out],
                                   timeout=60 * SLOWDOWN)
    check(code == 0, "models fit exited %d: %s" % (code, stderr[-500:]))
    check(d.running(), "the daemon stopped while models fit read its data")
    with open(out) as f:
        models = json.load(f)
    m = models["providers"]["m"]["default"]
    attempts = m["samples"]["attempts"]
    # Every request the mock saw is one attempt of the history (none was lost or invented).
    check(attempts == truth["requests"], "fitted %d attempts, the mock saw %d requests" % (attempts, truth["requests"]))
    check(models["fitted_from"]["messages"] == N, "fitted from %r" % models["fitted_from"])

    def near(name, got, want):
        check(abs(got - want) <= TOLERANCE, "%s: fitted %.4f, configured %.4f (±%.2f)" % (name, got, want, TOLERANCE))

    near("503 share", m["errors"]["503"], FAIL_5XX)
    near("400 share", m["errors"]["400"], REJECT)
    near("accept", m["accept"], 1 - FAIL_5XX - REJECT)
    near("delivered", m["delivered"], 1 - UNDELIVERED)
    near("undelivered", m["undelivered"], UNDELIVERED)
    check(m["expired"] == 0, "expired %r" % m["expired"])
    # And exactly what the mock drew (rounded to the 4 decimals the file has).
    check(abs(m["errors"]["503"] - truth["failed_5xx"] / truth["requests"]) < 1e-4,
          "503 share %r, the mock answered %d of %d" % (m["errors"]["503"], truth["failed_5xx"], truth["requests"]))
    check(abs(m["errors"]["400"] - truth["rejected"] / truth["requests"]) < 1e-4,
          "400 share %r, the mock rejected %d of %d" % (m["errors"]["400"], truth["rejected"], truth["requests"]))
    check(set(m["errors"]) == {"503", "400"}, "errors %r" % m["errors"])
    check(0 < m["send_latency_ms"]["p50"] <= m["send_latency_ms"]["p95"], "send latency %r" % m["send_latency_ms"])
    # Report times are the provider's own (the mock's report timestamp), so only their order is sure.
    check(0 <= m["report_latency_ms"]["p50"] <= m["report_latency_ms"]["p95"] < 5000 * SLOWDOWN,
          "report latency %r (the mock reports 20 ms after its answer)" % m["report_latency_ms"])
    # Each country has thousands of attempts: its own model, with the same shares.
    countries = models["providers"]["m"]["countries"]
    check(set(countries) == {"84", "7"}, "countries %r" % list(countries))
    for cc, c in countries.items():
        near("delivered in +" + cc, c["delivered"], 1 - UNDELIVERED)
        check(2000 < c["samples"]["attempts"] < 3500, "+%s attempts %r" % (cc, c["samples"]))
    check(models["incidents"] == [], "incidents %r" % models["incidents"])

    # Traffic, read beside the running daemon too, then once it stopped: the same.
    code, live, stderr = run_cli(["traffic", "export", "--data", data], timeout=60 * SLOWDOWN)
    check(code == 0, "traffic export exited %d: %s" % (code, stderr[-500:]))
    d.stop()
    mock.stop()
    path = os.path.join(d.dir, "traffic.jsonl")
    code, _, stderr = run_cli(["traffic", "export", "--data", data, "--since", "7d", "-o", path],
                              timeout=60 * SLOWDOWN)
    check(code == 0, "traffic export exited %d: %s" % (code, stderr[-500:]))
    with open(path) as f:
        stopped = f.read()
    check(stopped == live, "the export of the running and of the stopped daemon differ")
    lines = [json.loads(x) for x in stopped.splitlines()]
    check(len(lines) == N, "%d lines" % len(lines))
    # In the order they were accepted, which is the order they were posted.
    check(lines[0]["at_s"] == 0 and all(a["at_s"] <= b["at_s"] for a, b in zip(lines, lines[1:])),
          "at_s not from 0 and rising")
    for i, line in enumerate(lines):
        want = {"at_s": line["at_s"], "country": "84" if i % 2 == 0 else "7", "segments": 2 if i % 5 == 0 else 1}
        if tags(i):
            want["tags"] = tags(i)
        check(line == want, "line %d: %r, expected %r" % (i, line, want))

    # And the two files are what `smsrules simulate` reads: last hour's traffic on last hour's provider,
    # which delivers about as the mock did (only the first attempt of each message counts here: no retries).
    strategy = os.path.join(d.dir, "strategy.lua")
    with open(strategy, "w") as f:
        f.write('sms.provider("m", { adapter = "generic", url = "http://127.0.0.1:9/send", max_attempts = 1 })\n')
    code, stdout, stderr = run_cli(["simulate", "--models", out, "--traffic", path, "--seed", "1", "--json", strategy],
                                   timeout=120 * SLOWDOWN)
    check(code == 0, "simulate on the fitted models exited %d: %s" % (code, stderr[-500:]))
    s = json.loads(stdout)["strategies"][0]
    check(s["messages"] == N, "simulated %r messages" % s["messages"])
    # delivered = accepted x delivered share of the fit; 4.5 sd of a binomial share at N.
    want = m["accept"] * m["delivered"]
    sd = (want * (1 - want) / N) ** 0.5
    check(abs(s["delivered_ratio"] - want) < 4.5 * sd + 0.002, "simulated delivered %.4f, fitted %.4f" % (
        s["delivered_ratio"], want))


@test(timeout=30)
def commands_explain_their_mistakes():
    code, out, _ = run_cli(["models", "--help"])
    check(code == 0 and "--min-samples" in out and "--since" in out, "models --help: %d %r" % (code, out[:200]))
    code, out, _ = run_cli(["traffic", "export", "--help"])
    check(code == 0 and "at_s" in out, "traffic export --help: %d %r" % (code, out[:200]))
    code, _, err = run_cli(["models", "fit", "--since", "7y"])
    check(code == 1 and "bad --since '7y'" in err, "bad --since: %d %r" % (code, err[:200]))
    code, _, err = run_cli(["models", "guess"])
    check(code == 1 and "expected `fit`" in err, "unknown verb: %d %r" % (code, err[:200]))
    code, _, err = run_cli(["traffic", "export", "--min-samples", "5"])
    check(code == 1 and "unknown option" in err, "fit-only flag on export: %d %r" % (code, err[:200]))
    # A directory that holds no store: an error, and nothing created there.
    empty = os.path.join(make_temp_dir(), "nothing")
    code, _, err = run_cli(["models", "fit", "--data", empty])
    check(code != 0 and "cannot read the store" in err, "missing data dir: %d %r" % (code, err[:200]))
    check(not os.path.exists(empty), "models fit created %s" % empty)


if __name__ == "__main__":
    run()
