"""End-to-end test harness: the real smsrules daemon, driven over real HTTP.

Python 3 standard library only. A test file imports this module, declares
tests with @test and calls run() at the bottom:

    from harness import test, run, Daemon, RawConn

    @test
    def healthz_ok():
        d = Daemon.start()
        ...

    if __name__ == "__main__":
        run()

run() prints exactly one line per test, "PASS <file>:<name>" or
"FAIL <file>:<name>: <reason>" (tests/run.sh counts those lines); tracebacks
go to stderr. Every test has a timeout, and every daemon and socket a test
opened is closed after it, whether it passed or not.

The binary comes from $SMSRULES_BIN (tests/run.sh sets it), else build/smsrules.
Nothing here sleeps to synchronise: wait_for() polls a condition against a
deadline.
"""

import errno
import glob
import http.client
import json
import os
import random
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SMSRULES_BIN") or os.path.join(REPO, "build", "smsrules")
HOST = "127.0.0.1"
# Sanitizer builds are several times slower: timing bounds that are about
# speed (not about a configured timeout) are multiplied by this.
# SMSRULES_SLOWDOWN sets it for a loaded machine.
SLOWDOWN = float(os.environ.get("SMSRULES_SLOWDOWN") or (4.0 if os.environ.get("SMSRULES_ASAN") else 1.0))


class TestFailure(AssertionError):
    pass


class TestTimeout(Exception):
    pass


class ConnectionClosed(Exception):
    pass


def check(cond, message):
    """Fails the test with message unless cond holds."""
    if not cond:
        raise TestFailure(message)


def wait_for(condition, timeout, what="condition", interval=0.005):
    """Polls condition() until it returns a true value, which is returned.
    Raises TestFailure naming `what` when the deadline passes first."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TestFailure("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def metric(d, name, **labels):
    """The daemon's value of one series of GET /metrics (0 when absent)."""
    key = name
    if labels:
        key += "{" + ",".join('%s="%s"' % kv for kv in labels.items()) + "}"
    return d.metrics().get(key, 0)


def get_message(d, mid, auth):
    """GET /v1/messages/{mid} with the auth headers; checks it is found."""
    status, _, _, doc = d.request("GET", "/v1/messages/" + mid, headers=auth)
    check(status == 200, "GET %s: %d" % (mid, status))
    return doc


def wait_message_status(d, mid, status, auth, timeout=10):
    """Waits (timeout x SLOWDOWN) until the message has status; returns it."""
    return wait_for(lambda: (lambda m: m if m["status"] == status else None)(get_message(d, mid, auth)),
                    timeout * SLOWDOWN, "message %s to be %s" % (mid, status))


def raise_nofile(wanted):
    """Raises this process's soft RLIMIT_NOFILE to at least `wanted` (up to
    the hard limit); children (the daemon) inherit it. Returns the new soft
    limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def free_port():
    """A port that was free a moment ago (bind to 0, read it, close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _ephemeral_range():
    """The kernel's range of local ports for outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def daemon_port():
    """A free port for a daemon, outside the ephemeral range when there is
    room: a port from that range can be handed to any outgoing connection
    while a daemon is down between stop() and restart(), and the daemon
    then cannot bind it again (for a minute, if that connection ends in
    TIME_WAIT). Falls back to free_port()."""
    low, high = _ephemeral_range()
    if low - 1024 >= 4096:
        span = range(max(1024, low - 16384), low)
    elif 65535 - high >= 4096:
        span = range(high + 1, min(65536, high + 1 + 16384))
    else:
        return free_port()
    for _ in range(50):
        port = random.choice(span)
        if port_bindable(port):
            return port
    return free_port()


def port_bindable(port):
    """Whether a listener could bind HOST:port now (with SO_REUSEADDR, as
    the daemon's libuv does, so TIME_WAIT leftovers do not count)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---- resources a test opened: closed after each test ----

_open_daemons = []
_open_sockets = []
_temp_dirs = []


def _cleanup():
    for c in list(_open_sockets):
        try:
            c.close()
        except OSError:
            pass
    _open_sockets.clear()
    problems = []
    for d in list(_open_daemons):
        d.kill()
        problems.extend(d.sanitizer_reports())
    _open_daemons.clear()
    for t in list(_temp_dirs):
        shutil.rmtree(t, ignore_errors=True)
    _temp_dirs.clear()
    return problems


def make_temp_dir(prefix="smsrules-e2e-"):
    """A temporary folder removed after the test."""
    path = tempfile.mkdtemp(prefix=prefix)
    _temp_dirs.append(path)
    return path


# ---- HTTP over a raw socket ----


class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.header_list = headers  # [(lower-case name, value)]
        self.headers = {k: v for k, v in headers}
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError as e:
            raise TestFailure("body is not JSON (%s): %r" % (e, self.body[:200]))

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:80])


