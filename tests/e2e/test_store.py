"""End-to-end tests of the store's hardening: the data directory lock (a
second daemon), a full disk (507, the outcomes of messages already sent kept
and written once space returns, nothing resent), and damaged store files
(exit 2 with a log line, never a signal)."""
import errno
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, HOST, SLOWDOWN, Daemon, Mock, TestFailure, check, daemon_port, make_temp_dir,  # noqa: E402
                     metric, run, test, wait_for)

KEY = "k"
AUTH = {"Authorization": "Bearer " + KEY}


def rules(mock, config="", provider_opts=""):
    return ('sms.config{ api_keys = { "%s" }, retry_base_ms = 20, retry_cap_ms = 200 %s }\n'
            'sms.provider("primary", { adapter = "mock", url = "%s", timeout_ms = 120000 %s })\n'
            % (KEY, config, mock.url, provider_opts))


def post_batch(d, msgs):
    return d.request("POST", "/v1/messages", {"messages": msgs}, headers=AUTH, timeout=30 * SLOWDOWN)


def accept(d, prefix, n, start=0):
    """Posts n messages in batches of up to 1000; every one must be accepted."""
    ids = []
    for b in range(start, start + n, 1000):
        msgs = [{"to": "%s%07d7" % (prefix, i), "text": "m%d" % i} for i in range(b, min(b + 1000, start + n))]
        status, _, body, doc = post_batch(d, msgs)
        check(status == 202, "batch answered %d %r" % (status, body[:300]))
        ids += [r["id"] for r in doc["result"] if r["code"] == "OK"]
    check(len(ids) == n, "accepted %d of %d" % (len(ids), n))
    return ids


def count_status(d, status):
    """How many messages have this status (paging through the list)."""
    total, after = 0, None
    while True:
        path = "/v1/messages?status=%s&limit=1000" % status + ("&after=%s" % after if after else "")
        code, _, body, doc = d.request("GET", path, headers=AUTH, timeout=30 * SLOWDOWN)
        check(code == 200, "listing %s answered %d %r" % (status, code, body[:200]))
        total += len(doc["messages"])
        after = doc.get("next")
        if not after:
            return total


def healthz(d):
    code, _, body, doc = d.request("GET", "/healthz")
    check(code == 200, "healthz answered %d %r" % (code, body[:200]))
    return doc


def expect_507(d):
    """A single send and a batch are both refused 507 storage_full, as is an event-free retry of the batch."""
    status, _, body, doc = d.request("POST", "/v1/messages", {"to": "+84910000001", "text": "x"}, headers=AUTH)
    check(status == 507 and doc["error"]["code"] == "storage_full", "single send: %d %r" % (status, body[:300]))
    for size in (1, 50):
        msgs = [{"to": "+8492%07d7" % i, "text": "y"} for i in range(size)]
        status, _, body, doc = post_batch(d, msgs)
        check(status == 507, "batch of %d: %d %r" % (size, status, body[:300]))
        codes = {reason["key"] for r in doc["result"] for reason in r.get("reasons", [])}
        check(codes == {"storage_full"}, "batch of %d reasons %r" % (size, codes))


def start_raw(data, port=None, args=()):
    """`smsrules serve` on data without waiting for it (the daemon may refuse to start)."""
    work = make_temp_dir()
    err_path = os.path.join(work, "stderr.log")
    cmd = [BIN, "serve", "--listen", "%s:%d" % (HOST, port or daemon_port()), "--data", data] + list(args)
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, cwd=work)
    return proc, err_path


