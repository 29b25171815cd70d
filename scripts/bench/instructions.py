#!/usr/bin/env python3
"""User-space instructions per message, counted by valgrind's callgrind: a
figure that does not move with the neighbours on a shared machine (the CPU
time per message swings by 10-20% there, more than most single changes
save). The kernel's work (TCP, fsync) is not counted: judge the whole by
sendsms.sh's CPU µs per message, a change in user-space code by this.

One message per request, as sendsms.sh: the daemon under callgrind, a client
sending MESSAGES (default 5,000) POST /v1/messages over CONNECTIONS (default
16) keep-alive connections, each waiting for its answer. After a warm-up of
300 the counters are zeroed; once all MESSAGES are answered (and, end to
end, counted sent) they are dumped. Modes:
  accept   (default) no provider: the accept path alone (HTTP, parse,
           validate, the store unit with its synced commit, the 202)
  send     the generic adapter to the fake provider (nginx, fake_provider.py),
           concurrency 64: accept, then sending, the provider's answer, sent
  inbound  POST /hooks/mock/inbound as inbound.sh (distinct inbound SMS, an
           sms.on_inbound answering each with sms.reply, sent by the mock
           adapter to the fake provider): per inbound SMS with its reply
Prints the instructions per message and the top functions by inclusive
count. Run: python3 scripts/bench/instructions.py [accept|send|inbound] [SMSRULES_BIN]
(a second binary: both, one after the other, to compare). Needs valgrind
(apt-get install -y valgrind).
"""
import json
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from fake_provider import Nginx

N = int(os.environ.get("MESSAGES", "5000"))
CONNS = int(os.environ.get("CONNECTIONS", "16"))
WARM = 300
KEY = "bench-key"


MODES = ("accept", "send", "inbound")
MODE = "accept"


