"""End-to-end tests of phone number reading: POST /v1/messages with numbers
written as people write them in several countries, under different
default_country settings (202 and the stored E.164 form, or 422
invalid_phone with the reason), a batch with REJECTED entries, numbers of
inbound SMS, and a default_country the rules cannot use."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SLOWDOWN, Mock, Daemon, check, run, run_cli, test, wait_for  # noqa: E402

KEY = "k"
AUTH = {"Authorization": "Bearer " + KEY}


def rules(country, extra=""):
    return 'sms.config{ api_keys = { "%s" }, default_country = "%s" }\n%s' % (KEY, country, extra)


def post(d, body):
    status, _, raw, doc = d.request("POST", "/v1/messages", body, headers=AUTH)
    return status, doc


def check_cases(d, country, cases):
    for number, expected in cases:
        status, doc = post(d, {"to": number, "text": "hi"})
        if expected.startswith("+"):
            check(status == 202, "default %s: %r answered %d %r" % (country, number, status, doc))
            _, _, _, msg = d.request("GET", "/v1/messages/" + doc["id"], headers=AUTH)
            check(msg["to"] == expected, "default %s: %r stored as %r, expected %r" %
                  (country, number, msg["to"], expected))
        else:
            check(status == 422 and doc["error"]["code"] == "invalid_phone",
                  "default %s: %r answered %d %r, expected 422 invalid_phone" % (country, number, status, doc))
            check(expected in doc["error"]["message"] and number in doc["error"]["message"],
                  "default %s: %r: message %r lacks the number or %r" % (country, number, doc["error"]["message"],
                                                                          expected))


@test(timeout=60)
def north_american_numbers_stay_in_north_america():
    d = Daemon.start(rules("1"))
    check_cases(d, "1", [
        ("(415) 555-1234", "+14155551234"),   # was +4155551234 (Switzerland)
        ("4155551234", "+14155551234"),
        ("1 415 555 1234", "+14155551234"),
        ("(506) 234-5678", "+15062345678"),   # Canada, same calling code
        ("+44 (0)7400 123456", "+447400123456"),
        ("011 44 7400 123456", "+447400123456"),
        ("555-1234", "a local number without its area code"),
        ("84912345678", "too long for US (+1)"),
        ("(555) 000-1111", "not a valid number for US (+1)"),
        ("(415) 555-1234 ext. 12", "extension (12)"),
    ])
    check(d.stop() == 0, "exit code")


@test(timeout=60)
def russian_and_kazakh_numbers_with_default_7():
    d = Daemon.start(rules("7"))
    check_cases(d, "7", [
        ("89121234567", "+79121234567"),      # was +89121234567
        ("8 (912) 123-45-67", "+79121234567"),
        ("9121234567", "+79121234567"),       # was +9121234567 (India)
        ("8 701 234 5678", "+77012345678"),   # Kazakhstan
        ("8 912 123 45", "too short for RU (+7)"),
    ])
    check(d.stop() == 0, "exit code")


@test(timeout=60)
def british_and_german_numbers_with_iso_regions():
    d = Daemon.start(rules("GB"))
    check_cases(d, "GB", [
        ("+44 (0)7700 900123", "+447700900123"),   # was +4407700900123
        ("07400 123456", "+447400123456"),
        ("020 7946 0958", "+442079460958"),
        ("07400 1234567", "too long for GB (+44)"),
    ])
    check(d.stop() == 0, "exit code")
    d = Daemon.start(rules("49"))
    check_cases(d, "49", [
        ("030 123456", "+4930123456"),
        ("0151 23456789", "+4915123456789"),
        ("+49 (0)30 1234567", "+49301234567"),
    ])
    check(d.stop() == 0, "exit code")


@test(timeout=60)
def a_batch_rejects_only_the_bad_numbers_with_their_reasons():
    d = Daemon.start(rules("1"))
    status, doc = post(d, {"messages": [{"to": "(415) 555-1234", "text": "a"},
                                        {"to": "84912345678", "text": "b"},
                                        {"to": "+84 91 234 5678", "text": "c"}]})
    check(status == 202, "batch answered %d %r" % (status, doc))
    res = doc["result"]
    check([r["code"] for r in res] == ["OK", "REJECTED", "OK"], "codes %r" % res)
    reason = res[1]["reasons"][0]
    check(reason["key"] == "invalid_phone" and reason["ref"] == "messages[1].to" and
          "too long for US (+1)" in reason["message"], "reason %r" % reason)
    _, _, _, msg = d.request("GET", "/v1/messages/" + res[2]["id"], headers=AUTH)
    check(msg["to"] == "+84912345678", "stored %r" % msg["to"])
    check(d.stop() == 0, "exit code")


@test(timeout=60)
def inbound_numbers_are_read_and_unreadable_senders_kept_as_given():
    mock = Mock.start()
    d = Daemon.start(rules("7", 'sms.provider("m", { adapter = "mock", url = "%s" })\n' % mock.url))
    senders = [("8 (912) 123-45-67", "+79121234567"),  # national, default country 7
               ("447400123456", "+447400123456"),      # international without '+', as providers send
               ("9121234567", "+79121234567"),         # bare national digits: Russia, not India (+91)
               ("MyShop", "MyShop"),                   # an alphanumeric sender: recorded as given
               ("+7 912 123", "+7 912 123")]           # no valid number: recorded as given
    for i, (sender, _) in enumerate(senders):
        inbound = {"message_id": "mo-p%d" % i, "from": sender, "to": "8 800 555-35-35", "text": "msg %d" % i}
        status, _, body, _ = d.request("POST", "/hooks/m/inbound", inbound)
        check(status == 200, "inbound %r answered %d %r" % (sender, status, body))

    def stored():
        ids = [l["id"] for l in d.log_lines() if l.get("msg") == "inbound: stored, no sms.on_inbound handler"]
        return ids if len(ids) == len(senders) else None
    ids = wait_for(stored, 5 * SLOWDOWN, "the inbound messages to be stored")
    got = {}
    for mid in ids:
        status, _, _, doc = d.request("GET", "/v1/inbound/" + mid, headers=AUTH)
        check(status == 200, "GET inbound %d" % status)
        got[doc["text"]] = (doc["from"], doc["to"])
    for i, (sender, expected) in enumerate(senders):
        check(got["msg %d" % i] == (expected, "+78005553535"), "inbound from %r stored as %r" %
              (sender, got["msg %d" % i]))
    check(d.stop() == 0, "exit code")


@test
def an_unusable_default_country_is_a_rules_error():
    with tempfile.TemporaryDirectory() as tmp:
        for country, why in [("999", "+999 is not a country calling code"),
                             ("XX", "'XX' is not a region code"),
                             ("+44", "must be a country calling code like")]:
            path = os.path.join(tmp, "rules.lua")
            with open(path, "w") as f:
                f.write('sms.config{ default_country = "%s" }\n' % country)
            code, out, err = run_cli(["check", path])
            check(code == 1 and "rules.lua:1:" in err and why in err,
                  "check with %r: exit %d, %r %r" % (country, code, out, err))


if __name__ == "__main__":
    run()
