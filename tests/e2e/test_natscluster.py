"""End-to-end tests of the NATS JetStream cluster fixture (natscluster.py)
the cluster tests run on: what it starts is checked the way a client and an
operator see it, through each server's client port (its INFO greeting) and
monitoring endpoints (/jsz, /varz, /routez), and by a raw NATS client
using JetStream at once: three servers with JetStream and one meta leader; a
SIGKILLed meta leader replaced by the other two, which go on storing; the
killed server rejoining on its ports and store and catching up; a single
server, kept across a restart; a port taken at start or restart; every
server ended by the harness's cleanup."""
import json
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import natscluster  # noqa: E402
from harness import HOST, SLOWDOWN, check, run, test, wait_for  # noqa: E402
from natscluster import NatsCluster  # noqa: E402

MB = 1024 * 1024


def info(url):
    """The INFO greeting a NATS client gets on connecting to url."""
    host, port = url[len("nats://"):].rsplit(":", 1)
    check(host == HOST, "url %r is not on %s" % (url, HOST))
    with socket.create_connection((host, int(port)), timeout=5.0 * SLOWDOWN) as s:
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            check(chunk, "%s closed before INFO (got %r)" % (url, data))
            data += chunk
    line = data.split(b"\r\n", 1)[0].decode("utf-8")
    check(line.startswith("INFO "), "%s greeted with %r" % (url, line[:200]))
    return json.loads(line[5:])


def js_request(url, subject, body, headers=None):
    """One request over the NATS protocol (the JetStream API, or a publish
    to a stream): its reply parsed as JSON. A raw client, so the fixture is
    checked without the C one."""
    host, port = url[len("nats://"):].rsplit(":", 1)
    body = json.dumps(body).encode() if isinstance(body, dict) else body.encode()
    if headers:
        head = ("NATS/1.0\r\n" + "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n").encode()
        pub = b"HPUB %s _INBOX.t %d %d\r\n" % (subject.encode(), len(head), len(head) + len(body)) + head
    else:
        pub = b"PUB %s _INBOX.t %d\r\n" % (subject.encode(), len(body))
    with socket.create_connection((host, int(port)), timeout=10.0 * SLOWDOWN) as s:
        f = s.makefile("rb")
        check(f.readline().startswith(b"INFO "), "%s sent no INFO" % url)
        s.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\nSUB _INBOX.t 1\r\n'
                  + pub + body + b"\r\n")
        while True:
            line = f.readline()
            check(line, "%s closed before answering %s" % (url, subject))
            parts = line.split()
            if parts[0] == b"PING":
                s.sendall(b"PONG\r\n")
            elif parts[0] in (b"MSG", b"HMSG"):
                data = f.read(int(parts[-1]))
                check(parts[0] == b"MSG", "%s: no responders for %s (%r)" % (url, subject, data[:100]))
                return json.loads(data.decode())
            else:
                check(parts[0] in (b"+OK", b"PONG", b"INFO"), "%s answered %r" % (url, line[:200]))


def publish(url, subject, text, msg_id):
    """A JetStream publish with a Nats-Msg-Id; its acknowledgement."""
    return js_request(url, subject, text, {"Nats-Msg-Id": msg_id})


def varz(c, i):
    status, doc = c.servers[i].get("/varz")
    check(status == 200 and doc, "server %d /varz answered %s" % (i, status))
    return doc


def meta(c, i):
    doc = c.jsz(i)
    check(doc is not None, "server %d /jsz did not answer 200" % i)
    return doc.get("meta_cluster") or {}


