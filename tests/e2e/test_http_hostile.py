"""End-to-end tests of the HTTP server against hostile clients: pipelining
without reading the answers, bodies trickled to hold a connection, endless
chunk-size lines and trailers, header names that are not tokens. Each attack
must cost the daemon a bounded amount of memory and time, and lose no answer
a well-behaved client is owed.
Run: SMSRULES_BIN=build/smsrules python3 tests/e2e/test_http_hostile.py [name...]"""

import os
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    SLOWDOWN,
    ConnectionClosed,
    Daemon,
    RawConn,
    build_request,
    check,
    check_json_error,
    make_temp_dir,
    metric,
    run,
    run_cli,
    test,
    wait_for,
)

# How long a close that should follow at once may take to be seen: a
# deadline, not a speed claim.
CLOSE_WAIT = 3.0 * SLOWDOWN
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


def rss_anon_kb(d):
    """The daemon's anonymous resident memory (heap and other private pages), in KiB."""
    with open("/proc/%d/status" % d.proc.pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/%d/status" % d.proc.pid)


def daemon_env():
    """Under AddressSanitizer freed memory waits in a quarantine (256 MB by
    default) before reuse, which would count every answer ever written as
    resident: keep it small so the memory bound measures what is held."""
    if os.environ.get("SMSRULES_ASAN"):
        return {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"}
    return None


def send_until_stalled(sock, data, stall):
    """Sends data without blocking until all of it is sent or the peer has
    taken nothing for `stall` seconds. Returns the number of bytes sent."""
    sock.setblocking(False)
    sent = 0
    try:
        while sent < len(data):
            _, writable, _ = select.select([], [sock], [], stall)
            if not writable:
                break
            try:
                sent += sock.send(data[sent:sent + 256 * 1024])
            except BlockingIOError:
                continue
    finally:
        sock.setblocking(True)
    return sent


@test(timeout=60)
def pipelining_without_reading_is_bounded_and_loses_nothing():
    """A client that pipelines megabytes of requests and reads nothing makes
    the daemon stop reading (its answers wait, bounded), not queue an answer
    for every request; once it reads, every answer arrives, in order."""
    d = Daemon.start(env=daemon_env())
    one = d.connect()
    check(one.request("GET", "/healthz").status == 200, "healthz failed")
    # Every /healthz answer has the same length (the Date header is fixed-width).
    one.send(HEALTHZ)
    answer_len = len(one.read_response().raw_head) + 4 + len(b'{"status":"ok","storage":"ok"}')
    before_kb = rss_anon_kb(d)

    count = 8 * 1024 * 1024 // len(HEALTHZ)  # 8 MiB of requests: ~240,000 answers
    data = HEALTHZ * count
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10 * SLOWDOWN)
    # Small socket buffers, so the kernel holds few answers (the daemon's own
    # queue is what is measured) and few requests (so the client stalls well
    # before it sent everything, once the daemon stops reading).
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    try:
        # Send until the daemon paused this connection: it reads (and answers) no more until answers are
        # read. A stall alone is not proof (on a loaded machine the daemon may just not have run for a
        # while), so keep sending after each stall until the pause is counted.
        view = memoryview(data)
        sent = 0

        def paused():
            nonlocal sent
            sent += send_until_stalled(s, view[sent:], stall=0.5 * SLOWDOWN)
            return metric(d, "smsrules_http_read_paused_total") >= 1

        wait_for(paused, 15 * SLOWDOWN, "smsrules_http_read_paused_total to count the pause")
        check(sent < len(data), "the daemon read all %d bytes without its answers being read" % len(data))
        answered = metric(d, "smsrules_http_requests_total", route="/healthz", code="200")
        grown_kb = rss_anon_kb(d) - before_kb
        check(answered < count / 2, "%d of %d pipelined requests answered while none was read" % (answered, count))
        check(grown_kb < 30 * 1024, "daemon anonymous memory grew %d KiB while answers went unread" % grown_kb)

        # Now read: every request is answered, in full, and the connection stays usable.
        received = []
        total = count * answer_len

        def reader():
            got = 0
            while got < total:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                received.append(chunk)
                got += len(chunk)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        s.sendall(data[sent:])
        t.join(40 * SLOWDOWN)
        check(not t.is_alive(), "answers still missing after 40 s")
        stream = b"".join(received)
        check(len(stream) == total, "read %d bytes of answers, expected %d x %d" % (len(stream), count, answer_len))
        check(stream.count(b"HTTP/1.1 200 OK\r\n") == count, "not every answer is 200 OK")
        check(stream.count(b'{"status":"ok","storage":"ok"}') == count, "not every answer has the healthz body")
        s.sendall(HEALTHZ)
        tail = s.recv(4096)
        check(tail.startswith(b"HTTP/1.1 200 OK\r\n"), "connection unusable after the pipeline: %r" % tail[:80])
    finally:
        s.close()


@test(timeout=30)
def half_close_after_pipeline_gets_every_answer():
    """A client that pipelines, half-closes and only then reads still gets
    every answer, including those that waited for it to read."""
    d = Daemon.start()
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10 * SLOWDOWN)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    try:
        count = 20000  # ~2.8 MB of answers, well over max_unsent_bytes
        s.sendall(HEALTHZ * count)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        stream = b"".join(chunks)
        check(stream.count(b"HTTP/1.1 200 OK\r\n") == count,
              "%d of %d answers before the close" % (stream.count(b"HTTP/1.1 200 OK\r\n"), count))
        check(stream.endswith(b'{"status":"ok","storage":"ok"}'), "the last answer is cut short: %r" % stream[-80:])
    finally:
        s.close()


