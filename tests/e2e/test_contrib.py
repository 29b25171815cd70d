"""contrib/: the Grafana dashboard and the Prometheus alert rules are written
against the metrics the daemon really exports. A live daemon (sending through
the mock provider, taking its delivery reports and inbound SMS, a failing
inbound handler, a failed rules reload) must show every metric name the files
use, and for every `label="value"` matcher a series with that label value;
the alert rules file parses as YAML into well-formed rules; the dashboard is
valid JSON whose panels all query Prometheus and do not overlap.

Run: SMSRULES_BIN=build/smsrules python3 tests/e2e/test_contrib.py [name...]"""
import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REPO, SLOWDOWN, Daemon, Mock, check, run, test, wait_for  # noqa: E402

KEY = "k"
AUTH = {"Authorization": "Bearer " + KEY}
ALERTS = os.path.join(REPO, "contrib", "prometheus", "smsrules-alerts.yml")
DASHBOARD = os.path.join(REPO, "contrib", "grafana", "smsrules-dashboard.json")
SELECTOR = re.compile(r"\b(smsrules_[a-z0-9_]+)(\{([^}]*)\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def expressions():
    """Every PromQL expression of both files, with where it comes from."""
    import yaml
    with open(ALERTS) as f:
        doc = yaml.safe_load(f)
    exprs = [("alert " + r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]
    with open(DASHBOARD) as f:
        dash = json.load(f)
    for p in dash["panels"]:
        exprs += [("panel " + p["title"], t["expr"]) for t in p.get("targets", [])]
    return exprs


def live_series():
    """{metric name: [label dicts]} from a daemon that has done everything the files chart."""
    mock = Mock.start("--dlr-delay-ms", "10")
    rules = ('sms.config{ api_keys = { "%s" } }\n'
             'sms.provider("m", { adapter = "mock", url = "%s" })\n'
             'sms.on_inbound(function(msg)\n'
             '  if msg.text == "BOOM" then error("handler failure") end\n'
             '  return sms.reply(msg, "hello")\n'
             'end)\n' % (KEY, mock.url))
    d = Daemon.start(rules)
    mock.control({"dlr_url": "http://127.0.0.1:%d/hooks/m/status" % d.port,
                  "inbound_url": "http://127.0.0.1:%d/hooks/m/inbound" % d.port})
    for i in range(5):
        status, _, body, _ = d.request("POST", "/v1/messages", {"to": "+8491234567%d" % i, "text": "hi"},
                                       headers=AUTH)
        check(status == 202, "send answered %d %r" % (status, body[:200]))
    for text, mid in (("HELLO", "in-1"), ("HELLO", "in-1"), ("BOOM", "in-2")):
        status, _, body, _ = mock.request("POST", "/control/inbound",
                                          {"from": "+84912345670", "to": "+100", "text": text, "id": mid})
        check(status == 200, "the mock's inbound post answered %d %r" % (status, body[:200]))
    with open(d.rules_path, "a") as f:
        f.write("\nthis is not lua\n")
    d.signal(signal.SIGHUP)
    d.wait_log("rules reload failed; the old rules keep running")

    def ready():
        m = d.metrics()
        return (m.get('smsrules_dlr_reports_total{result="matched"}', 0) >= 5
                and m.get("smsrules_inbound_handler_errors_total", 0) >= 1
                and m.get("smsrules_inbound_duplicates_total", 0) >= 1
                and any(k.startswith("smsrules_route_report_latency_seconds{") for k in m))

    wait_for(ready, 15 * SLOWDOWN, "reports, inbound and route statistics in /metrics")
    status, _, body, _ = d.request("GET", "/metrics")
    check(status == 200, "GET /metrics answered %d" % status)
    series = {}
    for line in body.decode("utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ", line)
        check(m, "unparsable /metrics line %r" % line)
        labels = dict((k, v) for k, _, v in MATCHER.findall(m.group(3) or ""))
        series.setdefault(m.group(1), []).append(labels)
    return series


@test(timeout=60)
def every_metric_and_label_value_in_contrib_is_exported():
    exprs = expressions()
    check(len(exprs) >= 20, "only %d expressions found" % len(exprs))
    series = live_series()
    used = set()
    for where, expr in exprs:
        for name, _, matchers in SELECTOR.findall(expr):
            used.add(name)
            check(name in series, "%s uses %s, which the daemon does not export" % (where, name))
            for label, op, value in MATCHER.findall(matchers):
                if op != "=" or label == "instance" or "$" in value:
                    continue
                check(any(s.get(label) == value for s in series[name]),
                      '%s: no series %s{%s="%s"} in /metrics (values: %r)'
                      % (where, name, label, value, sorted({s.get(label) for s in series[name]}, key=str)))
    # The five: queue age, failure ratio, circuit open, report latency, store near full.
    for name in ("smsrules_queue_oldest_due_seconds", "smsrules_provider_failed_total",
                 "smsrules_provider_circuit_state", "smsrules_route_report_latency_seconds",
                 "smsrules_store_room_bytes"):
        check(name in used, "contrib/ never uses %s" % name)


@test(timeout=60)
def queue_oldest_due_counts_only_due_messages_that_wait():
    mock = Mock.start()
    d = Daemon.start('sms.config{ api_keys = { "%s" } }\n'
                     'sms.provider("m", { adapter = "mock", url = "%s", concurrency = 1, batch_size = 1, '
                     'timeout_ms = 120000 })\n' % (KEY, mock.url))

    def oldest():
        return d.metrics()["smsrules_queue_oldest_due_seconds"]

    # Scheduled for later: queued, not due.
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30 * 86400))
    status, _, body, _ = d.request("POST", "/v1/messages", {"to": "+84912345671", "text": "later",
                                                            "send_at": later}, headers=AUTH)
    check(status == 202, "send_at message answered %d %r" % (status, body[:200]))
    check(oldest() == 0, "a message due in 30 days counts as overdue: %r" % oldest())
    # The provider holds its one lane: the next messages are due and wait.
    mock.control({"down": True})
    waiting_since = time.monotonic()
    for i in range(3):
        status, _, body, _ = d.request("POST", "/v1/messages", {"to": "+8491234568%d" % i, "text": "now"},
                                       headers=AUTH)
        check(status == 202, "send answered %d %r" % (status, body[:200]))
    waited = wait_for(lambda: (lambda v: v if v >= 1.0 else None)(oldest()), 15 * SLOWDOWN,
                      "the oldest due message to wait a second")
    check(waited <= time.monotonic() - waiting_since + 0.5,
          "the oldest due message waited %.1f s, longer than it exists" % waited)
    mock.control({"down": False})
    wait_for(lambda: oldest() == 0, 30 * SLOWDOWN, "the due messages to leave the queue")


