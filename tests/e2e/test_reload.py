"""Hot reload: SIGHUP and POST /v1/admin/reload swap the rules atomically
without dropping a request; a broken file leaves the old rules running."""
import http.client
import json
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOST, SLOWDOWN, Daemon, check, run, test, wait_for  # noqa: E402

AUTH = {"Authorization": "Bearer k"}


def rules(version, admin=""):
    return """
sms.config{ api_keys = { "k" } %s }
sms.template("greeting", "Hello from %s, {{name}}")
sms.on("version", function(ev) return { version = "%s", text = sms.render("greeting", ev) } end)
""" % (admin, version, version)


def write(d, text):
    tmp = d.rules_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, d.rules_path)  # atomic: a reload never reads half a file


def version(d):
    status, _, _, doc = d.request("POST", "/v1/events/version", body={"name": "Ann"}, headers=AUTH)
    check(status == 200, "event answered %d %r" % (status, doc))
    return doc["result"]["version"]


@test(timeout=60)
def sighup_swaps_rules_under_load_without_dropping_a_request():
    d = Daemon.start(rules("v1"))
    stop = threading.Event()
    seen = []
    per_client = []
    errors = []

    def client():
        mine = []
        per_client.append(mine)
        c = http.client.HTTPConnection(HOST, d.port, timeout=10 * SLOWDOWN)
        while not stop.is_set():
            try:
                c.request("POST", "/v1/events/version", body=json.dumps({"name": "Bo"}), headers=AUTH)
                r = c.getresponse()
                doc = json.loads(r.read())
                if r.status != 200:
                    errors.append((r.status, doc))
                else:
                    seen.append(doc["result"]["version"])
                    mine.append(doc["result"]["version"])
            except Exception as e:  # noqa: BLE001 - any failure is a dropped request
                errors.append(repr(e))
                return

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(seen) > 50, 10 * SLOWDOWN, "load to start")
    write(d, rules("v2"))
    d.signal(signal.SIGHUP)
    wait_for(lambda: seen and seen[-1] == "v2" and seen.count("v2") > 50, 10 * SLOWDOWN, "the new rules to answer")
    stop.set()
    for t in threads:
        t.join()
    check(not errors, "requests failed during the reload: %r" % errors[:3])
    # Each client's requests are sequential: once one was answered by the
    # new rules, every later one must be too (the swap is atomic).
    for mine in per_client:
        check("v2" in mine, "a client never saw the new rules")
        first_v2 = mine.index("v2")
        check(set(mine[first_v2:]) == {"v2"}, "old rules answered after the swap: %r" % mine[first_v2:][:10])
    d.wait_log("rules reloaded")
    check(d.metrics().get('smsrules_rules_reloads_total{result="ok"}') == 1, "reload metric")
    d.stop()


@test(timeout=30)
def broken_file_keeps_the_old_rules():
    d = Daemon.start(rules("v1"))
    check(version(d) == "v1", "v1")
    write(d, "sms.config{ api_keys = { 'k' } }\nsms.on('version', function(ev)\n  return {\nend)\n")
    d.signal(signal.SIGHUP)
    line = d.wait_log("rules reload failed; the old rules keep running")
    check("rules.lua:4:" in line["error"], "file:line in the log: %r" % line)
    check(version(d) == "v1", "the old rules stopped answering")
    write(d, rules("v3"))
    d.signal(signal.SIGHUP)
    wait_for(lambda: version(d) == "v3", 10 * SLOWDOWN, "a later good file to load")
    d.stop()


