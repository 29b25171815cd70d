"""End-to-end tests of the command line and of loading rules files (the
sandbox, sms.config, sms.env, require). Run: SMSRULES_BIN=build/smsrules python3 tests/e2e/test_cli.py [name...]"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Daemon, check, make_temp_dir, run, run_cli, test  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def write_rules(source, name="rules.lua"):
    """Writes source to a fresh folder; returns the file's absolute path."""
    path = os.path.join(make_temp_dir(), name)
    with open(path, "w") as f:
        f.write(source)
    return path


def json_lines(text):
    out = []
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def check_located_error(code, err, path, line, *needles):
    """exit 1, and stderr starts with "path:line:" and mentions each needle."""
    check(code == 1, "exit code %d, expected 1; stderr: %r" % (code, err[:300]))
    first = err.strip().splitlines()[0] if err.strip() else ""
    check(first.startswith("%s:%d:" % (path, line)), "stderr does not start with %s:%d: — got %r" % (path, line, err[:300]))
    for n in needles:
        check(n in err, "stderr does not mention %r: %r" % (n, err[:300]))


# ---- commands, help, usage ----


@test
def version_exit_0():
    code, out, err = run_cli(["version"])
    check(code == 0, "version exited %d" % code)
    check(out.startswith("smsrules ") and any(ch.isdigit() for ch in out), "version output %r" % out)
    code2, out2, _ = run_cli(["--version"])
    check(code2 == 0 and out2 == out, "--version differs from version")


@test
def help_main():
    code, out, err = run_cli(["--help"])
    check(code == 0, "--help exited %d" % code)
    for word in ("usage", "serve", "check", "version"):
        check(word in out, "--help does not mention %r: %r" % (word, out))


@test
def help_serve_describes_options():
    code, out, err = run_cli(["serve", "--help"])
    check(code == 0, "serve --help exited %d" % code)
    for opt in ("-c", "--listen", "--data", "--log-level", "--help"):
        check(opt in out, "serve --help does not describe %s: %r" % (opt, out))
    check("127.0.0.1:8080" in out, "serve --help does not give the default listen address")


@test
def help_check_and_version():
    code, out, err = run_cli(["check", "--help"])
    check(code == 0, "check --help exited %d" % code)
    check("usage: smsrules check" in out and "rules" in out, "check --help: %r" % out)
    code, out, err = run_cli(["version", "--help"])
    check(code == 0 and "usage: smsrules version" in out, "version --help: %d %r" % (code, out))


@test
def unknown_command_usage_exit_1():
    code, out, err = run_cli(["frobnicate"])
    check(code == 1, "unknown command exited %d" % code)
    check("usage:" in err and "frobnicate" in err, "stderr lacks usage or the command: %r" % err)
    check(out == "", "usage went to stdout: %r" % out)
    code, out, err = run_cli([])
    check(code == 1 and "usage:" in err, "no command: exit %d, stderr %r" % (code, err))


@test
def unknown_option_usage_exit_1():
    for args in (["serve", "--bogus"], ["check", "--bogus", "x.lua"], ["version", "--bogus"], ["serve", "-z"]):
        code, out, err = run_cli(args)
        check(code == 1, "%s exited %d" % (" ".join(args), code))
        check("usage:" in err and args[1] in err, "%s: stderr lacks usage or the option: %r" % (" ".join(args), err))
    code, out, err = run_cli(["serve", "--log-level", "loud"])
    check(code == 1 and "loud" in err, "bad --log-level: exit %d %r" % (code, err))
    code, out, err = run_cli(["serve", "-c"])
    check(code == 1 and "usage:" in err, "-c without a value: exit %d %r" % (code, err))
    code, out, err = run_cli(["check"])
    check(code == 1 and "usage:" in err, "check without a file: exit %d %r" % (code, err))


# ---- check ----


@test
def check_good_file_one_line_summary():
    path = os.path.join(FIXTURES, "good", "rules.lua")
    code, out, err = run_cli(["check", path], cwd=os.path.join(FIXTURES, "other_cwd"))
    check(code == 0, "check exited %d: %r" % (code, err[:300]))
    lines = out.splitlines()
    check(len(lines) == 1 and out.endswith("\n"), "summary is not one line: %r" % out)
    check(path in lines[0], "summary does not name the file: %r" % lines[0])


