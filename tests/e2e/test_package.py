"""The Debian package (`make deb`, scripts/build-deb.sh) built from the
binary under test: its files, modes, conffiles and Depends; its maintainer
scripts parse; `systemd-analyze verify` accepts both units and rates the
sandbox; and the packaged binary, run with the unit's own command line on
the packaged rules, serves and reloads its rules on SIGHUP (what
`systemctl reload` sends).

Needs dpkg-deb (Debian's dpkg, always there on Debian): without it every test
prints a SKIP line. systemd-analyze and dpkg-dev come from
scripts/install-deps.sh.

Run: SMSRULES_BIN=build/smsrules python3 tests/e2e/test_package.py [name...]"""
import atexit
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (BIN, HOST, REPO, SLOWDOWN, Daemon, check, daemon_port, make_temp_dir, run,  # noqa: E402
                     test, wait_for)

_built = {}


def sh(args, **kw):
    p = subprocess.run(args, capture_output=True, text=True, timeout=120 * SLOWDOWN, **kw)
    return p.returncode, p.stdout, p.stderr


def package():
    """Builds the package once per run (from the binary under test, nothing recompiled) and unpacks it.
    Returns {deb, root (the files), control (DEBIAN/ as extracted), fields}."""
    if _built:
        return _built
    # Not make_temp_dir (removed after each test): the package serves every test of the run.
    out = tempfile.mkdtemp(prefix="smsrules-deb-")
    atexit.register(shutil.rmtree, out, True)
    code, stdout, stderr = sh(["scripts/build-deb.sh", BIN, out], cwd=REPO)
    check(code == 0, "build-deb.sh exited %d: %s" % (code, stderr[-2000:]))
    deb = stdout.strip().splitlines()[-1]
    check(os.path.isfile(deb) and deb.endswith(".deb"), "build-deb.sh printed %r" % stdout[-300:])
    root, control = os.path.join(out, "x"), os.path.join(out, "control")
    for args in (["dpkg-deb", "-x", deb, root], ["dpkg-deb", "-e", deb, control]):
        code, _, stderr = sh(args)
        check(code == 0, "%s: %s" % (" ".join(args), stderr))
    code, info, stderr = sh(["dpkg-deb", "-f", deb])
    check(code == 0, "dpkg-deb -f: %s" % stderr)
    fields = {}
    for line in info.splitlines():
        m = re.match(r"^([A-Za-z-]+): (.*)$", line)
        if m:
            fields[m.group(1)] = m.group(2)
    _built.update(deb=deb, root=root, control=control, fields=fields, dir=out)
    return _built


def listing(deb):
    """{path: (mode string, owner)} from dpkg-deb -c."""
    code, out, err = sh(["dpkg-deb", "-c", deb])
    check(code == 0, "dpkg-deb -c: %s" % err)
    files = {}
    for line in out.splitlines():
        parts = line.split(None, 5)
        files[parts[5].split(" -> ")[0].lstrip(".")] = (parts[0], parts[1])
    return files


def sr_version():
    with open(os.path.join(REPO, "src", "daemon", "app.h")) as f:
        return re.search(r'#define SR_VERSION "([^"]+)"', f.read()).group(1)


def library_packages(binary):
    """The Debian package of every shared library the binary names (NEEDED), found as ldd resolves it."""
    code, out, err = sh(["ldd", binary])
    check(code == 0, "ldd: %s" % err)
    resolved = dict(re.findall(r"^\s*(\S+) => (\S+)", out, re.M))
    code, out, err = sh(["readelf", "-d", binary])
    check(code == 0, "readelf: %s" % err)
    packages = {}
    for lib in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out):
        where = os.path.dirname(resolved[lib]).replace("/usr/lib", "/lib")
        code, found, err = sh(["dpkg", "-S", "*/" + lib])
        check(code == 0, "dpkg -S %s: %s" % (lib, err))
        owners = [l.split(": ", 1)[0].split(":")[0] for l in found.splitlines()
                  if os.path.dirname(l.split(": ", 1)[1]).replace("/usr/lib", "/lib") == where]
        check(owners, "no package ships %s in %s: %r" % (lib, where, found))
        packages[lib] = owners[0]
    return packages


