#!/usr/bin/env python3
"""Outbound benchmark: N messages accepted by the daemon in batches and sent
to the fake provider (nginx answering a canned JSON, fake_provider.py) with
the mock adapter (batches of up to 100 a request). The daemon runs on every
core, as a user runs it (its loop and its store's writer are two threads);
DAEMON_CPUS=0 pins it to CPU 0 (taskset) for the figure of one core. nginx
runs on CPU 1 (its 2,000 requests cost little), the posting client wherever
the OS puts it.

Prints the accept rate, the end-to-end messages/s (first POST until the
daemon's smsrules_provider_sent_total says all are sent: accepted → provider
answered → `sent` committed), the daemon's CPU µs per message (all its
threads, /proc/PID/stat before and after) and its peak memory. Settings
through the environment: MESSAGES (default 200000), BATCH (1000), CLIENTS
(4), SMSRULES_BIN, BUILD; PERF=FILE records `perf record -g` of the daemon
from the first POST until all are sent into FILE (PERF_ARGS replaces -g, as
in sendsms.sh); read it with perf_summary.py."""
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from fake_provider import Nginx

BIN = os.environ.get("SMSRULES_BIN") or os.path.join(os.environ.get("BUILD", "build"), "smsrules")
N = int(os.environ.get("MESSAGES", "200000"))
BATCH = int(os.environ.get("BATCH", "1000"))
CLIENTS = int(os.environ.get("CLIENTS", "4"))


def start(cmd, log):
    err = open(log, "wb")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 10
    while time.time() < deadline:
        for line in open(log, "rb").read().decode("utf-8", "replace").splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if obj.get("msg") == "listening":
                return p, obj["port"]
        if p.poll() is not None:
            sys.exit("outbound: %s exited: %s" % (" ".join(cmd), open(log).read()[-1000:]))
        time.sleep(0.01)
    sys.exit("outbound: %s did not start" % " ".join(cmd))