@test
def check_missing_file_exit_1():
    path = os.path.join(make_temp_dir(), "absent.lua")
    code, out, err = run_cli(["check", path])
    check(code == 1, "missing file: exit %d" % code)
    check(path in err, "error does not name the file: %r" % err)


@test
def check_syntax_error_file_line():
    path = os.path.join(FIXTURES, "syntax_error.lua")
    code, out, err = run_cli(["check", path])
    check_located_error(code, err, path, 4)
    check(len(err.strip().splitlines()) == 1, "more than the one error line: %r" % err)
    check(out == "", "a summary was printed for a broken file: %r" % out)


@test
def check_runtime_error_file_line():
    path = os.path.join(FIXTURES, "runtime_error.lua")
    code, out, err = run_cli(["check", path])
    check_located_error(code, err, path, 3, "nil value")
    # A relative path is reported as given.
    code, out, err = run_cli(["check", "runtime_error.lua"], cwd=FIXTURES)
    check_located_error(code, err, "runtime_error.lua", 3)


@test
def serve_with_broken_rules_exit_1():
    path = os.path.join(FIXTURES, "syntax_error.lua")
    data = os.path.join(make_temp_dir(), "data")
    code, out, err = run_cli(["serve", "-c", path, "--listen", "127.0.0.1:0", "--data", data], timeout=10)
    check_located_error(code, err, path, 4)
    path = os.path.join(FIXTURES, "runtime_error.lua")
    code, out, err = run_cli(["serve", "-c", path, "--listen", "127.0.0.1:0", "--data", data], timeout=10)
    check_located_error(code, err, path, 3)


# ---- the sandbox ----

FORBIDDEN = [
    ("os_execute", 'os.execute("true")', "nil value"),
    ("io_open", 'local f = io.open("/etc/passwd")', "nil value"),
    ("load", 'local f = load("return 1")', "nil value"),
    ("loadfile", 'local f = loadfile("/etc/passwd")', "nil value"),
    ("dofile", 'dofile("/etc/passwd")', "nil value"),
    ("debug_getinfo", "local i = debug.getinfo(1)", "nil value"),
    ("string_dump", "local s = string.dump(function() end)", "nil value"),
    ("string_method_dump", 'local s = ("").dump(function() end)', "nil value"),
    ("package_loadlib", 'local f = package.loadlib("libc.so.6", "system")', "nil value"),
    ("require_io", 'local io2 = require "io"', "not available"),
    ("require_debug", 'local d = require "debug"', "not available"),
    ("os_exit", "os.exit(0)", "nil value"),
    ("os_getenv", 'local h = os.getenv("HOME")', "nil value"),
    ("os_remove", 'os.remove("/tmp/x")', "nil value"),
]


@test
def sandbox_forbidden_functions_fail():
    failures = []
    for name, call, needle in FORBIDDEN:
        # The call sits on line 2, after a harmless line.
        path = write_rules("local ok = 1\n%s\n" % call, "%s.lua" % name)
        code, out, err = run_cli(["check", path])
        if code != 1:
            failures.append("%s: exit %d (the call worked)" % (name, code))
        elif needle not in err:
            failures.append("%s: stderr lacks %r: %r" % (name, needle, err.strip()[:150]))
    check(not failures, "; ".join(failures))


@test
def sandbox_errors_give_file_line():
    """Every refusal is reported where it happened, like any runtime error."""
    failures = []
    for name, call, _ in FORBIDDEN:
        path = write_rules("local ok = 1\n%s\n" % call, "%s.lua" % name)
        code, out, err = run_cli(["check", path])
        if not err.startswith("%s:2:" % path):
            failures.append("%s: %r" % (name, err.strip()[:120]))
    check(not failures, "errors without file:line: " + "; ".join(failures))