@test
def alert_rules_parse_into_well_formed_rules():
    import yaml
    with open(ALERTS) as f:
        doc = yaml.safe_load(f)
    rules = [r for g in doc["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    for want in ("SmsrulesQueueStalled", "SmsrulesProviderFailureRatioHigh", "SmsrulesCircuitOpen",
                 "SmsrulesReportLatencyHigh", "SmsrulesStoreNearFull", "SmsrulesStoreFull"):
        check(want in names, "no alert %s" % want)
    for r in rules:
        check(set(r) <= {"alert", "expr", "for", "labels", "annotations"}, "%s: unknown keys %r" % (r["alert"], r))
        check(isinstance(r["expr"], str) and r["expr"].strip(), "%s: no expr" % r["alert"])
        check(r["expr"].count("(") == r["expr"].count(")"), "%s: unbalanced parentheses" % r["alert"])
        check(r["labels"].get("severity") in ("warning", "critical"), "%s: severity %r" % (r["alert"], r["labels"]))
        check(r["annotations"].get("summary"), "%s: no summary" % r["alert"])
        if "for" in r:
            check(re.fullmatch(r"\d+[smh]", r["for"]), "%s: bad for %r" % (r["alert"], r["for"]))
    # Every alert is explained in the operations guide.
    with open(os.path.join(REPO, "docs", "operations.md")) as f:
        guide = f.read()
    for name in names:
        check(name in guide, "docs/operations.md does not explain %s" % name)


@test
def dashboard_is_valid_and_its_panels_do_not_overlap():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    check(dash.get("uid") and dash.get("title"), "no uid or title")
    check({v["name"] for v in dash["templating"]["list"]} >= {"datasource", "instance"}, "variables missing")
    cells = {}
    for p in dash["panels"]:
        g = p["gridPos"]
        check(g["x"] + g["w"] <= 24, "panel %r is wider than the grid" % p["title"])
        if p["type"] != "row":
            check(p["datasource"]["type"] == "prometheus" and p["targets"], "panel %r has no Prometheus query"
                  % p["title"])
            for t in p["targets"]:
                check('instance=~"$instance"' in t["expr"], "panel %r ignores the instance variable" % p["title"])
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                check((x, y) not in cells, "panels %r and %r overlap" % (cells.get((x, y)), p["title"]))
                cells[(x, y)] = p["title"]


if __name__ == "__main__":
    run()