def check_json_error(resp, status, code=None):
    """Asserts resp is `status` with a JSON body {"error":{"code","message"}}."""
    check(resp.status == status, "expected status %d, got %d %r" % (status, resp.status, resp.body[:200]))
    ctype = resp.header("content-type", "")
    check(ctype.startswith("application/json"), "error Content-Type is %r, not application/json" % ctype)
    doc = resp.json()
    err = doc.get("error") if isinstance(doc, dict) else None
    check(isinstance(err, dict), "error body lacks an \"error\" object: %r" % doc)
    check(isinstance(err.get("code"), str) and err["code"], "error.code missing: %r" % doc)
    check(isinstance(err.get("message"), str) and err["message"], "error.message missing: %r" % doc)
    if code is not None:
        check(err["code"] == code, "error.code is %r, expected %r" % (err["code"], code))
    return err


class RawConn:
    """One TCP connection speaking bytes; reads whole HTTP responses
    (Content-Length framing), and tells when the server closed."""

    def __init__(self, port, timeout=5.0 * SLOWDOWN, host=HOST):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False
        _open_sockets.append(self)

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
                if self in _open_sockets:
                    _open_sockets.remove(self)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _recv_some(self, deadline):
        """Reads what is available into buf before deadline. Returns False at
        EOF (or a reset), raises socket.timeout at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_response(self, timeout=5.0 * SLOWDOWN):
        """The next response on the connection (a 1xx too, without body).
        Raises ConnectionClosed if the server closes first, socket.timeout
        if nothing complete arrives in time."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if self.eof or not self._recv_some(deadline):
                raise ConnectionClosed("connection closed before a response (got %r)" % self.buf[:200])
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise TestFailure("bad status line %r" % lines[0])
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        hmap = dict(headers)
        if 100 <= status < 200 or status in (204, 304):
            self.buf = rest
            return Response(status, reason, headers, b"", head)
        if "content-length" not in hmap:
            raise TestFailure("response without Content-Length: %r" % head)
        length = int(hmap["content-length"])
        while len(rest) < length:
            if self.eof or not self._recv_some(deadline):
                raise ConnectionClosed("connection closed in a response body")
            rest = self.buf.split(b"\r\n\r\n", 1)[1]
        self.buf = rest[length:]
        return Response(status, reason, headers, rest[:length], head)

    def request(self, method, path, headers=None, body=b"", timeout=5.0 * SLOWDOWN):
        """Sends one request (Content-Length framing) and reads its answer."""
        self.send(build_request(method, path, headers, body))
        return self.read_response(timeout)

    def wait_closed(self, timeout):
        """True once the server closed the connection (EOF or reset) within
        timeout; data that arrives meanwhile is kept in buf."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._recv_some(deadline)
            except socket.timeout:
                return False
        return True

    def is_closed_now(self):
        """Whether the server has closed the connection, without waiting."""
        if self.eof:
            return True
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable:
            return False
        try:
            chunk = self.sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except ConnectionResetError:
            return True
        except BlockingIOError:
            return False
        return chunk == b""


def build_request(method, path, headers=None, body=b"", host=True):
    """Request bytes: the given headers, plus Host and Content-Length (when
    there is a body and no framing header was given)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    lines = ["%s %s HTTP/1.1" % (method, path)]
    given = {k.lower() for k, _ in (headers or {}).items()}
    if host and "host" not in given:
        lines.append("Host: test")
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    if body and "content-length" not in given and "transfer-encoding" not in given:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_metrics(text):
    """Prometheus text → {"name{labels}": value} (comments skipped)."""
    series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        series[key.strip()] = float(value)
    return series


