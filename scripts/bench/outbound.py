#!/usr/bin/env python3
"""Outbound benchmark: N messages accepted by the daemon and delivered to
`smsrules mock-provider`. The mock runs on its own core (CPU 1), the daemon
on CPU 0 (taskset), the posting client wherever the OS puts it.

Prints end-to-end messages/s (first POST to the mock having received all)
and the daemon's peak RSS (VmHWM). Settings through the environment:
MESSAGES (default 200000), BATCH (1000), CLIENTS (4), SMSRULES_BIN."""
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

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


def main():
    work = tempfile.mkdtemp(prefix="smsrules-bench-")
    pin = os.path.exists("/usr/bin/taskset") and os.cpu_count() >= 2
    mock_cmd = (["taskset", "-c", "1"] if pin else []) + [BIN, "mock-provider", "--listen", "127.0.0.1:0"]
    mock, mock_port = start(mock_cmd, os.path.join(work, "mock.log"))
    rules = os.path.join(work, "rules.lua")
    with open(rules, "w") as f:
        f.write('sms.config{ api_keys = { "bench" } }\n'
                'sms.provider("mock", { adapter = "mock", url = "http://127.0.0.1:%d/send", concurrency = 16 })\n'
                % mock_port)
    os.mkdir(os.path.join(work, "data"))
    daemon_cmd = (["taskset", "-c", os.environ.get("DAEMON_CPUS", "0")] if pin else []) + [BIN, "serve", "-c", rules, "--listen", "127.0.0.1:0",
                                                             "--data", os.path.join(work, "data")]
    daemon, port = start(daemon_cmd, os.path.join(work, "daemon.log"))
    pid = daemon.pid  # taskset execs the binary: the same pid

    batches = N // BATCH
    sampler = AnonSampler(pid)
    t0 = time.time()
    failures = post_batches(port, batches, BATCH, CLIENTS)
    t_accepted = time.time()
    received = 0
    while received < batches * BATCH:
        received = get_json(mock_port, "/stats?by_recipient=0")["received"]
        if time.time() - t0 > 600:
            break
        time.sleep(0.05)
    t_done = time.time()
    sampler.stop()
    with open("/proc/%d/status" % pid) as f:
        hwm = [line.split()[1] for line in f if line.startswith("VmHWM")][0]
    cpu_s = daemon_cpu_s(pid)
    daemon.terminate()
    mock.terminate()
    daemon.wait()
    mock.wait()
    total = batches * BATCH
    print("outbound: %d messages: accepted in %.1fs (%.0f/s), delivered to the mock in %.1fs: %.0f messages/s "
          "end to end; daemon CPU %.1f µs/message; daemon peak RSS %.1f MB (anonymous %.1f MB, the rest LMDB map pages)%s%s" % (
              total, t_accepted - t0, total / (t_accepted - t0), t_done - t0, received / (t_done - t0),
              cpu_s * 1e6 / max(received, 1),
              int(hwm) / 1024.0, sampler.peak_kb / 1024.0, "; pinned: daemon cpu0, mock cpu1" if pin else "",
              "; %d batches refused" % len(failures) if failures else ""))
    subprocess.run(["rm", "-rf", work])
    if failures or received < total:
        sys.exit(1)


if __name__ == "__main__":
    main()
