"""What the cluster tests (test_cluster.py, test_cluster_chaos.py) share: a
real 3-server NATS JetStream cluster (natscluster.py), smsrules nodes on it
with the same rules file, one mock provider posting its delivery reports to
every node's status webhook in turn (--dlr-url with a list), and a client
that spreads POST /v1/messages over the nodes.

The rules count every sms.on_status run in sms.kv ("st:<id>:<status>" and
"runs"), and POST /v1/events/count answers those counters, so a test checks
"status handlers ran once per change" through the API of any node.
"""

import http.client
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOST, SLOWDOWN, Daemon, Mock, check, wait_for  # noqa: E402
from natscluster import NatsCluster  # noqa: E402

KEY = "k"
AUTH = {"Authorization": "Bearer " + KEY}
# A node not heard from this long is gone and its work is taken over (each node looks every 5 s):
# short, so that take-overs in the chaos tests come within seconds.
NODE_TIMEOUT_MS = 1500
# The statuses sms.on_status runs for (docs/lua-api.md); queued and sending have no handler.
HANDLED = ("sent", "failed", "expired", "rejected", "delivered", "undelivered")

RULES = """
sms.config{ api_keys = { "%(key)s" }, default_country = "84", retry_base_ms = 50, retry_cap_ms = 500,
            cluster_node_timeout_ms = %(node_timeout)d, cluster_replicas = 3 }
sms.provider("mock", { adapter = "mock", url = "%(url)s", timeout_ms = 30000 })

-- Every handler run is counted, per message and status, in the same unit as the status change.
sms.on_status(function(msg, status)
  sms.kv.incr("st:" .. msg.id .. ":" .. status, 1)
  sms.kv.incr("runs", 1)
end)

-- POST /v1/events/count {"ids": [...]}: the counters of those messages, and all runs.
sms.on("count", function(ev)
  local per = {}
  for _, id in ipairs(ev.ids) do
    local c = {}
    for _, st in ipairs({ %(handled)s }) do c[st] = tonumber(sms.kv.get("st:" .. id .. ":" .. st) or 0) end
    per[id] = c
  end
  return { runs = tonumber(sms.kv.get("runs") or 0), per = per }
end)
"""


def rules(mock):
    return RULES % {"key": KEY, "url": mock.url, "node_timeout": NODE_TIMEOUT_MS,
                    "handled": ", ".join('"%s"' % s for s in HANDLED)}


def phone(i, area=1):
    """A distinct recipient for each i that matches none of the mock's outcome patterns (none ends in
    7), so every message is accepted and reported delivered."""
    return "+849%d%06d7" % (area, i)


def status_url(d):
    return "http://%s:%d/hooks/mock/status" % (HOST, d.port)


class Cluster:
    """A NatsCluster, a mock provider and smsrules nodes "n0", "n1", ... on it."""

    def __init__(self, nats, mock, nodes):
        self.nats = nats
        self.mock = mock
        self.nodes = nodes

    @classmethod
    def start(cls, nodes=3, servers=3, mock_args=(), rules_of=None):
        """rules_of(mock) → the rules text (default: RULES, counting handler runs)."""
        nats = NatsCluster.start(servers)
        mock = Mock.start("--dlr-delay-ms", "20", *mock_args)
        text = (rules_of or rules)(mock)
        # The first node creates the stream; the others start at once after it.
        ds = []
        for i in range(nodes):
            ds.append(Daemon.start(text, args=["--cluster", nats.urls(), "--node", "n%d" % i],
                                   ready_timeout=30.0))
        # Reports go to every node in turn (known only now that the nodes have their ports).
        mock.control({"dlr_url": ",".join(status_url(d) for d in ds)})
        return cls(nats, mock, ds)

    def live(self):
        return [d for d in self.nodes if d.running()]


def post_message(d, to, key=None, timeout=30.0):
    """POST /v1/messages to node d: (status, parsed body or None). A connection the node closed (it was
    killed) is (None, None)."""
    body = {"to": to, "text": "hello " + to}
    if key:
        body["idempotency_key"] = key
    try:
        status, _, _, doc = d.request("POST", "/v1/messages", body=body, headers=AUTH, timeout=timeout * SLOWDOWN)
        return status, doc
    except (OSError, http.client.HTTPException):
        return None, None


def get_message(d, mid):
    status, _, _, doc = d.request("GET", "/v1/messages/" + mid, headers=AUTH)
    check(status == 200, "GET %s on :%d answered %d" % (mid, d.port, status))
    return doc


def status_of(d, mid):
    """The status of mid on node d; None while d's replica does not have the message yet (a node reads
    its own replica, which applies the stream a moment after the node that accepted it answered)."""
    status, _, _, doc = d.request("GET", "/v1/messages/" + mid, headers=AUTH)
    check(status in (200, 404), "GET %s on :%d answered %d" % (mid, d.port, status))
    return doc["status"] if status == 200 else None


def statuses(d, ids):
    """{id: status} of ids as node d has them."""
    return {mid: status_of(d, mid) for mid in ids}


def wait_all_status(d, ids, status, timeout):
    """Waits (timeout x SLOWDOWN) until every one of ids has status on node d."""
    left = list(ids)

    def done():
        while left:
            if status_of(d, left[-1]) != status:
                return False
            left.pop()
        return True

    try:
        wait_for(done, timeout * SLOWDOWN, "%d messages %s on :%d" % (len(ids), status, d.port), 0.05)
    except AssertionError:
        st = statuses(d, left[-20:])
        raise AssertionError("%d of %d messages not %s on :%d after %.0fs, e.g. %r"
                             % (len(left), len(ids), status, d.port, timeout * SLOWDOWN, st))


def handler_counts(d, ids):
    """POST /v1/events/count on node d: (runs, {id: {status: runs}})."""
    status, _, body, doc = d.request("POST", "/v1/events/count", {"ids": list(ids)}, headers=AUTH)
    check(status == 200 and doc, "POST /v1/events/count answered %d %r" % (status, body[:300]))
    result = doc["result"]
    return result["runs"], result["per"]


def handled_changes(msg):
    """The status changes of msg (its history) that have an sms.on_status run."""
    return [h["status"] for h in msg["history"] if h["status"] in HANDLED]
