"""Queued memory: MESSAGES (default 1,000,000) messages accepted in batches of
1,000 while the only provider is down (nothing listens on its port), then the
daemon's peak anonymous memory (RssAnon: its own heap, not the LMDB map's file
pages). The queue lives in the store, so this must not grow with MESSAGES.
Environment: MESSAGES, BUILD (default build), SMSRULES_BIN."""
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ.get("SMSRULES_BIN") or os.path.join(os.environ.get("BUILD", "build"), "smsrules")
N = int(os.environ.get("MESSAGES", "1000000"))
BATCH = 1000
CLIENTS = 4


def rss_anon_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon"):
                return int(line.split()[1])
    return 0


def main():
    work = tempfile.mkdtemp(prefix="smsrules-bench-")
    rules = os.path.join(work, "rules.lua")
    with open(rules, "w") as f:
        f.write('sms.config{ api_keys = { "bench" } }\n'
                'sms.provider("down", { adapter = "mock", url = "http://127.0.0.1:9/send" })\n')
    os.mkdir(os.path.join(work, "data"))
    log_path = os.path.join(work, "daemon.log")
    daemon = subprocess.Popen([BIN, "serve", "-c", rules, "--listen", "127.0.0.1:0", "--data",
                               os.path.join(work, "data")], stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    port = None
    deadline = time.time() + 30
    while port is None and time.time() < deadline:
        with open(log_path) as f:
            m = re.search(r'"msg":"listening".*?"port":(\d+)', f.read())
        if m:
            port = int(m.group(1))
        else:
            time.sleep(0.05)
    if port is None:
        sys.exit("queued: the daemon did not start (see %s)" % log_path)

    peak = [0]
    sampling = [True]

    def sample():
        while sampling[0]:
            try:
                peak[0] = max(peak[0], rss_anon_kb(daemon.pid))
            except OSError:
                return
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    lock = threading.Lock()
    next_batch = [0]
    refused = []

    def client():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                b = next_batch[0]
                next_batch[0] += 1
            if b >= N // BATCH:
                return
            msgs = [{"to": "+8491%06d7" % ((b * BATCH + i) % 1000000), "text": "Your order %d" % (b * BATCH + i)}
                    for i in range(BATCH)]
            c.request("POST", "/v1/messages", body=json.dumps({"messages": msgs}),
                      headers={"Authorization": "Bearer bench"})
            r = c.getresponse()
            r.read()
            if r.status != 202:
                refused.append(r.status)

    t0 = time.time()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted_s = time.time() - t0
    time.sleep(5)  # the scheduler meets the dead provider: retries, breaker, queue scans
    sampling[0] = False
    sampler.join()
    now_kb = rss_anon_kb(daemon.pid)
    daemon.terminate()
    daemon.wait()
    subprocess.run(["rm", "-rf", work])
    print("queued: %d messages accepted in %.1fs (%.0f/s) behind a provider that is down; daemon anonymous "
          "memory peak %.1f MB, %.1f MB 5 s later%s" % (N, accepted_s, N / accepted_s, peak[0] / 1024.0,
                                                         now_kb / 1024.0,
                                                         "; %d batches refused" % len(refused) if refused else ""))
    if refused:
        sys.exit(1)


if __name__ == "__main__":
    main()