# ---- the daemon ----


def find_log(text, msg):
    """The first JSON log line of text whose msg is `msg` (a dict), or None."""
    for raw in text.splitlines():
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("msg") == msg:
            return obj
    return None


class Daemon:
    """The real daemon on a free loopback port with its own data folder.

    Daemon.start(rules="lua source", args=[...]) writes the rules to a file,
    starts `smsrules serve`, captures stderr (the JSON logs) to a file and
    returns once GET /healthz answers 200.

    ready_timeout (start, restart) is multiplied by SLOWDOWN."""

    def __init__(self):
        self.proc = None
        self.port = None
        self.dir = None
        self.rules_path = None
        self.stderr_path = None
        self.returncode = None

    @classmethod
    def start(cls, rules=None, args=(), env=None, ready_timeout=10.0, attempts=5):
        d = cls()
        d.args, d.env = list(args), dict(env or {})  # restart() starts it with them again
        d.dir = make_temp_dir()
        data = os.path.join(d.dir, "data")
        os.mkdir(data)
        if rules is not None:
            d.rules_path = os.path.join(d.dir, "rules.lua")
            with open(d.rules_path, "w") as f:
                f.write(rules)
        for attempt in range(attempts):
            d.port = daemon_port()
            d.stderr_path = os.path.join(d.dir, "stderr-%d.log" % attempt)
            cmd = [BIN, "serve", "--listen", "%s:%d" % (HOST, d.port), "--data", data]
            if d.rules_path:
                cmd += ["-c", d.rules_path]
            cmd += list(args)
            full_env = dict(os.environ)
            full_env.update(env or {})
            with open(d.stderr_path, "wb") as err:
                d.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=err, env=full_env, cwd=d.dir)
            _open_daemons.append(d)
            if d._wait_ready(ready_timeout * SLOWDOWN):
                return d
            # The port was taken between our check and the daemon's bind: retry.
            log = d.stderr()
            if d.proc.poll() is not None and ("cannot listen" in log or "in use" in log):
                _open_daemons.remove(d)
                continue
            d.kill()
            raise TestFailure("daemon did not become ready (exit %s); stderr:\n%s" % (d.proc.returncode, log[-2000:]))
        raise TestFailure("no free port after %d attempts" % attempts)

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                s = socket.create_connection((HOST, self.port), timeout=1.0)
            except OSError:
                time.sleep(0.005)
                continue
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
                # Wait for the answer as long as the daemon runs and the
                # deadline allows: a probe given up on would still be answered
                # (and counted in /metrics) after start() returned.
                s.settimeout(0.1)
                data = b""
                while True:
                    try:
                        chunk = s.recv(4096)
                    except socket.timeout:
                        if self.proc.poll() is not None or time.monotonic() >= deadline:
                            return False
                        continue
                    if not chunk:
                        break
                    data += chunk
                if data.startswith(b"HTTP/1.1 200"):
                    return True
            except OSError:
                pass
            finally:
                s.close()
            time.sleep(0.005)
        return False

    def restart(self, ready_timeout=10.0, attempts=5):
        """Starts the daemon again on the same data folder, port, rules,
        arguments and environment (after stop() or kill()).

        While the daemon was down, something else may have taken its port
        (start() picks ports outside the ephemeral range so that outgoing
        connections cannot); the new daemon then cannot bind it ("address
        already in use", exit 2). The port cannot change (mocks and rules may
        point at it), so that start is retried on the same port once the port
        can be bound again (a bounded wait), up to `attempts` starts."""
        if self.proc is not None:
            # After a SIGKILL the old process may still be exiting (and holding
            # the port and the data folder's lock).
            try:
                self.proc.wait(5.0 * SLOWDOWN)
            except subprocess.TimeoutExpired:
                raise TestFailure("restart(): the previous daemon (pid %d) still runs" % self.proc.pid)
        cmd = [BIN, "serve", "--listen", "%s:%d" % (HOST, self.port), "--data", os.path.join(self.dir, "data")]
        if self.rules_path:
            cmd += ["-c", self.rules_path]
        cmd += getattr(self, "args", [])
        env = dict(os.environ)
        env.update(getattr(self, "env", {}))
        for attempt in range(attempts):
            self.restarts = getattr(self, "restarts", 0) + 1
            self.stderr_path = os.path.join(self.dir, "stderr-restart-%d.log" % self.restarts)
            with open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                             env=env, cwd=self.dir)
            if self._wait_ready(ready_timeout * SLOWDOWN):
                return
            log = self.stderr()
            if self.proc.poll() is None or "address already in use" not in log:
                raise TestFailure("daemon did not restart (exit %s): %s" % (self.proc.returncode, log[-2000:]))
            self.proc.wait()
            if attempt + 1 == attempts:
                break
            # Wait (bounded) until the connection holding the port is gone,
            # then try again.
            deadline = time.monotonic() + 2.0 * SLOWDOWN
            while not port_bindable(self.port) and time.monotonic() < deadline:
                time.sleep(0.02)
        raise TestFailure("daemon did not restart: port %d stayed in use after %d attempts: %s"
                          % (self.port, attempts, self.stderr()[-500:]))

    # -- process --

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum):
        self.proc.send_signal(signum)

    def wait_exit(self, timeout):
        """The exit code, or None if still running after timeout."""
        try:
            self.returncode = self.proc.wait(timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=None):
        """SIGTERM, then the exit code (SIGKILL and TestFailure past timeout).
        The default covers the default 5 s drain deadline plus the exit
        (LeakSanitizer's scan under ASan)."""
        if timeout is None:
            timeout = 5.0 + 5.0 * SLOWDOWN
        self.signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.kill()
            raise TestFailure("daemon did not exit within %.1fs of SIGTERM" % timeout)
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    # -- logs --

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self):
        """Every stderr line parsed as JSON (TestFailure on a line that is not a JSON object)."""
        lines = []
        for raw in self.stderr().splitlines():
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                raise TestFailure("stderr line is not JSON: %r" % raw[:300])
            check(isinstance(obj, dict), "stderr line is not a JSON object: %r" % raw[:300])
            lines.append(obj)
        return lines

    def wait_log(self, msg, timeout=5.0 * SLOWDOWN):
        """Waits for a log line whose msg is `msg`; returns it."""

        def find():
            return find_log(self.stderr(), msg)

        return wait_for(find, timeout, "log line %r" % msg)

    def sanitizer_reports(self):
        """Sanitizer reports in the stderr of every run of this daemon (before each restart too)."""
        if not self.stderr_path:
            return []
        paths = sorted(glob.glob(os.path.join(os.path.dirname(self.stderr_path), "stderr*.log")))
        marks = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
        reports = []
        for path in paths:
            with open(path, "r", errors="replace") as f:
                text = f.read()
            # Quote the report (its first frames) so a CI log alone tells what broke.
            reports += ["sanitizer report in %s: " % os.path.basename(path) + " | ".join(
                l.strip() for l in text[text.index(m):].splitlines()[:14] if l.strip()) for m in marks if m in text]
        return reports

    # -- HTTP --

    def connect(self, timeout=5.0 * SLOWDOWN):
        return RawConn(self.port, timeout)

    def request(self, method, path, body=None, headers=None, timeout=5.0 * SLOWDOWN):
        """One request on a fresh http.client connection, closed afterwards.
        Returns (status, {lower-case header: value}, body bytes, parsed JSON or None)."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode("utf-8")
                headers = dict(headers or {})
                headers.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            doc = None
            if hdrs.get("content-type", "").startswith("application/json"):
                try:
                    doc = json.loads(data.decode("utf-8"))
                except ValueError:
                    doc = None
            return resp.status, hdrs, data, doc
        finally:
            conn.close()

    def metrics(self):
        status, _, body, _ = self.request("GET", "/metrics")
        check(status == 200, "GET /metrics answered %d" % status)
        return parse_metrics(body.decode("utf-8"))


def run_cli(args, timeout=10.0 * SLOWDOWN, env=None, cwd=None, stdin_data=None):
    """Runs the binary with args; returns (exit code, stdout, stderr)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.run([BIN] + list(args), capture_output=True, timeout=timeout, env=full_env, cwd=cwd,
                       input=stdin_data)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# ---- the test registry ----