@test(timeout=20)
def three_servers_with_jetstream_and_a_meta_leader():
    c = NatsCluster.start(3)
    urls = c.urls().split(",")
    check(urls == [c.url(i) for i in range(3)] and len(set(urls)) == 3, "urls() = %r" % c.urls())
    leader = c.leader()
    check(leader in ("n0", "n1", "n2"), "no meta leader: %r" % leader)
    names, stores = set(), set()
    for i in range(3):
        greeting = info(c.url(i))
        check(greeting.get("jetstream") is True, "server %d INFO lacks jetstream: %r" % (i, greeting))
        check(greeting.get("max_payload") == 8 * MB, "server %d max_payload %r" % (i, greeting.get("max_payload")))
        check(greeting.get("cluster") == c.cluster_name, "server %d cluster %r" % (i, greeting.get("cluster")))
        names.add(greeting.get("server_name"))
        doc = c.jsz(i)
        stores.add(doc["config"]["store_dir"])
        check(doc["config"]["max_memory"] == 64 * MB and doc["config"]["max_storage"] == 256 * MB,
              "server %d JetStream limits %r" % (i, doc["config"]))
        m = meta(c, i)
        check(m.get("leader") == leader and m.get("cluster_size") == 3, "server %d meta group %r" % (i, m))
        check(varz(c, i)["cluster"].get("name") == c.cluster_name, "server %d /varz cluster" % i)
        status, routes = c.servers[i].get("/routez")
        check(status == 200 and routes.get("num_routes") == 2, "server %d routes %r" % (i, routes))
    check(names == {"n0", "n1", "n2"}, "server names %r" % names)
    check(len(stores) == 3 and all(s.startswith(c.dir) for s in stores), "store folders %r" % stores)
    replicas = meta(c, c.leader_index()).get("replicas") or []
    check(sorted(r["name"] for r in replicas if r.get("current")) == sorted(names - {leader}),
          "the leader's replicas %r" % replicas)
    # Ready means usable at once: a stream on all three, a publish stored.
    created = js_request(c.url(2), "$JS.API.STREAM.CREATE.T", {"name": "T", "subjects": ["t.>"], "num_replicas": 3})
    check(created.get("config", {}).get("num_replicas") == 3, "stream create answered %r" % created)
    ack = publish(c.url(0), "t.a", "one", "m1")
    check(ack == {"stream": "T", "seq": 1}, "publish answered %r" % ack)


@test(timeout=40)
def killed_meta_leader_is_replaced_and_rejoins():
    c = NatsCluster.start(3)
    old = c.leader_index()
    old_name, old_port = c.servers[old].name, c.servers[old].client_port
    store = c.jsz(old)["config"]["store_dir"]
    js_request(c.url(old), "$JS.API.STREAM.CREATE.T", {"name": "T", "subjects": ["t.>"], "num_replicas": 3})
    check(publish(c.url(old), "t.a", "one", "m1").get("seq") == 1, "first publish not stored")
    c.kill(old)
    check(not c.running(old), "server %d still runs after kill()" % old)
    others = [i for i in range(3) if i != old]
    # Both survivors must name the same new leader (leader() ignores the dead one they still name at first).
    new = wait_for(lambda: c.leader(), 20.0 * SLOWDOWN, "a new meta leader among %r" % others, 0.05)
    check(new != old_name, "the killed server %s is still the leader" % old_name)
    c.wait_healthy()
    for i in others:
        check(meta(c, i).get("leader") == new, "server %d meta group %r" % (i, meta(c, i)))
    ack = publish(c.url(others[0]), "t.a", "two", "m2")
    check(ack == {"stream": "T", "seq": 2}, "publish on the two survivors answered %r" % ack)
    c.start_server(old)
    check(c.running(old) and c.servers[old].client_port == old_port, "server %d did not restart on its port" % old)
    check(info(c.url(old)).get("jetstream") is True, "restarted server %d has no JetStream" % old)
    check(c.jsz(old)["config"]["store_dir"] == store, "restarted server %d changed store" % old)
    # Its copy of the stream catches up with what was stored while it was down.
    wait_for(lambda: (c.jsz(old) or {}).get("messages") == 2, 10.0 * SLOWDOWN, "server %d to hold 2 messages" % old)
    for i in range(3):
        m = meta(c, i)
        check(m.get("cluster_size") == 3 and m.get("leader") == c.leader(), "server %d after rejoin: %r" % (i, m))
    replicas = meta(c, c.leader_index()).get("replicas") or []
    check(sorted(r["name"] for r in replicas if r.get("current")) == sorted({"n0", "n1", "n2"} - {c.leader()}),
          "the leader's replicas after the rejoin %r" % replicas)


