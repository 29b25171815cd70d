"""The strategy lab example (examples/strategy-lab/): every strategy is a
rules file `smsrules check` accepts, every provider a strategy declares has a
model, and the models carry the outage the README talks about.

Run: SMSRULES_BIN=build/smsrules python3 tests/e2e/test_strategy_lab.py [name...]"""
import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, run, run_cli, test  # noqa: E402

LAB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "strategy-lab")
STRATEGIES = ("static.lua", "cheapest.lua", "adaptive.lua")


@test(timeout=30)
def every_strategy_passes_check():
    found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(LAB, "*.lua")) if not p.endswith("_test.lua"))
    check(found == sorted(STRATEGIES), "strategies in the example: %r" % found)
    with open(os.path.join(LAB, "models.json")) as f:
        models = json.load(f)
    for name in STRATEGIES:
        code, out, err = run_cli(["check", os.path.join(LAB, name)])
        check(code == 0, "smsrules check %s exited %d: %s" % (name, code, err.strip()))
        check("sms.route defined" in out, "%s: %r" % (name, out))
        providers = re.search(r"providers?: (.*?);", out).group(1)
        for p in re.findall(r"(\w+) \(", providers):
            check(p in models["providers"], "%s declares %s, which models.json has no model for" % (name, p))


@test(timeout=30)
def models_and_traffic_describe_the_readme_scenario():
    with open(os.path.join(LAB, "models.json")) as f:
        models = json.load(f)
    for name, p in models["providers"].items():
        d = p["default"]
        check(d["delivered"] + d["undelivered"] + d["expired"] <= 1, "%s shares above 1" % name)
        check(d["accept"] + sum(d["errors"].values()) <= 1 + 1e-9, "%s send shares above 1" % name)
    outages = [i for i in models["incidents"] if i.get("accept") == 0.0]
    check(len(outages) == 1 and outages[0]["to_s"] - outages[0]["from_s"] == 300,
          "one 5-minute total outage: %r" % models["incidents"])
    with open(os.path.join(LAB, "traffic.json")) as f:
        traffic = json.load(f)
    duration_s = traffic["messages"] / traffic["rate_per_s"]
    check(all(i["to_s"] <= duration_s for i in models["incidents"]),
          "an incident after the traffic ends (%.0f s)" % duration_s)
    check(abs(sum(traffic["countries"].values()) - 1) < 1e-9, "country shares %r" % traffic["countries"])
    check(abs(sum(traffic["segments"].values()) - 1) < 1e-9, "segment shares %r" % traffic["segments"])


if __name__ == "__main__":
    run()
