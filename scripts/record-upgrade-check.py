#!/usr/bin/env python3
"""Checks that a data directory written by an older smsrules opens in a newer
one with every message unchanged: the message record's format changes (see
src/model/message_record.h) keep the older records readable.

    scripts/record-upgrade-check.py OLD_BIN NEW_BIN

OLD_BIN makes messages in many states (sent with a delivered or undelivered
report, sent through the backup after the primary refused, queued for later,
failed, with tags, an idempotency key and a sender) behind two `smsrules
mock-provider`s, then stops. NEW_BIN opens the same directory: GET
/v1/messages/ID must answer the same JSON for every message, the listing by
status the same ids, and the store must go on (a report on an old record, a
new message sent). Then OLD_BIN must refuse the directory (schema version).
An old binary of the main branch: git worktree add /tmp/old COMMIT && make -C /tmp/old build
Exit 0 when all holds; prints what differs otherwise."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import harness  # noqa: E402
from harness import Daemon, Mock, check, wait_for  # noqa: E402

AUTH = {"Authorization": "Bearer k"}
STATUSES = ["accepted", "queued", "sending", "sent", "delivered", "undelivered", "expired", "rejected", "failed"]


def rules(primary, backup):
    return ('sms.config{ api_keys = { "k" } }\n'
            'sms.provider("primary", { adapter = "mock", url = "%s", max_attempts = 1 })\n'
            'sms.provider("backup", { adapter = "mock", url = "%s" })\n'
            'sms.route(function(msg) return { "primary", "backup" } end)\n' % (primary.url, backup.url))


def post(d, msgs):
    status, _, body, doc = d.request("POST", "/v1/messages", {"messages": msgs}, AUTH)
    check(status == 202, "POST /v1/messages answered %d %r" % (status, body[:300]))
    check(all(r.get("code") == "OK" for r in doc["result"]), "refused: %r" % doc)
    return [r["id"] for r in doc["result"]]


def snapshot(d, ids):
    """Every message's API JSON, and the ids listed under each status."""
    out = {}
    for mid in ids:
        status, _, body, _ = d.request("GET", "/v1/messages/" + mid, headers=AUTH)
        check(status == 200, "GET %s answered %d" % (mid, status))
        out[mid] = body
    for st in STATUSES:
        status, _, body, doc = d.request("GET", "/v1/messages?status=" + st, headers=AUTH)
        check(status == 200, "listing %s answered %d %r" % (st, status, body[:200]))
        out["status=" + st] = json.dumps(doc, sort_keys=True)
    return out


def report(d, provider_id, word):
    status, _, body, _ = d.request("POST", "/hooks/backup/status", {"message_id": provider_id, "status": word})
    check(status == 200, "report answered %d %r" % (status, body[:200]))


def make_old_data(old_bin):
    harness.BIN = old_bin
    primary, backup = Mock.start("--auth-key", "not-ours"), Mock.start()  # the primary refuses every send
    d = Daemon.start(rules(primary, backup))
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30 * 86400))
    ids = post(d, [
        {"to": "+84912345671", "text": "plain", "route": ["backup"]},
        {"to": "+84912345672", "text": "Tiếng Việt ✓ \"quoted\"", "from": "MyShop", "tags": {"order": "42"},
         "idempotency_key": "order-42", "priority": 3, "validity": 600},
        {"to": "+84912345670", "text": "sent through the backup"},
        {"to": "+84912340000", "text": "invalid number: failed"},
        {"to": "+84912345673", "text": "later", "send_at": later},
        {"to": "+84912345674", "text": "to be delivered"},
        {"to": "+84912345675", "text": "to be undelivered"},
        {"to": "+84912345676", "text": "left sent, reported after the upgrade"},
    ])
    final = {0: "sent", 1: "sent", 2: "sent", 3: "failed", 4: "queued", 5: "sent", 6: "sent", 7: "sent"}
    for i, st in final.items():
        wait_for(lambda: harness.get_message(d, ids[i], AUTH)["status"] == st, 20,
                 "message %d %s (is %r)\n%s" % (i, st, harness.get_message(d, ids[i], AUTH), d.stderr()[-1500:]))
    for i, word, st in ((5, "DELIVRD", "delivered"), (6, "UNDELIV", "undelivered")):
        report(d, harness.get_message(d, ids[i], AUTH)["provider_id"], word)
        wait_for(lambda: harness.get_message(d, ids[i], AUTH)["status"] == st, 20, "%s %s" % (ids[i], st))
    before = snapshot(d, ids)
    d.stop()
    return d, primary, backup, ids, before


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    old_bin, new_bin = (os.path.abspath(p) for p in sys.argv[1:])
    d, primary, backup, ids, before = make_old_data(old_bin)
    harness.BIN = new_bin
    d.restart()
    after = snapshot(d, ids)
    differ = [k for k in before if before[k] != after[k]]
    for k in differ:
        print("DIFFERS %s\n  old: %s\n  new: %s" % (k, before[k], after[k]))
    check(not differ, "%d of %d answers differ after the upgrade" % (len(differ), len(before)))
    report(d, harness.get_message(d, ids[7], AUTH)["provider_id"], "DELIVRD")
    wait_for(lambda: harness.get_message(d, ids[7], AUTH)["status"] == "delivered", 20, "delivered after upgrade")
    new = post(d, [{"to": "+84912345677", "text": "new"}])[0]
    wait_for(lambda: harness.get_message(d, new, AUTH)["status"] == "sent", 20, "a new message sent")
    d.stop()
    out = subprocess.run([old_bin, "serve", "--listen", "127.0.0.1:0", "--data", os.path.join(d.dir, "data"),
                          "-c", d.rules_path], capture_output=True, text=True, timeout=30)
    check(out.returncode != 0 and "schema version 2" in out.stderr,
          "the old binary must refuse the upgraded store: exit %d %s" % (out.returncode, out.stderr[-300:]))
    primary.stop()
    backup.stop()
    print("record upgrade: %d messages and %d listings read the same through %s; reports and sends go on; "
          "the old binary refuses the upgraded store" % (len(ids), len(STATUSES), os.path.basename(new_bin)))


if __name__ == "__main__":
    try:
        main()
    finally:
        harness._cleanup()