@test(timeout=15)
def single_server_with_jetstream():
    c = NatsCluster.start(1)
    check(c.urls() == c.url(0), "urls() = %r" % c.urls())
    greeting = info(c.url(0))
    check(greeting.get("jetstream") is True and "cluster" not in greeting, "INFO %r" % greeting)
    doc = c.jsz(0)
    check(doc["config"]["max_storage"] == 256 * MB and "meta_cluster" not in doc, "/jsz %r" % doc)
    check(varz(c, 0).get("max_payload") == 8 * MB, "/varz max_payload")
    js_request(c.url(0), "$JS.API.STREAM.CREATE.T", {"name": "T", "subjects": ["t.>"]})
    check(publish(c.url(0), "t.a", "one", "m1") == {"stream": "T", "seq": 1}, "first publish not stored")
    c.stop()
    check(not c.running(0), "server still runs after stop()")
    # Started again on its store: the stream, its message and its duplicate window are kept.
    c.start_server(0)
    check(c.jsz(0).get("messages") == 1, "after the restart /jsz %r" % c.jsz(0))
    ack = publish(c.url(0), "t.a", "one", "m1")
    check(ack.get("duplicate") is True and ack.get("seq") == 1, "publish again answered %r" % ack)


@test(timeout=15)
def port_taken_at_start_is_retried():
    # The first port the fixture picks is held by a listener: that server
    # fails to bind, and start() begins again on other ports.
    holder = socket.socket()
    holder.bind((HOST, 0))
    holder.listen()
    held = holder.getsockname()[1]
    picks = iter([held])
    real = natscluster.daemon_port
    natscluster.daemon_port = lambda: next(picks, None) or real()
    try:
        c = NatsCluster.start(1)
    finally:
        natscluster.daemon_port = real
        holder.close()
    check(c.servers[0].client_port != held, "server on the held port %d" % held)
    check("address already in use" in open(os.path.join(c.dir, "try0", "n0", "nats-server.log")).read(),
          "the first try did not fail to bind")
    check(info(c.url(0)).get("jetstream") is True, "no JetStream after the retry")


@test(timeout=20)
def restart_waits_for_its_port():
    c = NatsCluster.start(2)
    port = c.servers[1].route_port
    c.kill(1)
    # Something holds the server's route port (bound last, after the client
    # port) while it is down, until the restart has failed on it.
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind((HOST, port))
    holder.listen()
    failed = lambda: "address already in use" in c.servers[1].log(run_only=True)  # noqa: E731
    releaser = threading.Thread(target=lambda: (wait_for(failed, 10.0 * SLOWDOWN, "a bind failure", 0.02),
                                                holder.close()), daemon=True)
    releaser.start()
    try:
        c.start_server(1)
    finally:
        releaser.join(10.0 * SLOWDOWN)
        holder.close()
    check("address already in use" in c.servers[1].log(), "the restart never met the held port")
    check(c.running(1) and c.servers[1].route_port == port, "not back on route port %d" % port)
    for i in range(2):
        status, routes = c.servers[i].get("/routez")
        check(status == 200 and routes.get("num_routes") == 1, "server %d routes %r" % (i, routes))
        check(meta(c, i).get("cluster_size") == 2, "server %d meta group %r" % (i, meta(c, i)))


@test(timeout=15)
def cleanup_ends_every_server():
    c = NatsCluster.start(2)
    procs = [s.proc for s in c.servers]
    check(all(p.poll() is None for p in procs), "a server is not running")
    problems = harness._cleanup()
    check(problems == [], "cleanup reported %r" % problems)
    check(all(p.poll() is not None for p in procs), "a server survived the cleanup")
    check(not os.path.exists(c.dir), "the cluster's folder %s survived the cleanup" % c.dir)


if __name__ == "__main__":
    run()
