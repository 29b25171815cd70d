"""End-to-end tests of the NATS JetStream cluster fixture (natscluster.py)
the cluster tests run on: what it starts is checked the way a client and an
operator see it, through each server's client port (its INFO greeting) and
monitoring endpoints (/jsz, /varz, /routez): three servers with JetStream
and one meta leader; a SIGKILLed meta leader replaced by the other two; the
killed server rejoining on its ports and store; a single server; a port
taken at start; every server ended by the harness's cleanup."""
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


@test(timeout=40)
def killed_meta_leader_is_replaced_and_rejoins():
    c = NatsCluster.start(3)
    old = c.leader_index()
    old_name, old_port = c.servers[old].name, c.servers[old].client_port
    store = c.jsz(old)["config"]["store_dir"]
    c.kill(old)
    check(not c.running(old), "server %d still runs after kill()" % old)
    others = [i for i in range(3) if i != old]
    # Both survivors must name the same new leader (leader() ignores the dead one they still name at first).
    new = wait_for(lambda: c.leader(), 15.0 * SLOWDOWN, "a new meta leader among %r" % others, 0.05)
    check(new != old_name, "the killed server %s is still the leader" % old_name)
    c.wait_healthy()
    for i in others:
        check(meta(c, i).get("leader") == new, "server %d meta group %r" % (i, meta(c, i)))
    c.start_server(old)
    check(c.running(old) and c.servers[old].client_port == old_port, "server %d did not restart on its port" % old)
    check(info(c.url(old)).get("jetstream") is True, "restarted server %d has no JetStream" % old)
    check(c.jsz(old)["config"]["store_dir"] == store, "restarted server %d changed store" % old)
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
    c.stop()
    check(not c.running(0), "server still runs after stop()")


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
