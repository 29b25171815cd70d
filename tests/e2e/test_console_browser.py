"""The console in a real browser: headless Chromium (Debian's `chromium`, as in
test_sim_report_browser.py) driven over the DevTools protocol (tests/e2e/cdp.py)
against the real daemon and mock provider. It logs in through the form, reads
the overview, searches a message and opens it, sees a hostile text shown as
text (no element made from it, no script run), retries a failed message from
the failed page until it reaches the mock, and reloads a broken rules file,
seeing file:line. No console error, exception or refused load along the way.
Each test saves a screenshot under build/test-output/test_console_browser/
(SMSRULES_TEST_OUTPUT to change).

Run: SMSRULES_BIN=build/smsrules python3 tests/e2e/test_console_browser.py [name...]"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cdp import Browser  # noqa: E402
from harness import BIN, HOST, SLOWDOWN, Daemon, Mock, check, run, test, wait_for  # noqa: E402
from test_console import ADMIN, AUTH, get, rules, send  # noqa: E402
from test_sim_report_browser import chromium  # noqa: E402

HOSTILE = "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script> & \u00e9"
OUTPUT = os.environ.get("SMSRULES_TEST_OUTPUT") or os.path.join(os.path.dirname(os.path.abspath(BIN)), "test-output")


def shot(b, name):
    b.screenshot(os.path.join(OUTPUT, "test_console_browser", name + ".png"))


def js(value):
    return json.dumps(value)


def open_console(path):
    """Chromium, the mock and the daemon, and the browser logged in through the form; or None (no chromium)."""
    browser = chromium()
    if not browser:
        return None
    mock = Mock.start("--latency-ms", 0)
    d = Daemon.start(rules(mock.url))
    b = Browser.start(browser)
    try:
        base = "http://%s:%d/console" % (HOST, d.port)
        b.navigate(base + path)
        b.wait("!document.getElementById('login').hidden", what="the login form")
        check(b.eval("document.activeElement.id") == "login-key", "the key field has no focus")
        b.call("Input.insertText", text=ADMIN)
        b.eval("document.querySelector('#login-form button[type=submit]').click()")
        b.wait("document.getElementById('login').hidden && !document.getElementById('nav').hidden",
               what="the console after login")
        check(b.eval("document.getElementById('login-key').value") == "", "the key stays in the page")
    except BaseException:
        b.close()
        raise
    return mock, d, b, base


UNLABELLED = ("[...document.querySelectorAll('input, select, textarea')].filter(i => i.type !== 'hidden' && "
              "!i.closest('[hidden]') && i.labels.length === 0 && !i.getAttribute('aria-label')).map(i => i.id || i.name)")


def check_labels(b, where):
    """Every visible form field has a label a screen reader reads."""
    unlabelled = b.eval(UNLABELLED)
    check(unlabelled == [], "%s: fields without a label: %r" % (where, unlabelled))


def finish(mock, d, b, name, expected=()):
    """Saves the screenshot, then checks the browser logged nothing but the expected (an answer the test
    asked for, such as the 422 of a broken reload, which Chromium logs as a failed load)."""
    shot(b, name)
    problems = [p for p in b.problems() if not any(e in p for e in expected)]
    b.close()
    check(problems == [], "browser console: %r" % problems)
    d.stop()
    mock.stop()


@test(timeout=120)
def login_overview_search_and_a_hostile_text_shown_as_text():
    env = open_console("")
    if not env:
        return
    mock, d, b, base = env
    try:
        mid = send(d, "+84912345611", HOSTILE)
        wait_for(lambda: get(d, mid)["status"] == "sent", 10 * SLOWDOWN, "the message sent")
        b.wait("document.getElementById('page-title').textContent === 'Overview'", what="the overview")
        # The overview polls: the message shows in the accepted and sent counts.
        b.wait("[...document.querySelectorAll('tbody tr')].some(r => r.cells.length === 11 && "
               "Number(r.cells[1].textContent) >= 1 && Number(r.cells[2].textContent) >= 1)",
               timeout=30, what="the overview counting the message")
        check(b.eval("document.body.textContent.includes('primary')"), "no provider row")
        shot(b, "overview")
        b.eval("location.hash = '#/messages'")
        b.wait("document.getElementById('q-to') !== null", what="the search form")
        b.eval("document.getElementById('q-to').value = '345611'")
        b.eval("document.querySelector('form.search button[type=submit]').click()")
        b.wait("document.querySelectorAll('tbody tr').length === 1", what="one search result")
        check(b.eval("document.querySelector('tbody tr td.text').textContent") == HOSTILE, "the text in the list")
        b.eval("document.querySelector('tbody tr a').click()")
        b.wait("document.getElementById('message-text') !== null", what="the message page")
        check(b.eval("document.getElementById('message-text').textContent") == HOSTILE, "the text on its page")
        check(b.eval("document.querySelectorAll('img').length") == 0, "an element made from the text")
        check(b.eval("document.scripts.length") == 1, "a script element made from the text")
        check(b.eval("window.__xss === undefined"), "the hostile text ran")
        check(b.eval("document.querySelectorAll('ol.timeline li').length") >= 3, "no status timeline")
        check(b.eval("[...document.querySelectorAll('table tbody tr')].map(r => r.cells[0].textContent)") == ["primary"],
              "no attempt row")
        page = b.eval("document.documentElement.outerHTML")
        check("&lt;img src=x" in page and "&lt;script&gt;window.__xss" in page, "not escaped in the DOM")
        # On a phone, a long unbroken text and number wrap: the page never gets wider than the screen.
        long_id = send(d, "+84912345612", "x" * 400, tags={"order": "9" * 120})
        b.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2, mobile=True)
        b.eval("location.hash = '#/message/%s'" % long_id)
        b.wait("document.getElementById('message-text') && "
               "document.getElementById('message-text').textContent.length === 400", what="the long message")
        width = b.eval("[document.documentElement.scrollWidth, window.innerWidth]")
        check(width[0] <= width[1], "the page overflows a phone screen: %r" % width)
        shot(b, "message-phone")
        b.eval("location.hash = '#/messages'")
        b.wait("document.getElementById('q-to') !== null", what="the search form on a phone")
        check_labels(b, "messages")
        width = b.eval("[document.documentElement.scrollWidth, window.innerWidth]")
        check(width[0] <= width[1], "the search page overflows a phone screen: %r" % width)
        shot(b, "messages-phone")
        finish(mock, d, b, "message")
    finally:
        b.close()


@test(timeout=120)
def a_failed_message_is_retried_from_the_failed_page():
    env = open_console("#/failed")
    if not env:
        return
    mock, d, b, base = env
    try:
        mock.control({"reject": 100})
        first, second = send(d, "+84912345622", "retry me"), send(d, "+84912345623", "and me")
        for mid in (first, second):
            wait_for(lambda: get(d, mid)["status"] == "failed", 10 * SLOWDOWN, "the message failed")
        mock.control({"reject": 0})
        b.eval("location.hash = '#/overview'; location.hash = '#/failed'")
        b.wait("document.querySelectorAll('tbody tr button.danger').length === 1", what="the failed group")
        row = b.eval("document.querySelector('tbody tr').textContent")
        check("primary" in row and "Retry 2" in row, "group row %r" % row)
        b.eval("document.querySelector('tbody tr details').open = true")
        check_labels(b, "failed")
        shot(b, "failed")
        b.eval("window.confirm = () => true")  # the confirmation dialog, answered yes
        # One selected: only it is retried.
        b.eval("document.querySelector('input[type=checkbox][value=%s]').click()" % js(first))
        b.eval("[...document.querySelectorAll('tbody tr button')].find(x => x.textContent === 'Retry selected').click()")
        wait_for(lambda: get(d, first)["status"] == "sent", 10 * SLOWDOWN, "the selected message sent")
        check(get(d, second)["status"] == "failed", "the unselected message was retried")
        # Then the whole group, which is the other one now.
        b.eval("location.hash = '#/overview'; location.hash = '#/failed'")
        b.wait("document.querySelector('tbody tr button.danger') && "
               "document.querySelector('tbody tr button.danger').textContent === 'Retry 1'", what="the smaller group")
        b.eval("document.querySelector('tbody tr button.danger').click()")
        wait_for(lambda: get(d, second)["status"] == "sent", 10 * SLOWDOWN, "the group's message sent")
        check({"+84912345622", "+84912345623"} <= set(mock.stats()["by_recipient"]), "the mock did not get them")
        b.wait("document.querySelector('tbody tr button.danger').textContent === 'Retried 1 of 1'", what="the progress")
        finish(mock, d, b, "failed-retried")
    finally:
        b.close()


@test(timeout=120)
def a_broken_rules_file_shows_file_and_line_on_reload():
    env = open_console("#/rules")
    if not env:
        return
    mock, d, b, base = env
    try:
        b.wait("document.querySelector('pre.source code') !== null", what="the rules source")
        check_labels(b, "rules")
        source = b.eval("document.querySelector('pre.source code').textContent")
        check('sms.on("ping"' in source and "[redacted]" in source, "source %r" % source[:200])
        for secret in (ADMIN, AUTH["Authorization"][7:]):
            check(secret not in b.eval("document.documentElement.outerHTML"), "a secret in the page")
        with open(d.rules_path, "a") as f:
            f.write("\nsms.on(\"broken\", function(ev)\n  return nope(\nend)\n")
        b.eval("[...document.querySelectorAll('button')].find(x => x.textContent === 'Reload rules').click()")
        b.wait("document.getElementById('reload-result').className === 'alert'", what="the reload error")
        text = b.eval("document.getElementById('reload-result').textContent")
        check(re.search(r"rules\.lua:\d+:", text), "no file:line in %r" % text)
        shot(b, "rules-reload-error")
        # Still the old rules: the test event form fires the ping rule.
        b.eval("window.confirm = () => true; document.getElementById('ev-body').value = '{\"n\": 5}'")
        b.eval("document.querySelector('form[aria-label=\"Fire a test event\"] button').click()")
        b.wait("!document.getElementById('event-result').hidden && "
               "document.getElementById('event-result').textContent.includes('pong')", what="the event's answer")
        check('"pong": 5' in b.eval("document.getElementById('event-result').textContent"), "event answer")
        finish(mock, d, b, "rules", expected=("status of 422",))
    finally:
        b.close()


if __name__ == "__main__":
    run()
