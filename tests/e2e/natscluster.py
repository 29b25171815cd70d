"""A real NATS JetStream cluster on loopback ports, for the cluster tests.

Python 3 standard library only; used with harness.py:

    from harness import Daemon, test, run
    from natscluster import NatsCluster

    @test(timeout=60)
    def survives_a_server():
        c = NatsCluster.start(3)          # returns once JetStream is ready
        d = Daemon.start(args=["--cluster", c.urls()])
        ...
        i = c.leader_index()
        c.kill(i)                         # SIGKILL the meta leader
        c.wait_healthy()                  # the other two elected a new one (5-8 s)
        c.start_server(i)                 # same ports and store; rejoined

Each server is Debian's `nats-server` ($NATS_SERVER overrides it) with its
own config file, store folder, log file, client port, monitoring (HTTP) port
and, with n > 1, cluster route port, all under one temporary folder. Every
server started is SIGKILLed after the test (passed or not) by harness.py's
cleanup, and the folder removed. Readiness is read from the servers'
monitoring endpoints (/healthz, /jsz, /routez), never from a sleep. The
timeouts given to start(), start_server() and wait_healthy() are multiplied
by SLOWDOWN.
"""

import http.client
import json
import os
import secrets
import shutil
import subprocess
import time

import harness
from harness import HOST, SLOWDOWN, TestFailure, daemon_port, make_temp_dir, port_bindable, wait_for

NATS_SERVER = os.environ.get("NATS_SERVER") or shutil.which("nats-server") or "/usr/sbin/nats-server"

# A SIGKILLed meta leader is noticed and replaced in 5-8 s (nats-server
# 2.9's Raft timers, not configurable); the default deadlines leave room for
# that on a loaded machine before SLOWDOWN.
READY_TIMEOUT = 20.0
# Each poll asks every server 3 questions: often enough, without loading a
# busy machine (or filling the servers' logs with failed health checks).
POLL_INTERVAL = 0.1

CONFIG = """# nats-server %(index)d of %(n)d, written by tests/e2e/natscluster.py
server_name: "%(name)s"
listen: "%(host)s:%(client_port)d"
http: "%(host)s:%(http_port)d"
# The cluster store publishes batches up to this size.
max_payload: 8MB
jetstream {
  store_dir: "%(store_dir)s"
  max_mem_store: %(max_mem_store)s
  max_file_store: %(max_file_store)s
}
"""

CLUSTER_BLOCK = """cluster {
  name: "%(cluster_name)s"
  listen: "%(host)s:%(route_port)d"
  routes: [
%(routes)s
  ]
}
"""