def read_log(path):
    with open(path, "rb") as f:
        lines = []
        for raw in f.read().decode("utf-8", "replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                lines.append({"msg": raw})
        return lines


# ---- the lock ----

@test(timeout=90)
def second_daemon_on_the_same_data_directory_refuses_and_nothing_is_sent_twice():
    mock = Mock.start("--latency-ms", int(3000 * SLOWDOWN))
    d = Daemon.start(rules(mock, provider_opts=", concurrency = 8"))
    n = 300
    accept(d, "+8493", n)
    # Every message is with the provider, its answer held back by the latency.
    wait_for(lambda: mock.stats()["received"] >= n, 30 * SLOWDOWN, "300 messages at the mock")
    check(count_status(d, "sending") == n, "not all sending")
    proc, err_path = start_raw(os.path.join(d.dir, "data"))
    try:
        rc = proc.wait(15 * SLOWDOWN)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise TestFailure("the second daemon did not exit")
    check(rc == 2, "second daemon exit code %d" % rc)
    lines = read_log(err_path)
    refusal = [l for l in lines if l.get("level") == "error" and "in use" in l.get("msg", "")]
    check(refusal, "no refusal log line: %r" % lines[-3:])
    check("pid %d" % d.proc.pid in refusal[0].get("error", ""), "holder's pid not named: %r" % refusal[0])
    # The first daemon goes on and records every answer; nothing reached the provider twice.
    wait_for(lambda: metric(d, "smsrules_provider_sent_total", provider="primary") >= n, 60 * SLOWDOWN,
             "every message sent")
    st = mock.stats()
    check(st["received"] == n and st["duplicates"] == 0, "received %d duplicates %d" % (st["received"], st["duplicates"]))
    check(set(st["by_recipient"].values()) == {1}, "a recipient got more than one message")
    check(healthz(d)["storage"] == "ok", "healthz")
    # Once the first one stopped, the directory is free again.
    d.stop()
    d.restart()
    check(metric(d, "smsrules_resent_after_crash_total") == 0, "resent after a clean stop")
    d.stop()
    mock.stop()


# ---- disk full ----

def fill(path):
    """Writes path until the file system is full; returns the bytes written."""
    written = 0
    chunk = b"\0" * (256 << 10)
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                if len(chunk) <= 4096:
                    break
                chunk = chunk[:len(chunk) // 2]
    return written


@test(timeout=150)
def disk_full_answers_507_keeps_outcomes_and_resends_nothing():
    if os.geteuid() != 0:
        print("(not root: disk_full uses the map-size cap test below only)", file=sys.stderr)
        return
    mnt = make_temp_dir("smsrules-tmpfs-")
    rc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", mnt], capture_output=True)
    if rc.returncode != 0:
        print("(cannot mount a tmpfs: %r; the map-size cap test covers the rest)" % rc.stderr, file=sys.stderr)
        return
    try:
        data = os.path.join(mnt, "data")
        mock = Mock.start("--latency-ms", int(2500 * SLOWDOWN))
        # No reserve: every write meets the full disk itself (ENOSPC from the commit).
        d = Daemon.start(rules(mock, ", store_reserve = 0", ", concurrency = 4"), args=["--data", data])
        n = 400
        accept(d, "+8494", n)
        wait_for(lambda: mock.stats()["received"] >= n, 30 * SLOWDOWN, "400 messages at the mock")
        filler = os.path.join(mnt, "filler")
        fill(filler)
        # While full: every new write is 507, whatever its size; reads, healthz, metrics work.
        expect_507(d)
        check(healthz(d)["storage"] == "full", "healthz does not report the full store")
        check(metric(d, "smsrules_store_full") == 1, "smsrules_store_full")
        # The provider's answers come back and cannot be written: they are kept and retried.
        wait_for(lambda: metric(d, "smsrules_outcome_write_retries_total") > 0, 30 * SLOWDOWN,
                 "answers written again")
        check(count_status(d, "sending") == n, "messages left `sending` while full")
        check(metric(d, "smsrules_store_refused_total") > 0, "refused units not counted")
        # Space returns: every answer lands, nothing stays `sending`.
        os.unlink(filler)
        wait_for(lambda: count_status(d, "sent") == n, 30 * SLOWDOWN, "every message recorded sent")
        check(count_status(d, "sending") == 0, "messages still sending")
        wait_for(lambda: healthz(d)["storage"] == "ok", 10 * SLOWDOWN, "healthz back to ok")
        mock.control({"latency_ms": 0})
        status, _, body, doc = d.request("POST", "/v1/messages", {"to": "+84910000027", "text": "x"}, headers=AUTH)
        check(status == 202, "a send after space returned: %d %r" % (status, body[:200]))
        wait_for(lambda: count_status(d, "sent") == n + 1, 30 * SLOWDOWN, "the new message sent")
        # A restart resends nothing: the provider saw each message exactly once.
        check(d.stop() == 0, "exit code")
        d.restart()
        check(metric(d, "smsrules_resent_after_crash_total") == 0, "resent after the restart")
        wait_for(lambda: metric(d, "smsrules_queue_depth") == 0, 10 * SLOWDOWN, "queue empty")
        st = mock.stats()
        check(st["received"] == n + 1 and st["duplicates"] == 0,
              "received %d duplicates %d" % (st["received"], st["duplicates"]))
        check(set(st["by_recipient"].values()) == {1}, "a recipient got more than one message")
        d.stop()
        mock.stop()
    finally:
        subprocess.run(["umount", "-l", mnt], capture_output=True)


@test(timeout=90)
def below_the_reserve_new_messages_get_507_and_accepted_ones_are_still_sent():
    # The map-size cap stands in for a small disk (works without root): the
    # reserve leaves room to record the sends of what was accepted.
    mock = Mock.start()
    cfg = ", map_size = 1048576, map_size_max = 4194304, store_reserve = 3145728"
    d = Daemon.start(rules(mock, cfg, ", concurrency = 4"))
    mock.control({"down": True})  # hold the sends until the store is full
    accepted, full = 0, False
    for b in range(40):
        msgs = [{"to": "+8495%07d7" % (b * 100 + i), "text": "r%d %s" % (i, "x" * 100)} for i in range(100)]
        status, _, body, doc = post_batch(d, msgs)
        if status == 507:
            full = True
            break
        check(status == 202, "batch answered %d %r" % (status, body[:300]))
        accepted += sum(1 for r in doc["result"] if r["code"] == "OK")
    check(full and accepted > 0, "never full (accepted %d)" % accepted)
    expect_507(d)
    check(healthz(d) == {"status": "degraded", "storage": "full"}, "healthz %r" % healthz(d))
    check(metric(d, "smsrules_store_full") == 1, "smsrules_store_full")
    mock.control({"down": False})
    wait_for(lambda: count_status(d, "sent") == accepted, 60 * SLOWDOWN, "every accepted message sent")
    check(count_status(d, "sending") == 0, "messages left sending")
    st = mock.stats()
    check(st["received"] == accepted and st["duplicates"] == 0, "received %d of %d" % (st["received"], accepted))
    d.stop()
    mock.stop()


# ---- damaged store files ----

PAGE = 4096


def damage(path, how, rnd):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        if how == "truncate_0":
            f.truncate(0)
        elif how == "truncate_4096":
            f.truncate(PAGE)
        elif how == "truncate_half":
            f.truncate(size // 2 // PAGE * PAGE + 100)
        elif how == "truncate_last_page":
            f.truncate(size - PAGE)
        elif how in ("meta0_magic", "meta1_magic"):
            f.seek((0 if how == "meta0_magic" else PAGE) + 16)
            f.write(b"\x00\x11\x22\x33")
        elif how == "meta_both_flags":
            for off in (10, PAGE + 10):
                f.seek(off)
                f.write(b"\x00\x00")
        elif how == "meta_last_page_huge":
            for off in (136, PAGE + 136):
                f.seek(off)
                f.write((size // PAGE * 4).to_bytes(8, "little"))
        elif how == "meta_root_bad":
            for off in (128, PAGE + 128):  # the main database's root page
                f.seek(off)
                f.write((size // PAGE + 7).to_bytes(8, "little"))
        elif how.startswith("garbage_pages"):
            pages = size // PAGE
            for _ in range(3):
                f.seek(rnd.randrange(2, pages) * PAGE)
                f.write(bytes(rnd.randrange(256) for _ in range(PAGE)))
        elif how.startswith("flip_bytes"):
            pages = size // PAGE
            for _ in range(64):
                f.seek(rnd.randrange(2, pages) * PAGE + rnd.randrange(PAGE))
                f.write(bytes([rnd.randrange(256)]))
        else:
            raise AssertionError(how)


MUST_REFUSE = ["truncate_0", "truncate_4096", "truncate_half", "truncate_last_page", "meta0_magic", "meta1_magic",
               "meta_both_flags", "meta_last_page_huge", "meta_root_bad"]


@test(timeout=240)
def damaged_store_files_exit_2_with_a_log_line_never_a_signal():
    mock = Mock.start()
    d = Daemon.start(rules(mock))
    accept(d, "+8496", 3000)
    wait_for(lambda: metric(d, "smsrules_provider_sent_total", provider="primary") >= 3000, 60 * SLOWDOWN,
             "messages sent")
    d.stop()
    mock.stop()
    clean = os.path.join(d.dir, "data")
    cases = MUST_REFUSE + ["garbage_pages_%d" % i for i in range(6)] + ["flip_bytes_%d" % i for i in range(6)]
    refused = 0
    for how in cases:
        work = make_temp_dir("smsrules-damaged-")
        data = os.path.join(work, "data")
        shutil.copytree(clean, data)
        damage(os.path.join(data, "data.mdb"), how, random.Random(how))
        rules_path = os.path.join(work, "rules.lua")
        with open(rules_path, "w") as f:
            f.write('sms.config{ api_keys = { "%s" } }\n' % KEY)
        port = daemon_port()
        proc, err_path = start_raw(data, port, ["-c", rules_path])
        rc = None
        deadline = time.monotonic() + 20 * SLOWDOWN
        while rc is None and time.monotonic() < deadline:
            rc = proc.poll()
            if rc is None:
                # Started anyway (the damage missed what the check reads: free pages, or bytes inside a
                # record, which reads answer 500 corrupt_record): it must serve, then stop cleanly.
                try:
                    c = http.client.HTTPConnection(HOST, port, timeout=2)
                    c.request("GET", "/v1/messages?status=sent&limit=1000", headers=AUTH)
                    r = c.getresponse()
                    body = r.read()
                    check(r.status in (200, 500), "%s: listing answered %d" % (how, r.status))
                    ids = [m["id"] for m in json.loads(body).get("messages", [])] if r.status == 200 else []
                    for mid in ids[:300]:
                        c.request("GET", "/v1/messages/" + mid, headers=AUTH)
                        r = c.getresponse()
                        r.read()
                        check(r.status in (200, 500), "%s: GET %s answered %d" % (how, mid, r.status))
                    c.close()
                    proc.send_signal(signal.SIGTERM)
                    rc = proc.wait(20 * SLOWDOWN)
                    check(rc == 0, "%s: started, then exited %d" % (how, rc))
                    break
                except OSError:
                    time.sleep(0.02)
        if rc is None:
            proc.kill()
            proc.wait()
            raise TestFailure("%s: neither exited nor served" % how)
        check(rc >= 0, "%s: killed by signal %d: %r" % (how, -rc, read_log(err_path)[-3:]))
        lines = read_log(err_path)
        if how in MUST_REFUSE:
            check(rc == 2, "%s: exit %d" % (how, rc))
        errors = [l.get("error", l.get("msg")) for l in lines if l.get("level") == "error"]
        print("  %s: exit %d %s" % (how, rc, (errors[0] if errors else "")[:160]), file=sys.stderr)
        if rc == 2:
            refused += 1
            msg = [l for l in lines if l.get("level") == "error" and "damaged" in l.get("msg", "")]
            check(msg, "%s: no 'damaged' log line: %r" % (how, lines[-3:]))
            check("backup" in msg[0].get("error", ""), "%s: no way to restore named: %r" % (how, msg[0]))
        shutil.rmtree(work, ignore_errors=True)
    check(refused >= len(MUST_REFUSE), "refused %d" % refused)


if __name__ == "__main__":
    run()
