#!/usr/bin/env python3
"""The benchmarks' fake SMS provider: nginx (Debian nginx-light) answering a
canned JSON on loopback, so the provider is never the bottleneck (one nginx
process answers far more requests a second than the daemon or Kannel sends).
Started with its own config and prefix in a temp dir, never the system
service; `master_process off`, so the one pid we start is the whole server
and killing it leaves nothing behind.

Endpoints (any method; the request body is read and dropped):
  /send    {"message_id":"<32 hex, new each request>","status":"accepted"}:
           the generic adapter's answer (and Kannel's generic HTTP SMSC's)
  /batch   {"results":[{"message_id":"<id>-1"}, ... "<id>-100"]}: the mock
           adapter's answer for a batch of up to 100 messages
  /status  nginx's stub_status: "requests" counts every request so far,
           these status requests included

Used as a module by outbound.py and queued.py, and from the shell scripts:
  fake_provider.py conf DIR [PORT]  writes DIR/nginx.conf, prints the port
                                    (PORT, checked to be free, else a free one)
  fake_provider.py proxy DIR UPSTREAM
                                    writes DIR/nginx.conf of the "floor" contender
                                    (PROXY_CONF: POST /v1/messages proxied to
                                    UPSTREAM's /send), prints its free port
  fake_provider.py port [N]         prints N (default 1) distinct free loopback ports
  fake_provider.py free PORT        fails (exit 1, a message) when PORT is busy
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

BATCH = 100  # the mock adapter's batch_size

# What both nginx configs start with: one worker in the foreground, its files
# in its own directory, no access log, connections kept alive.
NGINX_HEAD = """daemon off;
master_process off;
worker_processes 1;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
events { worker_connections 16384; multi_accept on; }
http {
    access_log off;
    client_body_temp_path @DIR@/body;
    proxy_temp_path @DIR@/proxy;
    fastcgi_temp_path @DIR@/fastcgi;
    uwsgi_temp_path @DIR@/uwsgi;
    scgi_temp_path @DIR@/scgi;
    keepalive_requests 1000000000;
    keepalive_timeout 600s;
"""

CONF = NGINX_HEAD + """    client_max_body_size 64m;
    client_body_buffer_size 1m;
    default_type application/json;
    server {
        listen 127.0.0.1:@PORT@ backlog=4096;
        location = /send { return 200 '{"message_id":"$request_id","status":"accepted"}'; }
        location = /batch { return 200 '@BATCH_RESULTS@'; }
        location = /status { stub_status; }
        # webhooks.sh's floor: a receiver of the same reports that does no work.
        location = /hooks/mock/status { return 200 '{"status":"ok"}'; }
        location / { return 404 '{"error":{"code":"not_found","message":"no such endpoint"}}'; }
    }
}
"""

# sendsms.sh's floor: nginx as a pure proxy, one HTTP request in and one out
# (to the fake provider, over kept-alive upstream connections) with no work
# between them. No gateway that makes one provider request per client request
# can spend less than this on a message. One worker, like the daemon's one
# event loop; no access log, no buffering to temp files.
PROXY_CONF = NGINX_HEAD + """    client_body_buffer_size 64k;
    upstream provider {
        server 127.0.0.1:@UPSTREAM@;
        keepalive 64;
        keepalive_requests 1000000000;
        keepalive_timeout 600s;
    }
    server {
        listen 127.0.0.1:@PORT@ backlog=4096;
        location = /v1/messages {
            proxy_pass http://provider/send;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /healthz { return 200 'ok'; }
        location / { return 404 '{"error":{"code":"not_found","message":"no such endpoint"}}'; }
    }
}
"""


def write_proxy_conf(directory, upstream):
    """Writes DIRECTORY/nginx.conf of the floor proxy to UPSTREAM's /send; returns its (free) port."""
    port = free_port()
    text = PROXY_CONF.replace("@DIR@", directory).replace("@PORT@", str(port)).replace("@UPSTREAM@", str(upstream))
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "nginx.conf"), "w") as f:
        f.write(text)
    return port


def free_ports(count):
    """count distinct loopback ports nothing listens on now (the kernel's
    choice; all held until all are chosen, so none repeats)."""
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def free_port():
    """A loopback port nothing listens on now."""
    return free_ports(1)[0]


def check_free(port, what="fake provider"):
    """Exits with a clear message when PORT is taken on loopback."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError as e:
        sys.exit("bench: port %d for the %s is busy (%s): choose another" % (port, what, e.strerror))
    finally:
        s.close()


def write_conf(directory, port=None):
    """Writes DIRECTORY/nginx.conf for PORT (a free one when None); returns the port."""
    if port is None:
        port = free_port()
    else:
        check_free(port)
    # Short entries: nginx reads a config token into a 4 KiB buffer.
    results = ",".join('{"message_id":"$request_id-%d"}' % i for i in range(1, BATCH + 1))
    text = CONF.replace("@DIR@", directory).replace("@PORT@", str(port)).replace("@BATCH_RESULTS@",
                                                                                     '{"results":[%s]}' % results)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "nginx.conf"), "w") as f:
        f.write(text)
    return port


def need_nginx():
    """Installs nginx-light when nginx is missing (root only), else exits with a message."""
    if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
        return
    if os.geteuid() != 0:
        sys.exit("bench: nginx is missing: apt-get install -y nginx-light")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", "nginx-light"], env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "nginx-light"], env=env, check=True)


class Nginx:
    """A running fake provider: .port, .pid, .received() (requests to /send and
    /batch so far), .stop()."""

    def __init__(self, directory, port=None):
        need_nginx()
        self.dir = directory
        self.port = write_conf(directory, port)
        self.polls = 0
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        conf = os.path.join(directory, "nginx.conf")
        self.proc = subprocess.Popen([nginx, "-p", directory, "-c", conf, "-e", os.path.join(directory, "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        deadline = time.time() + 10
        while True:
            try:
                self.received()
                return
            except OSError:
                pass
            if self.proc.poll() is not None:
                log = open(os.path.join(directory, "error.log")).read()[-1000:]
                sys.exit("bench: nginx (fake provider) exited: %s" % log)
            if time.time() > deadline:
                self.stop()
                sys.exit("bench: nginx (fake provider) did not answer within 10 s")
            time.sleep(0.02)

    def received(self):
        """Requests nginx answered on /send and /batch: all its requests less our status polls."""
        with urllib.request.urlopen("http://127.0.0.1:%d/status" % self.port, timeout=10) as r:
            text = r.read().decode()
        self.polls += 1
        # "Active connections: N \nserver accepts handled requests\n A H R \n..."
        return int(text.splitlines()[2].split()[2]) - self.polls

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def main(argv):
    if len(argv) >= 3 and argv[1] == "conf":
        print(write_conf(argv[2], int(argv[3]) if len(argv) > 3 and argv[3] else None))
    elif len(argv) == 4 and argv[1] == "proxy":
        print(write_proxy_conf(argv[2], int(argv[3])))
    elif len(argv) in (2, 3) and argv[1] == "port":
        print(" ".join(str(p) for p in free_ports(int(argv[2]) if len(argv) == 3 else 1)))
    elif len(argv) == 3 and argv[1] == "free":
        check_free(int(argv[2]), "benchmark")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
