"""The cluster mode's configuration, end to end up to the store: `serve --cluster URLS --node NAME`, the
sms.config keys cluster, cluster_stream, cluster_replicas and node (flat and nested), their checks, the
log line at start, and the help and docs that describe them.

That the daemon really talks to NATS JetStream is tested with the store's cluster mode (docs/cluster.md).
The daemons started here point at loopback ports where nothing listens: the line that names the mode is
logged before the store opens, so these tests hold whether the store then runs single-node or refuses."""

import os
import signal
import socket
import subprocess

from harness import (BIN, HOST, REPO, SLOWDOWN, check, find_log, free_port, make_temp_dir, run, run_cli, test,
                     wait_for)

CLUSTER_LOG = "store: cluster mode (NATS JetStream)"
URL_RULE = "must be comma-separated nats://HOST:PORT or tls://HOST:PORT URLs"


def write_rules(source):
    path = os.path.join(make_temp_dir(), "rules.lua")
    with open(path, "w") as f:
        f.write(source)
    return path


def serve_refused(args, rules=None):
    """Runs `serve` with args on a data folder that does not exist yet; returns (exit code, stderr) after
    checking that it stopped before the store and the HTTP server: no data folder, no "listening"."""
    data = os.path.join(make_temp_dir(), "data")
    cmd = ["serve", "--listen", "%s:%d" % (HOST, free_port()), "--data", data] + list(args)
    if rules:
        cmd += ["-c", write_rules(rules)]
    code, out, err = run_cli(cmd)
    check(not os.path.exists(data), "the store was opened before the refusal: %s exists" % data)
    check("listening" not in err, "it listened before the refusal: %r" % err[-500:])
    return code, err


@test
def serve_refuses_a_bad_cluster_url_before_listening():
    code, err = serve_refused(["--cluster", "not-a-url"])
    # A bad argument is a user error: 1, like every other bad option (docs/cli.md).
    check(code == 1, "--cluster not-a-url exited %d: %r" % (code, err))
    check(err.startswith("smsrules: --cluster %s; 'not-a-url' is not one\n" % URL_RULE), "stderr: %r" % err)
    check("usage: smsrules serve" in err, "the usage follows the error: %r" % err)
    for bad, shown in (("nats://127.0.0.1", "'nats://127.0.0.1' is not one"),
                       ("nats://a:4222,,nats://b:4222", "has an empty one"),
                       ("nats://a:4222,http://b:80", "'http://b:80' is not one")):
        code, err = serve_refused(["--cluster", bad])
        check(code == 1 and URL_RULE in err and shown in err, "--cluster %s: %d %r" % (bad, code, err))
    # The error quotes the URL without its credentials.
    code, err = serve_refused(["--cluster", "nats://smsrules:hunter2@10.0.0.1:99999"])
    check(code == 1 and "'nats://10.0.0.1:99999' is not one" in err and "hunter2" not in err,
          "credentials in the error: %d %r" % (code, err))
    code, err = serve_refused(["--cluster"])
    check(code == 1 and "needs a value" in err, "--cluster without a value: %d %r" % (code, err))


@test
def serve_refuses_a_bad_node_name():
    for bad in ("node 1", "", "n/1", "n" * 65):
        code, err = serve_refused(["--cluster", "nats://127.0.0.1:4222", "--node", bad])
        check(code == 1 and "smsrules: --node must be 1 to 64 letters, digits, '-', '_' or '.'" in err,
              "--node %r: %d %r" % (bad, code, err))
    code, out, err = run_cli(["check", "--node", "n1", write_rules("")])
    check(code == 1 and "unknown option" in err, "--node is an option of serve only: %d %r" % (code, err))


@test
def config_keys_are_checked_at_load_with_file_and_line():
    cases = [
        ('sms.config{ cluster = "not-a-url" }', "'cluster' %s; 'not-a-url' is not one" % URL_RULE),
        ('\nsms.config{ cluster = "nats://u:hunter2@h:0" }', "'nats://h:0' is not one"),
        ('sms.config{ cluster = 4222 }', "'cluster' must be a string"),
        ('sms.config{ cluster_stream = "SMS.RULES" }',
         "'cluster_stream' must be 1 to 32 letters, digits, '-' or '_' (a JetStream stream name); got 'SMS.RULES'"),
        ('sms.config{ cluster_stream = "%s" }' % ("S" * 33), "'cluster_stream' must be 1 to 32"),
        ('sms.config{ cluster_replicas = 0 }', "'cluster_replicas' must be an integer from 1 to 5"),
        ('sms.config{ cluster_replicas = 6 }', "'cluster_replicas' must be an integer from 1 to 5"),
        ('sms.config{ node = "a b" }', "'node' must be 1 to 64 letters, digits, '-', '_' or '.'; got 'a b'"),
        ('sms.config{ cluster = { urls = {"nats://a:1", "b"} } }', "'b' is not one"),
        ('sms.config{ cluster = { urls = {} } }', "'cluster.urls' must be a string or a non-empty list"),
        ('sms.config{ cluster = { urls = "nats://a:1", replica = 1 } }',
         "'cluster' as a table takes urls, stream, replicas, node, node_timeout_ms and retention_s; not 'replica'"),
        ('sms.config{ cluster = { replicas = 9 } }', "'cluster_replicas' must be an integer from 1 to 5"),
        ('sms.config{ cluster = { stream = "a>b" } }', "'cluster_stream' must be"),
    ]
    for text, what in cases:
        path = write_rules(text + "\n")
        line = text.count("\n") + 1
        code, out, err = run_cli(["check", path])
        check(code == 1 and ("%s:%d: sms.config: " % (path, line)) in err and what in err,
              "%r: %d %r" % (text, code, err))
        check("hunter2" not in err, "credentials in the error: %r" % err)
    good = ('sms.config{ cluster = "nats://u:p@10.0.0.1:4222, tls://[::1]:4443", cluster_stream = "SMS-2",\n'
            '             cluster_replicas = 1, node = "sms-a.example" }\n'
            'sms.config{ cluster = { urls = {"nats://a:4222", "nats://b:4222"}, stream = "S_1", replicas = 5,\n'
            '                        node = "n1" } }\n'
            'sms.config{ cluster = "" }\n')
    code, out, err = run_cli(["check", write_rules(good)])
    check(code == 0, "good cluster settings refused: %d %r" % (code, err))
    # A bad sms.config value stops serve before the store and the HTTP server, like any rules error.
    code, err = serve_refused([], rules='sms.config{ cluster = "nats://a" }\n')
    check(code == 1 and "'nats://a' is not one" in err, "serve with a bad cluster key: %d %r" % (code, err))


