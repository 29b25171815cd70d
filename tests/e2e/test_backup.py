"""End-to-end tests of `smsrules backup` and `smsrules restore`: a hot copy
taken while the daemon accepts messages holds every message acknowledged
before the copy began (with its status, history and attempts), a daemon
started on the restored copy serves them and resumes; restore refuses a
directory a daemon holds and a file that is not a store, changing nothing;
it keeps the store it replaces aside.

Run: SMSRULES_BIN=build/smsrules python3 tests/e2e/test_backup.py [name...]"""
import glob
import hashlib
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, SLOWDOWN, Daemon, Mock, check, make_temp_dir, metric, run, run_cli, test, wait_for  # noqa: E402

KEY = "k"
AUTH = {"Authorization": "Bearer " + KEY}
FINAL = ("delivered", "undelivered", "expired", "rejected", "failed")


def rules(mock_url):
    return ('sms.config{ api_keys = { "%s" }, retry_base_ms = 20, retry_cap_ms = 200 }\n'
            'sms.provider("m", { adapter = "mock", url = "%s", concurrency = 8 })\n' % (KEY, mock_url))


def post(d, first, n):
    """Posts n messages in one batch; returns their ids (every one must be accepted)."""
    msgs = [{"to": "+8491%07d7" % i, "text": "backup %d" % i} for i in range(first, first + n)]
    status, _, body, doc = d.request("POST", "/v1/messages", {"messages": msgs}, headers=AUTH,
                                     timeout=30 * SLOWDOWN)
    check(status == 202, "batch answered %d %r" % (status, body[:300]))
    ids = [r.get("id") for r in doc["result"] if r.get("code") == "OK"]
    check(len(ids) == n, "accepted %d of %d: %r" % (len(ids), n, body[:300]))
    return ids


def get(d, mid):
    status, _, body, doc = d.request("GET", "/v1/messages/" + mid, headers=AUTH)
    return status, doc


def data_dir(d):
    return os.path.join(d.dir, "data")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Load:
    """Posts batches to a daemon from a thread until stopped, noting when each batch was acknowledged."""

    BATCH = 20
    MAX_BATCHES = 60

    def __init__(self, d):
        self.d = d
        self.acked = []  # (monotonic time the 202 was read, [ids])
        self.error = None
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        first = 100000
        try:
            while not self.stop_flag.is_set() and len(self.acked) < self.MAX_BATCHES:
                ids = post(self.d, first, self.BATCH)
                self.acked.append((time.monotonic(), ids))
                first += self.BATCH
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def batches_after(self, t):
        return sum(1 for at, _ in self.acked if at > t)

    def stop(self):
        self.stop_flag.set()
        self.thread.join(30 * SLOWDOWN)
        check(not self.thread.is_alive(), "the load thread did not stop")
        check(self.error is None, "a batch failed while the backup ran: %s" % self.error)


def statuses(doc):
    return [h["status"] for h in doc["history"]]


@test(timeout=90)
def backup_under_load_holds_every_acknowledged_message():
    mock = Mock.start("--dlr-delay-ms", 20)
    d = Daemon.start(rules(mock.url))
    mock.control({"dlr_url": "http://127.0.0.1:%d/hooks/m/status" % d.port})
    # Settled before the copy: their status, history and attempts must come back exactly.
    settled = post(d, 0, 50)
    wait_for(lambda: all(get(d, m)[1]["status"] in FINAL for m in settled), 30 * SLOWDOWN,
             "the first 50 messages to be final")
    settled_docs = {m: get(d, m)[1] for m in settled}

    load = Load(d)
    try:
        wait_for(lambda: len(load.acked) >= 3 or load.error, 30 * SLOWDOWN, "the load to get going")
        began = time.monotonic()
        backup = os.path.join(make_temp_dir(), "smsrules.backup")
        code, out, err = run_cli(["backup", "--data", data_dir(d), backup])
        ended = time.monotonic()
        check(code == 0, "backup exited %d: %s" % (code, err[-500:]))
        check("written to" in out, "backup said %r" % out)
        # The daemon went on accepting while and after the copy was made.
        wait_for(lambda: load.batches_after(ended) >= 2 or load.error or len(load.acked) >= Load.MAX_BATCHES,
                 30 * SLOWDOWN, "batches acknowledged after the backup")
    finally:
        load.stop()
    check(load.batches_after(ended) >= 1, "no batch was acknowledged after the backup: the load stopped early")
    before = [m for at, ids in load.acked if at < began for m in ids]
    after = [m for at, ids in load.acked if at > ended for m in ids]
    live = {m: get(d, m)[1] for m in before}
    d.stop()

    fresh = os.path.join(make_temp_dir(), "restored")
    code, out, err = run_cli(["restore", "--data", fresh, backup])
    check(code == 0, "restore exited %d: %s" % (code, err[-500:]))
    check("held no store before" in out, "restore said %r" % out)

    r = Daemon.start(rules(mock.url), args=["--data", fresh])
    for m, want in settled_docs.items():
        status, got = get(r, m)
        check(status == 200, "settled message %s: GET answered %d on the restored daemon" % (m, status))
        for field in ("status", "history", "attempts", "to", "text", "provider_id"):
            check(got[field] == want[field], "settled message %s: %s is %r, was %r" % (m, field, got[field],
                                                                                       want[field]))
    for m in before:
        status, got = get(r, m)
        check(status == 200, "message %s acknowledged before the backup began is missing (%d)" % (m, status))
        want = live[m]
        check(got["to"] == want["to"] and got["text"] == want["text"] and got["created_at"] == want["created_at"],
              "message %s differs: %r vs %r" % (m, got, want))
        check(got["history"][0] == want["history"][0], "message %s: first history entry %r, was %r"
              % (m, got["history"][0], want["history"][0]))
        check(got["status"] in statuses(want), "message %s is %s on the restored daemon, a status it never had "
              "(history %r)" % (m, got["status"], statuses(want)))
    # A copy of one moment: what was acknowledged after it ended is not in it.
    for m in after[:20]:
        status, _ = get(r, m)
        check(status == 404, "message %s acknowledged after the backup ended is in the copy (%d)" % (m, status))
    # The restored daemon resumes: what the copy held as queued is sent.
    mock.control({"dlr_url": "http://127.0.0.1:%d/hooks/m/status" % r.port})
    wait_for(lambda: metric(r, "smsrules_queue_depth") == 0, 30 * SLOWDOWN, "the restored queue to drain")


