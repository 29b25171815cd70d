"""The simulation HTML report in a real browser: `smsrules report-html`
renders a simulate --json document (tests/e2e/fixtures/sim_report.json: three
strategies, one with a hostile name), headless Chromium (Debian's `chromium`,
installed by scripts/install-deps.sh) loads the page, and the test reads the
DOM Chromium built and the console messages it logged.

Chromium missing: the test fails where scripts/install-deps.sh could have
installed it (apt knows the package, or CI is set) and is skipped, with a
note on stdout, only where it cannot be installed.

Run: SMSRULES_BIN=build/smsrules python3 tests/e2e/test_sim_report_browser.py [name...]"""
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOWDOWN, TestFailure, check, make_temp_dir, run, run_cli, test  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "sim_report.json")
# A console line of Chromium's log ("[...:INFO:CONSOLE:1] "message", source: ..."; older
# releases write CONSOLE(1)): script errors, console.error, refused loads (CSP), all of them.
CONSOLE = re.compile(r"CONSOLE[:(]")


def chromium():
    """The browser's path, or None after printing why the test is skipped. Fails where it is
    installable: a missing browser there is a broken setup, not a reason to skip."""
    path = shutil.which("chromium")
    if path:
        return path
    installable = False
    if shutil.which("apt-cache"):
        policy = subprocess.run(["apt-cache", "policy", "chromium"], capture_output=True, text=True).stdout
        installable = "Candidate:" in policy and "Candidate: (none)" not in policy
    if installable or os.environ.get("CI"):
        raise TestFailure("chromium is not installed; run scripts/install-deps.sh (as root)")
    print("NOTE %s: chromium is not installable here; the browser test is skipped" % os.path.basename(sys.argv[0]),
          flush=True)
    return None


def load(browser, page):
    """Loads page (a file path) in headless Chromium; returns (the DOM it built, its console lines)."""
    profile = make_temp_dir("smsrules-chromium-")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-default-apps", "--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0",
           "--dump-dom", "file://" + os.path.abspath(page)]
    p = subprocess.run(cmd, capture_output=True, timeout=90 * SLOWDOWN, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, TMPDIR=profile))  # Chromium's temporary folders go with the profile
    err = p.stderr.decode("utf-8", "replace")
    check(p.returncode == 0, "chromium exited %d: %s" % (p.returncode, err[-1000:]))
    dom = p.stdout.decode("utf-8", "replace")
    check(dom.lstrip().startswith("<!DOCTYPE html>") or "<html" in dom, "no DOM dumped: %r" % dom[:200])
    return dom, [line for line in err.splitlines() if CONSOLE.search(line)]


@test(timeout=120)
def the_console_check_sees_script_errors():
    """The control: a page with an error, a console.error and a refused image is caught, so a clean
    console below means something."""
    browser = chromium()
    if not browser:
        return
    page = os.path.join(make_temp_dir(), "bad.html")
    with open(page, "w") as f:
        f.write("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" "
                "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
                "<script>console.error('boom-logged'); throw new Error('boom-thrown')</script>"
                "<img src=\"http://127.0.0.1:9/x.png\" alt=\"\"></body></html>")
    _, console = load(browser, page)
    text = "\n".join(console)
    for what in ("boom-logged", "boom-thrown", "x.png"):  # x.png: the image the policy blocked
        check(what in text, "the console check missed %r; console: %r" % (what, console))


@test(timeout=120)
def report_loads_without_errors_with_one_chart_per_strategy():
    browser = chromium()
    if not browser:
        return
    with open(FIXTURE) as f:
        doc = json.load(f)
    names = [s["name"] for s in doc["strategies"]]
    page = os.path.join(make_temp_dir(), "report.html")
    code, _, err = run_cli(["report-html", FIXTURE, page])
    check(code == 0, "report-html exited %d: %s" % (code, err))

    dom, console = load(browser, page)
    check(console == [], "console messages: %r" % console)
    charts = re.findall(r'<svg class="chart delivered-over-time" id="delivered-over-time-(\d+)"', dom)
    check(charts == [str(i) for i in range(len(names))], "delivered-over-time charts %r for %d strategies" % (
        charts, len(names)))
    for cls in ("cost-vs-delivery", "provider-shares"):
        check(dom.count('<svg class="chart %s"' % cls) == 1, "no %s chart" % cls)
    # Every chart has its drawing: the delivered line of each strategy with a timeline.
    check(dom.count('<polyline class="delivered"') == len(names), "delivered lines: %d" % dom.count(
        '<polyline class="delivered"'))
    # The hostile name is text in the DOM, not an element: the page has no script element at all.
    check("<script" not in dom, "a script element in the DOM")
    check("&lt;script&gt;alert('x')&lt;/script&gt;" in dom, "the hostile name is not shown as text")
    for table in ("summary", "providers", "countries"):
        check('<table id="%s">' % table in dom, "no %s table" % table)


@test(timeout=30)
def report_html_refuses_what_is_not_a_simulation():
    tmp = make_temp_dir()
    bad = os.path.join(tmp, "bad.json")
    with open(bad, "w") as f:
        f.write('{"strategies": {}}')
    out = os.path.join(tmp, "out.html")
    code, _, err = run_cli(["report-html", bad, out])
    check(code == 1 and "not a simulate --json document" in err, "exit %d: %r" % (code, err))
    check(not os.path.exists(out), "an output was written for a bad document")
    with open(bad, "w") as f:
        f.write('{"strategies": [')
    code, _, err = run_cli(["report-html", bad, out])
    check(code == 1 and "offset" in err, "exit %d: %r" % (code, err))
    code, out_text, _ = run_cli(["report-html", "--help"])
    check(code == 0 and "report-html DOC.json OUT.html" in out_text, "help: %r" % out_text[:200])


if __name__ == "__main__":
    run()