@test
def sandbox_escape_routes_closed():
    path = write_rules(
        "\n".join([
            'assert(rawget(_G, "load") == nil, "load in _G")',
            'assert(_ENV.loadfile == nil and _G.dofile == nil, "loadfile/dofile")',
            'assert(package.loaded.io == nil and package.loaded.debug == nil, "io/debug in package.loaded")',
            'assert(package.loaded._G.io == nil, "io via package.loaded._G")',
            'assert(require("string").dump == nil, "string.dump via require")',
            'assert(getmetatable("") == false, "the string metatable is reachable")',
            'assert(require("package").loadlib == nil, "package.loadlib via require")',
            'assert(package.cpath == "", "package.cpath is " .. tostring(package.cpath))',
            'local ok, err = pcall(require, "lfs")',
            'assert(not ok, "a C module loaded")',
            'local ok2 = pcall(require, "../../../etc/passwd")',
            'assert(not ok2, "require escaped the rules folder")',
            "",
        ]))
    code, out, err = run_cli(["check", path])
    check(code == 0, "an escape route is open: %r" % err.strip()[:300])


@test
def sandbox_binary_chunk_refused():
    path = write_rules("")
    with open(path, "wb") as f:
        f.write(b"\x1bLua\x54\x00garbage")
    code, out, err = run_cli(["check", path])
    check(code == 1, "a binary chunk was accepted (exit %d)" % code)
    check("binary" in err, "stderr does not say why: %r" % err)


@test
def sandbox_allowed_functions_work():
    path = write_rules(
        "\n".join([
            "local t = os.time()",
            'local d = os.date("!%Y-%m-%d")',
            "local c = os.clock()",
            'local cjson = require "cjson"',
            'local o = require "os"',
            'assert(type(o) == "table", "require os is not a table")',
            'assert(o.execute == nil and o.exit == nil and o.getenv == nil, "require os exposes execute/exit/getenv")',
            'assert(o.time == os.time, "require os is not the sandboxed os")',
            'sms.log.info("probe", {t = t, d = d, c = c, j = cjson.encode({a = 1}), back = cjson.decode("[1,2]")[2]})',
            "",
        ]))
    code, out, err = run_cli(["check", path])
    check(code == 0, "allowed functions failed: %r" % err.strip()[:300])
    probes = [o for o in json_lines(err) if o.get("msg") == "probe"]
    check(len(probes) == 1, "no probe log line in %r" % err[:300])
    p = probes[0]
    check(isinstance(p.get("t"), int) and p["t"] > 1600000000, "os.time() gave %r" % p.get("t"))
    check(isinstance(p.get("d"), str) and len(p["d"]) == 10 and p["d"][4] == "-", "os.date gave %r" % p.get("d"))
    check(p.get("j") == '{"a":1}', "cjson.encode gave %r" % p.get("j"))
    check(p.get("back") == 2, "cjson.decode gave %r" % p.get("back"))


# ---- sms.config, sms.env, require ----


@test
def config_unknown_key_named():
    path = write_rules('local a = 1\nsms.config{ lsiten = "x" }\n')
    code, out, err = run_cli(["check", path])
    check_located_error(code, err, path, 2, "lsiten")
    data = os.path.join(make_temp_dir(), "data")
    code, out, err = run_cli(["serve", "-c", path, "--listen", "127.0.0.1:0", "--data", data])
    check(code == 1 and "lsiten" in err, "serve with an unknown config key: exit %d %r" % (code, err[:300]))


@test
def config_bad_values_refused():
    for src, needle in (('sms.config{ max_connections = "many" }', "max_connections"),
                        ("sms.config{ header_timeout_ms = 0 }", "header_timeout_ms"),
                        ('sms.config{ log_level = "loud" }', "log_level"),
                        ("sms.config{ listen = 8080 }", "listen")):
        path = write_rules(src + "\n")
        code, out, err = run_cli(["check", path])
        check_located_error(code, err, path, 1, needle)