@test(timeout=30)
def admin_reload_endpoint():
    d = Daemon.start(rules("v1"))
    status, _, _, doc = d.request("POST", "/v1/admin/reload", headers=AUTH)
    check(status == 403 and doc["error"]["code"] == "admin_disabled", "no admin key: %d %r" % (status, doc))
    write(d, rules("v2", ', admin_key = "adm"'))
    d.signal(signal.SIGHUP)
    wait_for(lambda: version(d) == "v2", 10 * SLOWDOWN, "v2")
    status, _, _, doc = d.request("POST", "/v1/admin/reload", headers=AUTH)
    check(status == 401, "an API key is not the admin key: %d" % status)
    write(d, rules("v3", ', admin_key = "adm"'))
    status, _, _, doc = d.request("POST", "/v1/admin/reload", headers={"Authorization": "Bearer adm"})
    check(status == 200 and doc["status"] == "reloaded" and doc["templates"] == 1, "reload: %d %r" % (status, doc))
    check(version(d) == "v3", "v3 after the admin reload")
    write(d, "sms.config{ admin_key = 'adm' }\nsms.template('t', 'Hi {{name')\n")
    status, _, _, doc = d.request("POST", "/v1/admin/reload", headers={"Authorization": "Bearer adm"})
    check(status == 422 and doc["error"]["code"] == "rules_error" and "rules.lua:2:" in doc["error"]["message"],
          "broken reload: %d %r" % (status, doc))
    check(version(d) == "v3", "old rules kept after a failed admin reload")
    d.stop()


def limits_rules(max_body, max_event, admin=True):
    return """
sms.config{ api_keys = { "k" }, admin_key = "adm", max_body_bytes = %d, max_event_bytes = %d }
sms.on("echo", function(ev) return { size = #ev.pad } end)
""" % (max_body, max_event)


def echo(d, size):
    body = {"pad": "x" * size}
    status, _, _, doc = d.request("POST", "/v1/events/echo", body=body, headers=AUTH)
    return status, doc


@test(timeout=30)
def reload_changes_live_keys_and_names_each_kept_restart_key():
    d = Daemon.start(limits_rules(65536, 65536))
    status, doc = echo(d, 8000)
    check(status == 200 and doc["result"]["size"] == 8000, "8000-byte event before: %d %r" % (status, doc))
    # max_body_bytes needs a restart (the HTTP server took it at start); max_event_bytes changes live.
    write(d, limits_rules(2048, 4096))
    status, _, _, doc = d.request("POST", "/v1/admin/reload", headers={"Authorization": "Bearer adm"})
    check(status == 200 and doc["status"] == "reloaded", "reload: %d %r" % (status, doc))
    kept = d.wait_log("max_body_bytes changes need a restart; kept 65536")
    check(kept["level"] == "warn" and kept["key"] == "max_body_bytes" and kept["wanted"] == "2048",
          "the warning names the key and both values: %r" % kept)
    changed = d.wait_log("config changed by the reload")
    check(changed["key"] == "max_event_bytes" and changed["from"] == "65536" and changed["to"] == "4096",
          "the live change is logged: %r" % changed)
    # What a client sees: bodies up to 64 KiB still pass the HTTP limit (kept), but the event limit is 4096 now.
    status, doc = echo(d, 3000)
    check(status == 200 and doc["result"]["size"] == 3000, "3000-byte event after: %d %r" % (status, doc))
    status, doc = echo(d, 8000)
    check(status == 413 and doc["error"]["code"] == "event_too_large",
          "8000 bytes: the new max_event_bytes, not the old max_body_bytes (431/413 close): %d %r" % (status, doc))
    warned = [l for l in d.log_lines() if "need a restart" in l.get("msg", "")]
    check(len(warned) == 1, "only the restart key that changed is named: %r" % warned)
    d.stop()


@test(timeout=30)
def reload_with_a_value_out_of_limits_keeps_the_old_rules():
    d = Daemon.start(limits_rules(65536, 65536))
    write(d, "sms.config{ api_keys = { 'k' }, admin_key = 'adm' }\n"
             "sms.config{ max_parts = 0 }\n")
    status, _, _, doc = d.request("POST", "/v1/admin/reload", headers={"Authorization": "Bearer adm"})
    check(status == 422 and doc["error"]["code"] == "rules_error", "reload: %d %r" % (status, doc))
    check("rules.lua:2:" in doc["error"]["message"] and "'max_parts' must be an integer from 1 to 255"
          in doc["error"]["message"], "file:line and the limits: %r" % doc["error"]["message"])
    status, doc = echo(d, 100)
    check(status == 200, "the old rules keep answering: %d %r" % (status, doc))
    d.stop()


if __name__ == "__main__":
    run()