_tests = []


def test(fn=None, timeout=20.0, known_bug=None):
    """Registers a test: @test or @test(timeout=seconds, known_bug="...").

    known_bug names a reported, unfixed bug the test exposes: the test still
    runs and still fails; its FAIL line ends with the note so the cause is
    clear. Remove the note with the fix."""

    def register(f):
        # Only the file being run registers its tests: a test file that imports
        # another for a helper must not run (and count) that file's tests too.
        if f.__module__ == "__main__":
            _tests.append((f.__name__, f, timeout, known_bug))
        return f

    if fn is not None:
        return register(fn)
    return register


def _on_alarm(signum, frame):
    raise TestTimeout("test timed out")


def _one_line(text):
    return " ".join(str(text).split())[:300]


def run():
    """Runs the registered tests in order; one PASS/FAIL line each on
    stdout. Returns (and exits with) 1 when any failed."""
    name_prefix = os.path.basename(sys.argv[0])
    if not os.path.exists(BIN):
        for name, _, _, _ in _tests:
            print("FAIL %s:%s: binary %s not found (set SMSRULES_BIN)" % (name_prefix, name, BIN), flush=True)
        sys.exit(1)
    signal.signal(signal.SIGALRM, _on_alarm)
    only = set(sys.argv[1:])
    failed = 0
    for name, fn, timeout, known_bug in _tests:
        if only and name not in only:
            continue
        reason = None
        signal.setitimer(signal.ITIMER_REAL, timeout * SLOWDOWN)
        try:
            fn()
        except TestTimeout:
            reason = "timed out after %.0fs" % (timeout * SLOWDOWN)
            traceback.print_exc(file=sys.stderr)
        except TestFailure as e:
            reason = str(e)
            traceback.print_exc(file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - any error fails the test
            reason = "%s: %s" % (type(e).__name__, e)
            traceback.print_exc(file=sys.stderr)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            problems = _cleanup()
        except Exception as e:  # noqa: BLE001
            problems = ["cleanup failed: %s" % e]
        if reason is None and problems:
            reason = "; ".join(problems)
        if reason is None:
            print("PASS %s:%s" % (name_prefix, name), flush=True)
        else:
            failed += 1
            note = " [known bug: %s]" % known_bug if known_bug else ""
            print("FAIL %s:%s: %s%s" % (name_prefix, name, _one_line(reason), note), flush=True)
    sys.stderr.flush()
    sys.exit(1 if failed else 0)


# ---- the mock provider ----

class Mock(Daemon):
    """`smsrules mock-provider --listen HOST:PORT ARGS...` (port 0: a free one,
    read back from its "listening" log line). Inherits request(), signal(),
    stop(), kill(), stderr() and log_lines() from Daemon."""

    @classmethod
    def start(cls, *args, port=0, ready_timeout=10.0):
        m = cls()
        m.dir = make_temp_dir("smsrules-mock-")
        m.stderr_path = os.path.join(m.dir, "stderr.log")
        cmd = [BIN, "mock-provider", "--listen", "%s:%d" % (HOST, port)] + [str(a) for a in args]
        with open(m.stderr_path, "wb") as err:
            m.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        _open_daemons.append(m)

        def listening():
            for raw in m.stderr().splitlines():
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(obj, dict) and obj.get("msg") == "listening":
                    return obj
            if m.proc.poll() is not None:
                raise TestFailure("mock-provider exited %s: %s" % (m.proc.returncode, m.stderr()[-500:]))
            return None

        line = wait_for(listening, ready_timeout * SLOWDOWN, "the mock's listening log line")
        m.port = line["port"]
        return m

    @property
    def url(self):
        return "http://%s:%d/send" % (HOST, self.port)

    def stats(self):
        status, _, body, doc = self.request("GET", "/stats")
        check(status == 200 and isinstance(doc, dict), "GET /stats answered %d %r" % (status, body[:200]))
        return doc

    def control(self, settings):
        status, _, body, doc = self.request("POST", "/control", settings)
        check(status == 200, "POST /control %r answered %d %r" % (settings, status, body[:200]))
        return doc