def request(k):
    if MODE == "inbound":
        body = ('{"message_id":"in-%d","from":"+849%07d7","to":"+84900000001","text":"Hello, is my order %d on its way?",'
                '"timestamp":"2026-11-23T10:00:00Z"}' % (k, k % 10000000, k)).encode()
        return (b"POST /hooks/mock/inbound HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body)
    body = ('{"to":"+8491%07d","from":"Shop","text":"Your order %d has shipped. Track it at example.com/t/%d"}' %
            (k % 10000000, k, k)).encode()
    return (b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + KEY.encode() +
            b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def post(port, n, first):
    """n requests over CONNS connections, each sending its next after its answer; fails on any non-202."""
    sel = selectors.DefaultSelector()
    sent = done = 0
    bufs = {}
    for _ in range(min(CONNS, n)):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(request(first + sent))
        sent += 1
        s.setblocking(False)
        bufs[s] = b""
        sel.register(s, selectors.EVENT_READ)
    while done < n:
        events = sel.select(120)
        if not events:
            sys.exit("instructions: no answer for 120 s")
        for key, _ in events:
            s = key.fileobj
            data = s.recv(65536)
            if not data:
                sys.exit("instructions: the daemon closed a connection")
            buf = bufs[s] + data
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = buf[:end].decode()
                length = int(next(line.split(":")[1] for line in head.split("\r\n")
                                  if line.lower().startswith("content-length:")))
                if len(buf) < end + 4 + length:
                    break
                if not head.startswith("HTTP/1.1 200" if MODE == "inbound" else "HTTP/1.1 202"):
                    sys.exit("instructions: answer %r" % head.split("\r\n")[0])
                buf = buf[end + 4 + length:]
                done += 1
                if sent < n:
                    s.setblocking(True)
                    s.sendall(request(first + sent))
                    s.setblocking(False)
                    sent += 1
            bufs[s] = buf
    for s in bufs:
        s.close()


def metric(port, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=60) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
    return 0


def sent_total(port):
    return metric(port, 'smsrules_provider_sent_total{provider="%s"}' % ("mock" if MODE == "inbound" else "fake"))


def store_counts(port):
    return metric(port, "smsrules_store_units_total"), metric(port, "smsrules_store_commits_total")


def wait_for(what, cond, limit_s):
    deadline = time.time() + limit_s
    while not cond():
        if time.time() > deadline:
            sys.exit("instructions: %s within %d s" % (what, limit_s))
        time.sleep(0.2)


def listening_port(log, proc):
    def port():
        for line in open(log, errors="replace"):
            try:
                obj = json.loads(line[line.find("{"):])
            except ValueError:
                continue
            if obj.get("msg") == "listening":
                return obj["port"]
        if proc.poll() is not None:
            sys.exit("instructions: the daemon exited: %s" % open(log).read()[-2000:])
        return None

    wait_for("the daemon did not listen", lambda: port() is not None, 120)
    return port()


def measure(binary, mode, work):
    rules = 'sms.config{ api_keys = { "%s" }, default_country = "84" }\n' % KEY
    fake = None
    if mode == "send":
        fake = Nginx(os.path.join(work, "nginx"))
        rules += ('sms.provider("fake", { adapter = "generic", url = "http://127.0.0.1:%d/send", concurrency = 64 })\n'
                  % fake.port)
    elif mode == "inbound":
        fake = Nginx(os.path.join(work, "nginx"))
        rules += ('sms.provider("mock", { adapter = "mock", url = "http://127.0.0.1:%d/batch", concurrency = 16 })\n'
                  'sms.on_inbound(function(msg)\n'
                  '  return sms.reply(msg, "Thanks, we got your message. Reply STOP to opt out.")\n'
                  'end)\n' % fake.port)
    with open(os.path.join(work, "rules.lua"), "w") as f:
        f.write(rules)
    out = os.path.join(work, "callgrind.out")
    log = os.path.join(work, "daemon.log")
    data = tempfile.mkdtemp(dir=work)
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out + ".%p", binary, "serve",
                             "--listen", "127.0.0.1:0", "--data", data, "--log-level", "info", "-c",
                             os.path.join(work, "rules.lua")], stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    try:
        port = listening_port(log, proc)
        post(port, WARM, 0)
        if fake:
            wait_for("the warm-up was not sent", lambda: sent_total(port) >= WARM, 120)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        units0, commits0 = store_counts(port)
        post(port, N, 1000000)
        if fake:
            wait_for("the messages were not sent", lambda: sent_total(port) >= WARM + N, 600)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        units1, commits1 = store_counts(port)
        print("instructions.py: %s: %d store units in %d commits" % (mode, units1 - units0, commits1 - commits0))
    finally:
        proc.terminate()
        proc.wait()
        if fake:
            fake.stop()
    # callgrind_control -d wrote callgrind.out.PID.1: from the zeroing to the dump (the file without a
    # suffix, written at the exit, holds the rest).
    dump = "%s.%d.1" % (out, proc.pid)
    if os.environ.get("KEEP"):
        shutil.copy(dump, os.environ["KEEP"])
    ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", "--auto=no", dump],
                         capture_output=True, text=True, check=True).stdout
    return ann


def summary(ann, label):
    lines = ann.splitlines()
    total = next(int(line.split()[0].replace(",", "")) for line in lines if "PROGRAM TOTALS" in line)
    print("instructions.py: %s: %d user-space instructions a message (%d messages)" % (label, total // N, N))
    shown = 0
    for line in lines:
        # "1,234,567 (12.34%)  src/FILE.c:FUNCTION [BINARY]": our functions by inclusive count.
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(src/\S+)", line)
        if not m or m.group(2).split(":", 1)[-1] in ("main", "cmd_serve", "sr_app_run"):
            continue
        print("  %8d  %s" % (int(m.group(1).replace(",", "")) // N, m.group(2)))
        shown += 1
        if shown == int(os.environ.get("TOP", "25")):
            break


def main(argv):
    global MODE
    mode = MODE = argv[1] if len(argv) > 1 and argv[1] in MODES else "accept"
    bins = [a for a in argv[1:] if a not in MODES] or [
        os.environ.get("SMSRULES_BIN") or os.path.join(os.environ.get("BUILD", "build"), "smsrules")]
    if not shutil.which("valgrind"):
        sys.exit("instructions: valgrind is missing: apt-get install -y valgrind")
    for binary in bins:
        work = tempfile.mkdtemp(prefix="smsrules-instr-")
        try:
            summary(measure(binary, mode, work), "%s %s" % (mode, binary))
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv)