@test(timeout=120)
def package_holds_the_binary_config_units_and_docs():
    p = package()
    files = listing(p["deb"])
    want = {
        "/usr/bin/smsrules": "-rwxr-xr-x",
        "/etc/smsrules/rules.lua": "-rw-r--r--",
        "/etc/smsrules/smsrules.env": "-rw-r-----",
        "/lib/systemd/system/smsrules.service": "-rw-r--r--",
        "/lib/systemd/system/smsrules-mock-provider.service": "-rw-r--r--",
        "/usr/share/doc/smsrules/copyright": "-rw-r--r--",
        "/usr/share/doc/smsrules/docs/operations.md": "-rw-r--r--",
        "/usr/share/doc/smsrules/examples/quickstart/rules.lua": "-rw-r--r--",
        "/usr/share/doc/smsrules/contrib/prometheus/smsrules-alerts.yml": "-rw-r--r--",
        "/usr/share/doc/smsrules/contrib/grafana/smsrules-dashboard.json": "-rw-r--r--",
    }
    for path, mode in want.items():
        check(path in files, "%s is not in the package" % path)
        check(files[path][0] == mode, "%s has mode %s, want %s" % (path, files[path][0], mode))
    check(all(owner == "root/root" for _, owner in files.values()),
          "files not owned by root: %r" % {k: v for k, v in files.items() if v[1] != "root/root"})
    check(not any(path.startswith(("/var/", "/home/", "/tmp/")) for path in files),
          "the package ships state: %r" % [f for f in files if f.startswith(("/var/", "/home/", "/tmp/"))])
    with open(os.path.join(REPO, "examples", "quickstart", "rules.lua"), "rb") as f:
        quickstart = f.read()
    with open(os.path.join(p["root"], "etc", "smsrules", "rules.lua"), "rb") as f:
        check(f.read() == quickstart, "/etc/smsrules/rules.lua is not the quickstart rules `make run` uses")
    binary = os.path.join(p["root"], "usr", "bin", "smsrules")
    code, out, err = sh([binary, "version"])
    check(code == 0 and out.startswith("smsrules %s " % sr_version()), "the packaged binary: %d %r %r"
          % (code, out, err))
    code, out, err = sh([binary, "check", os.path.join(p["root"], "etc", "smsrules", "rules.lua")])
    check(code == 0, "smsrules check on the packaged rules exited %d: %s" % (code, err))


@test(timeout=120)
def control_names_conffiles_depends_and_scripts():
    p = package()
    fields = p["fields"]
    check(fields.get("Package") == "smsrules", "Package: %r" % fields.get("Package"))
    check(fields.get("Version") == sr_version() + "-1", "Version %r, want %s-1" % (fields.get("Version"),
                                                                                     sr_version()))
    code, arch, _ = sh(["dpkg", "--print-architecture"])
    check(fields.get("Architecture") == arch.strip(), "Architecture %r" % fields.get("Architecture"))
    depends = {d.strip().split(" ")[0] for d in fields.get("Depends", "").split(",")}
    check("adduser" in depends, "Depends lacks adduser (postinst uses it): %r" % fields.get("Depends"))
    for lib, pkg in library_packages(BIN).items():
        # The package itself, or a name it Provides (libphonenumber8 provides libphonenumber8-protobuf32:
        # its shlibs name that, so the protobuf it was built with comes along).
        code, provides, _ = sh(["dpkg-query", "-W", "-f=${Provides}", pkg])
        names = {pkg} | {n.strip().split(" ")[0] for n in provides.split(",") if n.strip()}
        check(names & depends, "the binary needs %s from %s, which Depends does not name: %r"
              % (lib, pkg, fields.get("Depends")))
    with open(os.path.join(p["control"], "conffiles")) as f:
        conffiles = f.read().split()
    check(sorted(conffiles) == ["/etc/smsrules/rules.lua", "/etc/smsrules/smsrules.env"],
          "conffiles: %r" % conffiles)
    for script in ("postinst", "prerm", "postrm"):
        path = os.path.join(p["control"], script)
        check(os.access(path, os.X_OK), "%s is not executable" % script)
        code, _, err = sh(["sh", "-n", path])
        check(code == 0, "%s does not parse: %s" % (script, err))
    with open(os.path.join(p["control"], "postinst")) as f:
        postinst = f.read()
    check("adduser --system" in postinst and "smsrules" in postinst, "postinst makes no system user")
    check("chown root:smsrules /etc/smsrules/smsrules.env" in postinst, "postinst leaves the env file's group")


def units_for_verify(p):
    """The packaged units, pointed at the unpacked binary when none is installed in /usr/bin (verify checks
    that ExecStart's program exists); returns their paths."""
    binary = os.path.join(p["root"], "usr", "bin", "smsrules")
    out = make_temp_dir("smsrules-units-")
    paths = []
    for name in ("smsrules.service", "smsrules-mock-provider.service"):
        with open(os.path.join(p["root"], "lib", "systemd", "system", name)) as f:
            text = f.read()
        if not os.path.exists("/usr/bin/smsrules"):
            text = text.replace("/usr/bin/smsrules", binary)
        paths.append(os.path.join(out, name))
        with open(paths[-1], "w") as f:
            f.write(text)
    return paths


