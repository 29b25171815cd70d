-- Deliberately failing tests: what `smsrules test` reports when tests fail.
-- Not named *_test.lua, so tests/run.sh does not run it; tests/e2e/test_cli_test.py
-- runs it and checks each FAIL line (file:line of the failing assertion), the
-- counts and exit code 1. Line numbers matter: keep the failing lines in place.
load_rules("runner_rules.lua")

test("passes", function()
  assert_eq(fire("greet", { phone = "+84912345678", name = "Ann" }).status, 202)
end)

test("wrong text", function()
  fire("greet", { phone = "+84912345678", name = "Ann" })
  assert_eq(sent()[1].text, "Hello Bob!", "the greeting") -- line 13
end)

test("not opted out", function()
  assert_true(is_optout("+84912345678"), "opted out") -- line 17
end)

test("no match", function()
  assert_match(message(send{ to = "+84912345678", text = "abc" }).status, "^rejected") -- line 21
end)

test("error in the test", function()
  local r = fire("echo", {})
  return r.result.missing.field -- line 26
end)

test("a rule error is a result, an unknown provider is an error", function()
  assert_eq(fire("broken").status, 500)
  provider("nope") -- line 31
end)