@test
def env_returns_the_value():
    home = make_temp_dir()
    path = write_rules(
        'sms.log.info("env", { home = sms.env("HOME"), token = sms.env("SMSRULES_E2E_VALUE") })\n'
        'assert(sms.env("SMSRULES_E2E_UNSET") == nil, "unset variable is not nil")\n')
    env = {"HOME": home, "SMSRULES_E2E_VALUE": "v-42"}
    os.environ.pop("SMSRULES_E2E_UNSET", None)
    code, out, err = run_cli(["check", path], env=env)
    check(code == 0, "check failed: %r" % err[:300])
    lines = [o for o in json_lines(err) if o.get("msg") == "env"]
    check(len(lines) == 1, "no env log line: %r" % err[:300])
    check(lines[0].get("home") == home, "sms.env(\"HOME\") gave %r, expected %r" % (lines[0].get("home"), home))
    check(lines[0].get("token") == "v-42", "sms.env gave %r" % lines[0].get("token"))
    check(lines[0].get("source") == "rules", "sms.log line lacks source=rules: %r" % lines[0])


@test
def require_loads_from_the_rules_folder():
    path = os.path.join(FIXTURES, "good", "rules.lua")
    # The current directory holds a decoy helper.lua: the one beside the rules must win.
    code, out, err = run_cli(["check", path], cwd=os.path.join(FIXTURES, "other_cwd"))
    check(code == 0, "check failed: %r" % err[:300])
    lines = [o for o in json_lines(err) if o.get("msg") == "rules loaded"]
    check(len(lines) == 1, "no 'rules loaded' line: %r" % err[:300])
    check(lines[0].get("origin") == "rules-folder", "helper came from %r" % lines[0].get("origin"))
    check(lines[0].get("greeting") == "hello e2e", "helper.greet gave %r" % lines[0].get("greeting"))
    # Without helper.lua beside the rules, require fails with file:line.
    lonely = write_rules('local x = 1\nlocal h = require "helper"\n')
    code, out, err = run_cli(["check", lonely], cwd=os.path.join(FIXTURES, "other_cwd"))
    check_located_error(code, err, lonely, 2, "helper")


@test
def command_line_wins_over_config():
    """sms.config{listen=...} is overridden by --listen: a port taken by
    config would fail, the flag's port 0 works (seen in the listening line)."""
    import signal
    import subprocess

    from harness import BIN, wait_for

    d = make_temp_dir()
    path = os.path.join(d, "rules.lua")
    with open(path, "w") as f:
        f.write('sms.config{ listen = "256.1.1.1:1", data = "/nonexistent/should-not-be-used" }\n')
    os.mkdir(os.path.join(d, "data"))
    errpath = os.path.join(d, "stderr.log")
    with open(errpath, "wb") as errf:
        p = subprocess.Popen([BIN, "serve", "-c", path, "--listen", "127.0.0.1:0", "--data", os.path.join(d, "data")],
                             stdout=subprocess.DEVNULL, stderr=errf)
    try:
        def listening():
            with open(errpath) as f:
                for o in json_lines(f.read()):
                    if o.get("msg") == "listening":
                        return o
            return None

        line = wait_for(listening, 10.0, "the listening line")
        check(line.get("host") == "127.0.0.1" and isinstance(line.get("port"), int) and line["port"] > 0,
              "listening line %r" % line)
        p.send_signal(signal.SIGTERM)
        check(p.wait(5) == 0, "exit code after SIGTERM")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@test
def port_in_use_is_a_clear_runtime_failure():
    d = Daemon.start()
    for args in (["serve", "--data", make_temp_dir()], ["mock-provider"]):
        rc, out, err = run_cli(args + ["--listen", "127.0.0.1:%d" % d.port])
        check(rc == 2, "%s on a busy port exited %d (want 2): %s" % (args[0], rc, err[-300:]))
        check("address already in use" in err and "free()" not in err, "%s: %r" % (args[0], err[-300:]))
    d.stop()


@test
def check_lists_handlers_in_name_order():
    path = os.path.join(make_temp_dir(), "rules.lua")
    with open(path, "w") as f:
        f.write('sms.template("t", "Hi {{name}}")\n' +
                "".join('sms.on("%s", function() end)\n' % n for n in ("zeta", "alpha", "mid.x", "beta")))
    rc, out, err = run_cli(["check", path])
    check(rc == 0 and "4 event handlers: alpha, beta, mid.x, zeta" in out and "t(name)" in out,
          "summary: %r %r" % (out, err))


if __name__ == "__main__":
    run()
