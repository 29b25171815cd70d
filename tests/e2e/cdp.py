"""A small Chrome DevTools Protocol client over the standard library only: starts
Debian's headless Chromium with --remote-debugging-port=0, reads the port it
chose from DevToolsActivePort, and talks to the page target over a WebSocket
(RFC 6455, client side: masked frames out, fragmented frames in).

    b = Browser.start()                     # kills Chromium at b.close()
    b.navigate("http://127.0.0.1:8080/console")
    b.eval("document.title")                # a JSON value (returnByValue)
    b.wait("document.querySelector('h1') !== null", what="a heading")
    b.screenshot("out.png")
    b.problems()                            # console errors, exceptions, refused loads

Every console.error/warn, uncaught exception and browser log entry (CSP
violations, failed loads) is collected by problems()."""
import base64
import json
import os
import socket
import struct
import subprocess
import time
import urllib.request

from harness import SLOWDOWN, TestFailure, make_temp_dir, wait_for


class WebSocket:
    def __init__(self, url, timeout):
        assert url.startswith("ws://")
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise TestFailure("DevTools closed the WebSocket handshake")
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise TestFailure("DevTools refused the WebSocket: %r" % head[:200])

    def send(self, text):
        data = text.encode("utf-8")
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x81])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise TestFailure("DevTools closed the WebSocket")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """The next text message (fragments joined; control frames skipped)."""
        parts = []
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 8:
                raise TestFailure("DevTools closed the WebSocket")
            if opcode in (0, 1, 2):
                parts.append(payload)
                if b0 & 0x80:
                    return b"".join(parts).decode("utf-8")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Browser:
    def __init__(self):
        self.proc = None
        self.ws = None
        self.next_id = 0
        self.events = []

    @classmethod
    def start(cls, path):
        b = cls()
        profile = make_temp_dir("smsrules-chromium-")
        cmd = [path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-default-apps", "--user-data-dir=" + profile, "--remote-debugging-port=0",
               "--remote-debugging-address=127.0.0.1", "--window-size=1280,900", "about:blank"]
        # TMPDIR inside the profile: Chromium's singleton socket folder goes with it (killed, it leaves it).
        b.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env=dict(os.environ, TMPDIR=profile))
        active = os.path.join(profile, "DevToolsActivePort")

        def port():
            if b.proc.poll() is not None:
                raise TestFailure("chromium exited %s" % b.proc.returncode)
            try:
                with open(active) as f:
                    line = f.readline().strip()
                return int(line) if line else None
            except (OSError, ValueError):
                return None

        try:
            p = wait_for(port, 60 * SLOWDOWN, "chromium's DevTools port")
            targets = json.loads(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % p, timeout=10).read())
            page = [t for t in targets if t.get("type") == "page"][0]
            b.ws = WebSocket(page["webSocketDebuggerUrl"], 30 * SLOWDOWN)
            for domain in ("Page", "Runtime", "Log"):
                b.call(domain + ".enable")
        except BaseException:
            b.close()
            raise
        return b

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise TestFailure("%s: %r" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def eval(self, expression):
        """The value of a JavaScript expression (promises awaited); an exception fails the test."""
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise TestFailure("%s threw %r" % (expression[:80], r["exceptionDetails"].get("text")))
        return r["result"].get("value")

    def wait(self, expression, timeout=20, what=None):
        """Waits until the expression is truthy; while the page is still loading it may throw (false)."""
        guarded = "(() => { try { return (%s); } catch (e) { return false; } })()" % expression
        return wait_for(lambda: self.eval(guarded), timeout * SLOWDOWN, what or expression, interval=0.05)

    def navigate(self, url):
        self.call("Page.navigate", url=url)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def problems(self):
        """Console errors and warnings, uncaught exceptions, and browser log entries (CSP, loads)."""
        self.call("Runtime.evaluate", expression="0")  # drains events sent before now
        out = []
        for e in self.events:
            m, p = e["method"], e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                out.append("console.%s: %r" % (p["type"], [a.get("value", a.get("description")) for a in p["args"]]))
            elif m == "Runtime.exceptionThrown":
                out.append("exception: %s" % p["exceptionDetails"].get("exception", {}).get("description", p))
            elif m == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                out.append("log: %s" % p["entry"]["text"])
        return out

    def close(self):
        if self.ws:
            self.ws.close()
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
