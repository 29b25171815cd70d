"""End-to-end tests of live route quality: the daemon sends through
`smsrules mock-provider`, delivery reports come to the status webhook, and
GET /v1/stats/routes and the smsrules_route_* gauges show the figures per
provider and country; after a restart they are rebuilt from the store."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOWDOWN, Daemon, Mock, check, run, test, wait_for  # noqa: E402

KEY = "k"
AUTH = {"Authorization": "Bearer " + KEY}
VN = ["+8491234560%d" % i for i in range(10)] + ["+849123456%d" % i for i in range(10, 12)]
RU = ["+7916123456%d" % i for i in range(4)]


def rules(mock):
    return ('sms.config{ api_keys = { "%s" } }\n'
            'sms.provider("m", { adapter = "mock", url = "%s", cost = 0.03 })\n' % (KEY, mock.url))


def send(d, to):
    status, _, raw, doc = d.request("POST", "/v1/messages", {"to": to, "text": "hello"}, headers=AUTH)
    check(status == 202, "send answered %d %r" % (status, raw[:200]))
    return doc["id"]


def message(d, mid):
    status, _, raw, doc = d.request("GET", "/v1/messages/" + mid, headers=AUTH)
    check(status == 200, "GET message answered %d %r" % (status, raw[:200]))
    return doc


def report(d, pid, status):
    code, _, raw, _ = d.request("POST", "/hooks/m/status", json.dumps({"message_id": pid, "status": status}).encode(),
                                headers={"Content-Type": "application/json"})
    check(code == 200, "status webhook answered %d %r" % (code, raw[:200]))


def route_stats(d):
    status, _, raw, doc = d.request("GET", "/v1/stats/routes", headers=AUTH)
    check(status == 200 and isinstance(doc, dict), "GET /v1/stats/routes answered %d %r" % (status, raw[:300]))
    return doc


def near(actual, expected, what, rel=1e-6):
    check(actual is not None and abs(actual - expected) <= rel * max(abs(expected), 1e-12),
          "%s: %r, expected %r" % (what, actual, expected))


def traffic(d):
    """Sends 12 messages to Vietnam and 4 to Russia; reports 9 delivered and 3 undelivered for Vietnam, 2
    delivered for Russia (2 stay without a report). Returns when every report is applied."""
    ids = {to: send(d, to) for to in VN + RU}
    pids = {}
    for to, mid in ids.items():
        m = wait_for(lambda: (lambda m: m if m["status"] == "sent" else None)(message(d, mid)), 10 * SLOWDOWN,
                     "message to %s sent" % to)
        pids[to] = m["provider_id"]
    finals = {}
    for i, to in enumerate(VN):
        finals[to] = "delivered" if i < 9 else "undelivered"
        report(d, pids[to], "DELIVRD" if i < 9 else "UNDELIV")
    for to in RU[:2]:
        finals[to] = "delivered"
        report(d, pids[to], "DELIVRD")
    for to, st in finals.items():
        wait_for(lambda: message(d, ids[to])["status"] == st, 10 * SLOWDOWN, "message to %s %s" % (to, st))


def check_figures(doc):
    p = doc["providers"]["m"]
    vn = p["countries"]["84"]["15m"]
    check(vn["attempts"] == 12 and vn["accepted"] == 12, "VN attempts: %r" % vn)
    check(vn["errors"] == {"retryable": 0, "permanent_message": 0, "permanent_provider": 0, "timeout": 0},
          "VN errors: %r" % vn["errors"])
    check((vn["delivered"], vn["undelivered"], vn["expired"], vn["rejected"], vn["pending"]) == (9, 3, 0, 0, 0),
          "VN reports: %r" % vn)
    near(vn["delivered_ratio"], 0.75, "VN delivered_ratio")
    near(vn["cost_total"], 12 * 0.03, "VN cost_total")
    near(vn["cost_per_delivered"], 12 * 0.03 / 9, "VN cost_per_delivered")
    check(vn["report_latency_ms"]["p50"] is not None and vn["send_latency_ms"]["p95"] is not None,
          "VN latencies: %r" % vn)
    ru = p["countries"]["7"]["15m"]
    check((ru["accepted"], ru["delivered"], ru["pending"]) == (4, 2, 2), "RU: %r" % ru)
    near(ru["delivered_ratio"], 1.0, "RU delivered_ratio")
    near(ru["cost_per_delivered"], 4 * 0.03 / 2, "RU cost_per_delivered")
    a = p["all"]["24h"]
    check((a["attempts"], a["delivered"], a["undelivered"], a["pending"]) == (16, 11, 3, 2), "all: %r" % a)
    near(a["delivered_ratio"], 11 / 14, "all delivered_ratio")
    check(set(p["all"]) == {"1m", "15m", "1h", "24h"}, "windows: %r" % sorted(p["all"]))


@test(timeout=60)
def stats_api_metrics_and_restart():
    mock = Mock.start()
    d = Daemon.start(rules(mock))
    status, _, _, doc = d.request("GET", "/v1/stats/routes")
    check(status == 401 and doc["error"]["code"] == "unauthorized", "without a key: %d %r" % (status, doc))
    check(route_stats(d) == {"providers": {}}, "nothing sent yet")
    traffic(d)
    before = route_stats(d)
    check_figures(before)

    m = d.metrics()
    near(m.get('smsrules_route_delivered_ratio{provider="m",country="84",window="15m"}'), 0.75, "VN gauge")
    near(m.get('smsrules_route_delivered_ratio{provider="m",country="7",window="15m"}'), 1.0, "RU gauge")
    near(m.get('smsrules_route_delivered_ratio{provider="m",country="all",window="15m"}'), 11 / 14, "all gauge")
    lat = m.get('smsrules_route_report_latency_seconds{provider="m",country="84",quantile="0.95"}')
    check(lat is not None and lat >= 0, "report latency gauge: %r" % lat)
    check(not any('country="other"' in k for k in m), "two countries: no \"other\" series")

    # A restart rebuilds the same figures from the store.
    d.stop()
    d.restart()
    rebuilt = [json.loads(l) for l in d.stderr().splitlines()
               if l.startswith("{") and "route statistics rebuilt" in l]
    check(rebuilt and rebuilt[-1]["messages"] == 16 and rebuilt[-1]["reports"] == 14, "rebuild log: %r" % rebuilt)
    after = route_stats(d)
    check_figures(after)
    for cc in ("84", "7"):
        for w in ("15m", "1h", "24h"):
            b = before["providers"]["m"]["countries"][cc][w]
            a = after["providers"]["m"]["countries"][cc][w]
            check(a == b, "country %s window %s after the restart:\n%r\nbefore:\n%r" % (cc, w, a, b))
    near(d.metrics().get('smsrules_route_delivered_ratio{provider="m",country="84",window="15m"}'), 0.75,
         "VN gauge after the restart")


if __name__ == "__main__":
    run()
