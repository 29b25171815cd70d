"""End-to-end tests of `smsrules test`, the offline runner of rule tests: its
report (one PASS/FAIL line per test with the failing assertion's file:line,
then the counts), its exit codes, how it finds the rules, and that it leaves
nothing behind. Run: SMSRULES_BIN=build/smsrules python3 tests/e2e/test_cli_test.py [name...]"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import REPO, check, make_temp_dir, run, run_cli, test  # noqa: E402

RULES = """sms.config{ default_country = "84" }
sms.provider("p", { adapter = "mock", url = "http://127.0.0.1:9/send" })
sms.on("hello", function(ev) return sms.send{ to = ev.phone, text = "hello" } end)
"""


def write(folder, name, text):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def result_lines(out):
    return [l for l in out.splitlines() if l.startswith("PASS ") or l.startswith("FAIL ")]


@test(timeout=60)
def failing_cases_reported_with_file_line_and_exit_1():
    code, out, err = run_cli(["test", "tests/lua/failing_cases.lua"], cwd=REPO, timeout=60)
    check(code == 1, "exit %d, expected 1; stderr %r" % (code, err[-500:]))
    f = "tests/lua/failing_cases.lua"
    expected = [
        "PASS %s:passes" % f,
        "FAIL %s:wrong text: %s:13: the greeting: expected \"Hello Bob!\", got \"Hello Ann!\"" % (f, f),
        "FAIL %s:not opted out: %s:17: opted out: expected a true value, got false" % (f, f),
        "FAIL %s:no match: %s:21: \"sent\" does not match \"^rejected\"" % (f, f),
        "FAIL %s:error in the test: %s:26: attempt to index a nil value (field 'missing')" % (f, f),
        "FAIL %s:a rule error is a result, an unknown provider is an error: %s:31: provider: the rules declare "
        "no provider 'nope'" % (f, f),
    ]
    lines = out.splitlines()
    check(lines[:-1] == expected, "report:\n%s" % out)
    check(lines[-1] == "1 passed, 5 failed", "counts line %r" % lines[-1])


@test(timeout=60)
def runner_and_quickstart_tests_pass():
    for path in ("tests/lua/runner_test.lua", "examples/quickstart/rules_test.lua"):
        code, out, err = run_cli(["test", path], cwd=REPO, timeout=60)
        lines = result_lines(out)
        fails = [l for l in lines if l.startswith("FAIL ")]
        check(code == 0 and not fails and lines, "%s: exit %d, %r" % (path, code, fails or out[-500:]))
        check(all(l.startswith("PASS %s:" % path) for l in lines), "lines name the file: %r" % lines[:2])
        check(out.splitlines()[-1] == "%d passed, 0 failed" % len(lines), "counts: %r" % out.splitlines()[-1])


@test(timeout=60)
def several_files_one_count_and_the_worst_exit_code():
    d = make_temp_dir()
    write(d, "a.lua", RULES)
    ok = write(d, "a_test.lua", 'test("ok", function() assert_eq(fire("hello", {phone="0912345678"}).status, 202) end)\n')
    bad = write(d, "b_test.lua", 'load_rules("a.lua")\ntest("bad", function() assert_eq(1, 2) end)\n')
    code, out, err = run_cli(["test", ok, bad], timeout=60)
    check(code == 1, "exit %d" % code)
    check(result_lines(out) == ["PASS %s:ok" % ok, "FAIL %s:bad: %s:2: expected 2, got 1" % (bad, bad)], out)
    check(out.splitlines()[-1] == "1 passed, 1 failed", out)
    missing = os.path.join(d, "absent_test.lua")
    code, out, err = run_cli(["test", ok, missing], timeout=60)
    check(code == 2, "an unreadable file: exit %d, expected 2" % code)
    check("FAIL %s: cannot open the test file" % missing in out, out)
    check(out.splitlines()[-1] == "1 passed, 1 failed", "the broken file counts as a failure: %r" % out)


@test(timeout=60)
def broken_test_file_exit_2_with_file_line():
    d = make_temp_dir()
    write(d, "x.lua", RULES)
    syntax = write(d, "x_test.lua", 'test("t", function()\n  assert_eq(1, 1)\nend\n')
    code, out, err = run_cli(["test", syntax], timeout=30)
    check(code == 2, "syntax error: exit %d" % code)
    check(re.search(r"^FAIL %s: %s:\d+: " % (re.escape(syntax), re.escape(syntax)), out, re.M), out)
    top = write(d, "y_test.lua", 'load_rules("x.lua")\nlocal x = nil + 1\n')
    code, out, err = run_cli(["test", top], timeout=30)
    check(code == 2, "top-level error: exit %d" % code)
    check("FAIL %s: %s:2: attempt to perform arithmetic" % (top, top) in out, out)
    rules_missing = write(d, "z_test.lua", 'load_rules("nope.lua")\n')
    code, out, err = run_cli(["test", rules_missing], timeout=30)
    check(code == 2 and "cannot open" in out and "nope.lua" in out, "%d %r" % (code, out))


@test(timeout=60)
def rules_that_do_not_load_fail_each_test_with_their_file_line():
    d = make_temp_dir()
    rules = write(d, "r.lua", 'sms.config{ default_country = "84" }\nsms.template("t", "{{oops")\n')
    t = write(d, "r_test.lua", 'test("one", function() fire("x") end)\ntest("two", function() sent() end)\n'
                               'test("no engine needed", function() assert_true(true) end)\n')
    code, out, err = run_cli(["test", t], timeout=30)
    check(code == 1, "exit %d, %r" % (code, out))
    lines = result_lines(out)
    check(len(lines) == 3 and lines[2] == "PASS %s:no engine needed" % t, out)
    for line, name in zip(lines[:2], ("one", "two")):
        check(line.startswith("FAIL %s:%s: %s:2: " % (t, name, rules)), "%r" % line)


@test(timeout=60)
def rules_found_by_name_or_none():
    d = make_temp_dir()
    write(d, "shop.lua", RULES)
    t = write(d, "shop_test.lua", 'test("default rules", function()\n'
                                  '  assert_eq(fire("hello", { phone = "0912345678" }).status, 202)\n'
                                  '  assert_eq(sent()[1].to, "+84912345678")\nend)\n')
    code, out, err = run_cli(["test", t], timeout=30)
    check(code == 0 and "PASS %s:default rules" % t in out, "%d %r" % (code, out))
    # A file not named *_test.lua and without load_rules runs with no rules.
    # (Messages are accepted and wait: there is no provider to take them.)
    none = write(d, "checks.lua", 'test("no rules", function()\n'
                                  '  assert_eq(fire("hello").status, 404)\n'
                                  '  local id = send{ to = "+84912345678", text = "x" }\n'
                                  '  advance(60)\n  assert_eq(message(id).status, "queued")\nend)\n')
    code, out, err = run_cli(["test", none], timeout=30)
    check(code == 0 and "PASS %s:no rules" % none in out, "%d %r" % (code, out))
    # A relative path is resolved against the test file's folder, from any cwd.
    code, out, err = run_cli(["test", "shop_test.lua"], cwd=d, timeout=30)
    check(code == 0 and "PASS shop_test.lua:default rules" in out, "%d %r" % (code, out))


@test(timeout=60)
def inbound_without_a_handler_is_not_handled():
    d = make_temp_dir()
    write(d, "plain.lua", RULES)
    t = write(d, "plain_test.lua", 'test("t", function()\n'
                                   '  local r = inbound{ from = "+84912345678", text = "STOP" }\n'
                                   '  assert_eq(r.handled, false)\n  assert_eq(r.ids, {})\n'
                                   '  assert_eq(is_optout("+84912345678"), false)\nend)\n')
    code, out, err = run_cli(["test", t], timeout=30)
    check(code == 0, "%d %r %r" % (code, out, err[-300:]))


@test(timeout=60)
def temporary_stores_are_removed():
    tmp = make_temp_dir()
    code, out, err = run_cli(["test", "tests/lua/runner_test.lua", "tests/lua/failing_cases.lua"], cwd=REPO,
                             env={"TMPDIR": tmp}, timeout=60)
    check(code == 1, "exit %d" % code)
    check(os.listdir(tmp) == [], "left behind in TMPDIR: %r" % os.listdir(tmp))


@test
def help_and_usage():
    code, out, err = run_cli(["test", "--help"])
    check(code == 0 and "usage: smsrules test" in out and "FILE" in out, "%d %r" % (code, out))
    code, out, err = run_cli(["test"])
    check(code == 1 and "usage: smsrules test" in err, "no files: %d %r" % (code, err))
    code, out, err = run_cli(["test", "--bogus", "x_test.lua"])
    check(code == 1 and "--bogus" in err, "unknown option: %d %r" % (code, err))
    code, out, err = run_cli(["--help"])
    check(code == 0 and "test FILE" in out, "main help lists test: %r" % out)


if __name__ == "__main__":
    run()
