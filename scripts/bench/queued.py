"""Queued memory: MESSAGES (default 1,000,000) messages accepted in batches of
1,000 while the only provider is down (nothing listens on its port), then the
daemon's peak anonymous memory (RssAnon: its own heap, not the LMDB map's file
pages). The queue lives in the store, so this must not grow with MESSAGES.
Environment: MESSAGES, BUILD (default build), SMSRULES_BIN."""
import os
import subprocess
import sys
import tempfile
import time

from outbound import BIN, AnonSampler, post_batches, start

N = int(os.environ.get("MESSAGES", "1000000"))
BATCH = 1000
CLIENTS = 4


def main():
    work = tempfile.mkdtemp(prefix="smsrules-bench-")
    rules = os.path.join(work, "rules.lua")
    with open(rules, "w") as f:
        f.write('sms.config{ api_keys = { "bench" } }\n'
                'sms.provider("down", { adapter = "mock", url = "http://127.0.0.1:9/send" })\n')
    os.mkdir(os.path.join(work, "data"))
    daemon, port = start([BIN, "serve", "-c", rules, "--listen", "127.0.0.1:0", "--data", os.path.join(work, "data")],
                         os.path.join(work, "daemon.log"))
    sampler = AnonSampler(daemon.pid, every_s=0.05)
    t0 = time.time()
    refused = post_batches(port, N // BATCH, BATCH, CLIENTS, label="Your order %d")
    accepted_s = time.time() - t0
    time.sleep(5)  # the scheduler meets the dead provider: retries, breaker, queue scans
    sampler.stop()
    now_kb = sampler.now_kb()
    daemon.terminate()
    daemon.wait()
    subprocess.run(["rm", "-rf", work])
    print("queued: %d messages accepted in %.1fs (%.0f/s) behind a provider that is down; daemon anonymous "
          "memory peak %.1f MB, %.1f MB 5 s later%s" % (N, accepted_s, N / accepted_s, sampler.peak_kb / 1024.0,
                                                         now_kb / 1024.0,
                                                         "; %d batches refused" % len(refused) if refused else ""))
    if refused:
        sys.exit(1)


if __name__ == "__main__":
    main()