def drip_body_request(d, length=1000):
    c = d.connect()
    c.send(b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % length)
    return c


@test(timeout=30)
def trickled_body_gets_408_at_the_request_deadline():
    """One body byte every 0.3 s never lets the body timeout (silence) run
    out; the request deadline still ends the request."""
    d = Daemon.start(rules="sms.config{ request_timeout_ms = 1000, body_timeout_ms = 10000 }\n")
    late = 1.0 + 2.0 * SLOWDOWN  # the 1 s deadline, plus room for a slow machine
    t0 = time.monotonic()
    c = drip_body_request(d)
    got = None
    while got is None and time.monotonic() - t0 < late + 2.0 * SLOWDOWN:
        try:
            c.send(b"x")
        except OSError:
            pass  # closed after the answer: read it below
        try:
            got = c.read_response(timeout=0.3)
        except socket.timeout:
            continue
    elapsed = time.monotonic() - t0
    check(got is not None, "no answer to a trickled body after %.1fs" % elapsed)
    err = check_json_error(got, 408, "request_timeout")
    check("request_timeout_ms" in err["message"], "408 message does not name the deadline: %r" % err)
    check(0.9 <= elapsed < late, "408 after %.2fs with a trickling client (deadline 1 s)" % elapsed)
    check(c.wait_closed(CLOSE_WAIT), "connection still open after the 408")
    check(metric(d, "smsrules_http_timeouts_total", timeout="request") == 1, "request timeout not counted")
    check(metric(d, "smsrules_http_timeouts_total", timeout="body") == 0, "counted as a body (silence) timeout")


@test(timeout=40)
def trickling_clients_cannot_hold_every_slot():
    """Slow clients holding every connection slot are cut off at the request
    deadline, so a normal client is served soon after, not never."""
    slots = 8
    d = Daemon.start(rules="sms.config{ max_connections = %d, request_timeout_ms = 1000, "
                           "body_timeout_ms = 10000 }\n" % slots)
    t0 = time.monotonic()
    slow = [drip_body_request(d) for _ in range(slots)]
    answers = {}
    served_at = None
    late = 1.0 + 3.0 * SLOWDOWN
    while time.monotonic() - t0 < late + 3.0 * SLOWDOWN:
        for i, c in enumerate(slow):
            if i in answers:
                continue
            try:
                c.send(b"x")
            except OSError:
                pass
            if select.select([c.sock], [], [], 0)[0]:
                try:
                    answers[i] = (c.read_response(timeout=1.0 * SLOWDOWN), time.monotonic() - t0)
                except (ConnectionClosed, socket.timeout) as e:
                    answers[i] = (e, time.monotonic() - t0)
        if served_at is None:
            try:
                n = RawConn(d.port, timeout=1.0 * SLOWDOWN)
                r = n.request("GET", "/healthz", timeout=1.0 * SLOWDOWN)
                n.close()
                if r.status == 200:
                    served_at = time.monotonic() - t0
                else:
                    check_json_error(r, 503, "too_many_connections")
            except (ConnectionClosed, OSError):
                pass  # refused while full: try again
        if served_at is not None and len(answers) == slots:
            break
        time.sleep(0.3)  # the slow clients' pace, not synchronisation
    check(served_at is not None, "a normal client was not served within %.1fs" % (time.monotonic() - t0))
    check(served_at < late + 1.0, "a normal client was first served after %.2fs (deadline 1 s)" % served_at)
    check(len(answers) == slots, "%d of %d slow clients got no answer" % (slots - len(answers), slots))
    for i, (r, at) in answers.items():
        check(not isinstance(r, Exception), "slow client %d: %r" % (i, r))
        check_json_error(r, 408, "request_timeout")
        check(at < late, "slow client %d answered after %.2fs" % (i, at))
    check(metric(d, "smsrules_http_timeouts_total", timeout="request") == slots, "request timeouts not counted")


# More than the kernel's socket buffers hold (tcp_wmem + tcp_rmem, at most
# 4 + 32 MB by default on Linux): a client can send this much only if the
# daemon keeps reading.
ENDLESS = 64 * 1024 * 1024