class NatsServer:
    """One nats-server of a NatsCluster: its ports, files and process.
    kill() and sanitizer_reports() let harness.py's cleanup end it."""

    def __init__(self, index, name, folder):
        self.index = index
        self.name = name
        self.dir = folder
        self.store_dir = os.path.join(folder, "store")
        self.config_path = os.path.join(folder, "nats-server.conf")
        self.log_path = os.path.join(folder, "nats-server.log")
        self.client_port = self.http_port = self.route_port = None
        self.proc = None
        # Whether the server should run: spawned and not killed or stopped by
        # the test; one that exited on its own fails wait_healthy() at once.
        self.expected = False
        self.log_start = 0  # where the current run's lines begin in the log

    @property
    def url(self):
        return "nats://%s:%d" % (HOST, self.client_port)

    def ports(self):
        return [p for p in (self.client_port, self.http_port, self.route_port) if p]

    def spawn(self):
        # Registered first: a test timing out right after the start still ends it.
        self.proc = None
        if self not in harness._open_daemons:
            harness._open_daemons.append(self)
        # Appended to, so a restarted server's log follows the earlier runs'.
        with open(self.log_path, "ab") as log:
            self.log_start = log.tell()
            self.proc = subprocess.Popen([NATS_SERVER, "-c", self.config_path], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, cwd=self.dir)
        self.expected = True

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        self.expected = False
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self in harness._open_daemons:
            harness._open_daemons.remove(self)

    def sanitizer_reports(self):
        return []

    def log(self, run_only=False):
        """The log file's text (run_only: only the current run's lines)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_start if run_only else 0)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def listening(self):
        """Whether the current run bound all its ports: the route listener
        (with a cluster block), else the client one, is bound last."""
        last = "Listening for route connections" if self.route_port else "Server is ready"
        return last in self.log(run_only=True)

    def bind_failed(self):
        """Whether the current run exited because one of its ports was taken."""
        return self.proc.poll() is not None and "address already in use" in self.log(run_only=True)

    def died(self):
        """Whether the server exited though the test did not end it."""
        return self.expected and self.proc is not None and self.proc.poll() is not None

    def get(self, path):
        """GET path on the monitoring port: (status, parsed JSON or None), or
        (None, None) when the server does not answer."""
        conn = http.client.HTTPConnection(HOST, self.http_port, timeout=2.0 * SLOWDOWN)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            try:
                return resp.status, json.loads(body.decode("utf-8"))
            except ValueError:
                return resp.status, None
        except OSError:
            return None, None
        finally:
            conn.close()


class NatsCluster:
    """n nats-servers with JetStream on loopback (one without a cluster block
    when n == 1). Servers are addressed by index 0..n-1."""

    def __init__(self, n, max_mem_store, max_file_store):
        self.n = n
        self.dir = make_temp_dir("smsrules-nats-")
        self.cluster_name = "smsrules-test-" + secrets.token_hex(4)
        self.max_mem_store = max_mem_store
        self.max_file_store = max_file_store
        self.servers = []

    @classmethod
    def start(cls, n=3, max_mem_store="64MB", max_file_store="256MB", ready_timeout=READY_TIMEOUT, attempts=5):
        """Starts n servers and returns once every one answers and JetStream
        is ready: with n > 1, a meta leader every server agrees on, every
        server counting n peers and routed to all others. A port taken
        between our check and a server's bind starts all of them again on
        new ports (up to `attempts` times)."""
        if n < 1:
            raise ValueError("a cluster needs at least one server")
        c = cls(n, max_mem_store, max_file_store)
        for attempt in range(attempts):
            c._create_servers(attempt)
            for s in c.servers:
                s.spawn()
            if c._wait_started(ready_timeout * SLOWDOWN):
                return c
            for s in c.servers:
                s.kill()
        raise TestFailure("nats-servers found no free ports after %d attempts:\n%s" % (attempts, c.log_tails()))

    def _create_servers(self, attempt):
        """Fresh folders, distinct ports and a config file for every server."""
        taken = set()

        def port():
            p = daemon_port()
            while p in taken:
                p = daemon_port()
            taken.add(p)
            return p

        self.servers = []
        for i in range(self.n):
            s = NatsServer(i, "n%d" % i, os.path.join(self.dir, "try%d" % attempt, "n%d" % i))
            os.makedirs(s.store_dir)
            s.client_port, s.http_port = port(), port()
            s.route_port = port() if self.n > 1 else None
            self.servers.append(s)
        for s in self.servers:
            self._write_config(s)

    def _write_config(self, s):
        text = CONFIG % {"index": s.index, "n": self.n, "name": s.name, "host": HOST,
                         "client_port": s.client_port, "http_port": s.http_port, "store_dir": s.store_dir,
                         "max_mem_store": self.max_mem_store, "max_file_store": self.max_file_store}
        if self.n > 1:
            routes = ",\n".join('    "nats-route://%s:%d"' % (HOST, o.route_port)
                                for o in self.servers if o is not s)
            text += CLUSTER_BLOCK % {"cluster_name": self.cluster_name, "host": HOST,
                                     "route_port": s.route_port, "routes": routes}
        with open(s.config_path, "w") as f:
            f.write(text)

    def _wait_started(self, timeout):
        """True once the cluster is healthy; False when a server could not
        bind a port (the caller retries on others); TestFailure otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            for s in self.servers:
                if s.bind_failed():
                    return False
                if not s.running():
                    raise TestFailure("nats-server %s exited (%s) at start:\n%s"
                                      % (s.name, s.proc.returncode, self.log_tails()))
            waiting = [s.name for s in self.servers if not s.listening()]
            problem = "%s not listening yet" % ", ".join(waiting) if waiting else self.health_problem()
            if problem is None:
                return True
            if time.monotonic() >= deadline:
                raise TestFailure("NATS cluster not ready after %.1fs: %s\n%s"
                                  % (timeout, problem, self.log_tails()))
            time.sleep(POLL_INTERVAL)

    # -- addresses --

    def url(self, i):
        """nats://127.0.0.1:PORT of server i."""
        return self.servers[i].url

    def urls(self):
        """Every server's URL, comma-separated (what `smsrules serve --cluster` takes)."""
        return ",".join(s.url for s in self.servers)

    # -- servers --

    def running(self, i):
        return self.servers[i].running()

    def kill(self, i):
        """SIGKILLs server i (and reaps it)."""
        self.servers[i].kill()

    def stop(self, timeout=10.0):
        """Ends every server: SIGTERM, then SIGKILL for one still running
        after timeout x SLOWDOWN."""
        running = [s for s in self.servers if s.running()]
        for s in running:
            s.expected = False
            s.proc.terminate()
        deadline = time.monotonic() + timeout * SLOWDOWN
        for s in running:
            try:
                s.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            s.kill()

    def start_server(self, i, ready_timeout=READY_TIMEOUT, attempts=5, healthy=True):
        """Starts server i again on its ports, config and store folder (after
        kill() or stop()) and returns once it rejoined and the cluster is
        healthy (wait_healthy); with healthy=False, once it listens on its
        ports (to start several servers of a cluster that has no quorum
        yet, then wait_healthy()). When one of its ports was taken
        meanwhile, retries once the port can be bound again (a bounded wait
        each time)."""
        s = self.servers[i]
        if s.running():
            raise TestFailure("start_server(%d): %s is running" % (i, s.name))
        for attempt in range(attempts):
            s.spawn()
            deadline = time.monotonic() + ready_timeout * SLOWDOWN
            while not s.listening() and s.running():
                if time.monotonic() >= deadline:
                    raise TestFailure("nats-server %s did not listen within %.1fs:\n%s"
                                      % (s.name, ready_timeout * SLOWDOWN, self.log_tails()))
                time.sleep(POLL_INTERVAL)
            if s.running():
                if healthy:
                    self.wait_healthy(max(0.0, deadline - time.monotonic()) / SLOWDOWN)
                return
            if not s.bind_failed():
                raise TestFailure("nats-server %s exited (%s) at restart:\n%s"
                                  % (s.name, s.proc.returncode, self.log_tails()))
            s.kill()
            wait_for(lambda: all(port_bindable(p) for p in s.ports()), 2.0 * SLOWDOWN,
                     "the ports of %s to be free" % s.name, POLL_INTERVAL)
        raise TestFailure("nats-server %s did not restart: its ports stayed in use after %d attempts:\n%s"
                          % (s.name, attempts, self.log_tails()))

    # -- health, as the monitoring endpoints tell it --

    def jsz(self, i):
        """Server i's GET /jsz (JetStream and its meta group), or None."""
        status, doc = self.servers[i].get("/jsz")
        return doc if status == 200 else None

    def leader(self):
        """The meta leader's server name when every running server names the
        same running one, else None (a SIGKILLed leader is still named by
        the others until they notice it is gone)."""
        running = [s for s in self.servers if s.running()]
        return self._agreed_leader({s.name: self.jsz(s.index) for s in running})

    @staticmethod
    def _agreed_leader(docs):
        """The leader every /jsz of docs ({running server's name: doc})
        names, when it is one of them; else None."""
        seen = {((doc or {}).get("meta_cluster") or {}).get("leader") for doc in docs.values()}
        leader = seen.pop() if len(seen) == 1 else None
        return leader if leader in docs else None

    def leader_index(self):
        """The index of the meta leader (leader()), or None."""
        name = self.leader()
        return next((s.index for s in self.servers if s.name == name), None)

    def health_problem(self):
        """None when JetStream is healthy on every running server, else what
        is not yet: /healthz not 200, no agreed running meta leader, a server
        counting fewer than n peers or not routed to every other running
        server, or a server the leader does not see as current."""
        running = [s for s in self.servers if s.running()]
        if not running:
            return "no server runs"
        for s in running:
            status, doc = s.get("/healthz")
            if status != 200:
                return "%s /healthz: %s %s" % (s.name, status, doc)
        if self.n == 1:
            doc = self.jsz(0)
            return None if doc and doc.get("config") else "JetStream not enabled: %s" % doc
        return self._cluster_problem(running)

    def _cluster_problem(self, running):
        docs = {}
        for s in running:
            doc = docs[s.name] = self.jsz(s.index)
            meta = (doc or {}).get("meta_cluster") or {}
            if meta.get("cluster_size") != self.n:
                return "%s counts %s meta peers, not %d" % (s.name, meta.get("cluster_size"), self.n)
        leader = self._agreed_leader(docs)
        if leader is None:
            return "no meta leader that every running server agrees on"
        replicas = docs[leader]["meta_cluster"].get("replicas") or []
        current = {r.get("name") for r in replicas if r.get("current")}
        for s in running:
            if s.name != leader and s.name not in current:
                return "the meta leader %s does not see %s as current" % (leader, s.name)
        for s in running:
            status, doc = s.get("/routez")
            remote = {r.get("remote_id") for r in (doc or {}).get("routes") or []}
            missing = [o.name for o in running if o is not s and docs[o.name].get("server_id") not in remote]
            if missing:
                return "%s has no route to %s" % (s.name, ", ".join(missing))
        return None

    def wait_healthy(self, timeout=READY_TIMEOUT):
        """Waits (timeout x SLOWDOWN) until JetStream has a meta leader among
        the running servers and every running server is current with it;
        TestFailure with what was missing and the logs' tails otherwise."""
        deadline = time.monotonic() + timeout * SLOWDOWN
        while True:
            for s in self.servers:
                if s.died():
                    raise TestFailure("nats-server %s exited (%s) though the test did not end it:\n%s"
                                      % (s.name, s.proc.returncode, self.log_tails()))
            problem = self.health_problem()
            if problem is None:
                return
            if time.monotonic() >= deadline:
                raise TestFailure("NATS cluster not healthy after %.1fs: %s\n%s"
                                  % (timeout * SLOWDOWN, problem, self.log_tails()))
            time.sleep(POLL_INTERVAL)

    def log_tails(self, lines=15):
        """The last lines of every server's log, for failure messages
        (without the warnings our own /healthz polls cause)."""
        out = []
        for s in self.servers:
            tail = [line for line in s.log().splitlines() if "Healthcheck failed" not in line][-lines:]
            out.append("--- %s (%s, %s) ---\n%s" % (s.name, "running" if s.running() else "down", s.log_path,
                                                   "\n".join(tail)))
        return "\n".join(out)