@test(timeout=120)
def systemd_analyze_verifies_both_units():
    p = package()
    check(shutil.which("systemd-analyze"), "systemd-analyze is missing: run scripts/install-deps.sh (systemd)")
    units = units_for_verify(p)
    code, out, err = sh(["systemd-analyze", "verify", "--man=no"] + units)
    check(code == 0 and not err.strip(), "systemd-analyze verify exited %d: %s %s" % (code, out, err))
    for unit in units:
        code, out, err = sh(["systemd-analyze", "security", "--offline=true", unit])
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
        check(m, "systemd-analyze security said %r %r" % (out[-300:], err[-300:]))
        check(float(m.group(1)) <= 2.0, "%s: exposure %s (want at most 2.0, 'OK'):\n%s"
              % (os.path.basename(unit), m.group(1), "\n".join(l for l in out.splitlines() if "✗" in l)))
    with open(units[0]) as f:
        service = f.read()
    for line in ("User=smsrules", "StateDirectory=smsrules", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "ReadWritePaths=/var/lib/smsrules", "EnvironmentFile=-/etc/smsrules/smsrules.env"):
        check(re.search("^" + re.escape(line) + "$", service, re.M), "smsrules.service lacks %r" % line)


def exec_start(unit_text):
    return shlex.split(re.search(r"^ExecStart=(.*)$", unit_text, re.M).group(1))


@test(timeout=120)
def the_units_command_lines_serve_and_reload_on_sighup():
    p = package()
    root = p["root"]
    with open(os.path.join(root, "lib", "systemd", "system", "smsrules.service")) as f:
        service = f.read()
    with open(os.path.join(root, "lib", "systemd", "system", "smsrules-mock-provider.service")) as f:
        mock_unit = f.read()
    state = os.path.join(make_temp_dir("smsrules-state-"), "smsrules")
    os.mkdir(state)
    # The unit's own arguments, with its paths moved under the unpacked tree and the state folder.
    def relocate(args):
        return [a.replace("/usr/bin/", root + "/usr/bin/").replace("/etc/smsrules", root + "/etc/smsrules")
                .replace("/var/lib/smsrules", state) for a in args]
    d = Daemon()
    d.dir = state
    d.stderr_path = os.path.join(state, "stderr.log")
    mock_port, d.port = daemon_port(), daemon_port()
    mock_cmd = relocate(exec_start(mock_unit))
    mock_cmd[mock_cmd.index("--listen") + 1] = "%s:%d" % (HOST, mock_port)
    # The quickstart rules send to the mock on 127.0.0.1:9090 and listen on 8080: fixed ports a test
    # cannot count on, so the rules are the packaged ones with those two ports replaced.
    packaged_rules = os.path.join(root, "etc", "smsrules", "rules.lua")
    with open(packaged_rules) as f:
        rules = f.read().replace("127.0.0.1:9090", "%s:%d" % (HOST, mock_port))
    rules_path = os.path.join(state, "rules.lua")
    with open(rules_path, "w") as f:
        f.write(rules)
    cmd = relocate(exec_start(service))
    check(cmd[1] == "serve" and packaged_rules in cmd and state in cmd, "unexpected ExecStart: %r" % cmd)
    cmd = [rules_path if a == packaged_rules else a for a in cmd] + ["--listen", "%s:%d" % (HOST, d.port)]
    with open(os.devnull, "wb") as null, open(os.path.join(state, "mock.log"), "wb") as mlog:
        mock = subprocess.Popen(mock_cmd, stdin=subprocess.DEVNULL, stdout=null, stderr=mlog)
        try:
            with open(d.stderr_path, "wb") as err:
                d.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=null, stderr=err, cwd=state)
            harness._open_daemons.append(d)  # killed and checked for sanitizer reports after the test
            check(d._wait_ready(10 * SLOWDOWN), "the packaged daemon did not start: %s" % d.stderr()[-1000:])
            status, _, body, doc = d.request("POST", "/v1/messages", {"to": "+84912345678", "text": "hi"},
                                             headers={"Authorization": "Bearer demo-key"})
            check(status == 202, "a send with the quickstart key answered %d %r" % (status, body[:200]))
            wait_for(lambda: d.request("GET", "/v1/messages/" + doc["id"],
                                       headers={"Authorization": "Bearer demo-key"})[3]["status"] == "sent",
                     10 * SLOWDOWN, "the message to reach the packaged mock provider")
            with open(rules_path, "a") as f:
                f.write('\nsms.template("package_reload", "reloaded")\n')
            d.signal(signal.SIGHUP)  # ExecReload=/bin/kill -HUP $MAINPID
            line = d.wait_log("rules reloaded", 10 * SLOWDOWN)
            check(line.get("templates") == 3, "the reload did not pick up the new template: %r" % line)
            check(d.stop() == 0, "the daemon did not exit 0 on SIGTERM (systemctl stop)")
        finally:
            d.kill()
            mock.terminate()
            mock.wait(10 * SLOWDOWN)


if __name__ == "__main__":
    if not shutil.which("dpkg-deb"):
        for name in ("package_holds_the_binary_config_units_and_docs", "control_names_conffiles_depends_and_scripts",
                     "systemd_analyze_verifies_both_units", "the_units_command_lines_serve_and_reload_on_sighup"):
            print("SKIP test_package.py:%s: dpkg-deb is missing (not a Debian system)" % name, flush=True)
        sys.exit(0)
    run()