def send_until_answered(c, head, filler, total):
    """Sends head, then filler bytes (up to total) until the daemon answers
    or closes; returns the answer and the bytes sent after head."""
    c.send(head)
    piece = filler * (64 * 1024 // len(filler))
    sent = 0
    while sent < total:
        try:
            c.send(piece)
        except OSError:
            break  # the daemon closed: its answer is already here
        sent += len(piece)
        if select.select([c.sock], [], [], 0)[0]:
            break
    return c.read_response(timeout=CLOSE_WAIT), sent


@test(timeout=30)
def endless_chunk_extension_413_and_close():
    d = Daemon.start()
    head = b"POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    for name, prefix, filler in (("extension", b"1;", b"a"), ("quoted extension value", b"1;a=\"", b"v"),
                                 ("leading zeros", b"", b"0")):
        c = d.connect()
        t0 = time.monotonic()
        r, sent = send_until_answered(c, head + prefix, filler, ENDLESS)
        check_json_error(r, 413, "chunk_line_too_long")
        check(sent < ENDLESS // 2, "%s: the daemon read all %d bytes" % (name, sent))
        check(c.wait_closed(CLOSE_WAIT), "%s: connection still open after the 413" % name)
        check(time.monotonic() - t0 < CLOSE_WAIT, "%s: the 413 took %.2fs" % (name, time.monotonic() - t0))
    # Extensions under the limit are still read, and the daemon is unharmed.
    c = d.connect()
    for ext in (b"name=value", b"q=\"quoted\"", b"long=" + b"x" * 3000):
        c.send(head + b"5;" + ext + b"\r\nhello\r\n0\r\n\r\n")
        check_json_error(c.read_response(), 405)
    check(d.request("GET", "/healthz")[0] == 200, "daemon not serving after the chunk-line attacks")


@test(timeout=30)
def trailers_counted_and_dropped():
    d = Daemon.start()
    head = b"POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n"
    c = d.connect()
    r, sent = send_until_answered(c, head + b"X-T: ", b"v", ENDLESS)
    check_json_error(r, 431, "trailers_too_large")
    check(sent < ENDLESS // 2, "the daemon read all %d trailer bytes" % sent)
    check(c.wait_closed(CLOSE_WAIT), "connection still open after the 431")
    c = d.connect()
    r, sent = send_until_answered(c, head, b"X-T: 1\r\n", ENDLESS)
    check_json_error(r, 431, "trailers_too_large")
    check(c.wait_closed(CLOSE_WAIT), "connection still open after the 431 for many trailers")
    # Ordinary trailers on a route that reads headers (authorization) neither
    # reach it nor disturb the headers it reads.
    c = d.connect()
    c.send(b"POST /v1/messages HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer nope\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n"
           + b"".join(b"X-Trailer-%d: %s\r\n" % (i, b"t" * 200) for i in range(40)) + b"\r\n")
    r = c.read_response()
    check_json_error(r, 401)
    check(c.request("GET", "/healthz").status == 200, "connection unusable after trailers")
    check(d.running(), "daemon died on a request with trailers")


@test
def header_name_must_be_a_token():
    """Header lines two parsers could read differently (request smuggling)
    are refused: names that are not tokens, folded lines, bare LF."""
    d = Daemon.start()
    bad_requests = [b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + bad + b"\r\n\r\n"
                    for bad in (b"X A: b", b"XA : b", b"X: a\r\n folded", b"X: a\r\n\tfolded")]
    bad_requests.append(b"GET /healthz HTTP/1.1\nHost: t\n\n")
    for req in bad_requests:
        c = d.connect()
        c.send(req)
        r = c.read_response()
        check_json_error(r, 400, "bad_request")
        check(c.wait_closed(CLOSE_WAIT), "connection still open after the 400 for %r" % req)
    c = d.connect()
    r = c.request("GET", "/healthz", headers={"X-!#$%&'*+-.^_`|~09az": "any value: with spaces"})
    check(r.status == 200, "a header name of token characters was refused: %r" % r)
    c.send(build_request("POST", "/healthz", headers={"Transfer-Encoding": "chunked"})
           + b"1\r\nx\r\n0\r\nBad Trailer: x\r\n\r\n")
    check_json_error(c.read_response(), 400, "bad_request")


@test
def limit_settings_checked():
    for src, needle in (("sms.config{ request_timeout_ms = 0 }", "request_timeout_ms"),
                        ("sms.config{ max_unsent_bytes = 100 }", "max_unsent_bytes"),
                        ("sms.config{ max_unsent_bytes = \"lots\" }", "max_unsent_bytes")):
        code, _, err = run_cli(["check", write_rules(src)])
        check(code != 0 and needle in err and "rules.lua:1" in err, "%s: exit %d %r" % (src, code, err[:300]))
    code, _, err = run_cli(["check", write_rules("sms.config{ request_timeout_ms = 500, max_unsent_bytes = 4096 }")])
    check(code == 0, "valid limit settings refused: %r" % err[:300])


def write_rules(src):
    path = os.path.join(make_temp_dir(), "rules.lua")
    with open(path, "w") as f:
        f.write(src + "\n")
    return path


if __name__ == "__main__":
    run()