class Serve:
    """`smsrules serve` with its stderr (the JSON log) in a file, stopped at the end of the with block."""

    def __init__(self, args, rules=None):
        self.dir = make_temp_dir()
        self.err_path = os.path.join(self.dir, "stderr.log")
        cmd = [BIN, "serve", "--listen", "%s:0" % HOST, "--data", os.path.join(self.dir, "data")] + list(args)
        if rules:
            cmd += ["-c", write_rules(rules)]
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                         cwd=self.dir)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10 * SLOWDOWN)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        log = self.stderr()
        check("Sanitizer" not in log and "runtime error:" not in log, "sanitizer report: %r" % log[-3000:])

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log(self, msg):
        return find_log(self.stderr(), msg)

    def wait_log(self, msg):
        """The first log line msg; fails when the daemon ended or the deadline passed without it."""
        def seen():
            line = self.log(msg)
            if line is None and self.proc.poll() is not None:
                line = self.log(msg) or {"exited": self.proc.returncode}
            return line
        line = wait_for(seen, 10 * SLOWDOWN, "log line %r" % msg)
        check("exited" not in line, "the daemon exited %s without logging %r: %r" %
              (line.get("exited"), msg, self.stderr()[-1500:]))
        return line


@test
def serve_logs_the_cluster_mode_and_node_without_credentials():
    p1, p2 = free_port(), free_port()
    # The command line wins over the rules file; the file's stream and replicas are taken.
    rules = ('sms.config{ cluster = "nats://file:1", node = "from-file", cluster_stream = "E2E",'
             ' cluster_replicas = 1 }\n')
    args = ["--cluster", "nats://smsrules:hunter2@127.0.0.1:%d, nats://token42@127.0.0.1:%d" % (p1, p2),
            "--node", "e2e-node.1"]
    with Serve(args, rules) as s:
        line = s.wait_log(CLUSTER_LOG)
        check(line.get("level") == "info" and line.get("mode") == "cluster" and line.get("node") == "e2e-node.1",
              "mode and node: %r" % line)
        check(line.get("servers") == "nats://127.0.0.1:%d, nats://127.0.0.1:%d" % (p1, p2),
              "servers: %r" % line)
        check(line.get("stream") == "E2E" and line.get("replicas") == 1, "stream and replicas: %r" % line)
    log = s.stderr()
    check("hunter2" not in log and "token42" not in log, "credentials in the log: %r" % log[-1500:])


@test
def serve_names_the_node_after_the_host_and_pid_by_default():
    rules = 'sms.config{ cluster = { urls = {"nats://127.0.0.1:%d"} } }\n' % free_port()
    with Serve([], rules) as s:
        line = s.wait_log(CLUSTER_LOG)
        check(line.get("node") == "%s-%d" % (socket.gethostname(), s.proc.pid), "default node: %r" % line)
        check(line.get("stream") == "SMSRULES" and line.get("replicas") == 3, "defaults: %r" % line)


@test
def single_node_by_default():
    # An empty --cluster is a single node, like no --cluster at all: no cluster line, the store is LMDB.
    for args in ([], ["--cluster", ""]):
        with Serve(args) as s:
            s.wait_log("listening")
            check(s.log(CLUSTER_LOG) is None, "%r logged the cluster mode: %r" % (args, s.stderr()[-1500:]))
            check(os.path.exists(os.path.join(s.dir, "data", "data.mdb")), "%r: no LMDB store" % (args,))


@test
def help_and_docs_describe_the_cluster_options():
    code, out, err = run_cli(["serve", "--help"])
    check(code == 0 and "--cluster URLS" in out and "--node NAME" in out and "docs/cluster.md" in out,
          "serve --help: %r" % out)
    code, out, err = run_cli(["--help"])
    check(code == 0 and "[--cluster URLS] [--node NAME]" in out, "--help: %r" % out)
    with open(os.path.join(REPO, "docs", "cli.md")) as f:
        cli = f.read()
    with open(os.path.join(REPO, "docs", "smsrules.1")) as f:
        man = f.read()
    for opt in ("--cluster", "--node"):
        check(opt in cli, "docs/cli.md does not describe %s" % opt)
        check(opt.replace("-", "\\-") in man, "docs/smsrules.1 does not describe %s" % opt)
    # The sms.config key tables (generated, checked by tests/unit/test_config.c) list the keys.
    with open(os.path.join(REPO, "docs", "rules.md")) as f:
        keys = f.read()
    for key in ("cluster", "cluster_stream", "cluster_replicas", "node"):
        check("| `%s` |" % key in keys, "docs/rules.md does not list %s" % key)


if __name__ == "__main__":
    run()