def daemon_cpu_s(pid):
    """The daemon's user + system CPU time so far (all its threads), in seconds:
    less noisy than the rate on a shared machine, so compare changes by it."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get_json(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    doc = json.loads(c.getresponse().read())
    c.close()
    return doc


class AnonSampler:
    """Samples a process's peak anonymous memory (RssAnon, kB) in a thread:
    VmHWM counts the LMDB map's file-backed pages too; this is what the
    process itself holds."""

    def __init__(self, pid, every_s=0.02):
        self.pid, self.every_s, self.peak_kb, self.running = pid, every_s, 0, True
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def now_kb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("RssAnon"):
                    return int(line.split()[1])
        return 0

    def run(self):
        while self.running:
            try:
                self.peak_kb = max(self.peak_kb, self.now_kb())
            except OSError:
                return
            time.sleep(self.every_s)

    def stop(self):
        self.running = False
        self.thread.join()


def post_batches(port, batches, batch, clients, label="Your order %d has shipped"):
    """POSTs batches x batch messages to /v1/messages from `clients`
    keep-alive connections (numbers +8491xxxxxx7: valid, and clear of the
    mock's outcomes keyed on the last four digits). Returns the statuses of
    the batches that were not answered 202."""
    lock = threading.Lock()
    next_batch = [0]
    failures = []

    def client():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                b = next_batch[0]
                next_batch[0] += 1
            if b >= batches:
                break
            msgs = [{"to": "+8491%06d7" % ((b * batch + i) % 1000000), "text": label % (b * batch + i)}
                    for i in range(batch)]
            c.request("POST", "/v1/messages", body=json.dumps({"messages": msgs}),
                      headers={"Authorization": "Bearer bench"})
            r = c.getresponse()
            r.read()
            if r.status != 202:
                failures.append(r.status)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def metric(port, name):
    """The daemon's value of one series (0 when absent)."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
    return 0


def wait_sent(port, name, total, stall_s=60):
    """Polls the daemon's sent counter every 50 ms until it reaches total;
    gives up when it has not moved for stall_s seconds. Returns the count."""
    last, moved = -1, time.time()
    while True:
        sent = metric(port, name)
        if sent >= total:
            return sent
        if sent != last:
            last, moved = sent, time.time()
        elif time.time() - moved > stall_s:
            return sent
        time.sleep(0.05)


def load():
    with open("/proc/loadavg") as f:
        return ", ".join(f.read().split()[:3])


def disk_sync(directory):
    """The median and p90 of 30 fdatasync calls of a 4 KiB write in directory (the
    store's file system): on a shared machine their latency moves the rates."""
    path = os.path.join(directory, "sync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    ts = []
    for i in range(30):
        os.pwrite(fd, b"x" * 4096, i * 4096)
        t = time.perf_counter()
        os.fdatasync(fd)
        ts.append(time.perf_counter() - t)
    os.close(fd)
    os.unlink(path)
    ts.sort()
    return "fdatasync %.2f ms median, %.2f ms p90" % (ts[len(ts) // 2] * 1e3, ts[26] * 1e3)


def main():
    work = tempfile.mkdtemp(prefix="smsrules-bench-")
    pin = os.path.exists("/usr/bin/taskset") and os.cpu_count() >= 2
    load_before = load() + "; disk " + disk_sync(work)
    fake = Nginx(os.path.join(work, "nginx"))
    daemon = None
    try:
        if pin:
            subprocess.run(["taskset", "-p", "-c", "1", str(fake.pid)], stdout=subprocess.DEVNULL, check=True)
        rules = os.path.join(work, "rules.lua")
        with open(rules, "w") as f:
            f.write('sms.config{ api_keys = { "bench" } }\n'
                    'sms.provider("fake", { adapter = "mock", url = "http://127.0.0.1:%d/batch", concurrency = 16 })\n'
                    % fake.port)
        os.mkdir(os.path.join(work, "data"))
        cpus = os.environ.get("DAEMON_CPUS", "")
        daemon_cmd = (["taskset", "-c", cpus] if pin and cpus else []) + [
            BIN, "serve", "-c", rules, "--listen", "127.0.0.1:0", "--data", os.path.join(work, "data")]
        daemon, port = start(daemon_cmd, os.path.join(work, "daemon.log"))
        pid = daemon.pid  # taskset execs the binary: the same pid
        where = ("; daemon on cpu %s, nginx on cpu 1" % cpus if cpus else "; daemon on every core, nginx on cpu 1") if pin else ""
        run(pid, port, fake, where, load_before)
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        fake.stop()
        subprocess.run(["rm", "-rf", work])


def perf_start(pid):
    """`perf record` of the daemon into $PERF, once perf has attached (its file has its header); None
    without PERF."""
    path = os.environ.get("PERF")
    if not path:
        return None
    if subprocess.run(["sh", "-c", "command -v perf"], stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "linux-perf"], stdout=subprocess.DEVNULL, check=True)
    args = (os.environ.get("PERF_ARGS") or "-g").split()
    p = subprocess.Popen(["perf", "record"] + args + ["-o", path, "-p", str(pid)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not (os.path.exists(path) and os.path.getsize(path) > 0):
        if time.time() > deadline or p.poll() is not None:
            p.kill()
            sys.exit("outbound.sh: perf record did not start")
        time.sleep(0.02)
    return p


def perf_stop(p):
    if p:
        p.send_signal(2)  # SIGINT: perf writes its data and exits
        p.wait()


def run(pid, port, fake, where, load_before):
    batches = N // BATCH
    total = batches * BATCH
    sampler = AnonSampler(pid)
    perf = perf_start(pid)
    cpu0 = daemon_cpu_s(pid)
    t0 = time.time()
    failures = post_batches(port, batches, BATCH, CLIENTS)
    t_accepted = time.time()
    sent = wait_sent(port, 'smsrules_provider_sent_total{provider="fake"}', total)
    t_done = time.time()
    cpu_s = daemon_cpu_s(pid) - cpu0
    perf_stop(perf)
    sampler.stop()
    with open("/proc/%d/status" % pid) as f:
        hwm = [line.split()[1] for line in f if line.startswith("VmHWM")][0]
    requests = fake.received()
    print("outbound.sh: %d messages in batches of %d (%d clients): accepted in %.1fs (%.0f/s), all sent (committed) "
          "in %.1fs: %.0f messages/s end to end (aim 60000), daemon CPU %.1f µs/message; the provider (nginx, mock "
          "adapter) saw %d requests; daemon peak RSS %.1f MB (anonymous %.1f MB, the rest LMDB map pages)%s; "
          "load average %s before, %s after%s" % (
              total, BATCH, CLIENTS, t_accepted - t0, total / (t_accepted - t0), t_done - t0, sent / (t_done - t0),
              cpu_s * 1e6 / max(sent, 1), requests, int(hwm) / 1024.0, sampler.peak_kb / 1024.0,
              where, load_before,
              load() + "; disk " + disk_sync(os.path.dirname(fake.dir)),
              "; %d batches refused" % len(failures) if failures else ""))
    if failures or sent < total:
        sys.exit("outbound: %d of %d sent, %d batches refused" % (sent, total, len(failures)))


if __name__ == "__main__":
    main()