@test(timeout=60)
def restore_refuses_a_directory_a_daemon_holds():
    d = Daemon.start('sms.config{ api_keys = { "%s" } }\n' % KEY)
    backup = os.path.join(make_temp_dir(), "b.mdb")
    code, _, err = run_cli(["backup", "--data", data_dir(d), backup])
    check(code == 0, "backup exited %d: %s" % (code, err))
    before = sorted(os.listdir(data_dir(d)))
    code, out, err = run_cli(["restore", "--data", data_dir(d), backup])
    check(code == 2, "restore on a running daemon's directory exited %d (want 2): %s %s" % (code, out, err))
    check("in use by a running smsrules (pid %d)" % d.proc.pid in err and "stop it first" in err,
          "restore's error does not name the daemon: %r" % err)
    check("nothing was changed" in err, "restore's error does not say nothing changed: %r" % err)
    check(sorted(os.listdir(data_dir(d))) == before, "the directory changed: %r → %r"
          % (before, sorted(os.listdir(data_dir(d)))))
    code, _, _, doc = d.request("GET", "/healthz")
    check(code == 200, "the daemon stopped answering: %d" % code)


@test(timeout=60)
def restore_refuses_a_file_that_is_not_a_store():
    d = Daemon.start('sms.config{ api_keys = { "%s" } }\n' % KEY)
    mid = post(d, 0, 1)[0]
    good = os.path.join(make_temp_dir(), "good.mdb")
    code, _, err = run_cli(["backup", "--data", data_dir(d), good])
    check(code == 0, "backup exited %d: %s" % (code, err))
    d.stop()
    files = make_temp_dir()
    with open(good, "rb") as f:
        whole = f.read()
    bad = {
        "text": b"this is not a store\n",
        "random": os.urandom(64 * 1024),
        "truncated": whole[:len(whole) // 2],
        "empty": b"",
    }
    data = data_dir(d)
    digest = sha256(os.path.join(data, "data.mdb"))
    listing = sorted(os.listdir(data))
    for name, content in bad.items():
        path = os.path.join(files, name)
        with open(path, "wb") as f:
            f.write(content)
        code, out, err = run_cli(["restore", "--data", data, path])
        check(code == 1, "restoring the %s file exited %d (want 1): %s %s" % (name, code, out, err))
        check("is not a smsrules store" in err and "nothing was changed" in err,
              "restoring the %s file: unclear error %r" % (name, err))
        check(sha256(os.path.join(data, "data.mdb")) == digest, "the %s file changed data.mdb" % name)
        check(sorted(os.listdir(data)) == listing, "the %s file left %r" % (name, sorted(os.listdir(data))))
    code, _, err = run_cli(["restore", "--data", data, os.path.join(files, "missing")])
    check(code == 1 and "cannot read" in err, "a missing file: exit %d %r" % (code, err))
    code, _, err = run_cli(["restore", "--data", data])
    check(code == 1 and "FILE is missing" in err, "no file: exit %d %r" % (code, err))
    d.restart()
    check(get(d, mid)[0] == 200, "the message is gone after the refused restores")


@test(timeout=60)
def restore_keeps_the_replaced_store_aside():
    d = Daemon.start('sms.config{ api_keys = { "%s" } }\n' % KEY)
    old = post(d, 0, 5)
    backup = os.path.join(make_temp_dir(), "b.mdb")
    code, _, err = run_cli(["backup", "--data", data_dir(d), backup])
    check(code == 0, "backup exited %d: %s" % (code, err))
    newer = post(d, 5, 5)
    d.stop()
    code, out, err = run_cli(["restore", "--data", data_dir(d), backup])
    check(code == 0, "restore exited %d: %s" % (code, err))
    aside = glob.glob(os.path.join(data_dir(d), "before-restore-*"))
    check(len(aside) == 1 and os.path.exists(os.path.join(aside[0], "data.mdb")),
          "no before-restore folder with data.mdb: %r" % os.listdir(data_dir(d)))
    check(aside[0] in out, "restore did not say where the old store went: %r" % out)
    check(not glob.glob(os.path.join(data_dir(d), ".restore-*")), "the staging folder was left behind")
    d.restart()
    for m in old:
        check(get(d, m)[0] == 200, "message %s from the backup is missing" % m)
    for m in newer:
        check(get(d, m)[0] == 404, "message %s written after the backup is in the restored store" % m)
    d.stop()
    # The store set aside is whole: a daemon on it has the newer messages.
    kept = Daemon.start('sms.config{ api_keys = { "%s" } }\n' % KEY, args=["--data", aside[0]])
    for m in old + newer:
        check(get(kept, m)[0] == 200, "message %s is missing from the store set aside" % m)


@test(timeout=60)
def backup_and_restore_stream_through_a_pipe():
    d = Daemon.start('sms.config{ api_keys = { "%s" } }\n' % KEY)
    ids = post(d, 0, 5)
    fresh = os.path.join(make_temp_dir(), "piped")
    # smsrules backup --data D - | gzip | gunzip | smsrules restore --data FRESH -
    backup = subprocess.Popen([BIN, "backup", "--data", data_dir(d), "-"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    gzip = subprocess.Popen(["gzip", "-c"], stdin=backup.stdout, stdout=subprocess.PIPE)
    gunzip = subprocess.Popen(["gunzip", "-c"], stdin=gzip.stdout, stdout=subprocess.PIPE)
    restore = subprocess.Popen([BIN, "restore", "--data", fresh, "-"], stdin=gunzip.stdout, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    backup.stdout.close()
    gzip.stdout.close()
    gunzip.stdout.close()
    out, err = restore.communicate(timeout=30 * SLOWDOWN)
    backup_err = backup.stderr.read().decode()
    check(backup.wait(10 * SLOWDOWN) == 0, "backup - exited %s: %s" % (backup.returncode, backup_err))
    check("written to the standard output" in backup_err, "backup - said %r on stderr" % backup_err)
    check(gzip.wait(10 * SLOWDOWN) == 0 and gunzip.wait(10 * SLOWDOWN) == 0, "gzip or gunzip failed")
    check(restore.returncode == 0, "restore - exited %d: %s" % (restore.returncode, err.decode()))
    check("restored the standard input into" in out.decode(), "restore - said %r" % out.decode())
    d.stop()
    r = Daemon.start('sms.config{ api_keys = { "%s" } }\n' % KEY, args=["--data", fresh])
    for m in ids:
        check(get(r, m)[0] == 200, "message %s did not come through the pipe" % m)
    code, _, err = run_cli(["restore", "--data", os.path.join(make_temp_dir(), "junk"), "-"],
                           stdin_data=b"not a store")
    check(code == 1 and "the standard input is not a smsrules store" in err, "junk on stdin: %d %r" % (code, err))


@test
def backup_refuses_a_directory_without_a_store():
    empty = make_temp_dir()
    code, _, err = run_cli(["backup", "--data", empty, os.path.join(empty, "b.mdb")])
    check(code == 1, "backup of an empty directory exited %d (want 1): %s" % (code, err))
    check("cannot read the store in %s" % empty in err, "unclear error: %r" % err)
    check(not os.path.exists(os.path.join(empty, "b.mdb")), "a backup file was written")
    code, _, err = run_cli(["backup", "--data", os.path.join(empty, "nothing"), os.path.join(empty, "b.mdb")])
    check(code == 1 and "no data directory" in err, "a missing directory: exit %d %r" % (code, err))
    code, out, _ = run_cli(["backup", "--help"])
    check(code == 0 and "usage: smsrules backup" in out, "backup --help: exit %d %r" % (code, out[:200]))


if __name__ == "__main__":
    run()
